//! Auth callout (`authorization { auth_callout { issuer, account, auth_users, xkey } }`):
//! the server asks a service of the operator's own which user a connecting client is.
//!
//! As nats-server does it: the server makes a fresh user nkey for the client, signs an
//! authorization request JWT with its own server key (who the client is, what its CONNECT
//! said, the TLS state) and sends it on `$SYS.REQ.USER.AUTH` in the callout account,
//! sealed with the service's xkey when one is configured (`Nats-Server-Xkey` names the
//! server's). The service answers with an authorization response JWT signed by the
//! issuer: either an error or a user JWT for that fresh nkey, whose audience names the
//! account to put the client in and whose permissions it gets. Anything that does not
//! check out is an `Authorization Violation`; the reason goes to the log.

use std::sync::Arc;
use std::time::Duration;

use natrix_config::options::AuthCallout;
use natrix_jwt::nkeys::{KeyPair, XKey};
use natrix_jwt::{
    AuthorizationRequest, AuthorizationRequestClaims, ClientInformation, ConnectOptions, ServerId,
    UserClaims,
};

use crate::auth::Permissions;
use crate::server::Server;
use crate::server::internal::InternalClient;

/// The subject the request goes to, in the callout account.
pub const SUBJECT: &str = "$SYS.REQ.USER.AUTH";
/// The request JWT's audience.
const AUDIENCE: &str = "nats-authorization-request";
/// The header naming the server's xkey when the request is sealed.
const XKEY_HEADER: &str = "Nats-Server-Xkey";

/// What the server knows of the connecting client.
pub struct Caller {
    pub cid: u64,
    pub host: String,
    pub connect: ConnectOptions,
    pub nonce: String,
    pub tls: Option<natrix_jwt::ClientTls>,
}

/// The user the service chose.
#[derive(Debug)]
pub struct Chosen {
    pub user: String,
    pub account: String,
    pub permissions: Option<Arc<Permissions>>,
    /// Unix seconds, 0 for none.
    pub expires: i64,
}

/// Asks the callout service about `caller`; `Err` carries the reason for the log.
pub async fn authorize(
    server: &Arc<Server>,
    config: &AuthCallout,
    caller: Caller,
    timeout: Duration,
) -> Result<Chosen, String> {
    let account_name = if config.account.is_empty() {
        "$G"
    } else {
        config.account.as_str()
    };
    let account = server
        .account(account_name)
        .ok_or_else(|| format!("No valid account {account_name:?} for auth callout request"))?;
    let service_xkey = if config.xkey.is_empty() {
        None
    } else {
        Some(XKey::from_public_key(&config.xkey).map_err(|e| format!("auth callout xkey: {e}"))?)
    };
    let user_key = KeyPair::new_user();
    let user_nkey = user_key.public_key();

    let mut claims = AuthorizationRequestClaims::with_subject(config.issuer.clone());
    claims.data.audience = AUDIENCE.to_owned();
    claims.data.expires =
        natrix_jwt::now_unix() + i64::try_from(timeout.as_secs()).unwrap_or(2).max(1);
    let (opts, _) = server.options();
    claims.nats = AuthorizationRequest {
        server: ServerId {
            name: server.name().to_owned(),
            host: opts.host.clone(),
            id: server.id().to_owned(),
            version: crate::server::NATS_COMPAT_VERSION.to_owned(),
            cluster: server.cluster_name().to_owned(),
            tags: opts.config.server_tags.clone(),
            xkey: if service_xkey.is_some() {
                server.xkey().public_key()
            } else {
                String::new()
            },
        },
        user_nkey: user_nkey.clone(),
        client_information: ClientInformation {
            host: caller.host,
            id: caller.cid,
            user: caller.connect.username.clone(),
            name: caller.connect.name.clone(),
            kind: "Client".into(),
            client_type: "nats".into(),
            nonce: if caller.connect.signed_nonce.is_empty() {
                String::new()
            } else {
                caller.nonce
            },
            ..ClientInformation::default()
        },
        connect_options: caller.connect,
        tls: caller.tls,
        ..claims.nats
    };
    let token = natrix_jwt::encode(&claims, server.key()).map_err(|e| {
        format!("Error encoding auth request claim on account {account_name:?}: {e}")
    })?;
    let (payload, headers) = match &service_xkey {
        Some(recipient) => {
            let sealed = server
                .xkey()
                .seal(token.as_bytes(), recipient)
                .map_err(|e| format!("Error encrypting auth request claim: {e}"))?;
            let headers = format!(
                "NATS/1.0\r\n{XKEY_HEADER}: {}\r\n\r\n",
                server.xkey().public_key()
            );
            (sealed, headers.into_bytes())
        }
        None => (token.into_bytes(), Vec::new()),
    };

    let (tx, rx) = tokio::sync::oneshot::channel();
    let tx = std::sync::Mutex::new(Some(tx));
    let inbox = format!("_INBOX.{}", crate::server::nuid());
    let client = InternalClient::connect_to(server, account.clone(), move |m| {
        if let Some(tx) = tx.lock().ok().and_then(|mut t| t.take()) {
            let _ = tx.send(m.payload);
        }
    })
    .map_err(|e| format!("Error setting up reply subscription for auth request: {e}"))?;
    client
        .subscribe(&inbox, None)
        .map_err(|e| format!("Error setting up reply subscription for auth request: {e}"))?;
    client.publish(SUBJECT, Some(&inbox), &headers, &payload);
    let reply = tokio::time::timeout(timeout, rx).await;
    client.close();
    let reply = match reply {
        Ok(Ok(r)) => r,
        _ => {
            return Err(format!(
                "Authorization callout response not received in time on account {account_name:?}"
            ));
        }
    };
    decode_reply(
        server,
        config,
        account_name,
        &reply,
        service_xkey.as_ref(),
        &user_nkey,
    )
}

/// Checks the service's answer: for our fresh user, for this server, signed by the
/// issuer, with a user JWT whose audience names an existing account.
fn decode_reply(
    server: &Server,
    config: &AuthCallout,
    account: &str,
    reply: &[u8],
    service_xkey: Option<&XKey>,
    user_nkey: &str,
) -> Result<Chosen, String> {
    if reply.is_empty() {
        return Err(format!(
            "auth callout violation: \"no reason supplied\" on account {account:?}"
        ));
    }
    let opened;
    let reply = match service_xkey {
        Some(sender) if !reply.starts_with(b"eyJ") => {
            opened = server.xkey().open(reply, sender).map_err(|e| {
                format!("error decrypting auth callout response on account {account:?}: {e}")
            })?;
            &opened[..]
        }
        _ => reply,
    };
    let text =
        std::str::from_utf8(reply).map_err(|_| "auth callout response is not text".to_owned())?;
    let response =
        natrix_jwt::decode_authorization_response(text.trim()).map_err(|e| e.to_string())?;
    if response.data.subject != user_nkey {
        return Err(
            "auth callout violation: auth callout response is not for expected user".into(),
        );
    }
    if response.data.audience != server.id() {
        return Err("auth callout violation: auth callout response is not for server".into());
    }
    if !response.nats.error.is_empty() {
        return Err(format!(
            "auth callout service returned an error: {}",
            response.nats.error
        ));
    }
    let user: UserClaims =
        natrix_jwt::decode_user(&response.nats.jwt).map_err(|e| e.to_string())?;
    natrix_jwt::validate(&user, natrix_jwt::now_unix())
        .map_err(|e| format!("Error validating user JWT: {e}"))?;
    if user.data.subject != user_nkey {
        return Err(format!(
            "Expected authorized user of {user_nkey:?} but got {:?} on account {account:?}",
            user.data.subject
        ));
    }
    if !user.nats.issuer_account.is_empty() {
        return Err(format!(
            "error non operator mode account {account:?}: attempted to use issuer_account"
        ));
    }
    if user.data.issuer != config.issuer {
        return Err(format!(
            "wrong issuer for auth callout response on account {account:?}, expected {:?} got {:?}",
            config.issuer, user.data.issuer
        ));
    }
    let placement = user.data.audience.clone();
    if server.account(&placement).is_none() {
        return Err(format!(
            "no valid account {placement:?} for auth callout response on account {account:?}"
        ));
    }
    let name = if user.data.name.is_empty() {
        user.data.subject.clone()
    } else {
        user.data.name.clone()
    };
    Ok(Chosen {
        user: name,
        account: placement,
        permissions: crate::trust::permissions_of(&user.nats.permission_limits.permissions),
        expires: user.data.expires,
    })
}
