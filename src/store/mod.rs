//! Durable storage of the Raft log and hard state (SKELETON: being written).

use crate::raft::{Entry, HardState};

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
    /// An I/O call failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done.
        op: &'static str,
        /// The file.
        path: std::path::PathBuf,
        /// The OS error.
        source: std::io::Error,
    },
}
