//! NATS clients over WebSocket (`websocket {}`), each scenario run against natrix-server
//! and the reference nats-server with the same config, the transcripts compared: an
//! async-nats client over `ws://` publishing, subscribing and answering requests with
//! TCP clients, a message bigger than 64 KiB both ways, and raw upgrades and frames that
//! must be refused (wrong method, missing key, a foreign origin, an unmasked frame).

mod common;

use std::io::{Read as _, Write as _};
use std::net::TcpStream;
use std::path::Path;
use std::time::Duration;

use common::{NATRIX, Proc, free_port, start};
use futures::StreamExt as _;

fn ws_conf(port: u16) -> String {
    format!("websocket {{ port: {port}, no_tls: true, same_origin: true, compression: true }}\n")
}

/// Waits until the server has read everything `c` sent before: a request nobody
/// answers comes back as "no responders" only after the server processed it, and a
/// connection's messages are processed in order. (async-nats's `flush` only writes.)
async fn sync(c: &async_nats::Client) {
    let r = c.request("sync.nobody", "".into()).await;
    assert!(
        matches!(&r, Err(e) if e.kind() == async_nats::client::RequestErrorKind::NoResponders),
        "sync round trip: {r:?}"
    );
}

/// Runs `scenario` against each server (natrix first) and compares transcripts.
async fn differential<F, Fut>(scenario: F)
where
    F: Fn(Proc, u16) -> Fut,
    Fut: std::future::Future<Output = Vec<String>>,
{
    let mut runs = vec![("natrix", std::path::PathBuf::from(NATRIX))];
    if let Some(r) = common::reference_binary() {
        runs.push(("nats-server", r));
    }
    let mut transcripts = Vec::new();
    for (name, bin) in runs {
        let port = free_port();
        let p = start(&bin, &ws_conf(port), false);
        let t = tokio::time::timeout(Duration::from_secs(60), scenario(p, port))
            .await
            .unwrap_or_else(|_| panic!("{name}: scenario did not finish"));
        eprintln!("{name}: {t:#?}");
        transcripts.push(t);
    }
    if let [mine, theirs] = &transcripts[..] {
        assert_eq!(mine, theirs, "natrix (left) and nats-server (right) differ");
    }
}

#[tokio::test]
async fn clients_over_websocket_talk_with_tcp_clients() {
    differential(|p, port| async move {
        // Owned here, so the server lives as long as the scenario.
        let p = p;
        let mut t = Vec::new();
        let ws = async_nats::connect(format!("ws://127.0.0.1:{port}"))
            .await
            .expect("connect over websocket");
        let tcp = async_nats::connect(format!("nats://127.0.0.1:{}", p.port))
            .await
            .expect("connect over tcp");
        let mut sub = ws.subscribe("ws.>").await.expect("subscribe");
        sync(&ws).await;
        let big = vec![b'x'; 100_000];
        tcp.publish("ws.small", "hello".into())
            .await
            .expect("publish");
        tcp.publish("ws.big", big.clone().into())
            .await
            .expect("publish");
        tcp.flush().await.expect("flush");
        for _ in 0..2 {
            let m = tokio::time::timeout(Duration::from_secs(5), sub.next())
                .await
                .expect("message in time")
                .expect("message");
            t.push(format!("ws got {} ({} bytes)", m.subject, m.payload.len()));
        }
        // A service on the WebSocket side answers a TCP client, and the reverse.
        let mut svc = ws.subscribe("svc.echo").await.expect("subscribe");
        sync(&ws).await;
        let ws2 = ws.clone();
        let responder = tokio::spawn(async move {
            if let Some(m) = svc.next().await
                && let Some(reply) = m.reply
            {
                let mut answer = b"echo ".to_vec();
                answer.extend_from_slice(&m.payload);
                ws2.publish(reply, answer.into()).await.expect("answer");
                ws2.flush().await.expect("flush");
            }
        });
        let r = tcp
            .request("svc.echo", "ping".into())
            .await
            .expect("request");
        t.push(format!("tcp got {}", String::from_utf8_lossy(&r.payload)));
        responder.await.expect("responder");
        let mut tsub = tcp.subscribe("back").await.expect("subscribe");
        sync(&tcp).await;
        ws.publish("back", big.into())
            .await
            .expect("publish big from ws");
        ws.flush().await.expect("flush");
        let m = tokio::time::timeout(Duration::from_secs(5), tsub.next())
            .await
            .expect("in time")
            .expect("message");
        t.push(format!("tcp got {} bytes from ws", m.payload.len()));
        t
    })
    .await;
}

/// Sends `request` to the WebSocket port and returns the status line of the answer.
fn status_of(port: u16, request: &str) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    s.write_all(request.as_bytes()).expect("write");
    let mut buf = vec![0u8; 4096];
    let n = s.read(&mut buf).unwrap_or(0);
    String::from_utf8_lossy(&buf[..n])
        .lines()
        .next()
        .unwrap_or_default()
        .to_owned()
}

const KEY: &str = "dGhlIHNhbXBsZSBub25jZQ==";

fn upgrade(port: u16, method: &str, extra: &str) -> String {
    format!(
        "{method} / HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\n{extra}\r\n"
    )
}

#[tokio::test]
async fn bad_upgrades_and_frames_are_refused() {
    differential(|p, port| async move {
        let _server = p;
        let mut t = Vec::new();
        let key = format!("Sec-WebSocket-Key: {KEY}\r\n");
        t.push(format!(
            "POST: {}",
            status_of(port, &upgrade(port, "POST", &key))
        ));
        t.push(format!(
            "no key: {}",
            status_of(port, &upgrade(port, "GET", ""))
        ));
        let foreign = format!("{key}Origin: http://elsewhere.example:80\r\n");
        t.push(format!(
            "foreign origin: {}",
            status_of(port, &upgrade(port, "GET", &foreign))
        ));
        let same = format!("{key}Origin: http://127.0.0.1:{port}\r\n");
        t.push(format!(
            "same origin: {}",
            status_of(port, &upgrade(port, "GET", &same))
        ));
        // Upgraded, then a frame without a mask: a close frame with 1002, then the end.
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        s.write_all(upgrade(port, "GET", &key).as_bytes())
            .expect("write");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            if s.read(&mut byte).unwrap_or(0) == 0 {
                break;
            }
            head.push(byte[0]);
        }
        t.push(format!(
            "accept header: {}",
            String::from_utf8_lossy(&head)
                .contains("Sec-WebSocket-Accept: s3pPLMBiTxaQ9kYGzzhZRbK+xOo=")
        ));
        // INFO arrives in one binary frame.
        let mut hdr = [0u8; 2];
        s.read_exact(&mut hdr).expect("frame header");
        t.push(format!("first frame opcode {:#x}", hdr[0]));
        let len = match hdr[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                s.read_exact(&mut l).expect("len");
                usize::from(u16::from_be_bytes(l))
            }
            n => usize::from(n),
        };
        let mut info = vec![0u8; len];
        s.read_exact(&mut info).expect("info");
        t.push(format!("INFO: {}", info.starts_with(b"INFO ")));
        s.write_all(&[0x82, 0x06]).expect("write");
        s.write_all(b"PING\r\n").expect("write");
        // The connection ends (natrix first sends a close frame with status 1002,
        // nats-server just closes; the frame decoder's tests check the frame).
        // A close with unread input can reach us as a reset rather than an EOF; only a
        // read that times out means the connection stayed open.
        let mut rest = Vec::new();
        let ended = match s.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ),
        };
        t.push(format!("unmasked frame: connection ended {ended}"));
        t
    })
    .await;
}

#[test]
fn a_websocket_without_tls_or_no_tls_is_refused_at_start() {
    let port = free_port();
    let conf = format!("websocket {{ port: {port} }}\n");
    let mine = common::startup_error(Path::new(NATRIX), &conf);
    assert!(
        mine.contains("websocket requires TLS configuration"),
        "{mine}"
    );
    if let Some(r) = common::reference_binary() {
        let theirs = common::startup_error(&r, &conf);
        assert!(
            theirs.contains("websocket requires TLS configuration"),
            "{theirs}"
        );
    }
}

/// `/varz` `websocket` as nats-server shows it (the port aside, which differs by run).
#[test]
fn varz_shows_the_websocket_listener() {
    let block = |bin: &Path| {
        let port = free_port();
        let conf = format!(
            "websocket {{ port: {port}, no_tls: true, same_origin: true, allowed_origins: [\"https://app.example.com\"] }}\n"
        );
        let p = start(bin, &conf, true);
        let varz = common::http_get(p.http_port.expect("monitor port"), "/varz").json();
        let mut ws = varz["websocket"].clone();
        assert_eq!(ws["port"], port, "{ws}");
        if let Some(o) = ws.as_object_mut() {
            o.remove("port");
        }
        ws
    };
    let mine = block(Path::new(NATRIX));
    assert_eq!(mine["no_tls"], true, "{mine}");
    if let Some(r) = common::reference_binary() {
        assert_eq!(mine, block(&r), "natrix (left) and nats-server (right)");
    }
}

/// Reads one server frame: (RSV1, opcode, payload).
fn read_frame(s: &mut TcpStream) -> (bool, u8, Vec<u8>) {
    let mut hdr = [0u8; 2];
    s.read_exact(&mut hdr).expect("frame header");
    let len = match hdr[1] & 0x7f {
        126 => {
            let mut l = [0u8; 2];
            s.read_exact(&mut l).expect("len");
            usize::from(u16::from_be_bytes(l))
        }
        127 => {
            let mut l = [0u8; 8];
            s.read_exact(&mut l).expect("len");
            usize::try_from(u64::from_be_bytes(l)).expect("length")
        }
        n => usize::from(n),
    };
    let mut payload = vec![0u8; len];
    s.read_exact(&mut payload).expect("payload");
    (hdr[0] & 0x40 != 0, hdr[0] & 0x0f, payload)
}

/// A raw permessage-deflate payload (RFC 7692: a sync-flushed raw deflate stream without
/// its 0x00 0x00 0xff 0xff tail).
fn deflate(data: &[u8]) -> Vec<u8> {
    let mut c = flate2::Compress::new(flate2::Compression::default(), false);
    let mut out = Vec::with_capacity(data.len() + 64);
    c.compress_vec(data, &mut out, flate2::FlushCompress::Sync)
        .expect("deflate");
    out.truncate(out.len() - 4);
    out
}

fn inflate(data: &[u8]) -> Vec<u8> {
    let mut d = flate2::Decompress::new(false);
    let mut input = data.to_vec();
    input.extend_from_slice(&[0, 0, 0xff, 0xff]);
    let mut out = Vec::with_capacity(64 * 1024);
    d.decompress_vec(&input, &mut out, flate2::FlushDecompress::Sync)
        .expect("inflate");
    out
}

#[tokio::test]
async fn compression_and_unmasked_clients_when_asked() {
    differential(|p, port| async move {
        let _server = p;
        let mut t = Vec::new();
        let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(5))).expect("timeout");
        let extra = format!(
            "Sec-WebSocket-Key: {KEY}\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\nNats-No-Masking: true\r\n"
        );
        s.write_all(upgrade(port, "GET", &extra).as_bytes()).expect("write");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        t.push(format!(
            "deflate agreed: {}",
            head.contains("Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover")
        ));
        t.push(format!("no masking agreed: {}", head.contains("Nats-No-Masking: true")));
        let (rsv1, op, payload) = read_frame(&mut s);
        let info = if rsv1 { inflate(&payload) } else { payload };
        t.push(format!(
            "INFO frame compressed {rsv1}, opcode {op:#x}, reads INFO {}",
            info.starts_with(b"INFO ")
        ));
        // A compressed, unmasked frame: CONNECT, SUB, PUB and PING in one message.
        let mut msg = b"CONNECT {\"verbose\":false,\"pedantic\":false}\r\nSUB z 1\r\nPUB z 100\r\n".to_vec();
        msg.extend_from_slice(&[b'x'; 100]);
        msg.extend_from_slice(b"\r\nPING\r\n");
        let packed = deflate(&msg);
        let mut frame = vec![0xC2u8];
        frame.push(u8::try_from(packed.len()).ok().filter(|n| *n < 126).expect("short"));
        frame.extend_from_slice(&packed);
        s.write_all(&frame).expect("write");
        let mut got = Vec::new();
        while !got.windows(6).any(|w| w == b"PONG\r\n") {
            let (rsv1, _, payload) = read_frame(&mut s);
            got.extend(if rsv1 { inflate(&payload) } else { payload });
        }
        let text = String::from_utf8_lossy(&got).to_string();
        t.push(format!(
            "echoed MSG: {}, PONG: {}",
            text.contains("MSG z 1 100\r\n"),
            text.contains("PONG")
        ));
        t
    })
    .await;
}
