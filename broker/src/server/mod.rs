//! The server: listener, connection registry, server-wide counters, lifecycle (signals,
//! lame-duck mode, graceful shutdown).

pub mod client;
pub mod lifecycle;
pub mod options;
pub mod outbound;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use serde::Serialize;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;

use crate::account::Account;
use crate::protocol::encode;
use client::{Client, ClientHandle};
use options::RuntimeOptions;
use outbound::{CloseReason, Outbound};

/// The NATS protocol version advertised in INFO.
pub const PROTO: i32 = 1;
/// The nats-server release whose client protocol and behaviour natrix implements;
/// clients gate features on INFO's `version`, so it is advertised there (natrix's own
/// version goes in the extra `natrix_version` field; see docs/compatibility.md).
pub const NATS_COMPAT_VERSION: &str = "2.14.0";
pub const VERSION: &str = env!("CARGO_PKG_VERSION");

/// Server-wide message counters, as `/varz` reports them.
#[derive(Debug, Default)]
pub struct Stats {
    pub in_msgs: AtomicU64,
    pub out_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
    pub out_bytes: AtomicU64,
    pub slow_consumers: AtomicU64,
    pub total_connections: AtomicU64,
}

/// What CONNECT told us about a client, for logs and monitoring.
#[derive(Debug, Clone, Default)]
pub struct ClientMeta {
    pub name: Option<String>,
    pub lang: Option<String>,
    pub version: Option<String>,
    pub user: Option<String>,
    pub addr: Option<SocketAddr>,
    pub start: Option<SystemTime>,
}

struct Registered {
    handle: Arc<ClientHandle>,
    meta: ClientMeta,
}

/// INFO as nats-server serialises it (field order and omissions included).
#[derive(Debug, Serialize)]
struct Info<'a> {
    server_id: &'a str,
    server_name: &'a str,
    version: &'a str,
    proto: i32,
    #[serde(skip_serializing_if = "str::is_empty")]
    git_commit: &'a str,
    go: &'a str,
    host: &'a str,
    port: u16,
    headers: bool,
    #[serde(skip_serializing_if = "is_false")]
    auth_required: bool,
    max_payload: i32,
    #[serde(skip_serializing_if = "is_zero")]
    client_id: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    client_ip: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    connect_urls: Option<&'a [String]>,
    #[serde(skip_serializing_if = "is_false")]
    ldm: bool,
    #[serde(skip_serializing_if = "is_false")]
    connect_info: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_account: Option<&'a str>,
    natrix_version: &'a str,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A NATS server.
pub struct Server {
    id: String,
    name: String,
    opts: RwLock<(Arc<RuntimeOptions>, u64)>,
    pub gacc: Arc<Account>,
    clients: Mutex<FxHashMap<u64, Registered>>,
    next_cid: AtomicU64,
    pub stats: Stats,
    started: SystemTime,
    addr: Mutex<Option<SocketAddr>>,
    lame_duck: AtomicBool,
    shutdown_tx: watch::Sender<bool>,
}

/// Random server id in the shape of an nkey server public key ('N' + 55 base32 chars).
fn new_server_id() -> String {
    const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZ234567";
    let mut id = String::with_capacity(56);
    id.push('N');
    for _ in 0..55 {
        id.push(ALPHABET[fastrand::usize(..ALPHABET.len())] as char);
    }
    id
}

impl Server {
    pub fn new(opts: RuntimeOptions) -> Arc<Self> {
        let id = new_server_id();
        let name = opts.server_name.clone().unwrap_or_else(|| id.clone());
        let (shutdown_tx, _) = watch::channel(false);
        Arc::new(Self {
            id,
            name,
            opts: RwLock::new((Arc::new(opts), 0)),
            gacc: Arc::new(Account::new("$G")),
            clients: Mutex::new(FxHashMap::default()),
            next_cid: AtomicU64::new(1),
            stats: Stats::default(),
            started: SystemTime::now(),
            addr: Mutex::new(None),
            lame_duck: AtomicBool::new(false),
            shutdown_tx,
        })
    }

    pub fn id(&self) -> &str {
        &self.id
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn started(&self) -> SystemTime {
        self.started
    }

    /// The current options and their generation (bumped on every reload).
    pub fn options(&self) -> (Arc<RuntimeOptions>, u64) {
        let g = self.opts.read();
        (g.0.clone(), g.1)
    }

    /// Installs reloaded options; connections pick them up on their next read.
    pub fn set_options(&self, opts: RuntimeOptions) {
        let mut g = self.opts.write();
        let next = g.1 + 1;
        *g = (Arc::new(opts), next);
    }

    /// The address the client listener is bound to, once started.
    pub fn addr(&self) -> Option<SocketAddr> {
        *self.addr.lock()
    }

    pub fn num_clients(&self) -> usize {
        self.clients.lock().len()
    }

    pub fn is_lame_duck(&self) -> bool {
        self.lame_duck.load(Ordering::Acquire)
    }

    /// Binds the client listener.
    pub async fn bind(&self) -> std::io::Result<TcpListener> {
        let (opts, _) = self.options();
        let port = if opts.port < 0 { 0 } else { opts.port };
        let port = u16::try_from(port).map_err(|_| {
            std::io::Error::new(std::io::ErrorKind::InvalidInput, "port out of range")
        })?;
        let listener = TcpListener::bind((opts.host.as_str(), port)).await?;
        let addr = listener.local_addr()?;
        *self.addr.lock() = Some(addr);
        tracing::info!("Listening for client connections on {addr}");
        Ok(listener)
    }

    /// Accepts clients until shutdown or lame-duck mode.
    pub async fn accept_loop(self: &Arc<Self>, listener: TcpListener) {
        let mut shutdown = self.shutdown_tx.subscribe();
        let mut backoff = Duration::from_millis(10);
        loop {
            tokio::select! {
                res = listener.accept() => match res {
                    Ok((stream, peer)) => {
                        backoff = Duration::from_millis(10);
                        let server = self.clone();
                        tokio::spawn(async move { server.handle_client(stream, peer).await });
                    }
                    Err(e) => {
                        // Out of file descriptors and similar: back off as nats-server does.
                        tracing::error!("Temporary Client Accept Error ({e}), sleeping {}ms", backoff.as_millis());
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                    }
                },
                _ = shutdown.changed() => break,
            }
            if self.is_lame_duck() {
                break;
            }
        }
    }

    async fn handle_client(self: Arc<Self>, stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let (opts, _) = self.options();
        let cid = self.next_cid.fetch_add(1, Ordering::Relaxed);
        self.stats.total_connections.fetch_add(1, Ordering::Relaxed);
        let (rd, wr) = stream.into_split();
        let outbound = Arc::new(Outbound::new(wr, opts.max_pending));
        let handle = Arc::new(ClientHandle {
            cid,
            outbound: outbound.clone(),
            headers: AtomicBool::new(false),
            in_msgs: AtomicU64::new(0),
            in_bytes: AtomicU64::new(0),
            out_msgs: AtomicU64::new(0),
            out_bytes: AtomicU64::new(0),
        });
        let writer = tokio::spawn(outbound.clone().run_writer(opts.write_deadline));
        let ip = peer.ip().to_string();
        let info = self.client_info_json(cid, Some(&ip), false);
        let mut v = Vec::with_capacity(info.len() + 8);
        encode::info(&mut v, &info);
        outbound.push_proto(&v);
        let admitted = {
            let mut clients = self.clients.lock();
            let max = opts.max_connections;
            if max < 0 || (max > 0 && clients.len() as i64 >= max) {
                false
            } else {
                clients.insert(
                    cid,
                    Registered {
                        handle: handle.clone(),
                        meta: ClientMeta {
                            addr: Some(peer),
                            start: Some(SystemTime::now()),
                            ..ClientMeta::default()
                        },
                    },
                );
                true
            }
        };
        if !admitted {
            tracing::error!("maximum connections exceeded");
            let mut v = Vec::new();
            encode::err(&mut v, "maximum connections exceeded");
            outbound.push_proto(&v);
            outbound.close(CloseReason::MaxConnectionsExceeded);
        } else {
            tracing::debug!(cid, %peer, "Client connection created");
            Client::new(self.clone(), handle).run(rd).await;
        }
        let _ = writer.await;
        tracing::debug!(cid, reason = ?outbound.close_reason(), "Client connection closed");
    }

    pub(crate) fn remove_client(&self, handle: &ClientHandle) {
        self.clients.lock().remove(&handle.cid);
    }

    pub(crate) fn record_connect(
        &self,
        cid: u64,
        name: Option<String>,
        lang: Option<String>,
        version: Option<String>,
        user: Option<String>,
    ) {
        if let Some(r) = self.clients.lock().get_mut(&cid) {
            r.meta.name = name;
            r.meta.lang = lang;
            r.meta.version = version;
            r.meta.user = user;
        }
    }

    pub(crate) fn note_slow_consumer(&self, cid: u64) {
        self.stats.slow_consumers.fetch_add(1, Ordering::Relaxed);
        tracing::warn!(cid, "Slow Consumer Detected");
    }

    /// The INFO JSON for a client connection.
    pub(crate) fn client_info_json(
        &self,
        cid: u64,
        ip: Option<&str>,
        connect_info: bool,
    ) -> Vec<u8> {
        let (opts, _) = self.options();
        let port = self.addr().map_or(0, |a| a.port());
        let info = Info {
            server_id: &self.id,
            server_name: &self.name,
            version: NATS_COMPAT_VERSION,
            proto: PROTO,
            git_commit: "",
            go: concat!("natrix ", env!("CARGO_PKG_VERSION")),
            host: &opts.host,
            port,
            headers: opts.headers,
            auth_required: opts.auth.required(),
            max_payload: opts.max_payload,
            client_id: cid,
            client_ip: ip.unwrap_or(""),
            connect_urls: None,
            ldm: self.is_lame_duck(),
            connect_info,
            remote_account: connect_info.then_some(self.gacc.name()),
            natrix_version: VERSION,
        };
        serde_json::to_vec(&info).unwrap_or_default()
    }

    /// Asks every task to stop.
    pub fn shutdown(&self) {
        let _ = self.shutdown_tx.send(true);
        let clients: Vec<Arc<ClientHandle>> = self
            .clients
            .lock()
            .values()
            .map(|r| r.handle.clone())
            .collect();
        for c in clients {
            c.outbound.close(CloseReason::ServerShutdown);
        }
    }

    /// Lame-duck mode: stop accepting, tell clients (INFO `ldm`), wait the grace period,
    /// then close clients spread over the rest of the lame-duck duration, then shut down.
    pub async fn lame_duck(self: &Arc<Self>) {
        if self.lame_duck.swap(true, Ordering::AcqRel) {
            return;
        }
        let (opts, _) = self.options();
        tracing::info!("Entering lame duck mode, stop accepting new clients");
        let _ = self.shutdown_tx.send(false);
        let clients: Vec<Arc<ClientHandle>> = self
            .clients
            .lock()
            .values()
            .map(|r| r.handle.clone())
            .collect();
        for c in &clients {
            let json = self.client_info_json(c.cid, None, false);
            let mut v = Vec::with_capacity(json.len() + 8);
            encode::info(&mut v, &json);
            c.outbound.push_proto(&v);
        }
        let grace = opts.lame_duck_grace_period.min(opts.lame_duck_duration);
        tokio::time::sleep(grace).await;
        let spread = opts.lame_duck_duration.saturating_sub(grace);
        let n = clients.len().max(1) as u32;
        let step = spread / n;
        for c in clients {
            c.outbound.close(CloseReason::ServerShutdown);
            if !step.is_zero() {
                tokio::time::sleep(step).await;
            }
        }
        self.shutdown();
    }

    /// Resolves when shutdown was requested.
    pub async fn wait_shutdown(&self) {
        let mut rx = self.shutdown_tx.subscribe();
        while !*rx.borrow() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }

    /// Client metadata for monitoring and tests.
    pub fn client_meta(&self, cid: u64) -> Option<ClientMeta> {
        self.clients.lock().get(&cid).map(|r| r.meta.clone())
    }
}

impl Server {
    /// Binds, then serves clients until shutdown; for embedding and tests.
    pub async fn start(self: &Arc<Self>) -> std::io::Result<tokio::task::JoinHandle<()>> {
        let listener = self.bind().await?;
        let server = self.clone();
        Ok(tokio::spawn(async move {
            tracing::info!("Server is ready");
            server.accept_loop(listener).await;
        }))
    }
}
