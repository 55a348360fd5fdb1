//! natrix-raft's bus over JetStream's: Raft traffic travels on internal connections of
//! the system account, so it crosses the same route connections as everything else and
//! clients (who may not publish to `$NRG.>`) never see it.

use std::sync::Arc;

use natrix_raft::bus::{BusConn, BusError, Handler, Msg, RaftBus};

use crate::bus::{Bus, Conn};

pub struct SystemBus {
    pub bus: Arc<dyn Bus>,
    pub account: String,
}

struct SystemConn(Arc<dyn Conn>);

fn raft_error(e: crate::bus::BusError) -> BusError {
    match e {
        crate::bus::BusError::NoAccount(a) => BusError::NoAccount(a),
        crate::bus::BusError::InvalidSubject(s) => BusError::InvalidSubject(s),
    }
}

impl RaftBus for SystemBus {
    fn connect(&self, mut handler: Handler) -> Result<Arc<dyn BusConn>, BusError> {
        let conn = self
            .bus
            .connect(
                &self.account,
                Box::new(move |m: crate::bus::Msg| {
                    handler(Msg {
                        subject: m.subject,
                        sid: m.sid,
                        reply: m.reply,
                        payload: m.payload,
                    });
                }),
            )
            .map_err(raft_error)?;
        Ok(Arc::new(SystemConn(conn)))
    }
}

impl BusConn for SystemConn {
    fn subscribe(&self, subject: &str) -> Result<u64, BusError> {
        self.0.subscribe(subject, None).map_err(raft_error)
    }

    fn unsubscribe(&self, sid: u64) {
        self.0.unsubscribe(sid);
    }

    fn publish(&self, subject: &str, reply: Option<&str>, payload: &[u8]) -> Result<(), BusError> {
        self.0.publish(subject, reply, &[], payload);
        Ok(())
    }

    fn has_interest(&self, subject: &str) -> bool {
        self.0.has_interest(subject)
    }
}
