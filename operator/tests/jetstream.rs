//! The JetStream asset controllers against real servers on loopback (natrix-server and
//! nats-server, the same scenario on each): create, update of a mutable field, the
//! server's refusal of an immutable one, drift put back after a hand edit, preventUpdate,
//! consumers, key-value and object store buckets usable by a client library; then whole
//! reconciles through the scripted Kubernetes API (finalizer, status, events, delete with
//! and without preventDelete, a missing NatsCluster).

mod common;

use async_nats::jetstream;
use common::servers::{self, Server};
use futures::StreamExt;
use natrix_operator::controller::jetstream::{Outcome, Wanted, sync};
use natrix_operator::crd::jetstream::{ConsumerSpec, KeyValueSpec, ObjectStoreSpec, StreamSpec};
use natrix_operator::jetstream::api::JetStreamApi;
use natrix_operator::jetstream::config;
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
        sync(&api, &w, false, true).await.expect("create"),
        Outcome::Created,
        "{who}"
    );
    assert_eq!(
        sync(&api, &w, false, false).await.expect("resync"),
        Outcome::InSync,
        "{who}"
    );

    // A mutable field changes with the spec.
    let w =
        wanted_stream(json!({"maxAge": "2h", "description": "orders", "metadata": {"team": "a"}}));
    assert_eq!(
        sync(&api, &w, false, true).await.expect("update"),
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
        sync(&api, &w, false, false).await.expect("correct"),
        Outcome::Corrected(vec!["description".into(), "max_age".into()]),
        "{who}"
    );
    let c = server_stream(&api, "ORDERS").await;
    assert_eq!(c["max_age"], 7_200_000_000_000_i64, "{who}");
    assert_eq!(c["description"], "orders", "{who}");

    // preventUpdate: the difference is reported, the server left alone.
    hand_edit(&api, "ORDERS", |c| c["max_msgs"] = json!(5)).await;
    assert_eq!(
        sync(&api, &w, true, true).await.expect("prevented"),
        Outcome::UpdatePrevented(vec!["max_msgs".into()]),
        "{who}"
    );
    assert_eq!(server_stream(&api, "ORDERS").await["max_msgs"], 5, "{who}");
    assert_eq!(
        sync(&api, &w, false, false).await.expect("fix"),
        Outcome::Corrected(vec!["max_msgs".into()]),
        "{who}"
    );

    // What the server can not change comes back in its own words.
    let bad = wanted_stream(
        json!({"maxAge": "2h", "description": "orders", "metadata": {"team": "a"}, "storage": "memory"}),
    );
    let err = sync(&api, &bad, false, true)
        .await
        .expect_err("storage change");
    assert!(err.is_refusal(), "{who}: {err}");
    assert!(
        err.to_string()
            .contains("stream configuration update can not change storage type"),
        "{who}: {err}"
    );
    let bad = wanted_stream(json!({"maxAge": "2h", "retention": "workqueue"}));
    let err = sync(&api, &bad, false, true)
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
        sync(&api, &all, false, true).await.expect("all"),
        Outcome::Updated,
        "{who}"
    );
    assert_eq!(
        sync(&api, &all, false, false).await.expect("in sync"),
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
        sync(&api, &c1, false, true).await.expect("consumer"),
        Outcome::Created,
        "{who}"
    );
    assert_eq!(
        sync(&api, &c1, false, false).await.expect("consumer"),
        Outcome::InSync,
        "{who}"
    );
    let c2 = consumer(json!({"maxDeliver": 7, "ackWait": "20s", "description": "d"}));
    assert_eq!(
        sync(&api, &c2, false, true).await.expect("consumer"),
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
    let err = sync(&api, &c3, false, true).await.expect_err("ack policy");
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
        sync(&api, &w, false, true).await.expect("kv"),
        Outcome::Created,
        "{who}"
    );
    assert_eq!(
        sync(&api, &w, false, false).await.expect("kv"),
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
        sync(&api, &w5, false, true).await.expect("kv"),
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
        sync(&api, &w, false, true).await.expect("os"),
        Outcome::Created,
        "{who}"
    );
    assert_eq!(
        sync(&api, &w, false, false).await.expect("os"),
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
