//! Priority groups of pull consumers (`priority_policy`, `priority_groups`), as
//! nats-server 2.11+ runs them:
//!
//! - `overflow`: a pull request may carry `min_pending` and/or `min_ack_pending`; it is
//!   served only while the consumer has at least that many messages pending (counting
//!   the one about to go) or that many awaiting an ack. Other requests are skipped, not
//!   refused, so a standby fleet picks up only when the main one falls behind.
//! - `pinned_client`: the first request served gets a pin id (a nuid); every message
//!   then carries `Nats-Pin-Id`, and only requests naming that id are served. Requests
//!   without an id wait; requests with another id are ended with `423`. The pin lapses
//!   after `priority_timeout` without a pull request naming it, or on
//!   `CONSUMER.UNPIN`, and `$JS.EVENT.ADVISORY.CONSUMER.PINNED`/`UNPINNED` say so.
//! - `prioritized`: requests are queued by their `priority` (0 first, 9 last; a request
//!   without one after all), first come first served within a priority.
//!
//! This module holds the decisions (pure functions, unit-tested here) and the pin
//! state; `consumer.rs` applies them to its queue of waiting requests.

use std::time::{Duration, Instant};

use crate::api::types::{ConsumerConfig, PriorityPolicy};
use crate::bus::Conn;
use crate::time::{now_nanos, nuid, rfc3339};

/// The message header that tells a pinned client its pin id.
pub const PIN_ID_HEADER: &str = "Nats-Pin-Id";
/// The status line of a request ended because it names another pin (nats-server's
/// `nextWaiting`; the text differs from the refusal at request time).
pub const WRONG_PIN: (u16, &str) = (423, "Nats-Wrong-Pin-Id");
/// The status a request naming a stale pin gets when it arrives.
pub const PIN_MISMATCH: (u16, &str) = (423, "Nats-Pin-Id mismatch");
/// Where a request without a priority stands in a `prioritized` queue: after every
/// request that has one (nats-server uses `math.MaxInt32`).
const NO_PRIORITY: i64 = i32::MAX as i64;

/// The priority-group fields of a JSON pull request (nats-server's `PriorityGroup`,
/// embedded in `JSApiConsumerGetNextRequest`).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RequestGroup {
    pub group: String,
    pub min_pending: i64,
    pub min_ack_pending: i64,
    pub id: String,
    pub priority: i64,
}

impl RequestGroup {
    /// Reads the fields from a parsed JSON pull request (absent fields are zero).
    pub fn from_json(v: &serde_json::Value) -> Self {
        let int = |k: &str| v.get(k).and_then(serde_json::Value::as_i64).unwrap_or(0);
        let text = |k: &str| {
            v.get(k)
                .and_then(serde_json::Value::as_str)
                .unwrap_or_default()
                .to_owned()
        };
        Self {
            group: text("group"),
            min_pending: int("min_pending"),
            min_ack_pending: int("min_ack_pending"),
            id: text("id"),
            priority: int("priority"),
        }
    }
}

/// The queue position of a request: its priority, or last without one.
pub fn priority_of(group: Option<&RequestGroup>) -> i64 {
    group.map_or(NO_PRIORITY, |g| g.priority)
}

/// Where a request of priority `p` goes in a queue sorted by priority: after every
/// request of the same or a lower number (first come, first served within a level).
pub fn insert_position(queue: impl IntoIterator<Item = i64>, p: i64) -> usize {
    queue.into_iter().take_while(|&q| q <= p).count()
}

/// The checks nats-server makes of a pull request's priority fields before queueing it,
/// with its status line when one fails. A request sent as a bare batch size (no JSON)
/// has no group and passes, as there.
pub fn check_request(
    config: &ConsumerConfig,
    group: Option<&RequestGroup>,
) -> Result<(), (u16, &'static str)> {
    let Some(g) = group else {
        return Ok(());
    };
    let policy = config.priority_policy;
    if (g.min_pending != 0 || g.min_ack_pending != 0) && policy != PriorityPolicy::Overflow {
        return Err((400, "Bad Request - Not a Overflow Priority consumer"));
    }
    if !g.id.is_empty() && policy != PriorityPolicy::PinnedClient {
        return Err((400, "Bad Request - Not a Pinned Client Priority consumer"));
    }
    if !(0..=9).contains(&g.priority) {
        return Err((400, "Bad Request - Priority must be between 0 and 9"));
    }
    if policy != PriorityPolicy::None {
        if g.group.is_empty() {
            return Err((400, "Bad Request - Priority Group missing"));
        }
        if !config.priority_groups.contains(&g.group) {
            return Err((400, "Bad Request - Invalid Priority Group"));
        }
    }
    Ok(())
}

/// What to do with the request at the head of the queue for the next message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Admit {
    /// Serve it.
    Serve,
    /// Pin its client, then serve it.
    PinAndServe,
    /// Not now: move it to the back and look at the next one.
    Skip,
    /// It names a pin that is not (or no longer) the current one: end it with 423.
    WrongPin,
}

/// nats-server's `nextWaiting` rules for one request. `pinned` is the current pin id;
/// `num_pending` counts the message about to go when it is a new one (nats-server
/// compares `min_pending` with its pending count plus one after taking the message out,
/// so for a redelivery the count is one higher than what is left).
pub fn admit(
    policy: PriorityPolicy,
    pinned: Option<&str>,
    group: Option<&RequestGroup>,
    num_pending: u64,
    num_ack_pending: usize,
) -> Admit {
    if policy == PriorityPolicy::PinnedClient {
        let id = group.map_or("", |g| g.id.as_str());
        return match pinned {
            None if id.is_empty() => {
                if group.is_some() {
                    Admit::PinAndServe
                } else {
                    // A bare request carries no group to pin: nats-server serves it
                    // without a pin.
                    Admit::Serve
                }
            }
            None => Admit::WrongPin,
            Some(p) if p == id => Admit::Serve,
            Some(_) if id.is_empty() => Admit::Skip,
            Some(_) => Admit::WrongPin,
        };
    }
    if policy == PriorityPolicy::Overflow
        && let Some(g) = group
        && (g.min_pending > 0 || g.min_ack_pending > 0)
    {
        let pending_met = g.min_pending > 0 && g.min_pending.unsigned_abs() <= num_pending;
        let ack_met =
            g.min_ack_pending > 0 && g.min_ack_pending.unsigned_abs() <= num_ack_pending as u64;
        if !pending_met && !ack_met {
            return Admit::Skip;
        }
    }
    Admit::Serve
}

/// The pinned client of a `pinned_client` consumer. nats-server keeps one pin per
/// consumer (its first group), and so does natrix.
#[derive(Debug, Clone)]
pub struct Pin {
    pub id: String,
    pub group: String,
    /// When it was pinned (`pinned_ts`), nanoseconds since the epoch.
    pub since: i64,
    /// When it lapses unless a pull request names it first.
    pub expires: Instant,
}

impl Pin {
    /// A new pin for a request of `group`, lapsing after `ttl`.
    pub fn new(group: &str, ttl: Duration, now: Instant) -> Self {
        Self {
            id: nuid(),
            group: group.to_owned(),
            since: now_nanos(),
            expires: now + ttl,
        }
    }
}

/// Who a pin advisory is about.
pub struct AdvisoryCtx<'a> {
    pub conn: &'a dyn Conn,
    pub account: &'a str,
    pub domain: Option<&'a str>,
    pub stream: &'a str,
    pub consumer: &'a str,
}

impl AdvisoryCtx<'_> {
    fn publish(&self, what: &str, mut body: serde_json::Value) {
        if let Some(o) = body.as_object_mut() {
            if !self.account.is_empty() {
                o.insert("account".into(), self.account.into());
            }
            if let Some(d) = self.domain.filter(|d| !d.is_empty()) {
                o.insert("domain".into(), d.into());
            }
        }
        if let Ok(b) = serde_json::to_vec(&body) {
            self.conn.publish(
                &format!(
                    "$JS.EVENT.ADVISORY.CONSUMER.{what}.{}.{}",
                    self.stream, self.consumer
                ),
                None,
                &[],
                &b,
            );
        }
    }

    /// `io.nats.jetstream.advisory.v1.consumer_group_pinned`.
    pub fn pinned(&self, pin: &Pin) {
        self.publish(
            "PINNED",
            serde_json::json!({
                "type": "io.nats.jetstream.advisory.v1.consumer_group_pinned",
                "id": nuid(),
                "timestamp": rfc3339(now_nanos()),
                "stream": self.stream,
                "consumer": self.consumer,
                "group": pin.group,
                "pinned_id": pin.id,
            }),
        );
    }

    /// `io.nats.jetstream.advisory.v1.consumer_group_unpinned`; `reason` is `admin`
    /// (`CONSUMER.UNPIN`) or `timeout`.
    pub fn unpinned(&self, group: &str, reason: &str) {
        self.publish(
            "UNPINNED",
            serde_json::json!({
                "type": "io.nats.jetstream.advisory.v1.consumer_group_unpinned",
                "id": nuid(),
                "timestamp": rfc3339(now_nanos()),
                "stream": self.stream,
                "consumer": self.consumer,
                "group": group,
                "reason": reason,
            }),
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn group(id: &str, min_pending: i64, min_ack_pending: i64) -> RequestGroup {
        RequestGroup {
            group: "A".into(),
            min_pending,
            min_ack_pending,
            id: id.into(),
            priority: 0,
        }
    }

    fn config(policy: PriorityPolicy) -> ConsumerConfig {
        ConsumerConfig {
            priority_policy: policy,
            priority_groups: vec!["A".into()],
            ..ConsumerConfig::default()
        }
    }

    #[test]
    fn request_checks_follow_nats_server_order() {
        let pinned = config(PriorityPolicy::PinnedClient);
        let overflow = config(PriorityPolicy::Overflow);
        let none = ConsumerConfig::default();
        assert_eq!(check_request(&none, None), Ok(()));
        assert_eq!(check_request(&none, Some(&RequestGroup::default())), Ok(()));
        assert_eq!(
            check_request(&pinned, Some(&group("", 1, 0))),
            Err((400, "Bad Request - Not a Overflow Priority consumer"))
        );
        assert_eq!(
            check_request(&overflow, Some(&group("x", 0, 0))),
            Err((400, "Bad Request - Not a Pinned Client Priority consumer"))
        );
        let mut g = group("", 0, 0);
        g.priority = 10;
        assert_eq!(
            check_request(&overflow, Some(&g)),
            Err((400, "Bad Request - Priority must be between 0 and 9"))
        );
        g.priority = 0;
        g.group.clear();
        assert_eq!(
            check_request(&overflow, Some(&g)),
            Err((400, "Bad Request - Priority Group missing"))
        );
        g.group = "B".into();
        assert_eq!(
            check_request(&overflow, Some(&g)),
            Err((400, "Bad Request - Invalid Priority Group"))
        );
        assert_eq!(check_request(&pinned, Some(&group("x", 0, 0))), Ok(()));
    }

    #[test]
    fn pinned_client_admission() {
        let p = PriorityPolicy::PinnedClient;
        let fresh = group("", 0, 0);
        let stale = group("old", 0, 0);
        let current = group("pin", 0, 0);
        assert_eq!(admit(p, None, Some(&fresh), 1, 0), Admit::PinAndServe);
        assert_eq!(admit(p, None, None, 1, 0), Admit::Serve);
        assert_eq!(admit(p, None, Some(&stale), 1, 0), Admit::WrongPin);
        assert_eq!(admit(p, Some("pin"), Some(&current), 1, 0), Admit::Serve);
        assert_eq!(admit(p, Some("pin"), Some(&fresh), 1, 0), Admit::Skip);
        assert_eq!(admit(p, Some("pin"), None, 1, 0), Admit::Skip);
        assert_eq!(admit(p, Some("pin"), Some(&stale), 1, 0), Admit::WrongPin);
    }

    #[test]
    fn overflow_admission_needs_either_threshold() {
        let p = PriorityPolicy::Overflow;
        assert_eq!(admit(p, None, Some(&group("", 0, 0)), 0, 0), Admit::Serve);
        assert_eq!(admit(p, None, Some(&group("", 5, 0)), 4, 0), Admit::Skip);
        assert_eq!(admit(p, None, Some(&group("", 5, 0)), 5, 0), Admit::Serve);
        assert_eq!(admit(p, None, Some(&group("", 0, 3)), 100, 2), Admit::Skip);
        assert_eq!(admit(p, None, Some(&group("", 0, 3)), 0, 3), Admit::Serve);
        assert_eq!(admit(p, None, Some(&group("", 50, 3)), 1, 3), Admit::Serve);
        assert_eq!(admit(p, None, Some(&group("", 50, 3)), 1, 2), Admit::Skip);
        // Thresholds mean nothing under the other policies.
        assert_eq!(
            admit(PriorityPolicy::None, None, Some(&group("", 5, 0)), 0, 0),
            Admit::Serve
        );
    }

    #[test]
    fn prioritized_queue_is_stable_within_a_level() {
        // Queue: 0, 0, 3, none. A new 0 goes after the two 0s; a 3 after the 3; a
        // request without priority last.
        let q = [0, 0, 3, NO_PRIORITY];
        assert_eq!(insert_position(q, 0), 2);
        assert_eq!(insert_position(q, 3), 3);
        assert_eq!(insert_position(q, 1), 2);
        assert_eq!(insert_position(q, NO_PRIORITY), 4);
        assert_eq!(insert_position([], 5), 0);
        assert_eq!(priority_of(None), NO_PRIORITY);
    }

    #[test]
    fn request_group_from_json() {
        let v = serde_json::json!({"batch": 1, "group": "A", "min_pending": 3, "id": "x", "priority": 2});
        let g = RequestGroup::from_json(&v);
        assert_eq!(
            g,
            RequestGroup {
                group: "A".into(),
                min_pending: 3,
                min_ack_pending: 0,
                id: "x".into(),
                priority: 2,
            }
        );
    }
}
