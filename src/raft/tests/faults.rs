//! The test-only rule breaks the simulator uses to prove its checkers work:
//! each switch breaks exactly its rule.

use bytes::Bytes;

use super::network::{ack, config, drain, envelope, log_of_terms, manual_leader, ELECTION_MAX};
use crate::raft::{HardState, InitialState, LogIndex, Message, Raft, Role, RuleBreaks, Term};

/// `skip_voting_restriction` grants a vote to a candidate whose log is behind
/// (§5.4.1 skipped); at most one vote per term still holds.
#[test]
fn skip_voting_restriction_grants_vote_to_stale_log() {
    let initial = InitialState {
        snapshot: None,
        hard_state: HardState::default(),
        entries: log_of_terms(&[1, 1]),
    };
    let mut raft = Raft::new(config(2, 3), initial, 2).expect("valid");
    raft.set_rule_breaks(RuleBreaks {
        skip_voting_restriction: true,
        ..RuleBreaks::default()
    });
    raft.step(envelope(
        1,
        2,
        Message::RequestVote {
            term: Term(2),
            last_log_index: LogIndex(0),
            last_log_term: Term(0),
            transfer: false,
        },
    ))
    .expect("peer");
    let ready = drain(&mut raft);
    assert!(ready.messages.iter().any(|e| matches!(
        e.message,
        Message::RequestVoteResponse {
            vote_granted: true,
            ..
        }
    )));
}

/// `commit_previous_term_by_counting` commits a previous term's entry once it
/// is on a majority (the Figure 8 bug, §5.4.2).
#[test]
fn commit_previous_term_by_counting_commits_old_entry() {
    let initial = InitialState {
        snapshot: None,
        hard_state: HardState {
            term: Term(3),
            voted_for: None,
            commit_index: LogIndex(1),
        },
        entries: log_of_terms(&[1, 2]),
    };
    let mut s1 = Raft::new(config(1, 5), initial, 1).expect("valid");
    s1.set_rule_breaks(RuleBreaks {
        commit_previous_term_by_counting: true,
        ..RuleBreaks::default()
    });
    drain(&mut s1);
    for _ in 0..ELECTION_MAX {
        s1.tick();
    }
    for from in [2, 3] {
        s1.step(envelope(
            from,
            1,
            Message::RequestVoteResponse {
                term: Term(4),
                vote_granted: true,
            },
        ))
        .expect("peer");
    }
    assert_eq!(s1.status().role, Role::Leader);
    drain(&mut s1);
    s1.step(ack(2, 4, 2, 0)).expect("peer");
    s1.step(ack(3, 4, 2, 0)).expect("peer");
    assert_eq!(
        s1.status().commit_index,
        LogIndex(2),
        "term-2 entry counted"
    );
}

/// `apply_before_commit` hands a leader's new entry out for apply in the same
/// Ready that first persists it, before any follower has it.
#[test]
fn apply_before_commit_hands_out_uncommitted_entries() {
    let mut leader = manual_leader(config(1, 3));
    leader.set_rule_breaks(RuleBreaks {
        apply_before_commit: true,
        ..RuleBreaks::default()
    });
    let (index, _) = leader.propose(Bytes::from("x")).expect("leader");
    let ready = drain(&mut leader);
    assert!(ready.committed_entries.iter().any(|e| e.index == index));
    assert!(leader.status().commit_index < index);
}

/// With no switch on, none of the above happens (the default is safe).
#[test]
fn rule_breaks_default_to_off() {
    let breaks = RuleBreaks::default();
    assert!(
        !breaks.skip_voting_restriction
            && !breaks.commit_previous_term_by_counting
            && !breaks.apply_before_commit
    );
}
