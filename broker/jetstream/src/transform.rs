//! Subject transforms as streams use them (`republish`, `subject_transform`, source
//! transforms): a source filter with wildcards and a destination that places the
//! matched wildcard tokens with `{{wildcard(n)}}` (or the legacy `$n`), or keeps the
//! subject as it is with `>` in the same place.

/// The destination subject for `subject` (which must match `src`), or `None` if the
/// destination names a wildcard the source does not have.
pub fn apply(src: &str, dest: &str, subject: &str) -> Option<String> {
    let src_tokens: Vec<&str> = src.split('.').collect();
    let subj_tokens: Vec<&str> = subject.split('.').collect();
    // The values matched by each wildcard of `src`, in order (`>` takes the rest).
    let mut wild: Vec<String> = Vec::new();
    for (i, t) in src_tokens.iter().enumerate() {
        match *t {
            "*" => wild.push((*subj_tokens.get(i)?).to_owned()),
            ">" => wild.push(subj_tokens.get(i..)?.join(".")),
            _ => {}
        }
    }
    let mut out = Vec::new();
    for t in dest.split('.') {
        if let Some(n) = wildcard_index(t) {
            out.push(wild.get(n.checked_sub(1)?)?.clone());
        } else if t == ">" {
            // `foo.>` → `bar.>`: the tokens `>` matched in the source.
            let last = wild.last()?;
            out.push(last.clone());
        } else {
            out.push(t.to_owned());
        }
    }
    Some(out.join("."))
}

/// `{{wildcard(n)}}`, `{{ wildcard( n ) }}` or `$n`.
fn wildcard_index(token: &str) -> Option<usize> {
    if let Some(n) = token.strip_prefix('$') {
        return n.parse().ok();
    }
    let inner = token.strip_prefix("{{")?.strip_suffix("}}")?.trim();
    let args = inner.strip_prefix("wildcard")?.trim();
    args.strip_prefix('(')?
        .strip_suffix(')')?
        .trim()
        .parse()
        .ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transforms() {
        assert_eq!(apply(">", "copy.>", "a.b").as_deref(), Some("copy.a.b"));
        assert_eq!(
            apply(
                "orders.*.*",
                "out.{{wildcard(2)}}.{{wildcard(1)}}",
                "orders.eu.42"
            )
            .as_deref(),
            Some("out.42.eu")
        );
        assert_eq!(apply("a.*", "b.$1", "a.x").as_deref(), Some("b.x"));
        assert_eq!(apply("a.*", "b.$2", "a.x"), None);
        assert_eq!(apply("a.b", "c.d", "a.b").as_deref(), Some("c.d"));
    }
}
