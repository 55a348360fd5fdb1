//! Helpers shared by the integration tests: fixtures from `deploy/examples/`, golden-file
//! comparison.
#![allow(dead_code)]

pub mod mockapi;
pub mod servers;

use std::path::{Path, PathBuf};

use natrix_operator::crd::NatsCluster;
use serde::Deserialize;

pub fn repo_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every NatsCluster in a multi-document YAML file, with a fixed uid (owner references
/// need one) and generation.
pub fn clusters_in(path: &Path) -> Vec<NatsCluster> {
    let text = std::fs::read_to_string(path).unwrap();
    let mut out = Vec::new();
    for doc in serde_norway::Deserializer::from_str(&text) {
        let v = serde_json::Value::deserialize(doc).unwrap();
        if v.get("kind").and_then(|k| k.as_str()) != Some("NatsCluster") {
            continue;
        }
        let mut nc: NatsCluster = serde_json::from_value(v).unwrap();
        let n = out.len() + 1;
        nc.metadata.uid = Some(format!("00000000-0000-0000-0000-{n:012}"));
        nc.metadata.generation = Some(1);
        out.push(nc);
    }
    out
}

/// The example files, sorted.
pub fn examples() -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(repo_root().join("deploy/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    v.sort();
    v
}

/// Compares `actual` with the golden file, or rewrites it when `UPDATE_GOLDEN=1`.
pub fn golden(name: &str, actual: &str) {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/golden")
        .join(name);
    if std::env::var("UPDATE_GOLDEN").as_deref() == Ok("1") {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|_| {
        panic!(
            "golden file {} is missing; run `UPDATE_GOLDEN=1 cargo test -p natrix-operator` and review the diff",
            path.display()
        )
    });
    if expected != actual {
        let first = expected
            .lines()
            .zip(actual.lines())
            .position(|(a, b)| a != b)
            .unwrap_or_else(|| expected.lines().count().min(actual.lines().count()));
        panic!(
            "{} differs from the rendered output (first difference at line {}):\n  golden:   {:?}\n  rendered: {:?}\nIf the change is intended, run `UPDATE_GOLDEN=1 cargo test -p natrix-operator` and review the diff.",
            path.display(),
            first + 1,
            expected.lines().nth(first),
            actual.lines().nth(first)
        );
    }
}
