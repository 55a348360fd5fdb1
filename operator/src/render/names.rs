//! Names, labels and DNS names of everything rendered for a NatsCluster, in one place so
//! that routes, Services, selectors and the controller's lookups always agree.

use std::collections::BTreeMap;

use super::RenderError;
use crate::crd::NatsCluster;

/// Label keys of the recommended Kubernetes label set.
pub const LABEL_NAME: &str = "app.kubernetes.io/name";
pub const LABEL_INSTANCE: &str = "app.kubernetes.io/instance";
pub const LABEL_MANAGED_BY: &str = "app.kubernetes.io/managed-by";
pub const LABEL_COMPONENT: &str = "app.kubernetes.io/component";
/// Distinguishes the two Services (a ServiceMonitor must select only one of them).
pub const LABEL_SERVICE: &str = "natrix.io/service";
/// Pod-template annotation whose change rolls the StatefulSet: the digest of the config
/// the pods were last restarted for.
pub const ANNOTATION_RESTART: &str = "natrix.io/restart-digest";
/// The digest of the live config: on the ConfigMap, and on each running pod once the
/// operator has asked the kubelet to refresh the pod's config volume (see
/// `controller::nudge_pods`).
pub const ANNOTATION_CONFIG: &str = "natrix.io/config-digest";
/// The field manager of every server-side apply.
pub const FIELD_MANAGER: &str = "natrix-operator";

/// Cluster DNS suffix the route and gateway URLs use.
pub const CLUSTER_DOMAIN: &str = "cluster.local";

pub fn namespace(nc: &NatsCluster) -> Result<String, RenderError> {
    nc.metadata
        .namespace
        .clone()
        .ok_or_else(|| RenderError::Spec("NatsCluster has no namespace".into()))
}

pub fn statefulset(name: &str) -> String {
    name.to_string()
}
pub fn headless_service(name: &str) -> String {
    format!("{name}-headless")
}
pub fn client_service(name: &str) -> String {
    name.to_string()
}
pub fn config_map(name: &str) -> String {
    format!("{name}-config")
}
pub fn pdb(name: &str) -> String {
    name.to_string()
}

/// Stable DNS name of pod `i` through the headless Service.
pub fn pod_fqdn(name: &str, ns: &str, i: i32) -> String {
    format!(
        "{}-{i}.{}.{ns}.svc.{CLUSTER_DOMAIN}",
        statefulset(name),
        headless_service(name)
    )
}

/// The URL clients use.
pub fn client_url(name: &str, ns: &str) -> String {
    format!(
        "nats://{}.{ns}.svc.{CLUSTER_DOMAIN}:{}",
        client_service(name),
        super::config::CLIENT_PORT
    )
}

/// The labels that select this cluster's pods.
pub fn selector_labels(name: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_NAME.to_string(), "natrix".to_string()),
        (LABEL_INSTANCE.to_string(), name.to_string()),
    ])
}

/// `key=value,...` form of [`selector_labels`] for list calls and the scale subresource.
pub fn selector_string(name: &str) -> String {
    selector_labels(name)
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

/// Labels on every object the operator creates.
pub fn labels(name: &str) -> BTreeMap<String, String> {
    let mut l = selector_labels(name);
    l.insert(LABEL_MANAGED_BY.to_string(), FIELD_MANAGER.to_string());
    l.insert(LABEL_COMPONENT.to_string(), "server".to_string());
    l
}

pub fn monitor_port(nc: &NatsCluster) -> i32 {
    nc.spec
        .monitoring
        .as_ref()
        .map_or(natrix_config::options::DEFAULT_HTTP_PORT, |m| m.port)
}
