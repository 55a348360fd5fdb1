//! natrix-server: a NATS-compatible message broker.
//!
//! See `docs/architecture.md` for the map. The message path runs
//! `protocol::parser` → `server::client` → `sublist` → `server::outbound`.

pub mod account;
pub mod auth;
pub mod callout;
pub mod cluster;
pub mod dn;
pub mod imports;
pub mod leafnode;
pub mod monitor;
pub mod mqtt;
pub mod protocol;
pub mod resolver;
pub mod server;
pub mod subject;
pub mod sublist;
pub mod telemetry;
pub mod tls;
pub mod trust;
pub mod websocket;
pub mod x509;
