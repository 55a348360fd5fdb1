//! Errors of the redb-backed Raft storage.
//!
//! Every storage call returns openraft's `StorageError`; inside the crate the failure is
//! one of [`StoreError`], which says what went wrong (redb, encoding, a closed writer) and
//! is carried into openraft as the source of a `StorageIOError` naming what was being
//! read or written.

use std::sync::Arc;

use openraft::{AnyError, ErrorSubject, ErrorVerb, NodeId, StorageError, StorageIOError};

/// What can fail in the store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// redb failed: I/O, a corrupt file, a full disk.
    #[error("redb: {0}")]
    Db(#[from] redb::Error),
    /// A value could not be encoded or decoded (a corrupt or foreign record).
    #[error("codec: {0}")]
    Codec(#[from] postcard::Error),
    /// The writer thread is gone (the database was closed or the thread panicked), so
    /// nothing more can be made durable.
    #[error("the writer thread of the raft database has stopped")]
    WriterGone,
    /// The batch this write was part of failed to commit; the write is not durable.
    #[error("batch commit failed: {0}")]
    Batch(Arc<StoreError>),
    /// Other I/O: reading a snapshot stream, starting the writer thread.
    #[error("I/O: {0}")]
    Io(#[from] std::io::Error),
    /// The state machine refused a snapshot's contents.
    #[error("state machine: {0}")]
    Machine(String),
    /// A group name is not acceptable (empty).
    #[error("invalid group name {0:?}")]
    InvalidGroupName(String),
}

impl StoreError {
    /// Wraps the error for openraft, naming what was being done.
    pub(crate) fn into_storage<NID: NodeId>(
        self,
        subject: ErrorSubject<NID>,
        verb: ErrorVerb,
    ) -> StorageError<NID> {
        StorageIOError::new(subject, verb, AnyError::new(&self)).into()
    }

    /// An `std::io::Error` view, for openraft's flush callbacks.
    pub(crate) fn to_io(&self) -> std::io::Error {
        std::io::Error::other(self.to_string())
    }
}

/// Converts redb's many error types into [`StoreError`] through `redb::Error`.
pub(crate) trait DbResultExt<T> {
    fn db(self) -> Result<T, StoreError>;
}

impl<T, E: Into<redb::Error>> DbResultExt<T> for Result<T, E> {
    fn db(self) -> Result<T, StoreError> {
        self.map_err(|e| StoreError::Db(e.into()))
    }
}
