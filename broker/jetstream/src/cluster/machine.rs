//! What JetStream's Raft groups replicate, and the state machine that applies it.
//!
//! One openraft type config serves every group of a server (they share one transport):
//! the meta group applies [`Entry::Peer`], [`Entry::AddStream`] and
//! [`Entry::RemoveStream`] into [`MetaState`]; a stream's group applies [`Entry::Msgs`].
//! Applying is synchronous and cheap: the machine checks and records what the entry
//! changes, and hands the work that touches disk or the network to the server's tasks
//! through its [`Sink`] (the stream's actor, the meta applier), in log order.

use std::collections::BTreeMap;
use std::io::Cursor;

use natrix_raft::StateMachine;
use natrix_raft::openraft::LogId;
use serde::{Deserialize, Serialize};

natrix_raft::openraft::declare_raft_types!(
    /// openraft types of JetStream's groups: u64 node ids, `BasicNode`, snapshots in memory.
    pub JsRaft:
        D = Entry,
        R = Outcome,
);

/// A stored message as a stream group replicates it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WireMsg {
    pub subject: String,
    pub ts: i64,
    pub hdr: Vec<u8>,
    pub data: Vec<u8>,
    pub ttl: Option<i64>,
}

/// Where a stream is placed: its config, its peers and its Raft group.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct StreamAssignment {
    pub account: String,
    pub stream: String,
    /// The stream's config as JSON (its serde form skips defaults, which a
    /// non-self-describing encoding cannot read back).
    pub config: String,
    pub created: i64,
    /// Server names and node ids of the replicas.
    pub peers: Vec<(String, u64)>,
    /// The Raft group's name (`S-R<n>F-<random>`), new for every stream so that a stream
    /// created again never meets an old log.
    pub group: String,
    /// The node that initialises the group: the first peer at creation, never changed,
    /// so a replica that comes back with a new node id (its store wiped) or joins later
    /// never initialises a second, conflicting group.
    pub initializer: u64,
}

/// One replicated change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Entry {
    /// Meta: a JetStream server of the cluster and its node id.
    Peer { name: String, node: u64 },
    /// Meta: a stream placed (or its config changed, same group).
    AddStream(Box<StreamAssignment>),
    /// Meta: a server removed from the cluster (`SERVER.REMOVE`); its node id is never
    /// taken back, so the server rejoins only with a new store.
    RemovePeer { name: String },
    /// Meta: a stream deleted.
    RemoveStream { account: String, stream: String },
    /// Stream: messages stored from `first_seq` on, in order.
    Msgs { first_seq: u64, msgs: Vec<WireMsg> },
    /// Stream: a purge (`STREAM.PURGE`), applied to every replica's store.
    Purge {
        filter: Option<String>,
        seq: Option<u64>,
        keep: Option<u64>,
    },
    /// Stream: messages removed (`STREAM.MSG.DELETE`, or acknowledged in an interest or
    /// work-queue stream); `erase` overwrites them.
    Remove { seqs: Vec<u64>, erase: bool },
    /// Stream: records of its store's meta table written (`Some`) or removed (`None`):
    /// its consumers' configs and states, so a new leader resumes them.
    Meta {
        records: Vec<(String, Option<Vec<u8>>)>,
    },
}

/// What applying an entry answered.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    #[default]
    Done,
    /// The entry changed nothing; the text says why (a sequence that does not follow the
    /// stream's last one: its proposer's view was stale).
    Refused(String),
}

/// The meta group's replicated state.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct MetaState {
    /// JetStream servers by name, with their node ids.
    pub peers: BTreeMap<String, u64>,
    /// Streams by account, then name.
    pub streams: BTreeMap<String, BTreeMap<String, StreamAssignment>>,
    /// Node ids of removed servers.
    #[serde(default)]
    pub removed: std::collections::BTreeSet<u64>,
}

impl MetaState {
    pub fn stream(&self, account: &str, stream: &str) -> Option<&StreamAssignment> {
        self.streams.get(account)?.get(stream)
    }

    /// Every assignment, account by account.
    pub fn assignments(&self) -> impl Iterator<Item = &StreamAssignment> {
        self.streams.values().flat_map(BTreeMap::values)
    }
}

/// Work an applied entry leaves for the server, in log order.
#[derive(Debug, Clone)]
pub enum Applied {
    Stream(Box<StreamAssignment>),
    StreamRemoved {
        account: String,
        stream: String,
        group: String,
    },
    Msgs {
        first_seq: u64,
        msgs: Vec<WireMsg>,
    },
    /// A change of a stream's store other than new messages, at log `index` (its
    /// proposer applied it already and skips it by that index).
    Op {
        index: u64,
        op: StoreOp,
    },
    /// A blank or membership entry of `node`'s leadership in `term`: a new leader's first
    /// entry is one, and once it is applied, everything its predecessors committed has
    /// been too.
    TermStart {
        term: u64,
        node: u64,
    },
    /// The machine took its state from a snapshot (installed from the leader, or stored
    /// here at the last start): what the log before it said is not replayed, so the meta
    /// applier compares its streams with the whole state, and a stream's replica catches
    /// up to `last_seq` from its leader's store.
    Reset {
        last_seq: u64,
    },
}

/// A replicated change of a stream's store.
#[derive(Debug, Clone)]
pub enum StoreOp {
    Meta(Vec<(String, Option<Vec<u8>>)>),
    Purge(crate::store::Purge),
    Remove { seqs: Vec<u64>, erase: bool },
}

/// Where applied work goes. Set after the group is opened; what is applied before is
/// held and handed over when it is set.
pub type Sink = Box<dyn Fn(Applied) + Send + Sync>;

/// The state machine of every JetStream group (a group uses the half it needs).
#[derive(Default)]
pub struct JsMachine {
    pub meta: MetaState,
    /// A stream group: the last sequence its entries stored.
    pub last_seq: u64,
    sink: Option<Sink>,
    held: Vec<Applied>,
    /// Restored from a stored snapshot: the sink gets a [`Applied::Reset`] first.
    restored: bool,
}

impl JsMachine {
    /// Sends applied work to `sink` from now on, after what was held.
    pub fn set_sink(&mut self, sink: Sink) {
        if std::mem::take(&mut self.restored) {
            sink(Applied::Reset {
                last_seq: self.last_seq,
            });
        }
        for a in self.held.drain(..) {
            sink(a);
        }
        self.sink = Some(sink);
    }

    fn emit(&mut self, a: Applied) {
        match &self.sink {
            Some(s) => s(a),
            None => self.held.push(a),
        }
    }
}

impl StateMachine<JsRaft> for JsMachine {
    fn apply(&mut self, log_id: &LogId<u64>, data: Option<&Entry>) -> Outcome {
        let Some(entry) = data else {
            self.emit(Applied::TermStart {
                term: log_id.leader_id.term,
                node: log_id.leader_id.node_id,
            });
            return Outcome::Done;
        };
        let index = log_id.index;
        match entry {
            Entry::Peer { name, node } => {
                self.meta.peers.insert(name.clone(), *node);
                Outcome::Done
            }
            Entry::RemovePeer { name } => {
                if let Some(node) = self.meta.peers.remove(name) {
                    self.meta.removed.insert(node);
                }
                Outcome::Done
            }
            Entry::AddStream(a) => {
                if let Some(have) = self.meta.stream(&a.account, &a.stream)
                    && have.group != a.group
                {
                    return Outcome::Refused("stream name already in use".into());
                }
                self.meta
                    .streams
                    .entry(a.account.clone())
                    .or_default()
                    .insert(a.stream.clone(), (**a).clone());
                self.emit(Applied::Stream(a.clone()));
                Outcome::Done
            }
            Entry::RemoveStream { account, stream } => {
                let Some(streams) = self.meta.streams.get_mut(account) else {
                    return Outcome::Refused("stream not found".into());
                };
                let Some(gone) = streams.remove(stream) else {
                    return Outcome::Refused("stream not found".into());
                };
                self.emit(Applied::StreamRemoved {
                    account: account.clone(),
                    stream: stream.clone(),
                    group: gone.group,
                });
                Outcome::Done
            }
            Entry::Purge { filter, seq, keep } => {
                self.emit(Applied::Op {
                    index,
                    op: StoreOp::Purge(crate::store::Purge {
                        filter: filter.clone(),
                        seq: *seq,
                        keep: *keep,
                    }),
                });
                Outcome::Done
            }
            Entry::Remove { seqs, erase } => {
                self.emit(Applied::Op {
                    index,
                    op: StoreOp::Remove {
                        seqs: seqs.clone(),
                        erase: *erase,
                    },
                });
                Outcome::Done
            }
            Entry::Meta { records } => {
                self.emit(Applied::Op {
                    index,
                    op: StoreOp::Meta(records.clone()),
                });
                Outcome::Done
            }
            Entry::Msgs { msgs, .. } if msgs.is_empty() => Outcome::Done,
            Entry::Msgs { first_seq, msgs } => {
                // The first entry sets where the stream starts (`first_seq` of its config);
                // every later one must follow on, or its proposer counted from a stale
                // state and nothing of it is stored.
                if self.last_seq != 0 && *first_seq != self.last_seq + 1 {
                    return Outcome::Refused(format!(
                        "sequence {first_seq} does not follow {}",
                        self.last_seq
                    ));
                }
                self.last_seq = first_seq + msgs.len() as u64 - 1;
                self.emit(Applied::Msgs {
                    first_seq: *first_seq,
                    msgs: msgs.clone(),
                });
                Outcome::Done
            }
        }
    }

    fn snapshot(&self) -> Result<Vec<u8>, natrix_raft::StoreError> {
        serde_json::to_vec(&(&self.meta, self.last_seq))
            .map_err(|e| natrix_raft::StoreError::Machine(e.to_string()))
    }

    fn restore(bytes: &[u8]) -> Result<Self, natrix_raft::StoreError> {
        let (meta, last_seq): (MetaState, u64) = serde_json::from_slice(bytes)
            .map_err(|e| natrix_raft::StoreError::Machine(e.to_string()))?;
        Ok(Self {
            meta,
            last_seq,
            restored: true,
            ..Self::default()
        })
    }

    fn install(&mut self, restored: Self) {
        self.meta = restored.meta;
        self.last_seq = restored.last_seq;
        self.emit(Applied::Reset {
            last_seq: self.last_seq,
        });
    }
}

impl From<&crate::store::NewMsg> for WireMsg {
    fn from(m: &crate::store::NewMsg) -> Self {
        Self {
            subject: m.subject.clone(),
            ts: m.ts,
            hdr: m.hdr.to_vec(),
            data: m.data.to_vec(),
            ttl: m.ttl,
        }
    }
}

impl From<WireMsg> for crate::store::NewMsg {
    fn from(m: WireMsg) -> Self {
        Self {
            subject: m.subject,
            ts: m.ts,
            hdr: m.hdr.into(),
            data: m.data.into(),
            ttl: m.ttl,
        }
    }
}
