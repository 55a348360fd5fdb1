//! JetStream through natscli (the `nats` command): streams, consumers, KV, object store,
//! publishing with headers, account info, health checks and backups. Each scenario runs
//! the same commands against natrix-server and the reference nats-server (both with
//! `jetstream { store_dir }`) and writes a transcript of what the CLI printed, with ids,
//! times and versions masked; the transcripts must be equal step by step. Every step that
//! differs is listed in the failure, so one run shows all the differences of a scenario.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use base64::Engine as _;
use common::{NATRIX, Proc, start};
use serde_json::Value;

/// The natscli binary: `NATS_CLI_BIN`, else the caches `scripts/deps` fills.
fn natscli() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NATS_CLI_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    cached_bin("nats")
}

fn cached_bin(name: &str) -> Option<PathBuf> {
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_default());
    let mut dirs = Vec::new();
    if let Ok(c) = std::env::var("NATRIX_CACHE") {
        dirs.push(PathBuf::from(c));
    }
    dirs.push(home.join(".cache/natrix"));
    dirs.push(home.join(".cache/natrix-cold"));
    dirs.into_iter()
        .map(|d| d.join("bin").join(name))
        .find(|p| p.exists())
}

/// The reference nats-server (`NATS_SERVER_BIN` or a cache).
fn reference() -> Option<PathBuf> {
    common::reference_binary().or_else(|| {
        std::env::var_os("NATS_SERVER_BIN")
            .is_none()
            .then(|| cached_bin("nats-server"))
            .flatten()
    })
}

/// Both tools, or `None` (with a notice) outside CI.
fn tools_or_skip() -> Option<(PathBuf, PathBuf)> {
    let found = natscli().zip(reference());
    if found.is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "natscli or nats-server not found: run scripts/deps"
        );
        eprintln!("SKIPPED: natscli or nats-server not installed; run scripts/deps");
    }
    found
}

/// One server under test and the scratch directory of its scenario.
struct Env {
    cli: PathBuf,
    url: String,
    /// Scratch space for files the scenario writes or reads.
    work: PathBuf,
}

/// What one `nats` invocation did.
struct Out {
    ok: bool,
    stdout: String,
    stderr: String,
}

impl Out {
    /// Exit status and both streams, trimmed, for error steps.
    fn all(&self) -> String {
        format!(
            "ok={} {} {}",
            self.ok,
            self.stdout.trim(),
            deprecation_free(&self.stderr).trim()
        )
    }

    /// The stdout parsed as JSON and normalized, or the whole output when it is not JSON.
    fn json(&self) -> String {
        match serde_json::from_str::<Value>(self.stdout.trim()) {
            Ok(v) => format!("ok={} {}", self.ok, normalize(v)),
            Err(_) => format!("not JSON: {}", mask(&self.all())),
        }
    }

    /// The human output with dates and times masked.
    fn text(&self) -> String {
        format!("ok={} {}", self.ok, mask(self.stdout.trim()))
    }
}

/// Drops natscli's deprecation warnings (they name commands, not outcomes).
fn deprecation_free(s: &str) -> String {
    s.lines()
        .filter(|l| !l.starts_with("WARNING: ") && !l.trim().is_empty())
        .collect::<Vec<_>>()
        .join("\n")
}

impl Env {
    /// Runs `nats` with `args` against this server, killed after 30 s.
    fn nats(&self, args: &[&str]) -> Out {
        let mut cmd = Command::new(&self.cli);
        cmd.args(["--no-context", "--timeout", "5s", "-s", &self.url])
            .args(args)
            .current_dir(&self.work);
        run(cmd, Duration::from_secs(30))
    }

    /// Runs `nats` for `limit` and then stops it (for commands that never end, as
    /// `kv watch`); returns what it printed by then.
    fn nats_for(&self, args: &[&str], limit: Duration) -> Out {
        let mut cmd = Command::new(&self.cli);
        cmd.args(["--no-context", "--timeout", "5s", "-s", &self.url])
            .args(args)
            .current_dir(&self.work);
        run(cmd, limit)
    }
}

fn run(mut cmd: Command, limit: Duration) -> Out {
    let mut child = cmd
        .stdin(Stdio::null())
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
    Out {
        ok: out.status.success(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
    }
}

/// A scenario's record: labelled steps, compared one by one.
#[derive(Default)]
struct Transcript {
    steps: Vec<(String, String)>,
}

impl Transcript {
    fn step(&mut self, label: &str, value: impl Into<String>) {
        self.steps.push((label.to_owned(), value.into()));
    }
}

/// Keys whose values change from run to run: times, server names and versions.
const VOLATILE: &[&str] = &[
    "created",
    "ts",
    "first_ts",
    "last_ts",
    "time",
    "last_active",
    "leader",
    "mtime",
    "nuid",
    "_nats.ver",
    "_nats.level",
    "server_id",
    "server_name",
];

/// Masks volatile values (keeping the key, so a missing field still shows) and decodes
/// base64 headers into their sorted lines (natscli sends `-H` headers in map order).
fn normalize(v: Value) -> Value {
    match v {
        Value::Object(m) => Value::Object(
            m.into_iter()
                .map(|(k, v)| {
                    let v = if VOLATILE.contains(&k.as_str()) {
                        Value::String("<volatile>".into())
                    } else if k == "hdrs" {
                        Value::String(header_lines(v.as_str().unwrap_or_default()))
                    } else {
                        normalize(v)
                    };
                    (k, v)
                })
                .collect(),
        ),
        Value::Array(a) => Value::Array(a.into_iter().map(normalize).collect()),
        v => v,
    }
}

fn header_lines(b64: &str) -> String {
    let raw = base64::engine::general_purpose::STANDARD
        .decode(b64)
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&raw);
    let mut lines: Vec<&str> = text.split("\r\n").filter(|l| !l.is_empty()).collect();
    lines.sort_unstable();
    lines.join("|")
}

/// Masks dates (`2026-01-02`), clock times (`03:04:05.678`), and sorts each run of
/// indented `Key: value` header lines (natscli prints headers in map order).
fn mask(s: &str) -> String {
    let mut out: Vec<String> = Vec::new();
    let mut run: Vec<String> = Vec::new();
    for line in s.lines() {
        let m = mask_line(line);
        let header_like = line.starts_with("  ") && !line.starts_with("   ") && line.contains(": ");
        if header_like {
            run.push(m);
        } else {
            run.sort();
            out.append(&mut run);
            out.push(m);
        }
    }
    run.sort();
    out.append(&mut run);
    out.join("\n")
}

fn mask_line(line: &str) -> String {
    // Server names and versions (the hosting API level is a version too).
    let trimmed = line.trim_start();
    for key in [
        "Leader:",
        "Host Version:",
        "Connected Server ID:",
        "Connected Server Version:",
    ] {
        if trimmed.starts_with(key) {
            return format!("{}{key} <server>", &line[..line.len() - trimmed.len()]);
        }
    }
    if let Some(at) = line.find(" hosted at level ") {
        return format!("{} hosted at level <level>", mask_line(&line[..at]));
    }
    let b = line.as_bytes();
    let digits =
        |at: usize, n: usize| at + n <= b.len() && b[at..at + n].iter().all(u8::is_ascii_digit);
    let mut out = String::new();
    let mut i = 0;
    while i < b.len() {
        if digits(i, 4)
            && b.get(i + 4) == Some(&b'-')
            && digits(i + 5, 2)
            && b.get(i + 7) == Some(&b'-')
            && digits(i + 8, 2)
        {
            out.push_str("<date>");
            i += 10;
        } else if digits(i, 2)
            && b.get(i + 2) == Some(&b':')
            && digits(i + 3, 2)
            && b.get(i + 5) == Some(&b':')
            && digits(i + 6, 2)
        {
            out.push_str("<time>");
            i += 8;
            if b.get(i) == Some(&b'.') {
                i += 1;
                while i < b.len() && b[i].is_ascii_digit() {
                    i += 1;
                }
            }
        } else {
            let c = line[i..].chars().next().expect("char");
            out.push(c);
            i += c.len_utf8();
        }
    }
    out
}

/// The lines of `s` that start (after spaces) with one of `keys`, masked.
fn lines_with(s: &str, keys: &[&str]) -> String {
    s.lines()
        .filter(|l| keys.iter().any(|k| l.trim_start().starts_with(k)))
        .map(|l| mask_line(l.trim()))
        .collect::<Vec<_>>()
        .join("\n")
}

fn js_conf(store: &Path) -> String {
    format!("jetstream {{ store_dir: \"{}\" }}\n", store.display())
}

/// A server with JetStream in a fresh store directory; the scenario's scratch directory.
struct Running {
    proc: Proc,
    _store: tempfile::TempDir,
    work: tempfile::TempDir,
}

fn start_js(bin: &Path) -> Running {
    let store = tempfile::tempdir().expect("store dir");
    let proc = start(bin, &js_conf(store.path()), false);
    Running {
        proc,
        _store: store,
        work: tempfile::tempdir().expect("work dir"),
    }
}

/// Runs `scenario` on nats-server, then on natrix-server, and fails listing every step
/// whose outcome differs.
fn differential(name: &str, scenario: impl Fn(&Env, &mut Transcript)) {
    let Some((cli, reference_bin)) = tools_or_skip() else {
        return;
    };
    let theirs = start_js(&reference_bin);
    let env = Env {
        cli: cli.clone(),
        url: format!("nats://127.0.0.1:{}", theirs.proc.port),
        work: theirs.work.path().to_path_buf(),
    };
    let mut want = Transcript::default();
    scenario(&env, &mut want);
    let ours = start_js(Path::new(NATRIX));
    let env = Env {
        cli,
        url: format!("nats://127.0.0.1:{}", ours.proc.port),
        work: ours.work.path().to_path_buf(),
    };
    let mut got = Transcript::default();
    scenario(&env, &mut got);
    let mut diffs = Vec::new();
    for (i, (g, w)) in got.steps.iter().zip(&want.steps).enumerate() {
        assert_eq!(g.0, w.0, "scenario steps out of step");
        if g.1 != w.1 {
            diffs.push(format!(
                "step {i} `{}`:\n    natrix:      {}\n    nats-server: {}",
                g.0, g.1, w.1
            ));
        }
    }
    assert_eq!(got.steps.len(), want.steps.len(), "transcript lengths");
    let log = ours.proc.log_text();
    let warnings: Vec<&str> = log
        .lines()
        .filter(|l| l.contains("[ERR]") || l.contains("[WRN]") || l.contains("panic"))
        .collect();
    assert!(
        diffs.is_empty(),
        "{name}: {} of {} steps differ from nats-server:\n{}\n(natrix warnings and errors:\n{})",
        diffs.len(),
        got.steps.len(),
        diffs.join("\n"),
        warnings.join("\n")
    );
}

const ORDERS_FLAGS: &[&str] = &[
    "--subjects",
    "orders.>",
    "--storage",
    "file",
    "--retention",
    "limits",
    "--discard",
    "old",
    "--max-msgs=-1",
    "--max-bytes=-1",
    "--max-age=-1",
    "--max-msg-size=-1",
    "--max-msgs-per-subject=-1",
    "--dupe-window=2m",
    "--replicas=1",
    "--no-allow-rollup",
    "--no-deny-delete",
    "--no-deny-purge",
    "--allow-direct",
    "--defaults",
];

fn add_orders(env: &Env) -> Out {
    let mut args = vec!["stream", "add", "ORDERS", "--json"];
    args.extend_from_slice(ORDERS_FLAGS);
    env.nats(&args)
}

/// The JSON a `nats stream add --json` prints after its "created" line.
fn json_after_banner(out: &Out) -> String {
    // After a banner, or after `stream edit`'s diff of the Go structs.
    let start = if out.stdout.starts_with('{') {
        0
    } else {
        out.stdout.find("\n{").unwrap_or(out.stdout.len())
    };
    match serde_json::from_str::<Value>(out.stdout[start..].trim()) {
        Ok(v) => format!("ok={} {}", out.ok, normalize(v)),
        Err(_) => format!("not JSON: {}", out.all()),
    }
}

#[test]
fn streams_publish_get_edit_purge_rm() {
    differential("streams", |env, t| {
        let out = add_orders(env);
        t.step(
            "stream add banner",
            out.stdout.lines().next().unwrap_or_default(),
        );
        t.step("stream add json", json_after_banner(&out));
        t.step(
            "stream info -j (empty)",
            env.nats(&["stream", "info", "ORDERS", "-j"]).json(),
        );
        t.step(
            "stream info human (empty)",
            lines_with(
                &env.nats(&["stream", "info", "ORDERS"]).stdout,
                &[
                    "Subjects:",
                    "Messages:",
                    "Bytes:",
                    "First Sequence:",
                    "Last Sequence:",
                    "Required API Level:",
                    "Host Version:",
                ],
            ),
        );
        t.step("stream ls -j", env.nats(&["stream", "ls", "-j"]).json());
        t.step("stream ls -n", env.nats(&["stream", "ls", "-n"]).all());
        // Headers and de-duplication through `nats pub` and `nats req`.
        let p = env.nats(&[
            "pub",
            "orders.new",
            "hello",
            "-H",
            "X-Trace:t1",
            "-H",
            "Nats-Msg-Id:m1",
            "-J",
        ]);
        t.step(
            "pub -J with msg id",
            lines_with(&p.stdout, &["Stored in Stream"]),
        );
        let p = env.nats(&[
            "pub",
            "orders.new",
            "hello again",
            "-H",
            "Nats-Msg-Id:m1",
            "-J",
        ]);
        t.step(
            "pub -J duplicate",
            lines_with(&p.stdout, &["Stored in Stream"]),
        );
        let r = env.nats(&[
            "req",
            "orders.new",
            "hello",
            "-H",
            "Nats-Msg-Id:m1",
            "--raw",
        ]);
        t.step("req duplicate ack (JSON)", r.json());
        t.step("req duplicate ack (bytes)", r.stdout.trim());
        let r = env.nats(&[
            "req",
            "orders.new",
            "second",
            "-H",
            "Nats-Msg-Id:m2",
            "--raw",
        ]);
        t.step("req new id ack (bytes)", r.stdout.trim());
        let r = env.nats(&[
            "req",
            "orders.x",
            "x",
            "-H",
            "Nats-Expected-Last-Sequence:1",
            "--raw",
        ]);
        t.step("req wrong expected last seq (JSON)", r.json());
        t.step("req wrong expected last seq (bytes)", r.stdout.trim());
        let r = env.nats(&[
            "req",
            "orders.x",
            "x",
            "-H",
            "Nats-Expected-Last-Sequence:2",
            "--raw",
        ]);
        t.step("req right expected last seq (bytes)", r.stdout.trim());
        t.step(
            "stream get 1 -j",
            env.nats(&["stream", "get", "ORDERS", "1", "-j"]).json(),
        );
        t.step(
            "stream get 1 human",
            mask(&env.nats(&["stream", "get", "ORDERS", "1"]).stdout)
                .lines()
                .skip(1)
                .collect::<Vec<_>>()
                .join("\n"),
        );
        t.step(
            "stream get --last-for orders.x -j",
            env.nats(&["stream", "get", "ORDERS", "--last-for", "orders.x", "-j"])
                .json(),
        );
        t.step(
            "stream get missing",
            env.nats(&["stream", "get", "ORDERS", "99"]).all(),
        );
        t.step(
            "stream info -j (4 msgs)",
            env.nats(&["stream", "info", "ORDERS", "-j"]).json(),
        );
        t.step(
            "stream rmm 2",
            env.nats(&["stream", "rmm", "ORDERS", "2", "-f"]).all(),
        );
        t.step(
            "stream rmm 2 again",
            env.nats(&["stream", "rmm", "ORDERS", "2", "-f"]).all(),
        );
        t.step(
            "stream edit",
            json_after_banner(&env.nats(&[
                "stream",
                "edit",
                "ORDERS",
                "--max-msgs",
                "100",
                "--description",
                "the orders",
                "-f",
                "-j",
            ])),
        );
        t.step(
            "stream edit refused (storage)",
            env.nats(&["stream", "edit", "ORDERS", "--storage", "memory", "-f"])
                .all(),
        );
        t.step(
            "stream purge --subject",
            json_after_banner(&env.nats(&[
                "stream",
                "purge",
                "ORDERS",
                "--subject",
                "orders.x",
                "-f",
                "-j",
            ])),
        );
        t.step(
            "stream purge all",
            json_after_banner(&env.nats(&["stream", "purge", "ORDERS", "-f", "-j"])),
        );
        t.step(
            "stream add clash",
            env.nats(&[
                "stream",
                "add",
                "ORDERS",
                "--subjects",
                "other.>",
                "--defaults",
            ])
            .all(),
        );
        t.step(
            "stream add overlap",
            env.nats(&[
                "stream",
                "add",
                "OVERLAP",
                "--subjects",
                "orders.new",
                "--defaults",
            ])
            .all(),
        );
        // Expectation headers, on a stream of their own.
        t.step(
            "stream add CHECKS",
            env.nats(&[
                "stream",
                "add",
                "CHECKS",
                "--subjects",
                "checks.*",
                "--defaults",
            ])
            .ok
            .to_string(),
        );
        let r = env.nats(&["req", "checks.a", "1", "-H", "Nats-Msg-Id:c1", "--raw"]);
        t.step("checks: first with msg id", r.json());
        let r = env.nats(&["req", "checks.b", "2", "--raw"]);
        t.step("checks: second without msg id", r.json());
        let r = env.nats(&[
            "req",
            "checks.a",
            "3",
            "-H",
            "Nats-Expected-Last-Msg-Id:c1",
            "--raw",
        ]);
        t.step("checks: expected last msg id c1 (last had none)", r.json());
        let r = env.nats(&[
            "req",
            "checks.a",
            "5",
            "-H",
            "Nats-Expected-Stream:OTHER",
            "--raw",
        ]);
        t.step("checks: wrong expected stream", r.json());
        let r = env.nats(&[
            "req",
            "checks.c",
            "6",
            "-H",
            "Nats-Expected-Last-Subject-Sequence:0",
            "--raw",
        ]);
        t.step(
            "checks: expected last subject seq 0 on a new subject",
            r.json(),
        );
        let r = env.nats(&[
            "req",
            "checks.a",
            "7",
            "-H",
            "Nats-Expected-Last-Subject-Sequence:0",
            "--raw",
        ]);
        t.step(
            "checks: expected last subject seq 0 on a used subject",
            r.json(),
        );
        t.step("checks: state", {
            let v: Value =
                serde_json::from_str(&env.nats(&["stream", "info", "CHECKS", "-j"]).stdout)
                    .unwrap_or_default();
            format!(
                "msgs={} last={}",
                v["state"]["messages"], v["state"]["last_seq"]
            )
        });
        t.step(
            "stream rm CHECKS",
            env.nats(&["stream", "rm", "CHECKS", "-f"]).ok.to_string(),
        );
        t.step(
            "stream rm",
            env.nats(&["stream", "rm", "ORDERS", "-f"]).all(),
        );
        t.step(
            "stream ls -n after rm",
            env.nats(&["stream", "ls", "-n"]).all(),
        );
        t.step(
            "stream info missing",
            env.nats(&["stream", "info", "ORDERS"]).all(),
        );
        t.step(
            "stream rm missing",
            env.nats(&["stream", "rm", "ORDERS", "-f"]).all(),
        );
        // A memory stream with limits: what is kept and what the account sees.
        t.step(
            "stream add memory limits",
            json_after_banner(&env.nats(&[
                "stream",
                "add",
                "MEM",
                "--subjects",
                "mem.*",
                "--storage",
                "memory",
                "--max-msgs=3",
                "--max-msgs-per-subject=2",
                "--discard=old",
                "--json",
                "--defaults",
            ])),
        );
        for i in 0..6 {
            let subject = format!("mem.{}", i % 2);
            let body = format!("m{i}");
            env.nats(&["pub", &subject, &body]);
        }
        t.step(
            "memory stream state",
            env.nats(&["stream", "info", "MEM", "-j"]).json(),
        );
        t.step(
            "stream subjects",
            env.nats(&["stream", "subjects", "MEM", "--json"]).json(),
        );
    });
}

/// The outcome line of `nats consumer next` (`subj: ... / tries / cons seq / str seq /
/// pending`) and the message bodies, times masked.
fn next_summary(out: &Out) -> String {
    let mut lines: Vec<String> = out
        .stdout
        .lines()
        .filter(|l| l.contains("subj:"))
        .map(mask_line)
        .collect();
    lines.push(format!("ok={}", out.ok));
    lines.join("\n")
}

#[test]
fn consumers_add_next_info_ls_rm() {
    differential("consumers", |env, t| {
        let out = add_orders(env);
        t.step("stream add", out.ok.to_string());
        for (subject, body) in [
            ("orders.a", "1"),
            ("orders.b", "2"),
            ("orders.a", "3"),
            ("orders.c", "4"),
        ] {
            env.nats(&["pub", subject, body, "-H", "X-Kind:test"]);
        }
        let out = env.nats(&[
            "consumer",
            "add",
            "ORDERS",
            "PULL",
            "--pull",
            "--deliver",
            "all",
            "--ack",
            "explicit",
            "--replay",
            "instant",
            "--filter",
            "orders.>",
            "--max-deliver=-1",
            "--max-pending=100",
            "--no-headers-only",
            "--backoff=none",
            "--wait=1s",
            "--defaults",
        ]);
        t.step(
            "consumer add pull (human)",
            lines_with(
                &out.stdout,
                &[
                    "Information for Consumer",
                    "Durable Name:",
                    "Pull Mode:",
                    "Filter Subject:",
                    "Deliver Policy:",
                    "Ack Policy:",
                    "Ack Wait:",
                    "Replay Policy:",
                    "Max Ack Pending:",
                    "Max Waiting Pulls:",
                    "Last Delivered Message:",
                    "Acknowledgment Floor:",
                    "Outstanding Acks:",
                    "Redelivered Messages:",
                    "Unprocessed Messages:",
                    "Waiting Pulls:",
                ],
            ),
        );
        t.step(
            "consumer info fresh",
            env.nats(&["consumer", "info", "ORDERS", "PULL", "-j"])
                .json(),
        );
        t.step(
            "next 2 (acked)",
            next_summary(&env.nats(&["consumer", "next", "ORDERS", "PULL", "--count", "2"])),
        );
        t.step(
            "next 1 no-ack",
            next_summary(&env.nats(&["consumer", "next", "ORDERS", "PULL", "--no-ack"])),
        );
        std::thread::sleep(Duration::from_millis(1500));
        t.step(
            "next after ack wait (redelivery)",
            next_summary(&env.nats(&["consumer", "next", "ORDERS", "PULL", "--no-ack"])),
        );
        t.step(
            "consumer info with a redelivery pending",
            env.nats(&["consumer", "info", "ORDERS", "PULL", "-j"])
                .json(),
        );
        t.step(
            "next raw (redelivered again, acked)",
            env.nats(&["consumer", "next", "ORDERS", "PULL", "--raw"])
                .all(),
        );
        t.step(
            "next raw (last)",
            env.nats(&["consumer", "next", "ORDERS", "PULL", "--raw"])
                .all(),
        );
        t.step(
            "consumer info drained",
            env.nats(&["consumer", "info", "ORDERS", "PULL", "-j"])
                .json(),
        );
        t.step(
            "next on empty consumer",
            env.nats(&["consumer", "next", "ORDERS", "PULL", "--raw"])
                .ok
                .to_string(),
        );
        // A push consumer with a deliver subject and a filter.
        let out = env.nats(&[
            "consumer",
            "add",
            "ORDERS",
            "PUSH",
            "--target",
            "out.push",
            "--deliver",
            "last",
            "--ack",
            "none",
            "--replay",
            "instant",
            "--filter",
            "orders.a",
            "--heartbeat=-1",
            "--max-deliver=-1",
            "--no-headers-only",
            "--backoff=none",
            "--defaults",
        ]);
        t.step(
            "consumer add push ok",
            mask(out.all().lines().next().unwrap_or_default()),
        );
        t.step(
            "push consumer info",
            env.nats(&["consumer", "info", "ORDERS", "PUSH", "-j"])
                .json(),
        );
        // Config files: the durable from JSON, and a refused config.
        let cfg = env.work.join("c.json");
        std::fs::write(
            &cfg,
            r#"{"durable_name":"FROMFILE","ack_policy":"explicit","deliver_policy":"by_start_sequence","opt_start_seq":3,"max_ack_pending":5,"filter_subjects":["orders.a","orders.c"]}"#,
        )
        .expect("write config");
        let out = env.nats(&[
            "consumer",
            "add",
            "ORDERS",
            "--config",
            cfg.to_str().expect("path"),
        ]);
        t.step("consumer add --config", out.ok.to_string());
        t.step(
            "consumer from file info",
            env.nats(&["consumer", "info", "ORDERS", "FROMFILE", "-j"])
                .json(),
        );
        t.step(
            "next from file",
            next_summary(&env.nats(&["consumer", "next", "ORDERS", "FROMFILE", "--count", "2"])),
        );
        let bad = env.work.join("bad.json");
        std::fs::write(
            &bad,
            r#"{"durable_name":"BAD","ack_policy":"none","deliver_policy":"all","max_ack_pending":5}"#,
        )
        .expect("write config");
        t.step(
            "consumer add ack none with max_ack_pending",
            env.nats(&[
                "consumer",
                "add",
                "ORDERS",
                "--config",
                bad.to_str().expect("path"),
            ])
            .text(),
        );
        t.step(
            "consumer ls -n",
            env.nats(&["consumer", "ls", "ORDERS", "-n"]).all(),
        );
        t.step(
            "consumer ls -j",
            env.nats(&["consumer", "ls", "ORDERS", "-j"]).json(),
        );
        t.step(
            "consumer rm",
            env.nats(&["consumer", "rm", "ORDERS", "PUSH", "-f"]).all(),
        );
        t.step(
            "consumer rm missing",
            env.nats(&["consumer", "rm", "ORDERS", "PUSH", "-f"]).all(),
        );
        t.step(
            "consumer info missing",
            env.nats(&["consumer", "info", "ORDERS", "PUSH"]).all(),
        );
        t.step(
            "consumer ls -n after rm",
            env.nats(&["consumer", "ls", "ORDERS", "-n"]).all(),
        );
        t.step("stream consumer_count", {
            let v: Value =
                serde_json::from_str(&env.nats(&["stream", "info", "ORDERS", "-j"]).stdout)
                    .unwrap_or_default();
            v["state"]["consumer_count"].to_string()
        });
    });
}

#[test]
fn key_value_buckets() {
    differential("kv", |env, t| {
        t.step(
            "kv add",
            env.nats(&["kv", "add", "CFG", "--history", "5"])
                .ok
                .to_string(),
        );
        t.step("kv stream config", {
            let v: Value =
                serde_json::from_str(&env.nats(&["stream", "info", "KV_CFG", "-j"]).stdout)
                    .unwrap_or_default();
            normalize(v["config"].clone()).to_string()
        });
        t.step("put a=1", env.nats(&["kv", "put", "CFG", "a", "1"]).all());
        t.step("put a=2", env.nats(&["kv", "put", "CFG", "a", "2"]).all());
        t.step(
            "get a raw",
            env.nats(&["kv", "get", "CFG", "a", "--raw"]).all(),
        );
        t.step("get a", env.nats(&["kv", "get", "CFG", "a"]).text());
        t.step(
            "create existing a",
            env.nats(&["kv", "create", "CFG", "a", "3"]).all(),
        );
        t.step(
            "create b",
            env.nats(&["kv", "create", "CFG", "b", "3"]).all(),
        );
        t.step(
            "update a wrong revision",
            env.nats(&["kv", "update", "CFG", "a", "9", "1"]).all(),
        );
        t.step(
            "update a at revision 2",
            env.nats(&["kv", "update", "CFG", "a", "9", "2"]).all(),
        );
        t.step("history a", env.nats(&["kv", "history", "CFG", "a"]).text());
        t.step("ls keys", env.nats(&["kv", "ls", "CFG"]).all());
        t.step("del b", env.nats(&["kv", "del", "CFG", "b", "-f"]).all());
        t.step("get deleted b", env.nats(&["kv", "get", "CFG", "b"]).all());
        t.step(
            "create after delete b",
            env.nats(&["kv", "create", "CFG", "b", "again"]).all(),
        );
        t.step(
            "purge a",
            env.nats(&["kv", "purge", "CFG", "a", "-f"]).all(),
        );
        t.step(
            "history a after purge",
            env.nats(&["kv", "history", "CFG", "a"]).text(),
        );
        t.step("get purged a", env.nats(&["kv", "get", "CFG", "a"]).all());
        t.step("ls keys after purge", env.nats(&["kv", "ls", "CFG"]).all());
        t.step("ls buckets", env.nats(&["kv", "ls", "-n"]).all());
        t.step(
            "info",
            lines_with(
                &env.nats(&["kv", "info", "CFG"]).stdout,
                &[
                    "Information for",
                    "Bucket Name:",
                    "History Kept:",
                    "Values Stored:",
                    "Maximum Bucket Size:",
                    "Maximum Value Size:",
                    "Backing Store Kind:",
                    "Bucket Size:",
                    "Name:",
                    "Leader:",
                ],
            ),
        );
        t.step(
            "kv edit history",
            env.nats(&["kv", "edit", "CFG", "--history", "2"])
                .ok
                .to_string(),
        );
        t.step("kv stream config after update", {
            let v: Value =
                serde_json::from_str(&env.nats(&["stream", "info", "KV_CFG", "-j"]).stdout)
                    .unwrap_or_default();
            format!(
                "max_msgs_per_subject={}",
                v["config"]["max_msgs_per_subject"]
            )
        });
        t.step("put c", env.nats(&["kv", "put", "CFG", "c", "x"]).all());
        t.step("watch (bounded)", {
            let out = env.nats_for(&["kv", "watch", "CFG"], Duration::from_secs(3));
            mask(out.stdout.trim())
        });
        t.step("watch one key (bounded)", {
            let out = env.nats_for(&["kv", "watch", "CFG", "b"], Duration::from_secs(2));
            mask(out.stdout.trim())
        });
        t.step(
            "get missing bucket",
            env.nats(&["kv", "get", "NOPE", "a"]).all(),
        );
        t.step("del bucket", env.nats(&["kv", "del", "CFG", "-f"]).all());
        t.step("ls buckets after rm", env.nats(&["kv", "ls", "-n"]).all());
    });
}

#[test]
fn object_store_buckets() {
    differential("object", |env, t| {
        t.step(
            "object add",
            env.nats(&["object", "add", "FILES"]).ok.to_string(),
        );
        t.step("object stream config", {
            let v: Value =
                serde_json::from_str(&env.nats(&["stream", "info", "OBJ_FILES", "-j"]).stdout)
                    .unwrap_or_default();
            normalize(v["config"].clone()).to_string()
        });
        // 300 KiB of a fixed pattern: three chunks of nats' 128 KiB.
        let data: Vec<u8> = (0..300 * 1024u32)
            .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
            .collect();
        let src = env.work.join("big.bin");
        std::fs::write(&src, &data).expect("write object");
        let src = src.to_str().expect("path");
        t.step(
            "object put",
            env.nats(&[
                "object",
                "put",
                "FILES",
                src,
                "--name",
                "big.bin",
                "-f",
                "--no-progress",
            ])
            .ok
            .to_string(),
        );
        std::fs::write(env.work.join("small.txt"), "tiny").expect("write object");
        let small = env.work.join("small.txt");
        t.step(
            "object put small",
            env.nats(&[
                "object",
                "put",
                "FILES",
                small.to_str().expect("path"),
                "--name",
                "dir/small.txt",
                "-f",
                "--no-progress",
            ])
            .ok
            .to_string(),
        );
        t.step("object ls", env.nats(&["object", "ls", "FILES"]).text());
        t.step(
            "object info",
            env.nats(&["object", "info", "FILES", "big.bin"]).text(),
        );
        let dst = env.work.join("got.bin");
        let out = env.nats(&[
            "object",
            "get",
            "FILES",
            "big.bin",
            "-O",
            dst.to_str().expect("path"),
            "-f",
            "--no-progress",
        ]);
        t.step("object get", out.ok.to_string());
        t.step(
            "object get content",
            (std::fs::read(&dst).unwrap_or_default() == data).to_string(),
        );
        t.step(
            "object get missing",
            env.nats(&[
                "object",
                "get",
                "FILES",
                "nope",
                "-O",
                "/dev/null",
                "-f",
                "--no-progress",
            ])
            .all(),
        );
        t.step(
            "object rm",
            env.nats(&["object", "rm", "FILES", "big.bin", "-f"]).text(),
        );
        t.step(
            "object ls after rm",
            env.nats(&["object", "ls", "FILES"]).text(),
        );
        t.step(
            "object info after rm",
            env.nats(&["object", "info", "FILES", "big.bin"]).all(),
        );
        t.step("object ls buckets", env.nats(&["object", "ls", "-n"]).all());
        t.step(
            "bucket info",
            lines_with(
                &env.nats(&["object", "info", "FILES"]).stdout,
                &[
                    "Information for",
                    "Description:",
                    "Storage:",
                    "Size:",
                    "Sealed:",
                    "Name:",
                    "Leader:",
                ],
            ),
        );
        t.step(
            "object seal",
            env.nats(&["object", "seal", "FILES", "-f"]).ok.to_string(),
        );
        t.step(
            "object put sealed",
            env.nats(&[
                "object",
                "put",
                "FILES",
                small.to_str().expect("path"),
                "--name",
                "again",
                "-f",
                "--no-progress",
            ])
            .all(),
        );
        t.step(
            "object rm bucket",
            env.nats(&["object", "rm", "FILES", "-f"]).all(),
        );
    });
}

#[test]
fn account_info_and_server_check() {
    differential("account", |env, t| {
        t.step("stream add", add_orders(env).ok.to_string());
        for i in 0..3 {
            env.nats(&["req", "orders.n", &format!("body {i}")]);
        }
        env.nats(&[
            "stream",
            "add",
            "MEMS",
            "--subjects",
            "mems",
            "--storage",
            "memory",
            "--defaults",
        ]);
        env.nats(&["req", "mems", "12345"]);
        let out = env.nats(&["account", "info"]);
        t.step(
            "account info",
            lines_with(
                &out.stdout,
                // "User:", "Account:", "System Account:" and "Expires:" come from
                // `$SYS.REQ.USER.INFO`, which natrix answers with the accounts work
                // (issue 12), not with JetStream.
                &[
                    "Headers Supported:",
                    "Maximum Payload:",
                    "TLS Connection:",
                    "Storage:",
                    "Memory:",
                    "Streams:",
                    "Consumers:",
                    "Max Message Payload:",
                    "Stream Requires Max Bytes Set:",
                    "Consumer Maximum Ack Pending:",
                    "Memory Per Stream:",
                    "Storage Per Stream:",
                ],
            ),
        );
        t.step("account info ok", out.ok.to_string());
        t.step(
            "server check jetstream",
            env.nats(&["server", "check", "jetstream"]).all(),
        );
        t.step(
            "server check stream",
            env.nats(&[
                "server",
                "check",
                "stream",
                "--stream",
                "ORDERS",
                "--msgs-warn",
                "1",
                "--msgs-critical",
                "0",
            ])
            .all(),
        );
        t.step(
            "server check kv missing",
            env.nats(&["server", "check", "kv", "--bucket", "NOPE"])
                .all(),
        );
    });
}

/// `nats stream backup` on each server, then `nats stream restore` of that server's own
/// backup (the bytes inside a backup are each server's store format: a natrix backup
/// restores into natrix; docs/compatibility.md).
#[test]
fn stream_backup_and_restore() {
    differential("backup", |env, t| {
        t.step("stream add", add_orders(env).ok.to_string());
        for i in 0..5 {
            env.nats(&["pub", &format!("orders.{}", i % 2), &format!("body {i}")]);
        }
        env.nats(&[
            "consumer",
            "add",
            "ORDERS",
            "C1",
            "--pull",
            "--deliver",
            "all",
            "--ack",
            "explicit",
            "--defaults",
        ]);
        let own = env.work.join("backup");
        let out = env.nats(&[
            "stream",
            "backup",
            "ORDERS",
            own.to_str().expect("path"),
            "--no-progress",
        ]);
        t.step(
            "stream backup",
            format!(
                "ok={} backup.json={} stderr={}",
                out.ok,
                own.join("backup.json").exists(),
                deprecation_free(&out.stderr)
            ),
        );
        t.step(
            "stream rm",
            env.nats(&["stream", "rm", "ORDERS", "-f"]).ok.to_string(),
        );
        let out = env.nats(&[
            "stream",
            "restore",
            own.to_str().expect("path"),
            "--no-progress",
        ]);
        // natscli names the archive after the server's version (`.tar.s2` before 2.15,
        // `.arc.s2` after; natrix reports 2.14.0).
        let stderr = deprecation_free(&out.stderr);
        t.step(
            "stream restore (its own backup)",
            format!(
                "ok={} started={} sent={}",
                out.ok,
                stderr.contains("Starting restore of \"ORDERS\""),
                stderr.contains("Sent 1 chunks")
            ),
        );
        t.step("restored stream", {
            let v: Value =
                serde_json::from_str(&env.nats(&["stream", "info", "ORDERS", "-j"]).stdout)
                    .unwrap_or_default();
            format!(
                "msgs={} first={} last={} subjects={:?} consumers={}",
                v["state"]["messages"],
                v["state"]["first_seq"],
                v["state"]["last_seq"],
                v["config"]["subjects"],
                v["state"]["consumer_count"]
            )
        });
        t.step(
            "restored message",
            env.nats(&["stream", "get", "ORDERS", "5", "-j"]).json(),
        );
        t.step("restore over an existing stream", {
            let out = env.nats(&[
                "stream",
                "restore",
                own.to_str().expect("path"),
                "--no-progress",
            ]);
            format!("ok={} {}", out.ok, deprecation_free(&out.stderr))
        });
    });
}

#[test]
fn limits_rollup_seal_and_pause() {
    differential("limits", |env, t| {
        t.step(
            "stream add LIM",
            env.nats(&[
                "stream",
                "add",
                "LIM",
                "--subjects",
                "lim.*",
                "--max-bytes",
                "300",
                "--discard",
                "new",
                "--max-msg-size",
                "100",
                "--defaults",
            ])
            .ok
            .to_string(),
        );
        let big = "x".repeat(120);
        t.step(
            "over max_msg_size",
            env.nats(&["req", "lim.a", &big, "--raw"]).json(),
        );
        for i in 0..6 {
            let body = format!("{i:040}");
            let r = env.nats(&["req", "lim.a", &body, "--raw"]);
            t.step(&format!("fill {i} (discard new at max_bytes)"), r.json());
        }
        t.step(
            "stream add RS",
            env.nats(&[
                "stream",
                "add",
                "RS",
                "--subjects",
                "rs.*",
                "--allow-rollup",
                "--deny-delete",
                "--defaults",
            ])
            .ok
            .to_string(),
        );
        t.step(
            "rollup with deny purge refused",
            env.nats(&[
                "stream",
                "add",
                "RSX",
                "--subjects",
                "rsx.*",
                "--allow-rollup",
                "--deny-purge",
                "--defaults",
            ])
            .all(),
        );
        env.nats(&["pub", "rs.a", "1"]);
        env.nats(&["pub", "rs.a", "2"]);
        env.nats(&["pub", "rs.b", "3"]);
        t.step(
            "rollup subject",
            env.nats(&["req", "rs.a", "4", "-H", "Nats-Rollup:sub", "--raw"])
                .json(),
        );
        t.step("state after subject rollup", {
            let v: Value = serde_json::from_str(&env.nats(&["stream", "info", "RS", "-j"]).stdout)
                .unwrap_or_default();
            normalize(v["state"].clone()).to_string()
        });
        t.step(
            "bad rollup value",
            env.nats(&["req", "rs.a", "5", "-H", "Nats-Rollup:bogus", "--raw"])
                .json(),
        );
        t.step(
            "rollup all",
            env.nats(&["req", "rs.c", "6", "-H", "Nats-Rollup:all", "--raw"])
                .json(),
        );
        t.step("state after rollup all", {
            let v: Value = serde_json::from_str(&env.nats(&["stream", "info", "RS", "-j"]).stdout)
                .unwrap_or_default();
            normalize(v["state"].clone()).to_string()
        });
        t.step(
            "delete denied",
            env.nats(&["stream", "rmm", "RS", "1", "-f"]).all(),
        );
        t.step(
            "seal",
            env.nats(&["stream", "seal", "RS", "-f"]).ok.to_string(),
        );
        t.step(
            "purge sealed",
            env.nats(&["stream", "purge", "RS", "-f"]).all(),
        );
        t.step(
            "publish to sealed",
            env.nats(&["req", "rs.b", "7", "--raw"]).json(),
        );
        t.step("sealed config", {
            let v: Value = serde_json::from_str(&env.nats(&["stream", "info", "RS", "-j"]).stdout)
                .unwrap_or_default();
            format!(
                "sealed={} msgs={}",
                v["config"]["sealed"], v["state"]["messages"]
            )
        });
        t.step(
            "consumer add on sealed stream",
            env.nats(&["consumer", "add", "RS", "C", "--pull", "--defaults"])
                .ok
                .to_string(),
        );
        t.step(
            "consumer pause",
            mask(
                &env.nats(&["consumer", "pause", "RS", "C", "1h", "-f"])
                    .all(),
            ),
        );
        t.step("paused info", {
            let v: Value =
                serde_json::from_str(&env.nats(&["consumer", "info", "RS", "C", "-j"]).stdout)
                    .unwrap_or_default();
            format!(
                "paused={} remaining>0={}",
                v["paused"],
                v["pause_remaining"].as_i64().unwrap_or(0) > 0
            )
        });
        t.step(
            "consumer resume",
            mask(&env.nats(&["consumer", "resume", "RS", "C", "-f"]).all()),
        );
        t.step("resumed info", {
            let v: Value =
                serde_json::from_str(&env.nats(&["consumer", "info", "RS", "C", "-j"]).stdout)
                    .unwrap_or_default();
            format!(
                "paused={} pause_until={}",
                v["paused"], v["config"]["pause_until"]
            )
        });
    });
}
