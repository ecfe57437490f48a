//! The consensus core: a pure, deterministic Raft state machine.
//!
//! # What it owns, what it never does
//!
//! The core owns Figure 2's state (term, vote, log, commit index, per-follower
//! `next_index`/`match_index`) and every protocol decision. It never does I/O,
//! never reads a clock, never spawns a thread and never uses global randomness:
//! time is [`Raft::tick`], randomness is the seed given to [`Raft::new`]. So a
//! whole cluster can run in one test from a seed and replay exactly.
//!
//! Files, one per concept: `log.rs` (the log view and its watermarks),
//! `progress.rs` (per-follower replication progress), `election.rs` (roles,
//! timers, RequestVote), `replication.rs` (AppendEntries, heartbeats, commit),
//! `read_index.rs` (§6.4 reads), `ready.rs` (the hand-off below).
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
//!
//! Readies are processed one at a time, in the order they were returned.
//! Why this is enough for the persistence rule (never send a vote or an append
//! acknowledgement before the term, vote and entries it depends on are
//! durable): a message is queued only after the state it depends on changed,
//! and it leaves only in a Ready that carries that change (or follows one that
//! did), whose persistence step comes first.
//!
//! ```text
//!  step(RequestVote) ─► voted_for = c, response queued
//!  ready()           ─► { hard_state: voted_for = c, messages: [response] }
//!  driver            ─► fsync hard state ─► send response ─► advance()
//! ```
//!
//! The leader appends to its own log in parallel with replicating (thesis
//! §10.2.1): its entries and the AppendEntries carrying them are in the same
//! Ready, but it counts itself toward a majority only for entries acknowledged
//! by [`Raft::advance`], so the commit index may move inside `advance()`.
//!
//! A restart passes the durable hard state and log to [`Raft::new`]; the first
//! Ready replays `committed_entries` from index 1 through the restored commit
//! index, so the driver rebuilds its state machine from them.
//!
//! `hard_state` is `Some` when term, vote or commit index changed since the
//! previous `ready()`; entries, messages, committed entries and read states are
//! each handed out once.
//!
//! # Replication and reads, in short
//!
//! A new leader appends a no-op (§8) and probes each follower one
//! AppendEntries at a time, backing off a whole term per rejection with the
//! follower's conflict hint (§5.3). Once a follower acks, replication to it is
//! pipelined: entries proposed between two `ready()` calls leave in the next
//! Ready, bounded by `max_entries_per_append`/`max_bytes_per_append` per
//! message and [`MAX_INFLIGHT_APPENDS`] unacknowledged messages; a rejection
//! falls back to probing. Heartbeats (every `heartbeat_interval_ticks`) carry
//! entries to followers that are behind and the commit index to all.
//!
//! Reads follow §6.4 (details in `read_index.rs`): queued until the leader
//! commits an entry of its term, then `index = commit_index`, confirmed by one
//! heartbeat round acked by a majority; reads arriving between two `ready()`
//! calls share a round. A leader that steps down drops unconfirmed reads.
//!
//! # Invariants (violations panic with node id, term and indexes)
//!
//! - Election safety: at most one leader per term; at most one vote per term.
//! - Log matching and leader completeness: committed entries are never
//!   truncated; the commit index never decreases.
//! - The leader commits only entries of its own term by counting (§5.4.2).
//! - `last_applied <= commit_index <= last_log_index`.
//!
//! Not yet here (room is left for them): pre-vote, check-quorum, leadership
//! transfer, snapshots, membership changes.

mod election;
mod log;
pub mod message;
mod progress;
mod read_index;
mod ready;
mod replication;
#[cfg(test)]
mod tests;
pub mod types;

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use rand::rngs::ChaCha8Rng;
use rand::SeedableRng;

pub use message::{Envelope, Message};
pub use progress::MAX_INFLIGHT_APPENDS;
pub use types::{Entry, EntryKind, HardState, InitialState, LogIndex, NodeId, SnapshotMeta, Term};

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
///
/// Figure 2's state lives here; the behaviour is split by concept:
/// `election.rs` (roles, RequestVote), `replication.rs` (AppendEntries, commit),
/// `read_index.rs` (§6.4 reads) and `ready.rs` (the hand-off to the driver).
pub struct Raft {
    /// This node.
    id: NodeId,
    /// Limits and timeouts.
    config: Config,
    /// Latest term this node has seen (persistent, Figure 2).
    term: Term,
    /// Candidate voted for in `term` (persistent, Figure 2).
    voted_for: Option<NodeId>,
    /// Current role.
    role: Role,
    /// Leader of `term`, once known.
    leader: Option<NodeId>,
    /// The log and its commit/apply/persist watermarks.
    log: log::RaftLog,
    /// Seeded source of election timeouts (the only randomness in the core).
    rng: ChaCha8Rng,
    /// Ticks since the election timer was last reset (followers, candidates).
    election_elapsed_ticks: u32,
    /// This round's randomized timeout in [min, max) ticks (§5.2).
    election_timeout_ticks: u32,
    /// Ticks since the leader last broadcast AppendEntries.
    heartbeat_elapsed_ticks: u32,
    /// Candidate: votes received in `term`, self included.
    votes_granted: BTreeSet<NodeId>,
    /// Leader: replication progress of every other voter.
    progress: BTreeMap<NodeId, progress::Progress>,
    /// Leader: new entries wait to be sent at the next `ready()`, so proposals
    /// made between two `ready()` calls share AppendEntries messages.
    replicate_pending: bool,
    /// The commit index moved on the leader: followers learn it in the next
    /// Ready instead of waiting for a heartbeat, so their apply (and the reads
    /// waiting on it) does not lag by a heartbeat interval.
    commit_broadcast_pending: bool,
    /// Leader: ReadIndex bookkeeping (§6.4).
    reads: read_index::ReadQueue,
    /// Outbound messages, released only through `ready()`.
    messages: Vec<Envelope>,
    /// The hard state most recently handed out (or restored).
    handed_out_hard_state: HardState,
}

impl Raft {
    /// Builds a node from its durable state; `seed` drives election timeouts.
    ///
    /// The node starts as a follower. `initial.hard_state.commit_index` is
    /// restored (clamped to the log's end), so the first [`Ready`] replays the
    /// committed entries from index 1 (`last_applied` starts at 0). If the log
    /// holds an entry newer than the stored term (a lost hard state write), the
    /// term is raised to it with no vote.
    ///
    /// # Errors
    /// [`Error::InvalidConfig`] when `voters` lacks `id` or has duplicates, the
    /// timeouts are inconsistent, a limit is zero, or `initial.entries` is not
    /// contiguous from index 1 with non-decreasing terms.
    pub fn new(config: Config, initial: InitialState, seed: u64) -> Result<Raft, Error> {
        validate(&config, &initial)?;
        let InitialState {
            hard_state,
            entries,
            snapshot,
        } = initial;
        if snapshot.is_some() {
            // Restoring from a snapshot needs a log that starts past index 1.
            return Err(Error::InvalidConfig(
                "restoring from a snapshot is not supported yet",
            ));
        }
        // An entry of a newer term than the stored one means that term was seen
        // (its hard state write was lost); never run behind our own log.
        let last_term = entries.last().map_or(Term(0), |e| e.term);
        let (term, voted_for) = if last_term > hard_state.term {
            (last_term, None)
        } else {
            (hard_state.term, hard_state.voted_for)
        };
        let mut raft = Raft {
            id: config.id,
            term,
            voted_for,
            role: Role::Follower,
            leader: None,
            log: log::RaftLog::restore(config.id, entries, hard_state.commit_index),
            rng: ChaCha8Rng::seed_from_u64(seed),
            election_elapsed_ticks: 0,
            election_timeout_ticks: config.election_timeout_min_ticks,
            heartbeat_elapsed_ticks: 0,
            votes_granted: BTreeSet::new(),
            progress: BTreeMap::new(),
            replicate_pending: false,
            commit_broadcast_pending: false,
            reads: read_index::ReadQueue::default(),
            messages: Vec::new(),
            handed_out_hard_state: hard_state,
            config,
        };
        // If the log view clamped the restored commit index, the hard state now
        // differs from `handed_out_hard_state` and the next Ready rewrites it.
        raft.reset_election_timer();
        Ok(raft)
    }

    /// Advances logical time by one tick: followers and candidates count toward
    /// an election (§5.2), the leader toward its next heartbeat.
    pub fn tick(&mut self) {
        match self.role {
            Role::Leader => self.tick_heartbeat(),
            Role::Follower | Role::Candidate => self.tick_election(),
        }
    }

    /// Feeds a message from a peer.
    ///
    /// A message with a higher term first turns this node into a follower of
    /// that term (§5.1); one with a lower term is answered with our term
    /// (requests) or ignored (responses).
    ///
    /// # Errors
    /// [`Error::UnknownPeer`] when the sender is not another voter or the message
    /// is not for us.
    pub fn step(&mut self, envelope: Envelope) -> Result<(), Error> {
        let Envelope { from, to, message } = envelope;
        if to != self.id || from == self.id || !self.config.voters.contains(&from) {
            return Err(Error::UnknownPeer { from, to });
        }
        let term = message.term();
        if term > self.term {
            // §5.1: a higher term means our term is stale; the sender of an
            // AppendEntries is the leader of that term.
            let leader = matches!(message, Message::AppendEntries { .. }).then_some(from);
            self.become_follower(term, leader);
        } else if term < self.term {
            self.answer_stale(from, &message);
            return Ok(());
        }
        match message {
            Message::RequestVote {
                last_log_index,
                last_log_term,
                ..
            } => self.handle_request_vote(from, last_log_index, last_log_term),
            Message::RequestVoteResponse { vote_granted, .. } => {
                self.handle_request_vote_response(from, vote_granted)
            }
            Message::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                leader_commit,
                read_ctx,
                ..
            } => self.handle_append_entries(
                from,
                replication::AppendRequest {
                    prev_log_index,
                    prev_log_term,
                    entries,
                    leader_commit,
                    read_ctx,
                },
            ),
            Message::AppendEntriesResponse {
                success,
                match_index,
                conflict_index,
                conflict_term,
                read_ctx,
                ..
            } => self.handle_append_entries_response(
                from,
                replication::AppendReply {
                    success,
                    match_index,
                    conflict_index,
                    conflict_term,
                    read_ctx,
                },
            ),
        }
        Ok(())
    }

    /// Appends client data to the leader's log; returns its index and term.
    ///
    /// The entry is replicated from the next [`Raft::ready`]. It is committed
    /// only if an entry with the same index *and term* is later applied; a
    /// different term at that index means the proposal was lost.
    ///
    /// # Errors
    /// [`Error::NotLeader`] on a follower or candidate.
    pub fn propose(&mut self, data: Bytes) -> Result<(LogIndex, Term), Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        let index = self.append_as_leader(EntryKind::Normal, data);
        Ok((index, self.term))
    }

    /// Starts a ReadIndex read tagged `ctx` (§6.4); the answer comes as a
    /// [`ReadState`] in a later [`Ready`]. Reads are queued until the leader has
    /// committed an entry of its own term, and all reads arriving between two
    /// `ready()` calls share one confirmation round. Reads still pending when
    /// the node stops being leader are dropped (the term/role in [`Status`]
    /// tells the driver to fail them).
    ///
    /// # Errors
    /// [`Error::NotLeader`] on a follower or candidate.
    pub fn read_index(&mut self, ctx: u64) -> Result<(), Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        self.start_read(ctx);
        Ok(())
    }

    /// Externally visible state.
    pub fn status(&self) -> Status {
        Status {
            id: self.id,
            role: self.role,
            term: self.term,
            leader: self.leader,
            commit_index: self.log.commit_index(),
            last_applied: self.log.last_applied(),
            last_log_index: self.log.last_index(),
        }
    }

    /// The durable part of our state, as it should be written now.
    fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: self.voted_for,
            commit_index: self.log.commit_index(),
        }
    }

    /// Votes needed for a majority of the voters (self included).
    fn quorum(&self) -> usize {
        self.config.voters.len() / 2 + 1
    }

    /// Every voter but us.
    fn peers(&self) -> Vec<NodeId> {
        self.config
            .voters
            .iter()
            .copied()
            .filter(|&v| v != self.id)
            .collect()
    }

    /// Queues a message; it leaves only through the next `ready()`.
    fn send(&mut self, to: NodeId, message: Message) {
        self.messages.push(Envelope {
            from: self.id,
            to,
            message,
        });
    }
}

/// Checks the configuration and the restored state.
fn validate(config: &Config, initial: &InitialState) -> Result<(), Error> {
    if !config.voters.contains(&config.id) {
        return Err(Error::InvalidConfig("voters must include this node's id"));
    }
    let unique: BTreeSet<NodeId> = config.voters.iter().copied().collect();
    if unique.len() != config.voters.len() {
        return Err(Error::InvalidConfig("voters contains a duplicate id"));
    }
    if config.election_timeout_min_ticks == 0
        || config.election_timeout_max_ticks <= config.election_timeout_min_ticks
    {
        return Err(Error::InvalidConfig(
            "election timeout needs 0 < election_timeout_min_ticks < election_timeout_max_ticks",
        ));
    }
    if config.heartbeat_interval_ticks == 0
        || config.heartbeat_interval_ticks >= config.election_timeout_min_ticks
    {
        return Err(Error::InvalidConfig(
            "heartbeat_interval_ticks must be positive and below election_timeout_min_ticks",
        ));
    }
    if config.max_entries_per_append == 0 || config.max_bytes_per_append == 0 {
        return Err(Error::InvalidConfig(
            "max_entries_per_append and max_bytes_per_append must be positive",
        ));
    }
    let mut prev_term = Term(0);
    for (i, entry) in initial.entries.iter().enumerate() {
        if entry.index != LogIndex(i as u64 + 1) {
            return Err(Error::InvalidConfig(
                "initial entries are not contiguous from index 1",
            ));
        }
        if entry.term < prev_term {
            return Err(Error::InvalidConfig("initial entry terms decrease"));
        }
        prev_term = entry.term;
    }
    Ok(())
}
