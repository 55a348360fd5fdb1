//! JSON the way Go's `encoding/json` writes and reads it, where the difference shows in a JWT.
//!
//! Writing: `json.Marshal` escapes `<`, `>`, `&`, U+2028 and U+2029 (nsc writes `"foo.\u003e"`).
//! The signature covers the exact bytes, and the `jti` is a hash of them, so matching this keeps
//! a re-encoded nsc claim byte-identical. Struct field order and `omitempty` are kept by the
//! serde attributes on each type ([`is_default`] is `omitempty`); map keys are sorted because
//! every map is a `BTreeMap`.
//!
//! Reading: Go leaves a field at its zero value when the JSON holds `null`; serde would reject
//! the null. [`from_slice`] drops null object members before deserializing, which has the same
//! effect.

use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::Value;
use std::io;

/// `omitempty`: true for the zero value (0, false, "", empty list or map).
pub(crate) fn is_default<T: Default + PartialEq>(v: &T) -> bool {
    *v == T::default()
}

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

/// Serializes like Go's `json.Marshal`.
pub(crate) fn to_vec<T: Serialize + ?Sized>(value: &T) -> Result<Vec<u8>, serde_json::Error> {
    let mut out = Vec::with_capacity(256);
    let mut ser = serde_json::Serializer::with_formatter(&mut out, GoFormatter);
    value.serialize(&mut ser)?;
    Ok(out)
}

/// Parses like Go's `json.Unmarshal` into a fresh value: `null` members leave the zero value.
pub(crate) fn from_slice<T: DeserializeOwned>(data: &[u8]) -> Result<T, serde_json::Error> {
    let mut value: Value = serde_json::from_slice(data)?;
    strip_nulls(&mut value);
    serde_json::from_value(value)
}

/// Parses an already parsed value the same way as [`from_slice`].
pub(crate) fn from_value<T: DeserializeOwned>(mut value: Value) -> Result<T, serde_json::Error> {
    strip_nulls(&mut value);
    serde_json::from_value(value)
}

/// Iterative, so that nesting depth costs no stack (serde_json already caps it at 128 on parse).
pub(crate) fn strip_nulls(value: &mut Value) {
    let mut stack = vec![value];
    while let Some(v) = stack.pop() {
        match v {
            Value::Object(map) => {
                map.retain(|_, m| !m.is_null());
                stack.extend(map.values_mut());
            }
            Value::Array(items) => stack.extend(items.iter_mut()),
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn escapes_html_like_go() {
        let v = vec!["foo.>", "a<b&c", "line\u{2028}sep", "é\n\"\\"];
        let out = to_vec(&v).map(String::from_utf8);
        assert_eq!(
            out.ok().and_then(Result::ok).as_deref(),
            Some(r#"["foo.\u003e","a\u003cb\u0026c","line\u2028sep","é\n\"\\"]"#)
        );
    }

    #[test]
    fn nulls_become_defaults() {
        #[derive(serde::Deserialize, Default, Debug, PartialEq)]
        #[serde(default)]
        struct T {
            a: String,
            b: Vec<String>,
            c: BTreeMap<String, i64>,
        }
        let t: Result<T, _> = from_slice(br#"{"a":null,"b":null,"c":{"x":1,"y":null}}"#);
        let t = t.ok();
        assert_eq!(t.as_ref().map(|t| t.a.as_str()), Some(""));
        assert_eq!(t.map(|t| t.c.len()), Some(1));
    }
}
