//! Message stores: where a stream keeps its messages, its consumers' state and its
//! own metadata.
//!
//! A [`Store`] is one stream's storage. [`memory::MemoryStore`] keeps everything in
//! process memory (JetStream `storage: memory`); [`file::FileStore`] keeps it in one redb
//! database per stream (`storage: file`).
//!
//! The contract every implementation keeps:
//! - **A call that changes the store returns only once the change is durable** (except
//!   [`Store::put_meta_unsynced`], which says what it promises instead). For the
//!   file store that means its log record fdatasync'd, or a redb write transaction
//!   committed with `Durability::Immediate`. The stream acknowledges a publish only once
//!   [`Store::append_then`] said the messages are durable, so an acknowledged message
//!   survives a power cut.
//!   The stream batches: it hands all the messages that arrived while the previous call
//!   was in flight to one `append` (group commit), so one fsync covers many publishes.
//! - **A failed call changes nothing**: the transaction is aborted and the store's state
//!   is what it was before (a full disk refuses the batch, it does not half-write it).
//! - **Sequences only grow.** The first message of an empty store gets
//!   `last_seq + 1` (1 for a new store, or what [`Store::skip_to`] set); removed
//!   sequences are never reused.
//! - **Limits are enforced inside the same commit as the append** that exceeds them:
//!   the oldest messages go (per subject first, then `max_msgs`, then `max_bytes`), so
//!   the store is never seen over its limits. Discard-new refusals are the stream's job,
//!   made before it calls `append`.
//!
//! All methods are synchronous: the stream calls them from `spawn_blocking` (file) or
//! directly (memory). Implementations are `Send + Sync` and serialise writers internally.

pub mod file;
pub mod memory;
#[cfg(test)]
mod tests;
mod wal;

use std::collections::BTreeMap;

use bytes::Bytes;

/// Nanoseconds since the Unix epoch (UTC), as nats-server keeps message timestamps.
pub type Nanos = i64;

/// A message as stored, with its stream sequence and timestamp.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct StoredMsg {
    pub seq: u64,
    pub subject: String,
    /// Arrival time, nanoseconds since the Unix epoch.
    pub ts: Nanos,
    /// The header block exactly as published (`NATS/1.0\r\n…\r\n\r\n`), empty when the
    /// message had none.
    pub hdr: Bytes,
    pub data: Bytes,
}

/// A message to append; the store assigns its sequence.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NewMsg {
    pub subject: String,
    pub ts: Nanos,
    pub hdr: Bytes,
    pub data: Bytes,
    /// Per-message TTL in nanoseconds (`Nats-TTL`), `None` for the stream's `max_age`
    /// alone, `Some(-1)` for never (not even by `max_age`, as nats-server's `never`). A
    /// message whose TTL has passed is removed by [`Store::expire`].
    pub ttl: Option<i64>,
}

/// The size nats-server's memory store accounts for one message in `bytes` and
/// `max_bytes`: subject, headers and payload plus 16 bytes.
pub fn memory_msg_size(subject: &str, hdr: &[u8], data: &[u8]) -> u64 {
    (subject.len() + hdr.len() + data.len() + 16) as u64
}

/// The size nats-server's file store accounts for one message: its record on disk
/// (length 4, sequence 8, timestamp 8, subject length 2, subject, the header length 4
/// and headers when there are any, payload, checksum 8). Using the same figure keeps
/// `bytes` and what `max_bytes` lets a file stream hold equal to nats-server's.
pub fn file_msg_size(subject: &str, hdr: &[u8], data: &[u8]) -> u64 {
    file_msg_len(subject.len(), hdr.len(), data.len())
}

/// [`file_msg_size`] from the lengths alone (a payload kept in the file store's log is
/// not at hand when its record is sized).
pub(crate) fn file_msg_len(subject: usize, hdr: usize, data: usize) -> u64 {
    let headers = if hdr == 0 { 0 } else { 4 + hdr };
    (22 + subject + headers + data + 8) as u64
}

/// How a store sizes a message ([`memory_msg_size`] or [`file_msg_size`]).
pub type SizeFn = fn(&str, &[u8], &[u8]) -> u64;

/// What [`Store::load_batch`] returns, from `next(from)`: the first message at or after
/// `from` (as `load_next` finds it), called until `max` messages or `max_bytes` bytes.
pub(crate) fn gather(
    start: u64,
    max: usize,
    max_bytes: usize,
    mut next: impl FnMut(u64) -> Result<Option<StoredMsg>, StoreError>,
) -> Result<Vec<StoredMsg>, StoreError> {
    let mut out = Vec::new();
    let mut bytes = 0;
    let mut from = start;
    while out.len() < max && bytes < max_bytes {
        let Some(m) = next(from)? else {
            break;
        };
        from = m.seq + 1;
        bytes += m.hdr.len() + m.data.len();
        out.push(m);
    }
    Ok(out)
}

/// The retention limits a store enforces on every append (and on [`Store::set_limits`]).
/// A value `<= 0` means unlimited, as in nats-server's `StreamConfig`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub struct Limits {
    pub max_msgs: i64,
    pub max_bytes: i64,
    /// Nanoseconds; messages older than this are removed by [`Store::expire`].
    pub max_age: i64,
    pub max_msgs_per_subject: i64,
}

/// Counts and bounds of a store, as `StreamInfo.state` reports them.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct StoreState {
    pub msgs: u64,
    pub bytes: u64,
    /// Sequence of the first message present; `last_seq + 1` when the store is empty.
    pub first_seq: u64,
    /// Timestamp of the first message present (0 when empty).
    pub first_ts: Nanos,
    /// The highest sequence ever assigned (or set by [`Store::skip_to`]), even if that
    /// message has since been removed.
    pub last_seq: u64,
    /// Timestamp of the message at `last_seq` when it was appended (0 if none).
    pub last_ts: Nanos,
    /// Sequences between `first_seq` and `last_seq` that are no longer present.
    pub num_deleted: u64,
    /// Distinct subjects with at least one message.
    pub num_subjects: u64,
}

/// What [`Store::purge`] removes (`$JS.API.STREAM.PURGE`): messages matching `filter`
/// (all when `None`, `""` or `>`), below sequence `seq` (when set), except the newest
/// `keep` of the matching messages taken together (when set; nats-server counts them over
/// the filter as a whole, not per subject). A `seq` or `keep` of 0 is unset, as in the
/// JSON request. `seq` and `keep` are exclusive, as in nats-server.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Purge {
    pub filter: Option<String>,
    pub seq: Option<u64>,
    pub keep: Option<u64>,
}

/// What an append did.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Appended {
    /// Sequence given to the first message of the batch (the rest follow it).
    pub first_seq: u64,
    /// Sequences the limits removed in the same commit, in ascending order.
    pub removed: Vec<u64>,
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// The disk (or the configured `max_file_store`) is full; nothing was written.
    #[error("insufficient storage resources available")]
    NoSpace,
    /// The store's files are damaged in a way recovery could not repair.
    #[error("store corrupt: {0}")]
    Corrupt(String),
    /// Any other I/O or database failure; nothing was written.
    #[error("store i/o: {0}")]
    Io(String),
    /// The store was deleted.
    #[error("store closed")]
    Closed,
}

/// What a store found when it opened existing files (logged, and shown by the stream).
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct Recovery {
    pub msgs: u64,
    pub bytes: u64,
    pub consumers: u64,
    /// Problems found and repaired (a truncated tail, a stale index rebuilt...), in words.
    pub repaired: Vec<String>,
}

/// One stream's storage. See the module documentation for the contract.
pub trait Store: Send + Sync + 'static {
    /// How this store sizes a message in `bytes` and for `max_bytes`.
    fn msg_size(&self) -> SizeFn;

    /// Whether calls may wait on the disk (and so belong off the async threads). A
    /// memory store answers at once and is called in place.
    fn blocks(&self) -> bool {
        true
    }

    /// Appends `msgs` in order at the next sequences in one durable commit, then removes
    /// what the limits no longer allow (in that same commit).
    fn append(&self, msgs: &[NewMsg]) -> Result<Appended, StoreError> {
        self.append_then(msgs, &mut |_| {})
    }

    /// [`Store::append`] that calls `durable` with the first sequence as soon as the
    /// messages are durable, which may be before the store has finished indexing them:
    /// the stream acknowledges from there, so a publisher's wait ends at the fsync. Once
    /// `durable` was called the messages are stored even if this then returns an error
    /// (the store brings them back when it recovers, as after a crash); a store that
    /// failed before calling it stored nothing.
    fn append_then(
        &self,
        msgs: &[NewMsg],
        durable: &mut dyn FnMut(u64),
    ) -> Result<Appended, StoreError>;

    /// Moves `last_seq` forward to `seq - 1` so the next append gets `seq` (stream
    /// `first_seq`, and purges with a sequence beyond the last). No-op if already there.
    fn skip_to(&self, seq: u64) -> Result<(), StoreError>;

    /// Removes one message. `erase` asks that its stored bytes be overwritten too
    /// (nats-server's secure erase; `no_erase: false`) where the store can: see each
    /// implementation. False if it was not present.
    fn remove(&self, seq: u64, erase: bool) -> Result<bool, StoreError>;

    /// Removes several messages (no erase) as one write where the store can, so that
    /// removals an interest stream makes per batch of publishes or acks cost one sync,
    /// not one each. Returns how many were present.
    fn remove_many(&self, seqs: &[u64]) -> Result<usize, StoreError> {
        let mut n = 0;
        for &seq in seqs {
            n += usize::from(self.remove(seq, false)?);
        }
        Ok(n)
    }

    /// Removes what `purge` selects; returns how many messages went.
    fn purge(&self, purge: &Purge) -> Result<u64, StoreError>;

    /// Removes messages older than `max_age` or past their own TTL at time `now`;
    /// returns the removed sequences. Also returns the time of the next expiry, if any,
    /// so the stream can sleep until then.
    fn expire(&self, now: Nanos) -> Result<(Vec<u64>, Option<Nanos>), StoreError>;

    /// Replaces the limits and removes what the new ones no longer allow; returns the
    /// removed sequences.
    fn set_limits(&self, limits: Limits) -> Result<Vec<u64>, StoreError>;

    /// The current counts.
    fn state(&self) -> StoreState;

    /// The sequences between `first_seq` and `last_seq` that are gone (for
    /// `StreamInfo.state.deleted` when asked), ascending.
    fn deleted(&self) -> Result<Vec<u64>, StoreError>;

    /// The message at `seq`, if present.
    fn load(&self, seq: u64) -> Result<Option<StoredMsg>, StoreError>;

    /// The first message with sequence `>= start` whose subject matches one of
    /// `filters` (wildcards allowed); every message when `filters` is empty.
    fn load_next(&self, start: u64, filters: &[String]) -> Result<Option<StoredMsg>, StoreError>;

    /// The messages `load_next` would return one after another from `start` on, read
    /// at once (one read of the store for a whole delivery round rather than one per
    /// message): at most `max` of them, and no more once `max_bytes` is reached (the
    /// first message always comes, whatever its size).
    fn load_batch(
        &self,
        start: u64,
        filters: &[String],
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredMsg>, StoreError>;

    /// The message with the highest sequence whose subject matches `filter` (wildcards
    /// allowed), at or below `max_seq` when given.
    fn load_last(
        &self,
        filter: &str,
        max_seq: Option<u64>,
    ) -> Result<Option<StoredMsg>, StoreError>;

    /// Message counts per subject for subjects matching `filter` (`>` for all).
    fn subjects(&self, filter: &str) -> Result<BTreeMap<String, u64>, StoreError>;

    /// How many messages with sequence `>= start` match `filters` (all when empty);
    /// with `last_per_subject`, only the newest message of each subject counts.
    fn num_pending(
        &self,
        start: u64,
        filters: &[String],
        last_per_subject: bool,
    ) -> Result<u64, StoreError>;

    /// The first sequence whose message was stored at or after `ts` (for
    /// `deliver_policy: by_start_time`); `last_seq + 1` if none.
    fn seq_for_time(&self, ts: Nanos) -> Result<u64, StoreError>;

    /// Stores (or with `None` deletes) opaque named records durably in one commit: the
    /// stream's config, its consumers' configs and their delivery/ack state.
    fn put_meta(&self, records: &[(String, Option<Vec<u8>>)]) -> Result<(), StoreError>;

    /// How many times the store went back to its last durable state after an error (the
    /// file store reopening its database): records written unsynced before may be gone,
    /// so their writers write them again.
    fn reopens(&self) -> u64 {
        0
    }

    /// [`Store::put_meta`] without waiting for the disk: a crash may take the records
    /// back to what the last durable change left (a consumer then redelivers what it had
    /// delivered since, and never skips). A later durable call makes them durable too.
    fn put_meta_unsynced(&self, records: &[(String, Option<Vec<u8>>)]) -> Result<(), StoreError> {
        self.put_meta(records)
    }

    /// Every record [`Store::put_meta`] stored whose name starts with `prefix`.
    fn meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError>;

    /// Writes a self-contained copy of the store (messages and records) to `out`, for
    /// `$JS.API.STREAM.SNAPSHOT`; [`Store::restore`] on an empty store reads it back.
    fn snapshot(&self, out: &mut dyn std::io::Write) -> Result<(), StoreError>;

    /// Loads a snapshot written by [`Store::snapshot`] into this (empty) store.
    fn restore(&self, input: &mut dyn std::io::Read) -> Result<(), StoreError>;

    /// Removes the store's files (stream deleted). Later calls fail with
    /// [`StoreError::Closed`].
    fn destroy(&self) -> Result<(), StoreError>;
}
