//! Just enough X.509 to map a client certificate to a user (`verify_and_map`): the
//! subject's attributes in certificate order, and the email, DNS and URI subject
//! alternative names, the fields nats-server's `checkClientTLSCertSubject` reads.
//!
//! rustls has already verified the certificate against the CA when this runs, but the
//! bytes still come from the client: nothing here indexes or unwraps, a malformed
//! certificate is an [`X509Error`] (and the client is simply not mapped).

use std::fmt::Write as _;

/// Why a certificate could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum X509Error {
    #[error("truncated DER element")]
    Truncated,
    #[error("unsupported DER length encoding")]
    Length,
    #[error("unexpected DER tag {found:#04x}, wanted {wanted:#04x}")]
    Tag { found: u8, wanted: u8 },
}

/// One attribute of a subject name (`AttributeTypeAndValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Attribute {
    /// The OID's content bytes (`55 04 03` for CN).
    pub oid: Vec<u8>,
    /// The value when it is one of the string types Go reads as a string; other
    /// types are kept only as `der`.
    pub value: Option<String>,
    /// The value's whole DER element.
    pub der: Vec<u8>,
}

/// What `verify_and_map` and `/connz?auth=1` need from a client certificate.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCert {
    /// The subject's RDNs in certificate order (most significant first), each with its
    /// attributes in certificate order.
    pub subject: Vec<Vec<Attribute>>,
    pub emails: Vec<String>,
    pub dns_names: Vec<String>,
    pub uris: Vec<String>,
    /// Hex SHA-256 of the whole certificate and of its SubjectPublicKeyInfo, as
    /// nats-server's `tls_peer_certs` shows them.
    pub cert_sha256: String,
    pub spki_sha256: String,
}

const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const BOOLEAN: u8 = 0x01;
/// `subjectAltName` (2.5.29.17).
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];

/// One DER element.
struct Tlv<'a> {
    tag: u8,
    content: &'a [u8],
    whole: &'a [u8],
}

/// Takes the next element off `input`.
fn next<'a>(input: &mut &'a [u8]) -> Result<Tlv<'a>, X509Error> {
    let data = *input;
    let (&tag, rest) = data.split_first().ok_or(X509Error::Truncated)?;
    if tag & 0x1f == 0x1f {
        // High tag numbers never occur in the parts of a certificate read here.
        return Err(X509Error::Length);
    }
    let (&first, mut rest) = rest.split_first().ok_or(X509Error::Truncated)?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 {
            return Err(X509Error::Length);
        }
        let (bytes, after) = rest.split_at_checked(n).ok_or(X509Error::Truncated)?;
        rest = after;
        bytes
            .iter()
            .fold(0usize, |acc, &b| (acc << 8) | usize::from(b))
    };
    let (content, after) = rest.split_at_checked(len).ok_or(X509Error::Truncated)?;
    let header = data.len() - rest.len();
    let whole = data.get(..header + len).ok_or(X509Error::Truncated)?;
    *input = after;
    Ok(Tlv {
        tag,
        content,
        whole,
    })
}

/// Takes the next element, which must carry `tag`.
fn expect<'a>(input: &mut &'a [u8], tag: u8) -> Result<Tlv<'a>, X509Error> {
    let t = next(input)?;
    if t.tag == tag {
        Ok(t)
    } else {
        Err(X509Error::Tag {
            found: t.tag,
            wanted: tag,
        })
    }
}

/// A directory string as Go's `encoding/asn1` reads it; `None` for other types.
fn decode_string(tag: u8, content: &[u8]) -> Option<String> {
    match tag {
        // UTF8String, PrintableString, IA5String, NumericString.
        0x0c | 0x13 | 0x16 | 0x12 => String::from_utf8(content.to_vec()).ok(),
        // T61String: Go takes the bytes as they are.
        0x14 => Some(String::from_utf8_lossy(content).into_owned()),
        // BMPString: UTF-16BE, a trailing NUL dropped as Go does.
        0x1e => {
            let content = content.strip_suffix(&[0, 0]).unwrap_or(content);
            if !content.len().is_multiple_of(2) {
                return None;
            }
            let units = content
                .chunks_exact(2)
                .map(|c| u16::from_be_bytes([c[0], c[1]]));
            char::decode_utf16(units)
                .collect::<Result<String, _>>()
                .ok()
        }
        _ => None,
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
            let _ = write!(s, "{b:02x}");
            s
        })
}

fn sha256_hex(bytes: &[u8]) -> String {
    hex(ring::digest::digest(&ring::digest::SHA256, bytes).as_ref())
}

/// Reads a `Name` (the subject) into RDNs of attributes.
fn name(content: &[u8]) -> Result<Vec<Vec<Attribute>>, X509Error> {
    let mut rdns = Vec::new();
    let mut input = content;
    while !input.is_empty() {
        let set = expect(&mut input, SET)?;
        let mut attrs = Vec::new();
        let mut inner = set.content;
        while !inner.is_empty() {
            let atv = expect(&mut inner, SEQUENCE)?;
            let mut fields = atv.content;
            let oid = expect(&mut fields, OID)?;
            let value = next(&mut fields)?;
            attrs.push(Attribute {
                oid: oid.content.to_vec(),
                value: decode_string(value.tag, value.content),
                der: value.whole.to_vec(),
            });
        }
        rdns.push(attrs);
    }
    Ok(rdns)
}

/// Adds the email, DNS and URI names of a `subjectAltName` extension value.
fn subject_alt_names(value: &[u8], cert: &mut PeerCert) -> Result<(), X509Error> {
    let mut input = value;
    let names = expect(&mut input, SEQUENCE)?;
    let mut names = names.content;
    while !names.is_empty() {
        let n = next(&mut names)?;
        let text = || String::from_utf8_lossy(n.content).into_owned();
        match n.tag {
            0x81 => cert.emails.push(text()),
            0x82 => cert.dns_names.push(text()),
            0x86 => cert.uris.push(text()),
            _ => {}
        }
    }
    Ok(())
}

impl PeerCert {
    /// Reads a DER certificate.
    pub fn parse(der: &[u8]) -> Result<Self, X509Error> {
        let mut input = der;
        let cert = expect(&mut input, SEQUENCE)?;
        let mut c = cert.content;
        let tbs = expect(&mut c, SEQUENCE)?;
        let mut t = tbs.content;
        let mut first = next(&mut t)?;
        if first.tag == 0xa0 {
            // Explicit version; the serial number follows.
            first = next(&mut t)?;
        }
        let _serial = first;
        let _signature = expect(&mut t, SEQUENCE)?;
        let _issuer = expect(&mut t, SEQUENCE)?;
        let _validity = expect(&mut t, SEQUENCE)?;
        let subject = expect(&mut t, SEQUENCE)?;
        let spki = expect(&mut t, SEQUENCE)?;
        let mut out = Self {
            subject: name(subject.content)?,
            cert_sha256: sha256_hex(cert.whole),
            spki_sha256: sha256_hex(spki.whole),
            ..Self::default()
        };
        while !t.is_empty() {
            let field = next(&mut t)?;
            if field.tag != 0xa3 {
                // Issuer and subject unique IDs.
                continue;
            }
            let mut ext_wrapper = field.content;
            let exts = expect(&mut ext_wrapper, SEQUENCE)?;
            let mut exts = exts.content;
            while !exts.is_empty() {
                let ext = expect(&mut exts, SEQUENCE)?;
                let mut e = ext.content;
                let oid = expect(&mut e, OID)?;
                let mut value = next(&mut e)?;
                if value.tag == BOOLEAN {
                    value = next(&mut e)?;
                }
                if value.tag != OCTET_STRING {
                    return Err(X509Error::Tag {
                        found: value.tag,
                        wanted: OCTET_STRING,
                    });
                }
                if oid.content == OID_SAN {
                    subject_alt_names(value.content, &mut out)?;
                }
            }
        }
        Ok(out)
    }
}

/// An OID in dotted form (`2.5.4.3`); `None` when its encoding is broken.
pub fn oid_string(oid: &[u8]) -> Option<String> {
    let mut arcs: Vec<u64> = Vec::new();
    let mut acc: u64 = 0;
    for (i, &b) in oid.iter().enumerate() {
        acc = acc.checked_mul(128)?.checked_add(u64::from(b & 0x7f))?;
        if b & 0x80 == 0 {
            if arcs.is_empty() {
                let first = (acc / 40).min(2);
                arcs.push(first);
                arcs.push(acc - first * 40);
            } else {
                arcs.push(acc);
            }
            acc = 0;
        } else if i + 1 == oid.len() {
            return None;
        }
    }
    (!arcs.is_empty()).then(|| {
        arcs.iter()
            .map(u64::to_string)
            .collect::<Vec<_>>()
            .join(".")
    })
}

/// Hex of `bytes`, lower case.
pub fn to_hex(bytes: &[u8]) -> String {
    hex(bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn oids_in_dotted_form() {
        assert_eq!(oid_string(&[0x55, 0x04, 0x03]).as_deref(), Some("2.5.4.3"));
        assert_eq!(
            oid_string(&[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19]).as_deref(),
            Some("0.9.2342.19200300.100.1.25")
        );
        assert_eq!(
            oid_string(&[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01]).as_deref(),
            Some("1.2.840.113549.1.9.1")
        );
        assert_eq!(oid_string(&[0x86]), None);
    }

    #[test]
    fn strings_as_go_reads_them() {
        assert_eq!(decode_string(0x13, b"NATS").as_deref(), Some("NATS"));
        assert_eq!(
            decode_string(0x1e, &[0, b'h', 0, b'i', 0, 0]).as_deref(),
            Some("hi")
        );
        assert_eq!(decode_string(0x02, &[1]), None);
    }

    #[test]
    fn garbage_is_an_error_not_a_panic() {
        for bytes in [
            &[][..],
            &[0x30],
            &[0x30, 0x85, 1, 2, 3, 4, 5],
            &[0x30, 0x82, 0xff],
            &[0x30, 0x03, 0x30, 0x01],
            &[0x30, 0x02, 0x30, 0x00],
        ] {
            assert!(PeerCert::parse(bytes).is_err(), "{bytes:?}");
        }
    }

    proptest::proptest! {
        #[test]
        fn never_panics(bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..300)) {
            let _ = PeerCert::parse(&bytes);
            let mut wrapped = vec![0x30, 0x82];
            wrapped.extend_from_slice(&u16::try_from(bytes.len()).unwrap_or(0).to_be_bytes());
            wrapped.extend_from_slice(&bytes);
            let _ = PeerCert::parse(&wrapped);
        }
    }
}
