//! The fault campaign for clustered JetStream, in the spirit of Jepsen: a three-server
//! cluster (one server per network namespace, `common::js_cluster`), each server's store
//! on its own power-cut filesystem (`natrix-powercut`), an R3 file stream under acked
//! load from concurrent publishers, a consumer following it live, and a fault loop that
//! kills (SIGKILL), stops (SIGSTOP), partitions and power-cuts one server at a time,
//! sometimes the stream's leader on purpose. After the faults the cluster is healed and a
//! checker compares what was acknowledged and seen with what the stream holds on every
//! replica.
//!
//! What the checker counts (see [`Report`]): acknowledged messages lost, duplicated or at
//! another sequence than their ack said; replicas whose state differs from the others
//! once the cluster had time to converge; sequences the live consumer skipped; messages
//! it saw that the final stream does not hold; whether the healed cluster took a write.
//!
//! The same campaign runs on natrix-server (asserted: nothing of the above may happen)
//! and on a nats-server cluster at its defaults and with `sync_interval: always`
//! (reported, never asserted). The short form runs with the other tests; the long form is
//! `scripts/campaign` (env `CAMPAIGN_ROUNDS`, `CAMPAIGN_SECS`, `CAMPAIGN_SEED`).
//! `CAMPAIGN_CLUSTER_CUTS=1` adds a rare fault outside the one-node-at-a-time rule: a power
//! cut of all three nodes at once, the case where acknowledging before fsync loses data.
//!
//! Known limits of natrix the campaign works around: consumers are not replicated (an
//! ephemeral consumer lives on the server that was the stream's leader when it was made),
//! so the live consumer is recreated from its last seen sequence + 1 whenever it fails or
//! goes quiet; and publishes fail or time out for a few seconds around a leader change,
//! so only acknowledged publishes count.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt as _;
use parking_lot::Mutex;

use common::js_cluster::{Cluster, NODES, connect, run_in_client_ns, try_stream_info};
use common::{env_or, fuse_ready};

const STREAM: &str = "CAMPAIGN";
const PUBLISHERS: usize = 4;
/// Every publish, ack included, gives up after this long (the client then moves on to a
/// new payload: a payload is never sent twice, so a duplicate in the stream is the
/// server's doing).
const PUBLISH_TIMEOUT: Duration = Duration::from_secs(3);
/// How long the healed cluster gets to take one more write.
const PROBE_WITHIN: Duration = Duration::from_secs(30);
/// How long the healed cluster's replicas get to agree.
const CONVERGE_WITHIN: Duration = Duration::from_secs(30);
/// How long the final read of the whole stream may take.
const READ_WITHIN: Duration = Duration::from_secs(30);
/// One fault in this many is aimed at the stream's leader on purpose (the others pick
/// any node, the leader included).
const LEADER_ODDS: u8 = 5;
/// With `CAMPAIGN_CLUSTER_CUTS=1`, one fault in this many is a power cut of the whole
/// cluster.
const CLUSTER_CUT_ODDS: u8 = 8;

/// What a campaign saw, summed over its rounds.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Report {
    pub rounds: u64,
    /// Faults injected, by kind.
    pub kills: u64,
    pub stops: u64,
    pub partitions: u64,
    pub power_cuts: u64,
    /// Power cuts of the whole cluster (only with `CAMPAIGN_CLUSTER_CUTS=1`).
    pub cluster_power_cuts: u64,
    /// Faults aimed at the stream's leader on purpose (counted in their kind too).
    pub leader_faults: u64,
    /// Publishes the cluster acknowledged.
    pub acked: u64,
    /// Publishes that failed or timed out (not a fault: only acknowledged ones count).
    pub publish_errors: u64,
    /// Acknowledged messages absent from the final stream.
    pub lost: u64,
    /// Extra copies of one payload in the final stream.
    pub duplicates: u64,
    /// Acknowledged messages found at another sequence than their ack gave, plus
    /// deliveries of the final read out of sequence order.
    pub seq_mismatch: u64,
    /// Replicas whose state (messages, first and last sequence, bytes) differs from the
    /// most common one once the cluster had [`CONVERGE_WITHIN`] to agree.
    pub diverged_replicas: u64,
    /// Sequences of the final stream the live consumer jumped over.
    pub consumer_skips: u64,
    /// Messages the live consumer saw that the final stream does not hold at that
    /// sequence (a read of a write that was later undone).
    pub stale_reads: u64,
    /// Rounds where the healed cluster did not acknowledge a publish within
    /// [`PROBE_WITHIN`].
    pub unavailable: u64,
    /// Rounds whose R3 stream did not come up with its three replicas (then nothing was
    /// measured in that round).
    pub bad_setups: u64,
    /// The longest time without any acknowledged publish while the faults ran (the
    /// maximum over rounds): how long the worst fault kept the stream from taking writes.
    pub max_ack_gap_ms: u64,
}

impl Report {
    fn add(&mut self, r: &Report) {
        self.rounds += r.rounds;
        self.kills += r.kills;
        self.stops += r.stops;
        self.partitions += r.partitions;
        self.power_cuts += r.power_cuts;
        self.cluster_power_cuts += r.cluster_power_cuts;
        self.leader_faults += r.leader_faults;
        self.acked += r.acked;
        self.publish_errors += r.publish_errors;
        self.lost += r.lost;
        self.duplicates += r.duplicates;
        self.seq_mismatch += r.seq_mismatch;
        self.diverged_replicas += r.diverged_replicas;
        self.consumer_skips += r.consumer_skips;
        self.stale_reads += r.stale_reads;
        self.unavailable += r.unavailable;
        self.bad_setups += r.bad_setups;
        self.max_ack_gap_ms = self.max_ack_gap_ms.max(r.max_ack_gap_ms);
    }

    /// Whether anything went wrong that a server promising "acknowledged means
    /// replicated to a quorum and durable" must never show.
    fn anomalies(&self) -> bool {
        self.lost
            + self.duplicates
            + self.seq_mismatch
            + self.diverged_replicas
            + self.consumer_skips
            + self.stale_reads
            + self.unavailable
            + self.bad_setups
            > 0
    }

    /// One report line, as `scripts/campaign` collects them.
    pub fn line(&self, label: &str) -> String {
        format!(
            "campaign: {label}: rounds={} kills={} stops={} partitions={} power_cuts={} \
             cluster_power_cuts={} leader_faults={} acked={} publish_errors={} lost={} duplicates={} \
             seq_mismatch={} diverged_replicas={} consumer_skips={} stale_reads={} \
             unavailable={} bad_setups={} max_ack_gap_ms={}",
            self.rounds,
            self.kills,
            self.stops,
            self.partitions,
            self.power_cuts,
            self.cluster_power_cuts,
            self.leader_faults,
            self.acked,
            self.publish_errors,
            self.lost,
            self.duplicates,
            self.seq_mismatch,
            self.diverged_replicas,
            self.consumer_skips,
            self.stale_reads,
            self.unavailable,
            self.bad_setups,
            self.max_ack_gap_ms
        )
    }
}

/// The faults the loop picks from. One node at a time is faulty, and each fault is
/// undone before the next, so a quorum exists most of the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Fault {
    /// SIGKILL, a pause, then a restart on the same store.
    Kill,
    /// SIGSTOP, a pause, then SIGCONT: the peers see a silent server with open sockets.
    Stop,
    /// The node's link to the bridge down, then up again.
    Partition,
    /// SIGKILL, every unsynced write on the node's store thrown away, then a restart.
    PowerCut,
    /// A power cut of all three nodes at once (a whole rack losing power), then all
    /// restarted. Only with `CAMPAIGN_CLUSTER_CUTS=1`: it breaks the one-faulty-node rule,
    /// and it is the fault where acknowledging before fsync loses data.
    ClusterPowerCut,
}

impl Fault {
    const ALL: [Fault; 4] = [Fault::Kill, Fault::Stop, Fault::Partition, Fault::PowerCut];

    fn name(self) -> &'static str {
        match self {
            Fault::Kill => "kill",
            Fault::Stop => "stop",
            Fault::Partition => "partition",
            Fault::PowerCut => "power-cut",
            Fault::ClusterPowerCut => "cluster-power-cut",
        }
    }
}

/// A server and the settings a campaign runs it with.
struct Target<'a> {
    /// The label of its report line.
    label: &'a str,
    bin: &'a Path,
    /// Inside every node's `jetstream {}` block.
    extra_js: &'a str,
    /// Distinguishes its network namespaces from other campaigns running at once.
    tag: &'a str,
}

/// A campaign's outcome: the summed report, and for every round that showed an anomaly
/// a note with what is needed to reproduce and diagnose it.
struct Outcome {
    report: Report,
    notes: Vec<String>,
}

fn rounds() -> usize {
    env_or("CAMPAIGN_ROUNDS", 2)
}

fn fault_time() -> Duration {
    Duration::from_secs(env_or("CAMPAIGN_SECS", 10))
}

/// Runs `rounds` rounds of `fault_for` of faults each against `t`; `None` where network
/// namespaces cannot be made here (skipped).
fn campaign(t: &Target, rounds: usize, fault_for: Duration) -> Option<Outcome> {
    let seed = env_or("CAMPAIGN_SEED", fastrand::u64(..));
    eprintln!(
        "campaign: {}: seed {seed} (CAMPAIGN_SEED={seed} to repeat), {rounds} rounds of {}s",
        t.label,
        fault_for.as_secs()
    );
    let mut rng = fastrand::Rng::with_seed(seed);
    let mut out = Outcome {
        report: Report::default(),
        notes: Vec::new(),
    };
    for i in 0..rounds {
        let round_seed = rng.u64(..);
        let started = Instant::now();
        let ctx = RoundCtx {
            label: t.label.to_owned(),
            campaign_seed: seed,
            index: i,
            seed: round_seed,
            fault_for,
        };
        let (r, note) = round(t, ctx)?;
        eprintln!(
            "campaign: round {i} in {:.0}s: {}",
            started.elapsed().as_secs_f64(),
            r.line(t.label)
        );
        out.report.add(&r);
        if let Some(note) = note {
            eprintln!("{note}");
            out.notes.push(note);
        }
    }
    Some(out)
}

/// What a round needs to know to describe itself.
struct RoundCtx {
    label: String,
    campaign_seed: u64,
    index: usize,
    seed: u64,
    fault_for: Duration,
}

/// One round on a fresh cluster with fresh stores, each on a power-cut mount of its own.
fn round(t: &Target, ctx: RoundCtx) -> Option<(Report, Option<String>)> {
    let backing: Vec<tempfile::TempDir> = NODES
        .iter()
        .map(|_| tempfile::tempdir().expect("backing dir"))
        .collect();
    let mnts: Vec<tempfile::TempDir> = NODES
        .iter()
        .map(|_| tempfile::tempdir().expect("mount dir"))
        .collect();
    let mounts: Arc<Vec<natrix_powercut::Mount>> = Arc::new(
        backing
            .iter()
            .zip(&mnts)
            .map(|(b, m)| natrix_powercut::Mount::new(b.path(), m.path()).expect("mount"))
            .collect(),
    );
    let stores: Vec<PathBuf> = mnts.iter().map(|m| m.path().join("js")).collect();
    let tag = format!("{}{}", t.tag, ctx.index % 100);
    let mut cl = Cluster::with_stores(&tag, t.bin, t.extra_js, stores)?;
    cl.start_all();
    let m = mounts.clone();
    let out = run_in_client_ns(&mut cl, 2, move |cl| Box::pin(scenario(cl, m, ctx)));
    // The servers go before their mounts do.
    drop(cl);
    // A plain unmount waits until no mount namespace holds a copy of the mount, and a
    // server of another campaign running at the same time holds one if it started while
    // these mounts existed (`ip netns exec` gives each server a private copy of the
    // host's mount table, whose root is private here): it would wait for that server's
    // round to end. A lazy unmount detaches the mount here at once; the FUSE connection
    // ends by itself once that server is gone.
    for m in mounts.iter() {
        natrix_powercut::force_unmount(m.mountpoint());
    }
    drop(mounts);
    Some(out)
}

/// What the publishers recorded.
#[derive(Default)]
struct Acks {
    /// Acknowledged publishes: payload id and the sequence the ack gave.
    acked: Vec<(String, u64)>,
    /// When each ack came.
    times: Vec<Instant>,
    errors: u64,
}

/// What a consumer following the stream saw, in delivery order.
#[derive(Default)]
struct Seen {
    msgs: Vec<(u64, String)>,
    /// The next sequence to ask for: the last one seen + 1.
    next: u64,
    /// Consumers it made (the first, then one per failure or silence).
    consumers: u64,
}

async fn scenario(
    cl: &mut Cluster,
    mounts: Arc<Vec<natrix_powercut::Mount>>,
    ctx: RoundCtx,
) -> (Report, Option<String>) {
    let mut rng = fastrand::Rng::with_seed(ctx.seed);
    let t0 = Instant::now();
    let client = connect().await;
    let js = jetstream::ContextBuilder::new()
        .timeout(PUBLISH_TIMEOUT)
        .build(client.clone());
    if let Err(e) = create_stream(cl, &js).await {
        // Nothing to measure on this cluster: the round counts as a bad setup, with
        // everything needed to look into it, and the campaign goes on.
        let holders: Vec<String> = (0..NODES.len())
            .filter(|i| cl.replica_now(*i, STREAM).is_some())
            .map(|i| cl.name(i))
            .collect();
        let hint = if holders.len() == 1 {
            format!(
                "  only {} holds the stream, as its own leader without replicas: it answered \
                 the STREAM.CREATE alone, as a standalone server would (natrix-server: the \
                 JetStream API is subscribed before the cluster part has started, see \
                 JetStream::start in broker/jetstream/src/lib.rs)\n",
                holders[0]
            )
        } else {
            format!("  servers holding the stream: {holders:?}\n")
        };
        let note = format!(
            "campaign: {}: BAD SETUP in round {} (round seed {}, CAMPAIGN_SEED={}): {e}\n{hint}{}{}",
            ctx.label,
            ctx.index,
            ctx.seed,
            ctx.campaign_seed,
            dump(cl, &js).await,
            save_logs(cl, &ctx)
        );
        for i in 0..NODES.len() {
            cl.kill(i);
        }
        let report = Report {
            rounds: 1,
            bad_setups: 1,
            ..Report::default()
        };
        return (report, Some(note));
    }
    // The stream exists on disk everywhere before the part under test, as if the
    // kernel's writeback had run since it was created: what is measured is the messages.
    tokio::time::sleep(Duration::from_millis(200)).await;
    for m in mounts.iter() {
        m.sync_all();
    }
    let setup = t0.elapsed();

    // The load: publishers and a live consumer, until told to stop.
    let stop = Arc::new(AtomicBool::new(false));
    let acks = Arc::new(Mutex::new(Acks::default()));
    let live = Arc::new(Mutex::new(Seen::default()));
    let load_start = Instant::now();
    let mut publishers = Vec::new();
    for p in 0..PUBLISHERS {
        let (js, stop, acks) = (js.clone(), stop.clone(), acks.clone());
        publishers.push(tokio::spawn(async move {
            publish_loop(js, p, stop, acks).await
        }));
    }
    let live_stop = Arc::new(AtomicBool::new(false));
    let follower = {
        let (js, live, live_stop) = (js.clone(), live.clone(), live_stop.clone());
        tokio::spawn(async move {
            follow(&js, &live, &|_| live_stop.load(Ordering::Relaxed)).await;
        })
    };

    // The faults.
    let mut report = Report {
        rounds: 1,
        ..Report::default()
    };
    let faults = fault_loop(
        cl,
        &mounts,
        &js,
        &mut rng,
        load_start,
        ctx.fault_for,
        &mut report,
    )
    .await;
    let faults_end = Instant::now();

    // Healed, the load stops (acks in flight still arrive: a publisher stops only after
    // its current publish is answered or timed out).
    cl.heal();
    stop.store(true, Ordering::Relaxed);
    for p in publishers {
        let abort = p.abort_handle();
        if tokio::time::timeout(PUBLISH_TIMEOUT * 2, p).await.is_err() {
            abort.abort();
        }
    }
    // The healed cluster takes a write.
    let mut phases = vec![("stop publishers", Instant::now())];
    let probe = publish_within(&js, "probe", PROBE_WITHIN).await;
    phases.push(("probe", Instant::now()));
    let acks = std::mem::take(&mut *acks.lock());
    let mut acked = acks.acked.clone();
    match probe {
        Some(seq) => acked.push(("probe".into(), seq)),
        None => report.unavailable = 1,
    }
    report.acked = acked.len() as u64;
    report.publish_errors = acks.errors;
    let (gap, gap_from) = max_gap(load_start, &acks.times, faults_end);
    report.max_ack_gap_ms = gap.as_millis() as u64;
    let max_acked = acked.iter().map(|(_, s)| *s).max().unwrap_or(0);

    // Every replica converges to one state.
    let states = converge(cl, max_acked).await;
    phases.push(("converge", Instant::now()));
    let (reference, diverged) = reference_state(&states);
    report.diverged_replicas = diverged;
    let last = reference.map_or(max_acked, |s| s.last_seq).max(max_acked);

    // The live consumer catches up (bounded), then stops.
    let deadline = Instant::now() + Duration::from_secs(15);
    while live.lock().next <= last && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    live_stop.store(true, Ordering::Relaxed);
    let abort = follower.abort_handle();
    if tokio::time::timeout(Duration::from_secs(10), follower)
        .await
        .is_err()
    {
        abort.abort();
    }
    phases.push(("live consumer", Instant::now()));

    // The whole stream, read from the start through fresh consumers.
    let read = Mutex::new(Seen::default());
    let read_deadline = Instant::now() + READ_WITHIN;
    follow(&js, &read, &|next| {
        next > last || Instant::now() > read_deadline
    })
    .await;
    phases.push(("read", Instant::now()));
    let read = read.into_inner();
    let live = std::mem::take(&mut *live.lock());
    let check = check(&acked, &read.msgs, &live.msgs, last);
    report.lost = check.lost.len() as u64;
    report.duplicates = check
        .duplicates
        .iter()
        .map(|(_, seqs)| seqs.len() as u64 - 1)
        .sum();
    report.seq_mismatch = (check.mismatched.len() + check.disorder) as u64;
    report.consumer_skips = check.skipped;
    report.stale_reads = check.stale.len() as u64;

    let mut after = String::new();
    let mut from = faults_end;
    for (what, at) in &phases {
        let _ = write!(
            after,
            " {what} {:.1}s",
            at.duration_since(from).as_secs_f64()
        );
        from = *at;
    }
    eprintln!(
        "campaign: {} round {}: setup {:.1}s, faults {:.1}s, then{after}; no ack for {} ms \
         from +{:.1}s; the live consumer made {} consumers; faults: {}",
        ctx.label,
        ctx.index,
        setup.as_secs_f64(),
        faults_end.duration_since(load_start).as_secs_f64(),
        report.max_ack_gap_ms,
        gap_from.as_secs_f64(),
        live.consumers,
        faults.join("; ")
    );
    let note = if report.anomalies() {
        let mut note = describe(&ctx, &report, setup, &faults, &check, &states, &read, &live);
        note.push_str(&dump(cl, &js).await);
        note.push_str(&save_logs(cl, &ctx));
        Some(note)
    } else {
        None
    };
    // Killed before their mounts go (the caller drops the mounts).
    for i in 0..NODES.len() {
        cl.kill(i);
    }
    (report, note)
}

/// Creates the R3 stream (the meta group may still be forming: retried for up to 60 s)
/// and waits until every node has its replica; what went wrong if not.
async fn create_stream(cl: &Cluster, js: &jetstream::Context) -> Result<(), String> {
    let t0 = Instant::now();
    let within = Duration::from_secs(60);
    loop {
        let create = js.get_or_create_stream(stream::Config {
            name: STREAM.into(),
            subjects: vec!["cmp.>".into()],
            num_replicas: 3,
            storage: stream::StorageType::File,
            ..Default::default()
        });
        let attempt = match tokio::time::timeout(Duration::from_secs(10), create).await {
            Ok(r) => r.map(drop).map_err(|e| e.to_string()),
            Err(_) => Err("no answer within 10s".to_owned()),
        };
        match attempt {
            Ok(_) => break,
            Err(e) if t0.elapsed() > within => {
                return Err(format!(
                    "the R3 stream was not created within {within:?}: {e}"
                ));
            }
            Err(_) => tokio::time::sleep(Duration::from_millis(250)).await,
        }
    }
    let created = t0.elapsed();
    // Created as an R3 stream: its leader names two replicas (a server that answered
    // the create on its own would give none).
    loop {
        let info = tokio::time::timeout(Duration::from_secs(3), try_stream_info(js, STREAM)).await;
        let replicas = match info {
            Ok(Ok(i)) => match i.cluster {
                Some(c) if c.replicas.len() == 2 => break,
                Some(c) => format!("leader {:?}, replicas {:?}", c.leader, c.replicas),
                None => "no cluster information".to_owned(),
            },
            Ok(Err(e)) => e,
            Err(_) => "no answer".to_owned(),
        };
        if t0.elapsed() > created + Duration::from_secs(15) {
            return Err(format!(
                "the stream was created {:.1}s after the servers started, but STREAM.INFO \
                 does not show an R3 stream: {replicas}",
                created.as_secs_f64()
            ));
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    for i in 0..NODES.len() {
        while cl.replica_now(i, STREAM).is_none() {
            if t0.elapsed() > within {
                return Err(format!(
                    "{} never showed its replica of {STREAM} in /jsz (the stream was created \
                     {:.1}s after the servers started; waited {:.1}s)",
                    cl.name(i),
                    created.as_secs_f64(),
                    t0.elapsed().as_secs_f64(),
                ));
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }
    Ok(())
}

/// The cluster's state for a failure message: the stream's info as its leader gives
/// it, then each node's `/jsz?streams=true` and the end of its log.
async fn dump(cl: &Cluster, js: &jetstream::Context) -> String {
    let mut s = String::new();
    let info = tokio::time::timeout(Duration::from_secs(3), try_stream_info(js, STREAM)).await;
    let _ = match info {
        Ok(Ok(i)) => writeln!(
            s,
            "  STREAM.INFO: cluster {:?}, state {:?}",
            i.cluster, i.state
        ),
        Ok(Err(e)) => writeln!(s, "  STREAM.INFO: {e}"),
        Err(_) => writeln!(s, "  STREAM.INFO: no answer within 3s"),
    };
    for (i, n) in NODES.iter().enumerate() {
        let jsz = cl
            .lab
            .http(*n, "/jsz?streams=true")
            .map_or_else(|| "no answer".to_owned(), |r| r.body);
        let jsz: String = jsz.split_whitespace().collect::<Vec<_>>().join(" ");
        let _ = writeln!(
            s,
            "  == {} (process {}): /jsz?streams=true: {}",
            cl.name(i),
            if cl.is_up(i) { "up" } else { "down" },
            jsz.chars().take(2000).collect::<String>()
        );
        let _ = writeln!(s, "  last 40 log lines of {}:", cl.name(i));
        s.push_str(&tail(&cl.log(i), 40));
    }
    s
}

/// Publishes unique payloads (`p<p>-<n>`, every fourth padded past 1 KiB, a size
/// natrix's file store keeps in its log rather than in redb) until `stop`; records every
/// acknowledged one. A failed publish is never retried with the same payload.
async fn publish_loop(
    js: jetstream::Context,
    p: usize,
    stop: Arc<AtomicBool>,
    acks: Arc<Mutex<Acks>>,
) {
    for n in 0u64.. {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let id = format!("p{p}-{n}");
        match publish(&js, &format!("cmp.{p}"), &id, n % 4 == 0).await {
            Ok(seq) => {
                let mut a = acks.lock();
                a.acked.push((id, seq));
                a.times.push(Instant::now());
            }
            Err(_) => {
                acks.lock().errors += 1;
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// One publish of payload `id` (with `Nats-Msg-Id: id`, so a copy the client library
/// might send again after a reconnect is deduplicated); the sequence its ack gave.
async fn publish(
    js: &jetstream::Context,
    subject: &str,
    id: &str,
    pad: bool,
) -> Result<u64, String> {
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("Nats-Msg-Id", id);
    let mut payload = id.to_owned();
    if pad {
        payload.push('\n');
        payload.push_str(&".".repeat(1500));
    }
    let attempt = async {
        let ack = js
            .publish_with_headers(subject.to_owned(), headers, payload.into())
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())?;
        if ack.duplicate {
            // Never sent twice by us: the server took it for another message.
            return Err(format!("{id} acknowledged as a duplicate"));
        }
        Ok(ack.sequence)
    };
    tokio::time::timeout(PUBLISH_TIMEOUT * 2, attempt)
        .await
        .map_err(|_| "publish timed out".to_owned())?
}

/// Publishes `id` (new attempts are deduplicated by its message id) until acknowledged
/// or `within` passed.
async fn publish_within(js: &jetstream::Context, id: &str, within: Duration) -> Option<u64> {
    let deadline = Instant::now() + within;
    while Instant::now() < deadline {
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("Nats-Msg-Id", id);
        let attempt = async {
            js.publish_with_headers("cmp.probe", headers, id.to_owned().into())
                .await
                .ok()?
                .await
                .ok()
        };
        if let Ok(Some(ack)) = tokio::time::timeout(PUBLISH_TIMEOUT * 2, attempt).await {
            return Some(ack.sequence);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    None
}

/// The id a payload carries (what comes before its padding).
fn payload_id(payload: &[u8]) -> String {
    let id = payload.split(|&b| b == b'\n').next().unwrap_or_default();
    String::from_utf8_lossy(id).into_owned()
}

/// Follows the stream from `seen.next` (1 if unset) until `done(next)`: an ephemeral pull
/// consumer starting at the next sequence wanted, recreated from there whenever it fails
/// or stays silent for two fetches (its server may have died, been cut off or stopped
/// being the leader; consumers are not replicated). Records every delivery, in order.
async fn follow(js: &jetstream::Context, seen: &Mutex<Seen>, done: &(dyn Fn(u64) -> bool + Sync)) {
    let mut next = seen.lock().next.max(1);
    seen.lock().next = next;
    while !done(next) {
        let config = consumer::pull::Config {
            deliver_policy: consumer::DeliverPolicy::ByStartSequence {
                start_sequence: next,
            },
            ack_policy: consumer::AckPolicy::None,
            // Forgotten consumers (on a dead or cut-off server) go by themselves.
            inactive_threshold: Duration::from_secs(10),
            ..Default::default()
        };
        let made = tokio::time::timeout(
            Duration::from_secs(4),
            js.create_consumer_on_stream(config, STREAM),
        )
        .await;
        let Ok(Ok(c)) = made else {
            tokio::time::sleep(Duration::from_millis(250)).await;
            continue;
        };
        seen.lock().consumers += 1;
        let mut silent = 0;
        while !done(next) && silent < 2 {
            let fetch = c
                .fetch()
                .max_messages(500)
                .expires(Duration::from_secs(1))
                .messages();
            let Ok(Ok(mut batch)) = tokio::time::timeout(Duration::from_secs(3), fetch).await
            else {
                break;
            };
            let mut got = 0;
            loop {
                match tokio::time::timeout(Duration::from_secs(3), batch.next()).await {
                    Ok(Some(Ok(msg))) => {
                        let Ok(seq) = msg.info().map(|i| i.stream_sequence) else {
                            continue;
                        };
                        let mut s = seen.lock();
                        s.msgs.push((seq, payload_id(&msg.payload)));
                        next = next.max(seq + 1);
                        s.next = next;
                        got += 1;
                    }
                    Ok(None) => break,
                    // An error status or a stalled batch: make a new consumer.
                    _ => {
                        silent = 2;
                        break;
                    }
                }
            }
            if got == 0 {
                silent += 1;
            } else {
                silent = 0;
            }
        }
        // Best effort: it would go by itself after its inactive threshold.
        let name = c.cached_info().name.clone();
        let _ = tokio::time::timeout(
            Duration::from_secs(1),
            js.delete_consumer_from_stream(name, STREAM),
        )
        .await;
    }
}

/// Every 0.5-1.5 s, one fault on one node for 0.5-2.5 s, then healed; for `fault_for`.
/// Logs each fault with its time from `t0`.
/// The schedule (kinds, nodes, durations) follows `rng` only; which node is the leader
/// when one is aimed at depends on the run.
async fn fault_loop(
    cl: &mut Cluster,
    mounts: &[natrix_powercut::Mount],
    js: &jetstream::Context,
    rng: &mut fastrand::Rng,
    t0: Instant,
    fault_for: Duration,
    report: &mut Report,
) -> Vec<String> {
    let mut log = Vec::new();
    let cluster_cuts = env_or("CAMPAIGN_CLUSTER_CUTS", 0) == 1;
    let end = Instant::now() + fault_for;
    while Instant::now() < end {
        tokio::time::sleep(Duration::from_millis(rng.u64(500..=1500))).await;
        let fault = if cluster_cuts && rng.u8(..CLUSTER_CUT_ODDS) == 0 {
            Fault::ClusterPowerCut
        } else {
            Fault::ALL[rng.usize(..Fault::ALL.len())]
        };
        let mut target = rng.usize(..NODES.len());
        let hold = Duration::from_millis(rng.u64(500..=2500));
        let mut why = String::new();
        if rng.u8(..LEADER_ODDS) == 0 && fault != Fault::ClusterPowerCut {
            let leader = tokio::time::timeout(Duration::from_secs(2), try_stream_info(js, STREAM))
                .await
                .ok()
                .and_then(Result::ok)
                .and_then(|i| i.cluster?.leader)
                .and_then(|l| cl.find(&l));
            match leader {
                Some(i) => {
                    target = i;
                    report.leader_faults += 1;
                    why = " (the leader)".into();
                }
                None => why = " (leader asked for, unknown)".into(),
            }
        }
        let at = t0.elapsed();
        let mut extra = String::new();
        match fault {
            Fault::Kill => {
                report.kills += 1;
                cl.kill(target);
                tokio::time::sleep(hold).await;
                cl.start(target);
            }
            Fault::Stop => {
                report.stops += 1;
                cl.pause(target);
                tokio::time::sleep(hold).await;
                cl.resume(target);
            }
            Fault::Partition => {
                report.partitions += 1;
                cl.lab.link(NODES[target], false);
                tokio::time::sleep(hold).await;
                cl.lab.link(NODES[target], true);
            }
            Fault::PowerCut => {
                report.power_cuts += 1;
                cl.kill(target);
                let cut = mounts[target].cut();
                extra = format!(", dropped {} B in {} files", cut.bytes, cut.files);
                tokio::time::sleep(hold).await;
                cl.start(target);
            }
            Fault::ClusterPowerCut => {
                report.cluster_power_cuts += 1;
                let (mut bytes, mut files) = (0, 0);
                for (i, m) in mounts.iter().enumerate() {
                    cl.kill(i);
                    let cut = m.cut();
                    bytes += cut.bytes;
                    files += cut.files;
                }
                extra = format!(", dropped {bytes} B in {files} files");
                tokio::time::sleep(hold).await;
                cl.start_all();
            }
        }
        let who = if fault == Fault::ClusterPowerCut {
            "all nodes".to_owned()
        } else {
            cl.name(target)
        };
        log.push(format!(
            "+{:.1}s {} {who}{why} for {} ms{extra} (healed at +{:.1}s)",
            at.as_secs_f64(),
            fault.name(),
            hold.as_millis(),
            t0.elapsed().as_secs_f64()
        ));
    }
    log
}

/// The longest stretch between `start`, the acks (in any order) and `end`, and when it
/// began (from `start`).
fn max_gap(start: Instant, times: &[Instant], end: Instant) -> (Duration, Duration) {
    let mut t: Vec<Instant> = times.iter().copied().filter(|t| *t < end).collect();
    t.push(start);
    t.push(end);
    t.sort();
    t.windows(2)
        .map(|w| (w[1].duration_since(w[0]), w[0].duration_since(start)))
        .max()
        .unwrap_or_default()
}

/// A replica's state as `/jsz` reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    messages: u64,
    first_seq: u64,
    last_seq: u64,
    bytes: u64,
}

fn state_of(replica: &serde_json::Value) -> Option<State> {
    let s = &replica["state"];
    Some(State {
        messages: s["messages"].as_u64()?,
        first_seq: s["first_seq"].as_u64()?,
        last_seq: s["last_seq"].as_u64()?,
        bytes: s["bytes"].as_u64()?,
    })
}

/// Polls every node's replica until all three agree and hold at least `min_last`, for at
/// most [`CONVERGE_WITHIN`]; the last states seen (`None`: no answer or no replica).
async fn converge(cl: &Cluster, min_last: u64) -> Vec<Option<State>> {
    let deadline = Instant::now() + CONVERGE_WITHIN;
    loop {
        let states: Vec<Option<State>> = (0..NODES.len())
            .map(|i| cl.replica_now(i, STREAM).as_ref().and_then(state_of))
            .collect();
        let agreed = states
            .iter()
            .all(|s| s.is_some_and(|s| s.last_seq >= min_last) && *s == states[0]);
        if agreed || Instant::now() > deadline {
            return states;
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// The most common replica state (ties: the one with the highest last sequence) and how
/// many replicas differ from it.
fn reference_state(states: &[Option<State>]) -> (Option<State>, u64) {
    let reference = states
        .iter()
        .flatten()
        .max_by_key(|s| {
            (
                states.iter().filter(|o| o.as_ref() == Some(s)).count(),
                s.last_seq,
            )
        })
        .copied();
    let diverged = states.iter().filter(|s| **s != reference).count() as u64;
    (reference, diverged)
}

/// What the checker found, with examples for the notes.
#[derive(Default)]
struct Check {
    /// Acknowledged and absent: (id, acked sequence).
    lost: Vec<(String, u64)>,
    /// Payloads present more than once: (id, sequences).
    duplicates: Vec<(String, Vec<u64>)>,
    /// Present at another sequence than acknowledged: (id, acked, found).
    mismatched: Vec<(String, u64, Vec<u64>)>,
    /// Deliveries of the final read at or below the sequence delivered before them.
    disorder: usize,
    /// Sequences of the final stream the live consumer jumped over.
    skipped: u64,
    /// The live consumer's jumps over sequences the final stream holds: (from, to).
    gaps: Vec<(u64, u64)>,
    /// Live deliveries the final stream does not hold at that sequence: (seq, id seen,
    /// id in the final stream).
    stale: Vec<(u64, String, Option<String>)>,
    /// The highest sequence the final read reached.
    read_to: u64,
}

/// Compares the acknowledged publishes and the live consumer's deliveries with the final
/// read of the stream (which should reach `last`).
fn check(
    acked: &[(String, u64)],
    read: &[(u64, String)],
    live: &[(u64, String)],
    last: u64,
) -> Check {
    let mut c = Check::default();
    let mut by_seq: BTreeMap<u64, &str> = BTreeMap::new();
    let mut by_id: HashMap<&str, Vec<u64>> = HashMap::new();
    let mut prev = 0;
    for (seq, id) in read {
        if *seq <= prev {
            c.disorder += 1;
        }
        prev = prev.max(*seq);
        by_seq.entry(*seq).or_insert(id);
        by_id.entry(id).or_default().push(*seq);
    }
    c.read_to = prev;
    for (id, seqs) in &by_id {
        let mut distinct = seqs.clone();
        distinct.sort_unstable();
        distinct.dedup();
        if distinct.len() > 1 {
            c.duplicates.push(((*id).to_owned(), distinct));
        }
    }
    c.duplicates.sort();
    for (id, seq) in acked {
        match by_id.get(id.as_str()) {
            None => c.lost.push((id.clone(), *seq)),
            Some(seqs) if !seqs.contains(seq) => {
                c.mismatched.push((id.clone(), *seq, seqs.clone()))
            }
            Some(_) => {}
        }
    }
    c.lost.sort_by_key(|(_, s)| *s);
    c.mismatched.sort_by_key(|(_, s, _)| *s);
    let mut prev = 0;
    for (seq, id) in live {
        if *seq > prev + 1 {
            let jumped = by_seq.range(prev + 1..*seq).count() as u64;
            if jumped > 0 {
                c.skipped += jumped;
                c.gaps.push((prev, *seq));
            }
        }
        prev = prev.max(*seq);
        // Only where the final read is known to be complete.
        let held = by_seq.get(seq).copied();
        if held != Some(id.as_str()) && (*seq <= c.read_to || *seq > last) {
            c.stale.push((*seq, id.clone(), held.map(str::to_owned)));
        }
    }
    c
}

/// A round's note: how to repeat it and what went wrong.
#[allow(clippy::too_many_arguments)]
fn describe(
    ctx: &RoundCtx,
    r: &Report,
    setup: Duration,
    faults: &[String],
    c: &Check,
    states: &[Option<State>],
    read: &Seen,
    live: &Seen,
) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "campaign: {}: ANOMALY in round {} (round seed {}): repeat the fault schedule with \
         CAMPAIGN_SEED={} CAMPAIGN_ROUNDS={} CAMPAIGN_SECS={}",
        ctx.label,
        ctx.index,
        ctx.seed,
        ctx.campaign_seed,
        ctx.index + 1,
        ctx.fault_for.as_secs()
    );
    let _ = writeln!(s, "  {}", r.line("this round"));
    let _ = writeln!(
        s,
        "  setup (cluster up, stream created) took {:.1}s; faults, from the start of the load:",
        setup.as_secs_f64()
    );
    for f in faults {
        let _ = writeln!(s, "    {f}");
    }
    for (i, st) in states.iter().enumerate() {
        let _ = writeln!(s, "  replica n{}: {st:?}", NODES[i]);
    }
    let _ = writeln!(
        s,
        "  final read: {} deliveries up to seq {} through {} consumers; live consumer: {} \
         deliveries through {} consumers",
        read.msgs.len(),
        c.read_to,
        read.consumers,
        live.msgs.len(),
        live.consumers
    );
    if !c.lost.is_empty() {
        let _ = writeln!(
            s,
            "  lost (id, acked seq), first 20: {:?}",
            &c.lost[..c.lost.len().min(20)]
        );
    }
    if !c.duplicates.is_empty() {
        let _ = writeln!(
            s,
            "  duplicates (id, seqs), first 20: {:?}",
            &c.duplicates[..c.duplicates.len().min(20)]
        );
    }
    if !c.mismatched.is_empty() {
        let _ = writeln!(
            s,
            "  at another sequence (id, acked, found), first 20: {:?}",
            &c.mismatched[..c.mismatched.len().min(20)]
        );
    }
    if c.disorder > 0 {
        let _ = writeln!(s, "  final read out of order {} times", c.disorder);
    }
    if !c.gaps.is_empty() {
        let _ = writeln!(
            s,
            "  live consumer jumps (from, to), first 20: {:?}",
            &c.gaps[..c.gaps.len().min(20)]
        );
    }
    if !c.stale.is_empty() {
        let _ = writeln!(
            s,
            "  stale reads (seq, seen, final), first 20: {:?}",
            &c.stale[..c.stale.len().min(20)]
        );
    }
    s
}

/// Writes the servers' full logs to a directory that outlives the test; where they are.
fn save_logs(cl: &Cluster, ctx: &RoundCtx) -> String {
    let slug: String = ctx
        .label
        .chars()
        .map(|c| if c.is_ascii_alphanumeric() { c } else { '-' })
        .collect();
    let dir = std::env::temp_dir().join(format!(
        "natrix-campaign-{slug}-{}-r{}",
        ctx.campaign_seed, ctx.index
    ));
    if let Err(e) = std::fs::create_dir_all(&dir) {
        return format!("  full logs not saved: {}: {e}\n", dir.display());
    }
    let mut s = String::new();
    for i in 0..NODES.len() {
        let path = dir.join(format!("{}.log", cl.name(i)));
        let _ = match std::fs::write(&path, cl.log(i)) {
            Ok(()) => writeln!(s, "  full log of {}: {}", cl.name(i), path.display()),
            Err(e) => writeln!(s, "  full log of {} not saved: {e}", cl.name(i)),
        };
    }
    s
}

/// The last `n` lines of `text`, indented.
fn tail(text: &str, n: usize) -> String {
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(n)..]
        .iter()
        .map(|l| format!("    {l}\n"))
        .collect()
}

fn reference() -> Option<PathBuf> {
    let bin = common::reference_binary();
    if bin.is_none() {
        eprintln!("skipping: reference nats-server not installed (run scripts/deps)");
    }
    bin
}

/// Runs the campaign on `t` and prints its report line.
fn run(t: &Target) -> Option<Outcome> {
    let started = Instant::now();
    let out = campaign(t, rounds(), fault_time())?;
    println!("{}", out.report.line(t.label));
    eprintln!(
        "campaign: {}: done in {:.0}s",
        t.label,
        started.elapsed().as_secs_f64()
    );
    Some(out)
}

/// natrix acknowledges a publish to an R3 stream only once a quorum has it durably:
/// whatever one faulty node at a time does, nothing acknowledged is lost, duplicated or
/// moved, the replicas agree, and a consumer following the stream skips nothing.
#[test]
fn campaign_natrix() {
    if !fuse_ready() {
        return;
    }
    let t = Target {
        label: "natrix-server",
        bin: Path::new(common::NATRIX),
        extra_js: "",
        tag: "cn",
    };
    let Some(out) = run(&t) else { return };
    let r = out.report;
    assert!(r.acked > 0, "nothing was acknowledged: {r:?}");
    assert!(
        !r.anomalies(),
        "natrix lost, duplicated, moved or skipped acknowledged messages, or its replicas \
         diverged, or it stayed unavailable:\n{}\n{}",
        r.line(t.label),
        out.notes.join("\n")
    );
}

/// nats-server at its defaults (acknowledged before fsync; fsync every 2 minutes): its
/// figures are reported, not asserted.
#[test]
fn campaign_reference_defaults() {
    if !fuse_ready() {
        return;
    }
    let Some(bin) = reference() else { return };
    let t = Target {
        label: "nats-server defaults",
        bin: &bin,
        extra_js: "",
        tag: "cd",
    };
    if let Some(out) = run(&t) {
        assert!(
            out.report.acked > 0,
            "nothing was acknowledged: {:?}",
            out.report
        );
    }
}

/// nats-server with `sync_interval: always` (fsync before every acknowledgement):
/// reported, not asserted.
#[test]
fn campaign_reference_sync_always() {
    if !fuse_ready() {
        return;
    }
    let Some(bin) = reference() else { return };
    let t = Target {
        label: "nats-server sync_interval=always",
        bin: &bin,
        extra_js: "sync_interval: always",
        tag: "cs",
    };
    if let Some(out) = run(&t) {
        assert!(
            out.report.acked > 0,
            "nothing was acknowledged: {:?}",
            out.report
        );
    }
}
