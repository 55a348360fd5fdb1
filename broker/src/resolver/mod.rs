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

mod dir;

use std::collections::HashMap;
use std::sync::Arc;

use natrix_config::Options;
use natrix_config::options::ResolverOpts;
use parking_lot::RwLock;

pub use dir::{DirOpenError, DirResolver};

/// nats-server's resolver hash: the xor of the sha256 of every held token, compared
/// between servers (`$SYS.REQ.CLAIMS.PACK`) to tell whether their sets differ.
pub type PackHash = [u8; 32];

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

    /// The xor-of-sha256 of every held token, for resolvers that sync with other servers
    /// (`None`: this resolver does not).
    fn hash(&self) -> Option<PackHash> {
        None
    }

    /// Up to `max` (all when `None`) held tokens as nats-server's pack: `pubkey|jwt` lines
    /// joined by `\n`, the reply to `$SYS.REQ.CLAIMS.PACK` (`None`: no syncing).
    fn pack(&self, _max: Option<usize>) -> Option<String> {
        None
    }
}

/// The `(pubkey, jwt)` pairs of a pack (see [`AccountResolver::pack`]); blank lines are
/// skipped. The tokens still have to be verified before they are stored. Errors use
/// nats-server's `Merge` wording.
pub fn parse_pack(pack: &str) -> Result<Vec<(String, String)>, String> {
    let mut out = Vec::new();
    for line in pack.split('\n') {
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split('|');
        let (Some(key), Some(jwt), None) = (parts.next(), parts.next(), parts.next()) else {
            return Err(format!(
                "line in package didn't contain 2 entries: {line:?}"
            ));
        };
        if !(key.starts_with('A') && nkeys::KeyPair::from_public_key(key).is_ok()) {
            return Err("key to merge is not a valid public account key".into());
        }
        out.push((key.to_owned(), jwt.to_owned()));
    }
    Ok(out)
}

/// The resolver `opts` ask for, or `None` outside operator mode (no `operator` and no
/// `trusted_keys`). The preloaded accounts (`resolver_preload`) are stored in it, as
/// nats-server does for every writable resolver. Verifying tokens against the operators
/// stays the caller's job; preloads were decoded (signature included) by the config.
pub fn from_config(opts: &Options) -> Result<Option<Arc<dyn AccountResolver>>, String> {
    if opts.operators.is_empty() && opts.trusted_keys.is_empty() {
        return Ok(None);
    }
    let mut preload = Vec::with_capacity(opts.resolver_preload.len());
    for (key, jwt) in &opts.resolver_preload {
        let claims = natrix_jwt::decode_account(jwt)
            .map_err(|e| format!("preload account error for {key:?}: {e}"))?;
        preload.push((key.clone(), jwt.clone(), claims.data.issued_at));
    }
    let resolver: Arc<dyn AccountResolver> = match &opts.resolver_opts {
        None => return Err("operators require an account resolver to be configured".into()),
        Some(ResolverOpts::Memory) => Arc::new(MemoryResolver::new(preload)),
        Some(ResolverOpts::Url(url)) => {
            return Err(format!(
                "account resolver URL({url:?}) is not supported: natrix has no HTTP account \
                 server client; use `resolver: MEMORY` or `resolver {{ type: full, dir: ... }}`"
            ));
        }
        Some(ResolverOpts::Dir(d)) => {
            let r = DirResolver::open(d).map_err(|e| e.to_string())?;
            for (key, jwt, iat) in preload {
                if let Err(e) = r.store(&key, &jwt, iat) {
                    tracing::warn!(account = %key, "resolver_preload not stored: {e}");
                }
            }
            Arc::new(r)
        }
    };
    Ok(Some(resolver))
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

    fn options(conf: &str) -> Options {
        match Options::from_str(conf, "t.conf") {
            Ok((o, _)) => o,
            Err(e) => panic!("{conf}: {e}"),
        }
    }

    fn operator_and_account() -> (String, String, String) {
        let op = nkeys::KeyPair::new_operator();
        let opjwt = natrix_jwt::encode(&natrix_jwt::OperatorClaims::new(op.public_key()), &op)
            .expect("operator");
        let acc = nkeys::KeyPair::new_account().public_key();
        let accjwt = natrix_jwt::encode_at(&natrix_jwt::AccountClaims::new(acc.clone()), &op, 42)
            .expect("account");
        (opjwt, acc, accjwt)
    }

    #[test]
    fn from_config_picks_the_resolver() {
        assert!(matches!(from_config(&options("resolver: MEM")), Ok(None)));

        let (op, acc, jwt) = operator_and_account();
        let mem = options(&format!(
            "operator: {op:?}\nresolver: MEMORY\nresolver_preload {{ {acc}: {jwt:?} }}"
        ));
        let r = from_config(&mem).expect("ok").expect("a resolver");
        assert_eq!(r.fetch(&acc), Some(jwt.clone()));
        assert!(!r.accepts_pushes());

        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("jwt");
        let full = options(&format!(
            "operator: {op:?}\nresolver {{ type: full, dir: {dir:?} }}\nresolver_preload {{ {acc}: {jwt:?} }}"
        ));
        let r = from_config(&full).expect("ok").expect("a resolver");
        assert!(r.accepts_pushes());
        assert_eq!(r.fetch(&acc), Some(jwt.clone()));
        assert!(dir.join(format!("{acc}.jwt")).exists());

        let url = options(&format!("operator: {op:?}\nresolver: URL(\"http://x/\")"));
        assert!(
            from_config(&url)
                .err()
                .unwrap_or_default()
                .contains("not supported")
        );
        let none = options(&format!("operator: {op:?}"));
        assert_eq!(
            from_config(&none).err().as_deref(),
            Some("operators require an account resolver to be configured")
        );
    }

    #[test]
    fn pack_lines_are_checked() {
        let acc = nkeys::KeyPair::new_account().public_key();
        assert_eq!(
            parse_pack(&format!("{acc}|a.b.c\n\n")),
            Ok(vec![(acc.clone(), "a.b.c".to_owned())])
        );
        assert!(parse_pack("nobar").is_err());
        assert!(parse_pack("UNOTANACCOUNT|x").is_err());
    }
}
