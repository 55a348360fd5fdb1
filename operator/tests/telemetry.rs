//! Each reconcile is one OpenTelemetry span with the NatsCluster's identity and outcome.

mod common;

use std::sync::Arc;

use common::mockapi::{failure, not_found, serve, step};
use futures::future::BoxFuture;
use http::Method;
use natrix_operator::controller::account::AccountsContext;
use natrix_operator::controller::probe::{ConfigProbe, JetStreamHealth, ProbeError};
use natrix_operator::controller::{self, Context};
use natrix_operator::crd::NatsCluster;
use natrix_operator::crd::accounts::Account;
use natrix_operator::metrics::Metrics;
use natrix_operator::telemetry;
use opentelemetry::Value as OtelValue;
use opentelemetry::trace::Status;
use opentelemetry_sdk::trace::{InMemorySpanExporter, SdkTracerProvider};
use serde_json::json;

struct NoPods;
impl ConfigProbe for NoPods {
    fn config_digest<'a>(
        &'a self,
        ip: &'a str,
        _: i32,
    ) -> BoxFuture<'a, Result<Option<String>, ProbeError>> {
        Box::pin(async move {
            Err(ProbeError::Timeout {
                url: ip.to_string(),
            })
        })
    }

    fn jetstream<'a>(
        &'a self,
        ip: &'a str,
        _: i32,
    ) -> BoxFuture<'a, Result<JetStreamHealth, ProbeError>> {
        Box::pin(async move {
            Err(ProbeError::Timeout {
                url: ip.to_string(),
            })
        })
    }
}

fn nc(spec: serde_json::Value) -> Arc<NatsCluster> {
    Arc::new(
        serde_json::from_value(json!({
            "apiVersion": "natrix.io/v1alpha1", "kind": "NatsCluster",
            "metadata": {"name": "traced", "namespace": "ns", "uid": "u", "generation": 7},
            "spec": spec,
        }))
        .unwrap(),
    )
}

#[tokio::test]
async fn reconciles_are_spans() {
    let exporter = InMemorySpanExporter::default();
    let guard = telemetry::install(
        SdkTracerProvider::builder()
            .with_simple_exporter(exporter.clone())
            .build(),
    );

    // An invalid spec: reconcile succeeds (the problem goes to the status).
    let status_reply = serde_json::to_value(nc(json!({})).as_ref()).unwrap();
    let (client, server) = serve(vec![
        step(
            Method::GET,
            "/api/v1/namespaces/ns/configmaps/traced-config",
            404,
            Some(not_found("cm")),
        ),
        // No Accounts: not in operator mode.
        step(
            Method::GET,
            "/apis/natrix.io/v1alpha1/accounts",
            200,
            Some(
                json!({"apiVersion": "natrix.io/v1alpha1", "kind": "AccountList", "metadata": {}, "items": []}),
            ),
        ),
        step(
            Method::POST,
            "/apis/events.k8s.io/v1/namespaces/ns/events",
            201,
            None,
        ),
        step(
            Method::PATCH,
            "/apis/natrix.io/v1alpha1/namespaces/ns/natsclusters/traced/status",
            200,
            Some(status_reply),
        ),
    ]);
    let ctx = Arc::new(Context::new(
        client,
        Arc::new(NoPods),
        Arc::new(Metrics::new()),
    ));
    controller::reconcile(nc(json!({"config": {"merge": {"nope": 1}}})), ctx)
        .await
        .unwrap();
    server.await.unwrap();

    // An API failure.
    let (client, server) = serve(vec![step(
        Method::GET,
        "/api/v1/namespaces/ns/configmaps/traced-config",
        403,
        Some(failure(403, "Forbidden")),
    )]);
    let ctx = Arc::new(Context::new(
        client,
        Arc::new(NoPods),
        Arc::new(Metrics::new()),
    ));
    controller::reconcile(nc(json!({})), ctx).await.unwrap_err();
    server.await.unwrap();

    // An Account whose finalizer cannot be set: its reconcile is a span too.
    let (client, server) = serve(vec![step(
        Method::PATCH,
        "/apis/natrix.io/v1alpha1/namespaces/ns/accounts/tenant",
        403,
        Some(failure(403, "Forbidden")),
    )]);
    let accounts = Arc::new(AccountsContext::new(client, Arc::new(Metrics::new())));
    let account: Account = serde_json::from_value(json!({
        "apiVersion": "natrix.io/v1alpha1", "kind": "Account",
        "metadata": {"name": "tenant", "namespace": "ns", "uid": "a", "generation": 3},
        "spec": {"natsClusterRef": {"name": "traced"}},
    }))
    .unwrap();
    controller::account::reconcile(Arc::new(account), accounts)
        .await
        .unwrap_err();
    server.await.unwrap();

    guard.flush();
    let mut spans = exporter.get_finished_spans().unwrap();
    assert_eq!(spans.len(), 3, "{spans:#?}");
    let account_span = spans.remove(2);
    let account_attr = |k: &str| {
        account_span
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.clone())
    };
    assert_eq!(account_span.name, "reconcile");
    assert_eq!(
        account_attr("natrix.kind"),
        Some(OtelValue::from("Account"))
    );
    assert_eq!(account_attr("natrix.name"), Some(OtelValue::from("tenant")));
    assert_eq!(account_attr("natrix.generation"), Some(OtelValue::I64(3)));
    assert_eq!(
        account_attr("natrix.reconcile.outcome"),
        Some(OtelValue::from("forbidden"))
    );
    let attr = |i: usize, k: &str| {
        spans[i]
            .attributes
            .iter()
            .find(|kv| kv.key.as_str() == k)
            .map(|kv| kv.value.clone())
    };
    for (i, span) in spans.iter().enumerate() {
        assert_eq!(span.name, "reconcile");
        assert_eq!(attr(i, "k8s.namespace.name"), Some(OtelValue::from("ns")));
        assert_eq!(
            attr(i, "natrix.natscluster.name"),
            Some(OtelValue::from("traced"))
        );
        assert_eq!(
            attr(i, "natrix.natscluster.generation"),
            Some(OtelValue::I64(7))
        );
    }
    assert_eq!(
        attr(0, "natrix.reconcile.outcome"),
        Some(OtelValue::from("ok"))
    );
    assert_eq!(spans[0].status, Status::Unset);
    assert_eq!(
        attr(1, "natrix.reconcile.outcome"),
        Some(OtelValue::from("forbidden"))
    );
    assert!(
        matches!(&spans[1].status, Status::Error { description } if description.contains("get ConfigMap traced-config"))
    );
}
