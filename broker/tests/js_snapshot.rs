//! Stream backups (`$JS.API.STREAM.SNAPSHOT` / `STREAM.RESTORE`) end to end.
//!
//! - natscli's `nats stream backup` / `nats stream restore` of a file stream with 5,000
//!   messages and a durable consumer, on natrix-server and on the reference nats-server:
//!   after the round trip the stream's state, its subjects, the consumer's ack floor and
//!   every message are what they were, and both servers end alike.
//! - natscli on an empty and a three-message stream (a backup of one short chunk).
//! - The protocol driven by hand from async-nats (what a client library's snapshot API
//!   does): small chunks and windows, `no_consumers`, the chunk and ack subjects, a file
//!   backup restored as a memory stream, and a snapshot taken while publishers keep
//!   writing (the restored stream is exactly the state the answer reported).
//! - Bad input on both servers: a restore onto an existing stream (10130), a garbage
//!   upload (10062, no stream left behind), a receiver that stops acking (`408 No Flow
//!   Response` after the 5 s ack timeout), one that unsubscribes (`408 No Interest` at
//!   once), and request errors.
//!
//! natrix and nats-server backups are not interchangeable (natrix sends its own store
//! format); each server restores its own.

mod common;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use common::{NATRIX, Proc, start};
use futures::StreamExt as _;
use serde_json::{Value, json};

const MSGS: u64 = 5_000;

/// The natscli binary: `NATS_CLI_BIN`, else the caches `scripts/deps` fills.
fn natscli() -> Option<PathBuf> {
    if let Ok(p) = std::env::var("NATS_CLI_BIN") {
        return Some(PathBuf::from(p)).filter(|p| p.exists());
    }
    cached_bin("nats")
}

fn cached_bin(name: &str) -> Option<PathBuf> {
    let home = PathBuf::from(std::env::var("HOME").unwrap_or_default());
    let mut dirs = Vec::new();
    if let Ok(c) = std::env::var("NATRIX_CACHE") {
        dirs.push(PathBuf::from(c));
    }
    dirs.push(home.join(".cache/natrix"));
    dirs.push(home.join(".cache/natrix-cold"));
    dirs.into_iter()
        .map(|d| d.join("bin").join(name))
        .find(|p| p.exists())
}

/// The reference nats-server (`NATS_SERVER_BIN` or a cache), if installed.
fn reference() -> Option<PathBuf> {
    common::reference_binary().or_else(|| {
        std::env::var_os("NATS_SERVER_BIN")
            .is_none()
            .then(|| cached_bin("nats-server"))
            .flatten()
    })
}

fn skip(what: &str) {
    assert!(
        std::env::var_os("CI").is_none(),
        "{what} not found: run scripts/deps"
    );
    eprintln!("SKIPPED: {what} not installed; run scripts/deps");
}

fn start_js(bin: &Path) -> (Proc, tempfile::TempDir) {
    let store = tempfile::tempdir().expect("store dir");
    let conf = format!(
        "jetstream {{ store_dir: \"{}\" }}\n",
        store.path().display()
    );
    (start(bin, &conf, false), store)
}

async fn connect(p: &Proc) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_secs(10)))
        .connect(format!("nats://127.0.0.1:{}", p.port))
        .await
        .expect("connect")
}

/// A JSON request to the JetStream API; the parsed answer.
async fn api(nc: &async_nats::Client, subject: &str, body: &Value) -> Value {
    let payload = if body.is_null() {
        bytes::Bytes::new()
    } else {
        serde_json::to_vec(body).expect("json").into()
    };
    let m = nc
        .request(subject.to_owned(), payload)
        .await
        .unwrap_or_else(|e| panic!("{subject}: {e}"));
    serde_json::from_slice(&m.payload).unwrap_or_else(|e| panic!("{subject}: {e}"))
}

fn err_code(v: &Value) -> u64 {
    v["error"]["err_code"].as_u64().unwrap_or(0)
}

/// Creates `name` (subjects `<name>.>`) with 5,000 messages over ten subjects (every
/// hundredth with a header) and durable `C1` with the first 50 and two later messages
/// of its first 100 acknowledged.
async fn populate(nc: &async_nats::Client, name: &str, storage: stream::StorageType) {
    let js = jetstream::new(nc.clone());
    let s = js
        .create_stream(stream::Config {
            name: name.into(),
            subjects: vec![format!("{name}.>")],
            storage,
            ..Default::default()
        })
        .await
        .expect("create stream");
    let mut acks = Vec::new();
    for i in 0..MSGS {
        let subject = format!("{name}.{}.x", i % 10);
        let payload = bytes::Bytes::from(format!("message {i} {}", "y".repeat((i % 50) as usize)));
        let ack = if i % 100 == 0 {
            let mut h = async_nats::HeaderMap::new();
            h.insert("X-Idx", i.to_string().as_str());
            js.publish_with_headers(subject, h, payload).await
        } else {
            js.publish(subject, payload).await
        };
        acks.push(ack.expect("publish"));
        if acks.len() >= 500 {
            for a in acks.drain(..) {
                a.await.expect("ack");
            }
        }
    }
    for a in acks {
        a.await.expect("ack");
    }
    let c: consumer::PullConsumer = s
        .create_consumer(consumer::pull::Config {
            durable_name: Some("C1".into()),
            ack_policy: consumer::AckPolicy::Explicit,
            ack_wait: Duration::from_secs(60),
            ..Default::default()
        })
        .await
        .expect("consumer");
    let mut batch = c.fetch().max_messages(100).messages().await.expect("fetch");
    let mut n = 0;
    while let Some(m) = batch.next().await {
        let m = m.expect("msg");
        n += 1;
        if n <= 50 || n == 60 || n == 70 {
            m.double_ack().await.expect("ack");
        }
    }
    assert_eq!(n, 100, "fetched");
}

/// What a stream looks like from outside.
#[derive(Debug, PartialEq)]
struct Seen {
    /// `state` of STREAM.INFO without times-of-day that differ between servers.
    state: Value,
    subjects: Value,
    consumers: Vec<String>,
    /// C1's ack floor and delivered sequences, if it exists.
    consumer: Option<Value>,
    /// Every message as STREAM.MSG.GET answers it.
    msgs: Vec<Value>,
}

impl Seen {
    /// The part both servers must agree on: all but the times of day.
    fn portable(&self) -> (Value, Value, Vec<String>, Option<Value>, Vec<Value>) {
        let mut state = self.state.clone();
        if let Some(o) = state.as_object_mut() {
            o.remove("first_ts");
            o.remove("last_ts");
        }
        let msgs = self
            .msgs
            .iter()
            .map(|m| {
                let mut m = m.clone();
                if let Some(o) = m.as_object_mut() {
                    o.remove("time");
                }
                m
            })
            .collect();
        (
            state,
            self.subjects.clone(),
            self.consumers.clone(),
            self.consumer.clone(),
            msgs,
        )
    }
}

async fn observe(nc: &async_nats::Client, name: &str) -> Seen {
    let info = api(
        nc,
        &format!("$JS.API.STREAM.INFO.{name}"),
        &json!({"subjects_filter": ">"}),
    )
    .await;
    assert!(info.get("error").is_none(), "info: {info}");
    let mut state = info["state"].clone();
    let subjects = state
        .as_object_mut()
        .and_then(|o| o.remove("subjects"))
        .unwrap_or(Value::Null);
    let names = api(nc, &format!("$JS.API.CONSUMER.NAMES.{name}"), &Value::Null).await;
    let mut consumers: Vec<String> = names["consumers"]
        .as_array()
        .map(|a| {
            a.iter()
                .filter_map(|v| v.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    consumers.sort();
    let consumer = if consumers.iter().any(|c| c == "C1") {
        let ci = api(
            nc,
            &format!("$JS.API.CONSUMER.INFO.{name}.C1"),
            &Value::Null,
        )
        .await;
        Some(json!({
            // Not `last_active`: nats-server does not restore it.
            "ack_floor": {
                "consumer_seq": ci["ack_floor"]["consumer_seq"],
                "stream_seq": ci["ack_floor"]["stream_seq"],
            },
            "delivered": ci["delivered"]["stream_seq"],
            "num_pending": ci["num_pending"],
            "num_ack_pending": ci["num_ack_pending"],
        }))
    } else {
        None
    };
    let first = state["first_seq"].as_u64().unwrap_or(0);
    let last = state["last_seq"].as_u64().unwrap_or(0);
    let mut msgs = Vec::new();
    let mut seq = first;
    while seq <= last && first > 0 {
        let batch: Vec<_> = (seq..=last.min(seq + 199))
            .map(|s| {
                let nc = nc.clone();
                let subject = format!("$JS.API.STREAM.MSG.GET.{name}");
                async move { api(&nc, &subject, &json!({ "seq": s })).await }
            })
            .collect();
        for v in futures::future::join_all(batch).await {
            msgs.push(v["message"].clone());
        }
        seq += 200;
    }
    Seen {
        state,
        subjects,
        consumers,
        consumer,
        msgs,
    }
}

/// Runs `nats` against `port`; (success, stdout + stderr, wall time).
async fn nats(cli: &Path, port: u16, args: &[&str]) -> (bool, String, Duration) {
    let started = Instant::now();
    let out = tokio::time::timeout(
        Duration::from_secs(120),
        tokio::process::Command::new(cli)
            .args(["--no-context", "--timeout", "10s", "-s"])
            .arg(format!("nats://127.0.0.1:{port}"))
            .args(args)
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true)
            .output(),
    )
    .await
    .expect("nats finished in time")
    .expect("run nats");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    (out.status.success(), text, started.elapsed())
}

/// What a natscli round trip on one server saw.
struct RoundTrip {
    before: Seen,
    after: Seen,
    backup_time: Duration,
    restore_time: Duration,
    /// Holds the backup, in `backup/`.
    work: tempfile::TempDir,
}

/// The natscli round trip on one server.
async fn natscli_round_trip(bin: &Path, cli: &Path, storage: stream::StorageType) -> RoundTrip {
    let (p, _store) = start_js(bin);
    let nc = connect(&p).await;
    populate(&nc, "ORDERS", storage).await;
    let before = observe(&nc, "ORDERS").await;
    assert_eq!(before.state["messages"], json!(MSGS));
    let work = tempfile::tempdir().expect("work dir");
    let dir = work.path().join("backup");
    let dir_s = dir.to_str().expect("utf-8 path");
    let (ok, out, backup_time) = nats(
        cli,
        p.port,
        &[
            "stream",
            "backup",
            "ORDERS",
            dir_s,
            "--no-progress",
            "--consumers",
        ],
    )
    .await;
    assert!(ok, "backup on {}: {out}", bin.display());
    let files: Vec<_> = std::fs::read_dir(&dir)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    // natscli names the data file after the server's format (nats-server 2.15 sends an
    // `arc`, older servers and natrix a `tar`-named one).
    assert!(
        dir.join("backup.json").exists() && files.len() == 2,
        "backup wrote {files:?}: {out}"
    );
    let (ok, out, _) = nats(cli, p.port, &["stream", "rm", "ORDERS", "-f"]).await;
    assert!(ok, "rm: {out}");
    let (ok, out, restore_time) =
        nats(cli, p.port, &["stream", "restore", dir_s, "--no-progress"]).await;
    assert!(ok, "restore on {}: {out}", bin.display());
    let after = observe(&nc, "ORDERS").await;
    // The restored stream takes new messages after the old ones.
    let js = jetstream::new(nc.clone());
    let ack = js
        .publish("ORDERS.new", "after".into())
        .await
        .expect("publish")
        .await
        .expect("ack");
    assert_eq!(ack.sequence, MSGS + 1);
    RoundTrip {
        before,
        after,
        backup_time,
        restore_time,
        work,
    }
}

/// `nats stream restore` of `backup` onto a fresh `bin`: (success, what it printed).
async fn restore_elsewhere(bin: &Path, cli: &Path, backup: &Path) -> (bool, String) {
    let (p, _store) = start_js(bin);
    let dir = backup.to_str().expect("utf-8 path");
    let (ok, out, _) = nats(cli, p.port, &["stream", "restore", dir, "--no-progress"]).await;
    let nc = connect(&p).await;
    let info = api(&nc, "$JS.API.STREAM.INFO.ORDERS", &Value::Null).await;
    if !ok {
        assert_eq!(err_code(&info), 10059, "a failed restore left {info}");
    }
    (ok, out)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natscli_backup_and_restore_file_stream_on_both_servers() {
    natscli_on_both_servers(stream::StorageType::File).await;
}

async fn natscli_on_both_servers(storage: stream::StorageType) {
    let Some(cli) = natscli() else {
        return skip("natscli");
    };
    let ours = natscli_round_trip(Path::new(NATRIX), &cli, storage).await;
    let (before, after, b, r) = (
        &ours.before,
        &ours.after,
        ours.backup_time,
        ours.restore_time,
    );
    eprintln!(
        "natrix-server {storage:?}: nats stream backup {b:?}, nats stream restore {r:?} \
         ({MSGS} messages)"
    );
    assert_eq!(before.state, after.state, "natrix: state");
    assert_eq!(before.subjects, after.subjects, "natrix: subjects");
    assert_eq!(before.consumers, after.consumers, "natrix: consumers");
    assert_eq!(before.consumer, after.consumer, "natrix: consumer C1");
    assert_eq!(before.msgs.len() as u64, MSGS);
    assert!(
        before.msgs == after.msgs,
        "natrix: messages differ after restore"
    );
    assert_eq!(
        before
            .consumer
            .as_ref()
            .map(|c| c["ack_floor"]["stream_seq"].clone()),
        Some(json!(50))
    );
    let Some(reference) = reference() else {
        return skip("nats-server");
    };
    let theirs = natscli_round_trip(&reference, &cli, storage).await;
    let (rbefore, rafter, b, r) = (
        &theirs.before,
        &theirs.after,
        theirs.backup_time,
        theirs.restore_time,
    );
    eprintln!(
        "nats-server {storage:?}: nats stream backup {b:?}, nats stream restore {r:?} \
         ({MSGS} messages)"
    );
    assert_eq!(rbefore.state, rafter.state, "nats-server: state");
    assert_eq!(
        rbefore.consumer, rafter.consumer,
        "nats-server: consumer C1"
    );
    assert!(
        rbefore.msgs == rafter.msgs,
        "nats-server: messages differ after restore"
    );
    // Same scenario, same outcome on both servers.
    assert_eq!(
        after.portable(),
        rafter.portable(),
        "natrix vs nats-server after restore"
    );
    // Backups do not cross over: each server refuses the other's, and no stream is left.
    let (ok, out) =
        restore_elsewhere(Path::new(NATRIX), &cli, &theirs.work.path().join("backup")).await;
    assert!(
        !ok && out.contains("a nats-server backup"),
        "natrix restoring nats-server's backup: {out}"
    );
    let (ok, out) = restore_elsewhere(&reference, &cli, &ours.work.path().join("backup")).await;
    assert!(!ok, "nats-server restoring natrix's backup: {out}");
}

/// An empty stream and one of three messages: their whole backup is one short chunk,
/// sent right after the answer, so it must wait for natscli's own subscription to its
/// inbox (its request-reply wildcard covers that inbox before then).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn natscli_small_streams_on_both_servers() {
    let Some(cli) = natscli() else {
        return skip("natscli");
    };
    let mut bins = vec![PathBuf::from(NATRIX)];
    bins.extend(reference());
    let mut outcomes = Vec::new();
    for bin in &bins {
        let (p, _store) = start_js(bin);
        let nc = connect(&p).await;
        let js = jetstream::new(nc.clone());
        let work = tempfile::tempdir().expect("work dir");
        let mut seen = Vec::new();
        for (name, n) in [("EMPTY", 0), ("SMALL", 3)] {
            js.create_stream(stream::Config {
                name: name.into(),
                subjects: vec![format!("{name}.>")],
                ..Default::default()
            })
            .await
            .expect("create");
            for i in 0..n {
                js.publish(format!("{name}.{i}"), "x".into())
                    .await
                    .expect("publish")
                    .await
                    .expect("ack");
            }
            let before = observe(&nc, name).await;
            let dir = work.path().join(name);
            let dir_s = dir.to_str().expect("utf-8 path");
            let args = ["stream", "backup", name, dir_s, "--no-progress"];
            let (ok, out, took) = nats(&cli, p.port, &args).await;
            assert!(ok, "backup of {name} on {}: {out}", bin.display());
            assert!(
                took < Duration::from_secs(4),
                "backup of {name} took {took:?}"
            );
            delete(&nc, name).await;
            let args = ["stream", "restore", dir_s, "--no-progress"];
            let (ok, out, _) = nats(&cli, p.port, &args).await;
            assert!(ok, "restore of {name} on {}: {out}", bin.display());
            let mut after = observe(&nc, name).await;
            if bin != Path::new(NATRIX) && n == 0 {
                // nats-server reports a never-written stream's first_seq as 0 and, once
                // restored, as 1; natrix keeps 0 (docs/compatibility.md).
                assert_eq!(after.state["first_seq"], json!(1));
                after.state["first_seq"] = json!(0);
            }
            assert_eq!(before, after, "{name} on {}", bin.display());
            seen.push(after.portable());
        }
        outcomes.push(seen);
    }
    if let [a, b] = outcomes.as_slice() {
        assert_eq!(a, b, "natrix vs nats-server");
    }
}

// ---------------------------------------------------------------------------------------
// The protocol by hand
// ---------------------------------------------------------------------------------------

/// A backup as a client library takes it: the answer and the bytes, checking that every
/// full chunk carries `$JS.SNAPSHOT.ACK.<stream>.<id>.<len>.<index>`.
async fn backup(
    nc: &async_nats::Client,
    stream: &str,
    req: Value,
) -> Result<(Value, Vec<u8>), String> {
    let inbox = nc.new_inbox();
    let mut sub = nc.subscribe(inbox.clone()).await.expect("subscribe");
    let mut req = req;
    req["deliver_subject"] = json!(inbox);
    let answer = api(nc, &format!("$JS.API.STREAM.SNAPSHOT.{stream}"), &req).await;
    if answer.get("error").is_some() {
        return Err(answer.to_string());
    }
    let mut data = Vec::new();
    let mut index = 1u64;
    loop {
        let m = tokio::time::timeout(Duration::from_secs(20), sub.next())
            .await
            .map_err(|_| "no chunk in 20 s".to_owned())?
            .ok_or("subscription ended")?;
        if m.payload.is_empty() {
            let status = m.status.map(|s| s.as_u16()).unwrap_or(0);
            if status == 204 || (status == 0 && m.headers.is_none()) {
                return Ok((answer, data));
            }
            return Err(format!("{status} {}", m.description.unwrap_or_default()));
        }
        data.extend_from_slice(&m.payload);
        if let Some(reply) = m.reply {
            let tokens: Vec<&str> = reply.split('.').collect();
            assert_eq!(
                tokens.get(..4),
                Some(&["$JS", "SNAPSHOT", "ACK", stream][..])
            );
            assert_eq!(tokens.len(), 7, "{reply}");
            assert_eq!(tokens[5], m.payload.len().to_string(), "{reply}");
            assert_eq!(tokens[6], index.to_string(), "{reply}");
            index += 1;
            nc.publish(reply, bytes::Bytes::new()).await.expect("ack");
        }
    }
}

/// A restore as a client library makes it; `Ok` is the final answer's stream info,
/// `Err` the first error answer (the request's, a chunk's or the final one).
async fn restore(
    nc: &async_nats::Client,
    stream: &str,
    meta: &Value,
    data: &[u8],
) -> Result<Value, Value> {
    let answer = api(nc, &format!("$JS.API.STREAM.RESTORE.{stream}"), meta).await;
    if answer.get("error").is_some() {
        return Err(answer);
    }
    assert_eq!(
        answer["type"],
        "io.nats.jetstream.api.v1.stream_restore_response"
    );
    let subject = answer["deliver_subject"]
        .as_str()
        .expect("deliver_subject")
        .to_owned();
    assert!(
        subject.starts_with(&format!("$JS.SNAPSHOT.RESTORE.{stream}.")),
        "{subject}"
    );
    for chunk in data.chunks(64 * 1024) {
        let r = nc
            .request(subject.clone(), bytes::Bytes::copy_from_slice(chunk))
            .await
            .expect("chunk ack");
        if !r.payload.is_empty() {
            let v: Value = serde_json::from_slice(&r.payload).expect("json");
            if v.get("error").is_some() {
                return Err(v);
            }
        }
    }
    let done = tokio::time::timeout(
        Duration::from_secs(60),
        nc.request(subject, bytes::Bytes::new()),
    )
    .await
    .expect("final answer in time")
    .expect("final answer");
    let v: Value = serde_json::from_slice(&done.payload).expect("json");
    assert_eq!(
        v["type"], "io.nats.jetstream.api.v1.stream_create_response",
        "{v}"
    );
    if v.get("error").is_some() {
        return Err(v);
    }
    Ok(v)
}

fn meta_of(answer: &Value) -> Value {
    json!({"config": answer["config"], "state": answer["state"]})
}

async fn delete(nc: &async_nats::Client, stream: &str) {
    let v = api(nc, &format!("$JS.API.STREAM.DELETE.{stream}"), &Value::Null).await;
    assert_eq!(v["success"], json!(true), "{v}");
}

/// A memory stream by hand, in small chunks and a small window (many acks). natscli
/// (jsm.go 0.5) backs up memory streams only from servers that say they are 2.15 or
/// newer, and natrix says 2.14.0, so this goes through the API directly.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn memory_stream_round_trip_by_hand() {
    let (p, store) = start_js(Path::new(NATRIX));
    let nc = connect(&p).await;
    populate(&nc, "MEM", stream::StorageType::Memory).await;
    let before = observe(&nc, "MEM").await;
    let started = Instant::now();
    let (answer, data) = backup(
        &nc,
        "MEM",
        json!({"chunk_size": 4096, "window_size": 16384}),
    )
    .await
    .expect("backup");
    let took = started.elapsed();
    assert_eq!(
        answer["type"],
        "io.nats.jetstream.api.v1.stream_snapshot_response"
    );
    assert_eq!(answer["config"]["storage"], "memory");
    assert_eq!(answer["state"]["messages"], json!(MSGS));
    delete(&nc, "MEM").await;
    let started = Instant::now();
    let info = restore(&nc, "MEM", &meta_of(&answer), &data)
        .await
        .expect("restore");
    eprintln!(
        "memory stream by hand: backup {took:?} ({} bytes), restore {:?}",
        data.len(),
        started.elapsed()
    );
    assert_eq!(info["config"]["storage"], "memory");
    assert_eq!(info["state"]["messages"], json!(MSGS));
    let after = observe(&nc, "MEM").await;
    assert_eq!(before, after);
    // Nothing of either transfer is left on disk.
    let snaps = store.path().join("jetstream/$G/snapshots");
    let left: Vec<_> = std::fs::read_dir(&snaps)
        .map(|d| d.flatten().map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "left in snapshots/: {left:?}");
}

/// `no_consumers` backs up the stream without its consumers, on both servers; and
/// restoring the backup as a memory stream (a config change on restore) works on natrix.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_consumers_on_both_servers() {
    let mut outcomes = Vec::new();
    let mut bins = vec![PathBuf::from(NATRIX)];
    bins.extend(reference());
    for bin in &bins {
        let (p, _store) = start_js(bin);
        let nc = connect(&p).await;
        populate(&nc, "NC", stream::StorageType::File).await;
        let before = observe(&nc, "NC").await;
        let (answer, data) = backup(&nc, "NC", json!({"no_consumers": true}))
            .await
            .expect("backup");
        delete(&nc, "NC").await;
        restore(&nc, "NC", &meta_of(&answer), &data)
            .await
            .expect("restore");
        let after = observe(&nc, "NC").await;
        assert_eq!(before.msgs, after.msgs);
        assert_eq!(after.consumers, Vec::<String>::new(), "{}", bin.display());
        let mut state = after.state.clone();
        state["consumer_count"] = before.state["consumer_count"].clone();
        assert_eq!(before.state, state);
        outcomes.push(after.portable());
        if bin == Path::new(NATRIX) {
            delete(&nc, "NC").await;
            let mut meta = meta_of(&answer);
            meta["config"]["storage"] = json!("memory");
            let info = restore(&nc, "NC", &meta, &data).await.expect("as memory");
            assert_eq!(info["config"]["storage"], "memory");
            assert_eq!(observe(&nc, "NC").await.msgs, before.msgs);
        }
    }
    if let [a, b] = outcomes.as_slice() {
        assert_eq!(a, b, "natrix vs nats-server");
    }
}

/// A snapshot taken while publishers keep writing holds exactly the state its answer
/// reported: the actor pins the copy between two commits.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_under_load_is_consistent() {
    let (p, _store) = start_js(Path::new(NATRIX));
    let nc = connect(&p).await;
    let js = jetstream::new(nc.clone());
    js.create_stream(stream::Config {
        name: "LOAD".into(),
        subjects: vec!["load.>".into()],
        ..Default::default()
    })
    .await
    .expect("create");
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let writer = {
        let js = js.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            let mut i = 0u64;
            while !stop.load(std::sync::atomic::Ordering::Relaxed) && i < 200_000 {
                let mut acks = Vec::new();
                for _ in 0..50 {
                    acks.push(
                        js.publish(format!("load.{}", i % 13), format!("m{i}").into())
                            .await
                            .expect("publish"),
                    );
                    i += 1;
                }
                for a in acks {
                    a.await.expect("ack");
                }
            }
            i
        })
    };
    tokio::time::sleep(Duration::from_millis(300)).await;
    let (answer, data) = backup(&nc, "LOAD", json!({})).await.expect("backup");
    tokio::time::sleep(Duration::from_millis(200)).await;
    stop.store(true, std::sync::atomic::Ordering::Relaxed);
    let written = writer.await.expect("writer");
    let at = answer["state"]["last_seq"].as_u64().expect("last_seq");
    assert!(at > 0 && at < written, "snapshot at {at} of {written}");
    delete(&nc, "LOAD").await;
    let info = restore(&nc, "LOAD", &meta_of(&answer), &data)
        .await
        .expect("restore");
    for k in ["messages", "bytes", "first_seq", "last_seq", "num_subjects"] {
        assert_eq!(info["state"][k], answer["state"][k], "{k}");
    }
}

// ---------------------------------------------------------------------------------------
// Bad input
// ---------------------------------------------------------------------------------------

/// What one server did with the bad inputs, for comparing the two.
#[derive(Debug, PartialEq)]
struct BadOutcome {
    request_errors: Vec<u64>,
    restore_existing: u64,
    garbage: (u64, bool),
    no_acks: String,
    /// The completion advisory's error when the receiver unsubscribed.
    gone: String,
}

async fn bad_input(bin: &Path) -> BadOutcome {
    let (p, store) = start_js(bin);
    let nc = connect(&p).await;
    let js = jetstream::new(nc.clone());
    js.create_stream(stream::Config {
        name: "BAD".into(),
        subjects: vec!["bad.>".into()],
        ..Default::default()
    })
    .await
    .expect("create");
    let mut acks = Vec::new();
    for i in 0..3000u64 {
        // Incompressible payloads, so the copy spans many 1 KiB chunks.
        let payload: Vec<u8> = (0..64)
            .map(|j| ((i * 7919 + j * 104_729) % 251) as u8)
            .collect();
        acks.push(
            js.publish(format!("bad.{}", i % 5), payload.into())
                .await
                .expect("publish"),
        );
    }
    for a in acks {
        a.await.expect("ack");
    }

    let mut request_errors = Vec::new();
    for (subject, body) in [
        ("$JS.API.STREAM.SNAPSHOT.BAD", Value::Null),
        (
            "$JS.API.STREAM.SNAPSHOT.NOPE",
            json!({"deliver_subject": "x"}),
        ),
        (
            "$JS.API.STREAM.SNAPSHOT.BAD",
            json!({"deliver_subject": "a.*"}),
        ),
        (
            "$JS.API.STREAM.SNAPSHOT.BAD",
            json!({"deliver_subject": ""}),
        ),
        ("$JS.API.STREAM.RESTORE.BAD", Value::Null),
        (
            "$JS.API.STREAM.RESTORE.BAD",
            json!({"config": {"name": "OTHER"}}),
        ),
    ] {
        let v = api(&nc, subject, &body).await;
        request_errors.push(err_code(&v));
    }

    // Restore onto a stream that exists.
    let (answer, _) = backup(&nc, "BAD", json!({})).await.expect("backup");
    let existing = restore(&nc, "BAD", &meta_of(&answer), b"x")
        .await
        .expect_err("refused");
    let restore_existing = err_code(&existing);
    assert_eq!(
        existing["error"]["description"],
        "stream name already in use, cannot restore"
    );

    // A garbage upload fails and leaves no stream.
    let mut meta = meta_of(&answer);
    meta["config"]["name"] = json!("JUNK");
    meta["config"]["subjects"] = json!(["junk.>"]);
    let garbage = restore(&nc, "JUNK", &meta, &[0x42; 3000])
        .await
        .expect_err("garbage refused");
    assert!(
        garbage["error"]["description"]
            .as_str()
            .is_some_and(|d| d.starts_with("restore failed")),
        "{garbage}"
    );
    let info = api(&nc, "$JS.API.STREAM.INFO.JUNK", &Value::Null).await;
    let garbage = (err_code(&garbage), err_code(&info) == 10059);
    if bin == Path::new(NATRIX) {
        let snaps = store.path().join("jetstream/$G/snapshots");
        let left: Vec<_> = std::fs::read_dir(&snaps)
            .map(|d| d.flatten().map(|e| e.file_name()).collect())
            .unwrap_or_default();
        assert!(left.is_empty(), "left in snapshots/: {left:?}");
        assert!(!store.path().join("jetstream/$G/streams/JUNK").exists());
    }

    // A receiver that takes one chunk and never acks: 408 after the ack timeout.
    let inbox = nc.new_inbox();
    let mut sub = nc.subscribe(inbox.clone()).await.expect("subscribe");
    let v = api(
        &nc,
        "$JS.API.STREAM.SNAPSHOT.BAD",
        &json!({"deliver_subject": inbox, "chunk_size": 1024, "window_size": 1024}),
    )
    .await;
    assert!(v.get("error").is_none(), "{v}");
    let started = Instant::now();
    let mut chunks = 0;
    let no_acks = loop {
        let m = tokio::time::timeout(Duration::from_secs(15), sub.next())
            .await
            .expect("snapshot ends within the ack timeout")
            .expect("message");
        if m.payload.is_empty() {
            break format!(
                "{} {}",
                m.status.map(|s| s.as_u16()).unwrap_or(0),
                m.description.unwrap_or_default()
            );
        }
        chunks += 1;
    };
    let took = started.elapsed();
    assert_eq!(chunks, 1, "one chunk in a one-chunk window");
    assert!(
        took >= Duration::from_millis(4500) && took < Duration::from_secs(9),
        "ended after {took:?}"
    );

    // A receiver that goes away: the snapshot ends at once with 408 No Interest, which
    // only its completion advisory can tell.
    let mut advisories = nc
        .subscribe("$JS.EVENT.ADVISORY.STREAM.SNAPSHOT_COMPLETE.BAD")
        .await
        .expect("subscribe");
    let inbox = nc.new_inbox();
    let mut sub = nc.subscribe(inbox.clone()).await.expect("subscribe");
    let v = api(
        &nc,
        "$JS.API.STREAM.SNAPSHOT.BAD",
        &json!({"deliver_subject": inbox, "chunk_size": 1024, "window_size": 1024}),
    )
    .await;
    assert!(v.get("error").is_none(), "{v}");
    tokio::time::timeout(Duration::from_secs(10), sub.next())
        .await
        .expect("a first chunk")
        .expect("message");
    sub.unsubscribe().await.expect("unsubscribe");
    let started = Instant::now();
    let advisory = tokio::time::timeout(Duration::from_secs(4), advisories.next())
        .await
        .expect("the snapshot ends before its ack timeout")
        .expect("advisory");
    let advisory: Value = serde_json::from_slice(&advisory.payload).expect("json");
    assert!(started.elapsed() < Duration::from_secs(3));
    let gone = advisory["error"].as_str().unwrap_or_default().to_owned();
    BadOutcome {
        request_errors,
        restore_existing,
        garbage,
        no_acks,
        gone,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_on_both_servers() {
    let ours = bad_input(Path::new(NATRIX)).await;
    assert_eq!(
        ours,
        BadOutcome {
            request_errors: vec![10003, 10059, 10015, 10015, 10003, 10056],
            restore_existing: 10130,
            garbage: (10062, true),
            no_acks: "408 No Flow Response".into(),
            gone: "no interest".into(),
        }
    );
    let Some(reference) = reference() else {
        return skip("nats-server");
    };
    let theirs = bad_input(&reference).await;
    assert_eq!(ours, theirs, "natrix vs nats-server");
}
