//! The `natrix-operator` binary: `crdgen` prints the shipped CRDs, and `run` stops on
//! SIGTERM in every state, standing by for the Lease included.

mod common;

use std::io::Read;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const BIN: &str = env!("CARGO_BIN_EXE_natrix-operator");

#[test]
fn crdgen_prints_the_shipped_crds() {
    let out = Command::new(BIN).arg("crdgen").output().unwrap();
    assert!(out.status.success());
    let shipped: Vec<String> = [
        "natsclusters",
        "streams",
        "consumers",
        "keyvalues",
        "objectstores",
        "accounts",
        "users",
    ]
    .iter()
    .map(|p| {
        std::fs::read_to_string(common::repo_root().join(format!("crds/{p}.natrix.io.yaml")))
            .unwrap()
    })
    .collect();
    assert_eq!(
        String::from_utf8(out.stdout).unwrap(),
        shipped.join("---\n")
    );

    let dir = tempfile::tempdir().unwrap();
    let out = Command::new(BIN)
        .args(["crdgen", "--dir"])
        .arg(dir.path())
        .output()
        .unwrap();
    assert!(out.status.success());
    let written = std::fs::read_to_string(dir.path().join("streams.natrix.io.yaml")).unwrap();
    assert_eq!(written, shipped[1]);
}

#[test]
fn sigterm_stops_a_replica_waiting_for_the_lease() {
    let dir = std::env::temp_dir().join(format!("natrix-operator-bin-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let kubeconfig = dir.join("kubeconfig");
    // An API server that is not there: the replica keeps standing for the Lease.
    std::fs::write(
        &kubeconfig,
        "apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: \"https://127.0.0.1:9\"}}]\n\
         users: [{name: u, user: {token: t}}]\ncontexts: [{name: x, context: {cluster: c, user: u}}]\ncurrent-context: x\n",
    )
    .unwrap();
    let mut child = Command::new(BIN)
        .args([
            "run",
            "--no-install-crds",
            "--metrics-addr",
            "127.0.0.1:0",
            "--identity",
            "t",
        ])
        .env("KUBECONFIG", &kubeconfig)
        .env("RUST_LOG", "info")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_secs(3));
    assert!(
        child.try_wait().unwrap().is_none(),
        "exited before the signal"
    );
    let kill = Command::new("kill")
        .args(["-TERM", &child.id().to_string()])
        .status()
        .unwrap();
    assert!(kill.success());
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > Duration::from_secs(10) {
            let _ = child.kill();
            panic!("natrix-operator ignored SIGTERM while standing by");
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let mut log = String::new();
    child
        .stdout
        .take()
        .unwrap()
        .read_to_string(&mut log)
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(status.success(), "{status}: {log}");
    assert!(log.contains("waiting for leadership"), "{log}");
    assert!(log.contains("shutting down"), "{log}");
}
