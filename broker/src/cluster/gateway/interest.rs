//! What a remote cluster wants from us, per account, as learnt on our outbound gateway
//! to it (docs/design/inter-server-protocols.md §2.4).
//!
//! An account starts *optimistic* (send everything, unless the peer said `A-` for the
//! account or `RS-` for the subject) or, when the peer advertised `gateway_iom`, with
//! nothing wanted until the peer sends its subscriptions. Gateway command 2 starts a
//! switch to *interest-only*, command 3 completes it; from then on only subjects the peer
//! announced with `RS+` are sent. Queue groups are always announced, in every mode.

use std::sync::Arc;

use bytes::Bytes;
use parking_lot::RwLock;
use rustc_hash::{FxHashMap, FxHashSet};

use crate::sublist::{Sublist, Subscriber};

/// A subject (and queue group) the peer announced.
pub struct GatewaySub {
    subject: Bytes,
    queue: Option<Bytes>,
}

impl Subscriber for GatewaySub {
    fn subject(&self) -> &[u8] {
        &self.subject
    }
    fn queue(&self) -> Option<&[u8]> {
        self.queue.as_deref()
    }
}

/// How messages of one account are sent to the peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    Optimistic,
    Transitioning,
    InterestOnly,
}

impl Mode {
    /// The name `/gatewayz` uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Optimistic => "Optimistic",
            Self::Transitioning => "Transitioning",
            Self::InterestOnly => "Interest-Only",
        }
    }
}

/// The peer's interest in one account.
struct AccountInterest {
    mode: Mode,
    /// `A-`: nothing of this account (optimistic mode only).
    none: bool,
    /// Subjects the peer said `RS-` for (optimistic mode only).
    no_interest: FxHashSet<Bytes>,
    subs: Sublist<GatewaySub>,
    keys: FxHashMap<(Bytes, Option<Bytes>), Arc<GatewaySub>>,
}

impl AccountInterest {
    fn new(mode: Mode) -> Self {
        Self {
            mode,
            none: false,
            no_interest: FxHashSet::default(),
            subs: Sublist::new(),
            keys: FxHashMap::default(),
        }
    }
}

/// What the peer wants of one message.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Wanted {
    /// Plain subscribers want it.
    pub plain: bool,
    /// Queue groups with members behind the peer.
    pub queues: Vec<Bytes>,
}

/// One account's state as `/gatewayz?accs=1` shows it.
pub struct AccountView {
    pub name: String,
    pub mode: Mode,
    pub no_interest_count: usize,
    pub num_subs: usize,
    pub num_queue_subs: usize,
}

/// The peer's interest in every account it told us about.
pub struct PeerInterest {
    /// The peer switches every account to interest-only on connect (`gateway_iom`):
    /// accounts it has said nothing about are not wanted.
    iom: bool,
    accounts: RwLock<FxHashMap<String, AccountInterest>>,
}

/// Longest no-interest list kept per account; past it the entry is dropped and the peer
/// tells us again (nats-server switches the account to interest-only at 1000).
const MAX_NO_INTEREST: usize = 1000;

impl PeerInterest {
    pub fn new(iom: bool) -> Self {
        Self {
            iom,
            accounts: RwLock::new(FxHashMap::default()),
        }
    }

    fn default_mode(&self) -> Mode {
        if self.iom {
            Mode::InterestOnly
        } else {
            Mode::Optimistic
        }
    }

    /// `RS+ acc subject [queue weight]`.
    pub fn subscribe(&self, account: &str, subject: Bytes, queue: Option<Bytes>) {
        let mut accounts = self.accounts.write();
        let mode = self.default_mode();
        let acc = accounts
            .entry(account.to_owned())
            .or_insert_with(|| AccountInterest::new(mode));
        if queue.is_none() {
            if crate::subject::has_wildcard(&subject) {
                acc.no_interest
                    .retain(|s| !crate::subject::matches(&subject, s));
            } else {
                acc.no_interest.remove(&subject);
            }
        }
        let key = (subject.clone(), queue.clone());
        if acc.keys.contains_key(&key) {
            return;
        }
        let sub = Arc::new(GatewaySub { subject, queue });
        if acc.subs.insert(sub.clone()).is_ok() {
            acc.keys.insert(key, sub);
        }
    }

    /// `RS- acc subject [queue]`: a subscription gone, or (optimistic, plain) a subject
    /// the peer does not want.
    pub fn unsubscribe(&self, account: &str, subject: Bytes, queue: Option<Bytes>) {
        let mut accounts = self.accounts.write();
        let mode = self.default_mode();
        let acc = accounts
            .entry(account.to_owned())
            .or_insert_with(|| AccountInterest::new(mode));
        if let Some(sub) = acc.keys.remove(&(subject.clone(), queue.clone())) {
            let _ = acc.subs.remove(&sub);
        }
        if queue.is_none() && acc.mode != Mode::InterestOnly {
            if acc.no_interest.len() >= MAX_NO_INTEREST {
                acc.no_interest.clear();
            }
            acc.no_interest.insert(subject);
        }
    }

    /// `A+ acc` (true) or `A- acc` (false).
    pub fn account(&self, account: &str, interest: bool) {
        let mut accounts = self.accounts.write();
        let mode = self.default_mode();
        let acc = accounts
            .entry(account.to_owned())
            .or_insert_with(|| AccountInterest::new(mode));
        if acc.mode != Mode::InterestOnly {
            acc.none = !interest;
        }
    }

    /// Gateway command 2 (`done` false) or 3 (`done` true) for an account.
    pub fn switch(&self, account: &str, done: bool) {
        let mut accounts = self.accounts.write();
        let mode = self.default_mode();
        let acc = accounts
            .entry(account.to_owned())
            .or_insert_with(|| AccountInterest::new(mode));
        acc.mode = if done {
            Mode::InterestOnly
        } else {
            Mode::Transitioning
        };
        acc.none = false;
        acc.no_interest.clear();
    }

    /// What the peer wants of a message on `subject` in `account`.
    pub fn wanted(&self, account: &str, subject: &[u8]) -> Wanted {
        let accounts = self.accounts.read();
        let Some(acc) = accounts.get(account) else {
            return Wanted {
                plain: !self.iom,
                queues: Vec::new(),
            };
        };
        let r = acc.subs.match_subject(subject);
        let queues = r
            .qsubs
            .iter()
            .filter_map(|g| g.first().and_then(|s| s.queue.clone()))
            .collect();
        let plain = match acc.mode {
            Mode::InterestOnly => !r.psubs.is_empty(),
            Mode::Optimistic | Mode::Transitioning => {
                !acc.none && !acc.no_interest.contains(subject)
            }
        };
        Wanted { plain, queues }
    }

    /// Every account's state, by name.
    pub fn view(&self) -> Vec<AccountView> {
        let accounts = self.accounts.read();
        let mut v: Vec<AccountView> = accounts
            .iter()
            .map(|(name, a)| AccountView {
                name: name.clone(),
                mode: a.mode,
                no_interest_count: a.no_interest.len(),
                num_subs: a.keys.len(),
                num_queue_subs: a.keys.keys().filter(|(_, q)| q.is_some()).count(),
            })
            .collect();
        v.sort_by(|a, b| a.name.cmp(&b.name));
        v
    }

    /// Subjects (`subject` or `subject queue`) announced for `account`.
    pub fn subjects(&self, account: &str) -> Vec<String> {
        let accounts = self.accounts.read();
        let Some(acc) = accounts.get(account) else {
            return Vec::new();
        };
        let mut v: Vec<String> = acc
            .keys
            .keys()
            .map(|(s, q)| match q {
                Some(q) => format!(
                    "{} {}",
                    String::from_utf8_lossy(s),
                    String::from_utf8_lossy(q)
                ),
                None => String::from_utf8_lossy(s).into_owned(),
            })
            .collect();
        v.sort();
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    #[test]
    fn optimistic_sends_until_told_otherwise() {
        let p = PeerInterest::new(false);
        assert!(p.wanted("$G", b"foo").plain);
        p.unsubscribe("$G", b("foo"), None);
        assert!(!p.wanted("$G", b"foo").plain);
        assert!(p.wanted("$G", b"bar").plain);
        p.subscribe("$G", b("*"), None);
        assert!(
            p.wanted("$G", b"foo").plain,
            "a wildcard clears covered RS-"
        );
        p.account("ACC", false);
        assert!(!p.wanted("ACC", b"x").plain);
        p.account("ACC", true);
        assert!(p.wanted("ACC", b"x").plain);
    }

    #[test]
    fn interest_only_sends_what_was_announced() {
        let p = PeerInterest::new(true);
        assert!(
            !p.wanted("$G", b"foo").plain,
            "iom: unknown accounts get nothing"
        );
        p.switch("$G", false);
        p.subscribe("$G", b("foo.*"), None);
        p.switch("$G", true);
        assert!(p.wanted("$G", b"foo.bar").plain);
        assert!(!p.wanted("$G", b"baz").plain);
        p.subscribe("$G", b("work"), Some(b("grp")));
        assert_eq!(p.wanted("$G", b"work").queues, vec![b("grp")]);
        assert!(!p.wanted("$G", b"work").plain);
        p.unsubscribe("$G", b("foo.*"), None);
        assert!(!p.wanted("$G", b"foo.bar").plain);
        let view = p.view();
        assert_eq!(view[0].mode, Mode::InterestOnly);
        assert_eq!((view[0].num_subs, view[0].num_queue_subs), (1, 1));
    }
}
