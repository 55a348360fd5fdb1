//! Asking a pod which config it runs: natrix-server reports the digest of its loaded config
//! on `/varz` as `config_digest`.
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

/// Reads the config digest a pod runs.
pub trait ConfigProbe: Send + Sync {
    /// `Ok(None)`: the server answered but reports no digest (a broker that predates it).
    fn config_digest<'a>(
        &'a self,
        pod_ip: &'a str,
        port: i32,
    ) -> BoxFuture<'a, Result<Option<String>, ProbeError>>;
}

/// The real probe: `GET http://<pod ip>:<monitor port>/varz`.
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

impl ConfigProbe for HttpProbe {
    fn config_digest<'a>(
        &'a self,
        pod_ip: &'a str,
        port: i32,
    ) -> BoxFuture<'a, Result<Option<String>, ProbeError>> {
        Box::pin(async move {
            let host = if pod_ip.contains(':') {
                format!("[{pod_ip}]")
            } else {
                pod_ip.to_string()
            };
            let url = format!("http://{host}:{port}/varz");
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
                if !resp.status().is_success() {
                    return Err(ProbeError::Status {
                        url: url.clone(),
                        status: resp.status().as_u16(),
                    });
                }
                let body = resp
                    .into_body()
                    .collect()
                    .await
                    .map_err(|e| ProbeError::Request {
                        url: url.clone(),
                        message: e.to_string(),
                    })?
                    .to_bytes();
                digest_from_varz(&body).map_err(|message| ProbeError::Body {
                    url: url.clone(),
                    message,
                })
            };
            tokio::time::timeout(self.timeout, fetch)
                .await
                .map_err(|_| ProbeError::Timeout { url: url.clone() })?
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
