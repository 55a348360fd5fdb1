//! The account resolver (`resolver`), its preloads (`resolver_preload`) and the trusted
//! operator JWTs (`operator`), typed as nats-server's `opts.go` reads them.
//!
//! nats-server decodes the operator and preloaded account JWTs while it parses the config
//! file, so a bad token is a config error (`-t` reports it); natrix does the same with
//! `natrix-jwt`. Directories are not created here (nats-server creates them as a side
//! effect of parsing; natrix leaves that to the resolver at start), but the errors that
//! creation would give for an empty or non-directory `dir` are reported the same way.

use std::path::{Path, PathBuf};
use std::time::Duration;

use super::Options;
use super::parse::Processor;
use crate::conf::{Map, Pos, Value};
use crate::duration::{format_go_nanos, parse_go_duration};

/// nats-server's `DEFAULT_ACCOUNT_FETCH_TIMEOUT`: how long a cache or full resolver waits
/// for other servers to answer a lookup of an unknown account.
pub const DEFAULT_RESOLVER_FETCH_TIMEOUT: Duration = Duration::from_millis(1900);
/// `NewDirAccResolver`: a `full` resolver with no (or a non-positive) `interval` syncs
/// with the other servers once a minute.
pub const DEFAULT_RESOLVER_SYNC_INTERVAL: Duration = Duration::from_secs(60);
/// `NewCacheDirAccResolver`: a `cache` resolver with no (or a non-positive) `limit` holds
/// at most this many accounts.
pub const DEFAULT_CACHE_RESOLVER_LIMIT: u64 = 1_000;

/// The complaint for a resolver that is none of the known kinds. The double space is
/// nats-server's.
pub const RESOLVER_KIND_ERROR: &str = "error parsing account resolver, should be MEM or  URL(\"url\") or a map containing dir and type state=[FULL|CACHE])";

/// Which account resolver a server in operator mode uses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ResolverOpts {
    /// `resolver: MEMORY` (or `MEM`, or a map with `type: mem`): the preloaded accounts only.
    Memory,
    /// `resolver: URL("http://...")`, or the account server of the only operator when no
    /// resolver is set: an HTTP account server (natrix does not run one).
    Url(String),
    /// `resolver { type: full|cache, dir: ... }`: nats-server's `DirAccResolver` and
    /// `CacheDirAccResolver`.
    Dir(DirResolverOpts),
}

/// `type: full` keeps every pushed account; `type: cache` keeps the most recently used.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DirResolverKind {
    Full,
    Cache,
}

/// What a delete of an account does to its file (nats-server's `deleteType`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DeleteMode {
    /// Deletes are refused (`allow_delete: false`, the default for `full`).
    NoDelete,
    /// The file is renamed to `<key>.jwt.deleted` (`allow_delete: true`).
    Rename,
    /// The file is removed (`allow_delete: true, hard_delete: true`; always for `cache`,
    /// whose evictions are deletes).
    Hard,
}

/// A directory resolver, with nats-server's defaults already applied.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DirResolverOpts {
    pub kind: DirResolverKind,
    /// Where `<account public key>.jwt` files live (flat, not sharded).
    pub dir: PathBuf,
    pub delete: DeleteMode,
    /// Most accounts held; `None` is unlimited (`full` with no positive `limit`). A full
    /// resolver refuses new accounts past it, a cache evicts the least recently used.
    pub limit: Option<u64>,
    /// `full`: how often to compare account sets with the other servers.
    pub interval: Duration,
    /// `cache`: how long an account stays before it is dropped; zero keeps it until the
    /// JWT expires.
    pub ttl: Duration,
    /// How long a lookup waits for other servers.
    pub timeout: Duration,
}

/// Reads the `resolver` key (nats-server's `case "resolver", "account_resolver",
/// "accounts_resolver"`). Errors go to `p`; `None` when the value is unusable.
pub(crate) fn parse_resolver(p: &mut Processor, pos: &Pos, v: &Value) -> Option<ResolverOpts> {
    let res = match v {
        Value::String(s) => parse_resolver_string(p, pos, s),
        Value::Map(m) => match parse_resolver_map(p, pos, m) {
            Parsed::Done(r) => r,
            // Go returns from the case before its "should be MEM or URL" check.
            Parsed::Abort => return None,
        },
        other => {
            p.error(
                pos,
                format!(
                    "error parsing operator resolver, wrong type {}",
                    other.go_type()
                ),
            );
            return None;
        }
    };
    if res.is_none() {
        p.error(pos, RESOLVER_KIND_ERROR);
    }
    res
}

/// nats-server's two regular expressions: `(?i)(MEM|MEMORY)\s*` anywhere in the string,
/// else `(?i)(?:URL){1}(?:\({1}\s*"?([^\s"]*)"?\s*\){1})?\s*`.
fn parse_resolver_string(p: &mut Processor, pos: &Pos, s: &str) -> Option<ResolverOpts> {
    let lower = s.to_ascii_lowercase();
    if lower.contains("mem") {
        return Some(ResolverOpts::Memory);
    }
    let at = lower.find("url")?;
    let url = url_argument(&s[at + 3..]).unwrap_or_default();
    let url = url.trim();
    if !go_url_parses(url) {
        p.error(pos, format!("error parsing account resolver url [{url:?}]"));
        return None;
    }
    Some(ResolverOpts::Url(url.to_owned()))
}

/// The capture of `\(\s*"?([^\s"]*)"?\s*\)` at the start of `rest`, if it matches.
fn url_argument(rest: &str) -> Option<&str> {
    let inner = rest.strip_prefix('(')?.trim_start();
    let inner = inner.strip_prefix('"').unwrap_or(inner);
    let run = inner
        .find(|c: char| c.is_whitespace() || c == '"')
        .unwrap_or(inner.len());
    // The capture is greedy and may contain `)`: the longest prefix of the run that the
    // rest of the pattern (`"?\s*\)`) can follow.
    (0..=run).rev().find_map(|n| {
        let after = &inner[n..];
        let after = after.strip_prefix('"').unwrap_or(after).trim_start();
        after.starts_with(')').then(|| &inner[..n])
    })
}

/// The few inputs Go's `url.Parse` refuses that a config can plausibly hold: a missing
/// scheme before `:`, a bad `%` escape, control characters.
fn go_url_parses(u: &str) -> bool {
    if u.starts_with(':') || u.chars().any(|c| c.is_control()) {
        return false;
    }
    let b = u.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%' {
            let hex = |j: usize| b.get(j).is_some_and(u8::is_ascii_hexdigit);
            if !(hex(i + 1) && hex(i + 2)) {
                return false;
            }
            i += 3;
        } else {
            i += 1;
        }
    }
    true
}

enum Parsed {
    Done(Option<ResolverOpts>),
    Abort,
}

/// The map form. Keys are read in nats-server's order, and a value of the wrong type
/// stops the key as Go's failed type assertion does.
fn parse_resolver_map(p: &mut Processor, pos: &Pos, m: &Map) -> Parsed {
    macro_rules! typed {
        ($key:literal, $get:ident) => {
            match m.get($key) {
                None => None,
                Some(sv) => match p.$get(&sv.pos, &sv.value) {
                    Some(x) => Some(x),
                    None => return Parsed::Abort,
                },
            }
        };
    }
    let dir = typed!("dir", string).unwrap_or_default();
    let kind = typed!("type", string).unwrap_or_default();
    let allow_delete = typed!("allow_delete", boolean).unwrap_or(false);
    let hard_delete = typed!("hard_delete", boolean);
    let limit = typed!("limit", int).unwrap_or(0);
    let mut durations = [0i64; 3];
    let mut timeout_set = false;
    for (i, key) in ["ttl", "interval", "timeout"].into_iter().enumerate() {
        let Some(sv) = m.get(key) else { continue };
        let Some(s) = p.string(&sv.pos, &sv.value) else {
            return Parsed::Abort;
        };
        match parse_go_duration(&s) {
            Ok(ns) => durations[i] = ns,
            Err(e) => {
                p.error(pos, e);
                return Parsed::Abort;
            }
        }
        timeout_set |= key == "timeout";
    }
    let [ttl, interval, timeout] = durations;

    let kind = match kind.to_ascii_uppercase().as_str() {
        "CACHE" => DirResolverKind::Cache,
        "FULL" => DirResolverKind::Full,
        "MEM" | "MEMORY" => return Parsed::Done(Some(ResolverOpts::Memory)),
        _ => return Parsed::Done(None),
    };
    let errors_before = p.error_count();
    check_dir(p, pos, &dir);
    let delete = match kind {
        DirResolverKind::Cache => {
            if interval != 0 {
                p.error(pos, "CACHE does not accept sync");
            }
            if allow_delete {
                p.error(pos, "CACHE does not accept allow_delete");
            }
            if hard_delete.is_some() {
                p.error(pos, "CACHE does not accept hard_delete");
            }
            DeleteMode::Hard
        }
        DirResolverKind::Full => {
            if ttl != 0 {
                p.error(pos, "FULL does not accept ttl");
            }
            if hard_delete.is_some() && !allow_delete {
                p.error(pos, "hard_delete has no effect without delete");
            }
            match (allow_delete, hard_delete.unwrap_or(false)) {
                (false, _) => DeleteMode::NoDelete,
                (true, false) => DeleteMode::Rename,
                (true, true) => DeleteMode::Hard,
            }
        }
    };
    // What nats-server's constructor would then fail with: creating the directory, then
    // the fetch timeout option.
    if let Some(e) = mkdir_error(&dir) {
        p.error(pos, e);
        return Parsed::Abort;
    }
    if timeout_set && timeout <= 0 {
        p.error(
            pos,
            format!("Fetch timeout {} is too smal", format_go_nanos(timeout)),
        );
        return Parsed::Abort;
    }
    if p.error_count() != errors_before {
        return Parsed::Abort;
    }
    let positive = |ns: i64| u64::try_from(ns).ok().filter(|n| *n > 0);
    let limit = u64::try_from(limit).ok().filter(|l| *l > 0);
    Parsed::Done(Some(ResolverOpts::Dir(DirResolverOpts {
        kind,
        dir: PathBuf::from(dir),
        delete,
        limit: match kind {
            DirResolverKind::Full => limit,
            DirResolverKind::Cache => Some(limit.unwrap_or(DEFAULT_CACHE_RESOLVER_LIMIT)),
        },
        interval: match kind {
            DirResolverKind::Full => positive(interval)
                .map(Duration::from_nanos)
                .unwrap_or(DEFAULT_RESOLVER_SYNC_INTERVAL),
            DirResolverKind::Cache => Duration::ZERO,
        },
        ttl: positive(ttl).map(Duration::from_nanos).unwrap_or_default(),
        timeout: positive(timeout)
            .map(Duration::from_nanos)
            .unwrap_or(DEFAULT_RESOLVER_FETCH_TIMEOUT),
    })))
}

/// nats-server's `checkDir`: set, and if it exists a directory its owner may write.
fn check_dir(p: &mut Processor, pos: &Pos, dir: &str) {
    if dir.is_empty() {
        p.error(pos, "dir has no value and needs to point to a directory");
        return;
    }
    if let Ok(md) = std::fs::metadata(dir) {
        let writable = {
            use std::os::unix::fs::PermissionsExt;
            md.permissions().mode() & 0o200 != 0
        };
        if !md.is_dir() || !writable {
            p.error(pos, "dir needs to point to an accessible directory");
        }
    }
}

/// The error Go's `os.MkdirAll(dir)` gives where it can be told without creating anything.
fn mkdir_error(dir: &str) -> Option<String> {
    if dir.is_empty() {
        return Some("mkdir : no such file or directory".to_owned());
    }
    // The first existing ancestor must be a directory.
    let mut at = Some(Path::new(dir));
    while let Some(path) = at {
        if let Ok(md) = std::fs::metadata(path) {
            return (!md.is_dir()).then(|| format!("mkdir {}: not a directory", path.display()));
        }
        at = path.parent().filter(|p| !p.as_os_str().is_empty());
    }
    None
}

/// Reads `resolver_preload`: a map of account public key to account JWT, each decoded
/// (and its signature verified) as nats-server does.
pub(crate) fn parse_preload(
    p: &mut Processor,
    pos: &Pos,
    v: &Value,
) -> Option<Vec<(String, String)>> {
    let Value::Map(m) = v else {
        p.error(
            pos,
            "preload should be a map of account_public_key:account_jwt",
        );
        return None;
    };
    let mut out = Vec::new();
    for pe in m {
        match &pe.value.value {
            Value::String(jwt) => {
                if natrix_jwt::decode_account(jwt).is_err() {
                    p.error(&pe.value.pos, "invalid account JWT");
                    continue;
                }
                out.push((pe.key.clone(), jwt.clone()));
            }
            _ => p.error(&pe.value.pos, "preload map value should be a string JWT"),
        }
    }
    Some(out)
}

/// Go's `jwtPrefix`: what an inline JWT (rather than a file name) starts with.
const JWT_PREFIX: &str = "eyJ";

/// nats-server's `readOperatorJWT`: `src` is a file holding the operator JWT (bare or in
/// the decorated `-----BEGIN NATS OPERATOR JWT-----` form), or, when no such file can be
/// read and it looks like one, the JWT itself. The token must decode as an operator JWT
/// with a valid signature.
pub fn read_operator_jwt(src: &str) -> Result<String, String> {
    let text = match std::fs::read_to_string(src) {
        Ok(t) => t,
        Err(e) if !src.starts_with(JWT_PREFIX) => {
            return Err(crate::conf::go_io_error(src, &e));
        }
        Err(_) => src.to_owned(),
    };
    // Go's base64 decoder skips line breaks, so a bare token file ending in a newline
    // works there: trim it here.
    let jwt = natrix_jwt::parse_decorated_jwt(&text).trim().to_owned();
    natrix_jwt::decode_operator(&jwt).map_err(|e| e.to_string())?;
    Ok(jwt)
}

/// The operator JWTs of `o.operators` (files or inline tokens), read and checked again:
/// for a server that starts from options it did not parse itself, or re-reads the files.
pub fn load_operators(o: &Options) -> Result<Vec<String>, String> {
    o.operators
        .iter()
        .map(|src| read_operator_jwt(src).map_err(|e| format!("error parsing operator JWT: {e}")))
        .collect()
}

/// What nats-server does after reading a single operator with no `resolver` set: the
/// operator's account server (`account_server_url` + `/accounts`, as `nsc push` uses)
/// becomes a URL resolver. natrix only takes a non-empty URL; see `from_config` in the
/// broker for the "operators require an account resolver" error otherwise.
pub(crate) fn resolver_from_operator(jwt: &str) -> Option<ResolverOpts> {
    let op = natrix_jwt::decode_operator(jwt).ok()?;
    let url = op.nats.account_server_url.trim();
    (!url.is_empty() && go_url_parses(url)).then(|| ResolverOpts::Url(format!("{url}/accounts")))
}

#[cfg(test)]
mod tests {
    use super::*;
    use natrix_jwt::nkeys::KeyPair;

    fn load(src: &str) -> Result<Options, Vec<String>> {
        Options::from_str(src, "t.conf")
            .map(|(o, _)| o)
            .map_err(|e| e.errors())
    }

    /// The errors of `src`, without positions.
    fn errors(src: &str) -> Vec<String> {
        let errs = load(src).err().unwrap_or_default();
        errs.iter()
            .map(|e| e.splitn(4, ':').nth(3).unwrap_or(e).trim().to_owned())
            .collect()
    }

    fn dir_opts(src: &str) -> DirResolverOpts {
        match load(src).map(|o| o.resolver_opts) {
            Ok(Some(ResolverOpts::Dir(d))) => d,
            other => panic!("not a dir resolver: {other:?}"),
        }
    }

    fn operator() -> (KeyPair, String) {
        let kp = KeyPair::new_operator();
        let mut c = natrix_jwt::OperatorClaims::new(kp.public_key());
        c.nats.account_server_url = "http://acc.example:9090/jwt/v1".into();
        let jwt = natrix_jwt::encode(&c, &kp).expect("encode");
        (kp, jwt)
    }

    fn account_jwt(op: &KeyPair) -> (String, String) {
        let akp = KeyPair::new_account();
        let c = natrix_jwt::AccountClaims::new(akp.public_key());
        (
            akp.public_key(),
            natrix_jwt::encode(&c, op).expect("encode"),
        )
    }

    #[test]
    fn memory_and_url_strings() {
        for s in ["MEMORY", "MEM", "mem", "memory "] {
            let o = load(&format!("resolver: {s:?}")).expect("loads");
            assert_eq!(o.resolver_opts, Some(ResolverOpts::Memory), "{s}");
        }
        let o = load("resolver: URL(\"http://localhost:9090/jwt/v1/accounts/\")").expect("loads");
        assert_eq!(
            o.resolver_opts,
            Some(ResolverOpts::Url(
                "http://localhost:9090/jwt/v1/accounts/".into()
            ))
        );
        assert!(o.resolver.is_some(), "the raw value stays");
        assert_eq!(
            errors("resolver: FOO"),
            vec![RESOLVER_KIND_ERROR.to_owned()]
        );
        assert_eq!(
            errors("resolver: 5"),
            vec!["error parsing operator resolver, wrong type int64".to_owned()]
        );
        assert_eq!(
            errors("resolver: \"URL(:nope)\""),
            vec![
                "error parsing account resolver url [\":nope\"]".to_owned(),
                RESOLVER_KIND_ERROR.to_owned()
            ]
        );
    }

    #[test]
    fn full_defaults_and_options() {
        let tmp = std::env::temp_dir();
        let d = dir_opts(&format!(
            "resolver {{ type: full, dir: {:?} }}",
            tmp.join("natrix-full-x")
        ));
        assert_eq!(d.kind, DirResolverKind::Full);
        assert_eq!(d.delete, DeleteMode::NoDelete);
        assert_eq!(d.limit, None);
        assert_eq!(d.interval, DEFAULT_RESOLVER_SYNC_INTERVAL);
        assert_eq!(d.timeout, DEFAULT_RESOLVER_FETCH_TIMEOUT);
        assert_eq!(d.ttl, Duration::ZERO);
        let d = dir_opts(
            "resolver { type: FULL, dir: \"./jwt\", allow_delete: true, interval: \"2m\", limit: 5, timeout: \"3s\" }",
        );
        assert_eq!(d.dir, PathBuf::from("./jwt"));
        assert_eq!(d.delete, DeleteMode::Rename);
        assert_eq!(d.limit, Some(5));
        assert_eq!(d.interval, Duration::from_secs(120));
        assert_eq!(d.timeout, Duration::from_secs(3));
        let d = dir_opts(
            "resolver { type: full, dir: \"./jwt\", allow_delete: true, hard_delete: true }",
        );
        assert_eq!(d.delete, DeleteMode::Hard);
        let o = load("resolver { type: mem }").expect("loads");
        assert_eq!(o.resolver_opts, Some(ResolverOpts::Memory));
    }

    #[test]
    fn cache_defaults() {
        let d = dir_opts("resolver { type: cache, dir: \"./jwt\" }");
        assert_eq!(d.kind, DirResolverKind::Cache);
        assert_eq!(d.limit, Some(DEFAULT_CACHE_RESOLVER_LIMIT));
        assert_eq!(d.delete, DeleteMode::Hard);
        let d = dir_opts("resolver { type: cache, dir: \"./jwt\", limit: 7, ttl: \"1h\" }");
        assert_eq!(d.limit, Some(7));
        assert_eq!(d.ttl, Duration::from_secs(3600));
    }

    #[test]
    fn map_errors_match_nats_server() {
        assert_eq!(
            errors("resolver { type: full }"),
            vec![
                "dir has no value and needs to point to a directory",
                "mkdir : no such file or directory"
            ]
        );
        assert_eq!(
            errors(
                "resolver { type: cache, dir: \"./j\", interval: \"2m\", allow_delete: true, hard_delete: false }"
            ),
            vec![
                "CACHE does not accept sync",
                "CACHE does not accept allow_delete",
                "CACHE does not accept hard_delete"
            ]
        );
        assert_eq!(
            errors("resolver { type: full, dir: \"./j\", ttl: \"2m\", hard_delete: true }"),
            vec![
                "FULL does not accept ttl",
                "hard_delete has no effect without delete"
            ]
        );
        assert_eq!(
            errors("resolver { type: full, dir: \"./j\", interval: \"abc\" }"),
            vec!["time: invalid duration \"abc\""]
        );
        assert_eq!(
            errors("resolver { type: full, dir: \"./j\", interval: 5 }"),
            vec!["interface conversion: interface {} is int64, not string"]
        );
        assert_eq!(
            errors("resolver { type: full, dir: \"./j\", limit: \"5\" }"),
            vec!["interface conversion: interface {} is string, not int64"]
        );
        assert_eq!(
            errors("resolver { type: full, dir: \"./j\", timeout: \"0s\" }"),
            vec!["Fetch timeout 0s is too smal"]
        );
        assert_eq!(
            errors("resolver { dir: \"./j\" }"),
            vec![RESOLVER_KIND_ERROR]
        );
        assert_eq!(
            errors("resolver { type: bogus, dir: \"./j\" }"),
            vec![RESOLVER_KIND_ERROR]
        );
    }

    #[test]
    fn dir_that_is_a_file() {
        let f = std::env::temp_dir().join(format!("natrix-res-file-{}", std::process::id()));
        std::fs::write(&f, "x").expect("write");
        assert_eq!(
            errors(&format!("resolver {{ type: full, dir: {:?} }}", f)),
            vec![
                "dir needs to point to an accessible directory".to_owned(),
                format!("mkdir {}: not a directory", f.display())
            ]
        );
        let _ = std::fs::remove_file(&f);
    }

    #[test]
    fn preload_is_checked() {
        let (op, _) = operator();
        let (pk, jwt) = account_jwt(&op);
        let o = load(&format!(
            "resolver: MEM\nresolver_preload {{ {pk}: {jwt:?} }}"
        ))
        .expect("loads");
        assert_eq!(o.resolver_preload, vec![(pk, jwt)]);
        assert_eq!(
            errors("resolver_preload: 5"),
            vec!["preload should be a map of account_public_key:account_jwt"]
        );
        assert_eq!(
            errors("resolver_preload { A: 5 }"),
            vec!["preload map value should be a string JWT"]
        );
        assert_eq!(
            errors("resolver_preload { A: \"xyz\" }"),
            vec!["invalid account JWT"]
        );
        // An operator JWT is not an account JWT.
        let (_, opjwt) = operator();
        assert_eq!(
            errors(&format!("resolver_preload {{ A: {opjwt:?} }}")),
            vec!["invalid account JWT"]
        );
    }

    #[test]
    fn operators_from_files_and_inline() {
        let (_, jwt) = operator();
        let dir = std::env::temp_dir().join(format!("natrix-op-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("dir");
        let bare = dir.join("op.jwt");
        std::fs::write(&bare, format!("{jwt}\n")).expect("write");
        let decorated = dir.join("op-decorated.jwt");
        std::fs::write(&decorated, natrix_jwt::format_jwt("operator", &jwt)).expect("write");

        let o = load(&format!(
            "operator: [{:?}, {:?}, {jwt:?}]\nresolver: MEM",
            bare, decorated
        ))
        .expect("loads");
        assert_eq!(o.operator_jwts, vec![jwt.clone(), jwt.clone(), jwt.clone()]);
        assert_eq!(
            load_operators(&o),
            Ok(vec![jwt.clone(), jwt.clone(), jwt.clone()])
        );
        assert_eq!(o.resolver_opts, Some(ResolverOpts::Memory));

        // One operator and no resolver: its account server.
        let o = load(&format!("operator: {jwt:?}")).expect("loads");
        assert_eq!(
            o.resolver_opts,
            Some(ResolverOpts::Url(
                "http://acc.example:9090/jwt/v1/accounts".into()
            ))
        );

        assert_eq!(
            errors("operator: \"/nonexistent/op.jwt\""),
            vec!["error parsing operator JWT: open /nonexistent/op.jwt: no such file or directory"]
        );
        assert_eq!(
            errors("operator: eyJhbGc"),
            vec!["error parsing operator JWT: expected 3 chunks"]
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn url_argument_matches_the_go_pattern() {
        assert_eq!(url_argument("(\"http://a/b\")"), Some("http://a/b"));
        assert_eq!(url_argument("( http://a/b )"), Some("http://a/b"));
        assert_eq!(url_argument("(http://a/b))"), Some("http://a/b)"));
        assert_eq!(url_argument(""), None);
        assert_eq!(url_argument("(http://a"), None);
    }

    #[test]
    fn go_url_parse_failures() {
        assert!(go_url_parses("http://localhost:9090/jwt/v1"));
        assert!(go_url_parses(""));
        assert!(!go_url_parses(":nope"));
        assert!(!go_url_parses("http://a/%zz"));
    }

    #[test]
    fn mkdir_errors() {
        assert_eq!(
            mkdir_error("").as_deref(),
            Some("mkdir : no such file or directory")
        );
        assert_eq!(mkdir_error("/definitely/not/there"), None);
        let f = std::env::temp_dir().join(format!("natrix-res-{}", std::process::id()));
        std::fs::write(&f, "x").expect("write");
        let below = f.join("sub");
        assert_eq!(
            mkdir_error(&below.display().to_string()),
            Some(format!("mkdir {}: not a directory", f.display()))
        );
        let _ = std::fs::remove_file(&f);
    }
}
