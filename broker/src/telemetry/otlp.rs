//! OpenTelemetry trace export over OTLP/gRPC.
//!
//! Off unless an endpoint is configured (`telemetry { otlp { endpoint } }` or
//! `OTEL_EXPORTER_OTLP_ENDPOINT`). While off, the message path pays one relaxed atomic
//! load per publish and nothing else: no header is parsed, no span is built.
//!
//! Spans are made with the OpenTelemetry API directly rather than through `tracing`, so
//! that a publish span can take its parent from the message's own `traceparent` and be
//! skipped entirely when it is not sampled.
//!
//! Export is process-wide and changes at run time. This module owns the one running
//! [`Export`] (provider, tracer and the settings they were made from) in a global slot.
//! A config reload builds the new export first ([`Export::build`], the only step that
//! can fail), swaps it in with [`install`], and hands the old one to [`retire`], which
//! flushes it on a blocking thread: the swap itself is a pointer move under a write lock,
//! so the message path never waits for a flush. Spans already open keep their provider
//! and end into it; only spans that end after that provider was flushed are lost.
//!
//! Several servers in one process (tests embed them) share the slot: the first
//! [`init`] that has settings installs them and later ones keep them, as before reload
//! existed; a reload that changes a server's settings installs its settings for the whole
//! process; the export stops when the last [`Guard`] is dropped.

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::trace::{
    Span as _, SpanContext, SpanKind, TraceContextExt, TraceFlags, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};
use parking_lot::RwLock;

use super::traceparent::TraceParent;

/// Whether an export is installed. Set after the slot is filled and cleared before it is
/// emptied, so that a `true` here almost always finds a tracer; the message path reads
/// only this while export is off.
static ENABLED: AtomicBool = AtomicBool::new(false);
/// The running export. Read (a shared lock) only after [`enabled`] said yes; written by
/// [`install`] on start-up, reload and exit.
static CURRENT: RwLock<Option<Export>> = RwLock::new(None);
/// Live [`Guard`]s; the last one dropped stops the export.
static GUARDS: AtomicUsize = AtomicUsize::new(0);

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

/// A running exporter: the provider that batches and sends spans, the tracer that makes
/// them, and the settings both came from.
pub struct Export {
    settings: ExportSettings,
    provider: SdkTracerProvider,
    tracer: Tracer,
}

impl std::fmt::Debug for Export {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Export")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl Export {
    /// Builds an exporter and provider for `settings` without installing them. Fails on an
    /// endpoint the exporter cannot use; no connection is made yet (the gRPC channel
    /// connects lazily), so an unreachable collector is not an error. Must run inside the
    /// Tokio runtime (the channel lives there).
    pub fn build(settings: &ExportSettings) -> Result<Self, TelemetryError> {
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
        Ok(Self {
            settings: settings.clone(),
            provider,
            tracer,
        })
    }

    /// Flushes what is batched and stops the exporter. Blocks (up to the exporter's
    /// timeout): call it off the message path.
    fn shutdown(self) {
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!("flushing traces to {}: {e}", self.settings.endpoint);
        }
    }
}

/// The settings of the running export, if any.
pub fn installed() -> Option<ExportSettings> {
    CURRENT.read().as_ref().map(|e| e.settings.clone())
}

/// Makes `next` the process's export (`None` turns export off) and returns the one it
/// replaces, still running, for [`retire`]. Spans started from now on go to `next`.
#[must_use = "the replaced export must be retired, or it is flushed when its last span ends"]
pub fn install(next: Option<Export>) -> Option<Export> {
    let on = next.as_ref().map(|e| e.settings.clone());
    if on.is_none() {
        ENABLED.store(false, Ordering::Release);
    }
    let old = std::mem::replace(&mut *CURRENT.write(), next);
    match &on {
        Some(s) => {
            ENABLED.store(true, Ordering::Release);
            tracing::info!(
                "OpenTelemetry trace export on: endpoint {}, service {}",
                s.endpoint,
                s.service_name
            );
        }
        None if old.is_some() => tracing::info!("OpenTelemetry trace export off"),
        None => {}
    }
    old
}

/// Flushes and stops a replaced export on a blocking thread of the current Tokio runtime
/// (or on this thread outside one), so that neither the caller nor the message path waits
/// for the collector.
pub fn retire(old: Option<Export>) {
    let Some(old) = old else {
        return;
    };
    match tokio::runtime::Handle::try_current() {
        Ok(rt) => {
            rt.spawn_blocking(move || old.shutdown());
        }
        Err(_) => old.shutdown(),
    }
}

/// Keeps the export running; the last one dropped flushes and stops whatever export is
/// installed then (the one from start-up or from the latest reload).
pub struct Guard(());

impl Drop for Guard {
    fn drop(&mut self) {
        if GUARDS.fetch_sub(1, Ordering::AcqRel) == 1
            && let Some(old) = install(None)
        {
            old.shutdown();
        }
    }
}

/// Starts exporting with `settings` unless an export is already installed (a second
/// server in the same process keeps the first one's). With `None`, export stays as it
/// is until a reload configures it. Must run inside the Tokio runtime.
pub fn init(settings: Option<&ExportSettings>) -> Result<Guard, TelemetryError> {
    if let Some(settings) = settings
        && installed().is_none()
    {
        let export = Export::build(settings)?;
        // A race with another init keeps the later one and flushes the earlier: harmless.
        retire(install(Some(export)));
    }
    GUARDS.fetch_add(1, Ordering::AcqRel);
    Ok(Guard(()))
}

/// Whether trace export is on. The one check the message path makes while it is off.
#[inline]
pub fn enabled() -> bool {
    ENABLED.load(Ordering::Relaxed)
}

/// Runs `f` with the running tracer, if export is on.
fn with_tracer<T>(f: impl FnOnce(&Tracer) -> T) -> Option<T> {
    if !enabled() {
        return None;
    }
    CURRENT.read().as_ref().map(|e| f(&e.tracer))
}

/// Starts a span; with `parent`, as a child of that remote span (same trace).
pub fn start(
    name: &'static str,
    kind: SpanKind,
    parent: Option<&TraceParent>,
    attributes: Vec<KeyValue>,
) -> Option<Span> {
    with_tracer(|tracer| {
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
        tracer
            .span_builder(name)
            .with_kind(kind)
            .with_attributes(attributes)
            .start_with_context(tracer, &cx)
    })
}

/// Starts a root span that began at `start` (a connection's accept time).
pub fn start_at(
    name: &'static str,
    kind: SpanKind,
    start: std::time::SystemTime,
    attributes: Vec<KeyValue>,
) -> Option<Span> {
    with_tracer(|tracer| {
        tracer
            .span_builder(name)
            .with_kind(kind)
            .with_start_time(start)
            .with_attributes(attributes)
            .start(tracer)
    })
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
