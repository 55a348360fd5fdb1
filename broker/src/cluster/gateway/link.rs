//! One gateway connection: the handshake in both directions, the read loop, and the
//! sending of messages on outbound links.
//!
//! Dialling side (outbound): waits for the remote's INFO, checks it is a gateway of the
//! expected cluster, answers with CONNECT and its own INFO, then receives interest.
//! Accepting side (inbound): sends INFO at once, expects CONNECT then INFO, then sends
//! this cluster's interest and receives messages.

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::Bytes;
use parking_lot::Mutex;
use serde::Deserialize;
use tokio::net::TcpStream;

use super::interest::PeerInterest;
use super::{Gateways, HASH_LEN, hash};
use crate::cluster::link::{self as link_loop, LinkHandler};
use crate::cluster::proto::{self, RouteOp};
use crate::protocol::encode;
use crate::server::Server;
use crate::server::client::{ClientHandle, ConnKind};
use crate::server::outbound::{CloseReason, Outbound};

/// How long a dial may take.
const DIAL_TIMEOUT: Duration = Duration::from_secs(1);
/// Delay between rounds of attempts at a remote cluster.
const RETRY: Duration = Duration::from_secs(1);

/// A registered gateway connection.
pub struct Link {
    pub handle: Arc<ClientHandle>,
    /// The remote cluster's gateway name.
    pub name: String,
    pub remote_id: String,
    pub peer: SocketAddr,
    /// Messages go out on this link (we dialled it).
    pub outbound: bool,
    pub start: SystemTime,
    pub in_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
    /// What the remote cluster wants (outbound links).
    pub interest: PeerInterest,
    /// Hash of the remote gateway name, to route answers to mapped replies.
    pub(super) cluster_hash: String,
    headers: bool,
    /// The remote cluster's gateway URLs, as its INFOs list them.
    urls: Mutex<Vec<String>>,
}

impl Link {
    pub fn urls(&self) -> Vec<String> {
        self.urls.lock().clone()
    }

    /// Queues `RMSG`/`HMSG` on this link.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn send(
        &self,
        account: &str,
        subject: &[u8],
        reply: Option<&[u8]>,
        queues: &[Bytes],
        hdr: usize,
        msg: &[u8],
        to_flush: &mut Vec<Arc<Outbound>>,
    ) {
        let out = proto::Outgoing {
            account,
            subject,
            reply,
            queues,
            hdr,
            msg,
        };
        let len = subject.len()
            + msg.len()
            + account.len()
            + reply.map_or(0, <[u8]>::len)
            + queues.iter().map(|q| q.len() + 1).sum::<usize>()
            + 48;
        let push = self.handle.outbound.push_msg(len, msg.len(), |buf| {
            proto::encode_msg(buf, &out, self.headers);
        });
        if push.needs_flush() {
            to_flush.push(self.handle.outbound.clone());
        }
    }
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PeerInfo {
    server_id: String,
    gateway: Option<String>,
    gateway_urls: Vec<String>,
    gateway_url: String,
    gateway_cmd: u8,
    gateway_cmd_payload: Option<String>,
    gateway_iom: bool,
    headers: bool,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct PeerConnect {
    gateway: Option<String>,
    user: String,
    pass: String,
}

/// Keeps an outbound connection to the remote cluster `name`: each round tries its URLs
/// in random order. Configured remotes are retried forever; learnt ones
/// `connect_retries` times, then forgotten.
pub async fn solicit(server: Arc<Server>, gws: Arc<Gateways>, name: String) {
    let mut shutdown = std::pin::pin!(server.wait_shutdown());
    let mut failures = 0i64;
    while let Some((urls, configured)) = gws.urls(&name) {
        for url in urls {
            let dial = tokio::time::timeout(DIAL_TIMEOUT, TcpStream::connect(&url));
            let attempt = tokio::select! {
                r = dial => r,
                () = &mut shutdown => {
                    gws.done_dialling(&name);
                    return;
                }
            };
            match attempt {
                Ok(Ok(stream)) => {
                    let _ = stream.set_nodelay(true);
                    let peer = stream
                        .peer_addr()
                        .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
                    tracing::debug!("Creating outbound gateway connection to {name:?} ({url})");
                    if run(
                        server.clone(),
                        gws.clone(),
                        stream,
                        peer,
                        Some((name.clone(), &url)),
                    )
                    .await
                    {
                        failures = 0;
                    }
                    break;
                }
                Ok(Err(e)) => tracing::debug!("Error connecting to gateway {name:?} ({url}): {e}"),
                Err(_) => tracing::debug!("Error connecting to gateway {name:?} ({url}): timeout"),
            }
        }
        failures += 1;
        let (opts, _) = server.options();
        if !configured && failures > opts.config.gateway.connect_retries.max(0) {
            tracing::debug!("giving up on implicit gateway {name:?}");
            gws.forget(&name);
            break;
        }
        let jitter = Duration::from_millis(fastrand::u64(..100));
        tokio::select! {
            () = tokio::time::sleep(RETRY + jitter) => {}
            () = &mut shutdown => break,
        }
    }
    gws.done_dialling(&name);
}

/// Runs one gateway connection until it closes; `dialled` names the remote cluster of
/// an outbound connection. True if the link was established.
pub async fn run(
    server: Arc<Server>,
    gws: Arc<Gateways>,
    stream: TcpStream,
    peer: SocketAddr,
    dialled: Option<(String, &str)>,
) -> bool {
    let (dialled, url) = match dialled {
        Some((name, url)) => (Some(name), Some(url)),
        None => (None, None),
    };
    let (opts, _) = server.options();
    let local_ip = stream.local_addr().ok().map(|a| a.ip());
    let Some((rd, outbound)) = link_loop::open(
        stream,
        peer,
        opts.gateway_tls.as_ref(),
        url,
        opts.max_pending,
    )
    .await
    else {
        return false;
    };
    let handle = Arc::new(ClientHandle::with_kind(
        server.next_internal_cid(),
        outbound.clone(),
        ConnKind::Gateway,
    ));
    let writer = tokio::spawn(outbound.clone().run_writer(opts.write_deadline));
    if dialled.is_none() {
        let mut hello = Vec::new();
        encode::info(&mut hello, &gws.info_json(&server, local_ip));
        outbound.push_proto(&hello);
    }
    let mut conn = Conn {
        server: server.clone(),
        gws: gws.clone(),
        handle,
        peer,
        dialled,
        local_ip,
        connected: false,
        link: None,
    };
    let pings = link_loop::Pings::new(Duration::ZERO, 0);
    link_loop::serve(&server, &outbound, rd, peer, pings, &mut conn).await;
    let _ = writer.await;
    let established = conn.link.is_some();
    conn.cleanup();
    established
}

struct Conn {
    server: Arc<Server>,
    gws: Arc<Gateways>,
    handle: Arc<ClientHandle>,
    peer: SocketAddr,
    dialled: Option<String>,
    /// The address of this end of the connection.
    local_ip: Option<IpAddr>,
    /// CONNECT received (inbound).
    connected: bool,
    link: Option<Arc<Link>>,
}

impl LinkHandler for Conn {
    fn established(&self) -> bool {
        self.link.is_some()
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
        tracing::error!(peer = %self.peer, "gateway: {text}");
        link_loop::reject(&self.handle.outbound, text, reason);
        false
    }

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
                ..
            } => return self.interest(|i| i.subscribe(&account, subject, queue)),
            RouteOp::Unsub {
                account,
                subject,
                queue,
            } => return self.interest(|i| i.unsubscribe(&account, subject, queue)),
            RouteOp::AccountSub(account) => return self.interest(|i| i.account(&account, true)),
            RouteOp::AccountUnsub(account) => {
                return self.interest(|i| i.account(&account, false));
            }
            RouteOp::Msg {
                account,
                subject,
                reply,
                queues,
                hdr,
                msg,
            } => self.message(
                &account,
                &subject,
                reply.as_deref(),
                &queues,
                hdr,
                &msg,
                to_flush,
            ),
        }
        true
    }

    /// Interest arrives only on outbound links (from the cluster we send to).
    fn interest(&self, f: impl FnOnce(&PeerInterest)) -> bool {
        match &self.link {
            Some(link) if link.outbound => {
                f(&link.interest);
                true
            }
            _ => self.reject("Unknown Protocol Operation", CloseReason::ProtocolViolation),
        }
    }

    fn on_connect(&mut self, json: &[u8]) -> bool {
        if self.dialled.is_some() || self.connected {
            return self.reject("Unknown Protocol Operation", CloseReason::ProtocolViolation);
        }
        let Ok(c) = serde_json::from_slice::<PeerConnect>(json) else {
            return self.reject("Unknown Protocol Operation", CloseReason::ProtocolViolation);
        };
        let Some(remote) = c.gateway.filter(|g| !g.is_empty()) else {
            return self.reject(
                "attempted to connect to gateway port",
                CloseReason::ProtocolViolation,
            );
        };
        let (opts, _) = self.server.options();
        let g = &opts.config.gateway;
        if !g.username.is_empty()
            && (c.user != g.username || !crate::auth::password_matches(&g.password, &c.pass))
        {
            return self.reject(
                "Authorization Violation",
                CloseReason::AuthenticationViolation,
            );
        }
        if g.reject_unknown && !self.gws.is_configured(&remote) {
            return self.reject(
                &format!("Connection to gateway {:?} rejected", self.gws.name),
                CloseReason::ProtocolViolation,
            );
        }
        self.connected = true;
        true
    }

    fn on_info(&mut self, json: &[u8]) -> bool {
        let Ok(info) = serde_json::from_slice::<PeerInfo>(json) else {
            return self.reject("Unknown Protocol Operation", CloseReason::ProtocolViolation);
        };
        if let Some(link) = &self.link {
            self.on_later_info(&link.clone(), info);
            return true;
        }
        let Some(remote) = info.gateway.clone().filter(|g| !g.is_empty()) else {
            let want = self.dialled.as_deref().unwrap_or_default();
            tracing::error!(peer = %self.peer, "Attempt to connect to gateway {want:?} using wrong port");
            self.handle.outbound.close(CloseReason::ProtocolViolation);
            return false;
        };
        if info.server_id == self.server.id() || info.server_id.is_empty() {
            self.handle.outbound.close(CloseReason::ClientClosed);
            return false;
        }
        match self.dialled.clone() {
            Some(want) => {
                if remote != want {
                    return self.reject(
                        &format!(
                            "Connection from {:?} rejected, wanted to connect to {want:?}, this is {remote:?}",
                            self.gws.name
                        ),
                        CloseReason::ProtocolViolation,
                    );
                }
                self.established_outbound(remote, info)
            }
            None if !self.connected => self.reject(
                "Authorization Violation",
                CloseReason::AuthenticationViolation,
            ),
            None => self.established_inbound(remote, info),
        }
    }

    fn new_link(&self, remote: String, info: &PeerInfo, outbound: bool) -> Arc<Link> {
        let mut urls = info.gateway_urls.clone();
        if !info.gateway_url.is_empty() && !urls.contains(&info.gateway_url) {
            urls.push(info.gateway_url.clone());
        }
        Arc::new(Link {
            handle: self.handle.clone(),
            cluster_hash: hash(&remote, HASH_LEN),
            name: remote,
            remote_id: info.server_id.clone(),
            peer: self.peer,
            outbound,
            start: SystemTime::now(),
            in_msgs: AtomicU64::new(0),
            in_bytes: AtomicU64::new(0),
            interest: PeerInterest::new(info.gateway_iom),
            headers: info.headers,
            urls: Mutex::new(urls),
        })
    }

    fn established_outbound(&mut self, remote: String, info: PeerInfo) -> bool {
        let link = self.new_link(remote, &info, true);
        if !self.gws.register_outbound(&link) {
            tracing::debug!("outbound gateway to {:?} exists already", link.name);
            self.handle.outbound.close(CloseReason::ClientClosed);
            return false;
        }
        let mut connect = serde_json::json!({
            "echo": false, "verbose": false, "pedantic": false, "tls_required": false,
            "headers": false, "name": self.server.id(), "cluster": "",
            "gateway": self.gws.name,
        });
        if let Some((user, pass)) = self.gws.credentials(&self.server, &link.name) {
            connect["user"] = user.into();
            connect["pass"] = pass.into();
        }
        let mut hello = Vec::new();
        hello.extend_from_slice(b"CONNECT ");
        hello.extend_from_slice(connect.to_string().as_bytes());
        hello.extend_from_slice(b"\r\n");
        encode::info(&mut hello, &self.gws.info_json(&self.server, self.local_ip));
        self.handle.outbound.push_proto(&hello);
        tracing::info!(
            "{} - gid:{} - Outbound gateway connection to {:?} ({}) registered",
            self.peer,
            self.handle.cid,
            link.name,
            link.remote_id
        );
        self.gws
            .announce_to_routes(&self.server, &link.name, &link.urls());
        self.link = Some(link);
        true
    }

    fn established_inbound(&mut self, remote: String, info: PeerInfo) -> bool {
        let link = self.new_link(remote, &info, false);
        self.gws.register_inbound(&self.server, &link);
        tracing::info!(
            "{} - gid:{} - Inbound gateway connection from {:?} ({}) registered",
            self.peer,
            self.handle.cid,
            link.name,
            link.remote_id
        );
        self.gws.gossip_to(&self.server, &link);
        let urls = link.urls();
        self.gws.learn(&self.server, &link.name, &urls);
        self.link = Some(link);
        true
    }

    /// An INFO on an established link: gateway commands and URL updates.
    fn on_later_info(&self, link: &Arc<Link>, info: PeerInfo) {
        use base64::Engine as _;
        let account = || {
            info.gateway_cmd_payload
                .as_deref()
                .and_then(|p| base64::engine::general_purpose::STANDARD.decode(p).ok())
                .map(|b| String::from_utf8_lossy(&b).into_owned())
        };
        match info.gateway_cmd {
            1 => {
                if let Some(name) = &info.gateway {
                    self.gws.learn(&self.server, name, &info.gateway_urls);
                }
            }
            2 | 3 if link.outbound => {
                if let Some(acc) = account() {
                    link.interest.switch(&acc, info.gateway_cmd == 3);
                }
            }
            0 => {
                let mut urls = link.urls.lock();
                for u in info.gateway_urls.iter().chain([&info.gateway_url]) {
                    if !u.is_empty() && !urls.contains(u) {
                        urls.push(u.clone());
                    }
                }
                let all = urls.clone();
                drop(urls);
                self.gws.learn(&self.server, &link.name, &all);
            }
            _ => {}
        }
    }

    /// A message from a remote cluster, arriving on an inbound link.
    #[allow(clippy::too_many_arguments)]
    fn message(
        &self,
        account: &str,
        subject: &[u8],
        reply: Option<&[u8]>,
        queues: &[Bytes],
        hdr: usize,
        msg: &[u8],
        to_flush: &mut Vec<Arc<Outbound>>,
    ) {
        let Some(link) = &self.link else { return };
        if link.outbound {
            tracing::debug!(peer = %self.peer, "message on an outbound gateway, dropped");
            return;
        }
        link.in_msgs.fetch_add(1, Ordering::Relaxed);
        link.in_bytes.fetch_add(msg.len() as u64, Ordering::Relaxed);
        self.server.stats.in_msgs.fetch_add(1, Ordering::Relaxed);
        self.server
            .stats
            .in_bytes
            .fetch_add(msg.len() as u64, Ordering::Relaxed);
        let Some(acc) = self.server.account(account) else {
            tracing::debug!("gateway message for unknown account {account}");
            return;
        };
        super::deliver_from_peer(
            &self.server,
            &acc,
            subject,
            reply,
            queues,
            hdr,
            msg,
            Some(&link.name),
            to_flush,
        );
    }

    fn cleanup(&mut self) {
        let Some(link) = self.link.take() else {
            return;
        };
        self.gws.unregister(&link);
        tracing::info!(
            "{} - gid:{} - Gateway connection closed: {}",
            self.peer,
            self.handle.cid,
            self.handle
                .outbound
                .close_reason()
                .map_or("Client Closed", CloseReason::as_str)
        );
    }
}
