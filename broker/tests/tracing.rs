//! A trace from a publishing client through natrix-server to a subscriber, collected by
//! a real OpenTelemetry receiver: Jaeger v2 (built by `scripts/deps` from its Go module)
//! takes OTLP/gRPC from the broker and from this test's own client spans, and its query
//! API must then hold one trace with the client's span, the broker's span as its child,
//! and the subscriber's span as the child of the broker's (the context the broker put in
//! the delivered message's `traceparent`). A second test turns export on, renames the
//! service and turns export off again by config reload, against the same receiver.

mod common;

use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use common::{NATRIX, Proc, free_port, http_get, start, start_custom_with};
use opentelemetry::trace::{
    Span as _, SpanContext, TraceContextExt, TraceFlags, TraceState, Tracer as _,
    TracerProvider as _,
};
use opentelemetry_otlp::WithExportConfig as _;

fn jaeger_binary() -> Option<PathBuf> {
    let cache = std::env::var("NATRIX_CACHE").map_or_else(
        |_| PathBuf::from(std::env::var("HOME").unwrap_or_default()).join(".cache/natrix"),
        PathBuf::from,
    );
    let bin = cache.join("bin/jaeger");
    assert!(
        bin.exists() || std::env::var_os("CI").is_none(),
        "jaeger not installed (run scripts/deps)"
    );
    bin.exists().then_some(bin)
}

struct Jaeger {
    child: Child,
    otlp: u16,
    query: u16,
    _dir: tempfile::TempDir,
}

impl Drop for Jaeger {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn start_jaeger(bin: &PathBuf) -> Jaeger {
    let dir = tempfile::tempdir().expect("tempdir");
    let (otlp, otlp_http, query, query_grpc, health) = (
        free_port(),
        free_port(),
        free_port(),
        free_port(),
        free_port(),
    );
    let config = format!(
        r"
service:
  extensions: [jaeger_storage, jaeger_query, healthcheckv2]
  pipelines:
    traces:
      receivers: [otlp]
      processors: [batch]
      exporters: [jaeger_storage_exporter]
  telemetry:
    metrics:
      level: none
extensions:
  healthcheckv2:
    use_v2: true
    http:
      endpoint: 127.0.0.1:{health}
  jaeger_query:
    storage:
      traces: memstore
    http:
      endpoint: 127.0.0.1:{query}
    grpc:
      endpoint: 127.0.0.1:{query_grpc}
  jaeger_storage:
    backends:
      memstore:
        memory:
          max_traces: 10000
receivers:
  otlp:
    protocols:
      grpc:
        endpoint: 127.0.0.1:{otlp}
      http:
        endpoint: 127.0.0.1:{otlp_http}
processors:
  batch:
    timeout: 100ms
exporters:
  jaeger_storage_exporter:
    trace_storage: memstore
"
    );
    let path = dir.path().join("jaeger.yaml");
    std::fs::write(&path, config).expect("write jaeger config");
    let log = std::fs::File::create(dir.path().join("jaeger.log")).expect("log");
    let child = Command::new(bin)
        .arg("--config")
        .arg(&path)
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .expect("start jaeger");
    let jaeger = Jaeger {
        child,
        otlp,
        query,
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while std::net::TcpStream::connect(("127.0.0.1", jaeger.otlp)).is_err()
        || std::net::TcpStream::connect(("127.0.0.1", jaeger.query)).is_err()
    {
        let log =
            std::fs::read_to_string(jaeger._dir.path().join("jaeger.log")).unwrap_or_default();
        assert!(Instant::now() < deadline, "jaeger did not start:\n{log}");
        std::thread::sleep(Duration::from_millis(100));
    }
    jaeger
}

fn hex(b: &[u8]) -> String {
    b.iter().map(|x| format!("{x:02x}")).collect()
}

#[test]
fn trace_runs_from_publisher_through_broker_to_subscriber() {
    let Some(bin) = jaeger_binary() else {
        eprintln!("skipped: jaeger not installed");
        return;
    };
    let jaeger = start_jaeger(&bin);
    let endpoint = format!("http://127.0.0.1:{}", jaeger.otlp);
    let conf = format!(
        "server_name: traced\ntelemetry {{\n  otlp {{\n    endpoint: \"{endpoint}\"\n    service_name: natrix-test\n  }}\n}}\n"
    );
    let server = start(std::path::Path::new(NATRIX), &conf, true);
    let url = format!("nats://127.0.0.1:{}", server.port);

    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let (trace_id, client_span, broker_span, sub_span) = rt.block_on(async {
        let exporter = opentelemetry_otlp::SpanExporter::builder()
            .with_tonic()
            .with_endpoint(endpoint.clone())
            .build()
            .expect("exporter");
        let provider = opentelemetry_sdk::trace::SdkTracerProvider::builder()
            .with_simple_exporter(exporter)
            .with_resource(
                opentelemetry_sdk::Resource::builder()
                    .with_service_name("test-client")
                    .build(),
            )
            .build();
        let tracer = provider.tracer("test");
        let nc = async_nats::connect(&url).await.expect("connect");
        let mut sub = nc.subscribe("orders.created").await.expect("subscribe");
        nc.flush().await.expect("flush");

        let mut publish = tracer.start("client.publish");
        let ctx = publish.span_context().clone();
        let tp = format!(
            "00-{}-{}-01",
            hex(&ctx.trace_id().to_bytes()),
            hex(&ctx.span_id().to_bytes())
        );
        let mut headers = async_nats::HeaderMap::new();
        headers.insert("traceparent", tp.as_str());
        headers.insert("X-Other", "kept");
        nc.publish_with_headers("orders.created", headers, "order 42".into())
            .await
            .expect("publish");
        nc.flush().await.expect("flush");
        publish.end();

        let msg = tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut sub))
            .await
            .expect("message in time")
            .expect("message");
        assert_eq!(msg.payload.as_ref(), b"order 42");
        let h = msg.headers.expect("headers delivered");
        assert_eq!(h.get("X-Other").map(|v| v.as_str()), Some("kept"));
        let got = h
            .get("traceparent")
            .expect("traceparent delivered")
            .as_str()
            .to_owned();
        let parts: Vec<&str> = got.split('-').collect();
        assert_eq!(parts.len(), 4, "{got}");
        assert_eq!(parts[1], hex(&ctx.trace_id().to_bytes()), "same trace");
        assert_ne!(
            parts[2],
            hex(&ctx.span_id().to_bytes()),
            "broker's span is the parent now"
        );
        let broker_span = parts[2].to_owned();

        // The subscriber continues the trace from what it received.
        let parent = SpanContext::new(
            ctx.trace_id(),
            opentelemetry::trace::SpanId::from_hex(&broker_span).expect("span id"),
            TraceFlags::SAMPLED,
            true,
            TraceState::default(),
        );
        let cx = opentelemetry::Context::new().with_remote_span_context(parent);
        let mut receive = tracer.start_with_context("client.receive", &cx);
        let sub_span = hex(&receive.span_context().span_id().to_bytes());
        receive.end();
        provider.force_flush().expect("flush client spans");
        let _ = provider.shutdown();
        (
            hex(&ctx.trace_id().to_bytes()),
            hex(&ctx.span_id().to_bytes()),
            broker_span,
            sub_span,
        )
    });

    // The broker exports in batches; poll the receiver until the whole trace is there.
    let deadline = Instant::now() + Duration::from_secs(20);
    let trace = loop {
        let r = http_get(jaeger.query, &format!("/api/traces/{trace_id}"));
        if r.status == 200 {
            let v = r.json();
            let spans = v["data"][0]["spans"].as_array().map_or(0, Vec::len);
            if spans >= 3 {
                break v;
            }
        }
        assert!(
            Instant::now() < deadline,
            "trace incomplete in Jaeger: {} {}",
            r.status,
            r.body
        );
        std::thread::sleep(Duration::from_millis(200));
    };
    let data = &trace["data"][0];
    let spans = data["spans"].as_array().expect("spans");
    let find = |id: &str| {
        spans
            .iter()
            .find(|s| s["spanID"] == id)
            .unwrap_or_else(|| panic!("span {id} missing from {spans:?}"))
    };
    let parent_of = |s: &serde_json::Value| {
        s["references"]
            .as_array()
            .and_then(|r| r.iter().find(|x| x["refType"] == "CHILD_OF"))
            .and_then(|x| x["spanID"].as_str())
            .map(str::to_owned)
    };
    let service_of = |s: &serde_json::Value| {
        let pid = s["processID"].as_str().unwrap_or_default();
        data["processes"][pid]["serviceName"]
            .as_str()
            .unwrap_or_default()
            .to_owned()
    };
    let broker = find(&broker_span);
    assert_eq!(broker["operationName"], "natrix.publish");
    assert_eq!(service_of(broker), "natrix-test");
    assert_eq!(parent_of(broker).as_deref(), Some(client_span.as_str()));
    let tags = broker["tags"].as_array().expect("tags");
    let tag = |k: &str| {
        tags.iter()
            .find(|t| t["key"] == k)
            .map(|t| t["value"].clone())
    };
    assert_eq!(
        tag("messaging.destination.name"),
        Some("orders.created".into())
    );
    assert_eq!(tag("natrix.fanout"), Some(1.into()));
    assert_eq!(tag("messaging.message.body.size"), Some(8.into()));
    let client = find(&client_span);
    assert_eq!(service_of(client), "test-client");
    let receive = find(&sub_span);
    assert_eq!(parent_of(receive).as_deref(), Some(broker_span.as_str()));

    // The connection span is exported too (its own trace).
    let search = http_get(
        jaeger.query,
        "/api/traces?service=natrix-test&operation=natrix.connect&limit=5",
    );
    assert_eq!(search.status, 200, "{}", search.body);
    assert!(
        search.json()["data"]
            .as_array()
            .is_some_and(|d| !d.is_empty()),
        "no natrix.connect span: {}",
        search.body
    );
}

/// `telemetry { log_format: json }` writes one JSON object per log line.
#[test]
fn json_logs_are_one_object_per_line() {
    let server = start(
        std::path::Path::new(NATRIX),
        "server_name: jsonlogs\ntelemetry { log_format: json }\n",
        false,
    );
    let deadline = Instant::now() + Duration::from_secs(5);
    while !server.log_text().contains("Server is ready") {
        assert!(
            Instant::now() < deadline,
            "no ready line: {}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let log = server.log_text();
    let mut lines = 0;
    for line in log.lines().filter(|l| !l.trim().is_empty()) {
        let v: serde_json::Value =
            serde_json::from_str(line).unwrap_or_else(|e| panic!("not JSON ({e}): {line}"));
        assert!(v["level"].is_string(), "{line}");
        lines += 1;
    }
    assert!(lines >= 3, "{log}");
    assert!(log.contains("\"Server is ready\""), "{log}");
}

/// A config that exports to `endpoint` as `service` (no endpoint: no `telemetry` block).
fn otlp_conf(endpoint: Option<&str>, service: &str) -> String {
    let mut conf = "server_name: reloaded\n".to_owned();
    if let Some(endpoint) = endpoint {
        conf.push_str(&format!(
            "telemetry {{\n  otlp {{\n    endpoint: \"{endpoint}\"\n    service_name: {service}\n  }}\n}}\n"
        ));
    }
    conf
}

/// Replaces the server's config file (atomically, so the file watcher never reads half of
/// it), sends `--signal reload`, and waits until the log holds one more `expect` than
/// before. The watcher may reload the same file too; a second reload of an unchanged file
/// changes nothing.
fn reload(server: &Proc, conf: &str, expect: &str) {
    let before = server.log_text().matches(expect).count();
    let path = server.dir.path().join("server.conf");
    let tmp = server.dir.path().join("server.conf.new");
    std::fs::write(&tmp, conf).expect("write config");
    std::fs::rename(&tmp, &path).expect("replace config");
    let out = Command::new(NATRIX)
        .arg("--signal")
        .arg(format!("reload={}", server.child.id()))
        .output()
        .expect("run --signal");
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while server.log_text().matches(expect).count() <= before {
        assert!(
            Instant::now() < deadline,
            "no {expect:?} after reload:\n{}",
            server.log_text()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Publishes one message with a sampled `traceparent` of a fresh trace and returns the
/// trace id and the `traceparent` the subscriber received.
async fn publish_traced(
    nc: &async_nats::Client,
    sub: &mut async_nats::Subscriber,
) -> (String, String) {
    let trace_id = hex(&fastrand::u128(1..).to_be_bytes());
    let sent = format!(
        "00-{trace_id}-{}-01",
        hex(&fastrand::u64(1..).to_be_bytes())
    );
    let mut headers = async_nats::HeaderMap::new();
    headers.insert("traceparent", sent.as_str());
    nc.publish_with_headers("reload.traced", headers, "hello".into())
        .await
        .expect("publish");
    nc.flush().await.expect("flush");
    let msg = tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(sub))
        .await
        .expect("message in time")
        .expect("message");
    let got = msg
        .headers
        .and_then(|h| h.get("traceparent").map(|v| v.as_str().to_owned()))
        .expect("traceparent delivered");
    assert_eq!(got.len(), sent.len(), "{got}");
    assert!(got.starts_with(&format!("00-{trace_id}-")), "{got}");
    let rewritten = got != sent;
    (trace_id, if rewritten { got } else { String::new() })
}

/// The service name of the broker's `natrix.publish` span in `trace_id`, once Jaeger
/// has it; `None` if it has not arrived by `within`.
fn broker_service(jaeger: &Jaeger, trace_id: &str, within: Duration) -> Option<String> {
    let deadline = Instant::now() + within;
    loop {
        let r = http_get(jaeger.query, &format!("/api/traces/{trace_id}"));
        if r.status == 200 {
            let v = r.json();
            let data = &v["data"][0];
            if let Some(span) = data["spans"]
                .as_array()
                .and_then(|s| s.iter().find(|s| s["operationName"] == "natrix.publish"))
            {
                let pid = span["processID"].as_str().unwrap_or_default();
                return Some(
                    data["processes"][pid]["serviceName"]
                        .as_str()
                        .unwrap_or_default()
                        .to_owned(),
                );
            }
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
}

/// Trace export follows config reloads: a server started without an `otlp` block exports
/// nothing; a reload adding the endpoint turns export on under the configured service
/// name; a reload renaming the service moves later spans to the new name; reloads with an
/// unusable endpoint are refused (naming `telemetry.otlp.endpoint`) and export goes on;
/// a reload removing the endpoint turns export off.
#[test]
fn export_follows_config_reloads() {
    let Some(bin) = jaeger_binary() else {
        eprintln!("skipped: jaeger not installed");
        return;
    };
    let jaeger = start_jaeger(&bin);
    let endpoint = format!("http://127.0.0.1:{}", jaeger.otlp);
    let dir = tempfile::tempdir().expect("tempdir");
    let conf_path = dir.path().join("server.conf");
    std::fs::write(&conf_path, otlp_conf(None, "")).expect("write config");
    let server = start_custom_with(
        std::path::Path::new(NATRIX),
        dir,
        &conf_path,
        &[],
        false,
        |cmd| {
            // Batches leave every 100 ms, so "not exported" can be judged within seconds.
            cmd.env("OTEL_BSP_SCHEDULE_DELAY", "100");
            for var in [
                "OTEL_EXPORTER_OTLP_ENDPOINT",
                "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
                "OTEL_SERVICE_NAME",
                "OTEL_TRACES_SAMPLER_ARG",
            ] {
                cmd.env_remove(var);
            }
        },
    );
    let url = format!("nats://127.0.0.1:{}", server.port);
    let rt = tokio::runtime::Runtime::new().expect("runtime");
    let nc = rt.block_on(async_nats::connect(&url)).expect("connect");
    let mut sub = rt
        .block_on(nc.subscribe("reload.traced"))
        .expect("subscribe");
    rt.block_on(nc.flush()).expect("flush");
    let mut publish = || rt.block_on(publish_traced(&nc, &mut sub));

    // Off: the broker makes no span, so the traceparent passes through untouched.
    let (before_on, rewritten) = publish();
    assert!(
        rewritten.is_empty(),
        "export off, yet rewritten: {rewritten}"
    );

    // On by reload.
    reload(
        &server,
        &otlp_conf(Some(&endpoint), "natrix-a"),
        "OpenTelemetry trace export on",
    );
    let (first, rewritten) = publish();
    assert!(
        !rewritten.is_empty(),
        "export on, traceparent not rewritten"
    );
    assert_eq!(
        broker_service(&jaeger, &first, Duration::from_secs(20)).as_deref(),
        Some("natrix-a")
    );

    // A new service name for later spans.
    reload(
        &server,
        &otlp_conf(Some(&endpoint), "natrix-b"),
        "OpenTelemetry trace export on",
    );
    let (second, _) = publish();
    assert_eq!(
        broker_service(&jaeger, &second, Duration::from_secs(20)).as_deref(),
        Some("natrix-b")
    );

    // Unusable endpoints are refused, by the parser and by the exporter, and export goes on.
    // Each waits for its own wording, so a late duplicate of the previous one (the file
    // watcher and the signal both reload) cannot stand in for it.
    for (bad, wording) in [
        ("not a url", "must be an http:// or https:// URL"),
        ("http://bad host:4317", "cannot be used"),
    ] {
        reload(&server, &otlp_conf(Some(bad), "natrix-c"), wording);
        let log = server.log_text();
        let refusal = log
            .lines()
            .rfind(|l| l.contains(wording))
            .expect("refusal line");
        assert!(
            refusal.contains("Failed to reload server configuration")
                && refusal.contains("telemetry.otlp.endpoint"),
            "{refusal}"
        );
        let (after_refusal, rewritten) = publish();
        assert!(!rewritten.is_empty(), "export stopped by a refused reload");
        assert_eq!(
            broker_service(&jaeger, &after_refusal, Duration::from_secs(20)).as_deref(),
            Some("natrix-b"),
            "after refusing {bad:?}"
        );
    }

    // Off by reload.
    reload(
        &server,
        &otlp_conf(None, ""),
        "OpenTelemetry trace export off",
    );
    let (after_off, rewritten) = publish();
    assert!(
        rewritten.is_empty(),
        "export off, yet rewritten: {rewritten}"
    );
    // Thirty flush periods: long enough for a span to have arrived had one been made.
    let absent = broker_service(&jaeger, &after_off, Duration::from_secs(3));
    assert_eq!(absent, None, "span exported after export was turned off");
    assert_eq!(
        broker_service(&jaeger, &before_on, Duration::ZERO),
        None,
        "span exported before export was turned on"
    );
    let services = http_get(jaeger.query, "/api/services");
    assert_eq!(services.status, 200, "{}", services.body);
    let names = services.json()["data"].clone();
    assert!(
        names
            .as_array()
            .is_some_and(|n| n.iter().all(|n| n != "natrix-c")),
        "the refused service name was used: {names}"
    );
}
