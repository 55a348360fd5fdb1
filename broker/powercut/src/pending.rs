//! The unsynced state of one file: what a page cache would hold that the disk does not.
//!
//! The backing file holds exactly the data that was synced. On top of it a file with
//! unsynced changes has:
//! - `size`: the size the applications see (writes past EOF, `ftruncate`, `fallocate`);
//! - `floor`: the lowest size the file was truncated to since the last sync. Backing bytes
//!   at or past it are hidden (they read as zeros unless rewritten), so a shrink followed by
//!   an extension reads zeros, as on a real filesystem;
//! - `extents`: the written bytes, as non-overlapping runs keyed by offset (adjacent runs
//!   are merged, so appends grow one buffer).
//!
//! A sync applies all of it to the backing file; a power cut throws it away.

use std::collections::BTreeMap;
use std::fs::File;
use std::io;
use std::os::unix::fs::FileExt;

/// Unsynced changes of one file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Pending {
    /// The size of the backing file (the synced size).
    synced_size: u64,
    /// The size applications see.
    size: u64,
    /// Backing bytes at or past this offset are hidden.
    floor: u64,
    extents: BTreeMap<u64, Vec<u8>>,
}

impl Pending {
    /// No changes yet over a backing file of `synced_size` bytes.
    pub fn new(synced_size: u64) -> Self {
        Self {
            synced_size,
            size: synced_size,
            floor: synced_size,
            extents: BTreeMap::new(),
        }
    }

    /// The size applications see.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether nothing differs from the backing file.
    pub fn is_clean(&self) -> bool {
        self.extents.is_empty() && self.size == self.synced_size && self.floor == self.synced_size
    }

    /// Unsynced bytes held (written data, not size changes).
    pub fn bytes(&self) -> u64 {
        self.extents.values().map(|v| v.len() as u64).sum()
    }

    /// Records a write of `data` at `offset`.
    pub fn write(&mut self, offset: u64, data: &[u8]) {
        if data.is_empty() {
            return;
        }
        let end = offset + data.len() as u64;
        // The run that starts at or before `offset` and reaches it (touching counts) becomes
        // the base of the merged run.
        let (start, mut buf) = match self.extents.range(..=offset).next_back() {
            Some((&s, v)) if s + v.len() as u64 >= offset => {
                let v = self.extents.remove(&s).unwrap_or_default();
                (s, v)
            }
            _ => (offset, Vec::new()),
        };
        let rel = (offset - start) as usize;
        if buf.len() < rel + data.len() {
            buf.resize(rel + data.len(), 0);
        }
        buf[rel..rel + data.len()].copy_from_slice(data);
        // Runs that start inside (offset, end] are covered or continue past `end`. (None can
        // exist if the base run already reached past `end`: runs never overlap.)
        let later: Vec<u64> = self
            .extents
            .range(offset + 1..=end)
            .map(|(&k, _)| k)
            .collect();
        for k in later {
            if let Some(v) = self.extents.remove(&k) {
                let vend = k + v.len() as u64;
                if vend > end {
                    buf.extend_from_slice(&v[(end - k) as usize..]);
                }
            }
        }
        self.extents.insert(start, buf);
        self.size = self.size.max(end);
    }

    /// Records a truncation (or extension) to `size`.
    pub fn truncate(&mut self, size: u64) {
        self.size = size;
        self.floor = self.floor.min(size);
        let cut: Vec<u64> = self.extents.range(size..).map(|(&k, _)| k).collect();
        for k in cut {
            self.extents.remove(&k);
        }
        if let Some((&s, v)) = self.extents.range_mut(..size).next_back()
            && s + v.len() as u64 > size
        {
            v.truncate((size - s) as usize);
        }
    }

    /// Grows the visible size to at least `size` (fallocate without KEEP_SIZE).
    pub fn extend(&mut self, size: u64) {
        self.size = self.size.max(size);
    }

    /// Reads up to `len` bytes at `offset` as applications see them: backing bytes below the
    /// floor, zeros elsewhere, the unsynced runs on top.
    pub fn read(&self, backing: &File, offset: u64, len: u32) -> io::Result<Vec<u8>> {
        let end = self.size.min(offset.saturating_add(u64::from(len)));
        if offset >= end {
            return Ok(Vec::new());
        }
        let mut buf = vec![0u8; (end - offset) as usize];
        let from_backing = end.min(self.floor).min(self.synced_size);
        if offset < from_backing {
            read_full_at(
                backing,
                &mut buf[..(from_backing - offset) as usize],
                offset,
            )?;
        }
        let first = self
            .extents
            .range(..=offset)
            .next_back()
            .map_or(offset, |(&k, _)| k);
        for (&s, v) in self.extents.range(first..end) {
            let vend = s + v.len() as u64;
            let lo = s.max(offset);
            let hi = vend.min(end);
            if lo < hi {
                buf[(lo - offset) as usize..(hi - offset) as usize]
                    .copy_from_slice(&v[(lo - s) as usize..(hi - s) as usize]);
            }
        }
        Ok(buf)
    }

    /// Applies everything to the backing file (without fsyncing the backing file itself:
    /// the simulated disk is the backing file's content, not its durability).
    pub fn apply(&self, backing: &File) -> io::Result<()> {
        if self.floor < self.synced_size {
            backing.set_len(self.floor)?;
        }
        let mut len = self.floor.min(self.synced_size);
        for (&s, v) in &self.extents {
            backing.write_all_at(v, s)?;
            len = len.max(s + v.len() as u64);
        }
        if len != self.size {
            backing.set_len(self.size)?;
        }
        Ok(())
    }
}

/// Reads until `buf` is full or EOF (bytes past EOF stay as they are: zeros).
pub fn read_full_at(file: &File, buf: &mut [u8], offset: u64) -> io::Result<usize> {
    let mut done = 0;
    // Bounded: each pass reads at least one byte or stops.
    while done < buf.len() {
        match file.read_at(&mut buf[done..], offset + done as u64) {
            Ok(0) => break,
            Ok(n) => done += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Debug, Clone)]
    enum Op {
        Write(u64, Vec<u8>),
        Truncate(u64),
        Extend(u64),
        Sync,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..300, proptest::collection::vec(any::<u8>(), 0..80))
                .prop_map(|(o, d)| Op::Write(o, d)),
            1 => (0u64..300).prop_map(Op::Truncate),
            1 => (0u64..300).prop_map(Op::Extend),
            1 => Just(Op::Sync),
        ]
    }

    fn model_write(m: &mut Vec<u8>, off: u64, d: &[u8]) {
        if d.is_empty() {
            return;
        }
        let end = off as usize + d.len();
        if m.len() < end {
            m.resize(end, 0);
        }
        m[off as usize..off as usize + d.len()].copy_from_slice(d);
    }

    fn contents(f: &File) -> Vec<u8> {
        let len = f.metadata().unwrap().len();
        let mut buf = vec![0; len as usize];
        read_full_at(f, &mut buf, 0).unwrap();
        buf
    }

    proptest! {
        /// The visible view equals a plain byte vector that takes the same operations; the
        /// backing file equals the model as of the last sync.
        #[test]
        fn view_and_backing_follow_a_byte_vector(
            initial in proptest::collection::vec(any::<u8>(), 0..200),
            ops in proptest::collection::vec(op(), 0..40),
        ) {
            let dir = tempfile::tempdir().unwrap();
            let path = dir.path().join("f");
            std::fs::write(&path, &initial).unwrap();
            let f = std::fs::OpenOptions::new().read(true).write(true).open(&path).unwrap();
            let mut model = initial.clone();
            let mut synced = initial.clone();
            let mut p = Pending::new(initial.len() as u64);
            for op in ops {
                match op {
                    Op::Write(o, d) => { p.write(o, &d); model_write(&mut model, o, &d); }
                    Op::Truncate(n) => { p.truncate(n); model.resize(n as usize, 0); }
                    Op::Extend(n) => {
                        p.extend(n);
                        if model.len() < n as usize { model.resize(n as usize, 0); }
                    }
                    Op::Sync => {
                        p.apply(&f).unwrap();
                        p = Pending::new(f.metadata().unwrap().len());
                        synced = model.clone();
                    }
                }
                prop_assert_eq!(p.size(), model.len() as u64);
                let whole = p.read(&f, 0, 1000).unwrap();
                prop_assert_eq!(&whole, &model);
                let part = p.read(&f, 37, 61).unwrap();
                let lo = 37.min(model.len());
                let hi = (37 + 61).min(model.len());
                prop_assert_eq!(&part[..], &model[lo..hi]);
                prop_assert_eq!(contents(&f), synced.clone());
            }
        }
    }

    #[test]
    fn appends_merge_into_one_run() {
        let mut p = Pending::new(0);
        for i in 0..100u8 {
            p.write(u64::from(i) * 3, &[i, i, i]);
        }
        assert_eq!(p.extents.len(), 1);
        assert_eq!(p.bytes(), 300);
    }
}
