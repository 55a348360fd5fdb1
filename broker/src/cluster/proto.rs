//! The route protocol's framing: splitting a route's byte stream into operations, and
//! encoding what a server sends its peers. See docs/design/inter-server-protocols.md §1.
//!
//! Routes run without connection pooling: every line carries its account, which peers
//! that pool (nats-server ≥ 2.10) accept from a peer that advertises no pool size.

use bytes::{BufMut, Bytes};

/// Longest control line accepted on a route (nats-server: 16 × the client limit).
pub const MAX_CONTROL_LINE: usize = 64 * 1024;

/// One operation read from a route.
#[derive(Debug, PartialEq, Eq)]
pub enum RouteOp {
    Info(Bytes),
    Connect(Bytes),
    Ping,
    Pong,
    Ok,
    Err(String),
    /// `RS+ acc subject [queue weight]` (and `LS+` with its origin dropped); the weight
    /// is how many members the peer has in the queue group (1 without a queue).
    Sub {
        account: String,
        subject: Bytes,
        queue: Option<Bytes>,
        weight: u32,
    },
    /// `RS- acc subject [queue]`.
    Unsub {
        account: String,
        subject: Bytes,
        queue: Option<Bytes>,
    },
    /// `A+ acc` (gateways): the peer has interest in the account again.
    AccountSub(String),
    /// `A- acc` (gateways): the peer has no interest in anything of the account.
    AccountUnsub(String),
    /// `RMSG`/`HMSG`/`LMSG`: a message for local subscribers.
    Msg {
        account: String,
        subject: Bytes,
        reply: Option<Bytes>,
        /// Queue groups the sender picked this server for.
        queues: Vec<Bytes>,
        /// Header length (0: none) and the whole message.
        hdr: usize,
        msg: Bytes,
    },
}

/// Why a route's stream cannot be read further; each closes the route.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RouteParseError {
    #[error("maximum control line exceeded")]
    MaxControlLine,
    #[error("Unknown Protocol Operation")]
    UnknownOp,
    /// Malformed arguments: nats-server closes the route without an `-ERR`.
    #[error("malformed {0}")]
    Malformed(&'static str),
}

/// A control line longer than [`MAX_CONTROL_LINE`].
pub(crate) struct TooLong;

/// One control line of an inter-server protocol.
pub(crate) struct Line<'a> {
    /// The operation, upper-cased.
    pub verb: Vec<u8>,
    /// Everything after the verb, trimmed.
    pub rest: &'a [u8],
    /// `rest` split on blanks.
    pub args: Vec<&'a [u8]>,
    /// Where the line (with its CRLF) ends in the buffer.
    pub after: usize,
}

/// Splits the control line at the start of `buf`; `None` until its CRLF has arrived.
pub(crate) fn control_line(buf: &[u8]) -> Result<Option<Line<'_>>, TooLong> {
    let Some(eol) = memchr::memmem::find(buf, b"\r\n") else {
        return if buf.len() > MAX_CONTROL_LINE {
            Err(TooLong)
        } else {
            Ok(None)
        };
    };
    if eol > MAX_CONTROL_LINE {
        return Err(TooLong);
    }
    let line = &buf[..eol];
    let (op, rest) = match line.iter().position(|b| *b == b' ' || *b == b'\t') {
        Some(i) => (&line[..i], trim(&line[i + 1..])),
        None => (line, &b""[..]),
    };
    let args = rest
        .split(|b| *b == b' ' || *b == b'\t')
        .filter(|a| !a.is_empty())
        .collect();
    Ok(Some(Line {
        verb: op.to_ascii_uppercase(),
        rest,
        args,
        after: eol + 2,
    }))
}

pub(crate) fn token(b: &[u8]) -> Bytes {
    Bytes::copy_from_slice(b)
}

pub(crate) fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Parses one operation from the start of `buf`: the operation and the bytes it used, or
/// `None` when more bytes are needed.
pub fn parse(buf: &[u8]) -> Result<Option<(RouteOp, usize)>, RouteParseError> {
    let Some(Line {
        verb: upper,
        rest,
        args,
        after,
    }) = control_line(buf).map_err(|TooLong| RouteParseError::MaxControlLine)?
    else {
        return Ok(None);
    };
    let parsed = match upper.as_slice() {
        b"INFO" => RouteOp::Info(token(rest)),
        b"CONNECT" => RouteOp::Connect(token(rest)),
        b"PING" => RouteOp::Ping,
        b"PONG" => RouteOp::Pong,
        b"+OK" => RouteOp::Ok,
        b"-ERR" => RouteOp::Err(text(rest).trim_matches('\'').to_owned()),
        b"RS+" | b"LS+" => {
            let a = if upper == b"LS+" {
                skip_origin(&args)
            } else {
                &args[..]
            };
            match a {
                [acc, subj] => RouteOp::Sub {
                    account: text(acc),
                    subject: token(subj),
                    queue: None,
                    weight: 1,
                },
                [acc, subj, q, weight] => RouteOp::Sub {
                    account: text(acc),
                    subject: token(subj),
                    queue: Some(token(q)),
                    weight: number(weight)
                        .and_then(|w| u32::try_from(w).ok())
                        .ok_or(RouteParseError::Malformed("RS+ weight"))?
                        .max(1),
                },
                _ => return Err(RouteParseError::Malformed("RS+")),
            }
        }
        b"RS-" | b"LS-" => {
            // LS- carries an origin only from peers that announced `lnocu`; natrix does
            // not announce it, so its peers send the plain form.
            match &args[..] {
                [acc, subj] => RouteOp::Unsub {
                    account: text(acc),
                    subject: token(subj),
                    queue: None,
                },
                [acc, subj, q] => RouteOp::Unsub {
                    account: text(acc),
                    subject: token(subj),
                    queue: Some(token(q)),
                },
                _ => return Err(RouteParseError::Malformed("RS-")),
            }
        }
        b"A+" | b"A-" => match &args[..] {
            [acc] if upper == b"A+" => RouteOp::AccountSub(text(acc)),
            [acc] => RouteOp::AccountUnsub(text(acc)),
            _ => return Err(RouteParseError::Malformed("A+/A-")),
        },
        b"RMSG" | b"HMSG" | b"LMSG" => {
            let headers = upper != b"RMSG";
            let a = if upper == b"LMSG" {
                skip_origin(&args)
            } else {
                &args[..]
            };
            return parse_msg(a, headers, buf, after);
        }
        _ => return Err(RouteParseError::UnknownOp),
    };
    Ok(Some((parsed, after)))
}

fn trim(b: &[u8]) -> &[u8] {
    let start = b
        .iter()
        .position(|c| !c.is_ascii_whitespace())
        .unwrap_or(b.len());
    let end = b
        .iter()
        .rposition(|c| !c.is_ascii_whitespace())
        .map_or(start, |e| e + 1);
    &b[start..end.max(start)]
}

fn skip_origin<'a>(args: &'a [&'a [u8]]) -> &'a [&'a [u8]] {
    args.get(1..).unwrap_or(&[])
}

pub(crate) fn number(b: &[u8]) -> Option<usize> {
    if b.is_empty() || b.len() > 12 || !b.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(b).ok()?.parse().ok()
}

/// `acc subject [reply | + reply q.. | \| q..] [hdr] size`, then the payload.
fn parse_msg(
    args: &[&[u8]],
    headers: bool,
    buf: &[u8],
    after: usize,
) -> Result<Option<(RouteOp, usize)>, RouteParseError> {
    let sizes = if headers { 2 } else { 1 };
    if args.len() < 2 + sizes {
        return Err(RouteParseError::Malformed("RMSG"));
    }
    let (head, tail) = args.split_at(args.len() - sizes);
    let (hdr, total) = if headers {
        let h = number(tail[0]).ok_or(RouteParseError::Malformed("HMSG"))?;
        let t = number(tail[1]).ok_or(RouteParseError::Malformed("HMSG"))?;
        if h > t {
            return Err(RouteParseError::Malformed("HMSG"));
        }
        (h, t)
    } else {
        (
            0,
            number(tail[0]).ok_or(RouteParseError::Malformed("RMSG"))?,
        )
    };
    let account = text(head[0]);
    let subject = token(head[1]);
    let (reply, queues) = match &head[2..] {
        [] => (None, Vec::new()),
        [reply] => (Some(token(reply)), Vec::new()),
        [b"+", reply, qs @ ..] if !qs.is_empty() => {
            (Some(token(reply)), qs.iter().map(|q| token(q)).collect())
        }
        [b"|", qs @ ..] if !qs.is_empty() => (None, qs.iter().map(|q| token(q)).collect()),
        _ => return Err(RouteParseError::Malformed("RMSG reply indicator")),
    };
    if buf.len() < after + total + 2 {
        return Ok(None);
    }
    if &buf[after + total..after + total + 2] != b"\r\n" {
        return Err(RouteParseError::Malformed("RMSG payload"));
    }
    let msg = Bytes::copy_from_slice(&buf[after..after + total]);
    Ok(Some((
        RouteOp::Msg {
            account,
            subject,
            reply,
            queues,
            hdr,
            msg,
        },
        after + total + 2,
    )))
}

/// `RS+ acc subject[ queue weight]`.
pub fn sub_line(account: &str, subject: &[u8], queue: Option<(&[u8], u32)>) -> Vec<u8> {
    let mut v = Vec::with_capacity(subject.len() + account.len() + 24);
    v.put_slice(b"RS+ ");
    v.put_slice(account.as_bytes());
    v.put_u8(b' ');
    v.put_slice(subject);
    if let Some((q, w)) = queue {
        v.put_u8(b' ');
        v.put_slice(q);
        v.put_u8(b' ');
        v.put_slice(itoa::Buffer::new().format(w).as_bytes());
    }
    v.put_slice(b"\r\n");
    v
}

/// `RS- acc subject[ queue]`.
pub fn unsub_line(account: &str, subject: &[u8], queue: Option<&[u8]>) -> Vec<u8> {
    let mut v = Vec::with_capacity(subject.len() + account.len() + 16);
    v.put_slice(b"RS- ");
    v.put_slice(account.as_bytes());
    v.put_u8(b' ');
    v.put_slice(subject);
    if let Some(q) = queue {
        v.put_u8(b' ');
        v.put_slice(q);
    }
    v.put_slice(b"\r\n");
    v
}

/// A message on its way to a peer.
pub struct Outgoing<'a> {
    pub account: &'a str,
    pub subject: &'a [u8],
    pub reply: Option<&'a [u8]>,
    /// Queue groups the peer was picked for.
    pub queues: &'a [Bytes],
    /// Header length (0: none) and the whole message.
    pub hdr: usize,
    pub msg: &'a [u8],
}

/// A message for a peer: `RMSG`/`HMSG acc subject [reply | + reply q.. | \| q..] [hdr]
/// size`, then the payload. With `peer_headers` false the header block is dropped.
pub fn encode_msg(out: &mut Vec<u8>, m: &Outgoing<'_>, peer_headers: bool) {
    encode_frame(out, b"RMSG ", Some(m.account), m, peer_headers);
}

/// The frame shared by routes, gateways (`op` `RMSG `, with the account) and leaf
/// connections (`LMSG `, bound to one account, so without it); `HMSG ` when the message
/// has headers the peer takes.
pub fn encode_frame(
    out: &mut Vec<u8>,
    op: &[u8],
    account: Option<&str>,
    m: &Outgoing<'_>,
    peer_headers: bool,
) {
    let Outgoing {
        subject,
        reply,
        queues,
        hdr,
        msg,
        ..
    } = *m;
    let with_headers = hdr > 0 && peer_headers;
    out.put_slice(if with_headers { b"HMSG " } else { op });
    if let Some(account) = account {
        out.put_slice(account.as_bytes());
        out.put_u8(b' ');
    }
    out.put_slice(subject);
    out.put_u8(b' ');
    match (reply, queues.is_empty()) {
        (Some(r), true) => {
            out.put_slice(r);
            out.put_u8(b' ');
        }
        (Some(r), false) => {
            out.put_slice(b"+ ");
            out.put_slice(r);
            out.put_u8(b' ');
        }
        (None, false) => out.put_slice(b"| "),
        (None, true) => {}
    }
    for q in queues {
        out.put_slice(q);
        out.put_u8(b' ');
    }
    let mut n = itoa::Buffer::new();
    let body = if with_headers {
        out.put_slice(n.format(hdr).as_bytes());
        out.put_u8(b' ');
        out.put_slice(n.format(msg.len()).as_bytes());
        msg
    } else {
        let body = &msg[hdr.min(msg.len())..];
        out.put_slice(n.format(body.len()).as_bytes());
        body
    };
    out.put_slice(b"\r\n");
    out.put_slice(body);
    out.put_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> RouteOp {
        match parse(s.as_bytes()) {
            Ok(Some((op, used))) => {
                assert_eq!(used, s.len(), "{s}");
                op
            }
            other => panic!("{s}: {other:?}"),
        }
    }

    #[test]
    fn interest_lines() {
        assert_eq!(
            one("RS+ $G bar q1 2\r\n"),
            RouteOp::Sub {
                account: "$G".into(),
                subject: Bytes::from_static(b"bar"),
                queue: Some(Bytes::from_static(b"q1")),
                weight: 2,
            }
        );
        assert_eq!(
            one("RS- $G foo\r\n"),
            RouteOp::Unsub {
                account: "$G".into(),
                subject: Bytes::from_static(b"foo"),
                queue: None
            }
        );
        assert_eq!(parse(b"RS+ $G\r\n"), Err(RouteParseError::Malformed("RS+")));
        assert_eq!(one("A- ACC\r\n"), RouteOp::AccountUnsub("ACC".into()));
        assert_eq!(one("A+ ACC\r\n"), RouteOp::AccountSub("ACC".into()));
        assert_eq!(parse(b"A+\r\n"), Err(RouteParseError::Malformed("A+/A-")));
        assert_eq!(parse(b"XYZ\r\n"), Err(RouteParseError::UnknownOp));
        assert_eq!(parse(b"RS+ $G fo"), Ok(None));
    }

    #[test]
    fn messages_round_trip() {
        for (reply, queues, hdr, msg) in [
            (None, vec![], 0, &b"hello"[..]),
            (Some(&b"rep.1"[..]), vec![], 0, b"hi"),
            (
                Some(&b"r"[..]),
                vec![Bytes::from_static(b"q1"), Bytes::from_static(b"q2")],
                0,
                b"x",
            ),
            (None, vec![Bytes::from_static(b"q")], 0, b"yz"),
            (None, vec![], 12, b"NATS/1.0\r\n\r\nhi"),
        ] {
            let mut out = Vec::new();
            let m = Outgoing {
                account: "$G",
                subject: b"foo.bar",
                reply,
                queues: &queues,
                hdr,
                msg,
            };
            encode_msg(&mut out, &m, true);
            let parsed = match parse(&out) {
                Ok(Some((op, used))) => {
                    assert_eq!(used, out.len());
                    op
                }
                other => panic!("{}: {other:?}", String::from_utf8_lossy(&out)),
            };
            assert_eq!(
                parsed,
                RouteOp::Msg {
                    account: "$G".into(),
                    subject: Bytes::from_static(b"foo.bar"),
                    reply: reply.map(Bytes::copy_from_slice),
                    queues: queues.clone(),
                    hdr,
                    msg: Bytes::copy_from_slice(msg),
                }
            );
            assert_eq!(
                parse(&out[..out.len() - 1]),
                Ok(None),
                "partial payload waits"
            );
        }
        assert_eq!(
            parse(b"RMSG $G foo bad reply 5\r\nhello\r\n"),
            Err(RouteParseError::Malformed("RMSG reply indicator"))
        );
    }
}
