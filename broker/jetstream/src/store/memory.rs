//! The memory store (JetStream `storage: memory`): a stream's messages in ordered maps in
//! process memory, gone when the process ends.
//!
//! It is also the reference for the rules both stores follow (TTL, expiry, purge filters),
//! which live here as small functions the file store reuses.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Bound;
use std::sync::Arc;

use bytes::Bytes;
use parking_lot::{
    MappedRwLockReadGuard, MappedRwLockWriteGuard, RwLock, RwLockReadGuard, RwLockWriteGuard,
};

use super::file::snapshot;
use super::{
    Appended, Limits, Nanos, NewMsg, Purge, Store, StoreError, StoreState, StoredMsg,
    memory_msg_size,
};
use crate::subject;

/// A stream's messages in memory. One lock guards everything: appends are cheap here, so
/// readers waiting behind a writer wait microseconds.
pub struct MemoryStore {
    /// `None` once destroyed.
    inner: RwLock<Option<Inner>>,
}

#[derive(Default)]
struct Inner {
    limits: Limits,
    msgs: BTreeMap<u64, Msg>,
    /// Sequences of each subject present; the subject string is shared with its messages.
    subjects: BTreeMap<Arc<str>, BTreeSet<u64>>,
    /// `(expires_at, seq)` of messages with their own TTL.
    ttls: BTreeSet<(Nanos, u64)>,
    bytes: u64,
    last_seq: u64,
    last_ts: Nanos,
    meta: BTreeMap<String, Vec<u8>>,
}

struct Msg {
    subject: Arc<str>,
    ts: Nanos,
    ttl: Option<i64>,
    hdr: Bytes,
    data: Bytes,
}

impl Msg {
    fn size(&self) -> u64 {
        memory_msg_size(&self.subject, &self.hdr, &self.data)
    }

    fn stored(&self, seq: u64) -> StoredMsg {
        StoredMsg {
            seq,
            subject: self.subject.to_string(),
            ts: self.ts,
            hdr: self.hdr.clone(),
            data: self.data.clone(),
        }
    }
}

impl MemoryStore {
    pub fn new(limits: Limits) -> Self {
        MemoryStore {
            inner: RwLock::new(Some(Inner {
                limits,
                ..Inner::default()
            })),
        }
    }

    fn read(&self) -> Result<MappedRwLockReadGuard<'_, Inner>, StoreError> {
        RwLockReadGuard::try_map(self.inner.read(), Option::as_ref).map_err(|_| StoreError::Closed)
    }

    fn write(&self) -> Result<MappedRwLockWriteGuard<'_, Inner>, StoreError> {
        RwLockWriteGuard::try_map(self.inner.write(), Option::as_mut)
            .map_err(|_| StoreError::Closed)
    }
}

impl Inner {
    fn insert(&mut self, seq: u64, m: &NewMsg) {
        let subject = match self.subjects.get_key_value(m.subject.as_str()) {
            Some((s, _)) => s.clone(),
            None => Arc::from(m.subject.as_str()),
        };
        self.subjects
            .entry(subject.clone())
            .or_default()
            .insert(seq);
        if let Some(at) = own_expiry(m.ts, m.ttl) {
            self.ttls.insert((at, seq));
        }
        let msg = Msg {
            subject,
            ts: m.ts,
            ttl: m.ttl,
            hdr: m.hdr.clone(),
            data: m.data.clone(),
        };
        self.bytes += msg.size();
        self.msgs.insert(seq, msg);
    }

    fn remove(&mut self, seq: u64) -> bool {
        let Some(msg) = self.msgs.remove(&seq) else {
            return false;
        };
        self.bytes -= msg.size();
        if let Some(seqs) = self.subjects.get_mut(&*msg.subject) {
            seqs.remove(&seq);
            if seqs.is_empty() {
                self.subjects.remove(&*msg.subject);
            }
        }
        if let Some(at) = own_expiry(msg.ts, msg.ttl) {
            self.ttls.remove(&(at, seq));
        }
        true
    }

    /// Removes the oldest messages of `subject` beyond `max_msgs_per_subject`.
    fn trim_subject(&mut self, subject: &str, removed: &mut Vec<u64>) {
        let Some(max) = limit(self.limits.max_msgs_per_subject) else {
            return;
        };
        while let Some(seqs) = self.subjects.get(subject)
            && seqs.len() as u64 > max
            && let Some(&oldest) = seqs.first()
        {
            self.remove(oldest);
            removed.push(oldest);
        }
    }

    /// Removes the oldest messages while over `max_msgs`, then while over `max_bytes`.
    fn trim_totals(&mut self, removed: &mut Vec<u64>) {
        if let Some(max) = limit(self.limits.max_msgs) {
            while self.msgs.len() as u64 > max && self.remove_first(removed) {}
        }
        if let Some(max) = limit(self.limits.max_bytes) {
            while self.bytes > max && self.remove_first(removed) {}
        }
    }

    /// Removes the oldest message; false when there was none.
    fn remove_first(&mut self, removed: &mut Vec<u64>) -> bool {
        let first = self.msgs.first_key_value().map(|(&seq, _)| seq);
        if let Some(seq) = first {
            self.remove(seq);
            removed.push(seq);
        }
        first.is_some()
    }

    /// Enforces every limit over the whole store (after the limits changed).
    fn enforce_all(&mut self) -> Vec<u64> {
        let mut removed = Vec::new();
        if let Some(max) = limit(self.limits.max_msgs_per_subject) {
            let over: Vec<Arc<str>> = self
                .subjects
                .iter()
                .filter(|(_, seqs)| seqs.len() as u64 > max)
                .map(|(s, _)| s.clone())
                .collect();
            for s in over {
                self.trim_subject(&s, &mut removed);
            }
        }
        self.trim_totals(&mut removed);
        removed.sort_unstable();
        removed
    }

    fn state(&self) -> StoreState {
        let (first_seq, first_ts) = match self.msgs.first_key_value() {
            Some((&seq, m)) => (seq, m.ts),
            None => (self.last_seq + 1, 0),
        };
        let msgs = self.msgs.len() as u64;
        StoreState {
            msgs,
            bytes: self.bytes,
            first_seq,
            first_ts,
            last_seq: self.last_seq,
            last_ts: self.last_ts,
            num_deleted: num_deleted(msgs, first_seq, self.last_seq),
            num_subjects: self.subjects.len() as u64,
        }
    }

    /// Calls `f` once for each subject present that matches one of `filters`, even when
    /// several filters match it.
    fn each_subject(&self, filters: &[String], mut f: impl FnMut(&str, &BTreeSet<u64>)) {
        for (i, filter) in filters.iter().enumerate() {
            let seen = |s: &str| filters[..i].iter().any(|e| subject::matches(e, s));
            if !subject::has_wildcard(filter) {
                if let Some(seqs) = self.subjects.get(filter.as_str())
                    && !seen(filter)
                {
                    f(filter, seqs);
                }
                continue;
            }
            let (lower, upper) = prefix_bounds(filter);
            let range = (
                Bound::Included(lower),
                upper.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
            );
            for (s, seqs) in self.subjects.range::<str, _>(range) {
                if subject::matches(filter, s) && !seen(s) {
                    f(s, seqs);
                }
            }
        }
    }

    fn matches_any(filters: &[String], s: &str) -> bool {
        filters.iter().any(|f| subject::matches(f, s))
    }

    /// Whether walking the matching subjects' sequence sets beats scanning `span` messages.
    /// The first sequence `>= start` whose subject matches one of `filters` (any when
    /// there are none).
    fn next_match(&self, start: u64, filters: &[String]) -> Option<u64> {
        if filters.is_empty() {
            return self.msgs.range(start..).next().map(|(&s, _)| s);
        }
        let span = self.last_seq.saturating_sub(start);
        if self.walk_subjects(filters, span) {
            let mut best: Option<u64> = None;
            self.each_subject(filters, |_, seqs| {
                if let Some(&s) = seqs.range(start..).next() {
                    best = earliest(best, Some(s));
                }
            });
            best
        } else {
            self.msgs
                .range(start..)
                .find(|(_, m)| Self::matches_any(filters, &m.subject))
                .map(|(&s, _)| s)
        }
    }

    fn walk_subjects(&self, filters: &[String], span: u64) -> bool {
        filters.iter().all(|f| !subject::has_wildcard(f)) || (self.subjects.len() as u64) < span
    }
}

impl Store for MemoryStore {
    fn msg_size(&self) -> super::SizeFn {
        memory_msg_size
    }

    fn blocks(&self) -> bool {
        false
    }

    /// Memory has nothing to wait for: `durable` is called once the messages are in.
    fn append_then(
        &self,
        msgs: &[NewMsg],
        durable: &mut dyn FnMut(u64),
    ) -> Result<Appended, StoreError> {
        let mut inner = self.write()?;
        let first_seq = next_seqs(inner.last_seq, msgs.len())?;
        let mut removed = Vec::new();
        for m in msgs {
            let seq = inner.last_seq + 1;
            inner.insert(seq, m);
            inner.last_seq = seq;
            inner.last_ts = m.ts;
            inner.trim_subject(&m.subject, &mut removed);
            inner.trim_totals(&mut removed);
        }
        removed.sort_unstable();
        drop(inner);
        durable(first_seq);
        Ok(Appended { first_seq, removed })
    }

    fn skip_to(&self, seq: u64) -> Result<(), StoreError> {
        let mut inner = self.write()?;
        inner.last_seq = inner.last_seq.max(seq.saturating_sub(1));
        Ok(())
    }

    fn remove(&self, seq: u64, _erase: bool) -> Result<bool, StoreError> {
        // The payload is a shared `Bytes` that a reader may still hold: dropping it is all
        // the erasure memory allows.
        Ok(self.write()?.remove(seq))
    }

    fn purge(&self, purge: &Purge) -> Result<u64, StoreError> {
        let mut inner = self.write()?;
        let rule = PurgeRule::new(purge);
        let matching: Vec<u64> = match rule.filter {
            None => inner.msgs.keys().copied().collect(),
            Some(f) if !subject::has_wildcard(f) => inner
                .subjects
                .get(f)
                .map(|s| s.iter().copied().collect())
                .unwrap_or_default(),
            Some(f) => inner
                .msgs
                .iter()
                .filter(|(_, m)| subject::matches(f, &m.subject))
                .map(|(&s, _)| s)
                .collect(),
        };
        let victims = rule.victims(matching.len() as u64);
        let mut purged = 0;
        for &seq in matching
            .iter()
            .take(victims)
            .take_while(|&&s| s < rule.end())
        {
            inner.remove(seq);
            purged += 1;
        }
        if let Some(next) = rule.skip_to(inner.last_seq) {
            inner.last_seq = next - 1;
        }
        Ok(purged)
    }

    fn expire(&self, now: Nanos) -> Result<(Vec<u64>, Option<Nanos>), StoreError> {
        let mut inner = self.write()?;
        let max_age = inner.limits.max_age;
        let mut removed: Vec<u64> = Vec::new();
        for (&seq, m) in &inner.msgs {
            match age_expiry(m.ts, m.ttl, max_age) {
                Some(at) if at <= now => removed.push(seq),
                // Timestamps grow with sequences: the rest are younger.
                Some(_) => break,
                None if max_age > 0 => {}
                None => break,
            }
        }
        removed.extend(
            inner
                .ttls
                .iter()
                .take_while(|(at, _)| *at <= now)
                .map(|&(_, s)| s),
        );
        removed.sort_unstable();
        removed.dedup();
        for &seq in &removed {
            inner.remove(seq);
        }
        let by_age = if max_age > 0 {
            inner
                .msgs
                .values()
                .find_map(|m| age_expiry(m.ts, m.ttl, max_age))
        } else {
            None
        };
        let by_ttl = inner.ttls.first().map(|&(at, _)| at);
        Ok((removed, earliest(by_age, by_ttl)))
    }

    fn set_limits(&self, limits: Limits) -> Result<Vec<u64>, StoreError> {
        let mut inner = self.write()?;
        inner.limits = limits;
        Ok(inner.enforce_all())
    }

    fn state(&self) -> StoreState {
        self.read().map(|i| i.state()).unwrap_or_default()
    }

    fn deleted(&self) -> Result<Vec<u64>, StoreError> {
        let inner = self.read()?;
        let mut gaps = Vec::new();
        let mut next = inner.state().first_seq;
        for &seq in inner.msgs.keys() {
            gaps.extend(next..seq);
            next = seq + 1;
        }
        gaps.extend(next..=inner.last_seq);
        Ok(gaps)
    }

    fn load(&self, seq: u64) -> Result<Option<StoredMsg>, StoreError> {
        Ok(self.read()?.msgs.get(&seq).map(|m| m.stored(seq)))
    }

    fn load_next(&self, start: u64, filters: &[String]) -> Result<Option<StoredMsg>, StoreError> {
        let inner = self.read()?;
        let seq = inner.next_match(start, filters);
        Ok(seq.and_then(|s| inner.msgs.get(&s).map(|m| m.stored(s))))
    }

    fn load_batch(
        &self,
        start: u64,
        filters: &[String],
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredMsg>, StoreError> {
        let inner = self.read()?;
        super::gather(start, max, max_bytes, |from| {
            let seq = inner.next_match(from, filters);
            Ok(seq.and_then(|s| inner.msgs.get(&s).map(|m| m.stored(s))))
        })
    }

    fn load_last(
        &self,
        filter: &str,
        max_seq: Option<u64>,
    ) -> Result<Option<StoredMsg>, StoreError> {
        let inner = self.read()?;
        let max = max_seq.unwrap_or(u64::MAX);
        let filters = [filter.to_string()];
        let seq = if inner.walk_subjects(&filters, inner.msgs.len() as u64) {
            let mut best: Option<u64> = None;
            inner.each_subject(&filters, |_, seqs| {
                if let Some(&s) = seqs.range(..=max).next_back() {
                    best = best.max(Some(s));
                }
            });
            best
        } else {
            inner
                .msgs
                .range(..=max)
                .rev()
                .find(|(_, m)| subject::matches(filter, &m.subject))
                .map(|(&s, _)| s)
        };
        Ok(seq.and_then(|s| inner.msgs.get(&s).map(|m| m.stored(s))))
    }

    fn subjects(&self, filter: &str) -> Result<BTreeMap<String, u64>, StoreError> {
        let inner = self.read()?;
        let mut out = BTreeMap::new();
        inner.each_subject(&[filter.to_string()], |s, seqs| {
            out.insert(s.to_string(), seqs.len() as u64);
        });
        Ok(out)
    }

    fn num_pending(
        &self,
        start: u64,
        filters: &[String],
        last_per_subject: bool,
    ) -> Result<u64, StoreError> {
        let inner = self.read()?;
        if filters.is_empty() && !last_per_subject {
            return Ok(inner.msgs.range(start..).count() as u64);
        }
        let all = [">".to_string()];
        let filters = if filters.is_empty() {
            &all[..]
        } else {
            filters
        };
        let mut n = 0;
        inner.each_subject(filters, |_, seqs| {
            n += if last_per_subject {
                u64::from(seqs.last().is_some_and(|&s| s >= start))
            } else {
                seqs.range(start..).count() as u64
            };
        });
        Ok(n)
    }

    fn seq_for_time(&self, ts: Nanos) -> Result<u64, StoreError> {
        let inner = self.read()?;
        let first = inner.msgs.first_key_value().map(|(&s, _)| s);
        let found = first_at_or_after(first, inner.last_seq, ts, |seq| {
            Ok(inner.msgs.range(seq..).next().map(|(&s, m)| (s, m.ts)))
        })?;
        Ok(found.unwrap_or(inner.last_seq + 1))
    }

    fn put_meta(&self, records: &[(String, Option<Vec<u8>>)]) -> Result<(), StoreError> {
        let mut inner = self.write()?;
        for (name, value) in records {
            match value {
                Some(v) => inner.meta.insert(name.clone(), v.clone()),
                None => inner.meta.remove(name),
            };
        }
        Ok(())
    }

    fn meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let inner = self.read()?;
        Ok(inner
            .meta
            .range::<str, _>((Bound::Included(prefix), Bound::Unbounded))
            .take_while(|(k, _)| k.starts_with(prefix))
            .map(|(k, v)| (k.clone(), v.clone()))
            .collect())
    }

    fn snapshot(&self, out: &mut dyn std::io::Write) -> Result<(), StoreError> {
        let inner = self.read()?;
        let mut w = snapshot::Writer::new(out, inner.last_seq, inner.last_ts)?;
        for (&seq, m) in &inner.msgs {
            w.msg(seq, &m.subject, m.ts, m.ttl, &m.hdr, &m.data)?;
        }
        for (name, value) in &inner.meta {
            w.meta(name, value)?;
        }
        w.finish()
    }

    fn restore(&self, input: &mut dyn std::io::Read) -> Result<(), StoreError> {
        let mut inner = self.write()?;
        if !inner.msgs.is_empty() || !inner.meta.is_empty() {
            return Err(StoreError::Io("restore needs an empty store".into()));
        }
        // Built aside and swapped in whole, so a damaged snapshot leaves the store empty.
        let mut fresh = Inner {
            limits: inner.limits,
            ..Inner::default()
        };
        let mut reader = snapshot::Reader::new(input)?;
        fresh.last_seq = reader.last_seq();
        fresh.last_ts = reader.last_ts();
        while let Some(record) = reader.next_record()? {
            match record {
                snapshot::Record::Msg(seq, m) => fresh.insert(seq, &m),
                snapshot::Record::Meta(name, value) => {
                    fresh.meta.insert(name, value);
                }
            }
        }
        fresh.enforce_all();
        *inner = fresh;
        Ok(())
    }

    fn destroy(&self) -> Result<(), StoreError> {
        *self.inner.write() = None;
        Ok(())
    }
}

// Rules both stores share.

/// A limit from the config: `Some` when it is set (`> 0`).
pub(super) fn limit(v: i64) -> Option<u64> {
    (v > 0).then_some(v as u64)
}

/// When a message's own TTL (`Nats-TTL`) removes it: only a positive TTL does; `None`,
/// `Some(-1)` (never) and other values leave it to the stream's limits.
pub(super) fn own_expiry(ts: Nanos, ttl: Option<i64>) -> Option<Nanos> {
    ttl.filter(|&t| t > 0).map(|t| ts.saturating_add(t))
}

/// When `max_age` removes a message; never for a TTL of `-1` (nats-server's `never`).
pub(super) fn age_expiry(ts: Nanos, ttl: Option<i64>, max_age: i64) -> Option<Nanos> {
    (max_age > 0 && ttl != Some(-1)).then(|| ts.saturating_add(max_age))
}

/// The first of `n` new sequences after `last_seq`, refusing a batch that would reach
/// `u64::MAX` (which `last_seq + 1` must never overflow past).
pub(super) fn next_seqs(last_seq: u64, n: usize) -> Result<u64, StoreError> {
    last_seq
        .checked_add(n as u64 + 1)
        .map(|_| last_seq + 1)
        .ok_or_else(|| StoreError::Io("stream sequence space exhausted".into()))
}

pub(super) fn earliest<T: Ord>(a: Option<T>, b: Option<T>) -> Option<T> {
    match (a, b) {
        (Some(a), Some(b)) => Some(a.min(b)),
        (a, b) => a.or(b),
    }
}

pub(super) fn num_deleted(msgs: u64, first_seq: u64, last_seq: u64) -> u64 {
    if msgs == 0 {
        0
    } else {
        (last_seq + 1 - first_seq) - msgs
    }
}

/// The literal tokens of `filter` before its first wildcard, as a range of subjects that
/// holds every match: `foo.*.bar` gives `["foo.", "foo/")` ('/' follows '.'); a filter that
/// starts with a wildcard gives everything.
pub(super) fn prefix_bounds(filter: &str) -> (&str, Option<String>) {
    let mut end = 0;
    for token in filter.split('.') {
        if token == "*" || token == ">" {
            break;
        }
        end += token.len() + 1;
    }
    let prefix = &filter[..end.min(filter.len())];
    if prefix.is_empty() {
        return ("", None);
    }
    let mut upper = prefix.to_string();
    if upper.ends_with('.') {
        upper.pop();
        upper.push('/');
    } else {
        // A literal filter: its only match is itself.
        upper.push('\0');
    }
    (prefix, Some(upper))
}

/// What a [`Purge`] selects, as nats-server's `PurgeEx` reads it: a filter of `""` or `>`
/// is no filter, and a `seq` or `keep` of 0 is unset (as in the JSON request).
pub(super) struct PurgeRule<'a> {
    pub filter: Option<&'a str>,
    seq: Option<u64>,
    keep: Option<u64>,
}

impl<'a> PurgeRule<'a> {
    pub fn new(p: &'a Purge) -> Self {
        PurgeRule {
            filter: p.filter.as_deref().filter(|f| !f.is_empty() && *f != ">"),
            seq: p.seq.filter(|&s| s > 0),
            keep: p.keep.filter(|&k| k > 0),
        }
    }

    /// How many of the `matching` messages (oldest first) may go: all but the newest
    /// `keep` of them, counted over the filter as a whole as nats-server does.
    pub fn victims(&self, matching: u64) -> usize {
        let n = self.keep.map_or(matching, |k| matching.saturating_sub(k));
        usize::try_from(n).unwrap_or(usize::MAX)
    }

    /// The purge sequence: only messages below it go (`u64::MAX` when unset).
    pub fn end(&self) -> u64 {
        self.seq.unwrap_or(u64::MAX)
    }

    /// The sequence the next append must get after this purge: a purge of everything up
    /// to a sequence past the end moves the stream forward (nats-server's compact).
    pub fn skip_to(&self, last_seq: u64) -> Option<u64> {
        self.seq
            .filter(|&s| self.filter.is_none() && s > last_seq + 1)
    }
}

/// The first sequence at or after `first` whose message has a timestamp `>= ts`, found by
/// binary search over sequences: timestamps never decrease with sequences (the stream
/// assigns them in order), so "the next message at or after `seq` is at or after `ts`"
/// flips once. `next(seq)` gives the first present message at or after `seq`.
pub(super) fn first_at_or_after(
    first: Option<u64>,
    last_seq: u64,
    ts: Nanos,
    mut next: impl FnMut(u64) -> Result<Option<(u64, Nanos)>, StoreError>,
) -> Result<Option<u64>, StoreError> {
    let Some(first) = first else {
        return Ok(None);
    };
    let (mut lo, mut hi) = (first, last_seq + 1);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        match next(mid)? {
            Some((_, t)) if t < ts => lo = mid + 1,
            _ => hi = mid,
        }
    }
    Ok(next(lo)?.map(|(s, _)| s))
}
