//! QoS 1 and 2 both ways, as nats-server does them on JetStream.
//!
//! From the client: a QoS 1 PUBLISH reaches NATS subscribers (with `Nmqtt-Pub:1`) and is
//! stored on `$MQTT.msgs.<subject>`; PUBACK goes out after the store's ack. A QoS 2
//! PUBLISH is staged once in `$MQTT_qos2in` (a resend with the same packet identifier is
//! refused by the stream's discard-new-per-subject) and PUBREC follows the store's ack;
//! PUBREL releases it like a QoS 1 message and PUBCOMP follows.
//!
//! To the client: a QoS 1/2 subscription's durable consumer delivers on `$MQTT.sub.<nuid>`;
//! each delivery gets a packet identifier and is acked to JetStream on PUBACK (QoS 1) or
//! PUBREC (QoS 2, then PUBREL and PUBCOMP). What is not acked is redelivered by the
//! consumer after `ack_wait`, also to the next connection of a persistent session.

use natrix_mqtt::store::{self, PublishHeader};
use natrix_mqtt::{
    MqttString, Packet, Properties, ProtocolVersion, PubResponse, Publish, QoS, ReasonCode, topic,
};
use rustc_hash::{FxHashMap, FxHashSet};

use super::{End, Session};
use crate::server::internal::InternalMsg;

/// A QoS 1/2 message from the client, published to the core and waiting for the PONG
/// that says whether the user may publish there.
pub(super) struct StoredPublish {
    subject: String,
    /// The NATS reply subject (5.0 Response Topic).
    reply: Option<String>,
    headers: Vec<u8>,
    payload: bytes::Bytes,
    /// The topic, when the message is also to be retained.
    retained_topic: Option<String>,
    qos: u8,
    then: Then,
}

/// A header block without the lines of `key`.
fn without_header(headers: &[u8], key: &str) -> Vec<u8> {
    let mut out = Vec::with_capacity(headers.len());
    let mut prefix = key.as_bytes().to_vec();
    prefix.push(b':');
    for line in headers.split_inclusive(|b| *b == b'\n') {
        if !line.starts_with(&prefix) {
            out.extend_from_slice(line);
        }
    }
    out
}

impl StoredPublish {
    pub(super) fn subject(&self) -> &str {
        &self.subject
    }
}

/// What completes a stored publish.
enum Then {
    PubAck(u16),
    /// PUBCOMP once the staged QoS 2 message (`staged`) is released.
    PubComp {
        pid: u16,
        staged: String,
    },
}

/// A pipelined store and what its ack lets the session send.
struct Store {
    /// The store's token; `None` if it could not be sent.
    token: Option<u64>,
    /// `None` until the ack (or error) arrives.
    ok: Option<bool>,
    after: After,
}

enum After {
    /// PUBACK for a QoS 1 PUBLISH stored on `$MQTT.msgs.`.
    Stored(u16),
    /// PUBREC for a QoS 2 PUBLISH staged in `$MQTT_qos2in`.
    Staged(u16),
    /// A released QoS 2 message is stored: its staged copy is purged next.
    Released { pid: u16, staged: String },
    /// PUBCOMP once the staged copy is purged.
    Purged(u16),
    /// PUBREL to a subscriber once the owed PUBREL is in `$MQTT_out` (and the delivery
    /// acked to its consumer).
    RelStored { pid: u16, delivered: Inflight },
}

/// A QoS 1/2 delivery waiting for the client's PUBACK or PUBREC.
struct Inflight {
    qos: QoS,
    /// The JetStream ack subject; `None` for a retained message (nothing to ack).
    ack: Option<String>,
    /// The consumer and stream sequence, to recognise a redelivery.
    key: Option<(String, u64)>,
}

/// A QoS 1/2 subscription's consumer as the session knows it.
pub(super) struct JsSub {
    pub qos: u8,
    pub reserved: bool,
    pub opts: super::v5::SubOptions,
}

#[derive(Default)]
pub(super) struct Outgoing {
    next_pid: u16,
    inflight: FxHashMap<u16, Inflight>,
    by_key: FxHashMap<(String, u64), u16>,
    /// QoS 2 deliveries acknowledged with PUBREC, waiting for PUBCOMP, with the ack
    /// subject of their stored PUBREL in `$MQTT_out` once that is delivered.
    pubrel: FxHashMap<u16, Option<String>>,
    /// PUBCOMPs that came before their stored PUBREL was delivered back to the session.
    pubrel_done: FxHashSet<u16>,
    /// The internal subscription of the session's PUBREL consumer.
    pub pubrel_sid: Option<u64>,
    /// QoS 2 messages staged by this connection, waiting for PUBREL.
    qos2_in: FxHashMap<u16, StoredPublish>,
    /// Stores sent and not yet acknowledged, in order, with what follows each.
    stores: std::collections::VecDeque<Store>,
    /// The internal subscription on a consumer's delivery subject → its subscription.
    pub js_subs: FxHashMap<u64, JsSub>,
    /// MQTT filter → (record key, internal sid) of its consumers.
    pub consumers: FxHashMap<String, Vec<(String, u64)>>,
}

impl Outgoing {
    fn alloc(&mut self) -> Option<u16> {
        for _ in 0..u16::MAX {
            self.next_pid = self.next_pid.wrapping_add(1).max(1);
            if !self.inflight.contains_key(&self.next_pid)
                && !self.pubrel.contains_key(&self.next_pid)
            {
                return Some(self.next_pid);
            }
        }
        None
    }
}

/// `(consumer, delivered count, stream sequence)` from a JetStream ack subject
/// (`$JS.ACK.<stream>.<consumer>.<delivered>.<sseq>...`, with domain and account
/// tokens in the longer form).
fn ack_info(reply: &str) -> Option<(String, u64, u64)> {
    let t: Vec<&str> = reply.split('.').collect();
    let base = match t.len() {
        9 => 0,
        n if n >= 11 => 2,
        _ => return None,
    };
    Some((
        t.get(3 + base)?.to_string(),
        t.get(4 + base)?.parse().ok()?,
        t.get(5 + base)?.parse().ok()?,
    ))
}

impl Session {
    /// Publishes on the core client (NATS subscribers, QoS 0 subscriptions) with headers.
    pub(super) async fn core_publish(
        &mut self,
        subject: &str,
        reply: Option<&str>,
        headers: &[u8],
        payload: &[u8],
    ) -> bool {
        let mut out = Vec::with_capacity(subject.len() + headers.len() + payload.len() + 32);
        let reply = reply.map(|r| format!(" {r}")).unwrap_or_default();
        if headers.is_empty() {
            out.extend_from_slice(format!("PUB {subject}{reply} {}\r\n", payload.len()).as_bytes());
        } else {
            let total = headers.len() + payload.len();
            out.extend_from_slice(
                format!("HPUB {subject}{reply} {} {total}\r\n", headers.len()).as_bytes(),
            );
            out.extend_from_slice(headers);
        }
        out.extend_from_slice(payload);
        out.extend_from_slice(b"\r\n");
        tokio::io::AsyncWriteExt::write_all(&mut self.core_in, &out)
            .await
            .is_ok()
    }

    /// A QoS 1 or 2 PUBLISH from the client (JetStream is on).
    pub(super) async fn publish_stored(
        &mut self,
        p: Publish,
        subject: String,
        headers: Vec<u8>,
        reply: Option<String>,
    ) -> Option<End> {
        let js = self.js.as_mut()?;
        if p.qos == QoS::ExactlyOnce {
            if js.reject_qos2_pub {
                // nats-server closes the connection of a client that publishes QoS 2 then.
                self.protocol_error(ReasonCode::QoSNotSupported);
                return Some(End::Dropped("QoS-2 PUBLISH rejected"));
            }
            // The headers it will be published with, plus its subject (nats-server's
            // `Nmqtt-Subject`), which PUBREL reads back.
            let mut h = format!("NATS/1.0\r\n{}:{subject}\r\n", store::HEADER_SUBJECT).into_bytes();
            h.extend_from_slice(headers.strip_prefix(b"NATS/1.0\r\n").unwrap_or(b"\r\n"));
            let staged = store::qos2_incoming_subject(js.client_id(), p.packet_id);
            self.queue_store(&staged, &h, &p.payload, After::Staged(p.packet_id));
            // Kept here too, so that PUBREL on this connection need not read it back; the
            // first copy stands, as in the stream (a resend does not replace it).
            self.outgoing
                .qos2_in
                .entry(p.packet_id)
                .or_insert_with(|| StoredPublish {
                    retained_topic: p.retain.then(|| p.topic.as_str().to_owned()),
                    subject,
                    reply,
                    headers,
                    payload: p.payload.clone(),
                    qos: 2,
                    then: Then::PubComp {
                        pid: p.packet_id,
                        staged,
                    },
                });
            return None;
        }
        self.publish_then_store(StoredPublish {
            subject,
            reply,
            headers,
            payload: p.payload,
            retained_topic: p.retain.then(|| p.topic.as_str().to_owned()),
            qos: 1,
            then: Then::PubAck(p.packet_id),
        })
        .await
    }

    /// Publishes on the core client followed by a PING: the store happens when the PONG
    /// comes back, unless an `-ERR` before it says the user may not publish there (then
    /// the message is dropped, as for a QoS 0 PUBLISH, and still acknowledged).
    async fn publish_then_store(&mut self, p: StoredPublish) -> Option<End> {
        if !self
            .core_publish(&p.subject, p.reply.as_deref(), &p.headers, &p.payload)
            .await
            || tokio::io::AsyncWriteExt::write_all(&mut self.core_in, b"PING\r\n")
                .await
                .is_err()
        {
            return Some(End::Dropped("closed by the server"));
        }
        self.pending.push_back(super::Pending::Publish(Box::new(p)));
        None
    }

    /// The core accepted (or refused) a stored publish: store it, then PUBACK / PUBCOMP.
    pub(super) async fn complete_publish(&mut self, p: StoredPublish, denied: bool) {
        if denied {
            tracing::debug!(client = %self.client_id, subject = %p.subject,
                "MQTT: QoS {} PUBLISH refused by permissions", p.qos);
            match p.then {
                Then::PubAck(pid) => {
                    self.send(&Packet::PubAck(PubResponse::new(pid)));
                }
                Then::PubComp { pid, staged } => {
                    let body = serde_json::json!({ "filter": staged }).to_string();
                    let purge = self.staged_purge();
                    self.queue_store(&purge, &[], body.as_bytes(), After::Purged(pid));
                }
            }
            return;
        }
        if let Some(topic) = &p.retained_topic {
            let flags = (p.qos << 1) | 1;
            self.store_retained(&p.subject, topic, flags, &p.payload)
                .await;
        }
        let after = match p.then {
            Then::PubAck(pid) => After::Stored(pid),
            Then::PubComp { pid, staged } => After::Released { pid, staged },
        };
        let subject = store::message_subject(&p.subject);
        self.queue_store(&subject, &p.headers, &p.payload, after);
    }

    /// The API subject that removes a staged QoS 2 message (in `mqtt { js_domain }`'s
    /// JetStream when set).
    fn staged_purge(&self) -> String {
        let rest = format!("STREAM.PURGE.{}", store::QOS2_INCOMING_STREAM);
        match &self.js {
            Some(js) => js.jsa.api(&rest),
            None => format!("$JS.API.{rest}"),
        }
    }

    /// Sends a store and queues what follows its ack. Acknowledgements to the client go
    /// out in the order the stores were queued (4.6: PUBACKs in PUBLISH order), each only
    /// after its own store was acknowledged.
    fn queue_store(&mut self, subject: &str, headers: &[u8], payload: &[u8], after: After) {
        self.push_store(subject, headers, payload, after);
        self.drain_stores();
    }

    fn push_store(&mut self, subject: &str, headers: &[u8], payload: &[u8], after: After) {
        let token = self
            .js
            .as_mut()
            .and_then(|js| js.jsa.send_store(subject, headers, payload));
        self.outgoing.stores.push_back(Store {
            token,
            ok: if token.is_none() { Some(false) } else { None },
            after,
        });
    }

    /// A pipelined store's ack (or error) arrived.
    fn store_done(&mut self, token: u64, res: Result<u64, super::jsa::JsaError>) {
        // A resent QoS 2 PUBLISH finds its first copy staged: that one stands.
        let ok = match &res {
            Ok(_) => true,
            Err(super::jsa::JsaError::Api { code, .. }) => *code == 10077 || *code == 10071,
            Err(_) => false,
        };
        if let Err(e) = &res
            && !ok
        {
            tracing::warn!(client = %self.client_id, "MQTT: store failed: {e}");
        }
        if let Some(s) = self
            .outgoing
            .stores
            .iter_mut()
            .find(|s| s.token == Some(token))
        {
            s.ok = Some(ok);
        }
        self.drain_stores();
    }

    fn drain_stores(&mut self) {
        while self.outgoing.stores.front().is_some_and(|s| s.ok.is_some()) {
            let Some(s) = self.outgoing.stores.pop_front() else {
                return;
            };
            let ok = s.ok == Some(true);
            match s.after {
                // Not stored: no PUBACK, so the client sends it again.
                After::Stored(pid) if ok => {
                    self.send(&Packet::PubAck(PubResponse::new(pid)));
                }
                After::Stored(_) => {}
                // Not staged: no PUBREC, so the client sends it again.
                After::Staged(pid) if ok => {
                    self.send(&Packet::PubRec(PubResponse::new(pid)));
                }
                After::Staged(_) => {}
                // PUBCOMP only once the staged copy is gone: the client may reuse the
                // packet identifier right after it, and a new QoS 2 PUBLISH must not find
                // the old copy in its place.
                After::Released { pid, staged } if ok => {
                    let body = serde_json::json!({ "filter": staged }).to_string();
                    let purge = self.staged_purge();
                    self.push_store(&purge, &[], body.as_bytes(), After::Purged(pid));
                }
                After::Released { .. } => {}
                After::Purged(pid) => {
                    if !ok {
                        tracing::warn!(client = %self.client_id, "MQTT: staged QoS 2 message {pid} not purged");
                    }
                    self.send(&Packet::PubComp(PubResponse::new(pid)));
                }
                After::RelStored { pid, delivered } => {
                    self.js_ack(&delivered);
                    self.outgoing.pubrel.insert(pid, None);
                    self.send(&Packet::PubRel(PubResponse::new(pid)));
                }
            }
        }
    }

    pub(super) async fn store_message(
        &mut self,
        subject: &str,
        headers: &[u8],
        payload: &[u8],
    ) -> bool {
        let Some(js) = self.js.as_mut() else {
            return false;
        };
        match js
            .jsa
            .store(&store::message_subject(subject), headers, payload)
            .await
        {
            Ok(_) => true,
            Err(e) => {
                tracing::warn!(client = %self.client_id, "MQTT: storing QoS message: {e}");
                false
            }
        }
    }

    /// PUBREL from the client: releases the staged QoS 2 message.
    pub(super) async fn pubrel(&mut self, pid: u16) -> Option<End> {
        let Some(js) = self.js.as_mut() else {
            self.protocol_error(ReasonCode::ProtocolError);
            return Some(End::Dropped("PUBREL without a QoS 2 message"));
        };
        if let Some(held) = self.outgoing.qos2_in.remove(&pid) {
            return self.publish_then_store(held).await;
        }
        let staged = store::qos2_incoming_subject(js.client_id(), pid);
        let msg = match js.jsa.last_msg(store::QOS2_INCOMING_STREAM, &staged).await {
            Ok(m) => m,
            Err(e) => {
                tracing::warn!(client = %self.client_id, "MQTT: reading QoS 2 message: {e}");
                return None;
            }
        };
        match msg.and_then(|m| Some((PublishHeader::decode(&m.headers)?, m))) {
            Some((
                PublishHeader {
                    subject: Some(subject),
                    flags,
                    ..
                },
                m,
            )) => {
                let retained_topic = flags
                    .is_some_and(|f| f & 1 == 1)
                    .then(|| topic::subject_to_topic(&subject).into_owned());
                let reply = store::header_value(&m.headers, "Nmqtt-Resp")
                    .and_then(|r| std::str::from_utf8(r).ok())
                    .map(str::to_owned);
                return self
                    .publish_then_store(StoredPublish {
                        subject,
                        reply,
                        headers: without_header(&m.headers, store::HEADER_SUBJECT),
                        payload: m.payload,
                        retained_topic,
                        qos: 2,
                        then: Then::PubComp { pid, staged },
                    })
                    .await;
            }
            _ => {
                let mut r = PubResponse::new(pid);
                if self.version == ProtocolVersion::V5 {
                    r.reason = ReasonCode::PacketIdentifierNotFound;
                }
                self.send(&Packet::PubComp(r));
            }
        }
        None
    }

    /// A message from a QoS 1/2 subscription's consumer.
    pub(super) fn js_deliver(&mut self, m: &InternalMsg) {
        if let Some((token, res)) = self.js.as_mut().and_then(|js| js.jsa.take_store_reply(m)) {
            self.store_done(token, res);
            return;
        }
        if self.outgoing.pubrel_sid == Some(m.sid) {
            self.pubrel_delivery(m);
            return;
        }
        let Some(sub) = self.outgoing.js_subs.get(&m.sid) else {
            return;
        };
        let (granted, reserved, opts) = (sub.qos, sub.reserved, sub.opts);
        // The client's Receive Maximum (3.3.4-9): no more QoS 1/2 deliveries in flight
        // than it allows; the rest wait for a PUBACK or PUBCOMP.
        if self.outgoing.inflight.len() + self.outgoing.pubrel.len()
            >= usize::from(self.v5.receive_maximum)
        {
            let redelivery = m
                .reply
                .as_ref()
                .and_then(|r| std::str::from_utf8(r).ok())
                .and_then(ack_info)
                .is_some_and(|(c, _, seq)| self.outgoing.by_key.contains_key(&(c, seq)));
            if !redelivery {
                self.v5.waiting.push_back(m.clone());
                return;
            }
        }
        let Ok(full) = std::str::from_utf8(&m.subject) else {
            return;
        };
        let subject = full
            .strip_prefix(store::MESSAGES_SUBJECT_PREFIX)
            .unwrap_or(full);
        let reply = m
            .reply
            .as_ref()
            .and_then(|r| std::str::from_utf8(r).ok())
            .map(str::to_owned);
        let ack = |s: &Session| {
            if let (Some(js), Some(r)) = (s.js.as_ref(), reply.as_deref()) {
                js.jsa.client().publish(r, None, &[], b"");
            }
        };
        if topic::must_ignore_for_reserved(reserved, subject) {
            ack(self);
            return;
        }
        let mut properties = Properties::default();
        let d = super::v5::delivery(
            m,
            None,
            opts,
            Some(self.v5.origin.as_str()),
            self.version == ProtocolVersion::V5,
            &mut properties,
        );
        if d.expired || d.own {
            ack(self);
            return;
        }
        let pub_qos = PublishHeader::decode(&m.headers).map_or(1, |h| h.qos.min(2));
        let qos = QoS::from_u8(granted.min(pub_qos)).unwrap_or(QoS::AtMostOnce);
        let info = reply.as_deref().and_then(ack_info);
        let key = info.as_ref().map(|(c, _, seq)| (c.clone(), *seq));
        let mut dup = info
            .as_ref()
            .is_some_and(|(_, delivered, _)| *delivered > 1);
        let pid = if qos == QoS::AtMostOnce {
            ack(self);
            0
        } else if let Some(pid) = key
            .as_ref()
            .and_then(|k| self.outgoing.by_key.get(k))
            .copied()
        {
            dup = true;
            if let Some(f) = self.outgoing.inflight.get_mut(&pid) {
                f.ack.clone_from(&reply);
            }
            pid
        } else {
            let Some(pid) = self.outgoing.alloc() else {
                // Every identifier in flight: the consumer redelivers it later.
                return;
            };
            if let Some(k) = &key {
                self.outgoing.by_key.insert(k.clone(), pid);
            }
            self.outgoing.inflight.insert(
                pid,
                Inflight {
                    qos,
                    ack: reply.clone(),
                    key,
                },
            );
            pid
        };
        let Ok(t) = MqttString::try_from_bytes(bytes::Bytes::from(
            topic::subject_to_topic(subject).into_owned(),
        )) else {
            return;
        };
        let sent = self.send(&Packet::Publish(Publish {
            dup: dup && qos != QoS::AtMostOnce,
            qos,
            retain: d.retained && opts.retain_as_published,
            topic: t,
            packet_id: pid,
            properties,
            payload: m.payload.clone(),
        }));
        if !sent && qos != QoS::AtMostOnce {
            // Over the client's Maximum Packet Size: as if delivered (3.1.2-25).
            if let Some(f) = self.outgoing.inflight.remove(&pid) {
                self.js_ack(&f);
            }
        }
    }

    /// Deliveries that waited for room under the Receive Maximum.
    fn release_waiting(&mut self) {
        while self.outgoing.inflight.len() + self.outgoing.pubrel.len()
            < usize::from(self.v5.receive_maximum)
        {
            let Some(m) = self.v5.waiting.pop_front() else {
                return;
            };
            self.js_deliver(&m);
        }
    }

    /// Sends a retained message at `qos` (after a SUBACK).
    pub(super) fn send_retained(&mut self, r: &store::RetainedMessage, qos: QoS) {
        let Ok(t) = MqttString::try_from_bytes(bytes::Bytes::from(r.topic.clone())) else {
            return;
        };
        let pid = if qos == QoS::AtMostOnce {
            0
        } else {
            let Some(pid) = self.outgoing.alloc() else {
                return;
            };
            self.outgoing.inflight.insert(
                pid,
                Inflight {
                    qos,
                    ack: None,
                    key: None,
                },
            );
            pid
        };
        self.send(&Packet::Publish(Publish {
            dup: false,
            qos,
            retain: true,
            topic: t,
            packet_id: pid,
            properties: Properties::default(),
            payload: r.payload.clone(),
        }));
    }

    fn js_ack(&mut self, f: &Inflight) {
        if let Some(k) = &f.key {
            self.outgoing.by_key.remove(k);
        }
        if let (Some(js), Some(r)) = (self.js.as_ref(), f.ack.as_deref()) {
            js.jsa.client().publish(r, None, &[], b"");
        }
    }

    /// PUBACK: a QoS 1 delivery is done.
    pub(super) fn puback(&mut self, pid: u16) {
        if let Some(f) = self.outgoing.inflight.remove(&pid) {
            self.js_ack(&f);
        }
        self.release_waiting();
    }

    /// PUBREC: a QoS 2 delivery is received; PUBREL follows. The PUBREL owed is stored
    /// in `$MQTT_out` first, so a reconnecting session sends it again (4.4-1).
    pub(super) async fn pubrec(&mut self, pid: u16) {
        let mut r = PubResponse::new(pid);
        match self.outgoing.inflight.remove(&pid) {
            Some(f) => {
                if f.qos != QoS::ExactlyOnce {
                    tracing::debug!(client = %self.client_id, "MQTT: PUBREC for a QoS 1 message");
                }
                self.ensure_pubrel_consumer().await;
                let subject = self
                    .js
                    .as_ref()
                    .map(|js| store::pubrel_subject(js.hash()))
                    .unwrap_or_default();
                let h = store::pubrel_headers(pid);
                // PUBREL follows once the owed PUBREL is stored.
                self.queue_store(
                    &subject,
                    h.as_bytes(),
                    b"",
                    After::RelStored { pid, delivered: f },
                );
                return;
            }
            None if self.outgoing.pubrel.contains_key(&pid) => {}
            None if self.version == ProtocolVersion::V5 => {
                r.reason = ReasonCode::PacketIdentifierNotFound;
            }
            None => {}
        }
        self.send(&Packet::PubRel(r));
    }

    /// The session's PUBREL consumer on `$MQTT_out`, created on first need (or at
    /// CONNECT for a resumed session that has one).
    pub(super) async fn ensure_pubrel_consumer(&mut self) {
        if self.outgoing.pubrel_sid.is_some() {
            return;
        }
        let Some(js) = self.js.as_mut() else {
            return;
        };
        let deliver = store::pubrel_delivery_subject(js.hash());
        let sid = match js.jsa.client().subscribe(&deliver, None) {
            Ok(sid) => sid,
            Err(e) => {
                tracing::warn!(client = %self.client_id, "MQTT: PUBREL subscription: {e}");
                return;
            }
        };
        match js.pubrel_consumer().await {
            Ok(()) => self.outgoing.pubrel_sid = Some(sid),
            Err(e) => {
                js.jsa.client().unsubscribe(sid);
                tracing::warn!(client = %self.client_id, "MQTT: PUBREL consumer: {e}");
            }
        }
    }

    /// A stored PUBREL delivered to the session: on a new connection it is sent again;
    /// its ack waits for the PUBCOMP.
    fn pubrel_delivery(&mut self, m: &InternalMsg) {
        let Some(pid) = store::pubrel_packet_id(&m.headers) else {
            return;
        };
        let ack = m
            .reply
            .as_ref()
            .and_then(|r| std::str::from_utf8(r).ok())
            .map(str::to_owned);
        if self.outgoing.pubrel_done.remove(&pid) {
            if let (Some(js), Some(a)) = (self.js.as_ref(), ack.as_deref()) {
                js.jsa.client().publish(a, None, &[], b"");
            }
            return;
        }
        let resend = !self.outgoing.pubrel.contains_key(&pid);
        self.outgoing.pubrel.insert(pid, ack);
        if resend {
            self.send(&Packet::PubRel(PubResponse::new(pid)));
        }
    }

    /// PUBCOMP: a QoS 2 delivery is complete; its stored PUBREL goes.
    pub(super) fn pubcomp(&mut self, pid: u16) {
        match self.outgoing.pubrel.remove(&pid) {
            Some(Some(ack)) => {
                if let Some(js) = self.js.as_ref() {
                    js.jsa.client().publish(&ack, None, &[], b"");
                }
            }
            Some(None) => {
                self.outgoing.pubrel_done.insert(pid);
            }
            None => {}
        }
        self.release_waiting();
    }
}
