//! NATS header blocks as JetStream reads and writes them: `NATS/1.0[ <code>[ <desc>]]\r\n`
//! then `Key: Value\r\n` lines and an empty line. Lookups are case-sensitive first and
//! then case-insensitive, as nats-server's `getHeader` falls back to canonical keys.

use std::fmt::Write as _;

pub const MSG_ID: &str = "Nats-Msg-Id";
pub const EXPECTED_STREAM: &str = "Nats-Expected-Stream";
pub const EXPECTED_LAST_SEQ: &str = "Nats-Expected-Last-Sequence";
pub const EXPECTED_LAST_SUBJ_SEQ: &str = "Nats-Expected-Last-Subject-Sequence";
pub const EXPECTED_LAST_SUBJ_SEQ_SUBJ: &str = "Nats-Expected-Last-Subject-Sequence-Subject";
pub const EXPECTED_LAST_MSG_ID: &str = "Nats-Expected-Last-Msg-Id";
pub const ROLLUP: &str = "Nats-Rollup";
pub const TTL: &str = "Nats-TTL";
pub const STREAM: &str = "Nats-Stream";
pub const SUBJECT: &str = "Nats-Subject";
pub const SEQUENCE: &str = "Nats-Sequence";
pub const TIME_STAMP: &str = "Nats-Time-Stamp";
pub const LAST_SEQUENCE: &str = "Nats-Last-Sequence";
pub const NUM_PENDING: &str = "Nats-Num-Pending";
pub const PENDING_MESSAGES: &str = "Nats-Pending-Messages";
pub const PENDING_BYTES: &str = "Nats-Pending-Bytes";
pub const LAST_CONSUMER: &str = "Nats-Last-Consumer";
pub const LAST_STREAM: &str = "Nats-Last-Stream";
pub const CONSUMER_STALLED: &str = "Nats-Consumer-Stalled";
pub const MARKER_REASON: &str = "Nats-Marker-Reason";
pub const MSG_SIZE: &str = "Nats-Msg-Size";

const PREAMBLE: &str = "NATS/1.0";

/// The value of `key` in a header block, if present (the first one).
pub fn get<'a>(block: &'a [u8], key: &str) -> Option<&'a str> {
    let text = std::str::from_utf8(block).ok()?;
    let mut fallback = None;
    for line in text.split("\r\n").skip(1) {
        let Some((k, v)) = line.split_once(':') else {
            continue;
        };
        let k = k.trim();
        if k == key {
            return Some(v.trim());
        }
        if fallback.is_none() && k.eq_ignore_ascii_case(key) {
            fallback = Some(v.trim());
        }
    }
    fallback
}

/// Every `Key: Value` pair of a block, in order.
pub fn pairs(block: &[u8]) -> Vec<(String, String)> {
    let Ok(text) = std::str::from_utf8(block) else {
        return Vec::new();
    };
    text.split("\r\n")
        .skip(1)
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect()
}

/// A header block under construction.
#[derive(Debug, Default, Clone)]
pub struct Builder {
    buf: String,
}

impl Builder {
    /// A plain block (`NATS/1.0`).
    pub fn new() -> Self {
        Self::status_line(None, "")
    }

    /// A status block (`NATS/1.0 408 Request Timeout`).
    pub fn status(code: u16, description: &str) -> Self {
        Self::status_line(Some(code), description)
    }

    fn status_line(code: Option<u16>, description: &str) -> Self {
        let mut buf = String::from(PREAMBLE);
        if let Some(code) = code {
            let _ = write!(buf, " {code}");
            if !description.is_empty() {
                let _ = write!(buf, " {description}");
            }
        }
        buf.push_str("\r\n");
        Self { buf }
    }

    /// Starts from an existing block (its status line and pairs), to add to it.
    pub fn from_block(block: &[u8]) -> Self {
        match std::str::from_utf8(block) {
            Ok(t) if t.starts_with(PREAMBLE) && t.ends_with("\r\n\r\n") => Self {
                buf: t[..t.len() - 2].to_owned(),
            },
            _ => Self::new(),
        }
    }

    pub fn add(mut self, key: &str, value: impl std::fmt::Display) -> Self {
        let _ = write!(self.buf, "{key}: {value}\r\n");
        self
    }

    pub fn build(mut self) -> Vec<u8> {
        self.buf.push_str("\r\n");
        self.buf.into_bytes()
    }
}

/// A block with every pair of `block` except those whose key is in `drop`
/// (case-insensitive), keeping the status line.
pub fn without(block: &[u8], drop: &[&str]) -> Vec<u8> {
    let Ok(text) = std::str::from_utf8(block) else {
        return Vec::new();
    };
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or(PREAMBLE);
    let mut out = format!("{first}\r\n");
    let mut kept = 0;
    for line in lines {
        let Some((k, _)) = line.split_once(':') else {
            continue;
        };
        if drop.iter().any(|d| d.eq_ignore_ascii_case(k.trim())) {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
        kept += 1;
    }
    if kept == 0 && first == PREAMBLE {
        return Vec::new();
    }
    out.push_str("\r\n");
    out.into_bytes()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lookups_and_building() {
        let b = b"NATS/1.0\r\nNats-Msg-Id: abc\r\nnats-ttl: 5s\r\n\r\n";
        assert_eq!(get(b, MSG_ID), Some("abc"));
        assert_eq!(get(b, TTL), Some("5s"));
        assert_eq!(get(b, ROLLUP), None);
        let s = Builder::status(408, "Request Timeout")
            .add(PENDING_MESSAGES, 3)
            .build();
        assert_eq!(
            s,
            b"NATS/1.0 408 Request Timeout\r\nNats-Pending-Messages: 3\r\n\r\n"
        );
        let more = Builder::from_block(b).add(STREAM, "S").build();
        assert_eq!(get(&more, STREAM), Some("S"));
        assert_eq!(get(&more, MSG_ID), Some("abc"));
        assert_eq!(
            without(b, &[MSG_ID]),
            b"NATS/1.0\r\nnats-ttl: 5s\r\n\r\n".to_vec()
        );
        assert!(without(b, &[MSG_ID, TTL]).is_empty());
    }
}
