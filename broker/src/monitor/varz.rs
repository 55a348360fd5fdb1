//! `/varz`: the server's identity, configuration limits and counters, with nats-server's
//! field names, order and omissions.

use std::collections::BTreeMap;
use std::sync::atomic::Ordering;
use std::time::SystemTime;

use serde::Serialize;

use super::Monitor;
use super::format::{GoFloat, GoTime, nanos, seconds, uptime};
use super::process;

/// The sub-objects for subsystems natrix does not run yet serialise as `{}`, exactly as
/// nats-server's are when the subsystem is not configured.
#[derive(Debug, Serialize, Default)]
pub struct Empty {}

/// `mqtt` in `/varz`: empty (`{}`) unless the MQTT listener runs. nats-server's
/// `MQTTOptsVarz`, its fields in its order, each left out when unset.
#[derive(Debug, Default, Serialize)]
pub struct MqttVarz {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(skip_serializing_if = "is_zero_port")]
    pub port: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub no_auth_user: String,
    /// Seconds, from `authorization { timeout }` inside `mqtt {}`.
    #[serde(skip_serializing_if = "is_zero_go_float")]
    pub auth_timeout: GoFloat,
    /// `verify_and_map` of `mqtt { tls {} }`.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub tls_map: bool,
    /// Seconds; nats-server shows its 2 s default even without TLS.
    #[serde(skip_serializing_if = "is_zero_go_float")]
    pub tls_timeout: GoFloat,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub js_domain: String,
    /// Nanoseconds, as Go's `time.Duration`.
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub ack_wait: u64,
    #[serde(skip_serializing_if = "is_zero_u16")]
    pub max_ack_pending: u16,
}

#[allow(clippy::trivially_copy_pass_by_ref)] // serde's skip_serializing_if passes a reference
fn is_zero_port(p: &u16) -> bool {
    *p == 0
}

/// `cluster` in `/varz` when a cluster listener runs.
#[derive(Debug, Serialize)]
pub struct ClusterVarz {
    pub name: String,
    pub addr: String,
    pub cluster_port: u16,
    pub auth_timeout: GoFloat,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
    pub tls_timeout: GoFloat,
}

/// `/varz` `gateway`: the gateway block as configured.
#[derive(Debug, Serialize)]
pub struct GatewayVarz {
    pub name: String,
    pub host: String,
    pub port: u16,
    pub auth_timeout: GoFloat,
    pub tls_timeout: GoFloat,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub advertise: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub connect_retries: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub gateways: Vec<RemoteGatewayVarz>,
    #[serde(skip_serializing_if = "is_false")]
    pub reject_unknown: bool,
}

#[derive(Debug, Serialize)]
pub struct RemoteGatewayVarz {
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub urls: Vec<String>,
}

/// `websocket` (nats-server's `WebsocketOptsVarz`): every field left out when unset, so
/// a server without a WebSocket listener shows `{}`.
#[derive(Debug, Serialize, Default)]
pub struct WebsocketVarz {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(skip_serializing_if = "is_zero_u16")]
    pub port: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub advertise: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub no_auth_user: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub jwt_cookie: String,
    #[serde(skip_serializing_if = "is_zero_u64")]
    pub handshake_timeout: u64,
    /// Seconds, from `authorization { timeout }` inside `websocket {}`.
    #[serde(skip_serializing_if = "is_zero_go_float")]
    pub auth_timeout: GoFloat,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub no_tls: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub same_origin: bool,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub compression: bool,
}

fn is_zero_u16(v: &u16) -> bool {
    *v == 0
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

fn is_zero_go_float(v: &GoFloat) -> bool {
    v.0 == 0.0
}

/// Empty, as nats-server serialises an unconfigured gateway.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum GatewayField {
    On(GatewayVarz),
    Off(Empty),
}

/// Empty, as nats-server serialises an unconfigured cluster.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum ClusterField {
    On(ClusterVarz),
    Off(Empty),
}

/// `leaf` in `/varz` when leaf nodes are configured.
#[derive(Debug, Serialize)]
pub struct LeafVarz {
    pub host: String,
    pub port: u16,
    pub auth_timeout: GoFloat,
    pub tls_timeout: GoFloat,
}

/// Empty without a leaf node listener, as nats-server serialises it.
#[derive(Debug, Serialize)]
#[serde(untagged)]
pub enum LeafField {
    On(LeafVarz),
    Off(Empty),
}

#[derive(Debug, Serialize, Default)]
pub struct KindCounts {
    pub clients: u64,
    pub routes: u64,
    pub gateways: u64,
    pub leafs: u64,
}

#[derive(Debug, Serialize, Default)]
pub struct DiskIoWaitStats {
    pub waiters: u64,
    pub waits: u64,
    pub wait_time: u64,
    pub max_wait_time: u64,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &i64) -> bool {
    *n == 0
}

#[derive(Debug, Serialize)]
pub struct Varz {
    pub server_id: String,
    pub server_name: String,
    pub version: &'static str,
    pub proto: i32,
    pub go: &'static str,
    pub host: String,
    pub port: u16,
    #[serde(skip_serializing_if = "is_false")]
    pub auth_required: bool,
    pub max_connections: i64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max_subscriptions: i64,
    pub ping_interval: u64,
    pub ping_max: i64,
    pub http_host: String,
    pub http_port: i64,
    pub http_base_path: String,
    pub https_port: i64,
    pub auth_timeout: GoFloat,
    pub max_control_line: i32,
    pub max_payload: i32,
    pub max_pending: i64,
    pub cluster: ClusterField,
    pub gateway: GatewayField,
    pub leaf: LeafField,
    pub mqtt: MqttVarz,
    pub websocket: WebsocketVarz,
    pub jetstream: serde_json::Value,
    pub tls_timeout: GoFloat,
    pub write_deadline: u64,
    pub start: GoTime,
    pub now: GoTime,
    pub uptime: String,
    pub mem: i64,
    pub cores: usize,
    pub gomaxprocs: usize,
    pub cpu: GoFloat,
    pub connections: usize,
    pub total_connections: u64,
    pub routes: u64,
    pub remotes: u64,
    pub leafnodes: u64,
    pub in_msgs: u64,
    pub in_bytes: u64,
    pub in_client_msgs: u64,
    pub in_client_bytes: u64,
    pub out_msgs: u64,
    pub out_bytes: u64,
    pub out_client_msgs: u64,
    pub out_client_bytes: u64,
    pub slow_consumers: u64,
    pub stale_connections: u64,
    pub stalled_clients: u64,
    pub subscriptions: u64,
    pub http_req_stats: BTreeMap<&'static str, u64>,
    pub config_load_time: GoTime,
    pub config_digest: String,
    pub feature_flags: BTreeMap<String, bool>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub system_account: String,
    pub slow_consumer_stats: KindCounts,
    pub stale_connection_stats: KindCounts,
    pub disk_io_wait_stats: DiskIoWaitStats,
}

/// Builds `/varz` from the live server.
pub fn varz(m: &Monitor) -> Varz {
    let server = m.server();
    let (opts, _) = server.options();
    let cfg = &opts.config;
    let st = &server.stats;
    let load = |a: &std::sync::atomic::AtomicU64| a.load(Ordering::Relaxed);
    let now = SystemTime::now();
    let bound = server.http_addr().map(|a| i64::from(a.port()));
    let (http_port, https_port) = if server.http_is_tls() {
        (
            i64::from(cfg.http_port),
            bound.unwrap_or(i64::from(cfg.https_port)),
        )
    } else {
        (
            bound.unwrap_or(i64::from(cfg.http_port)),
            i64::from(cfg.https_port),
        )
    };
    let (in_msgs, in_bytes, out_msgs, out_bytes) = (
        load(&st.in_msgs),
        load(&st.in_bytes),
        load(&st.out_msgs),
        load(&st.out_bytes),
    );
    let slow = load(&st.slow_consumers);
    let stale = load(&st.stale_connections);
    let cores = process::cores();
    Varz {
        server_id: server.id().to_owned(),
        server_name: server.name().to_owned(),
        version: crate::server::NATS_COMPAT_VERSION,
        proto: crate::server::PROTO,
        go: crate::server::GO_FIELD,
        host: opts.host.clone(),
        port: server.addr().map_or(0, |a| a.port()),
        auth_required: opts.auth.required(),
        max_connections: opts.max_connections,
        max_subscriptions: cfg.max_subscriptions,
        ping_interval: nanos(opts.ping_interval),
        ping_max: i64::from(opts.ping_max),
        http_host: cfg.monitor_host().to_owned(),
        http_port,
        http_base_path: cfg.http_base_path.clone(),
        https_port,
        auth_timeout: seconds(opts.auth_timeout),
        max_control_line: cfg.max_control_line,
        max_payload: opts.max_payload,
        max_pending: cfg.max_pending,
        cluster: server.cluster().map_or(ClusterField::Off(Empty {}), |c| {
            ClusterField::On(ClusterVarz {
                name: c.name.clone(),
                addr: c.addr.ip().to_string(),
                cluster_port: c.addr.port(),
                auth_timeout: seconds(cfg.cluster.auth_timeout),
                urls: cfg
                    .routes
                    .iter()
                    .map(|u| format!("{}:{}", u.host, u.port.unwrap_or(0)))
                    .collect(),
                tls_timeout: seconds(cfg.cluster.tls_timeout),
            })
        }),
        gateway: server.gateways().map_or(GatewayField::Off(Empty {}), |g| {
            GatewayField::On(GatewayVarz {
                name: g.name.clone(),
                host: g.addr.ip().to_string(),
                port: g.addr.port(),
                auth_timeout: seconds(cfg.gateway.auth_timeout),
                tls_timeout: seconds(cfg.gateway.tls_timeout),
                advertise: cfg.gateway.advertise.clone(),
                connect_retries: cfg.gateway.connect_retries,
                gateways: cfg
                    .gateway
                    .gateways
                    .iter()
                    .map(|r| RemoteGatewayVarz {
                        name: r.name.clone(),
                        urls: r
                            .urls
                            .iter()
                            .map(|u| format!("{}:{}", u.host, u.port.unwrap_or(0)))
                            .collect(),
                    })
                    .collect(),
                reject_unknown: cfg.gateway.reject_unknown,
            })
        }),
        leaf: server
            .leafnodes()
            .and_then(|l| l.addr)
            .map_or(LeafField::Off(Empty {}), |a| {
                LeafField::On(LeafVarz {
                    host: a.ip().to_string(),
                    port: a.port(),
                    auth_timeout: seconds(cfg.leafnode.auth_timeout),
                    tls_timeout: seconds(cfg.leafnode.tls_timeout),
                })
            }),
        mqtt: server.mqtt_addr().map_or_else(MqttVarz::default, |a| {
            let m = &cfg.mqtt;
            MqttVarz {
                host: m.host.clone(),
                port: a.port(),
                no_auth_user: m.no_auth_user.clone(),
                auth_timeout: seconds(m.auth_timeout),
                tls_map: m.tls.as_ref().is_some_and(|t| t.map),
                tls_timeout: seconds(if m.tls_timeout.is_zero() {
                    crate::mqtt::DEFAULT_TLS_TIMEOUT
                } else {
                    m.tls_timeout
                }),
                js_domain: m.js_domain.clone(),
                ack_wait: nanos(m.ack_wait),
                max_ack_pending: m.max_ack_pending,
            }
        }),
        websocket: server
            .websocket_addr()
            .map_or_else(WebsocketVarz::default, |a| WebsocketVarz {
                host: cfg.websocket.host.clone(),
                port: a.port(),
                advertise: cfg.websocket.advertise.clone(),
                auth_timeout: seconds(cfg.websocket.auth_timeout),
                no_auth_user: cfg.websocket.no_auth_user.clone(),
                jwt_cookie: cfg.websocket.jwt_cookie.clone(),
                handshake_timeout: nanos(cfg.websocket.handshake_timeout),
                no_tls: cfg.websocket.no_tls,
                same_origin: cfg.websocket.same_origin,
                allowed_origins: cfg.websocket.allowed_origins.clone(),
                compression: cfg.websocket.compression,
            }),
        jetstream: server
            .jetstream()
            .map_or_else(|| serde_json::json!({}), |js| js.varz()),
        tls_timeout: seconds(cfg.tls_timeout),
        write_deadline: nanos(opts.write_deadline),
        start: GoTime::of(server.started()),
        now: GoTime::of(now),
        uptime: uptime(now.duration_since(server.started()).unwrap_or_default()),
        mem: process::rss_bytes(),
        cores,
        gomaxprocs: cores,
        cpu: GoFloat(m.cpu.sample()),
        connections: server.num_clients(),
        total_connections: load(&st.total_connections),
        routes: server.cluster().map_or(0, |c| c.num_routes() as u64),
        // Distinct route peers (one connection each without pooling).
        remotes: server.cluster().map_or(0, |c| c.num_routes() as u64),
        leafnodes: server.leafnodes().map_or(0, |l| l.num_leafs() as u64),
        in_msgs,
        in_bytes,
        // Every message comes from a client until routes, gateways and leaf nodes exist.
        in_client_msgs: in_msgs,
        in_client_bytes: in_bytes,
        out_msgs,
        out_bytes,
        out_client_msgs: out_msgs,
        out_client_bytes: out_bytes,
        slow_consumers: slow,
        stale_connections: stale,
        stalled_clients: load(&st.stalls),
        subscriptions: server
            .all_accounts()
            .iter()
            .map(|a| a.sublist.count())
            .sum(),
        http_req_stats: m.req_stats(),
        config_load_time: GoTime::of(server.config_load_time()),
        config_digest: cfg.config_digest.clone().unwrap_or_default(),
        feature_flags: cfg.feature_flags.iter().cloned().collect(),
        system_account: server.sys_account.name().to_owned(),
        slow_consumer_stats: KindCounts {
            clients: slow,
            ..KindCounts::default()
        },
        stale_connection_stats: KindCounts {
            clients: stale,
            ..KindCounts::default()
        },
        disk_io_wait_stats: DiskIoWaitStats::default(),
    }
}
