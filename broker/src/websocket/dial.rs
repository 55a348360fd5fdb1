//! The client side of an upgrade: a leaf connection this server dials to a `ws://` or
//! `wss://` remote. As nats-server does it, the request is `GET <url path>/leafnode`
//! with a fresh key, offering permessage-deflate (`ws_compression`) and unmasked frames
//! (`ws_no_masking`) when configured; the answer must be `101` with the right
//! `Upgrade`, `Connection` and accept key. After it, this side masks every frame unless
//! the server agreed to `Nats-No-Masking`.

use base64::Engine as _;
use bytes::BytesMut;
use tokio::io::{AsyncRead, AsyncReadExt as _};

use super::handshake;

/// The answer's head may not exceed this (nats-server reads it with a buffer of
/// `MAX_CONTROL_LINE_SIZE`, 4 KiB; a little more room costs nothing).
const MAX_ANSWER: usize = 16 * 1024;

/// Why the upgrade of a dialled connection failed (nats-server's texts).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DialError {
    #[error("invalid websocket connection")]
    Invalid,
    #[error("compression negotiation error")]
    Compression,
    #[error("connection closed during websocket handshake")]
    Closed,
    #[error("websocket handshake: {0}")]
    Io(String),
}

/// What the dialling side asks for.
#[derive(Debug, Clone)]
pub struct Offer {
    /// `Sec-WebSocket-Key`: 16 random bytes, base64.
    pub key: String,
    pub compress: bool,
    pub no_masking: bool,
}

impl Offer {
    pub fn new(compress: bool, no_masking: bool) -> Self {
        let mut raw = [0u8; 16];
        raw.iter_mut().for_each(|b| *b = fastrand::u8(..));
        Self {
            key: base64::engine::general_purpose::STANDARD.encode(raw),
            compress,
            no_masking,
        }
    }

    /// The request for a leaf connection to `host` (with its port) under `path` (the
    /// remote URL's own path, kept in front of `/leafnode` as nats-server keeps it).
    pub fn leaf_request(&self, host: &str, path: &str) -> Vec<u8> {
        let prefix = path.trim_matches('/');
        let path = if prefix.is_empty() {
            "/leafnode".to_owned()
        } else {
            format!("/{prefix}/leafnode")
        };
        let mut v = format!(
            "GET {path} HTTP/1.1\r\nHost: {host}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {}\r\nSec-WebSocket-Version: 13\r\n",
            self.key
        );
        if self.compress {
            v.push_str("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n");
        }
        if self.no_masking {
            v.push_str("Nats-No-Masking: true\r\n");
        }
        v.push_str("\r\n");
        v.into_bytes()
    }

    /// Checks the server's answer head: `Ok(None)` until it is whole.
    pub fn check_answer(&self, buf: &[u8]) -> Result<Option<(Agreed, usize)>, DialError> {
        let Some(end) = memchr::memmem::find(buf, b"\r\n\r\n") else {
            if buf.len() > MAX_ANSWER {
                return Err(DialError::Invalid);
            }
            return Ok(None);
        };
        let head = std::str::from_utf8(&buf[..end]).map_err(|_| DialError::Invalid)?;
        let mut lines = head.split("\r\n");
        let status = lines.next().unwrap_or_default();
        let mut parts = status.split(' ');
        let (Some(version), Some(code)) = (parts.next(), parts.next()) else {
            return Err(DialError::Invalid);
        };
        if !version.starts_with("HTTP/1.") || code != "101" {
            return Err(DialError::Invalid);
        }
        let headers: Vec<(&str, &str)> = lines
            .filter_map(|l| l.split_once(':'))
            .map(|(k, v)| (k.trim(), v.trim()))
            .collect();
        let header = |name: &str| {
            headers
                .iter()
                .find(|(k, _)| k.eq_ignore_ascii_case(name))
                .map(|(_, v)| *v)
        };
        let valid = header("Upgrade").is_some_and(|v| v.eq_ignore_ascii_case("websocket"))
            && header("Connection").is_some_and(|v| v.eq_ignore_ascii_case("upgrade"))
            && header("Sec-WebSocket-Accept") == Some(handshake::accept_key(&self.key).as_str());
        if !valid {
            return Err(DialError::Invalid);
        }
        let mut deflate = false;
        if self.compress
            && let Some(ext) = header("Sec-WebSocket-Extensions")
        {
            let params: Vec<String> = ext
                .split(';')
                .map(|p| p.trim().to_ascii_lowercase())
                .collect();
            if params.iter().any(|p| p == "permessage-deflate") {
                // Only the stateless form nats-server speaks is accepted.
                let both = params.iter().any(|p| p == "server_no_context_takeover")
                    && params.iter().any(|p| p == "client_no_context_takeover");
                if !both {
                    return Err(DialError::Compression);
                }
                deflate = true;
            }
        }
        let mask = !(self.no_masking && header("Nats-No-Masking") == Some("true"));
        Ok(Some((Agreed { deflate, mask }, end + 4)))
    }

    /// Reads and checks the answer from `rd`; returns what was agreed and the bytes read
    /// past the head (the first frames, often the hub's INFO).
    pub async fn read_answer<R: AsyncRead + Unpin>(
        &self,
        rd: &mut R,
    ) -> Result<(Agreed, BytesMut), DialError> {
        let mut buf = BytesMut::with_capacity(1024);
        loop {
            if let Some((agreed, len)) = self.check_answer(&buf)? {
                let _ = buf.split_to(len);
                return Ok((agreed, buf));
            }
            match rd.read_buf(&mut buf).await {
                Ok(0) => return Err(DialError::Closed),
                Ok(_) => {}
                Err(e) => return Err(DialError::Io(e.to_string())),
            }
        }
    }
}

/// What the server's answer agreed to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Agreed {
    /// permessage-deflate, without context takeover either way.
    pub deflate: bool,
    /// This side masks its frames (always, unless `Nats-No-Masking` was agreed).
    pub mask: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    fn answer(offer: &Offer, extra: &str) -> String {
        format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: {}\r\n{extra}\r\n",
            handshake::accept_key(&offer.key)
        )
    }

    #[test]
    fn request_is_an_upgrade_the_listener_accepts_as_a_leaf() {
        let offer = Offer::new(true, true);
        let req = offer.leaf_request("127.0.0.1:4443", "/hub/");
        let (parsed, len) = handshake::parse(&req).unwrap().unwrap();
        assert_eq!(len, req.len());
        assert_eq!(parsed.path, "/hub/leafnode");
        assert_eq!(parsed.kind(), handshake::Kind::Leaf);
        let accepted = handshake::check(&parsed, &handshake::OriginPolicy::default(), false)
            .expect("a valid upgrade");
        assert!(accepted.deflate_offered && accepted.no_masking);
        // The answer to it passes the dialler's own check.
        let ans = handshake::accepted(&accepted, true, &[]);
        let (agreed, used) = offer.check_answer(&ans).unwrap().unwrap();
        assert_eq!(used, ans.len());
        assert_eq!(
            agreed,
            Agreed {
                deflate: true,
                mask: false
            }
        );
        assert_eq!(
            Offer::new(false, false)
                .leaf_request("h:1", "")
                .split(|b| *b == b'\r')
                .next(),
            Some(&b"GET /leafnode HTTP/1.1"[..])
        );
    }

    #[test]
    fn answers_that_are_refused() {
        let offer = Offer::new(true, false);
        assert_eq!(offer.check_answer(b"HTTP/1.1 101 Sw"), Ok(None));
        assert_eq!(
            offer.check_answer(b"HTTP/1.1 404 Not Found\r\n\r\n"),
            Err(DialError::Invalid)
        );
        let wrong_key = "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Accept: AAAA\r\n\r\n";
        assert_eq!(
            offer.check_answer(wrong_key.as_bytes()),
            Err(DialError::Invalid)
        );
        let stateful = answer(&offer, "Sec-WebSocket-Extensions: permessage-deflate\r\n");
        assert_eq!(
            offer.check_answer(stateful.as_bytes()),
            Err(DialError::Compression)
        );
        // No extension in the answer: no compression, and frames stay masked.
        let plain = answer(&offer, "");
        assert_eq!(
            offer.check_answer(plain.as_bytes()).unwrap().unwrap().0,
            Agreed {
                deflate: false,
                mask: true
            }
        );
    }
}
