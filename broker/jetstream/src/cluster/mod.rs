//! Clustered JetStream: the meta group that places streams, and a Raft group per
//! replicated stream (docs/jetstream-cluster.md, docs/design/raft.md).
//!
//! Every JetStream server of a cluster runs one [`Cluster`]. It owns the server's Raft
//! database and group manager (natrix-raft), whose traffic rides internal connections of
//! the system account over the routes ([`raft_bus`]). The servers find each other by
//! announcing themselves on [`PEER_SUBJECT`] every second; a nats-server in the same
//! cluster never announces, so nothing is ever placed on it.
//!
//! - The **meta group** (`_meta_`) has every JetStream server as a voter. Its leader
//!   answers the account-level API (create, update, delete, names, list, account info),
//!   places streams on live peers and proposes the assignment; every server applies the
//!   assignments in log order and runs the streams placed on it ([`meta`]).
//! - A **stream group** per stream of more than one replica: its leader's stream actor
//!   proposes each batch of publishes as one [`machine::Entry::Msgs`] and acknowledges
//!   them only once a quorum has stored the entry (fsynced, as every Raft write here) and
//!   the leader has stored the messages. Followers store what their group applies.

pub mod catchup;
pub mod machine;
pub mod meta;
pub mod raft_bus;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use natrix_raft::openraft::{BasicNode, Config, Raft, ServerState, SnapshotPolicy};
use natrix_raft::{GroupManager, ManagerOptions, RaftDb, RaftGroup, TransportOptions};
use parking_lot::{Mutex, RwLock};
use serde::{Deserialize, Serialize};
use tokio::sync::mpsc;

use crate::JetStreamInner;
use crate::account::JsAccount;
use crate::api::errors::{self, ApiError};
use machine::{Applied, Entry, JsMachine, JsRaft, MetaState, Outcome};

/// Where servers announce themselves (system account).
pub const PEER_SUBJECT: &str = "$JSC.PEER";
/// The system account's cluster API (nats-server answers these there only).
const META_STEPDOWN: &str = "$JS.API.META.LEADER.STEPDOWN";
const SERVER_REMOVE: &str = "$JS.API.SERVER.REMOVE";
/// The meta group's name, as nats-server names it.
pub const META_GROUP: &str = "_meta_";
/// A peer not heard from for this long is not placed on and not counted as live.
const PEER_FRESH: Duration = Duration::from_secs(4);
/// The peer set must be this still before a server bootstraps the meta group with it.
const SETTLE: Duration = Duration::from_secs(2);
/// With only a majority of the expected servers in view, bootstrap after this long.
const SETTLE_MAJORITY: Duration = Duration::from_secs(10);

/// How the cluster is set up, from the server's options.
#[derive(Debug, Clone, Default)]
pub struct ClusterConfig {
    pub name: String,
    /// Routes configured: how many servers to expect before bootstrapping.
    pub routes: usize,
    /// This server's `server_tags` (placement by `placement.tags` and `unique_tag`).
    pub tags: Vec<String>,
    /// The JetStream domain: servers of another domain (across a leaf node) are not
    /// peers of this meta group.
    pub domain: Option<String>,
    /// The remote clusters configured as gateways: the meta group of a supercluster
    /// spans them, so bootstrap waits to hear from each.
    pub gateways: Vec<String>,
}

/// One server's announcement.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Announce {
    name: String,
    node: u64,
    cluster: String,
    /// Its meta group has a membership (it is, or was, part of a formed cluster).
    formed: bool,
    #[serde(default)]
    tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    domain: Option<String>,
}

struct Seen {
    node: u64,
    cluster: String,
    formed: bool,
    tags: Vec<String>,
    at: Instant,
}

pub type Manager = GroupManager<JsRaft, JsMachine>;
pub type Group = RaftGroup<JsRaft, JsMachine>;
pub type Accounts = Arc<RwLock<BTreeMap<String, Arc<JsAccount>>>>;

/// Clustered JetStream on this server.
pub struct Cluster {
    pub server: String,
    pub config: ClusterConfig,
    pub manager: Manager,
    pub meta: Group,
    pub(crate) accounts: Accounts,
    seen: Mutex<HashMap<String, Seen>>,
    /// When the set of live peers last changed (bootstrap waits for it to settle).
    changed: Mutex<(Vec<String>, Instant)>,
    conn: Arc<dyn crate::bus::Conn>,
    bus: Arc<dyn crate::bus::Bus>,
    stopped: AtomicBool,
    /// Set while the meta leader steps down.
    meta_stepping: AtomicBool,
}

/// A stream replica's Raft side, as its actor and its account hold it.
#[derive(Clone)]
pub struct Replica {
    pub raft: Raft<JsRaft>,
    pub group: String,
    /// Kept current by a task watching the group's metrics.
    pub leader: Arc<AtomicBool>,
    /// Set while this leader steps down: it takes no writes and answers nothing.
    pub stepping_down: Arc<AtomicBool>,
    /// The stream's account, and JetStream's bus (catch-up requests go through them).
    pub account: String,
    pub bus: Arc<dyn crate::bus::Bus>,
}

impl Replica {
    pub fn is_leader(&self) -> bool {
        self.leader.load(Ordering::Acquire) && !self.stepping_down.load(Ordering::Acquire)
    }

    /// `STREAM.LEADER.STEPDOWN`.
    pub async fn step_down(&self) -> Result<(), ApiError> {
        step_down(&self.raft, &self.stepping_down).await
    }
}

/// Hands leadership of `raft` to another member: the leader stops its heartbeats (and,
/// through `stepping`, takes no writes, which would renew the followers' leases too), so
/// a follower's election timer fires once the lease is over and it takes over.
async fn step_down(raft: &Raft<JsRaft>, stepping: &AtomicBool) -> Result<(), ApiError> {
    let m = raft.metrics().borrow().clone();
    if m.state != ServerState::Leader {
        return Err(errors::cluster_not_leader());
    }
    if m.membership_config.membership().voter_ids().count() < 2 {
        return Err(errors::cluster_no_peers("no replicas to step down to"));
    }
    stepping.store(true, Ordering::Release);
    raft.runtime_config().heartbeat(false);
    let me = m.id;
    let mut metrics = raft.metrics();
    let moved = tokio::time::timeout(Duration::from_secs(10), async {
        loop {
            {
                let now = metrics.borrow();
                if now.current_leader.is_some_and(|l| l != me) {
                    return;
                }
            }
            if metrics.changed().await.is_err() {
                return;
            }
        }
    })
    .await;
    raft.runtime_config().heartbeat(true);
    stepping.store(false, Ordering::Release);
    moved.map_err(|_| errors::cluster_not_avail())
}

/// The voters of `raft`'s membership as this server knows it.
pub(crate) fn voters(raft: &Raft<JsRaft>) -> std::collections::BTreeSet<u64> {
    raft.metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect()
}

/// The log index `id` has matched, as this leader's replication sees it.
pub(crate) fn matched(
    m: &natrix_raft::openraft::RaftMetrics<u64, BasicNode>,
    id: u64,
) -> Option<u64> {
    m.replication.as_ref()?.get(&id)?.as_ref().map(|l| l.index)
}

async fn futures_join(handles: Vec<tokio::task::JoinHandle<Result<(), ApiError>>>) {
    for h in handles {
        let _ = h.await;
    }
}

/// The Raft settings of JetStream's groups: a leader is replaced within two to four
/// seconds of going silent (openraft's leader lease is the longest election timeout, so
/// it also bounds how long a step-down takes).
fn raft_config() -> Config {
    // Tests make snapshots (and so catch-ups) happen after a few entries.
    let every = std::env::var("NATRIX_RAFT_SNAPSHOT_EVERY")
        .ok()
        .and_then(|v| v.parse::<u64>().ok())
        .filter(|n| *n > 0);
    Config {
        cluster_name: "natrix-jetstream".into(),
        // openraft gives every AppendEntries the heartbeat interval to be answered: long
        // enough for a follower's fsync on a busy disk, or replication stalls in retries.
        heartbeat_interval: 250,
        election_timeout_min: 1000,
        election_timeout_max: 2000,
        // A snapshot every 4,096 entries; the log before it (less the last 1,024) is
        // purged. A replica that needs purged entries gets the snapshot and copies the
        // messages from its leader's store (`catchup`).
        snapshot_policy: SnapshotPolicy::LogsSinceLast(every.unwrap_or(4096)),
        max_in_snapshot_log_to_keep: every.map_or(1024, |n| n / 10),
        snapshot_max_chunk_size: 256 << 10,
        // Small AppendEntries, each answered well within the heartbeat interval.
        max_payload_entries: 16,
        ..Config::default()
    }
}

impl Cluster {
    /// Opens the server's Raft database, starts the meta group and begins announcing.
    pub(crate) async fn start(
        js: &Arc<JetStreamInner>,
        config: ClusterConfig,
        accounts: Accounts,
    ) -> Result<Arc<Self>, crate::StartError> {
        let server = js.config.server_name.clone();
        let dir = js.config.store_dir.join("jetstream").join("_raft");
        std::fs::create_dir_all(&dir).map_err(|e| crate::StartError::StoreDir(e.to_string()))?;
        let path = dir.join("raft.redb");
        let db = tokio::task::spawn_blocking(move || RaftDb::open(&path))
            .await
            .map_err(|e| crate::StartError::Cluster(e.to_string()))?
            .map_err(|e| crate::StartError::Cluster(e.to_string()))?;
        let bus = raft_bus::SystemBus {
            bus: js.bus.clone(),
            account: js.config.system_account.clone(),
        };
        let manager = Manager::start(
            db,
            &bus,
            ManagerOptions {
                server_id: server.clone(),
                raft: raft_config(),
                transport: TransportOptions {
                    max_timeout: Duration::from_secs(3),
                    // Raft messages travel between natrix servers only, whose routes take
                    // any size: room for the largest entry a stream proposes (a batch of
                    // at most `stream::MAX_REPLICATED_BATCH_BYTES`, or one message of up to
                    // `max_payload`) with its framing.
                    max_payload: usize::try_from(js.config.limits.max_payload)
                        .unwrap_or(1 << 20)
                        .saturating_mul(2)
                        .max(crate::stream::MAX_REPLICATED_BATCH_BYTES * 4),
                    ..TransportOptions::default()
                },
            },
        )
        .await
        .map_err(|e| crate::StartError::Cluster(e.to_string()))?;
        let meta = manager
            .open_group(META_GROUP)
            .await
            .map_err(|e| crate::StartError::Cluster(e.to_string()))?;
        let (peer_tx, mut peer_rx) = mpsc::unbounded_channel::<crate::bus::Msg>();
        let conn = js
            .bus
            .connect(
                &js.config.system_account,
                Box::new(move |m| {
                    let _ = peer_tx.send(m);
                }),
            )
            .map_err(|e| crate::StartError::Bus(e.to_string()))?;
        for subject in [PEER_SUBJECT, META_STEPDOWN, SERVER_REMOVE] {
            conn.subscribe(subject, None)
                .map_err(|e| crate::StartError::Bus(e.to_string()))?;
        }
        let cluster = Arc::new(Self {
            server,
            config,
            manager,
            meta,
            accounts,
            seen: Mutex::default(),
            changed: Mutex::new((Vec::new(), Instant::now())),
            conn,
            bus: js.bus.clone(),
            stopped: AtomicBool::new(false),
            meta_stepping: AtomicBool::new(false),
        });
        tracing::info!(
            server = %cluster.server,
            node = cluster.manager.node_id(),
            "JetStream cluster: this server is Raft node {:016x}",
            cluster.manager.node_id()
        );
        let c = cluster.clone();
        tokio::spawn(async move {
            while let Some(m) = peer_rx.recv().await {
                if m.subject == PEER_SUBJECT {
                    c.on_announce(&m.payload);
                } else {
                    c.system_api(&m).await;
                }
            }
        });
        let (tx, rx) = mpsc::unbounded_channel::<Applied>();
        cluster.meta.state.with_machine_mut(|m| {
            m.set_sink(Box::new(move |a| {
                let _ = tx.send(a);
            }));
        });
        tokio::spawn(meta::apply_loop(cluster.clone(), rx));
        let c = cluster.clone();
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            while !c.stopped.load(Ordering::Acquire) {
                tick.tick().await;
                c.announce();
                c.bootstrap().await;
                if c.is_meta_leader() {
                    c.tend_membership().await;
                }
            }
        });
        Ok(cluster)
    }

    pub async fn shutdown(&self) {
        self.stopped.store(true, Ordering::Release);
        self.manager.shutdown().await;
    }

    pub fn node_id(&self) -> u64 {
        self.manager.node_id()
    }

    pub fn is_meta_leader(&self) -> bool {
        self.meta.raft.metrics().borrow().state == ServerState::Leader
            && !self.meta_stepping.load(Ordering::Acquire)
    }

    /// `META.LEADER.STEPDOWN`.
    pub async fn meta_step_down(&self) -> Result<(), ApiError> {
        step_down(&self.meta.raft, &self.meta_stepping).await
    }

    /// The meta leader's server name, if one is known.
    pub fn meta_leader(&self) -> Option<String> {
        let m = self.meta.raft.metrics().borrow().clone();
        let leader = m.current_leader?;
        m.membership_config
            .membership()
            .get_node(&leader)
            .map(|n| n.addr.clone())
    }

    /// Whether this server is in touch with a working meta group. A restarted server
    /// knows its last leader (itself, perhaps) from its stored vote before it has heard
    /// from anyone, so contact is judged by announcements: a follower hears its leader's,
    /// a leader those of a majority of the group.
    fn meta_contact(&self) -> bool {
        let Some(leader) = self.meta_leader() else {
            return false;
        };
        let live = self.live_peers();
        if leader != self.server {
            return live.contains_key(&leader);
        }
        let m = self.meta.raft.metrics().borrow().clone();
        let voters: Vec<u64> = m.membership_config.membership().voter_ids().collect();
        let heard = voters
            .iter()
            .filter(|id| live.values().any(|n| n == *id))
            .count();
        m.state == ServerState::Leader && heard * 2 > voters.len()
    }

    fn formed(&self) -> bool {
        !voters(&self.meta.raft).is_empty()
    }

    /// A copy of the meta state as applied here.
    pub fn meta_state(&self) -> MetaState {
        self.meta.state.with_machine(|m| m.meta.clone())
    }

    fn announce(&self) {
        let a = Announce {
            name: self.server.clone(),
            node: self.node_id(),
            cluster: self.config.name.clone(),
            formed: self.formed(),
            tags: self.config.tags.clone(),
            domain: self.config.domain.clone(),
        };
        if let Ok(b) = serde_json::to_vec(&a) {
            self.conn.publish(PEER_SUBJECT, None, &[], &b);
        }
    }

    fn on_announce(&self, payload: &[u8]) {
        let Ok(a) = serde_json::from_slice::<Announce>(payload) else {
            tracing::debug!("undecodable JetStream peer announcement");
            return;
        };
        if a.domain != self.config.domain {
            // Another domain's server (seen across a leaf node that shares the system
            // account) has its own meta group.
            return;
        }
        self.seen.lock().insert(
            a.name,
            Seen {
                node: a.node,
                cluster: a.cluster,
                formed: a.formed,
                tags: a.tags,
                at: Instant::now(),
            },
        );
    }

    /// Live peers of this domain, in every cluster of the supercluster (this server
    /// included): name → node id.
    pub fn live_peers(&self) -> BTreeMap<String, u64> {
        let mut out: BTreeMap<String, u64> = self
            .seen
            .lock()
            .iter()
            .filter(|(_, s)| s.at.elapsed() < PEER_FRESH)
            .map(|(n, s)| (n.clone(), s.node))
            .collect();
        out.insert(self.server.clone(), self.node_id());
        out
    }

    /// The cluster a live or once-seen peer belongs to.
    pub fn cluster_of(&self, name: &str) -> Option<String> {
        if name == self.server {
            return Some(self.config.name.clone());
        }
        self.seen.lock().get(name).map(|s| s.cluster.clone())
    }

    /// The `server_tags` of a live peer (this server's own from its config).
    fn tags_of(&self, name: &str) -> Vec<String> {
        if name == self.server {
            return self.config.tags.clone();
        }
        self.seen
            .lock()
            .get(name)
            .map(|s| s.tags.clone())
            .unwrap_or_default()
    }

    /// Whether server `name` may hold a stream placed with `placement`: in the named
    /// cluster, and carrying every tag asked for (tags compare without case, as in
    /// nats-server).
    pub fn fits(&self, name: &str, placement: Option<&crate::api::types::Placement>) -> bool {
        let Some(p) = placement else {
            return true;
        };
        if !p.cluster.is_empty() && self.cluster_of(name).as_deref() != Some(p.cluster.as_str()) {
            return false;
        }
        let tags = self.tags_of(name);
        p.tags
            .iter()
            .all(|want| tags.iter().any(|t| t.eq_ignore_ascii_case(want)))
    }

    /// Forms the meta group when none exists yet: the live peers have been still for a
    /// moment, they are as many as the routes promise (or a majority of them for a
    /// while), nobody reports a formed group, and this server has the lowest name among
    /// them. One server initialises; the others join when the leader adds them.
    async fn bootstrap(&self) {
        if self.formed() {
            return;
        }
        let live = self.live_peers();
        let names: Vec<String> = live.keys().cloned().collect();
        let since = {
            let mut ch = self.changed.lock();
            if ch.0 != names {
                *ch = (names.clone(), Instant::now());
            }
            ch.1.elapsed()
        };
        let someone_formed = self
            .seen
            .lock()
            .values()
            .any(|s| s.formed && s.at.elapsed() < PEER_FRESH);
        if someone_formed || names.first() != Some(&self.server) {
            return;
        }
        let expected = self.config.routes.max(1);
        let local = live
            .keys()
            .filter(|n| self.cluster_of(n).as_deref() == Some(self.config.name.as_str()))
            .count();
        // In a supercluster every gateway's cluster must have been heard from: a meta
        // group formed without them would be a second one once they form their own.
        let remote_heard = self.config.gateways.iter().all(|g| {
            live.keys()
                .any(|n| self.cluster_of(n).as_deref() == Some(g.as_str()))
        });
        let ready = (local >= expected && remote_heard && since >= SETTLE)
            || (local > expected / 2 && since >= SETTLE_MAJORITY);
        if !ready {
            return;
        }
        let members: BTreeMap<u64, BasicNode> = live
            .iter()
            .map(|(n, id)| (*id, BasicNode::new(n)))
            .collect();
        tracing::info!(peers = ?names, "JetStream cluster: forming the meta group");
        if let Err(e) = self.meta.raft.initialize(members).await {
            tracing::warn!("JetStream cluster: forming the meta group: {e}");
        }
    }

    /// The meta leader records every live peer's node id and makes it a voter; a server
    /// that came back with a new node id (its store wiped) replaces its old one.
    async fn tend_membership(&self) {
        let mut live = self.live_peers();
        let removed = self.meta_state().removed;
        live.retain(|_, id| !removed.contains(id));
        let known = self.meta_state().peers;
        for (name, node) in &live {
            if known.get(name) != Some(node) {
                let entry = Entry::Peer {
                    name: name.clone(),
                    node: *node,
                };
                if let Err(e) = self.meta.raft.client_write(entry).await {
                    tracing::debug!("recording peer {name}: {e}");
                    return;
                }
            }
        }
        // A server back with a new node id (its store wiped) takes its old id's place in
        // every stream it replicates; each stream's leader then changes its group.
        let state = self.meta_state();
        for a in state.assignments() {
            let renamed: Vec<(String, u64)> = a
                .peers
                .iter()
                .map(|(n, id)| (n.clone(), state.peers.get(n).copied().unwrap_or(*id)))
                .collect();
            if renamed != a.peers {
                let mut b = a.clone();
                b.peers = renamed;
                if let Err(e) = self
                    .meta
                    .raft
                    .client_write(Entry::AddStream(Box::new(b)))
                    .await
                {
                    tracing::debug!("re-placing {} > {}: {e}", a.account, a.stream);
                    return;
                }
            }
        }
        let metrics = self.meta.raft.metrics().borrow().clone();
        let membership = metrics.membership_config.membership().clone();
        let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
        let mut want = voters.clone();
        for (name, node) in &live {
            if !voters.contains(node) {
                if let Err(e) = self
                    .meta
                    .raft
                    .add_learner(*node, BasicNode::new(name), true)
                    .await
                {
                    tracing::debug!("adding {name} to the meta group: {e}");
                    return;
                }
                want.insert(*node);
            }
        }
        // A voter leaves only when its server came back under a new node id (its store
        // wiped) or was removed. One that is merely not heard from stays: right after a
        // restart nothing is heard yet, and the meta state that records the peers has not
        // been replayed either, so dropping the silent would shrink the group to one.
        want.retain(|v| {
            let replaced = membership
                .get_node(v)
                .and_then(|n| live.get(&n.addr))
                .is_some_and(|id| id != v);
            !replaced && !removed.contains(v)
        });
        if want != voters && !want.is_empty() {
            tracing::info!(voters = ?want, "JetStream cluster: meta group membership");
            if let Err(e) = self.meta.raft.change_membership(want, false).await {
                tracing::warn!("changing the meta group's membership: {e}");
            }
        }
    }

    /// `META.LEADER.STEPDOWN` and `SERVER.REMOVE` from the system account, answered by the
    /// meta leader.
    async fn system_api(self: &Arc<Self>, m: &crate::bus::Msg) {
        let Some(reply) = m.reply.as_deref() else {
            return;
        };
        if !self.is_meta_leader() {
            return;
        }
        let (kind, result) = if m.subject == META_STEPDOWN {
            ("meta_leader_stepdown", self.meta_step_down().await)
        } else {
            let result = match crate::api::json::decode_request::<
                crate::api::types::ServerRemoveRequest,
            >(&m.payload, false)
            {
                Ok(req) => meta::remove_server(self, &req).await,
                Err(e) => Err(e),
            };
            ("meta_server_remove", result)
        };
        let body = match result {
            Ok(()) => {
                serde_json::json!({"type": format!("io.nats.jetstream.api.v1.{kind}_response"), "success": true})
            }
            Err(e) => {
                serde_json::json!({"type": format!("io.nats.jetstream.api.v1.{kind}_response"), "error": e})
            }
        };
        if let Ok(b) = crate::api::json::to_vec(&body) {
            self.conn.publish(reply, None, &[], &b);
        }
    }

    /// `/raftz`: every group running here, under its account (the meta group under the
    /// system account), with its Raft state and its peers as this server sees them.
    pub async fn raftz(&self) -> serde_json::Value {
        let state = self.meta_state();
        let account_of = |group: &str| {
            state
                .assignments()
                .find(|a| a.group == group)
                .map(|a| a.account.clone())
        };
        let mut out = serde_json::Map::new();
        for g in self.manager.groups().await {
            let account = if &*g.name == META_GROUP {
                "$SYS".to_owned()
            } else {
                account_of(&g.name).unwrap_or_default()
            };
            let m = g.raft.metrics().borrow().clone();
            let membership = m.membership_config.membership();
            let name_of = |id: u64| membership.get_node(&id).map(|n| n.addr.clone());
            let last = m.last_log_index.unwrap_or(0);
            let peers: serde_json::Map<String, serde_json::Value> = membership
                .voter_ids()
                .chain(membership.learner_ids())
                .map(|id| {
                    let matched = matched(&m, id);
                    let mut p = serde_json::json!({
                        "name": name_of(id).unwrap_or_default(),
                        "voter": membership.voter_ids().any(|v| v == id),
                    });
                    if let (Some(o), Some(matched)) = (p.as_object_mut(), matched) {
                        o.insert("current".into(), (matched >= last).into());
                        o.insert("lag".into(), last.saturating_sub(matched).into());
                    }
                    (format!("{id:016x}"), p)
                })
                .collect();
            let v = serde_json::json!({
                "id": format!("{:016x}", m.id),
                "state": format!("{:?}", m.state).to_uppercase(),
                "term": m.current_term,
                "pindex": last,
                "applied": m.last_applied.map_or(0, |l| l.index),
                "leader": m.current_leader.and_then(name_of).unwrap_or_default(),
                "ever_had_leader": m.current_leader.is_some() || m.current_term > 0,
                "peers": peers,
            });
            if let serde_json::Value::Object(groups) =
                out.entry(account).or_insert_with(|| serde_json::json!({}))
            {
                groups.insert(g.name.to_string(), v);
            }
        }
        serde_json::Value::Object(out)
    }

    /// `/jsz`'s `meta_cluster`: the meta group as this server sees it.
    pub fn meta_json(&self) -> serde_json::Value {
        let m = self.meta.raft.metrics().borrow().clone();
        let membership = m.membership_config.membership();
        let name_of = |id: u64| membership.get_node(&id).map(|n| n.addr.clone());
        let mut v = serde_json::json!({
            "name": self.config.name,
            "peer": format!("{:016x}", self.node_id()),
            "cluster_size": membership.voter_ids().count(),
        });
        if let Some(o) = v.as_object_mut() {
            if let Some(l) = m.current_leader.and_then(name_of) {
                o.insert("leader".into(), l.into());
            }
            let last = m.last_log_index.unwrap_or(0);
            let replicas: Vec<serde_json::Value> = membership
                .voter_ids()
                .filter(|id| Some(*id) != m.current_leader)
                .map(|id| {
                    let matched = matched(&m, id);
                    let mut r = serde_json::json!({
                        "name": name_of(id).unwrap_or_default(),
                        "peer": format!("{id:016x}"),
                    });
                    if let (Some(o), Some(matched)) = (r.as_object_mut(), matched) {
                        o.insert("current".into(), (matched >= last).into());
                        o.insert("lag".into(), last.saturating_sub(matched).into());
                    }
                    r
                })
                .collect();
            if !replicas.is_empty() {
                o.insert("replicas".into(), replicas.into());
            }
        }
        v
    }

    /// The plain `/healthz` in a cluster: a meta leader is known, and every stream
    /// replica here has a leader that counts it current (nats-server's texts).
    pub async fn health(&self, accounts: &[Arc<JsAccount>]) -> Result<(), String> {
        if !self.meta_contact() {
            return Err("JetStream has not established contact with a meta leader".into());
        }
        // Every stream placed here runs here.
        let state = self.meta_state();
        for a in state.assignments() {
            if a.peers.iter().any(|(n, _)| *n == self.server)
                && !accounts
                    .iter()
                    .any(|acc| acc.name == a.account && acc.stream(&a.stream).is_some())
            {
                return Err(format!(
                    "JetStream stream '{} > {}' is not current",
                    a.account, a.stream
                ));
            }
        }
        for acc in accounts {
            for h in acc.streams() {
                let Some(r) = &h.replica else { continue };
                if r.is_leader() {
                    continue;
                }
                let not_current = || {
                    format!(
                        "JetStream stream '{} > {}' is not current",
                        acc.name, h.name
                    )
                };
                let subject = format!("$JS.API.STREAM.INFO.{}", h.name);
                let info = meta::request(acc, &subject, b"", Duration::from_secs(1))
                    .await
                    .ok_or_else(not_current)?;
                let current = info
                    .pointer("/cluster/replicas")
                    .and_then(serde_json::Value::as_array)
                    .is_some_and(|rs| {
                        rs.iter()
                            .any(|p| p["name"] == self.server.as_str() && p["current"] == true)
                    });
                if !current {
                    return Err(not_current());
                }
            }
        }
        Ok(())
    }

    /// Before a shutdown: every group this server leads hands leadership to another
    /// member (at most a few seconds in all), so writes pause for a hand-over rather
    /// than for an election timeout after the server is gone.
    pub async fn hand_over(&self, accounts: &[Arc<JsAccount>]) {
        let mut steps = Vec::new();
        for acc in accounts {
            for h in acc.streams() {
                if let Some(r) = h.replica.clone()
                    && r.is_leader()
                    && r.raft
                        .metrics()
                        .borrow()
                        .membership_config
                        .membership()
                        .voter_ids()
                        .count()
                        > 1
                {
                    steps.push(tokio::spawn(async move { r.step_down().await }));
                }
            }
        }
        if self.is_meta_leader() {
            let raft = self.meta.raft.clone();
            let flag = Arc::new(AtomicBool::new(false));
            steps.push(tokio::spawn(async move { step_down(&raft, &flag).await }));
        }
        let _ = tokio::time::timeout(Duration::from_secs(5), futures_join(steps)).await;
    }

    /// Proposes a meta entry; only the meta leader may.
    pub async fn propose_meta(&self, entry: Entry) -> Result<(), ApiError> {
        match self.meta.raft.client_write(entry).await {
            Ok(r) => match r.data {
                Outcome::Done => Ok(()),
                Outcome::Refused(why) if why == "stream name already in use" => {
                    Err(errors::stream_name_exist())
                }
                Outcome::Refused(why) if why == "stream not found" => {
                    Err(errors::stream_not_found())
                }
                Outcome::Refused(why) => {
                    tracing::warn!("meta proposal refused: {why}");
                    Err(errors::cluster_not_avail())
                }
            },
            Err(e) => {
                tracing::debug!("meta proposal: {e}");
                Err(errors::cluster_not_avail())
            }
        }
    }

    /// Picks `replicas` live peers not in `except` that fit `placement`: those with the
    /// fewest streams first; with `unique_tag` (say `az`), no two with the same value of
    /// that tag (`az:1`, `az:2`), and none without it. `except` are peers already kept
    /// (their `unique_tag` values are taken).
    ///
    /// A stream's replicas are all in one cluster, as in nats-server: the one named by
    /// `placement.cluster`, else the one its kept peers are in, else this (the meta
    /// leader's) cluster, and when that one cannot hold it, the other clusters of the
    /// supercluster by name.
    pub fn place(
        &self,
        replicas: usize,
        except: &[String],
        placement: Option<&crate::api::types::Placement>,
        unique_tag: Option<&str>,
    ) -> Result<Vec<(String, u64)>, ApiError> {
        self.place_preferring(None, replicas, except, placement, unique_tag)
    }

    /// [`Cluster::place`] for a new stream, trying cluster `first` (the asking client's,
    /// when it is another than this one) before this one.
    pub fn place_first_in(
        &self,
        first: Option<&str>,
        replicas: usize,
        placement: Option<&crate::api::types::Placement>,
        unique_tag: Option<&str>,
    ) -> Result<Vec<(String, u64)>, ApiError> {
        self.place_preferring(first, replicas, &[], placement, unique_tag)
    }

    fn place_preferring(
        &self,
        first: Option<&str>,
        replicas: usize,
        except: &[String],
        placement: Option<&crate::api::types::Placement>,
        unique_tag: Option<&str>,
    ) -> Result<Vec<(String, u64)>, ApiError> {
        let live = self.live_peers();
        let mut clusters: Vec<String> = live.keys().filter_map(|n| self.cluster_of(n)).collect();
        clusters.sort();
        clusters.dedup();
        let named = placement
            .map(|p| p.cluster.as_str())
            .filter(|c| !c.is_empty());
        if let Some(c) = named {
            if !clusters.iter().any(|k| k == c) {
                return Err(errors::cluster_no_peers(format!(
                    "no suitable peers for placement: unknown cluster {c:?}"
                )));
            }
            return self.place_in(c, replicas, except, placement, unique_tag);
        }
        if let Some(c) = except.iter().find_map(|n| self.cluster_of(n)) {
            return self.place_in(&c, replicas, except, placement, unique_tag);
        }
        let first = first.unwrap_or(&self.config.name);
        clusters.sort_by_key(|c| (c != first, *c != self.config.name));
        let mut first_err = None;
        for c in &clusters {
            match self.place_in(c, replicas, except, placement, unique_tag) {
                Ok(peers) => return Ok(peers),
                Err(e) => {
                    first_err.get_or_insert(e);
                }
            }
        }
        Err(first_err.unwrap_or_else(errors::insufficient_resources))
    }

    /// [`Cluster::place`] within one cluster.
    fn place_in(
        &self,
        cluster: &str,
        replicas: usize,
        except: &[String],
        placement: Option<&crate::api::types::Placement>,
        unique_tag: Option<&str>,
    ) -> Result<Vec<(String, u64)>, ApiError> {
        let state = self.meta_state();
        let live = self.live_peers();
        let mut voters = voters(&self.meta.raft);
        voters.retain(|id| !state.removed.contains(id));
        let mut load: BTreeMap<&str, usize> = BTreeMap::new();
        for a in state.assignments() {
            for (p, _) in &a.peers {
                *load.entry(p.as_str()).or_default() += 1;
            }
        }
        let unique_of = |name: &str| -> Option<String> {
            let prefix = format!("{}:", unique_tag?.to_ascii_lowercase());
            self.tags_of(name)
                .into_iter()
                .map(|t| t.to_ascii_lowercase())
                .find(|t| t.starts_with(&prefix))
        };
        let mut taken: std::collections::BTreeSet<String> =
            except.iter().filter_map(|n| unique_of(n)).collect();
        let mut candidates: Vec<(usize, String, u64)> = live
            .iter()
            .filter(|(n, id)| {
                // Recorded by the meta leader, or a member of the meta group already (a
                // group formed a moment ago has not recorded its peers yet).
                (state.peers.get(*n) == Some(id) || voters.contains(id))
                    && !except.contains(n)
                    && self.cluster_of(n).as_deref() == Some(cluster)
                    && self.fits(n, placement)
                    && (unique_tag.is_none() || unique_of(n).is_some())
            })
            .map(|(n, id)| (load.get(n.as_str()).copied().unwrap_or(0), n.clone(), *id))
            .collect();
        // The least loaded first; among equals, at random, so that the first peer (which
        // initialises the group and so usually leads it) is not always the same server.
        fastrand::shuffle(&mut candidates);
        candidates.sort_by_key(|(load, _, _)| *load);
        let mut out = Vec::new();
        for (_, n, id) in candidates {
            if out.len() == replicas {
                break;
            }
            if let Some(u) = unique_of(&n)
                && !taken.insert(u)
            {
                continue;
            }
            out.push((n, id));
        }
        if out.len() < replicas {
            let constrained = placement.is_some_and(|p| !p.tags.is_empty()) || unique_tag.is_some();
            return Err(if constrained {
                errors::cluster_no_peers("no suitable peers for placement")
            } else {
                errors::insufficient_resources()
            });
        }
        Ok(out)
    }

    /// Opens (or reopens) a stream's group here; the first peer initialises it.
    pub(crate) async fn open_stream_group(
        &self,
        a: &machine::StreamAssignment,
    ) -> Result<Group, String> {
        let group = self
            .manager
            .open_group(&a.group)
            .await
            .map_err(|e| e.to_string())?;
        let formed = !voters(&group.raft).is_empty();
        if !formed
            && a.initializer == self.node_id()
            && a.peers
                .iter()
                .any(|p| *p == (self.server.clone(), self.node_id()))
        {
            let members: BTreeMap<u64, BasicNode> = a
                .peers
                .iter()
                .map(|(n, id)| (*id, BasicNode::new(n)))
                .collect();
            if let Err(e) = group.raft.initialize(members).await {
                tracing::debug!(group = %a.group, "initialising: {e}");
            }
        }
        Ok(group)
    }

    /// A replica handle whose leader flag follows the group's metrics. While this
    /// replica leads, it also keeps the group's membership equal to the peers the meta
    /// group assigned (replicas added or removed, a wiped server's new node id).
    pub(crate) fn replica(self: &Arc<Self>, group: &Group, account: &str, stream: &str) -> Replica {
        let leader = Arc::new(AtomicBool::new(false));
        let flag = leader.clone();
        let mut metrics = group.raft.metrics();
        tokio::spawn(async move {
            loop {
                let is = metrics.borrow().state == ServerState::Leader;
                flag.store(is, Ordering::Release);
                if metrics.changed().await.is_err() {
                    flag.store(false, Ordering::Release);
                    return;
                }
            }
        });
        let (cluster, raft) = (self.clone(), group.raft.clone());
        let account_name = account.to_owned();
        let (account, stream) = (account.to_owned(), stream.to_owned());
        tokio::spawn(async move {
            let mut tick = tokio::time::interval(Duration::from_secs(1));
            loop {
                tick.tick().await;
                if raft.metrics().borrow().running_state.is_err()
                    || cluster.stopped.load(Ordering::Acquire)
                {
                    return;
                }
                let Some(a) = cluster
                    .meta
                    .state
                    .with_machine(|m| m.meta.stream(&account, &stream).cloned())
                else {
                    return;
                };
                reconcile(&raft, &a).await;
            }
        });
        Replica {
            raft: group.raft.clone(),
            group: group.name.to_string(),
            leader,
            stepping_down: Arc::default(),
            account: account_name,
            bus: self.bus.clone(),
        }
    }
}

/// On the group's leader: makes the voters the assignment's peers, adding new ones as
/// learners first (they catch up from the log before they count).
async fn reconcile(raft: &Raft<JsRaft>, a: &machine::StreamAssignment) {
    let m = raft.metrics().borrow().clone();
    if m.state != ServerState::Leader {
        return;
    }
    let membership = m.membership_config.membership();
    if membership.get_joint_config().len() > 1 {
        return;
    }
    let voters: std::collections::BTreeSet<u64> = membership.voter_ids().collect();
    let want: std::collections::BTreeSet<u64> = a.peers.iter().map(|(_, id)| *id).collect();
    if voters == want || want.is_empty() {
        return;
    }
    for (name, id) in &a.peers {
        if !voters.contains(id)
            && let Err(e) = raft.add_learner(*id, BasicNode::new(name), true).await
        {
            tracing::debug!(group = %a.group, "adding {name}: {e}");
            return;
        }
    }
    tracing::info!(group = %a.group, peers = ?a.peers, "stream group membership");
    if let Err(e) = raft.change_membership(want, false).await {
        tracing::warn!(group = %a.group, "changing membership: {e}");
    }
}
