//! What replicated groups cost: N groups on three "servers" in one process over the
//! in-memory bus, every group on all three, all leaders elected, then idle. N is 200 by
//! default, to keep the test command short; the figures in docs/design/raft.md are for
//! `NATRIX_RAFT_MEM_GROUPS=1000`. Prints RSS per group replica and the idle message rate
//! (run with `--nocapture`); the bound only catches a gross regression. Its own test
//! binary, so that no other test's allocations count.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use natrix_raft::kv::{KvConfig, KvMachine};
use natrix_raft::{GroupManager, ManagerOptions, MemBus, RaftDb, TransportOptions};
use openraft::{BasicNode, Config, ServerState};

type Manager = GroupManager<KvConfig, KvMachine>;

fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicated_groups_memory() {
    tokio::time::timeout(Duration::from_secs(240), measure())
        .await
        .expect("took longer than 240 s");
}

async fn measure() {
    let groups: usize = std::env::var("NATRIX_RAFT_MEM_GROUPS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200);
    let dir = tempfile::tempdir().unwrap();
    let bus = MemBus::new();
    let rss_before = rss_kib();
    let start = Instant::now();
    let mut servers = Vec::new();
    for s in ["S1", "S2", "S3"] {
        let db = RaftDb::open(dir.path().join(format!("{s}.redb"))).unwrap();
        let options = ManagerOptions {
            server_id: s.to_owned(),
            // nats-server's timers for stream groups: idle groups are cheap.
            raft: Config {
                heartbeat_interval: 1000,
                election_timeout_min: 4000,
                election_timeout_max: 9000,
                ..Default::default()
            },
            transport: TransportOptions::default(),
        };
        servers.push(Arc::new(Manager::start(db, &bus, options).await.unwrap()));
    }
    let members: BTreeMap<u64, BasicNode> = servers.iter().map(|m| m.node()).collect();
    // Open the groups on the three servers at once.
    let mut tasks = tokio::task::JoinSet::new();
    for m in &servers {
        let m = m.clone();
        tasks.spawn(async move {
            for g in 0..groups {
                m.open_group(&format!("S-R3F-{g:06}")).await.unwrap();
            }
        });
    }
    while let Some(r) = tasks.join_next().await {
        r.unwrap();
    }
    let opened = start.elapsed();
    for g in 0..groups {
        let grp = servers[0].group(&format!("S-R3F-{g:06}")).await.unwrap();
        grp.raft.initialize(members.clone()).await.unwrap();
    }
    for g in 0..groups {
        let grp = servers[0].group(&format!("S-R3F-{g:06}")).await.unwrap();
        grp.raft
            .wait(Some(Duration::from_secs(60)))
            .state(ServerState::Leader, "leader")
            .await
            .unwrap();
    }
    let elected = start.elapsed();
    // Let allocations settle into the idle state (a few heartbeats), then measure.
    tokio::time::sleep(Duration::from_secs(3)).await;
    let rss_after = rss_kib();
    let msgs_before = bus.published();
    let window = Duration::from_secs(5);
    tokio::time::sleep(window).await;
    let rate = (bus.published() - msgs_before) as f64 / window.as_secs_f64();
    let replicas = (groups * 3) as u64;
    let per_replica = rss_after.saturating_sub(rss_before) * 1024 / replicas;
    println!(
        "{groups} groups × 3 replicas (openraft 0.9.25, heartbeat 1 s, MemBus): opened in {opened:?}, \
         all leaders in {elected:?}; RSS {rss_before} -> {rss_after} KiB = {per_replica} B per replica, \
         {} B per group; idle traffic {rate:.0} msgs/s (requests + replies)",
        per_replica * 3
    );
    assert!(per_replica < 512 * 1024, "{per_replica} B per replica");
    // One heartbeat a second from each leader to each of two followers, and its answer,
    // would be 4 messages a second per group sent one by one; batched per target server,
    // they must come to well under half of that.
    let unbatched = (groups * 4) as f64;
    assert!(
        rate < unbatched / 2.0,
        "idle traffic {rate:.0} msgs/s for {groups} groups: heartbeats not batched ({unbatched:.0} unbatched)"
    );
    for m in &servers {
        m.shutdown().await;
    }
}
