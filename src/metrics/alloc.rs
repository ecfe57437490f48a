//! A global-allocator wrapper that counts the bytes the process has
//! allocated and not yet freed: INFO's `used_memory`, as Redis's
//! `zmalloc_used_memory` is.
//!
//! Redis tools read `used_memory` as the live heap and
//! `mem_fragmentation_ratio` (RSS over `used_memory`) as the allocator's
//! overhead on top of it. The allocator's committed memory is neither: it
//! keeps pages a freed burst left behind (a load's log entries, a
//! snapshot's buffers), so reporting it made `used_memory` two or three
//! times the live heap after a load and the fragmentation ratio below one.
//!
//! Counting must cost the hot path next to nothing: every thread adds to its
//! own cache line with a plain load and store (it is that slot's only
//! writer), and a reader sums the slots. Threads beyond [`SLOTS`] − 1 (the
//! runtime's short-lived blocking threads, late in a long run) share the
//! last slot with an atomic add. The counts are of requested sizes
//! (`Layout::size`), not the allocator's size classes.
//!
//! Invariants: the sum over the slots is the bytes allocated through this
//! wrapper minus the bytes freed through it, whichever thread did either; a
//! reader racing writers sees each slot at some recent value, never a torn
//! one.

use std::alloc::{GlobalAlloc, Layout};
use std::cell::Cell;
use std::sync::atomic::{AtomicI64, AtomicUsize, Ordering};

/// Per-thread counters; the last is shared by the threads that found the
/// others taken.
pub const SLOTS: usize = 64;

/// One counter on its own cache line, so threads do not share lines.
#[repr(align(64))]
struct Slot(AtomicI64);

/// The next slot to hand to a thread that has none yet.
static NEXT_SLOT: AtomicUsize = AtomicUsize::new(0);

thread_local! {
    /// This thread's slot, `usize::MAX` until its first allocation. Const
    /// and without a destructor, so it is usable from inside the allocator
    /// at any point of a thread's life.
    static THREAD_SLOT: Cell<usize> = const { Cell::new(usize::MAX) };
}

/// The calling thread's slot index: its own, or the shared last one.
fn thread_slot() -> usize {
    THREAD_SLOT
        .try_with(|slot| {
            let mut index = slot.get();
            if index == usize::MAX {
                index = NEXT_SLOT.fetch_add(1, Ordering::Relaxed).min(SLOTS - 1);
                slot.set(index);
            }
            index
        })
        .unwrap_or(SLOTS - 1)
}

/// `A`, counting the bytes live through it.
pub struct Counting<A> {
    inner: A,
    slots: [Slot; SLOTS],
}

impl<A> Counting<A> {
    /// Wraps `inner` with every count at zero.
    pub const fn new(inner: A) -> Counting<A> {
        #[allow(clippy::declare_interior_mutable_const)]
        const ZERO: Slot = Slot(AtomicI64::new(0));
        Counting {
            inner,
            slots: [ZERO; SLOTS],
        }
    }

    /// Bytes allocated through this wrapper and not yet freed.
    pub fn allocated_bytes(&self) -> u64 {
        let sum: i64 = self
            .slots
            .iter()
            .map(|slot| slot.0.load(Ordering::Relaxed))
            .sum();
        u64::try_from(sum).unwrap_or(0)
    }

    fn add(&self, delta: i64) {
        let index = thread_slot();
        let slot = &self.slots[index].0;
        if index == SLOTS - 1 {
            slot.fetch_add(delta, Ordering::Relaxed);
        } else {
            // This thread is the slot's only writer.
            slot.store(
                slot.load(Ordering::Relaxed).wrapping_add(delta),
                Ordering::Relaxed,
            );
        }
    }
}

fn signed(bytes: usize) -> i64 {
    i64::try_from(bytes).unwrap_or(i64::MAX)
}

// SAFETY: every call is passed through to `inner` unchanged; the wrapper
// only counts sizes after a successful call.
unsafe impl<A: GlobalAlloc> GlobalAlloc for Counting<A> {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        // SAFETY: the caller's contract is the inner allocator's.
        let ptr = unsafe { self.inner.alloc(layout) };
        if !ptr.is_null() {
            self.add(signed(layout.size()));
        }
        ptr
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let ptr = unsafe { self.inner.alloc_zeroed(layout) };
        if !ptr.is_null() {
            self.add(signed(layout.size()));
        }
        ptr
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: as for `alloc`.
        unsafe { self.inner.dealloc(ptr, layout) };
        self.add(-signed(layout.size()));
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        // SAFETY: as for `alloc`.
        let new = unsafe { self.inner.realloc(ptr, layout, new_size) };
        if !new.is_null() {
            self.add(signed(new_size) - signed(layout.size()));
        }
        new
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::alloc::System;

    #[test]
    fn counts_live_bytes_across_alloc_realloc_and_free() {
        let counting = Counting::new(System);
        let layout = Layout::from_size_align(100, 8).unwrap();
        // SAFETY: the layouts are non-zero and every pointer is freed with
        // the layout it was last sized to.
        unsafe {
            let a = counting.alloc(layout);
            let b = counting.alloc_zeroed(layout);
            assert_eq!(counting.allocated_bytes(), 200);
            let a = counting.realloc(a, layout, 300);
            assert_eq!(counting.allocated_bytes(), 400);
            counting.dealloc(b, layout);
            assert_eq!(counting.allocated_bytes(), 300);
            counting.dealloc(a, Layout::from_size_align(300, 8).unwrap());
        }
        assert_eq!(counting.allocated_bytes(), 0);
    }

    #[test]
    fn bytes_freed_on_another_thread_net_out() {
        let counting = std::sync::Arc::new(Counting::new(System));
        let layout = Layout::from_size_align(64, 8).unwrap();
        // SAFETY: allocated here with `layout`, freed below with it.
        let ptrs: Vec<usize> = (0..10)
            .map(|_| unsafe { counting.alloc(layout) } as usize)
            .collect();
        assert_eq!(counting.allocated_bytes(), 640);
        let other = std::sync::Arc::clone(&counting);
        std::thread::spawn(move || {
            for p in ptrs {
                // SAFETY: each pointer came from `alloc(layout)` above.
                unsafe { other.dealloc(p as *mut u8, layout) };
            }
        })
        .join()
        .unwrap();
        assert_eq!(counting.allocated_bytes(), 0);
    }

    #[test]
    fn threads_past_the_slots_share_the_last_one_correctly() {
        let counting = std::sync::Arc::new(Counting::new(System));
        let layout = Layout::from_size_align(8, 8).unwrap();
        // More threads than slots, all at once, each keeping one block.
        let handles: Vec<_> = (0..SLOTS + 8)
            .map(|_| {
                let c = std::sync::Arc::clone(&counting);
                std::thread::spawn(move || {
                    // SAFETY: freed by the test below with `layout`.
                    (0..100)
                        .map(|_| unsafe { c.alloc(layout) } as usize)
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let blocks: Vec<usize> = handles
            .into_iter()
            .flat_map(|h| h.join().unwrap())
            .collect();
        assert_eq!(counting.allocated_bytes(), blocks.len() as u64 * 8);
        for p in blocks {
            // SAFETY: each came from `alloc(layout)`.
            unsafe { counting.dealloc(p as *mut u8, layout) };
        }
        assert_eq!(counting.allocated_bytes(), 0);
    }
}
