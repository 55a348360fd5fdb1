//! A second client family: the nats-py scenario in `tests/py/client_scenario.py` against
//! natrix-server (and, for reference, against nats-server: both must pass it).

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

use common::{NATRIX, reference_binary, start};

const CONF: &str = r#"
authorization {
  users = [
    { user: app, password: secret, permissions: { publish: { deny: "secret.>" } } }
  ]
}
"#;

fn python() -> Option<PathBuf> {
    let found = std::env::var("NATRIX_PYTHON")
        .map(PathBuf::from)
        .ok()
        .filter(|p| p.exists());
    assert!(
        found.is_some() || std::env::var_os("CI").is_none(),
        "nats-py venv missing (run scripts/deps)"
    );
    found
}

fn run_scenario(python: &Path, server_bin: &Path) {
    let server = start(server_bin, CONF, false);
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/py/client_scenario.py");
    let out = Command::new(python)
        .arg(script)
        .arg(format!("nats://127.0.0.1:{}", server.port))
        .output()
        .expect("run python");
    assert!(
        out.status.success(),
        "{} failed:\n{}\n{}",
        server_bin.display(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn nats_py_scenario() {
    let Some(python) = python() else {
        eprintln!("skipped: nats-py not installed");
        return;
    };
    run_scenario(&python, Path::new(NATRIX));
    if let Some(reference) = reference_binary() {
        run_scenario(&python, &reference);
    }
}
