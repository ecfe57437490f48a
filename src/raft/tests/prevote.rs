//! Thesis §9.6 (pre-vote, leader stickiness) and §6.2 (check-quorum), with
//! the known liveness traps of combining them.

use bytes::Bytes;

use super::network::{
    drain, envelope, log_of_terms, production_config, Network, ELECTION_MAX, ELECTION_MIN,
};
use crate::raft::{HardState, InitialState, LogIndex, Message, NodeId, Raft, Role, Term};

/// A lone production-config node (pre-vote and check-quorum on).
fn production_node(id: u64, n: u64) -> Raft {
    Raft::new(production_config(id, n), InitialState::default(), id).expect("valid")
}

/// Ticks `raft` until its election timer fires; returns that Ready.
fn tick_until_timeout(raft: &mut Raft) -> crate::raft::Ready {
    for _ in 0..ELECTION_MAX {
        raft.tick();
        if raft.has_ready() {
            return drain(raft);
        }
    }
    panic!("no timeout within {ELECTION_MAX} ticks");
}

/// §9.6: when its election timer fires, a pre-vote node asks `PreVote` for
/// term + 1 with its last log position, and changes neither its term nor its
/// vote (no hard state to persist).
#[test]
fn pre_vote_does_not_raise_term_or_change_vote() {
    let mut raft = production_node(1, 3);
    let ready = tick_until_timeout(&mut raft);
    assert_eq!(ready.hard_state, None);
    let status = raft.status();
    assert_eq!((status.role, status.term), (Role::Follower, Term(0)));
    assert_eq!(ready.messages.len(), 2);
    assert!(ready.messages.iter().all(|e| e.message
        == Message::PreVote {
            term: Term(1),
            last_log_index: LogIndex(0),
            last_log_term: Term(0),
        }));
}

/// §9.6: only a majority of granted pre-votes (self included) starts the real
/// election: term + 1, vote for self, RequestVote to all.
#[test]
fn pre_candidate_campaigns_only_with_majority_of_pre_votes() {
    let mut raft = production_node(1, 5);
    tick_until_timeout(&mut raft);
    let grant = |from| {
        envelope(
            from,
            1,
            Message::PreVoteResponse {
                term: Term(1),
                vote_granted: true,
            },
        )
    };
    raft.step(grant(2)).expect("peer");
    assert_eq!(raft.status().term, Term(0), "2 of 5 is no majority");
    raft.step(grant(3)).expect("peer");
    assert_eq!(
        (raft.status().role, raft.status().term),
        (Role::Candidate, Term(1))
    );
    let ready = drain(&mut raft);
    assert_eq!(ready.hard_state.map(|h| h.voted_for), Some(Some(NodeId(1))));
    assert_eq!(
        ready
            .messages
            .iter()
            .filter(|e| matches!(e.message, Message::RequestVote { .. }))
            .count(),
        4
    );
}

/// §9.6: a voter grants a pre-vote only if it has not heard from a leader
/// within the minimum election timeout and the asker's log is up to date
/// (§5.4.1); answering changes none of its own state.
#[test]
fn voter_grants_pre_vote_only_without_recent_leader_and_for_up_to_date_log() {
    let mut net = Network::with_config(3, 1, production_config);
    net.elect(1);
    let pre_vote = |last_log_index, last_log_term| {
        envelope(
            2,
            3,
            Message::PreVote {
                term: Term(2),
                last_log_index: LogIndex(last_log_index),
                last_log_term: Term(last_log_term),
            },
        )
    };
    let granted = |net: &mut Network| {
        let ready = drain(net.raft(3));
        ready.messages.iter().find_map(|e| match e.message {
            Message::PreVoteResponse { vote_granted, term } => Some((vote_granted, term)),
            _ => None,
        })
    };
    net.raft(3).step(pre_vote(1, 1)).expect("peer");
    assert_eq!(
        granted(&mut net),
        Some((false, Term(1))),
        "leader heard recently"
    );
    // The leader goes silent for a minimum election timeout.
    net.isolate(1);
    for _ in 0..ELECTION_MIN {
        net.raft(3).tick();
    }
    net.raft(3).step(pre_vote(0, 0)).expect("peer");
    assert_eq!(granted(&mut net), Some((false, Term(1))), "stale log");
    net.raft(3).step(pre_vote(1, 1)).expect("peer");
    assert_eq!(granted(&mut net), Some((true, Term(2))));
    let status = net.raft(3).status();
    assert_eq!((status.term, status.role), (Term(1), Role::Follower));
}

/// §9.6: a follower partitioned away keeps timing out, but its pre-votes
/// fail, so its term never rises; after the partition heals it rejoins under
/// the same leader and term.
#[test]
fn partitioned_follower_does_not_raise_term_or_disrupt_leader() {
    let mut net = Network::with_config(3, 2, production_config);
    net.elect(1);
    net.isolate(3);
    for _ in 0..10 * ELECTION_MAX {
        net.tick_all();
    }
    assert_eq!(net.raft(3).status().term, Term(1));
    net.heal();
    for _ in 0..2 * ELECTION_MAX {
        net.tick_all();
    }
    assert_eq!(net.leader(), Some(1));
    for id in 1..=3 {
        assert_eq!(net.raft(id).status().term, Term(1), "node {id}");
    }
}

/// §6.2 check-quorum: a leader that hears from no majority (itself included)
/// within the minimum election timeout steps down, so it stops taking writes
/// and reads; a leader with a majority keeps its role.
#[test]
fn isolated_leader_steps_down_within_election_timeout() {
    let mut net = Network::with_config(3, 3, production_config);
    net.elect(1);
    for _ in 0..3 * ELECTION_MAX {
        net.tick_all();
    }
    assert_eq!(net.leader(), Some(1), "healthy leader stays");
    net.isolate(1);
    for _ in 0..ELECTION_MIN {
        net.raft(1).tick();
    }
    let status = net.raft(1).status();
    assert_eq!((status.role, status.leader), (Role::Follower, None));
    assert!(net.raft(1).propose(Bytes::from("x")).is_err());
    assert!(net.raft(1).read_index(1).is_err());
}

/// §9.6 leader stickiness (with check-quorum): a follower that heard from the
/// leader within the minimum election timeout ignores a RequestVote of a
/// higher term: no reply, no term change.
#[test]
fn sticky_follower_ignores_higher_term_vote_request() {
    let mut net = Network::with_config(3, 4, production_config);
    net.elect(1);
    let vote = envelope(
        3,
        2,
        Message::RequestVote {
            term: Term(5),
            last_log_index: LogIndex(9),
            last_log_term: Term(4),
            transfer: false,
        },
    );
    net.raft(2).step(vote).expect("peer");
    assert!(!net.raft(2).has_ready());
    assert_eq!(net.raft(2).status().term, Term(1));
    assert_eq!(net.raft(2).status().leader, Some(NodeId(1)));
}

/// Liveness trap (§6.2 + §9.6, etcd issue #8501): node 3 comes back in a
/// higher term than the leader's (here: it restarted with term 7 after the
/// cluster moved on). Sticky voters ignore its votes and its pre-votes fail,
/// but it answers the leader's AppendEntries with its term, so the leader
/// steps down and an up-to-date node wins the next election: the cluster
/// gets a leader again and node 3 rejoins it.
#[test]
fn node_stuck_in_higher_term_rejoins_after_partition_heals() {
    let mut net = Network::with_config(3, 5, production_config);
    net.elect(1);
    net.isolate(3);
    for i in 0..5 {
        net.raft(1)
            .propose(Bytes::from(format!("w{i}")))
            .expect("leader");
    }
    net.settle();
    net.node(3).hard_state.term = Term(7);
    net.restart(3, 33);
    net.heal();
    for _ in 0..10 * ELECTION_MAX {
        net.tick_all();
    }
    let leader = net.leader().expect("a leader after the heal");
    assert_ne!(leader, 3, "node 3's log is behind");
    let term = net.raft(leader).status().term;
    assert!(term > Term(7), "the new term passes node 3's: {term:?}");
    net.raft(leader)
        .propose(Bytes::from("after"))
        .expect("leader");
    for _ in 0..ELECTION_MAX {
        net.tick_all();
    }
    for id in 1..=3 {
        let status = net.raft(id).status();
        assert_eq!(status.term, term, "node {id}");
        assert_eq!(status.leader, Some(NodeId(leader)), "node {id}");
    }
    assert_eq!(net.log(3), net.log(leader));
}

/// Liveness trap, the other way round (etcd issue #8501): node 2 has the
/// higher term (5) but a shorter log; node 1 has the longer log but term 3;
/// node 3 is down. Node 2 cannot win (node 1 refuses: stale log). Node 1's
/// pre-votes carry a term below node 2's: node 2 answers them with its term
/// instead of dropping them, node 1 adopts term 5, and its next pre-vote and
/// election succeed.
#[test]
fn up_to_date_node_behind_in_term_is_not_deadlocked() {
    let state = |term, terms: &[u64]| InitialState {
        snapshot: None,
        hard_state: HardState {
            term: Term(term),
            voted_for: None,
            commit_index: LogIndex(1),
        },
        entries: log_of_terms(terms),
    };
    let initial = vec![state(3, &[1, 3]), state(5, &[1]), state(1, &[1])];
    let mut net = Network::with_state_and_config(initial, 6, production_config);
    net.isolate(3);
    for _ in 0..10 * ELECTION_MAX {
        net.tick_all();
    }
    assert_eq!(net.leader(), Some(1));
    assert!(net.raft(1).status().term > Term(5));
    assert_eq!(net.raft(2).status().leader, Some(NodeId(1)));
}
