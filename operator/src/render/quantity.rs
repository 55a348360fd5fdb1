//! Kubernetes quantities (`10Gi`, `500M`, `1.5Gi`) as byte counts, for the JetStream limits
//! that nats-server wants in bytes.
//!
//! The schema already refuses anything that is not a quantity (CEL `isQuantity`); this
//! parser covers the subset that makes sense for sizes and refuses the rest (milli units,
//! exponents, negative sizes) with a message rather than rounding silently.

/// Parses a quantity into bytes, rounding fractional results up (a limit never shrinks).
pub fn bytes(q: &str) -> Result<i64, String> {
    let q = q.trim();
    let split = q
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(q.len());
    let (num, suffix) = q.split_at(split);
    if num.is_empty() {
        return Err(format!("{q:?} is not a quantity"));
    }
    let mult: u128 = match suffix {
        "" => 1,
        "k" => 1_000,
        "M" => 1_000_000,
        "G" => 1_000_000_000,
        "T" => 1_000_000_000_000,
        "P" => 1_000_000_000_000_000,
        "E" => 1_000_000_000_000_000_000,
        "Ki" => 1 << 10,
        "Mi" => 1 << 20,
        "Gi" => 1 << 30,
        "Ti" => 1 << 40,
        "Pi" => 1 << 50,
        "Ei" => 1 << 60,
        other => return Err(format!("{q:?}: unit {other:?} is not a byte size")),
    };
    let (int_part, frac_part) = match num.split_once('.') {
        Some((i, f)) => (i, f),
        None => (num, ""),
    };
    if int_part.is_empty() && frac_part.is_empty() || frac_part.contains('.') {
        return Err(format!("{q:?} is not a quantity"));
    }
    let parse = |s: &str| -> Result<u128, String> {
        if s.is_empty() {
            Ok(0)
        } else {
            s.parse::<u128>().map_err(|_| format!("{q:?} is too large"))
        }
    };
    let int = parse(int_part)?;
    let frac = parse(frac_part)?;
    let scale = 10u128
        .checked_pow(u32::try_from(frac_part.len()).map_err(|_| format!("{q:?} is too long"))?)
        .ok_or_else(|| format!("{q:?} has too many decimals"))?;
    let total = int
        .checked_mul(mult)
        .and_then(|i| i.checked_add((frac * mult).div_ceil(scale)))
        .ok_or_else(|| format!("{q:?} is too large"))?;
    i64::try_from(total).map_err(|_| format!("{q:?} is too large"))
}

#[cfg(test)]
mod tests {
    use super::bytes;

    #[test]
    fn binary_and_decimal_units() {
        assert_eq!(bytes("10Gi"), Ok(10 * (1 << 30)));
        assert_eq!(bytes("1Mi"), Ok(1 << 20));
        assert_eq!(bytes("500M"), Ok(500_000_000));
        assert_eq!(bytes("1k"), Ok(1000));
        assert_eq!(bytes("1024"), Ok(1024));
        assert_eq!(bytes("1.5Gi"), Ok(3 * (1 << 29)));
        assert_eq!(bytes("0.1"), Ok(1), "fractions round up");
    }

    #[test]
    fn refuses_non_sizes() {
        assert!(bytes("100m").is_err(), "milli units are not bytes");
        assert!(bytes("Gi").is_err());
        assert!(bytes("1e3").is_err());
        assert!(bytes("-1Gi").is_err());
        assert!(bytes("99999999Ei").is_err());
        assert!(bytes("1.2.3").is_err());
    }
}
