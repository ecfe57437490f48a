//! A faulty or compromised member's messages (`validate.rs`): each attack is
//! refused before it changes anything, asserted on its effect (role, term,
//! leader, log), never a panic.

use bytes::Bytes;

use super::network::{drain, entry, envelope, production_config, Network};
use crate::raft::{
    Config, Entry, Error, HardState, InitialState, LogIndex, Message, NodeId, Raft, Refusal, Role,
    SnapshotMeta, Term,
};

fn refusal(result: Result<(), Error>) -> Refusal {
    match result {
        Err(Error::Refused { refusal, .. }) => refusal,
        other => panic!("expected a refusal, got {other:?}"),
    }
}

/// A 3-node cluster with node 1 leading and one entry committed everywhere.
fn cluster() -> Network {
    let mut net = Network::with_config(3, 7, production_config);
    net.elect(1);
    net.raft(1).propose(Bytes::from("a")).expect("leader");
    net.settle();
    net
}

fn heartbeat(term: Term, prev_log_index: u64, prev_log_term: u64) -> Message {
    Message::AppendEntries {
        term,
        prev_log_index: LogIndex(prev_log_index),
        prev_log_term: Term(prev_log_term),
        entries: Vec::new(),
        leader_commit: LogIndex(0),
        read_ctx: 0,
    }
}

#[test]
fn a_timeout_now_from_a_follower_does_not_start_an_election() {
    let mut net = cluster();
    let term = net.raft(2).status().term;
    for forged_term in [term, Term(term.0 + 1)] {
        let r = net
            .raft(2)
            .step(envelope(3, 2, Message::TimeoutNow { term: forged_term }));
        assert!(matches!(
            refusal(r),
            Refusal::TimeoutNowNotFromLeader { .. }
        ));
    }
    // Nor does one sent to the leader itself.
    let r = net
        .raft(1)
        .step(envelope(2, 1, Message::TimeoutNow { term }));
    assert!(matches!(
        refusal(r),
        Refusal::TimeoutNowNotFromLeader { .. }
    ));
    net.settle();
    assert_eq!(net.raft(2).status().role, Role::Follower);
    assert_eq!(net.raft(2).status().term, term);
    assert_eq!(net.leader(), Some(1));
}

#[test]
fn a_max_term_heartbeat_is_refused_and_every_term_stays() {
    let mut net = cluster();
    let term = net.raft(1).status().term;
    for to in [1, 2] {
        let r = net
            .raft(to)
            .step(envelope(3, to, heartbeat(Term(u64::MAX), 0, 0)));
        assert!(matches!(refusal(r), Refusal::TermTooFar { .. }));
    }
    net.settle();
    for _ in 0..50 {
        net.tick_all();
    }
    assert_eq!(net.leader(), Some(1));
    for id in 1..=3 {
        assert_eq!(net.raft(id).status().term, term, "node {id}");
    }
}

#[test]
fn an_append_entries_at_the_leaders_own_term_does_not_kill_it() {
    let mut net = cluster();
    let term = net.raft(1).status().term;
    let r = net.raft(1).step(envelope(3, 1, heartbeat(term, 1, term.0)));
    assert!(matches!(refusal(r), Refusal::SecondLeader { .. }));
    // A second leader of the term a follower already follows is refused too.
    let r = net.raft(2).step(envelope(3, 2, heartbeat(term, 1, term.0)));
    assert!(matches!(refusal(r), Refusal::SecondLeader { .. }));
    let meta = SnapshotMeta {
        last_included_index: LogIndex(1),
        last_included_term: term,
        membership: crate::raft::Membership::voters_only([NodeId(1), NodeId(2), NodeId(3)]),
    };
    let r = net
        .raft(1)
        .step(envelope(3, 1, Message::InstallSnapshot { term, meta }));
    assert!(matches!(refusal(r), Refusal::SecondLeader { .. }));
    assert_eq!(net.raft(1).status().role, Role::Leader);
    assert_eq!(net.raft(2).status().leader, Some(NodeId(1)));
}

#[test]
fn a_term_at_u64_max_cannot_start_an_election() {
    for pre_vote in [false, true] {
        let config = Config {
            pre_vote,
            ..production_config(1, 3)
        };
        let initial = InitialState {
            hard_state: HardState {
                term: Term(u64::MAX),
                voted_for: None,
                commit_index: LogIndex(0),
            },
            ..InitialState::default()
        };
        let mut raft = Raft::new(config, initial, 1).expect("valid");
        for _ in 0..100 {
            raft.tick();
            let ready = drain(&mut raft);
            assert!(ready.messages.is_empty(), "no campaign without a term");
        }
        let status = raft.status();
        assert_eq!((status.term, status.role), (Term(u64::MAX), Role::Follower));
    }
}

#[test]
fn impossible_entries_are_refused_before_anything_is_appended() {
    let mut net = cluster();
    let term = net.raft(2).status().term;
    let last = net.raft(2).status().last_log_index.0;
    let append = |prev: u64, prev_term: u64, entries: Vec<Entry>| Message::AppendEntries {
        term,
        prev_log_index: LogIndex(prev),
        prev_log_term: Term(prev_term),
        entries,
        leader_commit: LogIndex(prev.saturating_add(1)),
        read_ctx: 0,
    };
    let t = term.0;
    let cases: Vec<(Message, &str)> = vec![
        (append(last, t, vec![entry(last + 2, t)]), "gap"),
        (append(0, 0, vec![entry(0, t)]), "index 0"),
        (
            append(last, t, vec![entry(last + 1, t), entry(last + 2, t - 1)]),
            "term backwards",
        ),
        (
            append(last, t, vec![entry(last + 1, t + 1)]),
            "term above message",
        ),
        (append(last, t + 1, Vec::new()), "prev term above message"),
        (append(u64::MAX, t, vec![entry(0, t)]), "index overflow"),
        (append(last, t, vec![entry(last + 1, 0)]), "term 0"),
    ];
    for (message, case) in cases {
        let r = net.raft(2).step(envelope(1, 2, message));
        assert!(matches!(refusal(r), Refusal::Malformed { .. }), "{case}");
        assert_eq!(net.raft(2).status().last_log_index.0, last, "{case}");
    }
    // A snapshot with no voter, or of a term above the message's.
    let meta = |voters: Vec<u64>, term_of_last: Term| SnapshotMeta {
        last_included_index: LogIndex(last + 5),
        last_included_term: term_of_last,
        membership: crate::raft::Membership::voters_only(voters.into_iter().map(NodeId)),
    };
    for meta in [
        // (Another membership is fine: it may have changed meanwhile; one
        // without a voter is not a membership.)
        meta(vec![], term),
        meta(vec![1, 2, 3], Term(t + 1)),
    ] {
        let r = net
            .raft(2)
            .step(envelope(1, 2, Message::InstallSnapshot { term, meta }));
        assert!(matches!(refusal(r), Refusal::Malformed { .. }));
    }
    net.settle();
    assert_eq!(net.leader(), Some(1));
}

#[test]
fn a_single_member_cannot_drag_the_term_up_but_a_majority_can() {
    let mut raft = Raft::new(production_config(3, 3), InitialState::default(), 3).expect("valid");
    let far = Term(5_000);
    // Node 1 alone announces a far term, many times: refused every time.
    for _ in 0..10 {
        let r = raft.step(envelope(1, 3, heartbeat(far, 0, 0)));
        assert!(matches!(refusal(r), Refusal::TermTooFar { .. }));
    }
    assert_eq!(raft.status().term, Term(0));
    // Node 2 shows the same term (here: refusing our pre-vote): a majority
    // (1 and 2) vouches for it, so it is adopted and the message accepted.
    raft.step(envelope(
        2,
        3,
        Message::PreVoteResponse {
            term: far,
            vote_granted: false,
        },
    ))
    .expect("vouched for by a majority");
    assert_eq!(raft.status().term, far);
    raft.step(envelope(1, 3, heartbeat(far, 0, 0)))
        .expect("the leader's heartbeat is now within reach");
    assert_eq!(raft.status().leader, Some(NodeId(1)));
}

#[test]
fn a_lagging_node_rejoins_a_cluster_whose_term_ran_far_ahead() {
    let mut net = cluster();
    net.isolate(3);
    // Many elections while node 3 is away: the term runs past the jump.
    let jump = production_config(1, 3).max_term_jump;
    for _ in 0..(jump + 5) {
        let leader = net.leader().expect("leader");
        let next = if leader == 1 { 2 } else { 1 };
        net.raft(leader)
            .transfer_leader(NodeId(next))
            .expect("leader");
        net.settle();
    }
    let term = net.raft(1).status().term;
    assert!(term.0 > jump + 2, "term {term}");
    net.heal();
    for _ in 0..200 {
        net.tick_all();
        if net.raft(3).status().term >= term && net.raft(3).status().leader.is_some() {
            break;
        }
    }
    let leader = net.leader().expect("leader");
    assert_eq!(net.raft(3).status().leader, Some(NodeId(leader)));
    assert!(
        net.refused
            .iter()
            .any(|(to, r)| *to == NodeId(3) && matches!(r, Refusal::TermTooFar { .. })),
        "node 3 first refused the far term, then a majority vouched for it"
    );
    net.raft(leader)
        .propose(Bytes::from("after"))
        .expect("leader");
    net.settle();
    assert!(net.node(3).applied.iter().any(|e| e.data == "after"));
}
