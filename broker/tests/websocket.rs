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
            "authorization {{ users: [ {{ user: bob, password: b }} ] }}\nwebsocket {{ port: {port}, no_tls: true, same_origin: true, allowed_origins: [\"https://app.example.com\"], compression: true, handshake_timeout: \"3s\", advertise: \"ws.example.com:443\", no_auth_user: bob, authorization {{ timeout: 4 }} }}\n"
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
    assert_eq!(mine["handshake_timeout"], 3_000_000_000_u64, "{mine}");
    assert_eq!(mine["no_auth_user"], "bob", "{mine}");
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

/// Each server (natrix first, then nats-server when installed).
fn both() -> Vec<(&'static str, std::path::PathBuf)> {
    let mut v = vec![("natrix", std::path::PathBuf::from(NATRIX))];
    if let Some(r) = common::reference_binary() {
        v.push(("nats-server", r));
    }
    v
}

/// Opens a WebSocket with `extra` headers; returns the stream and the answer's head.
fn ws_open(port: u16, path: &str, extra: &str) -> (TcpStream, String) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(5)))
        .expect("timeout");
    let req = format!(
        "GET {path} HTTP/1.1\r\nHost: 127.0.0.1:{port}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Key: {KEY}\r\n{extra}\r\n"
    );
    s.write_all(req.as_bytes()).expect("write");
    let mut head = Vec::new();
    let mut byte = [0u8; 1];
    while !head.ends_with(b"\r\n\r\n") && s.read(&mut byte).unwrap_or(0) == 1 {
        head.push(byte[0]);
    }
    (s, String::from_utf8_lossy(&head).into_owned())
}

/// Sends `payload` in one masked binary frame, as a browser does.
fn send_masked(s: &mut TcpStream, payload: &[u8]) {
    let mask = [0x37u8, 0xfa, 0x21, 0x3d];
    let mut frame = vec![0x82u8];
    match payload.len() {
        n if n < 126 => frame.push(0x80 | u8::try_from(n).expect("short")),
        n => {
            frame.push(0x80 | 126);
            frame.extend_from_slice(&u16::try_from(n).expect("fits").to_be_bytes());
        }
    }
    frame.extend_from_slice(&mask);
    frame.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
    s.write_all(&frame).expect("write frame");
}

/// Reads frames until their text holds `needle` or the connection ends; returns the text.
fn read_until_text(s: &mut TcpStream, needle: &str) -> String {
    let mut text = String::new();
    for _ in 0..64 {
        if text.contains(needle) {
            break;
        }
        let mut hdr = [0u8; 2];
        if s.read_exact(&mut hdr).is_err() {
            break;
        }
        let len = match hdr[1] & 0x7f {
            126 => {
                let mut l = [0u8; 2];
                if s.read_exact(&mut l).is_err() {
                    break;
                }
                usize::from(u16::from_be_bytes(l))
            }
            n => usize::from(n),
        };
        let mut payload = vec![0u8; len];
        if s.read_exact(&mut payload).is_err() {
            break;
        }
        if hdr[0] & 0x0f == 0x8 {
            text.push_str("<close>");
            break;
        }
        text.push_str(&String::from_utf8_lossy(&payload));
    }
    text
}

/// Logs in over a raw WebSocket with the upgrade's `extra` headers and CONNECT `connect`;
/// "ok" on PONG, else the `-ERR` (or what ended the connection).
fn ws_login(port: u16, extra: &str, connect: &str) -> String {
    let (mut s, head) = ws_open(port, "/", extra);
    if !head.starts_with("HTTP/1.1 101") {
        return head.lines().next().unwrap_or_default().to_owned();
    }
    let info = read_until_text(&mut s, "\r\n");
    assert!(info.starts_with("INFO "), "{info}");
    send_masked(&mut s, format!("CONNECT {connect}\r\nPING\r\n").as_bytes());
    let answer = read_until_text(&mut s, "\r\n");
    if answer.contains("PONG") {
        "ok".into()
    } else {
        answer
            .lines()
            .find(|l| l.starts_with("-ERR"))
            .unwrap_or(answer.trim())
            .to_owned()
    }
}

/// `allowed_origins`: a browser's upgrade from a listed origin is accepted, any other
/// gets 403; `handshake_timeout`: a connection that sends no upgrade is closed after
/// it. Same answers from both servers.
#[test]
fn allowed_origins_and_handshake_timeout() {
    let mut transcripts = Vec::new();
    for (name, bin) in both() {
        let port = free_port();
        let conf = format!(
            "websocket {{ port: {port}, no_tls: true, allowed_origins: [\"https://app.example.com\", \"http://127.0.0.1:8000\"], handshake_timeout: \"500ms\" }}\n"
        );
        let p = start(&bin, &conf, false);
        let mut t = Vec::new();
        for origin in [
            "https://app.example.com",
            "https://app.example.com:443",
            "http://127.0.0.1:8000",
            "http://app.example.com",
            "https://evil.example.com",
            "http://127.0.0.1:8001",
        ] {
            let (_s, head) = ws_open(port, "/", &format!("Origin: {origin}\r\n"));
            t.push(format!(
                "{origin}: {}",
                head.lines().next().unwrap_or_default()
            ));
        }
        let (_s, head) = ws_open(port, "/", "");
        t.push(format!(
            "no origin: {}",
            head.lines().next().unwrap_or_default()
        ));
        // Silence after connecting: closed after the handshake timeout, not left open.
        let mut idle = TcpStream::connect(("127.0.0.1", port)).expect("connect");
        idle.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let began = std::time::Instant::now();
        let mut buf = [0u8; 256];
        let closed = match idle.read(&mut buf) {
            Ok(_) => true,
            Err(e) => e.kind() == std::io::ErrorKind::ConnectionReset,
        };
        let waited = began.elapsed();
        t.push(format!(
            "idle connection closed: {closed}, within 0.4-3 s: {}",
            waited > Duration::from_millis(400) && waited < Duration::from_secs(3)
        ));
        eprintln!("{name}: {t:#?}");
        drop(p);
        transcripts.push(t);
    }
    let mine = &transcripts[0];
    assert!(mine[0].ends_with("101 Switching Protocols"), "{mine:?}");
    assert!(mine[4].ends_with("403 Forbidden"), "{mine:?}");
    assert!(mine[7].ends_with("true, within 0.4-3 s: true"), "{mine:?}");
    if let [mine, theirs] = &transcripts[..] {
        assert_eq!(mine, theirs, "natrix (left) and nats-server (right) differ");
    }
}

/// `user_cookie`/`pass_cookie` and `token_cookie`: the upgrade's cookies stand in
/// for what CONNECT leaves out; CONNECT's own values win. Same outcomes on both servers.
#[test]
fn credentials_from_cookies() {
    let mut transcripts = Vec::new();
    for (name, bin) in both() {
        let mut t = Vec::new();
        let port = free_port();
        let users = format!(
            "authorization {{ users: [ {{ user: alice, password: s3cret }} ] }}\nwebsocket {{ port: {port}, no_tls: true, user_cookie: nuser, pass_cookie: npass }}\n"
        );
        let p = start(&bin, &users, false);
        t.push(format!(
            "user cookies: {}",
            ws_login(port, "Cookie: nuser=alice; npass=s3cret\r\n", "{}")
        ));
        t.push(format!(
            "wrong password cookie: {}",
            ws_login(port, "Cookie: nuser=alice; npass=nope\r\n", "{}")
        ));
        t.push(format!("no cookie: {}", ws_login(port, "", "{}")));
        t.push(format!(
            "CONNECT wins over the cookie: {}",
            ws_login(
                port,
                "Cookie: nuser=alice; npass=nope\r\n",
                "{\"user\":\"alice\",\"pass\":\"s3cret\"}"
            )
        ));
        drop(p);
        let port = free_port();
        let token = format!(
            "authorization {{ token: t0k3n }}\nwebsocket {{ port: {port}, no_tls: true, token_cookie: tok }}\n"
        );
        let p = start(&bin, &token, false);
        t.push(format!(
            "token cookie: {}",
            ws_login(port, "Cookie: other=1; tok=t0k3n\r\n", "{}")
        ));
        t.push(format!(
            "wrong token cookie: {}",
            ws_login(port, "Cookie: tok=x\r\n", "{}")
        ));
        drop(p);
        eprintln!("{name}: {t:#?}");
        transcripts.push(t);
    }
    let mine = &transcripts[0];
    assert_eq!(mine[0], "user cookies: ok");
    assert!(mine[1].contains("Authorization Violation"), "{mine:?}");
    assert!(mine[2].contains("Authorization Violation"), "{mine:?}");
    assert_eq!(mine[3], "CONNECT wins over the cookie: ok");
    assert_eq!(mine[4], "token cookie: ok");
    assert!(mine[5].contains("Authorization Violation"), "{mine:?}");
    if let [mine, theirs] = &transcripts[..] {
        assert_eq!(mine, theirs, "natrix (left) and nats-server (right) differ");
    }
}

/// `no_auth_user` and `authorization { user, password, token }` inside `websocket {}` replace the
/// server's own for WebSocket clients only (nats-server's auth override); `/connz`
/// shows the user and the client type "websocket".
#[test]
fn websocket_blocks_own_authentication() {
    let mut transcripts = Vec::new();
    for (name, bin) in both() {
        let mut t = Vec::new();
        let port = free_port();
        let conf = format!(
            "authorization {{ users: [ {{ user: alice, password: a }}, {{ user: bob, password: b }} ] }}\nwebsocket {{ port: {port}, no_tls: true, no_auth_user: bob }}\n"
        );
        let p = start(&bin, &conf, true);
        let (mut s, _) = ws_open(port, "/", "");
        let info = read_until_text(&mut s, "\r\n");
        t.push(format!(
            "INFO auth_required: {}",
            info.contains("\"auth_required\":true")
        ));
        send_masked(&mut s, b"CONNECT {\"name\":\"browser\"}\r\nPING\r\n");
        t.push(format!(
            "anonymous over websocket: {}",
            read_until_text(&mut s, "PONG").contains("PONG")
        ));
        let connz = common::http_get(p.http_port.expect("monitor"), "/connz?auth=1").json();
        let c = connz["connections"]
            .as_array()
            .into_iter()
            .flatten()
            .find(|c| c["name"] == "browser")
            .cloned()
            .unwrap_or_default();
        t.push(format!(
            "connz: type {} user {}",
            c["type"], c["authorized_user"]
        ));
        let mut tcp = common::Raw::connect_plain(p.port);
        tcp.send("CONNECT {}\r\nPING\r\n");
        t.push(format!(
            "anonymous over tcp refused: {}",
            tcp.read_for(Duration::from_millis(500))
                .contains("Authorization Violation")
        ));
        drop(s);
        drop(p);
        let port = free_port();
        let conf = format!(
            "authorization {{ token: tcp-only }}\nwebsocket {{ port: {port}, no_tls: true, authorization {{ user: ws, password: pw }} }}\n"
        );
        let p = start(&bin, &conf, false);
        t.push(format!(
            "block's user: {}",
            ws_login(port, "", "{\"user\":\"ws\",\"pass\":\"pw\"}")
        ));
        t.push(format!(
            "server's token over websocket: {}",
            ws_login(port, "", "{\"auth_token\":\"tcp-only\"}")
        ));
        let mut tcp = common::Raw::connect_plain(p.port);
        tcp.send("CONNECT {\"auth_token\":\"tcp-only\"}\r\nPING\r\n");
        t.push(format!(
            "server's token over tcp: {}",
            tcp.read_for(Duration::from_millis(500)).contains("PONG")
        ));
        drop(p);
        eprintln!("{name}: {t:#?}");
        transcripts.push(t);
    }
    let mine = &transcripts[0];
    assert_eq!(
        mine[..4],
        [
            "INFO auth_required: true",
            "anonymous over websocket: true",
            "connz: type \"websocket\" user \"bob\"",
            "anonymous over tcp refused: true"
        ]
    );
    assert_eq!(mine[4], "block's user: ok");
    assert!(mine[5].contains("Authorization Violation"), "{mine:?}");
    assert_eq!(mine[6], "server's token over tcp: true");
    if let [mine, theirs] = &transcripts[..] {
        assert_eq!(mine, theirs, "natrix (left) and nats-server (right) differ");
    }
}

/// Settings nats-server refuses at start-up, refused with its words.
#[test]
fn websocket_auth_settings_checked_at_start() {
    let port = free_port();
    for (conf, expected) in [
        (
            format!(
                "authorization {{ users: [ {{ user: a, password: b }} ] }}\nwebsocket {{ port: {port}, no_tls: true, no_auth_user: ghost }}\n"
            ),
            "no_auth_user: \"ghost\" not present as user or nkey",
        ),
        (
            format!(
                "authorization {{ users: [ {{ user: a, password: b }} ] }}\nwebsocket {{ port: {port}, no_tls: true, authorization {{ user: x, password: y }} }}\n"
            ),
            "websocket authentication username not compatible with presence of users/nkeys",
        ),
        (
            format!("websocket {{ port: {port}, no_tls: true, jwt_cookie: my_jwt }}\n"),
            "trusted operators or trusted keys configuration is required for JWT authentication via cookie \"my_jwt\"",
        ),
    ] {
        for (name, bin) in both() {
            let err = common::startup_error(&bin, &conf);
            assert!(err.contains(expected), "{name}: {err}");
        }
    }
}

/// `authorization { timeout }` inside `websocket {}`: a WebSocket client that does not
/// log in is closed with `Authentication Timeout` after it, not after the server's own
/// (longer) timeout; same on both servers.
#[test]
fn websocket_auth_timeout() {
    let mut transcripts = Vec::new();
    for (name, bin) in both() {
        let port = free_port();
        let conf = format!(
            "authorization {{ users: [ {{ user: a, password: b }} ], timeout: 5 }}\nwebsocket {{ port: {port}, no_tls: true, authorization {{ timeout: 0.5 }} }}\n"
        );
        let _p = start(&bin, &conf, false);
        let (mut s, _) = ws_open(port, "/", "");
        let info = read_until_text(&mut s, "\r\n");
        assert!(info.starts_with("INFO "), "{name}: {info}");
        let began = std::time::Instant::now();
        let err = read_until_text(&mut s, "Authentication Timeout");
        let waited = began.elapsed();
        let t = format!(
            "timed out: {}, within 0.3-3 s: {}",
            err.contains("-ERR 'Authentication Timeout'"),
            waited > Duration::from_millis(300) && waited < Duration::from_secs(3)
        );
        eprintln!("{name}: {t} ({waited:?})");
        transcripts.push(t);
    }
    assert_eq!(transcripts[0], "timed out: true, within 0.3-3 s: true");
    if let [mine, theirs] = &transcripts[..] {
        assert_eq!(mine, theirs, "natrix (left) and nats-server (right) differ");
    }
}

/// `jwt_cookie` in operator mode: a bearer user JWT in the cookie logs a browser in
/// without anything in CONNECT; a JWT allowing only `WEBSOCKET` connections logs in over
/// WebSocket and is refused over TCP. Same outcomes on both servers.
#[test]
fn jwt_from_a_cookie_in_operator_mode() {
    use natrix_jwt::UserClaims;
    use natrix_jwt::nkeys::KeyPair;
    let chain = common::jwt::chain(false);
    let bearer = |types: &[&str]| {
        let u = KeyPair::new_user();
        let mut claims = UserClaims::new(u.public_key());
        claims.nats.permission_limits.bearer_token = true;
        claims.nats.permission_limits.allowed_connection_types =
            types.iter().map(|t| (*t).to_owned()).collect();
        natrix_jwt::encode(&claims, &chain.a).expect("user JWT")
    };
    let any = bearer(&[]);
    let ws_only = bearer(&["WEBSOCKET"]);
    let mut transcripts = Vec::new();
    for (name, bin) in both() {
        let port = free_port();
        let conf = format!(
            "{}websocket {{ port: {port}, no_tls: true, jwt_cookie: \"my_jwt\" }}\n",
            common::jwt::config(&chain)
        );
        let p = start(&bin, &conf, false);
        let mut t = vec![
            format!(
                "bearer JWT cookie: {}",
                ws_login(port, &format!("Cookie: my_jwt={any}\r\n"), "{}")
            ),
            format!("no cookie: {}", ws_login(port, "", "{}")),
            format!(
                "WEBSOCKET-only JWT cookie: {}",
                ws_login(port, &format!("Cookie: my_jwt={ws_only}\r\n"), "{}")
            ),
        ];
        let mut tcp = common::Raw::connect_plain(p.port);
        tcp.send(&format!("CONNECT {{\"jwt\":\"{ws_only}\"}}\r\nPING\r\n"));
        t.push(format!(
            "WEBSOCKET-only JWT over tcp refused: {}",
            tcp.read_for(Duration::from_millis(500))
                .contains("Authorization Violation")
        ));
        eprintln!("{name}: {t:#?}");
        transcripts.push(t);
    }
    let mine = &transcripts[0];
    assert_eq!(mine[0], "bearer JWT cookie: ok");
    assert!(mine[1].contains("Authorization Violation"), "{mine:?}");
    assert_eq!(mine[2], "WEBSOCKET-only JWT cookie: ok");
    assert_eq!(mine[3], "WEBSOCKET-only JWT over tcp refused: true");
    if let [mine, theirs] = &transcripts[..] {
        assert_eq!(mine, theirs, "natrix (left) and nats-server (right) differ");
    }
}

/// `allowed_connection_types` of configured users: `WEBSOCKET` admits a user over
/// WebSocket only, `STANDARD` over TCP only. Same outcomes on both servers.
#[test]
fn allowed_connection_types_tell_websocket_from_tcp() {
    let mut transcripts = Vec::new();
    for (name, bin) in both() {
        let port = free_port();
        let conf = format!(
            "authorization {{ users: [ {{ user: w, password: p, allowed_connection_types: [\"WEBSOCKET\"] }}, {{ user: t, password: p, allowed_connection_types: [\"STANDARD\"] }} ] }}\nwebsocket {{ port: {port}, no_tls: true }}\n"
        );
        let p = start(&bin, &conf, false);
        let mut t = Vec::new();
        for user in ["w", "t"] {
            t.push(format!(
                "{user} over websocket: {}",
                ws_login(port, "", &format!("{{\"user\":\"{user}\",\"pass\":\"p\"}}"))
            ));
            let mut tcp = common::Raw::connect_plain(p.port);
            tcp.send(&format!(
                "CONNECT {{\"user\":\"{user}\",\"pass\":\"p\"}}\r\nPING\r\n"
            ));
            t.push(format!(
                "{user} over tcp: {}",
                tcp.read_for(Duration::from_millis(500)).contains("PONG")
            ));
        }
        eprintln!("{name}: {t:#?}");
        transcripts.push(t);
    }
    let mine = &transcripts[0];
    assert_eq!(mine[0], "w over websocket: ok");
    assert_eq!(mine[1], "w over tcp: false");
    assert!(mine[2].contains("Authorization Violation"), "{mine:?}");
    assert_eq!(mine[3], "t over tcp: true");
    if let [mine, theirs] = &transcripts[..] {
        assert_eq!(mine, theirs, "natrix (left) and nats-server (right) differ");
    }
}
