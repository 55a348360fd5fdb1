//! MQTT topics and filters ⇄ NATS subjects, exactly as nats-server maps them, so that an MQTT
//! device and a NATS service meet on one subject whichever server they are connected to.
//!
//! The mapping (nats-server `mqttToNATSSubjectConversion` / `natsSubjectToMQTTTopic`):
//!
//! | MQTT | NATS | why |
//! | --- | --- | --- |
//! | `/` between levels | `.` | the level separator |
//! | `+` | `*` | one level |
//! | `#` | `>` | the rest; `a/#` also subscribes `a`, since MQTT's `#` matches the parent level |
//! | `.` inside a level | `//` | `.` would split a NATS token |
//! | an empty level (`/a`, `a//b`, `a/`) | a `/` token (`/.a`, `a././b`, `a./`) | NATS has no empty tokens |
//! | `*`, `>` as a level | `*`, `>` | passed through: NATS wildcards in a filter (nats-server) |
//! | space, tab, CR, LF, FF, DEL | refused | they would corrupt the NATS protocol line |
//!
//! On top of nats-server's conversion this module checks MQTT's filter grammar, which
//! nats-server leaves to its subscription trie: `#` only as the whole last level and `+` only
//! as a whole level (4.7.1). nats-server refuses `a/#/b` only because `a.>.b` is not a valid
//! subject, and takes `a+/b` as the literal subject `a*.b`; natrix refuses both with "Topic
//! Filter invalid" (0x8F; SUBACK 0x80 in 3.1.1). And it maps 5.0 shared subscriptions,
//! `$share/<group>/<filter>`, to a NATS queue group `<group>` on the filter's subject, which
//! nats-server (3.1.1 only) does not know.

use std::borrow::Cow;

use thiserror::Error;

use crate::codec::ReasonCode;

/// The prefix of a shared subscription filter (5.0 4.8.2).
pub const SHARED_PREFIX: &str = "$share/";

/// The subjects nats-server uses for MQTT's own state; MQTT clients may not subscribe to them
/// (nats-server answers SUBACK failure), or they could read other sessions' messages.
pub const INTERNAL_SUBJECT_PREFIX: &str = "$MQTT.";

/// Why a topic or filter has no NATS subject.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum TopicError {
    #[error("topic cannot be empty")]
    EmptyTopic,
    #[error("topic filter cannot be empty")]
    EmptyFilter,
    /// Whitespace or DEL (nats-server's text).
    #[error("character not supported for MQTT topics")]
    UnsupportedCharacter,
    /// `+` or `#` in a topic name (4.7.1-1; nats-server's text).
    #[error("wildcards not allowed in publish's topic: {0:?}")]
    WildcardInTopicName(String),
    /// `#` not alone in the last level (4.7.1.2).
    #[error("multi-level wildcard '#' must be alone in the last level of topic filter {0:?}")]
    MultiLevelWildcardNotLast(String),
    /// `+` sharing a level with other characters (4.7.1.3).
    #[error("single-level wildcard '+' must occupy a whole level of topic filter {0:?}")]
    SingleLevelWildcardNotAlone(String),
    /// `$share/` without a share name, with `+`, `#` in it, or without a filter after it.
    #[error("invalid shared subscription {0:?}: expected $share/<name>/<filter>")]
    InvalidSharedSubscription(String),
    /// A filter on nats-server's internal `$MQTT.` subjects.
    #[error("topic filter {0:?} is reserved for the server's MQTT state")]
    InternalSubject(String),
}

impl TopicError {
    /// The 5.0 reason code for a SUBACK or UNSUBACK entry whose filter failed: "Topic Filter
    /// invalid", or "Not authorized" for the internal subjects. A PUBLISH or will topic that
    /// fails is always "Topic Name invalid" (0x90), which the two topic-only errors return.
    pub fn reason_code(&self) -> ReasonCode {
        match self {
            TopicError::EmptyTopic | TopicError::WildcardInTopicName(_) => {
                ReasonCode::TopicNameInvalid
            }
            TopicError::InternalSubject(_) => ReasonCode::NotAuthorized,
            TopicError::UnsupportedCharacter
            | TopicError::EmptyFilter
            | TopicError::MultiLevelWildcardNotLast(_)
            | TopicError::SingleLevelWildcardNotAlone(_)
            | TopicError::InvalidSharedSubscription(_) => ReasonCode::TopicFilterInvalid,
        }
    }
}

/// nats-server's character-by-character conversion of a topic or filter. Borrows when nothing
/// changes (a single-level topic without `.`), as nats-server avoids the copy then too.
fn convert(mqtt: &str, wildcards_ok: bool) -> Result<Cow<'_, str>, TopicError> {
    let bytes = mqtt.as_bytes();
    // The first byte that needs rewriting; everything before it is copied as is.
    let Some(first) = bytes.iter().position(|b| {
        matches!(
            b,
            b'/' | b'.' | b'+' | b'#' | b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x7f
        )
    }) else {
        return Ok(Cow::Borrowed(mqtt));
    };
    let mut out = String::with_capacity(mqtt.len() + 10);
    out.push_str(&mqtt[..first]);
    let last = bytes.len() - 1;
    // Iterating over chars keeps multi-byte characters whole; all rewritten ones are ASCII.
    for (i, c) in mqtt[first..].char_indices() {
        let i = first + i;
        match c {
            '/' => {
                if i == 0 || out.ends_with('.') {
                    // An empty level at the start, or after one: its token is "/".
                    out.push_str("/.");
                } else if i == last || bytes[i + 1] == b'/' {
                    // The level after this separator is empty.
                    out.push_str("./");
                } else {
                    out.push('.');
                }
            }
            ' ' | '\t' | '\n' | '\r' | '\u{0c}' | '\u{7f}' => {
                return Err(TopicError::UnsupportedCharacter);
            }
            '.' => out.push_str("//"),
            '+' | '#' if !wildcards_ok => {
                return Err(TopicError::WildcardInTopicName(mqtt.to_owned()));
            }
            '+' => out.push('*'),
            '#' => out.push('>'),
            other => out.push(other),
        }
    }
    // A trailing "." would end the subject with an empty token: close it with "/".
    if out.ends_with('.') {
        out.push('/');
    }
    Ok(Cow::Owned(out))
}

/// The NATS subject a PUBLISH (or will) topic is published on.
pub fn topic_to_subject(topic: &str) -> Result<Cow<'_, str>, TopicError> {
    if topic.is_empty() {
        return Err(TopicError::EmptyTopic);
    }
    convert(topic, false)
}

/// The NATS subject of a (non-shared) topic filter, after checking MQTT's filter grammar.
/// For the subscription as a whole (shared groups, the extra parent subject, the reserved
/// rules) use [`Subscription::parse`].
pub fn filter_to_subject(filter: &str) -> Result<Cow<'_, str>, TopicError> {
    if filter.is_empty() {
        return Err(TopicError::EmptyFilter);
    }
    let mut levels = filter.split('/').peekable();
    while let Some(level) = levels.next() {
        if level.contains('#') && (level != "#" || levels.peek().is_some()) {
            return Err(TopicError::MultiLevelWildcardNotLast(filter.to_owned()));
        }
        if level.contains('+') && level != "+" {
            return Err(TopicError::SingleLevelWildcardNotAlone(filter.to_owned()));
        }
    }
    convert(filter, true)
}

/// The MQTT topic a message on a NATS subject is delivered with (nats-server's
/// `natsSubjectToMQTTTopic`, including its quirk that a `/` inside a NATS token, not
/// followed by `.` or `/`, is dropped).
pub fn subject_to_topic(subject: &str) -> Cow<'_, str> {
    if !subject.bytes().any(|b| b == b'.' || b == b'/') {
        return Cow::Borrowed(subject);
    }
    let bytes = subject.as_bytes();
    let mut out = String::with_capacity(subject.len());
    let mut skip_next = false;
    for (i, c) in subject.char_indices() {
        if skip_next {
            skip_next = false;
            continue;
        }
        match c {
            '/' => match bytes.get(i + 1) {
                // "/." is an empty level followed by a separator, "//" is an escaped ".".
                Some(b'.') => {
                    out.push('/');
                    skip_next = true;
                }
                Some(b'/') => {
                    out.push('.');
                    skip_next = true;
                }
                _ => {}
            },
            '.' => out.push('/'),
            other => out.push(other),
        }
    }
    Cow::Owned(out)
}

/// A NATS subject as an MQTT filter: the topic mapping, with the whole-token wildcards `*`
/// and `>` as `+` and `#`. For showing NATS interest in MQTT terms (e.g. a NATS queue
/// subscription as the `$share/` filter an MQTT client would use to join it).
pub fn subject_to_filter(subject: &str) -> String {
    let topic = subject_to_topic(subject);
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

/// Splits `$share/<group>/<filter>` (5.0 4.8.2): the share name must be non-empty and free of
/// `/`, `+` and `#`, and a filter must follow. `Ok(None)` for an ordinary filter.
pub fn parse_shared(filter: &str) -> Result<Option<(&str, &str)>, TopicError> {
    let Some(rest) = filter.strip_prefix(SHARED_PREFIX) else {
        return Ok(None);
    };
    let invalid = || TopicError::InvalidSharedSubscription(filter.to_owned());
    let (group, inner) = rest.split_once('/').ok_or_else(invalid)?;
    if group.is_empty() || group.contains(['+', '#']) || inner.is_empty() {
        return Err(invalid());
    }
    // The group becomes a NATS queue name, which cannot hold whitespace either.
    if group
        .bytes()
        .any(|b| matches!(b, b' ' | b'\t' | b'\n' | b'\r' | 0x0c | 0x7f))
    {
        return Err(TopicError::UnsupportedCharacter);
    }
    Ok(Some((group, inner)))
}

/// The shared-subscription filter for a NATS queue group on a subject.
pub fn shared_filter(group: &str, subject: &str) -> String {
    format!("{SHARED_PREFIX}{group}/{}", subject_to_filter(subject))
}

/// The subject of the extra subscription nats-server adds for a filter ending in `#`: MQTT's
/// `a/#` also matches `a`, NATS's `a.>` does not. `None` unless the subject has more than
/// one token and ends with `.>` (nats-server's `mqttNeedSubForLevelUp`).
pub fn parent_subject(subject: &str) -> Option<&str> {
    if subject.len() >= 3 && subject.ends_with(".>") {
        Some(&subject[..subject.len() - 2])
    } else {
        None
    }
}

/// Whether a subscription subject starts with a wildcard, so that it must not receive
/// messages on `$`-topics (4.7.2-1; nats-server's `isMQTTReservedSubscription`).
pub fn is_reserved_subscription(subject: &str) -> bool {
    subject == "*" || subject == ">" || subject.starts_with("*.")
}

/// Whether a message on `subject` must be withheld from a subscription: a reserved one (see
/// [`is_reserved_subscription`]) never sees subjects starting with `$`.
pub fn must_ignore_for_reserved(reserved_subscription: bool, subject: &str) -> bool {
    reserved_subscription && subject.starts_with('$')
}

/// Whether a subject belongs to nats-server's MQTT state (`$MQTT.`).
pub fn is_internal_subject(subject: &str) -> bool {
    subject.starts_with(INTERNAL_SUBJECT_PREFIX)
}

/// What one SUBSCRIBE filter becomes on the NATS side.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Subscription<'a> {
    /// The subject to subscribe.
    pub subject: Cow<'a, str>,
    /// The queue group, for `$share/<group>/...`.
    pub queue: Option<&'a str>,
}

impl<'a> Subscription<'a> {
    /// Maps one SUBSCRIBE filter: shared-subscription syntax, MQTT grammar, the nats-server
    /// conversion, and the refusal of the internal `$MQTT.` subjects.
    pub fn parse(filter: &'a str) -> Result<Self, TopicError> {
        let (queue, inner) = match parse_shared(filter)? {
            Some((group, inner)) => (Some(group), inner),
            None => (None, filter),
        };
        let subject = filter_to_subject(inner)?;
        if is_internal_subject(&subject) {
            return Err(TopicError::InternalSubject(filter.to_owned()));
        }
        Ok(Subscription { subject, queue })
    }

    /// The parent-level subject to subscribe as well, for a filter ending in `/#`.
    pub fn parent(&self) -> Option<&str> {
        parent_subject(&self.subject)
    }

    /// See [`is_reserved_subscription`].
    pub fn reserved(&self) -> bool {
        is_reserved_subscription(&self.subject)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    // Every row of these tables (and of the reserved and publisher tests below) was checked
    // once against nats-server's own conversion functions, run out of tree.

    /// (MQTT topic, NATS subject): both directions, as nats-server maps them.
    const TOPICS: &[(&str, &str)] = &[
        ("foo", "foo"),
        ("foo/bar", "foo.bar"),
        ("foo/bar/baz", "foo.bar.baz"),
        ("/", "/./"),
        ("//", "/././"),
        ("///", "/./././"),
        ("/foo", "/.foo"),
        ("//foo", "/./.foo"),
        ("foo/", "foo./"),
        ("foo//", "foo././"),
        ("/foo/", "/.foo./"),
        ("foo//bar", "foo./.bar"),
        ("foo///bar", "foo././.bar"),
        ("/a//b/", "/.a./.b./"),
        (".", "//"),
        ("..", "////"),
        ("./", "//./"),
        ("/.", "/.//"),
        ("foo.bar", "foo//bar"),
        ("foo.bar/baz", "foo//bar.baz"),
        (".foo.", "//foo//"),
        ("a/./b", "a.//.b"),
        ("région/été", "région.été"),
        ("$SYS/broker/load", "$SYS.broker.load"),
        ("$share/g/t", "$share.g.t"),
        ("foo*/bar", "foo*.bar"),
        ("a/*/b", "a.*.b"),
        ("a/>", "a.>"),
    ];

    #[test]
    fn topics_map_to_subjects_and_back() {
        for (topic, subject) in TOPICS {
            assert_eq!(topic_to_subject(topic).as_deref(), Ok(*subject), "{topic}");
            assert_eq!(subject_to_topic(subject), *topic, "{subject}");
        }
    }

    #[test]
    fn unchanged_topics_are_borrowed() {
        assert!(matches!(topic_to_subject("foo"), Ok(Cow::Borrowed("foo"))));
        assert!(matches!(subject_to_topic("foo"), Cow::Borrowed("foo")));
        assert!(matches!(topic_to_subject("a/b"), Ok(Cow::Owned(_))));
    }

    #[test]
    fn topic_names_refused_as_nats_server_does() {
        for (topic, err) in [
            ("", TopicError::EmptyTopic),
            ("foo/+", TopicError::WildcardInTopicName("foo/+".into())),
            ("foo/#", TopicError::WildcardInTopicName("foo/#".into())),
            ("a+b", TopicError::WildcardInTopicName("a+b".into())),
            ("foo bar", TopicError::UnsupportedCharacter),
            ("foo\tbar", TopicError::UnsupportedCharacter),
            ("foo\nbar", TopicError::UnsupportedCharacter),
            ("foo\rbar", TopicError::UnsupportedCharacter),
            ("foo\u{0c}bar", TopicError::UnsupportedCharacter),
            ("foo\u{7f}bar", TopicError::UnsupportedCharacter),
            ("sensors/temp.c/room 1", TopicError::UnsupportedCharacter),
        ] {
            assert_eq!(topic_to_subject(topic), Err(err), "{topic:?}");
        }
        assert_eq!(
            TopicError::WildcardInTopicName("a/#".into()).to_string(),
            "wildcards not allowed in publish's topic: \"a/#\""
        );
        assert_eq!(
            TopicError::UnsupportedCharacter.to_string(),
            "character not supported for MQTT topics"
        );
    }

    /// (MQTT filter, NATS subject, parent subject for `#`).
    const FILTERS: &[(&str, &str, Option<&str>)] = &[
        ("+", "*", None),
        ("#", ">", None),
        ("/+", "/.*", None),
        ("+/", "*./", None),
        ("/+/", "/.*./", None),
        ("foo/+", "foo.*", None),
        ("foo/+/bar", "foo.*.bar", None),
        ("foo/+/+/", "foo.*.*./", None),
        ("foo//+//bar", "foo./.*./.bar", None),
        ("foo.bar/+/baz", "foo//bar.*.baz", None),
        ("/#", "/.>", Some("/")),
        ("foo/#", "foo.>", Some("foo")),
        ("foo/bar/#", "foo.bar.>", Some("foo.bar")),
        ("foo//#", "foo./.>", Some("foo./")),
        ("foo/bar.baz/#", "foo.bar//baz.>", Some("foo.bar//baz")),
        ("+/#", "*.>", Some("*")),
        ("a/*/b", "a.*.b", None),
        ("a/>", "a.>", Some("a")),
        ("foo*/bar", "foo*.bar", None),
        ("sport/tennis/player1", "sport.tennis.player1", None),
    ];

    #[test]
    fn filters_map_to_subjects() {
        for (filter, subject, parent) in FILTERS {
            let sub = Subscription::parse(filter).unwrap_or_else(|e| panic!("{filter}: {e}"));
            assert_eq!(sub.subject, *subject, "{filter}");
            assert_eq!(sub.parent(), *parent, "{filter}");
            assert_eq!(sub.queue, None);
        }
    }

    #[test]
    fn filter_grammar() {
        for (filter, err) in [
            ("", TopicError::EmptyFilter),
            (
                "a/#/b",
                TopicError::MultiLevelWildcardNotLast("a/#/b".into()),
            ),
            ("#/b", TopicError::MultiLevelWildcardNotLast("#/b".into())),
            ("a/b#", TopicError::MultiLevelWildcardNotLast("a/b#".into())),
            ("a/##", TopicError::MultiLevelWildcardNotLast("a/##".into())),
            (
                "a+/b",
                TopicError::SingleLevelWildcardNotAlone("a+/b".into()),
            ),
            (
                "a/+b",
                TopicError::SingleLevelWildcardNotAlone("a/+b".into()),
            ),
            ("++", TopicError::SingleLevelWildcardNotAlone("++".into())),
            ("a/b c", TopicError::UnsupportedCharacter),
        ] {
            let got = Subscription::parse(filter);
            assert_eq!(got, Err(err.clone()), "{filter:?}");
            assert_eq!(err.reason_code(), ReasonCode::TopicFilterInvalid);
        }
    }

    #[test]
    fn shared_subscriptions_are_queue_groups() {
        let sub = Subscription::parse("$share/workers/jobs/+").expect("valid");
        assert_eq!(sub.queue, Some("workers"));
        assert_eq!(sub.subject, "jobs.*");
        let sub = Subscription::parse("$share/g/#").expect("valid");
        assert_eq!(
            (sub.queue, sub.subject.as_ref(), sub.parent()),
            (Some("g"), ">", None)
        );
        let sub = Subscription::parse("$share/g/a/#").expect("valid");
        assert_eq!(sub.parent(), Some("a"));
        // A group name with a dot is a valid NATS queue name.
        assert_eq!(
            Subscription::parse("$share/g.1/a").expect("valid").queue,
            Some("g.1")
        );
        for bad in [
            "$share/",
            "$share/g",
            "$share/g/",
            "$share//a",
            "$share/+/a",
            "$share/#/a",
        ] {
            assert_eq!(
                Subscription::parse(bad),
                Err(TopicError::InvalidSharedSubscription(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            Subscription::parse("$share/a b/t"),
            Err(TopicError::UnsupportedCharacter)
        );
        // The filter inside follows the same grammar.
        assert_eq!(
            Subscription::parse("$share/g/a/#/b"),
            Err(TopicError::MultiLevelWildcardNotLast("a/#/b".into()))
        );
        // And back.
        assert_eq!(shared_filter("workers", "jobs.*"), "$share/workers/jobs/+");
        assert_eq!(shared_filter("g", "a.>"), "$share/g/a/#");
        // "$share" without the slash is an ordinary topic level.
        assert_eq!(
            Subscription::parse("$sharefoo/a").expect("valid").subject,
            "$sharefoo.a"
        );
    }

    #[test]
    fn reserved_and_internal_subjects() {
        // Wildcard-first subscriptions do not see "$" topics (4.7.2-1).
        for (filter, reserved) in [
            ("#", true),
            ("+", true),
            ("+/monitor/Clients", true),
            ("+/", true),
            ("$SYS/#", false),
            ("a/#", false),
            ("a/+", false),
        ] {
            let sub = Subscription::parse(filter).expect("valid");
            assert_eq!(sub.reserved(), reserved, "{filter}");
        }
        assert!(must_ignore_for_reserved(true, "$SYS.broker"));
        assert!(!must_ignore_for_reserved(true, "sys.broker"));
        assert!(!must_ignore_for_reserved(false, "$SYS.broker"));
        // The server's own state is out of reach, as in nats-server.
        for filter in [
            "$MQTT/msgs/#",
            "$MQTT/deliver/pubrel/+",
            "$share/g/$MQTT/sess/x",
        ] {
            assert!(
                matches!(
                    Subscription::parse(filter),
                    Err(TopicError::InternalSubject(_))
                ),
                "{filter}"
            );
        }
        assert_eq!(
            TopicError::InternalSubject("x".into()).reason_code(),
            ReasonCode::NotAuthorized
        );
        // "$MQTTX" is not the prefix.
        assert!(Subscription::parse("$MQTTX/a").is_ok());
    }

    #[test]
    fn subjects_from_nats_publishers() {
        // What a NATS publisher's subject looks like to an MQTT subscriber.
        for (subject, topic) in [
            ("orders.new", "orders/new"),
            ("a", "a"),
            ("foo./", "foo/"),
            ("/.foo", "/foo"),
            ("a//b", "a.b"),
            // nats-server drops a "/" inside a token that is not an escape.
            ("foo/bar.baz", "foobar/baz"),
            ("_INBOX.abc", "_INBOX/abc"),
        ] {
            assert_eq!(subject_to_topic(subject), topic, "{subject}");
        }
        assert_eq!(subject_to_filter("a.*.b.>"), "a/+/b/#");
        assert_eq!(subject_to_filter("a.b*"), "a/b*");
    }

    proptest::proptest! {
        /// Every topic that has a subject comes back from it unchanged: an MQTT subscriber
        /// sees the topic the MQTT publisher used, whatever `/`, `.` and empty levels it has.
        #[test]
        fn topic_subject_round_trip(topic in "[a-c/.*>$é]{1,12}") {
            let subject = topic_to_subject(&topic).expect("no wildcards, no whitespace");
            proptest::prop_assert_eq!(subject_to_topic(&subject), topic.as_str());
            // And the subject has no empty tokens, which NATS would refuse.
            proptest::prop_assert!(subject.split('.').all(|t| !t.is_empty()), "{}", subject);
        }

        /// A valid filter's subject matches exactly the subjects of the topics the filter
        /// matches in MQTT (checked against a direct MQTT matcher).
        #[test]
        fn filter_matches_like_mqtt(
            filter in "(a|b|\\+|)(/(a|b|\\+|)){0,3}(/#)?",
            topic in "(a|b|)(/(a|b|)){0,4}",
        ) {
            proptest::prop_assume!(!filter.is_empty() && !topic.is_empty());
            let sub = Subscription::parse(&filter).expect("generated filters are valid");
            let subject = topic_to_subject(&topic).expect("valid topic");
            let nats = nats_matches(&sub.subject, &subject)
                || sub.parent().is_some_and(|p| nats_matches(p, &subject));
            proptest::prop_assert_eq!(nats, mqtt_matches(&filter, &topic), "{} vs {} ({} vs {})", filter, topic, sub.subject, subject);
        }
    }

    fn nats_matches(pattern: &str, subject: &str) -> bool {
        let mut p = pattern.split('.');
        let mut s = subject.split('.');
        loop {
            match (p.next(), s.next()) {
                (Some(">"), Some(_)) => return true,
                (Some("*"), Some(_)) => {}
                (Some(a), Some(b)) if a == b => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }

    fn mqtt_matches(filter: &str, topic: &str) -> bool {
        let mut f = filter.split('/');
        let mut t = topic.split('/');
        loop {
            match (f.next(), t.next()) {
                (Some("#"), _) => return true,
                (Some("+"), Some(_)) => {}
                (Some(a), Some(b)) if a == b => {}
                (None, None) => return true,
                _ => return false,
            }
        }
    }
}
