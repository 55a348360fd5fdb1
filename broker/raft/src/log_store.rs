//! openraft's log storage (`RaftLogStorage` + `RaftLogReader`, storage-v2) for one group.
//!
//! Durability contract, kept here:
//! - `save_vote` returns only after the transaction holding the vote was committed with
//!   `Durability::Immediate`: a vote that could be forgotten by a crash could let this
//!   node vote twice in one term.
//! - `append` hands the whole batch of entries to the writer as one request (one
//!   transaction, shared with whatever other groups are writing), waits for that commit,
//!   and only then calls `LogFlushed::log_io_completed`. openraft allows the callback to
//!   run before `append` returns; calling it after the commit is what makes "flushed" true.
//!   Because the entries are committed when `append` returns, a reader (which only sees
//!   committed data) can read them, as openraft requires.
//! - `truncate` and `purge` are range deletes in one transaction each; `purge` records the
//!   last purged log id in the same transaction that deletes the entries.
//!
//! Waiting for the commit inside `append` keeps this group's Raft core from issuing its
//! next I/O for one fsync, but never blocks a runtime thread (the wait is async) and never
//! stops other groups: their writes join the same batch.

use std::fmt::Debug;
use std::marker::PhantomData;
use std::ops::{Bound, RangeBounds};

use openraft::storage::{LogFlushed, LogState, RaftLogStorage};
use openraft::{
    ErrorSubject, ErrorVerb, LogId, OptionalSend, RaftLogId as _, RaftLogReader, RaftTypeConfig,
    StorageError, Vote,
};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{decode, encode};
use crate::db::{GroupId, RaftDb};
use crate::error::{DbResultExt as _, StoreError};
use crate::tables::{LOG, STATE, StateKey};
use crate::writer::Op;

/// The log, vote and committed pointer of one Raft group.
pub struct LogStore<C> {
    db: RaftDb,
    group: GroupId,
    _config: PhantomData<fn() -> C>,
}

impl<C> Clone for LogStore<C> {
    fn clone(&self) -> Self {
        Self {
            db: self.db.clone(),
            group: self.group,
            _config: PhantomData,
        }
    }
}

impl<C> LogStore<C> {
    pub(crate) fn new(db: RaftDb, group: GroupId) -> Self {
        Self {
            db,
            group,
            _config: PhantomData,
        }
    }

    /// The group this store belongs to.
    pub fn group(&self) -> GroupId {
        self.group
    }
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    fn read_state<T: DeserializeOwned>(&self, key: StateKey) -> Result<Option<T>, StoreError> {
        let txn = self.db.read()?;
        let table = txn.open_table(STATE).db()?;
        match table.get((self.group.0, key as u8)).db()? {
            Some(v) => Ok(Some(decode(v.value())?)),
            None => Ok(None),
        }
    }

    fn read_entries(&self, start: u64, end: Bound<u64>) -> Result<Vec<C::Entry>, StoreError> {
        let txn = self.db.read()?;
        let table = txn.open_table(LOG).db()?;
        let g = self.group.0;
        let range = match end {
            Bound::Included(e) => table.range((g, start)..=(g, e)).db()?,
            Bound::Excluded(e) => table.range((g, start)..(g, e)).db()?,
            Bound::Unbounded => table.range((g, start)..=(g, u64::MAX)).db()?,
        };
        let mut out = Vec::new();
        for row in range {
            let (_, v) = row.db()?;
            out.push(decode(v.value())?);
        }
        Ok(out)
    }

    fn last_entry(&self) -> Result<Option<C::Entry>, StoreError> {
        let txn = self.db.read()?;
        let table = txn.open_table(LOG).db()?;
        let g = self.group.0;
        match table.range((g, 0)..=(g, u64::MAX)).db()?.next_back() {
            Some(row) => {
                let (_, v) = row.db()?;
                Ok(Some(decode(v.value())?))
            }
            None => Ok(None),
        }
    }

    fn log_state(&self) -> Result<LogState<C>, StoreError> {
        let last_purged: Option<LogId<C::NodeId>> = self.read_state(StateKey::LastPurged)?;
        let last = self.last_entry()?.map(|e| e.get_log_id().clone());
        Ok(LogState {
            last_purged_log_id: last_purged.clone(),
            last_log_id: last.or(last_purged),
        })
    }
}

fn read_err<NID: openraft::NodeId>(e: StoreError) -> StorageError<NID> {
    e.into_storage(ErrorSubject::Logs, ErrorVerb::Read)
}

fn write_err<NID: openraft::NodeId>(e: StoreError) -> StorageError<NID> {
    e.into_storage(ErrorSubject::Logs, ErrorVerb::Write)
}

impl<C> RaftLogReader<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    async fn try_get_log_entries<RB: RangeBounds<u64> + Clone + Debug + OptionalSend>(
        &mut self,
        range: RB,
    ) -> Result<Vec<C::Entry>, StorageError<C::NodeId>> {
        let start = match range.start_bound() {
            Bound::Included(s) => *s,
            Bound::Excluded(s) => match s.checked_add(1) {
                Some(s) => s,
                None => return Ok(Vec::new()),
            },
            Bound::Unbounded => 0,
        };
        let end = range.end_bound().cloned();
        if let Bound::Excluded(e) = end
            && e <= start
        {
            return Ok(Vec::new());
        }
        if let Bound::Included(e) = end
            && e < start
        {
            return Ok(Vec::new());
        }
        self.read_entries(start, end).map_err(read_err)
    }
}

impl<C> RaftLogStorage<C> for LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    type LogReader = Self;

    async fn get_log_state(&mut self) -> Result<LogState<C>, StorageError<C::NodeId>> {
        self.log_state().map_err(read_err)
    }

    async fn get_log_reader(&mut self) -> Self::LogReader {
        self.clone()
    }

    async fn save_vote(&mut self, vote: &Vote<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        let vote_err = |e: StoreError| e.into_storage(ErrorSubject::Vote, ErrorVerb::Write);
        let value = encode(vote).map_err(vote_err)?;
        // Returns only after the Immediate commit holding the vote.
        self.db
            .write(vec![Op::PutState {
                group: self.group.0,
                key: StateKey::Vote,
                value,
            }])
            .await
            .map_err(vote_err)?;
        tracing::debug!(group = %self.group, %vote, "vote saved");
        Ok(())
    }

    async fn read_vote(&mut self) -> Result<Option<Vote<C::NodeId>>, StorageError<C::NodeId>> {
        self.read_state(StateKey::Vote)
            .map_err(|e| e.into_storage(ErrorSubject::Vote, ErrorVerb::Read))
    }

    async fn save_committed(
        &mut self,
        committed: Option<LogId<C::NodeId>>,
    ) -> Result<(), StorageError<C::NodeId>> {
        let op = match &committed {
            Some(log_id) => Op::PutState {
                group: self.group.0,
                key: StateKey::Committed,
                value: encode(log_id).map_err(write_err)?,
            },
            None => Op::DeleteState {
                group: self.group.0,
                key: StateKey::Committed,
            },
        };
        // Optional persistence in openraft's contract: a committed index lost in a crash
        // is learnt again from the leader, so it costs no fsync of its own.
        self.db.write_lazy(vec![op]).await.map_err(write_err)?;
        Ok(())
    }

    async fn read_committed(
        &mut self,
    ) -> Result<Option<LogId<C::NodeId>>, StorageError<C::NodeId>> {
        self.read_state(StateKey::Committed).map_err(read_err)
    }

    async fn append<I>(
        &mut self,
        entries: I,
        callback: LogFlushed<C>,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
    {
        self.append_then(entries, move |result| callback.log_io_completed(result))
            .await
    }

    async fn truncate(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        tracing::debug!(group = %self.group, %log_id, "truncate log from");
        self.db
            .write(vec![Op::TruncateFrom {
                group: self.group.0,
                from: log_id.index,
            }])
            .await
            .map_err(write_err)?;
        Ok(())
    }

    async fn purge(&mut self, log_id: LogId<C::NodeId>) -> Result<(), StorageError<C::NodeId>> {
        tracing::debug!(group = %self.group, %log_id, "purge log up to");
        let last_purged = encode(&log_id).map_err(write_err)?;
        self.db
            .write(vec![Op::PurgeUpTo {
                group: self.group.0,
                upto: log_id.index,
                last_purged,
            }])
            .await
            .map_err(write_err)?;
        Ok(())
    }
}

impl<C> LogStore<C>
where
    C: RaftTypeConfig,
    C::Entry: Serialize + DeserializeOwned,
{
    /// The body of `append`, with the flush notification as a plain function so that
    /// tests can observe when it runs (openraft's `LogFlushed` cannot be built outside
    /// openraft). `flushed` is called exactly once: with `Ok` only after the commit
    /// holding every entry has returned, with `Err` if that commit failed.
    pub async fn append_then<I, F>(
        &mut self,
        entries: I,
        flushed: F,
    ) -> Result<(), StorageError<C::NodeId>>
    where
        I: IntoIterator<Item = C::Entry> + OptionalSend,
        I::IntoIter: OptionalSend,
        F: FnOnce(Result<(), std::io::Error>) + OptionalSend,
    {
        let mut batch = Vec::new();
        let mut last = None;
        for entry in entries {
            let log_id = entry.get_log_id().clone();
            match encode(&entry) {
                Ok(bytes) => batch.push((log_id.index, bytes)),
                Err(e) => {
                    let e = e.into_storage(ErrorSubject::Log(log_id), ErrorVerb::Write);
                    flushed(Err(std::io::Error::other(e.to_string())));
                    return Err(e);
                }
            }
            last = Some(log_id);
        }
        if batch.is_empty() {
            flushed(Ok(()));
            return Ok(());
        }
        let n = batch.len();
        let result = self
            .db
            .write(vec![Op::Append {
                group: self.group.0,
                entries: batch,
            }])
            .await;
        match result {
            Ok(_) => {
                tracing::trace!(group = %self.group, entries = n, last = ?last, "log entries durable");
                flushed(Ok(()));
                Ok(())
            }
            Err(e) => {
                flushed(Err(e.to_io()));
                Err(write_err(e))
            }
        }
    }
}
