//! `/healthz`: 200 `{"status":"ok"}` while the server accepts clients; 503
//! `{"status":"unavailable", ...}` in lame-duck mode, so Kubernetes stops routing new
//! clients to a draining pod. The JetStream checks pass while JetStream is off, as in
//! nats-server.

use hyper::StatusCode;
use serde::Serialize;

use super::Reply;
use super::query::{Query, QueryError};
use crate::server::Server;

#[derive(Debug, Serialize)]
struct Health {
    status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    status_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    error: Option<String>,
}

pub fn healthz(server: &Server, q: &Query) -> Result<Reply, QueryError> {
    // Validate every flag nats-server reads, so a typo is an error rather than ignored.
    for key in ["js-meta-only", "details"] {
        q.bool(key)?;
    }
    let js_opts = crate::monitor::jsz::HealthOptions {
        js_enabled_only: q.bool("js-enabled-only")?,
        js_server_only: q.bool("js-server-only")?,
        account: q
            .get("account")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
        stream: q.get("stream").filter(|s| !s.is_empty()).map(str::to_owned),
        consumer: q
            .get("consumer")
            .filter(|s| !s.is_empty())
            .map(str::to_owned),
    };
    if server.is_lame_duck() {
        let status = StatusCode::SERVICE_UNAVAILABLE;
        return Ok(Reply::json_status(
            status,
            &Health {
                status: "unavailable",
                status_code: Some(status.as_u16()),
                error: Some("lame duck mode".into()),
            },
        ));
    }
    // JetStream configured but not started yet (it recovers its streams first).
    let starting = server.jetstream().is_none() && server.options().0.config.jetstream.enabled;
    let js_error = match server.jetstream() {
        Some(js) => js.health(&js_opts).err(),
        None if starting => Some("JetStream is starting".to_owned()),
        None => None,
    };
    if let Some(e) = js_error {
        let status = StatusCode::SERVICE_UNAVAILABLE;
        return Ok(Reply::json_status(
            status,
            &Health {
                status: "unavailable",
                status_code: Some(status.as_u16()),
                error: Some(e),
            },
        ));
    }
    Ok(Reply::json_compact(&Health {
        status: "ok",
        status_code: None,
        error: None,
    }))
}
