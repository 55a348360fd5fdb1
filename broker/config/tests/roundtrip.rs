//! Property tests: rendering a value tree and parsing it back gives the same tree, and the
//! parser never panics on arbitrary text.

use natrix_config::conf::{self, DateTime, Map, MemoryLoader, Pos, Spanned, Value, render_map};
use proptest::prelude::*;

fn pos() -> Pos {
    Pos::new("gen", 1, 1)
}

fn key() -> impl Strategy<Value = String> {
    prop_oneof![
        8 => "[a-zA-Z_][a-zA-Z0-9_.-]{0,10}",
        // Keys that need quoting: spaces, separators, keywords, non-ASCII, one quote kind.
        1 => "[ a-z=:#{}\\[\\],;$'-]{0,6}",
        1 => "[ a-z=:#{}\\[\\],;$\"-]{0,6}",
        1 => Just("include".to_string()),
        1 => Just("INCLUDE".to_string()),
        1 => "\\PC{1,4}",
    ]
    // Keys cannot contain escapes: one with both quote kinds (or a NUL) is unwritable.
    .prop_filter("representable key", |k| {
        let both_quotes = k.contains('"') && k.contains('\'');
        !both_quotes && !k.contains('\0')
    })
}

fn datetime() -> impl Strategy<Value = DateTime> {
    (
        0u16..=9999,
        1u8..=12,
        1u8..=28,
        0u8..=23,
        0u8..=59,
        0u8..=59,
    )
        .prop_map(|(year, month, day, hour, minute, second)| DateTime {
            year,
            month,
            day,
            hour,
            minute,
            second,
        })
}

fn scalar() -> impl Strategy<Value = Value> {
    prop_oneof![
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::Int),
        prop_oneof![
            any::<f64>().prop_filter("finite", |f| f.is_finite()),
            -1e6f64..1e6,
        ]
        .prop_map(Value::Float),
        any::<String>().prop_map(Value::String),
        // Strings that look like other things must stay strings.
        prop_oneof![
            Just("true"),
            Just("2m"),
            Just("$VAR"),
            Just("1.2.3.4:5"),
            Just("include x"),
            Just("]"),
            Just("\\x41"),
            Just("(\n)\n"),
            Just("# not a comment"),
        ]
        .prop_map(|s| Value::String(s.to_string())),
        datetime().prop_map(Value::DateTime),
    ]
}

fn map_of(entries: Vec<(String, Value)>) -> Map {
    let mut m = Map::new();
    for (k, v) in entries {
        m.insert(k, pos(), Spanned::new(v, pos()));
    }
    m
}

fn value() -> impl Strategy<Value = Value> {
    scalar().prop_recursive(4, 48, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(|items| {
                Value::Array(items.into_iter().map(|v| Spanned::new(v, pos())).collect())
            }),
            prop::collection::vec((key(), inner), 0..6)
                .prop_map(|entries| Value::Map(map_of(entries))),
        ]
    })
}

fn document() -> impl Strategy<Value = Map> {
    prop::collection::vec((key(), value()), 0..8).prop_map(map_of)
}

proptest! {
    #![proptest_config(ProptestConfig {
        cases: 512,
        failure_persistence: None,
        ..ProptestConfig::default()
    })]

    #[test]
    fn render_then_parse_is_identity(map in document()) {
        let text = render_map(&map).expect("generated keys are representable");
        let doc = conf::parse_with(&text, "rt.conf", &MemoryLoader::new())
            .map_err(|e| TestCaseError::fail(format!("{e}\n--- text ---\n{text}")))?;
        prop_assert_eq!(&doc.root, &map, "text:\n{}", text);
        // Rendering is stable, and so is the digest.
        prop_assert_eq!(render_map(&doc.root).ok(), Some(text));
    }

    #[test]
    fn parser_never_panics_on_arbitrary_text(src in any::<String>()) {
        let _ = conf::parse_with(&src, "any.conf", &MemoryLoader::new());
    }

    #[test]
    fn parser_never_panics_on_config_like_text(
        parts in prop::collection::vec(
            prop_oneof![
                Just("a"), Just("include"), Just("\"q\""), Just("'s'"), Just("1"), Just("-2"),
                Just("3k"), Just("1.5"), Just("1.2.3"), Just("true"), Just("$a"), Just("$2a$1"),
                Just("2016-05-04T18:53:41Z"), Just("="), Just(":"), Just(" "), Just("\t"),
                Just("\n"), Just(","), Just(";"), Just("{"), Just("}"), Just("["), Just("]"),
                Just("("), Just("\n)\n"), Just("#c\n"), Just("//c\n"), Just("/"), Just("\\x4"),
                Just("\\"), Just("\""), Just("'"), Just("-"), Just("."), Just("é"), Just("\0"),
            ],
            0..40,
        )
    ) {
        let src: String = parts.concat();
        if let Err(e) = conf::parse_with(&src, "soup.conf", &MemoryLoader::new()) {
            // Every error that has a position points inside the input.
            if let Some(p) = &e.pos {
                prop_assert!(p.line as usize <= src.lines().count() + 1, "{e} for {src:?}");
            }
        }
    }
}

#[test]
fn rendering_refuses_what_cannot_be_written() {
    let mut m = Map::new();
    m.insert("both\"'quotes", pos(), Spanned::new(Value::Int(1), pos()));
    assert!(render_map(&m).is_err());
    let mut m = Map::new();
    m.insert("nan", pos(), Spanned::new(Value::Float(f64::NAN), pos()));
    assert!(render_map(&m).is_err());
}

#[test]
fn rendered_configs_load_as_options() {
    let (opts, _) =
        natrix_config::Options::from_str("port: 4333\ncluster { name: c, port: 6222 }", "a.conf")
            .unwrap();
    let doc = conf::parse_with(
        "port: 4333\ncluster { name: c, port: 6222 }",
        "a.conf",
        &MemoryLoader::new(),
    )
    .unwrap();
    let text = render_map(&doc.root).unwrap();
    let (again, _) = natrix_config::Options::from_str(&text, "b.conf").unwrap();
    assert_eq!(again.port, opts.port);
    assert_eq!(again.cluster, opts.cluster);
    assert_eq!(again.config_digest, opts.config_digest);
}
