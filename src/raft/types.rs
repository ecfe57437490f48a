//! Vocabulary of the consensus core: newtypes for what must not be mixed, log
//! entries and the hard state that must be durable before anything depending on
//! it leaves the node.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A Raft term (§5.1). Terms only grow on a node.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct Term(pub u64);

/// A position in the replicated log (1-based; 0 means "before the first entry").
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct LogIndex(pub u64);

/// A cluster member's id, as written in the config.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct NodeId(pub u64);

impl std::fmt::Display for Term {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
impl std::fmt::Display for LogIndex {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}
impl std::fmt::Display for NodeId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

/// What an entry carries.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum EntryKind {
    /// The empty entry a new leader appends at the start of its term (§8), so that
    /// entries of earlier terms can commit and reads can be served.
    Noop,
    /// Client data: opaque bytes for the state machine.
    Normal,
}

/// One log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The term of the leader that created the entry.
    pub term: Term,
    /// Its position in the log.
    pub index: LogIndex,
    /// No-op or client data.
    pub kind: EntryKind,
    /// Opaque payload (empty for `Noop`).
    pub data: Bytes,
}

/// The state Figure 2 calls "persistent state on all servers", plus the commit
/// index so a restart can replay committed entries without waiting for a leader.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct HardState {
    /// Latest term this server has seen.
    pub term: Term,
    /// Candidate that received this server's vote in `term`, if any.
    pub voted_for: Option<NodeId>,
    /// Highest index known committed when this was written.
    pub commit_index: LogIndex,
}

/// Where a snapshot of the state machine stands in the log: it replaces every
/// entry up to and including `last_included_index` (§7).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotMeta {
    /// Index of the last entry the snapshot covers.
    pub last_included_index: LogIndex,
    /// Term of that entry.
    pub last_included_term: Term,
    /// The voting members as of that entry.
    pub voters: Vec<NodeId>,
}

/// What a node restores from its store at start.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct InitialState {
    /// The last durable hard state.
    pub hard_state: HardState,
    /// The newest durable snapshot, if any: the state machine is restored from it
    /// and `entries` continue after it.
    pub snapshot: Option<SnapshotMeta>,
    /// The durable log, contiguous from the entry after the snapshot (or from
    /// index 1 without one).
    pub entries: Vec<Entry>,
}
