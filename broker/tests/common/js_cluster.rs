//! A three-server JetStream cluster on a private network (see [`super::netns`]): one
//! server per network namespace, stores that outlive their processes, and the client
//! helpers the clustered JetStream tests share (`js_cluster.rs`, `js_cluster_campaign.rs`).
//!
//! The cluster runs any server binary that reads nats-server's config language, so the
//! same scenario runs on natrix-server and on the reference nats-server.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use async_nats::jetstream::{self, stream};
use futures::future::LocalBoxFuture;
use nix::sys::signal::{self, Signal};
use nix::unistd::Pid;

use super::netns::{self, Lab, addr};
use super::{NATRIX, Proc};

/// The cluster's nodes: their addresses are `10.77.0.<n>`, their names `n<n>`.
pub const NODES: [u8; 3] = [41, 42, 43];

/// Node `n`'s config: its store at `store`, `extra_js` inside its `jetstream {}` block.
/// Short route pings, so a partitioned or stopped peer is noticed within about a second.
pub fn conf(n: u8, store: &Path, extra_js: &str) -> String {
    let routes: Vec<String> = NODES
        .iter()
        .map(|m| format!("nats://{}:6222", addr(*m)))
        .collect();
    format!(
        "server_name: n{n}\nlisten: {a}:4222\nhttp: {a}:8222\njetstream {{\n  store_dir: \"{}\"\n  {extra_js}\n}}\ncluster {{\n  name: JS\n  listen: {a}:6222\n  routes: [{}]\n  ping_interval: \"500ms\"\n  ping_max: 2\n}}\n",
        store.display(),
        routes.join(", "),
        a = addr(n)
    )
}

/// Three servers, their namespaces and their stores.
///
/// Field order is drop order: the servers die before their namespaces go and before the
/// stores (plain directories owned here, or paths the caller owns, such as mounts) do.
pub struct Cluster {
    procs: Vec<Option<Proc>>,
    pub lab: Lab,
    ns: Vec<String>,
    bin: PathBuf,
    extra_js: String,
    stores: Vec<PathBuf>,
    /// What each node's earlier processes logged (a restart starts a new log file, and
    /// the old one goes with its process): kept so a failure can show a node's history.
    past_logs: Vec<String>,
    /// Nodes stopped with SIGSTOP and not continued yet.
    paused: Vec<bool>,
    _dirs: Vec<tempfile::TempDir>,
}

impl Cluster {
    /// Three natrix-servers with stores in fresh directories, started; `None` where this
    /// machine cannot make network namespaces.
    pub fn new(tag: &str) -> Option<Self> {
        let dirs: Vec<tempfile::TempDir> = NODES
            .iter()
            .map(|_| tempfile::tempdir().expect("tempdir"))
            .collect();
        let stores = dirs.iter().map(|d| d.path().to_owned()).collect();
        let mut c = Self::with_stores(tag, Path::new(NATRIX), "", stores)?;
        c._dirs = dirs;
        c.start_all();
        Some(c)
    }

    /// Three servers of `bin` with `extra_js` in their `jetstream {}` blocks and their
    /// stores at `stores` (which the caller keeps alive), not started yet.
    pub fn with_stores(
        tag: &str,
        bin: &Path,
        extra_js: &str,
        stores: Vec<PathBuf>,
    ) -> Option<Self> {
        assert_eq!(stores.len(), NODES.len(), "one store per node");
        let mut lab = netns::lab(tag)?;
        let ns = NODES.iter().map(|n| lab.node(*n)).collect();
        Some(Self {
            procs: NODES.iter().map(|_| None).collect(),
            lab,
            ns,
            bin: bin.to_owned(),
            extra_js: extra_js.to_owned(),
            stores,
            past_logs: vec![String::new(); NODES.len()],
            paused: vec![false; NODES.len()],
            _dirs: Vec::new(),
        })
    }

    /// Starts every node that is not running.
    pub fn start_all(&mut self) {
        for i in 0..NODES.len() {
            if self.procs[i].is_none() {
                self.start(i);
            }
        }
    }

    /// Starts node `i` on its store and waits for its monitoring port.
    pub fn start(&mut self, i: usize) {
        let n = NODES[i];
        let p = self.lab.start(
            &self.bin,
            &self.ns[i],
            n,
            &conf(n, &self.stores[i], &self.extra_js),
        );
        self.procs[i] = Some(p);
        self.paused[i] = false;
    }

    /// Whether node `i` has a process (running or stopped).
    pub fn is_up(&self, i: usize) -> bool {
        self.procs[i].is_some()
    }

    /// SIGKILL: no shutdown, no flush. What the process logged is kept for [`Self::log`].
    pub fn kill(&mut self, i: usize) {
        if let Some(mut p) = self.procs[i].take() {
            let _ = p.child.kill();
            let _ = p.child.wait();
            let text = p.log_text();
            self.past_logs[i].push_str(&text);
            self.past_logs[i].push_str("----- killed (SIGKILL) -----\n");
        }
        self.paused[i] = false;
    }

    fn signal(&self, i: usize, sig: Signal) {
        if let Some(p) = &self.procs[i] {
            let pid = i32::try_from(p.child.id()).expect("pid fits in i32");
            // `ip netns exec` execs the server, so the child is the server itself. It may
            // have died on its own: nothing to stop or continue then.
            let _ = signal::kill(Pid::from_raw(pid), sig);
        }
    }

    /// SIGSTOP: the process freezes with its sockets open, as a long GC pause or a VM
    /// stall looks to its peers.
    pub fn pause(&mut self, i: usize) {
        self.signal(i, Signal::SIGSTOP);
        self.paused[i] = true;
    }

    /// SIGCONT after [`Self::pause`].
    pub fn resume(&mut self, i: usize) {
        self.signal(i, Signal::SIGCONT);
        self.paused[i] = false;
    }

    /// Undoes every fault: links up, stopped nodes continued, dead nodes restarted.
    pub fn heal(&mut self) {
        for (i, n) in NODES.iter().enumerate() {
            self.lab.link(*n, true);
            if self.paused[i] {
                self.resume(i);
            }
        }
        self.start_all();
    }

    /// Node `i`'s server name.
    pub fn name(&self, i: usize) -> String {
        format!("n{}", NODES[i])
    }

    /// The node named `name`, if it is one of ours.
    pub fn find(&self, name: &str) -> Option<usize> {
        (0..NODES.len()).find(|i| self.name(*i) == name)
    }

    pub fn index_of(&self, name: &str) -> usize {
        self.find(name)
            .unwrap_or_else(|| panic!("no node named {name:?}"))
    }

    /// Everything node `i` logged: its earlier processes, then the current one.
    pub fn log(&self, i: usize) -> String {
        let mut text = self.past_logs[i].clone();
        if let Some(p) = &self.procs[i] {
            text.push_str(&p.log_text());
        }
        text
    }

    /// The local replica of `stream` on node `i` as `/jsz` shows it, once `ok` holds.
    pub fn wait_replica(
        &self,
        i: usize,
        stream: &str,
        within: Duration,
        ok: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        let v = self
            .lab
            .wait_json(NODES[i], "/jsz?streams=true", within, |v| {
                replica(v, stream).is_some_and(|r| ok(&r))
            });
        replica(&v, stream).unwrap_or_default()
    }

    /// The local replica of `stream` on node `i` now, if node `i` answers and has one.
    pub fn replica_now(&self, i: usize, stream: &str) -> Option<serde_json::Value> {
        let reply = self.lab.http(NODES[i], "/jsz?streams=true")?;
        let v = serde_json::from_str(&reply.body).ok()?;
        replica(&v, stream)
    }
}

/// The stream `stream` in a `/jsz?streams=true` reply: the server's local replica.
pub fn replica(jsz: &serde_json::Value, stream: &str) -> Option<serde_json::Value> {
    jsz["account_details"]
        .as_array()?
        .iter()
        .flat_map(|a| a["stream_detail"].as_array().cloned().unwrap_or_default())
        .find(|s| s["name"] == stream)
}

/// All three servers, for a client that follows the cluster as nodes come and go.
pub fn servers() -> Vec<async_nats::ServerAddr> {
    NODES
        .iter()
        .map(|n| {
            format!("nats://{}:4222", addr(*n))
                .parse()
                .expect("address")
        })
        .collect()
}

/// A client of all three servers (from inside the client namespace).
pub async fn connect() -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_secs(3)))
        // A server cut off by a partition or stopped is noticed within seconds.
        .ping_interval(Duration::from_secs(1))
        .retry_on_initial_connect()
        .connect(servers())
        .await
        .expect("connect")
}

/// STREAM.INFO of `name`, retried for at most `within` (its leader answers it).
pub async fn stream_info(js: &jetstream::Context, name: &str, within: Duration) -> stream::Info {
    let deadline = Instant::now() + within;
    loop {
        match try_stream_info(js, name).await {
            Ok(i) => return i,
            Err(e) => assert!(Instant::now() < deadline, "stream info: {e}"),
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// One STREAM.INFO of `name`.
pub async fn try_stream_info(js: &jetstream::Context, name: &str) -> Result<stream::Info, String> {
    let mut s = js.get_stream(name).await.map_err(|e| e.to_string())?;
    s.info().await.cloned().map_err(|e| e.to_string())
}

/// Runs `scenario` on a thread of its own inside the client namespace, so every socket
/// its clients open is on the private network. `workers` 0 runs it on a current-thread
/// runtime; more gives a multi-thread runtime with that many workers (their threads
/// start inside the namespace too), so the scenario itself may block its own thread.
pub fn run_in_client_ns<T: Send>(
    cl: &mut Cluster,
    workers: usize,
    scenario: impl for<'a> FnOnce(&'a mut Cluster) -> LocalBoxFuture<'a, T> + Send,
) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            cl.lab.enter_client_ns();
            let rt = if workers == 0 {
                tokio::runtime::Builder::new_current_thread()
                    .enable_all()
                    .build()
            } else {
                tokio::runtime::Builder::new_multi_thread()
                    .worker_threads(workers)
                    .enable_all()
                    .build()
            }
            .expect("runtime");
            rt.block_on(scenario(cl))
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}
