//! One client connection: its read loop, the handling of each protocol operation, and the
//! delivery of published messages to matching subscriptions.
//!
//! The read loop owns everything that only this connection touches (parser, subscription
//! table, match cache, CONNECT options), so the publish path takes no lock of its own: it
//! reads the account sublist through a per-connection cache validated by the sublist's
//! generation id, then appends each delivery to the subscriber's [`Outbound`].

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use bytes::{Buf, Bytes, BytesMut};
use opentelemetry::KeyValue;
use rustc_hash::FxHashMap;
use serde::Deserialize;
use tokio::io::{AsyncRead, AsyncReadExt};

use super::Server;
use super::options::RuntimeOptions;
use super::outbound::{self, CloseReason, Outbound, Push};
use crate::auth::{self, Permissions};
use crate::protocol::encode::{self, Delivery};
use crate::protocol::{Handler, Op, ParseError, Parser, PubArgs};
use crate::subject;
use crate::sublist::{MatchResult, Subscriber};
use crate::telemetry::{otlp, traceparent};

/// Per-connection match cache size before it is pruned (nats-server's
/// `maxResultCacheSize`).
const RESULT_CACHE_MAX: usize = 512;
/// Read buffer bounds: start small for idle connections, grow under load.
const READ_MIN: usize = 512;
const READ_MAX: usize = 64 * 1024;
/// Read buffers kept while subscribers hold their payloads (see `Client::retired`).
const RETIRED_KEEP: usize = 4;
/// Larger read buffers (a message near a large `max_payload`) are not kept.
const RETIRED_MAX: usize = 2 << 20;
/// Delay of the first PING after connect (nats-server's `firstClientPingInterval`).
const FIRST_PING: Duration = Duration::from_secs(2);

/// What kind of connection a handle belongs to: deliveries to a route are forwarded as
/// `RMSG`, to a leaf connection as `LMSG`, once per connection and message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnKind {
    Client,
    Route,
    /// A gateway link; never in a sublist (remote clusters' interest is kept per link).
    Gateway,
    Leaf,
}

/// The part of a connection that other connections reach: its outbound buffer and what
/// deliveries need to know about it.
pub struct ClientHandle {
    pub cid: u64,
    pub kind: ConnKind,
    pub outbound: Arc<Outbound>,
    /// Whether the client asked for headers in CONNECT.
    pub headers: AtomicBool,
    pub in_msgs: AtomicU64,
    pub in_bytes: AtomicU64,
    /// When the connection was accepted.
    pub start: SystemTime,
    /// Last publish, subscribe or unsubscribe, as nanoseconds since the Unix epoch
    /// (`/connz` `last_activity`).
    pub last_activity: AtomicU64,
    /// Round-trip time measured at CONNECT, in nanoseconds (0: not yet measured).
    pub rtt: AtomicU64,
    /// Times publishers were stalled by this connection's full outbound buffer.
    pub stalls: AtomicU64,
    /// Wakes the read loop after a reload so it re-checks credentials and permissions
    /// even when the client is idle.
    pub reload: tokio::sync::Notify,
    /// Set while the connection's permissions have `allow_responses`: deliveries then
    /// record reply subjects in `replies`.
    pub track_replies: AtomicBool,
    /// Reply subjects this connection may answer: when the request arrived and how many
    /// answers it sent.
    pub replies: parking_lot::Mutex<FxHashMap<Bytes, (Instant, u32)>>,
}

/// Recorded reply subjects kept per connection before expired ones are swept
/// (nats-server's `replyPermLimit`).
const REPLY_PERM_LIMIT: usize = 10_000;

impl ClientHandle {
    pub fn new(cid: u64, outbound: Arc<Outbound>) -> Self {
        let start = SystemTime::now();
        Self {
            cid,
            kind: ConnKind::Client,
            outbound,
            headers: AtomicBool::new(false),
            in_msgs: AtomicU64::new(0),
            in_bytes: AtomicU64::new(0),
            start,
            last_activity: AtomicU64::new(unix_nanos(start)),
            rtt: AtomicU64::new(0),
            stalls: AtomicU64::new(0),
            reload: tokio::sync::Notify::new(),
            track_replies: AtomicBool::new(false),
            replies: parking_lot::Mutex::new(FxHashMap::default()),
        }
    }

    /// The handle of an inter-server connection.
    pub fn with_kind(cid: u64, outbound: Arc<Outbound>, kind: ConnKind) -> Self {
        Self {
            kind,
            ..Self::new(cid, outbound)
        }
    }

    /// Messages queued to this connection.
    pub fn out_msgs(&self) -> u64 {
        self.outbound.sent().0
    }

    /// Payload bytes queued to this connection.
    pub fn out_bytes(&self) -> u64 {
        self.outbound.sent().1
    }

    fn touch(&self) {
        self.last_activity
            .store(unix_nanos(SystemTime::now()), Ordering::Relaxed);
    }
}

/// Where to start looking for a queue group's recipient: a random member, each weighted
/// by the members it stands for (a route's counts its peer's members).
pub(crate) fn pick_member<'a>(group: impl Iterator<Item = &'a Subscription> + Clone) -> usize {
    let weights = || {
        group
            .clone()
            .map(|s| u64::from(s.weight.load(Ordering::Relaxed)))
    };
    let (n, total) = weights().fold((0u64, 0u64), |(n, t), w| (n + 1, t + w));
    if total <= n {
        return fastrand::usize(..usize::try_from(n).unwrap_or(1).max(1));
    }
    let mut r = fastrand::u64(..total);
    for (i, w) in weights().enumerate() {
        if r < w {
            return i;
        }
        r -= w;
    }
    0
}

/// Nanoseconds since the Unix epoch (0 before it).
pub fn unix_nanos(t: SystemTime) -> u64 {
    t.duration_since(SystemTime::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_nanos()).unwrap_or(u64::MAX))
}

/// A subscription as stored in the sublist.
pub struct Subscription {
    pub subject: Bytes,
    pub queue: Option<Bytes>,
    pub sid: Bytes,
    pub client: Arc<ClientHandle>,
    /// Auto-unsubscribe after this many messages (0: no limit).
    max: AtomicU64,
    delivered: AtomicU64,
    closed: AtomicBool,
    /// Queue members this subscription stands for: 1 for a client's, a peer's member
    /// count for a route's (its `RS+` queue weight), so picks are fair cluster-wide.
    pub weight: AtomicU32,
    /// Set on a stream import's shadow subscription: how the exporter's subjects become
    /// the importer's on delivery.
    pub rewrite: Option<Arc<crate::imports::Rewrite>>,
    /// A client subscription's shadows in the accounts it imports streams from.
    pub shadows: std::sync::OnceLock<crate::imports::Shadows>,
}

impl Subscriber for Subscription {
    fn subject(&self) -> &[u8] {
        &self.subject
    }
    fn queue(&self) -> Option<&[u8]> {
        self.queue.as_deref()
    }
}

impl Subscription {
    pub fn is_closed(&self) -> bool {
        self.closed.load(Ordering::Acquire)
    }

    /// Marks the subscription gone, so deliveries already matched skip it.
    pub(crate) fn close(&self) {
        self.closed.store(true, Ordering::Release);
    }

    /// Messages delivered to this subscription so far.
    pub fn delivered(&self) -> u64 {
        self.delivered.load(Ordering::Relaxed)
    }

    /// The auto-unsubscribe limit (0: none).
    pub fn max(&self) -> u64 {
        self.max.load(Ordering::Relaxed)
    }

    /// A route peer's interest, standing for its subscribers in the local sublist.
    pub(crate) fn remote(
        subject: Bytes,
        queue: Option<Bytes>,
        sid: Bytes,
        client: Arc<ClientHandle>,
    ) -> Self {
        Self {
            subject,
            queue,
            sid,
            client,
            max: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            weight: AtomicU32::new(1),
            rewrite: None,
            shadows: std::sync::OnceLock::new(),
        }
    }

    /// A subscription made by the server itself (system services), not by a client's SUB.
    pub(crate) fn internal(subject: &str, sid: &str, client: Arc<ClientHandle>) -> Self {
        Self {
            subject: Bytes::copy_from_slice(subject.as_bytes()),
            queue: None,
            sid: Bytes::copy_from_slice(sid.as_bytes()),
            client,
            max: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            weight: AtomicU32::new(1),
            rewrite: None,
            shadows: std::sync::OnceLock::new(),
        }
    }

    /// Counts one delivery against the auto-unsubscribe limit: whether to deliver, and
    /// whether this delivery is the last one (the caller then removes the subscription).
    pub(crate) fn claim(&self) -> Claim {
        if self.is_closed() {
            return Claim::Skip;
        }
        let max = self.max.load(Ordering::Acquire);
        if max == 0 {
            self.delivered.fetch_add(1, Ordering::Relaxed);
            return Claim::Deliver;
        }
        let n = self.delivered.fetch_add(1, Ordering::AcqRel) + 1;
        if n > max {
            Claim::Skip
        } else if n == max {
            self.closed.store(true, Ordering::Release);
            Claim::Last
        } else {
            Claim::Deliver
        }
    }
}

/// The outcome of [`Subscription::claim`].
pub(crate) enum Claim {
    Skip,
    Deliver,
    Last,
}

/// CONNECT options; absent fields default as nats-server's `defaultOpts`.
#[derive(Debug, Deserialize)]
#[serde(default)]
struct ConnectOpts {
    verbose: bool,
    pedantic: bool,
    echo: bool,
    headers: bool,
    no_responders: bool,
    protocol: i64,
    name: Option<String>,
    lang: Option<String>,
    version: Option<String>,
    user: Option<String>,
    pass: Option<String>,
    auth_token: Option<String>,
    account: Option<String>,
    new_account: bool,
    tls_required: bool,
    nkey: Option<String>,
    sig: Option<String>,
    jwt: Option<String>,
}

impl ConnectOpts {
    /// What CONNECT presented for authentication, with the nonce INFO sent and the
    /// client's TLS certificate.
    fn credentials<'a>(
        &'a self,
        nonce: Option<&'a str>,
        cert: Option<&'a crate::x509::PeerCert>,
    ) -> auth::Credentials<'a> {
        auth::Credentials {
            cert,
            user: self.user.as_deref(),
            pass: self.pass.as_deref(),
            token: self.auth_token.as_deref(),
            nkey: self.nkey.as_deref(),
            sig: self.sig.as_deref(),
            nonce,
            websocket: false,
            mqtt: false,
        }
    }
}

impl Default for ConnectOpts {
    fn default() -> Self {
        Self {
            verbose: true,
            pedantic: true,
            echo: true,
            headers: false,
            no_responders: false,
            protocol: 0,
            name: None,
            lang: None,
            version: None,
            user: None,
            pass: None,
            auth_token: None,
            account: None,
            new_account: false,
            tls_required: false,
            nkey: None,
            sig: None,
            jwt: None,
        }
    }
}

/// State owned by a connection's read loop.
pub(crate) struct Client {
    server: Arc<Server>,
    /// The account this connection publishes and subscribes in (`$G` until CONNECT).
    account: Arc<crate::account::Account>,
    handle: Arc<ClientHandle>,
    opts: Arc<RuntimeOptions>,
    opts_gen: u64,
    connect: ConnectOpts,
    connect_received: bool,
    awaiting_auth: bool,
    permissions: Option<Arc<Permissions>>,
    subs: FxHashMap<Bytes, Arc<Subscription>>,
    cache: FxHashMap<Box<[u8]>, Arc<MatchResult<Subscription>>>,
    cache_genid: u64,
    start: Instant,
    rtt: Option<Duration>,
    last_in: Instant,
    pings_out: u32,
    first_pong_sent: bool,
    /// Counters accumulated during one read, published after it.
    in_msgs: u64,
    in_bytes: u64,
    out_msgs: u64,
    out_bytes: u64,
    /// The most congested subscriber of this read, to wait on before reading more.
    stall: Option<(Arc<Outbound>, Duration)>,
    /// Outbound buffers this read queued to, flushed at its end.
    to_flush: Vec<Arc<Outbound>>,
    /// Subscriptions that reached their auto-unsubscribe limit during this read.
    expired: Vec<Arc<Subscription>>,
    /// Routes the current message goes to, each with the queue groups it was picked for.
    route_targets: Vec<(Arc<ClientHandle>, Vec<Bytes>)>,
    /// The bytes being parsed, so a large payload can be handed to subscribers without
    /// a copy (see [`outbound::SHARE_FROM`]).
    read_chunk: Bytes,
    /// The current message's payload as shared bytes, when it is large enough to share.
    payload: Option<Bytes>,
    /// Earlier read buffers whose payloads subscribers still held, reused once they are
    /// free again: a fresh buffer per read would be fresh memory, paid for in page
    /// faults.
    retired: Vec<Bytes>,
    /// Share of untraced publishes that get a span, while trace export is on.
    sample_ratio: f64,
    /// The nonce sent in INFO for nkey users to sign.
    nonce: Option<String>,
    /// Operator mode: the user JWT the connection authenticated with, and the account
    /// claims generation it was last checked against.
    jwt_user: Option<(natrix_jwt::UserClaims, u64)>,
    /// When the user JWT expires (`User Authentication Expired`).
    expires_at: Option<tokio::time::Instant>,
    /// Operator mode: the tighter of the user's and the account's JWT limits on
    /// subscriptions and payload size (`None`: the server's own).
    jwt_limits: (Option<usize>, Option<i64>),
    /// The client's TLS certificate, for `verify_and_map` (here and on reload).
    cert: Option<Arc<crate::x509::PeerCert>>,
    /// A WebSocket client: its cookies and `websocket {}`'s own authentication.
    ws_login: Option<crate::websocket::login::WsLogin>,
    /// The core side of an MQTT connection: `mqtt {}`'s authentication applies
    /// (nats-server's auth override and `verify_and_map` of the MQTT listener), and
    /// `allowed_connection_types` must list `MQTT` (`MQTT_WS` when `mqtt_ws`).
    mqtt: bool,
    /// An MQTT connection over WebSocket.
    mqtt_ws: bool,
}

impl Client {
    pub(crate) fn new(
        server: Arc<Server>,
        handle: Arc<ClientHandle>,
        nonce: Option<String>,
        cert: Option<Arc<crate::x509::PeerCert>>,
    ) -> Self {
        let (opts, opts_gen) = server.options();
        let now = Instant::now();
        let sample_ratio = otlp::sample_ratio(&opts.config.telemetry);
        Self {
            awaiting_auth: opts.auth.required() || server.trust().is_some(),
            account: server.gacc.clone(),
            server,
            handle,
            opts,
            opts_gen,
            connect: ConnectOpts::default(),
            connect_received: false,
            permissions: None,
            subs: FxHashMap::default(),
            cache: FxHashMap::default(),
            cache_genid: 0,
            start: now,
            rtt: None,
            last_in: now,
            pings_out: 0,
            first_pong_sent: false,
            in_msgs: 0,
            in_bytes: 0,
            out_msgs: 0,
            out_bytes: 0,
            stall: None,
            to_flush: Vec::new(),
            expired: Vec::new(),
            route_targets: Vec::new(),
            read_chunk: Bytes::new(),
            payload: None,
            retired: Vec::new(),
            sample_ratio,
            nonce,
            jwt_user: None,
            expires_at: None,
            jwt_limits: (None, None),
            cert,
            ws_login: None,
            mqtt: false,
            mqtt_ws: false,
        }
    }

    fn send_err(&self, text: &str) {
        let mut v = Vec::with_capacity(text.len() + 9);
        encode::err(&mut v, text);
        self.handle.outbound.push_proto(&v);
    }

    fn send_ok(&self) {
        self.handle.outbound.push_proto(encode::OK);
    }

    /// Closes with the `-ERR` nats-server sends for each parse failure.
    fn fail(&self, e: &ParseError) {
        let (text, reason) = match e {
            ParseError::UnknownOp => (Some("Unknown Protocol Operation"), CloseReason::ParseError),
            ParseError::MaxControlLine => (
                Some("maximum control line exceeded"),
                CloseReason::MaxControlLineExceeded,
            ),
            ParseError::AuthViolation => (
                Some("Authorization Violation"),
                CloseReason::AuthenticationViolation,
            ),
            ParseError::MaxPayload => (
                Some("Maximum Payload Violation"),
                CloseReason::MaxPayloadExceeded,
            ),
            ParseError::Violation(what) => {
                tracing::debug!(cid = self.handle.cid, "protocol violation: {what}");
                (None, CloseReason::ProtocolViolation)
            }
            ParseError::Closed => (None, CloseReason::ProtocolViolation),
        };
        if let Some(text) = text {
            self.send_err(text);
        }
        self.handle.outbound.close(reason);
    }

    /// Picks up a reloaded configuration. When authentication settings changed, the
    /// client's CONNECT credentials are checked again: a client they no longer admit is
    /// closed with `Authorization Violation`, as nats-server does on reload, and
    /// subscriptions its new permissions forbid are removed. Returns false when closed.
    fn refresh_options(&mut self) -> bool {
        if !self.recheck_jwt() {
            return false;
        }
        let (opts, generation) = self.server.options();
        if generation == self.opts_gen {
            return true;
        }
        let auth_changed = opts.auth != self.opts.auth;
        self.sample_ratio = otlp::sample_ratio(&opts.config.telemetry);
        self.opts = opts;
        self.opts_gen = generation;
        if !auth_changed || !self.connect_received || self.jwt_user.is_some() {
            return true;
        }
        let creds = self.credentials(&self.connect);
        let Some(identity) = self.listener_auth().authenticate(&creds) else {
            tracing::info!(
                cid = self.handle.cid,
                "credentials no longer valid after reload"
            );
            self.send_err("Authorization Violation");
            self.handle
                .outbound
                .close(CloseReason::AuthenticationViolation);
            return false;
        };
        if identity.account.as_deref().unwrap_or("$G") != self.account.name() {
            tracing::info!(cid = self.handle.cid, "account binding changed by reload");
            self.send_err("Authorization Violation");
            self.handle
                .outbound
                .close(CloseReason::AuthenticationViolation);
            return false;
        }
        self.set_permissions(identity.permissions);
        self.drop_forbidden_subs();
        true
    }

    fn set_permissions(&mut self, permissions: Option<Arc<Permissions>>) {
        let track = permissions.as_ref().is_some_and(|p| p.response.is_some());
        self.handle.track_replies.store(track, Ordering::Release);
        if !track {
            self.handle.replies.lock().clear();
        }
        let shown = permissions.clone();
        self.server
            .update_meta(self.handle.cid, |m| m.permissions = shown);
        self.permissions = permissions;
    }

    /// Whether `subject` is the reply subject of a request this connection received and
    /// may still answer under `allow_responses`; counts the answer.
    fn response_allowed(&self, subject: &[u8]) -> bool {
        let Some(resp) = self.permissions.as_ref().and_then(|p| p.response) else {
            return false;
        };
        let mut replies = self.handle.replies.lock();
        let Some((since, sent)) = replies.get_mut(subject) else {
            return false;
        };
        if resp.expires.is_some_and(|e| since.elapsed() > e) {
            replies.remove(subject);
            return false;
        }
        *sent += 1;
        if resp.max_msgs.is_some_and(|m| *sent >= m) {
            replies.remove(subject);
        }
        true
    }

    /// After a permissions change: removes the subscriptions no longer allowed, telling
    /// the client about each one.
    fn drop_forbidden_subs(&mut self) {
        let Some(perms) = self.permissions.clone() else {
            return;
        };
        let Some(sub_perms) = perms.subscribe.as_ref() else {
            return;
        };
        let forbidden: Vec<Bytes> = self
            .subs
            .iter()
            .filter(|(_, s)| !sub_perms.allows_subscribe(&s.subject, s.queue.as_deref()))
            .map(|(sid, _)| sid.clone())
            .collect();
        for sid in forbidden {
            if let Some(sub) = self.subs.remove(&sid) {
                sub.closed.store(true, Ordering::Release);
                self.remove_sub(&sub);
                self.send_err(&sub_violation_text(&sub.subject, sub.queue.as_deref()));
            }
        }
    }

    /// The read loop. Returns when the connection is closed for any reason.
    pub(crate) async fn run<R: AsyncRead + Unpin>(mut self, mut rd: R) {
        let mut parser = Parser::new();
        let mut buf = BytesMut::with_capacity(READ_MIN);
        let mut read_size = READ_MIN;
        let auth_timeout = self
            .ws_login
            .as_ref()
            .and_then(|w| w.auth_timeout)
            .unwrap_or(self.opts.auth_timeout);
        let auth_deadline = self
            .awaiting_auth
            .then(|| tokio::time::Instant::now() + auth_timeout);
        let mut next_ping = tokio::time::Instant::now() + first_ping_delay(&self.opts);
        let outbound = self.handle.outbound.clone();
        loop {
            if let Some(need) = parser.payload_needed()
                && need > buf.len()
            {
                buf.reserve(need - buf.len());
            } else if buf.capacity() - buf.len() < read_size / 2 {
                buf.reserve(read_size);
            }
            tokio::select! {
                biased;
                () = outbound.closed() => break,
                () = sleep_until_opt(auth_deadline), if self.awaiting_auth => {
                    self.send_err("Authentication Timeout");
                    outbound.close(CloseReason::AuthenticationTimeout);
                    break;
                }
                () = sleep_until_opt(self.expires_at), if self.expires_at.is_some() => {
                    self.send_err("User Authentication Expired");
                    outbound.close(CloseReason::AuthenticationExpired);
                    break;
                }
                () = self.handle.reload.notified() => {
                    if !self.refresh_options() {
                        break;
                    }
                }
                () = tokio::time::sleep_until(next_ping) => {
                    if !self.refresh_options() || !self.ping_timer() {
                        break;
                    }
                    next_ping = tokio::time::Instant::now() + self.opts.ping_interval;
                }
                res = rd.read_buf(&mut buf) => {
                    let n = match res {
                        Ok(0) => {
                            outbound.close(CloseReason::ClientClosed);
                            break;
                        }
                        Ok(n) => n,
                        Err(e) => {
                            tracing::debug!(cid = self.handle.cid, error = %e, "read error");
                            outbound.close(CloseReason::ReadError);
                            break;
                        }
                    };
                    if n >= read_size && read_size < READ_MAX {
                        read_size *= 2;
                    }
                    if !self.refresh_options() {
                        break;
                    }
                    // A payload still arriving is read whole before parsing resumes
                    // (the buffer was sized for it above).
                    if parser.payload_needed().is_some_and(|need| need > buf.len()) {
                        continue;
                    }
                    // Parsed as shared bytes, so large payloads reach subscribers
                    // without a copy; when none was kept, the buffer is reused as is.
                    let data = std::mem::take(&mut buf).freeze();
                    self.read_chunk = data.clone();
                    let result = parser.parse(&data, &mut self);
                    self.read_chunk = Bytes::new();
                    self.after_read();
                    let consumed = match result {
                        Ok(consumed) => consumed,
                        Err(e) => {
                            self.fail(&e);
                            break;
                        }
                    };
                    buf = match data.try_into_mut() {
                        Ok(mut whole) => {
                            whole.advance(consumed);
                            whole
                        }
                        // Subscribers still hold payloads of this read: what is left
                        // of it moves to another buffer.
                        Err(data) => {
                            let rest = &data[consumed..];
                            let mut next = self.free_read_buffer(read_size.max(rest.len()));
                            next.extend_from_slice(rest);
                            if self.retired.len() < RETIRED_KEEP && data.len() <= RETIRED_MAX {
                                self.retired.push(data);
                            }
                            next
                        }
                    };
                    if let Some((target, limit)) = self.stall.take() {
                        target.wait_drained(limit).await;
                    }
                    if buf.is_empty() && buf.capacity() > READ_MAX {
                        buf = BytesMut::with_capacity(READ_MIN);
                        read_size = READ_MIN;
                    }
                }
            }
        }
        self.cleanup();
    }

    /// Work deferred to the end of each read: counters and auto-unsubscribes.
    fn after_read(&mut self) {
        for target in self.to_flush.drain(..) {
            target.flush();
        }
        if self.in_msgs > 0 {
            self.handle
                .in_msgs
                .fetch_add(self.in_msgs, Ordering::Relaxed);
            self.handle
                .in_bytes
                .fetch_add(self.in_bytes, Ordering::Relaxed);
            self.server
                .stats
                .in_msgs
                .fetch_add(self.in_msgs, Ordering::Relaxed);
            self.server
                .stats
                .in_bytes
                .fetch_add(self.in_bytes, Ordering::Relaxed);
            let acc = &self.account.stats;
            acc.in_msgs.fetch_add(self.in_msgs, Ordering::Relaxed);
            acc.in_bytes.fetch_add(self.in_bytes, Ordering::Relaxed);
            self.in_msgs = 0;
            self.in_bytes = 0;
            self.last_in = Instant::now();
            self.handle.touch();
        }
        if self.out_msgs > 0 {
            self.server
                .stats
                .out_msgs
                .fetch_add(self.out_msgs, Ordering::Relaxed);
            self.server
                .stats
                .out_bytes
                .fetch_add(self.out_bytes, Ordering::Relaxed);
            let acc = &self.account.stats;
            acc.out_msgs.fetch_add(self.out_msgs, Ordering::Relaxed);
            acc.out_bytes.fetch_add(self.out_bytes, Ordering::Relaxed);
            self.out_msgs = 0;
            self.out_bytes = 0;
        }
        let expired = std::mem::take(&mut self.expired);
        for sub in &expired {
            self.remove_sub(sub);
        }
        self.expired = expired;
        self.expired.clear();
    }

    /// The PING timer: false when the connection was closed as stale.
    fn ping_timer(&mut self) -> bool {
        let recent = self.last_in.elapsed() < self.opts.ping_interval;
        if recent && self.rtt.is_some() {
            return true;
        }
        if self.pings_out + 1 > self.opts.ping_max {
            self.server
                .stats
                .stale_connections
                .fetch_add(1, Ordering::Relaxed);
            self.send_err("Stale Connection");
            self.handle.outbound.close(CloseReason::StaleConnection);
            return false;
        }
        self.pings_out += 1;
        self.handle.outbound.push_proto(encode::PING);
        true
    }

    fn cleanup(&mut self) {
        // What was still subscribed at close, for `/connz?state=closed`.
        let mut live = Vec::with_capacity(self.subs.len());
        let subs: Vec<Arc<Subscription>> = self.subs.drain().map(|(_, s)| s).collect();
        for sub in subs {
            if !sub.is_closed() {
                live.push(sub.clone());
            }
            sub.closed.store(true, Ordering::Release);
            self.remove_sub(&sub);
        }
        if self.connect_received {
            self.account.stats.clients.fetch_sub(1, Ordering::Relaxed);
        }
        if self
            .handle
            .outbound
            .close_reason()
            .is_some_and(CloseReason::is_slow_consumer)
        {
            self.account
                .stats
                .slow_consumers
                .fetch_add(1, Ordering::Relaxed);
            self.server.note_slow_consumer(self.handle.cid);
        }
        self.server.remove_client(&self.handle, live);
    }

    /// An MQTT connection's core client (over WebSocket with `websocket`) logs in with
    /// `mqtt {}`'s authentication, as a connection of kind `MQTT` (`MQTT_WS`).
    pub(crate) fn for_mqtt(mut self, websocket: bool) -> Self {
        self.mqtt = true;
        self.mqtt_ws = websocket;
        self
    }

    /// CONNECT's credentials, with the kind of connection this is.
    fn credentials<'a>(&'a self, connect: &'a ConnectOpts) -> auth::Credentials<'a> {
        let mut creds = connect.credentials(self.nonce.as_deref(), self.cert.as_deref());
        creds.websocket = self.ws_login.is_some() || self.mqtt_ws;
        creds.mqtt = self.mqtt;
        creds
    }

    /// The authentication this client's listener applies: `websocket {}`'s or
    /// `mqtt {}`'s override when there is one, else the server's. Computed from the
    /// current options, so a reload that changes the users reaches it too.
    fn listener_auth(&self) -> std::borrow::Cow<'_, auth::Auth> {
        use std::borrow::Cow;
        if let Some(a) = self.ws_login.as_ref().and_then(|w| w.auth.as_deref()) {
            return Cow::Borrowed(a);
        }
        if self.mqtt
            && let Some(a) = self.opts.auth.for_mqtt(&self.opts.config.mqtt)
        {
            return Cow::Owned(a);
        }
        Cow::Borrowed(&self.opts.auth)
    }

    /// A WebSocket client logs in with its cookies and `websocket {}`'s authentication.
    pub(crate) fn with_ws_login(mut self, login: crate::websocket::login::WsLogin) -> Self {
        if let Some(auth) = &login.auth {
            self.awaiting_auth = auth.required() || self.server.trust().is_some();
        }
        self.ws_login = Some(login);
        self
    }

    fn process_connect(&mut self, arg: &[u8]) -> Result<(), ParseError> {
        let mut connect: ConnectOpts = serde_json::from_slice(arg).map_err(|e| {
            tracing::debug!(cid = self.handle.cid, error = %e, "bad CONNECT");
            ParseError::Violation("bad CONNECT json")
        })?;
        if self.rtt.is_none() {
            let rtt = self.start.elapsed().max(Duration::from_nanos(1));
            self.rtt = Some(rtt);
            self.handle.rtt.store(
                u64::try_from(rtt.as_nanos()).unwrap_or(u64::MAX),
                Ordering::Relaxed,
            );
        }
        let callout = self.opts.config.auth_callout.clone().filter(|co| {
            !co.auth_users.iter().any(|u| {
                Some(u.as_str()) == connect.user.as_deref()
                    || Some(u.as_str()) == connect.nkey.as_deref()
            })
        });
        if let Some(ws) = &self.ws_login {
            ws.fill(
                &mut connect.jwt,
                &mut connect.user,
                &mut connect.pass,
                &mut connect.auth_token,
            );
        }
        let identity = if self.server.trust().is_some() {
            self.jwt_login(&connect)
        } else if let Some(co) = callout {
            self.callout_login(&connect, &co)
        } else {
            self.listener_auth()
                .authenticate(&self.credentials(&connect))
        };
        let Some(identity) = identity else {
            tracing::warn!(cid = self.handle.cid, user = ?connect.user, "authentication error");
            self.connect_span(&connect, None);
            return Err(ParseError::AuthViolation);
        };
        self.connect_span(&connect, Some(&identity));
        if connect.new_account || connect.account.as_deref().is_some_and(|a| !a.is_empty()) {
            return Err(ParseError::AuthViolation);
        }
        let _ = connect.tls_required;
        let Some(account) = self
            .server
            .account(identity.account.as_deref().unwrap_or("$G"))
        else {
            tracing::warn!(cid = self.handle.cid, account = ?identity.account, "account not found");
            return Err(ParseError::AuthViolation);
        };
        if let Some(limit) = account
            .claims()
            .map(|c| c.nats.limits.account.conn)
            .filter(|l| *l >= 0)
            && !self.connect_received
            && i64::try_from(account.num_clients()).unwrap_or(i64::MAX) >= limit
        {
            self.send_err("maximum account active connections exceeded");
            self.handle
                .outbound
                .close(CloseReason::MaxAccountConnectionsExceeded);
            return Err(ParseError::Closed);
        }
        if !self.connect_received || !Arc::ptr_eq(&account, &self.account) {
            if self.connect_received {
                self.account.stats.clients.fetch_sub(1, Ordering::Relaxed);
            }
            account.stats.clients.fetch_add(1, Ordering::Relaxed);
        }
        self.account = account;
        self.set_permissions(identity.permissions);
        self.awaiting_auth = false;
        let headers = self.opts.headers && connect.headers;
        self.handle.headers.store(headers, Ordering::Release);
        if !(0..=1).contains(&connect.protocol) {
            self.send_err("invalid client protocol");
            self.handle
                .outbound
                .close(CloseReason::BadClientProtocolVersion);
            return Err(ParseError::Closed);
        }
        if connect.no_responders && !headers {
            self.send_err("no responders requires headers support");
            self.handle
                .outbound
                .close(CloseReason::NoRespondersRequiresHeaders);
            return Err(ParseError::Closed);
        }
        if connect.verbose {
            self.send_ok();
        }
        let account = self.account.name().to_owned();
        self.server.record_connect(self.handle.cid, |m| {
            m.name.clone_from(&connect.name);
            m.lang.clone_from(&connect.lang);
            m.version.clone_from(&connect.version);
            m.user = identity.user;
            m.account = Some(account);
            m.protocol = connect.protocol;
        });
        self.connect = connect;
        self.connect_received = true;
        Ok(())
    }

    /// Operator mode: the user JWT of CONNECT checked against its account's claims
    /// (loaded from the resolver if need be). Remembers the claims for later re-checks and
    /// arms the expiry.
    fn jwt_login(&mut self, connect: &ConnectOpts) -> Option<auth::Authenticated> {
        let peer = self
            .server
            .client_meta(self.handle.cid)
            .and_then(|m| m.addr)
            .map(|a| a.ip());
        let creds = crate::trust::JwtCredentials {
            jwt: connect.jwt.as_deref(),
            sig: connect.sig.as_deref(),
            nonce: self.nonce.as_deref(),
            // A user JWT's allowed_connection_types name WebSocket and MQTT clients apart.
            connection_type: auth::Credentials {
                websocket: self.ws_login.is_some() || self.mqtt_ws,
                mqtt: self.mqtt,
                ..auth::Credentials::default()
            }
            .kind(),
            peer,
        };
        let server = self.server.clone();
        let lookup = |pk: &str| {
            server
                .resolve_account(pk)
                .and_then(|a| a.claims())
                .map(|c| (*c).clone())
        };
        let user = match crate::trust::check_user(&creds, lookup, natrix_jwt::now_unix()) {
            Ok(u) => u,
            Err(e) => {
                tracing::debug!(cid = self.handle.cid, "{e}");
                return None;
            }
        };
        let generation = self.server.account(&user.account)?.claims_gen();
        self.expires_at = (user.claims.data.expires > 0).then(|| {
            let left = user.claims.data.expires - natrix_jwt::now_unix();
            tokio::time::Instant::now()
                + Duration::from_secs(u64::try_from(left.max(0)).unwrap_or(0))
        });
        // The tighter of the user's and the account's limits (-1: no limit).
        let account_limits = self
            .server
            .account(&user.account)
            .and_then(|a| a.claims())
            .map(|c| c.nats.limits.nats);
        let user_limits = &user.claims.nats.permission_limits.limits.nats_limits;
        let tighter = |a: i64, b: Option<i64>| -> Option<i64> {
            [Some(a), b].into_iter().flatten().filter(|v| *v >= 0).min()
        };
        let subs = tighter(user_limits.subs, account_limits.as_ref().map(|l| l.subs));
        let payload = tighter(
            user_limits.payload,
            account_limits.as_ref().map(|l| l.payload),
        );
        // A JWT limit of 0 subscriptions allows none.
        self.jwt_limits = (
            subs.map(|s| usize::try_from(s).unwrap_or(usize::MAX)),
            payload,
        );
        let identity = auth::Authenticated {
            user: Some(user.claims.data.subject.clone()),
            permissions: user.permissions,
            account: Some(user.account),
        };
        self.jwt_user = Some((user.claims, generation));
        Some(identity)
    }

    /// Auth callout: the service decides who the client is. The read loop waits for the
    /// answer (up to the auth timeout) as nats-server's does, on a thread of its own so
    /// the rest of the server keeps running.
    fn callout_login(
        &mut self,
        connect: &ConnectOpts,
        config: &natrix_config::options::AuthCallout,
    ) -> Option<auth::Authenticated> {
        let meta = self.server.client_meta(self.handle.cid);
        let caller = crate::callout::Caller {
            cid: self.handle.cid,
            host: meta
                .as_ref()
                .and_then(|m| m.addr)
                .map(|a| a.ip().to_string())
                .unwrap_or_default(),
            connect: natrix_jwt::ConnectOptions {
                jwt: connect.jwt.clone().unwrap_or_default(),
                nkey: connect.nkey.clone().unwrap_or_default(),
                signed_nonce: connect.sig.clone().unwrap_or_default(),
                token: connect.auth_token.clone().unwrap_or_default(),
                username: connect.user.clone().unwrap_or_default(),
                password: connect.pass.clone().unwrap_or_default(),
                name: connect.name.clone().unwrap_or_default(),
                lang: connect.lang.clone().unwrap_or_default(),
                version: connect.version.clone().unwrap_or_default(),
                protocol: connect.protocol,
            },
            nonce: self.nonce.clone().unwrap_or_default(),
            tls: meta
                .and_then(|m| m.tls)
                .map(|(version, cipher)| natrix_jwt::ClientTls {
                    version,
                    cipher,
                    ..natrix_jwt::ClientTls::default()
                }),
        };
        let handle = tokio::runtime::Handle::current();
        if handle.runtime_flavor() == tokio::runtime::RuntimeFlavor::CurrentThread {
            tracing::error!("auth callout needs the multi-threaded runtime");
            return None;
        }
        let server = self.server.clone();
        let timeout = self.opts.auth_timeout;
        let outcome = tokio::task::block_in_place(|| {
            handle.block_on(crate::callout::authorize(&server, config, caller, timeout))
        });
        match outcome {
            Ok(chosen) => {
                self.expires_at = (chosen.expires > 0).then(|| {
                    let left = chosen.expires - natrix_jwt::now_unix();
                    tokio::time::Instant::now()
                        + Duration::from_secs(u64::try_from(left.max(0)).unwrap_or(0))
                });
                Some(auth::Authenticated {
                    user: Some(chosen.user),
                    permissions: chosen.permissions,
                    account: Some(chosen.account),
                })
            }
            Err(reason) => {
                tracing::warn!(cid = self.handle.cid, "{reason}");
                None
            }
        }
    }

    /// Operator mode: after the account's JWT changed, whether this user is still
    /// admitted (not revoked, its signing key still the account's). False once closed.
    fn recheck_jwt(&mut self) -> bool {
        let Some((user, seen)) = &self.jwt_user else {
            return true;
        };
        let generation = self.account.claims_gen();
        if generation == *seen {
            return true;
        }
        let Some(claims) = self.account.claims() else {
            return true;
        };
        match crate::trust::still_admitted(user, &claims) {
            Ok(()) => {
                if let Some((_, seen)) = &mut self.jwt_user {
                    *seen = generation;
                }
                true
            }
            Err(crate::trust::Refusal::Revoked) => {
                tracing::info!(cid = self.handle.cid, "user authentication revoked");
                self.send_err("User Authentication Revoked");
                self.handle
                    .outbound
                    .close(CloseReason::AuthenticationRevoked);
                false
            }
            Err(e) => {
                tracing::info!(cid = self.handle.cid, "{e}");
                self.send_err("Authorization Violation");
                self.handle
                    .outbound
                    .close(CloseReason::AuthenticationViolation);
                false
            }
        }
    }

    /// The connection's accept-to-authenticated span, when trace export is on.
    fn connect_span(&self, connect: &ConnectOpts, identity: Option<&auth::Authenticated>) {
        if !otlp::enabled() {
            return;
        }
        let mut attrs = vec![
            KeyValue::new(
                "natrix.client.id",
                i64::try_from(self.handle.cid).unwrap_or(i64::MAX),
            ),
            KeyValue::new("natrix.auth.ok", identity.is_some()),
            KeyValue::new("natrix.account", self.account.name().to_owned()),
        ];
        if let Some(user) = identity.and_then(|i| i.user.clone()) {
            attrs.push(KeyValue::new("natrix.user", user));
        }
        for (key, value) in [
            ("natrix.client.name", &connect.name),
            ("natrix.client.lang", &connect.lang),
            ("natrix.client.version", &connect.version),
        ] {
            if let Some(v) = value {
                attrs.push(KeyValue::new(key, v.clone()));
            }
        }
        if let Some(meta) = self.server.client_meta(self.handle.cid)
            && let Some(addr) = meta.addr
        {
            attrs.push(KeyValue::new("network.peer.address", addr.ip().to_string()));
        }
        if let Some(span) = otlp::start_at(
            "natrix.connect",
            opentelemetry::trace::SpanKind::Server,
            self.handle.start,
            attrs,
        ) {
            otlp::finish(span, Vec::new());
        }
    }

    /// The span of one publish, when it is sampled: the message's own `traceparent` (if
    /// sampled) makes it a child in the publisher's trace, otherwise the sampling ratio
    /// decides. Returns the span and, when the message carries a `traceparent`, the copy
    /// subscribers get, which names this span as its parent.
    fn publish_span(
        &self,
        subject: &[u8],
        hdr: usize,
        msg: &[u8],
    ) -> Option<(otlp::Span, Option<Vec<u8>>)> {
        let parent = if hdr > 0 {
            msg.get(..hdr).and_then(traceparent::find)
        } else {
            None
        };
        let sampled = match &parent {
            Some(tp) => tp.sampled(),
            None => self.sample_ratio > 0.0 && fastrand::f64() < self.sample_ratio,
        };
        if !sampled {
            return None;
        }
        let span = otlp::start(
            "natrix.publish",
            opentelemetry::trace::SpanKind::Server,
            parent.as_ref(),
            vec![
                KeyValue::new("messaging.system", "nats"),
                KeyValue::new("messaging.operation.type", "process"),
                KeyValue::new(
                    "messaging.destination.name",
                    String::from_utf8_lossy(subject).into_owned(),
                ),
                KeyValue::new(
                    "messaging.message.body.size",
                    i64::try_from(msg.len() - hdr).unwrap_or(i64::MAX),
                ),
                KeyValue::new("natrix.account", self.account.name().to_owned()),
                KeyValue::new(
                    "natrix.client.id",
                    i64::try_from(self.handle.cid).unwrap_or(i64::MAX),
                ),
            ],
        )?;
        let rewritten = parent.map(|tp| traceparent::with_parent(msg, &tp, otlp::span_id(&span)));
        Some((span, rewritten))
    }

    fn process_sub(
        &mut self,
        subject: &[u8],
        queue: Option<&[u8]>,
        sid: &[u8],
    ) -> Result<(), ParseError> {
        self.last_in = Instant::now();
        self.handle.touch();
        if let Some(perms) = self.permissions.as_ref().and_then(|p| p.subscribe.as_ref())
            && !perms.allows_subscribe(subject, queue)
        {
            self.send_err(&sub_violation_text(subject, queue));
            return Ok(());
        }
        if self.opts.max_sub_tokens > 0 && subject::token_count(subject) > self.opts.max_sub_tokens
        {
            self.send_err("subject has exceeded number of tokens limit");
            return Ok(());
        }
        let live = self.live_subs();
        let own = self.opts.max_subscriptions;
        if (own > 0 && live >= own) || self.jwt_limits.0.is_some_and(|max| live >= max) {
            self.send_err("maximum subscriptions exceeded");
            return Ok(());
        }
        if let Some(existing) = self.subs.get(sid)
            && !existing.is_closed()
        {
            // nats-server keeps the first subscription for a reused sid.
            if self.connect.verbose {
                self.send_ok();
            }
            return Ok(());
        }
        let sub = Arc::new(Subscription {
            subject: Bytes::copy_from_slice(subject),
            queue: queue.map(Bytes::copy_from_slice),
            sid: Bytes::copy_from_slice(sid),
            client: self.handle.clone(),
            max: AtomicU64::new(0),
            delivered: AtomicU64::new(0),
            closed: AtomicBool::new(false),
            weight: AtomicU32::new(1),
            rewrite: None,
            shadows: std::sync::OnceLock::new(),
        });
        if self.account.sublist.insert(sub.clone()).is_err() {
            self.send_err("Invalid Subject");
            return Ok(());
        }
        self.server
            .local_interest(self.account.name(), &sub.subject, sub.queue.as_ref(), true);
        if self.account.has_links() {
            let shadows = crate::imports::add_shadows(&self.server, &self.account, &sub);
            if !shadows.is_empty() {
                let _ = sub.shadows.set(shadows);
            }
        }
        self.subs.insert(sub.sid.clone(), sub);
        if self.connect.verbose {
            self.send_ok();
        }
        Ok(())
    }

    /// Takes a subscription out of the account's sublist and withdraws its interest
    /// from other servers.
    fn remove_sub(&self, sub: &Arc<Subscription>) {
        if let Some(shadows) = sub.shadows.get() {
            crate::imports::remove_shadows(&self.server, shadows);
        }
        if self.account.sublist.remove(sub).is_ok() {
            self.server.local_interest(
                self.account.name(),
                &sub.subject,
                sub.queue.as_ref(),
                false,
            );
        }
    }

    fn live_subs(&self) -> usize {
        self.subs.values().filter(|s| !s.is_closed()).count()
    }

    fn process_unsub(&mut self, sid: &[u8], max: Option<i64>) {
        self.last_in = Instant::now();
        self.handle.touch();
        if let Some(sub) = self.subs.get(sid).cloned() {
            let delivered = sub.delivered.load(Ordering::Acquire);
            match max {
                Some(max) if max > 0 && u64::try_from(max).is_ok_and(|m| m > delivered) => {
                    sub.max.store(max.unsigned_abs(), Ordering::Release);
                }
                _ => {
                    self.subs.remove(sid);
                    sub.closed.store(true, Ordering::Release);
                    self.remove_sub(&sub);
                }
            }
        }
        if self.connect.verbose {
            self.send_ok();
        }
    }

    fn check_pub_permission(&self, subject: &[u8]) -> bool {
        match self.permissions.as_ref().and_then(|p| p.publish.as_ref()) {
            Some(p) => p.allows_publish(subject),
            None => true,
        }
    }

    fn process_pub(
        &mut self,
        subject: &[u8],
        reply: Option<&[u8]>,
        hdr: usize,
        msg: &[u8],
        size_arg: &[u8],
        hdr_arg: &[u8],
    ) {
        self.in_msgs += 1;
        self.in_bytes += msg.len() as u64;
        // Subject mappings apply first, so permissions and matching see the mapped
        // subject, as in nats-server. Only a mapped publish allocates.
        let mapped;
        let subject = match self
            .account
            .map_subject(subject, self.server.cluster_name())
        {
            None => subject,
            Some(m) if m.is_empty() => return,
            Some(m) => {
                mapped = m;
                &mapped[..]
            }
        };
        // Gateway-routed replies and Raft subjects are the server's own.
        let reserved =
            (subject.len() > 5 && subject.starts_with(b"_GR_.")) || subject.starts_with(b"$NRG.");
        if reserved || (!self.check_pub_permission(subject) && !self.response_allowed(subject)) {
            self.send_err(&format!(
                "Permissions Violation for Publish to {}",
                go_quote(subject)
            ));
            return;
        }
        if let Some(r) = reply
            && is_reserved_reply(r)
        {
            self.send_err(&format!(
                "Permissions Violation for Publish with Reply of {}",
                go_quote(r)
            ));
            return;
        }
        if self.connect.verbose {
            self.send_ok();
        }
        let mut span = None;
        let mut traced_msg = None;
        if otlp::enabled()
            && let Some((s, m)) = self.publish_span(subject, hdr, msg)
        {
            span = Some(s);
            traced_msg = m;
        }
        let msg = traced_msg.as_deref().unwrap_or(msg);
        self.payload = if msg.len() >= outbound::SHARE_FROM {
            self.shared_slice(msg)
        } else {
            None
        };
        let result = self.lookup(subject);
        let delivery = Delivery {
            subject,
            sid: &[],
            reply,
            hdr,
            msg,
            size_arg,
            hdr_arg,
        };
        let mut fanout: i64 = 0;
        for sub in &result.psubs {
            fanout += i64::from(self.deliver(sub, &delivery));
        }
        for group in &result.qsubs {
            let n = group.len();
            let start = pick_member(group.iter().map(|s| &**s));
            // Members behind a leaf connection are the fallback (nats-server's queue
            // preference): first pass skips them.
            'group: for behind_leaf in [false, true] {
                for i in 0..n {
                    let sub = &group[(start + i) % n];
                    if (sub.client.kind == ConnKind::Leaf) == behind_leaf
                        && self.deliver(sub, &delivery)
                    {
                        fanout += 1;
                        break 'group;
                    }
                }
            }
        }
        if !self.route_targets.is_empty() {
            self.forward_to_routes(&delivery);
        }
        if let Some(gws) = self.server.gateways() {
            // A request a remote cluster takes is not one without responders.
            fanout += i64::from(gws.send(
                &self.account,
                subject,
                reply,
                hdr,
                msg,
                &result,
                None,
                &mut self.to_flush,
            ));
        }
        if self.account.has_links() {
            let m = crate::imports::Published {
                subject,
                reply,
                hdr,
                msg,
                requester: Some(self.handle.cid),
            };
            let sent = crate::imports::forward(&self.server, &self.account, &m, &mut self.to_flush);
            fanout += i64::try_from(sent).unwrap_or(i64::MAX);
        }
        self.payload = None;
        if let Some(span) = span {
            otlp::finish(span, vec![KeyValue::new("natrix.fanout", fanout)]);
        }
        if fanout == 0
            && let Some(reply) = reply
            && self.connect.no_responders
        {
            self.send_no_responders(reply, subject);
        }
    }

    /// Sends the current message to each route or leaf connection picked during the
    /// match, once.
    fn forward_to_routes(&mut self, d: &Delivery<'_>) {
        let targets = std::mem::take(&mut self.route_targets);
        for (link, queues) in &targets {
            if link.kind == ConnKind::Leaf
                && let Some(leafnodes) = self.server.leafnodes()
                && !leafnodes.may_deliver(link.cid, d.subject)
            {
                continue;
            }
            super::fanout::push_link(link, self.account.name(), d, queues, &mut self.to_flush);
        }
        self.route_targets = targets;
        self.route_targets.clear();
    }

    /// The 503 status for a request nobody received, sent through the requester's own
    /// subscription on the reply subject (none, no message).
    fn send_no_responders(&mut self, reply: &[u8], subject: &[u8]) {
        let r = self.account.sublist.match_subject(reply);
        if let Some(sub) = r
            .psubs
            .iter()
            .find(|s| Arc::ptr_eq(&s.client, &self.handle))
        {
            let mut v = Vec::with_capacity(64 + reply.len() + subject.len());
            encode::no_responders(&mut v, reply, &sub.sid, subject);
            self.handle.outbound.push_proto(&v);
        }
    }

    /// An empty read buffer of at least `want` bytes: a retired one nobody holds any
    /// more, or a new one.
    fn free_read_buffer(&mut self, want: usize) -> BytesMut {
        while let Some(i) = self.retired.iter().position(Bytes::is_unique) {
            if let Ok(mut b) = self.retired.swap_remove(i).try_into_mut() {
                b.clear();
                if b.capacity() >= want {
                    return b;
                }
            }
        }
        BytesMut::with_capacity(want)
    }

    /// `msg` as a slice of the bytes being parsed; `None` when it lies elsewhere (a
    /// traced message got a header of its own).
    fn shared_slice(&self, msg: &[u8]) -> Option<Bytes> {
        let chunk = &self.read_chunk;
        let start = (msg.as_ptr() as usize).checked_sub(chunk.as_ptr() as usize)?;
        let end = start.checked_add(msg.len())?;
        (end <= chunk.len()).then(|| chunk.slice(start..end))
    }

    /// Matches through the per-connection cache.
    fn lookup(&mut self, subject: &[u8]) -> Arc<MatchResult<Subscription>> {
        let sublist = &self.account.sublist;
        let genid = sublist.genid();
        if genid != self.cache_genid {
            self.cache.clear();
            self.cache_genid = genid;
        } else if let Some(r) = self.cache.get(subject) {
            return r.clone();
        }
        // Empty results are cached too: publishing where nobody listens (or only a
        // stream or another server will) must not walk the sublist each time.
        let r = sublist.match_subject(subject);
        if self.cache.len() >= RESULT_CACHE_MAX {
            let victims: Vec<Box<[u8]>> = self
                .cache
                .keys()
                .take(RESULT_CACHE_MAX / 4)
                .cloned()
                .collect();
            for k in victims {
                self.cache.remove(&k);
            }
        }
        self.cache.insert(subject.into(), r.clone());
        r
    }

    /// Delivers to one subscription; false if it did not take the message.
    fn deliver(&mut self, sub: &Arc<Subscription>, d: &Delivery<'_>) -> bool {
        if sub.is_closed() {
            return false;
        }
        let own = Arc::ptr_eq(&sub.client, &self.handle);
        if own && !self.connect.echo {
            return false;
        }
        match sub.claim() {
            Claim::Skip => return false,
            Claim::Last => self.expired.push(sub.clone()),
            Claim::Deliver => {}
        }
        if sub.client.kind != ConnKind::Client {
            // Forwarded once per route or leaf connection after the match, with every
            // queue group the connection was picked for.
            match self
                .route_targets
                .iter_mut()
                .find(|(h, _)| Arc::ptr_eq(h, &sub.client))
            {
                Some((_, queues)) => queues.extend(sub.queue.clone()),
                None => self
                    .route_targets
                    .push((sub.client.clone(), sub.queue.clone().into_iter().collect())),
            }
            return true;
        }
        let target = &sub.client;
        if let Some(reply) = d.reply
            && target.track_replies.load(Ordering::Relaxed)
        {
            record_reply(target, reply);
        }
        let headers = target.headers.load(Ordering::Relaxed);
        let imported;
        let subject = match &sub.rewrite {
            None => d.subject,
            Some(r) => {
                imported = r.apply(d.subject);
                &imported[..]
            }
        };
        let frame = Delivery {
            sid: &sub.sid,
            subject,
            ..*d
        };
        let size = if headers || d.hdr == 0 {
            d.msg.len()
        } else {
            d.msg.len() - d.hdr
        };
        let push = match &self.payload {
            Some(body) => target.outbound.push_shared(
                frame.wire_len(),
                size,
                |out| frame.encode_head(out, headers),
                body,
            ),
            None => target
                .outbound
                .push_msg(frame.wire_len(), size, |out| frame.encode(out, headers)),
        };
        match push {
            // A slow consumer is counted once, when its own connection winds down.
            Push::Closed => false,
            Push::Queued { .. } | Push::Stall { .. } => {
                if push.needs_flush() {
                    self.to_flush.push(target.outbound.clone());
                }
                let size = size as u64;
                // Server and account totals are published once per read (`after_read`).
                self.out_msgs += 1;
                self.out_bytes += size;
                if let Push::Stall { .. } = push {
                    target.stalls.fetch_add(1, Ordering::Relaxed);
                    self.server.stats.stalls.fetch_add(1, Ordering::Relaxed);
                }
                if let Push::Stall { limit, .. } = push
                    && !own
                    && self.stall.as_ref().is_none_or(|(_, l)| *l < limit)
                {
                    self.stall = Some((target.outbound.clone(), limit));
                }
                true
            }
        }
    }
}

impl Handler for Client {
    fn awaiting_auth(&self) -> bool {
        self.awaiting_auth
    }

    fn max_control_line(&self) -> usize {
        self.opts.max_control_line
    }

    fn headers(&self) -> bool {
        self.handle.headers.load(Ordering::Relaxed)
    }

    fn pub_args(&mut self, args: &PubArgs<'_>) -> Result<(), ParseError> {
        let max = match self.jwt_limits.1 {
            Some(limit) => limit.min(i64::from(self.opts.max_payload)),
            None => i64::from(self.opts.max_payload),
        };
        if max >= 0 && i64::try_from(args.size).unwrap_or(i64::MAX) > max {
            tracing::error!(
                cid = self.handle.cid,
                "maximum payload exceeded: {} vs {}",
                args.size,
                max
            );
            return Err(ParseError::MaxPayload);
        }
        if self.connect.pedantic && !subject::is_valid_literal_subject(args.subject) {
            self.send_err("Invalid Publish Subject");
        }
        Ok(())
    }

    fn op(&mut self, op: Op<'_>) -> Result<(), ParseError> {
        match op {
            Op::Connect(arg) => self.process_connect(arg)?,
            Op::Pub {
                subject,
                reply,
                hdr,
                msg,
                size_arg,
                hdr_arg,
            } => self.process_pub(subject, reply, hdr.unwrap_or(0), msg, size_arg, hdr_arg),
            Op::Sub {
                subject,
                queue,
                sid,
            } => self.process_sub(subject, queue, sid)?,
            Op::Unsub { sid, max } => self.process_unsub(sid, max),
            Op::Ping => {
                self.handle.outbound.push_proto(encode::PONG);
                self.last_in = Instant::now();
                if self.connect_received && !self.first_pong_sent {
                    self.first_pong_sent = true;
                    self.send_connect_info();
                }
            }
            Op::Pong => {
                self.pings_out = 0;
            }
            Op::Ok => {}
            Op::Info(arg) => {
                serde_json::from_slice::<serde::de::IgnoredAny>(arg)
                    .map_err(|_| ParseError::Violation("bad INFO json"))?;
            }
            Op::Err(arg) => {
                tracing::error!(
                    cid = self.handle.cid,
                    "Client Error {}",
                    String::from_utf8_lossy(arg)
                );
                self.handle.outbound.close(CloseReason::ParseError);
                return Err(ParseError::Closed);
            }
        }
        Ok(())
    }
}

impl Client {
    /// After the first PONG, clients of protocol 1 get an INFO naming their account
    /// (`connect_info`), as nats-server sends.
    fn send_connect_info(&self) {
        if self.connect.protocol < 1 {
            return;
        }
        let json =
            self.server
                .client_info_json(self.handle.cid, None, Some(self.account.name()), None);
        let mut v = Vec::with_capacity(json.len() + 8);
        encode::info(&mut v, &json);
        self.handle.outbound.push_proto(&v);
    }
}

/// Remembers that `target` received a request answerable at `reply`.
fn record_reply(target: &ClientHandle, reply: &[u8]) {
    let mut replies = target.replies.lock();
    if replies.len() >= REPLY_PERM_LIMIT {
        // Sweep what is old; nats-server prunes the same way past its limit.
        let cutoff = Duration::from_secs(120);
        replies.retain(|_, (since, _)| since.elapsed() < cutoff);
        if replies.len() >= REPLY_PERM_LIMIT {
            replies.clear();
        }
    }
    replies
        .entry(Bytes::copy_from_slice(reply))
        .or_insert_with(|| (Instant::now(), 0));
}

/// nats-server's text for a refused subscription.
pub(crate) fn sub_violation_text(subject: &[u8], queue: Option<&[u8]>) -> String {
    match queue {
        Some(q) => format!(
            "Permissions Violation for Subscription to {} using queue {}",
            go_quote(subject),
            go_quote(q)
        ),
        None => format!(
            "Permissions Violation for Subscription to {}",
            go_quote(subject)
        ),
    }
}

/// Reply prefixes reserved for the server's own routing.
fn is_reserved_reply(reply: &[u8]) -> bool {
    (reply.len() > 4 && reply.starts_with(b"_R_."))
        || (reply.len() > 8 && reply.starts_with(b"$JS.ACK."))
        || (reply.len() > 5 && reply.starts_with(b"_GR_."))
}

/// Go's `%q` for the subjects in permission errors.
pub(crate) fn go_quote(s: &[u8]) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for ch in String::from_utf8_lossy(s).chars() {
        match ch {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c.is_control() => out.push_str(&format!("\\x{:02x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn first_ping_delay(opts: &RuntimeOptions) -> Duration {
    let d = opts.ping_interval.min(FIRST_PING);
    // Spread first PINGs by up to 20%, as nats-server does.
    let jitter = d.as_millis() as u64 / 5;
    d + Duration::from_millis(if jitter > 0 {
        fastrand::u64(..jitter)
    } else {
        0
    })
}

async fn sleep_until_opt(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(d) => tokio::time::sleep_until(d).await,
        None => std::future::pending().await,
    }
}
