//! The one gate every inbound message passes before [`Raft::step`] acts on it:
//! a peer's message is *input*, and even an authenticated member may be buggy
//! or compromised. A message that breaks one of Raft's invariants is refused
//! here, as a [`Refusal`], before it changes any state; nothing a peer sends
//! can reach an assertion (the assertions left in the core are about our own
//! state, which this gate keeps consistent).
//!
//! # What is refused, and why
//!
//! - **Not for us**: `to` is not this node, `from` is this node or node 0.
//!   Membership is *not* checked (thesis §4.1: servers process requests
//!   without consulting their configuration): a new member must accept the
//!   appends of a leader it does not know yet, a leader removing itself
//!   still leads, a leader answers learners, and a voter may lag behind a
//!   change that made the candidate a voter. What keeps non-members out of
//!   elections is elsewhere: only voters of a node's membership in effect
//!   count toward its quorums, learners and removed nodes never campaign or
//!   grant votes, and a removed node that does not know it was removed is
//!   held off by pre-vote and leader stickiness (§4.2.3). That a peer
//!   belongs to this cluster at all is the transport's check (cluster id).
//! - **A term far beyond ours** (with pre-vote on,
//!   `Config::max_term_jump` > 0, and this node a voter): a message whose term exceeds ours by more
//!   than `max_term_jump`. With pre-vote (thesis §9.6) a term only grows
//!   after a majority agreed to an election, so honest terms advance one
//!   election at a time; a single member announcing term 2^64−1 would
//!   otherwise make every node adopt it (§5.1) and leave no term to elect a
//!   leader in. The jump is still accepted when a *majority* vouches for it:
//!   every message records its sender's term, and when the term reached by a
//!   majority of voters (ourselves included, at our own term) is above ours,
//!   we adopt that term (§5.1; raising a term is always safe). A node that was
//!   down for many elections gets back this way: its pre-vote is refused by
//!   the others with their current term, which is then vouched for by a
//!   majority. A minority of members cannot drag the term past what the
//!   honest majority has reached. Without pre-vote a partitioned node's term
//!   legitimately runs ahead without bound, so the rule is off.
//! - **Impossible AppendEntries** (§5.3): an entry at index 0; entries that
//!   are not consecutive from `prev_log_index + 1`; an entry term below
//!   `prev_log_term` or below the entry before it (terms never go backwards in
//!   a log); an entry or `prev_log_term` above the message term (a leader only
//!   holds entries of its term or earlier); an index above [`MAX_LOG_INDEX`]
//!   (in entries, `prev_log_index` or a snapshot), so the core's own `+ 1`
//!   on its last index can never overflow.
//! - **AppendEntries/InstallSnapshot that contradict our committed log**: an
//!   entry or the `prev_log` pair at or below our commit index with a term our
//!   log does not have there, or a snapshot whose last entry does. Leader
//!   Completeness (§5.4) says every leader holds every committed entry, so only
//!   a faulty sender can contradict one (and it would make us truncate a
//!   committed entry).
//! - **A second leader in one term** (Election Safety, §5.2): an
//!   AppendEntries or InstallSnapshot of our term while we lead it, or from
//!   another node than the leader we already follow in it.
//! - **TimeoutNow not from the current leader of the current term** (thesis
//!   §3.10): only the leader orders a transfer, and only once the target acked
//!   its AppendEntries of that term, so the target's term equals the leader's.
//! - **An impossible InstallSnapshot** (§7): last included index or term 0,
//!   term above the message term, or a membership without a voter.
//! - **A membership entry that is not one**: its payload does not decode
//!   as a [`Membership`] with a voter (hostile bytes must not become the
//!   membership in effect).
//! - **RequestVote/PreVote with a last log term above the asked term**: a
//!   candidate's log cannot hold an entry of a term it has not reached.
//!
//! The driver logs refusals (rate-limited) and counts them; see `node`. The
//! payload check (an entry must decode as a state-machine command) lives with
//! the payload's owner, in `node/validate.rs`, and runs before this one.

use std::collections::BTreeMap;

use super::types::{Entry, EntryKind, LogIndex, Membership, NodeId, Term};
use super::{Message, Raft, Role};

/// The highest log index a message may name: far beyond any real log
/// (2^63 − 1 entries), and far enough below `u64::MAX` that index
/// arithmetic on a log that reached it cannot overflow.
pub const MAX_LOG_INDEX: LogIndex = LogIndex(i64::MAX as u64);

/// Why an inbound message was refused (module docs). Each variant carries
/// what the log line and a test need; `kind()` names it for the metric.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Refusal {
    /// `from` is this node (or 0), or `to` is not this node.
    #[error("message from {from} to {to}: not a member of this cluster")]
    NotMember {
        /// Sender.
        from: NodeId,
        /// Recipient.
        to: NodeId,
    },
    /// The term jumps further ahead than `max_term_jump`, and no majority
    /// vouches for it.
    #[error("term {term} is more than {max_jump} beyond our term {current}")]
    TermTooFar {
        /// The message's term.
        term: Term,
        /// Ours.
        current: Term,
        /// The configured bound.
        max_jump: u64,
    },
    /// AppendEntries or InstallSnapshot of our term while we lead it, or from
    /// another node than the leader we follow in it.
    #[error("{from} acts as leader of term {term}, whose leader is {leader}")]
    SecondLeader {
        /// Sender.
        from: NodeId,
        /// The term.
        term: Term,
        /// The leader of that term we know (possibly ourselves).
        leader: NodeId,
    },
    /// TimeoutNow not from the leader of our current term.
    #[error("TimeoutNow from {from} in term {term}, which is not from the current leader")]
    TimeoutNowNotFromLeader {
        /// Sender.
        from: NodeId,
        /// The message's term.
        term: Term,
    },
    /// Entries or indexes that no log can hold.
    #[error("malformed {message}: {reason}")]
    Malformed {
        /// The message type.
        message: &'static str,
        /// What is wrong.
        reason: &'static str,
    },
    /// The message contradicts an entry we hold at or below our commit index.
    #[error(
        "message contradicts committed entry {index} (ours has term {ours}, it says {theirs})"
    )]
    ContradictsCommitted {
        /// The index.
        index: LogIndex,
        /// Our term there.
        ours: Term,
        /// The message's term there.
        theirs: Term,
    },
}

impl Refusal {
    /// A short stable name, for a metric label.
    pub fn kind(&self) -> &'static str {
        match self {
            Refusal::NotMember { .. } => "not_member",
            Refusal::TermTooFar { .. } => "term_too_far",
            Refusal::SecondLeader { .. } => "second_leader",
            Refusal::TimeoutNowNotFromLeader { .. } => "timeout_now_not_from_leader",
            Refusal::Malformed { .. } => "malformed",
            Refusal::ContradictsCommitted { .. } => "contradicts_committed",
        }
    }
}

/// The highest term each peer has shown us (the "majority vouches" rule).
#[derive(Debug, Default)]
pub(crate) struct PeerTerms {
    seen: BTreeMap<NodeId, Term>,
}

impl PeerTerms {
    fn record(&mut self, from: NodeId, term: Term) {
        let entry = self.seen.entry(from).or_default();
        *entry = (*entry).max(term);
    }

    /// The highest term reached by a majority of `voters`, counting `me` at
    /// `current`: sort every voter's term descending and take the
    /// `quorum`-th.
    fn majority_term(&self, voters: &[NodeId], me: NodeId, current: Term) -> Term {
        let mut terms: Vec<Term> = voters
            .iter()
            .map(|v| {
                if *v == me {
                    current
                } else {
                    self.seen.get(v).copied().unwrap_or_default()
                }
            })
            .collect();
        terms.sort_unstable_by(|a, b| b.cmp(a));
        let quorum = voters.len() / 2 + 1;
        terms.get(quorum - 1).copied().unwrap_or(current)
    }
}

fn malformed(message: &'static str, reason: &'static str) -> Refusal {
    Refusal::Malformed { message, reason }
}

impl Raft {
    /// Checks `message` from `from` to `to` against the rules in the module
    /// docs, before `step` acts on it. May raise our term when a majority
    /// vouches for a far term (that is the only state it changes).
    pub(super) fn validate_inbound(
        &mut self,
        from: NodeId,
        to: NodeId,
        message: &Message,
    ) -> Result<(), Refusal> {
        if to != self.id || from == self.id || from == NodeId(0) {
            return Err(Refusal::NotMember { from, to });
        }
        let term = message.term();
        self.peer_terms.record(from, term);
        check_shape(message)?;
        if term < self.term {
            // Stale: `step` only answers it with our term (§5.1). A deposed
            // leader may well hold entries that contradict our committed
            // ones, so the checks below do not apply.
            return Ok(());
        }
        self.check_term_jump(term)?;
        self.check_leadership(from, message)?;
        self.check_against_log(message)
    }

    /// The far-term rule and its majority escape (module docs).
    fn check_term_jump(&mut self, term: Term) -> Result<(), Refusal> {
        let max_jump = self.config.max_term_jump;
        // A non-voter (a learner, or a node still joining with no
        // membership) never campaigns, so a term it adopts cannot elect
        // anyone; and it may know no voters to vouch for the real term.
        if !self.config.pre_vote || max_jump == 0 || !self.is_voter() {
            return Ok(());
        }
        let within = |current: Term| term.0 <= current.0.saturating_add(max_jump);
        if within(self.term) {
            return Ok(());
        }
        let voters = self.membership().voters();
        let vouched = self.peer_terms.majority_term(&voters, self.id, self.term);
        if vouched > self.term {
            tracing::info!(id = %self.id, term = %self.term, vouched = %vouched,
                "a majority of voters is in a later term: adopting it");
            self.become_follower(vouched, None);
            if within(self.term) {
                return Ok(());
            }
        }
        Err(Refusal::TermTooFar {
            term,
            current: self.term,
            max_jump,
        })
    }

    /// Election Safety (§5.2) and the transfer rule (thesis §3.10).
    fn check_leadership(&self, from: NodeId, message: &Message) -> Result<(), Refusal> {
        let term = message.term();
        match message {
            Message::AppendEntries { .. } | Message::InstallSnapshot { .. }
                if term == self.term =>
            {
                let leader = if self.role == Role::Leader {
                    Some(self.id)
                } else {
                    self.leader
                };
                match leader {
                    Some(leader) if leader != from => {
                        Err(Refusal::SecondLeader { from, term, leader })
                    }
                    _ => Ok(()),
                }
            }
            // (Stale messages never get here.)
            Message::TimeoutNow { .. }
                if term != self.term || self.role == Role::Leader || self.leader != Some(from) =>
            {
                Err(Refusal::TimeoutNowNotFromLeader { from, term })
            }
            _ => Ok(()),
        }
    }

    /// Messages that contradict what we hold committed (Leader Completeness,
    /// §5.4), and snapshots for another configuration.
    fn check_against_log(&self, message: &Message) -> Result<(), Refusal> {
        let commit = self.log.commit_index();
        let committed_term = |index: LogIndex| {
            if index > commit {
                None
            } else {
                self.log.term_at(index)
            }
        };
        let contradicts = |index: LogIndex, theirs: Term| match committed_term(index) {
            Some(ours) if ours != theirs && index > LogIndex(0) => {
                Err(Refusal::ContradictsCommitted {
                    index,
                    ours,
                    theirs,
                })
            }
            _ => Ok(()),
        };
        match message {
            Message::AppendEntries {
                prev_log_index,
                prev_log_term,
                entries,
                ..
            } => {
                contradicts(*prev_log_index, *prev_log_term)?;
                for entry in entries.iter().take_while(|e| e.index <= commit) {
                    contradicts(entry.index, entry.term)?;
                }
                Ok(())
            }
            Message::InstallSnapshot { meta, .. } => {
                contradicts(meta.last_included_index, meta.last_included_term)
            }
            _ => Ok(()),
        }
    }
}

/// Checks that need nothing but the message itself.
fn check_shape(message: &Message) -> Result<(), Refusal> {
    match message {
        Message::AppendEntries {
            term,
            prev_log_index,
            prev_log_term,
            entries,
            ..
        } => check_entries(*term, *prev_log_index, *prev_log_term, entries),
        Message::InstallSnapshot { term, meta } => {
            if meta.last_included_index > MAX_LOG_INDEX {
                return Err(malformed("InstallSnapshot", "index beyond any log"));
            }
            if meta.last_included_index == LogIndex(0) || meta.last_included_term == Term(0) {
                return Err(malformed("InstallSnapshot", "snapshot at index or term 0"));
            }
            if meta.last_included_term > *term {
                return Err(malformed(
                    "InstallSnapshot",
                    "snapshot term above the message term",
                ));
            }
            if meta.membership.check().is_err() {
                return Err(malformed(
                    "InstallSnapshot",
                    "snapshot without a valid membership",
                ));
            }
            Ok(())
        }
        Message::RequestVote {
            term,
            last_log_term,
            ..
        }
        | Message::PreVote {
            term,
            last_log_term,
            ..
        } if last_log_term > term => Err(malformed(
            "RequestVote",
            "last log term above the term asked for",
        )),
        _ => Ok(()),
    }
}

/// §5.3: the entries of one AppendEntries are consecutive after
/// `prev_log_index`, their terms never decrease from `prev_log_term`, and
/// none is above the sender's term.
fn check_entries(
    term: Term,
    prev_log_index: LogIndex,
    prev_log_term: Term,
    entries: &[Entry],
) -> Result<(), Refusal> {
    const AE: &str = "AppendEntries";
    if prev_log_term > term {
        return Err(malformed(AE, "prev_log_term above the message term"));
    }
    if prev_log_index > MAX_LOG_INDEX {
        return Err(malformed(AE, "prev_log_index beyond any log"));
    }
    if prev_log_index == LogIndex(0) && prev_log_term != Term(0) {
        return Err(malformed(AE, "a term for the entry before index 1"));
    }
    let mut expected = prev_log_index;
    let mut previous_term = prev_log_term;
    for entry in entries {
        expected = match expected.0.checked_add(1) {
            Some(next) => LogIndex(next),
            None => return Err(malformed(AE, "entry index overflows")),
        };
        if entry.index != expected {
            return Err(malformed(
                AE,
                "entries not consecutive after prev_log_index",
            ));
        }
        if entry.index > MAX_LOG_INDEX {
            return Err(malformed(AE, "entry index beyond any log"));
        }
        if entry.term == Term(0) {
            return Err(malformed(AE, "entry of term 0"));
        }
        if entry.term < previous_term {
            return Err(malformed(AE, "entry terms go backwards"));
        }
        if entry.term > term {
            return Err(malformed(AE, "entry term above the message term"));
        }
        if entry.kind == EntryKind::Membership
            && Membership::decode(&entry.data).map_or(true, |m| m.check().is_err())
        {
            return Err(malformed(AE, "a membership entry that is not a membership"));
        }
        previous_term = entry.term;
    }
    Ok(())
}
