//! A consumer: a view on its stream that delivers messages in order and tracks what has
//! been delivered and acknowledged. Consumers live inside their stream's actor (the
//! stream owns them, so a delivery never races a purge or an append).
//!
//! Push consumers send to `deliver_subject` while someone listens there; pull consumers
//! send to the reply subject of each waiting `$JS.API.CONSUMER.MSG.NEXT` request. Both
//! put the `$JS.ACK.` subject on every message (clients read the sequences from it, even
//! with `ack_policy: none`), redeliver what is not acknowledged within `ack_wait` (or the
//! `backoff` step), up to `max_deliver` times, and keep `max_ack_pending` in flight.
//!
//! State kept across restarts (a record in the stream's store): delivered and ack-floor
//! sequences, pending messages with their delivery counts. It is written after each
//! round of changes and made durable at least once a second; an ack that asked for a
//! reply is answered only once its round's write is durable (`Stream::persist_consumers`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::ack::{AckKind, AckMetric, AckReply};
use crate::api::types::{
    AckPolicy, ConsumerConfig, DeliverPolicy, PriorityGroupState, PriorityPolicy, ReplayPolicy,
    StreamConfig,
};
use crate::bus::{Conn, Msg};
use crate::headers;
use crate::pacing::{RateLimit, Replay};
use crate::priority::{self, Admit, AdvisoryCtx, Pin, RequestGroup};
use crate::store::{Store, StoredMsg};
use crate::time::now_nanos;

/// Bytes a push consumer with flow control sends between two flow-control requests.
const FC_EVERY_BYTES: u64 = 256 * 1024;
/// Bytes a push consumer may send past an unanswered flow-control request.
const FC_STALL_BYTES: u64 = 2 * 1024 * 1024;
/// Most messages one delivery round sends for one consumer, so one busy consumer
/// cannot starve the stream's other work.
const MAX_ROUND: usize = 10_000;
/// Most new messages read from the store at once for a delivery round, and the bytes
/// after which the read stops: a round's reads cost one store transaction per batch
/// rather than one per message, and hold at most this much in memory.
const READ_AHEAD_MSGS: usize = 512;
const READ_AHEAD_BYTES: usize = 1 << 20;

/// What a consumer reads of its stream.
pub struct ConsumerCtx<'a> {
    pub stream: &'a str,
    pub config: &'a StreamConfig,
    pub store: &'a dyn Store,
    pub conn: &'a dyn Conn,
}

/// Where a consumer lives, for what it publishes about itself (pin advisories name the
/// account and domain, ack metrics the domain) and the rate limit's burst.
#[derive(Debug, Clone, Default)]
pub struct Origin {
    pub account: String,
    pub domain: Option<String>,
    /// The server's `max_payload` (0: the default, 1 MiB).
    pub max_payload: i64,
}

/// nats-server's default `max_payload`.
const DEFAULT_MAX_PAYLOAD: u64 = 1024 * 1024;

/// The durable part of a consumer's state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SavedState {
    pub delivered_consumer: u64,
    pub delivered_stream: u64,
    pub ack_floor_consumer: u64,
    pub ack_floor_stream: u64,
    /// Stream sequence → (consumer sequence, delivered at, delivery count).
    pub pending: Vec<(u64, u64, i64, u64)>,
    /// Sequences still to deliver from a `last_per_subject` start.
    pub initial: Vec<u64>,
    /// Stream sequence of the next new message to look at.
    pub next_seq: u64,
    /// Messages past `max_deliver`: (stream sequence, consumer sequence).
    #[serde(default)]
    pub maxed: Vec<(u64, u64)>,
}

#[derive(Debug, Clone, Copy)]
struct Pending {
    consumer_seq: u64,
    /// Nanoseconds since the epoch of the last delivery.
    delivered_at: i64,
    deliveries: u64,
}

/// A waiting pull request.
#[derive(Debug, Clone)]
struct PullRequest {
    reply: String,
    batch: u64,
    /// Bytes the request may still take (when `bytes_limited`).
    max_bytes: u64,
    bytes_limited: bool,
    expires: Option<Instant>,
    no_wait: bool,
    heartbeat: Option<Duration>,
    last_sent: Instant,
    delivered: u64,
    /// The priority-group fields of a JSON request.
    group: Option<RequestGroup>,
}

pub struct Consumer {
    pub name: String,
    pub config: ConsumerConfig,
    pub created: i64,
    pub durable: bool,
    filters: Vec<String>,
    delivered_consumer: u64,
    delivered_stream: u64,
    ack_floor_consumer: u64,
    ack_floor_stream: u64,
    next_seq: u64,
    initial: VecDeque<u64>,
    pending: BTreeMap<u64, Pending>,
    /// Due for redelivery, in stream order, with the earliest time each may go again.
    redeliver: BTreeMap<u64, i64>,
    /// Messages delivered `max_deliver` times and never acknowledged: no longer pending
    /// and never sent again, but the ack floor stays below them (stream sequence →
    /// consumer sequence of their first delivery), as in nats-server.
    maxed: BTreeMap<u64, u64>,
    /// When the last acknowledgement moved anything (`ack_floor.last_active`).
    last_ack: i64,
    /// A push consumer with something to send found nobody listening: look again soon
    /// (a subscriber appearing is no event the stream sees).
    awaiting_interest: bool,
    waiting: VecDeque<PullRequest>,
    /// Messages still to deliver; `None` when it must be recounted.
    num_pending: Option<u64>,
    last_active: i64,
    /// When the consumer last had a client (a pull request, or interest on its deliver
    /// subject), for `inactive_threshold`.
    last_seen: Instant,
    last_delivery: Instant,
    fc_outstanding: Option<String>,
    bytes_since_fc: u64,
    fc_seq: u64,
    dirty: bool,
    origin: Origin,
    /// The pinned client of a `pinned_client` consumer.
    pin: Option<Pin>,
    /// Replay `original` until caught up with the stream as it was at the start.
    replay: Option<Replay>,
    /// `rate_limit_bps`, made at the first delivery (it needs the origin's burst).
    rate: Option<RateLimit>,
    /// Pacing holds every delivery until then.
    hold_until: Option<Instant>,
    /// `sample_freq` as a percentage.
    sample_percent: i32,
}

/// What became of one message offered to [`Consumer::send`].
enum Sent {
    /// Delivered (or used up by a request that could not take it).
    Yes,
    /// No target can take it now: it stays queued.
    Refused,
    /// Pacing holds it until then: it stays queued.
    Held(Instant),
}

impl Consumer {
    /// A new consumer positioned by its deliver policy on the stream as it is now.
    pub fn new(name: String, config: ConsumerConfig, ctx: &ConsumerCtx<'_>) -> Self {
        let filters = filters_of(&config);
        let state = ctx.store.state();
        let mut initial = VecDeque::new();
        let start = match config.deliver_policy {
            DeliverPolicy::All => state.first_seq.max(1),
            DeliverPolicy::Last => {
                let last = if filters.is_empty() {
                    (state.msgs > 0).then_some(state.last_seq)
                } else {
                    filters
                        .iter()
                        .filter_map(|f| ctx.store.load_last(f, None).ok().flatten())
                        .map(|m| m.seq)
                        .max()
                };
                last.unwrap_or(state.last_seq + 1)
            }
            DeliverPolicy::New => state.last_seq + 1,
            DeliverPolicy::ByStartSequence => config.opt_start_seq.max(1),
            DeliverPolicy::ByStartTime => {
                let ts = config.opt_start_time.unwrap_or(0);
                ctx.store.seq_for_time(ts).unwrap_or(state.last_seq + 1)
            }
            DeliverPolicy::LastPerSubject => {
                let pats: Vec<String> = if filters.is_empty() {
                    vec![">".to_owned()]
                } else {
                    filters.clone()
                };
                let mut seqs = BTreeSet::new();
                for f in &pats {
                    if let Ok(subjects) = ctx.store.subjects(f) {
                        for s in subjects.keys() {
                            if let Ok(Some(m)) = ctx.store.load_last(s, None) {
                                seqs.insert(m.seq);
                            }
                        }
                    }
                }
                initial.extend(seqs);
                state.last_seq + 1
            }
        };
        let now = Instant::now();
        let first = initial.front().copied().unwrap_or(start);
        let replay =
            (config.replay_policy == ReplayPolicy::Original).then(|| Replay::new(state.last_seq));
        let sample_percent = crate::ack::sample_percent(&config.sample_freq);
        Self {
            durable: !config.durable_name.is_empty(),
            name,
            config,
            created: now_nanos(),
            filters,
            delivered_consumer: 0,
            delivered_stream: first.saturating_sub(1),
            ack_floor_consumer: 0,
            ack_floor_stream: first.saturating_sub(1),
            next_seq: start,
            initial,
            pending: BTreeMap::new(),
            redeliver: BTreeMap::new(),
            maxed: BTreeMap::new(),
            last_ack: 0,
            awaiting_interest: false,
            waiting: VecDeque::new(),
            num_pending: None,
            last_active: 0,
            last_seen: now,
            last_delivery: now,
            fc_outstanding: None,
            bytes_since_fc: 0,
            fc_seq: 0,
            dirty: true,
            origin: Origin::default(),
            pin: None,
            replay,
            rate: None,
            hold_until: None,
            sample_percent,
        }
    }

    /// Tells the consumer where it lives (see [`Origin`]).
    pub fn set_origin(&mut self, origin: Origin) {
        self.origin = origin;
        self.rate = None;
    }

    /// A consumer recovered from its stored config and state.
    pub fn restore(
        name: String,
        config: ConsumerConfig,
        created: i64,
        saved: SavedState,
        ctx: &ConsumerCtx<'_>,
    ) -> Self {
        let mut c = Self::new(name, config, ctx);
        c.created = created;
        c.delivered_consumer = saved.delivered_consumer;
        c.delivered_stream = saved.delivered_stream;
        c.ack_floor_consumer = saved.ack_floor_consumer;
        c.ack_floor_stream = saved.ack_floor_stream;
        c.next_seq = saved.next_seq;
        c.initial = saved.initial.into_iter().collect();
        c.maxed = saved.maxed.into_iter().collect();
        let now = now_nanos();
        for (sseq, cseq, at, n) in saved.pending {
            c.pending.insert(
                sseq,
                Pending {
                    consumer_seq: cseq,
                    delivered_at: at,
                    deliveries: n,
                },
            );
            // Whatever was in flight at the stop goes out again first.
            c.redeliver.insert(sseq, now);
        }
        c.num_pending = None;
        c.dirty = false;
        c
    }

    fn saved(&self) -> SavedState {
        SavedState {
            delivered_consumer: self.delivered_consumer,
            delivered_stream: self.delivered_stream,
            ack_floor_consumer: self.ack_floor_consumer,
            ack_floor_stream: self.ack_floor_stream,
            pending: self
                .pending
                .iter()
                .map(|(s, p)| (*s, p.consumer_seq, p.delivered_at, p.deliveries))
                .collect(),
            initial: self.initial.iter().copied().collect(),
            next_seq: self.next_seq,
            maxed: self.maxed.iter().map(|(s, c)| (*s, *c)).collect(),
        }
    }

    /// Makes the next [`Consumer::take_dirty_state`] return the state: what was written
    /// may not have reached the store.
    pub fn mark_dirty(&mut self) {
        self.dirty = true;
    }

    /// The state to persist, if it changed since the last call.
    pub fn take_dirty_state(&mut self) -> Option<Vec<u8>> {
        if !self.dirty {
            return None;
        }
        self.dirty = false;
        serde_json::to_vec(&self.saved()).ok()
    }

    pub fn is_push(&self) -> bool {
        self.deliver_subject().is_some()
    }

    fn deliver_subject(&self) -> Option<&str> {
        Some(self.config.deliver_subject.as_str()).filter(|s| !s.is_empty())
    }

    fn acks(&self) -> bool {
        self.config.ack_policy != AckPolicy::None
    }

    /// Whether this consumer's filters take `subject`.
    pub fn wants_subject(&self, subject: &str) -> bool {
        self.filters.is_empty()
            || self
                .filters
                .iter()
                .any(|f| crate::subject::matches(f, subject))
    }

    /// Whether the message at `seq` has been acknowledged (or needs none).
    pub fn has_acked(&self, seq: u64) -> bool {
        seq <= self.ack_floor_stream
            || (seq <= self.delivered_stream
                && !self.pending.contains_key(&seq)
                && !self.maxed.contains_key(&seq)
                && !self.initial.contains(&seq))
    }

    // ---- stream events ----

    /// A message was stored.
    pub fn on_stored(&mut self, subject: &str, _seq: u64) {
        if self.wants_subject(subject)
            && let Some(n) = &mut self.num_pending
        {
            *n += 1;
        }
    }

    /// Messages were removed (limits, delete, expiry): forget them where pending.
    pub fn on_removed(&mut self, seqs: &[u64]) {
        for s in seqs {
            if self.pending.remove(s).is_some() {
                self.dirty = true;
            }
            self.redeliver.remove(s);
            self.maxed.remove(s);
        }
        self.initial.retain(|s| !seqs.contains(s));
        self.num_pending = None;
        self.update_ack_floor();
    }

    /// The stream was purged: recount, and drop pending entries that are gone.
    pub fn on_purged(&mut self) {
        self.num_pending = None;
    }

    fn gone_check(&mut self, store: &dyn Store) {
        let first = store.state().first_seq;
        let gone: Vec<u64> = self.pending.range(..first).map(|(s, _)| *s).collect();
        if !gone.is_empty() {
            self.on_removed(&gone);
        }
        if self.next_seq < first {
            self.next_seq = first;
        }
        if self.delivered_stream + 1 < first && self.pending.is_empty() {
            self.delivered_stream = first - 1;
            self.ack_floor_stream = first - 1;
            self.dirty = true;
        }
    }

    /// Messages still to deliver (new, not redeliveries), counted exactly.
    pub fn num_pending(&mut self, store: &dyn Store) -> u64 {
        if let Some(n) = self.num_pending {
            return n;
        }
        let new = store
            .num_pending(self.next_seq, &self.filters, false)
            .unwrap_or(0);
        let n = new + self.initial.len() as u64;
        self.num_pending = Some(n);
        n
    }

    // ---- delivery ----

    /// Sends what it can: redeliveries first, then new messages, while a target
    /// (a listener or a waiting request) and `max_ack_pending` room remain. True when it
    /// stopped at its per-round cap with more to send (the stream runs another round at
    /// once).
    ///
    /// What does not change within a round is settled once: the clock, whether a push
    /// consumer has a listener, which pull requests have expired. New messages are read
    /// from the store a batch at a time (one read for many messages); what was read
    /// but not sent is put back at the end.
    pub fn deliver(&mut self, ctx: &ConsumerCtx<'_>) -> bool {
        if self.is_paused() {
            return false;
        }
        self.gone_check(ctx.store);
        let now = Instant::now();
        if self.hold_until.is_some_and(|t| t > now) {
            return false;
        }
        self.hold_until = None;
        let now_ns = now_nanos();
        let push = match self.deliver_subject() {
            Some(subj) => {
                if !ctx.conn.has_interest(subj) {
                    self.awaiting_interest = self.num_pending.is_none_or(|n| n > 0)
                        || !self.redeliver.is_empty()
                        || !self.initial.is_empty();
                    return false;
                }
                let subj = subj.to_owned();
                self.awaiting_interest = false;
                self.last_seen = now;
                Some(subj)
            }
            None => {
                self.drop_expired(ctx, now);
                None
            }
        };
        let mut ahead = VecDeque::new();
        let mut ack = String::new();
        let mut sent = 0;
        let more = loop {
            if sent == MAX_ROUND {
                break true;
            }
            let target = match &push {
                Some(subj) => {
                    if let Some(fc) = &self.fc_outstanding
                        && !fc.is_empty()
                        && self.bytes_since_fc >= FC_STALL_BYTES
                    {
                        break false;
                    }
                    Target::Push(subj)
                }
                None if self.waiting.is_empty() => break false,
                None => Target::Pull,
            };
            let mut room = MAX_ROUND - sent;
            let max_ack_pending = self.config.max_ack_pending;
            if self.acks() && max_ack_pending > 0 {
                let free = usize::try_from(max_ack_pending).unwrap_or(usize::MAX);
                if self.pending.len() >= free {
                    break false;
                }
                room = room.min(free - self.pending.len());
            }
            if push.is_none() {
                let asked = self
                    .waiting
                    .iter()
                    .fold(0u64, |n, r| n.saturating_add(r.batch));
                room = room.min(usize::try_from(asked).unwrap_or(usize::MAX));
            }
            let Some((msg, redelivery)) = self.next_message(ctx.store, &mut ahead, room, now_ns)
            else {
                // Nothing (more) to send: no-wait requests end here.
                self.end_no_wait(ctx);
                break false;
            };
            match self.send(ctx, &target, &msg, redelivery, (now, now_ns), &mut ack) {
                Sent::Yes => sent += 1,
                Sent::Refused => {
                    self.unsend(&msg, redelivery);
                    break false;
                }
                Sent::Held(until) => {
                    self.unsend(&msg, redelivery);
                    self.hold_until = Some(until);
                    break false;
                }
            }
        };
        if sent > 0 {
            self.last_active = now_ns;
            self.last_delivery = now;
        }
        // Read ahead but not sent: they go again next round.
        if let Some(m) = ahead.front() {
            self.next_seq = self.next_seq.min(m.seq);
        }
        // Out of things to send: replay `original` ends once past what the stream held
        // at the start (where nats-server checks it, on going idle).
        if !more
            && self
                .replay
                .as_ref()
                .is_some_and(|r| self.initial.is_empty() && r.caught_up(self.next_seq))
        {
            self.replay = None;
        }
        more
    }

    /// Replay `original` and `rate_limit_bps`: when a delivery stored at `ts` taking
    /// `size` bytes on the wire must wait, until when. A delivery that may go is charged
    /// to the rate limit.
    fn pace(&mut self, ctx: &ConsumerCtx<'_>, ts: i64, size: u64, now: Instant) -> Option<Instant> {
        if let Some(r) = &self.replay
            && let Some(until) = r.hold(ts, now)
        {
            return Some(until);
        }
        let bps = self.config.rate_limit_bps;
        if bps > 0 {
            let origin = &self.origin;
            let rate = self.rate.get_or_insert_with(|| {
                // The burst: the stream's largest message, else the server's.
                let burst = [i64::from(ctx.config.max_msg_size), origin.max_payload]
                    .into_iter()
                    .find(|&b| b > 0)
                    .map_or(DEFAULT_MAX_PAYLOAD, i64::unsigned_abs);
                RateLimit::new(bps, burst, now)
            });
            if let Some(until) = rate.take(size, now) {
                return Some(until);
            }
        }
        None
    }

    /// Puts the request to serve next at the front of the queue, by the consumer's
    /// priority policy: ends requests naming a stale pin (423), skips those that must
    /// wait, pins a client when none is. `None` when no request may have the message.
    /// The flag says a pin was made for this request.
    /// `num_pending` is what `min_pending` is compared with.
    fn pick_request(&mut self, ctx: &ConsumerCtx<'_>, num_pending: u64) -> Option<bool> {
        let policy = self.config.priority_policy;
        if !matches!(
            policy,
            PriorityPolicy::PinnedClient | PriorityPolicy::Overflow
        ) {
            return (!self.waiting.is_empty()).then_some(false);
        }
        let mut skipped = 0;
        while let Some(req) = self.waiting.front() {
            let pinned = self.pin.as_ref().map(|p| p.id.as_str());
            match priority::admit(
                policy,
                pinned,
                req.group.as_ref(),
                num_pending,
                self.pending.len(),
            ) {
                Admit::Serve => return Some(false),
                Admit::PinAndServe => {
                    let group = req.group.as_ref().map_or("", |g| g.group.as_str());
                    let pin = Pin::new(group, self.pin_ttl(), Instant::now());
                    self.advisories(ctx).pinned(&pin);
                    self.pin = Some(pin);
                    return Some(true);
                }
                Admit::Skip => {
                    skipped += 1;
                    if skipped >= self.waiting.len() {
                        return None;
                    }
                    self.waiting.rotate_left(1);
                }
                Admit::WrongPin => {
                    let (code, text) = priority::WRONG_PIN;
                    let hdr = headers::Builder::status(code, text)
                        .add(headers::PENDING_MESSAGES, req.batch)
                        .add(headers::PENDING_BYTES, req.max_bytes)
                        .build();
                    ctx.conn.publish(&req.reply, None, &hdr, &[]);
                    self.waiting.pop_front();
                }
            }
        }
        None
    }

    /// How long a pin lasts without a pull request naming it.
    fn pin_ttl(&self) -> Duration {
        Duration::from_nanos(self.config.priority_timeout.unsigned_abs())
    }

    fn advisories<'a>(&'a self, ctx: &ConsumerCtx<'a>) -> AdvisoryCtx<'a> {
        AdvisoryCtx {
            conn: ctx.conn,
            account: &self.origin.account,
            domain: self.origin.domain.as_deref(),
            stream: ctx.stream,
            consumer: &self.name,
        }
    }

    /// `CONSUMER.UNPIN` of `group` (checked to be one of the consumer's): the pin goes,
    /// whether or not there was one, and the unpinned advisory says so (as nats-server).
    pub fn unpin(&mut self, ctx: &ConsumerCtx<'_>, group: &str) {
        self.pin = None;
        self.advisories(ctx).unpinned(group, "admin");
    }

    /// The next message to send: a due redelivery, else the next new one (from
    /// `ahead`, refilled with up to `want` messages when empty).
    fn next_message(
        &mut self,
        store: &dyn Store,
        ahead: &mut VecDeque<StoredMsg>,
        want: usize,
        now: i64,
    ) -> Option<(StoredMsg, bool)> {
        while let Some((&seq, &not_before)) = self.redeliver.iter().next() {
            if not_before > now {
                break;
            }
            self.redeliver.remove(&seq);
            if !self.pending.contains_key(&seq) {
                continue;
            }
            match store.load(seq) {
                Ok(Some(m)) => return Some((m, true)),
                _ => {
                    self.pending.remove(&seq);
                    self.dirty = true;
                }
            }
        }
        while let Some(seq) = self.initial.front().copied() {
            self.initial.pop_front();
            if let Ok(Some(m)) = store.load(seq) {
                return Some((m, false));
            }
        }
        if ahead.is_empty() {
            let want = want.clamp(1, READ_AHEAD_MSGS);
            *ahead = store
                .load_batch(self.next_seq, &self.filters, want, READ_AHEAD_BYTES)
                .ok()?
                .into();
        }
        let m = ahead.pop_front()?;
        self.next_seq = m.seq + 1;
        Some((m, false))
    }

    /// Offers one message to the target (for a pull consumer, the request its priority
    /// policy picks), unless pacing holds it.
    fn send(
        &mut self,
        ctx: &ConsumerCtx<'_>,
        target: &Target<'_>,
        m: &StoredMsg,
        redelivery: bool,
        (at, now): (Instant, i64),
        ack: &mut String,
    ) -> Sent {
        let size = (m.subject.len() + m.hdr.len() + m.data.len()) as u64;
        // Take a new message out of the count first. A recount here no longer sees it
        // (it was taken out of the queue), so `pending` is the count after it either way.
        if !redelivery && let Some(n) = &mut self.num_pending {
            *n = n.saturating_sub(1);
        }
        let pending = self.num_pending(ctx.store);
        if let Target::Pull = target {
            // nats-server compares `min_pending` with this count plus one.
            let Some(just_pinned) = self.pick_request(ctx, pending + 1) else {
                self.uncount(redelivery);
                return Sent::Refused;
            };
            let Some(req) = self.waiting.front_mut() else {
                self.uncount(redelivery);
                return Sent::Refused;
            };
            if req.bytes_limited && size > req.max_bytes {
                let hdr = headers::Builder::status(409, "Message Size Exceeds MaxBytes")
                    .add(headers::PENDING_MESSAGES, req.batch)
                    .add(headers::PENDING_BYTES, req.max_bytes)
                    .build();
                let reply = req.reply.clone();
                self.waiting.pop_front();
                ctx.conn.publish(&reply, None, &hdr, &[]);
                // A pin made for this request goes with it (without an advisory, as in
                // nats-server).
                if just_pinned {
                    self.pin = None;
                }
                self.uncount(redelivery);
                self.unsend(m, redelivery);
                return Sent::Yes;
            }
        }
        let deliveries = if redelivery {
            self.pending.get(&m.seq).map_or(1, |p| p.deliveries + 1)
        } else {
            1
        };
        // Every delivery, a redelivery too, takes the next consumer sequence (the ack
        // subject carries it); the pending entry keeps the one of the first delivery,
        // which the ack floor is made of. As nats-server.
        let consumer_seq = self.delivered_consumer + 1;
        let first_consumer_seq = self
            .pending
            .get(&m.seq)
            .filter(|_| redelivery)
            .map_or(consumer_seq, |p| p.consumer_seq);
        ack.clear();
        crate::ack::write_subject(
            ack,
            ctx.stream,
            &self.name,
            deliveries,
            m.seq,
            consumer_seq,
            m.ts,
            pending,
        );
        let wire = (m.subject.len() + ack.len() + m.hdr.len() + m.data.len()) as u64;
        if self.replay.is_some() || self.config.rate_limit_bps > 0 {
            let now_at = Instant::now();
            if let Some(until) = self.pace(ctx, m.ts, wire, now_at) {
                self.uncount(redelivery);
                return Sent::Held(until);
            }
            if let Some(r) = &mut self.replay {
                r.sent(m.ts, now_at);
            }
        }
        self.delivered_consumer = consumer_seq;
        if !redelivery {
            self.delivered_stream = m.seq;
        }
        let reply_to = match target {
            Target::Push(subj) => subj,
            Target::Pull => match self.waiting.front() {
                Some(req) => req.reply.as_str(),
                None => {
                    self.uncount(redelivery);
                    return Sent::Refused;
                }
            },
        };
        let pin = (self.config.priority_policy == PriorityPolicy::PinnedClient
            && matches!(target, Target::Pull))
        .then(|| self.pin.as_ref().map_or("", |p| p.id.as_str()));
        if self.config.headers_only || pin.is_some() {
            let mut hdr = headers::Builder::from_block(&m.hdr);
            if self.config.headers_only {
                hdr = hdr.add(headers::MSG_SIZE, m.data.len());
            }
            if let Some(pin) = pin {
                hdr = hdr.add(priority::PIN_ID_HEADER, pin);
            }
            let data: &[u8] = if self.config.headers_only {
                &[]
            } else {
                &m.data
            };
            ctx.conn
                .deliver(reply_to, &m.subject, Some(ack), &hdr.build(), data);
        } else {
            ctx.conn
                .deliver(reply_to, &m.subject, Some(ack), &m.hdr, &m.data);
        }
        if self.acks() {
            self.pending.insert(
                m.seq,
                Pending {
                    consumer_seq: first_consumer_seq,
                    delivered_at: now,
                    deliveries,
                },
            );
        } else {
            self.update_ack_floor();
        }
        self.dirty = true;
        match target {
            Target::Push(subj) => {
                self.bytes_since_fc += size;
                if self.config.flow_control
                    && self.fc_outstanding.is_none()
                    && self.bytes_since_fc >= FC_EVERY_BYTES
                {
                    self.fc_seq += 1;
                    let reply = format!("$JS.FC.{}.{}.{}", ctx.stream, self.name, self.fc_seq);
                    let hdr = headers::Builder::status(100, "FlowControl Request").build();
                    ctx.conn.publish(subj, Some(&reply), &hdr, &[]);
                    self.fc_outstanding = Some(reply);
                }
            }
            Target::Pull => {
                if let Some(req) = self.waiting.front_mut() {
                    req.batch = req.batch.saturating_sub(1);
                    req.delivered += 1;
                    req.last_sent = at;
                    if req.bytes_limited {
                        req.max_bytes = req.max_bytes.saturating_sub(size);
                    }
                    if req.batch == 0 || (req.bytes_limited && req.max_bytes == 0) {
                        self.waiting.pop_front();
                    } else if let Some(r) = self.waiting.pop_front() {
                        // Round-robin between waiting requests, as nats-server does:
                        // to the back of the queue, or of its priority level.
                        self.enqueue(r);
                    }
                }
            }
        }
        Sent::Yes
    }

    /// A message [`Consumer::send`] took out of the count was not sent after all: it is
    /// queued again, and counted again.
    fn uncount(&mut self, redelivery: bool) {
        if !redelivery && let Some(n) = &mut self.num_pending {
            *n += 1;
        }
    }

    /// Queues a pull request: at the back, or under `prioritized` after the requests of
    /// the same or a more urgent priority.
    fn enqueue(&mut self, r: PullRequest) {
        if self.config.priority_policy == PriorityPolicy::Prioritized {
            let at = priority::insert_position(
                self.waiting
                    .iter()
                    .map(|w| priority::priority_of(w.group.as_ref())),
                priority::priority_of(r.group.as_ref()),
            );
            self.waiting.insert(at, r);
        } else {
            self.waiting.push_back(r);
        }
    }

    /// Puts a message taken by `next_message` back (it was not sent).
    fn unsend(&mut self, m: &StoredMsg, redelivery: bool) {
        if redelivery {
            self.redeliver.insert(m.seq, 0);
        } else if self.initial.is_empty() && m.seq + 1 == self.next_seq {
            self.next_seq = m.seq;
        } else {
            self.initial.push_front(m.seq);
        }
    }

    fn drop_expired(&mut self, ctx: &ConsumerCtx<'_>, now: Instant) {
        let mut i = 0;
        while i < self.waiting.len() {
            let r = &self.waiting[i];
            if r.expires.is_some_and(|e| e <= now) {
                let hdr = headers::Builder::status(408, "Request Timeout")
                    .add(headers::PENDING_MESSAGES, r.batch)
                    .add(headers::PENDING_BYTES, r.max_bytes)
                    .build();
                ctx.conn.publish(&r.reply, None, &hdr, &[]);
                self.waiting.remove(i);
            } else if !ctx.conn.has_interest(&r.reply) {
                // The requester is gone.
                self.waiting.remove(i);
            } else {
                i += 1;
            }
        }
    }

    /// No message is available now: no-wait requests end (404 when nats-server sends
    /// it: no expiry, or something was delivered).
    fn end_no_wait(&mut self, ctx: &ConsumerCtx<'_>) {
        let mut keep = VecDeque::with_capacity(self.waiting.len());
        while let Some(r) = self.waiting.pop_front() {
            if r.no_wait && (r.expires.is_none() || r.delivered > 0) {
                let hdr = headers::Builder::status(404, "No Messages").build();
                ctx.conn.publish(&r.reply, None, &hdr, &[]);
            } else {
                keep.push_back(r);
            }
        }
        self.waiting = keep;
    }

    /// A pull request (`$JS.API.CONSUMER.MSG.NEXT.<stream>.<consumer>`).
    pub fn on_next(&mut self, ctx: &ConsumerCtx<'_>, msg: &Msg) {
        let Some(reply) = msg.reply.as_deref() else {
            return;
        };
        let err = |code: u16, text: &str| {
            let hdr = headers::Builder::status(code, text).build();
            ctx.conn.publish(reply, None, &hdr, &[]);
        };
        if self.is_push() {
            err(409, "Consumer is push based");
            return;
        }
        let req = match parse_next(&msg.payload) {
            Ok(r) => r,
            Err(e) => {
                err(400, &format!("Bad Request - {e}"));
                return;
            }
        };
        let max_batch = self.config.max_batch;
        if max_batch > 0 && req.batch > max_batch.unsigned_abs() {
            err(409, &format!("Exceeded MaxRequestBatch of {max_batch}"));
            return;
        }
        let max_expires = self.config.max_expires;
        if max_expires > 0 && req.expires_ns > max_expires {
            err(
                409,
                &format!(
                    "Exceeded MaxRequestExpires of {}",
                    crate::time::go_duration(max_expires)
                ),
            );
            return;
        }
        let max_bytes = self.config.max_bytes;
        if req.max_bytes > 0 && max_bytes > 0 && req.max_bytes > max_bytes.unsigned_abs() {
            err(409, &format!("Exceeded MaxRequestMaxBytes of {max_bytes}"));
            return;
        }
        if let Err((code, text)) = priority::check_request(&self.config, req.group.as_ref()) {
            err(code, text);
            return;
        }
        let ttl = self.pin_ttl();
        if self.config.priority_policy != PriorityPolicy::None
            && let (Some(g), Some(pin)) = (&req.group, &mut self.pin)
        {
            if g.id == pin.id {
                // The pinned client is still pulling: the pin lasts another timeout.
                pin.expires = Instant::now() + ttl;
            } else if !g.id.is_empty() {
                let (code, text) = priority::PIN_MISMATCH;
                err(code, text);
                return;
            }
        }
        self.last_seen = Instant::now();
        if req.no_wait {
            let available = self.num_pending(ctx.store) + self.redeliver.len() as u64;
            if available == 0 && req.expires_ns == 0 {
                err(404, "No Messages");
                return;
            }
        }
        let max_waiting = self.config.max_waiting;
        if max_waiting > 0 && self.waiting.len() as i64 >= max_waiting {
            if req.heartbeat_ns == 0 {
                err(409, "Exceeded MaxWaiting");
            }
            return;
        }
        let now = Instant::now();
        self.enqueue(PullRequest {
            reply: reply.to_owned(),
            batch: req.batch.max(1),
            max_bytes: req.max_bytes,
            bytes_limited: req.max_bytes > 0,
            expires: (req.expires_ns > 0)
                .then(|| now + Duration::from_nanos(req.expires_ns.unsigned_abs())),
            no_wait: req.no_wait,
            heartbeat: (req.heartbeat_ns > 0)
                .then(|| Duration::from_nanos(req.heartbeat_ns.unsigned_abs())),
            last_sent: now,
            delivered: 0,
            group: req.group,
        });
        self.deliver(ctx);
    }

    /// An ack on one of this consumer's ack subjects. Returns the sequences that became
    /// acknowledged, for interest retention.
    pub fn on_ack(&mut self, ctx: &ConsumerCtx<'_>, ack: &AckReply<'_>, msg: &Msg) -> Vec<u64> {
        let kind = AckKind::parse(&msg.payload);
        let mut acked = Vec::new();
        match kind {
            AckKind::Ack | AckKind::Next(_) => {
                if self.config.ack_policy == AckPolicy::All {
                    let seqs: Vec<u64> = self
                        .pending
                        .range(..=ack.stream_seq)
                        .map(|(s, _)| *s)
                        .collect();
                    for s in seqs {
                        self.pending.remove(&s);
                        self.redeliver.remove(&s);
                        acked.push(s);
                    }
                } else if let Some(p) = self.pending.remove(&ack.stream_seq) {
                    self.sample_ack(ctx, ack, &p);
                    self.redeliver.remove(&ack.stream_seq);
                    acked.push(ack.stream_seq);
                } else if self.maxed.remove(&ack.stream_seq).is_some() {
                    self.redeliver.remove(&ack.stream_seq);
                    acked.push(ack.stream_seq);
                }
                if let AckKind::Next(body) = &kind
                    && let Some(reply) = msg.reply.as_deref()
                {
                    let next = Msg {
                        subject: msg.subject.clone(),
                        sid: msg.sid,
                        reply: Some(reply.to_owned()),
                        headers: bytes::Bytes::new(),
                        payload: bytes::Bytes::copy_from_slice(body.as_bytes()),
                    };
                    self.update_ack_floor();
                    self.dirty = true;
                    self.on_next(ctx, &next);
                }
            }
            AckKind::Nak(delay) => {
                if self.pending.contains_key(&ack.stream_seq) {
                    let at = delay.map_or(0, |d| {
                        now_nanos() + i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
                    });
                    self.redeliver.insert(ack.stream_seq, at);
                }
            }
            AckKind::Progress => {
                if let Some(p) = self.pending.get_mut(&ack.stream_seq) {
                    p.delivered_at = now_nanos();
                }
            }
            AckKind::Term(reason) => {
                if self.pending.remove(&ack.stream_seq).is_some() {
                    self.redeliver.remove(&ack.stream_seq);
                    acked.push(ack.stream_seq);
                    self.advisory_terminated(ctx, ack, &reason);
                }
            }
        }
        if acked.is_empty() {
            return Vec::new();
        }
        self.last_ack = now_nanos();
        self.update_ack_floor();
        self.dirty = true;
        acked
    }

    /// `sample_freq`: the ack metric for an explicit ack of a pending message, for the
    /// sampled share of them (nats-server's `sampleAck`), when anyone listens.
    fn sample_ack(&self, ctx: &ConsumerCtx<'_>, ack: &AckReply<'_>, p: &Pending) {
        if !crate::ack::should_sample(self.sample_percent) {
            return;
        }
        let metric = AckMetric {
            stream: ctx.stream,
            consumer: &self.name,
            consumer_seq: ack.consumer_seq,
            stream_seq: ack.stream_seq,
            ack_time: now_nanos() - p.delivered_at,
            deliveries: ack.delivered,
            domain: self.origin.domain.as_deref(),
        };
        let subject = metric.subject();
        if !ctx.conn.has_interest(&subject) {
            return;
        }
        if let Ok(b) = serde_json::to_vec(&metric.body()) {
            ctx.conn.publish(&subject, None, &[], &b);
        }
    }

    fn advisory_terminated(&self, ctx: &ConsumerCtx<'_>, ack: &AckReply<'_>, reason: &str) {
        let body = serde_json::json!({
            "type": "io.nats.jetstream.advisory.v1.terminated",
            "id": crate::time::nuid(),
            "timestamp": crate::time::rfc3339(now_nanos()),
            "stream": ctx.stream,
            "consumer": self.name,
            "consumer_seq": ack.consumer_seq,
            "stream_seq": ack.stream_seq,
            "deliveries": ack.delivered,
            "reason": reason,
        });
        if let Ok(b) = serde_json::to_vec(&body) {
            ctx.conn.publish(
                &format!(
                    "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED.{}.{}",
                    ctx.stream, self.name
                ),
                None,
                &[],
                &b,
            );
        }
    }

    /// A reply to one of our flow-control requests.
    pub fn on_flow_control_reply(&mut self, subject: &str) {
        if self.fc_outstanding.as_deref() == Some(subject) {
            self.fc_outstanding = None;
            self.bytes_since_fc = 0;
        }
    }

    fn update_ack_floor(&mut self) {
        let lowest_pending = self
            .pending
            .iter()
            .next()
            .map(|(s, p)| (*s, p.consumer_seq));
        let lowest_maxed = self.maxed.iter().next().map(|(s, c)| (*s, *c));
        let lowest = match (lowest_pending, lowest_maxed) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        match lowest {
            None => {
                if self.initial.is_empty() {
                    self.ack_floor_stream = self.delivered_stream;
                    self.ack_floor_consumer = self.delivered_consumer;
                }
            }
            Some((sseq, cseq)) => {
                self.ack_floor_stream = sseq.saturating_sub(1);
                self.ack_floor_consumer = cseq.saturating_sub(1);
            }
        }
    }

    /// Timers: redeliveries whose ack wait passed, pull request expiry and heartbeats,
    /// push heartbeats, inactivity. True if the consumer should be deleted (inactive).
    pub fn on_tick(&mut self, ctx: &ConsumerCtx<'_>, now: Instant) -> bool {
        let now_ns = now_nanos();
        if self.pin.as_ref().is_some_and(|p| p.expires <= now)
            && let Some(pin) = self.pin.take()
        {
            // No pull request named the pin within `priority_timeout`: another client
            // may take it.
            self.advisories(ctx).unpinned(&pin.group, "timeout");
        }
        if self.acks() {
            let mut expired = Vec::new();
            for (seq, p) in &self.pending {
                if self.redeliver.contains_key(seq) {
                    continue;
                }
                let wait = self.ack_wait_for(p.deliveries);
                if p.delivered_at + wait <= now_ns {
                    expired.push((*seq, p.deliveries));
                }
            }
            for (seq, deliveries) in expired {
                let max = self.config.max_deliver;
                if max > 0 && deliveries >= max.unsigned_abs() {
                    // Delivered as often as allowed: never again.
                    if let Some(p) = self.pending.remove(&seq) {
                        self.maxed.insert(seq, p.consumer_seq);
                    }
                    self.dirty = true;
                    self.advisory_max_deliveries(ctx, seq, deliveries);
                } else {
                    self.redeliver.insert(seq, now_ns);
                }
            }
            self.update_ack_floor();
        }
        if !self.is_push() {
            self.drop_expired(ctx, now);
            for r in &mut self.waiting {
                if let Some(hb) = r.heartbeat
                    && now.duration_since(r.last_sent) >= hb
                {
                    let hdr = headers::Builder::status(100, "Idle Heartbeat").build();
                    ctx.conn.publish(&r.reply, None, &hdr, &[]);
                    r.last_sent = now;
                }
            }
            if !self.waiting.is_empty() {
                self.last_seen = now;
            }
        } else if let Some(subj) = self.deliver_subject().map(str::to_owned) {
            let hb = self.config.idle_heartbeat;
            if ctx.conn.has_interest(&subj) {
                self.last_seen = now;
                if hb > 0
                    && now.duration_since(self.last_delivery)
                        >= Duration::from_nanos(hb.unsigned_abs())
                {
                    let mut b = headers::Builder::status(100, "Idle Heartbeat")
                        .add(headers::LAST_CONSUMER, self.delivered_consumer)
                        .add(headers::LAST_STREAM, self.delivered_stream);
                    if let Some(fc) = &self.fc_outstanding {
                        b = b.add(headers::CONSUMER_STALLED, fc);
                    }
                    ctx.conn.publish(&subj, None, &b.build(), &[]);
                    self.last_delivery = now;
                }
            } else {
                // No listener, no heartbeat owed: the timer starts when one appears.
                self.last_delivery = now;
            }
        }
        let threshold = self.config.inactive_threshold;
        threshold > 0
            && now.duration_since(self.last_seen) >= Duration::from_nanos(threshold.unsigned_abs())
    }

    /// The next moment [`Consumer::on_tick`] has something to do: an ack wait ending, a
    /// delayed redelivery, a pull request expiring or owing a heartbeat, a push
    /// heartbeat, the inactivity threshold, the end of a pause.
    pub fn next_wake(&self, now: Instant) -> Option<Instant> {
        let now_ns = now_nanos();
        let at = |ns: i64| now + Duration::from_nanos(u64::try_from(ns - now_ns).unwrap_or(0));
        let mut wake: Option<Instant> = None;
        let mut take = |t: Instant| wake = Some(wake.map_or(t, |w| w.min(t)));
        if self.acks() {
            for (seq, p) in &self.pending {
                if !self.redeliver.contains_key(seq) {
                    take(at(p.delivered_at + self.ack_wait_for(p.deliveries)));
                }
            }
        }
        // Redeliveries already due wait for a target, which arrives as an event.
        if let Some(&nb) = self.redeliver.values().filter(|&&nb| nb > now_ns).min() {
            take(at(nb));
        }
        for r in &self.waiting {
            if let Some(e) = r.expires {
                take(e);
            }
            if let Some(hb) = r.heartbeat {
                take(r.last_sent + hb);
            }
        }
        if self.awaiting_interest {
            take(now + Duration::from_millis(50));
        }
        if self.is_push() && self.config.idle_heartbeat > 0 {
            take(
                self.last_delivery
                    + Duration::from_nanos(self.config.idle_heartbeat.unsigned_abs()),
            );
        }
        if self.config.inactive_threshold > 0 {
            take(
                self.last_seen
                    + Duration::from_nanos(self.config.inactive_threshold.unsigned_abs()),
            );
        }
        if let Some(t) = self.config.pause_until.filter(|t| *t > now_ns) {
            take(at(t));
        }
        if let Some(p) = &self.pin {
            take(p.expires);
        }
        if let Some(t) = self.hold_until {
            take(t);
        }
        wake
    }

    fn ack_wait_for(&self, deliveries: u64) -> i64 {
        let backoff = &self.config.backoff;
        if !backoff.is_empty() {
            let i = usize::try_from(deliveries.saturating_sub(1))
                .unwrap_or(usize::MAX)
                .min(backoff.len() - 1);
            return backoff[i];
        }
        self.config.ack_wait
    }

    fn advisory_max_deliveries(&self, ctx: &ConsumerCtx<'_>, seq: u64, deliveries: u64) {
        let body = serde_json::json!({
            "type": "io.nats.jetstream.advisory.v1.max_deliver",
            "id": crate::time::nuid(),
            "timestamp": crate::time::rfc3339(now_nanos()),
            "stream": ctx.stream,
            "consumer": self.name,
            "stream_seq": seq,
            "deliveries": deliveries,
        });
        if let Ok(b) = serde_json::to_vec(&body) {
            ctx.conn.publish(
                &format!(
                    "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES.{}.{}",
                    ctx.stream, self.name
                ),
                None,
                &[],
                &b,
            );
        }
    }

    /// The consumer is being deleted: tell waiting pull requests.
    pub fn on_deleted(&mut self, conn: &dyn Conn) {
        for r in self.waiting.drain(..) {
            let hdr = headers::Builder::status(409, "Consumer Deleted").build();
            conn.publish(&r.reply, None, &hdr, &[]);
        }
    }

    pub fn is_paused(&self) -> bool {
        self.config.pause_until.is_some_and(|t| t > now_nanos())
    }

    /// Replaces the config with an allowed update.
    pub fn update(&mut self, config: ConsumerConfig) {
        self.filters = filters_of(&config);
        if config.sample_freq != self.config.sample_freq {
            self.sample_percent = crate::ack::sample_percent(&config.sample_freq);
        }
        if config.rate_limit_bps != self.config.rate_limit_bps {
            self.rate = None;
        }
        self.config = config;
        self.num_pending = None;
        self.dirty = true;
    }

    // ---- info ----

    pub fn info(&mut self, ctx: &ConsumerCtx<'_>) -> crate::api::types::ConsumerInfo {
        use crate::api::types::{ConsumerInfo, SequenceInfo};
        let num_pending = self.num_pending(ctx.store);
        let pause_remaining = self
            .config
            .pause_until
            .map_or(0, |t| (t - now_nanos()).max(0));
        ConsumerInfo {
            stream_name: ctx.stream.to_owned(),
            name: self.name.clone(),
            created: self.created,
            config: Some(self.config.clone()),
            delivered: SequenceInfo {
                consumer_seq: self.delivered_consumer,
                stream_seq: self.delivered_stream,
                last_active: (self.last_active > 0).then_some(self.last_active),
            },
            ack_floor: SequenceInfo {
                consumer_seq: self.ack_floor_consumer,
                stream_seq: self.ack_floor_stream,
                last_active: (self.last_ack > 0).then_some(self.last_ack),
            },
            num_ack_pending: self.pending.len() as i64,
            // nats-server counts the messages delivered more than once that are not
            // acknowledged (those past max_deliver included).
            num_redelivered: (self.pending.values().filter(|p| p.deliveries > 1).count()
                + self.maxed.len()) as i64,
            num_waiting: self.waiting.len() as i64,
            num_pending,
            push_bound: self
                .deliver_subject()
                .is_some_and(|s| ctx.conn.has_interest(s)),
            paused: pause_remaining > 0,
            pause_remaining,
            ts: now_nanos(),
            // One entry, for the first group (nats-server keeps one pin per consumer).
            priority_groups: self
                .config
                .priority_groups
                .first()
                .map(|g| PriorityGroupState {
                    group: g.clone(),
                    pinned_client_id: self.pin.as_ref().map(|p| p.id.clone()).unwrap_or_default(),
                    pinned_ts: self.pin.as_ref().map_or(0, |p| p.since),
                })
                .into_iter()
                .collect(),
            ..ConsumerInfo::default()
        }
    }
}

enum Target<'a> {
    Push(&'a str),
    Pull,
}

/// The filter subjects of a config (`filter_subject` or `filter_subjects`).
pub fn filters_of(c: &ConsumerConfig) -> Vec<String> {
    let mut f: Vec<String> = c.filter_subjects.clone();
    if !c.filter_subject.is_empty() {
        f.push(c.filter_subject.clone());
    }
    f.retain(|s| !s.is_empty() && s != ">");
    f
}

/// A pull request body: empty (batch 1), a bare number, or JSON.
struct NextRequest {
    batch: u64,
    expires_ns: i64,
    max_bytes: u64,
    no_wait: bool,
    heartbeat_ns: i64,
    /// Present when the request is JSON (nats-server checks priority fields then only).
    group: Option<RequestGroup>,
}

fn parse_next(body: &[u8]) -> Result<NextRequest, String> {
    let text = String::from_utf8_lossy(body);
    let text = text.trim();
    let mut r = NextRequest {
        batch: 1,
        expires_ns: 0,
        max_bytes: 0,
        no_wait: false,
        heartbeat_ns: 0,
        group: None,
    };
    if text.is_empty() {
        return Ok(r);
    }
    if let Ok(n) = text.parse::<u64>() {
        r.batch = n.max(1);
        return Ok(r);
    }
    let v: serde_json::Value = serde_json::from_str(text).map_err(|e| e.to_string())?;
    let int = |k: &str| v.get(k).and_then(serde_json::Value::as_i64).unwrap_or(0);
    r.batch = u64::try_from(int("batch")).unwrap_or(0).max(1);
    r.expires_ns = int("expires").max(0);
    r.max_bytes = u64::try_from(int("max_bytes")).unwrap_or(0);
    r.no_wait = v
        .get("no_wait")
        .and_then(serde_json::Value::as_bool)
        .unwrap_or(false);
    r.heartbeat_ns = int("idle_heartbeat").max(0);
    if r.heartbeat_ns > 0 && r.expires_ns > 0 && r.heartbeat_ns * 2 > r.expires_ns {
        return Err("heartbeat value too large".into());
    }
    r.group = Some(RequestGroup::from_json(&v));
    Ok(r)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn next_request_bodies() {
        assert_eq!(parse_next(b"").map(|r| r.batch), Ok(1));
        assert_eq!(parse_next(b"10").map(|r| r.batch), Ok(10));
        let r = parse_next(br#"{"batch":5,"expires":1000000000,"no_wait":true}"#).expect("json");
        assert_eq!((r.batch, r.expires_ns, r.no_wait), (5, 1_000_000_000, true));
        assert!(parse_next(b"{bad").is_err());
        // Priority fields come with JSON requests only.
        assert_eq!(parse_next(b"10").map(|r| r.group), Ok(None));
        let r = parse_next(br#"{"batch":1,"group":"A","min_pending":2,"id":"p","priority":3}"#)
            .expect("json");
        let g = r.group.expect("group");
        assert_eq!(
            (g.group.as_str(), g.min_pending, g.id.as_str(), g.priority),
            ("A", 2, "p", 3)
        );
        assert!(parse_next(br#"{"expires":1000,"idle_heartbeat":900}"#).is_err());
    }
}
