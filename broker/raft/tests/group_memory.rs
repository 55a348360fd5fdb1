//! What an idle openraft group costs in this process: 1,000 single-member groups on one
//! redb database, each elected leader of itself, then left idle. Prints RSS and disk per
//! group (run with `--nocapture`); the bound only catches a gross regression. Its own
//! test binary, so that no other test's allocations count.

use std::sync::Arc;
use std::time::{Duration, Instant};

use natrix_raft::RaftDb;
use natrix_raft::kv::{KvConfig, KvMachine};
use natrix_raft::{LogStore, StateMachineStore};
use openraft::error::{InstallSnapshotError, RPCError, RaftError, Unreachable};
use openraft::network::RPCOption;
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse,
    VoteRequest, VoteResponse,
};
use openraft::{BasicNode, Config, Raft, RaftNetwork, RaftNetworkFactory, ServerState};

type Rpc<E = openraft::error::Infallible> = RPCError<u64, BasicNode, RaftError<u64, E>>;

#[derive(Debug, thiserror::Error)]
#[error("single-member groups have no peers")]
struct NoPeers;

/// Single-member groups never send RPCs.
struct NoNetwork;

impl RaftNetworkFactory<KvConfig> for NoNetwork {
    type Network = NoNetwork;
    async fn new_client(&mut self, _target: u64, _node: &BasicNode) -> NoNetwork {
        NoNetwork
    }
}

impl RaftNetwork<KvConfig> for NoNetwork {
    async fn append_entries(
        &mut self,
        _rpc: AppendEntriesRequest<KvConfig>,
        _option: RPCOption,
    ) -> Result<AppendEntriesResponse<u64>, Rpc> {
        Err(Unreachable::new(&NoPeers).into())
    }
    async fn install_snapshot(
        &mut self,
        _rpc: InstallSnapshotRequest<KvConfig>,
        _option: RPCOption,
    ) -> Result<InstallSnapshotResponse<u64>, Rpc<InstallSnapshotError>> {
        Err(Unreachable::new(&NoPeers).into())
    }
    async fn vote(
        &mut self,
        _rpc: VoteRequest<u64>,
        _option: RPCOption,
    ) -> Result<VoteResponse<u64>, Rpc> {
        Err(Unreachable::new(&NoPeers).into())
    }
}

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_idle_raft_groups_memory() {
    const GROUPS: usize = 1000;
    let config = Arc::new(
        Config {
            heartbeat_interval: 1000,
            election_timeout_min: 4000,
            election_timeout_max: 9000,
            ..Default::default()
        }
        .validate()
        .unwrap(),
    );
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft.redb");
    let db = RaftDb::open(&path).unwrap();
    let file_before = std::fs::metadata(&path).unwrap().len();
    let rss_before = rss_kib();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for g in 0..GROUPS {
        let db = db.clone();
        let config = config.clone();
        tasks.push(tokio::spawn(async move {
            let group = db.group(&format!("S-R1-{g:06}")).await.unwrap();
            let log: LogStore<KvConfig> = db.log_store(group);
            let sm: StateMachineStore<KvConfig, KvMachine> = db.state_machine(group).unwrap();
            let raft = Raft::new(1, config, NoNetwork, log, sm).await.unwrap();
            raft.initialize(
                [(1u64, BasicNode::default())]
                    .into_iter()
                    .collect::<std::collections::BTreeMap<_, _>>(),
            )
            .await
            .unwrap();
            raft.wait(Some(Duration::from_secs(30)))
                .state(ServerState::Leader, "self-elected")
                .await
                .unwrap();
            raft
        }));
    }
    let mut rafts = Vec::new();
    for t in tasks {
        rafts.push(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    // Let allocations settle into the idle state (a few heartbeat ticks).
    tokio::time::sleep(Duration::from_millis(1500)).await;
    let rss_after = rss_kib();
    let file_after = std::fs::metadata(&path).unwrap().len();
    let rss_per_group = rss_after.saturating_sub(rss_before) * 1024 / GROUPS as u64;
    let disk_per_group = file_after.saturating_sub(file_before) / GROUPS as u64;
    println!(
        "{GROUPS} idle Raft groups (openraft 0.9.25, one redb): started in {elapsed:?}; RSS {rss_before} -> {rss_after} KiB \
         = {rss_per_group} B/group; file {file_before} -> {file_after} B = {disk_per_group} B/group"
    );
    assert!(
        rss_per_group < 512 * 1024,
        "{rss_per_group} B of RSS per idle group"
    );
    for raft in rafts {
        raft.shutdown().await.unwrap();
    }
}
