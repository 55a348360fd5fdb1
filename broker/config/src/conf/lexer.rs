//! Tokenizer for the config language.
//!
//! It is a state machine whose states are those of nats-server's `conf/lex.go`, so that both
//! accept and reject the same texts (including the odd corners: `[1, 2, 3]` is an error
//! because `3]` is read as a bare string, a lone `}` at top level is a key, `2m` is the
//! integer 2,000,000). Items carry byte offsets; the parser turns them into line/column.
//!
//! The lexer works on bytes and decodes one character at a time, like Go: a `backup` after a
//! multi-byte character can land inside it, and then the next decode yields U+FFFD rather
//! than panicking. A NUL character reads as end of input, as in Go where EOF is rune 0.

/// Stands for end of input (and, as in Go, for a NUL byte in the input).
pub(crate) const EOF: char = '\0';

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum ItemKind {
    Error,
    Eof,
    Key,
    Text,
    String,
    Bool,
    Integer,
    Float,
    DateTime,
    ArrayStart,
    ArrayEnd,
    MapStart,
    MapEnd,
    CommentStart,
    Variable,
    Include,
}

#[derive(Clone, Debug)]
pub(crate) struct Item {
    pub kind: ItemKind,
    pub val: String,
    /// Byte offset where the item starts (for errors: where the lexer stopped).
    pub offset: usize,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum State {
    Top,
    TopValueEnd,
    BlockStart,
    BlockValueEnd,
    BlockEnd,
    KeyStart,
    DubQuotedKey,
    QuotedKey,
    IncludeStart,
    IncludeQuotedString,
    IncludeDubQuotedString,
    IncludeString,
    Include,
    Key,
    KeyEnd,
    Value,
    ArrayValue,
    ArrayValueEnd,
    ArrayEnd,
    MapKeyStart,
    MapQuotedKey,
    MapDubQuotedKey,
    MapKey,
    MapKeyEnd,
    MapValue,
    MapValueEnd,
    MapEnd,
    QuotedString,
    DubQuotedString,
    BareString,
    Block,
    StringEscape,
    StringBinary,
    NumberStart,
    Number,
    ConvenientNumber,
    DateAfterYear,
    NegNumberStart,
    NegNumber,
    FloatStart,
    Float,
    IpAddr,
    CommentStart,
    Comment,
}

pub(crate) struct Lexer<'a> {
    input: &'a [u8],
    start: usize,
    pos: usize,
    width: usize,
    /// Where the item being built started (`start` moves past escapes, this does not).
    item_start: usize,
    state: Option<State>,
    stack: Vec<State>,
    /// Decoded pieces of a string that contained escapes.
    parts: Vec<u8>,
    /// Where to return after an escape: the double-quoted or the bare string state.
    string_state: State,
    pending: Option<Item>,
    /// State-machine steps left before the lexer declares itself stuck. Every state either
    /// consumes input or moves on within a bounded number of steps, so this never trips on
    /// real input; it turns a would-be hang from a future bug into an error.
    steps_left: usize,
}

fn is_space(r: char) -> bool {
    // Go's unicode.IsSpace and Rust's char::is_whitespace agree: both are Unicode
    // White_Space (the Latin-1 range included).
    r.is_whitespace()
}

fn is_whitespace(r: char) -> bool {
    r == '\t' || r == ' '
}

fn is_nl(r: char) -> bool {
    r == '\n' || r == '\r'
}

fn is_key_separator(r: char) -> bool {
    r == '=' || r == ':'
}

fn is_digit(r: char) -> bool {
    r.is_ascii_digit()
}

fn is_number_suffix(r: char) -> bool {
    matches!(
        r,
        'k' | 'K' | 'm' | 'M' | 'g' | 'G' | 't' | 'T' | 'p' | 'P' | 'e' | 'E'
    )
}

/// How a character appears in error texts: like Go's `%v` of a rune after `escapeSpecial`,
/// except that end of input is spelled out instead of printing a NUL.
fn show(r: char) -> String {
    match r {
        '\n' => "\\n".to_string(),
        EOF => "EOF".to_string(),
        c => c.to_string(),
    }
}

/// Decodes the character at `pos`; an invalid or truncated sequence reads as U+FFFD of
/// width 1, as Go's `utf8.DecodeRune` does.
fn decode(b: &[u8], pos: usize) -> (char, usize) {
    let first = b[pos];
    if first < 0x80 {
        return (char::from(first), 1);
    }
    let len = match first {
        0xC2..=0xDF => 2,
        0xE0..=0xEF => 3,
        0xF0..=0xF4 => 4,
        _ => return (char::REPLACEMENT_CHARACTER, 1),
    };
    match b
        .get(pos..pos + len)
        .and_then(|s| std::str::from_utf8(s).ok())
    {
        Some(s) => match s.chars().next() {
            Some(c) => (c, len),
            None => (char::REPLACEMENT_CHARACTER, 1),
        },
        None => (char::REPLACEMENT_CHARACTER, 1),
    }
}

impl<'a> Lexer<'a> {
    pub(crate) fn new(input: &'a str) -> Self {
        Self {
            input: input.as_bytes(),
            start: 0,
            pos: 0,
            width: 0,
            item_start: 0,
            state: Some(State::Top),
            stack: Vec::with_capacity(16),
            parts: Vec::new(),
            string_state: State::BareString,
            pending: None,
            steps_left: input.len().saturating_mul(64).saturating_add(4096),
        }
    }

    /// Runs the state machine until it produces an item. After an error or EOF it keeps
    /// returning EOF.
    pub(crate) fn next_item(&mut self) -> Item {
        loop {
            if let Some(item) = self.pending.take() {
                return item;
            }
            match self.state {
                Some(_) if self.steps_left == 0 => {
                    self.state = self.error("lexer made no progress");
                }
                Some(state) => {
                    self.steps_left -= 1;
                    self.state = self.step(state);
                }
                None => {
                    return Item {
                        kind: ItemKind::Eof,
                        val: String::new(),
                        offset: self.pos,
                    };
                }
            }
        }
    }

    fn next(&mut self) -> char {
        if self.pos >= self.input.len() {
            self.width = 0;
            return EOF;
        }
        let (c, w) = decode(self.input, self.pos);
        self.width = w;
        self.pos += w;
        c
    }

    fn backup(&mut self) {
        self.pos = self.pos.saturating_sub(self.width);
    }

    fn peek(&mut self) -> char {
        let r = self.next();
        self.backup();
        r
    }

    fn ignore(&mut self) {
        self.start = self.pos;
        self.item_start = self.pos;
    }

    fn push(&mut self, s: State) {
        self.stack.push(s);
    }

    fn pop(&mut self) -> Option<State> {
        match self.stack.pop() {
            Some(s) => Some(s),
            None => self.error("BUG in lexer: no states to pop."),
        }
    }

    fn slice(&self, from: usize, to: usize) -> &[u8] {
        let to = to.min(self.input.len());
        let from = from.min(to);
        &self.input[from..to]
    }

    fn emit(&mut self, kind: ItemKind) {
        let mut bytes = std::mem::take(&mut self.parts);
        bytes.extend_from_slice(self.slice(self.start, self.pos));
        self.pending = Some(Item {
            kind,
            val: String::from_utf8_lossy(&bytes).into_owned(),
            offset: self.item_start,
        });
        self.start = self.pos;
        self.item_start = self.pos;
    }

    fn add_current_string_part(&mut self, offset: usize) {
        let end = self.pos.saturating_sub(offset);
        let piece = self.slice(self.start, end).to_vec();
        self.parts.extend_from_slice(&piece);
        self.start = self.pos;
    }

    fn add_string_part(&mut self, s: &[u8]) -> Option<State> {
        self.parts.extend_from_slice(s);
        self.start = self.pos;
        Some(self.string_state)
    }

    fn error(&mut self, message: impl Into<String>) -> Option<State> {
        self.pending = Some(Item {
            kind: ItemKind::Error,
            val: message.into(),
            offset: self.pos.saturating_sub(self.width),
        });
        None
    }

    /// `// ...` comment check after a `/` has been read: on success the comment starts and
    /// `ret` is where it returns; otherwise the second character is put back.
    fn slash_comment(&mut self, ret: State) -> Option<Option<State>> {
        let rn = self.next();
        if rn == '/' {
            self.push(ret);
            return Some(Some(State::CommentStart));
        }
        self.backup();
        None
    }

    fn key_check_keyword(&mut self, fall_through: State, push: Option<State>) -> Option<State> {
        let key = self.slice(self.start, self.pos);
        if key.eq_ignore_ascii_case(b"include") {
            self.ignore();
            if let Some(p) = push {
                self.push(p);
            }
            return Some(State::IncludeStart);
        }
        self.emit(ItemKind::Key);
        Some(fall_through)
    }

    fn unexpected_eof_or_end(&mut self) -> Option<State> {
        if self.pos > self.start {
            return self.error("Unexpected EOF.");
        }
        self.emit(ItemKind::Eof);
        None
    }

    fn step(&mut self, state: State) -> Option<State> {
        use State as S;
        match state {
            S::Top => {
                let r = self.next();
                if is_space(r) {
                    self.ignore();
                    return Some(S::Top);
                }
                match r {
                    '{' => {
                        self.push(S::Top);
                        self.ignore();
                        return Some(S::BlockStart);
                    }
                    '#' => {
                        self.push(S::Top);
                        return Some(S::CommentStart);
                    }
                    '/' => {
                        if let Some(next) = self.slash_comment(S::Top) {
                            return next;
                        }
                        return self.unexpected_eof_or_end();
                    }
                    EOF => return self.unexpected_eof_or_end(),
                    _ => {}
                }
                self.backup();
                self.push(S::TopValueEnd);
                Some(S::KeyStart)
            }
            S::TopValueEnd => {
                let r = self.next();
                if r == '#' {
                    self.push(S::Top);
                    return Some(S::CommentStart);
                }
                if r == '/' {
                    if let Some(next) = self.slash_comment(S::Top) {
                        return next;
                    }
                    return Some(S::TopValueEnd);
                }
                if is_whitespace(r) {
                    return Some(S::TopValueEnd);
                }
                if is_nl(r) || r == EOF || r == ';' || r == ',' || r == '}' {
                    self.ignore();
                    return Some(S::Top);
                }
                self.error(format!(
                    "Expected a top-level value to end with a new line, comment or EOF, but got '{}' instead.",
                    show(r)
                ))
            }
            S::BlockStart => {
                let r = self.next();
                if is_space(r) {
                    self.ignore();
                    return Some(S::BlockStart);
                }
                match r {
                    '{' => {
                        self.push(S::BlockEnd);
                        self.ignore();
                        return Some(S::BlockStart);
                    }
                    '}' => {
                        self.ignore();
                        return self.pop();
                    }
                    '#' => {
                        self.push(S::BlockStart);
                        return Some(S::CommentStart);
                    }
                    '/' => {
                        if let Some(next) = self.slash_comment(S::BlockStart) {
                            return next;
                        }
                        return self.unexpected_eof_or_end();
                    }
                    EOF => return self.unexpected_eof_or_end(),
                    _ => {}
                }
                self.backup();
                self.push(S::BlockValueEnd);
                Some(S::KeyStart)
            }
            S::BlockValueEnd => {
                let r = self.next();
                if r == '#' {
                    self.push(S::BlockValueEnd);
                    return Some(S::CommentStart);
                }
                if r == '/' {
                    if let Some(next) = self.slash_comment(S::BlockValueEnd) {
                        return next;
                    }
                    return Some(S::BlockValueEnd);
                }
                if is_whitespace(r) {
                    return Some(S::BlockValueEnd);
                }
                if is_nl(r) || r == ';' || r == ',' {
                    self.ignore();
                    return Some(S::BlockStart);
                }
                if r == '}' {
                    self.backup();
                    return Some(S::BlockEnd);
                }
                self.error(format!(
                    "Expected a block-level value to end with a new line, comment or EOF, but got '{}' instead.",
                    show(r)
                ))
            }
            S::BlockEnd => {
                let r = self.next();
                if r == '#' {
                    self.push(S::BlockStart);
                    return Some(S::CommentStart);
                }
                if r == '/' {
                    if let Some(next) = self.slash_comment(S::BlockStart) {
                        return next;
                    }
                    return Some(S::BlockEnd);
                }
                if is_nl(r) || is_whitespace(r) {
                    return Some(S::BlockEnd);
                }
                if r == ';' || r == ',' {
                    self.ignore();
                    return Some(S::BlockStart);
                }
                if r == '}' {
                    self.ignore();
                    return self.pop();
                }
                self.error(format!(
                    "Expected a block-level to end with a '}}', but got '{}' instead.",
                    show(r)
                ))
            }
            S::KeyStart => {
                let r = self.peek();
                if is_key_separator(r) {
                    return self.error(format!("Unexpected key separator '{}'", show(r)));
                }
                if is_space(r) {
                    self.next();
                    self.ignore();
                    return Some(S::KeyStart);
                }
                if r == '"' {
                    self.next();
                    self.ignore();
                    return Some(S::DubQuotedKey);
                }
                if r == '\'' {
                    self.next();
                    self.ignore();
                    return Some(S::QuotedKey);
                }
                self.ignore();
                self.next();
                Some(S::Key)
            }
            S::DubQuotedKey | S::QuotedKey => {
                let quote = if state == S::DubQuotedKey { '"' } else { '\'' };
                let r = self.peek();
                if r == quote {
                    self.emit(ItemKind::Key);
                    self.next();
                    self.ignore();
                    return Some(S::KeyEnd);
                }
                if r == EOF {
                    return self.unexpected_eof_or_end();
                }
                self.next();
                Some(state)
            }
            S::IncludeStart => {
                let r = self.next();
                if is_whitespace(r) {
                    self.ignore();
                    return Some(S::IncludeStart);
                }
                self.backup();
                Some(S::Include)
            }
            S::IncludeQuotedString | S::IncludeDubQuotedString => {
                let (quote, what) = if state == S::IncludeQuotedString {
                    ('\'', "Unexpected EOF in quoted include")
                } else {
                    ('"', "Unexpected EOF in double quoted include")
                };
                let r = self.next();
                if r == quote {
                    self.backup();
                    self.emit(ItemKind::Include);
                    self.next();
                    self.ignore();
                    return self.pop();
                }
                if r == EOF {
                    return self.error(what);
                }
                Some(state)
            }
            S::IncludeString => {
                let r = self.next();
                if is_nl(r) || r == EOF || r == ';' || r == '}' || is_whitespace(r) {
                    self.backup();
                    self.emit(ItemKind::Include);
                    return self.pop();
                }
                if r == '\'' {
                    self.backup();
                    self.emit(ItemKind::Include);
                    self.next();
                    self.ignore();
                    return self.pop();
                }
                Some(S::IncludeString)
            }
            S::Include => {
                let r = self.next();
                match r {
                    '\'' => {
                        self.ignore();
                        return Some(S::IncludeQuotedString);
                    }
                    '"' => {
                        self.ignore();
                        return Some(S::IncludeDubQuotedString);
                    }
                    '[' => {
                        return self.error("Expected include value but found start of an array");
                    }
                    '{' => return self.error("Expected include value but found start of a map"),
                    '(' => return self.error("Expected include value but found start of a block"),
                    '\\' => {
                        return self.error("Expected include value but found escape sequence");
                    }
                    _ => {}
                }
                if is_digit(r) || r == '-' {
                    return self.error("Expected include value but found start of a number");
                }
                if is_nl(r) {
                    return self.error("Expected include value but found new line");
                }
                self.backup();
                Some(S::IncludeString)
            }
            S::Key => {
                let r = self.peek();
                if is_space(r) {
                    return self.key_check_keyword(S::KeyEnd, None);
                }
                if is_key_separator(r) || r == EOF {
                    self.emit(ItemKind::Key);
                    return Some(S::KeyEnd);
                }
                self.next();
                Some(S::Key)
            }
            S::KeyEnd => {
                let r = self.next();
                if is_space(r) {
                    self.ignore();
                    return Some(S::KeyEnd);
                }
                if is_key_separator(r) {
                    self.ignore();
                    return Some(S::Value);
                }
                if r == EOF {
                    self.emit(ItemKind::Eof);
                    return None;
                }
                self.backup();
                Some(S::Value)
            }
            S::Value => {
                let r = self.next();
                if is_whitespace(r) {
                    self.ignore();
                    return Some(S::Value);
                }
                match r {
                    '[' => {
                        self.ignore();
                        self.emit(ItemKind::ArrayStart);
                        return Some(S::ArrayValue);
                    }
                    '{' => {
                        self.ignore();
                        self.emit(ItemKind::MapStart);
                        return Some(S::MapKeyStart);
                    }
                    '\'' => {
                        self.ignore();
                        return Some(S::QuotedString);
                    }
                    '"' => {
                        self.ignore();
                        self.string_state = S::DubQuotedString;
                        return Some(S::DubQuotedString);
                    }
                    '-' => return Some(S::NegNumberStart),
                    '(' => {
                        self.ignore();
                        return Some(S::Block);
                    }
                    '.' => return self.error("Floats must start with a digit"),
                    _ => {}
                }
                if is_digit(r) {
                    self.backup();
                    return Some(S::NumberStart);
                }
                if is_nl(r) {
                    return self.error("Expected value but found new line");
                }
                self.backup();
                self.string_state = S::BareString;
                Some(S::BareString)
            }
            S::ArrayValue => {
                let r = self.next();
                if is_space(r) {
                    self.ignore();
                    return Some(S::ArrayValue);
                }
                match r {
                    '#' => {
                        self.push(S::ArrayValue);
                        return Some(S::CommentStart);
                    }
                    '/' => {
                        if let Some(next) = self.slash_comment(S::ArrayValue) {
                            return next;
                        }
                        return self.error("Unexpected array value terminator ','.");
                    }
                    ',' => return self.error("Unexpected array value terminator ','."),
                    ']' => return Some(S::ArrayEnd),
                    _ => {}
                }
                self.backup();
                self.push(S::ArrayValueEnd);
                Some(S::Value)
            }
            S::ArrayValueEnd => {
                let r = self.next();
                if is_whitespace(r) {
                    self.ignore();
                    return Some(S::ArrayValueEnd);
                }
                match r {
                    '#' => {
                        self.push(S::ArrayValueEnd);
                        return Some(S::CommentStart);
                    }
                    '/' => {
                        if let Some(next) = self.slash_comment(S::ArrayValueEnd) {
                            return next;
                        }
                        self.ignore();
                        return Some(S::ArrayValue);
                    }
                    ']' => return Some(S::ArrayEnd),
                    _ => {}
                }
                if r == ',' || is_nl(r) {
                    self.ignore();
                    return Some(S::ArrayValue);
                }
                self.error(format!(
                    "Expected an array value terminator \",\" or an array terminator \"]\", but got '{}' instead.",
                    show(r)
                ))
            }
            S::ArrayEnd => {
                self.ignore();
                self.emit(ItemKind::ArrayEnd);
                self.pop()
            }
            S::MapKeyStart => {
                let r = self.peek();
                if is_key_separator(r) {
                    return self.error(format!("Unexpected key separator '{}'.", show(r)));
                }
                if r == ']' {
                    return self.error(format!(
                        "Unexpected array end '{}' processing map.",
                        show(r)
                    ));
                }
                if is_space(r) {
                    self.next();
                    self.ignore();
                    return Some(S::MapKeyStart);
                }
                match r {
                    '}' => {
                        self.next();
                        self.ignore();
                        return Some(S::MapEnd);
                    }
                    '#' => {
                        self.next();
                        self.push(S::MapKeyStart);
                        return Some(S::CommentStart);
                    }
                    '/' => {
                        self.next();
                        if let Some(next) = self.slash_comment(S::MapKeyStart) {
                            return next;
                        }
                        // Not a comment: like nats-server, the '/' is dropped and the key
                        // starts at the next character.
                    }
                    '\'' => {
                        self.next();
                        self.ignore();
                        return Some(S::MapQuotedKey);
                    }
                    '"' => {
                        self.next();
                        self.ignore();
                        return Some(S::MapDubQuotedKey);
                    }
                    EOF => return self.error("Unexpected EOF processing map."),
                    _ => {}
                }
                self.ignore();
                self.next();
                Some(S::MapKey)
            }
            S::MapQuotedKey | S::MapDubQuotedKey => {
                let (quote, what) = if state == S::MapQuotedKey {
                    ('\'', "Unexpected EOF processing quoted map key.")
                } else {
                    ('"', "Unexpected EOF processing double quoted map key.")
                };
                let r = self.peek();
                if r == EOF {
                    return self.error(what);
                }
                if r == quote {
                    self.emit(ItemKind::Key);
                    self.next();
                    self.ignore();
                    return Some(S::MapKeyEnd);
                }
                self.next();
                Some(state)
            }
            S::MapKey => {
                let r = self.peek();
                if r == EOF {
                    return self.error("Unexpected EOF processing map key.");
                }
                if is_space(r) {
                    return self.key_check_keyword(S::MapKeyEnd, Some(S::MapValueEnd));
                }
                if is_key_separator(r) {
                    self.emit(ItemKind::Key);
                    return Some(S::MapKeyEnd);
                }
                self.next();
                Some(S::MapKey)
            }
            S::MapKeyEnd => {
                let r = self.next();
                if is_space(r) {
                    self.ignore();
                    return Some(S::MapKeyEnd);
                }
                if is_key_separator(r) {
                    self.ignore();
                    return Some(S::MapValue);
                }
                self.backup();
                Some(S::MapValue)
            }
            S::MapValue => {
                let r = self.next();
                if is_space(r) {
                    self.ignore();
                    return Some(S::MapValue);
                }
                if r == ',' {
                    return self.error("Unexpected map value terminator \",\".");
                }
                if r == '}' {
                    self.ignore();
                    return Some(S::MapEnd);
                }
                self.backup();
                self.push(S::MapValueEnd);
                Some(S::Value)
            }
            S::MapValueEnd => {
                let r = self.next();
                if is_whitespace(r) {
                    self.ignore();
                    return Some(S::MapValueEnd);
                }
                match r {
                    '#' => {
                        self.push(S::MapValueEnd);
                        return Some(S::CommentStart);
                    }
                    '/' => {
                        if let Some(next) = self.slash_comment(S::MapValueEnd) {
                            return next;
                        }
                        self.ignore();
                        return Some(S::MapKeyStart);
                    }
                    '}' => {
                        self.ignore();
                        return Some(S::MapEnd);
                    }
                    _ => {}
                }
                if r == ';' || r == ',' || is_nl(r) {
                    self.ignore();
                    return Some(S::MapKeyStart);
                }
                self.error(format!(
                    "Expected a map value terminator \",\" or a map terminator \"}}\", but got '{}' instead.",
                    show(r)
                ))
            }
            S::MapEnd => {
                self.ignore();
                self.emit(ItemKind::MapEnd);
                self.pop()
            }
            S::QuotedString => {
                let r = self.next();
                if r == '\'' {
                    self.backup();
                    self.emit(ItemKind::String);
                    self.next();
                    self.ignore();
                    return self.pop();
                }
                if r == EOF {
                    return self.unexpected_eof_or_end();
                }
                Some(S::QuotedString)
            }
            S::DubQuotedString => {
                let r = self.next();
                if r == '\\' {
                    self.add_current_string_part(1);
                    return Some(S::StringEscape);
                }
                if r == '"' {
                    self.backup();
                    self.emit(ItemKind::String);
                    self.next();
                    self.ignore();
                    return self.pop();
                }
                if r == EOF {
                    return self.unexpected_eof_or_end();
                }
                Some(S::DubQuotedString)
            }
            S::BareString => {
                let r = self.next();
                if r == '\\' {
                    self.add_current_string_part(1);
                    return Some(S::StringEscape);
                }
                if is_nl(r)
                    || r == EOF
                    || r == ';'
                    || r == ','
                    || r == ']'
                    || r == '}'
                    || is_whitespace(r)
                {
                    self.backup();
                    if !self.parts.is_empty() {
                        self.emit(ItemKind::String);
                    } else if self.is_bool() {
                        self.emit(ItemKind::Bool);
                    } else if self.is_variable() {
                        self.emit(ItemKind::Variable);
                    } else {
                        self.emit(ItemKind::String);
                    }
                    return self.pop();
                }
                if r == '\'' {
                    self.backup();
                    self.emit(ItemKind::String);
                    self.next();
                    self.ignore();
                    return self.pop();
                }
                Some(S::BareString)
            }
            S::Block => {
                let r = self.next();
                if r == ')' {
                    // A block ends at a ')' alone on its line.
                    self.backup();
                    self.backup();
                    if self.next() != '\n' {
                        self.next();
                        return Some(S::Block);
                    }
                    self.next();
                    match self.next() {
                        '\n' | EOF => {
                            self.backup();
                            self.backup();
                            self.emit(ItemKind::String);
                            self.next();
                            self.ignore();
                            return self.pop();
                        }
                        _ => self.backup(),
                    }
                    return Some(S::Block);
                }
                if r == EOF {
                    return self.error("Unexpected EOF processing block.");
                }
                Some(S::Block)
            }
            S::StringEscape => {
                let r = self.next();
                match r {
                    'x' => Some(S::StringBinary),
                    't' => self.add_string_part(b"\t"),
                    'n' => self.add_string_part(b"\n"),
                    'r' => self.add_string_part(b"\r"),
                    '"' => self.add_string_part(b"\""),
                    '\\' => self.add_string_part(b"\\"),
                    _ => self.error(format!(
                        "Invalid escape character '{}'. Only the following escape characters are allowed: \\xXX, \\t, \\n, \\r, \\\", \\\\.",
                        show(r)
                    )),
                }
            }
            S::StringBinary => {
                let r = self.next();
                if is_nl(r) {
                    return self
                        .error("Expected two hexadecimal digits after '\\x', but hit end of line");
                }
                let r = self.next();
                if is_nl(r) {
                    return self
                        .error("Expected two hexadecimal digits after '\\x', but hit end of line");
                }
                let digits = self.slice(self.pos.saturating_sub(2), self.pos).to_vec();
                let hex = |c: u8| char::from(c).to_digit(16);
                match digits.as_slice() {
                    [a, b] => match (hex(*a), hex(*b)) {
                        (Some(h), Some(l)) => {
                            // Both digits are < 16, so the byte fits.
                            let byte = u8::try_from(h * 16 + l).unwrap_or(0);
                            self.add_string_part(&[byte])
                        }
                        _ => self.error(format!(
                            "Expected two hexadecimal digits after '\\x', but got '{}'",
                            String::from_utf8_lossy(&digits)
                        )),
                    },
                    _ => self.error(format!(
                        "Expected two hexadecimal digits after '\\x', but got '{}'",
                        String::from_utf8_lossy(&digits)
                    )),
                }
            }
            S::NumberStart => {
                let r = self.next();
                if !is_digit(r) {
                    if r == '.' {
                        return self.error("Floats must start with a digit, not '.'.");
                    }
                    return self.error(format!("Expected a digit but got '{}'.", show(r)));
                }
                Some(S::Number)
            }
            S::Number => {
                let r = self.next();
                if r == '-' {
                    if self.pos - self.start != 5 {
                        return self.error("All ISO8601 dates must be in full Zulu form.");
                    }
                    return Some(S::DateAfterYear);
                }
                if is_digit(r) {
                    return Some(S::Number);
                }
                if r == '.' {
                    return Some(S::FloatStart);
                }
                if is_number_suffix(r) {
                    return Some(S::ConvenientNumber);
                }
                if !(is_nl(r) || r == EOF || r == '}' || r == ';' || r == ',' || is_whitespace(r)) {
                    self.string_state = S::BareString;
                    return Some(S::BareString);
                }
                self.backup();
                self.emit(ItemKind::Integer);
                self.pop()
            }
            S::ConvenientNumber => {
                let r = self.next();
                if matches!(r, 'b' | 'B' | 'i' | 'I') {
                    return Some(S::ConvenientNumber);
                }
                self.backup();
                if is_nl(r)
                    || r == EOF
                    || r == '}'
                    || r == ';'
                    || r == ','
                    || is_whitespace(r)
                    || is_digit(r)
                {
                    self.emit(ItemKind::Integer);
                    return self.pop();
                }
                self.string_state = S::BareString;
                Some(S::BareString)
            }
            S::DateAfterYear => {
                const FORMAT: &[char] = &[
                    '0', '0', '-', '0', '0', 'T', '0', '0', ':', '0', '0', ':', '0', '0', 'Z',
                ];
                for &f in FORMAT {
                    let r = self.next();
                    if f == '0' {
                        if !is_digit(r) {
                            return self.error(format!(
                                "Expected digit in ISO8601 datetime, but found '{}' instead.",
                                show(r)
                            ));
                        }
                    } else if f != r {
                        return self.error(format!(
                            "Expected '{f}' in ISO8601 datetime, but found '{}' instead.",
                            show(r)
                        ));
                    }
                }
                self.emit(ItemKind::DateTime);
                self.pop()
            }
            S::NegNumberStart => {
                let r = self.next();
                if !is_digit(r) {
                    if r == '.' {
                        return self.error("Floats must start with a digit, not '.'.");
                    }
                    return self.error(format!("Expected a digit but got '{}'.", show(r)));
                }
                Some(S::NegNumber)
            }
            S::NegNumber => {
                let r = self.next();
                if is_digit(r) {
                    return Some(S::NegNumber);
                }
                if r == '.' {
                    return Some(S::FloatStart);
                }
                if is_number_suffix(r) {
                    return Some(S::ConvenientNumber);
                }
                self.backup();
                self.emit(ItemKind::Integer);
                self.pop()
            }
            S::FloatStart => {
                let r = self.next();
                if !is_digit(r) {
                    return self.error(format!(
                        "Floats must have a digit after the '.', but got '{}' instead.",
                        show(r)
                    ));
                }
                Some(S::Float)
            }
            S::Float => {
                let r = self.next();
                if is_digit(r) {
                    return Some(S::Float);
                }
                if r == '.' {
                    return Some(S::IpAddr);
                }
                self.backup();
                self.emit(ItemKind::Float);
                self.pop()
            }
            S::IpAddr => {
                let r = self.next();
                if is_digit(r) || r == '.' || r == ':' || r == '-' {
                    return Some(S::IpAddr);
                }
                self.backup();
                self.emit(ItemKind::String);
                self.pop()
            }
            S::CommentStart => {
                self.ignore();
                self.emit(ItemKind::CommentStart);
                Some(S::Comment)
            }
            S::Comment => {
                let r = self.peek();
                if is_nl(r) || r == EOF {
                    self.emit(ItemKind::Text);
                    return self.pop();
                }
                self.next();
                Some(S::Comment)
            }
        }
    }

    fn is_bool(&self) -> bool {
        let s = self.slice(self.start, self.pos);
        [b"true".as_slice(), b"false", b"on", b"off", b"yes", b"no"]
            .iter()
            .any(|w| s.eq_ignore_ascii_case(w))
    }

    fn is_variable(&mut self) -> bool {
        if self.start >= self.input.len() {
            return false;
        }
        if self.input[self.start] == b'$' {
            self.start += 1;
            return true;
        }
        false
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn items(src: &str) -> Vec<(ItemKind, String)> {
        let mut lx = Lexer::new(src);
        let mut out = Vec::new();
        loop {
            let it = lx.next_item();
            let done = matches!(it.kind, ItemKind::Eof | ItemKind::Error);
            if !matches!(it.kind, ItemKind::CommentStart | ItemKind::Text) {
                out.push((it.kind, it.val));
            }
            if done {
                return out;
            }
        }
    }

    use ItemKind as K;

    fn kv(k: &str, kind: ItemKind, v: &str) -> Vec<(ItemKind, String)> {
        vec![
            (K::Key, k.into()),
            (kind, v.into()),
            (K::Eof, String::new()),
        ]
    }

    #[test]
    fn separators() {
        for src in [
            "foo = 123",
            "foo=123",
            "foo: 123",
            "foo:123",
            "foo 123",
            "foo\t123\r\n",
        ] {
            assert_eq!(items(src), kv("foo", K::Integer, "123"), "{src:?}");
        }
    }

    #[test]
    fn quoted_keys_keep_inner_text() {
        assert_eq!(items("\" foo\" : 123"), kv(" foo", K::Integer, "123"));
        assert_eq!(items("'foo' : 123"), kv("foo", K::Integer, "123"));
    }

    #[test]
    fn numbers_and_suffixes() {
        assert_eq!(items("foo = 1k"), kv("foo", K::Integer, "1k"));
        assert_eq!(items("foo = -1GB "), kv("foo", K::Integer, "-1GB"));
        assert_eq!(items("foo = 1Ghz"), kv("foo", K::String, "1Ghz"));
        assert_eq!(items("foo = 3xyz"), kv("foo", K::String, "3xyz"));
        assert_eq!(items("foo = 22.2"), kv("foo", K::Float, "22.2"));
        assert_eq!(
            items("listen: 127.0.0.1:4222"),
            kv("listen", K::String, "127.0.0.1:4222")
        );
    }

    #[test]
    fn booleans_variables_and_dates() {
        assert_eq!(items("foo = TRUE"), kv("foo", K::Bool, "TRUE"));
        assert_eq!(items("foo $bar"), kv("foo", K::Variable, "bar"));
        assert_eq!(
            items("foo = 2016-05-04T18:53:41Z"),
            kv("foo", K::DateTime, "2016-05-04T18:53:41Z")
        );
    }

    #[test]
    fn escapes() {
        assert_eq!(items(r#"foo = "a\tb\x41""#), kv("foo", K::String, "a\tbA"));
        assert_eq!(
            items(r"foo = start\x45\x71"),
            kv("foo", K::String, "startEq")
        );
        let e = items(r"foo = \y");
        assert_eq!(e.last().map(|x| x.0), Some(K::Error));
    }

    #[test]
    fn number_directly_before_array_end_is_a_string_as_in_nats_server() {
        let out = items("foo = [1]");
        assert_eq!(out.last().map(|x| x.0), Some(K::Error));
        let out = items("foo = [1 ]");
        assert_eq!(
            out,
            vec![
                (K::Key, "foo".into()),
                (K::ArrayStart, String::new()),
                (K::Integer, "1".into()),
                (K::ArrayEnd, String::new()),
                (K::Eof, String::new())
            ]
        );
    }

    #[test]
    fn include_keyword() {
        assert_eq!(
            items("include 'users.conf'"),
            vec![(K::Include, "users.conf".into()), (K::Eof, String::new())]
        );
        assert_eq!(
            items("foo { include users.conf }"),
            vec![
                (K::Key, "foo".into()),
                (K::MapStart, String::new()),
                (K::Include, "users.conf".into()),
                (K::MapEnd, String::new()),
                (K::Eof, String::new())
            ]
        );
    }

    #[test]
    fn raw_block() {
        assert_eq!(items("a: (\nfoo\n)\n"), kv("a", K::String, "\nfoo\n"));
    }

    #[test]
    fn multibyte_backup_does_not_panic() {
        // ')' after a multi-byte character makes the block lexer back up into it.
        let _ = items("a: (é)\n)");
        let _ = items("a: \"\\xé\"");
        let _ = items("a: é\u{0}");
    }
}
