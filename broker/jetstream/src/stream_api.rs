//! API calls a stream's actor answers itself: info, update, purge, message get and
//! delete, and everything about its consumers. Each runs inside the actor, so it sees
//! the stream exactly between two commits.

use serde_json::{Value, json};

use crate::account::{API_LIMIT, LIST_LIMIT};
use crate::api::errors::{self, ApiError};
use crate::api::types::{self, ConsumerAction, ConsumerConfig, StreamState};
use crate::consumer::{Consumer, ConsumerCtx};
use crate::store::Store;
use crate::stream::{Call, Stream, blocking, store_error};
use crate::time::now_nanos;

/// Most subjects `STREAM.INFO` lists per page (nats-server's `JSMaxSubjectDetails`).
const MAX_SUBJECT_DETAILS: usize = 100_000;

macro_rules! ctx {
    ($s:expr) => {
        ConsumerCtx {
            stream: &$s.name,
            config: &$s.config,
            store: $s.store.as_ref(),
            conn: $s.conn.as_ref(),
        }
    };
}

pub(crate) async fn call(s: &mut Stream, call: Call) -> Result<Value, ApiError> {
    match call {
        Call::Info {
            deleted,
            subjects,
            offset,
            cluster,
        } => info(s, deleted, subjects.as_deref(), offset, cluster),
        Call::Update(config) => update(s, *config).await,
        Call::Purge(p) => {
            if s.config.sealed {
                return Err(errors::stream_sealed());
            }
            if s.config.deny_purge {
                return Err(errors::stream_purge_failed("stream purge not permitted"));
            }
            let entry = crate::cluster::machine::Entry::Purge {
                filter: p.filter.clone(),
                seq: p.seq,
                keep: p.keep,
            };
            if !s.replicate_op(entry).await {
                return Err(errors::cluster_not_avail());
            }
            let store = s.store.clone();
            let purged = blocking(move || store.purge(&p))
                .await
                .map_err(|e| errors::stream_purge_failed(e.to_string()))?;
            s.after_purge();
            Ok(json!({"success": true, "purged": purged}))
        }
        Call::GetMsg(req) => get_msg(s, &req),
        Call::DeleteMsg { seq, no_erase } => {
            if s.config.sealed {
                return Err(errors::stream_sealed());
            }
            if s.config.deny_delete {
                return Err(errors::stream_msg_delete_failed(
                    "message delete not permitted",
                ));
            }
            if s.replica.is_some() {
                let store = s.store.clone();
                let have = blocking(move || store.load(seq))
                    .await
                    .map_err(|e| errors::stream_msg_delete_failed(e.to_string()))?;
                if have.is_none() {
                    return Err(errors::sequence_not_found(seq));
                }
                let entry = crate::cluster::machine::Entry::Remove {
                    seqs: vec![seq],
                    erase: !no_erase,
                };
                if !s.replicate_op(entry).await {
                    return Err(errors::cluster_not_avail());
                }
            }
            let store = s.store.clone();
            let removed = blocking(move || store.remove(seq, !no_erase))
                .await
                .map_err(|e| errors::stream_msg_delete_failed(e.to_string()))?;
            if !removed {
                return Err(errors::sequence_not_found(seq));
            }
            s.removed(&[seq]);
            Ok(json!({"success": true}))
        }
        Call::ConsumerCreate {
            config,
            action,
            pedantic,
        } => consumer_create(s, *config, action, pedantic).await,
        Call::ConsumerInfo(name) => {
            let ctx = ctx!(s);
            let c = s
                .consumers
                .get_mut(&name)
                .ok_or_else(errors::consumer_not_found)?;
            to_value(&consumer_info(c, &ctx, &s.version))
        }
        Call::ConsumerDelete(name) => {
            if !s.delete_consumer(&name).await {
                return Err(errors::consumer_not_found());
            }
            advisory_consumer(s, "DELETED", &name, "delete");
            Ok(json!({"success": true}))
        }
        Call::ConsumerNames { offset } => {
            // A mirror's or source's consumer is not listed, as in nats-server.
            let names: Vec<String> = s
                .consumers
                .iter()
                .filter(|(_, c)| !c.config.direct)
                .map(|(n, _)| n.clone())
                .collect();
            let total = names.len();
            let page: Vec<String> = names.into_iter().skip(offset).take(API_LIMIT).collect();
            Ok(json!({"total": total, "offset": offset, "limit": API_LIMIT, "consumers": page}))
        }
        Call::ConsumerList { offset } => {
            let ctx = ctx!(s);
            let total = s.public_consumers();
            let mut infos = Vec::new();
            let public = s.consumers.values_mut().filter(|c| !c.config.direct);
            for c in public.skip(offset).take(LIST_LIMIT) {
                infos.push(to_value(&c.info(&ctx))?);
            }
            Ok(json!({"total": total, "offset": offset, "limit": LIST_LIMIT, "consumers": infos}))
        }
        Call::ConsumerPause { name, until } => {
            let c = s
                .consumers
                .get_mut(&name)
                .ok_or_else(errors::consumer_not_found)?;
            let mut cfg = c.config.clone();
            cfg.pause_until = until;
            c.update(cfg);
            let remaining = until.map_or(0, |t| (t - now_nanos()).max(0));
            let mut v = json!({"paused": remaining > 0});
            if let (Some(o), Some(t)) = (v.as_object_mut(), until) {
                o.insert("pause_until".into(), Value::String(crate::time::rfc3339(t)));
                if remaining > 0 {
                    o.insert("pause_remaining".into(), json!(remaining));
                }
            }
            save_consumer_config(s, &name).await?;
            Ok(v)
        }
        Call::Snapshot(take) => crate::snapshot::take(s, take).await,
        Call::ConsumerUnpin { name, group } => {
            let ctx = ctx!(s);
            let c = s
                .consumers
                .get_mut(&name)
                .ok_or_else(errors::consumer_not_found)?;
            if !c.config.priority_groups.contains(&group) {
                return Err(errors::consumer_invalid_priority_group());
            }
            // The next message may go to another client at once: the stream delivers
            // after every command.
            c.unpin(&ctx, &group);
            Ok(json!({}))
        }
    }
}

fn to_value<T: serde::Serialize>(v: &T) -> Result<Value, ApiError> {
    serde_json::to_value(v).map_err(|e| errors::stream_general(e.to_string()))
}

/// `StreamInfo` for the stream as it is now.
fn api_level() -> u32 {
    u32::try_from(crate::API_LEVEL).unwrap_or(u32::MAX)
}

/// A consumer's info as `CONSUMER.INFO` and create answer it: its config with the
/// response-only metadata.
fn consumer_info(c: &mut Consumer, ctx: &ConsumerCtx<'_>, version: &str) -> types::ConsumerInfo {
    let mut info = c.info(ctx);
    if let Some(cfg) = &mut info.config {
        *cfg = cfg.with_dynamic_metadata(version, api_level());
    }
    info
}

/// `StreamInfo`; `with_cluster` for `STREAM.INFO` and lists (a single server names itself
/// leader there, not in create and update answers).
fn info(
    s: &mut Stream,
    deleted: bool,
    subjects: Option<&str>,
    offset: usize,
    with_cluster: bool,
) -> Result<Value, ApiError> {
    let mut state = s.info_state(deleted, subjects);
    // Subject details come in pages of `MAX_SUBJECT_DETAILS`, sorted, from `offset`
    // (nats-server's paging; clients ask for the next page until one is empty).
    let matched = state.subjects.len();
    let offset = offset.min(matched);
    if offset > 0 || matched > MAX_SUBJECT_DETAILS {
        state.subjects = std::mem::take(&mut state.subjects)
            .into_iter()
            .skip(offset)
            .take(MAX_SUBJECT_DETAILS)
            .collect();
    }
    let info = types::StreamInfo {
        config: s.config.with_dynamic_metadata(&s.version, api_level()),
        created: s.created,
        state,
        cluster: with_cluster.then(|| s.cluster_info()),
        mirror: s.sourcing.mirror_info(),
        sources: s.sourcing.sources_info(),
        ts: now_nanos(),
        ..types::StreamInfo::default()
    };
    let mut v = to_value(&info)?;
    if subjects.is_some()
        && let Some(o) = v.as_object_mut()
    {
        // All zero when nothing matched, as nats-server leaves them.
        let (offset, limit) = if matched > 0 {
            (offset, MAX_SUBJECT_DETAILS)
        } else {
            (0, 0)
        };
        o.insert("total".into(), json!(matched));
        o.insert("offset".into(), json!(offset));
        o.insert("limit".into(), json!(limit));
    }
    Ok(v)
}

/// The `state` of a `StreamInfo`.
pub(crate) fn state_of(
    store: &dyn Store,
    deleted: bool,
    subjects: Option<&str>,
    consumers: usize,
) -> StreamState {
    let st = store.state();
    StreamState {
        messages: st.msgs,
        bytes: st.bytes,
        // A stream never written to reports 0, as nats-server's does.
        first_seq: if st.last_seq == 0 { 0 } else { st.first_seq },
        first_ts: st.first_ts,
        last_seq: st.last_seq,
        last_ts: st.last_ts,
        num_deleted: i64::try_from(st.num_deleted).unwrap_or(i64::MAX),
        deleted: if deleted {
            store.deleted().unwrap_or_default()
        } else {
            Vec::new()
        },
        num_subjects: i64::try_from(st.num_subjects).unwrap_or(i64::MAX),
        subjects: subjects
            .and_then(|f| store.subjects(f).ok())
            .unwrap_or_default(),
        consumer_count: consumers as i64,
        ..StreamState::default()
    }
}

async fn update(s: &mut Stream, config: types::StreamConfig) -> Result<Value, ApiError> {
    let consumers = s.consumers.iter().map(|(n, c)| (n, &c.config));
    crate::validate::stream_update_consumers(&s.config, &config, consumers)?;
    let limits_changed = crate::stream::limits_of(&config) != s.set_limits_from_config();
    let subjects_changed = Stream::subjects(&config) != Stream::subjects(&s.config);
    let record = serde_json::to_vec(&json!({"config": config, "created": s.created}))
        .map_err(|e| errors::stream_update(e.to_string()))?;
    let store = s.store.clone();
    blocking(move || store.put_meta(&[("stream/config".to_owned(), Some(record))]))
        .await
        .map_err(|e| errors::stream_update(e.to_string()))?;
    s.config = config;
    if limits_changed {
        let store = s.store.clone();
        let limits = crate::stream::limits_of(&s.config);
        let removed = blocking(move || store.set_limits(limits))
            .await
            .map_err(|e| store_error(&e))?;
        if !removed.is_empty() {
            s.removed(&removed);
        }
    }
    if subjects_changed {
        s.resubscribe()?;
    }
    s.config_changed();
    info(s, false, None, 0, false)
}

fn get_msg(s: &Stream, req: &types::MsgGetRequest) -> Result<Value, ApiError> {
    let last = Some(req.last_by_subj.as_str()).filter(|x| !x.is_empty());
    let next = Some(req.next_by_subj.as_str()).filter(|x| !x.is_empty());
    if req.batch > 0 || req.max_bytes > 0 {
        return Err(errors::bad_request());
    }
    if (req.seq > 0 && last.is_some())
        || (req.seq == 0 && last.is_none() && next.is_none() && req.start_time.is_none())
        || (req.seq > 0 && req.start_time.is_some())
        || (req.start_time.is_some() && last.is_some())
        || (last.is_some() && next.is_some())
    {
        return Err(errors::bad_request());
    }
    let seq = match req.start_time {
        Some(t) => s.store.seq_for_time(t).unwrap_or(u64::MAX),
        None => req.seq,
    };
    let found = if let Some(n) = next {
        s.store.load_next(seq, &[n.to_owned()])
    } else if seq > 0 {
        s.store.load(seq)
    } else if let Some(l) = last {
        s.store.load_last(l, None)
    } else {
        Ok(None)
    };
    let m = found.ok().flatten().ok_or_else(errors::no_message_found)?;
    let stored = types::StoredMsg {
        subject: m.subject,
        seq: m.seq,
        hdrs: if req.no_hdr {
            bytes::Bytes::new()
        } else {
            m.hdr
        },
        data: m.data,
        time: m.ts,
    };
    Ok(json!({"message": stored}))
}

async fn consumer_create(
    s: &mut Stream,
    config: ConsumerConfig,
    action: ConsumerAction,
    pedantic: bool,
) -> Result<Value, ApiError> {
    let account = s.quota.as_ref().map(|q| q.limits).unwrap_or_default();
    let mut config = crate::validate::consumer_config(
        &config,
        &s.config,
        &s.limits,
        account.max_ack_pending,
        pedantic,
    )?;
    config.set_static_metadata();
    let name = [&config.durable_name, &config.name]
        .into_iter()
        .find(|n| !n.is_empty())
        .cloned()
        .unwrap_or_else(|| crate::time::nuid()[..8].to_owned());
    // A legacy ephemeral shows its generated name in its config, as in nats-server.
    if config.name.is_empty() {
        config.name.clone_from(&name);
    }
    if let Some(existing) = s.consumers.get(&name) {
        if action == ConsumerAction::Create && existing.config != config {
            return Err(errors::consumer_already_exists());
        }
        if s.config.retention == types::RetentionPolicy::WorkQueue {
            let all = s.consumers.values().map(|c| &c.config);
            crate::validate::work_queue_unique(&config, all)?;
        }
        let old = &existing.config.deliver_subject;
        let bound = !old.is_empty() && s.conn.has_interest(old);
        if existing.config != config {
            let updated = crate::validate::consumer_update(&existing.config, &config, bound)?;
            if let Some(existing) = s.consumers.get_mut(&name) {
                existing.update(updated);
            }
            save_consumer_config(s, &name).await?;
            advisory_consumer(s, "UPDATED", &name, "update");
        }
        let ctx = ctx!(s);
        let c = s
            .consumers
            .get_mut(&name)
            .ok_or_else(errors::consumer_not_found)?;
        return to_value(&consumer_info(c, &ctx, &s.version));
    }
    if action == ConsumerAction::Update {
        return Err(errors::consumer_does_not_exist());
    }
    // The stream's limit, or the account's where that is lower (nats-server applies the
    // account's `max_consumers` to each stream).
    let max_consumers = match (s.config.max_consumers, account.max_consumers) {
        (stream, acc) if stream <= 0 || (acc > 0 && acc < stream) => acc,
        (stream, _) => stream,
    };
    if max_consumers > 0 && !config.direct && s.public_consumers() as i64 >= max_consumers {
        return Err(errors::maximum_consumers_limit());
    }
    crate::validate::new_consumer(&config, &s.config, s.consumers.values().map(|c| &c.config))?;
    let ctx = ctx!(s);
    let mut c = Consumer::new(name.clone(), config, &ctx);
    c.set_origin(origin(s));
    s.consumers.insert(name.clone(), c);
    if let Err(e) = save_consumer_config(s, &name).await {
        s.consumers.remove(&name);
        return Err(e);
    }
    advisory_consumer(s, "CREATED", &name, "create");
    let ctx = ctx!(s);
    let c = s
        .consumers
        .get_mut(&name)
        .ok_or_else(errors::consumer_not_found)?;
    // The answer shows the consumer as created, before it sends anything (nats-server's
    // `initialInfo`): a mirror or source reads its starting point from it.
    let info = consumer_info(c, &ctx, &s.version);
    let _more = c.deliver(&ctx);
    to_value(&info)
}

/// Writes a consumer's config record (durable and ephemeral alike: an ephemeral
/// consumer survives a restart until its inactive threshold, as in nats-server). A
/// direct consumer (a mirror's or source's) is not written: it lives in memory only, as
/// in nats-server, and its owner makes a new one when it needs to.
async fn save_consumer_config(s: &Stream, name: &str) -> Result<(), ApiError> {
    let Some(c) = s.consumers.get(name) else {
        return Err(errors::consumer_not_found());
    };
    if c.config.direct {
        return Ok(());
    }
    let record = serde_json::to_vec(&json!({"config": c.config, "created": c.created}))
        .map_err(|e| errors::consumer_create(e.to_string()))?;
    let key = format!("consumer/{name}/config");
    // Replicated first: a consumer exists once its group has it.
    if !s
        .replicate_meta(vec![(key.clone(), Some(record.clone()))])
        .await
    {
        return Err(errors::cluster_not_avail());
    }
    let store = s.store.clone();
    blocking(move || store.put_meta(&[(key, Some(record))]))
        .await
        .map_err(|e| errors::consumer_store_failed(e.to_string()))
}

/// Where the stream's consumers live (see [`crate::consumer::Origin`]).
pub(crate) fn origin(s: &Stream) -> crate::consumer::Origin {
    crate::consumer::Origin {
        account: s.sourcing.account().to_owned(),
        domain: s.domain.clone(),
        max_payload: s.limits.max_payload,
    }
}

fn advisory_consumer(s: &Stream, what: &str, consumer: &str, action: &str) {
    let body = json!({
        "type": "io.nats.jetstream.advisory.v1.consumer_action",
        "id": crate::time::nuid(),
        "timestamp": crate::time::rfc3339(now_nanos()),
        "stream": s.name,
        "consumer": consumer,
        "action": action,
    });
    if let Ok(b) = serde_json::to_vec(&body) {
        s.conn.publish(
            &format!("$JS.EVENT.ADVISORY.CONSUMER.{what}.{}.{consumer}", s.name),
            None,
            &[],
            &b,
        );
    }
}
