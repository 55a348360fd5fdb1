//! The value formats of nats-server's monitoring JSON: Go's `time.Time` (RFC 3339 with
//! nanoseconds, trailing zeros trimmed), `myUptime` durations (`1d2h3m4s`), and Go's
//! float encoding (whole numbers without a decimal point).

use std::fmt::Write as _;
use std::time::{Duration, SystemTime};

use serde::{Serialize, Serializer};

/// A UTC timestamp serialised as Go's `time.Time` JSON (`2026-11-25T01:17:08.4728119Z`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct GoTime(pub u64);

impl GoTime {
    pub fn of(t: SystemTime) -> Self {
        Self(crate::server::client::unix_nanos(t))
    }

    pub fn now() -> Self {
        Self::of(SystemTime::now())
    }
}

impl Serialize for GoTime {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&rfc3339_nanos(self.0))
    }
}

/// Formats nanoseconds since the Unix epoch like Go's `time.RFC3339Nano` in UTC.
pub fn rfc3339_nanos(ns: u64) -> String {
    let secs = ns / 1_000_000_000;
    let frac = ns % 1_000_000_000;
    let days = i64::try_from(secs / 86_400).unwrap_or(0);
    let rem = secs % 86_400;
    let (y, m, d) = civil_from_days(days);
    let mut out = format!(
        "{y:04}-{m:02}-{d:02}T{:02}:{:02}:{:02}",
        rem / 3600,
        rem / 60 % 60,
        rem % 60
    );
    if frac > 0 {
        let digits = format!("{frac:09}");
        let _ = write!(out, ".{}", digits.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Days since 1970-01-01 to a proleptic Gregorian (year, month, day).
pub(crate) fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = u32::try_from(doy - (153 * mp + 2) / 5 + 1).unwrap_or(1);
    let m = u32::try_from(if mp < 10 { mp + 3 } else { mp - 9 }).unwrap_or(1);
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// nats-server's `myUptime`: whole seconds, as `5s`, `3m5s`, `2h3m5s`, `1d2h3m5s`,
/// `1y1d2h3m5s`.
pub fn uptime(d: Duration) -> String {
    let tsecs = d.as_secs();
    let tmins = tsecs / 60;
    let thrs = tmins / 60;
    let tdays = thrs / 24;
    let tyrs = tdays / 365;
    if tyrs > 0 {
        format!(
            "{tyrs}y{}d{}h{}m{}s",
            tdays % 365,
            thrs % 24,
            tmins % 60,
            tsecs % 60
        )
    } else if tdays > 0 {
        format!("{tdays}d{}h{}m{}s", thrs % 24, tmins % 60, tsecs % 60)
    } else if thrs > 0 {
        format!("{thrs}h{}m{}s", tmins % 60, tsecs % 60)
    } else if tmins > 0 {
        format!("{tmins}m{}s", tsecs % 60)
    } else {
        format!("{tsecs}s")
    }
}

/// The time between two Unix-nanosecond instants (zero when `to` is earlier).
pub fn between(from: u64, to: u64) -> Duration {
    Duration::from_nanos(to.saturating_sub(from))
}

/// A float serialised as Go's `encoding/json` does: `2` rather than `2.0`.
#[derive(Debug, Clone, Copy, PartialEq, PartialOrd, Default)]
pub struct GoFloat(pub f64);

impl Serialize for GoFloat {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let f = self.0;
        if f.is_finite() && f.fract() == 0.0 && f.abs() < 1e15 {
            // The guard above keeps the value exactly representable as an i64.
            #[allow(clippy::cast_possible_truncation)]
            s.serialize_i64(f as i64)
        } else {
            s.serialize_f64(f)
        }
    }
}

/// A duration in Go's JSON form for `time.Duration`: integer nanoseconds.
pub fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A duration as Go's float seconds (`auth_timeout`, `tls_timeout`).
pub fn seconds(d: Duration) -> GoFloat {
    GoFloat(d.as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rfc3339_trims_trailing_zeros() {
        assert_eq!(rfc3339_nanos(0), "1970-01-01T00:00:00Z");
        assert_eq!(
            rfc3339_nanos(1_795_569_028_472_811_900),
            "2026-11-25T01:10:28.4728119Z"
        );
        assert_eq!(
            rfc3339_nanos(951_782_400_000_000_001),
            "2000-02-29T00:00:00.000000001Z"
        );
    }

    #[test]
    fn uptime_like_nats_server() {
        assert_eq!(uptime(Duration::from_millis(999)), "0s");
        assert_eq!(uptime(Duration::from_secs(65)), "1m5s");
        assert_eq!(uptime(Duration::from_secs(3 * 3600 + 5)), "3h0m5s");
        assert_eq!(uptime(Duration::from_secs(86_400 + 61)), "1d0h1m1s");
        assert_eq!(uptime(Duration::from_secs(366 * 86_400)), "1y1d0h0m0s");
    }

    #[test]
    fn go_floats() {
        let j = |f| serde_json::to_string(&GoFloat(f)).unwrap_or_default();
        assert_eq!(j(2.0), "2");
        assert_eq!(j(0.0), "0");
        assert_eq!(j(0.5), "0.5");
        assert_eq!(j(0.222_222_222_222_222_2), "0.2222222222222222");
    }
}
