//! A session's state in JetStream, as nats-server keeps it: the account's five MQTT streams
//! (created on first use), the session record in `$MQTT_sess` (loaded at CONNECT, written
//! after every SUBSCRIBE and UNSUBSCRIBE, deleted with the consumers when a clean session
//! ends), and the durable consumers of QoS 1/2 subscriptions.

use std::sync::Arc;
use std::time::Duration;

use natrix_mqtt::store::{self, ConsumerRecord, PersistedSession, SessionV5};

use super::ClientIds;
use super::jsa::{Jsa, JsaError};
use crate::server::Server;

/// nats-server's default for `mqtt { js_api_timeout }`.
const DEFAULT_API_TIMEOUT: Duration = Duration::from_secs(5);

pub struct Persist {
    pub jsa: Jsa,
    client_id: String,
    hash: String,
    /// The record as stored (or to be stored).
    pub record: PersistedSession,
    /// The session outlives the connection (3.1.1 Clean Session 0, 5.0 a session expiry).
    persistent: bool,
    pub ack_wait: Duration,
    pub max_ack_pending: u16,
    pub reject_qos2_pub: bool,
    pub downgrade_qos2_sub: bool,
    consumer_replicas: i64,
    consumer_memory: bool,
    consumer_inactive: Duration,
}

impl Persist {
    /// Connects to the account's JetStream, creating its MQTT streams on first use.
    pub async fn open(
        server: &Arc<Server>,
        ids: &ClientIds,
        account: &str,
        client_id: &str,
        o: &natrix_config::options::MqttOpts,
    ) -> Result<Self, JsaError> {
        let acc = server.account(account).ok_or_else(|| {
            JsaError::Internal(crate::server::internal::InternalError::NoAccount(
                account.to_owned(),
            ))
        })?;
        let timeout = if o.js_api_timeout.is_zero() {
            DEFAULT_API_TIMEOUT
        } else {
            o.js_api_timeout
        };
        let mut jsa = Jsa::connect(server, acc, timeout, &o.js_domain)?;
        if !ids.streams_ready.lock().contains(account) {
            let replicas = usize::try_from(o.stream_replicas.max(1)).unwrap_or(1);
            jsa.create_streams(replicas).await?;
            ids.streams_ready.lock().insert(account.to_owned());
        }
        Ok(Persist {
            jsa,
            client_id: client_id.to_owned(),
            hash: store::client_id_hash(client_id),
            record: PersistedSession::default(),
            persistent: false,
            ack_wait: if o.ack_wait.is_zero() {
                store::DEFAULT_ACK_WAIT
            } else {
                o.ack_wait
            },
            max_ack_pending: if o.max_ack_pending == 0 {
                store::DEFAULT_MAX_ACK_PENDING
            } else {
                o.max_ack_pending
            },
            reject_qos2_pub: o.reject_qos2_publish,
            downgrade_qos2_sub: o.downgrade_qos2_subscribe,
            consumer_replicas: o.stream_replicas.max(0),
            consumer_memory: o.consumer_memory_storage,
            consumer_inactive: o.consumer_inactive_threshold,
        })
    }

    fn subject(&self) -> String {
        store::session_subject("", &self.hash)
    }

    /// Loads the stored session; with `clean`, drops it (and its consumers) instead.
    /// Returns whether a session was resumed (CONNACK's Session Present).
    pub async fn load(&mut self, clean: bool, persistent: bool) -> Result<bool, JsaError> {
        self.persistent = persistent;
        let subject = self.subject();
        let stored = self
            .jsa
            .last_msg(store::SESSIONS_STREAM, &subject)
            .await?
            .and_then(
                |m| match PersistedSession::decode(&m.payload, &self.client_id) {
                    Ok(r) => Some(r),
                    Err(e) => {
                        tracing::warn!(client = %self.client_id, "MQTT: {e}");
                        None
                    }
                },
            );
        self.record = PersistedSession {
            id: self.client_id.clone(),
            clean,
            ..PersistedSession::default()
        };
        // A session whose expiry passed while no timer ran (a restart) is gone.
        let expired = stored
            .as_ref()
            .and_then(|old| old.natrix_v5.as_ref())
            .is_some_and(|v5| v5.expired(now_ms()));
        if expired {
            tracing::debug!(client = %self.client_id, "MQTT: stored session expired");
        }
        match stored {
            Some(old) if clean || expired => {
                self.drop_consumers(&old).await;
                self.jsa
                    .purge_subject(store::SESSIONS_STREAM, &subject)
                    .await?;
                Ok(false)
            }
            Some(old) => {
                self.record.subs = old.subs;
                self.record.cons = old.cons;
                self.record.natrix_v5 = old.natrix_v5;
                self.record.pubrel = old.pubrel;
                // Live again: the recorded end no longer counts, also after a crash.
                if let Some(v5) = self.record.natrix_v5.as_mut()
                    && v5.ended_at_ms != 0
                {
                    v5.ended_at_ms = 0;
                    self.save().await;
                }
                Ok(true)
            }
            None => Ok(false),
        }
    }

    /// The filters of a resumed session with their QoS, as MQTT filters.
    pub fn stored_filters(&self) -> Vec<(String, u8)> {
        self.record
            .subs
            .iter()
            .map(|(subject, qos)| (subject_to_filter(subject), *qos))
            .collect()
    }

    /// Creates the session's PUBREL consumer on `$MQTT_out` (kept in the record).
    pub async fn pubrel_consumer(&mut self) -> Result<(), JsaError> {
        let c = match &self.record.pubrel {
            Some(c) => c.clone(),
            None => ConsumerRecord::for_pubrel(&self.hash, self.ack_wait, self.max_ack_pending),
        };
        self.jsa.create_consumer(store::OUT_STREAM, &c).await?;
        if self.record.pubrel.is_none() {
            self.record.pubrel = Some(c);
            self.save().await;
        }
        Ok(())
    }

    pub fn hash(&self) -> &str {
        &self.hash
    }

    /// Whether the stored session owes PUBRELs (it has a PUBREL consumer).
    pub fn has_pubrel(&self) -> bool {
        self.record.pubrel.is_some()
    }

    async fn drop_consumers(&mut self, record: &PersistedSession) {
        if let Some(c) = &record.pubrel
            && let Err(e) = self
                .jsa
                .delete_consumer(store::OUT_STREAM, &c.durable)
                .await
        {
            tracing::warn!(client = %self.client_id, "MQTT: deleting consumer {}: {e}", c.durable);
        }
        for c in record.cons.values() {
            self.delete_subscription_consumer(c).await;
        }
    }

    /// Deletes the consumer of a subscription this session gives up. A shared one is
    /// kept while another member of its group is connected (subscribed to its deliver
    /// subject): it is theirs too. The caller has dropped this session's own
    /// subscription to it first.
    async fn delete_subscription_consumer(&mut self, c: &ConsumerRecord) {
        if !c.deliver_group.is_empty() && self.jsa.client().has_interest(&c.deliver_subject) {
            return;
        }
        if let Err(e) = self
            .jsa
            .delete_consumer(store::MESSAGES_STREAM, &c.durable)
            .await
            && !e.is_not_found()
        {
            tracing::warn!(client = %self.client_id, "MQTT: deleting consumer {}: {e}", c.durable);
        }
    }

    /// The consumer of a QoS 1/2 subscription on `subject` (`key` is its sid in the
    /// record): the stored one for a resumed session, a new one otherwise; for a shared
    /// subscription (`group`), the one its group has in common.
    pub async fn consumer(
        &mut self,
        key: &str,
        subject: &str,
        group: Option<&str>,
    ) -> Result<ConsumerRecord, JsaError> {
        let c = match (self.record.cons.get(key), group) {
            (Some(c), _) if c.filter_subject == store::message_subject(subject) => c.clone(),
            (_, Some(group)) => {
                let mut c = ConsumerRecord::for_shared_subscription(
                    group,
                    subject,
                    self.ack_wait,
                    self.max_ack_pending,
                );
                // No inactive threshold: members of clean and persistent sessions must
                // create it with the same config; it goes with its last member instead.
                c.num_replicas = self.consumer_replicas;
                c.mem_storage = self.consumer_memory;
                c
            }
            _ => {
                let nuid = crate::server::new_nonce();
                let mut c = ConsumerRecord::for_subscription(
                    store::subscription_durable(&self.hash, &nuid),
                    format!("{}{nuid}", store::SUB_DELIVERY_PREFIX),
                    subject,
                    self.ack_wait,
                    self.max_ack_pending,
                );
                c.num_replicas = self.consumer_replicas;
                c.mem_storage = self.consumer_memory;
                if !self.persistent && !self.consumer_inactive.is_zero() {
                    c.inactive_threshold =
                        i64::try_from(self.consumer_inactive.as_nanos()).unwrap_or(i64::MAX);
                }
                c
            }
        };
        self.jsa.create_consumer(store::MESSAGES_STREAM, &c).await?;
        self.record.cons.insert(key.to_owned(), c.clone());
        Ok(c)
    }

    /// Forgets a consumer and deletes it (a shared one only if no other member of its
    /// group is connected).
    pub async fn remove_consumer(&mut self, key: &str) {
        if let Some(c) = self.record.cons.remove(key) {
            self.delete_subscription_consumer(&c).await;
        }
    }

    /// Writes the record (persistent sessions only: a clean one is never resumed).
    pub async fn save(&mut self) {
        if !self.persistent {
            return;
        }
        let subject = self.subject();
        let body = self.record.encode();
        if let Err(e) = self.jsa.store(&subject, &[], &body).await {
            tracing::warn!(client = %self.client_id, "MQTT: unable to store session: {e}");
        }
    }

    /// The connection ended: a clean session's consumers go (its record was never
    /// written: `save` keeps only persistent sessions, and CONNECT removed an older one).
    pub async fn end(&mut self) {
        if self.persistent {
            return;
        }
        let record = std::mem::take(&mut self.record);
        self.drop_consumers(&record).await;
    }

    /// The connection of a session with a finite Session Expiry Interval (`expiry`
    /// seconds) ended: the record says when, so that the session still expires if the
    /// server restarts before its timer fires.
    pub async fn mark_ended(&mut self, expiry: u32) {
        if !self.persistent {
            return;
        }
        let v5 = self.record.natrix_v5.get_or_insert_with(SessionV5::default);
        v5.session_expiry_interval = expiry;
        v5.ended_at_ms = now_ms();
        self.save().await;
    }

    /// The session ends with its connection after all (5.0 DISCONNECT with a Session
    /// Expiry Interval of 0): its record and consumers go, as for a clean session.
    pub async fn discard(&mut self) {
        self.persistent = false;
        let record = std::mem::take(&mut self.record);
        self.drop_consumers(&record).await;
        let subject = self.subject();
        if let Err(e) = self
            .jsa
            .purge_subject(store::SESSIONS_STREAM, &subject)
            .await
        {
            tracing::warn!(client = %self.client_id, "MQTT: removing session: {e}");
        }
    }

    pub fn client_id(&self) -> &str {
        &self.client_id
    }
}

fn now_ms() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

/// A stored filter subject back to the MQTT filter it came from (`a.*.>` → `a/+/#`).
fn subject_to_filter(subject: &str) -> String {
    let topic = natrix_mqtt::topic::subject_to_topic(subject);
    topic
        .split('/')
        .map(|level| match level {
            "*" => "+",
            ">" => "#",
            other => other,
        })
        .collect::<Vec<_>>()
        .join("/")
}
