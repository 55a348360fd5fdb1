//! User claims: what a connecting client presents, signed by its account (or one of the
//! account's signing keys, then naming the account in `issuer_account`). Go: `user_claims.go`.

use crate::claims::{ClaimSet, GenericFields, Payload, generic_accessors};
use crate::json::is_default;
use crate::keys::{KeyKind, is_kind};
use crate::types::{Limits, NatsLimits, UserPermissionLimits};
use crate::{ClaimType, JwtError};
use serde::{Deserialize, Serialize};

pub const CONNECTION_TYPE_STANDARD: &str = "STANDARD";
pub const CONNECTION_TYPE_WEBSOCKET: &str = "WEBSOCKET";
pub const CONNECTION_TYPE_LEAFNODE: &str = "LEAFNODE";
pub const CONNECTION_TYPE_LEAFNODE_WS: &str = "LEAFNODE_WS";
pub const CONNECTION_TYPE_MQTT: &str = "MQTT";
pub const CONNECTION_TYPE_MQTT_WS: &str = "MQTT_WS";
pub const CONNECTION_TYPE_IN_PROCESS: &str = "IN_PROCESS";

/// The `nats` section of a user JWT.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct User {
    #[serde(flatten)]
    pub permission_limits: UserPermissionLimits,
    /// The account, when the issuer is one of its signing keys.
    #[serde(skip_serializing_if = "is_default")]
    pub issuer_account: String,
    #[serde(flatten)]
    pub generic: GenericFields,
}

impl Payload for User {
    const CLAIM_TYPE: &'static str = ClaimType::USER;
    const ISSUERS: &'static [KeyKind] = &[KeyKind::Account];
    generic_accessors!();

    fn check_subject(subject: &str) -> Result<(), JwtError> {
        if is_kind(subject, KeyKind::User) {
            Ok(())
        } else {
            Err(JwtError::InvalidClaims(
                "expected subject to be user public key".into(),
            ))
        }
    }
}

/// A user JWT.
pub type UserClaims = ClaimSet<User>;

impl UserClaims {
    /// Go's `NewUserClaims`: subs, data and payload unlimited (-1), nothing else set.
    pub fn new(subject: impl Into<String>) -> Self {
        let mut c = Self::with_subject(subject);
        c.nats.permission_limits.limits = Limits {
            nats_limits: NatsLimits::UNLIMITED,
            ..Limits::default()
        };
        c
    }

    /// True when no permission or limit is set, which a user signed by a scoped signing key
    /// must satisfy (the scope's template supplies them).
    pub fn has_empty_permissions(&self) -> bool {
        self.nats.permission_limits == UserPermissionLimits::default()
    }

    pub fn is_bearer_token(&self) -> bool {
        self.nats.permission_limits.bearer_token
    }

    /// The account this user belongs to: `issuer_account` when signed by a signing key,
    /// otherwise the issuer.
    pub fn account(&self) -> &str {
        if self.nats.issuer_account.is_empty() {
            &self.data.issuer
        } else {
            &self.nats.issuer_account
        }
    }
}
