//! The control packets as plain structs, shared by 3.1.1 and 5.0: a 3.1.1 packet is a 5.0
//! packet whose properties are empty and whose reason codes are the few 3.1.1 can express.
//! Which version a packet is read or written in is the connection's state (the [`Decoder`]'s,
//! the caller's on encode), not the packet's; only CONNECT names its own level.
//!
//! [`Decoder`]: super::Decoder

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::error::EncodeError;
use super::properties::Properties;
use super::reason::ReasonCode;
use super::string::MqttString;
use super::wire::{VARINT_MAX, put_varint, varint_len};

/// The protocol level in CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum ProtocolVersion {
    /// MQTT 3.1.1, level 4: what nats-server speaks.
    V311,
    /// MQTT 5.0, level 5.
    V5,
}

impl ProtocolVersion {
    pub fn level(self) -> u8 {
        match self {
            ProtocolVersion::V311 => 4,
            ProtocolVersion::V5 => 5,
        }
    }

    pub fn from_level(level: u8) -> Option<Self> {
        match level {
            4 => Some(ProtocolVersion::V311),
            5 => Some(ProtocolVersion::V5),
            _ => None,
        }
    }
}

/// Quality of service.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Default)]
pub enum QoS {
    #[default]
    AtMostOnce = 0,
    AtLeastOnce = 1,
    ExactlyOnce = 2,
}

impl QoS {
    pub fn from_u8(value: u8) -> Option<QoS> {
        match value {
            0 => Some(QoS::AtMostOnce),
            1 => Some(QoS::AtLeastOnce),
            2 => Some(QoS::ExactlyOnce),
            _ => None,
        }
    }

    pub fn as_u8(self) -> u8 {
        self as u8
    }
}

/// The control packet type: the high nibble of the first byte.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PacketType {
    Connect = 1,
    ConnAck = 2,
    Publish = 3,
    PubAck = 4,
    PubRec = 5,
    PubRel = 6,
    PubComp = 7,
    Subscribe = 8,
    SubAck = 9,
    Unsubscribe = 10,
    UnsubAck = 11,
    PingReq = 12,
    PingResp = 13,
    Disconnect = 14,
    /// 5.0 only; type 15 is reserved in 3.1.1.
    Auth = 15,
}

impl PacketType {
    pub fn from_nibble(nibble: u8) -> Option<PacketType> {
        use PacketType::*;
        Some(match nibble {
            1 => Connect,
            2 => ConnAck,
            3 => Publish,
            4 => PubAck,
            5 => PubRec,
            6 => PubRel,
            7 => PubComp,
            8 => Subscribe,
            9 => SubAck,
            10 => Unsubscribe,
            11 => UnsubAck,
            12 => PingReq,
            13 => PingResp,
            14 => Disconnect,
            15 => Auth,
            _ => return None,
        })
    }

    /// The fixed-header flags every type but PUBLISH must carry (2.1.3).
    pub fn required_flags(self) -> Option<u8> {
        match self {
            PacketType::Publish => None,
            PacketType::PubRel | PacketType::Subscribe | PacketType::Unsubscribe => Some(0b0010),
            _ => Some(0),
        }
    }

    /// Whether a client sends this packet to a server (the others go the other way; AUTH and
    /// DISCONNECT go both ways). Which direction is accepted is the session's rule: the
    /// codec decodes every type so that it also serves clients and tests.
    pub fn sent_by_client(self) -> bool {
        !matches!(
            self,
            PacketType::ConnAck | PacketType::SubAck | PacketType::UnsubAck | PacketType::PingResp
        )
    }
}

impl fmt::Display for PacketType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        use PacketType::*;
        f.write_str(match self {
            Connect => "CONNECT",
            ConnAck => "CONNACK",
            Publish => "PUBLISH",
            PubAck => "PUBACK",
            PubRec => "PUBREC",
            PubRel => "PUBREL",
            PubComp => "PUBCOMP",
            Subscribe => "SUBSCRIBE",
            SubAck => "SUBACK",
            Unsubscribe => "UNSUBSCRIBE",
            UnsubAck => "UNSUBACK",
            PingReq => "PINGREQ",
            PingResp => "PINGRESP",
            Disconnect => "DISCONNECT",
            Auth => "AUTH",
        })
    }
}

/// CONNECT (3.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Connect {
    pub protocol_version: ProtocolVersion,
    /// Clean Session in 3.1.1, Clean Start in 5.0.
    pub clean_start: bool,
    pub keep_alive: u16,
    /// May be empty: then 3.1.1 requires `clean_start` and the server assigns one.
    pub client_id: MqttString,
    pub will: Option<LastWill>,
    pub username: Option<MqttString>,
    /// Binary data (3.1.3.5), not text: any bytes.
    pub password: Option<Bytes>,
    pub properties: Properties,
}

/// The will message in CONNECT.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastWill {
    pub topic: MqttString,
    pub payload: Bytes,
    pub qos: QoS,
    pub retain: bool,
    /// 5.0: payload format, expiry, content type, response topic, correlation data, user
    /// properties and the Will Delay Interval.
    pub properties: Properties,
}

/// CONNACK (3.2). In 3.1.1 `reason` is one of the codes [`ReasonCode::to_v311_connack`] maps.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConnAck {
    pub session_present: bool,
    pub reason: ReasonCode,
    pub properties: Properties,
}

/// PUBLISH (3.3). The payload is a slice of the buffer it was read from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Publish {
    pub dup: bool,
    pub qos: QoS,
    pub retain: bool,
    /// May be empty in 5.0 when the properties carry a Topic Alias.
    pub topic: MqttString,
    /// 0 at QoS 0 (no identifier on the wire), non-zero otherwise.
    pub packet_id: u16,
    pub properties: Properties,
    pub payload: Bytes,
}

/// PUBACK, PUBREC, PUBREL and PUBCOMP (3.4 to 3.7): a packet identifier and, in 5.0, a reason
/// code and properties.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PubResponse {
    pub packet_id: u16,
    pub reason: ReasonCode,
    pub properties: Properties,
}

impl PubResponse {
    /// A successful response without properties: all 3.1.1 knows, and 2 bytes in 5.0 too.
    pub fn new(packet_id: u16) -> Self {
        PubResponse {
            packet_id,
            reason: ReasonCode::Success,
            properties: Properties::default(),
        }
    }
}

/// Retain Handling in 5.0 subscription options (3.8.3.1).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub enum RetainHandling {
    /// Send retained messages when the subscription is made.
    #[default]
    SendAtSubscribe = 0,
    /// Send them only if the subscription did not exist yet.
    SendIfNew = 1,
    /// Do not send them.
    DoNotSend = 2,
}

/// The options byte after each SUBSCRIBE filter; 3.1.1 has only the QoS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct SubscriptionOptions {
    pub qos: QoS,
    pub no_local: bool,
    pub retain_as_published: bool,
    pub retain_handling: RetainHandling,
}

impl SubscriptionOptions {
    pub(crate) fn to_byte(self) -> u8 {
        self.qos.as_u8()
            | (u8::from(self.no_local) << 2)
            | (u8::from(self.retain_as_published) << 3)
            | ((self.retain_handling as u8) << 4)
    }
}

/// One filter of a SUBSCRIBE.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubscribeFilter {
    pub filter: MqttString,
    pub options: SubscriptionOptions,
}

/// SUBSCRIBE (3.8).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscribe {
    pub packet_id: u16,
    pub filters: Vec<SubscribeFilter>,
    pub properties: Properties,
}

/// SUBACK (3.9): one reason code per filter, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubAck {
    pub packet_id: u16,
    pub reasons: Vec<ReasonCode>,
    pub properties: Properties,
}

/// UNSUBSCRIBE (3.10).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unsubscribe {
    pub packet_id: u16,
    pub filters: Vec<MqttString>,
    pub properties: Properties,
}

/// UNSUBACK (3.11). 3.1.1 carries no reason codes: `reasons` is empty there.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct UnsubAck {
    pub packet_id: u16,
    pub reasons: Vec<ReasonCode>,
    pub properties: Properties,
}

/// DISCONNECT (3.14). In 3.1.1 only the client sends it, empty.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Disconnect {
    pub reason: ReasonCode,
    pub properties: Properties,
}

/// AUTH (3.15), 5.0 only.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Auth {
    pub reason: ReasonCode,
    pub properties: Properties,
}

/// Any control packet. CONNECT is boxed: it is the largest (two property blocks) and comes
/// once per connection, so the other variants need not carry its size around.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Packet {
    Connect(Box<Connect>),
    ConnAck(ConnAck),
    Publish(Publish),
    PubAck(PubResponse),
    PubRec(PubResponse),
    PubRel(PubResponse),
    PubComp(PubResponse),
    Subscribe(Subscribe),
    SubAck(SubAck),
    Unsubscribe(Unsubscribe),
    UnsubAck(UnsubAck),
    PingReq,
    PingResp,
    Disconnect(Disconnect),
    Auth(Auth),
}

/// Sizes worked out (and checked) before anything is written, so that writing cannot fail
/// and needs no intermediate buffer.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Sizes {
    /// The remaining length.
    pub body: usize,
    /// The property block's length without its prefix (0 in 3.1.1).
    pub props: usize,
    /// The will's property block (CONNECT only).
    pub will_props: usize,
}

impl Packet {
    pub fn packet_type(&self) -> PacketType {
        match self {
            Packet::Connect(_) => PacketType::Connect,
            Packet::ConnAck(_) => PacketType::ConnAck,
            Packet::Publish(_) => PacketType::Publish,
            Packet::PubAck(_) => PacketType::PubAck,
            Packet::PubRec(_) => PacketType::PubRec,
            Packet::PubRel(_) => PacketType::PubRel,
            Packet::PubComp(_) => PacketType::PubComp,
            Packet::Subscribe(_) => PacketType::Subscribe,
            Packet::SubAck(_) => PacketType::SubAck,
            Packet::Unsubscribe(_) => PacketType::Unsubscribe,
            Packet::UnsubAck(_) => PacketType::UnsubAck,
            Packet::PingReq => PacketType::PingReq,
            Packet::PingResp => PacketType::PingResp,
            Packet::Disconnect(_) => PacketType::Disconnect,
            Packet::Auth(_) => PacketType::Auth,
        }
    }

    fn first_byte(&self) -> u8 {
        match self {
            Packet::Publish(p) => p.first_byte(),
            other => {
                let flags = other.packet_type().required_flags().unwrap_or(0);
                ((other.packet_type() as u8) << 4) | flags
            }
        }
    }

    fn sizes(&self, version: ProtocolVersion) -> Result<Sizes, EncodeError> {
        match self {
            Packet::Connect(p) => p.sizes(version),
            Packet::ConnAck(p) => p.sizes(version),
            Packet::Publish(p) => p.sizes(version),
            Packet::PubAck(p) => p.sizes(version, PacketType::PubAck),
            Packet::PubRec(p) => p.sizes(version, PacketType::PubRec),
            Packet::PubRel(p) => p.sizes(version, PacketType::PubRel),
            Packet::PubComp(p) => p.sizes(version, PacketType::PubComp),
            Packet::Subscribe(p) => p.sizes(version),
            Packet::SubAck(p) => p.sizes(version),
            Packet::Unsubscribe(p) => p.sizes(version),
            Packet::UnsubAck(p) => p.sizes(version),
            Packet::PingReq | Packet::PingResp => Ok(Sizes::default()),
            Packet::Disconnect(p) => p.sizes(version),
            Packet::Auth(p) => p.sizes(version),
        }
    }

    /// The number of bytes [`Packet::encode`] writes: the session layer compares it with the
    /// peer's Maximum Packet Size before sending (3.1.2-24: too large is not sent at all).
    pub fn encoded_len(&self, version: ProtocolVersion) -> Result<usize, EncodeError> {
        let body = self.sizes(version)?.body;
        check_body(body)?;
        Ok(1 + varint_len(body as u32) + body)
    }

    /// Appends the packet to `buf`, reserving its size once. Refuses, writing nothing, what
    /// the peer would have to refuse (see [`EncodeError`]).
    pub fn encode(&self, version: ProtocolVersion, buf: &mut BytesMut) -> Result<(), EncodeError> {
        let sizes = self.sizes(version)?;
        check_body(sizes.body)?;
        buf.reserve(1 + varint_len(sizes.body as u32) + sizes.body);
        let start = buf.len();
        buf.put_u8(self.first_byte());
        put_varint(buf, sizes.body as u32);
        let body_start = buf.len();
        match self {
            Packet::Connect(p) => p.write(version, &sizes, buf),
            Packet::ConnAck(p) => p.write(version, &sizes, buf),
            Packet::Publish(p) => p.write(version, &sizes, buf),
            Packet::PubAck(p) | Packet::PubRec(p) | Packet::PubRel(p) | Packet::PubComp(p) => {
                p.write(version, &sizes, buf)
            }
            Packet::Subscribe(p) => p.write(version, &sizes, buf),
            Packet::SubAck(p) => p.write(version, &sizes, buf),
            Packet::Unsubscribe(p) => p.write(version, &sizes, buf),
            Packet::UnsubAck(p) => p.write(version, &sizes, buf),
            Packet::PingReq | Packet::PingResp => {}
            Packet::Disconnect(p) => p.write(version, &sizes, buf),
            Packet::Auth(p) => p.write(version, &sizes, buf),
        }
        debug_assert_eq!(buf.len() - body_start, sizes.body, "{}", self.packet_type());
        debug_assert!(buf.len() > start);
        Ok(())
    }
}

fn check_body(body: usize) -> Result<(), EncodeError> {
    if body > VARINT_MAX as usize {
        return Err(EncodeError::PacketTooLarge(body));
    }
    Ok(())
}

/// The size of a property block for `version`: nothing in 3.1.1 (where properties must be
/// empty), else checked for `context` and returned as (with prefix, without prefix).
pub(crate) fn props_size(
    properties: &Properties,
    context: super::properties::PropertyContext,
    version: ProtocolVersion,
) -> Result<(usize, usize), EncodeError> {
    match version {
        ProtocolVersion::V311 => {
            if properties.is_empty() {
                Ok((0, 0))
            } else {
                Err(EncodeError::NotInV311("properties"))
            }
        }
        ProtocolVersion::V5 => {
            properties.validate(context)?;
            let body = properties.body_len()?;
            check_body(body)?;
            Ok((varint_len(body as u32) + body, body))
        }
    }
}

/// Writes a property block in 5.0; nothing in 3.1.1.
pub(crate) fn write_props(
    properties: &Properties,
    body_len: usize,
    version: ProtocolVersion,
    buf: &mut BytesMut,
) {
    if version == ProtocolVersion::V5 {
        properties.write(buf, body_len);
    }
}

/// Refuses packet identifier 0 where one is required.
pub(crate) fn check_packet_id(packet_id: u16, packet: PacketType) -> Result<(), EncodeError> {
    if packet_id == 0 {
        return Err(EncodeError::ZeroPacketId(packet));
    }
    Ok(())
}
