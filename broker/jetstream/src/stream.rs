//! One stream: an actor task that owns the stream's store, its consumers and its
//! configuration, and serialises everything that touches them.
//!
//! The write path is "propose, then apply", so that a Raft log can slot in between later:
//! publishes that arrive while a commit is in flight are validated against the stream's
//! state (expected-sequence headers, de-duplication, discard-new limits) and gathered into
//! one batch; the batch is appended to the store in one durable commit; only then are the
//! publishers acknowledged and the consumers woken. A failed commit acknowledges nothing
//! and leaves the state as it was (nothing is half-stored).

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::RwLock;
use tokio::sync::{mpsc, oneshot};

use crate::api::errors::{self, ApiError};
use crate::api::types::{DiscardPolicy, PubAck, RetentionPolicy, StreamConfig, StreamState};
use crate::bus::{Conn, Msg};
use crate::consumer::{Consumer, ConsumerCtx};
use crate::headers;
use crate::store::{Limits, NewMsg, Purge, Store, StoreError};
use crate::time::now_nanos;

/// The consumers' view of their stream, borrowed field by field so the consumers map
/// can be borrowed mutably beside it.
macro_rules! ctx {
    ($s:expr) => {
        ConsumerCtx {
            stream: &$s.name,
            config: &$s.config,
            store: $s.store.as_ref(),
            conn: $s.conn.as_ref(),
        }
    };
}

/// Most messages one commit takes; more wait for the next one.
const MAX_BATCH: usize = 4096;
/// Bytes one commit takes at most (payloads and headers).
const MAX_BATCH_BYTES: usize = 8 << 20;
/// Bytes one commit of a replicated stream takes at most: the batch is one Raft entry,
/// and entries travel whole (the transport's limit is set from this).
pub const MAX_REPLICATED_BATCH_BYTES: usize = 4 << 20;

/// What the stream actor is asked to do.
pub enum Cmd {
    /// A message on one of the stream's subjects.
    Publish(Msg),
    /// A message on `$JS.ACK.<stream>.>` or a flow-control reply.
    Ack(Msg),
    /// A direct get (`$JS.API.DIRECT.GET.<stream>[.<subject>]`).
    DirectGet(Msg),
    /// A pull request for one of its consumers.
    Next { consumer: String, msg: Msg },
    /// An API call, answered on the oneshot.
    Call(Call, oneshot::Sender<Result<serde_json::Value, ApiError>>),
    /// Messages from a mirror's or source's origin, to store (`source.rs`).
    Sourced(crate::source::Inbound),
    /// Messages a replicated stream's group applied (`cluster`): stored here unless
    /// this replica already has them.
    Replicated {
        first_seq: u64,
        msgs: Vec<crate::cluster::machine::WireMsg>,
    },
    /// A change of the store a replicated stream's group applied (`cluster`), at log
    /// `index`: a purge, removals, consumer records.
    ReplicatedOp {
        index: u64,
        op: crate::cluster::machine::StoreOp,
    },
    /// The group applied the first entry of `node`'s leadership in `term`: if that is this
    /// replica, it has now applied everything its predecessors committed, and takes up
    /// writes and consumers.
    LeaderReady { term: u64, node: u64 },
    /// A replicated stream's group took its state from a snapshot: catch up to `upto`
    /// from the leader's store if this replica's store is behind.
    CatchUp { upto: u64 },
    /// A replica's catch-up request (`cluster::catchup`), answered by the leader.
    ServeCatchUp(Msg),
    /// Stop the actor (server shutdown, or the stream deleted).
    Stop {
        delete: bool,
        done: oneshot::Sender<()>,
    },
}

/// API calls the stream answers itself.
pub enum Call {
    /// `cluster`: name this server leader (`STREAM.INFO`, lists), as nats-server does
    /// there but not in create and update answers.
    Info {
        deleted: bool,
        subjects: Option<String>,
        offset: usize,
        cluster: bool,
    },
    Update(Box<StreamConfig>),
    Purge(Purge),
    GetMsg(crate::api::types::MsgGetRequest),
    DeleteMsg {
        seq: u64,
        no_erase: bool,
    },
    ConsumerCreate {
        config: Box<crate::api::types::ConsumerConfig>,
        action: crate::api::types::ConsumerAction,
        pedantic: bool,
    },
    ConsumerInfo(String),
    ConsumerDelete(String),
    ConsumerList {
        offset: usize,
    },
    ConsumerNames {
        offset: usize,
    },
    ConsumerPause {
        name: String,
        until: Option<i64>,
    },
    ConsumerUnpin {
        name: String,
        group: String,
    },
    /// `STREAM.SNAPSHOT`: pin a copy of the store between two commits (`snapshot.rs`).
    Snapshot(crate::snapshot::Take),
}

/// What other tasks may read without asking the actor: kept current by it.
#[derive(Debug)]
pub struct Shared {
    pub config: StreamConfig,
    pub state: crate::store::StoreState,
    pub consumers: usize,
    /// Store commits of publishes, and the messages they carried (`/jsz` stream detail).
    pub commits: u64,
    pub committed_msgs: u64,
}

/// A running stream as its account sees it.
pub struct StreamHandle {
    pub name: String,
    pub tx: mpsc::UnboundedSender<Cmd>,
    pub shared: Arc<RwLock<Shared>>,
    /// A clustered stream's Raft side; `None`: a single server's stream.
    pub replica: Option<crate::cluster::Replica>,
}

impl StreamHandle {
    /// Whether this server answers for the stream (its leader, or its only replica).
    pub fn is_leader(&self) -> bool {
        self.replica
            .as_ref()
            .is_none_or(crate::cluster::Replica::is_leader)
    }

    /// Sends an API call and waits for the answer.
    pub async fn call(&self, call: Call) -> Result<serde_json::Value, ApiError> {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Cmd::Call(call, tx)).is_err() {
            return Err(errors::stream_not_found());
        }
        rx.await.unwrap_or_else(|_| Err(errors::stream_not_found()))
    }
}

/// The actor.
pub struct Stream {
    pub name: String,
    pub config: StreamConfig,
    pub created: i64,
    pub store: Arc<dyn Store>,
    pub conn: Arc<dyn Conn>,
    pub domain: Option<String>,
    pub shared: Arc<RwLock<Shared>>,
    /// The subscriptions on the stream's subjects.
    subject_sids: Vec<u64>,
    /// `Nats-Msg-Id` → (sequence, time stored), for the duplicate window.
    dedupe: HashMap<String, (u64, i64)>,
    dedupe_order: VecDeque<(i64, String)>,
    last_msg_id: String,
    pub consumers: BTreeMap<String, Consumer>,
    /// When the store has messages to expire next.
    next_expiry: Option<i64>,
    /// The server's `max_pending`: the default byte budget of a direct-get batch.
    pub max_pending: usize,
    /// The server's JetStream limits, for consumer defaults.
    pub limits: crate::validate::ServerLimits,
    /// A consumer stopped at its per-round cap with more to send.
    more_to_deliver: bool,
    /// The server's name (a single server leads every stream: `cluster.leader`) and
    /// the nats-server version it answers as (`_nats.ver` in config metadata).
    pub server_name: String,
    pub version: String,
    /// The stream's mirror or sources, and their tasks.
    pub(crate) sourcing: crate::source::Sourcing,
    /// Replies owed to acks that asked for one (`AckSync`): sent once the round's
    /// consumer state is durable.
    ack_replies: Vec<String>,
    /// Messages every interested consumer acked during this round (interest and
    /// work-queue retention): removed together at its end.
    acked_removals: Vec<u64>,
    /// When consumer state was last made durable, if it changed since.
    consumers_unsynced: Option<Instant>,
    /// The store's [`Store::reopens`] when consumer state was last written.
    store_reopens: u64,
    /// The account's and the server's limits on bytes stored (none in unit tests).
    pub quota: Option<Arc<crate::quota::Quota>>,
    /// The bytes this stream has added to the quota's usage so far.
    counted: i64,
    /// A replicated stream's Raft side; `None` for a stream with one home.
    pub replica: Option<crate::cluster::Replica>,
    /// The cluster's name, in clustered JetStream.
    pub cluster_name: String,
    /// A replicated stream: whether this replica led at the last look (a replica that
    /// becomes leader rebuilds its consumers from the replicated records).
    /// A replicated stream: the Raft term in which this replica leads and has applied
    /// all its predecessors committed (0: none).
    ready_term: u64,
    /// Consumer state records written since they were last replicated: they go to the
    /// group with the next durable round (at least once a second).
    unreplicated: BTreeMap<String, Vec<u8>>,
    /// Messages the leader removed quietly (acknowledged in an interest or work-queue
    /// stream) that its group has not been told of yet: sent with the next round.
    unreplicated_removals: Vec<u64>,
    /// Log indexes of the store changes this replica proposed and applied itself: the
    /// group hands them back, and they are not applied twice.
    own_ops: parking_lot::Mutex<std::collections::HashSet<u64>>,
}

/// One publish that passed its checks, waiting for the commit.
pub(crate) struct Proposed {
    pub(crate) msg: NewMsg,
    pub(crate) reply: Option<String>,
    pub(crate) msg_id: Option<String>,
    pub(crate) rollup: Option<Rollup>,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub(crate) enum Rollup {
    Subject,
    All,
}

impl Stream {
    /// Builds the actor for an opened store; `subscribe` it with [`Stream::start`].
    pub fn new(
        config: StreamConfig,
        created: i64,
        store: Arc<dyn Store>,
        conn: Arc<dyn Conn>,
        domain: Option<String>,
    ) -> Self {
        let state = store.state();
        let shared = Arc::new(RwLock::new(Shared {
            config: config.clone(),
            state,
            consumers: 0,
            commits: 0,
            committed_msgs: 0,
        }));
        Self {
            name: config.name.clone(),
            config,
            created,
            store,
            conn,
            domain,
            shared,
            subject_sids: Vec::new(),
            dedupe: HashMap::new(),
            dedupe_order: VecDeque::new(),
            last_msg_id: String::new(),
            consumers: BTreeMap::new(),
            next_expiry: None,
            max_pending: 64 << 20,
            limits: crate::validate::ServerLimits::default(),
            more_to_deliver: false,
            server_name: String::new(),
            version: String::new(),
            sourcing: crate::source::Sourcing::default(),
            ack_replies: Vec::new(),
            acked_removals: Vec::new(),
            consumers_unsynced: None,
            store_reopens: 0,
            quota: None,
            counted: 0,
            replica: None,
            cluster_name: String::new(),
            ready_term: 0,
            unreplicated: BTreeMap::new(),
            unreplicated_removals: Vec::new(),
            own_ops: parking_lot::Mutex::default(),
        }
    }

    /// A replica that stopped leading drops its live consumers (their records stay, and
    /// the new leader owns them); a new leader takes them up on [`Cmd::LeaderReady`].
    fn follow_leadership(&mut self) {
        if self.ready_term != 0 && !self.leads() {
            self.ready_term = 0;
            self.consumers.clear();
            self.unreplicated.clear();
        }
    }

    /// The group applied the first entry of a leadership. If it is this replica's, all
    /// its predecessors committed is applied here (the messages, their ids, the consumer
    /// records), so it takes up the consumers as last recorded and begins to take writes.
    fn leader_ready(&mut self, term: u64, node: u64) {
        let Some(r) = &self.replica else {
            return;
        };
        if node != r.raft.metrics().borrow().id || term <= self.ready_term {
            return;
        }
        self.consumers.clear();
        self.unreplicated.clear();
        crate::account::recover_consumers(self);
        self.ready_term = term;
        tracing::debug!(stream = %self.name, term, consumers = self.consumers.len(), "leading: consumers resumed");
    }

    /// Whether this replica takes writes and runs consumers: a stream with one home, or
    /// the leader of a replicated stream once it is ready in its current term.
    fn leads(&self) -> bool {
        let Some(r) = &self.replica else {
            return true;
        };
        self.ready_term != 0
            && r.is_leader()
            && r.raft.metrics().borrow().current_term == self.ready_term
    }

    /// Proposes `records` of the store's meta table to the stream's group (a replicated
    /// stream's consumers); true when committed or when there is no group.
    pub(crate) async fn replicate_meta(&self, records: Vec<(String, Option<Vec<u8>>)>) -> bool {
        records.is_empty()
            || self
                .replicate_op(crate::cluster::machine::Entry::Meta { records })
                .await
    }

    /// Proposes a change of the stream's store to its group (a purge, removals, consumer
    /// records); true when committed or when there is no group.
    pub(crate) async fn replicate_op(&self, entry: crate::cluster::machine::Entry) -> bool {
        let Some(r) = &self.replica else {
            return true;
        };
        match r.raft.client_write(entry).await {
            Ok(resp) => {
                self.own_ops.lock().insert(resp.log_id.index);
                true
            }
            Err(e) => {
                tracing::debug!(stream = %self.name, "replicating a store change: {e}");
                false
            }
        }
    }

    fn stepping_down(&self) -> bool {
        self.replica
            .as_ref()
            .is_some_and(|r| r.stepping_down.load(std::sync::atomic::Ordering::Acquire))
    }

    fn max_batch_bytes(&self) -> usize {
        if self.replica.is_some() {
            MAX_REPLICATED_BATCH_BYTES
        } else {
            MAX_BATCH_BYTES
        }
    }

    /// Whether this replica takes writes and runs consumers: a replicated stream's
    /// leader, or a stream with one home.
    pub(crate) fn is_leader(&self) -> bool {
        self.replica
            .as_ref()
            .is_none_or(crate::cluster::Replica::is_leader)
    }

    /// The subjects the stream captures: its configured subjects, or its name.
    pub fn subjects(config: &StreamConfig) -> Vec<String> {
        if config.subjects.is_empty() && config.mirror.is_none() && config.sources.is_empty() {
            vec![config.name.clone()]
        } else {
            config.subjects.clone()
        }
    }

    /// Subscribes the stream's subjects and its ack/flow-control/direct-get subjects.
    /// Returns the sids that carry acks and direct gets (the rest carry publishes).
    pub fn subscribe(&mut self) -> Result<SidRoles, ApiError> {
        let mut roles = SidRoles::default();
        for s in Self::subjects(&self.config) {
            let sid = self
                .conn
                .subscribe(&s, None)
                .map_err(|e| errors::stream_create(e.to_string()))?;
            self.subject_sids.push(sid);
        }
        let ack = self
            .conn
            .subscribe(&format!("$JS.ACK.{}.>", self.name), None)
            .map_err(|e| errors::stream_create(e.to_string()))?;
        roles.acks.push(ack);
        let fc = self
            .conn
            .subscribe(&format!("$JS.FC.{}.>", self.name), None)
            .map_err(|e| errors::stream_create(e.to_string()))?;
        roles.acks.push(fc);
        if let Some(r) = &self.replica {
            self.conn
                .subscribe(&crate::cluster::catchup::subject(&r.group), None)
                .map_err(|e| errors::stream_create(e.to_string()))?;
        }
        if self.config.allow_direct {
            for s in [
                format!("$JS.API.DIRECT.GET.{}", self.name),
                format!("$JS.API.DIRECT.GET.{}.>", self.name),
            ] {
                // In a queue group, so that mirrors with `mirror_direct` share them.
                let sid = self
                    .conn
                    .subscribe(&s, Some(crate::source::DIRECT_GET_GROUP))
                    .map_err(|e| errors::stream_create(e.to_string()))?;
                roles.direct.push(sid);
            }
        }
        Ok(roles)
    }

    fn unsubscribe_subjects(&mut self) {
        for sid in self.subject_sids.drain(..) {
            self.conn.unsubscribe(sid);
        }
    }

    /// Runs the actor until it is stopped.
    pub async fn run(mut self, mut rx: mpsc::UnboundedReceiver<Cmd>) {
        self.count_usage(self.store.state().bytes);
        self.refresh_expiry();
        self.sourcing
            .reconcile(&self.config, &self.store, self.conn.as_ref());
        loop {
            // Sleep until the next timer anyone here needs (an ack wait, a pull request's
            // expiry, a heartbeat, a message's TTL), at most a second: an idle stream
            // costs one wakeup a second, not one per consumer.
            let wake = self.next_wake();
            let cmd = tokio::select! {
                c = rx.recv() => c,
                () = tokio::time::sleep_until(wake) => {
                    self.on_tick().await;
                    continue;
                }
            };
            let Some(first) = cmd else { break };
            self.follow_leadership();
            let mut batch: Vec<Msg> = Vec::new();
            let mut batch_bytes = 0usize;
            let mut next = Some(first);
            let mut stop = None;
            while let Some(cmd) = next.take() {
                match cmd {
                    // Every replica subscribes to the stream's subjects; only the
                    // leader stores (followers get the messages through the group). A
                    // leader handing over says so, so that publishers retry at once.
                    // A leader not ready yet (applying its predecessors' entries) says
                    // so too.
                    Cmd::Publish(m) if !self.leads() => {
                        let busy = self.stepping_down() || self.is_leader();
                        if let (Some(reply), true) = (&m.reply, busy) {
                            self.pub_err(reply, &errors::cluster_not_avail());
                        }
                    }
                    Cmd::Publish(m) => {
                        batch_bytes += m.payload.len() + m.headers.len();
                        batch.push(m);
                        if batch.len() >= MAX_BATCH || batch_bytes >= self.max_batch_bytes() {
                            self.ingest(std::mem::take(&mut batch)).await;
                            batch_bytes = 0;
                        }
                    }
                    Cmd::Stop { delete, done } => {
                        stop = Some((delete, done));
                        break;
                    }
                    other => {
                        if !batch.is_empty() {
                            self.ingest(std::mem::take(&mut batch)).await;
                            batch_bytes = 0;
                        }
                        self.handle(other).await;
                    }
                }
                next = rx.try_recv().ok();
            }
            if !batch.is_empty() {
                self.ingest(batch).await;
            }
            let acked = std::mem::take(&mut self.acked_removals);
            self.remove_quietly(&acked);
            if self.leads() {
                self.deliver_all();
            }
            let sync = !self.ack_replies.is_empty()
                || self
                    .consumers_unsynced
                    .is_some_and(|since| since.elapsed() >= CONSUMER_SYNC_EVERY);
            // An AckSync whose state could not be saved gets no answer: the client
            // times out and acks again.
            let saved = self.persist_consumers(sync).await;
            for reply in std::mem::take(&mut self.ack_replies) {
                if saved {
                    self.conn.publish(&reply, None, &[], &[]);
                }
            }
            self.publish_shared();
            if let Some((delete, done)) = stop {
                self.shutdown(delete).await;
                let _ = done.send(());
                return;
            }
        }
        self.shutdown(false).await;
    }

    /// The error for storing `size` more bytes on top of `bytes` (the stream's bytes
    /// with what this batch already took), if that goes over an account or server limit.
    fn over_quota(&self, bytes: u64, size: u64) -> Option<ApiError> {
        let q = self.quota.as_ref()?;
        // What this stream stored that the usage does not count yet: since its last
        // published state, and earlier in this batch.
        let unpublished = i64::try_from(bytes).unwrap_or(i64::MAX) - self.counted;
        let adding = unpublished.saturating_add(i64::try_from(size).unwrap_or(i64::MAX));
        q.exceeded(self.config.storage, adding)
    }

    /// Brings the account's and server's usage to `bytes` for this stream.
    fn count_usage(&mut self, bytes: u64) {
        let bytes = i64::try_from(bytes).unwrap_or(i64::MAX);
        if let Some(q) = &self.quota {
            q.add(self.config.storage, bytes - self.counted);
        }
        self.counted = bytes;
    }

    async fn shutdown(&mut self, delete: bool) {
        self.count_usage(0);
        self.unsubscribe_subjects();
        self.sourcing.stop_all(self.conn.as_ref(), delete);
        self.persist_consumers(true).await;
        if delete {
            let store = self.store.clone();
            if let Err(e) = blocking(move || store.destroy()).await {
                tracing::error!(stream = %self.name, "removing the stream's store: {e}");
            }
        }
    }

    /// Keeps what other tasks read (`/jsz`, stream lists) current.
    fn publish_shared(&mut self) {
        let state = self.store.state();
        self.count_usage(state.bytes);
        let mut s = self.shared.write();
        s.state = state;
        s.consumers = self.public_consumers();
        s.config.clone_from(&self.config);
    }

    /// When [`Stream::on_tick`] must run next.
    fn next_wake(&self) -> tokio::time::Instant {
        let now = Instant::now();
        if self.more_to_deliver {
            return tokio::time::Instant::from_std(now);
        }
        let mut wake = now + Duration::from_secs(1);
        if let Some(since) = self.consumers_unsynced {
            wake = wake.min(since + CONSUMER_SYNC_EVERY);
        }
        if let Some(t) = self.next_expiry {
            let delay = u64::try_from(t - now_nanos()).unwrap_or(0);
            wake = wake.min(now + Duration::from_nanos(delay));
        }
        for c in self.consumers.values() {
            if let Some(w) = c.next_wake(now) {
                wake = wake.min(w);
            }
        }
        // Timers closer together than this are served together.
        tokio::time::Instant::from_std(wake.max(now + Duration::from_millis(5)))
    }

    async fn on_tick(&mut self) {
        self.follow_leadership();
        let now = now_nanos();
        if self.next_expiry.is_some_and(|t| t <= now) {
            self.place_delete_markers(now).await;
            let store = self.store.clone();
            match blocking(move || store.expire(now)).await {
                Ok((removed, next)) => {
                    self.next_expiry = next;
                    if !removed.is_empty() {
                        self.on_removed(&removed);
                    }
                }
                Err(e) => tracing::error!(stream = %self.name, "expiring messages: {e}"),
            }
        }
        self.trim_dedupe(now);
        let mut expired = Vec::new();
        let ctx = ctx!(self);
        for (name, c) in &mut self.consumers {
            if c.on_tick(&ctx, Instant::now()) {
                expired.push(name.clone());
            }
        }
        for name in expired {
            tracing::debug!(stream = %self.name, consumer = %name, "ephemeral consumer inactive, deleting");
            self.delete_consumer(&name).await;
        }
        if self.leads() {
            self.deliver_all();
        }
        let sync = self
            .consumers_unsynced
            .is_some_and(|since| since.elapsed() >= CONSUMER_SYNC_EVERY);
        self.persist_consumers(sync).await;
        self.publish_shared();
    }

    /// Subject delete markers (`subject_delete_marker_ttl`): where `max_age` is about to
    /// remove the last message of a subject, a marker takes its place (nats-server's
    /// `Nats-Marker-Reason: MaxAge` message with its own TTL and a subject rollup), so
    /// watchers see the key go.
    async fn place_delete_markers(&mut self, now: i64) {
        let ttl = self.config.subject_delete_marker_ttl;
        if ttl <= 0 || self.config.max_age <= 0 {
            return;
        }
        let cutoff = now - self.config.max_age;
        let mut markers = Vec::new();
        let mut seq = self.store.state().first_seq;
        while markers.len() < MAX_BATCH {
            let Ok(Some(m)) = self.store.load_next(seq, &[]) else {
                break;
            };
            if m.ts > cutoff {
                break;
            }
            seq = m.seq + 1;
            let never = headers::get(&m.hdr, headers::TTL)
                .and_then(parse_ttl)
                .is_some_and(|t| t < 0);
            let is_marker = headers::get(&m.hdr, headers::MARKER_REASON).is_some();
            let last_of_subject = self
                .store
                .subjects(&m.subject)
                .ok()
                .and_then(|s| s.get(&m.subject).copied())
                == Some(1);
            if !never && !is_marker && last_of_subject {
                let hdr = headers::Builder::new()
                    .add(headers::MARKER_REASON, "MaxAge")
                    .add(headers::TTL, crate::time::go_duration(ttl))
                    .add(headers::ROLLUP, "sub")
                    .build();
                markers.push(Msg {
                    subject: m.subject,
                    sid: 0,
                    reply: None,
                    headers: hdr.into(),
                    payload: bytes::Bytes::new(),
                });
            }
        }
        if !markers.is_empty() {
            self.ingest(markers).await;
        }
    }

    fn refresh_expiry(&mut self) {
        if self.config.max_age > 0 || self.config.allow_msg_ttl {
            // Ask the store on the next tick; it answers with the next deadline.
            self.next_expiry = Some(0);
        } else {
            self.next_expiry = None;
        }
    }

    fn trim_dedupe(&mut self, now: i64) {
        let window = self.config.duplicate_window;
        while let Some((ts, id)) = self.dedupe_order.front() {
            if now - *ts <= window {
                break;
            }
            if self.dedupe.get(id).is_some_and(|(_, t)| t == ts) {
                self.dedupe.remove(id);
            }
            self.dedupe_order.pop_front();
        }
    }

    /// Checks and stores a batch of publishes (see the module documentation).
    async fn ingest(&mut self, batch: Vec<Msg>) {
        let mut proposed: Vec<Proposed> = Vec::with_capacity(batch.len());
        let state = self.store.state();
        let mut last_seq = state.last_seq;
        let mut msgs = state.msgs;
        let mut bytes = state.bytes;
        let mut last_ts = state.last_ts;
        let mut batch_ids: HashMap<String, u64> = HashMap::new();
        let mut batch_subjects: HashMap<String, u64> = HashMap::new();
        let mut last_msg_id = self.last_msg_id.clone();
        for mut m in batch {
            if let Some(subject) = crate::source::input_subject(&self.config, &m.subject) {
                m.subject = subject;
            }
            match self.check(
                &m,
                last_seq,
                msgs,
                bytes,
                &last_msg_id,
                &batch_ids,
                &batch_subjects,
            ) {
                Check::Store {
                    msg_id,
                    rollup,
                    ttl,
                } => {
                    let size = (self.store.msg_size())(&m.subject, &m.headers, &m.payload);
                    // Checked last, as nats-server does: a duplicate or a failed
                    // expectation is answered as such even when the account is full.
                    if let Some(e) = self.over_quota(bytes, size) {
                        if let Some(reply) = &m.reply {
                            self.pub_err(reply, &e);
                        }
                        continue;
                    }
                    last_seq += 1;
                    msgs += 1;
                    bytes += size;
                    let ts = now_nanos().max(last_ts);
                    last_ts = ts;
                    // The last message id is the stored message's, empty when it had
                    // none (what `Nats-Expected-Last-Msg-Id` compares with).
                    last_msg_id = msg_id.clone().unwrap_or_default();
                    if let Some(id) = &msg_id {
                        batch_ids.insert(id.clone(), last_seq);
                    }
                    batch_subjects.insert(m.subject.clone(), last_seq);
                    proposed.push(Proposed {
                        msg: NewMsg {
                            subject: m.subject,
                            ts,
                            hdr: m.headers,
                            data: m.payload,
                            ttl,
                        },
                        reply: m.reply,
                        msg_id,
                        rollup,
                    });
                    if rollup.is_some() {
                        // A rollup purges what came before it: commit up to it first.
                        self.commit(std::mem::take(&mut proposed)).await;
                        let state = self.store.state();
                        last_seq = state.last_seq;
                        msgs = state.msgs;
                        bytes = state.bytes;
                        batch_subjects.clear();
                    }
                }
                Check::Duplicate(seq) => {
                    if let Some(reply) = &m.reply {
                        self.pub_ack(reply, seq, true);
                    }
                }
                Check::Reject(e) => {
                    if let Some(reply) = &m.reply {
                        self.pub_err(reply, &e);
                    }
                }
            }
        }
        if !proposed.is_empty() {
            self.commit(proposed).await;
        }
    }

    /// Appends `proposed` in one durable commit, then acknowledges; false if the commit
    /// failed (nothing was stored).
    pub(crate) async fn commit(&mut self, mut proposed: Vec<Proposed>) -> bool {
        let new: Vec<NewMsg> = proposed.iter().map(|p| p.msg.clone()).collect();
        if !self.replicate(&new).await {
            let err = errors::cluster_not_avail();
            for p in &proposed {
                if let Some(reply) = &p.reply {
                    self.pub_err(reply, &err);
                }
            }
            return false;
        }
        let store = self.store.clone();
        let acks = PubAcks {
            conn: self.conn.clone(),
            ack: PubAck {
                stream: self.name.clone(),
                domain: self.domain.clone().unwrap_or_default(),
                ..PubAck::default()
            },
            replies: proposed.iter_mut().map(|p| p.reply.take()).collect(),
        };
        // The acknowledgements go out from the store's thread the moment the messages
        // are durable, while it goes on indexing them: a publisher waits for the fsync,
        // not for the index or a hop back to this task. Where they went is kept outside
        // the task, so that even a task that panicked after them is not answered twice.
        let durable = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let told = durable.clone();
        let append = move || {
            let mut acks = acks;
            let result = store.append_then(&new, &mut |first| {
                acks.send(first);
                told.store(first, std::sync::atomic::Ordering::Release);
            });
            (result, acks.replies)
        };
        let (result, replies) = if self.store.blocks() {
            tokio::task::spawn_blocking(append)
                .await
                .unwrap_or_else(|e| {
                    (
                        Err(StoreError::Io(format!("store task failed: {e}"))),
                        Vec::new(),
                    )
                })
        } else {
            append()
        };
        let durable = Some(durable.load(std::sync::atomic::Ordering::Acquire)).filter(|&s| s > 0);
        let result = match (result, durable) {
            (Err(e), Some(first_seq)) => {
                // Acknowledged, so stored: the store replays them when it recovers.
                tracing::error!(stream = %self.name, "indexing {} stored messages failed: {e}", proposed.len());
                Ok(crate::store::Appended {
                    first_seq,
                    removed: Vec::new(),
                })
            }
            (result, _) => result,
        };
        match result {
            Ok(appended) => {
                {
                    let mut s = self.shared.write();
                    s.commits += 1;
                    s.committed_msgs += proposed.len() as u64;
                }
                for (seq, p) in (appended.first_seq..).zip(proposed.iter()) {
                    self.last_msg_id = p.msg_id.clone().unwrap_or_default();
                    if let Some(id) = &p.msg_id {
                        self.dedupe.insert(id.clone(), (seq, p.msg.ts));
                        self.dedupe_order.push_back((p.msg.ts, id.clone()));
                    }
                    if let Some(r) = p.rollup {
                        let purge = match r {
                            Rollup::Subject => Purge {
                                filter: Some(p.msg.subject.clone()),
                                seq: Some(seq),
                                keep: None,
                            },
                            Rollup::All => Purge {
                                filter: None,
                                seq: Some(seq),
                                keep: None,
                            },
                        };
                        let store = self.store.clone();
                        if let Err(e) = blocking(move || store.purge(&purge)).await {
                            tracing::error!(stream = %self.name, "rollup purge: {e}");
                        }
                        for c in self.consumers.values_mut() {
                            c.on_purged();
                        }
                    }
                    self.republish(&p.msg, seq);
                    for c in self.consumers.values_mut() {
                        c.on_stored(&p.msg.subject, seq);
                    }
                }
                if !appended.removed.is_empty() {
                    self.on_removed(&appended.removed);
                }
                if self.config.retention != RetentionPolicy::Limits {
                    self.drop_uninteresting(appended.first_seq, &proposed);
                }
                // New messages can expire (max_age, TTL): make sure a check is due.
                if (self.config.max_age > 0 && self.next_expiry.is_none())
                    || proposed.iter().any(|p| p.msg.ttl.is_some())
                {
                    self.next_expiry = Some(0);
                }
                true
            }
            Err(e) => {
                tracing::error!(stream = %self.name, "storing {} messages failed: {e}", proposed.len());
                let err = store_error(&e);
                for reply in replies.iter().flatten() {
                    self.pub_err(reply, &err);
                }
                false
            }
        }
    }

    /// A replicated stream's leader: commits the batch in the stream's group (a quorum
    /// has stored it durably) before storing it here. True for a stream with one home.
    async fn replicate(&mut self, new: &[NewMsg]) -> bool {
        let Some(r) = &self.replica else {
            return true;
        };
        let entry = crate::cluster::machine::Entry::Msgs {
            first_seq: self.store.state().last_seq + 1,
            msgs: new
                .iter()
                .map(crate::cluster::machine::WireMsg::from)
                .collect(),
        };
        match r.raft.client_write(entry).await {
            Ok(resp) => match resp.data {
                crate::cluster::machine::Outcome::Done => true,
                crate::cluster::machine::Outcome::Refused(why) => {
                    tracing::debug!(stream = %self.name, "replicated write refused: {why}");
                    false
                }
            },
            Err(e) => {
                tracing::debug!(stream = %self.name, "replicated write failed: {e}");
                false
            }
        }
    }

    /// Applies to this replica's store a change its group committed (proposed by another
    /// replica, or by this one before a restart).
    async fn apply_replicated(&mut self, op: crate::cluster::machine::StoreOp) {
        use crate::cluster::machine::StoreOp;
        let store = self.store.clone();
        match op {
            StoreOp::Purge(p) => match blocking(move || store.purge(&p)).await {
                Ok(_) => self.after_purge(),
                Err(e) => tracing::error!(stream = %self.name, "replica: purge: {e}"),
            },
            StoreOp::Remove { seqs, erase } => {
                let gone = blocking(move || {
                    let mut gone = Vec::new();
                    for seq in seqs {
                        if store.remove(seq, erase)? {
                            gone.push(seq);
                        }
                    }
                    Ok(gone)
                })
                .await;
                match gone {
                    Ok(gone) if !gone.is_empty() => self.removed(&gone),
                    Ok(_) => {}
                    Err(e) => {
                        tracing::error!(stream = %self.name, "replica: removing messages: {e}")
                    }
                }
            }
            StoreOp::Meta(records) => {
                if let Err(e) = blocking(move || store.put_meta(&records)).await {
                    tracing::error!(stream = %self.name, "replica: storing consumer records: {e}");
                }
            }
        }
    }

    /// Copies from the leader's store what this replica lacks up to `upto` (after a
    /// snapshot: `cluster::catchup`). Gives up after a few unanswered requests; the next
    /// entry that finds a gap tries again.
    async fn catch_up(&mut self, upto: u64) {
        use crate::cluster::catchup;
        let Some(r) = self.replica.clone() else {
            return;
        };
        let started = std::time::Instant::now();
        let mut copied = 0u64;
        let mut failures = 0;
        loop {
            let state = self.store.state();
            if state.last_seq >= upto {
                break;
            }
            let req = catchup::Request {
                from: state.last_seq + 1,
                upto,
            };
            let Some(body) = catchup::encode(&req) else {
                return;
            };
            let answer = crate::cluster::meta::request_raw(
                r.bus.as_ref(),
                &r.account,
                &catchup::subject(&r.group),
                &body,
                Duration::from_secs(5),
            )
            .await;
            let Some(batch) = answer
                .as_deref()
                .and_then(catchup::decode::<catchup::Batch>)
            else {
                failures += 1;
                if failures >= 5 {
                    tracing::warn!(stream = %self.name, from = req.from, upto, "catch-up: no answer from the leader");
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
                continue;
            };
            failures = 0;
            copied += batch.msgs.len() as u64;
            let done = batch.done || batch.msgs.is_empty();
            if let Err(e) = self.store_batch(batch).await {
                tracing::error!(stream = %self.name, "catch-up: storing: {e}");
                return;
            }
            if done {
                break;
            }
        }
        if copied > 0 {
            tracing::info!(stream = %self.name, messages = copied, upto, elapsed = ?started.elapsed(), "caught up from the leader");
        }
    }

    /// Stores one catch-up batch: the leader's purges first (what it no longer has
    /// before its first sequence), then its messages at their sequences.
    async fn store_batch(
        &mut self,
        batch: crate::cluster::catchup::Batch,
    ) -> Result<(), StoreError> {
        let store = self.store.clone();
        let records = batch.records;
        let leader_first = batch.first_seq;
        let msgs = batch.msgs;
        let removed = blocking(move || {
            let mut removed = Vec::new();
            let state = store.state();
            if state.msgs > 0 && state.first_seq < leader_first {
                store.purge(&Purge {
                    filter: None,
                    seq: Some(leader_first),
                    keep: None,
                })?;
                removed.push(());
            }
            let mut run: Vec<NewMsg> = Vec::new();
            let mut next = store.state().last_seq + 1;
            for (seq, m) in msgs {
                if seq < next {
                    continue;
                }
                if seq > next {
                    if !run.is_empty() {
                        store.append_then(&std::mem::take(&mut run), &mut |_| {})?;
                    }
                    store.skip_to(seq)?;
                }
                let mut m = NewMsg::from(m);
                m.ttl = headers::get(&m.hdr, headers::TTL).and_then(parse_ttl);
                run.push(m);
                next = seq + 1;
            }
            if !run.is_empty() {
                store.append_then(&run, &mut |_| {})?;
            }
            if !records.is_empty() {
                let records: Vec<(String, Option<Vec<u8>>)> =
                    records.into_iter().map(|(k, v)| (k, Some(v))).collect();
                store.put_meta(&records)?;
            }
            Ok(!removed.is_empty())
        })
        .await?;
        if removed {
            self.after_purge();
        }
        self.next_expiry = Some(0);
        Ok(())
    }

    /// The leader's side of a catch-up: messages from the request's `from` on.
    async fn serve_catch_up(&self, m: &Msg) {
        use crate::cluster::catchup;
        let (Some(reply), Some(req)) = (
            m.reply.as_deref(),
            catchup::decode::<catchup::Request>(&m.payload),
        ) else {
            return;
        };
        let store = self.store.clone();
        let loaded = blocking(move || {
            let batch =
                store.load_batch(req.from, &[], catchup::BATCH_MSGS, catchup::BATCH_BYTES)?;
            let msgs: Vec<(u64, crate::cluster::machine::WireMsg)> = batch
                .into_iter()
                .filter(|m| m.seq <= req.upto)
                .map(|m| {
                    (
                        m.seq,
                        crate::cluster::machine::WireMsg {
                            subject: m.subject,
                            ts: m.ts,
                            hdr: m.hdr.to_vec(),
                            data: m.data.to_vec(),
                            ttl: None,
                        },
                    )
                })
                .collect();
            let state = store.state();
            let done = msgs
                .last()
                .is_none_or(|(seq, _)| *seq >= req.upto.min(state.last_seq))
                || msgs.is_empty();
            let records = if done {
                store.meta("consumer/")?
            } else {
                Vec::new()
            };
            Ok(catchup::Batch {
                first_seq: state.first_seq,
                last_seq: state.last_seq,
                msgs,
                done,
                records,
            })
        })
        .await;
        match loaded {
            Ok(batch) => {
                if let Some(b) = catchup::encode(&batch) {
                    self.conn.publish(reply, None, &[], &b);
                }
            }
            Err(e) => tracing::error!(stream = %self.name, "catch-up: reading: {e}"),
        }
    }

    /// `cluster` of the stream's info: the leader, and for a replicated stream its group
    /// and how current each other replica is (as the leader's replication sees it).
    pub(crate) fn cluster_info(&self) -> crate::api::types::ClusterInfo {
        let mut info = crate::api::types::ClusterInfo {
            name: self.cluster_name.clone(),
            leader: self.server_name.clone(),
            ..crate::api::types::ClusterInfo::default()
        };
        let Some(r) = &self.replica else {
            return info;
        };
        let m = r.raft.metrics().borrow().clone();
        info.raft_group.clone_from(&r.group);
        let membership = m.membership_config.membership();
        let name_of = |id: u64| membership.get_node(&id).map(|n| n.addr.clone());
        info.leader = m.current_leader.and_then(name_of).unwrap_or_default();
        let last = m.last_log_index.unwrap_or(0);
        for id in membership.voter_ids() {
            if Some(id) == m.current_leader {
                continue;
            }
            let matched = crate::cluster::matched(&m, id).unwrap_or(0);
            info.replicas.push(crate::api::types::PeerInfo {
                name: name_of(id).unwrap_or_default(),
                current: matched >= last,
                lag: last.saturating_sub(matched),
                peer: format!("{id:016x}"),
                ..crate::api::types::PeerInfo::default()
            });
        }
        info
    }

    /// Stores what the stream's group applied, past what this replica has (its own
    /// writes as leader, or a replay of the log after a restart, are already here).
    async fn store_replicated(
        &mut self,
        first_seq: u64,
        msgs: Vec<crate::cluster::machine::WireMsg>,
    ) {
        let state = self.store.state();
        let have = state.last_seq;
        let Some(last) = (first_seq + msgs.len() as u64).checked_sub(1) else {
            return;
        };
        if last <= have {
            return;
        }
        if first_seq > have + 1 && state.msgs > 0 {
            // Entries before this one were compacted into a snapshot this replica never
            // stored: copy them from the leader first.
            self.catch_up(first_seq - 1).await;
            if self.store.state().last_seq + 1 < first_seq {
                // Still short (no leader answered): the next entry tries again, and the
                // catch-up then copies this one's messages too.
                return;
            }
        }
        let state = self.store.state();
        let have = state.last_seq;
        let fresh = state.msgs == 0 && have + 1 < first_seq;
        if fresh {
            let store = self.store.clone();
            if let Err(e) = blocking(move || store.skip_to(first_seq)).await {
                tracing::error!(stream = %self.name, "replica: moving to sequence {first_seq}: {e}");
                return;
            }
        } else if first_seq > have + 1 {
            tracing::error!(stream = %self.name, "replica: entry from {first_seq} after {have}: a gap");
            return;
        }
        let skip = usize::try_from((have + 1).saturating_sub(first_seq)).unwrap_or(usize::MAX);
        let new: Vec<NewMsg> = msgs.into_iter().skip(skip).map(NewMsg::from).collect();
        if new.is_empty() {
            return;
        }
        let store = self.store.clone();
        let batch = new.clone();
        let result = blocking(move || store.append_then(&batch, &mut |_| {})).await;
        match result {
            Ok(appended) => {
                {
                    let mut s = self.shared.write();
                    s.commits += 1;
                    s.committed_msgs += new.len() as u64;
                }
                for (seq, m) in (appended.first_seq..).zip(new.iter()) {
                    let id = headers::get(&m.hdr, headers::MSG_ID).map(str::to_owned);
                    self.last_msg_id = id.clone().unwrap_or_default();
                    if let Some(id) = id {
                        self.dedupe.insert(id.clone(), (seq, m.ts));
                        self.dedupe_order.push_back((m.ts, id));
                    }
                }
                if !appended.removed.is_empty() {
                    self.on_removed(&appended.removed);
                }
                // A rollup ends its batch; the leader purged what it rolls up, and so
                // does every replica.
                if let Some((seq, m)) = (appended.first_seq..).zip(new.iter()).last() {
                    let purge = match headers::get(&m.hdr, headers::ROLLUP) {
                        Some("sub") => Some(Purge {
                            filter: Some(m.subject.clone()),
                            seq: Some(seq),
                            keep: None,
                        }),
                        Some("all") => Some(Purge {
                            filter: None,
                            seq: Some(seq),
                            keep: None,
                        }),
                        _ => None,
                    };
                    if let Some(purge) = purge {
                        let store = self.store.clone();
                        if let Err(e) = blocking(move || store.purge(&purge)).await {
                            tracing::error!(stream = %self.name, "replica: rollup purge: {e}");
                        }
                    }
                }
                if (self.config.max_age > 0 && self.next_expiry.is_none())
                    || new.iter().any(|m| m.ttl.is_some())
                {
                    self.next_expiry = Some(0);
                }
            }
            Err(e) => {
                tracing::error!(stream = %self.name, "replica: storing {} messages: {e}", new.len());
            }
        }
    }

    /// Interest and work-queue streams keep a message only while a consumer wants it.
    fn drop_uninteresting(&mut self, first_seq: u64, proposed: &[Proposed]) {
        let mut gone = Vec::new();
        for (i, p) in proposed.iter().enumerate() {
            let seq = first_seq + i as u64;
            if !self
                .consumers
                .values()
                .any(|c| c.wants_subject(&p.msg.subject))
            {
                gone.push(seq);
            }
        }
        self.remove_quietly(&gone);
    }

    fn remove_quietly(&mut self, seqs: &[u64]) {
        if seqs.is_empty() {
            return;
        }
        if self.replica.is_some() {
            self.unreplicated_removals.extend_from_slice(seqs);
        }
        // One write for the lot (one sync), not one per message.
        if let Err(e) = self.store.remove_many(seqs) {
            tracing::error!(stream = %self.name, "removing {} messages: {e}", seqs.len());
        }
        self.on_removed(seqs);
    }

    /// Tells the consumers which messages the store no longer has.
    fn on_removed(&mut self, seqs: &[u64]) {
        for c in self.consumers.values_mut() {
            c.on_removed(seqs);
        }
    }

    fn republish(&self, msg: &NewMsg, seq: u64) {
        let Some(rp) = &self.config.republish else {
            return;
        };
        let src = if rp.src.is_empty() {
            ">"
        } else {
            rp.src.as_str()
        };
        if !crate::subject::matches(src, &msg.subject) {
            return;
        }
        let Some(dest) = crate::transform::apply(src, &rp.dest, &msg.subject) else {
            return;
        };
        let last = self
            .store
            .load_last(&msg.subject, Some(seq.saturating_sub(1)))
            .ok()
            .flatten()
            .map_or(0, |m| m.seq);
        let hdr = headers::Builder::from_block(&msg.hdr)
            .add(headers::STREAM, &self.name)
            .add(headers::SUBJECT, &msg.subject)
            .add(headers::SEQUENCE, seq)
            .add(headers::LAST_SEQUENCE, last)
            .add(headers::TIME_STAMP, crate::time::rfc3339(msg.ts));
        if rp.headers_only {
            let hdr = hdr.add(headers::MSG_SIZE, msg.data.len()).build();
            self.conn.publish(&dest, None, &hdr, &[]);
        } else {
            self.conn.publish(&dest, None, &hdr.build(), &msg.data);
        }
    }

    fn pub_ack(&self, reply: &str, seq: u64, duplicate: bool) {
        let ack = PubAck {
            stream: self.name.clone(),
            seq,
            domain: self.domain.clone().unwrap_or_default(),
            duplicate,
            ..PubAck::default()
        };
        self.conn.publish(reply, None, &[], &ack.to_json());
    }

    fn pub_err(&self, reply: &str, e: &ApiError) {
        let body = crate::api::types::PubAckResponse::error(self.name.clone(), e.clone());
        self.conn.publish(reply, None, &[], &body.to_json());
    }

    /// nats-server's checks of one publish, in its order.
    #[allow(clippy::too_many_arguments)]
    fn check(
        &self,
        m: &Msg,
        last_seq: u64,
        msgs: u64,
        bytes: u64,
        last_msg_id: &str,
        batch_ids: &HashMap<String, u64>,
        batch_subjects: &HashMap<String, u64>,
    ) -> Check {
        let cfg = &self.config;
        if cfg.sealed {
            return Check::Reject(errors::stream_sealed());
        }
        let hdr: &[u8] = &m.headers;
        let get = |k: &str| {
            if hdr.is_empty() {
                None
            } else {
                headers::get(hdr, k)
            }
        };
        if let Some(s) = get(headers::EXPECTED_STREAM)
            && s != self.name
        {
            return Check::Reject(errors::stream_not_match());
        }
        let ttl = match get(headers::TTL) {
            None => None,
            Some(v) => match parse_ttl(v) {
                Some(t) if !cfg.allow_msg_ttl && t != 0 => {
                    return Check::Reject(errors::message_ttl_disabled());
                }
                Some(t) => Some(t),
                None => {
                    if !cfg.allow_msg_ttl {
                        return Check::Reject(errors::message_ttl_disabled());
                    }
                    return Check::Reject(errors::message_ttl_invalid());
                }
            },
        };
        if let Some(v) = get(headers::EXPECTED_LAST_SUBJ_SEQ) {
            let Ok(want) = v.parse::<u64>() else {
                return Check::Reject(errors::stream_wrong_last_sequence(0));
            };
            let subj = get(headers::EXPECTED_LAST_SUBJ_SEQ_SUBJ).unwrap_or(&m.subject);
            let have = match batch_subjects.get(subj) {
                Some(s) => *s,
                None => self
                    .store
                    .load_last(subj, None)
                    .ok()
                    .flatten()
                    .map_or(0, |x| x.seq),
            };
            if have != want {
                return Check::Reject(errors::stream_wrong_last_sequence(have));
            }
        } else if get(headers::EXPECTED_LAST_SUBJ_SEQ_SUBJ).is_some() {
            return Check::Reject(errors::stream_expected_last_seq_per_subject_invalid());
        }
        if let Some(v) = get(headers::EXPECTED_LAST_SEQ) {
            match v.parse::<u64>() {
                Ok(want) if want == last_seq => {}
                _ => return Check::Reject(errors::stream_wrong_last_sequence(last_seq)),
            }
        }
        let msg_id = get(headers::MSG_ID).map(str::to_owned);
        if let Some(id) = &msg_id {
            if let Some(seq) = batch_ids.get(id) {
                return Check::Duplicate(*seq);
            }
            if let Some((seq, ts)) = self.dedupe.get(id)
                && now_nanos() - ts <= cfg.duplicate_window
            {
                return Check::Duplicate(*seq);
            }
        }
        if let Some(want) = get(headers::EXPECTED_LAST_MSG_ID)
            && want != last_msg_id
        {
            return Check::Reject(errors::stream_wrong_last_msg_id(last_msg_id));
        }
        let rollup = match get(headers::ROLLUP) {
            None => None,
            Some(v) => {
                if !cfg.allow_rollup_hdrs || cfg.deny_purge {
                    return Check::Reject(errors::stream_rollup_failed("rollup not permitted"));
                }
                match v {
                    "sub" => Some(Rollup::Subject),
                    "all" => Some(Rollup::All),
                    other => {
                        return Check::Reject(errors::stream_rollup_failed(format!(
                            "rollup value invalid: {other:?}"
                        )));
                    }
                }
            }
        };
        let max_size = i64::from(cfg.max_msg_size);
        let len = (m.headers.len() + m.payload.len()) as i64;
        if max_size >= 0 && len > max_size {
            return Check::Reject(errors::stream_message_exceeds_maximum());
        }
        if m.headers.len() > usize::from(u16::MAX) {
            return Check::Reject(errors::stream_header_exceeds_maximum());
        }
        if cfg.discard == DiscardPolicy::New {
            let size = (self.store.msg_size())(&m.subject, &m.headers, &m.payload);
            if cfg.max_msgs > 0 && msgs >= cfg.max_msgs.unsigned_abs() {
                return Check::Reject(errors::stream_store_failed("maximum messages exceeded"));
            }
            if cfg.max_bytes > 0 && bytes + size > cfg.max_bytes.unsigned_abs() {
                return Check::Reject(errors::stream_store_failed("maximum bytes exceeded"));
            }
            if cfg.discard_new_per_subject && cfg.max_msgs_per_subject > 0 {
                let have = self
                    .store
                    .subjects(&m.subject)
                    .ok()
                    .and_then(|s| s.get(&m.subject).copied())
                    .unwrap_or(0)
                    + u64::from(batch_subjects.contains_key(&m.subject));
                if have >= cfg.max_msgs_per_subject.unsigned_abs() {
                    return Check::Reject(errors::stream_store_failed(
                        "maximum messages per subject exceeded",
                    ));
                }
            }
        }
        Check::Store {
            msg_id,
            rollup,
            ttl,
        }
    }

    async fn handle(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::Replicated { first_seq, msgs } => self.store_replicated(first_seq, msgs).await,
            Cmd::CatchUp { upto } => self.catch_up(upto).await,
            Cmd::ServeCatchUp(m) => {
                if self.is_leader() {
                    self.serve_catch_up(&m).await;
                }
            }
            Cmd::LeaderReady { term, node } => self.leader_ready(term, node),
            Cmd::ReplicatedOp { index, op } => {
                if !self.own_ops.lock().remove(&index) {
                    self.apply_replicated(op).await;
                }
            }
            // A follower's consumers wait until it leads. Direct gets are answered by
            // any replica (they are shared in a queue group), as in nats-server.
            Cmd::Ack(_) | Cmd::Next { .. } if !self.leads() => {}
            Cmd::Ack(m) => self.on_ack(m).await,
            Cmd::DirectGet(m) => self.direct_get(&m),
            Cmd::Next { consumer, msg } => {
                let ctx = ctx!(self);
                if let Some(c) = self.consumers.get_mut(&consumer) {
                    c.on_next(&ctx, &msg);
                } else if let Some(reply) = &msg.reply {
                    let hdr = headers::Builder::status(404, "Consumer Not Found").build();
                    self.conn.publish(reply, None, &hdr, &[]);
                }
            }
            Cmd::Call(call, reply) => {
                let out = self.call(call).await;
                let _ = reply.send(out);
            }
            Cmd::Sourced(inbound) => crate::source::store(self, inbound).await,
            Cmd::Publish(_) | Cmd::Stop { .. } => {}
        }
    }

    async fn on_ack(&mut self, m: Msg) {
        if m.subject.starts_with("$JS.FC.") {
            for c in self.consumers.values_mut() {
                c.on_flow_control_reply(&m.subject);
            }
            return;
        }
        let Some(ack) = crate::ack::AckReply::parse(&m.subject) else {
            return;
        };
        let ctx = ctx!(self);
        let Some(c) = self.consumers.get_mut(ack.consumer) else {
            return;
        };
        let acked = c.on_ack(&ctx, &ack, &m);
        if self.config.retention != RetentionPolicy::Limits && !acked.is_empty() {
            let removable: Vec<u64> = acked
                .into_iter()
                .filter(|&seq| {
                    // Only interest and work-queue streams need the subject: which
                    // consumers still want this message.
                    let Ok(Some(msg)) = self.store.load(seq) else {
                        return false;
                    };
                    self.consumers
                        .values()
                        .all(|c| !c.wants_subject(&msg.subject) || c.has_acked(seq))
                })
                .collect();
            // Removed at the end of the round, together with the round's other acks.
            self.acked_removals.extend(removable);
        }
        if let Some(reply) = m.reply {
            // Answered at the end of the round, once the consumers' state is durable.
            self.ack_replies.push(reply);
        }
    }

    fn deliver_all(&mut self) {
        let ctx = ctx!(self);
        let mut more = false;
        for c in self.consumers.values_mut() {
            more |= c.deliver(&ctx);
        }
        self.more_to_deliver = more;
    }

    /// Writes the consumers' changed state; `sync` makes it (and any unsynced state
    /// before it) durable. Unsynced state costs a redb commit without an fsync, and a
    /// crash takes a consumer back at most [`CONSUMER_SYNC_EVERY`] (or to its last
    /// answered `AckSync`): it redelivers, it never skips.
    pub(crate) async fn persist_consumers(&mut self, sync: bool) -> bool {
        if !self.unreplicated_removals.is_empty() {
            let seqs = std::mem::take(&mut self.unreplicated_removals);
            let entry = crate::cluster::machine::Entry::Remove { seqs, erase: false };
            if !self.replicate_op(entry).await {
                tracing::warn!(stream = %self.name, "removals not replicated; replicas keep those messages");
            }
        }
        // A reopened store is back at its last durable state: unsynced records since may
        // be gone, so every consumer writes its state again.
        let reopens = self.store.reopens();
        if reopens != self.store_reopens {
            self.store_reopens = reopens;
            for c in self.consumers.values_mut() {
                c.mark_dirty();
            }
        }
        let mut records = Vec::new();
        for (name, c) in &mut self.consumers {
            // Direct consumers (a mirror's or source's) live in memory only, as in
            // nats-server: their owner recreates them.
            if let Some(state) = c.take_dirty_state()
                && !c.config.direct
            {
                if self.replica.is_some() {
                    self.unreplicated
                        .insert(format!("consumer/{name}/state"), state.clone());
                }
                records.push((format!("consumer/{name}/state"), Some(state)));
            }
        }
        if sync && !self.unreplicated.is_empty() {
            let pending: Vec<(String, Option<Vec<u8>>)> = std::mem::take(&mut self.unreplicated)
                .into_iter()
                .map(|(k, v)| (k, Some(v)))
                .collect();
            if !self.replicate_meta(pending).await {
                // Not replicated: an AckSync is not answered; the state goes again.
                for c in self.consumers.values_mut() {
                    c.mark_dirty();
                }
                return false;
            }
        }
        if records.is_empty() && !(sync && self.consumers_unsynced.is_some()) {
            return true;
        }
        let store = self.store.clone();
        let saved = if sync {
            blocking(move || store.put_meta(&records)).await
        } else {
            blocking(move || store.put_meta_unsynced(&records)).await
        };
        match saved {
            Ok(()) if sync => self.consumers_unsynced = None,
            Ok(()) => {
                self.consumers_unsynced.get_or_insert_with(Instant::now);
            }
            Err(e) => {
                tracing::error!(stream = %self.name, "saving consumer state: {e}");
                for c in self.consumers.values_mut() {
                    c.mark_dirty();
                }
                return false;
            }
        }
        true
    }

    fn direct_get(&self, m: &Msg) {
        if let Some(reply) = m.reply.as_deref() {
            // A `mirror_direct` mirror also answers its origin's direct gets: served as
            // its own.
            let subject = match &self.config.mirror {
                Some(o) => crate::source::mirror_direct_subject(&m.subject, &o.name, &self.name),
                None => None,
            };
            crate::direct::serve(
                self.store.as_ref(),
                &self.name,
                subject.as_deref().unwrap_or(&m.subject),
                &m.payload,
                reply,
                self.conn.as_ref(),
                self.max_pending,
            );
        }
    }

    pub async fn delete_consumer(&mut self, name: &str) -> bool {
        let Some(mut c) = self.consumers.remove(name) else {
            return false;
        };
        c.on_deleted(self.conn.as_ref());
        let records = vec![
            (format!("consumer/{name}/config"), None),
            (format!("consumer/{name}/state"), None),
        ];
        self.unreplicated.remove(&format!("consumer/{name}/state"));
        if !c.config.direct && !self.replicate_meta(records.clone()).await {
            tracing::warn!(stream = %self.name, consumer = %name, "consumer deletion not replicated");
        }
        let store = self.store.clone();
        if let Err(e) = blocking(move || store.put_meta(&records)).await {
            tracing::error!(stream = %self.name, consumer = %name, "removing consumer records: {e}");
        }
        if self.config.retention != RetentionPolicy::Limits {
            // Messages only that consumer held are no longer wanted by anyone.
            self.sweep_interest();
        }
        true
    }

    /// Removes messages no remaining consumer wants (interest/work-queue retention).
    fn sweep_interest(&mut self) {
        let mut gone = Vec::new();
        let mut seq = self.store.state().first_seq;
        while let Ok(Some(m)) = self.store.load_next(seq, &[]) {
            seq = m.seq + 1;
            if self
                .consumers
                .values()
                .all(|c| !c.wants_subject(&m.subject) || c.has_acked(m.seq))
            {
                gone.push(m.seq);
            }
            if gone.len() > 100_000 {
                break;
            }
        }
        self.remove_quietly(&gone);
    }

    async fn call(&mut self, call: Call) -> Result<serde_json::Value, ApiError> {
        crate::stream_api::call(self, call).await
    }

    // Accessors used by stream_api.
    pub(crate) fn set_limits_from_config(&self) -> Limits {
        limits_of(&self.config)
    }

    pub(crate) fn resubscribe(&mut self) -> Result<(), ApiError> {
        self.unsubscribe_subjects();
        for s in Self::subjects(&self.config) {
            let sid = self
                .conn
                .subscribe(&s, None)
                .map_err(|e| errors::stream_update(e.to_string()))?;
            self.subject_sids.push(sid);
        }
        Ok(())
    }

    pub(crate) fn after_purge(&mut self) {
        for c in self.consumers.values_mut() {
            c.on_purged();
        }
    }

    pub(crate) fn removed(&mut self, seqs: &[u64]) {
        self.on_removed(seqs);
    }

    pub(crate) fn info_state(&self, deleted: bool, subjects: Option<&str>) -> StreamState {
        crate::stream_api::state_of(
            self.store.as_ref(),
            deleted,
            subjects,
            self.public_consumers(),
        )
    }

    pub(crate) fn config_changed(&mut self) {
        self.refresh_expiry();
        self.sourcing
            .reconcile(&self.config, &self.store, self.conn.as_ref());
    }

    /// Consumers other than mirrors' and sources' (which nats-server does not count).
    pub(crate) fn public_consumers(&self) -> usize {
        self.consumers.values().filter(|c| !c.config.direct).count()
    }

    /// The sequence a `Nats-Msg-Id` was stored at, if within the duplicate window.
    pub(crate) fn duplicate_of(&self, id: &str) -> Option<u64> {
        self.dedupe
            .get(id)
            .filter(|(_, ts)| now_nanos() - ts <= self.config.duplicate_window)
            .map(|(seq, _)| *seq)
    }
}

/// Which subscriptions of a stream's connection carry what (the rest are its subjects).
#[derive(Debug, Default, Clone)]
pub struct SidRoles {
    pub acks: Vec<u64>,
    pub direct: Vec<u64>,
}

enum Check {
    Store {
        msg_id: Option<String>,
        rollup: Option<Rollup>,
        ttl: Option<i64>,
    },
    Duplicate(u64),
    Reject(ApiError),
}

/// `Nats-TTL`: a Go duration, a number of seconds, or `never` (-1). `None` if invalid.
pub(crate) fn parse_ttl(v: &str) -> Option<i64> {
    let v = v.trim();
    if v.eq_ignore_ascii_case("never") {
        return Some(-1);
    }
    if let Ok(secs) = v.parse::<i64>() {
        return (secs >= -1).then(|| {
            if secs <= 0 {
                secs
            } else {
                secs * 1_000_000_000
            }
        });
    }
    let d = crate::duration::parse(v)?;
    if d < Duration::from_secs(1) {
        return None;
    }
    i64::try_from(d.as_nanos()).ok()
}

/// The store's limits for a stream config.
pub(crate) fn limits_of(c: &StreamConfig) -> Limits {
    // Discard-new streams refuse instead of dropping old messages; the store must not
    // drop them either.
    let new = c.discard == DiscardPolicy::New;
    Limits {
        max_msgs: if new { -1 } else { c.max_msgs },
        max_bytes: if new { -1 } else { c.max_bytes },
        max_age: c.max_age,
        max_msgs_per_subject: if new && c.discard_new_per_subject {
            -1
        } else {
            c.max_msgs_per_subject
        },
    }
}

/// The API error for a failed store call.
pub(crate) fn store_error(e: &StoreError) -> ApiError {
    match e {
        StoreError::NoSpace => errors::storage_resources_exceeded(),
        other => errors::stream_store_failed(other.to_string()),
    }
}

/// The acknowledgements of one commit, sent from wherever the store learns the messages
/// are durable.
struct PubAcks {
    conn: Arc<dyn Conn>,
    /// The stream's ack, its sequence set for each message.
    ack: PubAck,
    /// Each message's reply subject, in append order.
    replies: Vec<Option<String>>,
}

impl PubAcks {
    fn send(&mut self, first_seq: u64) {
        for (seq, reply) in (first_seq..).zip(&self.replies) {
            if let Some(reply) = reply {
                self.ack.seq = seq;
                self.conn.publish(reply, None, &[], &self.ack.to_json());
            }
        }
    }
}

/// How long consumer state may stay unsynced (a crash redelivers at most this much).
const CONSUMER_SYNC_EVERY: Duration = Duration::from_secs(1);

/// Runs blocking store work off the async threads.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> Result<T, StoreError> + Send + 'static,
) -> Result<T, StoreError> {
    tokio::task::spawn_blocking(f)
        .await
        .unwrap_or_else(|e| Err(StoreError::Io(format!("store task failed: {e}"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_values() {
        assert_eq!(parse_ttl("never"), Some(-1));
        assert_eq!(parse_ttl("5"), Some(5_000_000_000));
        assert_eq!(parse_ttl("2s"), Some(2_000_000_000));
        assert_eq!(parse_ttl("100ms"), None);
        assert_eq!(parse_ttl("x"), None);
    }
}
