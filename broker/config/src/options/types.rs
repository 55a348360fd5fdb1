//! The typed pieces of [`super::Options`]: auth, TLS, URLs and the subsystem blocks.

use std::fmt;
use std::time::Duration;

use crate::conf::{Spanned, Value};

/// What a connection does when a write blocks past `write_deadline` (`write_timeout`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum WriteTimeoutPolicy {
    #[default]
    Default,
    Close,
    Retry,
}

/// Allow/deny subject lists. `None` and an empty list differ, as in nats-server: an absent
/// `allow` allows everything, an empty one nothing (set when `allow_responses` is on).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct SubjectPermission {
    pub allow: Option<Vec<String>>,
    pub deny: Option<Vec<String>>,
}

/// `allow_responses`: a client may publish to reply subjects of requests it received.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ResponsePermission {
    /// Responses allowed per request; negative means unlimited.
    pub max_msgs: i64,
    /// How long the permission lasts; `None` means forever (a negative value in the config).
    pub expires: Option<Duration>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Permissions {
    pub publish: Option<SubjectPermission>,
    pub subscribe: Option<SubjectPermission>,
    pub response: Option<ResponsePermission>,
}

/// Route permissions: nats-server's `import` (what we accept from the route: its publish)
/// and `export` (what we send: its subscribe).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RoutePermissions {
    pub import: Option<SubjectPermission>,
    pub export: Option<SubjectPermission>,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct User {
    pub username: String,
    pub password: String,
    pub permissions: Option<Permissions>,
    /// Upper-cased connection types (`STANDARD`, `WEBSOCKET`, `LEAFNODE`, `LEAFNODE_WS`,
    /// `MQTT`, `MQTT_WS`, `IN_PROCESS`); `None` allows all.
    pub allowed_connection_types: Option<Vec<String>>,
    pub proxy_required: bool,
    /// The account the user is bound to (from the `accounts {}` block); empty: `$G`.
    pub account: String,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct NkeyUser {
    pub nkey: String,
    pub permissions: Option<Permissions>,
    pub allowed_connection_types: Option<Vec<String>>,
    pub proxy_required: bool,
    /// The account the user is bound to (from the `accounts {}` block); empty: `$G`.
    pub account: String,
}

/// `authorization { auth_callout {...} }`: delegate authentication to a service.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AuthCallout {
    pub issuer: String,
    /// Defaults to the global account `$G`.
    pub account: String,
    pub auth_users: Vec<String>,
    pub xkey: String,
    pub allowed_accounts: Vec<String>,
}

/// A certificate/key pair of `tls { certs: [...] }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CertPair {
    pub cert_file: String,
    pub key_file: String,
}

/// A `tls {}` block as written. Loading certificates is the TLS module's job; this only
/// records and checks the settings.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct TlsConfig {
    pub cert_file: String,
    pub key_file: String,
    pub ca_file: String,
    pub verify: bool,
    /// `verify_and_map`: client certificate subjects map to users.
    pub map: bool,
    /// `verify_cert_and_check_known_urls` (routes and gateways).
    pub check_known_urls: bool,
    pub insecure: bool,
    pub allow_insecure_cipher_suites: bool,
    /// Cipher suite names as written (validated by the TLS module).
    pub cipher_suites: Vec<String>,
    pub curve_preferences: Vec<String>,
    /// `timeout`; `None` uses the default for the listener.
    pub timeout: Option<Duration>,
    pub connection_rate_limit: i64,
    /// Lower-case hex SHA-256 of certificate public keys.
    pub pinned_certs: Vec<String>,
    pub handshake_first: bool,
    pub handshake_first_fallback: Option<Duration>,
    /// `"1.2"` or `"1.3"`.
    pub min_version: String,
    pub certs: Vec<CertPair>,
    pub cert_store: String,
    pub cert_match_by: String,
    pub cert_match: String,
    pub cert_match_skip_invalid: bool,
    pub ca_certs_match: Vec<String>,
    pub ocsp_peer: Option<Spanned<Value>>,
}

/// A URL from the config (`nats-route://user:pass@host:port`), split the way the servers
/// need it. The text as written is kept for display and comparison.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UrlOpt {
    pub raw: String,
    pub scheme: String,
    pub username: Option<String>,
    pub password: Option<String>,
    pub host: String,
    pub port: Option<u16>,
    pub path: String,
}

impl UrlOpt {
    /// Lenient URL split, close to Go's `url.Parse` for the URLs nats-server configs use.
    /// Fails on control characters and non-numeric ports.
    pub fn parse(raw: &str) -> Result<Self, String> {
        let s = raw.trim();
        if s.chars().any(|c| c.is_control()) {
            return Err("invalid control character in URL".into());
        }
        let (scheme, rest) = match s.find("://") {
            Some(i) => (s[..i].to_ascii_lowercase(), &s[i + 3..]),
            None => (String::new(), s),
        };
        let (authority, path) = match rest.find(['/', '?', '#']) {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, ""),
        };
        let (userinfo, hostport) = match authority.rfind('@') {
            Some(i) => (Some(&authority[..i]), &authority[i + 1..]),
            None => (None, authority),
        };
        let (username, password) = match userinfo {
            Some(ui) => match ui.split_once(':') {
                Some((u, p)) => (Some(unescape(u)), Some(unescape(p))),
                None => (Some(unescape(ui)), None),
            },
            None => (None, None),
        };
        let (host, port) = if let Some(rest) = hostport.strip_prefix('[') {
            match rest.split_once(']') {
                Some((h, tail)) => {
                    let port = match tail.strip_prefix(':') {
                        Some(p) if !p.is_empty() => Some(parse_port(p)?),
                        Some(_) => None,
                        None if tail.is_empty() => None,
                        None => return Err(format!("invalid port {tail:?} after host")),
                    };
                    (h.to_string(), port)
                }
                None => return Err("missing ']' in host".into()),
            }
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) if !p.is_empty() => (h.to_string(), Some(parse_port(p)?)),
                Some((h, _)) => (h.to_string(), None),
                None => (hostport.to_string(), None),
            }
        };
        Ok(Self {
            raw: s.to_string(),
            scheme,
            username,
            password,
            host,
            port,
            path: path.to_string(),
        })
    }

    /// `host:port` for dialing, when the URL has a port.
    pub fn host_port(&self) -> Option<String> {
        let port = self.port?;
        Some(if self.host.contains(':') {
            format!("[{}]:{port}", self.host)
        } else {
            format!("{}:{port}", self.host)
        })
    }
}

impl fmt::Display for UrlOpt {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.raw)
    }
}

fn parse_port(p: &str) -> Result<u16, String> {
    if !p.bytes().all(|b| b.is_ascii_digit()) {
        return Err(format!("invalid port \":{p}\" after host"));
    }
    p.parse()
        .map_err(|_| format!("invalid port \":{p}\" after host"))
}

/// Percent-decoding of user info (`%40` → `@`); invalid escapes are kept as written.
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'%'
            && i + 2 < b.len()
            && let (Some(h), Some(l)) = (
                char::from(b[i + 1]).to_digit(16),
                char::from(b[i + 2]).to_digit(16),
            )
        {
            out.push(u8::try_from(h * 16 + l).unwrap_or(b'%'));
            i += 3;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// Route/leafnode compression (`compression: s2_fast` / `true` / `{mode, rtt_thresholds}`).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct CompressionOpts {
    pub mode: String,
    pub rtt_thresholds: Vec<Duration>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct ClusterOpts {
    pub name: String,
    pub host: String,
    /// -1 picks a free port; 0 means no cluster listener.
    pub port: i32,
    /// `--cluster`/`--cluster_listen` as given on the command line.
    pub listen_str: String,
    pub username: String,
    pub password: String,
    pub auth_timeout: Duration,
    pub permissions: Option<RoutePermissions>,
    pub tls: Option<TlsConfig>,
    pub tls_timeout: Duration,
    pub advertise: String,
    pub no_advertise: bool,
    pub connect_retries: i64,
    pub connect_backoff: bool,
    pub pool_size: i64,
    /// `accounts`: accounts with dedicated route connections.
    pub pinned_accounts: Vec<String>,
    pub compression: CompressionOpts,
    pub ping_interval: Duration,
    pub ping_max: i64,
    pub write_deadline: Duration,
    pub write_timeout: WriteTimeoutPolicy,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RemoteGatewayOpts {
    pub name: String,
    pub urls: Vec<UrlOpt>,
    pub tls: Option<TlsConfig>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct GatewayOpts {
    pub name: String,
    pub host: String,
    pub port: i32,
    pub username: String,
    pub password: String,
    pub auth_timeout: Duration,
    pub tls: Option<TlsConfig>,
    pub tls_timeout: Duration,
    pub advertise: String,
    pub connect_retries: i64,
    pub connect_backoff: bool,
    pub gateways: Vec<RemoteGatewayOpts>,
    pub reject_unknown: bool,
    pub write_deadline: Duration,
    pub write_timeout: WriteTimeoutPolicy,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct LeafUser {
    pub username: String,
    pub password: String,
    pub account: String,
    pub proxy_required: bool,
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RemoteLeafProxy {
    pub url: String,
    pub username: String,
    pub password: String,
    pub timeout: Duration,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct RemoteLeafOpts {
    pub urls: Vec<UrlOpt>,
    pub local_account: String,
    pub no_randomize: bool,
    pub credentials: String,
    pub nkey: String,
    pub tls: Option<TlsConfig>,
    pub hub: bool,
    pub deny_imports: Vec<String>,
    pub deny_exports: Vec<String>,
    pub ws_compression: bool,
    pub ws_no_masking: bool,
    pub jetstream_cluster_migrate: bool,
    pub jetstream_cluster_migrate_delay: Duration,
    pub local_isolation: bool,
    pub request_isolation: bool,
    pub compression: CompressionOpts,
    pub first_info_timeout: Duration,
    pub dial_timeout: Duration,
    pub disabled: bool,
    pub proxy: RemoteLeafProxy,
    pub ignore_discovered_servers: bool,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct LeafNodeOpts {
    pub host: String,
    pub port: i32,
    pub username: String,
    pub password: String,
    pub nkey: String,
    pub account: String,
    pub users: Vec<LeafUser>,
    pub proxy_required: bool,
    pub auth_timeout: Duration,
    pub tls: Option<TlsConfig>,
    pub tls_timeout: Duration,
    pub advertise: String,
    pub no_advertise: bool,
    pub reconnect_interval: Duration,
    pub dial_timeout: Duration,
    pub compression: CompressionOpts,
    pub remotes: Vec<RemoteLeafOpts>,
    pub min_version: String,
    pub isolate_leafnode_interest: bool,
    pub write_deadline: Duration,
    pub write_timeout: WriteTimeoutPolicy,
}

/// An account's JetStream limits (`accounts { A { jetstream { ... } } }`); -1 is
/// unlimited.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AccountJsLimits {
    pub max_memory: i64,
    pub max_store: i64,
    pub max_streams: i64,
    pub max_consumers: i64,
    pub max_ack_pending: i64,
    pub memory_max_stream_bytes: i64,
    pub storage_max_stream_bytes: i64,
    pub max_bytes_required: bool,
}

impl Default for AccountJsLimits {
    fn default() -> Self {
        Self {
            max_memory: -1,
            max_store: -1,
            max_streams: -1,
            max_consumers: -1,
            max_ack_pending: -1,
            memory_max_stream_bytes: -1,
            storage_max_stream_bytes: -1,
            max_bytes_required: false,
        }
    }
}

/// `jetstream { limits { batch {...} } }`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JsLimitOpts {
    pub max_request_batch: i64,
    pub max_ack_pending: i64,
    pub max_ha_assets: i64,
    pub duplicate_window: Duration,
    pub max_batch_inflight_per_stream: i64,
    pub max_batch_inflight_total: i64,
    pub max_batch_size: i64,
    pub max_batch_timeout: Duration,
}

#[derive(Clone, Debug, PartialEq)]
pub struct JetStreamOpts {
    pub enabled: bool,
    /// `strict` (default true); nats-server stores the inverse as `NoJetStreamStrict`.
    pub strict: bool,
    /// `store_dir` (top level or in the block).
    pub store_dir: String,
    pub sync_interval: Duration,
    pub sync_always: bool,
    /// -1: dynamic (a share of system memory).
    pub max_memory: i64,
    /// -1: dynamic (a share of the disk).
    pub max_store: i64,
    pub domain: String,
    pub key: String,
    pub prev_key: String,
    /// `aes` or `chacha` (normalised to lower case); empty when unset.
    pub cipher: String,
    pub extension_hint: String,
    pub limits: JsLimitOpts,
    pub tpm: Option<Spanned<Value>>,
    pub unique_tag: String,
    pub max_outstanding_catchup: i64,
    pub max_buffered_size: i64,
    pub max_buffered_msgs: i64,
    pub request_queue_limit: i64,
    pub info_queue_limit: i64,
    pub meta_compact: u64,
    pub meta_compact_size: u64,
    pub meta_compact_sync: bool,
    pub max_concurrent_io: i64,
}

impl Default for JetStreamOpts {
    fn default() -> Self {
        Self {
            enabled: false,
            strict: true,
            store_dir: String::new(),
            sync_interval: super::DEFAULT_SYNC_INTERVAL,
            sync_always: false,
            max_memory: -1,
            max_store: -1,
            domain: String::new(),
            key: String::new(),
            prev_key: String::new(),
            cipher: String::new(),
            extension_hint: String::new(),
            limits: JsLimitOpts::default(),
            tpm: None,
            unique_tag: String::new(),
            max_outstanding_catchup: 0,
            max_buffered_size: 0,
            max_buffered_msgs: 0,
            request_queue_limit: super::JS_DEFAULT_REQUEST_QUEUE_LIMIT,
            info_queue_limit: super::JS_DEFAULT_REQUEST_QUEUE_LIMIT,
            meta_compact: 0,
            meta_compact_size: 0,
            meta_compact_sync: false,
            max_concurrent_io: super::DEFAULT_CONCURRENT_IOS,
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct WebsocketOpts {
    pub host: String,
    pub port: i32,
    pub advertise: String,
    pub no_auth_user: String,
    pub jwt_cookie: String,
    pub username_cookie: String,
    pub password_cookie: String,
    pub token_cookie: String,
    pub username: String,
    pub password: String,
    pub token: String,
    pub auth_timeout: Duration,
    pub no_tls: bool,
    pub tls: Option<TlsConfig>,
    pub same_origin: bool,
    pub allowed_origins: Vec<String>,
    pub compression: bool,
    pub handshake_timeout: Duration,
    pub ping_interval: Duration,
    pub headers: Vec<(String, String)>,
}

#[derive(Clone, Debug, Default, PartialEq)]
pub struct MqttOpts {
    pub host: String,
    pub port: i32,
    pub no_auth_user: String,
    pub username: String,
    pub password: String,
    pub token: String,
    pub auth_timeout: Duration,
    pub tls: Option<TlsConfig>,
    pub tls_timeout: Duration,
    pub js_domain: String,
    pub stream_replicas: i64,
    pub consumer_memory_storage: bool,
    pub consumer_inactive_threshold: Duration,
    pub ack_wait: Duration,
    pub js_api_timeout: Duration,
    pub max_ack_pending: u16,
    pub reject_qos2_publish: bool,
    pub downgrade_qos2_subscribe: bool,
}

#[cfg(test)]
mod tests {
    use super::UrlOpt;

    #[test]
    fn urls_split_like_go() {
        let u = UrlOpt::parse(" nats-route://user:p%40ss@host.example:6222/x ").unwrap();
        assert_eq!(u.scheme, "nats-route");
        assert_eq!(u.username.as_deref(), Some("user"));
        assert_eq!(u.password.as_deref(), Some("p@ss"));
        assert_eq!(u.host, "host.example");
        assert_eq!(u.port, Some(6222));
        assert_eq!(u.path, "/x");
        assert_eq!(u.host_port().as_deref(), Some("host.example:6222"));
        let v6 = UrlOpt::parse("nats://[::1]:4222").unwrap();
        assert_eq!((v6.host.as_str(), v6.port), ("::1", Some(4222)));
        assert_eq!(v6.host_port().as_deref(), Some("[::1]:4222"));
        let bare = UrlOpt::parse("nats://host").unwrap();
        assert_eq!(bare.port, None);
        assert!(UrlOpt::parse("nats://host:port").is_err());
        assert!(UrlOpt::parse("nats://ho\nst:1").is_err());
        assert!(UrlOpt::parse("nats://[::1:4222").is_err());
    }
}

/// How log lines are written.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum LogFormat {
    /// nats-server's line format.
    #[default]
    Text,
    /// One JSON object per line.
    Json,
}

/// natrix's own `telemetry {}` block (nats-server has none): log format and the
/// OpenTelemetry trace export. The standard `OTEL_EXPORTER_OTLP_ENDPOINT`,
/// `OTEL_SERVICE_NAME` and `OTEL_TRACES_SAMPLER_ARG` variables fill what the block leaves
/// unset.
#[derive(Clone, Debug, PartialEq)]
pub struct TelemetryOpts {
    pub log_format: LogFormat,
    /// OTLP/gRPC endpoint (`http://host:4317`); empty: trace export off.
    pub otlp_endpoint: String,
    pub service_name: String,
    /// Share of messages without a sampled `traceparent` that get a span (0.0 to 1.0).
    /// Messages whose `traceparent` says "sampled" are always traced.
    pub sample_ratio: f64,
}

impl Default for TelemetryOpts {
    fn default() -> Self {
        Self {
            log_format: LogFormat::Text,
            otlp_endpoint: String::new(),
            service_name: String::new(),
            sample_ratio: 0.0,
        }
    }
}
