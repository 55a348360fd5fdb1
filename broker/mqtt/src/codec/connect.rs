//! CONNECT and CONNACK.
//!
//! CONNECT is read before the connection has a version: the packet names its own level, and
//! the decoder remembers the level as soon as it has read it, so that a CONNECT that fails
//! later can still be refused with a CONNACK in the client's own version.
//!
//! The checks are the specification's "MUST"s that need nothing but the packet, in nats-server's
//! order and with its texts. What needs server state stays with the session: a second CONNECT
//! on one connection (nats-server: "received a second CONNECT packet"; in 5.0 a Protocol Error),
//! client identifiers that are not valid NATS names, nats-server's refusal of an empty user
//! name (3.1.1 CONNACK 0x04), `reject_qos2_pub` for wills, and wildcards in the will topic
//! (the topic mapping refuses those, see `crate::topic`).

use bytes::{BufMut, BytesMut};

use super::error::{DecodeError, EncodeError, Field};
use super::packet::{
    ConnAck, Connect, LastWill, PacketType, ProtocolVersion, QoS, Sizes, props_size, write_props,
};
use super::properties::{Properties, PropertyContext};
use super::reason::ReasonCode;
use super::wire::{Reader, binary_len, put_binary, string_len};

const PROTOCOL_NAME: &[u8] = b"MQTT";
/// MQTT 3.1's name, refused with its own message as nats-server does.
const OLD_PROTOCOL_NAME: &[u8] = b"MQIsdp";

const FLAG_RESERVED: u8 = 0x01;
const FLAG_CLEAN_START: u8 = 0x02;
const FLAG_WILL: u8 = 0x04;
const FLAG_WILL_RETAIN: u8 = 0x20;
const FLAG_PASSWORD: u8 = 0x40;
const FLAG_USERNAME: u8 = 0x80;

/// Reads a CONNECT body. `level_seen` is set as soon as the protocol level has been read.
pub(crate) fn decode_connect(
    r: &mut Reader,
    level_seen: &mut Option<u8>,
) -> Result<Connect, DecodeError> {
    let name = r.binary(Field::ProtocolName)?;
    if name != PROTOCOL_NAME {
        if name == OLD_PROTOCOL_NAME {
            return Err(DecodeError::OlderProtocol);
        }
        return Err(DecodeError::InvalidProtocolName(
            String::from_utf8_lossy(&name).into_owned(),
        ));
    }
    let level = r.u8(Field::ProtocolLevel)?;
    *level_seen = Some(level);
    let version =
        ProtocolVersion::from_level(level).ok_or(DecodeError::UnsupportedProtocolLevel(level))?;

    let flags = r.u8(Field::ConnectFlags)?;
    if flags & FLAG_RESERVED != 0 {
        return Err(DecodeError::ConnectReservedFlag);
    }
    let will_qos = (flags >> 3) & 0x03;
    let will_retain = flags & FLAG_WILL_RETAIN != 0;
    let has_will = flags & FLAG_WILL != 0;
    if !has_will {
        if will_qos != 0 {
            return Err(DecodeError::WillQoSWithoutWill(will_qos));
        }
        if will_retain {
            return Err(DecodeError::WillRetainWithoutWill);
        }
    }
    let will_qos = QoS::from_u8(will_qos).ok_or(DecodeError::InvalidWillQoS(will_qos))?;
    let has_username = flags & FLAG_USERNAME != 0;
    let has_password = flags & FLAG_PASSWORD != 0;
    if version == ProtocolVersion::V311 && has_password && !has_username {
        return Err(DecodeError::PasswordWithoutUserName);
    }
    let clean_start = flags & FLAG_CLEAN_START != 0;

    let keep_alive = r.u16(Field::KeepAlive)?;
    let properties = match version {
        ProtocolVersion::V5 => Properties::decode(r, PropertyContext::Connect)?,
        ProtocolVersion::V311 => Properties::default(),
    };

    // Payload order (3.1.3): client ID, [will properties], will topic, will payload, user
    // name, password.
    let client_id = r.string(Field::ClientId)?;
    if version == ProtocolVersion::V311 && client_id.is_empty() && !clean_start {
        return Err(DecodeError::EmptyClientIdNeedsCleanSession);
    }
    let will = if has_will {
        let properties = match version {
            ProtocolVersion::V5 => Properties::decode(r, PropertyContext::Will)?,
            ProtocolVersion::V311 => Properties::default(),
        };
        let topic = r.string(Field::WillTopic)?;
        if topic.is_empty() {
            return Err(DecodeError::EmptyWillTopic);
        }
        let payload = r.binary(Field::WillMessage)?;
        Some(LastWill {
            topic,
            payload,
            qos: will_qos,
            retain: will_retain,
            properties,
        })
    } else {
        None
    };
    let username = if has_username {
        Some(r.string(Field::UserName)?)
    } else {
        None
    };
    let password = if has_password {
        Some(r.binary(Field::Password)?)
    } else {
        None
    };
    Ok(Connect {
        protocol_version: version,
        clean_start,
        keep_alive,
        client_id,
        will,
        username,
        password,
        properties,
    })
}

impl Connect {
    fn flags(&self) -> u8 {
        let mut flags = 0;
        if self.clean_start {
            flags |= FLAG_CLEAN_START;
        }
        if let Some(will) = &self.will {
            flags |= FLAG_WILL | (will.qos.as_u8() << 3);
            if will.retain {
                flags |= FLAG_WILL_RETAIN;
            }
        }
        if self.username.is_some() {
            flags |= FLAG_USERNAME;
        }
        if self.password.is_some() {
            flags |= FLAG_PASSWORD;
        }
        flags
    }

    pub(crate) fn sizes(&self, version: ProtocolVersion) -> Result<Sizes, EncodeError> {
        if version != self.protocol_version {
            return Err(EncodeError::VersionMismatch {
                packet: self.protocol_version.level(),
                connection: version.level(),
            });
        }
        if version == ProtocolVersion::V311 {
            if self.password.is_some() && self.username.is_none() {
                return Err(EncodeError::NotInV311("a password without a user name"));
            }
            if self.client_id.is_empty() && !self.clean_start {
                return Err(EncodeError::Empty(Field::ClientId));
            }
        }
        let (props, props_body) = props_size(&self.properties, PropertyContext::Connect, version)?;
        // Name, level, flags, keep alive.
        let mut body = 2 + PROTOCOL_NAME.len() + 1 + 1 + 2 + props;
        body += string_len(&self.client_id, Field::ClientId)?;
        let mut will_props_body = 0;
        if let Some(will) = &self.will {
            if will.topic.is_empty() {
                return Err(EncodeError::Empty(Field::WillTopic));
            }
            let (will_props, wb) = props_size(&will.properties, PropertyContext::Will, version)?;
            will_props_body = wb;
            body += will_props
                + string_len(&will.topic, Field::WillTopic)?
                + binary_len(&will.payload, Field::WillMessage)?;
        }
        if let Some(username) = &self.username {
            body += string_len(username, Field::UserName)?;
        }
        if let Some(password) = &self.password {
            body += binary_len(password, Field::Password)?;
        }
        Ok(Sizes {
            body,
            props: props_body,
            will_props: will_props_body,
        })
    }

    pub(crate) fn write(&self, version: ProtocolVersion, sizes: &Sizes, buf: &mut BytesMut) {
        put_binary(buf, PROTOCOL_NAME);
        buf.put_u8(version.level());
        buf.put_u8(self.flags());
        buf.put_u16(self.keep_alive);
        write_props(&self.properties, sizes.props, version, buf);
        put_binary(buf, self.client_id.as_bytes());
        if let Some(will) = &self.will {
            write_props(&will.properties, sizes.will_props, version, buf);
            put_binary(buf, will.topic.as_bytes());
            put_binary(buf, &will.payload);
        }
        if let Some(username) = &self.username {
            put_binary(buf, username.as_bytes());
        }
        if let Some(password) = &self.password {
            put_binary(buf, password);
        }
    }
}

/// Reads a CONNACK body.
pub(crate) fn decode_connack(
    r: &mut Reader,
    version: ProtocolVersion,
) -> Result<ConnAck, DecodeError> {
    let flags = r.u8(Field::ConnAckFlags)?;
    if flags & 0xFE != 0 {
        return Err(DecodeError::ConnAckReservedFlags);
    }
    let code = r.u8(Field::ReasonCode)?;
    let reason = match version {
        ProtocolVersion::V311 => ReasonCode::from_v311_connack(code),
        ProtocolVersion::V5 => {
            ReasonCode::from_u8(code).filter(|c| c.allowed_in(PacketType::ConnAck))
        }
    }
    .ok_or(DecodeError::InvalidReasonCode {
        packet: PacketType::ConnAck,
        code,
    })?;
    let session_present = flags & 0x01 != 0;
    if session_present && reason != ReasonCode::Success {
        return Err(DecodeError::SessionPresentOnRefusal);
    }
    let properties = match version {
        ProtocolVersion::V5 => Properties::decode(r, PropertyContext::ConnAck)?,
        ProtocolVersion::V311 => Properties::default(),
    };
    Ok(ConnAck {
        session_present,
        reason,
        properties,
    })
}

impl ConnAck {
    /// The byte the reason is written as in `version`.
    fn code(&self, version: ProtocolVersion) -> Result<u8, EncodeError> {
        let invalid = EncodeError::InvalidReasonCode {
            packet: PacketType::ConnAck,
            code: self.reason,
        };
        match version {
            ProtocolVersion::V311 => self.reason.to_v311_connack().ok_or(invalid),
            ProtocolVersion::V5 if self.reason.allowed_in(PacketType::ConnAck) => {
                Ok(self.reason.as_u8())
            }
            ProtocolVersion::V5 => Err(invalid),
        }
    }

    pub(crate) fn sizes(&self, version: ProtocolVersion) -> Result<Sizes, EncodeError> {
        self.code(version)?;
        if self.session_present && self.reason != ReasonCode::Success {
            return Err(EncodeError::SessionPresentOnRefusal);
        }
        let (props, props_body) = props_size(&self.properties, PropertyContext::ConnAck, version)?;
        Ok(Sizes {
            body: 2 + props,
            props: props_body,
            will_props: 0,
        })
    }

    pub(crate) fn write(&self, version: ProtocolVersion, sizes: &Sizes, buf: &mut BytesMut) {
        buf.put_u8(u8::from(self.session_present));
        // `sizes` already checked the code; Success is the harmless value if it were not.
        buf.put_u8(self.code(version).unwrap_or(0));
        write_props(&self.properties, sizes.props, version, buf);
    }
}
