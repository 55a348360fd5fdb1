//! The monitoring HTTP server (`-m/--http_port`): nats-server's endpoints with its JSON
//! field names, types and error texts, so dashboards, `nats server` commands and
//! prometheus-nats-exporter read natrix unchanged, plus a native `/metrics` in the
//! Prometheus text format.
//!
//! Every response is computed from the live server when it is asked for; nothing here
//! runs between requests, so monitoring costs nothing while nobody looks.

pub mod accountz;
pub mod cluster;
pub mod connz;
pub mod format;
pub mod healthz;
pub mod jsz;
pub mod metrics;
pub mod process;
pub mod query;
pub mod subsz;
pub mod varz;

use std::collections::BTreeMap;
use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::header::{ACCESS_CONTROL_ALLOW_ORIGIN, CONTENT_TYPE, HeaderValue};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper::{Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use parking_lot::Mutex;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::server::Server;
use query::{Query, QueryError};

/// What the monitoring server keeps between requests.
pub struct Monitor {
    server: Arc<Server>,
    /// Requests per endpoint path (`http_req_stats` on `/varz`).
    req_stats: Mutex<BTreeMap<&'static str, u64>>,
    cpu: process::CpuSampler,
}

/// An endpoint's answer: JSON, or one of nats-server's plain-text errors.
pub enum Reply {
    Json(StatusCode, Vec<u8>),
    Text(StatusCode, &'static str, String),
}

impl Reply {
    pub fn json<T: Serialize>(value: &T) -> Self {
        Self::json_status(StatusCode::OK, value)
    }

    pub fn json_status<T: Serialize>(status: StatusCode, value: &T) -> Self {
        match serde_json::to_vec_pretty(value) {
            Ok(body) => Self::Json(status, body),
            Err(e) => Self::Text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                format!("Error marshaling response: {e}"),
            ),
        }
    }

    /// Compact JSON, for the endpoints nats-server answers on one line (`/healthz`).
    pub fn json_compact<T: Serialize>(value: &T) -> Self {
        match serde_json::to_vec(value) {
            Ok(body) => Self::Json(StatusCode::OK, body),
            Err(e) => Self::Text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "text/plain; charset=utf-8",
                format!("Error marshaling response: {e}"),
            ),
        }
    }

    pub fn bad_request(text: String) -> Self {
        Self::Text(StatusCode::BAD_REQUEST, "text/plain; charset=utf-8", text)
    }
}

impl From<QueryError> for Reply {
    fn from(e: QueryError) -> Self {
        Self::bad_request(e.to_string())
    }
}

/// The endpoint paths nats-server serves that natrix answers, as `http_req_stats` keys.
const ENDPOINTS: &[&str] = &[
    "/",
    "/varz",
    "/connz",
    "/routez",
    "/gatewayz",
    "/leafz",
    "/subsz",
    "/subscriptionsz",
    "/accountz",
    "/accstatz",
    "/jsz",
    "/raftz",
    "/healthz",
    "/metrics",
];

impl Monitor {
    pub fn new(server: Arc<Server>) -> Arc<Self> {
        Arc::new(Self {
            server,
            req_stats: Mutex::new(BTreeMap::new()),
            cpu: process::CpuSampler::default(),
        })
    }

    pub fn server(&self) -> &Arc<Server> {
        &self.server
    }

    /// Requests served so far, by endpoint.
    pub fn req_stats(&self) -> BTreeMap<&'static str, u64> {
        self.req_stats.lock().clone()
    }

    /// Answers one HTTP request path (with its query string), base path already removed,
    /// counting it in `http_req_stats`.
    pub fn route(&self, path: &str, raw_query: Option<&str>) -> Reply {
        let Some(endpoint) = ENDPOINTS.iter().copied().find(|e| *e == path) else {
            return not_found();
        };
        *self.req_stats.lock().entry(endpoint).or_insert(0) += 1;
        self.answer(endpoint, raw_query)
    }

    /// Answers an endpoint without counting it as an HTTP request (system-account
    /// requests use this).
    pub fn answer(&self, endpoint: &str, raw_query: Option<&str>) -> Reply {
        let q = Query::parse(raw_query.unwrap_or(""));
        let result = match endpoint {
            "/" => Ok(root_page(&self.server)),
            "/varz" => Ok(Reply::json(&varz::varz(self))),
            "/connz" => connz::connz(&self.server, &q).map(|c| Reply::json(&c)),
            "/routez" => q
                .bool("subs")
                .map(|subs| Reply::json(&cluster::routez(&self.server, subs))),
            "/gatewayz" => q.bool("accs").and_then(|accounts| {
                let subs = q.bool("subs").or_else(|e| {
                    // `subs=detail` asks for the detailed list; the plain one is given.
                    if q.get("subs") == Some("detail") {
                        Ok(true)
                    } else {
                        Err(e)
                    }
                })?;
                let o = cluster::GatewayzOpts {
                    accounts,
                    subs,
                    gateway: q.get("gw_name").filter(|s| !s.is_empty()),
                    account: q.get("acc_name").filter(|s| !s.is_empty()),
                };
                Ok(Reply::json(&cluster::gatewayz(&self.server, &o)))
            }),
            "/leafz" => q
                .bool("subs")
                .map(|subs| Reply::json(&cluster::leafz(&self.server, subs, q.get("acc")))),
            "/subsz" | "/subscriptionsz" => subsz::subsz(&self.server, &q).map(|s| Reply::json(&s)),
            "/accountz" => accountz::accountz(&self.server, &q),
            "/accstatz" => accountz::accstatz(&self.server, &q).map(|a| Reply::json(&a)),
            "/jsz" => {
                jsz::JszOptions::from_query(&q).map(|o| Reply::json(&jsz::jsz(&self.server, &o)))
            }
            "/raftz" => Ok(Reply::json(
                &self
                    .server
                    .jetstream()
                    .map_or_else(|| serde_json::json!({}), |js| js.raftz()),
            )),
            "/healthz" => healthz::healthz(&self.server, &q),
            "/metrics" => Ok(Reply::Text(
                StatusCode::OK,
                "text/plain; version=0.0.4; charset=utf-8",
                metrics::render(self),
            )),
            _ => Ok(not_found()),
        };
        result.unwrap_or_else(Reply::from)
    }

    /// Serves HTTP on `listener` until the server shuts down; with `tls`, HTTPS (the
    /// client `tls {}` block's certificate, as nats-server uses for `https_port`).
    pub async fn serve(
        self: Arc<Self>,
        listener: TcpListener,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) {
        let acceptor = tls.map(tokio_rustls::TlsAcceptor::from);
        let base = self.server.options().0.config.http_base_path.clone();
        let base: Arc<str> = normalize_base(&base).into();
        let mut shutdown = std::pin::pin!(self.server.wait_shutdown());
        loop {
            let (stream, _) = tokio::select! {
                res = listener.accept() => match res {
                    Ok(s) => s,
                    Err(e) => {
                        tracing::error!("monitoring accept error: {e}");
                        tokio::time::sleep(std::time::Duration::from_millis(100)).await;
                        continue;
                    }
                },
                () = &mut shutdown => return,
            };
            let monitor = self.clone();
            let base = base.clone();
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                let service = service_fn(move |req: Request<Incoming>| {
                    let monitor = monitor.clone();
                    let base = base.clone();
                    async move { Ok::<_, Infallible>(monitor.respond(&base, &req)) }
                });
                let result = match acceptor {
                    Some(acceptor) => match acceptor.accept(stream).await {
                        Ok(tls) => {
                            http1::Builder::new()
                                .serve_connection(TokioIo::new(tls), service)
                                .await
                        }
                        Err(e) => {
                            tracing::debug!("monitoring TLS handshake error: {e}");
                            return;
                        }
                    },
                    None => {
                        http1::Builder::new()
                            .serve_connection(TokioIo::new(stream), service)
                            .await
                    }
                };
                if let Err(e) = result {
                    tracing::debug!("monitoring connection error: {e}");
                }
            });
        }
    }

    fn respond(&self, base: &str, req: &Request<Incoming>) -> Response<Full<Bytes>> {
        let path = req.uri().path();
        let path = match path.strip_prefix(base) {
            Some("") => "/",
            Some(p) if p.starts_with('/') => p,
            _ if base.is_empty() => path,
            _ => "/\u{0}not-found",
        };
        let reply = self.route(path, req.uri().query());
        let (status, ctype, body, cors) = match reply {
            Reply::Json(status, body) => (status, "application/json", body, true),
            Reply::Text(status, ctype, text) => (status, ctype, text.into_bytes(), false),
        };
        let mut resp = Response::new(Full::new(Bytes::from(body)));
        *resp.status_mut() = status;
        resp.headers_mut()
            .insert(CONTENT_TYPE, HeaderValue::from_static(ctype));
        if cors {
            resp.headers_mut()
                .insert(ACCESS_CONTROL_ALLOW_ORIGIN, HeaderValue::from_static("*"));
        }
        resp
    }
}

/// Go's `http.NotFound` answer.
fn not_found() -> Reply {
    Reply::Text(
        StatusCode::NOT_FOUND,
        "text/plain; charset=utf-8",
        "404 page not found\n".into(),
    )
}

/// `http_base_path` as nats-server cleans it: leading slash, no trailing slash.
fn normalize_base(base: &str) -> String {
    let trimmed = base.trim_matches('/');
    if trimmed.is_empty() {
        String::new()
    } else {
        format!("/{trimmed}")
    }
}

/// The HTML index nats-server serves at `/`: links to every endpoint.
fn root_page(server: &Server) -> Reply {
    let mut html =
        String::from("<html lang=\"en\">\n<head><title>natrix-server</title></head>\n<body>\n");
    html.push_str(&format!(
        "<h1>natrix-server {} (nats-server {})</h1>\n<p>{}</p>\n",
        crate::server::VERSION,
        crate::server::NATS_COMPAT_VERSION,
        server.name()
    ));
    for (path, label) in [
        ("varz", "General"),
        ("jsz", "JetStream"),
        ("connz", "Connections"),
        ("accountz", "Accounts"),
        ("accstatz", "Account Stats"),
        ("subsz", "Subscriptions"),
        ("routez", "Routes"),
        ("leafz", "LeafNodes"),
        ("gatewayz", "Gateways"),
        ("healthz", "Health Probe"),
        ("metrics", "Prometheus Metrics"),
    ] {
        html.push_str(&format!("<a href=./{path}>{label}</a><br/>\n"));
    }
    html.push_str("</body>\n</html>\n");
    Reply::Text(StatusCode::OK, "text/html; charset=utf-8", html)
}

/// A bound monitoring listener, and the TLS config when it serves HTTPS.
pub struct Listener {
    pub listener: TcpListener,
    pub tls: Option<Arc<rustls::ServerConfig>>,
}

/// Binds the monitoring listener: `https_port` (with the `tls {}` certificate) when set,
/// else `http_port`; `-1` picks a free port. `None` when monitoring is off.
pub async fn bind(server: &Server) -> std::io::Result<Option<Listener>> {
    let (opts, _) = server.options();
    let cfg = &opts.config;
    let (configured, tls) = if cfg.https_port != 0 {
        let Some(tls) = &opts.tls else {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "TLS is required for HTTPS monitoring (https_port needs a tls {} block)",
            ));
        };
        // Monitoring clients (browsers, Prometheus) present no client certificate.
        let mut config = (*tls.config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        (cfg.https_port, Some(Arc::new(config)))
    } else {
        (cfg.http_port, None)
    };
    if configured == 0 {
        return Ok(None);
    }
    let port = if configured < 0 { 0 } else { configured };
    let port = u16::try_from(port).map_err(|_| {
        std::io::Error::new(std::io::ErrorKind::InvalidInput, "http port out of range")
    })?;
    let listener = TcpListener::bind((cfg.monitor_host(), port)).await?;
    let addr: SocketAddr = listener.local_addr()?;
    server.set_http_addr(addr, tls.is_some());
    let scheme = if tls.is_some() { "https" } else { "http" };
    tracing::info!("Starting {scheme} monitor on {addr}");
    Ok(Some(Listener { listener, tls }))
}
