//! Retained messages in `$MQTT_rmsgs`, one per subject (3.3.1-5): a retained PUBLISH
//! replaces the topic's message, one with an empty payload deletes it (3.3.1-6), and a
//! SUBSCRIBE receives the ones its filter matches, with the retain flag set (3.3.1-9).

use natrix_mqtt::store::{self, RetainedMessage};
use natrix_mqtt::topic;

use super::Session;
use super::jsa::{Jsa, JsaError};

/// Keeps (or, with an empty payload, deletes) the retained message of `subject`.
pub(super) async fn store(
    jsa: &mut Jsa,
    subject: &str,
    topic: &str,
    flags: u8,
    payload: &bytes::Bytes,
) -> Result<(), JsaError> {
    let stored = store::retained_subject(subject);
    if payload.is_empty() {
        return jsa.purge_subject(store::RETAINED_STREAM, &stored).await;
    }
    let m = RetainedMessage {
        topic: topic.to_owned(),
        subject: subject.to_owned(),
        flags,
        origin: String::new(),
        source: String::new(),
        payload: payload.clone(),
    };
    jsa.store(&stored, m.encode_headers().as_bytes(), payload)
        .await
        .map(|_| ())
}

impl Session {
    /// Keeps (or, with an empty payload, deletes) the retained message of `subject`.
    pub(super) async fn store_retained(
        &mut self,
        subject: &str,
        topic: &str,
        flags: u8,
        payload: &bytes::Bytes,
    ) {
        let Some(js) = self.js.as_mut() else {
            return;
        };
        if let Err(e) = store(&mut js.jsa, subject, topic, flags, payload).await {
            tracing::warn!(client = %self.client_id, "MQTT: storing retained message: {e}");
        }
    }

    /// The retained messages whose subjects match `subjects` (a filter's, parent level
    /// included), leaving out `$` topics for a filter starting with a wildcard.
    pub(super) async fn retained_for(
        &mut self,
        subjects: &[String],
        reserved: bool,
    ) -> Vec<RetainedMessage> {
        let Some(js) = self.js.as_mut() else {
            return Vec::new();
        };
        let mut out: Vec<RetainedMessage> = Vec::new();
        for s in subjects {
            let filter = store::retained_subject(s);
            let found = match js.jsa.subjects(store::RETAINED_STREAM, &filter).await {
                Ok(f) => f,
                Err(e) => {
                    tracing::warn!("MQTT: listing retained messages: {e}");
                    continue;
                }
            };
            for stored in found {
                if out
                    .iter()
                    .any(|r| store::retained_subject(&r.subject) == stored)
                {
                    continue;
                }
                let Ok(Some(m)) = js.jsa.last_msg(store::RETAINED_STREAM, &stored).await else {
                    continue;
                };
                match RetainedMessage::decode(&m.subject, &m.headers, m.payload) {
                    Ok(r)
                        if !r.payload.is_empty()
                            && !topic::must_ignore_for_reserved(reserved, &r.subject) =>
                    {
                        out.push(r);
                    }
                    Ok(_) => {}
                    Err(e) => tracing::debug!("MQTT: retained message {stored}: {e}"),
                }
            }
        }
        out
    }
}
