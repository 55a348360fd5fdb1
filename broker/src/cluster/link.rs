//! The read loop shared by every inter-server connection (routes and gateways): a
//! handshake deadline, PINGs with a stale-connection check, and the framing of
//! [`proto`](super::proto), handing each operation to the connection kind's handler.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt};
use tokio::net::TcpStream;

use super::proto::{self, RouteOp, RouteParseError};
use crate::protocol::encode;
use crate::server::Server;
use crate::server::outbound::{CloseReason, Outbound};

/// How long a peer has to complete the handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);
/// Interval between PINGs on a link unless configured (`cluster { ping_interval }`).
pub const PING_INTERVAL: Duration = Duration::from_secs(30);
/// Unanswered PINGs after which a link is stale unless configured (`ping_max`).
pub const MAX_PINGS_OUT: u32 = 2;

/// How often a link PINGs its peer, and how many PINGs may go unanswered.
#[derive(Clone, Copy)]
pub(crate) struct Pings {
    pub interval: Duration,
    pub max_out: u32,
}

impl Pings {
    /// Configured values, with zero meaning the default.
    pub fn new(interval: Duration, max_out: i64) -> Self {
        Self {
            interval: if interval.is_zero() {
                PING_INTERVAL
            } else {
                interval
            },
            max_out: u32::try_from(max_out)
                .ok()
                .filter(|n| *n > 0)
                .unwrap_or(MAX_PINGS_OUT),
        }
    }
}

/// The fields every inter-server INFO starts with, in nats-server's order.
#[derive(serde::Serialize)]
pub(crate) struct InfoBase<'a> {
    server_id: &'a str,
    server_name: &'a str,
    version: &'static str,
    proto: i32,
    go: &'static str,
    host: String,
    port: u16,
    headers: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    auth_required: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tls_required: bool,
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    tls_verify: bool,
    max_payload: i32,
}

impl<'a> InfoBase<'a> {
    /// This server listening on `addr`; `auth` when the listener wants credentials,
    /// `tls` when it runs TLS (always verifying peers).
    pub fn new(
        server: &'a Server,
        addr: SocketAddr,
        proto: i32,
        go: &'static str,
        auth: bool,
        tls: bool,
    ) -> Self {
        Self {
            server_id: server.id(),
            server_name: server.name(),
            version: crate::server::NATS_COMPAT_VERSION,
            proto,
            go,
            host: addr.ip().to_string(),
            port: addr.port(),
            headers: true,
            auth_required: auth,
            tls_required: tls,
            tls_verify: tls,
            max_payload: server.options().0.max_payload,
        }
    }
}

/// What a connection kind does with the operations its peer sends. The read loop
/// answers PING, PONG, +OK and -ERR itself, and refuses anything but CONNECT and INFO
/// before the handshake completes (`Authorization Violation`, as nats-server).
pub(crate) trait LinkHandler {
    /// Whether the handshake is complete (the deadline no longer applies).
    fn established(&self) -> bool;
    /// The peer's CONNECT; false closes the link.
    fn connect(&mut self, json: &[u8]) -> bool;
    /// The peer's INFO (the handshake's, or a later one); false closes the link.
    fn info(&mut self, json: &[u8]) -> bool;
    /// Any other operation on an established link; false closes it. Outbound buffers it
    /// queued to go in `to_flush`, flushed once the whole read is handled.
    fn handle(&mut self, op: RouteOp, to_flush: &mut Vec<Arc<Outbound>>) -> bool;
}

/// Accepts connections on `listener` until shutdown, handing each to `on_accept`.
pub(crate) fn accept_loop(
    server: Arc<Server>,
    listener: tokio::net::TcpListener,
    what: &'static str,
    on_accept: impl Fn(TcpStream, SocketAddr) + Send + 'static,
) {
    tokio::spawn(async move {
        let mut shutdown = std::pin::pin!(server.wait_shutdown());
        loop {
            tokio::select! {
                res = listener.accept() => match res {
                    Ok((stream, peer)) => {
                        let _ = stream.set_nodelay(true);
                        on_accept(stream, peer);
                    }
                    Err(e) => {
                        tracing::error!("{what} accept error: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                    }
                },
                () = &mut shutdown => return,
            }
        }
    });
}

/// The read side of a link: the socket, or the plaintext of its TLS session.
pub(crate) type Reader = Box<dyn AsyncRead + Unpin + Send>;

/// Sets up a new connection's two sides, after the TLS handshake when `tls` is given
/// (`dialled` is the `host:port` we dialled, `None` when we accepted). `None` if the
/// handshake failed, which is logged.
pub(crate) async fn open(
    mut stream: TcpStream,
    peer: SocketAddr,
    tls: Option<&crate::tls::LinkTls>,
    dialled: Option<&str>,
    max_pending: usize,
) -> Option<(Reader, Arc<Outbound>)> {
    let session = match tls {
        Some(tls) => {
            let host = dialled.map(|t| {
                t.rsplit_once(':')
                    .map_or(t, |(h, _)| h)
                    .trim_matches(|c| c == '[' || c == ']')
            });
            match crate::tls::link_handshake(tls, &mut stream, host).await {
                Ok(s) => Some(s),
                Err(e) => {
                    tracing::error!(%peer, "TLS handshake error: {e}");
                    return None;
                }
            }
        }
        None => None,
    };
    Some(match session {
        Some(s) => {
            let (rd, outbound) = crate::tls::split(stream, s, max_pending);
            (Box::new(rd) as Reader, outbound)
        }
        None => {
            let (rd, wr) = stream.into_split();
            (
                Box::new(rd) as Reader,
                Arc::new(Outbound::new(wr, max_pending)),
            )
        }
    })
}

/// Reads `rd` until the link closes, the server shuts down, or the handshake times out.
pub(crate) async fn serve(
    server: &Server,
    outbound: &Arc<Outbound>,
    mut rd: Reader,
    peer: SocketAddr,
    pings: Pings,
    handler: &mut impl LinkHandler,
) {
    let mut buf = BytesMut::with_capacity(64 * 1024);
    let deadline = tokio::time::Instant::now() + HANDSHAKE_TIMEOUT;
    let first = pings.interval.min(Duration::from_secs(1));
    let mut ping = tokio::time::interval_at(tokio::time::Instant::now() + first, pings.interval);
    let mut pings_out = 0u32;
    let mut to_flush: Vec<Arc<Outbound>> = Vec::new();
    let mut shutdown = std::pin::pin!(server.wait_shutdown());
    'read: loop {
        tokio::select! {
            () = outbound.closed() => break,
            () = &mut shutdown => {
                outbound.close(CloseReason::ServerShutdown);
                break;
            }
            () = tokio::time::sleep_until(deadline), if !handler.established() => {
                tracing::error!(%peer, "handshake timeout");
                outbound.close(CloseReason::AuthenticationTimeout);
                break;
            }
            _ = ping.tick() => {
                if pings_out >= pings.max_out {
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
                if matches!(res, Ok(0) | Err(_)) {
                    outbound.close(CloseReason::ClientClosed);
                    break;
                }
                let mut keep = true;
                while keep {
                    match proto::parse(&buf) {
                        Ok(Some((op, used))) => {
                            keep = match op {
                                RouteOp::Ping => {
                                    outbound.push_proto(encode::PONG);
                                    true
                                }
                                RouteOp::Pong => {
                                    pings_out = 0;
                                    true
                                }
                                RouteOp::Ok => true,
                                RouteOp::Err(e) => {
                                    tracing::warn!(%peer, "error from peer: {e}");
                                    true
                                }
                                RouteOp::Connect(json) => handler.connect(&json),
                                RouteOp::Info(json) => handler.info(&json),
                                _ if !handler.established() => {
                                    reject(
                                        outbound,
                                        "Authorization Violation",
                                        CloseReason::AuthenticationViolation,
                                    );
                                    false
                                }
                                op => handler.handle(op, &mut to_flush),
                            };
                            buf.advance(used);
                        }
                        Ok(None) => break,
                        Err(e) => {
                            tracing::error!(%peer, "protocol error: {e}");
                            if matches!(e, RouteParseError::Malformed(_)) {
                                outbound.close(CloseReason::ParseError);
                            } else {
                                reject(outbound, &e.to_string(), CloseReason::ParseError);
                            }
                            keep = false;
                        }
                    }
                }
                for o in to_flush.drain(..) {
                    o.flush();
                }
                if !keep {
                    break 'read;
                }
                if buf.capacity() - buf.len() < 4096 {
                    buf.reserve(64 * 1024);
                }
            }
        }
    }
}

/// Sends `-ERR 'text'` and closes the link for `reason`.
pub(crate) fn reject(outbound: &Outbound, text: &str, reason: CloseReason) {
    let mut v = Vec::new();
    encode::err(&mut v, text);
    outbound.push_proto(&v);
    outbound.close(reason);
}
