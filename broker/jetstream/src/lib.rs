//! JetStream for natrix-server: persistent streams and consumers, and the KV and object
//! store conventions that clients build on them.
//!
//! This crate never touches a connection. It reaches the server core through [`bus`]: an
//! internal client bound to an account that subscribes, receives and publishes, exactly
//! what nats-server's own JetStream does through its internal clients. `main.rs` wires
//! the core's internal client into it, so the core never imports JetStream either.
//!
//! | module | holds |
//! | --- | --- |
//! | [`store`] | the message store trait, the memory store and the redb file store |
//! | [`stream`], [`stream_api`] | a stream's actor: write path, limits, its API calls |
//! | [`consumer`], [`ack`] | consumers: delivery, pull requests, acknowledgements |
//! | [`account`] | JetStream in one account: its streams, API, limits, recovery |
//! | [`api`] | the `$JS.API.>` JSON types, error codes and request dispatch |
//! | [`direct`] | direct gets (KV reads) |
//! | [`source`] | mirrors and sources: a task per origin, stored through the stream |
//! | [`snapshot`] | stream backups: `STREAM.SNAPSHOT` and `STREAM.RESTORE` |
//! | [`validate`] | stream and consumer config checks and defaults |
//! | [`subject`], [`transform`], [`headers`], [`duration`], [`time`] | small helpers |

pub mod account;
pub mod ack;
pub mod api;
pub mod bus;
pub mod cluster;
pub mod consumer;
pub mod direct;
pub mod duration;
pub mod headers;
pub mod pacing;
pub mod priority;
pub mod quota;
pub mod snapshot;
pub mod source;
pub mod store;
pub mod stream;
pub mod stream_api;
pub mod subject;
pub mod time;
pub mod transform;
pub mod validate;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;

use parking_lot::RwLock;
use serde_json::{Value, json};

pub use account::AccountLimits;
use account::JsAccount;

/// The JetStream API level natrix implements (nats-server's `JSApiLevel`): level 1 is
/// per-message TTLs and subject delete markers. Configs that need more (counters,
/// atomic and fast batches, schedules, async persistence) are refused with
/// nats-server's "minimum api level" error (docs/compatibility.md).
pub const API_LEVEL: u64 = 1;

/// JetStream's configuration, from the server's `jetstream {}` block and flags.
#[derive(Debug, Clone)]
pub struct Config {
    pub store_dir: PathBuf,
    /// Bytes memory streams may use in total; -1 lets the server pick (75 % of RAM).
    pub max_memory: i64,
    /// Bytes file streams may use in total; -1 lets the server pick (1 TiB).
    pub max_store: i64,
    pub domain: Option<String>,
    /// Accepted for compatibility and reported; every acknowledgement is fsynced
    /// regardless (see docs/jetstream.md).
    pub sync_interval_ns: i64,
    pub unique_tag: Option<String>,
    /// Refuse unknown fields in API requests (nats-server's `strict`, on by default).
    pub strict: bool,
    /// The server's `max_pending`: a direct-get batch's default byte budget.
    pub max_pending: usize,
    /// Page cache each file stream's redb database may keep.
    pub store_cache_bytes: usize,
    pub limits: validate::ServerLimits,
    /// Accounts with JetStream and their limits.
    pub accounts: BTreeMap<String, AccountLimits>,
    /// The system account, which gets no JetStream answers.
    pub system_account: String,
    /// The server's name, and the nats-server version it answers as.
    pub server_name: String,
    pub version: String,
    /// Clustered JetStream (a cluster listener is configured): streams are placed by
    /// the meta group and may be replicated.
    pub cluster: Option<cluster::ClusterConfig>,
}

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("could not create storage directory - {0}")]
    StoreDir(String),
    #[error("connecting JetStream to the server: {0}")]
    Bus(String),
    #[error("starting clustered JetStream: {0}")]
    Cluster(String),
}

/// What every account's JetStream shares.
pub struct JetStreamInner {
    pub config: Config,
    pub bus: Arc<dyn bus::Bus>,
    pub api_total: AtomicU64,
    pub api_errors: AtomicU64,
    pub started: i64,
    /// Bytes stored by every account's streams.
    pub usage: Arc<quota::Usage>,
    /// Clustered JetStream, once started.
    pub cluster: std::sync::OnceLock<Arc<cluster::Cluster>>,
}

impl JetStreamInner {
    pub fn cluster(&self) -> Option<&Arc<cluster::Cluster>> {
        self.cluster.get()
    }
}

/// JetStream on this server.
#[derive(Clone)]
pub struct JetStream {
    inner: Arc<JetStreamInner>,
    accounts: Arc<RwLock<BTreeMap<String, Arc<JsAccount>>>>,
    /// The connections that answer `$JS.API.INFO` in accounts without JetStream.
    disabled: Arc<parking_lot::Mutex<Vec<Arc<dyn bus::Conn>>>>,
}

impl JetStream {
    /// Starts JetStream: creates the store directory, and in each configured account
    /// recovers its streams and starts answering its API.
    pub async fn start(mut config: Config, bus: Arc<dyn bus::Bus>) -> Result<Self, StartError> {
        std::fs::create_dir_all(config.store_dir.join("jetstream"))
            .map_err(|e| StartError::StoreDir(e.to_string()))?;
        if config.max_memory < 0 {
            config.max_memory = default_max_memory();
        }
        if config.max_store < 0 {
            config.max_store = disk_available(&config.store_dir);
        }
        tracing::info!("Starting JetStream");
        tracing::info!("  Max Memory:      {}", human_bytes(config.max_memory));
        tracing::info!("  Max Storage:     {}", human_bytes(config.max_store));
        tracing::info!("  Store Directory: \"{}\"", config.store_dir.display());
        if let Some(d) = &config.domain {
            tracing::info!("  Domain:          {d}");
        }
        tracing::info!("  Durability:      every acknowledged message is fsynced (group commit)");
        let accounts = config.accounts.clone();
        let inner = Arc::new(JetStreamInner {
            config,
            bus,
            api_total: AtomicU64::new(0),
            api_errors: AtomicU64::new(0),
            started: time::now_nanos(),
            usage: Arc::default(),
            cluster: std::sync::OnceLock::new(),
        });
        let js = Self {
            inner: inner.clone(),
            accounts: Arc::default(),
            disabled: Arc::default(),
        };
        for (name, limits) in accounts {
            let acc = JsAccount::enable(&inner, &name, limits).await?;
            js.accounts.write().insert(name, acc);
        }
        if let Some(c) = inner.config.cluster.clone() {
            let cluster = cluster::Cluster::start(&inner, c, js.accounts.clone()).await?;
            let _ = inner.cluster.set(cluster);
        }
        js.answer_disabled_accounts()?;
        tracing::info!("JetStream started");
        Ok(js)
    }

    /// Accounts without JetStream (other than the system account) answer `$JS.API.INFO`
    /// with "JetStream not enabled for account", as nats-server's info-only import does,
    /// so clients learn why instead of timing out.
    fn answer_disabled_accounts(&self) -> Result<(), StartError> {
        let enabled: Vec<String> = self.accounts.read().keys().cloned().collect();
        for name in self.inner.bus.accounts() {
            if enabled.contains(&name) || name == self.inner.config.system_account {
                continue;
            }
            let conn_slot: Arc<parking_lot::Mutex<Option<Arc<dyn bus::Conn>>>> = Arc::default();
            let slot = conn_slot.clone();
            let conn = self
                .inner
                .bus
                .connect(
                    &name,
                    Box::new(move |m: bus::Msg| {
                        let (Some(reply), Some(conn)) = (m.reply.as_deref(), slot.lock().clone())
                        else {
                            return;
                        };
                        let body = json!({
                            "type": "io.nats.jetstream.api.v1.account_info_response",
                            "error": api::errors::not_enabled_for_account(),
                        });
                        if let Ok(b) = api::json::to_vec(&body) {
                            conn.publish(reply, None, &[], &b);
                        }
                    }),
                )
                .map_err(|e| StartError::Bus(e.to_string()))?;
            conn.subscribe("$JS.API.INFO", None)
                .map_err(|e| StartError::Bus(e.to_string()))?;
            *conn_slot.lock() = Some(conn.clone());
            self.disabled.lock().push(conn);
        }
        Ok(())
    }

    /// Stops every stream; what was acknowledged is already on disk.
    /// Clustered: hands every Raft leadership this server holds to another member, while
    /// its routes are still up (before a graceful shutdown or in lame-duck mode).
    pub async fn hand_over(&self) {
        if let Some(c) = self.inner.cluster() {
            let accounts: Vec<Arc<JsAccount>> = self.accounts.read().values().cloned().collect();
            c.hand_over(&accounts).await;
        }
    }

    pub async fn shutdown(&self) {
        let accounts: Vec<_> = self.accounts.read().values().cloned().collect();
        for a in accounts {
            a.shutdown().await;
        }
        if let Some(c) = self.inner.cluster() {
            c.shutdown().await;
        }
    }

    pub fn domain(&self) -> Option<String> {
        self.inner.config.domain.clone()
    }

    pub fn account_enabled(&self, account: &str) -> bool {
        self.accounts.read().contains_key(account)
    }

    /// Enables JetStream for an account that appeared after start (operator mode: an
    /// account JWT granting JetStream was loaded or pushed). Already enabled accounts
    /// keep running as they are.
    pub async fn enable_account(
        &self,
        name: &str,
        limits: AccountLimits,
    ) -> Result<(), StartError> {
        if self.account_enabled(name) {
            return Ok(());
        }
        let acc = JsAccount::enable(&self.inner, name, limits).await?;
        self.accounts.write().entry(name.to_owned()).or_insert(acc);
        tracing::info!(account = name, "JetStream enabled for account");
        Ok(())
    }

    fn totals(&self) -> Totals {
        let mut t = Totals::default();
        for a in self.accounts.read().values() {
            let (m, s) = a.usage();
            let (rm, rs) = a.reserved();
            t.memory += m;
            t.storage += s;
            t.reserved_memory += rm;
            t.reserved_storage += rs;
            for st in a.streams() {
                let sh = st.shared.read();
                t.streams += 1;
                t.consumers += sh.consumers as u64;
                t.messages += sh.state.msgs;
                t.bytes += sh.state.bytes;
            }
        }
        t
    }

    fn config_json(&self) -> Value {
        let c = &self.inner.config;
        // `sync_always` is natrix's: every acknowledged message is fsynced.
        let mut v = json!({
            "max_memory": c.max_memory,
            "max_storage": c.max_store,
            "store_dir": c.store_dir.join("jetstream").display().to_string(),
            "sync_interval": c.sync_interval_ns,
            "sync_always": true,
        });
        if let Some(o) = v.as_object_mut() {
            if let Some(d) = &c.domain {
                o.insert("domain".into(), json!(d));
            }
            if let Some(t) = &c.unique_tag {
                o.insert("unique_tag".into(), json!(t));
            }
            if c.strict {
                o.insert("strict".into(), json!(true));
            }
        }
        v
    }

    fn stats_json(&self, t: &Totals) -> Value {
        json!({
            "memory": t.memory,
            "storage": t.storage,
            "reserved_memory": t.reserved_memory,
            "reserved_storage": t.reserved_storage,
            "accounts": self.accounts.read().len(),
            "ha_assets": 0,
            "api": self.api_stats(),
        })
    }

    fn api_stats(&self) -> Value {
        json!({
            "level": API_LEVEL,
            "total": self.inner.api_total.load(std::sync::atomic::Ordering::Relaxed),
            "errors": self.inner.api_errors.load(std::sync::atomic::Ordering::Relaxed),
        })
    }

    /// The `jetstream` block of `/varz`.
    pub fn varz(&self) -> Value {
        let t = self.totals();
        json!({"config": self.config_json(), "stats": self.stats_json(&t)})
    }

    /// `/jsz` without `server_id` and `now` (the core adds those).
    pub async fn jsz(&self, o: &JszQuery) -> Value {
        let t = self.totals();
        let mut v = self.stats_json(&t);
        let Some(obj) = v.as_object_mut() else {
            return v;
        };
        obj.insert("config".into(), self.config_json());
        obj.insert("streams".into(), json!(t.streams));
        obj.insert("consumers".into(), json!(t.consumers));
        obj.insert("messages".into(), json!(t.messages));
        obj.insert("bytes".into(), json!(t.bytes));
        let accounts: Vec<Arc<JsAccount>> = self
            .accounts
            .read()
            .values()
            .filter(|a| o.account.as_deref().is_none_or(|n| n == a.name))
            .cloned()
            .collect();
        let want_details = o.accounts || o.account.is_some() || o.streams || o.consumers;
        if want_details {
            let mut details = Vec::new();
            for a in accounts.iter().skip(o.offset).take(o.limit.max(1)) {
                details.push(account_detail(a, o).await);
            }
            obj.insert("account_details".into(), json!(details));
        }
        obj.insert("total".into(), json!(accounts.len()));
        if let Some(c) = self.inner.cluster() {
            obj.insert("meta_cluster".into(), c.meta_json());
        }
        v
    }

    /// `/raftz`: this server's Raft groups (clustered JetStream), by account.
    pub async fn raftz(&self) -> Value {
        match self.inner.cluster() {
            Some(c) => c.raftz().await,
            None => json!({}),
        }
    }

    /// JetStream's part of `/healthz`.
    /// `full`: the plain `/healthz` (not `js-enabled-only` or `js-server-only`), which in
    /// a cluster also waits for a meta leader and for every replica here to be current,
    /// so that a rolling restart never moves on while a stream lacks a current quorum.
    pub async fn health(
        &self,
        account: Option<&str>,
        stream: Option<&str>,
        consumer: Option<&str>,
        full: bool,
    ) -> Result<(), String> {
        if full
            && account.is_none()
            && let Some(c) = self.inner.cluster()
        {
            let accounts: Vec<Arc<JsAccount>> = self.accounts.read().values().cloned().collect();
            c.health(&accounts).await?;
        }
        let Some(acc_name) = account else {
            return Ok(());
        };
        let Some(acc) = self.accounts.read().get(acc_name).cloned() else {
            return Err(format!(
                "JetStream account '{acc_name}' could not be resolved"
            ));
        };
        let Some(stream_name) = stream else {
            return Ok(());
        };
        let Some(s) = acc.stream(stream_name) else {
            return Err(format!(
                "JetStream stream '{stream_name} > {acc_name}' could not be found"
            ));
        };
        if let Some(c) = consumer
            && s.call(stream::Call::ConsumerInfo(c.to_owned()))
                .await
                .is_err()
        {
            return Err(format!(
                "JetStream consumer '{acc_name} > {stream_name} > {c}' could not be found"
            ));
        }
        Ok(())
    }
}

/// The `/jsz` options JetStream reads.
#[derive(Debug, Clone, Default)]
pub struct JszQuery {
    pub account: Option<String>,
    pub accounts: bool,
    pub streams: bool,
    pub consumers: bool,
    pub config: bool,
    pub offset: usize,
    pub limit: usize,
}

async fn account_detail(a: &Arc<JsAccount>, o: &JszQuery) -> Value {
    let (m, s) = a.usage();
    let (rm, rs) = a.reserved();
    let mut v = json!({
        "name": a.name,
        "id": a.name,
        "memory": m,
        "storage": s,
        "reserved_memory": rm,
        "reserved_storage": rs,
        "accounts": 0,
        "ha_assets": 0,
        "api": {"level": 0, "total": 0, "errors": 0},
    });
    if (o.streams || o.consumers)
        && let Some(obj) = v.as_object_mut()
    {
        let mut streams = Vec::new();
        for st in a.streams() {
            let Ok(info) = st
                .call(stream::Call::Info {
                    deleted: false,
                    subjects: None,
                    offset: 0,
                    cluster: true,
                })
                .await
            else {
                continue;
            };
            let (commits, committed_msgs) = {
                let sh = st.shared.read();
                (sh.commits, sh.committed_msgs)
            };
            let mut d = json!({
                "name": st.name,
                "created": info.get("created").cloned().unwrap_or(Value::Null),
                "cluster": info.get("cluster").cloned().unwrap_or(Value::Null),
                "state": info.get("state").cloned().unwrap_or(Value::Null),
                // natrix only: group-commit batch size is committed_msgs / commits.
                "commits": commits,
                "committed_msgs": committed_msgs,
            });
            if let Some(dobj) = d.as_object_mut() {
                if o.config {
                    dobj.insert(
                        "config".into(),
                        info.get("config").cloned().unwrap_or(Value::Null),
                    );
                }
                if o.consumers
                    && let Ok(list) = st.call(stream::Call::ConsumerList { offset: 0 }).await
                {
                    let mut cs = list.get("consumers").cloned().unwrap_or(json!([]));
                    if !o.config
                        && let Some(arr) = cs.as_array_mut()
                    {
                        for c in arr {
                            if let Some(co) = c.as_object_mut() {
                                co.remove("config");
                            }
                        }
                    }
                    dobj.insert("consumer_detail".into(), cs);
                }
            }
            streams.push(d);
        }
        obj.insert("stream_detail".into(), json!(streams));
    }
    v
}

#[derive(Default)]
struct Totals {
    memory: u64,
    storage: u64,
    reserved_memory: u64,
    reserved_storage: u64,
    streams: u64,
    consumers: u64,
    messages: u64,
    bytes: u64,
}

/// nats-server's dynamic default for `max_file_store`: 75 % of the space available on the
/// store's filesystem, or 1 TB if that cannot be read.
fn disk_available(dir: &std::path::Path) -> i64 {
    match rustix::fs::statvfs(dir) {
        Ok(s) => i64::try_from(s.f_bavail.saturating_mul(s.f_frsize) / 4 * 3).unwrap_or(i64::MAX),
        Err(_) => 1 << 40,
    }
}

/// nats-server's dynamic default: 75 % of the machine's memory.
fn default_max_memory() -> i64 {
    let total_kb = std::fs::read_to_string("/proc/meminfo")
        .ok()
        .and_then(|t| {
            t.lines()
                .find(|l| l.starts_with("MemTotal:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|n| n.parse::<i64>().ok())
        })
        .unwrap_or(1 << 20);
    total_kb * 1024 / 4 * 3
}

/// Bytes as nats-server logs them (`1.00 TB`, `17.50 GB`).
fn human_bytes(n: i64) -> String {
    const UNITS: [&str; 6] = ["B", "KB", "MB", "GB", "TB", "PB"];
    #[allow(clippy::cast_precision_loss)]
    let mut v = n as f64;
    let mut u = 0;
    while v >= 1024.0 && u < UNITS.len() - 1 {
        v /= 1024.0;
        u += 1;
    }
    format!("{v:.2} {}", UNITS[u])
}
