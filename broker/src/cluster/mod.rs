//! Clustering: routes between the servers of one cluster (a full mesh).
//!
//! Each server listens on its cluster port, dials the configured `routes`, and dials the
//! servers its peers tell it about (one hop of gossip), so every pair ends up with one
//! connection. Over it each side announces the interest of its own clients (`RS+`/`RS-`,
//! queue groups with their member counts) and forwards each message once to every peer
//! with matching interest (`RMSG`); a peer delivers what it receives to its own clients
//! only, so a message crosses at most one route. The wire format is nats-server's, without
//! connection pooling (see docs/design/inter-server-protocols.md), so natrix and
//! nats-server servers can share a cluster.

pub mod gateway;
pub(crate) mod link;
pub mod proto;
pub mod route;

use std::net::SocketAddr;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;
use serde::Serialize;
use tokio::net::TcpListener;

use crate::server::Server;
use route::Route;

/// Local interest per account, subject and queue group: how many local subscriptions.
type InterestKey = (String, Bytes, Option<Bytes>);

/// The cluster side of a server.
pub struct Cluster {
    pub name: String,
    /// The cluster listener's address.
    pub addr: SocketAddr,
    /// Peers by remote server id.
    routes: RwLock<FxHashMap<String, Arc<Route>>>,
    interest: Mutex<FxHashMap<InterestKey, u32>>,
    /// Route URLs this server knows to be itself (a route list that names every member,
    /// this one included, is the usual way to configure a cluster).
    self_urls: Mutex<Vec<String>>,
}

/// What a route's INFO says about this server.
#[derive(Serialize)]
struct RouteInfo<'a> {
    #[serde(flatten)]
    base: link::InfoBase<'a>,
    cluster: &'a str,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    connect_urls: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    ip: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    gateway_url: Option<String>,
    /// A natrix extension (nats-server ignores it): the peer maps this name onto its own
    /// system account, so `$SYS` traffic (JetStream's Raft and placement among it) still
    /// flows while a cluster rolls from `$SYS` into operator mode, where the system
    /// account is named by its public key.
    system_account: &'a str,
}

impl Cluster {
    /// Binds the cluster listener from `cluster { listen, name }`; `None` without one.
    pub async fn bind(server: &Server) -> std::io::Result<Option<(Arc<Self>, TcpListener)>> {
        let (opts, _) = server.options();
        let c = &opts.config.cluster;
        if c.port == 0 {
            return Ok(None);
        }
        let port = u16::try_from(c.port.max(0)).map_err(|_| {
            std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                "cluster port out of range",
            )
        })?;
        let host = if c.host.is_empty() {
            "0.0.0.0"
        } else {
            &c.host
        };
        let listener = TcpListener::bind((host, port)).await?;
        let addr = listener.local_addr()?;
        let name = if let Some(gws) = server.gateways() {
            // A cluster joined to others by gateways is named by its gateway.
            gws.name.clone()
        } else if c.name.is_empty() {
            // nats-server makes up a name when none is set; peers adopt a configured one.
            server.id().chars().rev().take(22).collect()
        } else {
            c.name.clone()
        };
        tracing::info!("Cluster name is {name}");
        tracing::info!("Listening for route connections on {addr}");
        Ok(Some((
            Arc::new(Self {
                name,
                addr,
                routes: RwLock::new(FxHashMap::default()),
                interest: Mutex::new(FxHashMap::default()),
                self_urls: Mutex::new(Vec::new()),
            }),
            listener,
        )))
    }

    /// Accepts routes and dials the configured ones, until shutdown.
    pub fn start(self: &Arc<Self>, server: &Arc<Server>, listener: TcpListener) {
        let cluster = self.clone();
        let srv = server.clone();
        link::accept_loop(server.clone(), listener, "route", move |stream, peer| {
            tokio::spawn(route::run(srv.clone(), cluster.clone(), stream, peer, None));
        });
        let (opts, _) = server.options();
        for url in &opts.config.routes {
            let Some(port) = url.port else {
                tracing::error!("route URL {} has no port", url.raw);
                continue;
            };
            let target = format!("{}:{port}", url.host);
            tokio::spawn(route::solicit(
                server.clone(),
                self.clone(),
                target,
                url.raw.clone(),
                true,
            ));
        }
    }

    /// The user and password to present to the route dialled as `url`: the URL's own,
    /// else the cluster's `authorization`.
    pub(crate) fn credentials(&self, server: &Server, url: &str) -> Option<(String, String)> {
        let (opts, _) = server.options();
        let c = &opts.config.cluster;
        if let Some(u) = opts.config.routes.iter().find(|u| u.raw == url)
            && let Some(user) = &u.username
        {
            return Some((user.clone(), u.password.clone().unwrap_or_default()));
        }
        (!c.username.is_empty()).then(|| (c.username.clone(), c.password.clone()))
    }

    /// This server's route INFO, as sent to a peer.
    pub(crate) fn info_json(&self, server: &Server, local_ip: Option<std::net::IpAddr>) -> Vec<u8> {
        let (opts, _) = server.options();
        // `client_advertise` (e.g. a pod's stable DNS name) is what peers hand clients.
        let client_url = server
            .client_url()
            .into_iter()
            .filter(|_| !opts.config.cluster.no_advertise)
            .collect();
        let advertise = &opts.config.cluster.advertise;
        let info = RouteInfo {
            base: link::InfoBase::new(
                server,
                self.addr,
                1,
                crate::server::GO_FIELD,
                !opts.config.cluster.username.is_empty(),
                opts.cluster_tls.is_some(),
            ),
            cluster: &self.name,
            connect_urls: client_url,
            ip: (!advertise.is_empty()).then(|| format!("nats-route://{advertise}/")),
            gateway_url: server.gateways().map(|g| g.url(server, local_ip)),
            system_account: server.sys_account.name(),
        };
        serde_json::to_vec(&info).unwrap_or_default()
    }

    pub fn num_routes(&self) -> usize {
        self.routes.read().len()
    }

    pub fn routes(&self) -> Vec<Arc<Route>> {
        self.routes.read().values().cloned().collect()
    }

    pub(crate) fn has_route(&self, remote_id: &str) -> bool {
        self.routes.read().contains_key(remote_id)
    }

    pub(crate) fn is_self_url(&self, url: &str) -> bool {
        self.self_urls.lock().iter().any(|u| u == url)
    }

    pub(crate) fn mark_self_url(&self, url: &str) {
        let mut urls = self.self_urls.lock();
        if !urls.iter().any(|u| u == url) {
            urls.push(url.to_owned());
        }
    }

    /// Registers a route to `remote_id`. When one already exists the pair keeps the
    /// connection dialled by the server with the smaller id, so both ends choose alike;
    /// the loser is returned for closing.
    pub(crate) fn register(&self, local_id: &str, route: &Arc<Route>) -> Result<(), Arc<Route>> {
        let mut routes = self.routes.write();
        match routes.get(&route.remote_id) {
            None => {
                routes.insert(route.remote_id.clone(), route.clone());
                Ok(())
            }
            Some(existing) => {
                let dialled_by_smaller = |r: &Route| {
                    if r.solicited {
                        local_id < r.remote_id.as_str()
                    } else {
                        r.remote_id.as_str() < local_id
                    }
                };
                if dialled_by_smaller(route) && !dialled_by_smaller(existing) {
                    let old = existing.clone();
                    routes.insert(route.remote_id.clone(), route.clone());
                    Err(old)
                } else {
                    Err(route.clone())
                }
            }
        }
    }

    /// Forgets `route` if it is the one registered for its peer.
    pub(crate) fn unregister(&self, route: &Arc<Route>) -> bool {
        let mut routes = self.routes.write();
        match routes.get(&route.remote_id) {
            Some(r) if Arc::ptr_eq(r, route) => {
                routes.remove(&route.remote_id);
                true
            }
            _ => false,
        }
    }

    /// Client URLs of the whole cluster (this server's first), for client INFO
    /// `connect_urls`; empty with `no_advertise`.
    pub fn client_urls(&self, own: Option<String>) -> Vec<String> {
        let mut urls: Vec<String> = own.into_iter().collect();
        for r in self.routes.read().values() {
            for u in r
                .info
                .get("connect_urls")
                .and_then(serde_json::Value::as_array)
                .into_iter()
                .flatten()
                .filter_map(serde_json::Value::as_str)
            {
                if !urls.iter().any(|x| x == u) {
                    urls.push(u.to_owned());
                }
            }
        }
        urls
    }

    /// Every `RS+` this server owes a new peer: its clients' current interest.
    pub(crate) fn interest_lines(&self) -> Vec<u8> {
        let interest = self.interest.lock();
        let mut out = Vec::new();
        for ((acc, subject, queue), n) in interest.iter() {
            out.extend_from_slice(&proto::sub_line(
                acc,
                subject,
                queue.as_deref().map(|q| (q, *n)),
            ));
        }
        out
    }

    fn broadcast(&self, line: &[u8]) {
        for r in self.routes.read().values() {
            r.handle.outbound.push_proto(line);
        }
    }

    /// A local client subscribed: announce new interest (a queue group's new size).
    pub fn sub_added(&self, account: &str, subject: &Bytes, queue: Option<&Bytes>) {
        let line = {
            let mut interest = self.interest.lock();
            let n = interest
                .entry((account.to_owned(), subject.clone(), queue.cloned()))
                .or_insert(0);
            *n += 1;
            match queue {
                Some(q) => Some(proto::sub_line(account, subject, Some((q, *n)))),
                None if *n == 1 => Some(proto::sub_line(account, subject, None)),
                None => None,
            }
        };
        if let Some(line) = line {
            self.broadcast(&line);
        }
    }

    /// A local subscription went away: withdraw interest (or shrink a queue group).
    pub fn sub_removed(&self, account: &str, subject: &Bytes, queue: Option<&Bytes>) {
        let key = (account.to_owned(), subject.clone(), queue.cloned());
        let line = {
            let mut interest = self.interest.lock();
            let Some(n) = interest.get_mut(&key) else {
                return;
            };
            *n -= 1;
            let left = *n;
            if left == 0 {
                interest.remove(&key);
                Some(proto::unsub_line(account, subject, queue.map(|q| &q[..])))
            } else {
                queue.map(|q| proto::sub_line(account, subject, Some((q, left))))
            }
        };
        if let Some(line) = line {
            self.broadcast(&line);
        }
    }

    /// Tells every other peer about a newly connected one (one hop of gossip), with the
    /// URL to dial in `ip`.
    pub(crate) fn gossip(&self, newcomer: &Route) {
        let Some(mut info) = newcomer.info.as_object().cloned() else {
            return;
        };
        info.remove("nonce");
        info.insert(
            "ip".into(),
            serde_json::Value::String(format!("nats-route://{}/", newcomer.route_url())),
        );
        let Ok(json) = serde_json::to_vec(&info) else {
            return;
        };
        let mut line = Vec::with_capacity(json.len() + 7);
        line.extend_from_slice(b"INFO ");
        line.extend_from_slice(&json);
        line.extend_from_slice(b"\r\n");
        for r in self.routes.read().values() {
            if r.remote_id != newcomer.remote_id {
                r.handle.outbound.push_proto(&line);
            }
        }
    }
}
