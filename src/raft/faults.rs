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
//!   received), before they are committed.

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
}
