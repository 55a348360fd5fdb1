//! The CRD as shipped: generated files in sync with the Rust types, and the schema's CEL
//! rules refusing bad specs with their messages (run client-side with kube's CEL
//! evaluator, the same rules the API server runs).

mod common;

use kube::core::cel::{validate_cel, validate_cel_update};
use natrix_operator::crd::{NatsCluster, crd_files};
use natrix_operator::reference;
use serde_json::json;

const REGEN: &str = "regenerate with `operator/regen.sh` (runs `natrix-operator crdgen --dir crds` and copies into charts/natrix/crds/ and deploy/kustomize/crds/)";

#[test]
fn crd_files_match_crdgen() {
    let files = crd_files().unwrap();
    assert_eq!(
        files.len(),
        7,
        "NatsCluster, the four JetStream kinds, Account and User"
    );
    for (name, generated) in files {
        for dir in ["crds", "charts/natrix/crds", "deploy/kustomize/crds"] {
            let rel = format!("{dir}/{name}");
            let path = common::repo_root().join(&rel);
            let on_disk = std::fs::read_to_string(&path)
                .unwrap_or_else(|e| panic!("{}: {e}; {REGEN}", path.display()));
            assert!(
                on_disk == generated,
                "{rel} has drifted from the CRD types; {REGEN}"
            );
        }
    }
    let kustomization =
        std::fs::read_to_string(common::repo_root().join("deploy/kustomize/kustomization.yaml"))
            .unwrap();
    for (name, _) in crd_files().unwrap() {
        assert!(
            kustomization.contains(&format!("crds/{name}")),
            "deploy/kustomize/kustomization.yaml does not list crds/{name}"
        );
    }
}

#[test]
fn docs_reference_matches_schema() {
    let docs = std::fs::read_to_string(common::repo_root().join("docs/operator.md")).unwrap();
    let (Some(b), Some(e)) = (docs.find(reference::BEGIN), docs.find(reference::END)) else {
        panic!("docs/operator.md lacks the generated CRD reference markers");
    };
    let section = format!("{}\n", &docs[b..e + reference::END.len()]);
    assert!(
        section == reference::markdown(),
        "the CRD reference in docs/operator.md is stale; run `operator/regen.sh` (it replaces the section between the markers with `natrix-operator crdref`)"
    );
}

fn cluster(spec: serde_json::Value) -> NatsCluster {
    serde_json::from_value(json!({
        "apiVersion": "natrix.io/v1alpha1",
        "kind": "NatsCluster",
        "metadata": {"name": "c", "namespace": "ns"},
        "spec": spec,
    }))
    .unwrap()
}

fn refused(nc: &NatsCluster, message: &str) {
    match validate_cel(nc) {
        Ok(()) => panic!("accepted, expected refusal with {message:?}: {:?}", nc.spec),
        Err(e) => assert!(e.to_string().contains(message), "{e}"),
    }
}

fn refused_update(old: &NatsCluster, new: &NatsCluster, message: &str) {
    match validate_cel_update(new, old) {
        Ok(()) => panic!("update accepted, expected refusal with {message:?}"),
        Err(e) => assert!(e.to_string().contains(message), "{e}"),
    }
}

#[test]
fn examples_pass_the_schema_rules() {
    for path in common::examples() {
        for nc in common::clusters_in(&path) {
            validate_cel(&nc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            validate_cel_update(&nc, &nc).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        }
    }
}

#[test]
fn bad_specs_are_refused_with_a_message() {
    refused(
        &cluster(
            json!({"config": {"authorization": {"users": [{"user": "a", "password": "secret"}]}}}),
        ),
        "password must be a bcrypt hash",
    );
    refused(
        &cluster(json!({"config": {"authorization": {"users": [{"user": "a"}]}}})),
        "either an nkey, or both user and password",
    );
    refused(
        &cluster(json!({"mqtt": {"port": 1883}})),
        "mqtt needs jetstream.enabled",
    );
    refused(
        &cluster(json!({"jetstream": {"enabled": true}})),
        "needs memoryStorage or fileStorage",
    );
    refused(
        &cluster(json!({"jetstream": {"enabled": true, "fileStorage": {"size": "lots"}}})),
        "size must be a positive quantity",
    );
    refused(
        &cluster(
            json!({"gateways": {"remotes": [{"natsCluster": {"name": "x"}, "urls": ["nats://a:7222"], "name": "x"}]}}),
        ),
        "either a natsCluster or urls",
    );
    refused(
        &cluster(json!({"tls": {"client": {"secretName": "s", "certificate": "c"}}})),
        "either a secretName or a cert-manager certificate",
    );
    refused(
        &cluster(json!({"tls": {"client": {"ca": "ca.crt"}}})),
        "either a secretName or a cert-manager certificate",
    );
    refused(
        &cluster(json!({"lameDuckDuration": "10s"})),
        "lameDuckDuration must be at least 30s",
    );
    validate_cel(&cluster(json!({"lameDuckDuration": "1m30s"}))).unwrap();
    refused(
        &cluster(json!({"gateways": {"remotes": [{"urls": ["nats://a:7222"]}]}})),
        "needs the remote cluster's name",
    );
}

#[test]
fn immutable_storage_is_refused_on_update() {
    let js = |size: &str, class: Option<&str>| {
        let mut fs = json!({"size": size});
        if let Some(c) = class {
            fs["storageClassName"] = json!(c);
        }
        cluster(json!({"jetstream": {"enabled": true, "fileStorage": fs}}))
    };
    refused_update(&js("10Gi", None), &js("5Gi", None), "size cannot decrease");
    refused_update(
        &js("10Gi", Some("a")),
        &js("10Gi", Some("b")),
        "storageClassName is immutable",
    );
    refused_update(
        &js("10Gi", None),
        &js("10Gi", Some("b")),
        "storageClassName is immutable",
    );
    refused_update(
        &js("10Gi", None),
        &cluster(json!({"jetstream": {"enabled": true, "memoryStorage": {"size": "1Gi"}}})),
        "fileStorage cannot be removed",
    );
    // Growing is allowed (the operator resizes the claims).
    validate_cel_update(&js("20Gi", Some("a")), &js("10Gi", Some("a"))).unwrap();
}
