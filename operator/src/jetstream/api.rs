//! A small client of the JetStream API over one NATS connection: the requests the
//! controllers need (`STREAM.INFO/CREATE/UPDATE/DELETE`, `CONSUMER.INFO/CREATE/DELETE`),
//! each answered with the reply's JSON or the server's own error.
//!
//! Requests go out as raw `$JS.API.*` messages rather than through a client library's
//! typed configs, so every field the server reports comes back as the server wrote it
//! (the drift check compares exactly that) and every refusal carries the server's text and
//! code, which the status shows unchanged.

use std::time::Duration;

use bytes::Bytes;
use serde_json::{Value, json};

/// nats-server's "stream not found".
pub const STREAM_NOT_FOUND: u64 = 10059;
/// nats-server's "consumer not found".
pub const CONSUMER_NOT_FOUND: u64 = 10014;

/// How long one API request may take. A clustered stream create waits for its Raft group;
/// nats clients use 5 s by default, which a busy cluster sometimes needs in full.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(10);

/// Why a JetStream API request failed.
#[derive(Debug, thiserror::Error)]
pub enum ApiError {
    /// The server answered with an error: its text, as `nats` prints it.
    #[error("{description} (error {err_code})")]
    Server {
        code: u64,
        err_code: u64,
        description: String,
    },
    #[error(
        "no JetStream API answers on {subject}: JetStream is not enabled for this account, or the domain is wrong"
    )]
    NoResponders { subject: String },
    #[error("no reply on {subject} within {timeout:?}")]
    Timeout { subject: String, timeout: Duration },
    #[error("request on {subject}: {message}")]
    Request { subject: String, message: String },
    #[error("reply on {subject} is not a JetStream API response: {message}")]
    Decode { subject: String, message: String },
}

impl ApiError {
    /// The server's `err_code`, when the server answered.
    pub fn err_code(&self) -> Option<u64> {
        match self {
            ApiError::Server { err_code, .. } => Some(*err_code),
            _ => None,
        }
    }

    /// The server refused the request (as opposed to not answering).
    pub fn is_refusal(&self) -> bool {
        matches!(self, ApiError::Server { .. })
    }
}

/// The JetStream API of one account (and domain) over one connection.
#[derive(Clone, Debug)]
pub struct JetStreamApi {
    client: async_nats::Client,
    prefix: String,
    timeout: Duration,
}

impl JetStreamApi {
    /// `domain`: the JetStream domain, or `None` for the connection's own.
    pub fn new(client: async_nats::Client, domain: Option<&str>) -> Self {
        let prefix = match domain {
            Some(d) if !d.is_empty() => format!("$JS.{d}.API"),
            _ => "$JS.API".to_string(),
        };
        Self {
            client,
            prefix,
            timeout: REQUEST_TIMEOUT,
        }
    }

    /// The API prefix (`$JS.API` or `$JS.<domain>.API`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// One request; the reply's JSON, or the server's error.
    pub async fn request(&self, op: &str, body: Option<&Value>) -> Result<Value, ApiError> {
        let subject = format!("{}.{op}", self.prefix);
        let payload = match body {
            Some(b) => Bytes::from(b.to_string()),
            None => Bytes::new(),
        };
        let sent = self.client.request(subject.clone(), payload);
        let reply = match tokio::time::timeout(self.timeout, sent).await {
            Err(_) => {
                return Err(ApiError::Timeout {
                    subject,
                    timeout: self.timeout,
                });
            }
            Ok(Err(e)) => {
                return Err(match e.kind() {
                    async_nats::RequestErrorKind::NoResponders => {
                        ApiError::NoResponders { subject }
                    }
                    async_nats::RequestErrorKind::TimedOut => ApiError::Timeout {
                        subject,
                        timeout: self.timeout,
                    },
                    _ => ApiError::Request {
                        subject,
                        message: e.to_string(),
                    },
                });
            }
            Ok(Ok(m)) => m,
        };
        let v: Value = serde_json::from_slice(&reply.payload).map_err(|e| ApiError::Decode {
            subject: subject.clone(),
            message: e.to_string(),
        })?;
        if let Some(err) = v.get("error").filter(|e| !e.is_null()) {
            return Err(ApiError::Server {
                code: err["code"].as_u64().unwrap_or(0),
                err_code: err["err_code"].as_u64().unwrap_or(0),
                description: err["description"]
                    .as_str()
                    .unwrap_or("unknown JetStream error")
                    .to_string(),
            });
        }
        Ok(v)
    }

    /// A stream's config as the server holds it; `None` when there is no such stream.
    pub async fn stream_config(&self, name: &str) -> Result<Option<Value>, ApiError> {
        match self.request(&format!("STREAM.INFO.{name}"), None).await {
            Ok(v) => Ok(Some(v["config"].clone())),
            Err(e) if e.err_code() == Some(STREAM_NOT_FOUND) => Ok(None),
            Err(e) => Err(e),
        }
    }

    pub async fn stream_create(&self, config: &Value) -> Result<Value, ApiError> {
        let name = config["name"].as_str().unwrap_or_default();
        self.request(&format!("STREAM.CREATE.{name}"), Some(config))
            .await
            .map(|v| v["config"].clone())
    }

    pub async fn stream_update(&self, config: &Value) -> Result<Value, ApiError> {
        let name = config["name"].as_str().unwrap_or_default();
        self.request(&format!("STREAM.UPDATE.{name}"), Some(config))
            .await
            .map(|v| v["config"].clone())
    }

    /// Deletes a stream; `false` when it did not exist.
    pub async fn stream_delete(&self, name: &str) -> Result<bool, ApiError> {
        match self.request(&format!("STREAM.DELETE.{name}"), None).await {
            Ok(_) => Ok(true),
            Err(e) if e.err_code() == Some(STREAM_NOT_FOUND) => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// A consumer's config; `None` when the consumer (or its stream) does not exist.
    pub async fn consumer_config(
        &self,
        stream: &str,
        name: &str,
    ) -> Result<Option<Value>, ApiError> {
        match self
            .request(&format!("CONSUMER.INFO.{stream}.{name}"), None)
            .await
        {
            Ok(v) => Ok(Some(v["config"].clone())),
            Err(e) if matches!(e.err_code(), Some(CONSUMER_NOT_FOUND | STREAM_NOT_FOUND)) => {
                Ok(None)
            }
            Err(e) => Err(e),
        }
    }

    /// Creates (`update: false`) or updates a durable consumer; the server refuses a
    /// create of an existing consumer and an update of a missing one.
    pub async fn consumer_put(
        &self,
        stream: &str,
        config: &Value,
        update: bool,
    ) -> Result<Value, ApiError> {
        let name = config["durable_name"].as_str().unwrap_or_default();
        let body = json!({
            "stream_name": stream,
            "config": config,
            "action": if update { "update" } else { "create" },
        });
        self.request(&format!("CONSUMER.CREATE.{stream}.{name}"), Some(&body))
            .await
            .map(|v| v["config"].clone())
    }

    /// Deletes a consumer; `false` when it (or its stream) did not exist.
    pub async fn consumer_delete(&self, stream: &str, name: &str) -> Result<bool, ApiError> {
        match self
            .request(&format!("CONSUMER.DELETE.{stream}.{name}"), None)
            .await
        {
            Ok(_) => Ok(true),
            Err(e) if matches!(e.err_code(), Some(CONSUMER_NOT_FOUND | STREAM_NOT_FOUND)) => {
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }
}
