//! `/accountz` (the accounts, or one account's detail) and `/accstatz` (per-account
//! traffic).

use std::collections::BTreeMap;

use serde::Serialize;

use super::Reply;
use super::format::GoTime;
use super::query::{Query, QueryError};
use super::subsz::SublistStatz;
use crate::account::Account;
use crate::server::Server;

#[derive(Debug, Serialize)]
struct AccountList {
    server_id: String,
    now: GoTime,
    system_account: String,
    accounts: Vec<String>,
}

fn is_false(b: &bool) -> bool {
    !*b
}

#[derive(Debug, Serialize)]
struct AccountDetail {
    account_name: String,
    update_time: GoTime,
    #[serde(skip_serializing_if = "is_false")]
    is_system: bool,
    expired: bool,
    complete: bool,
    jetstream_enabled: bool,
    leafnode_connections: usize,
    client_connections: usize,
    subscriptions: u64,
    /// Source subject → destinations, as nats-server's `ExtMap` (sorted keys, left out
    /// when empty).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    mappings: BTreeMap<String, Vec<MapDest>>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    exports: Vec<serde_json::Value>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    imports: Vec<serde_json::Value>,
    name_tag: String,
    sublist_stats: SublistStatz,
}

/// One mapping destination in `/accountz` (nats-server's `MapDest`): the weights are
/// cumulative and the remainder destination is listed, as nats-server stores them.
#[derive(Debug, Serialize)]
struct MapDest {
    subject: String,
    weight: u8,
    #[serde(skip_serializing_if = "String::is_empty")]
    cluster: String,
}

fn mappings_of(acc: &Account) -> BTreeMap<String, Vec<MapDest>> {
    acc.mappings()
        .iter()
        .map(|m| {
            let dests = m
                .destinations()
                .map(|d| MapDest {
                    subject: d.subject,
                    weight: d.weight,
                    cluster: d.cluster,
                })
                .collect();
            (m.source().to_owned(), dests)
        })
        .collect()
}

/// An account's exports as nats-server's `ExtExport` shows them: services first, then
/// streams, each by subject (nats-server walks maps, so its order varies).
fn exports_of(d: &crate::imports::Declared, account: &str) -> Vec<serde_json::Value> {
    use natrix_config::options::ExportKind;
    let mut list: Vec<&natrix_config::options::Export> = d.exports_of(account).collect();
    list.sort_by(|a, b| {
        (a.kind == ExportKind::Stream, &a.subject).cmp(&(b.kind == ExportKind::Stream, &b.subject))
    });
    list.into_iter()
        .map(|e| {
            let mut v = serde_json::json!({ "subject": e.subject });
            match e.kind {
                ExportKind::Service => {
                    v["type"] = "service".into();
                    v["response_type"] = e.response_type.as_str().into();
                    if let Some(l) = &e.latency {
                        v["service_latency"] = serde_json::json!({
                            "sampling": if l.sampling == 0 { "headers".into() } else { serde_json::Value::from(l.sampling) },
                            "results": l.subject,
                        });
                    }
                }
                ExportKind::Stream => v["type"] = "stream".into(),
            }
            if let Some(accounts) = e.accounts.as_ref().filter(|a| !a.is_empty()) {
                v["approved_accounts"] = accounts.clone().into();
            }
            v
        })
        .collect()
}

/// An account's imports as nats-server's `ExtImport` shows them: streams first, then
/// services.
fn imports_of(d: &crate::imports::Declared, account: &str) -> Vec<serde_json::Value> {
    use natrix_config::options::ExportKind;
    let mut list: Vec<&natrix_config::options::Import> = d.imports_of(account).collect();
    list.sort_by_key(|i| i.kind == ExportKind::Service);
    list.into_iter()
        .map(|i| {
            let local = i.local_subject();
            let mut v = serde_json::json!({
                "subject": i.subject,
                "account": i.account,
                "local_subject": local,
                "invalid": false,
                "share": i.share,
                "tracking": false,
            });
            match i.kind {
                ExportKind::Service => {
                    v["type"] = "service".into();
                    v["to"] = local.into();
                }
                ExportKind::Stream => v["type"] = "stream".into(),
            }
            v
        })
        .collect()
}

#[derive(Debug, Serialize)]
struct AccountInfo {
    server_id: String,
    now: GoTime,
    system_account: String,
    account_detail: AccountDetail,
}

/// Builds `/accountz`: the account names, or with `acc` that account's detail.
pub fn accountz(server: &Server, q: &Query) -> Result<Reply, QueryError> {
    let system_account = server.sys_account.name().to_owned();
    let Some(name) = q.get("acc") else {
        return Ok(Reply::json(&AccountList {
            server_id: server.id().to_owned(),
            now: GoTime::now(),
            system_account,
            accounts: server
                .all_accounts()
                .iter()
                .map(|a| a.name().to_owned())
                .collect(),
        }));
    };
    let Some(acc) = server.account(name) else {
        return Err(QueryError::Other(format!("Account {name} does not exist")));
    };
    let (opts, _) = server.options();
    let declared = crate::imports::declared(server, &opts.config);
    Ok(Reply::json(&AccountInfo {
        server_id: server.id().to_owned(),
        now: GoTime::now(),
        system_account,
        account_detail: AccountDetail {
            account_name: acc.name().to_owned(),
            update_time: GoTime::of(acc.created()),
            is_system: std::ptr::eq(&*acc, &*server.sys_account),
            expired: false,
            complete: true,
            jetstream_enabled: server
                .jetstream()
                .is_some_and(|js| js.account_enabled(acc.name())),
            leafnode_connections: server
                .leafnodes()
                .map_or(0, |l| l.num_leafs_for(acc.name())),
            client_connections: acc.num_clients(),
            subscriptions: acc.sublist.count(),
            mappings: mappings_of(&acc),
            exports: exports_of(&declared, acc.name()),
            imports: imports_of(&declared, acc.name()),
            name_tag: acc.name().to_owned(),
            sublist_stats: SublistStatz::of(&[&acc]),
        },
    }))
}

#[derive(Debug, Serialize, Default)]
pub struct MsgBytes {
    pub msgs: u64,
    pub bytes: u64,
}

#[derive(Debug, Serialize, Default)]
pub struct DataStats {
    pub msgs: u64,
    pub bytes: u64,
    pub gateways: MsgBytes,
    pub routes: MsgBytes,
    pub leafs: MsgBytes,
}

#[derive(Debug, Serialize)]
pub struct AccountStat {
    pub acc: String,
    pub name: String,
    pub conns: usize,
    pub leafnodes: usize,
    pub total_conns: usize,
    pub num_subscriptions: u64,
    pub sent: DataStats,
    pub received: DataStats,
    pub slow_consumers: u64,
}

#[derive(Debug, Serialize)]
pub struct AccStatz {
    pub server_id: String,
    pub now: GoTime,
    pub account_statz: Vec<AccountStat>,
}

/// One account's traffic.
pub fn account_stat(acc: &Account) -> AccountStat {
    use std::sync::atomic::Ordering::Relaxed;
    let conns = acc.num_clients();
    let st = &acc.stats;
    let pick = |a: &std::sync::atomic::AtomicU64| a.load(Relaxed);
    AccountStat {
        acc: acc.name().to_owned(),
        name: acc.name().to_owned(),
        conns,
        leafnodes: 0,
        total_conns: conns,
        num_subscriptions: acc.sublist.count(),
        sent: DataStats {
            msgs: pick(&st.out_msgs),
            bytes: pick(&st.out_bytes),
            ..DataStats::default()
        },
        received: DataStats {
            msgs: pick(&st.in_msgs),
            bytes: pick(&st.in_bytes),
            ..DataStats::default()
        },
        slow_consumers: pick(&st.slow_consumers),
    }
}

/// Builds `/accstatz`: accounts with local connections, or all of them with `unused`.
pub fn accstatz(server: &Server, q: &Query) -> Result<AccStatz, QueryError> {
    let unused = q.bool("unused")?;
    let filter = q.get("accounts");
    let account_statz = server
        .all_accounts()
        .iter()
        .filter(|a| filter.is_none_or(|f| f.split(',').any(|n| n == a.name())))
        .map(|a| account_stat(a))
        .filter(|s| unused || s.conns > 0)
        .collect();
    Ok(AccStatz {
        server_id: server.id().to_owned(),
        now: GoTime::now(),
        account_statz,
    })
}
