//! Distinguished names, as nats-server compares a client certificate's subject with user
//! names under `verify_and_map`. Two forms are involved, and both are reproduced here
//! because users write whichever one nats-server's documentation showed them:
//!
//! - the string Go's `pkix.Name.ToRDNSequence().String()` makes (RFC 2253 order, only
//!   the nine attributes Go names, values of one type gathered into one multi-valued
//!   RDN such as `OU=a+OU=b`), looked up literally, optionally followed by the `DC=`
//!   components;
//! - a parsed DN (nats-server's `internal/ldap`, from go-ldap) matched attribute by
//!   attribute, first RDN by RDN in order, then with the RDNs in any order.

use crate::x509::{Attribute, oid_string, to_hex};

/// Why a user name is not a DN; such users are skipped by the DN match.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DnError {
    #[error("got corrupted escaped character")]
    Escape,
    #[error("failed to decode escaped character")]
    Hex,
    #[error("unsupported BER encoding")]
    Ber,
    #[error("incomplete type, value pair")]
    Incomplete,
    #[error("DN ended with incomplete type, value pair")]
    Trailing,
}

/// The attribute names Go's `crypto/x509/pkix` knows, by OID (2.5.4.x).
fn go_name(oid: &[u8]) -> Option<&'static str> {
    match oid {
        [0x55, 0x04, 0x03] => Some("CN"),
        [0x55, 0x04, 0x05] => Some("SERIALNUMBER"),
        [0x55, 0x04, 0x06] => Some("C"),
        [0x55, 0x04, 0x07] => Some("L"),
        [0x55, 0x04, 0x08] => Some("ST"),
        [0x55, 0x04, 0x09] => Some("STREET"),
        [0x55, 0x04, 0x0a] => Some("O"),
        [0x55, 0x04, 0x0b] => Some("OU"),
        [0x55, 0x04, 0x11] => Some("POSTALCODE"),
        _ => None,
    }
}

/// `domainComponent` (0.9.2342.19200300.100.1.25).
const OID_DC: &[u8] = &[0x09, 0x92, 0x26, 0x89, 0x93, 0xf2, 0x2c, 0x64, 0x01, 0x19];

/// The names nats-server's `internal/ldap` knows: Go's nine and DC.
fn ldap_name(oid: &[u8]) -> Option<&'static str> {
    go_name(oid).or((oid == OID_DC).then_some("DC"))
}

/// Escapes a value as Go's `RDNSequence.String` does (RFC 2253 section 2.4).
fn escape(value: &str, out: &mut String) {
    let last = value.len().saturating_sub(1);
    for (k, c) in value.char_indices() {
        let esc = match c {
            ',' | '+' | '"' | '\\' | '<' | '>' | ';' => true,
            ' ' => k == 0 || k == last,
            '#' => k == 0,
            _ => false,
        };
        if esc {
            out.push('\\');
        }
        out.push(c);
    }
}

/// The subject as Go's `pkix.Name` holds it after parsing: the nine named attribute
/// types (CN and SERIALNUMBER keep only their last value), in `ToRDNSequence` order.
fn named_rdns(subject: &[Vec<Attribute>]) -> Vec<(&'static str, Vec<&str>)> {
    // C, ST, L, STREET, POSTALCODE, O, OU, then CN, SERIALNUMBER.
    const ORDER: [u8; 9] = [0x06, 0x08, 0x07, 0x09, 0x11, 0x0a, 0x0b, 0x03, 0x05];
    let mut rdns = Vec::new();
    for t in ORDER {
        let oid = [0x55, 0x04, t];
        let values: Vec<&str> = subject
            .iter()
            .flatten()
            .filter(|a| a.oid == oid)
            .filter_map(|a| a.value.as_deref())
            .collect();
        let values = match t {
            // Single-valued in pkix.Name: the last one wins, and an empty one is left out.
            0x03 | 0x05 => values
                .last()
                .filter(|v| !v.is_empty())
                .map(|v| vec![*v])
                .unwrap_or_default(),
            _ => values,
        };
        if let (false, Some(name)) = (values.is_empty(), go_name(&oid)) {
            rdns.push((name, values));
        }
    }
    rdns
}

fn push_rdn(out: &mut String, name: &str, values: &[&str]) {
    if !out.is_empty() {
        out.push(',');
    }
    for (j, v) in values.iter().enumerate() {
        if j > 0 {
            out.push('+');
        }
        out.push_str(name);
        out.push('=');
        escape(v, out);
    }
}

/// Go's `cert.Subject.ToRDNSequence().String()`, e.g.
/// `CN=example.com,OU=NATS.io,O=Synadia,L=Los Angeles,ST=CA,C=US`.
pub fn rdn_sequence_string(subject: &[Vec<Attribute>]) -> String {
    let mut out = String::new();
    for (name, values) in named_rdns(subject).iter().rev() {
        push_rdn(&mut out, name, values);
    }
    out
}

/// Go's `cert.Subject.String()` (what `/connz` shows in `tls_peer_certs`): the named
/// attributes as above, then every other attribute, last first, as `OID=#<DER hex>`.
pub fn name_string(subject: &[Vec<Attribute>]) -> String {
    let mut out = rdn_sequence_string(subject);
    let others = subject
        .iter()
        .flatten()
        .filter(|a| go_name(&a.oid).is_none());
    for a in others.collect::<Vec<_>>().into_iter().rev() {
        if !out.is_empty() {
            out.push(',');
        }
        out.push_str(&oid_string(&a.oid).unwrap_or_default());
        out.push_str("=#");
        let der = a.value.as_deref().map_or_else(|| a.der.clone(), go_marshal);
        out.push_str(&to_hex(&der));
    }
    out
}

/// How Go's `asn1.Marshal` encodes a string: PrintableString when every character is
/// allowed there (but `*` and `&`), else UTF8String.
fn go_marshal(s: &str) -> Vec<u8> {
    let printable = s
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b" '()+,-./:=?".contains(&b));
    let tag = if printable { 0x13 } else { 0x0c };
    let mut out = vec![tag];
    let len = s.len();
    if len < 0x80 {
        out.push(u8::try_from(len).unwrap_or(0));
    } else {
        let bytes = len.to_be_bytes();
        let skip = bytes.iter().take_while(|b| **b == 0).count();
        out.push(0x80 | u8::try_from(bytes.len() - skip).unwrap_or(0));
        out.extend_from_slice(bytes.get(skip..).unwrap_or_default());
    }
    out.extend_from_slice(s.as_bytes());
    out
}

/// nats-server's `getTLSAuthDCs`: the `DC=` components in certificate order, joined by
/// commas (values not escaped).
pub fn domain_components(subject: &[Vec<Attribute>]) -> String {
    subject
        .iter()
        .flatten()
        .filter(|a| a.oid == OID_DC)
        .filter_map(|a| a.value.as_deref())
        .map(|v| format!("DC={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// One `type=value` of a DN; values are bytes because a hex escape may make any.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Atv {
    ty: String,
    value: Vec<u8>,
}

impl Atv {
    /// Types compare without case, values exactly (go-ldap's `Equal`).
    fn equal(&self, other: &Self) -> bool {
        self.value == other.value
            && (self.ty.eq_ignore_ascii_case(&other.ty)
                || self.ty.to_lowercase() == other.ty.to_lowercase())
    }
}

/// A relative DN: one or more attributes (`CN=a+UID=b`), in any order.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Rdn {
    attrs: Vec<Atv>,
}

impl Rdn {
    fn has_all(&self, attrs: &[Atv]) -> bool {
        attrs.iter().all(|a| self.attrs.iter().any(|m| m.equal(a)))
    }

    fn equal(&self, other: &Self) -> bool {
        self.attrs.len() == other.attrs.len()
            && self.has_all(&other.attrs)
            && other.has_all(&self.attrs)
    }
}

/// A distinguished name, most specific RDN first (as written in RFC 4514 strings).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Dn {
    rdns: Vec<Rdn>,
}

impl Dn {
    /// Parses an RFC 4514 string the way go-ldap's `ParseDN` does: `,` between RDNs,
    /// `+` inside one, `\` escapes a special character or two hex digits, spaces around
    /// types and values ignored unless escaped.
    pub fn parse(s: &str) -> Result<Self, DnError> {
        let bytes = s.as_bytes();
        let mut dn = Self::default();
        let mut rdn = Rdn::default();
        let mut buffer: Vec<u8> = Vec::new();
        let mut ty: Option<String> = None;
        let mut escaping = false;
        let mut trailing_spaces = 0usize;
        let take = |buffer: &mut Vec<u8>, trailing: &mut usize| {
            let keep = buffer.len().saturating_sub(*trailing);
            let out: Vec<u8> = buffer.drain(..).take(keep).collect();
            *trailing = 0;
            out
        };
        let mut i = 0;
        while let Some(&c) = bytes.get(i) {
            if escaping {
                trailing_spaces = 0;
                escaping = false;
                if b" \"#+,;<=>\\".contains(&c) {
                    buffer.push(c);
                    i += 1;
                    continue;
                }
                let pair = bytes.get(i..i + 2).ok_or(DnError::Escape)?;
                let hex = std::str::from_utf8(pair).map_err(|_| DnError::Hex)?;
                buffer.push(u8::from_str_radix(hex, 16).map_err(|_| DnError::Hex)?);
                i += 2;
                continue;
            }
            match c {
                b'\\' => {
                    trailing_spaces = 0;
                    escaping = true;
                }
                b'=' => {
                    let t = take(&mut buffer, &mut trailing_spaces);
                    ty = Some(String::from_utf8_lossy(&t).into_owned());
                    if bytes.get(i + 1) == Some(&b'#') {
                        return Err(DnError::Ber);
                    }
                }
                b',' | b'+' => {
                    let t = ty
                        .take()
                        .filter(|t| !t.is_empty())
                        .ok_or(DnError::Incomplete)?;
                    let value = take(&mut buffer, &mut trailing_spaces);
                    rdn.attrs.push(Atv { ty: t, value });
                    if c == b',' {
                        dn.rdns.push(std::mem::take(&mut rdn));
                    }
                }
                b' ' if buffer.is_empty() => {}
                _ => {
                    if c == b' ' {
                        trailing_spaces += 1;
                    } else {
                        trailing_spaces = 0;
                    }
                    buffer.push(c);
                }
            }
            i += 1;
        }
        if !buffer.is_empty() {
            let t = ty
                .take()
                .filter(|t| !t.is_empty())
                .ok_or(DnError::Trailing)?;
            let value = take(&mut buffer, &mut trailing_spaces);
            rdn.attrs.push(Atv { ty: t, value });
            dn.rdns.push(rdn);
        }
        Ok(dn)
    }

    /// A certificate subject as go-ldap's `FromRawCertSubject` builds it: RDNs last
    /// first, the attributes of each last first. `None` when an attribute type is
    /// not one it names (an `emailAddress` or `UID` in the subject, say) or a value is
    /// not a string.
    pub fn from_subject(subject: &[Vec<Attribute>]) -> Option<Self> {
        let mut dn = Self::default();
        for rdn in subject.iter().rev().filter(|r| !r.is_empty()) {
            let mut attrs = Vec::with_capacity(rdn.len());
            for a in rdn.iter().rev() {
                attrs.push(Atv {
                    ty: ldap_name(&a.oid)?.to_owned(),
                    value: a.value.clone()?.into_bytes(),
                });
            }
            dn.rdns.push(Rdn { attrs });
        }
        Some(dn)
    }

    /// RFC 4517 distinguishedNameMatch: the same RDNs in the same order.
    pub fn equal(&self, other: &Self) -> bool {
        self.rdns.len() == other.rdns.len()
            && self.rdns.iter().zip(&other.rdns).all(|(a, b)| a.equal(b))
    }

    /// The same RDNs in any order (each RDN of `other` used once).
    pub fn rdns_match(&self, other: &Self) -> bool {
        if self.rdns.len() != other.rdns.len() {
            return false;
        }
        let mut used = vec![false; other.rdns.len()];
        self.rdns.iter().all(|mine| {
            let found = other
                .rdns
                .iter()
                .zip(used.iter_mut())
                .find(|(theirs, used)| !**used && mine.equal(theirs));
            found.map(|(_, used)| *used = true).is_some()
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn attr(oid: &[u8], v: &str) -> Attribute {
        Attribute {
            oid: oid.to_vec(),
            value: Some(v.to_owned()),
            der: go_marshal(v),
        }
    }
    const CN: &[u8] = &[0x55, 0x04, 0x03];
    const C: &[u8] = &[0x55, 0x04, 0x06];
    const ST: &[u8] = &[0x55, 0x04, 0x08];
    const L: &[u8] = &[0x55, 0x04, 0x07];
    const O: &[u8] = &[0x55, 0x04, 0x0a];
    const OU: &[u8] = &[0x55, 0x04, 0x0b];
    const EMAIL: &[u8] = &[0x2a, 0x86, 0x48, 0x86, 0xf7, 0x0d, 0x01, 0x09, 0x01];

    /// `/C=US/ST=CA/L=Los Angeles/O=Synadia/OU=NATS.io/CN=example.com`, as openssl
    /// writes it: most significant RDN first.
    fn synadia() -> Vec<Vec<Attribute>> {
        vec![
            vec![attr(C, "US")],
            vec![attr(ST, "CA")],
            vec![attr(L, "Los Angeles")],
            vec![attr(O, "Synadia")],
            vec![attr(OU, "NATS.io")],
            vec![attr(CN, "example.com")],
        ]
    }

    #[test]
    fn rdn_string_in_rfc2253_order() {
        assert_eq!(
            rdn_sequence_string(&synadia()),
            "CN=example.com,OU=NATS.io,O=Synadia,L=Los Angeles,ST=CA,C=US"
        );
    }

    #[test]
    fn rdn_string_regroups_like_go() {
        // Go rebuilds the sequence from pkix.Name: attributes of one type end up in one
        // multi-valued RDN, in a fixed type order, whatever the certificate's order was.
        let subject = vec![
            vec![attr(CN, "first")],
            vec![attr(OU, "a")],
            vec![attr(O, "Org")],
            vec![attr(OU, "b")],
            vec![attr(CN, "last")],
            vec![attr(EMAIL, "x@y.z")],
        ];
        assert_eq!(rdn_sequence_string(&subject), "CN=last,OU=a+OU=b,O=Org");
        assert_eq!(
            name_string(&subject),
            "CN=last,OU=a+OU=b,O=Org,1.2.840.113549.1.9.1=#0c05784079 2e7a".replace(' ', "")
        );
    }

    #[test]
    fn rdn_string_escapes_as_go() {
        let subject = vec![vec![attr(O, "Acme, Inc.")], vec![attr(CN, " #lead+trail ")]];
        assert_eq!(
            rdn_sequence_string(&subject),
            r"CN=\ #lead\+trail\ ,O=Acme\, Inc."
        );
        let hash = vec![vec![attr(CN, "#x")]];
        assert_eq!(rdn_sequence_string(&hash), r"CN=\#x");
    }

    #[test]
    fn domain_components_in_certificate_order() {
        let mut subject = synadia();
        subject.insert(0, vec![attr(OID_DC, "org")]);
        subject.insert(0, vec![attr(OID_DC, "example")]);
        assert_eq!(domain_components(&subject), "DC=example,DC=org");
        assert_eq!(domain_components(&synadia()), "");
    }

    #[test]
    fn parse_like_go_ldap() {
        let dn = Dn::parse("CN=example.com, OU=NATS.io ,O=Synadia").expect("dn");
        assert_eq!(dn.rdns.len(), 3);
        assert_eq!(dn.rdns[1].attrs[0].value, b"NATS.io");
        let multi = Dn::parse(r"cn=a+uid=b,o=c\2c d\,e").expect("multi");
        assert_eq!(multi.rdns[0].attrs.len(), 2);
        assert_eq!(multi.rdns[1].attrs[0].value, b"c, d,e");
        assert_eq!(Dn::parse("alice"), Err(DnError::Trailing));
        assert_eq!(Dn::parse("=x,"), Err(DnError::Incomplete));
        assert_eq!(Dn::parse("CN=#04"), Err(DnError::Ber));
        assert_eq!(Dn::parse(r"CN=\4"), Err(DnError::Escape));
        assert_eq!(Dn::parse(r"CN=\zz"), Err(DnError::Hex));
        assert!(Dn::parse("").expect("empty").rdns.is_empty());
        assert_eq!(
            Dn::parse(r"CN=trailing\ ").expect("dn").rdns[0].attrs[0].value,
            b"trailing "
        );
    }

    #[test]
    fn subject_dn_is_reversed_and_matches_in_order_or_not() {
        let cert = Dn::from_subject(&synadia()).expect("known types");
        let same =
            Dn::parse("cn=example.com,OU=NATS.io,O=Synadia,L=Los Angeles,ST=CA,C=US").expect("dn");
        assert!(same.equal(&cert));
        let reordered =
            Dn::parse("C=US,ST=CA,L=Los Angeles,O=Synadia,OU=NATS.io,CN=example.com").expect("dn");
        assert!(!reordered.equal(&cert));
        assert!(reordered.rdns_match(&cert));
        let shorter = Dn::parse("CN=example.com,OU=NATS.io").expect("dn");
        assert!(!shorter.rdns_match(&cert));
        let other_value =
            Dn::parse("CN=example.com,OU=NATS.io,O=Synadia,L=LA,ST=CA,C=US").expect("dn");
        assert!(!other_value.rdns_match(&cert));
    }

    #[test]
    fn multi_valued_rdns_match_in_any_attribute_order() {
        let subject = vec![vec![attr(O, "Org")], vec![attr(CN, "a"), attr(OU, "b")]];
        let cert = Dn::from_subject(&subject).expect("dn");
        assert!(Dn::parse("OU=b+CN=a,O=Org").expect("dn").equal(&cert));
        assert!(Dn::parse("CN=a+OU=b,O=Org").expect("dn").equal(&cert));
        assert!(!Dn::parse("CN=a,OU=b,O=Org").expect("dn").rdns_match(&cert));
    }

    #[test]
    fn unknown_subject_attributes_disable_the_dn_match() {
        let mut subject = synadia();
        subject.push(vec![attr(EMAIL, "a@b.c")]);
        assert!(Dn::from_subject(&subject).is_none());
        subject.pop();
        subject.push(vec![Attribute {
            oid: CN.to_vec(),
            value: None,
            der: vec![0x02, 0x01, 0x01],
        }]);
        assert!(Dn::from_subject(&subject).is_none());
    }
}
