//! Roles and leader election (§5.2, §5.4.1): the timers, the role transitions,
//! pre-vote (thesis §9.6) and RequestVote on both sides.
//!
//! With pre-vote on, a node whose election timer fires first asks every voter
//! `PreVote` for `term + 1` without changing its own term or vote; only with a
//! majority of grants does it start a real election. A voter grants a pre-vote
//! only when it has not heard from a leader within the minimum election
//! timeout and the asker's log is at least as up-to-date as its own (§5.4.1).
//! So a node cut off from the majority never raises its term, and never
//! disrupts the leader when it comes back. A pre-candidate keeps the
//! `Follower` role (with no known leader).
//!
//! Invariants: the term only grows; at most one vote per term (`voted_for` is
//! set once per term and persisted through the Ready that carries the
//! response); a leader exists only for a term in which a majority voted for it;
//! a pre-vote changes no state on either side.

use std::collections::BTreeMap;

use bytes::Bytes;
use rand::RngExt;

use super::types::{Entry, EntryKind, LogIndex, NodeId, Term};
use super::{Message, Raft, Role};

impl Raft {
    /// Picks a new randomized election timeout in [min, max) ticks (§5.2:
    /// randomization makes split votes rare) and restarts the count.
    pub(super) fn reset_election_timer(&mut self) {
        self.election_elapsed_ticks = 0;
        self.election_timeout_ticks = self.rng.random_range(
            self.config.election_timeout_min_ticks..self.config.election_timeout_max_ticks,
        );
    }

    /// Follower/candidate tick: §5.2, if the election timeout elapses without
    /// hearing from a current leader or granting a vote, start an election.
    /// With pre-vote, the election is preceded by a pre-vote round.
    pub(super) fn tick_election(&mut self) {
        self.election_elapsed_ticks = self.election_elapsed_ticks.saturating_add(1);
        if self.election_elapsed_ticks >= self.config.election_timeout_min_ticks {
            self.startup_lease_guard = false;
        }
        // §4: only a voter of the membership in effect campaigns (a learner,
        // a removed node or one still joining waits for a leader).
        if self.election_elapsed_ticks >= self.election_timeout_ticks && self.is_voter() {
            if self.config.pre_vote {
                self.pre_campaign();
            } else {
                self.campaign(false);
            }
        }
    }

    /// Thesis §9.6: ask every voter whether it would vote for us in
    /// `term + 1`, changing neither our term nor our vote.
    fn pre_campaign(&mut self) {
        self.role = Role::Follower;
        self.leader = None;
        self.reset_leader_state();
        self.reset_election_timer();
        self.pre_campaign = true;
        self.votes_granted.clear();
        self.votes_granted.insert(self.id);
        tracing::debug!(id = %self.id, term = %self.term, "starting pre-vote");
        // Checked: a node at the last term has no term left to campaign in.
        let Some(term) = self.next_term() else {
            return;
        };
        if self.has_vote_quorum() {
            self.campaign(false);
            return;
        }
        let last_log_index = self.log.last_index();
        let last_log_term = self.log.last_term();
        for peer in self.voter_peers() {
            self.send(
                peer,
                Message::PreVote {
                    term,
                    last_log_index,
                    last_log_term,
                },
            );
        }
    }

    /// §5.2: increment the term, vote for self, reset the timer and ask every
    /// other voter for its vote. `transfer` marks an election ordered by the
    /// leader's `TimeoutNow` (thesis §3.10).
    pub(super) fn campaign(&mut self, transfer: bool) {
        self.pre_campaign = false;
        if !self.is_voter() {
            return;
        }
        let Some(term) = self.next_term() else {
            return;
        };
        self.term = term;
        self.voted_for = Some(self.id);
        self.role = Role::Candidate;
        self.leader = None;
        self.reset_leader_state();
        self.reset_election_timer();
        self.votes_granted.clear();
        self.votes_granted.insert(self.id);
        tracing::info!(id = %self.id, term = %self.term, "starting election");
        if self.has_vote_quorum() {
            // A single-voter cluster elects itself.
            self.become_leader();
            return;
        }
        let last_log_index = self.log.last_index();
        let last_log_term = self.log.last_term();
        for peer in self.voter_peers() {
            self.send(
                peer,
                Message::RequestVote {
                    term: self.term,
                    last_log_index,
                    last_log_term,
                    transfer,
                },
            );
        }
    }

    /// `term + 1`, or `None` (logged) when the term is at `u64::MAX`: such a
    /// node never campaigns (it can still follow a leader of its term).
    fn next_term(&self) -> Option<Term> {
        let next = self.term.0.checked_add(1).map(Term);
        if next.is_none() {
            tracing::error!(id = %self.id, term = %self.term,
                "term is at its maximum: this node cannot start an election");
        }
        next
    }

    /// Becomes a follower in `term` (§5.1: a higher term clears the vote).
    pub(super) fn become_follower(&mut self, term: Term, leader: Option<NodeId>) {
        assert!(
            term >= self.term,
            "node {}: term going backwards from {} to {}",
            self.id,
            self.term,
            term
        );
        if term > self.term {
            self.term = term;
            self.voted_for = None;
        }
        if self.role != Role::Follower || self.leader != leader {
            tracing::info!(id = %self.id, term = %self.term, leader = ?leader, "became follower");
        }
        self.role = Role::Follower;
        self.leader = leader;
        self.pre_campaign = false;
        self.reset_leader_state();
        self.reset_election_timer();
    }

    /// Drops everything only a leader keeps; pending reads are dropped too
    /// (the driver fails them on seeing the role/term change).
    fn reset_leader_state(&mut self) {
        self.progress.clear();
        self.replicate_pending = false;
        self.commit_broadcast_pending = false;
        self.reads.clear();
        self.heartbeat_elapsed_ticks = 0;
        self.transfer = None;
        self.pending_membership = None;
    }

    /// §5.2: a candidate with votes from a majority becomes leader; §8: it
    /// appends a no-op of its term so earlier entries can commit (§5.4.2) and
    /// reads can be served (§6.4). A leader whose log holds no membership
    /// appends the bootstrap membership instead of the no-op (it serves the
    /// same purpose), so every log names its membership explicitly before any
    /// change, and a node joining later learns it from the log.
    fn become_leader(&mut self) {
        self.role = Role::Leader;
        self.leader = Some(self.id);
        self.reset_leader_state();
        tracing::info!(id = %self.id, term = %self.term, "became leader");
        if self.log.has_explicit_membership() {
            self.append_as_leader(EntryKind::Noop, Bytes::new());
        } else {
            let bootstrap = self.log.membership().1.encode();
            self.append_as_leader(EntryKind::Membership, bootstrap);
        }
        let (index, _) = self.log.membership();
        self.pending_membership = (index > self.log.commit_index()).then_some(index);
        self.progress = BTreeMap::new();
        // Every follower starts probing just past the entry above.
        self.sync_progress(LogIndex(self.log.last_index().0 - 1));
    }

    /// Appends a new entry of the current term to the leader's log and schedules
    /// its replication for the next `ready()`.
    pub(super) fn append_as_leader(&mut self, kind: EntryKind, data: Bytes) -> LogIndex {
        let index = self.log.append_new(Entry {
            term: self.term,
            index: LogIndex(0),
            kind,
            data,
        });
        self.replicate_pending = true;
        index
    }

    /// Receiver side of RequestVote (Figure 2), after the term check in `step`.
    pub(super) fn handle_request_vote(
        &mut self,
        from: NodeId,
        last_log_index: LogIndex,
        last_log_term: Term,
    ) {
        // Figure 2: grant if votedFor is null or candidateId (at most one vote
        // per term, §5.2) and the candidate's log is at least as up-to-date as
        // ours (§5.4.1, the election restriction).
        // Whether this node is a voter does not matter (thesis §4.1: servers
        // answer RPCs without consulting their configuration): the candidate
        // counts only the voters of its own membership. A learner promoted by
        // an entry it has not received yet must still be able to vote, or a
        // membership whose other voters are down elects no one (a learner
        // never campaigns itself).
        let can_vote = self.voted_for.is_none_or(|v| v == from);
        let up_to_date = self.log.is_up_to_date(last_log_index, last_log_term)
            || self.breaks_voting_restriction();
        let vote_granted = can_vote && up_to_date;
        if vote_granted {
            self.voted_for = Some(from);
            // §5.2: granting a vote resets the election timer.
            self.reset_election_timer();
        }
        tracing::trace!(id = %self.id, term = %self.term, candidate = %from, vote_granted, "vote");
        // The response leaves only through a Ready whose hard state carries
        // the vote, so it is durable before the candidate can count it.
        self.send(
            from,
            Message::RequestVoteResponse {
                term: self.term,
                vote_granted,
            },
        );
    }

    /// Receiver side of PreVote (thesis §9.6), after the term check in `step`:
    /// grant only if we have not heard from a leader within the minimum
    /// election timeout, could vote in that term, and the asker's log is at
    /// least as up-to-date as ours (§5.4.1). Changes no state.
    pub(super) fn handle_pre_vote(
        &mut self,
        from: NodeId,
        term: Term,
        last_log_index: LogIndex,
        last_log_term: Term,
    ) {
        // As for votes, whether we are a voter ourselves does not matter.
        let can_vote =
            term > self.term || (self.leader.is_none() && self.voted_for.is_none_or(|v| v == from));
        let up_to_date = self.log.is_up_to_date(last_log_index, last_log_term)
            || self.breaks_voting_restriction();
        let vote_granted = can_vote && up_to_date && !self.heard_from_leader_recently();
        tracing::trace!(id = %self.id, term = %self.term, candidate = %from, vote_granted, "pre-vote");
        self.send(
            from,
            Message::PreVoteResponse {
                // A grant carries the term asked about, so the asker does not
                // take it as stale; a refusal carries ours (it may be newer).
                term: if vote_granted { term } else { self.term },
                vote_granted,
            },
        );
    }

    /// Pre-candidate side: with a majority of pre-votes for `term + 1`, start
    /// the real election.
    pub(super) fn handle_pre_vote_response(
        &mut self,
        from: NodeId,
        term: Term,
        vote_granted: bool,
    ) {
        if !self.pre_campaign || !vote_granted || Some(term.0) != self.term.0.checked_add(1) {
            return;
        }
        self.votes_granted.insert(from);
        if self.has_vote_quorum() {
            self.campaign(false);
        }
    }

    /// Candidate side: count votes of the current term (§5.2).
    pub(super) fn handle_request_vote_response(&mut self, from: NodeId, vote_granted: bool) {
        if self.role != Role::Candidate || self.pre_campaign || !vote_granted {
            return;
        }
        self.votes_granted.insert(from);
        if self.has_vote_quorum() {
            self.become_leader();
        }
    }

    /// Do the grants received (self included) make a majority of the voters
    /// of the membership in effect? Grants from non-voters do not count.
    fn has_vote_quorum(&self) -> bool {
        let membership = self.log.membership().1;
        let granted = self
            .votes_granted
            .iter()
            .filter(|v| membership.is_voter(**v))
            .count();
        granted >= self.quorum()
    }

    /// A message from an older term: answer requests with our term so the
    /// sender steps down (§5.1), ignore stale responses.
    ///
    /// Answering a stale AppendEntries/InstallSnapshot also gets a node that
    /// raised its term while partitioned back in: the leader learns the higher
    /// term and steps down (with check-quorum, the node's own votes are ignored
    /// by sticky voters, so this is its only way back). Answering a stale
    /// PreVote does the same for a node whose log is ahead but whose term is
    /// behind (the pre-vote + check-quorum deadlock of etcd issue #8501).
    pub(super) fn answer_stale(&mut self, from: NodeId, message: &Message) {
        match message {
            Message::PreVote { .. } => self.send(
                from,
                Message::PreVoteResponse {
                    term: self.term,
                    vote_granted: false,
                },
            ),
            Message::InstallSnapshot { meta, .. } => self.send(
                from,
                Message::InstallSnapshotResponse {
                    term: self.term,
                    last_included_index: meta.last_included_index,
                    success: false,
                },
            ),
            Message::PreVoteResponse { .. }
            | Message::TimeoutNow { .. }
            | Message::InstallSnapshotResponse { .. } => {}
            Message::RequestVote { .. } => self.send(
                from,
                Message::RequestVoteResponse {
                    term: self.term,
                    vote_granted: false,
                },
            ),
            Message::AppendEntries { read_ctx, .. } => self.send(
                from,
                Message::AppendEntriesResponse {
                    term: self.term,
                    success: false,
                    match_index: LogIndex(0),
                    conflict_index: LogIndex(0),
                    conflict_term: None,
                    read_ctx: *read_ctx,
                },
            ),
            Message::RequestVoteResponse { .. } | Message::AppendEntriesResponse { .. } => {}
        }
    }
}
