//! Operator mode for Account and User resources: the operator's own keys, account and user
//! JWTs built from the specs, `.creds` files, and pushes to the servers' resolver.
//!
//! Everything about JWTs (claims types, signing, verification, the creds format) is the
//! broker's crate `natrix-jwt`, so the operator signs exactly what natrix-server (and
//! nats-server, and `nsc`) verify. This module only maps specs to claims and keeps keys.
//!
//! - [`keys`]: the per-NatsCluster operator identity (operator key, its signing key, the
//!   system account and the operator's system user) and each Account's keys, as Secret data.
//! - [`claims`]: specs → account and user claims, subject checks, import cycle detection.
//! - [`push`]: `$SYS.REQ.CLAIMS.UPDATE` with the system user, answers checked.

pub mod claims;
pub mod keys;
pub mod push;

/// Why keys or claims could not be made. Spec problems are reported on the resource in
/// words; key problems mean a Secret was edited by hand or damaged.
#[derive(Debug, thiserror::Error)]
pub enum AccountsError {
    /// A value in the spec the schema could not check (a subject, a quantity, a time).
    #[error("{0}")]
    Spec(String),
    /// A key Secret lacks a key or holds something that is not a seed or JWT.
    #[error("Secret {secret}: {problem}")]
    BadSecret { secret: String, problem: String },
    /// natrix-jwt refused to sign or decode.
    #[error("JWT: {0}")]
    Jwt(#[from] natrix_jwt::JwtError),
    /// nkeys refused to make or read a key.
    #[error("nkey: {0}")]
    NKey(String),
}
