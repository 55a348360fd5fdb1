//! The subject checks transforms need, with nats-server's exact rules (which differ in
//! small ways: `subjectInfo` ignores whitespace, `IsValidSubject` does not).

/// What a transform's source or destination looks like (nats-server's `subjectInfo`):
/// `None` when not a valid subject (empty tokens, anything after `>`), else the number
/// of `*` tokens and whether it ends in `>`. Whitespace is not checked here.
pub(crate) fn subject_info(subject: &str) -> Option<(usize, bool)> {
    if subject.is_empty() {
        return None;
    }
    let (mut pwcs, mut fwc) = (0, false);
    for t in subject.split('.') {
        if t.is_empty() || fwc {
            return None;
        }
        match t {
            "*" => pwcs += 1,
            ">" => fwc = true,
            _ => {}
        }
    }
    Some((pwcs, fwc))
}

const WHITESPACE: [char; 5] = ['\t', '\n', '\x0c', '\r', ' '];

/// nats-server's `IsValidSubject`: non-empty tokens, no whitespace, nothing after `>`.
/// Wildcards are allowed.
pub fn is_valid_subject(subject: &str) -> bool {
    if subject.is_empty() {
        return false;
    }
    let mut fwc = false;
    for t in subject.split('.') {
        if t.is_empty() || fwc || t.contains(WHITESPACE) {
            return false;
        }
        if t == ">" {
            fwc = true;
        }
    }
    true
}

/// Splits a subject into its tokens, into `out` (cleared first) so that a caller on a
/// hot path can reuse the buffer.
pub(crate) fn tokenize<'a>(subject: &'a [u8], out: &mut Vec<&'a [u8]>) {
    out.clear();
    out.extend(subject.split(|&b| b == b'.'));
}

/// Whether the tokens are a valid literal subject (nats-server's `isValidLiteralSubject`).
pub(crate) fn is_valid_literal(tokens: &[&[u8]]) -> bool {
    tokens
        .iter()
        .all(|&t| !t.is_empty() && t != b"*" && t != b">")
}

/// Whether everything the (possibly wildcarded) `tokens` match is matched by `test`
/// (nats-server's `isSubsetMatchTokenized`). For a literal subject this is plain
/// matching. As in nats-server, a test token counts as `*` when it starts with `*`.
pub fn subset_match(tokens: &[&[u8]], test: &str) -> bool {
    let mut n = 0;
    for (i, t2) in test.split('.').enumerate() {
        n = i + 1;
        let Some(t1) = tokens.get(i) else {
            return false;
        };
        let t2 = t2.as_bytes();
        if t2.is_empty() {
            return false;
        }
        if t2 == b">" {
            return true;
        }
        if t1.is_empty() || *t1 == b">" {
            return false;
        }
        if *t1 == b"*" {
            if t2 != b"*" {
                return false;
            }
            continue;
        }
        if t2[0] != b'*' && *t1 != t2 {
            return false;
        }
    }
    tokens.len() == n
}

#[cfg(test)]
mod tests {
    use super::*;

    fn toks(s: &str) -> Vec<&[u8]> {
        s.as_bytes().split(|&b| b == b'.').collect()
    }

    #[test]
    fn info_counts_wildcards() {
        assert_eq!(subject_info("a.*.b.*"), Some((2, false)));
        assert_eq!(subject_info("a.>"), Some((0, true)));
        assert_eq!(subject_info("a.>.b"), None);
        assert_eq!(subject_info("a..b"), None);
        assert_eq!(subject_info(""), None);
        // Whitespace is the caller's business here, as in nats-server.
        assert_eq!(subject_info("a b"), Some((0, false)));
    }

    #[test]
    fn valid_subjects() {
        assert!(is_valid_subject("a.*.>"));
        assert!(!is_valid_subject("a b"));
        assert!(!is_valid_subject("a.>.b"));
        assert!(!is_valid_subject("a."));
    }

    #[test]
    fn subset_matching() {
        assert!(subset_match(&toks("a.b"), "a.*"));
        assert!(subset_match(&toks("a.b.c"), "a.>"));
        assert!(!subset_match(&toks("a"), "a.>"));
        assert!(!subset_match(&toks("a.b"), "a"));
        assert!(!subset_match(&toks("a.b.c"), "a.*"));
        assert!(subset_match(&toks("a.*"), "*.*"));
        assert!(!subset_match(&toks("a.*"), "a.b"));
        assert!(is_valid_literal(&toks("a.b")));
        assert!(!is_valid_literal(&toks("a.*")));
        assert!(!is_valid_literal(&toks("a..b")));
    }
}
