//! The MQTT data representations (specification 1.5): two- and four-byte integers, variable
//! byte integers, length-prefixed binary data and UTF-8 strings. Reading works on the body of
//! one whole packet held as `Bytes`, so strings and binary values are slices of the read buffer
//! rather than copies; writing appends to a `BytesMut` that the caller has reserved.

use bytes::{Buf, BufMut, Bytes, BytesMut};

use super::error::{DecodeError, EncodeError, Field};
use super::string::MqttString;

/// The largest value a variable byte integer holds (four bytes of seven bits).
pub const VARINT_MAX: u32 = 268_435_455;

/// Why a variable byte integer could not be read.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum VarIntError {
    /// More bytes are needed.
    Incomplete,
    /// A fifth byte would be needed (continuation bit set on the fourth).
    TooLong,
    /// A longer encoding than needed, which 5.0 forbids (1.5.5: "MUST use the minimum number
    /// of bytes") and which no 3.1.1 client produces either.
    NonMinimal,
}

/// Reads a variable byte integer from the start of `buf`: the value and how many bytes it took.
pub(crate) fn read_varint(buf: &[u8]) -> Result<(u32, usize), VarIntError> {
    let mut value: u32 = 0;
    for (i, &b) in buf.iter().take(4).enumerate() {
        value |= u32::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            // A last byte of zero after at least one continuation byte adds nothing: the same
            // value fits in fewer bytes.
            if i > 0 && b == 0 {
                return Err(VarIntError::NonMinimal);
            }
            return Ok((value, i + 1));
        }
    }
    if buf.len() >= 4 {
        Err(VarIntError::TooLong)
    } else {
        Err(VarIntError::Incomplete)
    }
}

/// How many bytes the variable byte integer encoding of `value` takes.
pub(crate) fn varint_len(value: u32) -> usize {
    match value {
        0..=127 => 1,
        128..=16_383 => 2,
        16_384..=2_097_151 => 3,
        _ => 4,
    }
}

/// Appends `value` as a variable byte integer. The caller keeps `value <= VARINT_MAX`.
pub(crate) fn put_varint(buf: &mut BytesMut, mut value: u32) {
    debug_assert!(value <= VARINT_MAX);
    loop {
        let mut byte = (value & 0x7f) as u8;
        value >>= 7;
        if value > 0 {
            byte |= 0x80;
        }
        buf.put_u8(byte);
        if value == 0 {
            break;
        }
    }
}

/// Appends a two-byte length and the bytes. The caller has checked the length.
pub(crate) fn put_binary(buf: &mut BytesMut, bytes: &[u8]) {
    // Lengths were checked by `binary_len`/`string_len` before anything was written.
    buf.put_u16(bytes.len() as u16);
    buf.put_slice(bytes);
}

/// The encoded size of binary data (two-byte length + bytes), refusing what does not fit.
pub(crate) fn binary_len(bytes: &[u8], field: Field) -> Result<usize, EncodeError> {
    if bytes.len() > usize::from(u16::MAX) {
        return Err(EncodeError::TooLong {
            field,
            len: bytes.len(),
        });
    }
    Ok(2 + bytes.len())
}

/// The encoded size of a UTF-8 string, refusing what the decoder would refuse (too long, or a
/// NUL character, 1.5.4), so that whatever is encoded decodes again.
pub(crate) fn string_len(s: &MqttString, field: Field) -> Result<usize, EncodeError> {
    if s.as_bytes().contains(&0) {
        return Err(EncodeError::NullCharacter(field));
    }
    binary_len(s.as_bytes(), field)
}

/// A cursor over the body of one whole packet.
pub(crate) struct Reader {
    buf: Bytes,
}

impl Reader {
    pub(crate) fn new(buf: Bytes) -> Self {
        Reader { buf }
    }

    pub(crate) fn remaining(&self) -> usize {
        self.buf.len()
    }

    pub(crate) fn has_more(&self) -> bool {
        !self.buf.is_empty()
    }

    pub(crate) fn u8(&mut self, field: Field) -> Result<u8, DecodeError> {
        if self.buf.is_empty() {
            return Err(DecodeError::UnexpectedEof(field));
        }
        Ok(self.buf.get_u8())
    }

    pub(crate) fn u16(&mut self, field: Field) -> Result<u16, DecodeError> {
        if self.buf.len() < 2 {
            return Err(DecodeError::UnexpectedEof(field));
        }
        Ok(self.buf.get_u16())
    }

    pub(crate) fn u32(&mut self, field: Field) -> Result<u32, DecodeError> {
        if self.buf.len() < 4 {
            return Err(DecodeError::UnexpectedEof(field));
        }
        Ok(self.buf.get_u32())
    }

    pub(crate) fn varint(&mut self, field: Field) -> Result<u32, DecodeError> {
        match read_varint(&self.buf) {
            Ok((value, used)) => {
                self.buf.advance(used);
                Ok(value)
            }
            Err(VarIntError::Incomplete) => Err(DecodeError::UnexpectedEof(field)),
            Err(VarIntError::TooLong) => Err(DecodeError::MalformedVarInt),
            Err(VarIntError::NonMinimal) => Err(DecodeError::NonMinimalVarInt),
        }
    }

    /// The next `len` bytes, as a slice of the packet (no copy).
    pub(crate) fn take(&mut self, len: usize, field: Field) -> Result<Bytes, DecodeError> {
        if self.buf.len() < len {
            return Err(DecodeError::UnexpectedEof(field));
        }
        Ok(self.buf.split_to(len))
    }

    /// Two-byte length and that many bytes.
    pub(crate) fn binary(&mut self, field: Field) -> Result<Bytes, DecodeError> {
        let len = self.u16(field)?;
        self.take(usize::from(len), field)
    }

    /// A UTF-8 encoded string: valid UTF-8 without U+0000 (1.5.4), checked once here.
    pub(crate) fn string(&mut self, field: Field) -> Result<MqttString, DecodeError> {
        let bytes = self.binary(field)?;
        MqttString::from_wire(bytes, field)
    }

    /// Everything left (a PUBLISH payload, a CONNECT will message): a slice, no copy.
    pub(crate) fn rest(&mut self) -> Bytes {
        std::mem::take(&mut self.buf)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn varint_boundaries_round_trip() {
        for value in [
            0, 1, 127, 128, 16_383, 16_384, 2_097_151, 2_097_152, VARINT_MAX,
        ] {
            let mut buf = BytesMut::new();
            put_varint(&mut buf, value);
            assert_eq!(buf.len(), varint_len(value), "{value}");
            assert_eq!(read_varint(&buf), Ok((value, buf.len())), "{value}");
        }
    }

    #[test]
    fn varint_examples_from_the_specification() {
        assert_eq!(read_varint(&[0x00]), Ok((0, 1)));
        assert_eq!(read_varint(&[0x7f]), Ok((127, 1)));
        assert_eq!(read_varint(&[0x80, 0x01]), Ok((128, 2)));
        assert_eq!(read_varint(&[0xff, 0x7f]), Ok((16_383, 2)));
        assert_eq!(read_varint(&[0x80, 0x80, 0x01]), Ok((16_384, 3)));
        assert_eq!(read_varint(&[0xff, 0xff, 0xff, 0x7f]), Ok((VARINT_MAX, 4)));
    }

    #[test]
    fn varint_malformed() {
        assert_eq!(
            read_varint(&[0xff, 0xff, 0xff, 0xff, 0x01]),
            Err(VarIntError::TooLong)
        );
        assert_eq!(
            read_varint(&[0x80, 0x80, 0x80, 0x80]),
            Err(VarIntError::TooLong)
        );
        assert_eq!(read_varint(&[0x80, 0x00]), Err(VarIntError::NonMinimal));
        assert_eq!(
            read_varint(&[0x81, 0x80, 0x00]),
            Err(VarIntError::NonMinimal)
        );
        assert_eq!(read_varint(&[]), Err(VarIntError::Incomplete));
        assert_eq!(read_varint(&[0x80, 0x80]), Err(VarIntError::Incomplete));
    }

    #[test]
    fn reader_reports_the_field_that_ran_out() {
        let mut r = Reader::new(Bytes::from_static(&[0, 5, b'a']));
        assert_eq!(
            r.string(Field::TopicName),
            Err(DecodeError::UnexpectedEof(Field::TopicName))
        );
        let mut r = Reader::new(Bytes::from_static(&[0]));
        assert_eq!(
            r.u16(Field::PacketId),
            Err(DecodeError::UnexpectedEof(Field::PacketId))
        );
    }
}
