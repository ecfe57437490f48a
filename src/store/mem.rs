//! An in-memory [`LogStore`] with the WAL's semantics, for the deterministic
//! simulator.
//!
//! It keeps two views: the *durable* state (what a restart would see) and the
//! operations written since the last [`LogStore::sync`]. `sync` applies the
//! buffered operations to the durable state; [`MemStore::crash`] drops them, as
//! a power loss drops a WAL's unsynced writes. [`MemStore::crash_keeping`]
//! models a torn write that persisted only a prefix of them, and
//! [`MemStore::fail_next_sync`] a failed fsync, after which the store is
//! poisoned like [`super::Wal`].
//!
//! It also keeps the newest snapshot (metadata and state-machine bytes):
//! [`MemStore::save_snapshot`] is a buffered write like the others, so a
//! snapshot not yet synced is lost on a crash, and once durable it drops the
//! log entries it covers (the WAL deletes the segments below a snapshot). The
//! stored log then continues at `last_included_index + 1`.
//!
//! It does no I/O and reads no clock; everything is driven by its caller.

use super::wal::assert_appendable;
use super::{LogStore, WalError};
use bytes::Bytes;

use crate::raft::{Entry, HardState, InitialState, LogIndex, SnapshotMeta};

/// One buffered write, in the order it was made.
#[derive(Clone, Debug, PartialEq, Eq)]
enum PendingOp {
    Append(Vec<Entry>),
    SetHardState(HardState),
    Snapshot(SnapshotMeta, Bytes),
}

/// The in-memory [`LogStore`]. See the module doc.
#[derive(Clone, Debug, Default)]
pub struct MemStore {
    durable: InitialState,
    /// The state-machine bytes of `durable.snapshot`.
    durable_snapshot_data: Bytes,
    pending: Vec<PendingOp>,
    /// Last index including unsynced appends (0: empty log).
    last_index: LogIndex,
    fail_next_sync: bool,
    poisoned: bool,
    syncs_total: u64,
}

impl MemStore {
    /// An empty store, as a fresh data directory.
    pub fn new() -> MemStore {
        MemStore::default()
    }

    /// A store whose durable state is `state`, as if reopened after a crash.
    pub fn from_initial_state(state: InitialState) -> MemStore {
        let last_index = durable_last_index(&state);
        MemStore {
            durable: state,
            last_index,
            ..MemStore::default()
        }
    }

    /// What a restart would restore: the state as of the last successful sync.
    pub fn initial_state(&self) -> InitialState {
        self.durable.clone()
    }

    /// The state-machine bytes of the durable snapshot (empty without one).
    pub fn snapshot_data(&self) -> Bytes {
        self.durable_snapshot_data.clone()
    }

    /// Buffers a snapshot of the state machine through
    /// `meta.last_included_index` (taken by this node, or received from the
    /// leader): once synced it replaces the stored one and the log is fixed
    /// as the Ready contract says (§7): if the log (synced or not) holds the
    /// snapshot's last entry with its term, the entries up to it are dropped,
    /// otherwise every entry is. Lost on a crash before the sync.
    ///
    /// # Errors
    /// [`WalError::Poisoned`] after an injected sync failure.
    pub fn save_snapshot(&mut self, meta: SnapshotMeta, data: Bytes) -> Result<(), WalError> {
        self.check_usable()?;
        let op = PendingOp::Snapshot(meta, data);
        // The log as it will be after the sync, to know where it then ends.
        let mut view = InitialState {
            hard_state: HardState::default(),
            snapshot: self.durable.snapshot.clone(),
            entries: self.durable.entries.clone(),
        };
        let mut data = Bytes::new();
        for pending in self.pending.iter().chain(std::iter::once(&op)) {
            apply_op(&mut view, &mut data, pending.clone());
        }
        self.last_index = durable_last_index(&view);
        self.pending.push(op);
        Ok(())
    }

    /// The last log index, including appends not yet synced (0: empty log).
    pub fn last_index(&self) -> LogIndex {
        self.last_index
    }

    /// Writes made since the last sync (each `append` or `set_hard_state` call
    /// with an effect is one).
    pub fn pending_op_count(&self) -> usize {
        self.pending.len()
    }

    /// Successful syncs that had something to write.
    pub fn syncs_total(&self) -> u64 {
        self.syncs_total
    }

    /// Whether an injected sync failure poisoned the store.
    pub fn is_poisoned(&self) -> bool {
        self.poisoned
    }

    /// A power loss: every write since the last sync is lost. The store is
    /// usable again afterwards (as a reopened WAL) and un-poisoned.
    pub fn crash(&mut self) {
        self.crash_keeping(0);
    }

    /// A power loss during a write that reached the disk only in part: the
    /// first `op_count` writes since the last sync survive (clamped to the
    /// number pending), the rest are lost. Mirrors a WAL torn tail, which
    /// recovery truncates at a record boundary.
    pub fn crash_keeping(&mut self, op_count: usize) {
        let kept = op_count.min(self.pending.len());
        let survivors: Vec<PendingOp> = self.pending.drain(..kept).collect();
        for op in survivors {
            apply_op(&mut self.durable, &mut self.durable_snapshot_data, op);
        }
        self.pending.clear();
        self.last_index = durable_last_index(&self.durable);
        self.fail_next_sync = false;
        self.poisoned = false;
    }

    /// Makes the next non-empty sync fail with an I/O error, leaving the
    /// buffered writes undurable and the store poisoned.
    pub fn fail_next_sync(&mut self) {
        self.fail_next_sync = true;
    }

    fn check_usable(&self) -> Result<(), WalError> {
        if self.poisoned {
            return Err(WalError::Poisoned {
                path: "<memory>".into(),
            });
        }
        Ok(())
    }
}

/// Index of the snapshot's last entry (0 without a snapshot).
fn snapshot_index(state: &InitialState) -> u64 {
    state
        .snapshot
        .as_ref()
        .map_or(0, |s| s.last_included_index.0)
}

/// The last index of a stored log (the snapshot's when no entry follows it).
fn durable_last_index(state: &InitialState) -> LogIndex {
    state
        .entries
        .last()
        .map_or(LogIndex(snapshot_index(state)), |e| e.index)
}

fn apply_op(state: &mut InitialState, snapshot_data: &mut Bytes, op: PendingOp) {
    match op {
        PendingOp::Append(entries) => {
            if let Some(first) = entries.first() {
                let offset = snapshot_index(state);
                assert!(
                    first.index.0 > offset,
                    "append at index {} at or below the snapshot's last index {offset}",
                    first.index
                );
                // A later append at a stored index replaces the suffix (§5.3).
                state
                    .entries
                    .truncate((first.index.0 - offset - 1) as usize);
                state.entries.extend(entries);
            }
        }
        PendingOp::SetHardState(hard_state) => state.hard_state = hard_state,
        PendingOp::Snapshot(meta, data) => {
            if meta.last_included_index.0 <= snapshot_index(state) {
                // Not newer than the stored one: nothing to replace.
                return;
            }
            let index = meta.last_included_index;
            let matching = state
                .entries
                .iter()
                .position(|e| e.index == index && e.term == meta.last_included_term);
            match matching {
                Some(position) => {
                    state.entries.drain(..=position);
                }
                None => state.entries.clear(),
            }
            state.snapshot = Some(meta);
            *snapshot_data = data;
        }
    }
}

impl LogStore for MemStore {
    /// Buffers `entries`; see [`LogStore::append`].
    ///
    /// # Errors
    /// [`WalError::Poisoned`] after an injected sync failure.
    ///
    /// # Panics
    /// As [`super::Wal`]'s `append`: on non-contiguous entries or a gap.
    fn append(&mut self, entries: &[Entry]) -> Result<(), WalError> {
        self.check_usable()?;
        let Some(last) = entries.last() else {
            return Ok(());
        };
        assert_appendable(self.last_index, entries);
        self.last_index = last.index;
        self.pending.push(PendingOp::Append(entries.to_vec()));
        Ok(())
    }

    fn set_hard_state(&mut self, hard_state: HardState) -> Result<(), WalError> {
        self.check_usable()?;
        self.pending.push(PendingOp::SetHardState(hard_state));
        Ok(())
    }

    fn sync(&mut self) -> Result<(), WalError> {
        self.check_usable()?;
        if self.pending.is_empty() {
            return Ok(());
        }
        if self.fail_next_sync {
            self.fail_next_sync = false;
            self.poisoned = true;
            return Err(WalError::Io {
                op: "fdatasync (injected)",
                path: "<memory>".into(),
                source: std::io::Error::other("injected sync failure"),
            });
        }
        for op in std::mem::take(&mut self.pending) {
            apply_op(&mut self.durable, &mut self.durable_snapshot_data, op);
        }
        self.syncs_total += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;
    use proptest::prelude::*;

    use super::*;
    use crate::raft::{EntryKind, NodeId, SnapshotMeta, Term};
    use crate::store::Wal;

    fn entries(first: u64, last: u64, term: u64) -> Vec<Entry> {
        (first..=last)
            .map(|i| Entry {
                term: Term(term),
                index: LogIndex(i),
                kind: EntryKind::Normal,
                data: Bytes::from(format!("value-{i}")),
            })
            .collect()
    }

    fn hard_state(term: u64, commit_index: u64) -> HardState {
        HardState {
            term: Term(term),
            voted_for: Some(NodeId(1)),
            commit_index: LogIndex(commit_index),
        }
    }

    #[test]
    fn crash_drops_unsynced_writes() {
        let mut store = MemStore::new();
        store.append(&entries(1, 3, 1)).expect("append");
        store.set_hard_state(hard_state(1, 2)).expect("set");
        store.sync().expect("sync");
        store.append(&entries(4, 5, 1)).expect("append");
        store.append(&entries(2, 2, 2)).expect("append");
        store.set_hard_state(hard_state(2, 3)).expect("set");
        assert_eq!(store.last_index(), LogIndex(2));
        assert_eq!(store.initial_state().entries, entries(1, 3, 1));

        store.crash();
        let durable = InitialState {
            snapshot: None,
            hard_state: hard_state(1, 2),
            entries: entries(1, 3, 1),
        };
        assert_eq!(store.initial_state(), durable);
        assert_eq!(store.last_index(), LogIndex(3));
        assert_eq!(store.pending_op_count(), 0);
        // A sync after the crash has nothing to make durable.
        store.sync().expect("sync");
        assert_eq!(store.initial_state(), durable);
    }

    #[test]
    fn crash_keeping_a_prefix_models_a_torn_write() {
        let mut store = MemStore::new();
        store.append(&entries(1, 3, 1)).expect("append");
        store.append(&entries(3, 4, 2)).expect("append");
        store.set_hard_state(hard_state(2, 0)).expect("set");
        store.crash_keeping(2);
        let mut expected = entries(1, 2, 1);
        expected.extend(entries(3, 4, 2));
        assert_eq!(store.initial_state().entries, expected);
        assert_eq!(store.initial_state().hard_state, HardState::default());
        assert_eq!(store.last_index(), LogIndex(4));
    }

    #[test]
    fn suffix_replacement_applies_at_sync() {
        let mut store = MemStore::new();
        store.append(&entries(1, 5, 1)).expect("append");
        store.sync().expect("sync");
        store.append(&entries(3, 3, 2)).expect("append");
        store.sync().expect("sync");
        let mut expected = entries(1, 2, 1);
        expected.extend(entries(3, 3, 2));
        assert_eq!(store.initial_state().entries, expected);
        assert_eq!(store.syncs_total(), 2);
    }

    #[test]
    fn failed_sync_poisons_until_crash() {
        let mut store = MemStore::new();
        store.append(&entries(1, 1, 1)).expect("append");
        store.fail_next_sync();
        assert!(matches!(store.sync(), Err(WalError::Io { .. })));
        assert!(store.is_poisoned());
        assert!(matches!(store.sync(), Err(WalError::Poisoned { .. })));
        assert!(matches!(
            store.append(&entries(2, 2, 1)),
            Err(WalError::Poisoned { .. })
        ));
        store.crash();
        assert_eq!(store.initial_state(), InitialState::default());
        store
            .append(&entries(1, 1, 1))
            .expect("append after restart");
    }

    #[test]
    fn from_initial_state_resumes_after_the_log() {
        let durable = InitialState {
            snapshot: None,
            hard_state: hard_state(3, 2),
            entries: entries(1, 2, 3),
        };
        let mut store = MemStore::from_initial_state(durable.clone());
        assert_eq!(store.initial_state(), durable);
        store.append(&entries(3, 3, 3)).expect("append");
        store.sync().expect("sync");
        assert_eq!(store.initial_state().entries, entries(1, 3, 3));
    }

    fn snapshot_meta(index: u64, term: u64) -> SnapshotMeta {
        SnapshotMeta {
            last_included_index: LogIndex(index),
            last_included_term: Term(term),
            voters: vec![NodeId(1)],
        }
    }

    /// A snapshot is a buffered write: lost on a crash before the sync, with
    /// the entries it would have dropped still stored.
    #[test]
    fn unsynced_snapshot_is_lost_on_crash() {
        let mut store = MemStore::new();
        store.append(&entries(1, 4, 1)).expect("append");
        store.sync().expect("sync");
        store
            .save_snapshot(snapshot_meta(3, 1), Bytes::from_static(b"state@3"))
            .expect("save");
        store.crash();
        let restored = store.initial_state();
        assert_eq!(restored.snapshot, None);
        assert_eq!(restored.entries, entries(1, 4, 1));
        assert!(store.snapshot_data().is_empty());
    }

    /// §7: a synced snapshot whose last entry the log holds drops the entries
    /// up to it and keeps the suffix; appends continue after the log.
    #[test]
    fn synced_snapshot_drops_covered_entries_and_keeps_the_suffix() {
        let mut store = MemStore::new();
        store.append(&entries(1, 5, 1)).expect("append");
        store
            .save_snapshot(snapshot_meta(3, 1), Bytes::from_static(b"state@3"))
            .expect("save");
        assert_eq!(store.last_index(), LogIndex(5));
        store.sync().expect("sync");
        let restored = store.initial_state();
        assert_eq!(restored.snapshot, Some(snapshot_meta(3, 1)));
        assert_eq!(restored.entries, entries(4, 5, 1));
        assert_eq!(store.snapshot_data(), Bytes::from_static(b"state@3"));
        store.append(&entries(5, 6, 2)).expect("append");
        store.sync().expect("sync");
        let mut expected = entries(4, 4, 1);
        expected.extend(entries(5, 6, 2));
        assert_eq!(store.initial_state().entries, expected);
        // An older snapshot changes nothing.
        store
            .save_snapshot(snapshot_meta(2, 1), Bytes::from_static(b"state@2"))
            .expect("save");
        store.sync().expect("sync");
        assert_eq!(store.initial_state().snapshot, Some(snapshot_meta(3, 1)));
        assert_eq!(store.snapshot_data(), Bytes::from_static(b"state@3"));
    }

    /// §7: a snapshot whose last entry the log lacks (or holds with another
    /// term) replaces the whole log, the unsynced appends included.
    #[test]
    fn conflicting_snapshot_replaces_the_whole_log() {
        let mut store = MemStore::new();
        store.append(&entries(1, 3, 1)).expect("append");
        store.sync().expect("sync");
        store.append(&entries(4, 6, 1)).expect("append");
        store
            .save_snapshot(snapshot_meta(5, 2), Bytes::from_static(b"state@5"))
            .expect("save");
        assert_eq!(store.last_index(), LogIndex(5));
        store
            .append(&entries(6, 6, 2))
            .expect("append after the snapshot");
        // A torn write keeping the appends and the snapshot but not the last
        // append.
        store.crash_keeping(2);
        let restored = store.initial_state();
        assert_eq!(restored.snapshot, Some(snapshot_meta(5, 2)));
        assert_eq!(restored.entries, Vec::new());
        assert_eq!(store.last_index(), LogIndex(5));
        store.append(&entries(6, 7, 2)).expect("append");
        store.sync().expect("sync");
        assert_eq!(store.initial_state().entries, entries(6, 7, 2));
    }

    #[derive(Clone, Debug)]
    enum Op {
        /// Append `count` entries starting `back` indexes before the end.
        Append {
            back: u64,
            count: u64,
        },
        SetHardState {
            commit_index: u64,
        },
        Sync,
        /// Drop unsynced writes (the Wal is closed unsynced and reopened).
        Crash,
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            4 => (0u64..3, 1u64..4).prop_map(|(back, count)| Op::Append { back, count }),
            2 => (0u64..20).prop_map(|commit_index| Op::SetHardState { commit_index }),
            3 => Just(Op::Sync),
            1 => Just(Op::Crash),
        ]
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(32))]

        /// MemStore and Wal agree on what survives every crash.
        #[test]
        fn mem_store_matches_wal_across_crashes(ops in proptest::collection::vec(op(), 1..40)) {
            let dir = tempfile::tempdir().expect("tempdir");
            let (mut wal, _) = Wal::open(dir.path()).expect("open");
            let mut mem = MemStore::new();
            for (step, op) in ops.iter().enumerate() {
                let term = step as u64 + 1;
                match op {
                    Op::Append { back, count } => {
                        let first = (mem.last_index().0 + 1).saturating_sub(*back).max(1);
                        let batch = entries(first, first + count - 1, term);
                        wal.append(&batch).expect("wal append");
                        mem.append(&batch).expect("mem append");
                    }
                    Op::SetHardState { commit_index } => {
                        wal.set_hard_state(hard_state(term, *commit_index)).expect("wal set");
                        mem.set_hard_state(hard_state(term, *commit_index)).expect("mem set");
                    }
                    Op::Sync => {
                        wal.sync().expect("wal sync");
                        mem.sync().expect("mem sync");
                    }
                    Op::Crash => {
                        drop(wal);
                        let (reopened, restored) = Wal::open(dir.path()).expect("reopen");
                        wal = reopened;
                        mem.crash();
                        prop_assert_eq!(&restored, &mem.initial_state());
                    }
                }
                prop_assert_eq!(wal.last_index(), mem.last_index());
            }
            wal.sync().expect("wal sync");
            mem.sync().expect("mem sync");
            drop(wal);
            let (_, restored) = Wal::open(dir.path()).expect("reopen");
            prop_assert_eq!(restored, mem.initial_state());
        }
    }
}
