//! Raft for natrix-server: openraft's log, vote and snapshot storage (storage-v2) for many
//! Raft groups in one redb database per server, and their transport over the server's
//! message bus.
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
//!
//! Groups and transport: Raft RPCs travel as messages on `$NRG.<server>.…` subjects over
//! the server's own message path (and so its route connections), one subscription per
//! server for every group ([`wire`], [`transport`], [`network`]).
//!
//! - [`RaftBus`]: what the crate needs from a server (publish, subscribe); the broker
//!   implements it over its internal clients, [`MemBus`] in memory.
//! - [`Transport`]: one per server, request/response with timeouts; [`GroupRouter`] finds
//!   the local member a request is for.
//! - [`GroupManager`]: opens, starts, stops and removes a server's groups.

pub mod bus;
mod codec;
pub mod db;
pub mod error;
pub mod kv;
pub mod log_store;
pub mod manager;
pub mod mem_bus;
pub mod network;
pub mod router;
pub mod state_machine;
mod tables;
pub mod transport;
pub mod wire;
pub mod writer;

pub use bus::{BusConn, BusError, RaftBus};
pub use db::{GroupId, RaftDb, RaftDbOptions};
pub use error::StoreError;
pub use log_store::LogStore;
pub use manager::{GroupManager, ManagerError, ManagerOptions, RaftGroup};
pub use mem_bus::MemBus;
pub use router::GroupRouter;
pub use state_machine::{StateMachine, StateMachineStore, StoreConfig};
pub use transport::{Transport, TransportOptions};
pub use writer::{CommitInfo, CommitObserver};

/// The openraft version this crate is built and tested against, re-exported so users name
/// the same types.
pub use openraft;
