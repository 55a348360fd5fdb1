//! `/routez`, `/gatewayz` and `/leafz`, with nats-server's field names; a server without
//! a kind of link reports none, in the shape nats-server uses then.

use std::collections::BTreeMap;

use serde::Serialize;

use super::format::GoTime;
use crate::server::Server;

/// A route as `/routez` lists it.
#[derive(Debug, Serialize)]
pub struct RouteInfo {
    pub rid: u64,
    pub remote_id: String,
    pub remote_name: String,
    pub did_solicit: bool,
    pub is_configured: bool,
    pub ip: String,
    pub port: u16,
    pub start: GoTime,
    pub last_activity: GoTime,
    pub uptime: String,
    pub idle: String,
    pub pending_size: usize,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub subscriptions: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list: Vec<String>,
}

#[derive(Debug, Serialize)]
pub struct Routez {
    pub server_id: String,
    pub server_name: String,
    pub now: GoTime,
    pub num_routes: usize,
    pub routes: Vec<RouteInfo>,
}

pub fn routez(server: &Server, subs: bool) -> Routez {
    use std::sync::atomic::Ordering::Relaxed;
    let now = GoTime::now();
    let mut routes: Vec<RouteInfo> = server
        .cluster()
        .map(|c| c.routes())
        .unwrap_or_default()
        .iter()
        .map(|r| {
            let start = GoTime::of(r.start);
            let last = r.handle.last_activity.load(Relaxed).max(start.0);
            RouteInfo {
                rid: r.handle.cid,
                remote_id: r.remote_id.clone(),
                remote_name: r.remote_name.clone(),
                did_solicit: r.solicited,
                is_configured: r.configured.is_some(),
                ip: r.peer.ip().to_string(),
                port: r.peer.port(),
                start,
                last_activity: GoTime(last),
                uptime: super::format::uptime(super::format::between(start.0, now.0)),
                idle: super::format::uptime(super::format::between(last, now.0)),
                pending_size: r.handle.outbound.pending(),
                in_msgs: r.in_msgs.load(Relaxed),
                out_msgs: r.handle.out_msgs(),
                in_bytes: r.in_bytes.load(Relaxed),
                out_bytes: r.handle.out_bytes(),
                subscriptions: r.num_subs(),
                subscriptions_list: if subs { r.subjects() } else { Vec::new() },
            }
        })
        .collect();
    routes.sort_by_key(|r| r.rid);
    Routez {
        server_id: server.id().to_owned(),
        server_name: server.name().to_owned(),
        now,
        num_routes: routes.len(),
        routes,
    }
}

/// A gateway connection as `/gatewayz` shows it.
#[derive(Debug, Serialize)]
pub struct GatewayConn {
    pub cid: u64,
    pub kind: &'static str,
    pub ip: String,
    pub port: u16,
    pub start: GoTime,
    pub last_activity: GoTime,
    pub uptime: String,
    pub idle: String,
    pub pending_bytes: usize,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub subscriptions: usize,
    /// The remote server's id.
    pub name: String,
}

/// One account of an outbound gateway (`accs=1`).
#[derive(Debug, Serialize)]
pub struct GatewayAccount {
    pub name: String,
    pub interest_mode: &'static str,
    #[serde(skip_serializing_if = "is_zero")]
    pub no_interest_count: usize,
    pub interest_only_threshold: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub num_subs: usize,
    #[serde(skip_serializing_if = "is_zero")]
    pub num_queue_subs: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list: Vec<String>,
}

fn is_zero(n: &usize) -> bool {
    *n == 0
}

/// A remote cluster, as seen on one connection.
#[derive(Debug, Serialize)]
pub struct RemoteGateway {
    pub configured: bool,
    pub connection: GatewayConn,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub accounts: Vec<GatewayAccount>,
}

#[derive(Debug, Serialize)]
pub struct Gatewayz {
    pub server_id: String,
    pub now: GoTime,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub name: String,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub host: String,
    #[serde(skip_serializing_if = "is_zero")]
    pub port: usize,
    pub outbound_gateways: BTreeMap<String, RemoteGateway>,
    pub inbound_gateways: BTreeMap<String, Vec<RemoteGateway>>,
}

/// `/gatewayz` options: `accs`, `subs`, `gw_name`, `acc_name`.
pub struct GatewayzOpts<'a> {
    pub accounts: bool,
    pub subs: bool,
    pub gateway: Option<&'a str>,
    pub account: Option<&'a str>,
}

/// nats-server's `interest_only_threshold`: RS- per account before it switches.
const INTEREST_ONLY_THRESHOLD: usize = 1000;

fn gateway_conn(link: &crate::cluster::gateway::link::Link, now: &GoTime) -> GatewayConn {
    use std::sync::atomic::Ordering::Relaxed;
    let start = GoTime::of(link.start);
    let last = link.handle.last_activity.load(Relaxed).max(start.0);
    GatewayConn {
        cid: link.handle.cid,
        kind: "Gateway",
        ip: link.peer.ip().to_string(),
        port: link.peer.port(),
        start,
        last_activity: GoTime(last),
        uptime: super::format::uptime(super::format::between(start.0, now.0)),
        idle: super::format::uptime(super::format::between(last, now.0)),
        pending_bytes: link.handle.outbound.pending(),
        in_msgs: link.in_msgs.load(Relaxed),
        out_msgs: link.handle.out_msgs(),
        in_bytes: link.in_bytes.load(Relaxed),
        out_bytes: link.handle.out_bytes(),
        subscriptions: link.interest.view().iter().map(|a| a.num_subs).sum(),
        name: link.remote_id.clone(),
    }
}

pub fn gatewayz(server: &Server, o: &GatewayzOpts<'_>) -> Gatewayz {
    let now = GoTime::now();
    let mut z = Gatewayz {
        server_id: server.id().to_owned(),
        now,
        name: String::new(),
        host: String::new(),
        port: 0,
        outbound_gateways: BTreeMap::new(),
        inbound_gateways: BTreeMap::new(),
    };
    let Some(gws) = server.gateways() else {
        return z;
    };
    z.name = gws.name.clone();
    z.host = gws.addr.ip().to_string();
    z.port = usize::from(gws.addr.port());
    let wanted = |name: &str| o.gateway.is_none_or(|g| g == name);
    for link in gws.outbound_links() {
        if !wanted(&link.name) {
            continue;
        }
        let accounts = if o.accounts || o.account.is_some() {
            link.interest
                .view()
                .into_iter()
                .filter(|a| o.account.is_none_or(|n| n == a.name))
                .map(|a| GatewayAccount {
                    subscriptions_list: if o.subs {
                        link.interest.subjects(&a.name)
                    } else {
                        Vec::new()
                    },
                    interest_mode: a.mode.as_str(),
                    no_interest_count: a.no_interest_count,
                    interest_only_threshold: INTEREST_ONLY_THRESHOLD,
                    num_subs: a.num_subs,
                    num_queue_subs: a.num_queue_subs,
                    name: a.name,
                })
                .collect()
        } else {
            Vec::new()
        };
        z.outbound_gateways.insert(
            link.name.clone(),
            RemoteGateway {
                configured: gws.is_configured(&link.name),
                connection: gateway_conn(&link, &z.now),
                accounts,
            },
        );
    }
    for link in gws.inbound_links() {
        if !wanted(&link.name) {
            continue;
        }
        z.inbound_gateways
            .entry(link.name.clone())
            .or_default()
            .push(RemoteGateway {
                configured: false,
                connection: gateway_conn(&link, &z.now),
                accounts: Vec::new(),
            });
    }
    z
}

/// A leaf node connection as `/leafz` lists it.
#[derive(Debug, Serialize)]
pub struct LeafInfo {
    pub id: u64,
    pub name: String,
    pub is_spoke: bool,
    pub account: String,
    pub ip: String,
    pub port: u16,
    #[serde(skip_serializing_if = "String::is_empty")]
    pub rtt: String,
    pub in_msgs: u64,
    pub out_msgs: u64,
    pub in_bytes: u64,
    pub out_bytes: u64,
    pub subscriptions: usize,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub subscriptions_list: Vec<String>,
    pub compression: &'static str,
}

#[derive(Debug, Serialize)]
pub struct Leafz {
    pub server_id: String,
    pub now: GoTime,
    pub leafnodes: usize,
    pub leafs: Vec<LeafInfo>,
}

/// `/leafz`: `subs` lists each leaf's interest, `acc` keeps one account's leafs.
pub fn leafz(server: &Server, subs: bool, acc: Option<&str>) -> Leafz {
    use std::sync::atomic::Ordering::Relaxed;
    let leafs: Vec<LeafInfo> = server
        .leafnodes()
        .map(|l| l.leafs())
        .unwrap_or_default()
        .iter()
        .filter(|l| acc.is_none_or(|a| a == l.account.name()))
        .map(|l| LeafInfo {
            id: l.handle.cid,
            name: l.name.clone(),
            is_spoke: l.is_spoke,
            account: l.account.name().to_owned(),
            ip: l.peer.ip().to_string(),
            port: l.peer.port(),
            rtt: match l.handle.rtt.load(Relaxed) {
                0 => String::new(),
                ns => {
                    natrix_config::duration::format_go_nanos(i64::try_from(ns).unwrap_or(i64::MAX))
                }
            },
            in_msgs: l.in_msgs.load(Relaxed),
            out_msgs: l.handle.out_msgs(),
            in_bytes: l.in_bytes.load(Relaxed),
            out_bytes: l.handle.out_bytes(),
            subscriptions: l.num_subs(),
            subscriptions_list: if subs { l.subjects() } else { Vec::new() },
            compression: "off",
        })
        .collect();
    Leafz {
        server_id: server.id().to_owned(),
        now: GoTime::now(),
        leafnodes: leafs.len(),
        leafs,
    }
}
