//! The JetStream asset resources: `Stream`, `Consumer`, `KeyValue` and `ObjectStore`
//! (`natrix.io/v1alpha1`).
//!
//! Their specs use the field names of NACK's `jetstream.nats.io/v1beta2` kinds, so a NACK
//! manifest moves over by changing `apiVersion` and naming the cluster (`natsClusterRef`,
//! or NACK's own `servers`). What nats-server refuses to change on an existing stream or
//! consumer is refused here already, by CEL transition rules, so `kubectl apply` says so
//! instead of a status condition minutes later. The rules follow the server's own update
//! checks (nats-server's `configUpdateCheck` for streams and `checkNewConsumerConfig` for
//! consumers; natrix-server's `broker/jetstream/src/validate.rs` keeps the same list).
//!
//! Durations are Go duration strings (`"1h"`, `"90s"`, `"500ms"`) as in NACK; the
//! controller turns them into the nanoseconds of the JetStream API.

use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::ClusterRef;

/// How the operator reaches the JetStream API. NACK's fields (`servers`, `creds`, `nkey`,
/// `tls`, `tlsFirst`, `jsDomain`, `account`) plus the Natrix ones (`natsClusterRef`,
/// `credentialsSecret`). Flattened into every spec, as NACK does.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConnectionSpec {
    /// Natrix: the NatsCluster whose client Service the operator connects to; the
    /// namespace defaults to this resource's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nats_cluster_ref: Option<ClusterRef>,
    /// NATS URLs of a server outside this operator's NatsClusters (`nats://host:4222`).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub servers: Vec<String>,
    /// Natrix: credentials from a Secret in this resource's namespace.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub credentials_secret: Option<CredentialsSecret>,
    /// NACK: path of a `.creds` file in the operator's file system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creds: Option<String>,
    /// NACK: path of an nkey seed file in the operator's file system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nkey: Option<String>,
    /// NACK: TLS files in the operator's file system.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls: Option<TlsFiles>,
    /// NACK: start TLS before the NATS handshake (`tls_first` servers).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub tls_first: Option<bool>,
    /// JetStream domain: the API is `$JS.<domain>.API`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub js_domain: Option<String>,
    /// NACK: name of a NACK `Account` resource holding connection details. Natrix has no
    /// such kind (its `Account` is a JWT tenant); use `credentialsSecret`. A resource
    /// that sets it is reported in status, not applied.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account: Option<String>,
}

/// Keys of a Secret holding the credentials; exactly one form.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("(has(self.creds) ? 1 : 0) + (has(self.nkey) ? 1 : 0) + (has(self.token) ? 1 : 0) + (has(self.user) ? 1 : 0) == 1").message("credentialsSecret names exactly one of creds, nkey, token or user (with password)"))]
#[x_kube(validation = Rule::new("has(self.user) == has(self.password)").message("credentialsSecret: user and password go together"))]
pub struct CredentialsSecret {
    /// Secret name.
    #[schemars(length(min = 1))]
    pub name: String,
    /// Key of a `.creds` file (user JWT and seed).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub creds: Option<String>,
    /// Key of an nkey seed (`SU...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub nkey: Option<String>,
    /// Key of a token.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
    /// Key of the user name.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Key of the password.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub password: Option<String>,
}

/// NACK's TLS settings: paths in the operator's file system.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct TlsFiles {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_cert: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub client_key: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub root_cas: Vec<String>,
}

/// Status of every JetStream resource (NACK's shape).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct JetStreamStatus {
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// `Ready`: `True` when the server holds the spec; otherwise the reason in words,
    /// with the server's own error text when it refused.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
}

/// `limits`, `interest` or `workqueue`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Retention {
    #[default]
    Limits,
    Interest,
    Workqueue,
}

/// `file` or `memory`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Storage {
    #[default]
    File,
    Memory,
}

/// `old` or `new`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Discard {
    #[default]
    Old,
    New,
}

/// `s2` or `none`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    S2,
    #[default]
    None,
}

/// `default` or `async`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum PersistMode {
    #[default]
    Default,
    Async,
}

/// Where replicas go.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Placement {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

/// A subject transform (`source` → `dest`).
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SubjectTransform {
    #[serde(default)]
    pub source: String,
    pub dest: String,
}

/// Republish stored messages to another subject.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct Republish {
    pub source: String,
    pub destination: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_only: Option<bool>,
}

/// A stream to mirror or source from.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct StreamSource {
    #[schemars(length(min = 1))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub opt_start_seq: Option<i64>,
    /// RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_subject: Option<String>,
    /// API prefix of the account or domain the stream lives in.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_api_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub external_deliver_prefix: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subject_transforms: Vec<SubjectTransform>,
}

/// Defaults and limits for the stream's consumers.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ConsumerLimits {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub inactive_threshold: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub max_ack_pending: Option<i64>,
}

/// A JetStream stream.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "natrix.io",
    version = "v1alpha1",
    kind = "Stream",
    plural = "streams",
    singular = "stream",
    category = "natrix",
    category = "jetstream",
    namespaced,
    status = "JetStreamStatus",
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Stream", type_ = "string", json_path = ".spec.name"),
    printcolumn(name = "Subjects", type_ = "string", json_path = ".spec.subjects"),
    printcolumn(name = "Replicas", type_ = "integer", json_path = ".spec.replicas"),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.natsClusterRef) != (has(self.servers) && size(self.servers) > 0)").message("name the server: either natsClusterRef or servers"))]
#[x_kube(validation = Rule::new("self.name == oldSelf.name").message("name is immutable: a stream can not be renamed (create a new resource)"))]
#[x_kube(validation = Rule::new("(has(self.storage) ? self.storage : 'file') == (has(oldSelf.storage) ? oldSelf.storage : 'file')").message("storage is immutable: the server can not change a stream's storage type"))]
#[x_kube(validation = Rule::new("(has(self.retention) ? self.retention : 'limits') == (has(oldSelf.retention) ? oldSelf.retention : 'limits') || ((has(self.retention) ? self.retention : 'limits') != 'workqueue' && (has(oldSelf.retention) ? oldSelf.retention : 'limits') != 'workqueue')").message("retention can not change to or from workqueue"))]
#[x_kube(validation = Rule::new("!has(self.mirror) || (has(oldSelf.mirror) && self.mirror == oldSelf.mirror)").message("mirror can not be added or changed on an existing stream"))]
#[x_kube(validation = Rule::new("!has(oldSelf.sealed) || !oldSelf.sealed || (has(self.sealed) && self.sealed)").message("a sealed stream can not be unsealed"))]
#[x_kube(validation = Rule::new("!has(oldSelf.denyDelete) || !oldSelf.denyDelete || (has(self.denyDelete) && self.denyDelete)").message("denyDelete can not be turned off once set"))]
#[x_kube(validation = Rule::new("!has(oldSelf.denyPurge) || !oldSelf.denyPurge || (has(self.denyPurge) && self.denyPurge)").message("denyPurge can not be turned off once set"))]
#[x_kube(validation = Rule::new("!has(oldSelf.allowMsgTtl) || !oldSelf.allowMsgTtl || (has(self.allowMsgTtl) && self.allowMsgTtl)").message("allowMsgTtl can not be turned off once set"))]
#[x_kube(validation = Rule::new("(has(self.allowMsgCounter) && self.allowMsgCounter) == (has(oldSelf.allowMsgCounter) && oldSelf.allowMsgCounter)").message("allowMsgCounter is immutable"))]
#[x_kube(validation = Rule::new("!has(oldSelf.allowMsgSchedules) || !oldSelf.allowMsgSchedules || (has(self.allowMsgSchedules) && self.allowMsgSchedules)").message("allowMsgSchedules can not be turned off once set"))]
#[x_kube(validation = Rule::new("(has(self.persistMode) ? self.persistMode : 'default') == (has(oldSelf.persistMode) ? oldSelf.persistMode : 'default')").message("persistMode is immutable"))]
#[x_kube(validation = Rule::new("!has(self.mirror) || !has(self.subjects) || size(self.subjects) == 0").message("a mirror has no subjects of its own"))]
pub struct StreamSpec {
    /// The stream's name on the server.
    #[schemars(length(min = 1, max = 255), regex(pattern = r"^[^.*>\s/\\]+$"))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Subjects the stream captures; empty: the stream's name (as nats-server).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub retention: Option<Retention>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub max_consumers: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub max_msgs_per_subject: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub max_msgs: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub max_bytes: Option<i64>,
    /// Go duration; unset or `0`: no age limit.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^0$|^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub max_age: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub max_msg_size: Option<i64>,
    /// `file` (default) or `memory`; immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discard: Option<Discard>,
    /// Replicas (1 to 5).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 5))]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub no_ack: Option<bool>,
    /// Go duration; unset: the server's choice (2m, or `maxAge` when shorter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub duplicate_window: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    /// Immutable once set.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<StreamSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<StreamSource>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<Compression>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub subject_transform: Option<SubjectTransform>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub republish: Option<Republish>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sealed: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_delete: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deny_purge: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_direct: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_rollup: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror_direct: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discard_per_subject: Option<bool>,
    /// First sequence of a new stream (used at creation only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub first_sequence: Option<i64>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub consumer_limits: Option<ConsumerLimits>,
    /// Per-message TTLs (`Nats-TTL`); can not be turned off.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_msg_ttl: Option<bool>,
    /// Go duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub subject_delete_marker_ttl: Option<String>,
    /// Counter stream (`Nats-Incr`); immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_msg_counter: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_atomic_publish: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub allow_msg_schedules: Option<bool>,
    /// `default` or `async`; immutable.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub persist_mode: Option<PersistMode>,
    /// Keep the stream on the server when this resource is deleted.
    #[serde(default)]
    pub prevent_delete: bool,
    /// Create the stream if missing, but never change it on the server.
    #[serde(default)]
    pub prevent_update: bool,
    #[serde(flatten)]
    pub connection: ConnectionSpec,
}

/// Which messages a new consumer starts with.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub enum DeliverPolicy {
    #[default]
    All,
    Last,
    New,
    ByStartSequence,
    ByStartTime,
    LastPerSubject,
}

/// `none`, `all` or `explicit`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum AckPolicy {
    None,
    All,
    #[default]
    Explicit,
}

/// `instant` or `original`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ReplayPolicy {
    #[default]
    Instant,
    Original,
}

/// `none`, `overflow`, `pinned_client` or `prioritized`.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum PriorityPolicy {
    None,
    Overflow,
    PinnedClient,
    Prioritized,
}

/// A durable consumer of a stream.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "natrix.io",
    version = "v1alpha1",
    kind = "Consumer",
    plural = "consumers",
    singular = "consumer",
    category = "natrix",
    category = "jetstream",
    namespaced,
    status = "JetStreamStatus",
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Stream", type_ = "string", json_path = ".spec.streamName"),
    printcolumn(name = "Consumer", type_ = "string", json_path = ".spec.durableName"),
    printcolumn(name = "Ack Policy", type_ = "string", json_path = ".spec.ackPolicy"),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.natsClusterRef) != (has(self.servers) && size(self.servers) > 0)").message("name the server: either natsClusterRef or servers"))]
#[x_kube(validation = Rule::new("self.streamName == oldSelf.streamName && self.durableName == oldSelf.durableName").message("streamName and durableName are immutable (create a new resource)"))]
#[x_kube(validation = Rule::new("(has(self.deliverPolicy) ? self.deliverPolicy : 'all') == (has(oldSelf.deliverPolicy) ? oldSelf.deliverPolicy : 'all')").message("deliverPolicy can not be updated"))]
#[x_kube(validation = Rule::new("(has(self.ackPolicy) ? self.ackPolicy : 'explicit') == (has(oldSelf.ackPolicy) ? oldSelf.ackPolicy : 'explicit')").message("ackPolicy can not be updated"))]
#[x_kube(validation = Rule::new("(has(self.replayPolicy) ? self.replayPolicy : 'instant') == (has(oldSelf.replayPolicy) ? oldSelf.replayPolicy : 'instant')").message("replayPolicy can not be updated"))]
#[x_kube(validation = Rule::new("(has(self.optStartSeq) ? self.optStartSeq : 0) == (has(oldSelf.optStartSeq) ? oldSelf.optStartSeq : 0) && (has(self.optStartTime) ? self.optStartTime : '') == (has(oldSelf.optStartTime) ? oldSelf.optStartTime : '')").message("optStartSeq and optStartTime can not be updated"))]
#[x_kube(validation = Rule::new("(has(self.memStorage) && self.memStorage) == (has(oldSelf.memStorage) && oldSelf.memStorage)").message("memStorage can not be updated"))]
#[x_kube(validation = Rule::new("(has(self.flowControl) && self.flowControl) == (has(oldSelf.flowControl) && oldSelf.flowControl) && (has(self.heartbeatInterval) ? self.heartbeatInterval : '') == (has(oldSelf.heartbeatInterval) ? oldSelf.heartbeatInterval : '')").message("flowControl and heartbeatInterval can not be updated"))]
#[x_kube(validation = Rule::new("has(self.deliverSubject) == has(oldSelf.deliverSubject)").message("a pull consumer can not become a push consumer or back (deliverSubject set or unset)"))]
#[x_kube(validation = Rule::new("(has(self.maxWaiting) ? self.maxWaiting : 0) == (has(oldSelf.maxWaiting) ? oldSelf.maxWaiting : 0)").message("maxWaiting can not be updated"))]
#[x_kube(validation = Rule::new("!has(self.filterSubject) || !has(self.filterSubjects) || size(self.filterSubjects) == 0").message("set filterSubject or filterSubjects, not both"))]
#[x_kube(validation = Rule::new("(has(self.deliverPolicy) && self.deliverPolicy == 'byStartSequence') == has(self.optStartSeq)").message("optStartSeq goes with deliverPolicy byStartSequence (and only with it)"))]
#[x_kube(validation = Rule::new("(has(self.deliverPolicy) && self.deliverPolicy == 'byStartTime') == has(self.optStartTime)").message("optStartTime goes with deliverPolicy byStartTime (and only with it)"))]
pub struct ConsumerSpec {
    /// The stream this consumer reads.
    #[schemars(length(min = 1))]
    pub stream_name: String,
    /// The consumer's name on the server.
    #[schemars(length(min = 1), regex(pattern = r"^[^.*>\s/\\]+$"))]
    pub durable_name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// `all` (default), `last`, `new`, `byStartSequence`, `byStartTime`, `lastPerSubject`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_policy: Option<DeliverPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub opt_start_seq: Option<i64>,
    /// RFC 3339 time.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub opt_start_time: Option<String>,
    /// `explicit` (default), `all` or `none`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ack_policy: Option<AckPolicy>,
    /// Go duration; unset: 30s.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub ack_wait: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub max_deliver: Option<i64>,
    /// Redelivery delays (Go durations).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub backoff: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub filter_subject: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub filter_subjects: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub replay_policy: Option<ReplayPolicy>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub rate_limit_bps: Option<i64>,
    /// Sampling of acks for latency advisories (`"100%"`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sample_freq: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1))]
    pub max_waiting: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub max_ack_pending: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub flow_control: Option<bool>,
    /// Go duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub heartbeat_interval: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub headers_only: Option<bool>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_request_batch: Option<i64>,
    /// Go duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub max_request_expires: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0))]
    pub max_request_max_bytes: Option<i64>,
    /// Set: a push consumer delivering here; unset: a pull consumer.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_subject: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deliver_group: Option<String>,
    /// Go duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub inactive_threshold: Option<String>,
    /// Replicas; unset: the stream's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 0, max = 5))]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mem_storage: Option<bool>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub priority_policy: Option<PriorityPolicy>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priority_groups: Vec<String>,
    /// Go duration.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub pinned_ttl: Option<String>,
    #[serde(default)]
    pub prevent_delete: bool,
    #[serde(default)]
    pub prevent_update: bool,
    #[serde(flatten)]
    pub connection: ConnectionSpec,
}

/// A key-value bucket (the stream `KV_<bucket>`, as every NATS client builds it).
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "natrix.io",
    version = "v1alpha1",
    kind = "KeyValue",
    plural = "keyvalues",
    singular = "keyvalue",
    shortname = "kv",
    category = "natrix",
    category = "jetstream",
    namespaced,
    status = "JetStreamStatus",
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Bucket", type_ = "string", json_path = ".spec.bucket"),
    printcolumn(name = "History", type_ = "integer", json_path = ".spec.history"),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.natsClusterRef) != (has(self.servers) && size(self.servers) > 0)").message("name the server: either natsClusterRef or servers"))]
#[x_kube(validation = Rule::new("self.bucket == oldSelf.bucket").message("bucket is immutable (create a new resource)"))]
#[x_kube(validation = Rule::new("(has(self.storage) ? self.storage : 'file') == (has(oldSelf.storage) ? oldSelf.storage : 'file')").message("storage is immutable: the server can not change a stream's storage type"))]
#[x_kube(validation = Rule::new("!has(self.mirror) || (has(oldSelf.mirror) && self.mirror == oldSelf.mirror)").message("mirror can not be added or changed on an existing bucket"))]
pub struct KeyValueSpec {
    /// Bucket name (`[A-Za-z0-9_-]+`).
    #[schemars(length(min = 1), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub bucket: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub max_value_size: Option<i64>,
    /// Values kept per key (1 to 64).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 64))]
    pub history: Option<i64>,
    /// Go duration; unset: keys never expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub max_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 5))]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub republish: Option<Republish>,
    /// Another bucket (its name, `KV_` added when missing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<StreamSource>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<StreamSource>,
    /// S2 compression of the stored values.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<bool>,
    /// Go duration: keep delete markers of expired keys this long.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub limit_marker_ttl: Option<String>,
    #[serde(default)]
    pub prevent_delete: bool,
    #[serde(default)]
    pub prevent_update: bool,
    #[serde(flatten)]
    pub connection: ConnectionSpec,
}

/// An object store bucket (the stream `OBJ_<bucket>`).
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "natrix.io",
    version = "v1alpha1",
    kind = "ObjectStore",
    plural = "objectstores",
    singular = "objectstore",
    category = "natrix",
    category = "jetstream",
    namespaced,
    status = "JetStreamStatus",
    printcolumn(
        name = "State",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Bucket", type_ = "string", json_path = ".spec.bucket"),
    printcolumn(
        name = "Message",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].message",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[x_kube(validation = Rule::new("has(self.natsClusterRef) != (has(self.servers) && size(self.servers) > 0)").message("name the server: either natsClusterRef or servers"))]
#[x_kube(validation = Rule::new("self.bucket == oldSelf.bucket").message("bucket is immutable (create a new resource)"))]
#[x_kube(validation = Rule::new("(has(self.storage) ? self.storage : 'file') == (has(oldSelf.storage) ? oldSelf.storage : 'file')").message("storage is immutable: the server can not change a stream's storage type"))]
pub struct ObjectStoreSpec {
    /// Bucket name (`[A-Za-z0-9_-]+`).
    #[schemars(length(min = 1), regex(pattern = r"^[A-Za-z0-9_-]+$"))]
    pub bucket: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub description: Option<String>,
    /// Go duration; unset: objects never expire.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(regex(pattern = r"^([0-9]+(\.[0-9]+)?(ns|us|µs|ms|s|m|h))+$"))]
    pub ttl: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub max_bytes: Option<i64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub storage: Option<Storage>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = 1, max = 5))]
    pub replicas: Option<i32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub compression: Option<bool>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(default)]
    pub prevent_delete: bool,
    #[serde(default)]
    pub prevent_update: bool,
    #[serde(flatten)]
    pub connection: ConnectionSpec,
}
