//! Internal clients: how a subsystem outside the core (JetStream today, MQTT later) takes
//! part in messaging without a socket.
//!
//! An internal client is bound to one account. Its subscriptions sit in that account's
//! sublist like a client's, so messages reach it through the ordinary message path; its
//! outbound side is a channel instead of a socket, read by a task that decodes each
//! `MSG`/`HMSG` frame and hands it to the subsystem's handler in arrival order. Its
//! publishes enter the account as the server's own (no permissions, local subscribers
//! and routes). nats-server builds JetStream and the system account the same way.
//!
//! This is the whole interface such a subsystem gets: it never sees connections, and the
//! core never imports it (`main.rs` wires the two together).

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use bytes::{Buf as _, Bytes, BytesMut};
use parking_lot::Mutex;
use rustc_hash::FxHashMap;
use tokio::sync::mpsc;

use super::Server;
use super::client::{ClientHandle, Subscription};
use super::outbound::Outbound;
use crate::account::Account;

/// A message delivered to an internal client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InternalMsg {
    pub subject: Bytes,
    /// The subscription it matched (as returned by [`InternalClient::subscribe`]).
    pub sid: u64,
    pub reply: Option<Bytes>,
    /// The header block (`NATS/1.0\r\n…\r\n\r\n`), empty when the message had none.
    pub headers: Bytes,
    pub payload: Bytes,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum InternalError {
    #[error("no account {0:?}")]
    NoAccount(String),
    #[error("invalid subject {0:?}")]
    InvalidSubject(String),
}

/// A socket-less client bound to one account. Dropping it (or [`InternalClient::close`])
/// removes its subscriptions.
pub struct InternalClient {
    server: Arc<Server>,
    account: Arc<Account>,
    handle: Arc<ClientHandle>,
    subs: Mutex<FxHashMap<u64, Arc<Subscription>>>,
    next_sid: AtomicU64,
}

impl InternalClient {
    /// Binds a client to `account`; every message its subscriptions match is passed to
    /// `handler`, one at a time in arrival order, on a task of its own.
    pub fn connect(
        server: &Arc<Server>,
        account: &str,
        handler: impl FnMut(InternalMsg) + Send + 'static,
    ) -> Result<Arc<Self>, InternalError> {
        let acc = server
            .account(account)
            .ok_or_else(|| InternalError::NoAccount(account.to_owned()))?;
        Self::connect_to(server, acc, handler)
    }

    /// Binds a client to an account the caller already holds.
    pub fn connect_to(
        server: &Arc<Server>,
        acc: Arc<Account>,
        handler: impl FnMut(InternalMsg) + Send + 'static,
    ) -> Result<Arc<Self>, InternalError> {
        let (tx, rx) = mpsc::unbounded_channel();
        // An internal sink never fills (its channel is unbounded), so max_pending is moot.
        let outbound = Arc::new(Outbound::internal(tx, usize::MAX));
        let handle = Arc::new(ClientHandle::new(server.next_internal_cid(), outbound));
        handle.headers.store(true, Ordering::Relaxed);
        tokio::spawn(read_frames(rx, handler));
        Ok(Arc::new(Self {
            server: server.clone(),
            account: acc,
            handle,
            subs: Mutex::new(FxHashMap::default()),
            next_sid: AtomicU64::new(1),
        }))
    }

    /// The account this client is bound to.
    pub fn account(&self) -> &str {
        self.account.name()
    }

    /// Subscribes to `subject` (wildcards allowed), in queue group `queue` if given.
    pub fn subscribe(&self, subject: &str, queue: Option<&str>) -> Result<u64, InternalError> {
        if !crate::subject::is_valid_subject(subject.as_bytes()) {
            return Err(InternalError::InvalidSubject(subject.to_owned()));
        }
        let sid = self.next_sid.fetch_add(1, Ordering::Relaxed);
        let mut sub = Subscription::internal(subject, &sid.to_string(), self.handle.clone());
        sub.queue = queue.map(|q| Bytes::copy_from_slice(q.as_bytes()));
        let sub = Arc::new(sub);
        if self.account.sublist.insert(sub.clone()).is_err() {
            return Err(InternalError::InvalidSubject(subject.to_owned()));
        }
        self.server
            .local_interest(self.account.name(), &sub.subject, sub.queue.as_ref(), true);
        self.subs.lock().insert(sid, sub);
        Ok(sid)
    }

    /// Removes one subscription.
    pub fn unsubscribe(&self, sid: u64) {
        let Some(sub) = self.subs.lock().remove(&sid) else {
            return;
        };
        self.remove(&sub);
    }

    fn remove(&self, sub: &Arc<Subscription>) {
        if self.account.sublist.remove(sub).is_ok() {
            self.server.local_interest(
                self.account.name(),
                &sub.subject,
                sub.queue.as_ref(),
                false,
            );
        }
    }

    /// Publishes into the account as the server itself: local subscribers, routes and
    /// leaf nodes get it. `headers` is a complete header block or empty.
    pub fn publish(&self, subject: &str, reply: Option<&str>, headers: &[u8], payload: &[u8]) {
        self.send(None, subject, reply, headers, payload);
    }

    /// Delivers to the subscribers of `to` a message they see under `subject` (how
    /// JetStream hands a stored message to a consumer's deliver subject or a pull
    /// request's inbox).
    pub fn deliver(
        &self,
        to: &str,
        subject: &str,
        reply: Option<&str>,
        headers: &[u8],
        payload: &[u8],
    ) {
        self.send(Some(to), subject, reply, headers, payload);
    }

    fn send(
        &self,
        to: Option<&str>,
        subject: &str,
        reply: Option<&str>,
        headers: &[u8],
        payload: &[u8],
    ) {
        let to = to.map(str::as_bytes);
        let reply = reply.map(str::as_bytes);
        let joined;
        let msg = if headers.is_empty() {
            payload
        } else {
            let mut m = Vec::with_capacity(headers.len() + payload.len());
            m.extend_from_slice(headers);
            m.extend_from_slice(payload);
            joined = m;
            &joined[..]
        };
        let subject = subject.as_bytes();
        self.server
            .publish_from_server(&self.account, subject, to, reply, headers.len(), msg);
        // What the server publishes in an account crosses its imports like a client's
        // publish (a stream export of JetStream's subjects, say).
        if to.is_none() && self.account.has_links() {
            let mut to_flush = Vec::new();
            let m = crate::imports::Published {
                subject,
                reply,
                hdr: headers.len(),
                msg,
                requester: None,
            };
            crate::imports::forward(&self.server, &self.account, &m, &mut to_flush);
            for o in to_flush {
                o.flush_soon();
            }
        }
    }

    /// Whether anything (a client, a route, a leaf node, a remote cluster over a
    /// gateway) subscribes to `subject` now.
    pub fn has_interest(&self, subject: &str) -> bool {
        !self
            .account
            .sublist
            .match_subject(subject.as_bytes())
            .is_empty()
            || self
                .server
                .gateways()
                .is_some_and(|g| g.wants(self.account.name(), subject.as_bytes()))
    }

    /// Whether something subscribes to exactly `subject`, not only through a wildcard
    /// (JetStream's snapshots wait for the receiver's own subscription: a client's
    /// request-reply wildcard `_INBOX.<id>.*` already covers the inbox it asks for).
    pub fn has_literal_interest(&self, subject: &str) -> bool {
        let m = self.account.sublist.match_subject(subject.as_bytes());
        m.psubs
            .iter()
            .chain(m.qsubs.iter().flatten())
            .any(|s| s.subject.as_ref() == subject.as_bytes())
    }

    /// Removes every subscription; the handler task ends once the last frame is read.
    pub fn close(&self) {
        let subs: Vec<_> = self.subs.lock().drain().map(|(_, s)| s).collect();
        for s in &subs {
            self.remove(s);
        }
        self.handle
            .outbound
            .close(super::outbound::CloseReason::ServerShutdown);
    }
}

impl Drop for InternalClient {
    fn drop(&mut self) {
        self.close();
    }
}

async fn read_frames(
    mut rx: mpsc::UnboundedReceiver<Vec<u8>>,
    mut handler: impl FnMut(InternalMsg) + Send + 'static,
) {
    let mut buf = BytesMut::new();
    while let Some(chunk) = rx.recv().await {
        buf.extend_from_slice(&chunk);
        loop {
            match decode(&buf) {
                Frame::Msg(msg, used) => {
                    buf.advance(used);
                    handler(msg);
                }
                Frame::Skip(used) => buf.advance(used),
                Frame::Incomplete => break,
            }
        }
    }
}

/// One step of decoding the frames the core wrote for an internal client.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Frame {
    /// A message and the bytes it took.
    Msg(InternalMsg, usize),
    /// A line that is no message frame (the core writes none, but one must not wedge
    /// the reader): skip it.
    Skip(usize),
    Incomplete,
}

/// Decodes one `MSG <subject> <sid> [reply] <size>` or
/// `HMSG <subject> <sid> [reply] <hdr> <size>` frame from the front of `buf`.
pub(crate) fn decode(buf: &[u8]) -> Frame {
    let Some(line_end) = memchr::memmem::find(buf, b"\r\n") else {
        return Frame::Incomplete;
    };
    let skip = Frame::Skip(line_end + 2);
    let Ok(line) = std::str::from_utf8(&buf[..line_end]) else {
        return skip;
    };
    let args: Vec<&str> = line.split_ascii_whitespace().collect();
    let (subject, sid, reply, hdr, size) = match args.as_slice() {
        ["MSG", s, sid, size] => (*s, *sid, None, "0", *size),
        ["MSG", s, sid, r, size] => (*s, *sid, Some(*r), "0", *size),
        ["HMSG", s, sid, hdr, size] => (*s, *sid, None, *hdr, *size),
        ["HMSG", s, sid, r, hdr, size] => (*s, *sid, Some(*r), *hdr, *size),
        _ => return skip,
    };
    let (Ok(hdr), Ok(size), Ok(sid)) = (
        hdr.parse::<usize>(),
        size.parse::<usize>(),
        sid.parse::<u64>(),
    ) else {
        return skip;
    };
    if hdr > size {
        return skip;
    }
    let start = line_end + 2;
    if buf.len() < start + size + 2 {
        return Frame::Incomplete;
    }
    let body = &buf[start..start + size];
    Frame::Msg(
        InternalMsg {
            subject: Bytes::copy_from_slice(subject.as_bytes()),
            sid,
            reply: reply.map(|r| Bytes::copy_from_slice(r.as_bytes())),
            headers: Bytes::copy_from_slice(&body[..hdr]),
            payload: Bytes::copy_from_slice(&body[hdr..]),
        },
        start + size + 2,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames() {
        let buf = b"MSG a.b 2 _INBOX.x 2\r\n{}\r\nHMSG c 3 12 14\r\nNATS/1.0\r\n\r\nhi\r\nMSG d 1 3\r\nab";
        let Frame::Msg(m, used) = decode(buf) else {
            panic!("frame")
        };
        assert_eq!(m.subject.as_ref(), b"a.b");
        assert_eq!(m.sid, 2);
        assert_eq!(m.reply.as_deref(), Some(&b"_INBOX.x"[..]));
        assert_eq!(m.payload.as_ref(), b"{}");
        let rest = &buf[used..];
        let Frame::Msg(h, used2) = decode(rest) else {
            panic!("hmsg")
        };
        assert_eq!(h.headers.as_ref(), b"NATS/1.0\r\n\r\n");
        assert_eq!(h.payload.as_ref(), b"hi");
        assert_eq!(decode(&rest[used2..]), Frame::Incomplete);
        assert_eq!(decode(b"PING\r\n"), Frame::Skip(6));
        assert_eq!(decode(b"HMSG a 1 9 3\r\nabc\r\n"), Frame::Skip(14));
    }
}
