//! Feeds arbitrary bytes, cut into arbitrary pieces, to the WebSocket frame decoder and
//! the upgrade parser the way a connection does: no panic, every decoded frame within
//! the limits, and the decoder never keeps asking for more once a whole frame is there.
#![no_main]

use bytes::BytesMut;
use libfuzzer_sys::fuzz_target;
use natrix_broker::websocket::{frame, handshake};

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let step = usize::from(cut).max(1);
    let _ = handshake::parse(rest);
    if let Ok(Some((req, _))) = handshake::parse(rest) {
        let _ = handshake::check(&req, &handshake::OriginPolicy::default(), false);
        let _ = req.cookie("jwt");
    }
    let mut decoder = frame::Decoder::new(4096);
    // The first byte also picks what was negotiated: compression, masking.
    decoder.deflate = cut & 1 == 1;
    decoder.require_mask = cut & 2 == 0;
    let mut buf = BytesMut::new();
    for piece in rest.chunks(step) {
        buf.extend_from_slice(piece);
        loop {
            match decoder.decode(&mut buf) {
                Ok(Some(f)) => {
                    assert!(f.payload.len() <= 4096, "frame over the limit");
                    if f.compressed
                        && let Ok(data) = frame::inflate(&f.payload, 1 << 16)
                    {
                        assert!(data.len() <= 1 << 16, "inflated over the limit");
                    }
                }
                Ok(None) => break,
                Err(_) => return,
            }
        }
    }
});
