//! The system account's client events, as nats-server publishes them:
//! `$SYS.ACCOUNT.<acc>.CONNECT` once a client has authenticated and
//! `$SYS.ACCOUNT.<acc>.DISCONNECT` when it goes, with what it sent and received and why
//! it closed. An event is built only while something subscribes to its subject (a client
//! of the system account, or another server over a route), so a server nobody watches
//! pays one sublist lookup per connection.

use std::time::SystemTime;

use serde::Serialize;

use super::outbound::CloseReason;
use super::{ClientView, Server};
use crate::monitor::format::GoTime;

/// Who a client is (nats-server's `ClientInfo`): in connect events, and in the
/// `Nats-Request-Info` header of requests that cross a service import.
#[derive(Serialize, Default)]
pub(crate) struct ClientInfo<'a> {
    #[serde(skip_serializing_if = "Option::is_none")]
    start: Option<GoTime>,
    #[serde(skip_serializing_if = "String::is_empty")]
    host: String,
    #[serde(skip_serializing_if = "is_zero")]
    id: u64,
    acc: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    name: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    lang: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ver: Option<&'a str>,
    /// Nanoseconds, as Go encodes a `time.Duration`.
    #[serde(skip_serializing_if = "is_zero")]
    rtt: u64,
    #[serde(skip_serializing_if = "Option::is_none")]
    server: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    cluster: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop: Option<GoTime>,
    /// The account's name tag: its name, for accounts from the config file.
    #[serde(skip_serializing_if = "Option::is_none")]
    name_tag: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    kind: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    client_type: Option<&'static str>,
}

/// The `Nats-Request-Info` header value nats-server puts on a request that crosses a
/// service import: the requester's account and round trip, with `detailed` (a sharing
/// import) who it is, and with `with_server` (an import from the system account, or a
/// sharing one) the server and cluster it came through.
pub(crate) fn request_info(
    server: &Server,
    cid: Option<u64>,
    account: &str,
    detailed: bool,
    with_server: bool,
) -> Vec<u8> {
    let view = cid.and_then(|cid| server.client_view(cid));
    let mut ci = ClientInfo {
        acc: account,
        rtt: view.as_ref().map_or(0, |v| v.rtt),
        ..ClientInfo::default()
    };
    if with_server || detailed {
        ci.server = Some(server.name());
        let cluster = server.cluster_name();
        ci.cluster = (!cluster.is_empty()).then_some(cluster);
    }
    if detailed && let Some(v) = &view {
        ci.start = Some(GoTime::of(v.start));
        ci.host = v.meta.addr.map(|a| a.ip().to_string()).unwrap_or_default();
        ci.id = v.cid;
        ci.user = v.meta.user.as_deref();
        ci.name = v.meta.name.as_deref().filter(|n| !n.is_empty());
        ci.lang = v.meta.lang.as_deref().filter(|l| !l.is_empty());
        ci.ver = v.meta.version.as_deref().filter(|l| !l.is_empty());
        ci.name_tag = Some(account);
        ci.kind = Some("Client");
        ci.client_type = Some("nats");
    }
    serde_json::to_vec(&ci).unwrap_or_default()
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Serialize)]
struct MsgBytes {
    msgs: u64,
    bytes: u64,
}

#[derive(Serialize)]
struct Event<'a> {
    r#type: &'static str,
    id: String,
    timestamp: GoTime,
    server: super::system::ServerInfo<'a>,
    client: ClientInfo<'a>,
    #[serde(skip_serializing_if = "Option::is_none")]
    sent: Option<MsgBytes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    received: Option<MsgBytes>,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'static str>,
}

/// `$SYS.ACCOUNT.<acc>.CONNECT` for the client `view` (just authenticated).
pub(crate) fn client_connect(server: &Server, view: &ClientView) {
    publish(server, view, None);
    if let Some(acc) = &view.meta.account {
        account_connections(server, acc);
    }
}

/// `$SYS.ACCOUNT.<acc>.SERVER.CONNS` (and nats-server's older
/// `$SYS.SERVER.ACCOUNT.<acc>.CONNS`): the account's connection count and traffic on
/// this server, sent when a client of the account connects or goes.
pub(crate) fn account_connections(server: &Server, account: &str) {
    let subjects = [
        format!("$SYS.ACCOUNT.{account}.SERVER.CONNS"),
        format!("$SYS.SERVER.ACCOUNT.{account}.CONNS"),
    ];
    let sys = &server.sys_account;
    let wanted: Vec<&String> = subjects
        .iter()
        .filter(|s| !sys.sublist.match_subject(s.as_bytes()).is_empty())
        .collect();
    if wanted.is_empty() {
        return;
    }
    let Some(acc) = server.account(account) else {
        return;
    };
    let mut event = serde_json::json!({
        "type": "io.nats.server.advisory.v1.account_connections",
        "id": server.next_event_id(),
        "timestamp": GoTime::now(),
        "server": super::system::server_info(server),
    });
    if let (Some(map), Ok(serde_json::Value::Object(stat))) = (
        event.as_object_mut(),
        serde_json::to_value(crate::monitor::accountz::account_stat(&acc)),
    ) {
        map.extend(stat);
    }
    match serde_json::to_vec(&event) {
        Ok(bytes) => {
            for s in wanted {
                server.publish_internal(sys, s.as_bytes(), &bytes);
            }
        }
        Err(e) => tracing::error!("account connections event: {e}"),
    }
}

/// `$SYS.ACCOUNT.<acc>.DISCONNECT` for the client `view`, closed at `stop` for `reason`.
pub(crate) fn client_disconnect(
    server: &Server,
    view: &ClientView,
    stop: SystemTime,
    reason: CloseReason,
) {
    publish(server, view, Some((stop, reason)));
    if let Some(acc) = &view.meta.account {
        account_connections(server, acc);
    }
}

fn publish(server: &Server, view: &ClientView, closed: Option<(SystemTime, CloseReason)>) {
    let Some(acc) = view.meta.account.as_deref() else {
        return;
    };
    let what = if closed.is_some() {
        "DISCONNECT"
    } else {
        "CONNECT"
    };
    let subject = format!("$SYS.ACCOUNT.{acc}.{what}");
    if server
        .sys_account
        .sublist
        .match_subject(subject.as_bytes())
        .is_empty()
    {
        return;
    }
    let client = ClientInfo {
        start: Some(GoTime::of(view.start)),
        host: view
            .meta
            .addr
            .map(|a| a.ip().to_string())
            .unwrap_or_default(),
        id: view.cid,
        acc,
        user: view.meta.user.as_deref(),
        name: view.meta.name.as_deref().filter(|n| !n.is_empty()),
        lang: view.meta.lang.as_deref().filter(|l| !l.is_empty()),
        ver: view.meta.version.as_deref().filter(|v| !v.is_empty()),
        // The connect event goes before the first PING measures a round trip.
        rtt: if closed.is_some() { view.rtt } else { 0 },
        stop: closed.map(|(t, _)| GoTime::of(t)),
        name_tag: Some(acc),
        kind: Some("Client"),
        client_type: Some("nats"),
        ..ClientInfo::default()
    };
    // As the client sees it: what it sent (the server's `in`) and received.
    let (sent, received, reason) = match closed {
        Some((_, reason)) => (
            Some(MsgBytes {
                msgs: view.in_msgs,
                bytes: view.in_bytes,
            }),
            Some(MsgBytes {
                msgs: view.out_msgs,
                bytes: view.out_bytes,
            }),
            Some(reason.as_str()),
        ),
        None => (None, None, None),
    };
    let event = Event {
        r#type: if closed.is_some() {
            "io.nats.server.advisory.v1.client_disconnect"
        } else {
            "io.nats.server.advisory.v1.client_connect"
        },
        id: server.next_event_id(),
        timestamp: GoTime::now(),
        server: super::system::server_info(server),
        client,
        sent,
        received,
        reason,
    };
    match serde_json::to_vec(&event) {
        Ok(bytes) => server.publish_internal(&server.sys_account, subject.as_bytes(), &bytes),
        Err(e) => tracing::error!("client event: {e}"),
    }
}
