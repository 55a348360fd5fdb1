//! Bad configs: every error says `file:line:col: <nats-server's wording>`.

mod common;

use common::{FsWithEnv, load_err, load_ok, load_str};
use natrix_config::ConfigError;
use natrix_config::conf::{self, ConfErrorKind, MemoryLoader};
use natrix_config::options::{DiagnosticKind, Options, Strictness};

#[test]
fn type_errors_use_nats_server_wording_at_the_key() {
    assert_eq!(
        load_err("port: \"abc\""),
        "test.conf:1:1: interface conversion: interface {} is string, not int64"
    );
    assert_eq!(
        load_err("debug: true\n  max_payload: yes"),
        "test.conf:2:3: interface conversion: interface {} is bool, not int64"
    );
    assert_eq!(
        load_err("cluster {\n  name: 5\n}"),
        "test.conf:2:3: interface conversion: interface {} is int64, not string"
    );
}

#[test]
fn syntax_errors_point_at_the_offending_character() {
    // Like nats-server, a number directly followed by ']' is read as a bare string "3]".
    let e = load_err("a = [1, 2, 3]");
    assert!(e.starts_with("test.conf:1:"), "{e}");
    assert!(
        e.contains("Expected an array value terminator \",\" or an array terminator \"]\""),
        "{e}"
    );
    assert_eq!(
        load_err("port: 4222 debug: true"),
        "test.conf:1:12: Expected a top-level value to end with a new line, comment or EOF, but got 'd' instead."
    );
    assert_eq!(
        load_err("a: \"\\q\""),
        "test.conf:1:6: Invalid escape character 'q'. Only the following escape characters are allowed: \\xXX, \\t, \\n, \\r, \\\", \\\\."
    );
    assert_eq!(load_err("port"), "test.conf:1:5: config is invalid");
}

#[test]
fn a_key_without_a_value_is_an_error() {
    // nats-server would give the map to the wrong key here.
    assert_eq!(
        load_err("x {\n  a\n}"),
        "test.conf:2:3: config is invalid: key 'a' has no value"
    );
}

#[test]
fn bad_size_suffixes_and_overflow_are_errors() {
    assert_eq!(
        load_err("max_payload: 1kbb"),
        "test.conf:1:14: expected integer, but got '1kbb'"
    );
    assert_eq!(
        load_err("max_pending: 99999999999999999999"),
        "test.conf:1:14: integer '99999999999999999999' is out of the range"
    );
    assert_eq!(
        load_err("max_pending: 9223372036854775807k"),
        "test.conf:1:14: integer '9223372036854775807k' is out of the range"
    );
}

#[test]
fn unknown_fields_are_errors_like_nats_server_or_warnings_when_lenient() {
    assert_eq!(
        load_err("port: 4222\nbogus: 1"),
        "test.conf:2:1: unknown field \"bogus\""
    );
    assert_eq!(
        load_err("cluster {\n  port: 6222\n  bogus: 1\n}"),
        "test.conf:3:3: unknown field \"bogus\""
    );
    let loader = FsWithEnv::new(&[]);
    let (o, warnings) = Options::from_str_with(
        "port: 4333\nbogus: 1\njetstream { nope: 2 }",
        "test.conf",
        Strictness::Lenient,
        &loader,
    )
    .unwrap();
    assert_eq!(o.port, 4333);
    let texts: Vec<String> = warnings.iter().map(ToString::to_string).collect();
    assert_eq!(
        texts,
        [
            "test.conf:2:1: unknown field \"bogus\"",
            "test.conf:3:13: unknown field \"nope\""
        ]
    );
    assert!(
        warnings
            .iter()
            .all(|w| w.kind == DiagnosticKind::UnknownField)
    );
}

#[test]
fn variables_are_not_unknown_fields_but_unused_ones_are() {
    let o = load_ok("PORT_VAR = 4444\nport: $PORT_VAR");
    assert_eq!(o.port, 4444);
    assert_eq!(
        load_err("UNUSED = 1\nport: 4222"),
        "test.conf:1:1: unknown field \"UNUSED\""
    );
}

#[test]
fn every_error_is_reported_at_once() {
    let err = load_str("port: \"x\"\nmax_payload: \"y\"\nnope: 1").unwrap_err();
    let ConfigError::Invalid { errors, .. } = &err else {
        panic!("{err}");
    };
    assert_eq!(errors.len(), 3);
    assert_eq!(err.to_string().lines().count(), 3);
}

#[test]
fn duration_as_integer_is_a_warning_in_seconds() {
    let (o, warnings) = load_str("ping_interval: 60").unwrap();
    assert_eq!(o.ping_interval, std::time::Duration::from_secs(60));
    assert_eq!(
        warnings[0].to_string(),
        "test.conf:1:1: invalid use of field \"ping_interval\": ping_interval should be converted to a duration"
    );
    // The classic trap: an unquoted 2m is the integer 2,000,000 (seconds, with a warning).
    let (o, warnings) = load_str("write_deadline: 2m").unwrap();
    assert_eq!(o.write_deadline, std::time::Duration::from_secs(2_000_000));
    assert_eq!(warnings.len(), 1);
}

#[test]
fn option_specific_messages() {
    assert_eq!(
        load_err("lame_duck_duration: \"10s\""),
        "test.conf:1:1: invalid lame_duck_duration of 10s, minimum is 30 seconds"
    );
    assert_eq!(
        load_err("ping_interval: \"1d\""),
        "test.conf:1:1: error parsing ping_interval: time: unknown unit \"d\" in duration \"1d\""
    );
    assert_eq!(
        load_err("authorization {\n  user: a\n  password: b\n  token: c\n}"),
        "test.conf:1:1: Cannot have a user/pass and token"
    );
    assert_eq!(
        load_err("authorization { users: [ {user: a, permissions: {publish: \"a..b\"}} ] }"),
        "test.conf:1:50: subject \"a..b\" is not a valid subject"
    );
    assert_eq!(
        load_err("server_name: \"my server\""),
        "test.conf:1:1: server name cannot contain spaces"
    );
    assert_eq!(
        load_err("listen: \"no-port\""),
        "test.conf:1:1: could not parse address string \"no-port\""
    );
    assert_eq!(
        load_err("max_payload: 3GB"),
        "test.conf:1:1: max_payload value is too big"
    );
    assert_eq!(
        load_err("tls { cert_file: \"c.pem\" }"),
        "test.conf:1:1: missing 'key_file' in TLS configuration"
    );
}

#[test]
fn missing_include_is_an_error_at_the_include() {
    let dir = std::env::temp_dir();
    let name = dir.join("natrix-config-missing-include.conf");
    let text = "port: 4222\ninclude ./does-not-exist.conf\n";
    let e = Options::from_str_with(
        text,
        &name.to_string_lossy(),
        Strictness::Strict,
        &FsWithEnv::new(&[]),
    )
    .unwrap_err()
    .to_string();
    assert!(e.starts_with(&format!("{}:2:9: ", name.display())), "{e}");
    assert!(
        e.contains(
            "error parsing include file './does-not-exist.conf', error opening config file: open "
        ),
        "{e}"
    );
    assert!(
        e.ends_with("does-not-exist.conf: no such file or directory"),
        "{e}"
    );
}

#[test]
fn errors_inside_included_files_name_that_file() {
    let loader = MemoryLoader::new().with_file("/etc/natrix/limits.conf", "max_payload: \"big\"\n");
    let e = Options::from_str_with(
        "include limits.conf",
        "/etc/natrix/main.conf",
        Strictness::Strict,
        &loader,
    )
    .unwrap_err()
    .to_string();
    assert_eq!(
        e,
        "/etc/natrix/limits.conf:1:1: interface conversion: interface {} is string, not int64"
    );
}

#[test]
fn include_cycles_are_errors() {
    let loader = MemoryLoader::new()
        .with_file("/c/a.conf", "include b.conf\n")
        .with_file("/c/b.conf", "include ./a.conf\n");
    let e = conf::parse_file_with(std::path::Path::new("/c/a.conf"), &loader).unwrap_err();
    assert_eq!(e.kind, ConfErrorKind::Include);
    assert_eq!(
        e.to_string(),
        "/c/a.conf:1:9: error parsing include file 'b.conf', /c/b.conf:1:9: error parsing include file './a.conf', include cycle detected at '/c/a.conf'"
    );
    let self_include = MemoryLoader::new().with_file("/c/s.conf", "include s.conf\n");
    assert!(conf::parse_file_with(std::path::Path::new("/c/s.conf"), &self_include).is_err());
}

#[test]
fn variable_reference_cycles_through_the_environment_are_errors() {
    let loader = MemoryLoader::new().with_env("A", "$B").with_env("B", "$A");
    let e = conf::parse_with("port: $A", "test.conf", &loader).unwrap_err();
    assert_eq!(e.kind, ConfErrorKind::Variable);
    assert_eq!(
        e.to_string(),
        "test.conf:1:7: variable reference for 'A' could not be parsed: variable reference for 'B' could not be parsed: variable reference for 'A' could not be parsed: variable reference cycle for 'A'"
    );
    let self_ref = MemoryLoader::new().with_env("S", "$S");
    assert!(
        conf::parse_with("x: $S", "t.conf", &self_ref)
            .unwrap_err()
            .message
            .contains("variable reference cycle for 'S'")
    );
}

#[test]
fn unknown_variables_and_bad_environment_values() {
    let none = MemoryLoader::new();
    assert_eq!(
        conf::parse_with("a: $NOPE", "t.conf", &none)
            .unwrap_err()
            .to_string(),
        "t.conf:1:4: variable reference for 'NOPE' can not be found"
    );
    let bad = MemoryLoader::new().with_env("BAD", "two words");
    let e = conf::parse_with("a: $BAD", "t.conf", &bad).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("t.conf:1:4: variable reference for 'BAD' could not be parsed: "),
        "{e}"
    );
    // A variable defined later, or inside a sibling block, is not in scope.
    assert!(conf::parse_with("a { b: 1 }\nc: $b", "t.conf", &none).is_err());
}

#[test]
fn deep_nesting_is_refused_not_a_stack_overflow() {
    let deep = format!("a = {}{}", "[".repeat(10_000), "]".repeat(10_000));
    let e = conf::parse_with(&deep, "t.conf", &MemoryLoader::new()).unwrap_err();
    assert_eq!(e.kind, ConfErrorKind::Limit);
}

#[test]
fn exponential_variable_expansion_is_capped() {
    let mut src = String::from("v0 = [1, 2 ]\n");
    for i in 1..40 {
        src.push_str(&format!("v{i} = [$v{}, $v{} ]\n", i - 1, i - 1));
    }
    let e = conf::parse_with(&src, "t.conf", &MemoryLoader::new()).unwrap_err();
    assert_eq!(e.kind, ConfErrorKind::Limit);
}

#[test]
fn truncated_configs_are_refused() {
    // nats-server silently drops an array left open at the end of the input.
    let e = conf::parse_with("a {\n  b: ['", "t.conf", &MemoryLoader::new()).unwrap_err();
    assert!(e.to_string().contains("config is invalid"), "{e}");
}

#[test]
fn missing_config_file() {
    let e = Options::from_file("/nonexistent/natrix.conf").unwrap_err();
    assert_eq!(
        e.to_string(),
        "error opening config file: open /nonexistent/natrix.conf: no such file or directory"
    );
}

#[test]
fn large_configs_parse_in_linear_time() {
    // One long line with many keys, and one map with many keys: both used to be quadratic
    // traps (column counting from the line start, duplicate-key search).
    let mut one_line = String::from("big { ");
    for i in 0..50_000 {
        one_line.push_str(&format!("k{i}: {i}, "));
    }
    one_line.push('}');
    let started = std::time::Instant::now();
    let doc = conf::parse_with(&one_line, "big.conf", &MemoryLoader::new()).unwrap();
    let big = doc.root.get("big").unwrap().value.as_map().unwrap();
    assert_eq!(big.len(), 50_000);
    assert_eq!(big.get("k49999").unwrap().value.as_int(), Some(49_999));
    assert!(
        started.elapsed() < std::time::Duration::from_secs(20),
        "took {:?}",
        started.elapsed()
    );
}

#[test]
fn account_jetstream_settings() {
    let o = load_ok(
        "accounts {\n  A { jetstream: enabled }\n  B { jetstream: { max_mem: 1G, max_file: 10M, max_streams: 5, max_bytes_required: true } }\n  C { jetstream: disabled }\n  D {}\n}",
    );
    assert_eq!(o.account_jetstream.len(), 3);
    let get = |n: &str| {
        o.account_jetstream
            .iter()
            .find(|(a, _)| a == n)
            .map(|(_, l)| l.clone())
    };
    assert_eq!(
        get("A"),
        Some(Some(natrix_config::options::AccountJsLimits::default()))
    );
    let b = get("B").flatten().expect("B has limits");
    assert_eq!(
        (
            b.max_memory,
            b.max_store,
            b.max_streams,
            b.max_bytes_required
        ),
        (1_000_000_000, 10_000_000, 5, true)
    );
    assert_eq!(get("C"), Some(None));
    assert_eq!(get("D"), None);
    assert!(
        load_err("accounts {\n  A { jetstream: { bogus: 1 } }\n}")
            .contains("Unknown key \"bogus\" in JetStream account limits")
    );
}
