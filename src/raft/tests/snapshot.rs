//! §7: log compaction, InstallSnapshot, restart from a snapshot.

use bytes::Bytes;

use super::network::{config, drain, entry, envelope, log_of_terms, Network, ELECTION_MIN};
use crate::raft::{HardState, InitialState, LogIndex, Message, NodeId, Raft, SnapshotMeta, Term};

/// Snapshot metadata at (`index`, `term`).
fn meta(index: u64, term: u64) -> SnapshotMeta {
    SnapshotMeta {
        last_included_index: LogIndex(index),
        last_included_term: Term(term),
        membership: crate::raft::Membership::voters_only([NodeId(1), NodeId(2), NodeId(3)]),
    }
}

/// A follower of node 1 in `term` with the given log and commit index.
fn follower(terms: &[u64], term: u64, commit: u64) -> Raft {
    let initial = InitialState {
        snapshot: None,
        hard_state: HardState {
            term: Term(term),
            voted_for: None,
            commit_index: LogIndex(commit),
        },
        entries: log_of_terms(terms),
    };
    let mut raft = Raft::new(config(2, 3), initial, 2).expect("valid");
    drain(&mut raft);
    raft
}

/// The InstallSnapshotResponse in `messages`, as (last_included_index, success).
fn snapshot_reply(messages: &[crate::raft::Envelope]) -> Option<(u64, bool)> {
    messages.iter().find_map(|e| match e.message {
        Message::InstallSnapshotResponse {
            last_included_index,
            success,
            ..
        } => Some((last_included_index.0, success)),
        _ => None,
    })
}

/// Runs `n` proposals on the leader and settles.
fn write(net: &mut Network, leader: u64, n: usize) {
    for i in 0..n {
        net.raft(leader)
            .propose(Bytes::from(format!("w{i}")))
            .expect("leader");
        net.settle();
    }
}

/// §7: compaction drops the covered entries but keeps the term of the last
/// one, so replication after it still passes the consistency check. The
/// entries dropped are handed back, for the driver to free off its loop.
#[test]
fn compaction_keeps_replication_going() {
    let mut net = Network::new(3, 1);
    net.elect(1);
    write(&mut net, 1, 5);
    let log = net.log(1);
    assert_eq!(net.compact(1), log);
    assert_eq!(net.log(1), Vec::new());
    assert_eq!(net.compact(1), Vec::new(), "nothing more to drop");
    write(&mut net, 1, 2);
    assert_eq!(net.nodes[&NodeId(2)].applied, net.nodes[&NodeId(1)].applied);
    assert_eq!(net.raft(3).status().commit_index, LogIndex(8));
}

/// §7: a follower that was down while the leader compacted past its log
/// catches up by InstallSnapshot: the leader sends the snapshot, the
/// follower's Ready carries it (its state machine is replaced), then entries
/// after it are replicated and applied as usual.
#[test]
fn lagging_follower_catches_up_by_install_snapshot() {
    let mut net = Network::new(3, 2);
    net.elect(1);
    net.isolate(3);
    write(&mut net, 1, 10);
    net.compact(1);
    net.compact(2);
    write(&mut net, 1, 2);
    net.heal();
    for _ in 0..ELECTION_MIN {
        net.tick_all();
    }
    assert!(
        net.node(3).snapshot.is_some(),
        "node 3 installed a snapshot"
    );
    assert_eq!(net.nodes[&NodeId(3)].applied, net.nodes[&NodeId(1)].applied);
    assert_eq!(net.raft(3).status().last_applied, LogIndex(13));
    write(&mut net, 1, 1);
    assert_eq!(net.nodes[&NodeId(3)].applied, net.nodes[&NodeId(1)].applied);
}

/// Delivers everything in flight except InstallSnapshot to node 3, which is
/// dropped (lost); returns how many were dropped.
fn deliver_dropping_snapshots(net: &mut Network) -> usize {
    net.process_all();
    let mut dropped = 0;
    while let Some(envelope) = net.in_flight.pop_front() {
        if envelope.to == NodeId(3) && matches!(envelope.message, Message::InstallSnapshot { .. }) {
            dropped += 1;
        } else {
            net.deliver(envelope);
        }
    }
    dropped
}

/// §7: while a follower's snapshot is outstanding the leader sends it no
/// entries (only heartbeats, whose rejections it ignores); without an answer
/// within an election timeout it probes again, which sends the snapshot again.
#[test]
fn follower_in_snapshot_state_gets_no_entries_until_answered_or_timeout() {
    let mut net = Network::new(3, 3);
    net.elect(1);
    net.isolate(3);
    write(&mut net, 1, 4);
    net.compact(1);
    net.heal();
    let mut sent = 0;
    for _ in 0..2 {
        net.raft(1).tick();
        sent += deliver_dropping_snapshots(&mut net);
    }
    assert_eq!(sent, 1, "snapshot sent (and lost)");
    net.raft(1).propose(Bytes::from("x")).expect("leader");
    let ready = drain(net.raft(1));
    assert!(!ready.messages.iter().any(|e| e.to == NodeId(3)
        && matches!(&e.message, Message::AppendEntries { entries, .. } if !entries.is_empty())));
    net.in_flight.extend(ready.messages);
    let mut resent = 0;
    for _ in 0..ELECTION_MIN + 2 {
        net.raft(1).tick();
        net.raft(2).tick();
        resent += deliver_dropping_snapshots(&mut net);
    }
    assert_eq!(resent, 1, "snapshot sent again after the timeout");
    for _ in 0..ELECTION_MIN + 2 {
        net.raft(1).tick();
        net.settle();
    }
    assert_eq!(
        net.raft(3).status().commit_index,
        net.raft(1).status().commit_index
    );
}

/// §7 receiver: a snapshot beyond the commit index whose last entry matches
/// the log keeps the entries after it; commit and applied move to the
/// snapshot, which is handed out in the Ready with the reply.
#[test]
fn install_snapshot_keeps_matching_suffix() {
    let mut raft = follower(&[1, 1, 1, 1, 1], 1, 2);
    raft.step(envelope(
        1,
        2,
        Message::InstallSnapshot {
            term: Term(1),
            meta: meta(3, 1),
        },
    ))
    .expect("peer");
    let ready = drain(&mut raft);
    assert_eq!(ready.snapshot, Some(meta(3, 1)));
    assert_eq!(snapshot_reply(&ready.messages), Some((3, true)));
    assert!(ready.committed_entries.is_empty());
    let status = raft.status();
    assert_eq!(
        (
            status.commit_index,
            status.last_applied,
            status.last_log_index
        ),
        (LogIndex(3), LogIndex(3), LogIndex(5))
    );
}

/// §7 receiver: a snapshot whose last entry conflicts with the log discards
/// the whole log; the next AppendEntries continues right after the snapshot.
#[test]
fn install_snapshot_discards_conflicting_log() {
    let mut raft = follower(&[1, 1, 2], 3, 1);
    raft.step(envelope(
        1,
        2,
        Message::InstallSnapshot {
            term: Term(3),
            meta: meta(3, 3),
        },
    ))
    .expect("peer");
    let ready = drain(&mut raft);
    assert_eq!(ready.snapshot, Some(meta(3, 3)));
    assert_eq!(raft.status().last_log_index, LogIndex(3));
    raft.step(envelope(
        1,
        2,
        Message::AppendEntries {
            term: Term(3),
            prev_log_index: LogIndex(3),
            prev_log_term: Term(3),
            entries: vec![entry(4, 3)],
            leader_commit: LogIndex(4),
            read_ctx: 0,
        },
    ))
    .expect("peer");
    let ready = drain(&mut raft);
    assert_eq!(ready.entries, vec![entry(4, 3)]);
    assert_eq!(ready.committed_entries, vec![entry(4, 3)]);
}

/// §7 receiver: a snapshot at or below the commit index is stale: answered
/// with success but not installed.
#[test]
fn stale_snapshot_is_acknowledged_without_installing() {
    let mut raft = follower(&[1, 1, 1, 1, 1], 1, 4);
    raft.step(envelope(
        1,
        2,
        Message::InstallSnapshot {
            term: Term(1),
            meta: meta(3, 1),
        },
    ))
    .expect("peer");
    let ready = drain(&mut raft);
    assert_eq!(ready.snapshot, None);
    assert_eq!(snapshot_reply(&ready.messages), Some((3, true)));
    assert_eq!(raft.status().last_log_index, LogIndex(5));
}

/// §7 + §5.3: an AppendEntries whose previous entry we compacted is matched
/// (compacted entries are committed); only the entries after the snapshot are
/// appended.
#[test]
fn append_below_snapshot_is_acknowledged() {
    let initial = InitialState {
        snapshot: Some(meta(5, 1)),
        hard_state: HardState {
            term: Term(1),
            voted_for: None,
            commit_index: LogIndex(5),
        },
        entries: Vec::new(),
    };
    let mut raft = Raft::new(config(2, 3), initial, 2).expect("valid");
    assert_eq!(raft.status().last_applied, LogIndex(5));
    drain(&mut raft);
    raft.step(envelope(
        1,
        2,
        Message::AppendEntries {
            term: Term(1),
            prev_log_index: LogIndex(2),
            prev_log_term: Term(1),
            entries: (3..=7).map(|i| entry(i, 1)).collect(),
            leader_commit: LogIndex(5),
            read_ctx: 0,
        },
    ))
    .expect("peer");
    let ready = drain(&mut raft);
    assert_eq!(ready.entries, vec![entry(6, 1), entry(7, 1)]);
    assert!(ready.messages.iter().any(|e| matches!(
        e.message,
        Message::AppendEntriesResponse {
            success: true,
            match_index: LogIndex(7),
            ..
        }
    )));
}

/// §7 restart: a node restored from a snapshot starts with commit and applied
/// at the snapshot and replays only the committed entries after it.
#[test]
fn restart_from_snapshot_replays_only_the_tail() {
    let mut net = Network::new(3, 4);
    net.elect(1);
    write(&mut net, 1, 4);
    net.compact(2);
    write(&mut net, 1, 2);
    let applied = net.node(2).applied.clone();
    net.restart(2, 22);
    let ready = drain(net.raft(2));
    let replayed: Vec<u64> = ready.committed_entries.iter().map(|e| e.index.0).collect();
    assert_eq!(replayed, vec![6, 7]);
    net.node(2).applied.extend(ready.committed_entries);
    assert_eq!(net.node(2).applied, applied);
}

/// §7: `compact` beyond what was applied is a driver bug and panics.
#[test]
#[should_panic(expected = "beyond last_applied")]
fn compact_beyond_applied_panics() {
    let mut raft = follower(&[1, 1, 1], 1, 1);
    drain(&mut raft);
    raft.compact(meta(3, 1));
}
