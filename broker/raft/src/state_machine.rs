//! openraft's state machine storage (`RaftStateMachine` + `RaftSnapshotBuilder`) for one
//! group, over an application [`StateMachine`].
//!
//! This is the "persistent snapshot" variant of openraft's contract: `apply` changes the
//! in-memory machine only; every snapshot, built here or installed from a leader, is
//! committed to redb with `Durability::Immediate` before it is reported done. On restart
//! the machine is restored from the stored snapshot and openraft re-applies the log from
//! there (up to the committed id saved by the log store). The JetStream state machine,
//! whose stream store is durable by itself, will replace this with a variant whose
//! `apply` is durable; the storage of snapshots stays the same.

use std::io::Cursor;
use std::marker::PhantomData;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{SystemTime, UNIX_EPOCH};

use openraft::storage::RaftStateMachine;
use openraft::{
    Entry, EntryPayload, ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftSnapshotBuilder,
    RaftTypeConfig, Snapshot, SnapshotMeta, StorageError, StoredMembership,
};
use parking_lot::Mutex;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{decode, encode};
use crate::db::{GroupId, RaftDb};
use crate::error::{DbResultExt as _, StoreError};
use crate::tables::SNAPSHOT;
use crate::writer::Op;

/// The type configurations this store serves: snapshots as bytes in memory, openraft's
/// own entry type.
pub trait StoreConfig: RaftTypeConfig<SnapshotData = Cursor<Vec<u8>>, Entry = Entry<Self>> {}

impl<T> StoreConfig for T where T: RaftTypeConfig<SnapshotData = Cursor<Vec<u8>>, Entry = Entry<T>> {}

/// The application's deterministic state machine.
pub trait StateMachine<C: RaftTypeConfig>: Default + Send + Sync + 'static {
    /// Applies one committed entry. `data` is `None` for blank and membership entries,
    /// which still need a response.
    fn apply(&mut self, log_id: &LogId<C::NodeId>, data: Option<&C::D>) -> C::R;

    /// The machine's whole state as bytes.
    fn snapshot(&self) -> Result<Vec<u8>, StoreError>;

    /// Rebuilds a machine from [`StateMachine::snapshot`]'s bytes.
    fn restore(bytes: &[u8]) -> Result<Self, StoreError>;

    /// Takes the state of a snapshot installed from the leader ([`StateMachine::restore`]
    /// built `restored`). The default replaces the machine; one that holds more than
    /// replicated state (where applied work goes) keeps that.
    fn install(&mut self, restored: Self) {
        *self = restored;
    }
}

/// What has been applied.
struct Applied<C: RaftTypeConfig, S> {
    last_applied: Option<LogId<C::NodeId>>,
    membership: StoredMembership<C::NodeId, C::Node>,
    machine: S,
}

/// The state machine and snapshot of one Raft group.
pub struct StateMachineStore<C: RaftTypeConfig, S> {
    db: RaftDb,
    group: GroupId,
    applied: Arc<Mutex<Applied<C, S>>>,
    snapshots_built: Arc<AtomicU64>,
    _config: PhantomData<fn() -> C>,
}

impl<C: RaftTypeConfig, S> Clone for StateMachineStore<C, S> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            group: self.group,
            applied: self.applied.clone(),
            snapshots_built: self.snapshots_built.clone(),
            _config: PhantomData,
        }
    }
}

fn snap_err<NID: openraft::NodeId>(verb: ErrorVerb) -> impl Fn(StoreError) -> StorageError<NID> {
    move |e| e.into_storage(ErrorSubject::Snapshot(None), verb)
}

impl<C, S> StateMachineStore<C, S>
where
    C: StoreConfig,
    S: StateMachine<C>,
{
    /// Opens the group's state machine, restored from its stored snapshot if it has one.
    pub(crate) fn open(db: RaftDb, group: GroupId) -> Result<Self, StoreError> {
        let stored = read_snapshot::<C>(&db, group)?;
        let applied = match stored {
            Some((meta, data)) => {
                tracing::debug!(%group, last = ?meta.last_log_id, "state machine restored from snapshot");
                Applied {
                    last_applied: meta.last_log_id,
                    membership: meta.last_membership,
                    machine: S::restore(&data)?,
                }
            }
            None => Applied {
                last_applied: None,
                membership: StoredMembership::default(),
                machine: S::default(),
            },
        };
        Ok(Self {
            db,
            group,
            applied: Arc::new(Mutex::new(applied)),
            snapshots_built: Arc::new(AtomicU64::new(0)),
            _config: PhantomData,
        })
    }

    /// The group this store belongs to.
    pub fn group(&self) -> GroupId {
        self.group
    }

    /// Runs `f` on the current machine (for reads served by the application).
    pub fn with_machine<T>(&self, f: impl FnOnce(&S) -> T) -> T {
        f(&self.applied.lock().machine)
    }

    /// Runs `f` on the current machine mutably: for what is not replicated state, such
    /// as where the application wants applied entries sent.
    pub fn with_machine_mut<T>(&self, f: impl FnOnce(&mut S) -> T) -> T {
        f(&mut self.applied.lock().machine)
    }

    /// Stores a snapshot record durably (an `Immediate` commit) before returning.
    async fn persist_snapshot(
        &self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        data: &[u8],
    ) -> Result<(), StoreError> {
        let record = encode(&(meta, data))?;
        self.db
            .write(vec![Op::PutSnapshot {
                group: self.group.0,
                record,
            }])
            .await?;
        Ok(())
    }
}

/// A stored snapshot: its meta and its bytes.
type StoredSnapshot<C> = (
    SnapshotMeta<<C as RaftTypeConfig>::NodeId, <C as RaftTypeConfig>::Node>,
    Vec<u8>,
);

/// Reads a group's stored snapshot.
fn read_snapshot<C: StoreConfig>(
    db: &RaftDb,
    group: GroupId,
) -> Result<Option<StoredSnapshot<C>>, StoreError>
where
    SnapshotMeta<C::NodeId, C::Node>: DeserializeOwned,
{
    let txn = db.read()?;
    let table = txn.open_table(SNAPSHOT).db()?;
    match table.get(group.0).db()? {
        Some(v) => Ok(Some(decode(v.value())?)),
        None => Ok(None),
    }
}

impl<C, S> RaftSnapshotBuilder<C> for StateMachineStore<C, S>
where
    C: StoreConfig,
    S: StateMachine<C>,
    SnapshotMeta<C::NodeId, C::Node>: Serialize + DeserializeOwned,
{
    async fn build_snapshot(&mut self) -> Result<Snapshot<C>, StorageError<C::NodeId>> {
        // Serialise under the lock (a consistent cut), write outside it.
        let (meta, data) = {
            let applied = self.applied.lock();
            let data = applied
                .machine
                .snapshot()
                .map_err(snap_err(ErrorVerb::Read))?;
            let n = self.snapshots_built.fetch_add(1, Ordering::Relaxed);
            let millis = SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .map_or(0, |d| d.as_millis());
            let snapshot_id = match &applied.last_applied {
                Some(id) => format!("{}-{}-{millis}-{n}", id.leader_id, id.index),
                None => format!("none-{millis}-{n}"),
            };
            let meta = SnapshotMeta {
                last_log_id: applied.last_applied.clone(),
                last_membership: applied.membership.clone(),
                snapshot_id,
            };
            (meta, data)
        };
        self.persist_snapshot(&meta, &data)
            .await
            .map_err(snap_err(ErrorVerb::Write))?;
        tracing::debug!(group = %self.group, id = %meta.snapshot_id, bytes = data.len(), "snapshot built");
        Ok(Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        })
    }
}

impl<C, S> RaftStateMachine<C> for StateMachineStore<C, S>
where
    C: StoreConfig,
    S: StateMachine<C>,
    SnapshotMeta<C::NodeId, C::Node>: Serialize + DeserializeOwned,
{
    type SnapshotBuilder = Self;

    async fn applied_state(
        &mut self,
    ) -> Result<
        (
            Option<LogId<C::NodeId>>,
            StoredMembership<C::NodeId, C::Node>,
        ),
        StorageError<C::NodeId>,
    > {
        let applied = self.applied.lock();
        Ok((applied.last_applied.clone(), applied.membership.clone()))
    }

    async fn apply<I>(&mut self, entries: I) -> Result<Vec<C::R>, StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        let mut applied = self.applied.lock();
        let mut replies = Vec::new();
        for entry in entries {
            let log_id = entry.log_id;
            let reply = match &entry.payload {
                EntryPayload::Blank => applied.machine.apply(&log_id, None),
                EntryPayload::Normal(data) => applied.machine.apply(&log_id, Some(data)),
                EntryPayload::Membership(m) => {
                    applied.membership = StoredMembership::new(Some(log_id.clone()), m.clone());
                    applied.machine.apply(&log_id, None)
                }
            };
            applied.last_applied = Some(log_id);
            replies.push(reply);
        }
        Ok(replies)
    }

    async fn get_snapshot_builder(&mut self) -> Self::SnapshotBuilder {
        self.clone()
    }

    async fn begin_receiving_snapshot(
        &mut self,
    ) -> Result<Box<Cursor<Vec<u8>>>, StorageError<C::NodeId>> {
        Ok(Box::new(Cursor::new(Vec::new())))
    }

    async fn install_snapshot(
        &mut self,
        meta: &SnapshotMeta<C::NodeId, C::Node>,
        snapshot: Box<Cursor<Vec<u8>>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        let data = snapshot.into_inner();
        let machine = S::restore(&data).map_err(snap_err(ErrorVerb::Read))?;
        // Durable first: if this returns, a restart finds this snapshot.
        self.persist_snapshot(meta, &data)
            .await
            .map_err(snap_err(ErrorVerb::Write))?;
        let mut applied = self.applied.lock();
        applied.last_applied = meta.last_log_id.clone();
        applied.membership = meta.last_membership.clone();
        applied.machine.install(machine);
        tracing::debug!(group = %self.group, id = %meta.snapshot_id, "snapshot installed");
        Ok(())
    }

    async fn get_current_snapshot(
        &mut self,
    ) -> Result<Option<Snapshot<C>>, StorageError<C::NodeId>> {
        let stored = read_snapshot::<C>(&self.db, self.group).map_err(snap_err(ErrorVerb::Read))?;
        Ok(stored.map(|(meta, data)| Snapshot {
            meta,
            snapshot: Box::new(Cursor::new(data)),
        }))
    }
}
