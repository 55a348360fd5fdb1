//! NATS connections to the servers that hold JetStream assets, shared between resources.
//!
//! A [`Target`] is where and as whom to connect, already resolved from a resource's
//! connection fields (the controller reads NatsClusters and Secrets for that). The
//! [`Pool`] keeps one connection per target, as NACK's connection pool does: dozens of
//! Streams and Consumers on one cluster share one TCP connection, and a periodic drift
//! check costs a request, not a handshake. A connection the client library gave up on is
//! replaced on the next use.

use std::collections::HashMap;
use std::collections::hash_map::DefaultHasher;
use std::hash::{Hash, Hasher};
use std::path::PathBuf;
use std::time::Duration;

/// Longest wait for a first connection; an unreachable server is a status condition
/// after this, not a stuck reconcile.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Most connections kept; past this, the pool drops the ones not connected.
pub const POOL_LIMIT: usize = 64;

/// How the operator authenticates.
#[derive(Clone, PartialEq, Eq, Hash, Default)]
pub enum Auth {
    #[default]
    None,
    /// The text of a `.creds` file.
    Creds(String),
    /// NACK's `creds`: a file in the operator's file system.
    CredsFile(PathBuf),
    /// An nkey seed.
    Nkey(String),
    /// NACK's `nkey`: a seed file in the operator's file system.
    NkeyFile(PathBuf),
    Token(String),
    UserPassword(String, String),
}

impl std::fmt::Debug for Auth {
    /// Names the method, never the secret.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let what = match self {
            Auth::None => "none",
            Auth::Creds(_) => "creds",
            Auth::CredsFile(_) => "creds file",
            Auth::Nkey(_) => "nkey",
            Auth::NkeyFile(_) => "nkey file",
            Auth::Token(_) => "token",
            Auth::UserPassword(..) => "user and password",
        };
        f.write_str(what)
    }
}

/// Where and as whom to connect.
#[derive(Clone, Debug, PartialEq, Eq, Hash, Default)]
pub struct Target {
    pub servers: Vec<String>,
    pub auth: Auth,
    /// Client certificate and key files.
    pub client_cert: Option<(PathBuf, PathBuf)>,
    /// CA files to trust.
    pub root_cas: Vec<PathBuf>,
    pub tls_first: bool,
}

impl Target {
    /// The pool key: the servers and a hash of the rest (credentials stay out of memory
    /// dumps of the map's keys).
    fn key(&self) -> String {
        let mut h = DefaultHasher::new();
        self.hash(&mut h);
        format!("{}#{:016x}", self.servers.join(","), h.finish())
    }
}

/// Why no connection could be made.
#[derive(Debug, thiserror::Error)]
pub enum ConnectError {
    #[error("no server to connect to")]
    NoServers,
    #[error("reading {path}: {source}")]
    File {
        path: String,
        #[source]
        source: std::io::Error,
    },
    #[error("bad credentials: {0}")]
    Credentials(String),
    #[error("connecting to {servers}: {message}")]
    Connect { servers: String, message: String },
}

async fn options(t: &Target) -> Result<async_nats::ConnectOptions, ConnectError> {
    let file = |path: &PathBuf| {
        let path = path.clone();
        async move {
            tokio::fs::read_to_string(&path)
                .await
                .map_err(|source| ConnectError::File {
                    path: path.display().to_string(),
                    source,
                })
        }
    };
    let mut o = match &t.auth {
        Auth::None => async_nats::ConnectOptions::new(),
        Auth::Creds(text) => async_nats::ConnectOptions::with_credentials(text)
            .map_err(|e| ConnectError::Credentials(e.to_string()))?,
        Auth::CredsFile(path) => async_nats::ConnectOptions::with_credentials(&file(path).await?)
            .map_err(|e| ConnectError::Credentials(e.to_string()))?,
        Auth::Nkey(seed) => async_nats::ConnectOptions::with_nkey(seed.trim().to_string()),
        Auth::NkeyFile(path) => {
            async_nats::ConnectOptions::with_nkey(file(path).await?.trim().to_string())
        }
        Auth::Token(token) => async_nats::ConnectOptions::with_token(token.clone()),
        Auth::UserPassword(u, p) => {
            async_nats::ConnectOptions::with_user_and_password(u.clone(), p.clone())
        }
    };
    for ca in &t.root_cas {
        o = o.add_root_certificates(ca.clone());
    }
    if let Some((cert, key)) = &t.client_cert {
        o = o.add_client_certificate(cert.clone(), key.clone());
    }
    if t.tls_first {
        o = o.tls_first();
    }
    Ok(o.name("natrix-operator")
        .connection_timeout(CONNECT_TIMEOUT)
        .request_timeout(Some(super::api::REQUEST_TIMEOUT)))
}

/// Connects once, bounded by [`CONNECT_TIMEOUT`] per attempt of the client library.
pub async fn connect(t: &Target) -> Result<async_nats::Client, ConnectError> {
    if t.servers.is_empty() {
        return Err(ConnectError::NoServers);
    }
    let opts = options(t).await?;
    let servers: Vec<async_nats::ServerAddr> = t
        .servers
        .iter()
        .map(|s| {
            s.parse()
                .map_err(|e: std::io::Error| ConnectError::Connect {
                    servers: s.clone(),
                    message: e.to_string(),
                })
        })
        .collect::<Result<_, _>>()?;
    // The library bounds each attempt by CONNECT_TIMEOUT; one more second for the TLS
    // and CONNECT exchange keeps this bounded even if it does not.
    match tokio::time::timeout(CONNECT_TIMEOUT * 2, opts.connect(servers)).await {
        Ok(Ok(c)) => Ok(c),
        Ok(Err(e)) => Err(ConnectError::Connect {
            servers: t.servers.join(","),
            message: e.to_string(),
        }),
        Err(_) => Err(ConnectError::Connect {
            servers: t.servers.join(","),
            message: format!("no connection within {:?}", CONNECT_TIMEOUT * 2),
        }),
    }
}

/// One connection per [`Target`].
#[derive(Default)]
pub struct Pool {
    clients: tokio::sync::Mutex<HashMap<String, async_nats::Client>>,
}

impl Pool {
    /// The pooled connection to `t`, made when missing or given up on. The lock is not
    /// held while connecting, so one unreachable server does not stall the reconciles
    /// of assets on other servers; two reconciles racing to the same new target may both
    /// connect, and the second connection replaces the first (which closes when dropped).
    pub async fn get(&self, t: &Target) -> Result<async_nats::Client, ConnectError> {
        let key = t.key();
        {
            let mut clients = self.clients.lock().await;
            if let Some(c) = clients.get(&key) {
                if c.connection_state() == async_nats::connection::State::Connected {
                    return Ok(c.clone());
                }
                clients.remove(&key);
            }
        }
        let c = connect(t).await?;
        let mut clients = self.clients.lock().await;
        if clients.len() >= POOL_LIMIT {
            clients.retain(|_, c| c.connection_state() == async_nats::connection::State::Connected);
        }
        clients.insert(key, c.clone());
        Ok(c)
    }

    /// Forgets the connection to `t` (after requests on it timed out).
    pub async fn forget(&self, t: &Target) {
        self.clients.lock().await.remove(&t.key());
    }
}
