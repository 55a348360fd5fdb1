//! What natrix-raft needs from a server: internal connections that publish and subscribe.
//!
//! Raft traffic rides the server's own message path (and so its route connections), the
//! way JetStream reaches the core through `natrix-jetstream`'s `Bus`. This crate must not
//! depend on the broker core, so it owns this small trait and the server implements it
//! over its internal clients (`broker/src/raft_bus.rs`); [`crate::mem_bus::MemBus`]
//! implements it in memory for tests.
//!
//! Request/response with a timeout is built on top of these two verbs by
//! [`crate::transport`]: one subscription per server receives both the requests addressed
//! to it and the replies to its own requests.

use std::sync::Arc;

use bytes::Bytes;

/// A message received on a [`BusConn`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub subject: String,
    /// The subscription it matched.
    pub sid: u64,
    pub reply: Option<String>,
    pub payload: Bytes,
}

/// Why a bus operation failed.
#[derive(Debug, Clone, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    /// The subject is not a valid NATS subject.
    #[error("invalid subject {0:?}")]
    InvalidSubject(String),
    /// The connection is closed (the server is shutting down).
    #[error("bus connection closed")]
    Closed,
    /// The server has no account for internal traffic (the system account is missing).
    #[error("no account {0:?}")]
    NoAccount(String),
}

/// Called for every message a connection's subscriptions match, one at a time in arrival
/// order. It must not block: the transport hands work to tasks and returns.
pub type Handler = Box<dyn FnMut(Msg) + Send + 'static>;

/// One internal connection. Dropping the last handle closes it and removes its
/// subscriptions.
pub trait BusConn: Send + Sync + 'static {
    /// Subscribes to `subject` (wildcards allowed) and returns the subscription id.
    fn subscribe(&self, subject: &str) -> Result<u64, BusError>;
    /// Removes one subscription.
    fn unsubscribe(&self, sid: u64);
    /// Publishes as the server itself (no permission checks): local subscribers and
    /// routes get it.
    fn publish(&self, subject: &str, reply: Option<&str>, payload: &[u8]) -> Result<(), BusError>;
    /// Whether anyone (here or behind a route) subscribes to `subject` now. The transport
    /// uses it to report a server that is gone as unreachable at once instead of waiting
    /// for a timeout; an implementation that cannot tell answers `true`.
    fn has_interest(&self, subject: &str) -> bool {
        let _ = subject;
        true
    }
}

/// Makes internal connections.
pub trait RaftBus: Send + Sync + 'static {
    /// A new connection whose messages go to `handler`.
    fn connect(&self, handler: Handler) -> Result<Arc<dyn BusConn>, BusError>;
}
