//! MQTT over WebSocket as a connection reads it: arbitrary bytes, cut into arbitrary
//! pieces, go through the WebSocket frame decoder (masked client frames, compression
//! when negotiated), and the data frames' payloads, in order, into the MQTT decoder.
//! No panic, nothing past the limits; a refused packet has a reply that encodes. The
//! same bytes are also read as the answer to a dialled upgrade (a leaf connection to a
//! `ws://` remote reads it from the network).
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use natrix_broker::websocket::{dial, frame};
use natrix_mqtt::Decoder;

const MAX_FRAME: u64 = 4096;
const MAX_PACKET: u32 = 2048;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let offer = dial::Offer::new(cut & 4 == 4, cut & 8 == 8);
    if let Ok(Some((_, used))) = offer.check_answer(rest) {
        assert!(used <= rest.len(), "answer longer than the input");
    }
    let step = usize::from(cut >> 4).max(1);
    let mut frames = frame::Decoder::new(MAX_FRAME);
    frames.deflate = cut & 1 == 1;
    frames.require_mask = cut & 2 == 0;
    let mut mqtt = Decoder::new();
    mqtt.set_max_packet_size(MAX_PACKET);
    let (mut raw, mut stream) = (BytesMut::new(), BytesMut::new());
    for piece in rest.chunks(step) {
        raw.extend_from_slice(piece);
        loop {
            let f = match frames.decode(&mut raw) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(_) => return,
            };
            assert!(f.payload.len() as u64 <= MAX_FRAME, "frame over the limit");
            match f.opcode {
                frame::OpCode::Binary | frame::OpCode::Text | frame::OpCode::Continuation => {
                    if f.compressed {
                        match frame::inflate(&f.payload, 1 << 16) {
                            Ok(d) => stream.extend_from_slice(&d),
                            Err(_) => return,
                        }
                    } else {
                        stream.extend_from_slice(&f.payload);
                    }
                }
                _ => {}
            }
            loop {
                match mqtt.decode(&mut stream) {
                    Ok(Some(_)) => {}
                    Ok(None) => break,
                    Err(e) => {
                        if let Some((version, reply)) = mqtt.failure_reply(&e) {
                            let mut out = BytesMut::new();
                            reply
                                .encode(version, &mut out)
                                .unwrap_or_else(|err| panic!("reply to {e} does not encode: {err}"));
                        }
                        return;
                    }
                }
            }
        }
    }
});
