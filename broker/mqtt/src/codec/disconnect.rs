//! DISCONNECT and AUTH: in 5.0 both are an optional reason code and optional properties
//! (a remaining length of 0 means Success without properties). In 3.1.1 DISCONNECT is empty
//! and AUTH does not exist.

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError, Field};
use super::packet::{
    Auth, Disconnect, PacketType, ProtocolVersion, Sizes, props_size, write_props,
};
use super::properties::{Properties, PropertyContext};
use super::reason::ReasonCode;
use super::wire::Reader;

/// Reads the optional reason code and properties shared by DISCONNECT and AUTH.
fn decode_reason_and_properties(
    r: &mut Reader,
    packet: PacketType,
    context: PropertyContext,
) -> Result<(ReasonCode, Properties), DecodeError> {
    if !r.has_more() {
        return Ok((ReasonCode::Success, Properties::default()));
    }
    let code = r.u8(Field::ReasonCode)?;
    let reason = ReasonCode::from_u8(code)
        .filter(|c| c.allowed_in(packet))
        .ok_or(DecodeError::InvalidReasonCode { packet, code })?;
    let properties = if r.has_more() {
        Properties::decode(r, context)?
    } else {
        Properties::default()
    };
    Ok((reason, properties))
}

fn sizes(
    reason: ReasonCode,
    properties: &Properties,
    packet: PacketType,
    context: PropertyContext,
) -> Result<Sizes, EncodeError> {
    if !reason.allowed_in(packet) {
        return Err(EncodeError::InvalidReasonCode {
            packet,
            code: reason,
        });
    }
    if properties.is_empty() {
        let body = usize::from(reason != ReasonCode::Success);
        return Ok(Sizes {
            body,
            ..Sizes::default()
        });
    }
    let (props, props_body) = props_size(properties, context, ProtocolVersion::V5)?;
    Ok(Sizes {
        body: 1 + props,
        props: props_body,
        will_props: 0,
    })
}

fn write(reason: ReasonCode, properties: &Properties, sizes: &Sizes, buf: &mut BytesMut) {
    if sizes.body > 0 {
        buf.put_u8(reason.as_u8());
    }
    if sizes.body > 1 {
        write_props(properties, sizes.props, ProtocolVersion::V5, buf);
    }
}

pub(crate) fn decode_disconnect(
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<Disconnect, DecodeError> {
    if version == ProtocolVersion::V311 {
        return Ok(Disconnect::default());
    }
    let (reason, properties) =
        decode_reason_and_properties(r, PacketType::Disconnect, PropertyContext::Disconnect)?;
    Ok(Disconnect { reason, properties })
}

impl Disconnect {
    pub(crate) fn sizes(&self, version: ProtocolVersion) -> Result<Sizes, EncodeError> {
        match version {
            ProtocolVersion::V311 if self.reason == ReasonCode::Success => {
                props_size(&self.properties, PropertyContext::Disconnect, version)?;
                Ok(Sizes::default())
            }
            ProtocolVersion::V311 => Err(EncodeError::NotInV311("a reason code in DISCONNECT")),
            ProtocolVersion::V5 => sizes(
                self.reason,
                &self.properties,
                PacketType::Disconnect,
                PropertyContext::Disconnect,
            ),
        }
    }

    pub(crate) fn write(&self, version: ProtocolVersion, sizes: &Sizes, buf: &mut BytesMut) {
        if version == ProtocolVersion::V5 {
            write(self.reason, &self.properties, sizes, buf);
        }
    }
}

/// Reads an AUTH body (the decoder refuses packet type 15 on a 3.1.1 connection).
pub(crate) fn decode_auth(r: &mut Reader) -> Result<Auth, DecodeError> {
    let (reason, properties) =
        decode_reason_and_properties(r, PacketType::Auth, PropertyContext::Auth)?;
    Ok(Auth { reason, properties })
}

impl Auth {
    pub(crate) fn sizes(&self, version: ProtocolVersion) -> Result<Sizes, EncodeError> {
        if version == ProtocolVersion::V311 {
            return Err(EncodeError::NotInV311("AUTH"));
        }
        sizes(
            self.reason,
            &self.properties,
            PacketType::Auth,
            PropertyContext::Auth,
        )
    }

    pub(crate) fn write(&self, _version: ProtocolVersion, sizes: &Sizes, buf: &mut BytesMut) {
        write(self.reason, &self.properties, sizes, buf);
    }
}
