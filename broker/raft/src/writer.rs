//! The single writer of a server's Raft database: group commit across all groups.
//!
//! redb allows one write transaction at a time and an fsync per `Immediate` commit. Every
//! write of every group (appends, votes, truncations, purges, snapshots) is sent here as a
//! [`Request`]; the writer thread takes the first request, drains whatever else is queued
//! (up to [`MAX_BATCH_REQUESTS`]), applies them in arrival order in one write transaction
//! committed with `Durability::Immediate`, and only after `commit()` has returned answers
//! every request of the batch. So:
//!
//! - nothing is answered before the fsync that made it durable (a failed commit fails
//!   every request of the batch, none is answered with success);
//! - writes are applied in the order they were sent, which keeps openraft's rule that a
//!   group's log and vote writes are serialised (each group sends from one task);
//! - many groups' writes that arrive together share one fsync.

use std::sync::Arc;
use std::sync::mpsc;

use redb::{Database, Durability, ReadableTable as _, WriteTransaction};
use tokio::sync::oneshot;

use crate::error::{DbResultExt as _, StoreError};
use crate::tables::{COUNTERS, GROUPS, LOG, NEXT_GROUP_ID, SNAPSHOT, STATE, StateKey};

/// At most this many requests go into one transaction, so a flood of writes still
/// commits (and answers) in bounded steps.
pub(crate) const MAX_BATCH_REQUESTS: usize = 1024;

/// One write to apply inside a batch.
#[derive(Debug)]
pub(crate) enum Op {
    /// Finds or creates the group called `name`; the request is answered with its id.
    RegisterGroup { name: String },
    /// Inserts log entries (index, encoded entry).
    Append {
        group: u64,
        entries: Vec<(u64, Vec<u8>)>,
    },
    /// Sets a per-group state record.
    PutState {
        group: u64,
        key: StateKey,
        value: Vec<u8>,
    },
    /// Removes a per-group state record.
    DeleteState { group: u64, key: StateKey },
    /// Deletes the log entries with index ≥ `from`.
    TruncateFrom { group: u64, from: u64 },
    /// Records `last_purged` and deletes the log entries with index ≤ `upto`, in the same
    /// transaction, so the log's lower bound is never lost.
    PurgeUpTo {
        group: u64,
        upto: u64,
        last_purged: Vec<u8>,
    },
    /// Replaces the group's snapshot.
    PutSnapshot { group: u64, record: Vec<u8> },
    /// Deletes every record of a group (its name stays unusable for the id).
    RemoveGroup { group: u64 },
    /// Sets counter `name` to `value` unless it is already set; the request is answered
    /// with the stored value (how a database gets its node id once).
    InitCounter { name: &'static str, value: u64 },
}

impl Op {
    fn weight(&self) -> usize {
        match self {
            Op::Append { entries, .. } => entries.len(),
            _ => 1,
        }
    }
}

/// What the writer answers: the group id for [`Op::RegisterGroup`], else `None`.
pub(crate) type Reply = Result<Option<u64>, Arc<StoreError>>;

/// A list of ops that commit together (or not at all), and who to tell.
pub(crate) struct Request {
    pub(crate) ops: Vec<Op>,
    pub(crate) done: oneshot::Sender<Reply>,
    /// Needs no fsync of its own (the committed index): a batch of only such requests
    /// commits with `Durability::None`, which redb makes durable with the next
    /// `Immediate` commit.
    pub(crate) lazy: bool,
}

/// What one committed batch contained, for observers (metrics, tests).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CommitInfo {
    /// Sequence number of the commit since the database was opened, from 1.
    pub seq: u64,
    /// Requests answered by this commit.
    pub requests: usize,
    /// Ops (log entries count one each) in it.
    pub ops: usize,
    /// The durability the transaction was committed with; always `Immediate`.
    pub durability_immediate: bool,
}

/// Called on the writer thread after a commit has returned and before any request of
/// the batch is answered.
pub type CommitObserver = Arc<dyn Fn(&CommitInfo) + Send + Sync>;

/// Runs the writer loop until every sender is gone.
pub(crate) fn run(
    db: Arc<Database>,
    rx: mpsc::Receiver<Request>,
    observer: Option<CommitObserver>,
) {
    let mut seq = 0u64;
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < MAX_BATCH_REQUESTS {
            match rx.try_recv() {
                Ok(req) => batch.push(req),
                Err(_) => break,
            }
        }
        let ops: usize = batch.iter().flat_map(|r| &r.ops).map(Op::weight).sum();
        let immediate = batch.iter().any(|r| !r.lazy);
        match commit_batch(&db, &batch, immediate) {
            Ok(replies) => {
                seq += 1;
                let info = CommitInfo {
                    seq,
                    requests: batch.len(),
                    ops,
                    durability_immediate: immediate,
                };
                tracing::trace!(?info, "raft batch committed");
                if let Some(observer) = &observer {
                    observer(&info);
                }
                for (req, reply) in batch.into_iter().zip(replies) {
                    // A dropped receiver means the caller gave up; the write is durable anyway.
                    let _ = req.done.send(Ok(reply));
                }
            }
            Err(e) => {
                tracing::error!(error = %e, requests = batch.len(), "raft batch commit failed");
                let e = Arc::new(e);
                for req in batch {
                    let _ = req.done.send(Err(e.clone()));
                }
            }
        }
    }
    tracing::debug!("raft database writer stopped");
}

/// Applies a batch in one transaction, `Immediate` unless every request is lazy;
/// returns each request's reply.
fn commit_batch(
    db: &Database,
    batch: &[Request],
    immediate: bool,
) -> Result<Vec<Option<u64>>, StoreError> {
    let mut txn = db.begin_write().db()?;
    txn.set_durability(if immediate {
        Durability::Immediate
    } else {
        Durability::None
    })
    .db()?;
    let mut replies = Vec::with_capacity(batch.len());
    for req in batch {
        let mut reply = None;
        for op in &req.ops {
            if let Some(id) = apply(&txn, op)? {
                reply = Some(id);
            }
        }
        replies.push(reply);
    }
    // An error above drops `txn`, which aborts it: nothing of the batch is kept.
    txn.commit().db()?;
    Ok(replies)
}

fn apply(txn: &WriteTransaction, op: &Op) -> Result<Option<u64>, StoreError> {
    match op {
        Op::RegisterGroup { name } => {
            let mut groups = txn.open_table(GROUPS).db()?;
            if let Some(id) = groups.get(name.as_str()).db()? {
                return Ok(Some(id.value()));
            }
            let mut counters = txn.open_table(COUNTERS).db()?;
            let id = counters.get(NEXT_GROUP_ID).db()?.map_or(1, |v| v.value());
            counters.insert(NEXT_GROUP_ID, id + 1).db()?;
            groups.insert(name.as_str(), id).db()?;
            Ok(Some(id))
        }
        Op::InitCounter { name, value } => {
            let mut counters = txn.open_table(COUNTERS).db()?;
            if let Some(v) = counters.get(*name).db()? {
                return Ok(Some(v.value()));
            }
            counters.insert(*name, *value).db()?;
            Ok(Some(*value))
        }
        Op::Append { group, entries } => {
            let mut log = txn.open_table(LOG).db()?;
            for (index, bytes) in entries {
                log.insert((*group, *index), bytes.as_slice()).db()?;
            }
            Ok(None)
        }
        Op::PutState { group, key, value } => {
            let mut state = txn.open_table(STATE).db()?;
            state.insert((*group, *key as u8), value.as_slice()).db()?;
            Ok(None)
        }
        Op::DeleteState { group, key } => {
            let mut state = txn.open_table(STATE).db()?;
            state.remove((*group, *key as u8)).db()?;
            Ok(None)
        }
        Op::TruncateFrom { group, from } => {
            let mut log = txn.open_table(LOG).db()?;
            log.retain_in((*group, *from)..=(*group, u64::MAX), |_, _| false)
                .db()?;
            Ok(None)
        }
        Op::PurgeUpTo {
            group,
            upto,
            last_purged,
        } => {
            let mut state = txn.open_table(STATE).db()?;
            state
                .insert((*group, StateKey::LastPurged as u8), last_purged.as_slice())
                .db()?;
            let mut log = txn.open_table(LOG).db()?;
            log.retain_in((*group, 0)..=(*group, *upto), |_, _| false)
                .db()?;
            Ok(None)
        }
        Op::PutSnapshot { group, record } => {
            let mut snapshots = txn.open_table(SNAPSHOT).db()?;
            snapshots.insert(*group, record.as_slice()).db()?;
            Ok(None)
        }
        Op::RemoveGroup { group } => {
            let mut log = txn.open_table(LOG).db()?;
            log.retain_in((*group, 0)..=(*group, u64::MAX), |_, _| false)
                .db()?;
            let mut state = txn.open_table(STATE).db()?;
            state
                .retain_in((*group, 0)..=(*group, u8::MAX), |_, _| false)
                .db()?;
            let mut snapshots = txn.open_table(SNAPSHOT).db()?;
            snapshots.remove(*group).db()?;
            let mut groups = txn.open_table(GROUPS).db()?;
            groups.retain(|_, id| id != *group).db()?;
            Ok(None)
        }
    }
}
