//! Checks nats-server makes when a server is created from options (`validateOptions`),
//! not while the file is parsed: `-t` passes a config that fails them, and both start-up
//! and reload fail with the message alone (no file position). Texts are nats-server's.
//!
//! Only the checks natrix has grown so far live here; more of `validateOptions` joins
//! as the features it guards do.

use crate::Options;

/// A configuration that parses but cannot run.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ValidationError {
    #[error("no_auth_user not compatible with Trusted Operator")]
    NoAuthUserWithOperator,
    #[error("no_auth_user: \"{0}\" present, but users/nkeys are not defined")]
    NoAuthUserWithoutUsers(String),
    #[error(
        "no_auth_user: \"{0}\" not present as user or nkey in authorization block or account configuration"
    )]
    NoAuthUserUnknown(String),
    #[error("jetstream cluster requires `server_name` to be set")]
    JetStreamClusterNoServerName,
    #[error("jetstream cluster requires `cluster.name` to be set")]
    JetStreamClusterNoName,
    /// natrix's own: Raft traffic is addressed to `$NRG.<server name>.…`.
    #[error("jetstream cluster requires a `server_name` without spaces, '.', '*' or '>'")]
    JetStreamClusterServerNameToken,
    #[error("websocket requires TLS configuration")]
    WebsocketNoTls,
    #[error("websocket authentication username not compatible with presence of users/nkeys")]
    WebsocketUsernameWithUsers,
    #[error("websocket authentication token not compatible with presence of users/nkeys")]
    WebsocketTokenWithUsers,
    #[error(
        "trusted operators or trusted keys configuration is required for JWT authentication via cookie \"{0}\""
    )]
    WebsocketJwtCookieWithoutTrust(String),
    #[error("mqtt authentication username not compatible with presence of users/nkeys")]
    MqttUsernameWithUsers,
    #[error("mqtt authentication token not compatible with presence of users/nkeys")]
    MqttTokenWithUsers,
}

/// nats-server's `validateOptions`, as far as natrix implements its features.
pub fn validate(o: &Options) -> Result<(), ValidationError> {
    no_auth_user(o, &o.no_auth_user)?;
    jetstream_cluster(o)?;
    websocket(o)?;
    mqtt(o)
}

/// nats-server's `validateMQTTOptions`, the authentication part: the block's
/// `no_auth_user` names a configured user, and its own `username`/`token` cannot sit
/// beside a users list (which user would they be?).
pub fn mqtt(o: &Options) -> Result<(), ValidationError> {
    let m = &o.mqtt;
    if m.port == 0 {
        return Ok(());
    }
    no_auth_user(o, &m.no_auth_user)?;
    override_beside_users(
        o,
        &m.username,
        &m.token,
        [
            ValidationError::MqttUsernameWithUsers,
            ValidationError::MqttTokenWithUsers,
        ],
    )
}

/// A listener block's own `username` or `token` beside a users or nkeys list: refused
/// (`errs`: the error for each), since nothing says which user they would be.
fn override_beside_users(
    o: &Options,
    username: &str,
    token: &str,
    errs: [ValidationError; 2],
) -> Result<(), ValidationError> {
    if o.users.is_empty() && o.nkeys.is_empty() {
        return Ok(());
    }
    let [user_err, token_err] = errs;
    if !username.is_empty() {
        return Err(user_err);
    }
    if !token.is_empty() {
        return Err(token_err);
    }
    Ok(())
}

/// nats-server's `validateWebsocketOptions`: a WebSocket listener is TLS unless
/// `no_tls` says otherwise; its `no_auth_user` names a configured user; its own
/// `username`/`token` cannot sit beside a users list (which user would they be?); a
/// `jwt_cookie` needs operators or trusted keys to verify the JWT with.
pub fn websocket(o: &Options) -> Result<(), ValidationError> {
    let w = &o.websocket;
    if w.port == 0 {
        return Ok(());
    }
    if w.tls.is_none() && !w.no_tls {
        return Err(ValidationError::WebsocketNoTls);
    }
    no_auth_user(o, &w.no_auth_user)?;
    override_beside_users(
        o,
        &w.username,
        &w.token,
        [
            ValidationError::WebsocketUsernameWithUsers,
            ValidationError::WebsocketTokenWithUsers,
        ],
    )?;
    if !w.jwt_cookie.is_empty() && o.operators.is_empty() && o.trusted_keys.is_empty() {
        return Err(ValidationError::WebsocketJwtCookieWithoutTrust(
            w.jwt_cookie.clone(),
        ));
    }
    Ok(())
}

/// nats-server's `validateJetStreamOptions`: a clustered JetStream (JetStream with a
/// cluster listener) needs a server name, which Raft memberships record, and a cluster
/// name, which placement uses.
pub fn jetstream_cluster(o: &Options) -> Result<(), ValidationError> {
    if !o.jetstream.enabled || o.cluster.port == 0 {
        return Ok(());
    }
    if o.server_name.is_empty() {
        return Err(ValidationError::JetStreamClusterNoServerName);
    }
    if o.cluster.name.is_empty() {
        return Err(ValidationError::JetStreamClusterNoName);
    }
    if o.server_name
        .contains(|c: char| c == '.' || c == '*' || c == '>' || c.is_whitespace())
    {
        return Err(ValidationError::JetStreamClusterServerNameToken);
    }
    Ok(())
}

/// nats-server's `validateNoAuthUser`: the no_auth_user must be a configured user (of
/// the users list or of an account) or nkey; the top-level single `user` does not count.
pub fn no_auth_user(o: &Options, name: &str) -> Result<(), ValidationError> {
    if name.is_empty() {
        return Ok(());
    }
    if !o.operators.is_empty() {
        return Err(ValidationError::NoAuthUserWithOperator);
    }
    if o.users.is_empty() && o.nkeys.is_empty() {
        return Err(ValidationError::NoAuthUserWithoutUsers(name.to_owned()));
    }
    let known =
        o.users.iter().any(|u| u.username == name) || o.nkeys.iter().any(|n| n.nkey == name);
    if known {
        Ok(())
    } else {
        Err(ValidationError::NoAuthUserUnknown(name.to_owned()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::options::{NkeyUser, User};

    #[test]
    fn no_auth_user_must_name_a_user_or_nkey() {
        let mut o = Options::default();
        assert_eq!(validate(&o), Ok(()));
        o.no_auth_user = "x".into();
        assert_eq!(
            validate(&o).map_err(|e| e.to_string()),
            Err(r#"no_auth_user: "x" present, but users/nkeys are not defined"#.into())
        );
        o.users.push(User {
            username: "a".into(),
            ..User::default()
        });
        assert_eq!(
            validate(&o).map_err(|e| e.to_string()),
            Err(r#"no_auth_user: "x" not present as user or nkey in authorization block or account configuration"#.into())
        );
        o.nkeys.push(NkeyUser {
            nkey: "x".into(),
            ..NkeyUser::default()
        });
        assert_eq!(validate(&o), Ok(()));
        o.operators.push("op.jwt".into());
        assert_eq!(validate(&o), Err(ValidationError::NoAuthUserWithOperator));
    }

    #[test]
    fn mqtt_block_authentication() {
        let mut o = Options::default();
        o.mqtt.username = "u".into();
        // Without an MQTT port nothing in the block is checked.
        assert_eq!(validate(&o), Ok(()));
        o.mqtt.port = 1883;
        assert_eq!(validate(&o), Ok(()));
        o.users.push(User {
            username: "a".into(),
            ..User::default()
        });
        assert_eq!(validate(&o), Err(ValidationError::MqttUsernameWithUsers));
        o.mqtt.username.clear();
        o.mqtt.token = "t".into();
        assert_eq!(validate(&o), Err(ValidationError::MqttTokenWithUsers));
        o.mqtt.token.clear();
        o.mqtt.no_auth_user = "b".into();
        assert_eq!(
            validate(&o),
            Err(ValidationError::NoAuthUserUnknown("b".into()))
        );
        o.mqtt.no_auth_user = "a".into();
        assert_eq!(validate(&o), Ok(()));
    }
}
