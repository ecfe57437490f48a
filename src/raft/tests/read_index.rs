//! Raft thesis §6.4: ReadIndex reads — wait for an own-term commit, record the
//! commit index, confirm leadership with one heartbeat round acked by a
//! majority, batch the reads of a round.

use super::network::{ack, appends_to, config, drain, envelope, manual_leader, node, Network};
use crate::raft::{Error, LogIndex, Message, NodeId, ReadState, Role, Term};

/// §6.4 step 1: a new leader does not know the commit index of its
/// predecessor until it commits an entry of its own term (the no-op), so a
/// read arriving before that is queued: no round, no ReadState. Once the no-op
/// commits, the read gets index = commit_index and a heartbeat round; the
/// round's ack releases it.
#[test]
fn read_index_waits_for_own_term_commit() {
    let mut leader = manual_leader(config(1, 3));
    leader.read_index(7).expect("leader");
    let ready = drain(&mut leader);
    assert!(ready.read_states.is_empty());
    assert!(
        ready.messages.is_empty(),
        "no round before the own-term commit"
    );
    // The no-op (index 1, term 1) commits with node 2's ack.
    leader.step(ack(2, 1, 1, 0)).expect("peer");
    assert_eq!(leader.status().commit_index, LogIndex(1));
    let ready = drain(&mut leader);
    assert!(ready.read_states.is_empty(), "leadership not yet confirmed");
    let round = appends_to(&ready.messages, 3)
        .first()
        .map(|a| a.2)
        .expect("a heartbeat to 3");
    assert!(round > 0);
    assert_eq!(
        appends_to(&ready.messages, 2).first().map(|a| a.2),
        Some(round)
    );
    leader.step(ack(3, 1, 1, round)).expect("peer");
    assert_eq!(
        drain(&mut leader).read_states,
        vec![ReadState {
            ctx: 7,
            index: LogIndex(1)
        }]
    );
}

/// §6.4 batching: reads arriving between two `ready()` calls share one
/// heartbeat round (one message per follower), and one majority ack confirms
/// them all. A read arriving after the round started needs the next round.
#[test]
fn read_index_batches_reads_in_one_round() {
    let mut leader = manual_leader(config(1, 5));
    leader.step(ack(2, 1, 1, 0)).expect("peer");
    leader.step(ack(3, 1, 1, 0)).expect("peer");
    drain(&mut leader);
    for ctx in 1..=3 {
        leader.read_index(ctx).expect("leader");
    }
    let ready = drain(&mut leader);
    let mut rounds = Vec::new();
    for peer in 2..=5 {
        let appends = appends_to(&ready.messages, peer);
        assert_eq!(appends.len(), 1, "one heartbeat to {peer}");
        rounds.push(appends[0].2);
    }
    assert!(rounds.windows(2).all(|w| w[0] == w[1]));
    let round = rounds[0];
    leader.read_index(4).expect("leader"); // after the round started
    leader.step(ack(2, 1, 1, round)).expect("peer");
    let ready = drain(&mut leader);
    assert!(ready.read_states.is_empty(), "2 of 5 is no majority");
    // The fourth read goes out in its own, later round.
    let next_round = appends_to(&ready.messages, 2)
        .first()
        .map(|a| a.2)
        .expect("a round for read 4");
    assert!(next_round > round);
    leader.step(ack(4, 1, 1, round)).expect("peer");
    let ready = drain(&mut leader);
    let ctxs: Vec<u64> = ready.read_states.iter().map(|r| r.ctx).collect();
    assert_eq!(ctxs, vec![1, 2, 3]);
    assert!(ready.read_states.iter().all(|r| r.index == LogIndex(1)));
    leader.step(ack(2, 1, 1, next_round)).expect("peer");
    leader.step(ack(3, 1, 1, next_round)).expect("peer");
    assert_eq!(
        drain(&mut leader).read_states,
        vec![ReadState {
            ctx: 4,
            index: LogIndex(1)
        }]
    );
}

/// §6.4: with one voter the leader is its own majority; a read is confirmed
/// at once (after the own-term commit).
#[test]
fn single_node_read_index_is_immediate_after_own_term_commit() {
    let mut raft = node(1, 1);
    for _ in 0..super::network::ELECTION_MAX {
        raft.tick();
    }
    raft.read_index(1).expect("leader");
    let ready = raft.ready();
    assert!(ready.read_states.is_empty(), "the no-op is not durable yet");
    raft.advance(ready);
    raft.read_index(2).expect("leader");
    let read_states = drain(&mut raft).read_states;
    assert_eq!(
        read_states,
        vec![
            ReadState {
                ctx: 1,
                index: LogIndex(1)
            },
            ReadState {
                ctx: 2,
                index: LogIndex(1)
            }
        ]
    );
}

/// §6.4: only the leader serves ReadIndex; a follower answers NotLeader with
/// the leader it knows.
#[test]
fn read_index_on_follower_is_rejected_with_leader_hint() {
    let mut net = Network::new(3, 8);
    net.elect(1);
    assert_eq!(
        net.raft(2).read_index(1),
        Err(Error::NotLeader {
            leader: Some(NodeId(1))
        })
    );
}

/// §6.4: a leader that loses its term before a round is confirmed drops its
/// pending reads (no ReadState is ever emitted for them); the driver fails
/// them on seeing the role/term change.
#[test]
fn pending_reads_are_dropped_when_leader_steps_down() {
    let mut leader = manual_leader(config(1, 3));
    leader.step(ack(2, 1, 1, 0)).expect("peer");
    drain(&mut leader);
    leader.read_index(5).expect("leader");
    let round = appends_to(&drain(&mut leader).messages, 2)[0].2;
    leader
        .step(envelope(
            3,
            1,
            Message::RequestVote {
                term: Term(2),
                last_log_index: LogIndex(1),
                last_log_term: Term(1),
                transfer: false,
            },
        ))
        .expect("peer");
    assert_eq!(leader.status().role, Role::Follower);
    leader
        .step(ack(2, 1, 1, round))
        .expect("stale ack is ignored");
    assert!(drain(&mut leader).read_states.is_empty());
}

/// §6.4 end to end: on a 3-node network a read on the leader comes back with
/// the commit index once the heartbeat round is acked.
#[test]
fn read_index_round_trip_on_network() {
    let mut net = Network::new(3, 9);
    net.elect(1);
    net.raft(1).propose("x".into()).expect("leader");
    net.settle();
    net.raft(1).read_index(42).expect("leader");
    net.settle();
    assert_eq!(
        net.node(1).read_states,
        vec![ReadState {
            ctx: 42,
            index: LogIndex(2)
        }]
    );
    // Isolated, the leader cannot confirm a round.
    net.isolate(1);
    net.raft(1).read_index(43).expect("leader");
    net.settle();
    assert_eq!(net.node(1).read_states.len(), 1);
}
