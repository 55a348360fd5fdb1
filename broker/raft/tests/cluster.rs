//! Three openraft nodes in one process, each on its own redb database, joined by an
//! in-memory network: elect a leader, replicate, kill the leader, elect another, restart
//! the killed node from its database and let it catch up. Bounded in time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use natrix_raft::kv::{KvConfig, KvMachine, KvRequest};
use natrix_raft::{LogStore, RaftDb, StateMachineStore};
use openraft::error::{InstallSnapshotError, RPCError, RaftError, RemoteError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{
    BasicNode, Config, Raft, RaftLogReader, RaftNetwork, RaftNetworkFactory, ServerState,
};
use parking_lot::Mutex;

type NodeId = u64;
type Rpc<E = openraft::error::Infallible> = RPCError<NodeId, BasicNode, RaftError<NodeId, E>>;

#[derive(Debug, thiserror::Error)]
#[error("node {0} is down")]
struct NodeDown(NodeId);

/// The running nodes, by id; a killed node is simply absent.
#[derive(Clone, Default)]
struct Router {
    nodes: Arc<Mutex<BTreeMap<NodeId, Raft<KvConfig>>>>,
}

impl Router {
    fn get(&self, target: NodeId) -> Result<Raft<KvConfig>, Unreachable> {
        self.nodes
            .lock()
            .get(&target)
            .cloned()
            .ok_or_else(|| Unreachable::new(&NodeDown(target)))
    }
}

struct Connection {
    router: Router,
    target: NodeId,
}

impl RaftNetworkFactory<KvConfig> for Router {
    type Network = Connection;
    async fn new_client(&mut self, target: NodeId, _node: &BasicNode) -> Connection {
        Connection {
            router: self.clone(),
            target,
        }
    }
}

fn remote<E: std::error::Error>(target: NodeId, e: RaftError<NodeId, E>) -> Rpc<E> {
    RPCError::RemoteError(RemoteError::new(target, e))
}

impl RaftNetwork<KvConfig> for Connection {
    async fn append_entries(
        &mut self,
        rpc: AppendEntriesRequest<KvConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<NodeId>, Rpc> {
        let raft = self.router.get(self.target)?;
        raft.append_entries(rpc)
            .await
            .map_err(|e| remote(self.target, e))
    }

    async fn install_snapshot(
        &mut self,
        rpc: InstallSnapshotRequest<KvConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<NodeId>, Rpc<InstallSnapshotError>> {
        let raft = self.router.get(self.target)?;
        raft.install_snapshot(rpc)
            .await
            .map_err(|e| remote(self.target, e))
    }

    async fn vote(
        &mut self,
        rpc: VoteRequest<NodeId>,
        _option: RPCOption,
    ) -> Result<VoteResponse<NodeId>, Rpc> {
        let raft = self.router.get(self.target)?;
        raft.vote(rpc).await.map_err(|e| remote(self.target, e))
    }
}

/// Starts node `id` on the database at `path` (created or reopened).
async fn start(
    router: &Router,
    id: NodeId,
    path: &PathBuf,
    config: Arc<Config>,
) -> (
    Raft<KvConfig>,
    RaftDb,
    StateMachineStore<KvConfig, KvMachine>,
) {
    let db = RaftDb::open(path).expect("open db");
    let group = db.group("test-group").await.expect("group");
    let log: LogStore<KvConfig> = db.log_store(group);
    let sm: StateMachineStore<KvConfig, KvMachine> = db.state_machine(group).expect("sm");
    let raft = Raft::new(id, config, router.clone(), log, sm.clone())
        .await
        .expect("raft");
    router.nodes.lock().insert(id, raft.clone());
    (raft, db, sm)
}

async fn write(raft: &Raft<KvConfig>, key: &str, value: &str) {
    raft.client_write(KvRequest {
        key: key.into(),
        value: value.into(),
    })
    .await
    .expect("client write");
}

async fn leader_among(nodes: &[&Raft<KvConfig>], not: Option<NodeId>) -> NodeId {
    loop {
        for raft in nodes {
            let m = raft.metrics().borrow().clone();
            if m.state == ServerState::Leader && Some(m.id) != not {
                return m.id;
            }
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn three_nodes_elect_replicate_fail_over_and_catch_up() {
    tokio::time::timeout(Duration::from_secs(60), scenario())
        .await
        .expect("cluster scenario took longer than 60 s");
}

async fn scenario() {
    let config = Arc::new(
        Config {
            heartbeat_interval: 100,
            election_timeout_min: 400,
            election_timeout_max: 800,
            ..Default::default()
        }
        .validate()
        .expect("config"),
    );
    let dir = tempfile::tempdir().unwrap();
    let paths: Vec<PathBuf> = (1..=3)
        .map(|i| dir.path().join(format!("n{i}.redb")))
        .collect();
    let router = Router::default();
    let mut nodes = BTreeMap::new();
    for id in 1..=3u64 {
        let node = start(&router, id, &paths[id as usize - 1], config.clone()).await;
        nodes.insert(id, node);
    }
    let members: BTreeMap<NodeId, BasicNode> = (1..=3).map(|i| (i, BasicNode::default())).collect();
    nodes[&1].0.initialize(members).await.expect("initialize");

    // A leader is elected.
    let rafts: Vec<_> = nodes.values().map(|n| &n.0).collect();
    let leader = leader_among(&rafts, None).await;
    for i in 0..20 {
        write(&nodes[&leader].0, &format!("k{i}"), &format!("v{i}")).await;
    }
    let last = nodes[&leader].0.metrics().borrow().last_log_index;
    for (id, (raft, db, sm)) in &nodes {
        raft.wait(Some(Duration::from_secs(10)))
            .applied_index_at_least(last, format!("node {id} applies"))
            .await
            .expect("replicated");
        assert_eq!(sm.with_machine(|m| m.data.len()), 20, "node {id}");
        // The entries are in this node's redb file.
        let group = db.lookup_group("test-group").unwrap().unwrap();
        let mut log: LogStore<KvConfig> = db.log_store(group);
        let stored = log.try_get_log_entries(..).await.unwrap();
        assert!(
            stored.len() >= 20,
            "node {id} stores {} entries",
            stored.len()
        );
    }

    // Kill the leader: gone from the network, its tasks stopped, its database closed.
    let (old, _db, _sm) = nodes.remove(&leader).unwrap();
    router.nodes.lock().remove(&leader);
    old.shutdown().await.expect("shutdown");
    drop((old, _db, _sm));

    let rafts: Vec<_> = nodes.values().map(|n| &n.0).collect();
    let new_leader =
        tokio::time::timeout(Duration::from_secs(15), leader_among(&rafts, Some(leader)))
            .await
            .expect("no new leader within 15 s");
    assert_ne!(new_leader, leader);
    for i in 20..30 {
        write(&nodes[&new_leader].0, &format!("k{i}"), &format!("v{i}")).await;
    }

    // Restart the killed node from its database: it keeps its log and vote and catches up.
    let restarted = start(&router, leader, &paths[leader as usize - 1], config.clone()).await;
    let last = nodes[&new_leader].0.metrics().borrow().last_log_index;
    restarted
        .0
        .wait(Some(Duration::from_secs(15)))
        .applied_index_at_least(last, "restarted node catches up")
        .await
        .expect("caught up");
    assert_eq!(restarted.2.with_machine(|m| m.data.len()), 30);
    let voters: BTreeSet<NodeId> = restarted
        .0
        .metrics()
        .borrow()
        .membership_config
        .membership()
        .voter_ids()
        .collect();
    assert_eq!(voters, (1..=3).collect());
    nodes.insert(leader, restarted);

    for (raft, _, _) in nodes.values() {
        raft.shutdown().await.expect("shutdown");
    }
}
