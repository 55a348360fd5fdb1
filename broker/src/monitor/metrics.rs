//! `/metrics`: the Prometheus text format, served by the broker itself so no exporter
//! sidecar is needed.
//!
//! The `gnatsd_<endpoint>_<field>` series carry the names prometheus-nats-exporter gives
//! the same numbers (its default prefix, a `server_id` label), so dashboards built on
//! the exporter read natrix's own endpoint unchanged. `natrix_*` series add what the
//! JSON endpoints do not break down: per-account traffic and subscriptions.

use std::fmt::Write as _;

use serde::Serialize;
use serde_json::Value;

use super::Monitor;
use super::query::Query;
use super::{accountz, cluster, connz, jsz, subsz, varz};

/// Renders every series.
pub fn render(m: &Monitor) -> String {
    let server = m.server();
    let id = server.id();
    let mut out = String::with_capacity(8 * 1024);
    let q = Query::default();
    let v = varz::varz(m);
    for (key, value) in [
        ("server_id", v.server_id.as_str()),
        ("server_name", v.server_name.as_str()),
        ("version", v.version),
    ] {
        let metric = format!("gnatsd_varz_{key}");
        let _ = writeln!(out, "# HELP {metric} {key}");
        let _ = writeln!(out, "# TYPE {metric} gauge");
        let _ = writeln!(
            out,
            "{metric}{{server_id=\"{id}\",value=\"{}\"}} 1",
            escape_label(value)
        );
    }
    endpoint(&mut out, "varz", id, &v);
    if let Ok(c) = connz::connz(server, &q) {
        connz_totals(&mut out, id, &c);
    }
    if let Ok(s) = subsz::subsz(server, &q) {
        endpoint(&mut out, "subsz", id, &s);
    }
    endpoint(&mut out, "routez", id, &cluster::routez(server, false));
    endpoint(&mut out, "leafz", id, &cluster::leafz(server, false, None));
    endpoint(
        &mut out,
        "jsz",
        id,
        &jsz::jsz(server, &jsz::JszOptions::default()),
    );
    accounts(&mut out, server);
    out
}

/// One series per top-level number of an endpoint's JSON, as the exporter walks it.
fn endpoint<T: Serialize>(out: &mut String, name: &str, server_id: &str, value: &T) {
    let Ok(Value::Object(map)) = serde_json::to_value(value) else {
        return;
    };
    let mut keys: Vec<(&String, &Value)> = map.iter().collect();
    keys.sort_by(|a, b| a.0.cmp(b.0));
    for (key, v) in keys {
        let Some(n) = v.as_f64() else {
            continue;
        };
        // The exporter reports every endpoint number as a gauge.
        series(
            out,
            &format!("gnatsd_{name}_{key}"),
            "gauge",
            key,
            server_id,
            n,
        );
    }
}

fn series(out: &mut String, metric: &str, kind: &str, help: &str, server_id: &str, n: f64) {
    let _ = writeln!(out, "# HELP {metric} {help}");
    let _ = writeln!(out, "# TYPE {metric} {kind}");
    let _ = writeln!(out, "{metric}{{server_id=\"{server_id}\"}} {}", number(n));
}

/// The exporter's connz summary: the page's counts and sums over its connections.
fn connz_totals(out: &mut String, server_id: &str, c: &connz::Connz) {
    let sum = |f: fn(&connz::ConnInfo) -> u64| c.connections.iter().map(f).sum::<u64>() as f64;
    let rows: [(&str, &str, f64); 10] = [
        ("num_connections", "gauge", c.num_connections as f64),
        ("total", "gauge", c.total as f64),
        ("offset", "gauge", c.offset as f64),
        ("limit", "gauge", c.limit as f64),
        ("pending_bytes", "gauge", sum(|x| x.pending_bytes as u64)),
        ("subscriptions", "gauge", sum(|x| x.subscriptions as u64)),
        ("in_bytes", "counter", sum(|x| x.in_bytes)),
        ("out_bytes", "counter", sum(|x| x.out_bytes)),
        ("in_msgs", "counter", sum(|x| x.in_msgs)),
        ("out_msgs", "counter", sum(|x| x.out_msgs)),
    ];
    for (key, kind, n) in rows {
        series(out, &format!("gnatsd_connz_{key}"), kind, key, server_id, n);
    }
}

fn accounts(out: &mut String, server: &crate::server::Server) {
    let stats: Vec<accountz::AccountStat> = server
        .all_accounts()
        .iter()
        .map(|a| accountz::account_stat(a))
        .collect();
    type Pick = fn(&accountz::AccountStat) -> u64;
    let series: [(&str, &str, &str, Pick); 7] = [
        (
            "natrix_account_connections",
            "gauge",
            "client connections bound to the account",
            |s| s.conns as u64,
        ),
        (
            "natrix_account_subscriptions",
            "gauge",
            "subscriptions in the account",
            |s| s.num_subscriptions,
        ),
        (
            "natrix_account_received_msgs_total",
            "counter",
            "messages published into the account",
            |s| s.received.msgs,
        ),
        (
            "natrix_account_received_bytes_total",
            "counter",
            "payload bytes published into the account",
            |s| s.received.bytes,
        ),
        (
            "natrix_account_sent_msgs_total",
            "counter",
            "messages delivered from the account",
            |s| s.sent.msgs,
        ),
        (
            "natrix_account_sent_bytes_total",
            "counter",
            "payload bytes delivered from the account",
            |s| s.sent.bytes,
        ),
        (
            "natrix_account_slow_consumers_total",
            "counter",
            "slow consumers closed in the account",
            |s| s.slow_consumers,
        ),
    ];
    for (metric, kind, help, pick) in series {
        let _ = writeln!(out, "# HELP {metric} {help}");
        let _ = writeln!(out, "# TYPE {metric} {kind}");
        for s in &stats {
            let _ = writeln!(
                out,
                "{metric}{{server_id=\"{}\",account=\"{}\"}} {}",
                server.id(),
                escape_label(&s.acc),
                pick(s)
            );
        }
    }
}

/// Prometheus label escaping: backslash, double quote and newline.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

fn number(n: f64) -> String {
    if n.fract() == 0.0 && n.abs() < 1e15 {
        format!("{n:.0}")
    } else {
        format!("{n}")
    }
}
