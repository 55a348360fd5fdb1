//! Acknowledgements: the `$JS.ACK.` reply subjects JetStream puts on delivered messages,
//! and the ack bodies clients send back to them.
//!
//! The subject carries everything a client library reads from it (nats-server's v1
//! form): `$JS.ACK.<stream>.<consumer>.<delivered>.<stream seq>.<consumer seq>.<ts>.<pending>`.
//! Clients also parse the v2 form, `$JS.ACK.<domain>.<account hash>.<stream>.<consumer>.
//! <delivered>.<stream seq>.<consumer seq>.<ts>.<pending>.<random>`, which a server in a
//! domain sends; both are accepted back.

use std::time::Duration;

/// Appends the v1 ack subject of one delivery to `out` (a buffer a delivery round
/// reuses, so a delivery formats its subject without allocating).
#[allow(clippy::too_many_arguments)]
pub fn write_subject(
    out: &mut String,
    stream: &str,
    consumer: &str,
    delivered: u64,
    stream_seq: u64,
    consumer_seq: u64,
    ts: i64,
    pending: u64,
) {
    use std::fmt::Write;
    // Writing to a String cannot fail.
    let _ = write!(
        out,
        "$JS.ACK.{stream}.{consumer}.{delivered}.{stream_seq}.{consumer_seq}.{ts}.{pending}"
    );
}

/// The tokens of an ack reply subject.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AckReply<'a> {
    pub stream: &'a str,
    pub consumer: &'a str,
    pub delivered: u64,
    pub stream_seq: u64,
    pub consumer_seq: u64,
    pub ts: i64,
    pub pending: u64,
}

impl<'a> AckReply<'a> {
    /// The v1 subject.
    pub fn subject(&self) -> String {
        let mut s = String::new();
        write_subject(
            &mut s,
            self.stream,
            self.consumer,
            self.delivered,
            self.stream_seq,
            self.consumer_seq,
            self.ts,
            self.pending,
        );
        s
    }

    /// Parses a v1 or v2 ack subject.
    pub fn parse(subject: &'a str) -> Option<Self> {
        let mut t = subject.split('.');
        if t.next()? != "$JS" || t.next()? != "ACK" {
            return None;
        }
        let mut rest: [&str; 10] = [""; 10];
        let mut n = 0;
        for token in t {
            *rest.get_mut(n)? = token;
            n += 1;
        }
        let rest = match n {
            7 => &rest[..7],
            // v2: domain and account hash first, a random token last.
            10 => &rest[2..9],
            _ => return None,
        };
        Some(Self {
            stream: rest[0],
            consumer: rest[1],
            delivered: rest[2].parse().ok()?,
            stream_seq: rest[3].parse().ok()?,
            consumer_seq: rest[4].parse().ok()?,
            ts: rest[5].parse().ok()?,
            pending: rest[6].parse().ok()?,
        })
    }
}

/// What an ack body asks for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum AckKind {
    /// Empty, `+ACK` or `+OK`.
    Ack,
    /// `-NAK`, optionally with a redelivery delay (`-NAK 5s` or `-NAK {"delay":ns}`).
    Nak(Option<Duration>),
    /// `+WPI`: still working, restart the ack wait.
    Progress,
    /// `+NXT [n | {json}]`: ack and ask for more (a pull request).
    Next(String),
    /// `+TERM [reason]`: never redeliver.
    Term(String),
}

impl AckKind {
    /// Parses an ack body; unknown bodies count as a plain ack, as in nats-server.
    pub fn parse(body: &[u8]) -> Self {
        if body.is_empty() || body == b"+ACK" {
            return Self::Ack;
        }
        let text = String::from_utf8_lossy(body);
        let text = text.trim();
        if let Some(rest) = text.strip_prefix("-NAK") {
            return Self::Nak(parse_delay(rest.trim()));
        }
        if text.starts_with("+WPI") {
            return Self::Progress;
        }
        if let Some(rest) = text.strip_prefix("+NXT") {
            return Self::Next(rest.trim().to_owned());
        }
        if let Some(rest) = text.strip_prefix("+TERM") {
            return Self::Term(rest.trim().to_owned());
        }
        Self::Ack
    }
}

/// `sample_freq` as a percentage: `"50"` or `"50%"`; empty or unreadable is 0 (the
/// config was validated when it was accepted).
pub fn sample_percent(freq: &str) -> i32 {
    freq.strip_suffix('%').unwrap_or(freq).parse().unwrap_or(0)
}

/// Whether this ack is sampled: never at 0 or below, always at 100 or above, else at
/// random. nats-server draws `rand.Int31n(100) <= freq`, which samples `freq + 1` acks in
/// a hundred; natrix draws the same way.
pub fn should_sample(percent: i32) -> bool {
    match percent {
        ..=0 => false,
        100.. => true,
        p => fastrand::i32(0..100) <= p,
    }
}

/// One sampled acknowledgement, as nats-server's `JSConsumerAckMetric`.
pub struct AckMetric<'a> {
    pub stream: &'a str,
    pub consumer: &'a str,
    /// The consumer sequence of the delivery that was acknowledged (from its subject).
    pub consumer_seq: u64,
    pub stream_seq: u64,
    /// Nanoseconds from the (last) delivery to the ack.
    pub ack_time: i64,
    pub deliveries: u64,
    pub domain: Option<&'a str>,
}

impl AckMetric<'_> {
    /// The subject: `$JS.EVENT.METRIC.CONSUMER.ACK.<stream>.<consumer>`.
    pub fn subject(&self) -> String {
        format!(
            "$JS.EVENT.METRIC.CONSUMER.ACK.{}.{}",
            self.stream, self.consumer
        )
    }

    /// The JSON body (`io.nats.jetstream.metric.v1.consumer_ack`).
    pub fn body(&self) -> serde_json::Value {
        let now = crate::time::now_nanos();
        let mut v = serde_json::json!({
            "type": "io.nats.jetstream.metric.v1.consumer_ack",
            "id": crate::time::nuid(),
            "timestamp": crate::time::rfc3339(now),
            "stream": self.stream,
            "consumer": self.consumer,
            "consumer_seq": self.consumer_seq,
            "stream_seq": self.stream_seq,
            "ack_time": self.ack_time,
            "deliveries": self.deliveries,
        });
        if let (Some(o), Some(d)) = (v.as_object_mut(), self.domain.filter(|d| !d.is_empty())) {
            o.insert("domain".into(), d.into());
        }
        v
    }
}

/// `5s`, `150ms`, a bare number of nanoseconds, or `{"delay": ns}`.
fn parse_delay(s: &str) -> Option<Duration> {
    if s.is_empty() {
        return None;
    }
    if s.starts_with('{') {
        let v: serde_json::Value = serde_json::from_str(s).ok()?;
        let ns = v.get("delay")?.as_i64()?;
        return (ns > 0).then(|| Duration::from_nanos(ns.unsigned_abs()));
    }
    if let Ok(ns) = s.parse::<i64>() {
        return (ns > 0).then(|| Duration::from_nanos(ns.unsigned_abs()));
    }
    crate::duration::parse(s).filter(|d| !d.is_zero())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn subjects_round_trip() {
        let a = AckReply {
            stream: "ORDERS",
            consumer: "C",
            delivered: 2,
            stream_seq: 10,
            consumer_seq: 7,
            ts: 1_700_000_000_000_000_000,
            pending: 3,
        };
        assert_eq!(AckReply::parse(&a.subject()), Some(a.clone()));
        let v2 = "$JS.ACK.hub.ACCHASH.ORDERS.C.2.10.7.1700000000000000000.3.xyz";
        assert_eq!(AckReply::parse(v2), Some(a));
        assert_eq!(AckReply::parse("$JS.ACK.x"), None);
        assert_eq!(AckReply::parse("$JS.ACK.S.C.a.1.1.1.1"), None);
    }

    #[test]
    fn sampling() {
        assert_eq!(sample_percent(""), 0);
        assert_eq!(sample_percent("50%"), 50);
        assert_eq!(sample_percent("100"), 100);
        assert!(!should_sample(0));
        assert!((0..100).all(|_| should_sample(100)));
        let hits = (0..10_000).filter(|_| should_sample(30)).count();
        assert!((2_500..3_700).contains(&hits), "{hits}");
        let m = AckMetric {
            stream: "S",
            consumer: "C",
            consumer_seq: 3,
            stream_seq: 5,
            ack_time: 1_000,
            deliveries: 2,
            domain: Some("hub"),
        };
        assert_eq!(m.subject(), "$JS.EVENT.METRIC.CONSUMER.ACK.S.C");
        let b = m.body();
        assert_eq!(b["type"], "io.nats.jetstream.metric.v1.consumer_ack");
        assert_eq!(
            (
                b["consumer_seq"].as_u64(),
                b["stream_seq"].as_u64(),
                b["ack_time"].as_i64()
            ),
            (Some(3), Some(5), Some(1_000))
        );
        assert_eq!(
            (b["deliveries"].as_u64(), b["domain"].as_str()),
            (Some(2), Some("hub"))
        );
        let no_domain = AckMetric { domain: None, ..m }.body();
        assert!(no_domain.get("domain").is_none());
    }

    #[test]
    fn bodies() {
        assert_eq!(AckKind::parse(b""), AckKind::Ack);
        assert_eq!(AckKind::parse(b"+ACK"), AckKind::Ack);
        assert_eq!(AckKind::parse(b"-NAK"), AckKind::Nak(None));
        assert_eq!(
            AckKind::parse(b"-NAK 2s"),
            AckKind::Nak(Some(Duration::from_secs(2)))
        );
        assert_eq!(
            AckKind::parse(br#"-NAK {"delay":1000000}"#),
            AckKind::Nak(Some(Duration::from_millis(1)))
        );
        assert_eq!(AckKind::parse(b"+WPI"), AckKind::Progress);
        assert_eq!(AckKind::parse(b"+NXT 5"), AckKind::Next("5".into()));
        assert_eq!(
            AckKind::parse(b"+TERM bad data"),
            AckKind::Term("bad data".into())
        );
    }
}
