//! The JetStream asset CRDs: their CEL rules refuse, at `kubectl apply`, what the server
//! would refuse to update (run client-side with kube's CEL evaluator, the same rules the
//! API server runs), and the NACK-shaped examples in `deploy/examples/jetstream/` pass the
//! schema and carry over from NACK by their apiVersion alone.

mod common;

use kube::CustomResourceExt;
use kube::core::cel::{validate_cel, validate_cel_update};
use natrix_operator::crd::{Consumer, KeyValue, ObjectStore, Stream};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};

fn res<K: DeserializeOwned>(kind: &str, spec: Value) -> K {
    let mut full = json!({"natsClusterRef": {"name": "js"}});
    if let (Some(m), Some(e)) = (full.as_object_mut(), spec.as_object()) {
        m.extend(e.clone());
    }
    serde_json::from_value(json!({
        "apiVersion": "natrix.io/v1alpha1", "kind": kind,
        "metadata": {"name": "x", "namespace": "ns"},
        "spec": full,
    }))
    .unwrap_or_else(|e| panic!("{kind}: {e}"))
}

fn stream(spec: Value) -> Stream {
    let mut s = json!({"name": "ORDERS", "subjects": ["orders.>"]});
    if let (Some(m), Some(e)) = (s.as_object_mut(), spec.as_object()) {
        m.extend(e.clone());
    }
    res("Stream", s)
}

fn consumer(spec: Value) -> Consumer {
    let mut s = json!({"streamName": "ORDERS", "durableName": "proc"});
    if let (Some(m), Some(e)) = (s.as_object_mut(), spec.as_object()) {
        m.extend(e.clone());
    }
    res("Consumer", s)
}

fn refused<K: CustomResourceExt + Serialize>(obj: &K, message: &str) {
    match validate_cel(obj) {
        Ok(()) => panic!("accepted, expected refusal with {message:?}"),
        Err(e) => assert!(e.to_string().contains(message), "{e}"),
    }
}

fn refused_update<K: CustomResourceExt + Serialize>(old: &K, new: &K, message: &str) {
    validate_cel(new).unwrap_or_else(|e| panic!("the new object alone must pass: {e}"));
    match validate_cel_update(new, old) {
        Ok(()) => panic!("update accepted, expected refusal with {message:?}"),
        Err(e) => assert!(e.to_string().contains(message), "{e}"),
    }
}

fn accepted_update<K: CustomResourceExt + Serialize>(old: &K, new: &K) {
    validate_cel_update(new, old).unwrap_or_else(|e| panic!("update refused: {e}"));
}

#[test]
fn a_server_must_be_named_once() {
    let both: Stream = res(
        "Stream",
        json!({"name": "S", "servers": ["nats://a:4222"], "natsClusterRef": {"name": "js"}}),
    );
    refused(&both, "either natsClusterRef or servers");
    let neither: Stream = serde_json::from_value(json!({
        "apiVersion": "natrix.io/v1alpha1", "kind": "Stream",
        "metadata": {"name": "x", "namespace": "ns"}, "spec": {"name": "S"},
    }))
    .expect("stream");
    refused(&neither, "either natsClusterRef or servers");
    let external: Stream = serde_json::from_value(json!({
        "apiVersion": "natrix.io/v1alpha1", "kind": "Stream",
        "metadata": {"name": "x", "namespace": "ns"},
        "spec": {"name": "S", "servers": ["nats://a:4222"],
                 "credentialsSecret": {"name": "c", "creds": "user.creds"}},
    }))
    .expect("stream");
    validate_cel(&external).expect("servers with a creds Secret");
    let two_kinds: Stream = res(
        "Stream",
        json!({"name": "S", "credentialsSecret": {"name": "c", "creds": "a", "token": "t"}}),
    );
    refused(&two_kinds, "exactly one of creds, nkey, token or user");
    let no_password: Stream = res(
        "Stream",
        json!({"name": "S", "credentialsSecret": {"name": "c", "user": "u"}}),
    );
    refused(&no_password, "user and password go together");
}

#[test]
fn stream_fields_the_server_can_not_update_are_refused() {
    let base = stream(json!({"storage": "file", "retention": "limits"}));
    refused_update(
        &base,
        &stream(json!({"name": "OTHER"})),
        "name is immutable",
    );
    refused_update(
        &base,
        &stream(json!({"storage": "memory"})),
        "storage is immutable",
    );
    // Unset means file: setting memory later is a change, setting file is not.
    refused_update(
        &stream(json!({})),
        &stream(json!({"storage": "memory"})),
        "storage is immutable",
    );
    accepted_update(&stream(json!({})), &stream(json!({"storage": "file"})));
    refused_update(
        &base,
        &stream(json!({"retention": "workqueue"})),
        "to or from workqueue",
    );
    refused_update(
        &stream(json!({"retention": "workqueue"})),
        &stream(json!({"retention": "interest"})),
        "to or from workqueue",
    );
    // limits <-> interest is allowed by the server.
    accepted_update(&base, &stream(json!({"retention": "interest"})));
    refused_update(
        &stream(json!({"sealed": true})),
        &stream(json!({"sealed": false})),
        "can not be unsealed",
    );
    refused_update(
        &stream(json!({"denyDelete": true})),
        &stream(json!({})),
        "denyDelete can not be turned off",
    );
    refused_update(
        &stream(json!({"denyPurge": true})),
        &stream(json!({"denyPurge": false})),
        "denyPurge can not be turned off",
    );
    refused_update(
        &stream(json!({"allowMsgTtl": true})),
        &stream(json!({})),
        "allowMsgTtl can not be turned off",
    );
    refused_update(
        &stream(json!({})),
        &stream(json!({"allowMsgCounter": true})),
        "allowMsgCounter is immutable",
    );
    refused_update(
        &stream(json!({})),
        &stream(json!({"persistMode": "async"})),
        "persistMode is immutable",
    );
    let mirror =
        |name: &str| res::<Stream>("Stream", json!({"name": "M", "mirror": {"name": name}}));
    refused_update(
        &mirror("A"),
        &mirror("B"),
        "mirror can not be added or changed",
    );
    refused_update(
        &res::<Stream>("Stream", json!({"name": "M"})),
        &mirror("A"),
        "mirror can not be added or changed",
    );
    refused(
        &stream(json!({"mirror": {"name": "A"}})),
        "a mirror has no subjects",
    );
    // The mutable ones go through.
    accepted_update(
        &base,
        &stream(
            json!({"storage": "file", "maxAge": "2h", "subjects": ["a", "b"], "replicas": 3,
                       "description": "new", "maxBytes": 10, "denyDelete": true, "sealed": true}),
        ),
    );
}

#[test]
fn consumer_fields_the_server_can_not_update_are_refused() {
    let base = consumer(json!({"ackPolicy": "explicit"}));
    refused_update(
        &base,
        &consumer(json!({"durableName": "other"})),
        "streamName and durableName are immutable",
    );
    refused_update(
        &base,
        &consumer(json!({"streamName": "OTHER"})),
        "streamName and durableName are immutable",
    );
    refused_update(
        &base,
        &consumer(json!({"deliverPolicy": "new"})),
        "deliverPolicy can not be updated",
    );
    refused_update(
        &base,
        &consumer(json!({"ackPolicy": "all"})),
        "ackPolicy can not be updated",
    );
    refused_update(
        &consumer(json!({})),
        &consumer(json!({"ackPolicy": "none"})),
        "ackPolicy can not be updated",
    );
    refused_update(
        &base,
        &consumer(json!({"replayPolicy": "original"})),
        "replayPolicy can not be updated",
    );
    refused_update(
        &base,
        &consumer(json!({"memStorage": true})),
        "memStorage can not be updated",
    );
    refused_update(
        &base,
        &consumer(json!({"deliverSubject": "out"})),
        "pull consumer can not become a push consumer",
    );
    refused_update(
        &consumer(json!({"deliverSubject": "out", "heartbeatInterval": "5s"})),
        &consumer(json!({"deliverSubject": "out", "heartbeatInterval": "10s"})),
        "flowControl and heartbeatInterval can not be updated",
    );
    refused_update(
        &consumer(json!({"maxWaiting": 10})),
        &consumer(json!({"maxWaiting": 20})),
        "maxWaiting can not be updated",
    );
    refused_update(
        &consumer(json!({"deliverPolicy": "byStartSequence", "optStartSeq": 1})),
        &consumer(json!({"deliverPolicy": "byStartSequence", "optStartSeq": 2})),
        "optStartSeq and optStartTime can not be updated",
    );
    refused(
        &consumer(json!({"deliverPolicy": "byStartSequence"})),
        "optStartSeq goes with deliverPolicy byStartSequence",
    );
    refused(
        &consumer(json!({"optStartTime": "2026-01-01T00:00:00Z"})),
        "optStartTime goes with deliverPolicy byStartTime",
    );
    refused(
        &consumer(json!({"filterSubject": "a", "filterSubjects": ["b"]})),
        "not both",
    );
    // What the server updates in place.
    accepted_update(
        &base,
        &consumer(
            json!({"ackPolicy": "explicit", "maxDeliver": 9, "ackWait": "1m",
                         "description": "d", "maxAckPending": 5, "filterSubject": "orders.x",
                         "backoff": ["1s"], "inactiveThreshold": "1h"}),
        ),
    );
}

#[test]
fn buckets_keep_their_name_and_storage() {
    let kv = |spec: Value| -> KeyValue {
        let mut s = json!({"bucket": "cfg"});
        if let (Some(m), Some(e)) = (s.as_object_mut(), spec.as_object()) {
            m.extend(e.clone());
        }
        res("KeyValue", s)
    };
    refused_update(
        &kv(json!({})),
        &kv(json!({"bucket": "other"})),
        "bucket is immutable",
    );
    refused_update(
        &kv(json!({})),
        &kv(json!({"storage": "memory"})),
        "storage is immutable",
    );
    accepted_update(
        &kv(json!({"history": 1})),
        &kv(json!({"history": 10, "ttl": "1h"})),
    );
    let os = |spec: Value| -> ObjectStore {
        let mut s = json!({"bucket": "files"});
        if let (Some(m), Some(e)) = (s.as_object_mut(), spec.as_object()) {
            m.extend(e.clone());
        }
        res("ObjectStore", s)
    };
    refused_update(
        &os(json!({})),
        &os(json!({"bucket": "x"})),
        "bucket is immutable",
    );
    refused_update(
        &os(json!({"storage": "file"})),
        &os(json!({"storage": "memory"})),
        "storage is immutable",
    );
    accepted_update(&os(json!({})), &os(json!({"maxBytes": 1024, "ttl": "1h"})));
}

/// Each document of the JetStream examples, with its kind.
fn example_docs() -> Vec<(String, Value)> {
    let dir = common::repo_root().join("deploy/examples/jetstream");
    let mut paths: Vec<_> = std::fs::read_dir(&dir)
        .expect("deploy/examples/jetstream")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .collect();
    paths.sort();
    assert!(paths.len() >= 4, "examples missing: {paths:?}");
    let mut out = Vec::new();
    for p in paths {
        let text = std::fs::read_to_string(&p).expect("read example");
        for doc in serde_norway::Deserializer::from_str(&text) {
            let v = <Value as serde::Deserialize>::deserialize(doc).expect("yaml");
            out.push((p.display().to_string(), v));
        }
    }
    out
}

fn check<K: CustomResourceExt + Serialize + DeserializeOwned>(what: &str, v: &Value) {
    let obj: K = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{what}: {e}"));
    validate_cel(&obj).unwrap_or_else(|e| panic!("{what}: {e}"));
    validate_cel_update(&obj, &obj).unwrap_or_else(|e| panic!("{what}: {e}"));
    // Nothing in the example is dropped by the types: every field is one they know.
    let back = serde_json::to_value(&obj).expect("json");
    for (k, given) in v["spec"].as_object().expect("spec") {
        assert_eq!(
            &back["spec"][k], given,
            "{what}: spec.{k} is unknown to the types"
        );
    }
}

#[test]
fn examples_pass_the_schema_rules() {
    let mut kinds = Vec::new();
    for (path, v) in example_docs() {
        let kind = v["kind"].as_str().unwrap_or_default().to_string();
        assert_eq!(v["apiVersion"], "natrix.io/v1alpha1", "{path}");
        match kind.as_str() {
            "Stream" => check::<Stream>(&path, &v),
            "Consumer" => check::<Consumer>(&path, &v),
            "KeyValue" => check::<KeyValue>(&path, &v),
            "ObjectStore" => check::<ObjectStore>(&path, &v),
            other => panic!("{path}: unexpected kind {other}"),
        }
        kinds.push(kind);
    }
    for k in ["Stream", "Consumer", "KeyValue", "ObjectStore"] {
        assert!(kinds.iter().any(|x| x == k), "no {k} example");
    }
}

/// A NACK manifest (field names of `jetstream.nats.io/v1beta2`, with NACK's own
/// connection fields) is read by the types once its apiVersion is changed.
#[test]
fn a_nack_manifest_moves_over_by_its_api_version() {
    let nack = r#"
apiVersion: jetstream.nats.io/v1beta2
kind: Stream
metadata:
  name: mystream
spec:
  name: mystream
  subjects: ["orders.*"]
  storage: memory
  maxAge: 1h
  replicas: 1
  retention: limits
  discard: old
  maxMsgs: -1
  maxBytes: -1
  maxMsgSize: -1
  maxConsumers: -1
  duplicateWindow: 2m
  noAck: false
  denyDelete: false
  allowDirect: true
  servers: ["nats://nats.default.svc:4222"]
  preventDelete: false
  preventUpdate: false
"#;
    let mut v: Value = serde_norway::from_str(nack).expect("yaml");
    v["apiVersion"] = json!("natrix.io/v1alpha1");
    v["metadata"]["namespace"] = json!("default");
    check::<Stream>("NACK stream", &v);
}
