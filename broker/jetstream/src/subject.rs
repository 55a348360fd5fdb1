//! Subjects as JetStream uses them: stream subjects, consumer filters and purge filters
//! may hold `*` (one token) and `>` (one or more trailing tokens).

/// Whether `subject` (a literal) matches `filter` (which may hold wildcards).
pub fn matches(filter: &str, subject: &str) -> bool {
    let mut f = filter.split('.');
    let mut s = subject.split('.');
    loop {
        match (f.next(), s.next()) {
            (Some(">"), Some(_)) => return true,
            (Some("*"), Some(_)) => {}
            (Some(a), Some(b)) if a == b => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether `filter` holds a wildcard token.
pub fn has_wildcard(filter: &str) -> bool {
    filter.split('.').any(|t| t == "*" || t == ">")
}

/// Whether some subject could match both `a` and `b` (nats-server's
/// `SubjectsCollide`): used for overlapping stream subjects and filters.
pub fn collide(a: &str, b: &str) -> bool {
    let mut x = a.split('.');
    let mut y = b.split('.');
    loop {
        match (x.next(), y.next()) {
            (Some(">"), Some(_)) | (Some(_), Some(">")) => return true,
            (Some("*"), Some(_)) | (Some(_), Some("*")) => {}
            (Some(p), Some(q)) if p == q => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// Whether every subject `inner` matches is also matched by `outer` (`outer` is a
/// superset of `inner`).
pub fn subset_of(inner: &str, outer: &str) -> bool {
    let mut i = inner.split('.');
    let mut o = outer.split('.');
    loop {
        match (i.next(), o.next()) {
            (Some(_), Some(">")) => return true,
            (Some(">"), Some(_)) => return false,
            (Some(_), Some("*")) => {}
            (Some("*"), Some(_)) => return false,
            (Some(p), Some(q)) if p == q => {}
            (None, None) => return true,
            _ => return false,
        }
    }
}

/// A valid subject or filter: non-empty tokens without whitespace, `>` only last.
pub fn is_valid_filter(s: &str) -> bool {
    if s.is_empty() {
        return false;
    }
    let mut tokens = s.split('.').peekable();
    while let Some(t) = tokens.next() {
        if t.is_empty() || t.bytes().any(|b| b.is_ascii_whitespace()) {
            return false;
        }
        if t == ">" && tokens.peek().is_some() {
            return false;
        }
        if t.len() > 1 && (t.contains('>') || t.contains('*')) {
            // "foo*" is a literal token in NATS; only a whole-token wildcard is one.
            continue;
        }
    }
    true
}

/// A valid literal subject (a filter without wildcards).
pub fn is_valid_literal(s: &str) -> bool {
    is_valid_filter(s) && !has_wildcard(s)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matching() {
        assert!(matches("foo.*", "foo.bar"));
        assert!(!matches("foo.*", "foo.bar.baz"));
        assert!(matches("foo.>", "foo.bar.baz"));
        assert!(!matches("foo.>", "foo"));
        assert!(matches(">", "a"));
        assert!(matches("a.b", "a.b"));
        assert!(!matches("a.b", "a.c"));
    }

    #[test]
    fn collisions_and_subsets() {
        assert!(collide("foo.*", "foo.bar"));
        assert!(collide("foo.>", "*.bar.baz"));
        assert!(!collide("foo.*", "bar.*"));
        assert!(!collide("foo.*", "foo.bar.baz"));
        assert!(subset_of("foo.bar", "foo.*"));
        assert!(subset_of("foo.*", "foo.>"));
        assert!(!subset_of("foo.>", "foo.*"));
        assert!(!subset_of("foo.*", "foo.bar"));
    }

    #[test]
    fn validity() {
        assert!(is_valid_filter("foo.>"));
        assert!(!is_valid_filter("foo.>.bar"));
        assert!(!is_valid_filter("foo..bar"));
        assert!(!is_valid_filter(""));
        assert!(!is_valid_filter("foo bar"));
        assert!(is_valid_literal("foo.bar"));
        assert!(!is_valid_literal("foo.*"));
    }
}
