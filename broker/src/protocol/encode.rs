//! Encoders for what the server writes to a client: `MSG`/`HMSG` frames, `INFO`, `-ERR`.
//!
//! Frames are appended straight into a connection's outbound buffer; nothing here
//! allocates.

use bytes::BufMut;

pub const PING: &[u8] = b"PING\r\n";
pub const PONG: &[u8] = b"PONG\r\n";
pub const OK: &[u8] = b"+OK\r\n";

/// `-ERR '<text>'\r\n`, as nats-server's `errProto`.
pub fn err(out: &mut impl BufMut, text: &str) {
    out.put_slice(b"-ERR '");
    out.put_slice(text.as_bytes());
    out.put_slice(b"'\r\n");
}

/// `INFO <json> \r\n`: nats-server joins the parts with spaces, so a space precedes the
/// line end.
pub fn info(out: &mut impl BufMut, json: &[u8]) {
    out.put_slice(b"INFO ");
    out.put_slice(json);
    out.put_slice(b" \r\n");
}

/// A message as delivered to one subscription.
pub struct Delivery<'a> {
    pub subject: &'a [u8],
    pub sid: &'a [u8],
    pub reply: Option<&'a [u8]>,
    /// Header length (0 for none) and the whole message (headers then payload).
    pub hdr: usize,
    pub msg: &'a [u8],
    /// The size arguments as the publisher wrote them, echoed as nats-server does.
    pub size_arg: &'a [u8],
    pub hdr_arg: &'a [u8],
}

impl Delivery<'_> {
    /// Bytes this frame takes on the wire, an upper bound used for the pending limit.
    pub fn wire_len(&self) -> usize {
        self.subject.len()
            + self.sid.len()
            + self.reply.map_or(0, |r| r.len() + 1)
            + self.size_arg.len()
            + self.hdr_arg.len()
            + self.msg.len()
            + 32
    }

    /// Appends `MSG`/`HMSG` and the payload. A subscriber without header support gets
    /// a `MSG` with the header block stripped.
    pub fn encode(&self, out: &mut impl BufMut, subscriber_headers: bool) {
        let body = self.encode_head(out, subscriber_headers);
        out.put_slice(&self.msg[body..]);
        out.put_slice(b"\r\n");
    }

    /// Appends the control line with its CRLF; returns where in `msg` the body to
    /// send starts (past the headers for a subscriber without header support). The
    /// body and a CRLF complete the frame.
    pub fn encode_head(&self, out: &mut impl BufMut, subscriber_headers: bool) -> usize {
        let with_headers = self.hdr > 0 && subscriber_headers;
        out.put_slice(if with_headers { b"HMSG " } else { b"MSG " });
        out.put_slice(self.subject);
        out.put_u8(b' ');
        if !self.sid.is_empty() {
            out.put_slice(self.sid);
            out.put_u8(b' ');
        }
        if let Some(reply) = self.reply {
            out.put_slice(reply);
            out.put_u8(b' ');
        }
        let body = if self.hdr > 0 && !with_headers {
            let mut n = itoa::Buffer::new();
            out.put_slice(n.format(self.msg.len() - self.hdr).as_bytes());
            self.hdr
        } else {
            if with_headers {
                out.put_slice(self.hdr_arg);
                out.put_u8(b' ');
            }
            out.put_slice(self.size_arg);
            0
        };
        out.put_slice(b"\r\n");
        body
    }
}

/// The no-responders status message nats-server sends a requester:
/// `HMSG <reply> <sid> <h> <h>\r\nNATS/1.0 503\r\nNats-Subject: <subject>\r\n\r\n\r\n`.
pub fn no_responders(out: &mut impl BufMut, reply: &[u8], sid: &[u8], subject: &[u8]) {
    let hdr_len = 32 + subject.len();
    let mut n = itoa::Buffer::new();
    let len = n.format(hdr_len).as_bytes();
    out.put_slice(b"HMSG ");
    out.put_slice(reply);
    out.put_u8(b' ');
    out.put_slice(sid);
    out.put_u8(b' ');
    out.put_slice(len);
    out.put_u8(b' ');
    out.put_slice(len);
    out.put_slice(b"\r\nNATS/1.0 503\r\nNats-Subject: ");
    out.put_slice(subject);
    out.put_slice(b"\r\n\r\n\r\n");
}

#[cfg(test)]
mod tests {
    use super::*;

    fn encode(d: &Delivery<'_>, headers: bool) -> String {
        let mut v = Vec::new();
        d.encode(&mut v, headers);
        String::from_utf8(v).unwrap()
    }

    #[test]
    fn msg_and_hmsg() {
        let d = Delivery {
            subject: b"foo",
            sid: b"1",
            reply: Some(b"bar"),
            hdr: 0,
            msg: b"hello",
            size_arg: b"5",
            hdr_arg: b"",
        };
        assert_eq!(encode(&d, true), "MSG foo 1 bar 5\r\nhello\r\n");
        let hmsg = b"NATS/1.0\r\nA: b\r\n\r\nhi";
        let d = Delivery {
            subject: b"foo",
            sid: b"9",
            reply: None,
            hdr: 18,
            msg: hmsg,
            size_arg: b"20",
            hdr_arg: b"18",
        };
        assert_eq!(
            encode(&d, true),
            "HMSG foo 9 18 20\r\nNATS/1.0\r\nA: b\r\n\r\nhi\r\n"
        );
        assert_eq!(encode(&d, false), "MSG foo 9 2\r\nhi\r\n");
    }

    #[test]
    fn no_responders_matches_nats_server() {
        let mut v = Vec::new();
        no_responders(&mut v, b"_INBOX.x", b"3", b"svc");
        assert_eq!(
            v,
            b"HMSG _INBOX.x 3 35 35\r\nNATS/1.0 503\r\nNats-Subject: svc\r\n\r\n\r\n"
        );
    }
}
