//! Feeds arbitrary bytes, split into arbitrary reads, to the MQTT decoder of a connection in
//! each state (waiting for CONNECT, at 3.1.1, at 5.0, with and without a packet size limit)
//! and checks that it never panics, that every packet it accepts encodes again and decodes to
//! the same packet, that every refusal has a reply that encodes, and that the topic mapping
//! copes with every topic and filter that gets through. MQTT bytes come straight from devices
//! on the network, so all of this is untrusted input.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use natrix_mqtt::topic::{Subscription, subject_to_topic, topic_to_subject};
use natrix_mqtt::{Decoder, Packet, ProtocolVersion};

fuzz_target!(|data: &[u8]| {
    let Some((&mode, input)) = data.split_first() else {
        return;
    };
    let mut decoder = match mode % 3 {
        0 => Decoder::new(),
        1 => Decoder::with_version(ProtocolVersion::V311),
        _ => Decoder::with_version(ProtocolVersion::V5),
    };
    if mode & 0x80 != 0 {
        decoder.set_max_packet_size(u32::from(mode & 0x7f) * 8);
    }
    // Reads of 1 to 32 bytes, as a socket may deliver them.
    let read_size = usize::from((mode >> 2) & 0x1f) + 1;
    let mut buf = BytesMut::new();
    for read in input.chunks(read_size) {
        buf.extend_from_slice(read);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(packet)) => check_packet(&decoder, packet),
                Ok(None) => break,
                Err(err) => {
                    let _ = err.reason_code();
                    let _ = err.v311_connack_code();
                    if let Some((version, reply)) = decoder.failure_reply(&err) {
                        let mut out = BytesMut::new();
                        reply
                            .encode(version, &mut out)
                            .unwrap_or_else(|e| panic!("reply to {err} does not encode: {e}"));
                    }
                    return;
                }
            }
        }
    }
});

fn check_packet(decoder: &Decoder, packet: Packet) {
    let (version, mut again) = match &packet {
        Packet::Connect(c) => (c.protocol_version, Decoder::new()),
        _ => {
            let version = decoder.version().expect("a version after the first packet");
            (version, Decoder::with_version(version))
        }
    };
    let mut out = BytesMut::new();
    packet
        .encode(version, &mut out)
        .unwrap_or_else(|e| panic!("decoded packet does not encode: {e}\n{packet:?}"));
    let back = again
        .decode(&mut out)
        .unwrap_or_else(|e| panic!("re-encoded packet does not decode: {e}\n{packet:?}"))
        .expect("a whole packet");
    assert_eq!(back, packet);
    assert!(out.is_empty(), "bytes left after the re-encoded packet");

    match &packet {
        Packet::Publish(p) => check_topic(&p.topic),
        Packet::Connect(c) => {
            if let Some(will) = &c.will {
                check_topic(&will.topic);
            }
        }
        Packet::Subscribe(s) => {
            for f in &s.filters {
                if let Ok(sub) = Subscription::parse(&f.filter) {
                    let _ = (sub.parent(), sub.reserved());
                }
            }
        }
        Packet::Unsubscribe(u) => {
            for f in &u.filters {
                let _ = Subscription::parse(f);
            }
        }
        _ => {}
    }
}

/// A topic that maps to a subject maps back to itself.
fn check_topic(topic: &str) {
    if let Ok(subject) = topic_to_subject(topic) {
        assert_eq!(subject_to_topic(&subject), topic, "via subject {subject:?}");
    }
}
