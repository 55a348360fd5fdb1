//! Leaf nodes: connections that extend one account of this server into another server
//! (or cluster) and back, with nats-server's leaf node protocol.
//!
//! A server is a **hub** for the leaf connections it accepts on its `leafnodes { listen }`
//! port and a **spoke** on the connections it dials for its `leafnodes { remotes [...] }`.
//! Each connection is bound to one account on each side (the hub's by the spoke's
//! credentials, the spoke's by the remote's `account`). Over it each side announces
//! interest (`LS+`/`LS-`, queue groups with their member counts) and sends messages for
//! that interest (`LMSG`/`HMSG`):
//!
//! - a hub announces all interest of the account except the leaf's own (clients, routed
//!   peers, other leafs); a spoke announces only its local interest (clients and the
//!   leafs it accepted itself), never what it learnt from a hub or a route;
//! - a leaf's interest becomes subscriptions in the bound account, so clients' publishes
//!   reach it like any other subscriber; a hub also announces it to its routes;
//! - a message from a leaf goes to local subscribers, to routes (from a spoke connected to
//!   us only) and to other leafs (never back, never from one hub to another);
//! - queue groups pick a member reachable without crossing a leaf connection first.
//!
//! Loops are caught with one `$LDS.<nuid>` subject per account in every announcement: a
//! server that is told about its own subject closes the connection with nats-server's
//! `Loop detected` error, and the spoke waits 30 s before dialling again.
//!
//! Wire details, error texts and their sources: docs/design/inter-server-protocols.md §3.

mod auth;
mod conn;
pub mod proto;

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use tokio::net::TcpListener;

use crate::account::Account;
use crate::auth::{Permissions, SubjectPermission};
use crate::protocol::encode::Delivery;
use crate::server::Server;
use crate::server::client::{ClientHandle, ConnKind, Subscription};
use crate::server::outbound::Push;

pub use auth::{AuthError, CredsError};

/// Runs a leaf connection accepted on the WebSocket listener (path `/leafnode`) over
/// its frames (the listener's writer task drains `outbound`).
pub async fn accept_websocket<R: tokio::io::AsyncRead + Unpin>(
    server: Arc<Server>,
    leafnodes: Arc<LeafNodes>,
    rd: R,
    outbound: Arc<crate::server::outbound::Outbound>,
    peer: SocketAddr,
) {
    conn::accept_websocket(server, leafnodes, rd, outbound, peer).await;
}
pub use conn::LeafError;

/// An interest key on a leaf connection: subject and queue group.
type Key = (Bytes, Option<Bytes>);

/// Where a subscription in an account's sublist comes from, for deciding which leaf
/// connections hear about it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Origin {
    /// A client (or the server's own internal subscriptions).
    Client,
    /// A route peer.
    Route,
    /// A leaf connection; `spoke`: this server dialled it (the other side is our hub).
    Leaf { cid: u64, spoke: bool },
}

/// One registered leaf connection.
pub struct Leaf {
    pub handle: Arc<ClientHandle>,
    /// The local account the connection is bound to.
    pub account: Arc<Account>,
    /// True when this server dialled the connection (it is the spoke), as `/leafz`
    /// `is_spoke` reports it.
    pub is_spoke: bool,
    pub remote_id: String,
    /// The other server's name.
    pub name: String,
    pub peer: SocketAddr,
    pub start: SystemTime,
    /// Messages and bytes received (sent ones are counted on `handle`).
    pub in_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
    /// The other side's interest, as subscriptions in `account`'s sublist.
    subs: Mutex<FxHashMap<Key, Arc<Subscription>>>,
    /// What this side announced to the other: key → local count (queue weight).
    smap: Mutex<FxHashMap<Key, u32>>,
    /// What may cross the connection.
    pub(crate) filters: Filters,
}

/// What may cross a leaf connection, from the other side's point of view.
///
/// On the hub these are the bound user's permissions (plus the spoke's `deny_pub`), and a
/// violation closes the connection with nats-server's `Permissions Violation` error. On
/// the spoke they are the remote's `deny_imports` and `deny_exports`, applied silently.
#[derive(Debug, Default, Clone)]
pub(crate) struct Filters {
    /// What the other side may send us (`LMSG`): the bound user's `publish`, or the
    /// spoke's `deny_imports`. Our announcements are limited to it too.
    pub send: Option<SubjectPermission>,
    /// What the other side may subscribe to (`LS+`) and be sent: the bound user's
    /// `subscribe` with the spoke's `deny_pub`, or the spoke's `deny_exports`.
    pub receive: Option<SubjectPermission>,
    /// Whether a violation closes the connection (hub) or is dropped (spoke).
    pub strict: bool,
    /// JetStream subjects that never cross in either direction, dropped silently.
    pub js: Option<SubjectPermission>,
    /// This server's own domain-prefixed API (`$JS.<domain>.API.>`): requests for it
    /// must not leave through the connection (nats-server's guard against a hub and a
    /// spoke answering for the same domain).
    pub js_out: Option<SubjectPermission>,
}

/// What no leaf connection carries in any account (nats-server's `denyAllClientJs`):
/// the JetStream API and the KV and object store subjects of one domain are answered by
/// that domain's servers only; the other side reaches them by domain, `$JS.<domain>.API`.
const DENY_CLIENT_JS: [&str; 3] = ["$JS.API.>", "$KV.>", "$OBJ.>"];
/// What no leaf connection carries in the system account (`denyAllJs`): also the
/// clustered JetStream traffic, so a meta group never reaches across a leaf connection.
const DENY_SYSTEM_JS: [&str; 5] = ["$JSC.>", "$NRG.>", "$JS.API.>", "$KV.>", "$OBJ.>"];

impl Filters {
    /// The hub's filters for a spoke bound to a user with `permissions` that asked, in
    /// CONNECT `deny_pub`, not to be sent `deny_pub`.
    pub(crate) fn hub(permissions: Option<&Permissions>, deny_pub: &[String]) -> Self {
        let mut receive = permissions.and_then(|p| p.subscribe.clone());
        if !deny_pub.is_empty() {
            receive
                .get_or_insert_with(SubjectPermission::default)
                .deny
                .extend(deny_pub.iter().cloned());
        }
        Self {
            send: permissions.and_then(|p| p.publish.clone()),
            receive,
            strict: true,
            ..Self::default()
        }
    }

    /// A spoke's filters from its remote's `deny_imports` and `deny_exports`.
    pub(crate) fn spoke(deny_imports: &[String], deny_exports: &[String]) -> Self {
        let deny = |d: &[String]| {
            (!d.is_empty()).then(|| SubjectPermission {
                allow: None,
                deny: d.to_vec(),
            })
        };
        Self {
            send: deny(deny_imports),
            receive: deny(deny_exports),
            strict: false,
            ..Self::default()
        }
    }

    /// Adds JetStream's separation of domains for a connection bound to `account` (the
    /// system account when `system`), on a server whose JetStream domain is `domain`.
    /// Natrix never extends a JetStream domain over a leaf connection (nats-server's
    /// shared-system-account mode), so both sides keep theirs apart as nats-server does
    /// when their domains differ.
    pub(crate) fn with_jetstream(mut self, system: bool, domain: Option<&str>) -> Self {
        let list: &[&str] = if system {
            &DENY_SYSTEM_JS
        } else {
            &DENY_CLIENT_JS
        };
        self.js = Some(SubjectPermission {
            allow: None,
            deny: list.iter().map(|s| (*s).to_owned()).collect(),
        });
        self.js_out = domain.map(|d| SubjectPermission {
            allow: None,
            deny: vec![format!("$JS.{d}.API.>")],
        });
        self
    }

    /// Whether JetStream's separation keeps `subject` from crossing towards us (`out`
    /// false) or towards the other side (`out` true). `sub` tells a subscription
    /// (possibly a wildcard) from a message subject.
    pub(crate) fn js_blocks(&self, subject: &[u8], out: bool, sub: bool) -> bool {
        let blocks = |p: &SubjectPermission| {
            if sub {
                !p.allows_subscribe(subject, None)
            } else {
                !p.allows_publish(subject)
            }
        };
        self.js.as_ref().is_some_and(blocks) || (out && self.js_out.as_ref().is_some_and(blocks))
    }

    /// Whether the other side may send us a message on `subject`.
    pub(crate) fn may_send(&self, subject: &[u8]) -> bool {
        self.send.as_ref().is_none_or(|p| p.allows_publish(subject))
    }

    /// Whether the other side may be sent a message on `subject`.
    pub(crate) fn may_receive(&self, subject: &[u8]) -> bool {
        self.receive
            .as_ref()
            .is_none_or(|p| p.allows_publish(subject))
            && !self.js_blocks(subject, true, false)
    }
}

impl Leaf {
    pub fn num_subs(&self) -> usize {
        self.subs.lock().len()
    }

    /// The subjects the other side is interested in, for `/leafz?subs=1`.
    pub fn subjects(&self) -> Vec<String> {
        let mut v: Vec<String> = self
            .subs
            .lock()
            .keys()
            .map(|(s, q)| match q {
                Some(q) => format!(
                    "{} {}",
                    String::from_utf8_lossy(s),
                    String::from_utf8_lossy(q)
                ),
                None => String::from_utf8_lossy(s).into_owned(),
            })
            .collect();
        v.sort();
        v
    }

    /// Whether interest in `subject` is announced to the other side: only subjects it may
    /// publish to (it would be refused sending anything else), and always `$LDS.`.
    fn may_hear(&self, subject: &[u8]) -> bool {
        subject.starts_with(b"$LDS.")
            || (self
                .filters
                .send
                .as_ref()
                .is_none_or(|p| p.allows_subscribe(subject, None))
                && !self.filters.js_blocks(subject, false, true))
    }

    fn origin(&self) -> Origin {
        Origin::Leaf {
            cid: self.handle.cid,
            spoke: self.is_spoke,
        }
    }

    /// Whether interest of `origin` is announced over this connection.
    fn announces(&self, origin: Origin) -> bool {
        match origin {
            Origin::Leaf { cid, .. } if cid == self.handle.cid => false,
            // A hub tells its spokes about everything in the account.
            _ if !self.is_spoke => true,
            // A spoke tells its hub about local interest only.
            Origin::Client | Origin::Leaf { spoke: false, .. } => true,
            Origin::Route | Origin::Leaf { spoke: true, .. } => false,
        }
    }

    /// Whether a message that arrived from `from` may be sent over this connection.
    fn takes_from(&self, from: Origin) -> bool {
        match from {
            Origin::Leaf { cid, .. } if cid == self.handle.cid => false,
            // Nothing goes from one hub to another through us.
            Origin::Leaf { spoke: true, .. } => !self.is_spoke,
            _ => true,
        }
    }

    /// Adjusts the announced count of `key` by one and sends what changed.
    fn update_interest(&self, subject: &Bytes, queue: Option<&Bytes>, added: bool) {
        if !self.may_hear(subject) {
            return;
        }
        let mut line = Vec::new();
        {
            let mut smap = self.smap.lock();
            let key = (subject.clone(), queue.cloned());
            let n = smap.entry(key.clone()).or_insert(0);
            if added {
                *n += 1;
            } else if *n == 0 {
                smap.remove(&key);
                return;
            } else {
                *n -= 1;
            }
            let n = *n;
            match (queue, n) {
                (_, 0) => {
                    smap.remove(&key);
                    proto::unsub_line(&mut line, subject, queue.map(|q| &q[..]));
                }
                (Some(q), n) => proto::sub_line(&mut line, subject, Some((q, n))),
                (None, 1) if added => proto::sub_line(&mut line, subject, None),
                (None, _) => {}
            }
        }
        if !line.is_empty() {
            self.handle.outbound.push_proto(&line);
        }
    }
}

/// The leaf node side of a server.
pub struct LeafNodes {
    /// The leaf node listener's address, when this server accepts leaf connections.
    pub addr: Option<SocketAddr>,
    leafs: RwLock<FxHashMap<u64, Arc<Leaf>>>,
    /// Each account's loop detection subject (`$LDS.<nuid>`).
    lds: Mutex<FxHashMap<String, String>>,
    /// Registered leafs with a `receive` filter: while none, deliveries skip the check.
    filtered: std::sync::atomic::AtomicUsize,
    /// TLS for accepted connections (`leafnodes { tls {} }`), built at start-up.
    tls: Option<crate::tls::ServerTls>,
    /// How long a spoke has for the TLS handshake.
    tls_timeout: Duration,
}

/// Refuses settings this implementation cannot honour; running open where the config
/// asked for protection would be worse than not starting.
fn check_supported(opts: &natrix_config::Options) -> std::io::Result<()> {
    let l = &opts.leafnode;
    let unsupported = |what: &str| {
        Err(std::io::Error::new(
            std::io::ErrorKind::Unsupported,
            format!("leafnodes: {what} is not supported yet (docs/clustering.md)"),
        ))
    };
    for r in &l.remotes {
        if !r.proxy.url.is_empty() {
            return unsupported("a remote proxy");
        }
    }
    Ok(())
}

impl LeafNodes {
    /// Binds the leaf node listener from `leafnodes { listen }`; `None` when neither a
    /// listener nor remotes are configured.
    pub async fn bind(
        server: &Server,
    ) -> std::io::Result<Option<(Arc<Self>, Option<TcpListener>)>> {
        let (opts, _) = server.options();
        let l = &opts.config.leafnode;
        if l.port == 0 && l.remotes.is_empty() {
            return Ok(None);
        }
        check_supported(&opts.config)?;
        let tls = l
            .tls
            .as_ref()
            .map(crate::tls::server_tls)
            .transpose()
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e.to_string()))?;
        let tls_timeout = l
            .tls
            .as_ref()
            .and_then(|t| t.timeout)
            .filter(|t| !t.is_zero())
            .unwrap_or(Duration::from_secs(2));
        let listener = if l.port == 0 {
            None
        } else {
            let port = u16::try_from(l.port.max(0)).map_err(|_| {
                std::io::Error::new(
                    std::io::ErrorKind::InvalidInput,
                    "leafnode port out of range",
                )
            })?;
            let host = if l.host.is_empty() {
                "0.0.0.0"
            } else {
                &l.host
            };
            let listener = TcpListener::bind((host, port)).await?;
            tracing::info!(
                "Listening for leafnode connections on {}",
                listener.local_addr()?
            );
            Some(listener)
        };
        let addr = listener.as_ref().map(TcpListener::local_addr).transpose()?;
        Ok(Some((
            Arc::new(Self {
                addr,
                leafs: RwLock::new(FxHashMap::default()),
                lds: Mutex::new(FxHashMap::default()),
                filtered: std::sync::atomic::AtomicUsize::new(0),
                tls,
                tls_timeout,
            }),
            listener,
        )))
    }

    /// Accepts leaf connections and dials the configured remotes, until shutdown.
    pub fn start(self: &Arc<Self>, server: &Arc<Server>, listener: Option<TcpListener>) {
        if let Some(listener) = listener {
            let leafnodes = self.clone();
            let srv = server.clone();
            tokio::spawn(async move {
                let mut shutdown = std::pin::pin!(srv.wait_shutdown());
                loop {
                    tokio::select! {
                        res = listener.accept() => match res {
                            Ok((stream, peer)) => {
                                let _ = stream.set_nodelay(true);
                                tokio::spawn(conn::run(srv.clone(), leafnodes.clone(), stream, peer, None));
                            }
                            Err(e) => {
                                tracing::error!("Error accepting leafnode connection: {e}");
                                tokio::time::sleep(Duration::from_millis(100)).await;
                            }
                        },
                        () = &mut shutdown => return,
                    }
                }
            });
        }
        let (opts, _) = server.options();
        for (i, remote) in opts.config.leafnode.remotes.iter().enumerate() {
            if remote.disabled {
                continue;
            }
            tokio::spawn(conn::solicit(server.clone(), self.clone(), i));
        }
    }

    /// `host:port` spokes dial, for the hub INFO `leafnode_urls` (never empty).
    pub(crate) fn advertise_url(&self, server: &Server) -> String {
        let (opts, _) = server.options();
        let l = &opts.config.leafnode;
        if !l.advertise.is_empty() {
            return l.advertise.clone();
        }
        self.addr
            .map_or_else(|| "127.0.0.1:0".to_owned(), crate::server::reachable)
    }

    /// The loop detection subject of `account`.
    pub(crate) fn lds_subject(&self, account: &str) -> String {
        self.lds
            .lock()
            .entry(account.to_owned())
            .or_insert_with(|| format!("$LDS.{}", crate::server::nuid()))
            .clone()
    }

    pub fn num_leafs(&self) -> usize {
        self.leafs.read().len()
    }

    /// Leaf connections bound to `account`.
    pub fn num_leafs_for(&self, account: &str) -> usize {
        self.leafs
            .read()
            .values()
            .filter(|l| l.account.name() == account)
            .count()
    }

    /// The registered leaf connections, oldest first.
    pub fn leafs(&self) -> Vec<Arc<Leaf>> {
        let mut v: Vec<Arc<Leaf>> = self.leafs.read().values().cloned().collect();
        v.sort_by_key(|l| l.handle.cid);
        v
    }

    fn leaf(&self, cid: u64) -> Option<Arc<Leaf>> {
        self.leafs.read().get(&cid).cloned()
    }

    /// Where `sub` comes from; `None` for a leaf connection that is going away.
    fn origin_of(&self, sub: &Subscription) -> Option<Origin> {
        match sub.client.kind {
            ConnKind::Leaf => self.leaf(sub.client.cid).map(|l| l.origin()),
            ConnKind::Route => Some(Origin::Route),
            ConnKind::Client => Some(Origin::Client),
            ConnKind::Gateway => None,
        }
    }

    /// Registers a leaf connection (on the hub, replacing one from the same server for
    /// the same account, which is returned for closing) and sends it the account's interest in
    /// one batch, loop detection subject first.
    fn register(&self, leaf: &Arc<Leaf>) -> Option<Arc<Leaf>> {
        let replaced = {
            let mut leafs = self.leafs.write();
            let old = leafs
                .values()
                .find(|l| {
                    // Hub side only: a spoke's remotes are independent connections.
                    !leaf.is_spoke
                        && !l.is_spoke
                        && !leaf.remote_id.is_empty()
                        && l.remote_id == leaf.remote_id
                        && Arc::ptr_eq(&l.account, &leaf.account)
                })
                .cloned();
            if let Some(old) = &old {
                leafs.remove(&old.handle.cid);
                if old.filters.receive.is_some() {
                    self.filtered.fetch_sub(1, Ordering::Relaxed);
                }
            }
            leafs.insert(leaf.handle.cid, leaf.clone());
            if leaf.filters.receive.is_some() {
                self.filtered.fetch_add(1, Ordering::Relaxed);
            }
            old
        };
        let mut batch = Vec::new();
        proto::sub_line(
            &mut batch,
            self.lds_subject(leaf.account.name()).as_bytes(),
            None,
        );
        {
            let mut smap = leaf.smap.lock();
            for sub in leaf.account.sublist.all() {
                if sub.is_closed() {
                    continue;
                }
                if self.origin_of(&sub).is_some_and(|o| leaf.announces(o))
                    && leaf.may_hear(&sub.subject)
                {
                    *smap
                        .entry((sub.subject.clone(), sub.queue.clone()))
                        .or_insert(0) += 1;
                }
            }
            for subject in leaf.account.links().service_subjects() {
                if leaf.may_hear(subject.as_bytes()) {
                    *smap
                        .entry((Bytes::copy_from_slice(subject.as_bytes()), None))
                        .or_insert(0) += 1;
                }
            }
            for ((subject, queue), n) in smap.iter() {
                proto::sub_line(&mut batch, subject, queue.as_deref().map(|q| (q, *n)));
            }
        }
        leaf.handle.outbound.push_proto(&batch);
        replaced
    }

    fn unregister(&self, leaf: &Arc<Leaf>) -> bool {
        let mut leafs = self.leafs.write();
        match leafs.get(&leaf.handle.cid) {
            Some(l) if Arc::ptr_eq(l, leaf) => {
                leafs.remove(&leaf.handle.cid);
                if leaf.filters.receive.is_some() {
                    self.filtered.fetch_sub(1, Ordering::Relaxed);
                }
                true
            }
            _ => false,
        }
    }

    fn interest_changed(
        &self,
        account: &str,
        subject: &Bytes,
        queue: Option<&Bytes>,
        origin: Origin,
        added: bool,
    ) {
        let targets: Vec<Arc<Leaf>> = self
            .leafs
            .read()
            .values()
            .filter(|l| l.account.name() == account && l.announces(origin))
            .cloned()
            .collect();
        for l in targets {
            l.update_interest(subject, queue, added);
        }
    }

    /// Hook for the client publish path: whether the leaf connection `cid` may be sent a
    /// message on `subject` (its bound user's permissions, its remote's `deny_exports`).
    /// Free while no leaf has such a filter.
    pub fn may_deliver(&self, cid: u64, subject: &[u8]) -> bool {
        self.filtered.load(Ordering::Relaxed) == 0
            || self
                .leaf(cid)
                .is_none_or(|l| l.filters.may_receive(subject))
    }

    /// Hook: a client of `account` subscribed.
    pub fn sub_added(&self, account: &str, subject: &Bytes, queue: Option<&Bytes>) {
        self.interest_changed(account, subject, queue, Origin::Client, true);
    }

    /// Hook: a client's subscription went away.
    pub fn sub_removed(&self, account: &str, subject: &Bytes, queue: Option<&Bytes>) {
        self.interest_changed(account, subject, queue, Origin::Client, false);
    }

    /// Hook: a route peer announced interest (`RS+`) in `account`.
    pub fn route_sub_added(&self, account: &str, subject: &Bytes, queue: Option<&Bytes>) {
        self.interest_changed(account, subject, queue, Origin::Route, true);
    }

    /// Hook: a route peer withdrew interest (`RS-`, or the route closed).
    pub fn route_sub_removed(&self, account: &str, subject: &Bytes, queue: Option<&Bytes>) {
        self.interest_changed(account, subject, queue, Origin::Route, false);
    }

    /// Whether a message the server did not get from a client may go to the leaf
    /// connection `cid`: one that came over a route only to the leafs this server
    /// accepted (a spoke's hub is reached by the publishing server's own leaf
    /// connection), and only what the leaf's filters let through.
    pub fn reachable(&self, cid: u64, subject: &[u8], from_route: bool) -> bool {
        if from_route {
            self.leaf(cid)
                .is_some_and(|l| !l.is_spoke && l.filters.may_receive(subject))
        } else {
            self.may_deliver(cid, subject)
        }
    }
}

/// Encodes one delivery for a leaf connection (`LMSG`/`HMSG` with the queue groups it
/// was picked for); used by the client publish path for targets of kind
/// [`ConnKind::Leaf`].
pub fn encode_delivery(out: &mut Vec<u8>, d: &Delivery<'_>, queues: &[Bytes], headers: bool) {
    proto::encode_msg(out, d.subject, d.reply, queues, d.hdr, d.msg, headers);
}

/// Bytes [`encode_delivery`] writes at most.
pub fn delivery_len(d: &Delivery<'_>, queues: &[Bytes]) -> usize {
    proto::msg_len(d.subject, d.reply, queues, d.msg)
}

/// Sends a message the server itself routes (system messages, routed queue members) to
/// the leaf behind `sub`, with `sub`'s queue group; false if the connection is closed.
pub fn deliver_one(sub: &Arc<Subscription>, d: &Delivery<'_>) -> bool {
    if sub.is_closed() {
        return false;
    }
    let mut t = Targets::default();
    t.add(&sub.client, sub.queue.clone());
    t.send(d, None) > 0
}

/// Leaf and route connections a message goes to, each once, with the queue groups each
/// was picked for.
#[derive(Default)]
struct Targets(Vec<(Arc<ClientHandle>, Vec<Bytes>)>);

impl Targets {
    fn add(&mut self, handle: &Arc<ClientHandle>, queue: Option<Bytes>) {
        match self.0.iter_mut().find(|(h, _)| Arc::ptr_eq(h, handle)) {
            Some((_, queues)) => queues.extend(queue),
            None => self.0.push((handle.clone(), queue.into_iter().collect())),
        }
    }

    /// Encodes and flushes the message to every target (routes need `account`);
    /// returns how many took it.
    fn send(&self, d: &Delivery<'_>, account: Option<&str>) -> u64 {
        let mut sent = 0;
        for (h, queues) in &self.0 {
            let headers = h.headers.load(Ordering::Relaxed);
            let push = match (h.kind, account) {
                (ConnKind::Leaf, _) => {
                    h.outbound
                        .push_msg(delivery_len(d, queues), d.msg.len(), |out| {
                            encode_delivery(out, d, queues, headers);
                        })
                }
                (ConnKind::Route, Some(account)) => {
                    let m = crate::cluster::proto::Outgoing {
                        account,
                        subject: d.subject,
                        reply: d.reply,
                        queues,
                        hdr: d.hdr,
                        msg: d.msg,
                    };
                    h.outbound.push_msg(
                        delivery_len(d, queues) + account.len() + 1,
                        d.msg.len(),
                        |out| crate::cluster::proto::encode_msg(out, &m, headers),
                    )
                }
                _ => continue,
            };
            if !matches!(push, Push::Closed) {
                h.outbound.flush();
                sent += 1;
            }
        }
        sent
    }
}
