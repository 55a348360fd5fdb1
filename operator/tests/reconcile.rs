//! Reconcile against a scripted API server: the exact calls for creation, steady state,
//! live reload, rolling restart, an invalid spec, gateways, volume growth, optional
//! objects and API errors.

mod common;

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use common::mockapi::{Seen, Step, failure, not_found, step};
use futures::future::BoxFuture;
use http::Method;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use natrix_operator::controller::probe::{ConfigProbe, JetStreamHealth, ProbeError};
use natrix_operator::controller::{self, Context, Error};
use natrix_operator::crd::NatsCluster;
use natrix_operator::metrics::Metrics;
use natrix_operator::render::{self, Inputs};
use serde_json::{Value, json};

const NS: &str = "ns";
const CM: &str = "/api/v1/namespaces/ns/configmaps/nc-config";
const HEADLESS: &str = "/api/v1/namespaces/ns/services/nc-headless";
const CLIENT: &str = "/api/v1/namespaces/ns/services/nc";
const STS: &str = "/apis/apps/v1/namespaces/ns/statefulsets/nc";
const PDB: &str = "/apis/policy/v1/namespaces/ns/poddisruptionbudgets/nc";
const PODS: &str = "/api/v1/namespaces/ns/pods";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";
const STATUS: &str = "/apis/natrix.io/v1alpha1/namespaces/ns/natsclusters/nc/status";
const ALL_CLUSTERS: &str = "/apis/natrix.io/v1alpha1/natsclusters";

/// Every NatsCluster reconcile lists the Accounts (they switch a cluster to operator
/// mode) after its first reads and before it renders. The tests here are about clusters
/// without Accounts, so this wrapper adds that step (answered with an empty list) where
/// it belongs and leaves it out of the returned requests; `tests/accounts.rs` pins the
/// operator-mode traffic. A reconcile that stops at a missing Certificate never gets
/// there.
fn serve(steps: Vec<Step>) -> (kube::Client, tokio::task::JoinHandle<Vec<Seen>>) {
    let mut steps = steps;
    let early = |s: &Step| {
        s.method == Method::GET && (s.path == CM || s.path == ALL_CLUSTERS || s.path == CERT)
    };
    let at = steps.iter().position(|s| !early(s)).unwrap_or(steps.len());
    let stopped = at > 0 && steps[at - 1].path == CERT && steps[at - 1].status != 200;
    if !stopped {
        steps.insert(
            at,
            step(
                Method::GET,
                ACCOUNTS,
                200,
                Some(json!({"apiVersion": "natrix.io/v1alpha1", "kind": "AccountList", "metadata": {}, "items": []})),
            ),
        );
    }
    let (client, handle) = common::mockapi::serve(steps);
    let filtered = tokio::spawn(async move {
        let seen = handle.await.unwrap();
        if !stopped {
            assert!(
                seen.iter().any(|s| s.path == ACCOUNTS),
                "the reconcile did not list Accounts"
            );
        }
        seen.into_iter().filter(|s| s.path != ACCOUNTS).collect()
    });
    (client, filtered)
}

const ACCOUNTS: &str = "/apis/natrix.io/v1alpha1/accounts";

/// Answers from a fixed table of pod IP → digest.
struct FakeProbe(HashMap<String, Option<String>>);

impl ConfigProbe for FakeProbe {
    fn config_digest<'a>(
        &'a self,
        ip: &'a str,
        port: i32,
    ) -> BoxFuture<'a, Result<Option<String>, ProbeError>> {
        Box::pin(async move {
            assert_eq!(port, 8222);
            self.0.get(ip).cloned().ok_or_else(|| ProbeError::Timeout {
                url: ip.to_string(),
            })
        })
    }

    /// Pods that answer `/varz` have a current JetStream led by `nc-0`.
    fn jetstream<'a>(
        &'a self,
        ip: &'a str,
        _: i32,
    ) -> BoxFuture<'a, Result<JetStreamHealth, ProbeError>> {
        Box::pin(async move {
            match self.0.get(ip) {
                Some(Some(_)) => Ok(JetStreamHealth {
                    healthy: true,
                    error: None,
                    meta_leader: Some("nc-0".into()),
                    meta_cluster_size: Some(3),
                    streams: Some(0),
                }),
                _ => Err(ProbeError::Timeout {
                    url: ip.to_string(),
                }),
            }
        })
    }
}

fn cluster(spec: Value, status: Option<Value>) -> NatsCluster {
    let mut v = json!({
        "apiVersion": "natrix.io/v1alpha1",
        "kind": "NatsCluster",
        "metadata": {"name": "nc", "namespace": NS, "uid": "uid-1", "generation": 4},
        "spec": spec,
    });
    if let Some(s) = status {
        v["status"] = s;
    }
    serde_json::from_value(v).unwrap()
}

fn context(client: kube::Client, probe: HashMap<String, Option<String>>) -> Arc<Context> {
    let mut ctx = Context::new(client, Arc::new(FakeProbe(probe)), Arc::new(Metrics::new()));
    ctx.now = Arc::new(|| Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap()));
    Arc::new(ctx)
}

fn config_map_with_base(base: &str) -> Value {
    json!({"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "nc-config", "namespace": NS},
           "data": {"nats.conf": base, "restart-base.conf": base}})
}

fn sts_reply(ready: i32, updated: i32, current: &str, update: &str) -> Value {
    json!({"apiVersion": "apps/v1", "kind": "StatefulSet",
           "metadata": {"name": "nc", "namespace": NS},
           "spec": {"selector": {}, "template": {}},
           "status": {"replicas": 3, "readyReplicas": ready, "updatedReplicas": updated,
                      "currentRevision": current, "updateRevision": update}})
}

fn pods(digest_ips: &[&str]) -> Value {
    let items: Vec<Value> = digest_ips
        .iter()
        .enumerate()
        .map(|(i, ip)| json!({"metadata": {"name": format!("nc-{i}"), "namespace": NS}, "status": {"podIP": ip}}))
        .collect();
    json!({"apiVersion": "v1", "kind": "PodList", "metadata": {}, "items": items})
}

fn condition<'a>(status_patch: &'a Value, t: &str) -> &'a Value {
    status_patch["status"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["type"] == t)
        .unwrap()
}

fn applied(seen: &Seen) {
    assert_eq!(seen.method, Method::PATCH);
    assert!(
        seen.query.contains("fieldManager=natrix-operator"),
        "{}",
        seen.query
    );
    assert!(seen.query.contains("force=true"), "{}", seen.query);
}

fn restart_annotation(sts_body: &Value) -> String {
    sts_body["spec"]["template"]["metadata"]["annotations"]["natrix.io/restart-digest"]
        .as_str()
        .unwrap()
        .to_string()
}

/// The steps of a normal apply pass (after the ConfigMap GET and before the pod list).
fn apply_steps(sts_get: (u16, Value), sts_after: Value) -> Vec<common::mockapi::Step> {
    vec![
        step(Method::PATCH, CM, 200, None),
        step(Method::PATCH, HEADLESS, 200, None),
        step(Method::PATCH, CLIENT, 200, None),
        step(Method::GET, STS, sts_get.0, Some(sts_get.1)),
        step(Method::PATCH, STS, 200, Some(sts_after)),
        step(Method::PATCH, PDB, 200, None),
    ]
}

#[tokio::test]
async fn first_reconcile_creates_everything() {
    let nc = cluster(json!({"replicas": 3}), None);
    let mut steps = vec![step(Method::GET, CM, 404, Some(not_found("configmap")))];
    steps.extend(apply_steps(
        (404, not_found("statefulset")),
        sts_reply(0, 0, "r1", "r1"),
    ));
    steps.extend([
        step(Method::GET, PODS, 200, Some(pods(&[]))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, STATUS, 200, Some(nc_reply())),
    ]);
    let (client, server) = serve(steps);
    let action = controller::reconcile(Arc::new(nc.clone()), context(client, HashMap::new()))
        .await
        .unwrap();
    let seen = server.await.unwrap();
    assert_eq!(action, Action::requeue(controller::REQUEUE_PROGRESSING));

    let expected = render::render(&nc, &Inputs::default()).unwrap();
    for s in &seen[1..=6] {
        if s.path != STS || s.method == Method::PATCH {
            applied(s);
        }
    }
    assert_eq!(seen[1].body["data"]["nats.conf"], expected.config.text);
    assert_eq!(
        seen[1].body["metadata"]["ownerReferences"][0]["uid"],
        "uid-1"
    );
    assert_eq!(restart_annotation(&seen[5].body), expected.config.digest);
    assert_eq!(
        seen[7].query,
        "&labelSelector=app.kubernetes.io%2Finstance%3Dnc%2Capp.kubernetes.io%2Fname%3Dnatrix"
    );
    assert_eq!(seen[8].body["reason"], "Applied");
    assert_eq!(seen[8].body["type"], "Normal");

    let status = &seen[9].body;
    assert_eq!(status["status"]["configDigest"], expected.config.digest);
    assert_eq!(status["status"]["observedGeneration"], 4);
    assert_eq!(
        status["status"]["clientURL"],
        "nats://nc.ns.svc.cluster.local:4222"
    );
    assert_eq!(
        status["status"]["selector"],
        "app.kubernetes.io/instance=nc,app.kubernetes.io/name=natrix"
    );
    assert_eq!(condition(status, "Ready")["status"], "False");
    assert_eq!(condition(status, "Progressing")["reason"], "PodsStarting");
    assert_eq!(condition(status, "Degraded")["status"], "False");
}

#[tokio::test]
async fn settled_cluster_reports_ready_without_events() {
    let spec = json!({"replicas": 3});
    let r = render::render(&cluster(spec.clone(), None), &Inputs::default()).unwrap();
    let nc = cluster(spec, Some(json!({"configDigest": r.config.digest})));
    let probe: HashMap<String, Option<String>> = ["10.0.0.1", "10.0.0.2", "10.0.0.3"]
        .iter()
        .map(|ip| (ip.to_string(), Some(r.config.digest.clone())))
        .collect();
    let mut steps = vec![step(
        Method::GET,
        CM,
        200,
        Some(config_map_with_base(&r.config.text)),
    )];
    steps.extend(apply_steps(
        (200, sts_reply(3, 3, "r1", "r1")),
        sts_reply(3, 3, "r1", "r1"),
    ));
    steps.extend([
        step(
            Method::GET,
            PODS,
            200,
            Some(pods(&["10.0.0.1", "10.0.0.2", "10.0.0.3"])),
        ),
        step(Method::PATCH, STATUS, 200, Some(nc_reply())),
    ]);
    let (client, server) = serve(steps);
    let action = controller::reconcile(Arc::new(nc), context(client, probe))
        .await
        .unwrap();
    let seen = server.await.unwrap();
    assert_eq!(action, Action::requeue(controller::REQUEUE_STABLE));
    let status = &seen.last().unwrap().body;
    assert_eq!(condition(status, "Ready")["status"], "True");
    assert_eq!(condition(status, "Progressing")["reason"], "Stable");
    let pods = status["status"]["podConfigs"].as_array().unwrap();
    assert_eq!(pods.len(), 3);
    assert!(
        pods.iter()
            .all(|p| p["applied"] == true && p["configDigest"] == r.config.digest.as_str())
    );
}

#[tokio::test]
async fn reloadable_change_keeps_pods_and_tracks_each_pod() {
    let old = render::render(&cluster(json!({"replicas": 3}), None), &Inputs::default()).unwrap();
    let nc = cluster(
        json!({"replicas": 3, "config": {"maxPayload": 2_000_000}}),
        Some(json!({"configDigest": old.config.digest})),
    );
    // nc-0 already reloaded, nc-1 still on the old config, nc-2 does not answer.
    let new_digest = render::render(
        &nc,
        &Inputs {
            gateways: vec![],
            restart_base: Some(old.config.text.clone()),
            ..Inputs::default()
        },
    )
    .unwrap()
    .config
    .digest;
    let probe = HashMap::from([
        ("10.0.0.1".to_string(), Some(new_digest.clone())),
        ("10.0.0.2".to_string(), Some(old.config.digest.clone())),
    ]);
    // The pods run the current template (same restart digest): a reload is theirs to do.
    let mut current_pods = pods(&["10.0.0.1", "10.0.0.2", "10.0.0.3"]);
    for p in current_pods["items"].as_array_mut().unwrap() {
        p["metadata"]["annotations"] = json!({"natrix.io/restart-digest": old.config.digest});
    }
    let mut steps = vec![step(
        Method::GET,
        CM,
        200,
        Some(config_map_with_base(&old.config.text)),
    )];
    steps.extend(apply_steps(
        (200, sts_reply(3, 3, "r1", "r1")),
        sts_reply(3, 3, "r1", "r1"),
    ));
    steps.extend([
        step(Method::GET, PODS, 200, Some(current_pods)),
        // nc-1 answers with the old digest: its kubelet is asked to refresh the volume.
        step(Method::PATCH, &format!("{PODS}/nc-1"), 200, None),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, STATUS, 200, Some(nc_reply())),
    ]);
    let (client, server) = serve(steps);
    let action = controller::reconcile(Arc::new(nc), context(client, probe))
        .await
        .unwrap();
    let mut seen = server.await.unwrap();
    let nudge = seen.remove(8);
    assert_eq!(
        nudge.body,
        json!({"metadata": {"annotations": {"natrix.io/config-digest": new_digest}}})
    );
    // Pods reload within seconds: the status follows them closely.
    assert_eq!(action, Action::requeue(controller::REQUEUE_RELOADING));
    // The pod template keeps the old restart digest: no roll.
    assert_eq!(restart_annotation(&seen[5].body), old.config.digest);
    assert_eq!(seen[1].body["data"]["restart-base.conf"], old.config.text);
    assert_eq!(seen[8].body["reason"], "ConfigReloading");
    assert!(
        seen[8].body["note"]
            .as_str()
            .unwrap()
            .contains("MaxPayload")
    );
    let status = &seen[9].body;
    let p = condition(status, "Progressing");
    assert_eq!(p["reason"], "ConfigReloading");
    assert!(p["message"].as_str().unwrap().contains("nc-1, nc-2"), "{p}");
    let pods = status["status"]["podConfigs"].as_array().unwrap();
    assert_eq!(pods[0]["applied"], true);
    assert_eq!(pods[1]["applied"], false);
    assert_eq!(pods[1]["configDigest"], old.config.digest.as_str());
    assert_eq!(pods[2]["applied"], false);
    assert!(pods[2].get("configDigest").is_none());
}

#[tokio::test]
async fn restart_needed_change_rolls_the_pods() {
    let old = render::render(&cluster(json!({}), None), &Inputs::default()).unwrap();
    let nc = cluster(
        json!({"monitoring": {"port": 9222}}),
        Some(json!({"configDigest": old.config.digest})),
    );
    let mut steps = vec![step(
        Method::GET,
        CM,
        200,
        Some(config_map_with_base(&old.config.text)),
    )];
    steps.extend(apply_steps(
        (200, sts_reply(3, 3, "r1", "r1")),
        sts_reply(3, 1, "r1", "r2"),
    ));
    steps.extend([
        step(Method::GET, PODS, 200, Some(pods(&[]))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, STATUS, 200, Some(nc_reply())),
    ]);
    let (client, server) = serve(steps);
    let mut probe = HashMap::new();
    probe.insert("unused".to_string(), None);
    controller::reconcile(Arc::new(nc), context(client, probe))
        .await
        .unwrap();
    let seen = server.await.unwrap();
    let new_digest = seen[1].body["metadata"]["annotations"]["natrix.io/config-digest"]
        .as_str()
        .unwrap()
        .to_string();
    assert_ne!(new_digest, old.config.digest);
    assert_eq!(restart_annotation(&seen[5].body), new_digest);
    assert_eq!(
        seen[1].body["data"]["restart-base.conf"],
        seen[1].body["data"]["nats.conf"]
    );
    assert_eq!(seen[8].body["reason"], "RollingRestart");
    assert!(seen[8].body["note"].as_str().unwrap().contains("HTTPPort"));
    assert_eq!(
        condition(&seen[9].body, "Progressing")["reason"],
        "RollingRestart"
    );
}

#[tokio::test]
async fn config_the_broker_refuses_touches_nothing() {
    let good = render::render(&cluster(json!({}), None), &Inputs::default()).unwrap();
    let nc = cluster(
        json!({"config": {"merge": {"max_payload": "lots"}}}),
        Some(
            json!({"configDigest": good.config.digest, "replicas": 3, "readyReplicas": 3,
                    "podConfigs": [{"pod": "nc-0", "configDigest": good.config.digest, "applied": true}]}),
        ),
    );
    let (client, server) = serve(vec![
        step(
            Method::GET,
            CM,
            200,
            Some(config_map_with_base(&good.config.text)),
        ),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, STATUS, 200, Some(nc_reply())),
    ]);
    let action = controller::reconcile(Arc::new(nc), context(client, HashMap::new()))
        .await
        .unwrap();
    let seen = server.await.unwrap();
    assert_eq!(action, Action::await_change());
    assert_eq!(seen[1].body["type"], "Warning");
    assert_eq!(seen[1].body["reason"], "InvalidConfig");
    let status = &seen[2].body;
    let d = condition(status, "Degraded");
    assert_eq!(d["status"], "True");
    assert_eq!(d["reason"], "InvalidConfig");
    let msg = d["message"].as_str().unwrap();
    assert!(
        msg.contains("nats.conf:17:1: interface conversion")
            && msg.contains("(in `max_payload = \"lots\"`)"),
        "{msg}"
    );
    assert!(msg.contains("Nothing was changed"), "{msg}");
    // The last known good state is kept.
    assert_eq!(
        status["status"]["configDigest"],
        good.config.digest.as_str()
    );
    assert_eq!(status["status"]["podConfigs"][0]["applied"], true);
    assert_eq!(status["status"]["readyReplicas"], 3);
}

#[tokio::test]
async fn gateways_resolve_from_all_namespaces() {
    let nc = cluster(json!({"replicas": 1, "gateways": {}}), None);
    let peer = json!({"apiVersion": "natrix.io/v1alpha1", "kind": "NatsCluster",
        "metadata": {"name": "other", "namespace": "far"},
        "spec": {"replicas": 2, "gateways": {"remotes": [{"natsCluster": {"name": "nc", "namespace": NS}}]}}});
    let list = json!({"apiVersion": "natrix.io/v1alpha1", "kind": "NatsClusterList", "metadata": {},
        "items": [peer, serde_json::to_value(&nc).unwrap()]});
    let mut steps = vec![
        step(Method::GET, CM, 404, Some(not_found("configmap"))),
        step(Method::GET, ALL_CLUSTERS, 200, Some(list)),
    ];
    steps.extend(apply_steps(
        (404, not_found("sts")),
        sts_reply(0, 0, "a", "a"),
    ));
    steps.extend([
        step(Method::GET, PODS, 200, Some(pods(&[]))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, STATUS, 200, Some(nc_reply())),
    ]);
    let (client, server) = serve(steps);
    controller::reconcile(Arc::new(nc), context(client, HashMap::new()))
        .await
        .unwrap();
    let seen = server.await.unwrap();
    let conf = seen[2].body["data"]["nats.conf"].as_str().unwrap();
    assert!(conf.contains("name = \"other\""), "{conf}");
    assert!(
        conf.contains("nats://other-1.other-headless.far.svc.cluster.local:7222"),
        "{conf}"
    );
    assert_eq!(condition(&seen[10].body, "Degraded")["status"], "False");
}

#[tokio::test]
async fn growing_volumes_resizes_claims_and_recreates_the_statefulset() {
    let spec =
        json!({"replicas": 2, "jetstream": {"enabled": true, "fileStorage": {"size": "20Gi"}}});
    let mut live = sts_reply(2, 2, "r", "r");
    live["spec"]["replicas"] = json!(2);
    live["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"},
        "spec": {"resources": {"requests": {"storage": "10Gi"}}}}]);
    let nc = cluster(spec, None);
    let steps = vec![
        step(Method::GET, CM, 404, Some(not_found("cm"))),
        step(Method::PATCH, CM, 200, None),
        step(Method::PATCH, HEADLESS, 200, None),
        step(Method::PATCH, CLIENT, 200, None),
        step(Method::GET, STS, 200, Some(live)),
        step(
            Method::PATCH,
            "/api/v1/namespaces/ns/persistentvolumeclaims/data-nc-0",
            200,
            Some(
                json!({"apiVersion": "v1", "kind": "PersistentVolumeClaim", "metadata": {"name": "data-nc-0"}}),
            ),
        ),
        step(
            Method::PATCH,
            "/api/v1/namespaces/ns/persistentvolumeclaims/data-nc-1",
            404,
            Some(not_found("pvc")),
        ),
        step(Method::DELETE, STS, 200, Some(sts_reply(2, 2, "r", "r"))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, STS, 200, Some(sts_reply(0, 0, "r", "r"))),
        step(Method::PATCH, PDB, 200, None),
        step(Method::GET, PODS, 200, Some(pods(&[]))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, STATUS, 200, Some(nc_reply())),
    ];
    let (client, server) = serve(steps);
    controller::reconcile(Arc::new(nc), context(client, HashMap::new()))
        .await
        .unwrap();
    let seen = server.await.unwrap();
    assert_eq!(
        seen[5].body["spec"]["resources"]["requests"]["storage"],
        "20Gi"
    );
    assert_eq!(seen[7].body["propagationPolicy"], "Orphan");
    assert_eq!(seen[8].body["reason"], "VolumesChanged");
    assert_eq!(
        seen[9].body["spec"]["volumeClaimTemplates"][0]["spec"]["resources"]["requests"]["storage"],
        "20Gi"
    );
}

#[tokio::test]
async fn a_storage_class_without_expansion_is_reported_and_the_statefulset_kept() {
    let spec =
        json!({"replicas": 2, "jetstream": {"enabled": true, "fileStorage": {"size": "20Gi"}}});
    let mut live = sts_reply(2, 2, "r", "r");
    live["spec"]["replicas"] = json!(2);
    live["spec"]["volumeClaimTemplates"] = json!([{"metadata": {"name": "data"},
        "spec": {"resources": {"requests": {"storage": "10Gi"}}}}]);
    let nc = cluster(spec, None);
    let refusal = "persistentvolumeclaims \"data-nc-0\" is forbidden: only dynamically provisioned pvc can be resized and the storageclass that provisions the pvc must support resize";
    let steps = vec![
        step(Method::GET, CM, 404, Some(not_found("cm"))),
        step(Method::PATCH, CM, 200, None),
        step(Method::PATCH, HEADLESS, 200, None),
        step(Method::PATCH, CLIENT, 200, None),
        step(Method::GET, STS, 200, Some(live)),
        step(
            Method::PATCH,
            "/api/v1/namespaces/ns/persistentvolumeclaims/data-nc-0",
            403,
            Some(
                json!({"kind": "Status", "apiVersion": "v1", "status": "Failure",
                "message": refusal, "reason": "Forbidden", "code": 403}),
            ),
        ),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, STATUS, 200, Some(nc_reply())),
    ];
    let (client, server) = serve(steps);
    let action = controller::reconcile(Arc::new(nc), context(client, HashMap::new()))
        .await
        .unwrap();
    assert_eq!(action, Action::requeue(controller::REQUEUE_WAITING));
    let seen = server.await.unwrap();
    assert_eq!(seen[6].body["reason"], "VolumeExpansionRefused");
    let conditions = seen[7].body["status"]["conditions"].as_array().unwrap();
    let degraded = conditions.iter().find(|c| c["type"] == "Degraded").unwrap();
    assert_eq!(degraded["status"], "True");
    assert_eq!(degraded["reason"], "VolumeExpansionRefused");
    let message = degraded["message"].as_str().unwrap();
    assert!(
        message.contains("data-nc-0 cannot be resized to 20Gi")
            && message.contains("storageclass that provisions the pvc must support resize"),
        "{message}"
    );
}

#[tokio::test]
async fn disabled_pdb_is_deleted_and_missing_service_monitor_crd_is_reported() {
    let nc = cluster(
        json!({"replicas": 1, "pdb": {"enabled": false},
        "monitoring": {"serviceMonitor": {"enabled": true}}}),
        None,
    );
    let steps = vec![
        step(Method::GET, CM, 404, Some(not_found("cm"))),
        step(Method::PATCH, CM, 200, None),
        step(Method::PATCH, HEADLESS, 200, None),
        step(Method::PATCH, CLIENT, 200, None),
        step(Method::GET, STS, 404, Some(not_found("sts"))),
        step(Method::PATCH, STS, 200, Some(sts_reply(0, 0, "r", "r"))),
        step(Method::DELETE, PDB, 404, Some(not_found("pdb"))),
        step(
            Method::PATCH,
            "/apis/monitoring.coreos.com/v1/namespaces/ns/servicemonitors/nc",
            404,
            // What a real API server answers for a resource type it does not serve.
            Some(json!("404 page not found\n")),
        ),
        step(Method::GET, PODS, 200, Some(pods(&[]))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, STATUS, 200, Some(nc_reply())),
    ];
    let (client, server) = serve(steps);
    controller::reconcile(Arc::new(nc), context(client, HashMap::new()))
        .await
        .unwrap();
    let seen = server.await.unwrap();
    assert_eq!(seen[10].body["type"], "Warning");
    assert_eq!(seen[10].body["reason"], "ServiceMonitorUnavailable");
    let d = condition(&seen[11].body, "Degraded");
    assert_eq!(d["reason"], "ServiceMonitorUnavailable");
    assert!(
        d["message"]
            .as_str()
            .unwrap()
            .contains("ServiceMonitor CRD")
    );
}

#[tokio::test]
async fn api_errors_are_typed_and_back_off() {
    let nc = Arc::new(cluster(json!({}), None));
    let (client, server) = serve(vec![
        step(Method::GET, CM, 404, Some(not_found("cm"))),
        step(Method::PATCH, CM, 409, Some(failure(409, "Conflict"))),
    ]);
    let ctx = context(client, HashMap::new());
    let err = controller::reconcile(nc.clone(), ctx.clone())
        .await
        .unwrap_err();
    server.await.unwrap();
    assert!(matches!(err, Error::Kube { .. }));
    assert_eq!(err.metric_label(), "conflict");
    assert!(
        err.to_string().starts_with("apply ConfigMap nc-config"),
        "{err}"
    );
    let delays: Vec<Duration> = (0..8)
        .map(
            |_| match controller::error_policy(nc.clone(), &err, ctx.clone()) {
                a if a == Action::requeue(Duration::from_secs(5)) => Duration::from_secs(5),
                a => {
                    // Recover the delay by comparing against the candidates.
                    (1..=10)
                        .map(|k| Duration::from_secs(5 << k))
                        .chain([controller::BACKOFF_MAX])
                        .find(|d| a == Action::requeue(*d))
                        .unwrap()
                }
            },
        )
        .collect();
    assert_eq!(delays[..4], [5, 10, 20, 40].map(Duration::from_secs));
    assert_eq!(delays[7], controller::BACKOFF_MAX);
    let metrics = ctx.metrics.render();
    assert!(
        metrics.contains("natrix_operator_reconcile_errors_total{error=\"conflict\"} 1"),
        "{metrics}"
    );
}

/// What the status endpoint returns (its content does not matter to the reconciler).
fn nc_reply() -> Value {
    serde_json::to_value(cluster(json!({}), None)).unwrap()
}

#[tokio::test]
async fn a_cluster_deleted_mid_reconcile_is_not_an_error() {
    let nc = cluster(json!({"config": {"merge": {"nope": 1}}}), None);
    let (client, server) = serve(vec![
        step(Method::GET, CM, 404, Some(not_found("cm"))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, STATUS, 404, Some(not_found("natsclusters"))),
    ]);
    let action = controller::reconcile(Arc::new(nc), context(client, HashMap::new()))
        .await
        .unwrap();
    server.await.unwrap();
    assert_eq!(action, Action::await_change());
}

const CERT: &str = "/apis/cert-manager.io/v1/namespaces/ns/certificates/nc-client";

#[tokio::test]
async fn cert_manager_certificate_names_the_secret_to_mount() {
    let nc = cluster(
        json!({"replicas": 1, "tls": {"client": {"certificate": "nc-client", "ca": "ca.crt"}}}),
        None,
    );
    let cert = json!({"apiVersion": "cert-manager.io/v1", "kind": "Certificate",
        "metadata": {"name": "nc-client", "namespace": NS},
        "spec": {"secretName": "nc-client-tls", "dnsNames": ["nc.ns.svc"]}});
    let mut steps = vec![
        step(Method::GET, CM, 404, Some(not_found("cm"))),
        step(Method::GET, CERT, 200, Some(cert)),
    ];
    steps.extend(apply_steps(
        (404, not_found("sts")),
        sts_reply(0, 0, "r", "r"),
    ));
    steps.extend([
        step(Method::GET, PODS, 200, Some(pods(&[]))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, STATUS, 200, Some(nc_reply())),
    ]);
    let (client, server) = serve(steps);
    controller::reconcile(Arc::new(nc), context(client, HashMap::new()))
        .await
        .unwrap();
    let seen = server.await.unwrap();
    let volumes = seen[6].body["spec"]["template"]["spec"]["volumes"]
        .as_array()
        .unwrap();
    let tls = volumes.iter().find(|v| v["name"] == "tls-client").unwrap();
    assert_eq!(tls["secret"]["secretName"], "nc-client-tls");
    let conf = seen[2].body["data"]["nats.conf"].as_str().unwrap();
    assert!(
        conf.contains("ca_file = \"/etc/natrix/tls/client/ca.crt\""),
        "{conf}"
    );
}

#[tokio::test]
async fn missing_certificate_applies_nothing_and_retries() {
    let nc = cluster(
        json!({"tls": {"routes": {"certificate": "nc-client"}}}),
        None,
    );
    let (client, server) = serve(vec![
        step(Method::GET, CM, 404, Some(not_found("cm"))),
        // No cert-manager: the resource type itself is unknown.
        step(Method::GET, CERT, 404, Some(json!("404 page not found\n"))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, STATUS, 200, Some(nc_reply())),
    ]);
    let action = controller::reconcile(Arc::new(nc), context(client, HashMap::new()))
        .await
        .unwrap();
    let seen = server.await.unwrap();
    assert_eq!(action, Action::requeue(controller::REQUEUE_WAITING));
    assert_eq!(seen[2].body["reason"], "CertificateNotFound");
    let d = condition(&seen[3].body, "Degraded");
    assert_eq!(d["reason"], "CertificateNotFound");
    assert!(
        d["message"].as_str().unwrap().contains(
            "tls.routes.certificate: cert-manager Certificate ns/nc-client does not exist"
        ),
        "{d}"
    );
}
