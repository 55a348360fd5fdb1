//! Operator claims: the root of trust, self-signed, naming its signing keys and system account.
//! Go: `operator_claims.go`.

use crate::claims::{ClaimSet, GenericFields, Payload, generic_accessors};
use crate::json::is_default;
use crate::keys::{KeyKind, is_kind};
use crate::{ClaimType, JwtError};
use serde::{Deserialize, Serialize};

/// The `nats` section of an operator JWT.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Operator {
    /// Operator keys (besides the identity key) that may sign accounts.
    #[serde(skip_serializing_if = "is_default")]
    pub signing_keys: Vec<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub account_server_url: String,
    #[serde(skip_serializing_if = "is_default")]
    pub operator_service_urls: Vec<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub system_account: String,
    #[serde(skip_serializing_if = "is_default")]
    pub assert_server_version: String,
    /// When set, the identity key may only sign the operator JWT itself.
    #[serde(skip_serializing_if = "is_default")]
    pub strict_signing_key_usage: bool,
    #[serde(flatten)]
    pub generic: GenericFields,
}

impl Payload for Operator {
    const CLAIM_TYPE: &'static str = ClaimType::OPERATOR;
    const ISSUERS: &'static [KeyKind] = &[KeyKind::Operator];
    generic_accessors!();

    fn check_subject(subject: &str) -> Result<(), JwtError> {
        if is_kind(subject, KeyKind::Operator) {
            Ok(())
        } else {
            Err(JwtError::InvalidClaims(
                "expected subject to be an operator public key".into(),
            ))
        }
    }
}

/// An operator JWT.
pub type OperatorClaims = ClaimSet<Operator>;

impl OperatorClaims {
    /// Go's `NewOperatorClaims`: self-issued.
    pub fn new(subject: impl Into<String>) -> Self {
        let mut c = Self::with_subject(subject);
        c.data.issuer = c.data.subject.clone();
        c
    }

    /// Whether `issuer` may sign claims about `subject` for this operator (Go's `DidSign`):
    /// the identity key (unless strict signing key usage limits it to the operator JWT itself)
    /// or one of the signing keys.
    pub fn did_sign(&self, issuer: &str, subject: &str) -> bool {
        if issuer == self.data.subject {
            return !self.nats.strict_signing_key_usage || subject == self.data.subject;
        }
        self.nats.signing_keys.iter().any(|k| k == issuer)
    }
}
