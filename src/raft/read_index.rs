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
//! Invariant: a `ReadState` is only emitted for a read whose round was acked by
//! a majority (self included) in the current term. Pending reads are dropped
//! when the node stops being leader.

use std::collections::VecDeque;

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
        if self.quorum() == 1 {
            // A single voter is its own majority: nothing to confirm.
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
        self.reads.round += 1;
        self.heartbeat_elapsed_ticks = 0;
        self.broadcast_heartbeat();
    }

    /// Emits every pending read whose round a majority (self included) acked.
    pub(super) fn confirm_reads(&mut self) {
        if self.role != Role::Leader || self.reads.pending.is_empty() {
            return;
        }
        let mut acks: Vec<u64> = self.progress.values().map(|p| p.read_ack).collect();
        acks.push(self.reads.round);
        acks.sort_unstable_by(|a, b| b.cmp(a));
        let Some(&confirmed_round) = acks.get(self.quorum() - 1) else {
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
