//! The operator's Prometheus metrics and its HTTP endpoints (`/metrics`, `/healthz`,
//! `/readyz`).
//!
//! A handful of counters and one histogram do not justify a metrics framework: they are
//! atomics rendered in the Prometheus text format (version 0.0.4).

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use std::sync::Arc;

/// Upper bounds (seconds) of the reconcile duration histogram.
pub const BUCKETS: [f64; 10] = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 10.0];

/// Counters of the operator.
#[derive(Default)]
pub struct Metrics {
    reconciles: AtomicU64,
    /// Failures by error label.
    failures: Mutex<BTreeMap<String, u64>>,
    bucket_counts: [AtomicU64; BUCKETS.len()],
    duration_sum_micros: AtomicU64,
    leader: AtomicBool,
    ready: AtomicBool,
}

impl Metrics {
    pub fn new() -> Self {
        Self::default()
    }

    /// Records one reconcile and, if it failed, its error label.
    pub fn observe_reconcile(&self, took: Duration, failure: Option<&str>) {
        self.reconciles.fetch_add(1, Ordering::Relaxed);
        let secs = took.as_secs_f64();
        for (i, b) in BUCKETS.iter().enumerate() {
            if secs <= *b {
                self.bucket_counts[i].fetch_add(1, Ordering::Relaxed);
            }
        }
        let micros = u64::try_from(took.as_micros()).unwrap_or(u64::MAX);
        self.duration_sum_micros
            .fetch_add(micros, Ordering::Relaxed);
        if let Some(label) = failure {
            let mut f = self
                .failures
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            *f.entry(label.to_string()).or_insert(0) += 1;
        }
    }

    pub fn set_leader(&self, leader: bool) {
        self.leader.store(leader, Ordering::Relaxed);
    }

    /// Ready once the CRDs are in place and this replica either leads or stands by.
    pub fn set_ready(&self, ready: bool) {
        self.ready.store(ready, Ordering::Relaxed);
    }

    pub fn is_ready(&self) -> bool {
        self.ready.load(Ordering::Relaxed)
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        let count = self.reconciles.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "# HELP natrix_operator_reconciles_total Reconciles of NatsClusters.\n# TYPE natrix_operator_reconciles_total counter\nnatrix_operator_reconciles_total {count}"
        );
        let _ = writeln!(
            out,
            "# HELP natrix_operator_reconcile_errors_total Failed reconciles by error.\n# TYPE natrix_operator_reconcile_errors_total counter"
        );
        for (label, n) in self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .iter()
        {
            let _ = writeln!(
                out,
                "natrix_operator_reconcile_errors_total{{error=\"{label}\"}} {n}"
            );
        }
        let _ = writeln!(
            out,
            "# HELP natrix_operator_reconcile_duration_seconds Time per reconcile.\n# TYPE natrix_operator_reconcile_duration_seconds histogram"
        );
        for (i, b) in BUCKETS.iter().enumerate() {
            let _ = writeln!(
                out,
                "natrix_operator_reconcile_duration_seconds_bucket{{le=\"{b}\"}} {}",
                self.bucket_counts[i].load(Ordering::Relaxed)
            );
        }
        let sum = self.duration_sum_micros.load(Ordering::Relaxed);
        let _ = writeln!(
            out,
            "natrix_operator_reconcile_duration_seconds_bucket{{le=\"+Inf\"}} {count}\nnatrix_operator_reconcile_duration_seconds_sum {}.{:06}\nnatrix_operator_reconcile_duration_seconds_count {count}",
            sum / 1_000_000,
            sum % 1_000_000
        );
        let _ = writeln!(
            out,
            "# HELP natrix_operator_leader Whether this replica holds the leader Lease.\n# TYPE natrix_operator_leader gauge\nnatrix_operator_leader {}",
            u8::from(self.leader.load(Ordering::Relaxed))
        );
        out
    }
}

fn respond(metrics: &Metrics, path: &str) -> Response<Full<Bytes>> {
    let (status, ctype, body) = match path {
        "/metrics" => (
            StatusCode::OK,
            "text/plain; version=0.0.4",
            metrics.render(),
        ),
        "/healthz" => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/readyz" if metrics.is_ready() => (StatusCode::OK, "text/plain", "ok\n".to_string()),
        "/readyz" => (
            StatusCode::SERVICE_UNAVAILABLE,
            "text/plain",
            "not ready\n".to_string(),
        ),
        _ => (
            StatusCode::NOT_FOUND,
            "text/plain",
            "not found\n".to_string(),
        ),
    };
    let mut resp = Response::new(Full::new(Bytes::from(body)));
    *resp.status_mut() = status;
    if let Ok(v) = http::HeaderValue::from_str(ctype) {
        resp.headers_mut().insert(http::header::CONTENT_TYPE, v);
    }
    resp
}

/// Serves the endpoints on `listener` until the task is dropped.
pub async fn serve(listener: tokio::net::TcpListener, metrics: Arc<Metrics>) {
    loop {
        let (stream, _) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                tracing::warn!(error = %e, "metrics listener accept failed");
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let metrics = metrics.clone();
        tokio::spawn(async move {
            let svc = service_fn(move |req: Request<Incoming>| {
                let resp = respond(&metrics, req.uri().path());
                async move { Ok::<_, Infallible>(resp) }
            });
            let conn = hyper::server::conn::http1::Builder::new();
            if let Err(e) = conn.serve_connection(TokioIo::new(stream), svc).await {
                tracing::debug!(error = %e, "metrics connection ended");
            }
        });
    }
}

/// Binds `addr` (an error here is a startup error, reported by the binary).
pub async fn bind(addr: SocketAddr) -> std::io::Result<tokio::net::TcpListener> {
    tokio::net::TcpListener::bind(addr).await
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn histogram_and_errors_render() {
        let m = Metrics::new();
        m.observe_reconcile(Duration::from_millis(30), None);
        m.observe_reconcile(Duration::from_millis(3), Some("conflict"));
        let text = m.render();
        assert!(
            text.contains("natrix_operator_reconciles_total 2\n"),
            "{text}"
        );
        assert!(text.contains("natrix_operator_reconcile_errors_total{error=\"conflict\"} 1\n"));
        assert!(
            text.contains("natrix_operator_reconcile_duration_seconds_bucket{le=\"0.005\"} 1\n")
        );
        assert!(
            text.contains("natrix_operator_reconcile_duration_seconds_bucket{le=\"0.05\"} 2\n")
        );
        assert!(text.contains("natrix_operator_reconcile_duration_seconds_sum 0.033000\n"));
        assert!(text.contains("natrix_operator_leader 0\n"));
    }

    #[tokio::test]
    async fn endpoints_answer_over_http() {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let listener = bind("127.0.0.1:0".parse().unwrap()).await.unwrap();
        let addr = listener.local_addr().unwrap();
        let metrics = Arc::new(Metrics::new());
        tokio::spawn(serve(listener, metrics.clone()));
        let get = |path: &'static str| async move {
            let mut s = tokio::net::TcpStream::connect(addr).await.unwrap();
            s.write_all(
                format!("GET {path} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n").as_bytes(),
            )
            .await
            .unwrap();
            let mut out = String::new();
            s.read_to_string(&mut out).await.unwrap();
            out
        };
        assert!(get("/readyz").await.starts_with("HTTP/1.1 503"));
        metrics.set_ready(true);
        assert!(get("/readyz").await.starts_with("HTTP/1.1 200"));
        assert!(get("/healthz").await.starts_with("HTTP/1.1 200"));
        let m = get("/metrics").await;
        assert!(m.contains("natrix_operator_reconciles_total 0"), "{m}");
        assert!(get("/nope").await.starts_with("HTTP/1.1 404"));
    }
}
