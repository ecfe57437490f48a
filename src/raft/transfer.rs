//! Leadership transfer (thesis §3.10): the leader stops accepting proposals,
//! brings the target's log up to date, then sends it `TimeoutNow`; the target
//! starts an election at once, flagged as a transfer so that voters answer it
//! despite pre-vote and leader stickiness. The transfer is abandoned after an
//! election timeout (the target may be down or slow).
//!
//! Invariant: a leader with a transfer in flight appends nothing new (its
//! target's log stays caught up, so the target can win), and never serves a
//! lease read again in this term (the target's election bypasses the
//! stickiness the lease relies on).

use super::types::NodeId;
use super::{Error, Message, Raft, Role};

/// A leadership transfer in flight.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Transfer {
    /// The voter to hand leadership to.
    pub(crate) to: NodeId,
    /// Leader tick at which it started (for the timeout).
    started_tick: u64,
    /// `TimeoutNow` has been sent.
    timeout_now_sent: bool,
}

impl Raft {
    /// Starts handing leadership to `to` (thesis §3.10). From now until the
    /// transfer ends, [`Raft::propose`] fails with
    /// [`Error::TransferInProgress`]; [`crate::raft::Status::transferring_to`]
    /// shows the target. The transfer ends when this node stops being leader
    /// (success) or after an election timeout (abandoned; proposals resume).
    /// Asking again for the same target is a no-op; another target replaces
    /// the current one; `to == self` cancels a transfer in flight.
    ///
    /// # Errors
    /// [`Error::NotLeader`] on a follower or candidate;
    /// [`Error::UnknownPeer`] when `to` is not a voter of the membership in
    /// effect.
    pub fn transfer_leader(&mut self, to: NodeId) -> Result<(), Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        if !self.membership().is_voter(to) {
            return Err(Error::UnknownPeer { from: self.id, to });
        }
        if to == self.id {
            self.transfer = None;
            return Ok(());
        }
        if self.transfer.is_some_and(|t| t.to == to) {
            return Ok(());
        }
        tracing::info!(id = %self.id, term = %self.term, target = %to, "transferring leadership");
        self.transfer = Some(Transfer {
            to,
            started_tick: self.leader_ticks,
            timeout_now_sent: false,
        });
        self.reads.revoke_lease();
        self.on_follower_progress(to);
        if self.transfer.is_some_and(|t| !t.timeout_now_sent) {
            // Catch the target up first (it may be probing or behind).
            self.send_append(to, true);
            self.send_pending(to);
        }
        Ok(())
    }

    /// Leader: the voter to hand leadership to when none is named: of the
    /// other voters heard from within an election timeout, the one whose log
    /// matches furthest (lowest id on a tie), so the transfer needs the least
    /// catching up. `None` on a non-leader or when no other voter is live.
    pub fn transfer_candidate(&self) -> Option<NodeId> {
        let live = u64::from(self.config.election_timeout_min_ticks);
        self.follower_progress()
            .filter(|&(id, _, quiet)| id != self.id && quiet < live)
            .max_by_key(|&(id, matched, _)| (matched, std::cmp::Reverse(id)))
            .map(|(id, _, _)| id)
    }

    /// Leader: `from`'s progress moved; if it is the transfer target and its
    /// log now matches ours, tell it to campaign.
    pub(super) fn on_follower_progress(&mut self, from: NodeId) {
        let Some(transfer) = self.transfer else {
            return;
        };
        if transfer.to != from || transfer.timeout_now_sent {
            return;
        }
        let caught_up = self
            .progress
            .get(&from)
            .is_some_and(|p| p.match_index == self.log.last_index());
        if caught_up {
            self.transfer = Some(Transfer {
                timeout_now_sent: true,
                ..transfer
            });
            tracing::info!(id = %self.id, term = %self.term, target = %from, "sending TimeoutNow");
            self.send(from, Message::TimeoutNow { term: self.term });
        }
    }

    /// Leader tick: abandon a transfer that has not completed within an
    /// election timeout, and accept proposals again.
    pub(super) fn check_transfer_timeout(&mut self) {
        let Some(transfer) = self.transfer else {
            return;
        };
        let elapsed = self.leader_ticks.saturating_sub(transfer.started_tick);
        if elapsed >= u64::from(self.config.election_timeout_min_ticks) {
            tracing::info!(id = %self.id, term = %self.term, target = %transfer.to,
                "leadership transfer abandoned");
            self.transfer = None;
        }
    }

    /// Receiver side of TimeoutNow (after the term check in `step`): start an
    /// election now, skipping pre-vote, flagged so voters skip stickiness.
    pub(super) fn handle_timeout_now(&mut self, from: NodeId) {
        if self.role == Role::Leader {
            return;
        }
        tracing::info!(id = %self.id, term = %self.term, leader = %from,
            "TimeoutNow received: campaigning");
        self.campaign(true);
    }
}
