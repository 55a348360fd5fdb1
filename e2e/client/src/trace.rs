//! `trace`: one traced message through the broker, for the e2e tracing test.
//!
//! The client opens a span `client.publish`, publishes with its `traceparent` (sampled),
//! receives the message on its own subscription, and continues the trace from the
//! `traceparent` it received (which the broker rewrote to name its `natrix.publish` span)
//! with a span `client.receive`. Both spans go to the OTLP endpoint; the ids are printed
//! so the test can find the trace and check each parent.

use std::fmt::Write as _;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use futures::StreamExt as _;
use opentelemetry::trace::{
    Span as _, SpanContext, TraceContextExt as _, TraceFlags, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry_otlp::WithExportConfig as _;

#[derive(clap::Args)]
pub struct TraceArgs {
    #[arg(long)]
    server: String,
    /// OTLP/gRPC endpoint of the trace receiver.
    #[arg(long)]
    endpoint: String,
    #[arg(long)]
    subject: String,
    /// Service name of the client's spans.
    #[arg(long, default_value = "e2e-client")]
    service_name: String,
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().fold(String::new(), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

pub async fn trace(a: TraceArgs) -> Result<bool> {
    let exporter = opentelemetry_otlp::SpanExporter::builder()
        .with_tonic()
        .with_endpoint(a.endpoint.clone())
        .build()
        .context("OTLP exporter")?;
    let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
        .with_simple_exporter(exporter)
        .with_resource(
            opentelemetry_sdk::Resource::builder()
                .with_service_name(a.service_name.clone())
                .build(),
        )
        .build();
    let tracer = provider.tracer("natrix-e2e-client");
    let nc = async_nats::ConnectOptions::new()
        .name("e2e-trace")
        .retry_on_initial_connect()
        .connection_timeout(Duration::from_secs(5))
        .connect(&a.server)
        .await
        .with_context(|| format!("connecting to {}", a.server))?;
    let mut sub = nc.subscribe(a.subject.clone()).await?;
    nc.flush().await?;

    let mut publish = tracer.start("client.publish");
    let cx = publish.span_context().clone();
    let trace_id = hex(&cx.trace_id().to_bytes());
    let publish_span = hex(&cx.span_id().to_bytes());
    let mut headers = async_nats::HeaderMap::new();
    headers.insert(
        "traceparent",
        format!("00-{trace_id}-{publish_span}-01").as_str(),
    );
    nc.publish_with_headers(a.subject.clone(), headers, "traced".into())
        .await?;
    nc.flush().await?;
    publish.end();

    let msg = tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .context("no message within 10 s")?
        .context("subscription ended")?;
    let received = msg
        .headers
        .as_ref()
        .and_then(|h| h.get("traceparent"))
        .map(|v| v.as_str().to_string())
        .context("the message arrived without a traceparent")?;
    let parts: Vec<&str> = received.split('-').collect();
    if parts.len() != 4 || parts[1] != trace_id {
        bail!("traceparent {received:?} is not of trace {trace_id}");
    }
    let broker_span = parts[2].to_string();
    let parent = SpanContext::new(
        cx.trace_id(),
        opentelemetry::trace::SpanId::from_hex(&broker_span).context("broker span id")?,
        TraceFlags::SAMPLED,
        true,
        TraceState::default(),
    );
    let rcx = opentelemetry::Context::new().with_remote_span_context(parent);
    let mut receive = tracer.start_with_context("client.receive", &rcx);
    let receive_span = hex(&receive.span_context().span_id().to_bytes());
    receive.end();
    provider
        .force_flush()
        .context("flushing the client's spans")?;
    let _ = provider.shutdown();
    println!(
        "trace_id={trace_id} publish_span={publish_span} broker_span={broker_span} receive_span={receive_span}"
    );
    Ok(broker_span != publish_span)
}
