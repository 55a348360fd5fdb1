//! Superclusters on loopback: clusters joined by gateways. Two natrix clusters (one of
//! two routed servers), a mixed pair of natrix and the reference nats-server, a fake
//! remote cluster that drives natrix's sender through optimistic and interest-only
//! modes, and bad input on the gateway port.

mod common;

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::Path;
use std::time::{Duration, Instant};

use common::{
    NATRIX, Proc, Raw, client, count_msgs, free_port, read_until, reference_binary, settle, start,
    wait_json,
};

/// A server of cluster `gw` with its gateway on `port`, remotes `(name, port)`, and
/// routes to `routes` when the cluster has several servers.
fn conf(name: &str, gw: &str, port: u16, remotes: &[(&str, u16)], routes: &[u16]) -> String {
    let gateways: Vec<String> = remotes
        .iter()
        .map(|(n, p)| format!("{{name: {n}, url: \"nats://127.0.0.1:{p}\"}}"))
        .collect();
    let mut c = format!(
        "server_name: {name}\ngateway {{\n  name: {gw}\n  listen: 127.0.0.1:{port}\n  gateways: [{}]\n}}\n",
        gateways.join(", ")
    );
    if let Some((own, all)) = routes.split_first() {
        let urls: Vec<String> = all
            .iter()
            .map(|p| format!("nats://127.0.0.1:{p}"))
            .collect();
        c.push_str(&format!(
            "cluster {{\n  name: {gw}\n  listen: 127.0.0.1:{own}\n  routes: [{}]\n}}\n",
            urls.join(", ")
        ));
    }
    c
}

/// Waits until `p` has an outbound gateway to each of `names`.
fn wait_outbound(p: &Proc, names: &[&str]) {
    wait_json(p, "/gatewayz", Duration::from_secs(15), |v| {
        names
            .iter()
            .all(|n| v["outbound_gateways"][*n]["connection"]["cid"].is_u64())
    });
}

/// Waits until `p`'s outbound gateway to `remote` lists `subject` for `$G`.
fn wait_remote_interest(p: &Proc, remote: &str, subject: &str) {
    let path = format!("/gatewayz?accs=1&subs=1&gw_name={remote}&acc_name=$G");
    wait_json(p, &path, Duration::from_secs(5), |v| {
        v["outbound_gateways"][remote]["accounts"][0]["subscriptions_list"]
            .as_array()
            .is_some_and(|l| l.iter().any(|s| s == subject))
    });
}

/// Request/reply, plain delivery and queue-group locality between cluster A (servers
/// `a`, `a2`) and cluster B (server `b`).
fn exercise(a: &Proc, a2: &Proc, b: &Proc, b_name: &str, a_name: &str) {
    // A service in B answers a requester in A with a fresh inbox.
    let mut svc = client(b);
    svc.send("SUB svc.echo 1\r\n");
    svc.sync();
    wait_remote_interest(a2, b_name, "svc.echo");
    let mut req = client(a2);
    req.send("SUB _INBOX.req1 7\r\nPUB svc.echo _INBOX.req1 4\r\nping\r\n");
    req.sync();
    let got = read_until(&mut svc, "\r\nping\r\n", Duration::from_secs(3));
    assert!(
        got.contains("MSG svc.echo 1 _INBOX.req1 4"),
        "the responder sees the requester's own reply subject: {got}"
    );
    svc.send("PUB _INBOX.req1 4\r\npong\r\n");
    svc.sync();
    let back = read_until(&mut req, "pong", Duration::from_secs(3));
    assert!(back.contains("MSG _INBOX.req1 7 4\r\npong"), "{back}");
    assert_eq!(count_msgs(&mut req, "_INBOX.req1", 0), 0, "answered once");
    // A requester that asked for no-responders notices gets the answer, not a 503: a
    // responder in another cluster is a responder.
    let mut nr = Raw::connect(a2.port);
    nr.send("CONNECT {\"verbose\":false,\"headers\":true,\"no_responders\":true}\r\nSUB _INBOX.nr 9\r\nPUB svc.echo _INBOX.nr 2\r\nhi\r\n");
    nr.sync();
    let got = read_until(&mut svc, "MSG svc.echo 1 _INBOX.nr", Duration::from_secs(3));
    assert!(got.contains("MSG svc.echo 1 _INBOX.nr 2"), "{got}");
    svc.send("PUB _INBOX.nr 2\r\nok\r\n");
    svc.sync();
    let back = read_until(&mut nr, "MSG _INBOX.nr", Duration::from_secs(3));
    assert!(back.contains("MSG _INBOX.nr 9 2"), "{back}");
    assert!(
        !back.contains("503"),
        "no 503 for a request a remote cluster took: {back}"
    );

    // Plain interest both ways, with headers.
    let mut sub_a = client(a);
    sub_a.send("SUB to.a 1\r\n");
    sub_a.sync();
    wait_remote_interest(b, a_name, "to.a");
    let mut pub_b = client(b);
    pub_b.send("HPUB to.a 12 14\r\nNATS/1.0\r\n\r\nhi\r\n");
    pub_b.sync();
    let got = read_until(&mut sub_a, "hi", Duration::from_secs(3));
    assert!(
        got.contains("HMSG to.a 1 12 14"),
        "B -> A with headers: {got}"
    );

    // Queue group with members in both clusters: publishes stay in their own cluster.
    let mut qa = client(a);
    let mut qb = client(b);
    qa.send("SUB jobs grp 1\r\n");
    qb.send("SUB jobs grp 1\r\n");
    qa.sync();
    qb.sync();
    wait_remote_interest(a2, b_name, "jobs grp");
    settle();
    let mut pub_a = client(a2);
    for _ in 0..50 {
        pub_a.send("PUB jobs 1\r\nj\r\n");
    }
    pub_a.sync();
    assert_eq!(
        count_msgs(&mut qa, "jobs", 50),
        50,
        "A's member takes A's work"
    );
    assert_eq!(count_msgs(&mut qb, "jobs", 0), 0, "nothing crosses to B");
    // With A's member gone, B's member gets A's work.
    qa.send("UNSUB 1\r\n");
    qa.sync();
    settle();
    for _ in 0..20 {
        pub_a.send("PUB jobs 1\r\nj\r\n");
    }
    pub_a.sync();
    assert_eq!(count_msgs(&mut qb, "jobs", 20), 20, "B's member takes over");

    // Interest withdrawn: B stops wanting `svc.echo`, A stops sending it.
    svc.send("UNSUB 1\r\n");
    svc.sync();
    let path = format!("/gatewayz?accs=1&subs=1&gw_name={b_name}&acc_name=$G");
    wait_json(a2, &path, Duration::from_secs(5), |v| {
        !v["outbound_gateways"][b_name]["accounts"][0]["subscriptions_list"]
            .as_array()
            .is_some_and(|l| l.iter().any(|s| s == "svc.echo"))
    });
}

#[test]
fn two_natrix_clusters() {
    let (ga1, ga2, gb) = (free_port(), free_port(), free_port());
    let (ra1, ra2) = (free_port(), free_port());
    let remotes = [("A", ga1), ("B", gb)];
    let bin = Path::new(NATRIX);
    let a1 = start(bin, &conf("a1", "A", ga1, &remotes, &[ra1, ra2]), true);
    let a2 = start(bin, &conf("a2", "A", ga2, &remotes, &[ra2, ra1]), true);
    let b = start(bin, &conf("b", "B", gb, &remotes, &[]), true);
    for p in [&a1, &a2] {
        wait_outbound(p, &["B"]);
    }
    wait_outbound(&b, &["A"]);
    // B gets an inbound from each server of A; every account is interest-only at once.
    let z = wait_json(&b, "/gatewayz?accs=1", Duration::from_secs(10), |v| {
        v["inbound_gateways"]["A"].as_array().map(Vec::len) == Some(2)
    });
    assert_eq!(z["name"], "B");
    let z = wait_json(&a2, "/gatewayz?accs=1", Duration::from_secs(5), |v| {
        v["outbound_gateways"]["B"]["accounts"]
            .as_array()
            .is_some_and(|a| !a.is_empty())
    });
    for acc in z["outbound_gateways"]["B"]["accounts"]
        .as_array()
        .into_iter()
        .flatten()
    {
        assert_eq!(acc["interest_mode"], "Interest-Only", "{z}");
    }
    let varz = common::http_get(a1.http_port.expect("http"), "/varz").json();
    assert_eq!(varz["gateway"]["name"], "A", "{varz}");
    assert_eq!(
        varz["cluster"]["name"], "A",
        "the cluster takes the gateway's name"
    );
    exercise(&a1, &a2, &b, "B", "A");
}

#[test]
fn natrix_and_nats_server_clusters() {
    let Some(reference) = reference_binary() else {
        eprintln!("skipped: reference nats-server not installed");
        return;
    };
    let (ga1, ga2, gb) = (free_port(), free_port(), free_port());
    let (ra1, ra2) = (free_port(), free_port());
    let remotes = [("N", ga1), ("R", gb)];
    let bin = Path::new(NATRIX);
    // Cluster N: natrix; cluster R: nats-server.
    let n1 = start(bin, &conf("n1", "N", ga1, &remotes, &[ra1, ra2]), true);
    let n2 = start(bin, &conf("n2", "N", ga2, &remotes, &[ra2, ra1]), true);
    let r = start(&reference, &conf("r", "R", gb, &remotes, &[]), true);
    wait_outbound(&n1, &["R"]);
    wait_outbound(&n2, &["R"]);
    wait_outbound(&r, &["N"]);
    // nats-server's sender switched N's accounts to interest-only on our commands.
    let z = wait_json(&r, "/gatewayz?accs=1", Duration::from_secs(10), |v| {
        v["outbound_gateways"]["N"]["accounts"]
            .as_array()
            .is_some_and(|a| a.iter().any(|x| x["name"] == "$G"))
    });
    let g = z["outbound_gateways"]["N"]["accounts"]
        .as_array()
        .and_then(|a| a.iter().find(|x| x["name"] == "$G").cloned())
        .unwrap_or_default();
    assert_eq!(g["interest_mode"], "Interest-Only", "{z}");
    exercise(&n1, &n2, &r, "R", "N");
    // And the other way: a nats-server requester, a natrix responder.
    let mut svc = client(&n1);
    svc.send("SUB svc.rev 1\r\n");
    svc.sync();
    let mut req = client(&r);
    req.send("SUB _INBOX.rev 3\r\n");
    req.sync();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut got = String::new();
    while !got.contains("MSG svc.rev") && Instant::now() < deadline {
        req.send("PUB svc.rev _INBOX.rev 1\r\nq\r\n");
        got.push_str(&svc.read_for(Duration::from_millis(200)));
    }
    assert!(got.contains("MSG svc.rev 1 _INBOX.rev 1"), "{got}");
    svc.send("PUB _INBOX.rev 1\r\na\r\n");
    svc.sync();
    let back = read_until(&mut req, "MSG _INBOX.rev", Duration::from_secs(3));
    assert!(back.contains("MSG _INBOX.rev 3 1"), "{back}");
}

/// A fake remote cluster "F" on a raw socket: natrix dials it; F never says
/// `gateway_iom`, so natrix starts optimistic, then obeys `RS-`, `A-`, `A+` and the
/// switch to interest-only (commands 2 and 3).
#[test]
fn optimistic_then_interest_only() {
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let fake_port = listener.local_addr().expect("addr").port();
    let gn = free_port();
    let n = start(
        Path::new(NATRIX),
        &conf("n", "N", gn, &[("F", fake_port)], &[]),
        true,
    );
    listener.set_nonblocking(false).expect("blocking");
    let (mut f, _) = listener.accept().expect("natrix dials F");
    f.set_read_timeout(Some(Duration::from_millis(200)))
        .expect("timeout");
    f.write_all(
        b"INFO {\"server_id\":\"NFAKE\",\"server_name\":\"f\",\"gateway\":\"F\",\"gateway_url\":\"127.0.0.1:1\",\"headers\":true}\r\n",
    )
    .expect("info");
    let mut seen = String::new();
    let read_some = |f: &mut TcpStream, seen: &mut String, want: &str| {
        let deadline = Instant::now() + Duration::from_secs(3);
        let mut buf = [0u8; 8192];
        while !seen.contains(want) && Instant::now() < deadline {
            if let Ok(k) = f.read(&mut buf) {
                seen.push_str(&String::from_utf8_lossy(&buf[..k]));
            }
        }
    };
    read_some(&mut f, &mut seen, "\"gateway\":\"N\"");
    assert!(seen.starts_with("CONNECT {"), "CONNECT first: {seen}");
    assert!(seen.contains("\"gateway_iom\":true"), "{seen}");
    wait_outbound(&n, &["F"]);
    let mut p = client(&n);
    let mut publish = |subject: &str| {
        p.send(&format!("PUB {subject} 1\r\nx\r\n"));
        p.sync();
    };
    let expect = |f: &mut TcpStream, subject: &str, sent: bool| {
        let mut got = String::new();
        let want = format!("RMSG $G {subject} 1");
        read_some(f, &mut got, &want);
        assert_eq!(got.contains(&want), sent, "{subject}: {got}");
    };
    // Optimistic: everything goes.
    publish("opt.a");
    expect(&mut f, "opt.a", true);
    // RS-: that subject stops, others still go.
    f.write_all(b"RS- $G opt.a\r\n").expect("rs-");
    settle();
    publish("opt.a");
    publish("opt.b");
    expect(&mut f, "opt.b", true);
    publish("opt.a");
    expect(&mut f, "opt.a", false);
    // A-: the whole account stops; A+ resumes it.
    f.write_all(b"A- $G\r\n").expect("a-");
    settle();
    publish("opt.c");
    expect(&mut f, "opt.c", false);
    f.write_all(b"A+ $G\r\n").expect("a+");
    settle();
    publish("opt.d");
    expect(&mut f, "opt.d", true);
    // Switch to interest-only: only announced subjects go.
    f.write_all(
        b"INFO {\"gateway\":\"F\",\"gateway_cmd\":2,\"gateway_cmd_payload\":\"JEc=\"}\r\nRS+ $G io.yes\r\nINFO {\"gateway\":\"F\",\"gateway_cmd\":3,\"gateway_cmd_payload\":\"JEc=\"}\r\n",
    )
    .expect("switch");
    wait_json(&n, "/gatewayz?accs=1", Duration::from_secs(3), |v| {
        v["outbound_gateways"]["F"]["accounts"][0]["interest_mode"] == "Interest-Only"
    });
    publish("io.no");
    publish("io.yes");
    let mut got = String::new();
    read_some(&mut f, &mut got, "RMSG $G io.yes 1");
    assert!(got.contains("RMSG $G io.yes 1"), "{got}");
    assert!(!got.contains("io.no"), "{got}");
    // Requests carry a mapped reply: _GR_.<hash of N>.<hash of n's id>.<reply>.
    p.send("PUB io.yes my.reply 1\r\nr\r\n");
    p.sync();
    let mut got = String::new();
    read_some(&mut f, &mut got, "my.reply");
    assert!(got.contains("RMSG $G io.yes _GR_."), "{got}");
    assert!(got.contains(".my.reply 1"), "{got}");
}

/// Bad input on the gateway port: each gets nats-server's error and is closed, and the
/// server keeps serving clients.
#[test]
fn bad_input_on_gateway_port() {
    let gn = free_port();
    let n = start(Path::new(NATRIX), &conf("n", "N", gn, &[], &[]), true);
    let cases: [(&str, &str); 4] = [
        (
            "CONNECT {\"verbose\":false,\"lang\":\"go\"}\r\n",
            "-ERR 'attempted to connect to gateway port'",
        ),
        ("RS+ $G foo\r\n", "-ERR 'Authorization Violation'"),
        ("GARBAGE\r\n", "-ERR 'Unknown Protocol Operation'"),
        (
            "CONNECT {\"gateway\":\"X\"}\r\nINFO {\"server_id\":\"NX\",\"gateway\":\"X\"}\r\nRMSG $G foo 1\r\nx\r\nRS+ $G foo\r\n",
            "-ERR 'Unknown Protocol Operation'",
        ),
    ];
    for (input, want) in cases {
        let mut raw = Raw::connect(gn);
        raw.send(input);
        let got = read_until(&mut raw, want, Duration::from_secs(2));
        assert!(got.contains(want), "{input:?}: {got}");
        assert!(raw.is_closed(Duration::from_secs(2)), "{input:?} closes");
    }
    // Clients are still served.
    let mut c = client(&n);
    c.send("SUB still.ok 1\r\nPUB still.ok 1\r\nx\r\n");
    assert_eq!(count_msgs(&mut c, "still.ok", 1), 1);
}

/// Gateway authorization: clusters sharing the credentials connect; a peer with wrong
/// ones gets nats-server's error and is closed.
#[test]
fn gateway_authorization() {
    let (ga, gb) = (free_port(), free_port());
    let remotes = [("A", ga), ("B", gb)];
    let with_auth = |name: &str, gw: &str, port: u16| {
        conf(name, gw, port, &remotes, &[]).replace(
            "  gateways:",
            "  authorization { user: gwuser, password: gwpass }\n  gateways:",
        )
    };
    let bin = Path::new(NATRIX);
    let a = start(bin, &with_auth("a", "A", ga), true);
    let b = start(bin, &with_auth("b", "B", gb), true);
    wait_outbound(&a, &["B"]);
    wait_outbound(&b, &["A"]);
    let mut raw = Raw::connect(ga);
    raw.send("CONNECT {\"gateway\":\"X\",\"user\":\"gwuser\",\"pass\":\"nope\"}\r\n");
    let got = read_until(&mut raw, "Authorization", Duration::from_secs(2));
    assert!(got.contains("-ERR 'Authorization Violation'"), "{got}");
    assert!(raw.is_closed(Duration::from_secs(2)));
}
