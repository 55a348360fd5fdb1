//! The MQTT packet codec, 3.1.1 and 5.0.
//!
//! - [`Decoder`] reads packets incrementally from a `BytesMut` and enforces a maximum packet
//!   size; every refusal is a typed [`DecodeError`] that knows its 5.0 reason code and its
//!   3.1.1 CONNACK return code, and [`Decoder::failure_reply`] picks what to send before
//!   closing.
//! - [`Packet::encode`] appends a packet to a `BytesMut` after sizing it once (no intermediate
//!   buffers) and refuses with an [`EncodeError`] what the peer would have to refuse, so what
//!   the encoder writes, the decoder reads back to the same packet.
//!
//! Layout: one file per packet family (`connect`, `publish`, `subscribe`, `disconnect`), the
//! data representations in `wire`, properties in `properties`, reason codes in `reason`.

mod connect;
mod decoder;
mod disconnect;
mod error;
mod packet;
mod properties;
mod publish;
mod reason;
mod string;
mod subscribe;
mod wire;

#[cfg(test)]
mod tests;

pub use decoder::{Decoder, MAX_PACKET_SIZE};
pub use error::{DecodeError, EncodeError, Field};
pub use packet::{
    Auth, ConnAck, Connect, Disconnect, LastWill, Packet, PacketType, ProtocolVersion, PubResponse,
    Publish, QoS, RetainHandling, SubAck, Subscribe, SubscribeFilter, SubscriptionOptions,
    UnsubAck, Unsubscribe,
};
pub use properties::{Properties, PropertyContext, PropertyId, PropertyType};
pub use reason::{ReasonCode, V311_CONNACK_QOS2_WILL_REJECTED};
pub use string::MqttString;
pub use wire::VARINT_MAX;
