//! The file store (JetStream `storage: file`): one redb database per stream,
//! `<dir>/stream.redb`.
//!
//! Tables:
//! - `msgs`: sequence → one message record (see [`Rec`]).
//! - `by_subject`: `(subject, sequence)` → `()`, the per-subject index behind the
//!   per-subject limit, `load_next`/`load_last` with a filter and `num_pending`.
//! - `subjects`: subject → how many messages it has; streams can hold millions of
//!   subjects, so they live here rather than in memory.
//! - `ttls`: `(expires_at, sequence)` → `()` for messages with their own TTL.
//! - `meta`: the stream's opaque records ([`Store::put_meta`]).
//! - `state`: the counters ([`Counters`]), rewritten in every commit that changes them,
//!   so opening needs no scan.
//!
//! - `segments`: log segment → how many payloads redb points at in it.
//!
//! An append is first written to the stream's log (`log/`, see [`super::wal`]) and
//! synced, then committed to redb with `Durability::None`; payloads of
//! [`EXTERNAL_MIN`] bytes or more stay in the log and redb keeps where they are. Every
//! other change is one write transaction committed with `Durability::Immediate` (one
//! fsync), a checkpoint: it also makes the appends before it durable in redb and moves
//! the replay position past them. redb forgets `None` commits when the process dies (or
//! the database is reopened after an I/O error), so opening replays the log.
//! Memory stays bounded by redb's cache (`cache_bytes`) plus the counters: no message is
//! kept in memory.

use std::fs;
use std::io;
use std::ops::Bound;
use std::path::{Path, PathBuf};

use bytes::Bytes;
use parking_lot::{MappedRwLockReadGuard, Mutex, RwLock, RwLockReadGuard};
use redb::{
    Database, DatabaseError, Durability, ReadOnlyTable, ReadableDatabase, ReadableTable,
    ReadableTableMetadata, Table, TableDefinition, WriteTransaction,
};

use super::memory::{
    PurgeRule, age_expiry, earliest, first_at_or_after, limit, next_seqs, num_deleted, own_expiry,
    prefix_bounds,
};
use super::wal::{EXTERNAL_MIN, Placed, Pos, Segments, Wal};
use super::{
    Appended, Limits, Nanos, NewMsg, Purge, Recovery, Store, StoreError, StoreState, StoredMsg,
    file_msg_size,
};
use crate::subject;

const FILE_NAME: &str = "stream.redb";

const MSGS: TableDefinition<u64, &[u8]> = TableDefinition::new("msgs");
const BY_SUBJECT: TableDefinition<(&str, u64), ()> = TableDefinition::new("by_subject");
const SUBJECTS: TableDefinition<&str, u64> = TableDefinition::new("subjects");
const TTLS: TableDefinition<(i64, u64), ()> = TableDefinition::new("ttls");
const META: TableDefinition<&str, &[u8]> = TableDefinition::new("meta");
const STATE: TableDefinition<&str, &[u8]> = TableDefinition::new("state");
const COUNTERS_KEY: &str = "counters";
const SEGMENTS: TableDefinition<u64, u64> = TableDefinition::new("segments");
/// Where replay starts: the log position at the last checkpoint ([`Pos`]).
const LOG_POS_KEY: &str = "log_position";
/// The limits in force at the last checkpoint (4 × i64 LE): what the appends in the log
/// were trimmed by, so their replay trims the same.
const LIMITS_KEY: &str = "limits";

fn encode_limits(l: &Limits) -> [u8; 32] {
    let mut out = [0; 32];
    let fields = [l.max_msgs, l.max_bytes, l.max_age, l.max_msgs_per_subject];
    for (chunk, v) in out.chunks_exact_mut(8).zip(fields) {
        chunk.copy_from_slice(&v.to_le_bytes());
    }
    out
}

fn decode_limits(b: &[u8]) -> Option<Limits> {
    let f = |i: usize| {
        Some(i64::from_le_bytes(
            b.get(i * 8..i * 8 + 8)?.try_into().ok()?,
        ))
    };
    (b.len() == 32).then_some(())?;
    Some(Limits {
        max_msgs: f(0)?,
        max_bytes: f(1)?,
        max_age: f(2)?,
        max_msgs_per_subject: f(3)?,
    })
}

/// How many sequences a bulk removal gathers before removing them: a table cannot change
/// while it is being iterated, and this bounds the memory a large purge holds.
const BATCH: usize = 1024;

/// Opens (or creates) the database file; tests swap in a backend that fails on command.
pub(super) type Opener =
    Box<dyn Fn(&redb::Builder, &Path) -> Result<Database, DatabaseError> + Send + Sync>;

/// One stream's messages in a redb database. Writers are serialised by `limits`; readers
/// run concurrently on their own read transactions.
pub struct FileStore {
    dir: PathBuf,
    cache_bytes: usize,
    opener: Opener,
    db: RwLock<Slot>,
    /// What only writers touch; its lock is the writer lock, taken before `db`.
    writer: Mutex<Writer>,
    /// Read handles on the log, for payloads kept there.
    segments: Segments,
    /// The counters as of the last commit.
    counters: RwLock<Counters>,
    /// Times the database was reopened after an error ([`Store::reopens`]).
    reopens: std::sync::atomic::AtomicU64,
}

struct Writer {
    limits: Limits,
    wal: Wal,
    /// An unsynced commit since the last checkpoint: a clean close must checkpoint.
    unsynced: bool,
}

/// How a write transaction reaches the disk.
enum Commit<'a> {
    /// Synced (`Durability::Immediate`): a checkpoint.
    Checkpoint,
    /// Appended messages' store records: written to the log and synced first (then
    /// `durable` is called with the first sequence), committed to redb without a sync
    /// unless a checkpoint is due.
    Append(&'a [Vec<u8>], &'a mut dyn FnMut(u64)),
    /// Not synced: a crash forgets it, back to the last checkpoint.
    Unsynced,
}

enum Slot {
    Open(Database),
    /// An I/O error latched the database (redb then refuses everything until it is
    /// reopened); the next call reopens it.
    Failed,
    Destroyed,
}

/// The stream's counts, persisted under `state/counters` in the commit that changes them.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
struct Counters {
    msgs: u64,
    bytes: u64,
    first_seq: u64,
    first_ts: Nanos,
    last_seq: u64,
    last_ts: Nanos,
    num_subjects: u64,
}

const COUNTERS_VERSION: u8 = 1;
const COUNTERS_LEN: usize = 1 + 7 * 8;

impl Counters {
    fn encode(&self) -> [u8; COUNTERS_LEN] {
        let mut out = [0; COUNTERS_LEN];
        out[0] = COUNTERS_VERSION;
        let fields = [
            self.msgs,
            self.bytes,
            self.first_seq,
            self.first_ts as u64,
            self.last_seq,
            self.last_ts as u64,
            self.num_subjects,
        ];
        for (chunk, v) in out[1..].chunks_exact_mut(8).zip(fields) {
            chunk.copy_from_slice(&v.to_le_bytes());
        }
        out
    }

    fn decode(b: &[u8]) -> Option<Counters> {
        if b.len() != COUNTERS_LEN || b[0] != COUNTERS_VERSION {
            return None;
        }
        let mut f = b[1..]
            .chunks_exact(8)
            .map(|c| u64::from_le_bytes(c.try_into().unwrap_or_default()));
        let mut next = || f.next().unwrap_or_default();
        Some(Counters {
            msgs: next(),
            bytes: next(),
            first_seq: next(),
            first_ts: next() as i64,
            last_seq: next(),
            last_ts: next() as i64,
            num_subjects: next(),
        })
    }

    fn state(&self) -> StoreState {
        StoreState {
            msgs: self.msgs,
            bytes: self.bytes,
            first_seq: self.first_seq,
            first_ts: self.first_ts,
            last_seq: self.last_seq,
            last_ts: self.last_ts,
            num_deleted: num_deleted(self.msgs, self.first_seq, self.last_seq),
            num_subjects: self.num_subjects,
        }
    }
}

/// One message as stored in `msgs`: version byte, `ts` (i64 LE), TTL flag byte and TTL
/// (i64 LE), subject length (u32 LE) and subject, header length (u32 LE) and header, then
/// the payload to the end.
struct Rec<'a> {
    subject: &'a str,
    ts: Nanos,
    ttl: Option<i64>,
    hdr: &'a [u8],
    /// The payload, empty when it is in the log (`ext`).
    data: &'a [u8],
    ext: Option<Ext>,
}

/// Where a payload kept in the log lies.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Ext {
    seg: u64,
    off: u64,
    len: u32,
}

/// Version 1: the payload follows the header block. Version 2: instead of the payload,
/// where it lies in the log (segment u64, offset u64, length u32).
const REC_VERSION: u8 = 1;
const REC_EXTERNAL: u8 = 2;

impl<'a> Rec<'a> {
    fn of(m: &'a NewMsg) -> Self {
        Rec {
            subject: &m.subject,
            ts: m.ts,
            ttl: m.ttl,
            hdr: &m.hdr,
            data: &m.data,
            ext: None,
        }
    }

    fn encode(&self) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(46 + self.subject.len() + self.hdr.len() + self.data.len());
        out.push(if self.ext.is_some() {
            REC_EXTERNAL
        } else {
            REC_VERSION
        });
        out.extend_from_slice(&self.ts.to_le_bytes());
        out.push(u8::from(self.ttl.is_some()));
        out.extend_from_slice(&self.ttl.unwrap_or(0).to_le_bytes());
        put_bytes(&mut out, self.subject.as_bytes());
        put_bytes(&mut out, self.hdr);
        match self.ext {
            Some(e) => {
                out.extend_from_slice(&e.seg.to_le_bytes());
                out.extend_from_slice(&e.off.to_le_bytes());
                out.extend_from_slice(&e.len.to_le_bytes());
            }
            None => out.extend_from_slice(self.data),
        }
        out
    }

    /// This record with its payload left in the log, if it is large enough: the log
    /// record that holds it starts at `at` in segment `seg`.
    fn placed(&self, seg: u64, at: u64, encoded_len: usize) -> Option<Rec<'a>> {
        if self.data.len() < EXTERNAL_MIN {
            return None;
        }
        let off = at + (encoded_len - self.data.len()) as u64;
        Some(Rec {
            data: &[],
            ext: Some(Ext {
                seg,
                off,
                len: u32::try_from(self.data.len()).ok()?,
            }),
            ..*self
        })
    }

    fn data_len(&self) -> usize {
        self.ext.map_or(self.data.len(), |e| e.len as usize)
    }

    fn decode(seq: u64, b: &'a [u8]) -> Result<Self, StoreError> {
        let bad = || StoreError::Corrupt(format!("message {seq}: damaged record"));
        let mut r = Cursor(b);
        let version = r.take(1).ok_or_else(bad)?[0];
        if version != REC_VERSION && version != REC_EXTERNAL {
            return Err(bad());
        }
        let ts = r.i64().ok_or_else(bad)?;
        let has_ttl = r.take(1).ok_or_else(bad)?[0] != 0;
        let ttl = r.i64().ok_or_else(bad)?;
        let subject = r.bytes().ok_or_else(bad)?;
        let subject = std::str::from_utf8(subject).map_err(|_| bad())?;
        let hdr = r.bytes().ok_or_else(bad)?;
        let ext = if version == REC_EXTERNAL {
            let seg = r.i64().ok_or_else(bad)? as u64;
            let off = r.i64().ok_or_else(bad)? as u64;
            let len = u32::from_le_bytes(r.take(4).ok_or_else(bad)?.try_into().map_err(|_| bad())?);
            if !r.0.is_empty() {
                return Err(bad());
            }
            Some(Ext { seg, off, len })
        } else {
            None
        };
        Ok(Rec {
            subject,
            ts,
            ttl: has_ttl.then_some(ttl),
            hdr,
            data: r.0,
            ext,
        })
    }

    fn size(&self) -> u64 {
        super::file_msg_len(self.subject.len(), self.hdr.len(), self.data_len())
    }

    /// The message, its payload read from the log when it is kept there.
    fn stored(&self, seq: u64, segments: &Segments) -> Result<StoredMsg, StoreError> {
        let data = match self.ext {
            Some(e) => Bytes::from(segments.read(e.seg, e.off, e.len as usize).map_err(|err| {
                StoreError::Corrupt(format!(
                    "message {seq}: payload in log segment {} unreadable: {err}",
                    e.seg
                ))
            })?),
            None => Bytes::copy_from_slice(self.data),
        };
        Ok(StoredMsg {
            seq,
            subject: self.subject.to_string(),
            ts: self.ts,
            hdr: Bytes::copy_from_slice(self.hdr),
            data,
        })
    }
}

fn put_bytes(out: &mut Vec<u8>, b: &[u8]) {
    out.extend_from_slice(&(b.len() as u32).to_le_bytes());
    out.extend_from_slice(b);
}

/// Reads a record front to back; `None` when it is too short.
struct Cursor<'a>(&'a [u8]);

impl<'a> Cursor<'a> {
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (head, rest) = self.0.split_at_checked(n)?;
        self.0 = rest;
        Some(head)
    }

    fn i64(&mut self) -> Option<i64> {
        Some(i64::from_le_bytes(self.take(8)?.try_into().ok()?))
    }

    fn bytes(&mut self) -> Option<&'a [u8]> {
        let n = u32::from_le_bytes(self.take(4)?.try_into().ok()?);
        self.take(usize::try_from(n).ok()?)
    }
}

impl FileStore {
    /// Opens the stream's database in `dir` (creating both if absent) with a page cache of
    /// `cache_bytes`.
    ///
    /// redb verifies every page checksum on open (`set_check_integrity_on_open`): a file
    /// damaged outside redb is refused as [`StoreError::Corrupt`] instead of trusted, where
    /// a plain open may panic. That reads the whole file once per open, the price of never
    /// serving a damaged stream (after a crash redb walks the whole file anyway).
    pub fn open(
        dir: &Path,
        limits: Limits,
        cache_bytes: usize,
    ) -> Result<(FileStore, Recovery), StoreError> {
        Self::open_with(dir, limits, cache_bytes, Box::new(|b, p| b.create(p)))
    }

    /// [`FileStore::open`] through `opener`, which tests use to inject I/O failures.
    pub(super) fn open_with(
        dir: &Path,
        limits: Limits,
        cache_bytes: usize,
        opener: Opener,
    ) -> Result<(FileStore, Recovery), StoreError> {
        fs::create_dir_all(dir).map_err(|e| io_error(&e))?;
        let (db, counters, repaired, wal) = open_db(dir, &limits, cache_bytes, &opener)?;
        let recovery = Recovery {
            msgs: counters.msgs,
            bytes: counters.bytes,
            // Meta records are opaque here: the stream, which names them, counts consumers.
            consumers: 0,
            repaired,
        };
        let store = FileStore {
            dir: dir.to_path_buf(),
            cache_bytes,
            opener,
            db: RwLock::new(Slot::Open(db)),
            writer: Mutex::new(Writer {
                limits,
                wal,
                unsynced: false,
            }),
            segments: Segments::new(dir),
            counters: RwLock::new(counters),
            reopens: std::sync::atomic::AtomicU64::new(0),
        };
        Ok((store, recovery))
    }

    /// The open database, reopening it first if an I/O error latched it (for readers:
    /// writers, who hold the writer lock, use [`FileStore::db_locked`]).
    fn db(&self) -> Result<MappedRwLockReadGuard<'_, Database>, StoreError> {
        loop {
            if let Some(db) = self.open_slot()? {
                return Ok(db);
            }
            self.reopen(&mut self.writer.lock())?;
        }
    }

    fn db_locked(&self, w: &mut Writer) -> Result<MappedRwLockReadGuard<'_, Database>, StoreError> {
        loop {
            if let Some(db) = self.open_slot()? {
                return Ok(db);
            }
            self.reopen(w)?;
        }
    }

    /// The database if it is open, `None` if it must be reopened.
    fn open_slot(&self) -> Result<Option<MappedRwLockReadGuard<'_, Database>>, StoreError> {
        let slot = self.db.read();
        match &*slot {
            Slot::Destroyed => Err(StoreError::Closed),
            Slot::Failed => Ok(None),
            Slot::Open(_) => RwLockReadGuard::try_map(slot, |s| match s {
                Slot::Open(db) => Some(db),
                _ => None,
            })
            .map(Some)
            .map_err(|_| StoreError::Closed),
        }
    }

    /// Reopens a latched database: redb comes back at its last durable commit, and the
    /// log brings back the appends after it.
    fn reopen(&self, w: &mut Writer) -> Result<(), StoreError> {
        let mut slot = self.db.write();
        if let Slot::Failed = *slot {
            let (db, counters, _, wal) =
                open_db(&self.dir, &w.limits, self.cache_bytes, &self.opener)?;
            *self.counters.write() = counters;
            w.wal = wal;
            *slot = Slot::Open(db);
            self.reopens
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        }
        Ok(())
    }

    /// After an I/O error: redb latches a failed write (every later call fails) until the
    /// database is reopened. A disk that was full then works again once space is freed.
    fn recover_if_latched(&self, w: &mut Writer) {
        let latched = match &*self.db.read() {
            Slot::Open(db) => matches!(
                db.try_begin_write(),
                Err(redb::TransactionError::Storage(
                    redb::StorageError::PreviousIo
                ))
            ),
            _ => false,
        };
        if latched {
            *self.db.write() = Slot::Failed;
            // A failure here is retried by the next call.
            let _ = self.reopen(w);
        }
    }

    fn after<R>(&self, result: Result<R, StoreError>) -> Result<R, StoreError> {
        if matches!(result, Err(StoreError::Io(_) | StoreError::NoSpace)) {
            self.recover_if_latched(&mut self.writer.lock());
        }
        result
    }

    /// Runs `op` in one write transaction committed durably (a checkpoint), then publishes
    /// the new counters (and `set` limits). Nothing in memory changes unless the commit
    /// succeeded. A transaction that changed no counter is aborted instead, unless
    /// `force` (meta).
    fn write<R>(
        &self,
        set: Option<Limits>,
        force: bool,
        op: impl FnOnce(&mut Tx<'_>, &Limits) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        self.commit(set, force, Commit::Checkpoint, |tx, limits, _| {
            op(tx, limits)
        })
    }

    /// [`FileStore::write`] in any [`Commit`] mode. `op` gets where the log put an
    /// append's records. A commit that fails after the log record was synced reopens the
    /// database, whose replay applies the record: the caller was already told it is
    /// stored.
    fn commit<R>(
        &self,
        set: Option<Limits>,
        force: bool,
        mode: Commit<'_>,
        op: impl FnOnce(&mut Tx<'_>, &Limits, Option<&Placed>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let mut guard = self.writer.lock();
        let w = &mut *guard;
        let mut logged = false;
        let result = (|| {
            let db = self.db_locked(w)?;
            let before = *self.counters.read();
            let new_limits = set.unwrap_or(w.limits);
            // New limits are kept durably even when they removed nothing: the log's
            // appends after them replay under them.
            let force = force || new_limits != w.limits;
            let unsynced = matches!(mode, Commit::Unsynced);
            let placed = match mode {
                Commit::Append(recs, durable) => {
                    let first_seq = next_seqs(before.last_seq, recs.len())?;
                    let placed = w.wal.append(first_seq, recs).map_err(|e| io_error(&e))?;
                    logged = true;
                    durable(first_seq);
                    Some(placed)
                }
                Commit::Checkpoint | Commit::Unsynced => None,
            };
            let checkpoint = match &placed {
                _ if unsynced => false,
                None => true,
                Some(_) => w.wal.checkpoint_due(),
            };
            let pos = w.wal.position();
            let applied = (|| {
                let mut txn = db.begin_write()?;
                txn.set_durability(if checkpoint {
                    Durability::Immediate
                } else {
                    Durability::None
                })?;
                let (r, after, live, erase) = {
                    let mut tx = Tx::open(&txn, before)?;
                    let r = op(&mut tx, &new_limits, placed.as_ref())?;
                    tx.refresh_first()?;
                    if tx.c != before {
                        tx.state.insert(COUNTERS_KEY, &tx.c.encode()[..])?;
                    }
                    let live = if checkpoint {
                        tx.mark_checkpoint(pos, &new_limits)?
                    } else {
                        Vec::new()
                    };
                    (r, tx.c, live, std::mem::take(&mut tx.erase))
                };
                let committed = after != before || force;
                if committed {
                    txn.commit()?;
                } else {
                    txn.abort()?;
                }
                Ok::<_, StoreError>((r, after, committed.then_some(live), erase))
            })();
            let (r, after, live, erase) = applied?;
            w.unsynced |= unsynced;
            if checkpoint && let Some(live) = live {
                w.wal.checkpointed();
                w.unsynced = false;
                // Before any segment goes: an unlinked file's bytes stay on the disk.
                for e in erase {
                    if let Err(err) = self.segments.erase(e.seg, e.off, e.len as usize) {
                        tracing::warn!(dir = %self.dir.display(), segment = e.seg, "erasing a removed payload: {err}");
                    }
                }
                self.delete_dead_segments(pos.seg, &live);
            }
            // Published under the database guard, so a concurrent reopen cannot interleave.
            *self.counters.write() = after;
            w.limits = new_limits;
            Ok(r)
        })();
        match &result {
            Err(e) if logged => {
                tracing::error!(dir = %self.dir.display(), "applying logged messages: {e}; reopening to replay them");
                *self.db.write() = Slot::Failed;
                if let Err(e) = self.reopen(w) {
                    tracing::error!(dir = %self.dir.display(), "reopening after a failed apply: {e} (retried by the next call)");
                }
            }
            Err(StoreError::Io(_) | StoreError::NoSpace) => self.recover_if_latched(w),
            _ => {}
        }
        result
    }

    /// After a durable commit that put replay at segment `before`: the segments before it
    /// that hold no payload redb points at (`live` lists those that do) are not needed.
    fn delete_dead_segments(&self, before: u64, live: &[u64]) {
        match Wal::delete_dead(&self.dir, before, |id| live.contains(&id)) {
            Ok(gone) => self.segments.forget(&gone),
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), "deleting old log segments: {e}");
            }
        }
    }

    fn read<R>(
        &self,
        op: impl FnOnce(&View<'_>) -> Result<R, StoreError>,
    ) -> Result<R, StoreError> {
        let result = (|| {
            let db = self.db()?;
            let txn = db.begin_read()?;
            let view = View {
                msgs: txn.open_table(MSGS)?,
                by_subject: txn.open_table(BY_SUBJECT)?,
                subjects: txn.open_table(SUBJECTS)?,
                counters: *self.counters.read(),
                segments: &self.segments,
            };
            op(&view)
        })();
        self.after(result)
    }
}

impl Drop for FileStore {
    /// A clean close makes the logged appends durable in redb and moves replay past the
    /// segment being written, so the next open replays nothing and writes nothing (it
    /// then works on a full disk too), and segments holding no payload go. Best effort:
    /// the log still has the appends otherwise.
    fn drop(&mut self) {
        let mut w = self.writer.lock();
        let Slot::Open(db) = &*self.db.read() else {
            return;
        };
        let pos = w.wal.past_active();
        if pos == w.wal.position() && !w.unsynced {
            return;
        }
        let done = (|| -> Result<Vec<u64>, StoreError> {
            let mut txn = db.begin_write()?;
            txn.set_durability(Durability::Immediate)?;
            let live = Tx::open(&txn, *self.counters.read())?.mark_checkpoint(pos, &w.limits)?;
            txn.commit()?;
            Ok(live)
        })();
        match done {
            Ok(live) => {
                w.wal.close_segment();
                self.delete_dead_segments(pos.seg, &live);
            }
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), "checkpoint at close: {e} (the log keeps the messages)");
            }
        }
    }
}

/// Opens the database and checks its counters against its tables, rebuilding them by a
/// full scan if they disagree.
fn open_db(
    dir: &Path,
    limits: &Limits,
    cache_bytes: usize,
    opener: &Opener,
) -> Result<(Database, Counters, Vec<String>, Wal), StoreError> {
    let path = &dir.join(FILE_NAME);
    let mut builder = redb::Builder::new();
    builder
        .set_cache_size(cache_bytes)
        .set_check_integrity_on_open(true);
    let db = opener(&builder, path).map_err(|e| open_error(path, e))?;
    let mut txn = db.begin_write()?;
    txn.set_durability(Durability::Immediate)?;
    let mut repaired = Vec::new();
    let counters = {
        let mut tx = Tx::open(&txn, Counters::default())?;
        let saved = tx
            .state
            .get(COUNTERS_KEY)?
            .map(|g| Counters::decode(g.value()));
        let changed = match saved {
            Some(Some(c)) if tx.consistent(&c)? => {
                tx.c = c;
                false
            }
            None if tx.msgs.is_empty()? => {
                tx.c.first_seq = 1;
                true
            }
            saved => {
                repaired.push(tx.rebuild(saved.flatten())?);
                true
            }
        };
        // The appends redb forgot (committed without a sync) come back from the log.
        let pos = tx
            .state
            .get(LOG_POS_KEY)?
            .and_then(|g| Pos::decode(g.value()))
            .unwrap_or_default();
        let (batches, highest) = Wal::replay(dir, pos).map_err(|e| io_error(&e))?;
        let limits = tx
            .state
            .get(LIMITS_KEY)?
            .and_then(|g| decode_limits(g.value()))
            .unwrap_or(*limits);
        let mut replayed = 0;
        for b in &batches {
            let last = b.first_seq + (b.recs.len() as u64).saturating_sub(1);
            if last <= tx.c.last_seq {
                continue;
            }
            if b.first_seq != tx.c.last_seq + 1 {
                break;
            }
            // The checksum held, so this is a bug rather than a torn write: the replay
            // stops here and says so, and the stream starts with what came before.
            if let Some(e) = (b.first_seq..)
                .zip(&b.recs)
                .find_map(|(seq, r)| Rec::decode(seq, r).err())
            {
                repaired.push(format!(
                    "log replay stopped at sequence {}: {e}",
                    b.first_seq
                ));
                break;
            }
            tx.append_encoded(&limits, &b.recs, &b.placed)?;
            replayed += b.recs.len();
        }
        if replayed > 0 {
            tx.refresh_first()?;
            tracing::info!(dir = %dir.display(), "replayed {replayed} messages from the log");
        }
        // Appending goes on in a new segment: nothing is ever written after a record
        // that may be torn. Replay then starts there.
        let next_seg = (highest + 1).max(pos.seg).max(1);
        let restart = highest > 0 && highest >= pos.seg;
        let live = if restart {
            let at = Pos {
                seg: next_seg,
                off: 0,
            };
            Some(tx.mark_checkpoint(at, &limits)?)
        } else {
            None
        };
        let changed = changed || replayed > 0;
        if changed {
            tx.state.insert(COUNTERS_KEY, &tx.c.encode()[..])?;
        }
        (tx.c, changed || restart, next_seg, live)
    };
    let (counters, changed, next_seg, live) = counters;
    // An open that found everything in order writes nothing, so it works on a full disk.
    if changed {
        txn.commit()?;
    } else {
        txn.abort()?;
    }
    if let Some(live) = live
        && let Err(e) = Wal::delete_dead(dir, next_seg, |id| live.contains(&id))
    {
        tracing::warn!(dir = %dir.display(), "deleting old log segments: {e}");
    }
    Ok((db, counters, repaired, Wal::new(dir, next_seg)))
}

fn open_error(path: &Path, e: DatabaseError) -> StoreError {
    let at = path.display();
    match e {
        DatabaseError::Storage(redb::StorageError::Corrupted(m)) => {
            StoreError::Corrupt(format!("{at}: {m}"))
        }
        DatabaseError::Storage(redb::StorageError::Io(e)) if no_space(&e) => StoreError::NoSpace,
        DatabaseError::Storage(redb::StorageError::Io(e))
            if matches!(
                e.kind(),
                io::ErrorKind::InvalidData | io::ErrorKind::UnexpectedEof
            ) =>
        {
            StoreError::Corrupt(format!("{at}: not a readable redb database: {e}"))
        }
        DatabaseError::UpgradeRequired(v) => {
            StoreError::Corrupt(format!("{at}: unsupported redb file format {v}"))
        }
        DatabaseError::RepairAborted => {
            StoreError::Corrupt(format!("{at}: damaged and the repair was aborted"))
        }
        e => StoreError::Io(format!("{at}: {e}")),
    }
}

fn no_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded | io::ErrorKind::FileTooLarge
    )
}

fn io_error(e: &io::Error) -> StoreError {
    if no_space(e) {
        StoreError::NoSpace
    } else {
        StoreError::Io(e.to_string())
    }
}

impl From<redb::Error> for StoreError {
    fn from(e: redb::Error) -> Self {
        match e {
            redb::Error::Io(e) => io_error(&e),
            redb::Error::Corrupted(m) => StoreError::Corrupt(m),
            redb::Error::DatabaseClosed => StoreError::Closed,
            e @ (redb::Error::TableTypeMismatch { .. }
            | redb::Error::TypeDefinitionChanged { .. }
            | redb::Error::TableIsMultimap(_)) => StoreError::Corrupt(e.to_string()),
            e => StoreError::Io(e.to_string()),
        }
    }
}

macro_rules! from_redb {
    ($($t:ty),*) => {$(
        impl From<$t> for StoreError {
            fn from(e: $t) -> Self {
                redb::Error::from(e).into()
            }
        }
    )*};
}
from_redb!(
    redb::StorageError,
    redb::TableError,
    redb::TransactionError,
    redb::CommitError,
    redb::SetDurabilityError
);

/// The tables of one write transaction and the counters it is changing.
struct Tx<'t> {
    msgs: Table<'t, u64, &'static [u8]>,
    by_subject: Table<'t, (&'static str, u64), ()>,
    subjects: Table<'t, &'static str, u64>,
    ttls: Table<'t, (i64, u64), ()>,
    meta: Table<'t, &'static str, &'static [u8]>,
    state: Table<'t, &'static str, &'static [u8]>,
    segments: Table<'t, u64, u64>,
    c: Counters,
    /// Log payloads to overwrite once this transaction's checkpoint is durable (secure
    /// erase): then no replay reads the records they were part of.
    erase: Vec<Ext>,
}

/// One payload more (or fewer) kept in log segment `seg`.
fn count_payload(
    segments: &mut Table<'_, u64, u64>,
    seg: u64,
    add: bool,
) -> Result<(), StoreError> {
    let n = segments.get(seg)?.map_or(0, |g| g.value());
    match (add, n) {
        (true, n) => {
            segments.insert(seg, n + 1)?;
        }
        (false, 0 | 1) => {
            segments.remove(seg)?;
        }
        (false, n) => {
            segments.insert(seg, n - 1)?;
        }
    }
    Ok(())
}

impl<'t> Tx<'t> {
    /// Makes this (durable) commit a checkpoint: replay will start at `pos`, under
    /// `limits`. Returns the log segments redb points into, which must stay.
    fn mark_checkpoint(&mut self, pos: Pos, limits: &Limits) -> Result<Vec<u64>, StoreError> {
        self.state.insert(LOG_POS_KEY, &pos.encode()[..])?;
        self.state.insert(LIMITS_KEY, &encode_limits(limits)[..])?;
        let mut live = Vec::new();
        for item in self.segments.iter()? {
            live.push(item?.0.value());
        }
        Ok(live)
    }

    fn open(txn: &'t WriteTransaction, c: Counters) -> Result<Self, StoreError> {
        Ok(Tx {
            msgs: txn.open_table(MSGS)?,
            by_subject: txn.open_table(BY_SUBJECT)?,
            subjects: txn.open_table(SUBJECTS)?,
            ttls: txn.open_table(TTLS)?,
            meta: txn.open_table(META)?,
            state: txn.open_table(STATE)?,
            segments: txn.open_table(SEGMENTS)?,
            c,
            erase: Vec::new(),
        })
    }

    /// Appends messages given as store records after `last_seq`, enforcing `limits` after
    /// each as it arrives (an append and its replay from the log end the same way).
    /// `placed` says where the records lie in the log: large payloads stay there.
    fn append_encoded(
        &mut self,
        limits: &Limits,
        recs: &[Vec<u8>],
        placed: &Placed,
    ) -> Result<Appended, StoreError> {
        let first_seq = next_seqs(self.c.last_seq, recs.len())?;
        let mut removed = Vec::new();
        for (bytes, &at) in recs.iter().zip(&placed.offsets) {
            let seq = self.c.last_seq + 1;
            let rec = Rec::decode(seq, bytes)?;
            match rec.placed(placed.seg, at, bytes.len()) {
                Some(external) => {
                    self.msgs.insert(seq, &external.encode()[..])?;
                    count_payload(&mut self.segments, placed.seg, true)?;
                }
                None => {
                    self.msgs.insert(seq, &bytes[..])?;
                }
            }
            self.index(seq, &rec)?;
            self.c.msgs += 1;
            self.c.bytes += rec.size();
            self.c.last_seq = seq;
            self.c.last_ts = rec.ts;
            self.trim_subject(limits, rec.subject, &mut removed)?;
            self.trim_totals(limits, &mut removed)?;
        }
        removed.sort_unstable();
        Ok(Appended { first_seq, removed })
    }

    fn put_meta(&mut self, records: &[(String, Option<Vec<u8>>)]) -> Result<(), StoreError> {
        for (name, value) in records {
            match value {
                Some(v) => self.meta.insert(name.as_str(), v.as_slice())?,
                None => self.meta.remove(name.as_str())?,
            };
        }
        Ok(())
    }

    /// Stores a message at `seq` and indexes it (the caller moves `last_seq`).
    fn insert(&mut self, seq: u64, rec: &Rec<'_>) -> Result<(), StoreError> {
        self.msgs.insert(seq, &rec.encode()[..])?;
        self.index(seq, rec)?;
        self.c.msgs += 1;
        self.c.bytes += rec.size();
        Ok(())
    }

    fn index(&mut self, seq: u64, rec: &Rec<'_>) -> Result<(), StoreError> {
        self.by_subject.insert((rec.subject, seq), ())?;
        let count = self.subjects.get(rec.subject)?.map_or(0, |g| g.value());
        if count == 0 {
            self.c.num_subjects += 1;
        }
        self.subjects.insert(rec.subject, count + 1)?;
        if let Some(at) = own_expiry(rec.ts, rec.ttl) {
            self.ttls.insert((at, seq), ())?;
        }
        Ok(())
    }

    fn remove(&mut self, seq: u64) -> Result<bool, StoreError> {
        let Some(guard) = self.msgs.remove(seq)? else {
            return Ok(false);
        };
        let rec = Rec::decode(seq, guard.value())?;
        if let Some(e) = rec.ext {
            count_payload(&mut self.segments, e.seg, false)?;
        }
        self.by_subject.remove((rec.subject, seq))?;
        let count = self.subjects.get(rec.subject)?.map_or(0, |g| g.value());
        if count <= 1 {
            self.subjects.remove(rec.subject)?;
            self.c.num_subjects = self.c.num_subjects.saturating_sub(1);
        } else {
            self.subjects.insert(rec.subject, count - 1)?;
        }
        if let Some(at) = own_expiry(rec.ts, rec.ttl) {
            self.ttls.remove((at, seq))?;
        }
        self.c.msgs = self.c.msgs.saturating_sub(1);
        self.c.bytes = self.c.bytes.saturating_sub(rec.size());
        Ok(true)
    }

    /// Removes every message and index entry (a purge of everything).
    fn clear(&mut self) -> Result<u64, StoreError> {
        let n = self.c.msgs;
        self.msgs.retain(|_, _| false)?;
        self.by_subject.retain(|_, _| false)?;
        self.subjects.retain(|_, _| false)?;
        self.ttls.retain(|_, _| false)?;
        self.segments.retain(|_, _| false)?;
        self.c.msgs = 0;
        self.c.bytes = 0;
        self.c.num_subjects = 0;
        Ok(n)
    }

    /// Removes the oldest message; false when there was none.
    fn remove_first(&mut self, removed: &mut Vec<u64>) -> Result<bool, StoreError> {
        let first = self.msgs.first()?.map(|(k, _)| k.value());
        if let Some(seq) = first {
            self.remove(seq)?;
            removed.push(seq);
        }
        Ok(first.is_some())
    }

    fn trim_subject(
        &mut self,
        limits: &Limits,
        subject: &str,
        removed: &mut Vec<u64>,
    ) -> Result<(), StoreError> {
        let Some(max) = limit(limits.max_msgs_per_subject) else {
            return Ok(());
        };
        let count = self.subjects.get(subject)?.map_or(0, |g| g.value());
        for _ in max..count {
            if let Some(seq) = first_of(&self.by_subject, subject, 0)? {
                self.remove(seq)?;
                removed.push(seq);
            }
        }
        Ok(())
    }

    fn trim_totals(&mut self, limits: &Limits, removed: &mut Vec<u64>) -> Result<(), StoreError> {
        if let Some(max) = limit(limits.max_msgs) {
            while self.c.msgs > max && self.remove_first(removed)? {}
        }
        if let Some(max) = limit(limits.max_bytes) {
            while self.c.bytes > max && self.remove_first(removed)? {}
        }
        Ok(())
    }

    fn enforce_all(&mut self, limits: &Limits) -> Result<Vec<u64>, StoreError> {
        let mut removed = Vec::new();
        if let Some(max) = limit(limits.max_msgs_per_subject) {
            // Subjects over the limit, gathered in batches since the table changes under us.
            let mut from = String::new();
            loop {
                let mut over = Vec::new();
                for item in self
                    .subjects
                    .range::<&str>((Bound::Excluded(from.as_str()), Bound::Unbounded))?
                {
                    let (s, n) = item?;
                    if n.value() > max {
                        over.push(s.value().to_string());
                    }
                    if over.len() == BATCH {
                        break;
                    }
                }
                let Some(last) = over.last() else { break };
                from = last.clone();
                for s in &over {
                    self.trim_subject(limits, s, &mut removed)?;
                }
            }
        }
        self.trim_totals(limits, &mut removed)?;
        removed.sort_unstable();
        Ok(removed)
    }

    /// Removes the oldest `victims` messages below `end` that match `filter` (every message
    /// when `None`), oldest first; returns how many went.
    fn remove_oldest(
        &mut self,
        filter: Option<&str>,
        mut victims: usize,
        end: u64,
    ) -> Result<u64, StoreError> {
        let literal = filter.filter(|f| !subject::has_wildcard(f));
        let mut from = 0;
        let mut purged = 0;
        while victims > 0 {
            let want = victims.min(BATCH);
            let mut batch = Vec::with_capacity(want);
            if let Some(f) = literal {
                for item in self.by_subject.range((f, from)..(f, end))? {
                    batch.push(item?.0.value().1);
                    if batch.len() == want {
                        break;
                    }
                }
            } else {
                for item in self.msgs.range(from..end)? {
                    let (k, v) = item?;
                    let seq = k.value();
                    if filter.is_none_or(|f| {
                        Rec::decode(seq, v.value()).is_ok_and(|r| subject::matches(f, r.subject))
                    }) {
                        batch.push(seq);
                        if batch.len() == want {
                            break;
                        }
                    }
                }
            }
            let Some(&last) = batch.last() else { break };
            from = last + 1;
            for seq in batch {
                self.remove(seq)?;
                purged += 1;
                victims -= 1;
            }
        }
        Ok(purged)
    }

    /// Sets `first_seq`/`first_ts` from the first message present.
    fn refresh_first(&mut self) -> Result<(), StoreError> {
        let first = match self.msgs.first()? {
            Some((k, v)) => Some((k.value(), Rec::decode(k.value(), v.value())?.ts)),
            None => None,
        };
        (self.c.first_seq, self.c.first_ts) = first.unwrap_or((self.c.last_seq + 1, 0));
        Ok(())
    }

    /// Whether the saved counters agree with the tables, by what is cheap to read: table
    /// lengths (redb keeps them in each table's root) and the first and last keys.
    fn consistent(&self, c: &Counters) -> Result<bool, StoreError> {
        let first = self.msgs.first()?.map(|(k, _)| k.value());
        let last = self.msgs.last()?.map(|(k, _)| k.value());
        Ok(self.msgs.len()? == c.msgs
            && self.by_subject.len()? == c.msgs
            && self.subjects.len()? == c.num_subjects
            && first.unwrap_or(c.last_seq + 1) == c.first_seq
            && last.unwrap_or(0) <= c.last_seq)
    }

    /// Rebuilds the counters and every index from `msgs` alone; damaged records are
    /// dropped. Returns what it did, in words.
    fn rebuild(&mut self, saved: Option<Counters>) -> Result<String, StoreError> {
        self.by_subject.retain(|_, _| false)?;
        self.subjects.retain(|_, _| false)?;
        self.ttls.retain(|_, _| false)?;
        self.segments.retain(|_, _| false)?;
        let saved_c = saved.unwrap_or_default();
        self.c = Counters {
            last_seq: saved_c.last_seq,
            last_ts: saved_c.last_ts,
            ..Counters::default()
        };
        let mut damaged = Vec::new();
        let mut from = 0;
        loop {
            let mut batch: Vec<(u64, Vec<u8>)> = Vec::with_capacity(BATCH);
            for item in self.msgs.range(from..)? {
                let (k, v) = item?;
                batch.push((k.value(), v.value().to_vec()));
                if batch.len() == BATCH {
                    break;
                }
            }
            let Some(&(last, _)) = batch.last() else {
                break;
            };
            from = last.saturating_add(1);
            for (seq, bytes) in &batch {
                match Rec::decode(*seq, bytes) {
                    Ok(rec) => {
                        self.index(*seq, &rec)?;
                        if let Some(e) = rec.ext {
                            count_payload(&mut self.segments, e.seg, true)?;
                        }
                        self.c.msgs += 1;
                        self.c.bytes += rec.size();
                        if *seq > self.c.last_seq {
                            self.c.last_seq = *seq;
                            self.c.last_ts = rec.ts;
                        }
                    }
                    Err(_) => damaged.push(*seq),
                }
            }
            if last == u64::MAX {
                break;
            }
        }
        for seq in &damaged {
            self.msgs.remove(*seq)?;
        }
        self.refresh_first()?;
        let why = match saved {
            None => "no saved counters".to_string(),
            Some(s) => format!(
                "saved counters (msgs {}, first {}, last {}, subjects {}) disagreed with the tables",
                s.msgs, s.first_seq, s.last_seq, s.num_subjects
            ),
        };
        let mut note = format!(
            "{why}: rebuilt counters and indexes by scanning {} messages",
            self.c.msgs
        );
        if !damaged.is_empty() {
            note.push_str(&format!(
                "; dropped {} damaged records (first at sequence {})",
                damaged.len(),
                damaged[0]
            ));
        }
        Ok(note)
    }
}

type MsgEntry<'a> = (
    redb::AccessGuard<'a, u64>,
    redb::AccessGuard<'a, &'static [u8]>,
);

/// The tables a read needs, from one read transaction.
struct View<'s> {
    msgs: ReadOnlyTable<u64, &'static [u8]>,
    by_subject: ReadOnlyTable<(&'static str, u64), ()>,
    subjects: ReadOnlyTable<&'static str, u64>,
    counters: Counters,
    segments: &'s Segments,
}

impl View<'_> {
    fn load(&self, seq: u64) -> Result<Option<StoredMsg>, StoreError> {
        match self.msgs.get(seq)? {
            Some(g) => Ok(Some(
                Rec::decode(seq, g.value())?.stored(seq, self.segments)?,
            )),
            None => Ok(None),
        }
    }

    /// Whether walking the matching subjects through the index beats scanning `span`
    /// messages: always for literal filters, else when there are fewer subjects.
    fn walk_subjects(&self, filters: &[String], span: u64) -> bool {
        filters.iter().all(|f| !subject::has_wildcard(f)) || self.counters.num_subjects < span
    }

    /// Whether `subject` matches one of `filters`; any does when there are none.
    fn matches(filters: &[String], subject: &str) -> bool {
        filters.is_empty() || filters.iter().any(|f| subject::matches(f, subject))
    }

    /// The first message at or after `from` on one of the subjects `filters` match,
    /// found through the per-subject index.
    fn next_by_subject(
        &self,
        from: u64,
        filters: &[String],
    ) -> Result<Option<StoredMsg>, StoreError> {
        let mut best = None;
        each_subject(&self.subjects, filters, |s, _| {
            best = earliest(best, first_of(&self.by_subject, s, from)?);
            Ok(())
        })?;
        best.map_or(Ok(None), |s| self.load(s))
    }

    /// The first message in `range`'s order whose subject matches one of `filters` (any
    /// message when there are none).
    fn scan<'a>(
        &self,
        range: impl Iterator<Item = Result<MsgEntry<'a>, redb::StorageError>>,
        filters: &[String],
    ) -> Result<Option<StoredMsg>, StoreError> {
        for item in range {
            let (k, v) = item?;
            let rec = Rec::decode(k.value(), v.value())?;
            if Self::matches(filters, rec.subject) {
                return Ok(Some(rec.stored(k.value(), self.segments)?));
            }
        }
        Ok(None)
    }
}

/// The first sequence of `subject` at or after `from`.
fn first_of(
    idx: &impl ReadableTable<(&'static str, u64), ()>,
    subject: &str,
    from: u64,
) -> Result<Option<u64>, StoreError> {
    match idx.range((subject, from)..=(subject, u64::MAX))?.next() {
        Some(item) => Ok(Some(item?.0.value().1)),
        None => Ok(None),
    }
}

/// The last sequence of `subject` at or below `max`.
fn last_of(
    idx: &impl ReadableTable<(&'static str, u64), ()>,
    subject: &str,
    max: u64,
) -> Result<Option<u64>, StoreError> {
    match idx.range((subject, 0)..=(subject, max))?.next_back() {
        Some(item) => Ok(Some(item?.0.value().1)),
        None => Ok(None),
    }
}

fn count_from(
    idx: &impl ReadableTable<(&'static str, u64), ()>,
    subject: &str,
    from: u64,
) -> Result<u64, StoreError> {
    let mut n = 0;
    for item in idx.range((subject, from)..=(subject, u64::MAX))? {
        item?;
        n += 1;
    }
    Ok(n)
}

/// Calls `f(subject, count)` once for each subject present that matches one of
/// `filters`, even when several filters match it. A wildcard filter reads only the
/// subjects that share its literal prefix.
fn each_subject(
    subjects: &impl ReadableTable<&'static str, u64>,
    filters: &[String],
    mut f: impl FnMut(&str, u64) -> Result<(), StoreError>,
) -> Result<(), StoreError> {
    for (i, filter) in filters.iter().enumerate() {
        let seen = |s: &str| filters[..i].iter().any(|e| subject::matches(e, s));
        if !subject::has_wildcard(filter) {
            let count = subjects.get(filter.as_str())?.map(|g| g.value());
            if let Some(n) = count
                && !seen(filter)
            {
                f(filter, n)?;
            }
            continue;
        }
        let (lower, upper) = prefix_bounds(filter);
        let range = (
            Bound::Included(lower),
            upper.as_deref().map_or(Bound::Unbounded, Bound::Excluded),
        );
        for item in subjects.range::<&str>(range)? {
            let (s, n) = item?;
            let s = s.value();
            if subject::matches(filter, s) && !seen(s) {
                f(s, n.value())?;
            }
        }
    }
    Ok(())
}

impl Store for FileStore {
    fn msg_size(&self) -> super::SizeFn {
        file_msg_size
    }

    fn append_then(
        &self,
        msgs: &[NewMsg],
        durable: &mut dyn FnMut(u64),
    ) -> Result<Appended, StoreError> {
        if msgs.is_empty() {
            let _open = self.db()?;
            return Ok(Appended {
                first_seq: self.counters.read().last_seq + 1,
                removed: Vec::new(),
            });
        }
        let recs: Vec<Vec<u8>> = msgs.iter().map(|m| Rec::of(m).encode()).collect();
        self.commit(
            None,
            false,
            Commit::Append(&recs, durable),
            |tx, limits, placed| {
                let placed =
                    placed.ok_or_else(|| StoreError::Io("append without a log record".into()))?;
                tx.append_encoded(limits, &recs, placed)
            },
        )
    }

    fn skip_to(&self, seq: u64) -> Result<(), StoreError> {
        self.write(None, false, |tx, _| {
            tx.c.last_seq = tx.c.last_seq.max(seq.saturating_sub(1));
            Ok(())
        })
    }

    /// redb never overwrites a committed page in place (copy-on-write): with `erase` the
    /// record's pages are freed like any other and reused by later commits, not zeroed.
    /// A payload kept in the log (1 KiB or more) is erased there: once the removal's
    /// checkpoint has moved replay past it, its bytes are overwritten with random ones
    /// and synced, as nats-server's secure erase does in its blocks.
    fn remove(&self, seq: u64, erase: bool) -> Result<bool, StoreError> {
        self.write(None, false, |tx, _| {
            if erase && let Some(g) = tx.msgs.get(seq)? {
                let ext = Rec::decode(seq, g.value())?.ext;
                drop(g);
                tx.erase.extend(ext);
            }
            tx.remove(seq)
        })
    }

    fn remove_many(&self, seqs: &[u64]) -> Result<usize, StoreError> {
        if seqs.is_empty() {
            return Ok(0);
        }
        self.write(None, false, |tx, _| {
            let mut n = 0;
            for &seq in seqs {
                n += usize::from(tx.remove(seq)?);
            }
            Ok(n)
        })
    }

    fn purge(&self, purge: &Purge) -> Result<u64, StoreError> {
        let rule = PurgeRule::new(purge);
        self.write(None, false, |tx, _| {
            let matching = match rule.filter {
                None => tx.c.msgs,
                Some(f) => {
                    let mut n = 0;
                    each_subject(&tx.subjects, &[f.to_string()], |_, c| {
                        n += c;
                        Ok(())
                    })?;
                    n
                }
            };
            let victims = rule.victims(matching);
            let purged = if rule.filter.is_none()
                && victims as u64 >= tx.c.msgs
                && rule.end() > tx.c.last_seq
            {
                tx.clear()?
            } else {
                tx.remove_oldest(rule.filter, victims, rule.end())?
            };
            if let Some(next) = rule.skip_to(tx.c.last_seq) {
                tx.c.last_seq = next - 1;
            }
            Ok(purged)
        })
    }

    /// Walks `msgs` from the oldest while `max_age` has passed (messages with a TTL of
    /// `never` are stepped over, so many of them at the head cost a scan per call) and
    /// `ttls` while their time has come. Nothing expired: the transaction is aborted,
    /// no fsync.
    fn expire(&self, now: Nanos) -> Result<(Vec<u64>, Option<Nanos>), StoreError> {
        self.write(None, false, |tx, limits| {
            let max_age = limits.max_age;
            let mut removed = Vec::new();
            if max_age > 0 {
                for item in tx.msgs.iter()? {
                    let (k, v) = item?;
                    let rec = Rec::decode(k.value(), v.value())?;
                    match age_expiry(rec.ts, rec.ttl, max_age) {
                        Some(at) if at <= now => removed.push(k.value()),
                        // Timestamps grow with sequences: the rest are younger.
                        Some(_) => break,
                        None => {}
                    }
                }
            }
            for item in tx.ttls.iter()? {
                let (at, seq) = item?.0.value();
                if at > now {
                    break;
                }
                removed.push(seq);
            }
            removed.sort_unstable();
            removed.dedup();
            for &seq in &removed {
                tx.remove(seq)?;
            }
            let mut by_age = None;
            if max_age > 0 {
                for item in tx.msgs.iter()? {
                    let (k, v) = item?;
                    let rec = Rec::decode(k.value(), v.value())?;
                    if let Some(at) = age_expiry(rec.ts, rec.ttl, max_age) {
                        by_age = Some(at);
                        break;
                    }
                }
            }
            let by_ttl = tx.ttls.first()?.map(|(k, _)| k.value().0);
            Ok((removed, earliest(by_age, by_ttl)))
        })
    }

    fn set_limits(&self, limits: Limits) -> Result<Vec<u64>, StoreError> {
        self.write(Some(limits), false, |tx, l| tx.enforce_all(l))
    }

    fn state(&self) -> StoreState {
        match &*self.db.read() {
            Slot::Destroyed => StoreState::default(),
            _ => self.counters.read().state(),
        }
    }

    fn deleted(&self) -> Result<Vec<u64>, StoreError> {
        self.read(|v| {
            let mut gaps = Vec::new();
            let mut next = v.counters.first_seq;
            for item in v.msgs.iter()? {
                let seq = item?.0.value();
                gaps.extend(next..seq);
                next = seq + 1;
            }
            gaps.extend(next..=v.counters.last_seq);
            Ok(gaps)
        })
    }

    fn load(&self, seq: u64) -> Result<Option<StoredMsg>, StoreError> {
        let result = (|| {
            let db = self.db()?;
            let msgs = db.begin_read()?.open_table(MSGS)?;
            match msgs.get(seq)? {
                Some(g) => Ok(Some(
                    Rec::decode(seq, g.value())?.stored(seq, &self.segments)?,
                )),
                None => Ok(None),
            }
        })();
        self.after(result)
    }

    fn load_next(&self, start: u64, filters: &[String]) -> Result<Option<StoredMsg>, StoreError> {
        self.read(|v| {
            let span = v.counters.last_seq.saturating_sub(start);
            if filters.is_empty() || !v.walk_subjects(filters, span) {
                return v.scan(v.msgs.range(start..)?, filters);
            }
            v.next_by_subject(start, filters)
        })
    }

    fn load_batch(
        &self,
        start: u64,
        filters: &[String],
        max: usize,
        max_bytes: usize,
    ) -> Result<Vec<StoredMsg>, StoreError> {
        self.read(|v| {
            let mut out = Vec::new();
            let mut bytes = 0;
            let span = v.counters.last_seq.saturating_sub(start);
            if !filters.is_empty() && v.walk_subjects(filters, span) {
                return super::gather(start, max, max_bytes, |from| {
                    v.next_by_subject(from, filters)
                });
            }
            // One pass over the range rather than a lookup per message.
            for item in v.msgs.range(start..)? {
                if out.len() >= max || bytes >= max_bytes {
                    break;
                }
                let (k, val) = item?;
                let rec = Rec::decode(k.value(), val.value())?;
                if View::matches(filters, rec.subject) {
                    bytes += rec.hdr.len() + rec.data_len();
                    out.push(rec.stored(k.value(), v.segments)?);
                }
            }
            Ok(out)
        })
    }

    fn load_last(
        &self,
        filter: &str,
        max_seq: Option<u64>,
    ) -> Result<Option<StoredMsg>, StoreError> {
        let max = max_seq.unwrap_or(u64::MAX);
        let filters = [filter.to_string()];
        self.read(|v| {
            if !v.walk_subjects(&filters, v.counters.msgs) {
                return v.scan(v.msgs.range(..=max)?.rev(), &filters);
            }
            let mut best = None;
            each_subject(&v.subjects, &filters, |s, _| {
                best = best.max(last_of(&v.by_subject, s, max)?);
                Ok(())
            })?;
            best.map_or(Ok(None), |s| v.load(s))
        })
    }

    fn subjects(
        &self,
        filter: &str,
    ) -> Result<std::collections::BTreeMap<String, u64>, StoreError> {
        self.read(|v| {
            let mut out = std::collections::BTreeMap::new();
            each_subject(&v.subjects, &[filter.to_string()], |s, n| {
                out.insert(s.to_string(), n);
                Ok(())
            })?;
            Ok(out)
        })
    }

    fn num_pending(
        &self,
        start: u64,
        filters: &[String],
        last_per_subject: bool,
    ) -> Result<u64, StoreError> {
        self.read(|v| {
            let c = v.counters;
            if start > c.last_seq {
                return Ok(0);
            }
            if filters.is_empty() && !last_per_subject {
                if start <= c.first_seq {
                    return Ok(c.msgs);
                }
                // Count whichever side of `start` is shorter.
                let mut n = 0;
                if start - c.first_seq < c.last_seq - start {
                    for item in v.msgs.range(..start)? {
                        item?;
                        n += 1;
                    }
                    return Ok(c.msgs - n);
                }
                for item in v.msgs.range(start..)? {
                    item?;
                    n += 1;
                }
                return Ok(n);
            }
            let all = [">".to_string()];
            let filters = if filters.is_empty() {
                &all[..]
            } else {
                filters
            };
            let span = c.last_seq - start;
            if !last_per_subject && start > c.first_seq && !v.walk_subjects(filters, span) {
                let mut n = 0;
                for item in v.msgs.range(start..)? {
                    let (k, m) = item?;
                    let rec = Rec::decode(k.value(), m.value())?;
                    n += u64::from(filters.iter().any(|f| subject::matches(f, rec.subject)));
                }
                return Ok(n);
            }
            let mut n = 0;
            each_subject(&v.subjects, filters, |s, count| {
                n += if last_per_subject {
                    u64::from(last_of(&v.by_subject, s, u64::MAX)?.is_some_and(|l| l >= start))
                } else if start <= c.first_seq {
                    count
                } else {
                    count_from(&v.by_subject, s, start)?
                };
                Ok(())
            })?;
            Ok(n)
        })
    }

    /// Binary search by sequence: timestamps never decrease with sequences.
    fn seq_for_time(&self, ts: Nanos) -> Result<u64, StoreError> {
        self.read(|v| {
            let first = (v.counters.msgs > 0).then_some(v.counters.first_seq);
            let found = first_at_or_after(first, v.counters.last_seq, ts, |seq| {
                match v.msgs.range(seq..)?.next() {
                    Some(item) => {
                        let (k, m) = item?;
                        Ok(Some((k.value(), Rec::decode(k.value(), m.value())?.ts)))
                    }
                    None => Ok(None),
                }
            })?;
            Ok(found.unwrap_or(v.counters.last_seq + 1))
        })
    }

    fn put_meta(&self, records: &[(String, Option<Vec<u8>>)]) -> Result<(), StoreError> {
        self.write(None, true, |tx, _| tx.put_meta(records))
    }

    /// A redb commit without a sync: a crash forgets it back to the last checkpoint.
    fn reopens(&self) -> u64 {
        self.reopens.load(std::sync::atomic::Ordering::Relaxed)
    }

    fn put_meta_unsynced(&self, records: &[(String, Option<Vec<u8>>)]) -> Result<(), StoreError> {
        self.commit(None, true, Commit::Unsynced, |tx, _, _| {
            tx.put_meta(records)
        })
    }

    fn meta(&self, prefix: &str) -> Result<Vec<(String, Vec<u8>)>, StoreError> {
        let result = (|| {
            let db = self.db()?;
            let meta = db.begin_read()?.open_table(META)?;
            let mut out = Vec::new();
            for item in meta.range::<&str>(prefix..)? {
                let (k, v) = item?;
                if !k.value().starts_with(prefix) {
                    break;
                }
                out.push((k.value().to_string(), v.value().to_vec()));
            }
            Ok(out)
        })();
        self.after(result)
    }

    fn snapshot(&self, out: &mut dyn io::Write) -> Result<(), StoreError> {
        let result = (|| {
            let db = self.db()?;
            let txn = db.begin_read()?;
            let msgs = txn.open_table(MSGS)?;
            let meta = txn.open_table(META)?;
            let c = *self.counters.read();
            let mut w = snapshot::Writer::new(out, c.last_seq, c.last_ts)?;
            for item in msgs.iter()? {
                let (k, v) = item?;
                let r = Rec::decode(k.value(), v.value())?;
                let m = r.stored(k.value(), &self.segments)?;
                w.msg(k.value(), r.subject, r.ts, r.ttl, r.hdr, &m.data)?;
            }
            for item in meta.iter()? {
                let (k, v) = item?;
                w.meta(k.value(), v.value())?;
            }
            w.finish()
        })();
        self.after(result)
    }

    fn restore(&self, input: &mut dyn io::Read) -> Result<(), StoreError> {
        self.write(None, true, |tx, limits| {
            if tx.c.msgs != 0 || !tx.meta.is_empty()? {
                return Err(StoreError::Io("restore needs an empty store".into()));
            }
            let mut reader = snapshot::Reader::new(input)?;
            tx.c.last_seq = reader.last_seq();
            tx.c.last_ts = reader.last_ts();
            while let Some(record) = reader.next_record()? {
                match record {
                    snapshot::Record::Msg(seq, m) => tx.insert(seq, &Rec::of(&m))?,
                    snapshot::Record::Meta(name, value) => {
                        tx.meta.insert(name.as_str(), value.as_slice())?;
                    }
                }
            }
            tx.enforce_all(limits)?;
            Ok(())
        })
    }

    fn destroy(&self) -> Result<(), StoreError> {
        let _writer = self.writer.lock();
        *self.db.write() = Slot::Destroyed;
        *self.counters.write() = Counters::default();
        match fs::remove_dir_all(&self.dir) {
            Err(e) if e.kind() != io::ErrorKind::NotFound => Err(io_error(&e)),
            _ => Ok(()),
        }
    }
}

/// The snapshot format both stores write for `$JS.API.STREAM.SNAPSHOT` (and read back in
/// restore): self-describing, streamed, so neither side holds the stream in memory.
///
/// ```text
/// magic "NATRIXSS", version u16
/// header: last_seq u64, last_ts i64
/// records, each a tag byte:
///   'M' seq u64, ts i64, ttl flag u8 + ttl i64, subject, header, payload
///   'R' name, value                          (a meta record)
///   'E' checksum u64                         (the end)
/// ```
/// Integers are little-endian; strings and byte blocks are a u32 length and the bytes.
/// The checksum is FNV-1a 64 of every byte before it: it catches damage, not tampering.
pub(crate) mod snapshot {
    use std::io::{self, Read, Write};

    use bytes::Bytes;

    use super::io_error;
    use crate::store::{Nanos, NewMsg, StoreError};

    const MAGIC: &[u8; 8] = b"NATRIXSS";
    const VERSION: u16 = 1;
    const TAG_MSG: u8 = b'M';
    const TAG_META: u8 = b'R';
    const TAG_END: u8 = b'E';

    /// FNV-1a, 64 bits.
    struct Fnv(u64);

    impl Fnv {
        fn new() -> Self {
            Fnv(0xcbf2_9ce4_8422_2325)
        }

        fn update(&mut self, bytes: &[u8]) {
            for &b in bytes {
                self.0 = (self.0 ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
            }
        }
    }

    pub struct Writer<'a> {
        out: &'a mut dyn Write,
        sum: Fnv,
    }

    impl<'a> Writer<'a> {
        pub fn new(
            out: &'a mut dyn Write,
            last_seq: u64,
            last_ts: Nanos,
        ) -> Result<Self, StoreError> {
            let mut w = Writer {
                out,
                sum: Fnv::new(),
            };
            w.put(MAGIC)?;
            w.put(&VERSION.to_le_bytes())?;
            w.put(&last_seq.to_le_bytes())?;
            w.put(&last_ts.to_le_bytes())?;
            Ok(w)
        }

        fn put(&mut self, b: &[u8]) -> Result<(), StoreError> {
            self.sum.update(b);
            self.out.write_all(b).map_err(|e| io_error(&e))
        }

        fn block(&mut self, b: &[u8]) -> Result<(), StoreError> {
            let len = u32::try_from(b.len())
                .map_err(|_| StoreError::Io("snapshot: block over 4 GiB".into()))?;
            self.put(&len.to_le_bytes())?;
            self.put(b)
        }

        pub fn msg(
            &mut self,
            seq: u64,
            subject: &str,
            ts: Nanos,
            ttl: Option<i64>,
            hdr: &[u8],
            data: &[u8],
        ) -> Result<(), StoreError> {
            self.put(&[TAG_MSG])?;
            self.put(&seq.to_le_bytes())?;
            self.put(&ts.to_le_bytes())?;
            self.put(&[u8::from(ttl.is_some())])?;
            self.put(&ttl.unwrap_or(0).to_le_bytes())?;
            self.block(subject.as_bytes())?;
            self.block(hdr)?;
            self.block(data)
        }

        pub fn meta(&mut self, name: &str, value: &[u8]) -> Result<(), StoreError> {
            self.put(&[TAG_META])?;
            self.block(name.as_bytes())?;
            self.block(value)
        }

        pub fn finish(mut self) -> Result<(), StoreError> {
            self.put(&[TAG_END])?;
            let sum = self.sum.0.to_le_bytes();
            self.out.write_all(&sum).map_err(|e| io_error(&e))?;
            self.out.flush().map_err(|e| io_error(&e))
        }
    }

    pub enum Record {
        Msg(u64, NewMsg),
        Meta(String, Vec<u8>),
    }

    pub struct Reader<'a> {
        input: &'a mut dyn Read,
        sum: Fnv,
        last_seq: u64,
        last_ts: Nanos,
        prev_seq: u64,
    }

    fn bad(what: &str) -> StoreError {
        StoreError::Corrupt(format!("snapshot: {what}"))
    }

    impl<'a> Reader<'a> {
        pub fn new(input: &'a mut dyn Read) -> Result<Self, StoreError> {
            let mut r = Reader {
                input,
                sum: Fnv::new(),
                last_seq: 0,
                last_ts: 0,
                prev_seq: 0,
            };
            if r.array::<8>()? != *MAGIC {
                return Err(bad("not a natrix stream snapshot"));
            }
            let version = u16::from_le_bytes(r.array()?);
            if version != VERSION {
                return Err(bad(&format!("unknown version {version}")));
            }
            r.last_seq = r.u64()?;
            if r.last_seq == u64::MAX {
                return Err(bad("last sequence out of range"));
            }
            r.last_ts = r.u64()? as i64;
            Ok(r)
        }

        pub fn last_seq(&self) -> u64 {
            self.last_seq
        }

        pub fn last_ts(&self) -> Nanos {
            self.last_ts
        }

        fn fill(&mut self, buf: &mut [u8]) -> Result<(), StoreError> {
            self.input.read_exact(buf).map_err(|e| match e.kind() {
                io::ErrorKind::UnexpectedEof => bad("truncated"),
                _ => io_error(&e),
            })
        }

        fn array<const N: usize>(&mut self) -> Result<[u8; N], StoreError> {
            let mut buf = [0; N];
            self.fill(&mut buf)?;
            self.sum.update(&buf);
            Ok(buf)
        }

        fn u64(&mut self) -> Result<u64, StoreError> {
            Ok(u64::from_le_bytes(self.array()?))
        }

        /// A length-prefixed block, read as it arrives so a bogus length cannot make it
        /// allocate more than the input holds.
        fn block(&mut self) -> Result<Vec<u8>, StoreError> {
            let len = u64::from(u32::from_le_bytes(self.array()?));
            let mut out = Vec::new();
            (&mut self.input)
                .take(len)
                .read_to_end(&mut out)
                .map_err(|e| io_error(&e))?;
            if out.len() as u64 != len {
                return Err(bad("truncated"));
            }
            self.sum.update(&out);
            Ok(out)
        }

        fn string(&mut self) -> Result<String, StoreError> {
            String::from_utf8(self.block()?).map_err(|_| bad("a name is not UTF-8"))
        }

        /// The next record, or `None` at a verified end.
        pub fn next_record(&mut self) -> Result<Option<Record>, StoreError> {
            let [tag] = self.array::<1>()?;
            match tag {
                TAG_MSG => {
                    let seq = self.u64()?;
                    if seq <= self.prev_seq || seq > self.last_seq {
                        return Err(bad(&format!("message sequence {seq} out of order")));
                    }
                    self.prev_seq = seq;
                    let ts = self.u64()? as i64;
                    let [has_ttl] = self.array::<1>()?;
                    let ttl = self.u64()? as i64;
                    let subject = self.string()?;
                    let hdr = Bytes::from(self.block()?);
                    let data = Bytes::from(self.block()?);
                    let ttl = (has_ttl != 0).then_some(ttl);
                    let m = NewMsg {
                        subject,
                        ts,
                        hdr,
                        data,
                        ttl,
                    };
                    Ok(Some(Record::Msg(seq, m)))
                }
                TAG_META => {
                    let name = self.string()?;
                    let value = self.block()?;
                    Ok(Some(Record::Meta(name, value)))
                }
                TAG_END => {
                    let expected = self.sum.0;
                    let mut sum = [0; 8];
                    self.fill(&mut sum)?;
                    if u64::from_le_bytes(sum) != expected {
                        return Err(bad("checksum mismatch"));
                    }
                    Ok(None)
                }
                t => Err(bad(&format!("unknown record tag {t:#04x}"))),
            }
        }
    }
}
