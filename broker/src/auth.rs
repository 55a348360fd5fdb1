//! Client authentication (token, user/password, a users list) and publish/subscribe
//! permissions, with nats-server's semantics and error texts.

use std::collections::HashMap;
use std::sync::Arc;

use crate::subject;

/// Allow and deny lists of subjects (wildcards allowed).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct SubjectPermission {
    /// `None` allows everything; `Some(vec![])` allows nothing.
    pub allow: Option<Vec<String>>,
    pub deny: Vec<String>,
}

impl SubjectPermission {
    /// A publish subject is allowed if an allow entry matches it (or there is no allow
    /// list) and no deny entry does.
    pub fn allows_publish(&self, subj: &[u8]) -> bool {
        let allowed = self
            .allow
            .as_ref()
            .is_none_or(|allow| allow.iter().any(|p| subject::matches(p.as_bytes(), subj)));
        allowed
            && !self
                .deny
                .iter()
                .any(|p| subject::matches(p.as_bytes(), subj))
    }

    /// A subscription subject (possibly with wildcards) is allowed if it lies within an
    /// allow entry, and no deny entry covers it. An allow entry `"subj queue"` only allows
    /// queue subscriptions in that group.
    pub fn allows_subscribe(&self, subj: &[u8], queue: Option<&[u8]>) -> bool {
        let entry_allows = |entry: &str| {
            let mut parts = entry.splitn(2, ' ');
            let pattern = parts.next().unwrap_or_default();
            let group = parts.next().map(str::trim);
            let subject_ok = subset_of(subj, pattern.as_bytes());
            match (group, queue) {
                (None, _) => subject_ok,
                (Some(g), Some(q)) => subject_ok && (g.as_bytes() == q || g == "*" || g == ">"),
                (Some(_), None) => false,
            }
        };
        let allowed = self
            .allow
            .as_ref()
            .is_none_or(|allow| allow.iter().any(|e| entry_allows(e)));
        let denied = self.deny.iter().any(|e| {
            let pattern = e.split(' ').next().unwrap_or_default();
            subset_of(subj, pattern.as_bytes())
        });
        allowed && !denied
    }
}

/// Whether every subject matched by `sub` is also matched by `pattern`.
fn subset_of(sub: &[u8], pattern: &[u8]) -> bool {
    let mut s = sub.split(|&b| b == subject::TSEP);
    let mut p = pattern.split(|&b| b == subject::TSEP);
    loop {
        match (p.next(), s.next()) {
            (None, None) => return true,
            (Some(b">"), Some(_)) => return true,
            (Some(b"*"), Some(t)) if t != b">" => {}
            (Some(pt), Some(t)) if pt == t => {}
            _ => return false,
        }
    }
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Option<SubjectPermission>,
    pub subscribe: Option<SubjectPermission>,
    /// `allow_responses`: the user may publish to the reply subject of a message it
    /// received, whatever its publish permissions say.
    pub response: Option<ResponsePermission>,
}

/// How many responses per received request, for how long.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ResponsePermission {
    /// Responses allowed per request; `None`: unlimited.
    pub max_msgs: Option<u32>,
    /// How long after the request arrived; `None`: forever.
    pub expires: Option<std::time::Duration>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    pub username: String,
    /// Plain text, or a bcrypt hash (`$2a$...`).
    pub password: String,
    pub permissions: Option<Arc<Permissions>>,
    /// The account the user is bound to; `None`: `$G`.
    pub account: Option<String>,
    /// `allowed_connection_types` (upper case); `None` allows every kind.
    pub connection_types: Option<Vec<String>>,
}

/// The connection kind a plain NATS client connection is, for `allowed_connection_types`.
pub const STANDARD: &str = "STANDARD";

/// The server's authentication settings.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Auth {
    pub token: Option<String>,
    pub users: HashMap<String, User>,
    /// Users identified by an nkey (public key `U...`): they prove it by signing the
    /// nonce of the connection's INFO.
    pub nkeys: HashMap<String, NkeyUser>,
    pub no_auth_user: Option<String>,
    pub default_permissions: Option<Arc<Permissions>>,
}

/// A user who authenticates with an nkey signature.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NkeyUser {
    pub permissions: Option<Arc<Permissions>>,
    /// The account the user is bound to; `None`: `$G`.
    pub account: Option<String>,
    /// `allowed_connection_types` (upper case); `None` allows every kind.
    pub connection_types: Option<Vec<String>>,
}

fn kind_allowed(types: Option<&Vec<String>>) -> bool {
    types.is_none_or(|t| t.iter().any(|k| k == STANDARD))
}

/// What a client presented in its CONNECT.
#[derive(Debug, Default)]
pub struct Credentials<'a> {
    pub user: Option<&'a str>,
    pub pass: Option<&'a str>,
    pub token: Option<&'a str>,
    /// The nkey public key, the base64url signature of the nonce, and that nonce.
    pub nkey: Option<&'a str>,
    pub sig: Option<&'a str>,
    pub nonce: Option<&'a str>,
}

/// The identity a connection was accepted as.
#[derive(Debug, Clone, Default)]
pub struct Authenticated {
    pub user: Option<String>,
    pub permissions: Option<Arc<Permissions>>,
    /// The account to bind the connection to; `None`: `$G`.
    pub account: Option<String>,
}

pub(crate) fn password_matches(stored: &str, given: &str) -> bool {
    if stored.starts_with("$2") {
        bcrypt::verify(given, stored).unwrap_or(false)
    } else {
        constant_time_eq(stored.as_bytes(), given.as_bytes())
    }
}

fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

impl Auth {
    pub fn required(&self) -> bool {
        self.token.is_some() || !self.users.is_empty() || !self.nkeys.is_empty()
    }

    /// Whether INFO must carry a nonce for clients to sign.
    pub fn needs_nonce(&self) -> bool {
        !self.nkeys.is_empty()
    }

    /// Checks an nkey login: the key is a configured user and `sig` is its signature of
    /// `nonce` (base64, URL-safe or standard, padded or not, as NATS clients send it).
    fn nkey_login(&self, creds: &Credentials<'_>, nkey: &str) -> Option<Authenticated> {
        use base64::Engine as _;
        let user = self.nkeys.get(nkey)?;
        if !kind_allowed(user.connection_types.as_ref()) {
            return None;
        }
        let nonce = creds.nonce?;
        let sig = creds.sig?.trim_end_matches('=');
        let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .decode(sig)
            .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(sig))
            .ok()?;
        let key = nkeys::KeyPair::from_public_key(nkey).ok()?;
        key.verify(nonce.as_bytes(), &raw).ok()?;
        Some(Authenticated {
            user: Some(nkey.to_owned()),
            permissions: user
                .permissions
                .clone()
                .or_else(|| self.default_permissions.clone()),
            account: user.account.clone(),
        })
    }

    /// Checks CONNECT credentials; `None` is an authorization violation.
    pub fn authenticate(&self, creds: &Credentials<'_>) -> Option<Authenticated> {
        if !self.required() {
            return Some(Authenticated {
                permissions: self.default_permissions.clone(),
                ..Authenticated::default()
            });
        }
        if let Some(token) = &self.token {
            let given = creds.token.or(creds.pass)?;
            return password_matches(token, given).then(|| Authenticated {
                permissions: self.default_permissions.clone(),
                ..Authenticated::default()
            });
        }
        if let Some(nkey) = creds.nkey.filter(|k| !k.is_empty())
            && !self.nkeys.is_empty()
        {
            return self.nkey_login(creds, nkey);
        }
        let user_name = match creds.user {
            Some(u) if !u.is_empty() => u,
            _ => {
                // No credentials: the no_auth_user, if configured, is assumed.
                if creds.pass.is_none()
                    && creds.token.is_none()
                    && let Some(name) = &self.no_auth_user
                    && let Some(u) = self.users.get(name)
                    && kind_allowed(u.connection_types.as_ref())
                {
                    return Some(self.identity(u));
                }
                return None;
            }
        };
        let user = self.users.get(user_name)?;
        if !kind_allowed(user.connection_types.as_ref()) {
            return None;
        }
        password_matches(&user.password, creds.pass.unwrap_or_default())
            .then(|| self.identity(user))
    }

    fn identity(&self, user: &User) -> Authenticated {
        Authenticated {
            user: Some(user.username.clone()),
            permissions: user
                .permissions
                .clone()
                .or_else(|| self.default_permissions.clone()),
            account: user.account.clone(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_permissions() {
        let p = SubjectPermission {
            allow: Some(vec!["foo.*".into(), "bar".into()]),
            deny: vec!["foo.secret".into()],
        };
        assert!(p.allows_publish(b"foo.x"));
        assert!(p.allows_publish(b"bar"));
        assert!(!p.allows_publish(b"foo.secret"));
        assert!(!p.allows_publish(b"baz"));
    }

    #[test]
    fn subscribe_permissions() {
        let p = SubjectPermission {
            allow: Some(vec!["foo.>".into(), "q.only grp".into()]),
            deny: vec![],
        };
        assert!(p.allows_subscribe(b"foo.*", None));
        assert!(p.allows_subscribe(b"foo.a.b", None));
        assert!(!p.allows_subscribe(b">", None));
        assert!(!p.allows_subscribe(b"q.only", None));
        assert!(p.allows_subscribe(b"q.only", Some(b"grp")));
        assert!(!p.allows_subscribe(b"q.only", Some(b"other")));
        let nothing = SubjectPermission {
            allow: Some(vec![]),
            deny: vec![],
        };
        assert!(!nothing.allows_publish(b"foo"));
        assert!(!nothing.allows_subscribe(b"foo", None));
        let everything = SubjectPermission::default();
        assert!(everything.allows_publish(b"foo"));
    }

    #[test]
    fn user_password_and_token() {
        let mut auth = Auth::default();
        assert!(auth.authenticate(&Credentials::default()).is_some());
        auth.token = Some("s3cr3t".into());
        assert!(auth.authenticate(&Credentials::default()).is_none());
        assert!(
            auth.authenticate(&Credentials {
                token: Some("s3cr3t"),
                ..Credentials::default()
            })
            .is_some()
        );
        auth.token = None;
        auth.users.insert(
            "alice".into(),
            User {
                username: "alice".into(),
                password: "pw".into(),
                permissions: None,
                account: None,
                connection_types: None,
            },
        );
        let ok = Credentials {
            user: Some("alice"),
            pass: Some("pw"),
            ..Credentials::default()
        };
        assert_eq!(
            auth.authenticate(&ok).unwrap().user.as_deref(),
            Some("alice")
        );
        let bad = Credentials {
            user: Some("alice"),
            pass: Some("nope"),
            ..Credentials::default()
        };
        assert!(auth.authenticate(&bad).is_none());
        // A user limited to other connection kinds cannot log in on a plain connection.
        if let Some(u) = auth.users.get_mut("alice") {
            u.connection_types = Some(vec!["WEBSOCKET".into()]);
        }
        assert!(auth.authenticate(&ok).is_none());
        if let Some(u) = auth.users.get_mut("alice") {
            u.connection_types = Some(vec!["WEBSOCKET".into(), STANDARD.into()]);
        }
        assert!(auth.authenticate(&ok).is_some());
    }

    #[test]
    fn nkey_signature_over_the_nonce() {
        use base64::Engine as _;
        let kp = nkeys::KeyPair::new_user();
        let mut auth = Auth::default();
        auth.nkeys.insert(
            kp.public_key(),
            NkeyUser {
                permissions: None,
                account: Some("A".into()),
                connection_types: None,
            },
        );
        assert!(auth.required() && auth.needs_nonce());
        let nonce = "b1Zmgc2fMyf0k4w";
        let sig = base64::engine::general_purpose::URL_SAFE_NO_PAD
            .encode(kp.sign(nonce.as_bytes()).expect("sign"));
        let pk = kp.public_key();
        let creds = |nonce, sig| Credentials {
            nkey: Some(pk.as_str()),
            sig: Some(sig),
            nonce: Some(nonce),
            ..Credentials::default()
        };
        let who = auth
            .authenticate(&creds(nonce, &sig))
            .expect("valid signature");
        assert_eq!(who.account.as_deref(), Some("A"));
        assert!(auth.authenticate(&creds("another-nonce", &sig)).is_none());
        assert!(
            auth.authenticate(&creds(nonce, "bm90IGEgc2lnbmF0dXJl"))
                .is_none()
        );
    }
}
