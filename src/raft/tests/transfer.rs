//! Leadership transfer (thesis §3.10).

use bytes::Bytes;

use super::network::{drain, envelope, production_config, Network, ELECTION_MIN, HEARTBEAT};
use crate::raft::{Error, Message, NodeId, Role, Term};

/// §3.10: the leader sends `TimeoutNow` to a caught-up target, which starts an
/// election at once (no pre-vote) flagged as a transfer, so the other voters
/// answer it although they heard from the leader moments ago; the old leader
/// steps down on the higher term. No committed entry is lost.
#[test]
fn transfer_to_caught_up_follower_hands_over_leadership() {
    let mut net = Network::with_config(3, 1, production_config);
    net.elect(1);
    net.raft(1).propose(Bytes::from("a")).expect("leader");
    net.settle();
    net.raft(1).transfer_leader(NodeId(2)).expect("leader");
    net.settle();
    assert_eq!(net.leader(), Some(2));
    let status = net.raft(2).status();
    assert_eq!(status.term, Term(2));
    assert_eq!(net.raft(1).status().role, Role::Follower);
    assert_eq!(net.raft(1).status().transferring_to, None);
    net.raft(2).propose(Bytes::from("b")).expect("new leader");
    net.settle();
    let applied: Vec<_> = net.node(3).applied.iter().map(|e| e.data.clone()).collect();
    assert!(applied.contains(&Bytes::from("a")) && applied.contains(&Bytes::from("b")));
}

/// §3.10: while a transfer is in flight the leader takes no proposals (they
/// could keep the target behind) and `Status` names the target; the target
/// gets `TimeoutNow` only once its log matches the leader's.
#[test]
fn leader_refuses_proposals_and_catches_target_up_during_transfer() {
    let mut net = Network::with_config(3, 2, production_config);
    net.elect(1);
    net.cut(1, 3);
    for i in 0..3 {
        net.raft(1)
            .propose(Bytes::from(format!("w{i}")))
            .expect("leader");
    }
    net.settle();
    net.heal();
    net.raft(1).transfer_leader(NodeId(3)).expect("leader");
    assert_eq!(net.raft(1).status().transferring_to, Some(NodeId(3)));
    assert_eq!(
        net.raft(1).propose(Bytes::from("x")),
        Err(Error::TransferInProgress { to: NodeId(3) })
    );
    let ready = drain(net.raft(1));
    let to_3: Vec<&Message> = ready
        .messages
        .iter()
        .filter(|e| e.to == NodeId(3))
        .map(|e| &e.message)
        .collect();
    assert!(to_3
        .iter()
        .any(|m| matches!(m, Message::AppendEntries { .. })));
    assert!(
        !to_3.iter().any(|m| matches!(m, Message::TimeoutNow { .. })),
        "target is behind"
    );
    net.in_flight.extend(ready.messages);
    for _ in 0..ELECTION_MIN / 2 {
        net.tick_all();
    }
    assert_eq!(net.leader(), Some(3));
    assert_eq!(net.log(3), net.log(1));
}

/// §3.10: a transfer whose target does not take over within an election
/// timeout is abandoned; the leader takes proposals again.
#[test]
fn transfer_is_abandoned_after_election_timeout() {
    let mut net = Network::with_config(3, 3, production_config);
    net.elect(1);
    net.cut(1, 2);
    net.raft(1).transfer_leader(NodeId(2)).expect("leader");
    for _ in 0..ELECTION_MIN {
        net.tick_all();
    }
    let status = net.raft(1).status();
    assert_eq!((status.role, status.transferring_to), (Role::Leader, None));
    net.raft(1)
        .propose(Bytes::from("x"))
        .expect("proposals resume");
}

/// §3.10: `TimeoutNow` makes a follower campaign at once, skipping pre-vote,
/// with the transfer flag on its RequestVote.
#[test]
fn timeout_now_starts_flagged_election_immediately() {
    let mut net = Network::with_config(3, 4, production_config);
    net.elect(1);
    net.raft(2)
        .step(envelope(1, 2, Message::TimeoutNow { term: Term(1) }))
        .expect("peer");
    let status = net.raft(2).status();
    assert_eq!((status.role, status.term), (Role::Candidate, Term(2)));
    let ready = drain(net.raft(2));
    assert!(ready.messages.iter().all(|e| matches!(
        e.message,
        Message::RequestVote {
            transfer: true,
            term: Term(2),
            ..
        }
    )));
}

/// Transfer needs the leader and a voter target.
#[test]
fn transfer_requires_leader_and_known_target() {
    let mut net = Network::with_config(3, 5, production_config);
    net.elect(1);
    assert!(matches!(
        net.raft(2).transfer_leader(NodeId(3)),
        Err(Error::NotLeader { .. })
    ));
    assert!(matches!(
        net.raft(1).transfer_leader(NodeId(9)),
        Err(Error::UnknownPeer { .. })
    ));
}

/// With no target named, the leader picks the live voter whose log matches
/// furthest (so the transfer needs the least catching up), lowest id on a
/// tie, and never a voter it has not heard from within an election timeout.
#[test]
fn transfer_candidate_is_the_most_caught_up_live_voter() {
    let mut net = Network::with_config(3, 6, production_config);
    net.elect(1);
    assert_eq!(net.raft(2).transfer_candidate(), None, "not the leader");
    net.cut(1, 2);
    net.raft(1).propose(Bytes::from("a")).expect("leader");
    net.settle();
    assert_eq!(net.raft(1).transfer_candidate(), Some(NodeId(3)));
    net.heal();
    // The append to 2 that the cut dropped is unacknowledged, so "b" (not a
    // full message) waits for it until a heartbeat finds the gap.
    for _ in 0..HEARTBEAT {
        net.tick_all();
    }
    net.settle();
    net.cut(1, 3);
    net.raft(1).propose(Bytes::from("b")).expect("leader");
    net.settle();
    assert_eq!(net.raft(1).transfer_candidate(), Some(NodeId(2)));
    // Both caught up again, then 2 goes quiet: the tie would name 2, but it
    // is not live.
    net.heal();
    net.cut(1, 2);
    for _ in 0..ELECTION_MIN {
        net.tick_all();
    }
    assert_eq!(net.raft(1).status().role, Role::Leader);
    assert_eq!(net.raft(1).transfer_candidate(), Some(NodeId(3)));
}
