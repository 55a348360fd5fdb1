//! NATS JWT v2: the claims that operator mode is built on (operator → account → user chains,
//! activation tokens, auth callout requests and responses), with decoding that verifies the
//! signature and the issuer's key kind, time validation, encoding and signing, and the creds
//! file format.
//!
//! The types mirror `github.com/nats-io/jwt/v2` field for field, and are serialized the way Go's
//! `encoding/json` marshals them (same names, same `omitempty` behaviour, same field order, same
//! HTML escaping), so that a token made by `nsc` decodes here and re-encodes to the same claims,
//! and a token signed here is accepted by nats-server and `nsc`.
//!
//! Entry points: [`decode`] (and the per-kind `decode_*` functions), [`validate`], [`encode`],
//! [`parse_creds`] and [`format_creds`].

mod account;
mod activation;
mod authorization;
mod base32;
mod claims;
mod creds;
mod decode;
mod encode;
mod error;
mod exports;
mod imports;
mod json;
mod keys;
mod operator;
mod revocation;
mod signing_keys;
mod types;
mod user;
mod validate;

pub use account::{
    ANY_ACCOUNT, Account, AccountClaims, AccountLimits, CLUSTER_TRAFFIC_OWNER,
    CLUSTER_TRAFFIC_SYSTEM, ExternalAuthorization, JetStreamLimits, MsgTrace, OperatorLimits,
    WeightedMapping,
};
pub use activation::{Activation, ActivationClaims};
pub use authorization::{
    AuthorizationRequest, AuthorizationRequestClaims, AuthorizationResponse,
    AuthorizationResponseClaims, ClientInformation, ClientTls, ConnectOptions, ServerId,
};
pub use claims::{ClaimSet, ClaimType, Claims, ClaimsData, GenericClaims, GenericFields, Payload};
pub use creds::{
    Creds, decorate_seed, format_creds, format_jwt, parse_creds, parse_decorated_jwt,
    parse_decorated_nkey,
};
pub use decode::{
    MAX_TOKEN_SIZE, decode, decode_account, decode_activation, decode_authorization_request,
    decode_authorization_response, decode_operator, decode_user,
};
pub use encode::{encode, encode_at, encode_generic, encode_generic_at};
pub use error::JwtError;
pub use exports::{Export, ResponseType, SamplingRate, ServiceLatency};
pub use imports::Import;
pub use keys::{KeyKind, key_kind};
pub use operator::{Operator, OperatorClaims};
pub use revocation::{ALL, RevocationList};
pub use signing_keys::{ScopeKind, SigningKeys, UserScope};
pub use types::{
    ExportType, Info, Limits, NO_LIMIT, NatsLimits, Permission, Permissions, ResponsePermission,
    TimeRange, UserLimits, UserPermissionLimits,
};
pub use user::{
    CONNECTION_TYPE_IN_PROCESS, CONNECTION_TYPE_LEAFNODE, CONNECTION_TYPE_LEAFNODE_WS,
    CONNECTION_TYPE_MQTT, CONNECTION_TYPE_MQTT_WS, CONNECTION_TYPE_STANDARD,
    CONNECTION_TYPE_WEBSOCKET, User, UserClaims,
};
pub use validate::{TimeError, now_unix, validate};

/// Re-exported so that callers name the same key type this crate signs and verifies with.
pub use nkeys;
