//! Account claims: an account's imports, exports, limits, signing keys and revocations, signed
//! by the operator (or one of its signing keys). Go: `account_claims.go`.

use crate::claims::{ClaimSet, GenericFields, Payload, generic_accessors};
use crate::exports::Export;
use crate::imports::Import;
use crate::json::is_default;
use crate::keys::{KeyKind, is_kind};
use crate::revocation::RevocationList;
use crate::signing_keys::{SigningKeys, UserScope, is_empty_keys};
use crate::types::{Info, NO_LIMIT, NatsLimits, Permissions};
use crate::{ActivationClaims, ClaimType, JwtError, UserClaims};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// `allowed_accounts` value meaning any account.
pub const ANY_ACCOUNT: &str = "*";
pub const CLUSTER_TRAFFIC_SYSTEM: &str = "system";
pub const CLUSTER_TRAFFIC_OWNER: &str = "owner";

/// Limits on the account as a whole; `-1` is unlimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountLimits {
    #[serde(skip_serializing_if = "is_default")]
    pub imports: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub exports: i64,
    #[serde(rename = "wildcards", skip_serializing_if = "is_default")]
    pub wildcard_exports: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub disallow_bearer: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub conn: i64,
    #[serde(rename = "leaf", skip_serializing_if = "is_default")]
    pub leaf_node_conn: i64,
}

impl AccountLimits {
    pub const UNLIMITED: AccountLimits = AccountLimits {
        imports: NO_LIMIT,
        exports: NO_LIMIT,
        wildcard_exports: true,
        disallow_bearer: false,
        conn: NO_LIMIT,
        leaf_node_conn: NO_LIMIT,
    };
}

/// JetStream limits (one tier, or the whole account when untiered); 0 storage = disabled.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct JetStreamLimits {
    #[serde(rename = "mem_storage", skip_serializing_if = "is_default")]
    pub memory_storage: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub disk_storage: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub streams: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub consumer: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub max_ack_pending: i64,
    #[serde(rename = "mem_max_stream_bytes", skip_serializing_if = "is_default")]
    pub memory_max_stream_bytes: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub disk_max_stream_bytes: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub max_bytes_required: bool,
}

/// The operator-set limits of an account; Go embeds the three limit structs, so their fields
/// share one JSON object with `tiered_limits` (keyed `R1`, `R3`, ...).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct OperatorLimits {
    #[serde(flatten)]
    pub nats: NatsLimits,
    #[serde(flatten)]
    pub account: AccountLimits,
    #[serde(flatten)]
    pub jetstream: JetStreamLimits,
    #[serde(rename = "tiered_limits", skip_serializing_if = "is_default")]
    pub jetstream_tiered: BTreeMap<String, JetStreamLimits>,
}

impl OperatorLimits {
    pub fn is_empty(&self) -> bool {
        *self == OperatorLimits::default()
    }

    /// Whether any tier (or the untiered limits) grants memory or disk storage.
    pub fn is_jetstream_enabled(&self) -> bool {
        let on = |l: &JetStreamLimits| l.memory_storage != 0 || l.disk_storage != 0;
        if self.jetstream_tiered.is_empty() {
            on(&self.jetstream)
        } else {
            self.jetstream_tiered.values().any(on)
        }
    }
}

/// One destination of a subject mapping; weight 0 means 100.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct WeightedMapping {
    pub subject: String,
    #[serde(skip_serializing_if = "is_default")]
    pub weight: u8,
    #[serde(skip_serializing_if = "is_default")]
    pub cluster: String,
}

impl WeightedMapping {
    pub fn weight(&self) -> u8 {
        if self.weight == 0 { 100 } else { self.weight }
    }
}

/// Auth callout: users whose connections are authorized by the service, the accounts it may
/// place users in, and the curve key to encrypt requests to it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExternalAuthorization {
    #[serde(skip_serializing_if = "is_default")]
    pub auth_users: Vec<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub allowed_accounts: Vec<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub xkey: String,
}

impl ExternalAuthorization {
    pub fn is_enabled(&self) -> bool {
        !self.auth_users.is_empty()
    }
}

/// Message tracing destination of an account.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MsgTrace {
    #[serde(rename = "dest", skip_serializing_if = "is_default")]
    pub destination: String,
    #[serde(skip_serializing_if = "is_default")]
    pub sampling: i64,
}

/// The `nats` section of an account JWT. `limits`, `default_permissions` and `authorization`
/// are structs in Go and therefore always written.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Account {
    #[serde(skip_serializing_if = "is_default")]
    pub imports: Vec<Import>,
    #[serde(skip_serializing_if = "is_default")]
    pub exports: Vec<Export>,
    pub limits: OperatorLimits,
    #[serde(skip_serializing_if = "is_empty_keys")]
    pub signing_keys: SigningKeys,
    #[serde(skip_serializing_if = "is_default")]
    pub revocations: RevocationList,
    pub default_permissions: Permissions,
    #[serde(skip_serializing_if = "is_default")]
    pub mappings: BTreeMap<String, Vec<WeightedMapping>>,
    pub authorization: ExternalAuthorization,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub trace: Option<MsgTrace>,
    #[serde(skip_serializing_if = "is_default")]
    pub cluster_traffic: String,
    #[serde(flatten)]
    pub info: Info,
    #[serde(flatten)]
    pub generic: GenericFields,
}

impl Account {
    /// nats-server's user revocation check: revoked when the entry for `public_key` or `*` is
    /// at or after `issued_at`.
    pub fn is_revoked(&self, public_key: &str, issued_at: i64) -> bool {
        self.revocations.is_revoked(public_key, issued_at)
    }

    /// The scope of a scoped signing key; `None` for plain keys and unknown keys.
    pub fn signing_key_scope(&self, key: &str) -> Option<&UserScope> {
        self.signing_keys.scope(key)
    }

    /// The export whose subject is exactly `subject`.
    pub fn export(&self, subject: &str) -> Option<&Export> {
        self.exports.iter().find(|e| e.subject == subject)
    }
}

impl Payload for Account {
    const CLAIM_TYPE: &'static str = ClaimType::ACCOUNT;
    const ISSUERS: &'static [KeyKind] = &[KeyKind::Account, KeyKind::Operator];
    generic_accessors!();

    fn check_subject(subject: &str) -> Result<(), JwtError> {
        if is_kind(subject, KeyKind::Account) {
            Ok(())
        } else {
            Err(JwtError::InvalidClaims(
                "expected subject to be account public key".into(),
            ))
        }
    }

    fn prepare_encode(&mut self) {
        self.exports.sort_by(|a, b| a.subject.cmp(&b.subject));
        self.imports.sort_by(|a, b| a.subject.cmp(&b.subject));
    }

    fn after_decode(&mut self) {
        if !self.limits.jetstream_tiered.is_empty() {
            self.limits.jetstream = JetStreamLimits::default();
        }
    }
}

/// An account JWT.
pub type AccountClaims = ClaimSet<Account>;

impl AccountClaims {
    /// Go's `NewAccountClaims`: everything unlimited except JetStream (disabled).
    pub fn new(subject: impl Into<String>) -> Self {
        let mut c = Self::with_subject(subject);
        c.nats.limits.nats = NatsLimits::UNLIMITED;
        c.nats.limits.account = AccountLimits::UNLIMITED;
        c
    }

    /// Go's `IsClaimRevoked`: a user without issue time or subject counts as revoked.
    pub fn is_claim_revoked(&self, user: &UserClaims) -> bool {
        if user.data.issued_at == 0 || user.data.subject.is_empty() {
            return true;
        }
        self.nats
            .is_revoked(&user.data.subject, user.data.issued_at)
    }

    /// Whether an activation for an import of `subject` from this account is revoked on the
    /// export (the importer is the activation's subject).
    pub fn is_activation_revoked(
        &self,
        export_subject: &str,
        activation: &ActivationClaims,
    ) -> bool {
        match self.nats.export(export_subject) {
            Some(e) => e.is_claim_revoked(activation),
            None => true,
        }
    }

    /// Go's `DidSign` for users and activations: issued by the account itself, or by one of
    /// its signing keys with `issuer_account` naming it.
    pub fn did_sign(&self, issuer: &str, issuer_account: &str) -> bool {
        if issuer == self.data.subject {
            return true;
        }
        issuer_account == self.data.subject && self.nats.signing_keys.contains(issuer)
    }

    /// Shorthand for [`Account::signing_key_scope`].
    pub fn signing_key_scope(&self, key: &str) -> Option<&UserScope> {
        self.nats.signing_key_scope(key)
    }

    /// Shorthand for [`Account::is_revoked`].
    pub fn is_revoked(&self, public_key: &str, issued_at: i64) -> bool {
        self.nats.is_revoked(public_key, issued_at)
    }
}
