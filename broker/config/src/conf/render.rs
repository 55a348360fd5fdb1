//! Writes a value tree back as config text that both this parser and nats-server read back
//! to the same tree.
//!
//! The output avoids the language's traps: strings are always double-quoted with escapes
//! (so `true`, `$x`, `2m` stay strings), array elements go one per line (so a number is
//! never directly followed by `]`), keys that are not plain words are quoted (and `include`
//! always is).

use std::fmt::Write as _;

use super::{Map, Value};

#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum RenderError {
    /// Keys cannot contain escapes, so a key with both quote characters (or a NUL, which the
    /// lexer reads as end of input) cannot be written.
    #[error("key {0:?} cannot be written in the config language")]
    UnrepresentableKey(String),
    /// The language has no syntax for NaN or infinities.
    #[error("float {0} cannot be written in the config language")]
    NonFiniteFloat(f64),
}

/// Renders a map as a config file (one `key = value` per line).
pub fn render_map(map: &Map) -> Result<String, RenderError> {
    let mut out = String::new();
    write_entries(&mut out, map, 0)?;
    Ok(out)
}

/// Renders one value as it would appear after `key = `.
pub fn render_value(value: &Value) -> Result<String, RenderError> {
    let mut out = String::new();
    write_value(&mut out, value, 0)?;
    Ok(out)
}

fn indent(out: &mut String, level: usize) {
    for _ in 0..level {
        out.push_str("  ");
    }
}

fn write_entries(out: &mut String, map: &Map, level: usize) -> Result<(), RenderError> {
    for e in map {
        indent(out, level);
        write_key(out, &e.key)?;
        out.push_str(" = ");
        write_value(out, &e.value.value, level)?;
        out.push('\n');
    }
    Ok(())
}

fn is_bare_key(key: &str) -> bool {
    !key.is_empty()
        && !key.eq_ignore_ascii_case("include")
        && key
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'-' | b'.'))
}

fn write_key(out: &mut String, key: &str) -> Result<(), RenderError> {
    if is_bare_key(key) {
        out.push_str(key);
    } else if key.contains('\0') {
        return Err(RenderError::UnrepresentableKey(key.to_string()));
    } else if !key.contains('"') {
        out.push('"');
        out.push_str(key);
        out.push('"');
    } else if !key.contains('\'') {
        out.push('\'');
        out.push_str(key);
        out.push('\'');
    } else {
        return Err(RenderError::UnrepresentableKey(key.to_string()));
    }
    Ok(())
}

fn write_string(out: &mut String, s: &str) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
}

fn write_value(out: &mut String, value: &Value, level: usize) -> Result<(), RenderError> {
    match value {
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Int(i) => {
            let _ = write!(out, "{i}");
        }
        Value::Float(f) => {
            if !f.is_finite() {
                return Err(RenderError::NonFiniteFloat(*f));
            }
            // Display never uses exponents, which the language lacks.
            let s = f.to_string();
            out.push_str(&s);
            if !s.contains('.') {
                out.push_str(".0");
            }
        }
        Value::String(s) => write_string(out, s),
        Value::DateTime(d) => {
            let _ = write!(out, "{d}");
        }
        Value::Array(items) => {
            out.push_str("[\n");
            for item in items {
                indent(out, level + 1);
                write_value(out, &item.value, level + 1)?;
                out.push('\n');
            }
            indent(out, level);
            out.push(']');
        }
        Value::Map(m) => {
            out.push_str("{\n");
            write_entries(out, m, level + 1)?;
            indent(out, level);
            out.push('}');
        }
    }
    Ok(())
}
