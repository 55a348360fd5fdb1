//! Durability ordering, reopen, and group isolation of the redb Raft store.

use std::sync::Arc;
use std::time::Instant;

use natrix_raft::kv::{KvConfig, KvMachine, KvRequest};
use natrix_raft::{CommitInfo, GroupId, LogStore, RaftDb, RaftDbOptions, StateMachineStore};
use openraft::storage::{RaftLogStorage, RaftStateMachine};
use openraft::testing::log_id;
use openraft::{Entry, EntryPayload, Membership, RaftLogReader, RaftSnapshotBuilder, Vote};
use parking_lot::Mutex;

type Log = LogStore<KvConfig>;
type Sm = StateMachineStore<KvConfig, KvMachine>;

#[derive(Debug, Clone, PartialEq, Eq)]
enum Event {
    /// The writer committed batch `seq` (observer runs after `commit()` returned).
    Committed(u64),
    /// A flush callback ran; `readable` says whether a fresh read transaction (which sees
    /// only committed data) already had the entry.
    Flushed {
        group: u64,
        index: u64,
        readable: bool,
    },
}

fn entry(term: u64, index: u64, key: &str) -> Entry<KvConfig> {
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Normal(KvRequest {
            key: key.into(),
            value: format!("{key}@{index}"),
        }),
    }
}

fn membership_entry(term: u64, index: u64) -> Entry<KvConfig> {
    Entry {
        log_id: log_id(term, 1, index),
        payload: EntryPayload::Membership(Membership::new(
            vec![[1u64, 2, 3].into_iter().collect()],
            None,
        )),
    }
}

/// A database whose commits are recorded, with the shared event log and commit list.
type Recording = (RaftDb, Arc<Mutex<Vec<Event>>>, Arc<Mutex<Vec<CommitInfo>>>);

fn open_recording(path: &std::path::Path) -> Recording {
    let events = Arc::new(Mutex::new(Vec::new()));
    let commits = Arc::new(Mutex::new(Vec::new()));
    let (e, c) = (events.clone(), commits.clone());
    let db = RaftDb::open_with(
        path,
        RaftDbOptions {
            on_commit: Some(Arc::new(move |info: &CommitInfo| {
                // Lazy commits (the committed index alone) may skip the fsync; appends,
                // votes and snapshots never do (checked where they are answered).
                c.lock().push(*info);
                e.lock().push(Event::Committed(info.seq));
            })),
            ..Default::default()
        },
    )
    .expect("open");
    (db, events, commits)
}

/// True if the committed state of the database holds `index` of `group`'s log.
fn committed_has(db: &RaftDb, group: GroupId, index: u64) -> bool {
    let mut store: Log = db.log_store(group);
    // try_get_log_entries reads through a fresh redb read transaction: committed data only.
    let entries = futures_lite_block_on(store.try_get_log_entries(index..=index)).expect("read");
    entries.len() == 1
}

/// Runs a future to completion on the current thread (the store's reads do not await).
fn futures_lite_block_on<F: std::future::Future>(f: F) -> F::Output {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("rt");
    rt.block_on(f)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn flush_callback_runs_only_after_the_commit_holding_the_entries() {
    let dir = tempfile::tempdir().unwrap();
    let (db, events, commits) = open_recording(&dir.path().join("raft.redb"));

    // 40 groups append concurrently; each append carries 5 entries.
    let mut tasks = Vec::new();
    for g in 0..40u64 {
        let db = db.clone();
        let events = events.clone();
        tasks.push(tokio::spawn(async move {
            let group = db.group(&format!("g{g}")).await.unwrap();
            let mut store: Log = db.log_store(group);
            for round in 0..3u64 {
                let first = round * 5 + 1;
                let entries: Vec<_> = (first..first + 5).map(|i| entry(1, i, "k")).collect();
                let db2 = db.clone();
                let events2 = events.clone();
                store
                    .append_then(entries, move |result| {
                        result.expect("flush ok");
                        // Read from another thread so the check does not nest runtimes.
                        let readable =
                            std::thread::spawn(move || committed_has(&db2, group, first + 4))
                                .join()
                                .unwrap();
                        events2.lock().push(Event::Flushed {
                            group: group.0,
                            index: first + 4,
                            readable,
                        });
                    })
                    .await
                    .unwrap();
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }

    let events = events.lock().clone();
    let flushed: Vec<_> = events
        .iter()
        .filter(|e| matches!(e, Event::Flushed { .. }))
        .collect();
    assert_eq!(flushed.len(), 40 * 3);
    // Every callback saw its entries in committed state, and a commit was recorded before it.
    for (pos, e) in events.iter().enumerate() {
        if let Event::Flushed { readable, .. } = e {
            assert!(readable, "callback before commit: {e:?}");
            assert!(
                events[..pos]
                    .iter()
                    .any(|e| matches!(e, Event::Committed(_))),
                "no commit before {e:?}"
            );
        }
    }
    let commits = commits.lock().clone();
    let appends: usize = commits.iter().map(|c| c.ops).sum();
    assert!(appends >= 40 * 3 * 5, "{appends} ops committed");
    let max_batch = commits.iter().map(|c| c.requests).max().unwrap_or(0);
    println!(
        "{} commits for {} requests; largest batch {} requests",
        commits.len(),
        commits.iter().map(|c| c.requests).sum::<usize>(),
        max_batch
    );
    assert!(
        max_batch > 1,
        "concurrent groups' writes never shared a commit"
    );
}

#[tokio::test]
async fn save_vote_returns_after_its_commit() {
    let dir = tempfile::tempdir().unwrap();
    let (db, _events, commits) = open_recording(&dir.path().join("raft.redb"));
    let group = db.group("meta").await.unwrap();
    let mut store: Log = db.log_store(group);
    let before = commits.lock().len();
    store.save_vote(&Vote::new(7, 2)).await.unwrap();
    assert_eq!(
        commits.lock().len(),
        before + 1,
        "save_vote returned without a commit"
    );
    // A brand-new handle (fresh read transaction) sees it.
    let mut other: Log = db.log_store(group);
    assert_eq!(other.read_vote().await.unwrap(), Some(Vote::new(7, 2)));
}

#[tokio::test]
async fn reopen_keeps_log_vote_committed_and_snapshot() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft.redb");
    let group;
    {
        let db = RaftDb::open(&path).unwrap();
        group = db.group("stream-ORDERS").await.unwrap();
        let mut log: Log = db.log_store(group);
        let mut sm: Sm = db.state_machine(group).unwrap();
        let mut entries = vec![membership_entry(1, 1)];
        entries.extend((2..=20).map(|i| entry(1, i, &format!("k{}", i % 4))));
        log.append_then(entries.clone(), |r| r.unwrap())
            .await
            .unwrap();
        log.save_vote(&Vote::new_committed(3, 1)).await.unwrap();
        log.save_committed(Some(log_id(1, 1, 15))).await.unwrap();
        sm.apply(entries[..10].to_vec()).await.unwrap();
        let snap = sm
            .get_snapshot_builder()
            .await
            .build_snapshot()
            .await
            .unwrap();
        assert_eq!(snap.meta.last_log_id, Some(log_id(1, 1, 10)));
        log.purge(log_id(1, 1, 5)).await.unwrap();
        log.truncate(log_id(1, 1, 19)).await.unwrap();
        // Everything (stores, db) dropped here: the file is closed.
    }
    let db = RaftDb::open(&path).unwrap();
    assert_eq!(db.lookup_group("stream-ORDERS").unwrap(), Some(group));
    let mut log: Log = db.log_store(group);
    let mut sm: Sm = db.state_machine(group).unwrap();
    let state = log.get_log_state().await.unwrap();
    assert_eq!(state.last_purged_log_id, Some(log_id(1, 1, 5)));
    assert_eq!(state.last_log_id, Some(log_id(1, 1, 18)));
    assert_eq!(
        log.read_vote().await.unwrap(),
        Some(Vote::new_committed(3, 1))
    );
    assert_eq!(log.read_committed().await.unwrap(), Some(log_id(1, 1, 15)));
    let entries = log.try_get_log_entries(0..100).await.unwrap();
    assert_eq!(entries.len(), 13);
    assert_eq!(entries[0].log_id.index, 6);
    // The state machine comes back from the snapshot: applied up to 10, membership kept.
    let (applied, membership) = sm.applied_state().await.unwrap();
    assert_eq!(applied, Some(log_id(1, 1, 10)));
    assert_eq!(membership.log_id(), &Some(log_id(1, 1, 1)));
    let keys = sm.with_machine(|m| m.data.clone());
    assert_eq!(keys.get("k2").map(String::as_str), Some("k2@10"));
    let current = sm.get_current_snapshot().await.unwrap().expect("snapshot");
    assert_eq!(current.meta.last_log_id, Some(log_id(1, 1, 10)));
}

#[tokio::test]
async fn groups_in_one_database_are_isolated() {
    let dir = tempfile::tempdir().unwrap();
    let db = RaftDb::open(dir.path().join("raft.redb")).unwrap();
    let a = db.group("a").await.unwrap();
    let b = db.group("b").await.unwrap();
    assert_ne!(a, b);
    assert_eq!(db.group("a").await.unwrap(), a, "a name maps to one id");
    let mut la: Log = db.log_store(a);
    let mut lb: Log = db.log_store(b);
    la.append_then((1..=10).map(|i| entry(1, i, "a")), |r| r.unwrap())
        .await
        .unwrap();
    lb.append_then((1..=10).map(|i| entry(2, i, "b")), |r| r.unwrap())
        .await
        .unwrap();
    la.save_vote(&Vote::new(1, 1)).await.unwrap();
    lb.save_vote(&Vote::new(2, 3)).await.unwrap();
    la.truncate(log_id(1, 1, 4)).await.unwrap();
    lb.purge(log_id(2, 1, 6)).await.unwrap();

    let sa = la.get_log_state().await.unwrap();
    let sb = lb.get_log_state().await.unwrap();
    assert_eq!(
        (sa.last_purged_log_id, sa.last_log_id),
        (None, Some(log_id(1, 1, 3)))
    );
    assert_eq!(
        (sb.last_purged_log_id, sb.last_log_id),
        (Some(log_id(2, 1, 6)), Some(log_id(2, 1, 10)))
    );
    assert_eq!(la.read_vote().await.unwrap(), Some(Vote::new(1, 1)));
    assert_eq!(lb.read_vote().await.unwrap(), Some(Vote::new(2, 3)));
    assert!(
        la.try_get_log_entries(..)
            .await
            .unwrap()
            .iter()
            .all(|e| e.log_id.leader_id.term == 1)
    );
    assert_eq!(lb.try_get_log_entries(..).await.unwrap().len(), 4);

    // Removing a group deletes its records only, and its id is never handed out again.
    db.remove_group(a).await.unwrap();
    assert_eq!(db.lookup_group("a").unwrap(), None);
    assert!(la.try_get_log_entries(..).await.unwrap().is_empty());
    assert_eq!(la.read_vote().await.unwrap(), None);
    assert_eq!(lb.try_get_log_entries(..).await.unwrap().len(), 4);
    let a2 = db.group("a").await.unwrap();
    assert!(a2.0 > b.0, "id {a2} reused");
}

/// Resident set size of this process in KiB (Linux).
fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or(0)
}

/// Storage cost of idle groups: 1,000 groups, each initialised as a real one would be
/// (a vote, a membership entry, a committed id). Prints the figures; the bounds only
/// catch a gross regression.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn thousand_idle_groups_storage_cost() {
    const GROUPS: u64 = 1000;
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("raft.redb");
    let db = RaftDb::open(&path).unwrap();
    let empty_file = std::fs::metadata(&path).unwrap().len();
    let rss_before = rss_kib();
    let start = Instant::now();
    let mut tasks = Vec::new();
    for g in 0..GROUPS {
        let db = db.clone();
        tasks.push(tokio::spawn(async move {
            let group = db.group(&format!("S-R3F-{g:08}")).await.unwrap();
            let mut log: Log = db.log_store(group);
            let sm: Sm = db.state_machine(group).unwrap();
            log.save_vote(&Vote::new_committed(1, 1)).await.unwrap();
            log.append_then([membership_entry(1, 1)], |r| r.unwrap())
                .await
                .unwrap();
            log.save_committed(Some(log_id(1, 1, 1))).await.unwrap();
            (log, sm)
        }));
    }
    let mut handles = Vec::new();
    for t in tasks {
        handles.push(t.await.unwrap());
    }
    let elapsed = start.elapsed();
    let rss_after = rss_kib();
    let file = std::fs::metadata(&path).unwrap().len();
    let per_group_disk = (file.saturating_sub(empty_file)) / GROUPS;
    let per_group_rss = (rss_after.saturating_sub(rss_before)) * 1024 / GROUPS;
    println!(
        "{GROUPS} idle groups: file {empty_file} -> {file} bytes ({per_group_disk} B/group), \
         RSS +{} KiB ({per_group_rss} B/group incl. redb cache), handles {} B/group, {:?}",
        rss_after.saturating_sub(rss_before),
        std::mem::size_of::<(Log, Sm)>(),
        elapsed
    );
    assert_eq!(db.groups().unwrap().len() as u64, GROUPS);
    assert!(
        per_group_disk < 64 * 1024,
        "{per_group_disk} bytes per idle group on disk"
    );
    drop(handles);
}
