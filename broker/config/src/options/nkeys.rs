//! Just enough of the NATS nkey format to check keys in a config the way nats-server does
//! (`nkeys.IsValidPublicUserKey` and friends): base32 text whose decoded bytes are a prefix
//! byte, a 32-byte key and a CRC-16 (XMODEM) checksum.

/// Prefix bytes (before base32) of the key kinds a config can name.
pub(crate) const PREFIX_OPERATOR: u8 = 14 << 3;
pub(crate) const PREFIX_ACCOUNT: u8 = 0;
pub(crate) const PREFIX_USER: u8 = 20 << 3;
pub(crate) const PREFIX_CURVE: u8 = 23 << 3;
const PREFIX_SEED: u8 = 18 << 3;
const PREFIX_SERVER: u8 = 13 << 3;
const PREFIX_CLUSTER: u8 = 2 << 3;

fn base32_decode(s: &str) -> Option<Vec<u8>> {
    let mut out = Vec::with_capacity(s.len() * 5 / 8);
    let mut buf: u32 = 0;
    let mut bits = 0;
    for c in s.bytes() {
        let v = match c {
            b'A'..=b'Z' => c - b'A',
            b'2'..=b'7' => c - b'2' + 26,
            _ => return None,
        };
        buf = (buf << 5) | u32::from(v);
        bits += 5;
        if bits >= 8 {
            bits -= 8;
            out.push(((buf >> bits) & 0xff) as u8);
        }
    }
    Some(out)
}

fn crc16(data: &[u8]) -> u16 {
    let mut crc: u16 = 0;
    for &b in data {
        crc ^= u16::from(b) << 8;
        for _ in 0..8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
        }
    }
    crc
}

/// Decodes and checksums; returns the payload without the CRC.
fn decode_checked(s: &str) -> Option<Vec<u8>> {
    let raw = base32_decode(s)?;
    if raw.len() < 3 {
        return None;
    }
    let (payload, crc) = raw.split_at(raw.len() - 2);
    let want = u16::from_le_bytes([crc[0], crc[1]]);
    (crc16(payload) == want).then(|| payload.to_vec())
}

/// Whether `s` is a valid public key with the given prefix byte.
pub(crate) fn is_valid_public_key(s: &str, prefix: u8) -> bool {
    matches!(decode_checked(s), Some(p) if p.len() == 33 && p[0] == prefix)
}

/// Whether `s` is a valid public key of any kind (nats-server's `nkeys.IsValidPublicKey`).
pub(crate) fn is_valid_public_key_any(s: &str) -> bool {
    [
        PREFIX_OPERATOR,
        PREFIX_ACCOUNT,
        PREFIX_USER,
        PREFIX_CURVE,
        PREFIX_SERVER,
        PREFIX_CLUSTER,
    ]
    .iter()
    .any(|p| is_valid_public_key(s, *p))
}

/// The key kind prefix of a seed (`SU...` → user), as `nkeys.DecodeSeed` reports it.
pub(crate) fn seed_prefix(s: &str) -> Option<u8> {
    let p = decode_checked(s)?;
    if p.len() != 34 {
        return None;
    }
    let b1 = p[0] & 0xf8;
    let b2 = ((p[0] & 0x07) << 5) | ((p[1] & 0xf8) >> 3);
    (b1 == PREFIX_SEED).then_some(b2)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    fn base32_encode(data: &[u8]) -> String {
        const ALPHA: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
        let mut out = String::new();
        let mut buf: u32 = 0;
        let mut bits = 0;
        for &b in data {
            buf = (buf << 8) | u32::from(b);
            bits += 8;
            while bits >= 5 {
                bits -= 5;
                out.push(char::from(ALPHA[((buf >> bits) & 31) as usize]));
            }
        }
        if bits > 0 {
            out.push(char::from(ALPHA[((buf << (5 - bits)) & 31) as usize]));
        }
        out
    }

    /// A well-formed public key of the given kind (for tests).
    pub(crate) fn make_public_key(prefix: u8, fill: u8) -> String {
        let mut raw = vec![prefix];
        raw.extend(std::iter::repeat_n(fill, 32));
        let crc = crc16(&raw);
        raw.extend_from_slice(&crc.to_le_bytes());
        base32_encode(&raw)
    }

    /// A well-formed seed of the given kind (for tests).
    pub(crate) fn make_seed(prefix: u8, fill: u8) -> String {
        let mut raw = vec![PREFIX_SEED | (prefix >> 5), (prefix & 31) << 3];
        raw.extend(std::iter::repeat_n(fill, 32));
        let crc = crc16(&raw);
        raw.extend_from_slice(&crc.to_le_bytes());
        base32_encode(&raw)
    }

    #[test]
    fn round_trips_and_prefixes() {
        let u = make_public_key(PREFIX_USER, 7);
        assert!(u.starts_with('U'));
        assert_eq!(u.len(), 56);
        assert!(is_valid_public_key(&u, PREFIX_USER));
        assert!(!is_valid_public_key(&u, PREFIX_ACCOUNT));
        let a = make_public_key(PREFIX_ACCOUNT, 1);
        assert!(a.starts_with('A'));
        assert!(is_valid_public_key_any(&a));
        let mut broken = u.clone();
        broken.replace_range(10..11, if &u[10..11] == "A" { "B" } else { "A" });
        assert!(!is_valid_public_key(&broken, PREFIX_USER));
        let seed = make_seed(PREFIX_USER, 3);
        assert!(seed.starts_with("SU"));
        assert_eq!(seed_prefix(&seed), Some(PREFIX_USER));
        assert_eq!(seed_prefix(&u), None);
    }

    #[test]
    fn known_key_from_the_nats_docs() {
        // The user key used throughout the NATS documentation examples.
        assert!(is_valid_public_key(
            "UDXU4RCSJNZOIQHZNWXHXORDPRTGNJAHAHFRGZNEEJCPQTT2M7NLCNF4",
            PREFIX_USER
        ));
    }
}
