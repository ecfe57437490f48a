//! The hand-off to the driver: `has_ready`, `ready` and `advance`.
//!
//! `ready()` moves work out of the core (hard state, entries to persist,
//! messages, committed entries, confirmed reads) and marks it handed out;
//! `advance()` reports that the entries of that Ready are durable, which is the
//! only way the persisted watermark (and so the leader's own vote toward
//! commitment) moves. Must never do I/O itself.

use super::{LogIndex, Raft, Ready, Role, Term};

impl Raft {
    /// True when [`Raft::ready`] has something to do.
    pub fn has_ready(&self) -> bool {
        self.hard_state() != self.handed_out_hard_state
            || self.log.has_unstable()
            || !self.messages.is_empty()
            || self.log.has_committed_to_apply()
            || self.reads.has_ready()
            || self.log.has_pending_snapshot()
            || self.log.membership().1 != &self.handed_out_membership
            || (self.role == Role::Leader
                && (self.replicate_pending || self.commit_broadcast_pending))
    }

    /// Collects the pending work; see the module docs for the order in which
    /// the driver must carry it out. Everything returned counts as handed out:
    /// the next call returns only what is new.
    pub fn ready(&mut self) -> Ready {
        if self.role == Role::Leader {
            // Batch the proposals and reads that arrived since the last call.
            self.flush_replication();
            self.flush_read_round();
            // Last: peers already getting an AppendEntries above learn the
            // commit index from it.
            self.flush_commit_broadcast(false);
        }
        let hard_state = self.hard_state();
        let hard_state = (hard_state != self.handed_out_hard_state).then(|| {
            self.handed_out_hard_state = hard_state;
            hard_state
        });
        let membership = (self.log.membership().1 != &self.handed_out_membership).then(|| {
            self.handed_out_membership = self.log.membership().1.clone();
            self.handed_out_membership.clone()
        });
        Ready {
            membership,
            hard_state,
            entries: self.log.take_unstable(),
            messages: std::mem::take(&mut self.messages),
            committed_entries: self.log.take_committed(),
            read_states: self.reads.take_confirmed(),
            snapshot: self.log.take_pending_snapshot(),
        }
    }

    /// Acknowledges that a [`Ready`] was fully processed: its entries are
    /// durable. On the leader this may advance the commit index (thesis
    /// §10.2.1: the leader counts itself only for persisted entries), after
    /// which [`Raft::has_ready`] is true.
    pub fn advance(&mut self, ready: Ready) {
        if let Some(last) = ready.entries.last() {
            self.on_persisted(last.index, last.term);
        }
    }

    /// Reports that the log is durable through `index`, whose entry has
    /// `term`: the persisted watermark moves there unless the entry at
    /// `index` is no longer of `term` (a newer leader overwrote it meanwhile:
    /// that write covered another entry). On the leader this may advance the
    /// commit index. What [`Raft::advance`] does with a Ready's last entry.
    pub fn on_persisted(&mut self, index: LogIndex, term: Term) {
        self.log.persisted_to(index, term);
        self.maybe_commit();
    }
}
