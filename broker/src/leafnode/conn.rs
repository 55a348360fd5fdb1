//! One leaf connection, accepted (this server is the hub) or dialled for a remote (this
//! server is the spoke): the handshake, the read loop, the other side's interest as
//! subscriptions in the bound account, and delivery of the messages it sends.
//!
//! Handshake (§3.2 of docs/design/inter-server-protocols.md):
//!
//! ```text
//! hub                                   spoke
//! INFO {client_id, nonce, leafnode_urls,
//!       compression:"off", …}     ──▶
//!                                 ◀──   CONNECT {user|jwt+sig|nkey+sig, remote_account,
//!                                                compress_mode:"off", …}
//! INFO {connect_info, remote_account}
//! LS+ $LDS.<hub's>, LS+ … (batch)  ──▶
//!                                 ◀──   LS+ $LDS.<spoke's>, LS+ … (batch)
//! ```

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use serde::{Deserialize, Serialize};
use tokio::io::AsyncReadExt;
use tokio::net::TcpStream;

use super::auth::{self, Presented};
use super::proto::{self, LeafOp, LeafParseError};
use super::{Leaf, LeafNodes, Targets};
use crate::protocol::encode;
use crate::server::client::{ClientHandle, ConnKind, Subscription};
use crate::server::outbound::{CloseReason, Outbound};
use crate::server::{Server, deliver_deferred};

/// Default port of `nats-leaf://` URLs.
const DEFAULT_PORT: u16 = 7422;
/// How long a spoke waits for the hub's first INFO, and a dial, by default.
const FIRST_INFO_TIMEOUT: Duration = Duration::from_secs(1);
const DIAL_TIMEOUT: Duration = Duration::from_secs(2);
/// How long a spoke waits for the hub's INFO answering its CONNECT.
const CONNECT_INFO_TIMEOUT: Duration = Duration::from_secs(2);
/// Default `reconnect_delay`.
const RECONNECT_DELAY: Duration = Duration::from_secs(1);
/// How long a spoke waits after a loop or a same-cluster-name refusal.
const LOOP_DELAY: Duration = Duration::from_secs(30);
/// How long a spoke waits after a hub refused its version.
const MIN_VERSION_DELAY: Duration = Duration::from_secs(5);
/// Default time a hub gives a spoke to send CONNECT.
const AUTH_TIMEOUT: Duration = Duration::from_secs(2);

/// Errors that end a leaf connection; the text is what nats-server sends as `-ERR`.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum LeafError {
    #[error("attempted to connect to leaf node port")]
    ClientOnLeafPort,
    #[error("Authorization Violation")]
    AuthorizationViolation,
    #[error("Rejecting connection from gateway {0:?} on the leafnode port")]
    Gateway(String),
    #[error("cluster name cannot contain spaces")]
    ClusterNameSpaces,
    #[error("connection rejected since minimum version required is {0:?}")]
    MinVersion(String),
    #[error("remote leafnode has same cluster name")]
    SameClusterName,
    #[error("Loop detected for leafnode account={0:?}. Delaying attempt to reconnect for 30s")]
    Loop(String),
    /// Logged only: a spoke reached a port that is not a leaf node port.
    #[error("attempted to connect to wrong port")]
    WrongPort,
}

/// The remote a spoke connection was dialled for.
pub(super) struct Solicited {
    remote: natrix_config::options::RemoteLeafOpts,
    url: natrix_config::options::UrlOpt,
}

impl Solicited {
    /// The remote's TLS settings when it asks for TLS (a `tls {}` block or a `tls://` URL).
    fn tls(&self) -> Option<natrix_config::options::TlsConfig> {
        self.remote.tls.clone().or_else(|| {
            self.url
                .scheme
                .eq_ignore_ascii_case("tls")
                .then(natrix_config::options::TlsConfig::default)
        })
    }
}

impl Solicited {
    /// A `ws://` or `wss://` remote: the connection is a WebSocket to the hub's
    /// WebSocket listener (all of a remote's URLs share a scheme kind, as nats-server
    /// checks).
    fn is_websocket(&self) -> bool {
        self.url.scheme.eq_ignore_ascii_case("ws") || self.url.scheme.eq_ignore_ascii_case("wss")
    }
}

/// Runs a spoke connection to a WebSocket remote: TLS first for `wss://` (or a remote
/// with `tls {}`), then the upgrade (`GET …/leafnode`), then the leaf protocol in
/// frames this side masks, as the client of the WebSocket (nats-server's
/// `leafNodeSolicitWSConnection`). The hub never asks for TLS after its INFO here.
async fn dial_websocket(
    server: Arc<Server>,
    leafnodes: Arc<LeafNodes>,
    mut stream: TcpStream,
    peer: SocketAddr,
    s: Solicited,
    cid: u64,
    nonce: String,
) -> Outcome {
    use crate::websocket::dial::Offer;
    use tokio::io::AsyncWriteExt as _;
    let (opts, _) = server.options();
    let wss = s.url.scheme.eq_ignore_ascii_case("wss");
    let tls = s
        .remote
        .tls
        .clone()
        .or_else(|| wss.then(natrix_config::options::TlsConfig::default));
    let offer = Offer::new(s.remote.ws_compression, s.remote.ws_no_masking);
    let host = format!(
        "{}:{}",
        s.url.host,
        s.url.port.unwrap_or(if wss { 443 } else { 80 })
    );
    let request = offer.leaf_request(&host, &s.url.path);
    let within = if s.remote.first_info_timeout.is_zero() {
        FIRST_INFO_TIMEOUT
    } else {
        s.remote.first_info_timeout
    };
    let fail = |e: &dyn std::fmt::Display| {
        tracing::error!("{peer} - lid:{cid} - Error soliciting websocket connection: {e}");
        Outcome::Retry
    };
    let max_frame = crate::websocket::ws_max_frame(opts.max_payload);
    let Some(tls) = tls else {
        if let Err(e) = stream.write_all(&request).await {
            return fail(&e);
        }
        let (agreed, rest) =
            match tokio::time::timeout(within, offer.read_answer(&mut stream)).await {
                Ok(Ok(a)) => a,
                Ok(Err(e)) => return fail(&e),
                Err(_) => return fail(&"timeout waiting for the websocket answer"),
            };
        let (rd, wr) = stream.into_split();
        let outbound = Arc::new(Outbound::websocket_client(wr, opts.max_pending, None));
        let reader = ws_reader(rd, &outbound, max_frame, agreed, &rest);
        return drive(
            server,
            leafnodes,
            reader,
            BytesMut::new(),
            outbound,
            cid,
            nonce,
            peer,
            Some(s),
        )
        .await;
    };
    let config = match crate::tls::client_tls(&tls) {
        Ok(c) => c,
        Err(e) => {
            tracing::error!("Leafnode remote TLS configuration error: {e}");
            return Outcome::Retry;
        }
    };
    let Some(session) = tls_handshake(&config, &mut stream, &s.url.host, &tls, peer, cid).await
    else {
        return Outcome::Retry;
    };
    let sealed = match crate::tls::seal(&session, &request) {
        Ok(b) => b,
        Err(e) => return fail(&e),
    };
    if let Err(e) = stream.write_all(&sealed).await {
        return fail(&e);
    }
    let (rd, wr) = stream.into_split();
    let outbound = Arc::new(Outbound::websocket_client(
        wr,
        opts.max_pending,
        Some(session.clone()),
    ));
    let mut rd = crate::tls::TlsReader::new(rd, session, outbound.clone());
    let (agreed, rest) = match tokio::time::timeout(within, offer.read_answer(&mut rd)).await {
        Ok(Ok(a)) => a,
        Ok(Err(e)) => return fail(&e),
        Err(_) => return fail(&"timeout waiting for the websocket answer"),
    };
    let reader = ws_reader(rd, &outbound, max_frame, agreed, &rest);
    drive(
        server,
        leafnodes,
        reader,
        BytesMut::new(),
        outbound,
        cid,
        nonce,
        peer,
        Some(s),
    )
    .await
}

/// The frames of a dialled WebSocket connection: the server's are unmasked, this side's
/// control frames are masked unless agreed otherwise, compression as agreed.
/// The TLS handshake of a remote (plain leaf or `wss://`), within the remote's
/// `tls { timeout }` (2 s when unset); a failure is logged and the dial retried.
async fn tls_handshake(
    config: &Arc<rustls::ClientConfig>,
    stream: &mut TcpStream,
    host: &str,
    tls: &natrix_config::options::TlsConfig,
    peer: SocketAddr,
    cid: u64,
) -> Option<crate::tls::Session> {
    let timeout = tls
        .timeout
        .filter(|t| !t.is_zero())
        .unwrap_or(Duration::from_secs(2));
    match crate::tls::connect(config, stream, host, timeout).await {
        Ok(session) => Some(session),
        Err(e) => {
            tracing::error!("{peer} - lid:{cid} - TLS handshake error: {e}");
            None
        }
    }
}

fn ws_reader<R>(
    rd: R,
    outbound: &Arc<Outbound>,
    max_frame: u64,
    agreed: crate::websocket::dial::Agreed,
    buffered: &[u8],
) -> crate::websocket::WsReader<R> {
    let mut reader =
        crate::websocket::WsReader::new(rd, outbound.clone(), max_frame).with_buffered(buffered);
    reader.decoder.require_mask = false;
    reader.decoder.deflate = agreed.deflate;
    reader.mask_control = agreed.mask;
    if agreed.deflate {
        outbound.set_ws_deflate();
    }
    if !agreed.mask {
        outbound.set_ws_unmasked();
    }
    reader
}

/// Runs a leaf connection accepted on the WebSocket listener (path `/leafnode`): the
/// hub's INFO in the first frame, then the read loop on the spoke's frames. The
/// listener's writer task drains `outbound`.
pub(super) async fn accept_websocket<R: tokio::io::AsyncRead + Unpin>(
    server: Arc<Server>,
    leafnodes: Arc<LeafNodes>,
    rd: R,
    outbound: Arc<Outbound>,
    peer: SocketAddr,
) {
    let cid = server.next_internal_cid();
    let nonce = crate::server::new_nonce();
    let json = hub_info_json(&server, &leafnodes, cid, &nonce, None);
    let mut info = Vec::with_capacity(json.len() + 8);
    encode::info(&mut info, &json);
    outbound.push_proto(&info);
    let _ = drive_with_writer(
        server,
        leafnodes,
        rd,
        BytesMut::new(),
        outbound,
        cid,
        nonce,
        peer,
        None,
        None,
        true,
    )
    .await;
}

/// Reads the hub's INFO line, which it sends in clear before the TLS handshake.
async fn read_clear_info(stream: &mut TcpStream, within: Duration) -> Result<BytesMut, String> {
    let mut buf = BytesMut::with_capacity(4096);
    let read = async {
        loop {
            if memchr::memmem::find(&buf, b"\r\n").is_some() {
                return Ok(());
            }
            if buf.len() > proto::MAX_CONTROL_LINE {
                return Err("INFO too long".to_owned());
            }
            match stream.read_buf(&mut buf).await {
                Ok(0) => return Err("connection closed".to_owned()),
                Ok(_) => {}
                Err(e) => return Err(e.to_string()),
            }
        }
    };
    match tokio::time::timeout(within, read).await {
        Ok(Ok(())) => Ok(buf),
        Ok(Err(e)) => Err(e),
        Err(_) => Err("timeout waiting for INFO".to_owned()),
    }
}

/// What a spoke does after its connection ends.
enum Outcome {
    /// Redial after `reconnect_delay`.
    Retry,
    /// Redial after this long (loop detected, same cluster name).
    Delay(Duration),
}

/// The hub's INFO as a spoke reads it.
#[derive(Deserialize, Default)]
#[serde(default)]
struct HubInfo {
    server_id: String,
    server_name: String,
    client_id: u64,
    nonce: String,
    leafnode_urls: Option<Vec<String>>,
    info_on_connect: bool,
    connect_info: bool,
    headers: bool,
}

/// A spoke's CONNECT as the hub reads it.
#[derive(Deserialize, Default)]
#[serde(default)]
struct LeafConnect {
    lang: Option<String>,
    gateway: Option<String>,
    user: Option<String>,
    pass: Option<String>,
    auth_token: Option<String>,
    nkey: Option<String>,
    jwt: Option<String>,
    sig: Option<String>,
    server_id: String,
    name: String,
    cluster: String,
    headers: bool,
    is_hub: bool,
    version: String,
    deny_pub: Vec<String>,
}

/// The INFO a hub sends on its leaf port.
#[derive(Serialize)]
struct HubInfoOut<'a> {
    server_id: &'a str,
    server_name: &'a str,
    version: &'static str,
    proto: i32,
    go: &'static str,
    host: String,
    port: u16,
    headers: bool,
    auth_required: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tls_required: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tls_verify: bool,
    max_payload: i32,
    ip: String,
    client_id: u64,
    nonce: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<&'a str>,
    compression: &'static str,
    info_on_connect: bool,
    leafnode_urls: Vec<String>,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    connect_info: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    remote_account: Option<&'a str>,
}

/// The INFO a hub sends on its leaf port (`remote_account`: the one answering CONNECT).
fn hub_info_json(
    server: &Server,
    leafnodes: &LeafNodes,
    cid: u64,
    nonce: &str,
    remote_account: Option<&str>,
) -> Vec<u8> {
    let (opts, _) = server.options();
    let addr = leafnodes
        .addr
        .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)));
    let url = leafnodes.advertise_url(server);
    let cluster = server.cluster().map(|c| c.name.as_str());
    let info = HubInfoOut {
        server_id: server.id(),
        server_name: server.name(),
        version: crate::server::NATS_COMPAT_VERSION,
        proto: crate::server::PROTO,
        go: crate::server::GO_FIELD,
        host: addr.ip().to_string(),
        port: addr.port(),
        headers: opts.headers,
        auth_required: true,
        tls_required: leafnodes.tls.is_some(),
        tls_verify: leafnodes.tls.as_ref().is_some_and(|t| t.verify),
        max_payload: opts.max_payload,
        ip: url.clone(),
        client_id: cid,
        nonce,
        cluster,
        compression: "off",
        info_on_connect: true,
        leafnode_urls: vec![url],
        connect_info: remote_account.is_some(),
        remote_account,
    };
    serde_json::to_vec(&info).unwrap_or_default()
}

/// Keeps one remote connected: dials its URLs in turn and runs the connection whenever
/// it is up, waiting `reconnect_delay` (30 s after a loop) between attempts.
pub(super) async fn solicit(server: Arc<Server>, leafnodes: Arc<LeafNodes>, index: usize) {
    let mut shutdown = std::pin::pin!(server.wait_shutdown());
    let mut attempt = 0u64;
    let mut failures = 0u64;
    loop {
        let (opts, _) = server.options();
        let Some(remote) = opts.config.leafnode.remotes.get(index).cloned() else {
            return;
        };
        if remote.urls.is_empty() {
            tracing::error!("Leafnode remote {index} has no URL");
            return;
        }
        if remote.disabled {
            // Disabled by a reload: check again later.
            tokio::select! {
                () = tokio::time::sleep(RECONNECT_DELAY) => continue,
                () = &mut shutdown => return,
            }
        }
        let url = remote.urls[usize::try_from(attempt).unwrap_or(0) % remote.urls.len()].clone();
        attempt += 1;
        let target = format!("{}:{}", url.host, url.port.unwrap_or(DEFAULT_PORT));
        let dial_timeout = [remote.dial_timeout, opts.config.leafnode.dial_timeout]
            .into_iter()
            .find(|d| !d.is_zero())
            .unwrap_or(DIAL_TIMEOUT);
        let dial = tokio::time::timeout(dial_timeout, TcpStream::connect(&target));
        let attempted = tokio::select! {
            r = dial => r,
            () = &mut shutdown => return,
        };
        let outcome = match attempted {
            Ok(Ok(stream)) => {
                let _ = stream.set_nodelay(true);
                let peer = stream
                    .peer_addr()
                    .unwrap_or_else(|_| SocketAddr::from(([127, 0, 0, 1], 0)));
                tracing::debug!("Trying to connect as leafnode to remote server on {target}");
                failures = 0;
                run_inner(
                    server.clone(),
                    leafnodes.clone(),
                    stream,
                    peer,
                    Some(Solicited { remote, url }),
                )
                .await
            }
            Ok(Err(e)) => {
                failures += 1;
                dial_error(&target, failures, &e.to_string());
                Outcome::Retry
            }
            Err(_) => {
                failures += 1;
                dial_error(&target, failures, "i/o timeout");
                Outcome::Retry
            }
        };
        let delay = match outcome {
            Outcome::Delay(d) => d,
            Outcome::Retry => {
                let r = opts.config.leafnode.reconnect_interval;
                if r.is_zero() { RECONNECT_DELAY } else { r }
            }
        };
        tokio::select! {
            () = tokio::time::sleep(delay) => {}
            () = &mut shutdown => return,
        }
    }
}

/// Logs a failed dial as nats-server does: the first failure and then every 60th as an
/// error, the others at debug level, so a hub that is down does not flood the log.
fn dial_error(target: &str, failures: u64, e: &str) {
    if failures == 1 || failures.is_multiple_of(60) {
        tracing::error!(
            "Error trying to connect as leafnode to remote server {target:?} (attempt {failures}): {e}"
        );
    } else {
        tracing::debug!(
            "Error trying to connect as leafnode to remote server {target:?} (attempt {failures}): {e}"
        );
    }
}

/// Runs one accepted leaf connection until it closes.
pub(super) async fn run(
    server: Arc<Server>,
    leafnodes: Arc<LeafNodes>,
    stream: TcpStream,
    peer: SocketAddr,
    solicited: Option<Solicited>,
) {
    let _ = run_inner(server, leafnodes, stream, peer, solicited).await;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Hub: waiting for the spoke's CONNECT.
    AwaitConnect,
    /// Spoke: waiting for the hub's first INFO.
    AwaitInfo,
    /// Spoke: CONNECT sent, waiting for the hub's INFO that answers it.
    AwaitConnectInfo,
    /// Registered: interest and messages flow.
    Ready,
}

/// Sets a connection up: the hub's INFO (in clear, then the TLS handshake when the leaf
/// listener has `tls {}`), then the read loop.
async fn run_inner(
    server: Arc<Server>,
    leafnodes: Arc<LeafNodes>,
    mut stream: TcpStream,
    peer: SocketAddr,
    solicited: Option<Solicited>,
) -> Outcome {
    let (opts, _) = server.options();
    let cid = server.next_internal_cid();
    let nonce = crate::server::new_nonce();
    let solicited = match solicited {
        Some(s) if s.is_websocket() => {
            return dial_websocket(server, leafnodes, stream, peer, s, cid, nonce).await;
        }
        other => other,
    };
    let info = if solicited.is_none() {
        let json = hub_info_json(&server, &leafnodes, cid, &nonce, None);
        let mut v = Vec::with_capacity(json.len() + 8);
        encode::info(&mut v, &json);
        v
    } else {
        Vec::new()
    };
    if let Some(s) = &solicited
        && let Some(tls) = s.tls()
    {
        // Spoke over TLS: the hub's INFO in clear (unless handshake_first), then the
        // handshake, then everything inside it.
        let config = match crate::tls::client_tls(&tls) {
            Ok(c) => c,
            Err(e) => {
                tracing::error!("Leafnode remote TLS configuration error: {e}");
                return Outcome::Retry;
            }
        };
        let initial = if tls.handshake_first {
            BytesMut::new()
        } else {
            let within = if s.remote.first_info_timeout.is_zero() {
                FIRST_INFO_TIMEOUT
            } else {
                s.remote.first_info_timeout
            };
            match read_clear_info(&mut stream, within).await {
                Ok(b) => b,
                Err(e) => {
                    tracing::error!("{peer} - lid:{cid} - Error reading leafnode INFO: {e}");
                    return Outcome::Retry;
                }
            }
        };
        let Some(session) = tls_handshake(&config, &mut stream, &s.url.host, &tls, peer, cid).await
        else {
            return Outcome::Retry;
        };
        let (rd, outbound) = crate::tls::split(stream, session, opts.max_pending);
        return drive(
            server, leafnodes, rd, initial, outbound, cid, nonce, peer, solicited,
        )
        .await;
    }
    if solicited.is_none()
        && let Some(tls) = leafnodes.tls.clone()
    {
        if !tls.handshake_first {
            use tokio::io::AsyncWriteExt as _;
            if stream.write_all(&info).await.is_err() {
                return Outcome::Retry;
            }
        }
        let session = match crate::tls::accept(&tls, &mut stream, leafnodes.tls_timeout).await {
            Ok(s) => s,
            Err(e) => {
                tracing::error!("{peer} - lid:{cid} - TLS handshake error: {e}");
                return Outcome::Retry;
            }
        };
        let (rd, outbound) = crate::tls::split(stream, session, opts.max_pending);
        if tls.handshake_first {
            outbound.push_proto(&info);
        }
        return drive(
            server,
            leafnodes,
            rd,
            BytesMut::new(),
            outbound,
            cid,
            nonce,
            peer,
            solicited,
        )
        .await;
    }
    let (rd, wr) = stream.into_split();
    let outbound = Arc::new(Outbound::new(wr, opts.max_pending));
    outbound.push_proto(&info);
    drive(
        server,
        leafnodes,
        rd,
        BytesMut::new(),
        outbound,
        cid,
        nonce,
        peer,
        solicited,
    )
    .await
}

/// The read loop of one connection, until it closes.
#[allow(clippy::too_many_arguments)]
async fn drive<R: tokio::io::AsyncRead + Unpin>(
    server: Arc<Server>,
    leafnodes: Arc<LeafNodes>,
    rd: R,
    initial: BytesMut,
    outbound: Arc<Outbound>,
    cid: u64,
    nonce: String,
    peer: SocketAddr,
    solicited: Option<Solicited>,
) -> Outcome {
    let (opts, _) = server.options();
    let writer = tokio::spawn(outbound.clone().run_writer(opts.write_deadline));
    drive_with_writer(
        server,
        leafnodes,
        rd,
        initial,
        outbound,
        cid,
        nonce,
        peer,
        solicited,
        Some(writer),
        false,
    )
    .await
}

/// [`drive`] with the writer task draining `outbound` (awaited before the cleanup), or
/// `None` when its owner awaits it (the WebSocket listener's).
#[allow(clippy::too_many_arguments)]
async fn drive_with_writer<R: tokio::io::AsyncRead + Unpin>(
    server: Arc<Server>,
    leafnodes: Arc<LeafNodes>,
    mut rd: R,
    initial: BytesMut,
    outbound: Arc<Outbound>,
    cid: u64,
    nonce: String,
    peer: SocketAddr,
    solicited: Option<Solicited>,
    writer: Option<tokio::task::JoinHandle<()>>,
    accepted_on_websocket: bool,
) -> Outcome {
    let (opts, _) = server.options();
    let handle = Arc::new(ClientHandle {
        kind: ConnKind::Leaf,
        ..ClientHandle::new(cid, outbound.clone())
    });
    let now = tokio::time::Instant::now();
    let (state, deadline) = match &solicited {
        Some(s) => {
            let t = if s.remote.first_info_timeout.is_zero() {
                FIRST_INFO_TIMEOUT
            } else {
                s.remote.first_info_timeout
            };
            (State::AwaitInfo, now + t)
        }
        None => {
            let t = [opts.config.leafnode.auth_timeout, AUTH_TIMEOUT]
                .into_iter()
                .find(|d| !d.is_zero())
                .unwrap_or(AUTH_TIMEOUT);
            (State::AwaitConnect, now + t)
        }
    };
    let mut conn = Conn {
        server: server.clone(),
        leafnodes,
        handle,
        peer,
        solicited,
        state,
        deadline,
        nonce,
        leaf: None,
        pending_remote: None,
        outcome: Outcome::Retry,
        max_payload: i64::from(opts.max_payload),
        ping_sent: None,
        websocket: accepted_on_websocket,
    };
    let mut buf = initial;
    buf.reserve(16 * 1024);
    let ping_every = if opts.ping_interval.is_zero() {
        Duration::from_secs(120)
    } else {
        opts.ping_interval
    };
    let mut ping = tokio::time::interval_at(now + Duration::from_secs(1), ping_every);
    let mut pings_out = 0u32;
    let mut shutdown = std::pin::pin!(server.wait_shutdown());
    // Bytes read before the loop (a spoke's INFO read in clear ahead of TLS).
    if !buf.is_empty() && !process(&mut conn, &mut buf, &mut pings_out) {
        if let Some(w) = writer {
            let _ = w.await;
        }
        conn.cleanup();
        return conn.outcome;
    }
    'read: loop {
        tokio::select! {
            () = outbound.closed() => break,
            () = &mut shutdown => {
                outbound.close(CloseReason::ServerShutdown);
                break;
            }
            () = tokio::time::sleep_until(conn.deadline), if conn.state != State::Ready => {
                if conn.state == State::AwaitConnect {
                    conn.send_err("Authentication Timeout");
                    outbound.close(CloseReason::AuthenticationTimeout);
                } else {
                    tracing::error!("{peer} - lid:{} - Stale Leaf Node Connection - Closing", conn.handle.cid);
                    outbound.close(CloseReason::StaleConnection);
                }
                break;
            }
            _ = ping.tick() => {
                if pings_out >= opts.ping_max.max(1) {
                    conn.send_err("Stale Connection");
                    outbound.close(CloseReason::StaleConnection);
                    break;
                }
                pings_out += 1;
                conn.ping_sent.get_or_insert_with(std::time::Instant::now);
                outbound.push_proto(encode::PING);
            }
            res = rd.read_buf(&mut buf) => {
                match res {
                    Ok(0) => {
                        outbound.close(CloseReason::ClientClosed);
                        break;
                    }
                    Err(_) => {
                        outbound.close(CloseReason::ReadError);
                        break;
                    }
                    Ok(_) => {}
                }
                if !process(&mut conn, &mut buf, &mut pings_out) {
                    break 'read;
                }
                if buf.capacity() - buf.len() < 4096 {
                    buf.reserve(64 * 1024);
                }
            }
        }
    }
    if let Some(w) = writer {
        let _ = w.await;
    }
    conn.cleanup();
    conn.outcome
}

/// Handles every whole operation in `buf`; false when the connection is to close.
fn process(conn: &mut Conn, buf: &mut BytesMut, pings_out: &mut u32) -> bool {
    loop {
        match proto::parse(buf, conn.max_payload) {
            Ok(Some((op, used))) => {
                if matches!(op, LeafOp::Pong) {
                    *pings_out = 0;
                    if let Some(sent) = conn.ping_sent.take() {
                        // `/leafz` `rtt`.
                        let rtt = sent.elapsed().max(Duration::from_nanos(1));
                        conn.handle.rtt.store(
                            u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX),
                            Ordering::Relaxed,
                        );
                    }
                }
                let keep = conn.handle_op(op);
                buf.advance(used);
                if !keep {
                    return false;
                }
            }
            Ok(None) => return true,
            Err(e) => {
                conn.fail(&e);
                return false;
            }
        }
    }
}

/// The state of one leaf connection's read loop.
struct Conn {
    server: Arc<Server>,
    leafnodes: Arc<LeafNodes>,
    handle: Arc<ClientHandle>,
    peer: SocketAddr,
    solicited: Option<Solicited>,
    state: State,
    deadline: tokio::time::Instant,
    /// The nonce of this hub's INFO, for nkey and JWT signatures.
    nonce: String,
    leaf: Option<Arc<Leaf>>,
    /// Spoke: the hub's server id and name, from its INFO.
    pending_remote: Option<(String, String)>,
    outcome: Outcome,
    max_payload: i64,
    /// When the unanswered PING went out, for the round-trip time.
    ping_sent: Option<std::time::Instant>,
    /// Accepted on the WebSocket listener: `websocket { no_auth_user }` applies.
    websocket: bool,
}

impl Conn {
    fn send_err(&self, text: &str) {
        let mut v = Vec::with_capacity(text.len() + 9);
        encode::err(&mut v, text);
        self.handle.outbound.push_proto(&v);
    }

    /// Sends `e` as `-ERR` and closes; false, for the read loop.
    fn close_with(&self, e: &LeafError, reason: CloseReason) -> bool {
        self.send_err(&e.to_string());
        self.handle.outbound.close(reason);
        false
    }

    fn fail(&self, e: &LeafParseError) {
        tracing::error!("{} - lid:{} - {e}", self.peer, self.handle.cid);
        match e {
            LeafParseError::MaxControlLine => self.send_err(&e.to_string()),
            _ if self.leaf.is_none() => {
                self.send_err(&LeafError::AuthorizationViolation.to_string());
            }
            LeafParseError::Malformed(_) => {}
            other => self.send_err(&other.to_string()),
        }
        self.handle.outbound.close(CloseReason::ParseError);
    }

    fn hub_info_json(&self, remote_account: Option<&str>) -> Vec<u8> {
        hub_info_json(
            &self.server,
            &self.leafnodes,
            self.handle.cid,
            &self.nonce,
            remote_account,
        )
    }

    /// Handles one operation; false closes the connection.
    fn handle_op(&mut self, op: LeafOp) -> bool {
        match op {
            LeafOp::Ping => self.handle.outbound.push_proto(encode::PONG),
            LeafOp::Pong | LeafOp::Ok => {}
            LeafOp::Err(e) => return self.on_err(&e),
            LeafOp::Info(json) => return self.on_info(&json),
            LeafOp::Connect(json) => return self.on_connect(&json),
            op if self.leaf.is_none() => {
                if self.state == State::AwaitConnectInfo {
                    // A hub that does not answer CONNECT with an INFO: interest starts.
                    self.register_spoke();
                    return self.handle_op(op);
                }
                return self.close_with(
                    &LeafError::AuthorizationViolation,
                    CloseReason::AuthenticationViolation,
                );
            }
            LeafOp::Sub { subject, queue } => return self.leaf_sub(subject, queue.map(|q| q.0)),
            LeafOp::Unsub { subject, queue } => self.leaf_unsub(subject, queue),
            LeafOp::Msg {
                subject,
                reply,
                queues,
                hdr,
                msg,
            } => return self.leaf_msg(&subject, reply.as_deref(), &queues, hdr, &msg),
        }
        true
    }

    fn on_err(&mut self, e: &str) -> bool {
        tracing::error!(
            "{} - lid:{} - Leafnode Error '{e}'",
            self.peer,
            self.handle.cid
        );
        if e.contains("minimum version required") {
            self.outcome = Outcome::Delay(MIN_VERSION_DELAY);
            self.handle.outbound.close(CloseReason::ProtocolViolation);
            return false;
        }
        if e.contains("Loop detected")
            || e.contains("same cluster name")
            || e.contains("Permissions Violation")
        {
            self.outcome = Outcome::Delay(LOOP_DELAY);
            self.handle.outbound.close(CloseReason::ProtocolViolation);
            return false;
        }
        true
    }

    fn on_info(&mut self, json: &[u8]) -> bool {
        if self.solicited.is_none() {
            // A spoke's INFO only negotiates compression, and this hub says "off".
            return true;
        }
        let info: HubInfo = match serde_json::from_slice(json) {
            Ok(i) => i,
            Err(e) => {
                tracing::error!("{} - lid:{} - bad INFO: {e}", self.peer, self.handle.cid);
                self.handle.outbound.close(CloseReason::ProtocolViolation);
                return false;
            }
        };
        match self.state {
            State::AwaitInfo => self.send_connect(&info),
            State::AwaitConnectInfo if info.connect_info => {
                self.handle.headers.store(info.headers, Ordering::Release);
                self.register_spoke_with(&info);
                true
            }
            // Async INFO (updated leafnode_urls): the configured URLs stay in use.
            _ => true,
        }
    }

    /// Spoke: answers the hub's first INFO with CONNECT.
    fn send_connect(&mut self, info: &HubInfo) -> bool {
        let Some(s) = &self.solicited else {
            return false;
        };
        if info.client_id == 0 || info.leafnode_urls.is_none() {
            tracing::error!(
                "{} - lid:{} - {}",
                self.peer,
                self.handle.cid,
                LeafError::WrongPort
            );
            self.handle.outbound.close(CloseReason::ProtocolViolation);
            return false;
        }
        let local = if s.remote.local_account.is_empty() {
            "$G"
        } else {
            &s.remote.local_account
        };
        if self.server.account(local).is_none() {
            tracing::error!("No local account {local:?} for leafnode");
            self.handle.outbound.close(CloseReason::ProtocolViolation);
            return false;
        }
        let (opts, _) = self.server.options();
        let mut c = serde_json::json!({
            "version": crate::server::NATS_COMPAT_VERSION,
            "server_id": self.server.id(),
            "name": self.server.name(),
            "cluster": self.server.cluster().map_or(self.server.name(), |c| c.name.as_str()),
            "headers": opts.headers,
            "compress_mode": "off",
            "remote_account": local,
            "protocol": crate::server::PROTO,
        });
        if !s.remote.deny_imports.is_empty() {
            c["deny_pub"] = s.remote.deny_imports.clone().into();
        }
        // The hub keeps its JetStream apart from ours by it (nats-server's `domain`).
        if opts.config.jetstream.enabled && !opts.config.jetstream.domain.is_empty() {
            c["domain"] = opts.config.jetstream.domain.clone().into();
        }
        if !s.remote.credentials.is_empty() {
            match auth::read_creds(std::path::Path::new(&s.remote.credentials)) {
                Ok((jwt, kp)) => {
                    c["jwt"] = jwt.into();
                    c["sig"] = auth::sign_nonce(&kp, &info.nonce).into();
                }
                Err(e) => {
                    tracing::error!("Error loading leafnode credentials: {e}");
                    self.handle.outbound.close(CloseReason::ProtocolViolation);
                    return false;
                }
            }
        } else if !s.remote.nkey.is_empty() {
            match nkeys::KeyPair::from_seed(&s.remote.nkey) {
                Ok(kp) => {
                    c["nkey"] = kp.public_key().into();
                    c["sig"] = auth::sign_nonce(&kp, &info.nonce).into();
                }
                Err(e) => {
                    tracing::error!("Error loading leafnode nkey: {e}");
                    self.handle.outbound.close(CloseReason::ProtocolViolation);
                    return false;
                }
            }
        } else if let Some(user) = s.url.username.as_deref().filter(|u| !u.is_empty()) {
            match s.url.password.as_deref() {
                Some(pass) => {
                    c["user"] = user.into();
                    c["pass"] = pass.into();
                }
                None => c["auth_token"] = user.into(),
            }
        }
        let mut v = b"CONNECT ".to_vec();
        v.extend_from_slice(c.to_string().as_bytes());
        v.extend_from_slice(b"\r\n");
        self.handle.outbound.push_proto(&v);
        self.handle.headers.store(info.headers, Ordering::Release);
        if info.info_on_connect {
            self.state = State::AwaitConnectInfo;
            self.deadline = tokio::time::Instant::now() + CONNECT_INFO_TIMEOUT;
            // Kept for the registration on the connect INFO.
            self.pending_remote = Some((info.server_id.clone(), info.server_name.clone()));
        } else {
            self.pending_remote = Some((info.server_id.clone(), info.server_name.clone()));
            self.register_spoke();
        }
        true
    }

    fn register_spoke_with(&mut self, info: &HubInfo) {
        if self.pending_remote.is_none() || !info.server_id.is_empty() {
            self.pending_remote = Some((info.server_id.clone(), info.server_name.clone()));
        }
        self.register_spoke();
    }

    /// Spoke: the hub accepted our CONNECT; register and announce our interest.
    fn register_spoke(&mut self) {
        let Some(s) = &self.solicited else { return };
        let local = if s.remote.local_account.is_empty() {
            "$G"
        } else {
            &s.remote.local_account
        };
        let Some(account) = self.server.account(local) else {
            self.handle.outbound.close(CloseReason::ProtocolViolation);
            return;
        };
        let (remote_id, name) = self.pending_remote.take().unwrap_or_default();
        let filters = super::Filters::spoke(&s.remote.deny_imports, &s.remote.deny_exports);
        self.install(account, true, remote_id, name, filters);
    }

    fn install(
        &mut self,
        account: Arc<crate::account::Account>,
        spoke: bool,
        remote_id: String,
        name: String,
        filters: super::Filters,
    ) {
        let (opts, _) = self.server.options();
        let domain = Some(opts.config.jetstream.domain.as_str())
            .filter(|d| opts.config.jetstream.enabled && !d.is_empty());
        let system = account.name() == self.server.sys_account.name()
            || self
                .server
                .trust()
                .is_some_and(|t| t.system_account == account.name());
        let filters = filters.with_jetstream(system, domain);
        let leaf = Arc::new(Leaf {
            handle: self.handle.clone(),
            account,
            is_spoke: spoke,
            remote_id,
            name,
            peer: self.peer,
            start: SystemTime::now(),
            in_msgs: AtomicU64::new(0),
            in_bytes: AtomicU64::new(0),
            subs: Mutex::new(FxHashMap::default()),
            smap: Mutex::new(FxHashMap::default()),
            filters,
        });
        self.state = State::Ready;
        self.leaf = Some(leaf.clone());
        if let Some(old) = self.leafnodes.register(&leaf) {
            tracing::warn!(
                "{} - lid:{} - Replacing connection from same server",
                self.peer,
                self.handle.cid
            );
            old.handle.outbound.close(CloseReason::ClientClosed);
        }
        tracing::info!(
            "{} - lid:{} - Leafnode connection created for account: {}",
            self.peer,
            self.handle.cid,
            leaf.account.name()
        );
    }

    /// Hub in operator mode: the spoke's user JWT checked as a client's is (its account
    /// from the resolver, signed by a trusted operator), with connection type `LEAFNODE`.
    fn jwt_binding(&self, p: &Presented<'_>) -> Result<auth::Binding, auth::AuthError> {
        let creds = crate::trust::JwtCredentials {
            jwt: p.jwt,
            sig: p.sig,
            nonce: Some(p.nonce),
            connection_type: auth::LEAFNODE,
            peer: Some(self.peer.ip()),
        };
        let server = self.server.clone();
        let lookup = |pk: &str| {
            server
                .resolve_account(pk)
                .and_then(|a| a.claims())
                .map(|c| (*c).clone())
        };
        match crate::trust::check_user(&creds, lookup, natrix_jwt::now_unix()) {
            Ok(user) => Ok(auth::Binding {
                user: Some(user.claims.data.subject),
                account: user.account,
                permissions: user.permissions,
            }),
            Err(e) => {
                tracing::debug!("{} - lid:{} - {e}", self.peer, self.handle.cid);
                Err(auth::AuthError::Jwt("user JWT refused"))
            }
        }
    }

    /// Hub: a spoke's CONNECT.
    fn on_connect(&mut self, json: &[u8]) -> bool {
        if self.solicited.is_some() || self.state != State::AwaitConnect {
            // nats-server ignores a repeated CONNECT; a spoke never gets one.
            return true;
        }
        let Ok(c) = serde_json::from_slice::<LeafConnect>(json) else {
            self.handle.outbound.close(CloseReason::ProtocolViolation);
            return false;
        };
        let (opts, _) = self.server.options();
        let presented = Presented {
            user: c.user.as_deref(),
            pass: c.pass.as_deref(),
            token: c.auth_token.as_deref(),
            nkey: c.nkey.as_deref(),
            jwt: c.jwt.as_deref(),
            sig: c.sig.as_deref(),
            nonce: &self.nonce,
        };
        let binding = match self.server.trust() {
            Some(_) => self.jwt_binding(&presented),
            None => {
                // nats-server's order: the WebSocket block's no_auth_user for a leaf
                // that came in over WebSocket, else the server's.
                let ws = &opts.config.websocket.no_auth_user;
                let no_auth_user = if self.websocket && !ws.is_empty() {
                    Some(ws.as_str())
                } else {
                    opts.auth.no_auth_user.as_deref()
                };
                auth::authenticate(&opts, &presented, no_auth_user)
            }
        };
        let binding = match binding {
            Ok(b) => b,
            Err(e) => {
                tracing::error!(
                    "{} - lid:{} - authentication error: {e}",
                    self.peer,
                    self.handle.cid
                );
                return self.close_with(
                    &LeafError::AuthorizationViolation,
                    CloseReason::AuthenticationViolation,
                );
            }
        };
        // nats-server authenticates first: a client or gateway without leaf credentials
        // gets `Authorization Violation`.
        if c.lang.is_some() {
            return self.close_with(&LeafError::ClientOnLeafPort, CloseReason::ProtocolViolation);
        }
        if let Some(g) = c.gateway.clone() {
            return self.close_with(&LeafError::Gateway(g), CloseReason::ProtocolViolation);
        }
        if c.cluster.contains(' ') {
            return self.close_with(
                &LeafError::ClusterNameSpaces,
                CloseReason::ProtocolViolation,
            );
        }
        if !c.cluster.is_empty() && self.server.cluster().is_some_and(|cl| cl.name == c.cluster) {
            return self.close_with(&LeafError::SameClusterName, CloseReason::ProtocolViolation);
        }
        let min = &opts.config.leafnode.min_version;
        if !min.is_empty() && version_below(&c.version, min) {
            return self.close_with(
                &LeafError::MinVersion(min.clone()),
                CloseReason::ProtocolViolation,
            );
        }
        let Some(account) = self.server.account(&binding.account) else {
            tracing::error!(
                "{} - lid:{} - account {:?} not found",
                self.peer,
                self.handle.cid,
                binding.account
            );
            return self.close_with(
                &LeafError::AuthorizationViolation,
                CloseReason::AuthenticationViolation,
            );
        };
        if c.is_hub {
            tracing::warn!(
                "{} - lid:{} - remote declares itself a hub; natrix keeps the accepting side as hub",
                self.peer,
                self.handle.cid
            );
        }
        self.handle
            .headers
            .store(opts.headers && c.headers, Ordering::Release);
        let json = self.hub_info_json(Some(account.name()));
        let mut v = Vec::with_capacity(json.len() + 8);
        encode::info(&mut v, &json);
        self.handle.outbound.push_proto(&v);
        let remote_id = if c.server_id.is_empty() {
            c.name.clone()
        } else {
            c.server_id
        };
        let filters = super::Filters::hub(binding.permissions.as_deref(), &c.deny_pub);
        self.install(account, false, remote_id, c.name, filters);
        true
    }

    fn leaf_sub(&mut self, subject: Bytes, queue: Option<Bytes>) -> bool {
        let Some(leaf) = self.leaf.clone() else {
            return true;
        };
        let account = leaf.account.name().to_owned();
        if subject.starts_with(b"$LDS.")
            && subject[..] == *self.leafnodes.lds_subject(&account).as_bytes()
        {
            let e = LeafError::Loop(account);
            tracing::error!("{} - lid:{} - {e}", self.peer, self.handle.cid);
            self.outcome = Outcome::Delay(LOOP_DELAY);
            return self.close_with(&e, CloseReason::ProtocolViolation);
        }
        if leaf.filters.js_blocks(&subject, true, true) {
            // JetStream's own subjects stay in their domain: never sent, so no
            // subscription.
            return true;
        }
        if let Some(p) = &leaf.filters.receive
            && !p.allows_subscribe(&subject, queue.as_deref())
        {
            if !leaf.filters.strict {
                // The remote's deny_exports: never sent, so no subscription.
                return true;
            }
            // nats-server closes, and the spoke waits before dialling again.
            let text = crate::server::client::sub_violation_text(&subject, queue.as_deref());
            tracing::error!("{} - lid:{} - {text}", self.peer, self.handle.cid);
            self.send_err(&text);
            self.handle.outbound.close(CloseReason::ProtocolViolation);
            return false;
        }
        if !crate::subject::is_valid_subject(&subject) {
            self.send_err("Invalid Subscription");
            tracing::error!(
                "{} - lid:{} - invalid leafnode subscription {:?}",
                self.peer,
                self.handle.cid,
                String::from_utf8_lossy(&subject)
            );
            return true;
        }
        let key = (subject.clone(), queue.clone());
        let sub = {
            let mut subs = leaf.subs.lock();
            if subs.contains_key(&key) {
                // A queue weight update: one member stands for the group.
                return true;
            }
            let max = self.server.options().0.max_subscriptions;
            if max > 0 && subs.len() >= max {
                // A leaf connection is held to the server's `max_subscriptions`.
                drop(subs);
                self.send_err("maximum subscriptions exceeded");
                return true;
            }
            let sid = Bytes::from(format!("L{}", subs.len() + 1));
            let sub = Arc::new(Subscription::remote(
                subject.clone(),
                queue.clone(),
                sid,
                self.handle.clone(),
            ));
            if leaf.account.sublist.insert(sub.clone()).is_err() {
                return true;
            }
            subs.insert(key, sub.clone());
            sub
        };
        self.interest(&leaf, &sub, true);
        true
    }

    fn leaf_unsub(&mut self, subject: Bytes, queue: Option<Bytes>) {
        let Some(leaf) = self.leaf.clone() else {
            return;
        };
        let Some(sub) = leaf.subs.lock().remove(&(subject, queue)) else {
            return;
        };
        if leaf.account.sublist.remove(&sub).is_ok() {
            self.interest(&leaf, &sub, false);
        }
    }

    /// Passes a change of the other side's interest on: to other leafs, and from a spoke
    /// connected to us, to our routes.
    fn interest(&self, leaf: &Leaf, sub: &Subscription, added: bool) {
        let account = leaf.account.name();
        self.leafnodes.interest_changed(
            account,
            &sub.subject,
            sub.queue.as_ref(),
            leaf.origin(),
            added,
        );
        if !leaf.is_spoke {
            if let Some(cluster) = self.server.cluster() {
                if added {
                    cluster.sub_added(account, &sub.subject, sub.queue.as_ref());
                } else {
                    cluster.sub_removed(account, &sub.subject, sub.queue.as_ref());
                }
            }
            // Remote clusters hear of a spoke's interest as of any in this cluster.
            self.server
                .remote_interest(account, &sub.subject, sub.queue.as_ref(), added, false);
        }
    }

    /// A message from the other side: to local clients, to routes (from a spoke only),
    /// to other leafs (never back; never hub to hub), and to one member of each queue
    /// group the sender picked us for, preferring members not behind a leaf.
    fn leaf_msg(
        &self,
        subject: &[u8],
        reply: Option<&[u8]>,
        queues: &[Bytes],
        hdr: usize,
        msg: &[u8],
    ) -> bool {
        let Some(leaf) = &self.leaf else { return true };
        // The account's subject mappings apply to what leaf nodes publish, as to clients.
        let mapped;
        let subject = match leaf
            .account
            .map_subject(subject, self.server.cluster_name())
        {
            None => subject,
            Some(m) if m.is_empty() => return true,
            Some(m) => {
                mapped = m;
                &mapped[..]
            }
        };
        if leaf.filters.js_blocks(subject, false, false) {
            // Another domain's JetStream traffic: not ours to answer.
            return true;
        }
        if !leaf.filters.may_send(subject) {
            if !leaf.filters.strict {
                // The remote's deny_imports: dropped.
                return true;
            }
            let text = format!(
                "Permissions Violation for Publish to {}",
                crate::server::client::go_quote(subject)
            );
            tracing::error!("{} - lid:{} - {text}", self.peer, self.handle.cid);
            self.send_err(&text);
            self.handle.outbound.close(CloseReason::ProtocolViolation);
            return false;
        }
        let len = msg.len() as u64;
        leaf.in_msgs.fetch_add(1, Ordering::Relaxed);
        leaf.in_bytes.fetch_add(len, Ordering::Relaxed);
        self.handle.last_activity.store(
            crate::server::client::unix_nanos(SystemTime::now()),
            Ordering::Relaxed,
        );
        let acc = &leaf.account;
        self.server.stats.in_msgs.fetch_add(1, Ordering::Relaxed);
        self.server.stats.in_bytes.fetch_add(len, Ordering::Relaxed);
        acc.stats.in_msgs.fetch_add(1, Ordering::Relaxed);
        acc.stats.in_bytes.fetch_add(len, Ordering::Relaxed);
        if acc.has_links() {
            let mut to_flush = Vec::new();
            let m = crate::imports::Published {
                subject,
                reply,
                hdr,
                msg,
                requester: Some(self.handle.cid),
            };
            crate::imports::forward(&self.server, acc, &m, &mut to_flush);
            for o in to_flush {
                o.flush();
            }
        }
        let result = acc.sublist.match_subject(subject);
        if result.is_empty() {
            return true;
        }
        let mut size = itoa::Buffer::new();
        let size = size.format(msg.len()).as_bytes().to_vec();
        let mut hdr_buf = itoa::Buffer::new();
        let hdr_arg = hdr_buf.format(hdr).as_bytes().to_vec();
        let d = encode::Delivery {
            subject,
            sid: &[],
            reply,
            hdr,
            msg,
            size_arg: &size,
            hdr_arg: if hdr > 0 { &hdr_arg } else { &[] },
        };
        // A JetStream delivery (see `fanout::split_js_reply`): clients see the subject
        // and the ack its reply carries; other servers get it as it came.
        let shown = match reply.and_then(crate::server::fanout::split_js_reply) {
            Some((ack, subject)) => encode::Delivery {
                subject,
                reply: Some(ack),
                ..d
            },
            None => encode::Delivery { ..d },
        };
        let from = leaf.origin();
        let to_routes = !leaf.is_spoke;
        let takes = |sub: &Subscription| match sub.client.kind {
            ConnKind::Client => true,
            ConnKind::Route => to_routes,
            ConnKind::Leaf => self
                .leafnodes
                .leaf(sub.client.cid)
                .is_some_and(|l| l.takes_from(from) && l.filters.may_receive(subject)),
            ConnKind::Gateway => false,
        };
        let mut to_flush = Vec::new();
        let mut targets = Targets::default();
        let mut sent = 0u64;
        for sub in &result.psubs {
            if sub.is_closed() || !takes(sub) {
                continue;
            }
            if sub.client.kind == ConnKind::Client {
                sent += u64::from(deliver_deferred(acc, sub, &shown, &mut to_flush));
            } else {
                targets.add(&sub.client, None);
            }
        }
        for group in &result.qsubs {
            let Some(name) = group.first().and_then(|s| s.queue.as_ref()) else {
                continue;
            };
            if !queues.iter().any(|q| q == name) {
                continue;
            }
            let tiers = [ConnKind::Client, ConnKind::Route, ConnKind::Leaf].map(|kind| {
                group
                    .iter()
                    .filter(|s| s.client.kind == kind && !s.is_closed() && takes(s))
                    .collect::<Vec<_>>()
            });
            'group: for members in tiers.iter().filter(|m| !m.is_empty()) {
                let start = fastrand::usize(..members.len());
                for i in 0..members.len() {
                    let sub = members[(start + i) % members.len()];
                    if sub.client.kind != ConnKind::Client {
                        targets.add(&sub.client, sub.queue.clone());
                        break 'group;
                    }
                    if deliver_deferred(acc, sub, &shown, &mut to_flush) {
                        sent += 1;
                        break 'group;
                    }
                }
            }
        }
        sent += targets.send(&d, Some(acc.name()));
        // Published in this cluster (by a spoke of this hub): remote clusters may want it.
        if !leaf.is_spoke
            && let Some(gws) = self.server.gateways()
        {
            gws.send(acc, subject, reply, hdr, msg, &result, None, &mut to_flush);
        }
        for o in to_flush {
            o.flush();
        }
        self.server
            .stats
            .out_msgs
            .fetch_add(sent, Ordering::Relaxed);
        self.server
            .stats
            .out_bytes
            .fetch_add(sent * len, Ordering::Relaxed);
        acc.stats.out_msgs.fetch_add(sent, Ordering::Relaxed);
        acc.stats.out_bytes.fetch_add(sent * len, Ordering::Relaxed);
        true
    }

    fn cleanup(&mut self) {
        let Some(leaf) = self.leaf.take() else {
            return;
        };
        let registered = self.leafnodes.unregister(&leaf);
        let subs: Vec<Arc<Subscription>> = leaf.subs.lock().drain().map(|(_, s)| s).collect();
        for sub in subs {
            if leaf.account.sublist.remove(&sub).is_ok() {
                self.interest(&leaf, &sub, false);
            }
        }
        if registered {
            tracing::info!(
                "{} - lid:{} - Leafnode connection closed: {} - Account: {}",
                self.peer,
                self.handle.cid,
                self.handle
                    .outbound
                    .close_reason()
                    .map_or("Client Closed", CloseReason::as_str),
                leaf.account.name()
            );
        }
    }
}

/// Whether `version` (`major.minor.patch[-pre]`) is below `min`; an unreadable version
/// is below any minimum, as nats-server rejects it.
fn version_below(version: &str, min: &str) -> bool {
    fn parse(v: &str) -> Option<(u64, u64, u64)> {
        let core = v.split(['-', '+']).next()?;
        let mut it = core.split('.').map(|p| p.parse::<u64>().ok());
        let t = (it.next()??, it.next()??, it.next()??);
        it.next().is_none().then_some(t)
    }
    match (parse(version), parse(min)) {
        (Some(v), Some(m)) => v < m,
        _ => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn min_version() {
        assert!(version_below("2.9.0", "2.10.0"));
        assert!(!version_below("2.10.0", "2.10.0"));
        assert!(!version_below("2.14.0-beta", "2.10.0"));
        assert!(version_below("", "2.8.0"));
        assert!(version_below("x.y", "2.8.0"));
    }

    #[test]
    fn error_texts_are_nats_servers() {
        assert_eq!(
            LeafError::Loop("ACC".into()).to_string(),
            "Loop detected for leafnode account=\"ACC\". Delaying attempt to reconnect for 30s"
        );
        assert_eq!(
            LeafError::Gateway("G".into()).to_string(),
            "Rejecting connection from gateway \"G\" on the leafnode port"
        );
        assert_eq!(
            LeafError::ClientOnLeafPort.to_string(),
            "attempted to connect to leaf node port"
        );
    }
}
