//! MQTT clients (`mqtt {}`) at QoS 0, against natrix-server and, for every MQTT 3.1.1
//! scenario, the reference nats-server with the same outcome asserted: real clients
//! (`mosquitto_pub`/`mosquitto_sub`, 3.1.1 and 5.0) and a small client on `natrix_mqtt`'s
//! codec for exact packets, meeting NATS clients on the mapped subjects.
//!
//! nats-server has no MQTT 5.0 and no shared subscriptions: those scenarios run on natrix
//! alone.

mod common;

use std::io::{BufRead as _, Read as _, Write as _};
use std::net::{Shutdown, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use common::{NATRIX, Proc, Raw, free_port, read_until, start};
use natrix_mqtt::{
    Connect, Decoder, LastWill, MqttString, Packet, Properties, ProtocolVersion, Publish, QoS,
    ReasonCode, Subscribe, SubscribeFilter, SubscriptionOptions,
};

const V3: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

/// A server with an MQTT listener.
struct Srv {
    name: &'static str,
    p: Proc,
    mqtt: u16,
    _store: tempfile::TempDir,
}

/// natrix, and nats-server when installed (it needs a server name and JetStream for MQTT).
fn servers(extra: &str) -> Vec<Srv> {
    let mut out = vec![server("natrix", Path::new(NATRIX), extra)];
    if let Some(r) = common::reference_binary() {
        out.push(server("nats-server", &r, extra));
    }
    out
}

fn server(name: &'static str, bin: &Path, extra: &str) -> Srv {
    let store = tempfile::tempdir().expect("store dir");
    let mqtt = free_port();
    let conf = format!(
        "server_name: mqtt_test\njetstream {{ store_dir: {:?} }}\nmqtt {{ host: 127.0.0.1, port: {mqtt} }}\n{extra}",
        store.path().display().to_string()
    );
    let p = start(bin, &conf, true);
    Srv {
        name,
        p,
        mqtt,
        _store: store,
    }
}

fn natrix(extra: &str) -> Srv {
    server("natrix", Path::new(NATRIX), extra)
}

fn mstr(s: &str) -> MqttString {
    MqttString::try_from_bytes(Bytes::copy_from_slice(s.as_bytes())).expect("mqtt string")
}

/// A minimal MQTT client on the codec, for exact packets.
struct Mq {
    s: TcpStream,
    version: ProtocolVersion,
    dec: Decoder,
    buf: BytesMut,
    /// PUBLISHes read while waiting for something else, for [`Mq::messages`].
    held: Vec<String>,
}

fn describe(p: &Publish) -> String {
    format!(
        "{} {}",
        p.topic.as_str(),
        String::from_utf8_lossy(&p.payload)
    )
}

struct Login<'a> {
    version: ProtocolVersion,
    id: &'a str,
    user: Option<&'a str>,
    pass: Option<&'a str>,
    keep_alive: u16,
    will: Option<(&'a str, &'a str)>,
}

impl Default for Login<'_> {
    fn default() -> Self {
        Login {
            version: V3,
            id: "",
            user: None,
            pass: None,
            keep_alive: 60,
            will: None,
        }
    }
}

impl Mq {
    fn raw(port: u16, version: ProtocolVersion) -> Self {
        let s = TcpStream::connect(("127.0.0.1", port)).expect("connect mqtt");
        let _ = s.set_nodelay(true);
        Mq {
            s,
            version,
            dec: Decoder::with_version(version),
            buf: BytesMut::new(),
            held: Vec::new(),
        }
    }

    /// Connects and returns the CONNACK's reason.
    fn login(port: u16, l: &Login<'_>) -> (Self, ReasonCode) {
        let mut m = Self::raw(port, l.version);
        m.send(&Packet::Connect(Box::new(Connect {
            protocol_version: l.version,
            clean_start: true,
            keep_alive: l.keep_alive,
            client_id: mstr(l.id),
            will: l.will.map(|(t, p)| LastWill {
                topic: mstr(t),
                payload: Bytes::copy_from_slice(p.as_bytes()),
                qos: QoS::AtMostOnce,
                retain: false,
                properties: Properties::default(),
            }),
            username: l.user.map(mstr),
            password: l.pass.map(|p| Bytes::copy_from_slice(p.as_bytes())),
            properties: Properties::default(),
        })));
        match m.recv(Duration::from_secs(10)) {
            Some(Packet::ConnAck(a)) => (m, a.reason),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    fn connect(port: u16, version: ProtocolVersion, id: &str) -> Self {
        let (m, reason) = Self::login(
            port,
            &Login {
                version,
                id,
                ..Login::default()
            },
        );
        assert_eq!(reason, ReasonCode::Success);
        m
    }

    fn send(&mut self, p: &Packet) {
        let mut out = BytesMut::new();
        p.encode(self.version, &mut out).expect("encode");
        self.s.write_all(&out).expect("write");
    }

    /// The next packet within `within`; `None` on timeout or close.
    fn recv(&mut self, within: Duration) -> Option<Packet> {
        let deadline = Instant::now() + within;
        loop {
            if let Some(p) = self.dec.decode(&mut self.buf).expect("decode") {
                return Some(p);
            }
            let left = deadline.checked_duration_since(Instant::now())?;
            let _ = self
                .s
                .set_read_timeout(Some(left.max(Duration::from_millis(1))));
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) | Err(_) => return None,
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
            }
        }
    }

    /// Whether the server closes the connection within `within` (packets before the close
    /// are returned).
    fn closed(&mut self, within: Duration) -> (bool, Vec<Packet>) {
        let deadline = Instant::now() + within;
        let mut seen = Vec::new();
        loop {
            while let Ok(Some(p)) = self.dec.decode(&mut self.buf) {
                seen.push(p);
            }
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                return (false, seen);
            };
            let _ = self
                .s
                .set_read_timeout(Some(left.max(Duration::from_millis(1))));
            let mut chunk = [0u8; 4096];
            match self.s.read(&mut chunk) {
                Ok(0) => return (true, seen),
                Ok(n) => self.buf.extend_from_slice(&chunk[..n]),
                Err(e)
                    if matches!(
                        e.kind(),
                        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                    ) =>
                {
                    return (false, seen);
                }
                Err(_) => return (true, seen),
            }
        }
    }

    fn subscribe(&mut self, filters: &[&str]) -> Vec<ReasonCode> {
        self.send(&Packet::Subscribe(Subscribe {
            packet_id: 7,
            filters: filters
                .iter()
                .map(|f| SubscribeFilter {
                    filter: mstr(f),
                    options: SubscriptionOptions::default(),
                })
                .collect(),
            properties: Properties::default(),
        }));
        loop {
            match self.recv(Duration::from_secs(10)) {
                Some(Packet::SubAck(a)) => {
                    assert_eq!(a.packet_id, 7);
                    return a.reasons;
                }
                Some(Packet::Publish(p)) => self.held.push(describe(&p)),
                other => panic!("expected SUBACK, got {other:?}"),
            }
        }
    }

    fn publish(&mut self, topic: &str, payload: &str) {
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos: QoS::AtMostOnce,
            retain: false,
            topic: mstr(topic),
            packet_id: 0,
            properties: Properties::default(),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
        }));
    }

    /// PINGREQ answered: everything sent before was processed.
    fn ping(&mut self) -> bool {
        self.send(&Packet::PingReq);
        let deadline = Instant::now() + Duration::from_secs(5);
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.recv(left) {
                Some(Packet::PingResp) => return true,
                Some(Packet::Publish(p)) => self.held.push(describe(&p)),
                Some(_) => {}
                None => return false,
            }
        }
        false
    }

    /// `topic payload` of the PUBLISH packets that arrive until `quiet` passes with none.
    fn messages(&mut self, quiet: Duration) -> Vec<String> {
        let mut out = std::mem::take(&mut self.held);
        while let Some(p) = self.recv(quiet) {
            if let Packet::Publish(p) = p {
                out.push(describe(&p));
            }
        }
        out
    }
}

/// A NATS client, connected and synced.
fn nats(s: &Srv) -> Raw {
    common::client(&s.p)
}

fn nats_login(s: &Srv, user: &str, pass: &str) -> Raw {
    let mut c = Raw::connect(s.p.port);
    c.send(&format!(
        "CONNECT {{\"verbose\":false,\"user\":\"{user}\",\"pass\":\"{pass}\"}}\r\n"
    ));
    assert!(c.sync().contains("PONG"), "{}: NATS login", s.name);
    c
}

/// `subject payload` of each MSG/HMSG frame in `text` (headers dropped).
fn nats_msgs(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut lines = text.split("\r\n");
    while let Some(line) = lines.next() {
        let args: Vec<&str> = line.split(' ').collect();
        match args.first() {
            Some(&"MSG") => {
                out.push(format!("{} {}", args[1], lines.next().unwrap_or_default()));
            }
            Some(&"HMSG") => {
                // Header lines up to the empty line, then the payload.
                for h in lines.by_ref() {
                    if h.is_empty() {
                        break;
                    }
                }
                out.push(format!("{} {}", args[1], lines.next().unwrap_or_default()));
            }
            _ => {}
        }
    }
    out
}

fn mosquitto() -> PathBuf {
    PathBuf::from("mosquitto_sub")
}

/// `mosquitto_sub -v` on `filter`; its output lines arrive on a channel.
struct MosqSub {
    child: Child,
    lines: mpsc::Receiver<String>,
}

impl Drop for MosqSub {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn version_flag(v: ProtocolVersion) -> &'static str {
    if v == V5 { "mqttv5" } else { "mqttv311" }
}

impl MosqSub {
    /// Starts it and waits until it receives: `probe` publishes a message it matches
    /// (payload `probe`) until one arrives.
    fn start(port: u16, v: ProtocolVersion, filter: &str, mut probe: impl FnMut()) -> Self {
        let mut child = Command::new(mosquitto())
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-V", version_flag(v), "-t", filter, "-v"])
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto_sub (apt-get install mosquitto-clients; scripts/deps does)");
        let out = child.stdout.take().expect("stdout");
        let (tx, lines) = mpsc::channel();
        std::thread::spawn(move || {
            for line in std::io::BufReader::new(out).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let sub = MosqSub { child, lines };
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            probe();
            if sub.lines.recv_timeout(Duration::from_millis(200)).is_ok() {
                break;
            }
            assert!(Instant::now() < deadline, "mosquitto_sub never received");
        }
        // Probes still in flight.
        while sub.lines.recv_timeout(Duration::from_millis(300)).is_ok() {}
        sub
    }

    /// Lines (without probes) until `n` arrived or 5 s passed.
    fn take(&self, n: usize) -> Vec<String> {
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut out = Vec::new();
        while out.len() < n {
            let Some(left) = deadline.checked_duration_since(Instant::now()) else {
                break;
            };
            match self.lines.recv_timeout(left) {
                Ok(l) if l.ends_with(" probe") => {}
                Ok(l) => out.push(l),
                Err(_) => break,
            }
        }
        // Anything extra shows up as a failure too.
        while let Ok(l) = self.lines.recv_timeout(Duration::from_millis(200)) {
            if !l.ends_with(" probe") {
                out.push(l);
            }
        }
        out
    }
}

fn mosquitto_pub(port: u16, v: ProtocolVersion, topic: &str, msg: &str, extra: &[&str]) -> bool {
    Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-V", version_flag(v), "-t", topic, "-m", msg])
        .args(extra)
        .stderr(Stdio::null())
        .status()
        .expect("mosquitto_pub")
        .success()
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

const QUIET: Duration = Duration::from_millis(400);

#[test]
fn nats_to_mqtt_with_wildcards() {
    for s in servers("") {
        let mut m = Mq::connect(s.mqtt, V3, "wild");
        assert_eq!(
            m.subscribe(&["a/+/c", "x/#"]),
            vec![ReasonCode::GRANTED_QOS0; 2],
            "{}",
            s.name
        );
        let mut n = nats(&s);
        for subj in ["a.b.c", "a.b.d", "x", "x.y.z", "xx", "a.b.c.d"] {
            n.send(&format!("PUB {subj} 2\r\nhi\r\n"));
        }
        n.sync();
        assert_eq!(
            sorted(m.messages(QUIET)),
            vec!["a/b/c hi", "x hi", "x/y/z hi"],
            "{}",
            s.name
        );
    }
}

#[test]
fn nats_to_mosquitto_sub_both_versions() {
    for s in servers("") {
        for v in [V3, V5] {
            if v == V5 && s.name != "natrix" {
                continue;
            }
            let mut n = nats(&s);
            let sub = MosqSub::start(s.mqtt, v, "dev/#", || {
                n.send("PUB dev.probe 5\r\nprobe\r\n");
                n.sync();
            });
            n.send("PUB dev 3\r\none\r\nPUB dev.room1.temp 3\r\ntwo\r\nPUB other 1\r\nx\r\n");
            n.sync();
            assert_eq!(
                sub.take(2),
                vec!["dev one", "dev/room1/temp two"],
                "{} {v:?}",
                s.name
            );
        }
    }
}

#[test]
fn mqtt_to_nats_on_the_mapped_subject() {
    for s in servers("") {
        let mut n = nats(&s);
        n.send("SUB sensors.> 1\r\n");
        n.sync();
        let mut got = Vec::new();
        for v in [V3, V5] {
            if v == V5 && s.name != "natrix" {
                continue;
            }
            assert!(mosquitto_pub(s.mqtt, v, "sensors/room1/temp", "21.5", &[]));
            got.extend(nats_msgs(&read_until(
                &mut n,
                "21.5",
                Duration::from_secs(5),
            )));
        }
        // The exact codec client too: the `.` in a level becomes `//`.
        let mut m = Mq::connect(s.mqtt, V3, "pub");
        m.publish("sensors/a.b", "dot");
        assert!(m.ping());
        got.extend(nats_msgs(&read_until(
            &mut n,
            "dot",
            Duration::from_secs(5),
        )));
        let want: Vec<&str> = if s.name == "natrix" {
            vec![
                "sensors.room1.temp 21.5",
                "sensors.room1.temp 21.5",
                "sensors.a//b dot",
            ]
        } else {
            vec!["sensors.room1.temp 21.5", "sensors.a//b dot"]
        };
        assert_eq!(got, want, "{}", s.name);
    }
}

#[test]
fn mqtt_to_mqtt_across_versions() {
    for s in servers("") {
        let versions: &[ProtocolVersion] = if s.name == "natrix" { &[V3, V5] } else { &[V3] };
        for &sv in versions {
            for &pv in versions {
                let port = s.mqtt;
                let sub = MosqSub::start(port, sv, "m/#", || {
                    assert!(mosquitto_pub(port, pv, "m/probe", "probe", &[]));
                });
                assert!(mosquitto_pub(port, pv, "m/n", "hello", &[]));
                assert_eq!(
                    sub.take(1),
                    vec!["m/n hello"],
                    "{} {sv:?} <- {pv:?}",
                    s.name
                );
            }
        }
    }
}

#[test]
fn shared_subscription_spreads_with_a_nats_queue_group() {
    let s = natrix("");
    let mut a = Mq::connect(s.mqtt, V3, "w1");
    let mut b = Mq::connect(s.mqtt, V5, "w2");
    assert_eq!(a.subscribe(&["$share/g/jobs/+"]), vec![ReasonCode::Success]);
    assert_eq!(b.subscribe(&["$share/g/jobs/+"]), vec![ReasonCode::Success]);
    let mut q = nats(&s);
    q.send("SUB jobs.* g 1\r\n");
    q.sync();
    let mut p = nats(&s);
    for i in 0..60 {
        p.send(&format!("PUB jobs.x {}\r\n{i}\r\n", i.to_string().len()));
    }
    p.sync();
    let na = a.messages(QUIET).len();
    let nb = b.messages(QUIET).len();
    let nq = nats_msgs(&q.read_for(QUIET)).len();
    assert_eq!(
        na + nb + nq,
        60,
        "each message to one member: {na} {nb} {nq}"
    );
    assert!(na > 0 && nb > 0 && nq > 0, "spread: {na} {nb} {nq}");
}

const USERS: &str = r#"
authorization {
  users: [
    { user: dev, password: devpass, permissions: {
        subscribe: { deny: "secret.>" }, publish: { deny: "secret.>" } } }
    { user: admin, password: adminpass }
  ]
}
"#;

#[test]
fn permissions_apply_to_mqtt_clients() {
    for s in servers(USERS) {
        let (mut m, r) = Mq::login(
            s.mqtt,
            &Login {
                id: "dev1",
                user: Some("dev"),
                pass: Some("devpass"),
                ..Login::default()
            },
        );
        assert_eq!(r, ReasonCode::Success, "{}", s.name);
        // 3.1.1: a refused filter is 0x80 (the codec writes 5.0's codes as 3.1.1's).
        let reasons = m.subscribe(&["ok/t", "secret/x"]);
        assert_eq!(reasons[0], ReasonCode::Success, "{}", s.name);
        assert!(reasons[1].is_error(), "{}: {reasons:?}", s.name);
        // A denied PUBLISH is dropped; the connection lives on.
        let mut admin = nats_login(&s, "admin", "adminpass");
        admin.send("SUB secret.> 1\r\nSUB ok.> 2\r\n");
        admin.sync();
        m.publish("secret/x", "leak");
        m.publish("ok/t", "fine");
        assert!(m.ping(), "{}: connection kept", s.name);
        let got = nats_msgs(&read_until(&mut admin, "fine", Duration::from_secs(5)));
        assert_eq!(got, vec!["ok.t fine"], "{}", s.name);
        // A message on the refused filter's subject never reaches it (its own "fine"
        // does: MQTT has no No Local in 3.1.1).
        admin.send("PUB secret.x 1\r\nz\r\nPUB ok.t 1\r\ny\r\n");
        admin.sync();
        assert_eq!(m.messages(QUIET), vec!["ok/t fine", "ok/t y"], "{}", s.name);
    }
}

#[test]
fn refused_subscribe_is_0x87_in_v5() {
    let s = natrix(USERS);
    let (mut m, r) = Mq::login(
        s.mqtt,
        &Login {
            version: V5,
            id: "dev5",
            user: Some("dev"),
            pass: Some("devpass"),
            ..Login::default()
        },
    );
    assert_eq!(r, ReasonCode::Success);
    assert_eq!(
        m.subscribe(&["secret/#", "ok/#"]),
        vec![ReasonCode::NotAuthorized, ReasonCode::Success]
    );
}

#[test]
fn bad_password_is_refused() {
    for s in servers(USERS) {
        let (mut m, r) = Mq::login(
            s.mqtt,
            &Login {
                id: "bad",
                user: Some("dev"),
                pass: Some("wrong"),
                ..Login::default()
            },
        );
        assert_eq!(r, ReasonCode::NotAuthorized, "{}: CONNACK 0x05", s.name);
        assert!(m.closed(Duration::from_secs(5)).0, "{}", s.name);
        let (_, r) = Mq::login(
            s.mqtt,
            &Login {
                id: "anon",
                ..Login::default()
            },
        );
        assert_eq!(r, ReasonCode::NotAuthorized, "{}: no credentials", s.name);
    }
    let s = natrix(USERS);
    let (_, r) = Mq::login(
        s.mqtt,
        &Login {
            version: V5,
            id: "bad5",
            user: Some("dev"),
            pass: Some("wrong"),
            ..Login::default()
        },
    );
    assert_eq!(r, ReasonCode::NotAuthorized, "5.0: 0x87");
}

#[test]
fn token_as_password() {
    for s in servers("authorization { token: s3cr3t }\n") {
        let (mut m, r) = Mq::login(
            s.mqtt,
            &Login {
                id: "tok",
                user: Some("anyone"),
                pass: Some("s3cr3t"),
                ..Login::default()
            },
        );
        assert_eq!(r, ReasonCode::Success, "{}", s.name);
        assert!(m.ping());
        let (_, r) = Mq::login(
            s.mqtt,
            &Login {
                id: "tok2",
                user: Some("anyone"),
                pass: Some("nope"),
                ..Login::default()
            },
        );
        assert_eq!(r, ReasonCode::NotAuthorized, "{}", s.name);
    }
}

#[test]
fn will_on_a_dropped_socket_not_on_disconnect() {
    for s in servers("") {
        let mut n = nats(&s);
        n.send("SUB will.> 1\r\n");
        n.sync();
        // DISCONNECT: no will.
        let (mut m, r) = Mq::login(
            s.mqtt,
            &Login {
                id: "polite",
                will: Some(("will/polite", "bye")),
                ..Login::default()
            },
        );
        assert_eq!(r, ReasonCode::Success);
        m.send(&Packet::Disconnect(natrix_mqtt::Disconnect::default()));
        assert!(m.closed(Duration::from_secs(5)).0, "{}", s.name);
        // A dropped socket: the will.
        let (m, r) = Mq::login(
            s.mqtt,
            &Login {
                id: "rude",
                will: Some(("will/rude", "gone")),
                ..Login::default()
            },
        );
        assert_eq!(r, ReasonCode::Success);
        let _ = m.s.shutdown(Shutdown::Both);
        drop(m);
        let got = nats_msgs(&read_until(&mut n, "gone", Duration::from_secs(5)));
        assert_eq!(got, vec!["will.rude gone"], "{}", s.name);
    }
}

#[test]
fn second_connect_closes() {
    for s in servers("") {
        let mut m = Mq::connect(s.mqtt, V3, "twice");
        m.send(&Packet::Connect(Box::new(Connect {
            protocol_version: V3,
            clean_start: true,
            keep_alive: 60,
            client_id: mstr("twice"),
            will: None,
            username: None,
            password: None,
            properties: Properties::default(),
        })));
        let (closed, seen) = m.closed(Duration::from_secs(5));
        assert!(closed, "{}", s.name);
        assert!(
            seen.is_empty(),
            "{}: 3.1.1 closes without a reply: {seen:?}",
            s.name
        );
    }
    let s = natrix("");
    let mut m = Mq::connect(s.mqtt, V5, "twice5");
    m.send(&Packet::Connect(Box::new(Connect {
        protocol_version: V5,
        clean_start: true,
        keep_alive: 60,
        client_id: mstr("twice5"),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    })));
    let (closed, seen) = m.closed(Duration::from_secs(5));
    assert!(closed);
    assert!(
        matches!(&seen[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::ProtocolError),
        "{seen:?}"
    );
}

#[test]
fn keep_alive_timeout_closes() {
    for s in servers("") {
        let (mut m, r) = Mq::login(
            s.mqtt,
            &Login {
                id: "sleepy",
                keep_alive: 1,
                ..Login::default()
            },
        );
        assert_eq!(r, ReasonCode::Success);
        let t = Instant::now();
        let (closed, _) = m.closed(Duration::from_secs(5));
        let took = t.elapsed();
        assert!(closed, "{}", s.name);
        assert!(
            took >= Duration::from_millis(1000) && took < Duration::from_millis(3500),
            "{}: closed after {took:?} (1.5 x keep-alive)",
            s.name
        );
        // PINGREQs keep a connection alive.
        let (mut m, _) = Mq::login(
            s.mqtt,
            &Login {
                id: "awake",
                keep_alive: 1,
                ..Login::default()
            },
        );
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(500));
            assert!(m.ping(), "{}: alive with pings", s.name);
        }
    }
}

#[test]
fn malformed_packet_closes_only_that_connection() {
    for s in servers("") {
        let mut good = Mq::connect(s.mqtt, V3, "good");
        assert_eq!(good.subscribe(&["t"]), vec![ReasonCode::Success]);
        let mut bad = Mq::connect(s.mqtt, V3, "bad");
        // PUBLISH with QoS 3.
        bad.s
            .write_all(&[0x36, 0x03, 0x00, 0x01, b't'])
            .expect("write");
        assert!(bad.closed(Duration::from_secs(5)).0, "{}", s.name);
        // Not MQTT at all, as the first packet.
        let mut junk = Mq::raw(s.mqtt, V3);
        junk.s.write_all(b"GET / HTTP/1.1\r\n\r\n").expect("write");
        assert!(junk.closed(Duration::from_secs(5)).0, "{}", s.name);
        // A first packet that is not CONNECT.
        let mut early = Mq::raw(s.mqtt, V3);
        early.send(&Packet::PingReq);
        assert!(early.closed(Duration::from_secs(5)).0, "{}", s.name);
        let mut n = nats(&s);
        n.send("PUB t 2\r\nok\r\n");
        n.sync();
        assert_eq!(good.messages(QUIET), vec!["t ok"], "{}", s.name);
    }
}

#[test]
fn qos_above_0_is_refused_for_now() {
    let s = natrix("");
    let mut m = Mq::connect(s.mqtt, V5, "q1");
    m.send(&Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtLeastOnce,
        retain: false,
        topic: mstr("q/1"),
        packet_id: 1,
        properties: Properties::default(),
        payload: Bytes::from_static(b"x"),
    }));
    let (closed, seen) = m.closed(Duration::from_secs(5));
    assert!(closed);
    assert!(
        matches!(&seen[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::QoSNotSupported),
        "{seen:?}"
    );
    // A QoS 1 subscription is granted at QoS 0.
    let mut m = Mq::connect(s.mqtt, V3, "q1sub");
    m.send(&Packet::Subscribe(Subscribe {
        packet_id: 3,
        filters: vec![SubscribeFilter {
            filter: mstr("q/#"),
            options: SubscriptionOptions {
                qos: QoS::AtLeastOnce,
                ..SubscriptionOptions::default()
            },
        }],
        properties: Properties::default(),
    }));
    assert!(
        matches!(m.recv(Duration::from_secs(5)), Some(Packet::SubAck(a)) if a.reasons == vec![ReasonCode::GRANTED_QOS0])
    );
}

#[test]
fn v5_connack_says_what_is_supported() {
    let s = natrix("");
    let mut m = Mq::raw(s.mqtt, V5);
    m.send(&Packet::Connect(Box::new(Connect {
        protocol_version: V5,
        clean_start: true,
        keep_alive: 30,
        client_id: mstr(""),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    })));
    let Some(Packet::ConnAck(a)) = m.recv(Duration::from_secs(5)) else {
        panic!("CONNACK")
    };
    assert_eq!(a.reason, ReasonCode::Success);
    assert_eq!(a.properties.maximum_qos, Some(0));
    assert_eq!(a.properties.retain_available, Some(0));
    assert!(
        a.properties
            .assigned_client_identifier
            .is_some_and(|id| !id.is_empty())
    );
}

#[test]
fn monitoring_lists_mqtt_connections() {
    for s in servers("") {
        let mut m = Mq::connect(s.mqtt, V3, "monitored-1");
        assert!(m.ping());
        let http = s.p.http_port.expect("monitor port");
        let connz = common::http_get(http, "/connz").json();
        let conns = connz["connections"].as_array().cloned().unwrap_or_default();
        assert!(
            conns.iter().any(|c| c["mqtt_client"] == "monitored-1"),
            "{}: {connz:#}",
            s.name
        );
        let varz = common::http_get(http, "/varz").json();
        assert_eq!(
            varz["mqtt"]["port"], s.mqtt,
            "{}: {:#}",
            s.name, varz["mqtt"]
        );
        assert_eq!(varz["mqtt"]["host"], "127.0.0.1", "{}", s.name);
    }
}

#[test]
fn unsupported_mqtt_options_refuse_to_start() {
    for conf in [
        "mqtt { port: -1, authorization { username: u, password: p } }\n",
        "mqtt { port: -1, no_auth_user: u }\nauthorization { users: [{user: u, password: p}] }\n",
    ] {
        let err = common::startup_error(Path::new(NATRIX), conf);
        assert!(err.contains("not supported yet"), "{conf}: {err}");
    }
}

#[test]
fn same_client_id_takes_over() {
    for s in servers("") {
        let mut old = Mq::connect(s.mqtt, V3, "same-id");
        assert!(old.ping());
        let mut new = Mq::connect(s.mqtt, V3, "same-id");
        let (closed, seen) = old.closed(Duration::from_secs(5));
        assert!(closed, "{}: the older connection is closed", s.name);
        assert!(seen.is_empty(), "{}: {seen:?}", s.name);
        assert!(new.ping(), "{}: the newer one stays", s.name);
    }
    let s = natrix("");
    let mut old = Mq::connect(s.mqtt, V5, "same5");
    let _new = Mq::connect(s.mqtt, V5, "same5");
    let (closed, seen) = old.closed(Duration::from_secs(5));
    assert!(closed);
    assert!(
        matches!(&seen[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::SessionTakenOver),
        "{seen:?}"
    );
}

#[test]
fn v5_user_properties_are_nats_headers() {
    let s = natrix("");
    let mut n = nats(&s);
    n.send("SUB props.> 1\r\n");
    n.sync();
    let mut m = Mq::connect(s.mqtt, V5, "props");
    assert_eq!(m.subscribe(&["back/#"]), vec![ReasonCode::Success]);
    m.send(&Packet::Publish(Publish {
        dup: false,
        qos: QoS::AtMostOnce,
        retain: false,
        topic: mstr("props/x"),
        packet_id: 0,
        properties: Properties {
            user_properties: vec![(mstr("k"), mstr("v1")), (mstr("k"), mstr("v2"))],
            ..Properties::default()
        },
        payload: Bytes::from_static(b"body"),
    }));
    let got = read_until(&mut n, "body", Duration::from_secs(5));
    assert!(
        got.starts_with("HMSG props.x 1 ") && got.contains("\r\nk: v1\r\nk: v2\r\n\r\nbody"),
        "{got:?}"
    );
    n.send("HPUB back.y 19 21\r\nNATS/1.0\r\nh: hv\r\n\r\nhi\r\n");
    n.sync();
    let p = loop {
        match m.recv(Duration::from_secs(5)) {
            Some(Packet::Publish(p)) => break p,
            Some(_) => {}
            None => panic!("no PUBLISH"),
        }
    };
    assert_eq!(p.topic.as_str(), "back/y");
    assert_eq!(p.properties.user_properties, vec![(mstr("h"), mstr("hv"))]);
    assert_eq!(p.payload.as_ref(), b"hi");
}

#[test]
fn oversized_packets_are_refused() {
    let s = natrix("max_payload: 1024\n");
    for v in [V3, V5] {
        let mut m = Mq::connect(s.mqtt, v, "big");
        // A PUBLISH announcing 1 MiB: refused from its fixed header.
        m.s.write_all(&[0x30, 0x80, 0x80, 0x40]).expect("write");
        let (closed, seen) = m.closed(Duration::from_secs(5));
        assert!(closed, "{v:?}");
        if v == V5 {
            assert!(
                matches!(&seen[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::PacketTooLarge),
                "{seen:?}"
            );
        }
        // Within the packet limit but over max_payload: the core refuses it, and closes.
        let mut m = Mq::connect(s.mqtt, v, "big2");
        m.publish("t", &"x".repeat(2000));
        assert!(m.closed(Duration::from_secs(5)).0, "{v:?}");
    }
}

#[test]
fn wildcards_at_the_first_level_skip_dollar_topics() {
    for s in servers("") {
        let mut m = Mq::connect(s.mqtt, V3, "reserved");
        assert_eq!(
            m.subscribe(&["#", "$foo/#"]),
            vec![ReasonCode::Success; 2],
            "{}",
            s.name
        );
        let mut n = nats(&s);
        n.send("PUB $foo.bar 1\r\nx\r\nPUB plain 1\r\ny\r\n");
        n.sync();
        assert_eq!(
            sorted(m.messages(QUIET)),
            vec!["$foo/bar x", "plain y"],
            "{}",
            s.name
        );
    }
}

#[test]
fn no_auth_user_logs_in_anonymous_mqtt_clients() {
    let conf = r#"
authorization {
  users: [
    { user: guest, password: guestpass, permissions: { subscribe: { deny: "private.>" } } }
  ]
}
no_auth_user: guest
"#;
    for s in servers(conf) {
        let (mut m, r) = Mq::login(
            s.mqtt,
            &Login {
                id: "anon",
                ..Login::default()
            },
        );
        assert_eq!(r, ReasonCode::Success, "{}", s.name);
        // The guest's permissions apply.
        let reasons = m.subscribe(&["public/x", "private/x"]);
        assert_eq!(reasons[0], ReasonCode::Success, "{}", s.name);
        assert!(reasons[1].is_error(), "{}: {reasons:?}", s.name);
    }
}

#[test]
fn a_client_that_does_not_read_is_closed_after_the_write_deadline() {
    let s = natrix("write_deadline: \"1s\"\n");
    let mut m = Mq::connect(s.mqtt, V3, "deaf");
    assert_eq!(m.subscribe(&["flood"]), vec![ReasonCode::Success]);
    let mut n = nats(&s);
    let body = "x".repeat(60_000);
    // More than the socket buffers of both ends hold.
    for _ in 0..600 {
        n.send(&format!("PUB flood {}\r\n{body}\r\n", body.len()));
    }
    n.sync();
    // Not reading for longer than the deadline, then reading: the stream ends.
    std::thread::sleep(Duration::from_millis(2500));
    let deadline = Instant::now() + Duration::from_secs(20);
    let mut closed = false;
    let mut chunk = vec![0u8; 1 << 16];
    let _ = m.s.set_read_timeout(Some(Duration::from_secs(2)));
    while Instant::now() < deadline {
        match m.s.read(&mut chunk) {
            Ok(0) | Err(_) => {
                closed = true;
                break;
            }
            Ok(_) => {}
        }
    }
    assert!(closed, "a slow MQTT consumer is closed");
    assert!(
        s.p.log_text().contains("slow consumer"),
        "{}",
        s.p.log_text()
    );
}
