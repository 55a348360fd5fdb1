//! Account resolvers: where a server in operator mode finds the JWT of an account that a
//! user presents (nats-server's `AccountResolver`).
//!
//! - `MEMORY`: the accounts of `resolver_preload`, and nothing else.
//! - `full` (`resolver { type: full, dir }`): every account JWT pushed to the cluster,
//!   kept in a directory as `<account public key>.jwt`, updated by
//!   `$SYS.REQ.CLAIMS.UPDATE` and shared with the other servers.
//! - `cache`: the same directory format, holding up to `limit` accounts fetched on demand.
//!
//! A resolver only stores and returns tokens; verifying them against the trusted
//! operators is the caller's job, before `store`.

use std::collections::HashMap;

use parking_lot::RwLock;

/// Why a resolver refused an update (the text goes back to whoever pushed it).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ResolverError {
    #[error("{0}")]
    Refused(String),
    #[error("delete not allowed")]
    DeleteNotAllowed,
    #[error("store error: {0}")]
    Io(String),
}

/// The outcome of a successful `store`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stored {
    /// The token replaced an older one or was new.
    Updated,
    /// The same or a newer token was already there; nothing changed.
    Unchanged,
}

pub trait AccountResolver: Send + Sync {
    /// The account JWT for `pubkey`, if known.
    fn fetch(&self, pubkey: &str) -> Option<String>;
    /// Keeps `jwt` (already verified, issued at `issued_at`) for `pubkey`. A token older
    /// than the one held is not stored (`Stored::Unchanged`).
    fn store(&self, pubkey: &str, jwt: &str, issued_at: i64) -> Result<Stored, ResolverError>;
    /// Forgets `pubkey`'s token, where deletes are allowed.
    fn delete(&self, pubkey: &str) -> Result<(), ResolverError>;
    /// The public keys of every account held.
    fn list(&self) -> Vec<String>;
    /// Whether claim updates over `$SYS.REQ.CLAIMS.UPDATE` are taken (full and cache
    /// resolvers; the memory resolver only takes updates of accounts it already has).
    fn accepts_pushes(&self) -> bool;
}

/// `resolver: MEMORY`: the preloaded accounts; updates replace known accounts only.
#[derive(Default)]
pub struct MemoryResolver {
    accounts: RwLock<HashMap<String, (String, i64)>>,
}

impl MemoryResolver {
    pub fn new(preload: impl IntoIterator<Item = (String, String, i64)>) -> Self {
        Self {
            accounts: RwLock::new(
                preload
                    .into_iter()
                    .map(|(pk, jwt, iat)| (pk, (jwt, iat)))
                    .collect(),
            ),
        }
    }
}

impl AccountResolver for MemoryResolver {
    fn fetch(&self, pubkey: &str) -> Option<String> {
        self.accounts.read().get(pubkey).map(|(j, _)| j.clone())
    }

    fn store(&self, pubkey: &str, jwt: &str, issued_at: i64) -> Result<Stored, ResolverError> {
        let mut accounts = self.accounts.write();
        match accounts.get(pubkey) {
            Some((_, held)) if *held > issued_at => Ok(Stored::Unchanged),
            _ => {
                accounts.insert(pubkey.to_owned(), (jwt.to_owned(), issued_at));
                Ok(Stored::Updated)
            }
        }
    }

    fn delete(&self, _pubkey: &str) -> Result<(), ResolverError> {
        Err(ResolverError::DeleteNotAllowed)
    }

    fn list(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.accounts.read().keys().cloned().collect();
        keys.sort();
        keys
    }

    fn accepts_pushes(&self) -> bool {
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn memory_keeps_the_newest_token() {
        let r = MemoryResolver::new([("A".to_owned(), "old".to_owned(), 10)]);
        assert_eq!(r.store("A", "older", 5), Ok(Stored::Unchanged));
        assert_eq!(r.fetch("A").as_deref(), Some("old"));
        assert_eq!(r.store("A", "new", 20), Ok(Stored::Updated));
        assert_eq!(r.fetch("A").as_deref(), Some("new"));
        assert_eq!(r.delete("A"), Err(ResolverError::DeleteNotAllowed));
        assert_eq!(r.list(), vec!["A".to_owned()]);
    }
}
