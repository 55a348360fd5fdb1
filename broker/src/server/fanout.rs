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

use super::client::{ClientHandle, ConnKind, Subscription};
use super::outbound::{Outbound, Push};
use super::{Server, deliver_deferred};
use crate::account::Account;
use crate::cluster::proto;
use crate::protocol::encode::Delivery;

/// The ack subject JetStream puts on each delivery.
const JS_ACK: &[u8] = b"$JS.ACK.";

/// A JetStream delivery travels between servers under its deliver subject (that is what
/// the receiving side routes by), with the subject its subscribers must see appended to
/// the ack reply: `$JS.ACK.<stream>.<consumer>.<…>@<subject>`, as nats-server sends it.
/// Subjects may hold `@`, so only the first one after the ack's eight dots counts.
/// Returns the ack reply and the subject to show.
pub(crate) fn split_js_reply(reply: &[u8]) -> Option<(&[u8], &[u8])> {
    if !reply.starts_with(JS_ACK) {
        return None;
    }
    let mut dots = 0;
    for (i, b) in reply.iter().enumerate() {
        match b {
            b'.' => dots += 1,
            b'@' if dots >= 8 => return Some((&reply[..i], &reply[i + 1..])),
            _ => {}
        }
    }
    None
}

/// The reply a JetStream delivery of `subject` carries to another server (see
/// [`split_js_reply`]); `None` when `reply` is no ack subject or carries one already.
pub(crate) fn js_reply_with_subject(reply: &[u8], subject: &[u8]) -> Option<Vec<u8>> {
    if !reply.starts_with(JS_ACK) || split_js_reply(reply).is_some() {
        return None;
    }
    let mut v = Vec::with_capacity(reply.len() + 1 + subject.len());
    v.extend_from_slice(reply);
    v.push(b'@');
    v.extend_from_slice(subject);
    Some(v)
}

/// A message entering this server from somewhere other than a client connection.
pub(crate) struct Inbound<'a> {
    /// The subject subscribers see.
    pub subject: &'a [u8],
    /// The subject matched against subscriptions when it differs from `subject`:
    /// JetStream delivers a stored message to a consumer's deliver subject (or a pull
    /// request's inbox) under the message's own subject, as nats-server does.
    pub deliver_to: Option<&'a [u8]>,
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
    let result = account
        .sublist
        .match_subject(m.deliver_to.unwrap_or(m.subject));
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
    let leafnodes = server.leafnodes();
    let reachable = |s: &&Arc<Subscription>| match s.client.kind {
        ConnKind::Client => true,
        ConnKind::Route => m.to_routes,
        ConnKind::Gateway => false,
        ConnKind::Leaf => leafnodes
            .is_some_and(|l| l.reachable(s.client.cid, m.subject, !m.to_routes) && !s.is_closed()),
    };
    let mut links: Vec<(&Arc<Subscription>, Vec<Bytes>)> = Vec::new();
    let mut sent = 0u64;
    for sub in result.psubs.iter().filter(reachable) {
        match sub.client.kind {
            ConnKind::Route | ConnKind::Leaf if !sub.is_closed() => {
                add_link(&mut links, sub, None);
            }
            ConnKind::Route | ConnKind::Leaf | ConnKind::Gateway => {}
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
        // Members behind a leaf connection only when no other member is reachable.
        let mut members: Vec<&Arc<Subscription>> = group
            .iter()
            .filter(reachable)
            .filter(|s| s.client.kind != ConnKind::Leaf)
            .collect();
        if members.is_empty() {
            members = group.iter().filter(reachable).collect();
        }
        if members.is_empty() {
            continue;
        }
        let start = super::client::pick_member(members.iter().map(|s| &***s));
        for i in 0..members.len() {
            let sub = members[(start + i) % members.len()];
            if sub.client.kind != ConnKind::Client {
                if !sub.is_closed() {
                    add_link(&mut links, sub, Some(name));
                    break;
                }
            } else if deliver_deferred(account, sub, &delivery, to_flush) {
                sent += 1;
                break;
            }
        }
    }
    // A JetStream delivery made here carries its subject in the reply; one that came
    // from another server has it in its `route_reply` already.
    let with_subject = match (m.deliver_to, m.reply, m.route_reply) {
        (Some(_), Some(r), None) if !links.is_empty() => js_reply_with_subject(r, m.subject),
        _ => None,
    };
    for (sub, queues) in &links {
        let reply = if let Some(r) = &with_subject {
            Some(&r[..])
        } else if m.deliver_to.is_some() || sub.client.kind == ConnKind::Route {
            m.route_reply.or(m.reply)
        } else {
            m.reply
        };
        // Other servers route by the subject they are sent, so a JetStream delivery
        // travels under its deliver subject.
        let d = Delivery {
            subject: m.deliver_to.unwrap_or(m.subject),
            reply,
            ..delivery
        };
        if push_link(&sub.client, account.name(), &d, queues, to_flush) {
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

/// Notes that a route or leaf connection gets the message (for queue group `queue`, if
/// any); each is sent a message once, with every group it was picked for.
fn add_link<'a>(
    links: &mut Vec<(&'a Arc<Subscription>, Vec<Bytes>)>,
    sub: &'a Arc<Subscription>,
    queue: Option<&Bytes>,
) {
    match links
        .iter_mut()
        .find(|(s, _)| Arc::ptr_eq(&s.client, &sub.client))
    {
        Some((_, queues)) => queues.extend(queue.cloned()),
        None => links.push((sub, queue.cloned().into_iter().collect())),
    }
}

/// Queues a message on a route (`RMSG`/`HMSG` in `account`) or a leaf connection
/// (`LMSG`/`HMSG`), naming the queue groups it was picked for; an outbound to flush
/// after the batch goes to `to_flush`. False if the connection is closed.
pub(crate) fn push_link(
    link: &ClientHandle,
    account: &str,
    d: &Delivery<'_>,
    queues: &[Bytes],
    to_flush: &mut Vec<Arc<Outbound>>,
) -> bool {
    let headers = link.headers.load(Ordering::Relaxed);
    let push = if link.kind == ConnKind::Leaf {
        link.outbound.push_msg(
            crate::leafnode::delivery_len(d, queues),
            d.msg.len(),
            |out| {
                crate::leafnode::encode_delivery(out, d, queues, headers);
            },
        )
    } else {
        let out = proto::Outgoing {
            account,
            subject: d.subject,
            reply: d.reply,
            queues,
            hdr: d.hdr,
            msg: d.msg,
        };
        let len =
            d.wire_len() + account.len() + queues.iter().map(|q| q.len() + 1).sum::<usize>() + 8;
        link.outbound.push_msg(len, d.msg.len(), |buf| {
            proto::encode_msg(buf, &out, headers);
        })
    };
    if push.needs_flush() {
        to_flush.push(link.outbound.clone());
    }
    !matches!(push, Push::Closed)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn js_reply_carries_the_subject_after_the_ack_tokens() {
        let ack = b"$JS.ACK.ORDERS.C.1.2.3.1796420915911551255.0";
        let v = js_reply_with_subject(ack, b"orders.@x").unwrap_or_default();
        assert_eq!(v, b"$JS.ACK.ORDERS.C.1.2.3.1796420915911551255.0@orders.@x");
        assert_eq!(
            split_js_reply(&v),
            Some((&ack[..], &b"orders.@x"[..])),
            "the first @ after eight dots splits"
        );
        // Never twice, and only on ack subjects.
        assert_eq!(js_reply_with_subject(&v, b"y"), None);
        assert_eq!(js_reply_with_subject(b"_INBOX.a", b"y"), None);
        // An `@` inside the stream or consumer name is part of the ack.
        assert_eq!(split_js_reply(b"$JS.ACK.A@B.C.1.2.3.4.0"), None);
        assert_eq!(split_js_reply(b"_INBOX.x@y"), None);
    }
}
