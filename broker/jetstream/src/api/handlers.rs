//! The `$JS.API.>` requests of one account, answered as nats-server answers them: the
//! request subject names the operation (and the stream or consumer), the body is JSON,
//! the reply is a JSON response with its `type` and, on failure, an `error` with
//! nats-server's code, error code and text.

use std::sync::Arc;

use serde_json::{Value, json};

use super::errors::{self, ApiError};
use super::json::decode_request;
use super::types;
use crate::account::JsAccount;
use crate::bus::Msg;
use crate::stream::Call;

/// The subjects the API listens on (nats-server's list): anything else under
/// `$JS.API.` has no responder, so clients get "no responders" rather than a timeout.
pub const SUBJECTS: &[&str] = &[
    "INFO",
    "STREAM.CREATE.*",
    "STREAM.UPDATE.*",
    "STREAM.NAMES",
    "STREAM.LIST",
    "STREAM.INFO.*",
    "STREAM.DELETE.*",
    "STREAM.PURGE.*",
    "STREAM.MSG.DELETE.*",
    "STREAM.MSG.GET.*",
    "STREAM.SNAPSHOT.*",
    "STREAM.LEADER.STEPDOWN.*",
    "STREAM.PEER.REMOVE.*",
    "STREAM.RESTORE.*",
    "CONSUMER.CREATE.*",
    "CONSUMER.CREATE.*.>",
    "CONSUMER.DURABLE.CREATE.*.*",
    "CONSUMER.NAMES.*",
    "CONSUMER.LIST.*",
    "CONSUMER.INFO.*.*",
    "CONSUMER.DELETE.*.*",
    "CONSUMER.PAUSE.*.*",
    "CONSUMER.UNPIN.*.*",
    "CONSUMER.MSG.NEXT.*.*",
];

/// Handles one API request (already stripped to `$JS.API.` form).
pub async fn handle(acc: &Arc<JsAccount>, subject: &str, msg: &Msg) {
    let Some(reply) = msg.reply.as_deref() else {
        return;
    };
    let Some(op) = subject.strip_prefix("$JS.API.") else {
        return;
    };
    let tokens: Vec<&str> = op.split('.').collect();
    // Clustered: a server whose cluster part is still starting answers nothing (it does
    // not know who leads); afterwards, only the leader that owns the request answers.
    if acc.js.config.cluster.is_some() {
        match acc.js.cluster() {
            Some(cluster) if answers_here(cluster, acc, &tokens) => {}
            _ => return,
        }
    }
    // Pull requests go straight to their stream: no response envelope, no audit.
    if let ["CONSUMER", "MSG", "NEXT", stream, consumer] = tokens.as_slice() {
        acc.pull_request(stream, consumer, msg.clone());
        return;
    }
    acc.js
        .api_total
        .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
    let (kind, result) = if requires_newer_api(&msg.headers) {
        (kind_of(&tokens), Err(errors::required_api_level()))
    } else {
        dispatch(acc, &tokens, msg).await
    };
    let identity = match (&result, tokens.as_slice()) {
        (Ok(v), ["CONSUMER", "CREATE", stream, ..])
            if v.pointer("/config/direct") == Some(&Value::Bool(true)) =>
        {
            stream_identity(acc, stream).await
        }
        _ => None,
    };
    let body = match result {
        Ok(mut v) => {
            if let Some(o) = v.as_object_mut() {
                let mut out = serde_json::Map::new();
                out.insert("type".into(), Value::String(response_type(kind)));
                out.extend(std::mem::take(o));
                Value::Object(out)
            } else {
                v
            }
        }
        Err(e) => {
            acc.js
                .api_errors
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let mut v = json!({"type": response_type(kind), "error": e});
            if let (Some(o), Value::Object(zero)) = (v.as_object_mut(), zero_body(kind)) {
                o.extend(zero);
            }
            v
        }
    };
    if let Ok(bytes) = super::json::to_vec(&body) {
        let hdr = identity.map_or_else(Vec::new, |id| {
            crate::headers::Builder::new()
                .add("Nats-Stream-Identity", id)
                .build()
        });
        acc.conn.publish(reply, None, &hdr, &bytes);
        audit(acc, subject, &msg.payload, &bytes);
    }
}

/// Clustered JetStream: whether this server answers a request that every server of the
/// cluster receives. A stream's own requests are its leader's; the rest (and requests
/// for streams that do not exist) are the meta leader's, as in nats-server.
fn answers_here(cluster: &crate::cluster::Cluster, acc: &JsAccount, t: &[&str]) -> bool {
    let stream = match t {
        ["STREAM", "PEER", "REMOVE", _] => None,
        ["STREAM", "INFO" | "PURGE" | "SNAPSHOT", s]
        | ["STREAM", "MSG", "GET" | "DELETE", s]
        | ["STREAM", "LEADER", "STEPDOWN", s]
        | [
            "CONSUMER",
            "CREATE" | "NAMES" | "LIST" | "INFO" | "DELETE" | "PAUSE" | "UNPIN",
            s,
            ..,
        ]
        | ["CONSUMER", "DURABLE", "CREATE", s, _]
        | ["CONSUMER", "MSG", "NEXT", s, _] => Some(*s),
        _ => None,
    };
    match stream.map(|s| (s, acc.stream(s))) {
        None => cluster.is_meta_leader(),
        Some((_, Some(h))) => h.is_leader(),
        Some((s, None)) => {
            cluster.is_meta_leader()
                && cluster
                    .meta
                    .state
                    .with_machine(|m| m.meta.stream(&acc.name, s).is_none())
        }
    }
}

/// `$JS.EVENT.ADVISORY.API`: every answered request with its answer, as nats-server
/// publishes it, built only while someone listens.
fn audit(acc: &JsAccount, subject: &str, request: &[u8], response: &[u8]) {
    if !acc.conn.has_interest(types::advisory_subject::API_AUDIT) {
        return;
    }
    let event = types::ApiAudit {
        event: types::TypedEvent {
            r#type: types::advisory_type::API_AUDIT.to_owned(),
            id: crate::time::nuid(),
            timestamp: crate::time::now_nanos(),
        },
        server: acc.js.config.server_name.clone(),
        // The core's internal connections do not say who published.
        client: None,
        subject: subject.to_owned(),
        request: String::from_utf8_lossy(request).into_owned(),
        response: String::from_utf8_lossy(response).into_owned(),
        domain: acc.js.config.domain.clone().unwrap_or_default(),
    };
    if let Ok(b) = super::json::to_vec(&event) {
        acc.conn
            .publish(types::advisory_subject::API_AUDIT, None, &[], &b);
    }
}

/// A stream's identity as nats-server gives it to the mirrors and sources that create a
/// consumer on it (`Nats-Stream-Identity`, which their `Nats-Stream-Source` headers
/// carry): a hash of its creation time, so a recreated stream has another one.
async fn stream_identity(acc: &Arc<JsAccount>, stream: &str) -> Option<String> {
    let info = acc
        .stream_call(
            stream,
            Call::Info {
                deleted: false,
                subjects: None,
                offset: 0,
                cluster: false,
            },
        )
        .await
        .ok()?;
    let created = info.get("created")?.as_str()?;
    Some(crate::source::get_hash(created))
}

/// A request that names a minimum API level (`Nats-Required-Api-Level`) above ours, or
/// one that does not parse, is refused as nats-server refuses it.
fn requires_newer_api(hdr: &[u8]) -> bool {
    if hdr.is_empty() {
        return false;
    }
    crate::headers::get(hdr, "Nats-Required-Api-Level")
        .is_some_and(|v| v.parse::<u64>().map_or(true, |l| l > crate::API_LEVEL))
}

/// The response type of a request, for answers made before dispatch.
fn kind_of(t: &[&str]) -> &'static str {
    match t {
        ["INFO"] => "account_info",
        ["STREAM", "CREATE", ..] => "stream_create",
        ["STREAM", "UPDATE", ..] => "stream_update",
        ["STREAM", "NAMES"] => "stream_names",
        ["STREAM", "LIST"] => "stream_list",
        ["STREAM", "INFO", ..] => "stream_info",
        ["STREAM", "DELETE", ..] => "stream_delete",
        ["STREAM", "PURGE", ..] => "stream_purge",
        ["STREAM", "MSG", "GET", ..] => "stream_msg_get",
        ["STREAM", "MSG", "DELETE", ..] => "stream_msg_delete",
        ["STREAM", "SNAPSHOT", ..] => "stream_snapshot",
        ["STREAM", "RESTORE", ..] => "stream_restore",
        ["CONSUMER", "CREATE", ..] | ["CONSUMER", "DURABLE", ..] => "consumer_create",
        ["CONSUMER", "INFO", ..] => "consumer_info",
        ["CONSUMER", "DELETE", ..] => "consumer_delete",
        ["CONSUMER", "NAMES", ..] => "consumer_names",
        ["CONSUMER", "LIST", ..] => "consumer_list",
        ["CONSUMER", "PAUSE", ..] => "consumer_pause",
        ["CONSUMER", "UNPIN", ..] => "consumer_unpin",
        ["STREAM", "LEADER", "STEPDOWN", ..] => "stream_leader_stepdown",
        ["STREAM", "PEER", "REMOVE", ..] => "stream_remove_peer",
        _ => "system",
    }
}

/// The fields a failed response still carries: nats-server sends the response struct
/// with the error set and the rest at its zero value (`"purged":0`, `"streams":[]`, ...).
fn zero_body(kind: &str) -> Value {
    use types::{
        ConsumerListResponse, ConsumerNamesResponse, ConsumerPauseResponse, StreamListResponse,
        StreamNamesResponse, StreamPurgeResponse,
    };
    let v = match kind {
        "stream_names" => serde_json::to_value(StreamNamesResponse::default()),
        "stream_list" => serde_json::to_value(StreamListResponse::default()),
        "stream_purge" => serde_json::to_value(StreamPurgeResponse::default()),
        "consumer_names" => serde_json::to_value(ConsumerNamesResponse::default()),
        "consumer_list" => serde_json::to_value(ConsumerListResponse::default()),
        "consumer_pause" => serde_json::to_value(ConsumerPauseResponse::default()),
        "stream_restore" => serde_json::to_value(types::StreamRestoreResponse::default()),
        _ => Ok(Value::Null),
    };
    v.unwrap_or(Value::Null)
}

fn response_type(kind: &str) -> String {
    format!("io.nats.jetstream.api.v1.{kind}_response")
}

type Answer = (&'static str, Result<Value, ApiError>);

async fn dispatch(acc: &Arc<JsAccount>, t: &[&str], msg: &Msg) -> Answer {
    let body = &msg.payload[..];
    let strict = acc.js.config.strict;
    match t {
        ["INFO"] => ("account_info", Ok(acc.info())),
        ["STREAM", "CREATE", name] => (
            "stream_create",
            match types::StreamConfigRequest::decode(body, strict) {
                Ok(req) => {
                    // In a supercluster a stream goes to the asking client's cluster
                    // unless its placement names one, as in nats-server.
                    let origin = msg
                        .reply
                        .as_deref()
                        .and_then(|r| acc.js.bus.reply_cluster(r));
                    acc.create_stream(name, req.config, req.pedantic, origin)
                        .await
                }
                Err(e) => Err(e),
            },
        ),
        ["STREAM", "UPDATE", name] => (
            "stream_update",
            match types::StreamConfigRequest::decode(body, strict) {
                Ok(req) => acc.update_stream(name, req.config, req.pedantic).await,
                Err(e) => Err(e),
            },
        ),
        ["STREAM", "NAMES"] => (
            "stream_names",
            match decode_request::<types::StreamNamesRequest>(body, strict) {
                Ok(req) => Ok(acc.stream_names(&req)),
                Err(e) => Err(e),
            },
        ),
        ["STREAM", "LIST"] => (
            "stream_list",
            match decode_request::<types::StreamNamesRequest>(body, strict) {
                Ok(req) => Ok(acc.stream_list(&req).await),
                Err(e) => Err(e),
            },
        ),
        ["STREAM", "INFO", name] => (
            "stream_info",
            match decode_request::<types::StreamInfoRequest>(body, strict) {
                Ok(req) => {
                    acc.stream_call(
                        name,
                        Call::Info {
                            deleted: req.deleted_details,
                            subjects: Some(req.subjects_filter).filter(|s| !s.is_empty()),
                            offset: usize::try_from(req.offset).unwrap_or(0),
                            cluster: true,
                        },
                    )
                    .await
                }
                Err(e) => Err(e),
            },
        ),
        ["STREAM", "DELETE", name] => ("stream_delete", acc.delete_stream(name).await),
        ["STREAM", "LEADER", "STEPDOWN", name] => (
            "stream_leader_stepdown",
            match (
                acc.js.cluster(),
                acc.stream(name).and_then(|h| h.replica.clone()),
            ) {
                (None, _) => Err(errors::cluster_required()),
                (_, Some(r)) => r.step_down().await.map(|()| json!({"success": true})),
                (_, None) => Err(errors::stream_not_found()),
            },
        ),
        ["STREAM", "PEER", "REMOVE", name] => (
            "stream_remove_peer",
            match (
                acc.js.cluster(),
                decode_request::<types::PeerRemoveRequest>(body, strict),
            ) {
                (None, _) => Err(errors::cluster_required()),
                (_, Err(e)) => Err(e),
                (Some(c), Ok(req)) => crate::cluster::meta::remove_peer(c, acc, name, &req.peer)
                    .await
                    .map(|()| json!({"success": true})),
            },
        ),
        ["STREAM", "PURGE", name] => (
            "stream_purge",
            match decode_request::<types::StreamPurgeRequest>(body, strict) {
                Ok(req) => {
                    if req.seq > 0 && req.keep > 0 {
                        Err(errors::bad_request())
                    } else {
                        acc.stream_call(
                            name,
                            Call::Purge(crate::store::Purge {
                                filter: Some(req.filter).filter(|f| !f.is_empty()),
                                seq: Some(req.seq).filter(|s| *s > 0),
                                keep: Some(req.keep).filter(|k| *k > 0),
                            }),
                        )
                        .await
                    }
                }
                Err(e) => Err(e),
            },
        ),
        ["STREAM", "MSG", "GET", name] => (
            "stream_msg_get",
            match decode_request::<types::MsgGetRequest>(body, strict) {
                Ok(req) => acc.stream_call(name, Call::GetMsg(req)).await,
                Err(e) => Err(e),
            },
        ),
        ["STREAM", "MSG", "DELETE", name] => (
            "stream_msg_delete",
            match decode_request::<types::MsgDeleteRequest>(body, strict) {
                Ok(req) => {
                    acc.stream_call(
                        name,
                        Call::DeleteMsg {
                            seq: req.seq,
                            no_erase: req.no_erase,
                        },
                    )
                    .await
                }
                Err(e) => Err(e),
            },
        ),
        ["STREAM", "SNAPSHOT", name] => (
            "stream_snapshot",
            crate::snapshot::snapshot(acc, name, body).await,
        ),
        ["STREAM", "RESTORE", name] => (
            "stream_restore",
            crate::snapshot::restore(acc, name, body).await,
        ),
        ["CONSUMER", "CREATE", stream, rest @ ..] => (
            "consumer_create",
            consumer_create(
                acc,
                stream,
                rest.first().copied(),
                &rest.join("."),
                false,
                body,
            )
            .await,
        ),
        ["CONSUMER", "DURABLE", "CREATE", stream, durable] => (
            "consumer_create",
            consumer_create(acc, stream, Some(durable), durable, true, body).await,
        ),
        ["CONSUMER", "INFO", stream, name] => (
            "consumer_info",
            acc.stream_call(stream, Call::ConsumerInfo((*name).to_owned()))
                .await,
        ),
        ["CONSUMER", "DELETE", stream, name] => (
            "consumer_delete",
            acc.stream_call(stream, Call::ConsumerDelete((*name).to_owned()))
                .await,
        ),
        ["CONSUMER", "NAMES", stream] => (
            "consumer_names",
            match decode_request::<types::ConsumersRequest>(body, strict) {
                Ok(req) => {
                    acc.stream_call(
                        stream,
                        Call::ConsumerNames {
                            offset: usize::try_from(req.offset).unwrap_or(0),
                        },
                    )
                    .await
                }
                Err(e) => Err(e),
            },
        ),
        ["CONSUMER", "LIST", stream] => (
            "consumer_list",
            match decode_request::<types::ConsumersRequest>(body, strict) {
                Ok(req) => {
                    acc.stream_call(
                        stream,
                        Call::ConsumerList {
                            offset: usize::try_from(req.offset).unwrap_or(0),
                        },
                    )
                    .await
                }
                Err(e) => Err(e),
            },
        ),
        ["CONSUMER", "PAUSE", stream, name] => (
            "consumer_pause",
            match decode_request::<types::ConsumerPauseRequest>(body, strict) {
                Ok(req) => {
                    acc.stream_call(
                        stream,
                        Call::ConsumerPause {
                            name: (*name).to_owned(),
                            until: Some(req.pause_until).filter(|t| *t != 0),
                        },
                    )
                    .await
                }
                Err(e) => Err(e),
            },
        ),
        ["CONSUMER", "UNPIN", stream, name] => (
            "consumer_unpin",
            match decode_request::<types::ConsumerUnpinRequest>(body, strict) {
                // Checked before the stream and consumer are looked up, as nats-server.
                Ok(req) if req.group.is_empty() => {
                    Err(errors::invalid_json("consumer group not specified"))
                }
                Ok(req) if !crate::validate::valid_group_name(&req.group) => {
                    Err(errors::consumer_invalid_group_name())
                }
                Ok(req) => {
                    acc.stream_call(
                        stream,
                        Call::ConsumerUnpin {
                            name: (*name).to_owned(),
                            group: req.group,
                        },
                    )
                    .await
                }
                Err(e) => Err(e),
            },
        ),
        _ => ("system", Err(errors::bad_request())),
    }
}

/// `CONSUMER.CREATE.<stream>[.<name>[.<filter>]]` and
/// `CONSUMER.DURABLE.CREATE.<stream>.<durable>`, with nats-server's checks of the name
/// and filter in the subject against the request.
async fn consumer_create(
    acc: &Arc<JsAccount>,
    stream: &str,
    name_in_subject: Option<&str>,
    rest: &str,
    durable_api: bool,
    body: &[u8],
) -> Result<Value, ApiError> {
    let req: types::CreateConsumerRequest = decode_request(body, acc.js.config.strict)?;
    if req.stream_name != stream {
        return Err(errors::stream_mismatch());
    }
    let mut config = req.config;
    let durable = config.durable_name.clone();
    let subj_name = name_in_subject.unwrap_or("");
    if subj_name.contains(['\\', '/']) {
        return Err(errors::consumer_name_contains_path_separators());
    }
    if durable_api {
        if subj_name.is_empty() {
            return Err(errors::consumer_durable_name_not_in_subject());
        }
        if durable.is_empty() {
            return Err(errors::consumer_durable_name_not_set());
        }
        if durable != subj_name {
            return Err(errors::consumer_durable_name_not_match_subject());
        }
        // A durable: its name is the one in the subject.
        config.name = subj_name.to_owned();
    } else if !subj_name.is_empty() {
        if !durable.is_empty() && durable != subj_name {
            return Err(errors::consumer_durable_name_not_match_subject());
        }
        // The name in the subject wins over one in the request, as in nats-server.
        config.name = subj_name.to_owned();
    } else if !durable.is_empty() {
        return Err(errors::consumer_ephemeral_with_durable_name());
    }
    // `.<name>.<filter>`: the filter may hold dots.
    let filter = rest
        .strip_prefix(subj_name)
        .and_then(|f| f.strip_prefix('.'))
        .filter(|f| !f.is_empty() && !subj_name.is_empty() && !durable_api);
    if let Some(f) = filter {
        if !config.filter_subjects.is_empty() {
            return Err(errors::consumer_multiple_filters_not_allowed());
        }
        if config.filter_subject != f {
            return Err(errors::consumer_create_filter_subject_mismatch());
        }
    }
    acc.stream_call(
        stream,
        Call::ConsumerCreate {
            config: Box::new(config),
            action: req.action,
            pedantic: req.pedantic,
        },
    )
    .await
}
