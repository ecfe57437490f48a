//! The log view: the in-memory copy of the replicated log and the three
//! watermarks the core tracks on it.
//!
//! ```text
//!   1 ........ persisted ........ commit_index ...... last_index
//!   |<- durable ->|<- handed out to the driver ->|<- not yet handed out ->|
//!                  (persisted < handed_out_to)     (unstable_from ..)
//! ```
//!
//! Owns no I/O: "persisted" only moves when the driver acknowledges a `Ready`
//! through `advance`. Invariants kept here (violations panic):
//! - entries are contiguous from index 1 (`entries[i].index == i + 1`);
//! - `commit_index` never decreases and never exceeds `last_index`;
//! - entries at or below `commit_index` are never truncated (§5.3, Figure 3
//!   Log Matching + Leader Completeness make a conflict there impossible).

use super::types::{Entry, LogIndex, NodeId, Term};

/// The log plus its watermarks.
#[derive(Debug)]
pub(crate) struct RaftLog {
    /// The node owning this log, for invariant messages.
    id: NodeId,
    /// Every entry, `entries[i].index == i + 1` (no snapshots yet).
    entries: Vec<Entry>,
    /// Highest index known durable (acknowledged by `advance`).
    persisted: LogIndex,
    /// First index not yet handed out to the driver for persistence.
    unstable_from: LogIndex,
    /// Highest index known committed (§5.3).
    commit_index: LogIndex,
    /// Highest index handed out for apply (`last_applied` in Figure 2).
    last_applied: LogIndex,
}

impl RaftLog {
    /// A log restored from durable storage: everything given is already persisted.
    pub(crate) fn restore(id: NodeId, entries: Vec<Entry>, commit_index: LogIndex) -> RaftLog {
        let last = LogIndex(entries.len() as u64);
        RaftLog {
            id,
            entries,
            persisted: last,
            unstable_from: LogIndex(last.0 + 1),
            // Commit knowledge is volatile in Figure 2, so clamping a commit index
            // that outran a torn log tail is safe; the leader re-teaches it.
            commit_index: commit_index.min(last),
            last_applied: LogIndex(0),
        }
    }

    /// Index of the last entry (0 when empty).
    pub(crate) fn last_index(&self) -> LogIndex {
        LogIndex(self.entries.len() as u64)
    }

    /// Term of the last entry (0 when empty).
    pub(crate) fn last_term(&self) -> Term {
        self.entries.last().map_or(Term(0), |e| e.term)
    }

    /// Term of the entry at `index`; `Some(Term(0))` for index 0, `None` past the end.
    pub(crate) fn term_at(&self, index: LogIndex) -> Option<Term> {
        if index.0 == 0 {
            return Some(Term(0));
        }
        self.entries.get(index.0 as usize - 1).map(|e| e.term)
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
        self.entries
            .iter()
            .rev()
            .skip_while(|e| e.term > term)
            .take_while(|e| e.term >= term)
            .find(|e| e.term == term)
            .map(|e| e.index)
    }

    /// Appends one entry built by the leader; returns its index.
    pub(crate) fn append_new(&mut self, mut entry: Entry) -> LogIndex {
        entry.index = LogIndex(self.last_index().0 + 1);
        let index = entry.index;
        self.entries.push(entry);
        index
    }

    /// Follower side of AppendEntries (Figure 2, receiver rules 3–4): skip the
    /// entries already present, truncate at the first conflict, append the rest.
    ///
    /// # Panics
    /// When a conflict lies at or below `commit_index` (a safety violation).
    pub(crate) fn merge(&mut self, term: Term, entries: Vec<Entry>) {
        let mut rest = entries.into_iter().peekable();
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
            self.entries.push(entry);
        }
    }

    /// Drops `index` and everything after it.
    fn truncate_from(&mut self, index: LogIndex) {
        self.entries.truncate(index.0 as usize - 1);
        let last = self.last_index();
        self.persisted = self.persisted.min(last);
        self.unstable_from = self.unstable_from.min(index);
    }

    /// Up to `max_entries` entries from `from`, stopping before `max_bytes` of
    /// payload would be exceeded; at least one entry when any exists.
    pub(crate) fn slice(&self, from: LogIndex, max_entries: usize, max_bytes: usize) -> Vec<Entry> {
        let start = (from.0.max(1) - 1) as usize;
        let mut out = Vec::new();
        let mut bytes = 0usize;
        for entry in self.entries.iter().skip(start).take(max_entries.max(1)) {
            bytes = bytes.saturating_add(entry.data.len());
            if !out.is_empty() && bytes > max_bytes {
                break;
            }
            out.push(entry.clone());
        }
        out
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
        let start = (self.unstable_from.0 - 1) as usize;
        let out = self
            .entries
            .get(start..)
            .map(<[Entry]>::to_vec)
            .unwrap_or_default();
        self.unstable_from = LogIndex(self.last_index().0 + 1);
        out
    }

    /// The driver made `last` (and all before it) durable. Ignored when the
    /// log changed at that index since (a truncation overtook the Ready).
    pub(crate) fn persisted_to(&mut self, last: &Entry) {
        if self.term_at(last.index) == Some(last.term) && last.index > self.persisted {
            self.persisted = last.index;
        }
    }

    /// True when committed entries wait to be handed out for apply.
    pub(crate) fn has_committed_to_apply(&self) -> bool {
        self.commit_index > self.last_applied
    }

    /// Hands out committed entries in order (`last_applied` moves with them).
    pub(crate) fn take_committed(&mut self) -> Vec<Entry> {
        let from = self.last_applied.0 as usize;
        let to = self.commit_index.0 as usize;
        let out = self
            .entries
            .get(from..to)
            .map(<[Entry]>::to_vec)
            .unwrap_or_default();
        assert!(
            self.last_applied <= self.commit_index,
            "node {}: last_applied {} beyond commit_index {}",
            self.id,
            self.last_applied,
            self.commit_index
        );
        self.last_applied = self.commit_index;
        out
    }
}
