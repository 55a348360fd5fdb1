//! The meta layer: what every server does with applied assignments, and what the meta
//! leader does with the account-level API.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{Value, json};
use tokio::sync::{mpsc, oneshot};

use super::Cluster;
use super::machine::{Applied, Entry, StreamAssignment};
use crate::account::JsAccount;
use crate::api::errors::{self, ApiError};
use crate::api::types::{self, StreamConfig};

/// How long the meta leader waits for a new stream's group to answer.
const STREAM_READY: Duration = Duration::from_secs(10);

/// Applies the meta group's assignments here, in log order. An assignment that a later
/// entry has already replaced or removed is skipped (during a replay after a restart,
/// only the state the log ends in is built).
pub(crate) async fn apply_loop(cluster: Arc<Cluster>, mut rx: mpsc::UnboundedReceiver<Applied>) {
    while let Some(applied) = rx.recv().await {
        match applied {
            Applied::Stream(a) => {
                let current = cluster
                    .meta
                    .state
                    .with_machine(|m| m.meta.stream(&a.account, &a.stream).cloned());
                if current.as_ref() != Some(&*a) {
                    continue;
                }
                let Some(acc) = cluster.accounts.read().get(&a.account).cloned() else {
                    if !a.peers.iter().any(|(n, _)| *n == cluster.server) {
                        continue;
                    }
                    tracing::warn!(account = %a.account, stream = %a.stream,
                        "stream placed here, but JetStream is not enabled for its account on this server");
                    continue;
                };
                if !a.peers.iter().any(|(n, _)| *n == cluster.server) {
                    // Moved away (fewer replicas): once the group's leader has taken
                    // this server out (its vote may still be needed for that), go.
                    if let Some(h) = acc.stream(&a.stream) {
                        let cluster = cluster.clone();
                        tokio::spawn(async move {
                            let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
                            while tokio::time::Instant::now() < deadline
                                && !left_group(&cluster, &acc, &h).await
                            {
                                tokio::time::sleep(Duration::from_millis(250)).await;
                            }
                            acc.detach(&cluster, &a.stream, &a.group).await;
                        });
                    }
                    continue;
                }
                if let Err(e) = acc.attach(&cluster, &a).await {
                    tracing::error!(account = %a.account, stream = %a.stream, "starting replica: {e}");
                }
            }
            Applied::StreamRemoved {
                account,
                stream,
                group,
            } => {
                let acc = cluster.accounts.read().get(&account).cloned();
                if let Some(acc) = acc {
                    acc.detach(&cluster, &stream, &group).await;
                }
            }
            Applied::Reset { .. } => reset(&cluster).await,
            Applied::Msgs { .. } | Applied::Op { .. } | Applied::TermStart { .. } => {}
        }
    }
}

/// After the meta state came from a snapshot: runs every stream placed here and stops
/// every local one that is no longer (or differently) placed.
async fn reset(cluster: &Arc<Cluster>) {
    let state = cluster.meta_state();
    for a in state.assignments() {
        if !a.peers.iter().any(|(n, _)| *n == cluster.server) {
            continue;
        }
        let Some(acc) = cluster.accounts.read().get(&a.account).cloned() else {
            continue;
        };
        if let Err(e) = acc.attach(cluster, a).await {
            tracing::error!(account = %a.account, stream = %a.stream, "starting replica: {e}");
        }
    }
    let accounts: Vec<Arc<JsAccount>> = cluster.accounts.read().values().cloned().collect();
    for acc in accounts {
        for h in acc.streams() {
            let placed = state
                .stream(&acc.name, &h.name)
                .filter(|a| a.peers.iter().any(|(n, _)| *n == cluster.server));
            let group = h
                .replica
                .as_ref()
                .map(|r| r.group.clone())
                .unwrap_or_default();
            if placed.is_none_or(|a| a.group != group) {
                acc.detach(cluster, &h.name, &group).await;
            }
        }
    }
}

/// Whether this server is out of the stream's group: by its own view of the membership,
/// or (a removed member never hears of the final membership) by the leader's info.
async fn left_group(cluster: &Cluster, acc: &JsAccount, h: &crate::stream::StreamHandle) -> bool {
    let Some(r) = &h.replica else {
        return true;
    };
    let me = cluster.node_id();
    let in_view = super::voters(&r.raft).contains(&me);
    if !in_view {
        return true;
    }
    if r.is_leader() {
        return false;
    }
    let subject = format!("$JS.API.STREAM.INFO.{}", h.name);
    let Some(info) = request(acc, &subject, b"", Duration::from_millis(500)).await else {
        return false;
    };
    let Some(c) = info.get("cluster") else {
        return false;
    };
    let named = |v: &Value| v.as_str() == Some(cluster.server.as_str());
    let listed = named(&c["leader"])
        || c["replicas"]
            .as_array()
            .is_some_and(|rs| rs.iter().any(|p| named(&p["name"])));
    !listed && c.get("leader").is_some()
}

/// `STREAM.CREATE` on the meta leader, for a config already checked: places the
/// stream, proposes the assignment and answers with the new stream's info once its
/// leader gives it.
pub(crate) async fn create_stream(
    cluster: &Arc<Cluster>,
    acc: &Arc<JsAccount>,
    config: StreamConfig,
    origin: Option<String>,
) -> Result<Value, ApiError> {
    if let Some(have) = cluster
        .meta
        .state
        .with_machine(|m| m.meta.stream(&acc.name, &config.name).cloned())
    {
        let same = serde_json::from_str::<StreamConfig>(&have.config).ok() == Some(config.clone());
        if !same {
            return Err(errors::stream_name_exist());
        }
        return stream_info(acc, &config.name).await;
    }
    let replicas = usize::try_from(config.num_replicas.max(1)).unwrap_or(1);
    let peers = cluster.place_first_in(
        origin.as_deref(),
        replicas,
        config.placement.as_ref(),
        acc.js.config.unique_tag.as_deref(),
    )?;
    // Every clustered stream has a group, R1 too, so that its replica count can change.
    let group = format!("S-R{replicas}F-{:08x}", fastrand::u32(..));
    let initializer = peers.first().map_or(0, |(_, id)| *id);
    let a = StreamAssignment {
        initializer,
        account: acc.name.clone(),
        stream: config.name.clone(),
        config: serde_json::to_string(&config).map_err(|e| errors::stream_create(e.to_string()))?,
        created: crate::time::now_nanos(),
        peers,
        group,
    };
    cluster.propose_meta(Entry::AddStream(Box::new(a))).await?;
    let mut info = stream_info(acc, &config.name).await?;
    if let Some(o) = info.as_object_mut() {
        o.insert("did_create".into(), Value::Bool(true));
    }
    Ok(info)
}

/// `STREAM.PEER.REMOVE` on the meta leader: `peer` (a server name) leaves the stream's
/// group, replaced by another live server when there is one.
pub(crate) async fn remove_peer(
    cluster: &Arc<Cluster>,
    acc: &JsAccount,
    stream: &str,
    peer: &str,
) -> Result<(), ApiError> {
    let Some(mut a) = cluster
        .meta
        .state
        .with_machine(|m| m.meta.stream(&acc.name, stream).cloned())
    else {
        return Err(errors::stream_not_found());
    };
    if !a.peers.iter().any(|(n, _)| n == peer) {
        return Err(errors::cluster_peer_not_member());
    }
    replace_peer(cluster, &mut a, peer);
    cluster.propose_meta(Entry::AddStream(Box::new(a))).await
}

/// Takes `peer` out of `a`'s peers, putting another live server in its place if any.
pub(crate) fn replace_peer(cluster: &Cluster, a: &mut StreamAssignment, peer: &str) {
    let have: Vec<String> = a.peers.iter().map(|(n, _)| n.clone()).collect();
    a.peers.retain(|(n, _)| n != peer);
    let placement = serde_json::from_str::<StreamConfig>(&a.config)
        .ok()
        .and_then(|c| c.placement);
    if let Ok(more) = cluster.place(1, &have, placement.as_ref(), None) {
        a.peers.extend(more);
    }
}

/// `SERVER.REMOVE` on the meta leader (system account): the server leaves the meta group
/// and every stream it replicated gets another replica in its place.
pub(crate) async fn remove_server(
    cluster: &Arc<Cluster>,
    req: &types::ServerRemoveRequest,
) -> Result<(), ApiError> {
    let state = cluster.meta_state();
    let name = state
        .peers
        .iter()
        .find(|(n, id)| {
            (!req.peer.is_empty() && **n == req.peer)
                || (!req.peer_id.is_empty() && format!("{id:016x}") == req.peer_id)
        })
        .map(|(n, _)| n.clone())
        .ok_or_else(errors::cluster_server_not_member)?;
    cluster
        .propose_meta(Entry::RemovePeer { name: name.clone() })
        .await?;
    for a in state.assignments() {
        if a.peers.iter().any(|(n, _)| *n == name) {
            let mut b = a.clone();
            replace_peer(cluster, &mut b, &name);
            cluster.propose_meta(Entry::AddStream(Box::new(b))).await?;
        }
    }
    Ok(())
}

/// `STREAM.DELETE` on the meta leader.
pub(crate) async fn delete_stream(
    cluster: &Arc<Cluster>,
    acc: &Arc<JsAccount>,
    name: &str,
) -> Result<Value, ApiError> {
    cluster
        .propose_meta(Entry::RemoveStream {
            account: acc.name.clone(),
            stream: name.to_owned(),
        })
        .await?;
    Ok(json!({"success": true}))
}

/// `STREAM.UPDATE` on the meta leader, for a config already checked against the old.
pub(crate) async fn update_stream(
    cluster: &Arc<Cluster>,
    acc: &Arc<JsAccount>,
    config: StreamConfig,
) -> Result<Value, ApiError> {
    let Some(mut a) = cluster
        .meta
        .state
        .with_machine(|m| m.meta.stream(&acc.name, &config.name).cloned())
    else {
        return Err(errors::stream_not_found());
    };
    let old: StreamConfig =
        serde_json::from_str(&a.config).map_err(|e| errors::stream_update(e.to_string()))?;
    let (was, want) = (
        usize::try_from(old.num_replicas.max(1)).unwrap_or(1),
        usize::try_from(config.num_replicas.max(1)).unwrap_or(1),
    );
    let unique_tag = acc.js.config.unique_tag.as_deref();
    if old.placement != config.placement {
        // A placement change moves the stream: the peers that do not fit leave, others
        // join (they catch up from the log or the leader's store), the count kept.
        a.peers
            .retain(|(n, _)| cluster.fits(n, config.placement.as_ref()));
        let have: Vec<String> = a.peers.iter().map(|(n, _)| n.clone()).collect();
        let more = cluster.place(
            was.saturating_sub(a.peers.len()),
            &have,
            config.placement.as_ref(),
            unique_tag,
        )?;
        a.peers.extend(more);
    }
    if want > was {
        let have: Vec<String> = a.peers.iter().map(|(n, _)| n.clone()).collect();
        let more = cluster.place(want - was, &have, config.placement.as_ref(), unique_tag)?;
        a.peers.extend(more);
    } else if want < was {
        // The leader stays, so the stream keeps taking writes while it shrinks.
        let leader = stream_info(acc, &config.name)
            .await
            .ok()
            .and_then(|v| v.pointer("/cluster/leader")?.as_str().map(str::to_owned));
        a.peers
            .sort_by_key(|(n, _)| Some(n.as_str()) != leader.as_deref());
        a.peers.truncate(want);
    }
    a.config = serde_json::to_string(&config).map_err(|e| errors::stream_update(e.to_string()))?;
    cluster.propose_meta(Entry::AddStream(Box::new(a))).await?;
    updated_info(acc, &config).await
}

/// The stream's info once its leader runs with `config`, as nats-server answers an
/// update only after the stream applied it: the meta group has committed the change, but
/// the leader (often on another server) applies it from its own copy of the meta log a
/// moment later, and a client reading the info right after its update must see it. After
/// [`STREAM_READY`] the info is given as it is.
async fn updated_info(acc: &Arc<JsAccount>, config: &StreamConfig) -> Result<Value, ApiError> {
    let want = comparable(serde_json::to_value(config).unwrap_or(Value::Null));
    let deadline = tokio::time::Instant::now() + STREAM_READY;
    loop {
        let info = stream_info(acc, &config.name).await?;
        let applied = info
            .get("config")
            .cloned()
            .map(comparable)
            .is_some_and(|have| have == want);
        if applied || tokio::time::Instant::now() >= deadline {
            return Ok(info);
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A config as JSON without what the server adds on its own (`metadata`'s `_nats.*`).
fn comparable(mut v: Value) -> Value {
    if let Some(o) = v.as_object_mut() {
        o.remove("metadata");
    }
    v
}

/// The old config of a placed stream, for update checks on the meta leader.
pub(crate) fn placed_config(
    cluster: &Cluster,
    account: &str,
    stream: &str,
) -> Option<StreamConfig> {
    let a = cluster
        .meta
        .state
        .with_machine(|m| m.meta.stream(account, stream).cloned())?;
    serde_json::from_str(&a.config).ok()
}

/// The configs of every placed stream of `account` but `except` (overlap checks).
pub(crate) fn placed_configs(cluster: &Cluster, account: &str, except: &str) -> Vec<StreamConfig> {
    cluster.meta.state.with_machine(|m| {
        m.meta
            .streams
            .get(account)
            .map(|s| {
                s.values()
                    .filter(|a| a.stream != except)
                    .filter_map(|a| serde_json::from_str(&a.config).ok())
                    .collect()
            })
            .unwrap_or_default()
    })
}

/// `STREAM.NAMES` on the meta leader: every placed stream of the account.
pub(crate) fn stream_names(
    cluster: &Cluster,
    acc: &JsAccount,
    req: &types::StreamNamesRequest,
) -> Vec<String> {
    placed_configs(cluster, &acc.name, "")
        .into_iter()
        .filter(
            |c| match Some(req.subject.as_str()).filter(|x| !x.is_empty()) {
                None => true,
                Some(f) => crate::stream::Stream::subjects(c)
                    .iter()
                    .any(|s| crate::subject::collide(f, s)),
            },
        )
        .map(|c| c.name)
        .collect()
}

/// Asks the stream's leader, wherever it runs, for its info (`STREAM.INFO`), retrying
/// while the stream's group elects its first leader.
pub(crate) async fn stream_info(acc: &Arc<JsAccount>, name: &str) -> Result<Value, ApiError> {
    let deadline = tokio::time::Instant::now() + STREAM_READY;
    loop {
        // Asked here directly when this server leads it: the API task that would
        // answer a request is the one waiting for it.
        if let Some(h) = acc.stream(name)
            && h.is_leader()
        {
            return h
                .call(crate::stream::Call::Info {
                    deleted: false,
                    subjects: None,
                    offset: 0,
                    cluster: true,
                })
                .await;
        }
        let subject = format!("$JS.API.STREAM.INFO.{name}");
        if let Some(mut v) = request(acc, &subject, b"", Duration::from_millis(500)).await
            && let Some(o) = v.as_object_mut()
        {
            if let Some(e) = o.get("error")
                && let Ok(e) = serde_json::from_value::<ApiError>(e.clone())
            {
                return Err(e);
            }
            o.remove("type");
            return Ok(v);
        }
        if tokio::time::Instant::now() >= deadline {
            return Err(errors::cluster_not_avail());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// One request in `acc` from the server itself, answered by whichever server's API
/// handles it; `None` on timeout or an answer that is not JSON.
pub(crate) async fn request(
    acc: &JsAccount,
    subject: &str,
    body: &[u8],
    timeout: Duration,
) -> Option<Value> {
    let out = request_raw(acc.js.bus.as_ref(), &acc.name, subject, body, timeout).await?;
    serde_json::from_slice(&out).ok()
}

/// One request in `account` from the server itself; the answer's payload.
pub(crate) async fn request_raw(
    bus: &dyn crate::bus::Bus,
    account: &str,
    subject: &str,
    body: &[u8],
    timeout: Duration,
) -> Option<Vec<u8>> {
    let (tx, rx) = oneshot::channel::<Vec<u8>>();
    let tx = parking_lot::Mutex::new(Some(tx));
    let conn = bus
        .connect(
            account,
            Box::new(move |m| {
                if let Some(tx) = tx.lock().take() {
                    let _ = tx.send(m.payload.to_vec());
                }
            }),
        )
        .ok()?;
    let inbox = format!("_INBOX.JSC.{:016x}", fastrand::u64(..));
    let sid = conn.subscribe(&inbox, None).ok()?;
    conn.publish(subject, Some(&inbox), &[], body);
    let out = tokio::time::timeout(timeout, rx).await.ok()?.ok()?;
    conn.unsubscribe(sid);
    Some(out)
}
