//! Go's duration syntax (`time.ParseDuration` / `Duration.String`), which nats-server uses
//! for every duration option (`"2m"`, `"1h30m"`, `"1.5s"`, `"500ms"`) and in its messages
//! (`2m0s`).

use std::time::Duration;

const NS: u64 = 1;
const US: u64 = 1_000;
const MS: u64 = 1_000_000;
const S: u64 = 1_000_000_000;
const MIN: u64 = 60 * S;
const HOUR: u64 = 60 * MIN;
const LIMIT: u64 = 1 << 63;

fn quote(s: &str) -> String {
    format!("{s:?}")
}

/// Parses a Go duration string into signed nanoseconds. Errors read like Go's
/// (`time: invalid duration "x"`, `time: missing unit in duration "1"`,
/// `time: unknown unit "d" in duration "1d"`).
pub fn parse_go_duration(orig: &str) -> Result<i64, String> {
    let invalid = || format!("time: invalid duration {}", quote(orig));
    let mut s = orig;
    let mut neg = false;
    if let Some(c) = s.chars().next()
        && (c == '-' || c == '+')
    {
        neg = c == '-';
        s = &s[1..];
    }
    if s == "0" {
        return Ok(0);
    }
    if s.is_empty() {
        return Err(invalid());
    }
    let mut total: u64 = 0;
    while !s.is_empty() {
        let b = s.as_bytes();
        if !(b[0] == b'.' || b[0].is_ascii_digit()) {
            return Err(invalid());
        }
        // Integer part.
        let int_len = b.iter().take_while(|c| c.is_ascii_digit()).count();
        let mut v: u64 = 0;
        for &c in &b[..int_len] {
            if v > LIMIT / 10 {
                return Err(invalid());
            }
            v = v * 10 + u64::from(c - b'0');
            if v > LIMIT {
                return Err(invalid());
            }
        }
        let pre = int_len > 0;
        s = &s[int_len..];
        // Fraction.
        let mut f: u64 = 0;
        let mut scale = 1.0f64;
        let mut post = false;
        if s.starts_with('.') {
            s = &s[1..];
            let fb = s.as_bytes();
            let frac_len = fb.iter().take_while(|c| c.is_ascii_digit()).count();
            let mut overflow = false;
            for &c in &fb[..frac_len] {
                if overflow {
                    continue;
                }
                if f > (LIMIT - 1) / 10 {
                    overflow = true;
                    continue;
                }
                let y = f * 10 + u64::from(c - b'0');
                if y > LIMIT {
                    overflow = true;
                    continue;
                }
                f = y;
                scale *= 10.0;
            }
            post = frac_len > 0;
            s = &s[frac_len..];
        }
        if !pre && !post {
            return Err(invalid());
        }
        // Unit: everything up to the next digit or '.'.
        let unit_len = s
            .char_indices()
            .find(|(_, c)| *c == '.' || c.is_ascii_digit())
            .map_or(s.len(), |(i, _)| i);
        if unit_len == 0 {
            return Err(format!("time: missing unit in duration {}", quote(orig)));
        }
        let u = &s[..unit_len];
        s = &s[unit_len..];
        let unit = match u {
            "ns" => NS,
            "us" | "\u{b5}s" | "\u{3bc}s" => US,
            "ms" => MS,
            "s" => S,
            "m" => MIN,
            "h" => HOUR,
            _ => {
                return Err(format!(
                    "time: unknown unit {} in duration {}",
                    quote(u),
                    quote(orig)
                ));
            }
        };
        if v > LIMIT / unit {
            return Err(invalid());
        }
        v *= unit;
        if f > 0 {
            // Go computes the fraction in float64 and truncates.
            let frac = (f as f64) * (unit as f64 / scale);
            v = v.saturating_add(frac as u64);
            if v > LIMIT {
                return Err(invalid());
            }
        }
        total = total.saturating_add(v);
        if total > LIMIT {
            return Err(invalid());
        }
    }
    if neg {
        // total <= 2^63, so the negation fits (2^63 itself is i64::MIN).
        return Ok(if total == LIMIT {
            i64::MIN
        } else {
            -i64::try_from(total).map_err(|_| invalid())?
        });
    }
    i64::try_from(total).map_err(|_| invalid())
}

/// Parses a Go duration that must not be negative.
pub fn parse_duration(s: &str) -> Result<Duration, String> {
    let ns = parse_go_duration(s)?;
    u64::try_from(ns)
        .map(Duration::from_nanos)
        .map_err(|_| format!("time: negative duration {}", quote(s)))
}

/// Formats like Go's `Duration.String()`: `2m0s`, `1h0m0s`, `1.5s`, `500ms`, `0s`.
pub fn format_go_duration(d: Duration) -> String {
    let ns = u64::try_from(d.as_nanos()).unwrap_or(u64::MAX);
    format_nanos(ns, false)
}

/// Formats signed nanoseconds like Go's `Duration.String()`.
pub fn format_go_nanos(ns: i64) -> String {
    format_nanos(ns.unsigned_abs(), ns < 0)
}

fn frac(v: u64, prec: u32) -> (String, u64) {
    let mut digits = String::new();
    let mut v = v;
    let mut printed = false;
    for _ in 0..prec {
        let digit = v % 10;
        printed = printed || digit != 0;
        if printed {
            digits.insert(0, char::from(b'0' + (digit as u8)));
        }
        v /= 10;
    }
    if printed {
        digits.insert(0, '.');
    }
    (digits, v)
}

fn format_nanos(u: u64, neg: bool) -> String {
    let mut out = String::new();
    if u < S {
        let (unit, prec) = match u {
            0 => return "0s".to_string(),
            u if u < US => ("ns", 0),
            u if u < MS => ("\u{b5}s", 3),
            _ => ("ms", 6),
        };
        let (f, int) = frac(u, prec);
        out.push_str(&int.to_string());
        out.push_str(&f);
        out.push_str(unit);
    } else {
        let (f, secs) = frac(u, 9);
        let mins = secs / 60;
        let s = format!("{}{}s", secs % 60, f);
        if mins > 0 {
            let hours = mins / 60;
            if hours > 0 {
                out.push_str(&format!("{hours}h"));
            }
            out.push_str(&format!("{}m", mins % 60));
        }
        out.push_str(&s);
    }
    if neg {
        out.insert(0, '-');
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_go_durations() {
        assert_eq!(parse_go_duration("2m"), Ok(120 * S as i64));
        assert_eq!(parse_go_duration("1h30m"), Ok(5400 * S as i64));
        assert_eq!(parse_go_duration("500ms"), Ok(500 * MS as i64));
        assert_eq!(parse_go_duration("1.5s"), Ok(1500 * MS as i64));
        assert_eq!(parse_go_duration(".5s"), Ok(500 * MS as i64));
        assert_eq!(parse_go_duration("1µs"), Ok(1000));
        assert_eq!(parse_go_duration("-1s"), Ok(-(S as i64)));
        assert_eq!(parse_go_duration("+1s"), Ok(S as i64));
        assert_eq!(parse_go_duration("0"), Ok(0));
        assert_eq!(parse_go_duration("1h2m3s4ms5us6ns"), Ok(3_723_004_005_006));
    }

    #[test]
    fn go_error_texts() {
        assert_eq!(
            parse_go_duration("1"),
            Err("time: missing unit in duration \"1\"".into())
        );
        assert_eq!(
            parse_go_duration("1d"),
            Err("time: unknown unit \"d\" in duration \"1d\"".into())
        );
        assert_eq!(
            parse_go_duration(""),
            Err("time: invalid duration \"\"".into())
        );
        assert_eq!(
            parse_go_duration("."),
            Err("time: invalid duration \".\"".into())
        );
        assert!(parse_go_duration("9999999999999999999h").is_err());
    }

    #[test]
    fn formats_like_go() {
        assert_eq!(format_go_duration(Duration::from_secs(120)), "2m0s");
        assert_eq!(format_go_duration(Duration::from_secs(3600)), "1h0m0s");
        assert_eq!(format_go_duration(Duration::from_secs(10)), "10s");
        assert_eq!(format_go_duration(Duration::from_millis(1500)), "1.5s");
        assert_eq!(format_go_duration(Duration::from_millis(500)), "500ms");
        assert_eq!(format_go_duration(Duration::from_micros(1)), "1µs");
        assert_eq!(format_go_duration(Duration::from_nanos(5)), "5ns");
        assert_eq!(format_go_duration(Duration::ZERO), "0s");
        assert_eq!(format_go_nanos(-1_500_000_000), "-1.5s");
    }
}
