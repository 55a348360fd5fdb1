//! Every sample config under tests/configs loads, and means what it says.

mod common;

use std::time::Duration;

use common::{config_dir, load};
use natrix_config::conf;
use natrix_config::options::{
    DeleteMode, DirResolverKind, Options, ResolverOpts, WriteTimeoutPolicy,
};

#[test]
fn every_sample_config_loads_without_warnings() {
    let mut count = 0;
    for entry in std::fs::read_dir(config_dir()).expect("configs dir") {
        let path = entry.expect("entry").path();
        if path.extension().and_then(|e| e.to_str()) != Some("conf") {
            continue;
        }
        let name = path
            .file_name()
            .and_then(|n| n.to_str())
            .unwrap_or_default();
        let (_, warnings) = load(name).unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(
            warnings.is_empty(),
            "{name}: unexpected warnings {warnings:?}"
        );
        count += 1;
    }
    assert!(count >= 14, "only {count} sample configs found");
}

#[test]
fn simple() {
    let (o, _) = load("simple.conf").unwrap();
    assert_eq!(o.server_name, "natrix-a");
    assert_eq!((o.host.as_str(), o.port), ("127.0.0.1", 4333));
    assert_eq!((o.http_host.as_str(), o.http_port), ("127.0.0.1", 8333));
    assert!(o.logtime && o.logtime_utc && !o.debug && !o.trace);
    assert_eq!(o.max_payload, 2 * 1024 * 1024);
    assert_eq!(o.max_connections, 100);
    assert!(o.config_digest.unwrap().starts_with("fnv1a64:"));
}

#[test]
fn sizes_and_durations() {
    let (o, _) = load("sizes_and_durations.conf").unwrap();
    assert_eq!(o.max_payload, 512 * 1024);
    assert_eq!(o.max_pending, 64 * 1024 * 1024);
    assert_eq!(o.max_control_line, 2000);
    assert_eq!(o.max_subscriptions, 1000);
    assert_eq!(o.max_sub_tokens, 16);
    assert_eq!(o.ping_interval, Duration::from_secs(30));
    assert_eq!(o.ping_max, 3);
    assert_eq!(o.write_deadline, Duration::from_millis(2500));
    assert_eq!(o.lame_duck_duration, Duration::from_secs(90));
    assert_eq!(o.lame_duck_grace_period, Duration::from_secs(5));
    assert_eq!(o.auth_timeout, Duration::from_millis(1500));
}

#[test]
fn cluster() {
    let (o, _) = load("cluster.conf").unwrap();
    let c = &o.cluster;
    assert_eq!(c.name, "east");
    assert_eq!((c.host.as_str(), c.port), ("0.0.0.0", 6222));
    assert_eq!(
        (c.username.as_str(), c.password.as_str()),
        ("route_user", "route secret")
    );
    assert_eq!(c.auth_timeout, Duration::from_secs(2));
    assert!(c.no_advertise);
    assert_eq!(c.connect_retries, 30);
    assert_eq!(c.pool_size, 5);
    assert_eq!(c.compression.mode, "s2_fast");
    let perms = c.permissions.as_ref().unwrap();
    assert_eq!(
        perms.import.as_ref().unwrap().allow.as_deref(),
        Some(&["east.>".to_string()][..])
    );
    assert_eq!(
        perms.export.as_ref().unwrap().deny.as_deref(),
        Some(&["private.>".to_string()][..])
    );
    assert_eq!(o.routes.len(), 2);
    let r = &o.routes[0];
    assert_eq!(r.scheme, "nats-route");
    assert_eq!(r.username.as_deref(), Some("route_user"));
    assert_eq!(r.password.as_deref(), Some("route secret"));
    assert_eq!(r.host, "east-1.example.internal");
    assert_eq!(r.port, Some(6222));
}

#[test]
fn users_roles_includes_and_variables() {
    let (o, _) = load("auth_users.conf").unwrap();
    assert!(o.auth_block_defined);
    assert_eq!(o.auth_timeout, Duration::from_secs(3));
    assert_eq!(o.no_auth_user, "guest");
    let user = |n: &str| o.users.iter().find(|u| u.username == n).unwrap();
    assert_eq!(o.users.len(), 5);
    assert!(user("ops").password.starts_with("$2a$11$"));
    let ops = user("ops").permissions.as_ref().unwrap();
    assert_eq!(
        ops.publish.as_ref().unwrap().allow.as_deref(),
        Some(&[">".to_string()][..])
    );
    // allow_responses turns off the blanket publish allow only when publish is unset; here
    // publish has its own list.
    let shop = user("shop").permissions.as_ref().unwrap();
    assert_eq!(shop.response.unwrap().max_msgs, 1);
    assert_eq!(
        shop.publish.as_ref().unwrap().allow.as_ref().unwrap().len(),
        2
    );
    let auditor = user("auditor").permissions.as_ref().unwrap();
    assert_eq!(
        auditor.publish.as_ref().unwrap().deny.as_deref(),
        Some(&[">".to_string()][..])
    );
    assert_eq!(auditor.publish.as_ref().unwrap().allow, None);
    let svc = user("svc");
    let sp = svc.permissions.as_ref().unwrap();
    assert_eq!(sp.response.unwrap().max_msgs, 3);
    assert_eq!(sp.response.unwrap().expires, Some(Duration::from_secs(30)));
    // Responses only: the publish allow list is empty, not absent.
    assert_eq!(sp.publish.as_ref().unwrap().allow.as_deref(), Some(&[][..]));
    assert_eq!(
        svc.allowed_connection_types.as_deref(),
        Some(&["STANDARD".to_string(), "WEBSOCKET".to_string()][..])
    );
    // guest has no permissions of its own and gets the defaults.
    let guest = user("guest").permissions.as_ref().unwrap();
    assert_eq!(
        guest.subscribe.as_ref().unwrap().allow.as_ref().unwrap(),
        &["public.>".to_string(), "_INBOX.>".to_string()]
    );
}

#[test]
fn includes_are_recorded_for_the_digest() {
    let doc = conf::parse_file(&common::config("auth_users.conf")).unwrap();
    let names: Vec<String> = doc
        .files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(names, ["auth_users.conf", "users.conf", "roles.conf"]);
}

#[test]
fn jetstream() {
    let (o, _) = load("jetstream.conf").unwrap();
    let js = &o.jetstream;
    assert!(js.enabled);
    assert_eq!(js.store_dir, "/var/lib/natrix/js");
    assert_eq!(js.max_memory, 1_000_000_000);
    assert_eq!(js.max_store, 10 << 30);
    assert_eq!(js.domain, "hub");
    assert_eq!(js.sync_interval, Duration::from_secs(30));
    assert_eq!(js.unique_tag, "az:");
    assert_eq!(js.limits.max_ack_pending, 10000);
    assert_eq!(js.limits.duplicate_window, Duration::from_secs(120));
    assert_eq!(o.port, 4222);
}

#[test]
fn leafnodes() {
    let (o, _) = load("leafnodes.conf").unwrap();
    let l = &o.leafnode;
    assert_eq!(l.port, 7422);
    assert_eq!(l.users.len(), 2);
    assert_eq!(l.users[1].account, "B");
    assert_eq!(l.reconnect_interval, Duration::from_secs(5));
    assert_eq!(l.compression.mode, "off");
    assert_eq!(l.remotes.len(), 2);
    // A remote URL without a port gets the leafnode default.
    assert_eq!(l.remotes[0].urls[1].port, Some(7422));
    assert_eq!(l.remotes[0].deny_imports, ["private.>"]);
    assert_eq!(l.remotes[1].urls[0].scheme, "tls");
    assert_eq!(l.remotes[1].compression.mode, "s2_auto");
}

#[test]
fn gateway() {
    let (o, _) = load("gateway.conf").unwrap();
    let g = &o.gateway;
    assert_eq!(g.name, "west");
    assert_eq!(g.port, 7222);
    assert_eq!(g.username, "gw");
    assert!(g.reject_unknown);
    assert_eq!(g.gateways.len(), 2);
    assert_eq!(g.gateways[0].urls.len(), 2);
    assert_eq!(g.gateways[1].urls[0].host, "south.example.internal");
}

#[test]
fn websocket_and_mqtt() {
    let (o, _) = load("websocket_mqtt.conf").unwrap();
    assert!(o.jetstream.enabled);
    let w = &o.websocket;
    assert_eq!(w.port, 8080);
    assert_eq!(w.host, "0.0.0.0");
    assert!(w.no_tls && w.compression && !w.same_origin);
    assert_eq!(w.handshake_timeout, Duration::from_secs(4));
    assert_eq!(
        w.headers,
        [("X-Served-By".to_string(), "natrix".to_string())]
    );
    let m = &o.mqtt;
    assert_eq!((m.host.as_str(), m.port), ("127.0.0.1", 1883));
    assert_eq!(m.ack_wait, Duration::from_secs(60));
    assert_eq!(m.max_ack_pending, 100);
}

#[test]
fn accounts_are_kept_raw_and_variables_are_not_unknown_fields() {
    let (o, _) = load("accounts.conf").unwrap();
    let accounts = o.accounts.unwrap();
    let app = accounts.value.as_map().unwrap().get("APP").unwrap();
    let users = app.value.as_map().unwrap().get("users").unwrap();
    assert_eq!(users.value.as_array().unwrap().len(), 2);
    assert_eq!(o.system_account, "SYS");
    assert_eq!(o.no_auth_user, "alice");
    assert_eq!(o.mappings.len(), 1);
    assert_eq!(o.mappings[0].src, "orders.*");
}

#[test]
fn json_like() {
    let (o, _) = load("json_like.conf").unwrap();
    assert_eq!(o.server_name, "json-style");
    assert_eq!(o.port, 4555);
    assert_eq!(o.http_port, 8555);
    assert!(o.debug);
    assert_eq!(o.authorization, "s3cret");
}

#[test]
fn environment_values_are_parsed_as_config() {
    let (o, _) = load("env.conf").unwrap();
    assert_eq!(o.port, 4999);
    assert_eq!(o.client_advertise, "nats.example.com:4222");
    assert_eq!(o.server_name, "from-a-variable");
}

#[test]
fn tls() {
    let (o, _) = load("tls.conf").unwrap();
    let t = o.tls.as_ref().unwrap();
    assert_eq!(t.cert_file, "./certs/server-cert.pem");
    assert!(t.verify);
    assert_eq!(t.timeout, Some(Duration::from_secs(3)));
    assert_eq!(t.min_version, "1.3");
    assert_eq!(t.pinned_certs.len(), 1);
    assert_eq!(o.tls_timeout, Duration::from_secs(3));
    // With TLS, the auth timeout defaults to the TLS timeout plus one second.
    assert_eq!(o.auth_timeout, Duration::from_secs(4));
}

#[test]
fn operator_mode() {
    let (o, _) = load("operator.conf").unwrap();
    assert_eq!(o.operators.len(), 1);
    assert_eq!(o.operator_jwts, o.operators);
    assert!(o.resolver.is_some());
    let Some(ResolverOpts::Dir(d)) = &o.resolver_opts else {
        panic!("a dir resolver: {:?}", o.resolver_opts);
    };
    assert_eq!(d.kind, DirResolverKind::Full);
    assert_eq!(d.dir.to_str(), Some("./jwt"));
    assert_eq!(d.delete, DeleteMode::NoDelete);
    assert_eq!(d.interval, Duration::from_secs(120));
    assert_eq!(o.resolver_preload.len(), 1);
}

#[test]
fn everything() {
    let (o, _) = load("everything.conf").unwrap();
    assert_eq!(o.server_name, "kitchen-sink");
    assert_eq!((o.host.as_str(), o.port), ("127.0.0.1", 4999));
    assert_eq!(o.client_advertise, "nats.example.com:4222");
    assert_eq!(o.server_tags, ["region:eu", "az:1"]);
    assert_eq!(
        o.server_metadata,
        [("team".to_string(), "platform".to_string())]
    );
    assert!(o.debug && o.trace && o.trace_verbose);
    assert!(!o.logtime && o.logtime_utc);
    assert_eq!(o.log_file, "/tmp/natrix.log");
    assert_eq!(o.log_size_limit, 100 << 20);
    assert_eq!(o.log_max_num, 5);
    assert_eq!(o.remote_syslog, "udp://127.0.0.1:514");
    assert_eq!(o.max_traced_msg_len, 256);
    assert_eq!(o.pid_file, "/tmp/natrix.pid");
    assert_eq!(o.ports_file_dir, "/tmp");
    assert_eq!(o.connect_error_reports, 10);
    assert_eq!(o.reconnect_error_reports, 5);
    assert_eq!(o.max_connections, 1000);
    assert_eq!(o.max_subscriptions, 500);
    assert_eq!(o.max_sub_tokens, 32);
    assert_eq!(o.max_payload, 4 << 20);
    assert_eq!(o.max_control_line, 8 << 10);
    assert_eq!(o.max_pending, 128 << 20);
    assert_eq!(o.ping_interval, Duration::from_secs(60));
    assert_eq!(o.ping_max, 4);
    assert_eq!(o.write_deadline, Duration::from_secs(5));
    assert_eq!(o.write_timeout, WriteTimeoutPolicy::Close);
    assert_eq!(o.lame_duck_duration, Duration::from_secs(45));
    assert_eq!(o.lame_duck_grace_period, Duration::from_secs(3));
    assert_eq!(o.max_closed_clients, 100);
    assert!(o.no_sublist_cache && !o.no_header_support && o.no_system_account);
    assert_eq!(o.monitor_host(), "127.0.0.1");
    assert_eq!(o.http_port, 8999);
    assert_eq!(o.http_base_path, "/nats");
    assert_eq!(o.prof_port, 6060);
    assert_eq!((o.username.as_str(), o.password.as_str()), ("admin", "pw"));
    assert_eq!(o.auth_timeout, Duration::from_secs(4));
}

#[test]
fn defaults_are_nats_servers() {
    let (o, w) = Options::from_str("", "empty.conf").unwrap();
    assert_eq!(w.len(), 1, "an empty config is warned about");
    assert_eq!(o.host, "0.0.0.0");
    assert_eq!(o.port, 4222);
    assert_eq!(o.max_payload, 1024 * 1024);
    assert_eq!(o.max_control_line, 4096);
    assert_eq!(o.max_pending, 64 * 1024 * 1024);
    assert_eq!(o.max_connections, 64 * 1024);
    assert_eq!(o.ping_interval, Duration::from_secs(120));
    assert_eq!(o.ping_max, 2);
    assert_eq!(o.write_deadline, Duration::from_secs(10));
    assert_eq!(o.auth_timeout, Duration::from_secs(2));
    assert_eq!(o.tls_timeout, Duration::from_secs(2));
    assert_eq!(o.lame_duck_duration, Duration::from_secs(120));
    assert_eq!(o.lame_duck_grace_period, Duration::from_secs(10));
    assert_eq!(o.max_closed_clients, 10_000);
    assert_eq!(o.connect_error_reports, 3600);
    assert_eq!(o.reconnect_error_reports, 1);
    assert!(o.logtime);
    assert_eq!(o.jetstream.max_memory, -1);
    assert_eq!(o.jetstream.max_store, -1);
    assert_eq!(o.jetstream.sync_interval, Duration::from_secs(120));
    assert_eq!(o.leafnode.reconnect_interval, Duration::from_secs(1));
    assert_eq!(o.cluster.port, 0);
    assert_eq!(o, {
        let mut d = Options::default();
        d.apply_baseline();
        d.config_digest = o.config_digest.clone();
        d
    });
}
