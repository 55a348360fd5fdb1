//! Clock and identifiers: Unix nanoseconds as JetStream keeps them, Go's duration text,
//! and nuid-like unique ids for advisories and flow-control subjects.

use std::time::{SystemTime, UNIX_EPOCH};

/// Nanoseconds since the Unix epoch, now.
pub fn now_nanos() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_nanos()).unwrap_or(i64::MAX))
}

/// A time as Go's `time.RFC3339Nano` in UTC.
pub fn rfc3339(ns: i64) -> String {
    crate::api::json::format_time(ns)
}

/// A duration in nanoseconds as Go's `time.Duration.String` writes it (`1m30s`,
/// `250ms`, `0s`), for error texts that quote a configured duration.
pub fn go_duration(ns: i64) -> String {
    if ns == 0 {
        return "0s".to_owned();
    }
    let neg = ns < 0;
    let n = ns.unsigned_abs();
    let mut out = String::new();
    if neg {
        out.push('-');
    }
    if n < 1_000 {
        out.push_str(&format!("{n}ns"));
    } else if n < 1_000_000 {
        out.push_str(&fraction(n, 1_000, "µs"));
    } else if n < 1_000_000_000 {
        out.push_str(&fraction(n, 1_000_000, "ms"));
    } else {
        let total_secs = n / 1_000_000_000;
        let h = total_secs / 3600;
        let m = total_secs / 60 % 60;
        if h > 0 {
            out.push_str(&format!("{h}h"));
        }
        if h > 0 || m > 0 {
            out.push_str(&format!("{m}m"));
        }
        out.push_str(&fraction(n % 60_000_000_000, 1_000_000_000, "s"));
    }
    out
}

fn fraction(n: u64, unit: u64, suffix: &str) -> String {
    let whole = n / unit;
    let frac = n % unit;
    if frac == 0 {
        return format!("{whole}{suffix}");
    }
    let digits = unit.to_string().len() - 1;
    let f = format!("{frac:0digits$}");
    format!("{whole}.{}{suffix}", f.trim_end_matches('0'))
}

/// A random 22-character id (nats-server uses nuids for advisory ids).
pub fn nuid() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..22)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn go_duration_text() {
        assert_eq!(go_duration(0), "0s");
        assert_eq!(go_duration(1_500_000_000), "1.5s");
        assert_eq!(go_duration(90_000_000_000), "1m30s");
        assert_eq!(go_duration(3_600_000_000_000), "1h0m0s");
        assert_eq!(go_duration(250_000_000), "250ms");
        assert_eq!(go_duration(1_000), "1µs");
        assert_eq!(nuid().len(), 22);
    }
}
