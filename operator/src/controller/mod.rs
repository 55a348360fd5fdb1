//! The NatsCluster reconciler: fetch → render → server-side apply → status.
//!
//! Every reconcile is a pure "desired state" computation ([`crate::render`]) between a
//! few reads and the writes; the only state kept between runs lives in the cluster (the
//! restart base in the ConfigMap, the status). The exact sequence of API calls is fixed
//! and asserted by the mock-API tests:
//!
//! 1. `GET` the ConfigMap (its restart base decides reload vs. restart);
//! 2. `LIST` NatsClusters in all namespaces, only when this one has a `gateways` block;
//! 3. `GET` each cert-manager Certificate a TLS listener names (its Secret is mounted); a
//!    missing one stops here (`Degraded: CertificateNotFound`, retried every 30 s);
//! 4. render; a spec the broker's parser refuses stops here: status `Degraded` with the
//!    parser's `nats.conf:line:col` message, a Warning event, and nothing else touched;
//! 5. apply ConfigMap, headless Service, client Service; `GET` the StatefulSet to see if
//!    its volume claim templates change (immutable in Kubernetes: the claims are grown in
//!    place and the StatefulSet is recreated with `propagationPolicy: Orphan`, pods keep
//!    running); apply the StatefulSet (after the ConfigMap, so new pods mount the new
//!    config); apply or delete the PDB; apply the ServiceMonitor if asked;
//! 6. `LIST` the pods and ask each running one for its config digest; `PATCH` the
//!    annotation `natrix.io/config-digest` of each pod still on an older config that it
//!    can reload (its pod template is current), which makes the kubelet refresh its
//!    config volume now;
//! 7. events for what changed, then the status.

pub mod account;
pub mod gateways;
pub mod jetstream;
pub mod operator_mode;
pub mod probe;
pub mod scale;
pub mod status;
pub mod user;

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fmt::Debug;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::apps::v1::StatefulSet;
use k8s_openapi::api::core::v1::{ConfigMap, PersistentVolumeClaim, Pod, Service};
use k8s_openapi::api::policy::v1::PodDisruptionBudget;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{
    Api, ApiResource, DeleteParams, DynamicObject, GroupVersionKind, ListParams, Patch,
    PatchParams, PropagationPolicy,
};
use kube::runtime::controller::{Action, Controller};
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::{Client, Resource, ResourceExt};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::crd::accounts::Account;
use crate::crd::{NatsCluster, NatsClusterStatus, PodConfig};
use crate::metrics::Metrics;
use crate::render::objects::{RESTART_BASE_KEY, service_monitor_resource};
use crate::render::{self, Inputs, Rendered, names};
use crate::telemetry;
use probe::ConfigProbe;
use status::Observed;

/// Requeue while the cluster is converging (pods reloading or rolling), to pick up
/// each pod's applied config digest.
pub const REQUEUE_PROGRESSING: Duration = Duration::from_secs(10);
/// Requeue while pods reload a new config (`Progressing: ConfigReloading`), for the first
/// [`RELOAD_FAST_WINDOW`] of it: servers reload within a second or two of the kubelet
/// swapping the file in, and the status should say so about as fast. A pod that refuses
/// the reload would otherwise be asked every 2 s forever, hence the window; after it, the
/// cluster is polled at [`REQUEUE_PROGRESSING`].
pub const REQUEUE_RELOADING: Duration = Duration::from_secs(2);
/// How long after `Progressing` turned true [`REQUEUE_RELOADING`] applies.
pub const RELOAD_FAST_WINDOW: Duration = Duration::from_secs(90);
/// Requeue of a settled cluster, to catch drift the watches do not see.
pub const REQUEUE_STABLE: Duration = Duration::from_secs(300);
/// First retry after an error; doubles per consecutive failure up to [`BACKOFF_MAX`].
pub const BACKOFF_BASE: Duration = Duration::from_secs(5);
pub const BACKOFF_MAX: Duration = Duration::from_secs(300);

/// Errors of one reconcile. All are transient from the operator's point of view (the API
/// server or the network), so they requeue with backoff; the user's mistakes are not
/// errors but status conditions.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("{action}: {source}")]
    Kube {
        action: String,
        #[source]
        source: kube::Error,
    },
    #[error("object to apply has no name ({0})")]
    Unnamed(&'static str),
    #[error("NatsCluster has no namespace")]
    NoNamespace,
    /// A key from a Secret the operator created could not be used (Account/User
    /// reconcilers).
    #[error("keys: {0}")]
    Keys(String),
}

impl Error {
    /// Low-cardinality label for the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Error::Kube { source, .. } => match source {
                kube::Error::Api(s) if s.is_conflict() => "conflict",
                kube::Error::Api(s) if s.is_forbidden() => "forbidden",
                kube::Error::Api(_) => "api",
                _ => "transport",
            },
            Error::Unnamed(_) => "unnamed",
            Error::NoNamespace => "no_namespace",
            Error::Keys(_) => "keys",
        }
    }
}

fn kube_err(action: impl Into<String>) -> impl FnOnce(kube::Error) -> Error {
    let action = action.into();
    move |source| Error::Kube { action, source }
}

/// A 404, whether the API server sent a `Status` (a missing object) or plain text (a
/// missing resource type, e.g. `404 page not found` when a CRD is not installed).
fn is_not_found(e: &kube::Error) -> bool {
    matches!(e, kube::Error::Api(s) if s.is_not_found() || s.code == 404)
}

/// What the reconciler needs; shared by all reconciles.
pub struct Context {
    pub client: Client,
    pub probe: Arc<dyn ConfigProbe>,
    /// Requests in the cluster's system account (`SERVER.REMOVE` on scale-down).
    pub system: Arc<dyn scale::SystemRequests>,
    pub metrics: Arc<Metrics>,
    pub recorder: Recorder,
    /// The clock for condition transition times (fixed in tests).
    pub now: Arc<dyn Fn() -> Time + Send + Sync>,
    failures: Mutex<HashMap<(String, String), u32>>,
}

impl Context {
    pub fn new(client: Client, probe: Arc<dyn ConfigProbe>, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: names::FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            probe,
            system: Arc::new(scale::NatsSystem {
                wait: Duration::from_secs(5),
            }),
            metrics,
            now: Arc::new(|| Time(k8s_openapi::jiff::Timestamp::now())),
            failures: Mutex::new(HashMap::new()),
        }
    }

    /// The delay before the next retry of `key`, counting this failure.
    fn backoff(&self, key: (String, String)) -> Duration {
        let mut f = self
            .failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let n = f.entry(key).or_insert(0);
        *n = n.saturating_add(1);
        let factor = 1u32 << (*n - 1).min(10);
        (BACKOFF_BASE * factor).min(BACKOFF_MAX)
    }

    fn succeeded(&self, key: &(String, String)) {
        self.failures
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .remove(key);
    }
}

fn key_of(nc: &NatsCluster) -> (String, String) {
    (nc.namespace().unwrap_or_default(), nc.name_any())
}

async fn apply<K>(api: &Api<K>, obj: &K, what: &'static str) -> Result<K, Error>
where
    K: Resource + Serialize + DeserializeOwned + Clone + Debug,
{
    let name = obj.meta().name.clone().ok_or(Error::Unnamed(what))?;
    api.patch(
        &name,
        &PatchParams::apply(names::FIELD_MANAGER).force(),
        &Patch::Apply(obj),
    )
    .await
    .map_err(kube_err(format!("apply {what} {name}")))
}

/// `(name, size, storage class)` of each volume claim template: what the StatefulSet API
/// refuses to change.
fn claim_shape(sts: &StatefulSet) -> Vec<(String, Option<String>, Option<String>)> {
    sts.spec
        .as_ref()
        .and_then(|s| s.volume_claim_templates.as_ref())
        .map(|claims| {
            claims
                .iter()
                .map(|c| {
                    let spec = c.spec.as_ref();
                    (
                        c.metadata.name.clone().unwrap_or_default(),
                        spec.and_then(|s| s.resources.as_ref())
                            .and_then(|r| r.requests.as_ref())
                            .and_then(|r| r.get("storage"))
                            .map(|q| q.0.clone()),
                        spec.and_then(|s| s.storage_class_name.clone()),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

async fn publish(ctx: &Context, nc: &NatsCluster, type_: EventType, reason: &str, note: String) {
    let ev = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &nc.object_ref(&())).await {
        // Events are for people; failing to write one must not stop the reconcile.
        tracing::warn!(error = %e, reason, "could not publish event");
    }
}

async fn patch_status(
    ctx: &Context,
    nc: &NatsCluster,
    status: &NatsClusterStatus,
) -> Result<(), Error> {
    let api: Api<NatsCluster> = Api::namespaced(
        ctx.client.clone(),
        &nc.namespace().ok_or(Error::NoNamespace)?,
    );
    let mut patch = serde_json::json!({ "status": status });
    // A merge patch keeps what it does not name: fields that come and go are named with
    // `null` when gone.
    for key in ["jetstream", "scaleDownReleased"] {
        if let Some(st) = patch["status"].as_object_mut() {
            st.entry(key).or_insert(serde_json::Value::Null);
        }
    }
    match api
        .patch_status(
            &nc.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => Ok(()),
        // Deleted while we reconciled: there is no one left to report to.
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(kube_err("update status")(e)),
    }
}

/// Applies everything rendered. Returns the applied StatefulSet and non-fatal warnings,
/// or why the volumes could not grow (nothing from the StatefulSet on is applied then).
async fn apply_all(
    ctx: &Context,
    nc: &NatsCluster,
    ns: &str,
    r: &Rendered,
) -> Result<Result<(StatefulSet, Vec<(String, String)>), String>, Error> {
    let client = ctx.client.clone();
    let name = nc.name_any();
    let mut warnings = Vec::new();

    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), ns);
    apply(&cms, &r.config_map, "ConfigMap").await?;
    let svcs: Api<Service> = Api::namespaced(client.clone(), ns);
    apply(&svcs, &r.headless_service, "Service").await?;
    apply(&svcs, &r.client_service, "Service").await?;

    let sts_api: Api<StatefulSet> = Api::namespaced(client.clone(), ns);
    let sts_name = names::statefulset(&name);
    let live = sts_api
        .get_opt(&sts_name)
        .await
        .map_err(kube_err(format!("get StatefulSet {sts_name}")))?;
    if let Some(live) = &live
        && claim_shape(live) != claim_shape(&r.statefulset)
        && let Err(message) = recreate_for_claims(ctx, nc, ns, live, r).await?
    {
        return Ok(Err(message));
    }
    let sts = apply(&sts_api, &r.statefulset, "StatefulSet").await?;

    let pdbs: Api<PodDisruptionBudget> = Api::namespaced(client.clone(), ns);
    match &r.pdb {
        Some(p) => {
            apply(&pdbs, p, "PodDisruptionBudget").await?;
        }
        None => match pdbs
            .delete(&names::pdb(&name), &DeleteParams::default())
            .await
        {
            Ok(_) => {}
            Err(e) if is_not_found(&e) => {}
            Err(e) => return Err(kube_err("delete PodDisruptionBudget")(e)),
        },
    }

    if let Some(sm) = &r.service_monitor {
        let api: Api<DynamicObject> = Api::namespaced_with(client, ns, &service_monitor_resource());
        match api
            .patch(
                &name,
                &PatchParams::apply(names::FIELD_MANAGER).force(),
                &Patch::Apply(sm),
            )
            .await
        {
            Ok(_) => {}
            // The Prometheus operator's CRD is not installed: everything else still works.
            Err(e) if is_not_found(&e) => warnings.push((
                "ServiceMonitorUnavailable".to_string(),
                "monitoring.serviceMonitor.enabled is set but the ServiceMonitor CRD (monitoring.coreos.com/v1) is not installed".to_string(),
            )),
            Err(e) => return Err(kube_err("apply ServiceMonitor")(e)),
        }
    }
    Ok(Ok((sts, warnings)))
}

/// Volume claim templates cannot change on a StatefulSet. Grow the existing claims in
/// place (the storage class must allow expansion) and recreate the StatefulSet without
/// deleting its pods; the new StatefulSet adopts them.
async fn recreate_for_claims(
    ctx: &Context,
    nc: &NatsCluster,
    ns: &str,
    live: &StatefulSet,
    r: &Rendered,
) -> Result<Result<(), String>, Error> {
    let client = ctx.client.clone();
    let sts_name = names::statefulset(&nc.name_any());
    let live_replicas = live.spec.as_ref().and_then(|s| s.replicas).unwrap_or(0);
    if let Some((claim, Some(size), _)) = claim_shape(&r.statefulset).into_iter().next() {
        let pvcs: Api<PersistentVolumeClaim> = Api::namespaced(client.clone(), ns);
        let patch = serde_json::json!({"spec": {"resources": {"requests": {"storage": size}}}});
        for i in 0..live_replicas.max(nc.spec.replicas) {
            let pvc = format!("{claim}-{sts_name}-{i}");
            match pvcs
                .patch(&pvc, &PatchParams::default(), &Patch::Merge(&patch))
                .await
            {
                Ok(_) => {}
                Err(e) if is_not_found(&e) => {}
                // The storage class does not allow expansion (or the size shrank): the
                // user's to fix, so the StatefulSet is left as it is.
                Err(kube::Error::Api(s)) if s.code == 403 || s.code == 422 => {
                    return Ok(Err(format!(
                        "jetstream.fileStorage: PersistentVolumeClaim {pvc} cannot be resized to {size}: {}",
                        s.message
                    )));
                }
                Err(e) => return Err(kube_err(format!("resize PersistentVolumeClaim {pvc}"))(e)),
            }
        }
    }
    let sts_api: Api<StatefulSet> = Api::namespaced(client, ns);
    let dp = DeleteParams {
        propagation_policy: Some(PropagationPolicy::Orphan),
        ..DeleteParams::default()
    };
    sts_api
        .delete(&sts_name, &dp)
        .await
        .map_err(kube_err(format!("recreate StatefulSet {sts_name}")))?;
    publish(
        ctx,
        nc,
        EventType::Normal,
        "VolumesChanged",
        format!(
            "JetStream volumes changed; StatefulSet {sts_name} recreated without touching its pods"
        ),
    )
    .await;
    Ok(Ok(()))
}

/// Each running pod's config digest, sorted by pod name, and the pods to nudge: those
/// that answer with another digest, run the current pod template's restart digest (so
/// the new config is a reload for them, not a restart they will get from the
/// StatefulSet), and do not carry the current digest as annotation yet.
async fn pod_configs(
    ctx: &Context,
    nc: &NatsCluster,
    ns: &str,
    digest: &str,
    restart_digest: &str,
) -> Result<PodsSeen, Error> {
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let selector = names::selector_string(&nc.name_any());
    let mut list = pods
        .list(&ListParams::default().labels(&selector))
        .await
        .map_err(kube_err("list pods"))?
        .items;
    list.sort_by_key(ResourceExt::name_any);
    let port = names::monitor_port(nc);
    let jetstream = nc.spec.jetstream.as_ref().is_some_and(|j| j.enabled);
    // All pods at once: a slow or dead pod costs one probe timeout, not one per pod.
    let probes = list
        .iter()
        .filter(|pod| pod.metadata.deletion_timestamp.is_none())
        .map(|pod| async move {
            let ip = pod.status.as_ref().and_then(|s| s.pod_ip.clone());
            let (reported, js) = match ip {
                Some(ip) => {
                    let js = async {
                        if !jetstream {
                            return None;
                        }
                        match ctx.probe.jetstream(&ip, port).await {
                            Ok(h) => Some(h),
                            Err(e) => {
                                tracing::debug!(pod = %pod.name_any(), error = %e, "JetStream probe failed");
                                None
                            }
                        }
                    };
                    let (digest, js) = futures::join!(ctx.probe.config_digest(&ip, port), js);
                    let digest = digest.unwrap_or_else(|e| {
                        tracing::debug!(pod = %pod.name_any(), error = %e, "config digest probe failed");
                        None
                    });
                    (digest, js)
                }
                None => (None, None),
            };
            let pod_js = jetstream.then(|| match &js {
                Some(h) if h.healthy => "Current".to_string(),
                Some(h) => h
                    .error
                    .clone()
                    .unwrap_or_else(|| "JetStream not current".to_string()),
                None => "JetStream did not answer".to_string(),
            });
            (
                PodConfig {
                    pod: pod.name_any(),
                    applied: reported.as_deref() == Some(digest),
                    config_digest: reported,
                    jetstream: pod_js,
                    streams: js.as_ref().and_then(|h| h.streams),
                },
                js,
            )
        });
    let (out, health): (Vec<PodConfig>, Vec<Option<probe::JetStreamHealth>>) =
        futures::future::join_all(probes).await.into_iter().unzip();
    let nudge = out
        .iter()
        .filter(|p| p.config_digest.as_deref().is_some_and(|d| d != digest))
        .filter(|p| {
            list.iter().any(|pod| {
                let a = pod.annotations();
                let has = |k: &str, v: &str| a.get(k).map(String::as_str) == Some(v);
                pod.name_any() == p.pod
                    && has(names::ANNOTATION_RESTART, restart_digest)
                    && !has(names::ANNOTATION_CONFIG, digest)
            })
        })
        .map(|p| p.pod.clone())
        .collect();
    let health = jetstream.then(|| health.into_iter().flatten().collect());
    Ok(PodsSeen {
        pods: out,
        nudge,
        jetstream: health,
    })
}

/// What [`pod_configs`] learned from the pods.
struct PodsSeen {
    pods: Vec<PodConfig>,
    /// Pods on an older config that can reload it.
    nudge: Vec<String>,
    /// The JetStream answers of the pods that gave one (`None` without JetStream).
    jetstream: Option<Vec<probe::JetStreamHealth>>,
}

/// Asks the kubelet to refresh the config volume of pods still on an older config, by
/// annotating each with the new digest. The kubelet rewrites a ConfigMap volume only when
/// it syncs the pod: every `syncFrequency` (a minute by default, plus jitter), or at once
/// when the pod object changes. The annotation is such a change, so a reloadable change
/// reaches the servers in about a second instead of up to a minute and a half. Failures
/// (a missing `patch` permission on pods) cost only that speed: they are logged, not
/// errors.
async fn nudge_pods(ctx: &Context, ns: &str, pods: &[String], digest: &str) {
    let api: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let patch = serde_json::json!({
        "metadata": {"annotations": {names::ANNOTATION_CONFIG: digest}}
    });
    for pod in pods {
        match api
            .patch(pod, &PatchParams::default(), &Patch::Merge(&patch))
            .await
        {
            Ok(_) => tracing::debug!(pod, digest, "asked the kubelet to refresh the config"),
            Err(e) if is_not_found(&e) => {}
            Err(e) => {
                tracing::warn!(pod, error = %e, "could not annotate pod to refresh its config; the kubelet's next sync will")
            }
        }
    }
}

/// How often a NatsCluster waiting for something outside its spec (a cert-manager
/// Certificate) is looked at again.
pub const REQUEUE_WAITING: Duration = Duration::from_secs(30);

/// The cert-manager resource type.
pub fn certificate_resource() -> ApiResource {
    ApiResource::from_gvk(&GroupVersionKind::gvk(
        "cert-manager.io",
        "v1",
        "Certificate",
    ))
}

/// Resolves the cert-manager Certificates named by TLS listeners to the Secrets they
/// write. `Ok(Err(message))` when one is missing or has no `spec.secretName`.
async fn resolve_certificates(
    ctx: &Context,
    nc: &NatsCluster,
    ns: &str,
) -> Result<Result<BTreeMap<String, String>, String>, Error> {
    let wanted: BTreeSet<(&str, &str)> = render::objects::tls_listeners(nc)
        .into_iter()
        .filter_map(|(l, t)| t.certificate.as_deref().map(|c| (c, l)))
        .collect();
    let mut out = BTreeMap::new();
    if wanted.is_empty() {
        return Ok(Ok(out));
    }
    let api: Api<DynamicObject> =
        Api::namespaced_with(ctx.client.clone(), ns, &certificate_resource());
    for (cert, listener) in wanted {
        if out.contains_key(cert) {
            continue;
        }
        let found = match api.get_opt(cert).await {
            Ok(found) => found,
            // No cert-manager at all: the resource type is unknown.
            Err(e) if is_not_found(&e) => None,
            Err(e) => return Err(kube_err(format!("get Certificate {cert}"))(e)),
        };
        let Some(found) = found else {
            return Ok(Err(format!(
                "tls.{listener}.certificate: cert-manager Certificate {ns}/{cert} does not exist (or cert-manager is not installed)"
            )));
        };
        let Some(secret) = found.data["spec"]["secretName"].as_str() else {
            return Ok(Err(format!(
                "tls.{listener}.certificate: cert-manager Certificate {ns}/{cert} has no spec.secretName"
            )));
        };
        out.insert(cert.to_string(), secret.to_string());
    }
    Ok(Ok(out))
}

/// Reports a NatsCluster that cannot be applied (status `Degraded` with `reason`, a
/// Warning event when the message is new) and applies nothing.
async fn refuse(
    ctx: &Context,
    nc: &NatsCluster,
    mut obs: Observed,
    reason: &str,
    message: String,
) -> Result<(), Error> {
    let prev = nc.status.as_ref();
    obs.replicas = prev.map_or(0, |p| p.replicas);
    obs.ready_replicas = prev.map_or(0, |p| p.ready_replicas);
    obs.updated_replicas = obs.replicas;
    obs.invalid = Some((reason.to_string(), message.clone()));
    let status = status::compute(&obs, prev, &(ctx.now)());
    if degraded_message(prev) != degraded_message(Some(&status)) {
        publish(ctx, nc, EventType::Warning, reason, message.clone()).await;
    }
    patch_status(ctx, nc, &status).await?;
    tracing::info!(namespace = %nc.namespace().unwrap_or_default(), name = %nc.name_any(), reason, %message, "not applied");
    Ok(())
}

/// One reconcile of one NatsCluster.
#[tracing::instrument(skip_all, fields(namespace = nc.metadata.namespace.as_deref().unwrap_or(""), name = nc.metadata.name.as_deref().unwrap_or(""), generation = nc.metadata.generation))]
pub async fn reconcile(nc: Arc<NatsCluster>, ctx: Arc<Context>) -> Result<Action, Error> {
    let started = Instant::now();
    let span = telemetry::start_reconcile(
        nc.metadata.namespace.as_deref().unwrap_or(""),
        &nc.name_any(),
        nc.metadata.generation,
    );
    let result = reconcile_inner(&nc, &ctx).await;
    let label = result.as_ref().err().map(Error::metric_label);
    ctx.metrics.observe_reconcile(started.elapsed(), label);
    telemetry::finish(
        span,
        label.unwrap_or("ok"),
        result.as_ref().err().map(ToString::to_string),
    );
    if result.is_ok() {
        ctx.succeeded(&key_of(&nc));
    }
    result
}

async fn reconcile_inner(nc: &NatsCluster, ctx: &Context) -> Result<Action, Error> {
    let ns = nc.namespace().ok_or(Error::NoNamespace)?;
    let name = nc.name_any();
    let client = ctx.client.clone();
    let previous = nc.status.clone();

    // 1. The restart base.
    let cms: Api<ConfigMap> = Api::namespaced(client.clone(), &ns);
    let cm_name = names::config_map(&name);
    let restart_base = cms
        .get_opt(&cm_name)
        .await
        .map_err(kube_err(format!("get ConfigMap {cm_name}")))?
        .and_then(|c| c.data)
        .and_then(|mut d| d.remove(RESTART_BASE_KEY));

    // 2. Gateway peers.
    let resolved = if nc.spec.gateways.is_some() {
        let all: Api<NatsCluster> = Api::all(client.clone());
        let list = all
            .list(&ListParams::default())
            .await
            .map_err(kube_err("list NatsClusters"))?;
        gateways::resolve(nc, &list.items)
    } else {
        gateways::Resolved::default()
    };

    let mut obs = Observed {
        generation: nc.metadata.generation,
        desired_replicas: nc.spec.replicas,
        selector: names::selector_string(&name),
        client_url: names::client_url(&name, &ns),
        ..Observed::default()
    };
    obs.warnings = resolved
        .warnings
        .iter()
        .map(|w| ("GatewayProblem".to_string(), w.clone()))
        .collect();

    // 3. cert-manager Certificates named by TLS listeners.
    let certificate_secrets = match resolve_certificates(ctx, nc, &ns).await? {
        Ok(c) => c,
        Err(message) => {
            refuse(ctx, nc, obs, "CertificateNotFound", message).await?;
            return Ok(Action::requeue(REQUEUE_WAITING));
        }
    };

    // 3b. Operator mode, when Account resources name this cluster.
    let operator_mode = match operator_mode_inputs(ctx, nc, &ns, &name).await? {
        Ok(om) => om,
        Err(message) => {
            refuse(ctx, nc, obs, "OperatorKeysInvalid", message).await?;
            return Ok(Action::requeue(REQUEUE_WAITING));
        }
    };

    let (operator_mode, system_creds) = match operator_mode {
        Some((om, creds)) => (Some(om), Some(creds)),
        None => (None, None),
    };

    // 3c. A JetStream cluster scaled down keeps its pods until the leaving servers'
    // streams have moved (see `scale`).
    let held = hold_for_scale_down(ctx, nc, &ns, previous.as_ref(), system_creds.as_deref()).await;
    if let Some((_, why)) = &held {
        obs.scaling_down = Some(why.clone());
    } else if previous
        .as_ref()
        .is_some_and(|p| p.replicas > nc.spec.replicas)
    {
        obs.scale_down_released = Some(nc.spec.replicas);
    }
    let nc_rendered;
    let nc: &NatsCluster = match &held {
        Some((live, _)) => {
            let mut copy = nc.clone();
            copy.spec.replicas = *live;
            nc_rendered = copy;
            &nc_rendered
        }
        None => nc,
    };

    // 4. Render, with the broker's parser as the judge.
    let rendered = match render::render(
        nc,
        &Inputs {
            gateways: resolved.peers,
            restart_base,
            certificate_secrets,
            operator_mode,
        },
    ) {
        Ok(r) => r,
        Err(e) => {
            refuse(ctx, nc, obs, e.reason(), e.to_string()).await?;
            return Ok(Action::await_change());
        }
    };

    // 5. Apply.
    let (sts, apply_warnings) = match apply_all(ctx, nc, &ns, &rendered).await? {
        Ok(applied) => applied,
        Err(message) => {
            refuse(ctx, nc, obs, "VolumeExpansionRefused", message).await?;
            return Ok(Action::requeue(REQUEUE_WAITING));
        }
    };
    obs.warnings.extend(apply_warnings);
    let sts_status = sts.status.clone().unwrap_or_default();
    obs.replicas = sts_status.replicas;
    obs.ready_replicas = sts_status.ready_replicas.unwrap_or(0);
    obs.updated_replicas = sts_status.updated_replicas.unwrap_or(0);
    obs.revision_pending = sts_status.update_revision.is_some()
        && sts_status.current_revision != sts_status.update_revision;
    obs.config_digest = Some(rendered.config.digest.clone());

    // 6. What each pod runs; pods behind on a reload get their kubelet nudged.
    let seen = pod_configs(
        ctx,
        nc,
        &ns,
        &rendered.config.digest,
        &rendered.restart.digest,
    )
    .await?;
    obs.pods = seen.pods;
    obs.jetstream = seen.jetstream;
    nudge_pods(ctx, &ns, &seen.nudge, &rendered.config.digest).await;

    // 7. Events and status.
    let prev_digest = previous.as_ref().and_then(|p| p.config_digest.clone());
    if prev_digest.as_deref() != Some(rendered.config.digest.as_str()) {
        let (reason, note) = match (&prev_digest, rendered.restart.reasons.is_empty()) {
            (None, _) => (
                "Applied",
                format!(
                    "{} servers, config {}",
                    nc.spec.replicas, rendered.config.digest
                ),
            ),
            (Some(_), true) => (
                "ConfigReloading",
                format!(
                    "config {} reloads in place (changed: {})",
                    rendered.config.digest,
                    if rendered.restart.reloadable.is_empty() {
                        "nothing the servers see".to_string()
                    } else {
                        rendered.restart.reloadable.join(", ")
                    }
                ),
            ),
            (Some(_), false) => (
                "RollingRestart",
                format!(
                    "config {} needs a restart, pods roll one at a time: {}",
                    rendered.config.digest,
                    rendered.restart.reasons.join("; ")
                ),
            ),
        };
        publish(ctx, nc, EventType::Normal, reason, note).await;
    }
    let status = status::compute(&obs, previous.as_ref(), &(ctx.now)());
    if !obs.warnings.is_empty()
        && degraded_message(previous.as_ref()) != degraded_message(Some(&status))
    {
        let (reason, _) = &obs.warnings[0];
        let note = degraded_message(Some(&status)).unwrap_or_default();
        publish(ctx, nc, EventType::Warning, reason, note).await;
    }
    patch_status(ctx, nc, &status).await?;

    Ok(Action::requeue(requeue_after(&status, &(ctx.now)())))
}

/// The operator-mode inputs and the system user's creds: `None` without Accounts; `Err`
/// with a damaged key Secret.
async fn operator_mode_inputs(
    ctx: &Context,
    nc: &NatsCluster,
    ns: &str,
    name: &str,
) -> Result<Result<Option<(render::operator_mode::OperatorMode, String)>, String>, Error> {
    let accounts = operator_mode::cluster_accounts(&ctx.client, ns, name).await?;
    if accounts.is_empty() {
        return Ok(Ok(None));
    }
    let now = (ctx.now)().0.as_second();
    Ok(
        match operator_mode::operator_identity(&ctx.client, nc, now).await? {
            Ok(id) => operator_mode::operator_mode(&id, &accounts)
                .map(|om| Some((om, id.system_user_creds.clone()))),
            Err(message) => Err(message),
        },
    )
}

/// A JetStream cluster whose `spec.replicas` fell below its running pods: the leaving
/// servers are removed from the meta group and the pods kept until their streams moved.
/// Returns the pod count to keep and why, or `None` when the StatefulSet may take the
/// spec's size (no scale-down, done moving, or no system user to ask with).
async fn hold_for_scale_down(
    ctx: &Context,
    nc: &NatsCluster,
    ns: &str,
    previous: Option<&NatsClusterStatus>,
    system_creds: Option<&str>,
) -> Option<(i32, String)> {
    let live = previous.map_or(0, |p| p.replicas);
    let keep = nc.spec.replicas;
    let jetstream = nc.spec.jetstream.as_ref().is_some_and(|j| j.enabled);
    // Released already: the StatefulSet is shrinking, its pods not yet gone.
    let released = previous.and_then(|p| p.scale_down_released) == Some(keep);
    if !jetstream || keep < 1 || live <= keep || released {
        return None;
    }
    let name = nc.name_any();
    let sts = names::statefulset(&name);
    let leaving: Vec<String> = (keep..live).map(|i| format!("{sts}-{i}")).collect();
    let Some(creds) = system_creds else {
        publish(
            ctx,
            nc,
            EventType::Warning,
            "ScaleDownWithoutServerRemove",
            format!(
                "{} leave without SERVER.REMOVE: the operator has a system user only in operator mode (with Accounts); remove them from the meta group with `nats server raft peer-remove` as a system user",
                leaving.join(", ")
            ),
        )
        .await;
        return None;
    };
    let url = names::client_url(&name, ns);
    let mut refused = Vec::new();
    for server in &leaving {
        if let Err(e) = ctx.system.server_remove(&url, creds, server).await {
            refused.push(format!("{server}: {e}"));
        }
    }
    let pods = previous.map(|p| p.pod_configs.as_slice()).unwrap_or(&[]);
    let why = if refused.is_empty() {
        match scale::drained(pods, &sts, keep) {
            scale::Drain::Done => {
                publish(
                    ctx,
                    nc,
                    EventType::Normal,
                    "ScaledDown",
                    format!(
                        "{} left the meta group and their streams moved; scaling to {keep}",
                        leaving.join(", ")
                    ),
                )
                .await;
                return None;
            }
            scale::Drain::Waiting(why) => why,
        }
    } else {
        format!("SERVER.REMOVE refused: {}", refused.join("; "))
    };
    Some((
        live,
        format!(
            "scaling {live} -> {keep}: moving JetStream off {}: {why}",
            leaving.join(", ")
        ),
    ))
}

/// When to look at a reconciled cluster again (see the `REQUEUE_*` constants).
pub fn requeue_after(status: &NatsClusterStatus, now: &Time) -> Duration {
    let Some(p) = status
        .conditions
        .iter()
        .find(|c| c.type_ == "Progressing" && c.status == "True")
    else {
        return REQUEUE_STABLE;
    };
    let age = now
        .0
        .duration_since(p.last_transition_time.0)
        .as_secs_f64()
        .max(0.0);
    if p.reason == "ConfigReloading" && age < RELOAD_FAST_WINDOW.as_secs_f64() {
        REQUEUE_RELOADING
    } else {
        REQUEUE_PROGRESSING
    }
}

fn degraded_message(s: Option<&NatsClusterStatus>) -> Option<String> {
    s?.conditions
        .iter()
        .find(|c| c.type_ == "Degraded" && c.status == "True")
        .map(|c| c.message.clone())
}

/// Retry with exponential backoff per NatsCluster.
pub fn error_policy(nc: Arc<NatsCluster>, error: &Error, ctx: Arc<Context>) -> Action {
    let delay = ctx.backoff(key_of(&nc));
    tracing::warn!(
        namespace = %nc.namespace().unwrap_or_default(),
        name = %nc.name_any(),
        error = %error,
        retry_in = ?delay,
        "reconcile failed"
    );
    Action::requeue(delay)
}

/// Runs the NatsCluster controller and the Account/User controllers until the watch
/// streams end (on shutdown).
pub async fn run(ctx: Arc<Context>) {
    let accounts = Arc::new(account::AccountsContext::new(
        ctx.client.clone(),
        ctx.metrics.clone(),
    ));
    futures::join!(run_clusters(ctx), account::run(accounts));
}

/// The NatsCluster controller.
async fn run_clusters(ctx: Arc<Context>) {
    let client = ctx.client.clone();
    let clusters: Api<NatsCluster> = Api::all(client.clone());
    let owned = watcher::Config::default().labels(&format!(
        "{}={}",
        names::LABEL_MANAGED_BY,
        names::FIELD_MANAGER
    ));
    let index = Arc::new(Mutex::new(gateways::PeerIndex::default()));
    Controller::new(clusters.clone(), watcher::Config::default())
        .owns(Api::<ConfigMap>::all(client.clone()), owned.clone())
        .owns(Api::<Service>::all(client.clone()), owned.clone())
        .owns(Api::<StatefulSet>::all(client.clone()), owned.clone())
        .owns(Api::<PodDisruptionBudget>::all(client.clone()), owned)
        // A gateway declared on one side is rendered on both: when a NatsCluster
        // changes, reconcile the clusters it names and those that name it.
        .watches(
            clusters,
            watcher::Config::default(),
            move |nc: NatsCluster| {
                let linked = index
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .observe(&nc);
                linked
                    .into_iter()
                    .map(|(ns, name)| ObjectRef::<NatsCluster>::new(&name).within(&ns))
            },
        )
        // Accounts put their cluster in operator mode and fill its resolver preload.
        .watches(
            Api::<Account>::all(client.clone()),
            watcher::Config::default(),
            |a: Account| {
                let (ns, name) = a.cluster_key();
                Some(ObjectRef::<NatsCluster>::new(&name).within(&ns))
            },
        )
        .shutdown_on_signal()
        .run(reconcile, error_policy, ctx)
        .for_each(|res| async move {
            match res {
                Ok((obj, _)) => tracing::debug!(object = %obj, "reconciled"),
                Err(e) => tracing::debug!(error = %e, "reconcile stream error"),
            }
        })
        .await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
    use k8s_openapi::jiff::Timestamp;

    fn at(secs: i64) -> Time {
        Time(Timestamp::from_second(secs).unwrap())
    }

    fn progressing(status: &str, reason: &str, since: i64) -> NatsClusterStatus {
        NatsClusterStatus {
            conditions: vec![Condition {
                type_: "Progressing".into(),
                status: status.into(),
                reason: reason.into(),
                message: String::new(),
                observed_generation: None,
                last_transition_time: at(since),
            }],
            ..NatsClusterStatus::default()
        }
    }

    #[test]
    fn reloads_are_followed_closely_for_a_while_only() {
        let now = at(1_000);
        let fresh = progressing("True", "ConfigReloading", 990);
        assert_eq!(requeue_after(&fresh, &now), REQUEUE_RELOADING);
        let stuck = progressing("True", "ConfigReloading", 1_000 - 91);
        assert_eq!(requeue_after(&stuck, &now), REQUEUE_PROGRESSING);
        let rolling = progressing("True", "RollingRestart", 990);
        assert_eq!(requeue_after(&rolling, &now), REQUEUE_PROGRESSING);
        let settled = progressing("False", "Stable", 990);
        assert_eq!(requeue_after(&settled, &now), REQUEUE_STABLE);
    }
}
