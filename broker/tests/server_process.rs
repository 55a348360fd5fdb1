//! The `natrix-server` binary as an operator runs it: nats-server config files, flags
//! overriding them, bad configs, the PID and ports files, `--signal`, reload on SIGHUP.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use futures::StreamExt;
use tokio::time::timeout;

const BIN: &str = env!("CARGO_BIN_EXE_natrix-server");

struct Proc {
    child: Child,
    dir: tempfile::TempDir,
}

impl Proc {
    /// Starts the binary with `args` plus a random port and a ports file, and waits until
    /// it listens.
    fn start(config: Option<&str>, args: &[&str]) -> (Self, String) {
        let dir = tempfile::tempdir().expect("tempdir");
        let mut cmd = Command::new(BIN);
        if let Some(conf) = config {
            let path = dir.path().join("nats.conf");
            std::fs::write(&path, conf).expect("write config");
            cmd.arg("-c").arg(&path);
        }
        cmd.args(["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
            .arg(dir.path())
            .args(args)
            .stdout(Stdio::null())
            .stderr(Stdio::from(
                std::fs::File::create(dir.path().join("stderr.log")).expect("log file"),
            ));
        let child = cmd.spawn().expect("spawn natrix-server");
        let p = Self { child, dir };
        let url = p.wait_url();
        (p, url)
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.path("stderr.log")).unwrap_or_default()
    }

    fn wait_url(&self) -> String {
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let ports = std::fs::read_dir(self.dir.path())
                .expect("read dir")
                .flatten()
                .find(|e| e.file_name().to_string_lossy().ends_with(".ports"));
            if let Some(entry) = ports
                && let Ok(text) = std::fs::read_to_string(entry.path())
                && let Ok(v) = serde_json::from_str::<serde_json::Value>(&text)
                && let Some(url) = v["nats"][0].as_str()
            {
                return url.to_owned();
            }
            assert!(
                Instant::now() < deadline,
                "server did not start: {}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    fn signal(&self, cmd: &str) {
        let pid = self.child.id().to_string();
        let out = Command::new(BIN)
            .arg("--signal")
            .arg(format!("{cmd}={pid}"))
            .output()
            .expect("run --signal");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn wait_exit(&mut self, within: Duration) -> std::process::ExitStatus {
        let deadline = Instant::now() + within;
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                return status;
            }
            assert!(Instant::now() < deadline, "server did not exit");
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn wait_for(mut cond: impl FnMut() -> bool, what: &str) {
    let deadline = Instant::now() + Duration::from_secs(5);
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A config written for nats-server: users with permissions, limits, comments of both
/// kinds, variables and units.
const NATS_CONF: &str = r#"
# Written the way nats-server configs are.
server_name: conf_test
max_payload: 2KB          // size units
ping_interval: "30s"
write_deadline = "5s"
PASS: "s3cret"
authorization {
  users = [
    { user: admin, password: $PASS }
    { user: app, password: apppw, permissions: {
        publish: { allow: ["orders.>", "_INBOX.>"] }
        subscribe: "orders.*"
    } }
  ]
  timeout: 1
}
"#;

#[tokio::test]
async fn runs_nats_server_config_files() {
    let (_p, url) = Proc::start(Some(NATS_CONF), &[]);
    // Credentials are required and checked.
    let bad = async_nats::ConnectOptions::with_user_and_password("admin".into(), "nope".into())
        .connect(&url);
    assert!(
        timeout(Duration::from_secs(3), bad)
            .await
            .map_or(true, |r| r.is_err())
    );
    let admin = async_nats::ConnectOptions::with_user_and_password("admin".into(), "s3cret".into())
        .connect(&url)
        .await
        .expect("admin connects");
    assert_eq!(admin.server_info().max_payload, 2048);
    assert_eq!(admin.server_info().server_name, "conf_test");
    assert!(admin.server_info().auth_required);
    // Permissions apply: app may not subscribe outside orders.*.
    let (tx, mut rx) = tokio::sync::mpsc::unbounded_channel();
    let app = async_nats::ConnectOptions::with_user_and_password("app".into(), "apppw".into())
        .event_callback(move |e| {
            let tx = tx.clone();
            async move {
                let _ = tx.send(e.to_string());
            }
        })
        .connect(&url)
        .await
        .expect("app connects");
    let _denied = app.subscribe("secrets").await.unwrap();
    let mut allowed = app.subscribe("orders.new").await.unwrap();
    app.flush().await.unwrap();
    loop {
        let event = timeout(Duration::from_secs(5), rx.recv())
            .await
            .unwrap()
            .unwrap();
        if event.contains("Permissions Violation") {
            assert!(
                event.contains("Permissions Violation for Subscription to \"secrets\""),
                "{event}"
            );
            break;
        }
    }
    admin.publish("orders.new", "o1".into()).await.unwrap();
    admin.flush().await.unwrap();
    let m = timeout(Duration::from_secs(5), allowed.next())
        .await
        .unwrap()
        .unwrap();
    assert_eq!(&m.payload[..], b"o1");
}

#[test]
fn bad_config_reports_position_and_fails() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("bad.conf");
    std::fs::write(
        &path,
        "port: 4222\nauthorization {\n  users = [ { user: a password: } ]\n}\n",
    )
    .unwrap();
    let out = Command::new(BIN).arg("-c").arg(&path).output().unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    let loc = format!("{}:3:", path.display());
    assert!(err.contains(&loc), "expected {loc} in: {err}");

    std::fs::write(&path, "max_payload: \"lots\"\n").unwrap();
    let out = Command::new(BIN).arg("-c").arg(&path).output().unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains(&format!("{}:1:", path.display())));

    let out = Command::new(BIN)
        .arg("-c")
        .arg(dir.path().join("missing.conf"))
        .output()
        .unwrap();
    assert!(!out.status.success());
}

#[tokio::test]
async fn flags_override_the_config_file() {
    let (_p, url) = Proc::start(
        Some("server_name: from_file\nmax_payload: 4KB\n"),
        &["-n", "from_flag"],
    );
    let nc = async_nats::connect(&url).await.unwrap();
    assert_eq!(nc.server_info().server_name, "from_flag");
    assert_eq!(nc.server_info().max_payload, 4096);
}

#[tokio::test]
async fn user_and_pass_flags() {
    let (_p, url) = Proc::start(None, &["--user", "u", "--pass", "p"]);
    assert!(
        timeout(Duration::from_secs(3), async_nats::connect(&url))
            .await
            .map_or(true, |r| r.is_err())
    );
    async_nats::ConnectOptions::with_user_and_password("u".into(), "p".into())
        .connect(&url)
        .await
        .expect("connects with the flag credentials");
}

#[test]
fn pid_file_signals_and_cleanup() {
    let dir = tempfile::tempdir().unwrap();
    let pid_file = dir.path().join("natrix.pid");
    let (mut p, _url) = Proc::start(None, &["-P", pid_file.to_str().unwrap()]);
    wait_for(|| pid_file.exists(), "pid file");
    let pid: u32 = std::fs::read_to_string(&pid_file)
        .unwrap()
        .trim()
        .parse()
        .unwrap();
    assert_eq!(pid, p.child.id());
    // Reload and reopen keep it running.
    for cmd in ["reload", "reopen"] {
        let out = Command::new(BIN)
            .arg("--signal")
            .arg(format!("{cmd}={}", pid_file.display()))
            .output()
            .unwrap();
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    // Without -c there is nothing to reload: nats-server's refusal, and it keeps running.
    wait_for(
        || {
            p.log()
                .contains("can only reload config when a file is provided using -c or --config")
        },
        "reload log",
    );
    assert!(p.child.try_wait().unwrap().is_none());
    p.signal("quit");
    let status = p.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
    assert!(!pid_file.exists(), "pid file removed on exit");
}

#[tokio::test]
async fn reload_applies_limits_and_refuses_server_name_change() {
    let conf = "max_payload: 1KB\n";
    let (p, url) = Proc::start(Some(conf), &[]);
    let nc = async_nats::connect(&url).await.unwrap();
    assert_eq!(nc.server_info().max_payload, 1024);
    let conf_path = p.path("nats.conf");
    // A reloadable change takes effect for new connections.
    std::fs::write(&conf_path, "max_payload: 8KB\n").unwrap();
    p.signal("reload");
    wait_for(
        || p.log().contains("Reloaded server configuration"),
        "reload",
    );
    let nc2 = async_nats::connect(&url).await.unwrap();
    assert_eq!(nc2.server_info().max_payload, 8192);
    // A server name change is refused, and the server keeps running on the old config.
    std::fs::write(&conf_path, "max_payload: 8KB\nserver_name: other\n").unwrap();
    p.signal("reload");
    wait_for(
        || {
            p.log()
                .contains("config reload not supported for ServerName")
        },
        "refused reload",
    );
    let nc3 = async_nats::connect(&url).await.unwrap();
    assert_eq!(nc3.server_info().max_payload, 8192);
    // A broken file is reported with its position and ignored.
    std::fs::write(&conf_path, "max_payload: {\n").unwrap();
    p.signal("reload");
    wait_for(
        || p.log().contains("Failed to reload"),
        "parse error on reload",
    );
    assert!(async_nats::connect(&url).await.is_ok());
}

#[test]
fn sigterm_with_the_lame_duck_signal_leaves_lame_duck_running() {
    // A Kubernetes preStop hook sends ldm and the kubelet sends SIGTERM as soon as the hook
    // returns: both can be pending when the server looks. SIGTERM must find the server in
    // lame duck (and leave it be), not shut it down at once.
    let (mut p, _url) = Proc::start(Some("lame_duck_duration: \"30s\"\n"), &[]);
    // The signal handlers are up once a reload is answered (the server says it is ready
    // a moment before it installs them).
    p.signal("reload");
    wait_for(
        || p.log().contains("Reloaded server configuration"),
        "reload log",
    );
    let pid = p.child.id();
    let out = Command::new("sh")
        .arg("-c")
        .arg(format!("kill -USR2 {pid}; kill -TERM {pid}"))
        .output()
        .expect("run kill");
    assert!(out.status.success(), "{out:?}");
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        p.child.try_wait().expect("try_wait").is_none(),
        "the server exited at once:\n{}",
        p.log()
    );
    wait_for(|| p.log().contains("Entering lame duck mode"), "lame duck");
    p.signal("quit");
    let status = p.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}

#[test]
fn lame_duck_signal_then_quit() {
    // nats-server's minimum lame-duck duration is 30s; the spread of closes is covered by
    // the in-process test, here the signal path and the INFO to clients.
    let (mut p, url) = Proc::start(Some("lame_duck_duration: \"30s\"\n"), &[]);
    let addr = url.trim_start_matches("nats://").to_owned();
    let mut client = std::net::TcpStream::connect(&addr).unwrap();
    std::io::Write::write_all(&mut client, b"CONNECT {\"verbose\":false}\r\n").unwrap();
    p.signal("ldm");
    client
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut all = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while !String::from_utf8_lossy(&all).contains("\"ldm\":true") {
        assert!(
            Instant::now() < deadline,
            "{}",
            String::from_utf8_lossy(&all)
        );
        let mut buf = [0u8; 4096];
        if let Ok(n) = std::io::Read::read(&mut client, &mut buf) {
            all.extend_from_slice(&buf[..n]);
        }
    }
    // New clients are refused while in lame-duck mode.
    wait_for(
        || std::net::TcpStream::connect(&addr).is_err(),
        "listener closed",
    );
    p.signal("quit");
    let status = p.wait_exit(Duration::from_secs(10));
    assert!(status.success(), "{status:?}");
}
