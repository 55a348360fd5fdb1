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

mod jsa;
mod qos;
mod retained;
mod state;
mod v5;

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
    let over_ws = Origin {
        websocket: true,
        ..Origin::default()
    };
    serve_on(server, sock, peer, ids, over_ws).await;
}

/// Binds `mqtt {}`'s port and serves it until shutdown; `None` without `mqtt { port }`.
pub async fn start(
    server: &Arc<Server>,
    o: &natrix_config::Options,
) -> Result<Option<SocketAddr>, String> {
    if o.mqtt.port == 0 {
        return Ok(None);
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
    // nats-server's scheme names: `tls` when the listener is TLS.
    let scheme = if o.mqtt.tls.is_some() { "tls" } else { "mqtt" };
    tracing::info!("Listening for MQTT clients on {scheme}://{addr}");
    let server = server.clone();
    let ids = Arc::new(ClientIds {
        opts: o.mqtt.clone(),
        // With `js_domain` the state lives in that domain's JetStream, perhaps over a
        // leaf node, whether or not this server runs JetStream itself.
        jetstream: o.jetstream.enabled || !o.mqtt.js_domain.is_empty(),
        ..ClientIds::default()
    });
    server.set_mqtt_sessions(ids.clone());
    tokio::spawn(async move { accept_loop(server, listener, ids).await });
    Ok(Some(addr))
}

/// nats-server's `TLS_TIMEOUT`, the default of `mqtt { tls { timeout } }`.
pub const DEFAULT_TLS_TIMEOUT: Duration = Duration::from_secs(2);

/// The connected client IDs, one namespace per account: a new connection with an ID in
/// use takes it over (the older connection is closed, 3.1.4-3), as nats-server does.
#[derive(Default)]
struct ClientIds {
    next: std::sync::atomic::AtomicU64,
    by_id: parking_lot::Mutex<FxHashMap<String, Holder>>,
    /// Per client ID, the 5.0 will waiting for its Will Delay Interval (3.1.3.2.2): the
    /// holder number of the session it belongs to and how to tell it what became of the
    /// session (`true`: it ended, publish now; `false`: it was resumed, drop the will).
    /// Locked after `by_id` when both are.
    wills: parking_lot::Mutex<FxHashMap<String, (u64, tokio::sync::oneshot::Sender<bool>)>>,
    /// The accounts whose MQTT streams exist (created on first use).
    streams_ready: parking_lot::Mutex<rustc_hash::FxHashSet<String>>,
    /// `mqtt {}` as configured at start.
    opts: natrix_config::options::MqttOpts,
    /// Whether JetStream is reachable (on here, or `js_domain` names one): QoS 1/2,
    /// retained messages and sessions need it.
    jetstream: bool,
    /// Per client ID, the holder number of the session that ended last (5.0 session
    /// expiry removes the session only if nobody resumed it since).
    ended: parking_lot::Mutex<FxHashMap<String, u64>>,
}

/// The connection that holds a client ID.
struct Holder {
    /// Its holder number.
    n: u64,
    /// Told when a newer connection takes the ID over.
    taken_over: Arc<tokio::sync::Notify>,
    /// Held by a session while it works on its state.
    lock: Arc<tokio::sync::Mutex<()>>,
    /// It connected with Clean Start (Clean Session): the previous session ended then.
    clean: bool,
}

impl ClientIds {
    /// Registers `id` for a connection that asked for a clean start or not, telling its
    /// previous holder to close; returns this holder's number, the signal it is told by,
    /// and the lock a session holds while it runs, so that a new holder starts on the
    /// session state only after the old one has let go of it. A will still waiting for
    /// its delay is dropped when the session is resumed, and published at once when a
    /// clean start ends the session (3.1.3-9).
    fn take(
        &self,
        id: &str,
        clean: bool,
    ) -> (u64, Arc<tokio::sync::Notify>, Arc<tokio::sync::Mutex<()>>) {
        let n = self.next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let notify = Arc::new(tokio::sync::Notify::new());
        let mut by_id = self.by_id.lock();
        let lock = by_id
            .get(id)
            .map_or_else(|| Arc::new(tokio::sync::Mutex::new(())), |h| h.lock.clone());
        let holder = Holder {
            n,
            taken_over: notify.clone(),
            lock: lock.clone(),
            clean,
        };
        if let Some(old) = by_id.insert(id.to_owned(), holder) {
            old.taken_over.notify_one();
        }
        if let Some((_, will)) = self.wills.lock().remove(id) {
            let _ = will.send(clean);
        }
        (n, notify, lock)
    }

    fn release(&self, id: &str, n: u64) {
        let mut by_id = self.by_id.lock();
        if by_id.get(id).is_some_and(|h| h.n == n) {
            by_id.remove(id);
        }
    }

    /// The session of holder `n` ended with a will that has a delay: registers it to wait
    /// unless a newer connection already holds the ID, in which case `Err` says whether
    /// that connection ended the session (clean start: publish now) or resumed it (no will).
    fn defer_will(&self, id: &str, n: u64) -> Result<tokio::sync::oneshot::Receiver<bool>, bool> {
        let by_id = self.by_id.lock();
        if let Some(h) = by_id.get(id).filter(|h| h.n != n) {
            return Err(h.clean);
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        self.wills.lock().insert(id.to_owned(), (n, tx));
        Ok(rx)
    }

    /// The delay of holder `n`'s will has passed: whether it is still to be published
    /// (no newer connection took the ID meanwhile), forgetting it either way.
    fn will_due(&self, id: &str, n: u64, told: &mut tokio::sync::oneshot::Receiver<bool>) -> bool {
        let mut wills = self.wills.lock();
        if wills.get(id).is_some_and(|(held, _)| *held == n) {
            wills.remove(id);
            return true;
        }
        // `take` got there first and said what became of the session.
        told.try_recv().unwrap_or(false)
    }

    /// Whether holder `n` was the last to end a session of `id`.
    fn ended_last(&self, id: &str, n: u64) -> bool {
        self.ended.lock().get(id).is_some_and(|last| *last == n)
    }
}

async fn accept_loop(server: Arc<Server>, listener: TcpListener, ids: Arc<ClientIds>) {
    server
        .accept_connections(listener, "MQTT", move |server, stream, peer| {
            serve(server, stream, peer, ids.clone())
        })
        .await;
}

/// What a `PONG` from the core client completes.
enum Pending {
    /// The login: a `PONG` means the CONNECT was accepted.
    Connect,
    /// A SUBSCRIBE: per filter, its reason so far and the subjects it subscribed; then
    /// the retained messages its filters match, sent after the SUBACK.
    SubAck {
        packet_id: Option<u16>,
        filters: Vec<(ReasonCode, Vec<(u64, String)>)>,
        retained: Vec<(natrix_mqtt::store::RetainedMessage, QoS)>,
    },
    /// A QoS 1/2 PUBLISH (or a released QoS 2 one): stored and acknowledged on `PONG`.
    Publish(Box<qos::StoredPublish>),
}

/// One NATS subscription behind an MQTT filter.
struct SubInfo {
    /// The filter starts with a wildcard: no `$` topics (4.7.2-1).
    reserved: bool,
    /// The QoS granted to the filter: above 0, messages MQTT clients published at QoS 1/2
    /// come through the filter's JetStream consumer instead.
    qos: u8,
    opts: v5::SubOptions,
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
    /// QoS 1/2, retained messages and the session record, when JetStream is on.
    js: Option<state::Persist>,
    /// QoS 1/2 deliveries not yet acknowledged, and next packet identifier.
    outgoing: qos::Outgoing,
    /// 5.0 state (topic aliases, the client's limits, No Local).
    v5: v5::V5,
    /// CONNECT's Session Expiry Interval (5.0; 0 when absent).
    connect_expiry: u32,
    /// The Session Expiry Interval the client's DISCONNECT set, replacing CONNECT's.
    disconnect_expiry: Option<u32>,
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

/// One connection of the MQTT listener: with `mqtt { tls {} }` the TLS handshake comes
/// first, on the TLS settings current when it arrives (a reload renews certificates).
async fn serve(server: Arc<Server>, sock: TcpStream, peer: SocketAddr, ids: Arc<ClientIds>) {
    let _ = sock.set_nodelay(true);
    let tls = {
        let (opts, _) = server.options();
        let timeout = match opts.config.mqtt.tls_timeout {
            t if t.is_zero() => DEFAULT_TLS_TIMEOUT,
            t => t,
        };
        opts.mqtt_tls
            .as_ref()
            .map(|t| (tokio_rustls::TlsAcceptor::from(t.config.clone()), timeout))
    };
    let Some((acceptor, timeout)) = tls else {
        serve_on(server, Box::new(sock), peer, ids, Origin::default()).await;
        return;
    };
    let stream = match tokio::time::timeout(timeout, acceptor.accept(sock)).await {
        Ok(Ok(s)) => s,
        Ok(Err(e)) => {
            tracing::error!(%peer, "MQTT TLS handshake error: {e}");
            return;
        }
        Err(_) => {
            tracing::error!(%peer, "MQTT TLS handshake error: TLS handshake timeout");
            return;
        }
    };
    let conn = stream.get_ref().1;
    let certs = crate::tls::peer_certs_of(conn);
    let info = Origin {
        described: Some(crate::tls::describe_state(conn)),
        peer_certs: (!certs.is_empty()).then(|| Arc::new(certs)),
        websocket: false,
    };
    tracing::debug!(%peer, "MQTT TLS handshake complete");
    serve_on(server, Box::new(stream), peer, ids, info).await;
}

/// How a connection reached the session: over the MQTT listener (what its TLS
/// handshake established, if any) or over the WebSocket listener.
#[derive(Default)]
struct Origin {
    /// Protocol and cipher suite, for `/connz`.
    described: Option<(String, String)>,
    /// The client's certificate chain, for `/connz` and `verify_and_map`.
    peer_certs: Option<Arc<Vec<crate::x509::PeerCert>>>,
    /// The connection came over the WebSocket listener, not this one.
    websocket: bool,
}

/// Writes `bytes` and flushes them: a TLS stream may keep the last records it sealed
/// until flushed, and these writes are often the last before the connection closes.
async fn write_out(sock: &mut Box<dyn Transport>, bytes: &[u8]) -> std::io::Result<()> {
    sock.write_all(bytes).await?;
    sock.flush().await
}

/// How long a new connection has to send CONNECT: when its login needs credentials,
/// `mqtt { authorization { timeout } }` or else the server's `authorization { timeout }`
/// (nats-server's auth timer, which it arms for MQTT clients at accept); otherwise
/// [`CONNECT_TIMEOUT`].
fn connect_timeout(server: &Server) -> Duration {
    let (opts, _) = server.options();
    let m = &opts.config.mqtt;
    let required = server.trust().is_some()
        || opts
            .auth
            .for_mqtt(m)
            .map_or_else(|| opts.auth.required(), |a| a.required());
    match (required, m.auth_timeout.is_zero()) {
        (false, _) => CONNECT_TIMEOUT,
        (true, false) => m.auth_timeout,
        (true, true) => opts.auth_timeout,
    }
}

/// One MQTT connection on any transport, from CONNECT to the end.
async fn serve_on(
    server: Arc<Server>,
    mut sock: Box<dyn Transport>,
    peer: SocketAddr,
    ids: Arc<ClientIds>,
    origin: Origin,
) {
    let mut decoder = Decoder::new();
    // A whole packet is buffered before it is decoded: the limit is the server's
    // max_payload with room for the topic and properties, not MQTT's 256 MiB.
    let max_packet = packet_limit(server.options().0.max_payload);
    decoder.set_max_packet_size(max_packet);
    let mut rbuf = BytesMut::with_capacity(4096);
    let first = tokio::time::timeout(connect_timeout(&server), async {
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
                    let _ = write_out(&mut sock, &out).await;
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
        let _ = write_out(&mut sock, &refuse(ReasonCode::BadUserNameOrPassword)).await;
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
    let (cid_tx, cid_rx) = tokio::sync::oneshot::channel();
    let mut core = tokio::spawn({
        let (server, outbound) = (server.clone(), outbound.clone());
        let conn = crate::server::MqttConn {
            peer,
            client_id: client_id.clone(),
            tls: origin.described,
            peer_certs: origin.peer_certs,
            websocket: origin.websocket,
        };
        async move {
            server
                .serve_mqtt_client(core_rd, outbound.clone(), conn, move |cid| {
                    let _ = cid_tx.send(cid);
                })
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
        js: None,
        outgoing: qos::Outgoing::default(),
        v5: v5::V5::new(&connect.properties),
        connect_expiry: connect.properties.session_expiry_interval.unwrap_or(0),
        disconnect_expiry: None,
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
        let _ = write_out(&mut s.sock, &refuse(ReasonCode::NotAuthorized)).await;
        drop(s);
        core_ended(core).await;
        return;
    }
    // One session per client ID and account: the previous holder is told to close and
    // this one waits until it has (its state is this session's to load).
    let Ok(cid) = cid_rx.await else {
        return;
    };
    let account = server
        .client_account(cid)
        .unwrap_or_else(|| "$G".to_owned());
    let (held, taken_over, id_lock) = ids.take(
        &format!("{account}\u{0}{}", s.client_id),
        connect.clean_start || assigned,
    );
    let Ok(_session_guard) = tokio::time::timeout(CONNECT_TIMEOUT, id_lock.lock_owned()).await
    else {
        tracing::debug!(peer = %s.peer, client = %s.client_id, "MQTT: previous session did not end");
        return;
    };
    let mut session_present = false;
    let session_expiry = (version == ProtocolVersion::V5)
        .then_some(connect.properties.session_expiry_interval)
        .flatten()
        .filter(|e| *e > 0 && ids.jetstream);
    if ids.jetstream {
        let persistent = if version == ProtocolVersion::V5 {
            connect
                .properties
                .session_expiry_interval
                .is_some_and(|e| e > 0)
        } else {
            !connect.clean_start
        };
        match state::Persist::open(&server, &ids, &account, &s.client_id, &ids.opts).await {
            Ok(mut p) => {
                match p.load(connect.clean_start || assigned, persistent).await {
                    Ok(present) => session_present = present,
                    Err(e) => {
                        tracing::warn!(client = %s.client_id, "MQTT: unable to load session: {e}");
                        let _ =
                            write_out(&mut s.sock, &refuse(ReasonCode::ServerUnavailable)).await;
                        return;
                    }
                }
                s.js = Some(p);
            }
            Err(e) => {
                tracing::warn!(client = %s.client_id, "MQTT: unable to reach JetStream: {e}");
                let _ = write_out(&mut s.sock, &refuse(ReasonCode::ServerUnavailable)).await;
                return;
            }
        }
    }
    let mut props = Properties::default();
    if version == ProtocolVersion::V5 {
        if s.js.is_none() {
            props.maximum_qos = Some(0);
            props.retain_available = Some(0);
        }
        props.maximum_packet_size = Some(max_packet);
        props.topic_alias_maximum = Some(v5::TOPIC_ALIAS_MAXIMUM);
        if assigned {
            props.assigned_client_identifier =
                MqttString::try_from_bytes(Bytes::from(s.client_id.clone())).ok();
        }
    }
    s.send(&Packet::ConnAck(ConnAck {
        session_present,
        reason: ReasonCode::Success,
        properties: props,
    }));
    // A resumed session's subscriptions, as the client made them.
    if let Some(filters) = s.js.as_ref().map(state::Persist::stored_filters)
        && !filters.is_empty()
        && s.subscribe_filters(
            None,
            filters
                .into_iter()
                .map(|(filter, qos)| Want {
                    filter,
                    qos,
                    retain_handling: 2,
                    opts: v5::SubOptions::default(),
                })
                .collect(),
        )
        .await
        .is_none()
    {
        return;
    }
    if s.js.as_ref().is_some_and(state::Persist::has_pubrel) {
        s.ensure_pubrel_consumer().await;
    }
    let end = s.run(&mut core, &taken_over).await;
    // 5.0: DISCONNECT may change the Session Expiry Interval (3.14.2.2.2); 0 ends the
    // session with this connection, so it is discarded below as a clean one is.
    let kept = session_expiry;
    let session_expiry = match s.disconnect_expiry {
        Some(e) => kept.and((e > 0).then_some(e)),
        None => kept,
    };
    let discard = kept.is_some() && session_expiry.is_none();
    // Read while the core client is still registered: a delayed will is published
    // under these.
    let permissions = server.client_meta(cid).and_then(|m| m.permissions);
    let key = format!("{account}\u{0}{}", s.client_id);
    ids.release(&key, held);
    ids.ended.lock().insert(key.clone(), held);
    tracing::debug!(peer = %s.peer, client = %s.client_id, "MQTT connection closed");
    if !matches!(end, End::Clean) {
        if let End::Dropped(why) = end {
            tracing::debug!(peer = %s.peer, "MQTT: {why}");
        }
        match will_delay(s.will.as_ref(), version, session_expiry) {
            None => s.publish_will().await,
            Some(delay) => match (ids.defer_will(&key, held), s.will.take()) {
                // A newer connection holds the ID already: it ended the session (clean
                // start), so the will goes now; or it resumed it, so never.
                (Err(true), will) => {
                    s.will = will;
                    s.publish_will().await;
                }
                (Err(false), _) | (Ok(_), None) => {}
                (Ok(told), Some(will)) => {
                    let e = Ended {
                        server: server.clone(),
                        ids: ids.clone(),
                        account: account.clone(),
                        client_id: s.client_id.clone(),
                        key: key.clone(),
                        held,
                    };
                    tokio::spawn(deferred_will(e, delay, told, will, permissions));
                }
            },
        }
    }
    let _ = s.flush().await;
    if let Some(p) = s.js.as_mut() {
        // Deliveries stop here; a shared consumer is then deleted with a clean session
        // only if no other member of its group is connected.
        for isid in s.outgoing.js_subs.keys() {
            p.jsa.client().unsubscribe(*isid);
        }
        if discard {
            p.discard().await;
        } else {
            if let Some(expiry) = session_expiry.filter(|e| *e != u32::MAX) {
                p.mark_ended(expiry).await;
            }
            p.end().await;
        }
    }
    // 5.0 Session Expiry Interval (3.1.2.11.2): a kept session that is not resumed in
    // time is removed, as a clean one is at once. u32::MAX never expires.
    if let Some(expiry) = session_expiry
        && expiry != u32::MAX
    {
        let (server, ids, account, client_id) = (
            server.clone(),
            ids.clone(),
            account.clone(),
            s.client_id.clone(),
        );
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_secs(u64::from(expiry))).await;
            if !ids.ended_last(&key, held) || ids.by_id.lock().contains_key(&key) {
                return;
            }
            let opts = ids.opts.clone();
            match state::Persist::open(&server, &ids, &account, &client_id, &opts).await {
                Ok(mut p) => {
                    if let Err(e) = p.load(true, false).await {
                        tracing::warn!(client = %client_id, "MQTT: expiring session: {e}");
                    } else {
                        tracing::debug!(client = %client_id, "MQTT: session expired");
                    }
                }
                Err(e) => tracing::warn!(client = %client_id, "MQTT: expiring session: {e}"),
            }
        });
    }
    let _ = s.core_in.shutdown().await;
    drop(s);
    core_ended(core).await;
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

    /// Queues a packet for the socket; `false` if it was not sent: it cannot be encoded,
    /// or it is larger than the client's Maximum Packet Size (5.0: discarded as if sent,
    /// 3.1.2-25).
    fn send(&mut self, p: &Packet) -> bool {
        // 5.0: a PUBLISH gets a server topic alias when the client allows them.
        let aliased = match p {
            Packet::Publish(publish) if self.version == ProtocolVersion::V5 => self
                .v5
                .outgoing_alias(publish.topic.as_str())
                .map(|(alias, known)| {
                    let mut a = publish.clone();
                    a.properties.topic_alias = Some(alias);
                    if known {
                        a.topic = MqttString::default();
                    }
                    (Packet::Publish(a), alias, known)
                }),
            _ => None,
        };
        let packet = aliased.as_ref().map_or(p, |(a, _, _)| a);
        let mut out = BytesMut::new();
        if let Err(e) = packet.encode(self.version, &mut out) {
            tracing::debug!(peer = %self.peer, "MQTT: cannot encode {:?}: {e}", p.packet_type());
            return false;
        }
        if self
            .v5
            .maximum_packet_size
            .is_some_and(|max| out.len() > max as usize)
        {
            tracing::debug!(peer = %self.peer, "MQTT: {:?} over the client's Maximum Packet Size dropped",
                p.packet_type());
            return false;
        }
        // The client learns an alias only from a PUBLISH that reached it.
        if let (Some((_, alias, false)), Packet::Publish(publish)) = (&aliased, p) {
            self.v5.alias_sent(publish.topic.as_str(), *alias);
        }
        self.pending_out.extend_from_slice(&out);
        true
    }

    async fn flush(&mut self) -> std::io::Result<()> {
        if self.pending_out.is_empty() {
            return Ok(());
        }
        let out = std::mem::take(&mut self.pending_out);
        // Deliveries wait in the core's channel meanwhile: a client that does not read
        // is closed after the write deadline, as a slow NATS consumer is.
        match tokio::time::timeout(self.write_deadline, write_out(&mut self.sock, &out)).await {
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
                m = next_js(&mut self.js) => match m {
                    Some(m) => self.js_deliver(&m),
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
            Packet::PingReq => {
                self.send(&Packet::PingResp);
            }
            Packet::Disconnect(d) => {
                if let Some(e) = d.properties.session_expiry_interval {
                    // 3.14.2.2.2: a session that was to end with its connection cannot be
                    // kept by its DISCONNECT.
                    if self.connect_expiry == 0 && e > 0 {
                        self.protocol_error(ReasonCode::ProtocolError);
                        return Some(End::Dropped(
                            "DISCONNECT set a Session Expiry Interval after CONNECT's 0",
                        ));
                    }
                    self.disconnect_expiry = Some(e);
                }
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
            Packet::Subscribe(sub) => {
                let id = sub
                    .properties
                    .subscription_identifiers
                    .first()
                    .copied()
                    .unwrap_or(0);
                let filters = sub
                    .filters
                    .iter()
                    .map(|f| Want {
                        filter: f.filter.as_str().to_owned(),
                        qos: f.options.qos.as_u8(),
                        retain_handling: f.options.retain_handling as u8,
                        opts: v5::SubOptions {
                            no_local: f.options.no_local,
                            retain_as_published: f.options.retain_as_published,
                            id,
                        },
                    })
                    .collect();
                self.subscribe_filters(Some(sub.packet_id), filters).await?;
            }
            Packet::Unsubscribe(u) => {
                let mut reasons = Vec::with_capacity(u.filters.len());
                let mut line = Vec::new();
                for f in &u.filters {
                    match self.filters.remove(f.as_str()) {
                        Some(sids) => {
                            self.drop_no_local(&sids);
                            for sid in sids {
                                self.subs.remove(&sid);
                                line.extend_from_slice(format!("UNSUB {sid}\r\n").as_bytes());
                            }
                            self.forget_filter(f.as_str()).await;
                            reasons.push(ReasonCode::Success);
                        }
                        None => reasons.push(ReasonCode::NoSubscriptionExisted),
                    }
                }
                if let Some(js) = self.js.as_mut() {
                    js.save().await;
                }
                if self.core_in.write_all(&line).await.is_err() {
                    return Some(End::Dropped("closed by the server"));
                }
                if self.version != ProtocolVersion::V5 {
                    // 3.1.1's UNSUBACK has no reason codes (3.11.3); with them it
                    // cannot be encoded and the client would wait for it forever.
                    reasons.clear();
                }
                self.send(&Packet::UnsubAck(UnsubAck {
                    packet_id: u.packet_id,
                    reasons,
                    properties: Properties::default(),
                }));
            }
            // Without JetStream nothing is in flight: acknowledgements have nothing to match.
            Packet::PubAck(_) | Packet::PubRec(_) | Packet::PubRel(_) | Packet::PubComp(_)
                if self.js.is_none() =>
            {
                self.protocol_error(ReasonCode::ProtocolError);
                return Some(End::Dropped("acknowledgement without a QoS 1/2 message"));
            }
            Packet::PubAck(r) => self.puback(r.packet_id),
            Packet::PubRec(r) => self.pubrec(r.packet_id).await,
            Packet::PubRel(r) => return self.pubrel(r.packet_id).await,
            Packet::PubComp(r) => self.pubcomp(r.packet_id),
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

    async fn publish(&mut self, mut p: Publish) -> Option<End> {
        if self.version == ProtocolVersion::V5
            && let Err(reason) = self.v5.resolve_alias(&mut p)
        {
            self.protocol_error(reason);
            return Some(End::Dropped("invalid topic alias"));
        }
        if self.js.is_none() {
            if p.qos != QoS::AtMostOnce {
                // Refused rather than acknowledged without storing it (see docs/mqtt.md).
                self.protocol_error(ReasonCode::QoSNotSupported);
                return Some(End::Dropped("QoS 1 and 2 need JetStream"));
            }
            if p.retain && self.version == ProtocolVersion::V5 {
                self.protocol_error(ReasonCode::RetainNotSupported);
                return Some(End::Dropped("retained messages need JetStream"));
            }
        }
        let Ok(subject) = topic::topic_to_subject(p.topic.as_str()) else {
            self.protocol_error(ReasonCode::TopicNameInvalid);
            return Some(End::Dropped("invalid topic name"));
        };
        let subject = subject.into_owned();
        // 5.0 request/response: the Response Topic is the NATS reply subject.
        let reply = p
            .properties
            .response_topic
            .as_ref()
            .and_then(|t| topic::topic_to_subject(t.as_str()).ok())
            .map(std::borrow::Cow::into_owned);
        let origin = (self.v5.no_local_subs > 0).then(|| self.v5.origin.clone());
        let retain = p.retain && self.js.is_some();
        let user = headers_of(&p.properties.user_properties);
        let stored_reply = reply.as_deref().filter(|_| p.qos != QoS::AtMostOnce);
        let headers = v5::publish_headers(
            p.qos.as_u8(),
            retain,
            &p.properties,
            stored_reply,
            origin.as_deref(),
            &user,
        );
        if p.qos != QoS::AtMostOnce {
            return self.publish_stored(p, subject, headers, reply).await;
        }
        if !self
            .core_publish(&subject, reply.as_deref(), &headers, &p.payload)
            .await
        {
            return Some(End::Dropped("closed by the server"));
        }
        if retain {
            self.store_retained(&subject, p.topic.as_str(), 1, &p.payload)
                .await;
        }
        None
    }

    /// Sends the SUBs and a PING; the SUBACK goes out when the PONG comes back, with the
    /// filters the permissions refused (their `-ERR`s arrive before the PONG) failed.
    /// QoS 1/2 filters get their JetStream consumers first. `packet_id` is `None` for a
    /// resumed session's subscriptions (no SUBACK, no retained messages).
    async fn subscribe_filters(
        &mut self,
        packet_id: Option<u16>,
        requested: Vec<Want>,
    ) -> Option<()> {
        let mut filters = Vec::with_capacity(requested.len());
        let mut line = Vec::new();
        let mut retained = Vec::new();
        for w in &requested {
            let filter = &w.filter;
            let granted = match &self.js {
                None => 0,
                Some(js) if w.qos == 2 && js.downgrade_qos2_sub => 1,
                Some(_) => w.qos.min(2),
            };
            let existed = self.filters.contains_key(filter.as_str());
            let parsed = match topic::Subscription::parse(filter) {
                Ok(s) => s,
                Err(e) => {
                    filters.push((e.reason_code(), Vec::new()));
                    continue;
                }
            };
            if let Some(sids) = self.filters.get(filter.as_str()) {
                let held = sids
                    .first()
                    .and_then(|sid| self.subs.get(sid))
                    .map(|i| i.qos);
                if held == Some(granted) {
                    if let Some(i) = self
                        .filters
                        .get(filter.as_str())
                        .and_then(|s| s.first())
                        .and_then(|sid| self.subs.get_mut(sid))
                    {
                        i.opts = w.opts;
                    }
                    // 3.8.4-3: the retained messages are sent again (Retain Handling 0).
                    if packet_id.is_some() && w.retain_handling == 0 {
                        let mut subjects = vec![parsed.subject.to_string()];
                        subjects.extend(parsed.parent().map(str::to_owned));
                        for r in self.retained_for(&subjects, parsed.reserved()).await {
                            let q = QoS::from_u8(((r.flags >> 1) & 3).min(granted))
                                .unwrap_or(QoS::AtMostOnce);
                            retained.push((r, q));
                        }
                    }
                    // Already subscribed at this QoS: the subscription (and its consumer,
                    // with what it holds for the client) stays; the SUBACK grants it again.
                    filters.push((granted_reason(granted), Vec::new()));
                    continue;
                }
                // Another QoS: the new subscription replaces the old one (3.8.4-3).
                let sids = self.filters.remove(filter.as_str()).unwrap_or_default();
                self.drop_no_local(&sids);
                let mut unsub = Vec::new();
                for sid in sids {
                    self.subs.remove(&sid);
                    unsub.extend_from_slice(format!("UNSUB {sid}\r\n").as_bytes());
                }
                self.forget_filter(filter).await;
                if self.core_in.write_all(&unsub).await.is_err() {
                    return None;
                }
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
                        qos: granted,
                        opts: w.opts,
                    },
                );
                sids.push((sid, subject));
            }
            let mut reason = granted_reason(granted);
            if granted > 0
                && let Err(e) = self
                    .add_consumers(filter, &sids, granted, parsed.reserved(), w.opts)
                    .await
            {
                tracing::warn!(client = %self.client_id, "MQTT: consumer for {filter:?}: {e}");
                reason = ReasonCode::UnspecifiedError;
            }
            if w.opts.no_local {
                self.v5.no_local_subs += 1;
            }
            // Retain Handling (3.8.3.1): 0 sends them, 1 only for a new subscription, 2
            // never.
            let send_retained = match w.retain_handling {
                0 => true,
                1 => !existed,
                _ => false,
            };
            if packet_id.is_some() && send_retained && reason != ReasonCode::UnspecifiedError {
                let subjects: Vec<String> = sids.iter().map(|(_, s)| s.clone()).collect();
                let qos = QoS::from_u8(granted).unwrap_or(QoS::AtMostOnce);
                for r in self.retained_for(&subjects, parsed.reserved()).await {
                    let q = QoS::from_u8(((r.flags >> 1) & 3).min(granted)).unwrap_or(qos);
                    retained.push((r, q));
                }
            }
            if let Some(js) = self.js.as_mut() {
                js.record.subs.insert(record_key(filter), granted);
            }
            self.filters
                .insert(filter.clone(), sids.iter().map(|(sid, _)| *sid).collect());
            filters.push((reason, sids));
        }
        if let Some(js) = self.js.as_mut()
            && packet_id.is_some()
        {
            js.save().await;
        }
        line.extend_from_slice(b"PING\r\n");
        self.pending.push_back(Pending::SubAck {
            packet_id,
            filters,
            retained,
        });
        self.core_in.write_all(&line).await.ok()
    }

    /// A filter with No Local goes: one fewer reason to mark this session's publishes.
    fn drop_no_local(&mut self, sids: &[u64]) {
        if sids
            .first()
            .and_then(|sid| self.subs.get(sid))
            .is_some_and(|i| i.opts.no_local)
        {
            self.v5.no_local_subs = self.v5.no_local_subs.saturating_sub(1);
        }
    }

    /// The consumers of a QoS 1/2 filter, one per subject (the parent level of `#` too),
    /// each delivering to an internal subscription of this session.
    async fn add_consumers(
        &mut self,
        filter: &str,
        sids: &[(u64, String)],
        qos: u8,
        reserved: bool,
        opts: v5::SubOptions,
    ) -> Result<(), jsa::JsaError> {
        let Some(js) = self.js.as_mut() else {
            return Ok(());
        };
        let mut made = Vec::new();
        let filter_key = record_key(filter);
        // A shared subscription's members share one consumer, each subscribed to its
        // deliver subject in the group.
        let group = topic::Subscription::parse(filter)
            .ok()
            .and_then(|p| p.queue.map(str::to_owned));
        for (i, (_, subject)) in sids.iter().enumerate() {
            // The parent level of `#`: the filter's key without its `.>`, as nats-server
            // names it (`<subject> fwc`).
            let key = match topic::parent_subject(&filter_key) {
                Some(parent) if i > 0 => {
                    format!("{parent}{}", natrix_mqtt::store::PARENT_LEVEL_SID_SUFFIX)
                }
                _ if i > 0 => {
                    format!("{subject}{}", natrix_mqtt::store::PARENT_LEVEL_SID_SUFFIX)
                }
                _ => filter_key.clone(),
            };
            let deliver = js.record.cons.get(&key).map(|c| c.deliver_subject.clone());
            // Subscribed before the consumer exists, so nothing it delivers is lost.
            let pre = match deliver {
                Some(d) => Some((d.clone(), js.jsa.client().subscribe(&d, group.as_deref())?)),
                None => None,
            };
            let c = js.consumer(&key, subject, group.as_deref()).await?;
            let isid = match pre {
                Some((d, sid)) if d == c.deliver_subject => sid,
                other => {
                    if let Some((_, sid)) = other {
                        js.jsa.client().unsubscribe(sid);
                    }
                    js.jsa
                        .client()
                        .subscribe(&c.deliver_subject, group.as_deref())?
                }
            };
            self.outgoing.js_subs.insert(
                isid,
                qos::JsSub {
                    qos,
                    reserved,
                    opts,
                },
            );
            made.push((key, isid));
        }
        self.outgoing.consumers.insert(filter.to_owned(), made);
        Ok(())
    }

    /// An unsubscribed filter's consumers and record entry go.
    async fn forget_filter(&mut self, filter: &str) {
        let made = self.outgoing.consumers.remove(filter).unwrap_or_default();
        let Some(js) = self.js.as_mut() else {
            return;
        };
        for (key, isid) in made {
            js.jsa.client().unsubscribe(isid);
            self.outgoing.js_subs.remove(&isid);
            js.remove_consumer(&key).await;
        }
        js.record.subs.remove(&record_key(filter));
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
        let (reserved, qos, opts) = (info.reserved, info.qos, info.opts);
        let Ok(subject) = std::str::from_utf8(&m.subject) else {
            return;
        };
        if topic::must_ignore_for_reserved(reserved, subject) {
            return;
        }
        // A QoS 1/2 message from an MQTT client reaches a QoS 1/2 subscription through
        // its consumer, not here.
        if qos > 0
            && natrix_mqtt::store::PublishHeader::decode(&m.headers).is_some_and(|h| h.qos > 0)
        {
            return;
        }
        let Ok(t) =
            MqttString::try_from_bytes(Bytes::from(topic::subject_to_topic(subject).into_owned()))
        else {
            return;
        };
        let mut properties = Properties::default();
        let reply = m.reply.as_ref().and_then(|r| std::str::from_utf8(r).ok());
        let d = v5::delivery(
            m,
            reply,
            opts,
            Some(self.v5.origin.as_str()),
            self.version == ProtocolVersion::V5,
            &mut properties,
        );
        if d.expired || d.own {
            return;
        }
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: d.retained && opts.retain_as_published,
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
            let next = self.pending.pop_front();
            if let Some(Pending::Publish(p)) = next {
                let errors = std::mem::take(&mut self.errors);
                let needle = format!("Publish to \"{}\"", p.subject());
                let denied = errors.iter().any(|e| e.contains(&needle));
                self.complete_publish(*p, denied).await;
            } else if let Some(Pending::SubAck {
                packet_id,
                filters,
                retained,
            }) = next
            {
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
                if let Some(packet_id) = packet_id {
                    let denied: Vec<bool> = reasons
                        .iter()
                        .map(|r| *r == ReasonCode::NotAuthorized)
                        .collect();
                    self.send(&Packet::SubAck(SubAck {
                        packet_id,
                        reasons,
                        properties: Properties::default(),
                    }));
                    if !denied.iter().any(|d| *d) {
                        for (r, q) in &retained {
                            self.send_retained(r, *q);
                        }
                    }
                }
            }
        } else if line.starts_with(b"-ERR") {
            let text = String::from_utf8_lossy(line).into_owned();
            tracing::debug!(peer = %self.peer, client = %self.client_id, "MQTT: {text}");
            self.errors.push(text);
        }
        Ok(())
    }

    /// Publishes the will as the client would have: on its subject with its QoS (stored
    /// for QoS 1/2 subscribers when JetStream is on), retained if it says so, with its
    /// 5.0 properties. The connection is ending, so there is no PONG to wait for: the
    /// store follows the core publish at once.
    async fn publish_will(&mut self) {
        let Some(w) = self
            .will
            .take()
            .and_then(|will| WillMsg::new(will, self.js.is_some()))
        else {
            return;
        };
        if !self
            .core_publish(&w.subject, w.reply.as_deref(), &w.headers, &w.will.payload)
            .await
        {
            return;
        }
        if w.qos > 0 {
            self.store_message(&w.subject, &w.headers, &w.will.payload)
                .await;
        }
        if w.retain {
            self.store_retained(
                &w.subject,
                w.will.topic.as_str(),
                w.flags(),
                &w.will.payload,
            )
            .await;
        }
    }
}

/// A will as it is published: its subject, reply subject and headers worked out from the
/// LastWill (when it is published, so that a Message Expiry Interval counts from then).
struct WillMsg {
    will: natrix_mqtt::LastWill,
    subject: String,
    reply: Option<String>,
    headers: Vec<u8>,
    qos: u8,
    retain: bool,
}

impl WillMsg {
    /// `None` for a topic that maps to no subject. Without JetStream (`stored` false) a
    /// will goes out at QoS 0 and is not retained.
    fn new(will: natrix_mqtt::LastWill, stored: bool) -> Option<Self> {
        let subject = topic::topic_to_subject(will.topic.as_str())
            .ok()?
            .into_owned();
        let qos = if stored { will.qos.as_u8() } else { 0 };
        let retain = will.retain && stored;
        let reply = will
            .properties
            .response_topic
            .as_ref()
            .and_then(|t| topic::topic_to_subject(t.as_str()).ok())
            .map(std::borrow::Cow::into_owned);
        let user = headers_of(&will.properties.user_properties);
        let headers = v5::publish_headers(
            qos,
            retain,
            &will.properties,
            reply.as_deref().filter(|_| qos > 0),
            None,
            &user,
        );
        Some(WillMsg {
            will,
            subject,
            reply,
            headers,
            qos,
            retain,
        })
    }

    /// The flags of the retained copy (nats-server's form: QoS and the retain bit).
    fn flags(&self) -> u8 {
        (self.qos << 1) | 1
    }
}

/// The wait before a will is published: the Will Delay Interval (5.0), capped by the
/// Session Expiry Interval since the will goes when the session ends (3.1.3.2.2). `None`:
/// at once (3.1.1, no delay, or a session that ends with its connection).
fn will_delay(
    will: Option<&natrix_mqtt::LastWill>,
    version: ProtocolVersion,
    session_expiry: Option<u32>,
) -> Option<Duration> {
    let delay = will?
        .properties
        .will_delay_interval
        .filter(|d| *d > 0 && version == ProtocolVersion::V5)?;
    let expiry = session_expiry?;
    Some(Duration::from_secs(u64::from(delay.min(expiry))))
}

/// The session's identity as the server keeps it after the connection is gone.
struct Ended {
    server: Arc<Server>,
    ids: Arc<ClientIds>,
    account: String,
    client_id: String,
    /// `<account>\0<client ID>`, the key of `ClientIds`.
    key: String,
    /// The holder number of the connection that ended.
    held: u64,
}

/// Publishes a delayed will once its delay has passed, unless the session was resumed
/// meanwhile (3.1.3-9); a clean start that ends the session publishes it at once. The
/// connection (and its core client) is gone by then, so the will goes out through the
/// session's JetStream client in its account, under the publish permissions the user
/// had when the connection ended: a will the user may not publish is dropped, as the
/// core client would have.
async fn deferred_will(
    e: Ended,
    delay: Duration,
    mut told: tokio::sync::oneshot::Receiver<bool>,
    will: natrix_mqtt::LastWill,
    permissions: Option<Arc<crate::auth::Permissions>>,
) {
    let publish = match tokio::time::timeout(delay, &mut told).await {
        Ok(told) => told.unwrap_or(false),
        Err(_) => e.ids.will_due(&e.key, e.held, &mut told),
    };
    if !publish {
        tracing::debug!(client = %e.client_id, "MQTT: session resumed, delayed will dropped");
        return;
    }
    let Some(w) = WillMsg::new(will, true) else {
        return;
    };
    let allowed = permissions
        .as_ref()
        .and_then(|p| p.publish.as_ref())
        .is_none_or(|p| p.allows_publish(w.subject.as_bytes()));
    if !allowed {
        tracing::debug!(client = %e.client_id, subject = %w.subject,
            "MQTT: delayed will not published: publish permission denied");
        return;
    }
    let opts = e.ids.opts.clone();
    let mut p = match state::Persist::open(&e.server, &e.ids, &e.account, &e.client_id, &opts).await
    {
        Ok(p) => p,
        Err(err) => {
            tracing::warn!(client = %e.client_id, "MQTT: publishing delayed will: {err}");
            return;
        }
    };
    tracing::debug!(client = %e.client_id, subject = %w.subject, "MQTT: delayed will published");
    p.jsa
        .client()
        .publish(&w.subject, w.reply.as_deref(), &w.headers, &w.will.payload);
    if w.qos > 0
        && let Err(err) = p
            .jsa
            .store(
                &natrix_mqtt::store::message_subject(&w.subject),
                &w.headers,
                &w.will.payload,
            )
            .await
    {
        tracing::warn!(client = %e.client_id, "MQTT: storing delayed will: {err}");
    }
    if w.retain
        && let Err(err) = retained::store(
            &mut p.jsa,
            &w.subject,
            w.will.topic.as_str(),
            w.flags(),
            &w.will.payload,
        )
        .await
    {
        tracing::warn!(client = %e.client_id, "MQTT: retaining delayed will: {err}");
    }
}

/// One filter of a SUBSCRIBE (or of a resumed session).
struct Want {
    filter: String,
    qos: u8,
    /// 0, 1 or 2 as on the wire (3.8.3.1).
    retain_handling: u8,
    opts: v5::SubOptions,
}

/// The key of a filter in the session record (`subs`, and `cons` for its consumers): the
/// NATS subject nats-server stores for that MQTT filter. For an ordinary filter that is
/// the subject subscribed; for a shared one it keeps the `$share/<group>/` levels
/// (`$share.g.jobs.*`), so that a resumed session subscribes in the same queue group again
/// and no two filters on one subject (`jobs/+` and `$share/g/jobs/+`) share a key.
/// nats-server, which has no shared subscriptions, reads such a record as the literal
/// topic `$share/g/jobs/+`: its own meaning of that filter.
fn record_key(filter: &str) -> String {
    topic::filter_to_subject(filter).map_or_else(|_| filter.to_owned(), |s| s.into_owned())
}

/// The SUBACK reason granting `qos`.
fn granted_reason(qos: u8) -> ReasonCode {
    match qos {
        0 => ReasonCode::GRANTED_QOS0,
        1 => ReasonCode::GrantedQoS1,
        _ => ReasonCode::GrantedQoS2,
    }
}

/// Waits for the core client's task to end. The session's loops poll the task too (it
/// ending closes the session), and a `JoinHandle` polled to completion must not be
/// polled again: tokio panics ("JoinHandle polled after completion").
async fn core_ended(core: tokio::task::JoinHandle<()>) {
    if !core.is_finished() {
        let _ = core.await;
    }
}

/// The next message for this session's JetStream side; never ready without JetStream.
async fn next_js(js: &mut Option<state::Persist>) -> Option<crate::server::internal::InternalMsg> {
    match js {
        Some(p) => p.jsa.recv().await,
        None => std::future::pending().await,
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
