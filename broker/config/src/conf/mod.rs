//! The nats-server configuration language: lexer, parser and value tree.
//!
//! This module owns the text format only. It turns a config file (plus the files it
//! `include`s and the environment variables it references) into a tree of [`Value`]s where
//! every value remembers where it came from ([`Pos`]), so that the typed layer
//! ([`crate::options`]) can report `file:line:col` errors. It knows nothing about option
//! names.
//!
//! The accepted language is the one of nats-server's `conf/lex.go` and `conf/parse.go`: the
//! lexer is a state machine with the same states, so the same inputs are accepted and
//! rejected, with the same error texts (checked by differential runs against the Go code).
//! Deliberate differences, each turning a silent misreading in nats-server into an error:
//! - an integer with an unknown size suffix (`1kbb`) or that overflows once scaled is an
//!   error (nats-server drops the key, or wraps the number);
//! - a key left without a value (`a { b }`) is an error (nats-server gives the enclosing
//!   map to the wrong key);
//! - input ending inside an open map or array is an error (nats-server drops the value);
//! - include cycles, nesting deeper than [`MAX_DEPTH`] and runaway variable expansion are
//!   errors (nats-server overflows its stack, or shares values by pointer where we copy);
//! - positions are 1-based columns everywhere (nats-server's first line is 0-based), and
//!   every error, lexer errors included, carries `file:line:col`.

mod lexer;
mod parser;
mod render;

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;

pub use render::{RenderError, render_map, render_value};

/// How deeply maps and arrays may nest, and includes may chain, before the parser gives up.
///
/// Real configs nest a handful of levels; the cap keeps hostile input from exhausting the
/// stack of code that walks the tree recursively (drop, render, the options layer).
pub const MAX_DEPTH: usize = 128;

/// Where a value or key starts: file name as given (or as joined for includes), 1-based line
/// and 1-based column (in characters).
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub struct Pos {
    pub file: Arc<str>,
    pub line: u32,
    pub column: u32,
}

impl Pos {
    pub fn new(file: impl Into<Arc<str>>, line: u32, column: u32) -> Self {
        Self {
            file: file.into(),
            line,
            column,
        }
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}:{}", self.file, self.line, self.column)
    }
}

/// A value together with the position it was read from.
///
/// Equality compares the value only: two configs that say the same thing in different places
/// are equal, which is what the round-trip tests and reload comparisons want.
#[derive(Clone, Debug)]
pub struct Spanned<T> {
    pub value: T,
    pub pos: Pos,
}

impl<T> Spanned<T> {
    pub fn new(value: T, pos: Pos) -> Self {
        Self { value, pos }
    }
}

impl<T: PartialEq> PartialEq for Spanned<T> {
    fn eq(&self, other: &Self) -> bool {
        self.value == other.value
    }
}

/// A Zulu timestamp as the config language writes it: `2006-01-02T15:04:05Z`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DateTime {
    pub year: u16,
    pub month: u8,
    pub day: u8,
    pub hour: u8,
    pub minute: u8,
    pub second: u8,
}

impl DateTime {
    /// Parses exactly `YYYY-MM-DDTHH:MM:SSZ` with calendar checks, as Go's `time.Parse`
    /// does for that layout.
    pub fn parse(s: &str) -> Option<Self> {
        let b = s.as_bytes();
        if b.len() != 20
            || b[4] != b'-'
            || b[7] != b'-'
            || b[10] != b'T'
            || b[13] != b':'
            || b[16] != b':'
            || b[19] != b'Z'
        {
            return None;
        }
        let num = |r: std::ops::Range<usize>| -> Option<u16> {
            let part = s.get(r)?;
            if !part.bytes().all(|c| c.is_ascii_digit()) {
                return None;
            }
            part.parse().ok()
        };
        let year = num(0..4)?;
        let month = u8::try_from(num(5..7)?).ok()?;
        let day = u8::try_from(num(8..10)?).ok()?;
        let hour = u8::try_from(num(11..13)?).ok()?;
        let minute = u8::try_from(num(14..16)?).ok()?;
        let second = u8::try_from(num(17..19)?).ok()?;
        let leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
        let days = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if leap => 29,
            2 => 28,
            _ => return None,
        };
        if day == 0 || day > days || hour > 23 || minute > 59 || second > 59 {
            return None;
        }
        Some(Self {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
    }
}

impl fmt::Display for DateTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            self.year, self.month, self.day, self.hour, self.minute, self.second
        )
    }
}

/// One value of the config language.
///
/// There is no duration type: like nats-server, durations are strings (`"2m"`) or integers
/// (seconds), interpreted by the options layer.
#[derive(Clone, Debug, PartialEq)]
pub enum Value {
    Bool(bool),
    Int(i64),
    Float(f64),
    String(String),
    DateTime(DateTime),
    Array(Vec<Spanned<Value>>),
    Map(Map),
}

impl Value {
    /// The Go type nats-server would see for this value, used in its error texts
    /// (`interface conversion: interface {} is string, not int64`).
    pub fn go_type(&self) -> &'static str {
        match self {
            Value::Bool(_) => "bool",
            Value::Int(_) => "int64",
            Value::Float(_) => "float64",
            Value::String(_) => "string",
            Value::DateTime(_) => "time.Time",
            Value::Array(_) => "[]interface {}",
            Value::Map(_) => "map[string]interface {}",
        }
    }

    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::String(s) => Some(s),
            _ => None,
        }
    }

    pub fn as_int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }

    pub fn as_bool(&self) -> Option<bool> {
        match self {
            Value::Bool(b) => Some(*b),
            _ => None,
        }
    }

    pub fn as_map(&self) -> Option<&Map> {
        match self {
            Value::Map(m) => Some(m),
            _ => None,
        }
    }

    pub fn as_array(&self) -> Option<&[Spanned<Value>]> {
        match self {
            Value::Array(a) => Some(a),
            _ => None,
        }
    }

    /// Number of nodes in this tree (itself included); used to cap variable expansion.
    pub(crate) fn node_count(&self) -> usize {
        match self {
            Value::Array(a) => 1 + a.iter().map(|v| v.value.node_count()).sum::<usize>(),
            Value::Map(m) => {
                1 + m
                    .entries
                    .iter()
                    .map(|e| e.value.value.node_count())
                    .sum::<usize>()
            }
            _ => 1,
        }
    }

    /// Moves every position in this tree to `pos` (values that came from an environment
    /// variable have no place in any file but the reference).
    pub(crate) fn restamp(&mut self, pos: &Pos) {
        match self {
            Value::Array(a) => {
                for v in a {
                    v.pos = pos.clone();
                    v.value.restamp(pos);
                }
            }
            Value::Map(m) => {
                for e in &mut m.entries {
                    e.key_pos = pos.clone();
                    e.value.pos = pos.clone();
                    e.value.value.restamp(pos);
                }
            }
            _ => {}
        }
    }
}

/// One `key: value` of a map, with the position of the key (errors about a value point at
/// its key, as in nats-server).
#[derive(Clone, Debug)]
pub struct Entry {
    pub key: String,
    pub key_pos: Pos,
    pub value: Spanned<Value>,
    /// Set when the entry was referenced as `$key`: such entries are variables, not
    /// options, so the options layer does not report them as unknown fields.
    pub used_as_variable: bool,
}

impl PartialEq for Entry {
    fn eq(&self, other: &Self) -> bool {
        self.key == other.key && self.value == other.value
    }
}

/// A map in source order. Keys are unique (case-sensitive, as in nats-server); a repeated
/// key replaces the earlier value in place.
#[derive(Clone, Debug, Default)]
pub struct Map {
    entries: Vec<Entry>,
    /// Key → position in `entries`, so that building and looking up large maps stays
    /// linear.
    index: HashMap<String, usize>,
}

impl PartialEq for Map {
    fn eq(&self, other: &Self) -> bool {
        self.entries == other.entries
    }
}

impl Map {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn iter(&self) -> std::slice::Iter<'_, Entry> {
        self.entries.iter()
    }

    /// Exact-key lookup (variables are case-sensitive).
    pub fn get(&self, key: &str) -> Option<&Spanned<Value>> {
        self.index.get(key).map(|&i| &self.entries[i].value)
    }

    /// Case-insensitive lookup, the way option names are matched. When several spellings
    /// are present the last one wins.
    pub fn get_ignore_case(&self, key: &str) -> Option<&Entry> {
        self.entries
            .iter()
            .rev()
            .find(|e| e.key.eq_ignore_ascii_case(key))
    }

    pub(crate) fn get_entry_mut(&mut self, key: &str) -> Option<&mut Entry> {
        let i = *self.index.get(key)?;
        self.entries.get_mut(i)
    }

    /// Sets `key`, replacing an existing value of the same key in place.
    pub fn insert(&mut self, key: impl Into<String>, key_pos: Pos, value: Spanned<Value>) {
        self.insert_entry(Entry {
            key: key.into(),
            key_pos,
            value,
            used_as_variable: false,
        });
    }

    pub(crate) fn insert_entry(&mut self, entry: Entry) {
        match self.index.get(&entry.key) {
            Some(&i) => self.entries[i] = entry,
            None => {
                self.index.insert(entry.key.clone(), self.entries.len());
                self.entries.push(entry);
            }
        }
    }

    /// Takes the entries out, in order.
    pub(crate) fn into_entries(self) -> Vec<Entry> {
        self.entries
    }
}

impl<'a> IntoIterator for &'a Map {
    type Item = &'a Entry;
    type IntoIter = std::slice::Iter<'a, Entry>;
    fn into_iter(self) -> Self::IntoIter {
        self.entries.iter()
    }
}

/// What went wrong while reading a config.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ConfErrorKind {
    /// The text is not in the config language.
    Syntax,
    /// A file could not be read.
    Io,
    /// An included file failed; the message carries the inner error.
    Include,
    /// A `$VAR` could not be resolved or its environment value did not parse.
    Variable,
    /// A safety cap was hit (nesting, include depth, expansion size, file size).
    Limit,
}

/// A config language error. Displays as nats-server's config errors do:
/// `<file>:<line>:<col>: <message>`.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub struct ConfError {
    pub kind: ConfErrorKind,
    pub pos: Option<Pos>,
    pub message: String,
}

impl ConfError {
    pub(crate) fn new(kind: ConfErrorKind, pos: Option<Pos>, message: impl Into<String>) -> Self {
        Self {
            kind,
            pos,
            message: message.into(),
        }
    }
}

impl fmt::Display for ConfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match &self.pos {
            Some(pos) => write!(f, "{pos}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}

/// Where the parser gets included files and environment variables from. The server uses
/// [`SystemLoader`]; tests and the fuzzer use [`MemoryLoader`] so that nothing outside the
/// input influences the result.
pub trait Loader {
    fn read_file(&self, path: &Path) -> io::Result<String>;
    fn env_var(&self, name: &str) -> Option<String>;
}

/// Largest config file the loaders accept; anything bigger is not a config file.
pub const MAX_FILE_SIZE: u64 = 64 * 1024 * 1024;

/// The real file system and process environment.
///
/// Only regular files are read (so `include /dev/zero` cannot hang the server), and bytes
/// that are not UTF-8 are replaced rather than rejected, as Go would carry them through.
#[derive(Clone, Copy, Debug, Default)]
pub struct SystemLoader;

impl Loader for SystemLoader {
    fn read_file(&self, path: &Path) -> io::Result<String> {
        let meta = std::fs::metadata(path)?;
        if !meta.is_file() {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "not a regular file",
            ));
        }
        if meta.len() > MAX_FILE_SIZE {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "file too large"));
        }
        let bytes = std::fs::read(path)?;
        Ok(match String::from_utf8(bytes) {
            Ok(s) => s,
            Err(e) => String::from_utf8_lossy(e.as_bytes()).into_owned(),
        })
    }

    fn env_var(&self, name: &str) -> Option<String> {
        if name.is_empty() || name.contains(['=', '\0']) {
            return None;
        }
        std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
    }
}

/// In-memory files and environment, for tests and fuzzing.
#[derive(Clone, Debug, Default)]
pub struct MemoryLoader {
    pub files: HashMap<PathBuf, String>,
    pub env: HashMap<String, String>,
}

impl MemoryLoader {
    pub fn new() -> Self {
        Self::default()
    }

    pub fn with_file(mut self, path: impl Into<PathBuf>, text: impl Into<String>) -> Self {
        self.files.insert(path.into(), text.into());
        self
    }

    pub fn with_env(mut self, name: impl Into<String>, value: impl Into<String>) -> Self {
        self.env.insert(name.into(), value.into());
        self
    }
}

impl Loader for MemoryLoader {
    fn read_file(&self, path: &Path) -> io::Result<String> {
        self.files
            .get(path)
            .cloned()
            .ok_or_else(|| io::Error::from(io::ErrorKind::NotFound))
    }

    fn env_var(&self, name: &str) -> Option<String> {
        self.env.get(name).cloned()
    }
}

/// A parsed config: the top-level map and every file that contributed to it.
#[derive(Clone, Debug, PartialEq)]
pub struct Document {
    pub root: Map,
    /// The main file (if parsed from a file) followed by every included file, in the order
    /// they were read.
    pub files: Vec<PathBuf>,
}

impl Document {
    /// A stable fingerprint of what the config says (after includes and variables are
    /// resolved), like nats-server's config digest: comments and layout do not change it,
    /// an environment variable that changes a value does. Format: `fnv1a64:<16 hex>`.
    pub fn digest(&self) -> String {
        let mut h = Fnv::new();
        hash_map(&mut h, &self.root);
        format!("fnv1a64:{:016x}", h.0)
    }
}

struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Fnv(0xcbf2_9ce4_8422_2325)
    }
    fn bytes(&mut self, b: &[u8]) {
        for &x in b {
            self.0 ^= u64::from(x);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
    fn tagged(&mut self, tag: u8, b: &[u8]) {
        self.bytes(&[tag]);
        self.bytes(&(b.len() as u64).to_le_bytes());
        self.bytes(b);
    }
}

fn hash_map(h: &mut Fnv, m: &Map) {
    h.tagged(b'{', &(m.len() as u64).to_le_bytes());
    for e in m {
        h.tagged(b'k', e.key.as_bytes());
        hash_value(h, &e.value.value);
    }
}

fn hash_value(h: &mut Fnv, v: &Value) {
    match v {
        Value::Bool(b) => h.tagged(b'b', &[u8::from(*b)]),
        Value::Int(i) => h.tagged(b'i', &i.to_le_bytes()),
        Value::Float(f) => h.tagged(b'f', &f.to_bits().to_le_bytes()),
        Value::String(s) => h.tagged(b's', s.as_bytes()),
        Value::DateTime(d) => h.tagged(b't', d.to_string().as_bytes()),
        Value::Array(a) => {
            h.tagged(b'[', &(a.len() as u64).to_le_bytes());
            for x in a {
                hash_value(h, &x.value);
            }
        }
        Value::Map(m) => hash_map(h, m),
    }
}

/// Parses config text. `name` is used in positions and as the base for relative includes
/// (its directory; the current directory when it has none). Includes and `$VAR`s come from
/// the real file system and environment.
pub fn parse_str(src: &str, name: &str) -> Result<Document, ConfError> {
    parse_with(src, name, &SystemLoader)
}

/// Reads and parses a config file with includes and environment from the system.
pub fn parse_file(path: &Path) -> Result<Document, ConfError> {
    parse_file_with(path, &SystemLoader)
}

/// Reads and parses a config file through `loader`.
pub fn parse_file_with(path: &Path, loader: &dyn Loader) -> Result<Document, ConfError> {
    let name = path.to_string_lossy().into_owned();
    let text = loader.read_file(path).map_err(|e| {
        ConfError::new(
            ConfErrorKind::Io,
            None,
            format!("error opening config file: {}", go_io_error(&name, &e)),
        )
    })?;
    let mut doc = parser::parse_document(&text, &name, loader)?;
    doc.files.insert(0, path.to_path_buf());
    Ok(doc)
}

/// Parses config text with includes and environment variables taken from `loader`.
pub fn parse_with(src: &str, name: &str, loader: &dyn Loader) -> Result<Document, ConfError> {
    parser::parse_document(src, name, loader)
}

/// Formats an I/O error the way Go's `os` package does (`open x.conf: no such file or
/// directory`), so messages read like nats-server's.
pub(crate) fn go_io_error(path: &str, e: &io::Error) -> String {
    let what = match e.kind() {
        io::ErrorKind::NotFound => "no such file or directory".to_string(),
        io::ErrorKind::PermissionDenied => "permission denied".to_string(),
        io::ErrorKind::IsADirectory => "is a directory".to_string(),
        _ => {
            let s = e.to_string();
            // Strip Rust's " (os error N)" suffix.
            match s.find(" (os error") {
                Some(i) => s[..i].to_ascii_lowercase(),
                None => s,
            }
        }
    };
    format!("open {path}: {what}")
}
