//! ReadIndex reads (Raft thesis §6.4): serving linearizable reads without
//! writing them to the log.
//!
//! The leader (1) waits until it has committed an entry of its own term (the
//! no-op of §8), so its commit index is at least that of any earlier leader;
//! (2) records `index = commit_index` for the read; (3) confirms it is still
//! leader by a round of AppendEntries acknowledged by a majority; (4) hands out
//! `ReadState { ctx, index }`; the driver serves the read once `index` is
//! applied.
//!
//! Rounds are numbered; every AppendEntries carries the latest round number
//! (`read_ctx`) and every reply of the same term echoes it, so one round
//! confirms every read queued before it started (batching). A read queued
//! after a round started waits for the next one, because acks of the earlier
//! round may predate the read.
//!
//! Leader lease (thesis §6.4.1, `Config::lease_reads`): every heartbeat then
//! starts a round, and the leader remembers the tick each round started. When
//! a majority acked a round that started `d` ticks ago with
//! `d < election_timeout_min_ticks - clock_drift_bound_ticks`, no other leader
//! can have been elected since: each of those voters heard from us after the
//! round started and (check-quorum's stickiness, required by the config)
//! ignores votes for a minimum election timeout. A read then gets its
//! `ReadState` at once, without a heartbeat round. The lease is revoked for
//! the rest of the term once a leadership transfer starts (the target's
//! election bypasses stickiness).
//!
//! Membership changes (`membership.rs`): read rounds are confirmed by a
//! majority of the voters of the membership in effect. The lease is more
//! conservative: from the moment a leader appends a membership change, no
//! lease holds until the change has committed *and* a round started after
//! the change was acked by a majority of the new voters. (With
//! single-server changes any old and new majority overlap, so this is more
//! than safety needs; it keeps the lease argument to one membership.)
//!
//! Invariant: a `ReadState` is only emitted for a read whose round was acked by
//! a majority (self included) in the current term, or under a lease valid at
//! the time of the read. Pending reads are dropped when the node stops being
//! leader.

use std::collections::VecDeque;

/// Most round start ticks remembered for the lease; older rounds are
/// forgotten (a forgotten round just gives no lease).
const MAX_LEASE_ROUNDS: usize = 1024;

use super::types::LogIndex;
use super::{Raft, ReadState, Role};

/// A read waiting for its confirmation round.
#[derive(Debug)]
struct PendingRead {
    /// Caller's tag.
    ctx: u64,
    /// Commit index when the read was accepted.
    index: LogIndex,
    /// The round whose majority ack confirms it.
    round: u64,
}

/// The leader's ReadIndex queues.
#[derive(Debug, Default)]
pub(crate) struct ReadQueue {
    /// Latest confirmation round started (0: none yet).
    round: u64,
    /// Reads are waiting for a round that has not started yet.
    round_requested: bool,
    /// Reads that arrived before an entry of the leader's term committed.
    awaiting_commit: Vec<u64>,
    /// Reads with an index, waiting for their round's majority.
    pending: VecDeque<PendingRead>,
    /// Confirmed reads not yet handed out.
    confirmed: Vec<ReadState>,
    /// Leader tick at which each recent round started, oldest first (lease).
    round_ticks: VecDeque<(u64, u64)>,
    /// A leadership transfer started in this term: no lease reads.
    lease_revoked: bool,
    /// The first round that may give a lease: rounds started before the
    /// latest membership change were acked under the old voters.
    lease_floor: u64,
}

impl ReadQueue {
    /// The latest round started, carried as `read_ctx` by every AppendEntries.
    pub(crate) fn current_round(&self) -> u64 {
        self.round
    }

    /// Drops unconfirmed reads (leadership lost); confirmed ones stay
    /// servable because leadership was proven after they arrived.
    pub(crate) fn clear(&mut self) {
        self.round_requested = false;
        self.awaiting_commit.clear();
        self.pending.clear();
        self.round_ticks.clear();
        self.lease_revoked = false;
    }

    /// No lease reads for the rest of this term (a transfer started).
    pub(crate) fn revoke_lease(&mut self) {
        self.lease_revoked = true;
    }

    /// The membership changed: only rounds started from now on may give a
    /// lease.
    pub(crate) fn restart_lease(&mut self) {
        self.lease_floor = self.round + 1;
    }

    /// Starts a new round at leader tick `now`; returns its number.
    fn begin_round(&mut self, now: u64) -> u64 {
        self.round += 1;
        self.round_ticks.push_back((self.round, now));
        if self.round_ticks.len() > MAX_LEASE_ROUNDS {
            self.round_ticks.pop_front();
        }
        self.round
    }

    /// True when a round must start or confirmed reads wait to be handed out.
    pub(crate) fn has_ready(&self) -> bool {
        self.round_requested || !self.confirmed.is_empty()
    }

    /// Hands out the confirmed reads.
    pub(crate) fn take_confirmed(&mut self) -> Vec<ReadState> {
        std::mem::take(&mut self.confirmed)
    }
}

impl Raft {
    /// Accepts a read on the leader (the role was checked by the caller).
    pub(super) fn start_read(&mut self, ctx: u64) {
        if self.committed_own_term() {
            self.enqueue_read(ctx);
        } else {
            // §6.4 step 1: until an entry of this term commits, the leader's
            // commit index may lag behind the previous leader's.
            self.reads.awaiting_commit.push(ctx);
        }
    }

    /// True once the entry at commit_index is of the current term.
    fn committed_own_term(&self) -> bool {
        self.log.term_at(self.log.commit_index()) == Some(self.term)
    }

    /// Records the read index and schedules its confirmation round.
    fn enqueue_read(&mut self, ctx: u64) {
        let index = self.log.commit_index();
        let sole_voter = self.quorum() == 1 && self.is_voter();
        if sole_voter || self.lease_valid() {
            // A single voter is its own majority, and a valid lease means no
            // other leader can exist: nothing to confirm (§6.4.1).
            self.reads.confirmed.push(ReadState { ctx, index });
            return;
        }
        let round = self.reads.round + 1;
        self.reads
            .pending
            .push_back(PendingRead { ctx, index, round });
        self.reads.round_requested = true;
    }

    /// Called when the commit index moved on the leader: reads that waited for
    /// the own-term commit get their index now.
    pub(super) fn release_reads_after_commit(&mut self) {
        if self.reads.awaiting_commit.is_empty() || !self.committed_own_term() {
            return;
        }
        for ctx in std::mem::take(&mut self.reads.awaiting_commit) {
            self.enqueue_read(ctx);
        }
    }

    /// Starts the requested round: one AppendEntries to every follower.
    pub(super) fn flush_read_round(&mut self) {
        if self.role != Role::Leader || !self.reads.round_requested {
            return;
        }
        self.reads.round_requested = false;
        self.reads.begin_round(self.leader_ticks);
        self.heartbeat_elapsed_ticks = 0;
        self.broadcast_heartbeat();
    }

    /// With lease reads on, every heartbeat starts a round, so the lease
    /// can be renewed by its acks.
    pub(super) fn start_lease_round(&mut self) {
        if self.config.lease_reads && self.role == Role::Leader {
            self.reads.begin_round(self.leader_ticks);
        }
    }

    /// The highest round acked by a majority, self included.
    fn confirmed_round(&self) -> Option<u64> {
        let round = self.reads.round;
        self.quorum_value(|id| {
            if id == self.id {
                round
            } else {
                self.progress.get(&id).map_or(0, |p| p.read_ack)
            }
        })
    }

    /// Thesis §6.4.1: the lease holds while a round acked by a majority
    /// started less than `election_timeout_min - clock_drift_bound` ticks ago
    /// (and no transfer started this term).
    fn lease_valid(&self) -> bool {
        self.lease_remaining_ticks().is_some()
    }

    /// How many more leader ticks the current lease holds (`None`: no lease).
    ///
    /// For a driver that serves lease reads without handing each one to the
    /// core: while fewer ticks than this have passed, [`Raft::read_index`]
    /// would confirm a read at once. Reads served that way must still see
    /// every entry of earlier terms, so the caller also waits until it has
    /// applied an entry of the current term.
    pub fn lease_remaining_ticks(&self) -> Option<u64> {
        if !self.config.lease_reads
            || self.reads.lease_revoked
            || self.role != Role::Leader
            || !self.membership_committed()
        {
            return None;
        }
        // Rounds acked by a quorum only move forward within a term, so the
        // one sought is among the newest remembered.
        let round = self.confirmed_round()?;
        if round < self.reads.lease_floor {
            return None;
        }
        let started = self
            .reads
            .round_ticks
            .iter()
            .rev()
            .find(|&&(r, _)| r == round)
            .map(|&(_, tick)| tick)?;
        let lease_ticks = u64::from(
            self.config
                .election_timeout_min_ticks
                .saturating_sub(self.config.clock_drift_bound_ticks),
        );
        let remaining = started
            .saturating_add(lease_ticks)
            .saturating_sub(self.leader_ticks);
        (remaining > 0).then_some(remaining)
    }

    /// Emits every pending read whose round a majority (self included) acked.
    pub(super) fn confirm_reads(&mut self) {
        if self.role != Role::Leader || self.reads.pending.is_empty() {
            return;
        }
        let Some(confirmed_round) = self.confirmed_round() else {
            return;
        };
        while let Some(read) = self.reads.pending.front() {
            if read.round > confirmed_round {
                break;
            }
            self.reads.confirmed.push(ReadState {
                ctx: read.ctx,
                index: read.index,
            });
            self.reads.pending.pop_front();
        }
    }
}
