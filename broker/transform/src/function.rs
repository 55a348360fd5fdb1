//! Destination tokens and the mapping functions they hold (nats-server's
//! `indexPlaceHolders`), parsed the way nats-server's regular expressions read them.

use crate::error::{DestinationError as E, TransformError};

/// What one destination token places in the result.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Function {
    /// Copied as it is: plain tokens, `>`, and `$name` where the name is not a number
    /// (other features rely on tokens that start with `$`).
    Literal,
    /// `$n` or `{{wildcard(n)}}`: the token the n-th `*` matched.
    Wildcard(i64),
    /// `{{partition(n)}}` hashes the whole subject, `{{partition(n, w...)}}` the
    /// listed wildcards' tokens, into one of `n` buckets.
    Partition(i32, Vec<i64>),
    SplitFromLeft(i64, i32),
    SplitFromRight(i64, i32),
    SliceFromLeft(i64, i32),
    SliceFromRight(i64, i32),
    /// `{{split(w, delimiter)}}`.
    Split(i64, String),
    Left(i64, i32),
    Right(i64, i32),
    /// `{{random(n)}}`: a random number below `n`, no wildcard used.
    Random(i32),
}

impl Function {
    /// The source wildcard indexes the function reads.
    pub(crate) fn wildcards(&self) -> &[i64] {
        match self {
            Self::Literal | Self::Random(_) => &[],
            Self::Partition(_, w) => w,
            Self::Wildcard(w)
            | Self::SplitFromLeft(w, _)
            | Self::SplitFromRight(w, _)
            | Self::SliceFromLeft(w, _)
            | Self::SliceFromRight(w, _)
            | Self::Split(w, _)
            | Self::Left(w, _)
            | Self::Right(w, _) => std::slice::from_ref(w),
        }
    }
}

/// Function names as nats-server's patterns spell them: an upper-case letter matches
/// either case, a lower-case one only itself (`splitfromleft` and `SplitFromLeft` work,
/// `SPLITFROMLEFT` does not).
pub(crate) const KNOWN: [&str; 10] = [
    "Partition",
    "Wildcard",
    "SplitFromLeft",
    "SplitFromRight",
    "SliceFromLeft",
    "SliceFromRight",
    "Split",
    "Left",
    "Right",
    "Random",
];

const WHITESPACE: [char; 5] = ['\t', '\n', '\x0c', '\r', ' '];

/// Whether the token is in mustaches, the only form that may hold a function.
pub(crate) fn is_mustache(token: &str) -> bool {
    token.len() > 4 && token.starts_with("{{") && token.ends_with("}}")
}

/// Go's `strconv.Atoi`: an optional sign and decimal digits, in `i64`.
pub(crate) fn go_atoi(s: &str) -> Option<i64> {
    let digits = s.strip_prefix(['+', '-']).unwrap_or(s);
    if digits.is_empty() || !digits.bytes().all(|c| c.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// Go's `int32(x)` conversion, which wraps.
fn go_int32(x: i64) -> i32 {
    let [a, b, c, d, ..] = x.to_le_bytes();
    i32::from_le_bytes([a, b, c, d])
}

/// Parses one destination token.
pub(crate) fn parse(token: &str) -> Result<Function, TransformError> {
    if token.len() <= 1 {
        return Ok(Function::Literal);
    }
    if let Some(n) = token.strip_prefix('$') {
        return Ok(go_atoi(n).map_or(Function::Literal, Function::Wildcard));
    }
    if !is_mustache(token) {
        return Ok(Function::Literal);
    }
    let err =
        |kind: E| -> Result<Function, TransformError> { Err(TransformError::dest(kind, token)) };
    let int = |s: &str| go_atoi(s.trim_matches(' '));
    // An int that must fit Go's int32 (`strconv.ParseInt(s, 10, 32)`).
    let int32 = |s: &str| int(s).and_then(|n| i32::try_from(n).ok());
    if let Some(args) = mapping_args(token, "Wildcard") {
        return match args.as_slice() {
            [a] if a.is_empty() => err(E::NotEnoughArgs),
            [a] => int(a).map_or_else(|| err(E::InvalidArg), |i| Ok(Function::Wildcard(i))),
            _ => err(E::TooManyArgs),
        };
    }
    if let Some(args) = mapping_args(token, "Partition") {
        let Some(n) = int(&args[0]).filter(|n| *n <= i64::from(i32::MAX)) else {
            return err(E::InvalidArg);
        };
        let mut idx = Vec::with_capacity(args.len() - 1);
        for a in &args[1..] {
            match int(a) {
                Some(i) => idx.push(i),
                None => return err(E::InvalidArg),
            }
        }
        return Ok(Function::Partition(go_int32(n), idx));
    }
    type Ctor = fn(i64, i32) -> Function;
    let two_ints: [(&str, Ctor); 6] = [
        ("SplitFromLeft", Function::SplitFromLeft),
        ("SplitFromRight", Function::SplitFromRight),
        ("SliceFromLeft", Function::SliceFromLeft),
        ("SliceFromRight", Function::SliceFromRight),
        ("Right", Function::Right),
        ("Left", Function::Left),
    ];
    for (name, ctor) in two_ints {
        if let Some(args) = mapping_args(token, name) {
            return match args.as_slice() {
                [_] => err(E::NotEnoughArgs),
                [a, b] => match (int(a), int32(b)) {
                    (Some(i), Some(n)) => Ok(ctor(i, n)),
                    _ => err(E::InvalidArg),
                },
                _ => err(E::TooManyArgs),
            };
        }
    }
    if let Some(args) = mapping_args(token, "Split") {
        return match args.as_slice() {
            [_] => err(E::NotEnoughArgs),
            [a, sep] => match int(a) {
                Some(i) if !sep.contains([' ', '.']) => Ok(Function::Split(i, sep.clone())),
                _ => err(E::InvalidArg),
            },
            _ => err(E::TooManyArgs),
        };
    }
    if let Some(args) = mapping_args(token, "Random") {
        return match args.as_slice() {
            [a] => match int(a) {
                Some(n) if n <= i64::from(i32::MAX) => Ok(Function::Random(go_int32(n))),
                _ => err(E::InvalidArg),
            },
            _ => err(E::NotEnoughArgs),
        };
    }
    err(E::UnknownFunction)
}

/// The arguments of the first `{{ name(…) }}` in `token`, split at commas (with the
/// whitespace after each), as nats-server's `{{\s*name\s*\((.*)\)\s*}}` patterns find
/// them: anywhere in the token, the argument text greedy and on one line.
pub(crate) fn mapping_args(token: &str, name: &str) -> Option<Vec<String>> {
    let b = token.as_bytes();
    let skip_ws = |mut i: usize| {
        while b.get(i).is_some_and(|c| b"\t\n\x0c\r ".contains(c)) {
            i += 1;
        }
        i
    };
    for start in 0..b.len() {
        if !b[start..].starts_with(b"{{") {
            continue;
        }
        let mut i = skip_ws(start + 2);
        let name_matches = name.bytes().enumerate().all(|(k, n)| {
            b.get(i + k)
                .is_some_and(|&c| c == n || (n.is_ascii_uppercase() && c == n.to_ascii_lowercase()))
        });
        if !name_matches {
            continue;
        }
        i = skip_ws(i + name.len());
        if b.get(i) != Some(&b'(') {
            continue;
        }
        let open = i + 1;
        let line_end = b[open..]
            .iter()
            .position(|&c| c == b'\n')
            .map_or(b.len(), |n| open + n);
        let close = (open..line_end)
            .rev()
            .find(|&j| b[j] == b')' && b[skip_ws(j + 1)..].starts_with(b"}}"));
        if let Some(j) = close {
            let args = token[open..j]
                .split(',')
                .enumerate()
                .map(|(k, part)| {
                    if k == 0 {
                        part.to_owned()
                    } else {
                        part.trim_start_matches(WHITESPACE).to_owned()
                    }
                })
                .collect();
            return Some(args);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    fn kind(token: &str) -> Option<E> {
        parse(token).err().and_then(|e| e.destination_kind())
    }

    #[test]
    fn every_function_parses() {
        assert_eq!(parse("foo"), Ok(Function::Literal));
        assert_eq!(parse(">"), Ok(Function::Literal));
        assert_eq!(parse("$x"), Ok(Function::Literal));
        assert_eq!(parse("$2"), Ok(Function::Wildcard(2)));
        assert_eq!(parse("{{wildcard(1)}}"), Ok(Function::Wildcard(1)));
        assert_eq!(parse("{{ Wildcard( 3 ) }}"), Ok(Function::Wildcard(3)));
        assert_eq!(
            parse("{{partition(5)}}"),
            Ok(Function::Partition(5, vec![]))
        );
        assert_eq!(
            parse("{{Partition(5,1, 2)}}"),
            Ok(Function::Partition(5, vec![1, 2]))
        );
        assert_eq!(
            parse("{{splitFromLeft(1,2)}}"),
            Ok(Function::SplitFromLeft(1, 2))
        );
        assert_eq!(
            parse("{{SplitFromRight(1,2)}}"),
            Ok(Function::SplitFromRight(1, 2))
        );
        assert_eq!(
            parse("{{slicefromleft(1,2)}}"),
            Ok(Function::SliceFromLeft(1, 2))
        );
        assert_eq!(
            parse("{{SliceFromRight(1, 3)}}"),
            Ok(Function::SliceFromRight(1, 3))
        );
        assert_eq!(
            parse("{{split(1,-)}}"),
            Ok(Function::Split(1, "-".to_owned()))
        );
        assert_eq!(parse("{{left(1,2)}}"), Ok(Function::Left(1, 2)));
        assert_eq!(parse("{{Right(1,2)}}"), Ok(Function::Right(1, 2)));
        assert_eq!(parse("{{random(10)}}"), Ok(Function::Random(10)));
    }

    #[test]
    fn every_argument_error() {
        assert_eq!(kind("{{wildcard()}}"), Some(E::NotEnoughArgs));
        assert_eq!(kind("{{wildcard(1,2)}}"), Some(E::TooManyArgs));
        assert_eq!(kind("{{wildcard(x)}}"), Some(E::InvalidArg));
        assert_eq!(kind("{{partition()}}"), Some(E::InvalidArg));
        assert_eq!(kind("{{partition(2147483648)}}"), Some(E::InvalidArg));
        assert_eq!(kind("{{partition(3,x)}}"), Some(E::InvalidArg));
        assert_eq!(kind("{{left(1)}}"), Some(E::NotEnoughArgs));
        assert_eq!(kind("{{right(1,2,3)}}"), Some(E::TooManyArgs));
        assert_eq!(kind("{{splitFromLeft(1,2147483648)}}"), Some(E::InvalidArg));
        assert_eq!(kind("{{sliceFromRight(a,2)}}"), Some(E::InvalidArg));
        assert_eq!(kind("{{split(1)}}"), Some(E::NotEnoughArgs));
        assert_eq!(kind("{{split(1,a,b)}}"), Some(E::TooManyArgs));
        assert_eq!(kind("{{split(1,.)}}"), Some(E::InvalidArg));
        assert_eq!(kind("{{random()}}"), Some(E::InvalidArg));
        assert_eq!(kind("{{random(1,2)}}"), Some(E::NotEnoughArgs));
        assert_eq!(kind("{{nope(1)}}"), Some(E::UnknownFunction));
        // Only the first letter of each word may change case.
        assert_eq!(kind("{{LEFT(1,2)}}"), Some(E::UnknownFunction));
    }

    #[test]
    fn error_text_names_the_token() {
        assert_eq!(
            parse("{{left(1)}}").unwrap_err().to_string(),
            "invalid mapping destination: not enough arguments passed to the function in {{left(1)}}"
        );
    }

    #[test]
    fn go_conversions() {
        assert_eq!(go_atoi("+42"), Some(42));
        assert_eq!(go_atoi("-3"), Some(-3));
        assert_eq!(go_atoi("4 2"), None);
        assert_eq!(go_atoi(""), None);
        assert_eq!(go_atoi("99999999999999999999"), None);
        assert_eq!(go_int32(-1), -1);
        assert_eq!(go_int32(1 << 32), 0);
    }
}
