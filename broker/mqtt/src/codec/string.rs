//! [`MqttString`]: an MQTT UTF-8 encoded string held as `Bytes`, so a topic or a user
//! property decoded from the read buffer shares it instead of being copied into a `String`.

use std::borrow::Borrow;
use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

use super::error::{DecodeError, Field};

/// UTF-8 text as MQTT carries it (1.5.4). Built from the wire only after the bytes were checked
/// to be UTF-8 without U+0000; built from Rust strings it is UTF-8 by construction (the encoder
/// refuses a U+0000 there, since the peer would refuse it).
#[derive(Clone, Default, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MqttString(Bytes);

impl MqttString {
    /// A string from a static literal, without allocating.
    pub const fn from_static(s: &'static str) -> Self {
        MqttString(Bytes::from_static(s.as_bytes()))
    }

    /// Checks bytes read from the wire: valid UTF-8 and no U+0000, else Malformed Packet.
    pub(crate) fn from_wire(bytes: Bytes, field: Field) -> Result<Self, DecodeError> {
        if std::str::from_utf8(&bytes).is_err() {
            return Err(DecodeError::InvalidUtf8(field));
        }
        if bytes.contains(&0) {
            return Err(DecodeError::NullCharacter(field));
        }
        Ok(MqttString(bytes))
    }

    /// Checks arbitrary bytes the way the decoder does (used by the session layer for text
    /// that arrives from NATS, e.g. a reply subject that becomes a response topic).
    pub fn try_from_bytes(bytes: Bytes) -> Result<Self, DecodeError> {
        Self::from_wire(bytes, Field::Text)
    }

    pub fn as_str(&self) -> &str {
        // Every constructor guarantees UTF-8, so this never falls back; re-checking costs a
        // pass over a short string and keeps the crate free of `unsafe`.
        std::str::from_utf8(&self.0).unwrap_or_default()
    }

    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    /// The underlying bytes (shared, no copy).
    pub fn into_bytes(self) -> Bytes {
        self.0
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Deref for MqttString {
    type Target = str;
    fn deref(&self) -> &str {
        self.as_str()
    }
}

impl AsRef<str> for MqttString {
    fn as_ref(&self) -> &str {
        self.as_str()
    }
}

impl Borrow<str> for MqttString {
    fn borrow(&self) -> &str {
        self.as_str()
    }
}

impl From<&str> for MqttString {
    fn from(s: &str) -> Self {
        MqttString(Bytes::copy_from_slice(s.as_bytes()))
    }
}

impl From<String> for MqttString {
    fn from(s: String) -> Self {
        MqttString(Bytes::from(s))
    }
}

impl PartialEq<str> for MqttString {
    fn eq(&self, other: &str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl PartialEq<&str> for MqttString {
    fn eq(&self, other: &&str) -> bool {
        self.as_bytes() == other.as_bytes()
    }
}

impl fmt::Debug for MqttString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(self.as_str(), f)
    }
}

impl fmt::Display for MqttString {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_strings_are_checked() {
        assert_eq!(
            MqttString::from_wire(Bytes::from_static(&[0xf1]), Field::TopicName),
            Err(DecodeError::InvalidUtf8(Field::TopicName))
        );
        assert_eq!(
            MqttString::from_wire(Bytes::from_static(b"a\0b"), Field::ClientId),
            Err(DecodeError::NullCharacter(Field::ClientId))
        );
        let s = MqttString::from_wire(Bytes::from_static("é/ü".as_bytes()), Field::TopicName)
            .expect("valid UTF-8");
        assert_eq!(s, "é/ü");
        assert_eq!(s.len(), 5);
    }
}
