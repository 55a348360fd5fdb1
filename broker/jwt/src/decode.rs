//! Decoding: split, check the header, parse the claims, verify the signature against `iss`,
//! and check that `iss` is a key kind allowed to issue that claim kind. Go: `decoder.go`.
//!
//! Defensive by construction: the size limit is checked before any decoding, nothing indexes
//! or unwraps on input, and serde_json caps nesting depth.

use crate::claims::{Claims, GenericClaims, Payload, decode_payload};
use crate::keys::key_kind;
use crate::{
    Account, Activation, AuthorizationRequest, AuthorizationResponse, ClaimType, JwtError,
    Operator, User, json,
};
use base64::Engine;
use base64::alphabet::URL_SAFE;
use base64::engine::{DecodePaddingMode, GeneralPurpose, GeneralPurposeConfig};
use serde::Deserialize;
use serde_json::Value;

/// Go's `jwt.MaxTokenSize`: tokens above 1 MiB are rejected before decoding.
pub const MAX_TOKEN_SIZE: usize = 1024 * 1024;

/// The algorithm JWT v2 writes; v1's `ed25519` is still accepted in the header.
pub(crate) const ALGORITHM_NKEY: &str = "ed25519-nkey";
pub(crate) const ALGORITHM_NKEY_OLD: &str = "ed25519";
pub(crate) const TOKEN_TYPE_JWT: &str = "JWT";

/// Go's `base64.RawURLEncoding`: no padding, and (not being in strict mode) it ignores
/// non-zero trailing bits, which the base64 crate rejects by default.
pub(crate) const B64: GeneralPurpose = GeneralPurpose::new(
    &URL_SAFE,
    GeneralPurposeConfig::new()
        .with_encode_padding(false)
        .with_decode_padding_mode(DecodePaddingMode::RequireNone)
        .with_decode_allow_trailing_bits(true),
);

#[derive(Deserialize)]
struct Header {
    #[serde(default)]
    typ: String,
    #[serde(default)]
    alg: String,
}

/// Returns whether the header names the v1 algorithm.
fn parse_header(chunk: &str) -> Result<bool, JwtError> {
    let raw = B64.decode(chunk).map_err(|source| JwtError::Base64 {
        part: "header",
        source,
    })?;
    let h: Header = json::from_slice(&raw).map_err(|source| JwtError::Json {
        part: "header",
        source,
    })?;
    if !h.typ.eq_ignore_ascii_case(TOKEN_TYPE_JWT) {
        return Err(JwtError::UnsupportedType(h.typ));
    }
    let alg = h.alg.to_lowercase();
    if alg == ALGORITHM_NKEY {
        Ok(false)
    } else if alg == ALGORITHM_NKEY_OLD {
        Ok(true)
    } else {
        Err(JwtError::UnexpectedAlgorithm(h.alg))
    }
}

/// What decides how to load the claims: Go's `identifier`.
#[derive(Deserialize, Default)]
#[serde(default)]
struct Identifier {
    /// Set only in v1 claims.
    #[serde(rename = "type")]
    v1_type: String,
    nats: IdentifierNats,
}

#[derive(Deserialize, Default)]
#[serde(default)]
struct IdentifierNats {
    #[serde(rename = "type")]
    claim_type: String,
    version: i64,
}

/// Decodes and verifies a JWT of any kind. Time validity is not checked: see
/// [`crate::validate`].
pub fn decode(token: &str) -> Result<Claims, JwtError> {
    if token.len() > MAX_TOKEN_SIZE {
        return Err(JwtError::TokenTooLarge {
            size: token.len(),
            max: MAX_TOKEN_SIZE,
        });
    }
    let mut chunks = token.split('.');
    let (Some(header), Some(payload), Some(signature), None) =
        (chunks.next(), chunks.next(), chunks.next(), chunks.next())
    else {
        return Err(JwtError::ExpectedThreeChunks);
    };
    let v1_alg = parse_header(header)?;
    let raw = B64.decode(payload).map_err(|source| JwtError::Base64 {
        part: "claims",
        source,
    })?;
    let mut value: Value = serde_json::from_slice(&raw).map_err(|source| JwtError::Json {
        part: "claims",
        source,
    })?;
    json::strip_nulls(&mut value);
    let id = Identifier::deserialize(&value).map_err(|source| JwtError::Json {
        part: "claims",
        source,
    })?;
    let (kind, version) = if id.v1_type.is_empty() {
        (id.nats.claim_type.as_str(), id.nats.version)
    } else {
        (id.v1_type.as_str(), 1)
    };
    if version > 2 {
        return Err(JwtError::NewerVersion(version));
    }
    let sig = B64.decode(signature).map_err(|source| JwtError::Base64 {
        part: "signature",
        source,
    })?;
    // v2 signs `header.payload`; v1 signed the payload chunk alone.
    let signed_v2 = &token[..header.len() + 1 + payload.len()];
    let signed = |v1: bool| if v1 { payload } else { signed_v2 };

    let claims = match kind {
        ClaimType::OPERATOR => Claims::Operator(load::<Operator>(value, version)?),
        ClaimType::ACCOUNT => Claims::Account(load::<Account>(value, version)?),
        ClaimType::USER => Claims::User(load::<User>(value, version)?),
        ClaimType::ACTIVATION => Claims::Activation(load::<Activation>(value, version)?),
        ClaimType::AUTHORIZATION_REQUEST => {
            Claims::AuthorizationRequest(decode_payload::<AuthorizationRequest>(value)?)
        }
        ClaimType::AUTHORIZATION_RESPONSE => {
            Claims::AuthorizationResponse(decode_payload::<AuthorizationResponse>(value)?)
        }
        "cluster" => return Err(JwtError::UnsupportedClaims("ClusterClaims")),
        "server" => return Err(JwtError::UnsupportedClaims("ServerClaims")),
        _ => {
            // Go's `DecodeGeneric` rule: the header's algorithm says which form was signed.
            let g: GenericClaims = json::from_value(value).map_err(|source| JwtError::Json {
                part: "claims",
                source,
            })?;
            verify(&g.data.issuer, signed(v1_alg), &sig, v1_alg)?;
            return Ok(Claims::Generic(g));
        }
    };
    let v1 = version <= 1;
    let issuer = &claims.data().issuer;
    verify(issuer, signed(v1), &sig, v1)?;
    check_issuer(&claims, issuer)?;
    Ok(claims)
}

/// Loads a v2 claim of a kind that Go migrates from v1 (which this crate does not).
fn load<P: Payload>(value: Value, version: i64) -> Result<crate::ClaimSet<P>, JwtError> {
    match version {
        2 => decode_payload::<P>(value),
        1 => Err(JwtError::V1Claims),
        v => Err(JwtError::UnsupportedVersion(v)),
    }
}

fn verify(issuer: &str, signed: &str, sig: &[u8], v1: bool) -> Result<(), JwtError> {
    let bad = JwtError::BadSignature(if v1 { 1 } else { 2 });
    let Ok(kp) = nkeys::KeyPair::from_public_key(issuer) else {
        return Err(bad);
    };
    kp.verify(signed.as_bytes(), sig).map_err(|_| bad)
}

fn check_issuer(claims: &Claims, issuer: &str) -> Result<(), JwtError> {
    let allowed = match claims {
        Claims::Operator(_) => Operator::ISSUERS,
        Claims::Account(_) => Account::ISSUERS,
        Claims::User(_) => User::ISSUERS,
        Claims::Activation(_) => Activation::ISSUERS,
        Claims::AuthorizationRequest(_) => AuthorizationRequest::ISSUERS,
        Claims::AuthorizationResponse(_) => AuthorizationResponse::ISSUERS,
        Claims::Generic(_) => return Ok(()),
    };
    match key_kind(issuer) {
        Some(k) if allowed.contains(&k) => Ok(()),
        _ => Err(JwtError::IssuerKind(allowed)),
    }
}

macro_rules! decode_kind {
    ($(#[$doc:meta])* $name:ident, $variant:ident, $ty:ty, $what:expr) => {
        $(#[$doc])*
        pub fn $name(token: &str) -> Result<$ty, JwtError> {
            match decode(token)? {
                Claims::$variant(c) => Ok(c),
                _ => Err(JwtError::WrongClaimType($what)),
            }
        }
    };
}

decode_kind!(
    /// Decodes and verifies an operator JWT.
    decode_operator, Operator, crate::OperatorClaims, "operator"
);
decode_kind!(
    /// Decodes and verifies an account JWT.
    decode_account, Account, crate::AccountClaims, "account"
);
decode_kind!(
    /// Decodes and verifies a user JWT.
    decode_user, User, crate::UserClaims, "user"
);
decode_kind!(
    /// Decodes and verifies an activation JWT.
    decode_activation, Activation, crate::ActivationClaims, "activation"
);
decode_kind!(
    /// Decodes and verifies an auth callout request.
    decode_authorization_request, AuthorizationRequest, crate::AuthorizationRequestClaims,
    "an authorization request"
);
decode_kind!(
    /// Decodes and verifies an auth callout response.
    decode_authorization_response, AuthorizationResponse, crate::AuthorizationResponseClaims,
    "an authorization response"
);
