//! A vector stored in fixed-size chunks, each shared copy-on-write: the
//! element store of the big sorted sets (their member and tree arenas), sets and
//! hashes.
//!
//! Why: a collection is owned copy-on-write (`kv::Shared`), so the first
//! write to one that a snapshot still holds copies it, in one apply turn, on
//! every replica at the same moment. A plain `Vec` of a million members was a
//! million allocations and 70-190 ms of that turn. Here a copy clones one
//! reference count per chunk of [`CHUNK`] elements, and a write copies only
//! the chunk it lands in, the first time after a copy.
//!
//! Invariants:
//! - Element `i` is in the `i / CHUNK`-th full chunk while
//!   `i < full.len() * CHUNK`, and in `tail` after that. Every chunk in `full`
//!   holds exactly [`CHUNK`] elements; `tail` holds at most `CHUNK` and is
//!   the vector's own (a copy copies it: at most `CHUNK` elements). So
//!   memory is never held past one partly filled chunk.
//! - A full chunk is written only through [`Arc::make_mut`], so a write never
//!   reaches a chunk another copy still sees. A read costs one more load than
//!   a `Vec`'s; a write to a full chunk one atomic operation more.

use std::ops::{Index, IndexMut};
use std::sync::Arc;

/// Elements per chunk (a power of two).
pub(crate) const CHUNK: usize = 64;
const SHIFT: u32 = CHUNK.trailing_zeros();

/// See the module docs.
#[derive(Clone)]
pub(crate) struct ChunkVec<T> {
    full: Vec<Arc<[T]>>,
    tail: Vec<T>,
}

impl<T> Default for ChunkVec<T> {
    fn default() -> ChunkVec<T> {
        ChunkVec {
            full: Vec::new(),
            tail: Vec::new(),
        }
    }
}

impl<T: Clone + Default> ChunkVec<T> {
    /// An empty vector.
    pub(crate) fn new() -> ChunkVec<T> {
        ChunkVec::default()
    }

    /// Number of elements.
    #[inline]
    pub(crate) fn len(&self) -> usize {
        (self.full.len() << SHIFT) + self.tail.len()
    }

    /// Room for `additional` more elements in the chunk list (the chunks
    /// themselves are allocated whole as they are reached).
    pub(crate) fn reserve(&mut self, additional: usize) {
        let chunks = (self.len() + additional) >> SHIFT;
        self.full.reserve(chunks.saturating_sub(self.full.len()));
    }

    /// Appends `value`.
    pub(crate) fn push(&mut self, value: T) {
        if self.tail.len() == CHUNK {
            // Moved, not cloned, into the shared chunk.
            self.full.push(Arc::from(std::mem::take(&mut self.tail)));
        }
        if self.tail.capacity() == 0 {
            self.tail.reserve_exact(CHUNK);
        }
        self.tail.push(value);
    }

    /// Removes and returns the last element.
    pub(crate) fn pop(&mut self) -> Option<T> {
        if self.tail.is_empty() {
            let mut chunk = self.full.pop()?;
            // Moved out when no copy shares the chunk; cloned otherwise.
            self.tail = Arc::make_mut(&mut chunk)
                .iter_mut()
                .map(std::mem::take)
                .collect();
        }
        self.tail.pop()
    }

    /// Removes element `i`, moving the last element into its place (O(1)).
    ///
    /// # Panics
    /// If `i` is out of bounds, as `Vec::swap_remove`.
    pub(crate) fn swap_remove(&mut self, i: usize) -> T {
        let len = self.len();
        assert!(i < len, "swap_remove index {i} past length {len}");
        let last = self.pop().expect("not empty: i < len");
        if i == len - 1 {
            last
        } else {
            std::mem::replace(&mut self[i], last)
        }
    }

    /// Bytes the vector has allocated: its chunk list, the chunks with
    /// their reference counts, and the tail's capacity.
    #[cfg(test)]
    pub(crate) fn allocation_size(&self) -> usize {
        let size = std::mem::size_of::<T>();
        self.full.capacity() * std::mem::size_of::<Arc<[T]>>()
            + self.full.len() * (2 * std::mem::size_of::<usize>() + CHUNK * size)
            + self.tail.capacity() * size
    }

    /// Elements in order.
    pub(crate) fn iter(&self) -> impl ExactSizeIterator<Item = &T> + DoubleEndedIterator + '_ {
        (0..self.len()).map(move |i| &self[i])
    }
}

impl<T> Index<usize> for ChunkVec<T> {
    type Output = T;

    #[inline]
    fn index(&self, i: usize) -> &T {
        let in_full = self.full.len() << SHIFT;
        if i < in_full {
            &self.full[i >> SHIFT][i & (CHUNK - 1)]
        } else {
            &self.tail[i - in_full]
        }
    }
}

impl<T: Clone> IndexMut<usize> for ChunkVec<T> {
    /// The element at `i`, its chunk copied first if another copy shares it.
    #[inline]
    fn index_mut(&mut self, i: usize) -> &mut T {
        let in_full = self.full.len() << SHIFT;
        if i < in_full {
            &mut Arc::make_mut(&mut self.full[i >> SHIFT])[i & (CHUNK - 1)]
        } else {
            &mut self.tail[i - in_full]
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[derive(Clone, Debug)]
    enum Step {
        Push(u32),
        Pop,
        SwapRemove(usize),
        Set(usize, u32),
        /// Keep a copy from here on, and check it is never changed.
        Copy,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            4 => any::<u32>().prop_map(Step::Push),
            1 => Just(Step::Pop),
            2 => any::<usize>().prop_map(Step::SwapRemove),
            2 => (any::<usize>(), any::<u32>()).prop_map(|(i, v)| Step::Set(i, v)),
            1 => Just(Step::Copy),
        ]
    }

    fn contents(v: &ChunkVec<u32>) -> Vec<u32> {
        v.iter().copied().collect()
    }

    fn check_shape(v: &ChunkVec<u32>) {
        assert!(v.full.iter().all(|chunk| chunk.len() == CHUNK));
        assert!(v.tail.len() <= CHUNK);
    }

    proptest! {
        /// Against `Vec` as the model, with copies taken midway that must
        /// keep what they saw whatever the original does next.
        #[test]
        fn behaves_as_a_vec_and_copies_stay_put(steps in prop::collection::vec(step(), 0..600)) {
            let mut v = ChunkVec::new();
            let mut model: Vec<u32> = Vec::new();
            let mut copies: Vec<(ChunkVec<u32>, Vec<u32>)> = Vec::new();
            for step in steps {
                match step {
                    Step::Push(x) => {
                        v.push(x);
                        model.push(x);
                    }
                    Step::Pop => prop_assert_eq!(v.pop(), model.pop()),
                    Step::SwapRemove(i) if !model.is_empty() => {
                        let i = i % model.len();
                        prop_assert_eq!(v.swap_remove(i), model.swap_remove(i));
                    }
                    Step::Set(i, x) if !model.is_empty() => {
                        let i = i % model.len();
                        v[i] = x;
                        model[i] = x;
                    }
                    Step::Copy => copies.push((v.clone(), model.clone())),
                    Step::SwapRemove(_) | Step::Set(..) => {}
                }
                prop_assert_eq!(v.len(), model.len());
                check_shape(&v);
            }
            prop_assert_eq!(contents(&v), model.clone());
            for (i, x) in model.iter().enumerate() {
                prop_assert_eq!(&v[i], x);
            }
            for (copy, seen) in &copies {
                prop_assert_eq!(&contents(copy), seen);
            }
        }
    }

    #[test]
    fn a_write_after_a_copy_copies_only_its_chunk() {
        let mut v = ChunkVec::new();
        for i in 0..(10 * CHUNK as u32) {
            v.push(i);
        }
        let copy = v.clone();
        v[3 * CHUNK + 1] = 7;
        let shared: Vec<bool> = v
            .full
            .iter()
            .zip(&copy.full)
            .map(|(a, b)| Arc::ptr_eq(a, b))
            .collect();
        let mut expected = vec![true; 9];
        expected[3] = false;
        assert_eq!(shared, expected);
        assert_eq!(copy[3 * CHUNK + 1], 3 * CHUNK as u32 + 1);
    }

    #[test]
    fn pops_across_a_chunk_boundary_keep_a_copy_whole() {
        let mut v = ChunkVec::new();
        for i in 0..(2 * CHUNK as u32 + 1) {
            v.push(i);
        }
        let copy = v.clone();
        for _ in 0..(CHUNK + 2) {
            v.pop();
        }
        v[0] = 99;
        assert_eq!(contents(&v).len(), CHUNK - 1);
        assert_eq!(
            contents(&copy),
            (0..(2 * CHUNK as u32 + 1)).collect::<Vec<_>>()
        );
    }
}
