//! Consumer features that change what a consumer sends and when: priority groups
//! (`overflow`, `pinned_client`, `prioritized`), replay policy `original`,
//! `rate_limit_bps` and `sample_freq` ack metrics. Each scenario speaks the raw
//! JetStream API through async-nats (JSON requests, pull requests to inboxes), runs on
//! natrix-server and on the reference nats-server, and writes a transcript (no ids, and
//! times only as bands wide enough for a loaded machine); the transcripts must be
//! equal, and natrix's must show the behaviour the test names.

mod common;

use std::time::{Duration, Instant};

use async_nats::Client;
use futures::StreamExt as _;
use serde_json::{Value, json};

/// A JetStream API call; the answer as JSON.
async fn api(nc: &Client, subject: &str, body: Value) -> Value {
    let m = nc
        .request(subject.to_owned(), body.to_string().into())
        .await
        .unwrap_or_else(|e| panic!("{subject}: {e}"));
    serde_json::from_slice(&m.payload).expect("JSON answer")
}

/// An API answer as a line: the error's code and text, or `ok`.
fn outcome(v: &Value) -> String {
    match v.get("error") {
        Some(e) => format!("error {} {} {}", e["code"], e["err_code"], e["description"]),
        None => "ok".into(),
    }
}

async fn stream(nc: &Client, config: Value) {
    let name = config["name"].as_str().expect("name").to_owned();
    let r = api(nc, &format!("$JS.API.STREAM.CREATE.{name}"), config).await;
    assert_eq!(outcome(&r), "ok", "{r}");
}

async fn consumer(nc: &Client, stream: &str, config: Value) -> Value {
    let name = config["durable_name"].as_str().expect("durable").to_owned();
    let r = api(
        nc,
        &format!("$JS.API.CONSUMER.CREATE.{stream}.{name}"),
        json!({"stream_name": stream, "config": config}),
    )
    .await;
    assert_eq!(outcome(&r), "ok", "{r}");
    r
}

async fn publish(nc: &Client, subject: &str, payload: &str) {
    let r = nc
        .request(subject.to_owned(), payload.to_owned().into())
        .await
        .expect("publish ack");
    let v: Value = serde_json::from_slice(&r.payload).expect("ack JSON");
    assert!(v.get("seq").is_some(), "{v}");
}

/// One delivery or status a pull request got, as a transcript line.
fn describe(m: &async_nats::Message) -> String {
    if let Some(status) = m.status {
        let hdr = |k: &str| {
            m.headers
                .as_ref()
                .and_then(|h| h.get(k))
                .map(|v| v.as_str().to_owned())
        };
        let pending = match (hdr("Nats-Pending-Messages"), hdr("Nats-Pending-Bytes")) {
            (Some(n), Some(b)) => format!(" pending={n}/{b}"),
            _ => String::new(),
        };
        return format!(
            "status {} {}{pending}",
            status.as_u16(),
            m.description.clone().unwrap_or_default()
        );
    }
    format!("msg {} {}", m.subject, String::from_utf8_lossy(&m.payload))
}

fn pin_of(m: &async_nats::Message) -> Option<String> {
    m.headers
        .as_ref()
        .and_then(|h| h.get("Nats-Pin-Id"))
        .map(|v| v.as_str().to_owned())
}

/// A pull request and its inbox.
struct Pull {
    sub: async_nats::Subscriber,
}

impl Pull {
    async fn send(nc: &Client, stream: &str, consumer: &str, body: Value) -> Self {
        let inbox = nc.new_inbox();
        let sub = nc.subscribe(inbox.clone()).await.expect("subscribe");
        nc.publish_with_reply(
            format!("$JS.API.CONSUMER.MSG.NEXT.{stream}.{consumer}"),
            inbox,
            body.to_string().into(),
        )
        .await
        .expect("pull");
        nc.flush().await.expect("flush");
        Self { sub }
    }

    /// The next thing the request gets within `within`.
    async fn next(&mut self, within: Duration) -> Option<async_nats::Message> {
        tokio::time::timeout(within, self.sub.next())
            .await
            .ok()
            .flatten()
    }
}

/// Sends a pull request and describes what it gets first (or `nothing`).
async fn pull_once(nc: &Client, stream: &str, consumer: &str, body: Value) -> String {
    let mut p = Pull::send(nc, stream, consumer, body).await;
    p.next(Duration::from_secs(3))
        .await
        .map_or_else(|| "nothing".into(), |m| describe(&m))
}

const MS: u64 = 1_000_000;

/// Waits until the consumer holds `n` waiting pull requests (a pull request and a later
/// publish take different paths through both servers).
async fn wait_for_waiting(nc: &Client, stream: &str, consumer: &str, n: u64) {
    let subject = format!("$JS.API.CONSUMER.INFO.{stream}.{consumer}");
    for _ in 0..100 {
        if api(nc, &subject, json!({})).await["num_waiting"].as_u64() == Some(n) {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("{stream} > {consumer} never had {n} waiting requests");
}

#[tokio::test]
async fn priority_overflow_serves_requests_by_thresholds() {
    let t = common::js_differential(|nc| async move {
        let mut t = Vec::new();
        stream(&nc, json!({"name": "OV", "subjects": ["ov.>"]})).await;
        consumer(
            &nc,
            "OV",
            json!({"durable_name": "C", "ack_policy": "explicit",
                   "priority_policy": "overflow", "priority_groups": ["A"]}),
        )
        .await;
        for i in 1..=5 {
            publish(&nc, &format!("ov.{i}"), &format!("m{i}")).await;
        }
        let expires = 300 * MS;
        // Five pending: a request wanting ten waits out its expiry.
        t.push(
            pull_once(
                &nc,
                "OV",
                "C",
                json!({"batch": 1, "expires": expires, "group": "A", "min_pending": 10}),
            )
            .await,
        );
        // Exactly five counts (the message about to go is counted).
        t.push(
            pull_once(
                &nc,
                "OV",
                "C",
                json!({"batch": 1, "expires": expires, "group": "A", "min_pending": 5}),
            )
            .await,
        );
        // One message awaits its ack: `min_ack_pending: 1` is met, 2 is not.
        t.push(
            pull_once(
                &nc,
                "OV",
                "C",
                json!({"batch": 1, "expires": expires, "group": "A", "min_ack_pending": 1}),
            )
            .await,
        );
        t.push(
            pull_once(
                &nc,
                "OV",
                "C",
                json!({"batch": 1, "expires": expires, "group": "A", "min_ack_pending": 3}),
            )
            .await,
        );
        // Either threshold suffices.
        t.push(
            pull_once(
                &nc,
                "OV",
                "C",
                json!({"batch": 1, "expires": expires, "group": "A",
                       "min_pending": 100, "min_ack_pending": 2}),
            )
            .await,
        );
        // No thresholds: served as any request.
        t.push(
            pull_once(
                &nc,
                "OV",
                "C",
                json!({"batch": 1, "expires": expires, "group": "A"}),
            )
            .await,
        );
        // A waiting standby request is served once the backlog reaches its threshold.
        let mut standby = Pull::send(
            &nc,
            "OV",
            "C",
            json!({"batch": 1, "expires": 3_000 * MS, "group": "A", "min_pending": 3}),
        )
        .await;
        publish(&nc, "ov.6", "m6").await;
        t.push(format!(
            "standby with 2 pending: {}",
            standby
                .next(Duration::from_millis(300))
                .await
                .map_or_else(|| "nothing".into(), |m| describe(&m))
        ));
        publish(&nc, "ov.7", "m7").await;
        t.push(format!(
            "standby with 3 pending: {}",
            standby
                .next(Duration::from_secs(2))
                .await
                .map_or_else(|| "nothing".into(), |m| describe(&m))
        ));
        // Requests the policy refuses.
        for body in [
            json!({"batch": 1}),
            json!({"batch": 1, "group": "B"}),
            json!({"batch": 1, "group": "A", "id": "x"}),
            json!({"batch": 1, "group": "A", "priority": 10}),
        ] {
            t.push(format!(
                "{body}: {}",
                pull_once(&nc, "OV", "C", body.clone()).await
            ));
        }
        let info = api(&nc, "$JS.API.CONSUMER.INFO.OV.C", json!({})).await;
        t.push(format!(
            "info priority_groups={} priority_timeout={} num_pending={} num_ack_pending={}",
            info["priority_groups"],
            info["config"]["priority_timeout"],
            info["num_pending"],
            info["num_ack_pending"]
        ));
        t
    })
    .await;
    assert_eq!(
        &t[..6],
        [
            "status 408 Request Timeout pending=1/0",
            "msg ov.1 m1",
            "msg ov.2 m2",
            "status 408 Request Timeout pending=1/0",
            "msg ov.3 m3",
            "msg ov.4 m4",
        ]
    );
    assert_eq!(t[6], "standby with 2 pending: nothing");
    assert_eq!(t[7], "standby with 3 pending: msg ov.5 m5");
    assert!(
        t[8].ends_with("status 400 Bad Request - Priority Group missing"),
        "{t:#?}"
    );
    // Skipped requests leave the counts as they were.
    assert!(t[12].ends_with("num_pending=2 num_ack_pending=5"), "{t:#?}");
}

/// Pin advisories (`$JS.EVENT.ADVISORY.CONSUMER.PINNED|UNPINNED.<stream>.<consumer>`) as lines:
/// kind, group, reason, the pin id's place among the pins seen, and the field names.
async fn pin_advisories(
    sub: &mut async_nats::Subscriber,
    pins: &[String],
    n: usize,
) -> Vec<String> {
    let mut out = Vec::new();
    while out.len() < n {
        let Ok(Some(m)) = tokio::time::timeout(Duration::from_secs(3), sub.next()).await else {
            out.push("no advisory".into());
            break;
        };
        let v: Value = serde_json::from_slice(&m.payload).expect("advisory JSON");
        let mut keys: Vec<&str> = v
            .as_object()
            .map(|o| o.keys().map(String::as_str).collect())
            .unwrap_or_default();
        keys.sort_unstable();
        let pin = v["pinned_id"].as_str().map(|id| {
            pins.iter()
                .position(|p| p == id)
                .map_or_else(|| "unknown pin".to_owned(), |i| format!("pin#{i}"))
        });
        out.push(format!(
            "{} {} type={} account={} group={} reason={} {} keys={keys:?}",
            m.subject,
            pin.unwrap_or_default(),
            v["type"],
            v["account"],
            v["group"],
            v["reason"],
            v["consumer"],
        ));
    }
    out
}

#[tokio::test]
async fn priority_pinned_client_pins_the_first_puller() {
    let t = common::js_differential(|nc| async move {
        let mut t = Vec::new();
        stream(&nc, json!({"name": "PIN", "subjects": ["pin.>"]})).await;
        let created = consumer(
            &nc,
            "PIN",
            json!({"durable_name": "P", "ack_policy": "explicit",
                   "priority_policy": "pinned_client", "priority_groups": ["A"],
                   "priority_timeout": 1_000 * MS}),
        )
        .await;
        t.push(format!(
            "created priority_groups={} timeout={}",
            created["priority_groups"], created["config"]["priority_timeout"]
        ));
        let mut adv = nc
            .subscribe("$JS.EVENT.ADVISORY.CONSUMER.*.PIN.P")
            .await
            .expect("advisories");
        nc.flush().await.expect("flush");
        for i in 1..=6 {
            publish(&nc, &format!("pin.{i}"), &format!("m{i}")).await;
        }
        let mut pins: Vec<String> = Vec::new();
        // The first request gets a pin.
        let mut first = Pull::send(&nc, "PIN", "P", json!({"batch": 1, "group": "A"})).await;
        let m = first
            .next(Duration::from_secs(3))
            .await
            .expect("first pull");
        let pin1 = pin_of(&m).expect("Nats-Pin-Id");
        t.push(format!(
            "client 1: {} pinned={}",
            describe(&m),
            !pin1.is_empty()
        ));
        pins.push(pin1.clone());
        let info = api(&nc, "$JS.API.CONSUMER.INFO.PIN.P", json!({})).await;
        let g = &info["priority_groups"][0];
        t.push(format!(
            "info group={} pinned to client 1={} pinned_ts set={}",
            g["group"],
            g["pinned_client_id"].as_str() == Some(pin1.as_str()),
            g["pinned_ts"]
                .as_str()
                .is_some_and(|s| !s.starts_with("0001"))
        ));
        // Another client without the id waits; with a wrong id it is refused.
        t.push(format!(
            "client 2 without id: {}",
            pull_once(
                &nc,
                "PIN",
                "P",
                json!({"batch": 1, "group": "A", "expires": 300 * MS})
            )
            .await
        ));
        t.push(format!(
            "client 2 wrong id: {}",
            pull_once(
                &nc,
                "PIN",
                "P",
                json!({"batch": 1, "group": "A", "id": "bogus"})
            )
            .await
        ));
        // The pinned client goes on.
        let mut again = Pull::send(
            &nc,
            "PIN",
            "P",
            json!({"batch": 1, "group": "A", "id": pin1}),
        )
        .await;
        let m = again
            .next(Duration::from_secs(3))
            .await
            .expect("pinned pull");
        t.push(format!(
            "client 1 again: {} same pin={}",
            describe(&m),
            pin_of(&m).as_deref() == Some(pin1.as_str())
        ));
        // CONSUMER.UNPIN and its errors.
        for (subject, body) in [
            ("$JS.API.CONSUMER.UNPIN.PIN.P", json!({"group": ""})),
            (
                "$JS.API.CONSUMER.UNPIN.PIN.P",
                json!({"group": "bad name!"}),
            ),
            ("$JS.API.CONSUMER.UNPIN.PIN.P", json!({"group": "B"})),
            ("$JS.API.CONSUMER.UNPIN.PIN.NOPE", json!({"group": "A"})),
            ("$JS.API.CONSUMER.UNPIN.NOPE.P", json!({"group": "A"})),
            ("$JS.API.CONSUMER.UNPIN.PIN.P", json!({"group": "A"})),
        ] {
            let r = api(&nc, subject, body.clone()).await;
            t.push(format!(
                "unpin {subject} {body}: {} {}",
                outcome(&r),
                r["type"]
            ));
        }
        // The old pin no longer serves; a new client gets a new pin.
        t.push(format!(
            "client 1 old id: {}",
            pull_once(
                &nc,
                "PIN",
                "P",
                json!({"batch": 1, "group": "A", "id": pin1})
            )
            .await
        ));
        let mut second = Pull::send(&nc, "PIN", "P", json!({"batch": 1, "group": "A"})).await;
        let m = second.next(Duration::from_secs(3)).await.expect("new pin");
        let pin2 = pin_of(&m).expect("Nats-Pin-Id");
        t.push(format!(
            "client 2: {} new pin={}",
            describe(&m),
            !pin2.is_empty() && pin2 != pin1
        ));
        pins.push(pin2);
        // Nobody pulls for longer than priority_timeout: the pin lapses.
        tokio::time::sleep(Duration::from_millis(1_600)).await;
        let info = api(&nc, "$JS.API.CONSUMER.INFO.PIN.P", json!({})).await;
        t.push(format!("info after timeout: {}", info["priority_groups"]));
        t.extend(pin_advisories(&mut adv, &pins, 4).await);
        t
    })
    .await;
    assert_eq!(
        t[3], "client 2 without id: status 408 Request Timeout pending=1/0",
        "{t:#?}"
    );
    assert_eq!(
        t[4], "client 2 wrong id: status 423 Nats-Pin-Id mismatch",
        "{t:#?}"
    );
    assert!(
        t.iter().any(|l| l.contains("status 423 Nats-Wrong-Pin-Id")),
        "{t:#?}"
    );
    assert!(t.iter().any(|l| l.contains("reason=\"timeout\"")), "{t:#?}");
}

#[tokio::test]
async fn priority_prioritized_serves_the_lowest_priority_first() {
    let t = common::js_differential(|nc| async move {
        let mut t = Vec::new();
        stream(&nc, json!({"name": "PRI", "subjects": ["pri.>"]})).await;
        consumer(
            &nc,
            "PRI",
            json!({"durable_name": "Q", "ack_policy": "explicit",
                   "priority_policy": "prioritized", "priority_groups": ["A"]}),
        )
        .await;
        let expires = 2_000 * MS;
        let mut low = Pull::send(
            &nc,
            "PRI",
            "Q",
            json!({"batch": 2, "group": "A", "priority": 5, "expires": expires}),
        )
        .await;
        let mut high = Pull::send(
            &nc,
            "PRI",
            "Q",
            json!({"batch": 2, "group": "A", "priority": 1, "expires": expires}),
        )
        .await;
        // Both requests wait before the first message is stored.
        wait_for_waiting(&nc, "PRI", "Q", 2).await;
        for i in 1..=4 {
            publish(&nc, &format!("pri.{i}"), &format!("m{i}")).await;
        }
        for _ in 0..2 {
            let m = high.next(Duration::from_secs(2)).await;
            t.push(format!(
                "priority 1: {}",
                m.map_or_else(|| "nothing".into(), |m| describe(&m))
            ));
        }
        for _ in 0..2 {
            let m = low.next(Duration::from_secs(2)).await;
            t.push(format!(
                "priority 5: {}",
                m.map_or_else(|| "nothing".into(), |m| describe(&m))
            ));
        }
        t
    })
    .await;
    assert_eq!(
        t,
        [
            "priority 1: msg pri.1 m1",
            "priority 1: msg pri.2 m2",
            "priority 5: msg pri.3 m3",
            "priority 5: msg pri.4 m4",
        ]
    );
}

/// Milliseconds between consecutive arrivals, as bands: `~N00ms` for gaps near a
/// multiple of 100 ms (± 80 ms: scheduling on a loaded 2-core machine), `<50ms` for none.
fn band(gap: Duration) -> String {
    let ms = gap.as_millis();
    if ms < 50 {
        return "<50ms".into();
    }
    let near = (ms + 50) / 100 * 100;
    if ms.abs_diff(near) <= 80 {
        format!("~{near}ms")
    } else {
        format!("{ms}ms")
    }
}

#[tokio::test]
async fn replay_original_keeps_the_stored_spacing() {
    let t = common::js_differential(|nc| async move {
        let mut t = Vec::new();
        stream(&nc, json!({"name": "RP", "subjects": ["rp.>"]})).await;
        // Stored 400 ms, then 200 ms apart.
        publish(&nc, "rp.1", "a").await;
        tokio::time::sleep(Duration::from_millis(400)).await;
        publish(&nc, "rp.2", "b").await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        publish(&nc, "rp.3", "c").await;
        for (name, policy) in [("ORIG", "original"), ("INST", "instant")] {
            let inbox = nc.new_inbox();
            let mut sub = nc.subscribe(inbox.clone()).await.expect("subscribe");
            nc.flush().await.expect("flush");
            consumer(
                &nc,
                "RP",
                json!({"durable_name": name, "deliver_subject": inbox,
                       "ack_policy": "none", "replay_policy": policy}),
            )
            .await;
            let mut last: Option<Instant> = None;
            let mut line = format!("push {policy}:");
            for _ in 0..3 {
                let m = tokio::time::timeout(Duration::from_secs(3), sub.next())
                    .await
                    .ok()
                    .flatten()
                    .expect("delivery");
                let now = Instant::now();
                let gap = last.map_or_else(String::new, |l| format!(" +{}", band(now - l)));
                line.push_str(&format!(" {}{gap}", m.subject));
                last = Some(now);
            }
            t.push(line);
        }
        // A pull consumer replays with the same spacing within one request.
        consumer(
            &nc,
            "RP",
            json!({"durable_name": "PULL", "ack_policy": "explicit",
                   "replay_policy": "original"}),
        )
        .await;
        let mut p = Pull::send(
            &nc,
            "RP",
            "PULL",
            json!({"batch": 3, "expires": 3_000 * MS}),
        )
        .await;
        let mut last: Option<Instant> = None;
        let mut line = "pull original:".to_owned();
        for _ in 0..3 {
            let m = p.next(Duration::from_secs(3)).await.expect("delivery");
            let now = Instant::now();
            let gap = last.map_or_else(String::new, |l| format!(" +{}", band(now - l)));
            line.push_str(&format!(" {}{gap}", m.subject));
            last = Some(now);
        }
        t.push(line);
        t
    })
    .await;
    assert_eq!(
        t,
        [
            "push original: rp.1 rp.2 +~400ms rp.3 +~200ms",
            "push instant: rp.1 rp.2 +<50ms rp.3 +<50ms",
            "pull original: rp.1 rp.2 +~400ms rp.3 +~200ms",
        ]
    );
}

#[tokio::test]
async fn rate_limit_paces_a_push_consumer() {
    let t = common::js_differential(|nc| async move {
        let mut t = Vec::new();
        // max_msg_size sets the limiter's burst: one message's worth.
        stream(
            &nc,
            json!({"name": "RL", "subjects": ["rl.>"], "max_msg_size": 1024}),
        )
        .await;
        let payload = "x".repeat(900);
        for i in 0..9 {
            publish(&nc, &format!("rl.{i}"), &payload).await;
        }
        // 4,000 bytes a second; each delivery is about 970 bytes on the wire (subject,
        // ack subject, payload), so after the first the other eight take about 2 s.
        for (name, bps) in [("LIMITED", 32_000u64), ("FREE", 0)] {
            let inbox = nc.new_inbox();
            let mut sub = nc.subscribe(inbox.clone()).await.expect("subscribe");
            nc.flush().await.expect("flush");
            let start = Instant::now();
            consumer(
                &nc,
                "RL",
                json!({"durable_name": name, "deliver_subject": inbox,
                       "ack_policy": "none", "rate_limit_bps": bps}),
            )
            .await;
            for _ in 0..9 {
                tokio::time::timeout(Duration::from_secs(10), sub.next())
                    .await
                    .ok()
                    .flatten()
                    .expect("delivery");
            }
            let took = start.elapsed();
            let band = if took < Duration::from_millis(500) {
                "under 0.5s"
            } else if took >= Duration::from_millis(1_600) && took < Duration::from_millis(3_000) {
                "1.6-3s"
            } else {
                "other"
            };
            t.push(format!("{name} rate_limit_bps={bps}: 9 messages in {band}"));
        }
        t
    })
    .await;
    assert_eq!(
        t,
        [
            "LIMITED rate_limit_bps=32000: 9 messages in 1.6-3s",
            "FREE rate_limit_bps=0: 9 messages in under 0.5s",
        ]
    );
}

#[tokio::test]
async fn sample_freq_publishes_ack_metrics() {
    let t = common::js_differential(|nc| async move {
        let mut t = Vec::new();
        stream(&nc, json!({"name": "SF", "subjects": ["sf.>"]})).await;
        for i in 1..=4 {
            publish(&nc, &format!("sf.{i}"), &format!("m{i}")).await;
        }
        let mut metrics = nc
            .subscribe("$JS.EVENT.METRIC.CONSUMER.ACK.SF.*")
            .await
            .expect("metrics");
        nc.flush().await.expect("flush");
        for (name, freq, policy) in [
            ("ALL", "100%", "explicit"),
            ("NONE", "", "explicit"),
            ("ACKALL", "100", "all"),
        ] {
            consumer(
                &nc,
                "SF",
                json!({"durable_name": name, "ack_policy": policy, "sample_freq": freq,
                       "ack_wait": 200 * MS}),
            )
            .await;
            let mut p =
                Pull::send(&nc, "SF", name, json!({"batch": 3, "expires": 2_000 * MS})).await;
            let mut got = Vec::new();
            for _ in 0..3 {
                got.push(p.next(Duration::from_secs(3)).await.expect("delivery"));
            }
            // +ACK the first, AckSync the second, -NAK the third and ack its redelivery.
            nc.publish(got[0].reply.clone().expect("reply"), "+ACK".into())
                .await
                .expect("ack");
            nc.request(got[1].reply.clone().expect("reply"), "+ACK".into())
                .await
                .expect("ack sync");
            nc.publish(got[2].reply.clone().expect("reply"), "-NAK".into())
                .await
                .expect("nak");
            // Acks and pull requests take different paths in both servers: let the NAK
            // land before asking for its redelivery.
            nc.flush().await.expect("flush");
            tokio::time::sleep(Duration::from_millis(100)).await;
            let mut p =
                Pull::send(&nc, "SF", name, json!({"batch": 1, "expires": 2_000 * MS})).await;
            let again = p.next(Duration::from_secs(3)).await.expect("redelivery");
            nc.request(again.reply.clone().expect("reply"), "+ACK".into())
                .await
                .expect("ack");
            nc.flush().await.expect("flush");
            tokio::time::sleep(Duration::from_millis(200)).await;
            let mut n = 0;
            while let Ok(Some(m)) =
                tokio::time::timeout(Duration::from_millis(300), metrics.next()).await
            {
                n += 1;
                let v: Value = serde_json::from_slice(&m.payload).expect("metric JSON");
                let mut keys: Vec<&str> = v
                    .as_object()
                    .map(|o| o.keys().map(String::as_str).collect())
                    .unwrap_or_default();
                keys.sort_unstable();
                t.push(format!(
                    "{name}: {} type={} stream={} consumer={} consumer_seq={} stream_seq={} \
                     deliveries={} ack_time>0={} keys={keys:?}",
                    m.subject,
                    v["type"],
                    v["stream"],
                    v["consumer"],
                    v["consumer_seq"],
                    v["stream_seq"],
                    v["deliveries"],
                    v["ack_time"].as_i64().is_some_and(|a| a > 0),
                ));
            }
            t.push(format!(
                "{name} sample_freq={freq:?} ack_policy={policy}: {n} metrics"
            ));
        }
        t
    })
    .await;
    assert!(
        t.contains(&"ALL sample_freq=\"100%\" ack_policy=explicit: 3 metrics".to_owned()),
        "{t:#?}"
    );
    assert!(
        t.contains(&"NONE sample_freq=\"\" ack_policy=explicit: 0 metrics".to_owned()),
        "{t:#?}"
    );
    assert!(
        t.contains(&"ACKALL sample_freq=\"100\" ack_policy=all: 0 metrics".to_owned()),
        "{t:#?}"
    );
    // The redelivery's metric: its own consumer sequence, the second delivery.
    assert!(
        t[2].contains("consumer_seq=4 stream_seq=3 deliveries=2 ack_time>0=true"),
        "{t:#?}"
    );
}
