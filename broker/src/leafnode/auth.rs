//! Leaf node authentication: which account a connecting spoke is bound to on the hub, and
//! the credentials a spoke presents (user and password from the remote URL, an nkey seed,
//! or a `.creds` file: user JWT plus the seed that signs the hub's nonce).
//!
//! What the hub accepts, in nats-server's order:
//! 1. `leafnodes { authorization { users [...] } }`: user/password, bound to the user's
//!    `account` (`$G` without one);
//! 2. `leafnodes { authorization { user, password, account } }`;
//! 3. `leafnodes { authorization { nkey, account } }`: the nkey, or the `sub` of a user
//!    JWT, with its signature of the nonce;
//! 4. without a leafnode `authorization` block, the server's own users, nkey users and
//!    token (users whose `allowed_connection_types` admit `LEAFNODE`);
//! 5. with no authentication configured anywhere, every spoke, bound to `$G`.
//!
//! Natrix has no operator/resolver trust chain yet, so a user JWT is accepted when it is
//! well formed, unexpired, signed by its issuer, its `sub` signed the nonce, and that `sub`
//! is a configured nkey user (step 3 or 4): the configuration, not the JWT's issuer, picks
//! the account. See docs/compatibility.md.

use std::path::Path;

use base64::Engine as _;

use std::sync::Arc;

use crate::auth::Permissions;
use crate::server::options::RuntimeOptions;

/// The connection type leaf connections have for `allowed_connection_types`.
pub const LEAFNODE: &str = "LEAFNODE";

/// Why a spoke was refused; on the wire always `Authorization Violation`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum AuthError {
    #[error("no credentials presented")]
    Missing,
    #[error("unknown user {0:?}")]
    UnknownUser(String),
    #[error("wrong password")]
    Password,
    #[error("nonce signature does not verify")]
    Signature,
    #[error("invalid user JWT: {0}")]
    Jwt(&'static str),
    #[error("user JWT expired")]
    Expired,
    #[error("connection type LEAFNODE not allowed for user {0:?}")]
    ConnectionType(String),
}

/// Why a remote's credentials file could not be used.
#[derive(Debug, thiserror::Error)]
pub enum CredsError {
    #[error("reading {0}: {1}")]
    Read(String, std::io::Error),
    #[error("no user JWT in {0}")]
    NoJwt(String),
    #[error("no nkey seed in {0}")]
    NoSeed(String),
    #[error("invalid nkey seed in {0}")]
    Seed(String),
}

/// What a spoke's CONNECT presented.
#[derive(Debug, Default)]
pub struct Presented<'a> {
    pub user: Option<&'a str>,
    pub pass: Option<&'a str>,
    pub token: Option<&'a str>,
    pub nkey: Option<&'a str>,
    pub jwt: Option<&'a str>,
    pub sig: Option<&'a str>,
    pub nonce: &'a str,
}

/// The identity a spoke was accepted as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Binding {
    pub user: Option<String>,
    pub account: String,
    /// The user's permissions, from the spoke's point of view: `publish` limits what it
    /// may send (`LMSG`), `subscribe` what it may receive (`LS+`).
    pub permissions: Option<Arc<Permissions>>,
}

fn account_or_global(a: &str) -> String {
    if a.is_empty() {
        "$G".to_owned()
    } else {
        a.to_owned()
    }
}

fn password_ok(stored: &str, given: &str) -> bool {
    if stored.starts_with("$2") {
        bcrypt::verify(given, stored).unwrap_or(false)
    } else {
        stored.len() == given.len()
            && stored
                .bytes()
                .zip(given.bytes())
                .fold(0u8, |acc, (x, y)| acc | (x ^ y))
                == 0
    }
}

fn b64(s: &str) -> Option<Vec<u8>> {
    let s = s.trim_end_matches('=');
    base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(s)
        .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(s))
        .ok()
}

/// Checks that `nkey` signed `nonce` (`sig` in base64).
fn verify_nonce(nkey: &str, sig: Option<&str>, nonce: &str) -> Result<(), AuthError> {
    let raw = sig.and_then(b64).ok_or(AuthError::Signature)?;
    let key = nkeys::KeyPair::from_public_key(nkey).map_err(|_| AuthError::Signature)?;
    key.verify(nonce.as_bytes(), &raw)
        .map_err(|_| AuthError::Signature)
}

/// Checks a user JWT (form, issuer signature, validity window) with the project's JWT
/// code; returns its subject (the user's public nkey).
pub fn user_jwt_subject(jwt: &str) -> Result<String, AuthError> {
    let claims =
        natrix_jwt::decode_user(jwt.trim()).map_err(|_| AuthError::Jwt("invalid user JWT"))?;
    match natrix_jwt::validate(&claims, natrix_jwt::now_unix()) {
        Ok(()) => Ok(claims.data.subject),
        Err(natrix_jwt::TimeError::Expired { .. }) => Err(AuthError::Expired),
        Err(_) => Err(AuthError::Jwt("user JWT not yet valid")),
    }
}

fn type_allowed(types: Option<&Vec<String>>) -> bool {
    types.is_none_or(|t| t.iter().any(|k| k == LEAFNODE))
}

/// Authenticates a spoke's CONNECT; the account to bind it to. A spoke that presents
/// nothing is `no_auth_user` when that names a user or nkey of the server's
/// authorization, as nats-server binds it (no password or signature asked).
pub fn authenticate(
    opts: &RuntimeOptions,
    p: &Presented<'_>,
    no_auth_user: Option<&str>,
) -> Result<Binding, AuthError> {
    let l = &opts.config.leafnode;
    // The nkey proven by a JWT or presented directly.
    let nkey = match p.jwt.filter(|j| !j.is_empty()) {
        Some(jwt) => Some(user_jwt_subject(jwt)?),
        None => p.nkey.filter(|k| !k.is_empty()).map(str::to_owned),
    };
    if !l.users.is_empty() {
        let name = p.user.filter(|u| !u.is_empty()).ok_or(AuthError::Missing)?;
        let u = l
            .users
            .iter()
            .find(|u| u.username == name)
            .ok_or_else(|| AuthError::UnknownUser(name.to_owned()))?;
        if !password_ok(&u.password, p.pass.unwrap_or_default()) {
            return Err(AuthError::Password);
        }
        return Ok(Binding {
            user: Some(u.username.clone()),
            account: account_or_global(&u.account),
            permissions: None,
        });
    }
    if !l.username.is_empty() {
        let name = p.user.ok_or(AuthError::Missing)?;
        if name != l.username {
            return Err(AuthError::UnknownUser(name.to_owned()));
        }
        if !password_ok(&l.password, p.pass.unwrap_or_default()) {
            return Err(AuthError::Password);
        }
        return Ok(Binding {
            user: Some(name.to_owned()),
            account: account_or_global(&l.account),
            permissions: None,
        });
    }
    if !l.nkey.is_empty() {
        let nkey = nkey.ok_or(AuthError::Missing)?;
        if nkey != l.nkey {
            return Err(AuthError::UnknownUser(nkey));
        }
        verify_nonce(&nkey, p.sig, p.nonce)?;
        return Ok(Binding {
            user: Some(nkey),
            account: account_or_global(&l.account),
            permissions: None,
        });
    }
    let auth = &opts.auth;
    if !auth.required() {
        return Ok(Binding {
            user: None,
            account: "$G".to_owned(),
            permissions: auth.default_permissions.clone(),
        });
    }
    let anonymous = nkey.is_none()
        && [p.user, p.pass, p.token]
            .iter()
            .all(|v| v.is_none_or(str::is_empty));
    let stand_in = no_auth_user.filter(|_| anonymous);
    if let Some(n) = stand_in.filter(|n| auth.nkeys.contains_key(*n))
        && let Some(u) = auth.nkeys.get(n)
    {
        return Ok(Binding {
            account: u.account.clone().unwrap_or_else(|| "$G".to_owned()),
            user: Some(n.to_owned()),
            permissions: u
                .permissions
                .clone()
                .or_else(|| auth.default_permissions.clone()),
        });
    }
    if let Some(u) = stand_in.and_then(|n| auth.users.get(n)) {
        if !type_allowed(u.connection_types.as_ref()) {
            return Err(AuthError::ConnectionType(u.username.clone()));
        }
        return Ok(Binding {
            user: Some(u.username.clone()),
            account: u.account.clone().unwrap_or_else(|| "$G".to_owned()),
            permissions: u
                .permissions
                .clone()
                .or_else(|| auth.default_permissions.clone()),
        });
    }
    if let Some(nkey) = nkey {
        let u = auth
            .nkeys
            .get(&nkey)
            .ok_or_else(|| AuthError::UnknownUser(nkey.clone()))?;
        if !type_allowed(u.connection_types.as_ref()) {
            return Err(AuthError::ConnectionType(nkey));
        }
        verify_nonce(&nkey, p.sig, p.nonce)?;
        return Ok(Binding {
            account: u.account.clone().unwrap_or_else(|| "$G".to_owned()),
            user: Some(nkey),
            permissions: u
                .permissions
                .clone()
                .or_else(|| auth.default_permissions.clone()),
        });
    }
    if let Some(token) = &auth.token {
        let given = p.token.or(p.pass).ok_or(AuthError::Missing)?;
        return if password_ok(token, given) {
            Ok(Binding {
                user: None,
                account: "$G".to_owned(),
                permissions: auth.default_permissions.clone(),
            })
        } else {
            Err(AuthError::Password)
        };
    }
    let name = p.user.filter(|u| !u.is_empty()).ok_or(AuthError::Missing)?;
    let u = auth
        .users
        .get(name)
        .ok_or_else(|| AuthError::UnknownUser(name.to_owned()))?;
    if !type_allowed(u.connection_types.as_ref()) {
        return Err(AuthError::ConnectionType(name.to_owned()));
    }
    if !password_ok(&u.password, p.pass.unwrap_or_default()) {
        return Err(AuthError::Password);
    }
    Ok(Binding {
        user: Some(name.to_owned()),
        account: u.account.clone().unwrap_or_else(|| "$G".to_owned()),
        permissions: u
            .permissions
            .clone()
            .or_else(|| auth.default_permissions.clone()),
    })
}

/// Reads a `.creds` file: the user JWT and the nkey seed, each the first line inside its
/// `-----BEGIN …-----` / `------END …------` fence.
pub fn read_creds(path: &Path) -> Result<(String, nkeys::KeyPair), CredsError> {
    let name = path.display().to_string();
    let text = std::fs::read_to_string(path).map_err(|e| CredsError::Read(name.clone(), e))?;
    let mut blocks = Vec::new();
    let mut lines = text.lines().map(str::trim);
    while let Some(line) = lines.next() {
        if line.starts_with("---")
            && line.contains("BEGIN")
            && let Some(content) = lines.by_ref().find(|l| !l.is_empty())
        {
            blocks.push(content.to_owned());
        }
    }
    let jwt = blocks
        .iter()
        .find(|b| b.starts_with("ey"))
        .cloned()
        .ok_or_else(|| CredsError::NoJwt(name.clone()))?;
    let seed = blocks
        .iter()
        .find(|b| b.starts_with('S'))
        .ok_or_else(|| CredsError::NoSeed(name.clone()))?;
    let kp = nkeys::KeyPair::from_seed(seed).map_err(|_| CredsError::Seed(name))?;
    Ok((jwt, kp))
}

/// The base64url (no padding) signature of `nonce`, as CONNECT `sig` carries it.
pub fn sign_nonce(kp: &nkeys::KeyPair, nonce: &str) -> String {
    let sig = kp.sign(nonce.as_bytes()).unwrap_or_default();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(sig)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn user_jwt(account: &nkeys::KeyPair, user: &str, exp: Option<i64>) -> String {
        let mut claims = natrix_jwt::UserClaims::new(user.to_owned());
        if let Some(exp) = exp {
            claims.data.expires = exp;
        }
        natrix_jwt::encode(&claims, account).expect("encode")
    }

    #[test]
    fn jwt_and_creds() {
        let account = nkeys::KeyPair::new_account();
        let user = nkeys::KeyPair::new_user();
        let jwt = user_jwt(&account, &user.public_key(), None);
        assert_eq!(user_jwt_subject(&jwt), Ok(user.public_key()));
        assert_eq!(
            user_jwt_subject(&user_jwt(&account, &user.public_key(), Some(1))),
            Err(AuthError::Expired)
        );
        let mut forged = jwt.clone();
        forged.push('A');
        assert!(user_jwt_subject(&forged).is_err());
        assert!(user_jwt_subject("a.b").is_err());
        let sig = sign_nonce(&user, "nonce123");
        assert_eq!(
            verify_nonce(&user.public_key(), Some(&sig), "nonce123"),
            Ok(())
        );
        assert_eq!(
            verify_nonce(&user.public_key(), Some(&sig), "other"),
            Err(AuthError::Signature)
        );
        let dir = std::env::temp_dir().join(format!("natrix-creds-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap_or_default();
        let path = dir.join("u.creds");
        let seed = user.seed().unwrap_or_default();
        std::fs::write(
            &path,
            format!(
                "-----BEGIN NATS USER JWT-----\n{jwt}\n------END NATS USER JWT------\n\n\
                 ************************* IMPORTANT *************************\n\n\
                 -----BEGIN USER NKEY SEED-----\n{seed}\n------END USER NKEY SEED------\n"
            ),
        )
        .unwrap_or_default();
        let (j, kp) = read_creds(&path).expect("creds");
        assert_eq!(j, jwt);
        assert_eq!(kp.public_key(), user.public_key());
        let _ = std::fs::remove_dir_all(&dir);
    }
}
