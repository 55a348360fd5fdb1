//! Auth callout claims: the request the server sends to an authorization service (issued by the
//! server's key) and the response the service returns (issued by an account key).
//! Go: `authorization_claims.go`.

use crate::ClaimType;
use crate::claims::{ClaimSet, GenericFields, Payload, generic_accessors};
use crate::json::is_default;
use crate::keys::KeyKind;
use serde::{Deserialize, Serialize};

/// The server asking.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerId {
    pub name: String,
    pub host: String,
    pub id: String,
    #[serde(skip_serializing_if = "is_default")]
    pub version: String,
    #[serde(skip_serializing_if = "is_default")]
    pub cluster: String,
    #[serde(skip_serializing_if = "is_default")]
    pub tags: Vec<String>,
    /// The server's curve key, when it wants the response encrypted.
    #[serde(skip_serializing_if = "is_default")]
    pub xkey: String,
}

/// The connecting client, as the server sees it.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientInformation {
    #[serde(skip_serializing_if = "is_default")]
    pub host: String,
    #[serde(skip_serializing_if = "is_default")]
    pub id: u64,
    #[serde(skip_serializing_if = "is_default")]
    pub user: String,
    #[serde(skip_serializing_if = "is_default")]
    pub name: String,
    #[serde(skip_serializing_if = "is_default")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub name_tag: String,
    #[serde(skip_serializing_if = "is_default")]
    pub kind: String,
    #[serde(rename = "type", skip_serializing_if = "is_default")]
    pub client_type: String,
    #[serde(rename = "mqtt_id", skip_serializing_if = "is_default")]
    pub mqtt: String,
    #[serde(skip_serializing_if = "is_default")]
    pub nonce: String,
}

/// The client's CONNECT options that matter for authentication.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConnectOptions {
    #[serde(skip_serializing_if = "is_default")]
    pub jwt: String,
    #[serde(skip_serializing_if = "is_default")]
    pub nkey: String,
    #[serde(rename = "sig", skip_serializing_if = "is_default")]
    pub signed_nonce: String,
    #[serde(rename = "auth_token", skip_serializing_if = "is_default")]
    pub token: String,
    #[serde(rename = "user", skip_serializing_if = "is_default")]
    pub username: String,
    #[serde(rename = "pass", skip_serializing_if = "is_default")]
    pub password: String,
    #[serde(skip_serializing_if = "is_default")]
    pub name: String,
    #[serde(skip_serializing_if = "is_default")]
    pub lang: String,
    #[serde(skip_serializing_if = "is_default")]
    pub version: String,
    pub protocol: i64,
}

/// The client's TLS session, PEM certificates.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientTls {
    #[serde(skip_serializing_if = "is_default")]
    pub version: String,
    #[serde(skip_serializing_if = "is_default")]
    pub cipher: String,
    #[serde(skip_serializing_if = "is_default")]
    pub certs: Vec<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub verified_chains: Vec<Vec<String>>,
}

/// The `nats` section of an auth callout request.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthorizationRequest {
    #[serde(rename = "server_id")]
    pub server: ServerId,
    pub user_nkey: String,
    #[serde(rename = "client_info")]
    pub client_information: ClientInformation,
    #[serde(rename = "connect_opts")]
    pub connect_options: ConnectOptions,
    #[serde(rename = "client_tls", skip_serializing_if = "Option::is_none")]
    pub tls: Option<ClientTls>,
    #[serde(skip_serializing_if = "is_default")]
    pub request_nonce: String,
    #[serde(flatten)]
    pub generic: GenericFields,
}

impl Payload for AuthorizationRequest {
    const CLAIM_TYPE: &'static str = ClaimType::AUTHORIZATION_REQUEST;
    const ISSUERS: &'static [KeyKind] = &[KeyKind::Server];
    generic_accessors!();
}

/// An auth callout request; the subject is the user nkey the server generated.
pub type AuthorizationRequestClaims = ClaimSet<AuthorizationRequest>;

/// The `nats` section of an auth callout response: a user JWT or an error.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AuthorizationResponse {
    #[serde(skip_serializing_if = "is_default")]
    pub jwt: String,
    #[serde(skip_serializing_if = "is_default")]
    pub error: String,
    #[serde(skip_serializing_if = "is_default")]
    pub issuer_account: String,
    #[serde(flatten)]
    pub generic: GenericFields,
}

impl Payload for AuthorizationResponse {
    const CLAIM_TYPE: &'static str = ClaimType::AUTHORIZATION_RESPONSE;
    const ISSUERS: &'static [KeyKind] = &[KeyKind::Account];
    generic_accessors!();
}

/// An auth callout response; subject the user nkey, audience the server's id.
pub type AuthorizationResponseClaims = ClaimSet<AuthorizationResponse>;
