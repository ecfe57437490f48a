//! Durable storage of the Raft log and hard state.
//!
//! [`LogStore`] is the interface the node driver persists through; its one
//! implementation is [`Wal`] (`wal.rs`): segmented, checksummed files with
//! group commit and torn-tail recovery (format, durability contract and
//! recovery rules are in its module doc). Every file access goes through
//! [`StorageFs`] (`fs.rs`): real files, or [`FaultyFs`], the one crash model
//! the tests and the deterministic simulator use (lost unsynced data, torn
//! appends, failing fsyncs and writes).
//!
//! [`identity`] records which cluster and node a data directory belongs to.
//!
//! This module does blocking I/O: the driver calls it from a dedicated thread
//! or `spawn_blocking`. It never interprets entries (that is `kv/`) and never
//! decides what is committed (that is `raft/`).

pub mod backup;
pub mod fs;
pub mod identity;
pub mod snapshot;
pub mod wal;

pub use fs::{real_fs, FaultyFs, RealFs, SharedFs, StorageFile, StorageFs};
pub use snapshot::{SnapshotError, SnapshotReader, SnapshotStore, SnapshotWriter};
pub use wal::{Compaction, DataDirLock, Wal, WalOptions, WalStats};

use crate::raft::{Entry, HardState, LogIndex};
use std::path::PathBuf;

/// Where the node persists its log and hard state. Nothing written is durable
/// until [`LogStore::sync`] returns `Ok`.
pub trait LogStore: Send {
    /// Appends `entries` (contiguous, ascending). If `entries[0].index` is already
    /// stored, the stored suffix from that index is discarded first.
    ///
    /// # Errors
    /// An I/O failure; the caller must stop the node.
    fn append(&mut self, entries: &[Entry]) -> Result<(), WalError>;
    /// Records a new hard state.
    ///
    /// # Errors
    /// An I/O failure; the caller must stop the node.
    fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), WalError>;
    /// Makes everything written so far durable (fsync).
    ///
    /// # Errors
    /// An I/O failure; the caller must stop the node (never retry an fsync).
    fn sync(&mut self) -> Result<(), WalError>;
}

/// WAL errors, each naming the file and, for bad records, the offset.
#[derive(Debug, thiserror::Error)]
pub enum WalError {
    /// An I/O call failed. If it was a write or fsync the store is poisoned.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
    /// Damage that recovery must not repair on its own (see `wal.rs`): the node
    /// must not start until an operator repairs the data directory.
    #[error("corrupt WAL {path} at byte offset {offset}: {reason}")]
    Corrupt {
        /// The segment file.
        path: PathBuf,
        /// Byte offset of the bad record in that file.
        offset: u64,
        /// What is wrong.
        reason: String,
    },
    /// Another process (or another `Wal` in this one) holds the data directory.
    #[error("WAL directory is locked by another process: {path}")]
    Locked {
        /// The lock file.
        path: PathBuf,
    },
    /// An earlier write or fsync failed; the store refuses all further use and
    /// the node must stop.
    #[error("WAL {path} is unusable after an earlier write or fsync failure")]
    Poisoned {
        /// The data directory.
        path: PathBuf,
    },
    /// A log reset was asked for while a [`wal::Compaction`] taken earlier
    /// had not yet run: the caller must let it finish first.
    #[error("WAL {path}: a compaction is still deleting old segments")]
    CompactionRunning {
        /// The data directory.
        path: PathBuf,
    },
    /// One entry is too large to be a record.
    #[error("entry {index} encodes to {len_bytes} bytes, above the {max_bytes}-byte record limit")]
    RecordTooLarge {
        /// The entry's index.
        index: LogIndex,
        /// Its encoded size.
        len_bytes: usize,
        /// The limit.
        max_bytes: usize,
    },
    /// Encoding a record failed.
    #[error("encoding a WAL record: {source}")]
    Encode {
        /// The encoder's error.
        source: postcard::Error,
    },
}
