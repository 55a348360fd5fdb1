//! The subscription index: a trie of subject tokens with `*` and `>` branches, queue
//! groups, and a shared match cache.
//!
//! Matching walks the trie once per publish subject; results are cached per subject and
//! every change bumps a generation id so that per-connection caches (see
//! `server::client`) can tell whether their copy is still good without taking a lock.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use parking_lot::{Mutex, RwLock};
use rustc_hash::FxHashMap;

use crate::subject::{self, FWC, PWC, TSEP};

/// What the sublist needs to know about a subscription.
pub trait Subscriber {
    fn subject(&self) -> &[u8];
    fn queue(&self) -> Option<&[u8]>;
}

/// Errors from [`Sublist::insert`] and [`Sublist::remove`].
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SublistError {
    #[error("invalid subject")]
    InvalidSubject,
    #[error("subscription not found")]
    NotFound,
}

/// The subscriptions matching one subject: plain subscribers, and one list per queue
/// group (a message goes to one member of each group).
pub struct MatchResult<S> {
    pub psubs: Vec<Arc<S>>,
    pub qsubs: Vec<Vec<Arc<S>>>,
}

impl<S> MatchResult<S> {
    fn empty() -> Self {
        Self {
            psubs: Vec::new(),
            qsubs: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.psubs.is_empty() && self.qsubs.is_empty()
    }
}

/// A queue group on one trie node: its name and members.
type QueueGroup<S> = (Box<[u8]>, Vec<Arc<S>>);
/// Cached match results by publish subject.
type MatchCache<S> = FxHashMap<Box<[u8]>, Arc<MatchResult<S>>>;

struct Node<S> {
    next: Option<Box<Level<S>>>,
    psubs: Vec<Arc<S>>,
    /// Queue groups by name, in insertion order.
    qsubs: Vec<QueueGroup<S>>,
}

impl<S> Default for Node<S> {
    fn default() -> Self {
        Self {
            next: None,
            psubs: Vec::new(),
            qsubs: Vec::new(),
        }
    }
}

impl<S> Node<S> {
    fn is_empty(&self) -> bool {
        self.psubs.is_empty()
            && self.qsubs.is_empty()
            && self.next.as_ref().is_none_or(|l| l.is_empty())
    }
}

struct Level<S> {
    nodes: FxHashMap<Box<[u8]>, Node<S>>,
    pwc: Option<Box<Node<S>>>,
    fwc: Option<Box<Node<S>>>,
}

impl<S> Default for Level<S> {
    fn default() -> Self {
        Self {
            nodes: FxHashMap::default(),
            pwc: None,
            fwc: None,
        }
    }
}

impl<S> Level<S> {
    fn is_empty(&self) -> bool {
        self.nodes.is_empty() && self.pwc.is_none() && self.fwc.is_none()
    }
}

/// Largest number of cached match results before a sweep.
const CACHE_MAX: usize = 1024;
/// What a sweep trims the cache down to.
const CACHE_SWEEP_TO: usize = 256;

/// Cumulative counters, as reported by `/subsz`.
#[derive(Debug, Default, Clone, Copy)]
pub struct SublistStats {
    pub num_subscriptions: u64,
    pub num_cache: u64,
    pub num_inserts: u64,
    pub num_removes: u64,
    pub num_matches: u64,
    pub cache_hits: u64,
}

/// A thread-safe subscription index.
pub struct Sublist<S> {
    root: RwLock<Level<S>>,
    cache: Mutex<MatchCache<S>>,
    genid: AtomicU64,
    count: AtomicU64,
    inserts: AtomicU64,
    removes: AtomicU64,
    matches: AtomicU64,
    cache_hits: AtomicU64,
}

impl<S: Subscriber> Default for Sublist<S> {
    fn default() -> Self {
        Self::new()
    }
}

impl<S: Subscriber> Sublist<S> {
    pub fn new() -> Self {
        Self {
            root: RwLock::new(Level::default()),
            cache: Mutex::new(FxHashMap::default()),
            genid: AtomicU64::new(0),
            count: AtomicU64::new(0),
            inserts: AtomicU64::new(0),
            removes: AtomicU64::new(0),
            matches: AtomicU64::new(0),
            cache_hits: AtomicU64::new(0),
        }
    }

    /// Changes whenever the set of subscriptions changes.
    pub fn genid(&self) -> u64 {
        self.genid.load(Ordering::Acquire)
    }

    pub fn count(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    pub fn stats(&self) -> SublistStats {
        SublistStats {
            num_subscriptions: self.count(),
            num_cache: self.cache.lock().len() as u64,
            num_inserts: self.inserts.load(Ordering::Relaxed),
            num_removes: self.removes.load(Ordering::Relaxed),
            num_matches: self.matches.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
        }
    }

    pub fn insert(&self, sub: Arc<S>) -> Result<(), SublistError> {
        let subj = sub.subject();
        if subj.is_empty() {
            return Err(SublistError::InvalidSubject);
        }
        // Validate before touching the trie so a bad subject leaves no empty nodes behind.
        let mut saw_fwc = false;
        for token in subj.split(|&b| b == TSEP) {
            if token.is_empty() || saw_fwc {
                return Err(SublistError::InvalidSubject);
            }
            saw_fwc = token == [FWC];
        }
        {
            let mut root = self.root.write();
            let mut level: &mut Level<S> = &mut root;
            let mut tokens = subj.split(|&b| b == TSEP).peekable();
            let node = loop {
                let Some(token) = tokens.next() else {
                    unreachable!("subject has at least one token")
                };
                let node: &mut Node<S> = match token {
                    [PWC] => level.pwc.get_or_insert_with(Box::default),
                    [FWC] => level.fwc.get_or_insert_with(Box::default),
                    _ => level.nodes.entry(token.into()).or_default(),
                };
                if tokens.peek().is_none() {
                    break node;
                }
                level = node.next.get_or_insert_with(Box::default);
            };
            match sub.queue() {
                None => node.psubs.push(sub.clone()),
                Some(q) => match node.qsubs.iter_mut().find(|(name, _)| &**name == q) {
                    Some((_, members)) => members.push(sub.clone()),
                    None => node.qsubs.push((q.into(), vec![sub.clone()])),
                },
            }
            self.count.fetch_add(1, Ordering::Relaxed);
            self.inserts.fetch_add(1, Ordering::Relaxed);
            // The generation moves before the cache is cleaned: a match computed on the
            // old trie then either sees the new generation and is not cached, or was
            // cached before this cleaning and is removed by it.
            self.genid.fetch_add(1, Ordering::AcqRel);
            self.invalidate(subj);
        }
        Ok(())
    }

    pub fn remove(&self, sub: &Arc<S>) -> Result<(), SublistError> {
        let subj = sub.subject();
        let mut root = self.root.write();
        let tokens: Vec<&[u8]> = subj.split(|&b| b == TSEP).collect();
        if !remove_from_level(&mut root, &tokens, sub) {
            return Err(SublistError::NotFound);
        }
        self.count.fetch_sub(1, Ordering::Relaxed);
        self.removes.fetch_add(1, Ordering::Relaxed);
        self.genid.fetch_add(1, Ordering::AcqRel);
        self.invalidate(subj);
        Ok(())
    }

    /// Drops cached results that the given subscription subject could affect.
    fn invalidate(&self, pattern: &[u8]) {
        let mut cache = self.cache.lock();
        if cache.is_empty() {
            return;
        }
        if subject::has_wildcard(pattern) {
            cache.retain(|k, _| !subject::matches(pattern, k));
        } else {
            cache.remove(pattern);
        }
    }

    /// All subscriptions matching a literal subject.
    pub fn match_subject(&self, subj: &[u8]) -> Arc<MatchResult<S>> {
        self.matches.fetch_add(1, Ordering::Relaxed);
        if let Some(r) = self.cache.lock().get(subj) {
            self.cache_hits.fetch_add(1, Ordering::Relaxed);
            return r.clone();
        }
        let Some((generation, result)) = self.compute_match(subj) else {
            // A publish subject with an empty token matches nothing.
            return Arc::new(MatchResult::empty());
        };
        self.cache_result(subj, generation, &result);
        result
    }

    /// Walks the trie for `subj`: the result, and the generation of the trie it read
    /// (the generation moves only under the write lock). `None` for a subject with an
    /// empty token.
    fn compute_match(&self, subj: &[u8]) -> Option<(u64, Arc<MatchResult<S>>)> {
        let mut result = MatchResult::empty();
        // Tokens on the stack for the common short subjects.
        let mut tokens: smallvec_tokens::Tokens<'_> = smallvec_tokens::Tokens::new();
        for t in subj.split(|&b| b == TSEP) {
            if t.is_empty() {
                return None;
            }
            tokens.push(t);
        }
        let root = self.root.read();
        let generation = self.genid.load(Ordering::Acquire);
        match_level(Some(&root), tokens.as_slice(), &mut result);
        drop(root);
        merge_queue_groups(&mut result);
        Some((generation, Arc::new(result)))
    }

    /// Caches a result computed at `generation`, unless the trie changed since: a change
    /// between the walk and this point would otherwise leave a stale result cached
    /// until the next change touching the subject.
    fn cache_result(&self, subj: &[u8], generation: u64, result: &Arc<MatchResult<S>>) {
        let mut cache = self.cache.lock();
        if self.genid.load(Ordering::Acquire) != generation {
            return;
        }
        cache.insert(subj.into(), result.clone());
        if cache.len() > CACHE_MAX {
            let excess = cache.len() - CACHE_SWEEP_TO;
            let victims: Vec<Box<[u8]>> = cache.keys().take(excess).cloned().collect();
            for k in victims {
                cache.remove(&k);
            }
        }
    }

    /// The largest and the mean fan-out of the cached match results, as `/subsz`
    /// reports them (a queue group counts once).
    pub fn cache_fanout(&self) -> (usize, f64) {
        let cache = self.cache.lock();
        if cache.is_empty() {
            return (0, 0.0);
        }
        let mut max = 0;
        let mut total = 0;
        for r in cache.values() {
            let n = r.psubs.len() + r.qsubs.len();
            max = max.max(n);
            total += n;
        }
        (max, total as f64 / cache.len() as f64)
    }

    /// Every subscription, for monitoring.
    pub fn all(&self) -> Vec<Arc<S>> {
        let mut out = Vec::new();
        collect_level(&self.root.read(), &mut out);
        out
    }
}

mod smallvec_tokens {
    /// A small inline vector of subject tokens; spills to the heap past 16 tokens.
    pub struct Tokens<'a> {
        inline: [&'a [u8]; 16],
        len: usize,
        spill: Vec<&'a [u8]>,
    }

    impl<'a> Tokens<'a> {
        pub fn new() -> Self {
            Self {
                inline: [&[]; 16],
                len: 0,
                spill: Vec::new(),
            }
        }

        pub fn push(&mut self, t: &'a [u8]) {
            if self.len < 16 && self.spill.is_empty() {
                self.inline[self.len] = t;
                self.len += 1;
            } else {
                if self.spill.is_empty() {
                    self.spill.extend_from_slice(&self.inline[..self.len]);
                }
                self.spill.push(t);
            }
        }

        pub fn as_slice(&self) -> &[&'a [u8]] {
            if self.spill.is_empty() {
                &self.inline[..self.len]
            } else {
                &self.spill
            }
        }
    }
}

fn add_node_to_result<S>(node: &Node<S>, result: &mut MatchResult<S>) {
    result.psubs.extend(node.psubs.iter().cloned());
    for (_, members) in &node.qsubs {
        result.qsubs.push(members.clone());
    }
}

/// The trie walk: at each level a `>` branch matches everything left, a `*` branch
/// recurses on the remaining tokens, and the literal branch continues the loop.
fn match_level<S>(level: Option<&Level<S>>, tokens: &[&[u8]], result: &mut MatchResult<S>) {
    let mut level = level;
    let mut literal: Option<&Node<S>> = None;
    let mut pwc: Option<&Node<S>> = None;
    for (i, token) in tokens.iter().enumerate() {
        let Some(l) = level else { return };
        if let Some(fwc) = &l.fwc {
            add_node_to_result(fwc, result);
        }
        pwc = l.pwc.as_deref();
        if let Some(p) = pwc {
            match_level(p.next.as_deref(), &tokens[i + 1..], result);
        }
        literal = l.nodes.get(*token);
        level = literal.and_then(|n| n.next.as_deref());
    }
    if let Some(n) = literal {
        add_node_to_result(n, result);
    }
    if let Some(n) = pwc {
        add_node_to_result(n, result);
    }
}

/// Queue members found on different trie nodes but in the same group are one group.
fn merge_queue_groups<S: Subscriber>(result: &mut MatchResult<S>) {
    if result.qsubs.len() < 2 {
        return;
    }
    let mut merged: Vec<Vec<Arc<S>>> = Vec::with_capacity(result.qsubs.len());
    for group in result.qsubs.drain(..) {
        let name = group[0].queue();
        match merged.iter_mut().find(|g| g[0].queue() == name) {
            Some(g) => g.extend(group),
            None => merged.push(group),
        }
    }
    result.qsubs = merged;
}

fn remove_from_level<S>(level: &mut Level<S>, tokens: &[&[u8]], sub: &Arc<S>) -> bool
where
    S: Subscriber,
{
    let Some((token, rest)) = tokens.split_first() else {
        return false;
    };
    let node = match *token {
        [PWC] => level.pwc.as_deref_mut(),
        [FWC] => level.fwc.as_deref_mut(),
        _ => level.nodes.get_mut(*token),
    };
    let Some(node) = node else { return false };
    let removed = if rest.is_empty() {
        remove_from_node(node, sub)
    } else {
        match node.next.as_deref_mut() {
            Some(next) => {
                let removed = remove_from_level(next, rest, sub);
                if removed && next.is_empty() {
                    node.next = None;
                }
                removed
            }
            None => false,
        }
    };
    if removed && node.is_empty() {
        match *token {
            [PWC] => level.pwc = None,
            [FWC] => level.fwc = None,
            _ => {
                level.nodes.remove(*token);
            }
        }
    }
    removed
}

fn remove_from_node<S: Subscriber>(node: &mut Node<S>, sub: &Arc<S>) -> bool {
    match sub.queue() {
        None => match node.psubs.iter().position(|s| Arc::ptr_eq(s, sub)) {
            Some(i) => {
                node.psubs.swap_remove(i);
                true
            }
            None => false,
        },
        Some(q) => {
            let Some(gi) = node.qsubs.iter().position(|(name, _)| &**name == q) else {
                return false;
            };
            let members = &mut node.qsubs[gi].1;
            let Some(i) = members.iter().position(|s| Arc::ptr_eq(s, sub)) else {
                return false;
            };
            members.swap_remove(i);
            if members.is_empty() {
                node.qsubs.remove(gi);
            }
            true
        }
    }
}

fn collect_level<S>(level: &Level<S>, out: &mut Vec<Arc<S>>) {
    let nodes = level
        .nodes
        .values()
        .chain(level.pwc.as_deref())
        .chain(level.fwc.as_deref());
    for node in nodes {
        out.extend(node.psubs.iter().cloned());
        for (_, members) in &node.qsubs {
            out.extend(members.iter().cloned());
        }
        if let Some(next) = &node.next {
            collect_level(next, out);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[derive(Debug)]
    struct Sub {
        subject: Vec<u8>,
        queue: Option<Vec<u8>>,
    }

    impl Subscriber for Sub {
        fn subject(&self) -> &[u8] {
            &self.subject
        }
        fn queue(&self) -> Option<&[u8]> {
            self.queue.as_deref()
        }
    }

    fn sub(s: &str) -> Arc<Sub> {
        Arc::new(Sub {
            subject: s.as_bytes().to_vec(),
            queue: None,
        })
    }

    fn qsub(s: &str, q: &str) -> Arc<Sub> {
        Arc::new(Sub {
            subject: s.as_bytes().to_vec(),
            queue: Some(q.as_bytes().to_vec()),
        })
    }

    #[test]
    fn literal_and_wildcards() {
        let sl = Sublist::new();
        for s in ["foo.bar", "foo.*", "foo.>", ">", "*.bar", "foo", "*.*.baz"] {
            sl.insert(sub(s)).unwrap();
        }
        let subjects = |r: &MatchResult<Sub>| {
            let mut v: Vec<String> = r
                .psubs
                .iter()
                .map(|s| String::from_utf8_lossy(&s.subject).into_owned())
                .collect();
            v.sort();
            v
        };
        assert_eq!(
            subjects(&sl.match_subject(b"foo.bar")),
            ["*.bar", ">", "foo.*", "foo.>", "foo.bar"]
        );
        assert_eq!(subjects(&sl.match_subject(b"foo")), [">", "foo"]);
        assert_eq!(
            subjects(&sl.match_subject(b"foo.x.baz")),
            ["*.*.baz", ">", "foo.>"]
        );
        assert_eq!(sl.count(), 7);
    }

    #[test]
    fn invalid_subjects_refused() {
        let sl: Sublist<Sub> = Sublist::new();
        for s in ["", "foo.", ".foo", "foo..bar", "foo.>.bar"] {
            assert_eq!(
                sl.insert(sub(s)),
                Err(SublistError::InvalidSubject),
                "{s:?}"
            );
        }
        assert_eq!(sl.count(), 0);
    }

    #[test]
    fn remove_and_cache_invalidation() {
        let sl = Sublist::new();
        let a = sub("foo.*");
        sl.insert(a.clone()).unwrap();
        assert_eq!(sl.match_subject(b"foo.bar").psubs.len(), 1);
        let g = sl.genid();
        let b = sub("foo.bar");
        sl.insert(b.clone()).unwrap();
        assert_ne!(g, sl.genid());
        assert_eq!(sl.match_subject(b"foo.bar").psubs.len(), 2);
        sl.remove(&a).unwrap();
        assert_eq!(sl.match_subject(b"foo.bar").psubs.len(), 1);
        assert_eq!(sl.remove(&a), Err(SublistError::NotFound));
        sl.remove(&b).unwrap();
        assert!(sl.match_subject(b"foo.bar").is_empty());
        assert!(sl.root.read().is_empty());
    }

    /// A match walked before a concurrent insert is not cached after it: the next match
    /// sees the new subscription (the interleaving a publisher and a subscriber on two
    /// threads can produce, made deterministic here).
    #[test]
    fn a_match_made_stale_by_an_insert_is_not_cached() {
        let sl = Sublist::new();
        sl.insert(sub("race.*")).unwrap();
        let (generation, stale) = sl.compute_match(b"race.x").unwrap();
        sl.insert(sub("race.x")).unwrap();
        sl.cache_result(b"race.x", generation, &stale);
        assert_eq!(stale.psubs.len(), 1);
        assert_eq!(sl.match_subject(b"race.x").psubs.len(), 2);
        // Cached when nothing changed in between.
        let (generation, fresh) = sl.compute_match(b"race.y").unwrap();
        sl.cache_result(b"race.y", generation, &fresh);
        assert!(Arc::ptr_eq(&sl.match_subject(b"race.y"), &fresh));
    }

    #[test]
    fn queue_groups_merge_across_nodes() {
        let sl = Sublist::new();
        sl.insert(qsub("foo.bar", "q")).unwrap();
        sl.insert(qsub("foo.*", "q")).unwrap();
        sl.insert(qsub("foo.*", "r")).unwrap();
        let r = sl.match_subject(b"foo.bar");
        assert_eq!(r.qsubs.len(), 2);
        let mut sizes: Vec<usize> = r.qsubs.iter().map(Vec::len).collect();
        sizes.sort();
        assert_eq!(sizes, [1, 2]);
    }

    mod model {
        use super::*;
        use proptest::prelude::*;

        fn sub_subject() -> impl Strategy<Value = String> {
            let token = prop_oneof![Just("a"), Just("b"), Just("c"), Just("*")];
            (proptest::collection::vec(token, 1..4), any::<bool>()).prop_map(|(t, fwc)| {
                let mut s = t.join(".");
                if fwc {
                    s.push_str(".>");
                }
                s
            })
        }

        fn pub_subject() -> impl Strategy<Value = String> {
            let token = prop_oneof![Just("a"), Just("b"), Just("c")];
            proptest::collection::vec(token, 1..6).prop_map(|t| t.join("."))
        }

        fn names(v: &[Arc<Sub>]) -> Vec<usize> {
            let mut n: Vec<usize> = v.iter().map(|s| Arc::as_ptr(s) as usize).collect();
            n.sort_unstable();
            n
        }

        proptest! {
            /// The trie (and its caches) agrees with a linear scan, through inserts,
            /// removals and repeated matches.
            #[test]
            fn sublist_matches_naive_model(
                subjects in proptest::collection::vec((sub_subject(), prop::option::of(0u8..2)), 1..30),
                removals in proptest::collection::vec(any::<prop::sample::Index>(), 0..10),
                publishes in proptest::collection::vec(pub_subject(), 1..20),
            ) {
                let sl = Sublist::new();
                let mut live: Vec<Arc<Sub>> = Vec::new();
                for (s, q) in subjects {
                    let sub = match q {
                        Some(q) => qsub(&s, &format!("q{q}")),
                        None => sub(&s),
                    };
                    sl.insert(sub.clone()).unwrap();
                    live.push(sub);
                }
                // Warm the cache before removing, so invalidation is exercised.
                for p in &publishes {
                    sl.match_subject(p.as_bytes());
                }
                for idx in removals {
                    if live.is_empty() { break; }
                    let victim = live.remove(idx.index(live.len()));
                    sl.remove(&victim).unwrap();
                }
                prop_assert_eq!(sl.count() as usize, live.len());
                for p in &publishes {
                    let r = sl.match_subject(p.as_bytes());
                    let expected_plain: Vec<Arc<Sub>> = live.iter()
                        .filter(|s| s.queue.is_none() && subject::matches(&s.subject, p.as_bytes()))
                        .cloned().collect();
                    prop_assert_eq!(names(&r.psubs), names(&expected_plain));
                    for q in ["q0", "q1"] {
                        let expected: Vec<Arc<Sub>> = live.iter()
                            .filter(|s| s.queue.as_deref() == Some(q.as_bytes())
                                && subject::matches(&s.subject, p.as_bytes()))
                            .cloned().collect();
                        let got: Vec<Arc<Sub>> = r.qsubs.iter()
                            .filter(|g| g[0].queue.as_deref() == Some(q.as_bytes()))
                            .flat_map(|g| g.iter().cloned()).collect();
                        prop_assert_eq!(names(&got), names(&expected));
                        prop_assert!(r.qsubs.iter().filter(|g| g[0].queue.as_deref() == Some(q.as_bytes())).count() <= 1);
                    }
                }
            }
        }
    }
}
