//! Subject syntax: tokens separated by `.`, with `*` (one token) and `>` (one or more
//! trailing tokens) as wildcards only when they stand alone as a whole token.
//!
//! The rules are nats-server's (sublist.go): no empty tokens, `>` only last, and no
//! whitespace inside a token. A literal subject (what a client may publish to in pedantic
//! mode) additionally has no wildcard token.

/// Token separator.
pub const TSEP: u8 = b'.';
/// Partial wildcard: matches exactly one token.
pub const PWC: u8 = b'*';
/// Full wildcard: matches one or more trailing tokens.
pub const FWC: u8 = b'>';

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r' | b'\x0c')
}

/// A subject fit for a subscription: wildcards allowed, `>` only as the last token.
pub fn is_valid_subject(subject: &[u8]) -> bool {
    if subject.is_empty() {
        return false;
    }
    let mut saw_fwc = false;
    for token in subject.split(|&b| b == TSEP) {
        if token.is_empty() || saw_fwc {
            return false;
        }
        if token.len() > 1 {
            if token.iter().any(|&b| is_space(b)) {
                return false;
            }
            continue;
        }
        match token[0] {
            FWC => saw_fwc = true,
            b if is_space(b) => return false,
            _ => {}
        }
    }
    true
}

/// A subject without wildcard tokens and without empty tokens. Whitespace is not checked
/// here, as in nats-server: the protocol parser has already split arguments on it.
pub fn is_valid_literal_subject(subject: &[u8]) -> bool {
    subject
        .split(|&b| b == TSEP)
        .all(|token| !matches!(token, [] | [PWC] | [FWC]))
}

/// Whether a (valid) subject contains a wildcard token.
pub fn has_wildcard(subject: &[u8]) -> bool {
    subject
        .split(|&b| b == TSEP)
        .any(|t| matches!(t, [PWC] | [FWC]))
}

/// Whether `subject` (a literal) is matched by `pattern` (which may hold wildcards).
pub fn matches(pattern: &[u8], subject: &[u8]) -> bool {
    let mut pattern_tokens = pattern.split(|&b| b == TSEP);
    let mut subject_tokens = subject.split(|&b| b == TSEP);
    loop {
        match (pattern_tokens.next(), subject_tokens.next()) {
            (None, None) => return true,
            (Some([FWC]), Some(_)) => return true,
            (Some([PWC]), Some(_)) => {}
            (Some(p), Some(s)) if p == s => {}
            _ => return false,
        }
    }
}

/// Number of tokens in a subject.
pub fn token_count(subject: &[u8]) -> usize {
    memchr::memchr_iter(TSEP, subject).count() + 1
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn validity_follows_nats_server() {
        for ok in [
            "foo", "foo.bar", "*", ">", "foo.*", "foo.>", "*.*.>", "foo*", "f>o", "$SYS.REQ",
        ] {
            assert!(is_valid_subject(ok.as_bytes()), "{ok}");
        }
        for bad in [
            "",
            ".",
            "foo.",
            ".foo",
            "foo..bar",
            ">.foo",
            "foo.>.bar",
            "foo bar",
            "a.\t",
        ] {
            assert!(!is_valid_subject(bad.as_bytes()), "{bad:?}");
        }
        assert!(is_valid_literal_subject(b"foo.bar"));
        assert!(is_valid_literal_subject(b"foo*.bar>"));
        assert!(!is_valid_literal_subject(b"foo.*"));
        assert!(!is_valid_literal_subject(b"foo.>"));
        assert!(!is_valid_literal_subject(b"foo..bar"));
    }

    #[test]
    fn matching() {
        assert!(matches(b"foo.*", b"foo.bar"));
        assert!(!matches(b"foo.*", b"foo.bar.baz"));
        assert!(matches(b"foo.>", b"foo.bar.baz"));
        assert!(!matches(b"foo.>", b"foo"));
        assert!(matches(b">", b"foo"));
        assert!(matches(b"*.bar", b"foo.bar"));
        assert!(!matches(b"foo", b"foo.bar"));
        assert!(!matches(b"foo.bar", b"foo"));
        assert_eq!(token_count(b"a.b.c"), 3);
    }
}
