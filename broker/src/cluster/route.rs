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

use bytes::{Buf, Bytes, BytesMut};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::Cluster;
use super::proto::{self, RouteOp, RouteParseError};
use crate::protocol::encode;
use crate::server::client::{ClientHandle, ConnKind, Subscription};
use crate::server::outbound::{CloseReason, Outbound};
use crate::server::{Server, deliver_one};

/// How long a dial may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Delay between attempts at a configured route.
const RETRY: Duration = Duration::from_secs(1);

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
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PeerConnect {
    cluster: String,
    lang: Option<String>,
    gateway: Option<String>,
}

/// Keeps dialling `target` (a configured route, or one learned by gossip) and runs the
/// route whenever it connects. Configured routes retry forever; learned ones once.
pub async fn solicit(
    server: Arc<Server>,
    cluster: Arc<Cluster>,
    target: String,
    url: String,
    configured: bool,
) {
    let mut shutdown = std::pin::pin!(server.wait_shutdown());
    loop {
        if cluster.is_self_url(&target) {
            return;
        }
        let dial = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(&target));
        let attempt = tokio::select! {
            r = dial => r,
            () = &mut shutdown => return,
        };
        match attempt {
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
                .await;
            }
            Ok(Err(e)) => tracing::debug!("Error trying to connect to route {url}: {e}"),
            Err(_) => tracing::debug!("Error trying to connect to route {url}: timeout"),
        }
        if !configured || cluster.is_self_url(&target) {
            return;
        }
        let jitter = Duration::from_millis(fastrand::u64(..100));
        tokio::select! {
            () = tokio::time::sleep(RETRY + jitter) => {}
            () = &mut shutdown => return,
        }
    }
}

/// Runs one route connection until it closes. `solicited` is the dialled `host:port`
/// and, for configured routes, the URL as configured.
pub async fn run(
    server: Arc<Server>,
    cluster: Arc<Cluster>,
    stream: TcpStream,
    peer: SocketAddr,
    solicited: Option<(String, Option<String>)>,
) {
    let (mut rd, wr) = stream.into_split();
    let (opts, _) = server.options();
    let outbound = Arc::new(Outbound::new(wr, opts.max_pending));
    let handle = Arc::new(ClientHandle::for_route(
        server.next_internal_cid(),
        outbound.clone(),
    ));
    let writer = tokio::spawn(outbound.clone().run_writer(opts.write_deadline));
    let mut hello = Vec::new();
    if solicited.is_some() {
        let connect = serde_json::json!({
            "echo": true, "verbose": false, "pedantic": false, "tls_required": false,
            "headers": true, "name": server.id(), "cluster": cluster.name,
        });
        hello.extend_from_slice(b"CONNECT ");
        hello.extend_from_slice(connect.to_string().as_bytes());
        hello.extend_from_slice(b"\r\n");
    }
    encode::info(&mut hello, &cluster.info_json(&server));
    outbound.push_proto(&hello);

    let mut conn = Conn {
        server: server.clone(),
        cluster: cluster.clone(),
        handle,
        peer,
        solicited,
        connected: false,
        route: None,
    };
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let auth_deadline = tokio::time::Instant::now() + Duration::from_secs(2);
    let mut ping = tokio::time::interval_at(
        tokio::time::Instant::now() + Duration::from_secs(1),
        Duration::from_secs(30),
    );
    let mut pings_out = 0u32;
    let mut shutdown = std::pin::pin!(server.wait_shutdown());
    'read: loop {
        tokio::select! {
            () = outbound.closed() => break,
            () = &mut shutdown => {
                outbound.close(CloseReason::ServerShutdown);
                break;
            }
            () = tokio::time::sleep_until(auth_deadline), if conn.route.is_none() => {
                tracing::error!(%peer, "route handshake timeout");
                outbound.close(CloseReason::AuthenticationTimeout);
                break;
            }
            _ = ping.tick() => {
                if pings_out >= 2 {
                    let mut v = Vec::new();
                    encode::err(&mut v, "Stale Connection");
                    outbound.push_proto(&v);
                    outbound.close(CloseReason::StaleConnection);
                    break;
                }
                pings_out += 1;
                outbound.push_proto(encode::PING);
            }
            res = rd.read_buf(&mut buf) => {
                match res {
                    Ok(0) | Err(_) => {
                        outbound.close(CloseReason::ClientClosed);
                        break;
                    }
                    Ok(_) => {}
                }
                loop {
                    match proto::parse(&buf) {
                        Ok(Some((op, used))) => {
                            if matches!(op, RouteOp::Pong) {
                                pings_out = 0;
                            }
                            let keep = conn.handle(op);
                            buf.advance(used);
                            if !keep {
                                break 'read;
                            }
                        }
                        Ok(None) => break,
                        Err(e) => {
                            conn.fail(&e);
                            break 'read;
                        }
                    }
                }
                if buf.capacity() - buf.len() < 4096 {
                    buf.reserve(64 * 1024);
                }
            }
        }
    }
    let _ = writer.await;
    conn.cleanup();
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
}

impl Conn {
    fn send_err(&self, text: &str) {
        let mut v = Vec::new();
        encode::err(&mut v, text);
        self.handle.outbound.push_proto(&v);
    }

    fn fail(&self, e: &RouteParseError) {
        tracing::error!(peer = %self.peer, "route protocol error: {e}");
        match e {
            RouteParseError::Malformed(_) => {}
            other => self.send_err(&other.to_string()),
        }
        self.handle.outbound.close(CloseReason::ParseError);
    }

    /// Handles one operation; false closes the route.
    fn handle(&mut self, op: RouteOp) -> bool {
        match op {
            RouteOp::Ping => self.handle.outbound.push_proto(encode::PONG),
            RouteOp::Pong | RouteOp::Ok => {}
            RouteOp::Err(e) => {
                tracing::warn!(peer = %self.peer, "route error from peer: {e}");
            }
            RouteOp::Connect(json) => return self.on_connect(&json),
            RouteOp::Info(json) => return self.on_info(&json),
            _ if self.route.is_none() => {
                self.send_err("Authorization Violation");
                self.handle
                    .outbound
                    .close(CloseReason::AuthenticationViolation);
                return false;
            }
            RouteOp::Sub {
                account,
                subject,
                queue,
            } => self.remote_sub(account, subject, queue),
            RouteOp::Unsub {
                account,
                subject,
                queue,
            } => self.remote_unsub(account, subject, queue),
            RouteOp::Msg {
                account,
                subject,
                reply,
                queues,
                hdr,
                msg,
            } => self.routed_msg(&account, &subject, reply.as_deref(), &queues, hdr, &msg),
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
            self.send_err("Authorization Violation");
            self.handle
                .outbound
                .close(CloseReason::AuthenticationViolation);
            return false;
        }
        if c.gateway.is_some() {
            self.send_err("Unknown Protocol Operation");
            self.handle.outbound.close(CloseReason::ProtocolViolation);
            return false;
        }
        if !c.cluster.is_empty() && c.cluster != self.cluster.name {
            self.send_err(&format!(
                "Rejecting connection, cluster name {:?} does not match {:?}",
                c.cluster, self.cluster.name
            ));
            self.handle.outbound.close(CloseReason::ProtocolViolation);
            return false;
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
            // On an established route: gossip about another server, or an update.
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
            self.send_err("Authorization Violation");
            self.handle
                .outbound
                .close(CloseReason::AuthenticationViolation);
            return false;
        }
        if !info.cluster.is_empty() && info.cluster != self.cluster.name {
            self.send_err(&format!(
                "Rejecting connection, cluster name {:?} does not match {:?}",
                info.cluster, self.cluster.name
            ));
            self.handle.outbound.close(CloseReason::ProtocolViolation);
            return false;
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
                self.handle.outbound.close(CloseReason::ClientClosed);
                return false;
            }
            Err(replaced) => {
                tracing::debug!(remote = %route.remote_id, "duplicate route, replacing");
                replaced.handle.outbound.close(CloseReason::ClientClosed);
            }
        }
        self.handle.headers.store(info.headers, Ordering::Release);
        tracing::info!(
            "{} - rid:{} - Route connection created",
            self.peer,
            self.handle.cid
        );
        self.route = Some(route.clone());
        let batch = self.cluster.interest_lines();
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

    fn remote_sub(&self, account: String, subject: Bytes, queue: Option<Bytes>) {
        let Some(route) = &self.route else { return };
        let Some(acc) = self.server.account(&account) else {
            tracing::debug!("route interest for unknown account {account}");
            return;
        };
        if !crate::subject::is_valid_subject(&subject) {
            self.send_err("Invalid Subscription");
            return;
        }
        let key = (account, subject.clone(), queue.clone());
        let mut subs = route.subs.lock();
        if subs.contains_key(&key) {
            // A queue weight update: one remote member stands for the group.
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
        if acc.sublist.insert(sub.clone()).is_ok() {
            if let Some(leafnodes) = self.server.leafnodes() {
                leafnodes.route_sub_added(&key.0, &key.1, key.2.as_ref());
            }
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
            && let Some(leafnodes) = self.server.leafnodes()
        {
            leafnodes.route_sub_removed(&key.0, &key.1, key.2.as_ref());
        }
    }

    /// A message from the peer: to local clients only, and to the queue groups the peer
    /// picked this server for.
    fn routed_msg(
        &self,
        account: &str,
        subject: &[u8],
        reply: Option<&[u8]>,
        queues: &[Bytes],
        hdr: usize,
        msg: &[u8],
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
        let result = acc.sublist.match_subject(subject);
        let mut size = itoa::Buffer::new();
        let size = size.format(msg.len()).as_bytes().to_vec();
        let mut hdr_buf = itoa::Buffer::new();
        let hdr_arg = hdr_buf.format(hdr).as_bytes().to_vec();
        let delivery = encode::Delivery {
            subject,
            sid: &[],
            reply,
            hdr,
            msg,
            size_arg: &size,
            hdr_arg: &hdr_arg,
        };
        let local = |s: &&Arc<Subscription>| s.client.kind == ConnKind::Client;
        let mut sent = 0u64;
        for sub in result.psubs.iter().filter(local) {
            sent += u64::from(deliver_one(&acc, sub, &delivery));
        }
        if let Some(leafnodes) = self.server.leafnodes() {
            sent += leafnodes.from_route(&result, &delivery);
        }
        for group in &result.qsubs {
            let Some(name) = group.first().and_then(|s| s.queue.as_ref()) else {
                continue;
            };
            if !queues.iter().any(|q| q == name) {
                continue;
            }
            let mut members: Vec<&Arc<Subscription>> = group.iter().filter(local).collect();
            if members.is_empty()
                && let Some(leafnodes) = self.server.leafnodes()
            {
                // No client member left: one behind a leaf this server accepted.
                members = leafnodes.routed_queue_members(group, subject);
            }
            if members.is_empty() {
                continue;
            }
            let start = fastrand::usize(..members.len());
            for i in 0..members.len() {
                if deliver_one(&acc, members[(start + i) % members.len()], &delivery) {
                    sent += 1;
                    break;
                }
            }
        }
        self.server
            .stats
            .out_msgs
            .fetch_add(sent, Ordering::Relaxed);
        self.server
            .stats
            .out_bytes
            .fetch_add(sent * msg.len() as u64, Ordering::Relaxed);
    }

    fn cleanup(&mut self) {
        let Some(route) = self.route.take() else {
            return;
        };
        let subs: Vec<(RemoteKey, Arc<Subscription>)> = route.subs.lock().drain().collect();
        for ((acc, subject, queue), sub) in subs {
            if let Some(acc) = self.server.account(&acc)
                && acc.sublist.remove(&sub).is_ok()
                && let Some(leafnodes) = self.server.leafnodes()
            {
                leafnodes.route_sub_removed(acc.name(), &subject, queue.as_ref());
            }
        }
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
    }
}
