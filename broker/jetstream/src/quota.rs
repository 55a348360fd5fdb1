//! The bytes an account, and the whole server, may store: nats-server's usage limits,
//! checked on every publish.
//!
//! Stream creation checks reservations (`max_bytes` against `max_file`/`max_mem`); these
//! are the limits on what is actually stored, by every stream of the account. Each
//! stream adds the change of its own byte count to its account's and the server's
//! [`Usage`] whenever it publishes its state, so a check costs two atomic loads, not a
//! walk over every stream.

use std::sync::Arc;
use std::sync::atomic::{AtomicI64, Ordering};

use crate::account::AccountLimits;
use crate::api::errors::{self, ApiError};
use crate::api::types::StorageType;

/// Bytes stored, by storage type.
#[derive(Debug, Default)]
pub struct Usage {
    memory: AtomicI64,
    store: AtomicI64,
}

impl Usage {
    fn of(&self, storage: StorageType) -> &AtomicI64 {
        match storage {
            StorageType::Memory => &self.memory,
            StorageType::File => &self.store,
        }
    }

    pub fn get(&self, storage: StorageType) -> i64 {
        self.of(storage).load(Ordering::Relaxed)
    }

    fn add(&self, storage: StorageType, delta: i64) {
        self.of(storage).fetch_add(delta, Ordering::Relaxed);
    }
}

/// What one stream checks its publishes against.
#[derive(Debug)]
pub struct Quota {
    pub account: Arc<Usage>,
    pub server: Arc<Usage>,
    pub limits: AccountLimits,
    pub server_max_memory: i64,
    pub server_max_store: i64,
}

impl Quota {
    /// The error a publish gets if storing `adding` more bytes (the message, and what
    /// the stream stored that its usage does not count yet) would take `storage` over a
    /// limit.
    pub fn exceeded(&self, storage: StorageType, adding: i64) -> Option<ApiError> {
        let (server_max, stream_max, account_max) = match storage {
            StorageType::Memory => (
                self.server_max_memory,
                self.limits.memory_max_stream_bytes,
                self.limits.max_memory,
            ),
            StorageType::File => (
                self.server_max_store,
                self.limits.storage_max_stream_bytes,
                self.limits.max_store,
            ),
        };
        if server_max >= 0 && self.server.get(storage) + adding > server_max {
            return Some(errors::insufficient_resources());
        }
        let total = self.account.get(storage) + adding;
        // nats-server compares the account's whole usage with the per-stream maximum too.
        if (stream_max > 0 && total > stream_max) || (account_max >= 0 && total > account_max) {
            return Some(errors::account_resources_exceeded());
        }
        None
    }

    /// Adds a stream's change in stored bytes to the account's and the server's usage.
    pub fn add(&self, storage: StorageType, delta: i64) {
        if delta != 0 {
            self.account.add(storage, delta);
            self.server.add(storage, delta);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn quota(limits: AccountLimits, server_max: i64) -> Quota {
        Quota {
            account: Arc::default(),
            server: Arc::default(),
            limits,
            server_max_memory: server_max,
            server_max_store: server_max,
        }
    }

    #[test]
    fn a_publish_that_would_go_over_a_limit_is_refused() {
        let q = quota(
            AccountLimits {
                max_store: 100,
                ..AccountLimits::default()
            },
            1_000,
        );
        let file = StorageType::File;
        assert!(q.exceeded(file, 0).is_none());
        q.add(file, 100);
        assert!(q.exceeded(file, 0).is_none(), "at the limit is not over it");
        assert_eq!(
            q.exceeded(file, 1).map(|e| e.err_code),
            Some(errors::account_resources_exceeded().err_code)
        );
        // Memory is counted apart and unlimited here.
        assert!(q.exceeded(StorageType::Memory, 500).is_none());
        // The server's own limit comes first.
        assert_eq!(
            q.exceeded(file, 2_000).map(|e| e.err_code),
            Some(errors::insufficient_resources().err_code)
        );
        q.add(file, -100);
        assert!(q.exceeded(file, 100).is_none());
    }

    #[test]
    fn the_per_stream_maximum_applies_to_the_account_total_as_in_nats_server() {
        let q = quota(
            AccountLimits {
                memory_max_stream_bytes: 50,
                ..AccountLimits::default()
            },
            -1,
        );
        assert!(q.exceeded(StorageType::Memory, 50).is_none());
        assert!(q.exceeded(StorageType::Memory, 51).is_some());
        assert!(q.exceeded(StorageType::File, 1 << 40).is_none());
    }
}
