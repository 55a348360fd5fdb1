//! `/routez`, `/gatewayz` and `/leafz`. Routes, gateways and leaf nodes are not built
//! yet, so these report none, in exactly the shape nats-server uses when it has none.

use std::collections::BTreeMap;

use serde::Serialize;

use super::format::GoTime;
use crate::server::Server;

/// A route as `/routez` lists it; none exist until clustering lands.
#[derive(Debug, Serialize)]
pub struct RouteInfo {}

#[derive(Debug, Serialize)]
pub struct Routez {
    pub server_id: String,
    pub server_name: String,
    pub now: GoTime,
    pub num_routes: usize,
    pub routes: Vec<RouteInfo>,
}

pub fn routez(server: &Server) -> Routez {
    Routez {
        server_id: server.id().to_owned(),
        server_name: server.name().to_owned(),
        now: GoTime::now(),
        num_routes: 0,
        routes: Vec::new(),
    }
}

#[derive(Debug, Serialize)]
pub struct Gatewayz {
    pub server_id: String,
    pub now: GoTime,
    pub outbound_gateways: BTreeMap<String, ()>,
    pub inbound_gateways: BTreeMap<String, ()>,
}

pub fn gatewayz(server: &Server) -> Gatewayz {
    Gatewayz {
        server_id: server.id().to_owned(),
        now: GoTime::now(),
        outbound_gateways: BTreeMap::new(),
        inbound_gateways: BTreeMap::new(),
    }
}

/// A leaf node connection as `/leafz` lists it; none exist until leaf nodes land.
#[derive(Debug, Serialize)]
pub struct LeafInfo {}

#[derive(Debug, Serialize)]
pub struct Leafz {
    pub server_id: String,
    pub now: GoTime,
    pub leafnodes: usize,
    pub leafs: Vec<LeafInfo>,
}

pub fn leafz(server: &Server) -> Leafz {
    Leafz {
        server_id: server.id().to_owned(),
        now: GoTime::now(),
        leafnodes: 0,
        leafs: Vec::new(),
    }
}
