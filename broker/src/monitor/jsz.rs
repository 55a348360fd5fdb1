//! `/jsz`, and everything else monitoring reads from JetStream.
//!
//! JetStream lives outside the core (crate `natrix-jetstream`, wired in by `main.rs`),
//! so the core defines what it needs to read as [`JetStreamMonitor`] and JetStream
//! implements it. Without JetStream the answers are nats-server's for a server with
//! JetStream disabled, field for field.

use serde::Serialize;

use super::format::GoTime;
use super::query::{Query, QueryError};
use crate::server::Server;

/// The `/jsz` options nats-server reads (`acc`, `accounts`, `streams`, `consumers`,
/// `config`, `leader-only`, `offset`, `limit`, `raft`, `stream-leader-only`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct JszOptions {
    pub account: Option<String>,
    pub accounts: bool,
    pub streams: bool,
    pub consumers: bool,
    pub config: bool,
    pub leader_only: bool,
    pub offset: usize,
    pub limit: usize,
    pub raft: bool,
    pub stream_leader_only: bool,
}

impl JszOptions {
    pub fn from_query(q: &Query) -> Result<Self, QueryError> {
        let limit = q.uint("limit")?;
        Ok(Self {
            account: q.get("acc").filter(|s| !s.is_empty()).map(str::to_owned),
            accounts: q.bool("accounts")?,
            streams: q.bool("streams")?,
            consumers: q.bool("consumers")?,
            config: q.bool("config")?,
            leader_only: q.bool("leader-only")?,
            offset: usize::try_from(q.uint("offset")?).unwrap_or(usize::MAX),
            limit: if limit == 0 {
                1024
            } else {
                usize::try_from(limit).unwrap_or(usize::MAX)
            },
            raft: q.bool("raft")?,
            stream_leader_only: q.bool("stream-leader-only")?,
        })
    }
}

/// What `/healthz` asks JetStream (`js-enabled-only`, `js-server-only`, `account`,
/// `stream`, `consumer`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct HealthOptions {
    pub js_enabled_only: bool,
    pub js_server_only: bool,
    pub account: Option<String>,
    pub stream: Option<String>,
    pub consumer: Option<String>,
}

/// What monitoring reads from JetStream.
pub trait JetStreamMonitor: Send + Sync {
    /// The `/jsz` body (nats-server's `JSInfo`) without `server_id` and `now`, which
    /// the core adds.
    fn jsz(&self, opts: &JszOptions) -> serde_json::Value;
    /// The `jetstream` block of `/varz`.
    fn varz(&self) -> serde_json::Value;
    /// JetStream's part of `/healthz`: `Err(text)` when unhealthy.
    fn health(&self, opts: &HealthOptions) -> Result<(), String>;
    /// Whether JetStream is enabled for `account` (`/accountz` `jetstream_enabled`).
    fn account_enabled(&self, account: &str) -> bool;
    /// The JetStream domain, if one is configured (INFO `domain`).
    fn domain(&self) -> Option<String>;
    /// The JetStream API level (INFO `api_lvl`).
    fn api_level(&self) -> u64;
    /// `/raftz`: the Raft groups this server runs, by account then group (clustered
    /// JetStream; empty otherwise).
    fn raftz(&self) -> serde_json::Value {
        serde_json::json!({})
    }
}

#[derive(Debug, Serialize, Default)]
pub struct ApiStats {
    pub level: u64,
    pub total: u64,
    pub errors: u64,
}

#[derive(Debug, Serialize, Default)]
pub struct JsConfig {
    pub max_memory: i64,
    pub max_storage: i64,
}

/// nats-server's `/jsz` with JetStream disabled.
#[derive(Debug, Serialize)]
pub struct Disabled {
    pub memory: u64,
    pub storage: u64,
    pub reserved_memory: u64,
    pub reserved_storage: u64,
    pub accounts: u64,
    pub ha_assets: u64,
    pub api: ApiStats,
    pub server_id: String,
    pub now: GoTime,
    pub disabled: bool,
    pub config: JsConfig,
    pub streams: u64,
    pub consumers: u64,
    pub messages: u64,
    pub bytes: u64,
    pub total: u64,
}

/// The `/jsz` answer for `opts`.
pub fn jsz(server: &Server, opts: &JszOptions) -> serde_json::Value {
    if let Some(js) = server.jetstream() {
        let mut v = js.jsz(opts);
        if let Some(obj) = v.as_object_mut() {
            obj.insert("server_id".into(), server.id().into());
            obj.insert(
                "now".into(),
                serde_json::to_value(GoTime::now()).unwrap_or_default(),
            );
        }
        return v;
    }
    serde_json::to_value(Disabled {
        memory: 0,
        storage: 0,
        reserved_memory: 0,
        reserved_storage: 0,
        accounts: 0,
        ha_assets: 0,
        api: ApiStats::default(),
        server_id: server.id().to_owned(),
        now: GoTime::now(),
        disabled: true,
        config: JsConfig::default(),
        streams: 0,
        consumers: 0,
        messages: 0,
        bytes: 0,
        total: 0,
    })
    .unwrap_or_default()
}
