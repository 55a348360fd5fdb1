//! The Kubernetes objects of a NatsCluster: ConfigMap, headless and client Services,
//! StatefulSet, PodDisruptionBudget and an optional ServiceMonitor.
//!
//! The shape follows what the NATS Helm chart's users learned the hard way:
//! - `podManagementPolicy: Parallel`: with OrderedReady a JetStream cluster never reaches
//!   quorum (pod 0 waits for readiness that needs pods 1 and 2);
//! - the headless Service publishes not-ready addresses, so routes resolve while pods start;
//! - the config volume is a directory mount of the ConfigMap (never `subPath`, which the
//!   kubelet never updates), so a changed ConfigMap reaches running pods;
//! - readiness is `/healthz?js-server-only=true` and stays false until the server's
//!   JetStream has caught up, so a rolling restart never takes a stream offline;
//! - a preStop lame-duck signal and a termination grace period longer than the lame-duck
//!   duration plus its grace period, so the kubelet never kills a server mid hand-over.

use std::collections::BTreeMap;

use k8s_openapi::api::apps::v1::{
    StatefulSet, StatefulSetPersistentVolumeClaimRetentionPolicy, StatefulSetSpec,
    StatefulSetUpdateStrategy,
};
use k8s_openapi::api::core::v1::{
    ConfigMap, ConfigMapVolumeSource, Container, ContainerPort, EmptyDirVolumeSource, EnvVar,
    EnvVarSource, ExecAction, HTTPGetAction, KeyToPath, Lifecycle, LifecycleHandler,
    LocalObjectReference, ObjectFieldSelector, PersistentVolumeClaim, PersistentVolumeClaimSpec,
    PodSecurityContext, PodSpec, PodTemplateSpec, Probe, SecretVolumeSource, Service, ServicePort,
    ServiceSpec, TopologySpreadConstraint, Volume, VolumeMount, VolumeResourceRequirements,
};
use k8s_openapi::api::policy::v1::{PodDisruptionBudget, PodDisruptionBudgetSpec};
use k8s_openapi::apimachinery::pkg::api::resource::Quantity;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{LabelSelector, ObjectMeta};
use k8s_openapi::apimachinery::pkg::util::intstr::IntOrString;
use kube::Resource;
use kube::api::{ApiResource, DynamicObject, GroupVersionKind};

use super::config::{
    CLIENT_PORT, CLUSTER_PORT, CONFIG_DIR, CONFIG_KEY, CONFIG_PATH, DATA_DIR,
    LAME_DUCK_GRACE_SECONDS, LEAF_CREDS_DIR, PID_DIR, PID_FILE, RenderedConfig, TLS_DIR,
};
use super::names::{self, ANNOTATION_CONFIG, ANNOTATION_RESTART};
use super::{RenderError, RestartDecision};
use crate::crd::{DeletionPolicy, NatsCluster, TlsListener, WhenUnsatisfiable};

/// ConfigMap key holding the config the pods were last restarted for (not mounted).
pub const RESTART_BASE_KEY: &str = "restart-base.conf";
/// Group owning the JetStream data volume (the natrix-server image's user, nobody).
pub const DATA_FS_GROUP: i64 = 65534;
/// Name of the server container.
pub const CONTAINER: &str = "natrix";
/// Extra seconds of termination grace on top of lame duck and its grace period, for the
/// final shutdown and the JetStream flush.
pub const SHUTDOWN_MARGIN_SECONDS: u64 = 20;

fn meta(nc: &NatsCluster, name: String) -> Result<ObjectMeta, RenderError> {
    let owner = nc
        .controller_owner_ref(&())
        .ok_or_else(|| RenderError::Spec("NatsCluster has no uid yet".into()))?;
    Ok(ObjectMeta {
        name: Some(name),
        namespace: Some(names::namespace(nc)?),
        labels: Some(names::labels(&nc.base_name())),
        owner_references: Some(vec![owner]),
        ..ObjectMeta::default()
    })
}

pub fn config_map(
    nc: &NatsCluster,
    config: &RenderedConfig,
    restart: &RestartDecision,
) -> Result<ConfigMap, RenderError> {
    let mut m = meta(nc, names::config_map(&nc.base_name()))?;
    m.annotations = Some(BTreeMap::from([(
        ANNOTATION_CONFIG.to_string(),
        config.digest.clone(),
    )]));
    Ok(ConfigMap {
        metadata: m,
        data: Some(BTreeMap::from([
            (CONFIG_KEY.to_string(), config.text.clone()),
            (RESTART_BASE_KEY.to_string(), restart.base_text.clone()),
        ])),
        ..ConfigMap::default()
    })
}

fn port(name: &str, p: i32) -> ServicePort {
    ServicePort {
        name: Some(name.to_string()),
        port: p,
        target_port: Some(IntOrString::String(name.to_string())),
        protocol: Some("TCP".to_string()),
        ..ServicePort::default()
    }
}

/// Named ports of the server container: `(name, port)`, client first.
fn container_ports(nc: &NatsCluster) -> Vec<(&'static str, i32)> {
    let s = &nc.spec;
    let mut v = vec![
        ("client", CLIENT_PORT),
        ("cluster", CLUSTER_PORT),
        ("monitor", names::monitor_port(nc)),
    ];
    if let Some(g) = &s.gateways {
        v.push(("gateway", g.port));
    }
    if let Some(p) = s.leafnodes.as_ref().and_then(|l| l.port) {
        v.push(("leafnodes", p));
    }
    if let Some(w) = &s.websocket {
        v.push(("websocket", w.port));
    }
    if let Some(m) = &s.mqtt {
        v.push(("mqtt", m.port));
    }
    v
}

pub fn headless_service(nc: &NatsCluster) -> Result<Service, RenderError> {
    let name = nc.base_name();
    let mut m = meta(nc, names::headless_service(&name))?;
    if let Some(l) = m.labels.as_mut() {
        l.insert(names::LABEL_SERVICE.into(), "headless".into());
    }
    Ok(Service {
        metadata: m,
        spec: Some(ServiceSpec {
            cluster_ip: Some("None".into()),
            // Routes must resolve before the pods are ready: readiness needs the routes.
            publish_not_ready_addresses: Some(true),
            selector: Some(names::selector_labels(&name)),
            ports: Some(
                container_ports(nc)
                    .into_iter()
                    .map(|(n, p)| port(n, p))
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

pub fn client_service(nc: &NatsCluster) -> Result<Service, RenderError> {
    let name = nc.base_name();
    let mut m = meta(nc, names::client_service(&name))?;
    if let Some(l) = m.labels.as_mut() {
        l.insert(names::LABEL_SERVICE.into(), "client".into());
    }
    let ports = container_ports(nc)
        .into_iter()
        .filter(|(n, _)| matches!(*n, "client" | "leafnodes" | "websocket" | "mqtt"))
        .map(|(n, p)| port(n, p))
        .collect();
    Ok(Service {
        metadata: m,
        spec: Some(ServiceSpec {
            selector: Some(names::selector_labels(&name)),
            ports: Some(ports),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    })
}

fn http_probe(path: &str, period: i32, failures: i32) -> Probe {
    Probe {
        http_get: Some(HTTPGetAction {
            path: Some(path.to_string()),
            port: IntOrString::String("monitor".into()),
            ..HTTPGetAction::default()
        }),
        period_seconds: Some(period),
        timeout_seconds: Some(5),
        failure_threshold: Some(failures),
        ..Probe::default()
    }
}

fn env_field(name: &str, path: &str) -> EnvVar {
    EnvVar {
        name: name.to_string(),
        value_from: Some(EnvVarSource {
            field_ref: Some(ObjectFieldSelector {
                field_path: path.to_string(),
                ..ObjectFieldSelector::default()
            }),
            ..EnvVarSource::default()
        }),
        ..EnvVar::default()
    }
}

/// The Secret of a TLS listener: named directly, or written by the named cert-manager
/// Certificate (resolved by the controller into `certs`).
pub fn tls_secret(
    listener: &str,
    t: &TlsListener,
    certs: &BTreeMap<String, String>,
) -> Result<String, RenderError> {
    match (&t.secret_name, &t.certificate) {
        (Some(s), _) => Ok(s.clone()),
        (None, Some(c)) => certs.get(c).cloned().ok_or_else(|| {
            RenderError::Spec(format!(
                "tls.{listener}.certificate: cert-manager Certificate {c:?} is not resolved"
            ))
        }),
        (None, None) => Err(RenderError::Spec(format!(
            "tls.{listener} names neither a secretName nor a certificate"
        ))),
    }
}

/// Every TLS listener of the spec with its name.
pub fn tls_listeners(nc: &NatsCluster) -> Vec<(&'static str, &TlsListener)> {
    let Some(t) = &nc.spec.tls else {
        return Vec::new();
    };
    [
        ("client", &t.client),
        ("routes", &t.routes),
        ("gateway", &t.gateway),
        ("leafnodes", &t.leafnodes),
        ("websocket", &t.websocket),
        ("mqtt", &t.mqtt),
    ]
    .into_iter()
    .filter_map(|(n, l)| l.as_ref().map(|l| (n, l)))
    .collect()
}

/// Seconds of the lame-duck duration, rounded up.
pub fn lame_duck_seconds(nc: &NatsCluster) -> Result<u64, RenderError> {
    let d = natrix_config::duration::parse_duration(&nc.spec.lame_duck_duration)
        .map_err(|e| RenderError::Spec(format!("lameDuckDuration: {e}")))?;
    Ok(d.as_secs() + u64::from(d.subsec_nanos() > 0))
}

fn image(nc: &NatsCluster) -> String {
    if nc.spec.version.is_empty() {
        nc.spec.image.clone()
    } else {
        format!("{}:{}", nc.spec.image, nc.spec.version)
    }
}

fn pod_spec(nc: &NatsCluster, certs: &BTreeMap<String, String>) -> Result<PodSpec, RenderError> {
    let spec = &nc.spec;
    let name = nc.base_name();
    let overrides = spec.pod_template.clone().unwrap_or_default();

    let mut volumes = vec![
        Volume {
            name: "config".into(),
            config_map: Some(ConfigMapVolumeSource {
                name: names::config_map(&name),
                // Only the live config: the restart base is the operator's bookkeeping.
                items: Some(vec![KeyToPath {
                    key: CONFIG_KEY.into(),
                    path: CONFIG_KEY.into(),
                    ..KeyToPath::default()
                }]),
                ..ConfigMapVolumeSource::default()
            }),
            ..Volume::default()
        },
        Volume {
            name: "pid".into(),
            empty_dir: Some(EmptyDirVolumeSource::default()),
            ..Volume::default()
        },
    ];
    let mut mounts = vec![
        VolumeMount {
            name: "config".into(),
            mount_path: CONFIG_DIR.into(),
            read_only: Some(true),
            ..VolumeMount::default()
        },
        VolumeMount {
            name: "pid".into(),
            mount_path: PID_DIR.into(),
            ..VolumeMount::default()
        },
    ];
    if file_storage(nc) {
        mounts.push(VolumeMount {
            name: "data".into(),
            mount_path: DATA_DIR.into(),
            ..VolumeMount::default()
        });
    }
    for (listener, t) in tls_listeners(nc) {
        let vol = format!("tls-{listener}");
        volumes.push(Volume {
            name: vol.clone(),
            secret: Some(SecretVolumeSource {
                secret_name: Some(tls_secret(listener, t, certs)?),
                ..SecretVolumeSource::default()
            }),
            ..Volume::default()
        });
        mounts.push(VolumeMount {
            name: vol,
            mount_path: format!("{TLS_DIR}/{listener}"),
            read_only: Some(true),
            ..VolumeMount::default()
        });
    }
    if let Some(leaf) = &spec.leafnodes {
        for (i, r) in leaf.remotes.iter().enumerate() {
            let Some(c) = &r.credentials else { continue };
            let vol = format!("leaf-creds-{i}");
            volumes.push(Volume {
                name: vol.clone(),
                secret: Some(SecretVolumeSource {
                    secret_name: Some(c.name.clone()),
                    ..SecretVolumeSource::default()
                }),
                ..Volume::default()
            });
            mounts.push(VolumeMount {
                name: vol,
                mount_path: format!("{LEAF_CREDS_DIR}/{i}"),
                read_only: Some(true),
                ..VolumeMount::default()
            });
        }
    }

    let mut env = vec![
        env_field("POD_NAME", "metadata.name"),
        env_field("POD_NAMESPACE", "metadata.namespace"),
    ];
    env.extend(overrides.env.iter().map(|(k, v)| EnvVar {
        name: k.clone(),
        value: Some(v.clone()),
        ..EnvVar::default()
    }));

    let container = Container {
        name: CONTAINER.into(),
        image: Some(image(nc)),
        image_pull_policy: spec.image_pull_policy.map(|p| p.as_str().to_string()),
        // The server name comes from the pod name on the command line rather than from the
        // config, so the config (and its digest) is identical on every pod.
        args: Some(vec![
            "-c".into(),
            CONFIG_PATH.into(),
            "--name".into(),
            "$(POD_NAME)".into(),
        ]),
        env: Some(env),
        ports: Some(
            container_ports(nc)
                .into_iter()
                .map(|(n, p)| ContainerPort {
                    name: Some(n.into()),
                    container_port: p,
                    protocol: Some("TCP".into()),
                    ..ContainerPort::default()
                })
                .collect(),
        ),
        resources: spec.resources.clone(),
        volume_mounts: Some(mounts),
        startup_probe: Some(http_probe("/healthz", 5, 120)),
        readiness_probe: Some(http_probe("/healthz?js-server-only=true", 10, 3)),
        liveness_probe: Some(http_probe("/healthz?js-enabled-only=true", 30, 3)),
        lifecycle: Some(Lifecycle {
            pre_stop: Some(LifecycleHandler {
                exec: Some(ExecAction {
                    command: Some(vec![
                        "natrix-server".into(),
                        "--signal".into(),
                        format!("ldm={PID_FILE}"),
                    ]),
                }),
                ..LifecycleHandler::default()
            }),
            ..Lifecycle::default()
        }),
        ..Container::default()
    };

    let selector = names::selector_labels(&name);
    let spread: Vec<TopologySpreadConstraint> = spec
        .topology_spread
        .iter()
        .map(|t| TopologySpreadConstraint {
            topology_key: t.topology_key.clone(),
            max_skew: t.max_skew,
            when_unsatisfiable: match t.when_unsatisfiable {
                Some(WhenUnsatisfiable::ScheduleAnyway) => "ScheduleAnyway",
                _ => "DoNotSchedule",
            }
            .into(),
            label_selector: Some(LabelSelector {
                match_labels: Some(selector.clone()),
                ..LabelSelector::default()
            }),
            ..TopologySpreadConstraint::default()
        })
        .collect();

    let grace = lame_duck_seconds(nc)? + LAME_DUCK_GRACE_SECONDS + SHUTDOWN_MARGIN_SECONDS;
    let pod = PodSpec {
        containers: vec![container],
        volumes: Some(volumes),
        termination_grace_period_seconds: Some(
            i64::try_from(grace)
                .map_err(|_| RenderError::Spec("lameDuckDuration is too long".into()))?,
        ),
        topology_spread_constraints: (!spread.is_empty()).then_some(spread),
        image_pull_secrets: (!spec.image_pull_secrets.is_empty()).then(|| {
            spec.image_pull_secrets
                .iter()
                .map(|n| LocalObjectReference { name: n.clone() })
                .collect()
        }),
        node_selector: (!overrides.node_selector.is_empty())
            .then(|| overrides.node_selector.clone()),
        tolerations: (!overrides.tolerations.is_empty()).then(|| overrides.tolerations.clone()),
        // The data volume must be writable by the server's user; natrix-server images run
        // as nobody (65534). `podTemplate.spec.securityContext` overrides this.
        security_context: file_storage(nc).then(|| PodSecurityContext {
            fs_group: Some(DATA_FS_GROUP),
            fs_group_change_policy: Some("OnRootMismatch".into()),
            ..PodSecurityContext::default()
        }),
        priority_class_name: overrides.priority_class_name.clone(),
        service_account_name: overrides.service_account_name.clone(),
        ..PodSpec::default()
    };
    match &overrides.spec {
        Some(patch) => apply_pod_patch(pod, patch),
        None => Ok(pod),
    }
}

/// JSON merge patch (RFC 7396) with one exception: `containers` and `initContainers` are
/// merged by `name`, so `{containers: [{name: natrix, securityContext: ...}]}` adds to the
/// generated container instead of replacing the list.
fn merge_patch(target: &mut serde_json::Value, patch: &serde_json::Value, key: Option<&str>) {
    use serde_json::Value;
    match (target, patch) {
        (Value::Object(t), Value::Object(p)) => {
            for (k, v) in p {
                if v.is_null() {
                    t.remove(k);
                } else {
                    let slot = t.entry(k.clone()).or_insert(Value::Null);
                    merge_patch(slot, v, Some(k));
                }
            }
        }
        (Value::Array(t), Value::Array(p))
            if matches!(key, Some("containers" | "initContainers")) =>
        {
            for item in p {
                let name = item.get("name").and_then(Value::as_str);
                match t
                    .iter_mut()
                    .find(|x| name.is_some() && x.get("name").and_then(Value::as_str) == name)
                {
                    Some(existing) => merge_patch(existing, item, None),
                    None => t.push(item.clone()),
                }
            }
        }
        (t, p) => {
            let mut p = p.clone();
            if p.is_object() {
                // A merge patch onto a non-object starts from an empty object.
                let mut fresh = Value::Object(serde_json::Map::new());
                merge_patch(&mut fresh, &p, key);
                p = fresh;
            }
            *t = p;
        }
    }
}

fn apply_pod_patch(
    pod: PodSpec,
    patch: &serde_json::Map<String, serde_json::Value>,
) -> Result<PodSpec, RenderError> {
    let mut v = serde_json::to_value(&pod)
        .map_err(|e| RenderError::Spec(format!("podTemplate.spec: {e}")))?;
    merge_patch(&mut v, &serde_json::Value::Object(patch.clone()), None);
    serde_json::from_value(v).map_err(|e| {
        RenderError::Spec(format!(
            "podTemplate.spec does not give a valid pod spec: {e}"
        ))
    })
}

fn file_storage(nc: &NatsCluster) -> bool {
    nc.spec
        .jetstream
        .as_ref()
        .is_some_and(|j| j.enabled && j.file_storage.is_some())
}

pub fn statefulset(
    nc: &NatsCluster,
    restart: &RestartDecision,
    certs: &BTreeMap<String, String>,
) -> Result<StatefulSet, RenderError> {
    let name = nc.base_name();
    let overrides = nc.spec.pod_template.clone().unwrap_or_default();
    let mut pod_labels = overrides.labels.clone();
    pod_labels.extend(names::labels(&name));
    let mut pod_annotations = overrides.annotations.clone();
    pod_annotations.insert(ANNOTATION_RESTART.into(), restart.digest.clone());

    let claims = nc
        .spec
        .jetstream
        .as_ref()
        .filter(|j| j.enabled)
        .and_then(|j| j.file_storage.as_ref())
        .map(|fs| {
            vec![PersistentVolumeClaim {
                metadata: ObjectMeta {
                    name: Some("data".into()),
                    labels: Some(names::selector_labels(&name)),
                    ..ObjectMeta::default()
                },
                spec: Some(PersistentVolumeClaimSpec {
                    access_modes: Some(vec!["ReadWriteOnce".into()]),
                    storage_class_name: fs.storage_class_name.clone(),
                    resources: Some(VolumeResourceRequirements {
                        requests: Some(BTreeMap::from([(
                            "storage".to_string(),
                            Quantity(fs.size.clone()),
                        )])),
                        ..VolumeResourceRequirements::default()
                    }),
                    ..PersistentVolumeClaimSpec::default()
                }),
                ..PersistentVolumeClaim::default()
            }]
        });

    // The StatefulSet controller deletes the claims with the StatefulSet (which the
    // NatsCluster owns) when asked to: no finalizer is needed for deletionPolicy.
    let when_deleted = match nc.spec.deletion_policy {
        DeletionPolicy::Delete => "Delete",
        DeletionPolicy::Orphan => "Retain",
    };

    Ok(StatefulSet {
        metadata: meta(nc, names::statefulset(&name))?,
        spec: Some(StatefulSetSpec {
            replicas: Some(nc.spec.replicas),
            service_name: Some(names::headless_service(&name)),
            pod_management_policy: Some("Parallel".into()),
            update_strategy: Some(StatefulSetUpdateStrategy {
                type_: Some("RollingUpdate".into()),
                ..StatefulSetUpdateStrategy::default()
            }),
            selector: LabelSelector {
                match_labels: Some(names::selector_labels(&name)),
                ..LabelSelector::default()
            },
            template: PodTemplateSpec {
                metadata: Some(ObjectMeta {
                    labels: Some(pod_labels),
                    annotations: Some(pod_annotations),
                    ..ObjectMeta::default()
                }),
                spec: Some(pod_spec(nc, certs)?),
            },
            volume_claim_templates: claims,
            persistent_volume_claim_retention_policy: file_storage(nc).then(|| {
                StatefulSetPersistentVolumeClaimRetentionPolicy {
                    when_deleted: Some(when_deleted.into()),
                    // Scaled-away servers keep their data for a scale back up.
                    when_scaled: Some("Retain".into()),
                }
            }),
            ..StatefulSetSpec::default()
        }),
        ..StatefulSet::default()
    })
}

pub fn pdb(nc: &NatsCluster) -> Result<Option<PodDisruptionBudget>, RenderError> {
    let (enabled, max_unavailable) = nc
        .spec
        .pdb
        .as_ref()
        .map_or((true, 1), |p| (p.enabled, p.max_unavailable));
    if !enabled {
        return Ok(None);
    }
    let name = nc.base_name();
    Ok(Some(PodDisruptionBudget {
        metadata: meta(nc, names::pdb(&name))?,
        spec: Some(PodDisruptionBudgetSpec {
            max_unavailable: Some(IntOrString::Int(max_unavailable)),
            selector: Some(LabelSelector {
                match_labels: Some(names::selector_labels(&name)),
                ..LabelSelector::default()
            }),
            ..PodDisruptionBudgetSpec::default()
        }),
        ..PodDisruptionBudget::default()
    }))
}

/// The Prometheus-operator resource type.
pub fn service_monitor_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "monitoring.coreos.com",
        "v1",
        "ServiceMonitor",
    ))
}

pub fn service_monitor(nc: &NatsCluster) -> Result<Option<DynamicObject>, RenderError> {
    let Some(sm) = nc
        .spec
        .monitoring
        .as_ref()
        .and_then(|m| m.service_monitor.as_ref())
        .filter(|s| s.enabled)
    else {
        return Ok(None);
    };
    let name = nc.base_name();
    let mut m = meta(nc, name.clone())?;
    if let Some(l) = m.labels.as_mut() {
        l.extend(sm.labels.clone());
    }
    let mut endpoint = serde_json::json!({"port": "monitor", "path": "/metrics"});
    if let Some(i) = &sm.interval {
        endpoint["interval"] = serde_json::Value::String(i.clone());
    }
    let mut selector = names::selector_labels(&name);
    selector.insert(names::LABEL_SERVICE.into(), "headless".into());
    let mut obj = DynamicObject::new(&name, &service_monitor_resource());
    obj.metadata = m;
    obj.data = serde_json::json!({
        "spec": {
            "selector": {"matchLabels": selector},
            "namespaceSelector": {"matchNames": [names::namespace(nc)?]},
            "endpoints": [endpoint],
        }
    });
    Ok(Some(obj))
}

#[cfg(test)]
mod tests {
    use super::merge_patch;
    use serde_json::json;

    #[test]
    fn merge_patch_merges_containers_by_name_and_removes_nulls() {
        let mut target = json!({
            "containers": [{"name": "natrix", "image": "a", "args": ["x"]}],
            "nodeSelector": {"a": "1", "b": "2"},
        });
        merge_patch(
            &mut target,
            &json!({
                "containers": [
                    {"name": "natrix", "securityContext": {"runAsNonRoot": true}},
                    {"name": "sidecar", "image": "s"}
                ],
                "nodeSelector": {"b": null, "c": "3"},
                "hostNetwork": false,
            }),
            None,
        );
        assert_eq!(
            target,
            json!({
                "containers": [
                    {"name": "natrix", "image": "a", "args": ["x"], "securityContext": {"runAsNonRoot": true}},
                    {"name": "sidecar", "image": "s"}
                ],
                "nodeSelector": {"a": "1", "c": "3"},
                "hostNetwork": false,
            })
        );
    }
}
