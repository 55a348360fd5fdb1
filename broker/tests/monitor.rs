//! Monitoring endpoints against the reference nats-server: the same scenario (two users,
//! subscriptions with a queue group, traffic, a closed connection) runs on both servers,
//! then every endpoint is fetched from each and compared.
//!
//! What is compared: the JSON *shape* (every key path and its JSON type), the values that
//! must agree (counters, limits, per-connection figures), and the exact text and status
//! of error answers. Shape differences fail unless listed in [`ALLOWED_SHAPE`], each one
//! explained in docs/compatibility.md.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::{NATRIX, Proc, Raw, http_get, reference_binary, start};
use serde_json::Value;

const CONF: &str = r#"
server_name: mon1
authorization {
  users = [
    { user: alice, password: a1 }
    { user: bob, password: b1 }
  ]
}
accounts {
  ORDERS: { users: [ { user: carl, password: c1 } ] }
}
"#;

/// Key paths one side has and the other does not, with the reason in
/// docs/compatibility.md ("Monitoring" section).
const ALLOWED_SHAPE: &[&str] = &[
    "accountz_orders.account_detail.imports",
    "accountz_orders.account_detail.imports[]",
    "accountz_orders.account_detail.imports[].account",
    "accountz_orders.account_detail.imports[].invalid",
    "accountz_orders.account_detail.imports[].local_subject",
    "accountz_orders.account_detail.imports[].share",
    "accountz_orders.account_detail.imports[].subject",
    "accountz_orders.account_detail.imports[].to",
    "accountz_orders.account_detail.imports[].tracking",
    "accountz_orders.account_detail.imports[].type",
    // Build identity: natrix has no Go build commit.
    "varz.git_commit",
    // nats-server's feature flags are its own experiments; natrix has none.
    "varz.feature_flags.js_ack_fc_v2",
    "varz.feature_flags.js_api_reply_v2",
    "varz.feature_flags.js_raft_delete_range",
    "varz.feature_flags.js_snapshot_sources",
    // nats-server's system account runs internal services ($SYS.REQ.*) that it imports
    // into every account; natrix has no system services yet.
    "accountz_g.account_detail.imports",
    "accountz_g.account_detail.imports[]",
    "accountz_g.account_detail.imports[].account",
    "accountz_g.account_detail.imports[].invalid",
    "accountz_g.account_detail.imports[].local_subject",
    "accountz_g.account_detail.imports[].share",
    "accountz_g.account_detail.imports[].subject",
    "accountz_g.account_detail.imports[].to",
    "accountz_g.account_detail.imports[].tracking",
    "accountz_g.account_detail.imports[].type",
];

fn shape(prefix: &str, v: &Value, out: &mut BTreeSet<String>) {
    match v {
        Value::Object(m) => {
            for (k, x) in m {
                let p = format!("{prefix}.{k}");
                out.insert(p.clone());
                shape(&p, x, out);
            }
        }
        Value::Array(a) => {
            let p = format!("{prefix}[]");
            for x in a {
                out.insert(p.clone());
                shape(&p, x, out);
            }
        }
        _ => {}
    }
}

/// Key paths with the JSON type of their value, so a number that became a string shows.
fn typed_shape(prefix: &str, v: &Value, out: &mut BTreeSet<String>) {
    let mut paths = BTreeSet::new();
    shape(prefix, v, &mut paths);
    for p in paths {
        let t = lookup(v, p.strip_prefix(prefix).unwrap_or(&p)).map_or("array-elem", kind);
        out.insert(format!("{p}:{t}"));
    }
}

fn kind(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "bool",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

/// Follows `.a.b` (no array steps) through `v`.
fn lookup<'a>(v: &'a Value, path: &str) -> Option<&'a Value> {
    if path.contains("[]") {
        return None;
    }
    path.split('.')
        .filter(|s| !s.is_empty())
        .try_fold(v, |v, k| match k.parse::<usize>() {
            Ok(i) => v.get(i),
            Err(_) => v.get(k),
        })
}

struct Scenario {
    server: Proc,
    /// Kept open for the duration of the comparison.
    _alice: Raw,
    _bob: Raw,
    _carl: Raw,
}

fn scenario(bin: &std::path::Path) -> Scenario {
    let server = start(bin, CONF, true);
    let mut alice = Raw::connect(server.port);
    alice.send(concat!(
        r#"CONNECT {"verbose":false,"pedantic":false,"user":"alice","pass":"a1","name":"alice-app","lang":"rust","version":"9.9.9","protocol":1,"headers":true}"#,
        "\r\nSUB orders.* 1\r\nSUB orders.new workers 2\r\nSUB audit.> 3\r\n"
    ));
    assert!(alice.sync().contains("PONG"));
    let mut bob = Raw::connect(server.port);
    bob.send(concat!(
        r#"CONNECT {"verbose":false,"pedantic":false,"user":"bob","pass":"b1","name":"bob-app","lang":"go","version":"1.2.3","protocol":1,"headers":true}"#,
        "\r\nPUB orders.new 5\r\nhello\r\nPUB orders.old 3\r\nabc\r\nPUB audit.x.y 2\r\nhi\r\n"
    ));
    assert!(bob.sync().contains("PONG"));
    // alice gets orders.new twice (plain sub and queue), orders.old and audit.x.y once.
    let got = alice.sync();
    assert_eq!(got.matches("MSG ").count(), 4, "alice got {got:?}");
    // A third connection that leaves, for state=closed.
    let mut carol = Raw::connect(server.port);
    carol.send(concat!(
        r#"CONNECT {"verbose":false,"user":"bob","pass":"b1","name":"carol","protocol":1}"#,
        "\r\n"
    ));
    carol.sync();
    drop(carol);
    // carl lives in ORDERS: he sees his own orders.* traffic and none of $G's.
    let mut carl = Raw::connect(server.port);
    carl.send(concat!(
        r#"CONNECT {"verbose":false,"pedantic":false,"user":"carl","pass":"c1","name":"carl-app","lang":"python","version":"3.0","protocol":1,"headers":true}"#,
        "\r\nSUB orders.* 9\r\nPUB orders.mine 4\r\nmine\r\n"
    ));
    let got = carl.sync();
    assert_eq!(
        got.matches("MSG orders.mine 9 4").count(),
        1,
        "carl got {got:?}"
    );
    std::thread::sleep(Duration::from_millis(300));
    Scenario {
        server,
        _alice: alice,
        _bob: bob,
        _carl: carl,
    }
}

/// The endpoints compared, with the name used in shape paths.
const ENDPOINTS: &[(&str, &str)] = &[
    ("varz", "/varz"),
    ("connz", "/connz"),
    ("connz_subs", "/connz?subs=1&auth=1"),
    ("connz_detail", "/connz?subs=detail&sort=msgs_to"),
    ("connz_closed", "/connz?state=closed&auth=1"),
    ("connz_all", "/connz?state=all&sort=cid&limit=2&offset=1"),
    ("connz_user", "/connz?user=bob&state=all"),
    ("subsz", "/subsz"),
    ("accountz", "/accountz"),
    ("accountz_g", "/accountz?acc=%24G"),
    ("accountz_orders", "/accountz?acc=ORDERS"),
    ("connz_orders", "/connz?acc=ORDERS&auth=1&subs=1"),
    ("accstatz", "/accstatz"),
    ("routez", "/routez"),
    ("gatewayz", "/gatewayz"),
    ("leafz", "/leafz"),
    ("jsz", "/jsz"),
    ("healthz", "/healthz"),
    ("healthz_js", "/healthz?js-enabled-only=true"),
];

/// Values that must agree, as (endpoint, path).
const SAME_VALUES: &[(&str, &str)] = &[
    ("varz", ".server_name"),
    ("varz", ".host"),
    ("varz", ".proto"),
    ("varz", ".auth_required"),
    ("varz", ".max_connections"),
    ("varz", ".ping_interval"),
    ("varz", ".ping_max"),
    ("varz", ".http_host"),
    ("varz", ".http_base_path"),
    ("varz", ".https_port"),
    ("varz", ".auth_timeout"),
    ("varz", ".max_control_line"),
    ("varz", ".max_payload"),
    ("varz", ".max_pending"),
    ("varz", ".tls_timeout"),
    ("varz", ".write_deadline"),
    ("varz", ".cores"),
    ("varz", ".connections"),
    ("varz", ".total_connections"),
    ("varz", ".routes"),
    ("varz", ".remotes"),
    ("varz", ".leafnodes"),
    ("varz", ".in_msgs"),
    ("varz", ".in_bytes"),
    ("varz", ".out_msgs"),
    ("varz", ".out_bytes"),
    ("varz", ".in_client_msgs"),
    ("varz", ".out_client_bytes"),
    ("varz", ".slow_consumers"),
    ("varz", ".stale_connections"),
    ("varz", ".system_account"),
    ("varz", ".cluster"),
    ("varz", ".jetstream"),
    ("connz", ".num_connections"),
    ("connz", ".total"),
    ("connz", ".limit"),
    ("connz_closed", ".num_connections"),
    ("connz_all", ".num_connections"),
    ("connz_all", ".total"),
    ("connz_all", ".offset"),
    ("connz_all", ".limit"),
    ("connz_user", ".total"),
    ("accountz", ".system_account"),
    ("accountz", ".accounts"),
    ("accountz_g", ".account_detail.account_name"),
    ("accountz_g", ".account_detail.client_connections"),
    ("accountz_g", ".account_detail.jetstream_enabled"),
    ("accountz_orders", ".account_detail.account_name"),
    ("accountz_orders", ".account_detail.client_connections"),
    ("connz_orders", ".num_connections"),
    ("routez", ".num_routes"),
    ("routez", ".routes"),
    ("gatewayz", ".outbound_gateways"),
    ("leafz", ".leafs"),
    ("jsz", ".disabled"),
    ("jsz", ".config"),
    ("jsz", ".api"),
    ("healthz", ""),
    ("healthz_js", ""),
];

/// Per-connection fields that must agree (connections matched by name).
const CONN_FIELDS: &[&str] = &[
    "kind",
    "type",
    "ip",
    "name",
    "lang",
    "version",
    "in_msgs",
    "out_msgs",
    "in_bytes",
    "out_bytes",
    "subscriptions",
    "subscriptions_list",
    "authorized_user",
    "account",
    "name_tag",
    "reason",
    "pending_bytes",
];

fn by_name(v: &Value) -> Vec<(String, &Value)> {
    let mut conns: Vec<(String, &Value)> = v["connections"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|c| (c["name"].as_str().unwrap_or_default().to_owned(), c))
                .collect()
        })
        .unwrap_or_default();
    conns.sort_by(|a, b| a.0.cmp(&b.0));
    conns
}

/// Sorts arrays of strings so that order of subscriptions does not matter.
fn normalized(v: &Value) -> Value {
    match v {
        Value::Array(a) if a.iter().all(Value::is_string) => {
            let mut s: Vec<&str> = a.iter().filter_map(Value::as_str).collect();
            s.sort_unstable();
            Value::from(s)
        }
        Value::Object(m) => {
            Value::Object(m.iter().map(|(k, x)| (k.clone(), normalized(x))).collect())
        }
        other => other.clone(),
    }
}

#[test]
fn endpoints_match_nats_server() {
    let Some(reference) = reference_binary() else {
        eprintln!("skipped: reference nats-server not installed");
        return;
    };
    let ours = scenario(std::path::Path::new(NATRIX));
    let theirs = scenario(&reference);
    let (op, tp) = (
        ours.server.http_port.expect("natrix http port"),
        theirs.server.http_port.expect("nats-server http port"),
    );
    let mut problems = Vec::new();
    let allowed: BTreeSet<&str> = ALLOWED_SHAPE.iter().copied().collect();
    let mut fetched = Vec::new();
    for (name, path) in ENDPOINTS {
        let a = http_get(op, path);
        let b = http_get(tp, path);
        if a.status != b.status || a.content_type != b.content_type {
            problems.push(format!(
                "{path}: status/content-type natrix {} {:?} vs nats-server {} {:?}",
                a.status, a.content_type, b.status, b.content_type
            ));
            continue;
        }
        let (ja, jb) = (a.json(), b.json());
        let (mut sa, mut sb) = (BTreeSet::new(), BTreeSet::new());
        typed_shape(name, &ja, &mut sa);
        typed_shape(name, &jb, &mut sb);
        for d in sa.symmetric_difference(&sb) {
            let path_only = d.rsplit_once(':').map_or(d.as_str(), |(p, _)| p);
            if !allowed.contains(path_only) {
                let side = if sa.contains(d) {
                    "only natrix"
                } else {
                    "only nats-server"
                };
                problems.push(format!("{path}: {side}: {d}"));
            }
        }
        fetched.push((*name, ja, jb));
    }
    for (ep, path) in SAME_VALUES {
        let Some((_, a, b)) = fetched.iter().find(|(n, _, _)| n == ep) else {
            continue;
        };
        let (va, vb) = (lookup(a, path), lookup(b, path));
        if va.map(normalized) != vb.map(normalized) {
            problems.push(format!("{ep}{path}: natrix {va:?} vs nats-server {vb:?}"));
        }
    }
    for ep in [
        "connz",
        "connz_subs",
        "connz_detail",
        "connz_closed",
        "connz_user",
    ] {
        let Some((_, a, b)) = fetched.iter().find(|(n, _, _)| *n == ep) else {
            continue;
        };
        let (ca, cb) = (by_name(a), by_name(b));
        let names = |c: &[(String, &Value)]| c.iter().map(|x| x.0.clone()).collect::<Vec<_>>();
        if names(&ca) != names(&cb) {
            problems.push(format!(
                "{ep}: connections {:?} vs {:?}",
                names(&ca),
                names(&cb)
            ));
            continue;
        }
        for ((name, x), (_, y)) in ca.iter().zip(&cb) {
            for f in CONN_FIELDS {
                if x.get(f).map(normalized) != y.get(f).map(normalized) {
                    problems.push(format!(
                        "{ep} {name}.{f}: natrix {:?} vs nats-server {:?}",
                        x.get(f),
                        y.get(f)
                    ));
                }
            }
            let subs = |v: &Value| {
                let mut d: Vec<String> = v["subscriptions_list_detail"]
                    .as_array()
                    .map(|a| {
                        a.iter()
                            .map(|s| {
                                format!(
                                    "{} {} {} {}",
                                    s["subject"], s["qgroup"], s["sid"], s["msgs"]
                                )
                            })
                            .collect()
                    })
                    .unwrap_or_default();
                d.sort();
                d
            };
            if subs(x) != subs(y) {
                problems.push(format!(
                    "{ep} {name} subscription detail: {:?} vs {:?}",
                    subs(x),
                    subs(y)
                ));
            }
        }
    }
    assert!(problems.is_empty(), "differences:\n{}", problems.join("\n"));
}

/// Bad requests get nats-server's status, content type and text, byte for byte.
#[test]
fn errors_match_nats_server() {
    let Some(reference) = reference_binary() else {
        eprintln!("skipped: reference nats-server not installed");
        return;
    };
    let ours = start(std::path::Path::new(NATRIX), "", true);
    let theirs = start(&reference, "", true);
    let mut problems = Vec::new();
    for path in [
        "/connz?sort=bogus",
        "/connz?sort=stop",
        "/connz?sort=reason",
        "/connz?state=bogus",
        "/connz?subs=xyz",
        "/connz?auth=maybe",
        "/connz?limit=abc",
        "/connz?offset=1x",
        "/connz?cid=abc",
        "/subsz?subs=detail",
        "/subsz?offset=abc",
        "/subsz?test=foo.*&subs=1",
        "/accountz?acc=nope",
        "/healthz?js-enabled-only=xyz",
        "/nope",
        "/varzz",
    ] {
        let a = http_get(ours.http_port.expect("port"), path);
        let b = http_get(theirs.http_port.expect("port"), path);
        if (a.status, &a.content_type, a.body.trim_end())
            != (b.status, &b.content_type, b.body.trim_end())
        {
            problems.push(format!(
                "{path}: natrix {} {:?} {:?} vs nats-server {} {:?} {:?}",
                a.status, a.content_type, a.body, b.status, b.content_type, b.body
            ));
        }
    }
    assert!(problems.is_empty(), "differences:\n{}", problems.join("\n"));
}

/// The names prometheus-nats-exporter would derive from nats-server's endpoints are all
/// in natrix's native `/metrics`. The exporter maps every top-level number of an
/// endpoint's JSON to `gnatsd_<endpoint>_<key>`, labels `server_id`, `server_name` and
/// `version` as `value` gauges, and sums connz over connections; the exporter itself is
/// not installable here (its Go module is refused by the proxy), so its rule is applied
/// to nats-server's JSON directly.
#[test]
fn native_metrics_cover_exporter_names() {
    let Some(reference) = reference_binary() else {
        eprintln!("skipped: reference nats-server not installed");
        return;
    };
    let ours = scenario(std::path::Path::new(NATRIX));
    let theirs = start(&reference, CONF, true);
    let tp = theirs.http_port.expect("port");
    let mut expected = BTreeSet::new();
    for ep in ["varz", "subsz", "routez", "leafz", "jsz"] {
        let v = http_get(tp, &format!("/{ep}")).json();
        for (k, x) in v.as_object().into_iter().flatten() {
            if x.is_number() {
                expected.insert(format!("gnatsd_{ep}_{k}"));
            }
        }
    }
    for k in ["server_id", "server_name", "version"] {
        expected.insert(format!("gnatsd_varz_{k}"));
    }
    for k in [
        "num_connections",
        "total",
        "offset",
        "limit",
        "pending_bytes",
        "subscriptions",
        "in_bytes",
        "out_bytes",
        "in_msgs",
        "out_msgs",
    ] {
        expected.insert(format!("gnatsd_connz_{k}"));
    }
    let reply = http_get(ours.server.http_port.expect("port"), "/metrics");
    assert_eq!(reply.status, 200);
    assert!(
        reply.content_type.starts_with("text/plain"),
        "{}",
        reply.content_type
    );
    let ours_names: BTreeSet<String> = reply
        .body
        .lines()
        .filter(|l| !l.starts_with('#') && !l.is_empty())
        .filter_map(|l| l.split(['{', ' ']).next().map(str::to_owned))
        .collect();
    let missing: Vec<&String> = expected.difference(&ours_names).collect();
    assert!(missing.is_empty(), "missing from /metrics: {missing:?}");
    // Values are live: alice and bob are connected, 3 messages were published.
    let line = |name: &str| {
        reply
            .body
            .lines()
            .find(|l| l.starts_with(&format!("{name}{{")))
            .and_then(|l| l.rsplit(' ').next())
            .map(str::to_owned)
    };
    assert_eq!(line("gnatsd_varz_connections").as_deref(), Some("3"));
    assert_eq!(line("gnatsd_varz_in_msgs").as_deref(), Some("4"));
    assert_eq!(line("gnatsd_connz_subscriptions").as_deref(), Some("4"));
    assert!(
        reply.body.contains("account=\"ORDERS\"} 1\n"),
        "{}",
        reply.body
    );
    assert!(
        reply.body.contains("natrix_account_received_msgs_total{"),
        "{}",
        reply.body
    );
}
