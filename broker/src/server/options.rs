//! The options the running server reads, derived from the typed configuration
//! (`natrix_config::Options`) and swapped whole on reload, so every connection sees one
//! consistent set.

use std::time::Duration;

use crate::auth::Auth;

/// Runtime view of the configuration.
#[derive(Debug, Clone)]
pub struct RuntimeOptions {
    pub server_name: Option<String>,
    pub host: String,
    /// -1 picks a random port.
    pub port: i32,
    pub client_advertise: Option<String>,
    pub max_payload: i32,
    pub max_control_line: usize,
    pub max_connections: i64,
    pub max_subscriptions: usize,
    pub max_sub_tokens: usize,
    pub max_pending: usize,
    pub write_deadline: Duration,
    pub ping_interval: Duration,
    pub ping_max: u32,
    pub auth_timeout: Duration,
    pub lame_duck_duration: Duration,
    pub lame_duck_grace_period: Duration,
    pub headers: bool,
    pub auth: Auth,
    pub pid_file: Option<String>,
    pub ports_file_dir: Option<String>,
}

impl Default for RuntimeOptions {
    fn default() -> Self {
        Self {
            server_name: None,
            host: "0.0.0.0".into(),
            port: 4222,
            client_advertise: None,
            max_payload: 1024 * 1024,
            max_control_line: 4096,
            max_connections: 64 * 1024,
            max_subscriptions: 0,
            max_sub_tokens: 0,
            max_pending: 64 * 1024 * 1024,
            write_deadline: Duration::from_secs(10),
            ping_interval: Duration::from_secs(120),
            ping_max: 2,
            auth_timeout: Duration::from_secs(2),
            lame_duck_duration: Duration::from_secs(120),
            lame_duck_grace_period: Duration::from_secs(10),
            headers: true,
            auth: Auth::default(),
            pid_file: None,
            ports_file_dir: None,
        }
    }
}
