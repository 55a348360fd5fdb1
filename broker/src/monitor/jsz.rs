//! `/jsz`. JetStream is not built yet, so this is nats-server's answer for a server
//! with JetStream disabled, field for field.

use serde::Serialize;

use super::format::GoTime;
use crate::server::Server;

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

#[derive(Debug, Serialize)]
pub struct Jsz {
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

pub fn jsz(server: &Server) -> Jsz {
    Jsz {
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
    }
}
