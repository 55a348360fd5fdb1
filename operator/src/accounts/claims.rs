//! Account and User specs → NATS JWT claims (natrix-jwt types), plus the checks the
//! schema cannot make: subjects, quantities, expiry times, import cycles.
//!
//! Signing is idempotent: [`sign_if_changed`] re-signs only when the claims differ from
//! the previous token. Ed25519 signatures are deterministic, so signing the same claims
//! with the same key at the previous token's issue time gives the same token; when it
//! does, the previous token is kept. That keeps the account JWT (and so the servers'
//! preloaded config and its digest) stable across reconciles.

use std::collections::{BTreeMap, BTreeSet};

use natrix_jwt::nkeys::KeyPair;
use natrix_jwt::{
    AccountClaims, ClaimSet, Export, ExportType, Import, JetStreamLimits, NO_LIMIT, Payload,
    Permission, Permissions, ResponsePermission, UserClaims, encode_at,
};

use super::AccountsError;
use crate::crd::accounts::{AccountSpec, ExportKind, ImportSpec, NatsUserSpec};
use crate::crd::{PermissionsSpec, SubjectPermissionSpec};
use crate::render::quantity;

/// Checks a subject as nats-server does for permissions, exports and imports: non-empty
/// tokens separated by `.`, no whitespace, `>` only as the last token; wildcards only
/// where `wildcards` allows them. Permission entries may carry a queue group after a
/// space (`"orders.* workers"`), as nats-server's subscribe permissions do.
pub fn check_subject(subject: &str, wildcards: bool, queue_allowed: bool) -> Result<(), String> {
    let (subject, queue) = match subject.split_once(' ') {
        Some((s, q)) if queue_allowed => (s, Some(q)),
        _ => (subject, None),
    };
    if let Some(q) = queue
        && (q.is_empty() || q.contains(char::is_whitespace))
    {
        return Err(format!("{subject:?} has an invalid queue group {q:?}"));
    }
    if subject.is_empty() {
        return Err("a subject is empty".into());
    }
    if subject.contains(char::is_whitespace) {
        return Err(format!("subject {subject:?} contains whitespace"));
    }
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, t) in tokens.iter().enumerate() {
        if t.is_empty() {
            return Err(format!("subject {subject:?} has an empty token"));
        }
        let wild = *t == "*" || *t == ">";
        if wild && !wildcards {
            return Err(format!(
                "subject {subject:?} may not contain wildcards here"
            ));
        }
        if *t == ">" && i + 1 != tokens.len() {
            return Err(format!("subject {subject:?}: `>` must be the last token"));
        }
        if !wild && (t.contains('*') || t.contains('>')) {
            return Err(format!(
                "subject {subject:?}: a wildcard must be a whole token"
            ));
        }
    }
    Ok(())
}

/// Whether some subject matches both patterns.
pub fn subjects_overlap(a: &str, b: &str) -> bool {
    let (ta, tb): (Vec<&str>, Vec<&str>) = (a.split('.').collect(), b.split('.').collect());
    for i in 0..ta.len().max(tb.len()) {
        match (ta.get(i), tb.get(i)) {
            (Some(&">"), _) | (_, Some(&">")) => return true,
            (Some(x), Some(y)) if *x == "*" || *y == "*" || x == y => {}
            _ => return false,
        }
    }
    true
}

fn spec_err(e: String) -> AccountsError {
    AccountsError::Spec(e)
}

fn limit(v: Option<i64>) -> i64 {
    v.unwrap_or(NO_LIMIT)
}

fn size(v: Option<&String>, field: &str) -> Result<i64, AccountsError> {
    match v {
        None => Ok(NO_LIMIT),
        Some(q) => quantity::bytes(q).map_err(|e| spec_err(format!("{field}: {e}"))),
    }
}

fn export_type(k: ExportKind) -> ExportType {
    match k {
        ExportKind::Stream => ExportType::Stream,
        ExportKind::Service => ExportType::Service,
    }
}

/// An import with the exporter's public key looked up.
#[derive(Clone, Debug)]
pub struct ResolvedImport {
    pub spec: ImportSpec,
    pub account_public_key: String,
}

/// The account claims of `spec`. `signing_keys` are the public keys to trust (active
/// and retiring), `revoked` the revoked user keys.
pub fn account_claims(
    name: &str,
    spec: &AccountSpec,
    account_public_key: &str,
    signing_keys: &[String],
    imports: &[ResolvedImport],
    revoked: &BTreeMap<String, i64>,
) -> Result<AccountClaims, AccountsError> {
    let mut c = AccountClaims::new(account_public_key);
    c.data.name = name.to_string();
    if let Some(l) = &spec.limits {
        c.nats.limits.account.conn = limit(l.connections);
        c.nats.limits.account.leaf_node_conn = limit(l.leaf_node_connections);
        c.nats.limits.account.imports = limit(l.imports);
        c.nats.limits.account.exports = limit(l.exports);
        c.nats.limits.nats.subs = limit(l.subscriptions);
        c.nats.limits.nats.payload = limit(l.payload);
        c.nats.limits.nats.data = limit(l.data);
    }
    if let Some(js) = &spec.jetstream {
        c.nats.limits.jetstream = JetStreamLimits {
            memory_storage: size(js.memory_storage.as_ref(), "jetstream.memoryStorage")?,
            disk_storage: size(js.disk_storage.as_ref(), "jetstream.diskStorage")?,
            streams: limit(js.streams),
            consumer: limit(js.consumers),
            ..JetStreamLimits::default()
        };
    }
    let mut seen = BTreeSet::new();
    for (i, e) in spec.exports.iter().enumerate() {
        check_subject(&e.subject, true, false)
            .map_err(|m| spec_err(format!("exports[{i}]: {m}")))?;
        if !seen.insert(e.subject.clone()) {
            return Err(spec_err(format!(
                "exports[{i}]: subject {:?} is exported twice",
                e.subject
            )));
        }
        c.nats.exports.push(Export {
            name: e.name.clone().unwrap_or_default(),
            subject: e.subject.clone(),
            export_type: export_type(e.kind),
            ..Export::default()
        });
    }
    for (i, r) in imports.iter().enumerate() {
        let s = &r.spec;
        check_subject(&s.subject, true, false)
            .map_err(|m| spec_err(format!("imports[{i}]: {m}")))?;
        if let Some(l) = &s.local_subject {
            check_subject(l, true, false)
                .map_err(|m| spec_err(format!("imports[{i}].localSubject: {m}")))?;
        }
        c.nats.imports.push(Import {
            name: s.name.clone().unwrap_or_default(),
            subject: s.subject.clone(),
            account: r.account_public_key.clone(),
            local_subject: s.local_subject.clone().unwrap_or_default(),
            import_type: export_type(s.kind),
            ..Import::default()
        });
    }
    for k in signing_keys {
        c.nats.signing_keys.add(k.clone());
    }
    for (user, at) in revoked {
        c.nats.revocations.revoke(user.clone(), *at);
    }
    Ok(c)
}

fn permission(p: Option<&SubjectPermissionSpec>, what: &str) -> Result<Permission, AccountsError> {
    let Some(p) = p else {
        return Ok(Permission::default());
    };
    let queue = what == "subscribe";
    let list = |v: &Option<Vec<String>>, kind: &str| -> Result<Vec<String>, AccountsError> {
        let v = v.clone().unwrap_or_default();
        for s in &v {
            check_subject(s, true, queue)
                .map_err(|m| spec_err(format!("permissions.{what}.{kind}: {m}")))?;
        }
        Ok(v)
    };
    Ok(Permission {
        allow: list(&p.allow, "allow")?,
        deny: list(&p.deny, "deny")?,
    })
}

/// nats-server's `allow_responses: true`: one response per request, no time limit.
fn permissions(p: &PermissionsSpec) -> Result<Permissions, AccountsError> {
    Ok(Permissions {
        publish: permission(p.publish.as_ref(), "publish")?,
        subscribe: permission(p.subscribe.as_ref(), "subscribe")?,
        resp: (p.allow_responses == Some(true)).then_some(ResponsePermission { max: 1, ttl: 0 }),
    })
}

/// Unix seconds of an RFC 3339 time.
pub fn unix_time(t: &str) -> Result<i64, AccountsError> {
    t.parse::<k8s_openapi::jiff::Timestamp>()
        .map(|ts| ts.as_second())
        .map_err(|e| spec_err(format!("expires: {t:?} is not an RFC 3339 time: {e}")))
}

/// The user claims of `spec`: issued by `signer_public_key`, which is either the account
/// itself or one of its signing keys (then `issuer_account` names the account).
pub fn user_claims(
    name: &str,
    spec: &NatsUserSpec,
    user_public_key: &str,
    account_public_key: &str,
    signer_public_key: &str,
) -> Result<UserClaims, AccountsError> {
    let mut c = UserClaims::new(user_public_key);
    c.data.name = name.to_string();
    if let Some(p) = &spec.permissions {
        c.nats.permission_limits.permissions = permissions(p)?;
    }
    if let Some(t) = &spec.expires {
        c.data.expires = unix_time(t)?;
    }
    if signer_public_key != account_public_key {
        c.nats.issuer_account = account_public_key.to_string();
    }
    Ok(c)
}

/// Signs `claims` with `signer` at `now`, unless `previous` already holds exactly these
/// claims signed by the same key: then `previous` is returned and `false`.
pub fn sign_if_changed<P: Payload>(
    claims: &ClaimSet<P>,
    signer: &KeyPair,
    previous: Option<&str>,
    now: i64,
) -> Result<(String, bool), AccountsError> {
    if let Some(prev) = previous
        && let Ok(decoded) = natrix_jwt::decode(prev)
    {
        let again = encode_at(claims, signer, decoded.data().issued_at)?;
        if again == prev {
            return Ok((prev.to_string(), false));
        }
    }
    // A new token must be issued after any revocation recorded at `now - 1`, and after
    // the previous token, so `iat` never goes backwards.
    Ok((encode_at(claims, signer, now)?, true))
}

/// One import edge between Accounts, for cycle detection: `importer` takes `subject` from
/// `exporter` and sees it as `local`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Edge {
    pub exporter: (String, String),
    pub subject: String,
    pub local: String,
}

/// Finds an import cycle through `start`: a chain of imports, each taking a subject the
/// previous one delivers, that leads back to `start` (messages would circle between the
/// accounts). Returns the accounts on the cycle as `ns/name`.
pub fn find_cycle(
    start: &(String, String),
    imports: &BTreeMap<(String, String), Vec<Edge>>,
) -> Option<Vec<String>> {
    fn walk(
        at: &(String, String),
        subject: Option<&str>,
        start: &(String, String),
        imports: &BTreeMap<(String, String), Vec<Edge>>,
        path: &mut Vec<(String, String)>,
        seen: &mut BTreeSet<((String, String), String)>,
    ) -> bool {
        for e in imports.get(at).into_iter().flatten() {
            if let Some(s) = subject
                && !subjects_overlap(&e.local, s)
            {
                continue;
            }
            if &e.exporter == start {
                return true;
            }
            if !seen.insert((e.exporter.clone(), e.subject.clone())) {
                continue;
            }
            path.push(e.exporter.clone());
            if walk(&e.exporter, Some(&e.subject), start, imports, path, seen) {
                return true;
            }
            path.pop();
        }
        false
    }
    let mut path = vec![start.clone()];
    let mut seen = BTreeSet::new();
    walk(start, None, start, imports, &mut path, &mut seen).then(|| {
        path.push(start.clone());
        path.iter().map(|(ns, n)| format!("{ns}/{n}")).collect()
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::ClusterRef;
    use crate::crd::accounts::{
        AccountJetStreamSpec, AccountLimitsSpec, AccountRef, ExportSpec, UserAccountRef,
    };

    fn spec() -> AccountSpec {
        AccountSpec {
            nats_cluster_ref: ClusterRef {
                name: "nats".into(),
                namespace: None,
            },
            limits: Some(AccountLimitsSpec {
                connections: Some(10),
                subscriptions: Some(100),
                payload: Some(4096),
                imports: Some(3),
                ..AccountLimitsSpec::default()
            }),
            jetstream: Some(AccountJetStreamSpec {
                memory_storage: Some("1Mi".into()),
                disk_storage: Some("1Gi".into()),
                streams: Some(5),
                consumers: None,
            }),
            exports: vec![
                ExportSpec {
                    name: Some("orders".into()),
                    subject: "orders.>".into(),
                    kind: ExportKind::Stream,
                },
                ExportSpec {
                    name: None,
                    subject: "rpc.time".into(),
                    kind: ExportKind::Service,
                },
            ],
            imports: Vec::new(),
            signing_keys: Vec::new(),
        }
    }

    #[test]
    fn account_claims_carry_the_spec_and_verify() {
        let op = KeyPair::new_operator();
        let acct = KeyPair::new_account();
        let other = KeyPair::new_account();
        let sk = KeyPair::new_account();
        let imports = vec![ResolvedImport {
            spec: ImportSpec {
                name: Some("prices".into()),
                account_ref: AccountRef {
                    name: "b".into(),
                    namespace: None,
                },
                subject: "prices.>".into(),
                kind: ExportKind::Stream,
                local_subject: Some("feed.>".into()),
            },
            account_public_key: other.public_key(),
        }];
        let revoked = BTreeMap::from([("UREVOKED".to_string(), 77)]);
        let c = account_claims(
            "ns/a",
            &spec(),
            &acct.public_key(),
            &[sk.public_key()],
            &imports,
            &revoked,
        )
        .expect("claims");
        let jwt = natrix_jwt::encode(&c, &op).expect("sign");
        let back = natrix_jwt::decode_account(&jwt).expect("verify");
        assert_eq!(back.data.issuer, op.public_key());
        assert_eq!(back.data.subject, acct.public_key());
        let l = &back.nats.limits;
        assert_eq!(
            (
                l.account.conn,
                l.nats.subs,
                l.nats.payload,
                l.account.imports
            ),
            (10, 100, 4096, 3)
        );
        assert_eq!(l.account.exports, NO_LIMIT);
        assert_eq!(l.jetstream.memory_storage, 1 << 20);
        assert_eq!(l.jetstream.disk_storage, 1 << 30);
        assert_eq!((l.jetstream.streams, l.jetstream.consumer), (5, NO_LIMIT));
        assert_eq!(back.nats.exports.len(), 2);
        assert!(back.nats.export("rpc.time").is_some_and(Export::is_service));
        assert!(back.nats.export("orders.>").is_some_and(Export::is_stream));
        let imp = &back.nats.imports[0];
        assert_eq!(
            (
                imp.account.as_str(),
                imp.local_subject.as_str(),
                imp.is_stream()
            ),
            (other.public_key().as_str(), "feed.>", true)
        );
        assert!(back.nats.signing_keys.contains(&sk.public_key()));
        assert!(back.nats.is_revoked("UREVOKED", 77));
        assert!(!back.nats.is_revoked("UREVOKED", 78));
    }

    #[test]
    fn no_jetstream_block_means_jetstream_disabled() {
        let mut s = spec();
        s.jetstream = None;
        let acct = KeyPair::new_account();
        let c = account_claims("a", &s, &acct.public_key(), &[], &[], &BTreeMap::new())
            .expect("claims");
        assert!(!c.nats.limits.is_jetstream_enabled());
    }

    #[test]
    fn bad_subjects_and_duplicates_are_refused_in_words() {
        let acct = KeyPair::new_account().public_key();
        let mut s = spec();
        s.exports[0].subject = "orders..x".into();
        let e = account_claims("a", &s, &acct, &[], &[], &BTreeMap::new()).expect_err("bad");
        assert_eq!(
            e.to_string(),
            "exports[0]: subject \"orders..x\" has an empty token"
        );
        let mut s = spec();
        s.exports[1].subject = "orders.>".into();
        let e = account_claims("a", &s, &acct, &[], &[], &BTreeMap::new()).expect_err("dup");
        assert!(e.to_string().contains("exported twice"), "{e}");
        for bad in ["a.>.b", "a b", "", "a.b*", "x..y"] {
            assert!(check_subject(bad, true, false).is_err(), "{bad}");
        }
        assert!(check_subject("a.*", false, false).is_err());
        assert!(check_subject("jobs.* workers", true, true).is_ok());
        assert!(check_subject("jobs.* workers", true, false).is_err());
        for good in ["a", "a.*.c", "a.>", ">", "_INBOX.>"] {
            assert!(check_subject(good, true, false).is_ok(), "{good}");
        }
    }

    fn user_spec(perms: Value) -> NatsUserSpec {
        NatsUserSpec {
            account_ref: UserAccountRef { name: "a".into() },
            permissions: Some(serde_json::from_value(perms).expect("perms")),
            expires: Some("2031-01-02T03:04:05Z".into()),
            secret_name: None,
        }
    }
    use serde_json::{Value, json};

    #[test]
    fn user_claims_carry_permissions_expiry_and_issuer_account() {
        let acct = KeyPair::new_account();
        let sk = KeyPair::new_account();
        let user = KeyPair::new_user();
        let s = user_spec(json!({
            "publish": {"allow": ["orders.>"], "deny": ["orders.secret"]},
            "subscribe": {"allow": ["replies.>", "jobs.* workers"]},
            "allowResponses": true
        }));
        let c = user_claims(
            "ns/alice",
            &s,
            &user.public_key(),
            &acct.public_key(),
            &sk.public_key(),
        )
        .expect("claims");
        let jwt = natrix_jwt::encode(&c, &sk).expect("sign");
        let back = natrix_jwt::decode_user(&jwt).expect("verify");
        let p = &back.nats.permission_limits.permissions;
        assert_eq!(p.publish.allow, vec!["orders.>"]);
        assert_eq!(p.publish.deny, vec!["orders.secret"]);
        assert_eq!(p.subscribe.allow, vec!["replies.>", "jobs.* workers"]);
        assert_eq!(p.resp, Some(ResponsePermission { max: 1, ttl: 0 }));
        assert_eq!(back.data.expires, 1_925_089_445);
        assert_eq!(back.nats.issuer_account, acct.public_key());
        assert_eq!(back.data.issuer, sk.public_key());
        // Signed by the account itself: no issuer_account.
        let c = user_claims(
            "u",
            &s,
            &user.public_key(),
            &acct.public_key(),
            &acct.public_key(),
        )
        .expect("claims");
        assert!(c.nats.issuer_account.is_empty());
    }

    #[test]
    fn an_unknown_permission_subject_is_refused() {
        let acct = KeyPair::new_account().public_key();
        let user = KeyPair::new_user().public_key();
        let s = user_spec(json!({"publish": {"allow": ["orders.>.all"]}}));
        let e = user_claims("u", &s, &user, &acct, &acct).expect_err("bad");
        assert_eq!(
            e.to_string(),
            "permissions.publish.allow: subject \"orders.>.all\": `>` must be the last token"
        );
        let mut s = user_spec(json!({}));
        s.expires = Some("tomorrow".into());
        assert!(user_claims("u", &s, &user, &acct, &acct).is_err());
    }

    #[test]
    fn signing_is_stable_until_the_claims_change() {
        let op = KeyPair::new_operator();
        let acct = KeyPair::new_account().public_key();
        let c = account_claims("a", &spec(), &acct, &[], &[], &BTreeMap::new()).expect("c");
        let (first, changed) = sign_if_changed(&c, &op, None, 1_000).expect("sign");
        assert!(changed);
        let (again, changed) = sign_if_changed(&c, &op, Some(&first), 2_000).expect("sign");
        assert!(!changed);
        assert_eq!(again, first);
        let mut c2 = c.clone();
        c2.nats.limits.account.conn = 1;
        let (third, changed) = sign_if_changed(&c2, &op, Some(&first), 2_000).expect("sign");
        assert!(changed);
        assert_eq!(
            natrix_jwt::decode(&third).expect("d").data().issued_at,
            2_000
        );
        // Another signer re-signs even for the same claims.
        let op2 = KeyPair::new_operator();
        assert!(sign_if_changed(&c, &op2, Some(&first), 3_000).expect("s").1);
    }

    fn key(n: &str) -> (String, String) {
        ("ns".to_string(), n.to_string())
    }

    fn edge(from: &str, subject: &str, local: &str) -> Edge {
        Edge {
            exporter: key(from),
            subject: subject.into(),
            local: local.into(),
        }
    }

    #[test]
    fn import_cycles_are_found_only_when_subjects_chain() {
        let mut g = BTreeMap::new();
        g.insert(key("a"), vec![edge("b", "x.>", "x.>")]);
        g.insert(key("b"), vec![edge("c", "x.y", "x.y")]);
        g.insert(key("c"), vec![edge("a", "x.*", "x.*")]);
        assert_eq!(
            find_cycle(&key("a"), &g),
            Some(vec![
                "ns/a".into(),
                "ns/b".into(),
                "ns/c".into(),
                "ns/a".into()
            ])
        );
        // c takes something b does not deliver: no cycle.
        g.insert(key("c"), vec![edge("a", "other", "other")]);
        g.insert(key("b"), vec![edge("c", "x.y", "x.y")]);
        // b imports x.y from c, and c's import of `other` does not overlap x.y.
        assert_eq!(find_cycle(&key("a"), &g), None);
        assert!(subjects_overlap("a.*", "a.b"));
        assert!(subjects_overlap("a.>", "a.b.c"));
        assert!(!subjects_overlap("a.b", "a.b.c"));
        assert!(!subjects_overlap("a.b", "a.c"));
    }
}
