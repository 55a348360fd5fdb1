//! natscli (the `nats` command) against natrix-server: pub, sub, req, reply and bench work
//! unchanged.

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_natrix-server");

fn natscli() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NATS_CLI_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    let cache = std::env::var("NATRIX_CACHE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| {
            PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/natrix")
        });
    Some(cache.join("bin/nats")).filter(|p| p.exists())
}

/// The natscli binary, or `None` (with a notice) outside CI when it is not installed.
fn cli_or_skip() -> Option<PathBuf> {
    let cli = natscli();
    if cli.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "natscli not found: run scripts/deps (or set NATS_CLI_BIN)"
        );
        eprintln!("SKIPPED: natscli not installed; run scripts/deps");
    }
    cli
}

struct Server {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn server() -> Server {
    let dir = tempfile::tempdir().unwrap();
    let child = Command::new(BIN)
        .args(["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let url = loop {
        let url = std::fs::read_dir(dir.path())
            .unwrap()
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".ports"))
            .and_then(|e| std::fs::read_to_string(e.path()).ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["nats"][0].as_str().map(str::to_owned));
        if let Some(url) = url {
            break url;
        }
        assert!(Instant::now() < deadline, "server did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    Server {
        child,
        url,
        _dir: dir,
    }
}

fn nats(cli: &PathBuf, url: &str, args: &[&str]) -> Command {
    let mut cmd = Command::new(cli);
    cmd.args(["--no-context", "-s", url]).args(args);
    cmd
}

/// Runs a command to completion within `limit`, returning its combined output.
fn run(mut cmd: Command, limit: Duration) -> (bool, String) {
    let mut child = cmd
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("spawn natscli");
    let deadline = Instant::now() + limit;
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().expect("output");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text)
}

#[test]
fn pub_and_sub() {
    let Some(cli) = cli_or_skip() else { return };
    let s = server();
    let mut sub = nats(&cli, &s.url, &["sub", "greet.*", "--count", "3", "--raw"]);
    let sub = sub
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    for i in 0..3 {
        let (ok, out) = run(
            nats(
                &cli,
                &s.url,
                &["pub", &format!("greet.n{i}"), &format!("hello {i}")],
            ),
            Duration::from_secs(10),
        );
        assert!(ok, "{out}");
    }
    let out = sub.wait_with_output().unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    for i in 0..3 {
        assert!(text.contains(&format!("hello {i}")), "{text}");
    }
}

#[test]
fn request_and_reply() {
    let Some(cli) = cli_or_skip() else { return };
    let s = server();
    let mut reply = nats(&cli, &s.url, &["reply", "svc.time", "pong from natrix"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(500));
    let (ok, out) = run(
        nats(&cli, &s.url, &["req", "svc.time", "ping", "--raw"]),
        Duration::from_secs(10),
    );
    let _ = reply.kill();
    let _ = reply.wait();
    assert!(ok, "{out}");
    assert!(out.contains("pong from natrix"), "{out}");
    // Without a responder natscli reports no responders (the 503 status).
    let (ok, out) = run(
        nats(&cli, &s.url, &["req", "svc.none", "ping"]),
        Duration::from_secs(10),
    );
    let _ = ok;
    assert!(out.to_lowercase().contains("no responders"), "{out}");
}

#[test]
fn bench_pub_sub() {
    let Some(cli) = cli_or_skip() else { return };
    let s = server();
    let mut sub = nats(
        &cli,
        &s.url,
        &[
            "bench",
            "sub",
            "bench.t",
            "--msgs",
            "20000",
            "--size",
            "64",
            "--no-progress",
        ],
    );
    let sub = sub
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let (ok, out) = run(
        nats(
            &cli,
            &s.url,
            &[
                "bench",
                "pub",
                "bench.t",
                "--msgs",
                "20000",
                "--size",
                "64",
                "--no-progress",
            ],
        ),
        Duration::from_secs(30),
    );
    assert!(ok, "{out}");
    assert!(out.contains("msgs/sec"), "{out}");
    let out = sub.wait_with_output().unwrap();
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{text}");
    assert!(text.contains("subscriber stats"), "{text}");
}

#[test]
fn bench_service_request_reply() {
    let Some(cli) = cli_or_skip() else { return };
    let s = server();
    let mut serve = nats(
        &cli,
        &s.url,
        &[
            "bench",
            "service",
            "serve",
            "bench.svc",
            "--clients",
            "2",
            "--no-progress",
        ],
    )
    .stdout(Stdio::null())
    .stderr(Stdio::null())
    .spawn()
    .unwrap();
    std::thread::sleep(Duration::from_millis(700));
    let (ok, out) = run(
        nats(
            &cli,
            &s.url,
            &[
                "bench",
                "service",
                "request",
                "bench.svc",
                "--msgs",
                "2000",
                "--no-progress",
            ],
        ),
        Duration::from_secs(30),
    );
    let _ = serve.kill();
    let _ = serve.wait();
    assert!(ok, "{out}");
    assert!(out.contains("requester stats"), "{out}");
}
