//! openraft's storage conformance suite (`openraft::testing::Suite::test_all`) on the redb
//! store: once with a fresh database per store, once with every store a new group in one
//! shared database (which also shows that groups do not see each other's records).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use natrix_raft::kv::{KvConfig, KvMachine};
use natrix_raft::{LogStore, RaftDb, StateMachineStore};
use openraft::StorageError;
use openraft::testing::{StoreBuilder, Suite};

type Log = LogStore<KvConfig>;
type Sm = StateMachineStore<KvConfig, KvMachine>;

fn io_err(e: natrix_raft::StoreError) -> StorageError<u64> {
    openraft::StorageIOError::write(openraft::AnyError::new(&e)).into()
}

/// A new database in a new temporary directory per store.
struct FreshDb;

impl StoreBuilder<KvConfig, Log, Sm, tempfile::TempDir> for FreshDb {
    async fn build(&self) -> Result<(tempfile::TempDir, Log, Sm), StorageError<u64>> {
        let dir = tempfile::tempdir().map_err(|e| io_err(e.into()))?;
        let db = RaftDb::open(dir.path().join("raft.redb")).map_err(io_err)?;
        let group = db.group("suite").await.map_err(io_err)?;
        let sm = db.state_machine(group).map_err(io_err)?;
        Ok((dir, db.log_store(group), sm))
    }
}

/// One database; each store is a new group in it.
struct SharedDb {
    _dir: tempfile::TempDir,
    db: RaftDb,
    next: Arc<AtomicU64>,
}

impl StoreBuilder<KvConfig, Log, Sm, ()> for SharedDb {
    async fn build(&self) -> Result<((), Log, Sm), StorageError<u64>> {
        // Fill the neighbouring groups first so that isolation is really exercised.
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let group = self.db.group(&format!("suite-{n}")).await.map_err(io_err)?;
        let sm = self.db.state_machine(group).map_err(io_err)?;
        Ok(((), self.db.log_store(group), sm))
    }
}

#[test]
fn suite_fresh_database_per_store() {
    Suite::test_all(FreshDb).expect("conformance suite");
}

#[test]
fn suite_many_groups_in_one_database() {
    let dir = tempfile::tempdir().expect("tempdir");
    let db = RaftDb::open(dir.path().join("raft.redb")).expect("open");
    let builder = SharedDb {
        _dir: dir,
        db: db.clone(),
        next: Arc::new(AtomicU64::new(0)),
    };
    Suite::test_all(builder).expect("conformance suite");
    // Every test built at least one group; all of them are still there, distinct.
    let groups = db.groups().expect("groups");
    assert!(groups.len() >= 30, "{} groups", groups.len());
}
