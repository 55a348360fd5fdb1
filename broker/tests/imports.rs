//! Exports and imports between accounts, each scenario run against natrix-server and the
//! reference nats-server with the same observable outcome: service requests across
//! accounts (renamed, wildcard, streamed replies, no responders), stream imports with a
//! prefix and with `to`, nothing crossing without an import, the responder on another
//! cluster node and behind a leaf node, and the start-up errors of imports that are not
//! authorized or that form a cycle.

mod common;

use std::path::PathBuf;
use std::time::Duration;

use async_nats::{Client, Subscriber};
use common::{NATRIX, Proc, config_error, free_port, reference_binary, start};
use futures::StreamExt;

fn binaries() -> Vec<PathBuf> {
    let mut bins = vec![PathBuf::from(NATRIX)];
    bins.extend(reference_binary());
    bins
}

const ACCOUNTS: &str = r#"
accounts {
  A: {
    users: [{user: a, password: a}]
    exports: [
      {service: "svc.>"}
      {service: "multi", response_type: stream, response_threshold: "2s"}
      {stream: "events.>"}
      {service: "private.svc", accounts: [C]}
    ]
  }
  B: {
    users: [{user: b, password: b}]
    imports: [
      {service: {account: A, subject: "svc.echo"}, to: "echo"}
      {service: {account: A, subject: "svc.wild.*"}}
      {service: {account: A, subject: "multi"}}
      {stream: {account: A, subject: "events.>"}, prefix: "from_a"}
    ]
  }
  C: {
    users: [{user: c, password: c}]
    imports: [
      {stream: {account: A, subject: "events.x"}, to: "ev"}
      {service: {account: A, subject: "private.svc"}}
    ]
  }
}
"#;

async fn connect(port: u16, user: &str) -> Client {
    async_nats::ConnectOptions::with_user_and_password(user.into(), user.into())
        .connect(format!("nats://127.0.0.1:{port}"))
        .await
        .expect("connect")
}

/// Subscribes and waits until the server has the subscription: a probe published on
/// the same connection comes back through it (a flush only empties the socket buffer).
async fn synced(nc: &Client, subject: &str) -> Subscriber {
    let mut sub = nc.subscribe(subject.to_owned()).await.expect("subscribe");
    let probe: Vec<&str> = subject
        .split('.')
        .map(|t| if t == "*" || t == ">" { "probe" } else { t })
        .collect();
    let probe = probe.join(".");
    nc.publish(probe.clone(), "probe".into())
        .await
        .expect("probe");
    nc.flush().await.expect("flush");
    loop {
        let m = tokio::time::timeout(Duration::from_secs(3), sub.next())
            .await
            .expect("probe returns")
            .expect("subscription open");
        if m.subject.as_str() == probe && m.payload.as_ref() == b"probe" {
            return sub;
        }
    }
}

/// A responder in account A: answers `svc.>` and `private.svc` once with
/// `<subject>:<payload>`, `multi` three times.
async fn responder(nc: &Client) {
    for subject in ["svc.>", "private.svc", "multi"] {
        let mut sub = synced(nc, subject).await;
        let nc = nc.clone();
        tokio::spawn(async move {
            while let Some(m) = sub.next().await {
                let Some(reply) = m.reply.clone() else {
                    continue;
                };
                let text = format!("{}:{}", m.subject, String::from_utf8_lossy(&m.payload));
                let n = if m.subject.as_str() == "multi" { 3 } else { 1 };
                for i in 0..n {
                    let _ = nc
                        .publish(reply.clone(), format!("{text}#{i}").into())
                        .await;
                }
                let _ = nc.flush().await;
            }
        });
    }
    nc.flush().await.expect("flush");
}

async fn ask(nc: &Client, subject: &str) -> String {
    match tokio::time::timeout(
        Duration::from_secs(2),
        nc.request(subject.to_owned(), "hi".into()),
    )
    .await
    {
        Ok(Ok(m)) => String::from_utf8_lossy(&m.payload).into_owned(),
        Ok(Err(e)) => format!("error: {:?}", e.kind()),
        Err(_) => "timeout".into(),
    }
}

/// Everything `sub` receives within `quiet` of the last message.
async fn drain(sub: &mut Subscriber, quiet: Duration) -> Vec<String> {
    let mut out = Vec::new();
    while let Ok(Some(m)) = tokio::time::timeout(quiet, sub.next()).await {
        out.push(format!(
            "{} {}",
            m.subject,
            String::from_utf8_lossy(&m.payload)
        ));
    }
    out
}

async fn single_server_run(p: &Proc) -> Vec<String> {
    let a = connect(p.port, "a").await;
    let b = connect(p.port, "b").await;
    let c = connect(p.port, "c").await;
    responder(&a).await;
    let mut log = Vec::new();
    // A's catch-all shows what arrives there: the requests, with their `_R_` replies.
    let mut a_all = synced(&a, ">").await;
    log.push(format!("B echo -> {}", ask(&b, "echo").await));
    log.push(format!("B svc.wild.x -> {}", ask(&b, "svc.wild.x").await));
    log.push(format!(
        "B svc.echo (not imported as such) -> {}",
        ask(&b, "svc.echo").await
    ));
    log.push(format!("B svc.other -> {}", ask(&b, "svc.other").await));
    log.push(format!("C private.svc -> {}", ask(&c, "private.svc").await));
    // A streamed service answers three times through one import.
    let inbox = b.new_inbox();
    let mut replies = synced(&b, &inbox).await;
    b.publish_with_reply("multi", inbox, "m".into())
        .await
        .expect("publish");
    b.flush().await.expect("flush");
    let mut got = drain(&mut replies, Duration::from_millis(500)).await;
    got.iter_mut()
        .for_each(|s| *s = s.split_once(' ').map_or(s.clone(), |x| x.1.to_owned()));
    log.push(format!("B multi -> {got:?}"));
    let seen_in_a = drain(&mut a_all, Duration::from_millis(200)).await;
    for m in &seen_in_a {
        let subject = m.split(' ').next().unwrap_or_default();
        if !subject.starts_with("_R_.") && !subject.starts_with("_INBOX.") {
            log.push(format!("A saw {subject}"));
        }
    }
    // Streams: A publishes, B sees them under its prefix, C only what it imported.
    let mut b_all = synced(&b, ">").await;
    let mut c_all = synced(&c, ">").await;
    for s in ["events.x", "events.y.z", "other"] {
        a.publish(s, "e".into()).await.expect("publish");
    }
    a.flush().await.expect("flush");
    // Nothing crosses the other way: B publishing A's subjects stays in B.
    b.publish("events.x", "from-b".into())
        .await
        .expect("publish");
    b.publish("svc.echo", "from-b".into())
        .await
        .expect("publish");
    b.flush().await.expect("flush");
    let mut got_b = drain(&mut b_all, Duration::from_millis(300)).await;
    got_b.sort();
    log.push(format!("B got {got_b:?}"));
    log.push(format!(
        "C got {:?}",
        drain(&mut c_all, Duration::from_millis(300)).await
    ));
    let mut a_after = drain(&mut a_all, Duration::from_millis(200)).await;
    a_after.sort();
    log.push(format!("A got {a_after:?}"));
    log
}

#[tokio::test]
async fn services_and_streams_cross_accounts_like_nats_server() {
    let mut runs = Vec::new();
    for bin in binaries() {
        let p = start(&bin, ACCOUNTS, false);
        runs.push(single_server_run(&p).await);
    }
    let natrix = &runs[0];
    let expected = [
        "B echo -> svc.echo:hi#0",
        "B svc.wild.x -> svc.wild.x:hi#0",
        "B svc.echo (not imported as such) -> error: NoResponders",
        "B svc.other -> error: NoResponders",
        "C private.svc -> private.svc:hi#0",
        r#"B multi -> ["multi:m#0", "multi:m#1", "multi:m#2"]"#,
    ];
    for line in expected {
        assert!(
            natrix.iter().any(|l| l == line),
            "{line:?} missing in {natrix:#?}"
        );
    }
    assert!(
        natrix.iter().any(|l| l
            == r#"B got ["events.x from-b", "from_a.events.x e", "from_a.events.y.z e", "svc.echo from-b"]"#),
        "{natrix:#?}"
    );
    assert!(
        natrix.iter().any(|l| l == r#"C got ["ev e"]"#),
        "{natrix:#?}"
    );
    assert!(
        natrix
            .iter()
            .any(|l| l == r#"A got ["events.x e", "events.y.z e", "other e"]"#),
        "{natrix:#?}"
    );
    if let Some(reference) = runs.get(1) {
        assert_eq!(natrix, reference, "natrix and nats-server differ");
    }
}

/// The reply subject a responder sees is one of the exporter's `_R_.` subjects, and one
/// reply to a singleton service closes the way back: a second one goes nowhere.
#[tokio::test]
async fn service_replies_travel_as_r_subjects_and_singletons_answer_once() {
    for bin in binaries() {
        let p = start(&bin, ACCOUNTS, false);
        let a = connect(p.port, "a").await;
        let b = connect(p.port, "b").await;
        let mut reqs = synced(&a, "svc.>").await;
        let inbox = b.new_inbox();
        let mut replies = synced(&b, &inbox).await;
        b.publish_with_reply("echo", inbox, "q".into())
            .await
            .expect("publish");
        b.flush().await.expect("flush");
        let req = tokio::time::timeout(Duration::from_secs(2), reqs.next())
            .await
            .expect("request arrives")
            .expect("message");
        let reply = req.reply.clone().expect("reply subject");
        assert!(
            reply.starts_with("_R_."),
            "{} gave reply {reply}",
            bin.display()
        );
        assert_eq!(reply.split('.').count(), 3, "{reply}");
        for n in ["one", "two"] {
            a.publish(reply.clone(), n.into()).await.expect("publish");
        }
        a.flush().await.expect("flush");
        let got = drain(&mut replies, Duration::from_millis(400)).await;
        assert_eq!(got.len(), 1, "{}: {got:?}", bin.display());
        assert!(got[0].ends_with(" one"), "{got:?}");
    }
}

#[test]
fn unauthorized_and_cyclic_imports_are_refused_at_start() {
    let private = r#"
accounts {
  A: { exports: [ {service: "private.svc", accounts: [C]}, {stream: "s.priv", accounts: [C]} ] }
  B: { imports: [ {service: {account: A, subject: "private.svc"}} ] }
  C: {}
}
"#;
    let private_stream = r#"
accounts {
  A: { exports: [ {stream: "s.priv", accounts: [C]} ] }
  B: { imports: [ {stream: {account: A, subject: "s.priv"}} ] }
  C: {}
}
"#;
    let not_exported = r#"
accounts {
  A: { exports: [ {service: "svc"} ] }
  B: { imports: [ {service: {account: A, subject: "other"}} ] }
}
"#;
    let cycle = r#"
accounts {
  A: { exports: [ {service: "q"} ], imports: [ {service: {account: B, subject: "q"}} ] }
  B: { exports: [ {service: "q"} ], imports: [ {service: {account: A, subject: "q"}} ] }
}
"#;
    let unknown = r#"
accounts {
  B: { imports: [ {stream: {account: NOPE, subject: "x"}} ] }
}
"#;
    let wild_prefix = r#"
accounts {
  A: { exports: [ {stream: "x.>"} ] }
  B: { imports: [ {stream: {account: A, subject: "x.>"}, prefix: "p.*"} ] }
}
"#;
    let cases = [
        (
            private,
            "Error adding service import \"private.svc\": service import not authorized",
        ),
        (
            private_stream,
            "Error adding stream import \"s.priv\": stream import not authorized",
        ),
        (
            not_exported,
            "Error adding service import \"other\": service import not authorized",
        ),
        (cycle, "import forms a cycle"),
        (unknown, "\"NOPE\" account not defined for stream import"),
        (
            wild_prefix,
            "stream import prefix can not contain wildcard tokens",
        ),
    ];
    for bin in binaries() {
        for (conf, want) in cases {
            let got = config_error(&bin, conf);
            assert!(
                got.contains(want),
                "{}: {want:?} not in {got:?}",
                bin.display()
            );
        }
    }
}

/// Two servers in a cluster: the requester in B on one, the responder in A on the other;
/// and a stream import whose publisher is on the far node.
#[tokio::test]
async fn a_service_import_reaches_a_responder_on_another_node() {
    let bins = binaries();
    // natrix pair, and natrix with nats-server (mixed) when the reference is installed.
    let pairs: Vec<(PathBuf, PathBuf)> = bins
        .iter()
        .map(|other| (bins[0].clone(), other.clone()))
        .collect();
    for (b1, b2) in pairs {
        let (c1, c2) = (free_port(), free_port());
        let conf = |name: &str, own: u16| {
            format!(
                "server_name: {name}\n{ACCOUNTS}\ncluster {{\n  name: T\n  listen: 127.0.0.1:{own}\n  routes: [nats://127.0.0.1:{c1}, nats://127.0.0.1:{c2}]\n}}\n"
            )
        };
        let n1 = start(&b1, &conf("n1", c1), false);
        let n2 = start(&b2, &conf("n2", c2), false);
        let a = connect(n2.port, "a").await;
        responder(&a).await;
        let b = connect(n1.port, "b").await;
        let mut answer = String::new();
        // Route interest takes a moment to arrive.
        for _ in 0..50 {
            answer = ask(&b, "echo").await;
            if answer == "svc.echo:hi#0" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(
            answer,
            "svc.echo:hi#0",
            "{} + {}",
            b1.display(),
            b2.display()
        );
        let mut from_a = synced(&b, "from_a.>").await;
        // The subscription's interest reaches the other node over the route.
        tokio::time::sleep(Duration::from_millis(300)).await;
        a.publish("events.far", "e".into()).await.expect("publish");
        a.flush().await.expect("flush");
        let got = drain(&mut from_a, Duration::from_millis(500)).await;
        assert_eq!(
            got,
            vec!["from_a.events.far e".to_owned()],
            "{} + {}",
            b1.display(),
            b2.display()
        );
    }
}

/// The responder behind a leaf node: the hub has the accounts and the import, the leaf
/// server binds to A on the hub and its client answers.
#[tokio::test]
async fn a_service_import_reaches_a_responder_behind_a_leaf_node() {
    for leaf_bin in binaries() {
        let hub_bin = PathBuf::from(NATRIX);
        let leaf_port = free_port();
        let hub_conf = format!(
            "server_name: hub\n{ACCOUNTS}\nleafnodes {{ listen: 127.0.0.1:{leaf_port} }}\n"
        );
        let hub = start(&hub_bin, &hub_conf, false);
        let leaf_conf = format!(
            "server_name: leaf\nleafnodes {{ remotes [ {{ url: \"nats-leaf://a:a@127.0.0.1:{leaf_port}\" }} ] }}\n"
        );
        let leaf = start(&leaf_bin, &leaf_conf, false);
        let responder_nc = async_nats::connect(format!("nats://127.0.0.1:{}", leaf.port))
            .await
            .expect("connect");
        responder(&responder_nc).await;
        let b = connect(hub.port, "b").await;
        let mut answer = String::new();
        for _ in 0..50 {
            answer = ask(&b, "echo").await;
            if answer == "svc.echo:hi#0" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(answer, "svc.echo:hi#0", "leaf {}", leaf_bin.display());
    }
}

/// Sorted, so that nats-server's map order does not matter.
fn sorted(v: &serde_json::Value) -> Vec<String> {
    let mut out: Vec<String> = v
        .as_array()
        .map(|a| a.iter().map(ToString::to_string).collect())
        .unwrap_or_default();
    out.sort();
    out
}

/// `/accountz?acc=` lists each account's exports and imports (with the system imports
/// every account gets) as nats-server does.
#[tokio::test]
async fn accountz_lists_exports_and_imports_like_nats_server() {
    let mut runs = Vec::new();
    for bin in binaries() {
        let p = start(&bin, ACCOUNTS, true);
        let port = p.http_port.expect("monitoring port");
        let mut run = Vec::new();
        for acc in ["A", "B", "C", "$SYS"] {
            let detail =
                common::http_get(port, &format!("/accountz?acc={acc}")).json()["account_detail"]
                    .clone();
            run.push((acc, sorted(&detail["exports"]), sorted(&detail["imports"])));
        }
        runs.push(run);
    }
    let natrix = &runs[0];
    let b_imports = &natrix[1].2;
    assert!(
        b_imports
            .iter()
            .any(|i| i.contains("\"local_subject\":\"from_a.events.>\"")),
        "{b_imports:#?}"
    );
    assert!(
        b_imports
            .iter()
            .any(|i| i.contains("\"$SYS.REQ.USER.B.INFO\"")),
        "{b_imports:#?}"
    );
    if let Some(reference) = runs.get(1) {
        for (ours, theirs) in natrix.iter().zip(reference) {
            assert_eq!(ours, theirs, "account {}", ours.0);
        }
    }
}

/// Every account reaches the system account's per-account services through the
/// imports nats-server gives it: `$SYS.REQ.USER.INFO` answers who the requester is and
/// what it may do, `$SYS.REQ.ACCOUNT.PING.CONNZ` lists only the account's connections.
#[tokio::test]
async fn system_imports_answer_user_info_and_account_connz() {
    let conf = r#"
accounts {
  A: {
    users: [
      {user: a, password: a, permissions: {publish: {allow: ["x.>", "_INBOX.>", "$SYS.REQ.>"]}, subscribe: {deny: ["secret"]}}}
    ]
  }
  B: { users: [{user: b, password: b}] }
}
"#;
    let mut runs = Vec::new();
    for bin in binaries() {
        let p = start(&bin, conf, false);
        let a = connect(p.port, "a").await;
        let _b = connect(p.port, "b").await;
        let info = tokio::time::timeout(
            Duration::from_secs(2),
            a.request("$SYS.REQ.USER.INFO", "".into()),
        )
        .await
        .expect("in time")
        .expect("answer");
        let info: serde_json::Value = serde_json::from_slice(&info.payload).expect("json");
        let connz = tokio::time::timeout(
            Duration::from_secs(2),
            a.request("$SYS.REQ.ACCOUNT.PING.CONNZ", "".into()),
        )
        .await
        .expect("in time")
        .expect("answer");
        let connz: serde_json::Value = serde_json::from_slice(&connz.payload).expect("json");
        // nats-server keeps permission lists in maps: compare them sorted.
        let mut data = info["data"].clone();
        for side in ["publish", "subscribe"] {
            for list in ["allow", "deny"] {
                if let Some(a) = data["permissions"][side][list].as_array_mut() {
                    a.sort_by_key(ToString::to_string);
                }
            }
        }
        runs.push((data, connz["data"]["num_connections"].clone()));
    }
    let (info, conns) = &runs[0];
    assert_eq!(info["user"], "a", "{info}");
    assert_eq!(info["account"], "A", "{info}");
    assert_eq!(
        info["permissions"]["publish"]["allow"],
        serde_json::json!(["$SYS.REQ.>", "_INBOX.>", "x.>"]),
        "{info}"
    );
    // Only the account's own connection, not B's.
    assert_eq!(conns, 1);
    if let Some(reference) = runs.get(1) {
        assert_eq!(&runs[0], reference);
    }
}

/// `latency { sampling: 100%, subject }` on a service export: every answered request
/// through an import yields nats-server's `service_latency` metric on that subject in the
/// exporting account.
#[tokio::test]
async fn service_latency_is_reported_on_the_export_subject() {
    let conf = r#"
accounts {
  A: {
    users: [{user: a, password: a}]
    exports: [ {service: "svc.>", latency: {sampling: "100%", subject: "lat.svc"}} ]
  }
  B: {
    users: [{user: b, password: b}]
    imports: [ {service: {account: A, subject: "svc.echo"}, to: "echo", share: true} ]
  }
}
"#;
    for bin in binaries() {
        let p = start(&bin, conf, false);
        let a = connect(p.port, "a").await;
        let b = connect(p.port, "b").await;
        responder(&a).await;
        let mut metrics = synced(&a, "lat.svc").await;
        assert_eq!(ask(&b, "echo").await, "svc.echo:hi#0", "{}", bin.display());
        let m = tokio::time::timeout(Duration::from_secs(3), metrics.next())
            .await
            .unwrap_or_else(|_| panic!("{}: no latency metric", bin.display()))
            .expect("message");
        let v: serde_json::Value = serde_json::from_slice(&m.payload).expect("json");
        assert_eq!(v["type"], "io.nats.server.metric.v1.service_latency", "{v}");
        assert_eq!(v["status"], 200, "{v}");
        assert_eq!(v["requestor"]["acc"], "B", "{v}");
        assert_eq!(v["requestor"]["user"], "b", "{}: {v}", bin.display());
        // nats-server subtracts the responder's round trip and clamps at 0.
        assert!(v["service"].as_u64().is_some(), "{v}");
        assert!(
            v["total"].as_u64() >= v["service"].as_u64(),
            "total below service time: {v}"
        );
    }
}

/// The requester behind a leaf node: the leaf server binds to B on the hub, which
/// announces B's service imports to it, so a request made on the leaf crosses into A on
/// the hub and its reply comes back.
#[tokio::test]
async fn a_requester_behind_a_leaf_node_reaches_an_imported_service() {
    for leaf_bin in binaries() {
        let leaf_port = free_port();
        let hub_conf = format!(
            "server_name: hub\n{ACCOUNTS}\nleafnodes {{ listen: 127.0.0.1:{leaf_port} }}\n"
        );
        let hub = start(&PathBuf::from(NATRIX), &hub_conf, false);
        let a = connect(hub.port, "a").await;
        responder(&a).await;
        let leaf_conf = format!(
            "server_name: leaf\nleafnodes {{ remotes [ {{ url: \"nats-leaf://b:b@127.0.0.1:{leaf_port}\" }} ] }}\n"
        );
        let leaf = start(&leaf_bin, &leaf_conf, false);
        let requester = async_nats::connect(format!("nats://127.0.0.1:{}", leaf.port))
            .await
            .expect("connect");
        let mut answer = String::new();
        for _ in 0..50 {
            answer = ask(&requester, "echo").await;
            if answer == "svc.echo:hi#0" {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(answer, "svc.echo:hi#0", "leaf {}", leaf_bin.display());
    }
}
