//! MQTT 5.0 properties (specification 2.2.2): every identifier with its data type and the
//! packets that may carry it, and [`Properties`], one struct for all packets.
//!
//! One struct rather than one per packet keeps the codec small and lets the session layer
//! copy properties across (a will's properties become a PUBLISH's); the table below is what
//! keeps each packet honest: the decoder refuses a property the packet may not carry (Protocol
//! Error) and the encoder refuses to write one. Values a property may not take (a Receive
//! Maximum of 0, a Subscription Identifier of 0, a boolean byte of 2, ...) are Protocol Errors.

use std::fmt;

use bytes::{BufMut, Bytes, BytesMut};

use super::error::{DecodeError, EncodeError, Field};
use super::string::MqttString;
use super::wire::{Reader, VARINT_MAX, binary_len, put_binary, put_varint, string_len, varint_len};

/// A property identifier (2.2.2.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[repr(u8)]
pub enum PropertyId {
    PayloadFormatIndicator = 0x01,
    MessageExpiryInterval = 0x02,
    ContentType = 0x03,
    ResponseTopic = 0x08,
    CorrelationData = 0x09,
    SubscriptionIdentifier = 0x0B,
    SessionExpiryInterval = 0x11,
    AssignedClientIdentifier = 0x12,
    ServerKeepAlive = 0x13,
    AuthenticationMethod = 0x15,
    AuthenticationData = 0x16,
    RequestProblemInformation = 0x17,
    WillDelayInterval = 0x18,
    RequestResponseInformation = 0x19,
    ResponseInformation = 0x1A,
    ServerReference = 0x1C,
    ReasonString = 0x1F,
    ReceiveMaximum = 0x21,
    TopicAliasMaximum = 0x22,
    TopicAlias = 0x23,
    MaximumQoS = 0x24,
    RetainAvailable = 0x25,
    UserProperty = 0x26,
    MaximumPacketSize = 0x27,
    WildcardSubscriptionAvailable = 0x28,
    SubscriptionIdentifierAvailable = 0x29,
    SharedSubscriptionAvailable = 0x2A,
}

/// How a property's value is encoded (1.5).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PropertyType {
    Byte,
    TwoByteInteger,
    FourByteInteger,
    VariableByteInteger,
    Utf8String,
    BinaryData,
    Utf8StringPair,
}

/// Where properties appear: each packet that has a property block, plus the will properties
/// inside CONNECT.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum PropertyContext {
    Connect,
    Will,
    ConnAck,
    Publish,
    PubAck,
    PubRec,
    PubRel,
    PubComp,
    Subscribe,
    SubAck,
    Unsubscribe,
    UnsubAck,
    Disconnect,
    Auth,
}

impl PropertyContext {
    const fn bit(self) -> u16 {
        1 << self as u16
    }

    pub const ALL: [PropertyContext; 14] = [
        PropertyContext::Connect,
        PropertyContext::Will,
        PropertyContext::ConnAck,
        PropertyContext::Publish,
        PropertyContext::PubAck,
        PropertyContext::PubRec,
        PropertyContext::PubRel,
        PropertyContext::PubComp,
        PropertyContext::Subscribe,
        PropertyContext::SubAck,
        PropertyContext::Unsubscribe,
        PropertyContext::UnsubAck,
        PropertyContext::Disconnect,
        PropertyContext::Auth,
    ];
}

impl fmt::Display for PropertyContext {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            PropertyContext::Connect => "CONNECT",
            PropertyContext::Will => "will properties",
            PropertyContext::ConnAck => "CONNACK",
            PropertyContext::Publish => "PUBLISH",
            PropertyContext::PubAck => "PUBACK",
            PropertyContext::PubRec => "PUBREC",
            PropertyContext::PubRel => "PUBREL",
            PropertyContext::PubComp => "PUBCOMP",
            PropertyContext::Subscribe => "SUBSCRIBE",
            PropertyContext::SubAck => "SUBACK",
            PropertyContext::Unsubscribe => "UNSUBSCRIBE",
            PropertyContext::UnsubAck => "UNSUBACK",
            PropertyContext::Disconnect => "DISCONNECT",
            PropertyContext::Auth => "AUTH",
        })
    }
}

use PropertyContext as C;

const MESSAGE: u16 = C::Publish.bit() | C::Will.bit();
const ACKS: u16 = C::ConnAck.bit()
    | C::PubAck.bit()
    | C::PubRec.bit()
    | C::PubRel.bit()
    | C::PubComp.bit()
    | C::SubAck.bit()
    | C::UnsubAck.bit()
    | C::Disconnect.bit()
    | C::Auth.bit();
const EVERYWHERE: u16 = (1 << PropertyContext::ALL.len()) - 1;

impl PropertyId {
    pub const ALL: [PropertyId; 27] = [
        PropertyId::PayloadFormatIndicator,
        PropertyId::MessageExpiryInterval,
        PropertyId::ContentType,
        PropertyId::ResponseTopic,
        PropertyId::CorrelationData,
        PropertyId::SubscriptionIdentifier,
        PropertyId::SessionExpiryInterval,
        PropertyId::AssignedClientIdentifier,
        PropertyId::ServerKeepAlive,
        PropertyId::AuthenticationMethod,
        PropertyId::AuthenticationData,
        PropertyId::RequestProblemInformation,
        PropertyId::WillDelayInterval,
        PropertyId::RequestResponseInformation,
        PropertyId::ResponseInformation,
        PropertyId::ServerReference,
        PropertyId::ReasonString,
        PropertyId::ReceiveMaximum,
        PropertyId::TopicAliasMaximum,
        PropertyId::TopicAlias,
        PropertyId::MaximumQoS,
        PropertyId::RetainAvailable,
        PropertyId::UserProperty,
        PropertyId::MaximumPacketSize,
        PropertyId::WildcardSubscriptionAvailable,
        PropertyId::SubscriptionIdentifierAvailable,
        PropertyId::SharedSubscriptionAvailable,
    ];

    pub fn from_u32(value: u32) -> Option<PropertyId> {
        Self::ALL.iter().copied().find(|id| *id as u32 == value)
    }

    pub fn as_u8(self) -> u8 {
        self as u8
    }

    /// The value's encoding.
    pub fn value_type(self) -> PropertyType {
        use PropertyId::*;
        use PropertyType::*;
        match self {
            PayloadFormatIndicator
            | RequestProblemInformation
            | RequestResponseInformation
            | MaximumQoS
            | RetainAvailable
            | WildcardSubscriptionAvailable
            | SubscriptionIdentifierAvailable
            | SharedSubscriptionAvailable => Byte,
            ServerKeepAlive | ReceiveMaximum | TopicAliasMaximum | TopicAlias => TwoByteInteger,
            MessageExpiryInterval
            | SessionExpiryInterval
            | WillDelayInterval
            | MaximumPacketSize => FourByteInteger,
            SubscriptionIdentifier => VariableByteInteger,
            ContentType
            | ResponseTopic
            | AssignedClientIdentifier
            | AuthenticationMethod
            | ResponseInformation
            | ServerReference
            | ReasonString => Utf8String,
            CorrelationData | AuthenticationData => BinaryData,
            UserProperty => Utf8StringPair,
        }
    }

    fn contexts(self) -> u16 {
        use PropertyId::*;
        match self {
            PayloadFormatIndicator
            | MessageExpiryInterval
            | ContentType
            | ResponseTopic
            | CorrelationData => MESSAGE,
            SubscriptionIdentifier => C::Publish.bit() | C::Subscribe.bit(),
            SessionExpiryInterval => C::Connect.bit() | C::ConnAck.bit() | C::Disconnect.bit(),
            AssignedClientIdentifier
            | ServerKeepAlive
            | ResponseInformation
            | MaximumQoS
            | RetainAvailable
            | WildcardSubscriptionAvailable
            | SubscriptionIdentifierAvailable
            | SharedSubscriptionAvailable => C::ConnAck.bit(),
            AuthenticationMethod | AuthenticationData => {
                C::Connect.bit() | C::ConnAck.bit() | C::Auth.bit()
            }
            RequestProblemInformation | RequestResponseInformation => C::Connect.bit(),
            WillDelayInterval => C::Will.bit(),
            ServerReference => C::ConnAck.bit() | C::Disconnect.bit(),
            ReasonString => ACKS,
            ReceiveMaximum | TopicAliasMaximum | MaximumPacketSize => {
                C::Connect.bit() | C::ConnAck.bit()
            }
            TopicAlias => C::Publish.bit(),
            UserProperty => EVERYWHERE,
        }
    }

    /// Whether the specification allows this property in that packet.
    pub fn allowed_in(self, context: PropertyContext) -> bool {
        self.contexts() & context.bit() != 0
    }

    /// Whether the property may appear more than once (User Property anywhere, Subscription
    /// Identifier in a PUBLISH that matched several subscriptions).
    pub fn repeatable_in(self, context: PropertyContext) -> bool {
        match self {
            PropertyId::UserProperty => true,
            PropertyId::SubscriptionIdentifier => context == PropertyContext::Publish,
            _ => false,
        }
    }

    pub fn name(self) -> &'static str {
        use PropertyId::*;
        match self {
            PayloadFormatIndicator => "Payload Format Indicator",
            MessageExpiryInterval => "Message Expiry Interval",
            ContentType => "Content Type",
            ResponseTopic => "Response Topic",
            CorrelationData => "Correlation Data",
            SubscriptionIdentifier => "Subscription Identifier",
            SessionExpiryInterval => "Session Expiry Interval",
            AssignedClientIdentifier => "Assigned Client Identifier",
            ServerKeepAlive => "Server Keep Alive",
            AuthenticationMethod => "Authentication Method",
            AuthenticationData => "Authentication Data",
            RequestProblemInformation => "Request Problem Information",
            WillDelayInterval => "Will Delay Interval",
            RequestResponseInformation => "Request Response Information",
            ResponseInformation => "Response Information",
            ServerReference => "Server Reference",
            ReasonString => "Reason String",
            ReceiveMaximum => "Receive Maximum",
            TopicAliasMaximum => "Topic Alias Maximum",
            TopicAlias => "Topic Alias",
            MaximumQoS => "Maximum QoS",
            RetainAvailable => "Retain Available",
            UserProperty => "User Property",
            MaximumPacketSize => "Maximum Packet Size",
            WildcardSubscriptionAvailable => "Wildcard Subscription Available",
            SubscriptionIdentifierAvailable => "Subscription Identifier Available",
            SharedSubscriptionAvailable => "Shared Subscription Available",
        }
    }
}

impl fmt::Display for PropertyId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} (0x{:02X})", self.name(), self.as_u8())
    }
}

/// The properties of one packet (or of a will). Unset is `None` / empty; user properties keep
/// their order and may repeat names (3.3.2.3.7).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Properties {
    pub payload_format_indicator: Option<u8>,
    pub message_expiry_interval: Option<u32>,
    pub content_type: Option<MqttString>,
    pub response_topic: Option<MqttString>,
    pub correlation_data: Option<Bytes>,
    /// Once in SUBSCRIBE; in a PUBLISH to a client, one per matching subscription.
    pub subscription_identifiers: Vec<u32>,
    pub session_expiry_interval: Option<u32>,
    pub assigned_client_identifier: Option<MqttString>,
    pub server_keep_alive: Option<u16>,
    pub authentication_method: Option<MqttString>,
    pub authentication_data: Option<Bytes>,
    pub request_problem_information: Option<u8>,
    pub will_delay_interval: Option<u32>,
    pub request_response_information: Option<u8>,
    pub response_information: Option<MqttString>,
    pub server_reference: Option<MqttString>,
    pub reason_string: Option<MqttString>,
    pub receive_maximum: Option<u16>,
    pub topic_alias_maximum: Option<u16>,
    pub topic_alias: Option<u16>,
    pub maximum_qos: Option<u8>,
    pub retain_available: Option<u8>,
    pub user_properties: Vec<(MqttString, MqttString)>,
    pub maximum_packet_size: Option<u32>,
    pub wildcard_subscription_available: Option<u8>,
    pub subscription_identifier_available: Option<u8>,
    pub shared_subscription_available: Option<u8>,
}

/// Sets an `Option` property once; a second occurrence is a Protocol Error (2.2.2.2).
fn set_once<T>(slot: &mut Option<T>, id: PropertyId, value: T) -> Result<(), DecodeError> {
    if slot.is_some() {
        return Err(DecodeError::DuplicateProperty(id));
    }
    *slot = Some(value);
    Ok(())
}

/// Why a property value is refused: (identifier, value) of the first offender.
type BadValue = (PropertyId, u32);

impl Properties {
    /// No property set: the common case, and then a 5.0 packet carries a single zero byte.
    pub fn is_empty(&self) -> bool {
        *self == Properties::default()
    }

    /// Every property that is set, as its identifier (user properties and subscription
    /// identifiers once per value).
    fn set_ids(&self) -> impl Iterator<Item = PropertyId> + '_ {
        use PropertyId::*;
        let single = [
            (
                PayloadFormatIndicator,
                self.payload_format_indicator.is_some(),
            ),
            (
                MessageExpiryInterval,
                self.message_expiry_interval.is_some(),
            ),
            (ContentType, self.content_type.is_some()),
            (ResponseTopic, self.response_topic.is_some()),
            (CorrelationData, self.correlation_data.is_some()),
            (
                SessionExpiryInterval,
                self.session_expiry_interval.is_some(),
            ),
            (
                AssignedClientIdentifier,
                self.assigned_client_identifier.is_some(),
            ),
            (ServerKeepAlive, self.server_keep_alive.is_some()),
            (AuthenticationMethod, self.authentication_method.is_some()),
            (AuthenticationData, self.authentication_data.is_some()),
            (
                RequestProblemInformation,
                self.request_problem_information.is_some(),
            ),
            (WillDelayInterval, self.will_delay_interval.is_some()),
            (
                RequestResponseInformation,
                self.request_response_information.is_some(),
            ),
            (ResponseInformation, self.response_information.is_some()),
            (ServerReference, self.server_reference.is_some()),
            (ReasonString, self.reason_string.is_some()),
            (ReceiveMaximum, self.receive_maximum.is_some()),
            (TopicAliasMaximum, self.topic_alias_maximum.is_some()),
            (TopicAlias, self.topic_alias.is_some()),
            (MaximumQoS, self.maximum_qos.is_some()),
            (RetainAvailable, self.retain_available.is_some()),
            (MaximumPacketSize, self.maximum_packet_size.is_some()),
            (
                WildcardSubscriptionAvailable,
                self.wildcard_subscription_available.is_some(),
            ),
            (
                SubscriptionIdentifierAvailable,
                self.subscription_identifier_available.is_some(),
            ),
            (
                SharedSubscriptionAvailable,
                self.shared_subscription_available.is_some(),
            ),
        ];
        single
            .into_iter()
            .filter_map(|(id, set)| set.then_some(id))
            .chain(
                self.subscription_identifiers
                    .iter()
                    .map(|_| SubscriptionIdentifier),
            )
            .chain(self.user_properties.iter().map(|_| UserProperty))
    }

    /// Values outside what the specification allows, whatever the packet.
    fn bad_value(&self) -> Option<BadValue> {
        use PropertyId::*;
        let bool_bytes = [
            (PayloadFormatIndicator, self.payload_format_indicator),
            (RequestProblemInformation, self.request_problem_information),
            (
                RequestResponseInformation,
                self.request_response_information,
            ),
            (MaximumQoS, self.maximum_qos),
            (RetainAvailable, self.retain_available),
            (
                WildcardSubscriptionAvailable,
                self.wildcard_subscription_available,
            ),
            (
                SubscriptionIdentifierAvailable,
                self.subscription_identifier_available,
            ),
            (
                SharedSubscriptionAvailable,
                self.shared_subscription_available,
            ),
        ];
        for (id, value) in bool_bytes {
            if let Some(v) = value
                && v > 1
            {
                return Some((id, u32::from(v)));
            }
        }
        let non_zero = [
            (ReceiveMaximum, self.receive_maximum.map(u32::from)),
            (TopicAlias, self.topic_alias.map(u32::from)),
            (MaximumPacketSize, self.maximum_packet_size),
        ];
        for (id, value) in non_zero {
            if value == Some(0) {
                return Some((id, 0));
            }
        }
        self.subscription_identifiers
            .iter()
            .find(|&&v| v == 0 || v > VARINT_MAX)
            .map(|&v| (SubscriptionIdentifier, v))
    }

    /// Checks these properties for `context` as the encoder must: allowed there, once where
    /// once is the rule, values in range.
    pub fn validate(&self, context: PropertyContext) -> Result<(), EncodeError> {
        for id in self.set_ids() {
            if !id.allowed_in(context) {
                return Err(EncodeError::PropertyNotAllowed { id, context });
            }
        }
        if !PropertyId::SubscriptionIdentifier.repeatable_in(context)
            && self.subscription_identifiers.len() > 1
        {
            return Err(EncodeError::DuplicateProperty(
                PropertyId::SubscriptionIdentifier,
            ));
        }
        if let Some((id, value)) = self.bad_value() {
            return Err(EncodeError::InvalidPropertyValue { id, value });
        }
        if self.authentication_data.is_some() && self.authentication_method.is_none() {
            return Err(EncodeError::AuthDataWithoutMethod);
        }
        Ok(())
    }

    /// Reads a property length and the properties after it.
    pub(crate) fn decode(r: &mut Reader, context: PropertyContext) -> Result<Self, DecodeError> {
        let len = r.varint(Field::PropertyLength)?;
        let mut r = Reader::new(r.take(len as usize, Field::PropertyLength)?);
        let mut p = Properties::default();
        while r.has_more() {
            let raw = r.varint(Field::PropertyId)?;
            let id = PropertyId::from_u32(raw).ok_or(DecodeError::UnknownProperty(raw))?;
            if !id.allowed_in(context) {
                return Err(DecodeError::PropertyNotAllowed { id, context });
            }
            let v = Field::PropertyValue;
            use PropertyId::*;
            match id {
                PayloadFormatIndicator => set_once(&mut p.payload_format_indicator, id, r.u8(v)?)?,
                MessageExpiryInterval => set_once(&mut p.message_expiry_interval, id, r.u32(v)?)?,
                ContentType => set_once(&mut p.content_type, id, r.string(v)?)?,
                ResponseTopic => set_once(&mut p.response_topic, id, r.string(v)?)?,
                CorrelationData => set_once(&mut p.correlation_data, id, r.binary(v)?)?,
                SubscriptionIdentifier => {
                    let value = r.varint(v)?;
                    if !id.repeatable_in(context) && !p.subscription_identifiers.is_empty() {
                        return Err(DecodeError::DuplicateProperty(id));
                    }
                    p.subscription_identifiers.push(value);
                }
                SessionExpiryInterval => set_once(&mut p.session_expiry_interval, id, r.u32(v)?)?,
                AssignedClientIdentifier => {
                    set_once(&mut p.assigned_client_identifier, id, r.string(v)?)?
                }
                ServerKeepAlive => set_once(&mut p.server_keep_alive, id, r.u16(v)?)?,
                AuthenticationMethod => set_once(&mut p.authentication_method, id, r.string(v)?)?,
                AuthenticationData => set_once(&mut p.authentication_data, id, r.binary(v)?)?,
                RequestProblemInformation => {
                    set_once(&mut p.request_problem_information, id, r.u8(v)?)?
                }
                WillDelayInterval => set_once(&mut p.will_delay_interval, id, r.u32(v)?)?,
                RequestResponseInformation => {
                    set_once(&mut p.request_response_information, id, r.u8(v)?)?
                }
                ResponseInformation => set_once(&mut p.response_information, id, r.string(v)?)?,
                ServerReference => set_once(&mut p.server_reference, id, r.string(v)?)?,
                ReasonString => set_once(&mut p.reason_string, id, r.string(v)?)?,
                ReceiveMaximum => set_once(&mut p.receive_maximum, id, r.u16(v)?)?,
                TopicAliasMaximum => set_once(&mut p.topic_alias_maximum, id, r.u16(v)?)?,
                TopicAlias => set_once(&mut p.topic_alias, id, r.u16(v)?)?,
                MaximumQoS => set_once(&mut p.maximum_qos, id, r.u8(v)?)?,
                RetainAvailable => set_once(&mut p.retain_available, id, r.u8(v)?)?,
                UserProperty => {
                    let name = r.string(Field::UserPropertyName)?;
                    let value = r.string(Field::UserPropertyValue)?;
                    p.user_properties.push((name, value));
                }
                MaximumPacketSize => set_once(&mut p.maximum_packet_size, id, r.u32(v)?)?,
                WildcardSubscriptionAvailable => {
                    set_once(&mut p.wildcard_subscription_available, id, r.u8(v)?)?
                }
                SubscriptionIdentifierAvailable => {
                    set_once(&mut p.subscription_identifier_available, id, r.u8(v)?)?
                }
                SharedSubscriptionAvailable => {
                    set_once(&mut p.shared_subscription_available, id, r.u8(v)?)?
                }
            }
        }
        if let Some((id, value)) = p.bad_value() {
            return Err(DecodeError::InvalidPropertyValue { id, value });
        }
        if p.authentication_data.is_some() && p.authentication_method.is_none() {
            return Err(DecodeError::AuthDataWithoutMethod);
        }
        Ok(p)
    }

    /// The size of the property block without its length prefix. Checks string lengths.
    pub(crate) fn body_len(&self) -> Result<usize, EncodeError> {
        let v = Field::PropertyValue;
        let byte = |o: &Option<u8>| o.map_or(0, |_| 2);
        let two = |o: &Option<u16>| o.map_or(0, |_| 3);
        let four = |o: &Option<u32>| o.map_or(0, |_| 5);
        let string = |o: &Option<MqttString>| -> Result<usize, EncodeError> {
            o.as_ref().map_or(Ok(0), |s| Ok(1 + string_len(s, v)?))
        };
        let binary = |o: &Option<Bytes>| -> Result<usize, EncodeError> {
            o.as_ref().map_or(Ok(0), |b| Ok(1 + binary_len(b, v)?))
        };
        let mut len = byte(&self.payload_format_indicator)
            + four(&self.message_expiry_interval)
            + string(&self.content_type)?
            + string(&self.response_topic)?
            + binary(&self.correlation_data)?
            + four(&self.session_expiry_interval)
            + string(&self.assigned_client_identifier)?
            + two(&self.server_keep_alive)
            + string(&self.authentication_method)?
            + binary(&self.authentication_data)?
            + byte(&self.request_problem_information)
            + four(&self.will_delay_interval)
            + byte(&self.request_response_information)
            + string(&self.response_information)?
            + string(&self.server_reference)?
            + string(&self.reason_string)?
            + two(&self.receive_maximum)
            + two(&self.topic_alias_maximum)
            + two(&self.topic_alias)
            + byte(&self.maximum_qos)
            + byte(&self.retain_available)
            + four(&self.maximum_packet_size)
            + byte(&self.wildcard_subscription_available)
            + byte(&self.subscription_identifier_available)
            + byte(&self.shared_subscription_available);
        for id in &self.subscription_identifiers {
            len += 1 + varint_len(*id);
        }
        for (name, value) in &self.user_properties {
            len += 1
                + string_len(name, Field::UserPropertyName)?
                + string_len(value, Field::UserPropertyValue)?;
        }
        Ok(len)
    }

    /// The size with the length prefix: what the property block adds to a 5.0 packet (the
    /// session layer drops a Reason String or user properties when a packet would exceed the
    /// peer's Maximum Packet Size, 3.4.2.2.2).
    pub fn encoded_len(&self) -> Result<usize, EncodeError> {
        let body = self.body_len()?;
        if body > VARINT_MAX as usize {
            return Err(EncodeError::PacketTooLarge(body));
        }
        Ok(varint_len(body as u32) + body)
    }

    /// Writes the length prefix and the properties. `body_len` was checked by the caller
    /// through `encoded_len`.
    pub(crate) fn write(&self, buf: &mut BytesMut, body_len: usize) {
        use PropertyId::*;
        put_varint(buf, body_len as u32);
        let put_u8 = |buf: &mut BytesMut, id: PropertyId, o: Option<u8>| {
            if let Some(v) = o {
                buf.put_u8(id.as_u8());
                buf.put_u8(v);
            }
        };
        let put_u16 = |buf: &mut BytesMut, id: PropertyId, o: Option<u16>| {
            if let Some(v) = o {
                buf.put_u8(id.as_u8());
                buf.put_u16(v);
            }
        };
        let put_u32 = |buf: &mut BytesMut, id: PropertyId, o: Option<u32>| {
            if let Some(v) = o {
                buf.put_u8(id.as_u8());
                buf.put_u32(v);
            }
        };
        let put_str = |buf: &mut BytesMut, id: PropertyId, o: &Option<MqttString>| {
            if let Some(s) = o {
                buf.put_u8(id.as_u8());
                put_binary(buf, s.as_bytes());
            }
        };
        let put_bin = |buf: &mut BytesMut, id: PropertyId, o: &Option<Bytes>| {
            if let Some(b) = o {
                buf.put_u8(id.as_u8());
                put_binary(buf, b);
            }
        };
        put_u8(buf, PayloadFormatIndicator, self.payload_format_indicator);
        put_u32(buf, MessageExpiryInterval, self.message_expiry_interval);
        put_str(buf, ContentType, &self.content_type);
        put_str(buf, ResponseTopic, &self.response_topic);
        put_bin(buf, CorrelationData, &self.correlation_data);
        for id in &self.subscription_identifiers {
            buf.put_u8(SubscriptionIdentifier.as_u8());
            put_varint(buf, *id);
        }
        put_u32(buf, SessionExpiryInterval, self.session_expiry_interval);
        put_str(
            buf,
            AssignedClientIdentifier,
            &self.assigned_client_identifier,
        );
        put_u16(buf, ServerKeepAlive, self.server_keep_alive);
        put_str(buf, AuthenticationMethod, &self.authentication_method);
        put_bin(buf, AuthenticationData, &self.authentication_data);
        put_u8(
            buf,
            RequestProblemInformation,
            self.request_problem_information,
        );
        put_u32(buf, WillDelayInterval, self.will_delay_interval);
        put_u8(
            buf,
            RequestResponseInformation,
            self.request_response_information,
        );
        put_str(buf, ResponseInformation, &self.response_information);
        put_str(buf, ServerReference, &self.server_reference);
        put_str(buf, ReasonString, &self.reason_string);
        put_u16(buf, ReceiveMaximum, self.receive_maximum);
        put_u16(buf, TopicAliasMaximum, self.topic_alias_maximum);
        put_u16(buf, TopicAlias, self.topic_alias);
        put_u8(buf, MaximumQoS, self.maximum_qos);
        put_u8(buf, RetainAvailable, self.retain_available);
        for (name, value) in &self.user_properties {
            buf.put_u8(UserProperty.as_u8());
            put_binary(buf, name.as_bytes());
            put_binary(buf, value.as_bytes());
        }
        put_u32(buf, MaximumPacketSize, self.maximum_packet_size);
        put_u8(
            buf,
            WildcardSubscriptionAvailable,
            self.wildcard_subscription_available,
        );
        put_u8(
            buf,
            SubscriptionIdentifierAvailable,
            self.subscription_identifier_available,
        );
        put_u8(
            buf,
            SharedSubscriptionAvailable,
            self.shared_subscription_available,
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn decode(bytes: &'static [u8], context: PropertyContext) -> Result<Properties, DecodeError> {
        Properties::decode(&mut Reader::new(Bytes::from_static(bytes)), context)
    }

    fn encode(p: &Properties) -> BytesMut {
        let mut buf = BytesMut::new();
        let len = p.body_len().expect("encodable");
        p.write(&mut buf, len);
        buf
    }

    #[test]
    fn table_matches_the_specification() {
        use PropertyContext::*;
        // Counts per packet from section 2.2.2.2 (user property included everywhere).
        let count = |c| PropertyId::ALL.iter().filter(|id| id.allowed_in(c)).count();
        assert_eq!(count(Connect), 9);
        assert_eq!(count(ConnAck), 17);
        assert_eq!(count(Publish), 8);
        assert_eq!(count(Will), 7);
        assert_eq!(count(PubAck), 2);
        assert_eq!(count(PubRel), 2);
        assert_eq!(count(Subscribe), 2);
        assert_eq!(count(SubAck), 2);
        assert_eq!(count(Unsubscribe), 1);
        assert_eq!(count(UnsubAck), 2);
        assert_eq!(count(Disconnect), 4);
        assert_eq!(count(Auth), 4);
        assert_eq!(
            PropertyId::MaximumPacketSize.value_type(),
            PropertyType::FourByteInteger
        );
        assert_eq!(
            PropertyId::SubscriptionIdentifier.value_type(),
            PropertyType::VariableByteInteger
        );
        for id in PropertyId::ALL {
            assert_eq!(PropertyId::from_u32(u32::from(id.as_u8())), Some(id));
        }
        assert_eq!(PropertyId::from_u32(0x04), None);
    }

    #[test]
    fn every_property_round_trips() {
        let p = Properties {
            payload_format_indicator: Some(1),
            message_expiry_interval: Some(60),
            content_type: Some("text/plain".into()),
            response_topic: Some("reply/here".into()),
            correlation_data: Some(Bytes::from_static(b"\x00\x01")),
            subscription_identifiers: vec![1, VARINT_MAX],
            session_expiry_interval: Some(u32::MAX),
            assigned_client_identifier: Some("auto-1".into()),
            server_keep_alive: Some(30),
            authentication_method: Some("SCRAM".into()),
            authentication_data: Some(Bytes::from_static(b"data")),
            request_problem_information: Some(0),
            will_delay_interval: Some(5),
            request_response_information: Some(1),
            response_information: Some("resp".into()),
            server_reference: Some("other:1883".into()),
            reason_string: Some("why".into()),
            receive_maximum: Some(10),
            topic_alias_maximum: Some(0),
            topic_alias: Some(3),
            maximum_qos: Some(1),
            retain_available: Some(0),
            user_properties: vec![("a".into(), "1".into()), ("a".into(), "2".into())],
            maximum_packet_size: Some(1024),
            wildcard_subscription_available: Some(1),
            subscription_identifier_available: Some(1),
            shared_subscription_available: Some(0),
        };
        let bytes = encode(&p);
        assert_eq!(bytes.len(), p.encoded_len().expect("encodable"));
        // Each property alone in a context that allows it decodes to itself.
        for id in PropertyId::ALL {
            let context = PropertyContext::ALL
                .into_iter()
                .find(|c| id.allowed_in(*c))
                .expect("every property has a packet");
            let mut single = Properties::default();
            copy_property(&p, &mut single, id);
            let bytes = encode(&single).freeze();
            let back = Properties::decode(&mut Reader::new(bytes), context)
                .unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(back, single, "{id}");
        }
    }

    fn copy_property(from: &Properties, to: &mut Properties, id: PropertyId) {
        use PropertyId::*;
        match id {
            PayloadFormatIndicator => to.payload_format_indicator = from.payload_format_indicator,
            MessageExpiryInterval => to.message_expiry_interval = from.message_expiry_interval,
            ContentType => to.content_type = from.content_type.clone(),
            ResponseTopic => to.response_topic = from.response_topic.clone(),
            CorrelationData => to.correlation_data = from.correlation_data.clone(),
            SubscriptionIdentifier => to.subscription_identifiers = vec![VARINT_MAX],
            SessionExpiryInterval => to.session_expiry_interval = from.session_expiry_interval,
            AssignedClientIdentifier => {
                to.assigned_client_identifier = from.assigned_client_identifier.clone()
            }
            ServerKeepAlive => to.server_keep_alive = from.server_keep_alive,
            AuthenticationMethod => to.authentication_method = from.authentication_method.clone(),
            AuthenticationData => {
                to.authentication_method = from.authentication_method.clone();
                to.authentication_data = from.authentication_data.clone();
            }
            RequestProblemInformation => {
                to.request_problem_information = from.request_problem_information
            }
            WillDelayInterval => to.will_delay_interval = from.will_delay_interval,
            RequestResponseInformation => {
                to.request_response_information = from.request_response_information
            }
            ResponseInformation => to.response_information = from.response_information.clone(),
            ServerReference => to.server_reference = from.server_reference.clone(),
            ReasonString => to.reason_string = from.reason_string.clone(),
            ReceiveMaximum => to.receive_maximum = from.receive_maximum,
            TopicAliasMaximum => to.topic_alias_maximum = from.topic_alias_maximum,
            TopicAlias => to.topic_alias = from.topic_alias,
            MaximumQoS => to.maximum_qos = from.maximum_qos,
            RetainAvailable => to.retain_available = from.retain_available,
            UserProperty => to.user_properties = from.user_properties.clone(),
            MaximumPacketSize => to.maximum_packet_size = from.maximum_packet_size,
            WildcardSubscriptionAvailable => {
                to.wildcard_subscription_available = from.wildcard_subscription_available
            }
            SubscriptionIdentifierAvailable => {
                to.subscription_identifier_available = from.subscription_identifier_available
            }
            SharedSubscriptionAvailable => {
                to.shared_subscription_available = from.shared_subscription_available
            }
        }
    }

    #[test]
    fn duplicates_are_protocol_errors() {
        // Topic Alias twice.
        assert_eq!(
            decode(&[6, 0x23, 0, 1, 0x23, 0, 2], PropertyContext::Publish),
            Err(DecodeError::DuplicateProperty(PropertyId::TopicAlias))
        );
        // Subscription Identifier twice in SUBSCRIBE, but fine in PUBLISH.
        assert_eq!(
            decode(&[4, 0x0B, 1, 0x0B, 2], PropertyContext::Subscribe),
            Err(DecodeError::DuplicateProperty(
                PropertyId::SubscriptionIdentifier
            ))
        );
        assert_eq!(
            decode(&[4, 0x0B, 1, 0x0B, 2], PropertyContext::Publish)
                .expect("repeatable in PUBLISH")
                .subscription_identifiers,
            vec![1, 2]
        );
        // Reason String twice.
        assert_eq!(
            decode(
                &[8, 0x1F, 0, 1, b'a', 0x1F, 0, 1, b'b'],
                PropertyContext::PubAck
            ),
            Err(DecodeError::DuplicateProperty(PropertyId::ReasonString))
        );
        // User properties repeat freely.
        let p = decode(
            &[10, 0x26, 0, 1, b'k', 0, 0, 0x26, 0, 1, b'k'],
            PropertyContext::PubAck,
        );
        assert_eq!(p, Err(DecodeError::UnexpectedEof(Field::UserPropertyValue)));
        let p = decode(
            &[12, 0x26, 0, 1, b'k', 0, 0, 0x26, 0, 1, b'k', 0, 0],
            PropertyContext::PubAck,
        )
        .expect("two user properties");
        assert_eq!(p.user_properties.len(), 2);
    }

    #[test]
    fn truncated_and_unknown_properties_are_malformed() {
        // Length says 5, only 3 bytes follow.
        assert_eq!(
            decode(&[5, 0x02, 0, 0], PropertyContext::Publish),
            Err(DecodeError::UnexpectedEof(Field::PropertyLength))
        );
        // Length fits but the value runs past it.
        assert_eq!(
            decode(&[3, 0x02, 0, 0, 0, 0], PropertyContext::Publish),
            Err(DecodeError::UnexpectedEof(Field::PropertyValue))
        );
        // No length at all.
        assert_eq!(
            decode(&[], PropertyContext::Publish),
            Err(DecodeError::UnexpectedEof(Field::PropertyLength))
        );
        assert_eq!(
            decode(&[2, 0x04, 0], PropertyContext::Publish),
            Err(DecodeError::UnknownProperty(0x04))
        );
        assert_eq!(
            DecodeError::UnknownProperty(4).reason_code(),
            super::super::ReasonCode::MalformedPacket
        );
    }

    #[test]
    fn properties_outside_their_packet_are_protocol_errors() {
        // Topic Alias in CONNECT.
        assert_eq!(
            decode(&[3, 0x23, 0, 1], PropertyContext::Connect),
            Err(DecodeError::PropertyNotAllowed {
                id: PropertyId::TopicAlias,
                context: PropertyContext::Connect
            })
        );
        // Will Delay Interval belongs to the will, not the CONNECT.
        assert!(decode(&[5, 0x18, 0, 0, 0, 1], PropertyContext::Connect).is_err());
        assert!(decode(&[5, 0x18, 0, 0, 0, 1], PropertyContext::Will).is_ok());
        let p = Properties {
            topic_alias: Some(1),
            ..Properties::default()
        };
        assert_eq!(
            p.validate(PropertyContext::Subscribe),
            Err(EncodeError::PropertyNotAllowed {
                id: PropertyId::TopicAlias,
                context: PropertyContext::Subscribe
            })
        );
    }

    #[test]
    fn values_out_of_range_are_refused() {
        use PropertyId::*;
        let cases: &[(&'static [u8], PropertyContext, PropertyId, u32)] = &[
            (
                &[3, 0x21, 0, 0],
                PropertyContext::Connect,
                ReceiveMaximum,
                0,
            ),
            (
                &[5, 0x27, 0, 0, 0, 0],
                PropertyContext::Connect,
                MaximumPacketSize,
                0,
            ),
            (&[3, 0x23, 0, 0], PropertyContext::Publish, TopicAlias, 0),
            (
                &[2, 0x0B, 0],
                PropertyContext::Subscribe,
                SubscriptionIdentifier,
                0,
            ),
            (
                &[2, 0x17, 2],
                PropertyContext::Connect,
                RequestProblemInformation,
                2,
            ),
            (
                &[2, 0x19, 2],
                PropertyContext::Connect,
                RequestResponseInformation,
                2,
            ),
            (
                &[2, 0x01, 2],
                PropertyContext::Publish,
                PayloadFormatIndicator,
                2,
            ),
            (&[2, 0x24, 2], PropertyContext::ConnAck, MaximumQoS, 2),
            (&[2, 0x25, 2], PropertyContext::ConnAck, RetainAvailable, 2),
            (
                &[2, 0x28, 2],
                PropertyContext::ConnAck,
                WildcardSubscriptionAvailable,
                2,
            ),
            (
                &[2, 0x29, 2],
                PropertyContext::ConnAck,
                SubscriptionIdentifierAvailable,
                2,
            ),
            (
                &[2, 0x2A, 2],
                PropertyContext::ConnAck,
                SharedSubscriptionAvailable,
                2,
            ),
        ];
        for (bytes, context, id, value) in cases {
            assert_eq!(
                decode(bytes, *context),
                Err(DecodeError::InvalidPropertyValue {
                    id: *id,
                    value: *value
                }),
                "{id}"
            );
        }
        // Authentication data without a method.
        assert_eq!(
            decode(&[4, 0x16, 0, 1, 7], PropertyContext::Connect),
            Err(DecodeError::AuthDataWithoutMethod)
        );
    }
}
