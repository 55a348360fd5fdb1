//! The append log of a file store (`<dir>/log/<id>.seg`): where every append is written
//! and synced first, and where large payloads stay.
//!
//! A durable redb commit syncs every page it touched: about ten 4 KiB pages for one small
//! message (156–182 µs on the benchmark machine), and a 4 KiB value costs 19–25 µs to
//! insert and about twice its size on disk. Appending to a log and syncing that is one
//! sequential write (about 86 µs for a small record once the blocks exist). So an append
//! is written here and synced, then committed to redb without a sync (`Durability::None`):
//! the log is what makes it durable. redb gets the message's record; for a payload of
//! [`EXTERNAL_MIN`] bytes or more, only where it lies in the log (segment, offset,
//! length), so a large payload is written once, sequentially.
//!
//! Every other change, and the append after [`CHECKPOINT_EVERY`] bytes of log, is a
//! durable redb commit: a checkpoint. It makes the earlier non-durable commits durable
//! too, and records the log position after it; segments wholly before that position that
//! hold no payload redb points at are then deleted. Opening replays the records from
//! that position on (redb keeps only its last durable commit across a crash), then
//! starts a new segment, so a torn record is never written after.
//!
//! A segment is a series of records: magic, segment id, first sequence, message count,
//! body length (little endian), a CRC-32 of those and the body, then the body: the
//! messages' store records, each length-prefixed. Replay in a segment stops at the first
//! record that is torn, or of another segment (preallocated zeros); across records and
//! segments, at the first one that does not follow on from the sequences before it.

use std::collections::HashMap;
use std::fs::{self, File, OpenOptions};
use std::io::{self, Read, Seek, SeekFrom};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use parking_lot::RwLock;

pub(super) const DIR_NAME: &str = "log";

/// Payloads at least this long stay in the log; shorter ones are copied into redb,
/// where a read needs no second file.
pub(super) const EXTERNAL_MIN: usize = 1024;

/// Log bytes after which an append is committed durably (a checkpoint): the most a
/// restart replays.
pub(super) const CHECKPOINT_EVERY: u64 = 8 << 20;

/// A segment is closed once it is this long and the next record starts a new one.
const SEGMENT_MAX: u64 = 64 << 20;

/// How much a segment grows at a time, ahead of the records. A sync that must also
/// record a longer file, or the first write into a block reserved with `fallocate` (an
/// "unwritten" extent), costs a journal commit: on the benchmark disk a 4 KiB record and
/// its fdatasync take 182 µs appended, 152 µs into fallocated space and 103 µs over
/// zeros written beforehand (100 B records: 140, 87 and 99 µs). So the step is written
/// with zeros ahead of small records, and reserved with `fallocate` for records of
/// [`ZERO_FILL_BELOW`] or more (large batches), where one journal commit per sync is
/// little and writing everything twice is not. A megabyte at a time keeps a small
/// stream's disk use small.
const GROW: u64 = 1 << 20;
const ZERO_FILL_BELOW: u64 = 64 << 10;

const MAGIC: u32 = 0x4c57_584e;
const HEADER: usize = 4 + 8 + 8 + 4 + 4 + 4;

/// A place in the log: the next record goes at `off` in segment `seg`.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Pos {
    pub seg: u64,
    pub off: u64,
}

impl Pos {
    pub fn encode(&self) -> [u8; 16] {
        let mut out = [0; 16];
        out[..8].copy_from_slice(&self.seg.to_le_bytes());
        out[8..].copy_from_slice(&self.off.to_le_bytes());
        out
    }

    pub fn decode(b: &[u8]) -> Option<Pos> {
        Some(Pos {
            seg: u64::from_le_bytes(b.get(..8)?.try_into().ok()?),
            off: u64::from_le_bytes(b.get(8..16)?.try_into().ok()?),
        })
    }
}

/// Where an appended (or replayed) record's messages lie: their store records start at
/// `offsets` in segment `seg`.
pub(super) struct Placed {
    pub seg: u64,
    pub offsets: Vec<u64>,
}

/// One replayed record.
pub(super) struct Batch {
    pub first_seq: u64,
    pub recs: Vec<Vec<u8>>,
    pub placed: Placed,
}

/// The segment being written.
struct Active {
    id: u64,
    file: File,
    len: u64,
    /// The file's size: blocks reserved ahead of `len`.
    allocated: u64,
}

/// The writing side of a store's log; its owner serialises access (the writer lock).
pub(super) struct Wal {
    dir: PathBuf,
    active: Option<Active>,
    /// The id the next new segment gets.
    next_seg: u64,
    since_checkpoint: u64,
}

impl Wal {
    /// A log whose next segment is `next_seg` (created on the first append).
    pub fn new(store_dir: &Path, next_seg: u64) -> Self {
        Wal {
            dir: store_dir.join(DIR_NAME),
            active: None,
            next_seg,
            since_checkpoint: 0,
        }
    }

    /// Where the next record goes.
    pub fn position(&self) -> Pos {
        match &self.active {
            Some(a) => Pos {
                seg: a.id,
                off: a.len,
            },
            None => Pos {
                seg: self.next_seg,
                off: 0,
            },
        }
    }

    /// The position after the active segment: where a clean close leaves the log, so
    /// that segment can go once nothing points into it.
    pub fn past_active(&self) -> Pos {
        Pos {
            seg: self.active.as_ref().map_or(self.next_seg, |a| a.id + 1),
            off: 0,
        }
    }

    /// Whether the log has grown enough since the last checkpoint for the next commit
    /// to be one.
    pub fn checkpoint_due(&self) -> bool {
        self.since_checkpoint >= CHECKPOINT_EVERY
    }

    pub fn checkpointed(&mut self) {
        self.since_checkpoint = 0;
    }

    /// Ends the active segment (after a clean close's checkpoint).
    pub fn close_segment(&mut self) {
        if let Some(a) = self.active.take() {
            self.next_seg = a.id + 1;
        }
    }

    /// Appends one record and syncs it.
    pub fn append(&mut self, first_seq: u64, recs: &[Vec<u8>]) -> io::Result<Placed> {
        let body: usize = recs.iter().map(|r| 4 + r.len()).sum();
        let size = (HEADER + body) as u64;
        if self
            .active
            .as_ref()
            .is_some_and(|a| a.len > 0 && a.len + size > SEGMENT_MAX)
        {
            self.close_segment();
        }
        let active = self.active()?;
        let start = active.len;
        let mut out = Vec::with_capacity(HEADER + body);
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&active.id.to_le_bytes());
        out.extend_from_slice(&first_seq.to_le_bytes());
        out.extend_from_slice(&count(recs.len())?.to_le_bytes());
        out.extend_from_slice(&count(body)?.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        let mut offsets = Vec::with_capacity(recs.len());
        for r in recs {
            out.extend_from_slice(&count(r.len())?.to_le_bytes());
            offsets.push(start + out.len() as u64);
            out.extend_from_slice(r);
        }
        let crc = checksum(&out);
        out[HEADER - 4..HEADER].copy_from_slice(&crc.to_le_bytes());
        let end = start + size;
        if end > active.allocated {
            let target = end.div_ceil(GROW) * GROW;
            // A disk too full for a whole step: the record's own write grows the file
            // (and fails cleanly if even that does not fit).
            let reserved = if size < ZERO_FILL_BELOW {
                zero_fill(&active.file, active.allocated, target)
            } else {
                rustix::fs::fallocate(&active.file, rustix::fs::FallocateFlags::empty(), 0, target)
                    .map_err(io::Error::from)
            };
            match reserved {
                Ok(()) => active.allocated = target,
                Err(e) => tracing::debug!(segment = active.id, "log not extended ahead: {e}"),
            }
        }
        active.file.write_all_at(&out, start)?;
        active.file.sync_data()?;
        active.len = end;
        let seg = active.id;
        self.since_checkpoint += size;
        Ok(Placed { seg, offsets })
    }

    fn active(&mut self) -> io::Result<&mut Active> {
        if self.active.is_none() {
            fs::create_dir_all(&self.dir)?;
            let id = self.next_seg;
            let file = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(true)
                .open(segment_path(&self.dir, id))?;
            // A new file's name is durable only once its directory is synced.
            File::open(&self.dir)?.sync_all()?;
            self.next_seg = id + 1;
            self.active = Some(Active {
                id,
                file,
                len: 0,
                allocated: 0,
            });
        }
        self.active
            .as_mut()
            .ok_or_else(|| io::Error::other("no log segment"))
    }

    /// The records from `from` on, in order, up to the first that is torn or out of
    /// sequence; and the highest segment id present (0 with none).
    pub fn replay(store_dir: &Path, from: Pos) -> io::Result<(Vec<Batch>, u64)> {
        let dir = store_dir.join(DIR_NAME);
        let ids = segment_ids(&dir)?;
        let highest = ids.last().copied().unwrap_or(0);
        let mut out: Vec<Batch> = Vec::new();
        'segments: for id in ids.into_iter().filter(|&id| id >= from.seg) {
            // Read from where replay starts: what lies before (payloads redb already
            // points at) is not needed.
            let base = if id == from.seg { from.off } else { 0 };
            let mut file = File::open(segment_path(&dir, id))?;
            file.seek(SeekFrom::Start(base))?;
            let mut bytes = Vec::new();
            file.read_to_end(&mut bytes)?;
            let mut at = base;
            while let Some(batch) = usize::try_from(at - base)
                .ok()
                .and_then(|i| parse(bytes.get(i..)?, id, at))
            {
                if let Some(prev) = out.last()
                    && prev.first_seq + prev.recs.len() as u64 != batch.first_seq
                {
                    break 'segments;
                }
                at += record_len(&batch.recs) as u64;
                out.push(batch);
            }
        }
        Ok((out, highest))
    }

    /// Deletes the segments before `before` that `live` does not name (the segments redb
    /// points into); returns their ids.
    pub fn delete_dead(
        store_dir: &Path,
        before: u64,
        live: impl Fn(u64) -> bool,
    ) -> io::Result<Vec<u64>> {
        let dir = store_dir.join(DIR_NAME);
        let mut gone = Vec::new();
        for id in segment_ids(&dir)? {
            if id < before && !live(id) {
                fs::remove_file(segment_path(&dir, id))?;
                gone.push(id);
            }
        }
        Ok(gone)
    }
}

/// Read handles on a store's segments, for payloads kept in the log.
pub(super) struct Segments {
    dir: PathBuf,
    files: RwLock<HashMap<u64, Arc<File>>>,
}

impl Segments {
    pub fn new(store_dir: &Path) -> Self {
        Segments {
            dir: store_dir.join(DIR_NAME),
            files: RwLock::new(HashMap::new()),
        }
    }

    /// `len` bytes at `off` in segment `seg`.
    pub fn read(&self, seg: u64, off: u64, len: usize) -> io::Result<Vec<u8>> {
        let file = self.file(seg)?;
        let mut out = vec![0; len];
        file.read_exact_at(&mut out, off)?;
        Ok(out)
    }

    fn file(&self, seg: u64) -> io::Result<Arc<File>> {
        if let Some(f) = self.files.read().get(&seg) {
            return Ok(f.clone());
        }
        let f = Arc::new(File::open(segment_path(&self.dir, seg))?);
        self.files.write().insert(seg, f.clone());
        Ok(f)
    }

    /// Overwrites `len` bytes at `off` in segment `seg` with random bytes and syncs them.
    /// Only for bytes before the replay position: the record they were part of no longer
    /// checks out.
    pub fn erase(&self, seg: u64, off: u64, len: usize) -> io::Result<()> {
        let file = OpenOptions::new()
            .write(true)
            .open(segment_path(&self.dir, seg))?;
        let mut noise = vec![0u8; len];
        fastrand::fill(&mut noise);
        file.write_all_at(&noise, off)?;
        file.sync_data()
    }

    /// Forgets the handles of segments that were deleted.
    pub fn forget(&self, gone: &[u64]) {
        if !gone.is_empty() {
            self.files.write().retain(|id, _| !gone.contains(id));
        }
    }
}

/// Writes zeros from `from` to `to` (they reach the disk with the next record's sync).
fn zero_fill(file: &File, from: u64, to: u64) -> io::Result<()> {
    const CHUNK: usize = 64 << 10;
    let zeros = [0u8; CHUNK];
    let mut at = from;
    while at < to {
        let n = usize::try_from(to - at).map_or(CHUNK, |left| left.min(CHUNK));
        file.write_all_at(&zeros[..n], at)?;
        at += n as u64;
    }
    Ok(())
}

fn segment_path(dir: &Path, id: u64) -> PathBuf {
    dir.join(format!("{id:020}.seg"))
}

fn segment_ids(dir: &Path) -> io::Result<Vec<u64>> {
    let entries = match fs::read_dir(dir) {
        Ok(e) => e,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
        Err(e) => return Err(e),
    };
    let mut ids = Vec::new();
    for entry in entries {
        let name = entry?.file_name();
        if let Some(id) = name
            .to_str()
            .and_then(|n| n.strip_suffix(".seg"))
            .and_then(|n| n.parse().ok())
        {
            ids.push(id);
        }
    }
    ids.sort_unstable();
    Ok(ids)
}

fn record_len(recs: &[Vec<u8>]) -> usize {
    HEADER + recs.iter().map(|r| 4 + r.len()).sum::<usize>()
}

fn count(n: usize) -> io::Result<u32> {
    u32::try_from(n).map_err(|_| io::Error::other("log record too large"))
}

fn checksum(record: &[u8]) -> u32 {
    let mut h = crc32fast::Hasher::new();
    h.update(&record[..HEADER - 4]);
    h.update(&record[HEADER..]);
    h.finalize()
}

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    Some(u32::from_le_bytes(b.get(at..at + 4)?.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    Some(u64::from_le_bytes(b.get(at..at + 8)?.try_into().ok()?))
}

/// One valid record of segment `seg` at the start of `b`, which is at `start` in it.
fn parse(b: &[u8], seg: u64, start: u64) -> Option<Batch> {
    if u32_at(b, 0)? != MAGIC || u64_at(b, 4)? != seg {
        return None;
    }
    let first_seq = u64_at(b, 12)?;
    let n = u32_at(b, 20)? as usize;
    let body = u32_at(b, 24)? as usize;
    let record = b.get(..HEADER.checked_add(body)?)?;
    if checksum(record) != u32_at(b, 28)? || n == 0 {
        return None;
    }
    let mut recs = Vec::with_capacity(n.min(body / 4));
    let mut offsets = Vec::with_capacity(n.min(body / 4));
    let mut at = HEADER;
    for _ in 0..n {
        let len = u32_at(record, at)? as usize;
        offsets.push(start + at as u64 + 4);
        recs.push(record.get(at + 4..at + 4 + len)?.to_vec());
        at += 4 + len;
    }
    (at == record.len()).then_some(Batch {
        first_seq,
        recs,
        placed: Placed { seg, offsets },
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(n: usize, tag: u8) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![tag; i + 1]).collect()
    }

    fn seqs(batches: &[Batch]) -> Vec<u64> {
        batches.iter().map(|b| b.first_seq).collect()
    }

    #[test]
    fn appended_records_replay_in_order_with_their_places() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Wal::new(dir.path(), 1);
        let a = w.append(1, &recs(3, 1)).unwrap();
        assert_eq!((a.seg, a.offsets[0]), (1, HEADER as u64 + 4));
        let at_b = w.position();
        let b = w.append(4, &recs(2, 2)).unwrap();
        let (got, highest) = Wal::replay(dir.path(), Pos { seg: 1, off: 0 }).unwrap();
        assert_eq!(highest, 1);
        assert_eq!(seqs(&got), [1, 4]);
        assert_eq!(got[0].recs, recs(3, 1));
        assert_eq!(got[1].recs, recs(2, 2));
        assert_eq!(got[1].placed.offsets, b.offsets);
        // The bytes are where the offsets say.
        let s = Segments::new(dir.path());
        assert_eq!(s.read(1, b.offsets[1], 2).unwrap(), vec![2, 2]);
        // From a later position: only what follows.
        let (got, _) = Wal::replay(dir.path(), w.position()).unwrap();
        assert!(got.is_empty());
        let (got, _) = Wal::replay(dir.path(), at_b).unwrap();
        assert_eq!(seqs(&got), [4]);
    }

    #[test]
    fn segments_roll_over_and_replay_across_them() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Wal::new(dir.path(), 5);
        w.append(1, &recs(1, 1)).unwrap();
        w.close_segment();
        w.append(2, &recs(1, 2)).unwrap();
        assert_eq!(w.position().seg, 6);
        let (got, highest) = Wal::replay(dir.path(), Pos { seg: 5, off: 0 }).unwrap();
        assert_eq!((seqs(&got), highest), (vec![1, 2], 6));
        assert_eq!(Wal::delete_dead(dir.path(), 6, |_| false).unwrap(), [5]);
        let (got, _) = Wal::replay(dir.path(), Pos { seg: 5, off: 0 }).unwrap();
        assert_eq!(seqs(&got), [2]);
    }

    #[test]
    fn a_torn_or_damaged_record_ends_the_replay() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Wal::new(dir.path(), 1);
        w.append(1, &recs(2, 1)).unwrap();
        let second = w.append(3, &recs(2, 2)).unwrap();
        w.append(5, &recs(2, 3)).unwrap();
        let path = segment_path(&dir.path().join(DIR_NAME), 1);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[second.offsets[0] as usize + 1] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let from = Pos { seg: 1, off: 0 };
        assert_eq!(seqs(&Wal::replay(dir.path(), from).unwrap().0), [1]);
        std::fs::write(&path, &bytes[..HEADER + 3]).unwrap();
        assert!(Wal::replay(dir.path(), from).unwrap().0.is_empty());
    }

    #[test]
    fn out_of_sequence_records_are_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Wal::new(dir.path(), 1);
        w.append(1, &recs(2, 1)).unwrap();
        let from = Pos { seg: 1, off: 0 };
        w.append(3, &recs(1, 3)).unwrap();
        w.append(9, &recs(1, 4)).unwrap();
        assert_eq!(seqs(&Wal::replay(dir.path(), from).unwrap().0), [1, 3]);
        let (got, highest) = Wal::replay(&dir.path().join("absent"), from).unwrap();
        assert!(got.is_empty() && highest == 0);
    }

    #[test]
    fn segments_grow_a_step_at_a_time() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Wal::new(dir.path(), 1);
        w.append(1, &recs(3, 1)).unwrap();
        let path = segment_path(&dir.path().join(DIR_NAME), 1);
        let size = std::fs::metadata(&path).unwrap().len();
        // A megabyte written ahead.
        assert_eq!(size, GROW);
        w.append(4, &[vec![5; GROW as usize]]).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size >= w.position().off, "{size}");
        assert_eq!(
            Wal::replay(dir.path(), Pos { seg: 1, off: 0 })
                .unwrap()
                .0
                .len(),
            2
        );
    }
}
