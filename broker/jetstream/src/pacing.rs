//! Pacing of a consumer's deliveries: replay policy `original` and `rate_limit_bps`.
//!
//! Both hold the next message back for a while. The stream's actor never sleeps for
//! one consumer: a held consumer stops its round, names the moment it may go on
//! ([`crate::consumer::Consumer::next_wake`]), and the actor's timer brings it back.
//!
//! - **Replay `original`** (nats-server's `o.replay`): from its creation (or the
//!   server's start) until it has caught up with the messages the stream held then, the
//!   consumer spaces its deliveries as the messages were stored: a message goes out the
//!   difference of the stored timestamps after the one before it, when that is more than
//!   a millisecond. Past that point it delivers at once, as `instant` does.
//! - **`rate_limit_bps`** (push consumers): a token bucket of `bps / 8` bytes a second
//!   whose burst is the stream's `max_msg_size`, else the server's `max_payload`,
//!   charged with each delivery's subject, ack subject, headers and payload (nats-server's
//!   `rate.Limiter` and its `sz`). The bucket starts full.

use std::time::{Duration, Instant};

/// Gaps at or below this are not waited for (nats-server's `delay > time.Millisecond`).
const MIN_REPLAY_GAP_NS: i64 = 1_000_000;
/// A wait shorter than this is not worth a timer: the message goes now (the bucket may
/// dip a little below zero, as nats-server's reservations do).
const MIN_WAIT: Duration = Duration::from_millis(1);

/// Replay `original`: the timing of the previous delivery and where replay ends.
#[derive(Debug, Clone)]
pub struct Replay {
    /// The stream's last sequence when the consumer started: replay ends once the
    /// consumer is past it.
    until_seq: u64,
    /// The stored timestamp of the previous delivery and when it went.
    last: Option<(i64, Instant)>,
}

impl Replay {
    pub fn new(until_seq: u64) -> Self {
        Self {
            until_seq,
            last: None,
        }
    }

    /// When the message stored at `ts` may go, if that is later than `now`.
    pub fn hold(&self, ts: i64, now: Instant) -> Option<Instant> {
        let (last_ts, sent) = self.last?;
        let gap = ts.saturating_sub(last_ts);
        if gap <= MIN_REPLAY_GAP_NS {
            return None;
        }
        let due = sent + Duration::from_nanos(gap.unsigned_abs());
        (due > now + MIN_WAIT).then_some(due)
    }

    /// The message stored at `ts` went at `at`.
    pub fn sent(&mut self, ts: i64, at: Instant) {
        self.last = Some((ts, at));
    }

    /// Whether replay is over for a consumer whose next new message is `next_seq`
    /// (nats-server checks this whenever the consumer runs out of things to send).
    pub fn caught_up(&self, next_seq: u64) -> bool {
        next_seq > self.until_seq
    }
}

/// `rate_limit_bps`: a token bucket in bytes.
#[derive(Debug, Clone)]
pub struct RateLimit {
    /// Bytes a second.
    rate: f64,
    burst: f64,
    tokens: f64,
    last: Instant,
}

impl RateLimit {
    /// A full bucket for `bps` bits a second with `burst` bytes.
    pub fn new(bps: u64, burst: u64, now: Instant) -> Self {
        // nats-server divides in integers: fewer than 8 bps is no refill at all; a
        // byte a second keeps such a consumer moving instead of stalling it for good.
        #[allow(clippy::cast_precision_loss)]
        let rate = (bps / 8).max(1) as f64;
        #[allow(clippy::cast_precision_loss)]
        let burst = burst.max(1) as f64;
        Self {
            rate,
            burst,
            tokens: burst,
            last: now,
        }
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate).min(self.burst);
        self.last = now;
    }

    /// Takes `size` bytes for a delivery now, or says when there will be enough (and
    /// takes nothing). A delivery larger than the burst goes once the bucket is full
    /// (nats-server's limiter refuses it for good, which stalls the consumer).
    pub fn take(&mut self, size: u64, now: Instant) -> Option<Instant> {
        self.refill(now);
        #[allow(clippy::cast_precision_loss)]
        let need = (size as f64).min(self.burst);
        let short = need - self.tokens;
        if short > 0.0 {
            let wait = Duration::from_secs_f64(short / self.rate);
            if wait >= MIN_WAIT {
                return Some(now + wait);
            }
        }
        #[allow(clippy::cast_precision_loss)]
        let size = size as f64;
        self.tokens -= size;
        None
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const MS: i64 = 1_000_000;

    #[test]
    fn replay_spaces_deliveries_as_stored() {
        let t0 = Instant::now();
        let mut r = Replay::new(3);
        // The first message goes at once.
        assert_eq!(r.hold(1_000 * MS, t0), None);
        r.sent(1_000 * MS, t0);
        // Stored 200 ms later: held until 200 ms after the first went.
        assert_eq!(
            r.hold(1_200 * MS, t0),
            Some(t0 + Duration::from_millis(200))
        );
        assert_eq!(r.hold(1_200 * MS, t0 + Duration::from_millis(200)), None);
        r.sent(1_200 * MS, t0 + Duration::from_millis(200));
        // A gap of a millisecond or less is not waited for.
        assert_eq!(r.hold(1_201 * MS, t0 + Duration::from_millis(200)), None);
        assert!(!r.caught_up(3));
        assert!(r.caught_up(4));
    }

    #[test]
    fn rate_limit_is_a_token_bucket_that_starts_full() {
        let t0 = Instant::now();
        // 8000 bps = 1000 bytes a second, burst 500 bytes.
        let mut rl = RateLimit::new(8_000, 500, t0);
        assert_eq!(rl.take(300, t0), None);
        assert_eq!(rl.take(200, t0), None);
        // Empty: 250 bytes take a quarter of a second.
        let due = rl.take(250, t0).expect("held");
        let wait = due - t0;
        assert!(
            wait >= Duration::from_millis(249) && wait <= Duration::from_millis(251),
            "{wait:?}"
        );
        assert_eq!(rl.take(250, due), None);
        // Larger than the burst: waits for a full bucket, then goes.
        let t1 = due + Duration::from_secs(10);
        assert_eq!(rl.take(5_000, t1), None);
        assert!(rl.take(1, t1).is_some());
    }
}
