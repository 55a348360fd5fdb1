//! Typed server options with nats-server's names and defaults, read from a config file.
//!
//! This module owns the meaning of every config key of nats-server's `opts.go`
//! (`processConfigFileLine` and the block parsers): which keys exist (and their aliases),
//! what types they take, what the defaults are (`const.go`, `setBaselineOptions`), and which
//! diagnostics a bad value gets (same wording, prefixed with `file:line:col`).
//!
//! Subsystems the broker does not run yet (gateways, leaf nodes, websocket, MQTT, JetStream)
//! are still parsed into typed structs so that configs written for nats-server load without
//! complaint; where a block is too rich to type now (`accounts`, `resolver`, `ocsp`, ...)
//! the raw [`Value`] is kept for later work.
//!
//! Loading is: parse the file ([`crate::conf`]) → process keys into [`Options`] → apply
//! command-line flags ([`crate::flags::Flags`]) → fill defaults ([`Options::apply_baseline`]).
//! [`Options::load`] runs that whole pipeline; reload runs it again and diffs.

mod blocks;
mod imports;
mod mappings;
mod nkeys;
mod parse;
mod resolver;
mod types;

use std::fmt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::conf::{self, ConfError, Loader, Pos, Spanned, SystemLoader, Value};
use crate::flags::Flags;

pub use resolver::{
    DEFAULT_CACHE_RESOLVER_LIMIT, DEFAULT_RESOLVER_FETCH_TIMEOUT, DEFAULT_RESOLVER_SYNC_INTERVAL,
    DeleteMode, DirResolverKind, DirResolverOpts, RESOLVER_KIND_ERROR, ResolverOpts,
    load_operators, read_operator_jwt,
};

pub use imports::{
    DEFAULT_RESPONSE_THRESHOLD, Export, ExportKind, Import, ImportError, Latency, ResponseType,
    authorized, forms_cycle, subjects_collide,
};
pub use mappings::SubjectMapping;
pub use types::*;

/// nats-server's `DEFAULT_PORT`.
pub const DEFAULT_PORT: i32 = 4222;
/// nats-server's `RANDOM_PORT`: pick any free port.
pub const RANDOM_PORT: i32 = -1;
/// nats-server's `DEFAULT_HOST`.
pub const DEFAULT_HOST: &str = "0.0.0.0";
/// nats-server's `MAX_CONTROL_LINE_SIZE`.
pub const MAX_CONTROL_LINE_SIZE: i32 = 4096;
/// nats-server's `MAX_PAYLOAD_SIZE` (1 MiB).
pub const MAX_PAYLOAD_SIZE: i32 = 1024 * 1024;
/// nats-server's `MAX_PAYLOAD_MAX_SIZE`: above this the server warns.
pub const MAX_PAYLOAD_MAX_SIZE: i32 = 8 * 1024 * 1024;
/// nats-server's `MAX_PENDING_SIZE` (64 MiB).
pub const MAX_PENDING_SIZE: i64 = 64 * 1024 * 1024;
/// nats-server's `DEFAULT_MAX_CONNECTIONS`.
pub const DEFAULT_MAX_CONNECTIONS: i64 = 64 * 1024;
/// nats-server's `TLS_TIMEOUT`.
pub const TLS_TIMEOUT: Duration = Duration::from_secs(2);
/// nats-server's `AUTH_TIMEOUT` (when TLS is configured the default is the TLS timeout + 1s).
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(2);
/// nats-server's `DEFAULT_PING_INTERVAL`.
pub const DEFAULT_PING_INTERVAL: Duration = Duration::from_secs(120);
/// nats-server's `DEFAULT_PING_MAX_OUT`.
pub const DEFAULT_PING_MAX_OUT: i64 = 2;
/// nats-server's `DEFAULT_FLUSH_DEADLINE` (write_deadline).
pub const DEFAULT_FLUSH_DEADLINE: Duration = Duration::from_secs(10);
/// nats-server's `DEFAULT_MAX_CLOSED_CLIENTS`.
pub const DEFAULT_MAX_CLOSED_CLIENTS: i64 = 10_000;
/// nats-server's `DEFAULT_LAME_DUCK_DURATION`.
pub const DEFAULT_LAME_DUCK_DURATION: Duration = Duration::from_secs(120);
/// nats-server's `DEFAULT_LAME_DUCK_GRACE_PERIOD`.
pub const DEFAULT_LAME_DUCK_GRACE_PERIOD: Duration = Duration::from_secs(10);
/// nats-server's `DEFAULT_CONNECT_ERROR_REPORTS`.
pub const DEFAULT_CONNECT_ERROR_REPORTS: i64 = 3600;
/// nats-server's `DEFAULT_RECONNECT_ERROR_REPORTS`.
pub const DEFAULT_RECONNECT_ERROR_REPORTS: i64 = 1;
/// nats-server's `DEFAULT_ROUTE_POOL_SIZE`.
pub const DEFAULT_ROUTE_POOL_SIZE: i64 = 3;
/// nats-server's `DEFAULT_LEAF_NODE_RECONNECT`.
pub const DEFAULT_LEAF_NODE_RECONNECT: Duration = Duration::from_secs(1);
/// nats-server's `DEFAULT_LEAFNODE_PORT` (added to remote URLs without a port).
pub const DEFAULT_LEAFNODE_PORT: u16 = 7422;
/// nats-server's `DEFAULT_LEAFNODE_INFO_WAIT`.
pub const DEFAULT_LEAFNODE_INFO_WAIT: Duration = Duration::from_secs(1);
/// nats-server's `DEFAULT_LEAF_TLS_TIMEOUT`.
pub const DEFAULT_LEAF_TLS_TIMEOUT: Duration = Duration::from_secs(2);
/// nats-server's `DEFAULT_ALLOW_RESPONSE_MAX_MSGS`.
pub const DEFAULT_ALLOW_RESPONSE_MAX_MSGS: i64 = 1;
/// nats-server's `DEFAULT_ALLOW_RESPONSE_EXPIRATION`.
pub const DEFAULT_ALLOW_RESPONSE_EXPIRATION: Duration = Duration::from_secs(120);
/// nats-server's `DEFAULT_SYSTEM_ACCOUNT`.
pub const DEFAULT_SYSTEM_ACCOUNT: &str = "$SYS";
/// nats-server's `DEFAULT_HTTP_PORT`, the conventional monitoring port (monitoring is off unless
/// a port is configured).
pub const DEFAULT_HTTP_PORT: i32 = 8222;
/// nats-server's JetStream `defaultSyncInterval`.
pub const DEFAULT_SYNC_INTERVAL: Duration = Duration::from_secs(120);
/// nats-server's `JSDefaultRequestQueueLimit`.
pub const JS_DEFAULT_REQUEST_QUEUE_LIMIT: i64 = 10_000;
/// nats-server's `defaultConcurrentIOs`.
pub const DEFAULT_CONCURRENT_IOS: i64 = 4096;
/// nats-server's `routeMaxPingInterval`: larger cluster ping intervals are reset to it.
pub const ROUTE_MAX_PING_INTERVAL: Duration = Duration::from_secs(30);

/// What to do with config keys nats-server does not know.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Strictness {
    /// nats-server's behaviour (its option parsing always runs in pedantic mode): an unknown
    /// field is an error and the config does not load.
    #[default]
    Strict,
    /// Unknown fields are reported as warnings and ignored (what nats-server's
    /// `NoErrOnUnknownFields(true)` does for top-level keys, extended to every block).
    Lenient,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DiagnosticKind {
    /// A value that cannot be used; the config does not load.
    Error,
    /// A key nats-server does not know (`unknown field "x"`).
    UnknownField,
    /// Loads, but something deserves attention (deprecated or suspicious settings).
    Warning,
}

/// One finding about a config, located at the key it concerns. Displays as nats-server's
/// config errors do: `<file>:<line>:<col>: <message>`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Diagnostic {
    pub kind: DiagnosticKind,
    pub pos: Option<Pos>,
    pub message: String,
}

/// Non-fatal findings returned alongside successfully loaded options.
pub type Warning = Diagnostic;

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pos {
            Some(p) => write!(f, "{p}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Why options could not be loaded.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ConfigError {
    /// The file could not be read or is not in the config language.
    #[error("{0}")]
    Parse(#[from] ConfError),
    /// The config parsed but some values are unusable. Displays like nats-server: warnings
    /// first, then errors, one per line.
    #[error("{}", render_findings(.warnings, .errors))]
    Invalid {
        errors: Vec<Diagnostic>,
        warnings: Vec<Diagnostic>,
    },
    /// A command-line flag could not be applied over the config (`--cluster` URL without
    /// port, TLS flags without certificate, ...).
    #[error("{0}")]
    Flag(String),
}

fn render_findings(warnings: &[Diagnostic], errors: &[Diagnostic]) -> String {
    let mut lines: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    lines.extend(errors.iter().map(ToString::to_string));
    lines.join("\n")
}

impl ConfigError {
    /// All hard errors (a parse error counts as one).
    pub fn errors(&self) -> Vec<String> {
        match self {
            ConfigError::Parse(e) => vec![e.to_string()],
            ConfigError::Invalid { errors, .. } => errors.iter().map(ToString::to_string).collect(),
            ConfigError::Flag(m) => vec![m.clone()],
        }
    }
}

/// Every option nats-server reads from its config file and command line.
///
/// Field names follow the config keys; the reload diff reports them under nats-server's Go
/// field names. Defaults are nats-server's (see the `DEFAULT_*` constants). A few defaults
/// depend on other options and are filled by [`Options::apply_baseline`] at the end of
/// loading: `auth_timeout` (TLS timeout + 1s when TLS is on, else 2s), hosts of enabled
/// listeners, and the cluster/leafnode compression modes.
#[derive(Clone, Debug, PartialEq)]
pub struct Options {
    /// The file these options were read from (`-c`), if any.
    pub config_file: Option<PathBuf>,
    /// [`conf::Document::digest`] of that file.
    pub config_digest: Option<String>,
    /// The config file and every file it included, in the order they were read: what a
    /// running server watches for changes.
    pub config_files: Vec<PathBuf>,

    // --- server identity and client listener
    pub server_name: String,
    pub host: String,
    /// -1 ([`RANDOM_PORT`]) means any free port.
    pub port: i32,
    pub client_advertise: String,
    pub server_tags: Vec<String>,
    pub server_metadata: Vec<(String, String)>,
    pub feature_flags: Vec<(String, bool)>,
    pub proxy_protocol: bool,

    // --- logging
    pub debug: bool,
    pub trace: bool,
    pub trace_verbose: bool,
    pub trace_headers: bool,
    pub logtime: bool,
    pub logtime_utc: bool,
    pub log_file: String,
    pub log_size_limit: i64,
    pub log_max_num: i64,
    pub syslog: bool,
    pub remote_syslog: String,
    pub max_traced_msg_len: i64,
    pub pid_file: String,
    pub ports_file_dir: String,
    pub prof_port: i32,
    pub prof_block_rate: i64,
    pub connect_error_reports: i64,
    pub reconnect_error_reports: i64,

    // --- limits
    /// 0 in the config means "no connections" and is stored as -1, as nats-server does.
    pub max_connections: i64,
    /// 0 = unlimited.
    pub max_subscriptions: i64,
    /// 0 = unlimited.
    pub max_sub_tokens: u8,
    pub max_payload: i32,
    pub max_control_line: i32,
    pub max_pending: i64,
    pub ping_interval: Duration,
    pub ping_max: i64,
    pub write_deadline: Duration,
    pub write_timeout: WriteTimeoutPolicy,
    pub lame_duck_duration: Duration,
    pub lame_duck_grace_period: Duration,
    pub max_closed_clients: i64,
    pub no_sublist_cache: bool,
    pub no_header_support: bool,
    pub no_fast_producer_stall: bool,

    // --- monitoring
    /// Empty: same as `host`.
    pub http_host: String,
    pub http_port: i32,
    pub https_port: i32,
    pub http_base_path: String,

    // --- client authentication (top-level `authorization {}` and `--user/--pass/--auth`)
    pub username: String,
    pub password: String,
    /// The `token` of the authorization block (`--auth`); nats-server's `Authorization`.
    pub authorization: String,
    /// Zero until [`Options::apply_baseline`] derives it.
    pub auth_timeout: Duration,
    pub users: Vec<User>,
    pub nkeys: Vec<NkeyUser>,
    pub default_permissions: Option<Permissions>,
    pub auth_callout: Option<AuthCallout>,
    pub proxy_required: bool,
    pub no_auth_user: String,
    /// Whether the config had an `authorization` block at all.
    pub auth_block_defined: bool,

    // --- client TLS
    pub tls: Option<TlsConfig>,
    /// `tls.timeout`, default [`TLS_TIMEOUT`].
    pub tls_timeout: Duration,
    pub allow_non_tls: bool,
    pub ocsp: Option<Spanned<Value>>,
    pub ocsp_cache: Option<Spanned<Value>>,

    // --- accounts and trust (kept raw for the auth work)
    pub accounts: Option<Spanned<Value>>,
    /// The account names the `accounts {}` block defines, in order.
    pub account_names: Vec<String>,
    /// The global account's subject mappings (top-level `mappings {}`), checked.
    pub mappings: Vec<SubjectMapping>,
    pub system_account: String,
    pub no_system_account: bool,
    pub default_sentinel: String,
    /// Operator JWT files or inline JWTs.
    pub operators: Vec<String>,
    pub trusted_keys: Vec<String>,
    /// The operator JWTs read from `operators` (files or inline), in the same order.
    pub operator_jwts: Vec<String>,
    /// The raw `resolver` value, as written (the reload diff compares it).
    pub resolver: Option<Spanned<Value>>,
    /// `resolver`, typed with nats-server's defaults; also set from the only operator's
    /// account server URL when no `resolver` is configured.
    pub resolver_opts: Option<ResolverOpts>,
    pub resolver_tls: Option<TlsConfig>,
    pub resolver_preload: Vec<(String, String)>,
    pub resolver_pinned_accounts: Vec<String>,
    pub default_js_domain: Vec<(String, String)>,
    pub proxies: Option<Spanned<Value>>,

    // --- subsystems
    pub cluster: ClusterOpts,
    /// Routes to solicit (`cluster.routes` or `--routes`).
    pub routes: Vec<UrlOpt>,
    /// The `--routes` string, when routes came from the command line.
    pub routes_str: String,
    pub gateway: GatewayOpts,
    pub leafnode: LeafNodeOpts,
    pub jetstream: JetStreamOpts,
    /// Accounts whose `jetstream` is set in the `accounts {}` block: their limits, or
    /// `None` where it is disabled. Accounts not listed follow nats-server's defaults.
    pub account_jetstream: Vec<(String, Option<AccountJsLimits>)>,
    /// Each configured account's subject mappings (`accounts { A { mappings {} } }`).
    pub account_mappings: Vec<(String, Vec<SubjectMapping>)>,
    /// Each configured account's exports (`accounts { A { exports: [...] } }`).
    pub account_exports: Vec<(String, Vec<Export>)>,
    /// Each configured account's imports, already checked against the exports.
    pub account_imports: Vec<(String, Vec<Import>)>,
    pub websocket: WebsocketOpts,
    pub mqtt: MqttOpts,
    /// natrix's `telemetry {}` block.
    pub telemetry: TelemetryOpts,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            config_file: None,
            config_digest: None,
            config_files: Vec::new(),
            server_name: String::new(),
            host: DEFAULT_HOST.to_string(),
            port: DEFAULT_PORT,
            client_advertise: String::new(),
            server_tags: Vec::new(),
            server_metadata: Vec::new(),
            feature_flags: Vec::new(),
            proxy_protocol: false,
            debug: false,
            trace: false,
            trace_verbose: false,
            trace_headers: false,
            // nats-server's -T flag defaults to true and is merged over the config.
            logtime: true,
            logtime_utc: false,
            log_file: String::new(),
            log_size_limit: 0,
            log_max_num: 0,
            syslog: false,
            remote_syslog: String::new(),
            max_traced_msg_len: 0,
            pid_file: String::new(),
            ports_file_dir: String::new(),
            prof_port: 0,
            prof_block_rate: 0,
            connect_error_reports: DEFAULT_CONNECT_ERROR_REPORTS,
            reconnect_error_reports: DEFAULT_RECONNECT_ERROR_REPORTS,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            max_subscriptions: 0,
            max_sub_tokens: 0,
            max_payload: MAX_PAYLOAD_SIZE,
            max_control_line: MAX_CONTROL_LINE_SIZE,
            max_pending: MAX_PENDING_SIZE,
            ping_interval: DEFAULT_PING_INTERVAL,
            ping_max: DEFAULT_PING_MAX_OUT,
            write_deadline: DEFAULT_FLUSH_DEADLINE,
            write_timeout: WriteTimeoutPolicy::Default,
            lame_duck_duration: DEFAULT_LAME_DUCK_DURATION,
            lame_duck_grace_period: DEFAULT_LAME_DUCK_GRACE_PERIOD,
            max_closed_clients: DEFAULT_MAX_CLOSED_CLIENTS,
            no_sublist_cache: false,
            no_header_support: false,
            no_fast_producer_stall: false,
            http_host: String::new(),
            http_port: 0,
            https_port: 0,
            http_base_path: String::new(),
            username: String::new(),
            password: String::new(),
            authorization: String::new(),
            auth_timeout: Duration::ZERO,
            users: Vec::new(),
            nkeys: Vec::new(),
            default_permissions: None,
            auth_callout: None,
            proxy_required: false,
            no_auth_user: String::new(),
            auth_block_defined: false,
            tls: None,
            tls_timeout: TLS_TIMEOUT,
            allow_non_tls: false,
            ocsp: None,
            ocsp_cache: None,
            accounts: None,
            account_names: Vec::new(),
            mappings: Vec::new(),
            system_account: String::new(),
            no_system_account: false,
            default_sentinel: String::new(),
            operators: Vec::new(),
            trusted_keys: Vec::new(),
            operator_jwts: Vec::new(),
            resolver: None,
            resolver_opts: None,
            resolver_tls: None,
            resolver_preload: Vec::new(),
            resolver_pinned_accounts: Vec::new(),
            default_js_domain: Vec::new(),
            proxies: None,
            cluster: ClusterOpts::default(),
            routes: Vec::new(),
            routes_str: String::new(),
            gateway: GatewayOpts::default(),
            leafnode: LeafNodeOpts::default(),
            jetstream: JetStreamOpts::default(),
            account_jetstream: Vec::new(),
            account_mappings: Vec::new(),
            account_exports: Vec::new(),
            account_imports: Vec::new(),
            websocket: WebsocketOpts::default(),
            mqtt: MqttOpts::default(),
            telemetry: TelemetryOpts::default(),
        }
    }
}

/// The result of processing a parsed config: options plus warnings.
type Loaded = (Options, Vec<Warning>);

impl Options {
    /// Reads a config file (with nats-server's strictness) and fills defaults.
    pub fn from_file(path: impl AsRef<Path>) -> Result<Loaded, ConfigError> {
        Self::load(
            Some(path.as_ref()),
            &Flags::default(),
            Strictness::Strict,
            &SystemLoader,
        )
    }

    /// Processes config text; `name` is used in positions and as the include base.
    pub fn from_str(src: &str, name: &str) -> Result<Loaded, ConfigError> {
        Self::from_str_with(src, name, Strictness::Strict, &SystemLoader)
    }

    /// [`Options::from_str`] with a chosen strictness and include/environment source.
    pub fn from_str_with(
        src: &str,
        name: &str,
        strictness: Strictness,
        loader: &dyn Loader,
    ) -> Result<Loaded, ConfigError> {
        let doc = conf::parse_with(src, name, loader)?;
        let (mut opts, warnings) = Self::from_document(&doc, name, strictness)?;
        opts.apply_baseline();
        Ok((opts, warnings))
    }

    /// The whole loading pipeline, used at startup and on every reload: read the config file
    /// (if any), apply the command-line flags over it, fill defaults.
    pub fn load(
        config_file: Option<&Path>,
        flags: &Flags,
        strictness: Strictness,
        loader: &dyn Loader,
    ) -> Result<Loaded, ConfigError> {
        let (mut opts, warnings) = match config_file {
            Some(path) => {
                let doc = conf::parse_file_with(path, loader)?;
                let (mut o, w) = Self::from_document(&doc, &path.to_string_lossy(), strictness)?;
                o.config_file = Some(path.to_path_buf());
                (o, w)
            }
            None => (Options::default(), Vec::new()),
        };
        flags
            .apply_to(&mut opts)
            .map_err(|e| ConfigError::Flag(e.to_string()))?;
        opts.apply_baseline();
        Ok((opts, warnings))
    }

    /// Turns a parsed document into options (no flags, no baseline). Warnings come back with
    /// the options; any error fails the whole load, reporting every finding.
    pub fn from_document(
        doc: &conf::Document,
        name: &str,
        strictness: Strictness,
    ) -> Result<Loaded, ConfigError> {
        let mut opts = Options::default();
        let mut p = parse::Processor::new(strictness);
        if doc.root.is_empty() {
            p.warn(None, format!("{name}: config has no values or is empty"));
        }
        p.process(&doc.root, &mut opts);
        opts.config_digest = Some(doc.digest());
        opts.config_files.clone_from(&doc.files);
        let (errors, warnings) = p.finish();
        if errors.is_empty() {
            Ok((opts, warnings))
        } else {
            Err(ConfigError::Invalid { errors, warnings })
        }
    }

    /// nats-server's `setBaselineOptions`: fills the defaults that depend on other options
    /// and turns "unset" zeros into defaults. Idempotent.
    pub fn apply_baseline(&mut self) {
        if self.host.is_empty() {
            self.host = DEFAULT_HOST.to_string();
        }
        if self.port == 0 {
            self.port = DEFAULT_PORT;
        }
        if self.max_connections == 0 {
            self.max_connections = DEFAULT_MAX_CONNECTIONS;
        }
        if self.ping_interval.is_zero() {
            self.ping_interval = DEFAULT_PING_INTERVAL;
        }
        if self.ping_max == 0 {
            self.ping_max = DEFAULT_PING_MAX_OUT;
        }
        if self.tls_timeout.is_zero() {
            self.tls_timeout = TLS_TIMEOUT;
        }
        if self.auth_timeout.is_zero() {
            self.auth_timeout = default_auth_timeout(self.tls.is_some(), self.tls_timeout);
        }
        if self.cluster.port != 0 || !self.cluster.listen_str.is_empty() {
            let c = &mut self.cluster;
            if c.host.is_empty() {
                c.host = DEFAULT_HOST.to_string();
            }
            if c.tls_timeout.is_zero() {
                c.tls_timeout = TLS_TIMEOUT;
            }
            if c.auth_timeout.is_zero() {
                c.auth_timeout = default_auth_timeout(c.tls.is_some(), c.tls_timeout);
            }
            if c.pool_size == 0 {
                c.pool_size = DEFAULT_ROUTE_POOL_SIZE;
            }
            if c.compression.mode.is_empty() {
                c.compression.mode = "accept".to_string();
            }
        }
        if self.leafnode.port != 0 {
            let l = &mut self.leafnode;
            if l.host.is_empty() {
                l.host = DEFAULT_HOST.to_string();
            }
            if l.tls_timeout.is_zero() {
                l.tls_timeout = TLS_TIMEOUT;
            }
            if l.auth_timeout.is_zero() {
                l.auth_timeout = default_auth_timeout(l.tls.is_some(), l.tls_timeout);
            }
            if l.compression.mode.is_empty() {
                l.compression.mode = "s2_auto".to_string();
            }
        }
        for r in &mut self.leafnode.remotes {
            for u in &mut r.urls {
                if u.port.is_none() {
                    u.port = Some(DEFAULT_LEAFNODE_PORT);
                }
            }
            if r.compression.mode.is_empty() {
                r.compression.mode = "s2_auto".to_string();
            }
            if r.first_info_timeout.is_zero() {
                r.first_info_timeout = DEFAULT_LEAFNODE_INFO_WAIT;
            }
        }
        if self.leafnode.reconnect_interval.is_zero() {
            self.leafnode.reconnect_interval = DEFAULT_LEAF_NODE_RECONNECT;
        }
        if self.max_control_line == 0 {
            self.max_control_line = MAX_CONTROL_LINE_SIZE;
        }
        if self.max_payload == 0 {
            self.max_payload = MAX_PAYLOAD_SIZE;
        }
        if self.max_pending == 0 {
            self.max_pending = MAX_PENDING_SIZE;
        }
        if self.write_deadline.is_zero() {
            self.write_deadline = DEFAULT_FLUSH_DEADLINE;
        }
        if self.max_closed_clients == 0 {
            self.max_closed_clients = DEFAULT_MAX_CLOSED_CLIENTS;
        }
        if self.lame_duck_duration.is_zero() {
            self.lame_duck_duration = DEFAULT_LAME_DUCK_DURATION;
        }
        if self.lame_duck_grace_period.is_zero() {
            self.lame_duck_grace_period = DEFAULT_LAME_DUCK_GRACE_PERIOD;
        }
        if self.gateway.port != 0 {
            let g = &mut self.gateway;
            if g.host.is_empty() {
                g.host = DEFAULT_HOST.to_string();
            }
            if g.tls_timeout.is_zero() {
                g.tls_timeout = TLS_TIMEOUT;
            }
            if g.auth_timeout.is_zero() {
                g.auth_timeout = default_auth_timeout(g.tls.is_some(), g.tls_timeout);
            }
        }
        if self.connect_error_reports == 0 {
            self.connect_error_reports = DEFAULT_CONNECT_ERROR_REPORTS;
        }
        if self.reconnect_error_reports == 0 {
            self.reconnect_error_reports = DEFAULT_RECONNECT_ERROR_REPORTS;
        }
        if self.websocket.port != 0 && self.websocket.host.is_empty() {
            self.websocket.host = DEFAULT_HOST.to_string();
        }
        if self.mqtt.port != 0 {
            if self.mqtt.host.is_empty() {
                self.mqtt.host = DEFAULT_HOST.to_string();
            }
            if self.mqtt.tls_timeout.is_zero() {
                self.mqtt.tls_timeout = TLS_TIMEOUT;
            }
        }
        let js = &mut self.jetstream;
        if js.request_queue_limit <= 0 {
            js.request_queue_limit = JS_DEFAULT_REQUEST_QUEUE_LIMIT;
        }
        if js.info_queue_limit <= 0 {
            js.info_queue_limit = js.request_queue_limit;
        }
        if js.max_concurrent_io <= 0 {
            js.max_concurrent_io = DEFAULT_CONCURRENT_IOS;
        }
    }

    /// The monitoring listener's host: `http_host`, or the client host when unset.
    pub fn monitor_host(&self) -> &str {
        if self.http_host.is_empty() {
            &self.host
        } else {
            &self.http_host
        }
    }

    /// Whether clients must authenticate with the options' own settings (users, nkeys,
    /// token, user/password); accounts and operators are the auth module's business.
    pub fn has_client_auth(&self) -> bool {
        !self.username.is_empty()
            || !self.authorization.is_empty()
            || !self.users.is_empty()
            || !self.nkeys.is_empty()
    }
}

/// Splits `host:port` as Go's `net.SplitHostPort` and reads the port as a number, for
/// `--cluster` URLs.
pub(crate) fn parse_host_port_for_flags(hp: &str) -> Result<(String, i32), String> {
    let (h, p) = parse::split_host_port(hp)?;
    let port = p
        .parse::<i32>()
        .map_err(|_| format!("expected integer for port, got {p:?}"))?;
    Ok((h, port))
}

/// nats-server's `getDefaultAuthTimeout`: with TLS, one second more than the TLS timeout
/// (so the TLS handshake is not cut short by the auth timer); otherwise `AUTH_TIMEOUT`.
pub fn default_auth_timeout(tls: bool, tls_timeout: Duration) -> Duration {
    if tls {
        tls_timeout + Duration::from_secs(1)
    } else {
        AUTH_TIMEOUT
    }
}
