//! Client authentication (token, user/password, a users list) and publish/subscribe
//! permissions, with nats-server's semantics and error texts.

use std::collections::HashMap;
use std::sync::Arc;

use crate::dn::{self, Dn};
use crate::subject;
use crate::x509::PeerCert;

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
    /// `tls { verify_and_map: true }`: the client certificate selects the user.
    pub tls_map: bool,
    /// `users` holds only the top-level `user`/`password` (nats-server keeps that one
    /// outside its users table, so certificates never map to it).
    pub simple_user: bool,
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

/// A CONNECT field that was sent and is not empty (nats-server treats both alike).
fn given(v: Option<&str>) -> Option<&str> {
    v.filter(|v| !v.is_empty())
}

/// Whether `allowed_connection_types` lets in a connection of kind `kind`.
fn kind_allowed_as(types: Option<&Vec<String>>, kind: &str) -> bool {
    types.is_none_or(|t| t.iter().any(|k| k == kind))
}

/// The connection kind of a NATS client over WebSocket, for `allowed_connection_types`.
pub const WEBSOCKET: &str = "WEBSOCKET";

/// The connection kinds of an MQTT client, over TCP (or TLS) and over WebSocket.
pub const MQTT: &str = "MQTT";
pub const MQTT_WS: &str = "MQTT_WS";

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
    /// The client's TLS certificate, read when it presented one.
    pub cert: Option<&'a PeerCert>,
    /// A NATS client over WebSocket: `allowed_connection_types` must list `WEBSOCKET`
    /// rather than `STANDARD`.
    pub websocket: bool,
    /// An MQTT client: `MQTT`, or with `websocket` `MQTT_WS` (nats-server's kinds).
    pub mqtt: bool,
}

impl Credentials<'_> {
    /// The connection kind `allowed_connection_types` is checked against.
    pub fn kind(&self) -> &'static str {
        match (self.mqtt, self.websocket) {
            (true, true) => MQTT_WS,
            (true, false) => MQTT,
            (false, true) => WEBSOCKET,
            (false, false) => STANDARD,
        }
    }
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

/// A listener's own simple authentication (`username`/`password`, `token`,
/// `no_auth_user` inside `websocket {}` or `mqtt {}`): nats-server's "auth override".
#[derive(Debug, Clone, Copy, Default)]
pub struct Override<'a> {
    pub username: &'a str,
    pub password: &'a str,
    pub token: &'a str,
    pub no_auth_user: &'a str,
}

impl Override<'_> {
    /// nats-server turns the override on when any of these is set (a password alone
    /// means nothing without its user name).
    pub fn is_set(&self) -> bool {
        !(self.username.is_empty() && self.token.is_empty() && self.no_auth_user.is_empty())
    }
}

impl Auth {
    /// The authentication of a listener's clients under `o`: the server's users and
    /// nkeys, with the block's single user, token and no_auth_user in place of the
    /// top-level ones. `None` when the block sets none of them (the server's own
    /// authentication applies unchanged).
    pub fn with_override(&self, o: Override<'_>) -> Option<Auth> {
        if !o.is_set() {
            return None;
        }
        let mut auth = self.clone();
        if auth.simple_user {
            // The top-level `user`/`password` is the one being replaced.
            auth.users.clear();
            auth.simple_user = false;
        }
        auth.token = (!o.token.is_empty()).then(|| o.token.to_owned());
        auth.no_auth_user = (!o.no_auth_user.is_empty()).then(|| o.no_auth_user.to_owned());
        if !o.username.is_empty() {
            auth.users.insert(
                o.username.to_owned(),
                User {
                    username: o.username.to_owned(),
                    password: o.password.to_owned(),
                    permissions: None,
                    account: None,
                    connection_types: None,
                },
            );
            auth.simple_user = true;
        }
        Some(auth)
    }

    /// The authentication of MQTT clients: `mqtt {}`'s override (its `authorization`
    /// block and `no_auth_user`) on top of the server's, and the certificate mapping of
    /// the MQTT listener's own `tls {}` (nats-server always takes `verify_and_map` from
    /// there for MQTT clients, never from the top-level block). `None`: the server's
    /// authentication applies unchanged.
    pub fn for_mqtt(&self, m: &natrix_config::options::MqttOpts) -> Option<Auth> {
        let map = m.tls.as_ref().is_some_and(|t| t.map);
        let over = self.with_override(Override {
            username: &m.username,
            password: &m.password,
            token: &m.token,
            no_auth_user: &m.no_auth_user,
        });
        match over {
            Some(mut a) => {
                a.tls_map = map;
                Some(a)
            }
            None if self.tls_map != map => {
                let mut a = self.clone();
                a.tls_map = map;
                Some(a)
            }
            None => None,
        }
    }

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
        if !kind_allowed_as(user.connection_types.as_ref(), creds.kind()) {
            return None;
        }
        // The no_auth_user stands for clients that present nothing: no signature.
        if self.no_auth_user.as_deref() != Some(nkey) {
            let nonce = creds.nonce?;
            let sig = creds.sig?.trim_end_matches('=');
            let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
                .decode(sig)
                .or_else(|_| base64::engine::general_purpose::STANDARD_NO_PAD.decode(sig))
                .ok()?;
            let key = nkeys::KeyPair::from_public_key(nkey).ok()?;
            key.verify(nonce.as_bytes(), &raw).ok()?;
        }
        Some(Authenticated {
            user: Some(nkey.to_owned()),
            permissions: user
                .permissions
                .clone()
                .or_else(|| self.default_permissions.clone()),
            account: user.account.clone(),
        })
    }

    /// Checks CONNECT credentials; `None` is an authorization violation. The order is
    /// nats-server's `processClientOrLeafAuthentication`: nkey users (the no_auth_user
    /// too when it names one), then the users list (the client certificate under
    /// `verify_and_map`, else the CONNECT user or the no_auth_user), then the token.
    pub fn authenticate(&self, creds: &Credentials<'_>) -> Option<Authenticated> {
        if !self.required() {
            return Some(Authenticated {
                permissions: self.default_permissions.clone(),
                ..Authenticated::default()
            });
        }
        let anonymous = given(creds.user).is_none()
            && given(creds.pass).is_none()
            && given(creds.token).is_none();
        if !self.nkeys.is_empty() {
            let nkey = given(creds.nkey).or_else(|| {
                self.no_auth_user
                    .as_deref()
                    .filter(|n| anonymous && self.nkeys.contains_key(*n))
            });
            if let Some(nkey) = nkey {
                return self.nkey_login(creds, nkey);
            }
        }
        // The top-level user/password is nats-server's "simple" auth, outside its users
        // table: certificates are never mapped to it.
        let has_users = !self.users.is_empty() && !self.simple_user;
        if has_users && self.tls_map {
            let user = creds
                .cert
                .and_then(|c| self.map_certificate_as(c, creds.kind()))?;
            if let Some(u) = given(creds.user) {
                tracing::warn!("User {u:?} found in connect proto, but user required from cert");
            }
            // The mapped user's password, if it has one, must still be presented.
            return password_matches(&user.password, creds.pass.unwrap_or_default())
                .then(|| self.identity(user));
        }
        // The no_auth_user logs in with its own password, so it is compared with itself:
        // a bcrypt hash does not match itself, as in nats-server.
        let (name, pass) = match self.no_auth_user.as_deref() {
            Some(n) if anonymous && self.users.contains_key(n) => {
                (Some(n), self.users.get(n).map(|u| u.password.as_str()))
            }
            _ => (given(creds.user), creds.pass),
        };
        // Without users (a token alone) a CONNECT user is ignored, as in nats-server.
        if let Some(name) = name.filter(|_| !self.users.is_empty()) {
            let user = self.users.get(name)?;
            if !kind_allowed_as(user.connection_types.as_ref(), creds.kind()) {
                return None;
            }
            return password_matches(&user.password, pass.unwrap_or_default())
                .then(|| self.identity(user));
        }
        let token = self.token.as_ref()?;
        let presented = creds.token.or(creds.pass)?;
        password_matches(token, presented).then(|| Authenticated {
            permissions: self.default_permissions.clone(),
            ..Authenticated::default()
        })
    }

    /// The user a client certificate selects under `verify_and_map`, tried in
    /// nats-server's order (`checkClientTLSCertSubject`): each email SAN, DNS SAN and URI
    /// SAN as a user name; the subject as a DN equal to a user name parsed as one, first
    /// RDN by RDN, then in any RDN order; the RFC 2253 subject string with the `DC=`
    /// components appended; the subject string alone. Users whose
    /// `allowed_connection_types` exclude plain clients are skipped.
    ///
    /// User names are parsed as DNs on every mapped connection rather than once per
    /// configuration: it keeps `Auth` plain data, and a TLS handshake costs far more.
    pub fn map_certificate(&self, cert: &PeerCert) -> Option<&User> {
        self.map_certificate_as(cert, STANDARD)
    }

    /// [`Auth::map_certificate`] for a connection of kind `kind` (an MQTT client maps to
    /// users whose `allowed_connection_types` list `MQTT`).
    pub fn map_certificate_as(&self, cert: &PeerCert, kind: &str) -> Option<&User> {
        let by_name = |name: &str| {
            self.users
                .get(name)
                .filter(|u| kind_allowed_as(u.connection_types.as_ref(), kind))
        };
        for (what, names) in [
            ("email", &cert.emails),
            ("SAN", &cert.dns_names),
            ("URI", &cert.uris),
        ] {
            if let Some(u) = names.iter().find_map(|n| by_name(n)) {
                tracing::debug!("Using {what} found in cert for auth [{:?}]", u.username);
                return Some(u);
            }
        }
        let rdn = dn::rdn_sequence_string(&cert.subject);
        if let Some(cert_dn) = Dn::from_subject(&cert.subject) {
            let mut users: Vec<(&User, Dn)> = self
                .users
                .values()
                .filter(|u| kind_allowed_as(u.connection_types.as_ref(), kind))
                .filter_map(|u| Dn::parse(&u.username).ok().map(|d| (u, d)))
                .collect();
            // nats-server walks a map (random order); sorting makes ties predictable.
            users.sort_by(|a, b| a.0.username.cmp(&b.0.username));
            let found = users
                .iter()
                .find(|(_, d)| d.equal(&cert_dn))
                .or_else(|| users.iter().find(|(_, d)| d.rdns_match(&cert_dn)));
            if let Some((u, _)) = found {
                tracing::debug!("Using DistinguishedNameMatch for auth [{:?}]", u.username);
                return Some(u);
            }
        }
        let dcs = dn::domain_components(&cert.subject);
        if !dcs.is_empty()
            && let Some(u) = by_name(&format!("{rdn},{dcs}"))
        {
            tracing::debug!("Using RDNSequence for auth [{:?}]", u.username);
            return Some(u);
        }
        let found = by_name(&rdn);
        match found {
            Some(u) => tracing::debug!("Using certificate subject for auth [{:?}]", u.username),
            None => tracing::debug!("User in cert [{rdn:?}], not found"),
        }
        found
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

    fn user(name: &str) -> User {
        User {
            username: name.into(),
            password: String::new(),
            permissions: None,
            account: None,
            connection_types: None,
        }
    }

    fn cert_with(subject: &[(&[u8], &str)], emails: &[&str], dns: &[&str]) -> PeerCert {
        PeerCert {
            subject: subject
                .iter()
                .map(|(oid, v)| {
                    vec![crate::x509::Attribute {
                        oid: oid.to_vec(),
                        value: Some((*v).to_owned()),
                        der: Vec::new(),
                    }]
                })
                .collect(),
            emails: emails.iter().map(|s| (*s).to_owned()).collect(),
            dns_names: dns.iter().map(|s| (*s).to_owned()).collect(),
            ..PeerCert::default()
        }
    }

    #[test]
    fn certificate_mapping_order() {
        const O: &[u8] = &[0x55, 0x04, 0x0a];
        const CN: &[u8] = &[0x55, 0x04, 0x03];
        let mut auth = Auth {
            tls_map: true,
            ..Auth::default()
        };
        for name in ["a@b.c", "host.example", "CN=svc,O=Org", "O=Org,CN=svc"] {
            auth.users.insert(name.into(), user(name));
        }
        let mapped =
            |auth: &Auth, c: &PeerCert| auth.map_certificate(c).map(|u| u.username.clone());
        let subject: &[(&[u8], &str)] = &[(O, "Org"), (CN, "svc")];
        // Emails before DNS names before the subject.
        let all = cert_with(subject, &["x@y.z", "a@b.c"], &["host.example"]);
        assert_eq!(mapped(&auth, &all).as_deref(), Some("a@b.c"));
        let dns = cert_with(subject, &["x@y.z"], &["host.example"]);
        assert_eq!(mapped(&auth, &dns).as_deref(), Some("host.example"));
        // The DN in order wins over the reordered one.
        let dn = cert_with(subject, &[], &["unknown"]);
        assert_eq!(mapped(&auth, &dn).as_deref(), Some("CN=svc,O=Org"));
        auth.users.remove("CN=svc,O=Org");
        assert_eq!(mapped(&auth, &dn).as_deref(), Some("O=Org,CN=svc"));
        let other = cert_with(&[(CN, "nobody")], &[], &[]);
        assert_eq!(mapped(&auth, &other), None);
        // Through authenticate: no certificate, or an unmapped one, is a violation, and
        // the no_auth_user does not stand in for it.
        auth.no_auth_user = Some("a@b.c".into());
        assert!(auth.authenticate(&Credentials::default()).is_none());
        let creds = Credentials {
            cert: Some(&other),
            ..Credentials::default()
        };
        assert!(auth.authenticate(&creds).is_none());
        let creds = Credentials {
            cert: Some(&dns),
            user: Some("a@b.c"),
            ..Credentials::default()
        };
        let who = auth.authenticate(&creds).expect("mapped");
        assert_eq!(who.user.as_deref(), Some("host.example"));
        // A mapped user without a password refuses a CONNECT that brings one.
        let creds = Credentials {
            cert: Some(&dns),
            pass: Some("x"),
            ..Credentials::default()
        };
        assert!(auth.authenticate(&creds).is_none());
    }

    #[test]
    fn no_auth_user_nkey_needs_no_signature() {
        let kp = nkeys::KeyPair::new_user();
        let mut auth = Auth::default();
        auth.nkeys.insert(
            kp.public_key(),
            NkeyUser {
                permissions: None,
                account: Some("BAR".into()),
                connection_types: None,
            },
        );
        auth.users.insert(
            "u".into(),
            User {
                password: "p".into(),
                ..user("u")
            },
        );
        assert!(auth.authenticate(&Credentials::default()).is_none());
        auth.no_auth_user = Some(kp.public_key());
        let who = auth
            .authenticate(&Credentials::default())
            .expect("no_auth_user");
        assert_eq!(who.account.as_deref(), Some("BAR"));
        // Credentials of any kind turn the no_auth_user off.
        let creds = Credentials {
            user: Some("u"),
            pass: Some("p"),
            ..Credentials::default()
        };
        assert_eq!(
            auth.authenticate(&creds).and_then(|w| w.user).as_deref(),
            Some("u")
        );
        let creds = Credentials {
            token: Some("t"),
            ..Credentials::default()
        };
        assert!(auth.authenticate(&creds).is_none());
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
