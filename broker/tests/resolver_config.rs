//! Account resolver configs that nats-server refuses are refused by natrix with the same
//! words (`-t`, positions left out).

mod common;

use std::path::PathBuf;

use common::{NATRIX, config_error, reference_binary};

#[test]
fn bad_resolver_configs_fail_like_nats_server() {
    // nats-server creates a resolver's `dir` while it parses: keep those under a tempdir.
    let tmp = tempfile::tempdir().expect("tempdir");
    let dir = tmp.path().join("jwt");
    let dir = dir.display();
    let kind_error = natrix_config::options::RESOLVER_KIND_ERROR;
    let cases: Vec<(String, String)> = vec![
        ("resolver: FOO".into(), kind_error.into()),
        (
            "resolver: 5".into(),
            "error parsing operator resolver, wrong type int64".into(),
        ),
        ("resolver { type: bogus }".into(), kind_error.into()),
        (
            "resolver { type: full }".into(),
            "dir has no value and needs to point to a directory\nmkdir : no such file or directory"
                .into(),
        ),
        (
            format!(
                "resolver {{ type: cache, dir: {dir:?}, interval: \"2m\", allow_delete: true, hard_delete: false }}"
            ),
            "CACHE does not accept sync\nCACHE does not accept allow_delete\nCACHE does not accept hard_delete"
                .into(),
        ),
        (
            format!("resolver {{ type: full, dir: {dir:?}, ttl: \"2m\", hard_delete: true }}"),
            "FULL does not accept ttl\nhard_delete has no effect without delete".into(),
        ),
        (
            format!("resolver {{ type: full, dir: {dir:?}, interval: \"abc\" }}"),
            "time: invalid duration \"abc\"".into(),
        ),
        (
            format!("resolver {{ type: full, dir: {dir:?}, limit: \"5\" }}"),
            "interface conversion: interface {} is string, not int64".into(),
        ),
        (
            format!("resolver {{ type: full, dir: {dir:?}, timeout: \"0s\" }}"),
            "Fetch timeout 0s is too smal".into(),
        ),
        (
            "resolver_preload: 5".into(),
            "preload should be a map of account_public_key:account_jwt".into(),
        ),
        (
            "resolver_preload { A: 5 }".into(),
            "preload map value should be a string JWT".into(),
        ),
        (
            "resolver_preload { A: \"xyz\" }".into(),
            "invalid account JWT".into(),
        ),
        (
            "operator: \"/nonexistent/op.jwt\"".into(),
            "error parsing operator JWT: open /nonexistent/op.jwt: no such file or directory"
                .into(),
        ),
        (
            "operator: eyJhbGc".into(),
            "error parsing operator JWT: expected 3 chunks".into(),
        ),
    ];
    let mut bins = vec![PathBuf::from(NATRIX)];
    bins.extend(reference_binary());
    for (conf, want) in &cases {
        for bin in &bins {
            assert_eq!(
                config_error(bin, conf),
                *want,
                "{} with {conf}",
                bin.display()
            );
        }
    }
}
