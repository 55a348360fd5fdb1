//! Which gateways a NatsCluster renders: the remotes it names, plus every NatsCluster that
//! names it (so a link is declared on one side and rendered on both).
//!
//! Pure over a list of NatsClusters; the result is sorted by gateway name so the rendered
//! config (and its digest) does not depend on list order.

use std::collections::BTreeMap;

use crate::crd::{ClusterRef, NatsCluster};
use crate::render::GatewayPeer;
use crate::render::names;

/// Resolved gateways and the problems worth telling the user about.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Resolved {
    pub peers: Vec<GatewayPeer>,
    /// Human-readable problems (missing peer, peer without gateways, name clash).
    pub warnings: Vec<String>,
}

fn key(nc: &NatsCluster) -> (String, String) {
    (
        nc.metadata.namespace.clone().unwrap_or_default(),
        nc.base_name(),
    )
}

fn resolve_ref(r: &ClusterRef, from_ns: &str) -> (String, String) {
    (
        r.namespace.clone().unwrap_or_else(|| from_ns.to_string()),
        r.name.clone(),
    )
}

/// Gateway URLs of a NatsCluster: one per pod, by stable DNS name.
pub fn urls_of(nc: &NatsCluster) -> Vec<String> {
    let Some(gw) = &nc.spec.gateways else {
        return Vec::new();
    };
    let (ns, name) = key(nc);
    (0..nc.spec.replicas)
        .map(|i| format!("nats://{}:{}", names::pod_fqdn(&name, &ns, i), gw.port))
        .collect()
}

/// Resolves the gateways of `me` against `all` NatsClusters (which may include `me`).
pub fn resolve(me: &NatsCluster, all: &[NatsCluster]) -> Resolved {
    let mut out = Resolved::default();
    let Some(gw) = &me.spec.gateways else {
        return out;
    };
    let me_key = key(me);
    let by_key: BTreeMap<(String, String), &NatsCluster> =
        all.iter().map(|nc| (key(nc), nc)).collect();
    // gateway name -> (origin for messages, urls)
    let mut peers: BTreeMap<String, (String, Vec<String>)> = BTreeMap::new();
    let mut add = |out: &mut Resolved, name: String, origin: String, urls: Vec<String>| {
        if name == me_key.1 {
            out.warnings.push(format!(
                "gateway {origin} has this cluster's own name {name:?}; gateway names must be unique"
            ));
            return;
        }
        match peers.get(&name) {
            Some((other, existing)) if *existing != urls => out.warnings.push(format!(
                "gateway name {name:?} is used by both {other} and {origin}; gateway names must be unique, {origin} is ignored"
            )),
            Some(_) => {}
            None => {
                peers.insert(name, (origin, urls));
            }
        }
    };

    for remote in &gw.remotes {
        if let Some(r) = &remote.nats_cluster {
            let k = resolve_ref(r, &me_key.0);
            let origin = format!("NatsCluster {}/{}", k.0, k.1);
            match by_key.get(&k) {
                None => out
                    .warnings
                    .push(format!("gateway remote {origin} does not exist")),
                Some(peer) if peer.spec.gateways.is_none() => out.warnings.push(format!(
                    "gateway remote {origin} has no gateways block, so it does not listen for gateways"
                )),
                Some(peer) => add(&mut out, peer.base_name(), origin, urls_of(peer)),
            }
        } else if let (Some(name), Some(urls)) = (&remote.name, &remote.urls) {
            add(
                &mut out,
                name.clone(),
                format!("external gateway {name:?}"),
                urls.clone(),
            );
        }
    }

    // The other side of links declared elsewhere.
    for other in all {
        let k = key(other);
        if k == me_key {
            continue;
        }
        let Some(ogw) = &other.spec.gateways else {
            continue;
        };
        let names_me = ogw.remotes.iter().any(|r| {
            r.nats_cluster
                .as_ref()
                .is_some_and(|c| resolve_ref(c, &k.0) == me_key)
        });
        if names_me {
            add(
                &mut out,
                other.base_name(),
                format!("NatsCluster {}/{}", k.0, k.1),
                urls_of(other),
            );
        }
    }

    out.peers = peers
        .into_iter()
        .map(|(name, (_, urls))| GatewayPeer { name, urls })
        .collect();
    out
}

/// The NatsClusters whose rendered gateways depend on `nc`: those it names. Used to
/// reconcile the other side when a link is declared.
pub fn named_by(nc: &NatsCluster) -> Vec<ClusterRef> {
    let ns = nc.metadata.namespace.clone().unwrap_or_default();
    nc.spec
        .gateways
        .iter()
        .flat_map(|g| g.remotes.iter())
        .filter_map(|r| r.nats_cluster.as_ref())
        .map(|r| ClusterRef {
            name: r.name.clone(),
            namespace: Some(r.namespace.clone().unwrap_or_else(|| ns.clone())),
        })
        .collect()
}

/// Who names whom as a gateway, learned from the NatsCluster watch. A NatsCluster that
/// appears or changes (replicas, gateway port) must re-render every cluster linked to it:
/// those it names and those that name it. The second set is only known from the others'
/// specs, hence this index.
#[derive(Debug, Default)]
pub struct PeerIndex {
    names: BTreeMap<(String, String), Vec<(String, String)>>,
}

impl PeerIndex {
    /// Records `nc` and returns `(namespace, name)` of every cluster linked to it (or
    /// linked until this change).
    pub fn observe(&mut self, nc: &NatsCluster) -> Vec<(String, String)> {
        let me = key(nc);
        let named: Vec<(String, String)> = named_by(nc)
            .into_iter()
            .map(|r| (r.namespace.unwrap_or_default(), r.name))
            .collect();
        let mut linked: std::collections::BTreeSet<(String, String)> =
            named.iter().cloned().collect();
        // Clusters it no longer names must drop their side of the link.
        if let Some(before) = self.names.get(&me) {
            linked.extend(before.iter().cloned());
        }
        for (namer, targets) in &self.names {
            if *namer != me && targets.contains(&me) {
                linked.insert(namer.clone());
            }
        }
        self.names.insert(me.clone(), named);
        linked.remove(&me);
        linked.into_iter().collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::crd::{GatewayRemote, GatewaySpec, NatsClusterSpec};

    fn nc(ns: &str, name: &str, replicas: i32, remotes: Option<Vec<GatewayRemote>>) -> NatsCluster {
        let mut n = NatsCluster::new(
            name,
            NatsClusterSpec {
                replicas,
                gateways: remotes.map(|remotes| GatewaySpec {
                    port: 7222,
                    remotes,
                    reject_unknown: None,
                }),
                ..NatsClusterSpec::default()
            },
        );
        n.metadata.namespace = Some(ns.into());
        n
    }

    fn to(name: &str, ns: Option<&str>) -> GatewayRemote {
        GatewayRemote {
            nats_cluster: Some(ClusterRef {
                name: name.into(),
                namespace: ns.map(Into::into),
            }),
            ..GatewayRemote::default()
        }
    }

    #[test]
    fn links_render_on_both_sides() {
        let east = nc("east", "east", 2, Some(vec![to("west", Some("west"))]));
        let west = nc("west", "west", 1, Some(vec![]));
        let all = vec![west.clone(), east.clone()];

        let e = resolve(&east, &all);
        assert_eq!(e.warnings, Vec::<String>::new());
        assert_eq!(
            e.peers,
            vec![GatewayPeer {
                name: "west".into(),
                urls: vec!["nats://west-0.west-headless.west.svc.cluster.local:7222".into()],
            }]
        );
        let w = resolve(&west, &all);
        assert_eq!(w.peers.len(), 1);
        assert_eq!(w.peers[0].name, "east");
        assert_eq!(
            w.peers[0].urls,
            vec![
                "nats://east-0.east-headless.east.svc.cluster.local:7222",
                "nats://east-1.east-headless.east.svc.cluster.local:7222"
            ]
        );
        assert_eq!(named_by(&east)[0].namespace.as_deref(), Some("west"));
    }

    #[test]
    fn problems_are_reported_not_rendered() {
        let a = nc(
            "ns",
            "a",
            1,
            Some(vec![to("missing", None), to("plain", None)]),
        );
        let plain = nc("ns", "plain", 1, None);
        let r = resolve(&a, &[a.clone(), plain]);
        assert!(r.peers.is_empty());
        assert_eq!(r.warnings.len(), 2, "{:?}", r.warnings);
        assert!(r.warnings[0].contains("ns/missing does not exist"));
        assert!(r.warnings[1].contains("no gateways block"));
    }

    #[test]
    fn same_name_in_two_namespaces_is_a_clash() {
        let a = nc(
            "x",
            "a",
            1,
            Some(vec![to("b", Some("one")), to("b", Some("two"))]),
        );
        let b1 = nc("one", "b", 1, Some(vec![]));
        let b2 = nc("two", "b", 1, Some(vec![]));
        let r = resolve(&a, &[a.clone(), b1, b2]);
        assert_eq!(r.peers.len(), 1);
        assert_eq!(r.warnings.len(), 1);
        assert!(r.warnings[0].contains("must be unique"), "{:?}", r.warnings);
    }

    #[test]
    fn index_links_both_directions() {
        let mut idx = PeerIndex::default();
        let a = nc("x", "a", 1, Some(vec![to("b", Some("y"))]));
        let b = nc("y", "b", 1, Some(vec![]));
        assert_eq!(idx.observe(&a), vec![("y".to_string(), "b".to_string())]);
        // b appears later: a, which names it, must re-render.
        assert_eq!(idx.observe(&b), vec![("x".to_string(), "a".to_string())]);
        // a drops the link: b is told once (to drop its side), then no longer.
        let a2 = nc("x", "a", 1, Some(vec![]));
        assert_eq!(idx.observe(&a2), vec![("y".to_string(), "b".to_string())]);
        assert_eq!(idx.observe(&a2), Vec::<(String, String)>::new());
        assert_eq!(idx.observe(&b), Vec::<(String, String)>::new());
    }

    #[test]
    fn no_gateways_block_means_no_peers_even_if_named() {
        let a = nc("ns", "a", 1, None);
        let b = nc("ns", "b", 1, Some(vec![to("a", None)]));
        assert_eq!(resolve(&a, &[a.clone(), b]), Resolved::default());
    }
}
