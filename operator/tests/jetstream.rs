//! The JetStream asset controllers against real servers on loopback (natrix-server and
//! nats-server, the same scenario on each): create, update of a mutable field, the
//! server's refusal of an immutable one, drift put back after a hand edit, preventUpdate,
//! consumers, key-value and object store buckets usable by a client library; then whole
//! reconciles through the scripted Kubernetes API (finalizer, status, events, delete with
//! and without preventDelete, a missing NatsCluster).

mod common;

use std::sync::Arc;

use async_nats::jetstream;
use common::mockapi::{Seen, not_found, serve, step};
use common::servers::{self, Server};
use futures::StreamExt;
use http::Method;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::runtime::controller::Action;
use natrix_operator::controller::jetstream::{
    JsContext, Outcome, REQUEUE_WAITING, SYNC_INTERVAL, Wanted, reconcile, sync,
};
use natrix_operator::crd::jetstream::{ConsumerSpec, KeyValueSpec, ObjectStoreSpec, StreamSpec};
use natrix_operator::crd::{KeyValue, Stream};
use natrix_operator::jetstream::api::JetStreamApi;
use natrix_operator::jetstream::config;
use natrix_operator::metrics::Metrics;
use serde_json::{Value, json};

async fn api(server: &Server) -> (async_nats::Client, JetStreamApi) {
    let client = async_nats::connect(&server.url)
        .await
        .unwrap_or_else(|e| panic!("{}: connect: {e}", server.name));
    (client.clone(), JetStreamApi::new(client, None))
}

fn stream_spec(extra: Value) -> StreamSpec {
    let mut v = json!({"name": "ORDERS", "subjects": ["orders.>"], "servers": ["nats://x"]});
    if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
        m.extend(e.clone());
    }
    serde_json::from_value(v).expect("stream spec")
}

fn wanted_stream(extra: Value) -> Wanted {
    Wanted::Stream(config::stream_config(&stream_spec(extra)).expect("config"))
}

async fn server_stream(api: &JetStreamApi, name: &str) -> Value {
    api.stream_config(name)
        .await
        .expect("stream info")
        .expect("stream exists")
}

/// Edits a stream's config on the server, as `nats stream edit` would.
async fn hand_edit(api: &JetStreamApi, name: &str, edit: impl FnOnce(&mut Value)) {
    let mut c = server_stream(api, name).await;
    edit(&mut c);
    api.stream_update(&c).await.expect("hand edit");
}

async fn stream_lifecycle(server: &Server) {
    let who = server.name;
    let (_, api) = api(server).await;

    // Create; then the server's own config matches what was sent, key by key.
    let w =
        wanted_stream(json!({"maxAge": "1h", "description": "orders", "metadata": {"team": "a"}}));
    assert_eq!(
        sync(&api, &w, None, false, true).await.expect("create"),
        Outcome::Created,
        "{who}"
    );
    assert_eq!(
        sync(&api, &w, None, false, false).await.expect("resync"),
        Outcome::InSync,
        "{who}"
    );

    // A mutable field changes with the spec.
    let w =
        wanted_stream(json!({"maxAge": "2h", "description": "orders", "metadata": {"team": "a"}}));
    assert_eq!(
        sync(&api, &w, None, false, true).await.expect("update"),
        Outcome::Updated,
        "{who}"
    );
    assert_eq!(
        server_stream(&api, "ORDERS").await["max_age"],
        7_200_000_000_000_i64,
        "{who}"
    );

    // Changed by hand: found and put back.
    hand_edit(&api, "ORDERS", |c| {
        c["max_age"] = json!(600_000_000_000_i64);
        c["description"] = json!("edited");
    })
    .await;
    assert_eq!(
        sync(&api, &w, None, false, false).await.expect("correct"),
        Outcome::Corrected(vec!["description".into(), "max_age".into()]),
        "{who}"
    );
    let c = server_stream(&api, "ORDERS").await;
    assert_eq!(c["max_age"], 7_200_000_000_000_i64, "{who}");
    assert_eq!(c["description"], "orders", "{who}");

    // preventUpdate: the difference is reported, the server left alone.
    hand_edit(&api, "ORDERS", |c| c["max_msgs"] = json!(5)).await;
    assert_eq!(
        sync(&api, &w, None, true, true).await.expect("prevented"),
        Outcome::UpdatePrevented(vec!["max_msgs".into()]),
        "{who}"
    );
    assert_eq!(server_stream(&api, "ORDERS").await["max_msgs"], 5, "{who}");
    assert_eq!(
        sync(&api, &w, None, false, false).await.expect("fix"),
        Outcome::Corrected(vec!["max_msgs".into()]),
        "{who}"
    );

    // What the server can not change comes back in its own words.
    let bad = wanted_stream(
        json!({"maxAge": "2h", "description": "orders", "metadata": {"team": "a"}, "storage": "memory"}),
    );
    let err = sync(&api, &bad, None, false, true)
        .await
        .expect_err("storage change");
    assert!(err.is_refusal(), "{who}: {err}");
    assert!(
        err.to_string()
            .contains("stream configuration update can not change storage type"),
        "{who}: {err}"
    );
    let bad = wanted_stream(json!({"maxAge": "2h", "retention": "workqueue"}));
    let err = sync(&api, &bad, None, false, true)
        .await
        .expect_err("retention change");
    assert!(
        err.to_string()
            .contains("retention policy to/from workqueue"),
        "{who}: {err}"
    );
    // Refused changes leave the stream as it was.
    assert_eq!(
        server_stream(&api, "ORDERS").await["storage"],
        "file",
        "{who}"
    );

    // Every other mutable field, in one update, and back in sync.
    let all = wanted_stream(json!({
        "maxAge": "3h", "description": "all", "maxBytes": 1_048_576, "maxMsgs": 1000,
        "maxMsgsPerSubject": 10, "maxMsgSize": 4096, "discard": "new",
        "duplicateWindow": "30s", "denyDelete": true, "allowRollup": true,
        "allowDirect": true, "compression": "s2", "subjects": ["orders.>", "returns.>"],
        "retention": "interest", "metadata": {"team": "b"}
    }));
    assert_eq!(
        sync(&api, &all, None, false, true).await.expect("all"),
        Outcome::Updated,
        "{who}"
    );
    assert_eq!(
        sync(&api, &all, None, false, false).await.expect("in sync"),
        Outcome::InSync,
        "{who}"
    );

    // A consumer of it: created, in sync, updated, refused.
    let consumer = |extra: Value| {
        let mut v = json!({"streamName": "ORDERS", "durableName": "proc", "servers": ["nats://x"], "filterSubject": "orders.new"});
        if let (Some(m), Some(e)) = (v.as_object_mut(), extra.as_object()) {
            m.extend(e.clone());
        }
        let spec: ConsumerSpec = serde_json::from_value(v).expect("consumer spec");
        Wanted::Consumer {
            stream: "ORDERS".into(),
            config: config::consumer_config(&spec).expect("consumer config"),
        }
    };
    let c1 = consumer(json!({"maxDeliver": 5, "ackWait": "10s", "description": "d"}));
    assert_eq!(
        sync(&api, &c1, None, false, true).await.expect("consumer"),
        Outcome::Created,
        "{who}"
    );
    assert_eq!(
        sync(&api, &c1, None, false, false).await.expect("consumer"),
        Outcome::InSync,
        "{who}"
    );
    let c2 = consumer(json!({"maxDeliver": 7, "ackWait": "20s", "description": "d"}));
    assert_eq!(
        sync(&api, &c2, None, false, true).await.expect("consumer"),
        Outcome::Updated,
        "{who}"
    );
    let info = api
        .consumer_config("ORDERS", "proc")
        .await
        .expect("info")
        .expect("exists");
    assert_eq!(info["max_deliver"], 7, "{who}");
    assert_eq!(info["ack_wait"], 20_000_000_000_i64, "{who}");
    let c3 = consumer(
        json!({"maxDeliver": 7, "ackWait": "20s", "description": "d", "ackPolicy": "all"}),
    );
    let err = sync(&api, &c3, None, false, true)
        .await
        .expect_err("ack policy");
    assert!(
        err.to_string().contains("ack policy can not be updated"),
        "{who}: {err}"
    );
    // Deleting: the consumer, then the stream; deleting again finds nothing.
    assert!(
        api.consumer_delete("ORDERS", "proc").await.expect("delete"),
        "{who}"
    );
    assert!(
        !api.consumer_delete("ORDERS", "proc").await.expect("delete"),
        "{who}"
    );
    assert!(api.stream_delete("ORDERS").await.expect("delete"), "{who}");
    assert!(!api.stream_delete("ORDERS").await.expect("delete"), "{who}");
    assert!(
        api.stream_config("ORDERS").await.expect("info").is_none(),
        "{who}"
    );
}

async fn buckets_usable(server: &Server) {
    let who = server.name;
    let (client, api) = api(server).await;
    let js = jetstream::new(client);

    let kv: KeyValueSpec = serde_json::from_value(
        json!({"bucket": "cfg", "history": 3, "ttl": "1h", "servers": ["nats://x"]}),
    )
    .expect("kv spec");
    let w = Wanted::Stream(config::kv_stream_config(&kv).expect("kv config"));
    assert_eq!(
        sync(&api, &w, None, false, true).await.expect("kv"),
        Outcome::Created,
        "{who}"
    );
    assert_eq!(
        sync(&api, &w, None, false, false).await.expect("kv"),
        Outcome::InSync,
        "{who}"
    );
    let store = js.get_key_value("cfg").await.expect("open bucket");
    for v in ["1", "2", "3", "4"] {
        store.put("k", v.into()).await.expect("put");
    }
    let got = store.get("k").await.expect("get").expect("value");
    assert_eq!(&got[..], b"4", "{who}");
    let history: Vec<_> = store
        .history("k")
        .await
        .expect("history")
        .collect::<Vec<_>>()
        .await;
    assert_eq!(history.len(), 3, "{who}: history 3 keeps three values");
    // History is mutable on a bucket.
    let kv5: KeyValueSpec = serde_json::from_value(
        json!({"bucket": "cfg", "history": 5, "ttl": "1h", "servers": ["nats://x"]}),
    )
    .expect("kv spec");
    let w5 = Wanted::Stream(config::kv_stream_config(&kv5).expect("kv config"));
    assert_eq!(
        sync(&api, &w5, None, false, true).await.expect("kv"),
        Outcome::Updated,
        "{who}"
    );
    assert_eq!(
        server_stream(&api, "KV_cfg").await["max_msgs_per_subject"],
        5,
        "{who}"
    );

    let os: ObjectStoreSpec =
        serde_json::from_value(json!({"bucket": "files", "servers": ["nats://x"]}))
            .expect("object store spec");
    let w = Wanted::Stream(config::object_stream_config(&os).expect("os config"));
    assert_eq!(
        sync(&api, &w, None, false, true).await.expect("os"),
        Outcome::Created,
        "{who}"
    );
    assert_eq!(
        sync(&api, &w, None, false, false).await.expect("os"),
        Outcome::InSync,
        "{who}"
    );
    let bucket = js
        .get_object_store("files")
        .await
        .expect("open object store");
    let data = vec![7u8; 300_000];
    bucket
        .put("blob", &mut data.as_slice())
        .await
        .expect("put object");
    let mut obj = bucket.get("blob").await.expect("get object");
    let mut read = Vec::new();
    tokio::io::AsyncReadExt::read_to_end(&mut obj, &mut read)
        .await
        .expect("read object");
    assert_eq!(read, data, "{who}");
}

#[tokio::test]
async fn streams_and_consumers_follow_the_spec_on_every_server() {
    for (name, bin) in servers::binaries() {
        let server = servers::start(name, &bin);
        stream_lifecycle(&server).await;
        eprintln!("{name}: stream and consumer lifecycle ok");
    }
}

#[tokio::test]
async fn key_value_and_object_store_buckets_are_usable_by_clients() {
    for (name, bin) in servers::binaries() {
        let server = servers::start(name, &bin);
        buckets_usable(&server).await;
        eprintln!("{name}: KV and object store ok");
    }
}

const STREAMS: &str = "/apis/natrix.io/v1alpha1/namespaces/ns/streams";
const CLUSTER: &str = "/apis/natrix.io/v1alpha1/namespaces/ns/natsclusters/nc";
const EVENTS: &str = "/apis/events.k8s.io/v1/namespaces/ns/events";
const FINALIZER: &str = "stream.natrix.io/finalizer";

fn context(client: kube::Client, url: &str) -> Arc<JsContext> {
    let mut ctx = JsContext::new(client, Arc::new(Metrics::new()));
    ctx.now = Arc::new(|| Time(k8s_openapi::jiff::Timestamp::from_second(1_800_000_000).unwrap()));
    let url = url.to_string();
    // The NatsCluster's client Service, here a server on loopback.
    ctx.cluster_url = Arc::new(move |name, ns| {
        assert_eq!((name, ns), ("nc", "ns"));
        url.clone()
    });
    Arc::new(ctx)
}

/// A Stream resource `orders` naming the NatsCluster `nc`.
fn stream_resource(spec: Value, generation: i64, finalizer: bool, status: Option<Value>) -> Stream {
    let mut spec_v =
        json!({"name": "ORDERS", "subjects": ["orders.>"], "natsClusterRef": {"name": "nc"}});
    if let (Some(m), Some(e)) = (spec_v.as_object_mut(), spec.as_object()) {
        m.extend(e.clone());
    }
    let mut v = json!({
        "apiVersion": "natrix.io/v1alpha1", "kind": "Stream",
        "metadata": {"name": "orders", "namespace": "ns", "uid": "uid-s", "generation": generation},
        "spec": spec_v,
    });
    if finalizer {
        v["metadata"]["finalizers"] = json!([FINALIZER]);
    }
    if let Some(s) = status {
        v["status"] = s;
    }
    serde_json::from_value(v).expect("stream resource")
}

fn nats_cluster(jetstream: bool) -> Value {
    json!({"apiVersion": "natrix.io/v1alpha1", "kind": "NatsCluster",
           "metadata": {"name": "nc", "namespace": "ns"},
           "spec": {"replicas": 3, "jetstream": {"enabled": jetstream, "memoryStorage": {"size": "1Gi"}}}})
}

/// What the API server answers to a status patch (the object; its content is not read).
fn stream_echo() -> Value {
    serde_json::to_value(stream_resource(json!({}), 1, true, None)).expect("json")
}

fn ready(seen: &Seen) -> &Value {
    &seen.body["status"]["conditions"][0]
}

async fn reconcile_stream_through_the_api(server: &Server) {
    let who = server.name;
    let (_, api) = api(server).await;
    let status_path = format!("{STREAMS}/orders/status");
    let path = format!("{STREAMS}/orders");

    // 1. No finalizer yet: it is added, and nothing else happens.
    let with_finalizer =
        serde_json::to_value(stream_resource(json!({}), 1, true, None)).expect("json");
    let (client, mock) = serve(vec![step(Method::PATCH, &path, 200, Some(with_finalizer))]);
    let action = reconcile(
        Arc::new(stream_resource(json!({}), 1, false, None)),
        context(client, &server.url),
    )
    .await
    .expect("reconcile");
    assert_eq!(action, Action::await_change());
    let seen = mock.await.expect("mock");
    assert_eq!(seen[0].body[1]["value"], json!([FINALIZER]), "{who}");
    assert!(
        api.stream_config("ORDERS").await.expect("info").is_none(),
        "{who}: nothing before the finalizer"
    );

    // 2. Created through the NatsCluster's Service; event and status.
    let (client, mock) = serve(vec![
        step(Method::GET, CLUSTER, 200, Some(nats_cluster(true))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, &status_path, 200, Some(stream_echo())),
    ]);
    let action = reconcile(
        Arc::new(stream_resource(json!({}), 1, true, None)),
        context(client, &server.url),
    )
    .await
    .expect("reconcile");
    assert_eq!(action, Action::requeue(SYNC_INTERVAL));
    let seen = mock.await.expect("mock");
    assert_eq!(seen[1].body["reason"], "Created", "{who}");
    assert_eq!(seen[2].body["status"]["observedGeneration"], 1, "{who}");
    let created = seen[2].body["status"].clone();
    assert_eq!(ready(&seen[2])["status"], "True", "{who}");
    assert_eq!(ready(&seen[2])["reason"], "Created", "{who}");
    assert_eq!(
        ready(&seen[2])["message"],
        "stream ORDERS created on the server",
        "{who}"
    );
    assert_eq!(
        server_stream(&api, "ORDERS").await["subjects"],
        json!(["orders.>"]),
        "{who}"
    );

    // 3. The periodic look: in sync, so no writes at all.
    let (client, mock) = serve(vec![step(
        Method::GET,
        CLUSTER,
        200,
        Some(nats_cluster(true)),
    )]);
    let action = reconcile(
        Arc::new(stream_resource(json!({}), 1, true, Some(created.clone()))),
        context(client, &server.url),
    )
    .await
    .expect("reconcile");
    assert_eq!(action, Action::requeue(SYNC_INTERVAL));
    mock.await.expect("mock");

    // 4. Edited by hand on the server: put back, with an event saying what changed.
    hand_edit(&api, "ORDERS", |c| c["max_msgs"] = json!(10)).await;
    let (client, mock) = serve(vec![
        step(Method::GET, CLUSTER, 200, Some(nats_cluster(true))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, &status_path, 200, Some(stream_echo())),
    ]);
    reconcile(
        Arc::new(stream_resource(json!({}), 1, true, Some(created.clone()))),
        context(client, &server.url),
    )
    .await
    .expect("reconcile");
    let seen = mock.await.expect("mock");
    assert_eq!(seen[1].body["reason"], "DriftCorrected", "{who}");
    assert!(
        seen[1].body["note"]
            .as_str()
            .unwrap_or_default()
            .contains("max_msgs"),
        "{who}: {}",
        seen[1].body
    );
    assert_eq!(ready(&seen[2])["reason"], "Synced", "{who}");
    assert_eq!(server_stream(&api, "ORDERS").await["max_msgs"], -1, "{who}");
    let synced = seen[2].body["status"].clone();

    // 5. A spec the API server lets through and the JetStream server refuses: the
    //    server's words in the status and a Warning event; the stream stays as it was.
    let bad = json!({"maxAge": "1m", "duplicateWindow": "2m"});
    let (client, mock) = serve(vec![
        step(Method::GET, CLUSTER, 200, Some(nats_cluster(true))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, &status_path, 200, Some(stream_echo())),
    ]);
    reconcile(
        Arc::new(stream_resource(bad, 2, true, Some(synced))),
        context(client, &server.url),
    )
    .await
    .expect("reconcile");
    let seen = mock.await.expect("mock");
    assert_eq!(seen[1].body["type"], "Warning", "{who}");
    let cond = ready(&seen[2]);
    assert_eq!(cond["status"], "False", "{who}");
    assert_eq!(cond["reason"], "Refused", "{who}");
    let message = cond["message"].as_str().unwrap_or_default();
    assert!(
        message.starts_with(
            "the server refused stream ORDERS: duplicates window can not be larger then max age"
        ),
        "{who}: {message}"
    );
    assert_eq!(seen[2].body["status"]["observedGeneration"], 2, "{who}");
    assert_eq!(server_stream(&api, "ORDERS").await["max_age"], 0, "{who}");

    // 6. Deleted: gone from the server, then the finalizer is released.
    let mut deleting =
        serde_json::to_value(stream_resource(json!({}), 2, true, None)).expect("json");
    deleting["metadata"]["deletionTimestamp"] = json!("2027-01-15T08:00:00Z");
    let deleting: Stream = serde_json::from_value(deleting).expect("stream");
    let (client, mock) = serve(vec![
        step(Method::GET, CLUSTER, 200, Some(nats_cluster(true))),
        step(Method::POST, EVENTS, 201, None),
        step(
            Method::PATCH,
            &path,
            200,
            Some(serde_json::to_value(&deleting).expect("json")),
        ),
    ]);
    reconcile(Arc::new(deleting.clone()), context(client, &server.url))
        .await
        .expect("reconcile");
    let seen = mock.await.expect("mock");
    assert_eq!(seen[1].body["reason"], "Deleted", "{who}");
    assert_eq!(seen[2].body[1]["op"], "remove", "{who}: {}", seen[2].body);
    assert!(
        api.stream_config("ORDERS").await.expect("info").is_none(),
        "{who}: deleted"
    );

    // 7. preventDelete: the finalizer goes, the stream stays.
    api.stream_create(&config::stream_config(&stream_spec(json!({}))).expect("config"))
        .await
        .expect("create");
    let mut keep = serde_json::to_value(stream_resource(
        json!({"preventDelete": true}),
        3,
        true,
        None,
    ))
    .expect("json");
    keep["metadata"]["deletionTimestamp"] = json!("2027-01-15T08:00:00Z");
    let keep: Stream = serde_json::from_value(keep).expect("stream");
    let (client, mock) = serve(vec![
        step(Method::POST, EVENTS, 201, None),
        step(
            Method::PATCH,
            &path,
            200,
            Some(serde_json::to_value(&keep).expect("json")),
        ),
    ]);
    reconcile(Arc::new(keep), context(client, &server.url))
        .await
        .expect("reconcile");
    let seen = mock.await.expect("mock");
    assert_eq!(seen[0].body["reason"], "DeleteSkipped", "{who}");
    assert!(
        api.stream_config("ORDERS").await.expect("info").is_some(),
        "{who}: kept"
    );
}

#[tokio::test]
async fn stream_reconciles_create_correct_refuse_and_delete() {
    for (name, bin) in servers::binaries() {
        let server = servers::start(name, &bin);
        reconcile_stream_through_the_api(&server).await;
        eprintln!("{name}: reconcile through the API ok");
    }
}

#[tokio::test]
async fn a_missing_or_plain_cluster_is_reported_in_words() {
    let (name, bin) = servers::binaries().remove(0);
    let server = servers::start(name, &bin);
    let status_path = format!("{STREAMS}/orders/status");
    let (client, mock) = serve(vec![
        step(
            Method::GET,
            CLUSTER,
            404,
            Some(not_found("natsclusters.natrix.io \"nc\"")),
        ),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, &status_path, 200, Some(stream_echo())),
    ]);
    let action = reconcile(
        Arc::new(stream_resource(json!({}), 1, true, None)),
        context(client, &server.url),
    )
    .await
    .expect("reconcile");
    assert_eq!(action, Action::requeue(REQUEUE_WAITING));
    let seen = mock.await.expect("mock");
    assert_eq!(seen[1].body["reason"], "ClusterNotFound");
    assert_eq!(
        ready(&seen[2])["message"],
        "NatsCluster ns/nc does not exist"
    );

    let (client, mock) = serve(vec![
        step(Method::GET, CLUSTER, 200, Some(nats_cluster(false))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, &status_path, 200, Some(stream_echo())),
    ]);
    reconcile(
        Arc::new(stream_resource(json!({}), 1, true, None)),
        context(client, &server.url),
    )
    .await
    .expect("reconcile");
    let seen = mock.await.expect("mock");
    assert_eq!(ready(&seen[2])["reason"], "JetStreamDisabled");

    // Deleting a Stream whose cluster is gone releases the finalizer without a server.
    let mut deleting =
        serde_json::to_value(stream_resource(json!({}), 1, true, None)).expect("json");
    deleting["metadata"]["deletionTimestamp"] = json!("2027-01-15T08:00:00Z");
    let deleting: Stream = serde_json::from_value(deleting).expect("stream");
    let (client, mock) = serve(vec![
        step(
            Method::GET,
            CLUSTER,
            404,
            Some(not_found("natsclusters.natrix.io \"nc\"")),
        ),
        step(Method::POST, EVENTS, 201, None),
        step(
            Method::PATCH,
            &format!("{STREAMS}/orders"),
            200,
            Some(serde_json::to_value(&deleting).expect("json")),
        ),
    ]);
    reconcile(Arc::new(deleting), context(client, &server.url))
        .await
        .expect("reconcile");
    let seen = mock.await.expect("mock");
    assert_eq!(seen[1].body["reason"], "DeleteSkipped");
    assert_eq!(seen[1].body["type"], "Warning");
}

#[tokio::test]
async fn key_value_reconciles_with_external_servers() {
    let (name, bin) = servers::binaries().remove(0);
    let server = servers::start(name, &bin);
    let kv: KeyValue = serde_json::from_value(json!({
        "apiVersion": "natrix.io/v1alpha1", "kind": "KeyValue",
        "metadata": {"name": "cfg", "namespace": "ns", "uid": "uid-k", "generation": 1,
                     "finalizers": ["keyvalue.natrix.io/finalizer"]},
        "spec": {"bucket": "settings", "history": 2, "servers": [server.url]},
    }))
    .expect("kv");
    // External servers: no Kubernetes reads before the server is asked.
    let (client, mock) = serve(vec![
        step(Method::POST, EVENTS, 201, None),
        step(
            Method::PATCH,
            "/apis/natrix.io/v1alpha1/namespaces/ns/keyvalues/cfg/status",
            200,
            Some(serde_json::to_value(&kv).expect("json")),
        ),
    ]);
    reconcile(Arc::new(kv.clone()), context(client, &server.url))
        .await
        .expect("reconcile");
    let seen = mock.await.expect("mock");
    assert_eq!(
        ready(&seen[1])["message"],
        "stream KV_settings created on the server"
    );
    let client = async_nats::connect(&server.url).await.expect("connect");
    let store = jetstream::new(client)
        .get_key_value("settings")
        .await
        .expect("bucket");
    store.put("a", "1".into()).await.expect("put");
    assert_eq!(
        &store.get("a").await.expect("get").expect("value")[..],
        b"1"
    );
}

/// The NACK-shaped examples (at R1: these servers are single) are accepted by every
/// server, and what the server then holds matches them.
#[tokio::test]
async fn the_examples_apply_on_every_server() {
    let dir = common::repo_root().join("deploy/examples/jetstream");
    let mut wanted = Vec::new();
    for file in [
        "stream.yaml",
        "consumer.yaml",
        "keyvalue.yaml",
        "objectstore.yaml",
    ] {
        let text = std::fs::read_to_string(dir.join(file)).expect("example");
        for doc in serde_norway::Deserializer::from_str(&text) {
            let mut v = <Value as serde::Deserialize>::deserialize(doc).expect("yaml");
            if v["spec"].get("replicas").is_some() {
                v["spec"]["replicas"] = json!(1);
            }
            let spec = v["spec"].clone();
            let w = match v["kind"].as_str().unwrap_or_default() {
                "Stream" => Wanted::Stream(
                    config::stream_config(&serde_json::from_value(spec).expect("spec"))
                        .expect("config"),
                ),
                "Consumer" => {
                    let c: ConsumerSpec = serde_json::from_value(spec).expect("spec");
                    Wanted::Consumer {
                        stream: c.stream_name.clone(),
                        config: config::consumer_config(&c).expect("config"),
                    }
                }
                "KeyValue" => Wanted::Stream(
                    config::kv_stream_config(&serde_json::from_value(spec).expect("spec"))
                        .expect("config"),
                ),
                "ObjectStore" => Wanted::Stream(
                    config::object_stream_config(&serde_json::from_value(spec).expect("spec"))
                        .expect("config"),
                ),
                other => panic!("unexpected kind {other}"),
            };
            wanted.push(w);
        }
    }
    assert_eq!(wanted.len(), 5);
    for (name, bin) in servers::binaries() {
        let server = servers::start(name, &bin);
        let (_, api) = api(&server).await;
        for w in &wanted {
            let what = w.describe();
            let created = sync(&api, w, None, false, true)
                .await
                .unwrap_or_else(|e| panic!("{name}: {what}: {e}"));
            assert_eq!(created, Outcome::Created, "{name}: {what}");
            let again = sync(&api, w, None, false, false)
                .await
                .unwrap_or_else(|e| panic!("{name}: {what}: {e}"));
            assert_eq!(again, Outcome::InSync, "{name}: {what}");
        }
    }
}

/// A KeyValue resource on external `servers`, with optional credentials from a Secret.
fn external_kv(url: &str, credentials: Option<Value>) -> KeyValue {
    let mut spec = json!({"bucket": "auth", "servers": [url]});
    if let Some(c) = credentials {
        spec["credentialsSecret"] = c;
    }
    serde_json::from_value(json!({
        "apiVersion": "natrix.io/v1alpha1", "kind": "KeyValue",
        "metadata": {"name": "auth", "namespace": "ns", "uid": "uid-a", "generation": 1,
                     "finalizers": ["keyvalue.natrix.io/finalizer"]},
        "spec": spec,
    }))
    .expect("kv")
}

const KV_STATUS: &str = "/apis/natrix.io/v1alpha1/namespaces/ns/keyvalues/auth/status";
const SECRET: &str = "/api/v1/namespaces/ns/secrets/js-user";

fn secret(user: &str, password: &str) -> Value {
    use k8s_openapi::ByteString;
    use k8s_openapi::api::core::v1::Secret;
    let data = [("user", user), ("password", password)]
        .into_iter()
        .map(|(k, v)| (k.to_string(), ByteString(v.as_bytes().to_vec())))
        .collect();
    let mut s = Secret {
        data: Some(data),
        ..Secret::default()
    };
    s.metadata.name = Some("js-user".into());
    s.metadata.namespace = Some("ns".into());
    // k8s-openapi writes `data` in base64, as the API server sends it.
    serde_json::to_value(s).expect("secret")
}

#[tokio::test]
async fn credentials_come_from_a_secret_and_failures_are_reported() {
    let (name, bin) = servers::binaries().remove(0);
    let server = servers::start_with(name, &bin, &["--user", "js", "--pass", "s3cret"]);
    let creds = json!({"name": "js-user", "user": "user", "password": "password"});

    // The right user and password, read from the Secret: created.
    let kv = external_kv(&server.url, Some(creds.clone()));
    let echo = serde_json::to_value(&kv).expect("json");
    let (client, mock) = serve(vec![
        step(Method::GET, SECRET, 200, Some(secret("js", "s3cret"))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, KV_STATUS, 200, Some(echo.clone())),
    ]);
    reconcile(Arc::new(kv.clone()), context(client, &server.url))
        .await
        .expect("reconcile");
    let seen = mock.await.expect("mock");
    assert_eq!(ready(&seen[2])["reason"], "Created", "{}", seen[2].body);

    // A wrong password: the server's refusal, in status.
    let (client, mock) = serve(vec![
        step(Method::GET, SECRET, 200, Some(secret("js", "wrong"))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, KV_STATUS, 200, Some(echo.clone())),
    ]);
    reconcile(Arc::new(kv.clone()), context(client, &server.url))
        .await
        .expect("reconcile");
    let seen = mock.await.expect("mock");
    let cond = ready(&seen[2]);
    assert_eq!(cond["reason"], "ConnectionFailed", "{cond}");
    assert!(
        cond["message"]
            .as_str()
            .unwrap_or_default()
            .to_lowercase()
            .contains("authorization"),
        "{cond}"
    );

    // A missing Secret is named.
    let (client, mock) = serve(vec![
        step(
            Method::GET,
            SECRET,
            404,
            Some(not_found("secrets \"js-user\"")),
        ),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, KV_STATUS, 200, Some(echo.clone())),
    ]);
    reconcile(Arc::new(kv), context(client, &server.url))
        .await
        .expect("reconcile");
    let seen = mock.await.expect("mock");
    assert_eq!(ready(&seen[2])["reason"], "SecretNotFound");
    assert_eq!(
        ready(&seen[2])["message"],
        "Secret ns/js-user does not exist"
    );

    // Nobody listening: reported within the connect timeout, not hung.
    let nobody = external_kv("nats://127.0.0.1:1", None);
    let (client, mock) = serve(vec![
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, KV_STATUS, 200, Some(echo)),
    ]);
    let started = std::time::Instant::now();
    reconcile(Arc::new(nobody), context(client, &server.url))
        .await
        .expect("reconcile");
    assert!(started.elapsed() < std::time::Duration::from_secs(15));
    let seen = mock.await.expect("mock");
    assert_eq!(ready(&seen[1])["reason"], "ConnectionFailed");
}

#[tokio::test]
async fn a_stream_made_by_hand_is_not_taken_over_unless_adopted() {
    let (name, bin) = servers::binaries().remove(0);
    let server = servers::start(name, &bin);
    let (_, api) = api(&server).await;
    // Made by hand, with a limit of its own.
    let mut by_hand = config::stream_config(&stream_spec(json!({}))).expect("config");
    by_hand["max_msgs"] = json!(7);
    api.stream_create(&by_hand).await.expect("create by hand");
    let status_path = format!("{STREAMS}/orders/status");

    // Reported, and left as it is.
    let (client, mock) = serve(vec![
        step(Method::GET, CLUSTER, 200, Some(nats_cluster(true))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, &status_path, 200, Some(stream_echo())),
    ]);
    reconcile(
        Arc::new(stream_resource(json!({}), 1, true, None)),
        context(client, &server.url),
    )
    .await
    .expect("reconcile");
    let seen = mock.await.expect("mock");
    let cond = ready(&seen[2]);
    assert_eq!(cond["reason"], "NameClash", "{cond}");
    assert_eq!(
        cond["message"],
        "stream ORDERS already exists on the server and was made outside the operator; it is left alone (annotate this resource natrix.io/adopt: \"true\" to take it over)"
    );
    assert_eq!(server_stream(&api, "ORDERS").await["max_msgs"], 7);

    // Deleting the resource leaves the stream that was never its own.
    let mut deleting =
        serde_json::to_value(stream_resource(json!({}), 1, true, None)).expect("json");
    deleting["metadata"]["deletionTimestamp"] = json!("2027-01-15T08:00:00Z");
    let echo = deleting.clone();
    let (client, mock) = serve(vec![
        step(Method::GET, CLUSTER, 200, Some(nats_cluster(true))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, &format!("{STREAMS}/orders"), 200, Some(echo)),
    ]);
    reconcile(
        Arc::new(serde_json::from_value::<Stream>(deleting).expect("stream")),
        context(client, &server.url),
    )
    .await
    .expect("reconcile");
    let seen = mock.await.expect("mock");
    assert_eq!(seen[1].body["reason"], "DeleteSkipped");
    assert_eq!(server_stream(&api, "ORDERS").await["max_msgs"], 7);

    // Adopted: the spec wins and the stream is stamped as this resource's.
    let mut adopting =
        serde_json::to_value(stream_resource(json!({}), 1, true, None)).expect("json");
    adopting["metadata"]["annotations"] = json!({"natrix.io/adopt": "true"});
    let (client, mock) = serve(vec![
        step(Method::GET, CLUSTER, 200, Some(nats_cluster(true))),
        step(Method::POST, EVENTS, 201, None),
        step(Method::PATCH, &status_path, 200, Some(stream_echo())),
    ]);
    reconcile(
        Arc::new(serde_json::from_value::<Stream>(adopting).expect("stream")),
        context(client, &server.url),
    )
    .await
    .expect("reconcile");
    let seen = mock.await.expect("mock");
    assert_eq!(ready(&seen[2])["reason"], "Synced", "{}", seen[2].body);
    let c = server_stream(&api, "ORDERS").await;
    assert_eq!(c["max_msgs"], -1);
    assert_eq!(c["metadata"]["natrix.io/owner"], "Stream/ns/orders");
}
