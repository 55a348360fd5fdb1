//! One redb database per server holding the Raft state of all its groups.
//!
//! [`RaftDb`] owns the database file and its writer thread (see [`crate::writer`]); the
//! per-group handles ([`LogStore`], [`StateMachineStore`]) are cheap clones that name
//! their group. Reads go straight to redb read transactions: they see only committed
//! (hence durable) data, which is why a write is awaited until its commit before it is
//! reported done.

use std::path::Path;
use std::sync::{Arc, mpsc};
use std::thread::JoinHandle;

use parking_lot::Mutex;
use redb::{Database, ReadTransaction, ReadableDatabase as _, ReadableTable as _};
use tokio::sync::oneshot;

use crate::error::{DbResultExt as _, StoreError};
use crate::log_store::LogStore;
use crate::state_machine::{StateMachine, StateMachineStore};
use crate::tables::{COUNTERS, GROUPS, LOG, NODE_ID, SNAPSHOT, STATE};
use crate::writer::{self, CommitObserver, Op, Request};

/// The numeric id of a Raft group inside one server's database. Allocated once per group
/// name and never reused.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct GroupId(pub u64);

impl std::fmt::Display for GroupId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "g{}", self.0)
    }
}

/// How to open a [`RaftDb`].
#[derive(Default, Clone)]
pub struct RaftDbOptions {
    /// redb's page cache in bytes; `None` keeps redb's default.
    pub cache_bytes: Option<usize>,
    /// Told about every commit before its requests are answered (metrics, tests).
    pub on_commit: Option<CommitObserver>,
}

/// A server's Raft database. Clones share it; the file is closed when the last clone
/// (including those inside group handles) is dropped.
#[derive(Clone)]
pub struct RaftDb {
    inner: Arc<Inner>,
}

struct Inner {
    db: Arc<Database>,
    /// `None` only while dropping.
    tx: Mutex<Option<mpsc::Sender<Request>>>,
    writer: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Inner {
    fn drop(&mut self) {
        // Closing the channel ends the writer loop; joining it releases its handle on the
        // database, so the file is unlocked when this returns and can be reopened.
        self.tx.lock().take();
        if let Some(handle) = self.writer.lock().take()
            && handle.join().is_err()
        {
            tracing::error!("raft database writer panicked");
        }
    }
}

impl RaftDb {
    /// Opens (or creates) the database at `path`.
    pub fn open(path: impl AsRef<Path>) -> Result<Self, StoreError> {
        Self::open_with(path, RaftDbOptions::default())
    }

    /// Opens (or creates) the database at `path` with `options`.
    pub fn open_with(path: impl AsRef<Path>, options: RaftDbOptions) -> Result<Self, StoreError> {
        let mut builder = Database::builder();
        if let Some(bytes) = options.cache_bytes {
            builder.set_cache_size(bytes);
        }
        let db = builder.create(path.as_ref()).db()?;
        // Create every table up front so that read transactions never meet a missing one.
        let txn = db.begin_write().db()?;
        {
            txn.open_table(GROUPS).db()?;
            txn.open_table(COUNTERS).db()?;
            txn.open_table(LOG).db()?;
            txn.open_table(STATE).db()?;
            txn.open_table(SNAPSHOT).db()?;
        }
        txn.commit().db()?;

        let db = Arc::new(db);
        let (tx, rx) = mpsc::channel();
        let writer_db = db.clone();
        let observer = options.on_commit.clone();
        let handle = std::thread::Builder::new()
            .name("raft-db-writer".into())
            .spawn(move || writer::run(writer_db, rx, observer))
            .map_err(StoreError::Io)?;
        tracing::debug!(path = %path.as_ref().display(), "raft database opened");
        Ok(Self {
            inner: Arc::new(Inner {
                db,
                tx: Mutex::new(Some(tx)),
                writer: Mutex::new(Some(handle)),
            }),
        })
    }

    /// Finds or creates the group called `name` (for example `_meta_` or a stream's
    /// group name) and returns its id.
    pub async fn group(&self, name: &str) -> Result<GroupId, StoreError> {
        if name.is_empty() {
            return Err(StoreError::InvalidGroupName(name.to_owned()));
        }
        if let Some(id) = self.lookup_group(name)? {
            return Ok(id);
        }
        let reply = self
            .write(vec![Op::RegisterGroup {
                name: name.to_owned(),
            }])
            .await?;
        reply.map(GroupId).ok_or(StoreError::WriterGone)
    }

    /// This server's Raft node id: the one stored in the database, or, in a new database,
    /// `fresh()` stored durably before it is returned.
    ///
    /// The id belongs to the database, not to the server name: a server whose database is
    /// wiped comes back as a new node, because it has lost the votes and log entries its
    /// old id promised (reusing the id could elect two leaders in one term).
    pub async fn node_id_or_init(&self, fresh: impl FnOnce() -> u64) -> Result<u64, StoreError> {
        {
            let txn = self.read()?;
            let counters = txn.open_table(COUNTERS).db()?;
            if let Some(v) = counters.get(NODE_ID).db()? {
                return Ok(v.value());
            }
        }
        let reply = self
            .write(vec![Op::InitCounter {
                name: NODE_ID,
                value: fresh(),
            }])
            .await?;
        reply.ok_or(StoreError::WriterGone)
    }

    /// This server's Raft node id, made up at random (and non-zero) when the database is
    /// new; see [`RaftDb::node_id_or_init`].
    pub async fn node_id(&self) -> Result<u64, StoreError> {
        self.node_id_or_init(random_node_id).await
    }

    /// The id of the group called `name`, if it exists.
    pub fn lookup_group(&self, name: &str) -> Result<Option<GroupId>, StoreError> {
        let txn = self.read()?;
        let groups = txn.open_table(GROUPS).db()?;
        Ok(groups.get(name).db()?.map(|v| GroupId(v.value())))
    }

    /// Every group stored, by name.
    pub fn groups(&self) -> Result<Vec<(String, GroupId)>, StoreError> {
        let txn = self.read()?;
        let groups = txn.open_table(GROUPS).db()?;
        let mut out = Vec::new();
        for row in groups.iter().db()? {
            let (name, id) = row.db()?;
            out.push((name.value().to_owned(), GroupId(id.value())));
        }
        Ok(out)
    }

    /// Deletes every record of a group: log, vote, committed, snapshot and its name. The
    /// id is not given out again.
    pub async fn remove_group(&self, group: GroupId) -> Result<(), StoreError> {
        self.write(vec![Op::RemoveGroup { group: group.0 }]).await?;
        Ok(())
    }

    /// The log store of `group`.
    pub fn log_store<C>(&self, group: GroupId) -> LogStore<C>
    where
        C: openraft::RaftTypeConfig,
    {
        LogStore::new(self.clone(), group)
    }

    /// The state machine store of `group`, restored from its stored snapshot if any.
    pub fn state_machine<C, S>(&self, group: GroupId) -> Result<StateMachineStore<C, S>, StoreError>
    where
        C: crate::state_machine::StoreConfig,
        S: StateMachine<C>,
    {
        StateMachineStore::open(self.clone(), group)
    }

    /// Sends `ops` to the writer and waits until the transaction holding them has been
    /// committed with `Durability::Immediate` (or has failed).
    pub(crate) async fn write(&self, ops: Vec<Op>) -> Result<Option<u64>, StoreError> {
        self.send(ops, false).await
    }

    /// Like [`RaftDb::write`] for what needs no fsync of its own (the committed index,
    /// which openraft may lose and learn again): it rides the next durable commit, or
    /// commits with `Durability::None` when nothing else is waiting.
    pub(crate) async fn write_lazy(&self, ops: Vec<Op>) -> Result<Option<u64>, StoreError> {
        self.send(ops, true).await
    }

    async fn send(&self, ops: Vec<Op>, lazy: bool) -> Result<Option<u64>, StoreError> {
        let (done, rx) = oneshot::channel();
        {
            let tx = self.inner.tx.lock();
            let tx = tx.as_ref().ok_or(StoreError::WriterGone)?;
            tx.send(Request { ops, done, lazy })
                .map_err(|_| StoreError::WriterGone)?;
        }
        match rx.await {
            Ok(Ok(reply)) => Ok(reply),
            Ok(Err(e)) => Err(StoreError::Batch(e)),
            Err(_) => Err(StoreError::WriterGone),
        }
    }

    /// A read transaction: a consistent view of committed data.
    pub(crate) fn read(&self) -> Result<ReadTransaction, StoreError> {
        self.inner.db.begin_read().db()
    }

    /// The underlying database, for tests and diagnostics (for example reading committed
    /// state from inside a flush callback).
    pub fn database(&self) -> &Database {
        &self.inner.db
    }
}

/// A random non-zero node id. 64 random bits make a collision between the servers of one
/// cluster negligible; `RandomState` is seeded from the OS, and the time and process id
/// are mixed in so two databases created in one process differ too.
fn random_node_id() -> u64 {
    use std::hash::{BuildHasher as _, Hasher as _};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    h.write_u128(now);
    h.write_u32(std::process::id());
    h.finish().max(1)
}
