//! The Raft wire format: subjects and postcard frames.
//!
//! Subjects (every one under `$NRG.`, which the core reserves: clients may not publish
//! there):
//!
//! | subject | carries |
//! |---|---|
//! | `$NRG.<server>.AE` | an `AppendEntries` request for a group with a member on `<server>` |
//! | `$NRG.<server>.V` | a `Vote` request |
//! | `$NRG.<server>.IS` | an `InstallSnapshot` chunk |
//! | `$NRG.<server>.HB` | a [`Batch`] of heartbeats: `AppendEntries` without entries, of any groups |
//! | `$NRG.<server>.R.<seq>` | the reply to request `<seq>` sent by `<server>` |
//! | `$NRG.<server>.R.0` | a [`Batch`] of replies to heartbeats |
//!
//! `<server>` is the target's server id, the `addr` of its openraft `BasicNode`. Each
//! server subscribes once, to `$NRG.<server>.>`, and receives its requests and its replies
//! there, for every group.
//!
//! A request payload is one version byte ([`WIRE_VERSION`]) followed by a postcard-encoded
//! [`RequestFrame`]: group name, sender and target node ids, and the openraft request. A
//! reply payload is the version byte and a postcard-encoded [`ReplyFrame`]: the openraft
//! result, or a refusal by the transport (no such group here, wrong node id, bad frame).
//! The group travels by name because group ids are local to each server's database.

use openraft::error::RaftError;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::error::StoreError;

/// Subject prefix of all Raft traffic.
pub const PREFIX: &str = "$NRG";

/// The first byte of every frame; a receiver refuses other versions.
pub const WIRE_VERSION: u8 = 1;

/// The reply sequence number that carries a [`Batch`] of replies (requests count from 1).
pub const BATCH_REPLY: u64 = 0;

/// Frames of several requests or replies in one message, each with the sequence number
/// of its request: heartbeats of many groups to one server share a message, and their
/// answers share a few.
pub type Batch = Vec<(u64, Vec<u8>)>;

/// The three Raft RPCs, and heartbeats batched.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum RpcKind {
    AppendEntries,
    Vote,
    InstallSnapshot,
    /// A [`Batch`] of `AppendEntries` frames without entries.
    Heartbeats,
}

impl RpcKind {
    /// The subject token naming this RPC.
    pub fn token(self) -> &'static str {
        match self {
            RpcKind::AppendEntries => "AE",
            RpcKind::Vote => "V",
            RpcKind::InstallSnapshot => "IS",
            RpcKind::Heartbeats => "HB",
        }
    }

    fn from_token(t: &str) -> Option<Self> {
        match t {
            "AE" => Some(RpcKind::AppendEntries),
            "V" => Some(RpcKind::Vote),
            "IS" => Some(RpcKind::InstallSnapshot),
            "HB" => Some(RpcKind::Heartbeats),
            _ => None,
        }
    }
}

/// The subject a request of `kind` for a member on `server` goes to.
pub fn request_subject(server: &str, kind: RpcKind) -> String {
    format!("{PREFIX}.{server}.{}", kind.token())
}

/// The subject every message for `server` matches.
pub fn server_subject(server: &str) -> String {
    format!("{PREFIX}.{server}.>")
}

/// The reply prefix of `server`: replies go to `<prefix>.<seq>`.
pub fn reply_prefix(server: &str) -> String {
    format!("{PREFIX}.{server}.R")
}

/// What a subject under a server's `$NRG.<server>.>` names.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Inbound {
    Request(RpcKind),
    Reply(u64),
}

/// Parses the part of `subject` after `$NRG.<server>.`; `None` for anything else.
pub fn parse_inbound(server: &str, subject: &str) -> Option<Inbound> {
    let rest = subject
        .strip_prefix(PREFIX)?
        .strip_prefix('.')?
        .strip_prefix(server)?
        .strip_prefix('.')?;
    if let Some(seq) = rest.strip_prefix("R.") {
        return seq.parse().ok().map(Inbound::Reply);
    }
    RpcKind::from_token(rest).map(Inbound::Request)
}

/// Whether `server` can stand in a subject as one token.
pub fn valid_server_token(server: &str) -> bool {
    !server.is_empty() && !server.contains(['.', ' ', '\t', '\r', '\n', '*', '>'])
}

/// A request for one group's member on the target server.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RequestFrame<T> {
    /// The group's name (the same on every server).
    pub group: String,
    /// The sender's node id.
    pub from: u64,
    /// The node id the sender believes the target has. A server whose node id differs
    /// (it was wiped and rejoined under a new id) refuses, so a stale member can never
    /// answer for a vote or log it no longer has.
    pub to: u64,
    pub rpc: T,
}

/// Why the transport of the receiving server refused a request without asking Raft.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, thiserror::Error)]
pub enum Refusal {
    #[error("group {0:?} is not running on this server")]
    NoGroup(String),
    #[error("this server is node {have}, not node {asked}")]
    WrongNode { asked: u64, have: u64 },
    #[error("bad frame: {0}")]
    BadFrame(String),
}

/// The answer to a request.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum ReplyFrame<T, E> {
    /// What the target's Raft answered.
    Raft(Result<T, RaftError<u64, E>>),
    /// The target's transport refused the request.
    Refused(Refusal),
}

/// Encodes a frame with its version byte.
pub fn encode_frame<T: Serialize>(frame: &T) -> Result<Vec<u8>, StoreError> {
    let body = encode(frame)?;
    let mut out = Vec::with_capacity(body.len() + 1);
    out.push(WIRE_VERSION);
    out.extend_from_slice(&body);
    Ok(out)
}

/// Decodes a frame written by [`encode_frame`].
pub fn decode_frame<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, Refusal> {
    match bytes.split_first() {
        Some((&WIRE_VERSION, body)) => decode(body).map_err(|e| Refusal::BadFrame(e.to_string())),
        Some((v, _)) => Err(Refusal::BadFrame(format!("wire version {v}"))),
        None => Err(Refusal::BadFrame("empty".into())),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::KvConfig;
    use openraft::error::Infallible;
    use openraft::raft::{AppendEntriesRequest, AppendEntriesResponse, VoteRequest};
    use openraft::{CommittedLeaderId, LogId, Vote};

    #[test]
    fn subjects() {
        assert_eq!(request_subject("S1", RpcKind::Vote), "$NRG.S1.V");
        assert_eq!(server_subject("S1"), "$NRG.S1.>");
        assert_eq!(
            parse_inbound("S1", "$NRG.S1.AE"),
            Some(Inbound::Request(RpcKind::AppendEntries))
        );
        assert_eq!(
            parse_inbound("S1", "$NRG.S1.R.42"),
            Some(Inbound::Reply(42))
        );
        assert_eq!(parse_inbound("S1", "$NRG.S2.AE"), None);
        assert_eq!(parse_inbound("S1", "$NRG.S1.X"), None);
        assert!(valid_server_token("NABCDEF"));
        assert!(!valid_server_token("a.b"));
        assert!(!valid_server_token(""));
    }

    #[test]
    fn frames_round_trip() {
        let req = RequestFrame {
            group: "S-R3F-abc".into(),
            from: 1,
            to: 2,
            rpc: AppendEntriesRequest::<KvConfig> {
                vote: Vote::new_committed(3, 1),
                prev_log_id: Some(LogId::new(CommittedLeaderId::new(3, 1), 7)),
                entries: vec![],
                leader_commit: None,
            },
        };
        let bytes = encode_frame(&req).unwrap();
        let back: RequestFrame<AppendEntriesRequest<KvConfig>> = decode_frame(&bytes).unwrap();
        assert_eq!(back.rpc.vote, req.rpc.vote);
        assert_eq!(back.rpc.prev_log_id, req.rpc.prev_log_id);
        assert_eq!(
            (back.group.as_str(), back.from, back.to),
            ("S-R3F-abc", 1, 2)
        );

        let vote: RequestFrame<VoteRequest<u64>> = RequestFrame {
            group: "g".into(),
            from: 1,
            to: 2,
            rpc: VoteRequest::new(Vote::new(4, 1), None),
        };
        let b = encode_frame(&vote).unwrap();
        assert!(decode_frame::<RequestFrame<VoteRequest<u64>>>(&b).is_ok());

        let reply: ReplyFrame<AppendEntriesResponse<u64>, Infallible> =
            ReplyFrame::Raft(Ok(AppendEntriesResponse::Success));
        let b = encode_frame(&reply).unwrap();
        let back: ReplyFrame<AppendEntriesResponse<u64>, Infallible> = decode_frame(&b).unwrap();
        assert!(matches!(
            back,
            ReplyFrame::Raft(Ok(AppendEntriesResponse::Success))
        ));

        let mut bad = b.clone();
        bad[0] = 9;
        assert!(matches!(
            decode_frame::<ReplyFrame<AppendEntriesResponse<u64>, Infallible>>(&bad),
            Err(Refusal::BadFrame(_))
        ));
    }
}
