//! The server: listener, connection registry, server-wide counters, lifecycle (signals,
//! lame-duck mode, graceful shutdown).

pub mod client;
pub mod events;
pub(crate) mod fanout;
pub mod internal;
pub mod lifecycle;
pub mod options;
pub mod outbound;
pub mod reload;
pub mod system;

use std::collections::VecDeque;
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
/// What INFO and `/varz` put in nats-server's `go` field (its Go toolchain version).
pub const GO_FIELD: &str = concat!("natrix ", env!("CARGO_PKG_VERSION"));

/// Server-wide message counters, as `/varz` reports them.
#[derive(Debug, Default)]
pub struct Stats {
    pub in_msgs: AtomicU64,
    pub out_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
    pub out_bytes: AtomicU64,
    pub slow_consumers: AtomicU64,
    pub total_connections: AtomicU64,
    /// Connections closed as stale (unanswered PINGs).
    pub stale_connections: AtomicU64,
    /// Times a publisher was stalled by a subscriber's filling buffer.
    pub stalls: AtomicU64,
}

/// How many closed connections `/connz?state=closed` remembers (nats-server's
/// `DEFAULT_MAX_CLOSED_CLIENTS`).
pub const MAX_CLOSED_CLIENTS: usize = 10_000;

/// An MQTT connection as its session hands it to the core: who it is for `/connz`, and
/// the TLS session it came over (its certificate is what `verify_and_map` reads).
#[derive(Debug, Clone)]
pub(crate) struct MqttConn {
    pub peer: SocketAddr,
    pub client_id: String,
    /// The negotiated protocol and cipher suite, over TLS.
    pub tls: Option<(String, String)>,
    /// The certificate chain the client presented, if any.
    pub peer_certs: Option<Arc<Vec<crate::x509::PeerCert>>>,
    /// It came over the WebSocket listener (`/mqtt`): connection kind `MQTT_WS`.
    pub websocket: bool,
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
    /// Negotiated TLS version and cipher suite, on TLS connections.
    pub tls: Option<(String, String)>,
    /// The account the connection is bound to (after CONNECT).
    pub account: Option<String>,
    /// The protocol level from CONNECT (1 takes async INFO updates).
    pub protocol: i64,
    /// The permissions the connection has now (`$SYS.REQ.USER.INFO` reports them).
    pub permissions: Option<Arc<crate::auth::Permissions>>,
    /// The certificate chain the client presented (`/connz?auth=1` `tls_peer_certs`).
    pub peer_certs: Option<Arc<Vec<crate::x509::PeerCert>>>,
    /// The MQTT client ID, on a connection of the MQTT listener (`/connz` `mqtt_client`).
    pub mqtt_client: Option<String>,
    /// A NATS client over WebSocket (`/connz` `type` "websocket").
    pub websocket: bool,
}

struct Registered {
    handle: Arc<ClientHandle>,
    meta: ClientMeta,
}

/// A client connection as monitoring sees it, copied out so that nothing (least of all
/// a socket) is kept alive by a monitoring request or the closed-connections ring.
#[derive(Debug, Clone)]
pub struct ClientView {
    pub cid: u64,
    pub meta: ClientMeta,
    pub start: SystemTime,
    /// Nanoseconds since the Unix epoch.
    pub last_activity: u64,
    /// Nanoseconds; 0 when not measured yet.
    pub rtt: u64,
    pub pending: usize,
    pub in_msgs: u64,
    pub in_bytes: u64,
    pub out_msgs: u64,
    pub out_bytes: u64,
    pub stalls: u64,
}

impl ClientView {
    fn of(handle: &ClientHandle, meta: &ClientMeta) -> Self {
        Self {
            cid: handle.cid,
            meta: meta.clone(),
            start: handle.start,
            last_activity: handle.last_activity.load(Ordering::Relaxed),
            rtt: handle.rtt.load(Ordering::Relaxed),
            pending: handle.outbound.pending(),
            in_msgs: handle.in_msgs.load(Ordering::Relaxed),
            in_bytes: handle.in_bytes.load(Ordering::Relaxed),
            out_msgs: handle.out_msgs(),
            out_bytes: handle.out_bytes(),
            stalls: handle.stalls.load(Ordering::Relaxed),
        }
    }
}

/// A subscription as monitoring sees it.
#[derive(Debug, Clone)]
pub struct SubView {
    pub cid: u64,
    pub subject: bytes::Bytes,
    pub queue: Option<bytes::Bytes>,
    pub sid: bytes::Bytes,
    pub msgs: u64,
    pub max: u64,
}

impl SubView {
    pub fn of(sub: &client::Subscription) -> Self {
        Self {
            cid: sub.client.cid,
            subject: sub.subject.clone(),
            queue: sub.queue.clone(),
            sid: sub.sid.clone(),
            msgs: sub.delivered(),
            max: sub.max(),
        }
    }
}

/// A closed connection as it was when it closed.
#[derive(Debug, Clone)]
pub struct ClosedClient {
    pub view: ClientView,
    pub stop: SystemTime,
    pub reason: CloseReason,
    /// The subscriptions it still had.
    pub subs: Vec<SubView>,
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
    #[serde(skip_serializing_if = "is_false")]
    tls_required: bool,
    #[serde(skip_serializing_if = "is_false")]
    tls_verify: bool,
    max_payload: i32,
    #[serde(skip_serializing_if = "is_false")]
    jetstream: bool,
    #[serde(skip_serializing_if = "is_zero")]
    client_id: u64,
    #[serde(skip_serializing_if = "str::is_empty")]
    client_ip: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    nonce: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    connect_urls: Option<&'a [String]>,
    #[serde(skip_serializing_if = "is_false")]
    ldm: bool,
    #[serde(skip_serializing_if = "is_false")]
    connect_info: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_account: Option<&'a str>,
    natrix_version: &'a str,
    /// The JetStream API level (nats-server's `JSApiLevel`), with JetStream on.
    #[serde(skip_serializing_if = "is_zero")]
    api_lvl: u64,
}

fn is_false(b: &bool) -> bool {
    !*b
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

/// A 22-character NUID-like token (base62), as nats-server's event ids and `$LDS.`
/// subjects use.
pub(crate) fn nuid() -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    (0..22)
        .map(|_| ALPHABET[fastrand::usize(..ALPHABET.len())] as char)
        .collect()
}

/// A NATS server.
pub struct Server {
    /// This server's own `Arc`, for work that outlives a call (import responses).
    me: std::sync::Weak<Server>,
    /// The server nkey; its public key is the server id.
    key: natrix_jwt::nkeys::KeyPair,
    /// The curve key auth callout requests are sealed with.
    xkey: natrix_jwt::nkeys::XKey,
    id: String,
    name: String,
    opts: RwLock<(Arc<RuntimeOptions>, u64)>,
    pub gacc: Arc<Account>,
    /// The system account; it exists, as in nats-server, even while nothing uses it.
    pub sys_account: Arc<Account>,
    /// The cluster side, when a cluster port is configured.
    cluster: std::sync::OnceLock<Arc<crate::cluster::Cluster>>,
    /// The gateway side, when a gateway port is configured.
    gateways: std::sync::OnceLock<Arc<crate::cluster::gateway::Gateways>>,
    /// The leaf node side, when `leafnodes {}` has a port or remotes.
    leafnodes: std::sync::OnceLock<Arc<crate::leafnode::LeafNodes>>,
    /// JetStream, when `main.rs` started it: what monitoring and INFO read from it.
    jetstream: RwLock<Option<Arc<dyn crate::monitor::jsz::JetStreamMonitor>>>,
    /// Configured accounts by name (`$G` and `$SYS` are not in here).
    accounts: RwLock<Vec<Arc<Account>>>,
    clients: Mutex<FxHashMap<u64, Registered>>,
    closed: Mutex<VecDeque<ClosedClient>>,
    config_load_time: Mutex<SystemTime>,
    next_cid: AtomicU64,
    /// The sequence of the server's `$SYS` messages (`server.seq` in their JSON).
    sys_seq: AtomicU64,
    pub stats: Stats,
    started: SystemTime,
    addr: Mutex<Option<SocketAddr>>,
    /// The monitoring listener and whether it is HTTPS.
    /// Where the WebSocket listener is bound, once it is.
    websocket_addr: Mutex<Option<SocketAddr>>,
    mqtt_addr: Mutex<Option<SocketAddr>>,
    /// The MQTT listener's session registry (client IDs in use), shared with MQTT over
    /// WebSocket so that one client ID is one session whatever the transport. Opaque
    /// here: its type is the MQTT module's own.
    mqtt_sessions: std::sync::OnceLock<Arc<dyn std::any::Any + Send + Sync>>,
    http_addr: Mutex<Option<(SocketAddr, bool)>>,
    lame_duck: AtomicBool,
    shutdown_tx: watch::Sender<bool>,
    /// Operator mode: the trusted operators and the account resolver.
    trust: std::sync::OnceLock<Arc<crate::trust::Trust>>,
    /// Subsystems told when an account's JWT is installed (JetStream enables accounts
    /// whose claims grant it).
    claim_listeners: RwLock<Vec<ClaimListener>>,
    /// Work done before a graceful shutdown or lame duck closes any connection.
    before_shutdown: RwLock<Vec<ShutdownHook>>,
}

/// Called with an account whose JWT claims were just installed.
/// Work run before a graceful shutdown (see [`Server::on_before_shutdown`]).
pub type ShutdownHook =
    Arc<dyn Fn() -> std::pin::Pin<Box<dyn std::future::Future<Output = ()> + Send>> + Send + Sync>;

/// How long the hooks run before a shutdown may take, in all.
pub const HAND_OVER_LIMIT: Duration = Duration::from_secs(5);

pub type ClaimListener = Box<dyn Fn(&Arc<Account>) + Send + Sync>;

/// `host:port` of a bound listener as others can dial it: a wildcard bind (`0.0.0.0`)
/// is reached on loopback.
pub(crate) fn reachable(addr: SocketAddr) -> String {
    if addr.ip().is_unspecified() {
        format!("127.0.0.1:{}", addr.port())
    } else {
        format!("{}:{}", addr.ip(), addr.port())
    }
}

/// Queues a message for one local subscription and notes in `to_flush` an outbound the
/// caller must flush once it has queued its whole batch (one write for many messages).
pub(crate) fn deliver_deferred(
    account: &Account,
    sub: &Arc<client::Subscription>,
    d: &encode::Delivery<'_>,
    to_flush: &mut Vec<Arc<Outbound>>,
) -> bool {
    if sub.client.kind == client::ConnKind::Leaf {
        return crate::leafnode::deliver_one(sub, d);
    }
    let last = match sub.claim() {
        client::Claim::Skip => return false,
        client::Claim::Deliver => false,
        client::Claim::Last => true,
    };
    let target = &sub.client;
    let headers = target.headers.load(Ordering::Relaxed);
    let imported;
    let subject = match &sub.rewrite {
        None => d.subject,
        Some(r) => {
            imported = r.apply(d.subject);
            &imported[..]
        }
    };
    let frame = encode::Delivery {
        sid: &sub.sid,
        subject,
        ..*d
    };
    let push = target
        .outbound
        .push_msg(frame.wire_len(), d.msg.len(), |out| {
            frame.encode(out, headers);
        });
    let ok = !matches!(push, outbound::Push::Closed);
    if push.needs_flush() {
        to_flush.push(target.outbound.clone());
    }
    if last {
        let _ = account.sublist.remove(sub);
    }
    ok
}

/// A connection's nonce for nkey signatures: 11 bytes from the system's secure random
/// source (a predictable nonce would let a recorded signature be replayed), base64url
/// without padding, the form nats-server sends.
pub(crate) fn new_nonce() -> String {
    use base64::Engine as _;
    use ring::rand::SecureRandom as _;
    let mut bytes = [0u8; 11];
    if ring::rand::SystemRandom::new().fill(&mut bytes).is_err() {
        // The OS random source failing is not something a connection can recover from;
        // say so loudly and fall back to the per-thread generator rather than refusing
        // every nkey login.
        tracing::error!("system random source failed; nkey nonce from the fallback generator");
        bytes = std::array::from_fn(|_| fastrand::u8(..));
    }
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(bytes)
}

impl Server {
    pub fn new(opts: RuntimeOptions) -> Arc<Self> {
        // As nats-server: the server id is the public key of a server nkey made at start,
        // which signs what the server asserts (auth callout requests).
        let key = natrix_jwt::nkeys::KeyPair::new_server();
        let id = key.public_key();
        let name = opts.server_name.clone().unwrap_or_else(|| id.clone());
        let (shutdown_tx, _) = watch::channel(false);
        let names = opts.config.account_names.clone();
        // The system account: `system_account` when the config names one, else `$SYS`.
        let sys_name = if opts.config.system_account.is_empty() {
            "$SYS".to_owned()
        } else {
            opts.config.system_account.clone()
        };
        let server = Arc::new_cyclic(|me| Self {
            me: me.clone(),
            key,
            xkey: natrix_jwt::nkeys::XKey::new(),
            id,
            name,
            opts: RwLock::new((Arc::new(opts), 0)),
            gacc: Arc::new(Account::new("$G")),
            sys_account: Arc::new(Account::new(&sys_name)),
            accounts: RwLock::new(Vec::new()),
            cluster: std::sync::OnceLock::new(),
            gateways: std::sync::OnceLock::new(),
            leafnodes: std::sync::OnceLock::new(),
            jetstream: RwLock::new(None),
            clients: Mutex::new(FxHashMap::default()),
            closed: Mutex::new(VecDeque::new()),
            config_load_time: Mutex::new(SystemTime::now()),
            next_cid: AtomicU64::new(1),
            sys_seq: AtomicU64::new(0),
            stats: Stats::default(),
            started: SystemTime::now(),
            addr: Mutex::new(None),
            http_addr: Mutex::new(None),
            websocket_addr: Mutex::new(None),
            mqtt_addr: Mutex::new(None),
            mqtt_sessions: std::sync::OnceLock::new(),
            lame_duck: AtomicBool::new(false),
            shutdown_tx,
            trust: std::sync::OnceLock::new(),
            claim_listeners: RwLock::new(Vec::new()),
            before_shutdown: RwLock::new(Vec::new()),
        });
        server.add_accounts(&names);
        let (opts, _) = server.options();
        server.apply_mappings(&opts.config);
        crate::imports::apply(&server, &opts.config);
        server
    }

    /// Switches the server to operator mode (at start, before clients connect): accounts
    /// come from the resolver, signed by the trusted operators.
    pub fn set_trust(&self, trust: Arc<crate::trust::Trust>) {
        let _ = self.trust.set(trust);
        if let Some(sys) = self.trust().map(|t| t.system_account.clone()) {
            self.load_claims(&sys);
        }
    }

    /// The trusted operators, in operator mode.
    pub fn trust(&self) -> Option<&Arc<crate::trust::Trust>> {
        self.trust.get()
    }

    /// The account with public key `pubkey`, loaded from the resolver the first time it
    /// is needed (operator mode); configured accounts by name otherwise.
    pub fn resolve_account(&self, pubkey: &str) -> Option<Arc<Account>> {
        if let Some(acc) = self.account(pubkey) {
            if acc.claims().is_none() && self.trust().is_some() {
                self.load_claims(pubkey);
            }
            return Some(acc);
        }
        let trust = self.trust()?.clone();
        let jwt = trust.resolver.fetch(pubkey)?;
        let claims = match trust.verify_account(&jwt) {
            Ok(c) if c.data.subject == pubkey => c,
            Ok(_) => {
                tracing::warn!("account JWT for {pubkey} names another account");
                return None;
            }
            Err(e) => {
                tracing::warn!("account JWT for {pubkey} refused: {e}");
                return None;
            }
        };
        let acc = {
            let mut accounts = self.accounts.write();
            if let Some(a) = accounts.iter().find(|a| a.name() == pubkey) {
                a.clone()
            } else {
                let a = Arc::new(Account::new(pubkey));
                accounts.push(a.clone());
                a
            }
        };
        self.install_claims(&acc, claims, jwt);
        Some(acc)
    }

    /// Loads (or reloads) an existing account's JWT from the resolver.
    fn load_claims(&self, pubkey: &str) {
        let (Some(trust), Some(acc)) = (self.trust().cloned(), self.account(pubkey)) else {
            return;
        };
        let Some(jwt) = trust.resolver.fetch(pubkey) else {
            return;
        };
        match trust.verify_account(&jwt) {
            Ok(claims) if claims.data.subject == pubkey => self.install_claims(&acc, claims, jwt),
            Ok(_) => tracing::warn!("account JWT for {pubkey} names another account"),
            Err(e) => tracing::warn!("account JWT for {pubkey} refused: {e}"),
        }
    }

    /// Applies an account's verified claims: its mappings, the accounts its imports need
    /// (loaded too), every account's import links, and a re-check of its clients.
    pub(crate) fn install_claims(
        &self,
        acc: &Arc<Account>,
        claims: natrix_jwt::AccountClaims,
        jwt: String,
    ) {
        let exporters: Vec<String> = claims
            .nats
            .imports
            .iter()
            .map(|i| i.account.clone())
            .filter(|a| a != acc.name())
            .collect();
        let mappings = claims.nats.mappings.iter().filter_map(|(src, dests)| {
            let dests: Vec<natrix_transform::MapDest> = dests
                .iter()
                .map(|d| {
                    let mut m = natrix_transform::MapDest::new(d.subject.clone(), d.weight());
                    m.cluster.clone_from(&d.cluster);
                    m
                })
                .collect();
            natrix_transform::Mapping::new(src, &dests)
                .map_err(|e| tracing::warn!("account {} mapping {src:?}: {e}", acc.name()))
                .ok()
        });
        acc.set_mappings(natrix_transform::Mappings::new(mappings));
        acc.set_claims(claims, jwt);
        for exporter in exporters {
            if self.account(&exporter).is_none() {
                let _ = self.resolve_account(&exporter);
            }
        }
        let (opts, _) = self.options();
        crate::imports::apply(self, &opts.config);
        for r in self.clients.lock().values() {
            r.handle.reload.notify_one();
        }
        for listener in self.claim_listeners.read().iter() {
            listener(acc);
        }
    }

    /// Registers `listener` for every account JWT installed from now on, and calls it
    /// for the accounts that already have one.
    pub fn on_account_claims(&self, listener: ClaimListener) {
        for acc in self.all_accounts() {
            if acc.claims().is_some() {
                listener(&acc);
            }
        }
        self.claim_listeners.write().push(listener);
    }

    /// Closes every client bound to `account`, telling each `text` first.
    pub(crate) fn close_account_clients(
        &self,
        account: &str,
        text: &str,
        reason: outbound::CloseReason,
    ) {
        let mut frame = Vec::with_capacity(text.len() + 9);
        encode::err(&mut frame, text);
        for r in self.clients.lock().values() {
            if r.meta.account.as_deref() == Some(account) {
                r.handle.outbound.push_proto(&frame);
                r.handle.outbound.close(reason);
            }
        }
    }

    /// The server's nkey (its public key is [`Server::id`]).
    pub fn key(&self) -> &natrix_jwt::nkeys::KeyPair {
        &self.key
    }

    /// The server's curve key for sealed auth callout exchanges.
    pub fn xkey(&self) -> &natrix_jwt::nkeys::XKey {
        &self.xkey
    }

    /// This server, shared.
    pub(crate) fn me(&self) -> Option<Arc<Server>> {
        self.me.upgrade()
    }

    /// The shared handle of an account this server holds.
    pub(crate) fn account_arc(&self, account: &Account) -> Option<Arc<Account>> {
        self.all_accounts()
            .into_iter()
            .find(|a| std::ptr::eq(&**a, account))
    }

    /// Installs each account's subject mappings from the config: the top-level
    /// `mappings` for `$G`, an account's own block for the others, none where the config
    /// has none (so a reload that removes them takes effect).
    fn apply_mappings(&self, config: &natrix_config::Options) {
        for acc in self.all_accounts() {
            // An account from a JWT has its mappings in its claims.
            if acc.claims().is_some() {
                continue;
            }
            let configured = if std::ptr::eq(&*acc, &*self.gacc) {
                Some(&config.mappings)
            } else {
                config
                    .account_mappings
                    .iter()
                    .rev()
                    .find(|(name, _)| name == acc.name())
                    .map(|(_, m)| m)
            };
            let built = configured.into_iter().flatten().filter_map(|m| {
                m.build()
                    .map_err(|e| tracing::error!("mapping for {:?} not applied: {e}", m.src))
                    .ok()
            });
            acc.set_mappings(natrix_transform::Mappings::new(built));
        }
    }

    /// This server's cluster name, for cluster-scoped mapping destinations; empty
    /// outside a cluster.
    pub(crate) fn cluster_name(&self) -> &str {
        self.cluster.get().map_or("", |c| c.name.as_str())
    }

    /// Creates the configured accounts that do not exist yet. Accounts dropped from the
    /// config stay until restart: their clients are disconnected by the reload's
    /// re-authentication, and nothing can bind to them any more.
    fn add_accounts(&self, names: &[String]) {
        let mut accounts = self.accounts.write();
        for n in names {
            if n != self.sys_account.name() && !accounts.iter().any(|a| a.name() == n) {
                accounts.push(Arc::new(Account::new(n)));
            }
        }
    }

    /// An account by name: `$G`, `$SYS` or a configured one.
    pub fn account(&self, name: &str) -> Option<Arc<Account>> {
        if name == "$G" {
            Some(self.gacc.clone())
        } else if name == self.sys_account.name() {
            Some(self.sys_account.clone())
        } else {
            self.accounts
                .read()
                .iter()
                .find(|a| a.name() == name)
                .cloned()
        }
    }

    /// Every account: the system account, `$G`, then the configured ones in order.
    pub fn all_accounts(&self) -> Vec<Arc<Account>> {
        let mut all = vec![self.sys_account.clone(), self.gacc.clone()];
        all.extend(self.accounts.read().iter().cloned());
        all
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

    /// Installs reloaded options and wakes every connection, so that each re-checks its
    /// credentials and permissions now rather than on its next read.
    pub fn set_options(&self, opts: RuntimeOptions) {
        self.add_accounts(&opts.config.account_names);
        self.apply_mappings(&opts.config);
        crate::imports::apply(self, &opts.config);
        {
            let mut g = self.opts.write();
            let next = g.1 + 1;
            *g = (Arc::new(opts), next);
        }
        *self.config_load_time.lock() = SystemTime::now();
        for r in self.clients.lock().values() {
            r.handle.reload.notify_one();
        }
    }

    /// When the running configuration was loaded (start-up or the last reload).
    pub fn config_load_time(&self) -> SystemTime {
        *self.config_load_time.lock()
    }

    /// Every open client connection.
    pub fn clients(&self) -> Vec<ClientView> {
        self.clients
            .lock()
            .values()
            .map(|r| ClientView::of(&r.handle, &r.meta))
            .collect()
    }

    /// Runs `f` over the remembered closed connections, oldest first.
    pub fn with_closed<T>(&self, f: impl FnOnce(&VecDeque<ClosedClient>) -> T) -> T {
        f(&self.closed.lock())
    }

    /// The address the client listener is bound to, once started.
    pub fn addr(&self) -> Option<SocketAddr> {
        *self.addr.lock()
    }

    /// The monitoring listener's address, once bound.
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http_addr.lock().map(|(a, _)| a)
    }

    /// Whether the monitoring listener speaks HTTPS.
    pub fn http_is_tls(&self) -> bool {
        self.http_addr.lock().is_some_and(|(_, tls)| tls)
    }

    pub fn set_http_addr(&self, addr: SocketAddr, tls: bool) {
        *self.http_addr.lock() = Some((addr, tls));
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

    /// Where `websocket {}` listens, once bound.
    pub fn websocket_addr(&self) -> Option<SocketAddr> {
        *self.websocket_addr.lock()
    }

    pub fn set_websocket_addr(&self, addr: SocketAddr) {
        *self.websocket_addr.lock() = Some(addr);
    }

    /// Where the MQTT listener (`mqtt {}`) accepts connections, once bound.
    pub fn mqtt_addr(&self) -> Option<SocketAddr> {
        *self.mqtt_addr.lock()
    }

    pub fn set_mqtt_addr(&self, addr: SocketAddr) {
        *self.mqtt_addr.lock() = Some(addr);
    }

    /// The MQTT listener's session registry, once it started.
    pub fn mqtt_sessions(&self) -> Option<Arc<dyn std::any::Any + Send + Sync>> {
        self.mqtt_sessions.get().cloned()
    }

    /// Set by the MQTT listener when it starts (once).
    pub fn set_mqtt_sessions(&self, sessions: Arc<dyn std::any::Any + Send + Sync>) {
        let _ = self.mqtt_sessions.set(sessions);
    }

    /// Accepts clients until shutdown or lame-duck mode.
    pub async fn accept_loop(self: &Arc<Self>, listener: TcpListener) {
        self.clone()
            .accept_connections(listener, "Client", |server, stream, peer| {
                server.handle_client(stream, peer)
            })
            .await;
    }

    /// Hands each connection accepted on `listener` to `serve` (in a task of its own)
    /// until shutdown or lame-duck mode; one loop for the client, WebSocket and MQTT
    /// listeners. An accept error (out of file descriptors and similar) is logged as
    /// "Temporary `kind` Accept Error" and backs off from 10 ms up to 1 s, as
    /// nats-server does.
    pub(crate) async fn accept_connections<F, Fut>(
        self: Arc<Self>,
        listener: TcpListener,
        kind: &str,
        serve: F,
    ) where
        F: Fn(Arc<Self>, TcpStream, SocketAddr) -> Fut,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let mut shutdown = std::pin::pin!(self.wait_shutdown());
        let mut backoff = Duration::from_millis(10);
        loop {
            tokio::select! {
                res = listener.accept() => match res {
                    Ok((stream, peer)) => {
                        backoff = Duration::from_millis(10);
                        tokio::spawn(serve(self.clone(), stream, peer));
                    }
                    Err(e) => {
                        tracing::error!("Temporary {kind} Accept Error ({e}), sleeping {}ms", backoff.as_millis());
                        tokio::time::sleep(backoff).await;
                        backoff = (backoff * 2).min(Duration::from_secs(1));
                    }
                },
                () = &mut shutdown => break,
            }
            if self.is_lame_duck() {
                break;
            }
        }
    }

    async fn handle_client(self: Arc<Self>, mut stream: TcpStream, peer: SocketAddr) {
        let _ = stream.set_nodelay(true);
        let (opts, _) = self.options();
        let cid = self.next_cid.fetch_add(1, Ordering::Relaxed);
        self.stats.total_connections.fetch_add(1, Ordering::Relaxed);
        let ip = peer.ip().to_string();
        let nonce = (opts.auth.needs_nonce() || self.trust().is_some()).then(new_nonce);
        let info = self.client_info_json(cid, Some(&ip), None, nonce.as_deref());
        let mut info_line = Vec::with_capacity(info.len() + 8);
        encode::info(&mut info_line, &info);
        // TLS: INFO goes out in the clear (unless handshake_first), then the client
        // starts the handshake; everything after it, CONNECT included, is encrypted.
        let mut tls_first = false;
        let session = match &opts.tls {
            Some(tls) => {
                tls_first = tls.starts_with_handshake(&stream).await;
                if !tls_first {
                    use tokio::io::AsyncWriteExt as _;
                    if stream.write_all(&info_line).await.is_err() {
                        return;
                    }
                }
                match crate::tls::accept(tls, &mut stream, opts.tls_timeout).await {
                    Ok(s) => Some(s),
                    Err(e) => {
                        tracing::error!(cid, %peer, "TLS handshake error: {e}");
                        return;
                    }
                }
            }
            None => None,
        };
        let peer_certs = session
            .as_ref()
            .map(crate::tls::peer_certs)
            .filter(|c| !c.is_empty())
            .map(Arc::new);
        let (rd, wr) = stream.into_split();
        let outbound = Arc::new(Outbound::with_tls(wr, opts.max_pending, session.clone()));
        let handle = Arc::new(ClientHandle::new(cid, outbound.clone()));
        let writer = tokio::spawn(outbound.clone().run_writer(opts.write_deadline));
        if session.is_none() || tls_first {
            outbound.push_proto(&info_line);
        }
        let admitted = self.admit(
            &handle,
            ClientMeta {
                addr: Some(peer),
                start: Some(handle.start),
                tls: session.as_ref().map(crate::tls::describe),
                peer_certs: peer_certs.clone(),
                ..ClientMeta::default()
            },
        );
        if admitted {
            tracing::debug!(cid, %peer, "Client connection created");
            let cert = peer_certs.and_then(|c| c.first().cloned()).map(Arc::new);
            let client = Client::new(self.clone(), handle, nonce, cert);
            match session {
                Some(s) => {
                    client
                        .run(crate::tls::TlsReader::new(rd, s, outbound.clone()))
                        .await;
                }
                None => client.run(rd).await,
            }
        }
        let _ = writer.await;
        tracing::debug!(cid, reason = ?outbound.close_reason(), "Client connection closed");
    }

    /// Registers a new client unless `max_connections` is reached, in which case it is
    /// told so and closed.
    fn admit(&self, handle: &Arc<ClientHandle>, meta: ClientMeta) -> bool {
        let (opts, _) = self.options();
        {
            let mut clients = self.clients.lock();
            let max = opts.max_connections;
            if max >= 0 && (max == 0 || (clients.len() as i64) < max) {
                clients.insert(
                    handle.cid,
                    Registered {
                        handle: handle.clone(),
                        meta,
                    },
                );
                return true;
            }
        }
        tracing::error!("maximum connections exceeded");
        let mut v = Vec::new();
        encode::err(&mut v, "maximum connections exceeded");
        handle.outbound.push_proto(&v);
        handle.outbound.close(CloseReason::MaxConnectionsExceeded);
        false
    }

    /// A WebSocket client whose upgrade was answered: its INFO (never asking for TLS: a
    /// `wss://` connection is encrypted already), then the client protocol over `reader`.
    pub(crate) async fn serve_websocket_client<R: tokio::io::AsyncRead + Unpin>(
        self: Arc<Self>,
        reader: R,
        outbound: Arc<Outbound>,
        peer: SocketAddr,
        session: Option<crate::tls::Session>,
        login: crate::websocket::login::WsLogin,
    ) {
        let (opts, _) = self.options();
        let cid = self.next_cid.fetch_add(1, Ordering::Relaxed);
        self.stats.total_connections.fetch_add(1, Ordering::Relaxed);
        let ip = peer.ip().to_string();
        let nonce = (opts.auth.needs_nonce() || self.trust().is_some()).then(new_nonce);
        let info = self.client_info_json(cid, Some(&ip), None, nonce.as_deref());
        let info = match serde_json::from_slice::<serde_json::Value>(&info) {
            Ok(mut v) => {
                v["tls_required"] = serde_json::Value::Bool(false);
                if let Some(auth) = &login.auth {
                    v["auth_required"] = auth.required().into();
                }
                if let Some(w) = self.websocket_addr() {
                    v["port"] = w.port().into();
                }
                if let Some(o) = v.as_object_mut() {
                    o.remove("tls_verify");
                }
                serde_json::to_vec(&v).unwrap_or(info)
            }
            Err(_) => info,
        };
        let mut info_line = Vec::with_capacity(info.len() + 8);
        encode::info(&mut info_line, &info);
        outbound.push_proto(&info_line);
        let handle = Arc::new(ClientHandle::new(cid, outbound.clone()));
        let meta = ClientMeta {
            addr: Some(peer),
            start: Some(handle.start),
            tls: session.as_ref().map(crate::tls::describe),
            websocket: true,
            ..ClientMeta::default()
        };
        if self.admit(&handle, meta) {
            tracing::debug!(cid, %peer, "Websocket client connection created");
            Client::new(self.clone(), handle, nonce, None)
                .with_ws_login(login)
                .run(reader)
                .await;
        }
    }

    /// An MQTT connection's core side: an ordinary client whose protocol bytes `reader`
    /// supplies (the MQTT session translates its packets into CONNECT, SUB, PUB, ...) and
    /// whose output goes to `outbound`, an internal sink the session turns back into MQTT
    /// packets. No INFO is sent: the session does not read one.
    pub(crate) async fn serve_mqtt_client<R: tokio::io::AsyncRead + Unpin>(
        self: Arc<Self>,
        reader: R,
        outbound: Arc<Outbound>,
        conn: MqttConn,
        on_cid: impl FnOnce(u64),
    ) {
        let cid = self.next_cid.fetch_add(1, Ordering::Relaxed);
        on_cid(cid);
        self.stats.total_connections.fetch_add(1, Ordering::Relaxed);
        let handle = Arc::new(ClientHandle::new(cid, outbound));
        let cert = conn
            .peer_certs
            .as_ref()
            .and_then(|c| c.first().cloned())
            .map(Arc::new);
        let (peer, websocket) = (conn.peer, conn.websocket);
        let meta = ClientMeta {
            addr: Some(peer),
            start: Some(handle.start),
            mqtt_client: Some(conn.client_id),
            tls: conn.tls,
            peer_certs: conn.peer_certs,
            ..ClientMeta::default()
        };
        if self.admit(&handle, meta) {
            tracing::debug!(cid, %peer, "MQTT client connection created");
            Client::new(self.clone(), handle, None, cert)
                .for_mqtt(websocket)
                .run(reader)
                .await;
        }
    }

    /// The account a connected client is bound to (after its CONNECT), by connection id.
    pub(crate) fn client_account(&self, cid: u64) -> Option<String> {
        self.clients.lock().get(&cid)?.meta.account.clone()
    }

    /// Unregisters a closed client and remembers it for `/connz?state=closed`.
    pub(crate) fn remove_client(
        &self,
        handle: &ClientHandle,
        subs: Vec<Arc<client::Subscription>>,
    ) {
        let Some(r) = self.clients.lock().remove(&handle.cid) else {
            return;
        };
        let closed = ClosedClient {
            view: ClientView::of(handle, &r.meta),
            stop: SystemTime::now(),
            reason: handle
                .outbound
                .close_reason()
                .unwrap_or(CloseReason::ClientClosed),
            subs: subs.iter().map(|s| SubView::of(s)).collect(),
        };
        if closed.view.meta.account.is_some() {
            events::client_disconnect(self, &closed.view, closed.stop, closed.reason);
        }
        let keep = self.options().0.max_closed_clients;
        let mut ring = self.closed.lock();
        while ring.len() >= keep.max(1) {
            ring.pop_front();
        }
        if keep > 0 {
            ring.push_back(closed);
        }
    }

    /// Records what a client's CONNECT said, for monitoring, and announces the client
    /// on `$SYS.ACCOUNT.<acc>.CONNECT`.
    /// Changes what monitoring knows of a client, without announcing anything.
    pub(crate) fn update_meta(&self, cid: u64, update: impl FnOnce(&mut ClientMeta)) {
        if let Some(r) = self.clients.lock().get_mut(&cid) {
            update(&mut r.meta);
        }
    }

    pub(crate) fn record_connect(&self, cid: u64, update: impl FnOnce(&mut ClientMeta)) {
        let view = {
            let mut clients = self.clients.lock();
            let Some(r) = clients.get_mut(&cid) else {
                return;
            };
            update(&mut r.meta);
            ClientView::of(&r.handle, &r.meta)
        };
        events::client_connect(self, &view);
    }

    /// The next `server.seq` of a `$SYS` message.
    pub(crate) fn next_sys_seq(&self) -> u64 {
        self.sys_seq.fetch_add(1, Ordering::Relaxed) + 1
    }

    /// A unique event id (nats-server's 22-character NUID).
    pub(crate) fn next_event_id(&self) -> String {
        nuid()
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
        connect_info: Option<&str>,
        nonce: Option<&str>,
    ) -> Vec<u8> {
        let (opts, _) = self.options();
        let port = self.addr().map_or(0, |a| a.port());
        let connect_urls = self
            .cluster()
            .filter(|_| !opts.config.cluster.no_advertise)
            .map(|c| c.client_urls(self.client_url()));
        let js = self.jetstream();
        let info = Info {
            server_id: &self.id,
            server_name: &self.name,
            version: NATS_COMPAT_VERSION,
            proto: PROTO,
            git_commit: "",
            go: GO_FIELD,
            host: &opts.host,
            port,
            headers: opts.headers,
            auth_required: opts.auth.required() || self.trust().is_some(),
            tls_required: opts.tls.is_some(),
            tls_verify: opts.tls.as_ref().is_some_and(|t| t.verify),
            max_payload: opts.max_payload,
            jetstream: js.is_some(),
            client_id: cid,
            client_ip: ip.unwrap_or(""),
            nonce,
            domain: js.as_ref().and_then(|j| j.domain()),
            connect_urls: connect_urls.as_deref(),
            ldm: self.is_lame_duck(),
            connect_info: connect_info.is_some(),
            remote_account: connect_info,
            natrix_version: VERSION,
            api_lvl: js.as_ref().map_or(0, |j| j.api_level()),
        };
        serde_json::to_vec(&info).unwrap_or_default()
    }

    /// Registers `hook` to run (bounded to [`HAND_OVER_LIMIT`]) when the server is asked
    /// to stop by a signal or enters lame-duck mode, while its routes and clients are
    /// still up: clustered JetStream hands its Raft leaderships over then.
    pub fn on_before_shutdown(&self, hook: ShutdownHook) {
        self.before_shutdown.write().push(hook);
    }

    /// Runs the hooks of [`Server::on_before_shutdown`].
    pub async fn hand_over(&self) {
        let hooks: Vec<ShutdownHook> = self.before_shutdown.read().clone();
        for hook in hooks {
            if tokio::time::timeout(HAND_OVER_LIMIT, hook()).await.is_err() {
                tracing::warn!("hand-over before shutdown took longer than {HAND_OVER_LIMIT:?}");
            }
        }
    }

    /// [`Server::hand_over`], then [`Server::shutdown`].
    pub async fn shutdown_gracefully(&self) {
        self.hand_over().await;
        self.shutdown();
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
        if self.begin_lame_duck() {
            self.lame_duck_begun().await;
        }
    }

    /// Marks the server lame duck (new clients refused, `/healthz` unavailable) at once
    /// and returns whether this call did it; [`Self::lame_duck_begun`] does the rest. The
    /// signal handler marks it before it looks at the next signal, so a SIGTERM that
    /// arrives with the lame-duck signal (the kubelet sends it as soon as the preStop
    /// hook has sent that one) finds the server in lame duck and leaves it be.
    pub fn begin_lame_duck(&self) -> bool {
        !self.lame_duck.swap(true, Ordering::AcqRel)
    }

    /// Lame-duck mode after [`Self::begin_lame_duck`].
    pub async fn lame_duck_begun(self: &Arc<Self>) {
        let (opts, _) = self.options();
        tracing::info!("Entering lame duck mode, stop accepting new clients");
        let _ = self.shutdown_tx.send(false);
        self.hand_over().await;
        let clients: Vec<Arc<ClientHandle>> = self
            .clients
            .lock()
            .values()
            .map(|r| r.handle.clone())
            .collect();
        for c in &clients {
            let json = self.client_info_json(c.cid, None, None, None);
            let mut v = Vec::with_capacity(json.len() + 8);
            encode::info(&mut v, &json);
            c.outbound.push_proto(&v);
        }
        let grace = opts.lame_duck_grace_period.min(opts.lame_duck_duration);
        tokio::time::sleep(grace).await;
        let spread = opts.lame_duck_duration.saturating_sub(grace);
        let n = clients.len().max(1) as u32;
        let step = spread / n;
        let last = clients.len().saturating_sub(1);
        for (i, c) in clients.into_iter().enumerate() {
            c.outbound.close(CloseReason::ServerShutdown);
            // Nothing is left to spread after the last client (nats-server stops there
            // too): waiting would only delay the shutdown, by the whole spread for one
            // client.
            if i < last && !step.is_zero() {
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

    /// This server's client URL as `host:port`, as advertised to clients of the cluster.
    pub fn client_url(&self) -> Option<String> {
        let (opts, _) = self.options();
        if let Some(a) = opts.client_advertise.as_ref() {
            return Some(a.clone());
        }
        self.addr().map(reachable)
    }

    /// Tells clients that speak protocol 1 about a change of cluster members: an INFO
    /// with the new `connect_urls`, as nats-server sends.
    pub(crate) fn announce_topology(&self) {
        let clients: Vec<Arc<ClientHandle>> = self
            .clients
            .lock()
            .values()
            .filter(|r| r.meta.protocol >= 1)
            .map(|r| r.handle.clone())
            .collect();
        for c in clients {
            let json = self.client_info_json(c.cid, None, None, None);
            let mut v = Vec::with_capacity(json.len() + 8);
            encode::info(&mut v, &json);
            c.outbound.push_proto(&v);
        }
    }

    /// The cluster side, once started.
    pub fn cluster(&self) -> Option<&Arc<crate::cluster::Cluster>> {
        self.cluster.get()
    }

    /// The gateway side, once started.
    pub fn gateways(&self) -> Option<&Arc<crate::cluster::gateway::Gateways>> {
        self.gateways.get()
    }

    /// Binds the cluster listener (when `cluster {}` has a port) and the gateway listener
    /// (when `gateway {}` has one), then starts routing.
    pub async fn start_cluster(self: &Arc<Self>) -> std::io::Result<()> {
        let gateways = crate::cluster::gateway::Gateways::bind(self)
            .await
            .map_err(|e| match e {
                crate::cluster::gateway::GatewayError::Io(e) => e,
                other => std::io::Error::other(other.to_string()),
            })?;
        if let Some((gws, listener)) = gateways
            && self.gateways.set(gws.clone()).is_ok()
        {
            gws.start(self, listener);
        }
        if let Some((cluster, listener)) = crate::cluster::Cluster::bind(self).await?
            && self.cluster.set(cluster.clone()).is_ok()
        {
            cluster.start(self, listener);
        }
        Ok(())
    }

    /// The leaf node side, once started.
    pub fn leafnodes(&self) -> Option<&Arc<crate::leafnode::LeafNodes>> {
        self.leafnodes.get()
    }

    /// Binds the leaf node listener and dials the remotes (when `leafnodes {}` has a
    /// port or remotes).
    pub async fn start_leafnodes(self: &Arc<Self>) -> std::io::Result<()> {
        if let Some((leafnodes, listener)) = crate::leafnode::LeafNodes::bind(self).await?
            && self.leafnodes.set(leafnodes.clone()).is_ok()
        {
            leafnodes.start(self, listener);
        }
        Ok(())
    }

    /// A client's subscription appeared (`added`) or went away: routes, remote clusters
    /// and leaf nodes hear of the first and last one for a subject.
    pub(crate) fn local_interest(
        &self,
        account: &str,
        subject: &bytes::Bytes,
        queue: Option<&bytes::Bytes>,
        added: bool,
    ) {
        if let Some(cluster) = self.cluster() {
            if added {
                cluster.sub_added(account, subject, queue);
            } else {
                cluster.sub_removed(account, subject, queue);
            }
        }
        if let Some(leafnodes) = self.leafnodes() {
            if added {
                leafnodes.sub_added(account, subject, queue);
            } else {
                leafnodes.sub_removed(account, subject, queue);
            }
        }
        self.remote_interest(account, subject, queue, added, false);
    }

    /// Interest that is not a local client's changed (`from_route`: a route peer's;
    /// otherwise a leaf's): remote clusters and leaf nodes hear of it.
    pub(crate) fn remote_interest(
        &self,
        account: &str,
        subject: &bytes::Bytes,
        queue: Option<&bytes::Bytes>,
        added: bool,
        from_route: bool,
    ) {
        if let Some(gws) = self.gateways() {
            if added {
                gws.sub_added(account, subject, queue);
            } else {
                gws.sub_removed(account, subject, queue);
            }
        }
        if from_route && let Some(leafnodes) = self.leafnodes() {
            if added {
                leafnodes.route_sub_added(account, subject, queue);
            } else {
                leafnodes.route_sub_removed(account, subject, queue);
            }
        }
    }

    /// Every account's name: `$G`, the configured ones, and the system account.
    pub fn account_names(&self) -> Vec<String> {
        let mut names = vec![self.gacc.name().to_owned()];
        names.extend(self.accounts.read().iter().map(|a| a.name().to_owned()));
        if !names.iter().any(|n| n == self.sys_account.name()) {
            names.push(self.sys_account.name().to_owned());
        }
        names
    }

    /// Hands monitoring and INFO their view of JetStream (`None`: JetStream off).
    pub fn set_jetstream(&self, js: Option<Arc<dyn crate::monitor::jsz::JetStreamMonitor>>) {
        *self.jetstream.write() = js;
    }

    /// JetStream's monitoring view, when JetStream runs.
    pub fn jetstream(&self) -> Option<Arc<dyn crate::monitor::jsz::JetStreamMonitor>> {
        self.jetstream.read().clone()
    }

    /// A connection id for one of the server's own internal clients.
    pub(crate) fn next_internal_cid(&self) -> u64 {
        self.next_cid.fetch_add(1, Ordering::Relaxed)
    }

    /// Publishes a message from the server itself into `account` (no reply subject, no
    /// headers): system responses and events, to local subscribers and routes.
    pub(crate) fn publish_internal(&self, account: &Account, subject: &[u8], payload: &[u8]) {
        self.publish_from_server(account, subject, None, None, 0, payload);
    }

    /// Publishes a message from the server itself into `account`: `msg` is the header
    /// block (its first `hdr` bytes, 0 for none) followed by the payload. With
    /// `deliver_to`, subscribers of that subject get it, under `subject`.
    pub(crate) fn publish_from_server(
        &self,
        account: &Account,
        subject: &[u8],
        deliver_to: Option<&[u8]>,
        reply: Option<&[u8]>,
        hdr: usize,
        msg: &[u8],
    ) {
        let m = fanout::Inbound {
            subject,
            deliver_to,
            reply,
            route_reply: None,
            hdr,
            msg,
            queues: None,
            to_routes: true,
        };
        let mut to_flush = Vec::new();
        let mut delivered = fanout::deliver(self, account, &m, &mut to_flush);
        if let Some(gws) = self.gateways() {
            // Remote clusters route by the subject they are sent, as routes do: a
            // JetStream delivery crosses under its deliver subject, the subject to show
            // in its reply.
            let to = deliver_to.unwrap_or(subject);
            let local = account.sublist.match_subject(to);
            let with_subject = deliver_to
                .and(reply)
                .and_then(|r| fanout::js_reply_with_subject(r, subject));
            let reply = with_subject.as_deref().or(reply);
            delivered +=
                u64::from(gws.send(account, to, reply, hdr, msg, &local, None, &mut to_flush));
        }
        for o in to_flush {
            o.flush_soon();
        }
        account
            .stats
            .out_msgs
            .fetch_add(delivered, Ordering::Relaxed);
        account
            .stats
            .out_bytes
            .fetch_add(delivered * msg.len() as u64, Ordering::Relaxed);
    }

    /// One client as monitoring sees it.
    pub fn client_view(&self, cid: u64) -> Option<ClientView> {
        self.clients
            .lock()
            .get(&cid)
            .map(|r| ClientView::of(&r.handle, &r.meta))
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
        system::start(self, None);
        let server = self.clone();
        Ok(tokio::spawn(async move {
            tracing::info!("Server is ready");
            server.accept_loop(listener).await;
        }))
    }
}
