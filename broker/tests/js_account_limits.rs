//! An account's JetStream limits (`accounts { A { jetstream { … } } }`) against the
//! reference nats-server: bytes actually stored (file and memory) refuse the next publish
//! once over `max_file`/`max_mem`, the account's `max_consumers` bounds each stream, and
//! its `max_ack_pending` is both the default and the ceiling of a consumer's. Every
//! answer is compared field by field.

mod common;

use std::path::Path;
use std::time::Duration;

use common::{NATRIX, start};
use serde_json::{Value, json};

fn conf(store: &Path) -> String {
    format!(
        "jetstream {{ store_dir: \"{}\" }}\n\
         accounts {{\n  A {{\n    jetstream {{ max_file: 1000, max_mem: 500, max_consumers: 2, max_ack_pending: 100 }}\n    users: [ {{user: a, password: a}} ]\n  }}\n}}\n",
        store.display()
    )
}

/// What a transcript keeps of an answer: the error, or the fields named.
fn keep(v: &Value, fields: &[&str]) -> Value {
    if let Some(e) = v.get("error") {
        return json!({"error": e});
    }
    let mut out = serde_json::Map::new();
    for f in fields {
        let mut at = v;
        for part in f.split('.') {
            at = &at[part];
        }
        out.insert((*f).to_owned(), at.clone());
    }
    Value::Object(out)
}

async fn request(nc: &async_nats::Client, subject: &str, body: Value) -> Value {
    let reply = nc
        .request(subject.to_owned(), body.to_string().into())
        .await
        .expect("answer");
    serde_json::from_slice(&reply.payload).expect("JSON answer")
}

/// Publishes 100-byte messages to `subject` until one is refused (at most 20): how many
/// were taken, then the refusal.
async fn fill(nc: &async_nats::Client, subject: &str) -> Vec<Value> {
    let mut taken = 0;
    for _ in 0..20 {
        let reply = nc
            .request(subject.to_owned(), vec![b'x'; 100].into())
            .await
            .expect("publish answer");
        let v: Value = serde_json::from_slice(&reply.payload).expect("JSON ack");
        if v.get("error").is_some() {
            return vec![json!({"taken": taken}), keep(&v, &[])];
        }
        taken += 1;
    }
    vec![json!({"taken": taken, "refused": false})]
}

async fn scenario(port: u16) -> Vec<Value> {
    let nc = async_nats::ConnectOptions::with_user_and_password("a".into(), "a".into())
        .request_timeout(Some(Duration::from_secs(5)))
        .connect(format!("nats://127.0.0.1:{port}"))
        .await
        .expect("connect");
    let mut t = Vec::new();
    let created = |v: &Value| keep(v, &["config.name", "config.storage"]);
    let file = json!({"name": "F", "subjects": ["f"], "storage": "file"});
    t.push(created(
        &request(&nc, "$JS.API.STREAM.CREATE.F", file).await,
    ));
    let with_id = || async {
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Msg-Id", "once");
        let reply = nc
            .request_with_headers("f", h, vec![b'y'; 100].into())
            .await
            .expect("publish answer");
        let v: Value = serde_json::from_slice(&reply.payload).expect("JSON ack");
        keep(&v, &["seq", "duplicate"])
    };
    t.push(with_id().await);
    t.extend(fill(&nc, "f").await);
    // A duplicate of a stored message, sent while the account is full.
    t.push(with_id().await);
    let mem = json!({"name": "M", "subjects": ["m"], "storage": "memory"});
    t.push(created(&request(&nc, "$JS.API.STREAM.CREATE.M", mem).await));
    t.extend(fill(&nc, "m").await);
    t.push(keep(
        &request(&nc, "$JS.API.INFO", json!({})).await,
        &["memory", "storage", "limits.max_ack_pending"],
    ));
    // Purging frees the account: publishes are taken again.
    t.push(keep(
        &request(&nc, "$JS.API.STREAM.PURGE.F", json!({})).await,
        &["purged"],
    ));
    t.extend(fill(&nc, "f").await);

    let consumer = |name: &str, extra: Value| {
        let mut config = json!({"durable_name": name, "ack_policy": "explicit"});
        if let (Some(c), Some(e)) = (config.as_object_mut(), extra.as_object()) {
            c.extend(e.clone());
        }
        json!({"stream_name": "F", "config": config})
    };
    let made = |v: &Value| keep(v, &["name", "config.max_ack_pending"]);
    for (name, extra) in [
        ("c0", json!({"max_ack_pending": 500})),
        ("c1", json!({})),
        ("c2", json!({"max_ack_pending": 50})),
        ("c3", json!({})),
    ] {
        let subject = format!("$JS.API.CONSUMER.CREATE.F.{name}");
        t.push(made(&request(&nc, &subject, consumer(name, extra)).await));
    }
    t
}

#[tokio::test]
async fn account_limits_match_nats_server() {
    let store = tempfile::tempdir().expect("store");
    let ours = start(Path::new(NATRIX), &conf(store.path()), false);
    let mine = scenario(ours.port).await;
    // The file stream took what fits in 1,000 bytes and refused the next, both storages.
    assert!(
        mine.iter().any(|v| v["error"]["err_code"] == json!(10002)),
        "{mine:#?}"
    );
    let Some(reference) = common::reference_binary() else {
        return;
    };
    let store = tempfile::tempdir().expect("store");
    let theirs = start(&reference, &conf(store.path()), false);
    let want = scenario(theirs.port).await;
    for (i, (a, b)) in mine.iter().zip(want.iter()).enumerate() {
        assert_eq!(a, b, "step {i} differs (left natrix, right nats-server)");
    }
    assert_eq!(mine.len(), want.len(), "transcript lengths");
}
