//! Subject transforms as streams use them (`republish`, `subject_transform`, source
//! transforms), in nats-server's full transform language from `natrix-transform`:
//! wildcards (`{{wildcard(n)}}`, `$n`, `>`), partition, split, slice, left, right and
//! random.

/// The destination subject for `subject` (which must match `src`), or `None` if the
/// transform is not valid (for example, the destination names a wildcard the source
/// does not have).
pub fn apply(src: &str, dest: &str, subject: &str) -> Option<String> {
    let tr = natrix_transform::SubjectTransform::new(src, dest).ok()?;
    String::from_utf8(tr.transform_subject(subject.as_bytes())).ok()
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

    #[test]
    fn mapping_functions() {
        assert_eq!(
            apply("orders.*", "o.{{splitFromLeft(1,2)}}", "orders.eu42").as_deref(),
            Some("o.eu.42")
        );
        assert_eq!(
            apply("orders.*", "o.{{partition(1,1)}}.$1", "orders.x").as_deref(),
            Some("o.0.x")
        );
    }
}
