//! Pushes account JWTs to a NatsCluster's servers over `$SYS.REQ.CLAIMS.UPDATE`, as `nsc
//! push` does, with the operator's own system-account user.
//!
//! Every server with a full resolver answers the request (it travels over routes), so the
//! push gathers answers until `expected` servers have answered or the wait is over, and
//! fails if any server refused the JWT or none answered. An answer is
//! `{"data":{"account":…,"code":200,"message":"jwt updated"}}` or
//! `{"error":{"code":…,"description":…}}`.

use std::time::Duration;

use futures::StreamExt;
use serde::Deserialize;

/// The subject servers with a full resolver take account JWTs on.
pub const CLAIMS_UPDATE: &str = "$SYS.REQ.CLAIMS.UPDATE";

/// Why a push did not go through; the message is what the Account status shows.
#[derive(Debug, thiserror::Error)]
pub enum PushError {
    #[error("cannot use the operator's system user credentials: {0}")]
    Credentials(String),
    #[error("cannot connect to {url}: {reason}")]
    Connect { url: String, reason: String },
    #[error("push to {url} failed: {reason}")]
    Io { url: String, reason: String },
    #[error(
        "no server at {url} answered on $SYS.REQ.CLAIMS.UPDATE within {waited:?} (are the servers in operator mode yet?)"
    )]
    NoAnswer { url: String, waited: Duration },
    #[error("a server refused the account JWT: {0}")]
    Refused(String),
}

#[derive(Deserialize)]
struct Answer {
    #[serde(default)]
    data: Option<AnswerData>,
    #[serde(default)]
    error: Option<AnswerError>,
}

#[derive(Deserialize)]
struct AnswerData {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    message: String,
}

#[derive(Deserialize)]
struct AnswerError {
    #[serde(default)]
    code: i64,
    #[serde(default)]
    description: String,
}

/// Reads one answer: `Ok(())` for a success (code 200), the reason otherwise.
pub fn check_answer(payload: &[u8]) -> Result<(), String> {
    let a: Answer = serde_json::from_slice(payload).map_err(|e| {
        format!(
            "unreadable answer {:?}: {e}",
            String::from_utf8_lossy(payload)
        )
    })?;
    match (a.error, a.data) {
        (Some(e), _) => Err(format!("{} (code {})", e.description, e.code)),
        (None, Some(d)) if d.code == 200 || d.code == 0 => Ok(()),
        (None, Some(d)) => Err(format!("{} (code {})", d.message, d.code)),
        (None, None) => Err(format!(
            "answer without data or error: {:?}",
            String::from_utf8_lossy(payload)
        )),
    }
}

/// Pushes `jwt` to the servers behind `url`, waiting up to `wait` for `expected` answers.
/// Returns how many servers accepted it.
pub async fn push_account(
    url: &str,
    system_user_creds: &str,
    jwt: &str,
    expected: usize,
    wait: Duration,
) -> Result<usize, PushError> {
    let options = async_nats::ConnectOptions::with_credentials(system_user_creds)
        .map_err(|e| PushError::Credentials(e.to_string()))?
        .name("natrix-operator")
        .connection_timeout(wait)
        .retry_on_initial_connect()
        .max_reconnects(Some(1));
    let client = tokio::time::timeout(wait, options.connect(url))
        .await
        .map_err(|_| PushError::Connect {
            url: url.to_string(),
            reason: format!("no connection within {wait:?}"),
        })?
        .map_err(|e| PushError::Connect {
            url: url.to_string(),
            reason: e.to_string(),
        })?;
    let io = |e: &dyn std::fmt::Display| PushError::Io {
        url: url.to_string(),
        reason: e.to_string(),
    };
    let inbox = client.new_inbox();
    let mut answers = client.subscribe(inbox.clone()).await.map_err(|e| io(&e))?;
    client
        .publish_with_reply(CLAIMS_UPDATE, inbox, jwt.to_string().into())
        .await
        .map_err(|e| io(&e))?;
    client.flush().await.map_err(|e| io(&e))?;
    let deadline = tokio::time::Instant::now() + wait;
    let mut accepted = 0;
    let mut refused = Vec::new();
    while accepted + refused.len() < expected.max(1) {
        match tokio::time::timeout_at(deadline, answers.next()).await {
            Ok(Some(msg)) => match check_answer(&msg.payload) {
                Ok(()) => accepted += 1,
                Err(reason) => refused.push(reason),
            },
            Ok(None) | Err(_) => break,
        }
    }
    drop(answers);
    drop(client);
    if !refused.is_empty() {
        return Err(PushError::Refused(refused.join("; ")));
    }
    if accepted == 0 {
        return Err(PushError::NoAnswer {
            url: url.to_string(),
            waited: wait,
        });
    }
    Ok(accepted)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn answers_are_read_as_nats_server_writes_them() {
        assert!(check_answer(br#"{"server":{"name":"n"},"data":{"account":"A","code":200,"message":"jwt updated"}}"#).is_ok());
        assert_eq!(
            check_answer(br#"{"error":{"account":"A","code":500,"description":"jwt update resulted in error"}}"#),
            Err("jwt update resulted in error (code 500)".to_string())
        );
        assert!(check_answer(b"not json").is_err());
        assert!(check_answer(b"{}").is_err());
    }
}
