//! MQTT over WebSocket (`ws://host:port/mqtt`, subprotocol `mqtt`), with a real
//! client: mqtt.js run by node, in MQTT 3.1.1 and 5.0, exchanging messages with an
//! async-nats client over TCP on the same subjects. Each scenario runs against natrix
//! and the reference nats-server with the same config, and the transcripts must match.
//! Also: the upgrade names the subprotocol, a server without `mqtt {}` answers 404, and
//! `/connz` lists the connection as an MQTT client.

mod common;

use std::io::{Read as _, Write as _};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use common::{NATRIX, Proc, free_port, start};
use futures::StreamExt as _;
use tokio::io::{AsyncBufReadExt as _, BufReader};

/// The MQTT side: subscribes, says `ready`, prints each message it gets, and after the
/// first one publishes `cmd/door` (with a user property in 5.0) and says `published`.
const CLIENT_JS: &str = r#"
const mqtt = require(process.env.NATRIX_NODE_MODULES + '/mqtt');
const [url, version] = process.argv.slice(-2);
const opts = {
  clientId: 'ws-dev-' + version, protocolVersion: Number(version), reconnectPeriod: 0,
  connectTimeout: 5000,
};
// wss://: the server's certificate is checked against the test's CA.
if (process.env.NATRIX_CA) { opts.ca = require('fs').readFileSync(process.env.NATRIX_CA); }
const c = mqtt.connect(url, opts);
const quit = setTimeout(() => { console.log('timeout'); process.exit(1); }, 15000);
c.on('error', (e) => { console.log('error ' + e.message); process.exit(2); });
c.on('connect', () => {
  c.subscribe('sensors/+/temp', { qos: 0 }, (err, granted) => {
    if (err) { console.log('suberror ' + err.message); process.exit(3); }
    console.log('ready ' + granted.map((g) => g.qos).join(','));
  });
});
c.on('message', (topic, payload) => {
  console.log('got ' + topic + ' ' + payload.toString());
  const opts = Number(version) === 5 ? { properties: { userProperties: { origin: 'browserless' } } } : {};
  c.publish('cmd/door', 'open', opts, () => {
    console.log('published');
    c.end(false, {}, () => { clearTimeout(quit); console.log('closed'); });
  });
});
"#;

fn conf(store: &Path, mqtt: u16, ws: u16, tls: &str) -> String {
    format!(
        "server_name: ws_mqtt\njetstream {{ store_dir: {:?} }}\nmqtt {{ host: 127.0.0.1, port: {mqtt} }}\nwebsocket {{ host: 127.0.0.1, port: {ws}, {tls} }}\n",
        store.display().to_string()
    )
}

struct Server {
    p: Proc,
    ws: u16,
    mqtt: u16,
    _store: tempfile::TempDir,
}

fn servers() -> Vec<(&'static str, PathBuf)> {
    let mut v = vec![("natrix", PathBuf::from(NATRIX))];
    if let Some(r) = common::reference_binary() {
        v.push(("nats-server", r));
    }
    v
}

fn server(bin: &Path) -> Server {
    server_with(bin, "no_tls: true")
}

fn server_with(bin: &Path, tls: &str) -> Server {
    let store = tempfile::tempdir().expect("store");
    let (mqtt, ws) = (free_port(), free_port());
    let p = start(bin, &conf(store.path(), mqtt, ws, tls), true);
    Server {
        p,
        ws,
        mqtt,
        _store: store,
    }
}

/// Reads the client's next line, within a bound.
async fn line(lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>) -> String {
    tokio::time::timeout(Duration::from_secs(15), lines.next_line())
        .await
        .expect("client line in time")
        .expect("read client output")
        .unwrap_or_else(|| "<eof>".into())
}

/// One MQTT-over-WebSocket session of mqtt.js at protocol `version` against `s`, over
/// `wss://` checked against `ca` when given.
async fn scenario(
    name: &str,
    s: &Server,
    modules: &Path,
    version: u8,
    ca: Option<&Path>,
) -> Vec<String> {
    let mut t = Vec::new();
    let nats = async_nats::connect(format!("nats://127.0.0.1:{}", s.p.port))
        .await
        .expect("nats client");
    let mut door = nats.subscribe("cmd.door").await.expect("subscribe");
    nats.flush().await.expect("flush");
    let mut cmd = tokio::process::Command::new("node");
    if let Some(ca) = ca {
        cmd.env("NATRIX_CA", ca);
    }
    let scheme = if ca.is_some() { "wss" } else { "ws" };
    let mut child = cmd
        .arg("-e")
        .arg(CLIENT_JS)
        .arg(format!("{scheme}://127.0.0.1:{}/mqtt", s.ws))
        .arg(version.to_string())
        .env("NATRIX_NODE_MODULES", modules)
        .stdout(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("start node");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let ready = line(&mut lines).await;
    t.push(ready.clone());
    assert!(ready.starts_with("ready"), "{name}: {ready}");
    // While connected, /connz lists it as an MQTT client with its client ID.
    let connz = common::http_get(s.p.http_port.expect("monitor"), "/connz").json();
    let mqtt_conn = connz["connections"]
        .as_array()
        .into_iter()
        .flatten()
        .find(|c| c["mqtt_client"] == format!("ws-dev-{version}"));
    t.push(format!(
        "connz: {:?}",
        mqtt_conn.map(|c| (c["type"].clone(), c["kind"].clone()))
    ));
    // NATS -> MQTT: a wildcard subscription gets the subject as a topic.
    nats.publish("sensors.k1.temp", "21.5".into())
        .await
        .expect("publish");
    nats.flush().await.expect("flush");
    t.push(line(&mut lines).await);
    // MQTT -> NATS, with the 5.0 user property as a header.
    let m = tokio::time::timeout(Duration::from_secs(10), door.next())
        .await
        .expect("cmd.door in time")
        .expect("message");
    t.push(format!(
        "nats got {} {} origin={:?}",
        m.subject,
        String::from_utf8_lossy(&m.payload),
        m.headers
            .as_ref()
            .and_then(|h| h.get("origin"))
            .map(|v| v.as_str().to_owned())
    ));
    t.push(line(&mut lines).await);
    t.push(line(&mut lines).await);
    let status = tokio::time::timeout(Duration::from_secs(10), child.wait())
        .await
        .expect("node exits")
        .expect("wait node");
    t.push(format!("node exit {:?}", status.code()));
    t
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_js_over_websocket_talks_with_nats() {
    let Some(modules) = common::node_modules() else {
        eprintln!("skipped: node or its packages missing (scripts/deps)");
        return;
    };
    for version in [4u8, 5] {
        let mut transcripts = Vec::new();
        for (name, bin) in servers() {
            // nats-server has no MQTT 5.0: it runs the 3.1.1 scenario only.
            if version == 5 && name != "natrix" {
                continue;
            }
            let s = server(&bin);
            let t = scenario(name, &s, &modules, version, None).await;
            eprintln!("{name} MQTT {version}: {t:#?}");
            transcripts.push(t);
        }
        let mine = &transcripts[0];
        assert_eq!(mine[0], "ready 0");
        assert!(mine[1].contains("\"mqtt\""), "{mine:?}");
        assert_eq!(mine[2], "got sensors/k1/temp 21.5");
        let origin = if version == 5 {
            "Some(\"browserless\")"
        } else {
            "None"
        };
        assert_eq!(mine[3], format!("nats got cmd.door open origin={origin}"));
        assert_eq!(mine.last().map(String::as_str), Some("node exit Some(0)"));
        if let [mine, theirs] = &transcripts[..] {
            assert_eq!(mine, theirs, "natrix (left) and nats-server (right) differ");
        }
    }
}

/// The raw upgrade: the answer names the `mqtt` subprotocol the client asked for, a
/// CONNECT in a masked binary frame gets CONNACK in a binary frame, and a frame without
/// a mask ends the connection.
#[test]
fn the_upgrade_names_the_mqtt_subprotocol() {
    for (name, bin) in servers() {
        let s = server(&bin);
        let mut c = std::net::TcpStream::connect(("127.0.0.1", s.ws)).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        let req = format!(
            "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n",
            s.ws
        );
        c.write_all(req.as_bytes()).expect("write");
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") && c.read(&mut byte).unwrap_or(0) == 1 {
            head.push(byte[0]);
        }
        let head = String::from_utf8_lossy(&head).to_string();
        assert!(head.starts_with("HTTP/1.1 101"), "{name}: {head}");
        assert!(
            head.to_ascii_lowercase()
                .contains("sec-websocket-protocol: mqtt\r\n"),
            "{name}: {head}"
        );
        // MQTT 3.1.1 CONNECT, clean session, keep-alive 30, client ID "raw".
        let connect = [
            0x10, 15, 0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 30, 0, 3, b'r', b'a', b'w',
        ];
        let mask = [1u8, 2, 3, 4];
        let mut frame = vec![0x82, 0x80 | u8::try_from(connect.len()).expect("short")];
        frame.extend_from_slice(&mask);
        frame.extend(connect.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        c.write_all(&frame).expect("write");
        let mut answer = [0u8; 6];
        c.read_exact(&mut answer).expect("CONNACK frame");
        assert_eq!(answer, [0x82, 4, 0x20, 2, 0, 0], "{name}: CONNACK accepted");
        // A PINGREQ in a frame without a mask: the connection ends (natrix first sends
        // a close frame with status 1002), no PINGRESP.
        c.write_all(&[0x82, 2, 0xc0, 0]).expect("write");
        let mut rest = Vec::new();
        let ended = match c.read_to_end(&mut rest) {
            Ok(_) => true,
            Err(e) => matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
            ),
        };
        assert!(ended, "{name}: still open after an unmasked frame");
        assert!(
            !rest.windows(2).any(|w| w == [0xd0, 0]),
            "{name}: answered an unmasked PINGREQ: {rest:?}"
        );
        if name == "natrix" {
            assert_eq!(
                rest.get(..4),
                Some(&[0x88, 0x12, 0x03, 0xea][..]),
                "{rest:?}"
            );
        }
    }
}

/// A server without `mqtt {}` refuses `/mqtt` upgrades with 404, before looking at the
/// rest of the request (nats-server's "mqtt websocket endpoint not enabled").
#[test]
fn mqtt_over_websocket_needs_the_mqtt_listener() {
    for (name, bin) in servers() {
        let ws = free_port();
        let p = start(
            &bin,
            &format!("websocket {{ host: 127.0.0.1, port: {ws}, no_tls: true }}\n"),
            false,
        );
        let mut c = std::net::TcpStream::connect(("127.0.0.1", ws)).expect("connect");
        c.set_read_timeout(Some(Duration::from_secs(5)))
            .expect("timeout");
        c.write_all(
            format!("GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1:{ws}\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n").as_bytes(),
        )
        .expect("write");
        let mut buf = [0u8; 64];
        let n = c.read(&mut buf).unwrap_or(0);
        let status = String::from_utf8_lossy(&buf[..n]).to_string();
        assert!(status.starts_with("HTTP/1.1 404"), "{name}: {status}");
        assert!(
            p.log_text().contains("mqtt websocket endpoint not enabled"),
            "{name}: {}",
            p.log_text()
        );
    }
}

/// An MQTT 3.1.1 CONNECT with clean session and `client_id`.
fn connect_packet(client_id: &str) -> Vec<u8> {
    let id = client_id.as_bytes();
    let mut p = vec![0x10, u8::try_from(12 + id.len()).expect("short")];
    p.extend_from_slice(&[0, 4, b'M', b'Q', b'T', b'T', 4, 0x02, 0, 30]);
    p.extend_from_slice(&u16::try_from(id.len()).expect("short").to_be_bytes());
    p.extend_from_slice(id);
    p
}

/// Whether `s` is closed within `within` (EOF or reset; a timeout means still open).
fn closed_within(s: &mut std::net::TcpStream, within: Duration) -> bool {
    s.set_read_timeout(Some(within)).expect("timeout");
    let mut buf = [0u8; 256];
    loop {
        match s.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => {}
            Err(e) => {
                return matches!(
                    e.kind(),
                    std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::ConnectionAborted
                );
            }
        }
    }
}

/// One client ID across transports: a connection over WebSocket with the ID of a TCP
/// connection takes the session over (the TCP one is closed, MQTT 3.1.4-3), and the
/// reverse. Same on both servers.
#[test]
fn a_client_id_is_taken_over_across_transports() {
    for (name, bin) in servers() {
        let s = server(&bin);
        let tcp_connect = |id: &str| {
            let mut c = std::net::TcpStream::connect(("127.0.0.1", s.mqtt)).expect("connect");
            c.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            c.write_all(&connect_packet(id)).expect("write");
            let mut ack = [0u8; 4];
            c.read_exact(&mut ack)
                .unwrap_or_else(|e| panic!("{name}: CONNACK of {id}: {e}"));
            assert_eq!(ack, [0x20, 2, 0, 0], "{name}: TCP CONNACK");
            c
        };
        let ws_connect = |id: &str| {
            let mut c = std::net::TcpStream::connect(("127.0.0.1", s.ws)).expect("connect");
            c.set_read_timeout(Some(Duration::from_secs(5)))
                .expect("timeout");
            let req = "GET /mqtt HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n";
            c.write_all(req.as_bytes()).expect("write");
            let mut head = Vec::new();
            let mut byte = [0u8; 1];
            while !head.ends_with(b"\r\n\r\n") && c.read(&mut byte).unwrap_or(0) == 1 {
                head.push(byte[0]);
            }
            let packet = connect_packet(id);
            let mask = [9u8, 8, 7, 6];
            let mut frame = vec![0x82, 0x80 | u8::try_from(packet.len()).expect("short")];
            frame.extend_from_slice(&mask);
            frame.extend(packet.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
            c.write_all(&frame).expect("write");
            let mut ack = [0u8; 6];
            c.read_exact(&mut ack).expect("CONNACK frame");
            assert_eq!(ack, [0x82, 4, 0x20, 2, 0, 0], "{name}: WebSocket CONNACK");
            c
        };
        // Two IDs, one per direction: nats-server delays an ID that comes back at once
        // after a takeover (its flapping guard), which is not what is checked here.
        let mut over_tcp = tcp_connect("tcp-first");
        let _taker = ws_connect("tcp-first");
        assert!(
            closed_within(&mut over_tcp, Duration::from_secs(3)),
            "{name}: the TCP holder of the ID stays open"
        );
        let mut over_ws = ws_connect("ws-first");
        let _taker = tcp_connect("ws-first");
        assert!(
            closed_within(&mut over_ws, Duration::from_secs(3)),
            "{name}: the WebSocket holder of the ID stays open"
        );
    }
}

/// The same exchange over `wss://`: TLS on the WebSocket listener, mqtt.js checking the
/// server's certificate against the test CA; MQTT 3.1.1 on both servers.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_js_over_secure_websocket() {
    let Some(modules) = common::node_modules() else {
        eprintln!("skipped: node or its packages missing (scripts/deps)");
        return;
    };
    let pki_dir = tempfile::tempdir().expect("pki");
    let pki = common::TestPki::new(pki_dir.path());
    pki.server_cert("ws");
    let d = pki_dir.path().display().to_string();
    let tls = format!("tls {{ cert_file: \"{d}/ws.pem\", key_file: \"{d}/ws-key.pem\" }}");
    let mut transcripts = Vec::new();
    for (name, bin) in servers() {
        let s = server_with(&bin, &tls);
        let t = scenario(name, &s, &modules, 4, Some(&pki_dir.path().join("ca.pem"))).await;
        eprintln!("{name} over wss: {t:#?}");
        transcripts.push(t);
    }
    let mine = &transcripts[0];
    assert_eq!(mine[2], "got sensors/k1/temp 21.5", "{mine:?}");
    assert_eq!(mine[3], "nats got cmd.door open origin=None", "{mine:?}");
    assert_eq!(mine.last().map(String::as_str), Some("node exit Some(0)"));
    if let [mine, theirs] = &transcripts[..] {
        assert_eq!(mine, theirs, "natrix (left) and nats-server (right) differ");
    }
}

/// mqtt.js (node's `ws` offers permessage-deflate) against a listener with
/// `compression: true`: the packets travel in compressed frames both ways; MQTT 3.1.1 on
/// both servers with the same transcript.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn mqtt_js_over_compressed_websocket() {
    let Some(modules) = common::node_modules() else {
        eprintln!("skipped: node or its packages missing (scripts/deps)");
        return;
    };
    let mut transcripts = Vec::new();
    for (name, bin) in servers() {
        let s = server_with(&bin, "no_tls: true, compression: true");
        let t = scenario(name, &s, &modules, 4, None).await;
        eprintln!("{name} compressed: {t:#?}");
        transcripts.push(t);
    }
    let mine = &transcripts[0];
    assert_eq!(mine[2], "got sensors/k1/temp 21.5", "{mine:?}");
    assert_eq!(mine.last().map(String::as_str), Some("node exit Some(0)"));
    if let [mine, theirs] = &transcripts[..] {
        assert_eq!(mine, theirs, "natrix (left) and nats-server (right) differ");
    }
}

/// `allowed_connection_types` over the WebSocket listener: an MQTT client there is of
/// kind `MQTT_WS` (not `MQTT`, not `WEBSOCKET`), on both servers. mqtt.js logs in as a user
/// limited to `MQTT_WS` and is refused as one limited to `MQTT`.
#[test]
fn mqtt_over_websocket_is_connection_type_mqtt_ws() {
    let Some(modules) = common::node_modules() else {
        panic!("node or its packages missing (scripts/deps installs them)");
    };
    let script = r#"
const mqtt = require(process.env.NATRIX_NODE_MODULES + '/mqtt');
const [url, user] = process.argv.slice(-2);
const c = mqtt.connect(url, {
  clientId: 'typed-' + user, username: user, password: 'pw', reconnectPeriod: 0,
  connectTimeout: 5000,
});
setTimeout(() => { console.log('timeout'); process.exit(1); }, 10000);
c.on('connect', () => { console.log('connected'); c.end(false, {}, () => process.exit(0)); });
c.on('error', (e) => { console.log('refused ' + e.message); process.exit(0); });
"#;
    for (name, bin) in servers() {
        let store = tempfile::tempdir().expect("store");
        let (mqtt, ws) = (free_port(), free_port());
        let users = "authorization { users: [\n  { user: wsdev, password: pw, allowed_connection_types: [\"MQTT_WS\"] }\n  { user: tcpdev, password: pw, allowed_connection_types: [\"MQTT\"] }\n] }\n";
        let p = start(
            &bin,
            &format!("{}{users}", conf(store.path(), mqtt, ws, "no_tls: true")),
            true,
        );
        let run = |user: &str| {
            let out = std::process::Command::new("node")
                .args(["-e", script, &format!("ws://127.0.0.1:{ws}/mqtt"), user])
                .env("NATRIX_NODE_MODULES", &modules)
                .output()
                .expect("node");
            String::from_utf8_lossy(&out.stdout).trim().to_owned()
        };
        assert_eq!(run("wsdev"), "connected", "{name}");
        let refused = run("tcpdev");
        assert!(
            refused.starts_with("refused") && refused.contains("ot authorized"),
            "{name}: {refused}"
        );
        assert!(
            !p.log_text().contains("panicked"),
            "{name}: {}",
            p.log_text()
        );
    }
}
