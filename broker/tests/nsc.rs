//! `nsc` end to end, the same script against natrix-server and the reference nats-server:
//! an operator with a system account, an account with a signing key and two users with
//! different permissions; the server runs the config `nsc generate config --nats-resolver`
//! writes (the full resolver); `nsc push` publishes the account and the change is live;
//! each user gets exactly its permissions; after `nsc revocations add-user` and a push,
//! the revoked user is disconnected and cannot come back.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::{NATRIX, Proc, reference_binary, start_with_file};
use futures::StreamExt;

fn binaries() -> Vec<PathBuf> {
    let mut bins = vec![PathBuf::from(NATRIX)];
    bins.extend(reference_binary());
    bins
}

/// `nsc`, built by `scripts/deps`; under CI its absence is a failure.
fn nsc_binary() -> Option<PathBuf> {
    let found = std::env::var("NSC_BIN")
        .ok()
        .map(PathBuf::from)
        .or_else(|| {
            std::env::var("HOME")
                .ok()
                .map(|h| PathBuf::from(h).join(".cache/natrix/bin/nsc"))
        })
        .filter(|p| p.exists());
    assert!(
        found.is_some() || std::env::var_os("CI").is_none(),
        "nsc not installed (run scripts/deps)"
    );
    found
}

/// An nsc store kept inside one directory.
struct Nsc {
    bin: PathBuf,
    dir: tempfile::TempDir,
}

impl Nsc {
    fn run(&self, args: &[&str]) -> String {
        let home = self.dir.path();
        let out = Command::new(&self.bin)
            .args(args)
            .arg("--all-dirs")
            .arg(home.join("store"))
            .env("NKEYS_PATH", home.join("store"))
            .env("NSC_HOME", home.join("home"))
            .env("NSC_NO_GIT_IGNORE", "1")
            .output()
            .expect("run nsc");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        assert!(out.status.success(), "nsc {args:?}: {text}");
        text
    }

    fn creds(&self, account: &str, user: &str) -> String {
        self.run(&["generate", "creds", "-a", account, "-n", user])
    }
}

fn store(bin: PathBuf) -> Nsc {
    let nsc = Nsc {
        bin,
        dir: tempfile::tempdir().expect("tempdir"),
    };
    nsc.run(&[
        "add",
        "operator",
        "--name",
        "OP",
        "--generate-signing-key",
        "--sys",
    ]);
    nsc.run(&["add", "account", "--name", "APP"]);
    nsc.run(&["edit", "account", "--name", "APP", "--sk", "generate"]);
    nsc.run(&[
        "add",
        "user",
        "-a",
        "APP",
        "--name",
        "alice",
        "--allow-pub",
        "alice.>,_INBOX.>",
        "--allow-sub",
        "alice.>,_INBOX.>",
    ]);
    nsc.run(&[
        "add",
        "user",
        "-a",
        "APP",
        "--name",
        "bob",
        "--allow-pub",
        "bob.>",
        "--allow-sub",
        "bob.>",
    ]);
    nsc
}

/// Starts `bin` with the full-resolver config nsc generated (its JWT directory moved
/// into the server's own temp dir).
fn start_server(bin: &Path, nsc: &Nsc) -> Proc {
    let dir = tempfile::tempdir().expect("tempdir");
    let generated = nsc.run(&[
        "generate",
        "config",
        "--nats-resolver",
        "--sys-account",
        "SYS",
    ]);
    let jwt_dir = dir.path().join("jwt");
    let conf = generated.replace("'./jwt'", &format!("'{}'", jwt_dir.display()));
    let path = dir.path().join("server.conf");
    std::fs::write(&path, conf).expect("write config");
    start_with_file(bin, dir, &path, false)
}

async fn connect(p: &Proc, creds: &str) -> Result<async_nats::Client, String> {
    connect_watched(p, creds, None).await
}

/// Connects; connection events (disconnects) go to `events`, if given.
async fn connect_watched(
    p: &Proc,
    creds: &str,
    events: Option<tokio::sync::mpsc::UnboundedSender<async_nats::Event>>,
) -> Result<async_nats::Client, String> {
    let mut opts =
        async_nats::ConnectOptions::with_credentials(creds).map_err(|e| e.to_string())?;
    if let Some(tx) = events {
        opts = opts.event_callback(move |e| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e);
            }
        });
    }
    let opts = opts
        .max_reconnects(Some(0))
        .connection_timeout(Duration::from_secs(3));
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

async fn echoes(nc: &async_nats::Client, subject: &str) -> bool {
    let Ok(mut sub) = nc.subscribe(subject.to_owned()).await else {
        return false;
    };
    let _ = nc.publish(subject.to_owned(), "x".into()).await;
    let _ = nc.flush().await;
    matches!(
        tokio::time::timeout(Duration::from_millis(600), sub.next()).await,
        Ok(Some(_))
    )
}

async fn script(bin: &Path, nsc_bin: PathBuf) -> Vec<String> {
    let nsc = store(nsc_bin);
    let p = start_server(bin, &nsc);
    let url = format!("nats://127.0.0.1:{}", p.port);
    let mut log = Vec::new();
    // Before the push the server does not know APP.
    log.push(format!(
        "alice before push: {}",
        connect(&p, &nsc.creds("APP", "alice"))
            .await
            .map_or_else(|e| format!("refused ({e})"), |_| "connected".into())
    ));
    let pushed = nsc.run(&["push", "-a", "APP", "-u", &url]);
    log.push(format!("push: {}", pushed.contains("jwt updated")));
    let alice = connect(&p, &nsc.creds("APP", "alice"))
        .await
        .expect("alice");
    let (tx, mut events) = tokio::sync::mpsc::unbounded_channel();
    let bob = connect_watched(&p, &nsc.creds("APP", "bob"), Some(tx))
        .await
        .expect("bob");
    log.push(format!(
        "alice on alice.x: {}",
        echoes(&alice, "alice.x").await
    ));
    log.push(format!("alice on bob.x: {}", echoes(&alice, "bob.x").await));
    log.push(format!("bob on bob.x: {}", echoes(&bob, "bob.x").await));
    log.push(format!("bob on alice.x: {}", echoes(&bob, "alice.x").await));
    // Revoke bob and push: bob is disconnected, and stays out.
    nsc.run(&["revocations", "add-user", "-a", "APP", "-n", "bob"]);
    nsc.run(&["push", "-a", "APP", "-u", &url]);
    let mut closed = false;
    let deadline = tokio::time::Instant::now() + Duration::from_secs(5);
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, events.recv()).await {
        if matches!(
            e,
            async_nats::Event::Disconnected | async_nats::Event::Closed
        ) {
            closed = true;
            break;
        }
    }
    log.push(format!("bob disconnected after revocation: {closed}"));
    log.push(format!(
        "bob again: {}",
        connect(&p, &nsc.creds("APP", "bob"))
            .await
            .map_or_else(|e| format!("refused ({e})"), |_| "connected".into())
    ));
    log.push(format!(
        "alice still works: {}",
        echoes(&alice, "alice.y").await
    ));
    log
}

#[tokio::test]
async fn nsc_operator_account_users_push_and_revocation_like_nats_server() {
    let Some(nsc_bin) = nsc_binary() else {
        eprintln!("SKIPPED: nsc not installed");
        return;
    };
    let mut runs = Vec::new();
    for bin in binaries() {
        runs.push(script(&bin, nsc_bin.clone()).await);
    }
    let natrix = &runs[0];
    let expected = [
        "alice before push: refused (AuthorizationViolation)",
        "push: true",
        "alice on alice.x: true",
        "alice on bob.x: false",
        "bob on bob.x: true",
        "bob on alice.x: false",
        "bob disconnected after revocation: true",
        "bob again: refused (AuthorizationViolation)",
        "alice still works: true",
    ];
    assert_eq!(natrix, &expected.map(str::to_owned).to_vec(), "natrix");
    if let Some(reference) = runs.get(1) {
        assert_eq!(natrix, reference, "natrix and nats-server differ");
    }
}

/// A natrix-server and a nats-server in one cluster, each with its own full resolver: a
/// push to either reaches both (the claim update travels over the route), and users of
/// the pushed account talk across the two servers.
#[tokio::test]
async fn a_push_reaches_both_servers_of_a_mixed_cluster() {
    let (Some(nsc_bin), Some(reference)) = (nsc_binary(), reference_binary()) else {
        eprintln!("SKIPPED: nsc or nats-server not installed");
        return;
    };
    let nsc = store(nsc_bin);
    nsc.run(&["add", "account", "--name", "OTHER"]);
    nsc.run(&["add", "user", "-a", "OTHER", "--name", "olga"]);
    let (c1, c2) = (common::free_port(), common::free_port());
    let generated = nsc.run(&[
        "generate",
        "config",
        "--nats-resolver",
        "--sys-account",
        "SYS",
    ]);
    let node = |bin: &Path, name: &str, own: u16| {
        let dir = tempfile::tempdir().expect("tempdir");
        let jwt_dir = dir.path().join("jwt");
        let conf = format!(
            "server_name: {name}\n{}\ncluster {{\n  name: MIXED\n  listen: 127.0.0.1:{own}\n  routes: [nats://127.0.0.1:{c1}, nats://127.0.0.1:{c2}]\n}}\n",
            generated.replace("'./jwt'", &format!("'{}'", jwt_dir.display()))
        );
        let path = dir.path().join("server.conf");
        std::fs::write(&path, conf).expect("write config");
        start_with_file(bin, dir, &path, false)
    };
    let n1 = node(Path::new(NATRIX), "natrix", c1);
    let n2 = node(&reference, "nats-server", c2);
    // Pushes go to the natrix node for APP and to the nats-server node for OTHER; each
    // must reach the other server too. Give the route a moment first.
    let mut pushed = false;
    for _ in 0..20 {
        let out = nsc.run(&[
            "push",
            "-a",
            "APP",
            "-u",
            &format!("nats://127.0.0.1:{}", n1.port),
        ]);
        if out.matches("jwt updated").count() >= 2 {
            pushed = true;
            break;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(pushed, "the push to natrix did not reach both servers");
    let out = nsc.run(&[
        "push",
        "-a",
        "OTHER",
        "-u",
        &format!("nats://127.0.0.1:{}", n2.port),
    ]);
    assert_eq!(out.matches("jwt updated").count(), 2, "{out}");
    // APP's users on different servers; OTHER's user on natrix, pushed through nats-server.
    let alice = connect(&n2, &nsc.creds("APP", "alice"))
        .await
        .expect("alice on nats-server");
    let alice_too = connect(&n1, &nsc.creds("APP", "alice"))
        .await
        .expect("alice on natrix");
    connect(&n1, &nsc.creds("OTHER", "olga"))
        .await
        .expect("olga on natrix, account pushed to nats-server");
    let mut sub = alice_too.subscribe("alice.cross").await.expect("sub");
    alice_too.flush().await.expect("flush");
    let mut got = None;
    for _ in 0..20 {
        alice.publish("alice.cross", "x".into()).await.expect("pub");
        alice.flush().await.expect("flush");
        if let Ok(Some(m)) = tokio::time::timeout(Duration::from_millis(250), sub.next()).await {
            got = Some(m);
            break;
        }
    }
    assert!(got.is_some(), "no message across the mixed cluster");
}

/// An account whose JWT grants JetStream (`nsc edit account --js-…`) gets it once pushed:
/// a stream is created, written and read by one of its users, on both servers.
#[tokio::test]
async fn jetstream_follows_the_account_jwt() {
    let Some(nsc_bin) = nsc_binary() else {
        eprintln!("SKIPPED: nsc not installed");
        return;
    };
    let mut runs = Vec::new();
    for bin in binaries() {
        let nsc = store(nsc_bin.clone());
        nsc.run(&[
            "edit",
            "account",
            "--name",
            "APP",
            "--js-mem-storage",
            "1M",
            "--js-disk-storage",
            "64M",
            "--js-streams",
            "10",
            "--js-consumer",
            "10",
        ]);
        nsc.run(&["add", "user", "-a", "APP", "--name", "carol"]);
        let dir = tempfile::tempdir().expect("tempdir");
        let generated = nsc.run(&[
            "generate",
            "config",
            "--nats-resolver",
            "--sys-account",
            "SYS",
        ]);
        let conf = format!(
            "{}\njetstream {{ store_dir: '{}' }}\n",
            generated.replace(
                "'./jwt'",
                &format!("'{}'", dir.path().join("jwt").display())
            ),
            dir.path().join("js").display()
        );
        let path = dir.path().join("server.conf");
        std::fs::write(&path, conf).expect("write config");
        let p = start_with_file(&bin, dir, &path, false);
        nsc.run(&[
            "push",
            "-a",
            "APP",
            "-u",
            &format!("nats://127.0.0.1:{}", p.port),
        ]);
        let nc = connect(&p, &nsc.creds("APP", "carol"))
            .await
            .expect("carol");
        let js = async_nats::jetstream::new(nc);
        // The account's JetStream comes up right after the push.
        let mut created = None;
        for _ in 0..20 {
            match js
                .create_stream(async_nats::jetstream::stream::Config {
                    name: "ORDERS".into(),
                    subjects: vec!["orders.>".into()],
                    ..Default::default()
                })
                .await
            {
                Ok(s) => {
                    created = Some(s);
                    break;
                }
                Err(_) => tokio::time::sleep(Duration::from_millis(100)).await,
            }
        }
        let mut stream = created.unwrap_or_else(|| panic!("{}: no stream", bin.display()));
        js.publish("orders.1", "one".into())
            .await
            .expect("publish")
            .await
            .expect("ack");
        let info = stream.info().await.expect("info");
        let limits = js.query_account().await.expect("account info").limits;
        runs.push(format!(
            "messages {}, max_streams {:?}, max_memory {:?}",
            info.state.messages, limits.max_streams, limits.max_memory
        ));
    }
    assert_eq!(
        runs[0],
        "messages 1, max_streams Some(10), max_memory Some(1000000)"
    );
    if let Some(reference) = runs.get(1) {
        assert_eq!(&runs[0], reference);
    }
}
