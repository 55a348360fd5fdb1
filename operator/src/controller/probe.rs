//! Asking a pod what it runs: natrix-server reports the digest of its loaded config on
//! `/varz` as `config_digest`, and its JetStream's health on `/healthz` and `/jsz`.
//!
//! Behind a trait so reconcile tests can answer without pods, and so another transport
//! (a `$SYS` request) can replace HTTP later without touching the controller.

use std::time::Duration;

use futures::future::BoxFuture;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;

/// Why a pod could not tell its config digest.
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    #[error("GET {url}: {message}")]
    Request { url: String, message: String },
    #[error("GET {url}: timed out")]
    Timeout { url: String },
    #[error("GET {url}: HTTP {status}")]
    Status { url: String, status: u16 },
    #[error("GET {url}: response is not /varz JSON: {message}")]
    Body { url: String, message: String },
}

/// What a pod's JetStream says of itself: `/healthz` (which, on natrix-server, stays
/// unhealthy until every replica placed on the pod has caught up) and the meta group from
/// `/jsz`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct JetStreamHealth {
    /// `/healthz` answered 200.
    pub healthy: bool,
    /// The `error` of an unhealthy `/healthz` (`JetStream stream 'A > S' is not current`).
    pub error: Option<String>,
    /// `meta_cluster.leader` from `/jsz`.
    pub meta_leader: Option<String>,
    /// `meta_cluster.cluster_size` from `/jsz`.
    pub meta_cluster_size: Option<u64>,
    /// Streams with a replica on this pod (`/jsz` `streams`).
    pub streams: Option<u64>,
}

/// Asks pods what they run.
pub trait ConfigProbe: Send + Sync {
    /// The config digest a pod runs. `Ok(None)`: the server answered but reports no
    /// digest (a broker that predates it).
    fn config_digest<'a>(
        &'a self,
        pod_ip: &'a str,
        port: i32,
    ) -> BoxFuture<'a, Result<Option<String>, ProbeError>>;

    /// JetStream's health on a pod (asked only of clusters with JetStream).
    fn jetstream<'a>(
        &'a self,
        pod_ip: &'a str,
        port: i32,
    ) -> BoxFuture<'a, Result<JetStreamHealth, ProbeError>>;
}

/// The real probe: `GET http://<pod ip>:<monitor port>/varz` (and `/healthz`, `/jsz`).
pub struct HttpProbe {
    client: Client<hyper_util::client::legacy::connect::HttpConnector, Empty<bytes::Bytes>>,
    timeout: Duration,
}

impl HttpProbe {
    pub fn new(timeout: Duration) -> Self {
        Self {
            client: Client::builder(TokioExecutor::new()).build_http(),
            timeout,
        }
    }

    /// `GET` a monitoring path: the status code and the body, within the timeout.
    async fn get(
        &self,
        pod_ip: &str,
        port: i32,
        path: &str,
    ) -> Result<(u16, bytes::Bytes, String), ProbeError> {
        let host = if pod_ip.contains(':') {
            format!("[{pod_ip}]")
        } else {
            pod_ip.to_string()
        };
        let url = format!("http://{host}:{port}{path}");
        let uri: http::Uri =
            url.parse()
                .map_err(|e: http::uri::InvalidUri| ProbeError::Request {
                    url: url.clone(),
                    message: e.to_string(),
                })?;
        let fetch = async {
            let resp = self
                .client
                .get(uri)
                .await
                .map_err(|e| ProbeError::Request {
                    url: url.clone(),
                    message: e.to_string(),
                })?;
            let status = resp.status().as_u16();
            let body = resp
                .into_body()
                .collect()
                .await
                .map_err(|e| ProbeError::Request {
                    url: url.clone(),
                    message: e.to_string(),
                })?
                .to_bytes();
            Ok((status, body))
        };
        let (status, body) = tokio::time::timeout(self.timeout, fetch)
            .await
            .map_err(|_| ProbeError::Timeout { url: url.clone() })??;
        Ok((status, body, url))
    }
}

/// Extracts `config_digest` from a `/varz` body.
pub fn digest_from_varz(body: &[u8]) -> Result<Option<String>, String> {
    let v: serde_json::Value = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    if !v.is_object() {
        return Err("not a JSON object".into());
    }
    Ok(v.get("config_digest")
        .and_then(serde_json::Value::as_str)
        .filter(|s| !s.is_empty())
        .map(str::to_string))
}

/// Reads a `/healthz` answer (`status` 200 or 503 with an `error`) and a `/jsz` body.
pub fn jetstream_from(healthz_status: u16, healthz: &[u8], jsz: &[u8]) -> JetStreamHealth {
    let health: serde_json::Value = serde_json::from_slice(healthz).unwrap_or_default();
    let jsz: serde_json::Value = serde_json::from_slice(jsz).unwrap_or_default();
    let meta = &jsz["meta_cluster"];
    JetStreamHealth {
        healthy: healthz_status == 200,
        error: health["error"]
            .as_str()
            .filter(|e| !e.is_empty())
            .map(str::to_string)
            .or_else(|| {
                (healthz_status != 200).then(|| format!("/healthz answered HTTP {healthz_status}"))
            }),
        meta_leader: meta["leader"]
            .as_str()
            .filter(|l| !l.is_empty())
            .map(str::to_string),
        meta_cluster_size: meta["cluster_size"].as_u64(),
        streams: jsz["streams"].as_u64(),
    }
}

impl ConfigProbe for HttpProbe {
    fn config_digest<'a>(
        &'a self,
        pod_ip: &'a str,
        port: i32,
    ) -> BoxFuture<'a, Result<Option<String>, ProbeError>> {
        Box::pin(async move {
            let (status, body, url) = self.get(pod_ip, port, "/varz").await?;
            if !(200..300).contains(&status) {
                return Err(ProbeError::Status { url, status });
            }
            digest_from_varz(&body).map_err(|message| ProbeError::Body { url, message })
        })
    }

    fn jetstream<'a>(
        &'a self,
        pod_ip: &'a str,
        port: i32,
    ) -> BoxFuture<'a, Result<JetStreamHealth, ProbeError>> {
        Box::pin(async move {
            let (health, jsz) = futures::join!(
                self.get(pod_ip, port, "/healthz"),
                self.get(pod_ip, port, "/jsz"),
            );
            let (hstatus, hbody, _) = health?;
            let (jstatus, jbody, jurl) = jsz?;
            if !(200..300).contains(&jstatus) {
                return Err(ProbeError::Status {
                    url: jurl,
                    status: jstatus,
                });
            }
            Ok(jetstream_from(hstatus, &hbody, &jbody))
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varz_digest() {
        assert_eq!(
            digest_from_varz(br#"{"server_id":"x","config_digest":"fnv1a64:00"}"#),
            Ok(Some("fnv1a64:00".into()))
        );
        assert_eq!(digest_from_varz(br#"{"server_id":"x"}"#), Ok(None));
        assert!(digest_from_varz(b"[1]").is_err());
        assert!(digest_from_varz(b"<html>").is_err());
    }

    #[test]
    fn jetstream_health_from_healthz_and_jsz() {
        let jsz = br#"{"streams":2,"meta_cluster":{"name":"nc","leader":"nc-1","cluster_size":3}}"#;
        let h = jetstream_from(200, br#"{"status":"ok"}"#, jsz);
        assert_eq!(
            h,
            JetStreamHealth {
                healthy: true,
                error: None,
                meta_leader: Some("nc-1".into()),
                meta_cluster_size: Some(3),
                streams: Some(2),
            }
        );
        let h = jetstream_from(
            503,
            br#"{"status":"unavailable","status_code":503,"error":"JetStream stream 'A > S' is not current"}"#,
            br#"{"streams":0}"#,
        );
        assert!(!h.healthy);
        assert_eq!(
            h.error.as_deref(),
            Some("JetStream stream 'A > S' is not current")
        );
        assert_eq!(h.meta_leader, None);
        let h = jetstream_from(500, b"oops", b"{}");
        assert_eq!(h.error.as_deref(), Some("/healthz answered HTTP 500"));
    }

    #[tokio::test]
    async fn http_probe_reads_a_real_endpoint() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = i32::from(listener.local_addr().unwrap().port());
        tokio::spawn(async move {
            let (mut s, _) = listener.accept().await.unwrap();
            let mut buf = [0u8; 1024];
            let n = s.read(&mut buf).await.unwrap();
            assert!(buf[..n].starts_with(b"GET /varz HTTP/1.1"));
            let body = r#"{"config_digest":"fnv1a64:0123456789abcdef"}"#;
            let resp = format!(
                "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {}\r\n\r\n{body}",
                body.len()
            );
            s.write_all(resp.as_bytes()).await.unwrap();
        });
        let probe = HttpProbe::new(Duration::from_secs(5));
        let d = probe.config_digest("127.0.0.1", port).await.unwrap();
        assert_eq!(d.as_deref(), Some("fnv1a64:0123456789abcdef"));
    }
}
