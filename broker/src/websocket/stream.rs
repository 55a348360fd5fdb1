//! A WebSocket connection as one byte stream, for protocols whose session owns its
//! transport (MQTT): reads are the data frames' payloads ([`WsReader`]), and each write
//! leaves as one binary frame through the connection's outbound side, which frames,
//! compresses and seals it like a NATS client's batch.

use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};

use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use super::WsReader;
use crate::server::outbound::{Outbound, Push};

pub struct WsStream<R> {
    reader: WsReader<R>,
    outbound: Arc<Outbound>,
}

impl<R> WsStream<R> {
    pub fn new(reader: WsReader<R>, outbound: Arc<Outbound>) -> Self {
        Self { reader, outbound }
    }
}

impl<R: AsyncRead + Unpin> AsyncRead for WsStream<R> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<std::io::Result<()>> {
        Pin::new(&mut self.reader).poll_read(cx, buf)
    }
}

impl<R: Unpin> AsyncWrite for WsStream<R> {
    /// Queues `buf` whole. The outbound side bounds what may wait (`max_pending`) and
    /// how long a write may take (`write_deadline`): past either the connection is
    /// closed as a slow consumer, and writes fail from then on.
    fn poll_write(
        self: Pin<&mut Self>,
        _cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<std::io::Result<usize>> {
        match self
            .outbound
            .push_with(buf.len(), |v| v.extend_from_slice(buf))
        {
            Push::Closed => Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into())),
            Push::Queued { .. } | Push::Stall { .. } => {
                self.outbound.flush_soon();
                Poll::Ready(Ok(buf.len()))
            }
        }
    }

    fn poll_flush(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        if self.outbound.is_closed() {
            return Poll::Ready(Err(std::io::ErrorKind::BrokenPipe.into()));
        }
        Poll::Ready(Ok(()))
    }

    fn poll_shutdown(self: Pin<&mut Self>, _cx: &mut Context<'_>) -> Poll<std::io::Result<()>> {
        Poll::Ready(Ok(()))
    }
}
