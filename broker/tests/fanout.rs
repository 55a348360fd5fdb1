//! Fan-out delivers exactly the bytes published. Payloads from 16 KiB on are handed to
//! subscribers as shared slices of the publisher's read buffer (no copy) and written
//! with vectored writes; smaller ones are copied into each subscriber's buffer. This
//! property test publishes random mixes of both, with and without headers, pipelined so
//! one read holds several messages and ends inside another, to subscribers with and
//! without header support, and compares every byte.

use std::sync::Arc;
use std::time::Duration;

use natrix_broker::server::Server;
use natrix_broker::server::options::RuntimeOptions;
use proptest::prelude::*;
use proptest::test_runner::{Config, TestRunner};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

/// One published message: its header block (if any) and its payload.
#[derive(Debug, Clone)]
struct Msg {
    headers: Option<Vec<u8>>,
    payload: Vec<u8>,
}

/// Payload sizes around the sharing threshold (16 KiB), below it, and well above it.
fn payload() -> impl Strategy<Value = Vec<u8>> {
    let len = prop_oneof![
        4 => 0usize..64,
        2 => 16_380usize..16_390,
        3 => 16_384usize..70_000,
        1 => 200_000usize..300_000,
    ];
    (len, any::<u8>()).prop_map(|(n, seed)| {
        (0..n)
            .map(|i| (i as u8).wrapping_mul(31).wrapping_add(seed))
            .collect()
    })
}

fn message() -> impl Strategy<Value = Msg> {
    (proptest::option::of("[a-z]{1,8}"), payload()).prop_map(|(h, payload)| Msg {
        headers: h.map(|v| format!("NATS/1.0\r\nX-K: {v}\r\n\r\n").into_bytes()),
        payload,
    })
}

async fn start() -> (Arc<Server>, String) {
    let opts = RuntimeOptions {
        host: "127.0.0.1".into(),
        port: -1,
        max_payload: 1 << 20,
        ..Default::default()
    };
    let server = Server::new(opts);
    server.start().await.expect("server starts");
    let addr = server.addr().expect("bound").to_string();
    (server, addr)
}

/// A raw client, connected and answered (CONNECT + PING, PONG).
async fn raw(addr: &str, headers: bool) -> TcpStream {
    let mut s = TcpStream::connect(addr).await.expect("connect");
    let connect = format!(
        "CONNECT {{\"verbose\":false,\"headers\":{headers},\"no_responders\":false}}\r\nPING\r\n"
    );
    s.write_all(connect.as_bytes()).await.expect("write");
    read_until_pong(&mut s).await;
    s
}

async fn read_until_pong(s: &mut TcpStream) {
    let mut seen = Vec::new();
    let mut chunk = [0u8; 4096];
    while !seen.windows(6).any(|w| w == b"PONG\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(5), s.read(&mut chunk))
            .await
            .expect("PONG in time")
            .expect("read");
        assert!(n > 0, "closed before PONG");
        seen.extend_from_slice(&chunk[..n]);
    }
}

/// A delivered frame: its header block (empty for MSG) and its payload.
type Frame = (Vec<u8>, Vec<u8>);

/// Reads `count` MSG/HMSG frames.
async fn read_frames(s: &mut TcpStream, count: usize) -> Vec<Frame> {
    let mut buf: Vec<u8> = Vec::new();
    let mut out = Vec::new();
    let mut chunk = vec![0u8; 1 << 16];
    while out.len() < count {
        if let Some((frame, used)) = parse_frame(&buf) {
            out.push(frame);
            buf.drain(..used);
            continue;
        }
        let n = tokio::time::timeout(Duration::from_secs(10), s.read(&mut chunk))
            .await
            .unwrap_or_else(|_| panic!("frame {} of {count} in time", out.len() + 1))
            .expect("read");
        assert!(n > 0, "closed after {} of {count} frames", out.len());
        buf.extend_from_slice(&chunk[..n]);
    }
    assert!(buf.is_empty(), "nothing after the last frame");
    out
}

/// One complete frame at the start of `buf` (PINGs skipped) and the bytes it took.
fn parse_frame(buf: &[u8]) -> Option<(Frame, usize)> {
    let nl = buf.windows(2).position(|w| w == b"\r\n")?;
    let line = std::str::from_utf8(&buf[..nl]).expect("control line is text");
    let args: Vec<&str> = line.split(' ').collect();
    let (hdr, total) = match args[0] {
        "MSG" => (0, args[args.len() - 1].parse::<usize>().expect("size")),
        "HMSG" => (
            args[args.len() - 2].parse::<usize>().expect("header size"),
            args[args.len() - 1].parse::<usize>().expect("total size"),
        ),
        other => panic!("unexpected frame {other:?}"),
    };
    let start = nl + 2;
    if buf.len() < start + total + 2 {
        return None;
    }
    assert_eq!(
        &buf[start + total..start + total + 2],
        b"\r\n",
        "frame ends"
    );
    let body = &buf[start..start + total];
    Some((
        (body[..hdr].to_vec(), body[hdr..].to_vec()),
        start + total + 2,
    ))
}

#[test]
fn fan_out_delivers_exactly_the_published_bytes() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let (_server, addr) = rt.block_on(start());
    let mut runner = TestRunner::new(Config {
        cases: 64,
        ..Config::default()
    });
    let case = std::sync::atomic::AtomicU32::new(0);
    runner
        .run(&proptest::collection::vec(message(), 1..10), |msgs| {
            let n = case.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            rt.block_on(check(&addr, n, &msgs));
            Ok(())
        })
        .expect("every case delivers the published bytes");
}

async fn check(addr: &str, case: u32, msgs: &[Msg]) {
    let subject = format!("fan.{case}");
    // Two subscribers with header support, one without (it gets the payload only).
    let mut subs = Vec::new();
    for headers in [true, true, false] {
        let mut s = raw(addr, headers).await;
        s.write_all(format!("SUB {subject} 1\r\nPING\r\n").as_bytes())
            .await
            .expect("sub");
        read_until_pong(&mut s).await;
        subs.push((s, headers));
    }
    // Every frame in one write: reads hold several messages and end inside another.
    let mut publisher = raw(addr, true).await;
    let mut wire = Vec::new();
    for m in msgs {
        match &m.headers {
            Some(h) => {
                wire.extend_from_slice(
                    format!(
                        "HPUB {subject} {} {}\r\n",
                        h.len(),
                        h.len() + m.payload.len()
                    )
                    .as_bytes(),
                );
                wire.extend_from_slice(h);
            }
            None => {
                wire.extend_from_slice(format!("PUB {subject} {}\r\n", m.payload.len()).as_bytes())
            }
        }
        wire.extend_from_slice(&m.payload);
        wire.extend_from_slice(b"\r\n");
    }
    wire.extend_from_slice(b"PING\r\n");
    publisher.write_all(&wire).await.expect("publish");
    read_until_pong(&mut publisher).await;
    for (s, headers) in &mut subs {
        let got = read_frames(s, msgs.len()).await;
        for (i, (m, (h, p))) in msgs.iter().zip(&got).enumerate() {
            let want_h = if *headers {
                m.headers.clone().unwrap_or_default()
            } else {
                Vec::new()
            };
            assert_eq!(
                h, &want_h,
                "message {i}: headers (subscriber headers={headers})"
            );
            assert!(
                p == &m.payload,
                "message {i}: payload of {} bytes differs (got {} bytes, subscriber headers={headers})",
                m.payload.len(),
                p.len()
            );
        }
    }
}

/// Large messages one at a time, each read by every subscriber before the next is
/// sent: the publisher's read buffers are then free again and reused for the next
/// message, which must not show through any delivery.
#[test]
fn reused_read_buffers_never_leak_into_deliveries() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    rt.block_on(async {
        let (_server, addr) = start().await;
        let mut subs = Vec::new();
        for _ in 0..3 {
            let mut s = raw(&addr, true).await;
            s.write_all(b"SUB reuse 1\r\nPING\r\n").await.expect("sub");
            read_until_pong(&mut s).await;
            subs.push(s);
        }
        let mut publisher = raw(&addr, true).await;
        for i in 0..40u32 {
            // Sizes around a read buffer's 64 KiB, so buffers are reused at every fill.
            let len = 16_384 + (i as usize * 7_919) % 120_000;
            let payload: Vec<u8> = (0..len).map(|j| (j as u32 ^ i) as u8).collect();
            let mut wire = format!("PUB reuse {len}\r\n").into_bytes();
            wire.extend_from_slice(&payload);
            wire.extend_from_slice(b"\r\n");
            publisher.write_all(&wire).await.expect("publish");
            for s in &mut subs {
                let got = read_frames(s, 1).await;
                assert!(
                    got[0].1 == payload,
                    "message {i} of {len} bytes arrives intact"
                );
            }
        }
    });
}
