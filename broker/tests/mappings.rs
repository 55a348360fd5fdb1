//! Subject mappings (`mappings {}` at the top and per account), each scenario run against
//! natrix-server and the reference nats-server with the same observable result: where
//! each publish lands, the split of a weighted mapping over 10,000 messages, what
//! `/accountz` lists, a reload that changes them, and the errors bad mappings get at
//! start.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use async_nats::{Client, Subscriber};
use common::{NATRIX, Proc, config_error, http_get, reference_binary, start};
use futures::StreamExt;

/// The binaries to compare: natrix, and nats-server when installed.
fn binaries() -> Vec<PathBuf> {
    let mut bins = vec![PathBuf::from(NATRIX)];
    bins.extend(reference_binary());
    bins
}

async fn connect(p: &Proc, user: Option<&str>) -> Client {
    let url = format!("nats://127.0.0.1:{}", p.port);
    let opts = match user {
        Some(u) => async_nats::ConnectOptions::with_user_and_password(u.into(), u.into()),
        None => async_nats::ConnectOptions::new(),
    };
    opts.connect(url).await.expect("connect")
}

async fn catch_all(nc: &Client) -> Subscriber {
    let sub = nc.subscribe(">").await.expect("subscribe");
    nc.flush().await.expect("flush");
    sub
}

/// Publishes on `subject` and returns the subject it arrived on, if it arrived.
async fn lands(nc: &Client, sub: &mut Subscriber, subject: &str) -> Option<String> {
    nc.publish(subject.to_owned(), "m".into())
        .await
        .expect("publish");
    nc.flush().await.expect("flush");
    match tokio::time::timeout(Duration::from_millis(400), sub.next()).await {
        Ok(Some(m)) => Some(m.subject.to_string()),
        _ => None,
    }
}

const FUNCTIONS: &str = r#"
mappings {
  "one": "uno"
  "orders.*.*": "out.{{wildcard(2)}}.{{ Wildcard(1) }}"
  "legacy.*.*": "leg.$2.$1"
  "fwc.>": "full.>"
  "mixed.*.>": "mix.$1.>"
  "part.*.*": "p.{{partition(5,1,2)}}.$1.$2"
  "whole.*": "w.{{partition(7)}}.$1"
  "sfl.*": "sfl.{{splitFromLeft(1,2)}}"
  "sfr.*": "sfr.{{SplitFromRight(1,2)}}"
  "slfl.*": "slfl.{{sliceFromLeft(1,2)}}"
  "slfr.*": "slfr.{{slicefromright(1,2)}}"
  "split.*": "split.{{split(1,-)}}"
  "left.*": "left.{{left(1,2)}}"
  "right.*": "right.{{Right(1,2)}}"
  maps_to_same: "$SYS_not_a_wildcard.x"
}
"#;

const FUNCTION_PUBLISHES: &[&str] = &[
    "one",
    "orders.eu.42",
    "legacy.a.b",
    "fwc.a.b.c",
    "mixed.a.b.c",
    "part.x.y",
    "part.alpha.beta",
    "whole.abc",
    "sfl.abcdef",
    "sfl.a",
    "sfr.abcdef",
    "slfl.abcde",
    "slfr.abcde",
    "split.-a--b-",
    "left.abcd",
    "right.abcd",
    "unmapped.x",
    "maps_to_same",
];

async fn function_run(bin: &Path) -> Vec<Option<String>> {
    let p = start(bin, FUNCTIONS, false);
    let nc = connect(&p, None).await;
    let mut sub = catch_all(&nc).await;
    let mut out = Vec::new();
    for s in FUNCTION_PUBLISHES {
        out.push(lands(&nc, &mut sub, s).await);
    }
    out
}

#[tokio::test]
async fn every_function_maps_like_nats_server() {
    let runs: Vec<_> = {
        let mut v = Vec::new();
        for bin in binaries() {
            v.push(function_run(&bin).await);
        }
        v
    };
    let natrix = &runs[0];
    // Spot checks that hold whatever the reference says.
    let at = |s: &str| natrix[FUNCTION_PUBLISHES.iter().position(|p| *p == s).unwrap()].clone();
    assert_eq!(at("one").as_deref(), Some("uno"));
    assert_eq!(at("orders.eu.42").as_deref(), Some("out.42.eu"));
    assert_eq!(at("fwc.a.b.c").as_deref(), Some("full.a.b.c"));
    assert_eq!(at("sfl.abcdef").as_deref(), Some("sfl.ab.cdef"));
    assert_eq!(at("slfr.abcde").as_deref(), Some("slfr.a.bc.de"));
    assert_eq!(at("split.-a--b-").as_deref(), Some("split.a.b"));
    assert_eq!(at("unmapped.x").as_deref(), Some("unmapped.x"));
    if let Some(reference) = runs.get(1) {
        for (i, s) in FUNCTION_PUBLISHES.iter().enumerate() {
            assert_eq!(natrix[i], reference[i], "publish to {s}");
        }
    }
}

/// `random(n)` and a literal source's `partition`: values nats-server picks by chance or
/// by how it stores mappings, checked on both servers alike.
#[tokio::test]
async fn random_and_literal_partition() {
    for bin in binaries() {
        let p = start(
            &bin,
            "mappings { \"lit\": \"lit.{{partition(10)}}\" }\n",
            false,
        );
        let nc = connect(&p, None).await;
        let mut sub = catch_all(&nc).await;
        // The only mapping, taken without splitting the subject: nothing is hashed,
        // FNV-1a's offset basis 2166136261 % 10 = 1.
        assert_eq!(
            lands(&nc, &mut sub, "lit").await.as_deref(),
            Some("lit.1"),
            "{}",
            bin.display()
        );
        drop(p);
        let p = start(
            &bin,
            "mappings { \"rnd.*\": \"rnd.{{random(3)}}.$1\" }\n",
            false,
        );
        let nc = connect(&p, None).await;
        let mut sub = catch_all(&nc).await;
        let mut seen = std::collections::BTreeSet::new();
        for _ in 0..60 {
            seen.insert(lands(&nc, &mut sub, "rnd.x").await.expect("arrives"));
        }
        let want: std::collections::BTreeSet<String> =
            ["rnd.0.x", "rnd.1.x", "rnd.2.x"].map(String::from).into();
        assert_eq!(seen, want, "{}", bin.display());
    }
}

const ACCOUNTS: &str = r#"
accounts {
  A {
    users [{user: a, password: a}]
    mappings { "x": "y", "in.*": "in.{{wildcard(1)}}.mapped" }
  }
  B {
    users [{user: b, password: b}]
  }
}
mappings { "x": "global" }
"#;

#[tokio::test]
async fn account_mappings_stay_in_their_account() {
    let mut runs = Vec::new();
    for bin in binaries() {
        let p = start(&bin, ACCOUNTS, false);
        let a = connect(&p, Some("a")).await;
        let b = connect(&p, Some("b")).await;
        let mut sa = catch_all(&a).await;
        let mut sb = catch_all(&b).await;
        let mut got = vec![
            lands(&a, &mut sa, "x").await,
            lands(&a, &mut sa, "in.q").await,
            lands(&b, &mut sb, "x").await,
            lands(&b, &mut sb, "in.q").await,
        ];
        // Nothing crossed into the other account.
        got.push(
            tokio::time::timeout(Duration::from_millis(200), sb.next())
                .await
                .ok()
                .flatten()
                .map(|m| m.subject.to_string()),
        );
        runs.push(got);
    }
    assert_eq!(
        runs[0],
        vec![
            Some("y".to_owned()),
            Some("in.q.mapped".to_owned()),
            Some("x".to_owned()),
            Some("in.q".to_owned()),
            None
        ]
    );
    if let Some(reference) = runs.get(1) {
        assert_eq!(&runs[0], reference);
    }
}

const WEIGHTED: &str = r#"
mappings {
  "w": [
    {destination: "w.a", weight: 60%},
    {destination: "w.b", weight: 30},
    {destination: "w.c", weight: 100%, cluster: "elsewhere"}
  ]
}
"#;

#[tokio::test]
async fn weighted_split_over_ten_thousand_messages() {
    const N: usize = 10_000;
    for bin in binaries() {
        let p = start(&bin, WEIGHTED, false);
        let nc = connect(&p, None).await;
        let mut sub = catch_all(&nc).await;
        for _ in 0..N {
            nc.publish("w", "m".into()).await.expect("publish");
        }
        nc.flush().await.expect("flush");
        let mut counts = std::collections::BTreeMap::<String, usize>::new();
        for _ in 0..N {
            let m = tokio::time::timeout(Duration::from_secs(10), sub.next())
                .await
                .expect("all arrive")
                .expect("open");
            *counts.entry(m.subject.to_string()).or_default() += 1;
        }
        // 60% and 30% as configured, the remaining 10% keeps its subject; the
        // destination scoped to another cluster is not used here.
        for (subject, share) in [("w.a", 0.6), ("w.b", 0.3), ("w", 0.1)] {
            let got = counts.get(subject).copied().unwrap_or(0) as f64 / N as f64;
            assert!(
                (got - share).abs() < 0.025,
                "{}: {subject} got {got}, want {share}: {counts:?}",
                bin.display()
            );
        }
        assert_eq!(counts.len(), 3, "{counts:?}");
    }
}

#[tokio::test]
async fn accountz_lists_mappings_like_nats_server() {
    // The weighted mapping above plus a plain one.
    let conf = r#"
mappings {
  "w": [
    {destination: "w.a", weight: 60%},
    {destination: "w.b", weight: 30},
    {destination: "w.c", weight: 100%, cluster: "elsewhere"}
  ]
  "plain.*": "p.$1"
}
"#;
    let mut shown = Vec::new();
    for bin in binaries() {
        let p = start(&bin, conf, true);
        let reply = http_get(p.http_port.expect("monitor port"), "/accountz?acc=$G");
        let v = reply.json();
        shown.push(v["account_detail"]["mappings"].clone());
    }
    assert_eq!(
        shown[0],
        serde_json::json!({
            "plain.*": [{"subject": "p.$1", "weight": 100}],
            "w": [
                {"subject": "w", "weight": 10},
                {"subject": "w.b", "weight": 40},
                {"subject": "w.a", "weight": 100},
                {"subject": "w.c", "weight": 100, "cluster": "elsewhere"}
            ]
        })
    );
    if let Some(reference) = shown.get(1) {
        assert_eq!(&shown[0], reference);
    }
}

#[tokio::test]
async fn reload_changes_mappings() {
    for bin in binaries() {
        let p = start(&bin, "mappings { \"r\": \"before\" }\n", false);
        let nc = connect(&p, None).await;
        let mut sub = catch_all(&nc).await;
        assert_eq!(lands(&nc, &mut sub, "r").await.as_deref(), Some("before"));
        std::fs::write(
            p.dir.path().join("server.conf"),
            "mappings { \"r\": \"after\", \"new.*\": \"n.$1\" }\n",
        )
        .expect("rewrite config");
        let hup = Command::new("kill")
            .args(["-HUP", &p.child.id().to_string()])
            .status()
            .expect("kill -HUP");
        assert!(hup.success());
        let mut now = None;
        for _ in 0..50 {
            now = lands(&nc, &mut sub, "r").await;
            if now.as_deref() == Some("after") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(now.as_deref(), Some("after"), "{}", bin.display());
        assert_eq!(lands(&nc, &mut sub, "new.x").await.as_deref(), Some("n.x"));
        // Removing the whole block unmaps, on natrix. nats-server 2.15.2 keeps the old
        // global mappings after such a reload (docs/compatibility.md), so this part runs
        // on natrix only.
        if bin != Path::new(NATRIX) {
            continue;
        }
        std::fs::write(p.dir.path().join("server.conf"), "\n").expect("rewrite config");
        Command::new("kill")
            .args(["-HUP", &p.child.id().to_string()])
            .status()
            .expect("kill -HUP");
        for _ in 0..50 {
            now = lands(&nc, &mut sub, "r").await;
            if now.as_deref() == Some("r") {
                break;
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
        assert_eq!(now.as_deref(), Some("r"));
    }
}

#[test]
fn bad_mappings_are_refused_at_start_with_nats_server_messages() {
    let cases: &[(&str, &str)] = &[
        (
            r#"mappings { "q.*": "q.{{foo(1)}}" }"#,
            r#"Error adding mapping for "q.*" to "q.{{foo(1)}}" : invalid mapping destination: unknown function in {{foo(1)}}"#,
        ),
        (
            r#"mappings { "q.*": "q.{{left(1)}}" }"#,
            r#"Error adding mapping for "q.*" to "q.{{left(1)}}" : invalid mapping destination: not enough arguments passed to the function in {{left(1)}}"#,
        ),
        (
            r#"mappings { "q.*": "q.{{wildcard(1,2)}}" }"#,
            r#"Error adding mapping for "q.*" to "q.{{wildcard(1,2)}}" : invalid mapping destination: too many arguments passed to the function in {{wildcard(1,2)}}"#,
        ),
        (
            r#"mappings { "q.*": "q.{{partition(x)}}" }"#,
            r#"Error adding mapping for "q.*" to "q.{{partition(x)}}" : invalid mapping destination: function argument is invalid or in the wrong format in {{partition(x)}}"#,
        ),
        (
            r#"mappings { "q": "q.$1" }"#,
            r#"Error adding mapping for "q" to "q.$1" : invalid mapping destination: wildcard index out of range in $1"#,
        ),
        (
            r#"mappings { "q.*": "q.{{wildcard(2)}}" }"#,
            r#"Error adding mapping for "q.*" to "q.{{wildcard(2)}}" : invalid mapping destination: wildcard index out of range in {{wildcard(2)}}: [2]"#,
        ),
        (
            r#"mappings { "q.>": "q" }"#,
            r#"Error adding mapping for "q.>" to "q" : invalid subject"#,
        ),
        (
            r#"mappings { "q.*": "q..x" }"#,
            r#"Error adding mapping for "q.*" to "q..x" : invalid mapping destination: invalid transform"#,
        ),
        (
            r#"mappings { "bad subj": "x" }"#,
            r#"Subject "bad subj" is not a valid subject"#,
        ),
        (
            "mappings {\n  q: [{destination: a, weight: 50}, {destination: b, weight: 51}]\n}",
            r#"Error adding mapping for "q" : total weight needs to be <= 100"#,
        ),
        (
            "mappings {\n  q: [{destination: a, weight: 50}, {destination: a, weight: 20}]\n}",
            r#"Error adding mapping for "q" : duplicate entry for "a""#,
        ),
        (
            "mappings {\n  q: [{destination: a, weight: 200}]\n}",
            "Invalid weight 200 for mapping destination",
        ),
        (
            "mappings {\n  q: [{destination: a, weight: \"abc\"}]\n}",
            r#"Invalid weight "abc" for mapping destination"#,
        ),
        (
            "mappings {\n  q: [{destination: a}]\n}",
            r#"Missing weight for mapping destination "a""#,
        ),
        (
            "mappings {\n  q: [{destination: a, weight: 1, foo: 2}]\n}",
            r#"Unknown field "foo" for mapping destination"#,
        ),
        (
            "mappings {\n  q: 5\n}",
            "Expected an entry for the mapping destination",
        ),
        (
            "accounts {\n  A {\n    mappings { \"q.*\": \"q.$2\" }\n  }\n}",
            r#"Error adding mapping for "q.*" to "q.$2" : invalid mapping destination: wildcard index out of range in $2: [2]"#,
        ),
    ];
    for (conf, want) in cases {
        for bin in binaries() {
            assert_eq!(
                config_error(&bin, conf),
                *want,
                "{} with {conf}",
                bin.display()
            );
        }
    }
}
