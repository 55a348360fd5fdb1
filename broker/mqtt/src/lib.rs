//! MQTT for natrix: the pieces that do not need a running broker.
//!
//! - [`codec`]: the MQTT 3.1.1 (protocol level 4) and 5.0 (level 5) packet codec. An
//!   incremental [`Decoder`] over a `BytesMut` read buffer (a packet is parsed only once it is
//!   whole, and borrows from the buffer: a PUBLISH payload is a `Bytes` slice of it), and
//!   encoders that write straight into a `BytesMut`.
//! - [`topic`]: MQTT topic names and filters to NATS subjects and back, exactly as nats-server
//!   maps them, so an MQTT device and a NATS service meet on one subject; plus the MQTT rules
//!   nats-server leaves to its subscription trie, and `$share/<group>/<filter>` to queue groups.
//! - [`store`]: the JetStream streams nats-server keeps MQTT state in (`$MQTT_sess`,
//!   `$MQTT_msgs`, `$MQTT_rmsgs`, `$MQTT_qos2in`, `$MQTT_out`), their subjects, and the records
//!   and headers written into them, byte-compatible with nats-server's.
//!
//! The listener and the sessions live on top of these, on the core's internal client (see
//! `docs/design/mqtt.md`); this crate depends on neither the core nor JetStream.

pub mod codec;
pub mod store;
pub mod topic;

pub use codec::{
    Auth, ConnAck, Connect, DecodeError, Decoder, Disconnect, EncodeError, Field, LastWill,
    MqttString, Packet, PacketType, Properties, PropertyContext, PropertyId, PropertyType,
    ProtocolVersion, PubResponse, Publish, QoS, ReasonCode, RetainHandling, SubAck, Subscribe,
    SubscribeFilter, SubscriptionOptions, UnsubAck, Unsubscribe,
};
