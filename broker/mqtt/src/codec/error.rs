//! Decode and encode errors. Every decode error says which MQTT 5.0 reason code the peer gets
//! (in a CONNACK if CONNECT was bad, else in a DISCONNECT) and which 3.1.1 CONNACK return
//! code, if any, nats-server sends for it; where nats-server has an error text for the same
//! fault, the message is that text, so logs read the same under both servers.

use std::fmt;

use thiserror::Error;

use super::packet::PacketType;
use super::properties::{PropertyContext, PropertyId};
use super::reason::ReasonCode;

/// The field being read or written, named as nats-server names it in its errors.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Field {
    PacketType,
    RemainingLength,
    ProtocolName,
    ProtocolLevel,
    ConnectFlags,
    KeepAlive,
    ClientId,
    WillTopic,
    WillMessage,
    UserName,
    Password,
    TopicName,
    PacketId,
    TopicFilter,
    SubscriptionOptions,
    ReasonCode,
    ConnAckFlags,
    PropertyLength,
    PropertyId,
    PropertyValue,
    UserPropertyName,
    UserPropertyValue,
    /// A string that came from elsewhere than a packet (see `MqttString::try_from_bytes`).
    Text,
}

impl fmt::Display for Field {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Field::PacketType => "packet type",
            Field::RemainingLength => "remaining length",
            Field::ProtocolName => "protocol name",
            Field::ProtocolLevel => "protocol level",
            Field::ConnectFlags => "flags",
            Field::KeepAlive => "keep alive",
            Field::ClientId => "client ID",
            Field::WillTopic => "Will topic",
            Field::WillMessage => "Will message",
            Field::UserName => "user name",
            Field::Password => "password",
            Field::TopicName => "topic",
            Field::PacketId => "packet identifier",
            Field::TopicFilter => "topic filter",
            Field::SubscriptionOptions => "QoS",
            Field::ReasonCode => "reason code",
            Field::ConnAckFlags => "connect acknowledge flags",
            Field::PropertyLength => "property length",
            Field::PropertyId => "property identifier",
            Field::PropertyValue => "property value",
            Field::UserPropertyName => "user property name",
            Field::UserPropertyValue => "user property value",
            Field::Text => "text",
        })
    }
}

/// Why bytes from a peer are not an MQTT packet. Any of these ends the connection; see
/// [`DecodeError::reason_code`] and [`DecodeError::v311_connack_code`] for what to send first,
/// or let [`super::Decoder::failure_reply`] pick.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum DecodeError {
    /// A remaining length or other variable byte integer with a fifth byte.
    #[error("malformed variable int")]
    MalformedVarInt,
    /// A variable byte integer in more bytes than its value needs (5.0 section 1.5.5).
    #[error("malformed variable int: not in the minimum number of bytes")]
    NonMinimalVarInt,
    /// Packet type 0, or 15 (AUTH) in 3.1.1.
    #[error("received unknown packet type {0}")]
    UnknownPacketType(u8),
    /// Something other than CONNECT before the connection has one. The number is the first
    /// byte with its flags cleared, as nats-server prints it.
    #[error("the first packet should be a CONNECT (16), got {0}")]
    FirstPacketNotConnect(u8),
    /// An HTTP request on the MQTT port.
    #[error("MQTT clients over websocket must connect to the Websocket port, not the MQTT port")]
    WebSocketOnMqttPort,
    /// Fixed-header flags that this packet type fixes to another value (2.1.3).
    #[error("invalid fixed header flags {flags:x} for packet type {packet_type:x}")]
    InvalidFixedHeaderFlags { packet_type: u8, flags: u8 },
    /// PUBLISH with both QoS bits set.
    #[error("QoS={0} is invalid in MQTT")]
    InvalidQoS(u8),
    /// PUBLISH at QoS 0 with the DUP flag (3.3.1-2).
    #[error("DUP flag set on a QoS 0 PUBLISH")]
    DupWithQoS0,
    /// The packet is larger than the maximum this side accepts.
    #[error("packet of {size} bytes exceeds the maximum packet size of {max} bytes")]
    PacketTooLarge { size: usize, max: u32 },
    /// A remaining length that the packet type does not allow (e.g. PINGREQ with a body).
    #[error("invalid remaining length {length} for packet type {packet_type:x}")]
    InvalidRemainingLength { packet_type: u8, length: usize },
    /// A field runs past the end of the packet.
    #[error("error reading {0}: unexpected EOF")]
    UnexpectedEof(Field),
    /// Bytes left over after the last field of a packet.
    #[error("{extra} unexpected bytes at the end of {packet}")]
    TrailingBytes { packet: PacketType, extra: usize },
    #[error("expected connect packet with protocol name \"MQTT\", got {0:?}")]
    InvalidProtocolName(String),
    /// MQTT 3.1 ("MQIsdp").
    #[error("older protocol \"MQIsdp\" not supported")]
    OlderProtocol,
    /// A protocol level other than 4 (3.1.1) or 5 (5.0).
    #[error("unacceptable protocol version of {0}")]
    UnsupportedProtocolLevel(u8),
    #[error("connect flags reserved bit not set to 0")]
    ConnectReservedFlag,
    #[error("if Will flag is set to 0, Will QoS must be 0 too, got {0}")]
    WillQoSWithoutWill(u8),
    #[error("if Will flag is set to 0, Will Retain flag must be 0 too")]
    WillRetainWithoutWill,
    #[error("if Will flag is set to 1, Will QoS can be 0, 1 or 2, got {0}")]
    InvalidWillQoS(u8),
    /// 3.1.1 only (3.1.2-22); 5.0 allows a password without a user name.
    #[error("password flag set but username flag is not")]
    PasswordWithoutUserName,
    /// 3.1.1 only (3.1.3-7); a 5.0 server assigns an identifier instead.
    #[error("when client ID is empty, clean session flag must be set to 1")]
    EmptyClientIdNeedsCleanSession,
    #[error("invalid utf8 for {0}")]
    InvalidUtf8(Field),
    #[error("invalid null character in {0}")]
    NullCharacter(Field),
    #[error("empty Will topic not allowed")]
    EmptyWillTopic,
    /// A PUBLISH without a topic (in 5.0: without a topic and without a topic alias).
    #[error("topic cannot be empty")]
    EmptyTopic,
    #[error("topic filter cannot be empty")]
    EmptyTopicFilter,
    /// Packet identifier 0 where one is required (2.2.1-3).
    #[error("packet identifier cannot be 0")]
    ZeroPacketId,
    /// SUBSCRIBE options with reserved bits or QoS 3.
    #[error("subscribe QoS value must be 0, 1 or 2, got {0}")]
    InvalidSubscriptionOptions(u8),
    /// Retain Handling 3 (5.0 3.8.3.1).
    #[error("retain handling must be 0, 1 or 2, got 3")]
    InvalidRetainHandling,
    /// No Local on a shared subscription (5.0 3.8.3-4).
    #[error("no local option is not allowed on a shared subscription")]
    NoLocalOnSharedSubscription,
    #[error("subscribe protocol must contain at least 1 topic filter")]
    NoSubscribeFilters,
    #[error("unsubscribe protocol must contain at least 1 topic filter")]
    NoUnsubscribeFilters,
    #[error("connect acknowledge flags reserved bits not set to 0")]
    ConnAckReservedFlags,
    /// CONNACK with Session Present and a refusal (3.2.2-4 in 3.1.1, 3.2.2-6 in 5.0).
    #[error("session present set on a refused connection")]
    SessionPresentOnRefusal,
    #[error("reason code 0x{code:02x} is not valid in {packet}")]
    InvalidReasonCode { packet: PacketType, code: u8 },
    #[error("unknown property identifier 0x{0:02x}")]
    UnknownProperty(u32),
    #[error("property {id} is not allowed in {context}")]
    PropertyNotAllowed {
        id: PropertyId,
        context: PropertyContext,
    },
    #[error("property {0} must not appear more than once")]
    DuplicateProperty(PropertyId),
    #[error("invalid value {value} for property {id}")]
    InvalidPropertyValue { id: PropertyId, value: u32 },
    #[error("authentication data without an authentication method")]
    AuthDataWithoutMethod,
}

impl DecodeError {
    /// The MQTT 5.0 reason code for this fault (4.13: Malformed Packet for what cannot be
    /// parsed, Protocol Error for what parses but breaks a rule).
    pub fn reason_code(&self) -> ReasonCode {
        use DecodeError::*;
        match self {
            PacketTooLarge { .. } => ReasonCode::PacketTooLarge,
            UnsupportedProtocolLevel(_) | InvalidProtocolName(_) | OlderProtocol => {
                ReasonCode::UnsupportedProtocolVersion
            }
            FirstPacketNotConnect(_)
            | WebSocketOnMqttPort
            | ZeroPacketId
            | InvalidRetainHandling
            | NoLocalOnSharedSubscription
            | NoSubscribeFilters
            | NoUnsubscribeFilters
            | SessionPresentOnRefusal
            | InvalidReasonCode { .. }
            | PropertyNotAllowed { .. }
            | DuplicateProperty(_)
            | InvalidPropertyValue { .. }
            | AuthDataWithoutMethod
            | EmptyTopic => ReasonCode::ProtocolError,
            MalformedVarInt
            | NonMinimalVarInt
            | UnknownPacketType(_)
            | InvalidFixedHeaderFlags { .. }
            | InvalidQoS(_)
            | DupWithQoS0
            | InvalidRemainingLength { .. }
            | UnexpectedEof(_)
            | TrailingBytes { .. }
            | ConnectReservedFlag
            | WillQoSWithoutWill(_)
            | WillRetainWithoutWill
            | InvalidWillQoS(_)
            | PasswordWithoutUserName
            | EmptyClientIdNeedsCleanSession
            | InvalidUtf8(_)
            | NullCharacter(_)
            | EmptyWillTopic
            | EmptyTopicFilter
            | InvalidSubscriptionOptions(_)
            | ConnAckReservedFlags
            | UnknownProperty(_) => ReasonCode::MalformedPacket,
        }
    }

    /// The 3.1.1 CONNACK return code nats-server answers a bad CONNECT with, or `None` where it
    /// closes the connection without a CONNACK (every other fault, and every fault after
    /// CONNECT: 3.1.1 has no DISCONNECT from the server).
    pub fn v311_connack_code(&self) -> Option<u8> {
        match self {
            DecodeError::UnsupportedProtocolLevel(_) => Some(0x01),
            DecodeError::EmptyClientIdNeedsCleanSession => Some(0x02),
            DecodeError::InvalidUtf8(Field::ClientId)
            | DecodeError::NullCharacter(Field::ClientId) => Some(0x02),
            DecodeError::InvalidUtf8(Field::UserName)
            | DecodeError::NullCharacter(Field::UserName) => Some(0x04),
            _ => None,
        }
    }
}

/// Why a packet cannot be encoded. These are bugs or limits in what the session layer asked
/// for, never peer input; the encoder refuses rather than write bytes the peer would reject.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum EncodeError {
    #[error("{field} of {len} bytes is longer than 65535")]
    TooLong { field: Field, len: usize },
    #[error("{0} contains a null character")]
    NullCharacter(Field),
    #[error("packet remaining length {0} exceeds 268435455")]
    PacketTooLarge(usize),
    #[error("{0} cannot be expressed in MQTT 3.1.1")]
    NotInV311(&'static str),
    #[error("CONNECT for protocol level {packet} encoded for a connection at level {connection}")]
    VersionMismatch { packet: u8, connection: u8 },
    #[error("property {id} is not allowed in {context}")]
    PropertyNotAllowed {
        id: PropertyId,
        context: PropertyContext,
    },
    #[error("property {0} must not appear more than once")]
    DuplicateProperty(PropertyId),
    #[error("invalid value {value} for property {id}")]
    InvalidPropertyValue { id: PropertyId, value: u32 },
    #[error("authentication data without an authentication method")]
    AuthDataWithoutMethod,
    #[error("reason code {code} is not valid in {packet}")]
    InvalidReasonCode {
        packet: PacketType,
        code: ReasonCode,
    },
    #[error("{0} needs a non-zero packet identifier")]
    ZeroPacketId(PacketType),
    #[error("a QoS 0 PUBLISH has no packet identifier, got {0}")]
    PacketIdAtQoS0(u16),
    #[error("{0} needs at least one topic filter")]
    NoFilters(PacketType),
    #[error("{0} must not be empty")]
    Empty(Field),
    #[error("session present set on a refused connection")]
    SessionPresentOnRefusal,
    #[error("no local option is not allowed on a shared subscription")]
    NoLocalOnSharedSubscription,
    #[error("a DUP flag on a QoS 0 PUBLISH")]
    DupWithQoS0,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reason_codes_for_the_named_faults() {
        assert_eq!(
            DecodeError::MalformedVarInt.reason_code(),
            ReasonCode::MalformedPacket
        );
        assert_eq!(
            DecodeError::PacketTooLarge { size: 10, max: 5 }.reason_code(),
            ReasonCode::PacketTooLarge
        );
        assert_eq!(
            DecodeError::UnsupportedProtocolLevel(6).reason_code(),
            ReasonCode::UnsupportedProtocolVersion
        );
        assert_eq!(
            DecodeError::DuplicateProperty(PropertyId::TopicAlias).reason_code(),
            ReasonCode::ProtocolError
        );
        assert_eq!(
            DecodeError::UnexpectedEof(Field::PropertyValue).reason_code(),
            ReasonCode::MalformedPacket
        );
        assert_eq!(
            DecodeError::InvalidQoS(3).reason_code(),
            ReasonCode::MalformedPacket
        );
    }

    #[test]
    fn v311_connack_codes_as_nats_server() {
        assert_eq!(
            DecodeError::UnsupportedProtocolLevel(3).v311_connack_code(),
            Some(1)
        );
        assert_eq!(
            DecodeError::EmptyClientIdNeedsCleanSession.v311_connack_code(),
            Some(2)
        );
        assert_eq!(
            DecodeError::InvalidUtf8(Field::ClientId).v311_connack_code(),
            Some(2)
        );
        assert_eq!(
            DecodeError::NullCharacter(Field::UserName).v311_connack_code(),
            Some(4)
        );
        assert_eq!(DecodeError::ConnectReservedFlag.v311_connack_code(), None);
        assert_eq!(
            DecodeError::InvalidProtocolName("BAD".into()).v311_connack_code(),
            None
        );
    }

    #[test]
    fn messages_match_nats_server_texts() {
        assert_eq!(
            DecodeError::UnsupportedProtocolLevel(10).to_string(),
            "unacceptable protocol version of 10"
        );
        assert_eq!(
            DecodeError::EmptyClientIdNeedsCleanSession.to_string(),
            "when client ID is empty, clean session flag must be set to 1"
        );
        assert_eq!(
            DecodeError::UnexpectedEof(Field::PacketId).to_string(),
            "error reading packet identifier: unexpected EOF"
        );
        assert_eq!(
            DecodeError::InvalidUtf8(Field::TopicFilter).to_string(),
            "invalid utf8 for topic filter"
        );
        assert_eq!(
            DecodeError::InvalidFixedHeaderFlags {
                packet_type: 0x80,
                flags: 3
            }
            .to_string(),
            "invalid fixed header flags 3 for packet type 80"
        );
    }
}
