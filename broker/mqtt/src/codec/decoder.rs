//! [`Decoder`]: turns a connection's read buffer into packets, one whole packet at a time.
//!
//! The fixed header is checked as soon as its bytes are there (type, flags, remaining length,
//! size limit), before waiting for the body, so a peer that announces a packet too large or
//! sends garbage is refused at once rather than after we buffered its bytes. A whole packet is
//! then split off the buffer (`BytesMut::split_to`, no copy) and parsed from that `Bytes`, so
//! payloads and strings in the packet share the read buffer's allocation.

use bytes::BytesMut;

use super::connect::{decode_connack, decode_connect};
use super::disconnect::{decode_auth, decode_disconnect};
use super::error::DecodeError;
use super::packet::{ConnAck, Disconnect, Packet, PacketType, ProtocolVersion, QoS};
use super::properties::Properties;
use super::publish::{decode_publish, decode_response};
use super::reason::ReasonCode;
use super::subscribe::{decode_suback, decode_subscribe, decode_unsuback, decode_unsubscribe};
use super::wire::{Reader, VARINT_MAX, VarIntError, read_varint};

/// The largest packet MQTT can express: a type byte, four length bytes, 268,435,455 bytes.
pub const MAX_PACKET_SIZE: u32 = 1 + 4 + VARINT_MAX;

/// Reads packets from one connection.
///
/// A server-side decoder starts without a version and accepts only CONNECT, whose protocol
/// level then fixes the version for the rest of the connection. A second CONNECT is decoded
/// like any packet: refusing it is the session's rule (nats-server: "received a second
/// CONNECT packet"; 5.0: Protocol Error), since only the session knows it already has one.
#[derive(Debug, Clone)]
pub struct Decoder {
    version: Option<ProtocolVersion>,
    max_packet_size: u32,
    /// The level of the CONNECT being (or last) read, kept even if that CONNECT failed, so
    /// the refusal can be a CONNACK the client understands.
    connect_level: Option<u8>,
}

impl Default for Decoder {
    fn default() -> Self {
        Self::new()
    }
}

impl Decoder {
    /// A server-side decoder: waits for CONNECT, accepts packets up to [`MAX_PACKET_SIZE`].
    pub fn new() -> Self {
        Decoder {
            version: None,
            max_packet_size: MAX_PACKET_SIZE,
            connect_level: None,
        }
    }

    /// A decoder for a connection whose version is already known (a client reading its
    /// server's packets, or a test).
    pub fn with_version(version: ProtocolVersion) -> Self {
        Decoder {
            version: Some(version),
            ..Self::new()
        }
    }

    /// The version fixed by CONNECT, if one has been read.
    pub fn version(&self) -> Option<ProtocolVersion> {
        self.version
    }

    /// Limits the size of a whole packet (fixed header included), as 5.0's Maximum Packet Size
    /// and nats-server's max_payload for CONNECT do. 0 is treated as 1 (nothing fits).
    pub fn set_max_packet_size(&mut self, max: u32) {
        self.max_packet_size = max.clamp(1, MAX_PACKET_SIZE);
    }

    pub fn max_packet_size(&self) -> u32 {
        self.max_packet_size
    }

    /// The next packet from `buf`, removing its bytes; `Ok(None)` if `buf` does not yet hold a
    /// whole packet (nothing is consumed then). After an error the connection must be closed:
    /// the buffer is left where the bad packet starts.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Packet>, DecodeError> {
        let Some(&first) = buf.first() else {
            return Ok(None);
        };
        let nibble = first >> 4;
        let flags = first & 0x0F;
        if self.version.is_none() && nibble != PacketType::Connect as u8 {
            return self.not_connect(buf, first);
        }
        let packet_type = match PacketType::from_nibble(nibble) {
            Some(PacketType::Auth) if self.version == Some(ProtocolVersion::V311) => None,
            other => other,
        }
        .ok_or(DecodeError::UnknownPacketType(nibble))?;
        match packet_type.required_flags() {
            Some(required) if flags != required => {
                return Err(DecodeError::InvalidFixedHeaderFlags {
                    packet_type: first & 0xF0,
                    flags,
                });
            }
            Some(_) => {}
            None => {
                let qos = (flags >> 1) & 0x03;
                if QoS::from_u8(qos).is_none() {
                    return Err(DecodeError::InvalidQoS(qos));
                }
            }
        }
        let (remaining, len_bytes) = match read_varint(&buf[1..]) {
            Ok(v) => v,
            Err(VarIntError::Incomplete) => return Ok(None),
            Err(VarIntError::TooLong) => return Err(DecodeError::MalformedVarInt),
            Err(VarIntError::NonMinimal) => return Err(DecodeError::NonMinimalVarInt),
        };
        let remaining = remaining as usize;
        let total = 1 + len_bytes + remaining;
        if total > self.max_packet_size as usize {
            return Err(DecodeError::PacketTooLarge {
                size: total,
                max: self.max_packet_size,
            });
        }
        if let Some(version) = self.version {
            check_remaining_length(packet_type, version, remaining)?;
        }
        if buf.len() < total {
            return Ok(None);
        }
        let frame = buf.split_to(total).freeze();
        let mut r = Reader::new(frame.slice(1 + len_bytes..));
        let packet = self.decode_body(packet_type, flags, &mut r)?;
        if r.has_more() {
            return Err(DecodeError::TrailingBytes {
                packet: packet_type,
                extra: r.remaining(),
            });
        }
        if let Packet::Connect(connect) = &packet
            && self.version.is_none()
        {
            self.version = Some(connect.protocol_version);
        }
        Ok(Some(packet))
    }

    fn decode_body(
        &mut self,
        packet_type: PacketType,
        flags: u8,
        r: &mut Reader,
    ) -> Result<Packet, DecodeError> {
        // Only CONNECT, which carries its own level, gets past `decode` without a version.
        let version = self.version.unwrap_or(ProtocolVersion::V311);
        Ok(match packet_type {
            PacketType::Connect => {
                Packet::Connect(Box::new(decode_connect(r, &mut self.connect_level)?))
            }
            PacketType::ConnAck => Packet::ConnAck(decode_connack(r, version)?),
            PacketType::Publish => Packet::Publish(decode_publish(flags, r, version)?),
            PacketType::PubAck => Packet::PubAck(decode_response(packet_type, r, version)?),
            PacketType::PubRec => Packet::PubRec(decode_response(packet_type, r, version)?),
            PacketType::PubRel => Packet::PubRel(decode_response(packet_type, r, version)?),
            PacketType::PubComp => Packet::PubComp(decode_response(packet_type, r, version)?),
            PacketType::Subscribe => Packet::Subscribe(decode_subscribe(r, version)?),
            PacketType::SubAck => Packet::SubAck(decode_suback(r, version)?),
            PacketType::Unsubscribe => Packet::Unsubscribe(decode_unsubscribe(r, version)?),
            PacketType::UnsubAck => Packet::UnsubAck(decode_unsuback(r, version)?),
            PacketType::PingReq => Packet::PingReq,
            PacketType::PingResp => Packet::PingResp,
            PacketType::Disconnect => Packet::Disconnect(decode_disconnect(r, version)?),
            PacketType::Auth => Packet::Auth(decode_auth(r)?),
        })
    }

    /// The first packet is not a CONNECT: an HTTP request gets nats-server's hint about the
    /// WebSocket port, anything else its "first packet" error.
    fn not_connect(&self, buf: &BytesMut, first: u8) -> Result<Option<Packet>, DecodeError> {
        const HTTP_GET: &[u8] = b"GET ";
        let head = &buf[..buf.len().min(HTTP_GET.len())];
        if HTTP_GET.starts_with(head) {
            if head.len() < HTTP_GET.len() {
                return Ok(None);
            }
            return Err(DecodeError::WebSocketOnMqttPort);
        }
        Err(DecodeError::FirstPacketNotConnect(first & 0xF0))
    }

    /// What to send the peer before closing after `err`, and in which version to encode it:
    /// - 5.0 after CONNECT: DISCONNECT with the error's reason code (4.13.1: SHOULD);
    /// - 3.1.1 after CONNECT: nothing, 3.1.1 servers just close;
    /// - during CONNECT at level 5: CONNACK with the reason code (4.13.1: MAY);
    /// - during CONNECT at level 4: CONNACK with nats-server's return code where it sends one;
    /// - an unsupported level: CONNACK "Unsupported Protocol Version" in 5.0 form above level 5
    ///   (0x84, 5.0 3.1.2.2) and in 3.1.1 form below level 4 (0x01), as the client reads it;
    /// - before the protocol level was read (not MQTT at all): nothing.
    pub fn failure_reply(&self, err: &DecodeError) -> Option<(ProtocolVersion, Packet)> {
        match self.version {
            Some(ProtocolVersion::V5) => {
                let mut reason = err.reason_code();
                if !reason.allowed_in(PacketType::Disconnect) {
                    reason = ReasonCode::ProtocolError;
                }
                Some((
                    ProtocolVersion::V5,
                    Packet::Disconnect(Disconnect {
                        reason,
                        properties: Properties::default(),
                    }),
                ))
            }
            Some(ProtocolVersion::V311) => None,
            None => {
                let level = self.connect_level?;
                let (version, reason) = match level {
                    5 => (ProtocolVersion::V5, err.reason_code()),
                    4 => (
                        ProtocolVersion::V311,
                        ReasonCode::from_v311_connack(err.v311_connack_code()?)?,
                    ),
                    0..4 => (
                        ProtocolVersion::V311,
                        ReasonCode::UnsupportedProtocolVersion,
                    ),
                    _ => (ProtocolVersion::V5, ReasonCode::UnsupportedProtocolVersion),
                };
                Some((
                    version,
                    Packet::ConnAck(ConnAck {
                        session_present: false,
                        reason,
                        properties: Properties::default(),
                    }),
                ))
            }
        }
    }
}

/// Remaining lengths fixed by the packet type, checked before the body arrives (nats-server's
/// `mqttCheckRemainingLength` for 3.1.1; the 5.0 minimums).
fn check_remaining_length(
    packet_type: PacketType,
    version: ProtocolVersion,
    length: usize,
) -> Result<(), DecodeError> {
    use PacketType::*;
    let ok = match (packet_type, version) {
        (PingReq | PingResp, _) => length == 0,
        (PubAck | PubRec | PubRel | PubComp, ProtocolVersion::V311) => length == 2,
        (PubAck | PubRec | PubRel | PubComp, ProtocolVersion::V5) => length >= 2,
        (Disconnect, ProtocolVersion::V311) => length == 0,
        (ConnAck, ProtocolVersion::V311) => length == 2,
        (ConnAck, ProtocolVersion::V5) => length >= 3,
        (UnsubAck, ProtocolVersion::V311) => length == 2,
        (Subscribe | Unsubscribe | SubAck | UnsubAck, _) => length >= 2,
        _ => true,
    };
    if ok {
        Ok(())
    } else {
        Err(DecodeError::InvalidRemainingLength {
            packet_type: (packet_type as u8) << 4,
            length,
        })
    }
}
