//! JetStream in one account: its streams, its API subscription, its limits, and where
//! its streams live on disk (`<store_dir>/jetstream/<account>/streams/<stream>/`, as
//! nats-server lays them out).

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::sync::Arc;

use parking_lot::RwLock;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use crate::JetStreamInner;
use crate::api::errors::{self, ApiError};
use crate::api::types::{self, StorageType, StreamConfig};
use crate::bus::{Conn, Msg};
use crate::consumer::{Consumer, ConsumerCtx, SavedState};
use crate::store::file::FileStore;
use crate::store::memory::MemoryStore;
use crate::store::{Store, StoreError};
use crate::stream::{Call, Cmd, Shared, Stream, StreamHandle, blocking, limits_of};

/// An account's JetStream limits; -1 is unlimited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AccountLimits {
    pub max_memory: i64,
    pub max_store: i64,
    pub max_streams: i64,
    pub max_consumers: i64,
    pub max_ack_pending: i64,
    pub memory_max_stream_bytes: i64,
    pub storage_max_stream_bytes: i64,
    pub max_bytes_required: bool,
}

impl Default for AccountLimits {
    fn default() -> Self {
        Self {
            max_memory: -1,
            max_store: -1,
            max_streams: -1,
            max_consumers: -1,
            max_ack_pending: -1,
            memory_max_stream_bytes: -1,
            storage_max_stream_bytes: -1,
            max_bytes_required: false,
        }
    }
}

/// The record a stream keeps about itself in its store.
#[derive(Debug, Serialize, Deserialize)]
struct StreamRecord {
    config: StreamConfig,
    created: i64,
}

/// The record a consumer keeps about itself in its stream's store.
#[derive(Debug, Serialize, Deserialize)]
struct ConsumerRecord {
    config: types::ConsumerConfig,
    created: i64,
}

const STREAM_RECORD: &str = "stream/config";

pub struct JsAccount {
    pub name: String,
    pub js: Arc<JetStreamInner>,
    pub limits: RwLock<AccountLimits>,
    pub conn: Arc<dyn Conn>,
    streams: RwLock<BTreeMap<String, Arc<StreamHandle>>>,
    /// Bytes stored by this account's streams.
    usage: Arc<crate::quota::Usage>,
    /// Serialises stream creation and deletion (the API task is one per account, but
    /// recovery runs beside it).
    admin: tokio::sync::Mutex<()>,
}

impl JsAccount {
    /// Enables JetStream in `name`: subscribes its API and recovers its file streams.
    pub async fn enable(
        js: &Arc<JetStreamInner>,
        name: &str,
        limits: AccountLimits,
    ) -> Result<Arc<Self>, crate::StartError> {
        let (tx, mut rx) = mpsc::unbounded_channel::<Msg>();
        let conn = js
            .bus
            .connect(
                name,
                Box::new(move |m| {
                    let _ = tx.send(m);
                }),
            )
            .map_err(|e| crate::StartError::Bus(e.to_string()))?;
        let acc = Arc::new(Self {
            name: name.to_owned(),
            js: js.clone(),
            limits: RwLock::new(limits),
            conn: conn.clone(),
            streams: RwLock::new(BTreeMap::new()),
            usage: Arc::default(),
            admin: tokio::sync::Mutex::new(()),
        });
        // In a cluster, the meta group says which streams run here (it replays their
        // assignments on start), not the directories found on disk.
        if js.config.cluster.is_none() {
            acc.recover().await;
        }
        for s in super::api::handlers::SUBJECTS {
            conn.subscribe(&format!("$JS.API.{s}"), None)
                .map_err(|e| crate::StartError::Bus(e.to_string()))?;
            if let Some(d) = &js.config.domain {
                conn.subscribe(&format!("$JS.{d}.API.{s}"), None)
                    .map_err(|e| crate::StartError::Bus(e.to_string()))?;
            }
        }
        let task_acc = acc.clone();
        tokio::spawn(async move {
            while let Some(m) = rx.recv().await {
                let subject = match &task_acc.js.config.domain {
                    Some(d) => m
                        .subject
                        .strip_prefix(&format!("$JS.{d}.API."))
                        .map_or_else(|| m.subject.clone(), |rest| format!("$JS.API.{rest}")),
                    None => m.subject.clone(),
                };
                crate::api::handlers::handle(&task_acc, &subject, &m).await;
            }
        });
        Ok(acc)
    }

    fn dir(&self) -> PathBuf {
        self.js
            .config
            .store_dir
            .join("jetstream")
            .join(&self.name)
            .join("streams")
    }

    /// Opens every file stream of this account found on disk, logging what it found.
    async fn recover(self: &Arc<Self>) {
        crate::snapshot::remove_leftovers(self);
        let dir = self.dir();
        let Ok(entries) = std::fs::read_dir(&dir) else {
            return;
        };
        for e in entries.flatten() {
            let path = e.path();
            if !path.is_dir() {
                continue;
            }
            let name = e.file_name().to_string_lossy().into_owned();
            match self.recover_stream(&name, path.clone()).await {
                Ok(()) => {}
                Err(err) => tracing::error!(
                    account = %self.name,
                    stream = %name,
                    "  Error recovering stream from {}: {err}",
                    path.display()
                ),
            }
        }
    }

    async fn recover_stream(self: &Arc<Self>, name: &str, path: PathBuf) -> Result<(), String> {
        let cache = self.js.config.store_cache_bytes;
        let opened =
            blocking(move || FileStore::open(&path, crate::store::Limits::default(), cache))
                .await
                .map_err(|e| e.to_string())?;
        let (store, recovery) = opened;
        let store: Arc<dyn Store> = Arc::new(store);
        let record = store
            .meta(STREAM_RECORD)
            .map_err(|e| e.to_string())?
            .into_iter()
            .find(|(k, _)| k == STREAM_RECORD)
            .ok_or("no stream config record")?;
        let rec: StreamRecord =
            serde_json::from_slice(&record.1).map_err(|e| format!("stream config: {e}"))?;
        if rec.config.name != name {
            return Err(format!("directory holds stream {:?}", rec.config.name));
        }
        let removed = {
            let store = store.clone();
            let limits = limits_of(&rec.config);
            blocking(move || store.set_limits(limits))
                .await
                .map_err(|e| e.to_string())?
        };
        let state = store.state();
        tracing::info!(
            "  Restored {} messages for stream '{} > {}' in {}",
            state.msgs,
            self.name,
            name,
            if recovery.repaired.is_empty() {
                "good order".to_owned()
            } else {
                format!("repair ({})", recovery.repaired.join("; "))
            }
        );
        if !removed.is_empty() {
            tracing::info!(
                "  Removed {} messages over the stream's limits",
                removed.len()
            );
        }
        let handle = self.spawn_stream(rec.config, rec.created, store.clone(), true, None)?;
        self.streams.write().insert(name.to_owned(), handle);
        Ok(())
    }

    /// Starts a stream's actor; with `recover`, also its stored consumers.
    fn spawn_stream(
        self: &Arc<Self>,
        config: StreamConfig,
        created: i64,
        store: Arc<dyn Store>,
        recover: bool,
        replica: Option<crate::cluster::Replica>,
    ) -> Result<Arc<StreamHandle>, String> {
        let (tx, rx) = mpsc::unbounded_channel::<Cmd>();
        let roles: Arc<RwLock<crate::stream::SidRoles>> = Arc::default();
        let handler_roles = roles.clone();
        let name = config.name.clone();
        let htx = tx.clone();
        let next_prefix = format!("$JS.API.CONSUMER.MSG.NEXT.{name}.");
        let conn = self
            .js
            .bus
            .connect(
                &self.name,
                Box::new(move |m: Msg| {
                    let roles = handler_roles.read();
                    let cmd = if roles.acks.contains(&m.sid) {
                        Cmd::Ack(m)
                    } else if roles.direct.contains(&m.sid)
                        || m.subject.starts_with("$JS.API.DIRECT.GET.")
                    {
                        // The second form: a mirror's share of its origin's direct gets.
                        Cmd::DirectGet(m)
                    } else if crate::cluster::catchup::is_request(&m.subject) {
                        Cmd::ServeCatchUp(m)
                    } else if let Some(c) = m.subject.strip_prefix(&next_prefix) {
                        Cmd::Next {
                            consumer: c.to_owned(),
                            msg: m,
                        }
                    } else {
                        Cmd::Publish(m)
                    };
                    let _ = htx.send(cmd);
                }),
            )
            .map_err(|e| e.to_string())?;
        let mut stream = Stream::new(config, created, store, conn, self.js.config.domain.clone());
        stream.max_pending = self.js.config.max_pending;
        stream.limits = self.js.config.limits;
        stream.quota = Some(Arc::new(crate::quota::Quota {
            account: self.usage.clone(),
            server: self.js.usage.clone(),
            limits: *self.limits.read(),
            server_max_memory: self.js.config.max_memory,
            server_max_store: self.js.config.max_store,
        }));
        stream.server_name.clone_from(&self.js.config.server_name);
        stream.version.clone_from(&self.js.config.version);
        stream.replica = replica;
        if let Some(c) = &self.js.config.cluster {
            stream.cluster_name.clone_from(&c.name);
        }
        stream.sourcing = crate::source::Sourcing::new(
            self.js.bus.clone(),
            &self.name,
            self.js.config.domain.clone(),
            tx.clone(),
        );
        // A replicated stream's consumers start when this replica leads and has applied
        // everything before its leadership (`Cmd::LeaderReady`).
        if recover && stream.replica.is_none() {
            recover_consumers(&mut stream);
        }
        {
            let mut r = roles.write();
            *r = stream.subscribe().map_err(|e| e.description.clone())?;
        }
        let shared: Arc<RwLock<Shared>> = stream.shared.clone();
        let replica = stream.replica.clone();
        tokio::spawn(stream.run(rx));
        Ok(Arc::new(StreamHandle {
            name,
            tx,
            shared,
            replica,
        }))
    }

    /// The configs of the account's streams other than `name` (for overlap checks).
    fn other_configs(&self, name: &str) -> Vec<StreamConfig> {
        self.streams()
            .iter()
            .filter(|s| s.name != name)
            .map(|s| s.shared.read().config.clone())
            .collect()
    }

    pub fn stream(&self, name: &str) -> Option<Arc<StreamHandle>> {
        self.streams.read().get(name).cloned()
    }

    pub fn streams(&self) -> Vec<Arc<StreamHandle>> {
        self.streams.read().values().cloned().collect()
    }

    /// An API call answered by the named stream's actor.
    pub async fn stream_call(&self, name: &str, call: Call) -> Result<Value, ApiError> {
        let Some(s) = self.stream(name) else {
            return Err(errors::stream_not_found());
        };
        s.call(call).await
    }

    /// A pull request: handed to its stream (which answers 404 itself if unknown).
    pub fn pull_request(&self, stream: &str, consumer: &str, msg: Msg) {
        match self.stream(stream) {
            Some(s) => {
                let _ = s.tx.send(Cmd::Next {
                    consumer: consumer.to_owned(),
                    msg,
                });
            }
            None => {
                if let Some(reply) = &msg.reply {
                    let hdr = crate::headers::Builder::status(404, "Stream Not Found").build();
                    self.conn.publish(reply, None, &hdr, &[]);
                }
            }
        }
    }

    /// `$JS.API.STREAM.CREATE.<name>`; `origin` is the remote cluster the request came
    /// from, if any (where a clustered stream is placed by default).
    pub async fn create_stream(
        self: &Arc<Self>,
        subject_name: &str,
        config: StreamConfig,
        pedantic: bool,
        origin: Option<String>,
    ) -> Result<Value, ApiError> {
        if config.name != subject_name {
            return Err(errors::stream_mismatch());
        }
        if subject_name.contains(['\\', '/']) {
            return Err(errors::stream_name_contains_path_separators());
        }
        if config.sealed {
            return Err(errors::stream_invalid_config(
                "stream configuration for create can not be sealed",
            ));
        }
        if config.mirror_direct && config.mirror.is_none() {
            return Err(errors::stream_invalid_config(
                "stream has no mirror but does have mirror direct",
            ));
        }
        // Clustered: the meta group serialises creation; this server may run a replica
        // of the new stream, which takes the admin lock while this call waits for it.
        if let Some(cluster) = self.js.cluster().cloned() {
            let others = crate::cluster::meta::placed_configs(&cluster, &self.name, &config.name);
            let limits = crate::validate::ServerLimits {
                clustered: true,
                ..self.js.config.limits
            };
            let mut config = crate::validate::stream_create(&config, &others, &limits, pedantic)?;
            stored_form(&mut config)?;
            self.check_stream_limits(&config, None)?;
            crate::validate::stream_add(&config, &others)?;
            return crate::cluster::meta::create_stream(&cluster, self, config, origin).await;
        }
        let _admin = self.admin.lock().await;
        let others = self.other_configs(&config.name);
        let limits = &self.js.config.limits;
        let mut config = crate::validate::stream_create(&config, &others, limits, pedantic)?;
        stored_form(&mut config)?;
        if let Some(existing) = self.stream(&config.name) {
            let same = existing.shared.read().config == config;
            if same {
                return existing
                    .call(Call::Info {
                        deleted: false,
                        subjects: None,
                        offset: 0,
                        cluster: false,
                    })
                    .await;
            }
            return Err(errors::stream_name_exist());
        }
        self.check_stream_limits(&config, None)?;
        crate::validate::stream_add(&config, &others)?;
        let created = crate::time::now_nanos();
        let store = self
            .open_store(&config)
            .await
            .map_err(|e| errors::stream_create(e.to_string()))?;
        let first = config.first_seq;
        let rec = serde_json::to_vec(&StreamRecord {
            config: config.clone(),
            created,
        })
        .map_err(|e| errors::stream_create(e.to_string()))?;
        {
            let store = store.clone();
            blocking(move || {
                if first > 1 {
                    store.skip_to(first)?;
                }
                store.put_meta(&[(STREAM_RECORD.to_owned(), Some(rec))])
            })
            .await
            .map_err(|e| errors::stream_create(e.to_string()))?;
        }
        let handle = match self.spawn_stream(config.clone(), created, store.clone(), false, None) {
            Ok(h) => h,
            Err(e) => {
                let _ = blocking(move || store.destroy()).await;
                return Err(errors::stream_create(e));
            }
        };
        self.streams
            .write()
            .insert(config.name.clone(), handle.clone());
        self.advisory_stream("CREATED", &config.name, "create");
        handle
            .call(Call::Info {
                deleted: false,
                subjects: None,
                offset: 0,
                cluster: false,
            })
            .await
            .map(|mut v| {
                if let Some(o) = v.as_object_mut() {
                    o.insert("did_create".into(), Value::Bool(true));
                }
                v
            })
    }

    /// `STREAM.RESTORE`'s checks before the upload (nats-server's order): the config as a
    /// create checks it, a name not in use (10130), the account's limits.
    pub(crate) fn restore_check(&self, config: StreamConfig) -> Result<StreamConfig, ApiError> {
        let others = self.other_configs(&config.name);
        let limits = &self.js.config.limits;
        let mut config = crate::validate::stream_config(&config, &others, limits, false)?;
        stored_form(&mut config)?;
        self.check_stream_limits(&config, None)?;
        if self.stream(&config.name).is_some() {
            return Err(errors::stream_name_exist_restore_failed());
        }
        Ok(config)
    }

    /// `STREAM.RESTORE`'s last step (`snapshot.rs`): starts `config` as a stream on a
    /// restored store, with the consumers the store has records for. `place` hands the
    /// store over once the name is known to be free (a file store is moved into the
    /// directory it is given). The store's config record must name the same stream;
    /// `config` replaces it and its creation time stays (nats-server: the restore
    /// request's config is the stream's new identity).
    pub(crate) async fn adopt_stream(
        self: &Arc<Self>,
        config: StreamConfig,
        place: impl FnOnce(PathBuf) -> Result<Arc<dyn Store>, crate::store::StoreError> + Send + 'static,
    ) -> Result<Value, ApiError> {
        let _admin = self.admin.lock().await;
        if self.stream(&config.name).is_some() {
            return Err(errors::stream_name_exist_restore_failed());
        }
        let others: Vec<StreamConfig> = self
            .streams()
            .iter()
            .map(|s| s.shared.read().config.clone())
            .collect();
        crate::validate::stream_add(&config, &others)?;
        let dir = self.dir().join(&config.name);
        let store = blocking(move || place(dir))
            .await
            .map_err(errors::stream_restore)?;
        let name = config.name.clone();
        let started = async {
            let stored = store
                .meta(STREAM_RECORD)
                .map_err(errors::stream_restore)?
                .into_iter()
                .find(|(k, _)| k == STREAM_RECORD)
                .ok_or_else(|| errors::stream_restore("no stream config in the snapshot"))?;
            let stored: StreamRecord = serde_json::from_slice(&stored.1)
                .map_err(|e| errors::stream_restore(format!("stream config: {e}")))?;
            if stored.config.name != name {
                return Err(errors::stream_restore("stream names do not match"));
            }
            let created = stored.created;
            let rec = serde_json::to_vec(&StreamRecord {
                config: config.clone(),
                created,
            })
            .map_err(errors::stream_restore)?;
            let limits = limits_of(&config);
            let s = store.clone();
            blocking(move || {
                s.put_meta(&[(STREAM_RECORD.to_owned(), Some(rec))])?;
                s.set_limits(limits)
            })
            .await
            .map_err(errors::stream_restore)?;
            self.spawn_stream(config, created, store.clone(), true, None)
                .map_err(errors::stream_restore)
        }
        .await;
        let handle = match started {
            Ok(h) => h,
            Err(e) => {
                let _ = blocking(move || store.destroy()).await;
                return Err(e);
            }
        };
        self.streams.write().insert(name, handle.clone());
        handle
            .call(Call::Info {
                deleted: false,
                subjects: None,
                offset: 0,
                cluster: false,
            })
            .await
    }

    /// `$JS.API.STREAM.UPDATE.<name>`.
    pub async fn update_stream(
        self: &Arc<Self>,
        subject_name: &str,
        config: StreamConfig,
        pedantic: bool,
    ) -> Result<Value, ApiError> {
        if let Some(cluster) = self.js.cluster().cloned() {
            let others = crate::cluster::meta::placed_configs(&cluster, &self.name, &config.name);
            let limits = crate::validate::ServerLimits {
                clustered: true,
                ..self.js.config.limits
            };
            let config = crate::validate::stream_config(&config, &others, &limits, pedantic)?;
            if config.name != subject_name {
                return Err(errors::stream_mismatch());
            }
            let Some(old) = crate::cluster::meta::placed_config(&cluster, &self.name, subject_name)
            else {
                return Err(errors::stream_not_found());
            };
            let mut config = crate::validate::stream_update_in(&old, &config, true)?;
            stored_form(&mut config)?;
            crate::validate::subjects_overlap(&config, &others)?;
            return crate::cluster::meta::update_stream(&cluster, self, config).await;
        }
        let _admin = self.admin.lock().await;
        let others = self.other_configs(&config.name);
        // nats-server checks the config before the name in the subject and the stream.
        let limits = &self.js.config.limits;
        let config = crate::validate::stream_config(&config, &others, limits, pedantic)?;
        if config.name != subject_name {
            return Err(errors::stream_mismatch());
        }
        let Some(handle) = self.stream(subject_name) else {
            return Err(errors::stream_not_found());
        };
        let old = handle.shared.read().config.clone();
        let mut config = crate::validate::stream_update(&old, &config)?;
        stored_form(&mut config)?;
        self.check_stream_limits(&config, Some(&old))?;
        crate::validate::subjects_overlap(&config, &others)?;
        let out = handle.call(Call::Update(Box::new(config.clone()))).await;
        if out.is_ok() {
            self.advisory_stream("UPDATED", &config.name, "update");
        }
        out
    }

    /// `$JS.API.STREAM.DELETE.<name>`.
    pub async fn delete_stream(self: &Arc<Self>, name: &str) -> Result<Value, ApiError> {
        if let Some(cluster) = self.js.cluster().cloned() {
            return crate::cluster::meta::delete_stream(&cluster, self, name).await;
        }
        let _admin = self.admin.lock().await;
        let Some(handle) = self.streams.write().remove(name) else {
            return Err(errors::stream_not_found());
        };
        let (done_tx, done_rx) = oneshot::channel();
        let _ = handle.tx.send(Cmd::Stop {
            delete: true,
            done: done_tx,
        });
        let _ = done_rx.await;
        self.advisory_stream("DELETED", name, "delete");
        Ok(json!({"success": true}))
    }

    /// A new (or, for a file stream, existing) store for `config`.
    async fn open_store(&self, config: &StreamConfig) -> Result<Arc<dyn Store>, StoreError> {
        Ok(match config.storage {
            StorageType::Memory => Arc::new(MemoryStore::new(limits_of(config))),
            StorageType::File => {
                let path = self.dir().join(&config.name);
                let cache = self.js.config.store_cache_bytes;
                let limits = limits_of(config);
                let (fs, _) = blocking(move || FileStore::open(&path, limits, cache)).await?;
                Arc::new(fs)
            }
        })
    }

    /// Runs here the stream the meta group placed on this server (or applies its new
    /// config): opens or creates its store, starts its Raft group when replicated, and
    /// its actor, which stores what the group applies.
    pub(crate) async fn attach(
        self: &Arc<Self>,
        cluster: &Arc<crate::cluster::Cluster>,
        a: &crate::cluster::machine::StreamAssignment,
    ) -> Result<(), String> {
        let config: StreamConfig =
            serde_json::from_str(&a.config).map_err(|e| format!("stream config: {e}"))?;
        let _admin = self.admin.lock().await;
        if let Some(h) = self.stream(&a.stream) {
            if h.shared.read().config != config {
                h.call(Call::Update(Box::new(config)))
                    .await
                    .map_err(|e| e.description)?;
            }
            return Ok(());
        }
        let store = self.open_store(&config).await.map_err(|e| e.to_string())?;
        let rec = serde_json::to_vec(&StreamRecord {
            config: config.clone(),
            created: a.created,
        })
        .map_err(|e| e.to_string())?;
        {
            let store = store.clone();
            let first = config.first_seq;
            blocking(move || {
                let st = store.state();
                if first > 1 && st.msgs == 0 && st.last_seq == 0 {
                    store.skip_to(first)?;
                }
                store.put_meta(&[(STREAM_RECORD.to_owned(), Some(rec))])
            })
            .await
            .map_err(|e| e.to_string())?;
        }
        let group = cluster.open_stream_group(a).await?;
        let replica = cluster.replica(&group, &self.name, &a.stream);
        let handle = self.spawn_stream(config, a.created, store, true, Some(replica))?;
        let tx = handle.tx.clone();
        group.state.with_machine_mut(|m| {
            m.set_sink(Box::new(move |applied| match applied {
                crate::cluster::machine::Applied::Msgs { first_seq, msgs } => {
                    let _ = tx.send(Cmd::Replicated { first_seq, msgs });
                }
                crate::cluster::machine::Applied::Op { index, op } => {
                    let _ = tx.send(Cmd::ReplicatedOp { index, op });
                }
                crate::cluster::machine::Applied::TermStart { term, node } => {
                    let _ = tx.send(Cmd::LeaderReady { term, node });
                }
                crate::cluster::machine::Applied::Reset { last_seq } => {
                    let _ = tx.send(Cmd::CatchUp { upto: last_seq });
                }
                _ => {}
            }));
        });
        self.streams.write().insert(a.stream.clone(), handle);
        tracing::info!(account = %self.name, stream = %a.stream, group = %a.group, "stream replica started");
        Ok(())
    }

    /// Removes the stream the meta group deleted: its actor, its store and its group.
    pub(crate) async fn detach(
        self: &Arc<Self>,
        cluster: &crate::cluster::Cluster,
        name: &str,
        group: &str,
    ) {
        let _admin = self.admin.lock().await;
        let handle = self.streams.write().remove(name);
        if let Some(handle) = handle {
            let (done_tx, done_rx) = oneshot::channel();
            let _ = handle.tx.send(Cmd::Stop {
                delete: true,
                done: done_tx,
            });
            let _ = done_rx.await;
            if handle.is_leader() {
                self.advisory_stream("DELETED", name, "delete");
            }
        }
        if let Err(e) = cluster.manager.remove_group(group).await {
            tracing::warn!(group, "removing a deleted stream's group: {e}");
        }
    }

    /// Stops every stream (server shutdown); their state is already durable.
    pub async fn shutdown(&self) {
        let streams: Vec<_> = std::mem::take(&mut *self.streams.write())
            .into_values()
            .collect();
        for s in streams {
            let (done_tx, done_rx) = oneshot::channel();
            let _ = s.tx.send(Cmd::Stop {
                delete: false,
                done: done_tx,
            });
            let _ = done_rx.await;
        }
    }

    fn check_stream_limits(
        &self,
        config: &StreamConfig,
        old: Option<&StreamConfig>,
    ) -> Result<(), ApiError> {
        let l = *self.limits.read();
        if old.is_none() && l.max_streams > 0 && self.streams.read().len() as i64 >= l.max_streams {
            return Err(errors::maximum_streams_limit());
        }
        let (max_stream, max_total, server_total, is_mem) = match config.storage {
            StorageType::Memory => (
                l.memory_max_stream_bytes,
                l.max_memory,
                self.js.config.max_memory,
                true,
            ),
            StorageType::File => (
                l.storage_max_stream_bytes,
                l.max_store,
                self.js.config.max_store,
                false,
            ),
        };
        if l.max_bytes_required && config.max_bytes <= 0 {
            return Err(errors::stream_max_bytes_required());
        }
        if max_stream > 0 && config.max_bytes > max_stream {
            return Err(errors::stream_max_stream_bytes_exceeded());
        }
        if config.max_bytes > 0 {
            let reserved: i64 = self
                .streams()
                .iter()
                .filter(|s| Some(s.name.as_str()) != old.map(|o| o.name.as_str()))
                .map(|s| s.shared.read().config.clone())
                .filter(|c| (c.storage == StorageType::Memory) == is_mem && c.max_bytes > 0)
                .map(|c| c.max_bytes)
                .sum();
            if (max_total > 0 && reserved + config.max_bytes > max_total)
                || (server_total > 0 && reserved + config.max_bytes > server_total)
            {
                return Err(if is_mem {
                    errors::memory_resources_exceeded()
                } else {
                    errors::storage_resources_exceeded()
                });
            }
        }
        Ok(())
    }

    /// `$JS.API.STREAM.NAMES`.
    pub fn stream_names(&self, req: &types::StreamNamesRequest) -> Value {
        let names: Vec<String> = if let Some(cluster) = self.js.cluster() {
            crate::cluster::meta::stream_names(cluster, self, req)
        } else {
            self.local_stream_names(req)
        };
        let total = names.len();
        let offset = usize::try_from(req.offset).unwrap_or(0);
        let page: Vec<String> = names.into_iter().skip(offset).take(API_LIMIT).collect();
        json!({"total": total, "offset": offset, "limit": API_LIMIT,
            "streams": if page.is_empty() { Value::Null } else { json!(page) }})
    }

    fn local_stream_names(&self, req: &types::StreamNamesRequest) -> Vec<String> {
        self.streams()
            .iter()
            .filter(
                |s| match Some(req.subject.as_str()).filter(|x| !x.is_empty()) {
                    None => true,
                    Some(f) => crate::stream::Stream::subjects(&s.shared.read().config)
                        .iter()
                        .any(|sub| crate::subject::collide(f, sub)),
                },
            )
            .map(|s| s.name.clone())
            .collect()
    }

    /// `$JS.API.STREAM.LIST`.
    pub async fn stream_list(self: &Arc<Self>, req: &types::StreamNamesRequest) -> Value {
        if let Some(cluster) = self.js.cluster().cloned() {
            let names = crate::cluster::meta::stream_names(&cluster, self, req);
            let total = names.len();
            let offset = usize::try_from(req.offset).unwrap_or(0);
            let mut infos = Vec::new();
            let mut missing = Vec::new();
            for name in names.iter().skip(offset).take(LIST_LIMIT) {
                match crate::cluster::meta::stream_info(self, name).await {
                    Ok(v) => infos.push(v),
                    Err(_) => missing.push(name.clone()),
                }
            }
            let mut out =
                json!({"total": total, "offset": offset, "limit": LIST_LIMIT, "streams": infos});
            if !missing.is_empty()
                && let Some(o) = out.as_object_mut()
            {
                o.insert("missing".into(), json!(missing));
            }
            return out;
        }
        let streams: Vec<Arc<StreamHandle>> = self
            .streams()
            .into_iter()
            .filter(
                |s| match Some(req.subject.as_str()).filter(|x| !x.is_empty()) {
                    None => true,
                    Some(f) => crate::stream::Stream::subjects(&s.shared.read().config)
                        .iter()
                        .any(|sub| crate::subject::collide(f, sub)),
                },
            )
            .collect();
        let total = streams.len();
        let offset = usize::try_from(req.offset).unwrap_or(0);
        let mut infos = Vec::new();
        for s in streams.iter().skip(offset).take(LIST_LIMIT) {
            if let Ok(v) = s
                .call(Call::Info {
                    deleted: false,
                    subjects: None,
                    offset: 0,
                    cluster: true,
                })
                .await
            {
                infos.push(v);
            }
        }
        json!({"total": total, "offset": offset, "limit": LIST_LIMIT, "streams": infos})
    }

    /// Bytes used by this account's streams: (memory, storage).
    pub fn usage(&self) -> (u64, u64) {
        let mut mem = 0;
        let mut disk = 0;
        for s in self.streams() {
            let sh = s.shared.read();
            match sh.config.storage {
                StorageType::Memory => mem += sh.state.bytes,
                StorageType::File => disk += sh.state.bytes,
            }
        }
        (mem, disk)
    }

    /// Bytes reserved by `max_bytes`: (memory, storage).
    pub fn reserved(&self) -> (u64, u64) {
        let mut mem = 0u64;
        let mut disk = 0u64;
        for s in self.streams() {
            let sh = s.shared.read();
            if sh.config.max_bytes > 0 {
                match sh.config.storage {
                    StorageType::Memory => mem += sh.config.max_bytes.unsigned_abs(),
                    StorageType::File => disk += sh.config.max_bytes.unsigned_abs(),
                }
            }
        }
        (mem, disk)
    }

    pub fn num_consumers(&self) -> usize {
        self.streams()
            .iter()
            .map(|s| s.shared.read().consumers)
            .sum()
    }

    /// `$JS.API.INFO`.
    pub fn info(&self) -> Value {
        let (mem, disk) = self.usage();
        let (rmem, rdisk) = self.reserved();
        let l = *self.limits.read();
        let limits = json!({
            "max_memory": l.max_memory,
            "max_storage": l.max_store,
            "max_streams": l.max_streams,
            "max_consumers": l.max_consumers,
            "max_ack_pending": l.max_ack_pending,
            "memory_max_stream_bytes": l.memory_max_stream_bytes,
            "storage_max_stream_bytes": l.storage_max_stream_bytes,
            "max_bytes_required": l.max_bytes_required,
        });
        let mut v = json!({
            "memory": mem,
            "storage": disk,
            "reserved_memory": rmem,
            "reserved_storage": rdisk,
            "streams": self.streams.read().len(),
            "consumers": self.num_consumers(),
            "limits": limits,
        });
        if let Some(o) = v.as_object_mut() {
            if let Some(d) = &self.js.config.domain {
                o.insert("domain".into(), Value::String(d.clone()));
            }
            o.insert(
                "api".into(),
                json!({
                    "level": crate::API_LEVEL,
                    "total": self.js.api_total.load(std::sync::atomic::Ordering::Relaxed),
                    "errors": self.js.api_errors.load(std::sync::atomic::Ordering::Relaxed),
                }),
            );
        }
        v
    }

    fn advisory_stream(&self, what: &str, stream: &str, action: &str) {
        let body = json!({
            "type": "io.nats.jetstream.advisory.v1.stream_action",
            "id": crate::time::nuid(),
            "timestamp": crate::time::rfc3339(crate::time::now_nanos()),
            "stream": stream,
            "action": action,
        });
        if let Ok(b) = serde_json::to_vec(&body) {
            self.conn.publish(
                &format!("$JS.EVENT.ADVISORY.STREAM.{what}.{stream}"),
                None,
                &[],
                &b,
            );
        }
    }
}

/// A checked config as it is stored: refused if it needs a newer API level than natrix
/// implements, with nats-server's static metadata.
fn stored_form(config: &mut StreamConfig) -> Result<(), ApiError> {
    if u64::from(config.required_api_level()) > crate::API_LEVEL {
        return Err(errors::required_api_level());
    }
    config.set_static_metadata();
    Ok(())
}

/// Names per page of `STREAM.NAMES` and `CONSUMER.NAMES` (nats-server's `JSApiNamesLimit`).
pub const API_LIMIT: usize = 1024;
/// Infos per page of `STREAM.LIST` and `CONSUMER.LIST` (nats-server's `JSApiListLimit`).
pub const LIST_LIMIT: usize = 256;

/// Brings back the consumers a stream's store has records for.
pub(crate) fn recover_consumers(stream: &mut Stream) {
    let Ok(records) = stream.store.meta("consumer/") else {
        return;
    };
    let mut configs: BTreeMap<String, ConsumerRecord> = BTreeMap::new();
    let mut states: BTreeMap<String, SavedState> = BTreeMap::new();
    for (key, value) in records {
        let Some(rest) = key.strip_prefix("consumer/") else {
            continue;
        };
        if let Some(name) = rest.strip_suffix("/config") {
            match serde_json::from_slice::<ConsumerRecord>(&value) {
                Ok(r) => {
                    configs.insert(name.to_owned(), r);
                }
                Err(e) => {
                    tracing::error!(stream = %stream.name, consumer = name, "consumer config record: {e}")
                }
            }
        } else if let Some(name) = rest.strip_suffix("/state")
            && let Ok(s) = serde_json::from_slice::<SavedState>(&value)
        {
            states.insert(name.to_owned(), s);
        }
    }
    for (name, rec) in configs {
        let ctx = ConsumerCtx {
            stream: &stream.name,
            config: &stream.config,
            store: stream.store.as_ref(),
            conn: stream.conn.as_ref(),
        };
        let saved = states.remove(&name).unwrap_or_default();
        let mut c = Consumer::restore(name.clone(), rec.config, rec.created, saved, &ctx);
        c.set_origin(crate::stream_api::origin(stream));
        stream.consumers.insert(name, c);
    }
}
