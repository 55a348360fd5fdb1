//! Recovery of a JetStream file store from whatever is on disk: the input becomes the
//! stream's `stream.redb` (alone, or written over part of a valid store's file), its
//! append log segment (written over the segment a crash left, next to that crash's
//! database), or a snapshot to restore. Whatever opens is then read, appended to, expired and purged. A
//! damaged file or snapshot must give an error, never a panic.
#![no_main]

use std::sync::OnceLock;

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use natrix_jetstream::store::file::FileStore;
use natrix_jetstream::store::memory::MemoryStore;
use natrix_jetstream::store::{Limits, NewMsg, Purge, Store};

const CACHE: usize = 1 << 20;

fn msg(subject: &str, ts: i64) -> NewMsg {
    NewMsg {
        subject: subject.to_string(),
        ts,
        hdr: Bytes::new(),
        data: Bytes::from(vec![b'x'; 100]),
        ttl: (ts % 3 == 0).then_some(1_000),
    }
}

/// What fuzzed bytes overwrite, built once.
struct Valid {
    /// A cleanly closed store's database.
    file: Vec<u8>,
    snapshot: Vec<u8>,
    /// The database and the start of the log segment (where its records are) of a store
    /// caught open, with appends since its last checkpoint (some payloads kept there).
    crash_file: Vec<u8>,
    crash_log: (std::ffi::OsString, Vec<u8>),
}

fn valid() -> &'static Valid {
    static VALID: OnceLock<Valid> = OnceLock::new();
    VALID.get_or_init(|| {
        let dir = tempfile::tempdir().expect("temp dir");
        let (store, _) = FileStore::open(dir.path(), Limits::default(), CACHE).expect("open");
        for ts in 0..40 {
            let subject = ["a.1", "a.2", "b"][ts as usize % 3];
            store.append(&[msg(subject, ts)]).expect("append");
        }
        store.remove(7, false).expect("remove");
        store
            .put_meta(&[("config".to_string(), Some(b"{}".to_vec()))])
            .expect("meta");
        let mut snapshot = Vec::new();
        store.snapshot(&mut snapshot).expect("snapshot");
        for ts in 40..60 {
            let mut m = msg("c", ts);
            if ts % 4 == 0 {
                m.data = Bytes::from(vec![b'y'; 1500]);
            }
            store.append(&[m]).expect("append");
        }
        let crash_file = std::fs::read(dir.path().join("stream.redb")).expect("read");
        let segment = std::fs::read_dir(dir.path().join("log"))
            .expect("log")
            .filter_map(Result::ok)
            .map(|e| e.file_name())
            .max()
            .expect("a segment");
        let mut bytes = std::fs::read(dir.path().join("log").join(&segment)).expect("read log");
        bytes.truncate(32 << 10);
        let crash_log = (segment, bytes);
        drop(store);
        let file = std::fs::read(dir.path().join("stream.redb")).expect("read");
        Valid {
            file,
            snapshot,
            crash_file,
            crash_log,
        }
    })
}

/// `base` with `patch` written over it at an offset taken from the patch's first bytes.
fn overwrite(base: &[u8], patch: &[u8]) -> Vec<u8> {
    let mut out = base.to_vec();
    let [a, b, c, patch @ ..] = patch else {
        return out;
    };
    let at = u32::from_le_bytes([*a, *b, *c, 0]) as usize % out.len().max(1);
    let end = (at + patch.len()).min(out.len());
    out[at..end].copy_from_slice(&patch[..end - at]);
    out
}

fn exercise(store: &dyn Store) {
    let state = store.state();
    let filters = ["a.*".to_string(), "b".to_string()];
    let _ = store.load(state.first_seq);
    let _ = store.load(state.last_seq);
    let _ = store.load_next(0, &[]);
    let _ = store.load_next(state.first_seq, &filters);
    let _ = store.load_last(">", None);
    let _ = store.load_last("a.1", Some(state.last_seq / 2));
    let _ = store.subjects(">");
    let _ = store.num_pending(0, &filters, false);
    let _ = store.num_pending(state.first_seq + 1, &[], true);
    let _ = store.seq_for_time(20);
    let _ = store.meta("");
    let _ = store.snapshot(&mut std::io::sink());
    let _ = store.append(&[msg("a.1", i64::MAX / 2)]);
    let _ = store.expire(i64::MAX / 2 + 500);
    let _ = store.set_limits(Limits {
        max_msgs: 10,
        max_msgs_per_subject: 2,
        ..Limits::default()
    });
    let _ = store.purge(&Purge {
        filter: Some("a.>".to_string()),
        keep: Some(1),
        ..Purge::default()
    });
    let _ = store.purge(&Purge::default());
}

fuzz_target!(|data: &[u8]| {
    let Some((&mode, rest)) = data.split_first() else {
        return;
    };
    let valid = valid();
    match mode % 4 {
        0 | 1 | 2 => {
            let dir = tempfile::tempdir().expect("temp dir");
            let file = match mode % 4 {
                0 => rest.to_vec(),
                1 => overwrite(&valid.file, rest),
                _ => {
                    let (name, bytes) = &valid.crash_log;
                    std::fs::create_dir_all(dir.path().join("log")).expect("log dir");
                    std::fs::write(dir.path().join("log").join(name), overwrite(bytes, rest))
                        .expect("write log");
                    valid.crash_file.clone()
                }
            };
            std::fs::write(dir.path().join("stream.redb"), &file).expect("write");
            if let Ok((store, _)) = FileStore::open(dir.path(), Limits::default(), CACHE) {
                exercise(&store);
                let _ = store.destroy();
            }
        }
        _ => {
            let store = MemoryStore::new(Limits::default());
            if store
                .restore(&mut overwrite(&valid.snapshot, rest).as_slice())
                .is_ok()
            {
                exercise(&store);
            }
        }
    }
});
