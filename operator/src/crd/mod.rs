//! The `NatsCluster` custom resource (`natrix.io/v1alpha1`): its spec, status and schema;
//! the JetStream asset kinds (`Stream`, `Consumer`, `KeyValue`, `ObjectStore`) are in
//! [`jetstream`].
//!
//! This module owns the API users write. Everything the API server can check on its own is
//! in the schema (types, ranges, patterns, CEL rules in `x-kubernetes-validations`), so a bad
//! spec is refused at `kubectl apply` with a message instead of surfacing later as a failed
//! StatefulSet patch. What needs the broker's config parser (the `merge` block, the combined
//! config) is checked by the operator before anything is applied (see [`crate::render`]).
//!
//! Field names follow the NATS Helm chart and nats-server where a user would look for them
//! (`maxPayload` → `max_payload`, `jetstream.fileStorage`, `lameDuckDuration`).

pub mod accounts;
pub mod jetstream;

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{ResourceRequirements, Toleration};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, CustomResourceExt, KubeSchema};
use schemars::{JsonSchema, Schema, SchemaGenerator, json_schema};
use serde::{Deserialize, Serialize};

/// API group of every Natrix resource.
pub const GROUP: &str = "natrix.io";
/// The served and stored version.
pub const VERSION: &str = "v1alpha1";

/// Largest cluster the operator renders routes for. A full mesh of routes grows with the
/// square of the size; nats-server deployments beyond this size use gateways instead.
pub const MAX_REPLICAS: i32 = 64;

/// A natrix-server cluster: a StatefulSet of brokers joined by routes, with its config,
/// Services, PodDisruptionBudget and (optionally) gateways to other clusters.
// Each printer column repeats `type_ = ...` inside its own `printcolumn(...)`, which clippy
// mistakes for a duplicated attribute.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "natrix.io",
    version = "v1alpha1",
    kind = "NatsCluster",
    plural = "natsclusters",
    singular = "natscluster",
    shortname = "nc",
    category = "natrix",
    namespaced,
    status = "NatsClusterStatus",
    scale(
        spec_replicas_path = ".spec.replicas",
        status_replicas_path = ".status.replicas",
        label_selector_path = ".status.selector"
    ),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(name = "Ready", type_ = "integer", json_path = ".status.readyReplicas"),
    printcolumn(name = "Version", type_ = "string", json_path = ".spec.version"),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(
        name = "Meta Leader",
        type_ = "string",
        json_path = ".status.jetstream.metaLeader"
    ),
    printcolumn(
        name = "URL",
        type_ = "string",
        json_path = ".status.clientURL",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("!has(self.mqtt) || (has(self.jetstream) && self.jetstream.enabled)").message("mqtt needs jetstream.enabled: true (MQTT sessions are kept in JetStream)"))]
#[x_kube(validation = Rule::new("!has(self.jetstream) || !self.jetstream.enabled || has(self.jetstream.memoryStorage) || has(self.jetstream.fileStorage)").message("jetstream.enabled needs memoryStorage or fileStorage (or both)"))]
#[x_kube(validation = Rule::new("!has(oldSelf.jetstream) || !has(oldSelf.jetstream.fileStorage) || (has(self.jetstream) && has(self.jetstream.fileStorage))").message("jetstream.fileStorage cannot be removed once set: the data volumes hold the streams (delete the NatsCluster to drop them)"))]
pub struct NatsClusterSpec {
    /// Number of servers. Scaling changes only the routes in the config, which pods reload.
    #[serde(default = "default_replicas")]
    #[schemars(range(min = 1, max = 64))]
    pub replicas: i32,

    /// Container image of natrix-server, without tag when `version` is set.
    #[serde(default = "default_image")]
    #[schemars(length(min = 1))]
    pub image: String,

    /// Image tag. Empty: the tag is part of `image`.
    #[serde(default = "default_version", skip_serializing_if = "String::is_empty")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"))]
    pub version: String,

    /// `Always`, `IfNotPresent` or `Never`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image_pull_policy: Option<PullPolicy>,

    /// Secrets to pull the image with.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub image_pull_secrets: Vec<String>,

    /// CPU and memory of the server container. Requests equal to limits avoid OOM kills
    /// under load (a lesson from the NATS Helm chart's users).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub resources: Option<ResourceRequirements>,

    /// Server options (`nats.conf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ServerConfig>,

    /// JetStream persistence.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<JetStreamSpec>,

    /// TLS for each listener, from Secrets (for example those cert-manager writes).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsSpec>,

    /// Gateways to other clusters (a super-cluster).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateways: Option<GatewaySpec>,

    /// Leaf node listener and remotes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leafnodes: Option<LeafNodeSpec>,

    /// WebSocket listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<WebsocketSpec>,

    /// MQTT listener (needs JetStream).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<MqttSpec>,

    /// Monitoring endpoint (`/varz`, `/healthz`, `/metrics`); the operator and the probes use it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub monitoring: Option<MonitoringSpec>,

    /// OpenTelemetry trace export of every server (`telemetry { otlp {} }` in
    /// `nats.conf`). Changes reach running servers by live reload.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tracing: Option<TracingSpec>,

    /// Additions to the generated pod template.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pod_template: Option<PodTemplateOverrides>,

    /// Spread the pods over topology domains (zones, nodes); the label selector is added.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub topology_spread: Vec<TopologySpread>,

    /// PodDisruptionBudget (on by default, `maxUnavailable: 1`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pdb: Option<PdbSpec>,

    /// How long a stopping server spends in lame-duck mode, handing its clients over to the
    /// other servers, as a Go duration (`30s`, `2m`). The pod's termination grace period is
    /// derived from it so the kubelet never kills a server mid lame duck.
    #[serde(
        default = "default_lame_duck",
        skip_serializing_if = "String::is_empty"
    )]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    #[schemars(length(max = 32))]
    #[x_kube(validation = Rule::new("duration(self) >= duration('30s')").message("lameDuckDuration must be at least 30s (natrix-server's minimum, as nats-server's)"))]
    pub lame_duck_duration: String,

    /// What happens to the JetStream data volumes when the NatsCluster is deleted.
    #[serde(default)]
    pub deletion_policy: DeletionPolicy,
}

fn default_replicas() -> i32 {
    3
}
fn default_image() -> String {
    "natrix/natrix-server".to_string()
}
fn default_version() -> String {
    "0.1.0".to_string()
}
fn default_lame_duck() -> String {
    "30s".to_string()
}

/// Kubernetes image pull policy.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum PullPolicy {
    Always,
    IfNotPresent,
    Never,
}

impl PullPolicy {
    pub fn as_str(self) -> &'static str {
        match self {
            PullPolicy::Always => "Always",
            PullPolicy::IfNotPresent => "IfNotPresent",
            PullPolicy::Never => "Never",
        }
    }
}

/// Data volume fate on deletion.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema, Default)]
pub enum DeletionPolicy {
    /// Delete the PersistentVolumeClaims with the cluster.
    #[default]
    Delete,
    /// Keep the PersistentVolumeClaims (a new NatsCluster of the same name reuses them).
    Orphan,
}

/// Typed nats-server options; anything else goes into `merge`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServerConfig {
    /// `debug`: debug logging.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub debug: Option<bool>,
    /// `trace`: protocol tracing (very verbose).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub trace: Option<bool>,
    /// `logtime`: timestamps in log lines.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub logtime: Option<bool>,
    /// `max_payload` in bytes (nats-server warns above 8 MiB).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 67_108_864))]
    pub max_payload: Option<i64>,
    /// `max_connections`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_connections: Option<i64>,
    /// `max_subscriptions` per connection (0 = unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_subscriptions: Option<i64>,
    /// `max_pending` bytes buffered per connection.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_pending: Option<i64>,
    /// `max_control_line` in bytes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 16_777_216))]
    pub max_control_line: Option<i64>,
    /// `ping_interval` as a Go duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub ping_interval: Option<String>,
    /// `ping_max`: unanswered pings before a client is dropped.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub ping_max: Option<i64>,
    /// `write_deadline` as a Go duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub write_deadline: Option<String>,
    /// Client users (`authorization { users = [...] }`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub authorization: Option<Authorization>,
    /// Raw nats-server options merged over the generated config (maps merge key by key,
    /// other values replace, `null` removes a key). Checked by the broker's own parser
    /// before anything is applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "raw_object")]
    pub merge: Option<serde_json::Map<String, serde_json::Value>>,
}

/// Client authorization by users with bcrypt-hashed passwords or nkeys.
///
/// Only hashes and public keys are accepted: the config lives in a ConfigMap, which many
/// more people can read than Secrets.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Authorization {
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub users: Vec<UserSpec>,
    /// `no_auth_user`: the user a client without credentials is treated as.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_auth_user: Option<String>,
}

/// One user: `user` + bcrypt `password`, or an `nkey`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.nkey) != (has(self.user) && has(self.password))").message("a user has either an nkey, or both user and password"))]
pub struct UserSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub user: Option<String>,
    /// A bcrypt hash (`$2a$...`, e.g. from `nats server passwd`); plain passwords are refused.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(max = 128))]
    #[x_kube(validation = Rule::new("self.matches('^\\\\$2[aby]?\\\\$[0-9]{2}\\\\$.{53}$')").message("password must be a bcrypt hash ($2a$...): the config is stored in a ConfigMap"))]
    pub password: Option<String>,
    /// User nkey (public key starting with `U`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^U[A-Z2-7]{55}$"))]
    pub nkey: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<PermissionsSpec>,
}

/// Publish/subscribe permissions of a user.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PermissionsSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<SubjectPermissionSpec>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subscribe: Option<SubjectPermissionSpec>,
    /// `allow_responses`: may publish to reply subjects of received requests.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_responses: Option<bool>,
}

/// Allow/deny subject lists.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubjectPermissionSpec {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow: Option<Vec<String>>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny: Option<Vec<String>>,
}

/// JetStream: memory and file storage limits.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JetStreamSpec {
    #[serde(default)]
    pub enabled: bool,
    /// Memory store limit (`max_memory_store`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub memory_storage: Option<MemoryStorage>,
    /// File store on a PersistentVolumeClaim per pod; `max_file_store` is the volume size.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub file_storage: Option<FileStorage>,
    /// JetStream domain.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub domain: Option<String>,
}

/// In-memory stream storage.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct MemoryStorage {
    /// A Kubernetes quantity (`1Gi`).
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("size must be a positive quantity such as 1Gi"))]
    pub size: String,
}

/// File stream storage on a data volume per pod.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.storageClassName) == has(oldSelf.storageClassName) && (!has(self.storageClassName) || self.storageClassName == oldSelf.storageClassName)").message("storageClassName is immutable: existing volumes cannot move to another storage class"))]
#[x_kube(validation = Rule::new("quantity(self.size).compareTo(quantity(oldSelf.size)) >= 0").message("size cannot decrease: volumes only grow (and only if the storage class allows expansion)"))]
pub struct FileStorage {
    /// Volume size per pod, a Kubernetes quantity (`10Gi`).
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("size must be a positive quantity such as 10Gi"))]
    pub size: String,
    /// StorageClass of the volumes; the cluster default when unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage_class_name: Option<String>,
}

/// TLS per listener.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsSpec {
    /// Client connections (port 4222).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client: Option<TlsListener>,
    /// Routes between the servers of this cluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub routes: Option<TlsListener>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub gateway: Option<TlsListener>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub leafnodes: Option<TlsListener>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub websocket: Option<TlsListener>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mqtt: Option<TlsListener>,
}

/// A certificate from a Secret of type `kubernetes.io/tls`, named directly or through the
/// cert-manager Certificate that writes it. The Secret is mounted as a directory, so a
/// renewed certificate reaches the pod.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.secretName) != has(self.certificate)").message("a TLS listener names either a secretName or a cert-manager certificate"))]
pub struct TlsListener {
    /// Secret name in the cluster's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub secret_name: Option<String>,
    /// Name of a cert-manager `Certificate` in the cluster's namespace; its
    /// `spec.secretName` is mounted. Until it exists nothing is applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub certificate: Option<String>,
    /// Key of the certificate in the Secret.
    #[serde(default = "default_cert_key")]
    pub cert: String,
    /// Key of the private key in the Secret.
    #[serde(default = "default_key_key")]
    pub key: String,
    /// Key of the CA bundle in the Secret; unset: no `ca_file`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca: Option<String>,
    /// Require and verify client certificates.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub verify: Option<bool>,
}

fn default_cert_key() -> String {
    "tls.crt".to_string()
}
fn default_key_key() -> String {
    "tls.key".to_string()
}

/// Gateways: this cluster's gateway listener and the clusters it connects to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct GatewaySpec {
    /// Gateway port.
    #[serde(default = "default_gateway_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Remote clusters. A NatsCluster named here gets this cluster added to its own gateway
    /// list by the operator, so a link needs naming on one side only.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remotes: Vec<GatewayRemote>,
    /// `reject_unknown_cluster`: refuse gateways not listed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reject_unknown: Option<bool>,
}

fn default_gateway_port() -> i32 {
    7222
}

/// A remote cluster: another NatsCluster, or external gateway URLs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.natsCluster) != has(self.urls)").message("a gateway remote names either a natsCluster or urls"))]
#[x_kube(validation = Rule::new("!has(self.urls) || has(self.name)").message("a gateway remote with urls needs the remote cluster's name"))]
pub struct GatewayRemote {
    /// Another NatsCluster.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_cluster: Option<ClusterRef>,
    /// Name of an external cluster (its gateway name).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Gateway URLs of an external cluster (`nats://host:7222`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1))]
    pub urls: Option<Vec<String>>,
}

/// A NatsCluster by name; the namespace defaults to the referring cluster's.
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Default, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct ClusterRef {
    #[schemars(length(min = 1))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// Leaf nodes: a listener for leaf connections and remotes to connect to.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeafNodeSpec {
    /// Listen for leaf node connections on this port; unset: no listener.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: Option<i32>,
    /// Hubs this cluster connects to as a leaf.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub remotes: Vec<LeafRemote>,
}

/// One leaf node remote.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct LeafRemote {
    /// Hub URLs (`nats-leaf://hub:7422`).
    #[schemars(length(min = 1))]
    pub urls: Vec<String>,
    /// Local account bound to the remote.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
    /// A Secret holding a NATS credentials file; mounted into the pod.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials: Option<SecretKeyRef>,
}

/// A key of a Secret in the cluster's namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SecretKeyRef {
    #[schemars(length(min = 1))]
    pub name: String,
    #[schemars(length(min = 1))]
    pub key: String,
}

/// WebSocket listener.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct WebsocketSpec {
    #[serde(default = "default_ws_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// `compression`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<bool>,
    /// `allowed_origins`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub allowed_origins: Vec<String>,
}

fn default_ws_port() -> i32 {
    8080
}

/// MQTT listener.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MqttSpec {
    #[serde(default = "default_mqtt_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

fn default_mqtt_port() -> i32 {
    1883
}

/// Monitoring listener and Prometheus scraping.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct MonitoringSpec {
    /// HTTP monitoring port (`http_port`). Always on: probes and the operator need it.
    #[serde(default = "default_monitor_port")]
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
    /// Create a Prometheus-operator `ServiceMonitor` for `/metrics` (needs its CRD).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_monitor: Option<ServiceMonitorSpec>,
}

/// ServiceMonitor options.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceMonitorSpec {
    #[serde(default)]
    pub enabled: bool,
    /// Scrape interval (`30s`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub interval: Option<String>,
    /// Extra labels, for a Prometheus that selects ServiceMonitors by label.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

fn default_monitor_port() -> i32 {
    8222
}

/// Additions to the generated pod template.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodTemplateOverrides {
    /// Extra pod labels (the operator's own labels win).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// Extra pod annotations.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub annotations: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub node_selector: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tolerations: Vec<Toleration>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_class_name: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub service_account_name: Option<String>,
    /// Extra environment variables of the server container.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub env: BTreeMap<String, String>,
    /// Anything else, as a JSON merge patch (RFC 7396) over the generated pod `spec`;
    /// `containers` are merged by name. The result must still be a valid PodSpec.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "raw_object")]
    pub spec: Option<serde_json::Map<String, serde_json::Value>>,
}

/// One topology spread constraint over the cluster's pods.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TopologySpread {
    /// Node label, e.g. `topology.kubernetes.io/zone` or `kubernetes.io/hostname`.
    #[schemars(length(min = 1))]
    pub topology_key: String,
    #[serde(default = "default_max_skew")]
    #[schemars(range(min = 1))]
    pub max_skew: i32,
    /// `DoNotSchedule` (default) or `ScheduleAnyway`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub when_unsatisfiable: Option<WhenUnsatisfiable>,
}

fn default_max_skew() -> i32 {
    1
}

/// What the scheduler does when spreading is impossible.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
pub enum WhenUnsatisfiable {
    DoNotSchedule,
    ScheduleAnyway,
}

/// PodDisruptionBudget options.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PdbSpec {
    #[serde(default = "default_true")]
    pub enabled: bool,
    /// At most this many servers voluntarily down at once.
    #[serde(default = "default_max_unavailable")]
    #[schemars(range(min = 1))]
    pub max_unavailable: i32,
}

fn default_true() -> bool {
    true
}
fn default_max_unavailable() -> i32 {
    1
}

/// Where the servers send their traces and how many untraced messages they sample.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TracingSpec {
    /// OTLP/gRPC endpoint (`http://otel-collector.observability:4317`).
    #[schemars(regex(pattern = r"^https?://"))]
    #[schemars(length(max = 512))]
    pub endpoint: String,
    /// Service name of the servers' spans (natrix-server's default: `natrix-server`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 128))]
    pub service_name: Option<String>,
    /// Share of messages without a sampled `traceparent` that get a span (0 to 1).
    /// Messages that carry a sampled `traceparent` are always traced.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0.0, max = 1.0))]
    pub sample_ratio: Option<f64>,
}

/// Observed state, written by the operator only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct NatsClusterStatus {
    /// `Ready`, `Progressing`, `Degraded`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// Pods of the StatefulSet.
    #[serde(default)]
    pub replicas: i32,
    /// Pods that pass readiness.
    #[serde(default)]
    pub ready_replicas: i32,
    /// Label selector of the pods (for the scale subresource and HPA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub selector: Option<String>,
    /// Where clients connect (`nats://<name>.<ns>.svc.cluster.local:4222`).
    #[serde(default, rename = "clientURL", skip_serializing_if = "Option::is_none")]
    pub client_url: Option<String>,
    /// Digest of the rendered `nats.conf` (`fnv1a64:...`), as natrix-server reports it on
    /// `/varz` under `config_digest`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
    /// What each pod runs.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub pod_configs: Vec<PodConfig>,
    /// JetStream as the servers report it (clusters with JetStream only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<JetStreamStatus>,
    /// A JetStream scale-down to this many servers was let through (the leaving servers
    /// left the meta group and their streams moved); set while the StatefulSet shrinks.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scale_down_released: Option<i32>,
}

/// JetStream across the cluster, from each pod's `/healthz` and `/jsz`.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JetStreamStatus {
    /// Every pod's JetStream is current: a meta leader is known and every stream replica
    /// placed on it has caught up.
    pub ready: bool,
    /// The meta group's leader, as most pods report it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_leader: Option<String>,
    /// Servers in the meta group.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub meta_cluster_size: Option<i64>,
    /// Pods whose JetStream is current.
    pub current_pods: i32,
}

/// The config one pod reports it runs.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PodConfig {
    pub pod: String,
    /// Digest from the pod's `/varz`; unset when the pod could not be asked.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config_digest: Option<String>,
    /// Whether the pod runs the current config.
    pub applied: bool,
    /// JetStream on this pod (clusters with JetStream only): `Current`, or what its
    /// `/healthz` says is still catching up.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<String>,
    /// Stream replicas on this pod, from its `/jsz` (clusters with JetStream only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub streams: Option<u64>,
}

/// Schema for free-form objects: kept as given by the API server.
fn raw_object(_: &mut SchemaGenerator) -> Schema {
    json_schema!({
        "type": "object",
        "x-kubernetes-preserve-unknown-fields": true
    })
}

pub use jetstream::{Consumer, KeyValue, ObjectStore, Stream};

/// The NatsCluster CRD as YAML, exactly as `crds/natsclusters.natrix.io.yaml` holds it.
pub fn crd_yaml() -> Result<String, serde_norway::Error> {
    to_yaml(&NatsCluster::crd())
}

fn to_yaml(crd: &CustomResourceDefinition) -> Result<String, serde_norway::Error> {
    let mut out = String::from("# Generated by `natrix-operator crdgen`; do not edit.\n");
    out.push_str(&serde_norway::to_string(crd)?);
    Ok(out)
}

/// Every CRD the operator serves, in the order they are installed.
pub fn crds() -> Vec<CustomResourceDefinition> {
    vec![
        NatsCluster::crd(),
        Stream::crd(),
        Consumer::crd(),
        KeyValue::crd(),
        ObjectStore::crd(),
        accounts::Account::crd(),
        accounts::User::crd(),
    ]
}

/// Every CRD as `(file name, YAML)`, as `natrix-operator crdgen --dir` writes them into
/// `crds/` (`<plural>.natrix.io.yaml`).
pub fn crd_files() -> Result<Vec<(String, String)>, serde_norway::Error> {
    crds()
        .iter()
        .map(|crd| {
            let name = crd.metadata.name.clone().unwrap_or_default();
            Ok((format!("{name}.yaml"), to_yaml(crd)?))
        })
        .collect()
}

impl NatsCluster {
    /// Name of the StatefulSet, ConfigMap and PDB (the cluster's own name, so DNS names
    /// stay short and predictable).
    pub fn base_name(&self) -> String {
        self.metadata.name.clone().unwrap_or_default()
    }
}
