//! Which kind of entity a public nkey names, read from its prefix byte.

use std::fmt;

/// The public key kinds that appear in claims; names as Go's `nkeys.PrefixByte.String()`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KeyKind {
    Operator,
    Server,
    Cluster,
    Account,
    User,
    Curve,
}

impl KeyKind {
    pub fn as_str(self) -> &'static str {
        match self {
            KeyKind::Operator => "operator",
            KeyKind::Server => "server",
            KeyKind::Cluster => "cluster",
            KeyKind::Account => "account",
            KeyKind::User => "user",
            KeyKind::Curve => "x25519",
        }
    }

    pub(crate) fn list(kinds: &[KeyKind]) -> String {
        kinds
            .iter()
            .map(|k| k.as_str())
            .collect::<Vec<_>>()
            .join(" ")
    }
}

impl fmt::Display for KeyKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The kind of a valid encoded public key (checksum included), `None` for anything else.
/// Like Go's `nkeys.IsValidPublic*Key`, this does not check that the key is a curve point.
pub fn key_kind(public_key: &str) -> Option<KeyKind> {
    let (prefix, _) = nkeys::from_public_key(public_key).ok()?;
    match prefix {
        0 => Some(KeyKind::Account),
        p if p == 14 << 3 => Some(KeyKind::Operator),
        p if p == 13 << 3 => Some(KeyKind::Server),
        p if p == 2 << 3 => Some(KeyKind::Cluster),
        p if p == 20 << 3 => Some(KeyKind::User),
        p if p == 23 << 3 => Some(KeyKind::Curve),
        _ => None,
    }
}

pub(crate) fn is_kind(public_key: &str, kind: KeyKind) -> bool {
    key_kind(public_key) == Some(kind)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_of_generated_keys() {
        assert_eq!(
            key_kind(&nkeys::KeyPair::new_operator().public_key()),
            Some(KeyKind::Operator)
        );
        assert_eq!(
            key_kind(&nkeys::KeyPair::new_account().public_key()),
            Some(KeyKind::Account)
        );
        assert_eq!(
            key_kind(&nkeys::KeyPair::new_user().public_key()),
            Some(KeyKind::User)
        );
        assert_eq!(
            key_kind(&nkeys::KeyPair::new_server().public_key()),
            Some(KeyKind::Server)
        );
        assert_eq!(key_kind("UABC"), None);
        assert_eq!(key_kind(""), None);
        // A seed is not a public key.
        let seed = nkeys::KeyPair::new_user().seed().unwrap_or_default();
        assert_eq!(key_kind(&seed), None);
    }

    #[test]
    fn list_formats_like_go() {
        assert_eq!(
            KeyKind::list(&[KeyKind::Account, KeyKind::Operator]),
            "account operator"
        );
    }
}
