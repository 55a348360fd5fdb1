//! Top-level config keys (nats-server's `processConfigFileLine`) and the typed-value helpers
//! every block parser uses.
//!
//! Errors are collected, not returned early, so one run reports every bad key, as
//! nats-server does. A value of the wrong type gets nats-server's wording
//! (`interface conversion: interface {} is string, not int64`) at the key's position.

use std::time::Duration;

use super::nkeys;
use super::resolver;
use super::{Diagnostic, DiagnosticKind, Options, Strictness, WriteTimeoutPolicy, blocks};
use crate::conf::{Entry, Map, Pos, Spanned, Value};
use crate::duration::parse_go_duration;

pub(crate) struct Processor {
    strictness: Strictness,
    errors: Vec<Diagnostic>,
    warnings: Vec<Diagnostic>,
}

/// Go's `%v` of a config value, for messages that echo values.
pub(crate) fn go_value(v: &Value) -> String {
    match v {
        Value::Bool(b) => b.to_string(),
        Value::Int(i) => i.to_string(),
        Value::Float(f) => f.to_string(),
        Value::String(s) => s.clone(),
        Value::DateTime(d) => d.to_string(),
        Value::Array(a) => format!(
            "[{}]",
            a.iter()
                .map(|x| go_value(&x.value))
                .collect::<Vec<_>>()
                .join(" ")
        ),
        Value::Map(m) => format!(
            "map[{}]",
            m.iter()
                .map(|e| format!("{}:{}", e.key, go_value(&e.value.value)))
                .collect::<Vec<_>>()
                .join(" ")
        ),
    }
}

impl Processor {
    pub(crate) fn new(strictness: Strictness) -> Self {
        Self {
            strictness,
            errors: Vec::new(),
            warnings: Vec::new(),
        }
    }

    /// How many errors so far: lets a block parser tell whether its checks added any.
    pub(crate) fn error_count(&self) -> usize {
        self.errors.len()
    }

    pub(crate) fn finish(self) -> (Vec<Diagnostic>, Vec<Diagnostic>) {
        (self.errors, self.warnings)
    }

    pub(crate) fn error(&mut self, pos: &Pos, message: impl Into<String>) {
        self.errors.push(Diagnostic {
            kind: DiagnosticKind::Error,
            pos: Some(pos.clone()),
            message: message.into(),
        });
    }

    pub(crate) fn warn(&mut self, pos: Option<&Pos>, message: impl Into<String>) {
        self.warnings.push(Diagnostic {
            kind: DiagnosticKind::Warning,
            pos: pos.cloned(),
            message: message.into(),
        });
    }

    /// nats-server's `configWarningErr`: `invalid use of field "x": reason`.
    pub(crate) fn warn_field(&mut self, pos: &Pos, field: &str, reason: &str) {
        self.warn(
            Some(pos),
            format!("invalid use of field {field:?}: {reason}"),
        );
    }

    /// A key nats-server does not know. Keys that were used as `$variables` are variables,
    /// not options, and pass.
    pub(crate) fn unknown(&mut self, e: &Entry) {
        if e.used_as_variable {
            return;
        }
        let d = Diagnostic {
            kind: DiagnosticKind::UnknownField,
            pos: Some(e.key_pos.clone()),
            message: format!("unknown field {:?}", e.key),
        };
        match self.strictness {
            Strictness::Strict => self.errors.push(d),
            Strictness::Lenient => self.warnings.push(d),
        }
    }

    pub(crate) fn type_error(&mut self, pos: &Pos, v: &Value, want: &str) {
        self.error(
            pos,
            format!(
                "interface conversion: interface {{}} is {}, not {want}",
                v.go_type()
            ),
        );
    }

    pub(crate) fn string(&mut self, pos: &Pos, v: &Value) -> Option<String> {
        match v {
            Value::String(s) => Some(s.clone()),
            _ => {
                self.type_error(pos, v, "string");
                None
            }
        }
    }

    pub(crate) fn int(&mut self, pos: &Pos, v: &Value) -> Option<i64> {
        match v {
            Value::Int(i) => Some(*i),
            _ => {
                self.type_error(pos, v, "int64");
                None
            }
        }
    }

    /// An integer that must fit an `i32` (ports, sizes nats-server keeps in `int32`).
    pub(crate) fn int32(&mut self, pos: &Pos, field: &str, v: &Value) -> Option<i32> {
        let i = self.int(pos, v)?;
        match i32::try_from(i) {
            Ok(x) => Some(x),
            Err(_) => {
                self.error(pos, format!("{field} value is too big"));
                None
            }
        }
    }

    pub(crate) fn boolean(&mut self, pos: &Pos, v: &Value) -> Option<bool> {
        match v {
            Value::Bool(b) => Some(*b),
            _ => {
                self.type_error(pos, v, "bool");
                None
            }
        }
    }

    pub(crate) fn map<'v>(&mut self, pos: &Pos, v: &'v Value) -> Option<&'v Map> {
        match v {
            Value::Map(m) => Some(m),
            _ => {
                self.type_error(pos, v, "map[string]interface {}");
                None
            }
        }
    }

    pub(crate) fn array<'v>(&mut self, pos: &Pos, v: &'v Value) -> Option<&'v [Spanned<Value>]> {
        match v {
            Value::Array(a) => Some(a),
            _ => {
                self.type_error(pos, v, "[]interface {}");
                None
            }
        }
    }

    /// nats-server's `parseDuration`: a Go duration string, or (deprecated) an integer
    /// number of seconds with a warning. Negative durations are refused.
    pub(crate) fn duration(&mut self, field: &str, pos: &Pos, v: &Value) -> Option<Duration> {
        match v {
            Value::String(s) => match parse_go_duration(s) {
                Ok(ns) => match u64::try_from(ns) {
                    Ok(ns) => Some(Duration::from_nanos(ns)),
                    Err(_) => {
                        self.error(
                            pos,
                            format!("error parsing {field}: negative duration {s:?}"),
                        );
                        None
                    }
                },
                Err(e) => {
                    self.error(pos, format!("error parsing {field}: {e}"));
                    None
                }
            },
            Value::Int(secs) => {
                self.warn_field(
                    pos,
                    field,
                    &format!("{field} should be converted to a duration"),
                );
                match u64::try_from(*secs) {
                    Ok(s) => Some(Duration::from_secs(s)),
                    Err(_) => {
                        self.error(pos, format!("error parsing {field}: negative duration"));
                        None
                    }
                }
            }
            _ => {
                self.type_error(pos, v, "int64");
                None
            }
        }
    }

    /// A duration that must be a Go duration string (fields nats-server reads with
    /// `time.ParseDuration(v.(string))`). Returns signed nanoseconds.
    pub(crate) fn duration_str(&mut self, pos: &Pos, v: &Value) -> Option<Result<i64, String>> {
        let s = self.string(pos, v)?;
        Some(parse_go_duration(&s))
    }

    /// A timeout given as seconds (int or float) or a duration string, as the
    /// `authorization.timeout` and `tls.timeout` keys take it.
    pub(crate) fn seconds(&mut self, pos: &Pos, v: &Value, what: &str) -> Option<Duration> {
        let secs = match v {
            Value::Int(i) => *i as f64,
            Value::Float(f) => *f,
            Value::String(s) => match parse_go_duration(s) {
                Ok(ns) => ns as f64 / 1e9,
                Err(e) => {
                    self.error(pos, format!("error parsing {what} config, 'timeout' {e}"));
                    return None;
                }
            },
            _ => {
                self.error(
                    pos,
                    format!("error parsing {what} config, 'timeout' wrong type"),
                );
                return None;
            }
        };
        match Duration::try_from_secs_f64(secs) {
            Ok(d) => Some(d),
            Err(_) => {
                self.error(
                    pos,
                    format!("error parsing {what} config, 'timeout' can not be negative"),
                );
                None
            }
        }
    }

    /// nats-server's `parseStringArray`: one string or an array of strings.
    pub(crate) fn string_array(
        &mut self,
        field: &str,
        pos: &Pos,
        v: &Value,
    ) -> Option<Vec<String>> {
        match v {
            Value::String(s) => Some(vec![s.clone()]),
            Value::Array(a) => {
                let mut out = Vec::with_capacity(a.len());
                for x in a {
                    match &x.value {
                        Value::String(s) => out.push(s.clone()),
                        other => self.error(
                            &x.pos,
                            format!(
                                "error parsing {field}: unsupported type in array {}",
                                other.go_type()
                            ),
                        ),
                    }
                }
                Some(out)
            }
            other => {
                self.error(
                    pos,
                    format!(
                        "error parsing {field}: unsupported type {}",
                        other.go_type()
                    ),
                );
                None
            }
        }
    }

    pub(crate) fn write_timeout(&mut self, pos: &Pos, v: &Value) -> Option<WriteTimeoutPolicy> {
        let s = self.string(pos, v)?;
        match s.as_str() {
            "default" => Some(WriteTimeoutPolicy::Default),
            "close" => Some(WriteTimeoutPolicy::Close),
            "retry" => Some(WriteTimeoutPolicy::Retry),
            _ => {
                self.error(pos, "write_timeout must be 'default', 'close' or 'retry'");
                None
            }
        }
    }

    /// `listen`-style values: a port, or `host:port`.
    pub(crate) fn listen(&mut self, pos: &Pos, v: &Value) -> Option<(String, i32)> {
        match parse_listen(v) {
            Ok(hp) => Some(hp),
            Err(e) => {
                self.error(pos, e);
                None
            }
        }
    }

    /// Processes the top-level map into `o`.
    pub(crate) fn process(&mut self, root: &Map, o: &mut Options) {
        // nats-server reads the system account before everything else, since other
        // settings depend on it.
        for key in ["system_account", "system"] {
            if let Some(e) = root.get_ignore_case(key) {
                match &e.value.value {
                    Value::String(s) => o.system_account = s.clone(),
                    _ => self.error(&e.key_pos, "system account name must be a string"),
                }
                break;
            }
        }
        let mut store_dir_set = false;
        for e in root {
            self.top_level(e, o, &mut store_dir_set);
        }
        // A single operator's account server is the resolver unless one is configured
        // (nats-server lets `resolver` take precedence whatever the key order).
        let resolver_set = ["resolver", "account_resolver", "accounts_resolver"]
            .iter()
            .any(|k| root.get_ignore_case(k).is_some());
        if !resolver_set && let [jwt] = o.operator_jwts.as_slice() {
            o.resolver_opts = resolver::resolver_from_operator(jwt);
        }
    }

    fn top_level(&mut self, e: &Entry, o: &mut Options, store_dir_set: &mut bool) {
        let k = e.key.to_ascii_lowercase();
        let pos = &e.key_pos;
        let v = &e.value.value;
        macro_rules! set {
            ($field:expr, $get:expr) => {
                if let Some(x) = $get {
                    $field = x;
                }
            };
        }
        match k.as_str() {
            "listen" => {
                if let Some((h, p)) = self.listen(pos, v) {
                    o.host = h;
                    o.port = p;
                }
            }
            "client_advertise" => set!(o.client_advertise, self.string(pos, v)),
            "port" => set!(o.port, self.int32(pos, &e.key, v)),
            "server_name" => {
                if let Some(sn) = self.string(pos, v) {
                    if sn.contains(' ') {
                        self.error(pos, "server name cannot contain spaces");
                    } else {
                        o.server_name = sn;
                    }
                }
            }
            "host" | "net" => set!(o.host, self.string(pos, v)),
            "debug" => set!(o.debug, self.boolean(pos, v)),
            "trace" => set!(o.trace, self.boolean(pos, v)),
            "trace_verbose" => {
                if let Some(b) = self.boolean(pos, v) {
                    o.trace_verbose = b;
                    o.trace = b;
                }
            }
            "trace_headers" => {
                if let Some(b) = self.boolean(pos, v) {
                    o.trace_headers = b;
                    o.trace = b;
                }
            }
            "logtime" => set!(o.logtime, self.boolean(pos, v)),
            "logtime_utc" => set!(o.logtime_utc, self.boolean(pos, v)),
            "mappings" | "maps" => o.mappings = super::mappings::mappings(self, e),
            "disable_sublist_cache" | "no_sublist_cache" => {
                set!(o.no_sublist_cache, self.boolean(pos, v))
            }
            "accounts" => match v {
                // A map of accounts, or (old style) a list of account names.
                Value::Map(_) | Value::Array(_) => {
                    o.accounts = Some(e.value.clone());
                    blocks::accounts(self, e, o);
                }
                _ => self.type_error(pos, v, "map[string]interface {}"),
            },
            "default_sentinel" => set!(o.default_sentinel, self.string(pos, v)),
            "authorization" => blocks::authorization_top(self, e, o),
            "http" => {
                if let Some((h, p)) = self.listen(pos, v) {
                    o.http_host = h;
                    o.http_port = p;
                }
            }
            "https" => {
                if let Some((h, p)) = self.listen(pos, v) {
                    o.http_host = h;
                    o.https_port = p;
                }
            }
            "http_port" | "monitor_port" => set!(o.http_port, self.int32(pos, &e.key, v)),
            "https_port" => set!(o.https_port, self.int32(pos, &e.key, v)),
            "http_base_path" => set!(o.http_base_path, self.string(pos, v)),
            "cluster" => blocks::cluster(self, e, o),
            "gateway" => blocks::gateway(self, e, o),
            "leaf" | "leafnodes" => blocks::leafnodes(self, e, o),
            "store_dir" | "storedir" => {
                if *store_dir_set {
                    self.error(pos, "Duplicate 'store_dir' configuration");
                } else if let Some(s) = self.string(pos, v) {
                    o.jetstream.store_dir = s;
                    *store_dir_set = true;
                }
            }
            "jetstream" => blocks::jetstream(self, e, o, store_dir_set),
            "logfile" | "log_file" => set!(o.log_file, self.string(pos, v)),
            "logfile_size_limit" | "log_size_limit" => set!(o.log_size_limit, self.int(pos, v)),
            "logfile_max_num" | "log_max_num" => set!(o.log_max_num, self.int(pos, v)),
            "syslog" => set!(o.syslog, self.boolean(pos, v)),
            "remote_syslog" => set!(o.remote_syslog, self.string(pos, v)),
            "pidfile" | "pid_file" => set!(o.pid_file, self.string(pos, v)),
            "ports_file_dir" => set!(o.ports_file_dir, self.string(pos, v)),
            "prof_port" => set!(o.prof_port, self.int32(pos, &e.key, v)),
            "prof_block_rate" => set!(o.prof_block_rate, self.int(pos, v)),
            "max_control_line" => set!(o.max_control_line, self.int32(pos, &e.key, v)),
            "max_payload" => set!(o.max_payload, self.int32(pos, &e.key, v)),
            "max_pending" => set!(o.max_pending, self.int(pos, v)),
            "proxy_protocol" => set!(o.proxy_protocol, self.boolean(pos, v)),
            "max_connections" | "max_conn" => {
                if let Some(n) = self.int(pos, v) {
                    // Zero means "refuse all connections" in nats-server, not "default".
                    o.max_connections = if n == 0 { -1 } else { n };
                }
            }
            "max_traced_msg_len" => set!(o.max_traced_msg_len, self.int(pos, v)),
            "max_subscriptions" | "max_subs" => set!(o.max_subscriptions, self.int(pos, v)),
            "max_sub_tokens" | "max_subscription_tokens" => {
                if let Some(n) = self.int(pos, v) {
                    if n > i64::from(u8::MAX) {
                        self.error(pos, format!("{} value is too big", e.key));
                    } else if n <= 0 {
                        self.error(pos, format!("{} value can not be negative", e.key));
                    } else {
                        o.max_sub_tokens = u8::try_from(n).unwrap_or(u8::MAX);
                    }
                }
            }
            "ping_interval" => set!(o.ping_interval, self.duration("ping_interval", pos, v)),
            "ping_max" => set!(o.ping_max, self.int(pos, v)),
            "tls" => {
                if let Some(tc) = blocks::tls(self, e, true) {
                    if let Some(t) = tc.timeout {
                        o.tls_timeout = t;
                    }
                    o.tls = Some(tc);
                }
            }
            "ocsp" => match v {
                Value::Bool(_) | Value::Map(_) => o.ocsp = Some(e.value.clone()),
                other => self.error(
                    pos,
                    format!(
                        "error parsing ocsp config: unsupported type {}",
                        other.go_type()
                    ),
                ),
            },
            "allow_non_tls" => set!(o.allow_non_tls, self.boolean(pos, v)),
            "write_deadline" => set!(o.write_deadline, self.duration("write_deadline", pos, v)),
            "write_timeout" => set!(o.write_timeout, self.write_timeout(pos, v)),
            "lame_duck_duration" => {
                if let Some(r) = self.duration_str(pos, v) {
                    match r {
                        Err(err) => {
                            self.error(pos, format!("error parsing lame_duck_duration: {err}"));
                        }
                        Ok(ns) if ns < 30_000_000_000 => self.error(
                            pos,
                            format!(
                                "invalid lame_duck_duration of {}, minimum is 30 seconds",
                                crate::duration::format_go_nanos(ns)
                            ),
                        ),
                        Ok(ns) => o.lame_duck_duration = Duration::from_nanos(ns.unsigned_abs()),
                    }
                }
            }
            "lame_duck_grace_period" => {
                if let Some(r) = self.duration_str(pos, v) {
                    match r {
                        Err(err) => {
                            self.error(pos, format!("error parsing lame_duck_grace_period: {err}"));
                        }
                        Ok(ns) if ns < 0 => {
                            self.error(pos, "invalid lame_duck_grace_period, needs to be positive");
                        }
                        Ok(ns) => {
                            o.lame_duck_grace_period = Duration::from_nanos(ns.unsigned_abs());
                        }
                    }
                }
            }
            "operator" | "operators" | "roots" | "root" | "root_operators" | "root_operator" => {
                match v {
                    Value::String(s) => o.operators = vec![s.clone()],
                    Value::Array(a) => {
                        let mut ops = Vec::new();
                        for x in a {
                            match &x.value {
                                Value::String(s) => ops.push(s.clone()),
                                other => self.error(
                                    pos,
                                    format!(
                                        "error parsing operators: unsupported type {} where string is expected",
                                        other.go_type()
                                    ),
                                ),
                            }
                        }
                        o.operators = ops;
                    }
                    other => self.error(
                        pos,
                        format!(
                            "error parsing operators: unsupported type {}",
                            other.go_type()
                        ),
                    ),
                }
                o.operator_jwts = Vec::with_capacity(o.operators.len());
                for src in &o.operators {
                    match resolver::read_operator_jwt(src) {
                        Ok(jwt) => o.operator_jwts.push(jwt),
                        Err(err) => {
                            self.error(pos, format!("error parsing operator JWT: {err}"));
                        }
                    }
                }
            }
            "resolver" | "account_resolver" | "accounts_resolver" => {
                if matches!(v, Value::String(_) | Value::Map(_)) {
                    o.resolver = Some(e.value.clone());
                }
                o.resolver_opts = resolver::parse_resolver(self, pos, v);
            }
            "resolver_tls" => {
                if let Some(tc) = blocks::tls(self, e, true) {
                    o.resolver_tls = Some(tc);
                }
            }
            "resolver_preload" => {
                if let Some(preload) = resolver::parse_preload(self, pos, v) {
                    o.resolver_preload = preload;
                }
            }
            "resolver_pinned_accounts" => match v {
                Value::String(s) => o.resolver_pinned_accounts = vec![s.clone()],
                Value::Array(a) => {
                    let mut out = Vec::new();
                    for x in a {
                        match &x.value {
                            Value::String(s) => out.push(s.clone()),
                            other => self.error(
                                &x.pos,
                                format!(
                                    "error parsing resolver_pinned_accounts: unsupported type in array {}",
                                    other.go_type()
                                ),
                            ),
                        }
                    }
                    o.resolver_pinned_accounts = out;
                }
                other => self.error(
                    pos,
                    format!(
                        "error parsing resolver_pinned_accounts: unsupported type {}",
                        other.go_type()
                    ),
                ),
            },
            "no_auth_user" => set!(o.no_auth_user, self.string(pos, v)),
            // Read first, above.
            "system_account" | "system" => {}
            "no_system_account" | "no_system" | "no_sys_acc" => {
                set!(o.no_system_account, self.boolean(pos, v))
            }
            "no_header_support" => set!(o.no_header_support, self.boolean(pos, v)),
            "trusted" | "trusted_keys" => {
                let keys: Vec<(String, Pos)> = match v {
                    Value::String(s) => vec![(s.clone(), pos.clone())],
                    Value::Array(a) => {
                        let mut keys = Vec::new();
                        for x in a {
                            match &x.value {
                                Value::String(s) => keys.push((s.clone(), x.pos.clone())),
                                other => self.error(
                                    &x.pos,
                                    format!(
                                        "error parsing trusted: unsupported type in array {}",
                                        other.go_type()
                                    ),
                                ),
                            }
                        }
                        keys
                    }
                    other => {
                        self.error(
                            pos,
                            format!(
                                "error parsing trusted: unsupported type {}",
                                other.go_type()
                            ),
                        );
                        Vec::new()
                    }
                };
                for (key, kpos) in &keys {
                    if !nkeys::is_valid_public_key(key, nkeys::PREFIX_OPERATOR) {
                        self.error(
                            kpos,
                            format!(
                                "trust key {key:?} required to be a valid public operator nkey"
                            ),
                        );
                    }
                }
                o.trusted_keys = keys.into_iter().map(|(k, _)| k).collect();
            }
            "connect_error_reports" => set!(o.connect_error_reports, self.int(pos, v)),
            "reconnect_error_reports" => set!(o.reconnect_error_reports, self.int(pos, v)),
            "websocket" | "ws" => blocks::websocket(self, e, o),
            "mqtt" => blocks::mqtt(self, e, o),
            "telemetry" => blocks::telemetry(self, e, o),
            "server_tags" => match v {
                Value::String(s) => push_tag(&mut o.server_tags, s),
                Value::Array(a) => {
                    for x in a {
                        match &x.value {
                            Value::String(s) => push_tag(&mut o.server_tags, s),
                            other => {
                                self.error(
                                    pos,
                                    format!(
                                        "error parsing tags: unsupported type {} where string is expected",
                                        other.go_type()
                                    ),
                                );
                                break;
                            }
                        }
                    }
                }
                other => self.error(
                    pos,
                    format!("error parsing tags: unsupported type {}", other.go_type()),
                ),
            },
            "server_metadata" => match v {
                Value::Map(m) => {
                    for me in m {
                        if let Some(s) = self.string(&me.key_pos, &me.value.value) {
                            o.server_metadata.retain(|(k, _)| k != &me.key);
                            o.server_metadata.push((me.key.clone(), s));
                        }
                    }
                }
                other => self.error(
                    pos,
                    format!(
                        "error parsing metadata: unsupported type {}",
                        other.go_type()
                    ),
                ),
            },
            "feature_flags" => match v {
                Value::Map(m) => {
                    for fe in m {
                        match &fe.value.value {
                            Value::Bool(b) => {
                                o.feature_flags.retain(|(k, _)| k != &fe.key);
                                o.feature_flags.push((fe.key.clone(), *b));
                            }
                            other => {
                                self.error(
                                    &fe.key_pos,
                                    format!(
                                        "error parsing feature flag {:?}: expected bool, got {}",
                                        fe.key,
                                        other.go_type()
                                    ),
                                );
                                break;
                            }
                        }
                    }
                }
                other => self.error(
                    pos,
                    format!(
                        "error parsing feature flags: unsupported type {}",
                        other.go_type()
                    ),
                ),
            },
            "default_js_domain" => match v {
                Value::Map(m) => {
                    let mut out = Vec::new();
                    for de in m {
                        if let Some(s) = self.string(&de.key_pos, &de.value.value) {
                            out.push((de.key.clone(), s));
                        }
                    }
                    o.default_js_domain = out;
                }
                other => self.error(
                    pos,
                    format!(
                        "error default_js_domain config: unsupported type {}",
                        other.go_type()
                    ),
                ),
            },
            "ocsp_cache" => match v {
                Value::Bool(_) | Value::Map(_) => o.ocsp_cache = Some(e.value.clone()),
                other => self.error(
                    pos,
                    format!("error parsing tags: unsupported type {}", other.go_type()),
                ),
            },
            "no_fast_producer_stall" => set!(o.no_fast_producer_stall, self.boolean(pos, v)),
            "max_closed_clients" => set!(o.max_closed_clients, self.int(pos, v)),
            "proxies" => match v {
                Value::Map(m) => {
                    blocks::check_proxies(self, m);
                    o.proxies = Some(e.value.clone());
                }
                other => self.error(
                    pos,
                    format!(
                        "expected proxies to be a map/struct, got {}",
                        other.go_type()
                    ),
                ),
            },
            _ => self.unknown(e),
        }
    }
}

/// `server_tags` are a set in nats-server (jwt.TagList lower-cases and de-duplicates).
fn push_tag(tags: &mut Vec<String>, t: &str) {
    let t = t.trim().to_lowercase();
    if !t.is_empty() && !tags.contains(&t) {
        tags.push(t);
    }
}

/// Go's `net.SplitHostPort`.
pub(crate) fn split_host_port(s: &str) -> Result<(String, String), String> {
    let missing = || format!("address {s}: missing port in address");
    if let Some(rest) = s.strip_prefix('[') {
        let (host, tail) = rest
            .split_once(']')
            .ok_or_else(|| format!("address {s}: missing ']' in address"))?;
        let port = tail.strip_prefix(':').ok_or_else(missing)?;
        return Ok((host.to_string(), port.to_string()));
    }
    let (host, port) = s.rsplit_once(':').ok_or_else(missing)?;
    if host.contains(':') {
        return Err(format!("address {s}: too many colons in address"));
    }
    Ok((host.to_string(), port.to_string()))
}

/// nats-server's `parseListen`: an integer port, or a `host:port` string.
pub(crate) fn parse_listen(v: &Value) -> Result<(String, i32), String> {
    match v {
        Value::Int(p) => i32::try_from(*p)
            .map(|p| (String::new(), p))
            .map_err(|_| format!("could not parse port \"{p}\"")),
        Value::String(s) => {
            let (host, port) =
                split_host_port(s).map_err(|_| format!("could not parse address string {s:?}"))?;
            let port: i32 = port
                .parse()
                .map_err(|_| format!("could not parse port {port:?}"))?;
            Ok((host, port))
        }
        other => Err(format!(
            "expected port or host:port, got {}",
            other.go_type()
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::{parse_listen, split_host_port};
    use crate::conf::Value;

    #[test]
    fn host_port_splitting_like_go() {
        assert_eq!(
            split_host_port("127.0.0.1:4222"),
            Ok(("127.0.0.1".into(), "4222".into()))
        );
        assert_eq!(split_host_port(":4222"), Ok((String::new(), "4222".into())));
        assert_eq!(split_host_port("[::1]:-1"), Ok(("::1".into(), "-1".into())));
        assert!(split_host_port("::1:4222").is_err());
        assert!(split_host_port("localhost").is_err());
    }

    #[test]
    fn listen_values() {
        assert_eq!(parse_listen(&Value::Int(4222)), Ok((String::new(), 4222)));
        assert_eq!(
            parse_listen(&Value::String("0.0.0.0:-1".into())),
            Ok(("0.0.0.0".into(), -1))
        );
        assert_eq!(
            parse_listen(&Value::Bool(true)),
            Err("expected port or host:port, got bool".into())
        );
    }
}
