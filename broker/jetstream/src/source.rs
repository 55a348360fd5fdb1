//! Mirrors and sources: a stream that copies another stream's messages (`mirror`, one
//! origin, stored at the origin's sequences and times) or gathers several (`sources`,
//! appended with a `Nats-Stream-Source` header that says where each came from), as
//! nats-server's `stream.go` does it (`setupMirrorConsumer`, `setupSourceConsumer`,
//! `processInboundMirrorMsg`, `processInboundSourceMsg`).
//!
//! Each mirror or source is a task with its own internal connection in the stream's
//! account. It asks the origin for an ephemeral push consumer through the JetStream API
//! (request and reply over that connection, so an origin in another domain or account
//! is reached the same way, through `external.api`), starting after the last origin
//! sequence the stream holds. The consumer acks nothing, sends flow-control requests and
//! a heartbeat every second, and goes away by itself 10 s after the task stops
//! listening. The task checks that consumer and stream sequences follow each other;
//! a gap it cannot explain, a heartbeat that names a delivery it did not see, or 10 s
//! of silence make it recreate the consumer from the last stored origin sequence.
//!
//! The task hands what it received to the stream actor ([`crate::stream::Cmd::Sourced`])
//! and waits for the answer: the actor stores the batch through the same group commit
//! as publishes, so one fsync covers everything that arrived during the previous one,
//! and the task never runs ahead of what is durable. Flow-control replies go out only
//! after the messages before them are stored, which is what slows a fast origin down.
//!
//! After a restart nothing is asked twice or skipped: a mirror resumes after its last
//! sequence (it holds the origin's sequences); a source scans the stream backwards for
//! the newest message whose `Nats-Stream-Source` header names it, as nats-server does.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use crate::ack::AckReply;
use crate::api::errors::{self, ApiError};
use crate::api::types::{
    AckPolicy, ConsumerConfig, CreateConsumerRequest, DeliverPolicy, StreamConfig, StreamSource,
    StreamSourceInfo, SubjectTransformConfig,
};
use crate::bus::{Bus, Conn, Msg};
use crate::headers;
use crate::store::{NewMsg, Store};
use crate::stream::{Cmd, Proposed, Rollup, Stream, blocking};
use crate::time::now_nanos;

/// The header a source puts on each message it appends:
/// `<origin>[:<api hash>] <origin seq> <filter> <transform dest> <original subject>`.
pub const STREAM_SOURCE: &str = "Nats-Stream-Source";
/// The origin's identity hash a nats-server origin answers consumer creates with; the
/// source header carries it as a sixth field.
const STREAM_IDENTITY: &str = "Nats-Stream-Identity";
/// The queue group direct gets are served in, so a stream and its mirrors share them
/// (nats-server's `dgetGroup`).
pub const DIRECT_GET_GROUP: &str = "_sys_";

/// Heartbeat asked of the origin's consumer (`sourceHealthHB`).
const HEARTBEAT: Duration = Duration::from_secs(1);
/// Silence after which the consumer is recreated, and the origin's consumer's
/// `inactive_threshold` (`sourceHealthCheckInterval`).
const STALLED: Duration = Duration::from_secs(10);
/// The least time between two consumer creates (`sourceConsumerRetryThreshold`).
const RETRY_THRESHOLD: Duration = Duration::from_secs(2);
/// How long a consumer create may take. nats-server waits 30 s; a local origin answers
/// at once, and an unanswered request (the API not subscribed yet while the server
/// starts) is better retried soon.
const CREATE_TIMEOUT: Duration = Duration::from_secs(5);
/// A mirror joins its origin's direct gets once fewer than this many messages are left
/// to copy (`dgetCaughtUpThresh`).
const CAUGHT_UP: u64 = 10;
/// Most messages one batch hands to the actor.
const MAX_BATCH: usize = 4096;

// ---------------------------------------------------------------------------------------
// What a task and the actor exchange
// ---------------------------------------------------------------------------------------

/// One message from an origin on its way into the stream.
pub struct Sourced {
    pub subject: String,
    pub hdr: Bytes,
    pub data: Bytes,
    /// Its sequence in the origin.
    pub origin_seq: u64,
    /// Its time in the origin (a mirror keeps it).
    pub ts: i64,
}

/// A batch for the stream actor ([`Cmd::Sourced`]).
pub struct Inbound {
    pub mirror: bool,
    /// Mirror only: the next origin message is at this sequence or later (the origin
    /// no longer has the ones before), so the stream's sequence moves up to it.
    pub skip_to: Option<u64>,
    pub msgs: Vec<Sourced>,
    /// Origin messages still to come after the last one (the consumer's pending count).
    pub pending: u64,
    pub done: oneshot::Sender<Outcome>,
}

/// What the actor did with an [`Inbound`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Everything up to this origin sequence is stored (or was a duplicate).
    Through(u64),
    /// Storing stopped before this origin sequence (a failed commit, a stream limit
    /// with discard new, a sealed stream): ask the origin again from there.
    RetryFrom(u64),
}

// ---------------------------------------------------------------------------------------
// The stream's side: its running sources and their info
// ---------------------------------------------------------------------------------------

/// What a stream's tasks need to reach the server.
struct Ctx {
    bus: Arc<dyn Bus>,
    account: String,
    domain: Option<String>,
    actor: mpsc::UnboundedSender<Cmd>,
}

/// A running mirror or source.
struct Running {
    spec: StreamSource,
    iname: String,
    status: Arc<Mutex<Status>>,
    task: JoinHandle<()>,
}

/// What a task reports for `STREAM.INFO`.
#[derive(Debug, Default)]
struct Status {
    lag: u64,
    /// When the origin was last heard from (a message or heartbeat); 0 if never.
    last: i64,
    error: Option<ApiError>,
    /// The origin's consumer now in use, deleted when the source goes away.
    consumer: String,
}

/// A stream's mirror or sources, owned by its actor. Empty (and inert) until
/// [`Sourcing::new`] gives it a bus, so tests can build streams without one.
#[derive(Default)]
pub struct Sourcing {
    ctx: Option<Ctx>,
    mirror: Option<Running>,
    sources: Vec<Running>,
    /// The origin's direct-get subscriptions a `mirror_direct` mirror answers.
    mirror_direct: Vec<u64>,
}

/// A task never outlives its stream's actor (nor a config that dropped it).
impl Drop for Running {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Sourcing {
    /// The account the stream lives in (empty for a stream built without one, in tests).
    pub fn account(&self) -> &str {
        self.ctx.as_ref().map_or("", |c| c.account.as_str())
    }

    pub fn new(
        bus: Arc<dyn Bus>,
        account: &str,
        domain: Option<String>,
        actor: mpsc::UnboundedSender<Cmd>,
    ) -> Self {
        Self {
            ctx: Some(Ctx {
                bus,
                account: account.to_owned(),
                domain,
                actor,
            }),
            ..Self::default()
        }
    }

    /// Starts and stops tasks so that they match `config` (stream start and update):
    /// sources whose index name is unchanged keep running.
    pub fn reconcile(&mut self, config: &StreamConfig, store: &Arc<dyn Store>, conn: &dyn Conn) {
        let Some(ctx) = &self.ctx else { return };
        let mut mirror_gone = false;
        match (&config.mirror, self.mirror.is_some()) {
            (Some(m), false) => {
                self.mirror = Some(start(ctx, config, m, true, store.clone()));
            }
            (None, true) => {
                if let Some(r) = self.mirror.take() {
                    stop(&r, conn);
                }
                mirror_gone = true;
            }
            _ => {}
        }
        let wanted: Vec<String> = config.sources.iter().map(index_name).collect();
        let (keep, gone): (Vec<Running>, Vec<Running>) = std::mem::take(&mut self.sources)
            .into_iter()
            .partition(|r| wanted.contains(&r.iname));
        for r in &gone {
            stop(r, conn);
        }
        let mut keep = keep;
        for (src, iname) in config.sources.iter().zip(&wanted) {
            if let Some(i) = keep.iter().position(|r| &r.iname == iname) {
                self.sources.push(keep.swap_remove(i));
            } else {
                self.sources
                    .push(start(ctx, config, src, false, store.clone()));
            }
        }
        if mirror_gone || !config.mirror_direct {
            self.stop_mirror_direct(conn);
        }
    }

    /// Stops every task (the stream stops); with `delete`, also removes the origins'
    /// consumers now rather than after their inactivity threshold.
    pub fn stop_all(&mut self, conn: &dyn Conn, delete: bool) {
        let all = self.mirror.take().into_iter().chain(self.sources.drain(..));
        for r in all {
            if delete {
                stop(&r, conn);
            }
        }
        self.stop_mirror_direct(conn);
    }

    /// After a mirror batch: a `mirror_direct` mirror that has (nearly) caught up joins
    /// its origin's direct gets.
    pub fn mirror_progress(&mut self, config: &mut StreamConfig, conn: &dyn Conn, pending: u64) {
        let Some(m) = &config.mirror else { return };
        if !config.mirror_direct || !self.mirror_direct.is_empty() || pending >= CAUGHT_UP {
            return;
        }
        let origin = m.name.clone();
        for s in [
            format!("$JS.API.DIRECT.GET.{origin}"),
            format!("$JS.API.DIRECT.GET.{origin}.>"),
        ] {
            match conn.subscribe(&s, Some(DIRECT_GET_GROUP)) {
                Ok(sid) => self.mirror_direct.push(sid),
                Err(e) => {
                    // nats-server turns mirror direct off when it cannot subscribe.
                    tracing::warn!("mirror direct gets for {origin}: {e}");
                    self.stop_mirror_direct(conn);
                    config.mirror_direct = false;
                    return;
                }
            }
        }
    }

    fn stop_mirror_direct(&mut self, conn: &dyn Conn) {
        for sid in self.mirror_direct.drain(..) {
            conn.unsubscribe(sid);
        }
    }

    /// `StreamInfo.mirror`.
    pub fn mirror_info(&self) -> Option<StreamSourceInfo> {
        self.mirror.as_ref().map(info)
    }

    /// `StreamInfo.sources`, in config order.
    pub fn sources_info(&self) -> Vec<StreamSourceInfo> {
        self.sources.iter().map(info).collect()
    }
}

fn info(r: &Running) -> StreamSourceInfo {
    let st = r.status.lock();
    StreamSourceInfo {
        name: r.spec.name.clone(),
        external: r.spec.external.clone(),
        lag: st.lag,
        active: if st.last == 0 {
            -1
        } else {
            (now_nanos() - st.last).max(0)
        },
        error: st.error.clone(),
        filter_subject: r.spec.filter_subject.clone(),
        subject_transforms: r.spec.subject_transforms.clone(),
    }
}

/// Spawns the task for one mirror or source.
fn start(
    ctx: &Ctx,
    config: &StreamConfig,
    spec: &StreamSource,
    mirror: bool,
    store: Arc<dyn Store>,
) -> Running {
    let status: Arc<Mutex<Status>> = Arc::default();
    let iname = if mirror {
        String::new()
    } else {
        index_name(spec)
    };
    let (tx, rx) = mpsc::unbounded_channel::<Msg>();
    let conn = ctx.bus.connect(
        &ctx.account,
        Box::new(move |m| {
            let _ = tx.send(m);
        }),
    );
    let id = consumer_id(config, spec, &ctx.account, ctx.domain.as_deref(), mirror);
    let task = match conn {
        Ok(conn) => {
            let t = Task {
                stream: config.name.clone(),
                account: ctx.account.clone(),
                domain: ctx.domain.clone(),
                mirror,
                spec: spec.clone(),
                iname: iname.clone(),
                consumer_id: id,
                conn,
                inbox: rx,
                actor: ctx.actor.clone(),
                status: status.clone(),
                store,
                stored: 0,
                ident: String::new(),
                early: std::collections::VecDeque::new(),
            };
            tokio::spawn(t.run())
        }
        Err(e) => {
            status.lock().error = Some(setup_failed(mirror, &e.to_string()));
            tokio::spawn(async {})
        }
    };
    Running {
        spec: spec.clone(),
        iname,
        status,
        task,
    }
}

/// Stops a task and asks the origin to drop its consumer (best effort: an answer is not
/// awaited, and the consumer goes away by itself 10 s later anyway).
fn stop(r: &Running, conn: &dyn Conn) {
    r.task.abort();
    let consumer = std::mem::take(&mut r.status.lock().consumer);
    if consumer.is_empty() {
        return;
    }
    let subject = api_subject(
        &r.spec,
        &format!("CONSUMER.DELETE.{}.{consumer}", r.spec.name),
    );
    // The API ignores requests without a reply; nobody listens on this one.
    let reply = format!("$JSC.R.{}", get_hash(&crate::time::nuid()));
    conn.publish(&subject, Some(&reply), &[], &[]);
}

// ---------------------------------------------------------------------------------------
// Names
// ---------------------------------------------------------------------------------------

/// nats-server's `getHash`: 8 characters from the SHA-256 of `name`.
pub fn get_hash(name: &str) -> String {
    const DIGITS: &[u8] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let d = ring::digest::digest(&ring::digest::SHA256, name.as_bytes());
    d.as_ref()[..8]
        .iter()
        .map(|b| DIGITS[usize::from(*b) % DIGITS.len()] as char)
        .collect()
}

/// A source's index name (nats-server's `composeIName`): the origin (with a hash of its
/// API prefix when external), its filter or transform sources, and the transform
/// destinations, each empty one as `>`, several joined by a form feed. The source
/// header repeats its parts, which is how a restart finds each source's position.
pub fn index_name(s: &StreamSource) -> String {
    let mut name = s.name.clone();
    if let Some(ext) = &s.external {
        name = format!("{name}:{}", get_hash(&ext.api));
    }
    if let Some(c) = &s.consumer {
        name = format!("{name}:C={}", get_hash(&c.name));
    }
    let or_all = |v: &str| {
        if v.is_empty() {
            ">".to_owned()
        } else {
            v.to_owned()
        }
    };
    let (src, dest) = if s.subject_transforms.is_empty() {
        (or_all(&s.filter_subject), ">".to_owned())
    } else {
        let srcs: Vec<String> = s
            .subject_transforms
            .iter()
            .map(|t| or_all(&t.src))
            .collect();
        let dests: Vec<String> = s
            .subject_transforms
            .iter()
            .map(|t| or_all(&t.dest))
            .collect();
        (srcs.join("\u{c}"), dests.join("\u{c}"))
    };
    format!("{name} {src} {dest}")
}

/// The stable part of the origin consumer's name (`createStableConsumerHash`, and for a
/// source whose origin appears twice, its index name too).
fn consumer_id(
    config: &StreamConfig,
    spec: &StreamSource,
    account: &str,
    domain: Option<&str>,
    mirror: bool,
) -> String {
    let mut id = format!("{} {account}", config.name);
    if let Some(d) = domain {
        id = format!("{id} {d}");
    }
    if !mirror
        && config
            .sources
            .iter()
            .filter(|s| s.name == spec.name)
            .count()
            > 1
    {
        id = format!("{id} {}", index_name(spec));
    }
    get_hash(&id)
}

/// `$JS.API.<rest>`, or under the source's external API prefix.
fn api_subject(spec: &StreamSource, rest: &str) -> String {
    match spec.external.as_ref().filter(|e| !e.api.is_empty()) {
        Some(ext) => format!("{}.{rest}", ext.api).replace("..", "."),
        None => format!("$JS.API.{rest}"),
    }
}

/// The position a `Nats-Stream-Source` header records (nats-server's `streamAndSeq`):
/// (origin name, index name or "" for the old two-field form, origin sequence).
fn parse_source_header(v: &str) -> Option<(String, String, u64)> {
    if v.starts_with("$JS.ACK.") {
        // The oldest form: the origin's ack reply.
        let a = AckReply::parse(v)?;
        return Some((a.stream.to_owned(), String::new(), a.stream_seq));
    }
    let f: Vec<&str> = v.split(' ').collect();
    match f.len() {
        2 => Some((f[0].to_owned(), String::new(), f[1].parse().ok()?)),
        n if n >= 4 => Some((
            f[0].to_owned(),
            format!("{} {} {}", f[0], f[2], f[3]),
            f[1].parse().ok()?,
        )),
        _ => None,
    }
}

/// The newest origin sequence the stream holds from the source `iname` (`spec`), found
/// by scanning back for its `Nats-Stream-Source` header; 0 if none.
fn last_sourced(store: &dyn Store, spec: &StreamSource, iname: &str) -> u64 {
    let state = store.state();
    if state.msgs == 0 {
        return 0;
    }
    let legacy_name = spec
        .external
        .as_ref()
        .map(|e| format!("{}:{}", spec.name, get_hash(&e.api)));
    let mut seq = state.last_seq;
    while seq >= state.first_seq && seq > 0 {
        let Ok(Some(m)) = store.load_last(">", Some(seq)) else {
            break;
        };
        seq = m.seq.saturating_sub(1);
        if m.hdr.is_empty() {
            continue;
        }
        let Some((name, found, origin_seq)) =
            headers::get(&m.hdr, STREAM_SOURCE).and_then(parse_source_header)
        else {
            continue;
        };
        let legacy = found.is_empty()
            && (name == spec.name || legacy_name.as_deref() == Some(name.as_str()));
        if found == iname || legacy {
            return origin_seq;
        }
    }
    0
}

/// A direct get on the origin's subject (`$JS.API.DIRECT.GET.<origin>[.<subject>]`)
/// rewritten to the mirror's own, so the mirror serves it from its store.
pub fn mirror_direct_subject(subject: &str, origin: &str, mirror: &str) -> Option<String> {
    let rest = subject.strip_prefix("$JS.API.DIRECT.GET.")?;
    let tail = rest.strip_prefix(origin)?;
    if !tail.is_empty() && !tail.starts_with('.') {
        return None;
    }
    Some(format!("$JS.API.DIRECT.GET.{mirror}{tail}"))
}

/// The stream's own `subject_transform`, applied to everything it stores (publishes and
/// sourced messages alike): a subject its source does not match stays as it is.
pub fn input_subject(config: &StreamConfig, subject: &str) -> Option<String> {
    let tr = config.subject_transform.as_ref()?;
    transform(tr, subject)
}

fn transform(tr: &SubjectTransformConfig, subject: &str) -> Option<String> {
    let src = if tr.src.is_empty() { ">" } else { &tr.src };
    if !crate::subject::matches(src, subject) {
        return None;
    }
    if tr.dest.is_empty() {
        return Some(subject.to_owned());
    }
    crate::transform::apply(src, &tr.dest, subject)
}

/// A header block without the pairs whose key starts with one of `prefixes` (case
/// sensitive, as nats-server's `removeHeaderIfPrefixPresent`); empty if none remain.
fn strip_prefixed(block: &[u8], prefixes: &[&str]) -> Bytes {
    let Ok(text) = std::str::from_utf8(block) else {
        return Bytes::copy_from_slice(block);
    };
    if !prefixes.iter().any(|p| text.contains(p)) {
        return Bytes::copy_from_slice(block);
    }
    let mut lines = text.split("\r\n");
    let first = lines.next().unwrap_or("NATS/1.0");
    let mut out = format!("{first}\r\n");
    let mut kept = 0;
    for line in lines {
        if line.is_empty() || prefixes.iter().any(|p| line.starts_with(p)) {
            continue;
        }
        out.push_str(line);
        out.push_str("\r\n");
        kept += 1;
    }
    if kept == 0 {
        return Bytes::new();
    }
    out.push_str("\r\n");
    Bytes::from(out)
}

fn setup_failed(mirror: bool, text: &str) -> ApiError {
    if mirror {
        errors::mirror_consumer_setup_failed(text)
    } else {
        errors::source_consumer_setup_failed(text)
    }
}

// ---------------------------------------------------------------------------------------
// The task
// ---------------------------------------------------------------------------------------

/// Why following a consumer ended.
enum Ended {
    /// Recreate the consumer (after the usual delay).
    Retry,
}

/// The origin's consumer as the create answered it.
struct Active {
    name: String,
    sid: u64,
    /// Its starting point: the origin sequence before the first it will send.
    delivered_stream: u64,
}

struct Task {
    stream: String,
    account: String,
    domain: Option<String>,
    mirror: bool,
    spec: StreamSource,
    iname: String,
    consumer_id: String,
    conn: Arc<dyn Conn>,
    inbox: mpsc::UnboundedReceiver<Msg>,
    actor: mpsc::UnboundedSender<Cmd>,
    status: Arc<Mutex<Status>>,
    store: Arc<dyn Store>,
    /// Source only: the last origin sequence stored here (or skipped as a duplicate).
    stored: u64,
    /// The origin's identity, when it tells (a nats-server origin does).
    ident: String,
    /// What the consumer sent before its create was answered.
    early: std::collections::VecDeque<Msg>,
}

impl Task {
    async fn run(mut self) {
        if !self.mirror {
            let store = self.store.clone();
            let spec = self.spec.clone();
            let iname = self.iname.clone();
            self.stored = blocking(move || Ok(last_sourced(store.as_ref(), &spec, &iname)))
                .await
                .unwrap_or(0);
        }
        let mut fails: u32 = 0;
        let mut last_request: Option<Instant> = None;
        loop {
            // First a short pause (nats-server's jitter), then no more often than every
            // 2 s, backing off by 10 s per failure up to 2 minutes.
            let mut delay = Duration::from_millis(100 + fastrand::u64(..100));
            if let Some(t) = last_request {
                delay += RETRY_THRESHOLD.saturating_sub(t.elapsed());
                delay += (Duration::from_secs(10) * fails).min(Duration::from_secs(120));
            }
            tokio::time::sleep(delay).await;
            last_request = Some(Instant::now());
            match self.create().await {
                Ok(active) => {
                    fails = 0;
                    let Ended::Retry = self.follow(active).await;
                }
                Err(e) => {
                    fails = fails.saturating_add(1);
                    tracing::warn!(
                        stream = %self.stream,
                        origin = %self.spec.name,
                        "JetStream error response for create {} consumer: {}",
                        if self.mirror { "mirror" } else { "source" },
                        e.description
                    );
                    self.status.lock().error = Some(e);
                }
            }
        }
    }

    /// The consumer create request for the current position.
    fn request(&self, deliver: &str) -> CreateConsumerRequest {
        let mut c = ConsumerConfig {
            name: format!(
                "{}_{}_{}",
                if self.mirror { "JS_MIRROR" } else { "JS_SRC" },
                self.consumer_id,
                get_hash(&crate::time::nuid())
            ),
            deliver_subject: deliver.to_owned(),
            ack_policy: AckPolicy::None,
            ack_wait: 22 * 3600 * 1_000_000_000,
            max_deliver: 1,
            idle_heartbeat: i64::try_from(HEARTBEAT.as_nanos()).unwrap_or(i64::MAX),
            flow_control: true,
            direct: true,
            inactive_threshold: i64::try_from(STALLED.as_nanos()).unwrap_or(i64::MAX),
            ..ConsumerConfig::default()
        };
        let kind = if self.mirror { "mirror" } else { "src" };
        c.metadata
            .insert(format!("_nats.{kind}.stream"), self.stream.clone());
        c.metadata
            .insert(format!("_nats.{kind}.acc"), self.account.clone());
        if let Some(d) = &self.domain {
            c.metadata.insert(format!("_nats.{kind}.domain"), d.clone());
        }
        let state = self.store.state();
        if self.mirror {
            // A mirror holds the origin's sequences: go on after its last one, or the
            // first time from where the config says.
            if state.last_seq == 0 {
                if self.spec.opt_start_seq > 0 {
                    c.deliver_policy = DeliverPolicy::ByStartSequence;
                    c.opt_start_seq = self.spec.opt_start_seq;
                } else if let Some(t) = self.spec.opt_start_time {
                    c.deliver_policy = DeliverPolicy::ByStartTime;
                    c.opt_start_time = Some(t);
                }
            } else {
                c.deliver_policy = DeliverPolicy::ByStartSequence;
                c.opt_start_seq = state.last_seq + 1;
            }
            c.filter_subject.clone_from(&self.spec.filter_subject);
            let srcs: Vec<String> = self
                .spec
                .subject_transforms
                .iter()
                .map(|t| t.src.clone())
                .collect();
            if c.filter_subject.is_empty() && srcs.len() == 1 {
                c.filter_subject.clone_from(&srcs[0]);
            } else if !srcs.is_empty() {
                c.filter_subjects = srcs;
            }
        } else {
            let seq = self.stored + 1;
            if seq > 1 {
                c.deliver_policy = DeliverPolicy::ByStartSequence;
                c.opt_start_seq = seq;
            } else if self.spec.opt_start_seq > 0 {
                c.deliver_policy = DeliverPolicy::ByStartSequence;
                c.opt_start_seq = self.spec.opt_start_seq;
            } else if let Some(t) = self.spec.opt_start_time {
                // Not before what the stream already holds (its last message's time).
                c.deliver_policy = DeliverPolicy::ByStartTime;
                c.opt_start_time = Some(if state.last_ts != 0 && t < state.last_ts {
                    state.last_ts
                } else {
                    t
                });
            } else if state.first_seq > 1 && state.last_ts != 0 {
                // Messages were stored and are gone (purged, expired): nothing tells
                // where this source was, so go on from the newest time held.
                c.deliver_policy = DeliverPolicy::ByStartTime;
                c.opt_start_time = Some(state.last_ts);
            }
            c.filter_subject.clone_from(&self.spec.filter_subject);
            let srcs: Vec<String> = self
                .spec
                .subject_transforms
                .iter()
                .map(|t| t.src.clone())
                .collect();
            if srcs.len() == 1 {
                c.filter_subject.clone_from(&srcs[0]);
            } else {
                c.filter_subjects = srcs;
            }
        }
        CreateConsumerRequest {
            stream_name: self.spec.name.clone(),
            config: c,
            ..CreateConsumerRequest::default()
        }
    }

    /// Asks the origin for a consumer and subscribes its deliver subject.
    async fn create(&mut self) -> Result<Active, ApiError> {
        if self.spec.consumer.is_some() {
            // Durable sourcing resets a consumer the user made (2.14's `CONSUMER.RESET`
            // and `ack_policy: flow_control`, API level 4): not implemented.
            return Err(setup_failed(
                self.mirror,
                "sourcing through a durable consumer is not supported",
            ));
        }
        let rand = get_hash(&crate::time::nuid());
        let kind = if self.mirror { "M" } else { "S" };
        let deliver = match self
            .spec
            .external
            .as_ref()
            .filter(|e| !e.deliver.is_empty())
        {
            Some(ext) => format!("{}.{kind}.{rand}", ext.deliver).replace("..", "."),
            None => format!("$JS.{kind}.{rand}"),
        };
        let req = self.request(&deliver);
        let rest = if req.config.filter_subject.is_empty() {
            format!("CONSUMER.CREATE.{}", self.spec.name)
        } else {
            format!(
                "CONSUMER.CREATE.{}.{}.{}",
                self.spec.name, req.config.name, req.config.filter_subject
            )
        };
        let subject = api_subject(&self.spec, &rest);
        let body =
            serde_json::to_vec(&req).map_err(|e| setup_failed(self.mirror, &e.to_string()))?;
        // The deliver subject is listened on before asking, so the consumer starts
        // sending at once (it sends only while someone listens); what arrives before the
        // answer is kept for `follow`.
        let sid = self
            .conn
            .subscribe(&deliver, None)
            .map_err(|e| setup_failed(self.mirror, &e.to_string()))?;
        let active = match self.ask(&subject, &body, sid).await {
            Ok(m) => self.created(&m, sid),
            Err(e) => Err(e),
        };
        if active.is_err() {
            self.conn.unsubscribe(sid);
            self.early.clear();
        }
        active
    }

    /// Sends the create request and waits for its answer, keeping what the new
    /// consumer (`sid`) sends meanwhile.
    async fn ask(&mut self, subject: &str, body: &[u8], sid: u64) -> Result<Msg, ApiError> {
        let reply = format!("$JSC.R.{}", get_hash(&crate::time::nuid()));
        let rsid = self
            .conn
            .subscribe(&reply, None)
            .map_err(|e| setup_failed(self.mirror, &e.to_string()))?;
        self.conn.publish(subject, Some(&reply), &[], body);
        self.early.clear();
        let early = &mut self.early;
        let inbox = &mut self.inbox;
        let answer = tokio::time::timeout(CREATE_TIMEOUT, async {
            while let Some(m) = inbox.recv().await {
                if m.sid == rsid {
                    return Some(m);
                }
                if m.sid == sid {
                    early.push_back(m);
                }
                // Anything else is from a consumer given up on.
            }
            None
        })
        .await;
        self.conn.unsubscribe(rsid);
        match answer {
            Ok(Some(m)) => Ok(m),
            Ok(None) => Err(setup_failed(self.mirror, "connection closed")),
            Err(_) => Err(setup_failed(
                self.mirror,
                "timeout waiting for consumer create response",
            )),
        }
    }

    /// Reads a create answer: the consumer's name and starting point, or the error.
    fn created(&mut self, m: &Msg, sid: u64) -> Result<Active, ApiError> {
        let v: serde_json::Value = serde_json::from_slice(&m.payload)
            .map_err(|_| errors::invalid_json("invalid consumer create response"))?;
        if let Some(e) = v.get("error") {
            let e: ApiError = serde_json::from_value(e.clone())
                .unwrap_or_else(|_| setup_failed(self.mirror, "invalid consumer create response"));
            return Err(e);
        }
        let name = v.get("name").and_then(|n| n.as_str()).unwrap_or_default();
        if name.is_empty() {
            return Err(setup_failed(
                self.mirror,
                "invalid consumer create response",
            ));
        }
        let mut delivered_stream = v
            .get("delivered")
            .and_then(|d| d.get("stream_seq"))
            .and_then(serde_json::Value::as_u64)
            .unwrap_or(0);
        // An origin that answers after it started sending: its starting point is before
        // the first message it sent.
        if let Some(first) = self
            .early
            .iter()
            .filter_map(|m| m.reply.as_deref().and_then(AckReply::parse))
            .map(|a| a.stream_seq)
            .next()
        {
            delivered_stream = delivered_stream.min(first.saturating_sub(1));
        }
        if !m.headers.is_empty()
            && let Some(id) = headers::get(&m.headers, STREAM_IDENTITY)
        {
            id.clone_into(&mut self.ident);
        }
        {
            let mut st = self.status.lock();
            st.error = None;
            name.clone_into(&mut st.consumer);
            // Heard from now: the stall clock starts here.
            st.last = now_nanos();
        }
        Ok(Active {
            name: name.to_owned(),
            sid,
            delivered_stream,
        })
    }

    /// Receives from the consumer until it must be recreated.
    async fn follow(&mut self, active: Active) -> Ended {
        let ended = self.follow_inner(&active).await;
        self.conn.unsubscribe(active.sid);
        ended
    }

    async fn follow_inner(&mut self, active: &Active) -> Ended {
        // Consumer and origin sequences of the last message taken.
        let mut dseq: u64 = 0;
        let mut sseq: u64 = if self.mirror {
            self.store.state().last_seq.max(active.delivered_stream)
        } else {
            self.stored.max(active.delivered_stream)
        };
        let mut skip_to = None;
        if self.mirror && active.delivered_stream > self.store.state().last_seq {
            // The origin has nothing before this any more: the mirror moves up to it.
            skip_to = Some(active.delivered_stream + 1);
        }
        let mut check = tokio::time::interval(Duration::from_secs(1));
        check.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut batch: Vec<Sourced> = Vec::new();
        let mut pending = 0;
        if skip_to.is_some()
            && let Err(e) = self.hand_over(&mut batch, &mut skip_to, pending).await
        {
            return e;
        }
        loop {
            let early = self.early.pop_front();
            let first = if early.is_some() {
                early
            } else {
                tokio::select! {
                    m = self.inbox.recv() => m,
                    _ = check.tick() => {
                        if self.stalled() {
                            tracing::debug!(stream = %self.stream, origin = %self.spec.name, "source stalled, recreating its consumer");
                            return Ended::Retry;
                        }
                        continue;
                    }
                }
            };
            let Some(first) = first else {
                // The connection is gone: nothing more will come.
                std::future::pending::<()>().await;
                return Ended::Retry;
            };
            let mut next = Some(first);
            while let Some(m) = next.take() {
                if m.sid == active.sid {
                    self.status.lock().last = now_nanos();
                    if let Err(e) = self
                        .take(
                            m,
                            active,
                            &mut dseq,
                            &mut sseq,
                            &mut batch,
                            &mut pending,
                            &mut skip_to,
                        )
                        .await
                    {
                        return e;
                    }
                }
                if batch.len() < MAX_BATCH {
                    next = self
                        .early
                        .pop_front()
                        .or_else(|| self.inbox.try_recv().ok());
                }
            }
            if let Err(e) = self.hand_over(&mut batch, &mut skip_to, pending).await {
                return e;
            }
        }
    }

    /// Nothing from the origin (not even a heartbeat) for [`STALLED`].
    fn stalled(&self) -> bool {
        let last = self.status.lock().last;
        now_nanos() - last > i64::try_from(STALLED.as_nanos()).unwrap_or(i64::MAX)
    }

    /// One message from the consumer: a control message is answered (after what came
    /// before it is stored), a data message joins the batch.
    #[allow(clippy::too_many_arguments)]
    async fn take(
        &mut self,
        m: Msg,
        active: &Active,
        dseq: &mut u64,
        sseq: &mut u64,
        batch: &mut Vec<Sourced>,
        pending: &mut u64,
        skip_to: &mut Option<u64>,
    ) -> Result<(), Ended> {
        let control = m.payload.is_empty() && m.headers.starts_with(b"NATS/1.0 100 ");
        if control {
            self.hand_over(batch, skip_to, *pending).await?;
            if let Some(reply) = &m.reply {
                // Flow control: everything before it is stored, so the origin may go on.
                let hdr = headers::Builder::new()
                    .add(headers::LAST_CONSUMER, *dseq)
                    .add(headers::LAST_STREAM, *sseq)
                    .build();
                self.conn.publish(reply, None, &hdr, &[]);
                return Ok(());
            }
            let last = headers::get(&m.headers, headers::LAST_CONSUMER)
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0);
            if last > 0 && last != *dseq {
                // The origin sent messages that did not arrive.
                tracing::debug!(stream = %self.stream, origin = %self.spec.name, "source missed messages, recreating its consumer");
                return Err(Ended::Retry);
            }
            if let Some(fc) = headers::get(&m.headers, headers::CONSUMER_STALLED) {
                // The origin waits for a flow-control reply we answered already, or
                // that was lost: answer it again.
                self.conn.publish(fc, None, &[], &[]);
            }
            return Ok(());
        }
        let Some(ack) = m.reply.as_deref().and_then(AckReply::parse) else {
            return Ok(());
        };
        if ack.consumer != active.name || ack.delivered > 1 {
            return Ok(());
        }
        if ack.stream_seq <= *sseq {
            // Already here.
            if ack.consumer_seq == *dseq + 1 {
                *dseq += 1;
            }
            return Ok(());
        }
        if self.mirror {
            // A mirror takes the next sequence, or a later one when the consumer sequence
            // shows the origin has nothing in between (deleted or expired messages).
            if ack.stream_seq != *sseq + 1 && ack.consumer_seq != *dseq + 1 {
                self.hand_over(batch, skip_to, *pending).await?;
                return Err(Ended::Retry);
            }
        } else if ack.consumer_seq != *dseq + 1 {
            // A source only checks that no delivery was lost.
            self.hand_over(batch, skip_to, *pending).await?;
            return Err(Ended::Retry);
        }
        *dseq = ack.consumer_seq;
        *sseq = ack.stream_seq;
        *pending = ack.pending;
        self.status.lock().lag = ack.pending.saturating_sub(1);
        let mut subject = m.subject;
        let hdr = if self.mirror {
            // Expected-sequence headers were checked by the origin; batches are not
            // mirrored as batches.
            strip_prefixed(&m.headers, &["Nats-Expected-", "Nats-Batch-"])
        } else {
            let mut hdr = if m.headers.is_empty() {
                Bytes::new()
            } else {
                let h = headers::without(&m.headers, &[STREAM_SOURCE]);
                strip_prefixed(&h, &["Nats-Expected-", "Nats-Batch-"])
            };
            let value = self.source_header(&subject, ack.stream_seq);
            hdr = Bytes::from(
                headers::Builder::from_block(&hdr)
                    .add(STREAM_SOURCE, value)
                    .build(),
            );
            hdr
        };
        for tr in &self.spec.subject_transforms {
            if let Some(s) = transform(tr, &subject) {
                subject = s;
                break;
            }
        }
        batch.push(Sourced {
            subject,
            hdr,
            data: m.payload,
            origin_seq: ack.stream_seq,
            ts: ack.ts,
        });
        Ok(())
    }

    /// `<origin> <seq> <filter> <dest> <subject>[ <ident>]` (nats-server's
    /// `genSourceHeader`), from the index name's parts.
    fn source_header(&self, subject: &str, seq: u64) -> String {
        let mut parts = self.iname.split(' ');
        let name = parts.next().unwrap_or_default();
        let filter = parts.next().unwrap_or(">");
        let dest = parts.next().unwrap_or(">");
        let mut v = format!("{name} {seq} {filter} {dest} {subject}");
        if !self.ident.is_empty() {
            v.push(' ');
            v.push_str(&self.ident);
        }
        v
    }

    /// Hands the batch to the actor and waits until it is stored.
    async fn hand_over(
        &mut self,
        batch: &mut Vec<Sourced>,
        skip_to: &mut Option<u64>,
        pending: u64,
    ) -> Result<(), Ended> {
        if batch.is_empty() && skip_to.is_none() {
            return Ok(());
        }
        let (done, rx) = oneshot::channel();
        let inbound = Inbound {
            mirror: self.mirror,
            skip_to: skip_to.take(),
            msgs: std::mem::take(batch),
            pending,
            done,
        };
        if self.actor.send(Cmd::Sourced(inbound)).is_err() {
            // The stream is gone; its owner stops this task.
            std::future::pending::<()>().await;
        }
        match rx.await {
            Ok(Outcome::Through(seq)) => {
                self.stored = self.stored.max(seq);
                Ok(())
            }
            Ok(Outcome::RetryFrom(seq)) => {
                self.stored = seq.saturating_sub(1);
                Err(Ended::Retry)
            }
            Err(_) => Err(Ended::Retry),
        }
    }
}

// ---------------------------------------------------------------------------------------
// The actor's side: storing what a task handed over
// ---------------------------------------------------------------------------------------

/// Stores a batch from a mirror or source task ([`Cmd::Sourced`]) and answers it.
pub(crate) async fn store(s: &mut Stream, inbound: Inbound) {
    let Inbound {
        mirror,
        skip_to,
        msgs,
        pending,
        done,
    } = inbound;
    let outcome = if mirror {
        store_mirrored(s, skip_to, msgs).await
    } else {
        store_sourced(s, msgs).await
    };
    if mirror && matches!(outcome, Outcome::Through(_)) {
        let conn = s.conn.clone();
        s.sourcing
            .mirror_progress(&mut s.config, conn.as_ref(), pending);
    }
    let _ = done.send(outcome);
}

/// The rollup a stored message asks for, where the stream allows rollups (a sourced
/// message that asks without permission is stored as it is, as nats-server does).
fn rollup_of(config: &StreamConfig, hdr: &[u8]) -> Option<Rollup> {
    if hdr.is_empty() || !config.allow_rollup_hdrs || config.deny_purge {
        return None;
    }
    match headers::get(hdr, headers::ROLLUP)? {
        "sub" => Some(Rollup::Subject),
        "all" => Some(Rollup::All),
        _ => None,
    }
}

/// A sourced message's TTL: its `Nats-TTL`, where the stream keeps TTLs.
fn ttl_of(config: &StreamConfig, hdr: &[u8]) -> Option<i64> {
    if hdr.is_empty() || !config.allow_msg_ttl {
        return None;
    }
    headers::get(hdr, headers::TTL).and_then(crate::stream::parse_ttl)
}

fn proposed(s: &Stream, m: Sourced, ts: i64) -> Proposed {
    let subject = input_subject(&s.config, &m.subject).unwrap_or(m.subject);
    let msg_id = if m.hdr.is_empty() {
        None
    } else {
        headers::get(&m.hdr, headers::MSG_ID).map(str::to_owned)
    };
    Proposed {
        rollup: rollup_of(&s.config, &m.hdr),
        msg: NewMsg {
            ttl: ttl_of(&s.config, &m.hdr),
            subject,
            ts,
            hdr: m.hdr,
            data: m.data,
        },
        reply: None,
        msg_id,
    }
}

/// A mirror stores each message at its origin sequence and time: sequences it already
/// has are ignored, and a gap (messages the origin no longer has) moves the stream's
/// sequence up first.
async fn store_mirrored(s: &mut Stream, skip_to: Option<u64>, msgs: Vec<Sourced>) -> Outcome {
    let mut next = s.store.state().last_seq + 1;
    if let Some(to) = skip_to.filter(|to| *to > next) {
        let store = s.store.clone();
        if let Err(e) = blocking(move || store.skip_to(to)).await {
            tracing::error!(stream = %s.name, "mirror skipping to {to}: {e}");
            return Outcome::RetryFrom(next);
        }
        next = to;
    }
    let mut batch: Vec<Proposed> = Vec::new();
    let mut batch_first = next;
    for m in msgs {
        if m.origin_seq < next {
            continue;
        }
        if m.origin_seq > next {
            if !batch.is_empty() && !s.commit(std::mem::take(&mut batch)).await {
                return Outcome::RetryFrom(batch_first);
            }
            let to = m.origin_seq;
            let store = s.store.clone();
            if let Err(e) = blocking(move || store.skip_to(to)).await {
                tracing::error!(stream = %s.name, "mirror skipping to {to}: {e}");
                return Outcome::RetryFrom(next);
            }
            next = to;
        }
        if batch.is_empty() {
            batch_first = next;
        }
        let ts = m.ts;
        let p = proposed(s, m, ts);
        let rollup = p.rollup.is_some();
        batch.push(p);
        next += 1;
        if rollup && !s.commit(std::mem::take(&mut batch)).await {
            return Outcome::RetryFrom(batch_first);
        }
    }
    if !batch.is_empty() && !s.commit(batch).await {
        return Outcome::RetryFrom(batch_first);
    }
    Outcome::Through(next - 1)
}

/// A source appends: duplicates (by `Nats-Msg-Id`) are skipped, and what the stream
/// refuses (sealed, too large, a discard-new limit) stops the batch there, to be asked
/// for again later.
async fn store_sourced(s: &mut Stream, msgs: Vec<Sourced>) -> Outcome {
    let state = s.store.state();
    let (mut count, mut bytes, mut last_ts) = (state.msgs, state.bytes, state.last_ts);
    let mut batch: Vec<Proposed> = Vec::new();
    let mut batch_first = 0;
    let mut ids: HashSet<String> = HashSet::new();
    let mut through = 0;
    for m in msgs {
        let seq = m.origin_seq;
        if let Some(reason) = refusal(s, &m, count, bytes) {
            tracing::debug!(stream = %s.name, seq, "sourced message not stored: {reason}");
            if !batch.is_empty() && !s.commit(std::mem::take(&mut batch)).await {
                return Outcome::RetryFrom(batch_first);
            }
            return Outcome::RetryFrom(seq);
        }
        let ts = now_nanos().max(last_ts);
        let p = proposed(s, m, ts);
        if let Some(id) = &p.msg_id
            && (ids.contains(id) || s.duplicate_of(id).is_some())
        {
            through = seq;
            continue;
        }
        if let Some(id) = &p.msg_id {
            ids.insert(id.clone());
        }
        last_ts = ts;
        count += 1;
        bytes += (s.store.msg_size())(&p.msg.subject, &p.msg.hdr, &p.msg.data);
        if batch.is_empty() {
            batch_first = seq;
        }
        let rollup = p.rollup.is_some();
        batch.push(p);
        through = seq;
        if rollup {
            if !s.commit(std::mem::take(&mut batch)).await {
                return Outcome::RetryFrom(batch_first);
            }
            let st = s.store.state();
            (count, bytes) = (st.msgs, st.bytes);
        }
    }
    if !batch.is_empty() && !s.commit(batch).await {
        return Outcome::RetryFrom(batch_first);
    }
    Outcome::Through(through)
}

/// Why the stream would not store a sourced message now, if it would not.
fn refusal(s: &Stream, m: &Sourced, msgs: u64, bytes: u64) -> Option<&'static str> {
    let cfg = &s.config;
    if cfg.sealed {
        return Some("stream sealed");
    }
    let len = m.hdr.len() + m.data.len();
    if cfg.max_msg_size >= 0 && len as i64 > i64::from(cfg.max_msg_size) {
        return Some("message size exceeds maximum allowed");
    }
    if m.hdr.len() > usize::from(u16::MAX) {
        return Some("header size exceeds maximum allowed");
    }
    if cfg.discard == crate::api::types::DiscardPolicy::New {
        let size = (s.store.msg_size())(&m.subject, &m.hdr, &m.data);
        if cfg.max_msgs > 0 && msgs >= cfg.max_msgs.unsigned_abs() {
            return Some("maximum messages exceeded");
        }
        if cfg.max_bytes > 0 && bytes + size > cfg.max_bytes.unsigned_abs() {
            return Some("maximum bytes exceeded");
        }
        if cfg.discard_new_per_subject && cfg.max_msgs_per_subject > 0 {
            let have = s
                .store
                .subjects(&m.subject)
                .ok()
                .and_then(|c| c.get(&m.subject).copied())
                .unwrap_or(0);
            if have >= cfg.max_msgs_per_subject.unsigned_abs() {
                return Some("maximum messages per subject exceeded");
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::api::types::ExternalStream;

    #[test]
    fn hashes_as_nats_server() {
        // getHash is 8 characters of [0-9A-Za-z].
        let h = get_hash("ORDERS $G");
        assert_eq!(h.len(), 8);
        assert!(h.chars().all(|c| c.is_ascii_alphanumeric()));
        // Values from nats-server's own getHash.
        assert_eq!(h, "fgBam8pM");
        assert_eq!(get_hash("$JS.hub.API"), "bTMUkJQk");
        assert_eq!(get_hash("2024-01-01T00:00:00.000000001Z"), "ufQq7U02");
    }

    #[test]
    fn index_names() {
        let plain = StreamSource {
            name: "O".into(),
            ..StreamSource::default()
        };
        assert_eq!(index_name(&plain), "O > >");
        let filtered = StreamSource {
            name: "O".into(),
            filter_subject: "a.*".into(),
            ..StreamSource::default()
        };
        assert_eq!(index_name(&filtered), "O a.* >");
        let tr = StreamSource {
            name: "O".into(),
            subject_transforms: vec![
                SubjectTransformConfig {
                    src: "a.>".into(),
                    dest: "b.>".into(),
                },
                SubjectTransformConfig {
                    src: "c".into(),
                    dest: String::new(),
                },
            ],
            ..StreamSource::default()
        };
        assert_eq!(index_name(&tr), "O a.>\u{c}c b.>\u{c}>");
        let ext = StreamSource {
            name: "O".into(),
            external: Some(ExternalStream {
                api: "$JS.hub.API".into(),
                deliver: String::new(),
            }),
            ..StreamSource::default()
        };
        assert_eq!(
            index_name(&ext),
            format!("O:{} > >", get_hash("$JS.hub.API"))
        );
        assert_eq!(
            api_subject(&ext, "CONSUMER.CREATE.O"),
            "$JS.hub.API.CONSUMER.CREATE.O"
        );
        assert_eq!(
            api_subject(&plain, "CONSUMER.CREATE.O"),
            "$JS.API.CONSUMER.CREATE.O"
        );
    }

    #[test]
    fn source_headers() {
        assert_eq!(
            parse_source_header("O 12 > > orders.1"),
            Some(("O".into(), "O > >".into(), 12))
        );
        assert_eq!(
            parse_source_header("O 12 a.* > a.b xYz12345"),
            Some(("O".into(), "O a.* >".into(), 12))
        );
        assert_eq!(
            parse_source_header("O 7"),
            Some(("O".into(), String::new(), 7))
        );
        assert_eq!(
            parse_source_header("$JS.ACK.O.C.1.9.3.100.0"),
            Some(("O".into(), String::new(), 9))
        );
        assert_eq!(parse_source_header("O 7 x"), None);
        assert_eq!(parse_source_header("O x > > s"), None);
    }

    #[test]
    fn transforms_and_headers() {
        let tr = SubjectTransformConfig {
            src: "a.*".into(),
            dest: "b.{{wildcard(1)}}".into(),
        };
        assert_eq!(transform(&tr, "a.x").as_deref(), Some("b.x"));
        assert_eq!(transform(&tr, "c.x"), None);
        let keep = SubjectTransformConfig {
            src: String::new(),
            dest: String::new(),
        };
        assert_eq!(transform(&keep, "c.x").as_deref(), Some("c.x"));
        let h = b"NATS/1.0\r\nNats-Expected-Last-Sequence: 4\r\nA: b\r\n\r\n";
        assert_eq!(
            &strip_prefixed(h, &["Nats-Expected-"])[..],
            b"NATS/1.0\r\nA: b\r\n\r\n"
        );
        let only = b"NATS/1.0\r\nNats-Batch-Id: x\r\n\r\n";
        assert!(strip_prefixed(only, &["Nats-Batch-"]).is_empty());
        assert_eq!(&strip_prefixed(h, &["X-"])[..], &h[..]);
        assert_eq!(
            mirror_direct_subject("$JS.API.DIRECT.GET.KV_A.$KV.A.k", "KV_A", "KV_M").as_deref(),
            Some("$JS.API.DIRECT.GET.KV_M.$KV.A.k")
        );
        assert_eq!(
            mirror_direct_subject("$JS.API.DIRECT.GET.KV_A", "KV_A", "KV_M").as_deref(),
            Some("$JS.API.DIRECT.GET.KV_M")
        );
        assert_eq!(
            mirror_direct_subject("$JS.API.DIRECT.GET.KV_M.x", "KV_A", "KV_M"),
            None
        );
        assert_eq!(
            mirror_direct_subject("$JS.API.DIRECT.GET.KV_AB", "KV_A", "KV_M"),
            None
        );
    }
}
