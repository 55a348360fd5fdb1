//! The parts every JWT shares: the registered claims (`ClaimsData`), the `nats` section's
//! `type`/`version`/`tags` (`GenericFields`), the typed container `ClaimSet<P>` and the
//! `Claims` enum that [`crate::decode`] returns.

use crate::json::is_default;
use crate::keys::KeyKind;
use crate::{JwtError, json};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The `nats.type` values.
pub struct ClaimType;

impl ClaimType {
    pub const OPERATOR: &'static str = "operator";
    pub const ACCOUNT: &'static str = "account";
    pub const USER: &'static str = "user";
    pub const ACTIVATION: &'static str = "activation";
    pub const AUTHORIZATION_REQUEST: &'static str = "authorization_request";
    pub const AUTHORIZATION_RESPONSE: &'static str = "authorization_response";
    pub const GENERIC: &'static str = "generic";
}

/// The registered JWT claims, in the order Go's struct declares them (which is the order they
/// are marshalled in, and the input of the `jti` hash).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClaimsData {
    #[serde(rename = "aud", skip_serializing_if = "is_default")]
    pub audience: String,
    /// Unix seconds; 0 is "never".
    #[serde(rename = "exp", skip_serializing_if = "is_default")]
    pub expires: i64,
    #[serde(rename = "jti", skip_serializing_if = "is_default")]
    pub id: String,
    #[serde(rename = "iat", skip_serializing_if = "is_default")]
    pub issued_at: i64,
    #[serde(rename = "iss", skip_serializing_if = "is_default")]
    pub issuer: String,
    #[serde(skip_serializing_if = "is_default")]
    pub name: String,
    /// Unix seconds; 0 is "always".
    #[serde(rename = "nbf", skip_serializing_if = "is_default")]
    pub not_before: i64,
    #[serde(rename = "sub", skip_serializing_if = "is_default")]
    pub subject: String,
}

impl ClaimsData {
    pub fn is_self_signed(&self) -> bool {
        self.issuer == self.subject
    }
}

impl AsRef<ClaimsData> for ClaimsData {
    fn as_ref(&self) -> &ClaimsData {
        self
    }
}

/// `tags`, `type` and `version`, written last in every `nats` section.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct GenericFields {
    #[serde(skip_serializing_if = "is_default")]
    pub tags: Vec<String>,
    #[serde(rename = "type", skip_serializing_if = "is_default")]
    pub claim_type: String,
    #[serde(skip_serializing_if = "is_default")]
    pub version: i64,
}

/// The body of one claim kind: what goes under `nats`, and the rules for that kind.
pub trait Payload: Serialize + DeserializeOwned + Default + Clone {
    /// The `nats.type` value.
    const CLAIM_TYPE: &'static str;
    /// Key kinds allowed to issue (sign) this kind.
    const ISSUERS: &'static [KeyKind];

    fn generic(&self) -> &GenericFields;
    fn generic_mut(&mut self) -> &mut GenericFields;

    /// Rejects a subject of the wrong key kind before encoding (Go's `EncodeWithSigner`).
    fn check_subject(subject: &str) -> Result<(), JwtError> {
        let _ = subject;
        Ok(())
    }

    /// Normalizes before encoding (accounts sort their imports and exports, as Go does).
    fn prepare_encode(&mut self) {}

    /// Normalizes after decoding (Go's `loadAccount` drops flat JetStream limits when tiered
    /// ones are present).
    fn after_decode(&mut self) {}
}

/// One kind of claims: the registered claims plus the kind's `nats` section. Go embeds
/// `ClaimsData`, so its fields are top-level members here too.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
#[serde(bound(
    serialize = "P: Serialize",
    deserialize = "P: DeserializeOwned + Default"
))]
pub struct ClaimSet<P> {
    #[serde(flatten)]
    pub data: ClaimsData,
    #[serde(default)]
    pub nats: P,
}

impl<P> AsRef<ClaimsData> for ClaimSet<P> {
    fn as_ref(&self) -> &ClaimsData {
        &self.data
    }
}

impl<P: Payload> ClaimSet<P> {
    /// Claims about `subject` with an empty body.
    pub fn with_subject(subject: impl Into<String>) -> Self {
        let mut c = ClaimSet::<P>::default();
        c.data.subject = subject.into();
        c
    }

    pub fn tags(&self) -> &[String] {
        &self.nats.generic().tags
    }

    pub fn version(&self) -> i64 {
        self.nats.generic().version
    }
}

/// Claims of a type this library does not model: the `nats` section is kept as JSON.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GenericClaims {
    #[serde(flatten)]
    pub data: ClaimsData,
    #[serde(default, skip_serializing_if = "is_default")]
    pub nats: BTreeMap<String, Value>,
}

impl AsRef<ClaimsData> for GenericClaims {
    fn as_ref(&self) -> &ClaimsData {
        &self.data
    }
}

impl GenericClaims {
    /// The type named in `nats.type` (or a top-level `type`), or `generic` for the known ones,
    /// following Go's `GenericClaims.ClaimType`.
    pub fn claim_type(&self) -> String {
        match self.nats.get("type").and_then(Value::as_str) {
            Some(t) if is_known_type(t) => t.to_string(),
            Some(_) | None => ClaimType::GENERIC.to_string(),
        }
    }
}

fn is_known_type(t: &str) -> bool {
    matches!(
        t,
        ClaimType::OPERATOR
            | ClaimType::ACCOUNT
            | ClaimType::USER
            | ClaimType::ACTIVATION
            | ClaimType::AUTHORIZATION_REQUEST
            | ClaimType::AUTHORIZATION_RESPONSE
    )
}

pub(crate) fn decode_payload<P: Payload>(value: Value) -> Result<ClaimSet<P>, JwtError> {
    let mut c: ClaimSet<P> = json::from_value(value).map_err(|source| JwtError::Json {
        part: "claims",
        source,
    })?;
    c.nats.after_decode();
    Ok(c)
}

/// Decoded claims of any kind.
#[derive(Debug, Clone, PartialEq)]
pub enum Claims {
    Operator(crate::OperatorClaims),
    Account(crate::AccountClaims),
    User(crate::UserClaims),
    Activation(crate::ActivationClaims),
    AuthorizationRequest(crate::AuthorizationRequestClaims),
    AuthorizationResponse(crate::AuthorizationResponseClaims),
    Generic(GenericClaims),
}

impl Claims {
    pub fn data(&self) -> &ClaimsData {
        match self {
            Claims::Operator(c) => &c.data,
            Claims::Account(c) => &c.data,
            Claims::User(c) => &c.data,
            Claims::Activation(c) => &c.data,
            Claims::AuthorizationRequest(c) => &c.data,
            Claims::AuthorizationResponse(c) => &c.data,
            Claims::Generic(c) => &c.data,
        }
    }

    /// The `nats.type` of the claims.
    pub fn claim_type(&self) -> String {
        match self {
            Claims::Operator(_) => ClaimType::OPERATOR.into(),
            Claims::Account(_) => ClaimType::ACCOUNT.into(),
            Claims::User(_) => ClaimType::USER.into(),
            Claims::Activation(_) => ClaimType::ACTIVATION.into(),
            Claims::AuthorizationRequest(_) => ClaimType::AUTHORIZATION_REQUEST.into(),
            Claims::AuthorizationResponse(_) => ClaimType::AUTHORIZATION_RESPONSE.into(),
            Claims::Generic(g) => g.claim_type(),
        }
    }
}

impl AsRef<ClaimsData> for Claims {
    fn as_ref(&self) -> &ClaimsData {
        self.data()
    }
}

/// The two accessors of [`Payload`] for a body whose generic fields live in `self.generic`.
macro_rules! generic_accessors {
    () => {
        fn generic(&self) -> &$crate::claims::GenericFields {
            &self.generic
        }
        fn generic_mut(&mut self) -> &mut $crate::claims::GenericFields {
            &mut self.generic
        }
    };
}
pub(crate) use generic_accessors;
