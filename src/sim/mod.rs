//! The deterministic cluster simulator (test-only).
//!
//! A cluster of 3 or 5 nodes, each the real [`crate::raft::Raft`] core, a
//! [`crate::store::MemStore`] persisted per the Ready contract and a real
//! [`crate::kv::Db`] (`node.rs`); a seeded network that delays, drops,
//! duplicates and reorders messages and makes partitions (`network.rs`);
//! crashes (also in the middle of a Ready, before the fsync or torn) and
//! restarts; clients writing and reading throughout (`client.rs`); random
//! leadership transfers (thesis §3.10).
//!
//! Snapshots (§7): every node encodes its state machine at each multiple of
//! the seed's snapshot interval (10 to 200 entries) and compacts its log
//! behind it once a whole interval is applied; the store keeps the snapshot
//! with crash semantics (`store/mem.rs`); a leader's InstallSnapshot travels
//! with its snapshot bytes, and the follower restores its map from them when
//! the Ready hands the snapshot out; a restart restores the stored snapshot
//! and replays the log after it.
//!
//! Scripted schedules (`figure8.rs`) drive the same machinery with chosen
//! partitions and crashes instead of random ones.
//!
//! One seed fixes everything (the cluster size too: even seeds run 3 nodes,
//! odd seeds 5), so the same seed replays the same run bit for bit. Time is a
//! tick counter; one step is one tick: faults, ticks, deliveries, client
//! calls, Ready processing, then the checks.
//!
//! # Checks
//!
//! After every step, the safety checkers of `checks.rs`: election safety, log
//! matching, leader completeness, state machine safety (including snapshots:
//! every node's map agrees at every checkpoint index, and a restored
//! snapshot gives the map applying the entries gave), monotonic term /
//! commit / applied index; on a log after a snapshot, only the indexes the
//! node still has. After the chaos phase the network heals and every
//! node restarts; within [`HEAL_TICKS`] there must be exactly one leader that
//! every node follows, with every log fully committed and applied and every
//! replica's map identical (liveness). Then the client history, closed by a
//! read of each key's final value, must be linearizable
//! ([`crate::lincheck::check_registers`]; a search running out of budget is a
//! failure too), and every acknowledged write must be in the final log at
//! the index and term it was acknowledged with (no lost write).
//!
//! # Replaying
//!
//! A failure panics with its seed and the command replaying it:
//! `SIM_SEED=<seed> cargo test --lib sim::replay -- --nocapture`.
//! `SIM_SEEDS=N SIM_START=K cargo test --release --lib sim::seed_range --
//! --nocapture` (or `make sim SEEDS=N START=K`) runs a range.

mod checks;
mod client;
#[cfg(test)]
mod figure8;
mod network;
mod node;
#[cfg(test)]
mod runner;
#[cfg(test)]
mod teeth;
#[cfg(test)]
mod tests;

use rand::rngs::ChaCha8Rng;
use rand::{RngExt, SeedableRng};

use crate::kv::Output;
use crate::lincheck::{check_registers, CheckResult};
use crate::raft::{Config, EntryKind, Message, NodeId, Role, RuleBreaks};
pub use checks::Check;
use checks::{fail, Checker, Violation};
use client::{Clients, KEYS};
use network::{NetProfile, Network};
use node::{CrashPoint, SimNode};

/// Ticks the healed cluster gets to elect one leader and converge.
pub const HEAL_TICKS: u64 = 600;
/// Search budget of the linearizability check, per key.
const LINCHECK_STEPS: u64 = 5_000_000;

/// Rule breaks switched on for a run (the simulator's self-test).
#[derive(Clone, Copy, Debug, Default)]
pub struct Breaks {
    /// (a)–(c): breaks inside the core.
    pub raft: RuleBreaks,
    /// (d): hard states are written without their vote.
    pub forget_vote: bool,
    /// (e): reads are served from a node's local map without ReadIndex.
    pub read_without_read_index: bool,
}

/// What a run does.
#[derive(Clone, Copy, Debug)]
pub struct Options {
    /// Chaos steps (ticks) before the heal phase.
    pub steps: u64,
    /// Rule breaks (none in CI).
    pub breaks: Breaks,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            steps: 3_000,
            breaks: Breaks::default(),
        }
    }
}

/// A failed run.
#[derive(Clone, Debug)]
pub struct Failure {
    /// The seed that replays it.
    pub seed: u64,
    /// The tick it failed at.
    pub tick: u64,
    /// What failed.
    pub violation: Violation,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "seed {} failed {:?} at tick {}: {}\n  replay: SIM_SEED={} cargo test --lib sim::replay -- --nocapture",
            self.seed, self.violation.check, self.tick, self.violation.detail, self.seed
        )
    }
}

/// What a passing run did.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Summary {
    /// A hash of the whole trace (for the replay test).
    pub trace_hash: u64,
    /// Nodes in the cluster.
    pub nodes: usize,
    /// Operations in the checked history.
    pub ops: usize,
    /// Acknowledged writes.
    pub acked_writes: usize,
    /// Crashes injected.
    pub crashes: u64,
    /// Leaders elected (distinct terms with a leader).
    pub final_term: u64,
    /// What the run exercised beyond the basics: snapshots taken, installed
    /// from a leader, restored at a restart; leadership transfers asked for.
    pub paths: PathStats,
}

/// Counts of the snapshot and transfer paths a run went through.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct PathStats {
    /// Logs compacted behind a snapshot of the node's own state machine.
    pub taken: u64,
    /// Snapshots installed from a leader (InstallSnapshot).
    pub installed: u64,
    /// Restarts that restored the state machine from a snapshot.
    pub restored: u64,
    /// Leadership transfers requested.
    pub transfers: u64,
    /// TimeoutNow messages sent (transfers that caught their target up).
    pub timeout_now_sent: u64,
}

/// A cheap running hash of the run's events (for the replay test).
struct Trace(u64);

impl Trace {
    fn write_u64(&mut self, value: u64) {
        self.0 = (self.0 ^ value)
            .wrapping_mul(0x0000_0100_0000_01b3)
            .rotate_left(17);
    }
}

/// The cluster and everything around it.
struct Sim {
    opts: Options,
    rng: ChaCha8Rng,
    now: u64,
    nodes: Vec<SimNode>,
    net: Network,
    checker: Checker,
    clients: Clients,
    trace: Trace,
    crashes: u64,
    /// Nodes to crash in the middle of their next Ready.
    crash_next_ready: Vec<bool>,
    /// This seed crashes nodes often and restarts them fast.
    crashy: bool,
    /// Nodes check their state machines at every multiple of this index
    /// and compact their logs behind them (0: never).
    snapshot_interval: u64,
    stats: PathStats,
}

/// The shape of a cluster, drawn from the seed (or fixed by a script).
#[derive(Clone, Copy, Debug)]
struct Setup {
    nodes: usize,
    max_entries_per_append: usize,
    crashy: bool,
    snapshot_interval: u64,
    profile: NetProfile,
}

/// Runs one seed; a panic inside counts as a failure.
pub fn run(seed: u64, opts: Options) -> Result<Summary, Failure> {
    run_with(seed, || Sim::new(seed, opts), Sim::run)
}

/// Builds a cluster with `build` and drives it with `body` (the random
/// schedule, or a script); a panic inside counts as a failure.
fn run_with<T>(
    seed: u64,
    build: impl FnOnce() -> Sim,
    body: impl FnOnce(&mut Sim) -> Result<T, Violation>,
) -> Result<T, Failure> {
    let mut tick = 0;
    let result = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let mut sim = build();
        let result = body(&mut sim);
        tick = sim.now;
        result
    }));
    let violation = match result {
        Ok(Ok(value)) => return Ok(value),
        Ok(Err(violation)) => violation,
        Err(panic) => Violation {
            check: Check::Panic,
            detail: panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_else(|| "non-string panic".into()),
        },
    };
    Err(Failure {
        seed,
        tick,
        violation,
    })
}

impl Sim {
    fn new(seed: u64, opts: Options) -> Sim {
        let mut rng = ChaCha8Rng::seed_from_u64(seed);
        let nodes = if seed % 2 == 0 { 3 } else { 5 };
        // Small batches separate an old-term entry from the new leader's
        // no-op (what the Figure 8 rule is about).
        let max_entries_per_append = [1, 2, 4, 64, 256][rng.random_range(0..5)];
        let crashy = rng.random_range(0..2) == 0;
        let profile = NetProfile::random(&mut rng);
        // Short intervals make lagging followers need InstallSnapshot often.
        let snapshot_interval = [10, 25, 60, 200][rng.random_range(0..4)];
        let setup = Setup {
            nodes,
            max_entries_per_append,
            crashy,
            snapshot_interval,
            profile,
        };
        Sim::with_setup(seed, opts, rng, setup)
    }

    fn with_setup(seed: u64, opts: Options, mut rng: ChaCha8Rng, setup: Setup) -> Sim {
        let n = setup.nodes;
        let voters: Vec<NodeId> = (1..=n as u64).map(NodeId).collect();
        let nodes = voters
            .iter()
            .map(|&id| {
                let mut config = Config::new(id, voters.clone());
                config.max_entries_per_append = setup.max_entries_per_append;
                // Odd seeds serve reads from the leader lease (thesis §6.4.1).
                // Every node ticks once per step, so the clocks never drift
                // and the configured bound only shortens the lease; derived
                // from the seed, not drawn, so no other draw moves.
                config.lease_reads = seed % 2 == 1;
                let mut node = SimNode::new(config, seed);
                node.forget_vote = opts.breaks.forget_vote;
                node.raft
                    .as_mut()
                    .expect("fresh node is up")
                    .set_rule_breaks(opts.breaks.raft);
                node
            })
            .collect();
        let net_seed: u64 = rng.random();
        let mut clients = Clients::new(3);
        clients.read_without_read_index = opts.breaks.read_without_read_index;
        Sim {
            opts,
            rng,
            now: 0,
            nodes,
            net: Network::new(n, setup.profile, net_seed),
            checker: Checker::default(),
            clients,
            trace: Trace(0xcbf2_9ce4_8422_2325),
            crashes: 0,
            crash_next_ready: vec![false; n],
            crashy: setup.crashy,
            snapshot_interval: setup.snapshot_interval,
            stats: PathStats::default(),
        }
    }

    fn run(&mut self) -> Result<Summary, Violation> {
        while self.now < self.opts.steps {
            self.inject_faults()?;
            self.step(true)?;
        }
        self.heal()?;
        self.check_history()?;
        Ok(Summary {
            trace_hash: self.trace.0,
            nodes: self.nodes.len(),
            ops: self.clients.history.len(),
            acked_writes: self.clients.acked.len(),
            crashes: self.crashes,
            final_term: self.nodes[0].status().map_or(0, |s| s.term.0),
            paths: self.stats,
        })
    }

    /// One tick of the whole system, then the per-step checks.
    fn step(&mut self, clients_start: bool) -> Result<(), Violation> {
        self.now += 1;
        let now = self.now;
        for node in &mut self.nodes {
            if let Some(raft) = node.raft.as_mut() {
                raft.tick();
            }
        }
        for (envelope, snapshot_data) in self.net.take_due(now) {
            let to = envelope.to.0 as usize - 1;
            let node = &mut self.nodes[to];
            if let Some(raft) = node.raft.as_mut() {
                if let (Message::InstallSnapshot { meta, .. }, Some(data)) =
                    (&envelope.message, snapshot_data)
                {
                    // The stream completed before the message is delivered.
                    node.received.push((meta.clone(), data));
                }
                match raft.step(envelope) {
                    // An honest message can be refused after a crash or a
                    // delay made it look impossible (a TimeoutNow reaching a
                    // target that restarted and forgot the leader): like a
                    // lost message, which Raft tolerates.
                    Ok(()) | Err(crate::raft::Error::Refused { .. }) => {}
                    Err(e) => panic!("sim sends only to members: {e}"),
                }
            }
        }
        if clients_start {
            self.clients.start_ops(&mut self.rng, now, &mut self.nodes);
        }
        for i in 0..self.nodes.len() {
            self.process(i)?;
        }
        self.clients.poll(now, &self.nodes);
        self.trace.write_u64(now);
        for i in 0..self.nodes.len() {
            if self.nodes[i].is_up() {
                self.checker.on_status(&mut self.nodes[i])?;
                let s = self.nodes[i].last_status.expect("just checked");
                self.trace.write_u64(s.term.0 << 8 | s.role as u64);
                self.trace
                    .write_u64(s.commit_index.0 << 20 ^ s.last_log_index.0);
            }
        }
        self.trace.write_u64(self.net.in_flight_count() as u64);
        Ok(())
    }

    /// Runs node `i`'s driver loop: persist, send, apply, serve reads, advance.
    fn process(&mut self, i: usize) -> Result<(), Violation> {
        let now = self.now;
        loop {
            let node = &mut self.nodes[i];
            let Some(raft) = node.raft.as_mut() else {
                return Ok(());
            };
            if !raft.has_ready() {
                break;
            }
            let mut ready = raft.ready();
            let crash = if std::mem::take(&mut self.crash_next_ready[i]) {
                let pending = usize::from(ready.snapshot.is_some())
                    + usize::from(ready.hard_state.is_some())
                    + usize::from(!ready.entries.is_empty());
                Some(match self.rng.random_range(0..3) {
                    0 if pending > 0 => CrashPoint::Torn {
                        ops: self.rng.random_range(0..=pending),
                    },
                    _ => CrashPoint::BeforeSync,
                })
            } else {
                None
            };
            let mut installed = None;
            if !node.persist(&ready, crash, &mut installed) {
                self.after_crash(i);
                return Ok(());
            }
            if let Some(data) = installed {
                self.checker.on_snapshot_restored(node, &data)?;
                self.stats.installed += 1;
                self.trace.write_u64(0x5AA9 ^ node.applied_index << 8);
            }
            self.checker.on_persist(node, &ready)?;
            for envelope in std::mem::take(&mut ready.messages) {
                let data = match &envelope.message {
                    Message::InstallSnapshot { meta, .. } => {
                        let (ours, data) = node
                            .snapshot
                            .as_ref()
                            .expect("a node sending InstallSnapshot has a snapshot");
                        assert_eq!(
                            ours,
                            meta,
                            "node {id} sends a snapshot it does not hold",
                            id = node.id
                        );
                        Some(data.clone())
                    }
                    Message::TimeoutNow { .. } => {
                        self.stats.timeout_now_sent += 1;
                        None
                    }
                    _ => None,
                };
                self.net.send(now, envelope, data);
            }
            let id = node.id;
            let mut checkpoint = None;
            for entry in &ready.committed_entries {
                self.checker.on_apply(node, entry)?;
                self.trace.write_u64(entry.index.0 ^ entry.term.0 << 40);
                if entry.kind == EntryKind::Normal {
                    let output: Output = node.db.apply(self.checker.command(entry.index.0));
                    self.clients
                        .on_apply(now, id, entry.index, entry.term, &output);
                }
                if self.snapshot_interval > 0 && entry.index.0 % self.snapshot_interval == 0 {
                    let state = node.db.snapshot_bytes();
                    self.checker.on_checkpoint(node, entry.index.0, &state)?;
                    checkpoint = Some((entry.index.0, state));
                }
            }
            // §7: compact behind the newest checkpoint once the log holds a
            // whole interval of applied entries (and only committed ones: rule
            // break (c) applies entries before they commit).
            if let Some((index, state)) = checkpoint {
                let commit_index = node.status().map_or(0, |s| s.commit_index.0);
                if index >= node.log_offset + self.snapshot_interval && index <= commit_index {
                    node.take_snapshot(index, state);
                    self.stats.taken += 1;
                    self.trace.write_u64(0x5AA9 ^ index << 8 ^ id.0);
                }
            }
            for read in &ready.read_states {
                self.clients.on_read_state(id, read.ctx, read.index);
            }
            node.raft.as_mut().expect("up").advance(ready);
        }
        // Snapshots streamed this tick that no Ready installed were stale.
        self.nodes[i].received.clear();
        if std::mem::take(&mut self.crash_next_ready[i]) {
            // Nothing to persist this tick: crash between Readies.
            self.nodes[i].crash();
            self.after_crash(i);
        }
        Ok(())
    }

    fn after_crash(&mut self, i: usize) {
        self.crashes += 1;
        let id = self.nodes[i].id;
        self.net.drop_to(id);
        self.clients.on_crash(self.now, id);
        self.trace.write_u64(0xC0FFEE ^ id.0);
    }

    fn restart(&mut self, i: usize) -> Result<(), Violation> {
        self.nodes[i].restart();
        let breaks = self.opts.breaks.raft;
        let node = &mut self.nodes[i];
        node.raft
            .as_mut()
            .expect("restarted")
            .set_rule_breaks(breaks);
        self.checker.on_restart(node)?;
        if let Some((_, data)) = node.snapshot.clone() {
            self.checker.on_snapshot_restored(node, &data)?;
            self.stats.restored += 1;
        }
        Ok(())
    }

    /// The chaos schedule: partitions and heals, crashes and restarts.
    fn inject_faults(&mut self) -> Result<(), Violation> {
        let n = self.nodes.len();
        if self.rng.random_range(0..120) == 0 {
            match self.rng.random_range(0..10) {
                0..=2 => self.net.heal(),
                3 => self.net.partition_random(&mut self.rng),
                4 | 5 => self.net.partition_majority(&mut self.rng),
                6 => self.net.partition_bridge(&mut self.rng),
                _ => {
                    let leader = self.nodes.iter().find(|n| n.is_leader()).map(|n| n.id);
                    let target = leader.unwrap_or(NodeId(self.rng.random_range(1..=n as u64)));
                    self.net.isolate(target);
                }
            }
        }
        // Partitions do not last forever.
        if self.net.is_partitioned() && self.rng.random_range(0..200) == 0 {
            self.net.heal();
        }
        // Leadership transfer (thesis §3.10) to a random voter (itself:
        // cancels one in flight).
        if self.rng.random_range(0..150) == 0 {
            let target = NodeId(self.rng.random_range(1..=n as u64));
            if let Some(node) = self.nodes.iter_mut().find(|n| n.is_leader()) {
                node.raft
                    .as_mut()
                    .expect("a leader is up")
                    .transfer_leader(target)
                    .expect("a leader accepts a transfer to a voter");
                self.stats.transfers += 1;
                self.trace.write_u64(0x7F ^ target.0);
            }
        }
        // Rule break (d) needs a node to restart within the term it voted in.
        let (crash_one_in, restart_one_in) = if self.opts.breaks.forget_vote {
            (40, 4)
        } else if self.crashy {
            (60, 10)
        } else {
            (250, 40)
        };
        if self.rng.random_range(0..crash_one_in) == 0 {
            let i = self.rng.random_range(0..n);
            if self.nodes[i].is_up() {
                if self.rng.random_range(0..2) == 0 {
                    // In the middle of its next Ready (before the fsync, or torn).
                    self.crash_next_ready[i] = true;
                } else {
                    self.nodes[i].crash();
                    self.after_crash(i);
                }
            }
        }
        for i in 0..n {
            if !self.nodes[i].is_up() && self.rng.random_range(0..restart_one_in) == 0 {
                self.restart(i)?;
            }
        }
        Ok(())
    }

    /// Heals the network, restarts everyone, and waits for one leader and
    /// identical replicas.
    fn heal(&mut self) -> Result<(), Violation> {
        self.net.heal();
        self.net.profile.drop_per_mille = 0;
        self.net.profile.duplicate_per_mille = 0;
        self.crash_next_ready.fill(false);
        for i in 0..self.nodes.len() {
            if !self.nodes[i].is_up() {
                self.restart(i)?;
            }
        }
        let deadline = self.now + HEAL_TICKS;
        while self.now < deadline {
            self.step(false)?;
            if self.converged() && !self.clients.busy() {
                return self.check_replicas();
            }
        }
        let statuses: Vec<_> = self.nodes.iter().map(|n| n.status()).collect();
        fail(
            Check::Liveness,
            format!("no single leader with converged replicas {HEAL_TICKS} ticks after healing: {statuses:?}"),
        )
    }

    /// One leader, followed by all, every log committed and applied.
    fn converged(&self) -> bool {
        let statuses: Vec<_> = self.nodes.iter().filter_map(|n| n.status()).collect();
        let leaders: Vec<_> = statuses.iter().filter(|s| s.role == Role::Leader).collect();
        let [leader] = leaders.as_slice() else {
            return false;
        };
        statuses.iter().all(|s| {
            s.term == leader.term
                && s.leader == Some(leader.id)
                && s.last_log_index == leader.last_log_index
                && s.commit_index == leader.last_log_index
                && s.last_applied == leader.last_log_index
        }) && self
            .nodes
            .iter()
            .all(|n| n.applied_index == leader.last_log_index.0)
    }

    fn check_replicas(&mut self) -> Result<(), Violation> {
        let first = &self.nodes[0];
        for node in &self.nodes[1..] {
            let same = node.db.len() == first.db.len()
                && KEYS.iter().all(|k| node.db.get(k) == first.db.get(k));
            if !same {
                return fail(
                    Check::Liveness,
                    format!(
                        "replicas {} and {} differ after converging",
                        first.id, node.id
                    ),
                );
            }
        }
        Ok(())
    }

    /// Linearizability of the history closed by final reads, and no
    /// acknowledged write lost.
    fn check_history(&mut self) -> Result<(), Violation> {
        self.clients.abandon_all(self.now);
        for key in KEYS {
            let value = self.nodes[0].db.get(key).map(|v| v.to_vec());
            self.clients.final_read(key, value);
        }
        for acked in &self.clients.acked {
            let found = self.checker.applied.get(acked.index.0 as usize - 1);
            if found.is_none_or(|(term, _)| *term != acked.term) {
                return fail(
                    Check::LostWrite,
                    format!(
                        "write {:?} acked at {}@{} is not in the final log (found {:?})",
                        acked.op,
                        acked.index,
                        acked.term,
                        found.map(|(t, _)| t)
                    ),
                );
            }
        }
        match check_registers(&self.clients.history, LINCHECK_STEPS) {
            CheckResult::Linearizable => Ok(()),
            CheckResult::NotLinearizable { reason } => fail(Check::Linearizability, reason),
            CheckResult::Unknown { reason } => fail(Check::LinearizabilityUnknown, reason),
        }
    }
}

/// `SIM_SEED=<seed> [SIM_STEPS=<n>] cargo test --lib sim::replay -- --nocapture`
/// replays one seed (seed 0 without `SIM_SEED`).
#[cfg(test)]
#[test]
fn replay() {
    runner::replay();
}

/// `SIM_SEEDS=N SIM_START=K [SIM_STEPS=n] cargo test --release --lib
/// sim::seed_range -- --nocapture` (what `make sim` runs; 10 seeds by default).
#[cfg(test)]
#[test]
fn seed_range() {
    runner::seed_range();
}
