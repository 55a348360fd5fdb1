//! A connection's outbound side: the buffer that publishers append encoded frames to, and
//! the writer task that drains it to the socket.
//!
//! Publishers copy each frame into one contiguous buffer under a short lock, so a burst of
//! messages to one subscriber leaves in a single `write` while the writer is busy with the
//! previous batch: coalescing by bytes, not by frame count, is what keeps syscalls per
//! message low. The writer swaps the filled buffer for an empty spare, so publishers never
//! wait on the socket.
//!
//! Backpressure follows nats-server: past 3/4 of `max_pending` a publisher is asked to
//! stall briefly (see [`Push::Stall`]); past `max_pending`, or when one write takes longer
//! than `write_deadline`, the connection is a slow consumer and is closed.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use parking_lot::Mutex;
use tokio::net::tcp::OwnedWriteHalf;
use tokio::sync::Notify;

/// Why a connection closed, as nats-server names it on `/connz?state=closed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CloseReason {
    ClientClosed,
    WriteError,
    ReadError,
    SlowConsumerPendingBytes,
    SlowConsumerWriteDeadline,
    ProtocolViolation,
    ParseError,
    AuthenticationTimeout,
    AuthenticationViolation,
    MaxPayloadExceeded,
    MaxControlLineExceeded,
    MaxConnectionsExceeded,
    StaleConnection,
    BadClientProtocolVersion,
    NoRespondersRequiresHeaders,
    ServerShutdown,
    AuthenticationRevoked,
    AuthenticationExpired,
    MaxAccountConnectionsExceeded,
}

impl CloseReason {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ClientClosed => "Client Closed",
            Self::WriteError => "Write Error",
            Self::ReadError => "Read Error",
            Self::SlowConsumerPendingBytes => "Slow Consumer (Pending Bytes)",
            Self::SlowConsumerWriteDeadline => "Slow Consumer (Write Deadline)",
            Self::ProtocolViolation => "Protocol Violation",
            Self::ParseError => "Parse Error",
            Self::AuthenticationTimeout => "Authentication Timeout",
            Self::AuthenticationViolation => "Authentication Failure",
            Self::MaxPayloadExceeded => "Maximum Message Payload Exceeded",
            Self::MaxControlLineExceeded => "Maximum Control Line Exceeded",
            Self::MaxConnectionsExceeded => "Maximum Connections Exceeded",
            Self::StaleConnection => "Stale Connection",
            Self::BadClientProtocolVersion => "Bad Client Protocol Version",
            Self::NoRespondersRequiresHeaders => "No Responders Requires Headers",
            Self::ServerShutdown => "Server Shutdown",
            Self::AuthenticationRevoked => "Authentication Revoked",
            Self::AuthenticationExpired => "Authentication Expired",
            Self::MaxAccountConnectionsExceeded => "Maximum Account Connections Exceeded",
        }
    }

    pub fn is_slow_consumer(self) -> bool {
        matches!(
            self,
            Self::SlowConsumerPendingBytes | Self::SlowConsumerWriteDeadline
        )
    }
}

/// Result of appending to an outbound buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Push {
    /// Queued; `flush` is true when the caller must flush this outbound (it is the first
    /// to queue since the last flush) by calling [`Outbound::flush`] after its read.
    Queued { flush: bool },
    /// Queued, but the buffer is filling: the publisher should wait for a drain (up to
    /// the given time) before reading more.
    Stall { flush: bool, limit: Duration },
    /// Not queued: the connection is closed (or was just closed as a slow consumer).
    Closed,
}

impl Push {
    pub fn needs_flush(self) -> bool {
        matches!(
            self,
            Self::Queued { flush: true } | Self::Stall { flush: true, .. }
        )
    }
}

const STALL_MIN: Duration = Duration::from_millis(2);
const STALL_MAX: Duration = Duration::from_millis(5);
/// Spare buffers larger than this are dropped after a write instead of being kept.
const KEEP_CAPACITY: usize = 1 << 20;

struct State {
    /// Bytes queued and not yet taken by a writer.
    buf: Vec<u8>,
    /// An empty buffer with capacity, swapped in when `buf` is taken.
    spare: Vec<u8>,
    /// What an inline flush could not write: the writer task finishes it first.
    partial: Option<(Vec<u8>, usize)>,
    in_flight: usize,
    /// Someone (an inline flush or the writer task) is writing; order requires one.
    writing: bool,
    /// A publisher has queued and owes a flush.
    flush_owed: bool,
    closed: Option<CloseReason>,
    stalled: bool,
    /// The TLS session has records to send that no plaintext batch will carry (alerts,
    /// key updates), or WebSocket control bytes wait: the writer must run even with an
    /// empty buffer.
    tls_owed: bool,
    /// WebSocket: the upgrade answer and control frames, sent raw before the next frame.
    ws_control: Vec<u8>,
}

/// Where a connection's bytes go: a socket, or (for the server's internal clients) a
/// channel read by a task inside the server.
enum Sink {
    Tcp(OwnedWriteHalf),
    Internal(tokio::sync::mpsc::UnboundedSender<Vec<u8>>),
}

impl Sink {
    fn try_write(&self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::Tcp(s) => s.try_write(buf),
            Self::Internal(tx) => tx
                .send(buf.to_vec())
                .map(|()| buf.len())
                .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe)),
        }
    }

    async fn writable(&self) -> std::io::Result<()> {
        match self {
            Self::Tcp(s) => s.writable().await,
            Self::Internal(_) => Ok(()),
        }
    }

    fn shutdown(&self) {
        if let Self::Tcp(s) = self {
            let _ = socket2::SockRef::from(s.as_ref()).shutdown(std::net::Shutdown::Write);
        }
    }
}

/// The shared outbound side of one connection.
pub struct Outbound {
    state: Mutex<State>,
    sock: Sink,
    wake: Notify,
    drained: Notify,
    closed_notify: Notify,
    is_closed: AtomicBool,
    max_pending: usize,
    /// Present on TLS connections: batches are sealed into records before writing.
    tls: Option<crate::tls::Session>,
    /// A WebSocket connection: each batch leaves as one binary frame.
    websocket: bool,
    /// This side is the WebSocket client (a leaf connection dialled over `ws://`): frames
    /// are masked.
    ws_mask: AtomicBool,
    /// permessage-deflate was negotiated: batches over [`WS_COMPRESS_FROM`] bytes are
    /// compressed.
    ws_deflate: AtomicBool,
}

/// Smaller batches are not worth compressing (nats-server's threshold too).
const WS_COMPRESS_FROM: usize = 64;

impl Outbound {
    pub fn new(sock: OwnedWriteHalf, max_pending: usize) -> Self {
        Self::with_tls(sock, max_pending, None)
    }

    /// The outbound side of an internal client: every flushed batch is sent to `tx`.
    pub fn internal(tx: tokio::sync::mpsc::UnboundedSender<Vec<u8>>, max_pending: usize) -> Self {
        Self::build(Sink::Internal(tx), max_pending, None)
    }

    /// An outbound side whose bytes go through `tls` (when given) on their way out.
    pub fn with_tls(
        sock: OwnedWriteHalf,
        max_pending: usize,
        tls: Option<crate::tls::Session>,
    ) -> Self {
        Self::build(Sink::Tcp(sock), max_pending, tls)
    }

    /// The outbound side of a WebSocket client: batches framed, then sealed by `tls`.
    pub fn websocket(
        sock: OwnedWriteHalf,
        max_pending: usize,
        tls: Option<crate::tls::Session>,
    ) -> Self {
        Self {
            websocket: true,
            ..Self::build(Sink::Tcp(sock), max_pending, tls)
        }
    }

    /// The outbound side of a WebSocket connection this server opened as the client:
    /// batches framed and masked, then sealed by `tls`.
    pub fn websocket_client(
        sock: OwnedWriteHalf,
        max_pending: usize,
        tls: Option<crate::tls::Session>,
    ) -> Self {
        Self {
            websocket: true,
            ws_mask: AtomicBool::new(true),
            ..Self::build(Sink::Tcp(sock), max_pending, tls)
        }
    }

    /// Queues bytes that go out as they are, before the next batch's frame: the HTTP
    /// upgrade answer and WebSocket control frames. Like TLS records, they travel
    /// outside the batch, so the writer is told it owes them.
    pub fn push_ws_control(&self, bytes: &[u8]) {
        {
            let mut st = self.state.lock();
            if st.closed.is_some() {
                return;
            }
            st.ws_control.extend_from_slice(bytes);
            st.tls_owed = true;
        }
        self.wake.notify_one();
    }

    fn build(sock: Sink, max_pending: usize, tls: Option<crate::tls::Session>) -> Self {
        Self {
            state: Mutex::new(State {
                buf: Vec::new(),
                spare: Vec::new(),
                partial: None,
                in_flight: 0,
                writing: false,
                flush_owed: false,
                closed: None,
                stalled: false,
                tls_owed: false,
                ws_control: Vec::new(),
            }),
            sock,
            wake: Notify::new(),
            drained: Notify::new(),
            closed_notify: Notify::new(),
            is_closed: AtomicBool::new(false),
            max_pending: max_pending.max(1),
            tls,
            websocket: false,
            ws_mask: AtomicBool::new(false),
            ws_deflate: AtomicBool::new(false),
        }
    }

    /// Stops masking frames: the server agreed to `Nats-No-Masking` in its answer.
    pub fn set_ws_unmasked(&self) {
        self.ws_mask.store(false, Ordering::Release);
    }

    /// Compresses what follows (permessage-deflate, negotiated in the upgrade).
    pub fn set_ws_deflate(&self) {
        self.ws_deflate.store(true, Ordering::Release);
    }

    /// Asks the writer to send records the TLS session owes.
    pub fn wake_tls(&self) {
        self.state.lock().tls_owed = true;
        self.wake.notify_one();
    }

    /// The bytes to put on the wire for `batch`: itself, or its TLS records. A sealing
    /// failure closes the connection.
    fn seal(&self, batch: Vec<u8>) -> Option<Vec<u8>> {
        let batch = if self.websocket {
            use crate::websocket::frame;
            let mut out = std::mem::take(&mut self.state.lock().ws_control);
            let mask = self.ws_mask.load(Ordering::Acquire);
            let packed = (batch.len() > WS_COMPRESS_FROM
                && self.ws_deflate.load(Ordering::Acquire))
            .then(|| frame::deflate(&batch))
            .flatten();
            match packed {
                Some(p) if mask => {
                    frame::encode_masked(&mut out, frame::OpCode::Binary, &p, true);
                }
                Some(p) => {
                    frame::encode_header_rsv(&mut out, frame::OpCode::Binary, p.len(), true);
                    out.extend_from_slice(&p);
                }
                None if !batch.is_empty() && mask => {
                    frame::encode_masked(&mut out, frame::OpCode::Binary, &batch, false);
                }
                None if !batch.is_empty() => {
                    frame::encode_header(&mut out, frame::OpCode::Binary, batch.len());
                    out.extend_from_slice(&batch);
                }
                None => {}
            }
            out
        } else {
            batch
        };
        let Some(tls) = &self.tls else {
            return Some(batch);
        };
        match crate::tls::seal(tls, &batch) {
            Ok(records) => Some(records),
            Err(e) => {
                tracing::debug!(error = %e, "TLS write error");
                self.state.lock().writing = false;
                self.close(CloseReason::WriteError);
                None
            }
        }
    }

    /// Appends with `encode`, which must write at most `len_hint` bytes (used for the
    /// pending check before encoding). The caller flushes when told to.
    pub fn push_with(&self, len_hint: usize, encode: impl FnOnce(&mut Vec<u8>)) -> Push {
        let mut st = self.state.lock();
        if st.closed.is_some() {
            return Push::Closed;
        }
        let pending = st.buf.len() + st.in_flight;
        if pending + len_hint > self.max_pending && pending > 0 {
            drop(st);
            self.close(CloseReason::SlowConsumerPendingBytes);
            return Push::Closed;
        }
        encode(&mut st.buf);
        let flush = !std::mem::replace(&mut st.flush_owed, true);
        let pending = st.buf.len() + st.in_flight;
        if pending > self.max_pending / 4 * 3 {
            st.stalled = true;
            Push::Stall {
                flush,
                limit: if pending >= self.max_pending {
                    STALL_MAX
                } else {
                    STALL_MIN
                },
            }
        } else {
            Push::Queued { flush }
        }
    }

    /// Appends raw protocol bytes (INFO, PONG, -ERR, ...) and wakes the writer; never
    /// subject to the pending limit, as nats-server queues its own protocol
    /// unconditionally.
    pub fn push_proto(&self, bytes: &[u8]) {
        {
            let mut st = self.state.lock();
            if st.closed.is_some() {
                return;
            }
            st.buf.extend_from_slice(bytes);
        }
        self.wake.notify_one();
    }

    /// Writes what is queued straight to the socket without blocking, from the
    /// publisher's task; what the socket does not take now is left to the writer task.
    /// Hands what is buffered to the writer task instead of writing it here. The
    /// server's own publishes use this: a burst of them (JetStream's acks for one commit,
    /// a consumer's deliveries) then leaves in one write, not one write per message.
    pub fn flush_soon(&self) {
        if matches!(self.sock, Sink::Internal(_)) {
            // An internal client has no writer task: its channel send is the write, so
            // it happens here (deferred, it would wait for an unrelated flush).
            self.flush();
            return;
        }
        self.state.lock().flush_owed = false;
        self.wake.notify_one();
    }

    pub fn flush(&self) {
        // One pass for a socket (its writer task takes what comes meanwhile); more for an
        // internal client, which has no writer task (see below).
        while self.flush_once() {}
    }

    /// Writes one batch; true if an internal client's buffer got more meanwhile and
    /// this caller must write that too.
    fn flush_once(&self) -> bool {
        let batch = {
            let mut st = self.state.lock();
            st.flush_owed = false;
            if st.writing || st.buf.is_empty() || st.closed.is_some() {
                drop(st);
                self.wake.notify_one();
                return false;
            }
            st.writing = true;
            st.tls_owed = false;
            let spare = std::mem::take(&mut st.spare);
            let batch = std::mem::replace(&mut st.buf, spare);
            st.in_flight = batch.len();
            batch
        };
        let Some(mut batch) = self.seal(batch) else {
            return false;
        };
        let mut written = 0;
        while written < batch.len() {
            match self.sock.try_write(&batch[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                Err(e) => {
                    tracing::debug!(error = %e, "write error");
                    self.state.lock().writing = false;
                    self.close(CloseReason::WriteError);
                    return false;
                }
            }
        }
        let mut st = self.state.lock();
        if written == batch.len() {
            st.writing = false;
            st.in_flight = 0;
            batch.clear();
            if st.spare.capacity() < batch.capacity() && batch.capacity() <= KEEP_CAPACITY {
                st.spare = batch;
            }
            let drained = self.check_drained(&mut st);
            let wake = !st.buf.is_empty() || st.closed.is_some();
            let more = !st.buf.is_empty() && st.closed.is_none();
            drop(st);
            if drained {
                self.drained.notify_waiters();
            }
            if more && matches!(self.sock, Sink::Internal(_)) {
                // An internal client has no writer task to hand this to: what another
                // thread queued while this batch was written (its own flush found
                // `writing` set and left it) goes now, or it would wait for an
                // unrelated later push (a JetStream reply to an MQTT session was seen
                // stranded that way).
                return true;
            }
            if wake {
                self.wake.notify_one();
            }
        } else {
            // Still `writing`: the writer task owns the remainder and goes first.
            st.in_flight = batch.len() - written;
            st.partial = Some((batch, written));
            drop(st);
            self.wake.notify_one();
        }
        false
    }

    fn check_drained(&self, st: &mut State) -> bool {
        if st.stalled && st.buf.len() + st.in_flight <= self.max_pending / 4 * 3 {
            st.stalled = false;
            true
        } else {
            false
        }
    }

    /// Bytes queued and in flight.
    pub fn pending(&self) -> usize {
        let st = self.state.lock();
        st.buf.len() + st.in_flight
    }

    /// Marks the connection closed: what is already queued is still written, then the
    /// writer shuts the socket down. The first reason wins.
    pub fn close(&self, reason: CloseReason) {
        {
            let mut st = self.state.lock();
            if st.closed.is_some() {
                return;
            }
            st.closed = Some(reason);
        }
        self.is_closed.store(true, Ordering::Release);
        self.wake.notify_one();
        self.drained.notify_waiters();
        self.closed_notify.notify_waiters();
    }

    pub fn is_closed(&self) -> bool {
        self.is_closed.load(Ordering::Acquire)
    }

    pub fn close_reason(&self) -> Option<CloseReason> {
        self.state.lock().closed
    }

    /// Resolves once [`close`](Self::close) has been called.
    pub async fn closed(&self) {
        let notified = self.closed_notify.notified();
        if self.is_closed() {
            return;
        }
        notified.await;
    }

    /// Waits until everything queued so far has been written (or the connection closed),
    /// at most `limit`. For a connection's last words: WebSocket control frames go out
    /// before queued data ([`Outbound::push_ws_control`]), so a close frame pushed while
    /// the last packets still wait would overtake them and the peer would never read
    /// them. Polls, since it is used once per connection, at its end.
    pub async fn flushed(&self, limit: Duration) {
        let until = tokio::time::Instant::now() + limit;
        while self.pending() > 0 && !self.is_closed() && tokio::time::Instant::now() < until {
            self.flush_soon();
            tokio::time::sleep(Duration::from_millis(2)).await;
        }
    }

    /// Waits until a write brings the buffer back under the stall mark, at most `limit`.
    pub async fn wait_drained(&self, limit: Duration) {
        let notified = self.drained.notified();
        if !self.state.lock().stalled {
            return;
        }
        let _ = tokio::time::timeout(limit, notified).await;
    }

    /// Writes all of `data`, waiting for the socket; false after `deadline`.
    async fn write_all(&self, data: &[u8], deadline: Duration) -> Result<(), CloseReason> {
        let mut written = 0;
        let until = tokio::time::Instant::now() + deadline;
        while written < data.len() {
            match self.sock.try_write(&data[written..]) {
                Ok(n) => written += n,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    match tokio::time::timeout_at(until, self.sock.writable()).await {
                        Err(_) => return Err(CloseReason::SlowConsumerWriteDeadline),
                        Ok(Err(_)) => return Err(CloseReason::WriteError),
                        Ok(Ok(())) => {}
                    }
                }
                Err(e) => {
                    tracing::debug!(error = %e, "write error");
                    return Err(CloseReason::WriteError);
                }
            }
        }
        Ok(())
    }

    /// The writer task: drains what inline flushes leave, until the connection closes.
    pub async fn run_writer(self: Arc<Self>, write_deadline: Duration) {
        loop {
            let notified = self.wake.notified();
            let job = {
                let mut st = self.state.lock();
                if let Some((b, off)) = st.partial.take() {
                    // An inline flush's remainder: already on its way out, already sealed.
                    Some((b, off, true))
                } else if st.writing {
                    None
                } else if !st.buf.is_empty() || st.tls_owed {
                    st.writing = true;
                    st.tls_owed = false;
                    let spare = std::mem::take(&mut st.spare);
                    let batch = std::mem::replace(&mut st.buf, spare);
                    st.in_flight = batch.len();
                    Some((batch, 0, false))
                } else if st.closed.is_some() {
                    break;
                } else {
                    None
                }
            };
            let Some((batch, offset, sealed)) = job else {
                notified.await;
                continue;
            };
            let mut batch = if sealed {
                batch
            } else {
                match self.seal(batch) {
                    Some(b) => b,
                    None => break,
                }
            };
            if let Err(reason) = self.write_all(&batch[offset..], write_deadline).await {
                if reason.is_slow_consumer() {
                    tracing::debug!("write deadline exceeded, closing slow consumer");
                }
                self.state.lock().writing = false;
                self.close(reason);
                break;
            }
            batch.clear();
            let drained = {
                let mut st = self.state.lock();
                st.writing = false;
                st.in_flight = 0;
                if st.spare.capacity() < batch.capacity() && batch.capacity() <= KEEP_CAPACITY {
                    st.spare = batch;
                }
                self.check_drained(&mut st)
            };
            if drained {
                self.drained.notify_waiters();
            }
        }
        {
            let mut st = self.state.lock();
            st.buf = Vec::new();
            st.spare = Vec::new();
            st.in_flight = 0;
        }
        // Shut down the write side so the peer sees the close after any final -ERR.
        self.sock.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Two threads push to one internal client and each flushes after its push: when one
    /// flush finds the other writing, the writer must take the late bytes too (an internal
    /// client has no writer task). Nothing may be left behind once both have returned.
    #[test]
    fn internal_client_gets_what_concurrent_flushes_overlap_on() {
        for round in 0..2000 {
            let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
            let o = Arc::new(Outbound::internal(tx, usize::MAX));
            let threads: Vec<_> = [b'a', b'b']
                .into_iter()
                .map(|tag| {
                    let o = o.clone();
                    std::thread::spawn(move || {
                        for _ in 0..4 {
                            o.push_with(1, |v| v.push(tag));
                            o.flush_soon();
                        }
                    })
                })
                .collect();
            for t in threads {
                t.join().expect("pusher");
            }
            let mut got = Vec::new();
            while let Ok(chunk) = rx.try_recv() {
                got.extend(chunk);
            }
            assert_eq!(got.len(), 8, "round {round}: stranded bytes");
        }
    }
}
