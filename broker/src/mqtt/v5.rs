//! What MQTT 5.0 adds on top of the 3.1.1 session, and how it travels through NATS.
//!
//! A message keeps its 5.0 properties across the subject space in headers, so they
//! survive the core path, JetStream storage and redelivery alike:
//!
//! | property | carried as |
//! | --- | --- |
//! | Message Expiry Interval | `Nmqtt-Expires: <Unix ms deadline>`; dropped when past, the rest sent on (3.3.2-5, 3.3.2-6) |
//! | Response Topic | the NATS reply subject (and `Nmqtt-Resp` on stored copies, whose reply is the ack subject) |
//! | Correlation Data | `Nmqtt-Corr: <base64>` |
//! | retain flag, for Retain As Published | the flags after the QoS in `Nmqtt-Pub` (nats-server's form) |
//! | the publishing connection, for No Local | `Nmqtt-NL: <session nonce>`, only while that session has a No Local subscription |
//!
//! Client → server topic aliases (3.3.2.3.4) are resolved per connection, and server →
//! client ones are given when the client's CONNECT allows them (Topic Alias Maximum); the
//! client's Receive Maximum bounds the QoS 1/2 deliveries in flight (3.3.4-9) and its
//! Maximum Packet Size the packets sent (3.1.2-24, 3.1.2-25).

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use bytes::Bytes;
use natrix_mqtt::store::{self, header_value};
use natrix_mqtt::{MqttString, Properties, Publish, ReasonCode, topic};
use rustc_hash::FxHashMap;

use crate::server::internal::InternalMsg;

/// How many topic aliases a client may set (CONNACK Topic Alias Maximum).
pub const TOPIC_ALIAS_MAXIMUM: u16 = 64;

const HEADER_EXPIRES: &str = "Nmqtt-Expires";
const HEADER_RESPONSE: &str = "Nmqtt-Resp";
const HEADER_CORRELATION: &str = "Nmqtt-Corr";
const HEADER_NO_LOCAL: &str = "Nmqtt-NL";

/// A subscription's 5.0 options (all off for 3.1.1).
#[derive(Debug, Clone, Copy, Default)]
pub struct SubOptions {
    pub no_local: bool,
    pub retain_as_published: bool,
    /// The Subscription Identifier, 0 for none.
    pub id: u32,
}

/// A connection's 5.0 state.
pub struct V5 {
    aliases: FxHashMap<u16, MqttString>,
    /// The client's Topic Alias Maximum: how many aliases the server may give (0: none).
    out_alias_maximum: u16,
    /// Topic → the alias the client was told for it.
    out_aliases: FxHashMap<String, u16>,
    /// The client's Receive Maximum (65,535 when absent, 3.1.2.11.3).
    pub receive_maximum: u16,
    /// The client's Maximum Packet Size, if it set one.
    pub maximum_packet_size: Option<u32>,
    /// This connection's mark for No Local.
    pub origin: String,
    /// No Local subscriptions held: while there are any, publishes carry the mark.
    pub no_local_subs: usize,
    /// QoS 1/2 deliveries waiting for room under the Receive Maximum.
    pub waiting: VecDeque<InternalMsg>,
}

impl V5 {
    pub fn new(connect: &Properties) -> Self {
        V5 {
            aliases: FxHashMap::default(),
            out_alias_maximum: connect.topic_alias_maximum.unwrap_or(0),
            out_aliases: FxHashMap::default(),
            receive_maximum: connect.receive_maximum.unwrap_or(u16::MAX).max(1),
            maximum_packet_size: connect.maximum_packet_size,
            origin: crate::server::new_nonce(),
            no_local_subs: 0,
            waiting: VecDeque::new(),
        }
    }

    /// Resolves a PUBLISH's topic alias: a topic with an alias sets it, an empty topic
    /// uses it. `Err` is the DISCONNECT reason.
    pub fn resolve_alias(&mut self, p: &mut Publish) -> Result<(), ReasonCode> {
        let Some(alias) = p.properties.topic_alias.take() else {
            return Ok(());
        };
        // 3.3.2-8, 3.3.2-9: 0 and anything above the maximum are invalid.
        if alias == 0 || alias > TOPIC_ALIAS_MAXIMUM {
            return Err(ReasonCode::TopicAliasInvalid);
        }
        if p.topic.is_empty() {
            // An alias the client never set: Protocol Error (3.3.4 "Topic Alias mapping").
            p.topic = self
                .aliases
                .get(&alias)
                .cloned()
                .ok_or(ReasonCode::ProtocolError)?;
        } else {
            self.aliases.insert(alias, p.topic.clone());
        }
        Ok(())
    }
}

impl V5 {
    /// The alias for a PUBLISH of `topic` to the client (3.3.2.3.4), and whether the
    /// client has it already (then the topic is left out). Aliases are given first come,
    /// first served, up to the client's Topic Alias Maximum and never given to another
    /// topic, so a mapping the client holds never changes under it; a topic past the
    /// maximum goes out in full. Repeated topics (a sensor's readings) then cost two bytes
    /// instead of the whole name. `None`: no alias.
    pub fn outgoing_alias(&self, topic: &str) -> Option<(u16, bool)> {
        if let Some(alias) = self.out_aliases.get(topic) {
            return Some((*alias, true));
        }
        let given = self.out_aliases.len();
        if given >= usize::from(self.out_alias_maximum) {
            return None;
        }
        u16::try_from(given + 1).ok().map(|alias| (alias, false))
    }

    /// A PUBLISH that set `alias` for `topic` was sent: later ones may use the alias alone.
    pub fn alias_sent(&mut self, topic: &str, alias: u16) {
        self.out_aliases.insert(topic.to_owned(), alias);
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// The header block of a message an MQTT client published: `Nmqtt-Pub` (QoS, and the
/// flags when retained), the 5.0 properties above, then the user properties (`user` is
/// a whole block or empty). Empty for a plain QoS 0 message without properties, so a
/// NATS subscriber sees what it sees from nats-server.
pub fn publish_headers(
    qos: u8,
    retain: bool,
    p: &Properties,
    response_subject: Option<&str>,
    no_local_origin: Option<&str>,
    user: &[u8],
) -> Vec<u8> {
    let mut h = String::new();
    if qos > 0 || retain {
        let _ = write!(h, "{}:{qos}", store::HEADER_PUB);
        if retain {
            let _ = write!(h, "{:x}", (qos << 1) | 1);
        }
        h.push_str("\r\n");
    }
    if let Some(secs) = p.message_expiry_interval {
        let deadline = now_ms().saturating_add(u64::from(secs) * 1000);
        let _ = write!(h, "{HEADER_EXPIRES}:{deadline}\r\n");
    }
    if let Some(r) = response_subject {
        let _ = write!(h, "{HEADER_RESPONSE}:{r}\r\n");
    }
    if let Some(c) = &p.correlation_data {
        let _ = write!(
            h,
            "{HEADER_CORRELATION}:{}\r\n",
            base64::engine::general_purpose::STANDARD.encode(c)
        );
    }
    if let Some(o) = no_local_origin {
        let _ = write!(h, "{HEADER_NO_LOCAL}:{o}\r\n");
    }
    let user_fields = user.strip_prefix(b"NATS/1.0\r\n");
    if h.is_empty() && user_fields.is_none() {
        return Vec::new();
    }
    let mut out = b"NATS/1.0\r\n".to_vec();
    out.extend_from_slice(h.as_bytes());
    match user_fields {
        Some(fields) => out.extend_from_slice(fields),
        None => out.extend_from_slice(b"\r\n"),
    }
    out
}

/// What a delivery's headers say, for the PUBLISH it becomes.
pub struct Delivered {
    /// Past its Message Expiry Interval: not sent (3.3.2-5).
    pub expired: bool,
    /// Published by this connection, for a No Local subscription (3.8.3-3).
    pub own: bool,
    /// Published with the retain flag.
    pub retained: bool,
}

/// Reads the 5.0 marks of a delivery and fills the PUBLISH properties a 5.0 subscriber
/// gets: remaining expiry, Response Topic (from `reply`, a NATS reply subject, or the
/// stored one), Correlation Data, Subscription Identifier, user properties.
pub fn delivery(
    m: &InternalMsg,
    reply: Option<&str>,
    opts: SubOptions,
    origin: Option<&str>,
    v5: bool,
    props: &mut Properties,
) -> Delivered {
    let h = &m.headers[..];
    let text = |key| header_value(h, key).and_then(|v| std::str::from_utf8(v).ok());
    let mut d = Delivered {
        expired: false,
        own: false,
        retained: false,
    };
    if let Some(deadline) = text(HEADER_EXPIRES).and_then(|v| v.parse::<u64>().ok()) {
        let now = now_ms();
        if deadline <= now {
            d.expired = true;
            return d;
        }
        // 3.3.2-6: the interval received less the time the message waited, rounded up.
        props.message_expiry_interval =
            Some(u32::try_from((deadline - now).div_ceil(1000)).unwrap_or(u32::MAX));
    }
    d.own = opts.no_local && origin.is_some_and(|o| text(HEADER_NO_LOCAL) == Some(o));
    d.retained = store::PublishHeader::decode(h)
        .and_then(|p| p.flags)
        .is_some_and(|f| f & 1 == 1);
    if !v5 {
        props.message_expiry_interval = None;
        return d;
    }
    let response = reply
        .filter(|r| !r.starts_with("$JS.ACK."))
        .or_else(|| text(HEADER_RESPONSE));
    if let Some(r) = response {
        props.response_topic =
            MqttString::try_from_bytes(Bytes::from(topic::subject_to_topic(r).into_owned())).ok();
    }
    if let Some(c) = text(HEADER_CORRELATION) {
        props.correlation_data = base64::engine::general_purpose::STANDARD
            .decode(c)
            .ok()
            .map(Bytes::from);
    }
    if opts.id > 0 {
        props.subscription_identifiers = vec![opts.id];
    }
    if !h.is_empty() {
        props.user_properties = super::user_properties_of(h)
            .into_iter()
            .filter(|(k, _)| !k.as_str().starts_with("Nmqtt-"))
            .collect();
    }
    d
}
