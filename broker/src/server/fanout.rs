//! Delivery of messages that do not come from a client's read loop: system messages,
//! messages routed from a peer, messages arriving over a gateway.
//!
//! A client's publish batches flushes per read (`Client::deliver`); here each message is
//! flushed as it goes. What differs by origin is where a message may go next: a message
//! from a route stays on this server (the sender already offered it to every peer), one
//! from a gateway or from the server itself may still cross the routes of this cluster,
//! and never goes back out to a gateway.

use std::sync::Arc;
use std::sync::atomic::Ordering;

use bytes::Bytes;

use super::client::{ConnKind, Subscription};
use super::outbound::{Outbound, Push};
use super::{Server, deliver_deferred};
use crate::account::Account;
use crate::cluster::proto;
use crate::protocol::encode::Delivery;

/// A message entering this server from somewhere other than a client connection.
pub(crate) struct Inbound<'a> {
    pub subject: &'a [u8],
    /// The reply subject local clients see.
    pub reply: Option<&'a [u8]>,
    /// The reply subject forwarded on routes, when it differs (a gateway-mapped reply
    /// travels in its `_GR_.` form so the server that delivers it can map it back).
    pub route_reply: Option<&'a [u8]>,
    pub hdr: usize,
    pub msg: &'a [u8],
    /// Only these queue groups get the message (`None`: every group).
    pub queues: Option<&'a [Bytes]>,
    /// Whether matching routes get the message too.
    pub to_routes: bool,
}

/// Delivers `m` in `account`: to local subscribers and, with `to_routes`, once to each
/// route with interest. Returns how many deliveries were made (a route counts once).
/// Outbound buffers to flush once the caller's batch is queued go to `to_flush`.
pub(crate) fn deliver(
    server: &Server,
    account: &Account,
    m: &Inbound<'_>,
    to_flush: &mut Vec<Arc<Outbound>>,
) -> u64 {
    let result = account.sublist.match_subject(m.subject);
    if result.is_empty() {
        return 0;
    }
    let mut size = itoa::Buffer::new();
    let mut hdr_buf = itoa::Buffer::new();
    let delivery = Delivery {
        subject: m.subject,
        sid: &[],
        reply: m.reply,
        hdr: m.hdr,
        msg: m.msg,
        size_arg: size.format(m.msg.len()).as_bytes(),
        hdr_arg: if m.hdr > 0 {
            hdr_buf.format(m.hdr).as_bytes()
        } else {
            &[]
        },
    };
    let reachable = |s: &&Arc<Subscription>| match s.client.kind {
        ConnKind::Client => true,
        ConnKind::Route => m.to_routes,
        ConnKind::Gateway => false,
    };
    let mut routes: Vec<(&Arc<Subscription>, Vec<Bytes>)> = Vec::new();
    let mut sent = 0u64;
    for sub in result.psubs.iter().filter(reachable) {
        match sub.client.kind {
            ConnKind::Route if !sub.is_closed() => add_route(&mut routes, sub, None),
            ConnKind::Route | ConnKind::Gateway => {}
            ConnKind::Client => {
                sent += u64::from(deliver_deferred(account, sub, &delivery, to_flush));
            }
        }
    }
    for group in &result.qsubs {
        let Some(name) = group.first().and_then(|s| s.queue.as_ref()) else {
            continue;
        };
        if let Some(allowed) = m.queues
            && !allowed.iter().any(|q| q == name)
        {
            continue;
        }
        let members: Vec<&Arc<Subscription>> = group.iter().filter(reachable).collect();
        if members.is_empty() {
            continue;
        }
        let start = super::client::pick_member(members.iter().map(|s| &***s));
        for i in 0..members.len() {
            let sub = members[(start + i) % members.len()];
            if sub.client.kind == ConnKind::Route {
                if !sub.is_closed() {
                    add_route(&mut routes, sub, Some(name));
                    break;
                }
            } else if deliver_deferred(account, sub, &delivery, to_flush) {
                sent += 1;
                break;
            }
        }
    }
    for (sub, queues) in &routes {
        if forward(account, sub, m, queues, to_flush) {
            sent += 1;
        }
    }
    server.stats.out_msgs.fetch_add(sent, Ordering::Relaxed);
    server
        .stats
        .out_bytes
        .fetch_add(sent * m.msg.len() as u64, Ordering::Relaxed);
    sent
}

/// Notes that a route gets the message (for queue group `queue`, if any); a route is
/// sent a message once, with every group it was picked for.
fn add_route<'a>(
    routes: &mut Vec<(&'a Arc<Subscription>, Vec<Bytes>)>,
    sub: &'a Arc<Subscription>,
    queue: Option<&Bytes>,
) {
    match routes
        .iter_mut()
        .find(|(s, _)| Arc::ptr_eq(&s.client, &sub.client))
    {
        Some((_, queues)) => queues.extend(queue.cloned()),
        None => routes.push((sub, queue.cloned().into_iter().collect())),
    }
}

/// Sends the message on one route as `RMSG`/`HMSG`.
fn forward(
    account: &Account,
    sub: &Arc<Subscription>,
    m: &Inbound<'_>,
    queues: &[Bytes],
    to_flush: &mut Vec<Arc<Outbound>>,
) -> bool {
    let route = &sub.client;
    let headers = route.headers.load(Ordering::Relaxed);
    let out = proto::Outgoing {
        account: account.name(),
        subject: m.subject,
        reply: m.route_reply.or(m.reply),
        queues,
        hdr: m.hdr,
        msg: m.msg,
    };
    let len = m.subject.len()
        + m.msg.len()
        + account.name().len()
        + out.reply.map_or(0, <[u8]>::len)
        + queues.iter().map(|q| q.len() + 1).sum::<usize>()
        + 48;
    let push = route
        .outbound
        .push_with(len, |buf| proto::encode_msg(buf, &out, headers));
    if push.needs_flush() {
        to_flush.push(route.outbound.clone());
    }
    if matches!(push, Push::Closed) {
        return false;
    }
    route.out_msgs.fetch_add(1, Ordering::Relaxed);
    route
        .out_bytes
        .fetch_add(m.msg.len() as u64, Ordering::Relaxed);
    true
}
