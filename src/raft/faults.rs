//! Deliberate rule breaks, compiled only in tests: the simulator switches one
//! on to prove that its checkers catch the violation it causes (issue 3, "the
//! simulator has teeth"). Outside `cfg(test)` every query here is a constant
//! `false`, so production code cannot break a rule.
//!
//! Each switch breaks exactly one rule and nothing else:
//! - `skip_voting_restriction`: a voter grants its vote without the §5.4.1
//!   up-to-date check (at-most-one-vote-per-term still holds);
//! - `commit_previous_term_by_counting`: the leader commits any entry stored
//!   on a majority, whatever its term (the Figure 8 bug, §5.4.2);
//! - `apply_before_commit`: entries are handed out for apply as soon as the
//!   node has them in its log (leader: once appended; follower: once
//!   received), before they are committed;
//! - `concurrent_membership_changes`: [`Raft::propose_membership`] accepts a
//!   change while an earlier one is uncommitted (thesis §4.1: one at a time);
//! - `change_before_own_term_commit`: a new leader may propose a membership
//!   change before it committed an entry of its term (the §4.1 bug fix).

use super::Raft;

/// Which rules to break (all off by default).
#[cfg(test)]
#[derive(Clone, Copy, Debug, Default)]
pub(crate) struct RuleBreaks {
    /// Grant votes without the §5.4.1 up-to-date check.
    pub skip_voting_restriction: bool,
    /// Commit entries of earlier terms by counting replicas (Figure 8).
    pub commit_previous_term_by_counting: bool,
    /// Hand out entries for apply before they are committed.
    pub apply_before_commit: bool,
    /// Accept a membership change while another is uncommitted.
    pub concurrent_membership_changes: bool,
    /// Accept a membership change before an entry of the leader's term
    /// committed.
    pub change_before_own_term_commit: bool,
}

#[cfg(test)]
impl Raft {
    /// Switches rule breaks on or off for this node (test-only).
    pub(crate) fn set_rule_breaks(&mut self, breaks: RuleBreaks) {
        self.rule_breaks = breaks;
        self.log.set_apply_before_commit(breaks.apply_before_commit);
    }
}

impl Raft {
    /// True when the §5.4.1 voting restriction is switched off (tests only).
    pub(super) fn breaks_voting_restriction(&self) -> bool {
        #[cfg(test)]
        {
            self.rule_breaks.skip_voting_restriction
        }
        #[cfg(not(test))]
        {
            false
        }
    }

    /// True when the §5.4.2 current-term commit rule is switched off (tests only).
    pub(super) fn breaks_current_term_commit(&self) -> bool {
        #[cfg(test)]
        {
            self.rule_breaks.commit_previous_term_by_counting
        }
        #[cfg(not(test))]
        {
            false
        }
    }

    /// True when one-change-at-a-time is switched off (tests only).
    pub(super) fn breaks_one_change_at_a_time(&self) -> bool {
        #[cfg(test)]
        {
            self.rule_breaks.concurrent_membership_changes
        }
        #[cfg(not(test))]
        {
            false
        }
    }

    /// True when the own-term-commit-before-change rule is switched off
    /// (tests only).
    pub(super) fn breaks_own_term_commit_before_change(&self) -> bool {
        #[cfg(test)]
        {
            self.rule_breaks.change_before_own_term_commit
        }
        #[cfg(not(test))]
        {
            false
        }
    }
}
