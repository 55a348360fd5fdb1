//! The on-disk layout: one set of redb tables shared by every Raft group of a server.
//!
//! Every key starts with the group's numeric id, so one group's records are one
//! contiguous key range. Thousands of idle groups then share B-tree pages instead of each
//! owning a table (a redb table costs at least a root page of its own, and opening tables
//! by name costs a lookup per transaction), and one write transaction can carry the
//! appends of many groups: one fsync for all of them.
//!
//! | table | key | value |
//! |---|---|---|
//! | `raft_groups` | group name | group id |
//! | `raft_counters` | counter name | next value (`next_group_id`), this server's `node_id` |
//! | `raft_log` | (group id, log index) | postcard-encoded entry |
//! | `raft_state` | (group id, [`StateKey`]) | postcard-encoded vote / log id |
//! | `raft_snapshot` | group id | postcard-encoded (snapshot meta, snapshot bytes) |

use redb::TableDefinition;

pub(crate) const GROUPS: TableDefinition<&str, u64> = TableDefinition::new("raft_groups");
pub(crate) const COUNTERS: TableDefinition<&str, u64> = TableDefinition::new("raft_counters");
pub(crate) const LOG: TableDefinition<(u64, u64), &[u8]> = TableDefinition::new("raft_log");
pub(crate) const STATE: TableDefinition<(u64, u8), &[u8]> = TableDefinition::new("raft_state");
pub(crate) const SNAPSHOT: TableDefinition<u64, &[u8]> = TableDefinition::new("raft_snapshot");

/// The counter that hands out group ids. Ids are never reused, even after a group is
/// removed, so a stale message addressed to a removed group can never reach a new one.
pub(crate) const NEXT_GROUP_ID: &str = "next_group_id";

/// The counter holding this server's Raft node id, chosen when the database is created
/// and kept for its life: a wiped server (a new database) gets a new id, so a node id is
/// never reused for a member that lost its log and vote.
pub(crate) const NODE_ID: &str = "node_id";

/// The per-group records of `raft_state`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[repr(u8)]
pub(crate) enum StateKey {
    /// The last vote saved by `save_vote`.
    Vote = 1,
    /// The last committed log id saved by `save_committed`.
    Committed = 2,
    /// The last purged log id: kept after its entry is deleted, because openraft needs it
    /// as the log's lower bound.
    LastPurged = 3,
}
