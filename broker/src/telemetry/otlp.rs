//! OpenTelemetry trace export over OTLP/gRPC.
//!
//! Off unless an endpoint is configured (`telemetry { otlp { endpoint } }` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT`). While off, the message path pays one relaxed atomic
//! load per publish and nothing else: no header is parsed, no span is built.
//!
//! Spans are made with the OpenTelemetry API directly rather than through `tracing`, so
//! that a publish span can take its parent from the message's own `traceparent` and be
//! skipped entirely when it is not sampled.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, TraceContextExt, TraceFlags, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};

use super::traceparent::TraceParent;

static ENABLED: AtomicBool = AtomicBool::new(false);
static TRACER: OnceLock<Tracer> = OnceLock::new();

/// A span being recorded.
pub type Span = opentelemetry_sdk::trace::Span;

/// Why trace export could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("OTLP exporter: {0}")]
    Exporter(String),
}

/// Where spans go and how they are named, after the config and the `OTEL_*` variables.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportSettings {
    pub endpoint: String,
    pub service_name: String,
}

impl ExportSettings {
    /// The config block first, then the standard variables; `None` when no endpoint.
    pub fn resolve(cfg: &natrix_config::options::TelemetryOpts) -> Option<Self> {
        let env = |k: &str| std::env::var(k).ok().filter(|v| !v.is_empty());
        let endpoint = Some(cfg.otlp_endpoint.clone())
            .filter(|e| !e.is_empty())
            .or_else(|| env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"))
            .or_else(|| env("OTEL_EXPORTER_OTLP_ENDPOINT"))?;
        let service_name = Some(cfg.service_name.clone())
            .filter(|s| !s.is_empty())
            .or_else(|| env("OTEL_SERVICE_NAME"))
            .unwrap_or_else(|| "natrix-server".to_owned());
        Some(Self {
            endpoint,
            service_name,
        })
    }
}

/// The sampling ratio for messages without a sampled `traceparent`: the config's, else
/// `OTEL_TRACES_SAMPLER_ARG`.
pub fn sample_ratio(cfg: &natrix_config::options::TelemetryOpts) -> f64 {
    if cfg.sample_ratio > 0.0 {
        return cfg.sample_ratio;
    }
    std::env::var("OTEL_TRACES_SAMPLER_ARG")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|r| (0.0..=1.0).contains(r))
        .unwrap_or(0.0)
}

/// Flushes and stops the exporter when dropped.
pub struct Guard {
    provider: SdkTracerProvider,
}

impl Drop for Guard {
    fn drop(&mut self) {
        ENABLED.store(false, Ordering::Release);
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!("flushing traces at shutdown: {e}");
        }
    }
}

/// Starts the exporter; must run inside the Tokio runtime (the gRPC channel lives there).
pub fn init(settings: &ExportSettings) -> Result<Guard, TelemetryError> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(settings.endpoint.clone())
        .build()
        .map_err(|e| TelemetryError::Exporter(e.to_string()))?;
    let resource = opentelemetry_sdk::Resource::builder()
        .with_service_name(settings.service_name.clone())
        .build();
    let provider = SdkTracerProvider::builder()
        .with_batch_exporter(exporter)
        .with_resource(resource)
        .build();
    let tracer = provider.tracer("natrix-server");
    // A second init (tests embedding several servers) keeps the first tracer.
    let _ = TRACER.set(tracer);
    ENABLED.store(true, Ordering::Release);
    tracing::info!(
        endpoint = %settings.endpoint,
        service = %settings.service_name,
        "OpenTelemetry trace export on"
    );
    Ok(Guard { provider })
}

/// Whether trace export is on. The one check the message path makes while it is off.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

fn tracer() -> Option<&'static Tracer> {
    if enabled() { TRACER.get() } else { None }
}

/// Starts a span; with `parent`, as a child of that remote span (same trace).
pub fn start(
    name: &'static str,
    kind: SpanKind,
    parent: Option<&TraceParent>,
    attributes: Vec<KeyValue>,
) -> Option<Span> {
    let tracer = tracer()?;
    let cx = match parent {
        Some(tp) => opentelemetry::Context::new().with_remote_span_context(SpanContext::new(
            opentelemetry::trace::TraceId::from_bytes(tp.trace_id),
            opentelemetry::trace::SpanId::from_bytes(tp.parent_id),
            TraceFlags::new(tp.flags),
            true,
            TraceState::default(),
        )),
        None => opentelemetry::Context::new(),
    };
    Some(
        tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(tracer, &cx),
    )
}

/// Starts a root span that began at `start` (a connection's accept time).
pub fn start_at(
    name: &'static str,
    kind: SpanKind,
    start: std::time::SystemTime,
    attributes: Vec<KeyValue>,
) -> Option<Span> {
    let tracer = tracer()?;
    Some(
        tracer
            .span_builder(name)
            .with_kind(kind)
            .with_start_time(start)
            .with_attributes(attributes)
            .start(tracer),
    )
}

/// The span id to propagate downstream.
pub fn span_id(span: &Span) -> [u8; 8] {
    span.span_context().span_id().to_bytes()
}

/// Ends a span with final attributes.
pub fn finish(mut span: Span, attributes: Vec<KeyValue>) {
    span.set_attributes(attributes);
    span.end();
}
