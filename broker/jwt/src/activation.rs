//! Activation claims: an exporting account's permission for one importing account to import a
//! `token_req` export. Go: `activation_claims.go`.

use crate::claims::{ClaimSet, GenericFields, Payload, generic_accessors};
use crate::json::is_default;
use crate::keys::{KeyKind, is_kind};
use crate::types::ExportType;
use crate::{ClaimType, JwtError, base32};
use serde::{Deserialize, Serialize};

/// The `nats` section of an activation JWT. Note the JSON names: `subject` and `kind`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Activation {
    #[serde(rename = "subject", skip_serializing_if = "is_default")]
    pub import_subject: String,
    #[serde(rename = "kind", skip_serializing_if = "is_default")]
    pub import_type: ExportType,
    /// The exporting account, when the issuer is one of its signing keys.
    #[serde(skip_serializing_if = "is_default")]
    pub issuer_account: String,
    #[serde(flatten)]
    pub generic: GenericFields,
}

impl Payload for Activation {
    const CLAIM_TYPE: &'static str = ClaimType::ACTIVATION;
    const ISSUERS: &'static [KeyKind] = &[KeyKind::Account, KeyKind::Operator];
    generic_accessors!();

    fn check_subject(subject: &str) -> Result<(), JwtError> {
        if is_kind(subject, KeyKind::Account) {
            Ok(())
        } else {
            Err(JwtError::InvalidClaims(
                "expected subject to be an account".into(),
            ))
        }
    }
}

/// An activation JWT; the subject is the importing account.
pub type ActivationClaims = ClaimSet<Activation>;

impl ActivationClaims {
    pub fn new(subject: impl Into<String>) -> Self {
        Self::with_subject(subject)
    }

    /// Go's `HashID`: base32 (padded) of sha256(`issuer.subject.subject-prefix`), where the
    /// import subject is cut at its first wildcard. Used to name activations in a resolver.
    pub fn hash_id(&self) -> Option<String> {
        if self.data.issuer.is_empty()
            || self.data.subject.is_empty()
            || self.nats.import_subject.is_empty()
        {
            return None;
        }
        let subject = clean_subject(&self.nats.import_subject);
        let base = format!("{}.{}.{}", self.data.issuer, self.data.subject, subject);
        let digest = ring::digest::digest(&ring::digest::SHA256, base.as_bytes());
        Some(base32::encode(digest.as_ref(), true))
    }
}

fn clean_subject(subject: &str) -> String {
    let tokens: Vec<&str> = subject.split('.').collect();
    for (i, tok) in tokens.iter().enumerate() {
        if *tok == "*" || *tok == ">" {
            if i == 0 {
                return "_".to_string();
            }
            return tokens[..i].join(".");
        }
    }
    subject.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn clean_subject_cuts_at_wildcard() {
        assert_eq!(clean_subject("foo.bar"), "foo.bar");
        assert_eq!(clean_subject("foo.*.bar"), "foo");
        assert_eq!(clean_subject("*.bar"), "_");
        assert_eq!(clean_subject(">"), "_");
    }
}
