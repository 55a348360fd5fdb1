//! The `Account` and `User` custom resources (`natrix.io/v1alpha1`): NATS accounts and
//! users in operator mode, which the operator turns into signed JWTs.
//!
//! A `User` is its own kind that names its `Account`, rather than a list inside the
//! Account, because:
//! - RBAC: the team that owns an application can create its User (and so receive its
//!   `.creds` Secret) without write access to the Account, whose limits and exports are
//!   the platform team's;
//! - lifecycle: each User has its own finalizer (deleting it revokes exactly that user),
//!   its own status (its public key, which signing key issued it), its own Secret, and its
//!   own Events; a list inside the Account would turn every user change into an Account
//!   change and make "which user failed" a string in one shared status;
//! - it is nsc's model (`nsc add user -a ACCOUNT`), so the words match.
//!
//! Keys never appear in these resources: seeds live in Secrets the operator creates (see
//! `crate::accounts`), and the status shows only public keys and the (public) account JWT.

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::{CustomResource, KubeSchema};
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use super::{ClusterRef, PermissionsSpec};

/// A NATS account in operator mode: an isolated subject space with limits, exports and
/// imports, signed by the operator of the NatsCluster it names and pushed to its servers.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "natrix.io",
    version = "v1alpha1",
    kind = "Account",
    plural = "accounts",
    singular = "account",
    shortname = "nacc",
    category = "natrix",
    namespaced,
    status = "AccountStatus",
    printcolumn(
        name = "Cluster",
        type_ = "string",
        json_path = ".spec.natsClusterRef.name"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Public Key", type_ = "string", json_path = ".status.publicKey"),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct AccountSpec {
    /// The NatsCluster whose servers trust this account; the namespace defaults to the
    /// Account's. That cluster switches to operator mode while it has Accounts.
    pub nats_cluster_ref: ClusterRef,
    /// Connection, subscription and data limits (unset: unlimited).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub limits: Option<AccountLimitsSpec>,
    /// JetStream for this account's users; unset: JetStream disabled for the account.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jetstream: Option<AccountJetStreamSpec>,
    /// Subjects other accounts may import.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub exports: Vec<ExportSpec>,
    /// Subjects imported from other Accounts of the same NatsCluster.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 1000))]
    pub imports: Vec<ImportSpec>,
    /// Named signing keys. The first issues the Users; the others stay trusted. To rotate
    /// without downtime, put a new name first: Users are re-issued with it, and a key
    /// removed from this list stays in the account JWT until no User was issued by it.
    /// Empty: Users are issued by the account's own identity key.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 16))]
    #[x_kube(validation = Rule::new("self.all(k, self.exists_one(j, j.name == k.name))").message("signing key names must be unique"))]
    pub signing_keys: Vec<SigningKeySpec>,
}

/// Account limits, as `nsc edit account` sets them. `-1` (or unset) is unlimited.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountLimitsSpec {
    /// Client connections at once (`conn`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub connections: Option<i64>,
    /// Leaf node connections at once (`leaf`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub leaf_node_connections: Option<i64>,
    /// Subscriptions over all connections (`subs`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub subscriptions: Option<i64>,
    /// Largest message payload in bytes (`payload`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub payload: Option<i64>,
    /// Bytes a connection may send (`data`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub data: Option<i64>,
    /// Number of imports (`imports`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub imports: Option<i64>,
    /// Number of exports (`exports`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub exports: Option<i64>,
}

/// JetStream limits of the account. Storage sizes are quantities (`1Gi`); unset sizes are
/// unlimited, counts likewise.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, KubeSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountJetStreamSpec {
    /// Memory storage over all streams (`mem_storage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("memoryStorage must be a positive quantity such as 1Gi"))]
    pub memory_storage: Option<String>,
    /// File storage over all streams (`disk_storage`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[x_kube(validation = Rule::new("isQuantity(self) && quantity(self).isGreaterThan(quantity('0'))").message("diskStorage must be a positive quantity such as 10Gi"))]
    pub disk_storage: Option<String>,
    /// Number of streams (`streams`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub streams: Option<i64>,
    /// Number of consumers (`consumer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(range(min = -1))]
    pub consumers: Option<i64>,
}

/// Whether an export or import carries messages (`stream`) or requests (`service`).
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "lowercase")]
pub enum ExportKind {
    #[default]
    Stream,
    Service,
}

/// A subject this account offers to others.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ExportSpec {
    /// Optional name, shown by `nsc describe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The exported subject (wildcards allowed).
    #[schemars(length(min = 1))]
    pub subject: String,
    /// `stream` (default) or `service`.
    #[serde(default, rename = "type")]
    pub kind: ExportKind,
}

/// The Account an import comes from; the namespace defaults to the importer's.
#[derive(
    Serialize, Deserialize, Clone, Debug, PartialEq, Eq, PartialOrd, Ord, Default, JsonSchema,
)]
#[serde(rename_all = "camelCase")]
pub struct AccountRef {
    #[schemars(length(min = 1))]
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub namespace: Option<String>,
}

/// A subject taken from another Account's exports.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ImportSpec {
    /// Optional name, shown by `nsc describe`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The exporting Account.
    pub account_ref: AccountRef,
    /// The subject as the exporter exports it (or a narrower one).
    #[schemars(length(min = 1))]
    pub subject: String,
    /// `stream` (default) or `service`; must match the export.
    #[serde(default, rename = "type")]
    pub kind: ExportKind,
    /// Where the subject appears in this account (unset: the same subject).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub local_subject: Option<String>,
}

/// A named signing key; its seed is generated once and kept in the account's key Secret.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeySpec {
    #[schemars(
        length(min = 1, max = 63),
        regex(pattern = r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
    )]
    pub name: String,
}

/// Observed state of an Account, written by the operator only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct AccountStatus {
    /// `Ready` (the JWT is signed and the servers accepted it).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The account's public key (`A...`): its name on the servers.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// Signing keys in the JWT, the active one first; retired keys still in use by Users
    /// follow.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub signing_keys: Vec<SigningKeyStatus>,
    /// The signed account JWT (public: it holds no secret), as pushed to the servers and
    /// preloaded in their config.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jwt: Option<String>,
}

/// One signing key in the account JWT.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct SigningKeyStatus {
    pub name: String,
    pub public_key: String,
    /// Removed from the spec, kept until no User is issued by it.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retiring: bool,
}

/// A NATS user of an Account: the operator issues its JWT and writes a `.creds` Secret
/// that applications mount. Deleting the User revokes it on the servers.
#[allow(clippy::duplicated_attributes)]
#[derive(CustomResource, KubeSchema, Serialize, Deserialize, Clone, Debug, PartialEq, Default)]
#[kube(
    group = "natrix.io",
    version = "v1alpha1",
    kind = "User",
    plural = "users",
    singular = "user",
    shortname = "nu",
    category = "natrix",
    namespaced,
    status = "UserStatus",
    printcolumn(
        name = "Account",
        type_ = "string",
        json_path = ".spec.accountRef.name"
    ),
    printcolumn(
        name = "Status",
        type_ = "string",
        json_path = ".status.conditions[?(@.type==\"Ready\")].reason"
    ),
    printcolumn(name = "Secret", type_ = "string", json_path = ".status.secretName"),
    printcolumn(
        name = "Public Key",
        type_ = "string",
        json_path = ".status.publicKey",
        priority = 1
    ),
    printcolumn(
        name = "Expires",
        type_ = "date",
        json_path = ".spec.expires",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct NatsUserSpec {
    /// The Account, in the User's namespace.
    pub account_ref: UserAccountRef,
    /// Publish/subscribe allow and deny lists, `allowResponses`. Unset: everything in the
    /// account is allowed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub permissions: Option<PermissionsSpec>,
    /// When the credentials stop working (RFC 3339, e.g. `2026-12-31T00:00:00Z`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(extend("format" = "date-time"))]
    pub expires: Option<String>,
    /// Name of the Secret that receives `user.creds` (default `<user>-creds`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(length(min = 1, max = 253))]
    pub secret_name: Option<String>,
}

/// An Account in the User's own namespace.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserAccountRef {
    #[schemars(length(min = 1))]
    pub name: String,
}

/// Observed state of a User, written by the operator only.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Default, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct UserStatus {
    /// `Ready` (credentials issued and written).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub conditions: Vec<Condition>,
    /// The `metadata.generation` this status describes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub observed_generation: Option<i64>,
    /// The user's public key (`U...`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub public_key: Option<String>,
    /// The account's public key.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub account_public_key: Option<String>,
    /// The key that signed the user JWT (a signing key of the account, or the account).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signing_key: Option<String>,
    /// The Secret holding `user.creds`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub secret_name: Option<String>,
}

impl User {
    /// The Secret that receives the `.creds` file.
    pub fn secret_name(&self) -> String {
        self.spec
            .secret_name
            .clone()
            .unwrap_or_else(|| format!("{}-creds", self.metadata.name.clone().unwrap_or_default()))
    }
}

impl Account {
    /// The NatsCluster this account belongs to, as `(namespace, name)`.
    pub fn cluster_key(&self) -> (String, String) {
        let own = self.metadata.namespace.clone().unwrap_or_default();
        (
            self.spec.nats_cluster_ref.namespace.clone().unwrap_or(own),
            self.spec.nats_cluster_ref.name.clone(),
        )
    }
}
