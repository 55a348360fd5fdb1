//! Direct gets (`$JS.API.DIRECT.GET.<stream>` with a JSON request, and
//! `$JS.API.DIRECT.GET.<stream>.<subject>` for the last message on a subject): the
//! message itself comes back with `Nats-Stream`, `Nats-Subject`, `Nats-Sequence` and
//! `Nats-Time-Stamp` headers, status replies (`404 Message Not Found`, `408 Bad Request`,
//! `204 EOB` after a batch) as nats-server sends them. KV gets use this path.

use crate::api::types::MsgGetRequest;
use crate::bus::Conn;
use crate::headers::{self, Builder};
use crate::store::{Store, StoredMsg};

/// Most messages one multi-last request answers (nats-server's limit).
const MAX_MULTI: usize = 1024;

fn status(conn: &dyn Conn, reply: &str, code: u16, text: &str) {
    conn.publish(reply, None, &Builder::status(code, text).build(), &[]);
}

/// Answers a direct get on `subject` (the request subject) with body `body`.
pub fn serve(
    store: &dyn Store,
    stream: &str,
    subject: &str,
    body: &[u8],
    reply: &str,
    conn: &dyn Conn,
    max_pending: usize,
) {
    let prefix = format!("$JS.API.DIRECT.GET.{stream}");
    let key = subject
        .strip_prefix(&prefix)
        .and_then(|r| r.strip_prefix('.'));
    let req = if let Some(key) = key {
        let mut req = if body.is_empty() {
            MsgGetRequest::default()
        } else {
            match serde_json::from_slice::<MsgGetRequest>(body) {
                Ok(r) => r,
                Err(_) => return status(conn, reply, 408, "Malformed Request"),
            }
        };
        if key.is_empty()
            || !req.last_by_subj.is_empty()
            || !req.next_by_subj.is_empty()
            || !req.multi_last.is_empty()
            || req.seq != 0
            || req.batch != 0
            || req.start_time.is_some()
            || req.up_to_seq != 0
            || req.up_to_time.is_some()
        {
            return status(conn, reply, 408, "Bad Request");
        }
        key.clone_into(&mut req.last_by_subj);
        req
    } else {
        if body.is_empty() {
            return status(conn, reply, 408, "Empty Request");
        }
        let Ok(req) = serde_json::from_slice::<MsgGetRequest>(body) else {
            return status(conn, reply, 408, "Malformed Request");
        };
        let last = Some(req.last_by_subj.as_str()).filter(|s| !s.is_empty());
        let next = Some(req.next_by_subj.as_str()).filter(|s| !s.is_empty());
        if req.seq == 0
            && last.is_none()
            && next.is_none()
            && req.multi_last.is_empty()
            && req.start_time.is_none()
        {
            return status(conn, reply, 408, "Empty Request");
        }
        let conflicts = [
            req.seq > 0 && last.is_some(),
            req.seq > 0 && req.start_time.is_some(),
            req.start_time.is_some() && last.is_some(),
            last.is_some() && next.is_some(),
            last.is_some() && req.batch > 0,
            last.is_some() && !req.multi_last.is_empty(),
            next.is_some() && !req.multi_last.is_empty(),
            req.up_to_seq > 0 && req.up_to_time.is_some(),
        ];
        if conflicts.contains(&true) {
            return status(conn, reply, 408, "Bad Request");
        }
        req
    };
    let max_bytes = if req.max_bytes > 0 {
        usize::try_from(req.max_bytes).unwrap_or(usize::MAX)
    } else {
        max_pending
    };
    if !req.multi_last.is_empty() {
        return multi_last(store, stream, &req, reply, conn, max_bytes);
    }
    let mut seq = match req.start_time {
        Some(t) => store.seq_for_time(t).unwrap_or(u64::MAX),
        None => req.seq,
    };
    let next = Some(req.next_by_subj.clone()).filter(|s| !s.is_empty());
    let batch_mode = req.batch > 0;
    let batch = req.batch.max(1);
    let filters: Vec<String> = next.iter().cloned().collect();
    let mut np = if batch_mode {
        store.num_pending(seq, &filters, false).unwrap_or(0)
    } else {
        0
    };
    let mut lseq = 0;
    let mut sent_bytes = 0usize;
    for i in 0..batch.unsigned_abs() {
        let found = if let Some(last) = Some(req.last_by_subj.as_str()).filter(|s| !s.is_empty()) {
            store.load_last(last, None)
        } else if seq > 0 && next.is_none() && i == 0 && !batch_mode {
            store.load(seq)
        } else {
            store.load_next(seq, &filters)
        };
        let m = match found {
            Ok(Some(m)) => m,
            _ => {
                if batch_mode && i > 0 {
                    break;
                }
                return status(conn, reply, 404, "Message Not Found");
            }
        };
        seq = m.seq + 1;
        let hdr = if batch_mode {
            np = np.saturating_sub(1);
            with_get_headers(stream, &m)
                .add(headers::NUM_PENDING, np)
                .add(headers::LAST_SEQUENCE, lseq)
                .build()
        } else {
            with_get_headers(stream, &m).build()
        };
        lseq = m.seq;
        conn.publish(reply, None, &hdr, &m.data);
        sent_bytes += m.subject.len() + m.hdr.len() + m.data.len();
        if sent_bytes >= max_bytes {
            break;
        }
    }
    if batch_mode {
        let np = store.num_pending(seq, &filters, false).unwrap_or(0);
        let hdr = Builder::status(204, "EOB")
            .add(headers::NUM_PENDING, np)
            .add(headers::LAST_SEQUENCE, lseq)
            .build();
        conn.publish(reply, None, &hdr, &[]);
    }
}

fn with_get_headers(stream: &str, m: &StoredMsg) -> Builder {
    let b = if m.hdr.is_empty() {
        Builder::new()
    } else {
        Builder::from_block(&m.hdr)
    };
    b.add(headers::STREAM, stream)
        .add(headers::SUBJECT, &m.subject)
        .add(headers::SEQUENCE, m.seq)
        .add(headers::TIME_STAMP, crate::time::rfc3339(m.ts))
}

/// The last message of each subject matching any of `multi_last`, up to a sequence.
fn multi_last(
    store: &dyn Store,
    stream: &str,
    req: &MsgGetRequest,
    reply: &str,
    conn: &dyn Conn,
    max_bytes: usize,
) {
    let state = store.state();
    let mut up_to = req.up_to_seq;
    if let Some(t) = req.up_to_time {
        let s = store.seq_for_time(t).unwrap_or(state.last_seq + 1);
        if s <= state.first_seq {
            return status(conn, reply, 404, "No Results");
        }
        up_to = s - 1;
    }
    if up_to == 0 {
        up_to = state.last_seq;
    }
    let mut found: Vec<StoredMsg> = Vec::new();
    for filter in &req.multi_last {
        let Ok(subjects) = store.subjects(filter) else {
            continue;
        };
        for s in subjects.keys() {
            if let Ok(Some(m)) = store.load_last(s, Some(up_to))
                && m.seq >= req.seq
                && !found.iter().any(|f| f.seq == m.seq)
            {
                found.push(m);
                if found.len() > MAX_MULTI {
                    return status(conn, reply, 413, "Too Many Results");
                }
            }
        }
    }
    if found.is_empty() {
        return status(conn, reply, 404, "No Results");
    }
    found.sort_by_key(|m| m.seq);
    let mut lseq = 0;
    let mut sent_bytes = 0usize;
    let total = found.len();
    for (i, m) in found.iter().enumerate() {
        let np = (total - i - 1) as u64;
        let hdr = with_get_headers(stream, m)
            .add(headers::NUM_PENDING, np)
            .add(headers::LAST_SEQUENCE, lseq)
            .build();
        lseq = m.seq;
        conn.publish(reply, None, &hdr, &m.data);
        sent_bytes += m.subject.len() + m.hdr.len() + m.data.len();
        if sent_bytes >= max_bytes || (req.batch > 0 && i as i64 + 1 >= req.batch) {
            break;
        }
    }
    let np = found.iter().filter(|m| m.seq > lseq).count();
    let hdr = Builder::status(204, "EOB")
        .add(headers::NUM_PENDING, np)
        .add(headers::LAST_SEQUENCE, lseq)
        .add("Nats-UpTo-Sequence", up_to)
        .build();
    conn.publish(reply, None, &hdr, &[]);
}
