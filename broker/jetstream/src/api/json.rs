//! JSON the way nats-server's Go `encoding/json` writes and reads it.
//!
//! The JetStream API types in [`super::types`] are plain serde structs; this module holds
//! what makes their JSON match nats-server's byte for byte where clients could notice:
//!
//! - **Times** ([`time`], [`time_opt`]): Go's `time.Time` marshals as RFC 3339 with
//!   nanoseconds, trailing zeros trimmed (`time.RFC3339Nano`), and nats-server always
//!   hands it UTC times, so they end in `Z`. We keep times as [`UnixNanos`] (`i64`
//!   nanoseconds since the Unix epoch, as the store does) and use **0 for Go's zero time**,
//!   which marshals as `0001-01-01T00:00:00Z` (for example `first_ts` of an empty
//!   stream). Parsing maps that zero time back to 0, and saturates times outside the
//!   `i64` nanosecond range (before 1677, after 2262) at its ends.
//! - **Durations** are Go `time.Duration`: integer nanoseconds ([`Nanos`]), never strings.
//! - **Bytes** ([`base64_bytes`]): Go marshals `[]byte` as standard base64 with padding.
//! - **Escaping** ([`to_vec`]): Go's `json.Marshal` escapes `<`, `>`, `&` as `\u003c`,
//!   `\u003e`, `\u0026` and U+2028/U+2029 as `\u2028`/`\u2029`, so a stream subject
//!   `orders.>` goes out as `"orders.\u003e"`. serde_json does not; [`to_vec`] does.
//! - **Empty slices** ([`nil_if_empty`]): a Go slice without `omitempty` that was never
//!   appended to marshals as `null` (e.g. `"streams":null` in a names response with no
//!   streams).
//! - **Requests** ([`decode_request`]): nats-server decodes a request with
//!   `DisallowUnknownFields` when JetStream runs `strict` (the default), so an unknown
//!   field fails with `invalid JSON: json: unknown field "x"`; with `strict: false` it
//!   logs and decodes leniently. Key matching is case-insensitive as in Go, `null` leaves
//!   a field at its zero value, and an empty body is a zero-valued request.

use std::cell::RefCell;
use std::io;

use serde::de::value::BorrowedStrDeserializer;
use serde::de::{self, DeserializeOwned, DeserializeSeed, MapAccess, SeqAccess, Visitor};
use serde::{Deserializer, Serialize};
use serde_json::Value;

use super::errors::{self, ApiError};

/// A Go `time.Duration`: nanoseconds, possibly negative.
pub type Nanos = i64;

/// A Go `time.Time` as nanoseconds since the Unix epoch, UTC; 0 is Go's zero time.
pub type UnixNanos = i64;

/// What Go's zero `time.Time` marshals as.
pub const GO_ZERO_TIME: &str = "0001-01-01T00:00:00Z";

const NANOS_PER_SEC: i64 = 1_000_000_000;

/// Formats a time as Go's `time.Time.MarshalJSON` does for a UTC time (without the
/// quotes): `2024-05-01T10:20:30.123456789Z`, the fraction trimmed of trailing zeros and
/// left out when zero. 0 is Go's zero time.
pub fn format_time(t: UnixNanos) -> String {
    if t == 0 {
        return GO_ZERO_TIME.to_string();
    }
    let secs = t.div_euclid(NANOS_PER_SEC);
    let nanos = t.rem_euclid(NANOS_PER_SEC) as u32;
    // Every i64 nanosecond count is within chrono's range.
    let dt = chrono::DateTime::from_timestamp(secs, nanos).unwrap_or_default();
    let naive = dt.naive_utc();
    use chrono::{Datelike, Timelike};
    let mut out = format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}",
        naive.year(),
        naive.month(),
        naive.day(),
        naive.hour(),
        naive.minute(),
        naive.second()
    );
    if nanos != 0 {
        let frac = format!("{nanos:09}");
        out.push('.');
        out.push_str(frac.trim_end_matches('0'));
    }
    out.push('Z');
    out
}

/// Parses an RFC 3339 time as Go's `time.Time.UnmarshalJSON` accepts it (any offset,
/// up to nanosecond precision). Go's zero time (and the Unix epoch) give 0; times
/// outside the `i64` nanosecond range saturate.
pub fn parse_time(s: &str) -> Result<UnixNanos, String> {
    let dt = chrono::DateTime::parse_from_rfc3339(s)
        .map_err(|e| format!("parsing time {s:?} as RFC 3339: {e}"))?;
    let nanos = i128::from(dt.timestamp()) * i128::from(NANOS_PER_SEC)
        + i128::from(dt.timestamp_subsec_nanos());
    // Go's zero time: 0001-01-01T00:00:00Z.
    const GO_ZERO_UNIX_SECS: i128 = -62_135_596_800;
    if nanos == GO_ZERO_UNIX_SECS * i128::from(NANOS_PER_SEC) {
        return Ok(0);
    }
    Ok(nanos.clamp(i128::from(i64::MIN), i128::from(i64::MAX)) as i64)
}

/// serde `with` module for a Go `time.Time` field held as [`UnixNanos`].
pub mod time {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::UnixNanos;

    pub fn serialize<S: Serializer>(t: &UnixNanos, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::format_time(*t))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<UnixNanos, D::Error> {
        let s = std::borrow::Cow::<'de, str>::deserialize(d)?;
        super::parse_time(&s).map_err(serde::de::Error::custom)
    }
}

/// serde `with` module for a Go `*time.Time` field held as `Option<UnixNanos>`; pair it
/// with `skip_serializing_if = "Option::is_none"` and `default` for `omitempty`.
pub mod time_opt {
    use serde::{Deserialize, Deserializer, Serializer};

    use super::UnixNanos;

    pub fn serialize<S: Serializer>(t: &Option<UnixNanos>, s: S) -> Result<S::Ok, S::Error> {
        match t {
            Some(t) => s.serialize_str(&super::format_time(*t)),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<UnixNanos>, D::Error> {
        match Option::<std::borrow::Cow<'de, str>>::deserialize(d)? {
            Some(s) => super::parse_time(&s)
                .map(Some)
                .map_err(serde::de::Error::custom),
            None => Ok(None),
        }
    }
}

const B64: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";

/// Standard base64 with padding, as Go's `encoding/json` writes a `[]byte`.
pub fn base64_encode(data: &[u8]) -> String {
    let mut out = String::with_capacity(data.len().div_ceil(3) * 4);
    for chunk in data.chunks(3) {
        let b = [
            chunk[0],
            chunk.get(1).copied().unwrap_or(0),
            chunk.get(2).copied().unwrap_or(0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        out.push(B64[(n >> 18) as usize & 63] as char);
        out.push(B64[(n >> 12) as usize & 63] as char);
        out.push(if chunk.len() > 1 {
            B64[(n >> 6) as usize & 63] as char
        } else {
            '='
        });
        out.push(if chunk.len() > 2 {
            B64[n as usize & 63] as char
        } else {
            '='
        });
    }
    out
}

/// Decodes standard padded base64 as Go's `encoding/json` reads a `[]byte` (it skips
/// `\r` and `\n`).
pub fn base64_decode(s: &str) -> Result<Vec<u8>, String> {
    fn val(c: u8) -> Option<u32> {
        match c {
            b'A'..=b'Z' => Some(u32::from(c - b'A')),
            b'a'..=b'z' => Some(u32::from(c - b'a') + 26),
            b'0'..=b'9' => Some(u32::from(c - b'0') + 52),
            b'+' => Some(62),
            b'/' => Some(63),
            _ => None,
        }
    }
    let clean: Vec<u8> = s.bytes().filter(|&c| c != b'\r' && c != b'\n').collect();
    if !clean.len().is_multiple_of(4) {
        return Err("illegal base64 data: length is not a multiple of 4".into());
    }
    let mut out = Vec::with_capacity(clean.len() / 4 * 3);
    let quads = clean.len() / 4;
    for (i, q) in clean.chunks(4).enumerate() {
        let pad = q.iter().rev().take_while(|&&c| c == b'=').count();
        if pad > 2 || (pad > 0 && i + 1 != quads) {
            return Err("illegal base64 data: misplaced padding".into());
        }
        let mut n = 0u32;
        for &c in &q[..4 - pad] {
            n = (n << 6) | val(c).ok_or_else(|| format!("illegal base64 data: byte {c:#04x}"))?;
        }
        n <<= 6 * pad as u32;
        out.push((n >> 16) as u8);
        if pad < 2 {
            out.push((n >> 8) as u8);
        }
        if pad < 1 {
            out.push(n as u8);
        }
    }
    Ok(out)
}

/// serde `with` module for a Go `[]byte` field held as [`bytes::Bytes`] (base64).
pub mod base64_bytes {
    use bytes::Bytes;
    use serde::{Deserialize, Deserializer, Serializer};

    pub fn serialize<S: Serializer>(b: &Bytes, s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&super::base64_encode(b))
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Bytes, D::Error> {
        let s = Option::<std::borrow::Cow<'de, str>>::deserialize(d)?;
        match s {
            Some(s) => super::base64_decode(&s)
                .map(Bytes::from)
                .map_err(serde::de::Error::custom),
            None => Ok(Bytes::new()),
        }
    }
}

/// serde `with` module for a Go slice without `omitempty`: empty marshals as `null`
/// (a nil slice), and `null` reads back as empty.
pub mod nil_if_empty {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    pub fn serialize<T: Serialize, S: Serializer>(v: &[T], s: S) -> Result<S::Ok, S::Error> {
        if v.is_empty() {
            s.serialize_none()
        } else {
            v.serialize(s)
        }
    }

    pub fn deserialize<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
        d: D,
    ) -> Result<Vec<T>, D::Error> {
        Ok(Option::<Vec<T>>::deserialize(d)?.unwrap_or_default())
    }
}

/// `skip_serializing_if` for Go's `omitempty` on numbers, bools and strings.
pub fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

/// A serde_json formatter that escapes strings as Go's `json.Marshal` does.
struct GoFormatter;

impl serde_json::ser::Formatter for GoFormatter {
    fn write_string_fragment<W: ?Sized + io::Write>(
        &mut self,
        writer: &mut W,
        fragment: &str,
    ) -> io::Result<()> {
        let mut start = 0;
        for (i, c) in fragment.char_indices() {
            let esc = match c {
                '<' => "\\u003c",
                '>' => "\\u003e",
                '&' => "\\u0026",
                '\u{2028}' => "\\u2028",
                '\u{2029}' => "\\u2029",
                _ => continue,
            };
            writer.write_all(&fragment.as_bytes()[start..i])?;
            writer.write_all(esc.as_bytes())?;
            start = i + c.len_utf8();
        }
        writer.write_all(&fragment.as_bytes()[start..])
    }
}

/// Serialises `value` as nats-server's `json.Marshal` would (compact, Go's escaping).
pub fn to_vec<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<Vec<u8>> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value.serialize(&mut ser)?;
    Ok(out)
}

/// [`to_vec`] into a `String`.
pub fn to_string<T: Serialize + ?Sized>(value: &T) -> serde_json::Result<String> {
    // The serializer writes only valid UTF-8.
    to_vec(value).map(|v| String::from_utf8_lossy(&v).into_owned())
}

/// Decodes a JetStream API request body as nats-server's `unmarshalRequest` does.
///
/// - An empty (or all-whitespace) body is the zero request, `T::default()`.
/// - Several JSON values one after another are each decoded into the same request, the
///   later ones overriding (objects merge key by key), as Go's decoder loop does.
/// - `null` for an object member leaves that field at its zero value.
/// - Keys match field names exactly or, failing that, ignoring ASCII case.
/// - `strict` (JetStream's `strict`, on by default in nats-server): an unknown field
///   fails with `invalid JSON: json: unknown field "<name>"` (10025). Without it unknown
///   fields are ignored.
///
/// Every failure is nats-server's `JSInvalidJSONErr` (10025) with the decoder's message;
/// the messages for syntax and type errors are serde_json's, not Go's.
///
/// Request types decoded here must not use `#[serde(flatten)]`: a flattened struct hides
/// its field names from the unknown-field check.
pub fn decode_request<T: DeserializeOwned + Default>(
    body: &[u8],
    strict: bool,
) -> Result<T, ApiError> {
    match parse_request_value(body)? {
        None => Ok(T::default()),
        Some(v) => decode_value(&v, strict),
    }
}

/// The first half of [`decode_request`]: the body as one JSON value (nulls in objects
/// removed, concatenated values merged), or `None` for an empty body.
pub fn parse_request_value(body: &[u8]) -> Result<Option<Value>, ApiError> {
    let mut merged: Option<Value> = None;
    for v in serde_json::Deserializer::from_slice(body).into_iter::<Value>() {
        // Go's decoder reports a truncated body as `unexpected EOF`; other syntax errors
        // keep serde_json's wording.
        let mut v = v.map_err(|e| match e.classify() {
            serde_json::error::Category::Eof => errors::invalid_json("unexpected EOF"),
            _ => errors::invalid_json(e),
        })?;
        strip_nulls(&mut v);
        // A bare `null` decodes to the zero value in Go, as an empty body does.
        if v.is_null() {
            continue;
        }
        merged = Some(match merged {
            None => v,
            Some(mut prev) => {
                merge(&mut prev, v);
                prev
            }
        });
    }
    Ok(merged)
}

/// The second half of [`decode_request`]: a parsed value into a request type.
pub fn decode_value<T: DeserializeOwned>(v: &Value, strict: bool) -> Result<T, ApiError> {
    let unknown = RefCell::new(None);
    let t = T::deserialize(Probe {
        value: v,
        unknown: &unknown,
    })
    .map_err(errors::invalid_json)?;
    if let Some(field) = unknown.into_inner().filter(|_| strict) {
        return Err(errors::invalid_json(format!(
            "json: unknown field {field:?}"
        )));
    }
    Ok(t)
}

fn strip_nulls(v: &mut Value) {
    match v {
        Value::Object(m) => {
            m.retain(|_, v| !v.is_null());
            m.values_mut().for_each(strip_nulls);
        }
        Value::Array(a) => a.iter_mut().for_each(strip_nulls),
        _ => {}
    }
}

fn merge(into: &mut Value, from: Value) {
    match (into, from) {
        (Value::Object(a), Value::Object(b)) => {
            for (k, v) in b {
                match a.get_mut(&k) {
                    Some(existing) => merge(existing, v),
                    None => {
                        a.insert(k, v);
                    }
                }
            }
        }
        (into, from) => *into = from,
    }
}

/// A deserializer over a parsed [`Value`] that also notes the first object key that
/// names no field of the struct being read, and matches keys case-insensitively as Go.
struct Probe<'de, 'r> {
    value: &'de Value,
    unknown: &'r RefCell<Option<String>>,
}

type DeErr = serde_json::Error;

impl<'de> Deserializer<'de> for Probe<'de, '_> {
    type Error = DeErr;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeErr> {
        match self.value {
            Value::Null => visitor.visit_unit(),
            Value::Bool(b) => visitor.visit_bool(*b),
            Value::Number(n) => {
                if let Some(u) = n.as_u64() {
                    visitor.visit_u64(u)
                } else if let Some(i) = n.as_i64() {
                    visitor.visit_i64(i)
                } else {
                    visitor.visit_f64(n.as_f64().unwrap_or(f64::NAN))
                }
            }
            Value::String(s) => visitor.visit_borrowed_str(s),
            Value::Array(a) => visitor.visit_seq(SeqProbe {
                iter: a.iter(),
                unknown: self.unknown,
            }),
            Value::Object(m) => visitor.visit_map(MapProbe {
                iter: m.iter(),
                fields: None,
                pending: None,
                unknown: self.unknown,
            }),
        }
    }

    fn deserialize_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeErr> {
        match self.value {
            Value::Object(m) => visitor.visit_map(MapProbe {
                iter: m.iter(),
                fields: Some(fields),
                pending: None,
                unknown: self.unknown,
            }),
            _ => self.deserialize_any(visitor),
        }
    }

    fn deserialize_option<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeErr> {
        match self.value {
            Value::Null => visitor.visit_none(),
            _ => visitor.visit_some(self),
        }
    }

    fn deserialize_newtype_struct<V: Visitor<'de>>(
        self,
        _name: &'static str,
        visitor: V,
    ) -> Result<V::Value, DeErr> {
        visitor.visit_newtype_struct(self)
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        name: &'static str,
        variants: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, DeErr> {
        self.value.deserialize_enum(name, variants, visitor)
    }

    fn deserialize_ignored_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, DeErr> {
        visitor.visit_unit()
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string
        bytes byte_buf unit unit_struct seq tuple tuple_struct map identifier
    }
}

struct SeqProbe<'de, 'r> {
    iter: std::slice::Iter<'de, Value>,
    unknown: &'r RefCell<Option<String>>,
}

impl<'de> SeqAccess<'de> for SeqProbe<'de, '_> {
    type Error = DeErr;

    fn next_element_seed<T: DeserializeSeed<'de>>(
        &mut self,
        seed: T,
    ) -> Result<Option<T::Value>, DeErr> {
        match self.iter.next() {
            Some(v) => seed
                .deserialize(Probe {
                    value: v,
                    unknown: self.unknown,
                })
                .map(Some),
            None => Ok(None),
        }
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

struct MapProbe<'de, 'r> {
    iter: serde_json::map::Iter<'de>,
    /// The struct's field names when reading a struct, `None` for a map.
    fields: Option<&'static [&'static str]>,
    pending: Option<&'de Value>,
    unknown: &'r RefCell<Option<String>>,
}

impl<'de> MapAccess<'de> for MapProbe<'de, '_> {
    type Error = DeErr;

    fn next_key_seed<K: DeserializeSeed<'de>>(
        &mut self,
        seed: K,
    ) -> Result<Option<K::Value>, DeErr> {
        let Some((k, v)) = self.iter.next() else {
            return Ok(None);
        };
        self.pending = Some(v);
        let key: &'de str = match self.fields {
            Some(fields) if !fields.contains(&k.as_str()) => {
                match fields.iter().find(|f| f.eq_ignore_ascii_case(k)) {
                    Some(f) => f,
                    None => {
                        let mut unknown = self.unknown.borrow_mut();
                        if unknown.is_none() {
                            *unknown = Some(k.clone());
                        }
                        k
                    }
                }
            }
            _ => k,
        };
        seed.deserialize(BorrowedStrDeserializer::<DeErr>::new(key))
            .map(Some)
    }

    fn next_value_seed<V: DeserializeSeed<'de>>(&mut self, seed: V) -> Result<V::Value, DeErr> {
        let v = self
            .pending
            .take()
            .ok_or_else(|| de::Error::custom("value requested before key"))?;
        seed.deserialize(Probe {
            value: v,
            unknown: self.unknown,
        })
    }

    fn size_hint(&self) -> Option<usize> {
        Some(self.iter.len())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn time_format_like_go() {
        assert_eq!(format_time(0), "0001-01-01T00:00:00Z");
        assert_eq!(format_time(1), "1970-01-01T00:00:00.000000001Z");
        assert_eq!(
            format_time(1_714_558_830_123_000_000),
            "2024-05-01T10:20:30.123Z"
        );
        assert_eq!(
            format_time(1_714_558_830_000_000_000),
            "2024-05-01T10:20:30Z"
        );
        assert_eq!(
            format_time(1_714_558_830_123_456_780),
            "2024-05-01T10:20:30.12345678Z"
        );
        // Before the epoch.
        assert_eq!(format_time(-1), "1969-12-31T23:59:59.999999999Z");
    }

    #[test]
    fn time_parse_like_go() {
        assert_eq!(parse_time("0001-01-01T00:00:00Z"), Ok(0));
        assert_eq!(parse_time("1970-01-01T00:00:00Z"), Ok(0));
        assert_eq!(
            parse_time("2024-05-01T10:20:30.123Z"),
            Ok(1_714_558_830_123_000_000)
        );
        assert_eq!(
            parse_time("2024-05-01T12:20:30.123+02:00"),
            Ok(1_714_558_830_123_000_000)
        );
        assert_eq!(parse_time("9999-12-31T23:59:59Z"), Ok(i64::MAX));
        assert!(parse_time("yesterday").is_err());
        for t in [1, -1, 1_714_558_830_123_456_789, i64::MAX, i64::MIN] {
            assert_eq!(parse_time(&format_time(t)), Ok(t));
        }
    }

    #[test]
    fn base64_round_trip() {
        for (raw, enc) in [
            (&b""[..], ""),
            (b"f", "Zg=="),
            (b"fo", "Zm8="),
            (b"foo", "Zm9v"),
            (b"NATS/1.0\r\n\r\n", "TkFUUy8xLjANCg0K"),
        ] {
            assert_eq!(base64_encode(raw), enc);
            assert_eq!(base64_decode(enc).as_deref(), Ok(raw));
        }
        assert!(base64_decode("Zg=").is_err());
        assert!(base64_decode("Z===").is_err());
        assert!(base64_decode("Zg==Zg==").is_err());
        assert!(base64_decode("Z!==").is_err());
        assert_eq!(base64_decode("Zm9v\r\nZm8=").as_deref(), Ok(&b"foofo"[..]));
    }

    #[test]
    fn go_escaping() {
        let s = to_string(&serde_json::json!({"subjects": ["a.>", "<&>"], "x\u{2028}": "\n\u{1}"}))
            .unwrap_or_default();
        assert_eq!(
            s,
            r#"{"subjects":["a.\u003e","\u003c\u0026\u003e"],"x\u2028":"\n\u0001"}"#
        );
    }

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    #[serde(default)]
    struct Req {
        name: String,
        max_msgs: i64,
        inner: Inner,
        list: Vec<Inner>,
        meta: std::collections::BTreeMap<String, String>,
    }

    #[derive(Debug, Default, PartialEq, serde::Deserialize)]
    #[serde(default)]
    struct Inner {
        seq: u64,
    }

    #[test]
    fn request_decoding() {
        let r: Req = decode_request(b"", true).unwrap_or_default();
        assert_eq!(r, Req::default());
        let r: Result<Req, _> = decode_request(b"  \n ", true);
        assert_eq!(r.ok(), Some(Req::default()));

        let r: Result<Req, _> =
            decode_request(br#"{"NAME":"s","max_msgs":null,"inner":{"Seq":3}}"#, true);
        let r = r.ok();
        assert_eq!(r.as_ref().map(|r| r.name.as_str()), Some("s"));
        assert_eq!(r.as_ref().map(|r| r.inner.seq), Some(3));

        // Unknown fields, top level and nested, strict and lenient.
        let e = decode_request::<Req>(br#"{"name":"s","bogus":1}"#, true).err();
        assert_eq!(
            e.map(|e| e.description),
            Some(r#"invalid JSON: json: unknown field "bogus""#.to_string())
        );
        let e = decode_request::<Req>(br#"{"list":[{"seq":1,"x":2}]}"#, true).err();
        assert_eq!(e.map(|e| e.err_code), Some(10025));
        assert!(decode_request::<Req>(br#"{"name":"s","bogus":1}"#, false).is_ok());
        // Map keys are data, not fields.
        assert!(decode_request::<Req>(br#"{"meta":{"any":"x"}}"#, true).is_ok());

        // Concatenated values merge, later wins.
        let r: Option<Req> =
            decode_request(br#"{"name":"a","inner":{"seq":1}} {"max_msgs":5}"#, true).ok();
        assert_eq!(
            r.map(|r| (r.name, r.max_msgs, r.inner.seq)),
            Some(("a".into(), 5, 1))
        );

        // Syntax and type errors are invalid JSON too.
        let e = decode_request::<Req>(b"{", true).err();
        assert_eq!(e.as_ref().map(|e| e.err_code), Some(10025));
        assert!(e.is_some_and(|e| e.description.starts_with("invalid JSON: ")));
        assert!(decode_request::<Req>(br#"{"max_msgs":"x"}"#, true).is_err());
        assert!(decode_request::<Req>(br#"{"max_msgs":1.5}"#, true).is_err());
    }
}
