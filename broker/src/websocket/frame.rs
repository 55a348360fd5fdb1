//! WebSocket frames (RFC 6455 §5): what a client sends is decoded and unmasked; what the
//! server sends is encoded unmasked.
//!
//! The decoder keeps no payload copy beyond the one unmasking needs: a frame is taken
//! out of the read buffer once whole. Limits: control frames at most 125 bytes and never
//! fragmented; data frames at most [`Decoder::max_payload`] (a frame longer than any NATS
//! message could be is an attack, not traffic).

use bytes::{Buf, Bytes, BytesMut};

/// Frame opcodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpCode {
    Continuation,
    Text,
    Binary,
    Close,
    Ping,
    Pong,
}

impl OpCode {
    fn from_bits(b: u8) -> Option<Self> {
        Some(match b {
            0x0 => Self::Continuation,
            0x1 => Self::Text,
            0x2 => Self::Binary,
            0x8 => Self::Close,
            0x9 => Self::Ping,
            0xA => Self::Pong,
            _ => return None,
        })
    }

    fn bits(self) -> u8 {
        match self {
            Self::Continuation => 0x0,
            Self::Text => 0x1,
            Self::Binary => 0x2,
            Self::Close => 0x8,
            Self::Ping => 0x9,
            Self::Pong => 0xA,
        }
    }

    fn is_control(self) -> bool {
        matches!(self, Self::Close | Self::Ping | Self::Pong)
    }
}

/// One frame as received, unmasked.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Frame {
    pub fin: bool,
    pub opcode: OpCode,
    pub payload: Bytes,
    /// Part of a message compressed with permessage-deflate (RSV1 on its first frame).
    pub compressed: bool,
}

/// Why a client's frames end the connection; each maps to a close status code.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum FrameError {
    #[error("reserved bits set")]
    ReservedBits,
    #[error("unknown opcode {0:#x}")]
    UnknownOpCode(u8),
    #[error("mask bit missing")]
    NotMasked,
    #[error("control frame length bigger than 125")]
    ControlTooLong,
    #[error("control frame fragmented")]
    ControlFragmented,
    #[error("frame of {size} bytes exceeds the maximum of {max}")]
    TooLarge { size: u64, max: u64 },
    #[error("continuation frame without a started message")]
    UnexpectedContinuation,
    #[error("new message started before the previous one ended")]
    UnfinishedMessage,
    #[error("compressed frame received without negotiated permessage-deflate")]
    CompressionNotNegotiated,
    #[error("invalid compressed message: {0}")]
    BadCompression(String),
}

impl FrameError {
    /// The close status sent back (RFC 6455 §7.4.1).
    pub fn close_status(&self) -> u16 {
        match self {
            Self::TooLarge { .. } => CLOSE_TOO_BIG,
            Self::BadCompression(_) => CLOSE_INVALID_PAYLOAD,
            _ => CLOSE_PROTOCOL_ERROR,
        }
    }
}

pub const CLOSE_NORMAL: u16 = 1000;
pub const CLOSE_GOING_AWAY: u16 = 1001;
pub const CLOSE_PROTOCOL_ERROR: u16 = 1002;
pub const CLOSE_INVALID_PAYLOAD: u16 = 1007;
pub const CLOSE_TOO_BIG: u16 = 1009;

/// Decodes a client's frames out of a read buffer.
#[derive(Debug)]
pub struct Decoder {
    /// The largest data frame payload accepted.
    pub max_payload: u64,
    /// Frames must be masked (unless the client asked for `Nats-No-Masking`).
    pub require_mask: bool,
    /// permessage-deflate was negotiated: RSV1 marks a compressed message.
    pub deflate: bool,
    /// Inside a fragmented message (a data frame without FIN was seen).
    in_message: bool,
    /// The message being read is compressed.
    compressed: bool,
}

impl Decoder {
    pub fn new(max_payload: u64) -> Self {
        Self {
            max_payload,
            require_mask: true,
            deflate: false,
            in_message: false,
            compressed: false,
        }
    }

    /// The next whole frame in `buf` (removed from it), `Ok(None)` until one is there.
    pub fn decode(&mut self, buf: &mut BytesMut) -> Result<Option<Frame>, FrameError> {
        if buf.len() < 2 {
            return Ok(None);
        }
        let (b0, b1) = (buf[0], buf[1]);
        if b0 & 0x30 != 0 {
            return Err(FrameError::ReservedBits);
        }
        let rsv1 = b0 & 0x40 != 0;
        let fin = b0 & 0x80 != 0;
        let opcode = OpCode::from_bits(b0 & 0x0F).ok_or(FrameError::UnknownOpCode(b0 & 0x0F))?;
        if rsv1 {
            if !self.deflate {
                return Err(FrameError::CompressionNotNegotiated);
            }
            // Only a message's first frame carries RSV1 (RFC 7692 §6).
            if !matches!(opcode, OpCode::Text | OpCode::Binary) {
                return Err(FrameError::ReservedBits);
            }
        }
        let masked = b1 & 0x80 != 0;
        if !masked && self.require_mask {
            return Err(FrameError::NotMasked);
        }
        let mask_len = if masked { 4 } else { 0 };
        let (len, mut at) = match b1 & 0x7F {
            126 => {
                if buf.len() < 4 {
                    return Ok(None);
                }
                (u64::from(u16::from_be_bytes([buf[2], buf[3]])), 4)
            }
            127 => {
                if buf.len() < 10 {
                    return Ok(None);
                }
                let mut b = [0u8; 8];
                b.copy_from_slice(&buf[2..10]);
                (u64::from_be_bytes(b), 10)
            }
            n => (u64::from(n), 2),
        };
        if opcode.is_control() {
            if len > 125 {
                return Err(FrameError::ControlTooLong);
            }
            if !fin {
                return Err(FrameError::ControlFragmented);
            }
        } else if len > self.max_payload {
            return Err(FrameError::TooLarge {
                size: len,
                max: self.max_payload,
            });
        }
        let len = usize::try_from(len).map_err(|_| FrameError::TooLarge {
            size: len,
            max: self.max_payload,
        })?;
        if buf.len() < at + mask_len + len {
            buf.reserve(at + mask_len + len - buf.len());
            return Ok(None);
        }
        let mut mask = [0u8; 4];
        if masked {
            mask.copy_from_slice(&buf[at..at + 4]);
            at += 4;
        }
        let compressed = match opcode {
            OpCode::Continuation if !self.in_message => {
                return Err(FrameError::UnexpectedContinuation);
            }
            OpCode::Text | OpCode::Binary if self.in_message => {
                return Err(FrameError::UnfinishedMessage);
            }
            OpCode::Text | OpCode::Binary => {
                self.in_message = !fin;
                self.compressed = rsv1;
                rsv1
            }
            OpCode::Continuation => {
                self.in_message = !fin;
                self.compressed
            }
            _ => false,
        };
        buf.advance(at);
        let mut payload = buf.split_to(len);
        if masked {
            unmask(&mut payload, mask);
        }
        Ok(Some(Frame {
            fin,
            opcode,
            payload: payload.freeze(),
            compressed,
        }))
    }
}

fn unmask(data: &mut [u8], mask: [u8; 4]) {
    let word = u32::from_ne_bytes(mask);
    let mut chunks = data.chunks_exact_mut(4);
    for c in &mut chunks {
        let v = u32::from_ne_bytes([c[0], c[1], c[2], c[3]]) ^ word;
        c.copy_from_slice(&v.to_ne_bytes());
    }
    for (i, b) in chunks.into_remainder().iter_mut().enumerate() {
        *b ^= mask[i];
    }
}

/// The tail a sync flush ends a deflate block with; RFC 7692 leaves it off the wire.
const DEFLATE_TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// A message's payload compressed for permessage-deflate without context takeover: a
/// fresh raw deflate stream, sync-flushed, its tail removed. `None` if the compressor
/// fails (the batch then goes uncompressed).
pub fn deflate(data: &[u8]) -> Option<Vec<u8>> {
    let mut c = flate2::Compress::new(flate2::Compression::fast(), false);
    let mut out = Vec::with_capacity(data.len() / 2 + 1024);
    let mut pos = 0;
    loop {
        if out.capacity() - out.len() < 1024 {
            out.reserve(data.len() / 2 + 1024);
        }
        let before = c.total_in();
        c.compress_vec(&data[pos..], &mut out, flate2::FlushCompress::Sync)
            .ok()?;
        pos += usize::try_from(c.total_in() - before).ok()?;
        // All input taken and the flush written with room to spare: done.
        if pos >= data.len() && out.capacity() - out.len() >= 1024 {
            break;
        }
    }
    if out.ends_with(&DEFLATE_TAIL) {
        out.truncate(out.len() - DEFLATE_TAIL.len());
    }
    Some(out)
}

/// A compressed message's payload inflated, refused once it grows past `max` bytes (a
/// small frame must not expand into an unbounded buffer).
pub fn inflate(data: &[u8], max: usize) -> Result<Vec<u8>, FrameError> {
    let mut d = flate2::Decompress::new(false);
    let mut input = Vec::with_capacity(data.len() + DEFLATE_TAIL.len());
    input.extend_from_slice(data);
    input.extend_from_slice(&DEFLATE_TAIL);
    let mut out: Vec<u8> = Vec::new();
    let mut pos = 0;
    loop {
        out.reserve(64 * 1024);
        let (in_before, out_before) = (d.total_in(), d.total_out());
        let status = d
            .decompress_vec(&input[pos..], &mut out, flate2::FlushDecompress::Sync)
            .map_err(|e| FrameError::BadCompression(e.to_string()))?;
        pos += usize::try_from(d.total_in() - in_before).unwrap_or(input.len());
        if out.len() > max {
            return Err(FrameError::TooLarge {
                size: out.len() as u64,
                max: max as u64,
            });
        }
        let progressed = d.total_in() != in_before || d.total_out() != out_before;
        let drained = pos >= input.len() && out.len() < out.capacity();
        if status == flate2::Status::StreamEnd || drained || !progressed {
            break;
        }
    }
    Ok(out)
}

/// Appends the header of an unmasked, final frame of `len` payload bytes.
pub fn encode_header(out: &mut Vec<u8>, opcode: OpCode, len: usize) {
    encode_header_rsv(out, opcode, len, false);
}

/// [`encode_header`], with RSV1 set for a compressed message.
pub fn encode_header_rsv(out: &mut Vec<u8>, opcode: OpCode, len: usize, compressed: bool) {
    out.push(0x80 | if compressed { 0x40 } else { 0 } | opcode.bits());
    if len < 126 {
        // Fits in seven bits.
        out.push(len as u8);
    } else if let Ok(n) = u16::try_from(len) {
        out.push(126);
        out.extend_from_slice(&n.to_be_bytes());
    } else {
        out.push(127);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

/// Appends a whole unmasked, final frame.
pub fn encode(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    encode_header(out, opcode, payload.len());
    out.extend_from_slice(payload);
}

/// Appends a final frame masked with a fresh random key, as a client must send every
/// frame (RFC 6455 §5.3): a leaf connection this server dialled over `ws://` is the
/// client side. RSV1 is set when `compressed`.
pub fn encode_masked(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8], compressed: bool) {
    let start = out.len();
    encode_header_rsv(out, opcode, payload.len(), compressed);
    out[start + 1] |= 0x80;
    let key = fastrand::u32(..).to_ne_bytes();
    out.extend_from_slice(&key);
    let at = out.len();
    out.extend_from_slice(payload);
    // Masking and unmasking are the same XOR.
    unmask(&mut out[at..], key);
}

/// [`encode_close`], masked as a client sends it.
pub fn encode_close_masked(out: &mut Vec<u8>, status: u16, reason: &str) {
    let mut plain = Vec::new();
    encode_close(&mut plain, status, reason);
    // The unmasked header of a control frame is two bytes (payload ≤ 125).
    encode_masked(out, OpCode::Close, &plain[2..], false);
}

/// Appends a close frame with `status` and `reason` (cut to fit the 125-byte limit).
pub fn encode_close(out: &mut Vec<u8>, status: u16, reason: &str) {
    let mut body = status.to_be_bytes().to_vec();
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    body.extend_from_slice(&reason.as_bytes()[..end]);
    encode(out, OpCode::Close, &body);
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A client frame: masked with `mask`.
    fn client_frame(fin: bool, op: u8, payload: &[u8], mask: [u8; 4]) -> Vec<u8> {
        let mut v = vec![if fin { 0x80 } else { 0 } | op];
        let len = payload.len();
        if len < 126 {
            v.push(0x80 | len as u8);
        } else if len <= 0xFFFF {
            v.push(0x80 | 126);
            v.extend_from_slice(&(len as u16).to_be_bytes());
        } else {
            v.push(0x80 | 127);
            v.extend_from_slice(&(len as u64).to_be_bytes());
        }
        v.extend_from_slice(&mask);
        v.extend(payload.iter().enumerate().map(|(i, b)| b ^ mask[i % 4]));
        v
    }

    #[test]
    fn decodes_masked_frames_of_every_length_form_byte_by_byte() {
        for len in [0usize, 5, 125, 126, 300, 70_000] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let wire = client_frame(true, 0x2, &payload, [1, 2, 3, 4]);
            let mut d = Decoder::new(1 << 20);
            let mut buf = BytesMut::new();
            let mut got = None;
            for b in &wire {
                assert!(got.is_none(), "frame complete before its last byte");
                buf.extend_from_slice(&[*b]);
                got = d.decode(&mut buf).unwrap_or_else(|e| panic!("{len}: {e}"));
            }
            let f = got.unwrap_or_else(|| panic!("no frame for {len}"));
            assert_eq!(f.payload.as_ref(), &payload[..]);
            assert!(f.fin);
            assert_eq!(f.opcode, OpCode::Binary);
            assert!(buf.is_empty());
        }
    }

    #[test]
    fn refuses_what_rfc_6455_forbids() {
        let mut d = Decoder::new(100);
        let cases: Vec<(Vec<u8>, FrameError)> = vec![
            (vec![0x82, 0x00], FrameError::NotMasked),
            (vec![0xA2, 0x80, 0, 0, 0, 0], FrameError::ReservedBits),
            (
                vec![0xC2, 0x80, 0, 0, 0, 0],
                FrameError::CompressionNotNegotiated,
            ),
            (vec![0x83, 0x80, 0, 0, 0, 0], FrameError::UnknownOpCode(3)),
            (
                client_frame(true, 0x9, &[0; 126], [0; 4]),
                FrameError::ControlTooLong,
            ),
            (
                client_frame(false, 0x9, b"x", [0; 4]),
                FrameError::ControlFragmented,
            ),
            (
                client_frame(true, 0x2, &[0; 101], [0; 4]),
                FrameError::TooLarge {
                    size: 101,
                    max: 100,
                },
            ),
            (
                client_frame(true, 0x0, b"x", [0; 4]),
                FrameError::UnexpectedContinuation,
            ),
        ];
        for (wire, want) in cases {
            let mut buf = BytesMut::from(&wire[..]);
            assert_eq!(d.decode(&mut buf), Err(want.clone()), "{wire:?}");
        }
        assert_eq!(FrameError::NotMasked.close_status(), CLOSE_PROTOCOL_ERROR);
    }

    #[test]
    fn fragments_and_interleaved_control_frames() {
        let mut d = Decoder::new(100);
        let mut wire = client_frame(false, 0x1, b"PU", [9, 8, 7, 6]);
        wire.extend(client_frame(true, 0x9, b"hi", [1, 1, 1, 1]));
        wire.extend(client_frame(true, 0x0, b"B x 0\r\n\r\n", [5, 5, 5, 5]));
        wire.extend(client_frame(true, 0x2, b"PING\r\n", [0, 0, 0, 1]));
        let mut buf = BytesMut::from(&wire[..]);
        let mut frames = Vec::new();
        while let Some(f) = d.decode(&mut buf).expect("valid") {
            frames.push((f.opcode, f.payload));
        }
        assert_eq!(
            frames,
            vec![
                (OpCode::Text, Bytes::from_static(b"PU")),
                (OpCode::Ping, Bytes::from_static(b"hi")),
                (OpCode::Continuation, Bytes::from_static(b"B x 0\r\n\r\n")),
                (OpCode::Binary, Bytes::from_static(b"PING\r\n")),
            ]
        );
        // A new message inside an unfinished one.
        let mut wire = client_frame(false, 0x2, b"a", [0; 4]);
        wire.extend(client_frame(true, 0x2, b"b", [0; 4]));
        let mut buf = BytesMut::from(&wire[..]);
        assert!(d.decode(&mut buf).is_ok());
        assert_eq!(d.decode(&mut buf), Err(FrameError::UnfinishedMessage));
    }

    #[test]
    fn compressed_messages_and_unmasked_clients_when_negotiated() {
        let text = b"MSG orders.1 1 11\r\nhello world\r\n".repeat(50);
        let packed = deflate(&text).expect("deflates");
        assert!(packed.len() < text.len() / 4, "{} bytes", packed.len());
        assert_eq!(inflate(&packed, 1 << 20).as_deref(), Ok(&text[..]));
        // A small frame that inflates past the limit is refused.
        let zeros = deflate(&vec![0u8; 100_000]).expect("deflates");
        assert!(matches!(
            inflate(&zeros, 10_000),
            Err(FrameError::TooLarge { .. })
        ));
        assert!(matches!(
            inflate(b"\xff\xff\xff", 1 << 20),
            Err(FrameError::BadCompression(_))
        ));
        // RSV1 on the first frame marks the whole message; continuations inherit it.
        let mut d = Decoder::new(1 << 20);
        d.deflate = true;
        let (a, b) = packed.split_at(packed.len() / 2);
        let mut wire = client_frame(false, 0x42, a, [1, 2, 3, 4]);
        wire.extend(client_frame(true, 0x0, b, [4, 3, 2, 1]));
        let mut buf = BytesMut::from(&wire[..]);
        let first = d.decode(&mut buf).expect("valid").expect("frame");
        let second = d.decode(&mut buf).expect("valid").expect("frame");
        assert!(first.compressed && second.compressed && second.fin);
        let mut whole = first.payload.to_vec();
        whole.extend_from_slice(&second.payload);
        assert_eq!(inflate(&whole, 1 << 20).as_deref(), Ok(&text[..]));
        // Unmasked frames, once the client asked for it.
        let mut d = Decoder::new(100);
        d.require_mask = false;
        let mut buf = BytesMut::from(&[0x82u8, 0x02, b'o', b'k'][..]);
        let f = d.decode(&mut buf).expect("valid").expect("frame");
        assert_eq!(f.payload.as_ref(), b"ok");
    }

    #[test]
    fn server_frames_are_unmasked_with_the_shortest_length() {
        for (len, header) in [(5usize, 2usize), (126, 4), (70_000, 10)] {
            let mut out = Vec::new();
            encode(&mut out, OpCode::Binary, &vec![7u8; len]);
            assert_eq!(out.len(), header + len);
            assert_eq!(out[0], 0x82);
            assert_eq!(out[1] & 0x80, 0, "unmasked");
        }
        let mut out = Vec::new();
        encode_close(&mut out, CLOSE_PROTOCOL_ERROR, &"é".repeat(100));
        assert!(out.len() <= 127, "close frames fit in 125 bytes of payload");
        assert_eq!(&out[2..4], &1002u16.to_be_bytes());
        assert!(
            std::str::from_utf8(&out[4..]).is_ok(),
            "reason cut on a char boundary"
        );
    }

    #[test]
    fn client_side_frames_are_masked_and_decode_back() {
        for (len, compressed) in [(0usize, false), (5, false), (300, true), (70_000, false)] {
            let payload: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
            let mut out = Vec::new();
            encode_masked(&mut out, OpCode::Binary, &payload, compressed);
            assert_eq!(out[1] & 0x80, 0x80, "mask bit set");
            assert_eq!(out[0] & 0x40 != 0, compressed, "RSV1 as asked");
            // A server requiring masks reads the payload back.
            let mut d = Decoder::new(1 << 20);
            d.deflate = true;
            let mut buf = BytesMut::from(&out[..]);
            let f = d.decode(&mut buf).expect("valid").expect("frame");
            assert_eq!(f.payload.as_ref(), &payload[..]);
            assert!(buf.is_empty());
        }
        let mut close = Vec::new();
        encode_close_masked(&mut close, CLOSE_NORMAL, "bye");
        let mut buf = BytesMut::from(&close[..]);
        let f = Decoder::new(125)
            .decode(&mut buf)
            .expect("valid")
            .expect("frame");
        assert_eq!(f.opcode, OpCode::Close);
        assert_eq!(f.payload.as_ref(), b"\x03\xe8bye");
    }
}
