//! SUBSCRIBE, SUBACK, UNSUBSCRIBE and UNSUBACK.
//!
//! The codec checks the filters as strings (present, UTF-8, no NUL) and the options byte; the
//! filter's MQTT grammar (`#` last, `+` alone in its level) and its NATS subject belong to
//! `crate::topic`, because a bad filter fails only that filter (SUBACK 0x80 / 0x8F) rather
//! than the whole packet.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError, Field};
use super::packet::{
    PacketType, ProtocolVersion, QoS, RetainHandling, Sizes, SubAck, Subscribe, SubscribeFilter,
    SubscriptionOptions, UnsubAck, Unsubscribe, check_packet_id, props_size, write_props,
};
use super::properties::{Properties, PropertyContext};
use super::reason::ReasonCode;
use super::string::MqttString;
use super::wire::{Reader, put_binary, string_len};

/// Whether a filter names a shared subscription (5.0 4.8.2), where No Local is forbidden.
fn is_shared(filter: &MqttString) -> bool {
    filter.starts_with(crate::topic::SHARED_PREFIX)
}

fn packet_id(r: &mut Reader) -> Result<u16, DecodeError> {
    let id = r.u16(Field::PacketId)?;
    if id == 0 {
        return Err(DecodeError::ZeroPacketId);
    }
    Ok(id)
}

fn filter(r: &mut Reader) -> Result<MqttString, DecodeError> {
    let filter = r.string(Field::TopicFilter)?;
    if filter.is_empty() {
        return Err(DecodeError::EmptyTopicFilter);
    }
    Ok(filter)
}

fn options(byte: u8, version: ProtocolVersion) -> Result<SubscriptionOptions, DecodeError> {
    let invalid = DecodeError::InvalidSubscriptionOptions(byte);
    // 3.1.1: six reserved bits must be 0 (3.8.3-4), which nats-server reports as a QoS above 2.
    // 5.0: two reserved bits (3.8.3-5).
    let reserved = match version {
        ProtocolVersion::V311 => 0xFC,
        ProtocolVersion::V5 => 0xC0,
    };
    if byte & reserved != 0 {
        return Err(invalid);
    }
    let qos = QoS::from_u8(byte & 0x03).ok_or(invalid)?;
    let retain_handling = match (byte >> 4) & 0x03 {
        0 => RetainHandling::SendAtSubscribe,
        1 => RetainHandling::SendIfNew,
        2 => RetainHandling::DoNotSend,
        _ => return Err(DecodeError::InvalidRetainHandling),
    };
    Ok(SubscriptionOptions {
        qos,
        no_local: byte & 0x04 != 0,
        retain_as_published: byte & 0x08 != 0,
        retain_handling,
    })
}

pub(crate) fn decode_subscribe(
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<Subscribe, DecodeError> {
    let packet_id = packet_id(r)?;
    let properties = match version {
        ProtocolVersion::V5 => Properties::decode(r, PropertyContext::Subscribe)?,
        ProtocolVersion::V311 => Properties::default(),
    };
    let mut filters = Vec::new();
    while r.has_more() {
        let filter = filter(r)?;
        let options = options(r.u8(Field::SubscriptionOptions)?, version)?;
        if options.no_local && is_shared(&filter) {
            return Err(DecodeError::NoLocalOnSharedSubscription);
        }
        filters.push(SubscribeFilter { filter, options });
    }
    if filters.is_empty() {
        return Err(DecodeError::NoSubscribeFilters);
    }
    Ok(Subscribe {
        packet_id,
        filters,
        properties,
    })
}

impl Subscribe {
    pub(crate) fn sizes(&self, version: ProtocolVersion) -> Result<Sizes, EncodeError> {
        check_packet_id(self.packet_id, PacketType::Subscribe)?;
        if self.filters.is_empty() {
            return Err(EncodeError::NoFilters(PacketType::Subscribe));
        }
        let (props, props_body) =
            props_size(&self.properties, PropertyContext::Subscribe, version)?;
        let mut body = 2 + props;
        for f in &self.filters {
            if f.filter.is_empty() {
                return Err(EncodeError::Empty(Field::TopicFilter));
            }
            let o = f.options;
            if version == ProtocolVersion::V311
                && (o.no_local
                    || o.retain_as_published
                    || o.retain_handling != RetainHandling::SendAtSubscribe)
            {
                return Err(EncodeError::NotInV311(
                    "subscription options other than QoS",
                ));
            }
            if o.no_local && is_shared(&f.filter) {
                return Err(EncodeError::NoLocalOnSharedSubscription);
            }
            body += string_len(&f.filter, Field::TopicFilter)? + 1;
        }
        Ok(Sizes {
            body,
            props: props_body,
            will_props: 0,
        })
    }

    pub(crate) fn write(&self, version: ProtocolVersion, sizes: &Sizes, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id);
        write_props(&self.properties, sizes.props, version, buf);
        for f in &self.filters {
            put_binary(buf, f.filter.as_bytes());
            buf.put_u8(f.options.to_byte());
        }
    }
}

pub(crate) fn decode_suback(
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<SubAck, DecodeError> {
    let packet_id = packet_id(r)?;
    let properties = match version {
        ProtocolVersion::V5 => Properties::decode(r, PropertyContext::SubAck)?,
        ProtocolVersion::V311 => Properties::default(),
    };
    let mut reasons = Vec::with_capacity(r.remaining());
    while r.has_more() {
        let code = r.u8(Field::ReasonCode)?;
        let reason = match version {
            ProtocolVersion::V311 => ReasonCode::from_v311_suback(code),
            ProtocolVersion::V5 => {
                ReasonCode::from_u8(code).filter(|c| c.allowed_in(PacketType::SubAck))
            }
        }
        .ok_or(DecodeError::InvalidReasonCode {
            packet: PacketType::SubAck,
            code,
        })?;
        reasons.push(reason);
    }
    Ok(SubAck {
        packet_id,
        reasons,
        properties,
    })
}

impl SubAck {
    fn code(reason: ReasonCode, version: ProtocolVersion) -> Result<u8, EncodeError> {
        let code = match version {
            ProtocolVersion::V311 => reason.to_v311_suback(),
            ProtocolVersion::V5 => reason
                .allowed_in(PacketType::SubAck)
                .then_some(reason.as_u8()),
        };
        code.ok_or(EncodeError::InvalidReasonCode {
            packet: PacketType::SubAck,
            code: reason,
        })
    }

    pub(crate) fn sizes(&self, version: ProtocolVersion) -> Result<Sizes, EncodeError> {
        check_packet_id(self.packet_id, PacketType::SubAck)?;
        for reason in &self.reasons {
            Self::code(*reason, version)?;
        }
        let (props, props_body) = props_size(&self.properties, PropertyContext::SubAck, version)?;
        Ok(Sizes {
            body: 2 + props + self.reasons.len(),
            props: props_body,
            will_props: 0,
        })
    }

    pub(crate) fn write(&self, version: ProtocolVersion, sizes: &Sizes, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id);
        write_props(&self.properties, sizes.props, version, buf);
        for reason in &self.reasons {
            // Checked in `sizes`; 0x80 (failure in both versions) if it somehow were not.
            buf.put_u8(Self::code(*reason, version).unwrap_or(0x80));
        }
    }
}

pub(crate) fn decode_unsubscribe(
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<Unsubscribe, DecodeError> {
    let packet_id = packet_id(r)?;
    let properties = match version {
        ProtocolVersion::V5 => Properties::decode(r, PropertyContext::Unsubscribe)?,
        ProtocolVersion::V311 => Properties::default(),
    };
    let mut filters = Vec::new();
    while r.has_more() {
        filters.push(filter(r)?);
    }
    if filters.is_empty() {
        return Err(DecodeError::NoUnsubscribeFilters);
    }
    Ok(Unsubscribe {
        packet_id,
        filters,
        properties,
    })
}

impl Unsubscribe {
    pub(crate) fn sizes(&self, version: ProtocolVersion) -> Result<Sizes, EncodeError> {
        check_packet_id(self.packet_id, PacketType::Unsubscribe)?;
        if self.filters.is_empty() {
            return Err(EncodeError::NoFilters(PacketType::Unsubscribe));
        }
        let (props, props_body) =
            props_size(&self.properties, PropertyContext::Unsubscribe, version)?;
        let mut body = 2 + props;
        for f in &self.filters {
            if f.is_empty() {
                return Err(EncodeError::Empty(Field::TopicFilter));
            }
            body += string_len(f, Field::TopicFilter)?;
        }
        Ok(Sizes {
            body,
            props: props_body,
            will_props: 0,
        })
    }

    pub(crate) fn write(&self, version: ProtocolVersion, sizes: &Sizes, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id);
        write_props(&self.properties, sizes.props, version, buf);
        for f in &self.filters {
            put_binary(buf, f.as_bytes());
        }
    }
}

pub(crate) fn decode_unsuback(
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<UnsubAck, DecodeError> {
    let packet_id = packet_id(r)?;
    let mut ack = UnsubAck {
        packet_id,
        reasons: Vec::new(),
        properties: Properties::default(),
    };
    if version == ProtocolVersion::V5 {
        ack.properties = Properties::decode(r, PropertyContext::UnsubAck)?;
        ack.reasons.reserve(r.remaining());
        while r.has_more() {
            let code = r.u8(Field::ReasonCode)?;
            let reason = ReasonCode::from_u8(code)
                .filter(|c| c.allowed_in(PacketType::UnsubAck))
                .ok_or(DecodeError::InvalidReasonCode {
                    packet: PacketType::UnsubAck,
                    code,
                })?;
            ack.reasons.push(reason);
        }
    }
    Ok(ack)
}

impl UnsubAck {
    pub(crate) fn sizes(&self, version: ProtocolVersion) -> Result<Sizes, EncodeError> {
        check_packet_id(self.packet_id, PacketType::UnsubAck)?;
        if version == ProtocolVersion::V311 && !self.reasons.is_empty() {
            return Err(EncodeError::NotInV311("reason codes in UNSUBACK"));
        }
        for reason in &self.reasons {
            if !reason.allowed_in(PacketType::UnsubAck) {
                return Err(EncodeError::InvalidReasonCode {
                    packet: PacketType::UnsubAck,
                    code: *reason,
                });
            }
        }
        let (props, props_body) = props_size(&self.properties, PropertyContext::UnsubAck, version)?;
        Ok(Sizes {
            body: 2 + props + self.reasons.len(),
            props: props_body,
            will_props: 0,
        })
    }

    pub(crate) fn write(&self, version: ProtocolVersion, sizes: &Sizes, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id);
        write_props(&self.properties, sizes.props, version, buf);
        for reason in &self.reasons {
            buf.put_u8(reason.as_u8());
        }
    }
}
