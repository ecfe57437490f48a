//! §5.3 log replication, the consistency check and its fast backtracking,
//! batching/pipelining limits, persistence of the leader's own entries and
//! restart.

use bytes::Bytes;

use super::network::{
    ack, appends_to, config, drain, envelope, log_of_terms, manual_leader, Network, HEARTBEAT,
};
use crate::raft::{
    EntryKind, HardState, InitialState, LogIndex, Message, NodeId, Raft, Role, Term,
    MAX_INFLIGHT_APPENDS,
};

/// A follower (node 2 of 3) restored with a log of the given terms.
fn follower_with_log(terms: &[u64], term: u64) -> Raft {
    let initial = InitialState {
        snapshot: None,
        hard_state: HardState {
            term: Term(term),
            voted_for: None,
            commit_index: LogIndex(0),
        },
        entries: log_of_terms(terms),
    };
    let mut raft = Raft::new(config(2, 3), initial, 2).expect("valid");
    drain(&mut raft);
    raft
}

/// An AppendEntries from node 1.
fn append(
    term: u64,
    prev: (u64, u64),
    entries: &[(u64, u64)],
    commit: u64,
) -> crate::raft::Envelope {
    envelope(
        1,
        2,
        Message::AppendEntries {
            term: Term(term),
            prev_log_index: LogIndex(prev.0),
            prev_log_term: Term(prev.1),
            entries: entries
                .iter()
                .map(|&(i, t)| super::network::entry(i, t))
                .collect(),
            leader_commit: LogIndex(commit),
            read_ctx: 0,
        },
    )
}

/// The single AppendEntriesResponse in a Ready, as (success, match_index,
/// conflict_index, conflict_term).
fn reply(raft: &mut Raft) -> (bool, u64, u64, Option<u64>) {
    let ready = drain(raft);
    assert_eq!(ready.messages.len(), 1, "{:?}", ready.messages);
    match ready.messages[0].message {
        Message::AppendEntriesResponse {
            success,
            match_index,
            conflict_index,
            conflict_term,
            ..
        } => (
            success,
            match_index.0,
            conflict_index.0,
            conflict_term.map(|t| t.0),
        ),
        ref other => panic!("unexpected {other:?}"),
    }
}

/// §5.3 / Figure 2 receiver rule 2: reply false if the log has an entry at
/// prev_log_index whose term differs; the hint names that term and the first
/// index holding it, so the leader can skip the whole term.
#[test]
fn follower_rejects_append_when_prev_log_term_mismatches() {
    let mut raft = follower_with_log(&[1, 1, 2, 2], 2);
    raft.step(append(3, (4, 3), &[(5, 3)], 0)).expect("peer");
    assert_eq!(reply(&mut raft), (false, 0, 3, Some(2)));
    assert_eq!(raft.status().last_log_index, LogIndex(4));
}

/// §5.3 / Figure 2 receiver rule 2: reply false if the log has no entry at
/// prev_log_index; the hint is the follower's last index + 1.
#[test]
fn follower_rejects_append_when_prev_log_index_is_missing() {
    let mut raft = follower_with_log(&[1, 1], 1);
    raft.step(append(2, (5, 2), &[(6, 2)], 0)).expect("peer");
    assert_eq!(reply(&mut raft), (false, 0, 3, None));
}

/// §5.3 / Figure 2 receiver rule 3: an existing entry that conflicts with a new
/// one is deleted with all that follow; the Ready hands the new suffix to the
/// driver starting at the conflict index (so the store truncates there).
#[test]
fn follower_truncates_conflicting_suffix_and_appends() {
    let mut raft = follower_with_log(&[1, 1, 2, 2], 2);
    raft.step(append(3, (2, 1), &[(3, 3)], 0)).expect("peer");
    let ready = drain(&mut raft);
    assert_eq!(
        ready
            .entries
            .iter()
            .map(|e| (e.index.0, e.term.0))
            .collect::<Vec<_>>(),
        vec![(3, 3)]
    );
    assert_eq!(raft.status().last_log_index, LogIndex(3));
}

/// §5.3 / Figure 2 receiver rules 3–4: entries already present are kept; a
/// delayed, shorter AppendEntries of the same leader does not truncate the
/// entries a later one appended, and is acknowledged only up to what it covers.
#[test]
fn follower_keeps_matching_entries_on_stale_shorter_append() {
    let mut raft = follower_with_log(&[], 0);
    raft.step(append(1, (0, 0), &[(1, 1), (2, 1), (3, 1)], 0))
        .expect("peer");
    assert_eq!(reply(&mut raft), (true, 3, 0, None));
    raft.step(append(1, (0, 0), &[(1, 1)], 0)).expect("peer");
    assert_eq!(reply(&mut raft), (true, 1, 0, None));
    assert_eq!(raft.status().last_log_index, LogIndex(3));
}

/// Figure 2 receiver rule 5: commit_index = min(leader_commit, index of last
/// new entry); entries beyond what this message verified are not committed.
#[test]
fn follower_commit_is_min_of_leader_commit_and_last_new_entry() {
    let mut raft = follower_with_log(&[1, 1, 1], 1);
    // A heartbeat of term 2 verifies only index 1.
    raft.step(append(2, (1, 1), &[], 3)).expect("peer");
    assert_eq!(reply(&mut raft), (true, 1, 0, None));
    assert_eq!(raft.status().commit_index, LogIndex(1));
    raft.step(append(2, (1, 1), &[(2, 2)], 9)).expect("peer");
    let ready = drain(&mut raft);
    assert_eq!(raft.status().commit_index, LogIndex(2));
    assert_eq!(
        ready.committed_entries.last().map(|e| e.term),
        Some(Term(2))
    );
}

/// §5.3: the leader replicates client entries; once a majority stores them
/// they commit and every server applies the same entries in log order.
#[test]
fn leader_replicates_and_every_node_applies_in_order() {
    let mut net = Network::new(3, 4);
    net.elect(1);
    let mut proposed = Vec::new();
    for i in 0..5 {
        proposed.push(
            net.raft(1)
                .propose(Bytes::from(format!("v{i}")))
                .expect("leader"),
        );
        net.settle();
    }
    net.raft(1).tick();
    for _ in 0..HEARTBEAT {
        net.tick_all();
    }
    for id in 1..=3 {
        let node = net.node(id);
        let applied: Vec<(LogIndex, Term)> =
            node.applied.iter().map(|e| (e.index, e.term)).collect();
        assert_eq!(applied[1..], proposed[..], "node {id}");
        // The first leader's no-op is the bootstrap membership.
        assert_eq!(node.applied[0].kind, EntryKind::Membership);
        assert!(node
            .applied
            .windows(2)
            .all(|w| w[1].index.0 == w[0].index.0 + 1));
        assert_eq!(node.raft.status().last_applied, LogIndex(6));
    }
}

/// Figure 7 (§5.3): when the leader of term 8 comes to power, followers (a)–(f)
/// are missing entries, have extra uncommitted entries, or both. It is elected
/// by a, b, e, f and brings every follower's log to its own (plus its no-op).
#[test]
fn figure_7_follower_logs_are_repaired_by_new_leader() {
    let logs: [&[u64]; 7] = [
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6],       // leader
        &[1, 1, 1, 4, 4, 5, 5, 6, 6],          // a
        &[1, 1, 1, 4],                         // b
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 6],    // c
        &[1, 1, 1, 4, 4, 5, 5, 6, 6, 6, 7, 7], // d
        &[1, 1, 1, 4, 4, 4, 4],                // e
        &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3],    // f
    ];
    let initial = logs
        .iter()
        .map(|terms| InitialState {
            snapshot: None,
            hard_state: HardState {
                term: Term(7),
                voted_for: None,
                commit_index: LogIndex(0),
            },
            entries: log_of_terms(terms),
        })
        .collect();
    let mut net = Network::with_state(initial, 7);
    net.elect(1);
    assert_eq!(net.raft(1).status().term, Term(8));
    for _ in 0..HEARTBEAT {
        net.tick_all();
    }
    let leader_log = net.node(1).log.clone();
    assert_eq!(leader_log.len(), 11);
    // These logs name no membership: the new leader's no-op carries the
    // bootstrap one.
    assert_eq!(leader_log[10].kind, EntryKind::Membership);
    for id in 2..=7 {
        assert_eq!(net.node(id).log, leader_log, "follower {id}");
        assert_eq!(
            net.raft(id).status().commit_index,
            LogIndex(11),
            "follower {id}"
        );
    }
}

/// §5.3 fast backtracking: with the conflict term/index hint the leader skips
/// a whole term per round trip. Figure 7's follower (f) needs 2 rejections
/// (term 3, then term 2) instead of 7 one-index steps.
#[test]
fn leader_skips_whole_term_per_round_trip_on_conflict() {
    let initial = [
        &[1u64, 1, 1, 4, 4, 5, 5, 6, 6, 6][..],
        &[1, 1, 1, 2, 2, 2, 3, 3, 3, 3, 3][..],
    ]
    .iter()
    .map(|terms| InitialState {
        snapshot: None,
        hard_state: HardState {
            term: Term(7),
            voted_for: None,
            commit_index: LogIndex(0),
        },
        entries: log_of_terms(terms),
    })
    .collect();
    let mut net = Network::with_state(initial, 1);
    for _ in 0..super::network::ELECTION_MAX {
        net.raft(1).tick();
    }
    net.process_all();
    let mut rejections = 0;
    while let Some(envelope) = net.in_flight.front() {
        if matches!(
            envelope.message,
            Message::AppendEntriesResponse { success: false, .. }
        ) {
            rejections += 1;
        }
        net.deliver_one();
    }
    assert_eq!(net.raft(1).status().role, Role::Leader);
    assert_eq!(rejections, 2);
    assert_eq!(net.log(2), net.log(1));
}

/// Limits: an AppendEntries carries at most `max_entries_per_append` entries
/// and `max_bytes_per_append` payload bytes, but always at least one entry.
#[test]
fn append_respects_max_entries_and_max_bytes() {
    // The entry counts of the AppendEntries to node 2, acknowledging each
    // Ready's until none is left (a tail shorter than the limits waits for
    // the ack of the messages before it).
    let chunks = |max_entries, max_bytes, sizes: &[usize]| {
        let mut cfg = config(1, 2);
        cfg.max_entries_per_append = max_entries;
        cfg.max_bytes_per_append = max_bytes;
        let mut leader = manual_leader(cfg);
        leader.step(ack(2, 1, 1, 0)).expect("peer");
        drain(&mut leader);
        for &size in sizes {
            leader
                .propose(Bytes::from(vec![b'x'; size]))
                .expect("leader");
        }
        let mut counts = Vec::new();
        loop {
            let mut appends = appends_to(&drain(&mut leader).messages, 2);
            // The commit index alone, after the last ack.
            appends.retain(|a| a.1 > 0);
            if appends.is_empty() {
                return counts;
            }
            counts.extend(appends.iter().map(|a| a.1));
            let last = appends.last().map_or(0, |a| a.0 + a.1 as u64);
            leader.step(ack(2, 1, last, 0)).expect("peer");
        }
    };
    assert_eq!(chunks(3, 1 << 20, &[1; 10]), vec![3, 3, 3, 1]);
    assert_eq!(chunks(64, 10, &[4; 5]), vec![2, 2, 1]);
    assert_eq!(
        chunks(64, 10, &[10, 4]),
        vec![1, 1],
        "an entry filling the limit goes alone"
    );
}

/// Bounded sizes: a proposal whose payload exceeds `max_bytes_per_append` is
/// refused (it could never be sent within the limit); one at the limit is
/// accepted.
#[test]
fn propose_rejects_entry_larger_than_max_bytes() {
    let mut cfg = config(1, 3);
    cfg.max_bytes_per_append = 10;
    let mut leader = manual_leader(cfg);
    assert_eq!(
        leader.propose(Bytes::from(vec![b'x'; 11])),
        Err(crate::raft::Error::EntryTooLarge {
            len_bytes: 11,
            max_bytes: 10
        })
    );
    assert_eq!(
        leader.status().last_log_index,
        LogIndex(1),
        "nothing appended"
    );
    assert!(leader.propose(Bytes::from(vec![b'x'; 10])).is_ok());
}

/// Pipelining: a follower that acked recently gets new entries at once on
/// propose (without waiting for a heartbeat or an ack), up to the in-flight
/// limit; acks open the window again.
#[test]
fn replicating_follower_gets_new_entries_on_propose_up_to_inflight_limit() {
    let mut cfg = config(1, 2);
    cfg.max_entries_per_append = 1;
    let mut leader = manual_leader(cfg);
    leader.step(ack(2, 1, 1, 0)).expect("peer");
    drain(&mut leader);
    // Entries 2..=75: every message but the last is full (more behind it).
    for i in 0..MAX_INFLIGHT_APPENDS + 10 {
        leader.propose(Bytes::from(format!("{i}"))).expect("leader");
    }
    let appends = appends_to(&drain(&mut leader).messages, 2);
    assert_eq!(appends.len(), MAX_INFLIGHT_APPENDS, "up to the limit");
    assert!(appends
        .iter()
        .enumerate()
        .all(|(i, a)| *a == (i as u64 + 1, 1, 0)));
    // An ack for the first 10 entries frees 10 places: the full messages
    // go out at once, the last entry waits for everything before it.
    leader.step(ack(2, 1, 11, 0)).expect("peer");
    let appends = appends_to(&drain(&mut leader).messages, 2);
    assert_eq!(appends.len(), 9);
    assert_eq!(appends[0].0, MAX_INFLIGHT_APPENDS as u64 + 1);
    leader
        .step(ack(2, 1, MAX_INFLIGHT_APPENDS as u64 + 10, 0))
        .expect("peer");
    assert_eq!(
        appends_to(&drain(&mut leader).messages, 2),
        vec![(MAX_INFLIGHT_APPENDS as u64 + 10, 1, 0)]
    );
}

/// After a rejection the leader falls back to probing: one AppendEntries at a
/// time until the follower answers (new proposals do not add messages).
#[test]
fn rejected_follower_is_probed_one_message_at_a_time() {
    let mut leader = manual_leader(config(1, 2));
    leader.step(ack(2, 1, 1, 0)).expect("peer");
    leader.propose(Bytes::from("a")).expect("leader");
    drain(&mut leader);
    leader
        .step(envelope(
            2,
            1,
            Message::AppendEntriesResponse {
                term: Term(1),
                success: false,
                match_index: LogIndex(0),
                conflict_index: LogIndex(2),
                conflict_term: None,
                read_ctx: 0,
            },
        ))
        .expect("peer");
    assert_eq!(appends_to(&drain(&mut leader).messages, 2), vec![(1, 1, 0)]);
    leader.propose(Bytes::from("b")).expect("leader");
    assert!(appends_to(&drain(&mut leader).messages, 2).is_empty());
    leader.step(ack(2, 1, 2, 0)).expect("peer");
    assert_eq!(appends_to(&drain(&mut leader).messages, 2), vec![(2, 1, 0)]);
}

/// §5.3: a follower that missed entries (lost messages) is repaired by the
/// next heartbeat, which carries entries when the follower is behind.
#[test]
fn heartbeat_repairs_follower_that_lost_appends() {
    let mut net = Network::new(3, 5);
    net.elect(1);
    net.cut(1, 3);
    for i in 0..20 {
        net.raft(1)
            .propose(Bytes::from(format!("{i}")))
            .expect("leader");
    }
    net.settle();
    assert_eq!(net.node(3).log.len(), 1);
    net.heal();
    for _ in 0..2 * HEARTBEAT {
        net.tick_all();
    }
    assert_eq!(net.log(3), net.log(1));
    assert_eq!(net.raft(3).status().commit_index, LogIndex(21));
}

/// Thesis §10.2.1: the leader writes its log in parallel with replicating, so
/// it counts itself toward a majority only for entries the driver persisted
/// (acknowledged by `advance`). Commit may then advance inside `advance`.
#[test]
fn leader_counts_itself_only_after_persisting() {
    // One voter: the no-op commits only once advance() reports it durable.
    let mut raft = super::network::node(1, 1);
    for _ in 0..super::network::ELECTION_MAX {
        raft.tick();
    }
    assert_eq!(raft.status().role, Role::Leader);
    let ready = raft.ready();
    assert_eq!(ready.entries.len(), 1);
    assert!(ready.committed_entries.is_empty());
    assert_eq!(raft.status().commit_index, LogIndex(0));
    raft.advance(ready);
    assert_eq!(raft.status().commit_index, LogIndex(1));
    assert!(raft.has_ready());
    assert_eq!(drain(&mut raft).committed_entries.len(), 1);

    // Three voters: one follower's ack is not a majority until the leader's
    // own write of the same entry is durable.
    let mut leader = manual_leader(config(1, 3));
    leader.step(ack(2, 1, 1, 0)).expect("peer");
    drain(&mut leader);
    let index = leader.propose(Bytes::from("x")).expect("leader").0;
    let ready = leader.ready();
    leader.step(ack(2, 1, index.0, 0)).expect("peer");
    assert_eq!(leader.status().commit_index, LogIndex(1));
    leader.advance(ready);
    assert_eq!(leader.status().commit_index, index);
}

/// Restart: the durable log and hard state (with its commit index) are given
/// to `Raft::new`; the first Ready replays committed entries from index 1 so
/// the driver rebuilds its state machine, and `last_applied` restarts at 0.
#[test]
fn restart_replays_committed_entries() {
    let mut net = Network::new(3, 6);
    net.elect(1);
    for i in 0..4 {
        net.raft(1)
            .propose(Bytes::from(format!("{i}")))
            .expect("leader");
    }
    net.settle();
    for _ in 0..HEARTBEAT {
        net.tick_all();
    }
    let applied_before = net.node(2).applied.clone();
    assert_eq!(applied_before.len(), 5);
    net.restart(2, 99);
    let status = net.raft(2).status();
    assert_eq!(
        (status.commit_index, status.last_applied),
        (LogIndex(5), LogIndex(0))
    );
    let ready = drain(net.raft(2));
    assert_eq!(ready.hard_state, None);
    assert!(ready.entries.is_empty());
    assert_eq!(ready.committed_entries, applied_before);
    assert_eq!(net.raft(2).status().last_applied, LogIndex(5));
}

/// §5.3 ("the leader keeps track of the highest index it knows to be committed,
/// and it includes that index in future AppendEntries"): once a proposal
/// commits, followers learn the new commit index in the leader's next Ready,
/// without waiting for a heartbeat tick, so they apply (and serve reads that
/// wait on apply) without a heartbeat interval of lag.
#[test]
fn followers_learn_new_commit_index_without_waiting_for_heartbeat() {
    let mut net = Network::new(3, 7);
    net.elect(1);
    net.settle();
    let (index, _) = net.raft(1).propose(Bytes::from("x")).expect("leader");
    // No ticks at all from here on: only message delivery and Ready processing.
    net.settle();
    assert_eq!(net.raft(1).status().commit_index, index);
    for id in 2..=3 {
        assert_eq!(
            net.raft(id).status().last_applied,
            index,
            "follower {id} applied the entry without a heartbeat"
        );
    }
}

/// The AppendEntries in `messages` addressed to `to`, as (entry count,
/// leader_commit).
fn commits_to(messages: &[crate::raft::Envelope], to: u64) -> Vec<(usize, u64)> {
    messages
        .iter()
        .filter(|e| e.to == NodeId(to))
        .filter_map(|e| match &e.message {
            Message::AppendEntries {
                entries,
                leader_commit,
                ..
            } => Some((entries.len(), leader_commit.0)),
            _ => None,
        })
        .collect()
}

/// A new commit index rides on entries: a follower with an AppendEntries in
/// flight gets no message of its own for it, but learns it once nothing is
/// in flight (right after its ack); one with nothing in flight is told at
/// once. Nothing is sent twice.
#[test]
fn commit_index_waits_for_a_follower_with_entries_in_flight() {
    let mut leader = manual_leader(config(1, 3));
    leader.step(ack(2, 1, 1, 0)).expect("peer");
    leader.step(ack(3, 1, 1, 0)).expect("peer");
    drain(&mut leader);
    leader.propose(Bytes::from("a")).expect("leader");
    let ready = drain(&mut leader);
    assert_eq!(commits_to(&ready.messages, 2), vec![(1, 1)]);
    assert_eq!(commits_to(&ready.messages, 3), vec![(1, 1)]);
    // 2's ack commits entry 2; 3 still has it in flight.
    leader.step(ack(2, 1, 2, 0)).expect("peer");
    assert_eq!(leader.status().commit_index, LogIndex(2));
    let ready = drain(&mut leader);
    assert_eq!(commits_to(&ready.messages, 2), vec![(0, 2)], "told at once");
    assert!(
        commits_to(&ready.messages, 3).is_empty(),
        "3 awaits its ack"
    );
    leader.step(ack(3, 1, 2, 0)).expect("peer");
    let ready = drain(&mut leader);
    assert_eq!(
        commits_to(&ready.messages, 3),
        vec![(0, 2)],
        "after its ack"
    );
    assert!(commits_to(&ready.messages, 2).is_empty());
    // The acks of the commit-only messages need no answer.
    leader.step(ack(2, 1, 2, 0)).expect("peer");
    leader.step(ack(3, 1, 2, 0)).expect("peer");
    assert!(drain(&mut leader).messages.is_empty());
}

/// Nagle's rule: while an AppendEntries is unacknowledged, entries that do
/// not fill a message wait and leave together after the ack; full messages
/// (a backlog longer than `max_entries_per_append`) are still pipelined.
#[test]
fn partial_appends_wait_for_the_ack_and_full_ones_pipeline() {
    let mut cfg = config(1, 2);
    cfg.max_entries_per_append = 4;
    let mut leader = manual_leader(cfg);
    leader.step(ack(2, 1, 1, 0)).expect("peer");
    drain(&mut leader);
    leader.propose(Bytes::from("a")).expect("leader");
    assert_eq!(appends_to(&drain(&mut leader).messages, 2), vec![(1, 1, 0)]);
    for i in 0..3 {
        leader.propose(Bytes::from(format!("{i}"))).expect("leader");
        let ready = drain(&mut leader);
        assert!(
            appends_to(&ready.messages, 2).is_empty(),
            "proposal {i} waits"
        );
    }
    leader.step(ack(2, 1, 2, 0)).expect("peer");
    assert_eq!(
        appends_to(&drain(&mut leader).messages, 2),
        vec![(2, 3, 0)],
        "the three leave together"
    );
    // A backlog of 10 behind an unacknowledged message: the two full
    // messages go at once, the tail of 2 after their acks.
    for i in 0..10 {
        leader
            .propose(Bytes::from(format!("b{i}")))
            .expect("leader");
    }
    assert_eq!(
        appends_to(&drain(&mut leader).messages, 2),
        vec![(5, 4, 0), (9, 4, 0)]
    );
    leader.step(ack(2, 1, 13, 0)).expect("peer");
    assert_eq!(
        appends_to(&drain(&mut leader).messages, 2),
        vec![(13, 2, 0)]
    );
}
