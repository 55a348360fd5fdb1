//! One subject transform: a source filter and a destination, built once and applied to
//! many subjects (nats-server's `subjectTransform`).

use std::io::Write as _;

use crate::error::{DestinationError as E, TransformError};
use crate::function::{self, Function};
use crate::subject::{self, subject_info};

/// A destination token and the source token positions its function reads.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Part {
    func: Function,
    /// Positions in the subject of the wildcards the function names, in order. Empty
    /// for literals, `random`, and `partition` of the whole subject.
    tokens: Vec<usize>,
}

/// A compiled transform from `src` to `dest`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SubjectTransform {
    src: String,
    dest: String,
    /// The destination's tokens, one per part.
    dtoks: Vec<String>,
    parts: Vec<Part>,
    /// How many tokens the source has: with `>`, the subject's tokens from the last
    /// source position on are appended.
    src_len: usize,
    dest_fwc: bool,
}

impl SubjectTransform {
    /// Builds the transform as nats-server's `NewSubjectTransform` does. An empty `src`
    /// means `>`; an empty `dest` means no change (nats-server has no transform then,
    /// and its callers keep the subject).
    pub fn new(src: &str, dest: &str) -> Result<Self, TransformError> {
        Self::build(src, dest, false)
    }

    /// The reversible form imports need (nats-server's `NewSubjectTransformStrict`):
    /// only `wildcard` functions, and every source wildcard used.
    pub fn new_strict(src: &str, dest: &str) -> Result<Self, TransformError> {
        Self::build(src, dest, true)
    }

    fn build(src: &str, dest: &str, strict: bool) -> Result<Self, TransformError> {
        let src = if src.is_empty() { ">" } else { src };
        let mut tr = Self {
            src: src.to_owned(),
            dest: dest.to_owned(),
            dtoks: Vec::new(),
            parts: Vec::new(),
            src_len: src.split('.').count(),
            dest_fwc: false,
        };
        if dest.is_empty() {
            return Ok(tr);
        }
        let (Some((npwcs, src_fwc)), Some((dest_pwcs, dest_fwc))) =
            (subject_info(src), subject_info(dest))
        else {
            return Err(TransformError::BadSubject);
        };
        if dest_pwcs > 0 || src_fwc != dest_fwc {
            return Err(TransformError::BadSubject);
        }
        tr.dest_fwc = dest_fwc;
        let npwcs_i = i64::try_from(npwcs).unwrap_or(i64::MAX);
        // Where each `*` of the source sits: wildcard n is at star_at[n - 1].
        let star_at: Vec<usize> = src
            .split('.')
            .enumerate()
            .filter(|(_, t)| *t == "*")
            .map(|(i, _)| i)
            .collect();
        let mut placed = 0usize;
        for token in dest.split('.') {
            let func = function::parse(token)?;
            let tokens = if npwcs > 0 || src_fwc {
                if strict && !matches!(func, Function::Literal | Function::Wildcard(_)) {
                    return Err(TransformError::dest(E::NotSupportedForImport, token));
                }
                let mut tokens = Vec::with_capacity(func.wildcards().len());
                for &w in func.wildcards() {
                    if w > npwcs_i {
                        return Err(TransformError::dest(
                            E::IndexOutOfRange,
                            format!("{token}: [{w}]"),
                        ));
                    }
                    // nats-server looks indexes up in a map from 1: index 0 and below
                    // find nothing and read the subject's first token.
                    let at = w
                        .checked_sub(1)
                        .and_then(|i| usize::try_from(i).ok())
                        .map_or(0, |i| star_at[i]);
                    tokens.push(at);
                }
                placed += tokens.len();
                tokens
            } else {
                match func {
                    // `partition` of a literal source always hashes the whole subject.
                    Function::Literal | Function::Random(_) | Function::Partition(..) => {}
                    _ => return Err(TransformError::dest(E::IndexOutOfRange, token)),
                }
                Vec::new()
            };
            tr.dtoks.push(token.to_owned());
            tr.parts.push(Part { func, tokens });
        }
        if strict && (npwcs > 0 || src_fwc) && placed < npwcs {
            return Err(TransformError::dest(E::NotUsingAllWildcards, dest));
        }
        Ok(tr)
    }

    pub fn source(&self) -> &str {
        &self.src
    }

    pub fn destination(&self) -> &str {
        &self.dest
    }

    /// Whether the result depends on the subject's tokens (false for a destination of
    /// literals and `random` only).
    pub fn uses_tokens(&self) -> bool {
        self.dest_fwc
            || self
                .parts
                .iter()
                .any(|p| !matches!(p.func, Function::Literal | Function::Random(_)))
    }

    /// nats-server's `Match`: the transformed subject if `subject` is a valid literal
    /// subject that the source matches.
    pub fn match_subject(&self, subject: &[u8]) -> Result<Vec<u8>, TransformError> {
        let any = |s: &str| s.is_empty() || s == ">";
        if any(&self.src) && any(&self.dest) {
            return Ok(subject.to_vec());
        }
        let mut tokens = Vec::new();
        subject::tokenize(subject, &mut tokens);
        if !subject::is_valid_literal(&tokens) {
            return Err(TransformError::BadSubject);
        }
        if self.src == ">" || subject::subset_match(&tokens, &self.src) {
            let mut out = Vec::with_capacity(subject.len() + self.dest.len());
            self.transform_tokens(&tokens, &mut out);
            Ok(out)
        } else {
            Err(TransformError::NoMatch)
        }
    }

    /// Transforms a subject the source is known to match.
    pub fn transform_subject(&self, subject: &[u8]) -> Vec<u8> {
        let mut tokens = Vec::new();
        subject::tokenize(subject, &mut tokens);
        let mut out = Vec::with_capacity(subject.len() + self.dest.len());
        self.transform_tokens(&tokens, &mut out);
        out
    }

    /// Appends the transform of a subject, given as its tokens, to `out` (nats-server's
    /// `TransformTokenizedSubject`). Tokens the destination names but the subject lacks
    /// are left out rather than failing.
    pub fn transform_tokens(&self, tokens: &[&[u8]], out: &mut Vec<u8>) {
        if self.parts.is_empty() {
            // No destination: the subject as it is.
            join(tokens, out);
            return;
        }
        let last = self.parts.len() - 1;
        for (i, part) in self.parts.iter().enumerate() {
            let tok = |k: usize| part.tokens.get(k).and_then(|&at| tokens.get(at)).copied();
            match &part.func {
                Function::Literal => {
                    if self.dtoks[i] == ">" {
                        break;
                    }
                    out.extend_from_slice(self.dtoks[i].as_bytes());
                }
                Function::Partition(buckets, _) => {
                    let hash = if part.tokens.is_empty() {
                        let mut h = Fnv1a::new();
                        for (k, t) in tokens.iter().enumerate() {
                            if k > 0 {
                                h.write(b".");
                            }
                            h.write(t);
                        }
                        h.sum()
                    } else {
                        let mut h = Fnv1a::new();
                        for k in 0..part.tokens.len() {
                            h.write(tok(k).unwrap_or_default());
                        }
                        h.sum()
                    };
                    partition(hash, *buckets, out);
                }
                Function::Wildcard(_) => {
                    if let Some(t) = tok(0) {
                        out.extend_from_slice(t);
                    }
                }
                Function::SplitFromLeft(_, n) | Function::SplitFromRight(_, n) => {
                    let t = tok(0).unwrap_or_default();
                    let at = usize::try_from(*n).unwrap_or(0);
                    if at > 0 && at < t.len() {
                        let at = if matches!(part.func, Function::SplitFromLeft(..)) {
                            at
                        } else {
                            t.len() - at
                        };
                        out.extend_from_slice(&t[..at]);
                        out.push(b'.');
                        out.extend_from_slice(&t[at..]);
                    } else {
                        out.extend_from_slice(t);
                    }
                }
                Function::SliceFromLeft(_, n) => {
                    slice_from_left(tok(0).unwrap_or_default(), *n, out);
                }
                Function::SliceFromRight(_, n) => {
                    slice_from_right(tok(0).unwrap_or_default(), *n, out);
                }
                Function::Split(_, delim) => split(tok(0).unwrap_or_default(), delim, out),
                Function::Left(_, n) | Function::Right(_, n) => {
                    let t = tok(0).unwrap_or_default();
                    let size = usize::try_from(*n).unwrap_or(0);
                    if size > 0 && size < t.len() {
                        if matches!(part.func, Function::Left(..)) {
                            out.extend_from_slice(&t[..size]);
                        } else {
                            out.extend_from_slice(&t[t.len() - size..]);
                        }
                    } else {
                        out.extend_from_slice(t);
                    }
                }
                Function::Random(n) => {
                    let n = i64::from(*n);
                    let v = if n == 0 {
                        0
                    } else {
                        i64::from(fastrand::i32(0..=i32::MAX)) % n
                    };
                    let _ = write!(out, "{v}");
                }
            }
            if i < last {
                out.push(b'.');
            }
        }
        if self.dest_fwc {
            let rest = tokens
                .get(self.src_len.saturating_sub(1)..)
                .unwrap_or_default();
            join(rest, out);
        }
    }
}

fn join(tokens: &[&[u8]], out: &mut Vec<u8>) {
    for (k, t) in tokens.iter().enumerate() {
        if k > 0 {
            out.push(b'.');
        }
        out.extend_from_slice(t);
    }
}

/// 32-bit FNV-1a, the hash nats-server's `partition` uses (Go's `hash/fnv` `New32a`).
struct Fnv1a(u32);

impl Fnv1a {
    fn new() -> Self {
        Self(0x811c_9dc5)
    }

    fn write(&mut self, bytes: &[u8]) {
        for &b in bytes {
            self.0 ^= u32::from(b);
            self.0 = self.0.wrapping_mul(0x0100_0193);
        }
    }

    fn sum(&self) -> u32 {
        self.0
    }
}

/// The bucket of `hash` among `buckets` (Go converts the int32 count to uint32, so a
/// negative count wraps; zero buckets give "0").
fn partition(hash: u32, buckets: i32, out: &mut Vec<u8>) {
    let n = buckets.cast_unsigned();
    let v = if n == 0 { 0 } else { hash % n };
    let _ = write!(out, "{v}");
}

fn slice_from_left(t: &[u8], n: i32, out: &mut Vec<u8>) {
    let size = usize::try_from(n).unwrap_or(0);
    if size == 0 || size >= t.len() {
        out.extend_from_slice(t);
        return;
    }
    let mut i = 0;
    while i + size <= t.len() {
        if i != 0 {
            out.push(b'.');
        }
        out.extend_from_slice(&t[i..i + size]);
        if i + size != t.len() && i + 2 * size > t.len() {
            out.push(b'.');
            out.extend_from_slice(&t[i + size..]);
            break;
        }
        i += size;
    }
}

fn slice_from_right(t: &[u8], n: i32, out: &mut Vec<u8>) {
    let size = usize::try_from(n).unwrap_or(0);
    if size == 0 || size >= t.len() {
        out.extend_from_slice(t);
        return;
    }
    let rem = t.len() % size;
    if rem > 0 {
        out.extend_from_slice(&t[..rem]);
        out.push(b'.');
    }
    let mut i = rem;
    while i + size <= t.len() {
        out.extend_from_slice(&t[i..i + size]);
        if i + size < t.len() {
            out.push(b'.');
        }
        i += size;
    }
}

/// `{{split(w, delim)}}`: the pieces between delimiters as tokens, empty pieces dropped
/// (nats-server's exact separator rule, which keeps no leading or doubled dots).
fn split(t: &[u8], delim: &str, out: &mut Vec<u8>) {
    let pieces = go_split(t, delim.as_bytes());
    for (j, piece) in pieces.iter().enumerate() {
        out.extend_from_slice(piece);
        if j + 1 < pieces.len() && !pieces[j + 1].is_empty() && !(j == 0 && piece.is_empty()) {
            out.push(b'.');
        }
    }
}

/// Go's `strings.Split`: an empty separator splits into UTF-8 sequences (a stray byte
/// alone), and an empty input with it gives no pieces.
fn go_split<'a>(s: &'a [u8], sep: &[u8]) -> Vec<&'a [u8]> {
    let mut out = Vec::new();
    if sep.is_empty() {
        let mut rest = s;
        while !rest.is_empty() {
            let len = match std::str::from_utf8(&rest[..rest.len().min(4)]) {
                Ok(v) => v.chars().next().map_or(1, char::len_utf8),
                Err(e) if e.valid_up_to() > 0 => std::str::from_utf8(&rest[..e.valid_up_to()])
                    .ok()
                    .and_then(|v| v.chars().next())
                    .map_or(1, char::len_utf8),
                Err(_) => 1,
            };
            out.push(&rest[..len]);
            rest = &rest[len..];
        }
        return out;
    }
    let mut start = 0;
    let mut i = 0;
    while i + sep.len() <= s.len() {
        if &s[i..i + sep.len()] == sep {
            out.push(&s[start..i]);
            i += sep.len();
            start = i;
        } else {
            i += 1;
        }
    }
    out.push(&s[start..]);
    out
}

/// nats-server's `ValidateMapping`: the destination's tokens and the functions named in
/// mustaches first, then whether the transform can be built at all. Core mappings and
/// JetStream's `subject_transform` and source transforms go through it.
pub fn validate_mapping(src: &str, dest: &str) -> Result<(), TransformError> {
    if dest.is_empty() {
        return Ok(());
    }
    let mut after_fwc = false;
    for t in dest.split('.') {
        if t.is_empty() || after_fwc {
            return Err(TransformError::dest(E::InvalidSubject, t));
        }
        if function::is_mustache(t) {
            if function::KNOWN
                .iter()
                .all(|f| function::mapping_args(t, f).is_none())
            {
                return Err(TransformError::dest(E::UnknownFunction, t));
            }
            continue;
        }
        if t == ">" {
            after_fwc = true;
        } else if t.contains(['\t', '\n', '\x0c', '\r', ' ']) {
            return Err(TransformError::dest(E::InvalidSubject, ""));
        }
    }
    SubjectTransform::new(src, dest).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(src: &str, dest: &str, subject: &str) -> String {
        let tr = SubjectTransform::new(src, dest).expect("valid transform");
        String::from_utf8(tr.match_subject(subject.as_bytes()).expect("matches")).unwrap()
    }

    fn err(src: &str, dest: &str) -> String {
        validate_mapping(src, dest).unwrap_err().to_string()
    }

    #[test]
    fn literal_and_wildcards() {
        assert_eq!(map("foo", "bar", "foo"), "bar");
        assert_eq!(map("a.*.*", "b.$2.$1", "a.x.y"), "b.y.x");
        assert_eq!(
            map("a.*.*", "b.{{wildcard(2)}}.{{ wildcard(1) }}", "a.x.y"),
            "b.y.x"
        );
        assert_eq!(
            map("a.*", "b.{{Wildcard(1)}}.{{wildcard(1)}}", "a.x"),
            "b.x.x"
        );
        assert_eq!(map("a.>", "b.>", "a.x.y.z"), "b.x.y.z");
        assert_eq!(map("a.*.>", "b.$1.>", "a.x.y.z"), "b.x.y.z");
        assert_eq!(map(">", ">", "a.b"), "a.b");
        assert_eq!(map("", "copy.>", "a.b"), "copy.a.b");
        // `$name` that is not a number is a literal.
        assert_eq!(map("a.*", "$SYS.$1", "a.x"), "$SYS.x");
        // Index 0 reads the first token, as nats-server's map lookup does.
        assert_eq!(map("a.*", "b.{{wildcard(0)}}", "a.x"), "b.a");
    }

    #[test]
    fn partition_is_fnv1a_of_the_tokens() {
        // FNV-1a 32 of "foo" is 0xa9f37ed7 = 2851307223.
        let mut h = Fnv1a::new();
        h.write(b"foo");
        assert_eq!(h.sum(), 0xa9f3_7ed7);
        assert_eq!(map("foo", "p.{{partition(10)}}", "foo"), "p.3");
        // With wildcards named, their tokens are concatenated without separators.
        let mut h = Fnv1a::new();
        h.write(b"xy");
        let want = format!("p.{}", h.sum() % 7);
        assert_eq!(map("a.*.*", "p.{{partition(7,1,2)}}", "a.x.y"), want);
        // The shorthand hashes the whole subject, dots included.
        let mut h = Fnv1a::new();
        h.write(b"a.x.y");
        assert_eq!(
            map("a.*.*", "p.{{partition(7)}}.$1", "a.x.y"),
            format!("p.{}.x", h.sum() % 7)
        );
        assert_eq!(map("a.*", "p.{{partition(0,1)}}", "a.x"), "p.0");
    }

    #[test]
    fn splits_and_slices() {
        assert_eq!(map("a.*", "{{splitFromLeft(1,2)}}", "a.abcdef"), "ab.cdef");
        assert_eq!(map("a.*", "{{splitFromRight(1,2)}}", "a.abcdef"), "abcd.ef");
        assert_eq!(map("a.*", "{{splitFromLeft(1,9)}}", "a.abc"), "abc");
        assert_eq!(map("a.*", "{{sliceFromLeft(1,2)}}", "a.abcde"), "ab.cd.e");
        assert_eq!(map("a.*", "{{sliceFromLeft(1,2)}}", "a.abcd"), "ab.cd");
        assert_eq!(map("a.*", "{{sliceFromRight(1,2)}}", "a.abcde"), "a.bc.de");
        assert_eq!(map("a.*", "{{sliceFromRight(1,2)}}", "a.abcd"), "ab.cd");
        assert_eq!(map("a.*", "{{sliceFromRight(1,0)}}", "a.abcd"), "abcd");
        assert_eq!(map("a.*", "x.{{split(1,-)}}.y", "a.-a--b-"), "x.a.b.y");
        assert_eq!(map("a.*", "{{split(1,-)}}", "a.a-b-c"), "a.b.c");
        assert_eq!(map("a.*", "{{left(1,2)}}", "a.abcd"), "ab");
        assert_eq!(map("a.*", "{{right(1,2)}}", "a.abcd"), "cd");
        assert_eq!(map("a.*", "{{right(1,5)}}", "a.abcd"), "abcd");
    }

    #[test]
    fn random_stays_below_its_bound() {
        let tr = SubjectTransform::new("a.*", "r.{{random(3)}}").unwrap();
        for _ in 0..100 {
            let out = tr.match_subject(b"a.x").unwrap();
            assert!([&b"r.0"[..], b"r.1", b"r.2"].contains(&out.as_slice()));
        }
        assert_eq!(map("a", "{{random(0)}}", "a"), "0");
    }

    #[test]
    fn match_refuses_other_subjects() {
        let tr = SubjectTransform::new("a.*", "b.$1").unwrap();
        assert_eq!(tr.match_subject(b"c.x"), Err(TransformError::NoMatch));
        assert_eq!(tr.match_subject(b"a.*"), Err(TransformError::BadSubject));
        assert_eq!(
            TransformError::NoMatch.to_string(),
            "no matching transforms available"
        );
    }

    #[test]
    fn validation_errors_have_nats_server_texts() {
        assert_eq!(validate_mapping("a.*", "b.{{left(1,2)}}"), Ok(()));
        assert_eq!(validate_mapping("a", "{{random(5)}}"), Ok(()));
        assert_eq!(validate_mapping("a", "x.{{partition(3,1)}}"), Ok(()));
        assert_eq!(validate_mapping("a.*", ""), Ok(()));
        assert_eq!(err("a.>", "b"), "invalid subject");
        assert_eq!(err("a.*", "b.*"), "invalid subject");
        assert_eq!(
            err("a.*", "b..c"),
            "invalid mapping destination: invalid transform"
        );
        assert_eq!(
            err("a.*", "b.>.c"),
            "invalid mapping destination: invalid transform in c"
        );
        assert_eq!(
            err("a.*", "b. x"),
            "invalid mapping destination: invalid transform"
        );
        assert_eq!(
            err("a.*", "b.{{foo(1)}}"),
            "invalid mapping destination: unknown function in {{foo(1)}}"
        );
        assert_eq!(
            err("a", "b.$1"),
            "invalid mapping destination: wildcard index out of range in $1"
        );
        assert_eq!(
            err("a.*", "b.{{wildcard(2)}}"),
            "invalid mapping destination: wildcard index out of range in {{wildcard(2)}}: [2]"
        );
        assert_eq!(
            err("a.*", "b.{{wildcard()}}"),
            "invalid mapping destination: not enough arguments passed to the function in {{wildcard()}}"
        );
        assert_eq!(
            err("a.*", "b.{{wildcard(1,2)}}"),
            "invalid mapping destination: too many arguments passed to the function in {{wildcard(1,2)}}"
        );
        assert_eq!(
            err("a.*", "b.{{wildcard(x)}}"),
            "invalid mapping destination: function argument is invalid or in the wrong format in {{wildcard(x)}}"
        );
    }

    #[test]
    fn strict_transforms_for_imports() {
        assert!(SubjectTransform::new_strict("a.*", "b.$1").is_ok());
        assert_eq!(
            SubjectTransform::new_strict("a.*.*", "b.$1")
                .unwrap_err()
                .to_string(),
            "invalid mapping destination: not using all of the token wildcard(s) in b.$1"
        );
        assert_eq!(
            SubjectTransform::new_strict("a.*", "b.{{partition(2,1)}}")
                .unwrap_err()
                .destination_kind(),
            Some(E::NotSupportedForImport)
        );
    }

    #[test]
    fn go_split_matches_strings_split() {
        assert_eq!(go_split(b"a-b", b"-"), vec![&b"a"[..], b"b"]);
        assert_eq!(go_split(b"", b"-"), vec![&b""[..]]);
        assert_eq!(go_split(b"ab", b""), vec![&b"a"[..], b"b"]);
        assert!(go_split(b"", b"").is_empty());
    }
}
