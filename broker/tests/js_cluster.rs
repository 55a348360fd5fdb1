//! Clustered JetStream on a private network: three natrix-servers, each in a network
//! namespace of its own (see `common::netns`), with JetStream stores that outlive their
//! processes. An R3 stream is created, written and read; its leader is killed with
//! SIGKILL, cut off by a partition, and the whole cluster restarts, and every
//! acknowledged message is still there, once, in order, on every replica.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, consumer, stream};
use futures::StreamExt as _;

use common::js_cluster::{replica, servers, stream_info};
use common::netns::{self, Lab, addr};
use common::{NATRIX, Proc};

/// The cluster's nodes: their addresses are `10.77.0.<n>`, their names `n<n>`.
const NODES: [u8; 3] = [41, 42, 43];

/// Clients without credentials use account `APP` (JetStream on); `sys`/`sys` logs in
/// to the system account, where the cluster-wide API (`META.LEADER.STEPDOWN`,
/// `SERVER.REMOVE`) is answered.
fn conf(n: u8, store: &Path) -> String {
    let routes: Vec<String> = NODES
        .iter()
        .map(|m| format!("nats://{}:6222", addr(*m)))
        .collect();
    format!(
        "server_name: n{n}\nlisten: {a}:4222\nhttp: {a}:8222\njetstream {{ store_dir: \"{}\" }}\naccounts {{\n  APP {{ jetstream: enabled, users: [{{user: app, password: app}}] }}\n  SYS {{ users: [{{user: sys, password: sys}}] }}\n}}\nsystem_account: SYS\nno_auth_user: app\ncluster {{\n  name: JS\n  listen: {a}:6222\n  routes: [{}]\n  ping_interval: \"500ms\"\n  ping_max: 2\n}}\n",
        store.display(),
        routes.join(", "),
        a = addr(n)
    )
}

/// Three servers, their namespaces and their stores.
struct Cluster {
    lab: Lab,
    ns: Vec<String>,
    stores: Vec<tempfile::TempDir>,
    procs: Vec<Option<Proc>>,
    /// Environment of every server started.
    env: Vec<(&'static str, &'static str)>,
    /// Config lines each node adds to its own (by index).
    extra: Vec<String>,
}

impl Cluster {
    fn new(tag: &str) -> Option<Self> {
        Self::with_env(
            tag,
            vec![(
                "RUST_LOG",
                "natrix_jetstream=debug,natrix_raft=debug,natrix_broker=info,warn",
            )],
        )
    }

    fn with_env(tag: &str, env: Vec<(&'static str, &'static str)>) -> Option<Self> {
        Self::with(tag, env, vec![String::new(); NODES.len()])
    }

    fn with(tag: &str, env: Vec<(&'static str, &'static str)>, extra: Vec<String>) -> Option<Self> {
        let mut lab = netns::lab(tag)?;
        let ns = NODES.iter().map(|n| lab.node(*n)).collect();
        let stores = NODES
            .iter()
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        let mut c = Self {
            lab,
            ns,
            stores,
            procs: Vec::new(),
            env,
            extra,
        };
        for i in 0..NODES.len() {
            c.procs.push(None);
            c.start(i);
        }
        Some(c)
    }

    fn start(&mut self, i: usize) {
        let n = NODES[i];
        let p = self.lab.start_with_env(
            Path::new(NATRIX),
            &self.ns[i],
            n,
            &format!("{}{}", conf(n, self.stores[i].path()), self.extra[i]),
            &self.env,
        );
        self.procs[i] = Some(p);
    }

    /// SIGKILL: no shutdown, no flush.
    fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.procs[i].take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }

    /// SIGTERM, as a rolling restart stops a server; SIGKILL after 15 s.
    fn stop(&mut self, i: usize) {
        if let Some(mut p) = self.procs[i].take() {
            let _ = std::process::Command::new("kill")
                .args(["-TERM", &p.child.id().to_string()])
                .status();
            let deadline = Instant::now() + Duration::from_secs(15);
            while Instant::now() < deadline {
                if let Ok(Some(_)) = p.child.try_wait() {
                    return;
                }
                std::thread::sleep(Duration::from_millis(50));
            }
            let _ = p.child.kill();
            let _ = p.child.wait();
        }
    }

    /// Whether node `i` is healthy (the plain `/healthz`: meta leader known, every
    /// replica here current).
    fn healthy(&self, i: usize) -> bool {
        self.lab
            .http(NODES[i], "/healthz")
            .is_some_and(|r| r.json()["status"] == "ok")
    }

    fn index_of(&self, name: &str) -> usize {
        NODES
            .iter()
            .position(|n| format!("n{n}") == name)
            .unwrap_or_else(|| panic!("no node named {name:?}"))
    }

    fn log(&self, i: usize) -> String {
        self.procs[i]
            .as_ref()
            .map(Proc::log_text)
            .unwrap_or_default()
    }

    /// The local replica of `stream` on node `i` as `/jsz` shows it, once `ok` holds;
    /// fails with the node's log after `within`.
    fn wait_replica(
        &self,
        i: usize,
        stream: &str,
        within: Duration,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let deadline = Instant::now() + within;
        loop {
            let jsz = self
                .lab
                .http(NODES[i], "/jsz?streams=true")
                .map(|r| r.json())
                .unwrap_or_default();
            if let Some(r) = replica(&jsz, stream).filter(|r| ok(r)) {
                return r;
            }
            assert!(
                Instant::now() < deadline,
                "node n{} never had the expected {stream}: {jsz}\n{}",
                NODES[i],
                self.log(i)
            );
            std::thread::sleep(Duration::from_millis(200));
        }
    }
}

fn state_is(msgs: u64, last: u64) -> impl Fn(&serde_json::Value) -> bool {
    move |s| s["state"]["messages"] == msgs && s["state"]["last_seq"] == last
}

async fn connect() -> async_nats::Client {
    connect_with_timeout(Duration::from_secs(3)).await
}

/// A client whose requests (and so acknowledged publishes) give up after `timeout`.
async fn connect_with_timeout(timeout: Duration) -> async_nats::Client {
    connect_as(async_nats::ConnectOptions::new(), timeout).await
}

/// A client of the system account.
async fn connect_system() -> async_nats::Client {
    connect_as(
        async_nats::ConnectOptions::with_user_and_password("sys".into(), "sys".into()),
        Duration::from_secs(3),
    )
    .await
}

async fn connect_as(options: async_nats::ConnectOptions, timeout: Duration) -> async_nats::Client {
    options
        .request_timeout(Some(timeout))
        // A server cut off by a partition is noticed within seconds.
        .ping_interval(Duration::from_secs(1))
        .retry_on_initial_connect()
        .connect(servers())
        .await
        .expect("connect")
}

/// Publishes `payload` until it is acknowledged (a leader change makes a few publishes
/// fail or time out), for at most `within`; the sequence it was stored at. The payload is
/// also the message id, so a retry of a publish that was stored but whose ack was lost
/// is recognised as a duplicate (as clients that retry must do).
async fn publish_acked(
    js: &jetstream::Context,
    subject: &str,
    payload: String,
    within: Duration,
) -> u64 {
    let deadline = Instant::now() + within;
    loop {
        let attempt = async {
            js.send_publish(
                subject.to_owned(),
                jetstream::message::PublishMessage::build()
                    .payload(payload.clone().into())
                    .message_id(payload.clone()),
            )
            .await
            .map_err(|e| e.to_string())?
            .await
            .map_err(|e| e.to_string())
        };
        match attempt.await {
            Ok(ack) => return ack.sequence,
            Err(e) => {
                assert!(
                    Instant::now() < deadline,
                    "publish of {payload} never acknowledged: {e}"
                );
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

/// The servers a stream's info names as its leader and replicas, sorted.
fn placed_on(info: &serde_json::Value) -> Vec<String> {
    let replicas = info["cluster"]["replicas"]
        .as_array()
        .cloned()
        .unwrap_or_default();
    let mut names: Vec<String> = std::iter::once(&info["cluster"]["leader"])
        .chain(replicas.iter().map(|r| &r["name"]))
        .filter_map(|v| v.as_str().map(str::to_owned))
        .collect();
    names.sort();
    names
}

/// Creates a stream, retrying for up to 40 s while the meta group forms.
async fn create_retrying(js: &jetstream::Context, config: stream::Config) -> stream::Stream {
    let t0 = Instant::now();
    loop {
        match js.create_stream(config.clone()).await {
            Ok(s) => return s,
            Err(e) => assert!(
                t0.elapsed() < Duration::from_secs(40),
                "create {}: {e}",
                config.name
            ),
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
}

/// Fetches `n` messages from `c`, acknowledging each with a confirmed ack; their stream
/// sequences and payloads.
async fn fetch(c: &consumer::Consumer<consumer::pull::Config>, n: usize) -> Vec<(u64, String)> {
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut got = Vec::new();
    while got.len() < n {
        assert!(Instant::now() < deadline, "fetched {} of {n}", got.len());
        let Ok(mut batch) = c
            .fetch()
            .max_messages(n - got.len())
            .expires(Duration::from_secs(1))
            .messages()
            .await
        else {
            continue;
        };
        while let Some(Ok(m)) = batch.next().await {
            let seq = m.info().map(|i| i.stream_sequence).unwrap_or(0);
            got.push((seq, String::from_utf8_lossy(&m.payload).into_owned()));
            m.double_ack().await.expect("confirmed ack");
        }
    }
    got
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
            // Delivered by another server or cluster, a message still shows its own
            // subject, not the inbox it was routed to.
            assert!(
                !m.subject.starts_with("_INBOX."),
                "message {seq} shown under {}",
                m.subject
            );
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

/// Runs `scenario` to its end on a runtime inside the client namespace.
fn block_in_client_ns<T: Send>(
    lab: &Lab,
    scenario: impl std::future::Future<Output = T> + Send,
) -> T {
    lab.in_client_ns(|| {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .expect("runtime")
            .block_on(scenario)
    })
}

/// A client of node `n` whose requests time out after `timeout_secs`.
async fn connect_node(n: u8, timeout_secs: u64, what: &str) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_secs(timeout_secs)))
        .connect(format!("nats://{}:4222", addr(n)))
        .await
        .unwrap_or_else(|e| panic!("{what}: {e}"))
}

/// Runs `scenario` on a thread of its own inside the client namespace, so every socket
/// its clients open is on the private network.
fn run_in_client_ns(
    cl: &mut Cluster,
    scenario: fn(&mut Cluster) -> futures::future::LocalBoxFuture<'_, ()>,
) {
    std::thread::scope(|s| {
        s.spawn(|| {
            cl.lab.enter_client_ns();
            // Worker threads start here, so they are in the namespace too; a scenario may
            // block one of them (stopping a server) while its publishers run on another.
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .expect("runtime");
            rt.block_on(scenario(cl));
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
    });
}

#[test]
fn r3_stream_survives_kill_partition_and_restart() {
    let Some(mut cl) = Cluster::new("js3") else {
        return;
    };
    let started = Instant::now();
    run_in_client_ns(&mut cl, |cl| Box::pin(r3_scenario(cl)));
    eprintln!("r3 scenario: {:.1}s", started.elapsed().as_secs_f64());
}

async fn r3_scenario(cl: &mut Cluster) {
    let nc = connect().await;
    let js = jetstream::new(nc);

    // The meta group forms, then the stream is placed on all three.
    let t0 = Instant::now();
    let created = create_retrying(
        &js,
        stream::Config {
            name: "ORDERS".into(),
            subjects: vec!["orders.>".into()],
            num_replicas: 3,
            ..Default::default()
        },
    )
    .await;
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

    // A durable consumer reads 60 and acknowledges them (each ack confirmed, so its
    // state is replicated before the answer).
    let orders = js.get_stream("ORDERS").await.expect("stream");
    let worker = orders
        .create_consumer(consumer::pull::Config {
            durable_name: Some("WORKER".into()),
            ..Default::default()
        })
        .await
        .expect("durable consumer");
    let first_60 = fetch(&worker, 60).await;
    assert_eq!(first_60.first().map(|m| m.0), Some(1));
    assert_eq!(first_60.last().map(|m| m.0), Some(60));

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
    // The durable consumer lives on under the new leader, from where it was.
    let worker = loop {
        match js.get_stream("ORDERS").await {
            Ok(s) => match s.get_consumer::<consumer::pull::Config>("WORKER").await {
                Ok(c) => break c,
                Err(e) => eprintln!("consumer after failover: {e}"),
            },
            Err(e) => eprintln!("stream after failover: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    };
    let next = fetch(&worker, 140).await;
    assert_eq!(
        next.iter().map(|m| m.0).collect::<Vec<_>>(),
        (61..=200).collect::<Vec<_>>(),
        "the consumer resumes after its last acknowledged message, skipping nothing"
    );

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

/// A JetStream API request, answered as JSON.
async fn api(nc: &async_nats::Client, subject: &str, body: &str) -> serde_json::Value {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let request = async_nats::Request::new()
            .payload(body.to_owned().into())
            .timeout(Some(Duration::from_secs(10)));
        match nc.send_request(subject.to_owned(), request).await {
            Ok(m) => return serde_json::from_slice(&m.payload).expect("JSON answer"),
            Err(e) => assert!(Instant::now() < deadline, "{subject}: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

async fn leader_of(js: &jetstream::Context, stream: &str) -> String {
    stream_info(js, stream, Duration::from_secs(20))
        .await
        .cluster
        .and_then(|c| c.leader)
        .expect("a leader")
}

#[test]
fn replicas_change_step_down_and_a_wiped_replica() {
    let Some(mut cl) = Cluster::new("jsr") else {
        return;
    };
    run_in_client_ns(&mut cl, |cl| Box::pin(replicas_scenario(cl)));
}

async fn replicas_scenario(cl: &mut Cluster) {
    let nc = connect().await;
    let js = jetstream::new(nc.clone());
    let config = |replicas: usize| stream::Config {
        name: "GROW".into(),
        subjects: vec!["grow.>".into()],
        num_replicas: replicas,
        ..Default::default()
    };
    create_retrying(&js, config(1)).await;
    for i in 1..=50u64 {
        assert_eq!(
            publish_acked(&js, "grow.a", format!("m{i}"), Duration::from_secs(10)).await,
            i
        );
    }
    let on = |cl: &Cluster| -> Vec<usize> {
        (0..NODES.len())
            .filter(|i| {
                cl.lab
                    .http(NODES[*i], "/jsz?streams=true")
                    .is_some_and(|r| replica(&r.json(), "GROW").is_some())
            })
            .collect()
    };
    assert_eq!(on(cl).len(), 1, "an R1 stream has one replica");

    // R1 -> R3: the new replicas catch up from the group's log.
    let t = Instant::now();
    js.update_stream(config(3)).await.expect("update to R3");
    for i in 0..NODES.len() {
        cl.wait_replica(i, "GROW", Duration::from_secs(30), state_is(50, 50));
    }
    eprintln!(
        "R1 -> R3: all replicas current in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    for i in 51..=100u64 {
        assert_eq!(
            publish_acked(&js, "grow.a", format!("m{i}"), Duration::from_secs(10)).await,
            i
        );
    }

    // Leader step-downs: the stream's and the meta group's.
    let before = leader_of(&js, "GROW").await;
    let t = Instant::now();
    let r = api(&nc, "$JS.API.STREAM.LEADER.STEPDOWN.GROW", "").await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(
        r["type"],
        "io.nats.jetstream.api.v1.stream_leader_stepdown_response"
    );
    let after = leader_of(&js, "GROW").await;
    assert_ne!(before, after, "a new stream leader");
    eprintln!(
        "stream step-down {before} -> {after} in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    let meta_leader = |cl: &Cluster| {
        cl.lab
            .http(NODES[0], "/jsz")
            .map(|r| {
                r.json()["meta_cluster"]["leader"]
                    .as_str()
                    .unwrap_or("")
                    .to_owned()
            })
            .unwrap_or_default()
    };
    let meta_before = meta_leader(cl);
    assert!(!meta_before.is_empty(), "/jsz names the meta leader");
    let sys = connect_system().await;
    let r = api(&sys, "$JS.API.META.LEADER.STEPDOWN", "").await;
    assert_eq!(r["success"], true, "{r}");
    assert_eq!(
        r["type"],
        "io.nats.jetstream.api.v1.meta_leader_stepdown_response"
    );
    let deadline = Instant::now() + Duration::from_secs(10);
    while meta_leader(cl) == meta_before || meta_leader(cl).is_empty() {
        assert!(Instant::now() < deadline, "meta leader still {meta_before}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }

    // A follower's store wiped: it comes back as a new node and is rebuilt.
    let leader = leader_of(&js, "GROW").await;
    let wiped = (0..NODES.len())
        .find(|i| format!("n{}", NODES[*i]) != leader)
        .expect("a follower");
    cl.kill(wiped);
    std::fs::remove_dir_all(cl.stores[wiped].path().join("jetstream")).expect("wipe the store");
    let t = Instant::now();
    cl.start(wiped);
    cl.wait_replica(wiped, "GROW", Duration::from_secs(60), state_is(100, 100));
    eprintln!("wiped replica rebuilt in {:.1}s", t.elapsed().as_secs_f64());
    assert_eq!(
        publish_acked(&js, "grow.a", "m101".into(), Duration::from_secs(10)).await,
        101
    );
    for i in 0..NODES.len() {
        cl.wait_replica(i, "GROW", Duration::from_secs(20), state_is(101, 101));
    }

    // A replica removed from the stream: with no other server to take its place, the
    // stream goes on with two.
    let leader = leader_of(&js, "GROW").await;
    let follower = (0..NODES.len())
        .map(|i| format!("n{}", NODES[i]))
        .find(|n| *n != leader)
        .expect("a follower");
    let r = api(
        &nc,
        "$JS.API.STREAM.PEER.REMOVE.GROW",
        &serde_json::json!({"peer": follower}).to_string(),
    )
    .await;
    assert_eq!(r["success"], true, "{r}");
    let r = api(
        &nc,
        "$JS.API.STREAM.PEER.REMOVE.GROW",
        &serde_json::json!({"peer": "nobody"}).to_string(),
    )
    .await;
    assert_eq!(r["error"]["err_code"], 10040, "{r}");
    let fi = cl.index_of(&follower);
    let deadline = Instant::now() + Duration::from_secs(30);
    while on(cl).contains(&fi) {
        assert!(
            Instant::now() < deadline,
            "{follower} still holds the stream"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(
        publish_acked(&js, "grow.a", "m102".into(), Duration::from_secs(10)).await,
        102
    );
    // Back to three (the removed server is a candidate again).
    js.update_stream(config(1)).await.expect("update to R1");
    js.update_stream(config(3)).await.expect("update to R3");
    for i in 0..NODES.len() {
        cl.wait_replica(i, "GROW", Duration::from_secs(30), state_is(102, 102));
    }

    // R3 -> R1: two replicas leave, the leader keeps everything.
    let leader = leader_of(&js, "GROW").await;
    js.update_stream(config(1)).await.expect("update to R1");
    let deadline = Instant::now() + Duration::from_secs(30);
    while on(cl).len() != 1 {
        assert!(
            Instant::now() < deadline,
            "replicas left: {:?}\n{}\n{}\n{}",
            on(cl),
            cl.log(0),
            cl.log(1),
            cl.log(2)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    assert_eq!(on(cl), vec![cl.index_of(&leader)], "the leader stays");
    assert_eq!(
        publish_acked(&js, "grow.a", "m103".into(), Duration::from_secs(10)).await,
        103
    );
    check_contents(&js, "GROW", "READER", 103).await;

    // A server removed from the cluster leaves the meta group and is not taken back
    // while it keeps its node id.
    let gone = (0..NODES.len())
        .find(|i| format!("n{}", NODES[*i]) != leader)
        .expect("another server");
    let gone_name = format!("n{}", NODES[gone]);
    let r = api(
        &sys,
        "$JS.API.SERVER.REMOVE",
        &serde_json::json!({"peer": gone_name}).to_string(),
    )
    .await;
    assert_eq!(r["success"], true, "{r}");
    let r = api(&sys, "$JS.API.SERVER.REMOVE", r#"{"peer":"nobody"}"#).await;
    assert_eq!(r["error"]["err_code"], 10044, "{r}");
    let other = (0..NODES.len()).find(|i| *i != gone).expect("a member");
    let meta_size = |cl: &Cluster| {
        cl.lab
            .http(NODES[other], "/jsz")
            .map(|r| r.json()["meta_cluster"]["cluster_size"].clone())
            .unwrap_or_default()
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while meta_size(cl) != 2 {
        assert!(
            Instant::now() < deadline,
            "meta group still {}",
            meta_size(cl)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert_eq!(meta_size(cl), 2, "the removed server stays out");
}

#[test]
fn rolling_restart_under_load() {
    let Some(mut cl) = Cluster::new("jsl") else {
        return;
    };
    run_in_client_ns(&mut cl, |cl| Box::pin(rolling_scenario(cl)));
}

async fn rolling_scenario(cl: &mut Cluster) {
    // A publish in flight to a server that stops is answered by nobody: the client's
    // timeout, not the cluster, bounds that wait, so keep it short.
    let nc = connect_with_timeout(Duration::from_millis(1500)).await;
    let js = jetstream::new(nc);
    create_retrying(
        &js,
        stream::Config {
            name: "ROLL".into(),
            subjects: vec!["roll.>".into()],
            num_replicas: 3,
            ..Default::default()
        },
    )
    .await;
    for i in 0..NODES.len() {
        let deadline = Instant::now() + Duration::from_secs(30);
        while !cl.healthy(i) {
            assert!(Instant::now() < deadline, "node {i} never healthy");
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    // One publisher, acknowledged publishes one after another, while each server in turn
    // is stopped (SIGTERM), restarted, and waited for until /healthz says its replicas
    // are current, the way an operator rolls a StatefulSet.
    let done = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    let publisher = {
        let js = js.clone();
        let done = done.clone();
        tokio::spawn(async move {
            let mut n = 0u64;
            let mut longest = Duration::ZERO;
            let mut last = Instant::now();
            while !done.load(std::sync::atomic::Ordering::Relaxed) {
                n += 1;
                let seq =
                    publish_acked(&js, "roll.a", format!("m{n}"), Duration::from_secs(30)).await;
                assert_eq!(seq, n, "acknowledged in order");
                if last.elapsed() > Duration::from_secs(1) {
                    eprintln!(
                        "{:?}: publish m{n} waited {:.2}s",
                        std::time::SystemTime::now(),
                        last.elapsed().as_secs_f64()
                    );
                }
                longest = longest.max(last.elapsed());
                last = Instant::now();
            }
            (n, longest)
        })
    };
    for i in 0..NODES.len() {
        tokio::time::sleep(Duration::from_secs(1)).await;
        eprintln!("{:?}: stopping node {i}", std::time::SystemTime::now());
        cl.stop(i);
        eprintln!("{:?}: stopped node {i}", std::time::SystemTime::now());
        tokio::time::sleep(Duration::from_millis(500)).await;
        cl.start(i);
        eprintln!("{:?}: started node {i}", std::time::SystemTime::now());
        let deadline = Instant::now() + Duration::from_secs(60);
        while !cl.healthy(i) {
            assert!(
                Instant::now() < deadline,
                "node {i} never healthy after its restart"
            );
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    done.store(true, std::sync::atomic::Ordering::Relaxed);
    let (n, longest) = publisher.await.unwrap_or_else(|e| {
        panic!(
            "publisher: {e}\n{}\n{}\n{}",
            cl.log(0),
            cl.log(1),
            cl.log(2)
        )
    });
    eprintln!(
        "rolling restart: {n} acknowledged publishes, longest wait for one ack {:.2}s",
        longest.as_secs_f64()
    );
    assert!(
        longest < Duration::from_secs(8),
        "no publish waited longer than about one election: {longest:?}"
    );
    check_contents(&js, "ROLL", "READER", n).await;
}

/// A nats-server routed into a natrix JetStream cluster: it carries messages and its
/// clients reach the streams, but nothing is placed on it (its Raft is not natrix's),
/// so a stream that needs it is refused with `insufficient resources`.
#[test]
fn a_nats_server_node_in_a_natrix_jetstream_cluster() {
    let Some(reference) = common::reference_binary() else {
        return;
    };
    let Some(mut lab) = netns::lab("jsm") else {
        return;
    };
    let members = [51u8, 52, 53];
    let ns: Vec<String> = members.iter().map(|n| lab.node(*n)).collect();
    let stores: Vec<tempfile::TempDir> = (0..2)
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let routes: Vec<String> = members
        .iter()
        .map(|m| format!("nats://{}:6222", addr(*m)))
        .collect();
    let cluster = |n: u8| {
        format!(
            "cluster {{\n  name: JS\n  listen: {a}:6222\n  routes: [{}]\n}}\n",
            routes.join(", "),
            a = addr(n)
        )
    };
    let _natrix: Vec<Proc> = (0..2)
        .map(|i| {
            let n = members[i];
            let conf = format!(
                "server_name: n{n}\nlisten: {a}:4222\nhttp: {a}:8222\njetstream {{ store_dir: \"{}\" }}\n{}",
                stores[i].path().display(),
                cluster(n),
                a = addr(n)
            );
            lab.start(Path::new(NATRIX), &ns[i], n, &conf)
        })
        .collect();
    let n = members[2];
    let conf = format!(
        "server_name: ref{n}\nlisten: {a}:4222\nhttp: {a}:8222\n{}",
        cluster(n),
        a = addr(n)
    );
    let _reference = lab.start(&reference, &ns[2], n, &conf);
    for m in members {
        lab.wait_json(m, "/routez", Duration::from_secs(20), |v| {
            v["num_routes"].as_u64() == Some(2)
        });
    }
    // The routes name three servers and two announce themselves: the meta group forms
    // once the majority has been in view for a while.
    lab.wait_json(51, "/jsz", Duration::from_secs(40), |v| {
        v["meta_cluster"]["leader"].is_string()
    });
    block_in_client_ns(&lab, async {
        // Clients of the nats-server node only.
        let nc = connect_node(53, 3, "connect to nats-server").await;
        let js = jetstream::new(nc.clone());
        let t0 = Instant::now();
        // R3 needs three natrix servers: refused, with nats-server's error.
        let refused = loop {
            let body =
                serde_json::json!({"name": "WIDE", "subjects": ["wide.>"], "num_replicas": 3});
            let r = api(&nc, "$JS.API.STREAM.CREATE.WIDE", &body.to_string()).await;
            if r["error"]["err_code"] == 10023 || t0.elapsed() > Duration::from_secs(30) {
                break r;
            }
            tokio::time::sleep(Duration::from_millis(250)).await;
        };
        assert_eq!(refused["error"]["err_code"], 10023, "{refused}");
        assert_eq!(refused["error"]["description"], "insufficient resources");
        // R2 fits on the two natrix servers; the nats-server's clients use it.
        let created = api(
            &nc,
            "$JS.API.STREAM.CREATE.MIXED",
            &serde_json::json!({"name": "MIXED", "subjects": ["mixed.>"], "num_replicas": 2})
                .to_string(),
        )
        .await;
        assert!(created["error"].is_null(), "{created}");
        let placed = placed_on(&created);
        assert!(
            placed.iter().all(|p| p == "n51" || p == "n52"),
            "placed on natrix servers only: {placed:?}"
        );
        for i in 1..=20u64 {
            assert_eq!(
                publish_acked(&js, "mixed.a", format!("m{i}"), Duration::from_secs(10)).await,
                i
            );
        }
        check_contents(&js, "MIXED", "READER", 20).await;
    });
    // The nats-server node is still well.
    let v = lab.wait_json(53, "/varz", Duration::from_secs(5), |v| {
        v["server_name"] == "ref53"
    });
    assert_eq!(v["cluster"]["name"], "JS");
}

/// Snapshots every 100 entries (the log before them purged): a replica that was down
/// while more went by, and one whose store was wiped, get the snapshot and copy the
/// messages from the leader's store.
#[test]
fn replicas_catch_up_past_a_snapshot() {
    let Some(mut cl) = Cluster::with_env("jss", vec![("NATRIX_RAFT_SNAPSHOT_EVERY", "100")]) else {
        return;
    };
    run_in_client_ns(&mut cl, |cl| Box::pin(snapshot_scenario(cl)));
}

async fn snapshot_scenario(cl: &mut Cluster) {
    let nc = connect().await;
    let js = jetstream::new(nc);
    create_retrying(
        &js,
        stream::Config {
            name: "SNAP".into(),
            subjects: vec!["snap.>".into()],
            num_replicas: 3,
            ..Default::default()
        },
    )
    .await;
    for i in 1..=50u64 {
        assert_eq!(
            publish_acked(&js, "snap.a", format!("m{i}"), Duration::from_secs(10)).await,
            i
        );
    }
    let leader = leader_of(&js, "SNAP").await;
    let down = (0..NODES.len())
        .find(|i| format!("n{}", NODES[*i]) != leader)
        .expect("a follower");
    cl.kill(down);
    // One entry per publish: several snapshots go by, and the log behind them is purged.
    for i in 51..=500u64 {
        assert_eq!(
            publish_acked(&js, "snap.a", format!("m{i}"), Duration::from_secs(10)).await,
            i
        );
    }
    let t = Instant::now();
    cl.start(down);
    cl.wait_replica(down, "SNAP", Duration::from_secs(60), state_is(500, 500));
    eprintln!(
        "a replica 450 messages behind a snapshot caught up in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    assert!(
        cl.log(down).contains("caught up from the leader"),
        "the replica copied from the leader's store: {}",
        cl.log(down)
    );

    // A wiped replica: a new node, rebuilt from the snapshot and the leader's store.
    let leader = leader_of(&js, "SNAP").await;
    let wiped = (0..NODES.len())
        .find(|i| format!("n{}", NODES[*i]) != leader && *i != down)
        .expect("another follower");
    cl.kill(wiped);
    std::fs::remove_dir_all(cl.stores[wiped].path().join("jetstream")).expect("wipe the store");
    let t = Instant::now();
    cl.start(wiped);
    cl.wait_replica(wiped, "SNAP", Duration::from_secs(60), state_is(500, 500));
    eprintln!(
        "a wiped replica rebuilt past a snapshot in {:.1}s",
        t.elapsed().as_secs_f64()
    );
    assert_eq!(
        publish_acked(&js, "snap.a", "m501".into(), Duration::from_secs(10)).await,
        501
    );
    for i in 0..NODES.len() {
        cl.wait_replica(i, "SNAP", Duration::from_secs(20), state_is(501, 501));
    }
    // Every replica holds the same messages: each in turn leads and is read whole.
    for round in 0..NODES.len() {
        check_contents(&js, "SNAP", &format!("R{round}"), 501).await;
        let nc = connect().await;
        let r = api(&nc, "$JS.API.STREAM.LEADER.STEPDOWN.SNAP", "").await;
        assert_eq!(r["success"], true, "{r}");
    }
}

/// Placement: `server_tags` and `placement.tags` choose the servers, `unique_tag` keeps
/// replicas on distinct values of a tag, and a changed placement moves the stream with
/// its messages.
#[test]
fn placement_by_tags_and_a_stream_moved() {
    let extra = vec![
        "server_tags: [\"az:1\", \"ssd\"]\n".to_owned(),
        "server_tags: [\"az:2\"]\n".to_owned(),
        "server_tags: [\"az:2\", \"ssd\"]\n".to_owned(),
    ];
    let Some(mut cl) = Cluster::with("jsp", Vec::new(), extra) else {
        return;
    };
    run_in_client_ns(&mut cl, |cl| Box::pin(placement_scenario(cl)));
}

async fn placement_scenario(cl: &mut Cluster) {
    let nc = connect().await;
    let js = jetstream::new(nc.clone());
    let create = |name: &str, replicas: u32, tags: &[&str]| {
        serde_json::json!({"name": name, "subjects": [format!("{}.>", name.to_lowercase())],
            "num_replicas": replicas, "placement": {"tags": tags}})
        .to_string()
    };
    // The meta group forms first.
    create_retrying(
        &js,
        stream::Config {
            name: "FIRST".into(),
            ..Default::default()
        },
    )
    .await;
    let r = api(
        &nc,
        "$JS.API.STREAM.CREATE.FAST",
        &create("FAST", 2, &["ssd"]),
    )
    .await;
    assert!(r["error"].is_null(), "{r}");
    assert_eq!(
        placed_on(&r),
        vec!["n41", "n43"],
        "on the servers tagged ssd: {r}"
    );
    let r = api(
        &nc,
        "$JS.API.STREAM.CREATE.NOPE",
        &create("NOPE", 3, &["ssd"]),
    )
    .await;
    assert_eq!(r["error"]["err_code"], 10005, "{r}");

    // A stream moved from az:1 to az:2 keeps its messages.
    let r = api(
        &nc,
        "$JS.API.STREAM.CREATE.MOVE",
        &create("MOVE", 1, &["az:1"]),
    )
    .await;
    assert_eq!(placed_on(&r), vec!["n41"], "{r}");
    for i in 1..=50u64 {
        assert_eq!(
            publish_acked(&js, "move.a", format!("m{i}"), Duration::from_secs(10)).await,
            i
        );
    }
    let r = api(
        &nc,
        "$JS.API.STREAM.UPDATE.MOVE",
        &create("MOVE", 1, &["az:2"]),
    )
    .await;
    assert!(r["error"].is_null(), "{r}");
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        let info = api(&nc, "$JS.API.STREAM.INFO.MOVE", "").await;
        let now = placed_on(&info);
        if now.len() == 1 && now[0] != "n41" && info["state"]["messages"] == 50 {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "not moved: {info}\n{}\n{}\n{}",
            cl.log(0),
            cl.log(1),
            cl.log(2)
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    check_contents(&js, "MOVE", "READER", 50).await;
}

/// Two clusters of three joined by gateways: one JetStream domain whose meta group spans
/// both (six voters), streams placed in the cluster `placement.cluster` names (every
/// replica there), clients of either cluster using streams of the other, and a stream
/// leader killed in the far cluster replaced from its own cluster.
#[test]
fn a_supercluster_over_gateways() {
    const EAST: [u8; 3] = [61, 62, 63];
    const WEST: [u8; 3] = [64, 65, 66];
    let Some(mut lab) = netns::lab("jsg") else {
        return;
    };
    let all: Vec<u8> = EAST.iter().chain(WEST.iter()).copied().collect();
    let ns: Vec<String> = all.iter().map(|n| lab.node(*n)).collect();
    let stores: Vec<tempfile::TempDir> = all
        .iter()
        .map(|_| tempfile::tempdir().expect("tempdir"))
        .collect();
    let urls = |members: &[u8], port: u16| -> String {
        members
            .iter()
            .map(|m| format!("nats://{}:{port}", addr(*m)))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let conf = |n: u8, store: &Path| {
        let (name, members) = if EAST.contains(&n) {
            ("EAST", &EAST)
        } else {
            ("WEST", &WEST)
        };
        format!(
            "server_name: n{n}\nlisten: {a}:4222\nhttp: {a}:8222\njetstream {{ store_dir: \"{}\" }}\n\
             accounts {{\n  APP {{ jetstream: enabled, users: [{{user: app, password: app}}] }}\n  SYS {{ users: [{{user: sys, password: sys}}] }}\n}}\n\
             system_account: SYS\nno_auth_user: app\n\
             cluster {{ name: {name}, listen: {a}:6222, routes: [{}] }}\n\
             gateway {{ name: {name}, listen: {a}:7222, gateways: [{{name: EAST, urls: [{}]}}, {{name: WEST, urls: [{}]}}] }}\n",
            store.display(),
            urls(members, 6222),
            urls(&EAST, 7222),
            urls(&WEST, 7222),
            a = addr(n)
        )
    };
    let mut procs: Vec<Option<Proc>> = all
        .iter()
        .zip(&ns)
        .zip(&stores)
        .map(|((n, ns), store)| {
            Some(lab.start_with_env(
                Path::new(NATRIX),
                ns,
                *n,
                &conf(*n, store.path()),
                &[("RUST_LOG", "natrix_jetstream=debug,natrix_broker=info,warn")],
            ))
        })
        .collect();
    // One meta group of six, whichever cluster leads it.
    lab.wait_json(61, "/jsz", Duration::from_secs(60), |v| {
        v["meta_cluster"]["leader"].is_string() && v["meta_cluster"]["cluster_size"] == 6
    });
    let index_of = |name: &str| {
        all.iter()
            .position(|n| format!("n{n}") == name)
            .unwrap_or_else(|| panic!("no node {name}"))
    };
    let leader = block_in_client_ns(&lab, async {
        let east = connect_node(61, 5, "connect to EAST").await;
        let west = connect_node(65, 5, "connect to WEST").await;
        // Placed in WEST from a client of EAST.
        let body = serde_json::json!({"name": "W", "subjects": ["w.>"], "num_replicas": 3,
                "placement": {"cluster": "WEST"}});
        let r = api(&east, "$JS.API.STREAM.CREATE.W", &body.to_string()).await;
        assert!(r["error"].is_null(), "{r}");
        assert_eq!(r["cluster"]["name"], "WEST", "{r}");
        assert_eq!(placed_on(&r), ["n64", "n65", "n66"]);
        // And one in EAST from a client of WEST.
        let body = serde_json::json!({"name": "E", "subjects": ["e.>"], "num_replicas": 3,
                "placement": {"cluster": "EAST"}});
        let r = api(&west, "$JS.API.STREAM.CREATE.E", &body.to_string()).await;
        assert!(r["error"].is_null(), "{r}");
        assert_eq!(placed_on(&r), ["n61", "n62", "n63"]);
        // Without a cluster named, a stream goes to the asking client's cluster,
        // wherever the meta leader is.
        let body = serde_json::json!({"name": "ANYW", "subjects": ["anyw.>"], "num_replicas": 3});
        let r = api(&west, "$JS.API.STREAM.CREATE.ANYW", &body.to_string()).await;
        assert!(r["error"].is_null(), "{r}");
        assert_eq!(placed_on(&r), ["n64", "n65", "n66"], "{r}");
        let body = serde_json::json!({"name": "ANYE", "subjects": ["anye.>"], "num_replicas": 3});
        let r = api(&east, "$JS.API.STREAM.CREATE.ANYE", &body.to_string()).await;
        assert!(r["error"].is_null(), "{r}");
        assert_eq!(placed_on(&r), ["n61", "n62", "n63"], "{r}");
        // A cluster nobody is in: nats-server's placement error.
        let body = serde_json::json!({"name": "X", "subjects": ["x.>"], "num_replicas": 1,
                "placement": {"cluster": "NORTH"}});
        let r = api(&east, "$JS.API.STREAM.CREATE.X", &body.to_string()).await;
        assert_eq!(r["error"]["err_code"], 10005, "{r}");
        // Writes from EAST's clients, reads from WEST's, and the other way round.
        let js_east = jetstream::new(east.clone());
        let js_west = jetstream::new(west.clone());
        for i in 1..=30u64 {
            let seq =
                publish_acked(&js_east, "w.a", format!("m{i}"), Duration::from_secs(10)).await;
            assert_eq!(seq, i);
            let seq =
                publish_acked(&js_west, "e.a", format!("m{i}"), Duration::from_secs(10)).await;
            assert_eq!(seq, i);
        }
        check_contents(&js_west, "W", "READER", 30).await;
        check_contents(&js_east, "E", "READER", 30).await;
        leader_of(&js_east, "W").await
    });
    // The far stream's leader dies: WEST elects another and EAST's clients go on.
    let i = index_of(&leader);
    if let Some(mut p) = procs[i].take() {
        let _ = p.child.kill();
        let _ = p.child.wait();
    }
    block_in_client_ns(&lab, async {
        let east = connect_node(62, 5, "connect to EAST").await;
        let js = jetstream::new(east.clone());
        for i in 31..=60u64 {
            let seq = publish_acked(&js, "w.a", format!("m{i}"), Duration::from_secs(20)).await;
            assert_eq!(seq, i);
        }
        let new_leader = leader_of(&js, "W").await;
        assert_ne!(new_leader, leader);
        assert!(
            ["n64", "n65", "n66"].contains(&new_leader.as_str()),
            "WEST leads its stream: {new_leader}"
        );
        check_contents(&js, "W", "READER2", 60).await;
    });
    drop(procs);
}
