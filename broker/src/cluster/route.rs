//! One route: the handshake, the read loop, the peer's interest as subscriptions in the
//! local sublists, and delivery of routed messages to local clients.
//!
//! Handshake (no pooling): the accepting side sends its INFO at once; the dialling side
//! sends CONNECT and its INFO at once. Each side registers the route when it has the
//! peer's INFO, then sends its clients' interest in one batch and tells its other peers
//! about the newcomer.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use tokio::net::TcpStream;

use super::Cluster;
use super::gateway;
use super::link::{self, LinkHandler};
use super::proto::RouteOp;
use crate::protocol::encode;
use crate::server::Server;
use crate::server::client::{ClientHandle, ConnKind, Subscription};
use crate::server::outbound::{CloseReason, Outbound};

/// How long a dial may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Delay between attempts at a route.
const RETRY: Duration = Duration::from_secs(1);
/// Longest delay between attempts with `connect_backoff`.
const MAX_BACKOFF: Duration = Duration::from_secs(30);

/// The peer's interest key: account, subject, queue.
type RemoteKey = (String, Bytes, Option<Bytes>);

/// A registered route.
pub struct Route {
    pub handle: Arc<ClientHandle>,
    pub remote_id: String,
    pub remote_name: String,
    /// The peer's INFO as it sent it (forwarded to other peers as gossip).
    pub info: serde_json::Value,
    pub peer: SocketAddr,
    pub solicited: bool,
    /// The configured URL this route was dialled from, if any.
    pub configured: Option<String>,
    pub start: SystemTime,
    /// Messages and bytes received from the peer (sent to it are on `handle`).
    pub in_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
    subs: Mutex<FxHashMap<RemoteKey, Arc<Subscription>>>,
    headers: bool,
}

impl Route {
    /// `host:port` where the peer accepts routes.
    pub fn route_url(&self) -> String {
        if let Some(ip) = self.info.get("ip").and_then(|v| v.as_str())
            && let Some(hp) = ip
                .strip_prefix("nats-route://")
                .map(|s| s.trim_end_matches('/'))
        {
            return hp.to_owned();
        }
        let port = self
            .info
            .get("port")
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        format!("{}:{port}", self.peer.ip())
    }

    pub fn num_subs(&self) -> usize {
        self.subs.lock().len()
    }

    /// The subjects the peer is interested in, for `/routez?subs=1`.
    pub fn subjects(&self) -> Vec<String> {
        self.subs
            .lock()
            .keys()
            .map(|(_, s, q)| match q {
                Some(q) => format!(
                    "{} {}",
                    String::from_utf8_lossy(s),
                    String::from_utf8_lossy(q)
                ),
                None => String::from_utf8_lossy(s).into_owned(),
            })
            .collect()
    }

    /// Whether the peer takes header blocks.
    pub fn headers(&self) -> bool {
        self.headers
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PeerInfo {
    server_id: String,
    server_name: String,
    cluster: String,
    headers: bool,
    system_account: String,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PeerConnect {
    cluster: String,
    user: String,
    pass: String,
    lang: Option<String>,
    gateway: Option<String>,
}

/// Keeps dialling `target` (a configured route, or one learned by gossip) and runs the
/// route whenever it connects. Configured routes are retried forever (or
/// `connect_retries` times, when set); learnt ones `connect_retries` times. With
/// `connect_backoff` the delay doubles after each failure, up to 30 s.
pub async fn solicit(
    server: Arc<Server>,
    cluster: Arc<Cluster>,
    target: String,
    url: String,
    configured: bool,
) {
    let mut shutdown = std::pin::pin!(server.wait_shutdown());
    let mut failures = 0i64;
    let mut delay = RETRY;
    loop {
        if cluster.is_self_url(&target) {
            return;
        }
        let dial = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(&target));
        let attempt = tokio::select! {
            r = dial => r,
            () = &mut shutdown => return,
        };
        let outcome = match attempt {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                let peer = stream
                    .peer_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
                tracing::debug!("Route connection created to {target}");
                run(
                    server.clone(),
                    cluster.clone(),
                    stream,
                    peer,
                    Some((target.clone(), configured.then(|| url.clone()))),
                )
                .await
            }
            Ok(Err(e)) => {
                tracing::debug!("Error trying to connect to route {url}: {e}");
                Outcome::Failed
            }
            Err(_) => {
                tracing::debug!("Error trying to connect to route {url}: timeout");
                Outcome::Failed
            }
        };
        if let Outcome::Duplicate(remote) = &outcome {
            // The peer is routed already (it dialled us too): redial only once that
            // route is gone, instead of dialling a duplicate every second.
            while cluster.has_route(remote) {
                tokio::select! {
                    () = tokio::time::sleep(RETRY) => {}
                    () = &mut shutdown => return,
                }
            }
            continue;
        }
        if cluster.is_self_url(&target) {
            return;
        }
        let (opts, _) = server.options();
        let c = &opts.config.cluster;
        if outcome == Outcome::Established {
            // A route learnt by gossip is not ours to keep: the peer, or gossip, brings
            // it back.
            if !configured {
                return;
            }
            failures = 0;
            delay = RETRY;
        } else {
            failures += 1;
            let limit = c.connect_retries.max(0);
            if (!configured || limit > 0) && failures > limit {
                tracing::info!("Giving up on route {url} after {failures} attempts");
                return;
            }
            if c.connect_backoff {
                delay = (delay * 2).min(MAX_BACKOFF);
            }
        }
        let jitter = Duration::from_millis(fastrand::u64(..100));
        tokio::select! {
            () = tokio::time::sleep(delay + jitter) => {}
            () = &mut shutdown => return,
        }
    }
}

/// How a route connection ended.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    /// It was a registered route.
    Established,
    /// It was closed as a duplicate of the route to this remote server id.
    Duplicate(String),
    /// It never became a route.
    Failed,
}

/// Runs one route connection until it closes. `solicited` is the dialled `host:port`
/// and, for configured routes, the URL as configured.
pub async fn run(
    server: Arc<Server>,
    cluster: Arc<Cluster>,
    stream: TcpStream,
    peer: SocketAddr,
    solicited: Option<(String, Option<String>)>,
) -> Outcome {
    let (opts, _) = server.options();
    let dialled = solicited.as_ref().map(|(t, _)| t.as_str());
    let local_ip = stream.local_addr().ok().map(|a| a.ip());
    let Some((rd, outbound)) = link::open(
        stream,
        peer,
        opts.cluster_tls.as_ref(),
        dialled,
        opts.max_pending,
    )
    .await
    else {
        return Outcome::Failed;
    };
    let handle = Arc::new(ClientHandle::with_kind(
        server.next_internal_cid(),
        outbound.clone(),
        ConnKind::Route,
    ));
    let writer = tokio::spawn(outbound.clone().run_writer(opts.write_deadline));
    let mut hello = Vec::new();
    if let Some((_, url)) = &solicited {
        let mut connect = serde_json::json!({
            "echo": true, "verbose": false, "pedantic": false, "tls_required": false,
            "headers": true, "name": server.id(), "cluster": cluster.name,
        });
        if let Some((user, pass)) = cluster.credentials(&server, url.as_deref().unwrap_or("")) {
            connect["user"] = user.into();
            connect["pass"] = pass.into();
        }
        hello.extend_from_slice(b"CONNECT ");
        hello.extend_from_slice(connect.to_string().as_bytes());
        hello.extend_from_slice(b"\r\n");
    }
    encode::info(&mut hello, &cluster.info_json(&server, local_ip));
    outbound.push_proto(&hello);

    let mut conn = Conn {
        server: server.clone(),
        cluster: cluster.clone(),
        handle,
        peer,
        solicited,
        connected: false,
        route: None,
        duplicate_of: None,
        peer_system_account: None,
    };
    let c = &opts.config.cluster;
    let pings = link::Pings::new(c.ping_interval, c.ping_max);
    link::serve(&server, &outbound, rd, peer, pings, &mut conn).await;
    let _ = writer.await;
    let outcome = match (&conn.route, conn.duplicate_of.take()) {
        (Some(_), _) => Outcome::Established,
        (None, Some(remote)) => Outcome::Duplicate(remote),
        (None, None) => Outcome::Failed,
    };
    conn.cleanup();
    outcome
}

/// The state of one route connection's read loop.
struct Conn {
    server: Arc<Server>,
    cluster: Arc<Cluster>,
    handle: Arc<ClientHandle>,
    peer: SocketAddr,
    solicited: Option<(String, Option<String>)>,
    connected: bool,
    route: Option<Arc<Route>>,
    /// Set when this connection lost to an existing route to that server.
    duplicate_of: Option<String>,
    /// The peer's name for the system account, when it differs from this server's.
    peer_system_account: Option<String>,
}

impl LinkHandler for Conn {
    fn established(&self) -> bool {
        self.route.is_some()
    }

    fn connect(&mut self, json: &[u8]) -> bool {
        self.on_connect(json)
    }

    fn info(&mut self, json: &[u8]) -> bool {
        self.on_info(json)
    }

    fn handle(&mut self, op: RouteOp, to_flush: &mut Vec<Arc<Outbound>>) -> bool {
        self.op(op, to_flush)
    }
}

impl Conn {
    fn reject(&self, text: &str, reason: CloseReason) -> bool {
        link::reject(&self.handle.outbound, text, reason);
        false
    }

    fn send_err(&self, text: &str) {
        let mut v = Vec::new();
        encode::err(&mut v, text);
        self.handle.outbound.push_proto(&v);
    }

    /// The local name of the peer's `account`: its system account is this server's.
    fn local_account(&self, account: String) -> String {
        match &self.peer_system_account {
            Some(peer) if *peer == account => self.server.sys_account.name().to_owned(),
            _ => account,
        }
    }

    /// Handles one operation; false closes the route.
    fn op(&mut self, op: RouteOp, to_flush: &mut Vec<Arc<Outbound>>) -> bool {
        match op {
            RouteOp::Ping
            | RouteOp::Pong
            | RouteOp::Ok
            | RouteOp::Err(_)
            | RouteOp::Connect(_)
            | RouteOp::Info(_) => {}
            RouteOp::Sub {
                account,
                subject,
                queue,
                weight,
            } => self.remote_sub(self.local_account(account), subject, queue, weight),
            RouteOp::Unsub {
                account,
                subject,
                queue,
            } => self.remote_unsub(self.local_account(account), subject, queue),
            RouteOp::Msg {
                account,
                subject,
                reply,
                queues,
                hdr,
                msg,
            } => self.routed_msg(
                &self.local_account(account),
                &subject,
                reply.as_deref(),
                &queues,
                hdr,
                &msg,
                to_flush,
            ),
            RouteOp::AccountSub(_) | RouteOp::AccountUnsub(_) => {
                return self.reject("Unknown Protocol Operation", CloseReason::ProtocolViolation);
            }
        }
        true
    }

    fn on_connect(&mut self, json: &[u8]) -> bool {
        let Ok(c) = serde_json::from_slice::<PeerConnect>(json) else {
            self.handle.outbound.close(CloseReason::ProtocolViolation);
            return false;
        };
        if c.lang.is_some() {
            // A client dialled the route port.
            return self.reject(
                "Authorization Violation",
                CloseReason::AuthenticationViolation,
            );
        }
        if c.gateway.is_some() {
            return self.reject("Unknown Protocol Operation", CloseReason::ProtocolViolation);
        }
        let (opts, _) = self.server.options();
        let auth = &opts.config.cluster;
        if !auth.username.is_empty()
            && (c.user != auth.username || !crate::auth::password_matches(&auth.password, &c.pass))
        {
            tracing::error!(peer = %self.peer, "route authentication failed");
            return self.reject(
                "Authorization Violation",
                CloseReason::AuthenticationViolation,
            );
        }
        if !c.cluster.is_empty() && c.cluster != self.cluster.name {
            return self.reject(
                &format!(
                    "Rejecting connection, cluster name {:?} does not match {:?}",
                    c.cluster, self.cluster.name
                ),
                CloseReason::ProtocolViolation,
            );
        }
        self.connected = true;
        true
    }

    fn on_info(&mut self, json: &[u8]) -> bool {
        let Ok(value) = serde_json::from_slice::<serde_json::Value>(json) else {
            self.handle.outbound.close(CloseReason::ProtocolViolation);
            return false;
        };
        let info: PeerInfo = serde_json::from_value(value.clone()).unwrap_or_default();
        if let Some(route) = &self.route {
            // On an established route: a remote cluster a peer reaches, gossip about
            // another server, or an update.
            if let Some(name) = value.get("gateway").and_then(serde_json::Value::as_str)
                && value.get("gateway_cmd").and_then(serde_json::Value::as_u64) == Some(1)
            {
                if let Some(gws) = self.server.gateways() {
                    let urls: Vec<String> = value
                        .get("gateway_urls")
                        .and_then(serde_json::Value::as_array)
                        .into_iter()
                        .flatten()
                        .filter_map(|u| u.as_str().map(str::to_owned))
                        .collect();
                    gws.learn(&self.server, name, &urls);
                }
                return true;
            }
            if info.server_id != route.remote_id && !info.server_id.is_empty() {
                self.learn(&value, &info);
            }
            return true;
        }
        if info.server_id == self.server.id() {
            tracing::debug!(peer = %self.peer, "route to self, closing");
            if let Some((target, _)) = &self.solicited {
                self.cluster.mark_self_url(target);
            }
            self.handle.outbound.close(CloseReason::ClientClosed);
            return false;
        }
        if info.server_id.is_empty() {
            self.handle.outbound.close(CloseReason::ProtocolViolation);
            return false;
        }
        if self.solicited.is_none() && !self.connected {
            // The accepting side needs the peer's CONNECT first.
            return self.reject(
                "Authorization Violation",
                CloseReason::AuthenticationViolation,
            );
        }
        if !info.cluster.is_empty() && info.cluster != self.cluster.name {
            return self.reject(
                &format!(
                    "Rejecting connection, cluster name {:?} does not match {:?}",
                    info.cluster, self.cluster.name
                ),
                CloseReason::ProtocolViolation,
            );
        }
        if info.server_name == self.server.name() && self.solicited.is_none() {
            tracing::error!(peer = %self.peer, "Remote server has a duplicate name: {:?}", info.server_name);
            self.handle.outbound.close(CloseReason::ProtocolViolation);
            return false;
        }
        let route = Arc::new(Route {
            handle: self.handle.clone(),
            remote_id: info.server_id.clone(),
            remote_name: info.server_name.clone(),
            info: value,
            peer: self.peer,
            solicited: self.solicited.is_some(),
            configured: self.solicited.as_ref().and_then(|(_, u)| u.clone()),
            start: SystemTime::now(),
            in_msgs: AtomicU64::new(0),
            in_bytes: AtomicU64::new(0),
            subs: Mutex::new(FxHashMap::default()),
            headers: info.headers,
        });
        match self.cluster.register(self.server.id(), &route) {
            Ok(()) => {}
            Err(loser) if Arc::ptr_eq(&loser, &route) => {
                tracing::debug!(remote = %route.remote_id, "duplicate route, closing");
                self.duplicate_of = Some(route.remote_id.clone());
                self.handle.outbound.close(CloseReason::ClientClosed);
                return false;
            }
            Err(replaced) => {
                tracing::debug!(remote = %route.remote_id, "duplicate route, replacing");
                replaced.handle.outbound.close(CloseReason::ClientClosed);
            }
        }
        self.handle.headers.store(info.headers, Ordering::Release);
        if !info.system_account.is_empty() && info.system_account != self.server.sys_account.name()
        {
            tracing::info!(
                "Route peer's system account {:?} is this server's {:?}",
                info.system_account,
                self.server.sys_account.name()
            );
            self.peer_system_account = Some(info.system_account.clone());
        }
        tracing::info!(
            "{} - rid:{} - Route connection created",
            self.peer,
            self.handle.cid
        );
        self.route = Some(route.clone());
        let mut batch = self.cluster.interest_lines();
        if let Some(gws) = self.server.gateways() {
            batch.extend_from_slice(&gws.route_hello(&self.server));
        }
        if !batch.is_empty() {
            self.handle.outbound.push_proto(&batch);
        }
        self.cluster.gossip(&route);
        self.server.announce_topology();
        true
    }

    /// Another server the peer knows: dial it unless connected already.
    fn learn(&self, value: &serde_json::Value, info: &PeerInfo) {
        if info.server_id == self.server.id() || self.cluster.has_route(&info.server_id) {
            return;
        }
        let Some(target) = value
            .get("ip")
            .and_then(serde_json::Value::as_str)
            .and_then(|ip| ip.strip_prefix("nats-route://"))
            .map(|s| s.trim_end_matches('/').to_owned())
        else {
            return;
        };
        tracing::debug!("Learned of route {target} ({})", info.server_name);
        tokio::spawn(solicit(
            self.server.clone(),
            self.cluster.clone(),
            target.clone(),
            format!("nats-route://{target}"),
            false,
        ));
    }

    fn remote_sub(&self, account: String, subject: Bytes, queue: Option<Bytes>, weight: u32) {
        let Some(route) = &self.route else { return };
        // In operator mode a peer's client may use an account no client of this server
        // has used yet: load it from the resolver, or the interest would be lost and
        // this server's publishers would never reach that client.
        let Some(acc) = self.server.resolve_account(&account) else {
            tracing::debug!("route interest for unknown account {account}");
            return;
        };
        if !crate::subject::is_valid_subject(&subject) {
            self.send_err("Invalid Subscription");
            return;
        }
        let key = (account, subject.clone(), queue.clone());
        let mut subs = route.subs.lock();
        if let Some(existing) = subs.get(&key) {
            // A queue weight update: the peer's member count changed.
            existing.weight.store(weight, Ordering::Relaxed);
            return;
        }
        let sid = itoa::Buffer::new()
            .format(subs.len() + 1)
            .as_bytes()
            .to_vec();
        let sub = Arc::new(Subscription::remote(
            subject,
            queue,
            Bytes::from(sid),
            self.handle.clone(),
        ));
        sub.weight.store(weight, Ordering::Relaxed);
        if acc.sublist.insert(sub.clone()).is_ok() {
            self.server
                .remote_interest(&key.0, &key.1, key.2.as_ref(), true, true);
            subs.insert(key, sub);
        }
    }

    fn remote_unsub(&self, account: String, subject: Bytes, queue: Option<Bytes>) {
        let Some(route) = &self.route else { return };
        let key = (account, subject, queue);
        let Some(sub) = route.subs.lock().remove(&key) else {
            return;
        };
        if let Some(acc) = self.server.account(&key.0)
            && acc.sublist.remove(&sub).is_ok()
        {
            self.server
                .remote_interest(&key.0, &key.1, key.2.as_ref(), false, true);
        }
    }

    /// A message from the peer: to local clients only, and to the queue groups the peer
    /// picked this server for.
    #[allow(clippy::too_many_arguments)]
    fn routed_msg(
        &self,
        account: &str,
        subject: &[u8],
        reply: Option<&[u8]>,
        queues: &[Bytes],
        hdr: usize,
        msg: &[u8],
        to_flush: &mut Vec<Arc<Outbound>>,
    ) {
        if let Some(route) = &self.route {
            route.in_msgs.fetch_add(1, Ordering::Relaxed);
            route
                .in_bytes
                .fetch_add(msg.len() as u64, Ordering::Relaxed);
        }
        self.server.stats.in_msgs.fetch_add(1, Ordering::Relaxed);
        self.server
            .stats
            .in_bytes
            .fetch_add(msg.len() as u64, Ordering::Relaxed);
        let Some(acc) = self.server.account(account) else {
            return;
        };
        gateway::deliver_from_peer(
            &self.server,
            &acc,
            subject,
            reply,
            queues,
            hdr,
            msg,
            None,
            to_flush,
        );
    }

    fn cleanup(&mut self) {
        let Some(route) = self.route.take() else {
            return;
        };
        // Unregister before withdrawing interest: once its interest is gone (what
        // `/subsz` shows), the route is gone from `/routez` too, with no window between.
        if self.cluster.unregister(&route) {
            self.server.announce_topology();
            tracing::info!(
                "{} - rid:{} - Route connection closed: {}",
                self.peer,
                self.handle.cid,
                self.handle
                    .outbound
                    .close_reason()
                    .map_or("Client Closed", CloseReason::as_str)
            );
        }
        let subs: Vec<(RemoteKey, Arc<Subscription>)> = route.subs.lock().drain().collect();
        for ((acc, subject, queue), sub) in subs {
            if let Some(a) = self.server.account(&acc)
                && a.sublist.remove(&sub).is_ok()
            {
                self.server
                    .remote_interest(&acc, &subject, queue.as_ref(), false, true);
            }
        }
    }
}
