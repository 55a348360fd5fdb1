//! Mirrors and sources through async-nats: a mirror of a stream with gaps that catches
//! up and follows, sources from two streams with a filter and a subject transform, a
//! stream's own input transform, KV buckets mirrored and sourced and read through the KV
//! API (and the origin's keys answered by the mirror once the origin is gone). Each runs
//! against natrix-server and the reference nats-server; the transcripts must be equal.
//! A last scenario (natrix only) kills the server while a mirror and a source are
//! catching up and checks that after the restart nothing is missing or doubled.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, kv, stream};
use common::{NATRIX, connect_js, js_conf, start};
use futures::StreamExt as _;

/// Runs `scenario` on both servers (natrix first) and compares the transcripts.
async fn differential<F, Fut>(scenario: F) -> Vec<String>
where
    F: Fn(async_nats::Client) -> Fut,
    Fut: std::future::Future<Output = Vec<String>> + Send + 'static,
{
    let store = tempfile::tempdir().expect("store dir");
    let ours = start(Path::new(NATRIX), &js_conf(store.path()), false);
    let run = tokio::spawn(tokio::time::timeout(
        Duration::from_secs(90),
        scenario(connect_js(&ours).await),
    ));
    let Ok(Ok(mine)) = run.await else {
        panic!(
            "natrix scenario failed or did not finish; log:\n{}",
            ours.log_text()
        );
    };
    eprintln!("natrix transcript: {mine:#?}");
    if std::env::var_os("JS_SOURCES_LOG").is_some() {
        eprintln!("natrix log:\n{}", ours.log_text());
    }
    if let Some(reference) = common::reference_binary() {
        let store = tempfile::tempdir().expect("store dir");
        let theirs = start(&reference, &js_conf(store.path()), false);
        let want =
            tokio::time::timeout(Duration::from_secs(90), scenario(connect_js(&theirs).await))
                .await
                .expect("nats-server scenario finished in time");
        for (i, (a, b)) in mine.iter().zip(want.iter()).enumerate() {
            assert_eq!(a, b, "step {i} differs (left natrix, right nats-server)");
        }
        assert_eq!(mine.len(), want.len(), "transcript lengths");
    }
    mine
}

/// Stream info once `done` holds for it (or after 30 s, as it is then).
async fn wait_for(
    js: &jetstream::Context,
    name: &str,
    done: impl Fn(&stream::Info) -> bool,
) -> stream::Info {
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let mut s = js.get_stream(name).await.expect("get stream");
        let info = s.info().await.expect("info").clone();
        if done(&info) || Instant::now() > deadline {
            return info;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Stream info once the stream holds `n` messages (or after 30 s, whatever it holds).
async fn wait_msgs(js: &jetstream::Context, name: &str, n: u64) -> stream::Info {
    wait_for(js, name, |i| i.state.messages >= n).await
}

/// Stream info once the stream's last sequence is `seq` or more.
async fn wait_last(js: &jetstream::Context, name: &str, seq: u64) -> stream::Info {
    wait_for(js, name, |i| i.state.last_sequence >= seq).await
}

/// Source infos by name: name, lag, whether active, filter, transforms.
fn sources_line(infos: &[stream::SourceInfo]) -> String {
    let mut v: Vec<String> = infos
        .iter()
        .map(|s| {
            let trs: Vec<String> = s
                .subject_transforms
                .iter()
                .map(|t| format!("{}->{}", t.source, t.destination))
                .collect();
            format!(
                "{} lag={} active={} filter={:?} transforms={trs:?}",
                s.name,
                s.lag,
                s.active.is_some(),
                s.filter_subject
            )
        })
        .collect();
    v.sort();
    v.join("; ")
}

/// The first five fields of a `Nats-Stream-Source` header (nats-server adds the
/// origin's identity hash as a sixth, which differs from run to run).
fn source_hdr(m: &jetstream::message::StreamMessage) -> String {
    m.headers
        .get("Nats-Stream-Source")
        .map(|v| {
            v.as_str()
                .split(' ')
                .take(5)
                .collect::<Vec<_>>()
                .join(" ")
                .replace('\u{c}', "<FF>")
        })
        .unwrap_or_default()
}

fn state_line(info: &stream::Info) -> String {
    format!(
        "msgs={} first={} last={} deleted={} subjects={}",
        info.state.messages,
        info.state.first_sequence,
        info.state.last_sequence,
        info.state.deleted_count.unwrap_or(0),
        info.state.subjects_count
    )
}

#[tokio::test]
async fn mirror_with_gaps_catches_up_and_follows() {
    let t = differential(|nc| async move {
        let js = jetstream::new(nc);
        let mut t = Vec::new();
        let origin = js
            .create_stream(stream::Config {
                name: "ORIGIN".into(),
                subjects: vec!["o.>".into()],
                allow_direct: true,
                ..Default::default()
            })
            .await
            .expect("create origin");
        let mut acks = Vec::new();
        for i in 0..1000u32 {
            let mut h = async_nats::HeaderMap::new();
            h.insert("X-Index", i.to_string().as_str());
            if i % 100 == 0 {
                h.insert("Nats-Expected-Stream", "ORIGIN");
            }
            acks.push(
                js.publish_with_headers(format!("o.{}", i % 7), h, format!("m{i}").into())
                    .await
                    .expect("publish"),
            );
        }
        for a in acks {
            a.await.expect("ack");
        }
        // Gaps: the first five, every 50th, the last three.
        let mut gone = vec![1, 2, 3, 4, 5, 998, 999, 1000];
        gone.extend((50..1000).step_by(50));
        for seq in &gone {
            origin.delete_message(*seq).await.expect("delete");
        }
        let mut o = js.get_stream("ORIGIN").await.expect("origin");
        let oinfo = o.info().await.expect("info").clone();
        t.push(format!("origin {}", state_line(&oinfo)));

        let m = js
            .create_stream(stream::Config {
                name: "M".into(),
                mirror: Some(stream::Source {
                    name: "ORIGIN".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("create mirror");
        let created = m.cached_info();
        t.push(format!(
            "created: subjects={:?} mirror_direct={} mirror={:?}",
            created.config.subjects,
            created.config.mirror_direct,
            created.mirror.as_ref().map(|s| (&s.name, s.lag))
        ));
        let info = wait_msgs(&js, "M", oinfo.state.messages).await;
        t.push(format!(
            "mirror {} bytes_equal={}",
            state_line(&info),
            info.state.bytes == oinfo.state.bytes
        ));
        t.push(format!(
            "mirror info: {}",
            sources_line(info.mirror.as_slice())
        ));
        for seq in [6, 7, 50, 51, 500, 997, 998] {
            let a = origin.get_raw_message(seq).await;
            let b = m.get_raw_message(seq).await;
            t.push(match (a, b) {
                (Ok(a), Ok(b)) => format!(
                    "seq {seq}: {} {:?} index={:?} same_subject={} same_payload={} same_time={} expected_hdr={:?}",
                    b.subject,
                    b.payload,
                    b.headers.get("X-Index").map(|v| v.to_string()),
                    a.subject == b.subject,
                    a.payload == b.payload,
                    a.time == b.time,
                    b.headers.get("Nats-Expected-Stream").map(|v| v.to_string()),
                ),
                (a, b) => format!("seq {seq}: origin ok={} mirror ok={}", a.is_ok(), b.is_ok()),
            });
        }
        // It follows new messages.
        for i in 0..20 {
            js.publish(format!("o.new.{i}"), "n".into())
                .await
                .expect("publish")
                .await
                .expect("ack");
        }
        let info = wait_msgs(&js, "M", oinfo.state.messages + 20).await;
        t.push(format!("after 20 more: {}", state_line(&info)));
        let last = m.get_raw_message(1020).await.expect("last");
        t.push(format!("mirror 1020: {} {:?}", last.subject, last.payload));
        // The origin lists and counts no consumer of the mirror's.
        let oinfo = o.info().await.expect("info").clone();
        t.push(format!("origin consumers={}", oinfo.state.consumer_count));
        let names: Vec<String> = o
            .consumer_names()
            .map(|n| n.expect("name"))
            .collect()
            .await;
        t.push(format!("origin consumer names={names:?}"));
        // A consumer on the mirror reads the origin's messages at their sequences.
        let c = m
            .create_consumer(consumer::pull::Config {
                durable_name: Some("R".into()),
                filter_subject: "o.3".into(),
                ..Default::default()
            })
            .await
            .expect("consumer");
        let mut batch = c
            .fetch()
            .max_messages(4)
            .messages()
            .await
            .expect("fetch");
        while let Some(msg) = batch.next().await {
            let msg = msg.expect("msg");
            let i = msg.info().expect("info");
            t.push(format!(
                "read {} seq={} {:?}",
                msg.subject, i.stream_sequence, msg.payload
            ));
        }
        t
    })
    .await;
    assert!(t.iter().any(|l| l.starts_with("mirror msgs=")), "{t:#?}");
}

#[tokio::test]
async fn sources_with_filter_and_transform() {
    let t = differential(|nc| async move {
        let js = jetstream::new(nc);
        let mut t = Vec::new();
        for (name, subj) in [("A", "a.>"), ("B", "b.>")] {
            js.create_stream(stream::Config {
                name: name.into(),
                subjects: vec![subj.into()],
                ..Default::default()
            })
            .await
            .expect("create");
        }
        for i in 0..30 {
            let subject = if i % 2 == 0 { "a.x" } else { "a.y" };
            let mut h = async_nats::HeaderMap::new();
            h.insert("Nats-Msg-Id", format!("a-{i}").as_str());
            js.publish_with_headers(subject, h, format!("a{i}").into())
                .await
                .expect("publish")
                .await
                .expect("ack");
        }
        for i in 0..20 {
            js.publish(format!("b.{}", i % 4), format!("b{i}").into())
                .await
                .expect("publish")
                .await
                .expect("ack");
        }
        let s = js
            .create_stream(stream::Config {
                name: "S".into(),
                subjects: vec!["s.own".into()],
                sources: Some(vec![
                    stream::Source {
                        name: "A".into(),
                        filter_subject: Some("a.x".into()),
                        ..Default::default()
                    },
                    stream::Source {
                        name: "B".into(),
                        subject_transforms: vec![stream::SubjectTransform {
                            source: "b.*".into(),
                            destination: "s.b.{{wildcard(1)}}".into(),
                        }],
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            })
            .await
            .expect("create S");
        let created = s.cached_info();
        t.push(format!(
            "created: subjects={:?} dup_window={:?} sources={}",
            created.config.subjects,
            created.config.duplicate_window,
            sources_line(&created.sources).replace("active=true", "active=?")
        ));
        let info = wait_msgs(&js, "S", 35).await;
        t.push(format!(
            "S {} bytes={}",
            state_line(&info),
            info.state.bytes
        ));
        t.push(format!("S sources: {}", sources_line(&info.sources)));
        let mut seen = Vec::new();
        for seq in 1..=info.state.last_sequence {
            if let Ok(m) = s.get_raw_message(seq).await {
                let fields = m
                    .headers
                    .get("Nats-Stream-Source")
                    .map_or(0, |v| v.as_str().split(' ').count());
                seen.push(format!(
                    "{} {:?} src=[{}] fields={fields} msgid={:?}",
                    m.subject,
                    m.payload,
                    source_hdr(&m),
                    m.headers.get("Nats-Msg-Id").map(|v| v.to_string())
                ));
            }
        }
        // The two sources interleave as they arrive; each in its own order.
        let from_a: Vec<&String> = seen.iter().filter(|l| l.starts_with("a.")).collect();
        let from_b: Vec<&String> = seen.iter().filter(|l| l.starts_with("s.b.")).collect();
        t.push(format!("from A: {from_a:#?}"));
        t.push(format!("from B: {from_b:#?}"));
        // Its own subject still takes publishes; both sources keep following.
        let ack = js
            .publish("s.own", "mine".into())
            .await
            .expect("publish")
            .await
            .expect("ack");
        t.push(format!(
            "own publish: stream={} seq={}",
            ack.stream, ack.sequence
        ));
        for i in 30..34 {
            js.publish(
                if i % 2 == 0 { "a.x" } else { "a.y" },
                format!("a{i}").into(),
            )
            .await
            .expect("publish")
            .await
            .expect("ack");
        }
        js.publish("b.9", "b-late".into())
            .await
            .expect("publish")
            .await
            .expect("ack");
        let info = wait_msgs(&js, "S", 39).await;
        t.push(format!("S then {}", state_line(&info)));
        let mut s = js.get_stream("S").await.expect("S");
        let info = s
            .info_with_subjects(">")
            .await
            .expect("subjects")
            .collect::<Vec<_>>()
            .await;
        let mut counts: Vec<String> = info
            .into_iter()
            .map(|r| {
                let (k, v) = r.expect("subject");
                format!("{k}={v}")
            })
            .collect();
        counts.sort();
        t.push(format!("S subjects: {counts:?}"));
        let late = s
            .get_last_raw_message_by_subject("s.b.9")
            .await
            .map(|m| (source_hdr(&m), m.payload));
        t.push(format!("late b: {late:?}"));
        let info = s.info().await.expect("info");
        t.push(format!("S sources now: {}", sources_line(&info.sources)));

        // A stream's own input transform.
        js.create_stream(stream::Config {
            name: "T".into(),
            subjects: vec!["in.>".into()],
            subject_transform: Some(stream::SubjectTransform {
                source: "in.>".into(),
                destination: "stored.>".into(),
            }),
            ..Default::default()
        })
        .await
        .expect("create T");
        let ack = js
            .publish("in.one.two", "x".into())
            .await
            .expect("publish")
            .await
            .expect("ack");
        t.push(format!("T publish: {} {}", ack.stream, ack.sequence));
        let tm = js
            .get_stream("T")
            .await
            .expect("T")
            .get_raw_message(1)
            .await
            .expect("get");
        t.push(format!("T stored as {}", tm.subject));
        t
    })
    .await;
    assert!(t.iter().any(|l| l.starts_with("S msgs=35")), "{t:#?}");
}

#[tokio::test]
async fn kv_mirrored_and_sourced() {
    let t = differential(|nc| async move {
        let js = jetstream::new(nc);
        let mut t = Vec::new();
        let cfg = js
            .create_key_value(kv::Config {
                bucket: "CFG".into(),
                history: 3,
                ..Default::default()
            })
            .await
            .expect("kv");
        let other = js
            .create_key_value(kv::Config {
                bucket: "OTHER".into(),
                ..Default::default()
            })
            .await
            .expect("kv");
        cfg.put("k1", "v1".into()).await.expect("put");
        cfg.put("k2", "v2".into()).await.expect("put");
        cfg.put("k1", "v1b".into()).await.expect("put");
        cfg.put("gone", "x".into()).await.expect("put");
        cfg.delete("gone").await.expect("delete");
        cfg.put("purged", "p".into()).await.expect("put");
        cfg.purge("purged").await.expect("purge");
        other.put("o1", "w1".into()).await.expect("put");
        let origin = wait_msgs(&js, "KV_CFG", 0).await;
        let olast = origin.state.last_sequence;
        t.push(format!("origin {}", state_line(&origin)));

        // A mirror bucket.
        let m = js
            .create_key_value(kv::Config {
                bucket: "CFGM".into(),
                mirror: Some(stream::Source {
                    name: "CFG".into(),
                    ..Default::default()
                }),
                ..Default::default()
            })
            .await
            .expect("mirror kv");
        // The mirror keeps one value per key (history 1), at the origin's sequences.
        let info = wait_last(&js, "KV_CFGM", olast).await;
        t.push(format!(
            "mirror {} mirror_direct={} mirror={}",
            state_line(&info),
            info.config.mirror_direct,
            sources_line(info.mirror.as_slice())
        ));
        t.push(format!(
            "mirror kv get k1: {:?}",
            m.get("k1").await.map_err(|e| e.to_string())
        ));
        let ms = js.get_stream("KV_CFGM").await.expect("mirror stream");
        for key in ["k1", "k2", "gone", "purged"] {
            let r = ms
                .direct_get_last_for_subject(format!("$KV.CFG.{key}"))
                .await
                .map(|m| {
                    (
                        m.sequence,
                        m.payload,
                        m.headers.get("KV-Operation").map(|v| v.to_string()),
                    )
                })
                .map_err(|e| e.kind().to_string());
            t.push(format!("mirror holds {key}: {r:?}"));
        }

        // A bucket sourced from two, mapped into its own keys.
        let agg = js
            .create_key_value(kv::Config {
                bucket: "AGG".into(),
                // Keeps everything: a source that starts after another one's messages
                // were removed by the limits starts by time (nats-server's rule), which
                // would race with the other source here.
                history: 5,
                sources: Some(vec![
                    stream::Source {
                        name: "CFG".into(),
                        subject_transforms: vec![stream::SubjectTransform {
                            source: "$KV.CFG.>".into(),
                            destination: "$KV.AGG.>".into(),
                        }],
                        ..Default::default()
                    },
                    stream::Source {
                        name: "OTHER".into(),
                        subject_transforms: vec![stream::SubjectTransform {
                            source: "$KV.OTHER.>".into(),
                            destination: "$KV.AGG.>".into(),
                        }],
                        ..Default::default()
                    },
                ]),
                ..Default::default()
            })
            .await
            .expect("sourced kv");
        // The six messages of CFG, o1 from OTHER.
        let ainfo = wait_msgs(&js, "KV_AGG", 7).await;
        t.push(format!("agg {}", state_line(&ainfo)));
        for key in ["k1", "k2", "o1", "gone", "purged", "none"] {
            t.push(format!(
                "agg get {key}: {:?}",
                agg.get(key).await.map_err(|e| e.to_string())
            ));
        }
        let mut keys: Vec<String> = agg
            .keys()
            .await
            .expect("keys")
            .map(|k| k.expect("key"))
            .collect()
            .await;
        keys.sort();
        t.push(format!("agg keys: {keys:?}"));
        let hist: Vec<String> = agg
            .history("k1")
            .await
            .expect("history")
            .map(|e| {
                let e = e.expect("entry");
                format!("{:?}:{:?}", e.operation, e.value)
            })
            .collect()
            .await;
        t.push(format!("agg history k1: {hist:?}"));

        // New writes reach both.
        cfg.put("k3", "v3".into()).await.expect("put");
        wait_last(&js, "KV_CFGM", olast + 1).await;
        wait_msgs(&js, "KV_AGG", 8).await;
        t.push(format!(
            "agg get k3: {:?}",
            agg.get("k3").await.map_err(|e| e.to_string())
        ));

        // With the origin gone, its keys are still read: the mirror answers its direct
        // gets (mirror_direct).
        js.delete_stream("KV_CFG").await.expect("delete origin");
        for key in ["k1", "k3", "gone"] {
            t.push(format!(
                "origin gone, get {key}: {:?}",
                cfg.get(key).await.map_err(|e| e.to_string())
            ));
        }
        t
    })
    .await;
    assert!(t.iter().any(|l| l.starts_with("agg get k1")), "{t:#?}");
}

/// Every message of `name`, through an ordered consumer: (stream seq, subject,
/// payload, `Nats-Stream-Source` origin sequence).
async fn read_all(
    js: &jetstream::Context,
    name: &str,
    n: usize,
) -> Vec<(u64, String, Vec<u8>, u64)> {
    let s = js.get_stream(name).await.expect("stream");
    let c = s
        .create_consumer(consumer::pull::OrderedConfig::default())
        .await
        .expect("ordered consumer");
    let mut msgs = c.messages().await.expect("messages");
    let mut out = Vec::with_capacity(n);
    while out.len() < n {
        let Ok(Some(Ok(m))) = tokio::time::timeout(Duration::from_secs(5), msgs.next()).await
        else {
            break;
        };
        let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
        let origin = m
            .headers
            .as_ref()
            .and_then(|h| h.get("Nats-Stream-Source"))
            .and_then(|v| v.as_str().split(' ').nth(1).and_then(|s| s.parse().ok()))
            .unwrap_or(0);
        out.push((seq, m.subject.to_string(), m.payload.to_vec(), origin));
    }
    out
}

#[tokio::test]
async fn restart_in_the_middle_of_sourcing_loses_and_doubles_nothing() {
    const N: u64 = 20_000;
    let store = tempfile::tempdir().expect("store dir");
    let conf = js_conf(store.path());
    let mut server = start(Path::new(NATRIX), &conf, false);
    let nc = connect_js(&server).await;
    let js = jetstream::new(nc.clone());
    js.create_stream(stream::Config {
        name: "O".into(),
        subjects: vec!["o.>".into()],
        ..Default::default()
    })
    .await
    .expect("origin");
    let payload = bytes::Bytes::from(vec![b'x'; 200]);
    let mut acks = Vec::new();
    for i in 0..N {
        acks.push(
            js.publish(format!("o.{}", i % 13), payload.clone())
                .await
                .expect("publish"),
        );
        if acks.len() >= 1000 {
            for a in acks.drain(..) {
                a.await.expect("ack");
            }
        }
    }
    for a in acks.drain(..) {
        a.await.expect("ack");
    }
    js.create_stream(stream::Config {
        name: "M".into(),
        mirror: Some(stream::Source {
            name: "O".into(),
            ..Default::default()
        }),
        ..Default::default()
    })
    .await
    .expect("mirror");
    js.create_stream(stream::Config {
        name: "S".into(),
        sources: Some(vec![stream::Source {
            name: "O".into(),
            filter_subject: Some("o.>".into()),
            ..Default::default()
        }]),
        ..Default::default()
    })
    .await
    .expect("source");
    // Kill it as soon as both have started copying.
    let deadline = Instant::now() + Duration::from_secs(30);
    let (mut m_before, mut s_before) = (0, 0);
    while Instant::now() < deadline {
        let mut m = js.get_stream("M").await.expect("M");
        let mut s = js.get_stream("S").await.expect("S");
        m_before = m.info().await.expect("info").state.messages;
        s_before = s.info().await.expect("info").state.messages;
        if m_before > 0 && s_before > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    drop(nc);
    server.child.kill().expect("kill -9");
    let _ = server.child.wait();
    eprintln!("killed with M at {m_before} and S at {s_before} of {N}");

    let server = start(Path::new(NATRIX), &conf, false);
    let nc = connect_js(&server).await;
    let js = jetstream::new(nc);
    let m = wait_msgs(&js, "M", N).await;
    let s = wait_msgs(&js, "S", N).await;
    assert_eq!(
        (
            m.state.messages,
            m.state.first_sequence,
            m.state.last_sequence
        ),
        (N, 1, N),
        "mirror after restart"
    );
    assert_eq!(
        (s.state.messages, s.state.last_sequence),
        (N, N),
        "source after restart: nothing doubled"
    );
    // Give a doubled message time to show up before reading.
    tokio::time::sleep(Duration::from_millis(500)).await;
    let n = usize::try_from(N).expect("fits");
    let origin = read_all(&js, "O", n).await;
    let mirror = read_all(&js, "M", n).await;
    let sourced = read_all(&js, "S", n + 1).await;
    assert_eq!(origin.len(), n);
    assert_eq!(mirror.len(), n, "mirror complete");
    for (o, m) in origin.iter().zip(&mirror) {
        assert_eq!((o.0, &o.1, &o.2), (m.0, &m.1, &m.2), "mirror message");
    }
    assert_eq!(sourced.len(), n, "source has each origin message once");
    for (o, s) in origin.iter().zip(&sourced) {
        assert_eq!(
            (o.0, &o.1, &o.2),
            (s.3, &s.1, &s.2),
            "sourced message in order"
        );
    }
    let info = js
        .get_stream("S")
        .await
        .expect("S")
        .info()
        .await
        .expect("info")
        .clone();
    assert_eq!(info.sources.len(), 1);
    assert_eq!(info.sources[0].lag, 0);
}

/// Two JetStream domains joined by a leaf node, `HUB` (the accepting side) and `SPOKE`:
/// each answers its own `$JS.API` only (a request never crosses, so it is answered
/// once), each is reached from the other by domain (`$JS.<domain>.API`), and a spoke
/// stream sources a hub stream across. Run with every pairing of natrix and nats-server
/// in the two roles; the transcripts must equal the pair of nats-servers'.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sources_across_domains_over_a_leaf_node() {
    let natrix = std::path::PathBuf::from(NATRIX);
    let reference = common::reference_binary();
    let mut pairs = vec![("natrix", natrix.clone(), "natrix", natrix.clone())];
    if let Some(r) = &reference {
        pairs.push(("nats-server", r.clone(), "nats-server", r.clone()));
        pairs.push(("natrix", natrix.clone(), "nats-server", r.clone()));
        pairs.push(("nats-server", r.clone(), "natrix", natrix.clone()));
    }
    let mut transcripts = Vec::new();
    for (hub_name, hub_bin, spoke_name, spoke_bin) in pairs {
        let leaf_port = common::free_port();
        let hub_store = tempfile::tempdir().expect("store");
        let spoke_store = tempfile::tempdir().expect("store");
        let hub = start(
            &hub_bin,
            &format!(
                "server_name: hub\njetstream {{ store_dir: \"{}\", domain: HUB }}\nleafnodes {{ listen: \"127.0.0.1:{leaf_port}\" }}\n",
                hub_store.path().display()
            ),
            false,
        );
        let spoke = start(
            &spoke_bin,
            &format!(
                "server_name: spoke\njetstream {{ store_dir: \"{}\", domain: SPOKE }}\nleafnodes {{ remotes: [{{ url: \"nats://127.0.0.1:{leaf_port}\" }}] }}\n",
                spoke_store.path().display()
            ),
            false,
        );
        let label = format!("hub {hub_name}, spoke {spoke_name}");
        let run = tokio::time::timeout(
            Duration::from_secs(90),
            domains_scenario(connect_js(&hub).await, connect_js(&spoke).await),
        )
        .await;
        let Ok(t) = run else {
            panic!(
                "{label}: scenario did not finish\nhub log:\n{}\nspoke log:\n{}",
                hub.log_text(),
                spoke.log_text()
            );
        };
        eprintln!("{label}: {t:#?}");
        transcripts.push((label, t));
    }
    let (first, want) = transcripts.last().cloned().unwrap_or_default();
    for (label, t) in &transcripts {
        assert_eq!(t, &want, "{label} differs from {first}");
    }
    let natrix_only = &transcripts[0].1;
    assert!(
        natrix_only.contains(&"spoke sources: 15".to_owned()),
        "{natrix_only:?}"
    );
}

/// Every answer to one request on `subject` within half a second.
async fn answers(nc: &async_nats::Client, subject: &str, body: &str) -> Vec<serde_json::Value> {
    let inbox = nc.new_inbox();
    let mut sub = nc.subscribe(inbox.clone()).await.expect("subscribe");
    nc.publish_with_reply(subject.to_owned(), inbox, body.to_owned().into())
        .await
        .expect("publish");
    let mut out = Vec::new();
    let deadline = tokio::time::Instant::now() + Duration::from_millis(500);
    while let Ok(Some(m)) = tokio::time::timeout_at(deadline, sub.next()).await {
        out.push(serde_json::from_slice(&m.payload).unwrap_or_default());
    }
    out
}

/// The first answer whose `check` holds, asking again for up to 20 s.
async fn answer_until(
    nc: &async_nats::Client,
    subject: &str,
    body: &str,
    check: impl Fn(&serde_json::Value) -> bool,
) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let got = answers(nc, subject, body).await;
        if let Some(v) = got.iter().find(|v| check(v)) {
            return v.clone();
        }
        assert!(
            Instant::now() < deadline,
            "{subject}: never as expected, last {got:?}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn publish_orders(js: &jetstream::Context, seqs: std::ops::RangeInclusive<u32>) {
    for i in seqs {
        js.publish(format!("orders.{i}"), format!("o{i}").into())
            .await
            .expect("publish")
            .await
            .expect("ack");
    }
}

/// How many answers came and their error codes.
fn answers_line(label: &str, got: &[serde_json::Value]) -> String {
    let codes: Vec<String> = got
        .iter()
        .map(|v| v["error"]["err_code"].to_string())
        .collect();
    format!("{label} answers: {} {codes:?}", got.len())
}

async fn domains_scenario(hub: async_nats::Client, spoke: async_nats::Client) -> Vec<String> {
    let mut t = Vec::new();
    let hub_js = jetstream::new(hub.clone());
    hub_js
        .create_stream(stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            ..Default::default()
        })
        .await
        .expect("create ORDERS");
    publish_orders(&hub_js, 1..=10).await;
    // The spoke reaches the hub's JetStream by domain once the leaf connection is up.
    let info = answer_until(&spoke, "$JS.HUB.API.STREAM.INFO.ORDERS", "", |v| {
        v["state"]["messages"].is_u64()
    })
    .await;
    t.push(format!(
        "hub ORDERS by domain: {}",
        info["state"]["messages"]
    ));
    // The plain API is each side's own: answered once, by the spoke, which has no ORDERS.
    let got = answers(&spoke, "$JS.API.STREAM.INFO.ORDERS", "").await;
    t.push(answers_line("spoke $JS.API", &got));
    // A spoke stream sources the hub's across the domains.
    let body = serde_json::json!({"name": "LOCAL", "subjects": ["local.>"],
        "sources": [{"name": "ORDERS", "external": {"api": "$JS.HUB.API"}}]});
    let created = answer_until(
        &spoke,
        "$JS.API.STREAM.CREATE.LOCAL",
        &body.to_string(),
        |_| true,
    )
    .await;
    t.push(format!(
        "spoke LOCAL created: {}",
        created["error"].is_null()
    ));
    let spoke_js = jetstream::new(spoke.clone());
    let local = wait_msgs(&spoke_js, "LOCAL", 10).await;
    t.push(format!("spoke sources: {}", local.state.messages));
    let first = spoke_js
        .get_stream("LOCAL")
        .await
        .expect("LOCAL")
        .get_raw_message(1)
        .await
        .map(|m| m.subject.to_string())
        .unwrap_or_else(|e| e.to_string());
    t.push(format!("spoke LOCAL message 1 subject: {first}"));
    publish_orders(&hub_js, 11..=15).await;
    let local = wait_msgs(&spoke_js, "LOCAL", 15).await;
    t.push(format!("spoke sources: {}", local.state.messages));
    // And the hub reaches the spoke's by its domain, its own plain API answering alone.
    let info = answer_until(&hub, "$JS.SPOKE.API.STREAM.INFO.LOCAL", "", |v| {
        v["state"]["messages"] == 15
    })
    .await;
    t.push(format!(
        "spoke LOCAL by domain: {}",
        info["state"]["messages"]
    ));
    let got = answers(&hub, "$JS.API.STREAM.INFO.LOCAL", "").await;
    t.push(answers_line("hub $JS.API", &got));
    t
}
