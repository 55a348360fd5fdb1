//! nats-server's subject transform language, shared by core subject mappings
//! (`mappings {}`), JetStream's `subject_transform`, `republish` and source transforms.
//!
//! A transform takes a source filter (`orders.*.>`) and a destination whose tokens are
//! literals, `>` (the rest of the subject), or mapping functions in mustaches:
//! `{{wildcard(n)}}` (legacy `$n`), `{{partition(n, wildcards...)}}`, `{{split(w, d)}}`,
//! `{{splitFromLeft(w, n)}}`, `{{splitFromRight(w, n)}}`, `{{sliceFromLeft(w, n)}}`,
//! `{{sliceFromRight(w, n)}}`, `{{left(w, n)}}`, `{{right(w, n)}}` and `{{random(n)}}`.
//! Validation reports nats-server's own error texts, so clients and configs see the same
//! words from either server.
//!
//! Everything works on bytes: nats-server slices Go strings by byte, and so must a
//! drop-in, or `{{left(1,1)}}` of a multi-byte token would differ.

mod error;
mod function;
mod mapping;
mod subject;
mod transform;

pub use error::{DestinationError, MappingError, TransformError};
pub use mapping::{MapDest, Mapping, Mappings};
pub use subject::{is_valid_subject, subset_match};
pub use transform::{SubjectTransform, validate_mapping};

/// Go's `strconv.Quote` (and `%q`), as nats-server's error texts quote subjects.
pub fn go_quote(s: &str) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\x07' => out.push_str("\\a"),
            '\x08' => out.push_str("\\b"),
            '\x0c' => out.push_str("\\f"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            '\x0b' => out.push_str("\\v"),
            c if (c as u32) < 0x20 || c == '\x7f' => {
                let _ = write!(out, "\\x{:02x}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}
