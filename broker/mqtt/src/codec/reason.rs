//! MQTT 5.0 reason codes, which packet may carry which, and how the few that 3.1.1 knows are
//! spelled there (CONNACK return codes and SUBACK return codes).
//!
//! One vocabulary for both versions: the session layer decides with 5.0 words ("Not authorized",
//! "Packet too large") and the encoder turns them into 3.1.1 bytes where 3.1.1 has a word for it,
//! or refuses (CONNACK) / generalises to 0x80 "Failure" (SUBACK) where it has not.

use std::fmt;

use super::packet::PacketType;

/// An MQTT 5.0 reason code (specification 2.4). `0x00` is called Success, Normal
/// disconnection or Granted QoS 0 depending on the packet; the aliases are associated consts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
#[repr(u8)]
pub enum ReasonCode {
    #[default]
    Success = 0x00,
    GrantedQoS1 = 0x01,
    GrantedQoS2 = 0x02,
    DisconnectWithWillMessage = 0x04,
    NoMatchingSubscribers = 0x10,
    NoSubscriptionExisted = 0x11,
    ContinueAuthentication = 0x18,
    ReAuthenticate = 0x19,
    UnspecifiedError = 0x80,
    MalformedPacket = 0x81,
    ProtocolError = 0x82,
    ImplementationSpecificError = 0x83,
    UnsupportedProtocolVersion = 0x84,
    ClientIdentifierNotValid = 0x85,
    BadUserNameOrPassword = 0x86,
    NotAuthorized = 0x87,
    ServerUnavailable = 0x88,
    ServerBusy = 0x89,
    Banned = 0x8A,
    ServerShuttingDown = 0x8B,
    BadAuthenticationMethod = 0x8C,
    KeepAliveTimeout = 0x8D,
    SessionTakenOver = 0x8E,
    TopicFilterInvalid = 0x8F,
    TopicNameInvalid = 0x90,
    PacketIdentifierInUse = 0x91,
    PacketIdentifierNotFound = 0x92,
    ReceiveMaximumExceeded = 0x93,
    TopicAliasInvalid = 0x94,
    PacketTooLarge = 0x95,
    MessageRateTooHigh = 0x96,
    QuotaExceeded = 0x97,
    AdministrativeAction = 0x98,
    PayloadFormatInvalid = 0x99,
    RetainNotSupported = 0x9A,
    QoSNotSupported = 0x9B,
    UseAnotherServer = 0x9C,
    ServerMoved = 0x9D,
    SharedSubscriptionsNotSupported = 0x9E,
    ConnectionRateExceeded = 0x9F,
    MaximumConnectTime = 0xA0,
    SubscriptionIdentifiersNotSupported = 0xA1,
    WildcardSubscriptionsNotSupported = 0xA2,
}

/// The return code nats-server sends in a 3.1.1 CONNACK when `reject_qos2_pub` refuses a QoS 2
/// will (`mqttConnAckRCQoS2WillRejected`). Not in the 3.1.1 specification; natrix reads and
/// writes it as [`ReasonCode::QoSNotSupported`] so its 3.1.1 clients see the same byte.
pub const V311_CONNACK_QOS2_WILL_REJECTED: u8 = 0x10;

/// Reason codes allowed in each packet (specification table 2-6 and the packet sections).
const CONNACK: &[u8] = &[
    0x00, 0x80, 0x81, 0x82, 0x83, 0x84, 0x85, 0x86, 0x87, 0x88, 0x89, 0x8A, 0x8C, 0x90, 0x95, 0x97,
    0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9F,
];
const PUBACK_PUBREC: &[u8] = &[0x00, 0x10, 0x80, 0x83, 0x87, 0x90, 0x91, 0x97, 0x99];
const PUBREL_PUBCOMP: &[u8] = &[0x00, 0x92];
const SUBACK: &[u8] = &[
    0x00, 0x01, 0x02, 0x80, 0x83, 0x87, 0x8F, 0x91, 0x97, 0x9E, 0xA1, 0xA2,
];
const UNSUBACK: &[u8] = &[0x00, 0x11, 0x80, 0x83, 0x87, 0x8F, 0x91];
const DISCONNECT: &[u8] = &[
    0x00, 0x04, 0x80, 0x81, 0x82, 0x83, 0x87, 0x89, 0x8B, 0x8D, 0x8E, 0x8F, 0x90, 0x93, 0x94, 0x95,
    0x96, 0x97, 0x98, 0x99, 0x9A, 0x9B, 0x9C, 0x9D, 0x9E, 0x9F, 0xA0, 0xA1, 0xA2,
];
const AUTH: &[u8] = &[0x00, 0x18, 0x19];

impl ReasonCode {
    /// 0x00 in DISCONNECT.
    pub const NORMAL_DISCONNECTION: ReasonCode = ReasonCode::Success;
    /// 0x00 in SUBACK.
    pub const GRANTED_QOS0: ReasonCode = ReasonCode::Success;

    /// Every reason code, in numeric order (for tests and generators).
    pub const ALL: [ReasonCode; 43] = [
        ReasonCode::Success,
        ReasonCode::GrantedQoS1,
        ReasonCode::GrantedQoS2,
        ReasonCode::DisconnectWithWillMessage,
        ReasonCode::NoMatchingSubscribers,
        ReasonCode::NoSubscriptionExisted,
        ReasonCode::ContinueAuthentication,
        ReasonCode::ReAuthenticate,
        ReasonCode::UnspecifiedError,
        ReasonCode::MalformedPacket,
        ReasonCode::ProtocolError,
        ReasonCode::ImplementationSpecificError,
        ReasonCode::UnsupportedProtocolVersion,
        ReasonCode::ClientIdentifierNotValid,
        ReasonCode::BadUserNameOrPassword,
        ReasonCode::NotAuthorized,
        ReasonCode::ServerUnavailable,
        ReasonCode::ServerBusy,
        ReasonCode::Banned,
        ReasonCode::ServerShuttingDown,
        ReasonCode::BadAuthenticationMethod,
        ReasonCode::KeepAliveTimeout,
        ReasonCode::SessionTakenOver,
        ReasonCode::TopicFilterInvalid,
        ReasonCode::TopicNameInvalid,
        ReasonCode::PacketIdentifierInUse,
        ReasonCode::PacketIdentifierNotFound,
        ReasonCode::ReceiveMaximumExceeded,
        ReasonCode::TopicAliasInvalid,
        ReasonCode::PacketTooLarge,
        ReasonCode::MessageRateTooHigh,
        ReasonCode::QuotaExceeded,
        ReasonCode::AdministrativeAction,
        ReasonCode::PayloadFormatInvalid,
        ReasonCode::RetainNotSupported,
        ReasonCode::QoSNotSupported,
        ReasonCode::UseAnotherServer,
        ReasonCode::ServerMoved,
        ReasonCode::SharedSubscriptionsNotSupported,
        ReasonCode::ConnectionRateExceeded,
        ReasonCode::MaximumConnectTime,
        ReasonCode::SubscriptionIdentifiersNotSupported,
        ReasonCode::WildcardSubscriptionsNotSupported,
    ];

    /// The reason code with this byte value, if MQTT 5.0 defines one.
    pub fn from_u8(value: u8) -> Option<ReasonCode> {
        // ALL is sorted by value, so a binary search finds it.
        Self::ALL
            .binary_search_by_key(&value, |c| *c as u8)
            .ok()
            .map(|i| Self::ALL[i])
    }

    /// The byte on the wire in MQTT 5.0.
    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// True for 0x80 and above: the operation failed.
    pub fn is_error(self) -> bool {
        self.as_u8() >= 0x80
    }

    /// Whether MQTT 5.0 allows this reason code in a packet of this type. Packets without a
    /// reason code (CONNECT, PUBLISH, SUBSCRIBE, UNSUBSCRIBE, PINGREQ, PINGRESP) allow none.
    pub fn allowed_in(self, packet: PacketType) -> bool {
        let table = match packet {
            PacketType::ConnAck => CONNACK,
            PacketType::PubAck | PacketType::PubRec => PUBACK_PUBREC,
            PacketType::PubRel | PacketType::PubComp => PUBREL_PUBCOMP,
            PacketType::SubAck => SUBACK,
            PacketType::UnsubAck => UNSUBACK,
            PacketType::Disconnect => DISCONNECT,
            PacketType::Auth => AUTH,
            _ => &[],
        };
        table.contains(&self.as_u8())
    }

    /// The 3.1.1 CONNACK return code for this reason, where 3.1.1 has one (section 3.2.2.3),
    /// plus nats-server's 0x10 for a refused QoS 2 will.
    pub fn to_v311_connack(self) -> Option<u8> {
        Some(match self {
            ReasonCode::Success => 0x00,
            ReasonCode::UnsupportedProtocolVersion => 0x01,
            ReasonCode::ClientIdentifierNotValid => 0x02,
            ReasonCode::ServerUnavailable => 0x03,
            ReasonCode::BadUserNameOrPassword => 0x04,
            ReasonCode::NotAuthorized => 0x05,
            ReasonCode::QoSNotSupported => V311_CONNACK_QOS2_WILL_REJECTED,
            _ => return None,
        })
    }

    /// The reason code for a 3.1.1 CONNACK return code.
    pub fn from_v311_connack(code: u8) -> Option<ReasonCode> {
        Some(match code {
            0x00 => ReasonCode::Success,
            0x01 => ReasonCode::UnsupportedProtocolVersion,
            0x02 => ReasonCode::ClientIdentifierNotValid,
            0x03 => ReasonCode::ServerUnavailable,
            0x04 => ReasonCode::BadUserNameOrPassword,
            0x05 => ReasonCode::NotAuthorized,
            V311_CONNACK_QOS2_WILL_REJECTED => ReasonCode::QoSNotSupported,
            _ => return None,
        })
    }

    /// The 3.1.1 SUBACK return code: the granted QoS, or 0x80 "Failure" for every 5.0 error,
    /// since 3.1.1 cannot say why a subscription failed.
    pub fn to_v311_suback(self) -> Option<u8> {
        match self {
            ReasonCode::Success => Some(0x00),
            ReasonCode::GrantedQoS1 => Some(0x01),
            ReasonCode::GrantedQoS2 => Some(0x02),
            code if code.is_error() && code.allowed_in(PacketType::SubAck) => Some(0x80),
            _ => None,
        }
    }

    /// The reason code for a 3.1.1 SUBACK return code.
    pub fn from_v311_suback(code: u8) -> Option<ReasonCode> {
        match code {
            0x00 => Some(ReasonCode::Success),
            0x01 => Some(ReasonCode::GrantedQoS1),
            0x02 => Some(ReasonCode::GrantedQoS2),
            0x80 => Some(ReasonCode::UnspecifiedError),
            _ => None,
        }
    }

    /// The name the specification gives this code (for logs and error texts).
    pub fn name(self) -> &'static str {
        match self {
            ReasonCode::Success => "Success",
            ReasonCode::GrantedQoS1 => "Granted QoS 1",
            ReasonCode::GrantedQoS2 => "Granted QoS 2",
            ReasonCode::DisconnectWithWillMessage => "Disconnect with Will Message",
            ReasonCode::NoMatchingSubscribers => "No matching subscribers",
            ReasonCode::NoSubscriptionExisted => "No subscription existed",
            ReasonCode::ContinueAuthentication => "Continue authentication",
            ReasonCode::ReAuthenticate => "Re-authenticate",
            ReasonCode::UnspecifiedError => "Unspecified error",
            ReasonCode::MalformedPacket => "Malformed Packet",
            ReasonCode::ProtocolError => "Protocol Error",
            ReasonCode::ImplementationSpecificError => "Implementation specific error",
            ReasonCode::UnsupportedProtocolVersion => "Unsupported Protocol Version",
            ReasonCode::ClientIdentifierNotValid => "Client Identifier not valid",
            ReasonCode::BadUserNameOrPassword => "Bad User Name or Password",
            ReasonCode::NotAuthorized => "Not authorized",
            ReasonCode::ServerUnavailable => "Server unavailable",
            ReasonCode::ServerBusy => "Server busy",
            ReasonCode::Banned => "Banned",
            ReasonCode::ServerShuttingDown => "Server shutting down",
            ReasonCode::BadAuthenticationMethod => "Bad authentication method",
            ReasonCode::KeepAliveTimeout => "Keep Alive timeout",
            ReasonCode::SessionTakenOver => "Session taken over",
            ReasonCode::TopicFilterInvalid => "Topic Filter invalid",
            ReasonCode::TopicNameInvalid => "Topic Name invalid",
            ReasonCode::PacketIdentifierInUse => "Packet Identifier in use",
            ReasonCode::PacketIdentifierNotFound => "Packet Identifier not found",
            ReasonCode::ReceiveMaximumExceeded => "Receive Maximum exceeded",
            ReasonCode::TopicAliasInvalid => "Topic Alias invalid",
            ReasonCode::PacketTooLarge => "Packet too large",
            ReasonCode::MessageRateTooHigh => "Message rate too high",
            ReasonCode::QuotaExceeded => "Quota exceeded",
            ReasonCode::AdministrativeAction => "Administrative action",
            ReasonCode::PayloadFormatInvalid => "Payload format invalid",
            ReasonCode::RetainNotSupported => "Retain not supported",
            ReasonCode::QoSNotSupported => "QoS not supported",
            ReasonCode::UseAnotherServer => "Use another server",
            ReasonCode::ServerMoved => "Server moved",
            ReasonCode::SharedSubscriptionsNotSupported => "Shared Subscriptions not supported",
            ReasonCode::ConnectionRateExceeded => "Connection rate exceeded",
            ReasonCode::MaximumConnectTime => "Maximum connect time",
            ReasonCode::SubscriptionIdentifiersNotSupported => {
                "Subscription Identifiers not supported"
            }
            ReasonCode::WildcardSubscriptionsNotSupported => "Wildcard Subscriptions not supported",
        }
    }
}

impl fmt::Display for ReasonCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02X})", self.name(), self.as_u8())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_byte_maps_to_at_most_one_code_and_back() {
        let mut known = 0;
        for b in 0..=255u8 {
            if let Some(code) = ReasonCode::from_u8(b) {
                assert_eq!(code.as_u8(), b);
                known += 1;
            }
        }
        assert_eq!(known, ReasonCode::ALL.len());
        assert_eq!(ReasonCode::from_u8(0x03), None);
        assert_eq!(ReasonCode::from_u8(0xA3), None);
    }

    #[test]
    fn tables_follow_the_specification() {
        use PacketType::*;
        assert!(ReasonCode::UnsupportedProtocolVersion.allowed_in(ConnAck));
        assert!(!ReasonCode::UnsupportedProtocolVersion.allowed_in(Disconnect));
        assert!(ReasonCode::MalformedPacket.allowed_in(Disconnect));
        assert!(ReasonCode::PacketTooLarge.allowed_in(ConnAck));
        assert!(ReasonCode::PacketTooLarge.allowed_in(Disconnect));
        assert!(ReasonCode::NoMatchingSubscribers.allowed_in(PubAck));
        assert!(!ReasonCode::NoMatchingSubscribers.allowed_in(PubComp));
        assert!(ReasonCode::PacketIdentifierNotFound.allowed_in(PubRel));
        assert!(ReasonCode::GrantedQoS2.allowed_in(SubAck));
        assert!(!ReasonCode::GrantedQoS2.allowed_in(UnsubAck));
        assert!(ReasonCode::NoSubscriptionExisted.allowed_in(UnsubAck));
        assert!(ReasonCode::ContinueAuthentication.allowed_in(Auth));
        assert!(!ReasonCode::UnspecifiedError.allowed_in(Auth));
        assert!(!ReasonCode::Success.allowed_in(Publish));
        // The same table entries as the specification's count per packet.
        let count = |p| ReasonCode::ALL.iter().filter(|c| c.allowed_in(p)).count();
        assert_eq!(count(ConnAck), 22);
        assert_eq!(count(PubAck), 9);
        assert_eq!(count(PubRel), 2);
        assert_eq!(count(SubAck), 12);
        assert_eq!(count(UnsubAck), 7);
        assert_eq!(count(Disconnect), 29);
        assert_eq!(count(Auth), 3);
    }

    #[test]
    fn v311_return_codes() {
        for code in 0..=5u8 {
            let rc = ReasonCode::from_v311_connack(code).expect("3.1.1 defines 0 to 5");
            assert_eq!(rc.to_v311_connack(), Some(code));
        }
        assert_eq!(
            ReasonCode::from_v311_connack(0x10),
            Some(ReasonCode::QoSNotSupported)
        );
        assert_eq!(ReasonCode::from_v311_connack(6), None);
        assert_eq!(ReasonCode::Banned.to_v311_connack(), None);
        assert_eq!(ReasonCode::NotAuthorized.to_v311_suback(), Some(0x80));
        assert_eq!(ReasonCode::GrantedQoS1.to_v311_suback(), Some(0x01));
        assert_eq!(ReasonCode::MalformedPacket.to_v311_suback(), None);
        assert_eq!(ReasonCode::from_v311_suback(0x87), None);
    }
}
