//! NATS clients over WebSocket (`websocket {}`), as nats-server serves them: an HTTP/1.1
//! upgrade on the WebSocket port ([`handshake`]), then the client protocol carried in
//! binary frames ([`frame`]), every batch the server writes being one frame.
//!
//! The connection is an ordinary client from there on: [`WsReader`] turns the client's
//! frames back into the protocol byte stream `Client::run` reads, and the outbound side
//! frames what it writes (`Outbound::websocket`). Control frames (pongs, the closing
//! handshake) and the HTTP answer travel raw beside the batches.
//!
//! The same listener serves MQTT (path `/mqtt` or the `mqtt` subprotocol: the session of
//! `crate::mqtt` runs on a [`stream::WsStream`]) and leaf nodes (path `/leafnode`: the
//! leaf connection's read loop runs on the frames), and [`dial`] is the client side a
//! leaf connection to a `ws://` remote opens with.

pub mod dial;
pub mod frame;
pub mod handshake;
pub mod login;
pub mod stream;

use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll, ready};
use std::time::Duration;

use bytes::{Buf, Bytes, BytesMut};
use tokio::io::{AsyncRead, AsyncReadExt, ReadBuf};
use tokio::net::{TcpListener, TcpStream};

use crate::server::Server;
use crate::server::outbound::Outbound;
use frame::{Decoder, OpCode};
use handshake::Kind;

/// nats-server's default `handshake_timeout` when TLS is on (plain: the auth timeout).
const DEFAULT_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(2);

/// A WebSocket listener's settings, from `websocket {}`.
pub struct WsListener {
    pub origins: handshake::OriginPolicy,
    pub tls: Option<crate::tls::ServerTls>,
    pub handshake_timeout: Duration,
    pub headers: Vec<(String, String)>,
    /// `compression`: permessage-deflate when the client offers it.
    pub compression: bool,
}

impl WsListener {
    /// The listener's settings; `None` when `websocket {}` is absent or has no port.
    pub fn from_config(o: &natrix_config::Options) -> Result<Option<Self>, String> {
        let w = &o.websocket;
        if w.port == 0 {
            return Ok(None);
        }
        if w.tls.is_none() && !w.no_tls {
            return Err("websocket requires TLS configuration".into());
        }
        let tls = w
            .tls
            .as_ref()
            .map(crate::tls::server_tls)
            .transpose()
            .map_err(|e| format!("websocket: {e}"))?;
        Ok(Some(Self {
            origins: handshake::OriginPolicy::new(w.same_origin, &w.allowed_origins)?,
            tls,
            handshake_timeout: if w.handshake_timeout.is_zero() {
                DEFAULT_HANDSHAKE_TIMEOUT
            } else {
                w.handshake_timeout
            },
            headers: w.headers.clone(),
            compression: w.compression,
        }))
    }
}

/// Binds `websocket {}`'s port and serves it until shutdown.
pub async fn start(
    server: &Arc<Server>,
    o: &natrix_config::Options,
) -> Result<Option<SocketAddr>, String> {
    let Some(ws) = WsListener::from_config(o)? else {
        return Ok(None);
    };
    let host = if o.websocket.host.is_empty() {
        o.host.as_str()
    } else {
        o.websocket.host.as_str()
    };
    let port = u16::try_from(o.websocket.port.max(0)).map_err(|_| "port out of range")?;
    let listener = TcpListener::bind((host, port))
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!(
        "Listening for websocket clients on ws{}://{addr}",
        if ws.tls.is_some() { "s" } else { "" }
    );
    let server = server.clone();
    let ws = Arc::new(ws);
    tokio::spawn(async move { accept_loop(server, listener, ws).await });
    Ok(Some(addr))
}

async fn accept_loop(server: Arc<Server>, listener: TcpListener, ws: Arc<WsListener>) {
    server
        .accept_connections(listener, "Websocket", move |server, stream, peer| {
            serve(server, ws.clone(), stream, peer)
        })
        .await;
}

async fn serve(server: Arc<Server>, ws: Arc<WsListener>, mut stream: TcpStream, peer: SocketAddr) {
    let _ = stream.set_nodelay(true);
    let session = match &ws.tls {
        Some(tls) => match crate::tls::accept(tls, &mut stream, ws.handshake_timeout).await {
            Ok(s) => Some(s),
            Err(e) => {
                tracing::error!(%peer, "websocket TLS handshake error: {e}");
                return;
            }
        },
        None => None,
    };
    let (opts, _) = server.options();
    let (rd, wr) = stream.into_split();
    let outbound = Arc::new(Outbound::websocket(wr, opts.max_pending, session.clone()));
    let writer = tokio::spawn(outbound.clone().run_writer(opts.write_deadline));
    let tls = session.is_some();
    match session {
        Some(s) => {
            let rd = crate::tls::TlsReader::new(rd, s.clone(), outbound.clone());
            upgrade(&server, &ws, rd, &outbound, peer, Some(s), tls).await;
        }
        None => upgrade(&server, &ws, rd, &outbound, peer, None, tls).await,
    }
    outbound.close(crate::server::outbound::CloseReason::ClientClosed);
    let _ = writer.await;
}

/// Reads and answers the upgrade, then runs what it asked for over the frames: a NATS
/// client, an MQTT session or a leaf connection (by the path, [`Request::kind`]).
///
/// [`Request::kind`]: handshake::Request::kind
async fn upgrade<R: AsyncRead + Unpin + Send + 'static>(
    server: &Arc<Server>,
    ws: &WsListener,
    mut rd: R,
    outbound: &Arc<Outbound>,
    peer: SocketAddr,
    session: Option<crate::tls::Session>,
    tls: bool,
) {
    let mut head = BytesMut::with_capacity(1024);
    let parsed = tokio::time::timeout(ws.handshake_timeout, async {
        loop {
            match handshake::parse(&head) {
                Ok(Some(r)) => return Ok(r),
                Ok(None) => {}
                Err(e) => return Err(e),
            }
            match rd.read_buf(&mut head).await {
                Ok(0) | Err(_) => {
                    return Err(handshake::Rejection {
                        status: 400,
                        reason: "connection closed during handshake".into(),
                    });
                }
                Ok(_) => {}
            }
        }
    })
    .await;
    let result = match parsed {
        Err(_) => {
            tracing::error!(%peer, "websocket handshake error: handshake timeout");
            return;
        }
        Ok(Err(r)) => Err(r),
        // nats-server checks this before anything else in the request.
        Ok(Ok((req, _))) if req.kind() == Kind::Mqtt && server.mqtt_addr().is_none() => {
            Err(handshake::Rejection {
                status: 404,
                reason: "mqtt websocket endpoint not enabled".into(),
            })
        }
        Ok(Ok((req, len))) if head.len() > len => {
            let _ = req;
            Err(handshake::Rejection {
                status: 400,
                reason: "client sent data before handshake is complete".into(),
            })
        }
        Ok(Ok((req, _))) => handshake::check(&req, &ws.origins, tls).map(|a| (a, req)),
    };
    let (accept, req) = match result {
        Ok(a) => a,
        Err(r) => {
            tracing::error!("{peer} - {r}");
            outbound.push_ws_control(&handshake::refused(r.status));
            return;
        }
    };
    let deflate = ws.compression && accept.deflate_offered;
    outbound.push_ws_control(&handshake::accepted(&accept, deflate, &ws.headers));
    if deflate {
        outbound.set_ws_deflate();
    }
    let (opts, _) = server.options();
    let mut reader = WsReader::new(rd, outbound.clone(), ws_max_frame(opts.max_payload));
    reader.decoder.deflate = deflate;
    reader.decoder.require_mask = !accept.no_masking;
    match req.kind() {
        Kind::Client => {
            let login = login::WsLogin::new(&req, &opts.config, &opts.auth);
            server
                .clone()
                .serve_websocket_client(reader, outbound.clone(), peer, session, login)
                .await;
        }
        Kind::Mqtt => {
            tracing::debug!(%peer, "MQTT over websocket");
            let stream = stream::WsStream::new(reader, outbound.clone());
            crate::mqtt::serve_transport(server.clone(), Box::new(stream), peer).await;
            // The session is over: end the WebSocket with a normal closure, after its last
            // packets (a refusing CONNACK, a DISCONNECT with its reason) are out.
            outbound.flushed(server.options().0.write_deadline).await;
            let mut close = Vec::new();
            frame::encode_close(&mut close, frame::CLOSE_NORMAL, "");
            outbound.push_ws_control(&close);
        }
        Kind::Leaf => {
            let Some(leafnodes) = server.leafnodes().filter(|l| l.addr.is_some()).cloned() else {
                tracing::error!(%peer, "Not configured to accept leaf node connections");
                return;
            };
            crate::leafnode::accept_websocket(
                server.clone(),
                leafnodes,
                reader,
                outbound.clone(),
                peer,
            )
            .await;
        }
    }
}

/// The largest data frame accepted: a whole message with its protocol line, with room.
pub fn ws_max_frame(max_payload: i32) -> u64 {
    u64::try_from(max_payload).unwrap_or(1 << 20) * 2 + 64 * 1024
}

/// The client's byte stream out of its frames: data frames' payloads in order (a
/// compressed message inflated once whole); pings answered, pongs dropped, a close
/// answered and read as the end.
pub struct WsReader<R> {
    inner: R,
    outbound: Arc<Outbound>,
    pub decoder: Decoder,
    raw: BytesMut,
    ready: Bytes,
    /// The fragments of a compressed message read so far.
    packed: Vec<u8>,
    done: bool,
    /// This side is the WebSocket client (a dialled leaf connection): its control
    /// frames are masked too.
    pub mask_control: bool,
}

impl<R> WsReader<R> {
    pub fn new(inner: R, outbound: Arc<Outbound>, max_frame: u64) -> Self {
        Self {
            inner,
            outbound,
            decoder: Decoder::new(max_frame),
            raw: BytesMut::with_capacity(16 * 1024),
            ready: Bytes::new(),
            packed: Vec::new(),
            done: false,
            mask_control: false,
        }
    }

    /// Bytes already read from `inner` (behind the answer to a dialled upgrade), to be
    /// decoded before anything else.
    pub fn with_buffered(mut self, raw: &[u8]) -> Self {
        self.raw.extend_from_slice(raw);
        self
    }

    /// Queues a control frame, masked when this side is the client.
    fn control(&self, opcode: OpCode, payload: &[u8]) {
        let mut out = Vec::with_capacity(payload.len() + 6);
        if self.mask_control {
            frame::encode_masked(&mut out, opcode, payload, false);
        } else {
            frame::encode(&mut out, opcode, payload);
        }
        self.outbound.push_ws_control(&out);
    }

    /// Queues a close frame with `status` and `reason`.
    fn close_frame(&self, status: u16, reason: &str) {
        let mut out = Vec::new();
        if self.mask_control {
            frame::encode_close_masked(&mut out, status, reason);
        } else {
            frame::encode_close(&mut out, status, reason);
        }
        self.outbound.push_ws_control(&out);
    }
}

impl<R> WsReader<R> {
    /// Sends the close frame `e` calls for and ends the stream with `e`.
    fn fail(&mut self, e: &frame::FrameError) -> std::io::Error {
        self.close_frame(e.close_status(), &e.to_string());
        self.done = true;
        std::io::Error::new(std::io::ErrorKind::InvalidData, format!("websocket: {e}"))
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for WsReader<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        let this = &mut *self;
        loop {
            if !this.ready.is_empty() {
                let n = this.ready.len().min(buf.remaining());
                buf.put_slice(&this.ready[..n]);
                this.ready.advance(n);
                return Poll::Ready(Ok(()));
            }
            if this.done {
                return Poll::Ready(Ok(()));
            }
            match this.decoder.decode(&mut this.raw) {
                Ok(Some(f)) => match f.opcode {
                    OpCode::Text | OpCode::Binary | OpCode::Continuation if f.compressed => {
                        this.packed.extend_from_slice(&f.payload);
                        if f.fin {
                            let max =
                                usize::try_from(this.decoder.max_payload).unwrap_or(usize::MAX);
                            match frame::inflate(&this.packed, max) {
                                Ok(data) => this.ready = Bytes::from(data),
                                Err(e) => return Poll::Ready(Err(this.fail(&e))),
                            }
                            this.packed = Vec::new();
                        }
                    }
                    OpCode::Text | OpCode::Binary | OpCode::Continuation => this.ready = f.payload,
                    OpCode::Ping => this.control(OpCode::Pong, &f.payload),
                    OpCode::Pong => {}
                    OpCode::Close => {
                        // Echo the status (or a normal closure), then end the stream.
                        let status = match f.payload.get(..2) {
                            Some(s) => u16::from_be_bytes([s[0], s[1]]),
                            None => frame::CLOSE_NORMAL,
                        };
                        this.close_frame(status, "");
                        this.done = true;
                    }
                },
                Ok(None) => {
                    if this.raw.capacity() - this.raw.len() < 4096 {
                        this.raw.reserve(16 * 1024);
                    }
                    let mut chunk = [0u8; 16 * 1024];
                    let mut rb = ReadBuf::new(&mut chunk);
                    ready!(Pin::new(&mut this.inner).poll_read(cx, &mut rb))?;
                    if rb.filled().is_empty() {
                        this.done = true;
                        continue;
                    }
                    this.raw.extend_from_slice(rb.filled());
                }
                Err(e) => return Poll::Ready(Err(this.fail(&e))),
            }
        }
    }
}
