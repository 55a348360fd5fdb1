//! JetStream through async-nats's `jetstream` module: streams, pull, push and ordered
//! consumers, KV and object store. Each scenario runs against natrix-server and the
//! reference nats-server and writes a transcript of what the client saw (no ids, no
//! times); the transcripts must be equal.

mod common;

use std::time::Duration;

use async_nats::jetstream::{self, consumer, kv, object_store, stream};
use futures::StreamExt as _;
use tokio::io::AsyncReadExt as _;

fn err_kind<E: std::fmt::Display>(e: E) -> String {
    format!("error: {e}")
}

#[tokio::test]
async fn streams_publish_and_limits() {
    let t = common::js_differential(|nc| async move {
        let js = jetstream::new(nc);
        let mut t = Vec::new();
        let s = js
            .create_stream(stream::Config {
                name: "ORDERS".into(),
                subjects: vec!["orders.>".into()],
                max_messages_per_subject: 3,
                allow_direct: true,
                ..Default::default()
            })
            .await
            .expect("create");
        let info = s.cached_info();
        t.push(format!(
            "created {} subjects={:?} dup_window={:?} max_msgs={} per_subject={} storage={:?}",
            info.config.name,
            info.config.subjects,
            info.config.duplicate_window,
            info.config.max_messages,
            info.config.max_messages_per_subject,
            info.config.storage
        ));
        for i in 0..5 {
            let ack = js
                .publish(format!("orders.{}", i % 2), format!("o{i}").into())
                .await
                .expect("publish")
                .await
                .expect("ack");
            t.push(format!(
                "ack {} {} dup={}",
                ack.stream, ack.sequence, ack.duplicate
            ));
        }
        // De-duplication by Nats-Msg-Id.
        for _ in 0..2 {
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Msg-Id", "m-1");
            let ack = js
                .publish_with_headers("orders.x", h, "dedupe".into())
                .await
                .expect("publish")
                .await
                .expect("ack");
            t.push(format!("dedupe seq={} dup={}", ack.sequence, ack.duplicate));
        }
        // Expected last sequence, right and wrong.
        for expected in ["6", "3"] {
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Expected-Last-Sequence", expected);
            let r = js
                .publish_with_headers("orders.y", h, "exp".into())
                .await
                .expect("publish")
                .await;
            t.push(match r {
                Ok(a) => format!("expected {expected}: seq {}", a.sequence),
                Err(e) => format!("expected {expected}: {}", err_kind(e)),
            });
        }
        // Expected last subject sequence (what KV update uses).
        let mut h = async_nats::HeaderMap::new();
        h.insert("Nats-Expected-Last-Subject-Sequence", "1");
        let r = js
            .publish_with_headers("orders.0", h, "subj".into())
            .await
            .expect("publish")
            .await;
        t.push(format!(
            "expected subject seq: {:?}",
            r.map(|a| a.sequence).map_err(err_kind)
        ));
        let mut s = js.get_stream("ORDERS").await.expect("get stream");
        let info = s.info().await.expect("info");
        t.push(format!(
            "state msgs={} bytes={} first={} last={} subjects={}",
            info.state.messages,
            info.state.bytes,
            info.state.first_sequence,
            info.state.last_sequence,
            info.state.subjects_count
        ));
        let m = s.get_raw_message(2).await.expect("get 2");
        t.push(format!("get 2: {} {:?}", m.subject, m.payload));
        t.push(format!(
            "get 1: {:?}",
            s.get_raw_message(1)
                .await
                .map(|m| m.sequence)
                .map_err(err_kind)
        ));
        t.push(format!(
            "delete 2: {:?}",
            s.delete_message(2).await.map_err(err_kind)
        ));
        t.push(format!(
            "delete 2 again: {:?}",
            s.delete_message(2).await.map_err(err_kind)
        ));
        let last = s
            .direct_get_last_for_subject("orders.1")
            .await
            .expect("direct last");
        t.push(format!(
            "direct last orders.1: seq {} {:?}",
            last.sequence, last.payload
        ));
        t.push(format!(
            "direct missing: {:?}",
            s.direct_get_last_for_subject("orders.none")
                .await
                .map(|m| m.sequence)
                .map_err(err_kind)
        ));
        let purged = s.purge().filter("orders.0").await.expect("purge");
        t.push(format!("purged {}", purged.purged));
        let info = s.info().await.expect("info");
        t.push(format!(
            "after purge msgs={} first={} last={} deleted={}",
            info.state.messages,
            info.state.first_sequence,
            info.state.last_sequence,
            info.state.deleted_count.unwrap_or(0)
        ));
        // A second create with another config is refused; the same config is not.
        let again = js
            .create_stream(stream::Config {
                name: "ORDERS".into(),
                subjects: vec!["other.>".into()],
                ..Default::default()
            })
            .await;
        t.push(format!(
            "create clash: {:?}",
            again.map(|_| ()).map_err(err_kind)
        ));
        let overlap = js
            .create_stream(stream::Config {
                name: "OVERLAP".into(),
                subjects: vec!["orders.*".into()],
                ..Default::default()
            })
            .await;
        t.push(format!(
            "overlap: {:?}",
            overlap.map(|_| ()).map_err(err_kind)
        ));
        let mut names: Vec<String> = js
            .stream_names()
            .filter_map(|n| async move { n.ok() })
            .collect()
            .await;
        names.sort();
        t.push(format!("names {names:?}"));
        t.push(format!(
            "delete: {:?}",
            js.delete_stream("ORDERS")
                .await
                .map(|r| r.success)
                .map_err(err_kind)
        ));
        t.push(format!(
            "delete missing: {:?}",
            js.delete_stream("ORDERS")
                .await
                .map(|r| r.success)
                .map_err(err_kind)
        ));
        t
    })
    .await;
    assert!(t.iter().any(|l| l == "dedupe seq=6 dup=true"), "{t:#?}");
}

#[tokio::test]
async fn pull_consumers_ack_and_redeliver() {
    common::js_differential(|nc| async move {
        let js = jetstream::new(nc);
        let mut t = Vec::new();
        let s = js
            .create_stream(stream::Config {
                name: "WORK".into(),
                subjects: vec!["work.*".into()],
                ..Default::default()
            })
            .await
            .expect("create");
        for i in 0..10 {
            js.publish(format!("work.{}", i % 3), format!("job{i}").into())
                .await
                .expect("publish")
                .await
                .expect("ack");
        }
        let c: consumer::PullConsumer = s
            .create_consumer(consumer::pull::Config {
                durable_name: Some("W".into()),
                filter_subject: "work.1".into(),
                ack_wait: Duration::from_millis(500),
                max_deliver: 3,
                ..Default::default()
            })
            .await
            .expect("consumer");
        let mut c2 = c.clone();
        let info = c2.info().await.expect("info");
        t.push(format!(
            "consumer {} pending={} ack_pending={} max_waiting={} ack_wait={:?}",
            info.name,
            info.num_pending,
            info.num_ack_pending,
            info.config.max_waiting,
            info.config.ack_wait
        ));
        let mut batch = c.fetch().max_messages(2).messages().await.expect("fetch");
        let mut first = Vec::new();
        while let Some(m) = batch.next().await {
            let m = m.expect("msg");
            let i = m.info().expect("info");
            t.push(format!(
                "got {} {:?} delivered={} stream_seq={} consumer_seq={} pending={}",
                m.subject,
                m.payload,
                i.delivered,
                i.stream_sequence,
                i.consumer_sequence,
                i.pending
            ));
            first.push(m);
        }
        // Ack the first, leave the second for redelivery.
        first[0].double_ack().await.expect("ack");
        let info = c2.info().await.expect("info");
        t.push(format!(
            "after ack: ack_floor={} delivered={} ack_pending={} pending={}",
            info.ack_floor.stream_sequence,
            info.delivered.stream_sequence,
            info.num_ack_pending,
            info.num_pending
        ));
        tokio::time::sleep(Duration::from_millis(900)).await;
        let mut batch = c
            .fetch()
            .max_messages(3)
            .expires(Duration::from_secs(2))
            .messages()
            .await
            .expect("fetch");
        while let Some(m) = batch.next().await {
            let m = m.expect("msg");
            let i = m.info().expect("info");
            t.push(format!(
                "again {:?} delivered={} stream_seq={}",
                m.payload, i.delivered, i.stream_sequence
            ));
            m.double_ack().await.expect("ack");
        }
        let info = c2.info().await.expect("info");
        t.push(format!(
            "end: ack_floor={} ack_pending={} pending={} redelivered={}",
            info.ack_floor.stream_sequence,
            info.num_ack_pending,
            info.num_pending,
            info.num_redelivered
        ));
        // A no-wait fetch on an empty consumer ends at once.
        let mut empty = c.fetch().max_messages(5).messages().await.expect("fetch");
        let mut n = 0;
        while let Some(m) = empty.next().await {
            if m.is_ok() {
                n += 1;
            }
        }
        t.push(format!("empty fetch got {n}"));
        t.push(format!(
            "delete consumer: {:?}",
            s.delete_consumer("W")
                .await
                .map(|r| r.success)
                .map_err(err_kind)
        ));
        t.push(format!(
            "info deleted: {:?}",
            s.consumer_info("W").await.map(|i| i.name).map_err(err_kind)
        ));
        t
    })
    .await;
}

#[tokio::test]
async fn push_and_ordered_consumers_see_every_message_in_order() {
    common::js_differential(|nc| async move {
        let js = jetstream::new(nc.clone());
        let mut t = Vec::new();
        let s = js
            .create_stream(stream::Config {
                name: "EVENTS".into(),
                subjects: vec!["ev.>".into()],
                ..Default::default()
            })
            .await
            .expect("create");
        for i in 0..200 {
            js.publish(format!("ev.{}", i % 5), format!("{i}").into())
                .await
                .expect("publish");
        }
        js.publish("ev.flush", "end".into())
            .await
            .expect("publish")
            .await
            .expect("ack");
        let ordered = s
            .create_consumer(consumer::push::OrderedConfig {
                deliver_subject: nc.new_inbox(),
                filter_subject: "ev.>".into(),
                ..Default::default()
            })
            .await
            .expect("ordered");
        let mut msgs = ordered.messages().await.expect("messages");
        let mut seen = Vec::new();
        while seen.len() < 201 {
            let m = tokio::time::timeout(Duration::from_secs(5), msgs.next())
                .await
                .expect("in time")
                .expect("open")
                .expect("msg");
            seen.push(String::from_utf8_lossy(&m.payload).into_owned());
        }
        let in_order = seen[..200]
            .iter()
            .enumerate()
            .all(|(i, p)| *p == i.to_string());
        t.push(format!(
            "ordered: {} messages, in order: {in_order}",
            seen.len()
        ));
        let durable: consumer::PushConsumer = s
            .create_consumer(consumer::push::Config {
                durable_name: Some("PUSH".into()),
                deliver_subject: "deliver.push".into(),
                filter_subject: "ev.3".into(),
                ack_policy: consumer::AckPolicy::Explicit,
                ..Default::default()
            })
            .await
            .expect("push");
        let mut msgs = durable.messages().await.expect("messages");
        let mut got = Vec::new();
        while got.len() < 40 {
            let m = tokio::time::timeout(Duration::from_secs(5), msgs.next())
                .await
                .expect("in time")
                .expect("open")
                .expect("msg");
            got.push(format!("{}:{:?}", m.subject, m.payload));
            m.ack().await.expect("ack");
        }
        t.push(format!(
            "push first {:?} last {:?} count {}",
            got[0],
            got[39],
            got.len()
        ));
        t
    })
    .await;
}

#[tokio::test]
async fn key_value_buckets() {
    common::js_differential(|nc| async move {
        let js = jetstream::new(nc);
        let mut t = Vec::new();
        let b = js
            .create_key_value(kv::Config {
                bucket: "CFG".into(),
                history: 5,
                ..Default::default()
            })
            .await
            .expect("bucket");
        let r1 = b.put("a", "1".into()).await.expect("put");
        let r2 = b.put("a", "2".into()).await.expect("put");
        t.push(format!("revisions {r1} {r2}"));
        let e = b.get("a").await.expect("get");
        t.push(format!("get a = {:?}", e.map(|v| v.to_vec())));
        t.push(format!(
            "get missing = {:?}",
            b.get("nope").await.map(|v| v.is_some()).map_err(err_kind)
        ));
        t.push(format!(
            "update wrong rev: {:?}",
            b.update("a", "x".into(), 1).await.map_err(err_kind)
        ));
        t.push(format!(
            "update right rev: {:?}",
            b.update("a", "3".into(), r2).await.map_err(err_kind)
        ));
        t.push(format!(
            "create existing: {:?}",
            b.create("a", "x".into()).await.map_err(err_kind)
        ));
        t.push(format!(
            "create new: {:?}",
            b.create("b", "1".into()).await.map_err(err_kind)
        ));
        b.delete("b").await.expect("delete");
        t.push(format!(
            "get deleted = {:?}",
            b.get("b").await.map(|v| v.is_some()).map_err(err_kind)
        ));
        t.push(format!(
            "create after delete: {:?}",
            b.create("b", "2".into()).await.map_err(err_kind)
        ));
        let mut hist = b.history("a").await.expect("history");
        let mut h = Vec::new();
        while let Some(e) = hist.next().await {
            let e = e.expect("entry");
            h.push(format!(
                "{}={:?}@{} {:?}",
                e.key, e.value, e.revision, e.operation
            ));
        }
        t.push(format!("history {h:?}"));
        let mut keys: Vec<String> = b
            .keys()
            .await
            .expect("keys")
            .filter_map(|k| async move { k.ok() })
            .collect()
            .await;
        keys.sort();
        t.push(format!("keys {keys:?}"));
        b.purge("a").await.expect("purge");
        let mut hist = b.history("a").await.expect("history");
        let mut n = 0;
        while let Some(e) = hist.next().await {
            let e = e.expect("entry");
            t.push(format!("after purge {:?}", e.operation));
            n += 1;
        }
        t.push(format!("history after purge {n}"));
        let mut w = b.watch("w.>").await.expect("watch");
        b.put("w.1", "x".into()).await.expect("put");
        b.put("w.2", "y".into()).await.expect("put");
        for _ in 0..2 {
            let e = tokio::time::timeout(Duration::from_secs(5), w.next())
                .await
                .expect("in time")
                .expect("open")
                .expect("entry");
            t.push(format!("watch {}={:?}", e.key, e.value));
        }
        t
    })
    .await;
}

#[tokio::test]
async fn object_store_round_trip() {
    common::js_differential(|nc| async move {
        let js = jetstream::new(nc);
        let mut t = Vec::new();
        let os = js
            .create_object_store(object_store::Config {
                bucket: "FILES".into(),
                ..Default::default()
            })
            .await
            .expect("bucket");
        let data: Vec<u8> = (0..600_000u32).map(|i| (i % 251) as u8).collect();
        let info = os.put("big.bin", &mut data.as_slice()).await.expect("put");
        t.push(format!(
            "put {} size={} chunks={}",
            info.name, info.size, info.chunks
        ));
        let mut obj = os.get("big.bin").await.expect("get");
        let mut back = Vec::new();
        obj.read_to_end(&mut back).await.expect("read");
        t.push(format!("read back equal: {}", back == data));
        os.put("small.txt", &mut b"hello".as_slice())
            .await
            .expect("put");
        let mut names: Vec<String> = os
            .list()
            .await
            .expect("list")
            .filter_map(|o| async move { o.ok().map(|o| o.name) })
            .collect()
            .await;
        names.sort();
        t.push(format!("list {names:?}"));
        os.delete("small.txt").await.expect("delete");
        t.push(format!(
            "get deleted: {:?}",
            os.get("small.txt").await.map(|_| ()).map_err(err_kind)
        ));
        t
    })
    .await;
}

/// `$JS.EVENT.ADVISORY.API`: each answered request, an answer and a refusal, with the
/// request and the answer as sent.
#[tokio::test]
async fn api_audit_advisories() {
    let t = common::js_differential(|nc| async move {
        let mut audits = nc
            .subscribe("$JS.EVENT.ADVISORY.API")
            .await
            .expect("subscribe");
        nc.flush().await.expect("flush");
        let create = r#"{"name":"AUD","subjects":["aud"]}"#;
        let answers = [
            ("$JS.API.STREAM.CREATE.AUD", create),
            ("$JS.API.STREAM.INFO.NOPE", ""),
        ];
        let mut t = Vec::new();
        for (subject, body) in answers {
            let reply = nc
                .request(subject, body.to_owned().into())
                .await
                .expect("answer");
            let m = tokio::time::timeout(Duration::from_secs(5), audits.next())
                .await
                .expect("an audit advisory")
                .expect("subscription open");
            let v: serde_json::Value = serde_json::from_slice(&m.payload).expect("JSON");
            let response: serde_json::Value =
                serde_json::from_str(v["response"].as_str().unwrap_or_default()).expect("response");
            assert_eq!(
                response,
                serde_json::from_slice::<serde_json::Value>(&reply.payload).expect("reply"),
                "the audit carries the answer as sent"
            );
            t.push(format!(
                "{} type={} request={} response type={} error={}",
                v["subject"], v["type"], v["request"], response["type"], response["error"]
            ));
        }
        t
    })
    .await;
    assert_eq!(t.len(), 2);
}
