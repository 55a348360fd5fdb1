//! A session's way into JetStream: an internal client bound to the MQTT client's account
//! (as nats-server's per-account `mqttJSA`), which sends JetStream API requests with a
//! reply subject under `$MQTT.JSA.<id>.` and receives the session's consumer deliveries.
//!
//! Everything it receives goes into one channel the session reads in order: replies are
//! matched by their reply subject, deliveries by subscription. A request waits for its
//! reply and keeps the deliveries that arrive meanwhile for the session's main loop.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use base64::Engine as _;
use bytes::Bytes;
use natrix_mqtt::store;
use serde_json::Value;
use tokio::sync::mpsc;

use crate::account::Account;
use crate::server::Server;
use crate::server::internal::{InternalClient, InternalMsg};

/// Why a JetStream request failed.
#[derive(Debug, thiserror::Error)]
pub enum JsaError {
    #[error("timeout waiting for JetStream")]
    Timeout,
    #[error("JetStream error {code}: {description}")]
    Api { code: u64, description: String },
    #[error("invalid JetStream response: {0}")]
    Response(String),
    #[error("{0}")]
    Internal(#[from] crate::server::internal::InternalError),
}

impl JsaError {
    /// nats-server's "no message found" (10037) and "consumer not found" (10014).
    pub fn is_not_found(&self) -> bool {
        matches!(
            self,
            JsaError::Api {
                code: 10037 | 10014 | 10059,
                ..
            }
        )
    }
}

/// A message read back from a stream.
pub struct StoredMsg {
    pub subject: String,
    pub headers: Bytes,
    pub payload: Bytes,
}

pub struct Jsa {
    client: Arc<InternalClient>,
    rx: mpsc::UnboundedReceiver<InternalMsg>,
    reply_prefix: String,
    /// `$JS.API`, or `$JS.<domain>.API` with `mqtt { js_domain }`: the JetStream that
    /// keeps this server's MQTT state, perhaps across a leaf node.
    api: String,
    next: u64,
    timeout: Duration,
    /// Deliveries read while waiting for a reply, for the session's loop.
    pub held: VecDeque<InternalMsg>,
    /// Stores sent without waiting ([`Jsa::send_store`]), whose replies go to the loop.
    pipelined: rustc_hash::FxHashSet<u64>,
}

impl Jsa {
    pub fn connect(
        server: &Arc<Server>,
        account: Arc<Account>,
        timeout: Duration,
        domain: &str,
    ) -> Result<Self, JsaError> {
        let (tx, rx) = mpsc::unbounded_channel();
        let client = InternalClient::connect_to(server, account, move |m| {
            let _ = tx.send(m);
        })?;
        let reply_prefix = format!(
            "{}{}.",
            store::JSA_REPLIES_PREFIX,
            crate::server::new_nonce()
        );
        client.subscribe(&format!("{reply_prefix}*"), None)?;
        let api = if domain.is_empty() {
            "$JS.API".to_owned()
        } else {
            format!("$JS.{domain}.API")
        };
        Ok(Jsa {
            client,
            rx,
            reply_prefix,
            api,
            next: 0,
            timeout,
            held: VecDeque::new(),
            pipelined: rustc_hash::FxHashSet::default(),
        })
    }

    /// The API subject `<api>.<rest>`, e.g. `STREAM.PURGE.<stream>`.
    pub fn api(&self, rest: &str) -> String {
        format!("{}.{rest}", self.api)
    }

    pub fn client(&self) -> &InternalClient {
        &self.client
    }

    /// The next delivery (a held one first); `None` once the client is closed.
    pub async fn recv(&mut self) -> Option<InternalMsg> {
        if let Some(m) = self.held.pop_front() {
            return Some(m);
        }
        self.rx.recv().await
    }

    /// Publishes `payload` on `subject` and waits for the reply's raw body.
    pub async fn request_raw(
        &mut self,
        subject: &str,
        headers: &[u8],
        payload: &[u8],
    ) -> Result<InternalMsg, JsaError> {
        self.next += 1;
        let reply = format!("{}{}", self.reply_prefix, self.next);
        let deadline = tokio::time::Instant::now() + self.timeout;
        // Right after a start, MQTT clients can connect before JetStream subscribes to
        // its API and streams: wait for it rather than send into nothing.
        while !self.client.has_interest(subject) {
            if tokio::time::Instant::now() >= deadline {
                return Err(JsaError::Timeout);
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        self.client.publish(subject, Some(&reply), headers, payload);
        loop {
            let m = tokio::time::timeout_at(deadline, self.rx.recv())
                .await
                .map_err(|_| JsaError::Timeout)?
                .ok_or(JsaError::Timeout)?;
            if m.subject.as_ref() == reply.as_bytes() {
                return Ok(m);
            }
            if m.subject.starts_with(self.reply_prefix.as_bytes())
                && self.token(&m.subject).is_none()
            {
                // A late reply to an earlier request that timed out.
                continue;
            }
            self.held.push_back(m);
        }
    }

    /// Stores a message without waiting for the ack, so that a session's stores go into
    /// the same group commit; the reply reaches the session's loop, where
    /// [`Jsa::take_store_reply`] matches it to the returned token. `None` when nothing
    /// subscribes to `subject` (JetStream not up, or no stream for it).
    pub fn send_store(&mut self, subject: &str, headers: &[u8], payload: &[u8]) -> Option<u64> {
        if !self.client.has_interest(subject) {
            return None;
        }
        self.next += 1;
        let reply = format!("{}{}", self.reply_prefix, self.next);
        self.pipelined.insert(self.next);
        self.client.publish(subject, Some(&reply), headers, payload);
        Some(self.next)
    }

    fn token(&self, subject: &[u8]) -> Option<u64> {
        let n = std::str::from_utf8(subject.strip_prefix(self.reply_prefix.as_bytes())?)
            .ok()?
            .parse()
            .ok()?;
        self.pipelined.contains(&n).then_some(n)
    }

    /// The token and outcome of a pipelined store, if `m` is its reply.
    pub fn take_store_reply(&mut self, m: &InternalMsg) -> Option<(u64, Result<u64, JsaError>)> {
        let n = self.token(&m.subject)?;
        self.pipelined.remove(&n);
        Some((n, store_result(&m.payload)))
    }

    /// A JetStream API request; the reply's JSON, or its `error` as [`JsaError::Api`].
    pub async fn request(&mut self, subject: &str, body: &Value) -> Result<Value, JsaError> {
        let payload = serde_json::to_vec(body).unwrap_or_default();
        let m = self.request_raw(subject, &[], &payload).await?;
        parse_reply(&m.payload)
    }

    /// Stores a message through the stream's subject and waits for the store's ack.
    pub async fn store(
        &mut self,
        subject: &str,
        headers: &[u8],
        payload: &[u8],
    ) -> Result<u64, JsaError> {
        let m = self.request_raw(subject, headers, payload).await?;
        store_result(&m.payload)
    }

    /// Creates the account's MQTT streams where missing (an existing one is left as is).
    pub async fn create_streams(&mut self, replicas: usize) -> Result<(), JsaError> {
        for spec in store::stream_specs(replicas, "") {
            let body = serde_json::to_value(&spec).unwrap_or_default();
            match self
                .request(&self.api(&format!("STREAM.CREATE.{}", spec.name)), &body)
                .await
            {
                // 10058: a stream with that name exists (with another config).
                Ok(_) | Err(JsaError::Api { code: 10058, .. }) => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }

    /// The last message stored on `subject` in `stream`, `None` if there is none.
    pub async fn last_msg(
        &mut self,
        stream: &str,
        subject: &str,
    ) -> Result<Option<StoredMsg>, JsaError> {
        let r = self
            .request(
                &self.api(&format!("STREAM.MSG.GET.{stream}")),
                &serde_json::json!({ "last_by_subj": subject }),
            )
            .await;
        let v = match r {
            Ok(v) => v,
            Err(e) if e.is_not_found() => return Ok(None),
            Err(e) => return Err(e),
        };
        let msg = v
            .get("message")
            .ok_or_else(|| JsaError::Response("no message".into()))?;
        let b64 = |key: &str| -> Bytes {
            msg.get(key)
                .and_then(Value::as_str)
                .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                .map(Bytes::from)
                .unwrap_or_default()
        };
        Ok(Some(StoredMsg {
            subject: msg
                .get("subject")
                .and_then(Value::as_str)
                .unwrap_or(subject)
                .to_owned(),
            headers: b64("hdrs"),
            payload: b64("data"),
        }))
    }

    /// Removes every message on `subject` from `stream`.
    pub async fn purge_subject(&mut self, stream: &str, subject: &str) -> Result<(), JsaError> {
        self.request(
            &self.api(&format!("STREAM.PURGE.{stream}")),
            &serde_json::json!({ "filter": subject }),
        )
        .await
        .map(|_| ())
    }

    /// The subjects holding messages in `stream` that match `filter`.
    pub async fn subjects(&mut self, stream: &str, filter: &str) -> Result<Vec<String>, JsaError> {
        let v = self
            .request(
                &self.api(&format!("STREAM.INFO.{stream}")),
                &serde_json::json!({ "subjects_filter": filter }),
            )
            .await?;
        Ok(v.pointer("/state/subjects")
            .and_then(Value::as_object)
            .map(|m| m.keys().cloned().collect())
            .unwrap_or_default())
    }

    /// Creates (or finds, when the config is the same) a durable consumer on `stream`.
    pub async fn create_consumer(
        &mut self,
        stream: &str,
        config: &store::ConsumerRecord,
    ) -> Result<(), JsaError> {
        let body = serde_json::json!({ "stream_name": stream, "config": config });
        self.request(
            &self.api(&format!(
                "CONSUMER.DURABLE.CREATE.{stream}.{}",
                config.durable
            )),
            &body,
        )
        .await
        .map(|_| ())
    }

    pub async fn delete_consumer(&mut self, stream: &str, durable: &str) -> Result<(), JsaError> {
        let r = self
            .request_raw(
                &self.api(&format!("CONSUMER.DELETE.{stream}.{durable}")),
                &[],
                &[],
            )
            .await
            .and_then(|m| parse_reply(&m.payload));
        match r {
            Ok(_) => Ok(()),
            Err(e) if e.is_not_found() => Ok(()),
            Err(e) => Err(e),
        }
    }
}

/// A store's ack: the stream sequence, or the error.
fn store_result(payload: &[u8]) -> Result<u64, JsaError> {
    if payload.is_empty() {
        // No responder answers with a 503 status and no body.
        return Err(JsaError::Api {
            code: 503,
            description: "no responders".into(),
        });
    }
    let v = parse_reply(payload)?;
    Ok(v.get("seq").and_then(Value::as_u64).unwrap_or(0))
}

fn parse_reply(payload: &[u8]) -> Result<Value, JsaError> {
    let v: Value =
        serde_json::from_slice(payload).map_err(|e| JsaError::Response(e.to_string()))?;
    if let Some(err) = v.get("error") {
        return Err(JsaError::Api {
            code: err.get("err_code").and_then(Value::as_u64).unwrap_or(0),
            description: err
                .get("description")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
        });
    }
    Ok(v)
}
