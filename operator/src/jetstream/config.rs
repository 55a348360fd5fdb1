//! Specs → the JSON configs of the JetStream API, and the comparison of a server's config
//! with the one wanted (drift).
//!
//! Pure functions: no I/O, so every mapping is unit-tested. The JSON keys and values are
//! nats-server's (`StreamConfig`, `ConsumerConfig` in its `stream.go` / `consumer.go`):
//! durations in nanoseconds, enums in snake case, `-1` for "unlimited". A key-value bucket
//! and an object store are plain streams named and shaped as the NATS clients make them
//! (`KV_<bucket>` with `$KV.<bucket>.>`, `OBJ_<bucket>` with `$O.<bucket>.C.>` and
//! `$O.<bucket>.M.>`), so `nats kv` and `nats object` and every client library open them.
//!
//! Every field the spec maps is written, with nats-server's default where the spec leaves
//! it unset, so a value changed by hand on the server shows up as drift and is put back.
//! The few defaults the server computes itself (a stream's `duplicate_window`, a
//! consumer's `ack_wait`, `max_ack_pending`, ...) are written only when the spec sets them.

use natrix_config::duration::parse_go_duration;
use serde_json::{Map, Value, json};

use crate::crd::jetstream::{
    AckPolicy, Compression, ConsumerLimits, ConsumerSpec, DeliverPolicy, Discard, KeyValueSpec,
    ObjectStoreSpec, PersistMode, Placement, PriorityPolicy, ReplayPolicy, Republish, Retention,
    Storage, StreamSource, StreamSpec, SubjectTransform,
};

/// A spec the API server accepted but that can not become a JetStream config (a duration
/// its pattern let through but Go's parser refuses, such as one past 292 years).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("spec.{field}: {message}")]
pub struct SpecError {
    pub field: String,
    pub message: String,
}

fn nanos(field: &str, value: &str) -> Result<i64, SpecError> {
    parse_go_duration(value).map_err(|message| SpecError {
        field: field.to_string(),
        message,
    })
}

fn opt_nanos(field: &str, value: Option<&String>) -> Result<Option<i64>, SpecError> {
    value.map(|v| nanos(field, v)).transpose()
}

/// Inserts `key` only when `value` is set.
fn put<T: Into<Value>>(m: &mut Map<String, Value>, key: &str, value: Option<T>) {
    if let Some(v) = value {
        m.insert(key.to_string(), v.into());
    }
}

fn retention(r: Option<Retention>) -> &'static str {
    match r.unwrap_or_default() {
        Retention::Limits => "limits",
        Retention::Interest => "interest",
        Retention::Workqueue => "workqueue",
    }
}

fn storage(s: Option<Storage>) -> &'static str {
    match s.unwrap_or_default() {
        Storage::File => "file",
        Storage::Memory => "memory",
    }
}

fn discard(d: Option<Discard>) -> &'static str {
    match d.unwrap_or_default() {
        Discard::Old => "old",
        Discard::New => "new",
    }
}

fn compression(c: Option<Compression>) -> &'static str {
    match c.unwrap_or_default() {
        Compression::S2 => "s2",
        Compression::None => "none",
    }
}

fn placement(p: Option<&Placement>) -> Value {
    match p {
        None => Value::Null,
        Some(p) => {
            let mut m = Map::new();
            put(&mut m, "cluster", p.cluster.clone());
            if !p.tags.is_empty() {
                m.insert("tags".into(), json!(p.tags));
            }
            Value::Object(m)
        }
    }
}

fn transform(t: &SubjectTransform) -> Value {
    json!({"src": t.source, "dest": t.dest})
}

fn republish(r: Option<&Republish>) -> Value {
    r.map_or(Value::Null, |r| {
        json!({"src": r.source, "dest": r.destination, "headers_only": r.headers_only.unwrap_or(false)})
    })
}

/// A mirror or source; `prefix` is added to its name when missing (`KV_` for buckets).
fn source(s: &StreamSource, prefix: &str) -> Value {
    let name = if s.name.starts_with(prefix) {
        s.name.clone()
    } else {
        format!("{prefix}{}", s.name)
    };
    let mut m = Map::new();
    m.insert("name".into(), json!(name));
    put(&mut m, "opt_start_seq", s.opt_start_seq);
    put(&mut m, "opt_start_time", s.opt_start_time.clone());
    put(&mut m, "filter_subject", s.filter_subject.clone());
    if !s.subject_transforms.is_empty() {
        m.insert(
            "subject_transforms".into(),
            Value::Array(s.subject_transforms.iter().map(transform).collect()),
        );
    }
    if s.external_api_prefix.is_some() || s.external_deliver_prefix.is_some() {
        let mut ext = Map::new();
        put(&mut ext, "api", s.external_api_prefix.clone());
        put(&mut ext, "deliver", s.external_deliver_prefix.clone());
        m.insert("external".into(), Value::Object(ext));
    }
    Value::Object(m)
}

fn consumer_limits(l: Option<&ConsumerLimits>) -> Result<Value, SpecError> {
    let Some(l) = l else {
        return Ok(Value::Null);
    };
    let mut m = Map::new();
    put(
        &mut m,
        "inactive_threshold",
        opt_nanos(
            "consumerLimits.inactiveThreshold",
            l.inactive_threshold.as_ref(),
        )?,
    );
    put(&mut m, "max_ack_pending", l.max_ack_pending);
    Ok(Value::Object(m))
}

fn metadata(m: &std::collections::BTreeMap<String, String>) -> Value {
    if m.is_empty() { Value::Null } else { json!(m) }
}

/// The stream config for a `Stream`.
pub fn stream_config(s: &StreamSpec) -> Result<Value, SpecError> {
    let mut m = Map::new();
    m.insert("name".into(), json!(s.name));
    m.insert(
        "description".into(),
        json!(s.description.clone().unwrap_or_default()),
    );
    // Unset subjects: the server uses the stream's name (for a stream that is neither a
    // mirror nor sourced); leaving the key out keeps that choice the server's.
    if !s.subjects.is_empty() {
        m.insert("subjects".into(), json!(s.subjects));
    }
    m.insert("retention".into(), json!(retention(s.retention)));
    m.insert("max_consumers".into(), json!(s.max_consumers.unwrap_or(-1)));
    m.insert("max_msgs".into(), json!(s.max_msgs.unwrap_or(-1)));
    m.insert("max_bytes".into(), json!(s.max_bytes.unwrap_or(-1)));
    m.insert(
        "max_age".into(),
        json!(opt_nanos("maxAge", s.max_age.as_ref())?.unwrap_or(0)),
    );
    m.insert(
        "max_msgs_per_subject".into(),
        json!(s.max_msgs_per_subject.unwrap_or(-1)),
    );
    m.insert("max_msg_size".into(), json!(s.max_msg_size.unwrap_or(-1)));
    m.insert("storage".into(), json!(storage(s.storage)));
    m.insert("discard".into(), json!(discard(s.discard)));
    m.insert("num_replicas".into(), json!(s.replicas.unwrap_or(1)));
    m.insert("no_ack".into(), json!(s.no_ack.unwrap_or(false)));
    put(
        &mut m,
        "duplicate_window",
        opt_nanos("duplicateWindow", s.duplicate_window.as_ref())?,
    );
    m.insert("placement".into(), placement(s.placement.as_ref()));
    m.insert(
        "mirror".into(),
        s.mirror.as_ref().map_or(Value::Null, |x| source(x, "")),
    );
    m.insert(
        "sources".into(),
        if s.sources.is_empty() {
            Value::Null
        } else {
            Value::Array(s.sources.iter().map(|x| source(x, "")).collect())
        },
    );
    m.insert("compression".into(), json!(compression(s.compression)));
    m.insert(
        "subject_transform".into(),
        s.subject_transform.as_ref().map_or(Value::Null, transform),
    );
    m.insert("republish".into(), republish(s.republish.as_ref()));
    m.insert("sealed".into(), json!(s.sealed.unwrap_or(false)));
    m.insert("deny_delete".into(), json!(s.deny_delete.unwrap_or(false)));
    m.insert("deny_purge".into(), json!(s.deny_purge.unwrap_or(false)));
    m.insert(
        "allow_direct".into(),
        json!(s.allow_direct.unwrap_or(false)),
    );
    m.insert(
        "allow_rollup_hdrs".into(),
        json!(s.allow_rollup.unwrap_or(false)),
    );
    m.insert(
        "mirror_direct".into(),
        json!(s.mirror_direct.unwrap_or(false)),
    );
    m.insert(
        "discard_new_per_subject".into(),
        json!(s.discard_per_subject.unwrap_or(false)),
    );
    put(&mut m, "first_seq", s.first_sequence);
    m.insert("metadata".into(), metadata(&s.metadata));
    m.insert(
        "consumer_limits".into(),
        consumer_limits(s.consumer_limits.as_ref())?,
    );
    m.insert(
        "allow_msg_ttl".into(),
        json!(s.allow_msg_ttl.unwrap_or(false)),
    );
    put(
        &mut m,
        "subject_delete_marker_ttl",
        opt_nanos(
            "subjectDeleteMarkerTtl",
            s.subject_delete_marker_ttl.as_ref(),
        )?,
    );
    // Newer server features: sent only when asked for, so older servers never see them.
    if s.allow_msg_counter == Some(true) {
        m.insert("allow_msg_counter".into(), json!(true));
    }
    if s.allow_atomic_publish == Some(true) {
        m.insert("allow_atomic".into(), json!(true));
    }
    if s.allow_msg_schedules == Some(true) {
        m.insert("allow_msg_schedules".into(), json!(true));
    }
    if s.persist_mode == Some(PersistMode::Async) {
        m.insert("persist_mode".into(), json!("async"));
    }
    Ok(Value::Object(m))
}

fn deliver_policy(d: Option<DeliverPolicy>) -> &'static str {
    match d.unwrap_or_default() {
        DeliverPolicy::All => "all",
        DeliverPolicy::Last => "last",
        DeliverPolicy::New => "new",
        DeliverPolicy::ByStartSequence => "by_start_sequence",
        DeliverPolicy::ByStartTime => "by_start_time",
        DeliverPolicy::LastPerSubject => "last_per_subject",
    }
}

fn ack_policy(a: Option<AckPolicy>) -> &'static str {
    match a.unwrap_or_default() {
        AckPolicy::None => "none",
        AckPolicy::All => "all",
        AckPolicy::Explicit => "explicit",
    }
}

fn replay_policy(r: Option<ReplayPolicy>) -> &'static str {
    match r.unwrap_or_default() {
        ReplayPolicy::Instant => "instant",
        ReplayPolicy::Original => "original",
    }
}

fn priority_policy(p: PriorityPolicy) -> &'static str {
    match p {
        PriorityPolicy::None => "none",
        PriorityPolicy::Overflow => "overflow",
        PriorityPolicy::PinnedClient => "pinned_client",
        PriorityPolicy::Prioritized => "prioritized",
    }
}

/// The consumer config for a `Consumer` (a durable: its name is `durableName`).
pub fn consumer_config(c: &ConsumerSpec) -> Result<Value, SpecError> {
    let mut m = Map::new();
    m.insert("durable_name".into(), json!(c.durable_name));
    m.insert("name".into(), json!(c.durable_name));
    m.insert(
        "description".into(),
        json!(c.description.clone().unwrap_or_default()),
    );
    m.insert(
        "deliver_policy".into(),
        json!(deliver_policy(c.deliver_policy)),
    );
    put(&mut m, "opt_start_seq", c.opt_start_seq);
    put(&mut m, "opt_start_time", c.opt_start_time.clone());
    m.insert("ack_policy".into(), json!(ack_policy(c.ack_policy)));
    put(
        &mut m,
        "ack_wait",
        opt_nanos("ackWait", c.ack_wait.as_ref())?,
    );
    put(&mut m, "max_deliver", c.max_deliver);
    let backoff = c
        .backoff
        .iter()
        .enumerate()
        .map(|(i, b)| nanos(&format!("backoff[{i}]"), b).map(Value::from))
        .collect::<Result<Vec<_>, _>>()?;
    m.insert(
        "backoff".into(),
        if backoff.is_empty() {
            Value::Null
        } else {
            Value::Array(backoff)
        },
    );
    m.insert(
        "filter_subject".into(),
        json!(c.filter_subject.clone().unwrap_or_default()),
    );
    m.insert(
        "filter_subjects".into(),
        if c.filter_subjects.is_empty() {
            Value::Null
        } else {
            json!(c.filter_subjects)
        },
    );
    m.insert(
        "replay_policy".into(),
        json!(replay_policy(c.replay_policy)),
    );
    m.insert(
        "rate_limit_bps".into(),
        json!(c.rate_limit_bps.unwrap_or(0)),
    );
    m.insert(
        "sample_freq".into(),
        json!(c.sample_freq.clone().unwrap_or_default()),
    );
    put(&mut m, "max_waiting", c.max_waiting);
    put(&mut m, "max_ack_pending", c.max_ack_pending);
    m.insert(
        "flow_control".into(),
        json!(c.flow_control.unwrap_or(false)),
    );
    m.insert(
        "idle_heartbeat".into(),
        json!(opt_nanos("heartbeatInterval", c.heartbeat_interval.as_ref())?.unwrap_or(0)),
    );
    m.insert(
        "headers_only".into(),
        json!(c.headers_only.unwrap_or(false)),
    );
    put(&mut m, "max_batch", c.max_request_batch);
    put(
        &mut m,
        "max_expires",
        opt_nanos("maxRequestExpires", c.max_request_expires.as_ref())?,
    );
    put(&mut m, "max_bytes", c.max_request_max_bytes);
    m.insert(
        "deliver_subject".into(),
        json!(c.deliver_subject.clone().unwrap_or_default()),
    );
    m.insert(
        "deliver_group".into(),
        json!(c.deliver_group.clone().unwrap_or_default()),
    );
    put(
        &mut m,
        "inactive_threshold",
        opt_nanos("inactiveThreshold", c.inactive_threshold.as_ref())?,
    );
    put(&mut m, "num_replicas", c.replicas);
    m.insert("mem_storage".into(), json!(c.mem_storage.unwrap_or(false)));
    m.insert("metadata".into(), metadata(&c.metadata));
    put(
        &mut m,
        "priority_policy",
        c.priority_policy.map(priority_policy),
    );
    if !c.priority_groups.is_empty() {
        m.insert("priority_groups".into(), json!(c.priority_groups));
    }
    put(
        &mut m,
        "priority_timeout",
        opt_nanos("pinnedTtl", c.pinned_ttl.as_ref())?,
    );
    Ok(Value::Object(m))
}

/// The stream behind a key-value bucket.
pub fn kv_stream_name(bucket: &str) -> String {
    format!("KV_{bucket}")
}

/// The stream behind an object store bucket.
pub fn object_stream_name(bucket: &str) -> String {
    format!("OBJ_{bucket}")
}

/// The stream config of a `KeyValue`, as nats.go and async-nats build it for
/// `CreateKeyValue`: history is `max_msgs_per_subject`, the TTL is `max_age`, rollups
/// and direct gets on, deletes of single messages denied, new writes refused when full.
pub fn kv_stream_config(kv: &KeyValueSpec) -> Result<Value, SpecError> {
    let ttl = opt_nanos("ttl", kv.ttl.as_ref())?.unwrap_or(0);
    let mut m = Map::new();
    m.insert("name".into(), json!(kv_stream_name(&kv.bucket)));
    m.insert(
        "description".into(),
        json!(kv.description.clone().unwrap_or_default()),
    );
    // A mirror or sourced bucket has no subjects of its own.
    if kv.mirror.is_none() && kv.sources.is_empty() {
        m.insert("subjects".into(), json!([format!("$KV.{}.>", kv.bucket)]));
    }
    m.insert("retention".into(), json!("limits"));
    m.insert("max_consumers".into(), json!(-1));
    m.insert("max_msgs".into(), json!(-1));
    m.insert("max_bytes".into(), json!(kv.max_bytes.unwrap_or(-1)));
    m.insert("max_age".into(), json!(ttl));
    m.insert(
        "max_msgs_per_subject".into(),
        json!(kv.history.unwrap_or(1)),
    );
    m.insert(
        "max_msg_size".into(),
        json!(kv.max_value_size.unwrap_or(-1)),
    );
    m.insert("storage".into(), json!(storage(kv.storage)));
    m.insert("discard".into(), json!("new"));
    m.insert("num_replicas".into(), json!(kv.replicas.unwrap_or(1)));
    m.insert("placement".into(), placement(kv.placement.as_ref()));
    m.insert("republish".into(), republish(kv.republish.as_ref()));
    m.insert(
        "mirror".into(),
        kv.mirror.as_ref().map_or(Value::Null, |x| source(x, "KV_")),
    );
    m.insert(
        "sources".into(),
        if kv.sources.is_empty() {
            Value::Null
        } else {
            Value::Array(kv.sources.iter().map(|x| source(x, "KV_")).collect())
        },
    );
    m.insert("mirror_direct".into(), json!(kv.mirror.is_some()));
    m.insert(
        "compression".into(),
        json!(if kv.compression == Some(true) {
            "s2"
        } else {
            "none"
        }),
    );
    m.insert("allow_rollup_hdrs".into(), json!(true));
    m.insert("deny_delete".into(), json!(true));
    m.insert("deny_purge".into(), json!(false));
    m.insert("allow_direct".into(), json!(true));
    if let Some(marker) = opt_nanos("limitMarkerTtl", kv.limit_marker_ttl.as_ref())? {
        m.insert("allow_msg_ttl".into(), json!(true));
        m.insert("subject_delete_marker_ttl".into(), json!(marker));
    }
    Ok(Value::Object(m))
}

/// The stream config of an `ObjectStore`, as the NATS clients build it: chunk and meta
/// subjects, rollups (object replacement) and direct gets on, new writes refused when full.
pub fn object_stream_config(o: &ObjectStoreSpec) -> Result<Value, SpecError> {
    let mut m = Map::new();
    m.insert("name".into(), json!(object_stream_name(&o.bucket)));
    m.insert(
        "description".into(),
        json!(o.description.clone().unwrap_or_default()),
    );
    m.insert(
        "subjects".into(),
        json!([
            format!("$O.{}.C.>", o.bucket),
            format!("$O.{}.M.>", o.bucket)
        ]),
    );
    m.insert("retention".into(), json!("limits"));
    m.insert("max_consumers".into(), json!(-1));
    m.insert("max_msgs".into(), json!(-1));
    m.insert("max_bytes".into(), json!(o.max_bytes.unwrap_or(-1)));
    m.insert(
        "max_age".into(),
        json!(opt_nanos("ttl", o.ttl.as_ref())?.unwrap_or(0)),
    );
    m.insert("max_msgs_per_subject".into(), json!(-1));
    m.insert("max_msg_size".into(), json!(-1));
    m.insert("storage".into(), json!(storage(o.storage)));
    m.insert("discard".into(), json!("new"));
    m.insert("num_replicas".into(), json!(o.replicas.unwrap_or(1)));
    m.insert("placement".into(), placement(o.placement.as_ref()));
    m.insert(
        "compression".into(),
        json!(if o.compression == Some(true) {
            "s2"
        } else {
            "none"
        }),
    );
    m.insert("allow_rollup_hdrs".into(), json!(true));
    m.insert("allow_direct".into(), json!(true));
    m.insert("metadata".into(), metadata(&o.metadata));
    Ok(Value::Object(m))
}

/// Keys whose value the server picks, or reformats, so comparing them would report drift
/// that is not there: `opt_start_time` (re-rendered in the server's time format).
const NOT_COMPARED: &[&str] = &["opt_start_time"];

/// The keys of `wanted` whose value on the server (`actual`) differs, sorted. Absent,
/// `null`, `false`, `0`, `""`, `"none"`, `"default"`, `[]` and `{}` all mean "not set"
/// (servers leave empty values out of their JSON), and metadata keys the server adds
/// itself (`_nats.*`) are not the user's.
pub fn drift(wanted: &Value, actual: &Value) -> Vec<String> {
    let Some(w) = wanted.as_object() else {
        return Vec::new();
    };
    let mut out: Vec<String> = w
        .iter()
        .filter(|(k, _)| !NOT_COMPARED.contains(&k.as_str()))
        .filter(|(k, v)| {
            let a = actual.get(k.as_str()).unwrap_or(&Value::Null);
            if k.as_str() == "metadata" {
                !same(&user_metadata(v), &user_metadata(a))
            } else {
                !same(v, a)
            }
        })
        .map(|(k, _)| k.clone())
        .collect();
    out.sort();
    out
}

fn user_metadata(v: &Value) -> Value {
    match v.as_object() {
        Some(m) => Value::Object(
            m.iter()
                .filter(|(k, _)| !k.starts_with("_nats."))
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect(),
        ),
        None => Value::Null,
    }
}

fn unset(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::String(s) => s.is_empty() || s == "none" || s == "default",
        Value::Array(a) => a.is_empty(),
        Value::Object(o) => o.values().all(unset),
    }
}

fn same(a: &Value, b: &Value) -> bool {
    if unset(a) && unset(b) {
        return true;
    }
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => match (x.as_i64(), y.as_i64()) {
            (Some(x), Some(y)) => x == y,
            _ => x.as_f64() == y.as_f64(),
        },
        (Value::Array(x), Value::Array(y)) => {
            x.len() == y.len() && x.iter().zip(y).all(|(x, y)| same(x, y))
        }
        (Value::Object(x), Value::Object(y)) => x.keys().chain(y.keys()).all(|k| {
            same(
                x.get(k).unwrap_or(&Value::Null),
                y.get(k).unwrap_or(&Value::Null),
            )
        }),
        _ => a == b,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stream(spec: Value) -> StreamSpec {
        serde_json::from_value(spec).expect("stream spec")
    }

    #[test]
    fn stream_defaults_are_nats_servers() {
        let c = stream_config(&stream(json!({"name": "ORDERS", "subjects": ["orders.*"]})))
            .expect("config");
        assert_eq!(c["name"], "ORDERS");
        assert_eq!(c["subjects"], json!(["orders.*"]));
        assert_eq!(c["retention"], "limits");
        assert_eq!(c["storage"], "file");
        assert_eq!(c["discard"], "old");
        assert_eq!(c["num_replicas"], 1);
        for k in [
            "max_msgs",
            "max_bytes",
            "max_consumers",
            "max_msg_size",
            "max_msgs_per_subject",
        ] {
            assert_eq!(c[k], -1, "{k}");
        }
        assert_eq!(c["max_age"], 0);
        assert_eq!(c["compression"], "none");
        // The server picks these.
        assert!(c.get("duplicate_window").is_none());
        assert!(c.get("first_seq").is_none());
        assert!(c.get("allow_msg_counter").is_none());
    }

    #[test]
    fn stream_fields_map_to_the_api_names() {
        let c = stream_config(&stream(json!({
            "name": "S", "subjects": ["a.>"], "retention": "workqueue", "storage": "memory",
            "discard": "new", "replicas": 3, "maxAge": "1h30m", "duplicateWindow": "90s",
            "maxBytes": 1024, "maxMsgs": 10, "maxMsgSize": 512, "maxMsgsPerSubject": 2,
            "maxConsumers": 4, "description": "d", "placement": {"cluster": "c", "tags": ["t"]},
            "sources": [{"name": "X", "filterSubject": "x.>", "externalApiPrefix": "$JS.h.API",
                         "subjectTransforms": [{"source": "x.>", "dest": "y.>"}]}],
            "compression": "s2", "subjectTransform": {"source": "a.>", "dest": "b.>"},
            "republish": {"source": ">", "destination": "re.>", "headersOnly": true},
            "denyDelete": true, "denyPurge": true, "allowDirect": true, "allowRollup": true,
            "discardPerSubject": true, "firstSequence": 100, "metadata": {"team": "a"},
            "consumerLimits": {"inactiveThreshold": "1m", "maxAckPending": 50},
            "allowMsgTtl": true, "subjectDeleteMarkerTtl": "10m", "allowMsgCounter": true,
            "allowAtomicPublish": true, "persistMode": "async",
            "servers": ["nats://x:4222"], "preventDelete": true
        })))
        .expect("config");
        assert_eq!(c["retention"], "workqueue");
        assert_eq!(c["storage"], "memory");
        assert_eq!(c["discard"], "new");
        assert_eq!(c["num_replicas"], 3);
        assert_eq!(c["max_age"], 5_400_000_000_000_i64);
        assert_eq!(c["duplicate_window"], 90_000_000_000_i64);
        assert_eq!(c["max_bytes"], 1024);
        assert_eq!(c["max_msgs"], 10);
        assert_eq!(c["max_msg_size"], 512);
        assert_eq!(c["max_msgs_per_subject"], 2);
        assert_eq!(c["max_consumers"], 4);
        assert_eq!(c["placement"], json!({"cluster": "c", "tags": ["t"]}));
        assert_eq!(
            c["sources"],
            json!([{"name": "X", "filter_subject": "x.>", "external": {"api": "$JS.h.API"},
                    "subject_transforms": [{"src": "x.>", "dest": "y.>"}]}])
        );
        assert_eq!(c["compression"], "s2");
        assert_eq!(c["subject_transform"], json!({"src": "a.>", "dest": "b.>"}));
        assert_eq!(
            c["republish"],
            json!({"src": ">", "dest": "re.>", "headers_only": true})
        );
        for k in [
            "deny_delete",
            "deny_purge",
            "allow_direct",
            "allow_rollup_hdrs",
            "discard_new_per_subject",
            "allow_msg_ttl",
            "allow_msg_counter",
            "allow_atomic",
        ] {
            assert_eq!(c[k], true, "{k}");
        }
        assert_eq!(c["first_seq"], 100);
        assert_eq!(c["metadata"], json!({"team": "a"}));
        assert_eq!(
            c["consumer_limits"],
            json!({"inactive_threshold": 60_000_000_000_i64, "max_ack_pending": 50})
        );
        assert_eq!(c["subject_delete_marker_ttl"], 600_000_000_000_i64);
        assert_eq!(c["persist_mode"], "async");
        // Operator-only fields never reach the server.
        assert!(c.get("servers").is_none() && c.get("prevent_delete").is_none());
    }

    #[test]
    fn a_bad_duration_names_the_field() {
        let err = stream_config(&stream(json!({"name": "S", "maxAge": "9999999999h"})))
            .expect_err("overflow");
        assert_eq!(err.field, "maxAge");
        assert!(err.message.contains("invalid duration"), "{err}");
        let c: ConsumerSpec = serde_json::from_value(
            json!({"streamName": "S", "durableName": "C", "backoff": ["1s", "x"]}),
        )
        .expect("consumer");
        let err = consumer_config(&c).expect_err("bad backoff");
        assert_eq!(
            err.to_string(),
            "spec.backoff[1]: time: invalid duration \"x\""
        );
    }

    #[test]
    fn consumer_maps_to_a_durable() {
        let c: ConsumerSpec = serde_json::from_value(json!({
            "streamName": "ORDERS", "durableName": "proc", "deliverPolicy": "byStartSequence",
            "optStartSeq": 5, "ackPolicy": "all", "ackWait": "10s", "maxDeliver": 3,
            "backoff": ["1s", "2s"], "filterSubject": "orders.new", "replayPolicy": "original",
            "maxAckPending": 20, "maxWaiting": 10, "maxRequestBatch": 100,
            "maxRequestExpires": "5s", "inactiveThreshold": "1h", "replicas": 1,
            "memStorage": true, "priorityPolicy": "pinned_client", "priorityGroups": ["g"],
            "pinnedTtl": "2m", "description": "d"
        }))
        .expect("consumer");
        let v = consumer_config(&c).expect("config");
        assert_eq!(v["durable_name"], "proc");
        assert_eq!(v["name"], "proc");
        assert_eq!(v["deliver_policy"], "by_start_sequence");
        assert_eq!(v["opt_start_seq"], 5);
        assert_eq!(v["ack_policy"], "all");
        assert_eq!(v["ack_wait"], 10_000_000_000_i64);
        assert_eq!(v["max_deliver"], 3);
        assert_eq!(v["backoff"], json!([1_000_000_000_i64, 2_000_000_000_i64]));
        assert_eq!(v["filter_subject"], "orders.new");
        assert_eq!(v["replay_policy"], "original");
        assert_eq!(v["max_ack_pending"], 20);
        assert_eq!(v["max_waiting"], 10);
        assert_eq!(v["max_batch"], 100);
        assert_eq!(v["max_expires"], 5_000_000_000_i64);
        assert_eq!(v["inactive_threshold"], 3_600_000_000_000_i64);
        assert_eq!(v["num_replicas"], 1);
        assert_eq!(v["mem_storage"], true);
        assert_eq!(v["priority_policy"], "pinned_client");
        assert_eq!(v["priority_groups"], json!(["g"]));
        assert_eq!(v["priority_timeout"], 120_000_000_000_i64);
        let push: ConsumerSpec = serde_json::from_value(json!({
            "streamName": "S", "durableName": "p", "deliverSubject": "out", "deliverGroup": "q",
            "heartbeatInterval": "5s", "flowControl": true
        }))
        .expect("push");
        let v = consumer_config(&push).expect("config");
        assert_eq!(v["deliver_subject"], "out");
        assert_eq!(v["deliver_group"], "q");
        assert_eq!(v["idle_heartbeat"], 5_000_000_000_i64);
        assert_eq!(v["flow_control"], true);
        assert_eq!(v["deliver_policy"], "all");
        assert_eq!(v["ack_policy"], "explicit");
        // Server-chosen defaults stay the server's.
        for k in ["ack_wait", "max_deliver", "max_ack_pending", "max_waiting"] {
            assert!(v.get(k).is_none(), "{k}");
        }
    }

    #[test]
    fn key_value_is_shaped_as_the_clients_make_it() {
        let kv: KeyValueSpec = serde_json::from_value(json!({
            "bucket": "cfg", "history": 5, "ttl": "1h", "maxValueSize": 1024, "maxBytes": 4096,
            "storage": "memory", "replicas": 3, "compression": true, "description": "d"
        }))
        .expect("kv");
        let c = kv_stream_config(&kv).expect("config");
        assert_eq!(c["name"], "KV_cfg");
        assert_eq!(c["subjects"], json!(["$KV.cfg.>"]));
        assert_eq!(c["max_msgs_per_subject"], 5);
        assert_eq!(c["max_age"], 3_600_000_000_000_i64);
        assert_eq!(c["max_msg_size"], 1024);
        assert_eq!(c["max_bytes"], 4096);
        assert_eq!(c["storage"], "memory");
        assert_eq!(c["num_replicas"], 3);
        assert_eq!(c["discard"], "new");
        assert_eq!(c["allow_rollup_hdrs"], true);
        assert_eq!(c["deny_delete"], true);
        assert_eq!(c["allow_direct"], true);
        assert_eq!(c["compression"], "s2");
        let mirror: KeyValueSpec = serde_json::from_value(json!({
            "bucket": "copy", "mirror": {"name": "cfg"}, "limitMarkerTtl": "5m"
        }))
        .expect("kv");
        let c = kv_stream_config(&mirror).expect("config");
        assert!(c.get("subjects").is_none());
        assert_eq!(c["mirror"], json!({"name": "KV_cfg"}));
        assert_eq!(c["mirror_direct"], true);
        assert_eq!(c["max_msgs_per_subject"], 1);
        assert_eq!(c["allow_msg_ttl"], true);
        assert_eq!(c["subject_delete_marker_ttl"], 300_000_000_000_i64);
    }

    #[test]
    fn object_store_is_shaped_as_the_clients_make_it() {
        let o: ObjectStoreSpec = serde_json::from_value(
            json!({"bucket": "files", "ttl": "24h", "maxBytes": 1048576, "metadata": {"a": "b"}}),
        )
        .expect("object store");
        let c = object_stream_config(&o).expect("config");
        assert_eq!(c["name"], "OBJ_files");
        assert_eq!(c["subjects"], json!(["$O.files.C.>", "$O.files.M.>"]));
        assert_eq!(c["max_age"], 86_400_000_000_000_i64);
        assert_eq!(c["max_bytes"], 1_048_576);
        assert_eq!(c["discard"], "new");
        assert_eq!(c["allow_rollup_hdrs"], true);
        assert_eq!(c["allow_direct"], true);
        assert_eq!(c["metadata"], json!({"a": "b"}));
    }

    #[test]
    fn drift_reports_changed_keys_only() {
        let wanted = stream_config(&stream(
            json!({"name": "S", "subjects": ["a"], "maxAge": "1h", "metadata": {"k": "v"}}),
        ))
        .expect("config");
        // What a server answers: its own extra keys, empty values left out, its metadata.
        let mut server = json!({
            "name": "S", "subjects": ["a"], "retention": "limits", "max_consumers": -1,
            "max_msgs": -1, "max_bytes": -1, "max_age": 3_600_000_000_000_i64,
            "max_msgs_per_subject": -1, "max_msg_size": -1, "storage": "file",
            "discard": "old", "num_replicas": 1, "duplicate_window": 120_000_000_000_i64,
            "sealed": false, "deny_delete": false, "deny_purge": false, "allow_direct": false,
            "allow_rollup_hdrs": false, "allow_msg_ttl": false, "compression": "none",
            "consumer_limits": {}, "metadata": {"k": "v", "_nats.req.level": "0", "_nats.ver": "2.12.0"}
        });
        assert_eq!(drift(&wanted, &server), Vec::<String>::new());
        server["max_age"] = json!(60_000_000_000_i64);
        server["description"] = json!("edited by hand");
        server["metadata"]["k"] = json!("w");
        assert_eq!(
            drift(&wanted, &server),
            ["description", "max_age", "metadata"]
        );
        server["max_age"] = json!(3_600_000_000_000_i64);
        server["description"] = json!("");
        server["metadata"]["k"] = json!("v");
        server["subjects"] = json!(["a", "b"]);
        server["placement"] = json!({"cluster": "elsewhere"});
        assert_eq!(drift(&wanted, &server), ["placement", "subjects"]);
    }
}
