//! The store conformance suite: every behaviour runs against both stores, and a proptest
//! drives random operation sequences through each store and a naive model side by side.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use bytes::Bytes;
use proptest::prelude::*;

use super::file::FileStore;
use super::memory::MemoryStore;
use super::*;
use crate::subject;

fn msg(subject: &str, ts: Nanos) -> NewMsg {
    NewMsg {
        subject: subject.to_string(),
        ts,
        hdr: Bytes::new(),
        data: Bytes::from(format!("{subject}@{ts}")),
        ttl: None,
    }
}

fn with_ttl(mut m: NewMsg, ttl: i64) -> NewMsg {
    m.ttl = Some(ttl);
    m
}

fn sized(subject: &str, ts: Nanos, data: usize) -> NewMsg {
    NewMsg {
        data: Bytes::from(vec![b'x'; data]),
        ..msg(subject, ts)
    }
}

fn filters(f: &[&str]) -> Vec<String> {
    f.iter().map(|s| s.to_string()).collect()
}

/// A naive model of a store: a map of messages and the rules written out longhand.
#[derive(Clone, Debug)]
struct Model {
    limits: Limits,
    msgs: BTreeMap<u64, NewMsg>,
    last_seq: u64,
    last_ts: Nanos,
    /// The store's message size (memory and file stores count bytes as nats-server's do).
    size: SizeFn,
}

fn positive(v: i64) -> Option<u64> {
    (v > 0).then_some(v as u64)
}

impl Model {
    fn new(limits: Limits, size: SizeFn) -> Self {
        Model {
            limits,
            msgs: BTreeMap::new(),
            last_seq: 0,
            last_ts: 0,
            size,
        }
    }

    fn bytes(&self) -> u64 {
        self.msgs
            .values()
            .map(|m| (self.size)(&m.subject, &m.hdr, &m.data))
            .sum()
    }

    fn state(&self) -> StoreState {
        let first = self.msgs.iter().next();
        let first_seq = first.map_or(self.last_seq + 1, |(s, _)| *s);
        let msgs = self.msgs.len() as u64;
        let subjects: std::collections::BTreeSet<&str> =
            self.msgs.values().map(|m| m.subject.as_str()).collect();
        StoreState {
            msgs,
            bytes: self.bytes(),
            first_seq,
            first_ts: first.map_or(0, |(_, m)| m.ts),
            last_seq: self.last_seq,
            last_ts: self.last_ts,
            num_deleted: if msgs == 0 {
                0
            } else {
                self.last_seq - first_seq + 1 - msgs
            },
            num_subjects: subjects.len() as u64,
        }
    }

    fn of_subject(&self, subject: &str) -> Vec<u64> {
        self.msgs
            .iter()
            .filter(|(_, m)| m.subject == subject)
            .map(|(s, _)| *s)
            .collect()
    }

    fn remove_first(&mut self, removed: &mut Vec<u64>) {
        if let Some((&s, _)) = self.msgs.iter().next() {
            self.msgs.remove(&s);
            removed.push(s);
        }
    }

    fn trim(&mut self, subjects: &[String], removed: &mut Vec<u64>) {
        if let Some(max) = positive(self.limits.max_msgs_per_subject) {
            for s in subjects {
                let seqs = self.of_subject(s);
                for seq in seqs.iter().take(seqs.len().saturating_sub(max as usize)) {
                    self.msgs.remove(seq);
                    removed.push(*seq);
                }
            }
        }
        if let Some(max) = positive(self.limits.max_msgs) {
            while self.msgs.len() as u64 > max {
                self.remove_first(removed);
            }
        }
        if let Some(max) = positive(self.limits.max_bytes) {
            while self.bytes() > max {
                self.remove_first(removed);
            }
        }
    }

    fn append(&mut self, batch: &[NewMsg]) -> Appended {
        let first_seq = self.last_seq + 1;
        let mut removed = Vec::new();
        for m in batch {
            self.last_seq += 1;
            self.last_ts = m.ts;
            self.msgs.insert(self.last_seq, m.clone());
            self.trim(std::slice::from_ref(&m.subject), &mut removed);
        }
        removed.sort_unstable();
        Appended { first_seq, removed }
    }

    fn set_limits(&mut self, limits: Limits) -> Vec<u64> {
        self.limits = limits;
        let subjects: Vec<String> = self.subjects(">").into_keys().collect();
        let mut removed = Vec::new();
        self.trim(&subjects, &mut removed);
        removed.sort_unstable();
        removed
    }

    fn skip_to(&mut self, seq: u64) {
        self.last_seq = self.last_seq.max(seq.saturating_sub(1));
    }

    fn purge(&mut self, p: &Purge) -> u64 {
        let filter = p.filter.clone().filter(|f| !f.is_empty() && f != ">");
        let seq = p.seq.filter(|&s| s > 0);
        let keep = p.keep.filter(|&k| k > 0);
        let matching: Vec<u64> = self
            .msgs
            .iter()
            .filter(|(_, m)| {
                filter
                    .as_ref()
                    .is_none_or(|f| subject::matches(f, &m.subject))
            })
            .map(|(s, _)| *s)
            .collect();
        let n = matching.len() - keep.map_or(0, |k| (k as usize).min(matching.len()));
        let mut purged = 0;
        for s in &matching[..n] {
            if seq.is_none_or(|b| *s < b) {
                self.msgs.remove(s);
                purged += 1;
            }
        }
        if let Some(s) = seq
            && filter.is_none()
            && s > self.last_seq + 1
        {
            self.last_seq = s - 1;
        }
        purged
    }

    fn expiry(&self, m: &NewMsg) -> Option<Nanos> {
        let by_age = (self.limits.max_age > 0 && m.ttl != Some(-1))
            .then(|| m.ts.saturating_add(self.limits.max_age));
        let by_ttl = m.ttl.filter(|&t| t > 0).map(|t| m.ts.saturating_add(t));
        match (by_age, by_ttl) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        }
    }

    fn expire(&mut self, now: Nanos) -> (Vec<u64>, Option<Nanos>) {
        let gone: Vec<u64> = self
            .msgs
            .iter()
            .filter(|(_, m)| self.expiry(m).is_some_and(|at| at <= now))
            .map(|(s, _)| *s)
            .collect();
        for s in &gone {
            self.msgs.remove(s);
        }
        let next = self.msgs.values().filter_map(|m| self.expiry(m)).min();
        (gone, next)
    }

    fn stored(&self, seq: u64) -> Option<StoredMsg> {
        self.msgs.get(&seq).map(|m| StoredMsg {
            seq,
            subject: m.subject.clone(),
            ts: m.ts,
            hdr: m.hdr.clone(),
            data: m.data.clone(),
        })
    }

    fn matches_any(filters: &[String], s: &str) -> bool {
        filters.is_empty() || filters.iter().any(|f| subject::matches(f, s))
    }

    fn load_next(&self, start: u64, filters: &[String]) -> Option<StoredMsg> {
        let seq = self
            .msgs
            .range(start..)
            .find(|(_, m)| Self::matches_any(filters, &m.subject))?
            .0;
        self.stored(*seq)
    }

    fn load_last(&self, filter: &str, max: Option<u64>) -> Option<StoredMsg> {
        let seq = self
            .msgs
            .range(..=max.unwrap_or(u64::MAX))
            .rev()
            .find(|(_, m)| subject::matches(filter, &m.subject))?
            .0;
        self.stored(*seq)
    }

    fn subjects(&self, filter: &str) -> BTreeMap<String, u64> {
        let mut out = BTreeMap::new();
        for m in self.msgs.values() {
            if subject::matches(filter, &m.subject) {
                *out.entry(m.subject.clone()).or_insert(0) += 1;
            }
        }
        out
    }

    fn num_pending(&self, start: u64, filters: &[String], lps: bool) -> u64 {
        let matching = self
            .msgs
            .range(start..)
            .filter(|(_, m)| Self::matches_any(filters, &m.subject));
        if !lps {
            return matching.count() as u64;
        }
        let mut last: BTreeMap<&str, u64> = BTreeMap::new();
        for (s, m) in &self.msgs {
            last.insert(&m.subject, *s);
        }
        last.iter()
            .filter(|(subj, seq)| **seq >= start && Self::matches_any(filters, subj))
            .count() as u64
    }

    fn seq_for_time(&self, ts: Nanos) -> u64 {
        self.msgs
            .iter()
            .find(|(_, m)| m.ts >= ts)
            .map_or(self.last_seq + 1, |(s, _)| *s)
    }

    fn deleted(&self) -> Vec<u64> {
        let st = self.state();
        (st.first_seq..=st.last_seq)
            .filter(|s| !self.msgs.contains_key(s) && st.msgs > 0)
            .collect()
    }
}

/// Compares everything a store shows with the model.
fn same(store: &dyn Store, model: &Model) {
    assert_eq!(store.state(), model.state(), "state");
    let st = model.state();
    for seq in st.first_seq.saturating_sub(1)..=st.last_seq + 1 {
        assert_eq!(store.load(seq).unwrap(), model.stored(seq), "load {seq}");
    }
    assert_eq!(
        store.subjects(">").unwrap(),
        model.subjects(">"),
        "subjects"
    );
    assert_eq!(store.deleted().unwrap(), model.deleted(), "deleted");
}

/// How a test gets a fresh store of one kind.
trait Kind {
    fn open(&self, limits: Limits) -> Box<dyn Store>;
}

struct Memory;

impl Kind for Memory {
    fn open(&self, limits: Limits) -> Box<dyn Store> {
        Box::new(MemoryStore::new(limits))
    }
}

struct File {
    dir: tempfile::TempDir,
    n: Cell<u32>,
}

impl File {
    fn new() -> Self {
        File {
            dir: tempfile::tempdir().unwrap(),
            n: Cell::new(0),
        }
    }
}

impl Kind for File {
    fn open(&self, limits: Limits) -> Box<dyn Store> {
        self.n.set(self.n.get() + 1);
        let dir = self.dir.path().join(format!("s{}", self.n.get()));
        let (store, recovery) = FileStore::open(&dir, limits, 1 << 20).unwrap();
        assert_eq!(recovery, Recovery::default());
        Box::new(store)
    }
}

macro_rules! conformance {
    ($($case:ident),* $(,)?) => {
        mod memory_store {
            $( #[test] fn $case() { super::$case(&super::Memory) } )*
        }
        mod file_store {
            $( #[test] fn $case() { super::$case(&super::File::new()) } )*
        }
    };
}

conformance!(
    sequences,
    skip_to_moves_the_next_sequence,
    max_msgs,
    max_bytes,
    max_msgs_per_subject,
    set_limits_removes_what_no_longer_fits,
    remove,
    purge_everything,
    purge_with_filter,
    purge_below_sequence,
    purge_keep,
    expire_by_max_age,
    expire_by_ttl,
    load_next_filters,
    load_batch_is_load_next_repeated,
    load_last_with_max_seq,
    subjects_and_num_pending,
    seq_for_time,
    meta_records,
    snapshot_restore,
    damaged_snapshot_restores_nothing,
    destroy_closes,
    sequence_space_ends_with_an_error,
);

fn sequences(kind: &dyn Kind) {
    let s = kind.open(Limits::default());
    let mut m = Model::new(Limits::default(), s.msg_size());
    assert_eq!(s.state().first_seq, 1);
    let batch = [msg("a", 1), msg("b", 2), msg("a", 3)];
    assert_eq!(s.append(&batch).unwrap(), m.append(&batch));
    assert_eq!(s.append(&[msg("c", 4)]).unwrap().first_seq, 4);
    m.append(&[msg("c", 4)]);
    assert_eq!(s.append(&[]).unwrap().first_seq, 5);
    same(&*s, &m);
    let st = s.state();
    assert_eq!(
        (st.msgs, st.first_seq, st.last_seq, st.last_ts),
        (4, 1, 4, 4)
    );
    assert_eq!(st.num_subjects, 3);
    assert!(s.remove(1, false).unwrap());
    m.msgs.remove(&1);
    assert!(s.remove(4, false).unwrap());
    m.msgs.remove(&4);
    // Removed sequences are never reused.
    assert_eq!(s.append(&[msg("d", 5)]).unwrap().first_seq, 5);
    m.append(&[msg("d", 5)]);
    same(&*s, &m);
}

fn skip_to_moves_the_next_sequence(kind: &dyn Kind) {
    let s = kind.open(Limits::default());
    s.skip_to(100).unwrap();
    let st = s.state();
    assert_eq!((st.first_seq, st.last_seq, st.msgs), (100, 99, 0));
    assert_eq!(s.append(&[msg("a", 1)]).unwrap().first_seq, 100);
    s.skip_to(50).unwrap();
    assert_eq!(s.state().last_seq, 100);
    s.skip_to(110).unwrap();
    let st = s.state();
    assert_eq!((st.first_seq, st.last_seq, st.num_deleted), (100, 109, 9));
    assert_eq!(s.deleted().unwrap(), (101..=109).collect::<Vec<_>>());
}

fn max_msgs(kind: &dyn Kind) {
    let limits = Limits {
        max_msgs: 3,
        ..Limits::default()
    };
    let s = kind.open(limits);
    let batch: Vec<NewMsg> = (1..=5).map(|i| msg("a", i)).collect();
    let done = s.append(&batch).unwrap();
    assert_eq!(done.removed, vec![1, 2]);
    assert_eq!(s.state().first_seq, 3);
    assert_eq!(s.append(&[msg("b", 6)]).unwrap().removed, vec![3]);
    assert_eq!(s.state().msgs, 3);
}

fn max_bytes(kind: &dyn Kind) {
    // Room for two 100-byte messages and a half (each store sizes them its own way).
    let one = (kind.open(Limits::default()).msg_size())("a", &[], &[b'x'; 100]);
    let limits = Limits {
        max_bytes: i64::try_from(one * 5 / 2).unwrap(),
        ..Limits::default()
    };
    let s = kind.open(limits);
    s.append(&[sized("a", 1, 100), sized("b", 2, 100)]).unwrap();
    assert_eq!(s.state().bytes, 2 * one);
    let done = s.append(&[sized("c", 3, 100)]).unwrap();
    assert_eq!(done.removed, vec![1]);
    // A message larger than the limit on its own does not stay either.
    let done = s.append(&[sized("d", 4, 300)]).unwrap();
    assert_eq!(done.removed, vec![2, 3, 4]);
    let st = s.state();
    assert_eq!((st.msgs, st.bytes, st.first_seq), (0, 0, 5));
}

fn max_msgs_per_subject(kind: &dyn Kind) {
    let limits = Limits {
        max_msgs_per_subject: 2,
        max_msgs: 5,
        ..Limits::default()
    };
    let s = kind.open(limits);
    let mut m = Model::new(limits, s.msg_size());
    let batch = [
        msg("a", 1),
        msg("b", 2),
        msg("a", 3),
        msg("a", 4),
        msg("c", 5),
        msg("b", 6),
        msg("b", 7),
        msg("d", 8),
    ];
    let done = s.append(&batch).unwrap();
    assert_eq!(done, m.append(&batch));
    assert_eq!(done.removed, vec![1, 2, 3]);
    same(&*s, &m);
    assert_eq!(s.subjects(">").unwrap().get("b"), Some(&2));
}

fn set_limits_removes_what_no_longer_fits(kind: &dyn Kind) {
    let s = kind.open(Limits::default());
    let mut m = Model::new(Limits::default(), s.msg_size());
    let batch: Vec<NewMsg> = (1..=12)
        .map(|i| msg(["a", "b", "c"][i as usize % 3], i))
        .collect();
    s.append(&batch).unwrap();
    m.append(&batch);
    let l = Limits {
        max_msgs_per_subject: 3,
        ..Limits::default()
    };
    assert_eq!(s.set_limits(l).unwrap(), m.set_limits(l));
    same(&*s, &m);
    let l = Limits {
        max_msgs: 4,
        max_msgs_per_subject: 3,
        ..Limits::default()
    };
    let removed = s.set_limits(l).unwrap();
    assert_eq!(removed, m.set_limits(l));
    assert_eq!(removed.len(), 5);
    same(&*s, &m);
    // The new limits hold for later appends.
    s.append(&[msg("z", 13)]).unwrap();
    m.append(&[msg("z", 13)]);
    same(&*s, &m);
}

fn remove(kind: &dyn Kind) {
    let s = kind.open(Limits::default());
    s.append(&[msg("a", 1), msg("a", 2), msg("b", 3)]).unwrap();
    assert!(s.remove(2, true).unwrap());
    assert!(!s.remove(2, false).unwrap());
    assert!(!s.remove(9, false).unwrap());
    assert_eq!(s.load(2).unwrap(), None);
    assert_eq!(s.deleted().unwrap(), vec![2]);
    assert!(s.remove(1, false).unwrap());
    let st = s.state();
    assert_eq!((st.first_seq, st.num_deleted, st.num_subjects), (3, 0, 1));
    assert!(s.remove(3, false).unwrap());
    let st = s.state();
    assert_eq!((st.first_seq, st.msgs, st.last_seq), (4, 0, 3));
}

fn purge_cases(kind: &dyn Kind, cases: &[(Purge, u64)]) {
    let batch: Vec<NewMsg> = (1..=10)
        .map(|i| msg(["k.a", "k.b", "other"][i as usize % 3], i))
        .collect();
    for (p, expected) in cases {
        let s = kind.open(Limits::default());
        let mut m = Model::new(Limits::default(), s.msg_size());
        s.append(&batch).unwrap();
        m.append(&batch);
        assert_eq!(s.purge(p).unwrap(), *expected, "{p:?}");
        assert_eq!(m.purge(p), *expected, "model {p:?}");
        same(&*s, &m);
        // The stream goes on after the purge, at the sequence the purge left.
        let next = s.append(&[msg("k.a", 20)]).unwrap().first_seq;
        assert_eq!(next, m.append(&[msg("k.a", 20)]).first_seq);
        same(&*s, &m);
    }
}

fn purge_everything(kind: &dyn Kind) {
    purge_cases(
        kind,
        &[
            (Purge::default(), 10),
            (
                Purge {
                    filter: Some(">".into()),
                    ..Purge::default()
                },
                10,
            ),
        ],
    );
    let s = kind.open(Limits::default());
    s.append(&[msg("a", 1), msg("b", 2)]).unwrap();
    s.purge(&Purge::default()).unwrap();
    let st = s.state();
    assert_eq!((st.msgs, st.bytes, st.first_seq, st.last_seq), (0, 0, 3, 2));
    assert_eq!(st.num_subjects, 0);
}

fn purge_with_filter(kind: &dyn Kind) {
    purge_cases(
        kind,
        &[
            (
                Purge {
                    filter: Some("k.a".into()),
                    ..Purge::default()
                },
                3,
            ),
            (
                Purge {
                    filter: Some("k.*".into()),
                    ..Purge::default()
                },
                7,
            ),
            (
                Purge {
                    filter: Some("nothing".into()),
                    ..Purge::default()
                },
                0,
            ),
        ],
    );
}

fn purge_below_sequence(kind: &dyn Kind) {
    purge_cases(
        kind,
        &[
            (
                Purge {
                    seq: Some(5),
                    ..Purge::default()
                },
                4,
            ),
            (
                Purge {
                    filter: Some("k.b".into()),
                    seq: Some(6),
                    ..Purge::default()
                },
                2,
            ),
            (
                Purge {
                    filter: Some("k.>".into()),
                    seq: Some(6),
                    ..Purge::default()
                },
                3,
            ),
            (
                Purge {
                    seq: Some(11),
                    ..Purge::default()
                },
                10,
            ),
            // Beyond the end: everything goes and the next sequence is 15 (compact).
            (
                Purge {
                    seq: Some(15),
                    ..Purge::default()
                },
                10,
            ),
            // With a filter, a sequence beyond the end moves nothing.
            (
                Purge {
                    filter: Some("k.a".into()),
                    seq: Some(15),
                    ..Purge::default()
                },
                3,
            ),
        ],
    );
    let s = kind.open(Limits::default());
    s.append(&[msg("a", 1)]).unwrap();
    s.purge(&Purge {
        seq: Some(15),
        ..Purge::default()
    })
    .unwrap();
    assert_eq!(s.append(&[msg("a", 2)]).unwrap().first_seq, 15);
}

fn purge_keep(kind: &dyn Kind) {
    purge_cases(
        kind,
        &[
            (
                Purge {
                    keep: Some(4),
                    ..Purge::default()
                },
                6,
            ),
            (
                Purge {
                    filter: Some("k.a".into()),
                    keep: Some(1),
                    ..Purge::default()
                },
                2,
            ),
            // Kept over the filter as a whole (nats-server), not per subject.
            (
                Purge {
                    filter: Some("k.*".into()),
                    keep: Some(2),
                    ..Purge::default()
                },
                5,
            ),
            (
                Purge {
                    keep: Some(50),
                    ..Purge::default()
                },
                0,
            ),
        ],
    );
}

fn expire_by_max_age(kind: &dyn Kind) {
    let limits = Limits {
        max_age: 100,
        ..Limits::default()
    };
    let s = kind.open(limits);
    let mut m = Model::new(limits, s.msg_size());
    let batch = [
        msg("a", 10),
        with_ttl(msg("never", 20), -1),
        msg("b", 30),
        msg("c", 40),
    ];
    s.append(&batch).unwrap();
    m.append(&batch);
    assert_eq!(s.expire(50).unwrap(), (vec![], Some(110)));
    let got = s.expire(130).unwrap();
    assert_eq!(got, (vec![1, 3], Some(140)));
    assert_eq!(got, m.expire(130));
    same(&*s, &m);
    assert_eq!(s.expire(1000).unwrap(), (vec![4], None));
    assert_eq!(s.load(2).unwrap().unwrap().subject, "never");
}

fn expire_by_ttl(kind: &dyn Kind) {
    let limits = Limits {
        max_age: 1000,
        ..Limits::default()
    };
    let s = kind.open(limits);
    let mut m = Model::new(limits, s.msg_size());
    let batch = [
        with_ttl(msg("a", 10), 50),
        msg("b", 20),
        with_ttl(msg("c", 30), 5),
        with_ttl(msg("d", 40), 2000),
    ];
    s.append(&batch).unwrap();
    m.append(&batch);
    assert_eq!(s.expire(30).unwrap(), (vec![], Some(35)));
    let got = s.expire(60).unwrap();
    assert_eq!(got, (vec![1, 3], Some(1020)));
    assert_eq!(got, m.expire(60));
    same(&*s, &m);
    // max_age still applies to a message with a longer TTL of its own.
    assert_eq!(s.expire(1040).unwrap(), (vec![2, 4], None));
    // A removed message's TTL no longer fires.
    s.append(&[with_ttl(msg("e", 2000), 10)]).unwrap();
    s.remove(5, false).unwrap();
    assert_eq!(s.expire(3000).unwrap(), (vec![], None));
}

fn load_next_filters(kind: &dyn Kind) {
    let s = kind.open(Limits::default());
    let mut m = Model::new(Limits::default(), s.msg_size());
    let batch: Vec<NewMsg> = (1..=30)
        .map(|i| {
            msg(
                ["o.new.1", "o.old.2", "p.new", "o.new.3"][i as usize % 4],
                i,
            )
        })
        .collect();
    s.append(&batch).unwrap();
    m.append(&batch);
    for f in [
        vec![],
        vec!["o.new.1"],
        vec!["o.*.3"],
        vec!["o.>"],
        vec!["*.new"],
        vec!["o.old.2", "p.new"],
        vec!["o.>", "o.new.1"],
        vec!["nothing", "x.*"],
    ] {
        let f = filters(&f);
        for start in 0..=32 {
            assert_eq!(
                s.load_next(start, &f).unwrap(),
                m.load_next(start, &f),
                "{f:?} from {start}"
            );
        }
    }
}

fn load_batch_is_load_next_repeated(kind: &dyn Kind) {
    let s = kind.open(Limits::default());
    let mut m = Model::new(Limits::default(), s.msg_size());
    let batch: Vec<NewMsg> = (1..=40)
        .map(|i| {
            sized(
                ["a.x", "a.y", "b.x", "a.z.1"][i as usize % 4],
                i,
                i as usize,
            )
        })
        .collect();
    s.append(&batch).unwrap();
    m.append(&batch);
    for seq in [3, 4, 17, 18, 19] {
        assert!(s.remove(seq, false).unwrap());
    }
    let model_batch = |start: u64, f: &[String], max: usize, max_bytes: usize| {
        let mut out: Vec<StoredMsg> = Vec::new();
        let mut bytes = 0;
        let mut from = start;
        while out.len() < max && bytes < max_bytes {
            match m
                .load_next(from, f)
                .filter(|x| ![3, 4, 17, 18, 19].contains(&x.seq))
            {
                Some(x) => {
                    from = x.seq + 1;
                    bytes += x.hdr.len() + x.data.len();
                    out.push(x);
                }
                None if from <= 40 => from += 1,
                None => break,
            }
        }
        out
    };
    for f in [
        vec![],
        vec!["a.x"],
        vec!["a.*"],
        vec!["b.x", "a.>"],
        vec!["none"],
    ] {
        let f = filters(&f);
        for start in [0, 1, 3, 16, 39, 41] {
            for (max, max_bytes) in [(1, usize::MAX), (5, usize::MAX), (100, 60), (100, 1)] {
                assert_eq!(
                    s.load_batch(start, &f, max, max_bytes).unwrap(),
                    model_batch(start, &f, max, max_bytes),
                    "{f:?} from {start}, max {max}, max_bytes {max_bytes}"
                );
            }
        }
    }
}

fn load_last_with_max_seq(kind: &dyn Kind) {
    let s = kind.open(Limits::default());
    let mut m = Model::new(Limits::default(), s.msg_size());
    let batch: Vec<NewMsg> = (1..=20)
        .map(|i| msg(["a.x", "a.y", "b"][i as usize % 3], i))
        .collect();
    s.append(&batch).unwrap();
    m.append(&batch);
    for f in ["a.x", "a.*", ">", "b", "zz"] {
        for max in [None, Some(0), Some(1), Some(7), Some(19), Some(100)] {
            assert_eq!(
                s.load_last(f, max).unwrap(),
                m.load_last(f, max),
                "{f} {max:?}"
            );
        }
    }
    assert_eq!(s.load_last("b", Some(7)).unwrap().unwrap().seq, 5);
}

fn subjects_and_num_pending(kind: &dyn Kind) {
    let s = kind.open(Limits::default());
    let mut m = Model::new(Limits::default(), s.msg_size());
    let batch: Vec<NewMsg> = (1..=25)
        .map(|i| msg(["kv.a", "kv.b", "kv.c.d", "x"][i as usize % 4], i))
        .collect();
    s.append(&batch).unwrap();
    m.append(&batch);
    s.remove(4, false).unwrap();
    m.msgs.remove(&4);
    s.remove(8, false).unwrap();
    m.msgs.remove(&8);
    for f in ["kv.*", "kv.>", ">", "x", "nothing", "*.c.*"] {
        assert_eq!(s.subjects(f).unwrap(), m.subjects(f), "{f}");
    }
    for f in [
        vec![],
        vec!["kv.a"],
        vec!["kv.>"],
        vec!["kv.>", "kv.a"],
        vec!["kv.a", "kv.a"],
        vec!["*.b", "x"],
    ] {
        let f = filters(&f);
        for start in [0, 1, 2, 5, 13, 24, 25, 26] {
            for lps in [false, true] {
                assert_eq!(
                    s.num_pending(start, &f, lps).unwrap(),
                    m.num_pending(start, &f, lps),
                    "{f:?} from {start} lps {lps}"
                );
            }
        }
    }
    assert_eq!(s.num_pending(0, &filters(&["kv.>"]), true).unwrap(), 3);
}

fn seq_for_time(kind: &dyn Kind) {
    let s = kind.open(Limits::default());
    assert_eq!(s.seq_for_time(5).unwrap(), 1);
    let batch: Vec<NewMsg> = [10, 20, 20, 30, 40, 50]
        .iter()
        .map(|&t| msg("a", t))
        .collect();
    s.append(&batch).unwrap();
    s.remove(4, false).unwrap();
    for (ts, seq) in [
        (0, 1),
        (10, 1),
        (11, 2),
        (20, 2),
        (21, 5),
        (40, 5),
        (50, 6),
        (51, 7),
    ] {
        assert_eq!(s.seq_for_time(ts).unwrap(), seq, "ts {ts}");
    }
}

fn meta_records(kind: &dyn Kind) {
    let s = kind.open(Limits::default());
    s.put_meta(&[
        ("config".into(), Some(b"{}".to_vec())),
        ("consumer/a".into(), Some(b"A".to_vec())),
        ("consumer/b".into(), Some(b"B".to_vec())),
        ("consumerz".into(), Some(b"Z".to_vec())),
    ])
    .unwrap();
    assert_eq!(
        s.meta("consumer/").unwrap(),
        vec![
            ("consumer/a".to_string(), b"A".to_vec()),
            ("consumer/b".to_string(), b"B".to_vec())
        ]
    );
    s.put_meta(&[
        ("consumer/a".into(), None),
        ("consumer/b".into(), Some(b"B2".to_vec())),
    ])
    .unwrap();
    assert_eq!(
        s.meta("consumer/").unwrap(),
        vec![("consumer/b".to_string(), b"B2".to_vec())]
    );
    assert_eq!(s.meta("").unwrap().len(), 3);
    assert_eq!(
        s.state(),
        StoreState {
            first_seq: 1,
            ..StoreState::default()
        }
    );
}

fn snapshot_restore(kind: &dyn Kind) {
    let s = kind.open(Limits::default());
    let batch = [
        msg("a", 1),
        NewMsg {
            hdr: Bytes::from_static(b"NATS/1.0\r\nX: y\r\n\r\n"),
            ..msg("b", 2)
        },
        with_ttl(msg("c", 3), 100),
        with_ttl(msg("d", 4), -1),
        msg("e", 5),
    ];
    s.append(&batch).unwrap();
    s.remove(2, false).unwrap();
    s.skip_to(10).unwrap();
    s.put_meta(&[("config".into(), Some(b"cfg".to_vec()))])
        .unwrap();
    let mut snap = Vec::new();
    s.snapshot(&mut snap).unwrap();

    // Into either kind of store.
    for target in [kind.open(Limits::default()), Memory.open(Limits::default())] {
        target.restore(&mut snap.as_slice()).unwrap();
        // Each kind counts bytes its own way (as nats-server's stores do); the rest of
        // the state comes across unchanged.
        let bytes: u64 = (1..=11)
            .filter_map(|seq| s.load(seq).unwrap())
            .map(|m| (target.msg_size())(&m.subject, &m.hdr, &m.data))
            .sum();
        assert_eq!(target.state(), StoreState { bytes, ..s.state() });
        for seq in 0..=11 {
            assert_eq!(target.load(seq).unwrap(), s.load(seq).unwrap());
        }
        assert_eq!(target.meta("").unwrap(), s.meta("").unwrap());
        assert_eq!(target.deleted().unwrap(), s.deleted().unwrap());
        // TTLs came along.
        assert_eq!(target.expire(200).unwrap(), (vec![3], None));
        assert_eq!(target.append(&[msg("f", 6)]).unwrap().first_seq, 10);
        // Only into an empty store.
        assert!(target.restore(&mut snap.as_slice()).is_err());
    }
}

fn damaged_snapshot_restores_nothing(kind: &dyn Kind) {
    let s = kind.open(Limits::default());
    s.append(&[msg("a", 1), msg("b", 2)]).unwrap();
    let mut snap = Vec::new();
    s.snapshot(&mut snap).unwrap();
    let flipped = {
        let mut v = snap.clone();
        let i = v.len() / 2;
        v[i] ^= 0x40;
        v
    };
    for bad in [&snap[..snap.len() - 3], &flipped[..], b"garbage".as_slice()] {
        let target = kind.open(Limits::default());
        let err = target.restore(&mut &bad[..]).unwrap_err();
        assert!(matches!(err, StoreError::Corrupt(_)), "{err}");
        assert_eq!(target.state().msgs, 0);
        assert_eq!(target.load(1).unwrap(), None);
    }
}

fn destroy_closes(kind: &dyn Kind) {
    let s = kind.open(Limits::default());
    s.append(&[msg("a", 1)]).unwrap();
    s.destroy().unwrap();
    assert!(matches!(s.load(1), Err(StoreError::Closed)));
    assert!(matches!(s.append(&[msg("a", 2)]), Err(StoreError::Closed)));
    assert_eq!(s.state(), StoreState::default());
}

fn sequence_space_ends_with_an_error(kind: &dyn Kind) {
    let s = kind.open(Limits::default());
    s.skip_to(u64::MAX - 1).unwrap();
    assert_eq!(s.append(&[msg("a", 1)]).unwrap().first_seq, u64::MAX - 1);
    let before = s.state();
    assert!(matches!(s.append(&[msg("a", 2)]), Err(StoreError::Io(_))));
    assert_eq!(s.state(), before);
    assert_eq!(s.state().first_seq, u64::MAX - 1);
}

// Random operation sequences against the model.

const SUBJECTS: [&str; 5] = ["a.1", "a.2", "b.1", "b.2.x", "c"];
const FILTERS: [&str; 7] = [">", "a.*", "a.1", "b.>", "*.2", "c", "none"];

#[derive(Clone, Debug)]
enum Op {
    /// Messages as (subject, payload length, ttl), and how far the clock moves first.
    Append(Vec<(usize, usize, Option<i64>)>, i64),
    Remove(u64),
    Purge(Option<usize>, Option<u64>, Option<u64>),
    Expire(i64),
    SetLimits(Limits),
    SkipTo(u64),
}

fn limits_strategy() -> impl Strategy<Value = Limits> {
    (
        0..8i64,
        prop_oneof![Just(0i64), 60..400i64],
        0..20i64,
        0..4i64,
    )
        .prop_map(
            |(max_msgs, max_bytes, max_age, max_msgs_per_subject)| Limits {
                max_msgs,
                max_bytes,
                max_age,
                max_msgs_per_subject,
            },
        )
}

fn op_strategy() -> impl Strategy<Value = Op> {
    let ttl = prop_oneof![
        4 => Just(None),
        1 => Just(Some(-1i64)),
        2 => (1..15i64).prop_map(Some),
    ];
    prop_oneof![
        // Some payloads long enough for the file store to keep them in its log.
        6 => (prop::collection::vec((0..SUBJECTS.len(), prop_oneof![8 => 0..40usize, 1 => 1024..1100usize], ttl), 1..6), 0..4i64)
            .prop_map(|(m, dt)| Op::Append(m, dt)),
        2 => (0..40u64).prop_map(Op::Remove),
        2 => (
            prop::option::of(0..FILTERS.len()),
            prop::option::of(0..40u64),
            prop::option::of(0..6u64),
        )
            .prop_map(|(f, s, k)| Op::Purge(f, s, k)),
        2 => (0..25i64).prop_map(Op::Expire),
        1 => limits_strategy().prop_map(Op::SetLimits),
        1 => (0..45u64).prop_map(Op::SkipTo),
    ]
}

fn run_ops(store: &dyn Store, limits: Limits, ops: &[Op]) {
    let mut model = Model::new(limits, store.msg_size());
    let mut clock: Nanos = 1;
    for op in ops {
        match op {
            Op::Append(batch, dt) => {
                clock += dt;
                let batch: Vec<NewMsg> = batch
                    .iter()
                    .map(|&(s, len, ttl)| NewMsg {
                        ttl,
                        ..sized(SUBJECTS[s], clock, len)
                    })
                    .collect();
                assert_eq!(
                    store.append(&batch).unwrap(),
                    model.append(&batch),
                    "{op:?}"
                );
            }
            Op::Remove(seq) => {
                let want = model.msgs.remove(seq).is_some();
                assert_eq!(store.remove(*seq, false).unwrap(), want, "{op:?}");
            }
            Op::Purge(f, seq, keep) => {
                // `seq` and `keep` are exclusive in the API.
                let p = Purge {
                    filter: f.map(|i| FILTERS[i].to_string()),
                    seq: *seq,
                    keep: if seq.is_some() { None } else { *keep },
                };
                assert_eq!(store.purge(&p).unwrap(), model.purge(&p), "{op:?}");
            }
            Op::Expire(dt) => {
                let now = clock + dt;
                assert_eq!(store.expire(now).unwrap(), model.expire(now), "{op:?}");
            }
            Op::SetLimits(l) => {
                assert_eq!(
                    store.set_limits(*l).unwrap(),
                    model.set_limits(*l),
                    "{op:?}"
                );
            }
            Op::SkipTo(seq) => {
                store.skip_to(*seq).unwrap();
                model.skip_to(*seq);
            }
        }
        same(store, &model);
        let last = model.last_seq;
        for f in FILTERS {
            let f = vec![f.to_string()];
            for start in [0, last / 2, last] {
                assert_eq!(
                    store.load_next(start, &f).unwrap(),
                    model.load_next(start, &f)
                );
                for lps in [false, true] {
                    assert_eq!(
                        store.num_pending(start, &f, lps).unwrap(),
                        model.num_pending(start, &f, lps),
                        "{f:?} {start} {lps}"
                    );
                }
            }
            assert_eq!(
                store.load_last(&f[0], Some(last / 2)).unwrap(),
                model.load_last(&f[0], Some(last / 2))
            );
        }
        for ts in [0, clock / 2, clock, clock + 1] {
            assert_eq!(store.seq_for_time(ts).unwrap(), model.seq_for_time(ts));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]
    #[test]
    fn memory_store_matches_model(
        limits in limits_strategy(),
        ops in prop::collection::vec(op_strategy(), 1..40),
    ) {
        run_ops(&MemoryStore::new(limits), limits, &ops);
    }
}

proptest! {
    // Every operation is an fsync'd commit: fewer cases.
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn file_store_matches_model(
        limits in limits_strategy(),
        ops in prop::collection::vec(op_strategy(), 1..30),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let (store, _) = FileStore::open(dir.path(), limits, 1 << 20).unwrap();
        run_ops(&store, limits, &ops);
        let before = (store.state(), store.subjects(">").unwrap());
        // The same after a crash (the appends since the last checkpoint come from the log)…
        let crashed = tempfile::tempdir().unwrap();
        crash_copy(dir.path(), crashed.path());
        let (copy, recovery) = FileStore::open(crashed.path(), limits, 1 << 20).unwrap();
        prop_assert!(recovery.repaired.is_empty());
        prop_assert_eq!((copy.state(), copy.subjects(">").unwrap()), before.clone());
        // …and after a reopen.
        drop(store);
        let (store, recovery) = FileStore::open(dir.path(), limits, 1 << 20).unwrap();
        prop_assert!(recovery.repaired.is_empty());
        prop_assert_eq!((store.state(), store.subjects(">").unwrap()), before);
    }
}

// File store only.

/// What a crash leaves of an open file store: its files as they are now, without the
/// checkpoint a clean close makes.
fn crash_copy(from: &Path, to: &Path) {
    std::fs::create_dir_all(to.join("log")).unwrap();
    std::fs::copy(from.join("stream.redb"), to.join("stream.redb")).unwrap();
    if let Ok(segments) = std::fs::read_dir(from.join("log")) {
        for entry in segments {
            let name = entry.unwrap().file_name();
            std::fs::copy(from.join("log").join(&name), to.join("log").join(&name)).unwrap();
        }
    }
}

/// Unsynced meta records (consumer state between syncs) are the store's from then on for
/// readers, may be forgotten by a crash, and are kept by the next durable change or a
/// clean close.
#[test]
fn unsynced_meta_is_kept_by_the_next_durable_change_or_a_close() {
    let dir = tempfile::tempdir().unwrap();
    let meta = |s: &FileStore| s.meta("m/").unwrap();
    let rec = |k: &str, v: &[u8]| (k.to_owned(), Some(v.to_vec()));
    let (s, _) = FileStore::open(dir.path(), Limits::default(), 1 << 20).unwrap();
    s.put_meta(&[rec("m/a", b"1")]).unwrap();
    s.put_meta_unsynced(&[rec("m/a", b"2")]).unwrap();
    assert_eq!(meta(&s), [("m/a".into(), b"2".to_vec())]);
    // A crash may forget it (redb keeps its last durable commit), and the store opens
    // clean.
    let crashed = tempfile::tempdir().unwrap();
    crash_copy(dir.path(), crashed.path());
    let (c, recovery) = FileStore::open(crashed.path(), Limits::default(), 1 << 20).unwrap();
    assert!(recovery.repaired.is_empty());
    assert!(
        matches!(meta(&c)[0].1.as_slice(), b"1" | b"2"),
        "{:?}",
        meta(&c)
    );
    drop(c);
    // A durable change (here an append's checkpoint-free log record does not count; a
    // durable meta write does) carries the unsynced record with it.
    s.append(&[msg("x", 1)]).unwrap();
    s.put_meta(&[rec("m/b", b"1")]).unwrap();
    let crashed = tempfile::tempdir().unwrap();
    crash_copy(dir.path(), crashed.path());
    let (c, _) = FileStore::open(crashed.path(), Limits::default(), 1 << 20).unwrap();
    assert_eq!(
        meta(&c),
        [("m/a".into(), b"2".to_vec()), ("m/b".into(), b"1".to_vec())]
    );
    assert_eq!(c.state().msgs, 1);
    drop(c);
    drop(s);
    // A clean close checkpoints what was unsynced, even with no append since the open.
    let (s, _) = FileStore::open(dir.path(), Limits::default(), 1 << 20).unwrap();
    s.put_meta_unsynced(&[rec("m/a", b"3")]).unwrap();
    let crashed = tempfile::tempdir().unwrap();
    drop(s);
    crash_copy(dir.path(), crashed.path());
    let (s, _) = FileStore::open(crashed.path(), Limits::default(), 1 << 20).unwrap();
    assert_eq!(meta(&s)[0], ("m/a".into(), b"3".to_vec()));
}

/// `no_erase: false` overwrites a payload kept in the log; `no_erase: true` leaves the bytes
/// until their segment goes. Either way the rest reads back, after a crash too.
#[test]
fn secure_erase_overwrites_a_payload_kept_in_the_log() {
    let dir = tempfile::tempdir().unwrap();
    let log_has = |needle: &[u8]| {
        std::fs::read_dir(dir.path().join("log")).unwrap().any(|e| {
            let bytes = std::fs::read(e.unwrap().path()).unwrap();
            bytes.windows(needle.len()).any(|w| w == needle)
        })
    };
    let (s, _) = FileStore::open(dir.path(), Limits::default(), 1 << 20).unwrap();
    let secret = |tag: u8| {
        let mut m = msg("big", i64::from(tag));
        m.data = Bytes::from(
            (0..2000u32)
                .map(|i| tag ^ (i % 251) as u8)
                .collect::<Vec<u8>>(),
        );
        m
    };
    let msgs: Vec<NewMsg> = (1..=3).map(secret).collect();
    s.append(&msgs).unwrap();
    assert!(log_has(&msgs[0].data) && log_has(&msgs[1].data));
    assert!(s.remove(1, true).unwrap());
    assert!(s.remove(2, false).unwrap());
    assert!(!log_has(&msgs[0].data), "erased");
    assert!(log_has(&msgs[1].data), "no_erase keeps the bytes");
    assert_eq!(s.load(3).unwrap().unwrap().data, msgs[2].data);
    assert!(!s.remove(1, true).unwrap());
    let crashed = tempfile::tempdir().unwrap();
    crash_copy(dir.path(), crashed.path());
    let (c, recovery) = FileStore::open(crashed.path(), Limits::default(), 1 << 20).unwrap();
    assert!(recovery.repaired.is_empty());
    assert_eq!((c.state().msgs, c.state().first_seq), (1, 3));
    assert_eq!(c.load(3).unwrap().unwrap().data, msgs[2].data);
}

#[test]
fn large_payloads_stay_in_the_log_until_nothing_points_there() {
    let dir = tempfile::tempdir().unwrap();
    let segments = |d: &Path| std::fs::read_dir(d.join("log")).map_or(0, |e| e.count());
    let (s, _) = FileStore::open(dir.path(), Limits::default(), 1 << 20).unwrap();
    let big: Vec<NewMsg> = (1..=6)
        .map(|i| sized("big", i, 4000 + i as usize))
        .collect();
    s.append(&big[..3]).unwrap();
    s.append(&[msg("small", 4)]).unwrap();
    s.append(&big[3..]).unwrap();
    let loaded: Vec<_> = (1..=7).map(|q| s.load(q).unwrap().unwrap()).collect();
    assert_eq!(loaded[0].data.len(), 4001);
    assert_eq!(loaded[6].data, big[5].data);
    // Read back from a crash image, and after a clean reopen.
    let crashed = tempfile::tempdir().unwrap();
    crash_copy(dir.path(), crashed.path());
    let (c, _) = FileStore::open(crashed.path(), Limits::default(), 1 << 20).unwrap();
    assert_eq!(
        (1..=7)
            .map(|q| c.load(q).unwrap().unwrap())
            .collect::<Vec<_>>(),
        loaded
    );
    let mut snap = Vec::new();
    c.snapshot(&mut snap).unwrap();
    drop(c);
    drop(s);
    let (s, _) = FileStore::open(dir.path(), Limits::default(), 1 << 20).unwrap();
    assert_eq!(
        (1..=7)
            .map(|q| s.load(q).unwrap().unwrap())
            .collect::<Vec<_>>(),
        loaded
    );
    assert_eq!(s.load_batch(1, &[], 10, usize::MAX).unwrap(), loaded);
    // The segment stays while a payload in it is kept.
    assert_eq!(segments(dir.path()), 1);
    assert_eq!(
        s.purge(&Purge {
            seq: Some(7),
            ..Purge::default()
        })
        .unwrap(),
        6
    );
    assert_eq!(segments(dir.path()), 1);
    assert!(s.remove(7, false).unwrap());
    drop(s);
    assert_eq!(segments(dir.path()), 0);
    // A snapshot carries the payloads themselves.
    let r = MemoryStore::new(Limits::default());
    r.restore(&mut snap.as_slice()).unwrap();
    assert_eq!(
        (1..=7)
            .map(|q| r.load(q).unwrap().unwrap())
            .collect::<Vec<_>>(),
        loaded
    );
}

#[test]
fn appends_come_back_from_the_log_after_a_crash() {
    let dir = tempfile::tempdir().unwrap();
    let limits = Limits {
        max_msgs_per_subject: 3,
        ..Limits::default()
    };
    let (s, _) = FileStore::open(dir.path(), limits, 1 << 20).unwrap();
    let mut ts = 0;
    let mut batch = |n: usize| -> Vec<NewMsg> {
        (0..n)
            .map(|i| {
                ts += 1;
                let m = sized(["a", "b", "c.d"][i % 3], ts, i * 7);
                if i % 4 == 0 {
                    with_ttl(m, 1_000_000)
                } else {
                    m
                }
            })
            .collect()
    };
    for n in [1, 5, 9] {
        s.append(&batch(n)).unwrap();
    }
    // A checkpoint in the middle: the log starts over.
    assert!(s.remove(15, false).unwrap());
    for n in [2, 1, 12] {
        s.append(&batch(n)).unwrap();
    }
    let all = |s: &FileStore| {
        let msgs: Vec<_> = (1..=s.state().last_seq + 1)
            .map(|q| s.load(q).unwrap())
            .collect();
        (s.state(), s.subjects(">").unwrap(), msgs)
    };
    let expected = all(&s);
    assert_eq!(expected.0.last_seq, 30);

    let crashed = tempfile::tempdir().unwrap();
    crash_copy(dir.path(), crashed.path());
    let (c, recovery) = FileStore::open(crashed.path(), limits, 1 << 20).unwrap();
    assert!(recovery.repaired.is_empty(), "{:?}", recovery.repaired);
    assert_eq!(all(&c), expected);
    // TTLs came back with their messages; new appends follow on.
    let later = 10_000_000;
    let expired = s.expire(later).unwrap();
    assert!(!expired.0.is_empty());
    assert_eq!(c.expire(later).unwrap(), expired);
    assert_eq!(c.append(&batch(2)).unwrap().first_seq, 31);
    let state = c.state();
    drop(c);

    // A crash right after a replay: its checkpoint holds, nothing comes twice.
    let again = tempfile::tempdir().unwrap();
    let (c, _) = FileStore::open(crashed.path(), limits, 1 << 20).unwrap();
    crash_copy(crashed.path(), again.path());
    drop(c);
    let (c, _) = FileStore::open(again.path(), limits, 1 << 20).unwrap();
    assert_eq!(c.state(), state);
}

fn open_file(dir: &Path) -> (FileStore, Recovery) {
    FileStore::open(dir, Limits::default(), 1 << 20).unwrap()
}

#[test]
fn file_store_reopens_with_everything() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nested/stream");
    let limits = Limits {
        max_age: 1000,
        ..Limits::default()
    };
    let (s, recovery) = FileStore::open(&path, limits, 1 << 20).unwrap();
    assert_eq!(recovery, Recovery::default());
    s.append(&[msg("a", 1), with_ttl(msg("b", 2), 50), msg("c.d", 3)])
        .unwrap();
    s.remove(1, false).unwrap();
    s.put_meta(&[("config".into(), Some(b"x".to_vec()))])
        .unwrap();
    let state = s.state();
    let msgs: Vec<_> = (1..=3).map(|q| s.load(q).unwrap()).collect();
    drop(s);

    let (s, recovery) = FileStore::open(&path, limits, 1 << 20).unwrap();
    assert_eq!(recovery.msgs, 2);
    assert_eq!(recovery.bytes, state.bytes);
    assert!(recovery.repaired.is_empty(), "{:?}", recovery.repaired);
    assert_eq!(s.state(), state);
    assert_eq!(
        (1..=3).map(|q| s.load(q).unwrap()).collect::<Vec<_>>(),
        msgs
    );
    assert_eq!(s.meta("").unwrap().len(), 1);
    assert_eq!(s.subjects(">").unwrap().len(), 2);
    // The TTL index survived too.
    assert_eq!(s.expire(100).unwrap(), (vec![2], Some(1003)));
    assert_eq!(s.append(&[msg("e", 4)]).unwrap().first_seq, 4);
}

#[test]
fn file_store_rebuilds_inconsistent_counters() {
    const MSGS: redb::TableDefinition<u64, &[u8]> = redb::TableDefinition::new("msgs");
    const STATE: redb::TableDefinition<&str, &[u8]> = redb::TableDefinition::new("state");
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open_file(dir.path());
    s.append(&[msg("a", 1), msg("b", 2), msg("a", 3)]).unwrap();
    drop(s);

    // A message vanishes behind the counters' back.
    let db = redb::Database::open(dir.path().join("stream.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(MSGS).unwrap().remove(2).unwrap();
    txn.commit().unwrap();
    drop(db);

    let (s, recovery) = open_file(dir.path());
    assert_eq!(recovery.repaired.len(), 1, "{:?}", recovery.repaired);
    assert!(recovery.repaired[0].contains("rebuilt"));
    let st = s.state();
    assert_eq!((st.msgs, st.last_seq, st.num_subjects), (2, 3, 1));
    assert_eq!(s.subjects(">").unwrap(), BTreeMap::from([("a".into(), 2)]));
    drop(s);

    // Counters gone altogether: the last sequence comes from the messages.
    let db = redb::Database::open(dir.path().join("stream.redb")).unwrap();
    let txn = db.begin_write().unwrap();
    txn.open_table(STATE).unwrap().remove("counters").unwrap();
    txn.commit().unwrap();
    drop(db);
    let (s, recovery) = open_file(dir.path());
    assert_eq!(recovery.repaired.len(), 1);
    assert_eq!(s.state().last_seq, 3);
    assert_eq!(s.append(&[msg("c", 4)]).unwrap().first_seq, 4);
}

#[test]
fn garbage_file_is_corrupt() {
    for garbage in [
        vec![0xAB; 100],
        vec![0; 5000],
        b"redb\x1a\x0a\xa9\x0d\x0a".repeat(600),
    ] {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join("stream.redb"), &garbage).unwrap();
        match FileStore::open(dir.path(), Limits::default(), 1 << 20) {
            Err(StoreError::Corrupt(m)) => assert!(m.contains("stream.redb"), "{m}"),
            Err(e) => panic!("expected Corrupt, got {e}"),
            Ok(_) => panic!("garbage opened"),
        }
    }
}

#[test]
fn truncated_file_is_corrupt() {
    let dir = tempfile::tempdir().unwrap();
    let (s, _) = open_file(dir.path());
    for i in 0..50 {
        s.append(&[sized("a", i, 3000)]).unwrap();
    }
    drop(s);
    let path = dir.path().join("stream.redb");
    let len = fs::metadata(&path).unwrap().len();
    let file = OpenOptions::new().write(true).open(&path).unwrap();
    file.set_len(len / 2).unwrap();
    drop(file);
    match FileStore::open(dir.path(), Limits::default(), 1 << 20) {
        Err(StoreError::Corrupt(_)) => {}
        Err(e) => panic!("expected Corrupt, got {e}"),
        Ok(_) => panic!("truncated file opened"),
    }
}

/// A file backend that fails every write with "no space" while `full` is set.
#[derive(Debug)]
struct Full {
    file: redb::backends::FileBackend,
    full: Arc<AtomicBool>,
}

impl Full {
    fn check(&self) -> Result<(), io::Error> {
        if self.full.load(Ordering::SeqCst) {
            Err(io::Error::from(io::ErrorKind::StorageFull))
        } else {
            Ok(())
        }
    }
}

impl redb::StorageBackend for Full {
    fn len(&self) -> Result<u64, io::Error> {
        self.file.len()
    }
    fn read(&self, offset: u64, out: &mut [u8]) -> Result<(), io::Error> {
        self.file.read(offset, out)
    }
    fn set_len(&self, len: u64) -> Result<(), io::Error> {
        self.check()?;
        self.file.set_len(len)
    }
    fn sync_data(&self) -> Result<(), io::Error> {
        self.check()?;
        self.file.sync_data()
    }
    fn write(&self, offset: u64, data: &[u8]) -> Result<(), io::Error> {
        self.check()?;
        self.file.write(offset, data)
    }
    fn close(&self) -> Result<(), io::Error> {
        self.file.close()
    }
}

#[test]
fn a_failed_write_changes_nothing_and_a_durable_append_survives_its_indexing() {
    let dir = tempfile::tempdir().unwrap();
    let full = Arc::new(AtomicBool::new(false));
    let flag = full.clone();
    let opener: super::file::Opener = Box::new(move |builder, path| {
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(|e| redb::DatabaseError::Storage(redb::StorageError::Io(e)))?;
        builder.create_with_backend(Full {
            file: redb::backends::FileBackend::new(file)?,
            full: flag.clone(),
        })
    });
    let (s, _) = FileStore::open_with(dir.path(), Limits::default(), 1 << 20, opener).unwrap();
    s.append(&[msg("a", 1), msg("b", 2)]).unwrap();
    s.put_meta(&[("config".into(), Some(b"1".to_vec()))])
        .unwrap();
    let state = s.state();

    full.store(true, Ordering::SeqCst);
    // The log (another file) still takes appends: once they are durable they are the
    // caller's, even though indexing them in redb fails.
    let big: Vec<NewMsg> = (0..50).map(|i| sized("c", 3 + i, 4000)).collect();
    let mut told = Vec::new();
    let result = s.append_then(&big, &mut |first| told.push(first));
    assert!(matches!(result, Err(StoreError::NoSpace)), "{result:?}");
    assert_eq!(told, [3], "durable once, with the first sequence");
    // Then the database stays latched: nothing else is taken, not even an append.
    assert!(matches!(
        s.remove(1, false),
        Err(StoreError::NoSpace | StoreError::Io(_))
    ));
    assert!(s.put_meta(&[("config".into(), None)]).is_err());
    let mut told = Vec::new();
    assert!(s.append_then(&big, &mut |first| told.push(first)).is_err());
    assert!(told.is_empty(), "a refused append is never durable");
    assert_eq!(s.state(), state);

    // Space again: the reopened store has replayed them from the log.
    full.store(false, Ordering::SeqCst);
    assert_eq!(s.load(1).unwrap().unwrap().subject, "a");
    assert_eq!(s.load(3).unwrap().unwrap().data.len(), 4000);
    assert_eq!(s.state().msgs, 52);
    assert_eq!(
        s.meta("config").unwrap(),
        vec![("config".into(), b"1".to_vec())]
    );
    let mut told = Vec::new();
    let first = s
        .append_then(&[msg("d", 9)], &mut |f| told.push(f))
        .unwrap()
        .first_seq;
    assert_eq!((first, told), (53, vec![53]));
    drop(s);
    let (s, recovery) = open_file(dir.path());
    assert!(recovery.repaired.is_empty());
    assert_eq!(s.state().msgs, 53);
    assert_eq!(s.load(53).unwrap().unwrap().subject, "d");
}

/// Appends per second on /tmp, each batch one durable commit. Run with
/// `cargo test -p natrix-jetstream --release -- --ignored --nocapture append_throughput`.
#[test]
#[ignore]
fn append_throughput() {
    let dir = tempfile::tempdir().unwrap();
    let mut n = 0;
    println!("payload  batch  commits/s  msgs/s  MB/s");
    for payload in [16usize, 4096] {
        for batch in [1usize, 10, 100, 1000] {
            n += 1;
            let (s, _) =
                FileStore::open(&dir.path().join(n.to_string()), Limits::default(), 64 << 20)
                    .unwrap();
            let msgs: Vec<NewMsg> = (0..batch)
                .map(|i| sized("bench.x", i as i64, payload))
                .collect();
            let commits = (2000 / batch).clamp(20, 300);
            let start = std::time::Instant::now();
            for _ in 0..commits {
                s.append(&msgs).unwrap();
            }
            let secs = start.elapsed().as_secs_f64();
            let per_sec = (commits * batch) as f64 / secs;
            println!(
                "{payload:>7}  {batch:>5}  {:>9.0}  {per_sec:>6.0}  {:>5.1}",
                commits as f64 / secs,
                per_sec * payload as f64 / 1e6
            );
        }
    }
}
