//! The install manifests against the operator: RBAC in the Helm chart and the kustomize
//! base grants exactly `natrix_operator::rbac`, both install the operator with the same
//! arguments the binary accepts, and (with helm available) the chart lints and renders.

mod common;

use std::path::PathBuf;
use std::process::Command;

use k8s_openapi::api::rbac::v1::PolicyRule;
use natrix_operator::rbac;
use serde::Deserialize;
use serde_json::Value;

fn docs(text: &str) -> Vec<Value> {
    serde_norway::Deserializer::from_str(text)
        .map(|d| Value::deserialize(d).unwrap())
        .filter(|v| !v.is_null())
        .collect()
}

fn rules_of(doc: &Value) -> Vec<PolicyRule> {
    serde_json::from_value(doc["rules"].clone()).unwrap()
}

/// A Helm template with its template lines removed (they only wrap or label the rules).
fn static_part(rel: &str) -> String {
    let text = std::fs::read_to_string(common::repo_root().join(rel)).unwrap();
    text.lines()
        .filter(|l| !l.contains("{{"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[test]
fn kustomize_rbac_is_the_operators() {
    let text =
        std::fs::read_to_string(common::repo_root().join("deploy/kustomize/rbac.yaml")).unwrap();
    let d = docs(&text);
    let cluster_role = d.iter().find(|x| x["kind"] == "ClusterRole").unwrap();
    assert_eq!(
        rules_of(cluster_role),
        rbac::cluster_rules(true),
        "deploy/kustomize/rbac.yaml ClusterRole differs from operator/src/rbac.rs"
    );
    let role = d.iter().find(|x| x["kind"] == "Role").unwrap();
    assert_eq!(rules_of(role), rbac::lease_rules());
}

#[test]
fn chart_rbac_is_the_operators() {
    // The CRD rule is the last one, inside `{{ if .Values.installCRDs }}`.
    let cr = docs(&static_part("charts/natrix/templates/clusterrole.yaml"));
    assert_eq!(
        rules_of(&cr[0]),
        rbac::cluster_rules(true),
        "charts/natrix/templates/clusterrole.yaml differs from operator/src/rbac.rs"
    );
    let role = docs(&static_part("charts/natrix/templates/role.yaml"));
    assert_eq!(rules_of(&role[0]), rbac::lease_rules());
}

fn helm() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("HELM") {
        return Some(PathBuf::from(p));
    }
    let cached = PathBuf::from(std::env::var("HOME").ok()?).join(".cache/natrix/e2e/bin/helm");
    if cached.exists() {
        return Some(cached);
    }
    Command::new("helm")
        .arg("version")
        .output()
        .ok()
        .map(|_| PathBuf::from("helm"))
}

fn helm_template(args: &[&str]) -> Vec<Value> {
    let helm =
        helm().expect("helm not found (set HELM or install it into ~/.cache/natrix/e2e/bin)");
    let chart = common::repo_root().join("charts/natrix");
    let out = Command::new(helm)
        .args([
            "template",
            "t",
            chart.to_str().unwrap(),
            "--namespace",
            "natrix-system",
        ])
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    docs(&String::from_utf8(out.stdout).unwrap())
}

#[test]
#[ignore = "needs helm; run with `cargo nextest run -p natrix-operator --run-ignored all` (HELM=path overrides)"]
fn helm_chart_lints_and_renders() {
    let helm = helm().expect("helm not found");
    let chart = common::repo_root().join("charts/natrix");
    let lint = Command::new(&helm)
        .arg("lint")
        .arg(&chart)
        .output()
        .unwrap();
    assert!(
        lint.status.success(),
        "{}",
        String::from_utf8_lossy(&lint.stdout)
    );
    let bad = Command::new(&helm)
        .arg("lint")
        .arg(&chart)
        .args(["--set", "replicas=-1"])
        .output()
        .unwrap();
    assert!(
        !bad.status.success(),
        "values.schema.json must refuse replicas=-1"
    );

    let objs = helm_template(&["--set", "cluster.enabled=true"]);
    let kinds: Vec<&str> = objs.iter().map(|o| o["kind"].as_str().unwrap()).collect();
    for k in [
        "ServiceAccount",
        "ClusterRole",
        "ClusterRoleBinding",
        "Role",
        "RoleBinding",
        "Deployment",
        "Service",
        "NatsCluster",
    ] {
        assert!(kinds.contains(&k), "{k} missing from {kinds:?}");
    }
    let cr = objs.iter().find(|o| o["kind"] == "ClusterRole").unwrap();
    assert_eq!(rules_of(cr), rbac::cluster_rules(true));
    let nc: natrix_operator::crd::NatsCluster = serde_json::from_value(
        objs.iter()
            .find(|o| o["kind"] == "NatsCluster")
            .unwrap()
            .clone(),
    )
    .unwrap();
    kube::core::cel::validate_cel(&nc).unwrap();
    assert_eq!(nc.spec.replicas, 3);

    let objs = helm_template(&[
        "--set",
        "installCRDs=false",
        "--set",
        "leaderElection.enabled=false",
    ]);
    let cr = objs.iter().find(|o| o["kind"] == "ClusterRole").unwrap();
    assert_eq!(rules_of(cr), rbac::cluster_rules(false));
    assert!(!objs.iter().any(|o| o["kind"] == "Role"));
    let dep = objs.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let args: Vec<&str> = dep["spec"]["template"]["spec"]["containers"][0]["args"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap())
        .collect();
    assert!(
        args.contains(&"--no-install-crds") && args.contains(&"--no-leader-election"),
        "{args:?}"
    );
    let env_of = |dep: &Value| -> Vec<(String, String)> {
        dep["spec"]["template"]["spec"]["containers"][0]["env"]
            .as_array()
            .unwrap()
            .iter()
            .map(|e| {
                (
                    e["name"].as_str().unwrap().to_string(),
                    e["value"].as_str().unwrap_or_default().to_string(),
                )
            })
            .collect()
    };
    assert!(
        !env_of(dep).iter().any(|(k, _)| k.starts_with("OTEL_")),
        "tracing is off by default"
    );
    let objs = helm_template(&["--set", "tracing.endpoint=http://jaeger.obs:4317"]);
    let dep = objs.iter().find(|o| o["kind"] == "Deployment").unwrap();
    let env = env_of(dep);
    for want in [
        ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://jaeger.obs:4317"),
        ("OTEL_SERVICE_NAME", "natrix-operator"),
    ] {
        assert!(
            env.contains(&(want.0.to_string(), want.1.to_string())),
            "{want:?} not in {env:?}"
        );
    }
}
