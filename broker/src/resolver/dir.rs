//! `resolver { type: full|cache, dir }`: account JWTs kept as files, the layout of
//! nats-server's `DirJWTStore` so either server can read a directory the other wrote.
//!
//! Layout: one file per account, `<dir>/<account public key>.jwt`, holding the bare token
//! (no newline, mode 0600; the directory is created 0700). nats-server's account resolvers
//! do not shard into subdirectories. A deleted account of a full resolver with
//! `allow_delete` (and no `hard_delete`) is renamed to `<key>.jwt.deleted`, which nothing
//! reads back.
//!
//! Every valid token is read at start and then served from memory; writes go to disk first
//! (a temporary file, fsync, rename, fsync of the directory) so a crash leaves either the
//! old token or the new one. Unlike nats-server, files that are not decodable account JWTs
//! named after their subject are skipped with a warning instead of being indexed.
//!
//! Not done here (yet): expiry of tokens whose `exp` passed and the cache's `ttl` (both
//! dropped by a timer in nats-server), and re-reading the directory on reload.

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};

use natrix_config::options::{DeleteMode, DirResolverKind, DirResolverOpts};
use parking_lot::Mutex;
use ring::digest;

use super::{AccountResolver, PackHash, ResolverError, Stored};

const EXTENSION: &str = ".jwt";
const DELETED_SUFFIX: &str = ".deleted";

/// One held account.
struct Held {
    jwt: String,
    /// `iat` of the token.
    issued_at: i64,
    /// `jti`: the same id is the same token.
    id: String,
    /// `exp` (0 = never): expired tokens are left out of packs.
    expires: i64,
    /// sha256 of the file contents, xor-ed into the store hash.
    hash: PackHash,
    /// Last use, for the cache's least-recently-used eviction.
    used: u64,
}

#[derive(Default)]
struct Index {
    held: HashMap<String, Held>,
    /// xor of every held token's sha256: equal sets of tokens have equal hashes, whatever
    /// the order they arrived in (nats-server's `expirationTracker.hash`).
    hash: PackHash,
    clock: u64,
}

impl Index {
    fn tick(&mut self) -> u64 {
        self.clock += 1;
        self.clock
    }

    fn insert(&mut self, key: String, mut h: Held) {
        h.used = self.tick();
        xor(&mut self.hash, &h.hash);
        if let Some(old) = self.held.insert(key, h) {
            xor(&mut self.hash, &old.hash);
        }
    }

    fn remove(&mut self, key: &str) {
        if let Some(old) = self.held.remove(key) {
            xor(&mut self.hash, &old.hash);
        }
    }
}

/// nats-server's `DirAccResolver` (full) and `CacheDirAccResolver` (cache) storage.
pub struct DirResolver {
    dir: PathBuf,
    kind: DirResolverKind,
    delete: DeleteMode,
    limit: Option<u64>,
    index: Mutex<Index>,
}

/// Why a directory resolver could not start.
#[derive(Debug, thiserror::Error)]
pub enum DirOpenError {
    #[error("account resolver directory {path}: {source}")]
    Io { path: PathBuf, source: io::Error },
    #[error("account resolver directory {0} is not a directory")]
    NotADirectory(PathBuf),
}

impl DirResolver {
    /// Opens (creating it if absent) the directory of `opts` and reads every account JWT
    /// in it. Files that are not valid tokens are skipped with a warning, never fatal: one
    /// bad file must not keep the server down.
    pub fn open(opts: &DirResolverOpts) -> Result<Self, DirOpenError> {
        let dir = opts.dir.clone();
        let io_err = |source| DirOpenError::Io {
            path: dir.clone(),
            source,
        };
        match fs::metadata(&dir) {
            Ok(md) if !md.is_dir() => return Err(DirOpenError::NotADirectory(dir)),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                use std::os::unix::fs::DirBuilderExt;
                fs::DirBuilder::new()
                    .recursive(true)
                    .mode(0o700)
                    .create(&dir)
                    .map_err(io_err)?;
            }
            Err(e) => return Err(io_err(e)),
        }
        let mut index = Index::default();
        let mut names: Vec<_> = fs::read_dir(&dir)
            .map_err(io_err)?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .collect();
        names.sort();
        for path in names {
            if let Some((key, held)) = read_entry(&path) {
                index.insert(key, held);
            }
        }
        // A directory may hold more than the limit (written with a larger one): the
        // cache trims it now, a full resolver keeps it and refuses new accounts.
        let r = Self {
            dir,
            kind: opts.kind,
            delete: opts.delete,
            limit: opts.limit,
            index: Mutex::new(index),
        };
        if r.kind == DirResolverKind::Cache {
            let mut index = r.index.lock();
            while r.over_limit(index.held.len()) {
                if let Err(e) = r.evict_one(&mut index) {
                    tracing::warn!("account resolver: evicting at start: {e}");
                    break;
                }
            }
        }
        tracing::info!(
            dir = %r.dir.display(),
            accounts = r.index.lock().held.len(),
            "account resolver directory loaded"
        );
        Ok(r)
    }

    /// The directory the tokens live in.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path_for(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}{EXTENSION}"))
    }

    fn over_limit(&self, n: usize) -> bool {
        self.limit
            .is_some_and(|l| u64::try_from(n).unwrap_or(u64::MAX) > l)
    }

    fn at_limit(&self, n: usize) -> bool {
        self.limit
            .is_some_and(|l| u64::try_from(n).unwrap_or(u64::MAX) >= l)
    }

    /// Drops the least recently used account (file and index).
    fn evict_one(&self, index: &mut Index) -> io::Result<()> {
        let Some(victim) = index
            .held
            .iter()
            .min_by_key(|(_, h)| h.used)
            .map(|(k, _)| k.clone())
        else {
            return Ok(());
        };
        match fs::remove_file(self.path_for(&victim)) {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(e),
        }
        tracing::debug!(account = %victim, "account resolver cache full: evicted");
        index.remove(&victim);
        Ok(())
    }

    /// Writes `jwt` as `key`'s file: temporary file in the same directory, fsync,
    /// rename over the old file, fsync of the directory.
    fn write_atomically(&self, key: &str, jwt: &str) -> io::Result<()> {
        use std::os::unix::fs::OpenOptionsExt;
        // Does not end in `.jwt`, so a reader (natrix or nats-server) never takes a
        // half-written temporary file for a token.
        let tmp = self
            .dir
            .join(format!(".{key}{EXTENSION}.{}.tmp", std::process::id()));
        let result = (|| {
            let mut f = fs::OpenOptions::new()
                .write(true)
                .create(true)
                .truncate(true)
                .mode(0o600)
                .open(&tmp)?;
            f.write_all(jwt.as_bytes())?;
            f.sync_all()?;
            fs::rename(&tmp, self.path_for(key))?;
            fs::File::open(&self.dir)?.sync_all()
        })();
        if result.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        result
    }
}

/// Reads one directory entry; `None` (with a warning for anything that looks like it was
/// meant to be a token) when it is not a usable account JWT.
fn read_entry(path: &Path) -> Option<(String, Held)> {
    let name = path.file_name()?.to_str()?;
    let key = name.strip_suffix(EXTENSION)?;
    if !path.is_file() {
        return None;
    }
    if !is_account_key(key) {
        tracing::warn!(file = %path.display(), "account resolver: skipping a file not named after an account public key");
        return None;
    }
    let jwt = match fs::read_to_string(path) {
        Ok(t) => t,
        Err(e) => {
            tracing::warn!(file = %path.display(), "account resolver: skipping unreadable file: {e}");
            return None;
        }
    };
    match held_from(key, &jwt) {
        Ok(h) => Some((key.to_owned(), h)),
        Err(e) => {
            tracing::warn!(file = %path.display(), "account resolver: skipping invalid account JWT: {e}");
            None
        }
    }
}

fn is_account_key(key: &str) -> bool {
    key.starts_with('A') && nkeys::KeyPair::from_public_key(key).is_ok()
}

/// Decodes `jwt` (an account token about `key`) into what the index keeps.
fn held_from(key: &str, jwt: &str) -> Result<Held, String> {
    let claims = natrix_jwt::decode_account(jwt).map_err(|e| e.to_string())?;
    if claims.data.subject != key {
        return Err("jwt subject nkey and provided nkey do not match".into());
    }
    Ok(Held {
        jwt: jwt.to_owned(),
        issued_at: claims.data.issued_at,
        id: claims.data.id.clone(),
        expires: claims.data.expires,
        hash: sha256(jwt.as_bytes()),
        used: 0,
    })
}

fn sha256(b: &[u8]) -> PackHash {
    let mut out = [0u8; 32];
    out.copy_from_slice(digest::digest(&digest::SHA256, b).as_ref());
    out
}

fn xor(acc: &mut PackHash, h: &PackHash) {
    for (a, b) in acc.iter_mut().zip(h) {
        *a ^= b;
    }
}

impl AccountResolver for DirResolver {
    fn fetch(&self, pubkey: &str) -> Option<String> {
        let mut index = self.index.lock();
        let used = index.tick();
        let h = index.held.get_mut(pubkey)?;
        h.used = used;
        Some(h.jwt.clone())
    }

    /// nats-server's `saveIfNewer`: a token with the held token's `jti` changes nothing,
    /// and neither does one issued before it; an equal `iat` with another `jti` replaces
    /// it. Identical bytes are not rewritten.
    fn store(&self, pubkey: &str, jwt: &str, issued_at: i64) -> Result<Stored, ResolverError> {
        if !is_account_key(pubkey) {
            return Err(ResolverError::Refused("invalid public key".into()));
        }
        if jwt.is_empty() {
            return Err(ResolverError::Refused("invalid JWT".into()));
        }
        let mut new = held_from(pubkey, jwt).map_err(ResolverError::Refused)?;
        new.issued_at = issued_at;
        let mut index = self.index.lock();
        match index.held.get(pubkey) {
            Some(old) if old.id == new.id || old.issued_at > issued_at || old.hash == new.hash => {
                let used = index.tick();
                if let Some(old) = index.held.get_mut(pubkey) {
                    old.used = used;
                }
                return Ok(Stored::Unchanged);
            }
            Some(_) => {}
            None if self.at_limit(index.held.len()) => match self.kind {
                DirResolverKind::Full => {
                    return Err(ResolverError::Refused("jwt store is full".into()));
                }
                DirResolverKind::Cache => self
                    .evict_one(&mut index)
                    .map_err(|e| ResolverError::Io(e.to_string()))?,
            },
            None => {}
        }
        self.write_atomically(pubkey, jwt)
            .map_err(|e| ResolverError::Io(e.to_string()))?;
        index.insert(pubkey.to_owned(), new);
        Ok(Stored::Updated)
    }

    fn delete(&self, pubkey: &str) -> Result<(), ResolverError> {
        let delete = match self.kind {
            // The cache's store deletes for real (nats-server's `HardDelete`).
            DirResolverKind::Cache => DeleteMode::Hard,
            DirResolverKind::Full => self.delete,
        };
        if delete == DeleteMode::NoDelete {
            return Err(ResolverError::DeleteNotAllowed);
        }
        if !is_account_key(pubkey) {
            return Err(ResolverError::Refused("invalid public key".into()));
        }
        let mut index = self.index.lock();
        let path = self.path_for(pubkey);
        let done = match delete {
            DeleteMode::Rename => {
                let mut to = path.clone().into_os_string();
                to.push(DELETED_SUFFIX);
                fs::rename(&path, to)
            }
            _ => fs::remove_file(&path),
        };
        match done {
            Ok(()) => {}
            // Nothing on disk: nothing to delete (nats-server answers success too).
            Err(e) if e.kind() == io::ErrorKind::NotFound => {}
            Err(e) => return Err(ResolverError::Io(e.to_string())),
        }
        index.remove(pubkey);
        Ok(())
    }

    fn list(&self) -> Vec<String> {
        let mut keys: Vec<String> = self.index.lock().held.keys().cloned().collect();
        keys.sort();
        keys
    }

    fn accepts_pushes(&self) -> bool {
        true
    }

    fn hash(&self) -> Option<PackHash> {
        Some(self.index.lock().hash)
    }

    /// nats-server's `DirJWTStore.Pack`: `pubkey|jwt` lines, expired tokens left out.
    fn pack(&self, max: Option<usize>) -> Option<String> {
        let now = natrix_jwt::now_unix();
        let index = self.index.lock();
        let mut keys: Vec<&String> = index.held.keys().collect();
        keys.sort();
        let lines: Vec<String> = keys
            .into_iter()
            .filter_map(|k| {
                let h = index.held.get(k)?;
                (h.expires == 0 || h.expires >= now).then(|| format!("{k}|{}", h.jwt))
            })
            .take(max.unwrap_or(usize::MAX))
            .collect();
        Some(lines.join("\n"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use natrix_jwt::nkeys::KeyPair;
    use std::time::Duration;

    struct Fixture {
        op: KeyPair,
        tmp: tempfile::TempDir,
    }

    impl Fixture {
        fn new() -> Self {
            Self {
                op: KeyPair::new_operator(),
                tmp: tempfile::tempdir().expect("tempdir"),
            }
        }

        fn opts(
            &self,
            kind: DirResolverKind,
            delete: DeleteMode,
            limit: Option<u64>,
        ) -> DirResolverOpts {
            DirResolverOpts {
                kind,
                dir: self.tmp.path().join("jwt"),
                delete,
                limit,
                interval: Duration::from_secs(60),
                ttl: Duration::ZERO,
                timeout: Duration::from_millis(1900),
            }
        }

        fn open(
            &self,
            kind: DirResolverKind,
            delete: DeleteMode,
            limit: Option<u64>,
        ) -> DirResolver {
            DirResolver::open(&self.opts(kind, delete, limit)).expect("open")
        }

        fn full(&self) -> DirResolver {
            self.open(DirResolverKind::Full, DeleteMode::NoDelete, None)
        }

        /// A token for `key` issued at `iat`, with a name so that two tokens of one
        /// second differ.
        fn token(&self, key: &str, iat: i64, name: &str) -> String {
            let mut c = natrix_jwt::AccountClaims::new(key);
            c.data.name = name.into();
            natrix_jwt::encode_at(&c, &self.op, iat).expect("encode")
        }

        fn file(&self, key: &str) -> PathBuf {
            self.tmp.path().join("jwt").join(format!("{key}.jwt"))
        }
    }

    fn account() -> String {
        KeyPair::new_account().public_key()
    }

    #[test]
    fn creates_the_directory_and_writes_bare_tokens() {
        let f = Fixture::new();
        let r = f.full();
        let a = account();
        let t = f.token(&a, 100, "a");
        assert_eq!(r.store(&a, &t, 100), Ok(Stored::Updated));
        assert_eq!(fs::read_to_string(f.file(&a)).expect("file"), t);
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(f.file(&a)).expect("md").permissions().mode();
        assert_eq!(mode & 0o777, 0o600);
        assert_eq!(r.fetch(&a), Some(t.clone()));
        assert_eq!(r.list(), vec![a.clone()]);
        // No temporary files left behind.
        assert_eq!(
            fs::read_dir(f.tmp.path().join("jwt")).expect("dir").count(),
            1
        );
        // A second resolver over the same directory sees it.
        assert_eq!(f.full().fetch(&a), Some(t));
    }

    #[test]
    fn newer_wins_older_and_same_are_ignored() {
        let f = Fixture::new();
        let r = f.full();
        let a = account();
        let t100 = f.token(&a, 100, "first");
        let t50 = f.token(&a, 50, "older");
        let t100b = f.token(&a, 100, "same second");
        let t200 = f.token(&a, 200, "newer");
        assert_eq!(r.store(&a, &t100, 100), Ok(Stored::Updated));
        assert_eq!(r.store(&a, &t100, 100), Ok(Stored::Unchanged));
        assert_eq!(r.store(&a, &t50, 50), Ok(Stored::Unchanged));
        assert_eq!(r.fetch(&a), Some(t100.clone()));
        // nats-server replaces on an equal iat when the jti differs.
        assert_eq!(r.store(&a, &t100b, 100), Ok(Stored::Updated));
        assert_eq!(r.store(&a, &t200, 200), Ok(Stored::Updated));
        assert_eq!(r.fetch(&a), Some(t200.clone()));
        assert_eq!(fs::read_to_string(f.file(&a)).expect("file"), t200);
    }

    #[test]
    fn refuses_bad_keys_and_mismatched_subjects() {
        let f = Fixture::new();
        let r = f.full();
        let (a, b) = (account(), account());
        let tb = f.token(&b, 1, "b");
        assert!(matches!(
            r.store(&a, &tb, 1),
            Err(ResolverError::Refused(_))
        ));
        assert!(matches!(
            r.store("../etc/passwd", &tb, 1),
            Err(ResolverError::Refused(_))
        ));
        assert!(matches!(r.store(&a, "", 1), Err(ResolverError::Refused(_))));
        assert!(r.list().is_empty());
    }

    #[test]
    fn delete_refused_soft_and_hard() {
        let f = Fixture::new();
        let a = account();
        let t = f.token(&a, 1, "a");

        let r = f.full();
        r.store(&a, &t, 1).expect("store");
        assert_eq!(r.delete(&a), Err(ResolverError::DeleteNotAllowed));
        assert!(f.file(&a).exists());
        drop(r);

        let r = f.open(DirResolverKind::Full, DeleteMode::Rename, None);
        assert_eq!(r.fetch(&a), Some(t.clone()));
        assert_eq!(r.delete(&a), Ok(()));
        assert_eq!(r.fetch(&a), None);
        assert!(!f.file(&a).exists());
        let renamed = f.tmp.path().join("jwt").join(format!("{a}.jwt.deleted"));
        assert_eq!(fs::read_to_string(&renamed).expect("renamed"), t);
        // Deleting what is not there is fine.
        assert_eq!(r.delete(&a), Ok(()));
        // The renamed file is not read back.
        assert_eq!(f.full().list(), Vec::<String>::new());

        let r = f.open(DirResolverKind::Full, DeleteMode::Hard, None);
        r.store(&a, &t, 1).expect("store");
        assert_eq!(r.delete(&a), Ok(()));
        assert!(!f.file(&a).exists());
    }

    #[test]
    fn full_refuses_new_accounts_past_the_limit() {
        let f = Fixture::new();
        let r = f.open(DirResolverKind::Full, DeleteMode::NoDelete, Some(2));
        let (a, b, c) = (account(), account(), account());
        r.store(&a, &f.token(&a, 1, "a"), 1).expect("a");
        r.store(&b, &f.token(&b, 1, "b"), 1).expect("b");
        assert_eq!(
            r.store(&c, &f.token(&c, 1, "c"), 1),
            Err(ResolverError::Refused("jwt store is full".into()))
        );
        // Updates of held accounts still go through.
        assert_eq!(r.store(&a, &f.token(&a, 2, "a2"), 2), Ok(Stored::Updated));
        assert_eq!(r.list().len(), 2);
    }

    #[test]
    fn cache_evicts_the_least_recently_used() {
        let f = Fixture::new();
        let r = f.open(DirResolverKind::Cache, DeleteMode::Hard, Some(2));
        let (a, b, c) = (account(), account(), account());
        r.store(&a, &f.token(&a, 1, "a"), 1).expect("a");
        r.store(&b, &f.token(&b, 1, "b"), 1).expect("b");
        // `a` used last: `b` goes.
        assert!(r.fetch(&a).is_some());
        assert_eq!(r.store(&c, &f.token(&c, 1, "c"), 1), Ok(Stored::Updated));
        let mut want = vec![a.clone(), c.clone()];
        want.sort();
        assert_eq!(r.list(), want);
        assert!(!f.file(&b).exists());
        assert_eq!(r.fetch(&b), None);
        // A cache deletes for real.
        assert_eq!(r.delete(&a), Ok(()));
        assert!(!f.file(&a).exists());
    }

    #[test]
    fn cache_trims_an_oversized_directory_at_start() {
        let f = Fixture::new();
        let r = f.full();
        for i in 0..4 {
            let k = account();
            r.store(&k, &f.token(&k, i, "x"), i).expect("store");
        }
        drop(r);
        let c = f.open(DirResolverKind::Cache, DeleteMode::Hard, Some(2));
        assert_eq!(c.list().len(), 2);
        assert_eq!(f.full().list().len(), 2);
    }

    #[test]
    fn garbage_in_the_directory_is_skipped() {
        let f = Fixture::new();
        let dir = f.tmp.path().join("jwt");
        fs::create_dir_all(dir.join("sub.jwt")).expect("dir");
        let (a, b, good) = (account(), account(), account());
        fs::write(dir.join("README.txt"), "not a token").expect("w");
        fs::write(dir.join("notakey.jwt"), f.token(&a, 1, "a")).expect("w");
        fs::write(dir.join(format!("{a}.jwt")), "garbage").expect("w");
        let t = f.token(&b, 1, "b");
        fs::write(dir.join(format!("{b}.jwt")), &t[..t.len() / 2]).expect("w");
        // Named after another account.
        fs::write(dir.join(format!("{good}.jwt.tmp")), "x").expect("w");
        let c = account();
        fs::write(dir.join(format!("{c}.jwt")), f.token(&good, 1, "g")).expect("w");
        let tg = f.token(&good, 1, "g");
        fs::write(dir.join(format!("{good}.jwt")), &tg).expect("w");
        fs::write(dir.join(".jwt"), "").expect("w");

        let r = f.full();
        assert_eq!(r.list(), vec![good.clone()]);
        assert_eq!(r.fetch(&a), None);
        assert_eq!(r.fetch(&b), None);
        assert_eq!(r.fetch(&good), Some(tg));
        // A garbage file is replaced by a valid store.
        let ta = f.token(&a, 5, "a");
        assert_eq!(r.store(&a, &ta, 5), Ok(Stored::Updated));
        assert_eq!(
            fs::read_to_string(dir.join(format!("{a}.jwt"))).expect("r"),
            ta
        );
    }

    #[test]
    fn reads_a_directory_laid_out_like_nats_server() {
        // What nats-server's DirJWTStore writes (shard=false): `<dir>/<key>.jwt`, bare
        // token, no trailing newline, plus `.jwt.deleted` leftovers of soft deletes.
        let f = Fixture::new();
        let dir = f.tmp.path().join("jwt");
        fs::create_dir_all(&dir).expect("dir");
        let (a, b, d) = (account(), account(), account());
        let (ta, tb, td) = (
            f.token(&a, 10, "a"),
            f.token(&b, 20, "b"),
            f.token(&d, 30, "d"),
        );
        fs::write(dir.join(format!("{a}.jwt")), &ta).expect("w");
        fs::write(dir.join(format!("{b}.jwt")), &tb).expect("w");
        fs::write(dir.join(format!("{d}.jwt.deleted")), &td).expect("w");
        let r = f.full();
        let mut want = vec![a.clone(), b.clone()];
        want.sort();
        assert_eq!(r.list(), want);
        assert_eq!(r.fetch(&a), Some(ta.clone()));
        assert_eq!(r.fetch(&d), None);

        // Hash: xor of the sha256 of each file's bytes, whatever the order.
        let mut h = sha256(ta.as_bytes());
        xor(&mut h, &sha256(tb.as_bytes()));
        assert_eq!(r.hash(), Some(h));
        // Pack: `key|jwt` lines.
        let pack = r.pack(None).expect("pack");
        let mut lines: Vec<&str> = pack.split('\n').collect();
        lines.sort();
        let mut expect = vec![format!("{a}|{ta}"), format!("{b}|{tb}")];
        expect.sort();
        assert_eq!(lines, expect);
        assert_eq!(super::super::parse_pack(&pack).expect("parse").len(), 2);
        assert_eq!(r.pack(Some(1)).expect("pack").lines().count(), 1);
        // Deleting brings the hash back to the other token's alone.
        let r = f.open(DirResolverKind::Full, DeleteMode::Hard, None);
        r.delete(&a).expect("delete");
        assert_eq!(r.hash(), Some(sha256(tb.as_bytes())));
    }

    #[test]
    fn expired_tokens_are_left_out_of_packs() {
        let f = Fixture::new();
        let r = f.full();
        let a = account();
        let mut c = natrix_jwt::AccountClaims::new(a.clone());
        c.data.expires = 10;
        let t = natrix_jwt::encode_at(&c, &f.op, 5).expect("encode");
        r.store(&a, &t, 5).expect("store");
        assert_eq!(r.pack(None).as_deref(), Some(""));
    }
}
