//! Block parsers: `authorization`, `tls`, `cluster`, `gateway`, `leafnodes`, `jetstream`,
//! `websocket`, `mqtt`, with nats-server's key names, aliases and messages.

use std::time::Duration;

use super::nkeys;
use super::parse::{Processor, go_value};
use super::{
    AccountJsLimits, AuthCallout, CertPair, CompressionOpts, DEFAULT_ALLOW_RESPONSE_EXPIRATION,
    DEFAULT_ALLOW_RESPONSE_MAX_MSGS, DEFAULT_LEAF_TLS_TIMEOUT, LeafUser, LogFormat, NkeyUser,
    Options, Permissions, ROUTE_MAX_PING_INTERVAL, RemoteGatewayOpts, RemoteLeafOpts,
    ResponsePermission, RoutePermissions, SubjectPermission, TlsConfig, UrlOpt, User,
};
use crate::conf::{Entry, Map, Pos, Spanned, Value};
use crate::duration::{format_go_duration, parse_go_duration};

/// What an `authorization {}` block holds (nats-server's `authorization` struct).
#[derive(Default)]
struct Authorization {
    user: String,
    pass: String,
    token: String,
    nkey: String,
    account: String,
    proxy_required: bool,
    timeout: Duration,
    /// `Some` as soon as a `users` key is present, even if empty.
    users: Option<Vec<User>>,
    nkeys: Vec<NkeyUser>,
    leaf_users: Option<Vec<LeafUser>>,
    default_permissions: Option<Permissions>,
    callout: Option<AuthCallout>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum AuthKind {
    /// Top level, cluster and gateway blocks.
    Full,
    /// `leafnodes { authorization {} }`.
    Leaf,
}

fn authorization(p: &mut Processor, e: &Entry, kind: AuthKind) -> Option<Authorization> {
    let m = p.map(&e.key_pos, &e.value.value)?;
    let mut auth = Authorization::default();
    for ae in m {
        let pos = &ae.key_pos;
        let v = &ae.value.value;
        match (ae.key.to_ascii_lowercase().as_str(), kind) {
            ("user" | "username", _) => {
                if let Some(s) = p.string(pos, v) {
                    auth.user = s;
                }
            }
            ("pass" | "password", _) => {
                if let Some(s) = p.string(pos, v) {
                    auth.pass = s;
                }
            }
            ("token", AuthKind::Full) => {
                if let Some(s) = p.string(pos, v) {
                    auth.token = s;
                }
            }
            ("nkey", AuthKind::Leaf) => {
                if let Some(s) = p.string(pos, v) {
                    if !nkeys::is_valid_public_key(&s, nkeys::PREFIX_USER) {
                        p.error(pos, "Not a valid public nkey for leafnode authorization");
                    }
                    auth.nkey = s;
                }
            }
            ("account", AuthKind::Leaf) => {
                if let Some(s) = p.string(pos, v) {
                    auth.account = s;
                }
            }
            ("timeout", _) => {
                let what = match kind {
                    AuthKind::Full => "authorization",
                    AuthKind::Leaf => "leafnode authorization",
                };
                if let Some(d) = p.seconds(pos, v, what) {
                    if d > Duration::from_secs(60) {
                        p.warn_field(
                            pos,
                            &ae.key,
                            &format!(
                                "timeout of {} ({:.6} seconds) is high, consider keeping it under 60 seconds. possibly caused by unquoted duration; use '1m' instead of 1m, for example",
                                go_value(v),
                                d.as_secs_f64()
                            ),
                        );
                    }
                    auth.timeout = d;
                }
            }
            ("users", AuthKind::Full) => {
                if let Some((nk, users)) = users(p, ae) {
                    auth.nkeys = nk;
                    auth.users = Some(users);
                }
            }
            ("users", AuthKind::Leaf) => {
                auth.leaf_users = leaf_users(p, ae);
            }
            ("default_permission" | "default_permissions" | "permissions", AuthKind::Full) => {
                auth.default_permissions = permissions(p, pos, v);
            }
            ("auth_callout" | "auth_hook", AuthKind::Full) => {
                auth.callout = auth_callout(p, pos, v);
            }
            ("proxy_required", _) => {
                if let Some(b) = p.boolean(pos, v) {
                    auth.proxy_required = b;
                }
            }
            _ => p.unknown(ae),
        }
    }
    // Users without their own permissions get the default ones.
    if let Some(dp) = &auth.default_permissions {
        if let Some(users) = &mut auth.users {
            for u in users.iter_mut().filter(|u| u.permissions.is_none()) {
                u.permissions = Some(dp.clone());
            }
        }
        for n in auth.nkeys.iter_mut().filter(|n| n.permissions.is_none()) {
            n.permissions = Some(dp.clone());
        }
    }
    Some(auth)
}

/// The top-level `authorization` block and its consistency checks.
pub(super) fn authorization_top(p: &mut Processor, e: &Entry, o: &mut Options) {
    let Some(auth) = authorization(p, e, AuthKind::Full) else {
        return;
    };
    let pos = &e.key_pos;
    o.auth_block_defined = true;
    o.username = auth.user.clone();
    o.password = auth.pass.clone();
    o.proxy_required = auth.proxy_required;
    o.authorization = auth.token.clone();
    o.auth_timeout = auth.timeout;
    o.auth_callout = auth.callout.clone();
    o.default_permissions = auth.default_permissions.clone();
    if (!auth.user.is_empty() || !auth.pass.is_empty()) && !auth.token.is_empty() {
        p.error(pos, "Cannot have a user/pass and token");
        return;
    }
    if auth.users.is_some() || !auth.nkeys.is_empty() {
        if !auth.user.is_empty() {
            p.error(pos, "Can not have a single user/pass and a users array");
            return;
        }
        if !auth.token.is_empty() {
            p.error(pos, "Can not have a token and a users array");
            return;
        }
    }
    let mut names: Vec<String> = o.users.iter().map(|u| u.username.clone()).collect();
    names.extend(o.nkeys.iter().map(|n| n.nkey.clone()));
    for u in auth.users.unwrap_or_default() {
        if names.contains(&u.username) {
            p.error(pos, format!("Duplicate user {:?} detected", u.username));
            return;
        }
        names.push(u.username.clone());
        o.users.push(u);
    }
    for n in auth.nkeys {
        if names.contains(&n.nkey) {
            p.error(pos, format!("Duplicate nkey {:?} detected", n.nkey));
            return;
        }
        names.push(n.nkey.clone());
        o.nkeys.push(n);
    }
}

const CONNECTION_TYPES: &[&str] = &[
    "STANDARD",
    "WEBSOCKET",
    "LEAFNODE",
    "LEAFNODE_WS",
    "MQTT",
    "MQTT_WS",
    "IN_PROCESS",
];

fn connection_types(p: &mut Processor, pos: &Pos, v: &Value) -> Option<Vec<String>> {
    let list = p.string_array("allowed connection types", pos, v)?;
    let mut ok = Vec::new();
    let mut unknown = Vec::new();
    for t in list {
        let t = t.to_uppercase();
        if CONNECTION_TYPES.contains(&t.as_str()) {
            if !ok.contains(&t) {
                ok.push(t);
            }
        } else {
            unknown.push(t);
        }
    }
    if !unknown.is_empty() {
        let quoted: Vec<String> = unknown.iter().map(|u| format!("{u:?}")).collect();
        p.error(
            pos,
            format!("invalid connection types [{}]", quoted.join(" ")),
        );
    }
    Some(ok)
}

fn users(p: &mut Processor, e: &Entry) -> Option<(Vec<NkeyUser>, Vec<User>)> {
    let Value::Array(list) = &e.value.value else {
        p.error(
            &e.key_pos,
            format!(
                "Expected users field to be an array, got {}",
                go_value(&e.value.value)
            ),
        );
        return None;
    };
    let mut nkeys_out = Vec::new();
    let mut users_out = Vec::new();
    for item in list {
        let Value::Map(um) = &item.value else {
            p.error(
                &item.pos,
                format!(
                    "Expected user entry to be a map/struct, got {}",
                    go_value(&item.value)
                ),
            );
            continue;
        };
        let mut user = User::default();
        let mut nkey = NkeyUser::default();
        let mut perms = None;
        let mut last_pos = item.pos.clone();
        for ue in um {
            let pos = &ue.key_pos;
            let v = &ue.value.value;
            last_pos = pos.clone();
            match ue.key.to_ascii_lowercase().as_str() {
                "nkey" => {
                    if let Some(s) = p.string(pos, v) {
                        nkey.nkey = s;
                    }
                }
                "user" | "username" => {
                    if let Some(s) = p.string(pos, v) {
                        user.username = s;
                    }
                }
                "pass" | "password" => {
                    if let Some(s) = p.string(pos, v) {
                        user.password = s;
                    }
                }
                "permission" | "permissions" | "authorization" => perms = permissions(p, pos, v),
                "allowed_connection_types" | "connection_types" | "clients" => {
                    let cts = connection_types(p, pos, v);
                    nkey.allowed_connection_types = cts.clone();
                    user.allowed_connection_types = cts;
                }
                "proxy_required" => {
                    if let Some(b) = p.boolean(pos, v) {
                        nkey.proxy_required = b;
                        user.proxy_required = b;
                    }
                }
                _ => p.unknown(ue),
            }
        }
        if nkey.nkey.is_empty() && user.username.is_empty() {
            p.error(&last_pos, "User entry requires a user");
            return None;
        }
        if !nkey.nkey.is_empty() {
            if !nkeys::is_valid_public_key(&nkey.nkey, nkeys::PREFIX_USER) {
                p.error(&last_pos, "Not a valid public nkey for a user");
                return None;
            }
            if !user.username.is_empty() || !user.password.is_empty() {
                p.error(&last_pos, "Nkey users do not take usernames or passwords");
                return None;
            }
            nkey.permissions = perms;
            nkeys_out.push(nkey);
        } else {
            user.permissions = perms;
            users_out.push(user);
        }
    }
    Some((nkeys_out, users_out))
}

fn leaf_users(p: &mut Processor, e: &Entry) -> Option<Vec<LeafUser>> {
    let Value::Array(list) = &e.value.value else {
        p.error(
            &e.key_pos,
            format!(
                "Expected users field to be an array, got {}",
                go_value(&e.value.value)
            ),
        );
        return None;
    };
    let mut out = Vec::new();
    for item in list {
        let Value::Map(um) = &item.value else {
            p.error(
                &item.pos,
                format!(
                    "Expected user entry to be a map/struct, got {}",
                    go_value(&item.value)
                ),
            );
            continue;
        };
        let mut user = LeafUser::default();
        for ue in um {
            let pos = &ue.key_pos;
            let v = &ue.value.value;
            match ue.key.to_ascii_lowercase().as_str() {
                "user" | "username" => {
                    if let Some(s) = p.string(pos, v) {
                        user.username = s;
                    }
                }
                "pass" | "password" => {
                    if let Some(s) = p.string(pos, v) {
                        user.password = s;
                    }
                }
                "account" => {
                    if let Some(s) = p.string(pos, v) {
                        user.account = s;
                    }
                }
                "proxy_required" => {
                    if let Some(b) = p.boolean(pos, v) {
                        user.proxy_required = b;
                    }
                }
                _ => p.unknown(ue),
            }
        }
        out.push(user);
    }
    Some(out)
}

fn auth_callout(p: &mut Processor, pos: &Pos, v: &Value) -> Option<AuthCallout> {
    let Value::Map(m) = v else {
        p.error(
            pos,
            format!(
                "Expected authorization callout to be a map/struct, got {}",
                go_value(v)
            ),
        );
        return None;
    };
    let mut ac = AuthCallout::default();
    let strings = |p: &mut Processor, e: &Entry, what: &str| -> Option<Vec<String>> {
        let Value::Array(a) = &e.value.value else {
            p.error(
                &e.key_pos,
                format!(
                    "Expected {what} field to be an array, got {}",
                    e.value.value.go_type()
                ),
            );
            return None;
        };
        let mut out = Vec::new();
        for x in a {
            if let Some(s) = p.string(&x.pos, &x.value) {
                out.push(s);
            }
        }
        Some(out)
    };
    for e in m {
        let kpos = &e.key_pos;
        let ev = &e.value.value;
        match e.key.to_ascii_lowercase().as_str() {
            "issuer" => {
                if let Some(s) = p.string(kpos, ev) {
                    if !nkeys::is_valid_public_key(&s, nkeys::PREFIX_ACCOUNT) {
                        p.error(
                            kpos,
                            format!(
                                "Expected callout user to be a valid public account nkey, got {s:?}"
                            ),
                        );
                        return None;
                    }
                    ac.issuer = s;
                }
            }
            "account" | "acc" => {
                if let Some(s) = p.string(kpos, ev) {
                    ac.account = s;
                }
            }
            "auth_users" | "users" => ac.auth_users = strings(p, e, "auth_users")?,
            "xkey" | "key" => {
                if let Some(s) = p.string(kpos, ev) {
                    if !nkeys::is_valid_public_key(&s, nkeys::PREFIX_CURVE) {
                        p.error(
                            kpos,
                            format!("Expected callout xkey to be a valid public xkey, got {s:?}"),
                        );
                        return None;
                    }
                    ac.xkey = s;
                }
            }
            "allowed_accounts" => ac.allowed_accounts = strings(p, e, "allowed accounts")?,
            _ => {
                if !e.used_as_variable {
                    p.error(
                        kpos,
                        format!("Unknown field {:?} parsing authorization callout", e.key),
                    );
                }
            }
        }
    }
    if ac.account.is_empty() {
        ac.account = "$G".to_string();
    }
    if ac.issuer.is_empty() {
        p.error(
            pos,
            "Authorization callouts require an issuer to be specified",
        );
        return None;
    }
    if ac.auth_users.is_empty() {
        p.error(
            pos,
            "Authorization callouts require authorized users to be specified",
        );
        return None;
    }
    Some(ac)
}

/// nats-server's `IsValidSubject` (non-strict).
pub(crate) fn is_valid_subject(subject: &str) -> bool {
    if subject.is_empty() {
        return false;
    }
    let mut after_fwc = false;
    for t in subject.split('.') {
        if t.is_empty() || after_fwc {
            return false;
        }
        if t.len() > 1 {
            if t.contains(['\t', '\n', '\x0c', '\r', ' ']) {
                return false;
            }
            continue;
        }
        match t {
            ">" => after_fwc = true,
            " " | "\t" | "\n" | "\r" | "\x0c" => return false,
            _ => {}
        }
    }
    true
}

fn check_subjects(subjects: &[String], allow_queue: bool) -> Result<(), String> {
    for s in subjects {
        if is_valid_subject(s) {
            continue;
        }
        if !allow_queue {
            return Err(format!("subject {s:?} is not a valid subject"));
        }
        let parts: Vec<&str> = s.split_whitespace().collect();
        match parts.as_slice() {
            [subj, queue] => {
                if !is_valid_subject(subj) {
                    return Err(format!("subject {subj:?} is not a valid subject"));
                }
                if !is_valid_subject(queue) {
                    return Err(format!("queue {queue:?} is not a valid queue"));
                }
            }
            _ => return Err(format!("subject {s:?} is not a valid subject")),
        }
    }
    Ok(())
}

fn perm_subjects(
    p: &mut Processor,
    pos: &Pos,
    v: &Value,
    allow_queue: bool,
) -> Option<Vec<String>> {
    let subjects = match v {
        Value::String(s) => vec![s.clone()],
        Value::Array(a) => {
            let mut out = Vec::new();
            for x in a {
                match &x.value {
                    Value::String(s) => out.push(s.clone()),
                    _ => {
                        p.error(
                            &x.pos,
                            "Subject in permissions array cannot be cast to string",
                        );
                        return None;
                    }
                }
            }
            out
        }
        other => {
            p.error(
                pos,
                format!(
                    "Expected subject permissions to be a subject, or array of subjects, got {}",
                    other.go_type()
                ),
            );
            return None;
        }
    };
    if let Err(e) = check_subjects(&subjects, allow_queue) {
        p.error(pos, e);
        return None;
    }
    Some(subjects)
}

/// A `publish`/`subscribe` permission: a subject, a list, or `{allow, deny}`.
fn subject_permission(
    p: &mut Processor,
    pos: &Pos,
    v: &Value,
    allow_queue: bool,
) -> Option<SubjectPermission> {
    match v {
        Value::Map(m) => {
            if m.is_empty() {
                return None;
            }
            let mut sp = SubjectPermission::default();
            for e in m {
                match e.key.to_ascii_lowercase().as_str() {
                    "allow" => {
                        if let Some(s) = perm_subjects(p, &e.key_pos, &e.value.value, allow_queue) {
                            sp.allow = Some(s);
                        }
                    }
                    "deny" => {
                        if let Some(s) = perm_subjects(p, &e.key_pos, &e.value.value, allow_queue) {
                            sp.deny = Some(s);
                        }
                    }
                    _ => {
                        if !e.used_as_variable {
                            p.error(
                                &e.key_pos,
                                format!(
                                    "Unknown field name {:?} parsing subject permissions, only 'allow' or 'deny' are permitted",
                                    e.key
                                ),
                            );
                        }
                    }
                }
            }
            Some(sp)
        }
        _ => perm_subjects(p, pos, v, allow_queue).map(|allow| SubjectPermission {
            allow: Some(allow),
            deny: None,
        }),
    }
}

fn allow_responses(p: &mut Processor, pos: &Pos, v: &Value) -> Option<ResponsePermission> {
    let mut rp = ResponsePermission {
        max_msgs: DEFAULT_ALLOW_RESPONSE_MAX_MSGS,
        expires: Some(DEFAULT_ALLOW_RESPONSE_EXPIRATION),
    };
    match v {
        Value::Bool(true) => return Some(rp),
        Value::Bool(false) => return None,
        Value::Map(m) => {
            for e in m {
                let kpos = &e.key_pos;
                match e.key.to_ascii_lowercase().as_str() {
                    "max" | "max_msgs" | "max_messages" | "max_responses" => {
                        if let Some(n) = p.int(kpos, &e.value.value)
                            && n != 0
                        {
                            rp.max_msgs = n;
                        }
                    }
                    "expires" | "expiration" | "ttl" => match &e.value.value {
                        Value::String(s) => match parse_go_duration(s) {
                            Ok(0) => {}
                            Ok(ns) if ns < 0 => rp.expires = None,
                            Ok(ns) => rp.expires = Some(Duration::from_nanos(ns.unsigned_abs())),
                            Err(err) => {
                                p.error(kpos, format!("error parsing expires: {err}"));
                                return None;
                            }
                        },
                        _ => {
                            p.error(kpos, "error parsing expires, not a duration string");
                            return None;
                        }
                    },
                    _ => {
                        if !e.used_as_variable {
                            p.error(
                                kpos,
                                format!("Unknown field {:?} parsing permissions", e.key),
                            );
                        }
                    }
                }
            }
        }
        _ => {
            p.error(
                pos,
                "error parsing response permissions, expected a boolean or a map",
            );
            return None;
        }
    }
    Some(rp)
}

/// nats-server's `parseUserPermissions`.
pub(super) fn permissions(p: &mut Processor, pos: &Pos, v: &Value) -> Option<Permissions> {
    let Value::Map(m) = v else {
        p.error(
            pos,
            format!(
                "Expected permissions to be a map/struct, got {}",
                go_value(v)
            ),
        );
        return None;
    };
    let mut perms = Permissions::default();
    for e in m {
        let kpos = &e.key_pos;
        let ev = &e.value.value;
        match e.key.to_ascii_lowercase().as_str() {
            "pub" | "publish" | "import" => perms.publish = subject_permission(p, kpos, ev, false),
            "sub" | "subscribe" | "export" => {
                perms.subscribe = subject_permission(p, kpos, ev, true);
            }
            "publish_allow_responses" | "allow_responses" => {
                perms.response = allow_responses(p, kpos, ev);
                if perms.response.is_some() {
                    // Responses only: the blanket "allow everything" is turned off.
                    let publish = perms.publish.get_or_insert_with(SubjectPermission::default);
                    if publish.allow.is_none() {
                        publish.allow = Some(Vec::new());
                    }
                }
            }
            _ => {
                if !e.used_as_variable {
                    p.error(
                        kpos,
                        format!("Unknown field {:?} parsing permissions", e.key),
                    );
                }
            }
        }
    }
    Some(perms)
}

fn hex64(s: &str) -> bool {
    s.len() == 64 && s.bytes().all(|b| b.is_ascii_hexdigit())
}

/// nats-server's `parseTLS`: the first problem ends the block (as in nats-server).
/// `client_ctx` is false for cluster and gateway blocks, where
/// `verify_cert_and_check_known_urls` is allowed.
pub(super) fn tls(p: &mut Processor, e: &Entry, client_ctx: bool) -> Option<TlsConfig> {
    let m = p.map(&e.key_pos, &e.value.value)?;
    let mut tc = TlsConfig::default();
    let mut insecure_ciphers = Vec::new();
    for te in m {
        let pos = &te.key_pos;
        let v = &te.value.value;
        let key = te.key.to_ascii_lowercase();
        let want_bool = |p: &mut Processor, name: &str| -> Option<bool> {
            match v {
                Value::Bool(b) => Some(*b),
                _ => {
                    p.error(
                        pos,
                        format!("error parsing tls config, expected '{name}' to be a boolean"),
                    );
                    None
                }
            }
        };
        let want_file = |p: &mut Processor, name: &str| -> Option<String> {
            match v {
                Value::String(s) => Some(s.clone()),
                _ => {
                    p.error(
                        pos,
                        format!("error parsing tls config, expected '{name}' to be filename"),
                    );
                    None
                }
            }
        };
        match key.as_str() {
            "cert_file" => tc.cert_file = want_file(p, "cert_file")?,
            "key_file" => tc.key_file = want_file(p, "key_file")?,
            "ca_file" => tc.ca_file = want_file(p, "ca_file")?,
            "insecure" => tc.insecure = want_bool(p, "insecure")?,
            "verify" => tc.verify = want_bool(p, "verify")?,
            "verify_and_map" => {
                let b = want_bool(p, "verify_and_map")?;
                if b {
                    tc.verify = true;
                }
                tc.map = b;
            }
            "verify_cert_and_check_known_urls" => {
                let b = want_bool(p, "verify_cert_and_check_known_urls")?;
                if b && client_ctx {
                    p.error(
                        pos,
                        "verify_cert_and_check_known_urls not supported in this context",
                    );
                    return None;
                }
                if b {
                    tc.verify = true;
                }
                tc.check_known_urls = b;
            }
            "allow_insecure_cipher_suites" => {
                tc.allow_insecure_cipher_suites = want_bool(p, "allow_insecure_cipher_suites")?;
            }
            "cipher_suites" | "curve_preferences" => {
                let list = p.array(pos, v)?;
                if list.is_empty() {
                    p.error(
                        pos,
                        format!("error parsing tls config, '{key}' cannot be empty"),
                    );
                    return None;
                }
                let mut names = Vec::new();
                for x in list {
                    names.push(p.string(&x.pos, &x.value)?);
                }
                if key == "cipher_suites" {
                    insecure_ciphers
                        .extend(names.iter().filter(|n| is_insecure_cipher(n)).cloned());
                    tc.cipher_suites = names;
                } else {
                    tc.curve_preferences = names;
                }
            }
            "timeout" => tc.timeout = Some(p.seconds(pos, v, "tls")?),
            "connection_rate_limit" => match v {
                Value::Int(n) => tc.connection_rate_limit = *n,
                _ => {
                    p.error(
                        pos,
                        "error parsing tls config, 'connection_rate_limit' wrong type",
                    );
                    return None;
                }
            },
            "pinned_certs" => {
                let Value::Array(list) = v else {
                    p.error(pos, "error parsing tls config, expected 'pinned_certs' to be a list of hex-encoded sha256 of DER encoded SubjectPublicKeyInfo");
                    return None;
                };
                for x in list {
                    let entry = p.string(&x.pos, &x.value)?.to_lowercase();
                    if !hex64(&entry) {
                        p.error(&x.pos, format!("error parsing tls config, 'pinned_certs' key {entry} does not look like hex-encoded sha256 of DER encoded SubjectPublicKeyInfo"));
                        return None;
                    }
                    if !tc.pinned_certs.contains(&entry) {
                        tc.pinned_certs.push(entry);
                    }
                }
            }
            "cert_store" => match v {
                Value::String(s) if !s.is_empty() => tc.cert_store = s.clone(),
                _ => {
                    p.error(pos, "expected CertStore as string and not empty");
                    return None;
                }
            },
            "cert_match_by" => match v {
                Value::String(s) if !s.is_empty() => tc.cert_match_by = s.clone(),
                _ => {
                    p.error(pos, "expected CertMatchBy as string and not empty");
                    return None;
                }
            },
            "cert_match" => match v {
                Value::String(s) if !s.is_empty() => tc.cert_match = s.clone(),
                _ => {
                    p.error(pos, "expected CertMatch as string and not empty");
                    return None;
                }
            },
            "ca_certs_match" => {
                tc.ca_certs_match = match v {
                    Value::String(s) => vec![s.clone()],
                    Value::Array(a) => {
                        let mut out = Vec::new();
                        for x in a {
                            match &x.value {
                                Value::String(s) => out.push(s.clone()),
                                other => {
                                    p.error(pos, format!("error parsing ca_cert_match: unsupported type {} where string is expected", other.go_type()));
                                    return None;
                                }
                            }
                        }
                        out
                    }
                    _ => Vec::new(),
                };
            }
            "handshake_first" | "first" | "immediate" => match v {
                Value::Bool(b) => tc.handshake_first = *b,
                Value::String(s) => match s.to_lowercase().as_str() {
                    "true" | "on" => tc.handshake_first = true,
                    "false" | "off" => tc.handshake_first = false,
                    "auto" | "auto_fallback" => {
                        tc.handshake_first = true;
                        tc.handshake_first_fallback = Some(Duration::from_millis(50));
                    }
                    _ => match parse_go_duration(s) {
                        Ok(ns) => {
                            tc.handshake_first = true;
                            tc.handshake_first_fallback =
                                Some(Duration::from_nanos(ns.unsigned_abs()));
                        }
                        Err(_) => {
                            p.error(pos, format!("field {:?}'s value {s:?} is invalid", te.key));
                            return None;
                        }
                    },
                },
                other => {
                    p.error(
                        pos,
                        format!(
                            "field {:?} should be a boolean or a string, got {}",
                            te.key,
                            other.go_type()
                        ),
                    );
                    return None;
                }
            },
            "cert_match_skip_invalid" => match v {
                Value::Bool(b) => tc.cert_match_skip_invalid = *b,
                _ => {
                    p.error(pos, "expected CertMatchSkipInvalid as bool");
                    return None;
                }
            },
            "ocsp_peer" => match v {
                Value::Bool(_) | Value::Map(_) => tc.ocsp_peer = Some(te.value.clone()),
                other => {
                    p.error(
                        pos,
                        format!(
                            "error parsing ocsp peer config: unsupported type {}",
                            other.go_type()
                        ),
                    );
                    return None;
                }
            },
            "certs" | "certificates" => {
                let Value::Array(list) = v else {
                    p.error(
                        pos,
                        format!(
                            "error parsing certificates config: unsupported type {}",
                            v.go_type()
                        ),
                    );
                    return None;
                };
                for x in list {
                    let Value::Map(pair) = &x.value else {
                        p.error(
                            &x.pos,
                            format!(
                                "error parsing certificates config: unsupported type {}",
                                x.value.go_type()
                            ),
                        );
                        return None;
                    };
                    let mut cp = CertPair::default();
                    for pe in pair {
                        let Value::String(file) = &pe.value.value else {
                            p.error(
                                &pe.key_pos,
                                format!(
                                    "error parsing certificates config: unsupported type {}",
                                    pe.value.value.go_type()
                                ),
                            );
                            return None;
                        };
                        match pe.key.as_str() {
                            "cert_file" => cp.cert_file = file.clone(),
                            "key_file" => cp.key_file = file.clone(),
                            _ => {
                                p.error(
                                    &pe.key_pos,
                                    format!(
                                        "error parsing tls certs config, unknown field {:?}",
                                        pe.key
                                    ),
                                );
                                return None;
                            }
                        }
                    }
                    if cp.cert_file.is_empty() || cp.key_file.is_empty() {
                        p.error(&x.pos, "error parsing certificates config: both 'cert_file' and 'cert_key' options are required");
                        return None;
                    }
                    tc.certs.push(cp);
                }
            }
            "min_version" => {
                let Value::String(s) = v else {
                    p.error(
                        pos,
                        format!(
                            "error parsing tls config: 'min_version' wrong type: {}",
                            go_value(v)
                        ),
                    );
                    return None;
                };
                match s.as_str() {
                    "1.2" | "1.3" => tc.min_version = s.clone(),
                    "1.0" | "1.1" => {
                        p.error(
                            pos,
                            format!("error parsing tls config: unsupported TLS version: TLS {s}"),
                        );
                        return None;
                    }
                    _ => {
                        p.error(
                            pos,
                            format!("error parsing tls config: unknown version: {s}"),
                        );
                        return None;
                    }
                }
            }
            _ => {
                p.error(
                    pos,
                    format!("error parsing tls config, unknown field {:?}", te.key),
                );
                return None;
            }
        }
    }
    let pos = &e.key_pos;
    if !tc.certs.is_empty() && !tc.cert_file.is_empty() {
        p.error(
            pos,
            "error parsing tls config, cannot combine 'cert_file' option with 'certs' option",
        );
        return None;
    }
    if !tc.allow_insecure_cipher_suites && !insecure_ciphers.is_empty() {
        p.error(
            pos,
            format!(
                "insecure cipher suites configured without 'allow_insecure_cipher_suites' option set: {}",
                insecure_ciphers.join(", ")
            ),
        );
        return None;
    }
    // GenTLSConfig's checks that do not need the files themselves.
    if !tc.cert_file.is_empty() && !tc.cert_store.is_empty() {
        p.error(
            pos,
            "'cert_file' and 'cert_store' may not both be configured",
        );
        return None;
    }
    if !tc.cert_file.is_empty() && tc.key_file.is_empty() {
        p.error(pos, "missing 'key_file' in TLS configuration");
        return None;
    }
    if tc.cert_file.is_empty() && !tc.key_file.is_empty() {
        p.error(pos, "missing 'cert_file' in TLS configuration");
        return None;
    }
    Some(tc)
}

/// Go's `tls.InsecureCipherSuites()` names.
fn is_insecure_cipher(name: &str) -> bool {
    name.contains("_RC4_") || name.contains("_3DES_") || name.ends_with("_CBC_SHA256")
}

fn compression(p: &mut Processor, e: &Entry, on_mode: &str) -> Option<CompressionOpts> {
    let mut c = CompressionOpts::default();
    match &e.value.value {
        Value::String(s) => c.mode = s.clone(),
        Value::Bool(true) => c.mode = on_mode.to_string(),
        Value::Bool(false) => c.mode = "off".to_string(),
        Value::Map(m) => {
            for ce in m {
                let pos = &ce.key_pos;
                match ce.key.to_ascii_lowercase().as_str() {
                    "mode" => c.mode = p.string(pos, &ce.value.value)?,
                    "rtt_thresholds" | "thresholds" | "rtts" | "rtt" => {
                        for x in p.array(pos, &ce.value.value)? {
                            let s = p.string(&x.pos, &x.value)?;
                            match parse_go_duration(&s) {
                                Ok(ns) => c
                                    .rtt_thresholds
                                    .push(Duration::from_nanos(ns.unsigned_abs())),
                                Err(err) => {
                                    p.error(pos, err);
                                    return None;
                                }
                            }
                        }
                    }
                    _ => {
                        if !ce.used_as_variable {
                            p.error(pos, format!("unknown field {:?}", ce.key));
                            return None;
                        }
                    }
                }
            }
        }
        other => {
            p.error(
                &e.key_pos,
                format!(
                    "field {:?} should be a boolean or a structure, got {}",
                    e.key,
                    other.go_type()
                ),
            );
            return None;
        }
    }
    Some(c)
}

/// nats-server's `parseURLs`: duplicates are warned about and dropped.
fn urls(p: &mut Processor, list: &[Spanned<Value>], typ: &str) -> Vec<UrlOpt> {
    let mut out: Vec<UrlOpt> = Vec::new();
    let mut seen: Vec<String> = Vec::new();
    for x in list {
        let Some(s) = p.string(&x.pos, &x.value) else {
            continue;
        };
        if seen.contains(&s) {
            p.warn_field(&x.pos, &s, &format!("Duplicate {typ} entry detected"));
            continue;
        }
        seen.push(s.clone());
        match UrlOpt::parse(&s) {
            Ok(u) => out.push(u),
            Err(_) => p.error(&x.pos, format!("error parsing {typ} url [{:?}]", s.trim())),
        }
    }
    out
}

fn url(p: &mut Processor, pos: &Pos, s: &str, typ: &str) -> Option<UrlOpt> {
    match UrlOpt::parse(s) {
        Ok(u) => Some(u),
        Err(_) => {
            p.error(pos, format!("error parsing {typ} url [{:?}]", s.trim()));
            None
        }
    }
}

fn check_route_subjects(perms: &Permissions) -> Result<(), String> {
    let check = |sp: &Option<SubjectPermission>, what: &str| -> Result<(), String> {
        if let Some(sp) = sp {
            if let Some(a) = &sp.allow {
                check_subjects(a, false).map_err(|e| format!("cluster {what} allow: {e}"))?;
            }
            if let Some(d) = &sp.deny {
                check_subjects(d, false).map_err(|e| format!("cluster {what} deny: {e}"))?;
            }
        }
        Ok(())
    };
    check(&perms.publish, "import")?;
    check(&perms.subscribe, "export")
}

fn route_permissions(perms: Permissions) -> RoutePermissions {
    RoutePermissions {
        import: perms.publish,
        export: perms.subscribe,
    }
}

pub(super) fn cluster(p: &mut Processor, e: &Entry, o: &mut Options) {
    let Value::Map(m) = &e.value.value else {
        p.error(
            &e.key_pos,
            format!(
                "Expected map to define cluster, got {}",
                e.value.value.go_type()
            ),
        );
        return;
    };
    let mut perms_in_block = false;
    for ce in m {
        let pos = &ce.key_pos;
        let v = &ce.value.value;
        let c = &mut o.cluster;
        match ce.key.to_ascii_lowercase().as_str() {
            "name" => {
                if let Some(n) = p.string(pos, v) {
                    if n.contains(' ') {
                        p.error(pos, "cluster name cannot contain spaces");
                    } else {
                        c.name = n;
                    }
                }
            }
            "listen" => {
                if let Some((h, port)) = p.listen(pos, v) {
                    c.host = h;
                    c.port = port;
                }
            }
            "port" => {
                if let Some(port) = p.int32(pos, &ce.key, v) {
                    c.port = port;
                }
            }
            "host" | "net" => {
                if let Some(h) = p.string(pos, v) {
                    c.host = h;
                }
            }
            "authorization" => {
                let Some(auth) = authorization(p, ce, AuthKind::Full) else {
                    continue;
                };
                if auth.users.is_some() {
                    p.error(pos, "Cluster authorization does not allow multiple users");
                    continue;
                }
                if !auth.token.is_empty() {
                    p.error(pos, "Cluster authorization does not support tokens");
                    continue;
                }
                if auth.callout.is_some() {
                    p.error(pos, "Cluster authorization does not support callouts");
                    continue;
                }
                c.username = auth.user;
                c.password = auth.pass;
                c.auth_timeout = auth.timeout;
                if let Some(dp) = auth.default_permissions {
                    if let Err(err) = check_route_subjects(&dp) {
                        p.error(pos, err);
                        continue;
                    }
                    p.warn_field(
                        pos,
                        &ce.key,
                        "setting \"permissions\" within cluster authorization block is deprecated",
                    );
                    if !perms_in_block {
                        c.permissions = Some(route_permissions(dp));
                    }
                }
            }
            "routes" => {
                if let Some(list) = p.array(pos, v) {
                    o.routes = urls(p, list, "route");
                }
            }
            "tls" => {
                if let Some(tc) = tls(p, ce, false) {
                    if let Some(t) = tc.timeout {
                        c.tls_timeout = t;
                    }
                    c.tls = Some(tc);
                }
            }
            "cluster_advertise" | "advertise" => {
                if let Some(s) = p.string(pos, v) {
                    c.advertise = s;
                }
            }
            "no_advertise" => {
                if let Some(b) = p.boolean(pos, v) {
                    c.no_advertise = b;
                }
            }
            "connect_retries" => {
                if let Some(n) = p.int(pos, v) {
                    c.connect_retries = n;
                }
            }
            "connect_backoff" => {
                if let Some(b) = p.boolean(pos, v) {
                    c.connect_backoff = b;
                }
            }
            "permissions" => {
                let Some(perms) = permissions(p, pos, v) else {
                    continue;
                };
                if perms.response.is_some() {
                    p.error(pos, "Cluster permissions do not support dynamic responses");
                    continue;
                }
                if let Err(err) = check_route_subjects(&perms) {
                    p.error(pos, err);
                    continue;
                }
                perms_in_block = true;
                c.permissions = Some(route_permissions(perms));
            }
            "pool_size" => {
                if let Some(n) = p.int(pos, v) {
                    c.pool_size = n;
                }
            }
            "accounts" => {
                if let Some(a) = p.string_array("accounts", pos, v) {
                    c.pinned_accounts = a;
                }
            }
            "compression" => {
                if let Some(comp) = compression(p, ce, "s2_fast") {
                    c.compression = comp;
                }
            }
            "ping_interval" => {
                if let Some(d) = p.duration("ping_interval", pos, v) {
                    c.ping_interval = d;
                    if d > ROUTE_MAX_PING_INTERVAL {
                        p.warn(
                            Some(pos),
                            format!(
                                "Cluster 'ping_interval' will reset to {} which is the max for routes",
                                format_go_duration(ROUTE_MAX_PING_INTERVAL)
                            ),
                        );
                    }
                }
            }
            "ping_max" => {
                if let Some(n) = p.int(pos, v) {
                    c.ping_max = n;
                }
            }
            "write_deadline" => {
                if let Some(d) = p.duration("write_deadline", pos, v) {
                    c.write_deadline = d;
                }
            }
            "write_timeout" => {
                if let Some(w) = p.write_timeout(pos, v) {
                    c.write_timeout = w;
                }
            }
            _ => p.unknown(ce),
        }
    }
}

pub(super) fn gateway(p: &mut Processor, e: &Entry, o: &mut Options) {
    let Value::Map(m) = &e.value.value else {
        p.error(
            &e.key_pos,
            format!(
                "Expected gateway to be a map, got {}",
                e.value.value.go_type()
            ),
        );
        return;
    };
    for ge in m {
        let pos = &ge.key_pos;
        let v = &ge.value.value;
        let g = &mut o.gateway;
        match ge.key.to_ascii_lowercase().as_str() {
            "name" => {
                if let Some(n) = p.string(pos, v) {
                    if n.contains(' ') {
                        p.error(pos, "gateway name cannot contain spaces");
                    } else {
                        g.name = n;
                    }
                }
            }
            "listen" => {
                if let Some((h, port)) = p.listen(pos, v) {
                    g.host = h;
                    g.port = port;
                }
            }
            "port" => {
                if let Some(port) = p.int32(pos, &ge.key, v) {
                    g.port = port;
                }
            }
            "host" | "net" => {
                if let Some(h) = p.string(pos, v) {
                    g.host = h;
                }
            }
            "authorization" => {
                let Some(auth) = authorization(p, ge, AuthKind::Full) else {
                    continue;
                };
                if auth.users.is_some() {
                    p.error(pos, "Gateway authorization does not allow multiple users");
                    continue;
                }
                if !auth.token.is_empty() {
                    p.error(pos, "Gateway authorization does not support tokens");
                    continue;
                }
                if auth.callout.is_some() {
                    p.error(pos, "Gateway authorization does not support callouts");
                    continue;
                }
                g.username = auth.user;
                g.password = auth.pass;
                g.auth_timeout = auth.timeout;
            }
            "tls" => {
                if let Some(tc) = tls(p, ge, false) {
                    if let Some(t) = tc.timeout {
                        g.tls_timeout = t;
                    }
                    g.tls = Some(tc);
                }
            }
            "advertise" => {
                if let Some(s) = p.string(pos, v) {
                    g.advertise = s;
                }
            }
            "connect_retries" => {
                if let Some(n) = p.int(pos, v) {
                    g.connect_retries = n;
                }
            }
            "connect_backoff" => {
                if let Some(b) = p.boolean(pos, v) {
                    g.connect_backoff = b;
                }
            }
            "gateways" => {
                if let Some(list) = gateways(p, ge) {
                    o.gateway.gateways = list;
                }
            }
            "reject_unknown" | "reject_unknown_cluster" => {
                if let Some(b) = p.boolean(pos, v) {
                    g.reject_unknown = b;
                }
            }
            "write_deadline" => {
                if let Some(d) = p.duration("write_deadline", pos, v) {
                    g.write_deadline = d;
                }
            }
            "write_timeout" => {
                if let Some(w) = p.write_timeout(pos, v) {
                    g.write_timeout = w;
                }
            }
            _ => p.unknown(ge),
        }
    }
}

fn gateways(p: &mut Processor, e: &Entry) -> Option<Vec<RemoteGatewayOpts>> {
    let Value::Array(list) = &e.value.value else {
        p.error(
            &e.key_pos,
            format!(
                "Expected gateways field to be an array, got {}",
                e.value.value.go_type()
            ),
        );
        return None;
    };
    let mut out = Vec::new();
    for item in list {
        let Value::Map(gm) = &item.value else {
            p.error(
                &item.pos,
                format!(
                    "Expected gateway entry to be a map/struct, got {}",
                    go_value(&item.value)
                ),
            );
            continue;
        };
        let mut g = RemoteGatewayOpts::default();
        for ge in gm {
            let pos = &ge.key_pos;
            let v = &ge.value.value;
            match ge.key.to_ascii_lowercase().as_str() {
                "name" => {
                    if let Some(s) = p.string(pos, v) {
                        g.name = s;
                    }
                }
                "tls" => g.tls = tls(p, ge, false),
                "url" => {
                    if let Some(s) = p.string(pos, v)
                        && let Some(u) = url(p, pos, &s, "gateway")
                    {
                        g.urls.push(u);
                    }
                }
                "urls" => {
                    if let Some(list) = p.array(pos, v) {
                        g.urls = urls(p, list, "gateway");
                    }
                }
                _ => p.unknown(ge),
            }
        }
        out.push(g);
    }
    Some(out)
}

pub(super) fn leafnodes(p: &mut Processor, e: &Entry, o: &mut Options) {
    let Value::Map(m) = &e.value.value else {
        p.error(
            &e.key_pos,
            format!(
                "Expected map to define a leafnode, got {}",
                e.value.value.go_type()
            ),
        );
        return;
    };
    for le in m {
        let pos = &le.key_pos;
        let v = &le.value.value;
        let l = &mut o.leafnode;
        match le.key.to_ascii_lowercase().as_str() {
            "listen" => {
                if let Some((h, port)) = p.listen(pos, v) {
                    l.host = h;
                    l.port = port;
                }
            }
            "port" => {
                if let Some(port) = p.int32(pos, &le.key, v) {
                    l.port = port;
                }
            }
            "host" | "net" => {
                if let Some(h) = p.string(pos, v) {
                    l.host = h;
                }
            }
            "authorization" => {
                let Some(auth) = authorization(p, le, AuthKind::Leaf) else {
                    continue;
                };
                l.username = auth.user;
                l.password = auth.pass;
                l.proxy_required = auth.proxy_required;
                l.auth_timeout = auth.timeout;
                l.account = auth.account;
                l.nkey = auth.nkey;
                l.users = auth.leaf_users.unwrap_or_default();
                if !l.users.is_empty() {
                    if !l.username.is_empty() {
                        p.error(pos, "can not have a single user/pass and a users array");
                        continue;
                    }
                    if !l.nkey.is_empty() {
                        p.error(pos, "can not have a single nkey and a users array");
                        continue;
                    }
                    let mut names: Vec<&str> = Vec::new();
                    for u in &l.users {
                        if names.contains(&u.username.as_str()) {
                            p.error(
                                pos,
                                format!(
                                    "duplicate user {:?} detected in leafnode authorization",
                                    u.username
                                ),
                            );
                            break;
                        }
                        names.push(&u.username);
                    }
                }
            }
            "remotes" => {
                if let Some(r) = remote_leafnodes(p, le) {
                    o.leafnode.remotes = r;
                }
            }
            "reconnect" | "reconnect_delay" | "reconnect_interval" => {
                if let Some(d) = p.duration("reconnect", pos, v) {
                    l.reconnect_interval = d;
                }
            }
            "dial_timeout" => {
                if let Some(d) = p.duration("dial_timeout", pos, v) {
                    l.dial_timeout = d;
                }
            }
            "tls" => {
                if let Some(tc) = tls(p, le, true) {
                    if let Some(t) = tc.timeout {
                        l.tls_timeout = t;
                    }
                    l.tls = Some(tc);
                }
            }
            "leafnode_advertise" | "advertise" => {
                if let Some(s) = p.string(pos, v) {
                    l.advertise = s;
                }
            }
            "no_advertise" => {
                if let Some(b) = p.boolean(pos, v) {
                    l.no_advertise = b;
                }
            }
            "min_version" | "minimum_version" => {
                if let Some(s) = p.string(pos, v) {
                    match version_at_least(&s, (2, 8, 0)) {
                        Ok(true) => l.min_version = s,
                        Ok(false) => p.error(pos, "the minimum version should be at least 2.8.0"),
                        Err(err) => {
                            p.error(pos, format!("invalid leafnode's minimum version: {err}"));
                        }
                    }
                }
            }
            "compression" => {
                if let Some(c) = compression(p, le, "s2_auto") {
                    l.compression = c;
                }
            }
            "isolate_leafnode_interest" | "isolate" => {
                if let Some(b) = p.boolean(pos, v) {
                    l.isolate_leafnode_interest = b;
                }
            }
            "write_deadline" => {
                if let Some(d) = p.duration("write_deadline", pos, v) {
                    l.write_deadline = d;
                }
            }
            "write_timeout" => {
                if let Some(w) = p.write_timeout(pos, v) {
                    l.write_timeout = w;
                }
            }
            _ => p.unknown(le),
        }
    }
}

/// `major.minor.patch[-pre]` at least `min`.
fn version_at_least(v: &str, min: (u64, u64, u64)) -> Result<bool, String> {
    let core = v.split(['-', '+']).next().unwrap_or(v);
    let parts: Vec<&str> = core.split('.').collect();
    let [a, b, c] = parts.as_slice() else {
        return Err("invalid semver".to_string());
    };
    let n = |s: &str| s.parse::<u64>().map_err(|_| "invalid semver".to_string());
    Ok((n(a)?, n(b)?, n(c)?) >= min)
}

fn remote_leafnodes(p: &mut Processor, e: &Entry) -> Option<Vec<RemoteLeafOpts>> {
    let Value::Array(list) = &e.value.value else {
        p.error(
            &e.key_pos,
            format!(
                "Expected remotes field to be an array, got {}",
                e.value.value.go_type()
            ),
        );
        return None;
    };
    let mut out: Vec<RemoteLeafOpts> = Vec::new();
    for item in list {
        let Value::Map(rm) = &item.value else {
            p.error(
                &item.pos,
                format!(
                    "Expected remote leafnode entry to be a map/struct, got {}",
                    go_value(&item.value)
                ),
            );
            continue;
        };
        let mut r = RemoteLeafOpts::default();
        let mut proxy_pos = None;
        for re in rm {
            let pos = &re.key_pos;
            let v = &re.value.value;
            match re.key.to_ascii_lowercase().as_str() {
                "no_randomize" | "dont_randomize" => {
                    if let Some(b) = p.boolean(pos, v) {
                        r.no_randomize = b;
                    }
                }
                "url" | "urls" => match v {
                    Value::Array(list) => r.urls = urls(p, list, "leafnode"),
                    Value::String(s) => {
                        if let Some(u) = url(p, pos, s, "leafnode") {
                            r.urls.push(u);
                        }
                    }
                    other => p.error(
                        pos,
                        format!(
                            "Expected remote leafnode url to be an array or string, got {}",
                            go_value(other)
                        ),
                    ),
                },
                "account" | "local" => {
                    if let Some(s) = p.string(pos, v) {
                        r.local_account = s;
                    }
                }
                "creds" | "credentials" => {
                    if let Some(s) = p.string(pos, v) {
                        if !r.nkey.is_empty() {
                            p.error(
                                pos,
                                "Remote leafnode can not have both creds and nkey defined",
                            );
                            continue;
                        }
                        r.credentials = s;
                    }
                }
                "nkey" | "seed" => {
                    if let Some(s) = p.string(pos, v) {
                        if nkeys::seed_prefix(&s) != Some(nkeys::PREFIX_USER) {
                            p.error(
                                pos,
                                format!("Remote leafnode nkey is not a valid seed: {s:?}"),
                            );
                            continue;
                        }
                        if !r.credentials.is_empty() {
                            p.error(
                                pos,
                                "Remote leafnode can not have both creds and nkey defined",
                            );
                            continue;
                        }
                        r.nkey = s;
                    }
                }
                "tls" => {
                    if let Some(mut tc) = tls(p, re, true) {
                        if tc.timeout.is_none_or(|t| t.is_zero()) {
                            tc.timeout = Some(DEFAULT_LEAF_TLS_TIMEOUT);
                        }
                        r.tls = Some(tc);
                    }
                }
                "hub" => {
                    if let Some(b) = p.boolean(pos, v) {
                        r.hub = b;
                    }
                }
                "deny_imports" | "deny_import" => {
                    if let Some(s) = perm_subjects(p, pos, v, false) {
                        r.deny_imports = s;
                    }
                }
                "deny_exports" | "deny_export" => {
                    if let Some(s) = perm_subjects(p, pos, v, false) {
                        r.deny_exports = s;
                    }
                }
                "ws_compress"
                | "ws_compression"
                | "websocket_compress"
                | "websocket_compression" => {
                    if let Some(b) = p.boolean(pos, v) {
                        r.ws_compression = b;
                    }
                }
                "ws_no_masking" | "websocket_no_masking" => {
                    if let Some(b) = p.boolean(pos, v) {
                        r.ws_no_masking = b;
                    }
                }
                "jetstream_cluster_migrate" | "js_cluster_migrate" => match v {
                    Value::Bool(b) => r.jetstream_cluster_migrate = *b,
                    Value::Map(mm) => {
                        r.jetstream_cluster_migrate = true;
                        if let Some(d) = mm.get("leader_migrate_delay")
                            && let Some(d) = p.duration("leader_migrate_delay", &d.pos, &d.value)
                        {
                            r.jetstream_cluster_migrate_delay = d;
                        }
                    }
                    other => p.error(
                        pos,
                        format!(
                            "Expected boolean or map for jetstream_cluster_migrate, got {}",
                            other.go_type()
                        ),
                    ),
                },
                "isolate_leafnode_interest" | "isolate" => {
                    if let Some(b) = p.boolean(pos, v) {
                        r.local_isolation = b;
                    }
                }
                "request_isolation" => {
                    if let Some(b) = p.boolean(pos, v) {
                        r.request_isolation = b;
                    }
                }
                "compression" => {
                    if let Some(c) = compression(p, re, "s2_auto") {
                        r.compression = c;
                    }
                }
                "first_info_timeout" => {
                    if let Some(d) = p.duration(&re.key, pos, v) {
                        r.first_info_timeout = d;
                    }
                }
                "dial_timeout" => {
                    if let Some(d) = p.duration(&re.key, pos, v) {
                        r.dial_timeout = d;
                    }
                }
                "disabled" => {
                    if let Some(b) = p.boolean(pos, v) {
                        r.disabled = b;
                    }
                }
                "proxy" => {
                    let Value::Map(pm) = v else {
                        p.error(
                            pos,
                            format!("Expected proxy to be a map, got {}", v.go_type()),
                        );
                        continue;
                    };
                    proxy_pos = Some(pos.clone());
                    for pe in pm {
                        let ppos = &pe.key_pos;
                        let pv = &pe.value.value;
                        match pe.key.to_ascii_lowercase().as_str() {
                            "url" => {
                                if let Some(s) = p.string(ppos, pv) {
                                    r.proxy.url = s;
                                }
                            }
                            "username" => {
                                if let Some(s) = p.string(ppos, pv) {
                                    r.proxy.username = s;
                                }
                            }
                            "password" => {
                                if let Some(s) = p.string(ppos, pv) {
                                    r.proxy.password = s;
                                }
                            }
                            "timeout" => {
                                if let Some(d) = p.duration("proxy timeout", ppos, pv) {
                                    r.proxy.timeout = d;
                                }
                            }
                            _ => p.unknown(pe),
                        }
                    }
                }
                "ignore_discovered_servers" => {
                    if let Some(b) = p.boolean(pos, v) {
                        r.ignore_discovered_servers = b;
                    }
                }
                _ => p.unknown(re),
            }
        }
        if let Some(ppos) = &proxy_pos {
            match check_remote_proxy(&r) {
                Ok(Some(w)) => p.warn(Some(ppos), w),
                Ok(None) => {}
                Err(err) => {
                    p.error(ppos, err);
                    continue;
                }
            }
        }
        let same = |a: &RemoteLeafOpts| {
            a.urls
                .iter()
                .map(|u| &u.raw)
                .eq(r.urls.iter().map(|u| &u.raw))
                && a.local_account == r.local_account
                && a.credentials == r.credentials
                && a.nkey == r.nkey
        };
        if out.iter().any(same) {
            let urls: Vec<&str> = r.urls.iter().map(|u| u.raw.as_str()).collect();
            let acc = if r.local_account.is_empty() {
                "$G"
            } else {
                r.local_account.as_str()
            };
            p.error(
                &item.pos,
                format!("duplicate remote urls={urls:?}, account={acc:?}"),
            );
            continue;
        }
        out.push(r);
    }
    Some(out)
}

/// nats-server's `validateLeafNodeProxyOptions`: an HTTP(S) proxy only applies to
/// websocket remotes. Returns a warning to report, or the error that rejects the remote.
fn check_remote_proxy(r: &RemoteLeafOpts) -> Result<Option<String>, String> {
    if r.proxy.url.is_empty() {
        return Ok(None);
    }
    let url = UrlOpt::parse(&r.proxy.url).map_err(|e| format!("invalid proxy URL: {e}"))?;
    if url.scheme != "http" && url.scheme != "https" {
        return Err(format!(
            "proxy URL scheme must be http or https, got: {}",
            url.scheme
        ));
    }
    if url.host.is_empty() {
        return Err("proxy URL must specify a host".into());
    }
    if r.proxy.username.is_empty() != r.proxy.password.is_empty() {
        return Err("proxy username and password must both be specified or both be empty".into());
    }
    if r.urls.is_empty() {
        return Ok(None);
    }
    let mut ws = false;
    let mut tcp = false;
    for u in &r.urls {
        if u.scheme == "ws" || u.scheme == "wss" {
            ws = true;
            if u.scheme == "wss" && r.tls.is_none() {
                return Err(format!(
                    "proxy is configured but remote URL {} requires TLS and no TLS configuration is provided. When using proxy with TLS endpoints, ensure TLS is properly configured for the leafnode remote",
                    u.raw
                ));
            }
        } else {
            tcp = true;
        }
    }
    Ok(if !ws {
        Some("proxy configuration will be ignored: proxy settings only apply to WebSocket connections (ws:// or wss://), but all configured URLs use TCP connections (nats://)".into())
    } else if tcp {
        Some("proxy configuration will only be used for WebSocket URLs: proxy settings do not apply to TCP connections (nats://)".into())
    } else {
        None
    })
}

/// `jetstream: true | "enabled" | { ... }`.
pub(super) fn jetstream(p: &mut Processor, e: &Entry, o: &mut Options, store_dir_set: &mut bool) {
    let pos = &e.key_pos;
    match &e.value.value {
        Value::Bool(b) => o.jetstream.enabled = *b,
        Value::String(s) => match s.to_lowercase().as_str() {
            "enabled" | "enable" => o.jetstream.enabled = true,
            "disabled" | "disable" => o.jetstream.enabled = false,
            _ => p.error(
                pos,
                format!("Expected 'enabled' or 'disabled' for string value, got '{s}'"),
            ),
        },
        Value::Map(m) => {
            let mut enable = true;
            for je in m {
                if !jetstream_key(p, je, o, store_dir_set, &mut enable) {
                    return;
                }
            }
            o.jetstream.enabled = enable;
        }
        other => p.error(
            pos,
            format!(
                "Expected map, bool or string to define JetStream, got {}",
                other.go_type()
            ),
        ),
    }
}

/// nats-server's `getStorageSize`: an integer, or a string whose last character is one of
/// `K`, `M`, `G`, `T` (powers of 1024).
fn storage_size(v: &Value) -> Result<i64, String> {
    match v {
        Value::Int(i) => Ok(*i),
        Value::String(s) => {
            if s.is_empty() {
                return Ok(0);
            }
            let Some(suffix) = s.chars().last() else {
                return Ok(0);
            };
            let prefix = &s[..s.len() - suffix.len_utf8()];
            let num: i64 = prefix
                .parse()
                .map_err(|_| format!("strconv.ParseInt: parsing {prefix:?}: invalid syntax"))?;
            let shift = match suffix {
                'K' => 10,
                'M' => 20,
                'G' => 30,
                'T' => 40,
                _ => return Err("sizes defined as strings must end in K, M, G, T".to_string()),
            };
            Ok(num.wrapping_shl(shift))
        }
        _ => Err("must be int64 or string".to_string()),
    }
}

fn jetstream_key(
    p: &mut Processor,
    je: &Entry,
    o: &mut Options,
    store_dir_set: &mut bool,
    enable: &mut bool,
) -> bool {
    let pos = &je.key_pos;
    let v = &je.value.value;
    let js = &mut o.jetstream;
    let lower = je.key.to_ascii_lowercase();
    match lower.as_str() {
        "strict" => match v {
            Value::Bool(b) => js.strict = *b,
            _ => {
                p.error(
                    pos,
                    format!(
                        "Expected 'true' or 'false' for bool value, got '{}'",
                        go_value(v)
                    ),
                );
                return false;
            }
        },
        "store" | "store_dir" | "storedir" => {
            if *store_dir_set {
                p.error(pos, "Duplicate 'store_dir' configuration");
                return false;
            }
            if let Some(s) = p.string(pos, v) {
                js.store_dir = s;
                *store_dir_set = true;
            }
        }
        "sync" | "sync_interval" => {
            if matches!(v, Value::String(s) if s.eq_ignore_ascii_case("always")) {
                js.sync_interval = super::DEFAULT_SYNC_INTERVAL;
                js.sync_always = true;
            } else if let Some(d) = p.duration(&je.key, pos, v) {
                js.sync_interval = d;
            }
        }
        "max_memory_store" | "max_mem_store" | "max_mem" => match storage_size(v) {
            Ok(s) => js.max_memory = s,
            Err(err) => {
                p.error(pos, format!("max_mem_store {err}"));
                return false;
            }
        },
        "max_file_store" | "max_file" => match storage_size(v) {
            Ok(s) => js.max_store = s,
            Err(err) => {
                p.error(pos, format!("max_file_store {err}"));
                return false;
            }
        },
        "domain" => {
            if let Some(s) = p.string(pos, v) {
                js.domain = s;
            }
        }
        "enable" | "enabled" => {
            if let Some(b) = p.boolean(pos, v) {
                *enable = b;
            }
        }
        "key" | "ek" | "encryption_key" => {
            if let Some(s) = p.string(pos, v) {
                js.key = s;
            }
        }
        "prev_key" | "prev_ek" | "prev_encryption_key" => {
            if let Some(s) = p.string(pos, v) {
                js.prev_key = s;
            }
        }
        "cipher" => {
            let Some(s) = p.string(pos, v) else {
                return true;
            };
            match s.to_lowercase().as_str() {
                "chacha" | "chachapoly" => js.cipher = "chacha".into(),
                "aes" => js.cipher = "aes".into(),
                _ => {
                    p.error(pos, format!("Unknown cipher type: {s:?}"));
                    return false;
                }
            }
        }
        "extension_hint" => {
            if let Some(s) = p.string(pos, v) {
                js.extension_hint = s;
            }
        }
        "limits" => return jetstream_limits(p, je, o),
        "tpm" => {
            if p.map(pos, v).is_some() {
                js.tpm = Some(je.value.clone());
            }
        }
        "unique_tag" => {
            if let Some(s) = p.string(pos, v) {
                js.unique_tag = s.trim().to_lowercase();
            }
        }
        "max_outstanding_catchup" | "max_buffered_size" => match storage_size(v) {
            Ok(s) if lower == "max_outstanding_catchup" => js.max_outstanding_catchup = s,
            Ok(s) => js.max_buffered_size = s,
            Err(err) => {
                p.error(pos, format!("{lower} {err}"));
                return false;
            }
        },
        "max_buffered_msgs" | "request_queue_limit" | "info_queue_limit" => {
            let Value::Int(n) = v else {
                p.error(
                    pos,
                    format!(
                        "Expected a parseable size for {:?}, got {}",
                        je.key,
                        go_value(v)
                    ),
                );
                return false;
            };
            match lower.as_str() {
                "max_buffered_msgs" => js.max_buffered_msgs = *n,
                "request_queue_limit" => js.request_queue_limit = *n,
                _ => js.info_queue_limit = *n,
            }
        }
        "meta_compact" => match v {
            Value::Int(n) if *n >= 0 => js.meta_compact = n.unsigned_abs(),
            _ => {
                p.error(
                    pos,
                    format!(
                        "Expected an absolute size for {:?}, got {}",
                        je.key,
                        go_value(v)
                    ),
                );
                return false;
            }
        },
        "meta_compact_size" => match storage_size(v) {
            Ok(s) if s >= 0 => js.meta_compact_size = s.unsigned_abs(),
            Ok(_) => {
                p.error(
                    pos,
                    format!(
                        "Expected an absolute size for {:?}, got {}",
                        je.key,
                        go_value(v)
                    ),
                );
                return false;
            }
            Err(err) => {
                p.error(pos, format!("{lower} {err}"));
                return false;
            }
        },
        "meta_compact_sync" => {
            if let Some(b) = p.boolean(pos, v) {
                js.meta_compact_sync = b;
            }
        }
        "max_concurrent_io" => match v {
            Value::Int(n) if (4..=8192).contains(n) => js.max_concurrent_io = *n,
            _ => {
                p.error(
                    pos,
                    format!(
                        "Expected an absolute size for {:?} between 4 and 8192, got {}",
                        je.key,
                        go_value(v)
                    ),
                );
                return false;
            }
        },
        _ => p.unknown(je),
    }
    true
}

fn jetstream_limits(p: &mut Processor, e: &Entry, o: &mut Options) -> bool {
    let Value::Map(m) = &e.value.value else {
        p.error(
            &e.key_pos,
            format!(
                "Expected a map to define JetStreamLimits, got {}",
                e.value.value.go_type()
            ),
        );
        return false;
    };
    let l = &mut o.jetstream.limits;
    *l = Default::default();
    for le in m {
        let pos = &le.key_pos;
        let v = &le.value.value;
        match le.key.to_ascii_lowercase().as_str() {
            "max_ack_pending" => {
                if let Some(n) = p.int(pos, v) {
                    l.max_ack_pending = n;
                }
            }
            "max_ha_assets" => {
                if let Some(n) = p.int(pos, v) {
                    l.max_ha_assets = n;
                }
            }
            "max_request_batch" => {
                if let Some(n) = p.int(pos, v) {
                    l.max_request_batch = n;
                }
            }
            "duplicate_window" => {
                if let Some(r) = p.duration_str(pos, v) {
                    match r {
                        Ok(ns) => l.duplicate_window = Duration::from_nanos(ns.unsigned_abs()),
                        Err(err) => p.error(pos, err),
                    }
                }
            }
            "batch" => {
                let Value::Map(bm) = v else {
                    p.error(
                        pos,
                        format!("Expected a map to define batch limits, got {}", v.go_type()),
                    );
                    return false;
                };
                for be in bm {
                    let bpos = &be.key_pos;
                    let bv = &be.value.value;
                    match be.key.to_ascii_lowercase().as_str() {
                        "max_inflight_per_stream" => {
                            if let Some(n) = p.int(bpos, bv) {
                                l.max_batch_inflight_per_stream = n;
                            }
                        }
                        "max_inflight_total" => {
                            if let Some(n) = p.int(bpos, bv) {
                                l.max_batch_inflight_total = n;
                            }
                        }
                        "max_msgs" => {
                            if let Some(n) = p.int(bpos, bv) {
                                l.max_batch_size = n;
                            }
                        }
                        "timeout" => {
                            if let Some(r) = p.duration_str(bpos, bv) {
                                match r {
                                    Ok(ns) => {
                                        l.max_batch_timeout =
                                            Duration::from_nanos(ns.unsigned_abs());
                                    }
                                    Err(err) => p.error(bpos, err),
                                }
                            }
                        }
                        _ => p.unknown(be),
                    }
                }
            }
            _ => p.unknown(le),
        }
    }
    true
}

/// `websocket`/`mqtt` `authorization` blocks (nats-server's `parseSimpleAuth`).
fn simple_auth(p: &mut Processor, e: &Entry) -> Option<(String, String, String, Duration)> {
    let m = p.map(&e.key_pos, &e.value.value)?;
    let (mut user, mut pass, mut token, mut timeout) =
        (String::new(), String::new(), String::new(), Duration::ZERO);
    for ae in m {
        let pos = &ae.key_pos;
        let v = &ae.value.value;
        match ae.key.to_ascii_lowercase().as_str() {
            "user" | "username" => user = p.string(pos, v).unwrap_or_default(),
            "pass" | "password" => pass = p.string(pos, v).unwrap_or_default(),
            "token" => token = p.string(pos, v).unwrap_or_default(),
            "timeout" => {
                let secs = match v {
                    Value::Int(i) => *i as f64,
                    Value::Float(f) => *f,
                    _ => 1.0,
                };
                timeout = Duration::try_from_secs_f64(secs).unwrap_or(Duration::ZERO);
            }
            _ => p.unknown(ae),
        }
    }
    Some((user, pass, token, timeout))
}

pub(super) fn websocket(p: &mut Processor, e: &Entry, o: &mut Options) {
    let Value::Map(m) = &e.value.value else {
        p.error(
            &e.key_pos,
            format!(
                "Expected websocket to be a map, got {}",
                e.value.value.go_type()
            ),
        );
        return;
    };
    let w = &mut o.websocket;
    for we in m {
        let pos = &we.key_pos;
        let v = &we.value.value;
        match we.key.to_ascii_lowercase().as_str() {
            "listen" => {
                if let Some((h, port)) = p.listen(pos, v) {
                    w.host = h;
                    w.port = port;
                }
            }
            "port" => {
                if let Some(port) = p.int32(pos, &we.key, v) {
                    w.port = port;
                }
            }
            "host" | "net" => w.host = p.string(pos, v).unwrap_or_else(|| w.host.clone()),
            "advertise" => w.advertise = p.string(pos, v).unwrap_or_default(),
            "no_tls" => w.no_tls = p.boolean(pos, v).unwrap_or(w.no_tls),
            "tls" => w.tls = tls(p, we, true),
            "same_origin" => w.same_origin = p.boolean(pos, v).unwrap_or(w.same_origin),
            "allowed_origins" | "allowed_origin" | "allow_origins" | "allow_origin" | "origins"
            | "origin" => {
                w.allowed_origins = p
                    .string_array("allowed origins", pos, v)
                    .unwrap_or_default();
            }
            "handshake_timeout" => match v {
                Value::Int(i) => {
                    w.handshake_timeout = Duration::from_secs(i.unsigned_abs());
                }
                Value::String(s) => match parse_go_duration(s) {
                    Ok(ns) => w.handshake_timeout = Duration::from_nanos(ns.unsigned_abs()),
                    Err(err) => p.error(pos, err),
                },
                other => p.error(
                    pos,
                    format!(
                        "error parsing handshake timeout: unsupported type {}",
                        other.go_type()
                    ),
                ),
            },
            "compress" | "compression" => {
                w.compression = p.boolean(pos, v).unwrap_or(w.compression);
            }
            "authorization" | "authentication" => {
                if let Some((u, pw, t, to)) = simple_auth(p, we) {
                    w.username = u;
                    w.password = pw;
                    w.token = t;
                    w.auth_timeout = to;
                }
            }
            "jwt_cookie" => w.jwt_cookie = p.string(pos, v).unwrap_or_default(),
            "user_cookie" => w.username_cookie = p.string(pos, v).unwrap_or_default(),
            "pass_cookie" => w.password_cookie = p.string(pos, v).unwrap_or_default(),
            "token_cookie" => w.token_cookie = p.string(pos, v).unwrap_or_default(),
            "no_auth_user" => w.no_auth_user = p.string(pos, v).unwrap_or_default(),
            "headers" => {
                let Value::Map(hm) = v else {
                    p.error(
                        pos,
                        format!("error parsing headers: unsupported type {}", v.go_type()),
                    );
                    continue;
                };
                w.headers.clear();
                for he in hm {
                    match &he.value.value {
                        Value::String(s) => w.headers.push((he.key.clone(), s.clone())),
                        other => p.error(
                            &he.key_pos,
                            format!(
                                "error parsing header key {}: unsupported type {}",
                                he.key,
                                other.go_type()
                            ),
                        ),
                    }
                }
            }
            "ping_interval" => {
                if let Some(d) = p.duration("ping_interval", pos, v) {
                    w.ping_interval = d;
                }
            }
            _ => p.unknown(we),
        }
    }
}

pub(super) fn mqtt(p: &mut Processor, e: &Entry, o: &mut Options) {
    let Value::Map(m) = &e.value.value else {
        p.error(
            &e.key_pos,
            format!("Expected mqtt to be a map, got {}", e.value.value.go_type()),
        );
        return;
    };
    let q = &mut o.mqtt;
    for me in m {
        let pos = &me.key_pos;
        let v = &me.value.value;
        match me.key.to_ascii_lowercase().as_str() {
            "listen" => {
                if let Some((h, port)) = p.listen(pos, v) {
                    q.host = h;
                    q.port = port;
                }
            }
            "port" => {
                if let Some(port) = p.int32(pos, &me.key, v) {
                    q.port = port;
                }
            }
            "host" | "net" => q.host = p.string(pos, v).unwrap_or_else(|| q.host.clone()),
            "tls" => {
                if let Some(tc) = tls(p, me, true) {
                    if let Some(t) = tc.timeout {
                        q.tls_timeout = t;
                    }
                    q.tls = Some(tc);
                }
            }
            "authorization" | "authentication" => {
                if let Some((u, pw, t, to)) = simple_auth(p, me) {
                    q.username = u;
                    q.password = pw;
                    q.token = t;
                    q.auth_timeout = to;
                }
            }
            "no_auth_user" => q.no_auth_user = p.string(pos, v).unwrap_or_default(),
            "ack_wait" | "ackwait" => {
                if let Some(d) = p.duration("ack_wait", pos, v) {
                    q.ack_wait = d;
                }
            }
            "js_api_timeout" | "api_timeout" => {
                if let Some(d) = p.duration("js_api_timeout", pos, v) {
                    q.js_api_timeout = d;
                }
            }
            "max_ack_pending" | "max_pending" | "max_inflight" => {
                if let Some(n) = p.int(pos, v) {
                    match u16::try_from(n) {
                        Ok(x) => q.max_ack_pending = x,
                        Err(_) => p.error(
                            pos,
                            format!("invalid value {n}, should in [0..{}] range", u16::MAX),
                        ),
                    }
                }
            }
            "js_domain" => q.js_domain = p.string(pos, v).unwrap_or_default(),
            "stream_replicas" => q.stream_replicas = p.int(pos, v).unwrap_or(q.stream_replicas),
            "consumer_replicas" => p.warn_field(
                pos,
                &me.key,
                "consumer replicas setting ignored in this server version",
            ),
            "consumer_memory_storage" => {
                q.consumer_memory_storage = p.boolean(pos, v).unwrap_or(q.consumer_memory_storage);
            }
            "consumer_inactive_threshold" | "consumer_auto_cleanup" => {
                if let Some(d) = p.duration("consumer_inactive_threshold", pos, v) {
                    q.consumer_inactive_threshold = d;
                }
            }
            "reject_qos2_publish" => {
                q.reject_qos2_publish = p.boolean(pos, v).unwrap_or(q.reject_qos2_publish);
            }
            "downgrade_qos2_subscribe" => {
                q.downgrade_qos2_subscribe =
                    p.boolean(pos, v).unwrap_or(q.downgrade_qos2_subscribe);
            }
            _ => p.unknown(me),
        }
    }
}

/// `proxies { trusted: [{key: ...}] }`: checked here, kept raw for the auth module.
pub(super) fn check_proxies(p: &mut Processor, m: &Map) {
    for e in m {
        match e.key.to_ascii_lowercase().as_str() {
            "trusted" => {
                let Value::Array(list) = &e.value.value else {
                    p.error(
                        &e.key_pos,
                        format!(
                            "expected proxies' trusted field to be an array, got {}",
                            e.value.value.go_type()
                        ),
                    );
                    continue;
                };
                for item in list {
                    let Value::Map(tm) = &item.value else {
                        p.error(
                            &item.pos,
                            format!(
                                "expected proxies' trusted entry to be a map/struct, got {}",
                                item.value.go_type()
                            ),
                        );
                        continue;
                    };
                    for te in tm {
                        match te.key.to_ascii_lowercase().as_str() {
                            "key" | "public_key" => {
                                if let Some(k) = p.string(&te.key_pos, &te.value.value)
                                    && !nkeys::is_valid_public_key_any(&k)
                                {
                                    p.error(&te.key_pos, format!("invalid proxy key {k:?}"));
                                }
                            }
                            _ => p.unknown(te),
                        }
                    }
                }
            }
            _ => p.unknown(e),
        }
    }
}

/// natrix's `telemetry { log_format, otlp { endpoint, service_name, sample_ratio } }`.
pub(super) fn telemetry(p: &mut Processor, e: &Entry, o: &mut Options) {
    let Some(m) = p.map(&e.key_pos, &e.value.value) else {
        return;
    };
    for te in m {
        let pos = &te.key_pos;
        let v = &te.value.value;
        match te.key.to_lowercase().as_str() {
            "log_format" => match p.string(pos, v).as_deref() {
                Some("text") => o.telemetry.log_format = LogFormat::Text,
                Some("json") => o.telemetry.log_format = LogFormat::Json,
                Some(other) => p.error(
                    pos,
                    format!("log_format must be \"text\" or \"json\", got \"{other}\""),
                ),
                None => {}
            },
            "otlp" => {
                let Some(om) = p.map(pos, v) else {
                    continue;
                };
                for oe in om {
                    let opos = &oe.key_pos;
                    let ov = &oe.value.value;
                    match oe.key.to_lowercase().as_str() {
                        "endpoint" => {
                            if let Some(s) = p.string(opos, ov) {
                                if s.starts_with("http://") || s.starts_with("https://") {
                                    o.telemetry.otlp_endpoint = s;
                                } else {
                                    p.error(
                                        opos,
                                        format!("telemetry.otlp.endpoint must be an http:// or https:// URL, got \"{s}\""),
                                    );
                                }
                            }
                        }
                        "service_name" => {
                            if let Some(s) = p.string(opos, ov) {
                                o.telemetry.service_name = s;
                            }
                        }
                        "sample_ratio" => {
                            let ratio = match ov {
                                Value::Float(f) => Some(*f),
                                #[allow(clippy::cast_precision_loss)]
                                Value::Int(i) => Some(*i as f64),
                                other => {
                                    p.type_error(opos, other, "float64");
                                    None
                                }
                            };
                            match ratio {
                                Some(r) if (0.0..=1.0).contains(&r) => o.telemetry.sample_ratio = r,
                                Some(r) => p.error(
                                    opos,
                                    format!("sample_ratio must be between 0 and 1, got {r}"),
                                ),
                                None => {}
                            }
                        }
                        _ => p.unknown(oe),
                    }
                }
            }
            _ => p.unknown(te),
        }
    }
}

/// The `accounts {}` block: account names, the users bound to each, their JetStream
/// settings, subject mappings, exports and imports. Limits stay in the raw value until
/// they land.
pub(super) fn accounts(p: &mut Processor, e: &Entry, o: &mut Options) {
    accounts_entries(p, e, o);
    // Imports are checked once every account and export is known, as nats-server does.
    if !o.account_imports.is_empty() || !o.account_exports.is_empty() {
        let names = o.account_names.clone();
        super::imports::check(
            p,
            &e.key_pos,
            &names,
            &o.account_exports,
            &mut o.account_imports,
        );
    }
}

fn accounts_entries(p: &mut Processor, e: &Entry, o: &mut Options) {
    match &e.value.value {
        Value::Array(list) => {
            for item in list {
                match &item.value {
                    Value::String(name) => add_account(p, &item.pos, o, name),
                    other => p.type_error(&item.pos, other, "string"),
                }
            }
        }
        Value::Map(m) => {
            for ae in m {
                add_account(p, &ae.key_pos, o, &ae.key);
                let Value::Map(am) = &ae.value.value else {
                    // nats-server allows an account with no body only as `A: {}`.
                    p.type_error(&ae.key_pos, &ae.value.value, "map[string]interface {}");
                    continue;
                };
                for ue in am {
                    if ue.key.eq_ignore_ascii_case("jetstream") {
                        if let Some(js) = account_jetstream(p, ue) {
                            o.account_jetstream.push((ae.key.clone(), js));
                        }
                        continue;
                    }
                    if matches!(ue.key.to_lowercase().as_str(), "mappings" | "maps") {
                        let m = super::mappings::mappings(p, ue);
                        o.account_mappings.push((ae.key.clone(), m));
                        continue;
                    }
                    if ue.key.eq_ignore_ascii_case("exports") {
                        let list = super::imports::exports(p, ue);
                        o.account_exports.push((ae.key.clone(), list));
                        continue;
                    }
                    if ue.key.eq_ignore_ascii_case("imports") {
                        let list = super::imports::imports(p, ue);
                        o.account_imports.push((ae.key.clone(), list));
                        continue;
                    }
                    if !ue.key.eq_ignore_ascii_case("users") {
                        continue;
                    }
                    let Some((nkeys, users)) = users(p, ue) else {
                        continue;
                    };
                    // Account users and the authorization block's single user or
                    // token exclude each other, as in nats-server.
                    if !nkeys.is_empty() || !users.is_empty() {
                        if !o.username.is_empty() {
                            p.error(&ue.key_pos, "Can not have a single user/pass and accounts");
                            continue;
                        }
                        if !o.authorization.is_empty() {
                            p.error(&ue.key_pos, "Can not have a token and accounts");
                            continue;
                        }
                    }
                    for mut u in users {
                        if o.users.iter().any(|x| x.username == u.username) {
                            p.error(
                                &ue.key_pos,
                                format!("Duplicate user {:?} detected", u.username),
                            );
                            continue;
                        }
                        u.account.clone_from(&ae.key);
                        o.users.push(u);
                    }
                    for mut n in nkeys {
                        if o.nkeys.iter().any(|x| x.nkey == n.nkey) {
                            p.error(&ue.key_pos, format!("Duplicate nkey {:?} detected", n.nkey));
                            continue;
                        }
                        n.account.clone_from(&ae.key);
                        o.nkeys.push(n);
                    }
                }
            }
        }
        _ => {}
    }
}

/// An account's `jetstream: enabled | disabled | { max_mem, max_file, max_streams,
/// max_consumers, max_bytes_required, max_ack_pending, mem_max_stream_bytes,
/// disk_max_stream_bytes }` (nats-server's `parseJetStreamForAccount`): `None` when
/// disabled; -1 is unlimited.
fn account_jetstream(p: &mut Processor, e: &Entry) -> Option<Option<AccountJsLimits>> {
    let pos = &e.key_pos;
    match &e.value.value {
        Value::Bool(true) => Some(Some(AccountJsLimits::default())),
        Value::Bool(false) => Some(None),
        Value::String(s) => match s.to_lowercase().as_str() {
            "enabled" | "enable" => Some(Some(AccountJsLimits::default())),
            "disabled" | "disable" => Some(None),
            _ => {
                p.error(
                    pos,
                    format!("Expected 'enabled' or 'disabled' for string value, got '{s}'"),
                );
                None
            }
        },
        Value::Map(m) => {
            let mut l = AccountJsLimits::default();
            for je in m {
                let slot = match je.key.to_lowercase().as_str() {
                    "max_memory" | "max_mem" | "mem" | "memory" => &mut l.max_memory,
                    "max_store" | "max_file" | "max_disk" | "store" | "disk" => &mut l.max_store,
                    "max_streams" | "streams" => &mut l.max_streams,
                    "max_consumers" | "consumers" => &mut l.max_consumers,
                    "max_bytes_required" | "max_stream_bytes" | "max_bytes" => {
                        l.max_bytes_required = match &je.value.value {
                            Value::Bool(b) => *b,
                            other => {
                                p.type_error(&je.key_pos, other, "bool");
                                return None;
                            }
                        };
                        continue;
                    }
                    "mem_max_stream_bytes" | "memory_max_stream_bytes" => {
                        &mut l.memory_max_stream_bytes
                    }
                    "disk_max_stream_bytes" | "store_max_stream_bytes" => {
                        &mut l.storage_max_stream_bytes
                    }
                    "max_ack_pending" => &mut l.max_ack_pending,
                    _ => {
                        p.error(
                            &je.key_pos,
                            format!("Unknown key {:?} in JetStream account limits", je.key),
                        );
                        return None;
                    }
                };
                match storage_size(&je.value.value) {
                    Ok(n) => *slot = n,
                    Err(err) => {
                        p.error(&je.key_pos, err);
                        return None;
                    }
                }
            }
            Some(Some(l))
        }
        other => {
            p.error(
                pos,
                format!(
                    "Expected map, bool or string to define JetStream, got {}",
                    other.go_type()
                ),
            );
            None
        }
    }
}

fn add_account(p: &mut Processor, pos: &Pos, o: &mut Options, name: &str) {
    if name == "$G" {
        p.error(pos, "$G is a reserved account name");
    } else if o.account_names.iter().any(|n| n == name) {
        p.error(pos, format!("duplicate account name {name:?}"));
    } else {
        o.account_names.push(name.to_owned());
    }
}
