//! Parser of the client protocol (`CONNECT`, `PUB`, `HPUB`, `SUB`, `UNSUB`, `PING`,
//! `PONG`, `INFO`, `+OK`, `-ERR`).
//!
//! The parser borrows from the connection's read buffer and hands complete operations to
//! a [`Handler`]; it never copies a payload. When an operation is not complete yet it
//! reports how many bytes it consumed, and the caller keeps the rest in its buffer for the
//! next call. Decisions on malformed input follow nats-server's byte-level state machine
//! (server/parser.go) so that a client sees the same answer from both servers:
//! - an operation name is checked byte by byte, case-insensitively, and the first wrong
//!   byte is an `Unknown Protocol Operation`, without waiting for the end of the line;
//! - an argument line ends at `\n`; a `\r` anywhere in it drops the byte before `\n`;
//! - bytes after `PING`, `PONG` and `+OK` up to the `\n` are ignored;
//! - an argument line longer than `max_control_line` is an error even before its `\n`;
//! - a payload must be followed by exactly `\r\n`.

use std::ops::Range;

/// Why parsing stopped. Each maps to nats-server's reaction: an `-ERR` and a close, or a
/// silent close.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// `-ERR 'Unknown Protocol Operation'`, then close.
    #[error("unknown protocol operation")]
    UnknownOp,
    /// `-ERR 'maximum control line exceeded'`, then close.
    #[error("maximum control line exceeded")]
    MaxControlLine,
    /// `-ERR 'Authorization Violation'`, then close.
    #[error("authorization violation")]
    AuthViolation,
    /// `-ERR 'Maximum Payload Violation'`, then close.
    #[error("maximum payload exceeded")]
    MaxPayload,
    /// Malformed arguments and similar: nats-server closes without an `-ERR`.
    #[error("protocol violation: {0}")]
    Violation(&'static str),
    /// The handler has already told the client why (e.g. `invalid client protocol`).
    #[error("connection closed by handler")]
    Closed,
}

/// Arguments of a `PUB` or `HPUB` control line, checked before its payload is read.
#[derive(Debug, Clone, Copy)]
pub struct PubArgs<'a> {
    pub subject: &'a [u8],
    pub reply: Option<&'a [u8]>,
    /// Header length for `HPUB`.
    pub hdr: Option<usize>,
    /// Total payload length (headers included).
    pub size: usize,
}

/// A complete client operation.
#[derive(Debug, PartialEq, Eq)]
pub enum Op<'a> {
    Connect(&'a [u8]),
    Info(&'a [u8]),
    Pub {
        subject: &'a [u8],
        reply: Option<&'a [u8]>,
        /// Header length for `HPUB`; the header block is `msg[..hdr]`.
        hdr: Option<usize>,
        /// Headers and payload, without the trailing `\r\n`.
        msg: &'a [u8],
        /// The size and header-size arguments as the client wrote them.
        size_arg: &'a [u8],
        hdr_arg: &'a [u8],
    },
    Sub {
        subject: &'a [u8],
        queue: Option<&'a [u8]>,
        sid: &'a [u8],
    },
    Unsub {
        sid: &'a [u8],
        /// `None` without a max, `Some(-1)` for an unparsable one (nats-server then
        /// unsubscribes at once).
        max: Option<i64>,
    },
    Ping,
    Pong,
    Ok,
    Err(&'a [u8]),
}

/// What the parser needs from the connection it parses for.
pub trait Handler {
    /// True until an accepted `CONNECT` when authentication is required: any other first
    /// operation is then an authorization violation.
    fn awaiting_auth(&self) -> bool;
    fn max_control_line(&self) -> usize;
    /// Whether this connection asked for headers (`HPUB` is refused otherwise).
    fn headers(&self) -> bool;
    /// Checks a publish control line (limits, header support) before its payload arrives.
    fn pub_args(&mut self, args: &PubArgs<'_>) -> Result<(), ParseError>;
    fn op(&mut self, op: Op<'_>) -> Result<(), ParseError>;
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum LineOp {
    Ping,
    Pong,
    Ok,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum ArgOp {
    Pub,
    Hpub,
    /// `HMSG` from a client: nats-server accepts the line and expects an empty payload.
    Hmsg,
    Sub,
    Unsub,
    Connect,
    Info,
    Err,
}

/// A publish whose control line was accepted; offsets are relative to the start of the
/// unconsumed buffer (where the operation begins).
#[derive(Debug, Clone)]
struct PendingPub {
    subject: Range<usize>,
    reply: Option<Range<usize>>,
    hdr: Option<usize>,
    size_arg: Range<usize>,
    hdr_arg: Range<usize>,
    payload_start: usize,
    size: usize,
}

#[derive(Debug, Clone, Default)]
enum State {
    #[default]
    Start,
    /// Ignoring bytes up to the `\n` that completes `PING`, `PONG` or `+OK`.
    Skip(LineOp),
    Payload(PendingPub),
}

/// The client protocol parser; one per connection.
#[derive(Debug, Default)]
pub struct Parser {
    state: State,
}

/// The operation names, each with the kind of line it starts.
enum Name {
    Line(LineOp),
    /// The operation needs a space or tab after its name.
    Spaced(ArgOp),
    /// `CONNECT` and `INFO` may be followed directly by their argument.
    Unspaced(ArgOp),
}

const NAMES: &[(&[u8], Name)] = &[
    (b"PUB", Name::Spaced(ArgOp::Pub)),
    (b"PING", Name::Line(LineOp::Ping)),
    (b"PONG", Name::Line(LineOp::Pong)),
    (b"HPUB", Name::Spaced(ArgOp::Hpub)),
    (b"HMSG", Name::Spaced(ArgOp::Hmsg)),
    (b"SUB", Name::Spaced(ArgOp::Sub)),
    (b"UNSUB", Name::Spaced(ArgOp::Unsub)),
    (b"CONNECT", Name::Unspaced(ArgOp::Connect)),
    (b"INFO", Name::Unspaced(ArgOp::Info)),
    (b"+OK", Name::Line(LineOp::Ok)),
    (b"-ERR", Name::Spaced(ArgOp::Err)),
];

enum NameMatch {
    Found(&'static Name, usize),
    NeedMore,
    Bad,
}

/// Matches the operation name at the start of `buf` byte by byte, as nats-server's state
/// machine does: the first byte that no name allows is an error.
fn match_name(buf: &[u8]) -> NameMatch {
    // Fast path for what clients actually send; same result as the general walk.
    if buf.len() >= 5 {
        match &buf[..4] {
            b"PUB " | b"PUB\t" => return NameMatch::Found(&NAMES[0].1, 4),
            b"PING" => return NameMatch::Found(&NAMES[1].1, 4),
            b"PONG" => return NameMatch::Found(&NAMES[2].1, 4),
            b"HPUB" if matches!(buf[4], b' ' | b'\t') => {
                return NameMatch::Found(&NAMES[3].1, 5);
            }
            b"SUB " | b"SUB\t" => return NameMatch::Found(&NAMES[5].1, 4),
            _ => {}
        }
    }
    let mut candidates: [bool; NAMES.len()] = [true; NAMES.len()];
    let mut i = 0;
    loop {
        // A name is complete when all its bytes matched; the ones that need a space are
        // only complete once that space is seen.
        for (k, (name, kind)) in NAMES.iter().enumerate() {
            if candidates[k] && name.len() == i {
                match kind {
                    Name::Line(_) | Name::Unspaced(_) => return NameMatch::Found(kind, i),
                    Name::Spaced(_) => match buf.get(i) {
                        None => return NameMatch::NeedMore,
                        Some(b' ' | b'\t') => return NameMatch::Found(kind, i + 1),
                        Some(_) => return NameMatch::Bad,
                    },
                }
            }
        }
        let Some(&b) = buf.get(i) else {
            return NameMatch::NeedMore;
        };
        let mut any = false;
        for (k, (name, _)) in NAMES.iter().enumerate() {
            if candidates[k] {
                candidates[k] = name.len() > i && name[i].eq_ignore_ascii_case(&b);
                any |= candidates[k];
            }
        }
        if !any {
            return NameMatch::Bad;
        }
        i += 1;
    }
}

/// nats-server's `parseSize`: up to 9 decimal digits, or -1.
pub fn parse_size(d: &[u8]) -> i64 {
    if d.is_empty() || d.len() > 9 {
        return -1;
    }
    let mut n: i64 = 0;
    for &b in d {
        if !b.is_ascii_digit() {
            return -1;
        }
        n = n * 10 + i64::from(b - b'0');
    }
    n
}

/// Splits on spaces and tabs into at most `N` arguments; `None` if there are more.
fn split_args<const N: usize>(arg: &[u8], also_crlf: bool) -> Option<([&[u8]; N], usize)> {
    let mut out: [&[u8]; N] = [&[]; N];
    let mut n = 0;
    let is_sep = |b: u8| b == b' ' || b == b'\t' || (also_crlf && (b == b'\r' || b == b'\n'));
    for part in arg.split(|&b| is_sep(b)).filter(|p| !p.is_empty()) {
        if n == N {
            return None;
        }
        out[n] = part;
        n += 1;
    }
    Some((out, n))
}

fn offset(base: &[u8], part: &[u8]) -> Range<usize> {
    let start = part.as_ptr() as usize - base.as_ptr() as usize;
    start..start + part.len()
}

impl Parser {
    pub fn new() -> Self {
        Self::default()
    }

    /// True while the parser sits between operations.
    pub fn is_idle(&self) -> bool {
        matches!(self.state, State::Start)
    }

    /// Bytes the caller should have buffered before calling again, when waiting for a
    /// payload (so it can reserve room for a large message at once).
    pub fn payload_needed(&self) -> Option<usize> {
        match &self.state {
            State::Payload(p) => Some(p.payload_start + p.size + 2),
            _ => None,
        }
    }

    /// Parses as many complete operations as `buf` holds. Returns the number of bytes
    /// consumed; the caller keeps `buf[consumed..]` and appends to it.
    pub fn parse<H: Handler>(&mut self, buf: &[u8], h: &mut H) -> Result<usize, ParseError> {
        let mut pos = 0;
        loop {
            match std::mem::take(&mut self.state) {
                State::Skip(op) => match memchr::memchr(b'\n', &buf[pos..]) {
                    None => {
                        self.state = State::Skip(op);
                        return Ok(buf.len());
                    }
                    Some(nl) => {
                        pos += nl + 1;
                        h.op(match op {
                            LineOp::Ping => Op::Ping,
                            LineOp::Pong => Op::Pong,
                            LineOp::Ok => Op::Ok,
                        })?;
                    }
                },
                State::Payload(p) => match self.finish_payload(p, buf, pos, h)? {
                    Some(next) => pos = next,
                    None => return Ok(pos),
                },
                State::Start => {
                    if pos == buf.len() {
                        return Ok(pos);
                    }
                    if h.awaiting_auth() && !buf[pos].eq_ignore_ascii_case(&b'C') {
                        return Err(ParseError::AuthViolation);
                    }
                    match match_name(&buf[pos..]) {
                        NameMatch::Bad => return Err(ParseError::UnknownOp),
                        NameMatch::NeedMore => return Ok(pos),
                        NameMatch::Found(Name::Line(op), len) => {
                            pos += len;
                            self.state = State::Skip(*op);
                        }
                        NameMatch::Found(Name::Spaced(op) | Name::Unspaced(op), len) => {
                            match self.arg_line(buf, pos, len, *op, h)? {
                                Some(next) => pos = next,
                                None => return Ok(pos),
                            }
                        }
                    }
                }
            }
        }
    }

    /// Handles an operation with an argument line starting at `start` (`name_len` bytes of
    /// name and required separator). Returns where the next operation starts, or `None`
    /// when the line (or the payload) is incomplete.
    fn arg_line<H: Handler>(
        &mut self,
        buf: &[u8],
        start: usize,
        name_len: usize,
        op: ArgOp,
        h: &mut H,
    ) -> Result<Option<usize>, ParseError> {
        let line = &buf[start..];
        // Blanks between the name and the argument are skipped; the first other byte,
        // whatever it is (even `\r` or `\n`), starts the argument.
        let Some(arg_start) = line[name_len..]
            .iter()
            .position(|&b| b != b' ' && b != b'\t')
            .map(|p| p + name_len)
        else {
            return Ok(None);
        };
        let mcl = h.max_control_line();
        let search = &line[arg_start + 1..];
        let Some(nl) = memchr::memchr(b'\n', search).map(|p| p + arg_start + 1) else {
            let cr = usize::from(memchr::memchr(b'\r', search).is_some());
            if line.len() - arg_start - cr > mcl {
                return Err(ParseError::MaxControlLine);
            }
            return Ok(None);
        };
        let cr = usize::from(memchr::memchr(b'\r', &line[arg_start + 1..nl]).is_some());
        let arg = &line[arg_start..nl - cr];
        if arg.len() > mcl {
            return Err(ParseError::MaxControlLine);
        }
        let after = nl + 1;
        let pending = match op {
            ArgOp::Pub | ArgOp::Hpub => {
                let hpub = op == ArgOp::Hpub;
                if hpub && !h.headers() {
                    return Err(ParseError::Violation("message headers not supported"));
                }
                let (args, n) = split_args::<4>(arg, false)
                    .ok_or(ParseError::Violation("processPub Parse Error"))?;
                let (subject, reply, hdr_arg, size_arg) = match (hpub, n) {
                    (false, 2) => (args[0], None, &args[0][..0], args[1]),
                    (false, 3) => (args[0], Some(args[1]), &args[0][..0], args[2]),
                    (true, 3) => (args[0], None, args[1], args[2]),
                    (true, 4) => (args[0], Some(args[1]), args[2], args[3]),
                    _ => return Err(ParseError::Violation("processPub Parse Error")),
                };
                let size = parse_size(size_arg);
                let hdr = if hpub {
                    Some(parse_size(hdr_arg))
                } else {
                    None
                };
                let pub_args = PubArgs {
                    subject,
                    reply,
                    hdr: hdr.map(|h| usize::try_from(h).unwrap_or(0)),
                    size: usize::try_from(size).unwrap_or(0),
                };
                if hdr.is_some_and(|h| h < 0) {
                    return Err(ParseError::Violation("Bad or Missing Header Size"));
                }
                if size < 0 {
                    return Err(ParseError::Violation("Bad or Missing Size"));
                }
                if hdr.is_some_and(|h| h > size) {
                    return Err(ParseError::Violation("Header Size larger then TotalSize"));
                }
                h.pub_args(&pub_args)?;
                PendingPub {
                    subject: offset(line, subject),
                    reply: reply.map(|r| offset(line, r)),
                    hdr: pub_args.hdr,
                    size_arg: offset(line, size_arg),
                    hdr_arg: offset(line, hdr_arg),
                    payload_start: after,
                    size: pub_args.size,
                }
            }
            ArgOp::Hmsg => PendingPub {
                subject: 0..0,
                reply: None,
                hdr: None,
                size_arg: 0..0,
                hdr_arg: 0..0,
                payload_start: after,
                size: 0,
            },
            ArgOp::Sub => {
                let (args, n) = split_args::<3>(arg, true)
                    .ok_or(ParseError::Violation("processSub Parse Error"))?;
                let (subject, queue, sid) = match n {
                    2 => (args[0], None, args[1]),
                    3 => (args[0], Some(args[1]), args[2]),
                    _ => return Err(ParseError::Violation("processSub Parse Error")),
                };
                h.op(Op::Sub {
                    subject,
                    queue,
                    sid,
                })?;
                return Ok(Some(start + after));
            }
            ArgOp::Unsub => {
                let (args, n) = split_args::<2>(arg, true)
                    .ok_or(ParseError::Violation("processUnsub Parse Error"))?;
                let max = match n {
                    1 => None,
                    2 => Some(parse_size(args[1])),
                    _ => return Err(ParseError::Violation("processUnsub Parse Error")),
                };
                h.op(Op::Unsub { sid: args[0], max })?;
                return Ok(Some(start + after));
            }
            ArgOp::Connect => {
                h.op(Op::Connect(arg))?;
                return Ok(Some(start + after));
            }
            ArgOp::Info => {
                h.op(Op::Info(arg))?;
                return Ok(Some(start + after));
            }
            ArgOp::Err => {
                h.op(Op::Err(arg))?;
                return Ok(Some(start + after));
            }
        };
        // The payload may already be in the buffer: the parse loop continues in Payload
        // state, with offsets relative to this operation's start.
        self.state = State::Payload(pending);
        Ok(Some(start))
    }

    /// Delivers a pending publish whose operation starts at `op_start`, if its payload
    /// and the `\r\n` after it are complete.
    fn finish_payload<H: Handler>(
        &mut self,
        p: PendingPub,
        buf: &[u8],
        op_start: usize,
        h: &mut H,
    ) -> Result<Option<usize>, ParseError> {
        let rest = &buf[op_start..];
        let end = p.payload_start + p.size;
        if rest.len() > end && rest[end] != b'\r' {
            return Err(ParseError::UnknownOp);
        }
        if rest.len() > end + 1 && rest[end + 1] != b'\n' {
            return Err(ParseError::UnknownOp);
        }
        if rest.len() < end + 2 {
            self.state = State::Payload(p);
            return Ok(None);
        }
        h.op(Op::Pub {
            subject: &rest[p.subject.clone()],
            reply: p.reply.clone().map(|r| &rest[r]),
            hdr: p.hdr,
            msg: &rest[p.payload_start..end],
            size_arg: &rest[p.size_arg.clone()],
            hdr_arg: &rest[p.hdr_arg.clone()],
        })?;
        Ok(Some(op_start + end + 2))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Records operations as owned strings for comparison.
    #[derive(Default)]
    struct Rec {
        ops: Vec<String>,
        auth: bool,
        headers: bool,
        max_payload: usize,
    }

    impl Rec {
        fn new() -> Self {
            Self {
                headers: true,
                max_payload: 1 << 20,
                ..Self::default()
            }
        }
    }

    fn s(b: &[u8]) -> String {
        String::from_utf8_lossy(b).into_owned()
    }

    impl Handler for Rec {
        fn awaiting_auth(&self) -> bool {
            self.auth
        }
        fn max_control_line(&self) -> usize {
            64
        }
        fn headers(&self) -> bool {
            self.headers
        }
        fn pub_args(&mut self, args: &PubArgs<'_>) -> Result<(), ParseError> {
            if args.size > self.max_payload {
                return Err(ParseError::MaxPayload);
            }
            Ok(())
        }
        fn op(&mut self, op: Op<'_>) -> Result<(), ParseError> {
            let text = match op {
                Op::Connect(a) => format!("CONNECT {}", s(a)),
                Op::Info(a) => format!("INFO {}", s(a)),
                Op::Pub {
                    subject,
                    reply,
                    hdr,
                    msg,
                    size_arg,
                    ..
                } => format!(
                    "PUB {} {:?} {:?} {} [{}]",
                    s(subject),
                    reply.map(s),
                    hdr,
                    s(size_arg),
                    s(msg)
                ),
                Op::Sub {
                    subject,
                    queue,
                    sid,
                } => format!("SUB {} {:?} {}", s(subject), queue.map(s), s(sid)),
                Op::Unsub { sid, max } => format!("UNSUB {} {max:?}", s(sid)),
                Op::Ping => "PING".into(),
                Op::Pong => "PONG".into(),
                Op::Ok => "+OK".into(),
                Op::Err(a) => format!("-ERR {}", s(a)),
            };
            self.ops.push(text);
            Ok(())
        }
    }

    fn parse_all(input: &[u8]) -> (Vec<String>, Result<usize, ParseError>) {
        let mut p = Parser::new();
        let mut h = Rec::new();
        let r = p.parse(input, &mut h);
        (h.ops, r)
    }

    /// Feeds `input` in pieces cut at `cuts`, keeping unconsumed bytes as a connection
    /// does, and returns the operations seen.
    fn parse_split(input: &[u8], cuts: &[usize]) -> (Vec<String>, Result<(), ParseError>) {
        let mut p = Parser::new();
        let mut h = Rec::new();
        let mut buf: Vec<u8> = Vec::new();
        let mut last = 0;
        for &c in cuts.iter().chain(std::iter::once(&input.len())) {
            buf.extend_from_slice(&input[last..c]);
            last = c;
            match p.parse(&buf, &mut h) {
                Ok(n) => {
                    buf.drain(..n);
                }
                Err(e) => return (h.ops, Err(e)),
            }
        }
        (h.ops, Ok(()))
    }

    #[test]
    fn basic_ops() {
        let input: &[u8] =
            b"CONNECT {\"verbose\":false}\r\nPING\r\nPONG\r\nSUB foo 1\r\nSUB foo q 2\r\n\
              UNSUB 1\r\nUNSUB 2 5\r\nPUB foo 5\r\nhello\r\nPUB foo bar 0\r\n\r\n\
              HPUB foo 12 14\r\nNATS/1.0\r\n\r\nhi\r\n+OK\r\n";
        let (ops, r) = parse_all(input);
        assert_eq!(r, Ok(input.len()));
        assert_eq!(
            ops,
            [
                "CONNECT {\"verbose\":false}",
                "PING",
                "PONG",
                "SUB foo None 1",
                "SUB foo Some(\"q\") 2",
                "UNSUB 1 None",
                "UNSUB 2 Some(5)",
                "PUB foo None None 5 [hello]",
                "PUB foo Some(\"bar\") None 0 []",
                "PUB foo None Some(12) 14 [NATS/1.0\r\n\r\nhi]",
                "+OK",
            ]
        );
    }

    #[test]
    fn nats_server_quirks() {
        // Case-insensitive names, tabs, \n-only endings, junk after PING.
        let input: &[u8] = b"ping\npInGxyz\r\nsub\tfoo \t 1\n";
        let (ops, r) = parse_all(input);
        assert_eq!(r, Ok(input.len()));
        assert_eq!(ops, ["PING", "PING", "SUB foo None 1"]);
        // CONNECT needs no space before its argument.
        let (ops, _) = parse_all(b"CONNECT{}\r\n");
        assert_eq!(ops, ["CONNECT {}"]);
        // The first wrong byte of a name is an error, without waiting for the line end.
        assert_eq!(parse_all(b"PUX").1, Err(ParseError::UnknownOp));
        assert_eq!(parse_all(b"PUBX foo 1\r\n").1, Err(ParseError::UnknownOp));
        assert_eq!(parse_all(b"FOO\r\n").1, Err(ParseError::UnknownOp));
        assert_eq!(parse_all(b"MSG foo 1 1\r\n").1, Err(ParseError::UnknownOp));
        assert_eq!(parse_all(b"RS+ foo\r\n").1, Err(ParseError::UnknownOp));
        // Payload must end in \r\n.
        assert_eq!(parse_all(b"PUB foo 2\r\nhiX").1, Err(ParseError::UnknownOp));
        assert_eq!(
            parse_all(b"PUB foo 2\r\nhi\rX").1,
            Err(ParseError::UnknownOp)
        );
        // Bad arguments close silently.
        assert!(matches!(
            parse_all(b"PUB foo\r\n").1,
            Err(ParseError::Violation(_))
        ));
        assert!(matches!(
            parse_all(b"PUB foo x\r\n").1,
            Err(ParseError::Violation(_))
        ));
        assert!(matches!(
            parse_all(b"SUB foo\r\n").1,
            Err(ParseError::Violation(_))
        ));
        assert!(matches!(
            parse_all(b"SUB a b c d\r\n").1,
            Err(ParseError::Violation(_))
        ));
        assert!(matches!(
            parse_all(b"UNSUB\t\r\n").1,
            Err(ParseError::Violation(_))
        ));
        // UNSUB with an unparsable max still parses; the max is -1.
        assert_eq!(parse_all(b"UNSUB 1 x\r\n").0, ["UNSUB 1 Some(-1)"]);
        // Long control lines, complete or not.
        let long = format!("SUB {} 1\r\n", "a".repeat(80));
        assert_eq!(
            parse_all(long.as_bytes()).1,
            Err(ParseError::MaxControlLine)
        );
        let partial = format!("SUB {}", "a".repeat(80));
        assert_eq!(
            parse_all(partial.as_bytes()).1,
            Err(ParseError::MaxControlLine)
        );
    }

    #[test]
    fn auth_and_headers_gates() {
        let mut p = Parser::new();
        let mut h = Rec::new();
        h.auth = true;
        assert_eq!(p.parse(b"PING\r\n", &mut h), Err(ParseError::AuthViolation));
        let mut p = Parser::new();
        assert_eq!(p.parse(b"CONNECT {}\r\n", &mut h), Ok(12));
        let mut p = Parser::new();
        let mut h = Rec::new();
        h.headers = false;
        assert!(matches!(
            p.parse(b"HPUB foo 2 2\r\nxx\r\n", &mut h),
            Err(ParseError::Violation(_))
        ));
        let mut h = Rec::new();
        h.max_payload = 4;
        let mut p = Parser::new();
        assert_eq!(
            p.parse(b"PUB foo 5\r\n", &mut h),
            Err(ParseError::MaxPayload)
        );
    }

    #[test]
    fn payload_waits_for_all_bytes() {
        let mut p = Parser::new();
        let mut h = Rec::new();
        assert_eq!(p.parse(b"PUB foo 5\r\nhel", &mut h), Ok(0));
        assert_eq!(p.payload_needed(), Some(18));
        assert_eq!(p.parse(b"PUB foo 5\r\nhello\r\nPING\r\n", &mut h), Ok(24));
        assert_eq!(h.ops, ["PUB foo None None 5 [hello]", "PING"]);
    }

    fn op_strategy() -> impl Strategy<Value = Vec<u8>> {
        let token = "[a-z0-9]{1,6}";
        prop_oneof![
            Just(b"PING\r\n".to_vec()),
            Just(b"PONG\r\n".to_vec()),
            Just(b"CONNECT {\"verbose\":false}\r\n".to_vec()),
            (token, token).prop_map(|(s, sid)| format!("SUB {s} {sid}\r\n").into_bytes()),
            (token, token, token)
                .prop_map(|(s, q, sid)| format!("SUB {s} {q} {sid}\r\n").into_bytes()),
            (token, 0u32..100).prop_map(|(sid, m)| format!("UNSUB {sid} {m}\r\n").into_bytes()),
            (token, proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(s, p)| {
                let mut v = format!("PUB {s} {}\r\n", p.len()).into_bytes();
                v.extend_from_slice(&p);
                v.extend_from_slice(b"\r\n");
                v
            }),
            (token, token, proptest::collection::vec(any::<u8>(), 0..40)).prop_map(|(s, r, p)| {
                let hdr = b"NATS/1.0\r\nK: v\r\n\r\n";
                let mut v =
                    format!("HPUB {s} {r} {} {}\r\n", hdr.len(), hdr.len() + p.len()).into_bytes();
                v.extend_from_slice(hdr);
                v.extend_from_slice(&p);
                v.extend_from_slice(b"\r\n");
                v
            }),
        ]
    }

    proptest! {
        /// Any split of a valid stream yields the same operations as the whole stream.
        #[test]
        fn random_splits_yield_same_ops(
            ops in proptest::collection::vec(op_strategy(), 1..12),
            mut cuts in proptest::collection::vec(any::<prop::sample::Index>(), 0..8),
        ) {
            let input: Vec<u8> = ops.concat();
            let (whole, r) = parse_all(&input);
            prop_assert_eq!(r, Ok(input.len()));
            let mut cuts: Vec<usize> = cuts.drain(..).map(|i| i.index(input.len())).collect();
            cuts.sort_unstable();
            let (split, r) = parse_split(&input, &cuts);
            prop_assert_eq!(r, Ok(()));
            prop_assert_eq!(split, whole);
        }
    }

    #[test]
    fn every_byte_boundary() {
        let input: &[u8] = b"CONNECT {}\r\nSUB a.b q 1\r\nPUB a.b r 3\r\nabc\r\n\
            HPUB x 12 15\r\nNATS/1.0\r\n\r\nxyz\r\nUNSUB 1 2\r\nPING\r\n";
        let (whole, _) = parse_all(input);
        for i in 0..=input.len() {
            for j in i..=input.len() {
                let (split, r) = parse_split(input, &[i, j]);
                assert_eq!(r, Ok(()));
                assert_eq!(split, whole, "cuts at {i},{j}");
            }
        }
    }
}
