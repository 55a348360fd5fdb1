//! The one interface JetStream has to the server core: internal connections bound to an
//! account. The core implements [`Bus`] with its internal clients (`main.rs` wires it);
//! tests implement it in memory.

use std::sync::Arc;

use bytes::Bytes;

/// A message received on an internal connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Msg {
    pub subject: String,
    /// The subscription it matched.
    pub sid: u64,
    pub reply: Option<String>,
    /// Header block (`NATS/1.0\r\n…\r\n\r\n`), empty when none.
    pub headers: Bytes,
    pub payload: Bytes,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BusError {
    #[error("no account {0:?}")]
    NoAccount(String),
    #[error("invalid subject {0:?}")]
    InvalidSubject(String),
}

/// Called for every message a connection's subscriptions match, one at a time in
/// arrival order.
pub type Handler = Box<dyn FnMut(Msg) + Send + 'static>;

/// One internal connection, bound to an account.
pub trait Conn: Send + Sync + 'static {
    /// Subscribes to `subject` (wildcards allowed), in queue group `queue` if given.
    fn subscribe(&self, subject: &str, queue: Option<&str>) -> Result<u64, BusError>;
    fn unsubscribe(&self, sid: u64);
    /// Publishes as the server itself (no permission checks). `headers` is a complete
    /// header block or empty.
    fn publish(&self, subject: &str, reply: Option<&str>, headers: &[u8], payload: &[u8]);
    /// Delivers to the subscribers of `to` a message they see under `subject`: a stored
    /// message handed to a consumer's deliver subject or a pull request's inbox.
    fn deliver(&self, to: &str, subject: &str, reply: Option<&str>, headers: &[u8], payload: &[u8]);
    /// Whether anyone subscribes to `subject` now (push consumers deliver only then).
    fn has_interest(&self, subject: &str) -> bool;
    /// Whether anyone subscribes to exactly `subject`, not only through a wildcard (a
    /// snapshot waits for its receiver's own subscription, see `snapshot.rs`).
    fn has_literal_interest(&self, subject: &str) -> bool {
        self.has_interest(subject)
    }
}

/// Makes internal connections.
pub trait Bus: Send + Sync + 'static {
    /// A connection bound to `account` whose messages go to `handler`.
    fn connect(&self, account: &str, handler: Handler) -> Result<Arc<dyn Conn>, BusError>;
    /// The accounts that exist now (JetStream enables itself in each one configured).
    fn accounts(&self) -> Vec<String>;
    /// The remote cluster a request with reply subject `reply` came from over a gateway;
    /// `None` when it came from this cluster (where a stream is placed by default).
    fn reply_cluster(&self, _reply: &str) -> Option<String> {
        None
    }
}
