//! Gateways: links between clusters, which together form a supercluster.
//!
//! Every server keeps one *outbound* connection to each remote cluster (to any one of
//! its servers) and accepts *inbound* connections from every server of every remote
//! cluster. Messages travel only on outbound connections; interest travels back on
//! inbound ones. Natrix always announces its interest in full (interest-only mode,
//! `gateway_iom`), and as a sender honours both modes of nats-server (optimistic, with
//! `A-`/`RS-` to stop traffic, and interest-only after gateway commands 2 and 3).
//!
//! Requests crossing a gateway carry their reply as `_GR_.<cluster>.<server>.<reply>`,
//! hashes of the origin's gateway name and server id, so the response finds its way
//! back to the exact server of the requester even before the remote cluster knows of
//! the requester's interest. See docs/design/inter-server-protocols.md §2.

pub mod interest;
pub mod link;

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use rustc_hash::{FxHashMap, FxHashSet};
use serde::Serialize;
use tokio::net::TcpListener;

use super::proto;
use crate::account::Account;
use crate::server::client::Subscription;
use crate::server::fanout::{self, Inbound};
use crate::server::outbound::Outbound;
use crate::server::{Server, reachable};
use crate::sublist::MatchResult;
use link::Link;

/// The prefix of a mapped reply subject.
pub const REPLY_PREFIX: &[u8] = b"_GR_.";
/// Characters of a cluster or server hash in a mapped reply.
const HASH_LEN: usize = 6;
/// `_GR_.` + cluster hash + `.` + server hash + `.`.
const MAPPED_PREFIX_LEN: usize = REPLY_PREFIX.len() + 2 * HASH_LEN + 2;
/// How long a mapped reply is remembered on the responder's server.
const REPLY_TTL: Duration = Duration::from_secs(2);
/// Remembered replies past which expired ones are swept.
const REPLY_SWEEP: usize = 4096;

/// nats-server's hash for reply mapping: each of the first `n` bytes of SHA-256(s),
/// modulo 62, picks a digit or letter.
pub fn hash(s: &str, n: usize) -> String {
    const ALPHABET: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let digest = ring::digest::digest(&ring::digest::SHA256, s.as_bytes());
    digest.as_ref()[..n]
        .iter()
        .map(|b| ALPHABET[usize::from(*b) % ALPHABET.len()] as char)
        .collect()
}

/// A remote cluster this server knows how to reach.
struct Remote {
    urls: Vec<String>,
    /// User and password from the remote's configured URLs.
    credentials: Option<(String, String)>,
    /// From this server's config (dialled forever), rather than learnt.
    configured: bool,
}

/// Cluster-wide interest per account, subject and queue group, announced to the
/// inbound gateways of every remote cluster.
type InterestKey = (String, Bytes, Option<Bytes>);

/// The gateway side of a server.
pub struct Gateways {
    pub name: String,
    pub addr: SocketAddr,
    cluster_hash: String,
    server_hash: String,
    /// Outbound links by remote gateway name.
    outbound: RwLock<FxHashMap<String, Arc<Link>>>,
    /// Inbound links by connection id.
    inbound: RwLock<FxHashMap<u64, Arc<Link>>>,
    remotes: Mutex<FxHashMap<String, Remote>>,
    /// Remote gateways a dialling task is running for.
    dialling: Mutex<FxHashSet<String>>,
    interest: Mutex<FxHashMap<InterestKey, u32>>,
    /// Replies a remote cluster mapped, by the plain subject the responder answers on.
    replies: Mutex<FxHashMap<Bytes, (Bytes, Instant)>>,
    replies_len: AtomicUsize,
}

/// This server's gateway INFO.
#[derive(Serialize)]
struct GatewayInfo<'a> {
    #[serde(flatten)]
    base: super::link::InfoBase<'a>,
    gateway: &'a str,
    gateway_urls: Vec<String>,
    gateway_url: String,
    gateway_nrp: bool,
    gateway_iom: bool,
}

/// Why the gateway side cannot start.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    #[error("gateway has no name")]
    NoName,
    #[error("gateway name {gateway:?} and cluster name {cluster:?} must be the same")]
    NameMismatch { gateway: String, cluster: String },
    #[error("gateway port out of range")]
    Port,
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

impl Gateways {
    /// Binds the gateway listener from `gateway { name, listen }`; `None` without a port.
    pub async fn bind(server: &Server) -> Result<Option<(Arc<Self>, TcpListener)>, GatewayError> {
        let (opts, _) = server.options();
        let g = &opts.config.gateway;
        if g.port == 0 {
            return Ok(None);
        }
        if g.name.is_empty() {
            return Err(GatewayError::NoName);
        }
        let cluster = &opts.config.cluster.name;
        if !cluster.is_empty() && cluster != &g.name {
            return Err(GatewayError::NameMismatch {
                gateway: g.name.clone(),
                cluster: cluster.clone(),
            });
        }
        let port = u16::try_from(g.port.max(0)).map_err(|_| GatewayError::Port)?;
        let host = if g.host.is_empty() {
            "0.0.0.0"
        } else {
            &g.host
        };
        let listener = TcpListener::bind((host, port)).await?;
        let addr = listener.local_addr()?;
        tracing::info!("Gateway name is {}", g.name);
        tracing::info!("Listening for gateways connections on {addr}");
        let mut remotes = FxHashMap::default();
        for r in &g.gateways {
            if r.name == g.name {
                continue;
            }
            let urls = r
                .urls
                .iter()
                .filter_map(|u| u.port.map(|p| format!("{}:{p}", u.host)))
                .collect();
            let credentials = r.urls.iter().find_map(|u| {
                u.username
                    .clone()
                    .map(|user| (user, u.password.clone().unwrap_or_default()))
            });
            remotes.insert(
                r.name.clone(),
                Remote {
                    urls,
                    credentials,
                    configured: true,
                },
            );
        }
        Ok(Some((
            Arc::new(Self {
                name: g.name.clone(),
                addr,
                cluster_hash: hash(&g.name, HASH_LEN),
                server_hash: hash(server.id(), HASH_LEN),
                outbound: RwLock::new(FxHashMap::default()),
                inbound: RwLock::new(FxHashMap::default()),
                remotes: Mutex::new(remotes),
                dialling: Mutex::new(FxHashSet::default()),
                interest: Mutex::new(FxHashMap::default()),
                replies: Mutex::new(FxHashMap::default()),
                replies_len: AtomicUsize::new(0),
            }),
            listener,
        )))
    }

    /// Accepts inbound gateways and, a second after start (so the local cluster can form
    /// first, as nats-server does), dials the configured remotes.
    pub fn start(self: &Arc<Self>, server: &Arc<Server>, listener: TcpListener) {
        let gws = self.clone();
        let srv = server.clone();
        super::link::accept_loop(server.clone(), listener, "gateway", move |stream, peer| {
            tokio::spawn(link::run(srv.clone(), gws.clone(), stream, peer, None));
        });
        let names: Vec<String> = self.remotes.lock().keys().cloned().collect();
        let gws = self.clone();
        let srv = server.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(1)).await;
            for name in names {
                gws.dial(&srv, &name);
            }
        });
    }

    /// Starts a task that keeps an outbound connection to `name`, unless one runs.
    fn dial(self: &Arc<Self>, server: &Arc<Server>, name: &str) {
        if name == self.name || !self.dialling.lock().insert(name.to_owned()) {
            return;
        }
        tokio::spawn(link::solicit(server.clone(), self.clone(), name.to_owned()));
    }

    /// A remote cluster learnt from a peer (gossip, an inbound connection, a route):
    /// remembered and dialled unless known already.
    pub(crate) fn learn(self: &Arc<Self>, server: &Arc<Server>, name: &str, urls: &[String]) {
        if name == self.name || name.is_empty() {
            return;
        }
        {
            let (opts, _) = server.options();
            let mut remotes = self.remotes.lock();
            match remotes.get_mut(name) {
                Some(r) => {
                    for u in urls {
                        if !r.urls.contains(u) {
                            r.urls.push(u.clone());
                        }
                    }
                }
                None if opts.config.gateway.reject_unknown => return,
                None => {
                    remotes.insert(
                        name.to_owned(),
                        Remote {
                            urls: urls.to_vec(),
                            credentials: None,
                            configured: false,
                        },
                    );
                }
            }
        }
        self.dial(server, name);
    }

    /// URLs to try for `name`, in random order, and whether it is configured.
    fn urls(&self, name: &str) -> Option<(Vec<String>, bool)> {
        let remotes = self.remotes.lock();
        let r = remotes.get(name)?;
        let mut urls = r.urls.clone();
        fastrand::shuffle(&mut urls);
        Some((urls, r.configured))
    }

    /// Forgets an implicit remote that could not be reached.
    fn forget(&self, name: &str) {
        let mut remotes = self.remotes.lock();
        if remotes.get(name).is_some_and(|r| !r.configured) {
            remotes.remove(name);
        }
    }

    fn done_dialling(&self, name: &str) {
        self.dialling.lock().remove(name);
    }

    /// The user and password to present to `name`: its URL's own, else the gateway
    /// block's `authorization` (the whole supercluster usually shares one).
    pub(crate) fn credentials(&self, server: &Server, name: &str) -> Option<(String, String)> {
        if let Some(c) = self
            .remotes
            .lock()
            .get(name)
            .and_then(|r| r.credentials.clone())
        {
            return Some(c);
        }
        let (opts, _) = server.options();
        let g = &opts.config.gateway;
        (!g.username.is_empty()).then(|| (g.username.clone(), g.password.clone()))
    }

    pub fn is_configured(&self, name: &str) -> bool {
        self.remotes.lock().get(name).is_some_and(|r| r.configured)
    }

    /// This server's gateway URL, as remote servers dial it: `advertise`, else the
    /// listen address; a wildcard listener is named by `local_ip`, the address a peer
    /// reached this server on (or this server used to reach it).
    pub fn url(&self, server: &Server, local_ip: Option<IpAddr>) -> String {
        let (opts, _) = server.options();
        let advertise = &opts.config.gateway.advertise;
        if !advertise.is_empty() {
            return advertise.clone();
        }
        match local_ip {
            Some(ip) if self.addr.ip().is_unspecified() && !ip.is_unspecified() => {
                SocketAddr::new(ip, self.addr.port()).to_string()
            }
            _ => reachable(self.addr),
        }
    }

    /// Gateway URLs of the whole cluster, this server's first.
    fn cluster_urls(&self, server: &Server, local_ip: Option<IpAddr>) -> Vec<String> {
        let mut urls = vec![self.url(server, local_ip)];
        if let Some(cluster) = server.cluster() {
            for r in cluster.routes() {
                if let Some(u) = r.info.get("gateway_url").and_then(|v| v.as_str())
                    && !urls.iter().any(|x| x == u)
                {
                    urls.push(u.to_owned());
                }
            }
        }
        urls
    }

    /// This server's gateway INFO, for a connection whose local address is `local_ip`.
    pub(crate) fn info_json(&self, server: &Server, local_ip: Option<IpAddr>) -> Vec<u8> {
        let (opts, _) = server.options();
        let info = GatewayInfo {
            base: super::link::InfoBase::new(
                server,
                self.addr,
                3,
                "",
                !opts.config.gateway.username.is_empty(),
                opts.gateway_tls.is_some(),
            ),
            gateway: &self.name,
            gateway_urls: self.cluster_urls(server, local_ip),
            gateway_url: self.url(server, local_ip),
            gateway_nrp: true,
            gateway_iom: true,
        };
        serde_json::to_vec(&info).unwrap_or_default()
    }

    /// `INFO` for gateway command `cmd` about `account` (2: all subscriptions follow,
    /// 3: done), with the zero-valued fields nats-server includes.
    fn command_info(&self, cmd: u8, account: &str) -> Vec<u8> {
        use base64::Engine as _;
        let info = serde_json::json!({
            "server_id": "", "server_name": "", "version": "", "proto": 0, "go": "",
            "host": "", "port": 0, "headers": false, "max_payload": 0,
            "gateway": self.name, "gateway_cmd": cmd,
            "gateway_cmd_payload": base64::engine::general_purpose::STANDARD.encode(account),
        });
        info_line(&info)
    }

    /// Registers an outbound link; false if one to that cluster exists already.
    fn register_outbound(&self, link: &Arc<Link>) -> bool {
        let mut out = self.outbound.write();
        if out.contains_key(&link.name) {
            return false;
        }
        out.insert(link.name.clone(), link.clone());
        true
    }

    fn unregister(&self, link: &Arc<Link>) {
        if link.outbound {
            let mut out = self.outbound.write();
            if out.get(&link.name).is_some_and(|l| Arc::ptr_eq(l, link)) {
                out.remove(&link.name);
            }
        } else {
            self.inbound.write().remove(&link.handle.cid);
        }
    }

    /// Registers an inbound link and sends it this cluster's interest for every
    /// account, switching each to interest-only on the sender (commands 2 and 3).
    fn register_inbound(&self, server: &Server, link: &Arc<Link>) {
        let interest = self.interest.lock();
        self.inbound.write().insert(link.handle.cid, link.clone());
        let mut batch = Vec::new();
        for acc in server.all_accounts() {
            batch.extend_from_slice(&self.command_info(2, acc.name()));
            for (a, subject, queue) in interest.keys() {
                if a == acc.name() {
                    batch.extend_from_slice(&proto::sub_line(
                        a,
                        subject,
                        queue.as_deref().map(|q| (q, 1)),
                    ));
                }
            }
            batch.extend_from_slice(&self.command_info(3, acc.name()));
        }
        link.handle.outbound.push_proto(&batch);
    }

    /// Tells a newly connected cluster about every other cluster we reach (command 1).
    fn gossip_to(&self, server: &Server, link: &Link) {
        let mut batch = Vec::new();
        for (name, r) in self.remotes.lock().iter() {
            if name == &link.name || !self.outbound.read().contains_key(name) {
                continue;
            }
            batch.extend_from_slice(&info_line(&serde_json::json!({
                "server_id": server.id(), "gateway": name,
                "gateway_urls": r.urls, "gateway_cmd": 1,
            })));
        }
        if !batch.is_empty() {
            link.handle.outbound.push_proto(&batch);
        }
    }

    /// Tells the servers of this cluster about a remote cluster, so each dials it too.
    fn announce_to_routes(&self, server: &Server, name: &str, urls: &[String]) {
        if let Some(cluster) = server.cluster() {
            let line = self.route_gossip(server, name, urls);
            for r in cluster.routes() {
                r.handle.outbound.push_proto(&line);
            }
        }
    }

    fn route_gossip(&self, server: &Server, name: &str, urls: &[String]) -> Vec<u8> {
        info_line(&serde_json::json!({
            "server_id": format!("GW{}", server.id()), "server_name": server.name(),
            "gateway": name, "gateway_urls": urls, "gateway_cmd": 1,
        }))
    }

    /// One gossip INFO per remote cluster this server has an outbound link to, for a
    /// newly connected route.
    pub(crate) fn route_hello(&self, server: &Server) -> Vec<u8> {
        let mut out = Vec::new();
        for (name, link) in self.outbound.read().iter() {
            let urls = link.urls();
            out.extend_from_slice(&self.route_gossip(server, name, &urls));
        }
        out
    }

    fn broadcast_inbound(&self, line: &[u8]) {
        for l in self.inbound.read().values() {
            l.handle.outbound.push_proto(line);
        }
    }

    /// A subscription appeared in the cluster (a local client's or a route's): the
    /// first one for its subject or queue group is announced to remote clusters.
    pub fn sub_added(&self, account: &str, subject: &Bytes, queue: Option<&Bytes>) {
        let mut interest = self.interest.lock();
        let n = interest
            .entry((account.to_owned(), subject.clone(), queue.cloned()))
            .or_insert(0);
        *n += 1;
        if *n == 1 {
            self.broadcast_inbound(&proto::sub_line(
                account,
                subject,
                queue.map(|q| (&q[..], 1)),
            ));
        }
    }

    /// A subscription went away; the last one for its subject or group is withdrawn.
    pub fn sub_removed(&self, account: &str, subject: &Bytes, queue: Option<&Bytes>) {
        let key = (account.to_owned(), subject.clone(), queue.cloned());
        let mut interest = self.interest.lock();
        let Some(n) = interest.get_mut(&key) else {
            return;
        };
        *n -= 1;
        if *n == 0 {
            interest.remove(&key);
            self.broadcast_inbound(&proto::unsub_line(account, subject, queue.map(|q| &q[..])));
        }
    }

    /// `_GR_.<cluster>.<server>.` for replies of requests leaving this server.
    fn reply_prefix(&self) -> String {
        format!("_GR_.{}.{}.", self.cluster_hash, self.server_hash)
    }

    /// Offers a message published in this cluster to the remote clusters: each gets it
    /// if it wants the subject; each queue group that got no member here goes to one
    /// cluster only. An answer on a reply subject that a remote cluster mapped goes
    /// straight back to that cluster. Outbound buffers to flush are added to `to_flush`.
    /// Returns how many clusters it went to.
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn send(
        &self,
        account: &Account,
        subject: &[u8],
        reply: Option<&[u8]>,
        hdr: usize,
        msg: &[u8],
        local: &MatchResult<Subscription>,
        exclude: Option<&str>,
        to_flush: &mut Vec<Arc<Outbound>>,
    ) -> u32 {
        if self.replies_len.load(Ordering::Relaxed) > 0
            && let Some(mapped) = self.mapped_reply(subject)
        {
            let cluster = &mapped[REPLY_PREFIX.len()..REPLY_PREFIX.len() + HASH_LEN];
            let target = self
                .outbound
                .read()
                .values()
                .find(|l| l.cluster_hash.as_bytes() == cluster)
                .cloned();
            let Some(link) = target else { return 0 };
            link.send(account.name(), &mapped, reply, &[], hdr, msg, to_flush);
            return 1;
        }
        let links: Vec<Arc<Link>> = self.outbound.read().values().cloned().collect();
        if links.is_empty() {
            return 0;
        }
        let mut sent = 0;
        let mut taken: Vec<Bytes> = local
            .qsubs
            .iter()
            .filter_map(|g| g.first().and_then(|s| s.queue.clone()))
            .collect();
        let mut mapped = None;
        for link in links {
            if exclude == Some(link.name.as_str()) {
                continue;
            }
            let wanted = link.interest.wanted(account.name(), subject);
            let queues: Vec<Bytes> = wanted
                .queues
                .into_iter()
                .filter(|q| !taken.contains(q))
                .collect();
            if !wanted.plain && queues.is_empty() {
                continue;
            }
            let reply = match reply {
                Some(r) if !r.starts_with(REPLY_PREFIX) => {
                    Some(&**mapped.get_or_insert_with(|| {
                        let mut m = self.reply_prefix().into_bytes();
                        m.extend_from_slice(r);
                        m
                    }))
                }
                other => other,
            };
            link.send(account.name(), subject, reply, &queues, hdr, msg, to_flush);
            taken.extend(queues);
            sent += 1;
        }
        sent
    }

    /// Whether some remote cluster wants a message on `subject` in `account` (what
    /// `send` would send it to, queue groups included).
    pub fn wants(&self, account: &str, subject: &[u8]) -> bool {
        self.outbound.read().values().any(|l| {
            let w = l.interest.wanted(account, subject);
            w.plain || !w.queues.is_empty()
        })
    }

    /// The remote cluster whose request used `reply` recently (it crossed a gateway).
    pub fn reply_cluster(&self, reply: &[u8]) -> Option<String> {
        let mapped = self.mapped_reply(reply)?;
        let (cluster, _, _) = split_mapped(&mapped)?;
        self.outbound
            .read()
            .values()
            .find(|l| l.cluster_hash.as_bytes() == cluster)
            .map(|l| l.name.clone())
    }

    /// The mapped form of `reply` if a remote cluster's request used it recently.
    fn mapped_reply(&self, reply: &[u8]) -> Option<Bytes> {
        let replies = self.replies.lock();
        let (mapped, at) = replies.get(reply)?;
        (at.elapsed() < REPLY_TTL).then(|| mapped.clone())
    }

    /// Remembers that `plain` stands for the mapped reply `mapped`.
    fn track_reply(&self, plain: &[u8], mapped: &[u8]) {
        let mut replies = self.replies.lock();
        if replies.len() >= REPLY_SWEEP {
            replies.retain(|_, (_, at)| at.elapsed() < REPLY_TTL);
        }
        replies.insert(
            Bytes::copy_from_slice(plain),
            (Bytes::copy_from_slice(mapped), Instant::now()),
        );
        self.replies_len.store(replies.len(), Ordering::Relaxed);
    }

    pub fn num_outbound(&self) -> usize {
        self.outbound.read().len()
    }

    pub fn num_inbound(&self) -> usize {
        self.inbound.read().len()
    }

    pub fn outbound_links(&self) -> Vec<Arc<Link>> {
        let mut v: Vec<Arc<Link>> = self.outbound.read().values().cloned().collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    pub fn inbound_links(&self) -> Vec<Arc<Link>> {
        let mut v: Vec<Arc<Link>> = self.inbound.read().values().cloned().collect();
        v.sort_by_key(|l| l.handle.cid);
        v
    }
}

/// `INFO <json>\r\n`.
fn info_line(json: &serde_json::Value) -> Vec<u8> {
    let mut v = Vec::with_capacity(128);
    crate::protocol::encode::info(&mut v, json.to_string().as_bytes());
    v
}

/// The parts of a mapped subject `_GR_.<cluster>.<server>.<rest>`.
fn split_mapped(subject: &[u8]) -> Option<(&[u8], &[u8], &[u8])> {
    if subject.len() <= MAPPED_PREFIX_LEN || !subject.starts_with(REPLY_PREFIX) {
        return None;
    }
    let c = &subject[REPLY_PREFIX.len()..REPLY_PREFIX.len() + HASH_LEN];
    let s = &subject[REPLY_PREFIX.len() + HASH_LEN + 1..MAPPED_PREFIX_LEN - 1];
    let dots_ok =
        subject[REPLY_PREFIX.len() + HASH_LEN] == b'.' && subject[MAPPED_PREFIX_LEN - 1] == b'.';
    dots_ok.then(|| (c, s, &subject[MAPPED_PREFIX_LEN..]))
}

/// A message that reached this server from another one: from a route (`to_routes`
/// false: the sender offered it to every peer itself) or from a gateway (`to_routes`
/// true: this server is the cluster's entry point, `from_gateway` names the cluster).
///
/// A mapped subject (an answer to a request that crossed a gateway) is delivered here
/// when it names this server, or handed on the route to the server it names; a mapped
/// reply is shown to local subscribers in its plain form and remembered so their answer
/// goes straight back.
#[allow(clippy::too_many_arguments)]
pub(crate) fn deliver_from_peer(
    server: &Server,
    account: &Account,
    subject: &[u8],
    reply: Option<&[u8]>,
    queues: &[Bytes],
    hdr: usize,
    msg: &[u8],
    from_gateway: Option<&str>,
    to_flush: &mut Vec<Arc<Outbound>>,
) {
    let gws = server.gateways();
    if let Some(gws) = gws
        && let Some((c, s, plain)) = split_mapped(subject)
    {
        if c != gws.cluster_hash.as_bytes() {
            return;
        }
        if s != gws.server_hash.as_bytes() {
            if let Some(route) = server.cluster().and_then(|cl| {
                cl.routes()
                    .into_iter()
                    .find(|r| hash(&r.remote_id, HASH_LEN).as_bytes() == s)
            }) {
                let out = proto::Outgoing {
                    account: account.name(),
                    subject,
                    reply,
                    queues: &[],
                    hdr,
                    msg,
                };
                let headers = route.headers();
                let push = route
                    .handle
                    .outbound
                    .push_with(subject.len() + msg.len() + 64, |buf| {
                        proto::encode_msg(buf, &out, headers)
                    });
                if push.needs_flush() {
                    to_flush.push(route.handle.outbound.clone());
                }
            }
            return;
        }
        // A JetStream delivery to a mapped inbox shows the subject its reply carries.
        let (shown, deliver_to, client_reply) = match reply.and_then(fanout::split_js_reply) {
            Some((ack, shown)) => (shown, Some(plain), Some(ack)),
            None => (plain, None, reply),
        };
        let m = Inbound {
            deliver_to,
            subject: shown,
            reply: client_reply,
            route_reply: None,
            hdr,
            msg,
            queues: None,
            to_routes: from_gateway.is_some(),
        };
        fanout::deliver(server, account, &m, to_flush);
        if let Some(origin) = from_gateway {
            let result = account.sublist.match_subject(plain);
            gws.send(
                account,
                plain,
                reply,
                hdr,
                msg,
                &result,
                Some(origin),
                to_flush,
            );
        }
        return;
    }
    let client_reply = match (gws, reply.and_then(split_mapped)) {
        (Some(gws), Some((_, _, plain))) => {
            if let Some(full) = reply {
                gws.track_reply(plain, full);
            }
            Some(plain)
        }
        _ => reply,
    };
    // A JetStream delivery: routed by `subject` (its deliver subject), shown under the
    // subject its reply carries.
    let (shown, deliver_to, client_reply) = match client_reply.and_then(fanout::split_js_reply) {
        Some((ack, shown)) => (shown, Some(subject), Some(ack)),
        None => (subject, None, client_reply),
    };
    let m = Inbound {
        deliver_to,
        subject: shown,
        reply: client_reply,
        route_reply: reply,
        hdr,
        msg,
        queues: Some(queues),
        to_routes: from_gateway.is_some(),
    };
    fanout::deliver(server, account, &m, to_flush);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reply_hash_matches_nats_server() {
        // Observed on nats-server 2.15.2: gateway "A" maps replies to `_GR_.NUmM6c.`.
        assert_eq!(hash("A", HASH_LEN), "NUmM6c");
    }

    #[test]
    fn mapped_subjects_split() {
        let (c, s, rest) = split_mapped(b"_GR_.NUmM6c.1P1b1W._INBOX.abc").unwrap_or_default();
        assert_eq!(
            (c, s, rest),
            (&b"NUmM6c"[..], &b"1P1b1W"[..], &b"_INBOX.abc"[..])
        );
        assert!(split_mapped(b"_GR_.short").is_none());
        assert!(split_mapped(b"_GR_.NUmM6cX1P1b1W._INBOX").is_none());
        assert!(split_mapped(b"foo.bar").is_none());
    }
}
