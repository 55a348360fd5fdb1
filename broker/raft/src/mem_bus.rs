//! An in-memory [`RaftBus`]: many "servers" in one process, for tests and measurements.
//!
//! Every connection of one [`MemBus`] sees every other's publishes, as servers joined by
//! a full mesh of routes would. Each connection delivers to its handler from a task of its
//! own, in arrival order, like the core's internal clients. Dropping a connection removes
//! its subscriptions, which is how a test "stops a server".

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::Bytes;
use parking_lot::Mutex;
use tokio::sync::mpsc;

use crate::bus::{BusConn, BusError, Handler, Msg, RaftBus};

/// A message bus shared by the "servers" of one test. Clones share it.
#[derive(Clone, Default)]
pub struct MemBus {
    inner: Arc<Shared>,
}

#[derive(Default)]
struct Shared {
    state: Mutex<State>,
    next_id: AtomicU64,
    published: AtomicU64,
}

#[derive(Default)]
struct State {
    /// Open connections: where their messages go.
    conns: HashMap<u64, mpsc::UnboundedSender<Msg>>,
    /// (connection, sid, subject pattern).
    subs: Vec<(u64, u64, String)>,
}

impl MemBus {
    pub fn new() -> Self {
        Self::default()
    }

    /// How many messages have been published (requests and replies), for traffic
    /// measurements.
    pub fn published(&self) -> u64 {
        self.inner.published.load(Ordering::Relaxed)
    }

    /// The number of open connections.
    pub fn connections(&self) -> usize {
        self.inner.state.lock().conns.len()
    }
}

impl RaftBus for MemBus {
    fn connect(&self, mut handler: Handler) -> Result<Arc<dyn BusConn>, BusError> {
        let id = self.inner.next_id.fetch_add(1, Ordering::Relaxed);
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        self.inner.state.lock().conns.insert(id, tx);
        tokio::spawn(async move {
            while let Some(msg) = rx.recv().await {
                handler(msg);
            }
        });
        Ok(Arc::new(MemConn {
            bus: self.inner.clone(),
            id,
            next_sid: AtomicU64::new(1),
        }))
    }
}

struct MemConn {
    bus: Arc<Shared>,
    id: u64,
    next_sid: AtomicU64,
}

impl Drop for MemConn {
    fn drop(&mut self) {
        let mut state = self.bus.state.lock();
        state.conns.remove(&self.id);
        state.subs.retain(|(conn, _, _)| *conn != self.id);
    }
}

impl BusConn for MemConn {
    fn subscribe(&self, subject: &str) -> Result<u64, BusError> {
        if !valid_subject(subject, true) {
            return Err(BusError::InvalidSubject(subject.to_owned()));
        }
        let sid = self.next_sid.fetch_add(1, Ordering::Relaxed);
        let mut state = self.bus.state.lock();
        if !state.conns.contains_key(&self.id) {
            return Err(BusError::Closed);
        }
        state.subs.push((self.id, sid, subject.to_owned()));
        Ok(sid)
    }

    fn unsubscribe(&self, sid: u64) {
        self.bus
            .state
            .lock()
            .subs
            .retain(|(conn, s, _)| !(*conn == self.id && *s == sid));
    }

    fn publish(&self, subject: &str, reply: Option<&str>, payload: &[u8]) -> Result<(), BusError> {
        if !valid_subject(subject, false) {
            return Err(BusError::InvalidSubject(subject.to_owned()));
        }
        let state = self.bus.state.lock();
        if !state.conns.contains_key(&self.id) {
            return Err(BusError::Closed);
        }
        self.bus.published.fetch_add(1, Ordering::Relaxed);
        let payload = Bytes::copy_from_slice(payload);
        for (conn, sid, pattern) in &state.subs {
            if !matches(pattern, subject) {
                continue;
            }
            if let Some(tx) = state.conns.get(conn) {
                // A closed receiver means that connection is going away: nothing to do.
                let _ = tx.send(Msg {
                    subject: subject.to_owned(),
                    sid: *sid,
                    reply: reply.map(str::to_owned),
                    payload: payload.clone(),
                });
            }
        }
        Ok(())
    }

    fn has_interest(&self, subject: &str) -> bool {
        let state = self.bus.state.lock();
        state.subs.iter().any(|(_, _, p)| matches(p, subject))
    }
}

/// Whether `subject` is a valid NATS subject (wildcards only where `wildcards`).
fn valid_subject(subject: &str, wildcards: bool) -> bool {
    let mut tokens = subject.split('.').peekable();
    while let Some(t) = tokens.next() {
        if t.is_empty() || t.contains([' ', '\t', '\r', '\n']) {
            return false;
        }
        let wild = t == "*" || t == ">";
        if wild && !wildcards {
            return false;
        }
        if t == ">" && tokens.peek().is_some() {
            return false;
        }
    }
    true
}

/// NATS subject matching: `*` matches one token, a final `>` one or more.
fn matches(pattern: &str, subject: &str) -> bool {
    let mut p = pattern.split('.');
    let mut s = subject.split('.');
    loop {
        match (p.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subject_matching() {
        assert!(matches("$NRG.a.>", "$NRG.a.AE"));
        assert!(matches("$NRG.a.>", "$NRG.a.R.7"));
        assert!(!matches("$NRG.a.>", "$NRG.a"));
        assert!(!matches("$NRG.a.>", "$NRG.b.AE"));
        assert!(matches("$NRG.*.V", "$NRG.b.V"));
        assert!(!matches("$NRG.*.V", "$NRG.b.V.x"));
        assert!(valid_subject("$NRG.a.>", true));
        assert!(!valid_subject("$NRG.a.>", false));
        assert!(!valid_subject("$NRG..a", false));
        assert!(!valid_subject("$NRG.>.a", true));
    }

    #[tokio::test]
    async fn delivers_to_matching_subscribers_and_forgets_dropped_connections() {
        let bus = MemBus::new();
        let (tx, mut rx) = mpsc::unbounded_channel();
        let a = bus
            .connect(Box::new(move |m| {
                let _ = tx.send(m);
            }))
            .unwrap();
        let b = bus.connect(Box::new(|_| {})).unwrap();
        let sid = a.subscribe("x.>").unwrap();
        assert!(b.has_interest("x.y"));
        b.publish("x.y", Some("r"), b"hi").unwrap();
        b.publish("z", None, b"no").unwrap();
        let m = rx.recv().await.unwrap();
        assert_eq!((m.subject.as_str(), m.sid), ("x.y", sid));
        assert_eq!(m.reply.as_deref(), Some("r"));
        assert_eq!(&m.payload[..], b"hi");
        drop(a);
        assert!(!b.has_interest("x.y"));
        assert_eq!(bus.connections(), 1);
    }
}
