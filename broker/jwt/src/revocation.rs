//! Revocation lists: public key → unix seconds; a JWT issued at or before that time is revoked.
//! The key `*` revokes every key. Go: `revocation_list.go`; the check is nats-server's
//! `isRevoked`, which agrees with the library's `IsRevoked`.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// The key that revokes all keys.
pub const ALL: &str = "*";

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct RevocationList(pub BTreeMap<String, i64>);

impl RevocationList {
    /// Revokes JWTs for `public_key` issued at or before `at`; never moves a revocation earlier.
    pub fn revoke(&mut self, public_key: impl Into<String>, at: i64) {
        let e = self.0.entry(public_key.into()).or_insert(at);
        if *e < at {
            *e = at;
        }
    }

    pub fn clear(&mut self, public_key: &str) {
        self.0.remove(public_key);
    }

    /// Revoked if the key's (or `*`'s) revocation time is >= `issued_at`.
    pub fn is_revoked(&self, public_key: &str, issued_at: i64) -> bool {
        let hit = |k: &str| self.0.get(k).is_some_and(|t| *t >= issued_at);
        hit(ALL) || hit(public_key)
    }

    /// Drops entries covered by the `*` entry, returning them (Go's `MaybeCompact`).
    pub fn maybe_compact(&mut self) -> Vec<(String, i64)> {
        let Some(all) = self.0.get(ALL).copied() else {
            return Vec::new();
        };
        let covered: Vec<(String, i64)> = self
            .0
            .iter()
            .filter(|(k, t)| k.as_str() != ALL && all >= **t)
            .map(|(k, t)| (k.clone(), *t))
            .collect();
        for (k, _) in &covered {
            self.0.remove(k);
        }
        covered
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn get(&self, public_key: &str) -> Option<i64> {
        self.0.get(public_key).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn revoked_at_or_before() {
        let mut r = RevocationList::default();
        r.revoke("U1", 100);
        assert!(r.is_revoked("U1", 99));
        assert!(r.is_revoked("U1", 100));
        assert!(!r.is_revoked("U1", 101));
        assert!(!r.is_revoked("U2", 1));
        r.revoke("U1", 50);
        assert_eq!(r.get("U1"), Some(100), "never moves earlier");
    }

    #[test]
    fn wildcard_applies_to_all() {
        let mut r = RevocationList::default();
        r.revoke(ALL, 200);
        r.revoke("U1", 100);
        r.revoke("U2", 300);
        assert!(r.is_revoked("U9", 200));
        assert!(!r.is_revoked("U9", 201));
        assert!(r.is_revoked("U2", 250));
        let gone = r.maybe_compact();
        assert_eq!(gone, vec![("U1".to_string(), 100)]);
        assert_eq!(r.len(), 2);
    }
}
