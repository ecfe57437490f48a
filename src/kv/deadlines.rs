//! One database's deadline index: every key with a TTL, soonest deadline
//! first ([`Due`] order: deadline, then a fixed hash of the key, then the
//! key).
//!
//! A standard `BTreeSet` behind an `Arc`. Every write with a TTL (SET EX,
//! EXPIRE, a script's EXPIRE) takes one place out and puts one in; in the
//! persistent B-tree this replaced each of those walked 64-element nodes and
//! checked every node's sharing with an atomic operation on the way down
//! (about 400 ns of a 500 ns SET EX over 100,000 keys with TTLs).
//!
//! Sharing: a clone shares the whole set; the first write to a shared one
//! copies it whole (O(n)). Nothing that lives long holds a second copy: a
//! snapshot's copy of the keyspace drops its share before the snapshot is
//! handed out ([`Db::snapshot_chunks`](super::Db::snapshot_chunks); the
//! snapshot writes each key's deadline from its entry and a restore rebuilds
//! this index), so the live map never pays that copy.
//!
//! Invariant (kept by `Db`, checked by its tests): the index holds exactly
//! one [`Due`] per key with a deadline, at that deadline, and nothing else.

use std::collections::BTreeSet;
use std::ops::RangeBounds;
use std::sync::Arc;

use super::Due;

/// See the module docs.
#[derive(Clone, Default, PartialEq, Eq)]
pub(crate) struct Deadlines(Arc<BTreeSet<Due>>);

impl Deadlines {
    /// An empty index.
    pub(crate) fn new() -> Deadlines {
        Deadlines::default()
    }

    /// Adds `due`; false if it was there.
    pub(crate) fn insert(&mut self, due: Due) -> bool {
        Arc::make_mut(&mut self.0).insert(due)
    }

    /// Removes `due`; false if it was not there.
    pub(crate) fn remove(&mut self, due: &Due) -> bool {
        Arc::make_mut(&mut self.0).remove(due)
    }

    /// Number of keys with a deadline.
    pub(crate) fn len(&self) -> usize {
        self.0.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// Soonest deadline first.
    pub(crate) fn iter(&self) -> std::collections::btree_set::Iter<'_, Due> {
        self.0.iter()
    }

    /// The places within `range`, in order.
    pub(crate) fn range<R: RangeBounds<Due>>(
        &self,
        range: R,
    ) -> std::collections::btree_set::Range<'_, Due> {
        self.0.range(range)
    }

    /// The soonest deadline's place.
    pub(crate) fn get_min(&self) -> Option<&Due> {
        self.0.first()
    }

    /// Whether another copy shares the index (its next write copies it).
    #[cfg(test)]
    pub(crate) fn is_shared(&self) -> bool {
        Arc::strong_count(&self.0) > 1
    }

    /// The latest deadline's place.
    pub(crate) fn get_max(&self) -> Option<&Due> {
        self.0.last()
    }
}

impl<'a> IntoIterator for &'a Deadlines {
    type Item = &'a Due;
    type IntoIter = std::collections::btree_set::Iter<'a, Due>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.iter()
    }
}

impl FromIterator<Due> for Deadlines {
    fn from_iter<I: IntoIterator<Item = Due>>(iter: I) -> Deadlines {
        Deadlines(Arc::new(iter.into_iter().collect()))
    }
}

impl std::fmt::Debug for Deadlines {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_set().entries(self.0.iter()).finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::key::Key;

    fn due(at: u64, key: &str) -> Due {
        Due::new(at, Key::copy(key.as_bytes()))
    }

    #[test]
    fn soonest_first_and_a_clone_never_sees_later_writes() {
        let mut live: Deadlines = [due(30, "c"), due(10, "a"), due(20, "b")]
            .into_iter()
            .collect();
        let held = live.clone();
        assert!(live.remove(&due(10, "a")));
        assert!(!live.remove(&due(10, "a")));
        assert!(live.insert(due(5, "d")));
        assert!(!live.insert(due(5, "d")));
        let order = |d: &Deadlines| d.iter().map(|d| d.at).collect::<Vec<_>>();
        assert_eq!(order(&live), [5, 20, 30]);
        assert_eq!(order(&held), [10, 20, 30]);
        assert_eq!(live.get_min().map(|d| d.at), Some(5));
        assert_eq!(live.get_max().map(|d| d.at), Some(30));
        let from_20: Vec<u64> = live.range(Due::first_at(20)..).map(|d| d.at).collect();
        assert_eq!(from_20, [20, 30]);
        assert_eq!(live.len(), 3);
        assert!(!live.is_empty());
        assert!(Deadlines::new().is_empty());
    }
}
