//! Reload: which option changes a running server may apply, and nats-server's wording for
//! the ones it may not.

mod common;

use common::load_ok;
use natrix_config::diff;

#[test]
fn same_config_is_an_empty_plan() {
    let a = load_ok("port: 4222\nmax_payload: 1MB");
    let plan = diff(&a, &a.clone());
    assert!(plan.is_empty(), "{plan:?}");
    assert!(plan.is_allowed());
}

#[test]
fn reloadable_options() {
    let a = load_ok("port: 4222");
    let b = load_ok(
        "port: 4222
         debug: true
         trace: true
         logtime: false
         max_payload: 2MB
         max_connections: 10
         max_control_line: 8KB
         ping_interval: \"30s\"
         ping_max: 5
         write_deadline: \"3s\"
         authorization { users: [{user: a, password: b}] }
         client_advertise: \"x:1\"
         log_file: \"/tmp/x.log\"
         pid_file: \"/tmp/x.pid\"",
    );
    let plan = diff(&a, &b);
    assert!(plan.is_allowed(), "{:?}", plan.refused);
    for field in [
        "Debug",
        "Trace",
        "Logtime",
        "MaxPayload",
        "MaxConn",
        "MaxControlLine",
        "PingInterval",
        "MaxPingsOut",
        "WriteDeadline",
        "Users",
        "ClientAdvertise",
        "LogFile",
        "PidFile",
    ] {
        assert!(
            plan.changed(field),
            "{field} should be reloadable: {plan:?}"
        );
    }
    let mp = plan
        .reloadable
        .iter()
        .find(|c| c.field == "MaxPayload")
        .unwrap();
    assert_eq!((mp.old.as_str(), mp.new.as_str()), ("1048576", "2097152"));
    let pi = plan
        .reloadable
        .iter()
        .find(|c| c.field == "PingInterval")
        .unwrap();
    assert_eq!((pi.old.as_str(), pi.new.as_str()), ("2m0s", "30s"));
}

#[test]
fn refusals_use_nats_server_wording() {
    let a = load_ok("port: 4222");
    let cases = [
        (
            "port: 4333",
            "config reload not supported for Port: old=4222, new=4333",
        ),
        (
            "host: 127.0.0.1",
            "config reload not supported for Host: old=0.0.0.0, new=127.0.0.1",
        ),
        (
            "server_name: b",
            "config reload not supported for ServerName: old=, new=b",
        ),
        (
            "max_pending: 1MB",
            "config reload not supported for MaxPending: old=67108864, new=1048576",
        ),
        (
            "max_subscriptions: 10",
            "config reload not supported for MaxSubs: old=0, new=10",
        ),
        (
            "lame_duck_duration: \"1m\"",
            "config reload not supported for LameDuckDuration: old=2m0s, new=1m0s",
        ),
        (
            "lame_duck_grace_period: \"1s\"",
            "config reload not supported for LameDuckGracePeriod: old=10s, new=1s",
        ),
        (
            "http_port: 8222",
            "config reload not supported for HTTPPort: old=0, new=8222",
        ),
        (
            "no_header_support: true",
            "config reload not supported for NoHeaderSupport: old=false, new=true",
        ),
        (
            "gateway { name: g, port: 7222 }",
            "config reload not supported for Gateway: old={...}, new={...}",
        ),
        (
            "websocket { port: 8080 }",
            "config reload not supported for Websocket: old={...}, new={...}",
        ),
    ];
    for (src, want) in cases {
        let b = load_ok(&format!("port: 4222\n{src}"));
        let plan = diff(&a, &b);
        assert_eq!(plan.error(), Some(want), "{src}");
    }
}

#[test]
fn random_port_in_the_new_config_keeps_the_old_one() {
    let a = load_ok("port: 4222");
    let b = load_ok("port: -1");
    assert!(diff(&a, &b).is_empty());
}

#[test]
fn routes_are_diffed() {
    let a = load_ok("cluster { port: 6222, routes: [\"nats://a:6222\", \"nats://b:6222\"] }");
    let b = load_ok("cluster { port: 6222, routes: [\"nats://b:6222\", \"nats://c:6222\"] }");
    let plan = diff(&a, &b);
    assert!(plan.is_allowed(), "{plan:?}");
    assert!(plan.changed("Routes"));
    assert_eq!(plan.routes_added.len(), 1);
    assert_eq!(plan.routes_added[0].host, "c");
    assert_eq!(plan.routes_removed[0].host, "a");
}

#[test]
fn cluster_settings_reload_but_not_its_listener() {
    let a = load_ok("cluster { name: c, port: 6222, pool_size: 3 }");
    let b = load_ok("cluster { name: c, port: 6222, pool_size: 5, no_advertise: true }");
    let plan = diff(&a, &b);
    assert!(plan.is_allowed());
    assert!(plan.changed("Cluster"));
    let c = load_ok("cluster { name: c, port: 6333 }");
    assert_eq!(
        diff(&a, &c).error(),
        Some("config reload not supported for cluster port: old=6222, new=6333")
    );
    let d = load_ok("cluster { name: c, host: 127.0.0.1, port: 6222 }");
    assert_eq!(
        diff(&a, &d).error(),
        Some("config reload not supported for cluster host: old=0.0.0.0, new=127.0.0.1")
    );
}

#[test]
fn tls_reloads() {
    let a = load_ok("tls { cert_file: a.pem, key_file: a.key }");
    let b = load_ok("tls { cert_file: b.pem, key_file: b.key, timeout: 5 }");
    let plan = diff(&a, &b);
    assert!(plan.is_allowed(), "{plan:?}");
    assert!(plan.changed("TLSConfig"));
    assert!(plan.changed("TLSTimeout"));
    assert!(plan.changed("AuthTimeout"));
}

#[test]
fn jetstream_limits_may_grow_but_not_shrink() {
    let a = load_ok("jetstream { store_dir: /js, max_mem: 1G, max_file: 10G }");
    let grow = load_ok("jetstream { store_dir: /js, max_mem: 2G, max_file: 10G }");
    let plan = diff(&a, &grow);
    assert!(plan.is_allowed());
    assert!(plan.changed("JetStreamMaxMemory"));
    let shrink = load_ok("jetstream { store_dir: /js, max_mem: 512M, max_file: 10G }");
    assert_eq!(
        diff(&a, &shrink).error(),
        Some("config reload not supported for decreasing jetstream max memory and store")
    );
    let moved = load_ok("jetstream { store_dir: /other, max_mem: 1G, max_file: 10G }");
    assert_eq!(
        diff(&a, &moved).error(),
        Some("config reload not supported for jetstream storage directory")
    );
    let off = load_ok("jetstream: false");
    let plan = diff(&a, &off);
    assert!(plan.is_allowed(), "disabling JetStream reloads: {plan:?}");
    assert!(plan.changed("JetStream"));
}

#[test]
fn no_auth_user_rules() {
    let a = load_ok("authorization { users: [{user: a}, {user: b}] }\nno_auth_user: a");
    // Removing both the setting and the user is fine.
    let b = load_ok("authorization { users: [{user: b}] }");
    assert!(diff(&a, &b).is_allowed());
    // Removing only the setting is not.
    let c = load_ok("authorization { users: [{user: a}, {user: b}] }");
    assert_eq!(
        diff(&a, &c).error(),
        Some("config reload not supported for NoAuthUser: old=a, new=")
    );
}

#[test]
fn secrets_are_not_echoed() {
    let a = load_ok("authorization { user: u, password: old-secret }");
    let b = load_ok("authorization { user: u, password: new-secret }");
    let plan = diff(&a, &b);
    assert!(plan.changed("Password"));
    assert!(!format!("{plan:?}").contains("secret"));
}
