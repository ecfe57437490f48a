//! The log view: the in-memory copy of the replicated log after the latest
//! snapshot, and the watermarks the core tracks on it.
//!
//! ```text
//!   snapshot ]  first_index ... persisted ... commit_index ... last_index
//!   (compacted)|<- durable ->|<- handed out to the driver ->|<- not yet ->|
//!                             (persisted < handed_out_to)     (unstable_from ..)
//! ```
//!
//! Entries up to `snapshot_index` are compacted (§7): only the index and term
//! of the last one survive, so `term_at(snapshot_index)` stays answerable for
//! the consistency check of the AppendEntries that follows it.
//!
//! Owns no I/O: "persisted" only moves when the driver acknowledges a `Ready`
//! through `advance`. Invariants kept here (violations panic):
//! - entries are contiguous after the snapshot
//!   (`entries[i].index == snapshot_index + 1 + i`);
//! - `snapshot_index <= last_applied <= commit_index <= last_index` (the
//!   test-only `apply_before_commit` rule break lifts the middle one);
//! - `commit_index` never decreases;
//! - entries at or below `commit_index` are never truncated (§5.3, Figure 3
//!   Log Matching + Leader Completeness make a conflict there impossible).
//!
//! Membership (thesis §4.1): the log also keeps the decoded membership
//! entries it holds after the snapshot, so the membership in effect (the
//! newest in the log, committed or not) follows every append, truncation,
//! compaction and installed snapshot. Below them lies the base: the
//! snapshot's membership, or the bootstrap one (`Config::voters`) when the
//! log has never held a membership.

use super::types::{Entry, EntryKind, LogIndex, Membership, NodeId, SnapshotMeta, Term};

/// The log plus its watermarks.
#[derive(Debug)]
pub(crate) struct RaftLog {
    /// The node owning this log, for invariant messages.
    id: NodeId,
    /// The latest snapshot (restored, taken by `compact` or installed); its
    /// `last_included_index` is the log's offset.
    snapshot: Option<SnapshotMeta>,
    /// Index of the last compacted entry (0 without a snapshot).
    snapshot_index: LogIndex,
    /// Term of that entry (0 without a snapshot).
    snapshot_term: Term,
    /// The entries after the snapshot: `entries[i].index == snapshot_index + 1 + i`.
    entries: Vec<Entry>,
    /// Highest index known durable (acknowledged by `advance`).
    persisted: LogIndex,
    /// First index not yet handed out to the driver for persistence.
    unstable_from: LogIndex,
    /// Highest index known committed (§5.3).
    commit_index: LogIndex,
    /// Highest index handed out for apply (`last_applied` in Figure 2).
    last_applied: LogIndex,
    /// A snapshot received from the leader, not yet handed out to the driver.
    pending_snapshot: Option<SnapshotMeta>,
    /// The membership used while neither the snapshot nor any entry names one.
    bootstrap: Membership,
    /// The membership entries after the snapshot, decoded, in index order.
    memberships: Vec<(LogIndex, Membership)>,
    /// Test-only rule break: hand out entries for apply before they commit.
    #[cfg(test)]
    apply_before_commit: bool,
}

impl RaftLog {
    /// A log restored from durable storage: everything given is already
    /// persisted, and the state machine already holds `snapshot` (if any).
    pub(crate) fn restore(
        id: NodeId,
        snapshot: Option<SnapshotMeta>,
        entries: Vec<Entry>,
        commit_index: LogIndex,
        bootstrap: Membership,
    ) -> RaftLog {
        let (snapshot_index, snapshot_term) =
            snapshot.as_ref().map_or((LogIndex(0), Term(0)), |s| {
                (s.last_included_index, s.last_included_term)
            });
        let last = LogIndex(snapshot_index.0 + entries.len() as u64);
        let memberships = entries.iter().filter_map(decoded_membership).collect();
        RaftLog {
            id,
            snapshot,
            snapshot_index,
            snapshot_term,
            entries,
            persisted: last,
            unstable_from: LogIndex(last.0 + 1),
            // Commit knowledge is volatile in Figure 2, so clamping a commit index
            // that outran a torn log tail is safe; the leader re-teaches it. The
            // snapshot only ever covers committed entries.
            commit_index: commit_index.min(last).max(snapshot_index),
            last_applied: snapshot_index,
            pending_snapshot: None,
            bootstrap,
            memberships,
            #[cfg(test)]
            apply_before_commit: false,
        }
    }

    /// The membership below every membership entry of the log: the
    /// snapshot's (at its index), or the bootstrap one (at index 0).
    fn base_membership(&self) -> (LogIndex, &Membership) {
        match &self.snapshot {
            Some(meta) if !meta.membership.members.is_empty() => {
                (self.snapshot_index, &meta.membership)
            }
            _ => (LogIndex(0), &self.bootstrap),
        }
    }

    /// The membership in effect at `index`: the newest membership entry at
    /// or below it, else the base, with the index that set it.
    pub(crate) fn membership_at(&self, index: LogIndex) -> (LogIndex, &Membership) {
        self.memberships
            .iter()
            .rev()
            .find(|(at, _)| *at <= index)
            .map_or_else(|| self.base_membership(), |(at, m)| (*at, m))
    }

    /// The membership in effect (§4.1: the newest in the log, committed or
    /// not) and the index of the entry that set it.
    pub(crate) fn membership(&self) -> (LogIndex, &Membership) {
        self.membership_at(self.last_index())
    }

    /// Does the log (or its snapshot) name a membership, or does it run on
    /// the bootstrap one?
    pub(crate) fn has_explicit_membership(&self) -> bool {
        !self.memberships.is_empty() || self.base_membership().0 > LogIndex(0)
    }

    /// Records `entry` if it is a membership entry (appended at the end).
    fn note_membership(&mut self, entry: &Entry) {
        if let Some(decoded) = decoded_membership(entry) {
            self.memberships.push(decoded);
        }
    }

    /// Index of the first entry still in the log (`snapshot_index + 1`).
    pub(crate) fn first_index(&self) -> LogIndex {
        LogIndex(self.snapshot_index.0 + 1)
    }

    /// Index of the last entry (the snapshot's, or 0, when no entry follows).
    pub(crate) fn last_index(&self) -> LogIndex {
        LogIndex(self.snapshot_index.0 + self.entries.len() as u64)
    }

    /// Term of the last entry (the snapshot's, or 0, when no entry follows).
    pub(crate) fn last_term(&self) -> Term {
        self.entries.last().map_or(self.snapshot_term, |e| e.term)
    }

    /// The latest snapshot's metadata, if any.
    pub(crate) fn snapshot(&self) -> Option<&SnapshotMeta> {
        self.snapshot.as_ref()
    }

    /// Term of the entry at `index`: the snapshot's term at its last index,
    /// `Some(Term(0))` at index 0, `None` past the end or below the snapshot
    /// (compacted).
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index == self.snapshot_index {
            return Some(self.snapshot_term);
        }
        if index < self.snapshot_index {
            return None;
        }
        self.entry_at(index).map(|e| e.term)
    }

    /// The entry at `index`, if it is in the log (not compacted, not past the end).
    fn entry_at(&self, index: LogIndex) -> Option<&Entry> {
        let offset = index.0.checked_sub(self.first_index().0)?;
        self.entries.get(usize::try_from(offset).ok()?)
    }

    /// Position in `entries` of `index`, which must be ≥ `first_index`.
    fn position(&self, index: LogIndex) -> usize {
        (index.0 - self.first_index().0) as usize
    }

    /// Highest committed index.
    pub(crate) fn commit_index(&self) -> LogIndex {
        self.commit_index
    }

    /// Highest index handed out for apply.
    pub(crate) fn last_applied(&self) -> LogIndex {
        self.last_applied
    }

    /// Highest index acknowledged durable by the driver.
    pub(crate) fn persisted(&self) -> LogIndex {
        self.persisted
    }

    /// §5.4.1: is a log ending at (`last_index`, `last_term`) at least as
    /// up-to-date as ours? Compare last terms first, then lengths.
    pub(crate) fn is_up_to_date(&self, last_index: LogIndex, last_term: Term) -> bool {
        last_term > self.last_term()
            || (last_term == self.last_term() && last_index >= self.last_index())
    }

    /// First index of the run of entries with the term of `index`, for the fast
    /// backtracking hint (§5.3, the optimization at its end).
    pub(crate) fn first_index_of_term_at(&self, index: LogIndex) -> LogIndex {
        let Some(term) = self.term_at(index) else {
            return index;
        };
        let mut first = index;
        while first.0 > 1 && self.term_at(LogIndex(first.0 - 1)) == Some(term) {
            first = LogIndex(first.0 - 1);
        }
        first
    }

    /// Last index holding an entry of `term`, if any (leader side of the hint).
    pub(crate) fn last_index_of_term(&self, term: Term) -> Option<LogIndex> {
        // Terms are non-decreasing along the log, so scan back and stop early.
        let in_entries = self
            .entries
            .iter()
            .rev()
            .skip_while(|e| e.term > term)
            .take_while(|e| e.term >= term)
            .find(|e| e.term == term)
            .map(|e| e.index);
        in_entries.or_else(|| {
            (self.snapshot_index.0 > 0 && self.snapshot_term == term).then_some(self.snapshot_index)
        })
    }

    /// Appends one entry built by the leader; returns its index.
    pub(crate) fn append_new(&mut self, mut entry: Entry) -> LogIndex {
        entry.index = LogIndex(self.last_index().0 + 1);
        let index = entry.index;
        self.note_membership(&entry);
        self.entries.push(entry);
        index
    }

    /// Follower side of AppendEntries (Figure 2, receiver rules 3–4): skip the
    /// entries already present (or compacted: they are committed, so they
    /// match), truncate at the first conflict, append the rest.
    ///
    /// # Panics
    /// When a conflict lies at or below `commit_index` (a safety violation).
    pub(crate) fn merge(&mut self, term: Term, entries: Vec<Entry>) {
        let snapshot_index = self.snapshot_index;
        let mut rest = entries
            .into_iter()
            .skip_while(|e| e.index <= snapshot_index)
            .peekable();
        while let Some(entry) = rest.peek() {
            match self.term_at(entry.index) {
                Some(t) if t == entry.term => {
                    rest.next();
                }
                Some(_) => {
                    // §5.3: an existing entry conflicts with a new one: delete it and
                    // all that follow. Committed entries never conflict (§5.4.3).
                    assert!(
                        entry.index > self.commit_index,
                        "node {} term {}: conflicting entry at index {} (term {}) is at or \
                         below commit_index {}",
                        self.id,
                        term,
                        entry.index,
                        entry.term,
                        self.commit_index
                    );
                    self.truncate_from(entry.index);
                    break;
                }
                None => break,
            }
        }
        for entry in rest {
            assert_eq!(
                entry.index.0,
                self.last_index().0 + 1,
                "node {} term {}: AppendEntries left a gap after index {}",
                self.id,
                term,
                self.last_index()
            );
            self.note_membership(&entry);
            self.entries.push(entry);
        }
    }

    /// Drops `index` (> snapshot_index) and everything after it.
    fn truncate_from(&mut self, index: LogIndex) {
        let keep = self.position(index);
        self.entries.truncate(keep);
        // §4.1: a truncated membership entry no longer counts; the one
        // before it is in effect again.
        self.memberships.retain(|(at, _)| *at < index);
        let last = self.last_index();
        self.persisted = self.persisted.min(last);
        self.unstable_from = self.unstable_from.min(index);
    }

    /// Up to `max_entries` entries from `from` (≥ `first_index`), stopping
    /// before `max_bytes` of payload would be exceeded; at least one entry
    /// when any exists.
    pub(crate) fn slice(&self, from: LogIndex, max_entries: usize, max_bytes: usize) -> Vec<Entry> {
        self.entries_from(from, self.slice_len(from, max_entries, max_bytes))
    }

    /// The `count` entries from `from` (≥ `first_index`), cloned; `count`
    /// at most what [`RaftLog::slice_len`] gave for `from`.
    pub(crate) fn entries_from(&self, from: LogIndex, count: usize) -> Vec<Entry> {
        if count == 0 {
            return Vec::new();
        }
        let start = self.position(from.max(self.first_index()));
        self.entries[start..start + count].to_vec()
    }

    /// How many entries [`RaftLog::slice`] would return, without cloning
    /// them (each clone and drop of a payload is an atomic operation on a
    /// buffer other threads share).
    pub(crate) fn slice_len(&self, from: LogIndex, max_entries: usize, max_bytes: usize) -> usize {
        let start = self.position(from.max(self.first_index()));
        let mut count = 0;
        let mut bytes = 0usize;
        for entry in self.entries.iter().skip(start).take(max_entries.max(1)) {
            bytes = bytes.saturating_add(entry.data.len());
            if count > 0 && bytes > max_bytes {
                break;
            }
            count += 1;
        }
        count
    }

    /// Raises `commit_index` to `index` (no-op when not higher).
    ///
    /// # Panics
    /// When `index` is past the end of the log.
    pub(crate) fn commit_to(&mut self, term: Term, index: LogIndex) -> bool {
        if index <= self.commit_index {
            return false;
        }
        assert!(
            index <= self.last_index(),
            "node {} term {}: commit_index {} beyond last_index {}",
            self.id,
            term,
            index,
            self.last_index()
        );
        self.commit_index = index;
        true
    }

    /// True when entries wait to be handed out for persistence.
    pub(crate) fn has_unstable(&self) -> bool {
        self.unstable_from <= self.last_index()
    }

    /// Hands out the entries not yet given to the driver.
    pub(crate) fn take_unstable(&mut self) -> Vec<Entry> {
        let from = self.unstable_from.max(self.first_index());
        let out = self
            .entries
            .get(self.position(from)..)
            .map(<[Entry]>::to_vec)
            .unwrap_or_default();
        self.unstable_from = LogIndex(self.last_index().0 + 1);
        out
    }

    /// The driver made the log through `index` (an entry of `term`)
    /// durable. Ignored when the log changed at that index since (a
    /// truncation overtook the write).
    pub(crate) fn persisted_to(&mut self, index: LogIndex, term: Term) {
        if self.term_at(index) == Some(term) && index > self.persisted {
            self.persisted = index;
        }
    }

    /// Highest index that may be handed out for apply: the commit index (or,
    /// under the test-only rule break, the end of the log).
    fn apply_limit(&self) -> LogIndex {
        #[cfg(test)]
        if self.apply_before_commit {
            return self.last_index().max(self.commit_index);
        }
        self.commit_index
    }

    /// True when committed entries wait to be handed out for apply.
    pub(crate) fn has_committed_to_apply(&self) -> bool {
        self.apply_limit() > self.last_applied
    }

    /// Hands out committed entries in order (`last_applied` moves with them).
    pub(crate) fn take_committed(&mut self) -> Vec<Entry> {
        let limit = self.apply_limit();
        if limit <= self.last_applied {
            return Vec::new();
        }
        assert!(
            self.last_applied >= self.snapshot_index,
            "node {}: last_applied {} below snapshot index {}",
            self.id,
            self.last_applied,
            self.snapshot_index
        );
        let from = self.position(LogIndex(self.last_applied.0 + 1));
        let to = self.position(limit) + 1;
        let out = self
            .entries
            .get(from..to)
            .map(<[Entry]>::to_vec)
            .unwrap_or_default();
        self.last_applied = limit;
        out
    }

    /// The driver saved a snapshot of the state machine through
    /// `meta.last_included_index`: drop the entries it covers (§7). Returns
    /// them, for the caller to free where a long drop stalls nothing; `None`
    /// (and changes nothing) when the log is already compacted that far.
    ///
    /// # Panics
    /// When the snapshot covers entries not yet applied, or its term does not
    /// match the log's term at that index.
    pub(crate) fn compact(&mut self, term: Term, mut meta: SnapshotMeta) -> Option<Vec<Entry>> {
        let index = meta.last_included_index;
        if index <= self.snapshot_index {
            return None;
        }
        assert!(
            index <= self.last_applied && index <= self.commit_index,
            "node {} term {}: snapshot at index {} beyond last_applied {} / commit_index {}",
            self.id,
            term,
            index,
            self.last_applied,
            self.commit_index
        );
        let at = self.term_at(index);
        assert_eq!(
            at,
            Some(meta.last_included_term),
            "node {} term {}: snapshot at index {} has term {} but the log has {:?}",
            self.id,
            term,
            index,
            meta.last_included_term,
            at
        );
        // The core knows the membership at `index` (an entry it holds, or
        // the base): it is what the snapshot records, whatever the driver
        // passed.
        meta.membership = self.membership_at(index).1.clone();
        let drop = self.position(index) + 1;
        // Moved out whole: freeing hundreds of thousands of payloads one by
        // one is the caller's to place. The entries kept stay in the log's
        // allocation: a log started again from a vector of their size would
        // double its way back up, copying itself and faulting in fresh
        // pages each time. What it keeps is bounded by the size the log
        // reached since the last compaction.
        let dropped: Vec<Entry> = self.entries.drain(..drop).collect();
        let reached = dropped.len() + self.entries.len();
        if self.entries.capacity() > 2 * reached {
            self.entries.shrink_to(2 * reached);
        }
        self.memberships.retain(|(at, _)| *at > index);
        self.set_snapshot(meta);
        Some(dropped)
    }

    /// Follower side of InstallSnapshot (§7, receiver rules 6–7): keep the
    /// entries after the snapshot if the log holds the snapshot's last entry
    /// with the same term, otherwise discard the whole log. The commit and
    /// applied indexes move to the snapshot, which waits to be handed out.
    /// Returns whether a suffix was kept.
    ///
    /// # Panics
    /// When the snapshot does not lie beyond `commit_index` (the caller answers
    /// stale snapshots without installing them).
    pub(crate) fn install_snapshot(&mut self, term: Term, meta: SnapshotMeta) -> bool {
        let index = meta.last_included_index;
        assert!(
            index > self.commit_index,
            "node {} term {}: installing snapshot at index {} at or below commit_index {}",
            self.id,
            term,
            index,
            self.commit_index
        );
        let keep_suffix = self.term_at(index) == Some(meta.last_included_term);
        if keep_suffix {
            let drop = self.position(index) + 1;
            self.entries.drain(..drop);
            self.memberships.retain(|(at, _)| *at > index);
        } else {
            self.entries.clear();
            self.memberships.clear();
        }
        self.set_snapshot(meta.clone());
        self.commit_index = index;
        self.last_applied = index;
        self.pending_snapshot = Some(meta);
        keep_suffix
    }

    /// Moves the log's offset to `meta` (entries already dropped); the
    /// snapshot is durable, so the persisted watermark covers it.
    fn set_snapshot(&mut self, meta: SnapshotMeta) {
        self.snapshot_index = meta.last_included_index;
        self.snapshot_term = meta.last_included_term;
        let past_end = LogIndex(self.last_index().0 + 1);
        self.persisted = self
            .persisted
            .min(self.last_index())
            .max(self.snapshot_index);
        self.unstable_from = self.unstable_from.min(past_end).max(self.first_index());
        self.last_applied = self.last_applied.max(self.snapshot_index);
        self.snapshot = Some(meta);
    }

    /// True when an installed snapshot waits to be handed out.
    pub(crate) fn has_pending_snapshot(&self) -> bool {
        self.pending_snapshot.is_some()
    }

    /// Hands out the installed snapshot (once).
    pub(crate) fn take_pending_snapshot(&mut self) -> Option<SnapshotMeta> {
        self.pending_snapshot.take()
    }

    /// Switches the test-only `apply_before_commit` rule break.
    #[cfg(test)]
    pub(crate) fn set_apply_before_commit(&mut self, on: bool) {
        self.apply_before_commit = on;
    }
}

/// The (index, membership) of a membership entry that decodes; `None` for
/// any other entry. Inbound entries were checked (`validate.rs`) and
/// restored ones at start (`Raft::new`), so one that does not decode here
/// is skipped.
fn decoded_membership(entry: &Entry) -> Option<(LogIndex, Membership)> {
    if entry.kind != EntryKind::Membership {
        return None;
    }
    Membership::decode(&entry.data)
        .ok()
        .map(|membership| (entry.index, membership))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::raft::types::EntryKind;
    use bytes::Bytes;

    /// Compaction hands the covered entries back in order and keeps the
    /// ones after them at the front of the log's own allocation, which
    /// stays as large as the log has been since the last compaction, not
    /// larger.
    #[test]
    fn compaction_keeps_the_logs_allocation_for_the_entries_after_it() {
        let entry = |i: u64| Entry {
            term: Term(1),
            index: LogIndex(i),
            kind: EntryKind::Normal,
            data: Bytes::from(i.to_le_bytes().to_vec()),
        };
        let mut log = RaftLog::restore(
            NodeId(1),
            None,
            Vec::new(),
            LogIndex(0),
            Membership::default(),
        );
        for i in 1..=1000 {
            log.append_new(entry(i));
        }
        log.persisted_to(LogIndex(1000), Term(1));
        log.commit_to(Term(1), LogIndex(900));
        assert_eq!(log.take_committed().len(), 900);
        let grown = log.entries.capacity();
        let meta = |at: u64| SnapshotMeta {
            last_included_index: LogIndex(at),
            last_included_term: Term(1),
            membership: Membership::default(),
        };
        let dropped = log.compact(Term(1), meta(900)).expect("compacted");
        assert_eq!(dropped, (1..=900).map(entry).collect::<Vec<_>>());
        assert_eq!(log.entries, (901..=1000).map(entry).collect::<Vec<_>>());
        assert_eq!(log.entries.capacity(), grown, "the allocation is kept");
        assert_eq!(log.last_index(), LogIndex(1000));
        assert_eq!(log.term_at(LogIndex(900)), Some(Term(1)));
        // A log that once grew far past its usual size gives the excess back
        // at the next compaction.
        log.entries.reserve(100_000);
        log.commit_to(Term(1), LogIndex(1000));
        assert_eq!(log.take_committed().len(), 100);
        log.append_new(entry(1001));
        assert_eq!(log.compact(Term(1), meta(1000)).map(|d| d.len()), Some(100));
        assert!(
            log.entries.capacity() <= 2 * 101,
            "{}",
            log.entries.capacity()
        );
        assert_eq!(log.entries, vec![entry(1001)]);
    }

    /// `slice_len` is what replication decides with before it clones: it
    /// must count exactly what `slice` returns, whatever the limits, the
    /// start and the payload sizes (empty payloads included).
    #[test]
    fn slice_len_counts_what_slice_returns() {
        let entries: Vec<Entry> = (1..=40u64)
            .map(|i| Entry {
                term: Term(1),
                index: LogIndex(i),
                kind: EntryKind::Normal,
                data: Bytes::from(vec![b'x'; (i % 7 * 5) as usize]),
            })
            .collect();
        let log = RaftLog::restore(NodeId(1), None, entries, LogIndex(0), Membership::default());
        for from in 1..=42u64 {
            for max_entries in [0, 1, 2, 5, 39, 100, usize::MAX] {
                for max_bytes in [0, 1, 10, 29, 30, 31, 64, 200, usize::MAX] {
                    let slice = log.slice(LogIndex(from), max_entries, max_bytes);
                    let count = log.slice_len(LogIndex(from), max_entries, max_bytes);
                    assert_eq!(count, slice.len(), "from {from} {max_entries} {max_bytes}");
                    // The rule, stated on its own: as many entries as fit in
                    // both limits, and the first one always.
                    let mut expected = 0usize;
                    let mut bytes = 0usize;
                    for i in from..=40 {
                        bytes += (i % 7 * 5) as usize;
                        let fits = expected < max_entries.max(1) && bytes <= max_bytes;
                        if !(fits || expected == 0) {
                            break;
                        }
                        expected += 1;
                    }
                    assert_eq!(count, expected, "from {from} {max_entries} {max_bytes}");
                    let want: Vec<u64> = (from..from + count as u64).collect();
                    let got: Vec<u64> = slice.iter().map(|e| e.index.0).collect();
                    assert_eq!(got, want, "from {from} {max_entries} {max_bytes}");
                    if from <= 40 {
                        assert!(count >= 1, "at least one entry when any exists");
                    }
                }
            }
        }
    }
}
