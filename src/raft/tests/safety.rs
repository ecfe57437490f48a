//! §5.4 safety: the commitment rule (Figure 8), committed entries are never
//! lost or changed, and a seeded randomized run checking Figure 3's
//! properties under message loss, reordering and partitions.

use std::collections::BTreeMap;

use bytes::Bytes;
use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use super::network::{ack, config, drain, envelope, log_of_terms, Network, ELECTION_MAX};
use crate::raft::{Entry, HardState, InitialState, LogIndex, Message, Raft, Role, Term};

/// Figure 8 (§5.4.2): S1, leader of term 4, has the term-2 entry at index 2
/// stored on a majority (S1, S2, S3), yet must not commit it by counting: S5
/// (last log term 3) could still be elected and overwrite it. It commits only
/// once its own term-4 entry (index 3) is on a majority, which commits index 2
/// indirectly.
#[test]
fn leader_does_not_commit_previous_term_entry_by_counting() {
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
    drain(&mut s1);
    for _ in 0..ELECTION_MAX {
        s1.tick();
    }
    assert_eq!(s1.status().term, Term(4));
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
    drain(&mut s1); // the no-op at index 3 is now durable on S1
    s1.step(ack(2, 4, 2, 0)).expect("peer");
    s1.step(ack(3, 4, 2, 0)).expect("peer");
    let ready = drain(&mut s1);
    assert_eq!(
        s1.status().commit_index,
        LogIndex(1),
        "index 2 (term 2) counted"
    );
    assert!(ready.committed_entries.is_empty());
    s1.step(ack(2, 4, 3, 0)).expect("peer");
    assert_eq!(
        s1.status().commit_index,
        LogIndex(1),
        "2 of 5 is no majority"
    );
    s1.step(ack(3, 4, 3, 0)).expect("peer");
    assert_eq!(s1.status().commit_index, LogIndex(3));
    let committed: Vec<(u64, u64)> = drain(&mut s1)
        .committed_entries
        .iter()
        .map(|e| (e.index.0, e.term.0))
        .collect();
    assert_eq!(committed, vec![(2, 2), (3, 4)]);
}

/// §5.4.3 / Log Matching: a follower never truncates a committed entry. A
/// conflicting entry at or below the commit index can only come from a
/// faulty sender (Leader Completeness), so the message is refused before it
/// changes anything, and the committed entries stay.
#[test]
fn follower_never_truncates_committed_entries() {
    let mut raft = Raft::new(config(2, 3), InitialState::default(), 2).expect("valid");
    let append = |term: u64, entries: Vec<Entry>, commit: u64| {
        envelope(
            1,
            2,
            Message::AppendEntries {
                term: Term(term),
                prev_log_index: LogIndex(0),
                prev_log_term: Term(0),
                entries,
                leader_commit: LogIndex(commit),
                read_ctx: 0,
            },
        )
    };
    raft.step(append(1, log_of_terms(&[1, 1]), 2))
        .expect("peer");
    assert_eq!(raft.status().commit_index, LogIndex(2));
    let refused = raft.step(append(2, log_of_terms(&[2]), 0));
    assert!(
        matches!(
            refused,
            Err(crate::raft::Error::Refused {
                refusal: crate::raft::Refusal::ContradictsCommitted { .. },
                ..
            })
        ),
        "{refused:?}"
    );
    assert_eq!(raft.status().last_log_index, LogIndex(2));
    assert_eq!(
        raft.status().term,
        Term(1),
        "a refused message changes nothing"
    );
}

/// §5.4.3 Leader Completeness: entries committed under one leader are in the
/// log of every later leader. The leader is cut off after committing; the new
/// leader (elected by the remaining majority) holds every committed entry.
#[test]
fn new_leader_has_every_committed_entry() {
    let mut net = Network::new(5, 11);
    net.elect(1);
    for i in 0..5 {
        net.raft(1)
            .propose(Bytes::from(format!("{i}")))
            .expect("leader");
    }
    net.settle();
    let committed = net.raft(1).status().commit_index;
    assert_eq!(committed, LogIndex(6));
    net.isolate(1);
    for _ in 0..3 * ELECTION_MAX {
        net.tick_all();
        if net.leader().is_some_and(|l| l != 1) {
            break;
        }
    }
    let leader = net.leader().expect("a new leader");
    assert_ne!(leader, 1);
    assert_eq!(net.log(leader)[..6], net.log(1)[..6]);
}

/// Checks Figure 3's properties across the cluster after every step.
#[derive(Default)]
struct Checker {
    /// Term → the only node that was leader in it (Election Safety).
    leaders: BTreeMap<Term, u64>,
    /// The applied sequence every node must agree with (State Machine Safety).
    committed: Vec<Entry>,
    /// For each committed entry, the highest term any node had when it was
    /// first seen applied: it was committed in that term or earlier, so every
    /// leader of a later term must hold it (Leader Completeness).
    committed_by_term: Vec<Term>,
    /// How far each node's applied list was already checked.
    applied_seen: BTreeMap<u64, usize>,
    /// Last (term, commit_index) per node, which must never go backwards.
    monotonic: BTreeMap<u64, (Term, LogIndex)>,
    /// Read ctx → highest commit index anywhere when the read was accepted:
    /// its ReadState index must not be lower (§6.4, linearizable reads).
    read_floor: BTreeMap<u64, LogIndex>,
    /// How many read states of each node were already checked.
    reads_seen: BTreeMap<u64, usize>,
}

impl Checker {
    fn check(&mut self, net: &Network, seed: u64) {
        let max_term = net
            .nodes
            .values()
            .map(|n| n.raft.status().term)
            .max()
            .unwrap_or_default();
        for (id, node) in &net.nodes {
            let id = id.0;
            let status = node.raft.status();
            if status.role == Role::Leader {
                let leader = *self.leaders.entry(status.term).or_insert(id);
                assert_eq!(
                    leader, id,
                    "seed {seed}: two leaders in term {}",
                    status.term
                );
                // Leader Completeness, for entries committed in an earlier term.
                let must_hold = self
                    .committed_by_term
                    .iter()
                    .take_while(|&&t| t < status.term)
                    .count();
                assert!(
                    node.log.len() >= must_hold
                        && node.log[..must_hold] == self.committed[..must_hold],
                    "seed {seed}: leader {id} of term {} lacks committed entries",
                    status.term
                );
            }
            let previous = self
                .monotonic
                .insert(id, (status.term, status.commit_index));
            if let Some((term, commit)) = previous {
                assert!(status.term >= term, "seed {seed}: term of {id} went back");
                assert!(
                    status.commit_index >= commit,
                    "seed {seed}: commit of {id} went back"
                );
            }
            let seen = self.applied_seen.entry(id).or_insert(0);
            for entry in &node.applied[*seen..] {
                let i = entry.index.0 as usize - 1;
                match self.committed.get(i) {
                    Some(known) => assert_eq!(
                        known, entry,
                        "seed {seed}: node {id} applied a different entry"
                    ),
                    None => {
                        assert_eq!(i, self.committed.len(), "seed {seed}: gap in apply");
                        self.committed.push(entry.clone());
                        self.committed_by_term.push(max_term);
                    }
                }
            }
            *seen = node.applied.len();
            let seen = self.reads_seen.entry(id).or_insert(0);
            for read in &node.read_states[*seen..] {
                let floor = self.read_floor.get(&read.ctx).copied().unwrap_or_default();
                assert!(
                    read.index >= floor,
                    "seed {seed}: read {} on {id} at index {} misses commit {}",
                    read.ctx,
                    read.index,
                    floor
                );
            }
            *seen = node.read_states.len();
        }
        // Log Matching: same index and term ⇒ identical prefixes.
        let logs: Vec<&Vec<Entry>> = net.nodes.values().map(|n| &n.log).collect();
        for (a, log_a) in logs.iter().enumerate() {
            for log_b in &logs[a + 1..] {
                let common = log_a.len().min(log_b.len());
                if let Some(i) = (0..common).rev().find(|&i| log_a[i].term == log_b[i].term) {
                    assert_eq!(log_a[..=i], log_b[..=i], "seed {seed}: log matching broken");
                }
            }
        }
    }
}

/// §5.2/§5.4, Figure 3: under a seeded mix of ticks, message loss, duplication,
/// reordering, partitions, crash-restarts, proposals and reads, every seed
/// keeps Election Safety (one leader per term), Log Matching, Leader
/// Completeness, State Machine Safety (committed entries never change) and
/// ReadIndex safety (a read's index covers every commit before it started); then, healed, the cluster elects a
/// leader and every node applies the same entries.
#[test]
fn one_leader_per_term_under_random_message_loss() {
    let mut leader_terms = 0;
    let mut confirmed_reads = 0;
    for seed in 0..40 {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let n = if seed % 2 == 0 { 3 } else { 5 };
        let mut net = Network::new(n, seed);
        let mut checker = Checker::default();
        let mut proposals = 0u64;
        let mut reads = 0u64;
        for _ in 0..1500 {
            match rng.random_range(0..100u32) {
                0..=29 => {
                    let id = rng.random_range(1..=n);
                    net.raft(id).tick();
                    net.process(id);
                }
                30..=77 => {
                    if !net.in_flight.is_empty() {
                        // Reorder: deliver any message in flight.
                        let i = rng.random_range(0..net.in_flight.len());
                        let envelope = net.in_flight.remove(i).expect("in range");
                        match rng.random_range(0..20u32) {
                            0..=2 => {} // lost
                            3 => {
                                net.deliver(envelope.clone());
                                net.deliver(envelope);
                            }
                            _ => net.deliver(envelope),
                        }
                    }
                }
                78..=87 => {
                    if let Some(leader) = net.leader() {
                        proposals += 1;
                        let data = Bytes::from(format!("{seed}-{proposals}"));
                        let _ = net.raft(leader).propose(data);
                        net.process(leader);
                    }
                }
                88 => {
                    // Partition the current leader away (or a random node).
                    let id = net.leader().unwrap_or_else(|| rng.random_range(1..=n));
                    net.isolate(id);
                }
                89..=90 => {
                    let a = rng.random_range(1..=n);
                    let b = rng.random_range(1..=n);
                    if a != b {
                        net.cut(a, b);
                    }
                }
                91..=94 => net.heal(),
                95..=96 => {
                    // Crash and restart from the durable state: the node
                    // replays its committed entries, checked again below.
                    let id = rng.random_range(1..=n);
                    net.restart(id, rng.random_range(0..u64::MAX));
                    checker.applied_seen.insert(id, 0);
                    checker.reads_seen.insert(id, 0);
                    checker.monotonic.remove(&id);
                    net.process(id);
                }
                _ => {
                    let id = net.leader().unwrap_or_else(|| rng.random_range(1..=n));
                    let floor = net
                        .nodes
                        .values()
                        .map(|node| node.raft.status().commit_index)
                        .max()
                        .unwrap_or_default();
                    reads += 1;
                    if net.raft(id).read_index(reads).is_ok() {
                        checker.read_floor.insert(reads, floor);
                    }
                    net.process(id);
                }
            }
            checker.check(&net, seed);
        }
        // Heal: deliver in order with ticks until one leader commits a probe
        // entry everywhere.
        net.heal();
        let mut probe: Option<(LogIndex, Term)> = None;
        let mut done = false;
        for _ in 0..50 * ELECTION_MAX {
            net.tick_all();
            checker.check(&net, seed);
            if let Some(leader) = net.leader() {
                if probe.is_none_or(|(_, term)| net.raft(leader).status().term != term) {
                    probe = net.raft(leader).propose(Bytes::from("probe")).ok();
                }
            }
            if let Some((index, term)) = probe {
                done = net.nodes.values().all(|node| {
                    node.applied
                        .iter()
                        .any(|e| e.index == index && e.term == term)
                });
                if done {
                    break;
                }
            }
        }
        assert!(done, "seed {seed}: cluster did not converge after healing");
        let applied: Vec<&Vec<Entry>> = net.nodes.values().map(|node| &node.applied).collect();
        assert!(
            applied.windows(2).all(|w| w[0] == w[1]),
            "seed {seed}: applied differs"
        );
        leader_terms += checker.leaders.len();
        confirmed_reads += net
            .nodes
            .values()
            .map(|n| n.read_states.len())
            .sum::<usize>();
    }
    // The run is only meaningful if leadership changed hands and reads were
    // actually confirmed.
    assert!(leader_terms >= 3 * 40, "too few elections: {leader_terms}");
    assert!(
        confirmed_reads >= 40,
        "too few confirmed reads: {confirmed_reads}"
    );
}
