//! Differential protocol test: every case in `compat/cases.txt` runs against the reference
//! nats-server and against natrix-server, and what each writes back is compared byte for
//! byte. INFO lines are compared by their key set and the values that must agree; server
//! ids, names, ports and versions are masked. A case whose answers differ fails unless
//! `docs/compatibility.md` lists it (a table row starting `| compat: <case name> |`) with
//! the reason.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;

use common::{NATRIX, reference_binary};
/// How long a server must stay silent before a case's answer is considered complete.
const QUIET: Duration = Duration::from_millis(250);
/// Upper bound for one case (well below the 2 s first PING).
const CASE_LIMIT: Duration = Duration::from_millis(1500);

/// INFO keys whose values legitimately differ per server or per connection, or that one
/// side adds (documented in docs/compatibility.md).
const INFO_MASKED: &[&str] = &[
    "server_id",
    "server_name",
    "version",
    "go",
    "git_commit",
    "host",
    "port",
    "client_id",
    "client_ip",
    "nonce",
    "xkey",
    "api_lvl",
    "natrix_version",
];

struct Running {
    child: Child,
    port: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Running {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start(bin: &Path, profile: &str) -> Running {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut cmd = Command::new(bin);
    cmd.args(["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
        .arg(dir.path())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    match profile {
        "default" => {}
        "limits" => {
            let conf = dir.path().join("limits.conf");
            std::fs::write(
                &conf,
                "max_payload: 64\nmax_control_line: 256\nmax_subscriptions: 3\n",
            )
            .expect("write config");
            cmd.arg("-c").arg(conf);
        }
        "auth" => {
            cmd.args(["--user", "a", "--pass", "b"]);
        }
        other => panic!("unknown profile {other}"),
    }
    let child = cmd
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
    let deadline = Instant::now() + Duration::from_secs(10);
    let port = loop {
        let found = std::fs::read_dir(dir.path())
            .expect("read dir")
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".ports"))
            .and_then(|e| std::fs::read_to_string(e.path()).ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["nats"][0].as_str().map(str::to_owned))
            .and_then(|url| url.rsplit(':').next().and_then(|p| p.parse::<u16>().ok()));
        if let Some(port) = found {
            break port;
        }
        assert!(Instant::now() < deadline, "{} did not start", bin.display());
        std::thread::sleep(Duration::from_millis(20));
    };
    Running {
        child,
        port,
        _dir: dir,
    }
}

/// Decodes `\r`, `\n`, `\t`, `\\` and `\xNN`.
fn unescape(s: &str) -> Vec<u8> {
    let mut out = Vec::new();
    let b = s.as_bytes();
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\' && i + 1 < b.len() {
            match b[i + 1] {
                b'r' => out.push(b'\r'),
                b'n' => out.push(b'\n'),
                b't' => out.push(b'\t'),
                b'\\' => out.push(b'\\'),
                b'x' if i + 3 < b.len() => {
                    let hex = std::str::from_utf8(&b[i + 2..i + 4]).unwrap_or("00");
                    out.push(u8::from_str_radix(hex, 16).unwrap_or(0));
                    i += 2;
                }
                other => {
                    out.push(b'\\');
                    out.push(other);
                }
            }
            i += 2;
        } else {
            out.push(b[i]);
            i += 1;
        }
    }
    out
}

/// What one server answered to one case.
#[derive(Debug, PartialEq, Eq)]
struct Answer {
    greeting: String,
    output: String,
    closed: bool,
}

async fn run_case(port: u16, input: &[u8]) -> Answer {
    let mut sock = TcpStream::connect(("127.0.0.1", port))
        .await
        .expect("connect");
    let mut greeting = Vec::new();
    let mut buf = [0u8; 65536];
    while !greeting.ends_with(b"\r\n") {
        let n = tokio::time::timeout(Duration::from_secs(2), sock.read(&mut buf))
            .await
            .expect("INFO in time")
            .expect("read INFO");
        assert!(n > 0, "closed before INFO");
        greeting.extend_from_slice(&buf[..n]);
    }
    let _ = sock.write_all(input).await;
    let mut output = Vec::new();
    let mut closed = false;
    let start = Instant::now();
    while start.elapsed() < CASE_LIMIT {
        match tokio::time::timeout(QUIET, sock.read(&mut buf)).await {
            Err(_) => break,
            Ok(Ok(0)) | Ok(Err(_)) => {
                closed = true;
                break;
            }
            Ok(Ok(n)) => output.extend_from_slice(&buf[..n]),
        }
    }
    Answer {
        greeting: normalize(&greeting),
        output: normalize(&output),
        closed,
    }
}

/// Masks INFO lines to their comparable content; everything else stays byte-exact
/// (rendered with escapes for readable diffs).
fn normalize(bytes: &[u8]) -> String {
    let mut out = String::new();
    for line in bytes.split_inclusive(|&b| b == b'\n') {
        if let Some(rest) = line.strip_prefix(b"INFO ") {
            let (json, tail) = match rest.iter().rposition(|&b| b == b'}') {
                Some(i) => (&rest[..=i], &rest[i + 1..]),
                None => (rest, &b""[..]),
            };
            match serde_json::from_slice::<BTreeMap<String, serde_json::Value>>(json) {
                Ok(map) => {
                    let kept: BTreeMap<&String, &serde_json::Value> = map
                        .iter()
                        .filter(|(k, _)| !INFO_MASKED.contains(&k.as_str()))
                        .collect();
                    out.push_str(&format!("INFO {kept:?}{}", escape(tail)));
                }
                Err(_) => out.push_str(&escape(line)),
            }
        } else {
            out.push_str(&escape(line));
        }
    }
    out
}

fn escape(b: &[u8]) -> String {
    b.escape_ascii().to_string()
}

/// Case names that docs/compatibility.md allows to differ.
fn allowed_differences() -> BTreeSet<String> {
    let doc = Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/compatibility.md");
    let text = std::fs::read_to_string(&doc).expect("docs/compatibility.md");
    text.lines()
        .filter_map(|l| l.strip_prefix("| compat: "))
        .filter_map(|l| l.split('|').next())
        .map(|name| name.trim().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn protocol_answers_match_nats_server() {
    let Some(reference) = reference_binary() else {
        assert!(
            std::env::var_os("CI").is_none(),
            "reference nats-server not found: run scripts/deps (or set NATS_SERVER_BIN)"
        );
        eprintln!("SKIPPED: reference nats-server not installed; run scripts/deps");
        return;
    };
    let cases_text = include_str!("compat/cases.txt");
    let cases: Vec<(String, String, Vec<u8>)> = cases_text
        .lines()
        .filter(|l| !l.trim().is_empty() && !l.starts_with('#'))
        .map(|l| {
            let mut parts = l.splitn(3, " | ");
            let profile = parts.next().unwrap_or_default().trim().to_owned();
            let name = parts.next().unwrap_or_default().trim().to_owned();
            let bytes = unescape(parts.next().unwrap_or_default());
            (profile, name, bytes)
        })
        .collect();
    assert!(cases.len() >= 60, "only {} cases", cases.len());
    let allowed = allowed_differences();
    // Every case gets fresh servers, so cases cannot see each other's messages and can
    // run in parallel.
    let limit = Arc::new(tokio::sync::Semaphore::new(8));
    let mut tasks = Vec::new();
    for (profile, name, bytes) in cases {
        let limit = limit.clone();
        let reference = reference.clone();
        tasks.push(tokio::spawn(async move {
            let _permit = limit.acquire_owned().await.expect("semaphore");
            let p = profile.clone();
            let (ref_server, natrix_server) = tokio::task::spawn_blocking(move || {
                (start(&reference, &p), start(Path::new(NATRIX), &p))
            })
            .await
            .expect("start servers");
            let (a, b) = tokio::join!(
                run_case(ref_server.port, &bytes),
                run_case(natrix_server.port, &bytes)
            );
            tokio::task::spawn_blocking(move || drop((ref_server, natrix_server)));
            (profile, name, a, b)
        }));
    }
    let mut unexplained = Vec::new();
    let mut explained = 0;
    let total = tasks.len();
    for t in tasks {
        let (profile, name, reference, natrix) = t.await.expect("case task");
        if reference == natrix {
            continue;
        }
        if allowed.contains(&name) {
            explained += 1;
            continue;
        }
        unexplained.push(format!(
            "[{profile}] {name}\n  nats-server: {reference:?}\n  natrix:      {natrix:?}"
        ));
    }
    eprintln!(
        "compat: {total} cases, {} identical, {explained} documented differences, {} unexplained",
        total - explained - unexplained.len(),
        unexplained.len()
    );
    assert!(
        unexplained.is_empty(),
        "answers differ from nats-server:\n{}",
        unexplained.join("\n")
    );
}
