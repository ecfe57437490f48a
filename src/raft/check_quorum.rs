//! Check-quorum and leader stickiness (thesis §6.2, §9.6; etcd's
//! `CheckQuorum`).
//!
//! - A leader that has not heard from a majority of voters (itself included)
//!   within the minimum election timeout steps down to follower: an isolated
//!   leader stops serving instead of accepting writes that cannot commit.
//! - A voter that heard from the current leader within the minimum election
//!   timeout ignores RequestVote of a higher term (it neither adopts the term
//!   nor answers), unless the election is a leadership transfer. So a node
//!   that rejoins with a higher term cannot depose a healthy leader.
//!
//! Liveness: a node left in a higher term (it campaigned while partitioned,
//! or restarted with a newer term) has its votes ignored, but it answers the
//! leader's AppendEntries with its higher term, which makes the leader step
//! down; the next election (term above it) can be won by an up-to-date node.
//! See `answer_stale` for that and the symmetric pre-vote case.

use super::{Message, Raft, Role};

impl Raft {
    /// Has this node heard from a leader of its term within the minimum
    /// election timeout? A leader counts as hearing itself. With lease reads
    /// on, a node that restarted (term above 0) counts too, for its first
    /// minimum election timeout: it may have acknowledged a lease before it
    /// crashed, and forgot the leader.
    pub(super) fn heard_from_leader_recently(&self) -> bool {
        if self.role == Role::Leader {
            return true;
        }
        (self.leader.is_some() || self.startup_lease_guard)
            && self.election_elapsed_ticks < self.config.election_timeout_min_ticks
    }

    /// Should `message`, whose term is above ours, be ignored outright? Only a
    /// non-transfer RequestVote reaching a voter that recently heard from a
    /// leader, with check-quorum on (leader stickiness).
    pub(super) fn ignores_higher_term(&self, message: &Message) -> bool {
        self.config.check_quorum
            && matches!(
                message,
                Message::RequestVote {
                    transfer: false,
                    ..
                }
            )
            && self.heard_from_leader_recently()
    }

    /// Leader tick: with check-quorum on, step down when fewer than a majority
    /// (self included) were heard from within the minimum election timeout.
    /// Returns true when it stepped down.
    pub(super) fn check_quorum_lost(&mut self) -> bool {
        if !self.config.check_quorum || self.role != Role::Leader {
            return false;
        }
        let now = self.leader_ticks;
        let window = u64::from(self.config.election_timeout_min_ticks);
        // Voters of the membership in effect only (the leader counts itself
        // only while it is one).
        let active = self
            .log
            .membership()
            .1
            .voter_ids()
            .filter(|&id| {
                id == self.id
                    || self
                        .progress
                        .get(&id)
                        .is_some_and(|p| now.saturating_sub(p.last_heard_tick) < window)
            })
            .count();
        if active >= self.quorum() {
            return false;
        }
        // Ticks since each voter was last heard (none: never this term).
        let silent: Vec<(u64, Option<u64>)> = self
            .log
            .membership()
            .1
            .voter_ids()
            .filter(|&id| id != self.id)
            .map(|id| {
                let ago = self
                    .progress
                    .get(&id)
                    .map(|p| now.saturating_sub(p.last_heard_tick));
                (id.0, ago)
            })
            .collect();
        tracing::warn!(id = %self.id, term = %self.term, active, window_ticks = window,
            ticks_since_heard = ?silent,
            "check-quorum: no majority heard within an election timeout, stepping down");
        self.become_follower(self.term, None);
        true
    }
}
