//! W3C Trace Context in NATS headers: finding a message's `traceparent` and rewriting its
//! parent id, so the copy a subscriber receives names the broker's span as its parent.
//!
//! Header keys are matched case-insensitively (NATS keeps the case the publisher used).
//! Only the version-00 form `00-<32 hex trace id>-<16 hex parent id>-<2 hex flags>` is
//! understood; anything else is left alone, as the specification asks.

/// A parsed `traceparent`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TraceParent {
    pub trace_id: [u8; 16],
    pub parent_id: [u8; 8],
    pub flags: u8,
    /// Where the 16 hex digits of the parent id sit in the header block.
    parent_at: usize,
}

impl TraceParent {
    pub fn sampled(&self) -> bool {
        self.flags & 1 == 1
    }
}

/// Finds and parses the `traceparent` header in a NATS header block
/// (`NATS/1.0\r\nKey: Value\r\n...\r\n\r\n`).
pub fn find(header: &[u8]) -> Option<TraceParent> {
    let mut offset = 0;
    for line in header.split(|&b| b == b'\n') {
        let start = offset;
        offset += line.len() + 1;
        let Some(colon) = line.iter().position(|&b| b == b':') else {
            continue;
        };
        if !line[..colon].eq_ignore_ascii_case(b"traceparent") {
            continue;
        }
        let value = &line[colon + 1..];
        let lead = value
            .iter()
            .take_while(|b| **b == b' ' || **b == b'\t')
            .count();
        let value = value[lead..].strip_suffix(b"\r").unwrap_or(&value[lead..]);
        return parse(value, start + colon + 1 + lead);
    }
    None
}

fn parse(v: &[u8], at: usize) -> Option<TraceParent> {
    if v.len() != 55 || &v[..3] != b"00-" || v[35] != b'-' || v[52] != b'-' {
        return None;
    }
    let mut trace_id = [0u8; 16];
    let mut parent_id = [0u8; 8];
    let mut flags = [0u8; 1];
    hex_into(&v[3..35], &mut trace_id)?;
    hex_into(&v[36..52], &mut parent_id)?;
    hex_into(&v[53..55], &mut flags)?;
    if trace_id == [0; 16] || parent_id == [0; 8] {
        return None;
    }
    Some(TraceParent {
        trace_id,
        parent_id,
        flags: flags[0],
        parent_at: at + 36,
    })
}

fn hex_into(src: &[u8], dst: &mut [u8]) -> Option<()> {
    for (i, pair) in src.chunks_exact(2).enumerate() {
        let hi = hex(pair[0])?;
        let lo = hex(pair[1])?;
        *dst.get_mut(i)? = hi << 4 | lo;
    }
    Some(())
}

fn hex(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        _ => None,
    }
}

/// A copy of `msg` (header block and payload) whose `traceparent` names `span_id` as the
/// parent. The length does not change, so the HMSG sizes stay as published.
pub fn with_parent(msg: &[u8], tp: &TraceParent, span_id: [u8; 8]) -> Vec<u8> {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut out = msg.to_vec();
    for (i, b) in span_id.iter().enumerate() {
        let at = tp.parent_at + 2 * i;
        if let Some(slot) = out.get_mut(at..at + 2) {
            slot[0] = DIGITS[usize::from(b >> 4)];
            slot[1] = DIGITS[usize::from(b & 0xf)];
        }
    }
    out
}

/// Formats a version-00 `traceparent` value.
pub fn format(trace_id: [u8; 16], span_id: [u8; 8], flags: u8) -> String {
    use std::fmt::Write as _;
    let mut s = String::with_capacity(55);
    s.push_str("00-");
    for b in trace_id {
        let _ = write!(s, "{b:02x}");
    }
    s.push('-');
    for b in span_id {
        let _ = write!(s, "{b:02x}");
    }
    let _ = write!(s, "-{flags:02x}");
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    const TP: &str = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    #[test]
    fn finds_and_rewrites() {
        let hdr = format!("NATS/1.0\r\nFoo: bar\r\nTraceParent:  {TP}\r\n\r\n");
        let msg = format!("{hdr}payload");
        let tp = find(hdr.as_bytes()).expect("traceparent");
        assert!(tp.sampled());
        assert_eq!(format(tp.trace_id, tp.parent_id, tp.flags), TP);
        let out = with_parent(msg.as_bytes(), &tp, [0xab; 8]);
        let text = String::from_utf8(out).expect("utf8");
        assert_eq!(text.len(), msg.len());
        assert!(
            text.contains(
                "TraceParent:  00-4bf92f3577b34da6a3ce929d0e0e4736-abababababababab-01\r\n"
            )
        );
        assert!(text.ends_with("payload"));
    }

    #[test]
    fn rejects_malformed() {
        for bad in [
            "01-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
            "00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01",
            "00-00000000000000000000000000000000-00f067aa0ba902b7-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-0000000000000000-01",
            "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7",
            "garbage",
        ] {
            let hdr = format!("NATS/1.0\r\ntraceparent: {bad}\r\n\r\n");
            assert_eq!(find(hdr.as_bytes()), None, "{bad}");
        }
        assert_eq!(find(b"NATS/1.0\r\nX: y\r\n\r\n"), None);
    }
}
