//! Builds the value tree from lexer items: maps, arrays, scalars, `$VAR` references and
//! `include`s, with the semantics of nats-server's `conf/parse.go`.
//!
//! The tree is built with an explicit stack of open maps/arrays (no recursion), so input
//! depth costs heap, not stack; depth itself is capped by [`MAX_DEPTH`].

use std::collections::HashSet;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

use super::lexer::{Item, ItemKind, Lexer};
use super::{
    ConfError, ConfErrorKind, DateTime, Document, Entry, Loader, MAX_DEPTH, Map, Pos, Spanned,
    Value, go_io_error,
};

/// Variables are copied where they are referenced; past this many copied nodes a config is
/// hostile (nested references doubling at each level), not large.
const MAX_EXPANDED_NODES: usize = 1 << 20;

/// A file may include others; past this many includes in one parse we stop (a chain of
/// files that each include the next one twice would otherwise be exponential).
const MAX_INCLUDES: usize = 1024;

/// State shared by a parse and the parses it starts for includes and environment values.
struct Shared<'l> {
    loader: &'l dyn Loader,
    expanded_nodes: usize,
    includes: usize,
    files: Vec<PathBuf>,
}

enum Ctx {
    Map(Map, Pos),
    Array(Vec<Spanned<Value>>, Pos),
}

struct PendingKey {
    key: String,
    pos: Pos,
    /// Context depth the key was read at; its value must land in the map at that depth.
    depth: usize,
}

struct Parser<'a, 's, 'l> {
    lexer: Lexer<'a>,
    file: Arc<str>,
    /// Line start offsets, to turn byte offsets into line/column.
    lines: Vec<usize>,
    src: &'a str,
    /// Last computed position (byte offset, line index, column), so that positions of
    /// successive items on one long line cost the distance between them, not the line.
    last_pos: std::cell::Cell<(usize, usize, usize)>,
    /// Directory relative includes are resolved against.
    dir: PathBuf,
    ctxs: Vec<Ctx>,
    keys: Vec<PendingKey>,
    /// Environment variables being expanded right now (cycle detection), shared with the
    /// parsers of their values.
    env_refs: HashSet<String>,
    /// Files being included right now (cycle detection).
    include_chain: Vec<PathBuf>,
    shared: &'s mut Shared<'l>,
}

pub(crate) fn parse_document(
    src: &str,
    name: &str,
    loader: &dyn Loader,
) -> Result<Document, ConfError> {
    let mut shared = Shared {
        loader,
        expanded_nodes: 0,
        includes: 0,
        files: Vec::new(),
    };
    let dir = parent_dir(name);
    // The file itself is the first link of the include chain, so that a file including
    // itself (directly or not) is caught at once.
    let chain = if name.is_empty() {
        Vec::new()
    } else {
        vec![clean(Path::new(name))]
    };
    let root = parse_inner(src, name, dir, HashSet::new(), chain, &mut shared)?;
    Ok(Document {
        root,
        files: shared.files,
    })
}

fn parent_dir(name: &str) -> PathBuf {
    match Path::new(name).parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

fn parse_inner(
    src: &str,
    name: &str,
    dir: PathBuf,
    env_refs: HashSet<String>,
    include_chain: Vec<PathBuf>,
    shared: &mut Shared<'_>,
) -> Result<Map, ConfError> {
    let mut lines = vec![0];
    lines.extend(
        src.bytes()
            .enumerate()
            .filter(|(_, b)| *b == b'\n')
            .map(|(i, _)| i + 1),
    );
    let file: Arc<str> = Arc::from(name);
    let mut p = Parser {
        lexer: Lexer::new(src),
        file: file.clone(),
        lines,
        src,
        last_pos: std::cell::Cell::new((0, 0, 1)),
        dir,
        ctxs: vec![Ctx::Map(Map::new(), Pos::new(file, 1, 1))],
        keys: Vec::new(),
        env_refs,
        include_chain,
        shared,
    };
    p.run()?;
    // nats-server stops quietly at an end of input inside an open map or array (dropping
    // it); a truncated config is refused here instead.
    if p.ctxs.len() > 1
        && let Some(Ctx::Map(_, pos) | Ctx::Array(_, pos)) = p.ctxs.last()
    {
        return Err(ConfError::new(
            ConfErrorKind::Syntax,
            Some(pos.clone()),
            "config is invalid: unexpected end of input before this map or array was closed",
        ));
    }
    match p.ctxs.pop() {
        Some(Ctx::Map(m, _)) => Ok(m),
        _ => Err(ConfError::new(
            ConfErrorKind::Syntax,
            None,
            "config is invalid",
        )),
    }
}

impl Parser<'_, '_, '_> {
    fn pos(&self, offset: usize) -> Pos {
        let offset = offset.min(self.src.len());
        let line = match self.lines.binary_search(&offset) {
            Ok(i) => i,
            Err(i) => i.saturating_sub(1),
        };
        let (last_off, last_line, last_col) = self.last_pos.get();
        let (from, base) = if last_line == line && last_off <= offset {
            (last_off, last_col)
        } else {
            (self.lines.get(line).copied().unwrap_or(0), 1)
        };
        let column = match self.src.get(from..offset) {
            Some(s) => base + s.chars().count(),
            // Offset inside a multi-byte character: count bytes instead.
            None => base + offset.saturating_sub(from),
        };
        if self.src.is_char_boundary(offset) {
            self.last_pos.set((offset, line, column));
        }
        Pos::new(
            self.file.clone(),
            u32::try_from(line + 1).unwrap_or(u32::MAX),
            u32::try_from(column).unwrap_or(u32::MAX),
        )
    }

    fn err(&self, kind: ConfErrorKind, pos: Pos, msg: impl Into<String>) -> ConfError {
        ConfError::new(kind, Some(pos), msg)
    }

    fn run(&mut self) -> Result<(), ConfError> {
        let mut prev: Option<(ItemKind, String)> = None;
        loop {
            let item = self.lexer.next_item();
            if item.kind == ItemKind::Eof {
                // A trailing key without a value is invalid, except a lone "}" that closes a
                // JSON-like config (nats-server makes the same exception).
                if let Some((ItemKind::Key, v)) = &prev
                    && v != "}"
                {
                    let pos = self.pos(item.offset);
                    return Err(self.err(ConfErrorKind::Syntax, pos, "config is invalid"));
                }
                return Ok(());
            }
            prev = Some((item.kind, item.val.clone()));
            self.process(item)?;
        }
    }

    fn process(&mut self, item: Item) -> Result<(), ConfError> {
        let pos = self.pos(item.offset);
        match item.kind {
            ItemKind::Error => Err(self.err(ConfErrorKind::Syntax, pos, item.val)),
            ItemKind::Eof | ItemKind::Text | ItemKind::CommentStart => Ok(()),
            ItemKind::Key => {
                self.keys.push(PendingKey {
                    key: item.val,
                    pos,
                    depth: self.ctxs.len(),
                });
                Ok(())
            }
            ItemKind::MapStart => {
                self.check_depth(&pos)?;
                self.ctxs.push(Ctx::Map(Map::new(), pos));
                Ok(())
            }
            ItemKind::ArrayStart => {
                self.check_depth(&pos)?;
                self.ctxs.push(Ctx::Array(Vec::new(), pos));
                Ok(())
            }
            ItemKind::MapEnd | ItemKind::ArrayEnd => {
                self.check_no_pending_key()?;
                if self.ctxs.len() < 2 {
                    return Err(self.err(ConfErrorKind::Syntax, pos, "config is invalid"));
                }
                let value = match self.ctxs.pop() {
                    Some(Ctx::Map(m, p)) if item.kind == ItemKind::MapEnd => {
                        Spanned::new(Value::Map(m), p)
                    }
                    Some(Ctx::Array(a, p)) if item.kind == ItemKind::ArrayEnd => {
                        Spanned::new(Value::Array(a), p)
                    }
                    _ => return Err(self.err(ConfErrorKind::Syntax, pos, "config is invalid")),
                };
                self.set_value(value, false)
            }
            ItemKind::String => self.set_value(Spanned::new(Value::String(item.val), pos), false),
            ItemKind::Bool => {
                let b = match item.val.to_ascii_lowercase().as_str() {
                    "true" | "yes" | "on" => true,
                    "false" | "no" | "off" => false,
                    _ => {
                        return Err(self.err(
                            ConfErrorKind::Syntax,
                            pos,
                            format!("expected boolean value, but got '{}'", item.val),
                        ));
                    }
                };
                self.set_value(Spanned::new(Value::Bool(b), pos), false)
            }
            ItemKind::Integer => {
                let n = parse_integer(&item.val)
                    .map_err(|m| self.err(ConfErrorKind::Syntax, pos.clone(), m))?;
                self.set_value(Spanned::new(Value::Int(n), pos), false)
            }
            ItemKind::Float => {
                let f: f64 = item.val.parse().map_err(|_| {
                    self.err(
                        ConfErrorKind::Syntax,
                        pos.clone(),
                        format!("expected float, but got '{}'", item.val),
                    )
                })?;
                if !f.is_finite() {
                    return Err(self.err(
                        ConfErrorKind::Syntax,
                        pos,
                        format!("float '{}' is out of the range", item.val),
                    ));
                }
                self.set_value(Spanned::new(Value::Float(f), pos), false)
            }
            ItemKind::DateTime => {
                let dt = DateTime::parse(&item.val).ok_or_else(|| {
                    self.err(
                        ConfErrorKind::Syntax,
                        pos.clone(),
                        format!("expected Zulu formatted DateTime, but got '{}'", item.val),
                    )
                })?;
                self.set_value(Spanned::new(Value::DateTime(dt), pos), false)
            }
            ItemKind::Variable => {
                let value = self.lookup_variable(&item.val, &pos)?;
                self.set_value(value, false)
            }
            ItemKind::Include => self.include(&item.val, pos),
        }
    }

    fn check_depth(&self, pos: &Pos) -> Result<(), ConfError> {
        if self.ctxs.len() > MAX_DEPTH {
            return Err(self.err(
                ConfErrorKind::Limit,
                pos.clone(),
                format!("maximum nesting depth of {MAX_DEPTH} exceeded"),
            ));
        }
        Ok(())
    }

    /// A key read inside the map being closed never got its value (`a { b }`). nats-server
    /// would silently give the map to the wrong key; we refuse.
    fn check_no_pending_key(&self) -> Result<(), ConfError> {
        if let Some(k) = self.keys.last()
            && k.depth == self.ctxs.len()
        {
            return Err(self.err(
                ConfErrorKind::Syntax,
                k.pos.clone(),
                format!("config is invalid: key '{}' has no value", k.key),
            ));
        }
        Ok(())
    }

    fn set_value(&mut self, value: Spanned<Value>, used: bool) -> Result<(), ConfError> {
        let depth = self.ctxs.len();
        let key = match self.ctxs.last() {
            Some(Ctx::Map(..)) => match self.keys.pop() {
                Some(k) if k.depth == depth => Some(k),
                Some(k) => {
                    return Err(self.err(
                        ConfErrorKind::Syntax,
                        k.pos,
                        format!("config is invalid: key '{}' has no value", k.key),
                    ));
                }
                None => {
                    return Err(self.err(ConfErrorKind::Syntax, value.pos, "config is invalid"));
                }
            },
            _ => None,
        };
        match (self.ctxs.last_mut(), key) {
            (Some(Ctx::Array(a, _)), _) => a.push(value),
            (Some(Ctx::Map(m, _)), Some(k)) => m.insert_entry(Entry {
                key: k.key,
                key_pos: k.pos,
                value,
                used_as_variable: used,
            }),
            _ => {
                return Err(self.err(ConfErrorKind::Syntax, value.pos, "config is invalid"));
            }
        }
        Ok(())
    }

    fn charge_expansion(&mut self, value: &Value, pos: &Pos) -> Result<(), ConfError> {
        self.shared.expanded_nodes = self
            .shared
            .expanded_nodes
            .saturating_add(value.node_count());
        if self.shared.expanded_nodes > MAX_EXPANDED_NODES {
            return Err(self.err(
                ConfErrorKind::Limit,
                pos.clone(),
                "configuration too large after variable expansion",
            ));
        }
        Ok(())
    }

    /// Resolves `$name`: bcrypt hashes stay strings, then enclosing maps from the innermost
    /// out, then the environment (whose value is parsed as config).
    fn lookup_variable(&mut self, name: &str, pos: &Pos) -> Result<Spanned<Value>, ConfError> {
        // A bare "$2a$..." is a bcrypt hash, not a reference.
        if name.starts_with("2a$") {
            return Ok(Spanned::new(Value::String(format!("${name}")), pos.clone()));
        }
        let mut found = None;
        for ctx in self.ctxs.iter_mut().rev() {
            if let Ctx::Map(m, _) = ctx
                && let Some(e) = m.get_entry_mut(name)
            {
                e.used_as_variable = true;
                found = Some(e.value.value.clone());
                break;
            }
        }
        if let Some(value) = found {
            self.charge_expansion(&value, pos)?;
            return Ok(Spanned::new(value, pos.clone()));
        }

        if self.env_refs.contains(name) {
            return Err(self.err(
                ConfErrorKind::Variable,
                pos.clone(),
                format!(
                    "variable reference for '{name}' could not be parsed: variable reference cycle for '{name}'"
                ),
            ));
        }
        let Some(text) = self.shared.loader.env_var(name) else {
            return Err(self.err(
                ConfErrorKind::Variable,
                pos.clone(),
                format!("variable reference for '{name}' can not be found"),
            ));
        };
        let mut refs = self.env_refs.clone();
        refs.insert(name.to_string());
        let src = format!("pk={text}");
        let env_name = format!("${name}");
        let parsed = parse_inner(
            &src,
            &env_name,
            PathBuf::from("."),
            refs,
            self.include_chain.clone(),
            self.shared,
        );
        let mut map = match parsed {
            Ok(m) => m,
            Err(e) => {
                return Err(self.err(
                    ConfErrorKind::Variable,
                    pos.clone(),
                    format!(
                        "variable reference for '{name}' could not be parsed: {}",
                        e.message
                    ),
                ));
            }
        };
        match map.get_entry_mut("pk") {
            Some(e) => {
                let mut value = std::mem::replace(&mut e.value.value, Value::Bool(false));
                value.restamp(pos);
                self.charge_expansion(&value, pos)?;
                Ok(Spanned::new(value, pos.clone()))
            }
            None => Err(self.err(
                ConfErrorKind::Variable,
                pos.clone(),
                format!("variable reference for '{name}' can not be found"),
            )),
        }
    }

    /// `include <path>`: parse the file on its own (it does not see our variables) and merge
    /// its keys into the current map.
    fn include(&mut self, target: &str, pos: Pos) -> Result<(), ConfError> {
        let path = go_join(&self.dir, target);
        let shown = path.to_string_lossy().into_owned();
        let wrap = |e: ConfError| {
            ConfError::new(
                ConfErrorKind::Include,
                Some(pos.clone()),
                format!("error parsing include file '{target}', {e}"),
            )
        };
        if self.include_chain.contains(&path) {
            return Err(wrap(ConfError::new(
                ConfErrorKind::Limit,
                None,
                format!("include cycle detected at '{shown}'"),
            )));
        }
        if self.include_chain.len() >= MAX_DEPTH / 4 {
            return Err(wrap(ConfError::new(
                ConfErrorKind::Limit,
                None,
                "includes nested too deeply",
            )));
        }
        self.shared.includes += 1;
        if self.shared.includes > MAX_INCLUDES {
            return Err(wrap(ConfError::new(
                ConfErrorKind::Limit,
                None,
                format!("more than {MAX_INCLUDES} includes"),
            )));
        }
        let text = self.shared.loader.read_file(&path).map_err(|e| {
            wrap(ConfError::new(
                ConfErrorKind::Io,
                None,
                format!("error opening config file: {}", go_io_error(&shown, &e)),
            ))
        })?;
        self.shared.files.push(path.clone());
        let mut chain = self.include_chain.clone();
        chain.push(path);
        let dir = parent_dir(&shown);
        let map =
            parse_inner(&text, &shown, dir, HashSet::new(), chain, self.shared).map_err(&wrap)?;
        let depth = self.ctxs.len();
        for e in map.into_entries() {
            self.keys.push(PendingKey {
                key: e.key,
                pos: e.key_pos,
                depth,
            });
            self.set_value(e.value, e.used_as_variable)?;
        }
        Ok(())
    }
}

/// Go's `filepath.Join(dir, name)`: concatenation then lexical cleaning. An absolute `name`
/// is still taken relative to `dir`, exactly as nats-server resolves includes.
fn go_join(dir: &Path, name: &str) -> PathBuf {
    let joined = if name.is_empty() {
        dir.to_path_buf()
    } else {
        PathBuf::from(format!("{}/{}", dir.to_string_lossy(), name))
    };
    clean(&joined)
}

/// Lexical path cleaning (Go's `filepath.Clean`).
fn clean(p: &Path) -> PathBuf {
    let mut out: Vec<Component<'_>> = Vec::new();
    for c in p.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => match out.last() {
                Some(Component::Normal(_)) => {
                    out.pop();
                }
                Some(Component::RootDir) | Some(Component::Prefix(_)) => {}
                _ => out.push(c),
            },
            _ => out.push(c),
        }
    }
    if out.is_empty() {
        return PathBuf::from(".");
    }
    out.iter().collect()
}

/// Integer literal with optional size suffix, as parse.go reads it: the leading digits (and
/// minus signs), then `k/m/g/t/p/e` (×1000ⁿ) or `kb/ki/kib`... (×1024ⁿ), case-insensitive.
fn parse_integer(text: &str) -> Result<i64, String> {
    let split = text
        .char_indices()
        .find(|(_, c)| !(c.is_ascii_digit() || *c == '-'))
        .map_or(text.len(), |(i, _)| i);
    let (digits, suffix) = text.split_at(split);
    let num: i64 = digits.parse().map_err(|e: std::num::ParseIntError| {
        use std::num::IntErrorKind;
        match e.kind() {
            IntErrorKind::PosOverflow | IntErrorKind::NegOverflow => {
                format!("integer '{text}' is out of the range")
            }
            _ => format!("expected integer, but got '{text}'"),
        }
    })?;
    let suffix = suffix.trim().to_ascii_lowercase();
    let (base, power): (i64, u32) = match suffix.as_str() {
        "" => return Ok(num),
        "k" => (1000, 1),
        "kb" | "ki" | "kib" => (1024, 1),
        "m" => (1000, 2),
        "mb" | "mi" | "mib" => (1024, 2),
        "g" => (1000, 3),
        "gb" | "gi" | "gib" => (1024, 3),
        "t" => (1000, 4),
        "tb" | "ti" | "tib" => (1024, 4),
        "p" => (1000, 5),
        "pb" | "pi" | "pib" => (1024, 5),
        "e" => (1000, 6),
        "eb" | "ei" | "eib" => (1024, 6),
        _ => return Err(format!("expected integer, but got '{text}'")),
    };
    base.checked_pow(power)
        .and_then(|m| num.checked_mul(m))
        .ok_or_else(|| format!("integer '{text}' is out of the range"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integer_suffixes() {
        assert_eq!(parse_integer("1k"), Ok(1000));
        assert_eq!(parse_integer("1K"), Ok(1000));
        assert_eq!(parse_integer("2m"), Ok(2_000_000));
        assert_eq!(parse_integer("1MB"), Ok(1 << 20));
        assert_eq!(parse_integer("1Gi"), Ok(1 << 30));
        assert_eq!(parse_integer("1gib"), Ok(1 << 30));
        assert_eq!(parse_integer("3t"), Ok(3_000_000_000_000));
        assert_eq!(parse_integer("1pb"), Ok(1 << 50));
        assert_eq!(parse_integer("1e"), Ok(1_000_000_000_000_000_000));
        assert_eq!(parse_integer("1eb"), Ok(1 << 60));
        assert_eq!(parse_integer("-5k"), Ok(-5000));
        assert!(parse_integer("1kbb").is_err());
        assert!(parse_integer("9223372036854775807k").is_err());
        assert!(parse_integer("99999999999999999999").is_err());
    }

    use crate::conf::{MemoryLoader, parse_with};

    fn root(src: &str, loader: &MemoryLoader) -> Map {
        match parse_with(src, "/t/main.conf", loader) {
            Ok(d) => d.root,
            Err(e) => panic!("{src:?}: {e}"),
        }
    }

    #[test]
    fn positions_are_line_and_column_of_keys_and_values() {
        let m = root(
            "# c\n  alpha = 1\nbeta: [\n  x\n  \"é\"\n]\n",
            &MemoryLoader::new(),
        );
        let a = m.iter().next().unwrap();
        assert_eq!((a.key_pos.line, a.key_pos.column), (2, 3));
        assert_eq!((a.value.pos.line, a.value.pos.column), (2, 11));
        let b = m.get("beta").unwrap().value.as_array().unwrap();
        assert_eq!((b[1].pos.line, b[1].pos.column), (5, 4));
        assert_eq!(b[1].pos.to_string(), "/t/main.conf:5:4");
    }

    #[test]
    fn variables_resolve_innermost_first_then_environment() {
        let env = MemoryLoader::new()
            .with_env("X", "from-env")
            .with_env("LIST", "[1, 2 ]");
        let m = root(
            "X = outer\nb { X = inner, y = $X }\nc = $X\nd = $LIST\ne = $UNSET_BUT_BCRYPT",
            &env.clone().with_env("UNSET_BUT_BCRYPT", "1"),
        );
        let b = m.get("b").unwrap().value.as_map().unwrap();
        assert_eq!(b.get("y").unwrap().value, Value::String("inner".into()));
        assert_eq!(m.get("c").unwrap().value, Value::String("outer".into()));
        assert_eq!(m.get("d").unwrap().value.as_array().unwrap().len(), 2);
        // Without a definition in scope, the environment is used; its values get the
        // position of the reference.
        let m = root("x = $X", &env);
        let x = m.get("x").unwrap();
        assert_eq!(x.value, Value::String("from-env".into()));
        assert_eq!((x.pos.line, x.pos.column), (1, 5));
        let m = root("l = $LIST", &env);
        let l = m.get("l").unwrap().value.as_array().unwrap();
        assert_eq!((l[1].pos.line, l[1].pos.column), (1, 5));
        // Referenced keys are marked, so the options layer treats them as variables.
        let m = root("V = 1\nw = $V\nU = 2", &env);
        let flags: Vec<bool> = m.iter().map(|e| e.used_as_variable).collect();
        assert_eq!(flags, [true, false, false]);
    }

    #[test]
    fn bcrypt_hashes_are_strings() {
        let m = root("p = $2a$11$abc.def/ghi", &MemoryLoader::new());
        assert_eq!(
            m.get("p").unwrap().value,
            Value::String("$2a$11$abc.def/ghi".into())
        );
    }

    #[test]
    fn repeated_keys_keep_the_last_value_in_the_first_place() {
        let m = root("a = 1\nb = 2\na = 3", &MemoryLoader::new());
        let keys: Vec<&str> = m.iter().map(|e| e.key.as_str()).collect();
        assert_eq!(keys, ["a", "b"]);
        assert_eq!(m.get("a").unwrap().value, Value::Int(3));
        // Keys are case-sensitive in the tree (options match them case-insensitively).
        assert_eq!(root("a = 1\nA = 2", &MemoryLoader::new()).len(), 2);
    }

    #[test]
    fn includes_merge_into_the_current_block_and_keep_their_positions() {
        let fs = MemoryLoader::new()
            .with_file("/t/sub/inc.conf", "x = 1\nZ = 2\ny = $Z\n")
            .with_file("/t/other.conf", "include sub/inc.conf\n")
            .with_file("/t/needs.conf", "y = $Q\n");
        let m = root(
            "blk {\n  include 'sub/inc.conf'\n}\ninclude other.conf",
            &fs,
        );
        let blk = m.get("blk").unwrap().value.as_map().unwrap();
        let x = blk.iter().next().unwrap();
        assert_eq!(x.key, "x");
        assert_eq!(&*x.key_pos.file, "/t/sub/inc.conf");
        assert!(
            m.get("x").is_some(),
            "include of an include merges at top level"
        );
        // Variables of the including file are not visible in the included one.
        let err = parse_with("Q = 1\ninclude needs.conf", "/t/main.conf", &fs).unwrap_err();
        assert!(
            err.to_string()
                .contains("variable reference for 'Q' can not be found"),
            "{err}"
        );
        let doc = parse_with("include other.conf", "/t/main.conf", &fs).unwrap();
        assert_eq!(doc.files.len(), 2);
    }

    #[test]
    fn json_style_and_raw_blocks() {
        let m = root(
            "{\n  \"a\": 1,\n  \"b\": [\"x\", \"y\"]\n}\n",
            &MemoryLoader::new(),
        );
        assert_eq!(m.get("a").unwrap().value, Value::Int(1));
        let m = root("text = (\n  raw $not {a var}\n)\n", &MemoryLoader::new());
        assert_eq!(
            m.get("text").unwrap().value,
            Value::String("\n  raw $not {a var}\n".into())
        );
    }

    #[test]
    fn digest_ignores_layout_but_not_values() {
        let l = MemoryLoader::new();
        let a = parse_with("a = 1 # c\nb { c: true }", "x", &l).unwrap();
        let b = parse_with("a: 1\n\n\nb = {c = yes}", "y", &l).unwrap();
        let c = parse_with("a: 2\nb = {c = yes}", "y", &l).unwrap();
        assert_eq!(a.digest(), b.digest());
        assert_ne!(a.digest(), c.digest());
    }

    #[test]
    fn join_like_go() {
        assert_eq!(
            go_join(Path::new("/a/b"), "c.conf"),
            PathBuf::from("/a/b/c.conf")
        );
        assert_eq!(
            go_join(Path::new("/a/b"), "../c.conf"),
            PathBuf::from("/a/c.conf")
        );
        assert_eq!(
            go_join(Path::new("/a/b"), "/etc/x"),
            PathBuf::from("/a/b/etc/x")
        );
        assert_eq!(go_join(Path::new("."), "./x.conf"), PathBuf::from("x.conf"));
        assert_eq!(
            go_join(Path::new("."), "../x.conf"),
            PathBuf::from("../x.conf")
        );
    }
}
