//! A connection's outbound side: the buffer that publishers append encoded frames to, and
//! the writer task that drains it to the socket.
//!
//! Publishers copy each frame into a buffer under a short lock, so a burst of messages to
//! one subscriber leaves in a single (vectored) write while the writer is busy with the
//! previous batch: coalescing by bytes, not by frame count, is what keeps syscalls per
//! message low. The buffer is a list of chunks of up to [`CHUNK`] bytes rather than one
//! growing vector: a subscriber that falls behind adds chunks instead of reallocating
//! (and page-faulting in) ever larger buffers, and written chunks are reused.
//!
//! A large payload (from [`SHARE_FROM`] bytes) is not copied at all: the frame's
//! control line goes into the buffer and the payload is kept as a reference into the
//! publisher's read buffer, written with the rest in one vectored write. Every
//! subscriber of a fan-out shares the one copy the kernel made when it was read.
//!
//! Backpressure follows nats-server: past 3/4 of `max_pending` a publisher is asked to
//! stall briefly (see [`Push::Stall`]), longer the nearer the limit; past `max_pending`, or when one write takes longer
//! than `write_deadline`, the connection is a slow consumer and is closed.

use std::io::IoSlice;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use bytes::Bytes;

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
const STALL_MAX: Duration = Duration::from_millis(50);
/// A chunk is not grown past this: the next frame starts a new one.
const CHUNK: usize = 64 * 1024;
/// Written chunks kept for reuse, per connection.
const POOL_KEEP: usize = 2;
/// Payloads this large are shared with the publisher's read buffer instead of copied.
/// A shared payload keeps its whole read buffer (up to 64 KiB, or the one message)
/// alive until written, so sharing smaller ones could let a slow consumer hold far more
/// memory than its pending limit counts.
pub const SHARE_FROM: usize = 16 * 1024;
/// Slices per vectored write (Linux takes up to 1,024).
const MAX_IOV: usize = 64;

/// A run of queued bytes, with shared payloads spliced in at their offsets.
#[derive(Default)]
struct Chunk {
    bytes: Vec<u8>,
    /// Each payload goes out after `bytes[..at]`, in order of `at`.
    shared: Vec<(usize, Bytes)>,
}

impl Chunk {
    fn flat(bytes: Vec<u8>) -> Self {
        Self {
            bytes,
            shared: Vec::new(),
        }
    }

    /// The chunk's pieces in wire order.
    fn segments(&self) -> impl Iterator<Item = &[u8]> {
        let mut from = 0;
        let tail = self.shared.last().map_or(0, |(at, _)| *at);
        self.shared
            .iter()
            .flat_map(move |(at, b)| {
                let head = &self.bytes[from..*at];
                from = *at;
                [head, &b[..]]
            })
            .chain(std::iter::once(&self.bytes[tail..]))
    }
}

/// The bytes of one write: chunks in order. Sealed batches (TLS, WebSocket) and
/// internal clients' are one flat chunk.
#[derive(Default)]
struct Batch {
    chunks: Vec<Chunk>,
}

impl Batch {
    fn len(&self) -> usize {
        self.segments().map(<[u8]>::len).sum()
    }

    /// One flat chunk: the whole batch is `bytes`.
    fn as_flat(&self) -> Option<&[u8]> {
        match &self.chunks[..] {
            [] => Some(&[]),
            [c] if c.shared.is_empty() => Some(&c.bytes),
            _ => None,
        }
    }

    fn segments(&self) -> impl Iterator<Item = &[u8]> {
        self.chunks.iter().flat_map(Chunk::segments)
    }

    /// The batch as one buffer, for whatever must see it whole (TLS, WebSocket
    /// frames, internal clients).
    fn flatten(mut self) -> Vec<u8> {
        if self.chunks.len() == 1 && self.chunks[0].shared.is_empty() {
            return self.chunks.pop().map(|c| c.bytes).unwrap_or_default();
        }
        let mut out = Vec::with_capacity(self.len());
        for s in self.segments() {
            out.extend_from_slice(s);
        }
        out
    }

    /// Fills `iov` with the batch from byte `offset` on; how many slices it used.
    fn slices<'a>(&'a self, offset: usize, iov: &mut [IoSlice<'a>]) -> usize {
        let mut skip = offset;
        let mut n = 0;
        for s in self.segments() {
            if n == iov.len() {
                break;
            }
            if skip >= s.len() {
                skip -= s.len();
                continue;
            }
            iov[n] = IoSlice::new(&s[skip..]);
            skip = 0;
            n += 1;
        }
        n
    }
}

#[derive(Default)]
struct State {
    /// Full chunks queued and not yet taken by a writer, and their size.
    full: Vec<Chunk>,
    full_len: usize,
    /// The chunk frames are appended to, and the size of its shared payloads.
    cur: Chunk,
    cur_shared: usize,
    /// Written chunks, emptied, for reuse; and an empty list to take the next batch in.
    pool: Vec<Chunk>,
    list: Vec<Chunk>,
    /// What an inline flush could not write: the writer task finishes it first.
    partial: Option<(Batch, usize)>,
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
    /// Messages and payload bytes queued here (`/connz` `out_msgs`, `out_bytes`). Kept
    /// under the lock a delivery takes anyway: a fan-out would otherwise pay two more
    /// atomic increments per subscriber.
    out_msgs: u64,
    out_bytes: u64,
}

impl State {
    /// Bytes queued and in flight.
    fn pending(&self) -> usize {
        self.full_len + self.cur.bytes.len() + self.cur_shared + self.in_flight
    }

    fn has_queued(&self) -> bool {
        !self.full.is_empty() || !self.cur.bytes.is_empty()
    }

    /// Before appending up to `len` bytes: a chunk that would pass [`CHUNK`] is closed
    /// and a reused (or new) one started, so no buffer is ever reallocated larger.
    fn make_room(&mut self, len: usize) {
        let used = self.cur.bytes.len();
        if used > 0 && used + len > CHUNK {
            let next = self.pool.pop().unwrap_or_default();
            let done = std::mem::replace(&mut self.cur, next);
            self.full_len += done.bytes.len() + self.cur_shared;
            self.cur_shared = 0;
            self.full.push(done);
        }
        if self.cur.bytes.capacity() == 0
            && let Some(reused) = self.pool.pop()
        {
            self.cur = reused;
        }
    }

    /// Takes everything queued as the next batch.
    fn take_batch(&mut self) -> Batch {
        let mut chunks = if self.full.is_empty() {
            std::mem::take(&mut self.list)
        } else {
            std::mem::take(&mut self.full)
        };
        if !self.cur.bytes.is_empty() {
            let next = self.pool.pop().unwrap_or_default();
            chunks.push(std::mem::replace(&mut self.cur, next));
        }
        self.full_len = 0;
        self.cur_shared = 0;
        let batch = Batch { chunks };
        self.in_flight = batch.len();
        batch
    }

    /// A written batch: its chunks are emptied (releasing shared payloads) and a few
    /// kept for reuse.
    fn recycle(&mut self, mut batch: Batch) {
        self.in_flight = 0;
        for mut c in batch.chunks.drain(..) {
            if self.pool.len() < POOL_KEEP && c.bytes.capacity() <= 2 * CHUNK {
                c.bytes.clear();
                c.shared.clear();
                self.pool.push(c);
            }
        }
        if self.list.capacity() < batch.chunks.capacity() {
            self.list = batch.chunks;
        }
    }
}

/// Where a connection's bytes go: a socket, or (for the server's internal clients) a
/// channel read by a task inside the server.
enum Sink {
    Tcp(OwnedWriteHalf),
    Internal(tokio::sync::mpsc::UnboundedSender<Vec<u8>>),
}

impl Sink {
    /// Writes what it can of `batch` from byte `offset` on.
    fn try_write(&self, batch: &Batch, offset: usize) -> std::io::Result<usize> {
        match self {
            Self::Tcp(s) => match batch.as_flat() {
                Some(bytes) => s.try_write(&bytes[offset..]),
                None => {
                    let mut iov = [IoSlice::new(&[]); MAX_IOV];
                    let n = batch.slices(offset, &mut iov);
                    s.try_write_vectored(&iov[..n])
                }
            },
            // Internal clients' batches are flat (see `seal`).
            Self::Internal(tx) => {
                let bytes = batch.as_flat().unwrap_or_default();
                tx.send(bytes[offset..].to_vec())
                    .map(|()| bytes.len() - offset)
                    .map_err(|_| std::io::Error::from(std::io::ErrorKind::BrokenPipe))
            }
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
/// The largest WebSocket message a batch is sent in; a larger batch goes in several.
const WS_MAX_FRAME: usize = 1 << 20;

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
            state: Mutex::new(State::default()),
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

    /// Appends `piece` to `out` as one binary WebSocket message: compressed when
    /// negotiated and worth it, masked when this side is the client.
    fn ws_frame(&self, out: &mut Vec<u8>, piece: &[u8]) {
        use crate::websocket::frame;
        let mask = self.ws_mask.load(Ordering::Acquire);
        let packed = (piece.len() > WS_COMPRESS_FROM && self.ws_deflate.load(Ordering::Acquire))
            .then(|| frame::deflate(piece))
            .flatten();
        match packed {
            Some(p) if mask => frame::encode_masked(out, frame::OpCode::Binary, &p, true),
            Some(p) => {
                frame::encode_header_rsv(out, frame::OpCode::Binary, p.len(), true);
                out.extend_from_slice(&p);
            }
            None if mask => frame::encode_masked(out, frame::OpCode::Binary, piece, false),
            None => {
                frame::encode_header(out, frame::OpCode::Binary, piece.len());
                out.extend_from_slice(piece);
            }
        }
    }

    /// What to put on the wire for `batch`: itself, or its WebSocket frame and TLS
    /// records. A sealing failure closes the connection.
    fn seal(&self, batch: Batch) -> Option<Batch> {
        if !self.websocket && self.tls.is_none() && matches!(self.sock, Sink::Tcp(_)) {
            return Some(batch);
        }
        let batch = batch.flatten();
        let batch = if self.websocket {
            let mut out = std::mem::take(&mut self.state.lock().ws_control);
            // One WebSocket message per piece: clients refuse frames past a limit of
            // their own (nats.go: "websocket frame too large" for an 8 MiB batch).
            for piece in batch.chunks(WS_MAX_FRAME) {
                self.ws_frame(&mut out, piece);
            }
            out
        } else {
            batch
        };
        let Some(tls) = &self.tls else {
            return Some(Batch {
                chunks: vec![Chunk::flat(batch)],
            });
        };
        match crate::tls::seal(tls, &batch) {
            Ok(records) => Some(Batch {
                chunks: vec![Chunk::flat(records)],
            }),
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
        self.push_inner(len_hint, None, |st| {
            st.make_room(len_hint);
            encode(&mut st.cur.bytes);
        })
    }

    /// [`push_with`](Self::push_with) for one message of `payload` bytes, counted in
    /// [`sent`](Self::sent) when queued.
    pub fn push_msg(
        &self,
        len_hint: usize,
        payload: usize,
        encode: impl FnOnce(&mut Vec<u8>),
    ) -> Push {
        self.push_inner(len_hint, Some(payload), |st| {
            st.make_room(len_hint);
            encode(&mut st.cur.bytes);
        })
    }

    /// One message whose body is shared rather than copied: `head` writes the control
    /// line (up to and including its CRLF) and returns where in `msg` the body starts;
    /// that part of `msg` and a CRLF follow. Counted as `counted` payload bytes. Only
    /// worth it for bodies from [`SHARE_FROM`] bytes.
    pub fn push_shared(
        &self,
        len_hint: usize,
        counted: usize,
        head: impl FnOnce(&mut Vec<u8>) -> usize,
        msg: &Bytes,
    ) -> Push {
        self.push_inner(len_hint, Some(counted), |st| {
            // Only the control line and CRLF go into the chunk; the body stays shared.
            st.make_room(len_hint.saturating_sub(msg.len()));
            let from = head(&mut st.cur.bytes);
            let body = msg.slice(from.min(msg.len())..);
            let at = st.cur.bytes.len();
            st.cur_shared += body.len();
            st.cur.shared.push((at, body));
            st.cur.bytes.extend_from_slice(b"\r\n");
        })
    }

    /// Messages and payload bytes queued so far.
    pub fn sent(&self) -> (u64, u64) {
        let st = self.state.lock();
        (st.out_msgs, st.out_bytes)
    }

    fn push_inner(
        &self,
        len_hint: usize,
        payload: Option<usize>,
        fill: impl FnOnce(&mut State),
    ) -> Push {
        let mut st = self.state.lock();
        if st.closed.is_some() {
            return Push::Closed;
        }
        let pending = st.pending();
        if pending + len_hint > self.max_pending && pending > 0 {
            drop(st);
            self.close(CloseReason::SlowConsumerPendingBytes);
            return Push::Closed;
        }
        fill(&mut st);
        if let Some(n) = payload {
            st.out_msgs += 1;
            st.out_bytes += n as u64;
        }
        let flush = !std::mem::replace(&mut st.flush_owed, true);
        let pending = st.pending();
        if pending > self.max_pending / 4 * 3 {
            st.stalled = true;
            Push::Stall {
                flush,
                limit: self.stall_limit(pending),
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
            st.make_room(bytes.len());
            st.cur.bytes.extend_from_slice(bytes);
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
            if st.writing || !st.has_queued() || st.closed.is_some() {
                drop(st);
                self.wake.notify_one();
                return false;
            }
            st.writing = true;
            st.tls_owed = false;
            st.take_batch()
        };
        let Some(batch) = self.seal(batch) else {
            return false;
        };
        let total = batch.len();
        let mut written = 0;
        while written < total {
            match self.sock.try_write(&batch, written) {
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
        if written == total {
            st.writing = false;
            st.recycle(batch);
            let drained = self.check_drained(&mut st);
            let wake = st.has_queued() || st.closed.is_some();
            let more = st.has_queued() && st.closed.is_none();
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
            st.in_flight = total - written;
            st.partial = Some((batch, written));
            drop(st);
            self.wake.notify_one();
        }
        false
    }

    fn check_drained(&self, st: &mut State) -> bool {
        if st.stalled && st.pending() <= self.max_pending / 4 * 3 {
            st.stalled = false;
            true
        } else {
            false
        }
    }

    /// How long a publisher waits for this connection to drain, `pending` bytes being
    /// past 3/4 of `max_pending`: 2 ms there (nats-server's stall), growing with the
    /// square of the headroom used up to 50 ms at the limit. nats-server stalls 2–5 ms;
    /// natrix takes in large messages much faster (read whole, delivered without a
    /// copy), and with so short a stall a 1 MiB publisher cut off subscribers that
    /// nats-server keeps, so near the limit the publisher waits longer instead.
    fn stall_limit(&self, pending: usize) -> Duration {
        let from = self.max_pending / 4 * 3;
        let span = (self.max_pending - from).max(1) as f64;
        let used = (pending.saturating_sub(from) as f64 / span).min(1.0);
        STALL_MIN + (STALL_MAX - STALL_MIN).mul_f64(used * used)
    }

    /// Bytes queued and in flight.
    pub fn pending(&self) -> usize {
        self.state.lock().pending()
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

    /// Writes `batch` from byte `offset` on, waiting for the socket; an error after
    /// `deadline`.
    async fn write_all(
        &self,
        batch: &Batch,
        offset: usize,
        deadline: Duration,
    ) -> Result<(), CloseReason> {
        let mut written = offset;
        let total = batch.len();
        let until = tokio::time::Instant::now() + deadline;
        while written < total {
            match self.sock.try_write(batch, written) {
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
                } else if st.has_queued() || st.tls_owed {
                    st.writing = true;
                    st.tls_owed = false;
                    Some((st.take_batch(), 0, false))
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
            let batch = if sealed {
                batch
            } else {
                match self.seal(batch) {
                    Some(b) => b,
                    None => break,
                }
            };
            if let Err(reason) = self.write_all(&batch, offset, write_deadline).await {
                if reason.is_slow_consumer() {
                    tracing::debug!("write deadline exceeded, closing slow consumer");
                }
                self.state.lock().writing = false;
                self.close(reason);
                break;
            }
            let drained = {
                let mut st = self.state.lock();
                st.writing = false;
                st.recycle(batch);
                self.check_drained(&mut st)
            };
            if drained {
                self.drained.notify_waiters();
            }
        }
        {
            let mut st = self.state.lock();
            st.full = Vec::new();
            st.full_len = 0;
            st.cur = Chunk::default();
            st.cur_shared = 0;
            st.pool = Vec::new();
            st.list = Vec::new();
            st.partial = None;
            st.in_flight = 0;
        }
        // Shut down the write side so the peer sees the close after any final -ERR.
        self.sock.shutdown();
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// A batch built from pieces `(bytes, shared?)` over chunks of at most `chunk`
    /// inline bytes, as pushes would leave it; and the bytes it stands for.
    fn batch(pieces: &[(Vec<u8>, bool)], chunk: usize) -> (Batch, Vec<u8>) {
        let mut b = Batch::default();
        let mut cur = Chunk::default();
        let mut whole = Vec::new();
        for (p, shared) in pieces {
            if !cur.bytes.is_empty() && cur.bytes.len() + p.len() > chunk {
                b.chunks.push(std::mem::take(&mut cur));
            }
            if *shared {
                cur.shared.push((cur.bytes.len(), Bytes::from(p.clone())));
            } else {
                cur.bytes.extend_from_slice(p);
            }
            whole.extend_from_slice(p);
        }
        b.chunks.push(cur);
        (b, whole)
    }

    proptest! {
        #[test]
        fn a_batch_is_its_pieces_in_order(
            pieces in proptest::collection::vec(
                (proptest::collection::vec(any::<u8>(), 0..40), any::<bool>()), 0..12),
            chunk in 1usize..100,
            cut in 0usize..400,
        ) {
            let (b, whole) = batch(&pieces, chunk);
            prop_assert_eq!(b.len(), whole.len());
            // What a partial write leaves: the slices from any offset are the rest.
            let offset = cut.min(whole.len());
            let mut iov = [IoSlice::new(&[]); MAX_IOV];
            let n = b.slices(offset, &mut iov);
            let rest: Vec<u8> = iov[..n].iter().flat_map(|s| s.iter().copied()).collect();
            prop_assert_eq!(&rest[..], &whole[offset..]);
            prop_assert!(iov[..n].iter().all(|s| !s.is_empty()), "no empty slices");
            prop_assert_eq!(b.flatten(), whole);
        }
    }

    #[test]
    fn a_long_batch_is_written_in_several_vectored_writes() {
        let pieces: Vec<(Vec<u8>, bool)> = (0..200u8).map(|i| (vec![i; 3], i % 2 == 0)).collect();
        let (b, whole) = batch(&pieces, 50);
        let mut iov = [IoSlice::new(&[]); MAX_IOV];
        let mut offset = 0;
        let mut got = Vec::new();
        while offset < whole.len() {
            let n = b.slices(offset, &mut iov);
            assert!(n <= MAX_IOV);
            let written: usize = iov[..n].iter().map(|s| s.len()).sum();
            got.extend(iov[..n].iter().flat_map(|s| s.iter().copied()));
            offset += written;
        }
        assert_eq!(got, whole);
    }

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

    /// A batch larger than a WebSocket message may be goes out as several binary
    /// messages, each whole (nats.go refuses frames of 8 MiB).
    #[tokio::test]
    async fn websocket_batches_leave_in_messages_of_at_most_a_mebibyte() {
        let l = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind");
        let addr = l.local_addr().expect("addr");
        let _client = tokio::net::TcpStream::connect(addr).await.expect("connect");
        let (srv, _) = l.accept().await.expect("accept");
        let (_rd, wr) = srv.into_split();
        let o = Outbound::websocket(wr, usize::MAX, None);
        let payload: Vec<u8> = (0..(2 * WS_MAX_FRAME + 12_345)).map(|i| i as u8).collect();
        let sealed = o
            .seal(Batch {
                chunks: vec![Chunk::flat(payload.clone())],
            })
            .expect("sealed");
        let wire = sealed.as_flat().expect("flat").to_vec();
        let (mut at, mut lens, mut body) = (0, Vec::new(), Vec::new());
        while at < wire.len() {
            assert_eq!(wire[at], 0x82, "a final binary frame");
            let (len, head) = match wire[at + 1] {
                126 => (
                    usize::from(u16::from_be_bytes([wire[at + 2], wire[at + 3]])),
                    4,
                ),
                127 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(&wire[at + 2..at + 10]);
                    (usize::try_from(u64::from_be_bytes(b)).expect("len"), 10)
                }
                n => (usize::from(n), 2),
            };
            body.extend_from_slice(&wire[at + head..at + head + len]);
            lens.push(len);
            at += head + len;
        }
        assert_eq!(lens, vec![WS_MAX_FRAME, WS_MAX_FRAME, 12_345]);
        assert!(body == payload, "the messages carry the batch in order");
    }

    #[test]
    fn the_stall_grows_as_a_subscriber_nears_its_limit() {
        let (tx, _rx) = tokio::sync::mpsc::unbounded_channel();
        let o = Outbound::internal(tx, 1_000_000);
        assert_eq!(
            o.stall_limit(750_000),
            STALL_MIN,
            "nats-server's 2 ms at 3/4"
        );
        assert_eq!(o.stall_limit(1_000_000), STALL_MAX);
        assert_eq!(o.stall_limit(2_000_000), STALL_MAX);
        let steps: Vec<Duration> = (750_000..=1_000_000)
            .step_by(25_000)
            .map(|p| o.stall_limit(p))
            .collect();
        assert!(steps.windows(2).all(|w| w[0] <= w[1]), "{steps:?}");
        assert!(
            o.stall_limit(875_000) < Duration::from_millis(15),
            "gentle half way"
        );
    }

    #[test]
    fn a_lagging_subscriber_adds_chunks_instead_of_growing_one() {
        let mut st = State::default();
        let frame = [7u8; 1000];
        for _ in 0..300 {
            st.make_room(frame.len());
            st.cur.bytes.extend_from_slice(&frame);
        }
        assert_eq!(st.pending(), 300_000);
        assert!(st.full.len() >= 4, "{} chunks", st.full.len());
        assert!(st.full.iter().all(|c| c.bytes.len() <= CHUNK));
        let b = st.take_batch();
        assert_eq!(b.len(), 300_000);
        assert_eq!(st.pending(), 300_000, "in flight until written");
        st.recycle(b);
        assert_eq!(st.pending(), 0);
        assert_eq!(
            st.pool.len(),
            POOL_KEEP,
            "written chunks are kept for reuse"
        );
        st.make_room(10);
        assert!(
            st.cur.bytes.capacity() >= 60_000,
            "the next frame lands in a reused chunk"
        );
    }
}
