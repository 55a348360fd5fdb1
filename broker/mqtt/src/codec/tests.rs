//! Codec tests across packets: round trips for every packet type in both versions, known
//! bytes from real clients, every malformed case the decoder refuses (with the reason code the
//! peer gets), incremental decoding, and a property test that encode then decode is the
//! identity for generated packets.

use bytes::{Bytes, BytesMut};
use proptest::prelude::*;

use super::*;

const V3: ProtocolVersion = ProtocolVersion::V311;
const V5: ProtocolVersion = ProtocolVersion::V5;

fn s(text: &str) -> MqttString {
    MqttString::from(text)
}

fn encode(packet: &Packet, version: ProtocolVersion) -> BytesMut {
    let mut buf = BytesMut::new();
    packet
        .encode(version, &mut buf)
        .unwrap_or_else(|e| panic!("encode {packet:?}: {e}"));
    assert_eq!(
        Ok(buf.len()),
        packet.encoded_len(version),
        "encoded_len of {packet:?}"
    );
    buf
}

/// A decoder in the state a connection at `version` is in after CONNECT.
fn decoder(version: ProtocolVersion) -> Decoder {
    Decoder::with_version(version)
}

fn decode_one(d: &mut Decoder, bytes: &[u8]) -> Result<Packet, DecodeError> {
    let mut buf = BytesMut::from(bytes);
    let packet = d.decode(&mut buf)?.expect("a whole packet");
    assert!(buf.is_empty(), "left over: {buf:?}");
    Ok(packet)
}

fn decode_err(version: Option<ProtocolVersion>, bytes: &[u8]) -> DecodeError {
    let mut d = version.map_or_else(Decoder::new, Decoder::with_version);
    let mut buf = BytesMut::from(bytes);
    match d.decode(&mut buf) {
        Err(e) => e,
        Ok(p) => panic!("expected an error for {bytes:02x?}, got {p:?}"),
    }
}

/// Encodes, decodes, and checks the packet came back unchanged.
fn round_trip(packet: Packet, version: ProtocolVersion) -> BytesMut {
    // A CONNECT names its own level (and is read before the connection has one).
    let (version, mut d) = match &packet {
        Packet::Connect(c) => (c.protocol_version, Decoder::new()),
        _ => (version, decoder(version)),
    };
    let bytes = encode(&packet, version);
    let back = decode_one(&mut d, &bytes).unwrap_or_else(|e| panic!("decode {packet:?}: {e}"));
    assert_eq!(back, packet);
    bytes
}

fn connect(version: ProtocolVersion) -> Connect {
    Connect {
        protocol_version: version,
        clean_start: true,
        keep_alive: 60,
        client_id: s("test"),
        will: None,
        username: None,
        password: None,
        properties: Properties::default(),
    }
}

fn publish(qos: QoS, packet_id: u16) -> Publish {
    Publish {
        dup: false,
        qos,
        retain: false,
        topic: s("a/b"),
        packet_id,
        properties: Properties::default(),
        payload: Bytes::from_static(b"hello"),
    }
}

#[test]
fn connect_bytes_as_mosquitto_sends_them() {
    // mosquitto_sub -V mqttv311 -i test -k 60: clean session, keep alive 60.
    let bytes = round_trip(Packet::Connect(Box::new(connect(V3))), V3);
    assert_eq!(
        &bytes[..],
        b"\x10\x10\x00\x04MQTT\x04\x02\x00\x3c\x00\x04test"
    );
    // The same at level 5 has an empty property block after the keep alive.
    let bytes = round_trip(Packet::Connect(Box::new(connect(V5))), V5);
    assert_eq!(
        &bytes[..],
        b"\x10\x11\x00\x04MQTT\x05\x02\x00\x3c\x00\x00\x04test"
    );
}

#[test]
fn every_packet_type_round_trips_in_3_1_1() {
    let will = LastWill {
        topic: s("last/will"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::ExactlyOnce,
        retain: true,
        properties: Properties::default(),
    };
    let packets = [
        Packet::Connect(Box::new(connect(V3))),
        Packet::Connect(Box::new(Connect {
            clean_start: false,
            will: Some(will),
            username: Some(s("user")),
            password: Some(Bytes::from_static(b"\xffbinary")),
            ..connect(V3)
        })),
        Packet::Connect(Box::new(Connect {
            client_id: s(""),
            ..connect(V3)
        })),
        Packet::ConnAck(ConnAck {
            session_present: true,
            reason: ReasonCode::Success,
            properties: Properties::default(),
        }),
        Packet::ConnAck(ConnAck {
            session_present: false,
            reason: ReasonCode::NotAuthorized,
            properties: Properties::default(),
        }),
        Packet::ConnAck(ConnAck {
            session_present: false,
            reason: ReasonCode::QoSNotSupported,
            properties: Properties::default(),
        }),
        Packet::Publish(publish(QoS::AtMostOnce, 0)),
        Packet::Publish(Publish {
            dup: true,
            retain: true,
            ..publish(QoS::AtLeastOnce, 7)
        }),
        Packet::Publish(Publish {
            payload: Bytes::new(),
            ..publish(QoS::ExactlyOnce, u16::MAX)
        }),
        Packet::PubAck(PubResponse::new(1)),
        Packet::PubRec(PubResponse::new(2)),
        Packet::PubRel(PubResponse::new(3)),
        Packet::PubComp(PubResponse::new(4)),
        Packet::Subscribe(Subscribe {
            packet_id: 10,
            filters: vec![
                SubscribeFilter {
                    filter: s("a/+/c"),
                    options: SubscriptionOptions::default(),
                },
                SubscribeFilter {
                    filter: s("#"),
                    options: SubscriptionOptions {
                        qos: QoS::ExactlyOnce,
                        ..SubscriptionOptions::default()
                    },
                },
            ],
            properties: Properties::default(),
        }),
        Packet::SubAck(SubAck {
            packet_id: 10,
            reasons: vec![
                ReasonCode::Success,
                ReasonCode::GrantedQoS1,
                ReasonCode::GrantedQoS2,
                ReasonCode::UnspecifiedError,
            ],
            properties: Properties::default(),
        }),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 11,
            filters: vec![s("a/+/c"), s("#")],
            properties: Properties::default(),
        }),
        Packet::UnsubAck(UnsubAck {
            packet_id: 11,
            reasons: Vec::new(),
            properties: Properties::default(),
        }),
        Packet::PingReq,
        Packet::PingResp,
        Packet::Disconnect(Disconnect::default()),
    ];
    for packet in packets {
        round_trip(packet, V3);
    }
    assert_eq!(&encode(&Packet::PingReq, V3)[..], b"\xc0\x00");
    assert_eq!(&encode(&Packet::PingResp, V3)[..], b"\xd0\x00");
    assert_eq!(
        &encode(&Packet::Disconnect(Disconnect::default()), V3)[..],
        b"\xe0\x00"
    );
    assert_eq!(
        &encode(&Packet::PubRel(PubResponse::new(0x0102)), V3)[..],
        b"\x62\x02\x01\x02"
    );
    // nats-server's CONNACK for a refused QoS 2 will: return code 0x10.
    let refused = Packet::ConnAck(ConnAck {
        session_present: false,
        reason: ReasonCode::QoSNotSupported,
        properties: Properties::default(),
    });
    assert_eq!(&encode(&refused, V3)[..], b"\x20\x02\x00\x10");
}

fn user_props() -> Vec<(MqttString, MqttString)> {
    vec![(s("k"), s("v1")), (s("k"), s("v2")), (s(""), s(""))]
}

#[test]
fn every_packet_type_round_trips_in_5_0() {
    let will = LastWill {
        topic: s("last/will"),
        payload: Bytes::from_static(b"gone"),
        qos: QoS::AtLeastOnce,
        retain: false,
        properties: Properties {
            will_delay_interval: Some(30),
            message_expiry_interval: Some(600),
            payload_format_indicator: Some(1),
            content_type: Some(s("text/plain")),
            response_topic: Some(s("replies/1")),
            correlation_data: Some(Bytes::from_static(b"\x00\x01")),
            user_properties: user_props(),
            ..Properties::default()
        },
    };
    let reason_props = Properties {
        reason_string: Some(s("because")),
        user_properties: user_props(),
        ..Properties::default()
    };
    let packets = [
        Packet::Connect(Box::new(connect(V5))),
        Packet::Connect(Box::new(Connect {
            clean_start: false,
            client_id: s(""),
            will: Some(will),
            username: None,
            // 5.0 allows a password without a user name (3.1.2.9).
            password: Some(Bytes::from_static(b"token")),
            properties: Properties {
                session_expiry_interval: Some(3600),
                receive_maximum: Some(20),
                maximum_packet_size: Some(1 << 20),
                topic_alias_maximum: Some(10),
                request_response_information: Some(1),
                request_problem_information: Some(0),
                authentication_method: Some(s("SCRAM-SHA-256")),
                authentication_data: Some(Bytes::from_static(b"client-first")),
                user_properties: user_props(),
                ..Properties::default()
            },
            ..connect(V5)
        })),
        Packet::ConnAck(ConnAck {
            session_present: true,
            reason: ReasonCode::Success,
            properties: Properties {
                session_expiry_interval: Some(0),
                receive_maximum: Some(100),
                maximum_qos: Some(1),
                retain_available: Some(1),
                maximum_packet_size: Some(65536),
                assigned_client_identifier: Some(s("natrix-1")),
                topic_alias_maximum: Some(0),
                reason_string: Some(s("welcome")),
                user_properties: user_props(),
                wildcard_subscription_available: Some(1),
                subscription_identifier_available: Some(1),
                shared_subscription_available: Some(1),
                server_keep_alive: Some(30),
                response_information: Some(s("resp/")),
                server_reference: Some(s("other:1883")),
                authentication_method: Some(s("SCRAM-SHA-256")),
                authentication_data: Some(Bytes::from_static(b"server-final")),
                ..Properties::default()
            },
        }),
        Packet::ConnAck(ConnAck {
            session_present: false,
            reason: ReasonCode::Banned,
            properties: Properties::default(),
        }),
        Packet::Publish(publish(QoS::AtMostOnce, 0)),
        Packet::Publish(Publish {
            properties: Properties {
                payload_format_indicator: Some(0),
                message_expiry_interval: Some(5),
                topic_alias: Some(3),
                response_topic: Some(s("reply/to")),
                correlation_data: Some(Bytes::from_static(b"id-1")),
                user_properties: user_props(),
                subscription_identifiers: vec![1, 268_435_455],
                content_type: Some(s("application/json")),
                ..Properties::default()
            },
            ..publish(QoS::ExactlyOnce, 9)
        }),
        // A topic alias stands in for an empty topic.
        Packet::Publish(Publish {
            topic: s(""),
            properties: Properties {
                topic_alias: Some(3),
                ..Properties::default()
            },
            ..publish(QoS::AtLeastOnce, 1)
        }),
        Packet::PubAck(PubResponse::new(1)),
        Packet::PubAck(PubResponse {
            packet_id: 1,
            reason: ReasonCode::NoMatchingSubscribers,
            properties: Properties::default(),
        }),
        Packet::PubRec(PubResponse {
            packet_id: 2,
            reason: ReasonCode::QuotaExceeded,
            properties: reason_props.clone(),
        }),
        Packet::PubRel(PubResponse {
            packet_id: 3,
            reason: ReasonCode::PacketIdentifierNotFound,
            properties: Properties::default(),
        }),
        Packet::PubComp(PubResponse {
            packet_id: 4,
            reason: ReasonCode::Success,
            properties: reason_props.clone(),
        }),
        Packet::Subscribe(Subscribe {
            packet_id: 10,
            filters: vec![
                SubscribeFilter {
                    filter: s("a/+/c"),
                    options: SubscriptionOptions {
                        qos: QoS::AtLeastOnce,
                        no_local: true,
                        retain_as_published: true,
                        retain_handling: RetainHandling::DoNotSend,
                    },
                },
                SubscribeFilter {
                    filter: s("$share/group/a/#"),
                    options: SubscriptionOptions {
                        qos: QoS::ExactlyOnce,
                        retain_handling: RetainHandling::SendIfNew,
                        ..SubscriptionOptions::default()
                    },
                },
            ],
            properties: Properties {
                subscription_identifiers: vec![42],
                user_properties: user_props(),
                ..Properties::default()
            },
        }),
        Packet::SubAck(SubAck {
            packet_id: 10,
            reasons: vec![
                ReasonCode::GrantedQoS1,
                ReasonCode::SharedSubscriptionsNotSupported,
                ReasonCode::TopicFilterInvalid,
            ],
            properties: reason_props.clone(),
        }),
        Packet::Unsubscribe(Unsubscribe {
            packet_id: 11,
            filters: vec![s("a/+/c")],
            properties: Properties {
                user_properties: user_props(),
                ..Properties::default()
            },
        }),
        Packet::UnsubAck(UnsubAck {
            packet_id: 11,
            reasons: vec![ReasonCode::Success, ReasonCode::NoSubscriptionExisted],
            properties: reason_props.clone(),
        }),
        Packet::PingReq,
        Packet::PingResp,
        Packet::Disconnect(Disconnect::default()),
        Packet::Disconnect(Disconnect {
            reason: ReasonCode::DisconnectWithWillMessage,
            properties: Properties::default(),
        }),
        Packet::Disconnect(Disconnect {
            reason: ReasonCode::ServerMoved,
            properties: Properties {
                server_reference: Some(s("other:1883")),
                session_expiry_interval: Some(0),
                reason_string: Some(s("moving")),
                user_properties: user_props(),
                ..Properties::default()
            },
        }),
        Packet::Auth(Auth::default()),
        Packet::Auth(Auth {
            reason: ReasonCode::ContinueAuthentication,
            properties: Properties {
                authentication_method: Some(s("SCRAM-SHA-256")),
                authentication_data: Some(Bytes::from_static(b"step")),
                ..Properties::default()
            },
        }),
    ];
    for packet in packets {
        round_trip(packet, V5);
    }
    // Short forms (3.4.2.1, 3.14.2.1, 3.15.2.1): Success without properties is left off.
    assert_eq!(
        &encode(&Packet::PubAck(PubResponse::new(5)), V5)[..],
        b"\x40\x02\x00\x05"
    );
    assert_eq!(
        &encode(&Packet::Disconnect(Disconnect::default()), V5)[..],
        b"\xe0\x00"
    );
    assert_eq!(&encode(&Packet::Auth(Auth::default()), V5)[..], b"\xf0\x00");
    // And the decoder reads the long forms of the same.
    let mut d = decoder(V5);
    assert_eq!(
        decode_one(&mut d, b"\x40\x04\x00\x05\x00\x00"),
        Ok(Packet::PubAck(PubResponse::new(5)))
    );
    assert_eq!(
        decode_one(&mut d, b"\x40\x03\x00\x05\x10"),
        Ok(Packet::PubAck(PubResponse {
            packet_id: 5,
            reason: ReasonCode::NoMatchingSubscribers,
            properties: Properties::default()
        }))
    );
    assert_eq!(
        decode_one(&mut d, b"\xe0\x01\x8e"),
        Ok(Packet::Disconnect(Disconnect {
            reason: ReasonCode::SessionTakenOver,
            properties: Properties::default()
        }))
    );
}

#[test]
fn version_specific_fields_are_refused_in_3_1_1() {
    let with_reason = Packet::PubAck(PubResponse {
        packet_id: 1,
        reason: ReasonCode::NotAuthorized,
        properties: Properties::default(),
    });
    let mut buf = BytesMut::new();
    assert!(matches!(
        with_reason.encode(V3, &mut buf),
        Err(EncodeError::NotInV311(_))
    ));
    assert!(buf.is_empty(), "nothing is written on refusal");
    let with_props = Packet::Publish(Publish {
        properties: Properties {
            message_expiry_interval: Some(1),
            ..Properties::default()
        },
        ..publish(QoS::AtMostOnce, 0)
    });
    assert_eq!(
        with_props.encode(V3, &mut buf),
        Err(EncodeError::NotInV311("properties"))
    );
    assert!(matches!(
        Packet::Auth(Auth::default()).encode(V3, &mut buf),
        Err(EncodeError::NotInV311(_))
    ));
    let banned = Packet::ConnAck(ConnAck {
        session_present: false,
        reason: ReasonCode::Banned,
        properties: Properties::default(),
    });
    assert!(matches!(
        banned.encode(V3, &mut buf),
        Err(EncodeError::InvalidReasonCode { .. })
    ));
    // 3.1.1 SUBACK says only "Failure" for every 5.0 refusal.
    let suback = Packet::SubAck(SubAck {
        packet_id: 1,
        reasons: vec![ReasonCode::NotAuthorized, ReasonCode::TopicFilterInvalid],
        properties: Properties::default(),
    });
    assert_eq!(&encode(&suback, V3)[..], b"\x90\x04\x00\x01\x80\x80");
    assert_eq!(
        Packet::Connect(Box::new(connect(V5))).encode(V3, &mut buf),
        Err(EncodeError::VersionMismatch {
            packet: 5,
            connection: 4
        })
    );
    assert!(buf.is_empty());
}

#[test]
fn encoder_refuses_what_the_decoder_would() {
    let mut buf = BytesMut::new();
    let cases = [
        (
            Packet::Publish(publish(QoS::AtLeastOnce, 0)),
            EncodeError::ZeroPacketId(PacketType::Publish),
        ),
        (
            Packet::Publish(publish(QoS::AtMostOnce, 3)),
            EncodeError::PacketIdAtQoS0(3),
        ),
        (
            Packet::Publish(Publish {
                dup: true,
                ..publish(QoS::AtMostOnce, 0)
            }),
            EncodeError::DupWithQoS0,
        ),
        (
            Packet::Publish(Publish {
                topic: s("a\0b"),
                ..publish(QoS::AtMostOnce, 0)
            }),
            EncodeError::NullCharacter(Field::TopicName),
        ),
        (
            Packet::Publish(Publish {
                topic: MqttString::from("x".repeat(70_000)),
                ..publish(QoS::AtMostOnce, 0)
            }),
            EncodeError::TooLong {
                field: Field::TopicName,
                len: 70_000,
            },
        ),
        (
            Packet::Subscribe(Subscribe {
                packet_id: 1,
                filters: vec![],
                properties: Properties::default(),
            }),
            EncodeError::NoFilters(PacketType::Subscribe),
        ),
        (
            Packet::PubRel(PubResponse {
                packet_id: 1,
                reason: ReasonCode::NoMatchingSubscribers,
                properties: Properties::default(),
            }),
            EncodeError::InvalidReasonCode {
                packet: PacketType::PubRel,
                code: ReasonCode::NoMatchingSubscribers,
            },
        ),
        (
            Packet::ConnAck(ConnAck {
                session_present: true,
                reason: ReasonCode::NotAuthorized,
                properties: Properties::default(),
            }),
            EncodeError::SessionPresentOnRefusal,
        ),
    ];
    for (packet, expected) in cases {
        assert_eq!(packet.encode(V5, &mut buf), Err(expected), "{packet:?}");
        assert!(buf.is_empty());
    }
}

#[test]
fn publish_header_leaves_the_payload_to_the_caller() {
    let p = Publish {
        properties: Properties {
            topic_alias: Some(2),
            ..Properties::default()
        },
        ..publish(QoS::AtLeastOnce, 5)
    };
    let mut header = BytesMut::new();
    let n = p.encode_header(V5, &mut header).expect("encodable");
    assert_eq!(n, header.len());
    let mut whole = header.clone();
    whole.extend_from_slice(&p.payload);
    assert_eq!(whole, encode(&Packet::Publish(p), V5));
}

#[test]
fn decoding_is_incremental_and_zero_copy() {
    let packets = [
        Packet::Connect(Box::new(connect(V5))),
        Packet::Publish(Publish {
            payload: Bytes::from(vec![7u8; 300]),
            ..publish(QoS::AtLeastOnce, 1)
        }),
        Packet::PingReq,
        Packet::Disconnect(Disconnect::default()),
    ];
    let mut stream = BytesMut::new();
    for p in &packets {
        p.encode(V5, &mut stream).expect("encodable");
    }
    // Byte by byte: nothing comes out until a packet is whole, and nothing is consumed.
    let mut d = Decoder::new();
    let mut buf = BytesMut::new();
    let mut out = Vec::new();
    for b in stream.iter() {
        buf.extend_from_slice(&[*b]);
        let before = buf.len();
        match d.decode(&mut buf).expect("valid stream") {
            Some(p) => out.push(p),
            None => assert_eq!(buf.len(), before),
        }
    }
    assert_eq!(out, packets);
    assert!(buf.is_empty());
    assert_eq!(d.version(), Some(V5));

    // All at once: the payload is a slice of the read buffer, not a copy.
    let mut d = Decoder::new();
    let mut buf = stream.clone();
    let range = buf.as_ptr() as usize..buf.as_ptr() as usize + buf.len();
    let mut decoded = Vec::new();
    while let Some(p) = d.decode(&mut buf).expect("valid stream") {
        decoded.push(p);
    }
    assert_eq!(decoded, packets);
    let Packet::Publish(p) = &decoded[1] else {
        panic!("second packet is the PUBLISH");
    };
    assert!(range.contains(&(p.payload.as_ptr() as usize)));
    assert!(range.contains(&(p.topic.as_ptr() as usize)));
}

#[test]
fn malformed_fixed_headers() {
    let after_connect = Some(V3);
    // A remaining length with a fifth byte.
    assert_eq!(
        decode_err(after_connect, b"\x30\xff\xff\xff\xff\x01"),
        DecodeError::MalformedVarInt
    );
    // A remaining length in more bytes than needed.
    assert_eq!(
        decode_err(after_connect, b"\xc0\x80\x00"),
        DecodeError::NonMinimalVarInt
    );
    // Reserved flags: PUBREL, SUBSCRIBE and UNSUBSCRIBE need 0010, others 0000.
    for (bytes, packet_type, flags) in [
        (&b"\x60\x02\x00\x01"[..], 0x60, 0),
        (&b"\x80\x02\x00\x01"[..], 0x80, 0),
        (&b"\xa3\x02\x00\x01"[..], 0xa0, 3),
        (&b"\xc1\x00"[..], 0xc0, 1),
        (&b"\x42\x02\x00\x01"[..], 0x40, 2),
        (&b"\xe8\x00"[..], 0xe0, 8),
    ] {
        let err = decode_err(after_connect, bytes);
        assert_eq!(
            err,
            DecodeError::InvalidFixedHeaderFlags { packet_type, flags }
        );
        assert_eq!(err.reason_code(), ReasonCode::MalformedPacket);
    }
    // QoS 3.
    let err = decode_err(after_connect, b"\x36\x05\x00\x01a\x00\x01");
    assert_eq!(err, DecodeError::InvalidQoS(3));
    assert_eq!(err.to_string(), "QoS=3 is invalid in MQTT");
    assert_eq!(err.reason_code(), ReasonCode::MalformedPacket);
    // Packet type 0, and AUTH (15) on a 3.1.1 connection.
    assert_eq!(
        decode_err(after_connect, b"\x00\x00"),
        DecodeError::UnknownPacketType(0)
    );
    assert_eq!(
        decode_err(after_connect, b"\xf0\x00"),
        DecodeError::UnknownPacketType(15)
    );
    // Fixed remaining lengths are checked before the body arrives.
    for (version, bytes, packet_type, length) in [
        (V3, &b"\xc0\x01"[..], 0xc0, 1),
        (V5, &b"\xd0\x01"[..], 0xd0, 1),
        (V3, &b"\x40\x03"[..], 0x40, 3),
        (V5, &b"\x50\x01"[..], 0x50, 1),
        (V3, &b"\xe0\x01"[..], 0xe0, 1),
        (V3, &b"\x20\x03"[..], 0x20, 3),
        (V5, &b"\x20\x02"[..], 0x20, 2),
    ] {
        assert_eq!(
            decode_err(Some(version), bytes),
            DecodeError::InvalidRemainingLength {
                packet_type,
                length
            },
            "{bytes:02x?}"
        );
    }
}

#[test]
fn oversize_packets_are_refused_from_their_header() {
    let mut d = decoder(V5);
    d.set_max_packet_size(64);
    // Only the fixed header of a 200-byte PUBLISH has arrived.
    let mut buf = BytesMut::from(&b"\x30\xc5\x01"[..]);
    let err = d.decode(&mut buf).expect_err("too large");
    assert_eq!(err, DecodeError::PacketTooLarge { size: 200, max: 64 });
    assert_eq!(err.reason_code(), ReasonCode::PacketTooLarge);
    assert_eq!(
        d.failure_reply(&err),
        Some((
            V5,
            Packet::Disconnect(Disconnect {
                reason: ReasonCode::PacketTooLarge,
                properties: Properties::default()
            })
        ))
    );
    // Exactly at the limit is fine: 2 bytes of fixed header, 5 of topic, 1 of properties.
    let p = Packet::Publish(Publish {
        payload: Bytes::from(vec![0u8; 64 - 2 - 5 - 1]),
        ..publish(QoS::AtMostOnce, 0)
    });
    let bytes = encode(&p, V5);
    assert_eq!(bytes.len(), 64);
    assert_eq!(decode_one(&mut d, &bytes), Ok(p));
}

#[test]
fn first_packet_must_be_connect() {
    let err = decode_err(None, b"\x30\x05\x00\x01ahi");
    assert_eq!(err, DecodeError::FirstPacketNotConnect(0x30));
    assert_eq!(
        err.to_string(),
        "the first packet should be a CONNECT (16), got 48"
    );
    assert_eq!(
        decode_err(None, b"GET /mqtt HTTP/1.1\r\n"),
        DecodeError::WebSocketOnMqttPort
    );
    // "GE" could still become "GET ": wait.
    let mut d = Decoder::new();
    let mut buf = BytesMut::from(&b"GE"[..]);
    assert_eq!(d.decode(&mut buf), Ok(None));
    // Nothing to send back: the peer is not speaking MQTT.
    assert_eq!(d.failure_reply(&DecodeError::WebSocketOnMqttPort), None);
}

/// A CONNECT with `body` after the fixed header.
fn connect_bytes(body: &[u8]) -> Vec<u8> {
    let mut bytes = vec![0x10, body.len() as u8];
    bytes.extend_from_slice(body);
    bytes
}

#[test]
fn malformed_connect_and_what_the_client_is_told() {
    struct Case {
        name: &'static str,
        body: &'static [u8],
        err: DecodeError,
        reply: Option<(ProtocolVersion, ReasonCode)>,
    }
    let cases = [
        Case {
            name: "bad protocol name",
            body: b"\x00\x04MQTX\x04\x02\x00\x00\x00\x00",
            err: DecodeError::InvalidProtocolName("MQTX".into()),
            reply: None,
        },
        Case {
            name: "MQTT 3.1",
            body: b"\x00\x06MQIsdp\x03\x02\x00\x00\x00\x00",
            err: DecodeError::OlderProtocol,
            reply: None,
        },
        Case {
            name: "protocol level 6",
            body: b"\x00\x04MQTT\x06\x02\x00\x00\x00\x00",
            err: DecodeError::UnsupportedProtocolLevel(6),
            reply: Some((V5, ReasonCode::UnsupportedProtocolVersion)),
        },
        Case {
            name: "protocol level 3",
            body: b"\x00\x04MQTT\x03\x02\x00\x00\x00\x00",
            err: DecodeError::UnsupportedProtocolLevel(3),
            reply: Some((V3, ReasonCode::UnsupportedProtocolVersion)),
        },
        Case {
            name: "reserved connect flag",
            body: b"\x00\x04MQTT\x04\x03\x00\x00\x00\x00",
            err: DecodeError::ConnectReservedFlag,
            reply: None,
        },
        Case {
            name: "reserved connect flag in 5.0",
            body: b"\x00\x04MQTT\x05\x03\x00\x00\x00\x00\x00",
            err: DecodeError::ConnectReservedFlag,
            reply: Some((V5, ReasonCode::MalformedPacket)),
        },
        Case {
            name: "will QoS without will",
            body: b"\x00\x04MQTT\x04\x0a\x00\x00\x00\x00",
            err: DecodeError::WillQoSWithoutWill(1),
            reply: None,
        },
        Case {
            name: "will retain without will",
            body: b"\x00\x04MQTT\x04\x22\x00\x00\x00\x00",
            err: DecodeError::WillRetainWithoutWill,
            reply: None,
        },
        Case {
            name: "will QoS 3",
            body: b"\x00\x04MQTT\x04\x1e\x00\x00\x00\x00",
            err: DecodeError::InvalidWillQoS(3),
            reply: None,
        },
        Case {
            name: "password without user name in 3.1.1",
            body: b"\x00\x04MQTT\x04\x42\x00\x00\x00\x00\x00\x00",
            err: DecodeError::PasswordWithoutUserName,
            reply: None,
        },
        Case {
            name: "empty client ID without clean session",
            body: b"\x00\x04MQTT\x04\x00\x00\x00\x00\x00",
            err: DecodeError::EmptyClientIdNeedsCleanSession,
            reply: Some((V3, ReasonCode::ClientIdentifierNotValid)),
        },
        Case {
            name: "client ID not UTF-8",
            body: b"\x00\x04MQTT\x04\x02\x00\x00\x00\x01\xf1",
            err: DecodeError::InvalidUtf8(Field::ClientId),
            reply: Some((V3, ReasonCode::ClientIdentifierNotValid)),
        },
        Case {
            name: "user name with NUL",
            body: b"\x00\x04MQTT\x04\x82\x00\x00\x00\x01a\x00\x03a\x00b",
            err: DecodeError::NullCharacter(Field::UserName),
            reply: Some((V3, ReasonCode::BadUserNameOrPassword)),
        },
        Case {
            name: "empty will topic",
            body: b"\x00\x04MQTT\x04\x06\x00\x00\x00\x00\x00\x00\x00\x00",
            err: DecodeError::EmptyWillTopic,
            reply: None,
        },
        Case {
            name: "missing will message",
            body: b"\x00\x04MQTT\x04\x06\x00\x00\x00\x00\x00\x01a",
            err: DecodeError::UnexpectedEof(Field::WillMessage),
            reply: None,
        },
        Case {
            name: "missing keep alive",
            body: b"\x00\x04MQTT\x04\x02\x00",
            err: DecodeError::UnexpectedEof(Field::KeepAlive),
            reply: None,
        },
        Case {
            name: "trailing bytes",
            body: b"\x00\x04MQTT\x04\x02\x00\x00\x00\x00\xff",
            err: DecodeError::TrailingBytes {
                packet: PacketType::Connect,
                extra: 1,
            },
            reply: None,
        },
        Case {
            name: "duplicate session expiry",
            body:
                b"\x00\x04MQTT\x05\x02\x00\x00\x0a\x11\x00\x00\x00\x01\x11\x00\x00\x00\x02\x00\x00",
            err: DecodeError::DuplicateProperty(PropertyId::SessionExpiryInterval),
            reply: Some((V5, ReasonCode::ProtocolError)),
        },
        Case {
            name: "property length past the packet",
            body: b"\x00\x04MQTT\x05\x02\x00\x00\x09\x11\x00\x00\x00\x01",
            err: DecodeError::UnexpectedEof(Field::PropertyLength),
            reply: Some((V5, ReasonCode::MalformedPacket)),
        },
        Case {
            name: "receive maximum 0",
            body: b"\x00\x04MQTT\x05\x02\x00\x00\x03\x21\x00\x00\x00\x00",
            err: DecodeError::InvalidPropertyValue {
                id: PropertyId::ReceiveMaximum,
                value: 0,
            },
            reply: Some((V5, ReasonCode::ProtocolError)),
        },
        Case {
            name: "topic alias in CONNECT",
            body: b"\x00\x04MQTT\x05\x02\x00\x00\x03\x23\x00\x01\x00\x00",
            err: DecodeError::PropertyNotAllowed {
                id: PropertyId::TopicAlias,
                context: PropertyContext::Connect,
            },
            reply: Some((V5, ReasonCode::ProtocolError)),
        },
    ];
    for case in cases {
        let mut d = Decoder::new();
        let mut buf = BytesMut::from(&connect_bytes(case.body)[..]);
        let err = d.decode(&mut buf).expect_err(case.name);
        assert_eq!(err, case.err, "{}", case.name);
        let reply = d.failure_reply(&err).map(|(version, packet)| {
            let Packet::ConnAck(ack) = packet else {
                panic!("{}: a CONNECT fault is answered with CONNACK", case.name);
            };
            (version, ack.reason)
        });
        assert_eq!(reply, case.reply, "{}", case.name);
        assert_eq!(d.version(), None, "{}", case.name);
    }
    // The refusals the client reads: 0x84 in 5.0 form for level 6, 0x01 in 3.1.1 form.
    let mut d = Decoder::new();
    let err = d
        .decode(&mut BytesMut::from(
            &connect_bytes(b"\x00\x04MQTT\x06\x02\x00\x00\x00\x00")[..],
        ))
        .expect_err("level 6");
    let (version, reply) = d.failure_reply(&err).expect("a CONNACK");
    assert_eq!(&encode(&reply, version)[..], b"\x20\x03\x00\x84\x00");
    let mut d = Decoder::new();
    let err = d
        .decode(&mut BytesMut::from(
            &connect_bytes(b"\x00\x04MQTT\x03\x02\x00\x00\x00\x00")[..],
        ))
        .expect_err("level 3");
    let (version, reply) = d.failure_reply(&err).expect("a CONNACK");
    assert_eq!(&encode(&reply, version)[..], b"\x20\x02\x00\x01");
}

#[test]
fn what_5_0_allows_in_connect() {
    // Password without user name, and an empty client ID without clean start.
    let mut d = Decoder::new();
    let p = decode_one(
        &mut d,
        &connect_bytes(b"\x00\x04MQTT\x05\x40\x00\x00\x00\x00\x00\x00\x02pw"),
    )
    .expect("valid in 5.0");
    let Packet::Connect(c) = p else {
        panic!("CONNECT")
    };
    assert_eq!(c.password.as_deref(), Some(&b"pw"[..]));
    assert!(c.client_id.is_empty() && !c.clean_start);
}

#[test]
fn second_connect_is_left_to_the_session() {
    // The codec reads it; the session refuses it (nats-server: "received a second CONNECT
    // packet"; 5.0: Protocol Error). The first CONNECT's version stays.
    let mut d = Decoder::new();
    let first = encode(&Packet::Connect(Box::new(connect(V3))), V3);
    let second = encode(&Packet::Connect(Box::new(connect(V5))), V5);
    assert!(matches!(decode_one(&mut d, &first), Ok(Packet::Connect(_))));
    assert!(matches!(
        decode_one(&mut d, &second),
        Ok(Packet::Connect(_))
    ));
    assert_eq!(d.version(), Some(V3));
}

#[test]
fn malformed_packets_after_connect() {
    struct Case {
        name: &'static str,
        version: ProtocolVersion,
        bytes: &'static [u8],
        err: DecodeError,
    }
    let cases = [
        Case {
            name: "publish with empty topic",
            version: V3,
            bytes: b"\x30\x02\x00\x00",
            err: DecodeError::EmptyTopic,
        },
        Case {
            name: "5.0 publish with empty topic and no alias",
            version: V5,
            bytes: b"\x30\x03\x00\x00\x00",
            err: DecodeError::EmptyTopic,
        },
        Case {
            name: "publish topic runs past the packet",
            version: V3,
            bytes: b"\x30\x04\x00\x03fo",
            err: DecodeError::UnexpectedEof(Field::TopicName),
        },
        Case {
            name: "publish topic not UTF-8",
            version: V3,
            bytes: b"\x30\x03\x00\x01\xf1",
            err: DecodeError::InvalidUtf8(Field::TopicName),
        },
        Case {
            name: "publish QoS 1 with packet identifier 0",
            version: V3,
            bytes: b"\x32\x05\x00\x01a\x00\x00",
            err: DecodeError::ZeroPacketId,
        },
        Case {
            name: "publish QoS 1 without packet identifier",
            version: V3,
            bytes: b"\x32\x03\x00\x01a",
            err: DecodeError::UnexpectedEof(Field::PacketId),
        },
        Case {
            name: "DUP on QoS 0",
            version: V3,
            bytes: b"\x38\x03\x00\x01a",
            err: DecodeError::DupWithQoS0,
        },
        Case {
            name: "publish with truncated properties",
            version: V5,
            bytes: b"\x30\x06\x00\x01a\x05\x02\x00",
            err: DecodeError::UnexpectedEof(Field::PropertyLength),
        },
        Case {
            name: "publish with a property value past its block",
            version: V5,
            bytes: b"\x30\x08\x00\x01a\x02\x02\x00\x00\x00",
            err: DecodeError::UnexpectedEof(Field::PropertyValue),
        },
        Case {
            name: "publish with two topic aliases",
            version: V5,
            bytes: b"\x30\x0a\x00\x01a\x06\x23\x00\x01\x23\x00\x02",
            err: DecodeError::DuplicateProperty(PropertyId::TopicAlias),
        },
        Case {
            name: "publish with two message expiry intervals",
            version: V5,
            bytes: b"\x30\x0e\x00\x01a\x0a\x02\x00\x00\x00\x01\x02\x00\x00\x00\x02",
            err: DecodeError::DuplicateProperty(PropertyId::MessageExpiryInterval),
        },
        Case {
            name: "publish with a session expiry interval",
            version: V5,
            bytes: b"\x30\x09\x00\x01a\x05\x11\x00\x00\x00\x01",
            err: DecodeError::PropertyNotAllowed {
                id: PropertyId::SessionExpiryInterval,
                context: PropertyContext::Publish,
            },
        },
        Case {
            name: "publish with an unknown property",
            version: V5,
            bytes: b"\x30\x06\x00\x01a\x02\x05\x00",
            err: DecodeError::UnknownProperty(5),
        },
        Case {
            name: "puback with packet identifier 0",
            version: V3,
            bytes: b"\x40\x02\x00\x00",
            err: DecodeError::ZeroPacketId,
        },
        Case {
            name: "5.0 pubrel with a reason only PUBACK may carry",
            version: V5,
            bytes: b"\x62\x03\x00\x01\x10",
            err: DecodeError::InvalidReasonCode {
                packet: PacketType::PubRel,
                code: 0x10,
            },
        },
        Case {
            name: "subscribe without filters",
            version: V3,
            bytes: b"\x82\x02\x00\x01",
            err: DecodeError::NoSubscribeFilters,
        },
        Case {
            name: "subscribe with an empty filter",
            version: V3,
            bytes: b"\x82\x05\x00\x01\x00\x00\x00",
            err: DecodeError::EmptyTopicFilter,
        },
        Case {
            name: "subscribe QoS 3",
            version: V3,
            bytes: b"\x82\x06\x00\x01\x00\x01a\x03",
            err: DecodeError::InvalidSubscriptionOptions(3),
        },
        Case {
            name: "3.1.1 subscribe with 5.0 option bits",
            version: V3,
            bytes: b"\x82\x06\x00\x01\x00\x01a\x04",
            err: DecodeError::InvalidSubscriptionOptions(4),
        },
        Case {
            name: "subscribe without options byte",
            version: V3,
            bytes: b"\x82\x05\x00\x01\x00\x01a",
            err: DecodeError::UnexpectedEof(Field::SubscriptionOptions),
        },
        Case {
            name: "5.0 subscribe with reserved option bits",
            version: V5,
            bytes: b"\x82\x07\x00\x01\x00\x00\x01a\x40",
            err: DecodeError::InvalidSubscriptionOptions(0x40),
        },
        Case {
            name: "5.0 subscribe with retain handling 3",
            version: V5,
            bytes: b"\x82\x07\x00\x01\x00\x00\x01a\x30",
            err: DecodeError::InvalidRetainHandling,
        },
        Case {
            name: "5.0 no local on a shared subscription",
            version: V5,
            bytes: b"\x82\x10\x00\x01\x00\x00\x0a$share/g/a\x04",
            err: DecodeError::NoLocalOnSharedSubscription,
        },
        Case {
            name: "5.0 subscribe with two subscription identifiers",
            version: V5,
            bytes: b"\x82\x0b\x00\x01\x04\x0b\x01\x0b\x02\x00\x01a\x00",
            err: DecodeError::DuplicateProperty(PropertyId::SubscriptionIdentifier),
        },
        Case {
            name: "5.0 subscribe with subscription identifier 0",
            version: V5,
            bytes: b"\x82\x09\x00\x01\x02\x0b\x00\x00\x01a\x00",
            err: DecodeError::InvalidPropertyValue {
                id: PropertyId::SubscriptionIdentifier,
                value: 0,
            },
        },
        Case {
            name: "unsubscribe without filters",
            version: V3,
            bytes: b"\xa2\x02\x00\x01",
            err: DecodeError::NoUnsubscribeFilters,
        },
        Case {
            name: "unsubscribe filter with NUL",
            version: V3,
            bytes: b"\xa2\x07\x00\x01\x00\x03a\x00b",
            err: DecodeError::NullCharacter(Field::TopicFilter),
        },
        Case {
            name: "connack with reserved flags",
            version: V3,
            bytes: b"\x20\x02\x02\x00",
            err: DecodeError::ConnAckReservedFlags,
        },
        Case {
            name: "connack session present on refusal",
            version: V3,
            bytes: b"\x20\x02\x01\x05",
            err: DecodeError::SessionPresentOnRefusal,
        },
        Case {
            name: "3.1.1 connack return code 6",
            version: V3,
            bytes: b"\x20\x02\x00\x06",
            err: DecodeError::InvalidReasonCode {
                packet: PacketType::ConnAck,
                code: 6,
            },
        },
        Case {
            name: "3.1.1 suback return code 3",
            version: V3,
            bytes: b"\x90\x03\x00\x01\x03",
            err: DecodeError::InvalidReasonCode {
                packet: PacketType::SubAck,
                code: 3,
            },
        },
        Case {
            name: "5.0 disconnect with a CONNACK-only reason",
            version: V5,
            bytes: b"\xe0\x01\x84",
            err: DecodeError::InvalidReasonCode {
                packet: PacketType::Disconnect,
                code: 0x84,
            },
        },
        Case {
            name: "5.0 auth with an unknown reason",
            version: V5,
            bytes: b"\xf0\x01\x01",
            err: DecodeError::InvalidReasonCode {
                packet: PacketType::Auth,
                code: 0x01,
            },
        },
        Case {
            name: "5.0 auth data without method",
            version: V5,
            bytes: b"\xf0\x06\x18\x04\x16\x00\x01x",
            err: DecodeError::AuthDataWithoutMethod,
        },
        Case {
            name: "5.0 puback with trailing bytes after its properties",
            version: V5,
            bytes: b"\x40\x05\x00\x01\x00\x00\x00",
            err: DecodeError::TrailingBytes {
                packet: PacketType::PubAck,
                extra: 1,
            },
        },
    ];
    for case in cases {
        let err = decode_err(Some(case.version), case.bytes);
        assert_eq!(err, case.err, "{}", case.name);
        // Whatever the fault, a 5.0 peer is told with a DISCONNECT it can read.
        let d = decoder(case.version);
        match d.failure_reply(&err) {
            Some((v, Packet::Disconnect(dis))) => {
                assert_eq!(v, V5);
                assert!(dis.reason.allowed_in(PacketType::Disconnect));
                assert!(dis.reason.is_error(), "{}", case.name);
            }
            None => assert_eq!(case.version, V3, "{}", case.name),
            other => panic!("{}: unexpected reply {other:?}", case.name),
        }
    }
}

#[test]
fn reason_codes_of_representative_faults() {
    assert_eq!(
        decode_err(Some(V5), b"\x30\x0a\x00\x01a\x06\x23\x00\x01\x23\x00\x02").reason_code(),
        ReasonCode::ProtocolError
    );
    assert_eq!(
        decode_err(Some(V5), b"\x30\x06\x00\x01a\x05\x02\x00").reason_code(),
        ReasonCode::MalformedPacket
    );
    assert_eq!(
        decode_err(Some(V5), b"\x82\x07\x00\x01\x00\x00\x01a\x30").reason_code(),
        ReasonCode::ProtocolError
    );
}

// ---------------------------------------------------------------------------------------
// Property test: encode then decode is the identity.

fn arb_string() -> impl Strategy<Value = MqttString> {
    "[a-zA-Z0-9/+#$ é_.-]{0,16}".prop_map(MqttString::from)
}

fn arb_nonempty_string() -> impl Strategy<Value = MqttString> {
    "[a-zA-Z0-9/+#$ é_.-]{1,16}".prop_map(MqttString::from)
}

fn arb_bytes() -> impl Strategy<Value = Bytes> {
    proptest::collection::vec(any::<u8>(), 0..24).prop_map(Bytes::from)
}

fn arb_bool_byte() -> impl Strategy<Value = Option<u8>> {
    proptest::option::of(0u8..=1)
}

/// Any valid properties; `for_context` then keeps what the packet allows.
fn arb_properties() -> impl Strategy<Value = Properties> {
    let messages = (
        arb_bool_byte(),
        proptest::option::of(any::<u32>()),
        proptest::option::of(arb_string()),
        proptest::option::of(arb_string()),
        proptest::option::of(arb_bytes()),
        proptest::collection::vec(1u32..=VARINT_MAX, 0..3),
        proptest::option::of(1u16..),
        proptest::option::of(any::<u32>()),
    );
    let connection = (
        proptest::option::of(any::<u32>()),
        proptest::option::of(arb_string()),
        proptest::option::of(any::<u16>()),
        proptest::option::of(arb_string()),
        proptest::option::of(arb_bytes()),
        arb_bool_byte(),
        arb_bool_byte(),
        proptest::option::of(arb_string()),
        proptest::option::of(arb_string()),
        proptest::option::of(1u16..),
        proptest::option::of(any::<u16>()),
        proptest::option::of(1u32..),
    );
    let capabilities = (
        arb_bool_byte(),
        arb_bool_byte(),
        arb_bool_byte(),
        arb_bool_byte(),
        arb_bool_byte(),
        proptest::option::of(arb_string()),
        proptest::collection::vec((arb_string(), arb_string()), 0..3),
    );
    (messages, connection, capabilities).prop_map(|(m, c, k)| Properties {
        payload_format_indicator: m.0,
        message_expiry_interval: m.1,
        content_type: m.2,
        response_topic: m.3,
        correlation_data: m.4,
        subscription_identifiers: m.5,
        topic_alias: m.6,
        will_delay_interval: m.7,
        session_expiry_interval: c.0,
        assigned_client_identifier: c.1,
        server_keep_alive: c.2,
        authentication_method: c.3,
        authentication_data: c.4,
        request_problem_information: c.5,
        request_response_information: c.6,
        response_information: c.7,
        server_reference: c.8,
        receive_maximum: c.9,
        topic_alias_maximum: c.10,
        maximum_packet_size: c.11,
        maximum_qos: k.0,
        retain_available: k.1,
        wildcard_subscription_available: k.2,
        subscription_identifier_available: k.3,
        shared_subscription_available: k.4,
        reason_string: k.5,
        user_properties: k.6,
    })
}

/// Drops what `context` does not allow, so the generated packet is valid.
fn for_context(
    mut p: Properties,
    context: PropertyContext,
    version: ProtocolVersion,
) -> Properties {
    if version == V3 {
        return Properties::default();
    }
    macro_rules! keep {
        ($($field:ident: $id:ident),* $(,)?) => {
            $(if !PropertyId::$id.allowed_in(context) { p.$field = Default::default(); })*
        };
    }
    keep!(
        payload_format_indicator: PayloadFormatIndicator,
        message_expiry_interval: MessageExpiryInterval,
        content_type: ContentType,
        response_topic: ResponseTopic,
        correlation_data: CorrelationData,
        subscription_identifiers: SubscriptionIdentifier,
        session_expiry_interval: SessionExpiryInterval,
        assigned_client_identifier: AssignedClientIdentifier,
        server_keep_alive: ServerKeepAlive,
        authentication_method: AuthenticationMethod,
        authentication_data: AuthenticationData,
        request_problem_information: RequestProblemInformation,
        will_delay_interval: WillDelayInterval,
        request_response_information: RequestResponseInformation,
        response_information: ResponseInformation,
        server_reference: ServerReference,
        reason_string: ReasonString,
        receive_maximum: ReceiveMaximum,
        topic_alias_maximum: TopicAliasMaximum,
        topic_alias: TopicAlias,
        maximum_qos: MaximumQoS,
        retain_available: RetainAvailable,
        user_properties: UserProperty,
        maximum_packet_size: MaximumPacketSize,
        wildcard_subscription_available: WildcardSubscriptionAvailable,
        subscription_identifier_available: SubscriptionIdentifierAvailable,
        shared_subscription_available: SharedSubscriptionAvailable,
    );
    if !PropertyId::SubscriptionIdentifier.repeatable_in(context) {
        p.subscription_identifiers.truncate(1);
    }
    if p.authentication_method.is_none() {
        p.authentication_data = None;
    }
    p
}

fn arb_qos() -> impl Strategy<Value = QoS> {
    prop_oneof![
        Just(QoS::AtMostOnce),
        Just(QoS::AtLeastOnce),
        Just(QoS::ExactlyOnce)
    ]
}

fn arb_reason(packet: PacketType, version: ProtocolVersion) -> impl Strategy<Value = ReasonCode> {
    let allowed: Vec<ReasonCode> = ReasonCode::ALL
        .into_iter()
        .filter(|c| c.allowed_in(packet))
        .filter(|c| match (version, packet) {
            (ProtocolVersion::V5, _) => true,
            (ProtocolVersion::V311, PacketType::ConnAck) => c.to_v311_connack().is_some(),
            (ProtocolVersion::V311, PacketType::SubAck) => {
                ReasonCode::from_v311_suback(c.to_v311_suback().unwrap_or(0xff)) == Some(*c)
            }
            (ProtocolVersion::V311, _) => *c == ReasonCode::Success,
        })
        .collect();
    proptest::sample::select(allowed)
}

fn arb_connect(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let will = proptest::option::of(
        (
            arb_nonempty_string(),
            arb_bytes(),
            arb_qos(),
            any::<bool>(),
            arb_properties(),
        )
            .prop_map(move |(topic, payload, qos, retain, p)| LastWill {
                topic,
                payload,
                qos,
                retain,
                properties: for_context(p, PropertyContext::Will, version),
            }),
    );
    (
        any::<bool>(),
        any::<u16>(),
        arb_string(),
        will,
        proptest::option::of(arb_string()),
        proptest::option::of(arb_bytes()),
        arb_properties(),
    )
        .prop_map(
            move |(clean_start, keep_alive, client_id, will, username, password, p)| {
                let v3 = version == V3;
                Packet::Connect(Box::new(Connect {
                    protocol_version: version,
                    // 3.1.1 needs clean session with an empty client ID.
                    clean_start: clean_start || (v3 && client_id.is_empty()),
                    keep_alive,
                    client_id,
                    will,
                    // 3.1.1 needs a user name with a password.
                    username: if v3 && password.is_some() && username.is_none() {
                        Some(MqttString::from("u"))
                    } else {
                        username
                    },
                    password,
                    properties: for_context(p, PropertyContext::Connect, version),
                }))
            },
        )
}

fn arb_packet(version: ProtocolVersion) -> impl Strategy<Value = Packet> {
    let connack = (
        any::<bool>(),
        arb_reason(PacketType::ConnAck, version),
        arb_properties(),
    )
        .prop_map(move |(sp, reason, p)| {
            Packet::ConnAck(ConnAck {
                session_present: sp && reason == ReasonCode::Success,
                reason,
                properties: for_context(p, PropertyContext::ConnAck, version),
            })
        });
    let publish = (
        any::<bool>(),
        arb_qos(),
        any::<bool>(),
        arb_string(),
        1u16..,
        arb_properties(),
        arb_bytes(),
    )
        .prop_map(move |(dup, qos, retain, topic, id, p, payload)| {
            let mut properties = for_context(p, PropertyContext::Publish, version);
            if topic.is_empty() && properties.topic_alias.is_none() {
                properties = Properties::default();
            }
            let topic = if topic.is_empty() && properties.topic_alias.is_none() {
                MqttString::from("t")
            } else {
                topic
            };
            Packet::Publish(Publish {
                dup: dup && qos != QoS::AtMostOnce,
                qos,
                retain,
                topic,
                packet_id: if qos == QoS::AtMostOnce { 0 } else { id },
                properties,
                payload,
            })
        });
    let response = |packet: PacketType, context: PropertyContext| {
        (1u16.., arb_reason(packet, version), arb_properties()).prop_map(
            move |(packet_id, reason, p)| PubResponse {
                packet_id,
                reason,
                properties: for_context(p, context, version),
            },
        )
    };
    let options = (arb_qos(), any::<bool>(), any::<bool>(), 0u8..3).prop_map(
        move |(qos, no_local, rap, rh)| {
            if version == V3 {
                return SubscriptionOptions {
                    qos,
                    ..SubscriptionOptions::default()
                };
            }
            SubscriptionOptions {
                qos,
                no_local,
                retain_as_published: rap,
                retain_handling: match rh {
                    0 => RetainHandling::SendAtSubscribe,
                    1 => RetainHandling::SendIfNew,
                    _ => RetainHandling::DoNotSend,
                },
            }
        },
    );
    let subscribe = (
        1u16..,
        proptest::collection::vec((arb_nonempty_string(), options), 1..4),
        arb_properties(),
    )
        .prop_map(move |(packet_id, filters, p)| {
            Packet::Subscribe(Subscribe {
                packet_id,
                filters: filters
                    .into_iter()
                    .map(|(filter, mut options)| {
                        if filter.starts_with("$share/") {
                            options.no_local = false;
                        }
                        SubscribeFilter { filter, options }
                    })
                    .collect(),
                properties: for_context(p, PropertyContext::Subscribe, version),
            })
        });
    let suback = (
        1u16..,
        proptest::collection::vec(arb_reason(PacketType::SubAck, version), 0..4),
        arb_properties(),
    )
        .prop_map(move |(packet_id, reasons, p)| {
            Packet::SubAck(SubAck {
                packet_id,
                reasons,
                properties: for_context(p, PropertyContext::SubAck, version),
            })
        });
    let unsubscribe = (
        1u16..,
        proptest::collection::vec(arb_nonempty_string(), 1..4),
        arb_properties(),
    )
        .prop_map(move |(packet_id, filters, p)| {
            Packet::Unsubscribe(Unsubscribe {
                packet_id,
                filters,
                properties: for_context(p, PropertyContext::Unsubscribe, version),
            })
        });
    let unsuback = (
        1u16..,
        proptest::collection::vec(arb_reason(PacketType::UnsubAck, V5), 0..4),
        arb_properties(),
    )
        .prop_map(move |(packet_id, reasons, p)| {
            Packet::UnsubAck(UnsubAck {
                packet_id,
                reasons: if version == V3 { Vec::new() } else { reasons },
                properties: for_context(p, PropertyContext::UnsubAck, version),
            })
        });
    let disconnect = (
        arb_reason(PacketType::Disconnect, version),
        arb_properties(),
    )
        .prop_map(move |(reason, p)| {
            Packet::Disconnect(Disconnect {
                reason,
                properties: for_context(p, PropertyContext::Disconnect, version),
            })
        });
    let auth = (arb_reason(PacketType::Auth, V5), arb_properties()).prop_map(move |(reason, p)| {
        Packet::Auth(Auth {
            reason,
            properties: for_context(p, PropertyContext::Auth, V5),
        })
    });
    let mut options = vec![
        connack.boxed(),
        publish.boxed(),
        response(PacketType::PubAck, PropertyContext::PubAck)
            .prop_map(Packet::PubAck)
            .boxed(),
        response(PacketType::PubRec, PropertyContext::PubRec)
            .prop_map(Packet::PubRec)
            .boxed(),
        response(PacketType::PubRel, PropertyContext::PubRel)
            .prop_map(Packet::PubRel)
            .boxed(),
        response(PacketType::PubComp, PropertyContext::PubComp)
            .prop_map(Packet::PubComp)
            .boxed(),
        subscribe.boxed(),
        suback.boxed(),
        unsubscribe.boxed(),
        unsuback.boxed(),
        Just(Packet::PingReq).boxed(),
        Just(Packet::PingResp).boxed(),
        disconnect.boxed(),
    ];
    if version == V5 {
        options.push(auth.boxed());
    }
    proptest::strategy::Union::new(options)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn v3_packets_round_trip(packet in arb_packet(V3)) {
        round_trip(packet, V3);
    }

    #[test]
    fn v5_packets_round_trip(packet in arb_packet(V5)) {
        round_trip(packet, V5);
    }

    #[test]
    fn v5_connects_round_trip(packet in arb_connect(V5)) {
        round_trip(packet, V5);
    }

    #[test]
    fn v3_connects_round_trip(packet in arb_connect(V3)) {
        round_trip(packet, V3);
    }

    /// Any bytes: the decoder never panics, and whatever it accepts encodes back to a packet
    /// that decodes to the same (the fuzz target's property, here on every test run).
    #[test]
    fn arbitrary_bytes_decode_or_fail_cleanly(
        bytes in proptest::collection::vec(any::<u8>(), 0..64),
        version in prop_oneof![Just(V3), Just(V5)],
    ) {
        let mut d = Decoder::with_version(version);
        let mut buf = BytesMut::from(&bytes[..]);
        while let Ok(Some(packet)) = d.decode(&mut buf) {
            let again = round_trip(packet, version);
            prop_assert!(!again.is_empty());
        }
    }
}
