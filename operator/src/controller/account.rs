//! The Account reconciler: keys → account JWT signed by the cluster's operator → pushed
//! to the cluster's servers → status.
//!
//! The API calls of one reconcile, in order (asserted by the mock-API tests):
//! 1. `PATCH` the finalizer onto a new Account;
//! 2. `GET` the NatsCluster; missing: `Ready=False ClusterNotFound`;
//! 3. `GET` (or create) the cluster's operator identity Secret;
//! 4. `GET` (or create) the Account's key Secret; `PATCH` it when a signing key is new;
//! 5. `LIST` Accounts (imports are resolved and checked for cycles among those of the
//!    same cluster); `LIST` Users of the namespace (signing keys still in use);
//! 6. sign (only when the claims changed), push over `$SYS.REQ.CLAIMS.UPDATE`;
//! 7. events, then the status (public key, signing keys, the JWT itself, `Ready`).
//!
//! The JWT goes into the status even when the push fails: the NatsCluster reconciler
//! preloads every Account's JWT into the servers' config, which is how the very first
//! Accounts reach servers that are only now restarting into operator mode.
//!
//! Deleting an Account pushes a last JWT that revokes all its users (`revocations: {"*":
//! now}`), so their connections close at once, then drops the finalizer.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;
use std::time::Duration;

use futures::future::BoxFuture;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use kube::runtime::controller::Action;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use kube::{Client, Resource, ResourceExt};

use super::operator_mode::{cluster_accounts, operator_identity, secret};
use super::status::condition;
use super::{Error, is_not_found, kube_err};
use crate::accounts::claims::{Edge, ResolvedImport, account_claims, find_cycle, sign_if_changed};
use crate::accounts::keys::{self, AccountKeys};
use crate::accounts::push::{PushError, push_account};
use crate::crd::NatsCluster;
use crate::crd::accounts::{Account, AccountStatus, ExportKind, SigningKeyStatus, User};
use crate::metrics::Metrics;
use crate::render::{names, operator_mode::check_conflict};

/// Finalizer of Accounts: the last push revokes every user.
pub const ACCOUNT_FINALIZER: &str = "natrix.io/account-revocation";
/// Finalizer of Users: the user's key is revoked in its account before it goes.
pub const USER_FINALIZER: &str = "natrix.io/user-revocation";

/// Requeue while waiting for something outside the Account (its cluster, an exporter).
pub const REQUEUE_WAITING: Duration = Duration::from_secs(15);
/// Requeue after a failed push: the servers may be restarting into operator mode.
pub const REQUEUE_PUSH_FAILED: Duration = Duration::from_secs(10);
/// Requeue of a settled Account: the push is repeated, so a server that missed it (it
/// was down, and its resolver directory is an emptyDir) catches up.
pub const REQUEUE_STABLE: Duration = Duration::from_secs(300);

/// Sends an account JWT to a cluster's servers (a trait so tests can stand in for NATS).
pub trait ClaimsPusher: Send + Sync {
    /// Pushes `jwt` to the servers at `url` with the system user's `creds`, expecting
    /// `expected` answers; returns how many accepted it.
    fn push<'a>(
        &'a self,
        url: &'a str,
        creds: &'a str,
        jwt: &'a str,
        expected: usize,
    ) -> BoxFuture<'a, Result<usize, PushError>>;
}

/// The real pusher: a NATS connection per push.
pub struct NatsPusher {
    pub wait: Duration,
}

impl ClaimsPusher for NatsPusher {
    fn push<'a>(
        &'a self,
        url: &'a str,
        creds: &'a str,
        jwt: &'a str,
        expected: usize,
    ) -> BoxFuture<'a, Result<usize, PushError>> {
        Box::pin(push_account(url, creds, jwt, expected, self.wait))
    }
}

/// Maps a NatsCluster `(namespace, name)` to the URL of its servers.
pub type ClusterUrl = Arc<dyn Fn(&str, &str) -> String + Send + Sync>;

/// What the Account and User reconcilers share.
pub struct AccountsContext {
    pub client: Client,
    pub recorder: Recorder,
    pub metrics: Arc<Metrics>,
    pub pusher: Arc<dyn ClaimsPusher>,
    /// The clock (fixed in tests).
    pub now: Arc<dyn Fn() -> Time + Send + Sync>,
    /// The URL the operator reaches the servers of NatsCluster `(namespace, name)` at:
    /// its client Service.
    pub cluster_url: ClusterUrl,
}

impl AccountsContext {
    pub fn new(client: Client, metrics: Arc<Metrics>) -> Self {
        let reporter = Reporter {
            controller: names::FIELD_MANAGER.into(),
            instance: std::env::var("POD_NAME").ok(),
        };
        Self {
            recorder: Recorder::new(client.clone(), reporter),
            client,
            metrics,
            pusher: Arc::new(NatsPusher {
                wait: Duration::from_secs(5),
            }),
            now: Arc::new(|| Time(k8s_openapi::jiff::Timestamp::now())),
            cluster_url: Arc::new(|ns, name| names::client_url(name, ns)),
        }
    }

    pub fn unix_now(&self) -> i64 {
        (self.now)().0.as_second()
    }
}

/// Publishes an event; failing to is logged only (events are for people).
pub async fn publish<K: Resource<DynamicType = ()>>(
    ctx: &AccountsContext,
    obj: &K,
    type_: EventType,
    reason: &str,
    note: String,
) {
    let ev = Event {
        type_,
        reason: reason.to_string(),
        note: Some(note),
        action: "Reconcile".to_string(),
        secondary: None,
    };
    if let Err(e) = ctx.recorder.publish(&ev, &obj.object_ref(&())).await {
        tracing::warn!(error = %e, reason, "could not publish event");
    }
}

/// Adds or removes `finalizer` with a merge patch that carries the resourceVersion, so a
/// concurrent change makes it fail (and retry) instead of dropping someone's finalizer.
pub async fn set_finalizer<K>(
    api: &Api<K>,
    obj: &K,
    finalizer: &str,
    present: bool,
) -> Result<(), Error>
where
    K: Resource + Clone + std::fmt::Debug + serde::de::DeserializeOwned,
{
    let mut list: Vec<String> = obj.meta().finalizers.clone().unwrap_or_default();
    list.retain(|f| f != finalizer);
    if present {
        list.push(finalizer.to_string());
    }
    let patch = serde_json::json!({
        "metadata": {"finalizers": list, "resourceVersion": obj.meta().resource_version}
    });
    let name = obj.meta().name.clone().unwrap_or_default();
    match api
        .patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await
    {
        Ok(_) => Ok(()),
        Err(e) if is_not_found(&e) => Ok(()),
        Err(e) => Err(kube_err(format!("set finalizer on {name}"))(e)),
    }
}

/// Whether `export` (a pattern) covers every subject of `import`.
pub fn covers(export: &str, import: &str) -> bool {
    let (e, i): (Vec<&str>, Vec<&str>) = (export.split('.').collect(), import.split('.').collect());
    for (n, et) in e.iter().enumerate() {
        let Some(it) = i.get(n) else {
            return false;
        };
        match (*et, *it) {
            (">", _) => return true,
            (_, ">") => return false,
            ("*", _) => {}
            (x, y) if x == y => {}
            _ => return false,
        }
    }
    e.len() == i.len()
}

type Key = (String, String);

fn key_of(a: &Account) -> Key {
    (a.namespace().unwrap_or_default(), a.name_any())
}

/// The result of one pass, before it becomes the status.
struct Outcome {
    ready: bool,
    reason: String,
    message: String,
    requeue: Duration,
}

impl Outcome {
    fn waiting(reason: &str, message: String) -> Self {
        Self {
            ready: false,
            reason: reason.into(),
            message,
            requeue: REQUEUE_WAITING,
        }
    }
}

/// Reads (or creates, once) the Account's key Secret, adding seeds for new signing keys.
async fn account_keys(
    ctx: &AccountsContext,
    acct: &Account,
    ns: &str,
) -> Result<Result<AccountKeys, String>, Error> {
    let name = keys::account_secret(&acct.name_any());
    let api: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let wanted: Vec<&str> = acct
        .spec
        .signing_keys
        .iter()
        .map(|k| k.name.as_str())
        .collect();
    let existing = api
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("get Secret {name}")))?;
    let Some(existing) = existing else {
        let k = match AccountKeys::generate(wanted.iter().copied()) {
            Ok(k) => k,
            Err(e) => return Ok(Err(e.to_string())),
        };
        let obj = secret(&name, ns, "account-keys", acct, k.to_secret_data());
        return match api.create(&PostParams::default(), &obj).await {
            Ok(_) => Ok(Ok(k)),
            // Created meanwhile by an earlier reconcile: read it on the next one.
            Err(kube::Error::Api(s)) if s.code == 409 => Ok(Err(format!(
                "Secret {name} appeared while it was being created; retrying"
            ))),
            Err(e) => Err(kube_err(format!("create Secret {name}"))(e)),
        };
    };
    let mut k = match AccountKeys::from_secret_data(&name, &existing.data.unwrap_or_default()) {
        Ok(k) => k,
        Err(e) => return Ok(Err(e.to_string())),
    };
    let before: BTreeSet<String> = k.signing.keys().cloned().collect();
    match k.add_missing(wanted.iter().copied()) {
        Ok(false) => {}
        Ok(true) => {
            let added: BTreeMap<String, ByteString> = k
                .to_secret_data()
                .into_iter()
                .filter(|(key, _)| {
                    key.strip_prefix(keys::SIGNING_PREFIX)
                        .and_then(|x| x.strip_suffix(".seed"))
                        .is_some_and(|n| !before.contains(n))
                })
                .collect();
            let patch = serde_json::json!({ "data": added });
            api.patch(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await
                .map_err(kube_err(format!("add signing keys to Secret {name}")))?;
        }
        Err(e) => return Ok(Err(e.to_string())),
    }
    Ok(Ok(k))
}

/// Resolves imports against the cluster's Accounts; `Err((reason, message))` for a
/// missing or not-yet-keyed exporter, an export that does not cover the import, or a
/// cycle.
fn resolve_imports(
    acct: &Account,
    accounts: &[Account],
) -> Result<Vec<ResolvedImport>, (&'static str, String)> {
    let own = key_of(acct);
    let by_key: BTreeMap<Key, &Account> = accounts.iter().map(|a| (key_of(a), a)).collect();
    let target = |a: &Account, i: usize| -> Key {
        let r = &a.spec.imports[i].account_ref;
        (
            r.namespace
                .clone()
                .unwrap_or_else(|| a.namespace().unwrap_or_default()),
            r.name.clone(),
        )
    };
    let mut out = Vec::new();
    for (i, imp) in acct.spec.imports.iter().enumerate() {
        let k = target(acct, i);
        let Some(exporter) = by_key.get(&k) else {
            return Err((
                "ImportProblem",
                format!(
                    "imports[{i}]: Account {}/{} does not exist or belongs to another NatsCluster",
                    k.0, k.1
                ),
            ));
        };
        if k == own {
            return Err((
                "ImportProblem",
                format!("imports[{i}]: an Account cannot import from itself"),
            ));
        }
        let kind = match imp.kind {
            ExportKind::Stream => "stream",
            ExportKind::Service => "service",
        };
        if !exporter
            .spec
            .exports
            .iter()
            .any(|e| e.kind == imp.kind && covers(&e.subject, &imp.subject))
        {
            return Err((
                "ImportProblem",
                format!(
                    "imports[{i}]: Account {}/{} exports no {kind} covering {:?}",
                    k.0, k.1, imp.subject
                ),
            ));
        }
        let Some(pk) = exporter.status.as_ref().and_then(|s| s.public_key.clone()) else {
            return Err((
                "ImportPending",
                format!("imports[{i}]: Account {}/{} has no keys yet", k.0, k.1),
            ));
        };
        out.push(ResolvedImport {
            spec: imp.clone(),
            account_public_key: pk,
        });
    }
    let graph: BTreeMap<Key, Vec<Edge>> = accounts
        .iter()
        .map(|a| {
            let edges = a
                .spec
                .imports
                .iter()
                .enumerate()
                .map(|(i, imp)| Edge {
                    exporter: target(a, i),
                    subject: imp.subject.clone(),
                    local: imp
                        .local_subject
                        .clone()
                        .unwrap_or_else(|| imp.subject.clone()),
                })
                .collect();
            (key_of(a), edges)
        })
        .collect();
    if let Some(cycle) = find_cycle(&own, &graph) {
        return Err((
            "ImportCycle",
            format!(
                "imports form a cycle, messages would circle between the accounts: {}",
                cycle.join(" → ")
            ),
        ));
    }
    Ok(out)
}

/// One pass over a live Account; fills `status` with what it learnt.
async fn sync(
    ctx: &AccountsContext,
    acct: &Account,
    ns: &str,
    status: &mut AccountStatus,
) -> Result<Outcome, Error> {
    let (cns, cname) = acct.cluster_key();
    let clusters: Api<NatsCluster> = Api::namespaced(ctx.client.clone(), &cns);
    let Some(nc) = clusters
        .get_opt(&cname)
        .await
        .map_err(kube_err(format!("get NatsCluster {cns}/{cname}")))?
    else {
        return Ok(Outcome::waiting(
            "ClusterNotFound",
            format!("NatsCluster {cns}/{cname} does not exist"),
        ));
    };
    if let Err(e) = check_conflict(&nc) {
        return Ok(Outcome::waiting("ClusterConflict", e.to_string()));
    }
    let id = match operator_identity(&ctx.client, &nc, ctx.unix_now()).await? {
        Ok(id) => id,
        Err(m) => return Ok(Outcome::waiting("OperatorKeysInvalid", m)),
    };
    let keys = match account_keys(ctx, acct, ns).await? {
        Ok(k) => k,
        Err(m) => return Ok(Outcome::waiting("AccountKeysInvalid", m)),
    };
    let account_pk = keys.public_key().map_err(|e| Error::Keys(e.to_string()))?;
    status.public_key = Some(account_pk.clone());

    let accounts = cluster_accounts(&ctx.client, &cns, &cname).await?;
    let imports = match resolve_imports(acct, &accounts) {
        Ok(i) => i,
        Err((reason, message)) => return Ok(Outcome::waiting(reason, message)),
    };

    // Signing keys: the spec's, then retired ones some User was still issued by.
    let users: Api<User> = Api::namespaced(ctx.client.clone(), ns);
    let in_use: BTreeSet<String> = users
        .list(&ListParams::default())
        .await
        .map_err(kube_err("list Users"))?
        .items
        .into_iter()
        .filter(|u| u.spec.account_ref.name == acct.name_any())
        .filter_map(|u| u.status.and_then(|s| s.signing_key))
        .collect();
    let publics = keys
        .signing_public_keys()
        .map_err(|e| Error::Keys(e.to_string()))?;
    let mut signing = Vec::new();
    for k in &acct.spec.signing_keys {
        if let Some(pk) = publics.get(&k.name) {
            signing.push(SigningKeyStatus {
                name: k.name.clone(),
                public_key: pk.clone(),
                retiring: false,
            });
        }
    }
    for (name, pk) in &publics {
        if !acct.spec.signing_keys.iter().any(|k| &k.name == name) && in_use.contains(pk) {
            signing.push(SigningKeyStatus {
                name: name.clone(),
                public_key: pk.clone(),
                retiring: true,
            });
        }
    }
    let signing_pks: Vec<String> = signing.iter().map(|s| s.public_key.clone()).collect();
    status.signing_keys = signing;

    let claims = match account_claims(
        &acct.name_any(),
        &acct.spec,
        &account_pk,
        &signing_pks,
        &imports,
        &keys.revoked,
    ) {
        Ok(c) => c,
        Err(e) => return Ok(Outcome::waiting("InvalidSpec", e.to_string())),
    };
    let signer = id.signer().map_err(|e| Error::Keys(e.to_string()))?;
    let previous = status.jwt.clone();
    let (jwt, changed) = sign_if_changed(&claims, &signer, previous.as_deref(), ctx.unix_now())
        .map_err(|e| Error::Keys(e.to_string()))?;
    status.jwt = Some(jwt.clone());
    if changed {
        publish(
            ctx,
            acct,
            EventType::Normal,
            "Signed",
            format!(
                "account JWT for {account_pk} signed by the operator of NatsCluster {cns}/{cname}"
            ),
        )
        .await;
    }

    let url = (ctx.cluster_url)(&cns, &cname);
    let expected = usize::try_from(nc.spec.replicas).unwrap_or(1);
    let retiring = status.signing_keys.iter().filter(|k| k.retiring).count();
    match ctx
        .pusher
        .push(&url, &id.system_user_creds, &jwt, expected)
        .await
    {
        Ok(n) => {
            if changed {
                publish(
                    ctx,
                    acct,
                    EventType::Normal,
                    "Pushed",
                    format!("account JWT accepted by {n} of {expected} servers"),
                )
                .await;
            }
            let mut message = format!("account JWT accepted by {n} of {expected} servers");
            if retiring > 0 {
                message.push_str(&format!(
                    "; {retiring} retired signing key(s) kept until their Users are re-issued"
                ));
            }
            Ok(Outcome {
                ready: true,
                reason: if retiring > 0 {
                    "RotatingSigningKeys"
                } else {
                    "Pushed"
                }
                .into(),
                message,
                requeue: REQUEUE_STABLE,
            })
        }
        Err(e) => Ok(Outcome {
            ready: false,
            reason: "PushFailed".into(),
            message: e.to_string(),
            requeue: REQUEUE_PUSH_FAILED,
        }),
    }
}

/// The last push of a deleted Account: every user revoked. Best effort: a cluster that
/// is gone or unreachable has no one left to disconnect, and the deletion must not hang.
async fn revoke_all(ctx: &AccountsContext, acct: &Account, ns: &str) -> Result<(), Error> {
    let (cns, cname) = acct.cluster_key();
    let clusters: Api<NatsCluster> = Api::namespaced(ctx.client.clone(), &cns);
    let Some(nc) = clusters
        .get_opt(&cname)
        .await
        .map_err(kube_err(format!("get NatsCluster {cns}/{cname}")))?
    else {
        return Ok(());
    };
    let secrets: Api<Secret> = Api::namespaced(ctx.client.clone(), ns);
    let name = keys::account_secret(&acct.name_any());
    let Some(s) = secrets
        .get_opt(&name)
        .await
        .map_err(kube_err(format!("get Secret {name}")))?
    else {
        return Ok(());
    };
    let (Ok(Ok(id)), Ok(k)) = (
        operator_identity(&ctx.client, &nc, ctx.unix_now()).await,
        AccountKeys::from_secret_data(&name, &s.data.unwrap_or_default()),
    ) else {
        return Ok(());
    };
    let mut revoked = k.revoked.clone();
    revoked.insert(natrix_jwt::ALL.to_string(), ctx.unix_now());
    let result = async {
        let pk = k.public_key().map_err(|e| e.to_string())?;
        let mut spec = acct.spec.clone();
        spec.imports.clear();
        let claims = account_claims(&acct.name_any(), &spec, &pk, &[], &[], &revoked)
            .map_err(|e| e.to_string())?;
        let signer = id.signer().map_err(|e| e.to_string())?;
        let jwt =
            natrix_jwt::encode_at(&claims, &signer, ctx.unix_now()).map_err(|e| e.to_string())?;
        let url = (ctx.cluster_url)(&cns, &cname);
        let expected = usize::try_from(nc.spec.replicas).unwrap_or(1);
        ctx.pusher
            .push(&url, &id.system_user_creds, &jwt, expected)
            .await
            .map_err(|e| e.to_string())
    }
    .await;
    match result {
        Ok(n) => {
            publish(
                ctx,
                acct,
                EventType::Normal,
                "Revoked",
                format!("every user of the account revoked on {n} servers"),
            )
            .await;
        }
        Err(m) => {
            publish(
                ctx,
                acct,
                EventType::Warning,
                "RevokeFailed",
                format!("could not revoke the account's users before deletion: {m}"),
            )
            .await;
        }
    }
    Ok(())
}

/// One reconcile of one Account.
pub async fn reconcile(acct: Arc<Account>, ctx: Arc<AccountsContext>) -> Result<Action, Error> {
    let started = std::time::Instant::now();
    let span = crate::telemetry::start_asset_reconcile(
        "Account",
        acct.metadata.namespace.as_deref().unwrap_or(""),
        &acct.name_any(),
        acct.metadata.generation,
    );
    let result = reconcile_inner(&acct, &ctx).await;
    let label = result.as_ref().err().map(Error::metric_label);
    ctx.metrics.observe_reconcile(started.elapsed(), label);
    crate::telemetry::finish(
        span,
        label.unwrap_or("ok"),
        result.as_ref().err().map(ToString::to_string),
    );
    result
}

async fn reconcile_inner(acct: &Account, ctx: &AccountsContext) -> Result<Action, Error> {
    let ns = acct.namespace().ok_or(Error::NoNamespace)?;
    let api: Api<Account> = Api::namespaced(ctx.client.clone(), &ns);
    let has_finalizer = acct.finalizers().iter().any(|f| f == ACCOUNT_FINALIZER);
    if acct.metadata.deletion_timestamp.is_some() {
        if has_finalizer {
            revoke_all(ctx, acct, &ns).await?;
            set_finalizer(&api, acct, ACCOUNT_FINALIZER, false).await?;
        }
        return Ok(Action::await_change());
    }
    if !has_finalizer {
        set_finalizer(&api, acct, ACCOUNT_FINALIZER, true).await?;
    }
    let previous = acct.status.clone().unwrap_or_default();
    let mut status = previous.clone();
    let outcome = sync(ctx, acct, &ns, &mut status).await?;
    let prev_ready = previous.conditions.iter().find(|c| c.type_ == "Ready");
    if !outcome.ready && prev_ready.map(|c| c.message.as_str()) != Some(outcome.message.as_str()) {
        publish(
            ctx,
            acct,
            EventType::Warning,
            &outcome.reason,
            outcome.message.clone(),
        )
        .await;
    }
    let now = (ctx.now)();
    status.observed_generation = acct.metadata.generation;
    status.conditions = vec![ready_condition(
        &outcome,
        acct.metadata.generation,
        &previous.conditions,
        &now,
    )];
    let patch = serde_json::json!({ "status": status });
    match api
        .patch_status(
            &acct.name_any(),
            &PatchParams::default(),
            &Patch::Merge(&patch),
        )
        .await
    {
        Ok(_) => {}
        Err(e) if is_not_found(&e) => {}
        Err(e) => return Err(kube_err("update Account status")(e)),
    }
    Ok(Action::requeue(outcome.requeue))
}

fn ready_condition(
    o: &Outcome,
    generation: Option<i64>,
    previous: &[Condition],
    now: &Time,
) -> Condition {
    condition(
        "Ready",
        o.ready,
        &o.reason,
        o.message.clone(),
        generation,
        previous,
        now,
    )
}

/// Retry after an error: transient API trouble; the backoff stays short because these
/// reconciles are cheap and a User waiting for its creds is an application waiting.
pub fn error_policy<K: ResourceExt>(
    obj: Arc<K>,
    error: &Error,
    _ctx: Arc<AccountsContext>,
) -> Action {
    tracing::warn!(
        namespace = %obj.namespace().unwrap_or_default(),
        name = %obj.name_any(),
        error = %error,
        "reconcile failed"
    );
    Action::requeue(REQUEUE_PUSH_FAILED)
}

/// Runs the Account and User controllers until shutdown.
pub async fn run(ctx: Arc<AccountsContext>) {
    use futures::StreamExt;
    use kube::runtime::reflector::ObjectRef;
    use kube::runtime::{Controller, watcher};

    let client = ctx.client.clone();
    let secrets_of = |component: &str| {
        watcher::Config::default().labels(&format!(
            "{}={},{}={component}",
            names::LABEL_MANAGED_BY,
            names::FIELD_MANAGER,
            names::LABEL_COMPONENT
        ))
    };
    let accounts = Controller::new(
        Api::<Account>::all(client.clone()),
        watcher::Config::default(),
    )
    // A revocation written into the key Secret re-signs and pushes the account.
    .owns(
        Api::<Secret>::all(client.clone()),
        secrets_of("account-keys"),
    )
    // Users' signing keys decide when a retired key may leave the JWT.
    .watches(
        Api::<User>::all(client.clone()),
        watcher::Config::default(),
        |u: User| {
            let ns = u.namespace().unwrap_or_default();
            Some(ObjectRef::<Account>::new(&u.spec.account_ref.name).within(&ns))
        },
    )
    .shutdown_on_signal()
    .run(reconcile, error_policy, ctx.clone())
    .for_each(|res| async move {
        if let Err(e) = res {
            tracing::debug!(error = %e, "account reconcile stream error");
        }
    });
    let users_ctl = Controller::new(Api::<User>::all(client.clone()), watcher::Config::default());
    let store = users_ctl.store();
    let users = users_ctl
        .owns(Api::<Secret>::all(client.clone()), secrets_of("user-creds"))
        // A new active signing key (or new account keys) re-issues the account's Users.
        .watches(
            Api::<Account>::all(client.clone()),
            watcher::Config::default(),
            move |a: Account| {
                let ns = a.namespace().unwrap_or_default();
                let name = a.name_any();
                store
                    .state()
                    .into_iter()
                    .filter(|u| {
                        u.namespace().as_deref() == Some(ns.as_str())
                            && u.spec.account_ref.name == name
                    })
                    .map(|u| ObjectRef::from_obj(&*u))
                    .collect::<Vec<_>>()
            },
        )
        .shutdown_on_signal()
        .run(super::user::reconcile, error_policy, ctx)
        .for_each(|res| async move {
            if let Err(e) = res {
                tracing::debug!(error = %e, "user reconcile stream error");
            }
        });
    futures::join!(accounts, users);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn export_patterns_cover_imports() {
        assert!(covers("orders.>", "orders.eu.new"));
        assert!(covers("orders.>", "orders.>"));
        assert!(covers("orders.*", "orders.new"));
        assert!(covers("orders.*", "orders.*"));
        assert!(!covers("orders.*", "orders.>"));
        assert!(!covers("orders.new", "orders.*"));
        assert!(!covers("orders.*", "orders.a.b"));
        assert!(!covers("orders", "orders.a"));
        assert!(covers(">", "anything.at.all"));
    }
}
