//! Account and User reconciles against the scripted API server (the exact calls, the
//! Secrets written, the JWTs in them verified with natrix-jwt), operator mode in the
//! NatsCluster reconcile, and the operator-mode config as golden files.

mod common;

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};

use common::mockapi::{Seen, not_found, serve, step};
use futures::future::BoxFuture;
use http::Method;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use natrix_jwt::nkeys::KeyPair;
use natrix_operator::accounts::keys::{AccountKeys, OperatorIdentity};
use natrix_operator::accounts::push::PushError;
use natrix_operator::controller::account::{
    self, AccountsContext, ClaimsPusher, REQUEUE_STABLE, REQUEUE_WAITING,
};
use natrix_operator::controller::{self, Context, user};
use natrix_operator::crd::NatsCluster;
use natrix_operator::crd::accounts::Account;
use natrix_operator::metrics::Metrics;
use natrix_operator::render::operator_mode::OperatorMode;
use natrix_operator::render::{self, Inputs};
use serde_json::{Value, json};

const NOW: i64 = 1_800_000_000;
const ACCT: &str = "/apis/natrix.io/v1alpha1/namespaces/ns/accounts/app";
const ACCT_STATUS: &str = "/apis/natrix.io/v1alpha1/namespaces/ns/accounts/app/status";
const ALL_ACCOUNTS: &str = "/apis/natrix.io/v1alpha1/accounts";
const USERS: &str = "/apis/natrix.io/v1alpha1/namespaces/ns/users";
const USER: &str = "/apis/natrix.io/v1alpha1/namespaces/ns/users/alice";
const USER_STATUS: &str = "/apis/natrix.io/v1alpha1/namespaces/ns/users/alice/status";
const NC: &str = "/apis/natrix.io/v1alpha1/namespaces/ns/natsclusters/nats";
const SECRETS: &str = "/api/v1/namespaces/ns/secrets";
const OP_SECRET: &str = "/api/v1/namespaces/ns/secrets/nats-operator-keys";
const ACCT_SECRET: &str = "/api/v1/namespaces/ns/secrets/app-account-keys";
const CREDS_SECRET: &str = "/api/v1/namespaces/ns/secrets/alice-creds";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";

/// Records pushes and answers as `accepted` servers would.
struct FakePusher {
    pushed: Mutex<Vec<(String, String, usize)>>,
    fail: Option<String>,
}

impl ClaimsPusher for FakePusher {
    fn push<'a>(
        &'a self,
        url: &'a str,
        creds: &'a str,
        jwt: &'a str,
        expected: usize,
    ) -> BoxFuture<'a, Result<usize, PushError>> {
        Box::pin(async move {
            assert!(natrix_jwt::parse_creds(creds).is_ok(), "system user creds");
            self.pushed
                .lock()
                .unwrap()
                .push((url.to_string(), jwt.to_string(), expected));
            match &self.fail {
                Some(m) => Err(PushError::Refused(m.clone())),
                None => Ok(expected),
            }
        })
    }
}

fn context(client: kube::Client, fail: Option<&str>) -> (Arc<AccountsContext>, Arc<FakePusher>) {
    let pusher = Arc::new(FakePusher {
        pushed: Mutex::new(Vec::new()),
        fail: fail.map(str::to_string),
    });
    let mut ctx = AccountsContext::new(client, Arc::new(Metrics::new()));
    ctx.pusher = pusher.clone();
    ctx.now = Arc::new(|| Time(k8s_openapi::jiff::Timestamp::from_second(NOW).unwrap()));
    (Arc::new(ctx), pusher)
}

fn nc(spec: Value) -> Value {
    json!({"apiVersion": "natrix.io/v1alpha1", "kind": "NatsCluster",
           "metadata": {"name": "nats", "namespace": "ns", "uid": "nc-uid", "generation": 1},
           "spec": spec})
}

fn account(name: &str, spec: Value, status: Option<Value>) -> Value {
    let mut v = json!({"apiVersion": "natrix.io/v1alpha1", "kind": "Account",
        "metadata": {"name": name, "namespace": "ns", "uid": format!("{name}-uid"), "generation": 2,
                     "resourceVersion": "7", "finalizers": ["natrix.io/account-revocation"]},
        "spec": spec});
    if let Some(s) = status {
        v["status"] = s;
    }
    v
}

fn list(kind: &str, items: Vec<Value>) -> Value {
    json!({"apiVersion": "natrix.io/v1alpha1", "kind": kind, "metadata": {}, "items": items})
}

fn secret_json(name: &str, data: BTreeMap<String, ByteString>, owner_uid: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "Secret",
           "metadata": {"name": name, "namespace": "ns",
                        "ownerReferences": [{"apiVersion": "natrix.io/v1alpha1", "kind": "User", "name": "x", "uid": owner_uid}]},
           "data": data})
}

fn secret_data(v: &Value) -> BTreeMap<String, ByteString> {
    serde_json::from_value::<Secret>(v.clone())
        .unwrap()
        .data
        .unwrap_or_default()
}

fn ready(status_patch: &Value) -> &Value {
    &status_patch["status"]["conditions"][0]
}

#[tokio::test]
async fn a_new_account_gets_keys_a_signed_jwt_and_a_push() {
    let mut acct = account(
        "app",
        json!({"natsClusterRef": {"name": "nats"}, "signingKeys": [{"name": "k1"}],
               "limits": {"connections": 5}, "exports": [{"subject": "orders.>"}]}),
        None,
    );
    acct["metadata"]["finalizers"] = json!([]);
    let (client, server) = serve(vec![
        step(Method::PATCH, ACCT, 200, Some(acct.clone())),
        step(Method::GET, NC, 200, Some(nc(json!({"replicas": 3})))),
        step(Method::GET, OP_SECRET, 404, Some(not_found("secret"))),
        step(Method::POST, SECRETS, 201, None),
        step(Method::GET, ACCT_SECRET, 404, Some(not_found("secret"))),
        step(Method::POST, SECRETS, 201, None),
        step(
            Method::GET,
            ALL_ACCOUNTS,
            200,
            Some(list("AccountList", vec![acct.clone()])),
        ),
        step(Method::GET, USERS, 200, Some(list("UserList", vec![]))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, ACCT_STATUS, 200, Some(acct.clone())),
    ]);
    let (ctx, pusher) = context(client, None);
    let obj: Account = serde_json::from_value(acct).unwrap();
    let action = account::reconcile(Arc::new(obj), ctx).await.unwrap();
    let seen = server.await.unwrap();
    assert_eq!(action, Action::requeue(REQUEUE_STABLE));

    // The finalizer, guarded by the resourceVersion.
    assert_eq!(
        seen[0].body["metadata"]["finalizers"],
        json!(["natrix.io/account-revocation"])
    );
    assert_eq!(seen[0].body["metadata"]["resourceVersion"], "7");
    // The operator identity, owned by the NatsCluster.
    assert_eq!(seen[3].body["metadata"]["name"], "nats-operator-keys");
    assert_eq!(
        seen[3].body["metadata"]["ownerReferences"][0]["uid"],
        "nc-uid"
    );
    let id = OperatorIdentity::from_secret_data("op", &secret_data(&seen[3].body)).unwrap();
    // The account keys, owned by the Account, with the k1 signing key.
    assert_eq!(
        seen[5].body["metadata"]["ownerReferences"][0]["uid"],
        "app-uid"
    );
    let keys = AccountKeys::from_secret_data("acct", &secret_data(&seen[5].body)).unwrap();
    assert!(keys.signing.contains_key("k1"));

    assert_eq!(seen[8].body["reason"], "Signed");
    assert_eq!(seen[9].body["reason"], "Pushed");
    let status = &seen[10].body["status"];
    assert_eq!(status["publicKey"], keys.public_key().unwrap());
    assert_eq!(status["observedGeneration"], 2);
    assert_eq!(status["signingKeys"][0]["name"], "k1");
    assert_eq!(ready(&seen[10].body)["status"], "True");
    assert_eq!(ready(&seen[10].body)["reason"], "Pushed");
    assert_eq!(
        ready(&seen[10].body)["message"],
        "account JWT accepted by 3 of 3 servers"
    );
    let jwt = status["jwt"].as_str().unwrap();
    let claims = natrix_jwt::decode_account(jwt).unwrap();
    assert_eq!(claims.data.issuer, id.signer().unwrap().public_key());
    assert_eq!(claims.nats.limits.account.conn, 5);
    assert!(claims.nats.export("orders.>").is_some());
    let pushed = pusher.pushed.lock().unwrap().clone();
    assert_eq!(
        pushed,
        vec![(
            "nats://nats.ns.svc.cluster.local:4222".to_string(),
            jwt.to_string(),
            3
        )]
    );
}

fn op_secret(id: &OperatorIdentity) -> Value {
    secret_json("nats-operator-keys", id.to_secret_data(), "nc-uid")
}

#[tokio::test]
async fn unchanged_claims_keep_the_jwt_and_a_failed_push_is_reported() {
    let id = OperatorIdentity::generate("nats", NOW).unwrap();
    let keys = AccountKeys::generate([]).unwrap();
    let spec = json!({"natsClusterRef": {"name": "nats"}});
    let claims = natrix_operator::accounts::claims::account_claims(
        "app",
        &serde_json::from_value(spec.clone()).unwrap(),
        &keys.public_key().unwrap(),
        &[],
        &[],
        &BTreeMap::new(),
    )
    .unwrap();
    let old = natrix_jwt::encode_at(&claims, &id.signer().unwrap(), NOW - 100).unwrap();
    let acct = account(
        "app",
        spec,
        Some(json!({"publicKey": keys.public_key().unwrap(), "jwt": old})),
    );
    let (client, server) = serve(vec![
        step(Method::GET, NC, 200, Some(nc(json!({"replicas": 1})))),
        step(Method::GET, OP_SECRET, 200, Some(op_secret(&id))),
        step(
            Method::GET,
            ACCT_SECRET,
            200,
            Some(secret_json(
                "app-account-keys",
                keys.to_secret_data(),
                "app-uid",
            )),
        ),
        step(
            Method::GET,
            ALL_ACCOUNTS,
            200,
            Some(list("AccountList", vec![acct.clone()])),
        ),
        step(Method::GET, USERS, 200, Some(list("UserList", vec![]))),
        // No "Signed" event: the token did not change. A Warning for the failed push.
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, ACCT_STATUS, 200, Some(acct.clone())),
    ]);
    let (ctx, _) = context(client, Some("jwt update resulted in error (code 500)"));
    let obj: Account = serde_json::from_value(acct).unwrap();
    let action = account::reconcile(Arc::new(obj), ctx).await.unwrap();
    let seen = server.await.unwrap();
    assert_eq!(action, Action::requeue(account::REQUEUE_PUSH_FAILED));
    assert_eq!(seen[5].body["reason"], "PushFailed");
    assert_eq!(seen[6].body["status"]["jwt"], old);
    let r = ready(&seen[6].body);
    assert_eq!(
        (r["status"].as_str(), r["reason"].as_str()),
        (Some("False"), Some("PushFailed"))
    );
    assert_eq!(
        r["message"],
        "a server refused the account JWT: jwt update resulted in error (code 500)"
    );
}

#[tokio::test]
async fn a_missing_cluster_is_reported_and_retried() {
    let acct = account("app", json!({"natsClusterRef": {"name": "nats"}}), None);
    let (client, server) = serve(vec![
        step(Method::GET, NC, 404, Some(not_found("natsclusters"))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, ACCT_STATUS, 200, Some(acct.clone())),
    ]);
    let (ctx, pusher) = context(client, None);
    let action = account::reconcile(Arc::new(serde_json::from_value(acct).unwrap()), ctx)
        .await
        .unwrap();
    let seen = server.await.unwrap();
    assert_eq!(action, Action::requeue(REQUEUE_WAITING));
    let r = ready(&seen[2].body);
    assert_eq!(r["reason"], "ClusterNotFound");
    assert_eq!(r["message"], "NatsCluster ns/nats does not exist");
    assert!(pusher.pushed.lock().unwrap().is_empty());
}

#[tokio::test]
async fn an_import_cycle_is_refused_in_words() {
    let id = OperatorIdentity::generate("nats", NOW).unwrap();
    let keys = AccountKeys::generate([]).unwrap();
    let a = account(
        "app",
        json!({"natsClusterRef": {"name": "nats"}, "exports": [{"subject": "q.>", "type": "service"}],
               "imports": [{"accountRef": {"name": "b"}, "subject": "q.>", "type": "service"}]}),
        None,
    );
    let b = account(
        "b",
        json!({"natsClusterRef": {"name": "nats"}, "exports": [{"subject": "q.>", "type": "service"}],
               "imports": [{"accountRef": {"name": "app"}, "subject": "q.x", "type": "service"}]}),
        Some(json!({"publicKey": KeyPair::new_account().public_key()})),
    );
    let (client, server) = serve(vec![
        step(Method::GET, NC, 200, Some(nc(json!({})))),
        step(Method::GET, OP_SECRET, 200, Some(op_secret(&id))),
        step(
            Method::GET,
            ACCT_SECRET,
            200,
            Some(secret_json(
                "app-account-keys",
                keys.to_secret_data(),
                "app-uid",
            )),
        ),
        step(
            Method::GET,
            ALL_ACCOUNTS,
            200,
            Some(list("AccountList", vec![a.clone(), b])),
        ),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, ACCT_STATUS, 200, Some(a.clone())),
    ]);
    let (ctx, pusher) = context(client, None);
    account::reconcile(Arc::new(serde_json::from_value(a).unwrap()), ctx)
        .await
        .unwrap();
    let seen = server.await.unwrap();
    let r = ready(&seen[5].body);
    assert_eq!(r["reason"], "ImportCycle");
    assert_eq!(
        r["message"],
        "imports form a cycle, messages would circle between the accounts: ns/app → ns/b → ns/app"
    );
    assert_eq!(seen[4].body["type"], "Warning");
    assert!(pusher.pushed.lock().unwrap().is_empty());
}

fn user_obj(spec: Value, status: Option<Value>, deleting: bool) -> Value {
    let mut v = json!({"apiVersion": "natrix.io/v1alpha1", "kind": "User",
        "metadata": {"name": "alice", "namespace": "ns", "uid": "alice-uid", "generation": 1,
                     "resourceVersion": "3", "finalizers": ["natrix.io/user-revocation"]},
        "spec": spec});
    if let Some(s) = status {
        v["status"] = s;
    }
    if deleting {
        v["metadata"]["deletionTimestamp"] = json!("2027-01-01T00:00:00Z");
    }
    v
}

#[tokio::test]
async fn a_user_gets_creds_signed_by_the_active_signing_key() {
    let keys = AccountKeys::generate(["k1", "k2"]).unwrap();
    let acct = account(
        "app",
        json!({"natsClusterRef": {"name": "nats"}, "signingKeys": [{"name": "k2"}, {"name": "k1"}]}),
        Some(json!({"publicKey": keys.public_key().unwrap()})),
    );
    let u = user_obj(
        json!({"accountRef": {"name": "app"}, "expires": "2031-01-01T00:00:00Z",
               "permissions": {"publish": {"allow": ["orders.>"]}, "subscribe": {"deny": ["secret.>"]}, "allowResponses": true}}),
        None,
        false,
    );
    let (client, server) = serve(vec![
        step(Method::GET, ACCT, 200, Some(acct)),
        step(
            Method::GET,
            ACCT_SECRET,
            200,
            Some(secret_json(
                "app-account-keys",
                keys.to_secret_data(),
                "app-uid",
            )),
        ),
        step(Method::GET, CREDS_SECRET, 404, Some(not_found("secret"))),
        step(Method::PATCH, CREDS_SECRET, 200, None),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, USER_STATUS, 200, Some(u.clone())),
    ]);
    let (ctx, _) = context(client, None);
    let action = user::reconcile(Arc::new(serde_json::from_value(u).unwrap()), ctx)
        .await
        .unwrap();
    let seen = server.await.unwrap();
    assert_eq!(action, Action::await_change());
    assert!(
        seen[3].query.contains("fieldManager=natrix-operator"),
        "{}",
        seen[3].query
    );
    assert_eq!(
        seen[3].body["metadata"]["ownerReferences"][0]["uid"],
        "alice-uid"
    );
    let data = secret_data(&seen[3].body);
    let text = String::from_utf8(data["user.creds"].0.clone()).unwrap();
    assert!(
        text.starts_with("-----BEGIN NATS USER JWT-----\n"),
        "{text}"
    );
    assert!(
        text.contains("-----BEGIN USER NKEY SEED-----\nSU"),
        "{text}"
    );
    let creds = natrix_jwt::parse_creds(&text).unwrap();
    let claims = natrix_jwt::decode_user(&creds.jwt).unwrap();
    let k2 = keys.signing_key("k2").unwrap().unwrap().public_key();
    assert_eq!(claims.data.issuer, k2);
    assert_eq!(claims.nats.issuer_account, keys.public_key().unwrap());
    assert_eq!(claims.data.expires, 1_924_992_000);
    let p = &claims.nats.permission_limits.permissions;
    assert_eq!(p.publish.allow, vec!["orders.>"]);
    assert_eq!(p.subscribe.deny, vec!["secret.>"]);
    assert!(p.resp.is_some());
    assert_eq!(seen[4].body["reason"], "Issued");
    let st = &seen[5].body["status"];
    assert_eq!(st["publicKey"], claims.data.subject);
    assert_eq!(st["signingKey"], k2);
    assert_eq!(st["secretName"], "alice-creds");
    assert_eq!(ready(&seen[5].body)["status"], "True");
}

#[tokio::test]
async fn a_user_with_a_bad_subject_is_refused_and_a_foreign_secret_is_left_alone() {
    let keys = AccountKeys::generate([]).unwrap();
    let acct = account(
        "app",
        json!({"natsClusterRef": {"name": "nats"}}),
        Some(json!({"publicKey": keys.public_key().unwrap()})),
    );
    let keys_secret = secret_json("app-account-keys", keys.to_secret_data(), "app-uid");
    let bad = user_obj(
        json!({"accountRef": {"name": "app"}, "permissions": {"subscribe": {"allow": ["orders.>.x"]}}}),
        None,
        false,
    );
    let (client, server) = serve(vec![
        step(Method::GET, ACCT, 200, Some(acct.clone())),
        step(Method::GET, ACCT_SECRET, 200, Some(keys_secret.clone())),
        step(Method::GET, CREDS_SECRET, 404, Some(not_found("secret"))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, USER_STATUS, 200, Some(bad.clone())),
    ]);
    let (ctx, _) = context(client, None);
    user::reconcile(Arc::new(serde_json::from_value(bad).unwrap()), ctx)
        .await
        .unwrap();
    let seen: Vec<Seen> = server.await.unwrap();
    let r = ready(&seen[4].body);
    assert_eq!(r["reason"], "InvalidSpec");
    assert_eq!(
        r["message"],
        "permissions.subscribe.allow: subject \"orders.>.x\": `>` must be the last token"
    );

    // A Secret of that name that is not this User's is never overwritten.
    let u = user_obj(json!({"accountRef": {"name": "app"}}), None, false);
    let (client, server) = serve(vec![
        step(Method::GET, ACCT, 200, Some(acct)),
        step(Method::GET, ACCT_SECRET, 200, Some(keys_secret)),
        step(
            Method::GET,
            CREDS_SECRET,
            200,
            Some(secret_json("alice-creds", BTreeMap::new(), "someone-else")),
        ),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, USER_STATUS, 200, Some(u.clone())),
    ]);
    let (ctx, _) = context(client, None);
    user::reconcile(Arc::new(serde_json::from_value(u).unwrap()), ctx)
        .await
        .unwrap();
    let seen = server.await.unwrap();
    assert_eq!(ready(&seen[4].body)["reason"], "SecretConflict");
}

/// The claims account `app` (keys `keys`) is signed with, given its revocations.
fn revoking_claims(
    keys: &AccountKeys,
    revoked: &BTreeMap<String, i64>,
) -> natrix_jwt::AccountClaims {
    natrix_operator::accounts::claims::account_claims(
        "app",
        &serde_json::from_value(json!({"natsClusterRef": {"name": "nats"}})).unwrap(),
        &keys.public_key().unwrap(),
        &[],
        &[],
        revoked,
    )
    .unwrap()
}

/// One User reconcile whose `.creds` Secret holds `creds` (None: not there yet); returns
/// the calls seen. `then` lists the calls expected after the Secret's GET.
async fn user_reconcile(
    acct: &Value,
    keys: &AccountKeys,
    u: &Value,
    creds: Option<&str>,
    then: Vec<(Method, &'static str)>,
) -> Vec<Seen> {
    let creds_get = match creds {
        Some(c) => step(
            Method::GET,
            CREDS_SECRET,
            200,
            Some(secret_json(
                "alice-creds",
                BTreeMap::from([("user.creds".to_string(), ByteString(c.as_bytes().to_vec()))]),
                "alice-uid",
            )),
        ),
        None => step(Method::GET, CREDS_SECRET, 404, Some(not_found("secret"))),
    };
    let mut steps = vec![
        step(Method::GET, ACCT, 200, Some(acct.clone())),
        step(
            Method::GET,
            ACCT_SECRET,
            200,
            Some(secret_json(
                "app-account-keys",
                keys.to_secret_data(),
                "app-uid",
            )),
        ),
        creds_get,
    ];
    for (m, path) in then {
        let body = (path == USER_STATUS).then(|| u.clone());
        let code = if m == Method::POST { 201 } else { 200 };
        steps.push(step(m, path, code, body));
    }
    let (client, server) = serve(steps);
    let (ctx, _) = context(client, None);
    user::reconcile(Arc::new(serde_json::from_value(u.clone()).unwrap()), ctx)
        .await
        .unwrap();
    server.await.unwrap()
}

fn written_creds(seen: &Seen) -> String {
    String::from_utf8(secret_data(&seen.body)["user.creds"].0.clone()).unwrap()
}

/// Narrowed permissions revoke the credentials that carry the old ones (same user key,
/// issued before the new JWT), so the servers close their connections; a re-issue by a
/// rotated signing key alone revokes nothing (no downtime).
#[tokio::test]
async fn a_permission_change_revokes_the_earlier_credentials() {
    let keys = AccountKeys::generate(["k1", "k2"]).unwrap();
    let acct_with = |signer: &str| {
        account(
            "app",
            json!({"natsClusterRef": {"name": "nats"}, "signingKeys": [{"name": signer}]}),
            Some(json!({"publicKey": keys.public_key().unwrap()})),
        )
    };
    let wide = user_obj(
        json!({"accountRef": {"name": "app"}, "permissions": {"publish": {"allow": [">"]}}}),
        None,
        false,
    );
    let narrow = user_obj(
        json!({"accountRef": {"name": "app"}, "permissions": {"publish": {"allow": ["orders.>"]}}}),
        None,
        false,
    );
    let issue = vec![
        (Method::PATCH, CREDS_SECRET),
        (Method::POST, EVENTS),
        (Method::PATCH, USER_STATUS),
    ];
    let seen = user_reconcile(&acct_with("k1"), &keys, &wide, None, issue.clone()).await;
    let old = written_creds(&seen[3]);
    let old_jwt = natrix_jwt::decode_user(&natrix_jwt::parse_creds(&old).unwrap().jwt).unwrap();
    assert_eq!(old_jwt.data.issued_at, NOW);

    // The signing key rotates, permissions stay: a new JWT, nothing revoked.
    let seen = user_reconcile(&acct_with("k2"), &keys, &wide, Some(&old), issue).await;
    let rotated = written_creds(&seen[3]);
    assert_ne!(rotated, old);
    assert!(
        seen.iter()
            .all(|s| s.path != ACCT_SECRET || s.method == Method::GET)
    );

    // The permissions narrow: the new JWT is issued a second after the old one and the
    // key's earlier JWTs are revoked, after the new creds are written.
    let seen = user_reconcile(
        &acct_with("k2"),
        &keys,
        &narrow,
        Some(&rotated),
        vec![
            (Method::PATCH, CREDS_SECRET),
            (Method::POST, EVENTS),
            (Method::PATCH, ACCT_SECRET),
            (Method::POST, EVENTS),
            (Method::PATCH, USER_STATUS),
        ],
    )
    .await;
    let new = natrix_jwt::parse_creds(&written_creds(&seen[3])).unwrap();
    let new_jwt = natrix_jwt::decode_user(&new.jwt).unwrap();
    assert_eq!(
        new_jwt.data.subject, old_jwt.data.subject,
        "the user key is kept"
    );
    assert_eq!(new_jwt.data.issued_at, NOW + 1);
    assert_eq!(
        new_jwt.nats.permission_limits.permissions.publish.allow,
        vec!["orders.>"]
    );
    let revoked = seen[5].body["data"][format!("revoked.{}", old_jwt.data.subject)].clone();
    let at: i64 = String::from_utf8(serde_json::from_value::<ByteString>(revoked).unwrap().0)
        .unwrap()
        .parse()
        .unwrap();
    assert_eq!(at, NOW);
    assert_eq!(seen[6].body["reason"], "EarlierCredentialsRevoked");
    let mut k = keys.clone();
    k.revoked.insert(old_jwt.data.subject.clone(), at);
    let claims = revoking_claims(&keys, &k.revoked);
    assert!(
        claims
            .nats
            .is_revoked(&old_jwt.data.subject, old_jwt.data.issued_at)
    );
    assert!(
        !claims
            .nats
            .is_revoked(&new_jwt.data.subject, new_jwt.data.issued_at)
    );

    // The next reconcile (the Account pushed, the keys Secret now holds the revocation)
    // keeps the key and the JWT: the revocation predates them.
    user_reconcile(
        &acct_with("k2"),
        &k,
        &narrow,
        Some(&written_creds(&seen[3])),
        vec![(Method::PATCH, USER_STATUS)],
    )
    .await;
}

#[tokio::test]
async fn deleting_a_user_revokes_its_key_in_the_account() {
    let pk = KeyPair::new_user().public_key();
    let u = user_obj(
        json!({"accountRef": {"name": "app"}}),
        Some(json!({"publicKey": pk})),
        true,
    );
    let (client, server) = serve(vec![
        step(
            Method::PATCH,
            ACCT_SECRET,
            200,
            Some(secret_json("app-account-keys", BTreeMap::new(), "app-uid")),
        ),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, USER, 200, Some(u.clone())),
    ]);
    let (ctx, _) = context(client, None);
    let action = user::reconcile(Arc::new(serde_json::from_value(u).unwrap()), ctx)
        .await
        .unwrap();
    let seen = server.await.unwrap();
    assert_eq!(action, Action::await_change());
    let data = secret_data(
        &json!({"apiVersion": "v1", "kind": "Secret", "metadata": {}, "data": seen[0].body["data"]}),
    );
    assert_eq!(
        data.get(&format!("revoked.{pk}")).map(|b| b.0.clone()),
        Some(NOW.to_string().into_bytes())
    );
    assert_eq!(seen[1].body["reason"], "Revoked");
    assert_eq!(seen[2].body["metadata"]["finalizers"], json!([]));
    // The account keys with that revocation sign a JWT that revokes the user.
    let mut keys = AccountKeys::generate([]).unwrap();
    keys.revoked.insert(pk.clone(), NOW);
    let claims = revoking_claims(&keys, &keys.revoked);
    assert!(claims.nats.is_revoked(&pk, NOW - 5));
}

// --- NatsCluster in operator mode ---

const CM: &str = "/api/v1/namespaces/ns/configmaps/nats-config";
const NC_STATUS: &str = "/apis/natrix.io/v1alpha1/namespaces/ns/natsclusters/nats/status";

struct NoPods;
impl controller::probe::ConfigProbe for NoPods {
    fn config_digest<'a>(
        &'a self,
        _ip: &'a str,
        _port: i32,
    ) -> BoxFuture<'a, Result<Option<String>, controller::probe::ProbeError>> {
        Box::pin(async { Ok(None) })
    }

    fn jetstream<'a>(
        &'a self,
        ip: &'a str,
        _: i32,
    ) -> BoxFuture<'a, Result<controller::probe::JetStreamHealth, controller::probe::ProbeError>>
    {
        Box::pin(async move {
            Err(controller::probe::ProbeError::Timeout {
                url: ip.to_string(),
            })
        })
    }
}

fn cluster_ctx(client: kube::Client) -> Arc<Context> {
    let mut ctx = Context::new(client, Arc::new(NoPods), Arc::new(Metrics::new()));
    ctx.now = Arc::new(|| Time(k8s_openapi::jiff::Timestamp::from_second(NOW).unwrap()));
    Arc::new(ctx)
}

#[tokio::test]
async fn accounts_switch_the_cluster_to_operator_mode() {
    let id = OperatorIdentity::generate("nats", NOW).unwrap();
    let keys = AccountKeys::generate([]).unwrap();
    let claims = natrix_operator::accounts::claims::account_claims(
        "app",
        &serde_json::from_value(json!({"natsClusterRef": {"name": "nats"}})).unwrap(),
        &keys.public_key().unwrap(),
        &[],
        &[],
        &BTreeMap::new(),
    )
    .unwrap();
    let jwt = natrix_jwt::encode_at(&claims, &id.signer().unwrap(), NOW).unwrap();
    // One Account of this cluster with a JWT, one of another cluster, one whose JWT
    // another operator signed (not preloaded: the server would refuse to start).
    let foreign = natrix_jwt::encode_at(&claims, &KeyPair::new_operator(), NOW).unwrap();
    let items = vec![
        account(
            "app",
            json!({"natsClusterRef": {"name": "nats"}}),
            Some(json!({"publicKey": keys.public_key().unwrap(), "jwt": jwt})),
        ),
        account(
            "other",
            json!({"natsClusterRef": {"name": "elsewhere"}}),
            Some(json!({"publicKey": "AOTHER", "jwt": "x"})),
        ),
        account(
            "moved",
            json!({"natsClusterRef": {"name": "nats"}}),
            Some(json!({"publicKey": "AMOVED", "jwt": foreign})),
        ),
    ];
    let ncv = nc(json!({"replicas": 1}));
    let (client, server) = serve(vec![
        step(Method::GET, CM, 404, Some(not_found("cm"))),
        step(
            Method::GET,
            ALL_ACCOUNTS,
            200,
            Some(list("AccountList", items)),
        ),
        step(Method::GET, OP_SECRET, 200, Some(op_secret(&id))),
        step(Method::PATCH, CM, 200, None),
        step(
            Method::PATCH,
            "/api/v1/namespaces/ns/services/nats-headless",
            200,
            None,
        ),
        step(
            Method::PATCH,
            "/api/v1/namespaces/ns/services/nats",
            200,
            None,
        ),
        step(
            Method::GET,
            "/apis/apps/v1/namespaces/ns/statefulsets/nats",
            404,
            Some(not_found("sts")),
        ),
        step(
            Method::PATCH,
            "/apis/apps/v1/namespaces/ns/statefulsets/nats",
            200,
            None,
        ),
        step(
            Method::PATCH,
            "/apis/policy/v1/namespaces/ns/poddisruptionbudgets/nats",
            200,
            None,
        ),
        step(
            Method::GET,
            "/api/v1/namespaces/ns/pods",
            200,
            Some(json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []})),
        ),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, NC_STATUS, 200, Some(ncv.clone())),
    ]);
    let obj: NatsCluster = serde_json::from_value(ncv).unwrap();
    controller::reconcile(Arc::new(obj), cluster_ctx(client))
        .await
        .unwrap();
    let seen = server.await.unwrap();
    let conf = seen[3].body["data"]["nats.conf"].as_str().unwrap();
    assert!(
        conf.contains(&format!("operator = \"{}\"", id.operator_jwt)),
        "{conf}"
    );
    let sys = id.system_account_public_key().unwrap();
    assert!(
        conf.contains(&format!("system_account = \"{sys}\"")),
        "{conf}"
    );
    assert!(conf.contains("dir = \"/var/run/natrix/jwt\""), "{conf}");
    assert!(
        conf.contains(&format!("{} = \"{jwt}\"", keys.public_key().unwrap())),
        "{conf}"
    );
    assert!(
        conf.contains(&format!("{sys} = \"{}\"", id.system_account_jwt)),
        "{conf}"
    );
    assert!(
        !conf.contains("AOTHER") && !conf.contains("AMOVED"),
        "{conf}"
    );
    assert!(!conf.contains("authorization"), "{conf}");
}

/// Records each `SERVER.REMOVE` and accepts it.
#[derive(Default)]
struct FakeSystem {
    removed: Mutex<Vec<(String, String)>>,
}

impl controller::scale::SystemRequests for FakeSystem {
    fn server_remove<'a>(
        &'a self,
        url: &'a str,
        creds: &'a str,
        server: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            assert!(
                creds.contains("NATS USER JWT"),
                "system user creds expected"
            );
            self.removed
                .lock()
                .unwrap()
                .push((url.to_string(), server.to_string()));
            Ok(())
        })
    }
}

/// The steps of one operator-mode reconcile of NatsCluster `nats` that applies its
/// objects, with `before_apply_events` events written before the apply.
fn scale_steps(
    id: &OperatorIdentity,
    items: Vec<Value>,
    before_apply_events: usize,
    after: &Value,
) -> Vec<common::mockapi::Step> {
    let mut steps = vec![
        step(Method::GET, CM, 404, Some(not_found("cm"))),
        step(
            Method::GET,
            ALL_ACCOUNTS,
            200,
            Some(list("AccountList", items)),
        ),
        step(Method::GET, OP_SECRET, 200, Some(op_secret(id))),
    ];
    for _ in 0..before_apply_events {
        steps.push(step(Method::POST, EVENTS, 201, None));
    }
    steps.extend([
        step(Method::PATCH, CM, 200, None),
        step(
            Method::PATCH,
            "/api/v1/namespaces/ns/services/nats-headless",
            200,
            None,
        ),
        step(
            Method::PATCH,
            "/api/v1/namespaces/ns/services/nats",
            200,
            None,
        ),
        step(
            Method::GET,
            "/apis/apps/v1/namespaces/ns/statefulsets/nats",
            404,
            Some(not_found("sts")),
        ),
        step(
            Method::PATCH,
            "/apis/apps/v1/namespaces/ns/statefulsets/nats",
            200,
            None,
        ),
        step(
            Method::PATCH,
            "/apis/policy/v1/namespaces/ns/poddisruptionbudgets/nats",
            200,
            None,
        ),
        step(
            Method::GET,
            "/api/v1/namespaces/ns/pods",
            200,
            Some(json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": []})),
        ),
        // The config digest differs from the status's: an event says how it is applied.
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, NC_STATUS, 200, Some(after.clone())),
    ]);
    steps
}

#[tokio::test]
async fn a_jetstream_scale_down_waits_until_the_leaving_server_left_the_meta_group() {
    let id = OperatorIdentity::generate("nats", NOW).unwrap();
    let items = vec![account(
        "app",
        json!({"natsClusterRef": {"name": "nats"}}),
        None,
    )];
    let pod = |name: &str, js: &str, streams: u64| json!({"pod": name, "configDigest": "fnv1a64:0", "applied": true, "jetstream": js, "streams": streams});
    let spec =
        json!({"replicas": 2, "jetstream": {"enabled": true, "memoryStorage": {"size": "1Gi"}}});
    let status = |nats2_streams: u64, nats1: &str| {
        json!({"replicas": 3, "readyReplicas": 3, "configDigest": "fnv1a64:0",
               "podConfigs": [pod("nats-0", "Current", 1), pod("nats-1", nats1, 1),
                              pod("nats-2", "Current", nats2_streams)]})
    };

    // 1. nats-2 still holds a stream and nats-1 catches up: the pods stay, SERVER.REMOVE
    // is sent for nats-2.
    let mut ncv = nc(spec.clone());
    ncv["status"] = status(1, "JetStream stream 'app > orders' is not current");
    let (client, server) = serve(scale_steps(&id, items.clone(), 0, &ncv));
    let system = Arc::new(FakeSystem::default());
    let mut ctx = Context::new(client, Arc::new(NoPods), Arc::new(Metrics::new()));
    ctx.now = Arc::new(|| Time(k8s_openapi::jiff::Timestamp::from_second(NOW).unwrap()));
    ctx.system = system.clone();
    let obj: NatsCluster = serde_json::from_value(ncv.clone()).unwrap();
    controller::reconcile(Arc::new(obj), Arc::new(ctx))
        .await
        .unwrap();
    let seen = server.await.unwrap();
    assert_eq!(
        system.removed.lock().unwrap().as_slice(),
        [(
            "nats://nats.ns.svc.cluster.local:4222".to_string(),
            "nats-2".to_string()
        )]
    );
    let sts = seen
        .iter()
        .find(|s| s.path.ends_with("/statefulsets/nats") && s.method == Method::PATCH)
        .unwrap();
    assert_eq!(sts.body["spec"]["replicas"], 3, "the pods are kept");
    let st = &seen.last().unwrap().body["status"];
    let progressing = st["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Progressing")
        .unwrap();
    assert_eq!(progressing["reason"], "ScalingDown");
    let message = progressing["message"].as_str().unwrap();
    assert!(
        message.contains("nats-2 still holds 1 stream replicas")
            && message.contains("nats-1 is catching up"),
        "{message}"
    );
    assert!(st["scaleDownReleased"].is_null());

    // 2. Moved: the StatefulSet shrinks, an event says so, and the release is recorded.
    let mut ncv = nc(spec);
    ncv["status"] = status(0, "Current");
    let (client, server) = serve(scale_steps(&id, items, 1, &ncv));
    let mut ctx = Context::new(client, Arc::new(NoPods), Arc::new(Metrics::new()));
    ctx.now = Arc::new(|| Time(k8s_openapi::jiff::Timestamp::from_second(NOW).unwrap()));
    ctx.system = system.clone();
    let obj: NatsCluster = serde_json::from_value(ncv.clone()).unwrap();
    controller::reconcile(Arc::new(obj), Arc::new(ctx))
        .await
        .unwrap();
    let seen = server.await.unwrap();
    assert_eq!(seen[3].body["reason"], "ScaledDown");
    let sts = seen
        .iter()
        .find(|s| s.path.ends_with("/statefulsets/nats") && s.method == Method::PATCH)
        .unwrap();
    assert_eq!(sts.body["spec"]["replicas"], 2);
    assert_eq!(seen.last().unwrap().body["status"]["scaleDownReleased"], 2);

    // 3. While the StatefulSet shrinks (its status still counts 3 pods), no hold again.
    let mut ncv = ncv.clone();
    ncv["status"]["scaleDownReleased"] = json!(2);
    let (client, server) = serve(scale_steps(
        &id,
        vec![account(
            "app",
            json!({"natsClusterRef": {"name": "nats"}}),
            None,
        )],
        0,
        &ncv,
    ));
    let mut ctx = Context::new(client, Arc::new(NoPods), Arc::new(Metrics::new()));
    ctx.system = system.clone();
    let obj: NatsCluster = serde_json::from_value(ncv).unwrap();
    controller::reconcile(Arc::new(obj), Arc::new(ctx))
        .await
        .unwrap();
    let seen = server.await.unwrap();
    let sts = seen
        .iter()
        .find(|s| s.path.ends_with("/statefulsets/nats") && s.method == Method::PATCH)
        .unwrap();
    assert_eq!(sts.body["spec"]["replicas"], 2);
    assert_eq!(
        system.removed.lock().unwrap().len(),
        2,
        "no request once let through"
    );
}

#[tokio::test]
async fn a_cluster_with_its_own_users_and_accounts_is_refused() {
    let id = OperatorIdentity::generate("nats", NOW).unwrap();
    let ncv = nc(
        json!({"config": {"authorization": {"users": [{"nkey": KeyPair::new_user().public_key()}]},
                                     "merge": {"accounts": {"A": {}}}}}),
    );
    let (client, server) = serve(vec![
        step(Method::GET, CM, 404, Some(not_found("cm"))),
        step(
            Method::GET,
            ALL_ACCOUNTS,
            200,
            Some(list(
                "AccountList",
                vec![account(
                    "app",
                    json!({"natsClusterRef": {"name": "nats"}}),
                    None,
                )],
            )),
        ),
        step(Method::GET, OP_SECRET, 200, Some(op_secret(&id))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, NC_STATUS, 200, Some(ncv.clone())),
    ]);
    let obj: NatsCluster = serde_json::from_value(ncv).unwrap();
    controller::reconcile(Arc::new(obj), cluster_ctx(client))
        .await
        .unwrap();
    let seen = server.await.unwrap();
    assert_eq!(seen[3].body["reason"], "OperatorModeConflict");
    let degraded = seen[4].body["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == "Degraded")
        .unwrap()
        .clone();
    assert_eq!(degraded["reason"], "OperatorModeConflict");
    assert_eq!(
        degraded["message"],
        "Account resources name this NatsCluster, so it runs in operator mode (users come from User resources), but the spec also sets config.authorization, config.merge.accounts; remove them or the Accounts. Nothing was changed in the running cluster; fix the spec."
    );
}

// --- golden configs ---

const OPERATOR_SEED: &str = "SOAO6FRAIVX42TKDOOFJOMZCQMUCARFKO5EERIKQ63YR5HWWXCKPA6UMP4";
const SIGNING_SEED: &str = "SOAFKQRCI6BNLU3PBHQYI4OYIGRKLPRIIO3HRM4JIYHYVPOTS5IPI5SBQE";
const SYSTEM_SEED: &str = "SAAPLNN6T43JOIPISCX4OAIPEL64L2BRYFCYBTA3BKA2B6UP4OOMETRLWI";
const ACCOUNT_SEED: &str = "SAAFZFPUWN3NQ3YHFL36NLQFGOWEM3T6XOWJM557J7VFSP3GCU2M4GYQ4Y";

/// Operator mode with fixed keys and times, so the rendered config is reproducible.
fn fixed_operator_mode() -> OperatorMode {
    let op = KeyPair::from_seed(OPERATOR_SEED).unwrap();
    let sk = KeyPair::from_seed(SIGNING_SEED).unwrap();
    let sys = KeyPair::from_seed(SYSTEM_SEED).unwrap();
    let acct = KeyPair::from_seed(ACCOUNT_SEED).unwrap();
    let mut oc = natrix_jwt::OperatorClaims::new(op.public_key());
    oc.data.name = "nats".into();
    oc.nats.signing_keys = vec![sk.public_key()];
    oc.nats.system_account = sys.public_key();
    let mut sc = natrix_jwt::AccountClaims::new(sys.public_key());
    sc.data.name = "SYS".into();
    let ac = natrix_operator::accounts::claims::account_claims(
        "app",
        &serde_json::from_value(
            json!({"natsClusterRef": {"name": "nats"}, "exports": [{"subject": "orders.>"}]}),
        )
        .unwrap(),
        &acct.public_key(),
        &[],
        &[],
        &BTreeMap::new(),
    )
    .unwrap();
    OperatorMode {
        operator_jwt: natrix_jwt::encode_at(&oc, &op, NOW).unwrap(),
        system_account: sys.public_key(),
        preload: BTreeMap::from([
            (
                sys.public_key(),
                natrix_jwt::encode_at(&sc, &sk, NOW).unwrap(),
            ),
            (
                acct.public_key(),
                natrix_jwt::encode_at(&ac, &sk, NOW).unwrap(),
            ),
        ]),
    }
}

#[test]
fn operator_mode_configs_match_golden_files() {
    let om = fixed_operator_mode();
    for (name, spec) in [
        ("operator-mode-memory.conf", json!({"replicas": 3})),
        (
            "operator-mode-file.conf",
            json!({"replicas": 3, "jetstream": {"enabled": true, "fileStorage": {"size": "10Gi"}}}),
        ),
    ] {
        let nc: NatsCluster = serde_json::from_value(nc(spec)).unwrap();
        let r = render::render(
            &nc,
            &Inputs {
                operator_mode: Some(om.clone()),
                ..Inputs::default()
            },
        )
        .unwrap_or_else(|e| panic!("{name}: {e}"));
        common::golden(name, &r.config.text);
        // natrix-server loads it in operator mode.
        assert_eq!(r.config.options.system_account, om.system_account);
    }
    // Adding an Account later is a reload, not a restart; entering operator mode is a
    // restart.
    let nc: NatsCluster = serde_json::from_value(nc(json!({"replicas": 3}))).unwrap();
    let mut fewer = om.clone();
    fewer.preload.retain(|k, _| *k == om.system_account);
    let before = render::config::render_with(&nc, &[], Some(&fewer)).unwrap();
    let after = render::config::render_with(&nc, &[], Some(&om)).unwrap();
    let d = render::decide_restart(Some(&before.text), &after);
    assert!(d.reasons.is_empty(), "{:?}", d.reasons);
    let plain = render::config::render(&nc, &[]).unwrap();
    let d = render::decide_restart(Some(&plain.text), &after);
    assert!(!d.reasons.is_empty());
}
