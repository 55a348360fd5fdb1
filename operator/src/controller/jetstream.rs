//! The reconcilers of the JetStream assets: `Stream`, `Consumer`, `KeyValue` and
//! `ObjectStore`, one generic loop over the [`Asset`] trait.
//!
//! One reconcile, in order:
//!
//! 1. the finalizer (kube's `finalizer` helper: added before anything is created, removed
//!    once the cleanup succeeded);
//! 2. the wanted config from the spec ([`crate::jetstream::config`]); a spec that can not
//!    become one is reported (`InvalidSpec`) and nothing else happens;
//! 3. the connection: a `natsClusterRef` is looked up (`GET` the NatsCluster: missing,
//!    being deleted, or without JetStream is reported in words) and becomes its client
//!    Service's URL; `credentialsSecret` is read (`GET` the Secret);
//! 4. `INFO` on the server: missing → `CREATE`; present → compare. A spec changed since
//!    the last reconcile (`metadata.generation` ≠ `status.observedGeneration`), or a
//!    server config that drifted from the spec (someone ran `nats stream edit`), is
//!    `UPDATE`d, unless `preventUpdate`. The server's refusal is shown in the status as
//!    the server wrote it;
//! 5. events for what changed, and the status (`Ready` with a reason and a message, and
//!    `observedGeneration`), written only when it changed;
//! 6. requeue after [`JsContext::sync_interval`]: that periodic look is the drift check.
//!
//! Deleting the resource deletes the asset on the server unless `preventDelete`. When
//! the server is gone for good (its NatsCluster deleted, its Secret deleted with the
//! namespace) there is nothing to delete and the finalizer is released at once, so a
//! namespace deletion never hangs on it (the deadlock that made NACK drop finalizers).
//! A server that is only unreachable keeps the finalizer, retried with backoff.

use std::collections::HashMap;
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::NamespaceResourceScope;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::finalizer::{self, Event as FinalizerEvent};
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;

use crate::crd::NatsCluster;
use crate::crd::jetstream::{
    ConnectionSpec, Consumer, JetStreamStatus, KeyValue, ObjectStore, Stream,
};
use crate::jetstream::api::{ApiError, JetStreamApi};
use crate::jetstream::config::{self, SpecError, drift};
use crate::jetstream::connect::{Auth, ConnectError, Pool, Target};
use crate::metrics::Metrics;
use crate::render::names;
use crate::telemetry;

/// How often a settled asset is compared with the server (the drift check), as NACK's
/// `--sync-interval` (1 minute there).
pub const SYNC_INTERVAL: Duration = Duration::from_secs(30);
/// How often an asset waiting for something outside its spec (its NatsCluster, a Secret)
/// is looked at again.
pub const REQUEUE_WAITING: Duration = Duration::from_secs(15);
/// First retry after a failure to reach the server; doubles up to [`BACKOFF_MAX`].
pub const BACKOFF_BASE: Duration = Duration::from_secs(2);
pub const BACKOFF_MAX: Duration = Duration::from_secs(120);

/// The one condition type, as NACK.
pub const READY: &str = "Ready";

/// Metadata key on every stream and consumer the operator makes: `<Kind>/<namespace>/<name>`
/// of the resource. An asset on the server without it (made by hand, by NACK, by another
/// resource) is not touched, neither updated nor deleted, unless the resource carries the
/// annotation [`ADOPT_ANNOTATION`].
pub const OWNER_KEY: &str = "natrix.io/owner";
/// `natrix.io/adopt: "true"` on a resource: take over an asset of the same name that
/// exists on the server already (moving from NACK, or from streams made by hand).
pub const ADOPT_ANNOTATION: &str = "natrix.io/adopt";

/// Errors that retry with backoff: the Kubernetes API failing, or a server that does not
/// answer while the asset must be deleted. Everything the user can fix is a condition.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("{0} has no namespace")]
    NoNamespace(String),
    #[error("deleting {what} on the server: {message}")]
    Cleanup { what: String, message: String },
    #[error("finalizer: {0}")]
    Finalizer(#[source] Box<finalizer::Error<Error>>),
}

impl Error {
    /// Low-cardinality label for the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { .. } => "api",
            Error::NoNamespace(_) => "no_namespace",
            Error::Cleanup { .. } => "cleanup",
            Error::Finalizer(_) => "finalizer",
        }
    }
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found() || s.code == 404)
}

/// What the asset is on the server.
#[derive(Debug, Clone, PartialEq)]
pub enum Wanted {
    /// A stream (also the stream behind a bucket) and its config.
    Stream(Value),
    /// A durable consumer of `stream`.
    Consumer { stream: String, config: Value },
}

impl Wanted {
    /// The config sent to the server.
    pub fn config(&self) -> &Value {
        match self {
            Wanted::Stream(c) | Wanted::Consumer { config: c, .. } => c,
        }
    }

    /// Stamps the owner into the config's metadata (see [`OWNER_KEY`]).
    pub fn with_owner(mut self, owner: &str) -> Self {
        let c = match &mut self {
            Wanted::Stream(c) | Wanted::Consumer { config: c, .. } => c,
        };
        if !c["metadata"].is_object() {
            c["metadata"] = Value::Object(serde_json::Map::new());
        }
        c["metadata"][OWNER_KEY] = Value::String(owner.to_string());
        self
    }

    /// How events and messages name it: `stream ORDERS`, `consumer ORDERS/proc`.
    pub fn describe(&self) -> String {
        match self {
            Wanted::Stream(c) => format!("stream {}", c["name"].as_str().unwrap_or_default()),
            Wanted::Consumer { stream, config } => format!(
                "consumer {stream}/{}",
                config["durable_name"].as_str().unwrap_or_default()
            ),
        }
    }
}

/// A JetStream asset resource.
pub trait Asset:
    Resource<DynamicType = (), Scope = NamespaceResourceScope>
    + Clone
    + Debug
    + Serialize
    + DeserializeOwned
    + Send
    + Sync
    + 'static
{
    /// The finalizer that guards the server-side delete.
    const FINALIZER: &'static str;
    fn connection(&self) -> &ConnectionSpec;
    fn prevent_delete(&self) -> bool;
    fn prevent_update(&self) -> bool;
    fn js_status(&self) -> Option<&JetStreamStatus>;
    /// The config the server should hold.
    fn wanted(&self) -> Result<Wanted, SpecError>;
}

/// The accessors every asset kind has alike: its spec's connection and flags, its status.
macro_rules! asset_common {
    () => {
        fn connection(&self) -> &ConnectionSpec {
            &self.spec.connection
        }
        fn prevent_delete(&self) -> bool {
            self.spec.prevent_delete
        }
        fn prevent_update(&self) -> bool {
            self.spec.prevent_update
        }
        fn js_status(&self) -> Option<&JetStreamStatus> {
            self.status.as_ref()
        }
    };
}

impl Asset for Stream {
    const FINALIZER: &'static str = "stream.natrix.io/finalizer";
    asset_common!();
    fn wanted(&self) -> Result<Wanted, SpecError> {
        config::stream_config(&self.spec).map(Wanted::Stream)
    }
}

impl Asset for Consumer {
    const FINALIZER: &'static str = "consumer.natrix.io/finalizer";
    asset_common!();
    fn wanted(&self) -> Result<Wanted, SpecError> {
        config::consumer_config(&self.spec).map(|config| Wanted::Consumer {
            stream: self.spec.stream_name.clone(),
            config,
        })
    }
}

impl Asset for KeyValue {
    const FINALIZER: &'static str = "keyvalue.natrix.io/finalizer";
    asset_common!();
    fn wanted(&self) -> Result<Wanted, SpecError> {
        config::kv_stream_config(&self.spec).map(Wanted::Stream)
    }
}

impl Asset for ObjectStore {
    const FINALIZER: &'static str = "objectstore.natrix.io/finalizer";
    asset_common!();
    fn wanted(&self) -> Result<Wanted, SpecError> {
        config::object_stream_config(&self.spec).map(Wanted::Stream)
    }
}

/// The URL of a NatsCluster's client Service from `(name, namespace)`.
pub type ClusterUrl = Arc<dyn Fn(&str, &str) -> String + Send + Sync>;

/// What the JetStream reconcilers share.
pub struct JsContext {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub pool: Pool,
    /// The clock for condition transition times (fixed in tests).
    pub now: Arc<dyn Fn() -> Time + Send + Sync>,
    /// The URL of a NatsCluster's client Service from `(name, namespace)`: its cluster
    /// DNS name; tests point it at a server on loopback.
    pub cluster_url: ClusterUrl,
    pub sync_interval: Duration,
    failures: Mutex<HashMap<String, u32>>,
}

impl JsContext {
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: names::FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            pool: Pool::default(),
            now: Arc::new(|| Time(k8s_openapi::jiff::Timestamp::now())),
            cluster_url: Arc::new(names::client_url),
            sync_interval: SYNC_INTERVAL,
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The delay before the next retry of `key`, counting this failure.
    fn backoff(&self, key: &str) -> Duration {
        let mut f = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = f.entry(key.to_string()).or_insert(0);
        *n = n.saturating_add(1);
        let factor = 1u32 << (*n - 1).min(10);
        (BACKOFF_BASE * factor).min(BACKOFF_MAX)
    }

    fn succeeded(&self, key: &str) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

/// This resource's claim on its asset (see [`OWNER_KEY`]).
pub fn claim_of<K: Asset>(obj: &K) -> Claim {
    Claim {
        owner: key_of(obj),
        adopt: obj
            .annotations()
            .get(ADOPT_ANNOTATION)
            .is_some_and(|v| v == "true"),
    }
}

fn key_of<K: Asset>(obj: &K) -> String {
    format!(
        "{}/{}/{}",
        K::kind(&()),
        obj.namespace().unwrap_or_default(),
        obj.name_any()
    )
}

/// Why the asset is not (or not yet) what the spec says; becomes `Ready: False`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub reason: &'static str,
    pub message: String,
}

fn problem(reason: &'static str, message: impl Into<String>) -> Problem {
    Problem {
        reason,
        message: message.into(),
    }
}

/// Where to connect, from the resource's connection fields; `Ok(Err(problem))` for what
/// the user has to fix (or wait for).
pub async fn resolve_target(
    ctx: &JsContext,
    ns: &str,
    conn: &ConnectionSpec,
) -> Result<Result<Target, Problem>, Error> {
    if let Some(account) = &conn.account {
        return Ok(Err(problem(
            "AccountUnsupported",
            format!(
                "account {account:?} names a NACK Account resource, which Natrix does not have; connect with natsClusterRef or servers and credentialsSecret instead"
            ),
        )));
    }
    let mut target = Target::default();
    if let Some(r) = &conn.nats_cluster_ref {
        let cns = r.namespace.clone().unwrap_or_else(|| ns.to_string());
        let api: Api<NatsCluster> = Api::namespaced(ctx.client.clone(), &cns);
        let nc = api
            .get_opt(&r.name)
            .await
            .map_err(kube_err(format!("get NatsCluster {cns}/{}", r.name)))?;
        let Some(nc) = nc else {
            return Ok(Err(problem(
                "ClusterNotFound",
                format!("NatsCluster {cns}/{} does not exist", r.name),
            )));
        };
        if nc.metadata.deletion_timestamp.is_some() {
            return Ok(Err(problem(
                "ClusterNotFound",
                format!("NatsCluster {cns}/{} is being deleted", r.name),
            )));
        }
        if !nc.spec.jetstream.as_ref().is_some_and(|j| j.enabled) {
            return Ok(Err(problem(
                "JetStreamDisabled",
                format!(
                    "NatsCluster {cns}/{} does not enable JetStream (spec.jetstream.enabled)",
                    r.name
                ),
            )));
        }
        target.servers = vec![(ctx.cluster_url)(&r.name, &cns)];
    } else if conn.servers.is_empty() {
        return Ok(Err(problem(
            "NoServers",
            "name the server with natsClusterRef or servers",
        )));
    } else {
        target.servers.clone_from(&conn.servers);
    }
    if let Some(cs) = &conn.credentials_secret {
        let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
        let secret = api
            .get_opt(&cs.name)
            .await
            .map_err(kube_err(format!("get Secret {ns}/{}", cs.name)))?;
        let Some(secret) = secret else {
            return Ok(Err(problem(
                "SecretNotFound",
                format!("Secret {ns}/{} does not exist", cs.name),
            )));
        };
        let data = secret.data.unwrap_or_default();
        let read = |key: &String| -> Result<String, Problem> {
            let bytes = data.get(key).ok_or_else(|| {
                problem(
                    "SecretNotFound",
                    format!("Secret {ns}/{} has no key {key:?}", cs.name),
                )
            })?;
            String::from_utf8(bytes.0.clone()).map_err(|_| {
                problem(
                    "SecretNotFound",
                    format!("Secret {ns}/{} key {key:?} is not UTF-8 text", cs.name),
                )
            })
        };
        let auth = if let Some(k) = &cs.creds {
            read(k).map(Auth::Creds)
        } else if let Some(k) = &cs.nkey {
            read(k).map(Auth::Nkey)
        } else if let Some(k) = &cs.token {
            read(k).map(|t| Auth::Token(t.trim().to_string()))
        } else if let (Some(u), Some(p)) = (&cs.user, &cs.password) {
            read(u).and_then(|u| read(p).map(|p| Auth::UserPassword(u.trim().to_string(), p)))
        } else {
            Err(problem(
                "SecretNotFound",
                "credentialsSecret names none of creds, nkey, token or user",
            ))
        };
        match auth {
            Ok(a) => target.auth = a,
            Err(p) => return Ok(Err(p)),
        }
    } else if let Some(path) = &conn.creds {
        target.auth = Auth::CredsFile(path.into());
    } else if let Some(path) = &conn.nkey {
        target.auth = Auth::NkeyFile(path.into());
    }
    if let Some(tls) = &conn.tls {
        target.root_cas = tls.root_cas.iter().map(Into::into).collect();
        if let (Some(c), Some(k)) = (&tls.client_cert, &tls.client_key) {
            target.client_cert = Some((c.into(), k.into()));
        }
    }
    target.tls_first = conn.tls_first.unwrap_or(false);
    Ok(Ok(target))
}

/// The `Ready` condition the status should carry.
pub fn ready_status(
    generation: Option<i64>,
    ready: bool,
    reason: &str,
    message: &str,
    previous: Option<&JetStreamStatus>,
    now: &Time,
) -> JetStreamStatus {
    let status = if ready { "True" } else { "False" };
    let since = previous
        .and_then(|p| p.conditions.iter().find(|c| c.type_ == READY))
        .filter(|c| c.status == status)
        .map_or_else(|| now.clone(), |c| c.last_transition_time.clone());
    JetStreamStatus {
        observed_generation: generation,
        conditions: vec![Condition {
            type_: READY.to_string(),
            status: status.to_string(),
            reason: reason.to_string(),
            message: message.to_string(),
            observed_generation: generation,
            last_transition_time: since,
        }],
    }
}

async fn publish<K: Asset>(ctx: &JsContext, obj: &K, type_: EventType, reason: &str, note: String) {
    let ev = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &obj.object_ref(&())).await {
        // Events are for people; failing to write one must not stop the reconcile.
        tracing::warn!(error = %e, reason, "could not publish event");
    }
}

/// Writes the status when it differs from the one the object carries; a Warning event
/// when the object turns (or stays, with a new message) not ready.
async fn set_status<K: Asset>(
    ctx: &JsContext,
    obj: &K,
    status: JetStreamStatus,
) -> Result<(), Error> {
    let previous = obj.js_status();
    if previous == Some(&status) {
        return Ok(());
    }
    let cond = |s: Option<&JetStreamStatus>| {
        s.and_then(|s| s.conditions.first())
            .map(|c| (c.status.clone(), c.reason.clone(), c.message.clone()))
    };
    if let Some((ready, reason, message)) = cond(Some(&status))
        && ready == "False"
        && cond(previous) != Some((ready, reason.clone(), message.clone()))
    {
        publish(ctx, obj, EventType::Warning, &reason, message).await;
    }
    let ns = obj
        .namespace()
        .ok_or_else(|| Error::NoNamespace(obj.name_any()))?;
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let patch = serde_json::json!({ "status": status });
    match api
        .patch_status(
            &obj.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(kube_err(format!("update status of {}", obj.name_any()))(e)),
    }
}

/// What happened on the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    Created,
    /// Updated for a spec change.
    Updated,
    /// Put back: these keys had been changed on the server.
    Corrected(Vec<String>),
    InSync,
    /// `preventUpdate`: these keys differ and stay as they are.
    UpdatePrevented(Vec<String>),
    /// The name is taken on the server by an asset this resource does not own: its owner
    /// (`None`: made outside the operator). Nothing was changed.
    Clash(Option<String>),
}

/// Who an asset belongs to, for [`sync`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// The [`OWNER_KEY`] value of this resource.
    pub owner: String,
    /// Take over an asset owned by someone else or nobody.
    pub adopt: bool,
}

/// The [`OWNER_KEY`] value of an asset on the server.
fn owner_of(config: &Value) -> Option<String> {
    config["metadata"][OWNER_KEY].as_str().map(str::to_string)
}

/// Brings the server to `wanted`. `spec_changed`: update even without a visible drift
/// (fields the spec stopped setting go back to the server's defaults only this way).
pub async fn sync(
    api: &JetStreamApi,
    wanted: &Wanted,
    claim: Option<&Claim>,
    prevent_update: bool,
    spec_changed: bool,
) -> Result<Outcome, ApiError> {
    let current = match wanted {
        Wanted::Stream(c) => {
            api.stream_config(c["name"].as_str().unwrap_or_default())
                .await?
        }
        Wanted::Consumer { stream, config } => {
            api.consumer_config(stream, config["durable_name"].as_str().unwrap_or_default())
                .await?
        }
    };
    let Some(current) = current else {
        match wanted {
            Wanted::Stream(c) => api.stream_create(c).await?,
            Wanted::Consumer { stream, config } => api.consumer_put(stream, config, false).await?,
        };
        return Ok(Outcome::Created);
    };
    if let Some(claim) = claim {
        let theirs = owner_of(&current);
        if theirs.as_deref() != Some(claim.owner.as_str()) && !claim.adopt {
            return Ok(Outcome::Clash(theirs));
        }
    }
    let drifted = drift(wanted.config(), &current);
    if prevent_update {
        return Ok(if drifted.is_empty() {
            Outcome::InSync
        } else {
            Outcome::UpdatePrevented(drifted)
        });
    }
    if drifted.is_empty() && !spec_changed {
        return Ok(Outcome::InSync);
    }
    match wanted {
        Wanted::Stream(c) => api.stream_update(c).await?,
        Wanted::Consumer { stream, config } => api.consumer_put(stream, config, true).await?,
    };
    Ok(if spec_changed || drifted.is_empty() {
        Outcome::Updated
    } else {
        Outcome::Corrected(drifted)
    })
}

/// One reconcile of one asset.
pub async fn reconcile<K: Asset>(obj: Arc<K>, ctx: Arc<JsContext>) -> Result<Action, Error> {
    let started = Instant::now();
    let span = telemetry::start_asset_reconcile(
        &K::kind(&()),
        obj.meta().namespace.as_deref().unwrap_or(""),
        &obj.name_any(),
        obj.meta().generation,
    );
    let key = key_of(obj.as_ref());
    let ns = obj
        .namespace()
        .ok_or_else(|| Error::NoNamespace(obj.name_any()))?;
    let api: Api<K> = Api::namespaced(ctx.client.clone(), &ns);
    let result = finalizer::finalizer(&api, K::FINALIZER, obj, |event| async {
        match event {
            FinalizerEvent::Apply(o) => apply(o.as_ref(), &ctx).await,
            FinalizerEvent::Cleanup(o) => cleanup(o.as_ref(), &ctx).await,
        }
    })
    .await
    .map_err(|e| match e {
        finalizer::Error::ApplyFailed(e) | finalizer::Error::CleanupFailed(e) => e,
        other => Error::Finalizer(Box::new(other)),
    });
    let label = result.as_ref().err().map(Error::metric_label);
    ctx.metrics.observe_reconcile(started.elapsed(), label);
    telemetry::finish(
        span,
        label.unwrap_or("ok"),
        result.as_ref().err().map(ToString::to_string),
    );
    if matches!(&result, Ok(a) if *a == Action::await_change()) {
        // Deleted, or waiting for a spec change: nothing left to back off from.
        ctx.succeeded(&key);
    }
    result
}

async fn apply<K: Asset>(obj: &K, ctx: &JsContext) -> Result<Action, Error> {
    let ns = obj
        .namespace()
        .ok_or_else(|| Error::NoNamespace(obj.name_any()))?;
    let generation = obj.meta().generation;
    let previous = obj.js_status();
    let now = (ctx.now)();
    let not_ready = |reason: &str, message: &str| {
        ready_status(generation, false, reason, message, previous, &now)
    };

    let wanted = match obj.wanted() {
        Ok(w) => w,
        Err(e) => {
            set_status(ctx, obj, not_ready("InvalidSpec", &e.to_string())).await?;
            return Ok(Action::await_change());
        }
    };
    let what = wanted.describe();
    let claim = claim_of(obj);
    let wanted = wanted.with_owner(&claim.owner);
    let target = match resolve_target(ctx, &ns, obj.connection()).await? {
        Ok(t) => t,
        Err(p) => {
            set_status(ctx, obj, not_ready(p.reason, &p.message)).await?;
            return Ok(Action::requeue(REQUEUE_WAITING));
        }
    };
    let client = match ctx.pool.get(&target).await {
        Ok(c) => c,
        Err(e) => {
            let reason = match e {
                ConnectError::File { .. } | ConnectError::Credentials(_) => "BadCredentials",
                _ => "ConnectionFailed",
            };
            set_status(ctx, obj, not_ready(reason, &e.to_string())).await?;
            return Ok(Action::requeue(ctx.backoff(&key_of(obj))));
        }
    };
    let api = JetStreamApi::new(client, obj.connection().js_domain.as_deref());
    let spec_changed = previous.and_then(|p| p.observed_generation) != generation;
    match sync(
        &api,
        &wanted,
        Some(&claim),
        obj.prevent_update(),
        spec_changed,
    )
    .await
    {
        Ok(outcome) => {
            let (reason, message) = match &outcome {
                Outcome::Created => {
                    publish(
                        ctx,
                        obj,
                        EventType::Normal,
                        "Created",
                        format!("{what} created"),
                    )
                    .await;
                    ("Created", format!("{what} created on the server"))
                }
                Outcome::Updated => {
                    publish(
                        ctx,
                        obj,
                        EventType::Normal,
                        "Updated",
                        format!("{what} updated"),
                    )
                    .await;
                    ("Synced", format!("{what} matches the spec"))
                }
                Outcome::Corrected(keys) => {
                    publish(
                        ctx,
                        obj,
                        EventType::Normal,
                        "DriftCorrected",
                        format!(
                            "{what} had been changed on the server ({}); put back",
                            keys.join(", ")
                        ),
                    )
                    .await;
                    ("Synced", format!("{what} matches the spec"))
                }
                Outcome::InSync => {
                    // A fresh Created stays Created until something else happens.
                    let keep = previous
                        .and_then(|p| p.conditions.first())
                        .filter(|c| c.status == "True" && c.reason == "Created" && !spec_changed)
                        .map(|c| (c.reason.clone(), c.message.clone()));
                    match keep {
                        Some((_, m)) => ("Created", m),
                        None => ("Synced", format!("{what} matches the spec")),
                    }
                }
                Outcome::Clash(theirs) => {
                    let by = theirs.as_ref().map_or_else(
                        || "was made outside the operator".to_string(),
                        |o| format!("belongs to {o}"),
                    );
                    let message = format!(
                        "{what} already exists on the server and {by}; it is left alone (annotate this resource {ADOPT_ANNOTATION}: \"true\" to take it over)"
                    );
                    set_status(ctx, obj, not_ready("NameClash", &message)).await?;
                    return Ok(Action::requeue(ctx.backoff(&key_of(obj))));
                }
                Outcome::UpdatePrevented(keys) => (
                    "UpdatePrevented",
                    format!(
                        "{what} differs from the spec in {} and preventUpdate is set: left as it is",
                        keys.join(", ")
                    ),
                ),
            };
            let status = ready_status(generation, true, reason, &message, previous, &now);
            set_status(ctx, obj, status).await?;
            ctx.succeeded(&key_of(obj));
            Ok(Action::requeue(ctx.sync_interval))
        }
        Err(e) if e.is_refusal() => {
            // Retried with backoff: some refusals end without a spec change (a consumer
            // applied before its stream, an account limit raised).
            let message = format!("the server refused {what}: {e}");
            set_status(ctx, obj, not_ready("Refused", &message)).await?;
            Ok(Action::requeue(ctx.backoff(&key_of(obj))))
        }
        Err(e) => {
            ctx.pool.forget(&target).await;
            let message = format!("{what}: {e}");
            set_status(ctx, obj, not_ready("ServerUnavailable", &message)).await?;
            Ok(Action::requeue(ctx.backoff(&key_of(obj))))
        }
    }
}

async fn cleanup<K: Asset>(obj: &K, ctx: &JsContext) -> Result<Action, Error> {
    let ns = obj
        .namespace()
        .ok_or_else(|| Error::NoNamespace(obj.name_any()))?;
    let Ok(wanted) = obj.wanted() else {
        // A spec that never became a config never made anything on the server.
        return Ok(Action::await_change());
    };
    let what = wanted.describe();
    if obj.prevent_delete() {
        publish(
            ctx,
            obj,
            EventType::Normal,
            "DeleteSkipped",
            format!("preventDelete is set: {what} stays on the server"),
        )
        .await;
        return Ok(Action::await_change());
    }
    let target = match resolve_target(ctx, &ns, obj.connection()).await? {
        Ok(t) => t,
        Err(p) => {
            // The server (or the way to it) is gone for good: nothing to delete, and
            // holding the finalizer would only block the deletion, maybe a namespace's.
            publish(
                ctx,
                obj,
                EventType::Warning,
                "DeleteSkipped",
                format!("{what} not deleted on the server: {}", p.message),
            )
            .await;
            return Ok(Action::await_change());
        }
    };
    let fail = |message: String| Error::Cleanup {
        what: what.clone(),
        message,
    };
    let client = ctx
        .pool
        .get(&target)
        .await
        .map_err(|e| fail(e.to_string()))?;
    let api = JetStreamApi::new(client, obj.connection().js_domain.as_deref());
    // Only what this resource owns is deleted: an asset of the same name made by hand
    // (a name clash this resource never resolved) stays.
    let current = match &wanted {
        Wanted::Stream(c) => {
            api.stream_config(c["name"].as_str().unwrap_or_default())
                .await
        }
        Wanted::Consumer { stream, config } => {
            api.consumer_config(stream, config["durable_name"].as_str().unwrap_or_default())
                .await
        }
    };
    let claim = claim_of(obj);
    match current {
        Ok(Some(c)) if owner_of(&c).as_deref() != Some(claim.owner.as_str()) && !claim.adopt => {
            publish(
                ctx,
                obj,
                EventType::Normal,
                "DeleteSkipped",
                format!("{what} on the server is not this resource's: left alone"),
            )
            .await;
            return Ok(Action::await_change());
        }
        Ok(_) => {}
        Err(e) => {
            if !e.is_refusal() {
                ctx.pool.forget(&target).await;
            }
            return Err(fail(e.to_string()));
        }
    }
    let deleted = match &wanted {
        Wanted::Stream(c) => {
            api.stream_delete(c["name"].as_str().unwrap_or_default())
                .await
        }
        Wanted::Consumer { stream, config } => {
            api.consumer_delete(stream, config["durable_name"].as_str().unwrap_or_default())
                .await
        }
    };
    match deleted {
        Ok(true) => {
            publish(
                ctx,
                obj,
                EventType::Normal,
                "Deleted",
                format!("{what} deleted on the server"),
            )
            .await;
        }
        Ok(false) => {
            publish(
                ctx,
                obj,
                EventType::Normal,
                "Deleted",
                format!("{what} was already gone from the server"),
            )
            .await;
        }
        Err(e) => {
            if !e.is_refusal() {
                ctx.pool.forget(&target).await;
            }
            return Err(fail(e.to_string()));
        }
    }
    Ok(Action::await_change())
}

/// Retry with exponential backoff per asset.
pub fn error_policy<K: Asset>(obj: Arc<K>, error: &Error, ctx: Arc<JsContext>) -> Action {
    let delay = ctx.backoff(&key_of(obj.as_ref()));
    tracing::warn!(
        kind = %K::kind(&()),
        namespace = %obj.namespace().unwrap_or_default(),
        name = %obj.name_any(),
        error = %error,
        retry_in = ?delay,
        "reconcile failed"
    );
    Action::requeue(delay)
}

async fn run_one<K: Asset>(ctx: Arc<JsContext>) {
    let api: Api<K> = Api::all(ctx.client.clone());
    Controller::new(api, watcher::Config::default())
        .shutdown_on_signal()
        .run(reconcile::<K>, error_policy::<K>, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile stream error"),
            }
        })
        .await;
}

/// Runs the four controllers until their watch streams end (on shutdown).
pub async fn run(ctx: Arc<JsContext>) {
    futures::join!(
        run_one::<Stream>(ctx.clone()),
        run_one::<Consumer>(ctx.clone()),
        run_one::<KeyValue>(ctx.clone()),
        run_one::<ObjectStore>(ctx),
    );
}
