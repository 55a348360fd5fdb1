//! The options the running server reads, derived from the typed configuration
//! (`natrix_config::Options`) and swapped whole on reload, so every connection sees one
//! consistent set.

use std::sync::Arc;
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
    pub max_closed_clients: usize,
    /// Client TLS, built from the `tls {}` block's files when the options were loaded.
    pub tls: Option<crate::tls::ServerTls>,
    /// How long a client has to finish the TLS handshake.
    pub tls_timeout: Duration,
    /// Route TLS (`cluster { tls {} }`), both sides.
    pub cluster_tls: Option<crate::tls::LinkTls>,
    /// Gateway TLS (`gateway { tls {} }`), both sides.
    pub gateway_tls: Option<crate::tls::LinkTls>,
    /// MQTT listener TLS (`mqtt { tls {} }`), rebuilt like the client one on each load
    /// so that a renewed certificate reaches new MQTT connections.
    pub mqtt_tls: Option<crate::tls::ServerTls>,
    /// The whole typed configuration these options came from, for monitoring (`/varz`
    /// reports listeners and limits that no connection reads).
    pub config: Arc<natrix_config::Options>,
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
            max_closed_clients: crate::server::MAX_CLOSED_CLIENTS,
            tls: None,
            tls_timeout: Duration::from_secs(2),
            cluster_tls: None,
            gateway_tls: None,
            mqtt_tls: None,
            config: Arc::new(default_config()),
        }
    }
}

/// nats-server's defaults with the baseline filled in.
fn default_config() -> natrix_config::Options {
    let mut o = natrix_config::Options::default();
    o.apply_baseline();
    o
}

impl RuntimeOptions {
    /// The runtime view of loaded configuration options; reads the TLS files, which is
    /// where it can fail.
    pub fn from_config(o: &natrix_config::Options) -> Result<Self, crate::tls::TlsError> {
        let tls = o.tls.as_ref().map(crate::tls::server_tls).transpose()?;
        let cluster_tls = o
            .cluster
            .tls
            .as_ref()
            .map(|t| crate::tls::link_tls(t, o.cluster.tls_timeout))
            .transpose()?;
        let gateway_tls = o
            .gateway
            .tls
            .as_ref()
            .map(|t| crate::tls::link_tls(t, o.gateway.tls_timeout))
            .transpose()?;
        let mqtt_tls = o
            .mqtt
            .tls
            .as_ref()
            .map(crate::tls::server_tls)
            .transpose()?;
        Ok(Self {
            server_name: (!o.server_name.is_empty()).then(|| o.server_name.clone()),
            host: o.host.clone(),
            port: o.port,
            client_advertise: (!o.client_advertise.is_empty()).then(|| o.client_advertise.clone()),
            max_payload: o.max_payload,
            max_control_line: usize::try_from(o.max_control_line).unwrap_or(4096),
            max_connections: o.max_connections,
            max_subscriptions: usize::try_from(o.max_subscriptions).unwrap_or(0),
            max_sub_tokens: usize::from(o.max_sub_tokens),
            max_pending: usize::try_from(o.max_pending).unwrap_or(64 * 1024 * 1024),
            write_deadline: o.write_deadline,
            ping_interval: o.ping_interval,
            ping_max: u32::try_from(o.ping_max).unwrap_or(2),
            auth_timeout: o.auth_timeout,
            lame_duck_duration: o.lame_duck_duration,
            lame_duck_grace_period: o.lame_duck_grace_period,
            headers: !o.no_header_support,
            auth: auth_from_config(o),
            pid_file: (!o.pid_file.is_empty()).then(|| o.pid_file.clone()),
            ports_file_dir: (!o.ports_file_dir.is_empty()).then(|| o.ports_file_dir.clone()),
            max_closed_clients: usize::try_from(o.max_closed_clients)
                .unwrap_or(crate::server::MAX_CLOSED_CLIENTS),
            tls,
            tls_timeout: o
                .tls
                .as_ref()
                .and_then(|t| t.timeout)
                .unwrap_or(o.tls_timeout),
            cluster_tls,
            gateway_tls,
            mqtt_tls,
            config: Arc::new(o.clone()),
        })
    }
}

fn permissions_from_config(p: &natrix_config::options::Permissions) -> crate::auth::Permissions {
    let side = |sp: &Option<natrix_config::options::SubjectPermission>| {
        sp.as_ref().map(|sp| crate::auth::SubjectPermission {
            allow: sp.allow.clone(),
            deny: sp.deny.clone().unwrap_or_default(),
        })
    };
    let response = p
        .response
        .as_ref()
        .map(|r| crate::auth::ResponsePermission {
            max_msgs: u32::try_from(r.max_msgs).ok(),
            expires: r.expires,
        });
    let mut publish = side(&p.publish);
    // As nats-server does: with allow_responses and no publish allow list, the user may
    // publish responses only.
    if response.is_some() {
        let p = publish.get_or_insert_with(Default::default);
        if p.allow.is_none() {
            p.allow = Some(Vec::new());
        }
    }
    crate::auth::Permissions {
        publish,
        subscribe: side(&p.subscribe),
        response,
    }
}

fn auth_from_config(o: &natrix_config::Options) -> Auth {
    let default_permissions = o
        .default_permissions
        .as_ref()
        .map(|p| Arc::new(permissions_from_config(p)));
    let mut auth = Auth {
        default_permissions,
        no_auth_user: (!o.no_auth_user.is_empty()).then(|| o.no_auth_user.clone()),
        tls_map: o.tls.as_ref().is_some_and(|t| t.map),
        simple_user: !o.username.is_empty() && o.users.is_empty(),
        ..Auth::default()
    };
    if !o.authorization.is_empty() {
        auth.token = Some(o.authorization.clone());
    }
    if !o.username.is_empty() {
        auth.users.insert(
            o.username.clone(),
            crate::auth::User {
                username: o.username.clone(),
                password: o.password.clone(),
                permissions: None,
                account: None,
                connection_types: None,
            },
        );
    }
    for n in &o.nkeys {
        auth.nkeys.insert(
            n.nkey.clone(),
            crate::auth::NkeyUser {
                permissions: n
                    .permissions
                    .as_ref()
                    .map(|p| Arc::new(permissions_from_config(p))),
                account: (!n.account.is_empty()).then(|| n.account.clone()),
                connection_types: n.allowed_connection_types.clone(),
            },
        );
    }
    for u in &o.users {
        auth.users.insert(
            u.username.clone(),
            crate::auth::User {
                username: u.username.clone(),
                password: u.password.clone(),
                permissions: u
                    .permissions
                    .as_ref()
                    .map(|p| Arc::new(permissions_from_config(p))),
                account: (!u.account.is_empty()).then(|| u.account.clone()),
                connection_types: u.allowed_connection_types.clone(),
            },
        );
    }
    auth
}
