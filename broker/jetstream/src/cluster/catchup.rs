//! Catch-up: a replica whose group's log no longer holds what it lacks (the log before
//! a snapshot is purged) copies the messages from its leader's store.
//!
//! A stream group's snapshot is small: the stream's last sequence. A replica that
//! installs one, restarts from one ahead of its store, or finds a gap before an entry,
//! asks the leader on `$JSC.CU.<group>` (in the stream's account) for the messages after
//! its last one, in batches, until it has the snapshot's last sequence. The leader answers
//! from its store, with its first sequence (what it purged or expired since), and with the
//! last batch its consumers' records.

use serde::{Deserialize, Serialize};

use super::machine::WireMsg;

/// The subject a stream's replicas ask their leader on.
pub fn subject(group: &str) -> String {
    format!("$JSC.CU.{group}")
}

/// Whether `subject` is a catch-up request.
pub fn is_request(subject: &str) -> bool {
    subject.starts_with("$JSC.CU.")
}

/// Most bytes of messages one answer carries (at least one message, whatever its size):
/// large, since each answer costs the replica one fsync. Raft traffic crosses natrix
/// routes only, which take messages of any size.
pub const BATCH_BYTES: usize = 4 << 20;
/// Most messages one answer carries.
pub const BATCH_MSGS: usize = 16384;

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Request {
    /// The first sequence wanted.
    pub from: u64,
    /// The last sequence wanted.
    pub upto: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Batch {
    /// The leader's first and last sequences.
    pub first_seq: u64,
    pub last_seq: u64,
    /// Messages from `from` on, with their sequences (removed ones are absent).
    pub msgs: Vec<(u64, WireMsg)>,
    /// The last batch: nothing more up to `upto`; carries the consumers' records.
    pub done: bool,
    pub records: Vec<(String, Vec<u8>)>,
}

pub fn encode<T: Serialize>(v: &T) -> Option<Vec<u8>> {
    postcard::to_allocvec(v).ok()
}

pub fn decode<'a, T: Deserialize<'a>>(b: &'a [u8]) -> Option<T> {
    postcard::from_bytes(b).ok()
}
