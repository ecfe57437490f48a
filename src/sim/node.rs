//! One simulated node: the real `raft::Raft`, a `store::MemStore` persisted per
//! the Ready contract, and a real `kv::Db` fed by committed entries.
//!
//! The node keeps a mirror of its log as handed out by Ready (everything the
//! checkers need to read a node's log without reaching into the core), and
//! survives crashes: [`SimNode::crash`] drops the core, the state machine and
//! every unsynced write; [`SimNode::restart`] rebuilds them from the store's
//! durable state, and the first Ready replays the committed entries.
//!
//! Snapshots (§7): [`SimNode::take_snapshot`] saves the state machine at an
//! applied index to the store and compacts the core's log behind it; a
//! snapshot streamed from the leader waits in [`SimNode::received`] until a
//! Ready hands out its metadata, and [`SimNode::persist`] then installs it
//! (step 0 of the Ready contract) before the Ready's own writes. A restart
//! restores the state machine from the store's durable snapshot and replays
//! the log after it. The mirror starts after the snapshot too.

use bytes::Bytes;

use crate::kv::Db;
use crate::raft::{
    Config, Entry, HardState, LogIndex, NodeId, Raft, Ready, Role, SnapshotMeta, Status, Term,
};
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
    /// The node's log after `log_offset` as of the last Ready it persisted
    /// (index i at i - log_offset - 1).
    pub log: Vec<Entry>,
    /// Index of the last entry compacted into the node's snapshot (0: none).
    pub log_offset: u64,
    /// Term of that entry.
    pub offset_term: Term,
    /// The node's newest snapshot and its state-machine bytes (what it sends
    /// to followers that need it).
    pub snapshot: Option<(SnapshotMeta, Bytes)>,
    /// Snapshots streamed to this node, waiting for a Ready to install one.
    pub received: Vec<(SnapshotMeta, Bytes)>,
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
            log_offset: 0,
            offset_term: Term(0),
            snapshot: None,
            received: Vec::new(),
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

    /// The term of the entry at `index` in the mirrored log (0: none): the
    /// snapshot's term at its last index, `None` below it (compacted) or past
    /// the end.
    pub fn term_at(&self, index: u64) -> Option<Term> {
        if index == self.log_offset {
            return Some(self.offset_term);
        }
        let position = index.checked_sub(self.log_offset + 1)?;
        self.log.get(position as usize).map(|e| e.term)
    }

    /// Last index of the mirrored log (the snapshot's when no entry follows).
    pub fn last_index(&self) -> u64 {
        self.log_offset + self.log.len() as u64
    }

    fn start(&mut self) {
        let initial = self.store.initial_state();
        self.log = initial.entries.clone();
        self.durable_term = self.durable_term.max(initial.hard_state.term);
        self.received.clear();
        match &initial.snapshot {
            Some(meta) => {
                let data = self.store.snapshot_data();
                self.db = Db::restore(&data).expect("the store's snapshot decodes");
                self.set_offset(meta);
                self.applied_index = meta.last_included_index.0;
                self.snapshot = Some((meta.clone(), data));
            }
            None => {
                self.db = Db::new();
                self.log_offset = 0;
                self.offset_term = Term(0);
                self.applied_index = 0;
                self.snapshot = None;
            }
        }
        let seed = self.seed.wrapping_mul(1_000_003) ^ (self.restarts << 32) ^ self.id.0;
        let raft = Raft::new(self.config.clone(), initial, seed).expect("valid sim state");
        self.raft = Some(raft);
        self.last_status = None;
    }

    fn set_offset(&mut self, meta: &SnapshotMeta) {
        self.log_offset = meta.last_included_index.0;
        self.offset_term = meta.last_included_term;
    }

    /// Saves `data`, the state machine right after applying `index` (which
    /// the core handed out), as the node's snapshot, makes it durable, and
    /// compacts the core's log behind it (§7). The WAL writes and fsyncs a
    /// snapshot before deleting the segments it covers, so nothing is lost
    /// if the node crashes at any point of this.
    pub fn take_snapshot(&mut self, index: u64, data: Bytes) {
        let term = self
            .term_at(index)
            .expect("an applied entry is in the log mirror");
        let meta = SnapshotMeta {
            last_included_index: LogIndex(index),
            last_included_term: term,
            voters: self.config.voters.clone(),
        };
        self.store
            .save_snapshot(meta.clone(), data.clone())
            .expect("mem store writes");
        self.store.sync().expect("mem store syncs");
        let position = (index - self.log_offset) as usize;
        self.log.drain(..position);
        self.set_offset(&meta);
        self.raft
            .as_mut()
            .expect("a node taking a snapshot is up")
            .compact(meta.clone());
        self.snapshot = Some((meta, data));
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

    /// Steps 0 and 1 of the Ready contract: store the snapshot the Ready
    /// installs (if any), write the hard state and entries, then fsync — or
    /// crash at `crash` (the Ready is then abandoned and the node is down).
    /// On success, updates the log mirror and, for a snapshot, replaces the
    /// state machine; returns the installed snapshot's bytes (for the
    /// checker) in `installed`.
    pub fn persist(
        &mut self,
        ready: &Ready,
        crash: Option<CrashPoint>,
        installed: &mut Option<Bytes>,
    ) -> bool {
        let snapshot = ready.snapshot.as_ref().map(|meta| {
            let (_, data) = self
                .received
                .iter()
                .rev()
                .find(|(m, _)| m == meta)
                .unwrap_or_else(|| {
                    panic!(
                        "node {} installs snapshot {meta:?} it never received",
                        self.id
                    )
                });
            let data = data.clone();
            self.store
                .save_snapshot(meta.clone(), data.clone())
                .expect("mem store writes");
            (meta.clone(), data)
        });
        // Entries before the hard state (as the node driver calls them, and
        // as etcd's WAL writes them): a torn write may keep a prefix of
        // these, and a kept commit index whose entries were lost would cover
        // the stale suffix those entries were to replace.
        if !ready.entries.is_empty() {
            self.store
                .append(&ready.entries)
                .expect("mem store appends");
        }
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
        if let Some((meta, data)) = snapshot {
            // §7: keep the suffix after the snapshot's last entry if the log
            // holds it with the same term, else drop the whole log.
            let index = meta.last_included_index.0;
            if self.term_at(index) == Some(meta.last_included_term) {
                self.log.drain(..(index - self.log_offset) as usize);
            } else {
                self.log.clear();
            }
            self.set_offset(&meta);
            self.db = Db::restore(&data).expect("a received snapshot decodes");
            self.applied_index = index;
            self.snapshot = Some((meta, data.clone()));
            *installed = Some(data);
        }
        if let Some(first) = ready.entries.first() {
            let keep = first.index.0 - self.log_offset - 1;
            assert!(
                keep <= self.log.len() as u64,
                "a Ready left a gap in the log"
            );
            self.log.truncate(keep as usize);
            self.log.extend(ready.entries.iter().cloned());
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::raft::EntryKind;

    fn entry(index: u64, term: u64) -> Entry {
        Entry {
            term: Term(term),
            index: LogIndex(index),
            kind: EntryKind::Noop,
            data: Bytes::new(),
        }
    }

    /// A torn write keeps a prefix of a Ready's writes. The entries come
    /// first, so a kept commit index never covers a stale suffix that the
    /// lost entries were to replace (a restart would apply the stale entry).
    #[test]
    fn torn_write_never_keeps_a_commit_index_without_its_entries() {
        let voters = vec![NodeId(1), NodeId(2), NodeId(3)];
        let mut node = SimNode::new(Config::new(NodeId(2), voters), 7);
        let first = Ready {
            hard_state: Some(HardState {
                term: Term(1),
                voted_for: None,
                commit_index: LogIndex(1),
            }),
            entries: vec![entry(1, 1), entry(2, 1)],
            ..Ready::default()
        };
        assert!(node.persist(&first, None, &mut None));
        // The leader of term 2 replaces 2@1 and commits 2@2.
        let second = Ready {
            hard_state: Some(HardState {
                term: Term(2),
                voted_for: None,
                commit_index: LogIndex(2),
            }),
            entries: vec![entry(2, 2)],
            ..Ready::default()
        };
        assert!(!node.persist(&second, Some(CrashPoint::Torn { ops: 1 }), &mut None));
        let durable = node.store.initial_state();
        assert_eq!(durable.entries, vec![entry(1, 1), entry(2, 2)]);
        assert_eq!(durable.hard_state.commit_index, LogIndex(1));
    }
}
