//! Raft storage for natrix-server: openraft's log, vote and snapshot storage
//! (storage-v2) for many Raft groups in one redb database per server.
//!
//! A server runs one Raft group for the JetStream meta layer and one per replicated
//! stream and consumer; all of them keep their state in one [`RaftDb`], one set of tables
//! keyed by group id. Writes of all groups go through one writer thread that commits them
//! in shared `Durability::Immediate` transactions and reports nothing persisted before
//! that commit has returned (see [`writer`] and docs/design/raft.md).
//!
//! - [`RaftDb`]: the database, group registry and writer.
//! - [`LogStore`]: `RaftLogStorage` + `RaftLogReader` for one group.
//! - [`StateMachineStore`]: `RaftStateMachine` + `RaftSnapshotBuilder` for one group over
//!   an application [`StateMachine`].
//! - [`kv`]: a small key-value state machine and type config, for tests and examples.

mod codec;
pub mod db;
pub mod error;
pub mod kv;
pub mod log_store;
pub mod state_machine;
mod tables;
pub mod writer;

pub use db::{GroupId, RaftDb, RaftDbOptions};
pub use error::StoreError;
pub use log_store::LogStore;
pub use state_machine::{StateMachine, StateMachineStore, StoreConfig};
pub use writer::{CommitInfo, CommitObserver};

/// The openraft version this crate is built and tested against, re-exported so users name
/// the same types.
pub use openraft;
