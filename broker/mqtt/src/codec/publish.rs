//! PUBLISH and its responses (PUBACK, PUBREC, PUBREL, PUBCOMP).
//!
//! PUBLISH is the hot path: the topic and the payload are slices of the packet, which is
//! itself split off the connection's read buffer, so decoding a PUBLISH without properties
//! allocates nothing. For the way out, [`Publish::encode_header`] writes everything but the
//! payload, so a writer can send header and payload `Bytes` as two iovecs without copying.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError, Field};
use super::packet::{
    PacketType, ProtocolVersion, PubResponse, Publish, QoS, Sizes, check_packet_id, props_size,
    write_props,
};
use super::properties::{Properties, PropertyContext};
use super::reason::ReasonCode;
use super::wire::Reader;
use super::wire::{VARINT_MAX, put_binary, put_varint, string_len, varint_len};

/// Reads a PUBLISH body; `flags` is the low nibble of the first byte.
pub(crate) fn decode_publish(
    flags: u8,
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<Publish, DecodeError> {
    let raw_qos = (flags >> 1) & 0x03;
    let qos = QoS::from_u8(raw_qos).ok_or(DecodeError::InvalidQoS(raw_qos))?;
    let dup = flags & 0x08 != 0;
    if dup && qos == QoS::AtMostOnce {
        return Err(DecodeError::DupWithQoS0);
    }
    let topic = r.string(Field::TopicName)?;
    let packet_id = if qos == QoS::AtMostOnce {
        0
    } else {
        let id = r.u16(Field::PacketId)?;
        if id == 0 {
            return Err(DecodeError::ZeroPacketId);
        }
        id
    };
    let properties = match version {
        ProtocolVersion::V5 => Properties::decode(r, PropertyContext::Publish)?,
        ProtocolVersion::V311 => Properties::default(),
    };
    // 5.0 may leave the topic empty and name it by alias (3.3.2.3.4).
    if topic.is_empty() && properties.topic_alias.is_none() {
        return Err(DecodeError::EmptyTopic);
    }
    Ok(Publish {
        dup,
        qos,
        retain: flags & 0x01 != 0,
        topic,
        packet_id,
        properties,
        payload: r.rest(),
    })
}

impl Publish {
    /// Sizes of the variable header (`props` etc.) and, in `body`, of header plus payload.
    pub(crate) fn sizes(&self, version: ProtocolVersion) -> Result<Sizes, EncodeError> {
        match (self.qos, self.packet_id) {
            (QoS::AtMostOnce, 0) => {}
            (QoS::AtMostOnce, id) => return Err(EncodeError::PacketIdAtQoS0(id)),
            (_, id) => check_packet_id(id, PacketType::Publish)?,
        }
        if self.dup && self.qos == QoS::AtMostOnce {
            return Err(EncodeError::DupWithQoS0);
        }
        if self.topic.is_empty() && self.properties.topic_alias.is_none() {
            return Err(EncodeError::Empty(Field::TopicName));
        }
        let (props, props_body) = props_size(&self.properties, PropertyContext::Publish, version)?;
        let id_len = if self.qos == QoS::AtMostOnce { 0 } else { 2 };
        let header = string_len(&self.topic, Field::TopicName)? + id_len + props;
        Ok(Sizes {
            body: header + self.payload.len(),
            props: props_body,
            will_props: 0,
        })
    }

    pub(crate) fn first_byte(&self) -> u8 {
        ((PacketType::Publish as u8) << 4)
            | (u8::from(self.dup) << 3)
            | (self.qos.as_u8() << 1)
            | u8::from(self.retain)
    }

    fn write_variable_header(&self, version: ProtocolVersion, sizes: &Sizes, buf: &mut BytesMut) {
        put_binary(buf, self.topic.as_bytes());
        if self.qos != QoS::AtMostOnce {
            buf.put_u16(self.packet_id);
        }
        write_props(&self.properties, sizes.props, version, buf);
    }

    pub(crate) fn write(&self, version: ProtocolVersion, sizes: &Sizes, buf: &mut BytesMut) {
        self.write_variable_header(version, sizes, buf);
        buf.put_slice(&self.payload);
    }

    /// Appends the fixed and variable header only (the remaining length counts the payload):
    /// the caller sends `self.payload` right after, e.g. as a second iovec, without copying it
    /// into the output buffer. Returns the number of header bytes written.
    pub fn encode_header(
        &self,
        version: ProtocolVersion,
        buf: &mut BytesMut,
    ) -> Result<usize, EncodeError> {
        let sizes = self.sizes(version)?;
        if sizes.body > VARINT_MAX as usize {
            return Err(EncodeError::PacketTooLarge(sizes.body));
        }
        let header = 1 + varint_len(sizes.body as u32) + sizes.body - self.payload.len();
        buf.reserve(header);
        buf.put_u8(self.first_byte());
        put_varint(buf, sizes.body as u32);
        self.write_variable_header(version, &sizes, buf);
        Ok(header)
    }
}

fn context(packet: PacketType) -> PropertyContext {
    match packet {
        PacketType::PubAck => PropertyContext::PubAck,
        PacketType::PubRec => PropertyContext::PubRec,
        PacketType::PubRel => PropertyContext::PubRel,
        _ => PropertyContext::PubComp,
    }
}

/// Reads a PUBACK, PUBREC, PUBREL or PUBCOMP body. In 5.0 the reason code and the properties
/// may be left off (3.4.2.1: a remaining length of 2 means Success, no properties).
pub(crate) fn decode_response(
    packet: PacketType,
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<PubResponse, DecodeError> {
    let packet_id = r.u16(Field::PacketId)?;
    if packet_id == 0 {
        return Err(DecodeError::ZeroPacketId);
    }
    let mut response = PubResponse::new(packet_id);
    if version == ProtocolVersion::V5 && r.has_more() {
        let code = r.u8(Field::ReasonCode)?;
        response.reason = ReasonCode::from_u8(code)
            .filter(|c| c.allowed_in(packet))
            .ok_or(DecodeError::InvalidReasonCode { packet, code })?;
        if r.has_more() {
            response.properties = Properties::decode(r, context(packet))?;
        }
    }
    Ok(response)
}

impl PubResponse {
    pub(crate) fn sizes(
        &self,
        version: ProtocolVersion,
        packet: PacketType,
    ) -> Result<Sizes, EncodeError> {
        check_packet_id(self.packet_id, packet)?;
        if !self.reason.allowed_in(packet) {
            return Err(EncodeError::InvalidReasonCode {
                packet,
                code: self.reason,
            });
        }
        match version {
            ProtocolVersion::V311 => {
                if self.reason != ReasonCode::Success {
                    return Err(EncodeError::NotInV311(
                        "a reason code in a publish response",
                    ));
                }
                props_size(&self.properties, context(packet), version)?;
                Ok(Sizes {
                    body: 2,
                    ..Sizes::default()
                })
            }
            ProtocolVersion::V5 => {
                if self.properties.is_empty() {
                    let body = if self.reason == ReasonCode::Success {
                        2
                    } else {
                        3
                    };
                    return Ok(Sizes {
                        body,
                        ..Sizes::default()
                    });
                }
                let (props, props_body) = props_size(&self.properties, context(packet), version)?;
                Ok(Sizes {
                    body: 3 + props,
                    props: props_body,
                    will_props: 0,
                })
            }
        }
    }

    pub(crate) fn write(&self, version: ProtocolVersion, sizes: &Sizes, buf: &mut BytesMut) {
        buf.put_u16(self.packet_id);
        if sizes.body > 2 {
            buf.put_u8(self.reason.as_u8());
        }
        if sizes.body > 3 {
            write_props(&self.properties, sizes.props, version, buf);
        }
    }
}
