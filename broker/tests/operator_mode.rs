//! JWT operator mode, each scenario run against natrix-server and the reference
//! nats-server with the same outcome: an operator, a system account and accounts whose
//! JWTs this project's `natrix-jwt` signs, served by `resolver: MEMORY` with
//! `resolver_preload`. Users signed by the account, by a signing key and by a scoped
//! signing key connect with the permissions their JWT (or scope) gives; revoked,
//! expired, not-yet-valid, unknown-account, wrongly signed, bearer and malformed JWTs
//! are refused; an account's service export reaches another account through an import
//! with an activation token, and a forged activation is not honoured.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use common::jwt::{Chain, chain, config, creds};
use common::{NATRIX, Proc, reference_binary, start};
use futures::StreamExt;
use natrix_jwt::nkeys::KeyPair;
use natrix_jwt::{UserClaims, encode, now_unix};

fn binaries() -> Vec<PathBuf> {
    let mut bins = vec![PathBuf::from(NATRIX)];
    bins.extend(reference_binary());
    bins
}

/// A creds file whose seed is not the JWT's user (`format_creds` refuses to write one).
fn mismatched_creds(jwt: &str, key: &KeyPair) -> String {
    natrix_jwt::format_jwt("user", jwt)
        + &natrix_jwt::decorate_seed(&key.seed().expect("seed")).expect("seed text")
}

async fn connect(p: &Proc, creds: &str) -> Result<async_nats::Client, String> {
    let opts = async_nats::ConnectOptions::with_credentials(creds)
        .map_err(|e| e.to_string())?
        .connection_timeout(Duration::from_secs(3))
        .max_reconnects(Some(0));
    match tokio::time::timeout(
        Duration::from_secs(5),
        opts.connect(format!("nats://127.0.0.1:{}", p.port)),
    )
    .await
    {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(format!("{:?}", e.kind())),
        Err(_) => Err("timeout".into()),
    }
}

/// Whether a client with `creds` connects and round-trips a message on `subject`
/// (denied permissions show as no message).
async fn echo(p: &Proc, creds: &str, subject: &str) -> String {
    let nc = match connect(p, creds).await {
        Ok(nc) => nc,
        Err(e) => return format!("refused ({e})"),
    };
    let Ok(mut sub) = nc.subscribe(subject.to_owned()).await else {
        return "subscribe failed".into();
    };
    let _ = nc.publish(subject.to_owned(), "hi".into()).await;
    let _ = nc.flush().await;
    match tokio::time::timeout(Duration::from_millis(700), sub.next()).await {
        Ok(Some(_)) => "echo".into(),
        _ => "no echo".into(),
    }
}

async fn scenario(p: &Proc, c: &Chain) -> Vec<String> {
    let mut log = Vec::new();
    let new_user = || KeyPair::new_user();

    let u = new_user();
    let claims = UserClaims::new(u.public_key());
    log.push(format!(
        "account key: {}",
        echo(p, &creds(&u, &claims, &c.a), "foo").await
    ));

    let u = new_user();
    let mut claims = UserClaims::new(u.public_key());
    claims.nats.issuer_account = c.a.public_key();
    claims.nats.permission_limits.permissions.publish.allow = vec!["foo".into()];
    claims.nats.permission_limits.permissions.subscribe.allow = vec!["foo".into()];
    let limited = creds(&u, &claims, &c.a_sk);
    log.push(format!(
        "signing key, allowed: {}",
        echo(p, &limited, "foo").await
    ));
    log.push(format!(
        "signing key, denied: {}",
        echo(p, &limited, "bar").await
    ));

    let u = new_user();
    let mut claims = UserClaims::with_subject(u.public_key());
    claims.nats.issuer_account = c.a.public_key();
    let scoped = creds(&u, &claims, &c.a_scoped);
    log.push(format!(
        "scoped, template allows: {}",
        echo(p, &scoped, "dev.x").await
    ));
    log.push(format!(
        "scoped, template denies: {}",
        echo(p, &scoped, "prod.x").await
    ));

    let u = new_user();
    let mut claims = UserClaims::new(u.public_key());
    claims.nats.issuer_account = c.a.public_key();
    claims.nats.permission_limits.permissions.publish.allow = vec![">".into()];
    log.push(format!(
        "scoped with own permissions: {}",
        echo(p, &creds(&u, &claims, &c.a_scoped), "dev.x").await
    ));

    let claims = UserClaims::new(c.revoked.public_key());
    log.push(format!(
        "revoked: {}",
        echo(p, &creds(&c.revoked, &claims, &c.a), "foo").await
    ));

    let u = new_user();
    let mut claims = UserClaims::new(u.public_key());
    claims.data.expires = now_unix() - 10;
    log.push(format!(
        "expired: {}",
        echo(p, &creds(&u, &claims, &c.a), "foo").await
    ));

    let u = new_user();
    let mut claims = UserClaims::new(u.public_key());
    claims.data.not_before = now_unix() + 3600;
    log.push(format!(
        "not yet valid: {}",
        echo(p, &creds(&u, &claims, &c.a), "foo").await
    ));

    let u = new_user();
    let claims = UserClaims::new(u.public_key());
    log.push(format!(
        "unknown account: {}",
        echo(p, &creds(&u, &claims, &KeyPair::new_account()), "foo").await
    ));

    // A JWT for one key, with the seed of another: the nonce signature fails.
    let u = new_user();
    let claims = UserClaims::new(u.public_key());
    let jwt = encode(&claims, &c.a).expect("user");
    let wrong = mismatched_creds(&jwt, &new_user());
    log.push(format!("wrong key: {}", echo(p, &wrong, "foo").await));

    let u = new_user();
    let mut claims = UserClaims::new(u.public_key());
    claims.nats.permission_limits.bearer_token = true;
    let jwt = encode(&claims, &c.a).expect("user");
    let bearer = mismatched_creds(&jwt, &new_user());
    log.push(format!(
        "bearer, any key: {}",
        echo(p, &bearer, "foo").await
    ));

    // Services across accounts, by JWT exports and imports.
    let responder_key = new_user();
    let responder = connect(
        p,
        &creds(
            &responder_key,
            &UserClaims::new(responder_key.public_key()),
            &c.a,
        ),
    )
    .await
    .expect("responder connects");
    let mut reqs = responder.subscribe("svc.>").await.expect("sub");
    responder.flush().await.expect("flush");
    tokio::spawn(async move {
        while let Some(m) = reqs.next().await {
            if let Some(reply) = m.reply {
                let _ = responder.publish(reply, m.subject.to_string().into()).await;
                let _ = responder.flush().await;
            }
        }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let u = new_user();
    let requester = match connect(p, &creds(&u, &UserClaims::new(u.public_key()), &c.b)).await {
        Ok(nc) => nc,
        Err(e) => {
            log.push(format!("B user refused ({e})"));
            return log;
        }
    };
    for subject in ["svc.public", "svc.private"] {
        let answer = match tokio::time::timeout(
            Duration::from_secs(2),
            requester.request(subject.to_owned(), "q".into()),
        )
        .await
        {
            Ok(Ok(m)) => String::from_utf8_lossy(&m.payload).into_owned(),
            Ok(Err(e)) => format!("{:?}", e.kind()),
            Err(_) => "timeout".into(),
        };
        log.push(format!("B requests {subject}: {answer}"));
    }
    log
}

#[tokio::test]
async fn jwt_users_are_admitted_and_refused_like_nats_server() {
    let mut runs = Vec::new();
    for bin in binaries() {
        let c = chain(false);
        let p = start(&bin, &config(&c), false);
        runs.push(scenario(&p, &c).await);
    }
    let natrix = &runs[0];
    for line in [
        "account key: echo",
        "signing key, allowed: echo",
        "signing key, denied: no echo",
        "scoped, template allows: echo",
        "scoped, template denies: no echo",
        "bearer, any key: echo",
        "B requests svc.public: svc.public",
        "B requests svc.private: svc.private",
    ] {
        assert!(
            natrix.iter().any(|l| l == line),
            "{line:?} missing: {natrix:#?}"
        );
    }
    for refused in [
        "scoped with own permissions",
        "revoked",
        "expired",
        "not yet valid",
        "unknown account",
        "wrong key",
    ] {
        assert!(
            natrix
                .iter()
                .any(|l| l.starts_with(&format!("{refused}: refused"))),
            "{refused} was not refused: {natrix:#?}"
        );
    }
    if let Some(reference) = runs.get(1) {
        assert_eq!(natrix, reference, "natrix and nats-server differ");
    }
}

/// An account JWT whose import carries an activation token the importer signed itself
/// fails validation: the account is not loaded, so its users are refused (nats-server's
/// `Import.Validate`: the token's issuer must be the exporting account).
#[tokio::test]
async fn a_forged_activation_makes_the_importing_account_invalid() {
    let mut runs = Vec::new();
    for bin in binaries() {
        let c = chain(true);
        let p = start(&bin, &config(&c), false);
        let log = scenario(&p, &c).await;
        runs.push(
            log.into_iter()
                .filter(|l| l.starts_with("B "))
                .collect::<Vec<_>>(),
        );
    }
    assert_eq!(
        runs[0],
        vec!["B user refused (AuthorizationViolation)".to_owned()]
    );
    if let Some(reference) = runs.get(1) {
        assert_eq!(&runs[0], reference);
    }
}

/// A leaf node connecting with a `.creds` file to a natrix hub in operator mode: the
/// spoke (natrix or nats-server) is bound to the account of its user JWT, and messages
/// flow both ways; a spoke whose user is revoked is refused.
#[tokio::test]
async fn leaf_nodes_authenticate_with_user_jwts() {
    for spoke_bin in binaries() {
        let c = chain(false);
        let leaf_port = common::free_port();
        let hub_conf = format!(
            "{}\nleafnodes {{ listen: 127.0.0.1:{leaf_port} }}\n",
            config(&c)
        );
        let hub = start(&PathBuf::from(NATRIX), &hub_conf, false);
        let dir = tempfile::tempdir().expect("tempdir");
        let spoke_user = KeyPair::new_user();
        let good = dir.path().join("leaf.creds");
        std::fs::write(
            &good,
            creds(&spoke_user, &UserClaims::new(spoke_user.public_key()), &c.a),
        )
        .expect("creds");
        let bad = dir.path().join("revoked.creds");
        std::fs::write(
            &bad,
            creds(&c.revoked, &UserClaims::new(c.revoked.public_key()), &c.a),
        )
        .expect("creds");
        for (file, admitted) in [(&good, true), (&bad, false)] {
            let spoke_conf = format!(
                "leafnodes {{ remotes [ {{ url: \"nats-leaf://127.0.0.1:{leaf_port}\", credentials: \"{}\" }} ] }}\n",
                file.display()
            );
            let spoke = start(&spoke_bin, &spoke_conf, false);
            let local = async_nats::connect(format!("nats://127.0.0.1:{}", spoke.port))
                .await
                .expect("connect to spoke");
            let hub_user = KeyPair::new_user();
            let hub_client = connect(
                &hub,
                &creds(&hub_user, &UserClaims::new(hub_user.public_key()), &c.a),
            )
            .await
            .expect("hub client");
            let mut sub = hub_client.subscribe("from.leaf").await.expect("sub");
            hub_client.flush().await.expect("flush");
            let mut arrived = false;
            for _ in 0..20 {
                local.publish("from.leaf", "x".into()).await.expect("pub");
                local.flush().await.expect("flush");
                if let Ok(Some(_)) =
                    tokio::time::timeout(Duration::from_millis(200), sub.next()).await
                {
                    arrived = true;
                    break;
                }
            }
            assert_eq!(
                arrived,
                admitted,
                "spoke {} with {}",
                spoke_bin.display(),
                file.display()
            );
        }
    }
}

/// Two servers routed in operator mode with full resolvers (which load an account when
/// it is first needed): a client of account A subscribes on the first before the second
/// is up, so the interest reaches the second only in the route's opening burst, before
/// anything of A has happened there; a client of A that then connects to the second and
/// publishes must reach the subscriber. The second server loads A when a route announces
/// interest in it, as nats-server does (a restarted pod in a rolling restart is in
/// exactly this place).
#[tokio::test]
async fn route_interest_for_an_account_not_yet_used_here() {
    for bin in binaries() {
        let c = chain(false);
        let (p1, p2) = (common::free_port(), common::free_port());
        let routes = format!("nats://127.0.0.1:{p1}, nats://127.0.0.1:{p2}");
        let dirs = [
            tempfile::tempdir().expect("dir"),
            tempfile::tempdir().expect("dir"),
        ];
        let conf = |port: u16, dir: &std::path::Path| {
            let full = config(&c).replace(
                "resolver: MEMORY",
                &format!("resolver: {{ type: full, dir: \"{}\" }}", dir.display()),
            );
            format!(
                "{full}cluster {{ name: C, listen: \"127.0.0.1:{port}\", routes: [{routes}] }}\n"
            )
        };
        let user = KeyPair::new_user();
        let claims = UserClaims::new(user.public_key());
        let creds = creds(&user, &claims, &c.a);
        let s1 = start(&bin, &conf(p1, dirs[0].path()), true);
        let sub_client = connect(&s1, &creds).await.expect("connect to server 1");
        let mut sub = sub_client.subscribe("routed.x").await.expect("subscribe");
        sub_client.flush().await.expect("flush");
        let s2 = start(&bin, &conf(p2, dirs[1].path()), true);
        for s in [&s1, &s2] {
            common::wait_json(s, "/routez", Duration::from_secs(10), |v| {
                v["num_routes"].as_u64().unwrap_or(0) >= 1
            });
        }
        tokio::time::sleep(Duration::from_millis(300)).await;
        let pub_client = connect(&s2, &creds).await.expect("connect to server 2");
        let deadline = std::time::Instant::now() + Duration::from_secs(5);
        let got = loop {
            pub_client
                .publish("routed.x", "hello".into())
                .await
                .expect("publish");
            pub_client.flush().await.expect("flush");
            if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(300), sub.next()).await
            {
                break Some(m);
            }
            if std::time::Instant::now() > deadline {
                break None;
            }
        };
        assert!(
            got.is_some_and(|m| m.payload.as_ref() == b"hello"),
            "{}: a publish on server 2 never reached the subscriber on server 1",
            bin.display()
        );
    }
}

/// A running JetStream cluster switched into operator mode the way a rolling restart
/// does it: one server at a time, each killed and restarted with the operator, its
/// system account (named by its public key, where the others still call theirs `$SYS`)
/// and a full resolver, and each waited for until `/healthz` is ok before the next.
/// Mid-roll the servers name the system account differently; the route maps the peer's
/// name onto its own, so the meta group's Raft traffic keeps its quorum and every
/// restarted server rejoins. Afterwards an R3 stream of a JWT account takes writes.
#[tokio::test]
async fn a_jetstream_cluster_rolls_into_operator_mode() {
    let mut c = chain(false);
    let mut a_claims = natrix_jwt::AccountClaims::new(c.a.public_key());
    a_claims.data.name = "A".into();
    a_claims.nats.limits.jetstream.memory_storage = -1;
    a_claims.nats.limits.jetstream.disk_storage = -1;
    c.a_jwt = encode(&a_claims, &c.op_sk).expect("account A");
    let ports: Vec<u16> = (0..3).map(|_| common::free_port()).collect();
    let routes: Vec<String> = ports
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect();
    let dirs: Vec<tempfile::TempDir> = (0..6).map(|_| tempfile::tempdir().expect("dir")).collect();
    let conf = |i: usize, operator: bool| {
        let cluster = format!(
            "server_name: n{i}\njetstream {{ store_dir: \"{}\" }}\ncluster {{ name: C, listen: \"127.0.0.1:{}\", routes: [{}] }}\n",
            dirs[i].path().display(),
            ports[i],
            routes.join(", ")
        );
        if !operator {
            return cluster;
        }
        let resolver = format!(
            "resolver: {{ type: full, dir: \"{}\" }}",
            dirs[3 + i].path().display()
        );
        config(&c).replace("resolver: MEMORY", &resolver) + &cluster
    };
    let bin = PathBuf::from(NATRIX);
    let mut procs: Vec<Option<Proc>> = (0..3)
        .map(|i| Some(start(&bin, &conf(i, false), true)))
        .collect();
    for (i, p) in procs.iter().enumerate() {
        wait_healthy(
            p.as_ref().expect("started"),
            &format!("n{i} before the roll"),
        );
    }
    for i in 0..3 {
        procs[i] = None;
        let p = procs[i].insert(start(&bin, &conf(i, true), true));
        wait_healthy(p, &format!("n{i} restarted in operator mode"));
        // Every server still counts three in the meta group: none was dropped while
        // the restarted one was not heard from yet.
        for (j, q) in procs.iter().flatten().enumerate() {
            let port = q.http_port.expect("monitoring port");
            let meta = common::http_get(port, "/jsz").json()["meta_cluster"].clone();
            assert_eq!(meta["cluster_size"], 3, "n{j} after n{i}'s restart: {meta}");
        }
    }
    let user = KeyPair::new_user();
    let creds = creds(&user, &UserClaims::new(user.public_key()), &c.a);
    let nc = connect(procs[0].as_ref().expect("n0"), &creds)
        .await
        .expect("connect as a user of A");
    let js = async_nats::jetstream::new(nc);
    let stream = js
        .create_stream(async_nats::jetstream::stream::Config {
            name: "ROLLED".into(),
            subjects: vec!["rolled.>".into()],
            num_replicas: 3,
            storage: async_nats::jetstream::stream::StorageType::Memory,
            ..Default::default()
        })
        .await
        .expect("an R3 stream after the roll");
    let cluster = stream.cached_info().cluster.clone().expect("cluster info");
    assert_eq!(cluster.replicas.len(), 2, "R3 stream replicas: {cluster:?}");
    let ack = js
        .publish("rolled.x", "after the roll".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    assert_eq!(ack.sequence, 1);
}

/// Waits up to 30 s for `p`'s `/healthz` to be ok.
fn wait_healthy(p: &Proc, what: &str) {
    let port = p.http_port.expect("monitoring port");
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    loop {
        let reply = common::http_get(port, "/healthz");
        if reply.status == 200 {
            return;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "{what}: /healthz not ok within 30 s: {}\n{}",
            reply.body,
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
}
