//! The simulator's safety checkers, one per property, run incrementally after
//! every step (each looks only at what changed):
//!
//! - **Election safety** (§5.2): at most one leader per term, over the whole run.
//! - **Log matching** (§5.3): two entries with the same index and term carry the
//!   same data and follow an entry of the same term; by induction on the index
//!   that makes the logs identical up to there. Checked on every persisted
//!   entry against the first entry seen with that (index, term).
//! - **Leader completeness** (§5.4): when a node becomes leader of a term, its
//!   log holds every entry known committed so far (known from any node's
//!   commit index), with the same term.
//! - **State machine safety** (§5.4.3): a node applies only entries within
//!   its commit index, every node applies the same entry at a
//!   given index (index by index, in order, also when replaying after a
//!   restart), and a commit index never covers an entry that differs from the
//!   one known committed there.
//! - **Monotonicity**: on a running node term, commit index and applied index
//!   never decrease; across a restart the term never goes below the durable
//!   one and the commit index restarts at the durable one.
//! - **Snapshots** (§7, part of state machine safety): at every checkpoint
//!   index (where nodes may snapshot) every node's state machine is the same,
//!   whether it got there by applying entries or from a snapshot; a snapshot
//!   (taken, installed or restored at a restart) covers the entry known
//!   applied at its index, and restoring it gives exactly the state recorded
//!   there by the nodes that applied the entries.
//!
//! A log that starts after a snapshot is compared only where the node still
//! has entries (and at the snapshot's last index, whose term it keeps);
//! compacted entries were applied, so the known-applied terms stand in for
//! them.

use std::collections::HashMap;

use bytes::Bytes;

use super::node::SimNode;
use crate::kv::Command;
use crate::raft::{Entry, NodeId, Role, Status, Term};

/// Which check failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Check {
    /// Two leaders in one term.
    ElectionSafety,
    /// Same (index, term), different entry or history.
    LogMatching,
    /// A new leader lacks a committed entry.
    LeaderCompleteness,
    /// Different entries applied (or committed) at one index.
    StateMachineSafety,
    /// Term, commit or applied index went backwards.
    Monotonicity,
    /// After healing: no single leader or diverging replicas in time.
    Liveness,
    /// The client history has no linearization.
    Linearizability,
    /// The checker's budget ran out (histories must stay small enough).
    LinearizabilityUnknown,
    /// An acknowledged write is missing from the final log.
    LostWrite,
    /// The core (or the sim) panicked, e.g. one of its own invariant asserts.
    Panic,
    /// The node core refused what its Raft core handed out (a broken rule
    /// caught by the node's own guard, `node::core::CoreError`).
    NodeRule,
    /// The node's storage failed without an injected fault, or a restart
    /// could not recover its data directory.
    Storage,
}

/// A failed check with a short description.
#[derive(Clone, Debug)]
pub struct Violation {
    /// Which property.
    pub check: Check,
    /// What was seen.
    pub detail: String,
}

/// Shorthand for failing a check.
pub fn fail<T>(check: Check, detail: String) -> Result<T, Violation> {
    Err(Violation { check, detail })
}

/// State shared by the checkers.
#[derive(Default)]
pub struct Checker {
    /// Term → its leader.
    leaders: HashMap<u64, NodeId>,
    /// (index, term) → (data, term of the previous entry), first seen.
    entries: HashMap<(u64, u64), (Bytes, u64)>,
    /// Entries applied by some node, index i at i-1 (the first to apply wins).
    pub applied: Vec<(Term, Bytes)>,
    /// Terms of entries known committed (from some node's commit index).
    committed: Vec<Term>,
    /// Decoded commands of `applied` (decoding is slow in debug builds, and
    /// every node applies the same entries).
    commands: Vec<Option<Command>>,
    /// Checkpoint index → the state machine's snapshot bytes there, first seen.
    states: HashMap<u64, Bytes>,
}

impl Checker {
    /// Log matching, for the entries a node just handed to its WAL (its log
    /// mirror is already updated).
    pub fn on_persist(&mut self, node: &SimNode, entries: &[Entry]) -> Result<(), Violation> {
        for entry in entries {
            let i = entry.index.0;
            let prev_term = node
                .term_at(i - 1)
                .expect("mirror holds the prefix after the snapshot")
                .0;
            let key = (i, entry.term.0);
            match self.entries.get(&key) {
                None => {
                    self.entries.insert(key, (entry.data.clone(), prev_term));
                }
                Some((data, prev)) if *data == entry.data && *prev == prev_term => {}
                Some((_, prev)) => {
                    return fail(
                        Check::LogMatching,
                        format!(
                            "node {} has entry {i}@{} after term {prev_term}, \
                             another log has it after term {prev} (or with other data)",
                            node.id, entry.term
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// State machine safety for one applied entry, before it reaches the Db.
    pub fn on_apply(&mut self, node: &mut SimNode, entry: &Entry) -> Result<(), Violation> {
        let i = entry.index.0;
        if i != node.applied_index + 1 {
            return fail(
                Check::StateMachineSafety,
                format!(
                    "node {} applied index {i} after {}",
                    node.id, node.applied_index
                ),
            );
        }
        let commit = node.status().map_or(0, |s| s.commit_index.0);
        if i > commit {
            return fail(
                Check::StateMachineSafety,
                format!(
                    "node {} applied index {i} beyond its commit index {commit}",
                    node.id
                ),
            );
        }
        node.applied_index = i;
        match self.applied.get(i as usize - 1) {
            None => self.applied.push((entry.term, entry.data.clone())),
            Some((term, data)) if *term == entry.term && *data == entry.data => {}
            Some((term, _)) => {
                return fail(
                    Check::StateMachineSafety,
                    format!(
                        "node {} applied {i}@{} but {i}@{term} was applied elsewhere",
                        node.id, entry.term
                    ),
                );
            }
        }
        Ok(())
    }

    /// The command of the entry at `index`, which `on_apply` just accepted.
    pub fn command(&mut self, index: u64) -> &Command {
        let i = index as usize - 1;
        if self.commands.len() <= i {
            self.commands.resize(i + 1, None);
        }
        self.commands[i]
            .get_or_insert_with(|| Command::decode(&self.applied[i].1).expect("sim entries decode"))
    }

    /// The per-step checks on one running node, after its Readies were
    /// processed: election safety, leader completeness, commit agreement and
    /// monotonicity.
    pub fn on_status(&mut self, node: &mut SimNode) -> Result<(), Violation> {
        let status = node.status().expect("node is up");
        let id = node.id;
        if status.role == Role::Leader {
            match self.leaders.get(&status.term.0) {
                Some(&other) if other != id => {
                    return fail(
                        Check::ElectionSafety,
                        format!("nodes {other} and {id} both lead term {}", status.term),
                    );
                }
                Some(_) => {}
                None => {
                    self.leaders.insert(status.term.0, id);
                    self.check_completeness(node, &status)?;
                }
            }
        }
        self.learn_commit(node, &status)?;
        if let Some(last) = node.last_status {
            let back = if status.term < last.term {
                Some("term")
            } else if status.commit_index < last.commit_index {
                Some("commit index")
            } else if status.last_applied < last.last_applied {
                Some("applied index")
            } else {
                None
            };
            if let Some(what) = back {
                return fail(
                    Check::Monotonicity,
                    format!("node {id}: {what} went backwards: {last:?} -> {status:?}"),
                );
            }
        }
        node.last_status = Some(status);
        Ok(())
    }

    /// Right after a restart: the term is at least the durable one and the
    /// commit index is the durable one (clamped to the log).
    pub fn on_restart(&mut self, node: &SimNode) -> Result<(), Violation> {
        let status = node.status().expect("node is up");
        let durable = &node.recovered;
        let snapshot_index = durable
            .snapshot
            .as_ref()
            .map_or(0, |s| s.last_included_index.0);
        let last_index = durable.entries.last().map_or(snapshot_index, |e| e.index.0);
        let expected_commit = durable
            .hard_state
            .commit_index
            .0
            .min(last_index)
            .max(snapshot_index);
        if status.term < node.durable_term {
            return fail(
                Check::Monotonicity,
                format!(
                    "node {} restarted in term {} below its durable term {}",
                    node.id, status.term, node.durable_term
                ),
            );
        }
        if status.commit_index.0 != expected_commit {
            return fail(
                Check::Monotonicity,
                format!(
                    "node {} restarted with commit index {} instead of the durable {}",
                    node.id, status.commit_index, expected_commit
                ),
            );
        }
        Ok(())
    }

    /// The state machine of `node` right after applying checkpoint `index`
    /// (encoded as snapshot bytes) must be the one every other node had there.
    pub fn on_checkpoint(
        &mut self,
        node: &SimNode,
        index: u64,
        state: &Bytes,
    ) -> Result<(), Violation> {
        match self.states.get(&index) {
            None => {
                self.states.insert(index, state.clone());
                Ok(())
            }
            Some(known) if known == state => Ok(()),
            Some(_) => fail(
                Check::StateMachineSafety,
                format!(
                    "node {}: state machine after applying through {index} differs from \
                     another node's there",
                    node.id
                ),
            ),
        }
    }

    /// `node` now runs from a snapshot (installed from the leader, or
    /// restored at a restart): it must cover the entry known applied at its
    /// index, and the restored state machine must be the one recorded at that
    /// checkpoint by the nodes that applied the entries (every snapshot is
    /// recorded there when its node copies its map).
    pub fn on_snapshot_restored(&mut self, node: &SimNode) -> Result<(), Violation> {
        let Some(meta) = &node.snapshot else {
            return Ok(());
        };
        let index = meta.last_included_index.0;
        let applied = self.applied.get(index as usize - 1).map(|(t, _)| *t);
        if applied != Some(meta.last_included_term) {
            return fail(
                Check::StateMachineSafety,
                format!(
                    "node {} restored a snapshot through {index}@{} but {:?} was applied there",
                    node.id, meta.last_included_term, applied
                ),
            );
        }
        let restored = node.db.snapshot_bytes();
        match self.states.get(&index) {
            Some(known) if *known == restored => Ok(()),
            found => {
                fail(
                    Check::StateMachineSafety,
                    format!(
                    "node {}: the snapshot through {index} restores a state machine other than \
                     the one applying the entries gave ({})",
                    node.id,
                    if found.is_some() { "differs" } else { "none recorded" }
                ),
                )
            }
        }
    }

    /// The term of committed `index` on `node`: from its log, or, where it
    /// compacted the entry, the term known applied there.
    fn committed_term_at(&self, node: &SimNode, index: u64) -> Option<Term> {
        node.term_at(index).or_else(|| {
            (index <= node.log_offset)
                .then(|| self.applied.get(index as usize - 1).map(|(t, _)| *t))
                .flatten()
        })
    }

    fn check_completeness(&self, node: &SimNode, status: &Status) -> Result<(), Violation> {
        // Below the snapshot's last index the entries were applied by this
        // node (or it restored a checked snapshot): they are committed ones.
        let start = node.log_offset.max(1) as usize - 1;
        for (i, &term) in self.committed.iter().enumerate().skip(start) {
            let index = i as u64 + 1;
            match node.term_at(index) {
                Some(t) if t == term => {}
                found => {
                    return fail(
                        Check::LeaderCompleteness,
                        format!(
                            "node {} leads term {} but has {found:?} at index {index}, \
                             where an entry of term {term} is committed",
                            node.id, status.term
                        ),
                    );
                }
            }
        }
        Ok(())
    }

    /// Extends the known-committed prefix from this node's commit index and
    /// checks that its committed entries agree with it.
    fn learn_commit(&mut self, node: &SimNode, status: &Status) -> Result<(), Violation> {
        let commit = status.commit_index.0.min(node.last_index());
        let known = self.committed.len() as u64;
        // Agreement on the overlap is checked for the newest overlapping index
        // (log matching extends it to the prefix).
        let overlap = commit.min(known);
        if overlap > 0 {
            let mine = self.committed_term_at(node, overlap);
            let theirs = self.committed[overlap as usize - 1];
            if mine != Some(theirs) {
                return fail(
                    Check::StateMachineSafety,
                    format!(
                        "node {} committed {overlap}@{mine:?}, but {overlap}@{theirs} is committed",
                        node.id
                    ),
                );
            }
        }
        for index in known + 1..=commit {
            let term = self
                .committed_term_at(node, index)
                .expect("within the log, or compacted after being applied");
            self.committed.push(term);
        }
        Ok(())
    }
}
