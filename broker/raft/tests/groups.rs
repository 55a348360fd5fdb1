//! Three "servers" in one process, joined by the in-memory bus, each with its own redb
//! database and group manager, running 50 groups replicated on all three: every group
//! elects a leader and replicates writes; one server stops and every group re-elects
//! among the survivors and keeps taking writes; the server restarts from its database,
//! keeps its node id and catches up in every group. Bounded in time.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use natrix_raft::kv::{KvConfig, KvMachine, KvRequest};
use natrix_raft::{GroupManager, ManagerOptions, MemBus, RaftDb, TransportOptions};
use openraft::error::{ClientWriteError, RaftError};
use openraft::{BasicNode, Config, ServerState};

const GROUPS: usize = 50;
const WRITES: usize = 5;

type Manager = GroupManager<KvConfig, KvMachine>;

fn options(server: &str) -> ManagerOptions {
    ManagerOptions {
        server_id: server.to_owned(),
        raft: Config {
            heartbeat_interval: 200,
            election_timeout_min: 1000,
            election_timeout_max: 2000,
            ..Default::default()
        },
        transport: TransportOptions {
            max_timeout: Duration::from_secs(2),
            ..Default::default()
        },
    }
}

async fn start(bus: &MemBus, server: &str, path: &Path) -> Arc<Manager> {
    // The previous incarnation's file lock goes when its last handle is dropped; allow
    // its tasks a moment to finish.
    let mut tries = 0;
    let db = loop {
        match RaftDb::open(path) {
            Ok(db) => break db,
            Err(e) if tries < 50 => {
                tries += 1;
                tracing::debug!("reopening {}: {e}", path.display());
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("open {}: {e}", path.display()),
        }
    };
    Arc::new(
        Manager::start(db, bus, options(server))
            .await
            .expect("start manager"),
    )
}

fn group_name(i: usize) -> String {
    format!("S-R3F-{i:04}")
}

/// Waits until `group` has a leader among `servers`, known to that leader itself.
async fn leader_of(servers: &[&Arc<Manager>], group: &str) -> u64 {
    loop {
        for m in servers {
            if let Some(g) = m.group(group).await {
                let metrics = g.raft.metrics().borrow().clone();
                if metrics.state == ServerState::Leader {
                    return metrics.id;
                }
            }
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
}

/// Writes `key = value` in `group` through its current leader among `servers`, retrying
/// while leadership moves.
async fn write(servers: &[&Arc<Manager>], group: &str, key: String, value: String) -> u64 {
    loop {
        let leader = leader_of(servers, group).await;
        let Some(m) = servers.iter().find(|m| m.node_id() == leader) else {
            continue;
        };
        let Some(g) = m.group(group).await else {
            continue;
        };
        let req = KvRequest {
            key: key.clone(),
            value: value.clone(),
        };
        match g.raft.client_write(req).await {
            Ok(resp) => return resp.log_id.index,
            Err(RaftError::APIError(ClientWriteError::ForwardToLeader(_))) => {
                tokio::time::sleep(Duration::from_millis(25)).await;
            }
            Err(e) => panic!("write in {group}: {e}"),
        }
    }
}

/// Writes `WRITES` entries in every group, `round` naming them, all groups at once;
/// returns each group's last written index.
async fn write_all(servers: &[&Arc<Manager>], round: usize) -> BTreeMap<String, u64> {
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..GROUPS {
        let servers: Vec<Arc<Manager>> = servers.iter().map(|m| Arc::clone(m)).collect();
        tasks.spawn(async move {
            let refs: Vec<&Arc<Manager>> = servers.iter().collect();
            let name = group_name(i);
            let mut last = 0;
            for w in 0..WRITES {
                last = write(&refs, &name, format!("r{round}-k{w}"), format!("v{w}")).await;
            }
            (name, last)
        });
    }
    let mut out = BTreeMap::new();
    while let Some(r) = tasks.join_next().await {
        let (name, last) = r.expect("writer task");
        out.insert(name, last);
    }
    out
}

/// Waits until every group on each of `servers` has applied up to its last write and
/// holds `keys` keys.
async fn all_applied(servers: &[&Arc<Manager>], last: &BTreeMap<String, u64>, keys: usize) {
    for m in servers {
        for (name, &index) in last {
            let g = m.group(name).await.expect("group running");
            g.raft
                .wait(Some(Duration::from_secs(30)))
                .applied_index_at_least(Some(index), format!("{} applies {name}", m.server_id()))
                .await
                .expect("applied");
            assert_eq!(
                g.state.with_machine(|s| s.data.len()),
                keys,
                "{name} on {}",
                m.server_id()
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fifty_groups_on_three_servers_fail_over_and_catch_up() {
    let _ = tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| "warn,openraft=off".into()),
        )
        .with_test_writer()
        .try_init();
    tokio::time::timeout(Duration::from_secs(150), scenario())
        .await
        .expect("scenario took longer than 150 s");
}

async fn scenario() {
    let dir = tempfile::tempdir().unwrap();
    let bus = MemBus::new();
    let ids = ["S1", "S2", "S3"];
    let paths: Vec<PathBuf> = ids
        .iter()
        .map(|s| dir.path().join(format!("{s}.redb")))
        .collect();
    let mut servers = Vec::new();
    for (id, path) in ids.iter().zip(&paths) {
        servers.push(start(&bus, id, path).await);
    }
    let node_ids: BTreeSet<u64> = servers.iter().map(|m| m.node_id()).collect();
    assert_eq!(node_ids.len(), 3, "node ids differ");
    let members: BTreeMap<u64, BasicNode> = servers.iter().map(|m| m.node()).collect();

    // Every server runs every group; server 1 initialises each with all three members.
    let t = Instant::now();
    for i in 0..GROUPS {
        for m in &servers {
            m.open_group(&group_name(i)).await.expect("open group");
        }
        let g = servers[0].group(&group_name(i)).await.unwrap();
        g.raft
            .initialize(members.clone())
            .await
            .expect("initialize");
    }
    let all: Vec<&Arc<Manager>> = servers.iter().collect();
    let mut leaders: BTreeMap<u64, usize> = BTreeMap::new();
    for i in 0..GROUPS {
        *leaders
            .entry(leader_of(&all, &group_name(i)).await)
            .or_default() += 1;
    }
    eprintln!(
        "{GROUPS} groups × 3: all leaders elected in {:?} (leaders per node: {leaders:?})",
        t.elapsed()
    );

    let t = Instant::now();
    let last = write_all(&all, 1).await;
    all_applied(&all, &last, WRITES).await;
    eprintln!(
        "{} writes replicated to 3 servers in {:?}",
        GROUPS * WRITES,
        t.elapsed()
    );

    // Stop the server leading the most groups: its members, transport and database go.
    let (&busiest, _) = leaders.iter().max_by_key(|(_, n)| **n).unwrap();
    let victim = servers.iter().position(|m| m.node_id() == busiest).unwrap();
    let stopped = servers.remove(victim);
    let stopped_node = stopped.node_id();
    let t = Instant::now();
    stopped.shutdown().await;
    drop(stopped);
    let survivors: Vec<&Arc<Manager>> = servers.iter().collect();
    for i in 0..GROUPS {
        let leader = leader_of(&survivors, &group_name(i)).await;
        assert_ne!(leader, stopped_node);
    }
    eprintln!(
        "{} stopped: every group has a leader among the survivors after {:?}",
        ids[victim],
        t.elapsed()
    );
    let t = Instant::now();
    let last = write_all(&survivors, 2).await;
    all_applied(&survivors, &last, 2 * WRITES).await;
    eprintln!(
        "{} writes replicated to the 2 survivors in {:?}",
        GROUPS * WRITES,
        t.elapsed()
    );

    // The stopped server comes back from its database: same node id, every group
    // restarted, and each catches up.
    let t = Instant::now();
    let back = start(&bus, ids[victim], &paths[victim]).await;
    assert_eq!(back.node_id(), stopped_node, "node id kept across restart");
    let reopened = back.open_stored_groups().await.expect("reopen groups");
    assert_eq!(reopened.len(), GROUPS);
    drop(reopened);
    servers.push(back);
    let all: Vec<&Arc<Manager>> = servers.iter().collect();
    all_applied(&all, &last, 2 * WRITES).await;
    eprintln!(
        "{} restarted and caught up in {GROUPS} groups in {:?}",
        ids[victim],
        t.elapsed()
    );
    // And takes part again: a third round reaches all three.
    let last = write_all(&all, 3).await;
    all_applied(&all, &last, 3 * WRITES).await;

    for m in &servers {
        m.shutdown().await;
    }
}
