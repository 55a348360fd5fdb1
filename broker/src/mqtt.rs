//! MQTT 3.1.1 and 5.0 clients (`mqtt {}`), QoS 0: each MQTT connection is an ordinary
//! core client, as in nats-server, so authentication, permissions, `max_connections`,
//! `/connz` and slow-consumer handling are the NATS clients' own.
//!
//! The session task owns the socket. It decodes packets with `natrix_mqtt`'s codec and
//! speaks the client protocol to its core client through an in-memory pipe (`CONNECT`,
//! `SUB`, `UNSUB`, `PUB`, `PING`); the core client's output arrives on an internal sink
//! (`Outbound::internal`) and is turned back into MQTT: `MSG`/`HMSG` become PUBLISH,
//! a `PONG` completes the oldest pending CONNECT or SUBSCRIBE, `-ERR` lines in between
//! say which subscription the permissions refused. See `docs/design/mqtt.md` §4.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use bytes::{Buf as _, Bytes, BytesMut};
use natrix_mqtt::topic;
use natrix_mqtt::{
    ConnAck, Decoder, Disconnect, MqttString, Packet, Properties, ProtocolVersion, Publish, QoS,
    ReasonCode, SubAck, UnsubAck,
};
use rustc_hash::FxHashMap;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _, DuplexStream};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;

use crate::server::Server;
use crate::server::internal::{Frame, decode as decode_frame};
use crate::server::outbound::Outbound;

/// How long a connection may take to send CONNECT and be logged in.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// The byte stream an MQTT session runs on: a TCP socket of the MQTT listener, or the
/// binary frames of a WebSocket connection (`crate::websocket`, path `/mqtt`).
pub trait Transport: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send {}
impl<T: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send> Transport for T {}

/// Serves one MQTT connection on `sock`, already open (a WebSocket upgrade answered):
/// the entry point of transports other than the listener's own TCP sockets. The
/// session registry is the listener's (client IDs are one namespace whatever the
/// transport); without a started MQTT listener the connection is dropped.
pub async fn serve_transport(server: Arc<Server>, sock: Box<dyn Transport>, peer: SocketAddr) {
    let Some(ids) = server
        .mqtt_sessions()
        .and_then(|s| s.downcast::<ClientIds>().ok())
    else {
        tracing::debug!(%peer, "MQTT connection without an MQTT listener");
        return;
    };
    serve_on(server, sock, peer, ids).await;
}

/// Binds `mqtt {}`'s port and serves it until shutdown; `None` without `mqtt { port }`.
pub async fn start(
    server: &Arc<Server>,
    o: &natrix_config::Options,
) -> Result<Option<SocketAddr>, String> {
    if o.mqtt.port == 0 {
        return Ok(None);
    }
    if o.mqtt.tls.is_some() {
        return Err("mqtt: TLS is not supported yet".into());
    }
    // Refused rather than ignored: ignoring them would let in clients they exclude.
    let m = &o.mqtt;
    if !(m.username.is_empty()
        && m.password.is_empty()
        && m.token.is_empty()
        && m.no_auth_user.is_empty())
    {
        return Err(
            "mqtt: authorization and no_auth_user inside mqtt {} are not supported yet \
             (the server's own authorization applies to MQTT clients)"
                .into(),
        );
    }
    let host = if o.mqtt.host.is_empty() {
        o.host.as_str()
    } else {
        o.mqtt.host.as_str()
    };
    // -1 asks for a random port, as elsewhere in the configuration.
    let port = u16::try_from(o.mqtt.port.max(0)).map_err(|_| "port out of range")?;
    let listener = TcpListener::bind((host, port))
        .await
        .map_err(|e| e.to_string())?;
    let addr = listener.local_addr().map_err(|e| e.to_string())?;
    tracing::info!("Listening for MQTT clients on mqtt://{addr}");
    let server = server.clone();
    let ids = Arc::new(ClientIds::default());
    server.set_mqtt_sessions(ids.clone());
    tokio::spawn(async move { accept_loop(server, listener, ids).await });
    Ok(Some(addr))
}

/// The connected client IDs: a new connection with an ID in use takes it over (the
/// older connection is closed, 3.1.4-3), as nats-server does.
#[derive(Default)]
struct ClientIds {
    next: std::sync::atomic::AtomicU64,
    by_id: parking_lot::Mutex<FxHashMap<String, (u64, Arc<tokio::sync::Notify>)>>,
}

impl ClientIds {
    /// Registers `id`, telling its previous holder to close; returns this holder's number
    /// and the signal it is told by.
    fn take(&self, id: &str) -> (u64, Arc<tokio::sync::Notify>) {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let notify = Arc::new(tokio::sync::Notify::new());
        if let Some((_, old)) = self.by_id.lock().insert(id.to_owned(), (n, notify.clone())) {
            old.notify_one();
        }
        (n, notify)
    }

    fn release(&self, id: &str, n: u64) {
        let mut by_id = self.by_id.lock();
        if by_id.get(id).is_some_and(|(held, _)| *held == n) {
            by_id.remove(id);
        }
    }
}

async fn accept_loop(server: Arc<Server>, listener: TcpListener, ids: Arc<ClientIds>) {
    let mut shutdown = std::pin::pin!(server.wait_shutdown());
    loop {
        tokio::select! {
            res = listener.accept() => match res {
                Ok((stream, peer)) => {
                    let server = server.clone();
                    let ids = ids.clone();
                    tokio::spawn(async move { serve(server, stream, peer, ids).await });
                }
                Err(e) => {
                    tracing::error!("Temporary MQTT Accept Error ({e})");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
            () = &mut shutdown => break,
        }
        if server.is_lame_duck() {
            break;
        }
    }
}

/// What a `PONG` from the core client completes.
enum Pending {
    /// The login: a `PONG` means the CONNECT was accepted.
    Connect,
    /// A SUBSCRIBE: per filter, its reason so far and the subjects it subscribed.
    SubAck {
        packet_id: u16,
        filters: Vec<(ReasonCode, Vec<(u64, String)>)>,
    },
}

/// One NATS subscription behind an MQTT filter.
struct SubInfo {
    /// The filter starts with a wildcard: no `$` topics (4.7.2-1).
    reserved: bool,
}

struct Session {
    sock: Box<dyn Transport>,
    version: ProtocolVersion,
    decoder: Decoder,
    rbuf: BytesMut,
    /// The core client's protocol input.
    core_in: DuplexStream,
    /// The core client's output.
    core_out: mpsc::UnboundedReceiver<Vec<u8>>,
    /// Core output read past the login, for the main loop.
    obuf: BytesMut,
    /// Encoded packets not yet written to the socket.
    pending_out: BytesMut,
    pending: VecDeque<Pending>,
    /// `-ERR` texts seen since the last `PONG`.
    errors: Vec<String>,
    subs: FxHashMap<u64, SubInfo>,
    /// Filter → the sids subscribed for it.
    filters: FxHashMap<String, Vec<u64>>,
    next_sid: u64,
    keep_alive: Option<Duration>,
    will: Option<natrix_mqtt::LastWill>,
    client_id: String,
    peer: SocketAddr,
    /// `write_deadline`: a client that takes longer to read a batch is a slow consumer.
    write_deadline: Duration,
}

/// Why the session ends.
enum End {
    /// DISCONNECT: no will.
    Clean,
    /// Anything else: the will is published.
    Dropped(&'static str),
    /// DISCONNECT 0x04 (5.0): normal, with the will.
    WithWill,
}

async fn serve(server: Arc<Server>, sock: TcpStream, peer: SocketAddr, ids: Arc<ClientIds>) {
    let _ = sock.set_nodelay(true);
    serve_on(server, Box::new(sock), peer, ids).await;
}

/// One MQTT connection on any transport, from CONNECT to the end.
async fn serve_on(
    server: Arc<Server>,
    mut sock: Box<dyn Transport>,
    peer: SocketAddr,
    ids: Arc<ClientIds>,
) {
    let mut decoder = Decoder::new();
    // A whole packet is buffered before it is decoded: the limit is the server's
    // max_payload with room for the topic and properties, not MQTT's 256 MiB.
    let max_packet = packet_limit(server.options().0.max_payload);
    decoder.set_max_packet_size(max_packet);
    let mut rbuf = BytesMut::with_capacity(4096);
    let first = tokio::time::timeout(CONNECT_TIMEOUT, async {
        loop {
            match decoder.decode(&mut rbuf) {
                Ok(Some(p)) => return Ok(p),
                Ok(None) => {}
                Err(e) => return Err(Some(e)),
            }
            match sock.read_buf(&mut rbuf).await {
                Ok(0) | Err(_) => return Err(None),
                Ok(_) => {}
            }
        }
    })
    .await;
    let connect = match first {
        Ok(Ok(Packet::Connect(c))) => c,
        Ok(Ok(_)) => return,
        Ok(Err(Some(e))) => {
            tracing::debug!(%peer, "MQTT: {e}");
            if let Some((v, reply)) = decoder.failure_reply(&e) {
                let mut out = BytesMut::new();
                if reply.encode(v, &mut out).is_ok() {
                    let _ = sock.write_all(&out).await;
                }
            }
            return;
        }
        Ok(Err(None)) | Err(_) => return,
    };
    let version = connect.protocol_version;
    let refuse = |reason: ReasonCode| {
        let mut out = BytesMut::new();
        let _ = Packet::ConnAck(ConnAck {
            session_present: false,
            reason,
            properties: Properties::default(),
        })
        .encode(version, &mut out);
        out
    };
    // nats-server refuses an empty user name (3.1.1 return code 0x04).
    if connect.username.as_ref().is_some_and(MqttString::is_empty) {
        let _ = sock
            .write_all(&refuse(ReasonCode::BadUserNameOrPassword))
            .await;
        return;
    }
    let assigned = connect.client_id.is_empty();
    let client_id = if assigned {
        crate::server::new_nonce()
    } else {
        connect.client_id.as_str().to_owned()
    };

    // The core side: a client reading the pipe, writing into the channel.
    let (opts, _) = server.options();
    let (tx, core_out) = mpsc::unbounded_channel();
    let outbound = Arc::new(Outbound::internal(tx, opts.max_pending));
    let (core_in, core_rd) = tokio::io::duplex(64 * 1024);
    // The writer task moves the core client's batches into the channel, as it writes a
    // socket's.
    let writer = tokio::spawn(outbound.clone().run_writer(opts.write_deadline));
    let mut core = tokio::spawn({
        let (server, outbound, client_id) = (server.clone(), outbound.clone(), client_id.clone());
        async move {
            server
                .serve_mqtt_client(core_rd, outbound.clone(), peer, client_id)
                .await;
            outbound.close(crate::server::outbound::CloseReason::ClientClosed);
            let _ = writer.await;
        }
    });

    let mut s = Session {
        sock,
        version,
        decoder,
        rbuf,
        core_in,
        core_out,
        obuf: BytesMut::new(),
        pending_out: BytesMut::new(),
        pending: VecDeque::new(),
        errors: Vec::new(),
        subs: FxHashMap::default(),
        filters: FxHashMap::default(),
        next_sid: 1,
        keep_alive: (connect.keep_alive > 0)
            .then(|| Duration::from_millis(u64::from(connect.keep_alive) * 1500)),
        will: connect.will.clone(),
        client_id,
        peer,
        write_deadline: opts.write_deadline,
    };
    let mut login = serde_json::json!({
        "verbose": false,
        "pedantic": false,
        "headers": true,
        "protocol": 1,
    });
    if let Some(u) = &connect.username {
        login["user"] = u.as_str().into();
    }
    if let Some(p) = &connect.password {
        login["pass"] = String::from_utf8_lossy(p).into_owned().into();
    }
    let mut line = format!("CONNECT {login}\r\nPING\r\n").into_bytes();
    s.pending.push_back(Pending::Connect);
    if s.core_in.write_all(&line).await.is_err() {
        return;
    }
    line.clear();
    let accepted = tokio::time::timeout(CONNECT_TIMEOUT, s.await_login(&mut core)).await;
    if !matches!(accepted, Ok(true)) {
        tracing::debug!(%peer, client = %s.client_id, "MQTT: authorization violation");
        let _ = s.sock.write_all(&refuse(ReasonCode::NotAuthorized)).await;
        drop(s);
        let _ = core.await;
        return;
    }
    let mut props = Properties::default();
    if version == ProtocolVersion::V5 {
        props.maximum_qos = Some(0);
        props.maximum_packet_size = Some(max_packet);
        props.retain_available = Some(0);
        if assigned {
            props.assigned_client_identifier =
                MqttString::try_from_bytes(Bytes::from(s.client_id.clone())).ok();
        }
    }
    s.send(&Packet::ConnAck(ConnAck {
        session_present: false,
        reason: ReasonCode::Success,
        properties: props,
    }));
    let (held, taken_over) = ids.take(&s.client_id);
    let end = s.run(&mut core, &taken_over).await;
    ids.release(&s.client_id, held);
    tracing::debug!(peer = %s.peer, client = %s.client_id, "MQTT connection closed");
    if !matches!(end, End::Clean) {
        if let End::Dropped(why) = end {
            tracing::debug!(peer = %s.peer, "MQTT: {why}");
        }
        s.publish_will().await;
    }
    let _ = s.flush().await;
    let _ = s.core_in.shutdown().await;
    drop(s);
    let _ = core.await;
}

impl Session {
    /// Waits for the core's answer to CONNECT: `PONG` (logged in) or an error/close.
    async fn await_login(&mut self, core: &mut tokio::task::JoinHandle<()>) -> bool {
        let mut buf = BytesMut::new();
        loop {
            tokio::select! {
                chunk = self.core_out.recv() => {
                    let Some(chunk) = chunk else {
                        tracing::trace!("MQTT login: core output closed");
                        return false;
                    };
                    buf.extend_from_slice(&chunk);
                    while let Some(line_end) = memchr::memmem::find(&buf, b"\r\n") {
                        let line = buf.split_to(line_end + 2);
                        tracing::trace!("MQTT login: {}", String::from_utf8_lossy(&line).trim_end());
                        if line.starts_with(b"PONG") {
                            self.pending.pop_front();
                            // Anything after the PONG belongs to the session proper.
                            self.requeue(buf);
                            return true;
                        }
                        if line.starts_with(b"-ERR") {
                            return false;
                        }
                    }
                }
                _ = &mut *core => {
                    tracing::trace!("MQTT login: core client ended");
                    return false;
                }
            }
        }
    }

    /// Output read past the login, kept for the main loop.
    fn requeue(&mut self, rest: BytesMut) {
        self.obuf = rest;
    }

    fn send(&mut self, p: &Packet) {
        let mut out = BytesMut::new();
        if let Err(e) = p.encode(self.version, &mut out) {
            tracing::debug!(peer = %self.peer, "MQTT: cannot encode {:?}: {e}", p.packet_type());
            return;
        }
        self.pending_out.extend_from_slice(&out);
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.pending_out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.pending_out);
        // Deliveries wait in the core's channel meanwhile: a client that does not read
        // is closed after the write deadline, as a slow NATS consumer is.
        match tokio::time::timeout(self.write_deadline, self.sock.write_all(&out)).await {
            Ok(r) => r,
            Err(_) => {
                tracing::warn!(peer = %self.peer, client = %self.client_id,
                    "MQTT: slow consumer detected (write deadline)");
                Err(std::io::ErrorKind::TimedOut.into())
            }
        }
    }

    async fn run(
        &mut self,
        core: &mut tokio::task::JoinHandle<()>,
        taken_over: &tokio::sync::Notify,
    ) -> End {
        let mut frames = std::mem::take(&mut self.obuf);
        if let Err(end) = self.core_output(&mut frames).await {
            return end;
        }
        let mut deadline = self.keep_alive.map(|k| tokio::time::Instant::now() + k);
        loop {
            if self.flush().await.is_err() {
                return End::Dropped("write error");
            }
            // Packets already read (a client may send several at once).
            loop {
                match self.decoder.decode(&mut self.rbuf) {
                    Ok(Some(p)) => {
                        deadline = self.keep_alive.map(|k| tokio::time::Instant::now() + k);
                        if let Some(end) = self.packet(p).await {
                            let _ = self.flush().await;
                            return end;
                        }
                    }
                    Ok(None) => break,
                    Err(e) => {
                        tracing::debug!(peer = %self.peer, "MQTT: {e}");
                        if let Some((_, reply)) = self.decoder.failure_reply(&e) {
                            self.send(&reply);
                        }
                        let _ = self.flush().await;
                        return End::Dropped("malformed packet");
                    }
                }
            }
            if self.flush().await.is_err() {
                return End::Dropped("write error");
            }
            let keep_alive = async {
                match deadline {
                    Some(d) => tokio::time::sleep_until(d).await,
                    None => std::future::pending().await,
                }
            };
            tokio::select! {
                r = self.sock.read_buf(&mut self.rbuf) => match r {
                    Ok(0) | Err(_) => return End::Dropped("connection closed by client"),
                    Ok(_) => {}
                },
                chunk = self.core_out.recv() => match chunk {
                    Some(c) => {
                        frames.extend_from_slice(&c);
                        if let Err(end) = self.core_output(&mut frames).await {
                            return end;
                        }
                    }
                    None => return End::Dropped("closed by the server"),
                },
                () = keep_alive => return End::Dropped("keep-alive timeout"),
                () = taken_over.notified() => {
                    self.protocol_error(ReasonCode::SessionTakenOver);
                    let _ = self.flush().await;
                    return End::Dropped("session taken over by a new connection");
                }
                _ = &mut *core => return End::Dropped("closed by the server"),
            }
        }
    }

    /// Handles one packet from the client; `Some` ends the session.
    async fn packet(&mut self, p: Packet) -> Option<End> {
        match p {
            Packet::PingReq => self.send(&Packet::PingResp),
            Packet::Disconnect(d) => {
                return Some(if d.reason == ReasonCode::DisconnectWithWillMessage {
                    End::WithWill
                } else {
                    End::Clean
                });
            }
            Packet::Connect(_) => {
                // A second CONNECT is a protocol violation (3.1.0-2).
                self.protocol_error(ReasonCode::ProtocolError);
                return Some(End::Dropped("received a second CONNECT packet"));
            }
            Packet::Publish(p) => return self.publish(p).await,
            Packet::Subscribe(sub) => self.subscribe(sub).await?,
            Packet::Unsubscribe(u) => {
                let mut reasons = Vec::with_capacity(u.filters.len());
                let mut line = Vec::new();
                for f in &u.filters {
                    match self.filters.remove(f.as_str()) {
                        Some(sids) => {
                            for sid in sids {
                                self.subs.remove(&sid);
                                line.extend_from_slice(format!("UNSUB {sid}\r\n").as_bytes());
                            }
                            reasons.push(ReasonCode::Success);
                        }
                        None => reasons.push(ReasonCode::NoSubscriptionExisted),
                    }
                }
                if self.core_in.write_all(&line).await.is_err() {
                    return Some(End::Dropped("closed by the server"));
                }
                self.send(&Packet::UnsubAck(UnsubAck {
                    packet_id: u.packet_id,
                    reasons,
                    properties: Properties::default(),
                }));
            }
            // QoS 0 only: nothing is in flight, so acknowledgements have nothing to match.
            Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_) => {
                self.protocol_error(ReasonCode::ProtocolError);
                return Some(End::Dropped("acknowledgement without a QoS 1/2 message"));
            }
            Packet::Auth(_) => {
                self.protocol_error(ReasonCode::BadAuthenticationMethod);
                return Some(End::Dropped("AUTH without an authentication method"));
            }
            Packet::ConnAck(_) | Packet::SubAck(_) | Packet::UnsubAck(_) | Packet::PingResp => {
                self.protocol_error(ReasonCode::ProtocolError);
                return Some(End::Dropped("packet a client may not send"));
            }
        }
        None
    }

    /// 5.0: DISCONNECT with `reason` before closing; 3.1.1 just closes.
    fn protocol_error(&mut self, reason: ReasonCode) {
        if self.version == ProtocolVersion::V5 {
            self.send(&Packet::Disconnect(Disconnect {
                reason,
                properties: Properties::default(),
            }));
        }
    }

    async fn publish(&mut self, p: Publish) -> Option<End> {
        if p.qos != QoS::AtMostOnce {
            // Refused rather than acknowledged without storing it (see docs/mqtt.md).
            self.protocol_error(ReasonCode::QoSNotSupported);
            return Some(End::Dropped("QoS 1 and 2 are not supported yet"));
        }
        if p.retain && self.version == ProtocolVersion::V5 {
            self.protocol_error(ReasonCode::RetainNotSupported);
            return Some(End::Dropped("retained messages are not supported yet"));
        }
        let Ok(subject) = topic::topic_to_subject(p.topic.as_str()) else {
            self.protocol_error(ReasonCode::TopicNameInvalid);
            return Some(End::Dropped("invalid topic name"));
        };
        let headers = headers_of(&p.properties.user_properties);
        let mut out = Vec::with_capacity(subject.len() + headers.len() + p.payload.len() + 32);
        if headers.is_empty() {
            out.extend_from_slice(format!("PUB {subject} {}\r\n", p.payload.len()).as_bytes());
        } else {
            let total = headers.len() + p.payload.len();
            out.extend_from_slice(
                format!("HPUB {subject} {} {total}\r\n", headers.len()).as_bytes(),
            );
            out.extend_from_slice(&headers);
        }
        out.extend_from_slice(&p.payload);
        out.extend_from_slice(b"\r\n");
        if self.core_in.write_all(&out).await.is_err() {
            return Some(End::Dropped("closed by the server"));
        }
        None
    }

    /// Sends the SUBs and a PING; the SUBACK goes out when the PONG comes back, with the
    /// filters the permissions refused (their `-ERR`s arrive before the PONG) failed.
    async fn subscribe(&mut self, sub: natrix_mqtt::Subscribe) -> Option<()> {
        let mut filters = Vec::with_capacity(sub.filters.len());
        let mut line = Vec::new();
        for f in &sub.filters {
            let parsed = match topic::Subscription::parse(f.filter.as_str()) {
                Ok(s) => s,
                Err(e) => {
                    filters.push((e.reason_code(), Vec::new()));
                    continue;
                }
            };
            if self.filters.contains_key(f.filter.as_str()) {
                // Already subscribed: the subscription stays, the SUBACK grants it again.
                filters.push((ReasonCode::GRANTED_QOS0, Vec::new()));
                continue;
            }
            let mut subjects = vec![parsed.subject.to_string()];
            if let Some(parent) = parsed.parent() {
                subjects.push(parent.to_owned());
            }
            let mut sids = Vec::new();
            for subject in subjects {
                let sid = self.next_sid;
                self.next_sid += 1;
                let q = parsed.queue.map(|q| format!(" {q}")).unwrap_or_default();
                line.extend_from_slice(format!("SUB {subject}{q} {sid}\r\n").as_bytes());
                self.subs.insert(
                    sid,
                    SubInfo {
                        reserved: parsed.reserved(),
                    },
                );
                sids.push((sid, subject));
            }
            self.filters.insert(
                f.filter.as_str().to_owned(),
                sids.iter().map(|(sid, _)| *sid).collect(),
            );
            // QoS 1 and 2 are granted as 0 for now.
            filters.push((ReasonCode::GRANTED_QOS0, sids));
        }
        line.extend_from_slice(b"PING\r\n");
        self.pending.push_back(Pending::SubAck {
            packet_id: sub.packet_id,
            filters,
        });
        self.core_in.write_all(&line).await.ok()
    }

    /// Turns the core client's output into MQTT; `Err` ends the session.
    async fn core_output(&mut self, frames: &mut BytesMut) -> Result<(), End> {
        loop {
            match decode_frame(frames) {
                Frame::Msg(m, used) => {
                    frames.advance(used);
                    self.deliver(&m);
                }
                Frame::Skip(used) => {
                    let line = frames.split_to(used);
                    self.control(&line[..used - 2]).await?;
                }
                Frame::Incomplete => return Ok(()),
            }
        }
    }

    fn deliver(&mut self, m: &crate::server::internal::InternalMsg) {
        let Some(info) = self.subs.get(&m.sid) else {
            return;
        };
        let Ok(subject) = std::str::from_utf8(&m.subject) else {
            return;
        };
        if topic::must_ignore_for_reserved(info.reserved, subject) {
            return;
        }
        let Ok(t) =
            MqttString::try_from_bytes(Bytes::from(topic::subject_to_topic(subject).into_owned()))
        else {
            return;
        };
        let mut properties = Properties::default();
        if self.version == ProtocolVersion::V5 && !m.headers.is_empty() {
            properties.user_properties = user_properties_of(&m.headers);
        }
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: t,
            packet_id: 0,
            properties,
            payload: m.payload.clone(),
        }));
    }

    async fn control(&mut self, line: &[u8]) -> Result<(), End> {
        if line == b"PING" {
            if self.core_in.write_all(b"PONG\r\n").await.is_err() {
                return Err(End::Dropped("closed by the server"));
            }
        } else if line == b"PONG" {
            if let Some(Pending::SubAck { packet_id, filters }) = self.pending.pop_front() {
                let errors = std::mem::take(&mut self.errors);
                let mut reasons = Vec::with_capacity(filters.len());
                for (reason, sids) in filters {
                    let denied = sids.iter().any(|(_, subject)| {
                        let needle = format!("Subscription to \"{subject}\"");
                        errors.iter().any(|e| e.contains(&needle))
                    });
                    if denied {
                        // The core refused it: nothing is subscribed for this filter.
                        self.filters
                            .retain(|_, v| !v.iter().any(|s| sids[0].0 == *s));
                        for (sid, _) in &sids {
                            self.subs.remove(sid);
                        }
                        reasons.push(ReasonCode::NotAuthorized);
                    } else {
                        reasons.push(reason);
                    }
                }
                self.send(&Packet::SubAck(SubAck {
                    packet_id,
                    reasons,
                    properties: Properties::default(),
                }));
            }
        } else if line.starts_with(b"-ERR") {
            let text = String::from_utf8_lossy(line).into_owned();
            tracing::debug!(peer = %self.peer, client = %self.client_id, "MQTT: {text}");
            self.errors.push(text);
        }
        Ok(())
    }

    /// Publishes the will (QoS 0, never retained for now) as the client.
    async fn publish_will(&mut self) {
        let Some(will) = self.will.take() else {
            return;
        };
        let Ok(subject) = topic::topic_to_subject(will.topic.as_str()) else {
            return;
        };
        let mut out = Vec::with_capacity(subject.len() + will.payload.len() + 32);
        out.extend_from_slice(format!("PUB {subject} {}\r\n", will.payload.len()).as_bytes());
        out.extend_from_slice(&will.payload);
        out.extend_from_slice(b"\r\n");
        let _ = self.core_in.write_all(&out).await;
    }
}

/// The largest packet a client may send: `max_payload` plus 64 KiB for the rest.
fn packet_limit(max_payload: i32) -> u32 {
    u32::try_from(max_payload)
        .unwrap_or(1 << 20)
        .saturating_add(64 * 1024)
}

/// 5.0 user properties as a NATS header block (empty without any): one `key: value` line
/// per property, in order, duplicates kept. A pair NATS headers cannot carry (a key with
/// `:`, whitespace or control characters; a line break in the value) is left out.
fn headers_of(props: &[(MqttString, MqttString)]) -> Vec<u8> {
    let mut h = Vec::new();
    for (k, v) in props {
        let key_ok = !k.is_empty()
            && k.as_bytes()
                .iter()
                .all(|&b| b > b' ' && b != b':' && b != 0x7f);
        let value_ok = !v.as_bytes().iter().any(|&b| b == b'\r' || b == b'\n');
        if !(key_ok && value_ok) {
            continue;
        }
        if h.is_empty() {
            h.extend_from_slice(b"NATS/1.0\r\n");
        }
        h.extend_from_slice(k.as_bytes());
        h.extend_from_slice(b": ");
        h.extend_from_slice(v.as_bytes());
        h.extend_from_slice(b"\r\n");
    }
    if !h.is_empty() {
        h.extend_from_slice(b"\r\n");
    }
    h
}

/// A NATS header block's fields as 5.0 user properties (the status line is dropped).
fn user_properties_of(headers: &[u8]) -> Vec<(MqttString, MqttString)> {
    let text = String::from_utf8_lossy(headers);
    text.split("\r\n")
        .skip(1)
        .filter_map(|line| {
            let (k, v) = line.split_once(':')?;
            let k = MqttString::try_from_bytes(Bytes::copy_from_slice(k.trim().as_bytes())).ok()?;
            let v = MqttString::try_from_bytes(Bytes::copy_from_slice(v.trim().as_bytes())).ok()?;
            (!k.is_empty()).then_some((k, v))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: &str) -> MqttString {
        MqttString::try_from_bytes(Bytes::copy_from_slice(v.as_bytes())).expect("string")
    }

    #[test]
    fn user_properties_and_headers() {
        let props = vec![
            (s("a"), s("1")),
            (s("a"), s("2")),
            (s("bad key"), s("x")),
            (s("b"), s("x\ny")),
        ];
        let h = headers_of(&props);
        assert_eq!(h, b"NATS/1.0\r\na: 1\r\na: 2\r\n\r\n");
        assert_eq!(
            user_properties_of(&h),
            vec![(s("a"), s("1")), (s("a"), s("2"))]
        );
        assert!(headers_of(&[(s("bad:key"), s("v"))]).is_empty());
        assert!(user_properties_of(b"NATS/1.0 503\r\n\r\n").is_empty());
    }
}
