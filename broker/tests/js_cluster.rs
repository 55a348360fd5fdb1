//! Clustered JetStream on a private network: three natrix-servers, each in a network
//! namespace of its own (see `common::netns`), with JetStream stores that outlive their
//! processes. An R3 stream is created, written and read; its leader is killed with
//! SIGKILL, cut off by a partition, and the whole cluster restarts, and every
//! acknowledged message is still there, once, in order, on every replica.

mod common;

use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt as _;

use common::js_cluster::{Cluster, NODES, connect, publish_acked, run_in_client_ns, stream_info};

fn state_is(msgs: u64, last: u64) -> impl Fn(&serde_json::Value) -> bool {
    move |s| s["state"]["messages"] == msgs && s["state"]["last_seq"] == last
}

/// Reads the whole stream through a new pull consumer and checks it holds exactly
/// `m0..m<n>` at sequences 1..=n.
async fn check_contents(js: &jetstream::Context, stream: &str, durable: &str, n: u64) {
    let deadline = Instant::now() + Duration::from_secs(30);
    let s = loop {
        match js.get_stream(stream).await {
            Ok(s) => break s,
            Err(e) => assert!(Instant::now() < deadline, "get stream: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let c = loop {
        match s
            .create_consumer(consumer::pull::Config {
                durable_name: Some(durable.to_owned()),
                ..Default::default()
            })
            .await
        {
            Ok(c) => break c,
            Err(e) => assert!(Instant::now() < deadline, "consumer create: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    let mut got = Vec::new();
    while (got.len() as u64) < n {
        assert!(Instant::now() < deadline, "read {} of {n}", got.len());
        let mut batch = match c
            .fetch()
            .max_messages(500)
            .expires(Duration::from_secs(1))
            .messages()
            .await
        {
            Ok(b) => b,
            Err(_) => continue,
        };
        while let Some(Ok(m)) = batch.next().await {
            let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
            got.push((seq, String::from_utf8_lossy(&m.payload).into_owned()));
            let _ = m.ack().await;
        }
    }
    let want: Vec<(u64, String)> = (1..=n).map(|i| (i, format!("m{i}"))).collect();
    assert_eq!(
        got, want,
        "the stream holds every acknowledged message once, in order"
    );
}

#[test]
fn r3_stream_survives_kill_partition_and_restart() {
    let Some(mut cl) = Cluster::new("js3") else {
        return;
    };
    let started = Instant::now();
    run_in_client_ns(&mut cl, 0, |cl| Box::pin(r3_scenario(cl)));
    eprintln!("r3 scenario: {:.1}s", started.elapsed().as_secs_f64());
}

async fn r3_scenario(cl: &mut Cluster) {
    let nc = connect().await;
    let js = jetstream::new(nc);

    // The meta group forms, then the stream is placed on all three.
    let t0 = Instant::now();
    let created = loop {
        match js
            .create_stream(stream::Config {
                name: "ORDERS".into(),
                subjects: vec!["orders.>".into()],
                num_replicas: 3,
                ..Default::default()
            })
            .await
        {
            Ok(s) => break s,
            Err(e) => {
                assert!(
                    t0.elapsed() < Duration::from_secs(40),
                    "stream create: {e}\n{}",
                    cl.log(0)
                );
                tokio::time::sleep(Duration::from_millis(250)).await;
            }
        }
    };
    eprintln!(
        "R3 stream created {:.1}s after the servers started",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(created.cached_info().config.num_replicas, 3);

    // Acknowledged publishes, stored on every replica.
    for i in 1..=100u64 {
        let seq = publish_acked(&js, "orders.new", format!("m{i}"), Duration::from_secs(10)).await;
        assert_eq!(seq, i);
    }
    for i in 0..NODES.len() {
        cl.wait_replica(i, "ORDERS", Duration::from_secs(10), state_is(100, 100));
    }
    let info = stream_info(&js, "ORDERS", Duration::from_secs(10)).await;
    let cluster = info.cluster.clone().expect("cluster info");
    assert_eq!(cluster.name.as_deref(), Some("JS"));
    assert_eq!(cluster.replicas.len(), 2, "{cluster:?}");

    // The leader killed with SIGKILL: a new one takes writes.
    let leader = cluster.leader.clone().expect("a leader");
    let li = cl.index_of(&leader);
    cl.kill(li);
    let t_kill = Instant::now();
    let seq = publish_acked(&js, "orders.new", "m101".into(), Duration::from_secs(20)).await;
    assert_eq!(seq, 101);
    eprintln!(
        "leader {leader} killed: next publish acknowledged after {:.2}s",
        t_kill.elapsed().as_secs_f64()
    );
    for i in 102..=200u64 {
        let seq = publish_acked(&js, "orders.new", format!("m{i}"), Duration::from_secs(10)).await;
        assert_eq!(seq, i);
    }
    // Restarted from its store, the old leader catches up.
    cl.start(li);
    for i in 0..NODES.len() {
        cl.wait_replica(i, "ORDERS", Duration::from_secs(20), state_is(200, 200));
    }

    // The leader partitioned away: the majority elects another and goes on; healed, the
    // old leader catches up.
    let info = stream_info(&js, "ORDERS", Duration::from_secs(10)).await;
    let leader = info.cluster.and_then(|c| c.leader).expect("a leader");
    let li = cl.index_of(&leader);
    cl.lab.link(NODES[li], false);
    for i in 201..=300u64 {
        let seq = publish_acked(&js, "orders.new", format!("m{i}"), Duration::from_secs(20)).await;
        assert_eq!(seq, i);
    }
    cl.lab.link(NODES[li], true);
    for i in 0..NODES.len() {
        cl.wait_replica(i, "ORDERS", Duration::from_secs(30), state_is(300, 300));
    }

    // The whole cluster restarts: everything acknowledged is still there.
    for i in 0..NODES.len() {
        cl.kill(i);
    }
    for i in 0..NODES.len() {
        cl.start(i);
    }
    for i in 0..NODES.len() {
        cl.wait_replica(i, "ORDERS", Duration::from_secs(30), state_is(300, 300));
    }
    let seq = publish_acked(&js, "orders.new", "m301".into(), Duration::from_secs(30)).await;
    assert_eq!(seq, 301);
    check_contents(&js, "ORDERS", "READER", 301).await;
}
