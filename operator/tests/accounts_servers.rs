//! Operator mode against real servers: the config the operator renders, the account JWTs
//! it signs and pushes, the user creds it writes, run on loopback with natrix-server and
//! the reference nats-server. Two users of one account get exactly their permissions, a
//! stream export/import between two accounts delivers, revoking a user (what deleting a
//! User does) disconnects it without a restart, and `nsc describe jwt` reads every token.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use common::servers::{Server, binaries, start_with};
use futures::StreamExt;
use natrix_jwt::nkeys::KeyPair;
use natrix_operator::accounts::claims::{ResolvedImport, account_claims, user_claims};
use natrix_operator::accounts::keys::{AccountKeys, OperatorIdentity};
use natrix_operator::accounts::push::push_account;
use natrix_operator::controller::operator_mode::operator_mode;
use natrix_operator::crd::NatsCluster;
use natrix_operator::crd::accounts::{Account, NatsUserSpec};
use natrix_operator::render::config::render_with;
use serde_json::json;

fn now() -> i64 {
    natrix_jwt::now_unix()
}

fn account(name: &str, spec: serde_json::Value) -> Account {
    serde_json::from_value(json!({
        "apiVersion": "natrix.io/v1alpha1", "kind": "Account",
        "metadata": {"name": name, "namespace": "ns"},
        "spec": spec,
    }))
    .expect("account")
}

fn user_spec(perms: serde_json::Value) -> NatsUserSpec {
    serde_json::from_value(json!({"accountRef": {"name": "app"}, "permissions": perms}))
        .expect("user")
}

/// Signs the account JWT the reconciler would, from the keys and the spec.
fn account_jwt(
    id: &OperatorIdentity,
    a: &Account,
    keys: &AccountKeys,
    imports: &[ResolvedImport],
) -> String {
    let signing: Vec<String> = keys
        .signing_public_keys()
        .expect("keys")
        .into_values()
        .collect();
    let claims = account_claims(
        a.metadata.name.as_deref().unwrap_or_default(),
        &a.spec,
        &keys.public_key().expect("pk"),
        &signing,
        imports,
        &keys.revoked,
    )
    .expect("claims");
    natrix_jwt::encode(&claims, &id.signer().expect("signer")).expect("sign")
}

/// A user's creds file, issued by the account's signing key `k1`.
fn creds(keys: &AccountKeys, name: &str, spec: &NatsUserSpec) -> (String, String) {
    let user = KeyPair::new_user();
    let signer = keys.signing_key("k1").expect("k1").expect("k1 exists");
    let claims = user_claims(
        name,
        spec,
        &user.public_key(),
        &keys.public_key().expect("pk"),
        &signer.public_key(),
    )
    .expect("claims");
    let jwt = natrix_jwt::encode(&claims, &signer).expect("sign");
    let creds = natrix_jwt::format_creds(&jwt, &user.seed().expect("seed")).expect("creds");
    (user.public_key(), creds)
}

async fn connect(url: &str, creds: &str) -> Result<async_nats::Client, String> {
    let opts = async_nats::ConnectOptions::with_credentials(creds).map_err(|e| e.to_string())?;
    opts.connect(url).await.map_err(|e| e.to_string())
}

/// The next message on `sub` within `wait`, or `None`.
async fn next(sub: &mut async_nats::Subscriber, wait: Duration) -> Option<async_nats::Message> {
    tokio::time::timeout(wait, sub.next()).await.ok().flatten()
}

fn nsc_describe(dir: &Path, file: &Path) -> Option<String> {
    let nsc = std::env::var("NSC_BIN").map_or_else(
        |_| Path::new(&std::env::var("HOME").unwrap_or_default()).join(".cache/natrix/bin/nsc"),
        Into::into,
    );
    if !nsc.exists() {
        assert!(
            std::env::var_os("CI").is_none(),
            "nsc not installed (scripts/deps)"
        );
        return None;
    }
    let out = Command::new(&nsc)
        .args(["describe", "jwt", "-f"])
        .arg(file)
        .arg("--all-dirs")
        .arg(dir.join("nsc"))
        .env("NSC_HOME", dir.join("nsc-home"))
        .env("NKEYS_PATH", dir.join("nsc"))
        .env("NSC_NO_GIT_IGNORE", "1")
        .output()
        .expect("run nsc");
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "nsc describe jwt {}: {text}",
        file.display()
    );
    Some(text)
}

/// Renders the operator-mode config for a one-server cluster, with the settings only a
/// pod has (pid file, monitoring port, routes) taken out through `config.merge`, and the
/// resolver directory under `dir`.
fn config(id: &OperatorIdentity, preloaded: &[Account], dir: &Path) -> String {
    let nc: NatsCluster = serde_json::from_value(json!({
        "apiVersion": "natrix.io/v1alpha1", "kind": "NatsCluster",
        "metadata": {"name": "nats", "namespace": "ns"},
        "spec": {"replicas": 1, "config": {"merge": {
            "http_port": null, "pid_file": null, "cluster": null,
            "resolver": {"dir": dir.join("jwt").display().to_string()}
        }}}
    }))
    .expect("nc");
    let om = operator_mode(id, preloaded).expect("operator mode");
    render_with(&nc, &[], Some(&om)).expect("render").text
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accounts_and_users_work_on_both_servers() {
    for (name, bin) in binaries() {
        scenario(name, &bin).await;
    }
}

async fn scenario(server_name: &'static str, bin: &Path) {
    let id = OperatorIdentity::generate("nats", now()).expect("operator");
    let partner = account(
        "partner",
        json!({"natsClusterRef": {"name": "nats"}, "exports": [{"subject": "prices.>", "name": "prices"}]}),
    );
    let mut app = account(
        "app",
        json!({"natsClusterRef": {"name": "nats"}, "signingKeys": [{"name": "k1"}],
               "limits": {"connections": 10},
               "imports": [{"accountRef": {"name": "partner"}, "subject": "prices.>", "localSubject": "feed.>"}]}),
    );
    let partner_keys = AccountKeys::generate(["k1"]).expect("keys");
    let mut app_keys = AccountKeys::generate(["k1"]).expect("keys");
    let partner_jwt = account_jwt(&id, &partner, &partner_keys, &[]);
    let imports = vec![ResolvedImport {
        spec: app.spec.imports[0].clone(),
        account_public_key: partner_keys.public_key().expect("pk"),
    }];
    let app_jwt = account_jwt(&id, &app, &app_keys, &imports);

    // The partner account is preloaded (as status.jwt would give it); the app account
    // reaches the server by a push only.
    let mut preloaded = partner.clone();
    preloaded.status = Some(
        serde_json::from_value(
            json!({"publicKey": partner_keys.public_key().expect("pk"), "jwt": partner_jwt}),
        )
        .expect("status"),
    );
    let scratch = tempfile::tempdir().expect("tempdir");
    let conf = scratch.path().join("nats.conf");
    std::fs::write(&conf, config(&id, &[preloaded], scratch.path())).expect("write conf");
    let conf_arg = conf.display().to_string();
    let server: Server = start_with(server_name, bin, &["-c", &conf_arg]);
    let url = server.url.clone();
    let log = || server.log();

    let accepted = push_account(
        &url,
        &id.system_user_creds,
        &app_jwt,
        1,
        Duration::from_secs(5),
    )
    .await
    .unwrap_or_else(|e| panic!("{server_name}: push: {e}\n{}", log()));
    assert_eq!(accepted, 1, "{server_name}");

    // Two users with different permissions, and one with none to watch everything.
    let alice = user_spec(
        json!({"publish": {"allow": ["orders.>"]}, "subscribe": {"allow": ["orders.>", "_INBOX.>"]}}),
    );
    let bob =
        user_spec(json!({"publish": {"allow": ["audit.>"]}, "subscribe": {"allow": ["orders.>"]}}));
    let (_, alice_creds) = creds(&app_keys, "alice", &alice);
    let (bob_key, bob_creds) = creds(&app_keys, "bob", &bob);
    let (_, watcher_creds) = creds(&app_keys, "watcher", &user_spec(json!({})));
    let alice_c = connect(&url, &alice_creds)
        .await
        .unwrap_or_else(|e| panic!("{server_name}: alice: {e}\n{}", log()));
    let bob_c = connect(&url, &bob_creds)
        .await
        .unwrap_or_else(|e| panic!("{server_name}: bob: {e}"));
    let watcher = connect(&url, &watcher_creds)
        .await
        .unwrap_or_else(|e| panic!("{server_name}: watcher: {e}"));
    let mut everything = watcher.subscribe(">").await.expect("sub");
    let mut bob_orders = bob_c.subscribe("orders.>").await.expect("sub");
    // Denied: alice may not subscribe to audit.
    let mut alice_audit = alice_c.subscribe("audit.>").await.expect("sub");
    watcher.flush().await.expect("flush");
    bob_c.flush().await.expect("flush");
    alice_c.flush().await.expect("flush");

    alice_c.publish("orders.1", "a".into()).await.expect("pub");
    alice_c
        .publish("audit.1", "denied".into())
        .await
        .expect("pub");
    bob_c
        .publish("orders.2", "denied".into())
        .await
        .expect("pub");
    bob_c.publish("audit.2", "b".into()).await.expect("pub");
    alice_c.flush().await.expect("flush");
    bob_c.flush().await.expect("flush");

    let got = next(&mut bob_orders, Duration::from_secs(2))
        .await
        .expect("bob gets alice's order");
    assert_eq!(got.subject.as_str(), "orders.1", "{server_name}");
    let mut seen = Vec::new();
    while let Some(m) = next(&mut everything, Duration::from_millis(700)).await {
        seen.push(m.subject.to_string());
    }
    // Two publishers: no order between them.
    seen.sort();
    assert_eq!(
        seen,
        vec!["audit.2", "orders.1"],
        "{server_name}: what the watcher saw"
    );
    assert!(
        next(&mut alice_audit, Duration::from_millis(300))
            .await
            .is_none(),
        "{server_name}: alice subscribed to audit.> though not allowed"
    );
    assert!(
        next(&mut bob_orders, Duration::from_millis(200))
            .await
            .is_none(),
        "{server_name}"
    );

    // Export/import: partner publishes prices.*, app sees them as feed.*.
    let feeder_keys = &partner_keys;
    let (_, feeder_creds) = {
        let u = user_spec(json!({}));
        creds(feeder_keys, "feeder", &u)
    };
    let feeder = connect(&url, &feeder_creds)
        .await
        .unwrap_or_else(|e| panic!("{server_name}: feeder: {e}"));
    let mut feed = watcher.subscribe("feed.>").await.expect("sub");
    watcher.flush().await.expect("flush");
    feeder
        .publish("prices.eur", "1.08".into())
        .await
        .expect("pub");
    feeder.flush().await.expect("flush");
    let m = next(&mut feed, Duration::from_secs(2))
        .await
        .unwrap_or_else(|| panic!("{server_name}: no import delivery\n{}", log()));
    assert_eq!(
        (m.subject.as_str(), &m.payload[..]),
        ("feed.eur", &b"1.08"[..])
    );

    // Deleting bob: his key revoked in the account, the account pushed again.
    app_keys.revoked.insert(bob_key.clone(), now());
    app.spec.limits = None;
    let revoked_jwt = account_jwt(&id, &app, &app_keys, &imports);
    push_account(
        &url,
        &id.system_user_creds,
        &revoked_jwt,
        1,
        Duration::from_secs(5),
    )
    .await
    .unwrap_or_else(|e| panic!("{server_name}: push revocation: {e}"));
    // Drain what the watcher saw so far, then bob publishes (allowed before) again.
    while next(&mut everything, Duration::from_millis(200))
        .await
        .is_some()
    {}
    tokio::time::sleep(Duration::from_millis(300)).await;
    // Bob's client may be reconnecting (and refused): nothing here may wait for it.
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        let _ = bob_c.publish("audit.after", "x".into()).await;
        let _ = bob_c.flush().await;
    })
    .await;
    let mut after = Vec::new();
    while let Some(m) = next(&mut everything, Duration::from_millis(700)).await {
        after.push(m.subject.to_string());
    }
    assert!(
        !after.iter().any(|s| s == "audit.after"),
        "{server_name}: revoked bob still published: {after:?}"
    );
    assert_ne!(
        bob_c.connection_state(),
        async_nats::connection::State::Connected,
        "{server_name}: bob still connected"
    );
    let again = tokio::time::timeout(Duration::from_secs(5), connect(&url, &bob_creds)).await;
    assert!(
        !matches!(again, Ok(Ok(_))),
        "{server_name}: revoked creds accepted"
    );
    // Alice is untouched.
    alice_c.publish("orders.3", "a".into()).await.expect("pub");
    alice_c.flush().await.expect("flush");
    assert_eq!(
        next(&mut everything, Duration::from_secs(2))
            .await
            .map(|m| m.subject.to_string()),
        Some("orders.3".to_string()),
        "{server_name}"
    );

    // nsc reads everything the operator signed.
    let files: BTreeMap<&str, String> = BTreeMap::from([
        ("operator.jwt", id.operator_jwt.clone()),
        ("app.jwt", revoked_jwt.clone()),
        ("alice.creds", alice_creds.clone()),
    ]);
    for (f, text) in &files {
        let path = scratch.path().join(f);
        std::fs::write(&path, text).expect("write");
        if let Some(out) = nsc_describe(scratch.path(), &path) {
            match *f {
                "operator.jwt" => assert!(out.contains("nats"), "{out}"),
                "app.jwt" => {
                    assert!(out.contains("app"), "{out}");
                    assert!(out.contains("Revocations"), "{out}");
                }
                _ => assert!(out.contains("orders.>"), "{out}"),
            }
        }
    }
}
