//! JetStream servers on loopback for the asset controller tests: natrix-server (built by
//! the workspace) and the reference nats-server (installed by `scripts/deps`), each with
//! JetStream on, a fresh store and a random port.

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// natrix-server: `NATRIX_SERVER_BIN`, or the one built into this test's target
/// directory (`cargo nextest run --workspace` builds it).
pub fn natrix_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NATRIX_SERVER_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    let exe = std::env::current_exe().ok()?;
    // target/<profile>/deps/<test binary>
    let profile_dir = exe.parent()?.parent()?;
    Some(profile_dir.join("natrix-server")).filter(|p| p.exists())
}

/// The reference nats-server: `NATS_SERVER_BIN`, or `~/.cache/natrix/bin/nats-server`.
pub fn nats_binary() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NATS_SERVER_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    let cache = std::env::var("NATRIX_CACHE").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/natrix"),
        PathBuf::from,
    );
    Some(cache.join("bin/nats-server")).filter(|p| p.exists())
}

/// Every server binary present, by name. Under CI both must be there; elsewhere at least
/// one (a test that ran against nothing would prove nothing).
pub fn binaries() -> Vec<(&'static str, PathBuf)> {
    let found: Vec<(&'static str, PathBuf)> = [
        ("natrix-server", natrix_binary()),
        ("nats-server", nats_binary()),
    ]
    .into_iter()
    .filter_map(|(n, p)| p.map(|p| (n, p)))
    .collect();
    if std::env::var_os("CI").is_some() {
        assert_eq!(
            found.len(),
            2,
            "CI needs natrix-server (built by the workspace) and nats-server (scripts/deps); found {found:?}"
        );
    }
    assert!(
        !found.is_empty(),
        "no JetStream server: build natrix-broker (or set NATRIX_SERVER_BIN) or run scripts/deps for nats-server"
    );
    found
}

/// A running server; killed on drop.
pub struct Server {
    child: Child,
    pub name: &'static str,
    pub url: String,
    pub dir: tempfile::TempDir,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Server {
    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("server.log")).unwrap_or_default()
    }
}

/// Starts `bin` with JetStream on 127.0.0.1 and a random port.
pub fn start(name: &'static str, bin: &Path) -> Server {
    start_with(name, bin, &[])
}

/// [`start`] with extra flags (`--user`, `--pass`).
pub fn start_with(name: &'static str, bin: &Path, extra: &[&str]) -> Server {
    let dir = tempfile::tempdir().expect("tempdir");
    let log = std::fs::File::create(dir.path().join("server.log")).expect("log file");
    let child = Command::new(bin)
        .args(["-js", "-sd"])
        .arg(dir.path().join("store"))
        .args(["-a", "127.0.0.1", "-p", "-1", "--ports_file_dir"])
        .arg(dir.path())
        .args(extra)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .unwrap_or_else(|e| panic!("start {}: {e}", bin.display()));
    let deadline = Instant::now() + Duration::from_secs(10);
    let url = loop {
        let url = std::fs::read_dir(dir.path())
            .expect("read dir")
            .flatten()
            .find(|e| e.file_name().to_string_lossy().ends_with(".ports"))
            .and_then(|e| std::fs::read_to_string(e.path()).ok())
            .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
            .and_then(|v| v["nats"][0].as_str().map(str::to_string));
        if let Some(url) = url {
            break url;
        }
        assert!(Instant::now() < deadline, "{name} did not start");
        std::thread::sleep(Duration::from_millis(20));
    };
    Server {
        child,
        name,
        url,
        dir,
    }
}
