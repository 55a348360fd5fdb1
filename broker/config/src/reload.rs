//! What changed between the running options and freshly loaded ones, and whether a running
//! server may apply it (nats-server's `diffOptions` in `reload.go`).
//!
//! Options are compared under nats-server's Go field names (`MaxPayload`, `Cluster`, ...),
//! which is also how refusals are worded: `config reload not supported for <Field>:
//! old=<v>, new=<v>`. The split follows reload.go's option table: logging, TLS, client
//! auth, accounts, `max_connections`, `max_payload`, `max_control_line`, ping settings,
//! `write_deadline`, routes and most cluster settings, some leafnode, JetStream and MQTT
//! knobs reload; anything else (ports, hosts, `max_pending`, `max_subscriptions`,
//! lame-duck settings, gateways, websocket, ...) refuses the whole reload.

use std::time::Duration;

use crate::duration::format_go_duration;
use crate::options::{
    ClusterOpts, CompressionOpts, DEFAULT_SYSTEM_ACCOUNT, LeafNodeOpts, LogFormat, MqttOpts,
    Options, RemoteLeafOpts, TlsConfig, UrlOpt, WriteTimeoutPolicy,
};

/// One option that differs between the two configs.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Change {
    /// nats-server's Go field name (`MaxPayload`, `Cluster`, `TLSConfig`, ...).
    pub field: &'static str,
    pub old: String,
    pub new: String,
}

/// The outcome of comparing two option sets.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ReloadPlan {
    /// Changes a running server can apply.
    pub reloadable: Vec<Change>,
    /// Why the reload must be refused, worded as nats-server does. nats-server stops at the
    /// first one; all are listed here, [`ReloadPlan::error`] gives the first.
    pub refused: Vec<String>,
    /// Routes to start soliciting.
    pub routes_added: Vec<UrlOpt>,
    /// Routes to stop soliciting.
    pub routes_removed: Vec<UrlOpt>,
}

impl ReloadPlan {
    /// Whether the new options may be applied.
    pub fn is_allowed(&self) -> bool {
        self.refused.is_empty()
    }

    /// The error a refused reload reports (the first refusal).
    pub fn error(&self) -> Option<&str> {
        self.refused.first().map(String::as_str)
    }

    /// Whether the option with this Go field name changed (and is reloadable).
    pub fn changed(&self, field: &str) -> bool {
        self.reloadable.iter().any(|c| c.field == field)
    }

    /// Nothing to do.
    pub fn is_empty(&self) -> bool {
        self.reloadable.is_empty() && self.refused.is_empty()
    }
}

/// Go's `%v` rendering for the values that appear in reload messages.
trait GoShow {
    fn show(&self) -> String;
}

macro_rules! show_display {
    ($($t:ty),*) => {$(
        impl GoShow for $t {
            fn show(&self) -> String {
                self.to_string()
            }
        }
    )*};
}
show_display!(i32, i64, u8, u16, u64, f64, bool, String);

impl GoShow for Duration {
    fn show(&self) -> String {
        format_go_duration(*self)
    }
}

impl GoShow for Vec<String> {
    fn show(&self) -> String {
        format!("[{}]", self.join(" "))
    }
}

impl GoShow for Vec<(String, String)> {
    fn show(&self) -> String {
        let items: Vec<String> = self.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        format!("map[{}]", items.join(" "))
    }
}

impl GoShow for Vec<(String, bool)> {
    fn show(&self) -> String {
        let items: Vec<String> = self.iter().map(|(k, v)| format!("{k}:{v}")).collect();
        format!("map[{}]", items.join(" "))
    }
}

impl GoShow for Vec<UrlOpt> {
    fn show(&self) -> String {
        let items: Vec<&str> = self.iter().map(|u| u.raw.as_str()).collect();
        format!("[{}]", items.join(" "))
    }
}

impl GoShow for WriteTimeoutPolicy {
    fn show(&self) -> String {
        match self {
            WriteTimeoutPolicy::Default => "default",
            WriteTimeoutPolicy::Close => "close",
            WriteTimeoutPolicy::Retry => "retry",
        }
        .to_string()
    }
}

impl GoShow for LogFormat {
    fn show(&self) -> String {
        match self {
            LogFormat::Text => "text",
            LogFormat::Json => "json",
        }
        .to_string()
    }
}

impl GoShow for Option<std::path::PathBuf> {
    fn show(&self) -> String {
        self.as_ref()
            .map(|p| p.display().to_string())
            .unwrap_or_default()
    }
}

/// Composite values are not spelled out (they may hold secrets); nats-server prints Go
/// struct dumps there.
struct Opaque;
impl GoShow for Opaque {
    fn show(&self) -> String {
        "{...}".to_string()
    }
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum Policy {
    Reload,
    Refuse,
}

struct Differ {
    plan: ReloadPlan,
}

impl Differ {
    fn refuse(&mut self, field: &str, old: String, new: String) {
        self.plan.refused.push(format!(
            "config reload not supported for {field}: old={old}, new={new}"
        ));
    }

    fn cmp<T: PartialEq + GoShow>(&mut self, field: &'static str, old: &T, new: &T, p: Policy) {
        if old == new {
            return;
        }
        match p {
            Policy::Reload => self.plan.reloadable.push(Change {
                field,
                old: old.show(),
                new: new.show(),
            }),
            Policy::Refuse => self.refuse(field, old.show(), new.show()),
        }
    }

    /// For composite values: same as [`Differ::cmp`] but without printing contents.
    fn cmp_opaque<T: PartialEq>(&mut self, field: &'static str, old: &T, new: &T, p: Policy) {
        if old == new {
            return;
        }
        match p {
            Policy::Reload => self.plan.reloadable.push(Change {
                field,
                old: Opaque.show(),
                new: Opaque.show(),
            }),
            Policy::Refuse => self.refuse(field, Opaque.show(), Opaque.show()),
        }
    }
}

fn tls_map(t: &Option<TlsConfig>) -> bool {
    t.as_ref().is_some_and(|t| t.map)
}

/// Compares the running options with newly loaded ones (both after flags and defaults).
pub fn diff(old: &Options, new: &Options) -> ReloadPlan {
    use Policy::{Refuse, Reload};
    let mut d = Differ {
        plan: ReloadPlan::default(),
    };

    d.cmp("ConfigFile", &old.config_file, &new.config_file, Refuse);
    d.cmp("ServerName", &old.server_name, &new.server_name, Refuse);
    d.cmp("Host", &old.host, &new.host, Refuse);
    // A random port in the new config means "keep the one we have".
    if new.port != -1 {
        d.cmp("Port", &old.port, &new.port, Refuse);
    }
    d.cmp(
        "ClientAdvertise",
        &old.client_advertise,
        &new.client_advertise,
        Reload,
    );
    d.cmp("Trace", &old.trace, &new.trace, Reload);
    d.cmp("Debug", &old.debug, &new.debug, Reload);
    d.cmp(
        "TraceVerbose",
        &old.trace_verbose,
        &new.trace_verbose,
        Reload,
    );
    d.cmp(
        "TraceHeaders",
        &old.trace_headers,
        &new.trace_headers,
        Reload,
    );
    d.cmp(
        "NoSublistCache",
        &old.no_sublist_cache,
        &new.no_sublist_cache,
        Refuse,
    );
    d.cmp(
        "NoHeaderSupport",
        &old.no_header_support,
        &new.no_header_support,
        Refuse,
    );
    d.cmp("Logtime", &old.logtime, &new.logtime, Reload);
    d.cmp("LogtimeUTC", &old.logtime_utc, &new.logtime_utc, Reload);
    d.cmp(
        "MaxConn",
        &old.max_connections,
        &new.max_connections,
        Reload,
    );
    d.cmp(
        "MaxSubs",
        &old.max_subscriptions,
        &new.max_subscriptions,
        Refuse,
    );
    d.cmp(
        "MaxSubTokens",
        &old.max_sub_tokens,
        &new.max_sub_tokens,
        Refuse,
    );
    d.cmp_opaque("Nkeys", &old.nkeys, &new.nkeys, Reload);
    d.cmp_opaque("Users", &old.users, &new.users, Reload);
    // Default permissions are folded into users by nats-server; a change shows as Users.
    if old.default_permissions != new.default_permissions && old.users == new.users {
        d.cmp_opaque(
            "Users",
            &old.default_permissions,
            &new.default_permissions,
            Reload,
        );
    }
    d.cmp_opaque("Accounts", &old.accounts, &new.accounts, Reload);
    d.cmp_opaque("Accounts", &old.mappings, &new.mappings, Reload);
    d.cmp_opaque(
        "Accounts",
        &old.account_jetstream,
        &new.account_jetstream,
        Reload,
    );
    if old.no_auth_user != new.no_auth_user {
        // Dropping no_auth_user is fine when its user is gone too; anything else is not.
        let dropped_with_user = !old.no_auth_user.is_empty()
            && new.no_auth_user.is_empty()
            && !new.users.iter().any(|u| u.username == old.no_auth_user);
        if !dropped_with_user {
            d.refuse(
                "NoAuthUser",
                old.no_auth_user.clone(),
                new.no_auth_user.clone(),
            );
        }
    }
    d.cmp(
        "DefaultSentinel",
        &old.default_sentinel,
        &new.default_sentinel,
        Reload,
    );
    if old.system_account != new.system_account
        && (old.system_account != DEFAULT_SYSTEM_ACCOUNT || !new.system_account.is_empty())
    {
        d.refuse(
            "SystemAccount",
            old.system_account.clone(),
            new.system_account.clone(),
        );
    }
    d.cmp(
        "NoSystemAccount",
        &old.no_system_account,
        &new.no_system_account,
        Refuse,
    );
    d.cmp("Username", &old.username, &new.username, Reload);
    if old.password != new.password {
        d.plan.reloadable.push(Change {
            field: "Password",
            old: "[REDACTED]".into(),
            new: "[REDACTED]".into(),
        });
    }
    if old.authorization != new.authorization {
        d.plan.reloadable.push(Change {
            field: "Authorization",
            old: "[REDACTED]".into(),
            new: "[REDACTED]".into(),
        });
    }
    d.cmp(
        "ProxyRequired",
        &old.proxy_required,
        &new.proxy_required,
        Refuse,
    );
    d.cmp(
        "ProxyProtocol",
        &old.proxy_protocol,
        &new.proxy_protocol,
        Refuse,
    );
    d.cmp_opaque("AuthCallout", &old.auth_callout, &new.auth_callout, Refuse);
    d.cmp(
        "PingInterval",
        &old.ping_interval,
        &new.ping_interval,
        Reload,
    );
    d.cmp("MaxPingsOut", &old.ping_max, &new.ping_max, Reload);
    d.cmp("HTTPHost", &old.http_host, &new.http_host, Refuse);
    d.cmp("HTTPPort", &old.http_port, &new.http_port, Refuse);
    d.cmp(
        "HTTPBasePath",
        &old.http_base_path,
        &new.http_base_path,
        Refuse,
    );
    d.cmp("HTTPSPort", &old.https_port, &new.https_port, Refuse);
    d.cmp("AuthTimeout", &old.auth_timeout, &new.auth_timeout, Reload);
    d.cmp(
        "MaxControlLine",
        &old.max_control_line,
        &new.max_control_line,
        Reload,
    );
    d.cmp("MaxPayload", &old.max_payload, &new.max_payload, Reload);
    d.cmp("MaxPending", &old.max_pending, &new.max_pending, Refuse);
    d.cmp(
        "NoFastProducerStall",
        &old.no_fast_producer_stall,
        &new.no_fast_producer_stall,
        Reload,
    );

    cluster(&mut d, &old.cluster, &new.cluster);
    if old.routes != new.routes {
        let added: Vec<UrlOpt> = new
            .routes
            .iter()
            .filter(|r| !old.routes.contains(r))
            .cloned()
            .collect();
        let removed: Vec<UrlOpt> = old
            .routes
            .iter()
            .filter(|r| !new.routes.contains(r))
            .cloned()
            .collect();
        d.cmp("Routes", &old.routes, &new.routes, Reload);
        d.plan.routes_added = added;
        d.plan.routes_removed = removed;
    }
    d.cmp("RoutesStr", &old.routes_str, &new.routes_str, Refuse);

    {
        // Pinned certificates may change; everything else about gateways may not.
        let strip = |g: &crate::options::GatewayOpts| {
            let mut g = g.clone();
            if let Some(t) = &mut g.tls {
                t.pinned_certs.clear();
            }
            g
        };
        d.cmp_opaque(
            "Gateway",
            &strip(&old.gateway),
            &strip(&new.gateway),
            Refuse,
        );
    }
    leafnode(&mut d, &old.leafnode, &new.leafnode);
    jetstream(&mut d, old, new);
    {
        let strip = |w: &crate::options::WebsocketOpts| {
            let mut w = w.clone();
            w.tls = None;
            w
        };
        d.cmp_opaque(
            "Websocket",
            &strip(&old.websocket),
            &strip(&new.websocket),
            Refuse,
        );
    }
    mqtt(&mut d, &old.mqtt, &new.mqtt);
    // Trace export is rebuilt live: the server swaps in a new exporter when the endpoint
    // or service name changes, and samples at the new ratio from the next message. The log
    // format is fixed when the global log subscriber is installed at start-up.
    d.cmp(
        "TelemetrySampleRatio",
        &old.telemetry.sample_ratio,
        &new.telemetry.sample_ratio,
        Reload,
    );
    d.cmp(
        "TelemetryEndpoint",
        &old.telemetry.otlp_endpoint,
        &new.telemetry.otlp_endpoint,
        Reload,
    );
    d.cmp(
        "TelemetryServiceName",
        &old.telemetry.service_name,
        &new.telemetry.service_name,
        Reload,
    );
    d.cmp(
        "TelemetryLogFormat",
        &old.telemetry.log_format,
        &new.telemetry.log_format,
        Refuse,
    );

    d.cmp("ProfPort", &old.prof_port, &new.prof_port, Refuse);
    d.cmp(
        "ProfBlockRate",
        &old.prof_block_rate,
        &new.prof_block_rate,
        Reload,
    );
    d.cmp("PidFile", &old.pid_file, &new.pid_file, Reload);
    d.cmp(
        "PortsFileDir",
        &old.ports_file_dir,
        &new.ports_file_dir,
        Reload,
    );
    d.cmp("LogFile", &old.log_file, &new.log_file, Reload);
    d.cmp(
        "LogSizeLimit",
        &old.log_size_limit,
        &new.log_size_limit,
        Refuse,
    );
    d.cmp("LogMaxFiles", &old.log_max_num, &new.log_max_num, Refuse);
    d.cmp("Syslog", &old.syslog, &new.syslog, Reload);
    d.cmp(
        "RemoteSyslog",
        &old.remote_syslog,
        &new.remote_syslog,
        Reload,
    );

    d.cmp("TLSTimeout", &old.tls_timeout, &new.tls_timeout, Reload);
    d.cmp("TLSMap", &tls_map(&old.tls), &tls_map(&new.tls), Refuse);
    {
        let strip = |t: &Option<TlsConfig>| {
            t.clone().map(|mut t| {
                t.pinned_certs.clear();
                t.handshake_first = false;
                t.handshake_first_fallback = None;
                t.timeout = None;
                t.map = false;
                t
            })
        };
        d.cmp_opaque("TLSConfig", &strip(&old.tls), &strip(&new.tls), Reload);
        let pins = |t: &Option<TlsConfig>| t.as_ref().map(|t| t.pinned_certs.clone());
        d.cmp_opaque("TLSPinnedCerts", &pins(&old.tls), &pins(&new.tls), Reload);
        let rate = |t: &Option<TlsConfig>| t.as_ref().map_or(0, |t| t.connection_rate_limit);
        d.cmp("TLSRateLimit", &rate(&old.tls), &rate(&new.tls), Refuse);
        let first = |t: &Option<TlsConfig>| t.as_ref().is_some_and(|t| t.handshake_first);
        d.cmp(
            "TLSHandshakeFirst",
            &first(&old.tls),
            &first(&new.tls),
            Reload,
        );
        let fallback = |t: &Option<TlsConfig>| {
            t.as_ref()
                .and_then(|t| t.handshake_first_fallback)
                .unwrap_or_default()
        };
        d.cmp(
            "TLSHandshakeFirstFallback",
            &fallback(&old.tls),
            &fallback(&new.tls),
            Reload,
        );
    }
    d.cmp(
        "AllowNonTLS",
        &old.allow_non_tls,
        &new.allow_non_tls,
        Refuse,
    );
    d.cmp(
        "WriteDeadline",
        &old.write_deadline,
        &new.write_deadline,
        Reload,
    );
    d.cmp(
        "WriteTimeout",
        &old.write_timeout,
        &new.write_timeout,
        Refuse,
    );
    d.cmp(
        "MaxClosedClients",
        &old.max_closed_clients,
        &new.max_closed_clients,
        Refuse,
    );
    d.cmp(
        "LameDuckDuration",
        &old.lame_duck_duration,
        &new.lame_duck_duration,
        Refuse,
    );
    d.cmp(
        "LameDuckGracePeriod",
        &old.lame_duck_grace_period,
        &new.lame_duck_grace_period,
        Refuse,
    );
    d.cmp(
        "MaxTracedMsgLen",
        &old.max_traced_msg_len,
        &new.max_traced_msg_len,
        Reload,
    );
    d.cmp("TrustedKeys", &old.trusted_keys, &new.trusted_keys, Refuse);
    d.cmp("TrustedOperators", &old.operators, &new.operators, Refuse);
    if old.resolver.is_some() != new.resolver.is_some() {
        d.plan
            .refused
            .push("config reload does not support moving to or from an account resolver".into());
    } else {
        d.cmp_opaque("AccountResolver", &old.resolver, &new.resolver, Reload);
    }
    d.cmp_opaque(
        "AccountResolverTLSConfig",
        &old.resolver_tls,
        &new.resolver_tls,
        Reload,
    );
    d.cmp_opaque(
        "AccountResolver",
        &old.resolver_preload,
        &new.resolver_preload,
        Reload,
    );
    d.cmp(
        "ConnectErrorReports",
        &old.connect_error_reports,
        &new.connect_error_reports,
        Reload,
    );
    d.cmp(
        "ReconnectErrorReports",
        &old.reconnect_error_reports,
        &new.reconnect_error_reports,
        Reload,
    );
    d.cmp("Tags", &old.server_tags, &new.server_tags, Reload);
    d.cmp(
        "Metadata",
        &old.server_metadata,
        &new.server_metadata,
        Reload,
    );
    d.cmp(
        "FeatureFlags",
        &old.feature_flags,
        &new.feature_flags,
        Refuse,
    );
    d.cmp_opaque("OCSPConfig", &old.ocsp, &new.ocsp, Reload);
    d.cmp_opaque("OCSPCacheConfig", &old.ocsp_cache, &new.ocsp_cache, Reload);
    d.cmp_opaque("Proxies", &old.proxies, &new.proxies, Reload);
    d.cmp(
        "JsAccDefaultDomain",
        &old.default_js_domain,
        &new.default_js_domain,
        Refuse,
    );
    d.plan
}

fn compression_eq(a: &CompressionOpts, b: &CompressionOpts) -> bool {
    a == b
}

/// nats-server's cluster handling: host and port may not change, the rest reloads.
fn cluster(d: &mut Differ, old: &ClusterOpts, new: &ClusterOpts) {
    if old == new {
        return;
    }
    if old.host != new.host {
        d.plan.refused.push(format!(
            "config reload not supported for cluster host: old={}, new={}",
            old.host, new.host
        ));
    }
    if old.port != new.port && new.port != -1 {
        d.plan.refused.push(format!(
            "config reload not supported for cluster port: old={}, new={}",
            old.port, new.port
        ));
    }
    d.cmp_opaque("Cluster", old, new, Policy::Reload);
    let _ = compression_eq;
}

fn remote_name(r: &RemoteLeafOpts) -> (Vec<&str>, &str, &str, &str) {
    (
        r.urls.iter().map(|u| u.raw.as_str()).collect(),
        &r.local_account,
        &r.credentials,
        &r.nkey,
    )
}

/// nats-server's `getLeafNodeOptionsChanges`: users may not change; compression, TLS and
/// the set of remotes may; an existing remote may only change its compression, TLS and
/// `disabled` flag.
fn leafnode(d: &mut Differ, old: &LeafNodeOpts, new: &LeafNodeOpts) {
    if old == new {
        return;
    }
    if old.users != new.users {
        d.plan.refused.push(
            "config reload not supported for LeafNode: field \"Users\": old={...}, new={...}"
                .into(),
        );
        return;
    }
    let strip_main = |l: &LeafNodeOpts| {
        let mut l = l.clone();
        l.compression = CompressionOpts::default();
        l.remotes.clear();
        l.tls = None;
        l
    };
    if strip_main(old) != strip_main(new) {
        d.refuse("LeafNode", "{...}".into(), "{...}".into());
        return;
    }
    for r in &new.remotes {
        let Some(prev) = old
            .remotes
            .iter()
            .find(|o| remote_name(o) == remote_name(r))
        else {
            continue;
        };
        let strip = |r: &RemoteLeafOpts| {
            let mut r = r.clone();
            r.compression = CompressionOpts::default();
            r.disabled = false;
            r.tls = None;
            r
        };
        if strip(prev) != strip(r) {
            d.plan.refused.push(format!(
                "config reload not supported for LeafNode: remote urls={:?}, account={:?}: unsupported change",
                r.urls.iter().map(|u| u.raw.as_str()).collect::<Vec<_>>(),
                if r.local_account.is_empty() { "$G" } else { &r.local_account }
            ));
            return;
        }
    }
    d.cmp_opaque("LeafNode", old, new, Policy::Reload);
}

/// JetStream: on/off reloads; limits may grow but not shrink or switch between dynamic and
/// fixed; the store directory is fixed while enabled.
fn jetstream(d: &mut Differ, old: &Options, new: &Options) {
    let (o, n) = (&old.jetstream, &new.jetstream);
    let enabled = o.enabled;
    let disabling = !n.enabled;
    d.cmp("JetStream", &o.enabled, &n.enabled, Policy::Reload);
    let mut limits_changed = false;
    for (field, ov, nv) in [
        ("JetStreamMaxMemory", o.max_memory, n.max_memory),
        ("JetStreamMaxStore", o.max_store, n.max_store),
    ] {
        if !enabled || ov == nv {
            continue;
        }
        let (from_unset, to_unset) = (ov == -1, nv == -1);
        if !from_unset && !to_unset && nv > ov {
            d.plan.reloadable.push(Change {
                field,
                old: ov.to_string(),
                new: nv.to_string(),
            });
        } else if !from_unset && to_unset {
            limits_changed = true;
        } else if from_unset && !to_unset {
            d.plan.refused.push(
                "config reload not supported for jetstream dynamic max memory and store".into(),
            );
        } else {
            d.plan.refused.push(
                "config reload not supported for decreasing jetstream max memory and store".into(),
            );
        }
    }
    if limits_changed && !disabling {
        d.plan
            .refused
            .push("config reload not supported for jetstream max memory and max store".into());
    }
    if enabled && o.store_dir != n.store_dir {
        if !n.store_dir.is_empty() {
            d.plan
                .refused
                .push("config reload not supported for jetstream storage directory".into());
        } else if !disabling {
            d.plan
                .refused
                .push("config reload not supported for jetstream storage dir".into());
        }
    }
    if n.enabled {
        d.cmp(
            "JetStreamConcurrentIOs",
            &o.max_concurrent_io,
            &n.max_concurrent_io,
            Policy::Refuse,
        );
    }
    d.cmp(
        "JetStreamMetaCompact",
        &o.meta_compact,
        &n.meta_compact,
        Policy::Reload,
    );
    d.cmp(
        "JetStreamMetaCompactSize",
        &o.meta_compact_size,
        &n.meta_compact_size,
        Policy::Reload,
    );
    d.cmp(
        "JetStreamMetaCompactSync",
        &o.meta_compact_sync,
        &n.meta_compact_sync,
        Policy::Reload,
    );
    d.cmp("NoJetStreamStrict", &!o.strict, &!n.strict, Policy::Refuse);
    d.cmp("JetStreamDomain", &o.domain, &n.domain, Policy::Refuse);
    d.cmp(
        "JetStreamExtHint",
        &o.extension_hint,
        &n.extension_hint,
        Policy::Refuse,
    );
    d.cmp("JetStreamKey", &o.key, &n.key, Policy::Refuse);
    d.cmp("JetStreamOldKey", &o.prev_key, &n.prev_key, Policy::Refuse);
    d.cmp("JetStreamCipher", &o.cipher, &n.cipher, Policy::Refuse);
    d.cmp(
        "JetStreamUniqueTag",
        &o.unique_tag,
        &n.unique_tag,
        Policy::Refuse,
    );
    d.cmp_opaque("JetStreamLimits", &o.limits, &n.limits, Policy::Refuse);
    d.cmp_opaque("JetStreamTpm", &o.tpm, &n.tpm, Policy::Refuse);
    d.cmp(
        "JetStreamMaxCatchup",
        &o.max_outstanding_catchup,
        &n.max_outstanding_catchup,
        Policy::Refuse,
    );
    d.cmp(
        "JetStreamRequestQueueLimit",
        &o.request_queue_limit,
        &n.request_queue_limit,
        Policy::Refuse,
    );
    d.cmp(
        "JetStreamInfoQueueLimit",
        &o.info_queue_limit,
        &n.info_queue_limit,
        Policy::Refuse,
    );
    d.cmp(
        "StreamMaxBufferedMsgs",
        &o.max_buffered_msgs,
        &n.max_buffered_msgs,
        Policy::Refuse,
    );
    d.cmp(
        "StreamMaxBufferedSize",
        &o.max_buffered_size,
        &n.max_buffered_size,
        Policy::Refuse,
    );
    d.cmp(
        "SyncInterval",
        &o.sync_interval,
        &n.sync_interval,
        Policy::Refuse,
    );
    d.cmp("SyncAlways", &o.sync_always, &n.sync_always, Policy::Refuse);
}

/// MQTT: the ack/replica/storage knobs reload, anything else refuses.
fn mqtt(d: &mut Differ, old: &MqttOpts, new: &MqttOpts) {
    if old == new {
        return;
    }
    let strip = |m: &MqttOpts| {
        let mut m = m.clone();
        m.tls = None;
        m.ack_wait = Duration::ZERO;
        m.max_ack_pending = 0;
        m.stream_replicas = 0;
        m.consumer_memory_storage = false;
        m.consumer_inactive_threshold = Duration::ZERO;
        m
    };
    if strip(old) != strip(new) {
        d.refuse("MQTT", "{...}".into(), "{...}".into());
        return;
    }
    d.cmp_opaque("MQTT", old, new, Policy::Reload);
}

#[cfg(test)]
mod tests {
    use super::*;

    fn with_telemetry(f: impl FnOnce(&mut crate::options::TelemetryOpts)) -> Options {
        let mut o = Options::default();
        f(&mut o.telemetry);
        o
    }

    #[test]
    fn otlp_endpoint_service_name_and_ratio_reload() {
        let old = Options::default();
        let new = with_telemetry(|t| {
            t.otlp_endpoint = "http://collector:4317".into();
            t.service_name = "natrix-a".into();
            t.sample_ratio = 0.5;
        });
        let plan = diff(&old, &new);
        assert!(plan.is_allowed(), "{:?}", plan.refused);
        for field in [
            "TelemetryEndpoint",
            "TelemetryServiceName",
            "TelemetrySampleRatio",
        ] {
            assert!(plan.changed(field), "{field} should reload: {plan:?}");
        }
        let endpoint = plan
            .reloadable
            .iter()
            .find(|c| c.field == "TelemetryEndpoint")
            .expect("endpoint change");
        assert_eq!(endpoint.old, "");
        assert_eq!(endpoint.new, "http://collector:4317");
        // Removing the endpoint (export off) reloads too.
        assert!(diff(&new, &old).is_allowed());
    }

    #[test]
    fn otlp_service_name_alone_reloads() {
        let a = with_telemetry(|t| t.service_name = "natrix-a".into());
        let b = with_telemetry(|t| t.service_name = "natrix-b".into());
        let plan = diff(&a, &b);
        assert!(plan.is_allowed(), "{:?}", plan.refused);
        assert_eq!(plan.reloadable.len(), 1, "{plan:?}");
        assert!(plan.changed("TelemetryServiceName"));
    }

    #[test]
    fn log_format_needs_a_restart() {
        let old = Options::default();
        let new = with_telemetry(|t| {
            t.log_format = LogFormat::Json;
            t.otlp_endpoint = "http://collector:4317".into();
        });
        let plan = diff(&old, &new);
        assert!(!plan.is_allowed());
        assert_eq!(
            plan.error(),
            Some("config reload not supported for TelemetryLogFormat: old=text, new=json")
        );
        // The endpoint alone would have reloaded; the refusal is the log format's.
        assert_eq!(plan.refused.len(), 1, "{:?}", plan.refused);
    }

    #[test]
    fn unchanged_telemetry_is_no_change() {
        let a = with_telemetry(|t| {
            t.otlp_endpoint = "http://collector:4317".into();
            t.service_name = "natrix".into();
            t.sample_ratio = 0.25;
            t.log_format = LogFormat::Json;
        });
        assert!(diff(&a, &a.clone()).is_empty());
    }
}
