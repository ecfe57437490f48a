//! The consensus core: a pure, deterministic Raft state machine (no I/O, no
//! clocks, no threads, no global randomness).
//!
//! API SKELETON — the implementation is being written; signatures are fixed.
//!
//! # The Ready contract
//!
//! Inputs: [`Raft::tick`], [`Raft::step`], [`Raft::propose`], [`Raft::read_index`].
//! Output: [`Raft::ready`] returns a [`Ready`]; the driver must, in this order:
//! 1. persist `hard_state` (if any) and `entries` (truncating the stored log from
//!    `entries[0].index` first if that index is already stored) and fsync;
//! 2. send `messages`;
//! 3. apply `committed_entries` in order;
//! 4. serve each `read_states` entry once its `index` has been applied;
//! 5. call [`Raft::advance`] with the same `Ready`.

pub mod message;
pub mod types;

use bytes::Bytes;

pub use message::{Envelope, Message};
pub use types::{Entry, EntryKind, HardState, InitialState, LogIndex, NodeId, Term};

/// Core configuration (times in ticks).
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id.
    pub id: NodeId,
    /// Every voting member, this node included.
    pub voters: Vec<NodeId>,
    /// Lower bound of the randomized election timeout.
    pub election_timeout_min_ticks: u32,
    /// Upper bound (exclusive) of the randomized election timeout.
    pub election_timeout_max_ticks: u32,
    /// How often a leader sends AppendEntries when idle.
    pub heartbeat_interval_ticks: u32,
    /// Most entries in one AppendEntries.
    pub max_entries_per_append: usize,
    /// Most payload bytes in one AppendEntries (at least one entry is always sent).
    pub max_bytes_per_append: usize,
}

/// A node's role (§5.1).
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub enum Role {
    /// Passive: answers leaders and candidates.
    Follower,
    /// Asking for votes.
    Candidate,
    /// Handles client requests and replicates.
    Leader,
}

/// A read that became safe to serve: once `index` is applied, a read tagged `ctx`
/// observes every write acknowledged before the read started.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ReadState {
    /// The caller's tag passed to [`Raft::read_index`].
    pub ctx: u64,
    /// The commit index recorded when the read arrived.
    pub index: LogIndex,
}

/// Everything the driver must do, in the order documented on the module.
#[derive(Debug, Default)]
pub struct Ready {
    /// Hard state to persist, if it changed.
    pub hard_state: Option<HardState>,
    /// Entries to append durably (may overwrite a conflicting suffix).
    pub entries: Vec<Entry>,
    /// Messages to send once the above is durable.
    pub messages: Vec<Envelope>,
    /// Entries now committed, to apply in order.
    pub committed_entries: Vec<Entry>,
    /// Reads confirmed by a quorum.
    pub read_states: Vec<ReadState>,
}

/// A snapshot of the core's externally visible state.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Status {
    /// This node.
    pub id: NodeId,
    /// Current role.
    pub role: Role,
    /// Current term.
    pub term: Term,
    /// Known leader of the current term.
    pub leader: Option<NodeId>,
    /// Highest committed index.
    pub commit_index: LogIndex,
    /// Highest index handed out for apply.
    pub last_applied: LogIndex,
    /// Last index in the log.
    pub last_log_index: LogIndex,
}

/// Errors from the core's inputs.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum Error {
    /// The request needs the leader.
    #[error("not the leader (leader: {leader:?})")]
    NotLeader {
        /// Leader of the current term, if known.
        leader: Option<NodeId>,
    },
    /// A message from or to a node that is not a member.
    #[error("message from {from} to {to}: not a member of this cluster")]
    UnknownPeer {
        /// Sender.
        from: NodeId,
        /// Recipient.
        to: NodeId,
    },
    /// The configuration is invalid.
    #[error("invalid raft config: {0}")]
    InvalidConfig(&'static str),
}

/// The Raft state machine for one node.
pub struct Raft {}

impl Raft {
    /// Builds a node from its durable state; `seed` drives election timeouts.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `voters` lacks `id` or timeouts are inconsistent.
    pub fn new(config: Config, initial: InitialState, seed: u64) -> Result<Raft, Error> {
        todo!()
    }
    /// Advances logical time by one tick.
    pub fn tick(&mut self) {
        todo!()
    }
    /// Feeds a message from a peer.
    ///
    /// # Errors
    /// [`Error::UnknownPeer`] when the sender is not a voter or the message is not for us.
    pub fn step(&mut self, envelope: Envelope) -> Result<(), Error> {
        todo!()
    }
    /// Appends client data to the leader's log; returns its index and term.
    ///
    /// # Errors
    /// [`Error::NotLeader`] on a follower or candidate.
    pub fn propose(&mut self, data: Bytes) -> Result<(LogIndex, Term), Error> {
        todo!()
    }
    /// Starts a ReadIndex read tagged `ctx` (§6.4); the answer comes as a
    /// [`ReadState`] in a later [`Ready`].
    ///
    /// # Errors
    /// [`Error::NotLeader`] on a follower or candidate.
    pub fn read_index(&mut self, ctx: u64) -> Result<(), Error> {
        todo!()
    }
    /// True when [`Raft::ready`] has something to do.
    pub fn has_ready(&self) -> bool {
        todo!()
    }
    /// Collects the pending work; see the module docs for the order.
    pub fn ready(&mut self) -> Ready {
        todo!()
    }
    /// Acknowledges that a [`Ready`] was fully processed.
    pub fn advance(&mut self, ready: Ready) {
        todo!()
    }
    /// Externally visible state.
    pub fn status(&self) -> Status {
        todo!()
    }
}
