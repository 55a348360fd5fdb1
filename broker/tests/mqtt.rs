//! MQTT clients (`mqtt {}`) against natrix-server and, for every MQTT 3.1.1 scenario, the
//! reference nats-server with the same outcome asserted: real clients (`mosquitto_pub`/
//! `mosquitto_sub` in 3.1.1 and 5.0, over TLS too; paho-mqtt; mqtt.js) and a small client
//! on `natrix_mqtt`'s codec for exact packets, meeting NATS clients on the mapped subjects.
//! Each scenario starts from the steps `Srv` names once (`client`, `login`, `refused`,
//! `session`, `subscriber`, `nats_sub`, ...), so a test reads as what it checks.
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
    bin: PathBuf,
    conf: String,
}

impl Srv {
    /// Stops the server and starts it again on the same store and MQTT port. natrix is
    /// killed (SIGKILL: what it acknowledged is on disk); nats-server is stopped with
    /// SIGTERM, since at its defaults it syncs its store every 2 minutes and a SIGKILL may
    /// lose what it acknowledged (a known difference, docs/compatibility.md).
    fn restart(&mut self) {
        if self.name == "natrix" {
            let _ = self.p.child.kill();
        } else {
            let _ = Command::new("kill")
                .args(["-TERM", &self.p.child.id().to_string()])
                .status();
        }
        let _ = self.p.child.wait();
        self.p = start(&self.bin, &self.conf, true);
    }
}

/// natrix, and nats-server when installed (it needs a server name and JetStream for MQTT).
fn servers(extra: &str) -> Vec<Srv> {
    servers_with(extra, "")
}

/// Both servers, with `mqtt_extra` inside their `mqtt {}` block.
fn servers_with(extra: &str, mqtt_extra: &str) -> Vec<Srv> {
    let mut out = vec![server_with("natrix", Path::new(NATRIX), extra, mqtt_extra)];
    if let Some(r) = common::reference_binary() {
        out.push(server_with("nats-server", &r, extra, mqtt_extra));
    }
    out
}

fn server(name: &'static str, bin: &Path, extra: &str) -> Srv {
    server_with(name, bin, extra, "")
}

fn server_with(name: &'static str, bin: &Path, extra: &str, mqtt_extra: &str) -> Srv {
    let store = tempfile::tempdir().expect("store dir");
    let mqtt = free_port();
    let conf = format!(
        "server_name: mqtt_test\njetstream {{ store_dir: {:?} }}\nmqtt {{ host: 127.0.0.1, port: {mqtt}, {mqtt_extra} }}\n{extra}",
        store.path().display().to_string()
    );
    let p = start(bin, &conf, true);
    Srv {
        name,
        p,
        mqtt,
        _store: store,
        bin: bin.to_path_buf(),
        conf,
    }
}

fn natrix(extra: &str) -> Srv {
    server("natrix", Path::new(NATRIX), extra)
}

/// natrix with `mqtt_extra` inside its `mqtt {}` block.
fn natrix_with_mqtt(mqtt_extra: &str) -> Srv {
    server_with("natrix", Path::new(NATRIX), "", mqtt_extra)
}

/// The steps every scenario starts with, named once: clients of this server that must
/// get in, and NATS subscribers that are in place before anything is published. Each
/// failure names the server.
impl Srv {
    /// An MQTT client logged in with `l`; the login must be accepted.
    fn login(&self, l: &Login<'_>) -> Mq {
        let (m, a) = Mq::login_ack(self.mqtt, l);
        assert_eq!(a.reason, ReasonCode::Success, "{}: CONNACK", self.name);
        m
    }

    /// A clean-session client `id` without credentials.
    fn client(&self, version: ProtocolVersion, id: &str) -> Mq {
        self.login(&Login {
            version,
            id,
            ..Login::default()
        })
    }

    /// A clean-session client `id` subscribed at QoS 0 to `filters`, every one granted.
    fn subscriber(&self, version: ProtocolVersion, id: &str, filters: &[&str]) -> Mq {
        let mut m = self.client(version, id);
        let reasons = m.subscribe(filters);
        assert_eq!(
            reasons,
            vec![ReasonCode::GRANTED_QOS0; filters.len()],
            "{}: SUBACK",
            self.name
        );
        m
    }

    /// A login that must be refused: the connection and the CONNACK's reason.
    fn refused(&self, l: &Login<'_>) -> (Mq, ReasonCode) {
        let (m, reason) = Mq::login(self.mqtt, l);
        assert_ne!(reason, ReasonCode::Success, "{}: accepted", self.name);
        (m, reason)
    }

    /// A login with these credentials is refused: CONNACK "not authorised" (3.1.1 0x05)
    /// and the connection closed; on natrix the 5.0 login too (0x87).
    fn refuses_login(&self, id: &str, user: Option<&str>, pass: Option<&str>) {
        let (mut m, r) = self.refused(&Login {
            id,
            user,
            pass,
            ..Login::default()
        });
        assert_eq!(r, ReasonCode::NotAuthorized, "{}: {id}", self.name);
        assert!(m.closed(Duration::from_secs(5)).0, "{}: {id}", self.name);
        // The refusal ends the session cleanly (it once panicked after the CONNACK).
        assert!(
            !self.p.log_text().contains("panicked"),
            "{}: {}",
            self.name,
            self.p.log_text()
        );
        if self.name == "natrix" {
            let (_, r) = self.refused(&Login {
                version: V5,
                id,
                user,
                pass,
                ..Login::default()
            });
            assert_eq!(r, ReasonCode::NotAuthorized, "{id}: 5.0 0x87");
        }
    }

    /// A persistent session `id`: Clean Session 0 (3.1.1) / Clean Start 0 with an hour's
    /// Session Expiry Interval (5.0); returns CONNACK's Session Present.
    fn session(&self, version: ProtocolVersion, id: &str) -> (Mq, bool) {
        self.session_for(version, id, 3600)
    }

    /// [`Srv::session`] with a 5.0 Session Expiry Interval of `expiry` seconds.
    fn session_for(&self, version: ProtocolVersion, id: &str, expiry: u32) -> (Mq, bool) {
        let mut properties = Properties::default();
        if version == V5 {
            properties.session_expiry_interval = Some(expiry);
        }
        let (m, a) = Mq::login_ack(
            self.mqtt,
            &Login {
                version,
                id,
                clean: false,
                properties,
                ..Login::default()
            },
        );
        assert_eq!(a.reason, ReasonCode::Success, "{}: CONNACK", self.name);
        (m, a.session_present)
    }

    /// `count` messages on `subject` from a NATS client, payloads `0`, `1`, ..., synced.
    fn nats_publish_numbered(&self, subject: &str, count: usize) {
        let mut p = nats(self);
        for i in 0..count {
            p.send(&format!("PUB {subject} {}\r\n{i}\r\n", i.to_string().len()));
        }
        p.sync();
    }

    /// A NATS client whose CONNECT (with `fields` added to its JSON) is refused.
    fn nats_refused(&self, fields: &str) {
        let mut c = Raw::connect(self.p.port);
        c.send(&format!(
            "CONNECT {{\"verbose\":false{fields}}}\r\nPING\r\n"
        ));
        let text = c.read_for(QUIET);
        assert!(
            text.contains("Authorization Violation"),
            "{}: {text:?}",
            self.name
        );
    }

    /// A NATS client subscribed to `subjects` (sids 1, 2, ...; `"subject group"` for a
    /// queue subscription), synced.
    fn nats_sub(&self, subjects: &[&str]) -> Raw {
        let mut n = nats(self);
        for (i, subject) in subjects.iter().enumerate() {
            n.send(&format!("SUB {subject} {}\r\n", i + 1));
        }
        n.sync();
        n
    }
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
    will_qos: QoS,
    will_retain: bool,
    /// The will's 5.0 properties (Will Delay Interval, ...).
    will_properties: Properties,
    /// Clean Session (3.1.1) / Clean Start (5.0).
    clean: bool,
    properties: Properties,
}

impl Login<'_> {
    /// The CONNECT packet of this login.
    fn packet(&self) -> Packet {
        Packet::Connect(Box::new(Connect {
            protocol_version: self.version,
            clean_start: self.clean,
            keep_alive: self.keep_alive,
            client_id: mstr(self.id),
            will: self.will.map(|(t, p)| LastWill {
                topic: mstr(t),
                payload: Bytes::copy_from_slice(p.as_bytes()),
                qos: self.will_qos,
                retain: self.will_retain,
                properties: self.will_properties.clone(),
            }),
            username: self.user.map(mstr),
            password: self.pass.map(|p| Bytes::copy_from_slice(p.as_bytes())),
            properties: self.properties.clone(),
        }))
    }
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
            will_qos: QoS::AtMostOnce,
            will_retain: false,
            will_properties: Properties::default(),
            clean: true,
            properties: Properties::default(),
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
        let (m, a) = Self::login_ack(port, l);
        (m, a.reason)
    }

    /// Connects and returns the CONNACK.
    fn login_ack(port: u16, l: &Login<'_>) -> (Self, natrix_mqtt::ConnAck) {
        let mut m = Self::raw(port, l.version);
        m.send(&l.packet());
        // Generous: right after a restart the session lookup waits for JetStream to
        // recover its streams, which takes seconds on a loaded 2-core machine.
        match m.recv(Duration::from_secs(30)) {
            Some(Packet::ConnAck(a)) => (m, a),
            other => panic!("expected CONNACK, got {other:?}"),
        }
    }

    /// A normal DISCONNECT, then waits for the server to close the connection.
    fn disconnect(mut self) {
        self.send(&Packet::Disconnect(natrix_mqtt::Disconnect {
            reason: ReasonCode::Success,
            properties: Properties::default(),
        }));
        let _ = self.closed(Duration::from_secs(5));
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
    fn start(port: u16, v: ProtocolVersion, filter: &str, probe: impl FnMut()) -> Self {
        Self::start_with(port, v, filter, &[], probe)
    }

    /// [`MosqSub::start`] with more arguments (TLS files, user name and password).
    fn start_with(
        port: u16,
        v: ProtocolVersion,
        filter: &str,
        extra: &[&str],
        mut probe: impl FnMut(),
    ) -> Self {
        let mut child = Command::new(mosquitto())
            .args(["-h", "127.0.0.1", "-p", &port.to_string()])
            .args(["-V", version_flag(v), "-t", filter, "-v"])
            .args(extra)
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
    mosquitto_pub_output(port, v, topic, msg, extra).0
}

/// `mosquitto_pub`'s success and what it wrote on stderr (why a connection was refused).
fn mosquitto_pub_output(
    port: u16,
    v: ProtocolVersion,
    topic: &str,
    msg: &str,
    extra: &[&str],
) -> (bool, String) {
    let out = Command::new("mosquitto_pub")
        .args(["-h", "127.0.0.1", "-p", &port.to_string()])
        .args(["-V", version_flag(v), "-t", topic, "-m", msg])
        .args(extra)
        .stdout(Stdio::null())
        .output()
        .expect("mosquitto_pub");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
    )
}

fn sorted(mut v: Vec<String>) -> Vec<String> {
    v.sort();
    v
}

const QUIET: Duration = Duration::from_millis(400);

#[test]
fn nats_to_mqtt_with_wildcards() {
    for s in servers("") {
        let mut m = s.subscriber(V3, "wild", &["a/+/c", "x/#"]);
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
        let mut n = s.nats_sub(&["sensors.>"]);
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
        let mut m = s.client(V3, "pub");
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
    let mut a = s.client(V3, "w1");
    let mut b = s.client(V5, "w2");
    assert_eq!(a.subscribe(&["$share/g/jobs/+"]), vec![ReasonCode::Success]);
    assert_eq!(b.subscribe(&["$share/g/jobs/+"]), vec![ReasonCode::Success]);
    let mut q = s.nats_sub(&["jobs.* g"]);
    s.nats_publish_numbered("jobs.x", 60);
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
        let mut m = s.login(&Login {
            id: "dev1",
            user: Some("dev"),
            pass: Some("devpass"),
            ..Login::default()
        });
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
    let mut m = s.login(&Login {
        version: V5,
        id: "dev5",
        user: Some("dev"),
        pass: Some("devpass"),
        ..Login::default()
    });
    assert_eq!(
        m.subscribe(&["secret/#", "ok/#"]),
        vec![ReasonCode::NotAuthorized, ReasonCode::Success]
    );
}

#[test]
fn bad_password_is_refused() {
    for s in servers(USERS) {
        s.refuses_login("bad", Some("dev"), Some("wrong"));
        s.refuses_login("anon", None, None);
    }
}

/// The token is given as the password (any user name): the server's own token, and
/// `mqtt { authorization { token } }`, which MQTT clients log in with instead.
#[test]
fn token_as_password() {
    for (top, block) in [
        ("authorization { token: s3cr3t }\n", ""),
        ("", "authorization { token: s3cr3t }"),
    ] {
        for s in servers_with(top, block) {
            let mut m = s.login(&Login {
                id: "tok",
                user: Some("anyone"),
                pass: Some("s3cr3t"),
                ..Login::default()
            });
            assert!(m.ping(), "{}", s.name);
            let (_, r) = s.refused(&Login {
                id: "tok2",
                user: Some("anyone"),
                pass: Some("nope"),
                ..Login::default()
            });
            assert_eq!(r, ReasonCode::NotAuthorized, "{} {top}{block}", s.name);
        }
    }
}

#[test]
fn will_on_a_dropped_socket_not_on_disconnect() {
    for s in servers("") {
        let mut n = s.nats_sub(&["will.>"]);
        // DISCONNECT: no will.
        let mut m = s.login(&Login {
            id: "polite",
            will: Some(("will/polite", "bye")),
            ..Login::default()
        });
        m.send(&Packet::Disconnect(natrix_mqtt::Disconnect::default()));
        assert!(m.closed(Duration::from_secs(5)).0, "{}", s.name);
        // A dropped socket: the will.
        let m = s.login(&Login {
            id: "rude",
            will: Some(("will/rude", "gone")),
            ..Login::default()
        });
        let _ = m.s.shutdown(Shutdown::Both);
        drop(m);
        let got = nats_msgs(&read_until(&mut n, "gone", Duration::from_secs(5)));
        assert_eq!(got, vec!["will.rude gone"], "{}", s.name);
    }
}

#[test]
fn second_connect_closes() {
    for s in servers("") {
        let mut m = s.client(V3, "twice");
        m.send(
            &Login {
                id: "twice",
                ..Login::default()
            }
            .packet(),
        );
        let (closed, seen) = m.closed(Duration::from_secs(5));
        assert!(closed, "{}", s.name);
        assert!(
            seen.is_empty(),
            "{}: 3.1.1 closes without a reply: {seen:?}",
            s.name
        );
    }
    let s = natrix("");
    let mut m = s.client(V5, "twice5");
    m.send(
        &Login {
            version: V5,
            id: "twice5",
            ..Login::default()
        }
        .packet(),
    );
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
        let mut m = s.login(&Login {
            id: "sleepy",
            keep_alive: 1,
            ..Login::default()
        });
        let t = Instant::now();
        let (closed, _) = m.closed(Duration::from_secs(5));
        let took = t.elapsed();
        assert!(closed, "{}", s.name);
        // The clock here starts at CONNACK; a server's starts at CONNECT, which with
        // JetStream-backed sessions can be some time earlier (seen: nats-server closing
        // 999.85 ms after its CONNACK).
        assert!(
            took >= Duration::from_millis(900) && took < Duration::from_millis(3500),
            "{}: closed after {took:?} (1.5 x keep-alive)",
            s.name
        );
        // PINGREQs keep a connection alive.
        let mut m = s.login(&Login {
            id: "awake",
            keep_alive: 1,
            ..Login::default()
        });
        for _ in 0..4 {
            std::thread::sleep(Duration::from_millis(500));
            assert!(m.ping(), "{}: alive with pings", s.name);
        }
    }
}

#[test]
fn malformed_packet_closes_only_that_connection() {
    for s in servers("") {
        let mut good = s.subscriber(V3, "good", &["t"]);
        let mut bad = s.client(V3, "bad");
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

/// natrix with an MQTT listener and no JetStream: QoS 0 only.
fn natrix_without_jetstream() -> Srv {
    let store = tempfile::tempdir().expect("store dir");
    let mqtt = free_port();
    let conf = format!("mqtt {{ host: 127.0.0.1, port: {mqtt} }}\n");
    let p = start(Path::new(NATRIX), &conf, true);
    Srv {
        name: "natrix",
        p,
        mqtt,
        _store: store,
        bin: PathBuf::from(NATRIX),
        conf,
    }
}

#[test]
fn qos_above_0_is_refused_without_jetstream() {
    let s = natrix_without_jetstream();
    let mut m = s.client(V5, "q1");
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
    let mut m = s.client(V3, "q1sub");
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
fn v5_connack_says_what_is_supported_without_jetstream() {
    let s = natrix_without_jetstream();
    let (_m, a) = Mq::login_ack(
        s.mqtt,
        &Login {
            version: V5,
            ..Login::default()
        },
    );
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
        let mut m = s.client(V3, "monitored-1");
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
fn same_client_id_takes_over() {
    for s in servers("") {
        let mut old = s.client(V3, "same-id");
        assert!(old.ping());
        let mut new = s.client(V3, "same-id");
        let (closed, seen) = old.closed(Duration::from_secs(5));
        assert!(closed, "{}: the older connection is closed", s.name);
        assert!(seen.is_empty(), "{}: {seen:?}", s.name);
        assert!(new.ping(), "{}: the newer one stays", s.name);
    }
    let s = natrix("");
    let mut old = s.client(V5, "same5");
    let _new = s.client(V5, "same5");
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
    let mut n = s.nats_sub(&["props.>"]);
    let mut m = s.subscriber(V5, "props", &["back/#"]);
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
        let mut m = s.client(v, "big");
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
        let mut m = s.client(v, "big2");
        m.publish("t", &"x".repeat(2000));
        assert!(m.closed(Duration::from_secs(5)).0, "{v:?}");
    }
}

#[test]
fn wildcards_at_the_first_level_skip_dollar_topics() {
    for s in servers("") {
        let mut m = s.subscriber(V3, "reserved", &["#", "$foo/#"]);
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
        let mut m = s.login(&Login {
            id: "anon",
            ..Login::default()
        });
        // The guest's permissions apply.
        let reasons = m.subscribe(&["public/x", "private/x"]);
        assert_eq!(reasons[0], ReasonCode::Success, "{}", s.name);
        assert!(reasons[1].is_error(), "{}: {reasons:?}", s.name);
    }
}

#[test]
fn a_client_that_does_not_read_is_closed_after_the_write_deadline() {
    let s = natrix("write_deadline: \"1s\"\n");
    let mut m = s.subscriber(V3, "deaf", &["flood"]);
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

// ---- QoS 1 and 2, retained messages, persistent sessions (state in JetStream) ----

/// ack_wait short enough for redelivery tests, on both servers.
const ACK_WAIT: &str = "ack_wait: \"1s\"";

impl Mq {
    fn subscribe_qos(&mut self, filter: &str, qos: QoS) -> Vec<ReasonCode> {
        self.send(&Packet::Subscribe(Subscribe {
            packet_id: 8,
            filters: vec![SubscribeFilter {
                filter: mstr(filter),
                options: SubscriptionOptions {
                    qos,
                    ..SubscriptionOptions::default()
                },
            }],
            properties: Properties::default(),
        }));
        loop {
            match self.recv(Duration::from_secs(10)) {
                Some(Packet::SubAck(a)) => return a.reasons,
                Some(Packet::Publish(p)) => self.held.push(describe(&p)),
                other => panic!("expected SUBACK, got {other:?}"),
            }
        }
    }

    /// UNSUBSCRIBE `filters`; the UNSUBACK's reasons (none in 3.1.1).
    fn unsubscribe(&mut self, filters: &[&str]) -> Vec<ReasonCode> {
        self.send(&Packet::Unsubscribe(natrix_mqtt::Unsubscribe {
            packet_id: 9,
            filters: filters.iter().map(|f| mstr(f)).collect(),
            properties: Properties::default(),
        }));
        match self.next_control(Duration::from_secs(10)) {
            Some(Packet::UnsubAck(a)) if a.packet_id == 9 => a.reasons,
            other => panic!("expected UNSUBACK, got {other:?}"),
        }
    }

    /// SUBSCRIBE `filter` at `qos`, which must be granted as asked.
    fn subscribe_granted(&mut self, filter: &str, qos: QoS) {
        let granted = self.subscribe_qos(filter, qos);
        let want = match qos {
            QoS::AtMostOnce => ReasonCode::GRANTED_QOS0,
            QoS::AtLeastOnce => ReasonCode::GrantedQoS1,
            QoS::ExactlyOnce => ReasonCode::GrantedQoS2,
        };
        assert_eq!(granted, vec![want], "SUBACK for {filter}");
    }

    fn publish_with(&mut self, topic: &str, payload: &str, qos: QoS, pid: u16, retain: bool) {
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos,
            retain,
            topic: mstr(topic),
            packet_id: pid,
            properties: Properties::default(),
            payload: Bytes::copy_from_slice(payload.as_bytes()),
        }));
    }

    /// The next packet that is not a PUBLISH (those are kept for `messages`).
    fn next_control(&mut self, within: Duration) -> Option<Packet> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            match self.recv(left)? {
                Packet::Publish(p) => self.held.push(describe(&p)),
                other => return Some(other),
            }
        }
    }

    /// QoS 1 PUBLISH, then its PUBACK.
    fn publish_qos1(&mut self, topic: &str, payload: &str, pid: u16, retain: bool) {
        self.publish_with(topic, payload, QoS::AtLeastOnce, pid, retain);
        match self.next_control(Duration::from_secs(10)) {
            Some(Packet::PubAck(a)) => assert_eq!(a.packet_id, pid),
            other => panic!("expected PUBACK {pid}, got {other:?}"),
        }
    }

    /// The next PUBLISH within `within`.
    fn next_publish(&mut self, within: Duration) -> Option<Publish> {
        let deadline = Instant::now() + within;
        loop {
            let left = deadline.checked_duration_since(Instant::now())?;
            if let Packet::Publish(p) = self.recv(left)? {
                return Some(p);
            }
        }
    }

    /// Nothing arrives for longer than the tests' 1 s `ack_wait`: what was acknowledged
    /// is not redelivered.
    fn no_redelivery(&mut self, name: &str) {
        let late = self.messages(Duration::from_millis(2500));
        assert!(late.is_empty(), "{name}: redelivered {late:?}");
    }

    fn puback(&mut self, pid: u16) {
        self.send(&Packet::PubAck(natrix_mqtt::PubResponse::new(pid)));
    }

    fn pubrec(&mut self, pid: u16) {
        self.send(&Packet::PubRec(natrix_mqtt::PubResponse::new(pid)));
    }

    fn pubrel(&mut self, pid: u16) {
        self.send(&Packet::PubRel(natrix_mqtt::PubResponse::new(pid)));
    }

    fn pubcomp(&mut self, pid: u16) {
        self.send(&Packet::PubComp(natrix_mqtt::PubResponse::new(pid)));
    }

    /// The next acknowledgement within 5 s, as its name and packet identifier
    /// (`("PUBREC", 4)`); PUBLISHes meanwhile are kept for `messages`.
    fn next_ack(&mut self) -> Option<(&'static str, u16)> {
        match self.next_control(Duration::from_secs(5))? {
            Packet::PubAck(a) => Some(("PUBACK", a.packet_id)),
            Packet::PubRec(a) => Some(("PUBREC", a.packet_id)),
            Packet::PubRel(a) => Some(("PUBREL", a.packet_id)),
            Packet::PubComp(a) => Some(("PUBCOMP", a.packet_id)),
            other => panic!("expected an acknowledgement, got {other:?}"),
        }
    }

    /// Drops the TCP connection without DISCONNECT, as a killed client does.
    fn kill(self) {
        let _ = self.s.shutdown(Shutdown::Both);
    }
}

#[test]
fn qos1_publish_is_acked_and_reaches_nats_and_qos1_subscribers() {
    for s in servers("") {
        let mut n = s.nats_sub(&["q1.>"]);
        let mut sub = s.client(V3, "q1sub");
        sub.subscribe_granted("q1/#", QoS::AtLeastOnce);
        let mut p = s.client(V3, "q1pub");
        p.publish_qos1("q1/a", "one", 9, false);
        let got = read_until(&mut n, "one", Duration::from_secs(5));
        assert_eq!(nats_msgs(&got), vec!["q1.a one"], "{}", s.name);
        // nats-server marks what MQTT clients publish with its QoS.
        assert!(got.contains("Nmqtt-Pub"), "{}: {got:?}", s.name);
        let m = sub
            .next_publish(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{}: no delivery", s.name));
        assert_eq!(
            (m.qos, describe(&m)),
            (QoS::AtLeastOnce, "q1/a one".to_owned()),
            "{}",
            s.name
        );
        assert_ne!(m.packet_id, 0);
        sub.puback(m.packet_id);
        // Once, not also as QoS 0 through the plain subscription.
        assert!(sub.messages(QUIET).is_empty(), "{}", s.name);
        // A NATS publish reaches the QoS 1 subscription too.
        n.send("PUB q1.b 3\r\ntwo\r\n");
        n.sync();
        assert_eq!(sub.messages(QUIET), vec!["q1/b two"], "{}", s.name);
    }
}

#[test]
fn qos1_redelivered_after_the_client_is_killed() {
    for s in servers_with("", ACK_WAIT) {
        let (mut sub, present) = s.session(V3, "r1");
        assert!(!present, "{}", s.name);
        sub.subscribe_granted("r1/#", QoS::AtLeastOnce);
        let mut p = s.client(V3, "r1pub");
        p.publish_qos1("r1/x", "keep", 1, false);
        let first = sub.next_publish(Duration::from_secs(5)).expect("delivery");
        assert!(!first.dup);
        // Killed before its PUBACK.
        sub.kill();
        let (mut again, present) = s.session(V3, "r1");
        assert!(present, "{}: session present", s.name);
        let m = again
            .next_publish(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{}: not redelivered", s.name));
        assert_eq!(describe(&m), "r1/x keep", "{}", s.name);
        assert!(m.dup, "{}: DUP on redelivery (3.3.1-1)", s.name);
        again.puback(m.packet_id);
        // Acked: no more redeliveries after ack_wait.
        again.no_redelivery(s.name);
    }
}

#[test]
fn qos2_exactly_once_both_ways_and_redelivery() {
    for s in servers_with("", ACK_WAIT) {
        let mut n = s.nats_sub(&["q2.>"]);
        let (mut sub, _) = s.session(V3, "q2sub");
        sub.subscribe_granted("q2/#", QoS::ExactlyOnce);
        let mut p = s.client(V3, "q2pub");
        // Sent twice before PUBREL (a resend): released once.
        p.publish_with("q2/a", "once", QoS::ExactlyOnce, 4, false);
        assert_eq!(p.next_ack(), Some(("PUBREC", 4)));
        p.publish_with("q2/a", "once", QoS::ExactlyOnce, 4, false);
        assert_eq!(p.next_ack(), Some(("PUBREC", 4)));
        p.pubrel(4);
        assert_eq!(p.next_ack(), Some(("PUBCOMP", 4)));
        assert_eq!(
            nats_msgs(&read_until(&mut n, "once", Duration::from_secs(5))),
            vec!["q2.a once"],
            "{}",
            s.name
        );
        assert!(
            nats_msgs(&n.read_for(QUIET)).is_empty(),
            "{}: released once",
            s.name
        );
        let m = sub.next_publish(Duration::from_secs(5)).expect("delivery");
        assert_eq!(
            (m.qos, describe(&m)),
            (QoS::ExactlyOnce, "q2/a once".to_owned()),
            "{}",
            s.name
        );
        // Killed before PUBREC: redelivered to the resumed session.
        sub.kill();
        let (mut again, present) = s.session(V3, "q2sub");
        assert!(present, "{}", s.name);
        let m = again
            .next_publish(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{}: not redelivered", s.name));
        assert_eq!(
            (m.qos, m.dup, describe(&m)),
            (QoS::ExactlyOnce, true, "q2/a once".to_owned()),
            "{}",
            s.name
        );
        again.pubrec(m.packet_id);
        assert_eq!(
            again.next_ack(),
            Some(("PUBREL", m.packet_id)),
            "{}: PUBREL",
            s.name
        );
        again.pubcomp(m.packet_id);
        again.no_redelivery(s.name);
    }
}

#[test]
fn persistent_session_survives_a_server_restart() {
    for mut s in servers("") {
        let (mut sub, _) = s.session(V3, "durable1");
        sub.subscribe_granted("ps/#", QoS::AtLeastOnce);
        sub.disconnect();
        // Queued while the client is offline.
        let mut p = s.client(V3, "pspub");
        p.publish_qos1("ps/1", "queued", 2, false);
        drop(p);
        s.restart();
        let (mut again, present) = s.session(V3, "durable1");
        assert!(present, "{}: session present after restart", s.name);
        let m = again
            .next_publish(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("{}: queued message lost", s.name));
        assert_eq!(describe(&m), "ps/1 queued", "{}", s.name);
        again.puback(m.packet_id);
        // The subscription itself was restored.
        let mut n = nats(&s);
        n.send("PUB ps.2 5\r\nlater\r\n");
        n.sync();
        assert_eq!(
            again.messages(Duration::from_secs(1)),
            vec!["ps/2 later"],
            "{}",
            s.name
        );
        // A clean session drops it. Each client says DISCONNECT before the next takes its
        // ID: a socket merely dropped may still hold the ID when the next CONNECT comes,
        // and nats-server then closes the newcomer under load ("unable to connect").
        again.disconnect();
        let (m, a) = Mq::login_ack(
            s.mqtt,
            &Login {
                id: "durable1",
                ..Login::default()
            },
        );
        assert!(!a.session_present, "{}", s.name);
        m.disconnect();
        let (_m, present) = s.session(V3, "durable1");
        assert!(!present, "{}: clean session removed the stored one", s.name);
    }
}

#[test]
fn retained_messages_set_replace_delete() {
    for s in servers("") {
        let mut p = s.client(V3, "rpub");
        p.publish_qos1("rt/a", "first", 1, true);
        p.publish_qos1("rt/a", "second", 2, true);
        p.publish_qos1("rt/b", "bee", 3, true);
        p.publish_with("rt/c", "zero", QoS::AtMostOnce, 0, true);
        assert!(p.ping());
        let mut sub = s.client(V3, "rsub");
        let mut got = Vec::new();
        sub.subscribe_qos("rt/#", QoS::AtLeastOnce);
        while let Some(m) = sub.next_publish(Duration::from_secs(1)) {
            assert!(
                m.retain,
                "{}: retain flag on a retained delivery (3.3.1-8)",
                s.name
            );
            if m.qos != QoS::AtMostOnce {
                sub.puback(m.packet_id);
            }
            got.push(describe(&m));
        }
        assert_eq!(
            sorted(got),
            vec!["rt/a second", "rt/b bee", "rt/c zero"],
            "{}",
            s.name
        );
        // An empty retained payload deletes it (3.3.1-10).
        p.publish_qos1("rt/a", "", 4, true);
        assert!(p.ping());
        let mut late = s.client(V3, "rsub2");
        late.subscribe_qos("rt/+", QoS::AtMostOnce);
        assert_eq!(
            sorted(late.messages(Duration::from_secs(1))),
            vec!["rt/b bee", "rt/c zero"],
            "{}",
            s.name
        );
    }
}

#[test]
fn v5_connack_with_jetstream_allows_qos2_and_retain() {
    let s = natrix("");
    let (_m, a) = Mq::login_ack(
        s.mqtt,
        &Login {
            version: V5,
            id: "caps",
            ..Login::default()
        },
    );
    assert_eq!(a.reason, ReasonCode::Success);
    // 3.2.2.3.4 / 3.2.2.3.5: absent means QoS 2 and retain are available.
    assert_eq!(a.properties.maximum_qos, None);
    assert_eq!(a.properties.retain_available, None);
    // 3.2.2.3.8: the server announces how many topic aliases the client may set.
    assert_eq!(a.properties.topic_alias_maximum, Some(64));
}

#[test]
fn v5_session_expiry_keeps_the_session() {
    let s = natrix("");
    // 3.1.2.11.2: with a Session Expiry Interval the session outlives the connection.
    let (mut m, present) = s.session(V5, "v5keep");
    assert!(!present);
    m.subscribe_granted("v5k/#", QoS::AtLeastOnce);
    m.kill();
    let mut p = s.client(V5, "v5pub");
    p.publish_qos1("v5k/x", "kept", 3, false);
    let (mut again, present) = s.session(V5, "v5keep");
    // 3.2.2-3: Session Present 1 when the server has the session.
    assert!(present);
    // The resumed consumer may take a moment under load: wait for the first message,
    // then make sure nothing else (a duplicate) follows.
    let first = again.next_publish(Duration::from_secs(10));
    assert_eq!(first.map(|m| describe(&m)).as_deref(), Some("v5k/x kept"));
    assert_eq!(
        again.messages(Duration::from_millis(500)),
        Vec::<String>::new()
    );
}

#[test]
fn v5_pubrel_for_an_unknown_packet_id_is_0x92() {
    let s = natrix("");
    let mut m = s.client(V5, "v5rel");
    // 3.7.2.1 / 4.3.3: PUBCOMP reason Packet Identifier not found.
    m.pubrel(77);
    match m.next_control(Duration::from_secs(5)) {
        Some(Packet::PubComp(c)) => {
            assert_eq!(
                (c.packet_id, c.reason),
                (77, ReasonCode::PacketIdentifierNotFound)
            );
        }
        other => panic!("expected PUBCOMP, got {other:?}"),
    }
}

#[test]
fn reject_qos2_pub_and_downgrade_qos2_sub() {
    for s in servers_with(
        "",
        "reject_qos2_publish: true, downgrade_qos2_subscribe: true",
    ) {
        let mut m = s.client(V3, "dq2");
        assert_eq!(
            m.subscribe_qos("dq/#", QoS::ExactlyOnce),
            vec![ReasonCode::GrantedQoS1],
            "{}",
            s.name
        );
        m.publish_with("dq/a", "x", QoS::ExactlyOnce, 1, false);
        let (closed, _) = m.closed(Duration::from_secs(5));
        assert!(closed, "{}: QoS 2 PUBLISH closes the connection", s.name);
    }
}

/// paho-mqtt (Python) with a QoS 1 and a QoS 2 exchange, in 3.1.1 and 5.0.
#[test]
fn paho_mqtt_qos1_and_qos2_both_versions() {
    let Ok(python) = std::env::var("NATRIX_PYTHON") else {
        panic!("NATRIX_PYTHON unset: eval \"$(scripts/deps)\" installs paho-mqtt");
    };
    let script = r#"
import sys, time, threading
import paho.mqtt.client as mqtt
port, proto = int(sys.argv[1]), sys.argv[2]
p = mqtt.MQTTv5 if proto == "5" else mqtt.MQTTv311
got, subscribed = [], threading.Event()
def on_message(c, u, m): got.append(f"{m.topic} {m.payload.decode()} {m.qos}")
def on_subscribe(c, u, mid, rc, props=None): subscribed.set()
sub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-sub-" + proto, protocol=p)
sub.on_message = on_message
sub.on_subscribe = on_subscribe
sub.connect("127.0.0.1", port)
sub.loop_start()
sub.subscribe([("paho/q1", 1), ("paho/q2", 2)])
assert subscribed.wait(10)
pub = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="paho-pub-" + proto, protocol=p)
pub.connect("127.0.0.1", port)
pub.loop_start()
pub.publish("paho/q1", "one", qos=1).wait_for_publish(10)
pub.publish("paho/q2", "two", qos=2).wait_for_publish(10)
deadline = time.time() + 10
while len(got) < 2 and time.time() < deadline: time.sleep(0.05)
time.sleep(0.3)
print("\n".join(sorted(got)))
"#;
    let s = natrix("");
    for proto in ["4", "5"] {
        let out = Command::new(&python)
            .args(["-c", script, &s.mqtt.to_string(), proto])
            .output()
            .expect("python");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert_eq!(
            String::from_utf8_lossy(&out.stdout).trim(),
            "paho/q1 one 1\npaho/q2 two 2",
            "protocol {proto}"
        );
    }
}

#[test]
fn qos1_publish_respects_publish_permissions() {
    for s in servers(USERS) {
        let mut admin = s.login(&Login {
            id: "qadmin",
            user: Some("admin"),
            pass: Some("adminpass"),
            ..Login::default()
        });
        admin.subscribe_granted("#", QoS::AtLeastOnce);
        let mut dev = s.login(&Login {
            id: "qdev",
            user: Some("dev"),
            pass: Some("devpass"),
            ..Login::default()
        });
        dev.publish_with("secret/x", "leak", QoS::AtLeastOnce, 1, false);
        let first = dev.next_control(Duration::from_secs(3));
        dev.publish_qos1("ok/t", "fine", 2, false);
        assert!(dev.ping(), "{}: connection kept", s.name);
        // The refused one is acknowledged (the client does not resend it forever), never
        // delivered, never stored.
        assert!(
            matches!(&first, Some(Packet::PubAck(a)) if a.packet_id == 1),
            "{}: {first:?}",
            s.name
        );
        let mut got = Vec::new();
        while let Some(m) = admin.next_publish(Duration::from_secs(1)) {
            if m.qos != QoS::AtMostOnce {
                admin.puback(m.packet_id);
            }
            got.push(describe(&m));
        }
        assert_eq!(got, vec!["ok/t fine"], "{}", s.name);
    }
}

#[test]
fn subscribing_again_with_another_qos_replaces_the_subscription() {
    for s in servers("") {
        let mut m = s.client(V3, "resub");
        assert_eq!(
            m.subscribe_qos("rs/a", QoS::AtMostOnce),
            vec![ReasonCode::GRANTED_QOS0]
        );
        // 3.8.4-3: the new subscription replaces the existing one, with its QoS.
        m.subscribe_granted("rs/a", QoS::AtLeastOnce);
        let mut p = s.client(V3, "resubpub");
        p.publish_qos1("rs/a", "x", 1, false);
        let got = m.next_publish(Duration::from_secs(5)).expect("delivery");
        assert_eq!(
            (got.qos, describe(&got)),
            (QoS::AtLeastOnce, "rs/a x".to_owned()),
            "{}",
            s.name
        );
        m.puback(got.packet_id);
        assert!(m.messages(QUIET).is_empty(), "{}: once", s.name);
    }
}

// ---- MQTT 5.0: one spec rule per assertion (natrix only: nats-server has no 5.0) ----

impl Mq {
    fn connect_v5(port: u16, id: &str, properties: Properties) -> Self {
        let (m, a) = Self::login_ack(
            port,
            &Login {
                version: V5,
                id,
                properties,
                ..Login::default()
            },
        );
        assert_eq!(a.reason, ReasonCode::Success);
        m
    }

    fn subscribe_with(
        &mut self,
        filter: &str,
        options: SubscriptionOptions,
        id: Option<u32>,
    ) -> Vec<ReasonCode> {
        let properties = Properties {
            subscription_identifiers: id.into_iter().collect(),
            ..Properties::default()
        };
        self.send(&Packet::Subscribe(Subscribe {
            packet_id: 11,
            filters: vec![SubscribeFilter {
                filter: mstr(filter),
                options,
            }],
            properties,
        }));
        match self.next_control(Duration::from_secs(10)) {
            Some(Packet::SubAck(a)) => a.reasons,
            other => panic!("expected SUBACK, got {other:?}"),
        }
    }

    fn publish_props(
        &mut self,
        topic: &str,
        payload: &[u8],
        qos: QoS,
        pid: u16,
        retain: bool,
        properties: Properties,
    ) {
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos,
            retain,
            topic: mstr(topic),
            packet_id: pid,
            properties,
            payload: Bytes::copy_from_slice(payload),
        }));
    }

    /// PUBLISHes (held ones first) until `quiet` passes with none, acking QoS 1.
    fn publishes(&mut self, quiet: Duration) -> Vec<Publish> {
        assert!(self.held.is_empty(), "held: {:?}", self.held);
        let mut out = Vec::new();
        while let Some(p) = self.next_publish(quiet) {
            if p.qos == QoS::AtLeastOnce {
                self.puback(p.packet_id);
            }
            out.push(p);
        }
        out
    }
}

#[test]
fn v5_topic_alias_from_the_client() {
    let s = natrix("");
    let mut sub = s.client(V5, "alias-sub");
    sub.subscribe(&["al/#"]);
    let mut p = s.client(V5, "alias-pub");
    let props = Properties {
        topic_alias: Some(3),
        ..Properties::default()
    };
    p.publish_props("al/x", b"1", QoS::AtMostOnce, 0, false, props.clone());
    // 3.3.2.3.4: an empty topic with a known alias uses the topic it was set for.
    p.publish_props("", b"2", QoS::AtMostOnce, 0, false, props);
    assert!(p.ping());
    assert_eq!(sub.messages(QUIET), vec!["al/x 1", "al/x 2"]);
    // 3.3.2-10: an alias above the Topic Alias Maximum the server sent in CONNACK is a
    // Topic Alias invalid (0x94) DISCONNECT.
    let zero = Properties {
        topic_alias: Some(65),
        ..Properties::default()
    };
    p.publish_props("al/y", b"3", QoS::AtMostOnce, 0, false, zero);
    let (closed, seen) = p.closed(Duration::from_secs(5));
    assert!(closed);
    assert!(
        matches!(&seen[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::TopicAliasInvalid),
        "{seen:?}"
    );
}

#[test]
fn v5_subscription_identifier_is_sent_back() {
    let s = natrix("");
    let mut m = s.client(V5, "subid");
    m.subscribe_with("sid/+", SubscriptionOptions::default(), Some(42));
    let mut n = nats(&s);
    n.send("PUB sid.a 1\r\nx\r\n");
    n.sync();
    let got = m.publishes(QUIET);
    // 3.3.4-3: the PUBLISH carries the matching subscription's identifier.
    assert_eq!(got.len(), 1);
    assert_eq!(got[0].properties.subscription_identifiers, vec![42]);
}

#[test]
fn v5_no_local_skips_the_connections_own_messages() {
    let s = natrix("");
    let mut m = s.client(V5, "nolocal");
    for filter in ["nl/q0", "nl/q1"] {
        let qos = if filter.ends_with('0') {
            QoS::AtMostOnce
        } else {
            QoS::AtLeastOnce
        };
        m.subscribe_with(
            filter,
            SubscriptionOptions {
                qos,
                no_local: true,
                ..SubscriptionOptions::default()
            },
            None,
        );
    }
    m.publish_props(
        "nl/q0",
        b"own",
        QoS::AtMostOnce,
        0,
        false,
        Properties::default(),
    );
    m.publish_qos1("nl/q1", "own", 5, false);
    let mut other = s.client(V5, "nolocal-other");
    other.publish_qos1("nl/q1", "theirs", 6, false);
    other.publish_props(
        "nl/q0",
        b"theirs",
        QoS::AtMostOnce,
        0,
        false,
        Properties::default(),
    );
    assert!(other.ping());
    // 3.8.3-3: messages MUST NOT be forwarded to a connection equal to the publisher's.
    let got: Vec<String> = m
        .publishes(Duration::from_secs(1))
        .iter()
        .map(describe)
        .collect();
    assert_eq!(sorted(got), vec!["nl/q0 theirs", "nl/q1 theirs"]);
}

#[test]
fn v5_retain_as_published_and_retain_handling() {
    let s = natrix("");
    let mut rap = s.client(V5, "rap");
    rap.subscribe_with(
        "rh/a",
        SubscriptionOptions {
            retain_as_published: true,
            ..SubscriptionOptions::default()
        },
        None,
    );
    let mut plain = s.client(V5, "norap");
    plain.subscribe_with("rh/a", SubscriptionOptions::default(), None);
    let mut p = s.client(V5, "rh-pub");
    p.publish_qos1("rh/a", "kept", 1, true);
    // 3.3.1-13: with Retain As Published the retain flag is as published.
    let got = rap.publishes(QUIET);
    assert!(got.len() == 1 && got[0].retain, "{got:?}");
    // 3.3.1-12: without it the flag is 0 on a message sent to an existing subscription.
    let got = plain.publishes(QUIET);
    assert!(got.len() == 1 && !got[0].retain, "{got:?}");
    // Retain Handling (3.3.1-9, 3.3.1-10, 3.3.1-11): 0 sends the retained message at
    // subscribe, 1 only if the subscription is new, 2 never.
    let mut m = s.client(V5, "rh-sub");
    let opts = |h| SubscriptionOptions {
        retain_handling: h,
        ..SubscriptionOptions::default()
    };
    m.subscribe_with("rh/a", opts(natrix_mqtt::RetainHandling::DoNotSend), None);
    assert!(m.publishes(QUIET).is_empty(), "Retain Handling 2");
    m.subscribe_with("rh/a", opts(natrix_mqtt::RetainHandling::SendIfNew), None);
    assert!(
        m.publishes(QUIET).is_empty(),
        "Retain Handling 1 on an existing subscription"
    );
    let got = {
        m.subscribe_with(
            "rh/a",
            opts(natrix_mqtt::RetainHandling::SendAtSubscribe),
            None,
        );
        m.publishes(QUIET)
    };
    assert!(
        got.len() == 1 && got[0].retain,
        "Retain Handling 0: {got:?}"
    );
    let mut fresh = s.client(V5, "rh-fresh");
    fresh.subscribe_with("rh/a", opts(natrix_mqtt::RetainHandling::SendIfNew), None);
    assert_eq!(
        fresh.publishes(QUIET).len(),
        1,
        "Retain Handling 1 on a new subscription"
    );
}

#[test]
fn v5_message_expiry() {
    let s = natrix("");
    let (mut m, _) = s.session(V5, "expiry");
    m.subscribe_qos("ex/#", QoS::AtLeastOnce);
    m.kill();
    let mut p = s.client(V5, "expiry-pub");
    for (topic, secs) in [("ex/short", 1), ("ex/long", 600)] {
        let props = Properties {
            message_expiry_interval: Some(secs),
            ..Properties::default()
        };
        p.publish_props(topic, b"m", QoS::AtLeastOnce, 9, false, props);
        assert_eq!(p.next_ack(), Some(("PUBACK", 9)));
    }
    std::thread::sleep(Duration::from_millis(2100));
    let (mut m, present) = s.session(V5, "expiry");
    assert!(present);
    let got = m.publishes(Duration::from_secs(1));
    // 3.3.2-5: an expired message is not delivered; 3.3.2-6: the interval sent is the
    // received one less the time the message waited.
    assert_eq!(
        got.iter().map(describe).collect::<Vec<_>>(),
        vec!["ex/long m"]
    );
    let left = got[0]
        .properties
        .message_expiry_interval
        .expect("expiry interval");
    assert!((590..600).contains(&left), "{left}");
}

#[test]
fn v5_receive_maximum_bounds_qos1_in_flight() {
    let s = natrix("");
    let props = Properties {
        receive_maximum: Some(1),
        ..Properties::default()
    };
    let mut m = Mq::connect_v5(s.mqtt, "recvmax", props);
    m.subscribe_qos("rm/#", QoS::AtLeastOnce);
    let mut p = s.client(V5, "recvmax-pub");
    for i in 1..=3 {
        p.publish_qos1("rm/x", &i.to_string(), i, false);
    }
    // 3.3.4-9: no more unacknowledged QoS 1 PUBLISHes than the Receive Maximum.
    let mut got = Vec::new();
    for _ in 0..3 {
        let first = m.next_publish(Duration::from_secs(5)).expect("delivery");
        assert!(
            m.next_publish(QUIET).is_none(),
            "a second PUBLISH before PUBACK"
        );
        m.puback(first.packet_id);
        got.push(describe(&first));
    }
    assert_eq!(got, vec!["rm/x 1", "rm/x 2", "rm/x 3"]);
}

#[test]
fn v5_maximum_packet_size_from_the_client() {
    let s = natrix("");
    let props = Properties {
        maximum_packet_size: Some(64),
        ..Properties::default()
    };
    let mut m = Mq::connect_v5(s.mqtt, "maxpkt", props);
    m.subscribe(&["mp/#"]);
    let mut n = nats(&s);
    let big = "x".repeat(100);
    n.send(&format!(
        "PUB mp.big {}\r\n{big}\r\nPUB mp.small 2\r\nok\r\n",
        big.len()
    ));
    n.sync();
    // 3.1.2-24/25: nothing larger than the client's Maximum Packet Size is sent; the
    // message is discarded and the connection goes on.
    assert_eq!(m.messages(QUIET), vec!["mp/small ok"]);
    assert!(m.ping());
}

#[test]
fn v5_response_topic_and_correlation_data_meet_nats_request_reply() {
    let s = natrix("");
    // A NATS request reaches a 5.0 subscriber with its reply subject as Response Topic
    // (3.3.2.3.5), and the PUBLISH to it answers the NATS requester.
    let mut responder = s.client(V5, "responder");
    responder.subscribe(&["svc/time"]);
    let mut n = nats(&s);
    n.send("SUB _INBOX.r1 1\r\nPUB svc.time _INBOX.r1 3\r\nnow\r\n");
    n.sync();
    let req = responder.publishes(QUIET);
    assert_eq!(req.len(), 1);
    let rt = req[0]
        .properties
        .response_topic
        .clone()
        .expect("Response Topic");
    assert_eq!(rt.as_str(), "_INBOX/r1");
    responder.publish(rt.as_str(), "12:00");
    assert!(responder.ping());
    assert_eq!(
        nats_msgs(&read_until(&mut n, "12:00", Duration::from_secs(5))),
        vec!["_INBOX.r1 12:00"]
    );
    // 5.0 to 5.0: Response Topic and Correlation Data arrive as sent (3.3.2.3.6), at
    // QoS 0 and through storage at QoS 1.
    let mut sub = s.client(V5, "corr-sub");
    sub.subscribe_qos("rq/#", QoS::AtLeastOnce);
    let mut p = s.client(V5, "corr-pub");
    let props = Properties {
        response_topic: Some(mstr("rs/me")),
        correlation_data: Some(Bytes::from_static(b"\x00\x01id")),
        ..Properties::default()
    };
    p.publish_props("rq/a", b"q0", QoS::AtMostOnce, 0, false, props.clone());
    p.publish_props("rq/b", b"q1", QoS::AtLeastOnce, 3, false, props);
    let got = sub.publishes(Duration::from_secs(1));
    assert_eq!(got.len(), 2, "{got:?}");
    for g in &got {
        assert_eq!(
            g.properties.response_topic.as_ref().map(MqttString::as_str),
            Some("rs/me")
        );
        assert_eq!(
            g.properties.correlation_data.as_deref(),
            Some(&b"\x00\x01id"[..])
        );
    }
}

#[test]
fn will_with_qos1_and_retain() {
    for s in servers("") {
        let (mut sub, _) = s.session(V3, "will-sub");
        sub.subscribe_granted("wl/#", QoS::AtLeastOnce);
        s.login(&Login {
            id: "will-qos1",
            will: Some(("wl/a", "gone")),
            will_qos: QoS::AtLeastOnce,
            will_retain: true,
            ..Login::default()
        })
        .kill();
        let m = sub
            .next_publish(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{}: no will", s.name));
        assert_eq!(
            (m.qos, describe(&m)),
            (QoS::AtLeastOnce, "wl/a gone".to_owned()),
            "{}",
            s.name
        );
        sub.puback(m.packet_id);
        // Retained: a later subscriber gets it with the retain flag (3.1.2-17).
        let mut late = s.client(V3, "will-late");
        late.subscribe_qos("wl/a", QoS::AtMostOnce);
        let m = late
            .next_publish(Duration::from_secs(5))
            .unwrap_or_else(|| panic!("{}: will not retained", s.name));
        assert!(m.retain && describe(&m) == "wl/a gone", "{}: {m:?}", s.name);
    }
}

#[test]
fn v5_session_expiry_removes_the_session_in_time() {
    let s = natrix("");
    let (mut m, present) = s.session_for(V5, "expires", 1);
    assert!(!present);
    m.subscribe_qos("se/#", QoS::AtLeastOnce);
    m.kill();
    // Kept within the interval...
    let (m, present) = s.session(V5, "expires");
    assert!(present, "3.1.2-23: kept while the interval has not passed");
    // ...that connection asked for an hour: still there after 1.5 s.
    m.kill();
    std::thread::sleep(Duration::from_millis(1500));
    let (again, present) = s.session(V5, "expires");
    assert!(present);
    drop(again);
    // A 1 s session not resumed in time is gone (3.1.2.11.2).
    let (mut m, _) = s.session_for(V5, "expires", 1);
    assert!(m.ping());
    m.kill();
    std::thread::sleep(Duration::from_millis(2500));
    let (_m, present) = s.session(V5, "expires");
    assert!(!present, "session expired");
}

#[test]
fn qos2_pubrel_sent_again_to_a_resumed_session() {
    for s in servers_with("", ACK_WAIT) {
        let (mut sub, _) = s.session(V3, "pubrel-sub");
        sub.subscribe_granted("pr/#", QoS::ExactlyOnce);
        let mut p = s.client(V3, "pubrel-pub");
        p.publish_with("pr/a", "x", QoS::ExactlyOnce, 1, false);
        assert_eq!(p.next_ack(), Some(("PUBREC", 1)));
        p.pubrel(1);
        assert_eq!(p.next_ack(), Some(("PUBCOMP", 1)));
        let m = sub.next_publish(Duration::from_secs(5)).expect("delivery");
        sub.pubrec(m.packet_id);
        assert_eq!(sub.next_ack(), Some(("PUBREL", m.packet_id)), "{}", s.name);
        // Killed before PUBCOMP: the resumed session gets the PUBREL again (4.4-1), not
        // the message.
        sub.kill();
        let (mut again, present) = s.session(V3, "pubrel-sub");
        assert!(present, "{}", s.name);
        match again.recv(Duration::from_secs(10)) {
            Some(Packet::PubRel(r)) => {
                assert_eq!(r.packet_id, m.packet_id, "{}", s.name);
                again.pubcomp(r.packet_id);
            }
            other => panic!("{}: expected PUBREL, got {other:?}", s.name),
        }
        // Completed: nothing more after ack_wait.
        let (done, seen) = again.closed(Duration::from_millis(2500));
        assert!(!done && seen.is_empty(), "{}: {seen:?}", s.name);
    }
}

#[test]
fn qos2_packet_id_reused_right_after_pubcomp() {
    for s in servers("") {
        let mut n = s.nats_sub(&["reuse"]);
        let mut p = s.client(V3, "reuse-pub");
        // 2.2.1: a packet identifier is free again after PUBCOMP; each message is
        // released once, with its own payload.
        for i in 0..20 {
            let payload = format!("m{i}");
            p.publish_with("reuse", &payload, QoS::ExactlyOnce, 1, false);
            assert_eq!(p.next_ack(), Some(("PUBREC", 1)), "{}", s.name);
            p.pubrel(1);
            assert_eq!(p.next_ack(), Some(("PUBCOMP", 1)), "{}", s.name);
        }
        let got = nats_msgs(&read_until(&mut n, "m19", Duration::from_secs(5)));
        let want: Vec<String> = (0..20).map(|i| format!("reuse m{i}")).collect();
        assert_eq!(got, want, "{}", s.name);
    }
}

// ---- TLS on the MQTT listener, and mqtt {}'s own authorization (both servers) ----

/// A test CA in `dir` with a server certificate for 127.0.0.1, and the `tls {}` block
/// that serves it (`extra` adds settings inside the block).
fn mqtt_tls(dir: &Path, extra: &str) -> (common::TestPki, String) {
    let pki = common::TestPki::new(dir);
    pki.server_cert("mqtt");
    let d = dir.display();
    let tls =
        format!("tls {{ cert_file: \"{d}/mqtt.pem\", key_file: \"{d}/mqtt-key.pem\" {extra} }}");
    (pki, tls)
}

/// mosquitto_sub and mosquitto_pub over TLS (checking the server against the test CA),
/// both ways with NATS clients; a client that does not start TLS gets nothing back.
#[test]
fn tls_listener_with_mosquitto_clients() {
    let dir = tempfile::tempdir().expect("pki dir");
    let (_pki, tls) = mqtt_tls(dir.path(), "");
    let ca = dir.path().join("ca.pem").display().to_string();
    let cafile = ["--cafile", ca.as_str()];
    for s in servers_with("", &tls) {
        let versions: &[ProtocolVersion] = if s.name == "natrix" { &[V3, V5] } else { &[V3] };
        for &v in versions {
            let mut n = nats(&s);
            let sub = MosqSub::start_with(s.mqtt, v, "tls/#", &cafile, || {
                n.send("PUB tls.probe 5\r\nprobe\r\n");
                n.sync();
            });
            n.send("PUB tls.a 6\r\nsecret\r\n");
            n.sync();
            assert_eq!(sub.take(1), vec!["tls/a secret"], "{} {v:?}", s.name);
            // The connection is listed with what TLS it negotiated.
            let connz = common::http_get(s.p.http_port.expect("monitor"), "/connz").json();
            let conns = connz["connections"].as_array().cloned().unwrap_or_default();
            assert!(
                conns.iter().any(|c| c["mqtt_client"].is_string()
                    && c["tls_version"]
                        .as_str()
                        .is_some_and(|t| t.starts_with("1."))),
                "{}: {connz:#}",
                s.name
            );
            let mut back = s.nats_sub(&["back.>"]);
            assert!(
                mosquitto_pub(s.mqtt, v, "back/x", "sealed", &cafile),
                "{} {v:?}",
                s.name
            );
            assert_eq!(
                nats_msgs(&read_until(&mut back, "sealed", Duration::from_secs(5))),
                vec!["back.x sealed"],
                "{} {v:?}",
                s.name
            );
        }
        // MQTT in the clear on the TLS port: no CONNACK, the connection is closed.
        let mut plain = Mq::raw(s.mqtt, V3);
        plain.send(
            &Login {
                id: "in-the-clear",
                ..Login::default()
            }
            .packet(),
        );
        let (closed, seen) = plain.closed(Duration::from_secs(10));
        assert!(closed && seen.is_empty(), "{}: {seen:?}", s.name);
        // And a TLS client that does not trust the server's CA does not get in.
        assert!(
            !mosquitto_pub(
                s.mqtt,
                V3,
                "back/x",
                "x",
                &["--cafile", "/etc/ssl/certs/ca-certificates.crt"]
            ),
            "{}",
            s.name
        );
    }
}

/// `tls { verify_and_map: true }` in `mqtt {}`: the client certificate is required and
/// picks the user (here by its e-mail SAN), whose permissions then apply; a certificate
/// that names no user is refused with CONNACK "not authorised".
#[test]
fn tls_client_certificate_picks_the_user() {
    let dir = tempfile::tempdir().expect("pki dir");
    let d = dir.path().display().to_string();
    let (pki, tls) = mqtt_tls(
        dir.path(),
        &format!(", ca_file: \"{d}/ca.pem\", verify_and_map: true"),
    );
    pki.client_cert("mapped", "/CN=mapped", "email:mq@natrix.test");
    pki.client_cert("stranger", "/CN=stranger", "email:stranger@natrix.test");
    let users = r#"
authorization {
  users: [
    { user: "mq@natrix.test", permissions: { publish: "mapped.>" } }
    { user: admin, password: adminpass }
  ]
}
"#;
    let files = |name: &str| {
        [
            "--cafile".to_owned(),
            format!("{d}/ca.pem"),
            "--cert".to_owned(),
            format!("{d}/{name}.pem"),
            "--key".to_owned(),
            format!("{d}/{name}-key.pem"),
        ]
    };
    for s in servers_with(users, &tls) {
        let mut admin = nats_login(&s, "admin", "adminpass");
        admin.send("SUB mapped.> 1\r\nSUB other.> 2\r\n");
        admin.sync();
        let mapped = files("mapped");
        let mapped: Vec<&str> = mapped.iter().map(String::as_str).collect();
        // Outside the mapped user's publish permissions: dropped.
        assert!(
            mosquitto_pub(s.mqtt, V3, "other/x", "denied", &mapped),
            "{}",
            s.name
        );
        assert!(
            mosquitto_pub(s.mqtt, V3, "mapped/x", "allowed", &mapped),
            "{}",
            s.name
        );
        let got = nats_msgs(&read_until(&mut admin, "allowed", Duration::from_secs(5)));
        assert_eq!(got, vec!["mapped.x allowed"], "{}", s.name);
        let stranger = files("stranger");
        let stranger: Vec<&str> = stranger.iter().map(String::as_str).collect();
        let (ok, err) = mosquitto_pub_output(s.mqtt, V3, "mapped/x", "no", &stranger);
        assert!(!ok && err.contains("not authorised"), "{}: {err}", s.name);
        // Without a certificate the handshake itself fails.
        let ca = format!("{d}/ca.pem");
        let (ok, err) = mosquitto_pub_output(s.mqtt, V3, "mapped/x", "no", &["--cafile", &ca]);
        assert!(!ok && !err.contains("not authorised"), "{}: {err}", s.name);
    }
}

/// `mqtt { authorization { user, password, timeout } }`: MQTT clients log in with that
/// user (NATS clients keep the server's own, here none); a wrong or missing password is
/// CONNACK 0x05 (5.0: 0x87) and a connection that sends nothing is closed after the
/// block's timeout, not the 10 s CONNECT allowance.
#[test]
fn mqtt_block_user_password_and_timeout() {
    let block = "authorization { user: mq, password: mqpass, timeout: 1 }";
    for s in servers_with("", block) {
        let mut m = s.login(&Login {
            id: "mq-ok",
            user: Some("mq"),
            pass: Some("mqpass"),
            ..Login::default()
        });
        assert!(m.ping(), "{}", s.name);
        s.refuses_login("mq-bad", Some("mq"), Some("nope"));
        s.refuses_login("mq-none", None, None);
        // NATS clients are not asked for credentials.
        assert!(nats(&s).sync().contains("PONG"), "{}", s.name);
        let mut silent = Mq::raw(s.mqtt, V3);
        let t = Instant::now();
        let (closed, _) = silent.closed(Duration::from_secs(8));
        assert!(closed, "{}", s.name);
        assert!(
            t.elapsed() < Duration::from_secs(4),
            "{}: closed after {:?}",
            s.name,
            t.elapsed()
        );
    }
}

/// `mqtt { no_auth_user }`: MQTT clients without credentials are that user (with its
/// permissions); NATS clients without credentials are still refused.
#[test]
fn mqtt_block_no_auth_user() {
    let users = r#"
authorization {
  users: [
    { user: guest, password: guestpass, permissions: { subscribe: { deny: "private.>" } } }
    { user: admin, password: adminpass }
  ]
}
"#;
    for s in servers_with(users, "no_auth_user: guest") {
        let mut m = s.client(V3, "anon-mqtt");
        let reasons = m.subscribe(&["public/x", "private/x"]);
        assert_eq!(reasons[0], ReasonCode::Success, "{}", s.name);
        assert!(reasons[1].is_error(), "{}: {reasons:?}", s.name);
        s.nats_refused("");
    }
}

/// nats-server's checks of the block at start-up, with its words.
#[test]
fn mqtt_block_authorization_beside_users_refuses_to_start() {
    let users = "authorization { users: [{ user: a, password: b }] }\n";
    for (mqtt, want) in [
        (
            "authorization { user: u, password: p }",
            "mqtt authentication username not compatible with presence of users/nkeys",
        ),
        (
            "authorization { token: t }",
            "mqtt authentication token not compatible with presence of users/nkeys",
        ),
        (
            "no_auth_user: ghost",
            "no_auth_user: \"ghost\" not present as user or nkey in authorization block or account configuration",
        ),
    ] {
        let conf = format!("{users}mqtt {{ port: -1, {mqtt} }}\n");
        let mut bins = vec![PathBuf::from(NATRIX)];
        bins.extend(common::reference_binary());
        for bin in bins {
            let err = common::startup_error(&bin, &conf);
            assert!(err.contains(want), "{}: {conf}: {err}", bin.display());
        }
    }
}

// ---- MQTT 5.0 Will Delay Interval (natrix only) ----

/// 3.1.3.2.2: the will waits for its Will Delay Interval, or for the end of the session
/// if that comes first (its Session Expiry Interval, or a clean start that discards it),
/// and is never published if the session is resumed meanwhile (3.1.3-9).
#[test]
fn v5_will_delay_interval() {
    let s = natrix("");
    let mut n = s.nats_sub(&["wd.>"]);
    let login = |id, delay, expiry| Login {
        version: V5,
        id,
        will: Some(("wd/x", id)),
        will_properties: Properties {
            will_delay_interval: Some(delay),
            ..Properties::default()
        },
        properties: Properties {
            session_expiry_interval: Some(expiry),
            ..Properties::default()
        },
        ..Login::default()
    };
    let will_within = |n: &mut Raw, id: &str, within: Duration| {
        let got = nats_msgs(&read_until(n, id, within));
        assert_eq!(got, vec![format!("wd.x {id}")], "{id}");
    };
    // After the delay, not at once.
    s.login(&login("late", 2, 3600)).kill();
    let t = Instant::now();
    let early = nats_msgs(&n.read_for(Duration::from_millis(1000)));
    assert!(early.is_empty(), "published before its delay: {early:?}");
    will_within(&mut n, "late", Duration::from_secs(10));
    assert!(
        t.elapsed() >= Duration::from_millis(1800),
        "{:?}",
        t.elapsed()
    );
    // Resumed within the delay: never.
    let mut m = s.login(&login("resumed", 2, 3600));
    // A subscription, so that the session is stored and CONNACK can tell it was resumed.
    m.subscribe(&["wd/resumed"]);
    m.kill();
    let (_back, present) = s.session(V5, "resumed");
    assert!(present);
    let late = nats_msgs(&n.read_for(Duration::from_secs(3)));
    assert!(late.is_empty(), "will of a resumed session: {late:?}");
    // A clean start discards the session: at once, not after 60 s.
    s.login(&login("ended", 60, 3600)).kill();
    let _fresh = s.client(V5, "ended");
    will_within(&mut n, "ended", Duration::from_secs(5));
    // The session expires (1 s) before the delay (60 s): the will goes with it.
    s.login(&login("expiring", 60, 1)).kill();
    will_within(&mut n, "expiring", Duration::from_secs(6));
    // A session that ends with its connection (no expiry interval): at once.
    s.login(&login("no-session", 60, 0)).kill();
    will_within(&mut n, "no-session", Duration::from_secs(3));
}

/// A delayed will is published under the permissions of the user it belongs to: one the
/// user may not publish is dropped, as the connection's own publish would be.
#[test]
fn v5_delayed_will_keeps_the_users_permissions() {
    let s = natrix(USERS);
    let mut admin = nats_login(&s, "admin", "adminpass");
    admin.send("SUB secret.> 1\r\nSUB ok.> 2\r\n");
    admin.sync();
    for (id, topic) in [("denied-will", "secret/w"), ("allowed-will", "ok/w")] {
        s.login(&Login {
            version: V5,
            id,
            user: Some("dev"),
            pass: Some("devpass"),
            will: Some((topic, id)),
            will_qos: QoS::AtLeastOnce,
            will_retain: true,
            will_properties: Properties {
                will_delay_interval: Some(1),
                ..Properties::default()
            },
            properties: Properties {
                session_expiry_interval: Some(3600),
                ..Properties::default()
            },
            ..Login::default()
        })
        .kill();
    }
    let got = nats_msgs(&read_until(
        &mut admin,
        "allowed-will",
        Duration::from_secs(8),
    ));
    assert_eq!(got, vec!["ok.w allowed-will"]);
    assert!(nats_msgs(&admin.read_for(Duration::from_millis(1500))).is_empty());
    // Its QoS 1 and retain flag hold too: a later subscriber gets it, retained; the
    // denied one was not retained either.
    let mut late = s.login(&Login {
        id: "will-reader",
        user: Some("admin"),
        pass: Some("adminpass"),
        ..Login::default()
    });
    late.subscribe_qos("+/w", QoS::AtLeastOnce);
    let m = late
        .next_publish(Duration::from_secs(5))
        .expect("retained will");
    assert!(
        m.retain && m.qos == QoS::AtLeastOnce && describe(&m) == "ok/w allowed-will",
        "{m:?}"
    );
    late.puback(m.packet_id);
    assert!(late.messages(QUIET).is_empty());
}

// ---- MQTT 5.0 topic aliases from the server (natrix only) ----

/// 3.3.2.3.4: with a Topic Alias Maximum in CONNECT the server may give aliases. The raw
/// PUBLISH packets: the first of a topic carries the topic and a new alias, the later ones
/// an empty topic and the alias, at QoS 0 and 1 alike; past the client's maximum a topic
/// goes out in full without an alias (3.3.2-11: never above the maximum). A client that
/// sets no maximum gets no aliases (3.3.2-12: 0 means none).
#[test]
fn v5_topic_aliases_to_the_client() {
    let s = natrix("");
    let props = Properties {
        topic_alias_maximum: Some(2),
        ..Properties::default()
    };
    let mut m = Mq::connect_v5(s.mqtt, "alias-out", props);
    m.subscribe_granted("ta/#", QoS::AtLeastOnce);
    let mut plain = s.client(V5, "alias-none");
    plain.subscribe(&["ta/#"]);
    let mut n = nats(&s);
    for (subject, body) in [("ta.a", "1"), ("ta.a", "2"), ("ta.b", "3"), ("ta.c", "4")] {
        n.send(&format!("PUB {subject} 1\r\n{body}\r\n"));
    }
    n.sync();
    let mut p = s.client(V5, "alias-pub");
    p.publish_qos1("ta/a", "5", 1, false);
    p.publish_qos1("ta/c", "6", 2, false);
    let raw: Vec<(String, Option<u16>, String, QoS)> = m
        .publishes(Duration::from_secs(1))
        .iter()
        .map(|p| {
            (
                p.topic.as_str().to_owned(),
                p.properties.topic_alias,
                String::from_utf8_lossy(&p.payload).into_owned(),
                p.qos,
            )
        })
        .collect();
    let q0 = QoS::AtMostOnce;
    let q1 = QoS::AtLeastOnce;
    let want = vec![
        ("ta/a".to_owned(), Some(1), "1".to_owned(), q0),
        (String::new(), Some(1), "2".to_owned(), q0),
        ("ta/b".to_owned(), Some(2), "3".to_owned(), q0),
        ("ta/c".to_owned(), None, "4".to_owned(), q0),
        (String::new(), Some(1), "5".to_owned(), q1),
        ("ta/c".to_owned(), None, "6".to_owned(), q1),
    ];
    assert_eq!(raw, want);
    let got: Vec<(String, Option<u16>)> = plain
        .publishes(QUIET)
        .iter()
        .map(|p| (describe(p), p.properties.topic_alias))
        .collect();
    assert_eq!(
        got,
        ["ta/a 1", "ta/a 2", "ta/b 3", "ta/c 4", "ta/a 5", "ta/c 6"]
            .iter()
            .map(|d| ((*d).to_owned(), None))
            .collect::<Vec<_>>()
    );
}

/// A real 5.0 client that accepts server topic aliases (mqtt.js, run by node, Topic
/// Alias Maximum 4) gets every message under its full topic, the repeats by alias.
#[test]
fn v5_topic_aliases_to_mqtt_js() {
    let Ok(modules) = std::env::var("NATRIX_NODE_MODULES") else {
        panic!("NATRIX_NODE_MODULES unset: eval \"$(scripts/deps)\" installs mqtt.js");
    };
    let script = r#"
const mqtt = require(process.env.NATRIX_NODE_MODULES + '/mqtt');
const c = mqtt.connect('mqtt://127.0.0.1:' + process.argv[process.argv.length - 1], {
  clientId: 'mqttjs-alias', protocolVersion: 5, reconnectPeriod: 0,
  properties: { topicAliasMaximum: 4 },
});
setTimeout(() => { console.log('timeout'); process.exit(1); }, 15000);
c.on('error', (e) => { console.log('error ' + e.message); process.exit(2); });
c.on('connect', () => c.subscribe('al2/#', () => console.log('ready')));
c.on('message', (topic, payload, packet) => {
  const alias = packet.properties && packet.properties.topicAlias;
  console.log(topic + ' ' + payload.toString() + ' alias=' + alias);
});
"#;
    let s = natrix("");
    let mut child = Command::new("node")
        .args(["-e", script, &s.mqtt.to_string()])
        .env("NATRIX_NODE_MODULES", modules)
        .stdout(Stdio::piped())
        .spawn()
        .expect("node");
    let out = child.stdout.take().expect("stdout");
    let (tx, lines) = mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    let next = || {
        lines
            .recv_timeout(Duration::from_secs(15))
            .unwrap_or_else(|_| "<nothing>".into())
    };
    assert_eq!(next(), "ready");
    let mut n = nats(&s);
    for (subject, body) in [
        ("al2.x", "1"),
        ("al2.x", "2"),
        ("al2.y", "3"),
        ("al2.x", "4"),
    ] {
        n.send(&format!("PUB {subject} 1\r\n{body}\r\n"));
    }
    n.sync();
    let got: Vec<String> = (0..4).map(|_| next()).collect();
    let _ = child.kill();
    let _ = child.wait();
    assert_eq!(
        got,
        vec![
            "al2/x 1 alias=1",
            "al2/x 2 alias=1",
            "al2/y 3 alias=2",
            "al2/x 4 alias=1"
        ]
    );
}

// ---- Shared subscriptions of persistent sessions (natrix only) ----

/// A persistent session's `$share/g/...` subscription comes back in its queue group, after
/// a reconnect and after a server restart, beside an ordinary subscription of the same
/// filter in the same session: the ordinary one gets every message, the shared one splits
/// them with the group's other member (a NATS queue subscriber).
#[test]
fn resumed_shared_subscription_keeps_its_queue_group() {
    let mut s = natrix("");
    let (mut m, _) = s.session(V3, "share-keep");
    assert_eq!(
        m.subscribe(&["$share/g/sj/+", "sj/+"]),
        vec![ReasonCode::Success; 2]
    );
    m.send(&Packet::Disconnect(natrix_mqtt::Disconnect::default()));
    drop(m);
    for round in ["reconnect", "restart"] {
        if round == "restart" {
            s.restart();
        }
        let (mut m, present) = s.session(V3, "share-keep");
        assert!(present, "{round}");
        assert!(m.ping(), "{round}");
        let mut q = s.nats_sub(&["sj.* g"]);
        s.nats_publish_numbered("sj.x", 40);
        let nm = m.messages(QUIET).len();
        let nq = nats_msgs(&q.read_for(QUIET)).len();
        // 40 through the ordinary subscription, 40 shared between the two members.
        assert_eq!(nm + nq, 80, "{round}: {nm} {nq}");
        assert!(
            nq > 0 && nq < 40,
            "{round}: the group is shared: {nq} of 40"
        );
        m.send(&Packet::Disconnect(natrix_mqtt::Disconnect::default()));
    }
}

/// `allowed_connection_types`: MQTT connections are of kind `MQTT`, so a user limited to
/// `MQTT` gets in over MQTT and not as a NATS client, and one limited to `STANDARD` the
/// reverse (nats-server's kinds; over the WebSocket listener an MQTT client is `MQTT_WS`).
#[test]
fn allowed_connection_types_name_mqtt() {
    let users = r#"
authorization {
  users: [
    { user: device, password: devpass, allowed_connection_types: ["MQTT"] }
    { user: service, password: svcpass, allowed_connection_types: ["STANDARD"] }
  ]
}
"#;
    for s in servers(users) {
        let mut m = s.login(&Login {
            id: "typed-device",
            user: Some("device"),
            pass: Some("devpass"),
            ..Login::default()
        });
        assert!(m.ping(), "{}", s.name);
        s.refuses_login("typed-service", Some("service"), Some("svcpass"));
        let mut n = nats_login(&s, "service", "svcpass");
        assert!(n.sync().contains("PONG"), "{}", s.name);
        s.nats_refused(",\"user\":\"device\",\"pass\":\"devpass\"");
    }
}

/// A renewed certificate (new files in place of the old, as a Kubernetes Secret volume
/// swaps them) reaches new MQTT connections without a restart: natrix watches the MQTT
/// listener's TLS files as it does the client port's, and reloads.
#[test]
fn tls_certificate_renewal_reaches_new_connections() {
    let dir = tempfile::tempdir().expect("pki dir");
    let (_pki, tls) = mqtt_tls(dir.path(), "");
    let s = natrix_with_mqtt(&tls);
    let ca = |d: &Path| d.join("ca.pem").display().to_string();
    let publish_trusting = |ca: &str| mosquitto_pub(s.mqtt, V3, "renew/x", "x", &["--cafile", ca]);
    assert!(publish_trusting(&ca(dir.path())), "the first certificate");
    // The renewed certificate comes from another CA, so a client tells the two apart.
    let renewed = tempfile::tempdir().expect("second pki dir");
    common::TestPki::new(renewed.path()).server_cert("mqtt");
    for f in ["mqtt-key.pem", "mqtt.pem"] {
        std::fs::copy(renewed.path().join(f), dir.path().join(f)).expect("renew");
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    while !publish_trusting(&ca(renewed.path())) {
        assert!(
            Instant::now() < deadline,
            "renewed certificate not served: {}",
            s.p.log_text()
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !publish_trusting(&ca(dir.path())),
        "the old certificate is gone"
    );
    assert!(s.p.log_text().contains("Reloaded server configuration"));
}

/// The consumer names on `$MQTT_msgs`, through the JetStream API.
fn message_consumers(s: &Srv) -> String {
    let mut n = s.nats_sub(&["_INBOX.names"]);
    n.send("PUB $JS.API.CONSUMER.NAMES.$MQTT_msgs _INBOX.names 0\r\n\r\n");
    read_until(&mut n, "consumers", Duration::from_secs(5))
}

/// QoS 1 through a shared subscription: a message an MQTT client publishes at QoS 1
/// reaches one member of the group, not each (the members share one JetStream consumer
/// and its deliveries go to the group); while a member is away the others get all; a
/// resumed persistent member shares again; the consumer goes with the group's last member.
#[test]
fn shared_subscription_at_qos1_delivers_each_message_once() {
    // The default ack_wait (30 s): the test reads a member's deliveries only after all are
    // published, and nothing may be redelivered meanwhile.
    let s = natrix("");
    let (mut a, _) = s.session(V3, "sq-a");
    a.subscribe_granted("$share/g/sq/+", QoS::AtLeastOnce);
    let mut b = s.client(V5, "sq-b");
    b.subscribe_granted("$share/g/sq/+", QoS::AtLeastOnce);
    let mut p = s.client(V3, "sq-pub");
    let mut publish = |from: u16, count: u16| {
        for i in from..from + count {
            p.publish_qos1("sq/x", &i.to_string(), i, false);
        }
    };
    let received = |m: &mut Mq| {
        let mut got = Vec::new();
        while let Some(d) = m.next_publish(Duration::from_secs(1)) {
            m.puback(d.packet_id);
            got.push(describe(&d));
        }
        got
    };
    publish(1, 20);
    let (ga, gb) = (received(&mut a), received(&mut b));
    let mut all = [ga.clone(), gb.clone()].concat();
    all.sort_by_key(|d| d[5..].parse::<u16>().unwrap_or(0));
    let want: Vec<String> = (1..=20).map(|i| format!("sq/x {i}")).collect();
    assert_eq!(all, want, "each message once: {ga:?} {gb:?}");
    assert!(!ga.is_empty() && !gb.is_empty(), "shared: {ga:?} {gb:?}");
    // A is away (the server has seen it go): B gets everything.
    a.kill();
    common::wait_json(&s.p, "/connz", Duration::from_secs(10), |connz| {
        !connz["connections"]
            .as_array()
            .is_some_and(|c| c.iter().any(|c| c["mqtt_client"] == "sq-a"))
    });
    publish(21, 5);
    let gb = received(&mut b);
    assert_eq!(gb.len(), 5, "{gb:?}");
    // A resumes and shares again.
    let (mut a, present) = s.session(V3, "sq-a");
    assert!(present);
    publish(100, 20);
    let (ga, gb) = (received(&mut a), received(&mut b));
    assert_eq!(ga.len() + gb.len(), 20, "{ga:?} {gb:?}");
    assert!(
        !ga.is_empty() && !gb.is_empty(),
        "shared again: {ga:?} {gb:?}"
    );
    // The group's consumer stays while a member is connected, and goes with the last.
    assert_eq!(b.unsubscribe(&["$share/g/sq/+"]), vec![ReasonCode::Success]);
    assert!(message_consumers(&s).contains("$MQTT_SHARE_"));
    // 3.1.1: an UNSUBACK without reasons (3.11.3), which natrix once failed to encode.
    assert!(a.unsubscribe(&["$share/g/sq/+"]).is_empty());
    let names = message_consumers(&s);
    assert!(!names.contains("$MQTT_SHARE_"), "{names}");
}

/// UNSUBSCRIBE in 3.1.1: UNSUBACK (no reason codes there, 3.11.3) and no more messages;
/// in 5.0 with a reason per filter (0x11 for one never subscribed).
#[test]
fn unsubscribe_is_acknowledged_and_stops_delivery() {
    for s in servers("") {
        let versions: &[ProtocolVersion] = if s.name == "natrix" { &[V3, V5] } else { &[V3] };
        for &v in versions {
            let mut m = s.subscriber(v, "unsub", &["un/+"]);
            let mut n = nats(&s);
            n.send("PUB un.a 1\r\n1\r\n");
            n.sync();
            assert_eq!(m.messages(QUIET), vec!["un/a 1"], "{} {v:?}", s.name);
            let reasons = m.unsubscribe(&["un/+", "never/subscribed"]);
            let want = if v == V5 {
                vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted]
            } else {
                Vec::new()
            };
            assert_eq!(reasons, want, "{} {v:?}", s.name);
            n.send("PUB un.a 1\r\n2\r\n");
            n.sync();
            assert!(m.messages(QUIET).is_empty(), "{} {v:?}", s.name);
        }
    }
}

/// 3.14.2.2.2: DISCONNECT's Session Expiry Interval replaces CONNECT's: 0 ends the
/// session with the connection, a shorter one makes it expire sooner; setting one when
/// CONNECT's was 0 is a Protocol Error (DISCONNECT 0x82 from the server).
#[test]
fn v5_disconnect_changes_the_session_expiry() {
    let s = natrix("");
    let disconnect = |m: &mut Mq, expiry: u32| {
        m.send(&Packet::Disconnect(natrix_mqtt::Disconnect {
            reason: ReasonCode::Success,
            properties: Properties {
                session_expiry_interval: Some(expiry),
                ..Properties::default()
            },
        }));
        m.closed(Duration::from_secs(5))
    };
    // Kept for an hour by CONNECT, ended by DISCONNECT.
    let (mut m, _) = s.session(V5, "dx-zero");
    m.subscribe_granted("dx/#", QoS::AtLeastOnce);
    assert!(disconnect(&mut m, 0).0);
    let (_m, present) = s.session(V5, "dx-zero");
    assert!(!present, "DISCONNECT with 0 discarded the session");
    // Shortened to 1 s: still there at once, gone after it.
    let (mut m, _) = s.session(V5, "dx-short");
    m.subscribe_granted("dx/#", QoS::AtLeastOnce);
    assert!(disconnect(&mut m, 1).0);
    let (mut m, present) = s.session(V5, "dx-short");
    assert!(present);
    // This connection asked for an hour again: it ends with a 1 s DISCONNECT too.
    assert!(disconnect(&mut m, 1).0);
    std::thread::sleep(Duration::from_millis(2500));
    let (_m, present) = s.session(V5, "dx-short");
    assert!(!present, "expired after DISCONNECT's interval");
    // CONNECT without an interval: DISCONNECT may not add one.
    let mut m = s.client(V5, "dx-bad");
    let (closed, seen) = disconnect(&mut m, 60);
    assert!(closed);
    assert!(
        matches!(&seen[..], [Packet::Disconnect(d)] if d.reason == ReasonCode::ProtocolError),
        "{seen:?}"
    );
}

/// `/varz` `mqtt` carries the block's settings as nats-server shows them (its field names
/// and units: seconds for the timeouts, nanoseconds for `ack_wait`), the same on both.
#[test]
fn varz_mqtt_block_as_nats_server() {
    let users = "authorization { users: [{ user: g, password: p }] }\n";
    let mqtt =
        "no_auth_user: g, ack_wait: \"7s\", max_ack_pending: 100, authorization { timeout: 3 }";
    let mut seen = Vec::new();
    for s in servers_with(users, mqtt) {
        let mut varz = common::http_get(s.p.http_port.expect("monitor"), "/varz").json();
        assert_eq!(varz["mqtt"]["port"], s.mqtt, "{}", s.name);
        varz["mqtt"]["port"] = serde_json::Value::Null;
        seen.push((s.name, varz["mqtt"].clone()));
    }
    let natrix = &seen[0].1;
    assert_eq!(natrix["no_auth_user"], "g");
    assert_eq!(natrix["auth_timeout"], 3);
    assert_eq!(natrix["tls_timeout"], 2);
    assert_eq!(natrix["ack_wait"], 7_000_000_000_u64);
    assert_eq!(natrix["max_ack_pending"], 100);
    if let [(_, mine), (_, theirs)] = &seen[..] {
        assert_eq!(mine, theirs, "natrix (left) and nats-server (right)");
    }
}

/// A 5.0 session's expiry holds across a server restart (the timer is lost with the
/// process; the record says when the session ended): one whose interval passed is gone
/// when the client comes back, one still within it is resumed.
#[test]
fn v5_session_expiry_survives_a_restart() {
    let mut s = natrix("");
    for (id, expiry) in [("exp-short", 2), ("exp-long", 600)] {
        let (mut m, _) = s.session_for(V5, id, expiry);
        m.subscribe_granted("ex2/#", QoS::AtLeastOnce);
        m.send(&Packet::Disconnect(natrix_mqtt::Disconnect::default()));
        assert!(m.closed(Duration::from_secs(5)).0);
    }
    let ended = Instant::now();
    s.restart();
    std::thread::sleep(Duration::from_secs(3).saturating_sub(ended.elapsed()));
    let (_m, present) = s.session(V5, "exp-short");
    assert!(!present, "expired while the server was restarting");
    let (_m, present) = s.session(V5, "exp-long");
    assert!(present, "still within its interval");
}

/// `mqtt { js_domain }`: a server without JetStream of its own keeps its MQTT state in
/// another domain's JetStream across a leaf node. Sessions, QoS 1 messages queued for an
/// offline session and the `$MQTT_*` streams all live in the hub; the spoke serves the
/// MQTT clients. Run with natrix as the spoke under a natrix hub, and under a nats-server
/// hub when it is installed.
#[test]
fn js_domain_keeps_the_state_in_another_domain_over_a_leaf_node() {
    let mut hubs: Vec<(&str, PathBuf)> = vec![("natrix", PathBuf::from(NATRIX))];
    if let Some(r) = common::reference_binary() {
        hubs.push(("nats-server", r));
    }
    for (hub_name, hub_bin) in hubs {
        let store = tempfile::tempdir().expect("store dir");
        let leaf = free_port();
        let hub = start(
            &hub_bin,
            &format!(
                "server_name: hub\njetstream {{ store_dir: {:?}, domain: HUB }}\nleafnodes {{ listen: \"127.0.0.1:{leaf}\" }}\n",
                store.path().display().to_string()
            ),
            true,
        );
        let mqtt = free_port();
        let conf = format!(
            "server_name: spoke\nleafnodes {{ remotes: [{{ url: \"nats://127.0.0.1:{leaf}\" }}] }}\nmqtt {{ host: 127.0.0.1, port: {mqtt}, js_domain: HUB }}\n"
        );
        let spoke = Srv {
            name: "natrix",
            p: start(Path::new(NATRIX), &conf, true),
            mqtt,
            _store: tempfile::tempdir().expect("store dir"),
            bin: PathBuf::from(NATRIX),
            conf,
        };
        // Until the leaf connection is up the hub's JetStream is out of reach, and a
        // session is refused as Server Unavailable.
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut sub = loop {
            let login = Login {
                id: "dom-sub",
                clean: false,
                ..Login::default()
            };
            let (m, a) = Mq::login_ack(spoke.mqtt, &login);
            if a.reason == ReasonCode::Success {
                break m;
            }
            assert!(
                Instant::now() < deadline,
                "hub {hub_name}: no session through the leaf node: {:?}",
                a.reason
            );
            std::thread::sleep(Duration::from_millis(250));
        };
        sub.subscribe_granted("dom/#", QoS::AtLeastOnce);
        drop(sub);
        // Acknowledged once the hub stored it, then queued there for the offline session.
        let mut p = spoke.client(V3, "dom-pub");
        p.publish_qos1("dom/1", "kept in the hub", 3, false);
        drop(p);
        let (mut again, present) = spoke.session(V3, "dom-sub");
        assert!(present, "hub {hub_name}: session present");
        let m = again
            .next_publish(Duration::from_secs(10))
            .unwrap_or_else(|| panic!("hub {hub_name}: the queued message never came"));
        assert_eq!(describe(&m), "dom/1 kept in the hub", "hub {hub_name}");
        again.puback(m.packet_id);
        // The streams are the hub's: its own JetStream lists them.
        let mut n = common::client(&hub);
        n.send("SUB _INBOX.names 1\r\nPUB $JS.API.STREAM.NAMES _INBOX.names 2\r\n{}\r\n");
        let names = read_until(&mut n, "$MQTT_sess", Duration::from_secs(5));
        for stream in ["$MQTT_sess", "$MQTT_msgs"] {
            assert!(
                names.contains(stream),
                "hub {hub_name}: {stream} in {names}"
            );
        }
    }
}
