//! The list value: a sequence of byte strings, stored compactly.
//!
//! Redis 7.0 keeps every list as a *quicklist* (a linked list of listpack
//! nodes of at most 8 KiB each, `list-max-listpack-size -2`), and so does
//! dkv in its own layout:
//!
//! - A node is one contiguous buffer of entries. An entry is the element's
//!   length (LEB128, low 7 bits first), the element's bytes, then the
//!   entry's length so far written backwards (the last byte holds the low
//!   7 bits, a set high bit says another byte precedes), so a node is walked
//!   from either end without an index. A 10-byte element costs 12 bytes.
//! - A list starts *packed*: one node in an exactly sized heap buffer, so a
//!   small list is one allocation. When it outgrows one node it becomes a
//!   deque of nodes (and never goes back, as Redis never does). Both report
//!   `quicklist` to OBJECT ENCODING, as Redis 7.0 does for every list.
//! - In the deque form each node sits behind an `Arc`. A list is owned
//!   copy-on-write (`kv::Shared`), so the first write to one a snapshot
//!   still holds copies it, on every replica in the same apply turn: here
//!   that copy is one reference count per node, and the write then copies
//!   the one node it changes (`Arc::make_mut`), not the whole list. A node
//!   is changed only through `Arc::make_mut`, so a copy never sees a later
//!   write.
//!
//! Invariants (checked by the tests after every operation):
//! - a node holds at most [`NODE_MAX_BYTES`] of entries unless it holds a
//!   single element (an element larger than a node gets a node of its own);
//! - the deque form has no empty node, and its cached length and byte count
//!   are the sums over its nodes;
//! - an entry's encoding depends only on the element, so the byte count, and
//!   with it [`List::mem_bytes`], depends only on the elements, never on how
//!   they happen to be split into nodes: a list rebuilt from a snapshot
//!   accounts for exactly the same memory as the original.
//!
//! Complexities are Redis's: pushes and pops O(1) per element (work inside
//! one bounded node), LLEN O(1), index/set/insert O(N) (whole nodes are
//! skipped by their counts, from the nearer end), range O(S+N), LREM and
//! LPOS O(N), trim O(removed). Equality compares the elements only.
//!
//! Pure data: no I/O, no clock, no randomness.

use std::collections::VecDeque;
use std::fmt;
use std::sync::Arc;

use bytes::Bytes;
use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The most entry bytes a node holds (Redis's `list-max-listpack-size -2`).
pub const NODE_MAX_BYTES: usize = 8192;

/// Adjacent nodes are merged when together they hold at most this much, and
/// an overfull node is split into pieces of about this size: the gap between
/// the two keeps an insert/delete at a node border from splitting and
/// merging the same bytes over and over.
const HALF_NODE_BYTES: usize = NODE_MAX_BYTES / 2;

/// The fixed cost [`List::mem_bytes`] counts per node of the ideal packing.
const NODE_OVERHEAD_BYTES: u64 = 32;

// ---- entry encoding -----------------------------------------------------

/// Bytes of the LEB128 encoding of `n`.
fn varint_len(mut n: usize) -> usize {
    let mut len = 1;
    while n >= 0x80 {
        n >>= 7;
        len += 1;
    }
    len
}

/// Bytes one element of `data_len` bytes takes in a node.
fn entry_len(data_len: usize) -> usize {
    let body = varint_len(data_len) + data_len;
    body + varint_len(body)
}

/// Writes the entry of `value` into `dst`, which is exactly
/// `entry_len(value.len())` long.
fn write_entry(dst: &mut [u8], value: &[u8]) {
    let mut p = 0;
    let mut n = value.len();
    loop {
        let low = (n & 0x7f) as u8;
        n >>= 7;
        if n == 0 {
            dst[p] = low;
            p += 1;
            break;
        }
        dst[p] = low | 0x80;
        p += 1;
    }
    dst[p..p + value.len()].copy_from_slice(value);
    let body = p + value.len();
    let back = varint_len(body);
    debug_assert_eq!(dst.len(), body + back);
    let mut t = body;
    for j in 0..back {
        let low = (t & 0x7f) as u8;
        t >>= 7;
        dst[dst.len() - 1 - j] = if j + 1 < back { low | 0x80 } else { low };
    }
}

/// The entry starting at `offset`: (data start, data end, entry end).
fn entry_at(buf: &[u8], offset: usize) -> (usize, usize, usize) {
    let mut n = 0usize;
    let mut shift = 0;
    let mut p = offset;
    loop {
        let b = buf[p];
        p += 1;
        n |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    let data_end = p + n;
    (p, data_end, data_end + varint_len(data_end - offset))
}

/// The start of the entry that ends at `end`.
fn entry_before(buf: &[u8], end: usize) -> usize {
    let mut body = 0usize;
    let mut shift = 0;
    let mut p = end;
    loop {
        p -= 1;
        let b = buf[p];
        body |= usize::from(b & 0x7f) << shift;
        if b & 0x80 == 0 {
            break;
        }
        shift += 7;
    }
    p - body
}

/// The element bytes of the entry starting at `offset`.
fn element_at(buf: &[u8], offset: usize) -> &[u8] {
    let (start, end, _) = entry_at(buf, offset);
    &buf[start..end]
}

// ---- nodes ----------------------------------------------------------------

/// One node: its entries back to back, and how many there are.
#[derive(Clone, Default)]
struct Node {
    buf: Vec<u8>,
    count: u32,
}

impl Node {
    /// Makes room for `extra` more bytes. An `exact` buffer (the packed
    /// form) grows to the byte, as a listpack does; a deque node keeps up to
    /// a quarter of slack so pushes do not reallocate every time.
    fn reserve(&mut self, extra: usize, exact: bool) {
        let need = self.buf.len() + extra;
        if need <= self.buf.capacity() {
            return;
        }
        let target = if exact {
            need
        } else {
            let grown = self.buf.capacity() + self.buf.capacity() / 4;
            need.max(grown.min(NODE_MAX_BYTES))
        };
        self.buf.reserve_exact(target - self.buf.len());
    }

    fn view(&self) -> NodeRef<'_> {
        NodeRef {
            buf: &self.buf,
            count: self.count,
        }
    }

    /// Inserts `value` as an entry starting at `offset` (an entry border).
    fn insert(&mut self, offset: usize, value: &[u8], exact: bool) {
        let n = entry_len(value.len());
        self.reserve(n, exact);
        let old = self.buf.len();
        self.buf.resize(old + n, 0);
        self.buf.copy_within(offset..old, offset + n);
        write_entry(&mut self.buf[offset..offset + n], value);
        self.count += 1;
    }

    /// Replaces the entry spanning `start..end` with `value`.
    fn replace(&mut self, start: usize, end: usize, value: &[u8], exact: bool) {
        let n = entry_len(value.len());
        let old_len = self.buf.len();
        if n > end - start {
            let grow = n - (end - start);
            self.reserve(grow, exact);
            self.buf.resize(old_len + grow, 0);
            self.buf.copy_within(end..old_len, start + n);
        } else {
            self.buf.copy_within(end..old_len, start + n);
            self.buf.truncate(old_len - (end - start - n));
        }
        write_entry(&mut self.buf[start..start + n], value);
    }

    /// Removes the first `n` entries, returning them if `collect`.
    fn take_front(&mut self, n: usize, collect: bool) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut p = 0;
        for _ in 0..n {
            let (start, end, next) = entry_at(&self.buf, p);
            if collect {
                out.push(Bytes::copy_from_slice(&self.buf[start..end]));
            }
            p = next;
        }
        self.buf.drain(..p);
        self.count -= n as u32;
        out
    }

    /// Removes the last `n` entries, returning them last first if `collect`.
    fn take_back(&mut self, n: usize, collect: bool) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut p = self.buf.len();
        for _ in 0..n {
            p = entry_before(&self.buf, p);
            if collect {
                out.push(Bytes::copy_from_slice(element_at(&self.buf, p)));
            }
        }
        self.buf.truncate(p);
        self.count -= n as u32;
        out
    }

    /// Removes up to `limit` entries equal to `value`, the first ones or,
    /// `from_back`, the last ones; returns how many went.
    fn remove_matches(&mut self, value: &[u8], limit: usize, from_back: bool) -> usize {
        let mut spans: Vec<(usize, usize)> = Vec::new();
        if from_back {
            let mut end = self.buf.len();
            while end > 0 && spans.len() < limit {
                let start = entry_before(&self.buf, end);
                if element_at(&self.buf, start) == value {
                    spans.push((start, end));
                }
                end = start;
            }
            spans.reverse();
        } else {
            let mut p = 0;
            while p < self.buf.len() && spans.len() < limit {
                let (start, end, next) = entry_at(&self.buf, p);
                if &self.buf[start..end] == value {
                    spans.push((p, next));
                }
                p = next;
            }
        }
        let Some(&(first, _)) = spans.first() else {
            return 0;
        };
        // Slide the kept runs down over the removed entries, in one pass.
        let mut write = first;
        for (k, &(_, end)) in spans.iter().enumerate() {
            let next = spans.get(k + 1).map_or(self.buf.len(), |s| s.0);
            self.buf.copy_within(end..next, write);
            write += next - end;
        }
        self.buf.truncate(write);
        self.count -= spans.len() as u32;
        spans.len()
    }

    /// Cuts an overfull node into pieces of about [`HALF_NODE_BYTES`].
    fn split(self) -> Vec<Node> {
        let mut pieces = Vec::new();
        let mut piece = Node::default();
        let mut p = 0;
        while p < self.buf.len() {
            let (_, _, next) = entry_at(&self.buf, p);
            if piece.count > 0 && piece.buf.len() + (next - p) > HALF_NODE_BYTES {
                pieces.push(std::mem::take(&mut piece));
            }
            piece.buf.extend_from_slice(&self.buf[p..next]);
            piece.count += 1;
            p = next;
        }
        if piece.count > 0 {
            pieces.push(piece);
        }
        pieces
    }

    /// True if this node may take one more entry of `data_len` bytes.
    fn fits(&self, data_len: usize) -> bool {
        self.count == 0 || self.buf.len() + entry_len(data_len) <= NODE_MAX_BYTES
    }

    /// True if the node breaks the size bound (and can be split).
    fn overfull(&self) -> bool {
        self.buf.len() > NODE_MAX_BYTES && self.count > 1
    }
}

// ---- the deque form -------------------------------------------------------

/// A list of more than one node's worth of entries.
#[derive(Clone)]
struct Quick {
    /// Each node behind an `Arc`, so a copy (a snapshot's) shares them and
    /// an edit copies only the node it changes.
    nodes: VecDeque<Arc<Node>>,
    /// Elements over all nodes.
    len: usize,
    /// Entry bytes over all nodes.
    bytes: usize,
}

impl Quick {
    fn from_node(node: Node) -> Quick {
        let len = node.count as usize;
        let bytes = node.buf.len();
        let nodes = if node.overfull() {
            node.split().into_iter().map(Arc::new).collect()
        } else {
            VecDeque::from([Arc::new(node)])
        };
        Quick { nodes, len, bytes }
    }

    /// Runs `f` on node `i`, keeping the cached length and byte count.
    fn edit<R>(&mut self, i: usize, f: impl FnOnce(&mut Node) -> R) -> R {
        let node = Arc::make_mut(&mut self.nodes[i]);
        let (count, bytes) = (node.count as usize, node.buf.len());
        let result = f(node);
        self.len = self.len + node.count as usize - count;
        self.bytes = self.bytes + node.buf.len() - bytes;
        result
    }

    /// Node index and index within it of element `index` (< len).
    fn locate(&self, mut index: usize) -> (usize, usize) {
        if index < self.len / 2 {
            for (i, node) in self.nodes.iter().enumerate() {
                let count = node.count as usize;
                if index < count {
                    return (i, index);
                }
                index -= count;
            }
        } else {
            let mut from_back = self.len - index; // >= 1
            for (i, node) in self.nodes.iter().enumerate().rev() {
                let count = node.count as usize;
                if from_back <= count {
                    return (i, count - from_back);
                }
                from_back -= count;
            }
        }
        unreachable!("index {index} checked against the length {}", self.len)
    }

    fn push(&mut self, value: &[u8], front: bool) {
        let end = if front {
            0
        } else {
            self.nodes.len().wrapping_sub(1)
        };
        if self.nodes.get(end).is_some_and(|n| n.fits(value.len())) {
            self.edit(end, |node| {
                let at = if front { 0 } else { node.buf.len() };
                node.insert(at, value, false);
            });
            return;
        }
        let mut node = Node::default();
        node.insert(0, value, false);
        self.len += 1;
        self.bytes += node.buf.len();
        if front {
            self.nodes.push_front(Arc::new(node));
        } else {
            self.nodes.push_back(Arc::new(node));
        }
    }

    /// Removes `n` elements (at most the length) from one end.
    fn take(&mut self, mut n: usize, front: bool, collect: bool) -> Vec<Bytes> {
        let mut out = Vec::new();
        while n > 0 {
            let i = if front { 0 } else { self.nodes.len() - 1 };
            let count = self.nodes[i].count as usize;
            let k = n.min(count);
            if k == count && !collect {
                let node = if front {
                    self.nodes.pop_front()
                } else {
                    self.nodes.pop_back()
                };
                let node = node.expect("the length says there are nodes left");
                self.len -= count;
                self.bytes -= node.buf.len();
            } else {
                let taken = self.edit(i, |node| {
                    if front {
                        node.take_front(k, collect)
                    } else {
                        node.take_back(k, collect)
                    }
                });
                out.extend(taken);
                if self.nodes[i].count == 0 {
                    self.nodes.remove(i);
                }
            }
            n -= k;
        }
        out
    }

    /// Restores the node bounds around node `i` after an edit inside it:
    /// drops it if empty, splits it if overfull, else merges it with small
    /// neighbours.
    fn settle(&mut self, i: usize) {
        let node = &self.nodes[i];
        if node.count == 0 {
            self.nodes.remove(i);
            return;
        }
        if node.overfull() {
            let node = self.nodes.remove(i).expect("index in range");
            for (k, piece) in Arc::unwrap_or_clone(node).split().into_iter().enumerate() {
                self.nodes.insert(i + k, Arc::new(piece));
            }
            return;
        }
        let size = |q: &Quick, i: usize| q.nodes[i].buf.len();
        if i + 1 < self.nodes.len() && size(self, i) + size(self, i + 1) <= HALF_NODE_BYTES {
            let next = self.nodes.remove(i + 1).expect("index in range");
            merge_into(Arc::make_mut(&mut self.nodes[i]), &next);
        }
        if i > 0 && size(self, i - 1) + size(self, i) <= HALF_NODE_BYTES {
            let node = self.nodes.remove(i).expect("index in range");
            merge_into(Arc::make_mut(&mut self.nodes[i - 1]), &node);
        }
    }

    /// Drops empty nodes and merges small neighbours, over the whole deque
    /// (after LREM, which may have thinned any node).
    fn tidy(&mut self) {
        let old = std::mem::take(&mut self.nodes);
        for node in old {
            if node.count == 0 {
                continue;
            }
            match self.nodes.back_mut() {
                Some(last) if last.buf.len() + node.buf.len() <= HALF_NODE_BYTES => {
                    merge_into(Arc::make_mut(last), &node);
                }
                _ => self.nodes.push_back(node),
            }
        }
    }
}

fn merge_into(node: &mut Node, next: &Node) {
    node.buf.extend_from_slice(&next.buf);
    node.count += next.count;
}

// ---- the list -------------------------------------------------------------

#[derive(Clone)]
enum Repr {
    /// One node in an exactly sized buffer: every list starts here.
    Packed { buf: Box<[u8]>, count: u32 },
    /// More than one node's worth (boxed: rare, and keeps `List` small).
    Quick(Box<Quick>),
}

/// A Redis list (see the module docs for the layout).
#[derive(Clone)]
pub struct List(Repr);

impl Default for List {
    fn default() -> List {
        List::new()
    }
}

impl List {
    /// An empty list.
    pub fn new() -> List {
        List(Repr::Packed {
            buf: Box::default(),
            count: 0,
        })
    }

    /// Number of elements (LLEN).
    pub fn len(&self) -> usize {
        match &self.0 {
            Repr::Packed { count, .. } => *count as usize,
            Repr::Quick(q) => q.len,
        }
    }

    /// True when the list has no element (the key must then be deleted).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// OBJECT ENCODING's name: `quicklist`, as Redis 7.0 reports for every list.
    pub fn encoding(&self) -> &'static str {
        "quicklist"
    }

    /// Bytes of entries over all nodes.
    fn entry_bytes(&self) -> usize {
        match &self.0 {
            Repr::Packed { buf, .. } => buf.len(),
            Repr::Quick(q) => q.bytes,
        }
    }

    /// A deterministic estimate of the list's heap size: its entry bytes
    /// plus a node header per 8 KiB of them. It depends on the elements only
    /// (not on how they are split into nodes), so every replica, and a list
    /// restored from a snapshot, counts the same.
    pub fn mem_bytes(&self) -> u64 {
        let bytes = self.entry_bytes() as u64;
        bytes + NODE_OVERHEAD_BYTES * bytes.div_ceil(NODE_MAX_BYTES as u64).max(1)
    }

    fn node_count(&self) -> usize {
        match &self.0 {
            Repr::Packed { .. } => 1,
            Repr::Quick(q) => q.nodes.len(),
        }
    }

    fn node_buf(&self, i: usize) -> &[u8] {
        match &self.0 {
            Repr::Packed { buf, .. } => buf,
            Repr::Quick(q) => &q.nodes[i].buf,
        }
    }

    /// Runs `f` on the packed node as a growable [`Node`] (exact growth),
    /// then stores it back in an exactly sized buffer, or turns the list
    /// into the deque form if the node outgrew the bound.
    fn edit_packed<R>(&mut self, f: impl FnOnce(&mut Node) -> R) -> R {
        let Repr::Packed { buf, count } = &mut self.0 else {
            unreachable!("edit_packed is called on packed lists only");
        };
        let mut node = Node {
            buf: std::mem::take(buf).into_vec(),
            count: *count,
        };
        let result = f(&mut node);
        if node.overfull() {
            self.0 = Repr::Quick(Box::new(Quick::from_node(node)));
        } else if let Repr::Packed { buf, count } = &mut self.0 {
            *count = node.count;
            *buf = node.buf.into_boxed_slice();
        }
        result
    }

    /// Turns a packed list into the deque form (one node).
    fn quick(&mut self) -> &mut Quick {
        if let Repr::Packed { buf, count } = &mut self.0 {
            let node = Node {
                buf: std::mem::take(buf).into_vec(),
                count: *count,
            };
            self.0 = Repr::Quick(Box::new(Quick::from_node(node)));
        }
        match &mut self.0 {
            Repr::Quick(q) => q,
            Repr::Packed { .. } => unreachable!("converted above"),
        }
    }

    /// Pushes `value` at the head (LPUSH of one element).
    pub fn push_front(&mut self, value: &[u8]) {
        self.push(value, true);
    }

    /// Pushes `value` at the tail (RPUSH of one element).
    pub fn push_back(&mut self, value: &[u8]) {
        self.push(value, false);
    }

    fn push(&mut self, value: &[u8], front: bool) {
        match &mut self.0 {
            Repr::Packed { buf, count }
                if *count == 0 || buf.len() + entry_len(value.len()) <= NODE_MAX_BYTES =>
            {
                self.edit_packed(|node| {
                    let at = if front { 0 } else { node.buf.len() };
                    node.insert(at, value, true);
                });
            }
            _ => self.quick().push(value, front),
        }
    }

    /// Pushes each of `values` at the head in turn, as `LPUSH key v1 v2 …`
    /// (so the last one ends up first). A small list grows in one step.
    pub fn push_front_all<T: AsRef<[u8]>>(&mut self, values: &[T]) {
        self.push_all(values, true);
    }

    /// Pushes each of `values` at the tail in turn, as `RPUSH key v1 v2 …`.
    pub fn push_back_all<T: AsRef<[u8]>>(&mut self, values: &[T]) {
        self.push_all(values, false);
    }

    fn push_all<T: AsRef<[u8]>>(&mut self, values: &[T], front: bool) {
        let extra: usize = values.iter().map(|v| entry_len(v.as_ref().len())).sum();
        let fits =
            matches!(&self.0, Repr::Packed { buf, .. } if buf.len() + extra <= NODE_MAX_BYTES);
        if !fits {
            for value in values {
                self.push(value.as_ref(), front);
            }
            return;
        }
        self.edit_packed(|node| {
            let mut buf = Vec::with_capacity(node.buf.len() + extra);
            let append = |buf: &mut Vec<u8>, value: &[u8]| {
                let at = buf.len();
                buf.resize(at + entry_len(value.len()), 0);
                write_entry(&mut buf[at..], value);
            };
            if front {
                for value in values.iter().rev() {
                    append(&mut buf, value.as_ref());
                }
                buf.extend_from_slice(&node.buf);
            } else {
                buf.extend_from_slice(&node.buf);
                for value in values {
                    append(&mut buf, value.as_ref());
                }
            }
            node.buf = buf;
            node.count += values.len() as u32;
        });
    }

    /// Removes and returns the head element (LPOP).
    pub fn pop_front(&mut self) -> Option<Bytes> {
        self.pop_front_many(1).pop()
    }

    /// Removes and returns the tail element (RPOP).
    pub fn pop_back(&mut self) -> Option<Bytes> {
        self.pop_back_many(1).pop()
    }

    /// Removes and returns up to `n` elements from the head, head first
    /// (`LPOP key count`).
    pub fn pop_front_many(&mut self, n: usize) -> Vec<Bytes> {
        self.take(n, true, true)
    }

    /// Removes and returns up to `n` elements from the tail, tail first
    /// (`RPOP key count`).
    pub fn pop_back_many(&mut self, n: usize) -> Vec<Bytes> {
        self.take(n, false, true)
    }

    fn take(&mut self, n: usize, front: bool, collect: bool) -> Vec<Bytes> {
        let n = n.min(self.len());
        if n == 0 {
            return Vec::new();
        }
        match &mut self.0 {
            Repr::Packed { .. } => self.edit_packed(|node| {
                if front {
                    node.take_front(n, collect)
                } else {
                    node.take_back(n, collect)
                }
            }),
            Repr::Quick(q) => q.take(n, front, collect),
        }
    }

    /// Position of element `index` (Redis's: negative counts from the tail),
    /// or `None` out of range.
    fn resolve(&self, index: i64) -> Option<usize> {
        let len = self.len() as i64;
        let index = if index < 0 { len + index } else { index };
        (0..len).contains(&index).then_some(index as usize)
    }

    /// (node, entry offset) of element `index` (< len).
    fn locate(&self, index: usize) -> (usize, usize) {
        match &self.0 {
            Repr::Packed { buf, count } => {
                let node = NodeRef { buf, count: *count };
                (0, node.offset_of(index))
            }
            Repr::Quick(q) => {
                let (i, k) = q.locate(index);
                (i, q.nodes[i].view().offset_of(k))
            }
        }
    }

    /// The element at `index` (LINDEX; negative counts from the tail).
    pub fn get(&self, index: i64) -> Option<&[u8]> {
        let index = self.resolve(index)?;
        let (i, offset) = self.locate(index);
        Some(element_at(self.node_buf(i), offset))
    }

    /// Replaces the element at `index` (LSET); false if out of range.
    pub fn set(&mut self, index: i64, value: &[u8]) -> bool {
        let Some(index) = self.resolve(index) else {
            return false;
        };
        let (i, start) = self.locate(index);
        let end = entry_at(self.node_buf(i), start).2;
        self.edit_node(i, |node, exact| node.replace(start, end, value, exact));
        true
    }

    /// Runs `f` on node `i` (with its growth policy), then restores the
    /// node bounds around it.
    fn edit_node<R>(&mut self, i: usize, f: impl FnOnce(&mut Node, bool) -> R) -> R {
        match &mut self.0 {
            Repr::Packed { .. } => self.edit_packed(|node| f(node, true)),
            Repr::Quick(q) => {
                let result = q.edit(i, |node| f(node, false));
                q.settle(i);
                result
            }
        }
    }

    /// Inserts `value` before (or `after`) the first element equal to
    /// `pivot` (LINSERT); the new length, or `None` if `pivot` is absent.
    pub fn insert(&mut self, pivot: &[u8], value: &[u8], after: bool) -> Option<usize> {
        let (i, (start, end)) = (0..self.node_count()).find_map(|i| {
            let buf = self.node_buf(i);
            NodeRef { buf, count: 0 }.find(pivot).map(|span| (i, span))
        })?;
        let at = if after { end } else { start };
        self.edit_node(i, |node, exact| node.insert(at, value, exact));
        Some(self.len())
    }

    /// Removes elements equal to `value` (LREM): the first `count` if
    /// positive, the last `-count` if negative, all if zero. Returns how
    /// many were removed.
    pub fn remove(&mut self, value: &[u8], count: i64) -> usize {
        let from_back = count < 0;
        let mut limit = if count == 0 {
            usize::MAX
        } else {
            usize::try_from(count.unsigned_abs()).unwrap_or(usize::MAX)
        };
        match &mut self.0 {
            Repr::Packed { .. } => {
                self.edit_packed(|node| node.remove_matches(value, limit, from_back))
            }
            Repr::Quick(q) => {
                let mut removed = 0;
                let n = q.nodes.len();
                for k in 0..n {
                    if limit == 0 {
                        break;
                    }
                    let i = if from_back { n - 1 - k } else { k };
                    let r = q.edit(i, |node| node.remove_matches(value, limit, from_back));
                    removed += r;
                    limit -= r;
                }
                if removed > 0 {
                    q.tidy();
                }
                removed
            }
        }
    }

    /// Keeps only the elements from `start` to `stop` inclusive (LTRIM, with
    /// its negative indexes and clamping; an empty range empties the list).
    pub fn trim(&mut self, start: i64, stop: i64) {
        let len = self.len();
        let (head, tail) = match clamp_range(start, stop, len) {
            Some((from, to)) => (from, len - to - 1),
            None => (len, 0),
        };
        self.take(head, true, false);
        self.take(tail, false, false);
    }

    /// Every element, head to tail (double-ended).
    pub fn iter(&self) -> Iter<'_> {
        self.iter_between(0, self.len())
    }

    /// The elements from `start` to `stop` inclusive (LRANGE, with its
    /// negative indexes and clamping).
    pub fn range(&self, start: i64, stop: i64) -> Iter<'_> {
        match clamp_range(start, stop, self.len()) {
            Some((from, to)) => self.iter_between(from, to + 1),
            None => self.iter_between(0, 0),
        }
    }

    /// Elements `from..to` (positions, `from <= to <= len`).
    fn iter_between(&self, from: usize, to: usize) -> Iter<'_> {
        if from == to {
            return Iter {
                list: self,
                front: (0, 0),
                back: (0, 0),
                remaining: 0,
            };
        }
        let front = self.locate(from);
        let (i, last) = self.locate(to - 1);
        let back = (i, entry_at(self.node_buf(i), last).2);
        Iter {
            list: self,
            front,
            back,
            remaining: to - from,
        }
    }

    /// LPOS: positions (from the head) of elements equal to `value`.
    /// `rank` (non-zero) skips the first `|rank| - 1` matches, searching
    /// from the tail when negative; `count` is the most positions returned
    /// (0: all); `maxlen` the most elements compared (0: all).
    pub fn positions(&self, value: &[u8], rank: i64, count: usize, maxlen: usize) -> Vec<usize> {
        let skip = rank.unsigned_abs().saturating_sub(1);
        let len = self.len();
        let scanned = if maxlen == 0 { len } else { maxlen.min(len) };
        let mut out = Vec::new();
        let mut matches: u64 = 0;
        let mut visit = |index: usize, element: &[u8]| {
            if element == value {
                matches += 1;
                if matches > skip {
                    out.push(index);
                    if out.len() == count {
                        return false;
                    }
                }
            }
            true
        };
        if rank < 0 {
            for (k, element) in self.iter().rev().take(scanned).enumerate() {
                if !visit(len - 1 - k, element) {
                    break;
                }
            }
        } else {
            for (k, element) in self.iter().take(scanned).enumerate() {
                if !visit(k, element) {
                    break;
                }
            }
        }
        out
    }
}

/// Redis's LRANGE/LTRIM index rules: negative indexes count from the tail,
/// `start` is clamped to 0 and `stop` to the last element; `None` when the
/// range is empty.
fn clamp_range(start: i64, stop: i64, len: usize) -> Option<(usize, usize)> {
    let len = len as i64;
    let start = if start < 0 {
        (len + start).max(0)
    } else {
        start
    };
    let stop = if stop < 0 { len + stop } else { stop };
    if start > stop || start >= len {
        return None;
    }
    Some((start as usize, stop.min(len - 1) as usize))
}

/// A read-only view of a node's buffer (the packed form's buffer is not a
/// [`Node`]).
struct NodeRef<'a> {
    buf: &'a [u8],
    count: u32,
}

impl NodeRef<'_> {
    fn offset_of(&self, index: usize) -> usize {
        let count = self.count as usize;
        if index <= count / 2 {
            let mut p = 0;
            for _ in 0..index {
                p = entry_at(self.buf, p).2;
            }
            p
        } else {
            let mut p = self.buf.len();
            for _ in index..count {
                p = entry_before(self.buf, p);
            }
            p
        }
    }

    fn find(&self, value: &[u8]) -> Option<(usize, usize)> {
        let mut p = 0;
        while p < self.buf.len() {
            let (start, end, next) = entry_at(self.buf, p);
            if &self.buf[start..end] == value {
                return Some((p, next));
            }
            p = next;
        }
        None
    }
}

/// Iterator over a list's elements (see [`List::iter`], [`List::range`]).
pub struct Iter<'a> {
    list: &'a List,
    /// (node, offset) of the next element from the front.
    front: (usize, usize),
    /// (node, end offset) of the next element from the back.
    back: (usize, usize),
    remaining: usize,
}

impl<'a> Iterator for Iter<'a> {
    type Item = &'a [u8];

    fn next(&mut self) -> Option<&'a [u8]> {
        if self.remaining == 0 {
            return None;
        }
        let (mut i, mut offset) = self.front;
        let mut buf = self.list.node_buf(i);
        while offset >= buf.len() {
            i += 1;
            offset = 0;
            buf = self.list.node_buf(i);
        }
        let (start, end, next) = entry_at(buf, offset);
        self.front = (i, next);
        self.remaining -= 1;
        Some(&buf[start..end])
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        (self.remaining, Some(self.remaining))
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        if self.remaining == 0 {
            return None;
        }
        let (mut i, mut end) = self.back;
        while end == 0 {
            i -= 1;
            end = self.list.node_buf(i).len();
        }
        let buf = self.list.node_buf(i);
        let start = entry_before(buf, end);
        self.back = (i, start);
        self.remaining -= 1;
        Some(element_at(buf, start))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl<T: AsRef<[u8]>> FromIterator<T> for List {
    fn from_iter<I: IntoIterator<Item = T>>(items: I) -> List {
        let mut list = List::new();
        for item in items {
            list.push_back(item.as_ref());
        }
        list
    }
}

impl PartialEq for List {
    fn eq(&self, other: &List) -> bool {
        self.len() == other.len() && self.iter().eq(other.iter())
    }
}

impl Eq for List {}

impl fmt::Debug for List {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        struct Element<'a>(&'a [u8]);
        impl fmt::Debug for Element<'_> {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "b\"{}\"", self.0.escape_ascii())
            }
        }
        f.debug_list().entries(self.iter().map(Element)).finish()
    }
}

/// Serialized as the sequence of its elements (byte strings), so the
/// snapshot format does not depend on the node layout.
impl Serialize for List {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Element<'a>(&'a [u8]);
        impl Serialize for Element<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_bytes(self.0)
            }
        }
        serializer.collect_seq(self.iter().map(Element))
    }
}

impl<'de> Deserialize<'de> for List {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<List, D::Error> {
        /// Pushes one deserialized element at the tail, without an
        /// intermediate buffer when the input can lend its bytes.
        struct PushBack<'a>(&'a mut List);
        impl<'de> DeserializeSeed<'de> for PushBack<'_> {
            type Value = ();
            fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
                deserializer.deserialize_bytes(self)
            }
        }
        impl Visitor<'_> for PushBack<'_> {
            type Value = ();
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list element (bytes)")
            }
            fn visit_bytes<E: serde::de::Error>(self, bytes: &[u8]) -> Result<(), E> {
                self.0.push_back(bytes);
                Ok(())
            }
        }
        struct Elements;
        impl<'de> Visitor<'de> for Elements {
            type Value = List;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sequence of list elements")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<List, A::Error> {
                let mut list = List::new();
                while seq.next_element_seed(PushBack(&mut list))?.is_some() {}
                Ok(list)
            }
        }
        deserializer.deserialize_seq(Elements)
    }
}

#[cfg(test)]
impl List {
    /// Panics unless the layout invariants of the module docs hold.
    fn check_invariants(&self) {
        fn check_node(buf: &[u8], count: u32) {
            let mut p = 0;
            let mut seen = 0;
            while p < buf.len() {
                let (_, _, next) = entry_at(buf, p);
                assert_eq!(
                    entry_before(buf, next),
                    p,
                    "backward length of entry at {p}"
                );
                p = next;
                seen += 1;
            }
            assert_eq!(p, buf.len(), "entries end exactly at the node end");
            assert_eq!(seen, count, "node count");
            assert!(
                buf.len() <= NODE_MAX_BYTES || count <= 1,
                "node over the bound"
            );
        }
        match &self.0 {
            Repr::Packed { buf, count } => check_node(buf, *count),
            Repr::Quick(q) => {
                for node in &q.nodes {
                    assert!(node.count > 0, "empty node in the deque");
                    check_node(&node.buf, node.count);
                }
                let len: usize = q.nodes.iter().map(|n| n.count as usize).sum();
                let bytes: usize = q.nodes.iter().map(|n| n.buf.len()).sum();
                assert_eq!((q.len, q.bytes), (len, bytes), "cached length and bytes");
            }
        }
    }

    /// Number of nodes and whether the list is in the deque form.
    fn layout(&self) -> (usize, bool) {
        (self.node_count(), matches!(self.0, Repr::Quick(_)))
    }
}

#[cfg(test)]
mod tests;
