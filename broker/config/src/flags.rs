//! The nats-server command line: the same flags, the same Go `flag` package syntax, the same
//! precedence over the config file.
//!
//! Go's `flag` package accepts `-name` and `--name`, `-name=value` and `-name value` (the
//! next argument is taken as the value even when it starts with `-`, so `-p -1` works),
//! bool flags as `-name` or `-name=false`, and stops at the first non-flag argument. Flags
//! are declared once, with clap; [`normalize`] rewrites Go-style argv into canonical
//! `--long=value` arguments by looking each name up in that clap declaration, so clap never
//! has to guess whether `-ms` is `-m s` or whether `-1` is a flag.
//!
//! Flags override config-file values only when given explicitly ([`Flags`] keeps each one
//! as an `Option`), and [`Flags::apply_to`] can re-apply them on top of a re-read config
//! file on reload, as nats-server does.

use std::ffi::OsString;
use std::fmt;
use std::path::PathBuf;

use clap::{CommandFactory, FromArgMatches, Parser};

use crate::conf::SystemLoader;
use crate::options::{
    ConfigError, Options, Strictness, TlsConfig, UrlOpt, Warning, parse_host_port_for_flags,
};

/// What the command line asks for.
#[derive(Clone, Debug, PartialEq)]
pub enum Configured {
    /// Start a server with these options.
    Run {
        options: Box<Options>,
        /// Config warnings (nats-server prints them and starts anyway).
        warnings: Vec<Warning>,
        config_file: Option<PathBuf>,
        /// The flags, to re-apply over the config file on reload.
        flags: Box<Flags>,
    },
    /// `-v`, `--version` or the `version` command: print [`version_text`].
    Version,
    /// `-h`, `--help` or the `help` command: print this text.
    Help(String),
    /// `--help_tls`: print this text.
    HelpTls(String),
    /// `-sl <command>[=<pid|pidfile>]`: signal a running server and exit. `target` is the
    /// pid or pid file as given; `None` means "the only running natrix-server".
    Signal {
        command: SignalCommand,
        target: Option<String>,
    },
    /// `-t`: the config file is valid; print [`check_message`] and exit 0.
    CheckConfig {
        config_file: PathBuf,
        digest: String,
    },
}

/// Commands of `-sl`, with the signal nats-server sends for each.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum SignalCommand {
    /// SIGKILL.
    Stop,
    /// SIGINT: shut down.
    Quit,
    /// SIGTERM: shut down unless in lame-duck mode.
    Term,
    /// SIGUSR1: reopen the log file.
    Reopen,
    /// SIGHUP: reload the config.
    Reload,
    /// SIGUSR2: enter lame-duck mode.
    Ldm,
}

impl SignalCommand {
    pub fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "stop" => Self::Stop,
            "quit" => Self::Quit,
            "term" => Self::Term,
            "reopen" => Self::Reopen,
            "reload" => Self::Reload,
            "ldm" => Self::Ldm,
            _ => return None,
        })
    }

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Stop => "stop",
            Self::Quit => "quit",
            Self::Term => "term",
            Self::Reopen => "reopen",
            Self::Reload => "reload",
            Self::Ldm => "ldm",
        }
    }

    /// The POSIX signal nats-server sends for this command.
    pub fn signal_name(self) -> &'static str {
        match self {
            Self::Stop => "SIGKILL",
            Self::Quit => "SIGINT",
            Self::Term => "SIGTERM",
            Self::Reopen => "SIGUSR1",
            Self::Reload => "SIGHUP",
            Self::Ldm => "SIGUSR2",
        }
    }
}

impl fmt::Display for SignalCommand {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Why the command line was refused. Messages are those of nats-server and Go's `flag`
/// package (`flag provided but not defined: -x`).
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum FlagError {
    /// Bad flag syntax or value; the usage text should follow the message.
    #[error("{0}")]
    Usage(String),
    /// Flags that parse but do not make sense together.
    #[error("{0}")]
    Invalid(String),
    /// The config file could not be loaded.
    #[error("{0}")]
    Config(#[from] ConfigError),
}

impl FlagError {
    /// Whether the usage text should be shown with the error (as Go's `flag` does).
    pub fn wants_usage(&self) -> bool {
        matches!(self, FlagError::Usage(_))
    }
}

/// Every flag nats-server defines, `None` when not given. Aliases are nats-server's.
#[derive(Clone, Debug, Default, PartialEq, Parser)]
#[command(
    name = "natrix-server",
    no_binary_name = true,
    disable_help_flag = true,
    disable_version_flag = true,
    args_override_self = true
)]
pub struct Flags {
    #[arg(long = "help", alias = "h", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub help: Option<bool>,
    #[arg(long = "help_tls", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub help_tls: Option<bool>,
    #[arg(long = "version", alias = "v", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub version: Option<bool>,

    #[arg(long = "port", alias = "p", value_parser = go_i32)]
    pub port: Option<i32>,
    #[arg(long = "name", aliases = ["n", "server_name"])]
    pub server_name: Option<String>,
    #[arg(long = "addr", aliases = ["a", "net"])]
    pub host: Option<String>,
    #[arg(long = "client_advertise")]
    pub client_advertise: Option<String>,
    #[arg(long = "pid", alias = "P")]
    pub pid_file: Option<String>,
    #[arg(long = "http_port", alias = "m", value_parser = go_i32)]
    pub http_port: Option<i32>,
    #[arg(long = "https_port", alias = "ms", value_parser = go_i32)]
    pub https_port: Option<i32>,
    #[arg(long = "config", alias = "c")]
    pub config: Option<String>,
    #[arg(long = "t", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub check_config: Option<bool>,
    #[arg(long = "signal", alias = "sl")]
    pub signal: Option<String>,
    #[arg(long = "ports_file_dir")]
    pub ports_file_dir: Option<String>,

    #[arg(long = "log", alias = "l")]
    pub log_file: Option<String>,
    #[arg(long = "logtime", alias = "T", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub logtime: Option<bool>,
    #[arg(long = "logtime_utc", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub logtime_utc: Option<bool>,
    #[arg(long = "syslog", alias = "s", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub syslog: Option<bool>,
    #[arg(long = "remote_syslog", alias = "r")]
    pub remote_syslog: Option<String>,
    #[arg(long = "debug", alias = "D", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub debug: Option<bool>,
    #[arg(long = "trace", alias = "V", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub trace: Option<bool>,
    /// `-VV`: trace and verbose trace.
    #[arg(long = "VV", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub trace_verbose: Option<bool>,
    /// `-DV`: debug and trace.
    #[arg(long = "DV", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub debug_trace: Option<bool>,
    /// `-DVV`: debug, trace and verbose trace.
    #[arg(long = "DVV", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub debug_trace_verbose: Option<bool>,
    #[arg(long = "log_size_limit", value_parser = go_i64)]
    pub log_size_limit: Option<i64>,
    #[arg(long = "max_traced_msg_len", value_parser = go_i64)]
    pub max_traced_msg_len: Option<i64>,

    #[arg(long = "jetstream", alias = "js", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub jetstream: Option<bool>,
    #[arg(long = "store_dir", alias = "sd")]
    pub store_dir: Option<String>,

    #[arg(long = "user")]
    pub user: Option<String>,
    #[arg(long = "pass")]
    pub pass: Option<String>,
    #[arg(long = "auth")]
    pub auth: Option<String>,

    #[arg(long = "tls", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub tls: Option<bool>,
    #[arg(long = "tlscert")]
    pub tls_cert: Option<String>,
    #[arg(long = "tlskey")]
    pub tls_key: Option<String>,
    #[arg(long = "tlsverify", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub tls_verify: Option<bool>,
    #[arg(long = "tlscacert")]
    pub tls_ca_cert: Option<String>,

    #[arg(long = "routes")]
    pub routes: Option<String>,
    #[arg(long = "cluster", alias = "cluster_listen")]
    pub cluster: Option<String>,
    #[arg(long = "cluster_name")]
    pub cluster_name: Option<String>,
    #[arg(long = "no_advertise", num_args = 0..=1, require_equals = true, default_missing_value = "true", value_parser = go_bool)]
    pub no_advertise: Option<bool>,
    #[arg(long = "cluster_advertise")]
    pub cluster_advertise: Option<String>,
    #[arg(long = "connect_retries", value_parser = go_i64)]
    pub connect_retries: Option<i64>,

    #[arg(long = "profile", value_parser = go_i32)]
    pub profile: Option<i32>,

    /// Arguments after the flags (`version`, `help`).
    #[arg(num_args = 0.., trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
}

/// Go's `strconv.ParseBool`.
fn go_bool(s: &str) -> Result<bool, String> {
    match s {
        "1" | "t" | "T" | "TRUE" | "true" | "True" => Ok(true),
        "0" | "f" | "F" | "FALSE" | "false" | "False" => Ok(false),
        _ => Err("parse error".into()),
    }
}

/// Go's `strconv.ParseInt(s, 0, 64)`: optional sign, `0x`/`0o`/`0b`/leading-`0` bases.
fn go_i64(s: &str) -> Result<i64, String> {
    let (neg, body) = match s.as_bytes().first() {
        Some(b'-') => (true, &s[1..]),
        Some(b'+') => (false, &s[1..]),
        _ => (false, s),
    };
    let lower = body.to_ascii_lowercase();
    let (radix, digits, prefixed) = if let Some(d) = lower.strip_prefix("0x") {
        (16, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0b") {
        (2, d.to_string(), true)
    } else if let Some(d) = lower.strip_prefix("0o") {
        (8, d.to_string(), true)
    } else if lower.len() > 1 && lower.starts_with('0') {
        (8, lower[1..].to_string(), true)
    } else {
        (10, lower.clone(), false)
    };
    let digits = if prefixed {
        digits.replace('_', "")
    } else {
        digits
    };
    if digits.is_empty() || digits.starts_with(['+', '-']) {
        return Err("parse error".into());
    }
    let magnitude = u64::from_str_radix(&digits, radix).map_err(|e| {
        if matches!(e.kind(), std::num::IntErrorKind::PosOverflow) {
            "value out of range".to_string()
        } else {
            "parse error".to_string()
        }
    })?;
    if neg {
        if magnitude > i64::MAX.unsigned_abs() + 1 {
            return Err("value out of range".into());
        }
        Ok(0i64.wrapping_sub_unsigned(magnitude))
    } else {
        i64::try_from(magnitude).map_err(|_| "value out of range".into())
    }
}

fn go_i32(s: &str) -> Result<i32, String> {
    i32::try_from(go_i64(s)?).map_err(|_| "value out of range".into())
}

/// How one flag name is spelled on the command line and whether it takes a value.
struct FlagSpec {
    long: String,
    takes_value: bool,
}

fn lookup(cmd: &clap::Command, name: &str) -> Option<FlagSpec> {
    cmd.get_arguments().find_map(|a| {
        let long = a.get_long()?;
        let matches = long == name || a.get_all_aliases().is_some_and(|al| al.contains(&name));
        matches.then(|| FlagSpec {
            long: long.to_string(),
            takes_value: a.get_num_args().is_none_or(|n| n.min_values() > 0),
        })
    })
}

/// Rewrites Go-style arguments into canonical `--long[=value]` arguments, with everything
/// after the flags behind a `--`. Errors carry Go's `flag` wording.
pub fn normalize(args: &[String]) -> Result<Vec<String>, FlagError> {
    normalize_with_names(args).map(|(out, _)| out)
}

/// Canonical long name → the name the user typed, in order.
type Spellings = Vec<(String, String)>;

/// [`normalize`], also returning how each canonical flag was spelled by the user (errors
/// name the flag as typed, like Go's).
fn normalize_with_names(args: &[String]) -> Result<(Vec<String>, Spellings), FlagError> {
    let cmd = Flags::command();
    let mut spelled: Spellings = Vec::new();
    let mut out = Vec::with_capacity(args.len() + 1);
    let mut i = 0;
    while i < args.len() {
        let arg = &args[i];
        if arg == "--" {
            i += 1;
            break;
        }
        if arg.len() < 2 || !arg.starts_with('-') {
            break;
        }
        let name_part = arg.strip_prefix("--").unwrap_or_else(|| &arg[1..]);
        if name_part.is_empty() || name_part.starts_with(['-', '=']) {
            return Err(FlagError::Usage(format!("bad flag syntax: {arg}")));
        }
        let (name, value) = match name_part.split_once('=') {
            Some((n, v)) => (n, Some(v)),
            None => (name_part, None),
        };
        let Some(spec) = lookup(&cmd, name) else {
            return Err(FlagError::Usage(format!(
                "flag provided but not defined: -{name}"
            )));
        };
        spelled.push((spec.long.clone(), name.to_string()));
        if spec.takes_value {
            let value = match value {
                Some(v) => v.to_string(),
                None => {
                    i += 1;
                    match args.get(i) {
                        Some(v) => v.clone(),
                        None => {
                            return Err(FlagError::Usage(format!(
                                "flag needs an argument: -{name}"
                            )));
                        }
                    }
                }
            };
            out.push(format!("--{}={value}", spec.long));
        } else {
            match value {
                Some(v) => {
                    if go_bool(v).is_err() {
                        return Err(FlagError::Usage(format!(
                            "invalid boolean value {v:?} for -{name}: parse error"
                        )));
                    }
                    out.push(format!("--{}={v}", spec.long));
                }
                None => out.push(format!("--{}", spec.long)),
            }
        }
        i += 1;
    }
    if i < args.len() {
        out.push("--".to_string());
        out.extend(args[i..].iter().cloned());
    }
    Ok((out, spelled))
}

/// Maps a clap error on canonical arguments back to Go's wording, naming the flag the way
/// the user spelled it.
fn clap_error(e: &clap::Error, spelled: &[(String, String)]) -> FlagError {
    use clap::error::{ContextKind, ContextValue};
    let get = |k: ContextKind| match e.get(k) {
        Some(ContextValue::String(s)) => Some(s.clone()),
        _ => None,
    };
    match (get(ContextKind::InvalidArg), get(ContextKind::InvalidValue)) {
        (Some(arg), Some(value)) => {
            let name = arg
                .trim_start_matches('-')
                .split([' ', '='])
                .next()
                .unwrap_or_default()
                .to_string();
            let name = spelled
                .iter()
                .rev()
                .find(|(long, _)| *long == name)
                .map_or(name, |(_, typed)| typed.clone());
            let why = std::error::Error::source(e)
                .map(|s| s.to_string())
                .unwrap_or_else(|| "parse error".into());
            FlagError::Usage(format!("invalid value {value:?} for flag -{name}: {why}"))
        }
        _ => FlagError::Usage(e.to_string().trim().to_string()),
    }
}

impl Flags {
    /// Parses Go-style arguments (without the program name).
    pub fn parse_args(args: &[String]) -> Result<Self, FlagError> {
        let (canonical, spelled) = normalize_with_names(args)?;
        let matches = Flags::command()
            .try_get_matches_from(canonical.iter().map(OsString::from))
            .map_err(|e| clap_error(&e, &spelled))?;
        Flags::from_arg_matches(&matches).map_err(|e| clap_error(&e, &spelled))
    }

    /// Applies the flags that were given over `o` (nats-server's second flag pass in
    /// `ConfigureOptions`, and `MergeOptions` on reload), then the special flags: `-DV`
    /// and friends, `--cluster`, `--routes`, and the TLS flags.
    pub fn apply_to(&self, o: &mut Options) -> Result<(), FlagError> {
        macro_rules! set {
            ($flag:expr => $field:expr) => {
                if let Some(v) = &$flag {
                    $field = v.clone();
                }
            };
        }
        set!(self.port => o.port);
        set!(self.server_name => o.server_name);
        set!(self.host => o.host);
        set!(self.client_advertise => o.client_advertise);
        set!(self.debug => o.debug);
        set!(self.trace => o.trace);
        set!(self.logtime => o.logtime);
        set!(self.logtime_utc => o.logtime_utc);
        set!(self.user => o.username);
        set!(self.pass => o.password);
        set!(self.auth => o.authorization);
        set!(self.http_port => o.http_port);
        set!(self.https_port => o.https_port);
        set!(self.pid_file => o.pid_file);
        set!(self.ports_file_dir => o.ports_file_dir);
        set!(self.log_file => o.log_file);
        set!(self.log_size_limit => o.log_size_limit);
        set!(self.syslog => o.syslog);
        set!(self.remote_syslog => o.remote_syslog);
        set!(self.profile => o.prof_port);
        set!(self.cluster_advertise => o.cluster.advertise);
        set!(self.no_advertise => o.cluster.no_advertise);
        set!(self.connect_retries => o.cluster.connect_retries);
        set!(self.cluster_name => o.cluster.name);
        set!(self.max_traced_msg_len => o.max_traced_msg_len);
        set!(self.jetstream => o.jetstream.enabled);
        set!(self.store_dir => o.jetstream.store_dir);

        // Combined logging flags, in Go's visiting order (lexicographic: DV, DVV, VV).
        if let Some(b) = self.debug_trace {
            o.debug = b;
            o.trace = b;
        }
        if let Some(b) = self.debug_trace_verbose {
            o.debug = b;
            o.trace = b;
            o.trace_verbose = b;
        }
        if let Some(b) = self.trace_verbose {
            o.trace = b;
            o.trace_verbose = b;
        }

        if let Some(listen) = &self.cluster {
            o.cluster.listen_str = listen.clone();
            override_cluster(o, listen)?;
        }
        if let Some(routes) = &self.routes {
            o.routes_str = routes.clone();
            o.routes = if routes.is_empty() {
                Vec::new()
            } else {
                routes_from_str(routes)?
            };
        }

        // TLS: any -tls* flag turns TLS on from the flags, unless -tls=false turns it off.
        if self.tls == Some(false) {
            o.tls = None;
        } else if self.tls == Some(true)
            || self.tls_cert.is_some()
            || self.tls_key.is_some()
            || self.tls_verify.is_some()
            || self.tls_ca_cert.is_some()
        {
            let cert = self.tls_cert.clone().unwrap_or_default();
            let key = self.tls_key.clone().unwrap_or_default();
            if cert.is_empty() {
                return Err(FlagError::Invalid(
                    "TLS Server certificate must be present and valid".into(),
                ));
            }
            if key.is_empty() {
                return Err(FlagError::Invalid(
                    "TLS Server private key must be present and valid".into(),
                ));
            }
            o.tls = Some(TlsConfig {
                cert_file: cert,
                key_file: key,
                ca_file: self.tls_ca_cert.clone().unwrap_or_default(),
                verify: self.tls_verify.unwrap_or(false),
                ..TlsConfig::default()
            });
        }

        if self.routes.as_deref().is_some_and(|r| !r.is_empty())
            && o.cluster.listen_str.is_empty()
            && o.cluster.host.is_empty()
            && o.cluster.port == 0
        {
            return Err(FlagError::Invalid(
                "solicited routes require cluster capabilities, e.g. --cluster".into(),
            ));
        }
        Ok(())
    }
}

/// nats-server's `RoutesFromStr`: comma-separated URLs.
fn routes_from_str(s: &str) -> Result<Vec<UrlOpt>, FlagError> {
    s.split(',')
        .map(|r| {
            let r = r.trim();
            UrlOpt::parse(r)
                .map_err(|_| FlagError::Invalid(format!("error parsing route url [{r:?}]")))
        })
        .collect()
}

/// nats-server's `overrideCluster`: `--cluster nats://[user:pass@]host:port` sets the cluster
/// listener (and its credentials); an empty value disables the cluster.
fn override_cluster(o: &mut Options, listen: &str) -> Result<(), FlagError> {
    if listen.is_empty() {
        o.cluster.port = 0;
        return Ok(());
    }
    let (random, text) = match listen.strip_suffix(":-1") {
        Some(prefix) => (true, format!("{prefix}:0")),
        None => (false, listen.to_string()),
    };
    let url = UrlOpt::parse(&text).map_err(FlagError::Invalid)?;
    let hostport = match &url.port {
        Some(p) if url.host.contains(':') => format!("[{}]:{p}", url.host),
        Some(p) => format!("{}:{p}", url.host),
        None => url.host.clone(),
    };
    let (host, port) = parse_host_port_for_flags(&hostport).map_err(FlagError::Invalid)?;
    o.cluster.host = host;
    o.cluster.port = if random { -1 } else { port };
    match (&url.username, &url.password) {
        (Some(user), Some(pass)) => {
            o.cluster.username = user.clone();
            o.cluster.password = pass.clone();
        }
        (Some(_), None) => {
            return Err(FlagError::Invalid(
                "expected cluster password to be set".into(),
            ));
        }
        _ => {
            o.cluster.username.clear();
            o.cluster.password.clear();
        }
    }
    Ok(())
}

/// `natrix-server: v<version>`, the `-v` output (nats-server prints `nats-server: v2.x`).
pub fn version_text() -> String {
    format!("natrix-server: v{}", env!("CARGO_PKG_VERSION"))
}

/// The `-t` success line, as nats-server prints it (to stderr).
pub fn check_message(config_file: &std::path::Path, digest: &str) -> String {
    format!(
        "natrix-server: configuration file {} is valid ({digest})",
        config_file.display()
    )
}

/// The `-h` text: nats-server's usage, for natrix-server.
pub fn usage() -> String {
    USAGE.to_string()
}

const USAGE: &str = "
Usage: natrix-server [options]

Server Options:
    -a, --addr, --net <host>         Bind to host address (default: 0.0.0.0)
    -p, --port <port>                Use port for clients (default: 4222)
    -n, --name
        --server_name <server_name>  Server name (default: auto)
    -P, --pid <file>                 File to store PID
    -m, --http_port <port>           Use port for http monitoring
    -ms,--https_port <port>          Use port for https monitoring
    -c, --config <file>              Configuration file
    -t                               Test configuration and exit
    -sl,--signal <signal>[=<pid>]    Send signal to natrix-server process (ldm, stop, quit, term, reopen, reload)
                                     <pid> can be either a PID (e.g. 1) or the path to a PID file (e.g. /var/run/natrix-server.pid)
        --client_advertise <string>  Client URL to advertise to other servers
        --ports_file_dir <dir>       Creates a ports file in the specified directory (<executable_name>_<pid>.ports).

Logging Options:
    -l, --log <file>                 File to redirect log output
    -T, --logtime                    Timestamp log entries (default: true)
    -s, --syslog                     Log to syslog or windows event log
    -r, --remote_syslog <addr>       Syslog server addr (udp://localhost:514)
    -D, --debug                      Enable debugging output
    -V, --trace                      Trace the raw protocol
    -VV                              Verbose trace (traces system account as well)
    -DV                              Debug and trace
    -DVV                             Debug and verbose trace (traces system account as well)
        --log_size_limit <limit>     Logfile size limit (default: auto)
        --max_traced_msg_len <len>   Maximum printable length for traced messages (default: unlimited)

JetStream Options:
    -js, --jetstream                 Enable JetStream functionality
    -sd, --store_dir <dir>           Set the storage directory

Authorization Options:
        --user <user>                User required for connections
        --pass <password>            Password required for connections
        --auth <token>               Authorization token required for connections

TLS Options:
        --tls                        Enable TLS, do not verify clients (default: false)
        --tlscert <file>             Server certificate file
        --tlskey <file>              Private key for server certificate
        --tlsverify                  Enable TLS, verify client certificates
        --tlscacert <file>           Client certificate CA for verification

Cluster Options:
        --routes <rurl-1, rurl-2>    Routes to solicit and connect
        --cluster <cluster-url>      Cluster URL for solicited routes
        --cluster_name <string>      Cluster Name, if not set one will be dynamically generated
        --no_advertise <bool>        Do not advertise known cluster information to clients
        --cluster_advertise <string> Cluster URL to advertise to other servers
        --connect_retries <number>   For implicit routes, number of connect retries
        --cluster_listen <url>       Cluster url from which members can solicit routes

Profiling Options:
        --profile <port>             Profiling HTTP port

Common Options:
    -h, --help                       Show this message
    -v, --version                    Show version
        --help_tls                   TLS help
";

const TLS_USAGE: &str = "
TLS configuration is specified in the tls section of a configuration file:

e.g.

    tls {
        cert_file:      \"./certs/server-cert.pem\"
        key_file:       \"./certs/server-key.pem\"
        ca_file:        \"./certs/ca.pem\"
        verify:         true
        verify_and_map: true

        cipher_suites: [
            \"TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256\",
            \"TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256\"
        ]
        curve_preferences: [
            \"CurveP256\",
            \"CurveP384\",
            \"CurveP521\"
        ]
    }
";

/// Parses the command line (without the program name) the way nats-server's
/// `ConfigureOptions` does, loading the config file given with `-c`.
pub fn configure(args: impl IntoIterator<Item = String>) -> Result<Configured, FlagError> {
    let args: Vec<String> = args.into_iter().collect();
    let flags = Flags::parse_args(&args)?;

    if flags.version == Some(true) {
        return Ok(Configured::Version);
    }
    if flags.help == Some(true) {
        return Ok(Configured::Help(usage()));
    }
    if flags.help_tls == Some(true) {
        return Ok(Configured::HelpTls(TLS_USAGE.to_string()));
    }
    if let Some(cmd) = flags.args.first() {
        return match cmd.to_lowercase().as_str() {
            "version" => Ok(Configured::Version),
            "help" => Ok(Configured::Help(usage())),
            _ => Err(FlagError::Invalid(format!("unrecognized command: {cmd:?}"))),
        };
    }
    if let Some(sig) = flags.signal.as_deref().filter(|s| !s.is_empty()) {
        let parts: Vec<&str> = sig.split('=').collect();
        if parts.len() > 2 {
            return Err(FlagError::Invalid(format!(
                "invalid signal parameters: [{}]",
                parts[2..].join(" ")
            )));
        }
        let command = SignalCommand::parse(parts[0])
            .ok_or_else(|| FlagError::Invalid(format!("unknown signal {:?}", parts[0])))?;
        return Ok(Configured::Signal {
            command,
            target: parts.get(1).map(|s| s.to_string()),
        });
    }

    let config_file = flags
        .config
        .as_deref()
        .filter(|c| !c.is_empty())
        .map(PathBuf::from);
    let check = flags.check_config == Some(true);
    if check {
        let Some(path) = config_file else {
            return Err(FlagError::Invalid(
                "must specify [-c, --config] option to check configuration file syntax".into(),
            ));
        };
        let (opts, warnings) = Options::load(
            Some(&path),
            &Flags::default(),
            Strictness::Strict,
            &SystemLoader,
        )?;
        // Like nats-server, -t fails on warnings too.
        if !warnings.is_empty() {
            return Err(FlagError::Config(ConfigError::Invalid {
                errors: Vec::new(),
                warnings,
            }));
        }
        return Ok(Configured::CheckConfig {
            config_file: path,
            digest: opts.config_digest.unwrap_or_default(),
        });
    }

    let (options, warnings) = Options::load(
        config_file.as_deref(),
        &flags,
        Strictness::Strict,
        &SystemLoader,
    )
    .map_err(|e| match e {
        ConfigError::Flag(m) => FlagError::Invalid(m),
        e => FlagError::Config(e),
    })?;
    Ok(Configured::Run {
        options: Box::new(options),
        warnings,
        config_file,
        flags: Box::new(flags),
    })
}

/// [`configure`] on the process arguments.
pub fn configure_from_env() -> Result<Configured, FlagError> {
    configure(
        std::env::args_os()
            .skip(1)
            .map(|a| a.to_string_lossy().into_owned()),
    )
}
