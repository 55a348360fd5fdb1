//! Scaling a JetStream cluster down without losing a replica.
//!
//! A StatefulSet scale-down deletes the highest pods at once. For a JetStream cluster that
//! is a server gone without a word: the meta group still counts it (so a 3-server group
//! shrunk to 2 has no quorum margin left), and every stream replica it held is missing
//! until someone runs `nats server raft peer-remove`. nats-server's Helm chart users do
//! this by hand; the operator does it for them:
//!
//! 1. while `spec.replicas` is below the pods that run, the StatefulSet keeps its size;
//! 2. each leaving server is removed from the meta group with `$JS.API.SERVER.REMOVE`
//!    (system account), which places a new replica of each of its streams on a server
//!    that stays;
//! 3. once the leaving servers hold no stream and every staying server's `/healthz` says
//!    its replicas are current, the StatefulSet shrinks.
//!
//! The request needs a system-account user: the operator has one in operator mode (it
//! made the keys). Without it the cluster shrinks at once and a Warning event says what
//! to run by hand.

use std::time::Duration;

use futures::future::BoxFuture;
use serde_json::json;

use crate::crd::PodConfig;

/// `$JS.API.SERVER.REMOVE`, answered by the meta leader in the system account.
pub const SERVER_REMOVE: &str = "$JS.API.SERVER.REMOVE";

/// nats-server's `JSClusterServerNotMemberErr`: the server has left already.
pub const NOT_MEMBER: u64 = 10044;

/// Requests in the system account (a trait so tests can stand in for NATS).
pub trait SystemRequests: Send + Sync {
    /// Removes `server` from the meta group of the servers at `url`, as the system user
    /// of `creds`. A server that is not (or no longer) a member counts as removed.
    fn server_remove<'a>(
        &'a self,
        url: &'a str,
        creds: &'a str,
        server: &'a str,
    ) -> BoxFuture<'a, Result<(), String>>;
}

/// The real one: a NATS connection per request.
pub struct NatsSystem {
    pub wait: Duration,
}

/// Reads a `SERVER.REMOVE` answer.
pub fn check_remove_answer(payload: &[u8]) -> Result<(), String> {
    let v: serde_json::Value = serde_json::from_slice(payload).map_err(|e| {
        format!(
            "unreadable answer {:?}: {e}",
            String::from_utf8_lossy(payload)
        )
    })?;
    if let Some(e) = v.get("error").filter(|e| !e.is_null()) {
        if e["err_code"].as_u64() == Some(NOT_MEMBER) {
            return Ok(());
        }
        return Err(format!(
            "{} (code {})",
            e["description"].as_str().unwrap_or("refused"),
            e["err_code"].as_u64().unwrap_or_default()
        ));
    }
    if v["success"].as_bool() == Some(true) {
        Ok(())
    } else {
        Err(format!(
            "answer without success: {}",
            String::from_utf8_lossy(payload)
        ))
    }
}

impl SystemRequests for NatsSystem {
    fn server_remove<'a>(
        &'a self,
        url: &'a str,
        creds: &'a str,
        server: &'a str,
    ) -> BoxFuture<'a, Result<(), String>> {
        Box::pin(async move {
            let options = async_nats::ConnectOptions::with_credentials(creds)
                .map_err(|e| format!("system user credentials: {e}"))?
                .name("natrix-operator")
                .connection_timeout(self.wait)
                .request_timeout(Some(self.wait));
            let client = tokio::time::timeout(self.wait, options.connect(url))
                .await
                .map_err(|_| format!("no connection to {url} within {:?}", self.wait))?
                .map_err(|e| format!("connecting to {url}: {e}"))?;
            let body = json!({ "peer": server }).to_string();
            let answer = client
                .request(SERVER_REMOVE, body.into())
                .await
                .map_err(|e| format!("{SERVER_REMOVE} for {server}: {e}"))?;
            check_remove_answer(&answer.payload)
        })
    }
}

/// Where a scale-down stands, from what the pods said in the last status.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Drain {
    /// The leaving servers hold no stream and the staying ones are current: shrink.
    Done,
    /// Still moving: why, in words.
    Waiting(String),
}

/// Whether the servers from ordinal `keep` up may go. `pods` is the last status's view
/// (the pods are asked again on every reconcile; a scale-down requeues quickly).
pub fn drained(pods: &[PodConfig], base: &str, keep: i32) -> Drain {
    let ordinal = |p: &PodConfig| {
        p.pod
            .strip_prefix(base)
            .and_then(|s| s.strip_prefix('-'))
            .and_then(|s| s.parse::<i32>().ok())
    };
    let mut waiting = Vec::new();
    for p in pods {
        let Some(i) = ordinal(p) else { continue };
        if i >= keep {
            match p.streams {
                Some(0) | None => {}
                Some(n) => waiting.push(format!("{} still holds {n} stream replicas", p.pod)),
            }
        } else if p.jetstream.as_deref() != Some("Current") {
            waiting.push(format!(
                "{} is catching up ({})",
                p.pod,
                p.jetstream.as_deref().unwrap_or("no answer yet")
            ));
        }
    }
    let staying = pods
        .iter()
        .filter(|p| ordinal(p).is_some_and(|i| i < keep))
        .count();
    if staying < usize::try_from(keep).unwrap_or(0) {
        waiting.push(format!(
            "{staying} of {keep} staying servers reported so far"
        ));
    }
    if waiting.is_empty() {
        Drain::Done
    } else {
        Drain::Waiting(waiting.join("; "))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pod(name: &str, js: &str, streams: u64) -> PodConfig {
        PodConfig {
            pod: name.into(),
            config_digest: None,
            applied: true,
            jetstream: Some(js.into()),
            streams: Some(streams),
        }
    }

    #[test]
    fn drained_once_leavers_are_empty_and_stayers_current() {
        let pods = [
            pod("js-0", "Current", 2),
            pod("js-1", "Current", 2),
            pod("js-2", "Current", 0),
        ];
        assert_eq!(drained(&pods, "js", 2), Drain::Done);
    }

    #[test]
    fn waits_for_a_leaver_with_streams_and_a_stayer_catching_up() {
        let pods = [
            pod("js-0", "Current", 2),
            pod("js-1", "JetStream stream 'A > S' is not current", 2),
            pod("js-2", "Current", 1),
        ];
        let Drain::Waiting(why) = drained(&pods, "js", 2) else {
            panic!("drained too early")
        };
        assert!(why.contains("js-2 still holds 1 stream replicas"), "{why}");
        assert!(why.contains("js-1 is catching up"), "{why}");
    }

    #[test]
    fn a_missing_stayer_is_waited_for() {
        let pods = [pod("js-0", "Current", 1), pod("js-2", "Current", 0)];
        assert!(matches!(drained(&pods, "js", 2), Drain::Waiting(_)));
    }

    #[test]
    fn remove_answers() {
        assert!(check_remove_answer(br#"{"type":"io.nats.jetstream.api.v1.meta_server_remove_response","success":true}"#).is_ok());
        assert!(check_remove_answer(br#"{"error":{"code":400,"err_code":10044,"description":"server is not a member of the cluster"}}"#).is_ok());
        let e = check_remove_answer(br#"{"error":{"code":503,"err_code":10008,"description":"JetStream system temporarily unavailable"}}"#).unwrap_err();
        assert!(
            e.contains("temporarily unavailable") && e.contains("10008"),
            "{e}"
        );
        assert!(check_remove_answer(b"nope").is_err());
    }
}
