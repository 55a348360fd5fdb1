//! The leaf node protocol's framing: splitting a leaf connection's byte stream into
//! operations, and encoding what a server sends over one. See
//! docs/design/inter-server-protocols.md §3.4.
//!
//! A leaf connection is bound to one account on each side, so no line carries an account:
//!
//! ```text
//! LS+ subject[ queue weight]
//! LS- subject[ queue]
//! LMSG subject [reply | + reply q.. | \| q..] size\r\n<payload>\r\n
//! HMSG subject [reply | + reply q.. | \| q..] hdr_len total_len\r\n<headers><payload>\r\n
//! ```

use crate::cluster::proto::{Line, TooLong, control_line, number, text, token};
use bytes::{BufMut, Bytes};

pub use crate::cluster::proto::MAX_CONTROL_LINE;

/// One operation read from a leaf connection.
#[derive(Debug, PartialEq, Eq)]
pub enum LeafOp {
    Info(Bytes),
    Connect(Bytes),
    Ping,
    Pong,
    Ok,
    Err(String),
    /// `LS+ subject [queue weight]`.
    Sub {
        subject: Bytes,
        queue: Option<(Bytes, u32)>,
    },
    /// `LS- subject [queue]`.
    Unsub {
        subject: Bytes,
        queue: Option<Bytes>,
    },
    /// `LMSG`/`HMSG`: a message published on the other side.
    Msg {
        subject: Bytes,
        reply: Option<Bytes>,
        /// Queue groups the sender picked this side for.
        queues: Vec<Bytes>,
        /// Header length (0: none) and the whole message.
        hdr: usize,
        msg: Bytes,
    },
}

/// Why a leaf connection's stream cannot be read further; each closes the connection.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeafParseError {
    #[error("maximum control line exceeded")]
    MaxControlLine,
    #[error("Unknown Protocol Operation")]
    UnknownOp,
    #[error("Maximum Payload Violation")]
    MaxPayload,
    /// Malformed arguments: nats-server closes the connection without an `-ERR`.
    #[error("processing leaf {0} error")]
    Malformed(&'static str),
}

/// Parses one operation from the start of `buf`: the operation and the bytes it used, or
/// `None` when more bytes are needed. `max_payload` bounds `LMSG`/`HMSG` sizes (a leaf
/// connection is subject to the server's `max_payload`; ≤ 0: no limit).
pub fn parse(buf: &[u8], max_payload: i64) -> Result<Option<(LeafOp, usize)>, LeafParseError> {
    let Some(Line {
        verb: upper,
        rest,
        args,
        after,
    }) = control_line(buf).map_err(|TooLong| LeafParseError::MaxControlLine)?
    else {
        return Ok(None);
    };
    if args.is_empty() && matches!(upper.as_slice(), b"LS+" | b"LS-" | b"LMSG" | b"HMSG") {
        // nats-server's parser wants arguments after these verbs.
        return Err(LeafParseError::UnknownOp);
    }
    let parsed = match upper.as_slice() {
        b"INFO" => LeafOp::Info(token(rest)),
        b"CONNECT" => LeafOp::Connect(token(rest)),
        b"PING" => LeafOp::Ping,
        b"PONG" => LeafOp::Pong,
        b"+OK" => LeafOp::Ok,
        b"-ERR" => LeafOp::Err(text(rest).trim_matches('\'').to_owned()),
        b"LS+" => match &args[..] {
            [subj] => LeafOp::Sub {
                subject: token(subj),
                queue: None,
            },
            [subj, q, weight] => LeafOp::Sub {
                subject: token(subj),
                queue: Some((
                    token(q),
                    number(weight)
                        .and_then(|w| u32::try_from(w).ok())
                        .ok_or(LeafParseError::Malformed("sub"))?,
                )),
            },
            _ => return Err(LeafParseError::Malformed("sub")),
        },
        b"LS-" => match &args[..] {
            [subj] => LeafOp::Unsub {
                subject: token(subj),
                queue: None,
            },
            [subj, q] => LeafOp::Unsub {
                subject: token(subj),
                queue: Some(token(q)),
            },
            _ => return Err(LeafParseError::Malformed("unsub")),
        },
        b"LMSG" | b"HMSG" => return parse_msg(&args, upper == b"HMSG", buf, after, max_payload),
        // Client operations on a leaf connection: nats-server closes without an -ERR.
        b"SUB" | b"UNSUB" | b"PUB" | b"HPUB" => {
            return Err(LeafParseError::Malformed("client op"));
        }
        _ => return Err(LeafParseError::UnknownOp),
    };
    Ok(Some((parsed, after)))
}

/// `subject [reply | + reply q.. | \| q..] [hdr] size`, then the payload.
fn parse_msg(
    args: &[&[u8]],
    headers: bool,
    buf: &[u8],
    after: usize,
    max_payload: i64,
) -> Result<Option<(LeafOp, usize)>, LeafParseError> {
    let what = if headers { "header message" } else { "message" };
    let sizes = if headers { 2 } else { 1 };
    if args.len() < 1 + sizes {
        return Err(LeafParseError::Malformed(what));
    }
    let (head, tail) = args.split_at(args.len() - sizes);
    let (hdr, total) = if headers {
        let h = number(tail[0]).ok_or(LeafParseError::Malformed(what))?;
        let t = number(tail[1]).ok_or(LeafParseError::Malformed(what))?;
        if h > t {
            return Err(LeafParseError::Malformed(what));
        }
        (h, t)
    } else {
        (0, number(tail[0]).ok_or(LeafParseError::Malformed(what))?)
    };
    if max_payload > 0 && u64::try_from(total).unwrap_or(u64::MAX) > max_payload.unsigned_abs() {
        return Err(LeafParseError::MaxPayload);
    }
    let subject = token(head[0]);
    let (reply, queues) = match &head[1..] {
        [] => (None, Vec::new()),
        [reply] => (Some(token(reply)), Vec::new()),
        [b"+", reply, qs @ ..] if !qs.is_empty() => {
            (Some(token(reply)), qs.iter().map(|q| token(q)).collect())
        }
        [b"|", qs @ ..] if !qs.is_empty() => (None, qs.iter().map(|q| token(q)).collect()),
        _ => return Err(LeafParseError::Malformed(what)),
    };
    if buf.len() < after + total + 2 {
        return Ok(None);
    }
    if &buf[after + total..after + total + 2] != b"\r\n" {
        return Err(LeafParseError::Malformed(what));
    }
    let msg = Bytes::copy_from_slice(&buf[after..after + total]);
    Ok(Some((
        LeafOp::Msg {
            subject,
            reply,
            queues,
            hdr,
            msg,
        },
        after + total + 2,
    )))
}

/// `LS+ subject[ queue weight]`.
pub fn sub_line(out: &mut Vec<u8>, subject: &[u8], queue: Option<(&[u8], u32)>) {
    out.put_slice(b"LS+ ");
    out.put_slice(subject);
    if let Some((q, w)) = queue {
        out.put_u8(b' ');
        out.put_slice(q);
        out.put_u8(b' ');
        out.put_slice(itoa::Buffer::new().format(w).as_bytes());
    }
    out.put_slice(b"\r\n");
}

/// `LS- subject[ queue]`.
pub fn unsub_line(out: &mut Vec<u8>, subject: &[u8], queue: Option<&[u8]>) {
    out.put_slice(b"LS- ");
    out.put_slice(subject);
    if let Some(q) = queue {
        out.put_u8(b' ');
        out.put_slice(q);
    }
    out.put_slice(b"\r\n");
}

/// Upper bound of the bytes [`encode_msg`] writes.
pub fn msg_len(subject: &[u8], reply: Option<&[u8]>, queues: &[Bytes], msg: &[u8]) -> usize {
    subject.len()
        + reply.map_or(0, |r| r.len() + 3)
        + queues.iter().map(|q| q.len() + 1).sum::<usize>()
        + msg.len()
        + 40
}

/// A message for the other side: `LMSG`/`HMSG subject [reply | + reply q.. | \| q..]
/// [hdr] size`, then the payload. With `peer_headers` false the header block is dropped.
pub fn encode_msg(
    out: &mut Vec<u8>,
    subject: &[u8],
    reply: Option<&[u8]>,
    queues: &[Bytes],
    hdr: usize,
    msg: &[u8],
    peer_headers: bool,
) {
    let m = crate::cluster::proto::Outgoing {
        account: "",
        subject,
        reply,
        queues,
        hdr,
        msg,
    };
    crate::cluster::proto::encode_frame(out, b"LMSG ", None, &m, peer_headers);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn one(s: &str) -> LeafOp {
        match parse(s.as_bytes(), 0) {
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
            one("LS+ work grp 2\r\n"),
            LeafOp::Sub {
                subject: Bytes::from_static(b"work"),
                queue: Some((Bytes::from_static(b"grp"), 2)),
            }
        );
        assert_eq!(
            one("LS+ $LDS.2UST17ysQQqmAcvF8IfvBE\r\n"),
            LeafOp::Sub {
                subject: Bytes::from_static(b"$LDS.2UST17ysQQqmAcvF8IfvBE"),
                queue: None,
            }
        );
        assert_eq!(
            one("LS- work grp\r\n"),
            LeafOp::Unsub {
                subject: Bytes::from_static(b"work"),
                queue: Some(Bytes::from_static(b"grp")),
            }
        );
        assert_eq!(parse(b"LS+\r\n", 0), Err(LeafParseError::UnknownOp));
        assert_eq!(
            parse(b"LS+ a q x\r\n", 0),
            Err(LeafParseError::Malformed("sub"))
        );
        assert_eq!(
            parse(b"LS- a b c\r\n", 0),
            Err(LeafParseError::Malformed("unsub"))
        );
        assert_eq!(parse(b"RS+ $G foo\r\n", 0), Err(LeafParseError::UnknownOp));
        assert_eq!(parse(b"LS+ fo", 0), Ok(None));
        let mut v = Vec::new();
        sub_line(&mut v, b"work", Some((b"grp", 3)));
        unsub_line(&mut v, b"foo", None);
        assert_eq!(v, b"LS+ work grp 3\r\nLS- foo\r\n");
    }

    #[test]
    fn observed_messages() {
        assert_eq!(
            one("LMSG foo rep.1 2\r\nhi\r\n"),
            LeafOp::Msg {
                subject: Bytes::from_static(b"foo"),
                reply: Some(Bytes::from_static(b"rep.1")),
                queues: vec![],
                hdr: 0,
                msg: Bytes::from_static(b"hi"),
            }
        );
        assert_eq!(
            one("HMSG foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n"),
            LeafOp::Msg {
                subject: Bytes::from_static(b"foo"),
                reply: None,
                queues: vec![],
                hdr: 12,
                msg: Bytes::from_static(b"NATS/1.0\r\n\r\nhi"),
            }
        );
        assert_eq!(parse(b"LMSG\r\n", 0), Err(LeafParseError::UnknownOp));
        assert_eq!(
            parse(b"LMSG foo\r\n", 0),
            Err(LeafParseError::Malformed("message"))
        );
        assert_eq!(
            parse(b"LMSG foo a b 2\r\nhi\r\n", 0),
            Err(LeafParseError::Malformed("message"))
        );
        assert_eq!(
            parse(b"LMSG foo 2\r\nhiX\r\n", 0),
            Err(LeafParseError::Malformed("message"))
        );
        assert_eq!(
            parse(b"LMSG foo 20\r\nhi\r\n", 10),
            Err(LeafParseError::MaxPayload)
        );
        assert_eq!(
            parse(b"HMSG foo 20 2\r\nhi\r\n", 0),
            Err(LeafParseError::Malformed("header message"))
        );
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
            encode_msg(&mut out, b"foo.bar", reply, &queues, hdr, msg, true);
            assert!(out.len() <= msg_len(b"foo.bar", reply, &queues, msg));
            let parsed = match parse(&out, 0) {
                Ok(Some((op, used))) => {
                    assert_eq!(used, out.len());
                    op
                }
                other => panic!("{}: {other:?}", String::from_utf8_lossy(&out)),
            };
            assert_eq!(
                parsed,
                LeafOp::Msg {
                    subject: Bytes::from_static(b"foo.bar"),
                    reply: reply.map(Bytes::copy_from_slice),
                    queues: queues.clone(),
                    hdr,
                    msg: Bytes::copy_from_slice(msg),
                }
            );
            assert_eq!(parse(&out[..out.len() - 1], 0), Ok(None));
        }
        let mut out = Vec::new();
        encode_msg(&mut out, b"s", None, &[], 12, b"NATS/1.0\r\n\r\nhi", false);
        assert_eq!(out, b"LMSG s 2\r\nhi\r\n");
    }
}
