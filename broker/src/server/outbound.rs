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
use tokio::io::AsyncWriteExt;
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
    Queued,
    /// Queued, but the buffer is filling: the publisher should wait for a drain (up to
    /// the given time) before reading more.
    Stall(Duration),
    /// Not queued: the connection is closed (or was just closed as a slow consumer).
    Closed,
}

const STALL_MIN: Duration = Duration::from_millis(2);
const STALL_MAX: Duration = Duration::from_millis(5);
/// Spare buffers larger than this are dropped after a write instead of being kept.
const KEEP_CAPACITY: usize = 1 << 20;

struct State {
    buf: Vec<u8>,
    in_flight: usize,
    closed: Option<CloseReason>,
    stalled: bool,
}

/// The shared outbound side of one connection.
pub struct Outbound {
    state: Mutex<State>,
    wake: Notify,
    drained: Notify,
    closed_notify: Notify,
    is_closed: AtomicBool,
    max_pending: usize,
}

impl Outbound {
    pub fn new(max_pending: usize) -> Self {
        Self {
            state: Mutex::new(State {
                buf: Vec::with_capacity(4096),
                in_flight: 0,
                closed: None,
                stalled: false,
            }),
            wake: Notify::new(),
            drained: Notify::new(),
            closed_notify: Notify::new(),
            is_closed: AtomicBool::new(false),
            max_pending: max_pending.max(1),
        }
    }

    /// Appends with `encode`, which must write at most `len_hint` bytes (used for the
    /// pending check before encoding).
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
        let was_empty = st.buf.is_empty();
        encode(&mut st.buf);
        let pending = st.buf.len() + st.in_flight;
        let result = if pending > self.max_pending / 4 * 3 {
            st.stalled = true;
            Push::Stall(if pending >= self.max_pending {
                STALL_MAX
            } else {
                STALL_MIN
            })
        } else {
            Push::Queued
        };
        drop(st);
        if was_empty {
            self.wake.notify_one();
        }
        result
    }

    /// Appends raw protocol bytes (INFO, PONG, -ERR, ...); never subject to the pending
    /// limit, as nats-server queues its own protocol unconditionally.
    pub fn push_proto(&self, bytes: &[u8]) {
        let mut st = self.state.lock();
        if st.closed.is_some() {
            return;
        }
        let was_empty = st.buf.is_empty();
        st.buf.extend_from_slice(bytes);
        drop(st);
        if was_empty {
            self.wake.notify_one();
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

    /// Waits until a write brings the buffer back under the stall mark, at most `limit`.
    pub async fn wait_drained(&self, limit: Duration) {
        let notified = self.drained.notified();
        if !self.state.lock().stalled {
            return;
        }
        let _ = tokio::time::timeout(limit, notified).await;
    }

    /// The writer task: drains the buffer to `sock` until the connection closes.
    pub async fn run_writer<W>(self: Arc<Self>, mut sock: W, write_deadline: Duration)
    where
        W: tokio::io::AsyncWrite + Unpin,
    {
        let mut spare: Vec<u8> = Vec::with_capacity(4096);
        loop {
            let (mut batch, closing) = {
                let mut st = self.state.lock();
                std::mem::swap(&mut st.buf, &mut spare);
                st.in_flight = spare.len();
                (std::mem::take(&mut spare), st.closed.is_some())
            };
            if batch.is_empty() {
                if closing {
                    break;
                }
                spare = batch;
                self.wake.notified().await;
                continue;
            }
            let res = tokio::time::timeout(write_deadline, sock.write_all(&batch)).await;
            match res {
                Err(_) => {
                    tracing::debug!("write deadline exceeded, closing slow consumer");
                    self.close(CloseReason::SlowConsumerWriteDeadline);
                    break;
                }
                Ok(Err(e)) => {
                    tracing::debug!(error = %e, "write error");
                    self.close(CloseReason::WriteError);
                    break;
                }
                Ok(Ok(())) => {}
            }
            batch.clear();
            if batch.capacity() > KEEP_CAPACITY {
                batch = Vec::with_capacity(4096);
            }
            spare = batch;
            let notify_drain = {
                let mut st = self.state.lock();
                st.in_flight = 0;
                if st.stalled && st.buf.len() <= self.max_pending / 4 * 3 {
                    st.stalled = false;
                    true
                } else {
                    false
                }
            };
            if notify_drain {
                self.drained.notify_waiters();
            }
        }
        {
            let mut st = self.state.lock();
            st.buf = Vec::new();
            st.in_flight = 0;
        }
        let _ = tokio::time::timeout(Duration::from_secs(1), sock.shutdown()).await;
    }
}
