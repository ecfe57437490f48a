//! A vector of keyed elements with a hash index of positions: the element
//! store of the `hashtable` set (members) and of the hash (field-value
//! pairs).
//!
//! The elements are a [`ChunkVec`], so a copy taken for a snapshot shares
//! them and a later write copies one chunk. The index maps each element's key
//! to its position; it keeps the key's 32-bit hash ([`key_hash`]) beside the
//! position, so growing or shrinking it never reads an element. Its hash key
//! is per process (as Redis seeds its dict's hash), so the index decides
//! nothing visible: every order a client can see is the positions' order,
//! which follows from the operations applied.
//!
//! Invariants:
//! - Keys are unique: [`IndexedVec::push_new`] is only called for a key that
//!   [`IndexedVec::lookup`] did not find.
//! - The index holds exactly one `(position, hash)` entry per element, with
//!   `hash == key_hash(hasher, element.key())` and the element at that
//!   position. Every removal repoints the entries of the elements it moves.
//! - [`IndexedVec::get_mut`] never changes an element's key (callers change
//!   the value beside it only).
//! - Positions are `u32`, so at most 2^32 - 1 elements (Redis's limit for a
//!   set or hash too).

use std::hash::RandomState;
use std::ops::Index;

use bytes::Bytes;
use hashbrown::HashTable;

use super::chunked::ChunkVec;
use super::keymap::{key_hash, spread};

/// What an element is found by.
pub(crate) trait Keyed {
    fn key(&self) -> &[u8];
}

/// A set member is its own key.
impl Keyed for Box<[u8]> {
    fn key(&self) -> &[u8] {
        self
    }
}

/// A hash's field-value pair is found by its field.
impl Keyed for (Bytes, Bytes) {
    fn key(&self) -> &[u8] {
        &self.0
    }
}

/// How a removal closes its gap.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Gap {
    /// The last element moves into the gap (O(1)).
    SwapLast,
    /// Every later element moves down one place (O(n)), keeping the order:
    /// what Redis's listpack does.
    Shift,
}

/// See the module docs.
#[derive(Clone)]
pub(crate) struct IndexedVec<T> {
    items: ChunkVec<T>,
    /// `(position, key_hash)` of every element.
    index: HashTable<(u32, u32)>,
    hasher: RandomState,
}

impl<T: Keyed + Clone + Default> Default for IndexedVec<T> {
    fn default() -> IndexedVec<T> {
        IndexedVec::with_capacity(0)
    }
}

impl<T> Index<usize> for IndexedVec<T> {
    type Output = T;

    fn index(&self, i: usize) -> &T {
        &self.items[i]
    }
}

impl<T: Keyed + Clone + Default> IndexedVec<T> {
    /// An empty vector with room for `capacity` elements.
    pub(crate) fn with_capacity(capacity: usize) -> IndexedVec<T> {
        let mut items = ChunkVec::new();
        items.reserve(capacity);
        IndexedVec {
            items,
            index: HashTable::with_capacity(capacity),
            hasher: RandomState::new(),
        }
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    /// The elements in position order.
    pub(crate) fn items(&self) -> &ChunkVec<T> {
        &self.items
    }

    /// The element at `i`, to change what is beside its key (never the key).
    pub(crate) fn get_mut(&mut self, i: usize) -> &mut T {
        &mut self.items[i]
    }

    /// `key`'s hash (for [`IndexedVec::push_new`]) and its element's
    /// position, if there is one.
    pub(crate) fn lookup(&self, key: &[u8]) -> (u32, Option<usize>) {
        let hash = key_hash(&self.hasher, key);
        let found = self
            .index
            .find(spread(hash), |&(i, h)| {
                h == hash && self.items[i as usize].key() == key
            })
            .map(|&(i, _)| i as usize);
        (hash, found)
    }

    /// The position of the element with `key`.
    pub(crate) fn position(&self, key: &[u8]) -> Option<usize> {
        self.lookup(key).1
    }

    /// Appends `item`, whose key has `hash` (from [`IndexedVec::lookup`],
    /// which found no element with it); returns its position.
    pub(crate) fn push_new(&mut self, hash: u32, item: T) -> usize {
        debug_assert_eq!(hash, key_hash(&self.hasher, item.key()));
        let position = u32::try_from(self.items.len())
            .expect("a set or hash holds fewer than 2^32 elements (Redis's limit too)");
        self.items.push(item);
        self.index
            .insert_unique(spread(hash), (position, hash), |&(_, h)| spread(h));
        position as usize
    }

    /// Removes the element with `key`, if there is one.
    pub(crate) fn remove(&mut self, key: &[u8], gap: Gap) -> Option<T> {
        let hash = key_hash(&self.hasher, key);
        let items = &self.items;
        let entry = self
            .index
            .find_entry(spread(hash), |&(i, h)| {
                h == hash && items[i as usize].key() == key
            })
            .ok()?;
        let ((at, _), _) = entry.remove();
        Some(self.close(at as usize, gap))
    }

    /// Removes the element at `position` (`< len`).
    pub(crate) fn remove_at(&mut self, position: usize, gap: Gap) -> T {
        self.unindex(position);
        self.close(position, gap)
    }

    /// Drops the index entry of the element at `position`.
    fn unindex(&mut self, position: usize) {
        let hash = key_hash(&self.hasher, self.items[position].key());
        if let Ok(entry) = self
            .index
            .find_entry(spread(hash), |&(i, _)| i as usize == position)
        {
            entry.remove();
        }
    }

    /// Points the index entry of the element at `from` to `to`.
    fn repoint(&mut self, from: usize, to: usize) {
        let hash = key_hash(&self.hasher, self.items[from].key());
        if let Some(slot) = self
            .index
            .find_mut(spread(hash), |&(i, _)| i as usize == from)
        {
            slot.0 = to as u32;
        }
    }

    /// Takes out the element at `at`, whose index entry is already gone, and
    /// closes the gap as `gap` says.
    fn close(&mut self, at: usize, gap: Gap) -> T {
        let last = self.items.len() - 1;
        let removed = match gap {
            Gap::SwapLast => {
                if at != last {
                    self.repoint(last, at);
                }
                self.items.swap_remove(at)
            }
            Gap::Shift => {
                let removed = std::mem::take(&mut self.items[at]);
                for i in at..last {
                    self.repoint(i + 1, i);
                    let next = std::mem::take(&mut self.items[i + 1]);
                    self.items[i] = next;
                }
                self.items.pop();
                removed
            }
        };
        // Give the index's memory back after large removals (amortised
        // O(1)), as Redis shrinks a dict that falls below 10% use; the
        // elements' chunks are freed as they empty.
        if self.index.capacity() > 64 && self.items.len() * 4 < self.index.capacity() {
            let keep = self.items.len() * 2;
            self.index.shrink_to(keep, |&(_, h)| spread(h));
        }
        removed
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// One step of the model test: keys are drawn from a small range so
    /// inserts repeat and removals hit.
    #[derive(Clone, Debug)]
    enum Step {
        Insert(u8, u8),
        Remove(u8, bool),
        RemoveAt(u16, bool),
        Set(u8, u8),
        Copy,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => (any::<u8>(), any::<u8>()).prop_map(|(k, v)| Step::Insert(k, v)),
            2 => (any::<u8>(), any::<bool>()).prop_map(|(k, s)| Step::Remove(k, s)),
            1 => (any::<u16>(), any::<bool>()).prop_map(|(i, s)| Step::RemoveAt(i, s)),
            1 => (any::<u8>(), any::<u8>()).prop_map(|(k, v)| Step::Set(k, v)),
            1 => Just(Step::Copy),
        ]
    }

    fn pair(k: u8, v: u8) -> (Bytes, Bytes) {
        (
            Bytes::from(vec![k; 1 + usize::from(k % 3)]),
            Bytes::from(vec![v]),
        )
    }

    fn gap(shift: bool) -> Gap {
        if shift {
            Gap::Shift
        } else {
            Gap::SwapLast
        }
    }

    /// The model: a plain vector searched linearly, closing gaps the same
    /// two ways.
    fn model_remove(model: &mut Vec<(Bytes, Bytes)>, at: usize, gap: Gap) -> (Bytes, Bytes) {
        match gap {
            Gap::SwapLast => model.swap_remove(at),
            Gap::Shift => model.remove(at),
        }
    }

    /// Every element is found at its position, and nothing else is found.
    fn check(v: &IndexedVec<(Bytes, Bytes)>, model: &[(Bytes, Bytes)]) {
        assert_eq!(v.len(), model.len());
        assert_eq!(v.index.len(), model.len());
        for (i, p) in model.iter().enumerate() {
            assert_eq!(&v[i], p);
            assert_eq!(v.position(&p.0), Some(i));
        }
        assert_eq!(v.position(b"absent"), None);
    }

    proptest! {
        #[test]
        fn matches_a_linear_model_and_copies_stay_put(
            steps in proptest::collection::vec(step(), 1..400),
        ) {
            let mut v: IndexedVec<(Bytes, Bytes)> = IndexedVec::default();
            let mut model: Vec<(Bytes, Bytes)> = Vec::new();
            let mut copies = Vec::new();
            for step in steps {
                match step {
                    Step::Insert(k, val) => {
                        let p = pair(k, val);
                        let (hash, found) = v.lookup(&p.0);
                        let expected = model.iter().position(|q| q.0 == p.0);
                        prop_assert_eq!(found, expected);
                        if found.is_none() {
                            prop_assert_eq!(v.push_new(hash, p.clone()), model.len());
                            model.push(p);
                        }
                    }
                    Step::Remove(k, shift) => {
                        let key = pair(k, 0).0;
                        let removed = v.remove(&key, gap(shift));
                        let expected = model
                            .iter()
                            .position(|q| q.0 == key)
                            .map(|at| model_remove(&mut model, at, gap(shift)));
                        prop_assert_eq!(removed, expected);
                    }
                    Step::RemoveAt(i, shift) => {
                        if !model.is_empty() {
                            let at = usize::from(i) % model.len();
                            prop_assert_eq!(
                                v.remove_at(at, gap(shift)),
                                model_remove(&mut model, at, gap(shift))
                            );
                        }
                    }
                    Step::Set(k, val) => {
                        let p = pair(k, val);
                        if let Some(at) = v.position(&p.0) {
                            v.get_mut(at).1 = p.1.clone();
                            model[at].1 = p.1;
                        }
                    }
                    Step::Copy => copies.push((v.clone(), model.clone())),
                }
                check(&v, &model);
            }
            for (copy, seen) in &copies {
                check(copy, seen);
            }
        }
    }

    #[test]
    fn the_index_shrinks_after_large_removals_and_still_finds_everything() {
        let mut v: IndexedVec<Box<[u8]>> = IndexedVec::default();
        for i in 0..10_000u32 {
            let key: Box<[u8]> = i.to_be_bytes().into();
            let (hash, found) = v.lookup(&key);
            assert_eq!(found, None);
            v.push_new(hash, key);
        }
        let full = v.index.capacity();
        for i in 0..9_900u32 {
            assert!(v.remove(&i.to_be_bytes(), Gap::SwapLast).is_some());
        }
        assert!(
            v.index.capacity() * 8 < full,
            "{} of {full}",
            v.index.capacity()
        );
        for i in 9_900..10_000u32 {
            assert!(v.position(&i.to_be_bytes()).is_some());
        }
        assert_eq!(v.len(), 100);
    }
}
