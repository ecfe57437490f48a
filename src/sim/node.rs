//! One simulated node: the real `raft::Raft`, a `store::MemStore` persisted per
//! the Ready contract, and a real `kv::Db` fed by committed entries.
//!
//! The node keeps a mirror of its log as handed out by Ready (everything the
//! checkers need to read a node's log without reaching into the core), and
//! survives crashes: [`SimNode::crash`] drops the core, the state machine and
//! every unsynced write; [`SimNode::restart`] rebuilds them from the store's
//! durable state, and the first Ready replays the committed entries.

use crate::kv::Db;
use crate::raft::{Config, Entry, HardState, NodeId, Raft, Ready, Role, Status, Term};
use crate::store::{LogStore, MemStore};

/// A node of the simulated cluster.
pub struct SimNode {
    /// Its id.
    pub id: NodeId,
    /// The core; `None` while the node is down.
    pub raft: Option<Raft>,
    /// Durable storage, surviving crashes (minus unsynced writes).
    pub store: MemStore,
    /// The state machine, rebuilt by replay after a restart.
    pub db: Db,
    /// The node's log as of the last Ready it persisted (index i at i-1).
    pub log: Vec<Entry>,
    /// Highest index applied to `db` in this incarnation.
    pub applied_index: u64,
    /// How many times the node restarted (part of its RNG seed).
    pub restarts: u64,
    /// Rule break (d): write every hard state without its vote.
    pub forget_vote: bool,
    /// Status after the last check (for monotonicity), `None` after a restart.
    pub last_status: Option<Status>,
    /// Highest term made durable (a restart must not go below it).
    pub durable_term: Term,
    config: Config,
    seed: u64,
}

/// What a crash in the middle of persisting a Ready keeps.
#[derive(Clone, Copy, Debug)]
pub enum CrashPoint {
    /// Before the fsync: every write of this Ready is lost.
    BeforeSync,
    /// A torn write: the first `ops` writes of this Ready survive.
    Torn {
        /// Writes that reached the disk.
        ops: usize,
    },
}

impl SimNode {
    /// A fresh node `id` of the cluster `voters`.
    pub fn new(config: Config, seed: u64) -> SimNode {
        let id = config.id;
        let mut node = SimNode {
            id,
            raft: None,
            store: MemStore::new(),
            db: Db::new(),
            log: Vec::new(),
            applied_index: 0,
            restarts: 0,
            forget_vote: false,
            last_status: None,
            durable_term: Term(0),
            config,
            seed,
        };
        node.start();
        node
    }

    /// True while the node runs.
    pub fn is_up(&self) -> bool {
        self.raft.is_some()
    }

    /// The core's status (None while down).
    pub fn status(&self) -> Option<Status> {
        self.raft.as_ref().map(Raft::status)
    }

    /// True if the node believes it is a leader.
    pub fn is_leader(&self) -> bool {
        self.status().is_some_and(|s| s.role == Role::Leader)
    }

    /// The term of the entry at `index` in the mirrored log (0: none).
    pub fn term_at(&self, index: u64) -> Option<Term> {
        if index == 0 {
            return Some(Term(0));
        }
        self.log.get(index as usize - 1).map(|e| e.term)
    }

    fn start(&mut self) {
        let initial = self.store.initial_state();
        self.log = initial.entries.clone();
        self.durable_term = self.durable_term.max(initial.hard_state.term);
        let seed = self.seed.wrapping_mul(1_000_003) ^ (self.restarts << 32) ^ self.id.0;
        let raft = Raft::new(self.config.clone(), initial, seed).expect("valid sim state");
        self.raft = Some(raft);
        self.db = Db::new();
        self.applied_index = 0;
        self.last_status = None;
    }

    /// Crashes the node now: the core and the state machine are gone, unsynced
    /// writes are lost.
    pub fn crash(&mut self) {
        self.store.crash();
        self.raft = None;
    }

    /// Starts a crashed node from its durable state.
    pub fn restart(&mut self) {
        self.restarts += 1;
        self.start();
    }

    /// Step 1 of the Ready contract: write the hard state and entries, then
    /// fsync — or crash at `crash` (the Ready is then abandoned and the node
    /// is down). Updates the log mirror on success.
    pub fn persist(&mut self, ready: &Ready, crash: Option<CrashPoint>) -> bool {
        if let Some(hard_state) = ready.hard_state {
            let hard_state = if self.forget_vote {
                HardState {
                    voted_for: None,
                    ..hard_state
                }
            } else {
                hard_state
            };
            self.store
                .set_hard_state(hard_state)
                .expect("mem store writes");
        }
        if !ready.entries.is_empty() {
            self.store
                .append(&ready.entries)
                .expect("mem store appends");
        }
        match crash {
            None => {}
            Some(CrashPoint::BeforeSync) => {
                self.crash();
                return false;
            }
            Some(CrashPoint::Torn { ops }) => {
                self.store.crash_keeping(ops);
                self.raft = None;
                return false;
            }
        }
        self.store.sync().expect("mem store syncs");
        if let Some(hard_state) = ready.hard_state {
            self.durable_term = self.durable_term.max(hard_state.term);
        }
        if let Some(first) = ready.entries.first() {
            let keep = first.index.0 as usize - 1;
            assert!(keep <= self.log.len(), "a Ready left a gap in the log");
            self.log.truncate(keep);
            self.log.extend(ready.entries.iter().cloned());
        }
        true
    }
}
