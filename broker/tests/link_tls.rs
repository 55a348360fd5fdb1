//! TLS on inter-server links: routes and gateways between natrix and the reference
//! nats-server with mutual certificate verification, as nats-server always does for them.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{
    NATRIX, Raw, TestPki, client, count_msgs, free_port, reference_binary, settle, start, wait_json,
};

fn tls_block(pki: &TestPki) -> String {
    let f = |n: &str| pki.dir.join(n).display().to_string();
    format!(
        "  tls {{\n    cert_file: \"{}\"\n    key_file: \"{}\"\n    ca_file: \"{}\"\n    timeout: 3\n  }}\n",
        f("node.pem"),
        f("node-key.pem"),
        f("ca.pem")
    )
}

/// Distinct peers on `/routez` (nats-server pools several connections per peer).
fn peers(v: &serde_json::Value) -> usize {
    let mut ids: Vec<&str> = v["routes"]
        .as_array()
        .into_iter()
        .flatten()
        .filter_map(|r| r["remote_id"].as_str())
        .collect();
    ids.sort_unstable();
    ids.dedup();
    ids.len()
}

#[test]
fn routes_over_tls_with_nats_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(dir.path());
    pki.server_cert("node");
    let ports = [free_port(), free_port()];
    let conf = |name: &str, port: u16| {
        format!(
            "server_name: {name}\ncluster {{\n  name: T\n  listen: 127.0.0.1:{port}\n  routes: [nats://127.0.0.1:{}, nats://127.0.0.1:{}]\n{}}}\n",
            ports[0],
            ports[1],
            tls_block(&pki)
        )
    };
    let natrix = start(Path::new(NATRIX), &conf("x", ports[0]), true);
    let reference = reference_binary();
    let other = match &reference {
        Some(r) => start(r, &conf("r", ports[1]), true),
        None => {
            eprintln!("reference nats-server not installed: natrix on both ends");
            start(Path::new(NATRIX), &conf("y", ports[1]), true)
        }
    };
    for p in [&natrix, &other] {
        wait_json(p, "/routez", Duration::from_secs(15), |v| peers(v) == 1);
    }
    let info = common::http_get(natrix.http_port.expect("http"), "/routez").json();
    assert_eq!(peers(&info), 1);
    let mut sub = client(&other);
    sub.send("SUB secure.> 1\r\n");
    sub.sync();
    let mut sub_x = client(&natrix);
    sub_x.send("SUB back.> 1\r\n");
    sub_x.sync();
    settle();
    let mut p = client(&natrix);
    p.send("PUB secure.1 2\r\nok\r\n");
    p.sync();
    assert_eq!(
        count_msgs(&mut sub, "secure.1", 1),
        1,
        "natrix -> peer over TLS"
    );
    let mut q = client(&other);
    q.send("PUB back.1 2\r\nok\r\n");
    q.sync();
    assert_eq!(
        count_msgs(&mut sub_x, "back.1", 1),
        1,
        "peer -> natrix over TLS"
    );
    // A route attempt in clear text is not a TLS handshake: dropped, nothing routed.
    let mut raw = Raw::connect_plain(ports[0]);
    raw.send("CONNECT {\"name\":\"NPLAIN\",\"cluster\":\"T\"}\r\n");
    assert!(raw.is_closed(Duration::from_secs(5)), "plain route closed");
}

#[test]
fn gateways_over_tls_with_nats_server() {
    let dir = tempfile::tempdir().expect("tempdir");
    let pki = TestPki::new(dir.path());
    pki.server_cert("node");
    let (ga, gb) = (free_port(), free_port());
    let conf = |name: &str, gw: &str, port: u16| {
        format!(
            "server_name: {name}\ngateway {{\n  name: {gw}\n  listen: 127.0.0.1:{port}\n  gateways: [{{name: A, url: \"nats://127.0.0.1:{ga}\"}}, {{name: B, url: \"nats://127.0.0.1:{gb}\"}}]\n{}}}\n",
            tls_block(&pki)
        )
    };
    let a = start(Path::new(NATRIX), &conf("a", "A", ga), true);
    let b = match reference_binary() {
        Some(r) => start(&r, &conf("b", "B", gb), true),
        None => start(Path::new(NATRIX), &conf("b", "B", gb), true),
    };
    for (p, other) in [(&a, "B"), (&b, "A")] {
        wait_json(p, "/gatewayz", Duration::from_secs(15), |v| {
            v["outbound_gateways"][other]["connection"]["cid"].is_u64()
        });
    }
    let mut svc = client(&b);
    svc.send("SUB tls.svc 1\r\n");
    svc.sync();
    wait_json(
        &a,
        "/gatewayz?accs=1&subs=1&acc_name=$G",
        Duration::from_secs(5),
        |v| {
            v["outbound_gateways"]["B"]["accounts"][0]["subscriptions_list"]
                .as_array()
                .is_some_and(|l| l.iter().any(|s| s == "tls.svc"))
        },
    );
    let mut p = client(&a);
    p.send("PUB tls.svc 2\r\nhi\r\n");
    p.sync();
    assert_eq!(count_msgs(&mut svc, "tls.svc", 1), 1, "A -> B over TLS");
}
