//! The JSON of `$JS.API.>` requests and responses, publish acks and JetStream
//! advisories, field for field as nats-server 2.12–2.15 encodes them.
//!
//! Each type is named after nats-server's Go struct without its `JSApi` prefix
//! (`JSApiStreamPurgeRequest` is [`StreamPurgeRequest`]) and its fields after their JSON
//! keys. What carries over from the Go struct tags:
//!
//! - **Key names and order.** Fields are declared in Go's order, so serialising gives
//!   nats-server's key order (embedded Go structs become `#[serde(flatten)]`).
//! - **`omitempty`.** A field with `omitempty` is skipped when zero, false, empty or
//!   `None`; every other field always appears, even when zero. Go never omits a struct
//!   value, even with `omitempty`: `consumer_limits` is `{}` when empty, and a `time.Time`
//!   such as `pinned_ts` or the pause request's `pause_until` always appears (as
//!   `0001-01-01T00:00:00Z` when zero). A nil Go slice without `omitempty` is `null`
//!   (`"streams":null` in a names response with no streams).
//! - **Numbers.** Go `int` is `i64`, `uint64` is `u64`; durations are `i64` nanoseconds
//!   ([`Nanos`]); times are [`UnixNanos`] with 0 for Go's zero time, formatted as
//!   `time.RFC3339Nano` in UTC (see [`super::json`]).
//! - **Enums** marshal as nats-server's strings and reject unknown strings with
//!   nats-server's message (`can not unmarshal "\"x\""`); `discard` reads case-insensitively,
//!   `deliver_policy` also accepts `"undefined"`, `persist_mode` also `""`, as in Go.
//!
//! Responses are [`ApiResponse<T>`]: `{"type":"io.nats.jetstream.api.v1.<x>_response",
//! "error":{…}}` then the fields of the body `T`. An error response carries the body's zero
//! value, which is not always empty: a stream info error still has `total`, `offset` and
//! `limit`, a purge error has `"purged":0`, exactly as nats-server sends them.
//! Serialise with [`ApiResponse::to_json`] (or [`super::json::to_vec`]) to get Go's
//! escaping of `<`, `>` and `&`.
//!
//! Requests are read with [`super::json::decode_request`], which behaves like
//! nats-server's `unmarshalRequest` (server/jetstream_api.go `unmarshalRequest`, HEAD
//! 1787eee, L1287): the body is decoded with `DisallowUnknownFields`; when that fails
//! and JetStream's `strict` is on (the default since 2.11: `NoJetStreamStrict` is false
//! unless `jetstream { strict: false }`), the request fails with `JSInvalidJSONErr`
//! (10025), e.g. `invalid JSON: json: unknown field "bogus"`; with `strict: false` it
//! logs a warning and decodes again leniently. `pedantic` does not govern unknown fields;
//! it makes nats-server refuse to change a value it would otherwise default or adjust
//! (see [`StreamConfig::apply_defaults`], [`ConsumerConfig::apply_defaults`]). A pull
//! request (`CONSUMER.MSG.NEXT`) is the exception: it is always decoded leniently
//! ([`ConsumerGetNextRequest::parse`]).
//!
//! Not here: `META.RESCUE` and the cluster advisories (leader elected, quorum lost,
//! server removed, out of space), which only clustered JetStream sends.

use std::collections::BTreeMap;
use std::fmt;

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::errors::{self, ApiError};
use super::json::{self, is_default};
pub use super::json::{Nanos, UnixNanos};

const SECOND: Nanos = 1_000_000_000;

/// nats-server's `StreamDefaultDuplicatesWindow`: 2 minutes.
pub const STREAM_DEFAULT_DUPLICATES_WINDOW: Nanos = 120 * SECOND;
/// nats-server's `JsAckWaitDefault`: 30 seconds, for `explicit` and `all` ack policies.
pub const CONSUMER_DEFAULT_ACK_WAIT: Nanos = 30 * SECOND;
/// nats-server's `JsDefaultMaxAckPending`.
pub const CONSUMER_DEFAULT_MAX_ACK_PENDING: i64 = 1000;
/// nats-server's `JSWaitQueueDefaultMax`: `max_waiting` of a pull consumer.
pub const CONSUMER_DEFAULT_MAX_WAITING: i64 = 512;
/// nats-server's `JsDefaultPinnedTTL`: `priority_timeout` of a `pinned_client` consumer.
pub const CONSUMER_DEFAULT_PINNED_TTL: Nanos = 120 * SECOND;
/// nats-server's `JsDeleteWaitTimeDefault`: the `inactive_threshold` an ephemeral
/// consumer gets when it sets none.
pub const CONSUMER_DEFAULT_EPHEMERAL_INACTIVE_THRESHOLD: Nanos = 5 * SECOND;
/// nats-server's `sourceHealthHB`: the heartbeat forced on a `flow_control` ack policy.
pub const CONSUMER_FLOW_CONTROL_HEARTBEAT: Nanos = SECOND;
/// nats-server's `JSApiNamesLimit`: names per page of `STREAM.NAMES`/`CONSUMER.NAMES`.
pub const API_NAMES_LIMIT: i64 = 1024;
/// nats-server's `JSApiListLimit`: infos per page of `STREAM.LIST`/`CONSUMER.LIST`.
pub const API_LIST_LIMIT: i64 = 256;
/// nats-server's `JSMaxSubjectDetails`: the most subjects a stream info lists.
pub const MAX_SUBJECT_DETAILS: usize = 100_000;

/// Metadata key of the API level an asset requires (`JSRequiredLevelMetadataKey`).
pub const METADATA_REQUIRED_LEVEL: &str = "_nats.req.level";
/// Metadata key of the server version, added to responses only.
pub const METADATA_SERVER_VERSION: &str = "_nats.ver";
/// Metadata key of the server's API level, added to responses only.
pub const METADATA_SERVER_LEVEL: &str = "_nats.level";

// ---------------------------------------------------------------------------------------
// Enums
// ---------------------------------------------------------------------------------------

/// A scalar JSON token as an enum's deserializer saw it, kept to word errors as Go does
/// (Go hands the raw token to `UnmarshalJSON`).
enum Token {
    Str(String),
    Other(String),
}

impl Token {
    /// The token as JSON text.
    fn raw(&self) -> String {
        match self {
            Token::Str(s) => serde_json::to_string(s).unwrap_or_default(),
            Token::Other(s) => s.clone(),
        }
    }
}

impl<'de> Deserialize<'de> for Token {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl serde::de::Visitor<'_> for V {
            type Value = Token;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E>(self, v: &str) -> Result<Token, E> {
                Ok(Token::Str(v.to_string()))
            }
            fn visit_bool<E>(self, v: bool) -> Result<Token, E> {
                Ok(Token::Other(v.to_string()))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Token, E> {
                Ok(Token::Other(v.to_string()))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Token, E> {
                Ok(Token::Other(v.to_string()))
            }
            fn visit_f64<E>(self, v: f64) -> Result<Token, E> {
                Ok(Token::Other(v.to_string()))
            }
            fn visit_unit<E>(self) -> Result<Token, E> {
                Ok(Token::Other("null".into()))
            }
        }
        d.deserialize_any(V)
    }
}

/// nats-server's wording for a value its `UnmarshalJSON` does not know: `%q` of the raw
/// token.
fn cannot_unmarshal(raw: &str) -> String {
    format!("can not unmarshal {raw:?}")
}

macro_rules! go_enum {
    (
        $(#[$meta:meta])*
        pub enum $name:ident (default $def:ident) {
            $( $(#[$vmeta:meta])* $var:ident = $s:literal, )+
        }
        parse($p:ident) = $parse:expr;
        unknown($raw:ident) = $unknown:expr;
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $var, )+
        }

        impl Default for $name {
            fn default() -> Self {
                $name::$def
            }
        }

        impl $name {
            /// The JSON string nats-server uses.
            pub const fn as_str(self) -> &'static str {
                match self {
                    $( $name::$var => $s, )+
                }
            }

            fn from_exact(s: &str) -> Option<Self> {
                match s {
                    $( $s => Some($name::$var), )+
                    _ => None,
                }
            }

            /// Reads the JSON string as nats-server does.
            pub fn parse($p: &str) -> Option<Self> {
                $parse
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
                s.serialize_str(self.as_str())
            }
        }

        impl<'de> Deserialize<'de> for $name {
            fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                let tok = Token::deserialize(d)?;
                let parsed = match &tok {
                    Token::Str(s) => $name::parse(s),
                    Token::Other(_) => None,
                };
                parsed.ok_or_else(|| {
                    let $raw = tok.raw();
                    serde::de::Error::custom($unknown)
                })
            }
        }
    };
}

go_enum! {
    /// How a stream retains messages (`retention`).
    pub enum RetentionPolicy (default Limits) {
        Limits = "limits",
        Interest = "interest",
        WorkQueue = "workqueue",
    }
    parse(s) = Self::from_exact(s);
    unknown(raw) = cannot_unmarshal(&raw);
}

go_enum! {
    /// What a stream at its limits does with a new message (`discard`). Read
    /// case-insensitively, as nats-server lowercases it.
    pub enum DiscardPolicy (default Old) {
        Old = "old",
        New = "new",
    }
    parse(s) = Self::from_exact(&s.to_lowercase());
    unknown(raw) = cannot_unmarshal(&raw);
}

go_enum! {
    /// Where a stream keeps its messages (`storage`). nats-server treats an absent value
    /// as `file`.
    pub enum StorageType (default File) {
        File = "file",
        Memory = "memory",
    }
    parse(s) = Self::from_exact(s);
    unknown(raw) = cannot_unmarshal(&raw);
}

go_enum! {
    /// Stream store compression (`compression`).
    pub enum Compression (default None) {
        None = "none",
        S2 = "s2",
    }
    parse(s) = Self::from_exact(s);
    unknown(_raw) = "unknown compression algorithm";
}

go_enum! {
    /// Persistence of a stream's writes (`persist_mode`, 2.12+). `default` is omitted
    /// from the JSON; `""` reads as `default`.
    pub enum PersistMode (default Default) {
        Default = "default",
        Async = "async",
    }
    parse(s) = if s.is_empty() { Some(PersistMode::Default) } else { Self::from_exact(s) };
    unknown(raw) = cannot_unmarshal(&raw);
}

go_enum! {
    /// How a consumer's messages are acknowledged (`ack_policy`). Go's zero value, so an
    /// absent `ack_policy`, is `none`.
    pub enum AckPolicy (default None) {
        None = "none",
        All = "all",
        Explicit = "explicit",
        /// 2.14+: acks follow flow-control replies (sourcing consumers).
        FlowControl = "flow_control",
    }
    parse(s) = Self::from_exact(s);
    unknown(raw) = cannot_unmarshal(&raw);
}

go_enum! {
    /// Where a consumer starts (`deliver_policy`); `"undefined"` reads as `all`.
    pub enum DeliverPolicy (default All) {
        All = "all",
        Last = "last",
        New = "new",
        ByStartSequence = "by_start_sequence",
        ByStartTime = "by_start_time",
        LastPerSubject = "last_per_subject",
    }
    parse(s) = if s == "undefined" { Some(DeliverPolicy::All) } else { Self::from_exact(s) };
    unknown(raw) = cannot_unmarshal(&raw);
}

go_enum! {
    /// How fast a consumer replays (`replay_policy`).
    pub enum ReplayPolicy (default Instant) {
        Instant = "instant",
        Original = "original",
    }
    parse(s) = Self::from_exact(s);
    unknown(raw) = cannot_unmarshal(&raw);
}

go_enum! {
    /// How pull requests of priority groups are served (`priority_policy`, 2.11+);
    /// `none` is omitted from the JSON.
    pub enum PriorityPolicy (default None) {
        None = "none",
        Overflow = "overflow",
        PinnedClient = "pinned_client",
        Prioritized = "prioritized",
    }
    parse(s) = Self::from_exact(s);
    unknown(raw) = format!("unknown priority policy: {raw}");
}

go_enum! {
    /// What a consumer create request may do (`action`): `""` creates or updates.
    pub enum ConsumerAction (default CreateOrUpdate) {
        CreateOrUpdate = "",
        Update = "update",
        Create = "create",
    }
    parse(s) = Self::from_exact(s);
    unknown(raw) = format!("unknown consumer action: {raw}");
}

go_enum! {
    /// The `action` of stream and consumer action advisories.
    pub enum ActionAdvisoryType (default Create) {
        Create = "create",
        Delete = "delete",
        Modify = "modify",
    }
    parse(s) = Self::from_exact(s);
    unknown(raw) = cannot_unmarshal(&raw);
}

// ---------------------------------------------------------------------------------------
// Streams
// ---------------------------------------------------------------------------------------

/// A stream's configuration (`StreamConfig`, server/stream.go).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConfig {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subjects: Vec<String>,
    pub retention: RetentionPolicy,
    pub max_consumers: i64,
    pub max_msgs: i64,
    pub max_bytes: i64,
    pub max_age: Nanos,
    pub max_msgs_per_subject: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub max_msg_size: i32,
    pub discard: DiscardPolicy,
    pub storage: StorageType,
    pub num_replicas: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub no_ack: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub duplicate_window: Nanos,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub mirror: Option<StreamSource>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<StreamSource>,
    pub compression: Compression,
    #[serde(skip_serializing_if = "is_default")]
    pub first_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub subject_transform: Option<SubjectTransformConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub republish: Option<RePublish>,
    pub allow_direct: bool,
    pub mirror_direct: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub discard_new_per_subject: bool,
    pub sealed: bool,
    pub deny_delete: bool,
    pub deny_purge: bool,
    pub allow_rollup_hdrs: bool,
    pub consumer_limits: StreamConsumerLimits,
    pub allow_msg_ttl: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub subject_delete_marker_ttl: Nanos,
    #[serde(skip_serializing_if = "is_default")]
    pub allow_msg_counter: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub allow_atomic: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub allow_msg_schedules: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub persist_mode: PersistMode,
    #[serde(skip_serializing_if = "is_default")]
    pub allow_batched: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
}

/// Defaults a stream gives the consumers created on it (`consumer_limits`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConsumerLimits {
    #[serde(skip_serializing_if = "is_default")]
    pub inactive_threshold: Nanos,
    #[serde(skip_serializing_if = "is_default")]
    pub max_ack_pending: i64,
}

/// A subject mapping (`subject_transform`, and the entries of `subject_transforms`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SubjectTransformConfig {
    pub src: String,
    pub dest: String,
}

/// Republishing of stored messages (`republish`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RePublish {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub src: String,
    pub dest: String,
    #[serde(skip_serializing_if = "is_default")]
    pub headers_only: bool,
}

/// Where a stream's replicas go (`placement`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct Placement {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub preferred: String,
}

/// A mirror or source of a stream (`StreamSource`). nats-server has no `domain` here:
/// clients turn a domain into `external.api` (`$JS.<domain>.API`) before sending.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSource {
    pub name: String,
    #[serde(skip_serializing_if = "is_default")]
    pub opt_start_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none", with = "json::time_opt")]
    pub opt_start_time: Option<UnixNanos>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub filter_subject: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subject_transforms: Vec<SubjectTransformConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalStream>,
    /// 2.14+: a durable consumer to source through.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consumer: Option<StreamConsumerSource>,
}

/// The durable consumer a source or mirror uses (2.14+).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamConsumerSource {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub deliver_subject: String,
}

/// A source or mirror in another account or domain.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ExternalStream {
    pub api: String,
    pub deliver: String,
}

/// The body of `STREAM.CREATE` and `STREAM.UPDATE`: a stream config plus `pedantic`.
/// Read it with [`StreamConfigRequest::decode`], which checks unknown fields (it has no
/// `Deserialize`: a flattened config would hide its field names from that check, and
/// decoding a bare [`StreamConfig`] in strict mode would refuse `pedantic`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize)]
pub struct StreamConfigRequest {
    #[serde(flatten)]
    pub config: StreamConfig,
    #[serde(skip_serializing_if = "is_default")]
    pub pedantic: bool,
}

impl StreamConfigRequest {
    /// Decodes a create/update body as nats-server does (see
    /// [`json::decode_request`]); `pedantic` sits beside the config's own fields.
    pub fn decode(body: &[u8], strict: bool) -> Result<Self, ApiError> {
        let Some(mut v) = json::parse_request_value(body)? else {
            return Ok(Self::default());
        };
        let mut pedantic = false;
        if let serde_json::Value::Object(m) = &mut v {
            let keys: Vec<String> = m
                .keys()
                .filter(|k| k.eq_ignore_ascii_case("pedantic"))
                .cloned()
                .collect();
            for k in keys {
                if let Some(p) = m.remove(&k) {
                    pedantic = json::decode_value(&p, strict)?;
                }
            }
        }
        Ok(StreamConfigRequest {
            config: json::decode_value(&v, strict)?,
            pedantic,
        })
    }
}

/// A stream's config and state (`StreamInfo`): the body of stream create, update, info
/// and list responses.
///
/// As nats-server 2.15.2 fills it on a single server: `cluster` is
/// `{"leader":"<server name>"}` in `STREAM.INFO` and `STREAM.LIST` but absent from the
/// create and update responses; `config.metadata` carries `_nats.ver` and `_nats.level`
/// ([`StreamConfig::with_dynamic_metadata`]); a mirror's info has
/// `"mirror":{"name":…,"lag":0,"active":-1}` before it has received anything.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfo {
    pub config: StreamConfig,
    #[serde(with = "json::time")]
    pub created: UnixNanos,
    pub state: StreamState,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub mirror: Option<StreamSourceInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub sources: Vec<StreamSourceInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub alternates: Vec<StreamAlternate>,
    /// When the info was gathered.
    #[serde(with = "json::time")]
    pub ts: UnixNanos,
}

/// A stream's counts and bounds (`StreamState`). For an empty stream nats-server sends
/// `first_ts`/`last_ts` as Go's zero time. A stream that never stored a message reports
/// `first_seq` 0 and `last_seq` 0; after a purge `first_seq` is `last_seq + 1`, `first_ts`
/// the zero time and `last_ts` the last message's time.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamState {
    pub messages: u64,
    pub bytes: u64,
    pub first_seq: u64,
    #[serde(with = "json::time")]
    pub first_ts: UnixNanos,
    pub last_seq: u64,
    #[serde(with = "json::time")]
    pub last_ts: UnixNanos,
    #[serde(skip_serializing_if = "is_default")]
    pub num_subjects: i64,
    /// Per-subject counts, only when the info request asked with `subjects_filter`.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub subjects: BTreeMap<String, u64>,
    #[serde(skip_serializing_if = "is_default")]
    pub num_deleted: i64,
    /// Interior deleted sequences, only when the info request set `deleted_details`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub deleted: Vec<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lost: Option<LostStreamData>,
    pub consumer_count: i64,
}

/// Messages a store lost (found missing or corrupt at recovery).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LostStreamData {
    #[serde(with = "json::nil_if_empty")]
    pub msgs: Vec<u64>,
    pub bytes: u64,
}

/// A mirror of this stream elsewhere that direct gets may use.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamAlternate {
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    pub cluster: String,
}

/// The servers behind a stream or consumer (`ClusterInfo`). A single server reports only
/// `leader` (its name).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClusterInfo {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub raft_group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub leader: String,
    #[serde(skip_serializing_if = "Option::is_none", with = "json::time_opt")]
    pub leader_since: Option<UnixNanos>,
    #[serde(skip_serializing_if = "is_default")]
    pub system_account: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub traffic_account: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<PeerInfo>,
    /// 2.15+: where a reconfiguration is heading.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub desired: Option<DesiredClusterInfo>,
}

/// The target of a stream or consumer reconfiguration (2.15+).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DesiredClusterInfo {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub replicas: Vec<PeerInfo>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub origin: Option<DesiredClusterInfoOrigin>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub status: Option<DesiredClusterInfoStatus>,
}

/// What a reconfiguration started from.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DesiredClusterInfoOrigin {
    pub replicas: i64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retention: Option<RetentionPolicy>,
}

/// What a reconfiguration waits on; `type` is one of `meta`, `membership`, `snapshot`,
/// `catchup`, `quorum`, `blocked`, `unavailable`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct DesiredClusterInfoStatus {
    pub description: String,
    pub r#type: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub err: String,
}

/// One replica of a stream or consumer.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerInfo {
    pub name: String,
    pub current: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub offline: bool,
    /// Time since last seen.
    pub active: Nanos,
    #[serde(skip_serializing_if = "is_default")]
    pub lag: u64,
    pub peer: String,
    #[serde(skip_serializing_if = "is_default")]
    pub pending: bool,
}

/// The state of a stream's mirror or one of its sources.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSourceInfo {
    pub name: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub external: Option<ExternalStream>,
    pub lag: u64,
    /// Time since the last message from the origin, -1 if none yet.
    pub active: Nanos,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub filter_subject: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subject_transforms: Vec<SubjectTransformConfig>,
}

/// Defaults for [`StreamConfig::apply_defaults`] that come from the server's limits.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StreamDefaultLimits {
    /// `jetstream { limits { duplicate_window } }` (`JSLimitOpts.Duplicates`); 0 for none.
    pub max_duplicate_window: Nanos,
}

fn pedantic(msg: &str) -> ApiError {
    errors::pedantic(msg)
}

impl StreamConfig {
    /// The config with nats-server's defaults filled in, as [`apply_defaults`] does with
    /// no server limit and without `pedantic` (which cannot fail).
    ///
    /// [`apply_defaults`]: StreamConfig::apply_defaults
    pub fn with_defaults(mut self) -> Self {
        // Only `pedantic` makes `apply_defaults` fail.
        let _ = self.apply_defaults(&StreamDefaultLimits::default(), false);
        self
    }

    /// Fills in the values nats-server's `checkStreamCfg` (server/stream.go) defaults or
    /// adjusts, which then appear in the config it stores and echoes back:
    ///
    /// - `num_replicas` 0 → 1; `storage` absent → `file` (the Rust default);
    /// - `max_msgs`, `max_msgs_per_subject`, `max_bytes`, `max_msg_size`, `max_consumers`:
    ///   0 or below -1 → -1;
    /// - `duplicate_window` 0 on a stream with no mirror and no sources → 2 minutes, or
    ///   the server's `max_duplicate_window` if lower, or `max_age` if lower still;
    /// - `subject_delete_marker_ttl` set → `allow_msg_ttl` on, and `allow_rollup_hdrs` on
    ///   with `deny_purge` off; `allow_msg_schedules` → `allow_rollup_hdrs` on, `deny_purge`
    ///   off;
    /// - no `subjects`, no mirror and no sources → `subjects: [name]`;
    /// - `republish.src` empty → `>`; a `>`→`>` republish on a stream whose only subject
    ///   is the `subject_transform` source republishes the transform's destination;
    /// - an empty `placement` → none.
    ///
    /// With `pedantic`, each adjustment that changes a value the client set (rather than
    /// filling in an absent one) fails instead, with nats-server's error. The validations
    /// `checkStreamCfg` makes between these steps (names, limits, subjects, mirrors,
    /// sources) are the request handler's; it should run them in nats-server's order,
    /// since the first failure decides the error. Inheriting `mirror_direct` from the
    /// origin stream also needs the handler (it looks the origin up).
    pub fn apply_defaults(
        &mut self,
        limits: &StreamDefaultLimits,
        pedantic_mode: bool,
    ) -> Result<(), ApiError> {
        if self.num_replicas == 0 {
            self.num_replicas = 1;
        }
        for (value, name) in [
            (&mut self.max_msgs, "max_msgs"),
            (&mut self.max_msgs_per_subject, "max_msgs_per_subject"),
            (&mut self.max_bytes, "max_bytes"),
        ] {
            unlimited(value, name, pedantic_mode)?;
        }
        let mut max_msg_size = i64::from(self.max_msg_size);
        unlimited(&mut max_msg_size, "max_msg_size", pedantic_mode)?;
        self.max_msg_size = i32::try_from(max_msg_size).unwrap_or(-1);
        unlimited(&mut self.max_consumers, "max_consumers", pedantic_mode)?;

        if self.duplicate_window == 0 && self.mirror.is_none() && self.sources.is_empty() {
            let mut window = STREAM_DEFAULT_DUPLICATES_WINDOW;
            if limits.max_duplicate_window > 0 && window > limits.max_duplicate_window {
                if pedantic_mode {
                    return Err(pedantic(
                        "duplicate window limits are higher than current limits",
                    ));
                }
                window = limits.max_duplicate_window;
            }
            if self.max_age != 0 && self.max_age < window {
                if pedantic_mode {
                    return Err(pedantic("duplicate window cannot be bigger than max age"));
                }
                self.duplicate_window = self.max_age;
            } else {
                self.duplicate_window = window;
            }
        }

        if self.subject_delete_marker_ttl > 0 {
            if !self.allow_msg_ttl {
                if pedantic_mode {
                    return Err(errors::stream_invalid_config(
                        "subject delete marker cannot be set if message TTLs are disabled",
                    ));
                }
                self.allow_msg_ttl = true;
            }
            if !self.allow_rollup_hdrs {
                if pedantic_mode {
                    return Err(errors::stream_invalid_config(
                        "subject delete marker cannot be set if roll-ups are disabled",
                    ));
                }
                self.allow_rollup_hdrs = true;
                self.deny_purge = false;
            }
        }
        if self.allow_msg_schedules && !self.allow_rollup_hdrs {
            if pedantic_mode {
                return Err(errors::stream_invalid_config(
                    "message scheduling cannot be set if roll-ups are disabled",
                ));
            }
            self.allow_rollup_hdrs = true;
            self.deny_purge = false;
        }

        if self.subjects.is_empty() && self.mirror.is_none() && self.sources.is_empty() {
            self.subjects.push(self.name.clone());
        }

        if let Some(rp) = &mut self.republish {
            if rp.src.is_empty() {
                if pedantic_mode {
                    return Err(pedantic("republish source can not be empty"));
                }
                rp.src = ">".into();
            }
            if let Some(tr) = &self.subject_transform
                && rp.dest == ">"
                && rp.src == ">"
                && self.subjects.len() == 1
                && tr.src == self.subjects[0]
            {
                if pedantic_mode {
                    return Err(pedantic("implicit republish based on subject transform"));
                }
                rp.src = tr.dest.clone();
                rp.dest = tr.dest.clone();
            }
        }

        if self
            .placement
            .as_ref()
            .is_some_and(|p| *p == Placement::default())
        {
            self.placement = None;
        }
        Ok(())
    }

    /// The API level this config needs (nats-server's `setStaticStreamMetadata`): 1 for
    /// message TTLs, 2 for counters, atomic batches, schedules and async persistence, 4
    /// for batched publishing.
    pub fn required_api_level(&self) -> u32 {
        let mut level = 0;
        if self.allow_msg_ttl || self.subject_delete_marker_ttl > 0 {
            level = level.max(1);
        }
        if self.allow_msg_counter
            || self.allow_atomic
            || self.allow_msg_schedules
            || self.persist_mode == PersistMode::Async
        {
            level = level.max(2);
        }
        if self.allow_batched {
            level = level.max(4);
        }
        level
    }

    /// What nats-server does to the metadata of a config it is about to store: drops the
    /// response-only keys and records `_nats.req.level`.
    pub fn set_static_metadata(&mut self) {
        self.metadata.remove(METADATA_SERVER_VERSION);
        self.metadata.remove(METADATA_SERVER_LEVEL);
        self.metadata.insert(
            METADATA_REQUIRED_LEVEL.into(),
            self.required_api_level().to_string(),
        );
    }

    /// The config as a response shows it: with `_nats.ver` and `_nats.level` added.
    pub fn with_dynamic_metadata(&self, version: &str, api_level: u32) -> StreamConfig {
        let mut cfg = self.clone();
        cfg.metadata
            .insert(METADATA_SERVER_VERSION.into(), version.into());
        cfg.metadata
            .insert(METADATA_SERVER_LEVEL.into(), api_level.to_string());
        cfg
    }
}

/// nats-server's "0 or below -1 means -1" for stream limits.
fn unlimited(value: &mut i64, name: &str, pedantic_mode: bool) -> Result<(), ApiError> {
    if *value == 0 || *value < -1 {
        if pedantic_mode && *value < -1 {
            return Err(pedantic(&format!("{name} must be set to -1")));
        }
        *value = -1;
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------
// Publish acks
// ---------------------------------------------------------------------------------------

/// What a stream answers a publish with (`PubAck`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PubAck {
    pub stream: String,
    pub seq: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(default, skip_serializing_if = "is_default")]
    pub duplicate: bool,
    /// The counter's value after a `Nats-Incr` publish (a decimal string).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub val: String,
    /// The batch id, on the ack of a batch's commit.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub batch: String,
    /// The number of messages committed in the batch.
    #[serde(default, skip_serializing_if = "is_default")]
    pub count: u64,
}

/// The reply to a publish (`JSPubAckResponse`): `{"error":{…}}` or the ack's fields;
/// unlike API responses it has no `type`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct PubAckResponse {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    #[serde(flatten)]
    pub ack: Option<PubAck>,
}

impl PubAck {
    /// A successful ack as nats-server writes it. nats-server builds these by hand, not
    /// with `json.Marshal`, and the bytes differ from the struct's serde form: `domain`
    /// comes before `seq`, and a duplicate is `"duplicate": true` with a space. The tail
    /// is one of: `,"duplicate": true` (then `,"batch":…,"count":…` for a duplicate batch
    /// commit), `,"batch":…,"count":…` for a batch commit, `,"val":…` for a counter
    /// stream (when `val` is set), or nothing.
    pub fn to_json(&self) -> Vec<u8> {
        fn q(s: &str) -> String {
            serde_json::to_string(s).unwrap_or_else(|_| "\"\"".into())
        }
        let mut out = format!("{{\"stream\":{}", q(&self.stream));
        if !self.domain.is_empty() {
            out.push_str(&format!(",\"domain\":{}", q(&self.domain)));
        }
        out.push_str(&format!(",\"seq\":{}", self.seq));
        if self.duplicate {
            out.push_str(",\"duplicate\": true");
        }
        if !self.batch.is_empty() {
            out.push_str(&format!(
                ",\"batch\":{},\"count\":{}",
                q(&self.batch),
                self.count
            ));
        } else if !self.duplicate && !self.val.is_empty() {
            out.push_str(&format!(",\"val\":{}", q(&self.val)));
        }
        out.push('}');
        out.into_bytes()
    }
}

impl PubAckResponse {
    pub fn ok(ack: PubAck) -> Self {
        PubAckResponse {
            error: None,
            ack: Some(ack),
        }
    }

    /// A refused publish as nats-server sends it: the error, then the stream's name and
    /// `"seq":0` (`{"error":{…},"stream":"ORDERS","seq":0}`).
    pub fn error(stream: impl Into<String>, error: ApiError) -> Self {
        PubAckResponse {
            error: Some(error),
            ack: Some(PubAck {
                stream: stream.into(),
                ..PubAck::default()
            }),
        }
    }

    /// The reply as nats-server writes it: an error through `json.Marshal`, a success
    /// as [`PubAck::to_json`].
    pub fn to_json(&self) -> Vec<u8> {
        match (&self.error, &self.ack) {
            (None, Some(ack)) => ack.to_json(),
            _ => to_json_or_500(self),
        }
    }
}

/// The body of a counter message (`{"val":"123"}`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CounterValue {
    pub val: String,
}

/// Flow-control ack of a fast batch publish (2.14+): `{"type":"ack","seq":…,"msgs":…}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchFlowAck {
    /// Always `"ack"`.
    pub r#type: String,
    pub seq: u64,
    pub msgs: u16,
}

/// Gap report of a fast batch publish: `{"type":"gap","last_seq":…,"seq":…}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchFlowGap {
    /// Always `"gap"`.
    pub r#type: String,
    pub last_seq: u64,
    pub seq: u64,
}

/// Error report of a fast batch publish: `{"type":"err","seq":…,"error":{…}}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct BatchFlowErr {
    /// Always `"err"`.
    pub r#type: String,
    pub seq: u64,
    pub error: Option<ApiError>,
}

// ---------------------------------------------------------------------------------------
// Consumers
// ---------------------------------------------------------------------------------------

/// A consumer's configuration (`ConsumerConfig`, server/consumer.go).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerConfig {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub durable_name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub description: String,
    pub deliver_policy: DeliverPolicy,
    #[serde(skip_serializing_if = "is_default")]
    pub opt_start_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none", with = "json::time_opt")]
    pub opt_start_time: Option<UnixNanos>,
    pub ack_policy: AckPolicy,
    #[serde(skip_serializing_if = "is_default")]
    pub ack_wait: Nanos,
    #[serde(skip_serializing_if = "is_default")]
    pub max_deliver: i64,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub backoff: Vec<Nanos>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub filter_subject: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub filter_subjects: Vec<String>,
    pub replay_policy: ReplayPolicy,
    /// Bits per second.
    #[serde(skip_serializing_if = "is_default")]
    pub rate_limit_bps: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub sample_freq: String,
    #[serde(skip_serializing_if = "is_default")]
    pub max_waiting: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub max_ack_pending: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub flow_control: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub headers_only: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub max_batch: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub max_expires: Nanos,
    #[serde(skip_serializing_if = "is_default")]
    pub max_bytes: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub deliver_subject: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub deliver_group: String,
    #[serde(skip_serializing_if = "is_default")]
    pub idle_heartbeat: Nanos,
    #[serde(skip_serializing_if = "is_default")]
    pub inactive_threshold: Nanos,
    pub num_replicas: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub mem_storage: bool,
    /// A server-internal consumer (mirrors, sources).
    #[serde(skip_serializing_if = "is_default")]
    pub direct: bool,
    /// 2.14+: a consumer created for sourcing.
    #[serde(skip_serializing_if = "is_default")]
    pub sourcing: bool,
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub metadata: BTreeMap<String, String>,
    #[serde(skip_serializing_if = "Option::is_none", with = "json::time_opt")]
    pub pause_until: Option<UnixNanos>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub priority_groups: Vec<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub priority_policy: PriorityPolicy,
    /// The pin's time to live under `pinned_client`.
    #[serde(skip_serializing_if = "is_default")]
    pub priority_timeout: Nanos,
}

/// Server and account limits that [`ConsumerConfig::apply_defaults`] takes defaults from;
/// 0 where unset.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ConsumerDefaultLimits {
    /// `jetstream { limits { max_ack_pending } }`.
    pub server_max_ack_pending: i64,
    /// `jetstream { limits { max_request_batch } }`.
    pub server_max_request_batch: i64,
    /// The account's (tier's) `max_ack_pending`.
    pub account_max_ack_pending: i64,
}

impl ConsumerConfig {
    /// A pull consumer has no `deliver_subject`.
    pub fn is_pull(&self) -> bool {
        self.deliver_subject.is_empty()
    }

    /// The config with nats-server's defaults filled in, as [`apply_defaults`] does
    /// with no stream, server or account limit and without `pedantic`. Whether it is a
    /// pull consumer follows from `deliver_subject`, as in nats-server.
    ///
    /// [`apply_defaults`]: ConsumerConfig::apply_defaults
    pub fn with_defaults(mut self) -> Self {
        // Only `pedantic` makes `apply_defaults` fail.
        let _ = self.apply_defaults(
            &StreamConsumerLimits::default(),
            &ConsumerDefaultLimits::default(),
            false,
        );
        self
    }

    /// nats-server's `setConsumerConfigDefaults` (server/consumer.go): the values it
    /// fills in, which the consumer info then shows.
    ///
    /// - `max_deliver` 0 or below -1 → -1; negative `max_waiting`, `max_batch`,
    ///   `max_expires`, `max_bytes`, `idle_heartbeat`, `inactive_threshold`,
    ///   `priority_timeout` → 0; `max_ack_pending` below -1 → -1;
    /// - a pull consumer's `max_waiting` 0 → 512;
    /// - `ack_wait` 0 with ack policy `explicit` or `all` → 30 s; with `backoff`, `ack_wait`
    ///   is the first backoff value;
    /// - `max_ack_pending` 0 → the stream's `consumer_limits.max_ack_pending`, then, if
    ///   still 0 and the ack policy is not `none`, 1000 lowered to the server's or the
    ///   account's limit;
    /// - `inactive_threshold` 0 → the stream's `consumer_limits.inactive_threshold`;
    /// - a pull consumer's `max_batch` 0 → the server's `max_request_batch`;
    /// - `priority_timeout` 0 under `pinned_client` → 2 minutes;
    /// - ack policy `flow_control` → `flow_control` on and `idle_heartbeat` 1 s (skipped
    ///   when pedantic, as in nats-server);
    /// - and, from nats-server's `updateInactiveThreshold` when the consumer is added: an
    ///   ephemeral consumer (no `durable_name`) without `inactive_threshold` → 5 s.
    ///
    /// `num_replicas` stays as sent (0 on a single server). With `pedantic`, a value that
    /// would be changed fails instead with nats-server's `JSPedanticErrF`.
    pub fn apply_defaults(
        &mut self,
        stream: &StreamConsumerLimits,
        limits: &ConsumerDefaultLimits,
        pedantic_mode: bool,
    ) -> Result<(), ApiError> {
        if self.max_deliver == 0 || self.max_deliver < -1 {
            if pedantic_mode && self.max_deliver < -1 {
                return Err(pedantic("max_deliver must be set to -1"));
            }
            self.max_deliver = -1;
        }
        if self.max_waiting < 0 {
            if pedantic_mode {
                return Err(pedantic("max_waiting must not be negative"));
            }
            self.max_waiting = 0;
        }
        if self.max_ack_pending < -1 {
            if pedantic_mode {
                return Err(pedantic("max_ack_pending must be set to -1"));
            }
            self.max_ack_pending = -1;
        }
        for (value, name) in [
            (&mut self.max_batch, "max_batch"),
            (&mut self.max_expires, "max_expires"),
            (&mut self.max_bytes, "max_bytes"),
            (&mut self.idle_heartbeat, "idle_heartbeat"),
            (&mut self.inactive_threshold, "inactive_threshold"),
            (&mut self.priority_timeout, "priority_timeout"),
        ] {
            if *value < 0 {
                if pedantic_mode {
                    return Err(pedantic(&format!("{name} must not be negative")));
                }
                *value = 0;
            }
        }

        if self.deliver_subject.is_empty() && self.max_waiting == 0 {
            self.max_waiting = CONSUMER_DEFAULT_MAX_WAITING;
        }
        if self.ack_wait == 0 && matches!(self.ack_policy, AckPolicy::Explicit | AckPolicy::All) {
            self.ack_wait = CONSUMER_DEFAULT_ACK_WAIT;
        }
        if let Some(&first) = self.backoff.first() {
            if pedantic_mode && self.ack_wait != first {
                return Err(pedantic("first backoff value has to equal batch AckWait"));
            }
            self.ack_wait = first;
        }
        if self.max_ack_pending == 0 {
            if pedantic_mode && stream.max_ack_pending > 0 {
                return Err(pedantic(
                    "max_ack_pending must be set if it's configured in stream limits",
                ));
            }
            self.max_ack_pending = stream.max_ack_pending;
        }
        if self.inactive_threshold == 0 {
            if pedantic_mode && stream.inactive_threshold > 0 {
                return Err(pedantic(
                    "inactive_threshold must be set if it's configured in stream limits",
                ));
            }
            self.inactive_threshold = stream.inactive_threshold;
        }
        if self.max_ack_pending == 0 && self.ack_policy != AckPolicy::None {
            let mut pending = CONSUMER_DEFAULT_MAX_ACK_PENDING;
            if limits.server_max_ack_pending > 0 && limits.server_max_ack_pending < pending {
                pending = limits.server_max_ack_pending;
            }
            if limits.account_max_ack_pending > 0 && limits.account_max_ack_pending < pending {
                pending = limits.account_max_ack_pending;
            }
            self.max_ack_pending = pending;
        }
        if self.deliver_subject.is_empty()
            && self.max_batch == 0
            && limits.server_max_request_batch > 0
        {
            if pedantic_mode {
                return Err(pedantic(
                    "max_request_batch must be set if it's JetStream limits are set",
                ));
            }
            self.max_batch = limits.server_max_request_batch;
        }
        if self.priority_policy == PriorityPolicy::PinnedClient && self.priority_timeout == 0 {
            self.priority_timeout = CONSUMER_DEFAULT_PINNED_TTL;
        }
        if self.ack_policy == AckPolicy::FlowControl && !pedantic_mode {
            self.flow_control = true;
            self.idle_heartbeat = CONSUMER_FLOW_CONTROL_HEARTBEAT;
        }
        if self.durable_name.is_empty() && self.inactive_threshold <= 0 {
            self.inactive_threshold = CONSUMER_DEFAULT_EPHEMERAL_INACTIVE_THRESHOLD;
        }
        Ok(())
    }

    /// The API level this config needs (nats-server's `setStaticConsumerMetadata`): 1
    /// for a pause or priority groups, 4 for the `flow_control` ack policy.
    pub fn required_api_level(&self) -> u32 {
        let mut level = 0;
        if self.pause_until.is_some_and(|t| t != 0) {
            level = level.max(1);
        }
        if self.priority_policy != PriorityPolicy::None
            || self.priority_timeout != 0
            || !self.priority_groups.is_empty()
        {
            level = level.max(1);
        }
        if self.ack_policy == AckPolicy::FlowControl {
            level = level.max(4);
        }
        level
    }

    /// As [`StreamConfig::set_static_metadata`].
    pub fn set_static_metadata(&mut self) {
        self.metadata.remove(METADATA_SERVER_VERSION);
        self.metadata.remove(METADATA_SERVER_LEVEL);
        self.metadata.insert(
            METADATA_REQUIRED_LEVEL.into(),
            self.required_api_level().to_string(),
        );
    }

    /// As [`StreamConfig::with_dynamic_metadata`].
    pub fn with_dynamic_metadata(&self, version: &str, api_level: u32) -> ConsumerConfig {
        let mut cfg = self.clone();
        cfg.metadata
            .insert(METADATA_SERVER_VERSION.into(), version.into());
        cfg.metadata
            .insert(METADATA_SERVER_LEVEL.into(), api_level.to_string());
        cfg
    }
}

/// A consumer's config and state (`ConsumerInfo`). On a single server nats-server
/// 2.15.2 sends no `cluster` here and `config.num_replicas` stays 0 unless set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerInfo {
    pub stream_name: String,
    pub name: String,
    #[serde(with = "json::time")]
    pub created: UnixNanos,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub config: Option<ConsumerConfig>,
    pub delivered: SequenceInfo,
    pub ack_floor: SequenceInfo,
    pub num_ack_pending: i64,
    pub num_redelivered: i64,
    pub num_waiting: i64,
    pub num_pending: u64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cluster: Option<ClusterInfo>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub push_bound: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub paused: bool,
    #[serde(default, skip_serializing_if = "is_default")]
    pub pause_remaining: Nanos,
    /// When the info was gathered.
    #[serde(with = "json::time")]
    pub ts: UnixNanos,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub priority_groups: Vec<PriorityGroupState>,
}

/// A consumer and a stream sequence, and when that point was last reached.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SequenceInfo {
    pub consumer_seq: u64,
    pub stream_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none", with = "json::time_opt")]
    pub last_active: Option<UnixNanos>,
}

/// The state of one priority group. `pinned_ts` always appears (Go's `omitempty` does
/// not omit a struct), as the zero time when nothing is pinned.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PriorityGroupState {
    pub group: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub pinned_client_id: String,
    #[serde(with = "json::time")]
    pub pinned_ts: UnixNanos,
}

/// The body of `CONSUMER.CREATE` and `CONSUMER.DURABLE.CREATE` (`CreateConsumerRequest`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct CreateConsumerRequest {
    pub stream_name: String,
    pub config: ConsumerConfig,
    pub action: ConsumerAction,
    #[serde(skip_serializing_if = "is_default")]
    pub pedantic: bool,
}

/// The JSON form of a `-NAK` body: `{"delay":<ns>}`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerNakOptions {
    pub delay: Nanos,
}

/// A pull request (`CONSUMER.MSG.NEXT`), `JSApiConsumerGetNextRequest` with its embedded
/// `PriorityGroup` fields inline.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerGetNextRequest {
    #[serde(skip_serializing_if = "is_default")]
    pub expires: Nanos,
    #[serde(skip_serializing_if = "is_default")]
    pub batch: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub max_bytes: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub no_wait: bool,
    #[serde(skip_serializing_if = "is_default")]
    pub idle_heartbeat: Nanos,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub group: String,
    #[serde(skip_serializing_if = "is_default")]
    pub min_pending: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub min_ack_pending: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(skip_serializing_if = "is_default")]
    pub priority: i64,
}

impl ConsumerGetNextRequest {
    /// Reads a pull request body as nats-server's `nextReqFromMsg` does: empty (after
    /// trimming whitespace) is a batch of 1; a body starting with `{` is JSON, decoded
    /// leniently (unknown fields ignored, whatever `strict` says); a bare integer is the
    /// batch size (even 0 or negative, which the handler then refuses); anything else is
    /// a batch of 1. A JSON request whose `idle_heartbeat` is more than half its
    /// `expires` fails with `heartbeat value too large`.
    pub fn parse(body: &[u8]) -> Result<Self, String> {
        let req = body.trim_ascii();
        if req.is_empty() {
            return Ok(Self::batch(1));
        }
        if req[0] == b'{' {
            let v: serde_json::Value = serde_json::from_slice(req).map_err(|e| e.to_string())?;
            let mut v = v;
            if let serde_json::Value::Object(m) = &mut v {
                m.retain(|_, v| !v.is_null());
            }
            let r: Self = json::decode_value(&v, false).map_err(|e| {
                e.description
                    .strip_prefix("invalid JSON: ")
                    .unwrap_or(&e.description)
                    .to_string()
            })?;
            if r.idle_heartbeat > 0 && r.idle_heartbeat.saturating_mul(2) > r.expires {
                return Err("heartbeat value too large".into());
            }
            return Ok(r);
        }
        match std::str::from_utf8(req).ok().and_then(parse_go_atoi) {
            Some(n) => Ok(Self::batch(n)),
            None => Ok(Self::batch(1)),
        }
    }

    fn batch(n: i64) -> Self {
        ConsumerGetNextRequest {
            batch: n,
            ..Self::default()
        }
    }
}

/// Go's `strconv.Atoi`: optional sign, decimal digits, nothing else.
fn parse_go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `CONSUMER.RESET` (2.14+): move a consumer to a stream sequence.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerResetRequest {
    #[serde(skip_serializing_if = "is_default")]
    pub seq: u64,
}

/// `CONSUMER.PAUSE`: pause until a time; the zero time (or a past one) resumes.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerPauseRequest {
    #[serde(with = "json::time")]
    pub pause_until: UnixNanos,
}

/// `CONSUMER.UNPIN`: release the pinned client of a priority group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerUnpinRequest {
    pub group: String,
}

// ---------------------------------------------------------------------------------------
// Account
// ---------------------------------------------------------------------------------------

/// An account's JetStream limits (`JetStreamAccountLimits`); -1 is unlimited.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountLimits {
    pub max_memory: i64,
    pub max_storage: i64,
    pub max_streams: i64,
    pub max_consumers: i64,
    pub max_ack_pending: i64,
    pub memory_max_stream_bytes: i64,
    pub storage_max_stream_bytes: i64,
    pub max_bytes_required: bool,
}

/// Usage and limits of an account or one of its tiers (`JetStreamTier`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountTier {
    pub memory: u64,
    pub storage: u64,
    pub reserved_memory: u64,
    pub reserved_storage: u64,
    pub streams: i64,
    pub consumers: i64,
    pub limits: AccountLimits,
}

/// API request counts (`JetStreamAPIStats`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiStats {
    /// The API level the server implements.
    pub level: i64,
    pub total: u64,
    pub errors: u64,
    #[serde(skip_serializing_if = "is_default")]
    pub inflight: u64,
}

/// What `$JS.API.INFO` reports (`JetStreamAccountStats`): the account's totals (its
/// tier fields inline), domain, API counts and per-tier usage.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountStats {
    #[serde(flatten)]
    pub tier: AccountTier,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub domain: String,
    pub api: ApiStats,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub tiers: BTreeMap<String, AccountTier>,
}

// ---------------------------------------------------------------------------------------
// Other requests
// ---------------------------------------------------------------------------------------

/// Paging of names and list responses (`ApiPaged`); always present, even on errors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiPaged {
    pub total: i64,
    pub offset: i64,
    pub limit: i64,
}

/// `STREAM.INFO` (optional body).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamInfoRequest {
    pub offset: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub deleted_details: bool,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subjects_filter: String,
}

/// `STREAM.PEER.REMOVE` (nats-server's `JSApiStreamRemovePeerRequest`): the server name
/// of the replica to remove.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct PeerRemoveRequest {
    pub peer: String,
}

/// `SERVER.REMOVE` (nats-server's `JSApiMetaServerRemoveRequest`, system account): the
/// server by name or by its peer id.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ServerRemoveRequest {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub peer: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub peer_id: String,
}

/// `STREAM.NAMES` and `STREAM.LIST` (optional body): a page and a subject filter.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamNamesRequest {
    pub offset: i64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
}

/// `STREAM.LIST` takes the same body as `STREAM.NAMES`.
pub type StreamListRequest = StreamNamesRequest;

/// `CONSUMER.NAMES` and `CONSUMER.LIST` (optional body).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumersRequest {
    pub offset: i64,
}

/// `STREAM.PURGE` (optional body): messages matching `filter`, below `seq`, or all but
/// the newest `keep`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamPurgeRequest {
    #[serde(skip_serializing_if = "is_default")]
    pub seq: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub filter: String,
    #[serde(skip_serializing_if = "is_default")]
    pub keep: u64,
}

/// `STREAM.MSG.DELETE`; `no_erase` removes without overwriting.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MsgDeleteRequest {
    pub seq: u64,
    #[serde(skip_serializing_if = "is_default")]
    pub no_erase: bool,
}

/// `STREAM.MSG.GET` and `DIRECT.GET` (`JSApiMsgGetRequest`); the batch and multi fields
/// are for direct gets.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MsgGetRequest {
    #[serde(skip_serializing_if = "is_default")]
    pub seq: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub last_by_subj: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub next_by_subj: String,
    #[serde(skip_serializing_if = "is_default")]
    pub batch: i64,
    #[serde(skip_serializing_if = "is_default")]
    pub max_bytes: i64,
    #[serde(skip_serializing_if = "Option::is_none", with = "json::time_opt")]
    pub start_time: Option<UnixNanos>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub multi_last: Vec<String>,
    #[serde(skip_serializing_if = "is_default")]
    pub up_to_seq: u64,
    #[serde(skip_serializing_if = "Option::is_none", with = "json::time_opt")]
    pub up_to_time: Option<UnixNanos>,
    /// Payload only, without the message's headers.
    #[serde(skip_serializing_if = "is_default")]
    pub no_hdr: bool,
}

/// A direct get takes the same body as a message get.
pub type DirectGetRequest = MsgGetRequest;

/// A message as `STREAM.MSG.GET` returns it (`StoredMsg`); headers and data base64.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StoredMsg {
    pub subject: String,
    pub seq: u64,
    #[serde(skip_serializing_if = "Bytes::is_empty", with = "json::base64_bytes")]
    pub hdrs: Bytes,
    #[serde(skip_serializing_if = "Bytes::is_empty", with = "json::base64_bytes")]
    pub data: Bytes,
    #[serde(with = "json::time")]
    pub time: UnixNanos,
}

/// `STREAM.SNAPSHOT`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSnapshotRequest {
    /// Where the chunks go.
    pub deliver_subject: String,
    #[serde(skip_serializing_if = "is_default")]
    pub no_consumers: bool,
    /// Bytes per chunk; nats-server defaults to 128 KiB and clamps to 1 KiB–1 MiB.
    #[serde(skip_serializing_if = "is_default")]
    pub chunk_size: i64,
    /// Bytes in flight; nats-server defaults to 8 MiB and clamps to 1 KiB–32 MiB.
    #[serde(skip_serializing_if = "is_default")]
    pub window_size: i64,
    /// Verify every message's checksum first.
    #[serde(skip_serializing_if = "is_default")]
    pub jsck: bool,
}

/// `STREAM.RESTORE`: the config and state of the snapshot about to be sent.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamRestoreRequest {
    pub config: StreamConfig,
    pub state: StreamState,
}

/// `STREAM.PEER.REMOVE`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamRemovePeerRequest {
    /// Server name or peer id.
    pub peer: String,
}

/// `META.LEADER.STEPDOWN` (optional body).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct LeaderStepdownRequest {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub placement: Option<Placement>,
}

/// `SERVER.REMOVE`: `peer` is a server name, `peer_id` wins when set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetaServerRemoveRequest {
    pub peer: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub peer_id: String,
}

/// `ACCOUNT.STREAM.MOVE`: move a stream off a server.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MetaServerStreamMoveRequest {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub server: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
}

// ---------------------------------------------------------------------------------------
// Responses
// ---------------------------------------------------------------------------------------

/// A JetStream API response: `type`, then `error` when it failed, then the body's fields
/// (nats-server's `ApiResponse` embedded in each `JSApi…Response`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiResponse<T> {
    pub r#type: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<ApiError>,
    #[serde(flatten)]
    pub body: T,
}

/// A response body and its `type` string.
pub trait ApiBody: Default {
    /// `io.nats.jetstream.api.v1.<x>_response`, as nats-server names it.
    const TYPE: &'static str;
}

impl<T: ApiBody> ApiResponse<T> {
    /// A successful response.
    pub fn ok(body: T) -> Self {
        ApiResponse {
            r#type: T::TYPE.to_string(),
            error: None,
            body,
        }
    }

    /// A failed response: the error with the body's zero value, as nats-server sends it.
    pub fn error(error: ApiError) -> Self {
        ApiResponse {
            r#type: T::TYPE.to_string(),
            error: Some(error),
            body: T::default(),
        }
    }
}

impl<T: Serialize> ApiResponse<T> {
    /// The response as nats-server writes it (Go's escaping, see [`json::to_vec`]).
    pub fn to_json(&self) -> Vec<u8> {
        to_json_or_500(self)
    }
}

/// Our response types serialise infallibly (string keys, no floats); should one ever
/// fail, the client still gets a JSON error rather than nothing.
fn to_json_or_500<T: Serialize + ?Sized>(v: &T) -> Vec<u8> {
    json::to_vec(v).unwrap_or_else(|e| {
        let err = errors::stream_general(format!("encoding response: {e}"));
        let resp = PubAckResponse {
            error: Some(err),
            ack: None,
        };
        json::to_vec(&resp).unwrap_or_default()
    })
}

macro_rules! api_body {
    ($t:ty, $name:literal) => {
        impl ApiBody for $t {
            const TYPE: &'static str = concat!("io.nats.jetstream.api.v1.", $name);
        }
    };
}

macro_rules! success_body {
    ($(#[$meta:meta])* $t:ident, $name:literal) => {
        $(#[$meta])*
        #[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
        #[serde(default)]
        pub struct $t {
            #[serde(skip_serializing_if = "is_default")]
            pub success: bool,
        }
        api_body!($t, $name);
    };
}

/// A response with no body beyond `type` and `error`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerUnpinResponse {}
api_body!(ConsumerUnpinResponse, "consumer_unpin_response");

/// The generic response nats-server uses for a request it cannot route to a handler.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SystemResponse {}
api_body!(SystemResponse, "system_response");

/// `$JS.API.INFO`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AccountInfoResponse {
    #[serde(flatten)]
    pub stats: Option<AccountStats>,
}
api_body!(AccountInfoResponse, "account_info_response");

/// `STREAM.CREATE`; `did_create` is true when the stream was new.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamCreateResponse {
    #[serde(flatten)]
    pub info: Option<StreamInfo>,
    #[serde(default, skip_serializing_if = "is_default")]
    pub did_create: bool,
}
api_body!(StreamCreateResponse, "stream_create_response");

/// `STREAM.UPDATE`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamUpdateResponse {
    #[serde(flatten)]
    pub info: Option<StreamInfo>,
}
api_body!(StreamUpdateResponse, "stream_update_response");

/// `STREAM.INFO`: paging (of `state.subjects`) then the info.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamInfoResponse {
    #[serde(flatten)]
    pub paged: ApiPaged,
    #[serde(flatten)]
    pub info: Option<StreamInfo>,
}
api_body!(StreamInfoResponse, "stream_info_response");

/// `STREAM.NAMES`; `streams` is `null` when there are none, also on errors.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamNamesResponse {
    #[serde(flatten)]
    pub paged: ApiPaged,
    #[serde(default, with = "json::nil_if_empty")]
    pub streams: Vec<String>,
}
api_body!(StreamNamesResponse, "stream_names_response");

/// `STREAM.LIST`; `streams` is `[]` when there are none (unlike `STREAM.NAMES`);
/// `missing` names streams that did not answer (clustered), `offline` maps offline
/// streams to the reason.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamListResponse {
    #[serde(flatten)]
    pub paged: ApiPaged,
    #[serde(default, deserialize_with = "json::nil_if_empty::deserialize")]
    pub streams: Vec<StreamInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub offline: BTreeMap<String, String>,
}
api_body!(StreamListResponse, "stream_list_response");

success_body!(
    /// `STREAM.DELETE`.
    StreamDeleteResponse,
    "stream_delete_response"
);

/// `STREAM.PURGE`; `purged` always appears.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamPurgeResponse {
    #[serde(skip_serializing_if = "is_default")]
    pub success: bool,
    pub purged: u64,
}
api_body!(StreamPurgeResponse, "stream_purge_response");

success_body!(
    /// `STREAM.MSG.DELETE`.
    MsgDeleteResponse,
    "stream_msg_delete_response"
);

/// `STREAM.MSG.GET`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct MsgGetResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub message: Option<StoredMsg>,
}
api_body!(MsgGetResponse, "stream_msg_get_response");

/// `STREAM.SNAPSHOT`: the config and state being snapshotted. nats-server sends the
/// stored config here, its metadata without `_nats.ver` and `_nats.level`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamSnapshotResponse {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub config: Option<StreamConfig>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub state: Option<StreamState>,
}
api_body!(StreamSnapshotResponse, "stream_snapshot_response");

/// `STREAM.RESTORE`: where to send the snapshot's chunks (always present).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamRestoreResponse {
    pub deliver_subject: String,
}
api_body!(StreamRestoreResponse, "stream_restore_response");

success_body!(
    /// `STREAM.PEER.REMOVE`.
    StreamRemovePeerResponse,
    "stream_remove_peer_response"
);
success_body!(
    /// `STREAM.LEADER.STEPDOWN`.
    StreamLeaderStepDownResponse,
    "stream_leader_stepdown_response"
);
success_body!(
    /// `CONSUMER.LEADER.STEPDOWN`.
    ConsumerLeaderStepDownResponse,
    "consumer_leader_stepdown_response"
);
success_body!(
    /// `META.LEADER.STEPDOWN`.
    MetaLeaderStepDownResponse,
    "meta_leader_stepdown_response"
);
success_body!(
    /// `SERVER.REMOVE`.
    MetaServerRemoveResponse,
    "meta_server_remove_response"
);

/// `ACCOUNT.PURGE`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct AccountPurgeResponse {
    #[serde(skip_serializing_if = "is_default")]
    pub initiated: bool,
}
api_body!(AccountPurgeResponse, "account_purge_response");

/// `CONSUMER.CREATE` and `CONSUMER.DURABLE.CREATE`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerCreateResponse {
    #[serde(flatten)]
    pub info: Option<ConsumerInfo>,
}
api_body!(ConsumerCreateResponse, "consumer_create_response");

/// `CONSUMER.INFO`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerInfoResponse {
    #[serde(flatten)]
    pub info: Option<ConsumerInfo>,
}
api_body!(ConsumerInfoResponse, "consumer_info_response");

success_body!(
    /// `CONSUMER.DELETE`.
    ConsumerDeleteResponse,
    "consumer_delete_response"
);

/// `CONSUMER.PAUSE`: `paused` and `pause_until` always appear (the zero time when
/// resumed).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerPauseResponse {
    pub paused: bool,
    #[serde(with = "json::time")]
    pub pause_until: UnixNanos,
    #[serde(skip_serializing_if = "is_default")]
    pub pause_remaining: Nanos,
}
api_body!(ConsumerPauseResponse, "consumer_pause_response");

/// `CONSUMER.NAMES`; `consumers` is `[]` when there are none, even on errors (unlike
/// `STREAM.NAMES`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerNamesResponse {
    #[serde(flatten)]
    pub paged: ApiPaged,
    #[serde(default, deserialize_with = "json::nil_if_empty::deserialize")]
    pub consumers: Vec<String>,
}
api_body!(ConsumerNamesResponse, "consumer_names_response");

/// `CONSUMER.LIST`; `consumers` is `[]` when there are none, even on errors. nats-server
/// lists each consumer's config without the response-only metadata (`_nats.ver`,
/// `_nats.level`), unlike `CONSUMER.INFO`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerListResponse {
    #[serde(flatten)]
    pub paged: ApiPaged,
    #[serde(default, deserialize_with = "json::nil_if_empty::deserialize")]
    pub consumers: Vec<ConsumerInfo>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub missing: Vec<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub offline: BTreeMap<String, String>,
}
api_body!(ConsumerListResponse, "consumer_list_response");

/// `CONSUMER.RESET` (2.14+): the consumer info and the sequence it was reset to.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ConsumerResetResponse {
    #[serde(flatten)]
    pub info: Option<ConsumerInfo>,
    #[serde(default)]
    pub reset_seq: u64,
}
api_body!(ConsumerResetResponse, "consumer_reset_response");

// ---------------------------------------------------------------------------------------
// Advisories
// ---------------------------------------------------------------------------------------

/// The head of every advisory and metric (`TypedEvent`): `type`, a unique `id` and a
/// `timestamp`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct TypedEvent {
    pub r#type: String,
    pub id: String,
    #[serde(with = "json::time")]
    pub timestamp: UnixNanos,
}

/// Who made a request (`ClientInfo`, server/events.go), as advisories carry it.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ClientInfo {
    #[serde(skip_serializing_if = "Option::is_none", with = "json::time_opt")]
    pub start: Option<UnixNanos>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(skip_serializing_if = "is_default")]
    pub id: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub acc: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub svc: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub user: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub lang: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub ver: String,
    #[serde(skip_serializing_if = "is_default")]
    pub rtt: Nanos,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub server: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cluster: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub alts: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none", with = "json::time_opt")]
    pub stop: Option<UnixNanos>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub jwt: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub issuer_key: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name_tag: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub kind: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_type: String,
    /// The MQTT client id.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub client_id: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub nonce: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reply: String,
}

/// Advisory and metric type strings.
pub mod advisory_type {
    pub const API_AUDIT: &str = "io.nats.jetstream.advisory.v1.api_audit";
    pub const STREAM_ACTION: &str = "io.nats.jetstream.advisory.v1.stream_action";
    pub const CONSUMER_ACTION: &str = "io.nats.jetstream.advisory.v1.consumer_action";
    pub const CONSUMER_PAUSE: &str = "io.nats.jetstream.advisory.v1.consumer_pause";
    pub const CONSUMER_ACK_METRIC: &str = "io.nats.jetstream.metric.v1.consumer_ack";
    pub const MAX_DELIVER: &str = "io.nats.jetstream.advisory.v1.max_deliver";
    pub const NAK: &str = "io.nats.jetstream.advisory.v1.nak";
    pub const TERMINATED: &str = "io.nats.jetstream.advisory.v1.terminated";
    pub const SNAPSHOT_CREATE: &str = "io.nats.jetstream.advisory.v1.snapshot_create";
    pub const SNAPSHOT_COMPLETE: &str = "io.nats.jetstream.advisory.v1.snapshot_complete";
    pub const RESTORE_CREATE: &str = "io.nats.jetstream.advisory.v1.restore_create";
    pub const RESTORE_COMPLETE: &str = "io.nats.jetstream.advisory.v1.restore_complete";
    pub const CONSUMER_GROUP_PINNED: &str = "io.nats.jetstream.advisory.v1.consumer_group_pinned";
    pub const CONSUMER_GROUP_UNPINNED: &str =
        "io.nats.jetstream.advisory.v1.consumer_group_unpinned";
    pub const API_LIMIT_REACHED: &str = "io.nats.jetstream.advisory.v1.api_limit_reached";
}

/// Advisory subjects (prefixes take `.<stream>[.<consumer>]`).
pub mod advisory_subject {
    pub const API_AUDIT: &str = "$JS.EVENT.ADVISORY.API";
    pub const STREAM_CREATED: &str = "$JS.EVENT.ADVISORY.STREAM.CREATED";
    pub const STREAM_DELETED: &str = "$JS.EVENT.ADVISORY.STREAM.DELETED";
    pub const STREAM_UPDATED: &str = "$JS.EVENT.ADVISORY.STREAM.UPDATED";
    pub const CONSUMER_CREATED: &str = "$JS.EVENT.ADVISORY.CONSUMER.CREATED";
    pub const CONSUMER_DELETED: &str = "$JS.EVENT.ADVISORY.CONSUMER.DELETED";
    pub const CONSUMER_PAUSE: &str = "$JS.EVENT.ADVISORY.CONSUMER.PAUSE";
    pub const CONSUMER_PINNED: &str = "$JS.EVENT.ADVISORY.CONSUMER.PINNED";
    pub const CONSUMER_UNPINNED: &str = "$JS.EVENT.ADVISORY.CONSUMER.UNPINNED";
    pub const MAX_DELIVERIES: &str = "$JS.EVENT.ADVISORY.CONSUMER.MAX_DELIVERIES";
    pub const MSG_NAKED: &str = "$JS.EVENT.ADVISORY.CONSUMER.MSG_NAKED";
    pub const MSG_TERMINATED: &str = "$JS.EVENT.ADVISORY.CONSUMER.MSG_TERMINATED";
    pub const CONSUMER_ACK_METRIC: &str = "$JS.EVENT.METRIC.CONSUMER.ACK";
    pub const SNAPSHOT_CREATE: &str = "$JS.EVENT.ADVISORY.STREAM.SNAPSHOT_CREATE";
    pub const SNAPSHOT_COMPLETE: &str = "$JS.EVENT.ADVISORY.STREAM.SNAPSHOT_COMPLETE";
    pub const RESTORE_CREATE: &str = "$JS.EVENT.ADVISORY.STREAM.RESTORE_CREATE";
    pub const RESTORE_COMPLETE: &str = "$JS.EVENT.ADVISORY.STREAM.RESTORE_COMPLETE";
    pub const API_LIMIT_REACHED: &str = "$JS.EVENT.ADVISORY.API.LIMIT_REACHED";
}

/// `io.nats.jetstream.advisory.v1.api_audit`: one per API request. `client` is `null`
/// when unknown; `response` always appears.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiAudit {
    #[serde(flatten)]
    pub event: TypedEvent,
    pub server: String,
    pub client: Option<ClientInfo>,
    pub subject: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub request: String,
    pub response: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

/// `io.nats.jetstream.advisory.v1.stream_action`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct StreamActionAdvisory {
    #[serde(flatten)]
    pub event: TypedEvent,
    pub stream: String,
    pub action: ActionAdvisoryType,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

/// `io.nats.jetstream.advisory.v1.consumer_action`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerActionAdvisory {
    #[serde(flatten)]
    pub event: TypedEvent,
    pub stream: String,
    pub consumer: String,
    pub action: ActionAdvisoryType,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

/// `io.nats.jetstream.advisory.v1.consumer_pause`; `pause_until` always appears.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerPauseAdvisory {
    #[serde(flatten)]
    pub event: TypedEvent,
    pub stream: String,
    pub consumer: String,
    pub paused: bool,
    #[serde(with = "json::time")]
    pub pause_until: UnixNanos,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

/// `io.nats.jetstream.metric.v1.consumer_ack` (sampled acks); `ack_time` in nanoseconds.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerAckMetric {
    #[serde(flatten)]
    pub event: TypedEvent,
    pub stream: String,
    pub consumer: String,
    pub consumer_seq: u64,
    pub stream_seq: u64,
    pub ack_time: i64,
    pub deliveries: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

/// `io.nats.jetstream.advisory.v1.max_deliver`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerDeliveryExceededAdvisory {
    #[serde(flatten)]
    pub event: TypedEvent,
    pub stream: String,
    pub consumer: String,
    pub stream_seq: u64,
    pub deliveries: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

/// `io.nats.jetstream.advisory.v1.nak`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerDeliveryNakAdvisory {
    #[serde(flatten)]
    pub event: TypedEvent,
    pub stream: String,
    pub consumer: String,
    pub consumer_seq: u64,
    pub stream_seq: u64,
    pub deliveries: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

/// `io.nats.jetstream.advisory.v1.terminated` (`+TERM`, with its reason).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerDeliveryTerminatedAdvisory {
    #[serde(flatten)]
    pub event: TypedEvent,
    pub stream: String,
    pub consumer: String,
    pub consumer_seq: u64,
    pub stream_seq: u64,
    pub deliveries: u64,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

/// `io.nats.jetstream.advisory.v1.snapshot_create`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SnapshotCreateAdvisory {
    #[serde(flatten)]
    pub event: TypedEvent,
    pub stream: String,
    pub state: StreamState,
    pub client: Option<ClientInfo>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

/// `io.nats.jetstream.advisory.v1.snapshot_complete`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct SnapshotCompleteAdvisory {
    #[serde(flatten)]
    pub event: TypedEvent,
    pub stream: String,
    #[serde(with = "json::time")]
    pub start: UnixNanos,
    #[serde(with = "json::time")]
    pub end: UnixNanos,
    pub client: Option<ClientInfo>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub error: String,
}

/// `io.nats.jetstream.advisory.v1.restore_create`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestoreCreateAdvisory {
    #[serde(flatten)]
    pub event: TypedEvent,
    pub stream: String,
    pub client: Option<ClientInfo>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

/// `io.nats.jetstream.advisory.v1.restore_complete`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct RestoreCompleteAdvisory {
    #[serde(flatten)]
    pub event: TypedEvent,
    pub stream: String,
    #[serde(with = "json::time")]
    pub start: UnixNanos,
    #[serde(with = "json::time")]
    pub end: UnixNanos,
    pub bytes: i64,
    pub client: Option<ClientInfo>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
}

/// `io.nats.jetstream.advisory.v1.consumer_group_pinned`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerGroupPinnedAdvisory {
    #[serde(flatten)]
    pub event: TypedEvent,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account: String,
    pub stream: String,
    pub consumer: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    pub group: String,
    pub pinned_id: String,
}

/// `io.nats.jetstream.advisory.v1.consumer_group_unpinned`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ConsumerGroupUnpinnedAdvisory {
    #[serde(flatten)]
    pub event: TypedEvent,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account: String,
    pub stream: String,
    pub consumer: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    pub group: String,
    pub reason: String,
}

/// `io.nats.jetstream.advisory.v1.api_limit_reached`: requests dropped from a full
/// API queue.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default)]
pub struct ApiLimitReachedAdvisory {
    #[serde(flatten)]
    pub event: TypedEvent,
    pub server: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub domain: String,
    pub dropped: i64,
}

#[cfg(test)]
mod tests {
    use serde::de::DeserializeOwned;

    use super::*;

    const VERSION: &str = "2.15.2";
    const API_LEVEL: u32 = 5;

    fn roundtrip<T: Serialize + DeserializeOwned>(lit: &str) -> Result<String, String> {
        let v: T = serde_json::from_str(lit).map_err(|e| e.to_string())?;
        json::to_string(&v).map_err(|e| e.to_string())
    }

    fn to_s(v: Vec<u8>) -> String {
        String::from_utf8(v).unwrap_or_default()
    }

    fn parse<T: DeserializeOwned + Default>(lit: &str) -> T {
        serde_json::from_str(lit).unwrap_or_else(|e| panic!("{e}: {lit}"))
    }

    #[test]
    fn observed_replies_round_trip() {
        for (lit, f) in observed_roundtrips() {
            assert_eq!(f(lit).as_deref(), Ok(lit));
        }
        for lit in OBSERVED_PUBACKS {
            let r: PubAckResponse = parse(lit);
            assert_eq!(to_s(r.to_json()), lit);
        }
    }

    /// A stream create request as the server stores and echoes it: request decoding,
    /// defaults, static and dynamic metadata.
    fn created_stream(body: &str) -> StreamConfig {
        let req =
            StreamConfigRequest::decode(body.as_bytes(), true).unwrap_or_else(|e| panic!("{e}"));
        let mut cfg = req.config;
        cfg.set_static_metadata();
        cfg.apply_defaults(&StreamDefaultLimits::default(), req.pedantic)
            .unwrap_or_else(|e| panic!("{e}"));
        cfg.with_dynamic_metadata(VERSION, API_LEVEL)
    }

    /// The observed reply with its config replaced by `cfg`, serialised.
    fn with_stream_config(observed: &str, cfg: StreamConfig) -> String {
        let mut resp: ApiResponse<StreamCreateResponse> = parse(observed);
        if let Some(info) = resp.body.info.as_mut() {
            info.config = cfg;
        }
        to_s(resp.to_json())
    }

    #[test]
    fn stream_defaults_as_nats_server_echoes_them() {
        for (body, observed) in [
            (
                r#"{"name":"ORDERS","subjects":["orders.>"]}"#,
                STREAM_CREATE_ORDERS,
            ),
            // Keys match case-insensitively; duplicate_window follows a shorter max_age.
            (
                r#"{"Name":"Y2","Subjects":["y2"],"Max_Age":1000000000}"#,
                STREAM_CREATE_Y2,
            ),
            // discard is read case-insensitively; subjects default to the name.
            (r#"{"name":"R","discard":"NEW"}"#, STREAM_CREATE_R),
            // Concatenated JSON values merge.
            (r#"{"name":"U"} {"subjects":["u1"]}"#, STREAM_CREATE_U),
            // Delete markers turn on TTLs and roll-ups; schedules need level 2.
            (
                r#"{"name":"V","subject_delete_marker_ttl":5000000000,"allow_msg_schedules":true}"#,
                STREAM_CREATE_V,
            ),
            // An empty republish source is `>`; consumer_limits echo back.
            (
                r#"{"name":"RP","subjects":["rp.>"],"republish":{"dest":"out.>"},"consumer_limits":{"max_ack_pending":50}}"#,
                STREAM_CREATE_RP,
            ),
        ] {
            let cfg = created_stream(body);
            assert_eq!(with_stream_config(observed, cfg), observed, "{body}");
        }

        // A mirror: no subjects and no duplicate window, an empty placement dropped;
        // mirror_direct comes from the origin (it allows direct gets), which the handler
        // looks up.
        let mut cfg = created_stream(
            r#"{"name":"M","mirror":{"name":"ORDERS","opt_start_time":"2024-01-01T00:00:00.000000001Z"},"placement":{}}"#,
        );
        cfg.mirror_direct = true;
        assert_eq!(with_stream_config(STREAM_CREATE_M, cfg), STREAM_CREATE_M);
    }

    #[test]
    fn stream_create_response_built_from_scratch() {
        let info = StreamInfo {
            config: created_stream(r#"{"name":"ORDERS","subjects":["orders.>"]}"#),
            created: json::parse_time("2026-12-04T03:32:33.160640151Z").unwrap_or_default(),
            state: StreamState::default(),
            ts: json::parse_time("2026-12-04T03:32:33.161480935Z").unwrap_or_default(),
            ..StreamInfo::default()
        };
        let resp = ApiResponse::ok(StreamCreateResponse {
            info: Some(info),
            did_create: true,
        });
        assert_eq!(to_s(resp.to_json()), STREAM_CREATE_ORDERS);
    }

    #[test]
    fn stream_pedantic_refusals() {
        let e = StreamConfigRequest::decode(br#"{"name":"P","max_msgs":-5,"pedantic":true}"#, true)
            .and_then(|req| {
                let mut cfg = req.config;
                cfg.apply_defaults(&StreamDefaultLimits::default(), req.pedantic)
            })
            .err()
            .unwrap_or_else(errors::bad_request);
        let resp = ApiResponse::<StreamCreateResponse>::error(e);
        assert_eq!(to_s(resp.to_json()), ERR_PEDANTIC);

        // Without pedantic the same request is fixed up.
        let cfg = StreamConfig {
            max_msgs: -5,
            ..StreamConfig::default()
        }
        .with_defaults();
        assert_eq!(cfg.max_msgs, -1);

        let pedantic_err = |cfg: StreamConfig, limits: StreamDefaultLimits| {
            let mut cfg = cfg;
            cfg.apply_defaults(&limits, true)
                .err()
                .map(|e| e.description)
        };
        let base = StreamConfig {
            name: "S".into(),
            ..StreamConfig::default()
        };
        assert_eq!(
            pedantic_err(base.clone(), StreamDefaultLimits::default()),
            None
        );
        assert_eq!(
            pedantic_err(
                StreamConfig {
                    max_age: SECOND,
                    ..base.clone()
                },
                StreamDefaultLimits::default()
            ),
            Some("pedantic mode: duplicate window cannot be bigger than max age".into())
        );
        assert_eq!(
            pedantic_err(
                base.clone(),
                StreamDefaultLimits {
                    max_duplicate_window: SECOND
                }
            ),
            Some("pedantic mode: duplicate window limits are higher than current limits".into())
        );
        let e = {
            let mut cfg = StreamConfig {
                subject_delete_marker_ttl: SECOND,
                ..base.clone()
            };
            cfg.apply_defaults(&StreamDefaultLimits::default(), true)
                .err()
        };
        assert_eq!(
            e.map(|e| (e.err_code, e.description)),
            Some((
                errors::codes::STREAM_INVALID_CONFIG,
                "subject delete marker cannot be set if message TTLs are disabled".into()
            ))
        );
        assert_eq!(
            pedantic_err(
                StreamConfig {
                    republish: Some(RePublish {
                        dest: "x.>".into(),
                        ..RePublish::default()
                    }),
                    ..base.clone()
                },
                StreamDefaultLimits::default()
            ),
            Some("pedantic mode: republish source can not be empty".into())
        );

        // A server duplicate-window limit lowers the default.
        let mut cfg = base.clone();
        let limits = StreamDefaultLimits {
            max_duplicate_window: SECOND,
        };
        assert!(cfg.apply_defaults(&limits, false).is_ok());
        assert_eq!(cfg.duplicate_window, SECOND);

        // An implicit republish through the subject transform.
        let cfg = StreamConfig {
            subjects: vec!["in.>".into()],
            subject_transform: Some(SubjectTransformConfig {
                src: "in.>".into(),
                dest: "out.>".into(),
            }),
            republish: Some(RePublish {
                src: ">".into(),
                dest: ">".into(),
                headers_only: false,
            }),
            ..base
        }
        .with_defaults();
        assert_eq!(
            cfg.republish.map(|r| (r.src, r.dest)),
            Some(("out.>".into(), "out.>".into()))
        );
    }

    #[test]
    fn request_errors_as_nats_server_words_them() {
        let err = |body: &str| {
            let e = StreamConfigRequest::decode(body.as_bytes(), true)
                .err()
                .unwrap_or_else(errors::bad_request);
            to_s(ApiResponse::<StreamCreateResponse>::error(e).to_json())
        };
        assert_eq!(err(r#"{"name":"X","bogus":1}"#), ERR_UNKNOWN_FIELD);
        // `null` is ignored; an unknown enum value is refused as nats-server words it.
        assert_eq!(
            err(r#"{"name":"Q","max_msgs":null,"retention":"bogus"}"#),
            ERR_BAD_RETENTION
        );
        assert_eq!(err("{"), ERR_EOF);

        // `pedantic` sits beside the config's fields and is no unknown field.
        let req = StreamConfigRequest::decode(br#"{"name":"X","Pedantic":true}"#, true);
        assert_eq!(
            req.as_ref().map(|r| (r.config.name.as_str(), r.pedantic)),
            Ok(("X", true))
        );
        let back = req.map(|r| json::to_string(&r).unwrap_or_default());
        assert!(back.is_ok_and(|s| s.ends_with(r#""allow_msg_ttl":false,"pedantic":true}"#)));

        // Not strict: unknown fields are ignored.
        let req = StreamConfigRequest::decode(br#"{"name":"X","bogus":1}"#, false);
        assert_eq!(req.map(|r| r.config.name).ok(), Some("X".to_string()));

        // Unknown fields inside a consumer create's config.
        let e = json::decode_request::<CreateConsumerRequest>(
            br#"{"stream_name":"ORDERS","config":{"name":"C3","ack_policy":"explicit","bogus":2}}"#,
            true,
        )
        .err()
        .unwrap_or_else(errors::bad_request);
        assert_eq!(
            to_s(ApiResponse::<ConsumerCreateResponse>::error(e).to_json()),
            ERR_CONSUMER_UNKNOWN_FIELD
        );

        let resp = ApiResponse::<StreamCreateResponse>::error(errors::stream_name_exist());
        assert_eq!(to_s(resp.to_json()), ERR_NAME_EXISTS);
        assert_eq!(
            ERR_NAME_EXISTS,
            r#"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10058,"description":"stream name already in use with a different configuration"}}"#
        );

        // Enum wording.
        let bad = |v: &str| {
            serde_json::from_str::<StreamConfig>(v)
                .err()
                .map(|e| e.to_string())
        };
        assert!(
            bad(r#"{"storage":"disk"}"#)
                .is_some_and(|e| e.contains(r#"can not unmarshal "\"disk\"""#))
        );
        assert!(
            bad(r#"{"compression":"zstd"}"#)
                .is_some_and(|e| e.contains("unknown compression algorithm"))
        );
        assert!(bad(r#"{"retention":1}"#).is_some_and(|e| e.contains(r#"can not unmarshal "1""#)));
        let bad = |v: &str| {
            serde_json::from_str::<ConsumerConfig>(v)
                .err()
                .map(|e| e.to_string())
        };
        assert!(
            bad(r#"{"priority_policy":"x"}"#)
                .is_some_and(|e| e.contains(r#"unknown priority policy: "x""#))
        );
        let ok: Option<ConsumerConfig> =
            serde_json::from_str(r#"{"deliver_policy":"undefined"}"#).ok();
        assert_eq!(ok.map(|c| c.deliver_policy), Some(DeliverPolicy::All));
        let ok: Option<CreateConsumerRequest> = serde_json::from_str(r#"{"action":""}"#).ok();
        assert_eq!(ok.map(|c| c.action), Some(ConsumerAction::CreateOrUpdate));
        let ok: Option<StreamConfig> = serde_json::from_str(r#"{"persist_mode":""}"#).ok();
        assert_eq!(ok.map(|c| c.persist_mode), Some(PersistMode::Default));
        let bad = |v: &str| {
            serde_json::from_str::<CreateConsumerRequest>(v)
                .err()
                .map(|e| e.to_string())
        };
        assert!(
            bad(r#"{"action":"upsert"}"#)
                .is_some_and(|e| e.contains(r#"unknown consumer action: "upsert""#))
        );
    }

    /// A consumer create request as the server stores and echoes it.
    fn created_consumer(body: &str, stream: &StreamConsumerLimits) -> ConsumerConfig {
        let req: CreateConsumerRequest =
            json::decode_request(body.as_bytes(), true).unwrap_or_else(|e| panic!("{e}"));
        let mut cfg = req.config;
        cfg.set_static_metadata();
        cfg.apply_defaults(stream, &ConsumerDefaultLimits::default(), req.pedantic)
            .unwrap_or_else(|e| panic!("{e}"));
        cfg.with_dynamic_metadata(VERSION, API_LEVEL)
    }

    fn with_consumer_config(observed: &str, cfg: ConsumerConfig) -> String {
        let mut resp: ApiResponse<ConsumerCreateResponse> = parse(observed);
        if let Some(info) = resp.body.info.as_mut() {
            info.config = Some(cfg);
        }
        to_s(resp.to_json())
    }

    #[test]
    fn consumer_defaults_as_nats_server_echoes_them() {
        let none = StreamConsumerLimits::default();
        for (body, observed) in [
            // Pull, explicit: ack_wait 30 s, max_waiting 512, max_ack_pending 1000, and
            // as an ephemeral an inactive_threshold of 5 s.
            (
                r#"{"stream_name":"ORDERS","config":{"name":"C1","ack_policy":"explicit"}}"#,
                CONSUMER_C1,
            ),
            // Push, ack all: no max_waiting.
            (
                r#"{"stream_name":"ORDERS","config":{"name":"P1","deliver_subject":"dl.p1","ack_policy":"all"}}"#,
                CONSUMER_P1,
            ),
            // Backoff sets ack_wait; pinned_client gets a 2 minute priority_timeout.
            (
                r#"{"stream_name":"ORDERS","config":{"name":"C2","ack_policy":"explicit","priority_groups":["g1"],"priority_policy":"pinned_client","backoff":[1000000000,2000000000],"max_deliver":5}}"#,
                CONSUMER_C2,
            ),
            // Flow-control ack policy: flow control and a 1 s heartbeat, level 4.
            (
                r#"{"stream_name":"ORDERS","config":{"name":"E1","ack_policy":"flow_control","deliver_subject":"x.y","max_ack_pending":10}}"#,
                CONSUMER_E1,
            ),
        ] {
            let cfg = created_consumer(body, &none);
            assert_eq!(with_consumer_config(observed, cfg), observed, "{body}");
        }

        // Durable with no ack policy: no ack_wait, no max_ack_pending, no inactivity
        // threshold. The legacy durable create sets the name from the subject.
        let mut cfg = created_consumer(
            r#"{"stream_name":"ORDERS","config":{"durable_name":"D1"}}"#,
            &none,
        );
        cfg.name = "D1".into();
        assert_eq!(with_consumer_config(CONSUMER_D1, cfg), CONSUMER_D1);

        // The stream's consumer_limits.max_ack_pending replaces the 1000 default.
        let cfg = created_consumer(
            r#"{"stream_name":"RP","config":{"name":"X","ack_policy":"all"}}"#,
            &StreamConsumerLimits {
                max_ack_pending: 50,
                inactive_threshold: 0,
            },
        );
        assert_eq!(with_consumer_config(CONSUMER_RP_X, cfg), CONSUMER_RP_X);

        // A paused ephemeral with a start time (the server names it).
        let mut cfg = created_consumer(
            r#"{"stream_name":"ORDERS","config":{"ack_policy":"explicit","opt_start_time":"2024-01-01T00:00:00Z","deliver_policy":"by_start_time","pause_until":"2099-01-01T00:00:00Z"}}"#,
            &none,
        );
        assert_eq!(cfg.required_api_level(), 1);
        cfg.name.clear();
        assert_eq!(
            with_consumer_config(CONSUMER_EPHEMERAL_PAUSED, cfg),
            CONSUMER_EPHEMERAL_PAUSED
        );
    }

    #[test]
    fn consumer_limits_and_pedantic() {
        let limits = ConsumerDefaultLimits {
            server_max_ack_pending: 500,
            server_max_request_batch: 10,
            account_max_ack_pending: 200,
        };
        let mut cfg = ConsumerConfig {
            ack_policy: AckPolicy::Explicit,
            ..ConsumerConfig::default()
        };
        assert!(
            cfg.apply_defaults(&StreamConsumerLimits::default(), &limits, false)
                .is_ok()
        );
        assert_eq!((cfg.max_ack_pending, cfg.max_batch), (200, 10));

        let pedantic_err = |cfg: ConsumerConfig, stream: StreamConsumerLimits| {
            let mut cfg = cfg;
            cfg.apply_defaults(&stream, &ConsumerDefaultLimits::default(), true)
                .err()
                .map(|e| (e.err_code, e.description))
        };
        let d = StreamConsumerLimits::default();
        assert_eq!(
            pedantic_err(
                ConsumerConfig {
                    max_deliver: -2,
                    ..ConsumerConfig::default()
                },
                d.clone()
            ),
            Some((10157, "pedantic mode: max_deliver must be set to -1".into()))
        );
        assert_eq!(
            pedantic_err(
                ConsumerConfig {
                    max_expires: -1,
                    ..ConsumerConfig::default()
                },
                d.clone()
            ),
            Some((
                10157,
                "pedantic mode: max_expires must not be negative".into()
            ))
        );
        assert_eq!(
            pedantic_err(
                ConsumerConfig {
                    ack_policy: AckPolicy::Explicit,
                    backoff: vec![SECOND],
                    ..ConsumerConfig::default()
                },
                d.clone()
            ),
            Some((
                10157,
                "pedantic mode: first backoff value has to equal batch AckWait".into()
            ))
        );
        assert_eq!(
            pedantic_err(
                ConsumerConfig::default(),
                StreamConsumerLimits {
                    max_ack_pending: 5,
                    inactive_threshold: 0
                }
            ),
            Some((
                10157,
                "pedantic mode: max_ack_pending must be set if it's configured in stream limits"
                    .into()
            ))
        );
        // Negative values are zeroed without pedantic.
        let cfg = ConsumerConfig {
            max_waiting: -3,
            idle_heartbeat: -1,
            max_ack_pending: -7,
            deliver_subject: "d".into(),
            ..ConsumerConfig::default()
        }
        .with_defaults();
        assert_eq!(
            (cfg.max_waiting, cfg.idle_heartbeat, cfg.max_ack_pending),
            (0, 0, -1)
        );
        assert!(!cfg.is_pull());
    }

    #[test]
    fn omitempty_of_empty_configs() {
        let s = json::to_string(&StreamConfig::default()).unwrap_or_default();
        assert_eq!(
            s,
            r#"{"name":"","retention":"limits","max_consumers":0,"max_msgs":0,"max_bytes":0,"max_age":0,"max_msgs_per_subject":0,"discard":"old","storage":"file","num_replicas":0,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false}"#
        );
        let s = json::to_string(&ConsumerConfig::default()).unwrap_or_default();
        assert_eq!(
            s,
            r#"{"deliver_policy":"all","ack_policy":"none","replay_policy":"instant","num_replicas":0}"#
        );
        // An empty stream's state: zero times, no subjects, no deleted.
        let s = json::to_string(&StreamState::default()).unwrap_or_default();
        assert_eq!(
            s,
            r#"{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0}"#
        );
        // Lost messages: a nil list is null.
        let s = json::to_string(&LostStreamData::default()).unwrap_or_default();
        assert_eq!(s, r#"{"msgs":null,"bytes":0}"#);
        // Sources and their start times.
        let src = StreamSource {
            name: "O".into(),
            opt_start_time: Some(1),
            external: Some(ExternalStream {
                api: "$JS.hub.API".into(),
                deliver: String::new(),
            }),
            ..StreamSource::default()
        };
        assert_eq!(
            json::to_string(&src).unwrap_or_default(),
            r#"{"name":"O","opt_start_time":"1970-01-01T00:00:00.000000001Z","external":{"api":"$JS.hub.API","deliver":""}}"#
        );
        // A priority group's pinned_ts appears even when zero.
        let g = PriorityGroupState {
            group: "g".into(),
            ..PriorityGroupState::default()
        };
        assert_eq!(
            json::to_string(&g).unwrap_or_default(),
            r#"{"group":"g","pinned_ts":"0001-01-01T00:00:00Z"}"#
        );
    }

    #[test]
    fn error_responses_keep_the_body_zero_values() {
        let e = errors::stream_not_found;
        let cases = [
            (
                to_s(ApiResponse::<StreamInfoResponse>::error(e()).to_json()),
                r#"{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"},"total":0,"offset":0,"limit":0}"#,
            ),
            (
                to_s(ApiResponse::<StreamNamesResponse>::error(e()).to_json()),
                r#"{"type":"io.nats.jetstream.api.v1.stream_names_response","error":{"code":404,"err_code":10059,"description":"stream not found"},"total":0,"offset":0,"limit":0,"streams":null}"#,
            ),
            (
                to_s(ApiResponse::<ConsumerNamesResponse>::error(e()).to_json()),
                r#"{"type":"io.nats.jetstream.api.v1.consumer_names_response","error":{"code":404,"err_code":10059,"description":"stream not found"},"total":0,"offset":0,"limit":0,"consumers":[]}"#,
            ),
            (
                to_s(ApiResponse::<StreamPurgeResponse>::error(e()).to_json()),
                r#"{"type":"io.nats.jetstream.api.v1.stream_purge_response","error":{"code":404,"err_code":10059,"description":"stream not found"},"purged":0}"#,
            ),
            (
                to_s(
                    ApiResponse::<ConsumerPauseResponse>::error(errors::consumer_not_found())
                        .to_json(),
                ),
                r#"{"type":"io.nats.jetstream.api.v1.consumer_pause_response","error":{"code":404,"err_code":10014,"description":"consumer not found"},"paused":false,"pause_until":"0001-01-01T00:00:00Z"}"#,
            ),
            (
                to_s(ApiResponse::<StreamRestoreResponse>::error(e()).to_json()),
                r#"{"type":"io.nats.jetstream.api.v1.stream_restore_response","error":{"code":404,"err_code":10059,"description":"stream not found"},"deliver_subject":""}"#,
            ),
            (
                to_s(ApiResponse::<ConsumerResetResponse>::error(e()).to_json()),
                r#"{"type":"io.nats.jetstream.api.v1.consumer_reset_response","error":{"code":404,"err_code":10059,"description":"stream not found"},"reset_seq":0}"#,
            ),
            (
                to_s(
                    ApiResponse::<AccountInfoResponse>::error(errors::not_enabled_for_account())
                        .to_json(),
                ),
                r#"{"type":"io.nats.jetstream.api.v1.account_info_response","error":{"code":503,"err_code":10039,"description":"JetStream not enabled for account"}}"#,
            ),
            (
                to_s(
                    ApiResponse::<StreamDeleteResponse>::ok(StreamDeleteResponse { success: true })
                        .to_json(),
                ),
                r#"{"type":"io.nats.jetstream.api.v1.stream_delete_response","success":true}"#,
            ),
        ];
        for (got, want) in cases {
            assert_eq!(got, want);
        }
    }

    #[test]
    fn pub_acks() {
        let ack = |f: fn(&mut PubAck)| {
            let mut a = PubAck {
                stream: "ORDERS".into(),
                seq: 7,
                ..PubAck::default()
            };
            f(&mut a);
            to_s(PubAckResponse::ok(a).to_json())
        };
        assert_eq!(ack(|_| {}), r#"{"stream":"ORDERS","seq":7}"#);
        assert_eq!(
            ack(|a| a.duplicate = true),
            r#"{"stream":"ORDERS","seq":7,"duplicate": true}"#
        );
        assert_eq!(
            ack(|a| a.domain = "hub".into()),
            r#"{"stream":"ORDERS","domain":"hub","seq":7}"#
        );
        assert_eq!(
            ack(|a| {
                a.batch = "b1".into();
                a.count = 3;
            }),
            r#"{"stream":"ORDERS","seq":7,"batch":"b1","count":3}"#
        );
        assert_eq!(
            ack(|a| {
                a.duplicate = true;
                a.batch = "b1".into();
                a.count = 3;
            }),
            r#"{"stream":"ORDERS","seq":7,"duplicate": true,"batch":"b1","count":3}"#
        );
        assert_eq!(
            ack(|a| a.val = "12".into()),
            r#"{"stream":"ORDERS","seq":7,"val":"12"}"#
        );
        let refused = PubAckResponse::error("ORDERS", errors::stream_wrong_last_sequence(0u64));
        assert_eq!(to_s(refused.to_json()), OBSERVED_PUBACKS[2]);
        // The struct's serde form follows Go's field order.
        let a = PubAck {
            stream: "S".into(),
            seq: 1,
            domain: "d".into(),
            duplicate: true,
            ..PubAck::default()
        };
        assert_eq!(
            json::to_string(&a).unwrap_or_default(),
            r#"{"stream":"S","seq":1,"domain":"d","duplicate":true}"#
        );
    }

    #[test]
    fn pull_requests() {
        let p = |b: &str| ConsumerGetNextRequest::parse(b.as_bytes());
        assert_eq!(p("").map(|r| r.batch), Ok(1));
        assert_eq!(p("  5 \r\n").map(|r| r.batch), Ok(5));
        assert_eq!(p("-2").map(|r| r.batch), Ok(-2));
        assert_eq!(p("five").map(|r| r.batch), Ok(1));
        let r = p(
            r#"{"batch":10,"expires":5000000000,"max_bytes":1024,"no_wait":true,"group":"g","min_pending":3,"id":"pin","priority":2,"unknown":1}"#,
        );
        assert_eq!(
            r,
            Ok(ConsumerGetNextRequest {
                expires: 5 * SECOND,
                batch: 10,
                max_bytes: 1024,
                no_wait: true,
                idle_heartbeat: 0,
                group: "g".into(),
                min_pending: 3,
                min_ack_pending: 0,
                id: "pin".into(),
                priority: 2,
            })
        );
        assert_eq!(
            p(r#"{"batch":1,"expires":1000000000,"idle_heartbeat":600000000}"#),
            Err("heartbeat value too large".into())
        );
        assert!(p(r#"{"batch":"x"}"#).is_err());
        // Go's field order when a client marshals one.
        let r = ConsumerGetNextRequest {
            batch: 1,
            expires: 2,
            ..ConsumerGetNextRequest::default()
        };
        assert_eq!(
            json::to_string(&r).unwrap_or_default(),
            r#"{"expires":2,"batch":1}"#
        );
    }

    #[test]
    fn other_requests() {
        let r: Result<MsgGetRequest, _> = json::decode_request(
            br#"{"seq":0,"next_by_subj":"a.*","batch":5,"max_bytes":100,"multi_last":["a.b"],"up_to_seq":9,"up_to_time":"2024-05-01T10:20:30Z","start_time":"2024-05-01T10:20:30.5Z","no_hdr":true,"last_by_subj":""}"#,
            true,
        );
        let r = r.unwrap_or_default();
        assert_eq!(r.batch, 5);
        assert_eq!(r.up_to_time, Some(1_714_558_830 * SECOND));
        assert_eq!(r.start_time, Some(1_714_558_830 * SECOND + SECOND / 2));
        assert_eq!(
            json::to_string(&r).unwrap_or_default(),
            r#"{"next_by_subj":"a.*","batch":5,"max_bytes":100,"start_time":"2024-05-01T10:20:30.5Z","multi_last":["a.b"],"up_to_seq":9,"up_to_time":"2024-05-01T10:20:30Z","no_hdr":true}"#
        );
        for (body, want) in [
            (
                r#"{"filter":"a.>","keep":2}"#,
                r#"{"filter":"a.\u003e","keep":2}"#,
            ),
            (r#"{"seq":5}"#, r#"{"seq":5}"#),
        ] {
            let r: StreamPurgeRequest =
                json::decode_request(body.as_bytes(), true).unwrap_or_default();
            assert_eq!(json::to_string(&r).unwrap_or_default(), want);
        }
        let r: MsgDeleteRequest =
            json::decode_request(br#"{"seq":3,"no_erase":true}"#, true).unwrap_or_default();
        assert_eq!((r.seq, r.no_erase), (3, true));
        let r: StreamSnapshotRequest = json::decode_request(
            br#"{"deliver_subject":"s","no_consumers":true,"chunk_size":1024,"window_size":2048,"jsck":true}"#,
            true,
        )
        .unwrap_or_default();
        assert_eq!((r.chunk_size, r.window_size, r.jsck), (1024, 2048, true));
        let r: StreamInfoRequest = json::decode_request(
            br#"{"subjects_filter":">","deleted_details":true,"offset":3}"#,
            true,
        )
        .unwrap_or_default();
        assert_eq!(
            (r.offset, r.deleted_details, r.subjects_filter.as_str()),
            (3, true, ">")
        );
        let r: StreamNamesRequest =
            json::decode_request(br#"{"subject":"a.b","offset":1}"#, true).unwrap_or_default();
        assert_eq!((r.offset, r.subject.as_str()), (1, "a.b"));
        let r: ConsumerPauseRequest =
            json::decode_request(br#"{"pause_until":"0001-01-01T00:00:00Z"}"#, true)
                .unwrap_or_default();
        assert_eq!(r.pause_until, 0);
        assert_eq!(
            json::to_string(&ConsumerPauseRequest::default()).unwrap_or_default(),
            r#"{"pause_until":"0001-01-01T00:00:00Z"}"#
        );
        let r: ConsumerUnpinRequest =
            json::decode_request(br#"{"group":"g1"}"#, true).unwrap_or_default();
        assert_eq!(r.group, "g1");
        let r: StreamRestoreRequest =
            json::decode_request(br#"{"config":{"name":"NEWONE"},"state":{}}"#, true)
                .unwrap_or_default();
        assert_eq!(r.config.name, "NEWONE");
        let r: Result<StreamRestoreRequest, _> =
            json::decode_request(br#"{"config":{"name":"N"},"state":{"bogus":1}}"#, true);
        assert!(r.is_err());
        // Stored messages: base64 headers and data, omitted when empty.
        let m = StoredMsg {
            subject: "a".into(),
            seq: 1,
            hdrs: Bytes::new(),
            data: Bytes::from_static(b"one"),
            time: 1_714_558_830 * SECOND,
        };
        assert_eq!(
            json::to_string(&m).unwrap_or_default(),
            r#"{"subject":"a","seq":1,"data":"b25l","time":"2024-05-01T10:20:30Z"}"#
        );
        // An account as a fresh server reports it.
        let stats = AccountStats {
            tier: AccountTier {
                limits: AccountLimits {
                    max_memory: -1,
                    max_storage: -1,
                    max_streams: -1,
                    max_consumers: -1,
                    max_ack_pending: -1,
                    memory_max_stream_bytes: -1,
                    storage_max_stream_bytes: -1,
                    max_bytes_required: false,
                },
                ..AccountTier::default()
            },
            api: ApiStats {
                level: 5,
                ..ApiStats::default()
            },
            ..AccountStats::default()
        };
        let resp = ApiResponse::ok(AccountInfoResponse { stats: Some(stats) });
        assert_eq!(
            to_s(resp.to_json()),
            r#"{"type":"io.nats.jetstream.api.v1.account_info_response","memory":0,"storage":0,"reserved_memory":0,"reserved_storage":0,"streams":0,"consumers":0,"limits":{"max_memory":-1,"max_storage":-1,"max_streams":-1,"max_consumers":-1,"max_ack_pending":-1,"memory_max_stream_bytes":-1,"storage_max_stream_bytes":-1,"max_bytes_required":false},"api":{"level":5,"total":0,"errors":0}}"#
        );
    }

    #[test]
    fn advisories() {
        let ev = |t: &str| TypedEvent {
            r#type: t.into(),
            id: "id1".into(),
            timestamp: 1_714_558_830 * SECOND,
        };
        let audit = ApiAudit {
            event: ev(advisory_type::API_AUDIT),
            server: "n1".into(),
            client: None,
            subject: "$JS.API.INFO".into(),
            request: String::new(),
            response: "{}".into(),
            domain: String::new(),
        };
        assert_eq!(
            json::to_string(&audit).unwrap_or_default(),
            r#"{"type":"io.nats.jetstream.advisory.v1.api_audit","id":"id1","timestamp":"2024-05-01T10:20:30Z","server":"n1","client":null,"subject":"$JS.API.INFO","response":"{}"}"#
        );
        let a = StreamActionAdvisory {
            event: ev(advisory_type::STREAM_ACTION),
            stream: "S".into(),
            action: ActionAdvisoryType::Create,
            domain: String::new(),
        };
        assert_eq!(
            json::to_string(&a).unwrap_or_default(),
            r#"{"type":"io.nats.jetstream.advisory.v1.stream_action","id":"id1","timestamp":"2024-05-01T10:20:30Z","stream":"S","action":"create"}"#
        );
        let a = ConsumerPauseAdvisory {
            event: ev(advisory_type::CONSUMER_PAUSE),
            stream: "S".into(),
            consumer: "C".into(),
            paused: false,
            pause_until: 0,
            domain: String::new(),
        };
        assert_eq!(
            json::to_string(&a).unwrap_or_default(),
            r#"{"type":"io.nats.jetstream.advisory.v1.consumer_pause","id":"id1","timestamp":"2024-05-01T10:20:30Z","stream":"S","consumer":"C","paused":false,"pause_until":"0001-01-01T00:00:00Z"}"#
        );
        let a = ConsumerDeliveryTerminatedAdvisory {
            event: ev(advisory_type::TERMINATED),
            stream: "S".into(),
            consumer: "C".into(),
            consumer_seq: 4,
            stream_seq: 9,
            deliveries: 2,
            reason: String::new(),
            domain: String::new(),
        };
        assert_eq!(
            json::to_string(&a).unwrap_or_default(),
            r#"{"type":"io.nats.jetstream.advisory.v1.terminated","id":"id1","timestamp":"2024-05-01T10:20:30Z","stream":"S","consumer":"C","consumer_seq":4,"stream_seq":9,"deliveries":2}"#
        );
        let a = ConsumerDeliveryExceededAdvisory {
            event: ev(advisory_type::MAX_DELIVER),
            stream: "S".into(),
            consumer: "C".into(),
            stream_seq: 9,
            deliveries: 5,
            domain: String::new(),
        };
        assert_eq!(
            json::to_string(&a).unwrap_or_default(),
            r#"{"type":"io.nats.jetstream.advisory.v1.max_deliver","id":"id1","timestamp":"2024-05-01T10:20:30Z","stream":"S","consumer":"C","stream_seq":9,"deliveries":5}"#
        );
        let a = ConsumerDeliveryNakAdvisory {
            event: ev(advisory_type::NAK),
            stream: "S".into(),
            consumer: "C".into(),
            consumer_seq: 1,
            stream_seq: 2,
            deliveries: 1,
            domain: "hub".into(),
        };
        let back: ConsumerDeliveryNakAdvisory = parse(&json::to_string(&a).unwrap_or_default());
        assert_eq!(back, a);
        let ci = ClientInfo {
            acc: "A".into(),
            rtt: 1500,
            start: Some(1),
            ..ClientInfo::default()
        };
        assert_eq!(
            json::to_string(&ci).unwrap_or_default(),
            r#"{"start":"1970-01-01T00:00:00.000000001Z","acc":"A","rtt":1500}"#
        );
    }

    #[test]
    fn metadata_levels() {
        let mut cfg = StreamConfig {
            allow_batched: true,
            metadata: BTreeMap::from([
                (METADATA_SERVER_VERSION.to_string(), "old".to_string()),
                ("mine".to_string(), "x".to_string()),
            ]),
            ..StreamConfig::default()
        };
        cfg.set_static_metadata();
        assert_eq!(
            cfg.metadata,
            BTreeMap::from([
                (METADATA_REQUIRED_LEVEL.to_string(), "4".to_string()),
                ("mine".to_string(), "x".to_string()),
            ])
        );
        let shown = cfg.with_dynamic_metadata("2.15.2", 5);
        assert_eq!(
            shown
                .metadata
                .get(METADATA_SERVER_LEVEL)
                .map(String::as_str),
            Some("5")
        );
        assert_eq!(
            StreamConfig {
                persist_mode: PersistMode::Async,
                ..StreamConfig::default()
            }
            .required_api_level(),
            2
        );
        assert_eq!(
            ConsumerConfig {
                ack_policy: AckPolicy::FlowControl,
                ..ConsumerConfig::default()
            }
            .required_api_level(),
            4
        );
    }

    /// Replies of nats-server v2.15.2 (`nats-server -js`), recorded with a raw protocol
    /// client; each must read back and serialise to the same bytes.
    type Roundtrip = fn(&str) -> Result<String, String>;

    fn observed_roundtrips() -> Vec<(&'static str, Roundtrip)> {
        vec![
            (
                r##"{"type":"io.nats.jetstream.api.v1.account_info_response","memory":0,"storage":0,"reserved_memory":0,"reserved_storage":0,"streams":0,"consumers":0,"limits":{"max_memory":-1,"max_storage":-1,"max_streams":-1,"max_consumers":-1,"max_ack_pending":-1,"memory_max_stream_bytes":-1,"storage_max_stream_bytes":-1,"max_bytes_required":false},"api":{"level":5,"total":0,"errors":0}}"##,
                roundtrip::<ApiResponse<AccountInfoResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_names_response","total":0,"offset":0,"limit":1024,"streams":null}"##,
                roundtrip::<ApiResponse<StreamNamesResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_list_response","total":0,"offset":0,"limit":256,"streams":[]}"##,
                roundtrip::<ApiResponse<StreamListResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"ORDERS","subjects":["orders.\u003e"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"created":"2026-12-04T03:32:33.160640151Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"ts":"2026-12-04T03:32:33.161480935Z","did_create":true}"##,
                roundtrip::<ApiResponse<StreamCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10058,"description":"stream name already in use with a different configuration"}}"##,
                roundtrip::<ApiResponse<StreamCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10025,"description":"invalid JSON: json: unknown field \"bogus\""}}"##,
                roundtrip::<ApiResponse<StreamCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"Y2","subjects":["y2"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":1000000000,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":1000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"created":"2026-12-04T03:32:33.163104899Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"ts":"2026-12-04T03:32:33.163520289Z","did_create":true}"##,
                roundtrip::<ApiResponse<StreamCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10157,"description":"pedantic mode: max_msgs must be set to -1"}}"##,
                roundtrip::<ApiResponse<StreamCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10025,"description":"invalid JSON: can not unmarshal \"\\\"bogus\\\"\""}}"##,
                roundtrip::<ApiResponse<StreamCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"R","subjects":["R"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"new","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"created":"2026-12-04T03:32:33.165475997Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"ts":"2026-12-04T03:32:33.166037164Z","did_create":true}"##,
                roundtrip::<ApiResponse<StreamCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10025,"description":"invalid JSON: unexpected EOF"}}"##,
                roundtrip::<ApiResponse<StreamCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10025,"description":"invalid JSON: json: cannot unmarshal string into Go struct field StreamConfigRequest.StreamConfig.max_msgs of type int64"}}"##,
                roundtrip::<ApiResponse<StreamCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"U","subjects":["u1"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"created":"2026-12-04T03:32:33.166612653Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"ts":"2026-12-04T03:32:33.167103395Z","did_create":true}"##,
                roundtrip::<ApiResponse<StreamCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_info_response","error":{"code":404,"err_code":10059,"description":"stream not found"},"total":0,"offset":0,"limit":0}"##,
                roundtrip::<ApiResponse<StreamInfoResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_names_response","total":4,"offset":0,"limit":1024,"streams":["ORDERS","R","U","Y2"]}"##,
                roundtrip::<ApiResponse<StreamNamesResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_info_response","total":0,"offset":0,"limit":0,"config":{"name":"ORDERS","subjects":["orders.\u003e"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"created":"2026-12-04T03:32:33.160640151Z","state":{"messages":2,"bytes":137,"first_seq":1,"first_ts":"2026-12-04T03:32:33.167634678Z","last_seq":2,"last_ts":"2026-12-04T03:32:33.167846054Z","num_subjects":2,"consumer_count":0},"cluster":{"leader":"probe"},"ts":"2026-12-04T03:32:33.168187033Z"}"##,
                roundtrip::<ApiResponse<StreamInfoResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","message":{"subject":"orders.b","seq":2,"hdrs":"TkFUUy8xLjANCk5hdHMtTXNnLUlkOiBtMQ0KWC1Gb286IGJhcg0KDQo=","data":"d2l0aCBoZWFkZXI=","time":"2026-12-04T03:32:33.167846054Z"}}"##,
                roundtrip::<ApiResponse<MsgGetResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","error":{"code":404,"err_code":10037,"description":"no message found"}}"##,
                roundtrip::<ApiResponse<MsgGetResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_msg_delete_response","error":{"code":500,"err_code":10057,"description":"stream store EOF"}}"##,
                roundtrip::<ApiResponse<MsgDeleteResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_create_response","stream_name":"ORDERS","name":"C1","created":"2026-12-04T03:32:33.169185322Z","config":{"name":"C1","deliver_policy":"all","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":2,"ts":"2026-12-04T03:32:33.169597307Z"}"##,
                roundtrip::<ApiResponse<ConsumerCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_create_response","stream_name":"ORDERS","name":"P1","created":"2026-12-04T03:32:33.169914721Z","config":{"name":"P1","deliver_policy":"all","ack_policy":"all","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_ack_pending":1000,"deliver_subject":"dl.p1","inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":2,"ts":"2026-12-04T03:32:33.170274948Z"}"##,
                roundtrip::<ApiResponse<ConsumerCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_create_response","stream_name":"ORDERS","name":"D1","created":"2026-12-04T03:32:33.170481587Z","config":{"durable_name":"D1","name":"D1","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":2,"ts":"2026-12-04T03:32:33.170769146Z"}"##,
                roundtrip::<ApiResponse<ConsumerCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_create_response","stream_name":"ORDERS","name":"C2","created":"2026-12-04T03:32:33.1710465Z","config":{"name":"C2","deliver_policy":"all","ack_policy":"explicit","ack_wait":1000000000,"max_deliver":5,"backoff":[1000000000,2000000000],"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"1","_nats.ver":"2.15.2"},"priority_groups":["g1"],"priority_policy":"pinned_client","priority_timeout":120000000000},"delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":2,"ts":"2026-12-04T03:32:33.171312246Z","priority_groups":[{"group":"g1","pinned_ts":"0001-01-01T00:00:00Z"}]}"##,
                roundtrip::<ApiResponse<ConsumerCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_create_response","error":{"code":400,"err_code":10148,"description":"consumer already exists"}}"##,
                roundtrip::<ApiResponse<ConsumerCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_info_response","stream_name":"ORDERS","name":"C2","created":"2026-12-04T03:32:33.1710465Z","config":{"name":"C2","deliver_policy":"all","ack_policy":"explicit","ack_wait":1000000000,"max_deliver":5,"backoff":[1000000000,2000000000],"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"1","_nats.ver":"2.15.2"},"priority_groups":["g1"],"priority_policy":"pinned_client","priority_timeout":120000000000},"delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":2,"ts":"2026-12-04T03:32:33.171845352Z","priority_groups":[{"group":"g1","pinned_ts":"0001-01-01T00:00:00Z"}]}"##,
                roundtrip::<ApiResponse<ConsumerInfoResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_info_response","error":{"code":404,"err_code":10014,"description":"consumer not found"}}"##,
                roundtrip::<ApiResponse<ConsumerInfoResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_pause_response","paused":true,"pause_until":"2099-01-01T00:00:00.5Z","pause_remaining":2274553647327265762}"##,
                roundtrip::<ApiResponse<ConsumerPauseResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_pause_response","paused":false,"pause_until":"0001-01-01T00:00:00Z"}"##,
                roundtrip::<ApiResponse<ConsumerPauseResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_pause_response","error":{"code":404,"err_code":10014,"description":"consumer not found"},"paused":false,"pause_until":"0001-01-01T00:00:00Z"}"##,
                roundtrip::<ApiResponse<ConsumerPauseResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_names_response","total":4,"offset":0,"limit":1024,"consumers":["C1","C2","D1","P1"]}"##,
                roundtrip::<ApiResponse<ConsumerNamesResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_names_response","total":0,"offset":0,"limit":1024,"consumers":[]}"##,
                roundtrip::<ApiResponse<ConsumerNamesResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_unpin_response"}"##,
                roundtrip::<ApiResponse<ConsumerUnpinResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_purge_response","success":true,"purged":1}"##,
                roundtrip::<ApiResponse<StreamPurgeResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_purge_response","error":{"code":404,"err_code":10059,"description":"stream not found"},"purged":0}"##,
                roundtrip::<ApiResponse<StreamPurgeResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_info_response","total":1,"offset":0,"limit":100000,"config":{"name":"ORDERS","subjects":["orders.\u003e"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"created":"2026-12-04T03:32:33.160640151Z","state":{"messages":1,"bytes":94,"first_seq":2,"first_ts":"2026-12-04T03:32:33.167846054Z","last_seq":2,"last_ts":"2026-12-04T03:32:33.167846054Z","num_subjects":1,"subjects":{"orders.b":1},"consumer_count":4},"cluster":{"leader":"probe"},"ts":"2026-12-04T03:32:33.175202051Z"}"##,
                roundtrip::<ApiResponse<StreamInfoResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_delete_response","success":true}"##,
                roundtrip::<ApiResponse<ConsumerDeleteResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_delete_response","error":{"code":404,"err_code":10059,"description":"stream not found"}}"##,
                roundtrip::<ApiResponse<StreamDeleteResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_delete_response","success":true}"##,
                roundtrip::<ApiResponse<StreamDeleteResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_snapshot_response","error":{"code":404,"err_code":10059,"description":"stream not found"}}"##,
                roundtrip::<ApiResponse<StreamSnapshotResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_create_response","error":{"code":400,"err_code":10025,"description":"invalid JSON: json: unknown field \"bogus\""}}"##,
                roundtrip::<ApiResponse<ConsumerCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"V","subjects":["V"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":true,"consumer_limits":{},"allow_msg_ttl":true,"subject_delete_marker_ttl":5000000000,"allow_msg_schedules":true,"metadata":{"_nats.level":"5","_nats.req.level":"2","_nats.ver":"2.15.2"}},"created":"2026-12-04T03:32:33.177910081Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"ts":"2026-12-04T03:32:33.178360022Z","did_create":true}"##,
                roundtrip::<ApiResponse<StreamCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"ORDERS","subjects":["orders.*"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":true,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"created":"2026-12-04T03:33:17.161004284Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"ts":"2026-12-04T03:33:17.161850216Z","did_create":true}"##,
                roundtrip::<ApiResponse<StreamCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_create_response","stream_name":"ORDERS","name":"C1","created":"2026-12-04T03:33:17.163196966Z","config":{"name":"C1","deliver_policy":"all","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":2,"ts":"2026-12-04T03:33:17.165025675Z"}"##,
                roundtrip::<ApiResponse<ConsumerCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_info_response","stream_name":"ORDERS","name":"C1","created":"2026-12-04T03:33:17.163196966Z","config":{"name":"C1","deliver_policy":"all","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"delivered":{"consumer_seq":1,"stream_seq":1,"last_active":"2026-12-04T03:33:17.165425872Z"},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":1,"num_redelivered":0,"num_waiting":0,"num_pending":1,"ts":"2026-12-04T03:33:17.165844207Z"}"##,
                roundtrip::<ApiResponse<ConsumerInfoResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_list_response","total":1,"offset":0,"limit":256,"consumers":[{"stream_name":"ORDERS","name":"C1","created":"2026-12-04T03:33:17.163196966Z","config":{"name":"C1","deliver_policy":"all","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.req.level":"0"}},"delivered":{"consumer_seq":1,"stream_seq":1,"last_active":"2026-12-04T03:33:17.165425872Z"},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":1,"num_redelivered":0,"num_waiting":0,"num_pending":1,"ts":"2026-12-04T03:33:17.166112307Z"}]}"##,
                roundtrip::<ApiResponse<ConsumerListResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_list_response","error":{"code":404,"err_code":10059,"description":"stream not found"},"total":0,"offset":0,"limit":0,"consumers":[]}"##,
                roundtrip::<ApiResponse<ConsumerListResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_names_response","error":{"code":404,"err_code":10059,"description":"stream not found"},"total":0,"offset":0,"limit":0,"consumers":[]}"##,
                roundtrip::<ApiResponse<ConsumerNamesResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_names_response","total":0,"offset":0,"limit":1024,"streams":null}"##,
                roundtrip::<ApiResponse<StreamNamesResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_list_response","total":0,"offset":0,"limit":256,"streams":[]}"##,
                roundtrip::<ApiResponse<StreamListResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_msg_get_response","message":{"subject":"orders.a","seq":2,"hdrs":"TkFUUy8xLjANCk5hdHMtTXNnLUlkOiBhDQoNCg==","data":"dHdv","time":"2026-12-04T03:33:17.162790109Z"}}"##,
                roundtrip::<ApiResponse<MsgGetResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_purge_response","success":true,"purged":2}"##,
                roundtrip::<ApiResponse<StreamPurgeResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_info_response","total":0,"offset":0,"limit":0,"config":{"name":"ORDERS","subjects":["orders.*"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":true,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"created":"2026-12-04T03:33:17.161004284Z","state":{"messages":0,"bytes":0,"first_seq":3,"first_ts":"0001-01-01T00:00:00Z","last_seq":2,"last_ts":"2026-12-04T03:33:17.162790109Z","consumer_count":1},"cluster":{"leader":"probe"},"ts":"2026-12-04T03:33:17.167321781Z"}"##,
                roundtrip::<ApiResponse<StreamInfoResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_create_response","stream_name":"ORDERS","name":"E1","created":"2026-12-04T03:33:17.167829399Z","config":{"name":"E1","deliver_policy":"all","ack_policy":"flow_control","max_deliver":-1,"replay_policy":"instant","max_ack_pending":10,"flow_control":true,"deliver_subject":"x.y","idle_heartbeat":1000000000,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"4","_nats.ver":"2.15.2"}},"delivered":{"consumer_seq":0,"stream_seq":2},"ack_floor":{"consumer_seq":0,"stream_seq":2},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":0,"ts":"2026-12-04T03:33:17.168097579Z"}"##,
                roundtrip::<ApiResponse<ConsumerCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_create_response","stream_name":"ORDERS","name":"HjJcTMV0","created":"2026-12-04T03:33:17.168738195Z","config":{"deliver_policy":"by_start_time","opt_start_time":"2024-01-01T00:00:00Z","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"1","_nats.ver":"2.15.2"},"pause_until":"2099-01-01T00:00:00Z"},"delivered":{"consumer_seq":0,"stream_seq":2},"ack_floor":{"consumer_seq":0,"stream_seq":2},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":0,"paused":true,"pause_remaining":2274553602830907376,"ts":"2026-12-04T03:33:17.169092404Z"}"##,
                roundtrip::<ApiResponse<ConsumerCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_update_response","config":{"name":"ORDERS","subjects":["orders.*"],"retention":"limits","max_consumers":-1,"max_msgs":10,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":true,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"created":"2026-12-04T03:33:17.161004284Z","state":{"messages":0,"bytes":0,"first_seq":3,"first_ts":"0001-01-01T00:00:00Z","last_seq":2,"last_ts":"2026-12-04T03:33:17.162790109Z","consumer_count":3},"ts":"2026-12-04T03:33:17.173158602Z"}"##,
                roundtrip::<ApiResponse<StreamUpdateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"M","retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"mirror":{"name":"ORDERS","opt_start_time":"2024-01-01T00:00:00.000000001Z"},"compression":"none","allow_direct":false,"mirror_direct":true,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"created":"2026-12-04T03:33:17.173389837Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"mirror":{"name":"ORDERS","lag":0,"active":-1},"ts":"2026-12-04T03:33:17.174093026Z","did_create":true}"##,
                roundtrip::<ApiResponse<StreamCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_info_response","total":0,"offset":0,"limit":0,"config":{"name":"M","retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"mirror":{"name":"ORDERS","opt_start_time":"2024-01-01T00:00:00.000000001Z"},"compression":"none","allow_direct":false,"mirror_direct":true,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"created":"2026-12-04T03:33:17.173389837Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"cluster":{"leader":"probe"},"mirror":{"name":"ORDERS","lag":0,"active":-1},"ts":"2026-12-04T03:33:17.174345062Z"}"##,
                roundtrip::<ApiResponse<StreamInfoResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"RP","subjects":["rp.\u003e"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","republish":{"src":"\u003e","dest":"out.\u003e"},"allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{"max_ack_pending":50},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"created":"2026-12-04T03:33:17.174510589Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"ts":"2026-12-04T03:33:17.175023374Z","did_create":true}"##,
                roundtrip::<ApiResponse<StreamCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.consumer_create_response","stream_name":"RP","name":"X","created":"2026-12-04T03:33:17.175235421Z","config":{"name":"X","deliver_policy":"all","ack_policy":"all","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":50,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":0,"ts":"2026-12-04T03:33:17.175569059Z"}"##,
                roundtrip::<ApiResponse<ConsumerCreateResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_remove_peer_response","error":{"code":503,"err_code":10010,"description":"JetStream clustering support required"}}"##,
                roundtrip::<ApiResponse<StreamRemovePeerResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_snapshot_response","config":{"name":"ORDERS","subjects":["orders.*"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.req.level":"0"}},"state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0}}"##,
                roundtrip::<ApiResponse<StreamSnapshotResponse>>,
            ),
            (
                r##"{"type":"io.nats.jetstream.api.v1.stream_restore_response","deliver_subject":"$JS.SNAPSHOT.RESTORE.NEWONE.wbXQEDR96xa6G3jErHrKvT"}"##,
                roundtrip::<ApiResponse<StreamRestoreResponse>>,
            ),
        ]
    }

    const OBSERVED_PUBACKS: [&str; 3] = [
        r##"{"stream":"ORDERS","seq":1}"##,
        r##"{"stream":"ORDERS","seq":2,"duplicate": true}"##,
        r##"{"error":{"code":400,"err_code":10071,"description":"wrong last sequence: 0"},"stream":"ORDERS","seq":0}"##,
    ];

    const STREAM_CREATE_ORDERS: &str = r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"ORDERS","subjects":["orders.\u003e"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"created":"2026-12-04T03:32:33.160640151Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"ts":"2026-12-04T03:32:33.161480935Z","did_create":true}"##;

    const STREAM_CREATE_Y2: &str = r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"Y2","subjects":["y2"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":1000000000,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":1000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"created":"2026-12-04T03:32:33.163104899Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"ts":"2026-12-04T03:32:33.163520289Z","did_create":true}"##;

    const STREAM_CREATE_R: &str = r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"R","subjects":["R"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"new","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"created":"2026-12-04T03:32:33.165475997Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"ts":"2026-12-04T03:32:33.166037164Z","did_create":true}"##;

    const STREAM_CREATE_U: &str = r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"U","subjects":["u1"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"created":"2026-12-04T03:32:33.166612653Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"ts":"2026-12-04T03:32:33.167103395Z","did_create":true}"##;

    const STREAM_CREATE_V: &str = r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"V","subjects":["V"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":true,"consumer_limits":{},"allow_msg_ttl":true,"subject_delete_marker_ttl":5000000000,"allow_msg_schedules":true,"metadata":{"_nats.level":"5","_nats.req.level":"2","_nats.ver":"2.15.2"}},"created":"2026-12-04T03:32:33.177910081Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"ts":"2026-12-04T03:32:33.178360022Z","did_create":true}"##;

    const STREAM_CREATE_M: &str = r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"M","retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"mirror":{"name":"ORDERS","opt_start_time":"2024-01-01T00:00:00.000000001Z"},"compression":"none","allow_direct":false,"mirror_direct":true,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"created":"2026-12-04T03:33:17.173389837Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"mirror":{"name":"ORDERS","lag":0,"active":-1},"ts":"2026-12-04T03:33:17.174093026Z","did_create":true}"##;

    const STREAM_CREATE_RP: &str = r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","config":{"name":"RP","subjects":["rp.\u003e"],"retention":"limits","max_consumers":-1,"max_msgs":-1,"max_bytes":-1,"max_age":0,"max_msgs_per_subject":-1,"max_msg_size":-1,"discard":"old","storage":"file","num_replicas":1,"duplicate_window":120000000000,"compression":"none","republish":{"src":"\u003e","dest":"out.\u003e"},"allow_direct":false,"mirror_direct":false,"sealed":false,"deny_delete":false,"deny_purge":false,"allow_rollup_hdrs":false,"consumer_limits":{"max_ack_pending":50},"allow_msg_ttl":false,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"created":"2026-12-04T03:33:17.174510589Z","state":{"messages":0,"bytes":0,"first_seq":0,"first_ts":"0001-01-01T00:00:00Z","last_seq":0,"last_ts":"0001-01-01T00:00:00Z","consumer_count":0},"ts":"2026-12-04T03:33:17.175023374Z","did_create":true}"##;

    const CONSUMER_C1: &str = r##"{"type":"io.nats.jetstream.api.v1.consumer_create_response","stream_name":"ORDERS","name":"C1","created":"2026-12-04T03:32:33.169185322Z","config":{"name":"C1","deliver_policy":"all","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":2,"ts":"2026-12-04T03:32:33.169597307Z"}"##;

    const CONSUMER_P1: &str = r##"{"type":"io.nats.jetstream.api.v1.consumer_create_response","stream_name":"ORDERS","name":"P1","created":"2026-12-04T03:32:33.169914721Z","config":{"name":"P1","deliver_policy":"all","ack_policy":"all","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_ack_pending":1000,"deliver_subject":"dl.p1","inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":2,"ts":"2026-12-04T03:32:33.170274948Z"}"##;

    const CONSUMER_D1: &str = r##"{"type":"io.nats.jetstream.api.v1.consumer_create_response","stream_name":"ORDERS","name":"D1","created":"2026-12-04T03:32:33.170481587Z","config":{"durable_name":"D1","name":"D1","deliver_policy":"all","ack_policy":"none","max_deliver":-1,"replay_policy":"instant","max_waiting":512,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":2,"ts":"2026-12-04T03:32:33.170769146Z"}"##;

    const CONSUMER_C2: &str = r##"{"type":"io.nats.jetstream.api.v1.consumer_create_response","stream_name":"ORDERS","name":"C2","created":"2026-12-04T03:32:33.1710465Z","config":{"name":"C2","deliver_policy":"all","ack_policy":"explicit","ack_wait":1000000000,"max_deliver":5,"backoff":[1000000000,2000000000],"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"1","_nats.ver":"2.15.2"},"priority_groups":["g1"],"priority_policy":"pinned_client","priority_timeout":120000000000},"delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":2,"ts":"2026-12-04T03:32:33.171312246Z","priority_groups":[{"group":"g1","pinned_ts":"0001-01-01T00:00:00Z"}]}"##;

    const CONSUMER_E1: &str = r##"{"type":"io.nats.jetstream.api.v1.consumer_create_response","stream_name":"ORDERS","name":"E1","created":"2026-12-04T03:33:17.167829399Z","config":{"name":"E1","deliver_policy":"all","ack_policy":"flow_control","max_deliver":-1,"replay_policy":"instant","max_ack_pending":10,"flow_control":true,"deliver_subject":"x.y","idle_heartbeat":1000000000,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"4","_nats.ver":"2.15.2"}},"delivered":{"consumer_seq":0,"stream_seq":2},"ack_floor":{"consumer_seq":0,"stream_seq":2},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":0,"ts":"2026-12-04T03:33:17.168097579Z"}"##;

    const CONSUMER_EPHEMERAL_PAUSED: &str = r##"{"type":"io.nats.jetstream.api.v1.consumer_create_response","stream_name":"ORDERS","name":"HjJcTMV0","created":"2026-12-04T03:33:17.168738195Z","config":{"deliver_policy":"by_start_time","opt_start_time":"2024-01-01T00:00:00Z","ack_policy":"explicit","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":1000,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"1","_nats.ver":"2.15.2"},"pause_until":"2099-01-01T00:00:00Z"},"delivered":{"consumer_seq":0,"stream_seq":2},"ack_floor":{"consumer_seq":0,"stream_seq":2},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":0,"paused":true,"pause_remaining":2274553602830907376,"ts":"2026-12-04T03:33:17.169092404Z"}"##;

    const CONSUMER_RP_X: &str = r##"{"type":"io.nats.jetstream.api.v1.consumer_create_response","stream_name":"RP","name":"X","created":"2026-12-04T03:33:17.175235421Z","config":{"name":"X","deliver_policy":"all","ack_policy":"all","ack_wait":30000000000,"max_deliver":-1,"replay_policy":"instant","max_waiting":512,"max_ack_pending":50,"inactive_threshold":5000000000,"num_replicas":0,"metadata":{"_nats.level":"5","_nats.req.level":"0","_nats.ver":"2.15.2"}},"delivered":{"consumer_seq":0,"stream_seq":0},"ack_floor":{"consumer_seq":0,"stream_seq":0},"num_ack_pending":0,"num_redelivered":0,"num_waiting":0,"num_pending":0,"ts":"2026-12-04T03:33:17.175569059Z"}"##;

    const ERR_NAME_EXISTS: &str = r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10058,"description":"stream name already in use with a different configuration"}}"##;

    const ERR_UNKNOWN_FIELD: &str = r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10025,"description":"invalid JSON: json: unknown field \"bogus\""}}"##;

    const ERR_PEDANTIC: &str = r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10157,"description":"pedantic mode: max_msgs must be set to -1"}}"##;

    const ERR_BAD_RETENTION: &str = r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10025,"description":"invalid JSON: can not unmarshal \"\\\"bogus\\\"\""}}"##;

    const ERR_EOF: &str = r##"{"type":"io.nats.jetstream.api.v1.stream_create_response","error":{"code":400,"err_code":10025,"description":"invalid JSON: unexpected EOF"}}"##;

    const ERR_CONSUMER_UNKNOWN_FIELD: &str = r##"{"type":"io.nats.jetstream.api.v1.consumer_create_response","error":{"code":400,"err_code":10025,"description":"invalid JSON: json: unknown field \"bogus\""}}"##;
}
