//! The append log in front of a file store's redb database (`<dir>/stream.wal`).
//!
//! A durable redb commit syncs every page it touched: about ten 4 KiB pages for one small
//! message, 156–182 µs on the benchmark machine. Appending the same message to a log and
//! syncing that is one small sequential write, about 86 µs once the log's blocks exist.
//! So an append is written here and synced first, then committed to redb without a sync
//! (`Durability::None`): the log is what makes it durable. Every other change, and an
//! append once the log has grown past [`MAX_LEN`], is a durable redb commit (a
//! checkpoint). It makes the earlier non-durable commits durable as well, so it starts
//! the log over, under a new generation number stored in that same commit.
//!
//! Opening replays the records of the current generation that redb lacks: across a
//! crash, or a reopen after an I/O error, redb keeps only its last durable commit.
//!
//! A record: magic, generation, first sequence, message count, body length (each little
//! endian), a CRC-32 of all of that and the body, then the body: the messages' store
//! records, each length-prefixed. Replay stops at the first record that is torn, of
//! another generation (an older one left beyond the write position), or that does not
//! follow on from the sequences before it.

use std::fs::{File, OpenOptions};
use std::io::{self, Read};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

pub(super) const FILE_NAME: &str = "stream.wal";

/// The log's length past which an append is committed durably instead (and the log
/// starts over): what a restart may have to replay.
pub(super) const MAX_LEN: u64 = 8 << 20;

/// How much the file grows at a time. Blocks reserved ahead (`fallocate`) are written
/// without changing the file's size, and a sync that must also record a longer file
/// costs a journal commit (120 µs against 86 µs on the benchmark disk); a megabyte at a
/// time keeps that to one record in thousands while an idle stream holds little disk.
const GROW: u64 = 1 << 20;

const MAGIC: u32 = 0x4c57_584e;
const HEADER: usize = 4 + 8 + 8 + 4 + 4 + 4;

/// The log of one file store; its owner serialises access (the store's writer lock).
pub(super) struct Wal {
    path: PathBuf,
    file: Option<File>,
    /// Where the next record goes.
    len: u64,
    /// The file's size: blocks reserved ahead of `len`.
    allocated: u64,
    generation: u64,
}

/// One replayed record: the first sequence and the store records of its messages.
pub(super) struct Batch {
    pub first_seq: u64,
    pub recs: Vec<Vec<u8>>,
}

impl Wal {
    pub fn new(dir: &Path, generation: u64) -> Self {
        Wal {
            path: dir.join(FILE_NAME),
            file: None,
            len: 0,
            allocated: 0,
            generation,
        }
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether appending a body of `body` bytes keeps the log within [`MAX_LEN`].
    pub fn fits(&self, body: usize) -> bool {
        self.len + (HEADER + body) as u64 <= MAX_LEN
    }

    /// Whether anything was appended since the last checkpoint.
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }

    /// Starts over after a durable commit that stored `generation`.
    pub fn restart(&mut self, generation: u64) {
        self.generation = generation;
        self.len = 0;
    }

    /// Appends one record and syncs it; returns where it starts (for [`Wal::undo`]).
    pub fn append(&mut self, first_seq: u64, recs: &[Vec<u8>]) -> io::Result<u64> {
        let body: usize = recs.iter().map(|r| 4 + r.len()).sum();
        let mut out = Vec::with_capacity(HEADER + body);
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&self.generation.to_le_bytes());
        out.extend_from_slice(&first_seq.to_le_bytes());
        out.extend_from_slice(&count(recs.len())?.to_le_bytes());
        out.extend_from_slice(&count(body)?.to_le_bytes());
        out.extend_from_slice(&[0; 4]);
        for r in recs {
            out.extend_from_slice(&count(r.len())?.to_le_bytes());
            out.extend_from_slice(r);
        }
        let crc = checksum(&out);
        out[HEADER - 4..HEADER].copy_from_slice(&crc.to_le_bytes());
        let start = self.len;
        let end = start + out.len() as u64;
        self.reserve(end)?;
        let file = self.file()?;
        file.write_all_at(&out, start)?;
        file.sync_data()?;
        self.len = end;
        Ok(start)
    }

    /// Takes back the record at `start` after its redb commit failed: its header is
    /// zeroed (and synced), so no replay brings back what the client was told failed.
    pub fn undo(&mut self, start: u64) -> io::Result<()> {
        self.len = start;
        let file = self.file()?;
        file.write_all_at(&[0; HEADER], start)?;
        file.sync_data()
    }

    /// Grows the file past `end` a step at a time. A file system without `fallocate`
    /// (or too full for a whole step) grows the file as it is written instead.
    fn reserve(&mut self, end: u64) -> io::Result<()> {
        self.file()?;
        if end <= self.allocated {
            return Ok(());
        }
        let target = end.div_ceil(GROW) * GROW;
        if let Some(f) = &self.file {
            match rustix::fs::fallocate(f, rustix::fs::FallocateFlags::empty(), 0, target) {
                Ok(()) => self.allocated = target,
                Err(e) => {
                    tracing::debug!(path = %self.path.display(), "log not preallocated: {e}");
                    self.allocated = end;
                }
            }
        }
        Ok(())
    }

    fn file(&mut self) -> io::Result<&File> {
        if self.file.is_none() {
            let existed = self.path.exists();
            let f = OpenOptions::new()
                .read(true)
                .write(true)
                .create(true)
                .truncate(false)
                .open(&self.path)?;
            if !existed {
                // A new file's name is durable only once its directory is synced.
                if let Some(dir) = self.path.parent() {
                    File::open(dir)?.sync_all()?;
                }
            }
            self.allocated = f.metadata()?.len();
            self.file = Some(f);
        }
        self.file
            .as_ref()
            .ok_or_else(|| io::Error::other("log not open"))
    }

    /// Gives the file's space back after a checkpoint at close: nothing in it is needed
    /// (its records are of an older generation), and an idle stream holds no log.
    pub fn release(&mut self) -> io::Result<()> {
        self.file = None;
        self.allocated = 0;
        self.len = 0;
        match OpenOptions::new().write(true).open(&self.path) {
            Ok(f) => f.set_len(0),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// The records of `generation` from the start of the log at `dir`, in order, up to
    /// the first one that is torn, of another generation, or out of sequence.
    pub fn replay(dir: &Path, generation: u64) -> io::Result<Vec<Batch>> {
        let mut bytes = Vec::new();
        match File::open(dir.join(FILE_NAME)) {
            Ok(mut f) => {
                f.read_to_end(&mut bytes)?;
            }
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(e),
        }
        let mut out: Vec<Batch> = Vec::new();
        let mut at = 0;
        while let Some((batch, len)) = parse(&bytes[at..], generation) {
            if let Some(prev) = out.last()
                && prev.first_seq + prev.recs.len() as u64 != batch.first_seq
            {
                break;
            }
            out.push(batch);
            at += len;
        }
        Ok(out)
    }
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

/// One valid record of `generation` at the start of `b`, and its length.
fn parse(b: &[u8], generation: u64) -> Option<(Batch, usize)> {
    if u32_at(b, 0)? != MAGIC || u64_at(b, 4)? != generation {
        return None;
    }
    let first_seq = u64_at(b, 12)?;
    let n = u32_at(b, 20)? as usize;
    let body = u32_at(b, 24)? as usize;
    let record = b.get(..HEADER.checked_add(body)?)?;
    if checksum(record) != u32_at(b, 28)? {
        return None;
    }
    let mut recs = Vec::with_capacity(n.min(body / 4));
    let mut at = HEADER;
    for _ in 0..n {
        let len = u32_at(record, at)? as usize;
        recs.push(record.get(at + 4..at + 4 + len)?.to_vec());
        at += 4 + len;
    }
    (at == record.len()).then_some((Batch { first_seq, recs }, record.len()))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recs(n: usize, tag: u8) -> Vec<Vec<u8>> {
        (0..n).map(|i| vec![tag; i + 1]).collect()
    }

    #[test]
    fn appended_records_replay_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Wal::new(dir.path(), 7);
        assert_eq!(w.append(1, &recs(3, 1)).unwrap(), 0);
        w.append(4, &recs(2, 2)).unwrap();
        let got = Wal::replay(dir.path(), 7).unwrap();
        assert_eq!(got.len(), 2);
        assert_eq!((got[0].first_seq, got[0].recs.clone()), (1, recs(3, 1)));
        assert_eq!((got[1].first_seq, got[1].recs.clone()), (4, recs(2, 2)));
        // Another generation's records are not this one's.
        assert!(Wal::replay(dir.path(), 8).unwrap().is_empty());
    }

    #[test]
    fn the_file_grows_a_step_at_a_time_and_is_released_empty() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut w = Wal::new(dir.path(), 1);
        w.append(1, &recs(3, 1)).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        // A megabyte reserved where fallocate works (here: /tmp), else what was written.
        assert!(
            size == GROW || size == (HEADER + 4 * 3 + 6) as u64,
            "{size}"
        );
        w.append(4, &[vec![5; GROW as usize]]).unwrap();
        let size = std::fs::metadata(&path).unwrap().len();
        assert!(size >= GROW + HEADER as u64, "{size}");
        assert_eq!(Wal::replay(dir.path(), 1).unwrap().len(), 2);
        w.restart(2);
        w.release().unwrap();
        assert_eq!(std::fs::metadata(&path).unwrap().len(), 0);
        w.append(1, &recs(1, 1)).unwrap();
        assert_eq!(Wal::replay(dir.path(), 2).unwrap().len(), 1);
    }

    #[test]
    fn a_restarted_log_ignores_the_older_records_behind_it() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Wal::new(dir.path(), 1);
        for i in 0..5 {
            w.append(1 + i * 10, &recs(10, 1)).unwrap();
        }
        w.restart(2);
        w.append(51, &recs(1, 9)).unwrap();
        let got = Wal::replay(dir.path(), 2).unwrap();
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].first_seq, 51);
    }

    #[test]
    fn a_torn_or_damaged_record_ends_the_replay() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Wal::new(dir.path(), 1);
        w.append(1, &recs(2, 1)).unwrap();
        let second = w.append(3, &recs(2, 2)).unwrap();
        w.append(5, &recs(2, 3)).unwrap();
        let path = dir.path().join(FILE_NAME);
        let mut bytes = std::fs::read(&path).unwrap();
        bytes[second as usize + HEADER + 5] ^= 0xff;
        std::fs::write(&path, &bytes).unwrap();
        let got = Wal::replay(dir.path(), 1).unwrap();
        assert_eq!(got.len(), 1);
        // Cut inside the first record: nothing.
        std::fs::write(&path, &bytes[..HEADER + 3]).unwrap();
        assert!(Wal::replay(dir.path(), 1).unwrap().is_empty());
    }

    #[test]
    fn undone_and_out_of_sequence_records_are_not_replayed() {
        let dir = tempfile::tempdir().unwrap();
        let mut w = Wal::new(dir.path(), 1);
        w.append(1, &recs(2, 1)).unwrap();
        let start = w.append(3, &recs(2, 2)).unwrap();
        w.undo(start).unwrap();
        assert_eq!(Wal::replay(dir.path(), 1).unwrap().len(), 1);
        w.append(3, &recs(1, 3)).unwrap();
        w.append(9, &recs(1, 4)).unwrap();
        let got = Wal::replay(dir.path(), 1).unwrap();
        assert_eq!(got.iter().map(|b| b.first_seq).collect::<Vec<_>>(), [1, 3]);
        assert!(
            Wal::replay(&dir.path().join("absent"), 1)
                .unwrap()
                .is_empty()
        );
    }
}
