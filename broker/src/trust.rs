//! JWT operator mode: the trust chain operator → account → user, as nats-server checks it.
//!
//! The configuration names one or more operator JWTs (`operator: <file or token>`) and a
//! resolver. An account exists when the resolver has a JWT for it, signed by a trusted
//! operator (its identity key or one of its signing keys). A user connects with a user JWT
//! issued by the account (or one of the account's signing keys, whose scope may supply
//! the permissions) and proves it holds the user's key by signing the INFO nonce, unless
//! the JWT is a bearer token.
//!
//! Every refusal is nats-server's: the client reads `Authorization Violation` and the
//! reason goes to the log at debug level, so a probing client learns nothing.

use std::collections::HashSet;
use std::net::IpAddr;
use std::sync::Arc;

use natrix_jwt::{AccountClaims, OperatorClaims, UserClaims};

use crate::auth::{Permissions, ResponsePermission, SubjectPermission};
use crate::resolver::AccountResolver;

/// The trusted operators and where account JWTs come from.
pub struct Trust {
    operators: Vec<OperatorClaims>,
    /// Every key allowed to sign accounts: the operators' identities and signing keys,
    /// and `trusted_keys`.
    keys: HashSet<String>,
    pub system_account: String,
    pub resolver: Arc<dyn AccountResolver>,
}

/// Why a configuration cannot run in operator mode (nats-server's start-up errors).
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum TrustError {
    #[error("error parsing operator JWT: {0}")]
    Operator(String),
    #[error("{0}")]
    Resolver(String),
}

impl Trust {
    /// Operator mode from the configuration: `None` when it names no operator. The
    /// operator JWTs were read (from files or inline) when the config was parsed.
    pub fn from_config(o: &natrix_config::Options) -> Result<Option<Arc<Self>>, TrustError> {
        let Some(resolver) = crate::resolver::from_config(o).map_err(TrustError::Resolver)? else {
            return Ok(None);
        };
        let mut operators = Vec::new();
        let mut keys: HashSet<String> = o.trusted_keys.iter().cloned().collect();
        for token in &o.operator_jwts {
            let claims = natrix_jwt::decode_operator(token)
                .map_err(|e| TrustError::Operator(e.to_string()))?;
            keys.insert(claims.data.subject.clone());
            keys.extend(claims.nats.signing_keys.iter().cloned());
            operators.push(claims);
        }
        let system_account = if o.system_account.is_empty() {
            operators
                .iter()
                .map(|op| op.nats.system_account.clone())
                .find(|s| !s.is_empty())
                .unwrap_or_default()
        } else {
            o.system_account.clone()
        };
        Ok(Some(Arc::new(Self {
            operators,
            keys,
            system_account,
            resolver,
        })))
    }

    /// Whether `issuer` may sign accounts.
    pub fn is_trusted(&self, issuer: &str) -> bool {
        self.keys.contains(issuer)
    }

    /// The operators, for monitoring.
    pub fn operators(&self) -> &[OperatorClaims] {
        &self.operators
    }

    /// Decodes an account JWT and checks that a trusted operator signed it for the
    /// account it names.
    pub fn verify_account(&self, jwt: &str) -> Result<AccountClaims, String> {
        let claims = natrix_jwt::decode_account(jwt).map_err(|e| e.to_string())?;
        if !self.is_trusted(&claims.data.issuer) {
            return Err("account JWT not signed by a trusted operator".into());
        }
        validate_imports(&claims)?;
        Ok(claims)
    }
}

/// The blocking checks of nats-io/jwt's `Import.Validate` on an account's imports: each
/// activation token must decode, come from the exporting account, be for this account,
/// be of the import's type, cover the import's subject and be in its validity window.
fn validate_imports(claims: &AccountClaims) -> Result<(), String> {
    let now = natrix_jwt::now_unix();
    for i in &claims.nats.imports {
        if i.account.is_empty() {
            return Err("account to import from is not specified".into());
        }
        if i.token.is_empty() {
            continue;
        }
        let Ok(act) = natrix_jwt::decode_activation(&i.token) else {
            return Err(format!(
                "import {:?} contains an invalid activation token",
                i.subject
            ));
        };
        if act.data.issuer != i.account && act.nats.issuer_account != i.account {
            return Err(format!(
                "activation token doesn't match account for import {:?}",
                i.subject
            ));
        }
        if act.data.subject != claims.data.subject {
            return Err(format!(
                "activation token doesn't match account it is being included in, {:?}",
                i.subject
            ));
        }
        if act.nats.import_type != i.import_type {
            return Err("mismatch between token import type and type of import".into());
        }
        if let Err(e) = natrix_jwt::validate(&act, now) {
            return Err(e.to_string());
        }
        let subject = if i.is_service() && !i.to.is_empty() {
            &i.to
        } else {
            &i.subject
        };
        let tokens: Vec<&[u8]> = subject.as_bytes().split(|&b| b == b'.').collect();
        if !natrix_transform::subset_match(&tokens, &act.nats.import_subject) {
            return Err(format!(
                "activation token import subject {:?} doesn't match import {:?}",
                act.nats.import_subject, i.subject
            ));
        }
    }
    Ok(())
}

/// What a client's CONNECT presented in operator mode.
pub struct JwtCredentials<'a> {
    pub jwt: Option<&'a str>,
    pub sig: Option<&'a str>,
    pub nonce: Option<&'a str>,
    /// `allowed_connection_types` name of the connection (`STANDARD`, `LEAFNODE`, …).
    pub connection_type: &'a str,
    pub peer: Option<IpAddr>,
}

/// A user the JWT chain admits.
#[derive(Debug, Clone)]
pub struct JwtUser {
    pub claims: UserClaims,
    /// The account the user belongs to (its public key).
    pub account: String,
    pub permissions: Option<Arc<Permissions>>,
}

/// Why a user JWT was refused (the log's words; the client reads
/// `Authorization Violation`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    #[error("Authentication requires a user JWT")]
    NoJwt,
    #[error("User JWT not valid: {0}")]
    Invalid(String),
    #[error("User JWT no longer valid: {0}")]
    Expired(String),
    #[error("Account JWT lookup error: no account {0}")]
    NoAccount(String),
    #[error("User JWT issuer is not known")]
    UnknownIssuer,
    #[error("Account JWT has expired")]
    AccountExpired,
    #[error("Account does not allow bearer tokens")]
    Bearer,
    #[error("Connection type not allowed")]
    ConnectionType,
    #[error("Signature missing")]
    NoSignature,
    #[error("Signature not verified")]
    BadSignature,
    #[error("User authentication revoked")]
    Revoked,
    #[error("Bad src Ip")]
    Source,
    #[error("Outside connect times")]
    Times,
}

/// Checks a user JWT against its account's claims (`account`, looked up by the caller
/// from the issuer), as nats-server's `processClientOrLeafAuthentication` does.
pub fn check_user(
    creds: &JwtCredentials<'_>,
    lookup: impl FnOnce(&str) -> Option<AccountClaims>,
    now: i64,
) -> Result<JwtUser, Refusal> {
    let token = creds.jwt.filter(|j| !j.is_empty()).ok_or(Refusal::NoJwt)?;
    let mut user = natrix_jwt::decode_user(token).map_err(|e| Refusal::Invalid(e.to_string()))?;
    natrix_jwt::validate(&user, now).map_err(|e| Refusal::Expired(e.to_string()))?;
    let account_key = if user.nats.issuer_account.is_empty() {
        user.data.issuer.clone()
    } else {
        user.nats.issuer_account.clone()
    };
    let account = lookup(&account_key).ok_or_else(|| Refusal::NoAccount(account_key.clone()))?;
    if user.data.issuer != account.data.subject
        && !account.nats.signing_keys.contains(&user.data.issuer)
    {
        return Err(Refusal::UnknownIssuer);
    }
    if let Some(scope) = account.nats.signing_key_scope(&user.data.issuer) {
        scope
            .validate_scoped_signer(&user)
            .map_err(|e| Refusal::Invalid(e.to_string()))?;
        user.nats.permission_limits = scope.template.clone();
    }
    if natrix_jwt::validate(&account, now).is_err() {
        return Err(Refusal::AccountExpired);
    }
    let pl = &user.nats.permission_limits;
    if pl.bearer_token && account.nats.limits.account.disallow_bearer {
        return Err(Refusal::Bearer);
    }
    if !pl.allowed_connection_types.is_empty()
        && !pl
            .allowed_connection_types
            .iter()
            .any(|t| t.eq_ignore_ascii_case(creds.connection_type))
    {
        return Err(Refusal::ConnectionType);
    }
    if !pl.bearer_token {
        use base64::Engine as _;
        let sig = creds
            .sig
            .filter(|s| !s.is_empty())
            .ok_or(Refusal::NoSignature)?;
        let sig = sig.trim_end_matches('=');
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(sig))
            .map_err(|_| Refusal::BadSignature)?;
        let key = natrix_jwt::nkeys::KeyPair::from_public_key(&user.data.subject)
            .map_err(|_| Refusal::BadSignature)?;
        key.verify(creds.nonce.unwrap_or_default().as_bytes(), &raw)
            .map_err(|_| Refusal::BadSignature)?;
    }
    if account
        .nats
        .is_revoked(&user.data.subject, user.data.issued_at)
    {
        return Err(Refusal::Revoked);
    }
    if !source_allowed(&pl.limits.user_limits.src, creds.peer) {
        return Err(Refusal::Source);
    }
    if !times_allowed(&pl.limits.user_limits.times, &pl.limits.user_limits.locale) {
        return Err(Refusal::Times);
    }
    let permissions = permissions_of(&pl.permissions)
        .or_else(|| permissions_of(&account.nats.default_permissions));
    Ok(JwtUser {
        claims: user,
        account: account_key,
        permissions,
    })
}

/// Whether the user is still admitted by (possibly updated) account claims: not revoked,
/// issuer still known. Used when an account JWT changes under connected clients.
pub fn still_admitted(user: &UserClaims, account: &AccountClaims) -> Result<(), Refusal> {
    if user.data.issuer != account.data.subject
        && !account.nats.signing_keys.contains(&user.data.issuer)
    {
        return Err(Refusal::UnknownIssuer);
    }
    if account
        .nats
        .is_revoked(&user.data.subject, user.data.issued_at)
    {
        return Err(Refusal::Revoked);
    }
    Ok(())
}

/// JWT permissions as the core's; `None` when they restrict nothing.
pub fn permissions_of(p: &natrix_jwt::Permissions) -> Option<Arc<Permissions>> {
    let side = |s: &natrix_jwt::Permission| {
        (!s.allow.is_empty() || !s.deny.is_empty()).then(|| SubjectPermission {
            allow: (!s.allow.is_empty()).then(|| s.allow.clone()),
            deny: s.deny.clone(),
        })
    };
    let out = Permissions {
        publish: side(&p.publish),
        subscribe: side(&p.subscribe),
        response: p.resp.as_ref().map(|r| ResponsePermission {
            max_msgs: u32::try_from(r.max).ok().filter(|m| *m > 0),
            expires: u64::try_from(r.ttl)
                .ok()
                .filter(|t| *t > 0)
                .map(std::time::Duration::from_nanos),
        }),
    };
    (out != Permissions::default()).then(|| Arc::new(out))
}

/// `src`: the networks (CIDR, or single addresses) a user may connect from.
fn source_allowed(src: &[String], peer: Option<IpAddr>) -> bool {
    let nets: Vec<&str> = src
        .iter()
        .flat_map(|s| s.split(','))
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .collect();
    if nets.is_empty() {
        return true;
    }
    let Some(peer) = peer else { return false };
    nets.iter().any(|net| cidr_contains(net, peer))
}

fn cidr_contains(net: &str, ip: IpAddr) -> bool {
    let (addr, bits) = match net.split_once('/') {
        Some((a, b)) => (a, b.parse::<u32>().ok()),
        None => (net, None),
    };
    let Ok(base) = addr.parse::<IpAddr>() else {
        return false;
    };
    match (base, ip) {
        (IpAddr::V4(b), IpAddr::V4(i)) => {
            let bits = bits.unwrap_or(32).min(32);
            let mask = if bits == 0 {
                0
            } else {
                u32::MAX << (32 - bits)
            };
            u32::from(b) & mask == u32::from(i) & mask
        }
        (IpAddr::V6(b), IpAddr::V6(i)) => {
            let bits = bits.unwrap_or(128).min(128);
            let mask = if bits == 0 {
                0
            } else {
                u128::MAX << (128 - bits)
            };
            u128::from(b) & mask == u128::from(i) & mask
        }
        _ => false,
    }
}

/// `times`: the daily windows (`HH:MM:SS` start and end) a user may connect in; the
/// locale is honoured for UTC only (other zones need a time zone database the server
/// does not carry, so they are refused rather than guessed).
fn times_allowed(times: &[natrix_jwt::TimeRange], locale: &str) -> bool {
    if times.is_empty() {
        return true;
    }
    if !locale.is_empty() && !locale.eq_ignore_ascii_case("UTC") {
        return false;
    }
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
        % 86_400;
    let parse = |t: &str| -> Option<u64> {
        let mut it = t.split(':').map(|p| p.parse::<u64>().ok());
        Some(it.next()?? * 3600 + it.next()?? * 60 + it.next().flatten().unwrap_or(0))
    };
    times
        .iter()
        .any(|r| match (parse(&r.start), parse(&r.end)) {
            (Some(s), Some(e)) if s <= e => (s..=e).contains(&secs),
            (Some(s), Some(e)) => secs >= s || secs <= e,
            _ => false,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cidr_matching() {
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(cidr_contains("127.0.0.0/8", ip("127.1.2.3")));
        assert!(!cidr_contains("10.0.0.0/8", ip("127.1.2.3")));
        assert!(cidr_contains("192.168.1.7", ip("192.168.1.7")));
        assert!(cidr_contains("::1/128", ip("::1")));
        assert!(source_allowed(&[], None));
        assert!(source_allowed(
            &["10.0.0.0/8, 127.0.0.1/32".into()],
            Some(ip("127.0.0.1"))
        ));
        assert!(!source_allowed(
            &["10.0.0.0/8".into()],
            Some(ip("127.0.0.1"))
        ));
    }

    #[test]
    fn whole_day_window_admits() {
        let all = natrix_jwt::TimeRange {
            start: "00:00:00".into(),
            end: "23:59:59".into(),
        };
        assert!(times_allowed(std::slice::from_ref(&all), ""));
        assert!(!times_allowed(&[all], "America/New_York"));
    }
}
