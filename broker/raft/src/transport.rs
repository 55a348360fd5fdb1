//! A server's Raft transport: request/response over the bus, for every group at once.
//!
//! One [`Transport`] per server owns one bus connection with one subscription,
//! `$NRG.<server>.>` (see [`crate::wire`]). Through it arrive
//! - requests for any of this server's group members: each is decoded and handed to the
//!   group's `Raft` (found in the [`GroupRouter`]) on a task of its own, so a slow group
//!   never holds up another, and the answer is published to the request's reply subject;
//! - replies to this server's own requests, on `$NRG.<server>.R.<seq>`: each completes the
//!   waiting request with that sequence number.
//!
//! A request waits at most its deadline (openraft's per-RPC TTL, capped by
//! [`TransportOptions::max_timeout`]); a target with no subscriber (its server is down or
//! not routed) fails at once, without waiting.
//!
//! Heartbeats (`AppendEntries` without entries) are not sent one by one: every group
//! leader heartbeats each follower several times a second, so a server leading a thousand
//! groups would send thousands of tiny messages a second to each peer. They wait up to
//! [`TransportOptions::heartbeat_window`] and leave together, one message per target
//! server; the target answers them in a few batched replies.

use std::collections::HashMap;
use std::future::Future;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Weak};
use std::time::Duration;

use bytes::Bytes;
use openraft::error::RaftError;
use openraft::{BasicNode, Raft, RaftTypeConfig};
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;
use tokio::sync::oneshot;

use crate::bus::{BusConn, BusError, Msg, RaftBus};
use crate::router::GroupRouter;
use crate::wire::{
    self, Inbound, Refusal, ReplyFrame, RequestFrame, RpcKind, decode_frame, encode_frame,
};

/// The openraft type configs the transport carries: u64 node ids, and nodes whose `addr`
/// is the server id they run on.
pub trait TransportConfig: RaftTypeConfig<NodeId = u64, Node = BasicNode> {}
impl<T> TransportConfig for T where T: RaftTypeConfig<NodeId = u64, Node = BasicNode> {}

/// Limits of the transport.
#[derive(Debug, Clone)]
pub struct TransportOptions {
    /// No request waits longer than this, whatever openraft asks.
    pub max_timeout: Duration,
    /// The largest request payload sent; an `AppendEntries` above it is split (openraft
    /// retries with fewer entries). Keep it at or below the server's `max_payload`.
    pub max_payload: usize,
    /// How long a heartbeat waits for others to the same server (zero: each goes alone).
    /// Small against the heartbeat interval and the election timeout.
    pub heartbeat_window: Duration,
}

impl Default for TransportOptions {
    fn default() -> Self {
        Self {
            max_timeout: Duration::from_secs(5),
            max_payload: 1024 * 1024,
            heartbeat_window: Duration::from_millis(10),
        }
    }
}

/// How often a server answering a batch of heartbeats sends the answers it has: the
/// groups answer at their own pace, and a busy one must not hold up the others.
const BATCH_REPLY_EVERY: Duration = Duration::from_millis(20);

/// Why a request got no answer from the target's Raft.
#[derive(Debug, Clone, thiserror::Error)]
pub enum SendError {
    /// The target cannot be reached now: no subscriber for its subject, this transport is
    /// closed, or the target's transport refused (the group is not running there, or the
    /// server has another node id). openraft backs off and retries.
    #[error("unreachable: {0}")]
    Unreachable(String),
    /// No reply within the deadline.
    #[error("no reply within {0:?}")]
    Timeout(Duration),
    /// The encoded request is larger than `max_payload`.
    #[error("request of {size} bytes exceeds max payload {max}")]
    TooLarge { size: usize, max: usize },
}

/// Why a transport could not start.
#[derive(Debug, thiserror::Error)]
pub enum TransportError {
    #[error("server id {0:?} cannot be a subject token")]
    InvalidServerId(String),
    #[error("bus: {0}")]
    Bus(#[from] BusError),
}

/// A server's transport. Clones share it.
pub struct Transport<C: TransportConfig> {
    inner: Arc<Inner<C>>,
}

impl<C: TransportConfig> Clone for Transport<C> {
    fn clone(&self) -> Self {
        Self {
            inner: self.inner.clone(),
        }
    }
}

struct Inner<C: TransportConfig> {
    server_id: String,
    node_id: u64,
    options: TransportOptions,
    router: GroupRouter<C>,
    /// `None` once closed.
    conn: Mutex<Option<Arc<dyn BusConn>>>,
    reply_prefix: String,
    next_seq: AtomicU64,
    pending: Mutex<HashMap<u64, oneshot::Sender<Bytes>>>,
    /// Heartbeats waiting to leave, by target server: request sequence and frame.
    heartbeats: Mutex<HashMap<String, wire::Batch>>,
    runtime: tokio::runtime::Handle,
}

/// Removes a request from the pending table however its wait ends (answered, timed out,
/// or the caller dropped the future), so the table never keeps stale entries.
struct PendingGuard<'a, C: TransportConfig> {
    inner: &'a Inner<C>,
    seq: u64,
}

impl<C: TransportConfig> Drop for PendingGuard<'_, C> {
    fn drop(&mut self) {
        self.inner.pending.lock().remove(&self.seq);
    }
}

impl<C: TransportConfig> Transport<C> {
    /// Connects to `bus` as server `server_id`, whose members all have node id `node_id`,
    /// and subscribes to `$NRG.<server_id>.>`. Must be called inside a tokio runtime.
    pub fn start(
        bus: &dyn RaftBus,
        server_id: &str,
        node_id: u64,
        options: TransportOptions,
    ) -> Result<Self, TransportError> {
        if !wire::valid_server_token(server_id) {
            return Err(TransportError::InvalidServerId(server_id.to_owned()));
        }
        let inner = Arc::new(Inner {
            server_id: server_id.to_owned(),
            node_id,
            options,
            router: GroupRouter::default(),
            conn: Mutex::new(None),
            reply_prefix: wire::reply_prefix(server_id),
            next_seq: AtomicU64::new(1),
            pending: Mutex::new(HashMap::new()),
            heartbeats: Mutex::new(HashMap::new()),
            runtime: tokio::runtime::Handle::current(),
        });
        // The handler holds the transport weakly: the transport owns the connection, and
        // the connection's task owns the handler.
        let weak: Weak<Inner<C>> = Arc::downgrade(&inner);
        let conn = bus.connect(Box::new(move |msg| {
            if let Some(inner) = weak.upgrade() {
                Inner::on_message(&inner, msg);
            }
        }))?;
        conn.subscribe(&wire::server_subject(server_id))?;
        *inner.conn.lock() = Some(conn);
        tracing::debug!(server = server_id, node = node_id, "raft transport started");
        Ok(Self { inner })
    }

    pub fn server_id(&self) -> &str {
        &self.inner.server_id
    }

    pub fn node_id(&self) -> u64 {
        self.inner.node_id
    }

    /// The groups this server answers for.
    pub fn router(&self) -> &GroupRouter<C> {
        &self.inner.router
    }

    pub fn options(&self) -> &TransportOptions {
        &self.inner.options
    }

    /// Stops answering and sending: unsubscribes, forgets the routed groups and fails the
    /// requests still waiting (their callers see the target as unreachable).
    pub fn close(&self) {
        let conn = self.inner.conn.lock().take();
        drop(conn);
        self.inner.router.drain();
        self.inner.pending.lock().clear();
        tracing::debug!(server = %self.inner.server_id, "raft transport closed");
    }

    /// Sends `rpc` for `group` to node `target` on server `server` and waits for the
    /// answer of its Raft, at most `ttl` (capped by `max_timeout`). A
    /// [`RpcKind::Heartbeats`] request (an `AppendEntries` without entries) leaves with
    /// the other heartbeats to the same server within `heartbeat_window`.
    pub async fn request<Req, Resp, E>(
        &self,
        server: &str,
        target: u64,
        group: &str,
        kind: RpcKind,
        rpc: Req,
        ttl: Duration,
    ) -> Result<Result<Resp, RaftError<u64, E>>, SendError>
    where
        Req: Serialize,
        Resp: DeserializeOwned,
        E: DeserializeOwned,
    {
        let inner = &*self.inner;
        if !wire::valid_server_token(server) {
            return Err(SendError::Unreachable(format!(
                "node {target} has no valid server id ({server:?})"
            )));
        }
        let frame = RequestFrame {
            group: group.to_owned(),
            from: inner.node_id,
            to: target,
            rpc,
        };
        let payload =
            encode_frame(&frame).map_err(|e| SendError::Unreachable(format!("encoding: {e}")))?;
        if payload.len() > inner.options.max_payload {
            return Err(SendError::TooLarge {
                size: payload.len(),
                max: inner.options.max_payload,
            });
        }
        let subject = wire::request_subject(server, kind);
        let conn = inner
            .conn
            .lock()
            .clone()
            .ok_or_else(|| SendError::Unreachable(BusError::Closed.to_string()))?;
        if !conn.has_interest(&subject) {
            return Err(SendError::Unreachable(format!(
                "no route to server {server}"
            )));
        }
        let seq = inner.next_seq.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        inner.pending.lock().insert(seq, tx);
        let _guard = PendingGuard { inner, seq };
        if kind == RpcKind::Heartbeats {
            drop(conn);
            Inner::queue_heartbeat(&self.inner, server, seq, payload);
        } else {
            let reply = format!("{}.{seq}", inner.reply_prefix);
            conn.publish(&subject, Some(&reply), &payload)
                .map_err(|e| SendError::Unreachable(e.to_string()))?;
            drop(conn);
        }

        let ttl = ttl.min(inner.options.max_timeout);
        let bytes = match tokio::time::timeout(ttl, rx).await {
            Ok(Ok(bytes)) => bytes,
            Ok(Err(_)) => return Err(SendError::Unreachable("transport closed".into())),
            Err(_) => return Err(SendError::Timeout(ttl)),
        };
        match decode_frame::<ReplyFrame<Resp, E>>(&bytes) {
            Ok(ReplyFrame::Raft(result)) => Ok(result),
            Ok(ReplyFrame::Refused(r)) => Err(SendError::Unreachable(r.to_string())),
            Err(r) => Err(SendError::Unreachable(format!("reply: {r}"))),
        }
    }
}

impl<C: TransportConfig> Inner<C> {
    /// Adds a heartbeat to its server's batch; the first of a batch sends it after the
    /// window.
    fn queue_heartbeat(this: &Arc<Self>, server: &str, seq: u64, frame: Vec<u8>) {
        let first = {
            let mut queued = this.heartbeats.lock();
            let batch = queued.entry(server.to_owned()).or_default();
            batch.push((seq, frame));
            batch.len() == 1
        };
        if first {
            let this = this.clone();
            let server = server.to_owned();
            this.runtime.clone().spawn(async move {
                tokio::time::sleep(this.options.heartbeat_window).await;
                this.send_heartbeats(&server);
            });
        }
    }

    fn send_heartbeats(&self, server: &str) {
        let Some(batch) = self.heartbeats.lock().remove(server) else {
            return;
        };
        let payload = match encode_frame(&batch) {
            Ok(p) => p,
            Err(e) => {
                tracing::warn!("encoding heartbeats: {e}");
                return;
            }
        };
        let conn = self.conn.lock().clone();
        let reply = format!("{}.{}", self.reply_prefix, wire::BATCH_REPLY);
        if let Some(conn) = conn
            && let Err(e) = conn.publish(
                &wire::request_subject(server, RpcKind::Heartbeats),
                Some(&reply),
                &payload,
            )
        {
            // The waiting requests time out; openraft retries.
            tracing::debug!(server, "publishing heartbeats: {e}");
        }
    }

    /// Completes each request a batch of replies answers.
    fn on_replies(&self, payload: &[u8]) {
        let batch: wire::Batch = match decode_frame(payload) {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!("undecodable batch of raft replies: {e}");
                return;
            }
        };
        let mut pending = self.pending.lock();
        for (seq, frame) in batch {
            if let Some(tx) = pending.remove(&seq) {
                let _ = tx.send(Bytes::from(frame));
            }
        }
    }

    /// Answers a batch of heartbeats: each group's on a task of its own, the answers sent
    /// as they come, gathered every [`BATCH_REPLY_EVERY`].
    async fn serve_heartbeats(self: Arc<Self>, payload: Bytes, reply: String) {
        let batch: wire::Batch = match decode_frame(&payload) {
            Ok(b) => b,
            Err(e) => {
                tracing::debug!("undecodable batch of heartbeats: {e}");
                return;
            }
        };
        let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
        for (seq, frame) in batch {
            let this = self.clone();
            let tx = tx.clone();
            self.runtime.spawn(async move {
                match this
                    .answer(
                        &frame,
                        |raft, rpc| async move { raft.append_entries(rpc).await },
                    )
                    .await
                {
                    Ok(bytes) => {
                        let _ = tx.send((seq, bytes));
                    }
                    Err(e) => tracing::warn!("encoding raft reply: {e}"),
                }
            });
        }
        drop(tx);
        let mut ready: wire::Batch = Vec::new();
        let mut next = tokio::time::Instant::now() + BATCH_REPLY_EVERY;
        loop {
            tokio::select! {
                got = rx.recv() => match got {
                    Some(answer) => ready.push(answer),
                    None => break,
                },
                () = tokio::time::sleep_until(next) => {
                    self.reply_batch(&reply, &mut ready);
                    next += BATCH_REPLY_EVERY;
                }
            }
        }
        self.reply_batch(&reply, &mut ready);
    }

    fn reply_batch(&self, reply: &str, ready: &mut wire::Batch) {
        if ready.is_empty() {
            return;
        }
        let bytes = match encode_frame(&*ready) {
            Ok(b) => b,
            Err(e) => {
                tracing::warn!("encoding raft replies: {e}");
                return;
            }
        };
        ready.clear();
        let conn = self.conn.lock().clone();
        if let Some(conn) = conn
            && let Err(e) = conn.publish(reply, None, &bytes)
        {
            tracing::debug!("publishing raft replies: {e}");
        }
    }

    fn on_message(this: &Arc<Self>, msg: Msg) {
        match wire::parse_inbound(&this.server_id, &msg.subject) {
            Some(Inbound::Reply(wire::BATCH_REPLY)) => this.on_replies(&msg.payload),
            Some(Inbound::Request(RpcKind::Heartbeats)) => {
                let Some(reply) = msg.reply else {
                    tracing::debug!(subject = %msg.subject, "raft request without reply subject");
                    return;
                };
                let this = this.clone();
                this.runtime
                    .clone()
                    .spawn(this.serve_heartbeats(msg.payload, reply));
            }
            Some(Inbound::Reply(seq)) => {
                if let Some(tx) = this.pending.lock().remove(&seq) {
                    // The requester may have given up already; nothing to do then.
                    let _ = tx.send(msg.payload);
                }
            }
            Some(Inbound::Request(kind)) => {
                let Some(reply) = msg.reply else {
                    tracing::debug!(subject = %msg.subject, "raft request without reply subject");
                    return;
                };
                let this = this.clone();
                this.runtime.clone().spawn(async move {
                    this.serve(kind, msg.payload, reply).await;
                });
            }
            None => tracing::debug!(subject = %msg.subject, "unexpected raft subject"),
        }
    }

    async fn serve(&self, kind: RpcKind, payload: Bytes, reply: String) {
        let answer = match kind {
            RpcKind::AppendEntries => {
                self.answer(&payload, |raft, rpc| async move {
                    raft.append_entries(rpc).await
                })
                .await
            }
            RpcKind::Vote => {
                self.answer(&payload, |raft, rpc| async move { raft.vote(rpc).await })
                    .await
            }
            RpcKind::InstallSnapshot => {
                self.answer(&payload, |raft, rpc| async move {
                    raft.install_snapshot(rpc).await
                })
                .await
            }
            RpcKind::Heartbeats => return,
        };
        let bytes = match answer {
            Ok(bytes) => bytes,
            Err(e) => {
                tracing::warn!(?kind, "encoding raft reply: {e}");
                return;
            }
        };
        let conn = self.conn.lock().clone();
        if let Some(conn) = conn
            && let Err(e) = conn.publish(&reply, None, &bytes)
        {
            tracing::debug!(?kind, "publishing raft reply: {e}");
        }
    }

    /// Decodes a request, checks it is for this node and a group running here, asks that
    /// group's `Raft` with `call`, and encodes the reply frame.
    async fn answer<Req, Resp, E, F, Fut>(
        &self,
        payload: &[u8],
        call: F,
    ) -> Result<Vec<u8>, crate::StoreError>
    where
        Req: DeserializeOwned,
        Resp: Serialize,
        E: Serialize,
        F: FnOnce(Raft<C>, Req) -> Fut,
        Fut: Future<Output = Result<Resp, RaftError<u64, E>>>,
    {
        let frame: ReplyFrame<Resp, E> = match self.route::<Req>(payload) {
            Ok((raft, rpc)) => ReplyFrame::Raft(call(raft, rpc).await),
            Err(refusal) => {
                tracing::debug!(server = %self.server_id, "refusing raft request: {refusal}");
                ReplyFrame::Refused(refusal)
            }
        };
        encode_frame(&frame)
    }

    fn route<Req: DeserializeOwned>(&self, payload: &[u8]) -> Result<(Raft<C>, Req), Refusal> {
        let frame: RequestFrame<Req> = decode_frame(payload)?;
        if frame.to != self.node_id {
            return Err(Refusal::WrongNode {
                asked: frame.to,
                have: self.node_id,
            });
        }
        let raft = self
            .router
            .get(&frame.group)
            .ok_or(Refusal::NoGroup(frame.group))?;
        Ok((raft, frame.rpc))
    }
}
