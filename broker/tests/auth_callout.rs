//! Auth callout, against natrix-server and the reference nats-server with the same
//! outcome: a small service of the test's own (async-nats + natrix-jwt) answers the
//! server's authorization requests on `$SYS.REQ.USER.AUTH`. It admits `alice`, placing
//! her in account APP with publish rights on `alice.>` only, and refuses `mallory` with
//! an error; once in clear and once with the request and answer sealed by xkeys.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::{NATRIX, Proc, reference_binary, start};
use futures::StreamExt;
use natrix_jwt::nkeys::{KeyPair, XKey};
use natrix_jwt::{AuthorizationResponseClaims, UserClaims, encode};

fn binaries() -> Vec<PathBuf> {
    let mut bins = vec![PathBuf::from(NATRIX)];
    bins.extend(reference_binary());
    bins
}

fn config(issuer: &KeyPair, xkey: Option<&XKey>) -> String {
    let xkey = xkey.map_or(String::new(), |x| format!("    xkey: {}\n", x.public_key()));
    format!(
        r#"
accounts {{
  AUTH: {{ users: [ {{user: auth, password: auth}} ] }}
  APP: {{}}
}}
authorization {{
  auth_callout {{
    issuer: {}
    auth_users: [ auth ]
    account: AUTH
{xkey}  }}
}}
"#,
        issuer.public_key()
    )
}

/// The service: answers each request until the connection goes.
async fn serve(p: &Proc, issuer: KeyPair, xkey: Option<XKey>) {
    let nc = async_nats::ConnectOptions::with_user_and_password("auth".into(), "auth".into())
        .connect(format!("nats://127.0.0.1:{}", p.port))
        .await
        .expect("service connects");
    let mut reqs = nc.subscribe("$SYS.REQ.USER.AUTH").await.expect("sub");
    nc.flush().await.expect("flush");
    tokio::spawn(async move {
        while let Some(m) = reqs.next().await {
            let Some(reply) = m.reply.clone() else {
                continue;
            };
            let server_xkey = m
                .headers
                .as_ref()
                .and_then(|h| h.get("Nats-Server-Xkey"))
                .map(|v| v.to_string());
            let token = match (&xkey, &server_xkey) {
                (Some(own), Some(server)) => {
                    let sender = XKey::from_public_key(server).expect("server xkey");
                    String::from_utf8(own.open(&m.payload, &sender).expect("open")).expect("utf8")
                }
                _ => String::from_utf8_lossy(&m.payload).into_owned(),
            };
            let req = natrix_jwt::decode_authorization_request(&token).expect("request");
            let user_nkey = req.nats.user_nkey.clone();
            let mut resp = AuthorizationResponseClaims::with_subject(user_nkey.clone());
            resp.data.audience = req.nats.server.id.clone();
            let who = req.nats.connect_options.username.as_str();
            if who == "alice" && req.nats.connect_options.password == "alice" {
                let mut user = UserClaims::new(user_nkey);
                user.data.name = "alice".into();
                user.data.audience = "APP".into();
                user.nats.permission_limits.permissions.publish.allow = vec![
                    "alice.>".into(),
                    "$SYS.REQ.USER.INFO".into(),
                    "_INBOX.>".into(),
                ];
                resp.nats.jwt = encode(&user, &issuer).expect("user jwt");
            } else {
                resp.nats.error = format!("{who} is not welcome");
            }
            let answer = encode(&resp, &issuer).expect("response jwt");
            let payload = match (&xkey, &server_xkey) {
                (Some(own), Some(server)) => {
                    let recipient = XKey::from_public_key(server).expect("server xkey");
                    own.seal(answer.as_bytes(), &recipient).expect("seal")
                }
                _ => answer.into_bytes(),
            };
            let _ = nc.publish(reply, payload.into()).await;
            let _ = nc.flush().await;
        }
    });
}

async fn run(bin: &std::path::Path, sealed: bool) -> Vec<String> {
    let issuer = KeyPair::new_account();
    let xkey = sealed.then(XKey::new);
    let p = start(bin, &config(&issuer, xkey.as_ref()), false);
    serve(&p, issuer, xkey).await;
    let mut log = Vec::new();
    let url = format!("nats://127.0.0.1:{}", p.port);
    let alice = async_nats::ConnectOptions::with_user_and_password("alice".into(), "alice".into())
        .max_reconnects(Some(0))
        .connect(&url)
        .await;
    match alice {
        Ok(nc) => {
            let info = nc.request("$SYS.REQ.USER.INFO", "".into()).await.map(|m| {
                serde_json::from_slice::<serde_json::Value>(&m.payload).unwrap_or_default()
            });
            match info {
                Ok(v) => log.push(format!(
                    "alice is {} in {}",
                    v["data"]["user"], v["data"]["account"]
                )),
                Err(e) => log.push(format!("alice user info: {e}")),
            }
            let mut sub = nc.subscribe("alice.x").await.expect("sub");
            nc.publish("alice.x", "hi".into()).await.expect("pub");
            nc.flush().await.expect("flush");
            let got = tokio::time::timeout(Duration::from_secs(1), sub.next()).await;
            log.push(format!("alice on alice.x: {}", matches!(got, Ok(Some(_)))));
            let mut sub = nc.subscribe("bob.x").await.expect("sub");
            nc.publish("bob.x", "hi".into()).await.expect("pub");
            nc.flush().await.expect("flush");
            let got = tokio::time::timeout(Duration::from_millis(500), sub.next()).await;
            log.push(format!("alice on bob.x: {}", matches!(got, Ok(Some(_)))));
        }
        Err(e) => log.push(format!("alice refused: {:?}", e.kind())),
    }
    let mallory = async_nats::ConnectOptions::with_user_and_password("mallory".into(), "x".into())
        .max_reconnects(Some(0))
        .connect(&url)
        .await;
    log.push(match mallory {
        Ok(_) => "mallory connected".into(),
        Err(e) => format!("mallory refused: {:?}", e.kind()),
    });
    log
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_callout_service_chooses_user_account_and_permissions() {
    for sealed in [false, true] {
        let mut runs = Vec::new();
        for bin in binaries() {
            runs.push(run(&bin, sealed).await);
        }
        let expected = vec![
            "alice is \"alice\" in \"APP\"".to_owned(),
            "alice on alice.x: true".to_owned(),
            "alice on bob.x: false".to_owned(),
            "mallory refused: AuthorizationViolation".to_owned(),
        ];
        assert_eq!(runs[0], expected, "natrix, sealed: {sealed}");
        if let Some(reference) = runs.get(1) {
            assert_eq!(&runs[0], reference, "nats-server differs, sealed: {sealed}");
        }
    }
}
