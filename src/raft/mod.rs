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
//! Files, one per concept: `log.rs` (the log view, its snapshot offset and
//! watermarks), `progress.rs` (per-follower replication progress),
//! `election.rs` (roles, timers, pre-vote, RequestVote), `check_quorum.rs`
//! (check-quorum, leader stickiness), `replication.rs` (AppendEntries,
//! heartbeats, commit), `snapshot.rs` (compaction, InstallSnapshot),
//! `transfer.rs` (leadership transfer), `read_index.rs` (§6.4 reads and the
//! lease), `ready.rs` (the hand-off below), `validate.rs` (the checks every
//! inbound message passes before [`Raft::step`] acts on it: what a faulty or
//! hostile member's message is refused for), `faults.rs` (test-only rule
//! breaks for the simulator's self-test).
//!
//! # The Ready contract
//!
//! Inputs: [`Raft::tick`], [`Raft::step`], [`Raft::propose`],
//! [`Raft::read_index`], [`Raft::transfer_leader`], [`Raft::compact`], and
//! [`Raft::on_persisted`] (storage completions).
//! Output: [`Raft::ready`] returns a [`Ready`]. The simplest correct driver
//! (the core's own tests' in-memory network) does, in this order:
//! 0. if `snapshot` is `Some(meta)`: install the state-machine data received
//!    for it (streamed earlier, see InstallSnapshot below) in place of the
//!    current state machine, and make it durable; then fix the stored log:
//!    if it holds an entry at `meta.last_included_index` with
//!    `meta.last_included_term`, drop the entries up to and including it,
//!    otherwise drop every stored entry (§7: the core did the same). This
//!    comes before persisting this Ready's entries and before applying any
//!    entry after the snapshot;
//! - if `membership` is `Some`, the membership in effect changed: point the
//!   transport at its members before sending (step 2);
//! 1. persist `hard_state` (if any) and `entries` (truncating the stored log from
//!    `entries[0].index` first if that index is already stored) and fsync;
//! 2. send `messages`;
//! 3. apply `committed_entries` in order (after a snapshot they start at
//!    `last_included_index + 1`);
//! 4. serve each `read_states` entry once its `index` has been applied;
//! 5. call [`Raft::advance`] with the same `Ready` (which is
//!    [`Raft::on_persisted`] with its last entry's index and term).
//!
//! Why this is enough for the persistence rule (never send a vote or an append
//! acknowledgement before the term, vote and entries it depends on are
//! durable): a message is queued only after the state it depends on changed,
//! and it leaves only in a Ready that carries that change (or follows one that
//! did), whose persistence step comes first. The InstallSnapshot reply rides
//! in the Ready that carries `snapshot`, so it leaves after step 0.
//!
//! ```text
//!  step(RequestVote) ─► voted_for = c, response queued
//!  ready()           ─► { hard_state: voted_for = c, messages: [response] }
//!  driver            ─► fsync hard state ─► send response ─► advance()
//! ```
//!
//! The production node (`node/core.rs`, which the simulator also runs)
//! relaxes the order without breaking
//! the rule, and this core allows exactly these relaxations:
//! - Readies are pipelined: `ready()` may be called again before the previous
//!   Ready's write is durable, provided each Ready's messages still leave only
//!   after its own write and every earlier one are durable, in Ready order
//!   (raft-rs `persisted_messages`, etcd-raft's asynchronous storage writes).
//! - A leader whose term and vote did not change in a Ready may send its
//!   messages before that Ready's write (thesis §10.2.1): its AppendEntries
//!   and heartbeats acknowledge nothing.
//! - `committed_entries` may be applied before the Ready's own write is
//!   durable: they are on a majority's disks already, because the leader
//!   counts itself toward a majority only for entries reported through
//!   [`Raft::on_persisted`] (so the commit index may move inside it).
//! - Durability is reported as (index, term) with [`Raft::on_persisted`], in
//!   any grouping (one fsync for several Readies); a report whose entry was
//!   overwritten meanwhile is ignored.
//!
//! A restart passes the durable hard state, the newest durable snapshot's
//! metadata and the log after it to [`Raft::new`] (the driver restores its
//! state machine from the snapshot itself); commit and `last_applied` start
//! at the snapshot's index (or 0), and the first Ready replays
//! `committed_entries` from there through the restored commit index.
//!
//! `hard_state` is `Some` when term, vote or commit index changed since the
//! previous `ready()`; entries, messages, committed entries, read states and
//! the snapshot are each handed out once.
//!
//! # Snapshots and compaction (§7)
//!
//! The driver snapshots its state machine at some applied index and calls
//! [`Raft::compact`] with the metadata; the core drops the entries it covers
//! (their last term stays known for the consistency check). When a follower
//! needs an entry below the leader's first index, the leader emits
//! `InstallSnapshot { term, meta }` (metadata only) and stops sending it
//! entries (only heartbeats) until `InstallSnapshotResponse` arrives or an
//! election timeout passes (then it probes, which sends the snapshot again).
//! The driver of the leader, on seeing that message, streams the snapshot
//! data to the follower out of band in chunks, and only then delivers the
//! message on the follower (a repeated InstallSnapshot for the same snapshot
//! and follower while a stream runs should be dropped, not restarted). The
//! follower installs it when it lies beyond its commit index (keeping a
//! matching suffix, §7) and hands it out in `Ready::snapshot`; an older one
//! is acknowledged without installing.
//!
//! # Elections: pre-vote, check-quorum, transfer
//!
//! - Pre-vote (thesis §9.6, `Config::pre_vote`): on timeout a node first asks
//!   `PreVote` for `term + 1`, changing no state; voters grant it only when
//!   they have not heard from a leader within the minimum election timeout and
//!   the asker's log is up to date; a majority starts the real election.
//! - Check-quorum (§6.2, `Config::check_quorum`): a leader that heard from no
//!   majority (itself included) within the minimum election timeout steps down;
//!   a voter that heard from the leader within it ignores higher-term
//!   RequestVote (stickiness). A node stuck in a higher term gets back in by
//!   answering the leader's AppendEntries (the leader steps down), and a node
//!   behind in term by the PreVote refusal carrying the higher term.
//! - Leadership transfer (thesis §3.10, [`Raft::transfer_leader`]): the leader
//!   stops taking proposals, catches the target up, sends `TimeoutNow`; the
//!   target campaigns at once, its RequestVote flagged `transfer` so voters
//!   skip stickiness; abandoned after an election timeout.
//!
//! # Replication and reads, in short
//!
//! A new leader appends a no-op (§8) and probes each follower one
//! AppendEntries at a time, backing off a whole term per rejection with the
//! follower's conflict hint (§5.3). Once a follower acks, replication to it is
//! pipelined: entries proposed between two `ready()` calls leave in the next
//! Ready, bounded by `max_entries_per_append`/`max_bytes_per_append` per
//! message and [`MAX_INFLIGHT_APPENDS`] unacknowledged messages; a message
//! that is not full waits until nothing is in flight (Nagle's rule), so what
//! is proposed meanwhile leaves together. A new commit index rides on the
//! next AppendEntries a follower gets; one with nothing in flight gets an
//! AppendEntries of its own for it at once. A rejection falls back to
//! probing. Heartbeats (every `heartbeat_interval_ticks`) carry entries to
//! followers that are behind and the commit index to all. A proposal larger
//! than `max_bytes_per_append` is refused.
//!
//! Reads follow §6.4 (details in `read_index.rs`): queued until the leader
//! commits an entry of its term, then `index = commit_index`, confirmed by one
//! heartbeat round acked by a majority; reads arriving between two `ready()`
//! calls share a round. A leader that steps down drops unconfirmed reads.
//! With `Config::lease_reads` (thesis §6.4.1, needs check-quorum) a read is
//! answered at once while a majority acked a heartbeat sent less than
//! `election_timeout_min_ticks - clock_drift_bound_ticks` ago.
//!
//! # Invariants (violations panic with node id, term and indexes)
//!
//! - Election safety: at most one leader per term; at most one vote per term
//!   (with membership changes: the voter sets of two consecutive
//!   memberships differ by at most one node, and a change is proposed only
//!   when the previous one and an entry of the leader's term are committed).
//! - Log matching and leader completeness: committed entries are never
//!   truncated; the commit index never decreases.
//! - The leader commits only entries of its own term by counting (§5.4.2).
//! - `snapshot_index <= last_applied <= commit_index <= last_log_index`.
//! - A snapshot covers only applied entries; a pre-vote changes no state.
//!
//!
//! # Membership (thesis ch. 4, `membership.rs`)
//!
//! Voters and learners, with their addresses, live in the log as
//! [`EntryKind::Membership`] entries and in every snapshot's meta; the newest
//! one in the log is in effect from the moment it is appended, committed or
//! not, and a truncated one gives way to the one before. `Config::voters`
//! is only the bootstrap membership, used until the log names one; the first
//! leader appends it in place of its no-op, so a node that joins later (with
//! no bootstrap voters) learns the membership from the log or a snapshot.
//! Changes are single-server steps ([`Raft::propose_membership`]): one at a
//! time, and only after the leader committed an entry of its term. Quorums
//! count the voters in effect only; learners are replicated to but never
//! vote or campaign; a leader that removes itself steps down once the
//! removal commits. Messages are not refused for coming from outside the
//! membership (§4.1; `validate.rs`).

mod check_quorum;
mod election;
mod faults;
mod log;
mod membership;
pub mod message;
mod progress;
mod read_index;
mod ready;
mod replication;
mod snapshot;
#[cfg(test)]
mod tests;
mod transfer;
pub mod types;
mod validate;

use core::net::SocketAddr;
use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use rand::rngs::ChaCha8Rng;
use rand::SeedableRng;

#[cfg(test)]
pub(crate) use faults::RuleBreaks;
pub use message::{Envelope, Message};
pub use progress::MAX_INFLIGHT_APPENDS;
pub use types::{
    Entry, EntryKind, HardState, InitialState, LogIndex, Member, Membership, MembershipDecodeError,
    NodeId, SnapshotMeta, Term,
};
pub use validate::Refusal;

/// Core configuration (times in ticks).
#[derive(Clone, Debug)]
pub struct Config {
    /// This node's id.
    pub id: NodeId,
    /// The bootstrap voters: the membership used while the log (snapshot
    /// and entries) holds no membership entry. May be empty, or leave this
    /// node out: a node started to join is nobody's voter, never campaigns,
    /// and follows any leader of a current term until its log names a
    /// membership (from an entry or a snapshot).
    pub voters: Vec<NodeId>,
    /// The (RESP, HTTP) addresses of the bootstrap voters, written into the
    /// bootstrap membership entry the first leader appends (the core never
    /// uses them). A voter missing here gets `0.0.0.0:0` for both.
    pub bootstrap_addrs: BTreeMap<NodeId, (SocketAddr, SocketAddr)>,
    /// Lower bound of the randomized election timeout.
    pub election_timeout_min_ticks: u32,
    /// Upper bound (exclusive) of the randomized election timeout.
    pub election_timeout_max_ticks: u32,
    /// How often a leader sends AppendEntries when idle.
    pub heartbeat_interval_ticks: u32,
    /// Most entries in one AppendEntries.
    pub max_entries_per_append: usize,
    /// Most payload bytes in one AppendEntries (at least one entry is always
    /// sent); also the largest payload [`Raft::propose`] accepts.
    pub max_bytes_per_append: usize,
    /// Pre-vote (thesis §9.6): campaign only after a majority would vote.
    pub pre_vote: bool,
    /// Check-quorum (§6.2): a leader steps down without a majority's contact
    /// within the minimum election timeout, and voters that heard from a
    /// leader within it ignore RequestVote (leader stickiness).
    pub check_quorum: bool,
    /// Leader lease (thesis §6.4.1): answer ReadIndex without a heartbeat
    /// round while a majority acked recently enough. Needs `check_quorum`.
    pub lease_reads: bool,
    /// How many ticks the clocks of two nodes may drift apart over a minimum
    /// election timeout; the lease is shortened by it. Must be below
    /// `election_timeout_min_ticks` when `lease_reads` is on.
    pub clock_drift_bound_ticks: u32,
    /// With pre-vote on: the most a message's term may exceed ours unless a
    /// majority of voters vouches for it (`validate.rs`); 0 turns the rule
    /// off.
    pub max_term_jump: u64,
}

impl Config {
    /// A configuration for node `id` among `voters` with the defaults: election
    /// timeout in [10, 20) ticks, heartbeat every 2 ticks, at most 256 entries
    /// and 1 MiB of payload per AppendEntries, pre-vote and check-quorum on,
    /// lease reads off (drift bound 2 ticks), a term may jump at most 1000
    /// ahead without a majority vouching for it. Code outside the core should
    /// build configs with this and then override fields, so it keeps compiling
    /// when fields are added.
    pub fn new(id: NodeId, voters: Vec<NodeId>) -> Config {
        Config {
            id,
            voters,
            bootstrap_addrs: BTreeMap::new(),
            election_timeout_min_ticks: 10,
            election_timeout_max_ticks: 20,
            heartbeat_interval_ticks: 2,
            max_entries_per_append: 256,
            max_bytes_per_append: 1 << 20,
            pre_vote: true,
            check_quorum: true,
            lease_reads: false,
            clock_drift_bound_ticks: 2,
            max_term_jump: 1000,
        }
    }
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
    /// A snapshot received from the leader that replaced the log up to its
    /// `last_included_index`: install its data (already streamed to this
    /// node) before anything else in this Ready.
    pub snapshot: Option<SnapshotMeta>,
    /// The membership in effect changed since the previous Ready (an entry
    /// appended or received, one truncated away, a snapshot installed): the
    /// new one, for re-pointing the transport. It may be uncommitted.
    pub membership: Option<Membership>,
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
    /// Leader: the target of a leadership transfer in flight.
    pub transferring_to: Option<NodeId>,
    /// This node is a voter of the membership in effect.
    pub voter: bool,
    /// This node is a learner of the membership in effect.
    pub learner: bool,
    /// Index of the entry that set the membership in effect (0: the
    /// bootstrap one); committed when at or below `commit_index`.
    pub membership_index: LogIndex,
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
    /// An inbound message broke one of Raft's invariants and was refused
    /// before it changed anything (`validate.rs`).
    #[error("message from {from} refused: {refusal}")]
    Refused {
        /// Sender.
        from: NodeId,
        /// Why.
        refusal: Refusal,
    },
    /// The configuration is invalid.
    #[error("invalid raft config: {0}")]
    InvalidConfig(&'static str),
    /// A leadership transfer is in flight: the leader takes no proposals.
    #[error("leadership transfer to {to} in progress")]
    TransferInProgress {
        /// The transfer target.
        to: NodeId,
    },
    /// A membership change is not allowed yet: an earlier one is not
    /// committed, or this leader has not committed an entry of its term
    /// (thesis §4.1).
    #[error(
        "a membership change is in progress (or the leader has not committed in its term yet)"
    )]
    MembershipChangeInProgress,
    /// The proposed membership is not a legal single-server step.
    #[error("invalid membership change: {0}")]
    InvalidMembership(&'static str),
    /// A proposal's payload exceeds `max_bytes_per_append`.
    #[error("entry of {len_bytes} bytes exceeds the limit of {max_bytes} bytes")]
    EntryTooLarge {
        /// The payload's size.
        len_bytes: usize,
        /// The configured limit.
        max_bytes: usize,
    },
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
    /// Ticks counted while leader, across terms (check-quorum, lease,
    /// snapshot and transfer timeouts compare instants of this clock).
    leader_ticks: u64,
    /// A pre-vote round is in progress (role stays `Follower`).
    pre_campaign: bool,
    /// With lease reads on: this node started less than a minimum election
    /// timeout ago and treats itself as having heard from a leader.
    startup_lease_guard: bool,
    /// Leader: the leadership transfer in flight.
    transfer: Option<transfer::Transfer>,
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
    /// The highest term each peer has shown (`validate.rs`).
    peer_terms: validate::PeerTerms,
    /// The membership in effect as last handed out in a Ready.
    handed_out_membership: Membership,
    /// Leader: index of a membership entry not committed yet; when it
    /// commits, progress of removed members is dropped and a removed leader
    /// steps down.
    pending_membership: Option<LogIndex>,
    /// Deliberate rule breaks for the simulator's self-test (`faults.rs`).
    #[cfg(test)]
    rule_breaks: faults::RuleBreaks,
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
        // An entry (or snapshot) of a newer term than the stored one means that
        // term was seen (its hard state write was lost); never run behind our
        // own log.
        let snapshot_term = snapshot.as_ref().map_or(Term(0), |s| s.last_included_term);
        let last_term = entries.last().map_or(snapshot_term, |e| e.term);
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
            log: log::RaftLog::restore(
                config.id,
                snapshot,
                entries,
                hard_state.commit_index,
                membership::bootstrap(&config),
            ),
            rng: ChaCha8Rng::seed_from_u64(seed),
            election_elapsed_ticks: 0,
            leader_ticks: 0,
            pre_campaign: false,
            // A node that never saw a term never acknowledged a lease.
            startup_lease_guard: config.lease_reads && term > Term(0),
            transfer: None,
            election_timeout_ticks: config.election_timeout_min_ticks,
            heartbeat_elapsed_ticks: 0,
            votes_granted: BTreeSet::new(),
            progress: BTreeMap::new(),
            replicate_pending: false,
            commit_broadcast_pending: false,
            reads: read_index::ReadQueue::default(),
            messages: Vec::new(),
            handed_out_hard_state: hard_state,
            peer_terms: validate::PeerTerms::default(),
            handed_out_membership: Membership::default(),
            pending_membership: None,
            #[cfg(test)]
            rule_breaks: faults::RuleBreaks::default(),
            config,
        };
        // If the log view clamped the restored commit index, the hard state now
        // differs from `handed_out_hard_state` and the next Ready rewrites it.
        raft.handed_out_membership = raft.log.membership().1.clone();
        raft.reset_election_timer();
        Ok(raft)
    }

    /// Advances logical time by one tick: followers and candidates count toward
    /// an election (§5.2), the leader toward its next heartbeat.
    pub fn tick(&mut self) {
        match self.role {
            Role::Leader => self.tick_leader(),
            Role::Follower | Role::Candidate => self.tick_election(),
        }
    }

    /// Logical time that passed while this node could not act: its driver
    /// stalled (a long turn, CPU starvation, a process pause), and the
    /// driver owes `ticks` beyond the few it ticks normally.
    ///
    /// The leader's clock ages by all of them, so its lease (and snapshot
    /// and transfer timeouts) end in real time; but no timer that judges
    /// *other* nodes' silence counts them: followers' last-heard ticks move
    /// forward with the clock (check-quorum), and a follower's or
    /// candidate's election timer stands still. Messages that waited in the
    /// node's queue during the stall are stepped after this, so a stall
    /// longer than an election timeout no longer makes a leader step down,
    /// or a follower campaign, against peers that were talking all along
    /// (what etcd gets by dropping ticks its loop missed).
    ///
    /// Safety does not rest on these timers, and the lease argument holds:
    /// the leader's lease still expires in real time, and a follower whose
    /// election timer stands still keeps its promise not to vote for
    /// another leader longer, never shorter (thesis §6.4.1).
    pub fn skip_ticks(&mut self, ticks: u64) {
        if ticks == 0 || self.role != Role::Leader {
            return;
        }
        self.leader_ticks = self.leader_ticks.saturating_add(ticks);
        let now = self.leader_ticks;
        for progress in self.progress.values_mut() {
            progress.last_heard_tick = progress.last_heard_tick.saturating_add(ticks).min(now);
        }
    }

    /// Feeds a message from a peer.
    ///
    /// The message is first checked against Raft's invariants (`validate.rs`
    /// lists what is refused); a refused one changes nothing. A message with
    /// a higher term then turns this node into a follower of that term
    /// (§5.1); one with a lower term is answered with our term (requests) or
    /// ignored (responses).
    ///
    /// # Errors
    /// [`Error::Refused`] when the message was refused: the sender is not
    /// another voter, the message is not for us, or it breaks an invariant.
    pub fn step(&mut self, envelope: Envelope) -> Result<(), Error> {
        let Envelope { from, to, message } = envelope;
        if let Err(refusal) = self.validate_inbound(from, to, &message) {
            return Err(Error::Refused { from, refusal });
        }
        let term = message.term();
        if term > self.term {
            match message {
                // Thesis §9.6: a pre-vote changes no one's term; a granted one
                // carries the term we asked about.
                Message::PreVote { .. }
                | Message::PreVoteResponse {
                    vote_granted: true, ..
                } => {}
                // Leader stickiness (check_quorum.rs): not even the term moves.
                _ if self.ignores_higher_term(&message) => {
                    tracing::trace!(id = %self.id, term = %self.term, candidate = %from,
                        "vote request ignored: heard from a leader recently");
                    return Ok(());
                }
                _ => {
                    // §5.1: a higher term means our term is stale; the sender
                    // of these is the leader of that term.
                    let leader = matches!(
                        message,
                        Message::AppendEntries { .. }
                            | Message::InstallSnapshot { .. }
                            | Message::TimeoutNow { .. }
                    )
                    .then_some(from);
                    self.become_follower(term, leader);
                }
            }
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
            Message::PreVote {
                term,
                last_log_index,
                last_log_term,
            } => self.handle_pre_vote(from, term, last_log_index, last_log_term),
            Message::PreVoteResponse { term, vote_granted } => {
                self.handle_pre_vote_response(from, term, vote_granted)
            }
            Message::TimeoutNow { .. } => self.handle_timeout_now(from),
            Message::InstallSnapshot { meta, .. } => self.handle_install_snapshot(from, meta),
            Message::InstallSnapshotResponse {
                last_included_index,
                success,
                ..
            } => self.handle_install_snapshot_response(from, last_included_index, success),
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
    /// [`Error::NotLeader`] on a follower or candidate;
    /// [`Error::TransferInProgress`] while a leadership transfer is in flight;
    /// [`Error::EntryTooLarge`] when `data` exceeds `max_bytes_per_append`.
    pub fn propose(&mut self, data: Bytes) -> Result<(LogIndex, Term), Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        if let Some(transfer) = self.transfer {
            return Err(Error::TransferInProgress { to: transfer.to });
        }
        if data.len() > self.config.max_bytes_per_append {
            return Err(Error::EntryTooLarge {
                len_bytes: data.len(),
                max_bytes: self.config.max_bytes_per_append,
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
            transferring_to: self.transfer.map(|t| t.to),
            voter: self.is_voter(),
            learner: self.log.membership().1.contains(self.id) && !self.is_voter(),
            membership_index: self.log.membership().0,
        }
    }

    /// Leader: every other voter's id, match index, and ticks since it was
    /// last heard from, in id order (empty on a follower or candidate;
    /// learners are left out). What WAIT counts and INFO replication shows.
    pub fn follower_progress(&self) -> impl Iterator<Item = (NodeId, LogIndex, u64)> + '_ {
        let leader = self.role == Role::Leader;
        let now = self.leader_ticks;
        let membership = self.log.membership().1;
        self.progress
            .iter()
            .filter(move |(id, _)| leader && membership.is_voter(**id))
            .map(move |(id, p)| (*id, p.match_index, now.saturating_sub(p.last_heard_tick)))
    }

    /// Leader: every learner's id and match index, in id order (empty on a
    /// follower or candidate). What promoting one waits for.
    pub fn learner_progress(&self) -> impl Iterator<Item = (NodeId, LogIndex)> + '_ {
        let leader = self.role == Role::Leader;
        let membership = self.log.membership().1;
        self.progress
            .iter()
            .filter(move |(id, _)| {
                leader && membership.contains(**id) && !membership.is_voter(**id)
            })
            .map(|(id, p)| (*id, p.match_index))
    }

    /// Number of voters of the membership in effect (this node included if
    /// it is one).
    pub fn voter_count(&self) -> usize {
        self.log.membership().1.voter_ids().count()
    }

    /// The durable part of our state, as it should be written now.
    fn hard_state(&self) -> HardState {
        HardState {
            term: self.term,
            voted_for: self.voted_for,
            commit_index: self.log.commit_index(),
        }
    }

    /// Votes needed for a majority of the voters of the membership in
    /// effect.
    fn quorum(&self) -> usize {
        self.voter_count() / 2 + 1
    }

    /// Every voter of the membership in effect but us (who to ask for votes).
    fn voter_peers(&self) -> Vec<NodeId> {
        let mut voters = self.log.membership().1.voters();
        voters.retain(|&v| v != self.id);
        voters
    }

    /// Leader: everyone it replicates to (every member but itself, and a
    /// removed member until its removal commits).
    fn peers(&self) -> Vec<NodeId> {
        self.progress.keys().copied().collect()
    }

    /// Is this node a voter of the membership in effect?
    fn is_voter(&self) -> bool {
        self.log.membership().1.is_voter(self.id)
    }

    /// The `quorum()`-th highest of `value` over the voters of the
    /// membership in effect (`None` when there are fewer voters than that,
    /// or none): the value a majority of voters has reached.
    fn quorum_value<T: Ord + Copy>(&self, value: impl Fn(NodeId) -> T) -> Option<T> {
        let mut values: Vec<T> = self.log.membership().1.voter_ids().map(value).collect();
        values.sort_unstable_by(|a, b| b.cmp(a));
        values.get(self.quorum() - 1).copied()
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
    if config.id == NodeId(0) {
        return Err(Error::InvalidConfig("node id 0 is not valid"));
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
    if config.lease_reads
        && (!config.check_quorum
            || config.clock_drift_bound_ticks >= config.election_timeout_min_ticks)
    {
        return Err(Error::InvalidConfig(
            "lease_reads needs check_quorum and clock_drift_bound_ticks below \
             election_timeout_min_ticks",
        ));
    }
    let (snapshot_index, mut prev_term) = initial.snapshot.as_ref().map_or((0, Term(0)), |s| {
        (s.last_included_index.0, s.last_included_term)
    });
    for (i, entry) in initial.entries.iter().enumerate() {
        if entry.index != LogIndex(snapshot_index + i as u64 + 1) {
            return Err(Error::InvalidConfig(
                "initial entries are not contiguous from the snapshot (or index 1)",
            ));
        }
        if entry.term < prev_term {
            return Err(Error::InvalidConfig("initial entry terms decrease"));
        }
        if entry.kind == EntryKind::Membership
            && Membership::decode(&entry.data).map_or(true, |m| m.check().is_err())
        {
            return Err(Error::InvalidConfig(
                "a stored membership entry is not a valid membership",
            ));
        }
        prev_term = entry.term;
    }
    Ok(())
}
