//! §5.1–§5.2 and §5.4.1: terms, leader election, the voting rules.

use super::network::{
    drain, envelope, log_of_terms, node, tick_until_candidate, Network, ELECTION_MAX, ELECTION_MIN,
    HEARTBEAT,
};
use crate::raft::{
    EntryKind, Error, HardState, InitialState, LogIndex, Message, NodeId, Raft, Refusal, Role, Term,
};

/// Votes granted in a Ready, by recipient.
fn vote_replies(messages: &[crate::raft::Envelope]) -> Vec<(u64, bool)> {
    messages
        .iter()
        .filter_map(|e| match e.message {
            Message::RequestVoteResponse { vote_granted, .. } => Some((e.to.0, vote_granted)),
            _ => None,
        })
        .collect()
}

/// §5.2: a follower that hears nothing for its election timeout (randomized in
/// [min, max) ticks) increments its term, votes for itself and sends
/// RequestVote with its last log index and term to every other server.
#[test]
fn follower_starts_election_after_randomized_timeout() {
    let mut raft = node(1, 3);
    let mut ticks = 0;
    while raft.status().role == Role::Follower {
        raft.tick();
        ticks += 1;
        assert!(ticks <= ELECTION_MAX, "no election");
    }
    assert!(
        (ELECTION_MIN..ELECTION_MAX).contains(&ticks),
        "timeout {ticks}"
    );
    let status = raft.status();
    assert_eq!((status.role, status.term), (Role::Candidate, Term(1)));
    let ready = drain(&mut raft);
    assert_eq!(ready.hard_state.map(|h| h.voted_for), Some(Some(NodeId(1))));
    let mut to: Vec<u64> = ready.messages.iter().map(|e| e.to.0).collect();
    to.sort_unstable();
    assert_eq!(to, vec![2, 3]);
    assert!(ready.messages.iter().all(|e| e.message
        == Message::RequestVote {
            term: Term(1),
            last_log_index: LogIndex(0),
            last_log_term: Term(0),
            transfer: false,
        }));
}

/// §5.2: timeouts are randomized (different seeds spread out) yet reproducible
/// from the seed (the same seed gives the same timeout).
#[test]
fn election_timeouts_are_randomized_and_reproducible_from_seed() {
    let timeout = |seed: u64| {
        let config = super::network::config(1, 3);
        let mut raft = Raft::new(config, InitialState::default(), seed).expect("valid");
        let mut ticks = 0;
        while raft.status().role == Role::Follower {
            raft.tick();
            ticks += 1;
        }
        ticks
    };
    let timeouts: std::collections::BTreeSet<u32> = (0..20).map(timeout).collect();
    assert!(timeouts.len() > 1, "timeouts not randomized: {timeouts:?}");
    assert_eq!(timeout(7), timeout(7));
}

/// §5.2 + §8: a candidate that receives votes from a majority becomes leader
/// and appends a no-op entry of its term, sent in its first AppendEntries.
#[test]
fn candidate_with_majority_votes_becomes_leader_and_appends_noop() {
    let mut raft = node(1, 3);
    tick_until_candidate(&mut raft);
    raft.step(envelope(
        2,
        1,
        Message::RequestVoteResponse {
            term: Term(1),
            vote_granted: true,
        },
    ))
    .expect("peer");
    let status = raft.status();
    assert_eq!(
        (status.role, status.leader),
        (Role::Leader, Some(NodeId(1)))
    );
    let ready = drain(&mut raft);
    assert_eq!(ready.entries.len(), 1);
    // The log named no membership yet: the no-op's place is taken by the
    // bootstrap membership (`raft/membership.rs`).
    assert_eq!(ready.entries[0].kind, EntryKind::Membership);
    assert_eq!(
        crate::raft::Membership::decode(&ready.entries[0].data)
            .expect("decodes")
            .voters(),
        vec![NodeId(1), NodeId(2), NodeId(3)]
    );
    assert_eq!(ready.entries[0].term, Term(1));
    let appends = ready
        .messages
        .iter()
        .filter(
            |e| matches!(&e.message, Message::AppendEntries { entries, .. } if entries.len() == 1),
        )
        .count();
    assert_eq!(appends, 2, "the no-op goes to both followers");
}

/// §5.2: a candidate does not become leader with only a minority (a denied
/// vote does not count); after another timeout it retries in a new term.
#[test]
fn candidate_without_majority_retries_in_next_term() {
    let mut raft = node(1, 5);
    tick_until_candidate(&mut raft);
    for from in [2, 3, 4] {
        raft.step(envelope(
            from,
            1,
            Message::RequestVoteResponse {
                term: Term(1),
                vote_granted: from == 2,
            },
        ))
        .expect("peer");
    }
    assert_eq!(raft.status().role, Role::Candidate);
    tick_until_candidate(&mut raft);
    for _ in 0..ELECTION_MAX {
        raft.tick();
    }
    assert!(raft.status().term >= Term(2));
    assert_eq!(raft.status().role, Role::Candidate);
}

/// Persistence contract (Figure 2, "persistent state … updated on stable
/// storage before responding"): the vote is in the hard state of the very
/// Ready that carries the granting response.
#[test]
fn vote_is_in_hard_state_of_the_same_ready_as_the_response() {
    let mut raft = node(2, 3);
    raft.step(envelope(
        1,
        2,
        Message::RequestVote {
            term: Term(4),
            last_log_index: LogIndex(0),
            last_log_term: Term(0),
            transfer: false,
        },
    ))
    .expect("peer");
    let ready = raft.ready();
    assert_eq!(
        ready.hard_state,
        Some(HardState {
            term: Term(4),
            voted_for: Some(NodeId(1)),
            commit_index: LogIndex(0)
        })
    );
    assert_eq!(vote_replies(&ready.messages), vec![(1, true)]);
    raft.advance(ready);
    assert!(!raft.has_ready());
}

/// §5.2: each server votes for at most one candidate in a given term (first
/// come, first served); a repeated request from the same candidate is granted
/// again (idempotent), a rival's is not.
#[test]
fn voter_grants_at_most_one_vote_per_term() {
    let mut raft = node(3, 3);
    let request = |from| {
        envelope(
            from,
            3,
            Message::RequestVote {
                term: Term(1),
                last_log_index: LogIndex(0),
                last_log_term: Term(0),
                transfer: false,
            },
        )
    };
    raft.step(request(1)).expect("peer");
    raft.step(request(2)).expect("peer");
    raft.step(request(1)).expect("peer");
    let ready = drain(&mut raft);
    assert_eq!(
        vote_replies(&ready.messages),
        vec![(1, true), (2, false), (1, true)]
    );
    // The vote survives a restart through the hard state.
    let hard_state = ready.hard_state.expect("vote persisted");
    let mut restarted = Raft::new(
        super::network::config(3, 3),
        InitialState {
            snapshot: None,
            hard_state,
            entries: Vec::new(),
        },
        9,
    )
    .expect("valid");
    restarted.step(request(2)).expect("peer");
    assert_eq!(
        vote_replies(&drain(&mut restarted).messages),
        vec![(2, false)]
    );
}

/// §5.4.1: a voter denies its vote if its own log is more up-to-date: a higher
/// last term wins; with equal last terms, the longer log wins.
#[test]
fn candidate_with_stale_log_gets_no_vote() {
    let voter_state = InitialState {
        snapshot: None,
        hard_state: HardState {
            term: Term(3),
            voted_for: None,
            commit_index: LogIndex(0),
        },
        entries: log_of_terms(&[1, 2, 3]),
    };
    let cases = [
        (LogIndex(5), Term(2), false), // longer but older last term
        (LogIndex(2), Term(3), false), // same last term, shorter
        (LogIndex(3), Term(3), true),  // identical
        (LogIndex(1), Term(4), true),  // newer last term
    ];
    for (last_log_index, last_log_term, expected) in cases {
        let mut voter =
            Raft::new(super::network::config(2, 3), voter_state.clone(), 2).expect("valid");
        voter
            .step(envelope(
                1,
                2,
                Message::RequestVote {
                    term: Term(5),
                    last_log_index,
                    last_log_term,
                    transfer: false,
                },
            ))
            .expect("peer");
        let ready = drain(&mut voter);
        assert_eq!(
            vote_replies(&ready.messages),
            vec![(1, expected)],
            "candidate last log ({last_log_index}, {last_log_term})"
        );
        // Either way, the higher term is adopted (§5.1).
        assert_eq!(voter.status().term, Term(5));
    }
}

/// §5.1: a leader (or candidate) that sees a higher term in any message
/// reverts to follower and adopts the term, clearing its vote.
#[test]
fn higher_term_makes_leader_step_down() {
    let mut net = Network::new(3, 1);
    net.elect(1);
    let term = net.raft(1).status().term;
    net.raft(1)
        .step(envelope(
            2,
            1,
            Message::AppendEntriesResponse {
                term: Term(term.0 + 1),
                success: false,
                match_index: LogIndex(0),
                conflict_index: LogIndex(0),
                conflict_term: None,
                read_ctx: 0,
            },
        ))
        .expect("peer");
    let status = net.raft(1).status();
    assert_eq!(
        (status.role, status.term, status.leader),
        (Role::Follower, Term(term.0 + 1), None)
    );
    let ready = drain(net.raft(1));
    assert_eq!(
        ready.hard_state.map(|h| (h.term, h.voted_for)),
        Some((Term(term.0 + 1), None))
    );
    assert_eq!(
        net.raft(1).propose("x".into()),
        Err(Error::NotLeader { leader: None })
    );
}

/// §5.1: a request with a stale term is rejected and answered with the current
/// term, so the stale sender updates itself; the receiver's state is unchanged.
#[test]
fn request_with_stale_term_is_rejected_with_current_term() {
    let mut raft = node(2, 3);
    raft.step(envelope(
        1,
        2,
        Message::RequestVote {
            term: Term(5),
            last_log_index: LogIndex(0),
            last_log_term: Term(0),
            transfer: false,
        },
    ))
    .expect("peer");
    drain(&mut raft);
    raft.step(envelope(
        3,
        2,
        Message::RequestVote {
            term: Term(4),
            last_log_index: LogIndex(9),
            last_log_term: Term(4),
            transfer: false,
        },
    ))
    .expect("peer");
    raft.step(envelope(
        3,
        2,
        Message::AppendEntries {
            term: Term(4),
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: log_of_terms(&[4]),
            leader_commit: LogIndex(1),
            read_ctx: 0,
        },
    ))
    .expect("peer");
    let ready = drain(&mut raft);
    assert_eq!(ready.hard_state, None);
    assert!(ready.entries.is_empty());
    assert_eq!(ready.messages.len(), 2);
    for reply in &ready.messages {
        match reply.message {
            Message::RequestVoteResponse { term, vote_granted } => {
                assert_eq!((term, vote_granted), (Term(5), false))
            }
            Message::AppendEntriesResponse { term, success, .. } => {
                assert_eq!((term, success), (Term(5), false))
            }
            ref other => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(raft.status().leader, None);
}

/// §5.2: a candidate that receives AppendEntries from a leader of its own term
/// recognizes it and returns to follower.
#[test]
fn candidate_steps_down_on_append_from_leader_of_same_term() {
    let mut raft = node(1, 3);
    tick_until_candidate(&mut raft);
    raft.step(envelope(
        2,
        1,
        Message::AppendEntries {
            term: Term(1),
            prev_log_index: LogIndex(0),
            prev_log_term: Term(0),
            entries: Vec::new(),
            leader_commit: LogIndex(0),
            read_ctx: 0,
        },
    ))
    .expect("peer");
    let status = raft.status();
    assert_eq!(
        (status.role, status.term, status.leader),
        (Role::Follower, Term(1), Some(NodeId(2)))
    );
}

/// §5.2: followers remain followers as long as they receive valid
/// AppendEntries from the current leader: each one resets the election timer.
#[test]
fn follower_resets_election_timer_on_append_from_current_leader() {
    let mut net = Network::new(3, 2);
    net.elect(1);
    let term = net.raft(1).status().term;
    // Many election timeouts pass; heartbeats keep followers quiet.
    for _ in 0..5 * ELECTION_MAX {
        net.tick_all();
    }
    for id in 1..=3 {
        assert_eq!(
            net.raft(id).status().term,
            term,
            "node {id} started an election"
        );
    }
    assert_eq!(net.leader(), Some(1));
    // Without the leader, a follower times out.
    net.isolate(1);
    for _ in 0..2 * ELECTION_MAX {
        net.tick_all();
    }
    assert!(matches!(net.leader(), Some(2) | Some(3)));
}

/// §5.2: the leader sends AppendEntries every `heartbeat_interval_ticks` when
/// idle.
#[test]
fn leader_sends_heartbeats_every_interval() {
    let mut net = Network::new(3, 3);
    net.elect(1);
    for _ in 0..HEARTBEAT - 1 {
        net.raft(1).tick();
        assert!(drain(net.raft(1)).messages.is_empty());
    }
    net.raft(1).tick();
    let ready = drain(net.raft(1));
    let heartbeats: Vec<u64> = ready
        .messages
        .iter()
        .filter(
            |e| matches!(&e.message, Message::AppendEntries { entries, .. } if entries.is_empty()),
        )
        .map(|e| e.to.0)
        .collect();
    assert_eq!(heartbeats, vec![2, 3]);
}

/// §5.2 with one voter: the node elects itself at its first timeout.
#[test]
fn single_node_elects_itself() {
    let mut raft = node(1, 1);
    tick_until_candidate(&mut raft);
    assert_eq!(raft.status().role, Role::Leader);
}

/// Messages from node 0 or from ourselves, or addressed to another node,
/// are refused. (A sender outside our membership is not: thesis §4.1,
/// `raft/validate.rs`; `tests/membership.rs` covers what it may do.)
#[test]
fn step_rejects_unknown_peer() {
    let mut raft = node(1, 3);
    let vote = Message::RequestVote {
        term: Term(1),
        last_log_index: LogIndex(0),
        last_log_term: Term(0),
        transfer: false,
    };
    for from in [0, 1] {
        assert_eq!(
            raft.step(envelope(from, 1, vote.clone())),
            Err(Error::Refused {
                from: NodeId(from),
                refusal: Refusal::NotMember {
                    from: NodeId(from),
                    to: NodeId(1)
                }
            })
        );
    }
    assert_eq!(
        raft.step(envelope(2, 3, vote)),
        Err(Error::Refused {
            from: NodeId(2),
            refusal: Refusal::NotMember {
                from: NodeId(2),
                to: NodeId(3)
            }
        })
    );
    assert!(!raft.has_ready());
}

/// Invalid configurations are refused with a reason.
#[test]
fn new_rejects_invalid_config() {
    // A node outside the bootstrap voters is fine (it joins later); id 0
    // and duplicate voters are not.
    let mut config = super::network::config(4, 3);
    Raft::new(config.clone(), InitialState::default(), 0).expect("a joining node");
    config.id = NodeId(0);
    assert!(matches!(
        Raft::new(config.clone(), InitialState::default(), 0),
        Err(Error::InvalidConfig(_))
    ));
    config.id = NodeId(1);
    config.voters.push(NodeId(2));
    assert!(matches!(
        Raft::new(config.clone(), InitialState::default(), 0),
        Err(Error::InvalidConfig(_))
    ));
    config.voters.pop();
    config.election_timeout_max_ticks = config.election_timeout_min_ticks;
    assert!(matches!(
        Raft::new(config, InitialState::default(), 0),
        Err(Error::InvalidConfig(_))
    ));
}
