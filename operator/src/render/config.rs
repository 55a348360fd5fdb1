//! `nats.conf` for a NatsCluster: built as a value tree, written with the broker's own
//! renderer, then read back by the broker's own parser and option layer.
//!
//! Reading the text back is the point: the operator refuses to apply a config that
//! natrix-server would refuse to load, and reports the parser's `file:line:col` message on
//! the NatsCluster instead of crash-looping pods at their next restart. The same parse
//! gives the config digest the broker reports on `/varz` (`config_digest`), and the typed
//! options that [`natrix_config::reload::diff`] compares to decide between a live reload
//! and a rolling restart, so the operator and the broker never disagree about either.

use natrix_config::conf::{self, Map, MemoryLoader, Pos, Spanned, Value};
use natrix_config::{Options, Strictness};

use super::{RenderError, names};
use crate::crd::{
    Authorization, NatsCluster, PermissionsSpec, ServerConfig, SubjectPermissionSpec, TlsListener,
};

/// Where the config volume is mounted; the broker is started with `-c` [`CONFIG_PATH`].
pub const CONFIG_DIR: &str = "/etc/natrix";
/// The config file the broker reads (and watches for changes).
pub const CONFIG_PATH: &str = "/etc/natrix/nats.conf";
/// The ConfigMap key holding the config.
pub const CONFIG_KEY: &str = "nats.conf";
/// Directory of the pid file, shared with the preStop hook.
pub const PID_DIR: &str = "/var/run/natrix";
/// The pid file the preStop hook signals (`natrix-server --signal ldm=<pid file>`).
pub const PID_FILE: &str = "/var/run/natrix/natrix.pid";
/// Mount point of the JetStream data volume.
pub const DATA_DIR: &str = "/data";
/// JetStream store directory inside the data volume.
pub const STORE_DIR: &str = "/data/jetstream";
/// Where TLS Secrets are mounted (one directory per listener).
pub const TLS_DIR: &str = "/etc/natrix/tls";
/// Where leaf node credentials Secrets are mounted (one directory per remote).
pub const LEAF_CREDS_DIR: &str = "/etc/natrix/leafnodes";

/// Client port (fixed: clients and Services rely on it).
pub const CLIENT_PORT: i32 = 4222;
/// Route port (fixed: every pod's routes name it).
pub const CLUSTER_PORT: i32 = 6222;
/// nats-server's default lame-duck grace period, written explicitly so the termination
/// grace period computed from it stays right.
pub const LAME_DUCK_GRACE_SECONDS: u64 = 10;

/// A resolved gateway to another cluster: its gateway name and URLs.
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub struct GatewayPeer {
    pub name: String,
    pub urls: Vec<String>,
}

/// The rendered and validated config.
#[derive(Clone, Debug)]
pub struct RenderedConfig {
    /// The `nats.conf` text.
    pub text: String,
    /// [`conf::Document::digest`] of the text, as the broker computes it.
    pub digest: String,
    /// The options natrix-server loads from it.
    pub options: Options,
}

pub(super) fn at() -> Pos {
    Pos::new("natrix-operator", 1, 1)
}

pub(super) fn sp(v: Value) -> Spanned<Value> {
    Spanned::new(v, at())
}

fn put(m: &mut Map, key: &str, v: Value) {
    m.insert(key, at(), sp(v));
}

fn s(v: &str) -> Value {
    Value::String(v.to_string())
}

fn strings(items: &[String]) -> Value {
    Value::Array(items.iter().map(|x| sp(s(x))).collect())
}

fn tls_block(listener: &str, t: &TlsListener, allow_verify: bool) -> Value {
    let mut m = Map::new();
    let dir = format!("{TLS_DIR}/{listener}");
    put(&mut m, "cert_file", s(&format!("{dir}/{}", t.cert)));
    put(&mut m, "key_file", s(&format!("{dir}/{}", t.key)));
    if let Some(ca) = &t.ca {
        put(&mut m, "ca_file", s(&format!("{dir}/{ca}")));
    }
    if allow_verify && let Some(v) = t.verify {
        put(&mut m, "verify", Value::Bool(v));
    }
    Value::Map(m)
}

fn subject_permission(p: &SubjectPermissionSpec) -> Value {
    let mut m = Map::new();
    if let Some(a) = &p.allow {
        put(&mut m, "allow", strings(a));
    }
    if let Some(d) = &p.deny {
        put(&mut m, "deny", strings(d));
    }
    Value::Map(m)
}

fn permissions(p: &PermissionsSpec) -> Value {
    let mut m = Map::new();
    if let Some(x) = &p.publish {
        put(&mut m, "publish", subject_permission(x));
    }
    if let Some(x) = &p.subscribe {
        put(&mut m, "subscribe", subject_permission(x));
    }
    if let Some(true) = p.allow_responses {
        put(&mut m, "allow_responses", Value::Bool(true));
    }
    Value::Map(m)
}

fn authorization(a: &Authorization, root: &mut Map) {
    if a.users.is_empty() {
        return;
    }
    let users = a
        .users
        .iter()
        .map(|u| {
            let mut m = Map::new();
            if let Some(n) = &u.nkey {
                put(&mut m, "nkey", s(n));
            }
            if let Some(n) = &u.user {
                put(&mut m, "user", s(n));
            }
            if let Some(p) = &u.password {
                put(&mut m, "password", s(p));
            }
            if let Some(p) = &u.permissions {
                put(&mut m, "permissions", permissions(p));
            }
            sp(Value::Map(m))
        })
        .collect();
    let mut m = Map::new();
    put(&mut m, "users", Value::Array(users));
    root.insert("authorization", at(), sp(Value::Map(m)));
    if let Some(n) = &a.no_auth_user {
        put(root, "no_auth_user", s(n));
    }
}

fn server_options(c: &ServerConfig, root: &mut Map) -> Result<(), RenderError> {
    for (key, v) in [
        ("debug", c.debug),
        ("trace", c.trace),
        ("logtime", c.logtime),
    ] {
        if let Some(b) = v {
            put(root, key, Value::Bool(b));
        }
    }
    for (key, v) in [
        ("max_payload", c.max_payload),
        ("max_connections", c.max_connections),
        ("max_subscriptions", c.max_subscriptions),
        ("max_pending", c.max_pending),
        ("max_control_line", c.max_control_line),
        ("ping_max", c.ping_max),
    ] {
        if let Some(n) = v {
            put(root, key, Value::Int(n));
        }
    }
    for (key, v) in [
        ("ping_interval", &c.ping_interval),
        ("write_deadline", &c.write_deadline),
    ] {
        if let Some(d) = v {
            put(root, key, s(d));
        }
    }
    if let Some(a) = &c.authorization {
        authorization(a, root);
    }
    Ok(())
}

/// Builds the config tree of `nc` (before `merge`).
fn base_tree(nc: &NatsCluster, gateways: &[GatewayPeer]) -> Result<Map, RenderError> {
    let spec = &nc.spec;
    let name = nc.base_name();
    let ns = names::namespace(nc)?;
    let mut root = Map::new();

    put(&mut root, "port", Value::Int(CLIENT_PORT.into()));
    put(
        &mut root,
        "http_port",
        Value::Int(names::monitor_port(nc).into()),
    );
    put(&mut root, "pid_file", s(PID_FILE));
    put(&mut root, "lame_duck_duration", s(&spec.lame_duck_duration));
    put(
        &mut root,
        "lame_duck_grace_period",
        s(&format!("{LAME_DUCK_GRACE_SECONDS}s")),
    );

    if let Some(c) = &spec.config {
        server_options(c, &mut root)?;
    }

    let tls = spec.tls.clone().unwrap_or_default();
    if let Some(t) = &tls.client {
        root.insert("tls", at(), sp(tls_block("client", t, true)));
    }

    // Routes: one per pod by its stable DNS name, including the pod itself (the server
    // recognises and drops a route to itself). Rendering all ordinals up to `replicas`
    // keeps the list identical on every pod, and scaling only changes this list, which
    // the broker reloads.
    let mut cluster = Map::new();
    put(&mut cluster, "name", s(&name));
    put(&mut cluster, "port", Value::Int(CLUSTER_PORT.into()));
    let routes: Vec<String> = (0..spec.replicas)
        .map(|i| format!("nats://{}:{CLUSTER_PORT}", names::pod_fqdn(&name, &ns, i)))
        .collect();
    put(&mut cluster, "routes", strings(&routes));
    put(&mut cluster, "no_advertise", Value::Bool(true));
    if let Some(t) = &tls.routes {
        put(&mut cluster, "tls", tls_block("routes", t, true));
    }
    root.insert("cluster", at(), sp(Value::Map(cluster)));

    if let Some(js) = &spec.jetstream
        && js.enabled
    {
        let mut m = Map::new();
        if let Some(fs) = &js.file_storage {
            put(&mut m, "store_dir", s(STORE_DIR));
            let bytes = super::quantity::bytes(&fs.size)
                .map_err(|e| RenderError::Spec(format!("jetstream.fileStorage.size: {e}")))?;
            put(&mut m, "max_file_store", Value::Int(bytes));
        } else {
            // Without file storage nothing may be stored on disk.
            put(&mut m, "max_file_store", Value::Int(0));
        }
        if let Some(ms) = &js.memory_storage {
            let bytes = super::quantity::bytes(&ms.size)
                .map_err(|e| RenderError::Spec(format!("jetstream.memoryStorage.size: {e}")))?;
            put(&mut m, "max_memory_store", Value::Int(bytes));
        } else {
            put(&mut m, "max_memory_store", Value::Int(0));
        }
        if let Some(d) = &js.domain {
            put(&mut m, "domain", s(d));
        }
        root.insert("jetstream", at(), sp(Value::Map(m)));
    }

    if let Some(gw) = &spec.gateways {
        let mut m = Map::new();
        put(&mut m, "name", s(&name));
        put(&mut m, "port", Value::Int(gw.port.into()));
        if let Some(r) = gw.reject_unknown {
            put(&mut m, "reject_unknown_cluster", Value::Bool(r));
        }
        if !gateways.is_empty() {
            let list = gateways
                .iter()
                .map(|g| {
                    let mut e = Map::new();
                    put(&mut e, "name", s(&g.name));
                    put(&mut e, "urls", strings(&g.urls));
                    sp(Value::Map(e))
                })
                .collect();
            put(&mut m, "gateways", Value::Array(list));
        }
        if let Some(t) = &tls.gateway {
            put(&mut m, "tls", tls_block("gateway", t, true));
        }
        root.insert("gateway", at(), sp(Value::Map(m)));
    }

    if let Some(leaf) = &spec.leafnodes
        && (leaf.port.is_some() || !leaf.remotes.is_empty())
    {
        let mut m = Map::new();
        if let Some(p) = leaf.port {
            put(&mut m, "port", Value::Int(p.into()));
        }
        if !leaf.remotes.is_empty() {
            let remotes = leaf
                .remotes
                .iter()
                .enumerate()
                .map(|(i, r)| {
                    let mut e = Map::new();
                    put(&mut e, "urls", strings(&r.urls));
                    if let Some(a) = &r.account {
                        put(&mut e, "account", s(a));
                    }
                    if let Some(c) = &r.credentials {
                        put(
                            &mut e,
                            "credentials",
                            s(&format!("{LEAF_CREDS_DIR}/{i}/{}", c.key)),
                        );
                    }
                    sp(Value::Map(e))
                })
                .collect();
            put(&mut m, "remotes", Value::Array(remotes));
        }
        if let Some(t) = &tls.leafnodes {
            put(&mut m, "tls", tls_block("leafnodes", t, true));
        }
        root.insert("leafnodes", at(), sp(Value::Map(m)));
    }

    if let Some(ws) = &spec.websocket {
        let mut m = Map::new();
        put(&mut m, "port", Value::Int(ws.port.into()));
        match &tls.websocket {
            Some(t) => put(&mut m, "tls", tls_block("websocket", t, false)),
            None => put(&mut m, "no_tls", Value::Bool(true)),
        }
        if let Some(c) = ws.compression {
            put(&mut m, "compression", Value::Bool(c));
        }
        if !ws.allowed_origins.is_empty() {
            put(&mut m, "allowed_origins", strings(&ws.allowed_origins));
        }
        root.insert("websocket", at(), sp(Value::Map(m)));
    }

    if let Some(t) = &spec.tracing {
        let mut otlp = Map::new();
        put(&mut otlp, "endpoint", s(&t.endpoint));
        if let Some(n) = &t.service_name {
            put(&mut otlp, "service_name", s(n));
        }
        if let Some(r) = t.sample_ratio {
            put(&mut otlp, "sample_ratio", Value::Float(r));
        }
        let mut m = Map::new();
        put(&mut m, "otlp", Value::Map(otlp));
        root.insert("telemetry", at(), sp(Value::Map(m)));
    }

    if let Some(mq) = &spec.mqtt {
        let mut m = Map::new();
        put(&mut m, "port", Value::Int(mq.port.into()));
        if let Some(t) = &tls.mqtt {
            put(&mut m, "tls", tls_block("mqtt", t, true));
        }
        root.insert("mqtt", at(), sp(Value::Map(m)));
    }
    Ok(root)
}

/// Converts a JSON value of the `merge` block into a config value. `null` has no meaning
/// there except as "remove this key", which [`merge_into`] handles before calling this.
fn json_to_conf(path: &str, v: &serde_json::Value) -> Result<Value, RenderError> {
    Ok(match v {
        serde_json::Value::Null => {
            return Err(RenderError::Spec(format!(
                "config.merge.{path}: null is only allowed as a map value (it removes the key)"
            )));
        }
        serde_json::Value::Bool(b) => Value::Bool(*b),
        serde_json::Value::Number(n) => match n.as_i64() {
            Some(i) => Value::Int(i),
            None => match n.as_f64() {
                Some(f) => Value::Float(f),
                None => {
                    return Err(RenderError::Spec(format!(
                        "config.merge.{path}: number {n} does not fit a 64-bit integer"
                    )));
                }
            },
        },
        serde_json::Value::String(x) => Value::String(x.clone()),
        serde_json::Value::Array(items) => Value::Array(
            items
                .iter()
                .enumerate()
                .map(|(i, x)| json_to_conf(&format!("{path}[{i}]"), x).map(sp))
                .collect::<Result<_, _>>()?,
        ),
        serde_json::Value::Object(o) => {
            let mut m = Map::new();
            merge_into(&mut m, o, path)?;
            Value::Map(m)
        }
    })
}

/// Deep-merges `patch` into `m`: maps merge key by key, `null` removes a key, anything
/// else replaces. The same semantics as the NATS Helm chart's `merge` blocks.
fn merge_into(
    m: &mut Map,
    patch: &serde_json::Map<String, serde_json::Value>,
    path: &str,
) -> Result<(), RenderError> {
    for (k, v) in patch {
        let here = if path.is_empty() {
            k.clone()
        } else {
            format!("{path}.{k}")
        };
        match v {
            serde_json::Value::Null => {
                let mut rest = Map::new();
                for e in m.iter().filter(|e| e.key != *k) {
                    rest.insert(e.key.clone(), e.key_pos.clone(), e.value.clone());
                }
                *m = rest;
            }
            serde_json::Value::Object(o) => {
                let mut inner = match m.get(k).map(|x| &x.value) {
                    Some(Value::Map(existing)) => existing.clone(),
                    _ => Map::new(),
                };
                merge_into(&mut inner, o, &here)?;
                put(m, k, Value::Map(inner));
            }
            other => put(m, k, json_to_conf(&here, other)?),
        }
    }
    Ok(())
}

/// Adds the offending line to a `nats.conf:line:col: message` error: the user never sees
/// the rendered file (it is not applied), so the position alone would not help them.
fn with_line(text: &str, message: String) -> String {
    let line = message
        .strip_prefix(CONFIG_KEY)
        .and_then(|rest| rest.strip_prefix(':'))
        .and_then(|rest| rest.split(':').next())
        .and_then(|n| n.parse::<usize>().ok())
        .and_then(|n| text.lines().nth(n.checked_sub(1)?));
    match line {
        Some(l) => format!("{message} (in `{}`)", l.trim()),
        None => message,
    }
}

/// Parses config text the way natrix-server loads its config file (strict, as
/// nats-server), without touching the operator's file system or environment.
pub fn load(text: &str) -> Result<(String, Options), RenderError> {
    let loader = MemoryLoader::new();
    let doc = conf::parse_with(text, CONFIG_KEY, &loader)
        .map_err(|e| RenderError::InvalidConfig(vec![with_line(text, e.to_string())]))?;
    let digest = doc.digest();
    let (mut options, _warnings) = Options::from_document(&doc, CONFIG_KEY, Strictness::Strict)
        .map_err(|e| {
            RenderError::InvalidConfig(e.errors().into_iter().map(|m| with_line(text, m)).collect())
        })?;
    options.apply_baseline();
    Ok((digest, options))
}

/// Renders and validates the config of `nc` with the given (already resolved) gateways.
pub fn render(nc: &NatsCluster, gateways: &[GatewayPeer]) -> Result<RenderedConfig, RenderError> {
    render_with(nc, gateways, None)
}

/// [`render`], in operator mode when `operator_mode` is given (Account resources name
/// this cluster); see [`super::operator_mode`].
pub fn render_with(
    nc: &NatsCluster,
    gateways: &[GatewayPeer],
    operator_mode: Option<&super::operator_mode::OperatorMode>,
) -> Result<RenderedConfig, RenderError> {
    let mut root = base_tree(nc, gateways)?;
    if let Some(om) = operator_mode {
        super::operator_mode::check_conflict(nc)?;
        super::operator_mode::apply(nc, &mut root, om);
    }
    if let Some(patch) = nc.spec.config.as_ref().and_then(|c| c.merge.as_ref()) {
        merge_into(&mut root, patch, "")?;
    }
    let body = conf::render_map(&root).map_err(|e| RenderError::Spec(e.to_string()))?;
    let text = format!(
        "# Generated by natrix-operator for NatsCluster {}/{}; do not edit.\n{body}",
        names::namespace(nc)?,
        nc.base_name()
    );
    let (digest, options) = load(&text)?;
    Ok(RenderedConfig {
        text,
        digest,
        options,
    })
}
