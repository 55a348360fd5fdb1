//! Stream and consumer configs, good and bad, sent as raw `$JS.API` requests to
//! natrix-server and to the reference nats-server: each answer's `error` (code, err_code,
//! description) must be the same, and a config that is accepted must come back the same,
//! key by key (defaults filled in alike).

mod common;

use std::path::Path;
use std::time::Duration;

use common::{NATRIX, Proc, start};
use serde_json::{Value, json};

fn start_js(bin: &Path) -> (Proc, tempfile::TempDir) {
    let store = tempfile::tempdir().expect("store dir");
    let conf = format!(
        "jetstream {{ store_dir: \"{}\" }}\n",
        store.path().display()
    );
    (start(bin, &conf, false), store)
}

async fn connect(p: &Proc) -> async_nats::Client {
    async_nats::ConnectOptions::new()
        .request_timeout(Some(Duration::from_secs(5)))
        .connect(format!("nats://127.0.0.1:{}", p.port))
        .await
        .expect("connect")
}

const S: i64 = 1_000_000_000;
const MS: i64 = 1_000_000;

/// The requests, in order (later ones rely on the streams and consumers earlier ones
/// made): a label, the subject after `$JS.API.`, the body.
fn steps() -> Vec<(&'static str, String, Value)> {
    let stream = |name: &str| format!("STREAM.CREATE.{name}");
    let update = |name: &str| format!("STREAM.UPDATE.{name}");
    let durable = |stream: &str, name: &str| format!("CONSUMER.CREATE.{stream}.{name}");
    let ephemeral = |stream: &str| format!("CONSUMER.CREATE.{stream}");
    let c = |config: Value| json!({"stream_name": "ORDERS", "config": config});
    let wq = |config: Value| json!({"stream_name": "WQ", "config": config});
    vec![
        // ---- streams: good ones, with their defaults ----
        (
            "plain stream",
            stream("ORDERS"),
            json!({"name": "ORDERS", "subjects": ["orders.>"]}),
        ),
        (
            "stream with only a name",
            stream("BARE"),
            json!({"name": "BARE"}),
        ),
        (
            "max_age lowers the duplicate window",
            stream("AGED"),
            json!({"name": "AGED", "subjects": ["aged"], "max_age": 30 * S, "max_msgs": -7}),
        ),
        (
            "delete markers turn on TTLs and roll-ups",
            stream("MARK"),
            json!({"name": "MARK", "subjects": ["mark"], "subject_delete_marker_ttl": S,
                "deny_purge": true}),
        ),
        (
            "implicit republish of a transform",
            stream("REPUB"),
            json!({"name": "REPUB", "subjects": ["in.>"],
                "subject_transform": {"src": "in.>", "dest": "out.>"},
                "republish": {"src": ">", "dest": ">"}}),
        ),
        (
            "mirror inherits direct gets",
            stream("DIRECT"),
            json!({"name": "DIRECT", "subjects": ["direct"], "allow_direct": true}),
        ),
        (
            "mirror",
            stream("MIR"),
            json!({"name": "MIR", "mirror": {"name": "DIRECT"}}),
        ),
        (
            "sources",
            stream("SRC"),
            json!({"name": "SRC", "sources": [{"name": "ORDERS", "filter_subject": "orders.a"},
                {"name": "ORDERS", "filter_subject": "orders.b"}]}),
        ),
        (
            "work queue",
            stream("WQ"),
            json!({"name": "WQ", "subjects": ["wq.>"], "retention": "workqueue"}),
        ),
        (
            "consumer limits",
            stream("LIMITED"),
            json!({"name": "LIMITED", "subjects": ["limited"],
                "consumer_limits": {"max_ack_pending": 50, "inactive_threshold": 10 * S}}),
        ),
        (
            "deny delete",
            stream("DD"),
            json!({"name": "DD", "subjects": ["dd"], "deny_delete": true}),
        ),
        (
            "JetStream events may be captured",
            stream("EVENTS"),
            json!({"name": "EVENTS", "subjects": ["$JS.EVENT.>"]}),
        ),
        (
            "same config again",
            stream("ORDERS"),
            json!({"name": "ORDERS", "subjects": ["orders.>"]}),
        ),
        // ---- streams: bad ones ----
        (
            "different config, same name",
            stream("ORDERS"),
            json!({"name": "ORDERS", "subjects": ["orders.>", "more"]}),
        ),
        ("name mismatch", stream("X"), json!({"name": "Y"})),
        ("wildcard in name", stream("A*"), json!({"name": "A*"})),
        (
            "description too long",
            stream("X"),
            json!({"name": "X", "description": "d".repeat(4097)}),
        ),
        (
            "maximum replicas",
            stream("X"),
            json!({"name": "X", "num_replicas": 6}),
        ),
        (
            "negative replicas",
            stream("X"),
            json!({"name": "X", "num_replicas": -1}),
        ),
        (
            "replicas on one server",
            stream("X"),
            json!({"name": "X", "num_replicas": 3}),
        ),
        (
            "negative max age",
            stream("X"),
            json!({"name": "X", "max_age": -1}),
        ),
        (
            "small max age",
            stream("X"),
            json!({"name": "X", "max_age": 50 * MS}),
        ),
        (
            "duplicates over max age",
            stream("X"),
            json!({"name": "X", "max_age": 5 * S, "duplicate_window": 10 * S}),
        ),
        (
            "small duplicates window",
            stream("X"),
            json!({"name": "X", "duplicate_window": 50 * MS}),
        ),
        (
            "roll-ups need purge",
            stream("X"),
            json!({"name": "X", "deny_purge": true, "allow_rollup_hdrs": true}),
        ),
        (
            "counter and discard new",
            stream("X"),
            json!({"name": "X", "allow_msg_counter": true, "discard": "new"}),
        ),
        (
            "counter and TTLs",
            stream("X"),
            json!({"name": "X", "allow_msg_counter": true, "allow_msg_ttl": true}),
        ),
        (
            "discard new per subject",
            stream("X"),
            json!({"name": "X", "discard_new_per_subject": true}),
        ),
        (
            "small delete marker TTL",
            stream("X"),
            json!({"name": "X", "subject_delete_marker_ttl": 500 * MS}),
        ),
        (
            "schedules and discard new",
            stream("X"),
            json!({"name": "X", "allow_msg_schedules": true, "discard": "new"}),
        ),
        (
            "async persist in memory",
            stream("X"),
            json!({"name": "X", "persist_mode": "async", "storage": "memory"}),
        ),
        (
            "mirror with subjects",
            stream("X"),
            json!({"name": "X", "mirror": {"name": "ORDERS"}, "subjects": ["x"]}),
        ),
        (
            "mirror with first seq",
            stream("X"),
            json!({"name": "X", "mirror": {"name": "ORDERS"}, "first_seq": 5}),
        ),
        (
            "mirror with delete markers",
            stream("X"),
            json!({"name": "X", "mirror": {"name": "ORDERS"}, "subject_delete_marker_ttl": S}),
        ),
        (
            "mirror transforms overlap",
            stream("X"),
            json!({"name": "X", "mirror": {"name": "ORDERS",
                "subject_transforms": [{"src": "orders.*"}, {"src": "orders.a"}]}}),
        ),
        (
            "mirror filter",
            stream("X"),
            json!({"name": "X", "mirror": {"name": "ORDERS", "filter_subject": "a..b"}}),
        ),
        (
            "pedantic mirror direct",
            stream("X"),
            json!({"name": "X", "mirror": {"name": "DIRECT"}, "pedantic": true}),
        ),
        (
            "mirror of a bad name",
            stream("X"),
            json!({"name": "X", "mirror": {"name": "A.B"}}),
        ),
        (
            "duplicate sources",
            stream("X"),
            json!({"name": "X", "sources": [{"name": "ORDERS"}, {"name": "ORDERS"}]}),
        ),
        (
            "source transform destination",
            stream("X"),
            json!({"name": "X", "sources": [{"name": "ORDERS",
                "subject_transforms": [{"src": "orders.*", "dest": "x.{{wildcard(2)}}"}]}]}),
        ),
        (
            "source filters overlap",
            stream("X"),
            json!({"name": "X", "sources": [{"name": "ORDERS",
                "subject_transforms": [{"src": "orders.>", "dest": "x.>"},
                    {"src": "orders.a", "dest": "y.a"}]}]}),
        ),
        (
            "external api overlaps",
            stream("X"),
            json!({"name": "X", "sources": [{"name": "O", "external": {"api": "$JS.API"}}]}),
        ),
        (
            "external deliver wildcard",
            stream("X"),
            json!({"name": "X", "sources": [{"name": "O",
                "external": {"api": "$JS.o.API", "deliver": "d.*"}}]}),
        ),
        (
            "source of a stream to come",
            stream("LOOP1"),
            json!({"name": "LOOP1", "subjects": ["loop1"], "sources": [{"name": "LOOP2"}]}),
        ),
        (
            "source consumer config",
            stream("X"),
            json!({"name": "X", "sources": [{"name": "ORDERS", "opt_start_seq": 3,
                "consumer": {"name": "c", "deliver_subject": "d"}}]}),
        ),
        (
            "external deliver prefix overlaps",
            stream("X"),
            json!({"name": "X", "sources": [{"name": "ORDERS"},
                {"name": "B", "external": {"api": "$JS.b.API", "deliver": "orders"}}]}),
        ),
        (
            "external api wildcard",
            stream("X"),
            json!({"name": "X", "sources": [{"name": "O", "external": {"api": "$JS.*.API"}}]}),
        ),
        (
            "source cycle",
            stream("LOOP2"),
            json!({"name": "LOOP2", "subjects": ["loop2"], "sources": [{"name": "LOOP1"}]}),
        ),
        (
            "invalid subject",
            stream("X"),
            json!({"name": "X", "subjects": ["a..b"]}),
        ),
        (
            "repeated subject",
            stream("X"),
            json!({"name": "X", "subjects": ["a", "a"]}),
        ),
        (
            "subjects overlap",
            stream("X"),
            json!({"name": "X", "subjects": ["x.*", "x.y"]}),
        ),
        (
            "capture everything",
            stream("X"),
            json!({"name": "X", "subjects": [">"]}),
        ),
        (
            "JetStream API subjects",
            stream("X"),
            json!({"name": "X", "subjects": ["$JS.API.>"]}),
        ),
        (
            "system subjects",
            stream("X"),
            json!({"name": "X", "subjects": ["$SYS.>"]}),
        ),
        (
            "overlap with another stream",
            stream("X"),
            json!({"name": "X", "subjects": ["orders.new"]}),
        ),
        (
            "transform source",
            stream("X"),
            json!({"name": "X", "subject_transform": {"src": "a..b", "dest": "c"}}),
        ),
        (
            "transform destination",
            stream("X"),
            json!({"name": "X", "subjects": ["x.*"],
                "subject_transform": {"src": "x.*", "dest": "y.{{nope(1)}}"}}),
        ),
        (
            "republish cycle",
            stream("X"),
            json!({"name": "X", "subjects": ["x.>"], "republish": {"src": ">", "dest": "x.y"}}),
        ),
        (
            "republish transform",
            stream("X"),
            json!({"name": "X", "subjects": ["x.>"], "republish": {"src": "x.>", "dest": "y.*"}}),
        ),
        (
            "preferred placement",
            stream("X"),
            json!({"name": "X", "placement": {"preferred": "n1"}}),
        ),
        (
            "sealed on create",
            stream("X"),
            json!({"name": "X", "sealed": true}),
        ),
        (
            "pedantic limits",
            stream("X"),
            json!({"name": "X", "max_msgs": -2, "pedantic": true}),
        ),
        (
            "pedantic duplicates",
            stream("X"),
            json!({"name": "X", "max_age": 10 * S, "pedantic": true}),
        ),
        (
            "pedantic delete markers",
            stream("X"),
            json!({"name": "X", "subject_delete_marker_ttl": S, "pedantic": true}),
        ),
        (
            "pedantic republish",
            stream("X"),
            json!({"name": "X", "subjects": ["x.>"], "republish": {"dest": "y.>"}, "pedantic": true}),
        ),
        // ---- stream updates ----
        (
            "update",
            update("ORDERS"),
            json!({"name": "ORDERS", "subjects": ["orders.>"], "max_msgs": 100}),
        ),
        (
            "update of a missing stream",
            update("NOPE"),
            json!({"name": "NOPE"}),
        ),
        (
            "bad update of a missing stream",
            update("NOPE"),
            json!({"name": "NOPE", "max_age": -1}),
        ),
        (
            "update name mismatch",
            update("ORDERS"),
            json!({"name": "OTHER"}),
        ),
        (
            "update storage",
            update("ORDERS"),
            json!({"name": "ORDERS", "subjects": ["orders.>"], "storage": "memory"}),
        ),
        (
            "update to work queue",
            update("ORDERS"),
            json!({"name": "ORDERS", "subjects": ["orders.>"], "retention": "workqueue"}),
        ),
        (
            "update to interest",
            update("AGED"),
            json!({"name": "AGED", "subjects": ["aged"], "max_age": 30 * S, "retention": "interest"}),
        ),
        (
            "update replicas",
            update("ORDERS"),
            json!({"name": "ORDERS", "subjects": ["orders.>"], "num_replicas": 3}),
        ),
        (
            "update cancels deny delete",
            update("DD"),
            json!({"name": "DD", "subjects": ["dd"]}),
        ),
        (
            "update of a mirror",
            update("MIR"),
            json!({"name": "MIR", "mirror": {"name": "ORDERS"}}),
        ),
        (
            "update of a mirror, unchanged",
            update("MIR"),
            json!({"name": "MIR", "mirror": {"name": "DIRECT"}, "max_msgs": 10}),
        ),
        (
            "update of sources, unchanged",
            update("SRC"),
            json!({"name": "SRC", "sources": [{"name": "ORDERS", "filter_subject": "orders.a"},
                {"name": "ORDERS", "filter_subject": "orders.b"}], "max_msgs": 10}),
        ),
        (
            "update adds a source",
            update("SRC"),
            json!({"name": "SRC", "sources": [{"name": "ORDERS", "filter_subject": "orders.a"},
                {"name": "ORDERS", "filter_subject": "orders.b"}, {"name": "AGED"}]}),
        ),
        (
            "update disables TTLs",
            update("MARK"),
            json!({"name": "MARK", "subjects": ["mark"]}),
        ),
        (
            "update overlaps",
            update("BARE"),
            json!({"name": "BARE", "subjects": ["orders.x"]}),
        ),
        (
            "update seals",
            update("DD"),
            json!({"name": "DD", "subjects": ["dd"], "deny_delete": true, "sealed": true}),
        ),
        // ---- consumers: good ones ----
        (
            "durable pull",
            durable("ORDERS", "PULL"),
            c(json!({"durable_name": "PULL", "ack_policy": "explicit"})),
        ),
        (
            "push",
            durable("ORDERS", "PUSH"),
            c(
                json!({"durable_name": "PUSH", "deliver_subject": "push.out", "ack_policy": "all",
                "idle_heartbeat": 5 * S, "flow_control": true}),
            ),
        ),
        (
            "named ephemeral",
            durable("ORDERS", "EPH"),
            c(json!({"name": "EPH", "filter_subject": "orders.a"})),
        ),
        (
            "backoff sets ack wait",
            durable("ORDERS", "BACK"),
            c(
                json!({"durable_name": "BACK", "ack_policy": "explicit", "backoff": [S, 2 * S],
                "max_deliver": 5}),
            ),
        ),
        (
            "priority groups",
            durable("ORDERS", "PRIO"),
            c(json!({"durable_name": "PRIO", "ack_policy": "explicit",
                "priority_policy": "pinned_client", "priority_groups": ["g1"]})),
        ),
        (
            "stream consumer limits",
            durable("LIMITED", "L"),
            json!({"stream_name": "LIMITED", "config": {"durable_name": "L", "ack_policy": "explicit"}}),
        ),
        // ---- consumers: bad ones ----
        (
            "consumer replicas",
            durable("ORDERS", "R"),
            c(json!({"durable_name": "R", "num_replicas": 3})),
        ),
        (
            "deliver all with a start",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "opt_start_seq": 5})),
        ),
        (
            "by start sequence without one",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "deliver_policy": "by_start_sequence"})),
        ),
        (
            "by start time with a sequence",
            durable("ORDERS", "D"),
            c(
                json!({"durable_name": "D", "deliver_policy": "by_start_time", "opt_start_seq": 2,
                "opt_start_time": "2024-01-01T00:00:00Z"}),
            ),
        ),
        (
            "last per subject without a filter",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "deliver_policy": "last_per_subject"})),
        ),
        (
            "both filters",
            durable("ORDERS", "D"),
            c(
                json!({"durable_name": "D", "filter_subject": "orders.a", "filter_subjects": ["orders.b"]}),
            ),
        ),
        (
            "overlapping filters",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "filter_subjects": ["orders.*", "orders.a"]})),
        ),
        (
            "empty filter",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "filter_subjects": ["orders.a", ""]})),
        ),
        (
            "invalid filter",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "filter_subject": "a..b"})),
        ),
        (
            "deliver to wildcards",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "deliver_subject": "out.*"})),
        ),
        (
            "deliver cycle",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "deliver_subject": "orders.x"})),
        ),
        (
            "push with max waiting",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "deliver_subject": "out", "max_waiting": 5})),
        ),
        (
            "push max ack pending without acks",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "deliver_subject": "out", "max_ack_pending": 5})),
        ),
        (
            "small heartbeat",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "deliver_subject": "out", "idle_heartbeat": 50 * MS})),
        ),
        (
            "flow control without heartbeat",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "deliver_subject": "out", "flow_control": true})),
        ),
        (
            "pull heartbeat",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "idle_heartbeat": S})),
        ),
        (
            "pull flow control",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "flow_control": true})),
        ),
        (
            "pull rate limit",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "rate_limit_bps": 100})),
        ),
        (
            "small max expires",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "max_expires": MS / 2})),
        ),
        (
            "backoff longer than max deliver",
            durable("ORDERS", "D"),
            c(
                json!({"durable_name": "D", "ack_policy": "explicit", "backoff": [S, S, S], "max_deliver": 2}),
            ),
        ),
        (
            "negative ack wait",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "ack_policy": "explicit", "ack_wait": -1})),
        ),
        (
            "consumer description too long",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "description": "d".repeat(4097)})),
        ),
        (
            "bad sample frequency",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "sample_freq": "lots"})),
        ),
        (
            "priority policy without groups",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "priority_policy": "overflow"})),
        ),
        (
            "bad priority group",
            durable("ORDERS", "D"),
            c(
                json!({"durable_name": "D", "priority_policy": "overflow", "priority_groups": ["a.b"]}),
            ),
        ),
        (
            "groups without a policy",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "priority_groups": ["g"]})),
        ),
        (
            "flow control acks on pull",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "ack_policy": "flow_control"})),
        ),
        (
            "over the stream's max ack pending",
            durable("LIMITED", "D"),
            json!({"stream_name": "LIMITED", "config": {"durable_name": "D", "ack_policy": "explicit",
                "max_ack_pending": 100}}),
        ),
        (
            "over the stream's inactive threshold",
            durable("LIMITED", "D"),
            json!({"stream_name": "LIMITED", "config": {"durable_name": "D",
                "inactive_threshold": 20 * S}}),
        ),
        (
            "pedantic consumer",
            durable("ORDERS", "D"),
            json!({"stream_name": "ORDERS", "config": {"durable_name": "D", "max_deliver": -2},
                "pedantic": true}),
        ),
        (
            "consumer on a missing stream",
            durable("NOPE", "D"),
            json!({"stream_name": "NOPE", "config": {"durable_name": "D"}}),
        ),
        (
            "legacy ephemeral with a durable",
            ephemeral("ORDERS"),
            c(json!({"durable_name": "D"})),
        ),
        (
            "invalid consumer name",
            ephemeral("ORDERS"),
            c(json!({"name": "a*"})),
        ),
        (
            "consumer metadata too long",
            durable("ORDERS", "D"),
            c(json!({"durable_name": "D", "metadata": {"k": "v".repeat(128 * 1024)}})),
        ),
        (
            "durable name too long",
            format!("CONSUMER.DURABLE.CREATE.ORDERS.{}", "d".repeat(256)),
            c(json!({"durable_name": "d".repeat(256)})),
        ),
        (
            "update lowers consumer limits",
            update("LIMITED"),
            json!({"name": "LIMITED", "subjects": ["limited"],
                "consumer_limits": {"max_ack_pending": 10, "inactive_threshold": 10 * S}}),
        ),
        // ---- consumer updates ----
        (
            "update deliver policy",
            durable("ORDERS", "PULL"),
            c(json!({"durable_name": "PULL", "ack_policy": "explicit", "deliver_policy": "new"})),
        ),
        (
            "update ack policy",
            durable("ORDERS", "PULL"),
            c(json!({"durable_name": "PULL", "ack_policy": "all"})),
        ),
        (
            "update pull to push",
            durable("ORDERS", "PULL"),
            c(json!({"durable_name": "PULL", "ack_policy": "explicit", "deliver_subject": "x"})),
        ),
        (
            "update max waiting",
            durable("ORDERS", "PULL"),
            c(json!({"durable_name": "PULL", "ack_policy": "explicit", "max_waiting": 10})),
        ),
        (
            "update heartbeat",
            durable("ORDERS", "PUSH"),
            c(
                json!({"durable_name": "PUSH", "deliver_subject": "push.out", "ack_policy": "all",
                "idle_heartbeat": 6 * S, "flow_control": true}),
            ),
        ),
        (
            "good update",
            durable("ORDERS", "PULL"),
            c(
                json!({"durable_name": "PULL", "ack_policy": "explicit", "description": "now",
                "ack_wait": 10 * S, "max_ack_pending": 20}),
            ),
        ),
        (
            "create of an existing one",
            durable("ORDERS", "PULL"),
            json!({"stream_name": "ORDERS", "action": "create",
                "config": {"durable_name": "PULL", "ack_policy": "explicit"}}),
        ),
        // ---- work queues ----
        (
            "work queue pull without acks",
            durable("WQ", "A"),
            wq(json!({"durable_name": "A"})),
        ),
        (
            "work queue deliver new",
            durable("WQ", "A"),
            wq(json!({"durable_name": "A", "ack_policy": "explicit", "deliver_policy": "new"})),
        ),
        (
            "work queue all acks",
            durable("WQ", "A"),
            wq(json!({"durable_name": "A", "ack_policy": "all"})),
        ),
        (
            "work queue first",
            durable("WQ", "A"),
            wq(json!({"durable_name": "A", "ack_policy": "explicit", "filter_subject": "wq.a"})),
        ),
        (
            "work queue unfiltered second",
            durable("WQ", "B"),
            wq(json!({"durable_name": "B", "ack_policy": "explicit"})),
        ),
        (
            "work queue overlapping second",
            durable("WQ", "B"),
            wq(json!({"durable_name": "B", "ack_policy": "explicit", "filter_subject": "wq.*"})),
        ),
        (
            "work queue distinct second",
            durable("WQ", "B"),
            wq(json!({"durable_name": "B", "ack_policy": "explicit", "filter_subject": "wq.b"})),
        ),
        (
            "work queue update overlapping",
            durable("WQ", "B"),
            wq(json!({"durable_name": "B", "ack_policy": "explicit", "filter_subject": "wq.>"})),
        ),
    ]
}

/// What to compare of an answer: its error, or its config without the keys that differ by
/// nature (the server's version, and its API level: natrix declares the level it
/// implements).
fn outcome(v: &Value) -> Value {
    if let Some(e) = v.get("error") {
        return json!({"error": {"code": e["code"], "err_code": e["err_code"],
            "description": e["description"]}});
    }
    let mut config = v.get("config").cloned().unwrap_or(Value::Null);
    if let Some(o) = config.as_object_mut() {
        o.remove("created");
        if let Some(Value::Object(m)) = o.get_mut("metadata") {
            m.remove("_nats.ver");
            m.remove("_nats.level");
        }
    }
    json!({"config": config})
}

async fn run(p: &Proc) -> Vec<Value> {
    let nc = connect(p).await;
    let mut out = Vec::new();
    for (label, subject, body) in steps() {
        let reply = nc
            .request(format!("$JS.API.{subject}"), body.to_string().into())
            .await
            .unwrap_or_else(|e| panic!("{label}: no answer: {e}"));
        let v: Value = serde_json::from_slice(&reply.payload)
            .unwrap_or_else(|e| panic!("{label}: not JSON ({e})"));
        out.push(outcome(&v));
    }
    out
}

/// Lists each key where two configs differ.
fn config_diff(path: &str, a: &Value, b: &Value, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            let keys: std::collections::BTreeSet<&String> = x.keys().chain(y.keys()).collect();
            for k in keys {
                let (l, r) = (
                    x.get(k).unwrap_or(&Value::Null),
                    y.get(k).unwrap_or(&Value::Null),
                );
                config_diff(&format!("{path}.{k}"), l, r, out);
            }
        }
        _ if a != b => out.push(format!("{path}: natrix {a} / nats-server {b}")),
        _ => {}
    }
}

#[tokio::test]
async fn config_errors_match_nats_server() {
    let (ours, _d1) = start_js(Path::new(NATRIX));
    let mine = tokio::time::timeout(Duration::from_secs(120), run(&ours))
        .await
        .expect("natrix answered in time");
    assert_eq!(mine.len(), steps().len());
    let Some(reference) = common::reference_binary() else {
        return;
    };
    let (theirs, _d2) = start_js(&reference);
    let want = tokio::time::timeout(Duration::from_secs(120), run(&theirs))
        .await
        .expect("nats-server answered in time");
    let mut differences = Vec::new();
    for (((label, subject, _), a), b) in steps().iter().zip(&mine).zip(&want) {
        if a == b {
            continue;
        }
        let mut keys = Vec::new();
        config_diff("", a, b, &mut keys);
        differences.push(format!("{label} ({subject}):\n    {}", keys.join("\n    ")));
    }
    assert!(
        differences.is_empty(),
        "{} of {} answers differ from nats-server:\n{}",
        differences.len(),
        mine.len(),
        differences.join("\n")
    );
}
