//! Wires Raft (crate `natrix-raft`) to the server core: its [`RaftBus`] is an internal
//! client of the system account, so Raft RPCs (`$NRG.<server>.…`) travel the ordinary
//! message path and cross routes like any system traffic, with no extra port. This file
//! is the only place that sees both sides.
//!
//! The `<server>` token a `GroupManager` is started with must be stable across restarts
//! (memberships store it as the node's address), so it is derived from the server *name*,
//! never from the server id, which is a fresh nkey on every start.

use std::sync::Arc;

use natrix_broker::server::Server;
use natrix_broker::server::internal::{InternalClient, InternalError};
use natrix_raft::bus::{BusConn, BusError, Handler, Msg, RaftBus};

/// The core's internal clients, bound to an account (the system account in a server), as
/// Raft's bus.
pub struct CoreRaftBus {
    pub server: Arc<Server>,
    pub account: String,
}

struct CoreConn(Arc<InternalClient>);

fn bus_error(e: InternalError) -> BusError {
    match e {
        InternalError::NoAccount(a) => BusError::NoAccount(a),
        InternalError::InvalidSubject(s) => BusError::InvalidSubject(s),
    }
}

impl RaftBus for CoreRaftBus {
    fn connect(&self, mut handler: Handler) -> Result<Arc<dyn BusConn>, BusError> {
        let client = InternalClient::connect(&self.server, &self.account, move |m| {
            handler(Msg {
                subject: String::from_utf8_lossy(&m.subject).into_owned(),
                sid: m.sid,
                reply: m.reply.map(|r| String::from_utf8_lossy(&r).into_owned()),
                payload: m.payload,
            });
        })
        .map_err(bus_error)?;
        Ok(Arc::new(CoreConn(client)))
    }
}

impl BusConn for CoreConn {
    fn subscribe(&self, subject: &str) -> Result<u64, BusError> {
        self.0.subscribe(subject, None).map_err(bus_error)
    }

    fn unsubscribe(&self, sid: u64) {
        self.0.unsubscribe(sid);
    }

    fn publish(&self, subject: &str, reply: Option<&str>, payload: &[u8]) -> Result<(), BusError> {
        self.0.publish(subject, reply, &[], payload);
        Ok(())
    }

    /// The account's sublist holds the subscriptions routes announced too, so a server
    /// whose `$NRG.<server>.>` interest is gone (it stopped, or its route is down) is
    /// reported unreachable at once.
    fn has_interest(&self, subject: &str) -> bool {
        self.0.has_interest(subject)
    }
}
