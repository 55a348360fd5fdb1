//! JetStream through a second client family: the nats-py scenarios in
//! `tests/py/js_scenarios.py` (streams, pull/push/ordered consumers, KV, object store) run
//! against nats-server and natrix-server, both with `jetstream { store_dir }`. The script
//! prints a transcript of outcomes without ids or times; the transcripts must be equal
//! step by step, and every step that differs is listed in the failure.

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use common::{NATRIX, start};
use serde_json::Value;

/// The nats-py venv interpreter: `NATRIX_PYTHON`, else the caches `scripts/deps` fills.
fn python() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NATRIX_PYTHON") {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    cache_dirs()
        .into_iter()
        .map(|d| d.join("venv/bin/python"))
        .find(|p| p.exists())
}

fn cache_dirs() -> Vec<PathBuf> {
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_default());
    let mut dirs = Vec::new();
    if let Ok(c) = std::env::var("NATRIX_CACHE") {
        dirs.push(PathBuf::from(c));
    }
    dirs.push(home.join(".cache/natrix"));
    dirs.push(home.join(".cache/natrix-cold"));
    dirs
}

/// The reference nats-server (`NATS_SERVER_BIN` or a cache).
fn reference() -> Option<PathBuf> {
    common::reference_binary().or_else(|| {
        if std::env::var_os("NATS_SERVER_BIN").is_some() {
            return None;
        }
        cache_dirs()
            .into_iter()
            .map(|d| d.join("bin/nats-server"))
            .find(|p| p.exists())
    })
}

/// Runs the scenario script against `bin` (with JetStream in a fresh store) and returns
/// its transcript: `[section, step, outcome]` entries.
fn transcript(python: &Path, bin: &Path) -> Vec<Value> {
    let store = tempfile::tempdir().expect("store dir");
    let conf = format!(
        "jetstream {{ store_dir: \"{}\" }}\n",
        store.path().display()
    );
    let server = start(bin, &conf, false);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/js_scenarios.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(format!("nats://127.0.0.1:{}", server.port))
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run python");
    let deadline = Instant::now() + Duration::from_secs(300);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let out = child.wait_with_output().expect("output");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        out.status.success(),
        "js_scenarios.py against {} failed:\n{stdout}\n{stderr}\nserver log:\n{}",
        bin.display(),
        server.log_text()
    );
    match serde_json::from_str::<Value>(stdout.trim()) {
        Ok(Value::Array(steps)) => steps,
        _ => panic!("js_scenarios.py printed no transcript:\n{stdout}\n{stderr}"),
    }
}

fn label(step: &Value) -> String {
    format!(
        "{} / {}",
        step[0].as_str().unwrap_or_default(),
        step[1].as_str().unwrap_or_default()
    )
}

#[test]
fn nats_py_jetstream_scenarios() {
    let (Some(python), Some(reference)) = (python(), reference()) else {
        assert!(
            std::env::var_os("CI").is_none(),
            "nats-py venv or nats-server missing (run scripts/deps)"
        );
        eprintln!("SKIPPED: nats-py or nats-server not installed; run scripts/deps");
        return;
    };
    let want = transcript(&python, &reference);
    assert!(
        !want.iter().any(|s| s[1] == "section crashed"),
        "the scenario itself fails on nats-server: {want:?}"
    );
    let got = transcript(&python, Path::new(NATRIX));
    let mut diffs = Vec::new();
    let (mut i, mut j) = (0, 0);
    // Steps are matched by label, so a section that crashed on natrix shows as missing
    // steps rather than shifting every later comparison.
    while i < got.len() || j < want.len() {
        match (got.get(i), want.get(j)) {
            (Some(g), Some(w)) if label(g) == label(w) => {
                if g[2] != w[2] {
                    diffs.push(format!(
                        "`{}`:\n    natrix:      {}\n    nats-server: {}",
                        label(g),
                        g[2],
                        w[2]
                    ));
                }
                i += 1;
                j += 1;
            }
            (Some(g), _) if g[1] == "section crashed" => {
                diffs.push(format!("`{}` on natrix: {}", label(g), g[2]));
                // Skip nats-server's remaining steps of that section.
                while want.get(j).is_some_and(|w| w[0] == g[0]) {
                    j += 1;
                }
                i += 1;
            }
            (Some(g), Some(w)) => {
                diffs.push(format!(
                    "steps out of order: natrix `{}`, nats-server `{}`",
                    label(g),
                    label(w)
                ));
                i += 1;
                j += 1;
            }
            (Some(g), None) => {
                diffs.push(format!("extra natrix step `{}`", label(g)));
                i += 1;
            }
            (None, Some(w)) => {
                diffs.push(format!("missing natrix step `{}`", label(w)));
                j += 1;
            }
            (None, None) => break,
        }
    }
    assert!(
        diffs.is_empty(),
        "nats-py JetStream: {} of {} steps differ from nats-server:\n{}",
        diffs.len(),
        want.len(),
        diffs.join("\n")
    );
}
