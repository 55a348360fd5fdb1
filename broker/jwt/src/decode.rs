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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::encode::sign;
    use crate::{ClaimsData, UserClaims, encode_at};
    use nkeys::KeyPair;
    use proptest::prelude::*;

    // Made by `nsc` 2.12 (add operator --generate-signing-key --sys; add account A; edit
    // account --sk generate; add export (stream, token_req) and (service); add user
    // --allow-pub "foo.>" --deny-sub bar; revocations add-user).
    const NSC_OPERATOR: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJqdGkiOiI1NkM3VFBRWlI1UlczNjVLU0ZGRVlTSTVEVE5IVEhQS0k3NExDS1pYRTRRQldISFpIUExBIiwiaWF0IjoxNzk2Mzk4MTkyLCJpc3MiOiJPQ1lHSFhBNUFNWlgyUVhVVVdBT1FETDQyN1kzN1RGRExMRk1WQVBNWkk2VDZJMzZIRURRNVpIVCIsIm5hbWUiOiJPUCIsInN1YiI6Ik9DWUdIWEE1QU1aWDJRWFVVV0FPUURMNDI3WTM3VEZETExGTVZBUE1aSTZUNkkzNkhFRFE1WkhUIiwibmF0cyI6eyJzaWduaW5nX2tleXMiOlsiT0RXN1ZTUzZYS1hSSUdZWVY2TFBEN05HUlE1Vkk1RlVYVlRRVzRTSVlJTUZBRDRHUTNDT1FENFoiXSwic3lzdGVtX2FjY291bnQiOiJBQVM3NTdNWjVPT0I2VEFEUVFLMjNUTzYzVko0QlZOSTRLNjVPQVQzNUVMTjZCSUYyRVBFWUw3SSIsInR5cGUiOiJvcGVyYXRvciIsInZlcnNpb24iOjJ9fQ.e4Oz1FZD0OOncZ6rUX5rO3BjWD62qObwa1T5lAiSQ5WiZPSMS_FjU5D4CQYTbBGPm3GDiq5K9OBYE9-LriVxCw";
    const NSC_ACCOUNT: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJqdGkiOiJKVkhDWU1FUTZHQUNTQkNZM1BDQUkyVkZIMkYyV1RVTkhFTlFJWVk3SzVJUlc3VlpNUENRIiwiaWF0IjoxNzk2Mzk4MTkzLCJpc3MiOiJPQ1lHSFhBNUFNWlgyUVhVVVdBT1FETDQyN1kzN1RGRExMRk1WQVBNWkk2VDZJMzZIRURRNVpIVCIsIm5hbWUiOiJBIiwic3ViIjoiQUFYVTRLTFJOQ0pORlQzNERGS1JSQ0ZCQ09KREFVTks1U1JKWUJJM1dNNEhLRE9HRkZaQzJGVFMiLCJuYXRzIjp7ImV4cG9ydHMiOlt7Im5hbWUiOiJzdHIiLCJzdWJqZWN0Ijoic3RyLioiLCJ0eXBlIjoic3RyZWFtIiwidG9rZW5fcmVxIjp0cnVlfSx7Im5hbWUiOiJzdmMiLCJzdWJqZWN0Ijoic3ZjLlx1MDAzZSIsInR5cGUiOiJzZXJ2aWNlIiwicmVzcG9uc2VfdHlwZSI6IlNpbmdsZXRvbiJ9XSwibGltaXRzIjp7InN1YnMiOi0xLCJkYXRhIjotMSwicGF5bG9hZCI6LTEsImltcG9ydHMiOi0xLCJleHBvcnRzIjotMSwid2lsZGNhcmRzIjp0cnVlLCJjb25uIjotMSwibGVhZiI6LTEsInN0cmVhbXMiOi0xLCJjb25zdW1lciI6LTEsIm1heF9hY2tfcGVuZGluZyI6LTEsIm1lbV9tYXhfc3RyZWFtX2J5dGVzIjotMSwiZGlza19tYXhfc3RyZWFtX2J5dGVzIjotMX0sInNpZ25pbmdfa2V5cyI6WyJBREpGTUZWNUJLSzVCUDJYQVNBQzU2NVZCTzY2NDNaVURINkRUN0JSTzNXQ1M2STYzVExDWE9JNyJdLCJyZXZvY2F0aW9ucyI6eyJVQzQ1RkdQVTRBTU1JUkxIQ1NYSVlLRE81QklVVlBDN1VGUzNCSk9DS0ZQSU1KS0VHREZRWkE0UyI6MTc5NjM5ODE5M30sImRlZmF1bHRfcGVybWlzc2lvbnMiOnsicHViIjp7fSwic3ViIjp7fX0sImF1dGhvcml6YXRpb24iOnt9LCJ0eXBlIjoiYWNjb3VudCIsInZlcnNpb24iOjJ9fQ.B1O4yBnwXrA6hHdaOqehfFDtsW2f-1u-VRFcD4THBZiVWjkCCtzz2MhEvPAxVk2_Pik5929rNWkBJNVmgqvvAw";
    const NSC_USER: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ.eyJqdGkiOiI0QkY3V1lWQ1hZRDJYVjRFRUw0Mks0Mks0QUwySkNWNTVGSE9YNUtERTdaTEdBV0E2SFZBIiwiaWF0IjoxNzk2Mzk4MTkzLCJpc3MiOiJBQVhVNEtMUk5DSk5GVDM0REZLUlJDRkJDT0pEQVVOSzVTUkpZQkkzV000SEtET0dGRlpDMkZUUyIsIm5hbWUiOiJ1MSIsInN1YiI6IlVDNDVGR1BVNEFNTUlSTEhDU1hJWUtETzVCSVVWUEM3VUZTM0JKT0NLRlBJTUpLRUdERlFaQTRTIiwibmF0cyI6eyJwdWIiOnsiYWxsb3ciOlsiZm9vLlx1MDAzZSJdfSwic3ViIjp7ImRlbnkiOlsiYmFyIl19LCJzdWJzIjotMSwiZGF0YSI6LTEsInBheWxvYWQiOi0xLCJ0eXBlIjoidXNlciIsInZlcnNpb24iOjJ9fQ.KXCG_9CS8X16hf8zBXfuGmnvGubAplg_5NF70mfe9SII6bTNTIJ7z50oGK5mz8IyLlo1aNgczgKy0Jrx9V-sAA";

    fn payload_bytes(token: &str) -> Vec<u8> {
        B64.decode(token.split('.').nth(1).unwrap_or_default())
            .unwrap_or_default()
    }

    /// nsc's tokens verify, and our serialization of the decoded claims reproduces nsc's
    /// payload byte for byte, and the `jti` hash over it.
    #[test]
    fn nsc_tokens_decode_and_reserialize_identically() {
        for token in [NSC_OPERATOR, NSC_ACCOUNT, NSC_USER] {
            let claims = decode(token);
            assert!(claims.is_ok(), "{claims:?}");
            let Ok(claims) = claims else { continue };
            let ours = match &claims {
                Claims::Operator(c) => json::to_vec(c),
                Claims::Account(c) => json::to_vec(c),
                Claims::User(c) => json::to_vec(c),
                other => panic!("unexpected kind {other:?}"),
            };
            assert_eq!(
                ours.map(String::from_utf8).ok().and_then(Result::ok),
                String::from_utf8(payload_bytes(token)).ok()
            );
            let mut data: ClaimsData = claims.data().clone();
            let jti = std::mem::take(&mut data.id);
            let hashed = json::to_vec(&data).unwrap_or_default();
            let digest = ring::digest::digest(&ring::digest::SHA512_256, &hashed);
            assert_eq!(crate::base32::encode(digest.as_ref(), false), jti);
        }
        let acc = decode_account(NSC_ACCOUNT).ok().unwrap_or_default();
        assert!(acc.is_revoked(
            "UC45FGPU4AMMIRLHCSXIYKDO5BIUVPC7UFS3BJOCKFPIMJKEGDFQZA4S",
            1796398193
        ));
        let user = decode_user(NSC_USER).ok().unwrap_or_default();
        assert_eq!(
            user.nats.permission_limits.permissions.publish.allow,
            vec!["foo.>"]
        );
        assert!(acc.is_claim_revoked(&user));
        assert!(matches!(
            decode_user(NSC_ACCOUNT),
            Err(JwtError::WrongClaimType("user"))
        ));
        assert_eq!(
            decode_operator(NSC_USER)
                .map(|_| ())
                .map_err(|e| e.to_string()),
            Err("not operator claim".to_string())
        );
    }

    fn user_token() -> (String, KeyPair) {
        let acc = KeyPair::new_account();
        let c = UserClaims::new(KeyPair::new_user().public_key());
        (encode_at(&c, &acc, 1_700_000_000).unwrap_or_default(), acc)
    }

    fn b64(s: &str) -> String {
        B64.encode(s)
    }

    const HEADER: &str = "eyJ0eXAiOiJKV1QiLCJhbGciOiJlZDI1NTE5LW5rZXkifQ";

    #[test]
    fn tampering_breaks_the_signature() {
        let (token, _) = user_token();
        let parts: Vec<&str> = token.split('.').collect();
        // Change the claims: a different name.
        let mut claims: serde_json::Value =
            serde_json::from_slice(&payload_bytes(&token)).unwrap_or_default();
        claims["name"] = "mallory".into();
        let forged = format!("{}.{}.{}", parts[0], b64(&claims.to_string()), parts[2]);
        assert!(matches!(decode(&forged), Err(JwtError::BadSignature(2))));
        // Change the signature.
        let mut sig = B64.decode(parts[2]).unwrap_or_default();
        sig[0] ^= 1;
        let forged = format!("{}.{}.{}", parts[0], parts[1], B64.encode(&sig));
        assert!(matches!(decode(&forged), Err(JwtError::BadSignature(2))));
        // Short signature.
        let forged = format!("{}.{}.{}", parts[0], parts[1], B64.encode([1u8; 10]));
        assert!(matches!(decode(&forged), Err(JwtError::BadSignature(2))));
        // Swap the header for the v1 one: the signed input changes, so it fails too.
        let v1 = b64(r#"{"typ":"JWT","alg":"ed25519"}"#);
        let forged = format!("{v1}.{}.{}", parts[1], parts[2]);
        assert!(matches!(decode(&forged), Err(JwtError::BadSignature(2))));
    }

    #[test]
    fn wrong_issuer_kind_is_rejected() {
        // A user JWT signed (validly) by an operator key.
        let op = KeyPair::new_operator();
        let mut c = UserClaims::new(KeyPair::new_user().public_key());
        c.data.issuer = op.public_key();
        c.nats.generic.claim_type = "user".into();
        c.nats.generic.version = 2;
        let token = sign(&c, &op).unwrap_or_default();
        assert_eq!(
            decode(&token).map(|_| ()).map_err(|e| e.to_string()),
            Err("unable to validate expected prefixes - [account]".to_string())
        );
        // An operator JWT signed by an account.
        let acc = KeyPair::new_account();
        let mut o = crate::OperatorClaims::new(op.public_key());
        o.data.issuer = acc.public_key();
        o.nats.generic.claim_type = "operator".into();
        o.nats.generic.version = 2;
        let token = sign(&o, &acc).unwrap_or_default();
        assert!(matches!(decode(&token), Err(JwtError::IssuerKind(_))));
        // Claiming another issuer than the signer fails the signature.
        let mut c2 = UserClaims::new(KeyPair::new_user().public_key());
        c2.data.issuer = KeyPair::new_account().public_key();
        c2.nats.generic.claim_type = "user".into();
        c2.nats.generic.version = 2;
        let token = sign(&c2, &acc).unwrap_or_default();
        assert!(matches!(decode(&token), Err(JwtError::BadSignature(2))));
    }

    #[test]
    fn malformed_tokens_are_errors() {
        let (token, acc) = user_token();
        let parts: Vec<&str> = token.split('.').collect();
        let cases: Vec<(String, &str)> = vec![
            (String::new(), "expected 3 chunks"),
            (format!("{}.{}", parts[0], parts[1]), "expected 3 chunks"),
            (format!("{token}.x"), "expected 3 chunks"),
            (
                format!("!!.{}.{}", parts[1], parts[2]),
                "invalid base64url in JWT header",
            ),
            (
                format!("{}.{}.{}", b64("{"), parts[1], parts[2]),
                "invalid JSON in JWT header",
            ),
            // serde reads a struct from an array too; the empty header is still refused.
            (
                format!("{}.{}.{}", b64("[]"), parts[1], parts[2]),
                "not supported type \"\"",
            ),
            (
                format!(
                    "{}.{}.{}",
                    b64(r#"{"typ":"JWS","alg":"ed25519-nkey"}"#),
                    parts[1],
                    parts[2]
                ),
                "not supported type \"JWS\"",
            ),
            (
                format!(
                    "{}.{}.{}",
                    b64(r#"{"typ":"JWT","alg":"HS256"}"#),
                    parts[1],
                    parts[2]
                ),
                "unexpected \"HS256\" algorithm",
            ),
            (
                format!(
                    "{}.{}.{}",
                    b64(r#"{"typ":"JWT","alg":"ed25519-nkeyx"}"#),
                    parts[1],
                    parts[2]
                ),
                "unexpected \"ed25519-nkeyx\" algorithm",
            ),
            (
                format!("{}.%%.{}", parts[0], parts[2]),
                "invalid base64url in JWT claims",
            ),
            (
                format!("{}.{}.{}", parts[0], b64("nope"), parts[2]),
                "invalid JSON in JWT claims",
            ),
            (
                format!("{}.{}.{}", parts[0], b64("[1]"), parts[2]),
                "invalid JSON in JWT claims",
            ),
            (
                format!(
                    "{}.{}.{}",
                    parts[0],
                    b64(r#"{"nats":{"version":"2"}}"#),
                    parts[2]
                ),
                "invalid JSON in JWT claims",
            ),
            (
                format!(
                    "{}.{}.{}",
                    parts[0],
                    b64(r#"{"nats":{"type":"user","version":3}}"#),
                    parts[2]
                ),
                "JWT was generated by a newer version (3)",
            ),
            (
                format!(
                    "{}.{}.{}",
                    parts[0],
                    b64(r#"{"nats":{"type":"user"}}"#),
                    parts[2]
                ),
                "library supports version 2 or less - received 0",
            ),
            (
                format!(
                    "{}.{}.{}",
                    parts[0],
                    b64(r#"{"type":"user","nats":{}}"#),
                    parts[2]
                ),
                "JWT v1 claims are not supported",
            ),
            (
                format!(
                    "{}.{}.{}",
                    parts[0],
                    b64(r#"{"nats":{"type":"cluster","version":2}}"#),
                    parts[2]
                ),
                "ClusterClaims are not supported",
            ),
            (
                format!(
                    "{}.{}.{}",
                    parts[0],
                    b64(r#"{"nats":{"type":"user","version":2,"pub":5}}"#),
                    parts[2]
                ),
                "invalid JSON in JWT claims",
            ),
            (
                format!("{}.{}.!", parts[0], parts[1]),
                "invalid base64url in JWT signature",
            ),
            (
                format!(
                    "{}.{}.{}",
                    parts[0],
                    b64(r#"{"nats":{"type":"user","version":2}}"#),
                    parts[2]
                ),
                "claim failed V2 signature verification",
            ),
        ];
        for (input, want) in cases {
            let got = decode(&input).map(|_| ()).map_err(|e| e.to_string());
            assert!(
                got.as_ref().is_err_and(|e| e.starts_with(want)),
                "{input}: got {got:?}, want {want}"
            );
        }
        let big = "a".repeat(MAX_TOKEN_SIZE + 1);
        assert!(matches!(decode(&big), Err(JwtError::TokenTooLarge { .. })));
        let _ = acc;
        let _ = HEADER;
    }

    #[test]
    fn header_is_case_insensitive_and_accepts_v1_alg() {
        assert_eq!(
            parse_header(&b64(r#"{"typ":"jwt","alg":"ED25519-NKEY"}"#)).ok(),
            Some(false)
        );
        assert_eq!(
            parse_header(&b64(r#"{"typ":"JWT","alg":"ed25519"}"#)).ok(),
            Some(true)
        );
        assert_eq!(parse_header(HEADER).ok(), Some(false));
    }

    #[test]
    fn null_members_decode_as_zero_values() {
        let acc = KeyPair::new_account();
        let mut v = serde_json::json!({
            "iss": acc.public_key(), "sub": KeyPair::new_user().public_key(), "aud": null,
            "nats": {"type": "user", "version": 2, "pub": null, "src": null, "tags": null}
        });
        v["iat"] = 5.into();
        let token = sign(&v, &acc).unwrap_or_default();
        let u = decode_user(&token);
        assert!(u.is_ok(), "{u:?}");
    }

    fn cases() -> impl Strategy<Value = String> {
        let (token, _) = user_token();
        prop_oneof![
            any::<String>(),
            "[A-Za-z0-9_.=-]{0,200}",
            // Mutations of a valid token: one byte replaced, or truncated.
            (0usize..token.len(), any::<char>()).prop_map(move |(i, c)| {
                let mut t: Vec<char> = token.chars().collect();
                if let Some(slot) = t.get_mut(i) {
                    *slot = c;
                }
                t.into_iter().collect()
            }),
            // Valid base64 around arbitrary JSON-ish payloads.
            "[{}\\[\\]\":,a-z0-9 ]{0,80}".prop_map(|p| format!("{HEADER}.{}.AAAA", B64.encode(p))),
        ]
    }

    proptest! {
        #[test]
        fn decode_never_panics(s in cases()) {
            let _ = decode(&s);
            let _ = crate::parse_creds(&s);
            let _ = crate::parse_decorated_jwt(&s);
        }
    }
}
