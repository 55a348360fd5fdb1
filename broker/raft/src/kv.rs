//! A small key-value state machine and its openraft type config: what the storage
//! conformance suite, the durability tests and the in-process cluster test run on, until
//! the JetStream state machine exists.

use std::collections::BTreeMap;
use std::io::Cursor;

use openraft::LogId;
use serde::{Deserialize, Serialize};

use crate::codec::{decode, encode};
use crate::error::StoreError;
use crate::state_machine::StateMachine;

/// A write: set `key` to `value`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvRequest {
    pub key: String,
    pub value: String,
}

/// The answer to an applied entry: the key's previous value, if any.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvResponse {
    pub previous: Option<String>,
}

openraft::declare_raft_types!(
    /// openraft types for [`KvMachine`]: u64 node ids, `BasicNode`, snapshots in memory.
    pub KvConfig:
        D = KvRequest,
        R = KvResponse,
);

/// A map from keys to values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct KvMachine {
    pub data: BTreeMap<String, String>,
}

impl StateMachine<KvConfig> for KvMachine {
    fn apply(&mut self, _log_id: &LogId<u64>, data: Option<&KvRequest>) -> KvResponse {
        match data {
            Some(req) => KvResponse {
                previous: self.data.insert(req.key.clone(), req.value.clone()),
            },
            None => KvResponse::default(),
        }
    }

    fn snapshot(&self) -> Result<Vec<u8>, StoreError> {
        encode(&self.data)
    }

    fn restore(bytes: &[u8]) -> Result<Self, StoreError> {
        Ok(Self {
            data: decode(bytes)?,
        })
    }
}
