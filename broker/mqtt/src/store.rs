//! The MQTT state nats-server keeps in JetStream, named and shaped as nats-server does, so
//! that `nats stream ls` shows the same streams and a session, a retained message or a QoS 2
//! message written by one server is read by the other.
//!
//! | stream | subjects | retention | holds |
//! | --- | --- | --- | --- |
//! | `$MQTT_sess` | `$MQTT.sess.<domain.><client-ID hash>` | limits, 1 per subject | one JSON [`PersistedSession`] per client |
//! | `$MQTT_msgs` | `$MQTT.msgs.<subject>` | interest | QoS 1/2 messages for durable consumers, one per QoS>0 subscription |
//! | `$MQTT_rmsgs` | `$MQTT.rmsgs.<subject>` | limits, 1 per subject | the retained message of each topic ([`RetainedMessage`]) |
//! | `$MQTT_qos2in` | `$MQTT.qos2.in.<client ID>.<packet ID>` | limits, 1 per subject, discard new per subject | incoming QoS 2 messages until PUBREL (exactly once per packet ID) |
//! | `$MQTT_out` | `$MQTT.out.pubrel.<client-ID hash>` | interest | PUBRELs owed to subscribers, delivered by the `$MQTT_PUBREL_<hash>` consumer |
//!
//! All streams use file storage and the configured `stream_replicas`. Messages keep MQTT
//! metadata in NATS headers (`Nmqtt-Pub`, `Nmqtt-Subject`, `Nmqtt-Mapped`, `Nmqtt-PubRel`,
//! `Nmqtt-R*`), see [`PublishHeader`], [`pubrel_headers`] and [`RetainedMessage`].

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::time::Duration;

use bytes::Bytes;
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use thiserror::Error;

use crate::topic::subject_to_topic;

pub const SESSIONS_STREAM: &str = "$MQTT_sess";
pub const SESSIONS_SUBJECT_PREFIX: &str = "$MQTT.sess.";
/// Per-client session streams of old nats-server versions, which nats-server still moves into
/// `$MQTT_sess` when it finds them.
pub const LEGACY_SESSION_STREAM_PREFIX: &str = "$MQTT_sess_";
pub const MESSAGES_STREAM: &str = "$MQTT_msgs";
pub const MESSAGES_SUBJECT_PREFIX: &str = "$MQTT.msgs.";
pub const RETAINED_STREAM: &str = "$MQTT_rmsgs";
pub const RETAINED_SUBJECT_PREFIX: &str = "$MQTT.rmsgs.";
pub const QOS2_INCOMING_STREAM: &str = "$MQTT_qos2in";
pub const QOS2_INCOMING_SUBJECT_PREFIX: &str = "$MQTT.qos2.in.";
pub const OUT_STREAM: &str = "$MQTT_out";
pub const OUT_SUBJECT_PREFIX: &str = "$MQTT.out.";
pub const PUBREL_SUBJECT_PREFIX: &str = "$MQTT.out.pubrel.";
pub const PUBREL_DELIVERY_SUBJECT_PREFIX: &str = "$MQTT.deliver.pubrel.";
pub const PUBREL_CONSUMER_DURABLE_PREFIX: &str = "$MQTT_PUBREL_";
/// Delivery subjects of the per-subscription durable consumers: `$MQTT.sub.<nuid>`.
pub const SUB_DELIVERY_PREFIX: &str = "$MQTT.sub.";
/// natrix's: the durable consumer a shared subscription's members have in common,
/// `$MQTT_SHARE_<hash of group and subject>`, delivering on `$MQTT.sub.share.<hash>`.
pub const SHARED_DURABLE_PREFIX: &str = "$MQTT_SHARE_";
/// Reply subjects of the session manager's JetStream API requests:
/// `$MQTT.JSA.<server hash>.<kind>.<nuid>`.
pub const JSA_REPLIES_PREFIX: &str = "$MQTT.JSA.";

/// nats-server's defaults for the `mqtt {}` block.
pub const DEFAULT_ACK_WAIT: Duration = Duration::from_secs(30);
pub const DEFAULT_MAX_ACK_PENDING: u16 = 1024;
/// A session's consumers together may not have more pending acks than this.
pub const MAX_ACK_PENDING_TOTAL: u32 = 0xFFFF;
/// MQTT over WebSocket is served on this path of the WebSocket port.
pub const WEBSOCKET_PATH: &str = "/mqtt";

/// NATS headers carrying MQTT metadata.
pub const HEADER_PUB: &str = "Nmqtt-Pub";
pub const HEADER_SUBJECT: &str = "Nmqtt-Subject";
pub const HEADER_MAPPED: &str = "Nmqtt-Mapped";
pub const HEADER_PUBREL: &str = "Nmqtt-PubRel";
pub const HEADER_RETAINED_TOPIC: &str = "Nmqtt-RTopic";
pub const HEADER_RETAINED_ORIGIN: &str = "Nmqtt-ROrigin";
pub const HEADER_RETAINED_FLAGS: &str = "Nmqtt-RFlags";
pub const HEADER_RETAINED_SOURCE: &str = "Nmqtt-RSource";
/// Before the flags of a retained message with an empty payload: a deletion.
pub const RETAINED_DELETE_MARKER: char = '-';

const HEADER_LINE: &str = "NATS/1.0\r\n";

/// Why a stored record cannot be read.
#[derive(Debug, Error)]
pub enum StoreError {
    #[error("invalid retained message flags")]
    InvalidRetainFlags,
    #[error("invalid retained message")]
    InvalidRetainedMessage,
    /// Retained messages stored as JSON by nats-server before the header format; natrix reads
    /// only the header format (nats-server converts old ones when it starts).
    #[error("retained message in the old JSON format")]
    LegacyRetainedMessage,
    #[error("invalid MQTT session: {0}")]
    InvalidSession(#[from] serde_json::Error),
    #[error("stored session does not match client ID")]
    SessionCollision,
}

/// nats-server's hash of a client ID (`getHash`): SHA-256, the first 8 bytes each mapped to
/// one of 62 letters and digits. It keys the session subject and the consumer names.
pub fn client_id_hash(client_id: &str) -> String {
    const DIGITS: &[u8; 62] = b"0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
    let sum = Sha256::digest(client_id.as_bytes());
    sum[..8]
        .iter()
        .map(|b| char::from(DIGITS[usize::from(*b) % DIGITS.len()]))
        .collect()
}

/// The token a JetStream domain adds to session subjects: `"<domain>."`, or empty.
pub fn domain_token(domain: Option<&str>) -> String {
    domain
        .filter(|d| !d.is_empty())
        .map(|d| format!("{d}."))
        .unwrap_or_default()
}

/// `$MQTT.sess.<domain token><hash>`: the subject of a client's session record.
pub fn session_subject(domain_token: &str, client_id_hash: &str) -> String {
    format!("{SESSIONS_SUBJECT_PREFIX}{domain_token}{client_id_hash}")
}

/// `$MQTT.msgs.<subject>`: where a QoS 1/2 message on `subject` is stored for subscribers.
pub fn message_subject(subject: &str) -> String {
    format!("{MESSAGES_SUBJECT_PREFIX}{subject}")
}

/// `$MQTT.rmsgs.<subject>`: where the retained message of a topic lives.
pub fn retained_subject(subject: &str) -> String {
    format!("{RETAINED_SUBJECT_PREFIX}{subject}")
}

/// `$MQTT.qos2.in.<client ID>.<packet ID>`: an incoming QoS 2 message waiting for PUBREL.
/// nats-server keys it by the client ID itself, not its hash.
pub fn qos2_incoming_subject(client_id: &str, packet_id: u16) -> String {
    format!("{QOS2_INCOMING_SUBJECT_PREFIX}{client_id}.{packet_id}")
}

/// `$MQTT.out.pubrel.<hash>`: PUBRELs owed to a session.
pub fn pubrel_subject(client_id_hash: &str) -> String {
    format!("{PUBREL_SUBJECT_PREFIX}{client_id_hash}")
}

/// `$MQTT.deliver.pubrel.<hash>`: the delivery subject of the PUBREL consumer.
pub fn pubrel_delivery_subject(client_id_hash: &str) -> String {
    format!("{PUBREL_DELIVERY_SUBJECT_PREFIX}{client_id_hash}")
}

/// `$MQTT_PUBREL_<hash>`: the durable name of a session's PUBREL consumer.
pub fn pubrel_durable(client_id_hash: &str) -> String {
    format!("{PUBREL_CONSUMER_DURABLE_PREFIX}{client_id_hash}")
}

/// The hash naming the consumer of a shared subscription `$share/<group>/...` on
/// `subject` (one per group and subject in an account).
pub fn shared_hash(group: &str, subject: &str) -> String {
    client_id_hash(&format!("{group}\u{0}{subject}"))
}

/// `<hash>_<nuid>`: the durable name of a QoS 1/2 subscription's consumer on `$MQTT_msgs`.
pub fn subscription_durable(client_id_hash: &str, nuid: &str) -> String {
    format!("{client_id_hash}_{nuid}")
}

/// How a stream keeps messages (JetStream's `retention`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Retention {
    Limits,
    Interest,
}

/// The stream configurations nats-server creates for MQTT, as JetStream API JSON
/// (`$JS.API.STREAM.CREATE.<name>`). Only the fields nats-server sets; JetStream fills in
/// the defaults.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamSpec {
    pub name: String,
    pub subjects: Vec<String>,
    pub retention: Retention,
    /// Always "file".
    pub storage: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub max_msgs_per_subject: Option<i64>,
    /// "new" for `$MQTT_qos2in`, so a resent QoS 2 PUBLISH does not replace the first.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub discard: Option<String>,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub discard_new_per_subject: bool,
    pub num_replicas: usize,
}

/// The five streams of an account, in the order nats-server creates them. `domain_token`
/// comes from [`domain_token`] and only scopes the session subjects.
pub fn stream_specs(replicas: usize, domain_token: &str) -> [StreamSpec; 5] {
    let spec = |name: &str, subject: String, retention, per_subject| StreamSpec {
        name: name.to_owned(),
        subjects: vec![subject],
        retention,
        storage: "file".to_owned(),
        max_msgs_per_subject: per_subject,
        discard: None,
        discard_new_per_subject: false,
        num_replicas: replicas,
    };
    let mut qos2 = spec(
        QOS2_INCOMING_STREAM,
        format!("{QOS2_INCOMING_SUBJECT_PREFIX}>"),
        Retention::Limits,
        Some(1),
    );
    qos2.discard = Some("new".to_owned());
    qos2.discard_new_per_subject = true;
    [
        spec(
            SESSIONS_STREAM,
            format!("{SESSIONS_SUBJECT_PREFIX}{domain_token}>"),
            Retention::Limits,
            Some(1),
        ),
        spec(
            MESSAGES_STREAM,
            format!("{MESSAGES_SUBJECT_PREFIX}>"),
            Retention::Interest,
            None,
        ),
        qos2,
        spec(
            OUT_STREAM,
            format!("{OUT_SUBJECT_PREFIX}>"),
            Retention::Interest,
            None,
        ),
        spec(
            RETAINED_STREAM,
            format!("{RETAINED_SUBJECT_PREFIX}>"),
            Retention::Limits,
            Some(1),
        ),
    ]
}

/// A JetStream consumer configuration as stored in a session record (nats-server stores its
/// whole `ConsumerConfig`). The fields MQTT sets are typed; any other field nats-server
/// wrote is kept in `other` so that rewriting a record does not lose it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ConsumerRecord {
    #[serde(
        rename = "durable_name",
        default,
        skip_serializing_if = "String::is_empty"
    )]
    pub durable: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub deliver_subject: String,
    /// The queue group its deliveries are shared in (a `$share/<group>/...` subscription's
    /// members; natrix's, nats-server has no shared subscriptions).
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub deliver_group: String,
    /// "new": a subscription sees messages from when it was made.
    #[serde(default)]
    pub deliver_policy: String,
    /// "explicit": each message is acked by PUBACK / PUBCOMP.
    #[serde(default)]
    pub ack_policy: String,
    /// Nanoseconds, as Go's `time.Duration`.
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub ack_wait: i64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub filter_subject: String,
    #[serde(default)]
    pub replay_policy: String,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub max_ack_pending: i64,
    #[serde(default, skip_serializing_if = "is_zero_i64")]
    pub inactive_threshold: i64,
    #[serde(default)]
    pub num_replicas: i64,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub mem_storage: bool,
    #[serde(flatten)]
    pub other: BTreeMap<String, serde_json::Value>,
}

fn is_zero_i64(v: &i64) -> bool {
    *v == 0
}

impl ConsumerRecord {
    /// The consumer nats-server creates for a QoS 1/2 subscription on `subject`.
    pub fn for_subscription(
        durable: String,
        deliver_subject: String,
        subject: &str,
        ack_wait: Duration,
        max_ack_pending: u16,
    ) -> Self {
        ConsumerRecord {
            durable,
            deliver_subject,
            deliver_policy: "new".to_owned(),
            ack_policy: "explicit".to_owned(),
            ack_wait: duration_nanos(ack_wait),
            filter_subject: message_subject(subject),
            replay_policy: "instant".to_owned(),
            max_ack_pending: i64::from(max_ack_pending),
            ..ConsumerRecord::default()
        }
    }

    /// The consumer the members of a QoS 1/2 shared subscription `$share/<group>/...` on
    /// `subject` have in common: each message goes to the group once, and the core's
    /// queue group picks the member (all members subscribe to its deliver subject in
    /// `group`). Its config is the same for every member, so that each creates it alike.
    pub fn for_shared_subscription(
        group: &str,
        subject: &str,
        ack_wait: Duration,
        max_ack_pending: u16,
    ) -> Self {
        let hash = shared_hash(group, subject);
        ConsumerRecord {
            deliver_group: group.to_owned(),
            ..Self::for_subscription(
                format!("{SHARED_DURABLE_PREFIX}{hash}"),
                format!("{SUB_DELIVERY_PREFIX}share.{hash}"),
                subject,
                ack_wait,
                max_ack_pending,
            )
        }
    }

    /// The consumer that delivers a session's owed PUBRELs.
    pub fn for_pubrel(client_id_hash: &str, ack_wait: Duration, max_ack_pending: u16) -> Self {
        ConsumerRecord {
            durable: pubrel_durable(client_id_hash),
            deliver_subject: pubrel_delivery_subject(client_id_hash),
            deliver_policy: "new".to_owned(),
            ack_policy: "explicit".to_owned(),
            ack_wait: duration_nanos(ack_wait),
            filter_subject: pubrel_subject(client_id_hash),
            replay_policy: "instant".to_owned(),
            max_ack_pending: i64::from(max_ack_pending),
            ..ConsumerRecord::default()
        }
    }
}

fn duration_nanos(d: Duration) -> i64 {
    i64::try_from(d.as_nanos()).unwrap_or(i64::MAX)
}

/// MQTT 5.0 state of a session that nats-server's record has no field for. Stored under one
/// extra key, which nats-server ignores when it reads the record (Go's JSON decoding skips
/// unknown keys), so 3.1.1 sessions stay interchangeable and 5.0 sessions lose only what
/// nats-server could not serve anyway.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SessionV5 {
    /// Seconds the session outlives its connection (3.1.2.11.2); u32::MAX is "never expires".
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub session_expiry_interval: u32,
    /// Per filter (the same keys as `subs`): the options 3.1.1 has no room for.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subs: BTreeMap<String, SubscriptionV5>,
    /// When the session's last connection ended (Unix milliseconds), kept for a finite
    /// Session Expiry Interval: a server that restarted meanwhile, and so lost the
    /// expiry timer, still finds the session expired when the client comes back.
    #[serde(default, skip_serializing_if = "is_zero_u64")]
    pub ended_at_ms: u64,
}

fn is_zero_u64(v: &u64) -> bool {
    *v == 0
}

impl SessionV5 {
    /// Whether the session ended more than its Session Expiry Interval before `now_ms`.
    pub fn expired(&self, now_ms: u64) -> bool {
        self.ended_at_ms > 0
            && self.session_expiry_interval != u32::MAX
            && now_ms
                >= self
                    .ended_at_ms
                    .saturating_add(u64::from(self.session_expiry_interval) * 1000)
    }
}

fn is_zero_u32(v: &u32) -> bool {
    *v == 0
}

/// The 5.0 subscription options kept with a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct SubscriptionV5 {
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub no_local: bool,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub retain_as_published: bool,
    /// 0, 1 or 2 as on the wire.
    #[serde(default, skip_serializing_if = "is_zero_u8")]
    pub retain_handling: u8,
    /// The Subscription Identifier, 0 for none.
    #[serde(default, skip_serializing_if = "is_zero_u32")]
    pub identifier: u32,
}

fn is_zero_u8(v: &u8) -> bool {
    *v == 0
}

/// A session record in `$MQTT_sess`, field for field nats-server's `mqttPersistedSession`
/// (with Go's `omitempty`: unset fields are left out).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct PersistedSession {
    /// The hash of the server that wrote the record.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub origin: String,
    /// The client ID.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub id: String,
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub clean: bool,
    /// Filter as a NATS subject (`foo.*`, `foo.>`, ...) → granted QoS.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub subs: BTreeMap<String, u8>,
    /// Subscription ID (the subject, or `<subject> fwc` for the parent-level subscription of
    /// a `#` filter) → the durable consumer of a QoS 1/2 subscription.
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        deserialize_with = "consumers_without_nulls"
    )]
    pub cons: BTreeMap<String, ConsumerRecord>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pubrel: Option<ConsumerRecord>,
    /// natrix's MQTT 5.0 additions (see [`SessionV5`]).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub natrix_v5: Option<SessionV5>,
}

/// nats-server drops consumers stored as `null` when it reads a record; so does natrix.
fn consumers_without_nulls<'de, D>(d: D) -> Result<BTreeMap<String, ConsumerRecord>, D::Error>
where
    D: serde::Deserializer<'de>,
{
    let map: BTreeMap<String, Option<ConsumerRecord>> = Deserialize::deserialize(d)?;
    Ok(map.into_iter().filter_map(|(k, v)| Some((k, v?))).collect())
}

/// The sid suffix nats-server gives the parent-level subscription of a `#` filter.
pub const PARENT_LEVEL_SID_SUFFIX: &str = " fwc";

impl PersistedSession {
    /// Reads a record for `client_id`, refusing one that belongs to another client whose ID
    /// hashes the same (nats-server's "stored session does not match client ID").
    pub fn decode(data: &[u8], client_id: &str) -> Result<Self, StoreError> {
        let session: PersistedSession = serde_json::from_slice(data)?;
        if session.id != client_id {
            return Err(StoreError::SessionCollision);
        }
        Ok(session)
    }

    pub fn encode(&self) -> Vec<u8> {
        // Serializing plain structs and maps with string keys cannot fail.
        serde_json::to_vec(self).unwrap_or_default()
    }
}

/// The `Nmqtt-Pub` family of headers on a message published by an MQTT client, as
/// nats-server writes them (`mqttNewDeliverableMessage`). NATS subscribers see `Nmqtt-Pub`
/// with the QoS; a QoS 2 message staged in `$MQTT_qos2in` also carries its PUBLISH flags
/// and its subject (and the subject before a mapping, if one applied).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublishHeader {
    pub qos: u8,
    /// The PUBLISH flags nibble (DUP, QoS, RETAIN), for staged QoS 2 messages.
    pub flags: Option<u8>,
    pub subject: Option<String>,
    pub mapped: Option<String>,
}

impl PublishHeader {
    /// The header block, `NATS/1.0\r\n...\r\n\r\n`.
    pub fn encode(&self) -> String {
        let mut h = String::with_capacity(64);
        h.push_str(HEADER_LINE);
        let _ = write!(h, "{HEADER_PUB}:{}", self.qos);
        if let Some(flags) = self.flags {
            let _ = write!(h, "{:x}", flags & 0x0f);
        }
        h.push_str("\r\n");
        if let Some(subject) = &self.subject {
            let _ = write!(h, "{HEADER_SUBJECT}:{subject}\r\n");
        }
        if let Some(mapped) = &self.mapped {
            let _ = write!(h, "{HEADER_MAPPED}:{mapped}\r\n");
        }
        h.push_str("\r\n");
        h
    }

    /// Reads the header block of a message; `None` if it did not come from MQTT.
    pub fn decode(headers: &[u8]) -> Option<Self> {
        let value = header_value(headers, HEADER_PUB).filter(|v| !v.is_empty())?;
        let qos = value[0].wrapping_sub(b'0');
        // A missing or non-hex flags byte reads as no flags, as in nats-server.
        let flags = value
            .get(1)
            .and_then(|c| char::from(*c).to_digit(16))
            .map(|d| d as u8);
        let text =
            |key| header_value(headers, key).map(|v| String::from_utf8_lossy(v).into_owned());
        Some(PublishHeader {
            qos,
            flags,
            subject: text(HEADER_SUBJECT),
            mapped: text(HEADER_MAPPED),
        })
    }
}

/// The header block of a PUBREL owed to a subscriber, stored in `$MQTT_out`.
pub fn pubrel_headers(packet_id: u16) -> String {
    format!("{HEADER_LINE}{HEADER_PUBREL}:{packet_id}\r\n\r\n")
}

/// The packet ID of a stored PUBREL, or `None` if the headers carry none.
pub fn pubrel_packet_id(headers: &[u8]) -> Option<u16> {
    let value = header_value(headers, HEADER_PUBREL)?;
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// A retained message in `$MQTT_rmsgs`: the payload is the message body, the rest is in
/// headers. An empty payload deletes the topic's retained message (3.3.1-6), and is written
/// with the delete marker before the flags so every server drops it from its cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetainedMessage {
    /// The MQTT topic.
    pub topic: String,
    /// The NATS subject (without the `$MQTT.rmsgs.` prefix).
    pub subject: String,
    /// The PUBLISH flags nibble it was published with.
    pub flags: u8,
    /// The hash of the server that stored it.
    pub origin: String,
    /// The user that published it, for permission checks on delivery.
    pub source: String,
    pub payload: Bytes,
}

impl RetainedMessage {
    /// The header block (nats-server's `mqttEncodeRetainedMessage`).
    pub fn encode_headers(&self) -> String {
        let mut h = String::with_capacity(96);
        h.push_str(HEADER_LINE);
        let _ = write!(h, "{HEADER_RETAINED_TOPIC}:{}\r\n", self.topic);
        h.push_str(HEADER_RETAINED_FLAGS);
        h.push(':');
        if self.payload.is_empty() {
            h.push(RETAINED_DELETE_MARKER);
        }
        let _ = write!(h, "{:x}\r\n", self.flags);
        if !self.origin.is_empty() {
            let _ = write!(h, "{HEADER_RETAINED_ORIGIN}:{}\r\n", self.origin);
        }
        if !self.source.is_empty() {
            let _ = write!(h, "{HEADER_RETAINED_SOURCE}:{}\r\n", self.source);
        }
        h.push_str("\r\n");
        h
    }

    /// Reads a stored retained message (nats-server's `mqttDecodeRetainedMessage`). The topic
    /// is rebuilt from the subject, as nats-server does, so a stream sourced through a
    /// subject transform still yields the right topic.
    pub fn decode(subject: &str, headers: &[u8], payload: Bytes) -> Result<Self, StoreError> {
        let Some(flags) = header_value(headers, HEADER_RETAINED_FLAGS).filter(|v| !v.is_empty())
        else {
            return Err(StoreError::LegacyRetainedMessage);
        };
        let flags = match flags {
            [b'-', rest @ ..] if !rest.is_empty() => rest,
            other => other,
        };
        let flags = std::str::from_utf8(flags)
            .ok()
            .and_then(|f| u8::from_str_radix(f, 16).ok())
            .ok_or(StoreError::InvalidRetainFlags)?;
        // A nibble, and not QoS 3.
        if flags >= 0x0f || (flags >> 1) & 0x03 == 3 {
            return Err(StoreError::InvalidRetainFlags);
        }
        let text = |key| {
            header_value(headers, key)
                .map_or_else(String::new, |v| String::from_utf8_lossy(v).into_owned())
        };
        let subject = subject
            .strip_prefix(RETAINED_SUBJECT_PREFIX)
            .unwrap_or(subject)
            .to_owned();
        Ok(RetainedMessage {
            topic: subject_to_topic(&subject).into_owned(),
            subject,
            flags,
            origin: text(HEADER_RETAINED_ORIGIN),
            source: text(HEADER_RETAINED_SOURCE),
            payload,
        })
    }
}

/// The value of `key` in a NATS header block (`NATS/1.0\r\nKey:Value\r\n...`), with spaces
/// around it trimmed as nats-server's header slicing does. Keys are matched exactly.
pub fn header_value<'a>(headers: &'a [u8], key: &str) -> Option<&'a [u8]> {
    let rest = headers.strip_prefix(b"NATS/1.0")?;
    let mut lines = rest.split(|b| *b == b'\n');
    lines.next(); // the rest of the status line
    for line in lines {
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            break;
        }
        let Some(colon) = line.iter().position(|b| *b == b':') else {
            continue;
        };
        if line[..colon].trim_ascii_end() == key.as_bytes() {
            return Some(line[colon + 1..].trim_ascii_start());
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn client_id_hashes_match_nats_server() {
        // Values from nats-server's getHash.
        for (id, hash) in [
            ("client1", HASH_CLIENT1),
            ("sensor-42", HASH_SENSOR42),
            ("", HASH_EMPTY),
            ("é", "CTN22p9L"),
        ] {
            assert_eq!(client_id_hash(id), hash, "{id:?}");
        }
        assert_eq!(client_id_hash("x").len(), 8);
    }

    const HASH_CLIENT1: &str = "PNfq787e";
    const HASH_SENSOR42: &str = "5Tpbu56O";
    const HASH_EMPTY: &str = "fqA4S4SK";

    #[test]
    fn subjects_and_names() {
        let h = client_id_hash("client1");
        assert_eq!(
            session_subject(&domain_token(None), &h),
            format!("$MQTT.sess.{h}")
        );
        assert_eq!(
            session_subject(&domain_token(Some("hub")), &h),
            format!("$MQTT.sess.hub.{h}")
        );
        assert_eq!(domain_token(Some("")), "");
        assert_eq!(message_subject("a.b"), "$MQTT.msgs.a.b");
        assert_eq!(retained_subject("a.b"), "$MQTT.rmsgs.a.b");
        assert_eq!(
            qos2_incoming_subject("client1", 7),
            "$MQTT.qos2.in.client1.7"
        );
        assert_eq!(pubrel_subject(&h), format!("$MQTT.out.pubrel.{h}"));
        assert_eq!(
            pubrel_delivery_subject(&h),
            format!("$MQTT.deliver.pubrel.{h}")
        );
        assert_eq!(pubrel_durable(&h), format!("$MQTT_PUBREL_{h}"));
        assert_eq!(subscription_durable(&h, "N1"), format!("{h}_N1"));
        // The per-subscription delivery subjects and the state subjects are all internal.
        for s in [
            SUB_DELIVERY_PREFIX,
            PUBREL_DELIVERY_SUBJECT_PREFIX,
            MESSAGES_SUBJECT_PREFIX,
        ] {
            assert!(crate::topic::is_internal_subject(s), "{s}");
        }
    }

    #[test]
    fn streams_as_nats_server_creates_them() {
        let specs = stream_specs(3, "hub.");
        let names: Vec<_> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "$MQTT_sess",
                "$MQTT_msgs",
                "$MQTT_qos2in",
                "$MQTT_out",
                "$MQTT_rmsgs"
            ]
        );
        let json = serde_json::to_value(&specs).expect("serializable");
        assert_eq!(
            json[0],
            serde_json::json!({
                "name": "$MQTT_sess", "subjects": ["$MQTT.sess.hub.>"], "retention": "limits",
                "storage": "file", "max_msgs_per_subject": 1, "num_replicas": 3
            })
        );
        assert_eq!(
            json[1],
            serde_json::json!({
                "name": "$MQTT_msgs", "subjects": ["$MQTT.msgs.>"], "retention": "interest",
                "storage": "file", "num_replicas": 3
            })
        );
        assert_eq!(
            json[2],
            serde_json::json!({
                "name": "$MQTT_qos2in", "subjects": ["$MQTT.qos2.in.>"], "retention": "limits",
                "storage": "file", "max_msgs_per_subject": 1, "discard": "new",
                "discard_new_per_subject": true, "num_replicas": 3
            })
        );
        assert_eq!(json[3]["subjects"], serde_json::json!(["$MQTT.out.>"]));
        assert_eq!(json[3]["retention"], "interest");
        assert_eq!(json[4]["subjects"], serde_json::json!(["$MQTT.rmsgs.>"]));
        assert_eq!(json[4]["max_msgs_per_subject"], 1);
    }

    #[test]
    fn session_record_reads_what_nats_server_writes() {
        let record = NATS_SERVER_SESSION_RECORD;
        let session = PersistedSession::decode(record.as_bytes(), "client1").expect("valid");
        assert_eq!(session.id, "client1");
        assert_eq!(session.subs.get("foo.>"), Some(&1));
        assert_eq!(session.subs.get("foo"), Some(&1));
        let cons = session.cons.get("foo.>").expect("consumer for foo.>");
        assert_eq!(cons.ack_policy, "explicit");
        assert_eq!(cons.deliver_policy, "new");
        assert_eq!(cons.ack_wait, 30_000_000_000);
        assert_eq!(cons.filter_subject, "$MQTT.msgs.foo.>");
        assert_eq!(cons.max_ack_pending, 1024);
        assert!(session.cons.contains_key("foo fwc"));
        // Rewriting keeps every field, known or not.
        let again: serde_json::Value =
            serde_json::from_slice(&session.encode()).expect("valid JSON");
        let original: serde_json::Value = serde_json::from_str(record).expect("valid JSON");
        assert_eq!(again, original);
        assert!(matches!(
            PersistedSession::decode(record.as_bytes(), "client2"),
            Err(StoreError::SessionCollision)
        ));
        // A field natrix does not know survives a rewrite too.
        let mut with_extra: serde_json::Value = serde_json::from_str(record).expect("JSON");
        with_extra["pubrel"]["metadata"] = serde_json::json!({"k": "v"});
        let text = with_extra.to_string();
        let session = PersistedSession::decode(text.as_bytes(), "client1").expect("valid");
        let again: serde_json::Value =
            serde_json::from_slice(&session.encode()).expect("valid JSON");
        assert_eq!(again, with_extra);
        let nulls = br#"{"id":"c","cons":{"a":null,"b":{"durable_name":"d"}}}"#;
        let session = PersistedSession::decode(nulls, "c").expect("valid");
        assert_eq!(session.cons.keys().collect::<Vec<_>>(), ["b"]);
        assert!(matches!(
            PersistedSession::decode(b"{", "client1"),
            Err(StoreError::InvalidSession(_))
        ));
    }

    /// A "foo/#" QoS 1 subscription and a PUBREL consumer, as nats-server marshals its
    /// `mqttPersistedSession` (from nats-server itself).
    const NATS_SERVER_SESSION_RECORD: &str = r#"{"origin":"S1","id":"client1","subs":{"foo":1,"foo.\u003e":1},"cons":{"foo fwc":{"durable_name":"PNfq787e_N1","deliver_policy":"new","ack_policy":"explicit","ack_wait":30000000000,"filter_subject":"$MQTT.msgs.foo","replay_policy":"instant","max_ack_pending":1024,"deliver_subject":"$MQTT.sub.N1","num_replicas":0},"foo.\u003e":{"durable_name":"PNfq787e_N1","deliver_policy":"new","ack_policy":"explicit","ack_wait":30000000000,"filter_subject":"$MQTT.msgs.foo.\u003e","replay_policy":"instant","max_ack_pending":1024,"deliver_subject":"$MQTT.sub.N1","num_replicas":0}},"pubrel":{"durable_name":"$MQTT_PUBREL_PNfq787e","deliver_policy":"new","ack_policy":"explicit","ack_wait":30000000000,"filter_subject":"$MQTT.out.pubrel.PNfq787e","replay_policy":"instant","max_ack_pending":1024,"deliver_subject":"$MQTT.deliver.pubrel.PNfq787e","num_replicas":0}}"#;

    #[test]
    fn shared_subscriptions_have_one_consumer_per_group_and_subject() {
        let ack = Duration::from_secs(30);
        let a = ConsumerRecord::for_shared_subscription("g", "jobs.*", ack, 1024);
        // Every member builds the same config, so a second creation changes nothing.
        assert_eq!(
            a,
            ConsumerRecord::for_shared_subscription("g", "jobs.*", ack, 1024)
        );
        assert!(a.durable.starts_with(SHARED_DURABLE_PREFIX));
        assert!(a.deliver_subject.starts_with(SUB_DELIVERY_PREFIX));
        assert_eq!(a.deliver_group, "g");
        assert_eq!(a.filter_subject, message_subject("jobs.*"));
        for other in [("h", "jobs.*"), ("g", "jobs.>")] {
            let b = ConsumerRecord::for_shared_subscription(other.0, other.1, ack, 1024);
            assert_ne!(a.durable, b.durable, "{other:?}");
            assert_ne!(a.deliver_subject, b.deliver_subject, "{other:?}");
        }
        let json = serde_json::to_value(&a).expect("json");
        assert_eq!(json["deliver_group"], "g");
        // An ordinary subscription's consumer has none, and writes none (nats-server's form).
        let plain = ConsumerRecord::for_subscription("d".into(), "s".into(), "x", ack, 1);
        assert!(
            serde_json::to_value(&plain)
                .expect("json")
                .get("deliver_group")
                .is_none()
        );
    }

    #[test]
    fn session_expiry_counts_from_the_recorded_end() {
        let v5 = SessionV5 {
            session_expiry_interval: 10,
            ended_at_ms: 1_000_000,
            ..SessionV5::default()
        };
        assert!(!v5.expired(1_009_999));
        assert!(v5.expired(1_010_000));
        // A session that never ended, or never expires, is never expired.
        assert!(
            !SessionV5 {
                ended_at_ms: 0,
                ..v5.clone()
            }
            .expired(u64::MAX)
        );
        assert!(
            !SessionV5 {
                session_expiry_interval: u32::MAX,
                ..v5.clone()
            }
            .expired(u64::MAX)
        );
    }

    #[test]
    fn natrix_v5_state_rides_along() {
        let mut session = PersistedSession {
            origin: "S1".into(),
            id: "dev".into(),
            ..PersistedSession::default()
        };
        session.subs.insert("a.*".into(), 1);
        let h = client_id_hash("dev");
        session.cons.insert(
            "a.*".into(),
            ConsumerRecord::for_subscription(
                subscription_durable(&h, "N1"),
                format!("{SUB_DELIVERY_PREFIX}N1"),
                "a.*",
                DEFAULT_ACK_WAIT,
                DEFAULT_MAX_ACK_PENDING,
            ),
        );
        session.pubrel = Some(ConsumerRecord::for_pubrel(
            &h,
            DEFAULT_ACK_WAIT,
            DEFAULT_MAX_ACK_PENDING,
        ));
        let mut v5 = SessionV5 {
            session_expiry_interval: 3600,
            ..SessionV5::default()
        };
        v5.subs.insert(
            "a.*".into(),
            SubscriptionV5 {
                no_local: true,
                identifier: 7,
                ..SubscriptionV5::default()
            },
        );
        session.natrix_v5 = Some(v5);
        let bytes = session.encode();
        assert_eq!(
            PersistedSession::decode(&bytes, "dev").expect("valid"),
            session
        );
        let json: serde_json::Value = serde_json::from_slice(&bytes).expect("JSON");
        assert_eq!(json["cons"]["a.*"]["filter_subject"], "$MQTT.msgs.a.*");
        assert_eq!(json["pubrel"]["durable_name"], format!("$MQTT_PUBREL_{h}"));
        assert_eq!(json["natrix_v5"]["subs"]["a.*"]["identifier"], 7);
        // Unset fields are left out, as Go's omitempty does.
        let empty = PersistedSession {
            id: "x".into(),
            ..PersistedSession::default()
        };
        assert_eq!(empty.encode(), br#"{"id":"x"}"#);
    }

    #[test]
    fn publish_headers() {
        let h = PublishHeader {
            qos: 1,
            flags: None,
            subject: None,
            mapped: None,
        };
        assert_eq!(h.encode(), "NATS/1.0\r\nNmqtt-Pub:1\r\n\r\n");
        assert_eq!(PublishHeader::decode(h.encode().as_bytes()), Some(h));
        // A retained QoS 2 message staged for PUBREL: flags 0x5 (retain | QoS 2).
        let staged = PublishHeader {
            qos: 2,
            flags: Some(0x5),
            subject: Some("a.b".into()),
            mapped: Some("x.b".into()),
        };
        assert_eq!(
            staged.encode(),
            "NATS/1.0\r\nNmqtt-Pub:25\r\nNmqtt-Subject:a.b\r\nNmqtt-Mapped:x.b\r\n\r\n"
        );
        assert_eq!(
            PublishHeader::decode(staged.encode().as_bytes()),
            Some(staged)
        );
        assert_eq!(PublishHeader::decode(b"NATS/1.0\r\nOther:1\r\n\r\n"), None);
        assert_eq!(PublishHeader::decode(b""), None);
        assert_eq!(pubrel_headers(123), "NATS/1.0\r\nNmqtt-PubRel:123\r\n\r\n");
        assert_eq!(
            pubrel_packet_id(pubrel_headers(65535).as_bytes()),
            Some(65535)
        );
        assert_eq!(
            pubrel_packet_id(b"NATS/1.0\r\nNmqtt-PubRel:x\r\n\r\n"),
            None
        );
    }

    #[test]
    fn retained_messages() {
        let rm = RetainedMessage {
            topic: "sensors/temp".into(),
            subject: "sensors.temp".into(),
            flags: 0x3,
            origin: "S1".into(),
            source: "alice".into(),
            payload: Bytes::from_static(b"21.5"),
        };
        let headers = rm.encode_headers();
        assert_eq!(
            headers,
            "NATS/1.0\r\nNmqtt-RTopic:sensors/temp\r\nNmqtt-RFlags:3\r\nNmqtt-ROrigin:S1\r\nNmqtt-RSource:alice\r\n\r\n"
        );
        let back = RetainedMessage::decode(
            "$MQTT.rmsgs.sensors.temp",
            headers.as_bytes(),
            rm.payload.clone(),
        )
        .expect("valid");
        assert_eq!(back, rm);
        // Deletion: empty payload, marker before the flags.
        let del = RetainedMessage {
            payload: Bytes::new(),
            origin: String::new(),
            source: String::new(),
            ..rm.clone()
        };
        let headers = del.encode_headers();
        assert_eq!(
            headers,
            "NATS/1.0\r\nNmqtt-RTopic:sensors/temp\r\nNmqtt-RFlags:-3\r\n\r\n"
        );
        let back =
            RetainedMessage::decode("$MQTT.rmsgs.sensors.temp", headers.as_bytes(), Bytes::new())
                .expect("valid");
        assert_eq!(back, del);
        // Bad flags: not hex, QoS 3, a full nibble.
        for flags in ["zz", "7", "f", "-"] {
            let h = format!("NATS/1.0\r\nNmqtt-RFlags:{flags}\r\n\r\n");
            assert!(
                matches!(
                    RetainedMessage::decode("$MQTT.rmsgs.a", h.as_bytes(), Bytes::new()),
                    Err(StoreError::InvalidRetainFlags)
                ),
                "{flags}"
            );
        }
        assert!(matches!(
            RetainedMessage::decode("$MQTT.rmsgs.a", b"", Bytes::from_static(b"{}")),
            Err(StoreError::LegacyRetainedMessage)
        ));
        // The topic comes from the subject, escapes included.
        let h = "NATS/1.0\r\nNmqtt-RFlags:1\r\n\r\n";
        let rm = RetainedMessage::decode("$MQTT.rmsgs./.a//b", h.as_bytes(), Bytes::new())
            .expect("valid");
        assert_eq!(rm.topic, "/a.b");
    }

    #[test]
    fn header_values() {
        let h = b"NATS/1.0\r\nA: 1\r\nLong-Key :two words\r\n\r\nbody:x";
        assert_eq!(header_value(h, "A"), Some(&b"1"[..]));
        assert_eq!(header_value(h, "Long-Key"), Some(&b"two words"[..]));
        assert_eq!(header_value(h, "body"), None);
        assert_eq!(header_value(b"NATS/1.0 503\r\n\r\n", "A"), None);
        assert_eq!(header_value(b"HTTP/1.1\r\nA:1\r\n", "A"), None);
    }
}
