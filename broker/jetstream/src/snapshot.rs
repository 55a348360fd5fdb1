//! Stream backups: `$JS.API.STREAM.SNAPSHOT.<stream>` and `$JS.API.STREAM.RESTORE.<stream>`
//! with nats-server's wire protocol, so `nats stream backup` / `nats stream restore` and
//! the clients' snapshot APIs work against natrix.
//!
//! **Snapshot.** The request names a `deliver_subject`. The stream's actor takes the
//! snapshot between two commits ([`take`], its `Call::Snapshot`): it saves its consumers'
//! state, notes the config and state for the answer, and starts the store's
//! [`Store::snapshot`] on a blocking thread; it goes on as soon as the copy is pinned
//! (a file store's read transaction has begun, which it has once the first byte is
//! written; a memory store's copy is done, since it holds its read lock throughout).
//! The copy goes through [`encode`] into an unlinked temp file in the account's
//! `snapshots/` directory, so a large stream costs disk, not memory, and a slow client
//! never holds up the stream. [`send`] then streams that file to the deliver subject in
//! chunks, as nats-server's `streamSnapshot` does: each full chunk carries the reply
//! subject `$JS.SNAPSHOT.ACK.<stream>.<id>.<len>.<index>`, at most `window / chunk`
//! chunks are unacknowledged, and the end is an empty message with a status header:
//! `204` when complete, `408 No Flow Response` when no ack came for [`ACK_TIMEOUT`] after
//! the last chunk, `408 No Interest` when the receiver unsubscribed, `500 <error>` when
//! the copy failed.
//!
//! **Restore.** The request carries the backup's `{config, state}`. The config is
//! checked as a create would check it, a stream of that name must not exist (10130), and
//! the answer names `$JS.SNAPSHOT.RESTORE.<stream>.<id>`, where the client sends the
//! chunks, each acknowledged by an empty reply. An empty message ends the upload; its
//! reply is a `stream_create_response` with the new stream's info, or `restore failed:
//! …` (10062). The chunks are decoded as they arrive into a fresh store (a file store in
//! the account's `snapshots/` directory, moved into `streams/` at the end), and the
//! stream then starts on it with its consumers ([`JsAccount::adopt_stream`]). An upload
//! that stops for [`RESTORE_IDLE`] is abandoned and leaves nothing behind.
//!
//! **Bytes in the chunks.** The store's own snapshot format (`store::file::snapshot`:
//! messages, meta records, a checksum) in the Snappy framing format. The framing is
//! there because natscli's backup feeds what it receives through an S2 reader (which
//! reads Snappy framing) to report progress, and fails on anything else; it also
//! compresses. A natrix backup restores into natrix only, and a nats-server backup (a tar
//! of its file store in S2) is refused with a clear error: see `docs/compatibility.md`.

use std::fs::File;
use std::io::{self, BufReader, BufWriter, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use bytes::{Buf, Bytes};
use serde_json::{Value, json};
use tokio::io::AsyncReadExt as _;
use tokio::sync::{mpsc, oneshot};

use crate::account::JsAccount;
use crate::api::errors::{self, ApiError};
use crate::api::json::decode_request;
use crate::api::types::{self, StorageType, StreamConfig};
use crate::bus::{Conn, Msg};
use crate::store::file::{FileStore, snapshot as format};
use crate::store::memory::MemoryStore;
use crate::store::{Store, StoreError};
use crate::stream::{Call, Stream, limits_of};

/// Bytes per chunk when the request names none (nats-server's `defaultSnapshotChunkSize`).
pub const DEFAULT_CHUNK_SIZE: i64 = 128 * 1024;
/// Bytes in flight when the request names none (`defaultSnapshotWindowSize`).
pub const DEFAULT_WINDOW_SIZE: i64 = 8 * 1024 * 1024;
/// A chunk is clamped to 1 KiB–1 MiB, a window to 1 KiB–32 MiB (nats-server's clamps).
const MIN_SIZE: i64 = 1024;
const MAX_CHUNK_SIZE: i64 = 1024 * 1024;
const MAX_WINDOW_SIZE: i64 = 32 * 1024 * 1024;
/// How long a snapshot waits for a free window slot after its last chunk before it ends
/// with `408 No Flow Response` (nats-server's `snapshotAckTimeout`).
pub const ACK_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a snapshot waits for someone to subscribe to its deliver subject (clients
/// subscribe once they have the answer) before it sends anyway, as nats-server does.
const INTEREST_WAIT: Duration = Duration::from_secs(2);
/// How often a waiting snapshot looks whether its receiver went away.
const INTEREST_POLL: Duration = Duration::from_millis(100);
/// A restore upload that sends nothing for this long is abandoned (nats-server's
/// `activityInterval`).
pub const RESTORE_IDLE: Duration = Duration::from_secs(5);
/// Chunks of a restore queued ahead of the decoder; beyond that the client's acks wait,
/// which is what keeps a restore's memory bounded.
const RESTORE_QUEUE: usize = 4;
/// Bytes of an upload received but not yet decoded, at most (see [`Inbox`]).
const RESTORE_MAX_QUEUED: usize = 64 << 20;

/// The snapshot's acknowledgement subject prefix (nats-server's `jsSnapshotAckT`).
const ACK_PREFIX: &str = "$JS.SNAPSHOT.ACK";
/// The restore's upload subject prefix (nats-server's `jsRestoreDeliverT`).
const RESTORE_PREFIX: &str = "$JS.SNAPSHOT.RESTORE";

/// Snappy framing's stream identifier chunk (what our backups start with).
const SNAPPY_ID: &[u8; 10] = b"\xff\x06\x00\x00sNaPpY";
/// S2's stream identifier chunk (what nats-server's backups start with).
const S2_ID: &[u8; 10] = b"\xff\x06\x00\x00S2sTwO";

/// What a stream's actor is handed to take a snapshot (its `Call::Snapshot`).
pub struct Take {
    no_consumers: bool,
    /// The account's `snapshots/` directory, for the temp file.
    dir: PathBuf,
    /// Receives the copy being written once the actor has pinned it.
    out: oneshot::Sender<Pending>,
}

/// A snapshot being written to its temp file; resolves to the finished file.
pub struct Pending(tokio::task::JoinHandle<Result<Wire, StoreError>>);

/// The finished wire bytes of a snapshot: an unlinked temp file positioned at its start.
pub struct Wire {
    file: File,
    len: u64,
}

/// `$JS.SNAPSHOT.ACK` and `$JS.SNAPSHOT.RESTORE` subjects carry the stream's name, so the
/// account's `snapshots/` directory: `<store_dir>/jetstream/<account>/snapshots` (beside
/// `streams/`, where recovery never looks; nats-server's `snapsDir`).
fn snapshots_dir(acc: &JsAccount) -> PathBuf {
    acc.js
        .config
        .store_dir
        .join("jetstream")
        .join(&acc.name)
        .join("snapshots")
}

/// Removes what backups in flight left in `snapshots/` when the server stopped (restores
/// staged there); run at start, before any backup begins. Snapshot temp files are
/// unlinked when made, so only a crash mid-restore leaves anything.
pub(crate) fn remove_leftovers(acc: &JsAccount) {
    let dir = snapshots_dir(acc);
    match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            tracing::warn!("removing {}: {e}", dir.display());
        }
        _ => {}
    }
}

/// nats-server's `isEmptyRequest`: no body, or an empty JSON object.
fn is_empty_request(body: &[u8]) -> bool {
    let trimmed = body.trim_ascii();
    trimmed.is_empty()
        || serde_json::from_slice::<Value>(trimmed)
            .is_ok_and(|v| v.as_object().is_some_and(serde_json::Map::is_empty))
}

// ---------------------------------------------------------------------------------------
// Snapshot
// ---------------------------------------------------------------------------------------

/// `$JS.API.STREAM.SNAPSHOT.<stream>`: answers with the config and state being copied
/// and leaves a task sending the chunks. Checks in nats-server's order.
pub(crate) async fn snapshot(
    acc: &Arc<JsAccount>,
    stream: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    if is_empty_request(body) {
        return Err(errors::bad_request());
    }
    let Some(handle) = acc.stream(stream) else {
        return Err(errors::stream_not_found());
    };
    let req: types::StreamSnapshotRequest = decode_request(body, acc.js.config.strict)?;
    if !crate::subject::is_valid_literal(&req.deliver_subject) {
        return Err(errors::snapshot_deliver_subject_invalid());
    }
    tracing::info!("Starting snapshot for stream '{} > {}'", acc.name, stream);
    let started = crate::time::now_nanos();
    let (out, pending) = oneshot::channel();
    let answer = handle
        .call(Call::Snapshot(Take {
            no_consumers: req.no_consumers,
            dir: snapshots_dir(acc),
            out,
        }))
        .await?;
    let Ok(pending) = pending.await else {
        return Err(errors::stream_snapshot("the stream stopped"));
    };
    if let Some(state) = answer.get("state") {
        advisory(
            acc,
            types::advisory_subject::SNAPSHOT_CREATE,
            stream,
            json!({
                "type": types::advisory_type::SNAPSHOT_CREATE,
                "id": crate::time::nuid(),
                "timestamp": crate::time::rfc3339(crate::time::now_nanos()),
                "stream": stream,
                "state": state,
                "client": Value::Null,
            }),
        );
    }
    let acc = acc.clone();
    let stream = stream.to_owned();
    tokio::spawn(async move {
        let ending = send(&acc, &stream, &req, pending).await;
        finish_snapshot(&acc, &stream, started, &ending);
    });
    Ok(answer)
}

/// Runs inside the stream's actor: the consistent point. Saves the consumers' state, so
/// the copy has their acks, then pins the store's copy and answers with what it holds.
pub(crate) async fn take(s: &mut Stream, t: Take) -> Result<Value, ApiError> {
    s.persist_consumers(false).await;
    let state = s.info_state(false, None);
    let config = s.config.clone();
    let store = s.store.clone();
    // A memory store holds its read lock until its copy is written: wait for all of it
    // rather than block the actor's next append on that lock.
    let pin_at_end = config.storage == StorageType::Memory;
    let (pinned_tx, pinned_rx) = oneshot::channel();
    let Take {
        no_consumers,
        dir,
        out,
    } = t;
    let job = tokio::task::spawn_blocking(move || {
        write_wire(store.as_ref(), &dir, no_consumers, pinned_tx, pin_at_end)
    });
    if pinned_rx.await.is_err() {
        // The copy ended before it was pinned: that is its error.
        let err = match job.await {
            Ok(Err(e)) => e.to_string(),
            Ok(Ok(_)) => "snapshot ended early".to_owned(),
            Err(e) => e.to_string(),
        };
        return Err(errors::stream_snapshot(err));
    }
    let _ = out.send(Pending(job));
    serde_json::to_value(types::StreamSnapshotResponse {
        config: Some(config),
        state: Some(state),
    })
    .map_err(|e| errors::stream_snapshot(e.to_string()))
}

/// A writer that reports its first write (the moment a file store's copy is pinned).
struct PinWriter<W> {
    inner: W,
    pinned: Option<oneshot::Sender<()>>,
}

impl<W: Write> Write for PinWriter<W> {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if let Some(p) = self.pinned.take() {
            let _ = p.send(());
        }
        self.inner.write(buf)
    }

    fn flush(&mut self) -> io::Result<()> {
        self.inner.flush()
    }
}

/// Copies the store into a new temp file in wire form: the store writes its snapshot
/// into a pipe on one thread, [`encode`] reads it on this one. `pinned` fires at the
/// store's first byte, or with `pin_at_end` once the store is done.
fn write_wire(
    store: &dyn Store,
    dir: &Path,
    no_consumers: bool,
    pinned: oneshot::Sender<()>,
    pin_at_end: bool,
) -> Result<Wire, StoreError> {
    let mut file = temp_file(dir)?;
    let (pipe_r, pipe_w) = io::pipe().map_err(|e| io_error("snapshot pipe", &e))?;
    let (produced, encoded) = std::thread::scope(|scope| {
        let producer = scope.spawn(move || {
            let (at_first_byte, at_end) = if pin_at_end {
                (None, Some(pinned))
            } else {
                (Some(pinned), None)
            };
            let mut w = PinWriter {
                inner: BufWriter::with_capacity(64 * 1024, pipe_w),
                pinned: at_first_byte,
            };
            let r = store.snapshot(&mut w);
            if r.is_ok()
                && let Some(p) = at_end
            {
                let _ = p.send(());
            }
            r
        });
        // `encode` owns the pipe's reader: when it stops early the reader closes and
        // the store's writes fail instead of blocking forever.
        let encoded = encode(pipe_r, &mut file, no_consumers);
        let produced = producer
            .join()
            .unwrap_or_else(|_| Err(StoreError::Io("snapshot thread panicked".into())));
        (produced, encoded)
    });
    match (produced, encoded) {
        (Ok(()), Ok(len)) => {
            file.seek(SeekFrom::Start(0))
                .map_err(|e| io_error("snapshot temp file", &e))?;
            Ok(Wire { file, len })
        }
        // When the store's copy broke off, the encoder saw it cut short: the store's
        // error says why. When the encoder failed (a full disk), the store saw the
        // pipe close: the encoder's error says why.
        (Err(p), Err(StoreError::Corrupt(_)) | Ok(_)) => Err(p),
        (_, Err(e)) => Err(e),
    }
}

/// Reads a store snapshot from `input` and writes it to `out` in the Snappy framing
/// format, without the consumers' records when `no_consumers`. Reading it back checks
/// its checksum, so a damaged copy is never sent. Returns the bytes written.
fn encode(input: impl Read, out: &mut File, no_consumers: bool) -> Result<u64, StoreError> {
    let mut input = BufReader::with_capacity(64 * 1024, input);
    let mut reader = format::Reader::new(&mut input)?;
    let mut enc = snap::write::FrameEncoder::new(BufWriter::with_capacity(256 * 1024, &mut *out));
    let mut w = format::Writer::new(&mut enc, reader.last_seq(), reader.last_ts())?;
    while let Some(record) = reader.next_record()? {
        match record {
            format::Record::Msg(seq, m) => w.msg(seq, &m.subject, m.ts, m.ttl, &m.hdr, &m.data)?,
            format::Record::Meta(name, value) => {
                if !(no_consumers && name.starts_with("consumer/")) {
                    w.meta(&name, &value)?;
                }
            }
        }
    }
    w.finish()?;
    drop(enc);
    out.stream_position()
        .map_err(|e| io_error("snapshot temp file", &e))
}

/// A new temp file in `dir`, unlinked at once so that nothing is left behind whatever
/// happens to the server (Unix keeps it until it is closed).
fn temp_file(dir: &Path) -> Result<File, StoreError> {
    std::fs::create_dir_all(dir).map_err(|e| io_error("snapshot directory", &e))?;
    let path = dir.join(format!("snap-{}", crate::time::nuid()));
    let file = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .open(&path)
        .map_err(|e| io_error("snapshot temp file", &e))?;
    let _ = std::fs::remove_file(&path);
    Ok(file)
}

fn io_error(what: &str, e: &io::Error) -> StoreError {
    if e.raw_os_error() == Some(28) {
        return StoreError::NoSpace;
    }
    StoreError::Io(format!("{what}: {e}"))
}

/// Chunk and window sizes as nats-server clamps them; returns (chunk, chunks in flight).
fn flow(req: &types::StreamSnapshotRequest) -> (usize, usize) {
    let chunk = if req.chunk_size == 0 {
        DEFAULT_CHUNK_SIZE
    } else {
        req.chunk_size
    };
    let window = if req.window_size == 0 {
        DEFAULT_WINDOW_SIZE
    } else {
        req.window_size
    };
    let chunk = chunk.clamp(MIN_SIZE, MAX_CHUNK_SIZE);
    let window = window.clamp(MIN_SIZE, MAX_WINDOW_SIZE).max(chunk);
    // Both are within 1 KiB..32 MiB here.
    let chunk = usize::try_from(chunk).unwrap_or(128 * 1024);
    let window = usize::try_from(window).unwrap_or(8 << 20);
    (chunk, window / chunk)
}

/// How a snapshot's sending ended, and so its last message's status.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Ending {
    Complete { bytes: u64 },
    NoFlow,
    NoInterest,
    Failed(String),
}

impl Ending {
    fn header(&self) -> Vec<u8> {
        match self {
            Ending::Complete { .. } => crate::headers::Builder::status(204, "").build(),
            Ending::NoFlow => crate::headers::Builder::status(408, "No Flow Response").build(),
            Ending::NoInterest => crate::headers::Builder::status(408, "No Interest").build(),
            Ending::Failed(e) => crate::headers::Builder::status(500, e).build(),
        }
    }
}

/// Streams a finished copy to the deliver subject with nats-server's flow control, then
/// sends the status that ends it.
async fn send(
    acc: &Arc<JsAccount>,
    stream: &str,
    req: &types::StreamSnapshotRequest,
    pending: Pending,
) -> Ending {
    let deliver = req.deliver_subject.as_str();
    let (ack_tx, mut acks) = mpsc::unbounded_channel::<()>();
    let conn = match acc.js.bus.connect(
        &acc.name,
        Box::new(move |_m: Msg| {
            let _ = ack_tx.send(());
        }),
    ) {
        Ok(c) => c,
        Err(e) => {
            let ending = Ending::Failed(e.to_string());
            acc.conn.publish(deliver, None, &ending.header(), &[]);
            return ending;
        }
    };
    let ending = send_on(conn.as_ref(), stream, deliver, req, pending, &mut acks).await;
    conn.publish(deliver, None, &ending.header(), &[]);
    ending
}

async fn send_on(
    conn: &dyn Conn,
    stream: &str,
    deliver: &str,
    req: &types::StreamSnapshotRequest,
    pending: Pending,
    acks: &mut mpsc::UnboundedReceiver<()>,
) -> Ending {
    let ack_subject = format!("{ACK_PREFIX}.{stream}.{}", crate::time::nuid());
    if let Err(e) = conn.subscribe(&format!("{ack_subject}.>"), None) {
        return Ending::Failed(e.to_string());
    }
    // Clients subscribe to the deliver subject once they have the answer. A client's
    // request-reply wildcard (`_INBOX.<id>.*`) already covers an inbox it made, and a
    // chunk sent before its own subscription would go to that wildcard and be lost: so
    // wait for a subscription on exactly the deliver subject, then go on as nats-server
    // does (which waits for any interest, and wins this race only by being slower).
    let waited = Instant::now();
    while !conn.has_literal_interest(deliver) && waited.elapsed() < INTEREST_WAIT {
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    let mut had_interest = conn.has_interest(deliver);
    let wire = match pending.0.await {
        Ok(Ok(w)) => w,
        Ok(Err(e)) => return Ending::Failed(e.to_string()),
        Err(e) => return Ending::Failed(e.to_string()),
    };
    let (chunk_size, max_inflight) = flow(req);
    let total = wire.len;
    let mut file = tokio::fs::File::from_std(wire.file);
    let mut buf = vec![0u8; chunk_size];
    let mut slots = max_inflight;
    let mut last_sent = Instant::now();
    let mut index = 1u64;
    loop {
        // Wait for a free slot: an ack, the receiver gone, or the flow timeout.
        loop {
            while slots < max_inflight && acks.try_recv().is_ok() {
                slots += 1;
            }
            let interest = conn.has_interest(deliver);
            if had_interest && !interest {
                return Ending::NoInterest;
            }
            had_interest |= interest;
            if slots > 0 {
                break;
            }
            let deadline = last_sent + ACK_TIMEOUT;
            if Instant::now() >= deadline {
                return Ending::NoFlow;
            }
            let nap = INTEREST_POLL.min(deadline.saturating_duration_since(Instant::now()));
            tokio::select! {
                a = acks.recv() => {
                    if a.is_some() {
                        slots += 1;
                    }
                }
                () = tokio::time::sleep(nap) => {}
            }
        }
        let n = match read_full(&mut file, &mut buf).await {
            Ok(n) => n,
            Err(e) => return Ending::Failed(format!("reading the snapshot: {e}")),
        };
        let Some(chunk) = buf.get(..n) else {
            return Ending::Failed("reading the snapshot: short buffer".into());
        };
        if n < chunk_size {
            // The last, partial chunk goes without a reply, as in nats-server.
            if n > 0 {
                conn.publish(deliver, None, &[], chunk);
            }
            return Ending::Complete { bytes: total };
        }
        let reply = format!("{ack_subject}.{n}.{index}");
        conn.publish(deliver, Some(&reply), &[], chunk);
        slots -= 1;
        index += 1;
        last_sent = Instant::now();
    }
}

/// Fills `buf` from `file` unless the file ends first; returns the bytes read.
async fn read_full(file: &mut tokio::fs::File, buf: &mut [u8]) -> io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        let Some(rest) = buf.get_mut(n..) else { break };
        let got = file.read(rest).await?;
        if got == 0 {
            break;
        }
        n += got;
    }
    Ok(n)
}

/// Logs the end of a snapshot and publishes its completion advisory.
fn finish_snapshot(acc: &JsAccount, stream: &str, started: i64, ending: &Ending) {
    let end = crate::time::now_nanos();
    let took = Duration::from_nanos(u64::try_from(end - started).unwrap_or(0));
    let error = match ending {
        Ending::Complete { bytes } => {
            tracing::info!(
                "Completed snapshot of {} for stream '{} > {}' in {:?}",
                crate::human_bytes(i64::try_from(*bytes).unwrap_or(i64::MAX)),
                acc.name,
                stream,
                took
            );
            String::new()
        }
        Ending::NoFlow => "no flow response".to_owned(),
        Ending::NoInterest => "no interest".to_owned(),
        Ending::Failed(e) => e.clone(),
    };
    if !error.is_empty() {
        tracing::warn!(
            "Snapshot for stream '{} > {}' failed after {:?}: {}",
            acc.name,
            stream,
            took,
            error
        );
    }
    let mut body = json!({
        "type": types::advisory_type::SNAPSHOT_COMPLETE,
        "id": crate::time::nuid(),
        "timestamp": crate::time::rfc3339(end),
        "stream": stream,
        "start": crate::time::rfc3339(started),
        "end": crate::time::rfc3339(end),
        "client": Value::Null,
    });
    if let (Some(o), false) = (body.as_object_mut(), error.is_empty()) {
        o.insert("error".into(), Value::String(error));
    }
    advisory(
        acc,
        types::advisory_subject::SNAPSHOT_COMPLETE,
        stream,
        body,
    );
}

fn advisory(acc: &JsAccount, prefix: &str, stream: &str, body: Value) {
    if let Ok(b) = crate::api::json::to_vec(&body) {
        acc.conn
            .publish(&format!("{prefix}.{stream}"), None, &[], &b);
    }
}

// ---------------------------------------------------------------------------------------
// Restore
// ---------------------------------------------------------------------------------------

/// `$JS.API.STREAM.RESTORE.<stream>`: checks the request as nats-server does, subscribes
/// the upload subject and leaves a task receiving the chunks; answers with that subject.
pub(crate) async fn restore(
    acc: &Arc<JsAccount>,
    stream: &str,
    body: &[u8],
) -> Result<Value, ApiError> {
    if is_empty_request(body) {
        return Err(errors::bad_request());
    }
    let mut req: types::StreamRestoreRequest = decode_request(body, acc.js.config.strict)?;
    if req.config.name.is_empty() {
        stream.clone_into(&mut req.config.name);
    }
    if req.config.name != stream {
        return Err(errors::stream_mismatch());
    }
    if stream.contains(['\\', '/']) {
        return Err(errors::stream_name_contains_path_separators());
    }
    let config = acc.restore_check(req.config)?;
    let id = crate::time::nuid();
    let subject = format!("{RESTORE_PREFIX}.{stream}.{id}");
    let (tx, rx) = mpsc::unbounded_channel::<Msg>();
    let inbox = Inbox {
        rx,
        queued: Arc::default(),
        overflow: Arc::default(),
    };
    let (queued, overflow) = (inbox.queued.clone(), inbox.overflow.clone());
    let conn = acc
        .js
        .bus
        .connect(
            &acc.name,
            Box::new(move |m: Msg| {
                let n = m.payload.len();
                if queued.fetch_add(n, Ordering::Relaxed) + n > RESTORE_MAX_QUEUED {
                    queued.fetch_sub(n, Ordering::Relaxed);
                    overflow.store(true, Ordering::Relaxed);
                    return;
                }
                let _ = tx.send(m);
            }),
        )
        .map_err(|e| errors::restore_subscribe_failed(e, &subject))?;
    conn.subscribe(&subject, None)
        .map_err(|e| errors::restore_subscribe_failed(e, &subject))?;
    tracing::info!("Starting restore for stream '{} > {}'", acc.name, stream);
    advisory(
        acc,
        types::advisory_subject::RESTORE_CREATE,
        stream,
        json!({
            "type": types::advisory_type::RESTORE_CREATE,
            "id": crate::time::nuid(),
            "timestamp": crate::time::rfc3339(crate::time::now_nanos()),
            "stream": stream,
            "client": Value::Null,
        }),
    );
    let acc2 = acc.clone();
    tokio::spawn(async move {
        receive(&acc2, config, conn, inbox, &id).await;
    });
    Ok(json!({ "deliver_subject": subject }))
}

/// The upload as it arrives from the bus, with the bytes not yet taken from it. A client
/// waits for each chunk's ack (natscli does); one that runs ahead by more than
/// [`RESTORE_MAX_QUEUED`] has its restore failed rather than grow the server's memory.
struct Inbox {
    rx: mpsc::UnboundedReceiver<Msg>,
    queued: Arc<AtomicUsize>,
    overflow: Arc<AtomicBool>,
}

/// Where a restore decodes into until the stream adopts it.
#[derive(Clone)]
enum Staged {
    /// A file store in `snapshots/restore-<id>`, moved into `streams/` at the end.
    File(PathBuf),
    Memory(Arc<MemoryStore>),
}

/// Receives the upload, decoding it into a fresh store as it comes, and answers the
/// final empty message with the new stream's info or the error.
async fn receive(
    acc: &Arc<JsAccount>,
    config: StreamConfig,
    conn: Arc<dyn Conn>,
    mut inbox: Inbox,
    id: &str,
) {
    let started = crate::time::now_nanos();
    let stream = config.name.clone();
    let limits = limits_of(&config);
    let (chunk_tx, chunk_rx) = mpsc::channel::<Bytes>(RESTORE_QUEUE);
    let staged = match config.storage {
        StorageType::File => Staged::File(snapshots_dir(acc).join(format!("restore-{id}"))),
        StorageType::Memory => Staged::Memory(Arc::new(MemoryStore::new(limits))),
    };
    let cache = acc.js.config.store_cache_bytes;
    let loader = {
        let staged = staged.clone();
        tokio::task::spawn_blocking(move || {
            let mut input = ChunkReader {
                rx: chunk_rx,
                cur: Bytes::new(),
            };
            load(&staged, &mut input, limits, cache)?;
            // Whatever follows the snapshot's end is read and dropped, so the client's
            // acks keep coming until its end marker (nats-server acks them too).
            input.drain();
            Ok(())
        })
    };
    let mut chunk_tx = Some(chunk_tx);
    let mut loader = Some(loader);
    let mut total = 0u64;
    let outcome: Result<(String, Value), (Option<String>, ApiError)> = loop {
        let next = tokio::time::timeout(RESTORE_IDLE, inbox.rx.recv()).await;
        let Ok(Some(m)) = next else {
            break Err((
                None,
                errors::stream_restore(format!(
                    "restore for stream '{} > {}' is stalled",
                    acc.name, stream
                )),
            ));
        };
        inbox.queued.fetch_sub(m.payload.len(), Ordering::Relaxed);
        let Some(reply) = m.reply else {
            break Err((
                None,
                errors::stream_restore(format!(
                    "restore for stream '{} > {}' requires reply subject for each chunk",
                    acc.name, stream
                )),
            ));
        };
        if inbox.overflow.load(Ordering::Relaxed) {
            break Err((
                Some(reply),
                errors::stream_restore(format!(
                    "restore for stream '{} > {}' received chunks before acknowledging \
                     the ones before them",
                    acc.name, stream
                )),
            ));
        }
        if m.payload.is_empty() {
            chunk_tx = None;
            break match join(loader.take()).await {
                Ok(()) => match adopt(acc, config, &staged, cache).await {
                    Ok(info) => Ok((reply, info)),
                    Err(e) => Err((Some(reply), e)),
                },
                Err(e) => Err((Some(reply), errors::stream_restore(e))),
            };
        }
        total += m.payload.len() as u64;
        let sent = match &chunk_tx {
            Some(tx) => tx.send(m.payload).await.is_ok(),
            None => false,
        };
        if !sent {
            // The decoder stopped: its error answers this chunk.
            chunk_tx = None;
            let err = match join(loader.take()).await {
                Err(e) => e,
                Ok(()) => StoreError::Corrupt("snapshot: data after its end".into()),
            };
            break Err((Some(reply), errors::stream_restore(err)));
        }
        conn.publish(&reply, None, &[], &[]);
    };
    // An abandoned upload: the decoder sees the end of its input, and is waited for
    // before its files are removed.
    drop(chunk_tx);
    let _ = join(loader.take()).await;
    drop(conn);
    let took = Duration::from_nanos(u64::try_from(crate::time::now_nanos() - started).unwrap_or(0));
    let size = crate::human_bytes(i64::try_from(total).unwrap_or(i64::MAX));
    let (reply, body) = match outcome {
        Ok((reply, info)) => {
            tracing::info!(
                "Completed restore of {size} for stream '{} > {stream}' in {took:?}",
                acc.name
            );
            (Some(reply), info)
        }
        Err((reply, e)) => {
            tracing::warn!(
                "Restore failed for {size} for stream '{} > {stream}' in {took:?}: {}",
                acc.name,
                e.description
            );
            if let Staged::File(dir) = &staged {
                remove_dir(dir).await;
            }
            (reply, json!({ "error": e }))
        }
    };
    if let Some(reply) = reply {
        let mut body = body;
        if let Some(o) = body.as_object_mut() {
            o.insert(
                "type".into(),
                Value::String("io.nats.jetstream.api.v1.stream_create_response".into()),
            );
        }
        if let Ok(b) = crate::api::json::to_vec(&body) {
            acc.conn.publish(&reply, None, &[], &b);
        }
    }
    let end = crate::time::now_nanos();
    advisory(
        acc,
        types::advisory_subject::RESTORE_COMPLETE,
        &stream,
        json!({
            "type": types::advisory_type::RESTORE_COMPLETE,
            "id": crate::time::nuid(),
            "timestamp": crate::time::rfc3339(end),
            "stream": stream,
            "start": crate::time::rfc3339(started),
            "end": crate::time::rfc3339(end),
            "bytes": total,
            "client": Value::Null,
        }),
    );
}

/// The decoder's result, once it has finished (`Ok` when there is none left to wait for).
async fn join(
    loader: Option<tokio::task::JoinHandle<Result<(), StoreError>>>,
) -> Result<(), StoreError> {
    match loader {
        Some(l) => l
            .await
            .unwrap_or_else(|e| Err(StoreError::Io(format!("restore task failed: {e}")))),
        None => Ok(()),
    }
}

/// Decodes the upload into the staged store (runs on a blocking thread).
fn load(
    staged: &Staged,
    input: &mut ChunkReader,
    limits: crate::store::Limits,
    cache: usize,
) -> Result<(), StoreError> {
    let mut head = [0u8; 10];
    input
        .read_exact(&mut head)
        .map_err(|_| StoreError::Corrupt("snapshot: truncated".into()))?;
    if &head == S2_ID {
        return Err(StoreError::Corrupt(
            "a nats-server backup (S2 and tar); natrix restores natrix backups only".into(),
        ));
    }
    if &head != SNAPPY_ID {
        return Err(StoreError::Corrupt("not a natrix backup".into()));
    }
    let framed = Read::chain(head.as_slice(), &mut *input);
    let mut decoded = snap::read::FrameDecoder::new(framed);
    match staged {
        Staged::File(dir) => {
            let (store, _) = FileStore::open(dir, limits, cache)?;
            // The store closes when it goes out of scope, before the stream reopens it.
            store.restore(&mut decoded)
        }
        Staged::Memory(store) => store.restore(&mut decoded),
    }
}

/// Hands a loaded store to the account as a new stream.
async fn adopt(
    acc: &Arc<JsAccount>,
    config: StreamConfig,
    staged: &Staged,
    cache: usize,
) -> Result<Value, ApiError> {
    let limits = limits_of(&config);
    match staged {
        Staged::Memory(store) => {
            let store: Arc<dyn Store> = store.clone();
            acc.adopt_stream(config, move |_| Ok(store)).await
        }
        Staged::File(from) => {
            let from = from.clone();
            acc.adopt_stream(config, move |to: PathBuf| {
                // A directory left there by a stream that no longer runs is stale
                // (nats-server removes it too).
                if to.exists() {
                    std::fs::remove_dir_all(&to)
                        .map_err(|e| io_error("stale stream directory", &e))?;
                }
                if let Some(parent) = to.parent() {
                    std::fs::create_dir_all(parent)
                        .map_err(|e| io_error("streams directory", &e))?;
                }
                std::fs::rename(&from, &to)
                    .map_err(|e| io_error("moving the restored stream", &e))?;
                let (store, _) = FileStore::open(&to, limits, cache)?;
                let store: Arc<dyn Store> = Arc::new(store);
                Ok(store)
            })
            .await
        }
    }
}

async fn remove_dir(dir: &Path) {
    let dir = dir.to_path_buf();
    let _ = tokio::task::spawn_blocking(move || match std::fs::remove_dir_all(&dir) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => {
            tracing::warn!("removing {}: {e}", dir.display());
        }
        _ => {}
    })
    .await;
}

/// The upload's chunks as one byte stream for the decoder (on a blocking thread); ends
/// when the receiving task drops its sender.
struct ChunkReader {
    rx: mpsc::Receiver<Bytes>,
    cur: Bytes,
}

impl ChunkReader {
    fn drain(&mut self) {
        while self.rx.blocking_recv().is_some() {}
    }
}

impl Read for ChunkReader {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        while self.cur.is_empty() {
            match self.rx.blocking_recv() {
                Some(b) => self.cur = b,
                None => return Ok(0),
            }
        }
        let n = buf.len().min(self.cur.len());
        if let (Some(dst), Some(src)) = (buf.get_mut(..n), self.cur.get(..n)) {
            dst.copy_from_slice(src);
        }
        self.cur.advance(n);
        Ok(n)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn req(chunk: i64, window: i64) -> types::StreamSnapshotRequest {
        types::StreamSnapshotRequest {
            deliver_subject: "x".into(),
            chunk_size: chunk,
            window_size: window,
            ..Default::default()
        }
    }

    #[test]
    fn flow_clamps_as_nats_server() {
        assert_eq!(flow(&req(0, 0)), (128 * 1024, 64));
        assert_eq!(flow(&req(10, 10)), (1024, 1));
        assert_eq!(flow(&req(-5, -5)), (1024, 1));
        assert_eq!(flow(&req(4 << 20, 0)), (1 << 20, 8));
        assert_eq!(flow(&req(64 * 1024, 1 << 30)), (64 * 1024, 512));
        // A window smaller than a chunk still lets one chunk fly.
        assert_eq!(flow(&req(64 * 1024, 2048)), (64 * 1024, 1));
    }

    #[test]
    fn empty_requests() {
        assert!(is_empty_request(b""));
        assert!(is_empty_request(b"{}"));
        assert!(is_empty_request(b" { } "));
        assert!(!is_empty_request(b"{\"deliver_subject\":\"x\"}"));
        assert!(!is_empty_request(b"nope"));
    }

    #[test]
    fn endings_are_nats_server_status_lines() {
        assert_eq!(
            Ending::Complete { bytes: 1 }.header(),
            b"NATS/1.0 204\r\n\r\n".to_vec()
        );
        assert_eq!(
            Ending::NoFlow.header(),
            b"NATS/1.0 408 No Flow Response\r\n\r\n".to_vec()
        );
        assert_eq!(
            Ending::NoInterest.header(),
            b"NATS/1.0 408 No Interest\r\n\r\n".to_vec()
        );
        assert_eq!(
            Ending::Failed("boom".into()).header(),
            b"NATS/1.0 500 boom\r\n\r\n".to_vec()
        );
    }

    fn sample_store() -> MemoryStore {
        let s = MemoryStore::new(crate::store::Limits::default());
        let msgs: Vec<crate::store::NewMsg> = (0..300)
            .map(|i| crate::store::NewMsg {
                subject: format!("s.{}", i % 7),
                ts: 1_000 + i,
                hdr: Bytes::new(),
                data: Bytes::from(vec![b'x'; 100]),
                ttl: None,
            })
            .collect();
        s.append(&msgs).expect("append");
        s.put_meta(&[
            ("stream/config".into(), Some(b"{}".to_vec())),
            ("consumer/C/config".into(), Some(b"{}".to_vec())),
            ("consumer/C/state".into(), Some(b"{}".to_vec())),
        ])
        .expect("meta");
        s
    }

    /// The wire form decodes back to the same store, and `no_consumers` strips exactly
    /// the consumer records.
    #[test]
    fn wire_round_trip_and_no_consumers() {
        let src = sample_store();
        let dir = tempfile::tempdir().expect("tempdir");
        for no_consumers in [false, true] {
            let (tx, _rx) = oneshot::channel();
            let mut wire =
                write_wire(&src, dir.path(), no_consumers, tx, true).expect("write wire");
            let mut bytes = Vec::new();
            wire.file.read_to_end(&mut bytes).expect("read");
            assert_eq!(bytes.len() as u64, wire.len);
            assert!(bytes.starts_with(SNAPPY_ID));
            let dst = MemoryStore::new(crate::store::Limits::default());
            let mut dec = snap::read::FrameDecoder::new(bytes.as_slice());
            dst.restore(&mut dec).expect("restore");
            assert_eq!(dst.state(), src.state());
            let names: Vec<String> = dst
                .meta("")
                .expect("meta")
                .into_iter()
                .map(|(k, _)| k)
                .collect();
            if no_consumers {
                assert_eq!(names, vec!["stream/config".to_owned()]);
            } else {
                assert_eq!(names.len(), 3);
            }
        }
        // The temp files were unlinked as soon as they were made.
        assert_eq!(std::fs::read_dir(dir.path()).expect("dir").count(), 0);
    }

    /// Garbage, a nats-server backup, and a cut-off upload are refused.
    #[test]
    fn load_refuses_what_is_not_a_whole_natrix_backup() {
        let dir = tempfile::tempdir().expect("tempdir");
        let src = sample_store();
        let (tx, _rx) = oneshot::channel();
        let mut wire = write_wire(&src, dir.path(), false, tx, true).expect("write wire");
        let mut good = Vec::new();
        wire.file.read_to_end(&mut good).expect("read");
        let mut s2 = S2_ID.to_vec();
        s2.extend_from_slice(&[0; 64]);
        let cut = good.get(..good.len() / 2).expect("half").to_vec();
        for (input, want) in [
            (b"garbage garbage garbage".to_vec(), "not a natrix backup"),
            (s2, "nats-server backup"),
            (cut, "snapshot"),
        ] {
            let rt = tokio::runtime::Builder::new_current_thread()
                .build()
                .expect("rt");
            let (ctx, crx) = mpsc::channel(4);
            rt.block_on(async {
                ctx.send(Bytes::from(input)).await.expect("send");
            });
            drop(ctx);
            let mut reader = ChunkReader {
                rx: crx,
                cur: Bytes::new(),
            };
            let staged =
                Staged::Memory(Arc::new(MemoryStore::new(crate::store::Limits::default())));
            let err = load(&staged, &mut reader, crate::store::Limits::default(), 0)
                .expect_err("refused");
            assert!(err.to_string().contains(want), "{err} should say {want}");
        }
    }
}
