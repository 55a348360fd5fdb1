//! Stream and consumer configs as nats-server checks them on create and update
//! (`checkStreamCfg`, `checkConsumerCfg`, and what an update may change): defaults filled
//! in, then each rule in nats-server's order, so the first failure gives the same error.

use crate::api::errors::{self, ApiError};
use crate::api::json::Nanos;
use crate::api::types::{
    AckPolicy, ConsumerConfig, ConsumerDefaultLimits, DeliverPolicy, RetentionPolicy, StreamConfig,
    StreamDefaultLimits,
};

/// The server's `jetstream { limits {} }` that configs are checked against; 0 is unset.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ServerLimits {
    pub max_duplicate_window: Nanos,
    pub max_request_batch: i64,
    pub max_ack_pending: i64,
}

/// Longest stream or consumer name (nats-server's `JSMaxNameLen`).
const MAX_NAME_LEN: usize = 255;

fn valid_name(name: &str) -> bool {
    !name.is_empty()
        && !name
            .chars()
            .any(|c| c == '.' || c == '*' || c == '>' || c == '\\' || c == '/' || c.is_whitespace())
}

/// A stream config as nats-server stores it, or its error. `others` are the account's
/// other streams (for subject overlaps).
pub fn stream_config(
    cfg: &StreamConfig,
    others: &[StreamConfig],
    limits: &ServerLimits,
) -> Result<StreamConfig, ApiError> {
    if !valid_name(&cfg.name) {
        return Err(errors::stream_invalid_config(
            "stream name is required and can not contain '.', '*', '>', '\\', '/'",
        ));
    }
    if cfg.name.len() > MAX_NAME_LEN {
        return Err(errors::stream_invalid_config(format!(
            "stream name is too long, maximum allowed is {MAX_NAME_LEN}"
        )));
    }
    let mut c = cfg.clone();
    c.apply_defaults(
        &StreamDefaultLimits {
            max_duplicate_window: limits.max_duplicate_window,
        },
        false,
    )?;
    if c.max_age < 0 {
        return Err(errors::stream_invalid_config("max age can not be negative"));
    }
    if c.max_age != 0 && c.max_age < 100_000_000 {
        return Err(errors::stream_invalid_config(
            "max age needs to be >= 100ms",
        ));
    }
    if c.duplicate_window < 0 {
        return Err(errors::stream_invalid_config(
            "duplicates window can not be negative",
        ));
    }
    if c.max_age != 0 && c.duplicate_window > c.max_age {
        return Err(errors::stream_invalid_config(
            "duplicates window can not be larger then max age",
        ));
    }
    if c.num_replicas > 1 {
        return Err(errors::stream_replicas_not_supported());
    }
    for s in &c.subjects {
        if !crate::subject::is_valid_filter(s) {
            return Err(errors::stream_invalid_config(format!(
                "invalid subject: {s}"
            )));
        }
    }
    for o in others {
        for a in &c.subjects {
            if o.subjects.iter().any(|b| crate::subject::collide(a, b)) {
                return Err(errors::stream_subject_overlap());
            }
        }
    }
    Ok(c)
}

/// What an update may change (nats-server's `stream.update` checks).
pub fn stream_update(old: &StreamConfig, new: &StreamConfig) -> Result<StreamConfig, ApiError> {
    if old.storage != new.storage {
        return Err(errors::stream_invalid_config(
            "stream configuration update can not change storage type",
        ));
    }
    if old.retention != new.retention {
        return Err(errors::stream_invalid_config(
            "stream configuration update can not change retention policy",
        ));
    }
    if old.sealed && !new.sealed {
        return Err(errors::stream_invalid_config(
            "stream configuration update can not unseal a sealed stream",
        ));
    }
    if old.deny_delete && !new.deny_delete {
        return Err(errors::stream_invalid_config(
            "stream configuration update can not cancel deny message deletes",
        ));
    }
    if old.deny_purge && !new.deny_purge {
        return Err(errors::stream_invalid_config(
            "stream configuration update can not cancel deny purge",
        ));
    }
    Ok(new.clone())
}

/// A consumer config as nats-server stores it, or its error.
pub fn consumer_config(
    cfg: &ConsumerConfig,
    stream: &StreamConfig,
    limits: &ServerLimits,
) -> Result<ConsumerConfig, ApiError> {
    let mut c = cfg.clone();
    c.apply_defaults(
        &stream.consumer_limits,
        &ConsumerDefaultLimits {
            server_max_ack_pending: limits.max_ack_pending,
            server_max_request_batch: limits.max_request_batch,
            account_max_ack_pending: 0,
        },
        false,
    )?;
    if !c.durable_name.is_empty() && !valid_name(&c.durable_name) {
        return Err(errors::consumer_bad_durable_name());
    }
    if c.deliver_subject.is_empty() && c.idle_heartbeat > 0 {
        return Err(errors::consumer_hb_requires_push());
    }
    if c.deliver_subject.is_empty() && c.flow_control {
        return Err(errors::consumer_fc_requires_push());
    }
    if !c.filter_subject.is_empty() && !c.filter_subjects.is_empty() {
        return Err(errors::consumer_duplicate_filter_subjects());
    }
    if stream.retention == RetentionPolicy::WorkQueue && c.ack_policy != AckPolicy::Explicit {
        return Err(errors::consumer_wq_requires_explicit_ack());
    }
    if stream.retention == RetentionPolicy::WorkQueue && c.deliver_policy != DeliverPolicy::All {
        return Err(errors::consumer_wq_consumer_not_deliver_all());
    }
    Ok(c)
}

/// What a consumer update may change.
pub fn consumer_update(
    old: &ConsumerConfig,
    new: &ConsumerConfig,
) -> Result<ConsumerConfig, ApiError> {
    if old.deliver_policy != new.deliver_policy {
        return Err(errors::consumer_create("deliver policy can not be updated"));
    }
    if old.ack_policy != new.ack_policy {
        return Err(errors::consumer_create("ack policy can not be updated"));
    }
    Ok(new.clone())
}

/// A work-queue stream allows one consumer per subject.
pub fn work_queue_consumer<'a>(
    new: &ConsumerConfig,
    existing: impl Iterator<Item = &'a ConsumerConfig>,
) -> Result<(), ApiError> {
    let filters = crate::consumer::filters_of(new);
    for e in existing {
        let theirs = crate::consumer::filters_of(e);
        if filters.is_empty() || theirs.is_empty() {
            return Err(errors::consumer_wq_multiple_unfiltered());
        }
        if filters
            .iter()
            .any(|a| theirs.iter().any(|b| crate::subject::collide(a, b)))
        {
            return Err(errors::consumer_wq_consumer_not_unique());
        }
    }
    Ok(())
}
