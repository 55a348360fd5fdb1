//! `/connz`: open and recently closed client connections, with nats-server's sort
//! options, paging, filters and subscription detail.

use std::cmp::Reverse;
use std::time::SystemTime;

use serde::Serialize;

use super::format::{GoTime, between, uptime};
use super::query::{Query, QueryError};
use crate::server::{ClientView, ClosedClient, Server, SubView};

/// nats-server's `DefaultConnListSize`.
pub const DEFAULT_LIMIT: usize = 1024;

#[derive(Debug, Serialize)]
pub struct SubDetail {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account_tag: String,
    pub subject: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub qgroup: Option<String>,
    pub sid: String,
    pub msgs: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub max: u64,
    pub cid: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

impl SubDetail {
    pub fn of(s: &SubView, account: Option<&str>) -> Self {
        Self {
            account: account.unwrap_or_default().to_owned(),
            account_tag: account.unwrap_or_default().to_owned(),
            subject: String::from_utf8_lossy(&s.subject).into_owned(),
            qgroup: s
                .queue
                .as_ref()
                .map(|q| String::from_utf8_lossy(q).into_owned()),
            sid: String::from_utf8_lossy(&s.sid).into_owned(),
            msgs: s.msgs,
            max: s.max,
            cid: s.cid,
        }
    }
}

#[derive(Debug, Serialize)]
pub struct ConnInfo {
    pub cid: u64,
    pub kind: &'static str,
    #[serde(rename = "type")]
    pub kind_type: &'static str,
    pub ip: String,
    pub port: u16,
    pub start: GoTime,
    pub last_activity: GoTime,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub stop: Option<GoTime>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub reason: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rtt: String,
    pub uptime: String,
    pub idle: String,
    pub pending_bytes: usize,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    #[serde(skip_serializing_if = "is_zero")]
    pub stalls: u64,
    pub subscriptions: usize,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub lang: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub version: String,
    /// The MQTT client ID of a connection of the MQTT listener (nats-server's field).
    #[serde(skip_serializing_if = "String::is_empty")]
    pub mqtt_client: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tls_version: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub tls_cipher_suite: String,
    /// The client's certificates, with `auth`, while it is connected.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub tls_peer_certs: Vec<TlsPeerCert>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub authorized_user: String,
    /// Only for accounts other than `$G`, as nats-server shows it.
    #[serde(skip_serializing_if = "String::is_empty")]
    pub account: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list: Vec<String>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list_detail: Vec<SubDetail>,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name_tag: String,
    /// Sort keys that are not in the JSON.
    #[serde(skip)]
    sort_rtt: u64,
    #[serde(skip)]
    sort_idle: u64,
}

/// One certificate of a client's chain, as nats-server's `TLSPeerCert`.
#[derive(Debug, Serialize)]
pub struct TlsPeerCert {
    #[serde(skip_serializing_if = "String::is_empty")]
    pub subject: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub spki_sha256: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub cert_sha256: String,
}

#[derive(Debug, Serialize)]
pub struct Connz {
    pub server_id: String,
    pub now: GoTime,
    pub num_connections: usize,
    pub total: usize,
    pub offset: usize,
    pub limit: usize,
    pub connections: Vec<ConnInfo>,
}

/// Which connections a request asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConnState {
    Open,
    Closed,
    All,
}

/// nats-server's sort options.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SortBy {
    Cid,
    Start,
    Subs,
    Pending,
    OutMsgs,
    InMsgs,
    OutBytes,
    InBytes,
    Last,
    Idle,
    Uptime,
    Stop,
    Reason,
    Rtt,
}

impl SortBy {
    fn parse(s: &str) -> Option<Self> {
        Some(match s {
            "" | "cid" => Self::Cid,
            "start" => Self::Start,
            "subs" => Self::Subs,
            "pending" => Self::Pending,
            "msgs_to" => Self::OutMsgs,
            "msgs_from" => Self::InMsgs,
            "bytes_to" => Self::OutBytes,
            "bytes_from" => Self::InBytes,
            "last" => Self::Last,
            "idle" => Self::Idle,
            "uptime" => Self::Uptime,
            "stop" => Self::Stop,
            "reason" => Self::Reason,
            "rtt" => Self::Rtt,
            _ => return None,
        })
    }
}

/// What subscription information each connection carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SubsMode {
    None,
    List,
    Detail,
}

struct Options {
    sort: SortBy,
    auth: bool,
    subs: SubsMode,
    offset: usize,
    limit: usize,
    cid: u64,
    state: ConnState,
    user: Option<String>,
    account: Option<String>,
    filter_subject: Option<String>,
}

fn options(q: &Query) -> Result<Options, QueryError> {
    let sort_raw = q.get("sort").unwrap_or_default();
    let sort = SortBy::parse(sort_raw)
        .ok_or_else(|| QueryError::Other(format!("invalid sorting option: {sort_raw}")))?;
    let subs = match q.get("subs") {
        Some("detail") => SubsMode::Detail,
        _ if q.bool("subs")? => SubsMode::List,
        _ => SubsMode::None,
    };
    let state = match q.get("state") {
        None | Some("open") => ConnState::Open,
        Some("closed") => ConnState::Closed,
        Some("any" | "all") => ConnState::All,
        Some(other) => {
            return Err(QueryError::Other(format!(
                "Error decoding state for {other}"
            )));
        }
    };
    let limit = usize::try_from(q.int("limit")?)
        .ok()
        .filter(|l| *l > 0)
        .unwrap_or(DEFAULT_LIMIT);
    let offset = usize::try_from(q.int("offset")?).unwrap_or(0);
    let cid = q.uint("cid")?;
    if state == ConnState::Open {
        if sort == SortBy::Stop {
            return Err(QueryError::Other(
                "sort by stop only valid on closed connections".into(),
            ));
        }
        if sort == SortBy::Reason {
            return Err(QueryError::Other(
                "sort by reason only valid on closed connections".into(),
            ));
        }
    }
    Ok(Options {
        sort,
        auth: q.bool("auth")?,
        subs,
        offset,
        limit: if cid > 0 { 1 } else { limit },
        cid,
        state,
        user: q.get("user").map(str::to_owned),
        account: q.get("acc").map(str::to_owned),
        filter_subject: q.get("filter_subject").map(str::to_owned),
    })
}

fn subs_of(cid: u64, all: &[SubView]) -> Vec<&SubView> {
    all.iter().filter(|s| s.cid == cid).collect()
}

fn build(
    v: &ClientView,
    subs: &[&SubView],
    closed: Option<(&ClosedClient, SystemTime)>,
    now: u64,
    o: &Options,
) -> ConnInfo {
    let account = v.meta.account.as_deref().unwrap_or("$G");
    let (ip, port) = v
        .meta
        .addr
        .map_or((String::new(), 0), |a| (a.ip().to_string(), a.port()));
    let start = GoTime::of(v.start).0;
    let end = closed.map_or(now, |(_, stop)| GoTime::of(stop).0);
    // nats-server's `filter_subject` keeps the subscriptions a message on that subject
    // would reach.
    let filter = |s: &&&SubView| {
        o.filter_subject
            .as_deref()
            .is_none_or(|f| crate::subject::matches(&s.subject, f.as_bytes()))
    };
    let (list, detail) = match o.subs {
        SubsMode::None => (Vec::new(), Vec::new()),
        SubsMode::List => (
            subs.iter()
                .filter(filter)
                .map(|s| String::from_utf8_lossy(&s.subject).into_owned())
                .collect(),
            Vec::new(),
        ),
        SubsMode::Detail => (
            Vec::new(),
            subs.iter()
                .filter(filter)
                .map(|s| SubDetail::of(s, None))
                .collect(),
        ),
    };
    ConnInfo {
        cid: v.cid,
        kind: "Client",
        // nats-server's client types: "nats", "mqtt" (and "websocket").
        kind_type: if v.meta.mqtt_client.is_some() {
            "mqtt"
        } else if v.meta.websocket {
            "websocket"
        } else {
            "nats"
        },
        ip,
        port,
        start: GoTime(start),
        last_activity: GoTime(v.last_activity),
        stop: closed.map(|(_, stop)| GoTime::of(stop)),
        reason: closed.map_or(String::new(), |(c, _)| c.reason.as_str().to_owned()),
        rtt: if v.rtt > 0 {
            natrix_config::duration::format_go_nanos(i64::try_from(v.rtt).unwrap_or(i64::MAX))
        } else {
            String::new()
        },
        uptime: uptime(between(start, end)),
        idle: uptime(between(v.last_activity, end)),
        pending_bytes: v.pending,
        in_msgs: v.in_msgs,
        out_msgs: v.out_msgs,
        in_bytes: v.in_bytes,
        out_bytes: v.out_bytes,
        stalls: v.stalls,
        subscriptions: subs.len(),
        name: v.meta.name.clone().unwrap_or_default(),
        lang: v.meta.lang.clone().unwrap_or_default(),
        version: v.meta.version.clone().unwrap_or_default(),
        mqtt_client: v.meta.mqtt_client.clone().unwrap_or_default(),
        tls_version: v.meta.tls.as_ref().map(|t| t.0.clone()).unwrap_or_default(),
        tls_cipher_suite: v.meta.tls.as_ref().map(|t| t.1.clone()).unwrap_or_default(),
        tls_peer_certs: match (&v.meta.peer_certs, o.auth && closed.is_none()) {
            (Some(certs), true) => certs
                .iter()
                .map(|c| TlsPeerCert {
                    subject: crate::dn::name_string(&c.subject),
                    spki_sha256: c.spki_sha256.clone(),
                    cert_sha256: c.cert_sha256.clone(),
                })
                .collect(),
            _ => Vec::new(),
        },
        authorized_user: if o.auth {
            v.meta.user.clone().unwrap_or_default()
        } else {
            String::new()
        },
        account: if o.auth && account != "$G" {
            account.to_owned()
        } else {
            String::new()
        },
        subscriptions_list: list,
        subscriptions_list_detail: detail,
        // nats-server drops the account reference of a closed connection, and its tag.
        name_tag: if o.auth && closed.is_none() {
            account.to_owned()
        } else {
            String::new()
        },
        sort_rtt: v.rtt,
        sort_idle: end.saturating_sub(v.last_activity),
    }
}

/// Builds `/connz`.
pub fn connz(server: &Server, q: &Query) -> Result<Connz, QueryError> {
    let o = options(q)?;
    let now = GoTime::now();
    // As in nats-server, `total` counts the connections in the requested state before
    // the `user` filter; only `cid` narrows it.
    let wanted = |v: &ClientView| {
        (o.cid == 0 || v.cid == o.cid)
            && o.account
                .as_deref()
                .is_none_or(|a| v.meta.account.as_deref().unwrap_or("$G") == a)
    };
    let user_ok = |c: &ClientView| {
        o.user
            .as_deref()
            .is_none_or(|u| c.meta.user.as_deref() == Some(u))
    };
    let mut total = 0;
    let mut conns = Vec::new();
    if o.state != ConnState::Closed {
        let live_subs: Vec<SubView> = server
            .all_accounts()
            .iter()
            .flat_map(|a| a.sublist.all())
            .map(|s| SubView::of(&s))
            .collect();
        for v in server.clients().iter().filter(|v| wanted(v)) {
            total += 1;
            if !user_ok(v) {
                continue;
            }
            let subs = subs_of(v.cid, &live_subs);
            conns.push(build(v, &subs, None, now.0, &o));
        }
    }
    if o.state != ConnState::Open {
        server.with_closed(|ring| {
            for c in ring.iter().filter(|c| wanted(&c.view)) {
                total += 1;
                if !user_ok(&c.view) {
                    continue;
                }
                let subs: Vec<&SubView> = c.subs.iter().collect();
                conns.push(build(&c.view, &subs, Some((c, c.stop)), now.0, &o));
            }
        });
    }
    sort(&mut conns, o.sort);
    let offset = o.offset.min(total);
    let connections: Vec<ConnInfo> = conns.into_iter().skip(offset).take(o.limit).collect();
    Ok(Connz {
        server_id: server.id().to_owned(),
        now,
        num_connections: connections.len(),
        total,
        offset,
        limit: o.limit,
        connections,
    })
}

fn sort(conns: &mut [ConnInfo], by: SortBy) {
    match by {
        SortBy::Cid | SortBy::Start => conns.sort_by_key(|c| c.cid),
        SortBy::Subs => conns.sort_by_key(|c| Reverse(c.subscriptions)),
        SortBy::Pending => conns.sort_by_key(|c| Reverse(c.pending_bytes)),
        SortBy::OutMsgs => conns.sort_by_key(|c| Reverse(c.out_msgs)),
        SortBy::InMsgs => conns.sort_by_key(|c| Reverse(c.in_msgs)),
        SortBy::OutBytes => conns.sort_by_key(|c| Reverse(c.out_bytes)),
        SortBy::InBytes => conns.sort_by_key(|c| Reverse(c.in_bytes)),
        SortBy::Last => conns.sort_by_key(|c| Reverse(c.last_activity)),
        SortBy::Idle => conns.sort_by_key(|c| Reverse(c.sort_idle)),
        SortBy::Uptime => conns.sort_by_key(|c| c.start),
        SortBy::Stop => conns.sort_by_key(|c| Reverse(c.stop)),
        SortBy::Reason => conns.sort_by(|a, b| a.reason.cmp(&b.reason)),
        SortBy::Rtt => conns.sort_by_key(|c| Reverse(c.sort_rtt)),
    }
}
