//! The node core's rules, each shown on a small deterministic cluster of
//! cores driven by hand: the test is the shell, holding every WAL job until
//! it says the job is durable and every message until it delivers it.

use std::collections::{BTreeMap, VecDeque};

use super::*;
use crate::raft::{Config, EntryKind, InitialState, RuleBreaks};

const TICK: Duration = Duration::from_millis(10);
const ELECTION_MIN: u32 = 10;
const ELECTION_MAX: u32 = 20;

type TestCore = NodeCore<u64, u64>;

fn config(id: u64, lease_reads: bool) -> Config {
    Config {
        election_timeout_min_ticks: ELECTION_MIN,
        election_timeout_max_ticks: ELECTION_MAX,
        heartbeat_interval_ticks: 2,
        lease_reads,
        ..Config::new(NodeId(id), vec![NodeId(1), NodeId(2), NodeId(3)])
    }
}

fn core_config(restored: (LogIndex, Term)) -> CoreConfig {
    CoreConfig {
        tick: TICK,
        max_catch_up_ticks: u64::from(ELECTION_MAX),
        max_pending_proposals: 1000,
        early_ack: false,
        snapshot_every_entries: 0,
        snapshot_log_growth_percent: 0,
        restored,
        start: Duration::ZERO,
    }
}

fn new_core(id: u64, lease_reads: bool) -> TestCore {
    core_with(config(id, lease_reads))
}

fn core_with(config: Config) -> TestCore {
    let id = config.id.0;
    let raft = Raft::new(config, InitialState::default(), id).expect("a valid config");
    NodeCore::new(raft, core_config((LogIndex(0), Term(0))))
}

fn set(key: &str) -> kv::Op {
    kv::Op::Set {
        key: bytes::Bytes::copy_from_slice(key.as_bytes()),
        value: bytes::Bytes::from_static(b"v"),
    }
}

fn is_ack(envelope: &Envelope) -> bool {
    matches!(
        envelope.message,
        Message::AppendEntriesResponse { success: true, .. }
    )
}

fn is_vote(envelope: &Envelope) -> bool {
    matches!(
        envelope.message,
        Message::RequestVoteResponse {
            vote_granted: true,
            ..
        }
    )
}

/// Three cores, a wire, and per node the WAL jobs not yet durable.
struct Cluster {
    cores: BTreeMap<u64, TestCore>,
    now: Duration,
    wire: VecDeque<Envelope>,
    /// Last job id handed out per node and not yet reported durable.
    unpersisted: BTreeMap<u64, u64>,
    /// Every entry each node handed to apply, in order.
    applied: BTreeMap<u64, Vec<Entry>>,
    /// Reads answered per node: (handle, index).
    reads: BTreeMap<u64, Vec<(u64, LogIndex)>>,
    /// Every message each node's core let leave, and when: true for one
    /// released by `on_persisted`.
    sent: Vec<(Envelope, bool)>,
}

impl Cluster {
    fn new(lease_reads: bool) -> Cluster {
        Cluster {
            cores: (1..=3).map(|id| (id, new_core(id, lease_reads))).collect(),
            now: Duration::ZERO,
            wire: VecDeque::new(),
            unpersisted: BTreeMap::new(),
            applied: BTreeMap::new(),
            reads: BTreeMap::new(),
            sent: Vec::new(),
        }
    }

    fn core(&mut self, id: u64) -> &mut TestCore {
        self.cores.get_mut(&id).expect("a member")
    }

    /// Carries out every Ready of `id` except durability.
    fn pump(&mut self, id: u64) {
        for _ in 0..100 {
            if !self.core(id).has_ready() {
                return;
            }
            let ready = self.core(id).ready().expect("no rule broken");
            if let Some(job) = ready.persist {
                self.unpersisted.insert(id, job.id);
            }
            for envelope in ready.send {
                self.sent.push((envelope.clone(), false));
                self.wire.push_back(envelope);
            }
            let outputs = ready.apply.iter().map(|_| None).collect();
            self.core(id).applied(&ready.apply, outputs);
            self.applied.entry(id).or_default().extend(ready.apply);
            self.reads.entry(id).or_default().extend(ready.reads);
        }
        panic!("node {id} never ran out of Readies");
    }

    /// Reports every job of `id` durable and sends what that released.
    fn persist(&mut self, id: u64) {
        if let Some(job) = self.unpersisted.remove(&id) {
            let released = self.core(id).on_persisted(job);
            for envelope in released.send {
                self.sent.push((envelope.clone(), true));
                self.wire.push_back(envelope);
            }
        }
        self.pump(id);
    }

    /// Delivers every message on the wire addressed to `to` (others stay).
    fn deliver_to(&mut self, to: u64) {
        let (mine, others): (VecDeque<_>, VecDeque<_>) =
            self.wire.drain(..).partition(|e| e.to == NodeId(to));
        self.wire = others;
        for envelope in mine {
            let _ = self.core(to).step(envelope);
        }
        self.pump(to);
    }

    /// Everyone persists and every message is delivered, until quiet.
    fn settle(&mut self) {
        for _ in 0..50 {
            for id in 1..=3 {
                self.pump(id);
                self.persist(id);
            }
            if self.wire.is_empty() {
                return;
            }
            for id in 1..=3 {
                self.deliver_to(id);
            }
        }
        panic!("the cluster never settled");
    }

    /// Moves the clock of every node in `ids` by `by`.
    fn advance(&mut self, by: Duration, ids: &[u64]) {
        self.now += by;
        let now = self.now;
        for &id in ids {
            self.core(id).tick_to(now);
            self.pump(id);
        }
    }

    /// Ticks node 1 alone until it leads (the others never time out first),
    /// then lets the cluster settle so its no-op commits everywhere.
    fn elect_1(&mut self) {
        for _ in 0..100 {
            if self.core(1).raft().status().role == Role::Leader {
                self.settle();
                return;
            }
            self.advance(TICK, &[1]);
            self.settle();
        }
        panic!("node 1 never became leader");
    }
}

/// A vote and an append acknowledgement depend on the term, vote and
/// entries being durable: the core hands them out only through
/// `on_persisted`, never in the Ready that changed them.
#[test]
fn a_persist_dependent_message_waits_for_its_fsync() {
    let mut c = Cluster::new(false);
    c.elect_1();
    let votes: Vec<bool> = c
        .sent
        .iter()
        .filter(|(e, _)| is_vote(e))
        .map(|(_, released)| *released)
        .collect();
    assert!(!votes.is_empty(), "node 1 was elected by votes");
    assert!(
        votes.iter().all(|&released| released),
        "a vote left before its fsync"
    );

    assert!(c.core(1).propose_batch(&[set("k")], vec![7], 1).is_empty());
    c.pump(1);
    // The leader's AppendEntries leave at once, before its own fsync.
    assert!(c.unpersisted.contains_key(&1));
    assert!(c.wire.iter().any(|e| e.to == NodeId(2)));
    c.sent.clear();
    c.deliver_to(2);
    assert!(
        c.unpersisted.contains_key(&2),
        "the follower has a WAL job for the entry"
    );
    assert!(
        !c.wire.iter().any(|e| e.from == NodeId(2) && is_ack(e)),
        "the follower acknowledged an entry it has not fsynced"
    );
    c.persist(2);
    assert!(
        c.wire.iter().any(|e| e.from == NodeId(2) && is_ack(e)),
        "the acknowledgement leaves once the entry is durable"
    );
}

/// The followers' fsync of an entry stalls for three election timeouts (a
/// snapshot's writeback sharing the disk): their acks of the entry wait for
/// it, but their heartbeat acks, which claim only what is durable, do not.
/// The leader keeps check-quorum and its read rounds complete; the entry
/// commits only once a follower made it durable.
#[test]
fn a_follower_whose_fsync_stalls_still_answers_heartbeats() {
    let mut c = Cluster::new(false);
    c.elect_1();
    let term = c.core(1).raft().status().term;
    let before = c.core(1).raft().status().commit_index;
    c.core(1).propose_batch(&[set("k")], vec![7], 1);
    c.pump(1);
    c.persist(1);
    c.deliver_to(2);
    c.deliver_to(3);
    assert!(c.unpersisted.contains_key(&2) && c.unpersisted.contains_key(&3));
    c.core(1).read_index(9).expect("leader");
    c.pump(1);
    for _ in 0..3 * ELECTION_MIN {
        c.advance(TICK, &[1, 2, 3]);
        c.persist(1);
        for id in 1..=3 {
            c.deliver_to(id);
        }
    }
    let status = c.core(1).raft().status();
    assert_eq!((status.role, status.term), (Role::Leader, term));
    assert_eq!(
        status.commit_index, before,
        "committed before a follower fsync"
    );
    assert_eq!(
        c.reads
            .get(&1)
            .map(|reads| reads.iter().map(|r| r.0).collect::<Vec<_>>()),
        Some(vec![9]),
        "the read round completed"
    );
    assert!(
        !c.sent.iter().any(|(e, released)| !released
            && e.from != NodeId(1)
            && matches!(e.message, Message::AppendEntriesResponse { match_index, .. }
                if match_index > before)),
        "an ack claimed an entry before its fsync"
    );
    c.settle();
    assert!(c.core(1).raft().status().commit_index > before);
}

/// Readies pipeline: a later Ready without WAL work of its own still waits
/// for the job before it, and the jobs release in order.
#[test]
fn held_messages_are_released_in_order_through_the_reported_job() {
    let mut c = Cluster::new(false);
    // One entry per AppendEntries, so two can be in flight: a message that
    // is not full waits for the ack of the one before it.
    for id in 1..=3 {
        let config = Config {
            max_entries_per_append: 1,
            ..config(id, false)
        };
        c.cores.insert(id, core_with(config));
    }
    c.elect_1();
    c.core(1).propose_batch(&[set("a")], vec![1], 1);
    c.pump(1);
    c.deliver_to(2);
    c.core(1).propose_batch(&[set("b")], vec![1], 1);
    c.core(1).propose_batch(&[set("c")], vec![1], 1);
    c.pump(1);
    c.deliver_to(2);
    let follower = c.core(2);
    // Two held Readies, neither released.
    assert_eq!(follower.held.len(), 2);
    let first = follower.held.front().and_then(|h| h.job).expect("a job");
    let released = follower.on_persisted(first);
    assert_eq!(released.send.len(), 1, "only the first job's ack");
    assert_eq!(follower.held.len(), 1);
    let released = follower.on_persisted(first + 1);
    assert_eq!(released.send.len(), 1);
    assert!(follower.held.is_empty());
}

/// Only committed entries are handed to apply: the leader's own fsync is one
/// copy of three; the entry applies once a follower acknowledged it.
#[test]
fn an_uncommitted_entry_is_never_handed_to_apply() {
    let mut c = Cluster::new(false);
    c.elect_1();
    let before = c.applied.get(&1).map_or(0, Vec::len);
    c.core(1).propose_batch(&[set("k")], vec![7], 1);
    c.pump(1);
    c.persist(1);
    assert_eq!(
        c.applied.get(&1).map_or(0, Vec::len),
        before,
        "applied with only the leader's copy"
    );
    // The follower stores it too, but has not learned that it committed.
    let index = c.core(1).raft().status().last_log_index;
    c.deliver_to(2);
    c.persist(2);
    let follower_has = |c: &Cluster| {
        c.applied
            .get(&2)
            .is_some_and(|a| a.iter().any(|e| e.index == index))
    };
    assert!(
        !follower_has(&c),
        "the follower applied an uncommitted entry"
    );
    c.deliver_to(1);
    assert_eq!(
        c.applied.get(&1).map_or(0, Vec::len),
        before + 1,
        "a majority has it"
    );
    assert!(!follower_has(&c));
    // The next message from the leader carries the commit index.
    c.settle();
    assert!(follower_has(&c));
}

/// If the Raft core handed out an entry for apply before it committed (the
/// simulator's `apply_before_commit` rule break), the core refuses the Ready.
#[test]
fn a_ready_applying_past_the_commit_index_is_refused() {
    let mut c = Cluster::new(false);
    c.elect_1();
    c.core(1).raft.set_rule_breaks(RuleBreaks {
        apply_before_commit: true,
        ..RuleBreaks::default()
    });
    c.core(1).propose_batch(&[set("k")], vec![7], 1);
    let err = c.core(1).ready().expect_err("past the commit index");
    assert!(matches!(err, CoreError::ApplyPastCommit { .. }), "{err}");
}

/// A leader paused for longer than its lease resumes with its tick count
/// caught up: the lease is gone, and a read goes through a quorum round (or
/// is refused once the leader stepped down), never served at once.
#[test]
fn a_lease_read_after_a_pause_is_not_served_from_the_lease() {
    let mut c = Cluster::new(true);
    c.elect_1();
    // A heartbeat round acked by a majority grants the lease.
    c.advance(TICK * 2, &[1, 2, 3]);
    c.settle();
    let now = c.now;
    let until = c.core(1).lease_until().expect("a lease after a round");
    assert!(until > now);
    // A read now is answered in the next Ready, from the lease.
    c.core(1).read_index(1).expect("leader");
    c.pump(1);
    assert_eq!(c.reads.get(&1).map_or(0, Vec::len), 1, "served at once");

    // The process stops for ten seconds; no message arrives meanwhile.
    c.now += Duration::from_secs(10);
    let now = c.now;
    c.core(1).tick_to(now);
    assert!(
        c.core(1).lease_until().is_none_or(|until| until <= now),
        "a lease outlived the pause"
    );
    match c.core(1).read_index(2) {
        Err((2, _)) => {}
        Err(other) => panic!("the wrong read was answered: {other:?}"),
        Ok(()) => {
            c.pump(1);
            assert_eq!(
                c.reads.get(&1).map_or(0, Vec::len),
                1,
                "a read was served from an expired lease"
            );
        }
    }
}

/// Every replica stalls on the same slow entry at about the same time: the
/// whole cluster's clocks jump by a second. The leader's lease ends with the
/// jump, but nobody blames a peer for the stall: the leader does not step
/// down and no follower campaigns.
#[test]
fn a_stall_of_every_node_costs_no_election() {
    let mut c = Cluster::new(true);
    c.elect_1();
    c.advance(TICK * 2, &[1, 2, 3]);
    c.settle();
    assert!(c.core(1).lease_until().is_some());
    let term = c.core(1).raft().status().term;
    c.now += Duration::from_secs(1);
    let now = c.now;
    for id in 1..=3 {
        c.core(id).tick_to(now);
    }
    assert!(
        c.core(1).lease_until().is_none_or(|until| until <= now),
        "the lease outlived the stall"
    );
    c.settle();
    for _ in 0..5 {
        c.advance(TICK, &[1, 2, 3]);
        c.settle();
    }
    for id in 1..=3 {
        let status = c.core(id).raft().status();
        assert_eq!(
            (status.term, status.leader),
            (term, Some(NodeId(1))),
            "node {id}"
        );
    }
    assert_eq!(c.core(1).raft().status().role, Role::Leader);
}

/// One catch-up never delivers more ticks than whole periods elapsed, and
/// past the cap it skips the rest.
#[test]
fn ticks_catch_up_with_the_clock_in_whole_periods() {
    let mut core = new_core(1, false);
    core.tick_to(TICK * 3 + TICK / 2);
    assert_eq!(core.ticked_until(), TICK * 3);
    core.tick_to(TICK * 3 + TICK / 2);
    assert_eq!(core.ticked_until(), TICK * 3);
    core.tick_to(Duration::from_secs(60));
    assert_eq!(core.ticked_until(), Duration::from_secs(60));
}

/// A snapshot at or below the commit index is acknowledged, never installed
/// over the newer log.
#[test]
fn an_older_snapshot_is_not_installed_over_a_newer_log() {
    let mut c = Cluster::new(false);
    c.elect_1();
    for key in ["a", "b", "c"] {
        c.core(1).propose_batch(&[set(key)], vec![1], 1);
    }
    c.settle();
    let status = c.core(2).raft().status();
    assert!(status.commit_index >= LogIndex(3));
    let applied_before = c.applied.get(&2).map_or(0, Vec::len);
    let term = status.term;
    let old = SnapshotMeta {
        last_included_index: LogIndex(2),
        last_included_term: term,
        membership: crate::raft::Membership::voters_only([NodeId(1), NodeId(2), NodeId(3)]),
    };
    let _ = c.core(2).step(Envelope {
        from: NodeId(1),
        to: NodeId(2),
        message: Message::InstallSnapshot { term, meta: old },
    });
    let ready = c.core(2).ready().expect("no rule broken");
    assert!(ready.snapshot.is_none(), "an older snapshot was installed");
    assert_eq!(c.applied.get(&2).map_or(0, Vec::len), applied_before);
    assert!(c.core(2).raft().status().commit_index >= LogIndex(3));
}

/// The core's own guard: a snapshot the Raft core hands out at or below
/// what the map already applied is refused, not installed.
#[test]
fn a_snapshot_at_or_below_the_applied_index_is_refused() {
    let raft = Raft::new(config(2, false), InitialState::default(), 2).expect("valid");
    // The map stands at 5 (as after a snapshot) though the Raft core's log is
    // empty: the core must not let a snapshot at 3 replace it.
    let mut core: TestCore = NodeCore::new(raft, core_config((LogIndex(5), Term(1))));
    let meta = SnapshotMeta {
        last_included_index: LogIndex(3),
        last_included_term: Term(1),
        membership: crate::raft::Membership::voters_only([NodeId(1), NodeId(2), NodeId(3)]),
    };
    core.step(Envelope {
        from: NodeId(1),
        to: NodeId(2),
        message: Message::InstallSnapshot {
            term: Term(1),
            meta,
        },
    })
    .expect("accepted by the Raft core");
    let err = core.ready().expect_err("stale");
    assert!(matches!(err, CoreError::StaleSnapshot { .. }), "{err}");
}

fn hs(term: u64, voted_for: Option<u64>, commit: u64) -> HardState {
    HardState {
        term: Term(term),
        voted_for: voted_for.map(NodeId),
        commit_index: LogIndex(commit),
    }
}

/// A vote, a term or entries must be durable before anything is sent; a
/// commit index that moved alone need not be.
#[test]
fn fsync_is_needed_for_entries_term_and_vote_but_not_commit_alone() {
    let entry = Entry {
        term: Term(1),
        index: LogIndex(1),
        kind: EntryKind::Noop,
        data: Default::default(),
    };
    assert!(must_sync(
        Some(hs(1, None, 0)),
        None,
        std::slice::from_ref(&entry)
    ));
    assert!(must_sync(None, Some(hs(0, None, 0)), &[]));
    assert!(must_sync(Some(hs(1, None, 0)), Some(hs(2, None, 0)), &[]));
    assert!(must_sync(
        Some(hs(2, None, 0)),
        Some(hs(2, Some(3), 0)),
        &[]
    ));
    assert!(!must_sync(
        Some(hs(2, Some(3), 4)),
        Some(hs(2, Some(3), 9)),
        &[]
    ));
    assert!(!must_sync(Some(hs(2, Some(3), 4)), None, &[]));
}

/// Snapshots are due every `snapshot_every_entries` applied entries, one
/// written at a time. One that falls due while another is written starts
/// when that one is durable, not at the next apply: a node that goes idle
/// meanwhile would otherwise keep its log (and a restart's replay) a whole
/// interval longer until its next write.
#[test]
fn a_snapshot_due_while_another_is_written_starts_when_that_one_ends() {
    let mut c = Cluster::new(false);
    c.elect_1();
    c.core(1).config.snapshot_every_entries = 2;
    let write = |c: &mut Cluster, key: &str| {
        c.core(1).propose_batch(&[set(key)], vec![1], 1);
        c.settle();
    };
    write(&mut c, "a");
    let (first, term) = c
        .core(1)
        .snapshot_due()
        .expect("due after the no-op and a write");
    write(&mut c, "b");
    write(&mut c, "c");
    assert_eq!(
        c.core(1).snapshot_due(),
        None,
        "one snapshot is written at a time"
    );
    let applied = c.applied.get(&1).and_then(|e| e.last()).map(|e| e.index);
    assert_eq!(applied, Some(LogIndex(first.0 + 2)));
    let floor = SnapshotMeta {
        last_included_index: first,
        last_included_term: term,
        membership: crate::raft::Membership::voters_only([NodeId(1), NodeId(2), NodeId(3)]),
    };
    // Idle from here: nothing is applied after the first snapshot ends.
    let (next, _) = c.core(1).snapshot_taken(floor, 0);
    assert_eq!(next, Some((LogIndex(first.0 + 2), term)));
    assert_eq!(
        c.core(1).snapshot_due(),
        None,
        "the next one counts as started"
    );
}

/// A snapshot asked for by a client (`SAVE`, `BGSAVE`) starts whatever the
/// counts say, is refused while another is written, and is not written
/// again when the newest one already holds everything applied.
#[test]
fn a_snapshot_asked_for_now_ignores_the_counts_but_not_the_one_in_flight() {
    use super::super::core::SnapshotNow;
    let mut c = Cluster::new(false);
    c.elect_1();
    c.core(1).config.snapshot_every_entries = 0;
    c.core(1).propose_batch(&[set("a")], vec![1], 1);
    c.settle();
    assert_eq!(c.core(1).snapshot_due(), None, "periodic snapshots are off");
    let applied = c.applied.get(&1).and_then(|e| e.last()).map(|e| e.index);
    let SnapshotNow::Start(index, term) = c.core(1).snapshot_now() else {
        panic!("a snapshot asked for starts")
    };
    assert_eq!(Some(index), applied);
    assert_eq!(c.core(1).snapshot_now(), SnapshotNow::InFlight);
    let floor = SnapshotMeta {
        last_included_index: index,
        last_included_term: term,
        membership: crate::raft::Membership::voters_only([NodeId(1), NodeId(2), NodeId(3)]),
    };
    let (next, _) = c.core(1).snapshot_taken(floor, 0);
    assert_eq!(next, None);
    assert_eq!(c.core(1).snapshot_now(), SnapshotNow::Current);
    c.core(1).propose_batch(&[set("b")], vec![2], 1);
    c.settle();
    assert_eq!(
        c.core(1).snapshot_now(),
        SnapshotNow::Start(LogIndex(index.0 + 1), term)
    );
}

/// With `snapshot_log_growth_percent`, a snapshot also waits until the
/// entries applied since the last one carry that share of its bytes: a big
/// dataset is not written out in full every `snapshot_every_entries` writes.
#[test]
fn a_snapshot_waits_for_the_log_to_grow_by_the_last_ones_size() {
    let mut c = Cluster::new(false);
    c.elect_1();
    c.core(1).config.snapshot_every_entries = 1;
    c.core(1).config.snapshot_log_growth_percent = 100;
    let write = |c: &mut Cluster, key: &str| {
        c.core(1).propose_batch(&[set(key)], vec![1], 1);
        c.settle();
    };
    write(&mut c, "a");
    let (first, term) = c
        .core(1)
        .snapshot_due()
        .expect("nothing to outgrow before the first snapshot");
    let floor = SnapshotMeta {
        last_included_index: first,
        last_included_term: term,
        membership: crate::raft::Membership::voters_only([NodeId(1), NodeId(2), NodeId(3)]),
    };
    // Each write's payload is the same size; the snapshot is as big as three.
    let one = c
        .applied
        .get(&1)
        .and_then(|e| e.last())
        .map(|e| e.data.len() as u64)
        .expect("a write was applied");
    assert_eq!(c.core(1).snapshot_taken(floor, 3 * one).0, None);
    write(&mut c, "b");
    write(&mut c, "c");
    assert_eq!(
        c.core(1).snapshot_due(),
        None,
        "two writes carry two thirds of the last snapshot's bytes"
    );
    write(&mut c, "d");
    let (next, _) = c
        .core(1)
        .snapshot_due()
        .expect("three writes carry as many bytes as the last snapshot");
    assert_eq!(next, LogIndex(first.0 + 3));
    c.core(1).config.snapshot_log_growth_percent = 0;
    c.core(1).snapshot_failed();
    write(&mut c, "e");
    assert!(
        c.core(1).snapshot_due().is_some(),
        "0 drops the condition: one entry since is enough"
    );
}
