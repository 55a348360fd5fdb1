//! JetStream and bad input: malformed and unknown-field requests, overlapping subjects and
//! oversize messages get nats-server's error (checked against the reference server); a
//! full disk refuses publishes with nats-server's error while earlier messages stay and
//! the server keeps serving; a damaged or truncated store file at start is reported and
//! the other streams start.

mod common;

use std::path::Path;
use std::time::Duration;

use async_nats::jetstream::{self, stream};
use common::{NATRIX, connect_js, js_conf, start};
use serde_json::Value;

/// The `error` of an API answer as (code, err_code, description).
async fn api_error(
    nc: &async_nats::Client,
    subject: &str,
    body: &str,
) -> Option<(u64, u64, String)> {
    let reply = nc
        .request(subject.to_string(), body.to_string().into())
        .await
        .expect("api answer");
    let v: Value = serde_json::from_slice(&reply.payload).expect("json answer");
    let e = v.get("error")?;
    Some((
        e["code"].as_u64().unwrap_or(0),
        e["err_code"].as_u64().unwrap_or(0),
        e["description"].as_str().unwrap_or("").to_string(),
    ))
}

async fn bad_requests(nc: async_nats::Client) -> Vec<Option<(u64, u64, String)>> {
    let js = jetstream::new(nc.clone());
    js.create_stream(stream::Config {
        name: "S".into(),
        subjects: vec!["s.>".into()],
        max_message_size: 64,
        ..Default::default()
    })
    .await
    .expect("create");
    let mut out = Vec::new();
    for (subject, body) in [
        ("$JS.API.STREAM.CREATE.X", "{not json"),
        ("$JS.API.STREAM.CREATE.X", "{\"name\":\"X\",\"bogus\":1}"),
        ("$JS.API.STREAM.CREATE.X", "{\"name\":\"Y\"}"),
        (
            "$JS.API.STREAM.CREATE.X",
            "{\"name\":\"X\",\"subjects\":[\"s.*\"]}",
        ),
        (
            "$JS.API.STREAM.CREATE.X",
            "{\"name\":\"X\",\"subjects\":[\"a\"],\"num_replicas\":3}",
        ),
        ("$JS.API.STREAM.INFO.NOPE", ""),
        ("$JS.API.STREAM.PURGE.S", "{\"seq\":5,\"keep\":1}"),
        ("$JS.API.STREAM.MSG.GET.S", "{\"seq\":99}"),
        ("$JS.API.STREAM.MSG.GET.S", ""),
        ("$JS.API.CONSUMER.INFO.S.NOPE", ""),
        (
            "$JS.API.CONSUMER.CREATE.S",
            "{\"stream_name\":\"OTHER\",\"config\":{}}",
        ),
        (
            "$JS.API.CONSUMER.DURABLE.CREATE.S.D",
            "{\"stream_name\":\"S\",\"config\":{\"durable_name\":\"E\"}}",
        ),
        (
            "$JS.API.CONSUMER.CREATE.S",
            "{\"stream_name\":\"S\",\"config\":{\"durable_name\":\"D\"}}",
        ),
    ] {
        out.push(api_error(&nc, subject, body).await);
    }
    // An oversize message is refused with the stream's error, and nothing is stored.
    let big = js
        .publish("s.big", vec![b'x'; 100].into())
        .await
        .expect("publish")
        .await;
    out.push(big.err().map(|e| (0, 0, e.to_string())));
    let mut s = js.get_stream("S").await.expect("stream");
    let info = s.info().await.expect("info");
    out.push(Some((
        info.state.messages,
        0,
        "messages after refusals".into(),
    )));
    out
}

#[tokio::test]
async fn bad_requests_get_nats_servers_errors() {
    let store = tempfile::tempdir().expect("dir");
    let ours = start(Path::new(NATRIX), &js_conf(store.path()), false);
    let mine = bad_requests(connect_js(&ours).await).await;
    // Every request was refused (the last line is the message count).
    assert!(
        mine[..mine.len() - 1].iter().all(Option::is_some),
        "{mine:#?}"
    );
    assert_eq!(
        mine.last(),
        Some(&Some((0, 0, "messages after refusals".into())))
    );
    // A config that needs a newer API level than natrix implements (counters are level
    // 2) gets nats-server's refusal for it; nats-server itself accepts this one.
    let nc = connect_js(&ours).await;
    assert_eq!(
        api_error(
            &nc,
            "$JS.API.STREAM.CREATE.C",
            "{\"name\":\"C\",\"subjects\":[\"c\"],\"allow_msg_counter\":true}"
        )
        .await,
        Some((412, 10185, "JetStream minimum api level required".into()))
    );
    if let Some(reference) = common::reference_binary() {
        let store = tempfile::tempdir().expect("dir");
        let theirs = start(&reference, &js_conf(store.path()), false);
        let want = bad_requests(connect_js(&theirs).await).await;
        for (i, (a, b)) in mine.iter().zip(want.iter()).enumerate() {
            if i == 0 {
                // A JSON syntax error: same code, and the text is the decoder's own
                // (Go's and serde's wordings differ; docs/compatibility.md).
                let code = |x: &Option<(u64, u64, String)>| x.as_ref().map(|e| (e.0, e.1));
                assert_eq!(code(a), code(b), "request 0");
                assert!(
                    a.as_ref()
                        .is_some_and(|e| e.2.starts_with("invalid JSON: "))
                );
                continue;
            }
            assert_eq!(a, b, "request {i} (left natrix, right nats-server)");
        }
    }
}

/// A store on a 4 MiB tmpfs: publishing until the disk is full gives nats-server's
/// "insufficient storage resources available" (or its resource-limit error), every
/// message acknowledged before stays readable, and the server keeps serving.
#[tokio::test]
async fn a_full_disk_refuses_publishes_and_loses_nothing() {
    if !nix_root() {
        assert!(std::env::var_os("CI").is_none(), "CI runs as root");
        return;
    }
    let dir = tempfile::tempdir().expect("dir");
    let mnt = dir.path().join("small");
    std::fs::create_dir(&mnt).expect("mkdir");
    let ok = std::process::Command::new("mount")
        .args(["-t", "tmpfs", "-o", "size=4m", "tmpfs"])
        .arg(&mnt)
        .status()
        .expect("mount")
        .success();
    assert!(ok, "mount a tmpfs");
    struct Unmount(std::path::PathBuf);
    impl Drop for Unmount {
        fn drop(&mut self) {
            let _ = std::process::Command::new("umount")
                .arg("-l")
                .arg(&self.0)
                .status();
        }
    }
    let _guard = Unmount(mnt.clone());
    let p = start(Path::new(NATRIX), &js_conf(&mnt), false);
    let nc = connect_js(&p).await;
    let js = jetstream::new(nc.clone());
    js.create_stream(stream::Config {
        name: "FULL".into(),
        subjects: vec!["full".into()],
        ..Default::default()
    })
    .await
    .expect("create");
    let mut acked = 0u64;
    let mut refused = None;
    for _ in 0..2_000 {
        match js
            .publish("full", vec![b'x'; 8 * 1024].into())
            .await
            .expect("publish")
            .await
        {
            Ok(ack) => acked = ack.sequence,
            Err(e) => {
                refused = Some(e.to_string());
                break;
            }
        }
    }
    let refused = refused.expect("the disk filled up within 16 MiB of publishes");
    assert!(
        refused.contains("insufficient storage") || refused.contains("resources"),
        "{refused}"
    );
    assert!(acked > 10, "some messages fit before: {acked}");
    let mut s = js.get_stream("FULL").await.expect("stream");
    let info = s.info().await.expect("info");
    assert_eq!(info.state.last_sequence, acked, "nothing half-stored");
    for seq in [1, acked / 2, acked] {
        let m = s
            .get_raw_message(seq)
            .await
            .expect("acked message readable");
        assert_eq!(m.payload.len(), 8 * 1024);
    }
    // Core messaging still works.
    let mut sub = nc.subscribe("still.alive").await.expect("sub");
    nc.publish("still.alive", "x".into()).await.expect("pub");
    let got = tokio::time::timeout(Duration::from_secs(5), futures::StreamExt::next(&mut sub))
        .await
        .expect("in time");
    assert!(got.is_some());
}

fn nix_root() -> bool {
    std::process::Command::new("id")
        .arg("-u")
        .output()
        .is_ok_and(|o| String::from_utf8_lossy(&o.stdout).trim() == "0")
}

/// Damaged store files at start: one stream's database is garbage, another's is cut in
/// half. Each is reported in the log, the server starts, and an intact stream beside
/// them has all its messages.
#[tokio::test]
async fn damaged_store_files_are_reported_and_the_rest_start() {
    let store = tempfile::tempdir().expect("dir");
    {
        let p = start(Path::new(NATRIX), &js_conf(store.path()), false);
        let js = jetstream::new(connect_js(&p).await);
        for name in ["GOOD", "GARBAGE", "CUT"] {
            js.create_stream(stream::Config {
                name: name.into(),
                subjects: vec![format!("{}.>", name.to_lowercase())],
                ..Default::default()
            })
            .await
            .expect("create");
            for i in 0..200 {
                js.publish(
                    format!("{}.{i}", name.to_lowercase()),
                    vec![b'y'; 512].into(),
                )
                .await
                .expect("publish")
                .await
                .expect("ack");
            }
        }
    }
    let streams = store.path().join("jetstream").join("$G").join("streams");
    let db = |s: &str| streams.join(s).join("stream.redb");
    std::fs::write(db("GARBAGE"), vec![0xA5u8; 64 * 1024]).expect("garbage");
    let len = std::fs::metadata(db("CUT")).expect("meta").len();
    let f = std::fs::OpenOptions::new()
        .write(true)
        .open(db("CUT"))
        .expect("open");
    f.set_len(len / 2).expect("truncate");
    drop(f);
    let p = start(Path::new(NATRIX), &js_conf(store.path()), false);
    let js = jetstream::new(connect_js(&p).await);
    let mut good = js.get_stream("GOOD").await.expect("good stream");
    assert_eq!(good.info().await.expect("info").state.messages, 200);
    let log = p.log_text();
    assert!(
        log.contains("GARBAGE") && log.contains("Error recovering stream"),
        "{log}"
    );
    // The cut one either recovered what its last complete commit held, or is reported.
    match js.get_stream("CUT").await {
        Ok(mut s) => {
            let info = s.info().await.expect("info");
            assert!(info.state.messages <= 200);
        }
        Err(_) => assert!(log.contains("CUT"), "{log}"),
    }
    // New streams can still be made.
    js.create_stream(stream::Config {
        name: "NEW".into(),
        subjects: vec!["new".into()],
        ..Default::default()
    })
    .await
    .expect("create after damage");
}
