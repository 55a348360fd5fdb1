//! Live configuration reload driven by the config file alone, changed the way kubelet
//! updates a ConfigMap volume: the file is a symlink through `..data`, and an update
//! writes a new timestamped directory and atomically renames a new `..data` symlink over
//! the old one. No signal is sent; natrix-server must notice and apply within 2 s,
//! disconnecting only the clients the new config no longer admits.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use common::{NATRIX, Proc, Raw, http_get, start_with_file};

/// A config directory laid out as kubelet lays out a ConfigMap volume.
struct ConfigMapDir {
    root: PathBuf,
    generation: u32,
}

impl ConfigMapDir {
    fn new(root: &Path, text: &str) -> Self {
        let mut d = Self {
            root: root.to_path_buf(),
            generation: 0,
        };
        d.write_generation(text);
        std::os::unix::fs::symlink("..data/nats.conf", root.join("nats.conf")).expect("link file");
        d
    }

    fn conf(&self) -> PathBuf {
        self.root.join("nats.conf")
    }

    /// Writes `text` as a new generation and swaps `..data` to it atomically, then
    /// removes the previous generation, as the atomic writer in kubelet does.
    fn write_generation(&mut self, text: &str) {
        self.generation += 1;
        let dir = format!("..2026_11_25_{:04}", self.generation);
        std::fs::create_dir(self.root.join(&dir)).expect("generation dir");
        std::fs::write(self.root.join(&dir).join("nats.conf"), text).expect("write");
        let tmp = self.root.join("..data_tmp");
        std::os::unix::fs::symlink(&dir, &tmp).expect("tmp link");
        std::fs::rename(&tmp, self.root.join("..data")).expect("swap");
        if self.generation > 1 {
            let old = format!("..2026_11_25_{:04}", self.generation - 1);
            let _ = std::fs::remove_dir_all(self.root.join(old));
        }
    }
}

fn start_natrix(text: &str) -> (Proc, ConfigMapDir) {
    let dir = tempfile::tempdir().expect("tempdir");
    let volume = dir.path().join("config");
    std::fs::create_dir(&volume).expect("volume");
    let cm = ConfigMapDir::new(&volume, text);
    let conf = cm.conf();
    (start_with_file(Path::new(NATRIX), dir, &conf, true), cm)
}

fn users_conf(users: &str, extra: &str) -> String {
    format!("server_name: reload1\n{extra}\nauthorization {{\n  users = [\n{users}\n  ]\n}}\n")
}

const ALICE: &str = "    { user: alice, password: a1 }";
const BOB: &str = "    { user: bob, password: b1 }";

fn login(port: u16, user: &str, pass: &str) -> Raw {
    let mut c = Raw::connect(port);
    c.send(&format!(
        "CONNECT {{\"verbose\":false,\"pedantic\":false,\"user\":\"{user}\",\"pass\":\"{pass}\",\"protocol\":1}}\r\n"
    ));
    let got = c.sync();
    assert!(got.contains("PONG"), "{user} could not log in: {got:?}");
    c
}

/// Polls `cond` every 50 ms for up to 2 s.
fn within_2s(what: &str, mut cond: impl FnMut() -> bool) -> Duration {
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(2) {
        if cond() {
            return start.elapsed();
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    panic!("{what}: not within 2 s");
}

fn digest(p: &Proc) -> String {
    http_get(p.http_port.expect("http"), "/varz").json()["config_digest"]
        .as_str()
        .unwrap_or_default()
        .to_owned()
}

#[test]
fn removed_user_is_disconnected_and_others_stay() {
    let (server, mut cm) = start_natrix(&users_conf(&format!("{ALICE}\n{BOB}"), ""));
    let mut alice = login(server.port, "alice", "a1");
    let mut bob = login(server.port, "bob", "b1");
    let before = digest(&server);
    cm.write_generation(&users_conf(ALICE, ""));
    let mut bob_err = String::new();
    let took = within_2s("bob disconnected", || {
        bob_err.push_str(&bob.read_for(Duration::from_millis(20)));
        bob_err.contains("-ERR 'Authorization Violation'")
            && bob.is_closed(Duration::from_millis(50))
    });
    eprintln!("user removal took effect in {took:?}");
    assert!(alice.sync().contains("PONG"), "alice must stay connected");
    assert_ne!(digest(&server), before, "config_digest must change");
    // bob cannot come back; alice still can.
    let mut again = Raw::connect(server.port);
    again.send("CONNECT {\"verbose\":false,\"user\":\"bob\",\"pass\":\"b1\"}\r\nPING\r\n");
    assert!(
        again
            .read_for(Duration::from_millis(300))
            .contains("Authorization Violation")
    );
    login(server.port, "alice", "a1");
    let log = server.log_text();
    assert!(log.contains("Reloaded server configuration"), "{log}");
}

#[test]
fn permissions_and_max_payload_apply_live() {
    let (server, mut cm) = start_natrix(&users_conf(&format!("{ALICE}\n{BOB}"), ""));
    let mut alice = login(server.port, "alice", "a1");
    let mut bob = login(server.port, "bob", "b1");
    alice.send("SUB orders.> 1\r\nSUB audit.> 2\r\n");
    assert!(alice.sync().contains("PONG"));
    let restricted = users_conf(
        &format!(
            "    {{ user: alice, password: a1, permissions: {{ subscribe: \"audit.>\", publish: \"audit.>\" }} }}\n{BOB}"
        ),
        "max_payload: 64",
    );
    cm.write_generation(&restricted);
    // alice loses her orders.> subscription (with nats-server's -ERR) but stays connected.
    let mut seen = String::new();
    within_2s("orders.> removed", || {
        seen.push_str(&alice.read_for(Duration::from_millis(20)));
        seen.contains("Permissions Violation for Subscription to \"orders.>\"")
    });
    bob.send("PUB orders.1 2\r\nhi\r\nPUB audit.1 2\r\nyo\r\n");
    assert!(bob.sync().contains("PONG"));
    let got = alice.sync();
    assert!(
        !got.contains("MSG orders.1"),
        "orders.> must be gone: {got:?}"
    );
    assert!(
        got.contains("MSG audit.1 2 2"),
        "audit.> must remain: {got:?}"
    );
    alice.send("PUB orders.2 1\r\nx\r\n");
    assert!(
        alice
            .sync()
            .contains("-ERR 'Permissions Violation for Publish to \"orders.2\"'")
    );
    // max_payload 64 now holds for everyone, connected before the change or not.
    let big = "x".repeat(100);
    bob.send(&format!("PUB audit.2 100\r\n{big}\r\n"));
    let mut bob_seen = String::new();
    within_2s("max_payload", || {
        bob_seen.push_str(&bob.read_for(Duration::from_millis(20)));
        bob_seen.contains("-ERR 'Maximum Payload Violation'")
    });
    assert_eq!(
        http_get(server.http_port.expect("http"), "/varz").json()["max_payload"],
        64
    );
}

#[test]
fn non_reloadable_change_is_refused_and_nothing_applies() {
    let (server, mut cm) = start_natrix(&users_conf(ALICE, ""));
    let mut alice = login(server.port, "alice", "a1");
    let before = digest(&server);
    // A refused option next to a reloadable one: neither applies.
    let text = users_conf(ALICE, "max_payload: 64")
        .replace("server_name: reload1", "server_name: renamed");
    cm.write_generation(&text);
    within_2s("refusal logged", || {
        server
            .log_text()
            .contains("config reload not supported for ServerName: old=reload1, new=renamed")
    });
    let varz = http_get(server.http_port.expect("http"), "/varz").json();
    assert_eq!(varz["server_name"], "reload1");
    assert_eq!(varz["max_payload"], 1_048_576, "no half-applied config");
    assert_eq!(digest(&server), before);
    assert!(alice.sync().contains("PONG"));
}

#[test]
fn broken_file_is_reported_and_ignored_then_a_fix_applies() {
    let (server, mut cm) = start_natrix(&users_conf(ALICE, ""));
    let mut alice = login(server.port, "alice", "a1");
    cm.write_generation("server_name: reload1\nmax_payload: {{{\n");
    within_2s("parse error logged with position", || {
        let log = server.log_text();
        log.contains("Failed to reload server configuration")
            && log.contains("nats.conf:3:1: Expected a map value terminator")
    });
    assert!(
        alice.sync().contains("PONG"),
        "still serving on the old config"
    );
    login(server.port, "alice", "a1");
    cm.write_generation(&users_conf(ALICE, "max_payload: 2048"));
    within_2s("fixed file applied", || {
        http_get(server.http_port.expect("http"), "/varz").json()["max_payload"] == 2048
    });
    assert!(alice.sync().contains("PONG"));
}
