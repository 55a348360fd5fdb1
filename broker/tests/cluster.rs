//! Clusters over routes, on loopback: a three-node natrix cluster (cross-node delivery,
//! queue groups exactly once, interest withdrawn, a node lost and back), and a mixed
//! cluster where natrix and the reference nats-server route to each other.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    NATRIX, Proc, Raw, client, count_msgs, free_port, http_get, read_until, reference_binary,
    settle, start, wait_json,
};

/// A node's config: its cluster port, and routes to every member (itself included, as
/// generated configs usually do).
fn conf(name: &str, port: u16, all: &[u16]) -> String {
    let routes: Vec<String> = all
        .iter()
        .map(|p| format!("nats://127.0.0.1:{p}"))
        .collect();
    format!(
        "server_name: {name}\ncluster {{\n  name: T\n  listen: 127.0.0.1:{port}\n  routes: [{}]\n}}\n",
        routes.join(", ")
    )
}

fn wait_routes(p: &Proc, n: u64, within: Duration) {
    wait_json(p, "/routez", within, |v| {
        v["num_routes"].as_u64() == Some(n)
    });
}

#[test]
fn three_node_cluster() {
    let ports = [free_port(), free_port(), free_port()];
    let bin = Path::new(NATRIX);
    let n1 = start(bin, &conf("n1", ports[0], &ports), true);
    let n2 = start(bin, &conf("n2", ports[1], &ports), true);
    let n3 = start(bin, &conf("n3", ports[2], &ports), true);
    for n in [&n1, &n2, &n3] {
        wait_routes(n, 2, Duration::from_secs(10));
    }
    // Clients learn every member's client URL from INFO.
    let info = {
        let mut s = std::net::TcpStream::connect(("127.0.0.1", n1.port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .expect("timeout");
        let mut buf = [0u8; 4096];
        let n = std::io::Read::read(&mut s, &mut buf).expect("read");
        let line = String::from_utf8_lossy(&buf[..n]).into_owned();
        serde_json::from_str::<serde_json::Value>(line.trim_start_matches("INFO ").trim())
            .expect("INFO json")
    };
    let urls = info["connect_urls"].as_array().map_or(0, Vec::len);
    assert_eq!(urls, 3, "connect_urls: {info}");
    // Plain interest across nodes, with a reply subject.
    let mut sub2 = client(&n2);
    sub2.send("SUB orders.* 1\r\n");
    sub2.sync();
    let mut q2 = client(&n2);
    let mut q3 = client(&n3);
    q2.send("SUB work workers 1\r\n");
    q3.send("SUB work workers 1\r\n");
    q2.sync();
    q3.sync();
    settle();
    let mut pubc = client(&n1);
    pubc.send("PUB orders.new inbox.1 5\r\nhello\r\n");
    for _ in 0..200 {
        pubc.send("PUB work 1\r\nx\r\n");
    }
    pubc.sync();
    assert_eq!(count_msgs(&mut sub2, "orders.new", 1), 1);
    let (a, b) = (
        count_msgs(&mut q2, "work", 200),
        count_msgs(&mut q3, "work", 0),
    );
    assert_eq!(
        a + b,
        200,
        "queue delivery exactly once across the cluster: {a} + {b}"
    );
    assert!(a > 0 && b > 0, "both members get work: {a} {b}");

    // Interest withdrawn: nothing is forwarded to n2 any more.
    sub2.send("UNSUB 1\r\n");
    sub2.sync();
    settle();
    pubc.send("PUB orders.late 1\r\nx\r\n");
    pubc.sync();
    assert_eq!(count_msgs(&mut sub2, "orders.late", 0), 0);
    let routez = http_get(n1.http_port.expect("http"), "/routez?subs=1").json();
    let listed: Vec<String> = routez["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|r| {
            r["subscriptions_list"]
                .as_array()
                .cloned()
                .unwrap_or_default()
        })
        .filter_map(|s| s.as_str().map(str::to_owned))
        .collect();
    assert!(!listed.iter().any(|s| s == "orders.*"), "{listed:?}");
    assert!(listed.iter().any(|s| s == "work workers"), "{listed:?}");

    // A node lost: the others notice and keep routing between themselves.
    let mut n3 = n3;
    let _ = n3.child.kill();
    let _ = n3.child.wait();
    wait_routes(&n1, 1, Duration::from_secs(5));
    wait_routes(&n2, 1, Duration::from_secs(5));
    let mut sub2b = client(&n2);
    sub2b.send("SUB after.loss 1\r\n");
    sub2b.sync();
    settle();
    pubc.send("PUB after.loss 1\r\nx\r\n");
    pubc.sync();
    assert_eq!(count_msgs(&mut sub2b, "after.loss", 1), 1);
    // And back: the configured routes are redialled.
    let n3b = start(bin, &conf("n3", ports[2], &ports), true);
    for n in [&n1, &n2, &n3b] {
        wait_routes(n, 2, Duration::from_secs(10));
    }
    let mut sub3 = client(&n3b);
    sub3.send("SUB back.again 1\r\n");
    sub3.sync();
    settle();
    pubc.send("PUB back.again 1\r\nx\r\n");
    pubc.sync();
    assert_eq!(count_msgs(&mut sub3, "back.again", 1), 1);
}

#[test]
fn mixed_cluster_with_nats_server() {
    let Some(reference) = reference_binary() else {
        eprintln!("skipped: reference nats-server not installed");
        return;
    };
    let ports = [free_port(), free_port(), free_port()];
    let a = start(Path::new(NATRIX), &conf("a", ports[0], &ports[..1]), true);
    let b = start(Path::new(NATRIX), &conf("b", ports[1], &ports[..1]), true);
    // nats-server knows only a; gossip must complete the mesh.
    let c = start(&reference, &conf("c", ports[2], &ports[..1]), true);
    for n in [&a, &b, &c] {
        wait_routes(n, 2, Duration::from_secs(15));
    }
    let mut on_c = client(&c);
    let mut on_a = client(&a);
    on_c.send("SUB mix.> 1\r\nSUB svc.echo 2\r\n");
    on_a.send("SUB mix.> 1\r\n");
    on_c.sync();
    on_a.sync();
    let mut qa = client(&a);
    let mut qc = client(&c);
    qa.send("SUB jobs q 1\r\n");
    qc.send("SUB jobs q 1\r\n");
    qa.sync();
    qc.sync();
    settle();
    let mut from_b = client(&b);
    from_b.send("PUB mix.1 2\r\nhi\r\n");
    for _ in 0..200 {
        from_b.send("PUB jobs 1\r\nj\r\n");
    }
    from_b.sync();
    assert_eq!(
        count_msgs(&mut on_c, "mix.1", 1),
        1,
        "natrix -> nats-server"
    );
    assert_eq!(count_msgs(&mut on_a, "mix.1", 1), 1, "natrix -> natrix");
    let (x, y) = (
        count_msgs(&mut qa, "jobs", 200),
        count_msgs(&mut qc, "jobs", 0),
    );
    assert_eq!(
        x + y,
        200,
        "exactly once across natrix and nats-server: {x} + {y}"
    );
    // From nats-server to natrix, with request/reply crossing back.
    let mut from_c = client(&c);
    from_c.send("PUB mix.2 2\r\nyo\r\n");
    from_c.sync();
    assert_eq!(
        count_msgs(&mut on_a, "mix.2", 1),
        1,
        "nats-server -> natrix"
    );
    let mut requester = client(&b);
    requester.send("SUB _INBOX.r 9\r\n");
    requester.sync();
    settle();
    requester.send("PUB svc.echo _INBOX.r 4\r\nping\r\n");
    requester.sync();
    let got = read_until(
        &mut on_c,
        "MSG svc.echo 2 _INBOX.r 4",
        Duration::from_secs(3),
    );
    assert!(got.contains("MSG svc.echo 2 _INBOX.r 4"), "{got}");
    on_c.send("PUB _INBOX.r 4\r\npong\r\n");
    on_c.sync();
    assert_eq!(
        count_msgs(&mut requester, "_INBOX.r", 1),
        1,
        "reply crossed back"
    );
}

/// Route authorization: members with the cluster's credentials form routes; a peer with
/// wrong ones gets nats-server's error and is closed.
#[test]
fn route_authorization() {
    let ports = [free_port(), free_port()];
    let auth = |name: &str, port: u16, user: &str| {
        format!(
            "server_name: {name}\ncluster {{\n  name: T\n  listen: 127.0.0.1:{port}\n  authorization {{ user: {user}, password: s3cret }}\n  routes: [nats://127.0.0.1:{}]\n}}\n",
            ports[0]
        )
    };
    let bin = Path::new(NATRIX);
    let a = start(bin, &auth("a", ports[0], "ruser"), true);
    let b = start(bin, &auth("b", ports[1], "ruser"), true);
    wait_routes(&a, 1, Duration::from_secs(10));
    wait_routes(&b, 1, Duration::from_secs(10));
    let mut raw = Raw::connect(ports[0]);
    raw.send(
        "CONNECT {\"name\":\"NX\",\"cluster\":\"T\",\"user\":\"ruser\",\"pass\":\"wrong\"}\r\n",
    );
    let got = read_until(&mut raw, "Authorization", Duration::from_secs(2));
    assert!(got.contains("-ERR 'Authorization Violation'"), "{got}");
    assert!(raw.is_closed(Duration::from_secs(2)));
    // A server configured with other credentials never joins.
    let c = start(bin, &auth("c", free_port(), "other"), true);
    std::thread::sleep(Duration::from_secs(2));
    assert_eq!(
        http_get(c.http_port.expect("http"), "/routez").json()["num_routes"],
        0
    );
    wait_routes(&a, 1, Duration::from_secs(1));
}

/// Bad input on the route port: each gets nats-server's error and is closed; a flood
/// of interest is taken and dropped again with its connection; a route to itself is
/// recognised; clients are served throughout.
#[test]
fn bad_input_on_route_port() {
    let port = free_port();
    // The route list names the server itself only: it must notice and stop dialling.
    let n = start(Path::new(NATRIX), &conf("n", port, &[port]), true);
    let cases: [(&str, &str); 4] = [
        ("GARBAGE\r\n", "-ERR 'Unknown Protocol Operation'"),
        ("RS+ $G foo\r\n", "-ERR 'Authorization Violation'"),
        (
            "CONNECT {\"verbose\":false,\"lang\":\"go\",\"version\":\"1.0\"}\r\n",
            "-ERR 'Authorization Violation'",
        ),
        (
            "CONNECT {\"name\":\"NX\",\"cluster\":\"OTHER\"}\r\n",
            "-ERR 'Rejecting connection, cluster name \"OTHER\" does not match \"T\"'",
        ),
    ];
    for (input, want) in cases {
        let mut raw = Raw::connect(port);
        raw.send(input);
        let got = read_until(&mut raw, want, Duration::from_secs(2));
        assert!(got.contains(want), "{input:?}: {got}");
        assert!(raw.is_closed(Duration::from_secs(2)), "{input:?} closes");
    }
    // An RS+ flood from a peer: 100,000 subscriptions arrive, clients keep being served,
    // and they all go with the route.
    let mut raw = Raw::connect(port);
    raw.send("CONNECT {\"name\":\"NFLOOD\",\"cluster\":\"T\"}\r\nINFO {\"server_id\":\"NFLOOD\",\"server_name\":\"flood\",\"cluster\":\"T\"}\r\n");
    let mut batch = String::with_capacity(2_000_000);
    for i in 0..100_000 {
        batch.push_str(&format!("RS+ $G flood.{i}\r\n"));
    }
    raw.send(&batch);
    let subsz = wait_json(&n, "/subsz", Duration::from_secs(20), |v| {
        v["num_subscriptions"].as_u64() >= Some(100_000)
    });
    assert!(subsz["num_subscriptions"].as_u64() >= Some(100_000));
    let mut c = client(&n);
    c.send("SUB still.ok 1\r\nPUB still.ok 1\r\nx\r\n");
    assert_eq!(count_msgs(&mut c, "still.ok", 1), 1);
    drop(raw);
    wait_json(&n, "/subsz", Duration::from_secs(10), |v| {
        v["num_subscriptions"].as_u64() < Some(100)
    });
    assert_eq!(
        http_get(n.http_port.expect("http"), "/routez").json()["num_routes"],
        0,
        "no route to itself"
    );
}

/// Queue weights: a peer with three members of a group gets three times the share of a
/// server with one (nats-server counts a route's members the same way).
#[test]
fn queue_weights_across_routes() {
    let ports = [free_port(), free_port()];
    let bin = Path::new(NATRIX);
    let n1 = start(bin, &conf("w1", ports[0], &ports), true);
    let n2 = start(bin, &conf("w2", ports[1], &ports), true);
    wait_routes(&n1, 1, Duration::from_secs(10));
    wait_routes(&n2, 1, Duration::from_secs(10));
    let mut local = client(&n1);
    local.send("SUB tasks grp 1\r\n");
    local.sync();
    let mut remote: Vec<_> = (0..3)
        .map(|_| {
            let mut c = client(&n2);
            c.send("SUB tasks grp 1\r\n");
            c.sync();
            c
        })
        .collect();
    wait_json(&n1, "/routez?subs=1", Duration::from_secs(5), |v| {
        v["routes"][0]["subscriptions_list"]
            .as_array()
            .is_some_and(|l| l.iter().any(|s| s == "tasks grp"))
    });
    settle();
    let mut p = client(&n1);
    for _ in 0..800 {
        p.send("PUB tasks 1\r\nt\r\n");
    }
    p.sync();
    let here = count_msgs(&mut local, "tasks", 200);
    let there: usize = remote.iter_mut().map(|c| count_msgs(c, "tasks", 0)).sum();
    assert_eq!(here + there, 800, "{here} + {there}");
    assert!(
        (100..=320).contains(&here),
        "one local member of four gets about a quarter, not half: {here}"
    );
}

/// Two servers that list each other dial each other: one connection survives, and the
/// loser does not redial while the route is up (it used to, every second).
#[test]
fn no_redial_while_routed() {
    let ports = [free_port(), free_port()];
    let bin = Path::new(NATRIX);
    let node = |name: &str, port: u16| {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("server.conf");
        std::fs::write(&path, conf(name, port, &ports)).expect("conf");
        common::start_custom(bin, dir, &path, &["-m", "-1", "-D"], true)
    };
    let a = node("d1", ports[0]);
    let b = node("d2", ports[1]);
    wait_routes(&a, 1, Duration::from_secs(10));
    wait_routes(&b, 1, Duration::from_secs(10));
    std::thread::sleep(Duration::from_secs(4));
    let dups: usize = [&a, &b]
        .iter()
        .map(|p| p.log_text().matches("duplicate route, closing").count())
        .sum();
    assert!(dups <= 2, "duplicates keep being dialled: {dups}");
    wait_routes(&a, 1, Duration::from_secs(1));
}
