//! Core messaging driven by a real NATS client (async-nats) against an in-process
//! natrix server.

use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures::StreamExt;
use natrix_broker::server::Server;
use natrix_broker::server::options::RuntimeOptions;
use tokio::io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpStream;
use tokio::time::timeout;

const WAIT: Duration = Duration::from_secs(5);

async fn start(mut opts: RuntimeOptions) -> (Arc<Server>, String) {
    opts.host = "127.0.0.1".into();
    if opts.port == 4222 {
        opts.port = -1;
    }
    let server = Server::new(opts);
    server.start().await.expect("server starts");
    let url = format!("nats://{}", server.addr().expect("bound"));
    (server, url)
}

async fn connect(url: &str) -> async_nats::Client {
    async_nats::connect(url).await.expect("client connects")
}

#[tokio::test]
async fn pub_sub_and_wildcards() {
    let (_s, url) = start(RuntimeOptions::default()).await;
    let nc = connect(&url).await;
    let mut exact = nc.subscribe("foo.bar").await.unwrap();
    let mut star = nc.subscribe("foo.*").await.unwrap();
    let mut gt = nc.subscribe("foo.>").await.unwrap();
    let mut other = nc.subscribe("baz").await.unwrap();
    nc.flush().await.unwrap();
    nc.publish("foo.bar", "hello".into()).await.unwrap();
    nc.publish("foo.bar.baz", "deep".into()).await.unwrap();
    nc.flush().await.unwrap();
    for sub in [&mut exact, &mut star, &mut gt] {
        let m = timeout(WAIT, sub.next()).await.unwrap().unwrap();
        assert_eq!(m.subject.as_str(), "foo.bar");
        assert_eq!(m.payload, Bytes::from_static(b"hello"));
    }
    let m = timeout(WAIT, gt.next()).await.unwrap().unwrap();
    assert_eq!(m.subject.as_str(), "foo.bar.baz");
    assert!(
        timeout(Duration::from_millis(200), star.next())
            .await
            .is_err()
    );
    assert!(
        timeout(Duration::from_millis(100), other.next())
            .await
            .is_err()
    );
}

#[tokio::test]
async fn queue_group_spreads_evenly() {
    let (_s, url) = start(RuntimeOptions::default()).await;
    let publisher = connect(&url).await;
    let mut counts = Vec::new();
    let mut subs = Vec::new();
    for _ in 0..4 {
        let nc = connect(&url).await;
        let sub = nc.queue_subscribe("work", "workers".into()).await.unwrap();
        nc.flush().await.unwrap();
        subs.push((nc, sub));
    }
    // A plain subscriber sees every message besides the group.
    let mut all = publisher.subscribe("work").await.unwrap();
    publisher.flush().await.unwrap();
    const N: usize = 10_000;
    for i in 0..N {
        publisher
            .publish("work", i.to_string().into())
            .await
            .unwrap();
    }
    publisher.flush().await.unwrap();
    let mut seen_all = 0;
    while seen_all < N {
        timeout(WAIT, all.next()).await.unwrap().unwrap();
        seen_all += 1;
    }
    let mut total = 0;
    for (_nc, sub) in &mut subs {
        let mut n = 0;
        while let Ok(Some(_)) = timeout(Duration::from_millis(300), sub.next()).await {
            n += 1;
        }
        total += n;
        counts.push(n);
    }
    assert_eq!(
        total, N,
        "each message reaches exactly one member: {counts:?}"
    );
    let expected = N / 4;
    for c in &counts {
        let dev = (*c as f64 - expected as f64).abs() / expected as f64;
        assert!(
            dev < 0.2,
            "member got {c} of {N}, expected about {expected}: {counts:?}"
        );
    }
}

#[tokio::test]
async fn request_reply_and_headers() {
    let (_s, url) = start(RuntimeOptions::default()).await;
    let responder = connect(&url).await;
    let mut svc = responder.subscribe("svc.echo").await.unwrap();
    responder.flush().await.unwrap();
    let r2 = responder.clone();
    tokio::spawn(async move {
        while let Some(m) = svc.next().await {
            let mut headers = async_nats::HeaderMap::new();
            let seen = m
                .headers
                .as_ref()
                .and_then(|h| h.get("X-Trace"))
                .map(|v| v.to_string())
                .unwrap_or_default();
            headers.insert("X-Seen", seen.as_str());
            if let Some(reply) = m.reply {
                r2.publish_with_headers(reply, headers, m.payload)
                    .await
                    .unwrap();
            }
        }
    });
    let requester = connect(&url).await;
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("X-Trace", "abc-123");
    let resp = timeout(
        WAIT,
        requester.request_with_headers("svc.echo", headers, "ping".into()),
    )
    .await
    .unwrap()
    .unwrap();
    assert_eq!(resp.payload, Bytes::from_static(b"ping"));
    let h = resp.headers.expect("headers delivered");
    assert_eq!(
        h.get("X-Seen").map(|v| v.to_string()).as_deref(),
        Some("abc-123")
    );
}

#[tokio::test]
async fn no_responders_status() {
    let (_s, url) = start(RuntimeOptions::default()).await;
    let nc = connect(&url).await;
    let err = timeout(WAIT, nc.request("nobody.home", "x".into()))
        .await
        .unwrap()
        .expect_err("no responders");
    assert_eq!(err.kind(), async_nats::RequestErrorKind::NoResponders);
}

#[tokio::test]
async fn unsub_max_and_echo_off() {
    let (_s, url) = start(RuntimeOptions::default()).await;
    let nc = connect(&url).await;
    let mut sub = nc.subscribe("limited").await.unwrap();
    sub.unsubscribe_after(3).await.unwrap();
    nc.flush().await.unwrap();
    for i in 0..10 {
        nc.publish("limited", format!("{i}").into()).await.unwrap();
    }
    nc.flush().await.unwrap();
    let mut got = Vec::new();
    while let Ok(Some(m)) = timeout(Duration::from_millis(500), sub.next()).await {
        got.push(m.payload);
    }
    assert_eq!(
        got,
        vec![Bytes::from("0"), Bytes::from("1"), Bytes::from("2")]
    );

    let quiet = async_nats::ConnectOptions::new()
        .no_echo()
        .connect(&url)
        .await
        .unwrap();
    let mut own = quiet.subscribe("echo.test").await.unwrap();
    quiet.flush().await.unwrap();
    quiet.publish("echo.test", "mine".into()).await.unwrap();
    quiet.flush().await.unwrap();
    assert!(
        timeout(Duration::from_millis(300), own.next())
            .await
            .is_err()
    );
    nc.publish("echo.test", "theirs".into()).await.unwrap();
    nc.flush().await.unwrap();
    let m = timeout(WAIT, own.next()).await.unwrap().unwrap();
    assert_eq!(m.payload, Bytes::from("theirs"));
}

/// Reads lines from a raw connection until one starts with `prefix`.
async fn read_until(rd: &mut BufReader<tokio::net::tcp::OwnedReadHalf>, prefix: &str) -> String {
    let mut line = String::new();
    loop {
        line.clear();
        let n = timeout(WAIT, rd.read_line(&mut line))
            .await
            .unwrap()
            .unwrap();
        assert!(n > 0, "connection closed before {prefix:?}");
        if line.starts_with(prefix) {
            return line;
        }
    }
}

#[tokio::test]
async fn max_payload_violation_closes() {
    let (_s, url) = start(RuntimeOptions {
        max_payload: 1024,
        ..RuntimeOptions::default()
    })
    .await;
    let nc = connect(&url).await;
    assert_eq!(nc.server_info().max_payload, 1024);
    let addr = url.trim_start_matches("nats://");
    let (rd, mut wr) = TcpStream::connect(addr).await.unwrap().into_split();
    let mut rd = BufReader::new(rd);
    read_until(&mut rd, "INFO ").await;
    wr.write_all(b"CONNECT {\"verbose\":false}\r\nPUB big 2048\r\n")
        .await
        .unwrap();
    let line = read_until(&mut rd, "-ERR").await;
    assert_eq!(line, "-ERR 'Maximum Payload Violation'\r\n");
    let mut rest = Vec::new();
    let n = timeout(WAIT, rd.read_to_end(&mut rest))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(n, 0, "connection closed after the error");
}

#[tokio::test]
async fn slow_consumer_is_cut_off() {
    let (server, url) = start(RuntimeOptions {
        max_pending: 64 * 1024,
        write_deadline: Duration::from_millis(500),
        ..RuntimeOptions::default()
    })
    .await;
    let addr = url.trim_start_matches("nats://").to_owned();
    // A subscriber that never reads.
    let mut stalled = TcpStream::connect(&addr).await.unwrap();
    stalled
        .write_all(b"CONNECT {\"verbose\":false}\r\nSUB firehose 1\r\nPING\r\n")
        .await
        .unwrap();
    let mut buf = [0u8; 4096];
    let mut got = Vec::new();
    while !String::from_utf8_lossy(&got).contains("PONG") {
        let n = timeout(WAIT, stalled.read(&mut buf))
            .await
            .unwrap()
            .unwrap();
        got.extend_from_slice(&buf[..n]);
    }
    let nc = connect(&url).await;
    let payload = Bytes::from(vec![b'x'; 8 * 1024]);
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    while server
        .stats
        .slow_consumers
        .load(std::sync::atomic::Ordering::Relaxed)
        == 0
    {
        assert!(
            tokio::time::Instant::now() < deadline,
            "no slow consumer detected"
        );
        for _ in 0..64 {
            nc.publish("firehose", payload.clone()).await.unwrap();
        }
        nc.flush().await.unwrap();
    }
    // The publisher is unaffected.
    let mut probe = nc.subscribe("probe").await.unwrap();
    nc.publish("probe", "ok".into()).await.unwrap();
    assert!(timeout(WAIT, probe.next()).await.unwrap().is_some());
}

#[tokio::test]
async fn stale_connection_closed() {
    let (_s, url) = start(RuntimeOptions {
        ping_interval: Duration::from_millis(200),
        ping_max: 2,
        ..RuntimeOptions::default()
    })
    .await;
    let addr = url.trim_start_matches("nats://");
    let (rd, mut wr) = TcpStream::connect(addr).await.unwrap().into_split();
    let mut rd = BufReader::new(rd);
    read_until(&mut rd, "INFO ").await;
    wr.write_all(b"CONNECT {\"verbose\":false}\r\n")
        .await
        .unwrap();
    // Never answer PINGs.
    let line = read_until(&mut rd, "-ERR").await;
    assert_eq!(line, "-ERR 'Stale Connection'\r\n");
}

#[tokio::test]
async fn client_reconnects_after_restart() {
    let (server, url) = start(RuntimeOptions::default()).await;
    let port = server.addr().unwrap().port();
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let nc = async_nats::ConnectOptions::new()
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e.to_string());
            }
        })
        .connect(&url)
        .await
        .unwrap();
    let mut sub = nc.subscribe("after.restart").await.unwrap();
    nc.flush().await.unwrap();
    server.shutdown();
    // Wait until the client noticed the disconnect, then bring a new server up on the
    // same port.
    loop {
        let e = timeout(WAIT, rx.recv()).await.unwrap().unwrap();
        if e.contains("disconnected") {
            break;
        }
    }
    tokio::time::sleep(Duration::from_millis(100)).await;
    let (_s2, _url2) = start(RuntimeOptions {
        port: i32::from(port),
        ..RuntimeOptions::default()
    })
    .await;
    loop {
        let e = timeout(Duration::from_secs(15), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if e.contains("connected") && !e.contains("dis") {
            break;
        }
    }
    // The client restores its subscription on the new server.
    nc.flush().await.unwrap();
    nc.publish("after.restart", "back".into()).await.unwrap();
    let m = timeout(WAIT, sub.next()).await.unwrap().unwrap();
    assert_eq!(m.payload, Bytes::from("back"));
}

#[tokio::test]
async fn lame_duck_mode_shuts_down_once_the_last_client_is_closed() {
    // One client: closed when the grace period ends, and nothing is left to spread over
    // the rest of the duration, so the server goes then rather than 5 s later.
    let (server, url) = start(RuntimeOptions {
        lame_duck_duration: Duration::from_secs(6),
        lame_duck_grace_period: Duration::from_millis(200),
        ..RuntimeOptions::default()
    })
    .await;
    let _nc = async_nats::ConnectOptions::new()
        .max_reconnects(1)
        .connect(&url)
        .await
        .unwrap();
    let started = std::time::Instant::now();
    let ldm = server.clone();
    tokio::spawn(async move { ldm.lame_duck().await });
    timeout(Duration::from_secs(4), server.wait_shutdown())
        .await
        .expect("the server waited on after closing its only client");
    assert!(started.elapsed() >= Duration::from_millis(200));
}

#[tokio::test]
async fn lame_duck_mode_informs_then_closes_clients() {
    let (server, url) = start(RuntimeOptions {
        lame_duck_duration: Duration::from_millis(600),
        lame_duck_grace_period: Duration::from_millis(200),
        ..RuntimeOptions::default()
    })
    .await;
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let _nc = async_nats::ConnectOptions::new()
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e);
            }
        })
        .max_reconnects(1)
        .connect(&url)
        .await
        .unwrap();
    let ldm = server.clone();
    tokio::spawn(async move { ldm.lame_duck().await });
    let mut saw_ldm = false;
    let mut saw_disconnect = false;
    while !(saw_ldm && saw_disconnect) {
        match timeout(WAIT, rx.recv()).await.unwrap().unwrap() {
            async_nats::Event::LameDuckMode => saw_ldm = true,
            async_nats::Event::Disconnected => saw_disconnect = true,
            _ => {}
        }
    }
    // No new clients while in lame-duck mode, and the server shuts down at the end.
    timeout(WAIT, server.wait_shutdown()).await.unwrap();
    assert!(
        TcpStream::connect(url.trim_start_matches("nats://"))
            .await
            .is_err()
    );
}
