//! OpenTelemetry traces of reconciles, exported over OTLP/gRPC the way natrix-server does
//! it: off unless `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT` is
//! set, service name from `OTEL_SERVICE_NAME` (default `natrix-operator`).
//!
//! One span per reconcile, named `reconcile`, with the NatsCluster's namespace, name and
//! generation and the outcome, so a slow or failing reconcile can be found next to the
//! broker's own spans in the same trace backend. While export is off, a reconcile pays
//! one atomic load.

use std::sync::OnceLock;
use std::sync::atomic::{AtomicBool, Ordering};

use opentelemetry::KeyValue;
use opentelemetry::trace::{Span as _, SpanKind, Status, Tracer as _, TracerProvider as _};
use opentelemetry_otlp::WithExportConfig as _;
use opentelemetry_sdk::trace::{SdkTracerProvider, Tracer};

static ENABLED: AtomicBool = AtomicBool::new(false);
static TRACER: OnceLock<Tracer> = OnceLock::new();

/// A reconcile span being recorded.
pub type Span = opentelemetry_sdk::trace::Span;

/// Why trace export could not start.
#[derive(Debug, thiserror::Error)]
pub enum TelemetryError {
    #[error("OTLP exporter: {0}")]
    Exporter(String),
}

/// Where spans go and under which service name.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportSettings {
    pub endpoint: String,
    pub service_name: String,
}

impl ExportSettings {
    /// From the standard `OTEL_*` variables; `None` when no endpoint is set.
    pub fn from_env() -> Option<Self> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }

    /// [`ExportSettings::from_env`] over any variable source (tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Option<Self> {
        let var = |k: &str| get(k).filter(|v| !v.is_empty());
        let endpoint = var("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT")
            .or_else(|| var("OTEL_EXPORTER_OTLP_ENDPOINT"))?;
        Some(Self {
            endpoint,
            service_name: var("OTEL_SERVICE_NAME").unwrap_or_else(|| "natrix-operator".into()),
        })
    }
}

/// Flushes and stops the exporter when dropped.
pub struct Guard {
    provider: SdkTracerProvider,
}

impl Guard {
    /// Exports what is buffered now (tests, shutdown).
    pub fn flush(&self) {
        if let Err(e) = self.provider.force_flush() {
            tracing::warn!("flushing traces: {e}");
        }
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        ENABLED.store(false, Ordering::Release);
        if let Err(e) = self.provider.shutdown() {
            tracing::warn!("flushing traces at shutdown: {e}");
        }
    }
}

/// Starts OTLP export; must run inside the Tokio runtime (the gRPC channel lives there).
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
    tracing::info!(endpoint = %settings.endpoint, service = %settings.service_name, "OpenTelemetry trace export on");
    Ok(install(provider))
}

/// Exports reconcile spans through `provider` (any exporter). The first installed tracer
/// stays for the life of the process.
pub fn install(provider: SdkTracerProvider) -> Guard {
    let _ = TRACER.set(provider.tracer("natrix-operator"));
    ENABLED.store(true, Ordering::Release);
    Guard { provider }
}

/// Starts the span of one reconcile, or `None` while export is off.
pub fn start_reconcile(namespace: &str, name: &str, generation: Option<i64>) -> Option<Span> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    let tracer = TRACER.get()?;
    let mut attrs = vec![
        KeyValue::new("k8s.namespace.name", namespace.to_string()),
        KeyValue::new("natrix.natscluster.name", name.to_string()),
    ];
    if let Some(g) = generation {
        attrs.push(KeyValue::new("natrix.natscluster.generation", g));
    }
    Some(
        tracer
            .span_builder("reconcile")
            .with_kind(SpanKind::Internal)
            .with_attributes(attrs)
            .start(tracer),
    )
}

/// Starts the span of one reconcile of another kind than NatsCluster (`Stream`,
/// `Consumer`, `KeyValue`, `ObjectStore`, `Account`, `User`), or `None` while export is
/// off.
pub fn start_asset_reconcile(
    kind: &str,
    namespace: &str,
    name: &str,
    generation: Option<i64>,
) -> Option<Span> {
    if !ENABLED.load(Ordering::Relaxed) {
        return None;
    }
    let tracer = TRACER.get()?;
    let mut attrs = vec![
        KeyValue::new("k8s.namespace.name", namespace.to_string()),
        KeyValue::new("natrix.kind", kind.to_string()),
        KeyValue::new("natrix.name", name.to_string()),
    ];
    if let Some(g) = generation {
        attrs.push(KeyValue::new("natrix.generation", g));
    }
    Some(
        tracer
            .span_builder("reconcile")
            .with_kind(SpanKind::Internal)
            .with_attributes(attrs)
            .start(tracer),
    )
}

/// Ends a reconcile span: `outcome` is `ok` or the error's metric label.
pub fn finish(span: Option<Span>, outcome: &str, error: Option<String>) {
    let Some(mut span) = span else { return };
    span.set_attribute(KeyValue::new(
        "natrix.reconcile.outcome",
        outcome.to_string(),
    ));
    if let Some(message) = error {
        span.set_status(Status::error(message));
    }
    span.end();
}

#[cfg(test)]
mod tests {
    use super::ExportSettings;

    #[test]
    fn settings_follow_the_otel_variables() {
        let env = |pairs: &'static [(&'static str, &'static str)]| {
            move |k: &str| {
                pairs
                    .iter()
                    .find(|(n, _)| *n == k)
                    .map(|(_, v)| (*v).to_string())
            }
        };
        assert_eq!(ExportSettings::from_lookup(env(&[])), None);
        assert_eq!(
            ExportSettings::from_lookup(env(&[("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317")])),
            Some(ExportSettings {
                endpoint: "http://c:4317".into(),
                service_name: "natrix-operator".into()
            })
        );
        let s = ExportSettings::from_lookup(env(&[
            ("OTEL_EXPORTER_OTLP_ENDPOINT", "http://c:4317"),
            ("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://t:4317"),
            ("OTEL_SERVICE_NAME", "op"),
        ]))
        .unwrap();
        assert_eq!(
            (s.endpoint.as_str(), s.service_name.as_str()),
            ("http://t:4317", "op")
        );
    }
}
