//! Servers on a private network: each natrix-server runs in a network namespace of its
//! own, wired to a bridge the test creates (see `common::netns`). A three-node cluster
//! (cross-node messages and queue groups, interest changes, a node killed and restarted,
//! a partition healed) and two clusters joined by gateways (request/reply across, every
//! account interest-only).

mod common;

use std::path::Path;
use std::time::Duration;

use common::netns::{self, Lab, addr};
use common::{NATRIX, Raw, count_msgs, read_until, settle};

/// A cluster member's config: fixed ports on its own address, routes to every member,
/// quick route PINGs so a partition is noticed within seconds.
fn cluster_conf(n: u8, members: &[u8]) -> String {
    let routes: Vec<String> = members
        .iter()
        .map(|m| format!("nats://{}:6222", addr(*m)))
        .collect();
    format!(
        "server_name: n{n}\nlisten: {a}:4222\nhttp: {a}:8222\ncluster {{\n  name: T\n  listen: {a}:6222\n  routes: [{}]\n  ping_interval: \"500ms\"\n  ping_max: 2\n}}\n",
        routes.join(", "),
        a = addr(n)
    )
}

fn wait_routes(lab: &Lab, n: u8, routes: u64) {
    lab.wait_json(n, "/routez", Duration::from_secs(20), |v| {
        v["num_routes"].as_u64() == Some(routes)
    });
}

fn sub(lab: &Lab, n: u8, line: &str) -> Raw {
    let mut c = lab.client(n);
    c.send(line);
    c.sync();
    c
}

#[test]
fn three_node_cluster_on_private_network() {
    let Some(mut lab) = netns::lab("c3") else {
        return;
    };
    let members = [1u8, 2, 3];
    let ns: Vec<String> = members.iter().map(|n| lab.node(*n)).collect();
    let bin = Path::new(NATRIX);
    let mut procs: Vec<_> = members
        .iter()
        .zip(&ns)
        .map(|(n, ns)| lab.start(bin, ns, *n, &cluster_conf(*n, &members)))
        .collect();
    for n in members {
        wait_routes(&lab, n, 2);
    }

    // Messages and a queue group across nodes.
    let mut s2 = sub(&lab, 2, "SUB orders.* 1\r\n");
    let mut q2 = sub(&lab, 2, "SUB work grp 1\r\n");
    let mut q3 = sub(&lab, 3, "SUB work grp 1\r\n");
    settle();
    let mut p1 = lab.client(1);
    p1.send("PUB orders.new 5\r\nhello\r\n");
    for _ in 0..200 {
        p1.send("PUB work 1\r\nw\r\n");
    }
    p1.sync();
    assert_eq!(count_msgs(&mut s2, "orders.new", 1), 1);
    let (a, b) = (
        count_msgs(&mut q2, "work", 200),
        count_msgs(&mut q3, "work", 0),
    );
    assert_eq!(
        a + b,
        200,
        "queue group exactly once across nodes: {a} + {b}"
    );

    // Interest withdrawn on one node stops deliveries from the others.
    s2.send("UNSUB 1\r\n");
    s2.sync();
    settle();
    p1.send("PUB orders.late 1\r\nx\r\n");
    p1.sync();
    assert_eq!(count_msgs(&mut s2, "orders.late", 0), 0);

    // A node killed: the others route between themselves; restarted, it rejoins.
    let _ = procs[1].child.kill();
    let _ = procs[1].child.wait();
    wait_routes(&lab, 1, 1);
    wait_routes(&lab, 3, 1);
    procs[1] = lab.start(bin, &ns[1], 2, &cluster_conf(2, &members));
    for n in members {
        wait_routes(&lab, n, 2);
    }
    let mut s2b = sub(&lab, 2, "SUB back.again 1\r\n");
    settle();
    p1.send("PUB back.again 1\r\nx\r\n");
    p1.sync();
    assert_eq!(count_msgs(&mut s2b, "back.again", 1), 1);

    // A partition: node 3 cut off the network. Nodes 1 and 2 notice by their PINGs and
    // keep serving each other; once the link is back, the mesh forms again and node 3's
    // subscribers get messages from node 1.
    let mut s3 = sub(&lab, 3, "SUB after.heal 1\r\n");
    lab.link(3, false);
    wait_routes(&lab, 1, 1);
    wait_routes(&lab, 2, 1);
    let mut s2c = sub(&lab, 2, "SUB during.partition 1\r\n");
    settle();
    p1.send("PUB during.partition 1\r\nx\r\n");
    p1.sync();
    assert_eq!(count_msgs(&mut s2c, "during.partition", 1), 1);
    lab.link(3, true);
    for n in members {
        wait_routes(&lab, n, 2);
    }
    settle();
    p1.send("PUB after.heal 1\r\nx\r\n");
    p1.sync();
    assert_eq!(
        count_msgs(&mut s3, "after.heal", 1),
        1,
        "interest re-announced after the partition healed"
    );
}

fn gateway_conf(n: u8, name: &str, remotes: &[(&str, u8)]) -> String {
    let gateways: Vec<String> = remotes
        .iter()
        .map(|(r, m)| format!("{{name: {r}, url: \"nats://{}:7222\"}}", addr(*m)))
        .collect();
    format!(
        "server_name: g{n}\nlisten: {a}:4222\nhttp: {a}:8222\ngateway {{\n  name: {name}\n  listen: {a}:7222\n  gateways: [{}]\n}}\n",
        gateways.join(", "),
        a = addr(n)
    )
}

#[test]
fn gateways_on_private_network() {
    let Some(mut lab) = netns::lab("gw") else {
        return;
    };
    let remotes = [("A", 11u8), ("B", 12u8)];
    let (na, nb) = (lab.node(11), lab.node(12));
    let bin = Path::new(NATRIX);
    let _a = lab.start(bin, &na, 11, &gateway_conf(11, "A", &remotes));
    let _b = lab.start(bin, &nb, 12, &gateway_conf(12, "B", &remotes));
    for (n, other) in [(11, "B"), (12, "A")] {
        lab.wait_json(n, "/gatewayz?accs=1", Duration::from_secs(15), |v| {
            v["outbound_gateways"][other]["accounts"]
                .as_array()
                .is_some_and(|a| {
                    a.iter()
                        .any(|x| x["name"] == "$G" && x["interest_mode"] == "Interest-Only")
                })
        });
    }
    let mut svc = sub(&lab, 12, "SUB svc.time 1\r\n");
    lab.wait_json(
        11,
        "/gatewayz?accs=1&subs=1&acc_name=$G",
        Duration::from_secs(5),
        |v| {
            v["outbound_gateways"]["B"]["accounts"][0]["subscriptions_list"]
                .as_array()
                .is_some_and(|l| l.iter().any(|s| s == "svc.time"))
        },
    );
    let mut req = sub(&lab, 11, "SUB _INBOX.t 2\r\n");
    req.send("PUB svc.time _INBOX.t 1\r\n?\r\n");
    req.sync();
    let got = read_until(&mut svc, "MSG svc.time", Duration::from_secs(3));
    assert!(got.contains("MSG svc.time 1 _INBOX.t 1"), "{got}");
    svc.send("PUB _INBOX.t 3\r\nnow\r\n");
    svc.sync();
    let back = read_until(&mut req, "now", Duration::from_secs(3));
    assert!(
        back.contains("MSG _INBOX.t 2 3\r\nnow"),
        "reply crossed back: {back}"
    );
}

/// A leaf node on its own network: the spoke logs in to the hub with a credentials file
/// whose user is bound to hub account A; its messages reach A's subscribers and not B's,
/// and A's interest reaches the spoke's clients.
#[test]
fn leaf_node_with_credentials_on_private_network() {
    let Some(mut lab) = netns::lab("lf") else {
        return;
    };
    let (nh, nl) = (lab.node(31), lab.node(32));
    let dir = tempfile::tempdir().expect("tempdir");
    let creds = dir.path().join("leaf.creds");
    let user_key = common::write_creds(&creds);
    let hub_conf = format!(
        "server_name: hub\nlisten: {a}:4222\nhttp: {a}:8222\naccounts {{\n  A {{ users [ {{user: a, password: a}}, {{nkey: {user_key}}} ] }}\n  B {{ users [ {{user: b, password: b}} ] }}\n}}\nleafnodes {{\n  listen: {a}:7422\n}}\n",
        a = addr(31)
    );
    let leaf_conf = format!(
        "server_name: spoke\nlisten: {a}:4222\nhttp: {a}:8222\nleafnodes {{\n  remotes [ {{ url: \"nats-leaf://{hub}:7422\", credentials: \"{}\" }} ]\n}}\n",
        creds.display(),
        a = addr(32),
        hub = addr(31)
    );
    let bin = Path::new(NATRIX);
    let _hub = lab.start(bin, &nh, 31, &hub_conf);
    let _leaf = lab.start(bin, &nl, 32, &leaf_conf);
    let z = lab.wait_json(31, "/leafz", Duration::from_secs(15), |v| {
        v["leafnodes"].as_u64() == Some(1)
    });
    assert_eq!(z["leafs"][0]["account"], "A", "{z}");
    assert_eq!(z["leafs"][0]["ip"], addr(32), "{z}");

    let mut in_a = lab.client_as(31, "\"user\":\"a\",\"pass\":\"a\",");
    let mut in_b = lab.client_as(31, "\"user\":\"b\",\"pass\":\"b\",");
    in_a.send("SUB edge.> 1\r\n");
    in_b.send("SUB edge.> 1\r\n");
    in_a.sync();
    in_b.sync();
    lab.wait_json(32, "/leafz?subs=1", Duration::from_secs(5), |v| {
        v["leafs"][0]["subscriptions_list"]
            .as_array()
            .is_some_and(|l| l.iter().any(|s| s == "edge.>"))
    });
    let mut spoke = lab.client(32);
    spoke.send("SUB hub.cmd 1\r\nPUB edge.temp 2\r\n21\r\n");
    spoke.sync();
    assert_eq!(
        count_msgs(&mut in_a, "edge.temp", 1),
        1,
        "A gets the leaf's message"
    );
    assert_eq!(count_msgs(&mut in_b, "edge.temp", 0), 0, "B does not");
    lab.wait_json(31, "/leafz?subs=1", Duration::from_secs(5), |v| {
        v["leafs"][0]["subscriptions_list"]
            .as_array()
            .is_some_and(|l| l.iter().any(|s| s == "hub.cmd"))
    });
    in_a.send("PUB hub.cmd 2\r\non\r\n");
    in_a.sync();
    assert_eq!(
        count_msgs(&mut spoke, "hub.cmd", 1),
        1,
        "A's message reaches the leaf"
    );
}
