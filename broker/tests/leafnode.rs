//! Leaf nodes on loopback, driven by real clients (async-nats): a natrix hub with a natrix
//! leaf, accounts bound by user/password and by credentials (user JWT + nkey), natrix and
//! the reference nats-server in each role, a hub restart, and bad input on the leaf port
//! (each probe's reply compared with nats-server's).

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::time::timeout;

use common::{NATRIX, Proc, Raw, free_port, http_get, reference_binary, start, write_creds};

const WAIT: Duration = Duration::from_secs(5);

fn natrix() -> &'static Path {
    Path::new(NATRIX)
}

fn leafz(p: &Proc) -> serde_json::Value {
    http_get(p.http_port.expect("monitoring port"), "/leafz?subs=1").json()
}

/// Waits until `p` has `n` leaf connections.
fn wait_leafs(p: &Proc, n: u64, within: Duration) {
    let deadline = Instant::now() + within;
    loop {
        let v = leafz(p);
        if v["leafnodes"].as_u64() == Some(n) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "leafnodes never reached {n}: {v}\n{}",
            p.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Waits until the other side's interest in `subject` (any queue group) is, or is no
/// longer, known to `p`.
fn wait_interest(p: &Proc, subject: &str, present: bool) {
    let deadline = Instant::now() + WAIT;
    loop {
        let v = leafz(p);
        let found = v["leafs"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|l| {
                l["subscriptions_list"]
                    .as_array()
                    .cloned()
                    .unwrap_or_default()
            })
            .filter_map(|s| s.as_str().map(str::to_owned))
            .any(|s| s == subject || s.starts_with(&format!("{subject} ")));
        if found == present {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "interest in {subject} never became {present}: {v}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn hub_conf(name: &str, leaf_port: u16, extra: &str) -> String {
    format!("server_name: {name}\n{extra}\nleafnodes {{\n  listen: 127.0.0.1:{leaf_port}\n}}\n")
}

fn hub_conf_auth(name: &str, leaf_port: u16, extra: &str, auth: &str) -> String {
    format!(
        "server_name: {name}\n{extra}\nleafnodes {{\n  listen: 127.0.0.1:{leaf_port}\n  authorization {{ {auth} }}\n}}\n"
    )
}

fn leaf_conf(name: &str, remote: &str, extra: &str) -> String {
    format!("server_name: {name}\n{extra}\nleafnodes {{\n  remotes [ {{ {remote} }} ]\n}}\n")
}

async fn connect(p: &Proc) -> async_nats::Client {
    async_nats::connect(format!("127.0.0.1:{}", p.port))
        .await
        .expect("client connects")
}

async fn connect_user(p: &Proc, user: &str, pass: &str) -> async_nats::Client {
    async_nats::ConnectOptions::with_user_and_password(user.into(), pass.into())
        .connect(format!("127.0.0.1:{}", p.port))
        .await
        .expect("client connects")
}

/// Collects payloads until `n` arrived, or nothing came for `quiet`.
async fn drain(sub: &mut async_nats::Subscriber, n: usize, quiet: Duration) -> Vec<String> {
    let mut got = Vec::new();
    while got.len() < n {
        match timeout(quiet, sub.next()).await {
            Ok(Some(m)) => got.push(String::from_utf8_lossy(&m.payload).into_owned()),
            _ => break,
        }
    }
    // Anything beyond `n` that is still in flight.
    while let Ok(Some(m)) = timeout(Duration::from_millis(150), sub.next()).await {
        got.push(String::from_utf8_lossy(&m.payload).into_owned());
    }
    got
}

/// The same checks for every hub/leaf pair: messages both ways (with headers), queue
/// groups exactly once with local preference, request/reply both ways, interest
/// withdrawn on unsubscribe.
async fn exchange(hub: &Proc, leaf: &Proc) {
    let h = connect(hub).await;
    let l = connect(leaf).await;

    // Hub subscriber, leaf publisher.
    let mut hs = h.subscribe("h.foo").await.unwrap();
    h.flush().await.unwrap();
    wait_interest(leaf, "h.foo", true);
    l.publish("h.foo", "from leaf".into()).await.unwrap();
    l.flush().await.unwrap();
    let m = timeout(WAIT, hs.next())
        .await
        .expect("hub gets it")
        .unwrap();
    assert_eq!(&m.payload[..], b"from leaf");

    // Leaf subscriber, hub publisher, with headers.
    let mut ls = l.subscribe("l.bar").await.unwrap();
    l.flush().await.unwrap();
    wait_interest(hub, "l.bar", true);
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-Test", "yes");
    h.publish_with_headers("l.bar", headers, "from hub".into())
        .await
        .unwrap();
    h.flush().await.unwrap();
    let m = timeout(WAIT, ls.next())
        .await
        .expect("leaf gets it")
        .unwrap();
    assert_eq!(&m.payload[..], b"from hub");
    assert_eq!(
        m.headers
            .as_ref()
            .and_then(|h| h.get("X-Test"))
            .map(|v| v.as_str()),
        Some("yes")
    );

    // Queue group with a member on each side: each side's publishes stay local.
    let mut hq = h.queue_subscribe("work", "grp".into()).await.unwrap();
    let mut lq = l.queue_subscribe("work", "grp".into()).await.unwrap();
    h.flush().await.unwrap();
    l.flush().await.unwrap();
    wait_interest(hub, "work", true);
    wait_interest(leaf, "work", true);
    for _ in 0..50 {
        h.publish("work", "h".into()).await.unwrap();
        l.publish("work", "l".into()).await.unwrap();
    }
    h.flush().await.unwrap();
    l.flush().await.unwrap();
    let at_hub = drain(&mut hq, 50, Duration::from_secs(2)).await;
    let at_leaf = drain(&mut lq, 50, Duration::from_secs(2)).await;
    assert_eq!(at_hub.len() + at_leaf.len(), 100, "exactly once");
    assert!(at_hub.iter().all(|p| p == "h"), "hub member: {at_hub:?}");
    assert!(at_leaf.iter().all(|p| p == "l"), "leaf member: {at_leaf:?}");
    // Without a hub member, the hub's publishes cross to the leaf member.
    hq.unsubscribe().await.unwrap();
    h.flush().await.unwrap();
    tokio::time::sleep(Duration::from_millis(100)).await;
    for _ in 0..20 {
        h.publish("work", "h2".into()).await.unwrap();
    }
    h.flush().await.unwrap();
    let crossed = drain(&mut lq, 20, Duration::from_secs(2)).await;
    assert_eq!(
        crossed.len(),
        20,
        "fallback to the leaf member: {crossed:?}"
    );

    // Request/reply both ways.
    let mut svc = l.subscribe("svc.leaf").await.unwrap();
    let lc = l.clone();
    let responder = tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            if let Some(reply) = m.reply {
                let _ = lc.publish(reply, "leaf answers".into()).await;
                let _ = lc.flush().await;
            }
        }
    });
    let mut svc2 = h.subscribe("svc.hub").await.unwrap();
    let hc = h.clone();
    let responder2 = tokio::spawn(async move {
        while let Some(m) = svc2.next().await {
            if let Some(reply) = m.reply {
                let _ = hc.publish(reply, "hub answers".into()).await;
                let _ = hc.flush().await;
            }
        }
    });
    l.flush().await.unwrap();
    h.flush().await.unwrap();
    wait_interest(hub, "svc.leaf", true);
    wait_interest(leaf, "svc.hub", true);
    let r = timeout(WAIT, h.request("svc.leaf", "q".into()))
        .await
        .expect("request in time")
        .expect("reply from the leaf");
    assert_eq!(&r.payload[..], b"leaf answers");
    let r = timeout(WAIT, l.request("svc.hub", "q".into()))
        .await
        .expect("request in time")
        .expect("reply from the hub");
    assert_eq!(&r.payload[..], b"hub answers");
    responder.abort();
    responder2.abort();
    // A queue-group service behind the leaf (`LMSG subject + reply group size`), with
    // headers on the request.
    let mut qsvc = l.queue_subscribe("svc.q", "workers".into()).await.unwrap();
    let lc = l.clone();
    let qresponder = tokio::spawn(async move {
        while let Some(m) = qsvc.next().await {
            let tagged = m
                .headers
                .as_ref()
                .and_then(|h| h.get("X-Req"))
                .map(|v| v.as_str().to_owned())
                .unwrap_or_default();
            if let Some(reply) = m.reply {
                let _ = lc.publish(reply, tagged.into()).await;
                let _ = lc.flush().await;
            }
        }
    });
    l.flush().await.unwrap();
    wait_interest(hub, "svc.q", true);
    let mut req_headers = async_nats::HeaderMap::new();
    req_headers.insert("X-Req", "tagged");
    let r = timeout(
        WAIT,
        h.request_with_headers("svc.q", req_headers, "q".into()),
    )
    .await
    .expect("request in time")
    .expect("reply from the queue service");
    assert_eq!(&r.payload[..], b"tagged");
    qresponder.abort();

    // Unsubscribing withdraws the interest.
    let gone = l.subscribe("gone").await.unwrap();
    l.flush().await.unwrap();
    wait_interest(hub, "gone", true);
    drop(gone);
    l.flush().await.unwrap();
    wait_interest(hub, "gone", false);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natrix_hub_natrix_leaf() {
    let lp = free_port();
    let hub = start(natrix(), &hub_conf("hub", lp, ""), true);
    let leaf = start(
        natrix(),
        &leaf_conf("leaf", &format!("url: \"nats-leaf://127.0.0.1:{lp}\""), ""),
        true,
    );
    wait_leafs(&hub, 1, WAIT);
    wait_leafs(&leaf, 1, WAIT);
    let v = leafz(&hub);
    assert_eq!(v["leafs"][0]["is_spoke"], false, "{v}");
    assert_eq!(v["leafs"][0]["name"], "leaf", "{v}");
    assert_eq!(v["leafs"][0]["compression"], "off", "{v}");
    assert_eq!(leafz(&leaf)["leafs"][0]["is_spoke"], true);
    let varz = http_get(hub.http_port.expect("http"), "/varz").json();
    assert_eq!(varz["leafnodes"], 1, "{varz}");
    assert_eq!(varz["leaf"]["port"], lp, "{varz}");
    exchange(&hub, &leaf).await;
    let v = leafz(&hub);
    assert!(
        v["leafs"][0]["in_msgs"].as_u64().unwrap_or(0) > 0,
        "counters move: {v}"
    );
    // The first PING goes out a second after the handshake; its PONG gives the RTT.
    let deadline = Instant::now() + WAIT;
    while leafz(&hub)["leafs"][0]["rtt"]
        .as_str()
        .is_none_or(str::is_empty)
    {
        assert!(Instant::now() < deadline, "no rtt: {}", leafz(&hub));
        std::thread::sleep(Duration::from_millis(100));
    }

    // The hub goes away and comes back on the same leaf port: the leaf reconnects.
    drop(hub);
    wait_leafs(&leaf, 0, WAIT);
    let hub = start(natrix(), &hub_conf("hub", lp, ""), true);
    wait_leafs(&hub, 1, Duration::from_secs(10));
    wait_leafs(&leaf, 1, WAIT);
    let h = connect(&hub).await;
    let l = connect(&leaf).await;
    let mut s = l.subscribe("after.restart").await.unwrap();
    l.flush().await.unwrap();
    wait_interest(&hub, "after.restart", true);
    h.publish("after.restart", "back".into()).await.unwrap();
    h.flush().await.unwrap();
    let m = timeout(WAIT, s.next())
        .await
        .expect("after restart")
        .unwrap();
    assert_eq!(&m.payload[..], b"back");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natrix_leaf_nats_server_hub() {
    let Some(reference) = reference_binary() else {
        return;
    };
    let lp = free_port();
    let hub = start(&reference, &hub_conf("nhub", lp, ""), true);
    let leaf = start(
        natrix(),
        &leaf_conf("leaf", &format!("url: \"nats-leaf://127.0.0.1:{lp}\""), ""),
        true,
    );
    wait_leafs(&hub, 1, WAIT);
    wait_leafs(&leaf, 1, WAIT);
    exchange(&hub, &leaf).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nats_server_leaf_natrix_hub() {
    let Some(reference) = reference_binary() else {
        return;
    };
    let lp = free_port();
    let hub = start(natrix(), &hub_conf("hub", lp, ""), true);
    let leaf = start(
        &reference,
        &leaf_conf("nleaf", &format!("url: \"nats-leaf://127.0.0.1:{lp}\""), ""),
        true,
    );
    wait_leafs(&hub, 1, WAIT);
    wait_leafs(&leaf, 1, WAIT);
    let v = leafz(&leaf);
    assert_eq!(
        v["leafs"][0]["compression"], "off",
        "no S2 with natrix: {v}"
    );
    exchange(&hub, &leaf).await;
}

/// Messages from a leaf bound to account A stay in A: a subscriber in B on the hub sees
/// nothing, one in A gets them, and A's interest reaches the leaf.
async fn stays_in_account(hub: &Proc, leaf: &Proc) {
    stays_in_account_as(hub, leaf, None).await;
}

/// [`stays_in_account`], with the leaf's clients logging in as `leaf_user` (for a remote
/// bound to a local account other than `$G`).
async fn stays_in_account_as(hub: &Proc, leaf: &Proc, leaf_user: Option<(&str, &str)>) {
    let a = connect_user(hub, "a", "a").await;
    let b = connect_user(hub, "b", "b").await;
    let l = match leaf_user {
        Some((u, p)) => connect_user(leaf, u, p).await,
        None => connect(leaf).await,
    };
    let mut sa = a.subscribe("acct.x").await.unwrap();
    let mut sb = b.subscribe("acct.x").await.unwrap();
    a.flush().await.unwrap();
    b.flush().await.unwrap();
    wait_interest(leaf, "acct.x", true);
    l.publish("acct.x", "to A".into()).await.unwrap();
    l.flush().await.unwrap();
    let m = timeout(WAIT, sa.next()).await.expect("A gets it").unwrap();
    assert_eq!(&m.payload[..], b"to A");
    assert!(
        timeout(Duration::from_millis(500), sb.next())
            .await
            .is_err(),
        "B must not see A's messages"
    );
    // And back: A's publish reaches the leaf, B's does not.
    let mut sl = l.subscribe("acct.y").await.unwrap();
    l.flush().await.unwrap();
    wait_interest(hub, "acct.y", true);
    b.publish("acct.y", "from B".into()).await.unwrap();
    a.publish("acct.y", "from A".into()).await.unwrap();
    a.flush().await.unwrap();
    b.flush().await.unwrap();
    let got = drain(&mut sl, 1, Duration::from_secs(2)).await;
    assert_eq!(got, vec!["from A".to_owned()]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaf_bound_to_account() {
    let lp = free_port();
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("leaf.creds");
    let user_key = write_creds(&creds);
    let accounts = format!(
        "accounts {{\n  A {{ users [ {{user: a, password: a}}, {{user: leafa, password: pa}}, {{nkey: {user_key}}} ] }}\n  B {{ users [ {{user: b, password: b}} ] }}\n}}\n"
    );
    let hub = start(natrix(), &hub_conf("hub", lp, &accounts), true);

    // Credentials: user JWT plus the nonce signed with its seed; the JWT's subject is an
    // nkey user of A.
    let leaf = start(
        natrix(),
        &leaf_conf(
            "leafc",
            &format!(
                "url: \"nats-leaf://127.0.0.1:{lp}\", credentials: \"{}\"",
                creds.display()
            ),
            "",
        ),
        true,
    );
    wait_leafs(&hub, 1, WAIT);
    assert_eq!(leafz(&hub)["leafs"][0]["account"], "A");
    let acc = http_get(hub.http_port.expect("http"), "/accountz?acc=A").json();
    assert_eq!(acc["account_detail"]["leafnode_connections"], 1, "{acc}");
    stays_in_account(&hub, &leaf).await;
    drop(leaf);
    wait_leafs(&hub, 0, WAIT);

    // User and password from the URL.
    let leaf = start(
        natrix(),
        &leaf_conf(
            "leafu",
            &format!("url: \"nats-leaf://leafa:pa@127.0.0.1:{lp}\""),
            "",
        ),
        true,
    );
    wait_leafs(&hub, 1, WAIT);
    assert_eq!(leafz(&hub)["leafs"][0]["account"], "A");
    stays_in_account(&hub, &leaf).await;
    drop(leaf);
    wait_leafs(&hub, 0, WAIT);

    // nats-server as the leaf, with the same credentials file.
    if let Some(reference) = reference_binary() {
        let leaf = start(
            &reference,
            &leaf_conf(
                "nleafc",
                &format!(
                    "url: \"nats-leaf://127.0.0.1:{lp}\", credentials: \"{}\"",
                    creds.display()
                ),
                "",
            ),
            true,
        );
        wait_leafs(&hub, 1, WAIT);
        assert_eq!(leafz(&hub)["leafs"][0]["account"], "A");
        stays_in_account(&hub, &leaf).await;
    }
}

/// `leafnodes { authorization { users [...] } }` binds each leaf user to its account, on a
/// natrix and on a nats-server hub; the spokes (natrix and nats-server) bind their side to
/// a local account `LA` (not `$G`).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaf_users_bound_to_accounts() {
    let accounts = "accounts {\n  A { users [ {user: a, password: a} ] }\n  B { users [ {user: b, password: b} ] }\n}\n";
    let local = "accounts {\n  LA { users [ {user: la, password: la} ] }\n}\n";
    let reference = reference_binary();
    let mut bins: Vec<&Path> = vec![natrix()];
    bins.extend(reference.as_deref());
    for hub_bin in &bins {
        let lp = free_port();
        let hub = start(
            hub_bin,
            &hub_conf_auth(
                "hub",
                lp,
                accounts,
                "users [ {user: leafu, password: leafp, account: A} ]",
            ),
            true,
        );
        for leaf_bin in &bins {
            if *hub_bin != natrix() && *leaf_bin != natrix() {
                continue;
            }
            let leaf = start(
                leaf_bin,
                &leaf_conf(
                    "leaf",
                    &format!("url: \"nats-leaf://leafu:leafp@127.0.0.1:{lp}\", account: LA"),
                    local,
                ),
                true,
            );
            wait_leafs(&hub, 1, WAIT);
            wait_leafs(&leaf, 1, WAIT);
            assert_eq!(leafz(&hub)["leafs"][0]["account"], "A");
            assert_eq!(leafz(&leaf)["leafs"][0]["account"], "LA");
            stays_in_account_as(&hub, &leaf, Some(("la", "la"))).await;
            drop(leaf);
            wait_leafs(&hub, 0, WAIT);
        }
    }
}

/// What a raw connection to the leaf port gets back for `input` (after the INFO), and
/// whether the server then closed it.
fn probe(port: u16, input: &str) -> (String, bool) {
    let mut c = Raw::connect(port);
    c.send(input);
    let reply = c.read_for(Duration::from_millis(500));
    let closed = c.is_closed(Duration::from_millis(500));
    (reply, closed)
}

const GOOD_CONNECT: &str = "CONNECT {\"user\":\"leafu\",\"pass\":\"leafp\",\"name\":\"raw\",\"server_id\":\"NRAW\",\"headers\":true,\"version\":\"2.15.2\"}\r\n";

fn bad_input_checks(name: &str, p: &Proc, lp: u16) {
    let cases: [(&str, &str, Option<&str>); 12] = [
        (
            "client CONNECT",
            "CONNECT {\"lang\":\"go\",\"version\":\"1.0\",\"verbose\":false}\r\n",
            Some("-ERR 'Authorization Violation'\r\n"),
        ),
        (
            "client CONNECT with leaf credentials",
            "CONNECT {\"lang\":\"go\",\"user\":\"leafu\",\"pass\":\"leafp\"}\r\n",
            Some("-ERR 'attempted to connect to leaf node port'\r\n"),
        ),
        (
            "gateway CONNECT with leaf credentials",
            "CONNECT {\"gateway\":\"G\",\"name\":\"gw\",\"user\":\"leafu\",\"pass\":\"leafp\"}\r\n",
            Some("-ERR 'Rejecting connection from gateway \"G\" on the leafnode port'\r\n"),
        ),
        (
            "cluster name with a space",
            "CONNECT {\"user\":\"leafu\",\"pass\":\"leafp\",\"cluster\":\"a b\"}\r\n",
            Some("-ERR 'cluster name cannot contain spaces'\r\n"),
        ),
        (
            "LS+ before CONNECT",
            "LS+ foo\r\n",
            Some("-ERR 'Authorization Violation'\r\n"),
        ),
        (
            "wrong password",
            "CONNECT {\"user\":\"leafu\",\"pass\":\"nope\",\"name\":\"raw\"}\r\n",
            Some("-ERR 'Authorization Violation'\r\n"),
        ),
        (
            "gateway CONNECT",
            "CONNECT {\"gateway\":\"G\",\"name\":\"gw\"}\r\n",
            Some("-ERR 'Authorization Violation'\r\n"),
        ),
        (
            "garbage",
            "\x01\x02garbage here\r\n",
            Some("-ERR 'Authorization Violation'\r\n"),
        ),
        ("malformed LMSG", "LMSG foo bad reply 2\r\nhi\r\n", None),
        (
            "bare LMSG",
            "LMSG\r\n",
            Some("-ERR 'Unknown Protocol Operation'\r\n"),
        ),
        (
            "LMSG over max_payload",
            "LMSG foo 2000000\r\n",
            Some("-ERR 'Maximum Payload Violation'\r\n"),
        ),
        (
            "HMSG with headers longer than the message",
            "HMSG foo 2 1\r\n",
            None,
        ),
    ];
    for (what, input, expect) in cases {
        let input = if what.contains("LMSG") || what.contains("HMSG") {
            format!("{GOOD_CONNECT}{input}")
        } else {
            input.to_owned()
        };
        let (reply, closed) = probe(lp, &input);
        assert!(closed, "{name}: {what}: connection stays open ({reply:?})");
        match expect {
            Some(e) => assert!(reply.contains(e), "{name}: {what}: got {reply:?}"),
            None => assert!(!reply.contains("-ERR"), "{name}: {what}: got {reply:?}"),
        }
    }
    // An invalid subject in LS+ is refused, the connection stays.
    let mut c = Raw::connect(lp);
    c.send(GOOD_CONNECT);
    c.send("LS+ a..b\r\n");
    let reply = c.sync();
    assert!(
        reply.contains("-ERR 'Invalid Subscription'\r\n"),
        "{name}: invalid LS+: {reply:?}"
    );
    // A spoke that hands the hub its own loop detection subject back.
    let mut c = Raw::connect(lp);
    c.send(GOOD_CONNECT);
    let batch = c.read_for(Duration::from_millis(500));
    let lds = batch
        .lines()
        .find_map(|l| l.strip_prefix("LS+ $LDS."))
        .map(|s| format!("$LDS.{}", s.trim()))
        .unwrap_or_else(|| panic!("{name}: no $LDS subject in {batch:?}"));
    c.send(&format!("LS+ {lds}\r\n"));
    let reply = c.read_for(Duration::from_millis(500));
    assert!(
        reply.contains(
            "-ERR 'Loop detected for leafnode account=\"$G\". Delaying attempt to reconnect for 30s'\r\n"
        ),
        "{name}: loop: {reply:?}"
    );
    assert!(
        c.is_closed(Duration::from_millis(500)),
        "{name}: loop closes"
    );
    // A flood of interest: every LS+ is taken, the connection and the server stay up.
    let mut c = Raw::connect(lp);
    c.send(GOOD_CONNECT);
    let flood: String = (0..20_000).map(|i| format!("LS+ flood.{i}\r\n")).collect();
    c.send(&flood);
    assert!(c.sync().contains("PONG"), "{name}: flood answered");
    drop(c);
    // The server still serves clients.
    let mut client = Raw::connect(p.port);
    client.send("CONNECT {\"verbose\":false}\r\n");
    assert!(client.sync().contains("PONG"), "{name}: still serving");
}

#[test]
fn bad_input_on_leaf_port() {
    let lp = free_port();
    let conf = hub_conf_auth("hub", lp, "", "user: leafu, password: leafp");
    let hub = start(natrix(), &conf, true);
    wait_leafs(&hub, 0, WAIT);
    bad_input_checks("natrix", &hub, lp);
    // The same probes against nats-server give the same replies.
    if let Some(reference) = reference_binary() {
        let lp = free_port();
        let conf = hub_conf_auth("nhub", lp, "", "user: leafu, password: leafp");
        let nhub = start(&reference, &conf, true);
        bad_input_checks("nats-server", &nhub, lp);
    }
}

/// Two servers that are each other's leaf: the loop is detected and reported with
/// nats-server's words.
#[test]
fn leaf_cycle_is_a_loop() {
    let (pa, pb) = (free_port(), free_port());
    let a = start(
        natrix(),
        &format!(
            "server_name: a\nleafnodes {{\n  listen: 127.0.0.1:{pa}\n  remotes [ {{ url: \"nats-leaf://127.0.0.1:{pb}\" }} ]\n}}\n"
        ),
        true,
    );
    let b = start(
        natrix(),
        &format!(
            "server_name: b\nleafnodes {{\n  listen: 127.0.0.1:{pb}\n  remotes [ {{ url: \"nats-leaf://127.0.0.1:{pa}\" }} ]\n}}\n"
        ),
        true,
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    let needle = "Loop detected for leafnode account=\"$G\"";
    while !(a.log_text().contains(needle) || b.log_text().contains(needle)) {
        assert!(
            Instant::now() < deadline,
            "no loop detected:\n{}\n{}",
            a.log_text(),
            b.log_text()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// A leaf attached to one server of a two-node natrix cluster reaches clients on the
/// other: its interest travels on as `RS+`, routed messages come back to it, and a queue
/// member behind the leaf serves the whole cluster when no other member exists.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaf_behind_a_cluster() {
    let (c1, c2, lp) = (free_port(), free_port(), free_port());
    let cluster = |name: &str, port: u16| {
        format!(
            "server_name: {name}\ncluster {{\n  name: C\n  listen: 127.0.0.1:{port}\n  routes: [nats://127.0.0.1:{c1}, nats://127.0.0.1:{c2}]\n}}\n"
        )
    };
    let hub1 = start(natrix(), &hub_conf("hub1", lp, &cluster("hub1", c1)), true);
    let hub2 = start(natrix(), &cluster("hub2", c2), true);
    let leaf = start(
        natrix(),
        &leaf_conf("leaf", &format!("url: \"nats-leaf://127.0.0.1:{lp}\""), ""),
        true,
    );
    wait_leafs(&hub1, 1, WAIT);
    let deadline = Instant::now() + Duration::from_secs(10);
    while http_get(hub2.http_port.expect("http"), "/routez").json()["num_routes"] != 1 {
        assert!(Instant::now() < deadline, "no route");
        std::thread::sleep(Duration::from_millis(100));
    }
    let c = connect(&hub2).await;
    let l = connect(&leaf).await;
    // hub2's interest reaches the leaf through hub1.
    let mut s = c.subscribe("far.x").await.unwrap();
    c.flush().await.unwrap();
    wait_interest(&leaf, "far.x", true);
    l.publish("far.x", "over two hops".into()).await.unwrap();
    l.flush().await.unwrap();
    let m = timeout(WAIT, s.next()).await.expect("routed on").unwrap();
    assert_eq!(&m.payload[..], b"over two hops");
    // The leaf's interest reaches hub2.
    let mut ls = l.subscribe("near.y").await.unwrap();
    let mut lq = l.queue_subscribe("jobs", "w".into()).await.unwrap();
    l.flush().await.unwrap();
    wait_interest(&hub1, "near.y", true);
    wait_interest(&hub1, "jobs", true);
    tokio::time::sleep(Duration::from_millis(300)).await;
    c.publish("near.y", "from hub2".into()).await.unwrap();
    for _ in 0..10 {
        c.publish("jobs", "job".into()).await.unwrap();
    }
    c.flush().await.unwrap();
    let m = timeout(WAIT, ls.next())
        .await
        .expect("leaf gets it")
        .unwrap();
    assert_eq!(&m.payload[..], b"from hub2");
    let jobs = drain(&mut lq, 10, Duration::from_secs(2)).await;
    assert_eq!(jobs.len(), 10, "queue member behind the leaf: {jobs:?}");
}

/// The bound user's permissions hold on the leaf connection, seen from the spoke: it may
/// send (`LMSG`) what the user may publish, receive (`LS+`) what the user may subscribe
/// to, and only hears about interest it may publish to. Same replies as nats-server.
#[test]
fn leaf_user_permissions() {
    let conf = |lp: u16| {
        format!(
            "server_name: hub\nauthorization {{ users [ {{user: c, password: c}}, {{user: leafu, password: leafp, permissions: {{ publish: \"pub.>\", subscribe: {{ allow: \"sub.>\", deny: \"sub.secret\" }} }} }} ] }}\nleafnodes {{ listen: 127.0.0.1:{lp} }}\n"
        )
    };
    let mut bins: Vec<std::path::PathBuf> = vec![natrix().to_path_buf()];
    bins.extend(reference_binary());
    for bin in bins {
        let name = bin.display().to_string();
        let lp = free_port();
        let hub = start(&bin, &conf(lp), true);
        let mut client = Raw::connect(hub.port);
        client.send("CONNECT {\"user\":\"c\",\"pass\":\"c\",\"verbose\":false}\r\nSUB pub.x 1\r\nSUB other.y 2\r\n");
        assert!(client.sync().contains("PONG"));
        // Announcements: only what the spoke may publish.
        let mut c = Raw::connect(lp);
        c.send(GOOD_CONNECT);
        let batch = c.read_for(Duration::from_millis(500));
        assert!(batch.contains("LS+ pub.x\r\n"), "{name}: {batch:?}");
        assert!(!batch.contains("other.y"), "{name}: {batch:?}");
        // A wildcard within `subscribe` is taken; what `subscribe` denies is not delivered.
        c.send("LS+ sub.>\r\n");
        c.sync();
        client.send("PUB sub.secret 1\r\nx\r\nPUB sub.ok 1\r\ny\r\n");
        client.sync();
        let got = c.read_for(Duration::from_millis(300));
        assert!(got.contains("LMSG sub.ok 1\r\ny\r\n"), "{name}: {got:?}");
        assert!(!got.contains("sub.secret"), "{name}: {got:?}");
        // Receiving outside `subscribe` closes.
        c.send("LS+ sub.a\r\nLS+ pub.a\r\n");
        let reply = c.read_for(Duration::from_millis(500));
        assert!(
            reply.contains("-ERR 'Permissions Violation for Subscription to \"pub.a\"'\r\n"),
            "{name}: {reply:?}"
        );
        assert!(
            c.is_closed(Duration::from_millis(500)),
            "{name}: LS+ closes"
        );
        // Sending within `publish` is fine, outside it closes.
        let mut c = Raw::connect(lp);
        c.send(GOOD_CONNECT);
        c.send("LMSG pub.x 2\r\nhi\r\nLMSG sub.a 2\r\nhi\r\n");
        let reply = c.read_for(Duration::from_millis(500));
        assert!(
            reply.contains("-ERR 'Permissions Violation for Publish to \"sub.a\"'\r\n"),
            "{name}: {reply:?}"
        );
        assert!(
            c.is_closed(Duration::from_millis(500)),
            "{name}: LMSG closes"
        );
        let got = client.read_for(Duration::from_millis(300));
        assert!(got.contains("MSG pub.x 1 2\r\nhi\r\n"), "{name}: {got:?}");
    }
}

/// `leafnodes { min_version }` refuses older (or unnamed) spoke versions, as nats-server.
#[test]
fn leaf_min_version() {
    let mut bins: Vec<std::path::PathBuf> = vec![natrix().to_path_buf()];
    bins.extend(reference_binary());
    for bin in bins {
        let name = bin.display().to_string();
        let lp = free_port();
        let _hub = start(
            &bin,
            &format!("leafnodes {{ listen: 127.0.0.1:{lp}, min_version: 2.10.0 }}\n"),
            false,
        );
        let refused = "-ERR 'connection rejected since minimum version required is \"2.10.0\"'\r\n";
        for old in [
            "CONNECT {\"name\":\"raw\",\"version\":\"2.9.0\"}\r\n",
            "CONNECT {\"name\":\"raw\"}\r\n",
        ] {
            let (reply, closed) = probe(lp, old);
            assert!(
                reply.contains(refused) && closed,
                "{name}: {old}: {reply:?}"
            );
        }
        let mut c = Raw::connect(lp);
        c.send("CONNECT {\"name\":\"raw\",\"version\":\"2.11.0\"}\r\n");
        assert!(c.sync().contains("LS+ $LDS."), "{name}: accepted");
    }
}

/// A hub whose leaf listener has `tls {}`: INFO says `tls_required`, the spoke upgrades
/// (verifying the hub against its CA), and messages flow as over plain TCP. natrix and
/// nats-server in each role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaf_over_tls() {
    let pki_dir = tempfile::tempdir().expect("tempdir");
    let pki = common::TestPki::new(pki_dir.path());
    pki.server_cert("hub");
    let d = pki_dir.path().display().to_string();
    let reference = reference_binary();
    let mut pairs: Vec<(&Path, &Path)> = vec![(natrix(), natrix())];
    if let Some(r) = reference.as_deref() {
        pairs.push((natrix(), r));
        pairs.push((r, natrix()));
    }
    for (hub_bin, leaf_bin) in pairs {
        let lp = free_port();
        let hub = start(
            hub_bin,
            &format!(
                "server_name: hub\nleafnodes {{\n  listen: 127.0.0.1:{lp}\n  tls {{ cert_file: \"{d}/hub.pem\", key_file: \"{d}/hub-key.pem\" }}\n}}\n"
            ),
            true,
        );
        // A plain connection sees tls_required in the INFO.
        let mut raw = std::net::TcpStream::connect(("127.0.0.1", lp)).expect("connect");
        raw.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut first = [0u8; 4096];
        let n = std::io::Read::read(&mut raw, &mut first).expect("INFO");
        let info = String::from_utf8_lossy(&first[..n]).into_owned();
        assert!(info.contains("\"tls_required\":true"), "{info}");
        drop(raw);
        let leaf = start(
            leaf_bin,
            &leaf_conf(
                "leaf",
                &format!("url: \"tls://127.0.0.1:{lp}\", tls: {{ ca_file: \"{d}/ca.pem\" }}"),
                "",
            ),
            true,
        );
        wait_leafs(&hub, 1, WAIT);
        wait_leafs(&leaf, 1, WAIT);
        exchange(&hub, &leaf).await;
    }
}

/// A remote's `deny_imports` and `deny_exports` keep those subjects on their side, also
/// under wildcard interest; natrix and nats-server in each role.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remote_deny_lists() {
    let reference = reference_binary();
    let mut pairs: Vec<(&Path, &Path)> = vec![(natrix(), natrix())];
    if let Some(r) = reference.as_deref() {
        pairs.push((natrix(), r));
        pairs.push((r, natrix()));
    }
    for (hub_bin, leaf_bin) in pairs {
        let name = format!("{} <- {}", hub_bin.display(), leaf_bin.display());
        let lp = free_port();
        let hub = start(hub_bin, &hub_conf("hub", lp, ""), true);
        let leaf = start(
            leaf_bin,
            &leaf_conf(
                "leaf",
                &format!(
                    "url: \"nats-leaf://127.0.0.1:{lp}\", deny_imports: [\"imp.deny\"], deny_exports: [\"exp.deny\"]"
                ),
                "",
            ),
            true,
        );
        wait_leafs(&hub, 1, WAIT);
        wait_leafs(&leaf, 1, WAIT);
        let h = connect(&hub).await;
        let l = connect(&leaf).await;
        let mut at_hub = h.subscribe("exp.>").await.unwrap();
        let mut at_leaf = l.subscribe("imp.>").await.unwrap();
        h.flush().await.unwrap();
        l.flush().await.unwrap();
        wait_interest(&leaf, "exp.>", true);
        wait_interest(&hub, "imp.>", true);
        for s in ["exp.deny", "exp.ok"] {
            l.publish(s, s.into()).await.unwrap();
        }
        for s in ["imp.deny", "imp.ok"] {
            h.publish(s, s.into()).await.unwrap();
        }
        l.flush().await.unwrap();
        h.flush().await.unwrap();
        let got = drain(&mut at_hub, 1, Duration::from_secs(2)).await;
        assert_eq!(got, vec!["exp.ok".to_owned()], "{name}: exports");
        let got = drain(&mut at_leaf, 1, Duration::from_secs(2)).await;
        assert_eq!(got, vec!["imp.ok".to_owned()], "{name}: imports");
    }
}

/// Leaf connections over WebSocket: a spoke's `ws://` (and `wss://`) remote dials the
/// hub's `websocket {}` listener (path `/leafnode`), and the leaf protocol travels in
/// frames the spoke masks. natrix and nats-server in each role, with the same checks as
/// over TCP; one run offers compression and no masking, which both hubs agree to.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leaf_over_websocket() {
    let pki_dir = tempfile::tempdir().expect("tempdir");
    let pki = common::TestPki::new(pki_dir.path());
    pki.server_cert("hub");
    let d = pki_dir.path().display().to_string();
    let reference = reference_binary();
    let mut pairs: Vec<(&Path, &Path)> = vec![(natrix(), natrix())];
    if let Some(r) = reference.as_deref() {
        pairs.push((natrix(), r));
        pairs.push((r, natrix()));
    }
    for (hub_bin, leaf_bin) in pairs {
        for (scheme, extra) in [
            ("ws", ""),
            ("ws", ", ws_compression: true, ws_no_masking: true"),
            ("wss", ""),
        ] {
            let name = format!(
                "{} <- {} over {scheme}{extra}",
                hub_bin.display(),
                leaf_bin.display()
            );
            let (lp, wp) = (free_port(), free_port());
            let ws_tls = if scheme == "wss" {
                format!("tls {{ cert_file: \"{d}/hub.pem\", key_file: \"{d}/hub-key.pem\" }}")
            } else {
                "no_tls: true".to_owned()
            };
            let hub = start(
                hub_bin,
                &hub_conf(
                    "hub",
                    lp,
                    &format!(
                        "websocket {{ listen: \"127.0.0.1:{wp}\", {ws_tls}, compression: true }}"
                    ),
                ),
                true,
            );
            let remote_tls = if scheme == "wss" {
                format!(", tls: {{ ca_file: \"{d}/ca.pem\" }}")
            } else {
                String::new()
            };
            let leaf = start(
                leaf_bin,
                &leaf_conf(
                    "leaf",
                    &format!("url: \"{scheme}://127.0.0.1:{wp}\"{remote_tls}{extra}"),
                    "",
                ),
                true,
            );
            eprintln!("{name}");
            wait_leafs(&hub, 1, WAIT);
            wait_leafs(&leaf, 1, WAIT);
            // The hub accepted it on the WebSocket port, not its leaf port: the spoke's
            // /leafz names the port it dialled.
            let v = leafz(&leaf);
            assert_eq!(v["leafs"][0]["port"], wp, "{name}: {v}");
            exchange(&hub, &leaf).await;
        }
    }
}

/// The WebSocket listener of a server without a leaf node port refuses leaf
/// connections (nats-server's "Not configured to accept leaf node connections"): the
/// spoke never registers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_leaf_needs_a_leafnode_port() {
    let reference = reference_binary();
    let mut hubs: Vec<&Path> = vec![natrix()];
    if let Some(r) = reference.as_deref() {
        hubs.push(r);
    }
    for hub_bin in hubs {
        let wp = free_port();
        let hub = start(
            hub_bin,
            &format!(
                "server_name: hub\nwebsocket {{ listen: \"127.0.0.1:{wp}\", no_tls: true }}\n"
            ),
            true,
        );
        let leaf = start(
            natrix(),
            &leaf_conf("leaf", &format!("url: \"ws://127.0.0.1:{wp}\""), ""),
            true,
        );
        tokio::time::sleep(Duration::from_millis(1500)).await;
        assert_eq!(leafz(&leaf)["leafnodes"], 0, "{}", leaf.log_text());
        assert!(
            hub.log_text()
                .contains("Not configured to accept leaf node connections"),
            "{}",
            hub.log_text()
        );
    }
}

/// A spoke that presents no credentials is the hub's `no_auth_user`, and over the
/// WebSocket listener the `websocket {}` block's `no_auth_user` when it has one, as
/// nats-server binds them: the spoke dialling the leaf port lands in account A, the one
/// dialling the WebSocket port in account B. Both servers as the hub.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leafs_without_credentials_are_the_no_auth_user() {
    let reference = reference_binary();
    let mut hubs: Vec<&Path> = vec![natrix()];
    if let Some(r) = reference.as_deref() {
        hubs.push(r);
    }
    let mut transcripts = Vec::new();
    for hub_bin in hubs {
        let (lp, wp) = (free_port(), free_port());
        let hub = start(
            hub_bin,
            &hub_conf(
                "hub",
                lp,
                &format!(
                    "accounts {{ A: {{ users: [ {{ user: a, password: x }} ] }}, B: {{ users: [ {{ user: bob, password: y }} ] }} }}\nno_auth_user: a\nwebsocket {{ listen: \"127.0.0.1:{wp}\", no_tls: true, no_auth_user: bob }}"
                ),
            ),
            true,
        );
        let _tcp_leaf = start(
            natrix(),
            &leaf_conf("leaf1", &format!("url: \"nats-leaf://127.0.0.1:{lp}\""), ""),
            false,
        );
        let _ws_leaf = start(
            natrix(),
            &leaf_conf("leaf2", &format!("url: \"ws://127.0.0.1:{wp}\""), ""),
            false,
        );
        wait_leafs(&hub, 2, WAIT);
        let v = leafz(&hub);
        let mut bound: Vec<String> = v["leafs"]
            .as_array()
            .into_iter()
            .flatten()
            .map(|l| {
                format!(
                    "{} in {}",
                    l["name"].as_str().unwrap_or_default(),
                    l["account"]
                )
            })
            .collect();
        bound.sort();
        eprintln!("{}: {bound:?}", hub_bin.display());
        transcripts.push(bound);
    }
    assert_eq!(transcripts[0], ["leaf1 in \"A\"", "leaf2 in \"B\""]);
    if let [mine, theirs] = &transcripts[..] {
        assert_eq!(mine, theirs, "natrix (left) and nats-server (right) differ");
    }
}
