//! Encoding and signing, as Go's `ClaimsData.doEncode`: set `type`, `iss`, `iat`, the `jti`
//! hash and `version` 2, then sign `header.payload` with the issuer's seed.
//!
//! The `jti` is base32 (no padding) of SHA-512/256 over the JSON of the registered claims
//! alone, with `jti` empty and `iss`/`iat` already set.

use crate::claims::{ClaimSet, ClaimsData, GenericClaims, Payload};
use crate::decode::{ALGORITHM_NKEY, B64, TOKEN_TYPE_JWT};
use crate::keys::key_kind;
use crate::{JwtError, base32, json, now_unix};
use base64::Engine;
use nkeys::KeyPair;
use serde::Serialize;

/// Signs `claims` with `issuer` (a key pair holding a seed), issued now.
pub fn encode<P: Payload>(claims: &ClaimSet<P>, issuer: &KeyPair) -> Result<String, JwtError> {
    encode_at(claims, issuer, now_unix())
}

/// [`encode`] with an explicit issue time (unix seconds), for reproducible tokens.
pub fn encode_at<P: Payload>(
    claims: &ClaimSet<P>,
    issuer: &KeyPair,
    issued_at: i64,
) -> Result<String, JwtError> {
    P::check_subject(&claims.data.subject)?;
    if claims.data.subject.is_empty() {
        return Err(JwtError::InvalidClaims("subject is not set".into()));
    }
    let issuer_key = issuer.public_key();
    if !key_kind(&issuer_key).is_some_and(|k| P::ISSUERS.contains(&k)) {
        return Err(JwtError::IssuerKind(P::ISSUERS));
    }
    let mut c = claims.clone();
    c.nats.prepare_encode();
    c.nats.generic_mut().claim_type = P::CLAIM_TYPE.to_string();
    stamp(&mut c.data, issuer_key, issued_at)?;
    c.nats.generic_mut().version = 2;
    sign(&c, issuer)
}

/// Signs generic claims (any issuer kind), issued now.
pub fn encode_generic(claims: &GenericClaims, issuer: &KeyPair) -> Result<String, JwtError> {
    encode_generic_at(claims, issuer, now_unix())
}

/// [`encode_generic`] with an explicit issue time.
pub fn encode_generic_at(
    claims: &GenericClaims,
    issuer: &KeyPair,
    issued_at: i64,
) -> Result<String, JwtError> {
    if claims.data.subject.is_empty() {
        return Err(JwtError::InvalidClaims("subject is not set".into()));
    }
    let mut c = claims.clone();
    stamp(&mut c.data, issuer.public_key(), issued_at)?;
    c.nats.insert("version".into(), serde_json::Value::from(2));
    sign(&c, issuer)
}

fn stamp(data: &mut ClaimsData, issuer: String, issued_at: i64) -> Result<(), JwtError> {
    data.issuer = issuer;
    data.issued_at = issued_at;
    data.id = String::new();
    data.id = hash(data)?;
    Ok(())
}

fn hash(data: &ClaimsData) -> Result<String, JwtError> {
    let bytes = json::to_vec(data).map_err(|e| JwtError::InvalidClaims(e.to_string()))?;
    let digest = ring::digest::digest(&ring::digest::SHA512_256, &bytes);
    Ok(base32::encode(digest.as_ref(), false))
}

fn sign<T: Serialize>(claims: &T, issuer: &KeyPair) -> Result<String, JwtError> {
    let header = format!(r#"{{"typ":"{TOKEN_TYPE_JWT}","alg":"{ALGORITHM_NKEY}"}}"#);
    let payload = json::to_vec(claims).map_err(|e| JwtError::InvalidClaims(e.to_string()))?;
    let to_sign = format!("{}.{}", B64.encode(header), B64.encode(payload));
    let sig = issuer.sign(to_sign.as_bytes()).map_err(JwtError::Sign)?;
    Ok(format!("{to_sign}.{}", B64.encode(sig)))
}
