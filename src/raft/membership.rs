//! Membership changes, one server at a time (thesis §4.1, §4.2.2).
//!
//! The membership (voters and learners, with their addresses) lives in the
//! log as [`EntryKind::Membership`] entries and in every snapshot's meta. A
//! node uses the newest membership in its log, committed or not, from the
//! moment the entry is appended (leader) or received (follower); a truncated
//! membership entry takes the previous one back into effect (`log.rs`
//! tracks them). Before any entry names one, the bootstrap voters of
//! `Config::voters` are in effect, and the first leader appends them as a
//! membership entry in place of its no-op.
//!
//! Rules kept here:
//! - a change is one legal step: the voter sets of the old and the new
//!   membership differ by at most one node (any two majorities of them
//!   overlap, so no two leaders can be elected in one term); learners come
//!   and go freely; at least one voter remains;
//! - one change at a time: none while an earlier membership entry is
//!   uncommitted;
//! - a leader proposes a change only after committing an entry of its own
//!   term (the §4.1 bug fix: otherwise a change it appends may conflict with
//!   an uncommitted change of the previous leader, and two disjoint
//!   majorities can elect two leaders);
//! - quorums (commit, elections, pre-vote, check-quorum, read rounds, the
//!   lease) count the voters of the membership in effect only; learners are
//!   replicated to but never count, never campaign and never grant votes;
//! - a leader that removes itself keeps leading (not counting itself) until
//!   the removal commits, then steps down, telling a caught-up voter to
//!   campaign at once; not a voter any more, it never campaigns again;
//! - a leader keeps replicating to a removed member until its removal
//!   commits, and then sends it one last append with that commit index, so
//!   the member learns it was removed unless that message is lost (and then
//!   never campaigns); one that does not is kept out by pre-vote and leader
//!   stickiness (§4.2.3).

use core::net::{Ipv4Addr, SocketAddr};
use std::collections::BTreeMap;

use super::progress::Progress;
use super::types::{EntryKind, LogIndex, Member, Membership, NodeId};
use super::{Config, Error, Message, Raft, Role};

/// The membership `Config::voters` stands for, with the addresses of
/// `Config::bootstrap_addrs` (unspecified ones where missing).
pub(super) fn bootstrap(config: &Config) -> Membership {
    let unknown = SocketAddr::from((Ipv4Addr::UNSPECIFIED, 0));
    let members = config
        .voters
        .iter()
        .map(|&id| {
            let (resp_addr, http_addr) = config
                .bootstrap_addrs
                .get(&id)
                .copied()
                .unwrap_or((unknown, unknown));
            (
                id,
                Member {
                    voter: true,
                    resp_addr,
                    http_addr,
                },
            )
        })
        .collect();
    Membership { members }
}

/// Is `new` one legal step from `old` (module docs)?
fn check_step(old: &Membership, new: &Membership) -> Result<(), Error> {
    new.check().map_err(Error::InvalidMembership)?;
    let old_voters = old.voters();
    let new_voters = new.voters();
    let added = new_voters
        .iter()
        .filter(|v| !old_voters.contains(v))
        .count();
    let removed = old_voters
        .iter()
        .filter(|v| !new_voters.contains(v))
        .count();
    if added + removed > 1 {
        return Err(Error::InvalidMembership(
            "the voters may change by one node at a time",
        ));
    }
    Ok(())
}

impl Raft {
    /// The membership in effect: the newest in the log, committed or not
    /// (thesis §4.1), or the bootstrap one.
    pub fn membership(&self) -> &Membership {
        self.log.membership().1
    }

    /// Is the membership in effect committed?
    pub fn membership_committed(&self) -> bool {
        self.log.membership().0 <= self.log.commit_index()
    }

    /// The newest committed membership.
    pub fn committed_membership(&self) -> &Membership {
        self.log.membership_at(self.log.commit_index()).1
    }

    /// The membership in effect at `index` (for the meta of a snapshot taken
    /// there; an index the log compacted gives the snapshot's).
    pub fn membership_at(&self, index: LogIndex) -> Membership {
        self.log.membership_at(index).1.clone()
    }

    /// Leader: appends `new`, the whole next membership (a learner added, a
    /// learner promoted, a member removed, addresses changed), after checking
    /// it is a legal single-server step; returns the entry's index. It takes
    /// effect at once; it is committed once [`Raft::membership_committed`]
    /// says so (or, for the caller, when the entry is applied).
    ///
    /// # Errors
    /// [`Error::NotLeader`], [`Error::TransferInProgress`] as for proposals;
    /// [`Error::MembershipChangeInProgress`] while an earlier membership
    /// entry is uncommitted or before this leader committed an entry of its
    /// term; [`Error::InvalidMembership`] when the voters change by more than
    /// one node, none remains, or an id is 0; [`Error::EntryTooLarge`] for a
    /// membership larger than `max_bytes_per_append`.
    pub fn propose_membership(&mut self, new: Membership) -> Result<LogIndex, Error> {
        if self.role != Role::Leader {
            return Err(Error::NotLeader {
                leader: self.leader,
            });
        }
        if let Some(transfer) = self.transfer {
            return Err(Error::TransferInProgress { to: transfer.to });
        }
        if !self.membership_committed() && !self.breaks_one_change_at_a_time() {
            return Err(Error::MembershipChangeInProgress);
        }
        let own_term_committed = self.log.term_at(self.log.commit_index()) == Some(self.term);
        if !own_term_committed && !self.breaks_own_term_commit_before_change() {
            return Err(Error::MembershipChangeInProgress);
        }
        check_step(self.membership(), &new)?;
        let data = new.encode();
        if data.len() > self.config.max_bytes_per_append {
            return Err(Error::EntryTooLarge {
                len_bytes: data.len(),
                max_bytes: self.config.max_bytes_per_append,
            });
        }
        let before = self.log.last_index();
        let index = self.append_as_leader(EntryKind::Membership, data);
        tracing::info!(id = %self.id, term = %self.term, index = %index,
            voters = ?new.voters(), learners = ?new.learners(), "membership change proposed");
        self.pending_membership = Some(index);
        // The lease rests on the old voters' acks: none until the change
        // commits and a round started after it is acked (`read_index.rs`).
        self.reads.restart_lease();
        self.sync_progress(before);
        // The new quorum may already hold everything (a voter removed).
        self.maybe_commit();
        Ok(index)
    }

    /// Leader: the members it replicates to are those of the membership in
    /// effect and, until that one commits, of the committed one (a removed
    /// member still gets its removal). Adds a probing progress (from
    /// `last_index + 1`) for newcomers, drops the others.
    pub(super) fn sync_progress(&mut self, last_index: LogIndex) {
        let mut targets: Vec<NodeId> = self.membership().members.keys().copied().collect();
        if !self.membership_committed() {
            targets.extend(self.committed_membership().members.keys().copied());
        }
        targets.retain(|&id| id != self.id);
        let now = self.leader_ticks;
        let mut progress = BTreeMap::new();
        for id in targets {
            let p = self
                .progress
                .remove(&id)
                .unwrap_or_else(|| Progress::new(last_index, now));
            progress.insert(id, p);
        }
        self.progress = progress;
    }

    /// Leader, after the commit index moved: once the pending membership
    /// entry commits, stop replicating to removed members, and step down if
    /// this node is no longer a voter. Returns true when it stepped down.
    pub(super) fn on_membership_commit(&mut self) -> bool {
        let Some(index) = self.pending_membership else {
            return false;
        };
        if self.role != Role::Leader || index > self.log.commit_index() {
            return false;
        }
        self.pending_membership = None;
        // A member this change removed gets one last append with the entries
        // it lacks (the removal among them unless it is far behind) and the
        // commit index that covers its removal, even while earlier entries
        // are unacknowledged (Nagle's rule would hold both back for the ack):
        // with its progress dropped, nothing else would tell it.
        let commit = self.log.commit_index();
        let removed: Vec<NodeId> = self
            .progress
            .iter()
            .filter(|(id, p)| !self.membership().contains(**id) && p.commit_sent < commit)
            .map(|(id, _)| *id)
            .collect();
        for peer in removed {
            self.send_append_with(peer, true, true);
        }
        let last_index = self.log.last_index();
        self.sync_progress(last_index);
        if self.is_voter() {
            return false;
        }
        // Tell every follower the commit index first, then hand over to the
        // most caught-up voter (thesis §3.10's TimeoutNow) so the cluster
        // need not wait for an election timeout.
        self.commit_broadcast_pending = true;
        self.flush_commit_broadcast(true);
        let successor = self
            .progress
            .iter()
            .filter(|(id, p)| self.membership().is_voter(**id) && p.match_index == last_index)
            .map(|(id, _)| *id)
            .next();
        if let Some(to) = successor {
            self.send(to, Message::TimeoutNow { term: self.term });
        }
        tracing::info!(id = %self.id, term = %self.term, ?successor,
            "removed from the voters: stepping down");
        self.become_follower(self.term, None);
        true
    }
}
