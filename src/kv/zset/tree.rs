//! The `skiplist` encoding's structure: members in an arena with a hash index
//! by member, ordered by a B+ tree of `(score, member id)` entries that counts
//! the members under each child, so rank, the n-th member and the start of a
//! score or lex range are each one descent.
//!
//! Why a B+ tree: the treap it replaced visited about 2 ln n nodes per walk,
//! each one a cache miss once the set outgrew the caches (about 46 misses
//! for a ZADD that moves a member of a 100,000-member set, 35% of a
//! follower's CPU under redis-benchmark's ZADD). Here a walk visits one node
//! per level (four levels for 100,000 members at [`FANOUT`] 32), and the
//! upper levels stay in cache; a leaf keeps its entries' scores side by side,
//! so its binary search reads a few cache lines and follows a member only
//! when two scores tie.
//!
//! Layout:
//! - `members`: a [`ChunkVec`] of [`Member`] (score and bytes); a member's id
//!   is its slot and never changes while it is in the set. Free slots are
//!   linked through their `score`'s bits (see [`Tree::alloc_member`]).
//! - `nodes`: a [`ChunkVec`] of [`Node`], leaves and inner nodes alike. A
//!   leaf's entries are `(scores[i], ids[i])`; an inner node's are its
//!   children `kids[i]`, each with the member count under it `counts[i]` and
//!   its first entry `(scores[i], ids[i])`. Every leaf is `height - 1` levels
//!   below the root.
//! - `index`: `(member id, 32-bit hash)` pairs keyed by member (as
//!   `keymap`'s index), so ZSCORE and ZADD find a member in O(1).
//!
//! Invariants (checked by the tests' `check_tree` after every operation):
//! entries ascend by `(score, member bytes)` across the leaves; an inner
//! node's `counts[i]` is the number of entries under `kids[i]` and
//! `(scores[i], ids[i])` that child's first entry; every node but the root
//! has at least one entry and at most [`FANOUT`]; the index holds exactly
//! one pair per live member. A removal that leaves a node below [`MIN_FILL`]
//! refills or merges it, so removals keep the leaves at least a quarter full
//! on average (a test checks it); a leaf split by an append at its end
//! starts its new neighbour with one entry, which later inserts fill.
//!
//! The tree's shape is a function of the operations applied (no randomness),
//! though nothing visible depends on it: every query answers by order and
//! rank alone. Both arenas are chunked so a snapshot's copy shares them and
//! a write copies only the chunks it touches.

use std::cmp::Ordering;
use std::collections::hash_map::RandomState;
use std::fmt;

use hashbrown::HashTable;

use crate::kv::chunked::ChunkVec;
use crate::kv::keymap::{key_hash, spread};

use super::partition_point;

/// No node, no member.
pub(super) const NIL: u32 = u32::MAX;
/// Most entries in a leaf, children under an inner node.
const FANOUT: usize = 32;
/// A node left with fewer entries by a removal takes some from a neighbour
/// or merges with it.
pub(super) const MIN_FILL: usize = FANOUT / 4;

/// One member: its score and bytes.
#[derive(Clone, Debug, Default)]
pub(super) struct Member {
    pub(super) score: f64,
    pub(super) member: Box<[u8]>,
}

/// A leaf or an inner node (see the module docs); a leaf leaves `kids` and
/// `counts` unused.
#[derive(Clone)]
struct Node {
    len: u32,
    scores: [f64; FANOUT],
    ids: [u32; FANOUT],
    kids: [u32; FANOUT],
    counts: [u32; FANOUT],
}

impl Default for Node {
    fn default() -> Node {
        Node {
            len: 0,
            scores: [0.0; FANOUT],
            ids: [NIL; FANOUT],
            kids: [NIL; FANOUT],
            counts: [0; FANOUT],
        }
    }
}

/// An entry being placed: its key and the member it names.
#[derive(Clone, Copy)]
struct Entry {
    score: f64,
    id: u32,
    kid: u32,
    count: u32,
}

impl Node {
    fn len(&self) -> usize {
        self.len as usize
    }

    fn entry(&self, i: usize) -> Entry {
        Entry {
            score: self.scores[i],
            id: self.ids[i],
            kid: self.kids[i],
            count: self.counts[i],
        }
    }

    fn set(&mut self, i: usize, e: Entry) {
        self.scores[i] = e.score;
        self.ids[i] = e.id;
        self.kids[i] = e.kid;
        self.counts[i] = e.count;
    }

    /// Puts `e` at `at`, moving the entries from there one place up; the
    /// node must have room.
    fn insert(&mut self, at: usize, e: Entry) {
        let len = self.len();
        self.scores.copy_within(at..len, at + 1);
        self.ids.copy_within(at..len, at + 1);
        self.kids.copy_within(at..len, at + 1);
        self.counts.copy_within(at..len, at + 1);
        self.set(at, e);
        self.len += 1;
    }

    /// Removes the entry at `at`, moving the later ones down.
    fn remove(&mut self, at: usize) {
        let len = self.len();
        self.scores.copy_within(at + 1..len, at);
        self.ids.copy_within(at + 1..len, at);
        self.kids.copy_within(at + 1..len, at);
        self.counts.copy_within(at + 1..len, at);
        self.len -= 1;
    }

    /// Moves the entries from `at` on into a new node.
    fn split_off(&mut self, at: usize) -> Node {
        let mut right = Node::default();
        for i in at..self.len() {
            right.set(i - at, self.entry(i));
        }
        right.len = self.len - at as u32;
        self.len = at as u32;
        right
    }

    /// Appends `other`'s entries; they must fit.
    fn append(&mut self, other: &Node) {
        for i in 0..other.len() {
            let at = self.len();
            self.set(at, other.entry(i));
            self.len += 1;
        }
    }

    /// Members under this node: its entries for a leaf, its children's
    /// counts for an inner node.
    fn members(&self, leaf: bool) -> u32 {
        if leaf {
            self.len
        } else {
            self.counts[..self.len()].iter().sum()
        }
    }
}

/// A new child to the right of the one an insertion went into.
struct Split {
    node: u32,
    first: Entry,
    count: u32,
}

/// The key looked for: a score and member bytes, and the member's id when it
/// is in the tree (an entry with that id is the key itself, found without
/// reading its member).
#[derive(Clone, Copy)]
struct Probe<'m> {
    score: f64,
    member: &'m [u8],
    id: u32,
}

/// See the module docs.
#[derive(Clone)]
pub(super) struct Tree {
    members: ChunkVec<Member>,
    /// Head of the free member slots.
    free_member: u32,
    nodes: ChunkVec<Node>,
    free_nodes: Vec<u32>,
    root: u32,
    /// Levels: 0 when empty, 1 when the root is a leaf.
    height: u32,
    len: usize,
    /// Member ids with their member's 32-bit hash (`keymap::key_hash`), so
    /// growing the index never re-reads a member.
    pub(super) index: HashTable<(u32, u32)>,
    hasher: RandomState,
    /// Sum over members of their allocation size (see [`alloc_bytes`]).
    pub(super) member_alloc_bytes: u64,
}

impl fmt::Debug for Tree {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Tree")
            .field("len", &self.len)
            .field("height", &self.height)
            .finish_non_exhaustive()
    }
}

/// The heap bytes a member's own allocation takes (rounded up to 8, as the
/// allocator's small size classes).
pub(super) fn alloc_bytes(len: usize) -> u64 {
    if len == 0 {
        0
    } else {
        (len as u64).div_ceil(8) * 8
    }
}

impl Tree {
    pub(super) fn new() -> Tree {
        Tree {
            members: ChunkVec::new(),
            free_member: NIL,
            nodes: ChunkVec::new(),
            free_nodes: Vec::new(),
            root: NIL,
            height: 0,
            len: 0,
            index: HashTable::new(),
            hasher: RandomState::new(),
            member_alloc_bytes: 0,
        }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    /// Makes room for `additional` more members.
    pub(super) fn reserve(&mut self, additional: usize) {
        self.members.reserve(additional);
    }

    /// The member with id `id`.
    pub(super) fn member(&self, id: u32) -> &Member {
        &self.members[id as usize]
    }

    fn hash(&self, member: &[u8]) -> u32 {
        key_hash(&self.hasher, member)
    }

    /// The id of `member`, if present.
    pub(super) fn find(&self, member: &[u8]) -> Option<u32> {
        let hash = self.hash(member);
        self.index
            .find(spread(hash), |&(id, h)| {
                h == hash && &*self.members[id as usize].member == member
            })
            .map(|&(id, _)| id)
    }

    /// Orders the entry `(score, id)` against the probe.
    fn cmp_entry(&self, score: f64, id: u32, p: Probe<'_>) -> Ordering {
        if id == p.id {
            return Ordering::Equal;
        }
        match score.partial_cmp(&p.score) {
            Some(Ordering::Equal) | None => self.members[id as usize].member[..].cmp(p.member),
            Some(order) => order,
        }
    }

    /// How many of `node`'s entries are below the probe.
    fn below(&self, node: u32, p: Probe<'_>) -> usize {
        let n = &self.nodes[node as usize];
        partition_point(n.len(), |i| {
            self.cmp_entry(n.scores[i], n.ids[i], p) == Ordering::Less
        })
    }

    fn first(&self, node: u32) -> Entry {
        self.nodes[node as usize].entry(0)
    }

    fn alloc_node(&mut self, node: Node) -> u32 {
        if let Some(id) = self.free_nodes.pop() {
            self.nodes[id as usize] = node;
            id
        } else {
            let id = u32::try_from(self.nodes.len()).expect("fewer than 2^32 tree nodes");
            self.nodes.push(node);
            id
        }
    }

    fn free_node(&mut self, id: u32) {
        self.nodes[id as usize].len = 0;
        self.free_nodes.push(id);
    }

    /// A slot for a new member: the head of the free list (a free slot's
    /// score holds the next free slot's id in its bits) or a new one.
    fn alloc_member(&mut self, m: Member) -> u32 {
        if self.free_member == NIL {
            let id = u32::try_from(self.members.len()).expect("fewer than 2^32 members");
            self.members.push(m);
            id
        } else {
            let id = self.free_member;
            self.free_member = self.members[id as usize].score.to_bits() as u32;
            self.members[id as usize] = m;
            id
        }
    }

    /// Adds a member known to be absent.
    pub(super) fn insert(&mut self, member: &[u8], score: f64) {
        let hash = self.hash(member);
        let id = self.alloc_member(Member {
            score,
            member: member.into(),
        });
        self.member_alloc_bytes += alloc_bytes(member.len());
        self.index
            .insert_unique(spread(hash), (id, hash), |&(_, h)| spread(h));
        self.link(Probe { score, member, id });
    }

    /// Places the entry of member `p.id` (not in the tree) in order.
    fn link(&mut self, p: Probe<'_>) {
        let e = Entry {
            score: p.score,
            id: p.id,
            kid: NIL,
            count: 0,
        };
        if self.root == NIL {
            let mut leaf = Node::default();
            leaf.insert(0, e);
            self.root = self.alloc_node(leaf);
            self.height = 1;
            self.len = 1;
            return;
        }
        let split = self.insert_at(self.root, self.height - 1, p, e);
        self.len += 1;
        if let Some(s) = split {
            let old = self.root;
            let mut root = Node::default();
            root.insert(
                0,
                Entry {
                    kid: old,
                    count: self.len as u32 - s.count,
                    ..self.first(old)
                },
            );
            root.insert(
                1,
                Entry {
                    kid: s.node,
                    count: s.count,
                    ..s.first
                },
            );
            self.root = self.alloc_node(root);
            self.height += 1;
        }
    }

    /// Inserts `e` into the subtree `node`, `levels` above the leaves; a
    /// node that was full splits, and the new right half is returned.
    fn insert_at(&mut self, node: u32, levels: u32, p: Probe<'_>, e: Entry) -> Option<Split> {
        let at = self.below(node, p);
        if levels == 0 {
            return self.put(node, at, e, true);
        }
        // The child whose first entry is the last one below the key; the
        // first child when the key is below them all (it becomes its first).
        let i = at.saturating_sub(1);
        let kid = self.nodes[node as usize].kids[i];
        let split = self.insert_at(kid, levels - 1, p, e);
        let n = &mut self.nodes[node as usize];
        n.counts[i] += 1;
        if at == 0 {
            n.scores[0] = e.score;
            n.ids[0] = e.id;
        }
        let s = split?;
        n.counts[i] -= s.count;
        self.put(
            node,
            i + 1,
            Entry {
                kid: s.node,
                count: s.count,
                ..s.first
            },
            false,
        )
    }

    /// Puts `e` at position `at` of `node`, splitting it if full. A leaf
    /// appended to at its end keeps its entries and starts a new right
    /// neighbour (so members added in order fill their leaves); otherwise
    /// the halves are even.
    fn put(&mut self, node: u32, at: usize, e: Entry, leaf: bool) -> Option<Split> {
        let n = &mut self.nodes[node as usize];
        if n.len() < FANOUT {
            n.insert(at, e);
            return None;
        }
        let appended = leaf && at == FANOUT;
        let mut right = if appended {
            Node::default()
        } else {
            n.split_off(FANOUT / 2)
        };
        if !appended && at <= n.len() {
            n.insert(at, e);
        } else {
            right.insert(at - n.len(), e);
        }
        let count = right.members(leaf);
        let first = right.entry(0);
        let node = self.alloc_node(right);
        Some(Split { node, first, count })
    }

    /// Takes the entry of member `p.id` out of the tree.
    fn unlink(&mut self, p: Probe<'_>) {
        if self.root == NIL {
            return;
        }
        self.remove_at(self.root, self.height - 1, p);
        self.len -= 1;
        // A root left with one child hands over to it; an empty one goes.
        while self.root != NIL {
            let n = &self.nodes[self.root as usize];
            if self.height == 1 {
                if n.len == 0 {
                    self.free_node(self.root);
                    self.root = NIL;
                    self.height = 0;
                }
                break;
            }
            if n.len != 1 {
                break;
            }
            let kid = n.kids[0];
            self.free_node(self.root);
            self.root = kid;
            self.height -= 1;
        }
    }

    /// Removes the probe's entry from the subtree `node`, `levels` above the
    /// leaves, and refills any child a removal left below [`MIN_FILL`].
    fn remove_at(&mut self, node: u32, levels: u32, p: Probe<'_>) {
        let below = self.below(node, p);
        let n = &self.nodes[node as usize];
        // The probe's own position, when a node's first entry is the probe.
        let here = below < n.len() && n.ids[below] == p.id;
        if levels == 0 {
            debug_assert!(here, "the entry is in its leaf");
            if here {
                self.nodes[node as usize].remove(below);
            }
            return;
        }
        let i = if here { below } else { below.saturating_sub(1) };
        let kid = n.kids[i];
        self.remove_at(kid, levels - 1, p);
        let kid_len = self.nodes[kid as usize].len();
        let first = (kid_len > 0).then(|| self.first(kid));
        let n = &mut self.nodes[node as usize];
        n.counts[i] -= 1;
        if let Some(f) = first {
            n.scores[i] = f.score;
            n.ids[i] = f.id;
        }
        if kid_len < MIN_FILL {
            self.refill(node, i, levels == 1);
        }
    }

    /// Child `i` of `node` is short: merges it with a neighbour when both fit
    /// in one node, else moves entries so the two hold about half each.
    fn refill(&mut self, node: u32, i: usize, leaves: bool) {
        let parent = &self.nodes[node as usize];
        if parent.len() < 2 {
            return;
        }
        let a = if i + 1 < parent.len() { i } else { i - 1 };
        let (ka, kb) = (parent.kids[a], parent.kids[a + 1]);
        let mut left = self.nodes[ka as usize].clone();
        let mut right = self.nodes[kb as usize].clone();
        if left.len() + right.len() <= FANOUT {
            left.append(&right);
            let first = left.entry(0);
            self.nodes[ka as usize] = left;
            self.free_node(kb);
            let p = &mut self.nodes[node as usize];
            p.counts[a] += p.counts[a + 1];
            p.scores[a] = first.score;
            p.ids[a] = first.id;
            p.remove(a + 1);
            return;
        }
        let half = (left.len() + right.len()) / 2;
        if left.len() < half {
            let moved = right.split_off(half - left.len());
            let rest = std::mem::replace(&mut right, moved);
            left.append(&rest);
        } else {
            let mut moved = left.split_off(half);
            moved.append(&right);
            right = moved;
        }
        let (count_a, count_b) = (left.members(leaves), right.members(leaves));
        let (first_a, first_b) = (left.entry(0), right.entry(0));
        self.nodes[ka as usize] = left;
        self.nodes[kb as usize] = right;
        let p = &mut self.nodes[node as usize];
        p.counts[a] = count_a;
        p.counts[a + 1] = count_b;
        p.scores[a] = first_a.score;
        p.ids[a] = first_a.id;
        p.scores[a + 1] = first_b.score;
        p.ids[a + 1] = first_b.id;
    }

    /// Gives member `id` a new score and moves its entry to its place: the
    /// member's slot, buffer and index entry stay.
    pub(super) fn rescore(&mut self, id: u32, score: f64) {
        // The member leaves its slot while the walks compare against it
        // (the probe's own entry is recognised by its id, never read).
        let member = std::mem::take(&mut self.members[id as usize].member);
        let old = self.members[id as usize].score;
        self.unlink(Probe {
            score: old,
            member: &member,
            id,
        });
        self.members[id as usize].score = score;
        self.link(Probe {
            score,
            member: &member,
            id,
        });
        self.members[id as usize].member = member;
    }

    /// Frees member `id`'s slot and drops it from the index (its entry is
    /// already out of the tree).
    fn release(&mut self, id: u32, member: &[u8]) {
        let hash = self.hash(member);
        if let Ok(slot) = self.index.find_entry(spread(hash), |&(i, _)| i == id) {
            slot.remove();
        }
        self.member_alloc_bytes -= alloc_bytes(member.len());
        self.members[id as usize] = Member {
            score: f64::from_bits(u64::from(self.free_member)),
            member: Box::default(),
        };
        self.free_member = id;
    }

    /// Drops the arenas once nothing is live (their free lists would
    /// otherwise keep an emptied set's memory).
    fn reset_if_empty(&mut self) {
        if self.len == 0 {
            self.members = ChunkVec::new();
            self.free_member = NIL;
            self.nodes = ChunkVec::new();
            self.free_nodes = Vec::new();
            self.root = NIL;
            self.height = 0;
        }
    }

    /// Removes member `id`.
    pub(super) fn remove_id(&mut self, id: u32) {
        let member = std::mem::take(&mut self.members[id as usize].member);
        let score = self.members[id as usize].score;
        self.unlink(Probe {
            score,
            member: &member,
            id,
        });
        self.release(id, &member);
        self.reset_if_empty();
    }

    /// Removes ranks `[start, end)`: one removal at a time when they are few,
    /// else by rebuilding the tree from the members that stay.
    pub(super) fn remove_ranks(&mut self, start: usize, end: usize) {
        let end = end.min(self.len);
        if start >= end {
            return;
        }
        let count = end - start;
        if count * 4 <= self.len {
            for _ in 0..count {
                let Some(id) = self.nth(start) else { break };
                self.remove_id(id);
            }
            return;
        }
        let mut kept = Vec::with_capacity(self.len - count);
        let mut gone = Vec::with_capacity(count);
        let mut it = self.iter_from(0, false);
        let mut rank = 0;
        while let Some((score, id)) = it.next_entry() {
            if (start..end).contains(&rank) {
                gone.push(id);
            } else {
                kept.push((score, id));
            }
            rank += 1;
        }
        for id in gone {
            let member = std::mem::take(&mut self.members[id as usize].member);
            self.release(id, &member);
        }
        self.len = kept.len();
        self.build(&kept);
        self.reset_if_empty();
    }

    /// Replaces the tree with one holding `entries` (in order), each level's
    /// nodes as evenly filled as their number allows.
    fn build(&mut self, entries: &[(f64, u32)]) {
        self.nodes = ChunkVec::new();
        self.free_nodes = Vec::new();
        self.root = NIL;
        self.height = 0;
        if entries.is_empty() {
            return;
        }
        let mut level: Vec<Entry> = entries
            .iter()
            .map(|&(score, id)| Entry {
                score,
                id,
                kid: NIL,
                count: 1,
            })
            .collect();
        let mut leaves = true;
        loop {
            let parts = level.len().div_ceil(FANOUT);
            let mut above = Vec::with_capacity(parts);
            let mut from = 0;
            for part in 0..parts {
                let to = level.len() * (part + 1) / parts;
                let mut node = Node::default();
                for e in &level[from..to] {
                    node.insert(node.len(), *e);
                }
                let count = node.members(leaves);
                let first = node.entry(0);
                let id = self.alloc_node(node);
                above.push(Entry {
                    kid: id,
                    count,
                    ..first
                });
                from = to;
            }
            self.height += 1;
            if above.len() == 1 {
                self.root = above[0].kid;
                return;
            }
            level = above;
            leaves = false;
        }
    }

    /// Rank of member `id` (0-based).
    pub(super) fn rank_of(&self, id: u32) -> usize {
        let m = self.member(id);
        let p = Probe {
            score: m.score,
            member: &m.member,
            id,
        };
        self.leading(|score, e| self.cmp_entry(score, e, p) == Ordering::Less)
    }

    /// The number of members for which `below` holds (given each one's score
    /// and id), `below` holding for a prefix of the order: one descent.
    pub(super) fn leading(&self, below: impl Fn(f64, u32) -> bool) -> usize {
        if self.root == NIL {
            return 0;
        }
        let mut count = 0;
        let mut node = self.root;
        for _ in 1..self.height {
            let n = &self.nodes[node as usize];
            let c = partition_point(n.len(), |i| below(n.scores[i], n.ids[i]));
            if c == 0 {
                return count;
            }
            count += n.counts[..c - 1].iter().map(|&x| x as usize).sum::<usize>();
            node = n.kids[c - 1];
        }
        let n = &self.nodes[node as usize];
        count + partition_point(n.len(), |i| below(n.scores[i], n.ids[i]))
    }

    /// The member at `rank`.
    pub(super) fn nth(&self, rank: usize) -> Option<u32> {
        if rank >= self.len {
            return None;
        }
        let (mut node, mut rank) = (self.root, rank);
        for _ in 1..self.height {
            let (i, below) = self.child_at(node, rank);
            rank -= below;
            node = self.nodes[node as usize].kids[i];
        }
        let n = &self.nodes[node as usize];
        Some(n.ids[rank.min(n.len().saturating_sub(1))])
    }

    /// The child of inner node `node` that holds its `rank`-th member, and
    /// the members under the children before it.
    fn child_at(&self, node: u32, rank: usize) -> (usize, usize) {
        let n = &self.nodes[node as usize];
        let (mut i, mut below) = (0, 0);
        while i + 1 < n.len() && rank >= below + n.counts[i] as usize {
            below += n.counts[i] as usize;
            i += 1;
        }
        (i, below)
    }

    /// Where `rank` is.
    fn descend(&self, mut rank: usize) -> Option<Place> {
        if rank >= self.len {
            return None;
        }
        let mut path = Vec::with_capacity(self.height as usize);
        let mut node = self.root;
        for _ in 1..self.height {
            let (i, below) = self.child_at(node, rank);
            rank -= below;
            path.push((node, i));
            node = self.nodes[node as usize].kids[i];
        }
        let pos = rank.min(self.nodes[node as usize].len().saturating_sub(1));
        Some(Place {
            leaf: node,
            pos,
            path,
        })
    }

    /// Walks from `rank` upwards (or downwards when `rev`); nothing when
    /// `rank` is out of range.
    pub(super) fn iter_from(&self, rank: usize, rev: bool) -> TreeIter<'_> {
        match self.descend(rank) {
            Some(Place { leaf, pos, path }) => TreeIter {
                tree: self,
                path,
                leaf,
                pos,
                left: if rev { rank + 1 } else { self.len - rank },
                rev,
            },
            None => TreeIter {
                tree: self,
                path: Vec::new(),
                leaf: NIL,
                pos: 0,
                left: 0,
                rev,
            },
        }
    }
}

/// A rank's leaf and position in it, with the inner nodes passed on the way
/// down and the child taken in each.
struct Place {
    leaf: u32,
    pos: usize,
    path: Vec<(u32, usize)>,
}

/// Members in order from a rank (see [`Tree::iter_from`]).
pub(super) struct TreeIter<'a> {
    tree: &'a Tree,
    /// The inner nodes above `leaf`, each with the child taken.
    pub(super) path: Vec<(u32, usize)>,
    leaf: u32,
    pos: usize,
    /// Entries still to give.
    left: usize,
    rev: bool,
}

impl TreeIter<'_> {
    /// The next entry as `(score, member id)`.
    fn next_entry(&mut self) -> Option<(f64, u32)> {
        if self.left == 0 {
            return None;
        }
        let n = &self.tree.nodes[self.leaf as usize];
        let entry = (n.scores[self.pos], n.ids[self.pos]);
        self.left -= 1;
        if self.left > 0 {
            self.step();
        }
        Some(entry)
    }

    /// Moves to the next position, across to a neighbouring leaf when this
    /// one is done.
    fn step(&mut self) {
        let nodes = &self.tree.nodes;
        if !self.rev && self.pos + 1 < nodes[self.leaf as usize].len() {
            self.pos += 1;
            return;
        }
        if self.rev && self.pos > 0 {
            self.pos -= 1;
            return;
        }
        // Up to the nearest inner node with a child left on this side, then
        // down that child's near edge.
        let depth = self.path.len();
        while let Some((node, i)) = self.path.pop() {
            let n = &nodes[node as usize];
            let next = if self.rev {
                i.checked_sub(1)
            } else {
                (i + 1 < n.len()).then_some(i + 1)
            };
            let Some(next) = next else { continue };
            self.path.push((node, next));
            let mut cur = n.kids[next];
            while self.path.len() < depth {
                let c = &nodes[cur as usize];
                let edge = if self.rev { c.len() - 1 } else { 0 };
                self.path.push((cur, edge));
                cur = c.kids[edge];
            }
            self.leaf = cur;
            let len = nodes[cur as usize].len();
            self.pos = if self.rev { len - 1 } else { 0 };
            return;
        }
        self.left = 0;
    }
}

impl<'a> Iterator for TreeIter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        let (score, id) = self.next_entry()?;
        let tree: &'a Tree = self.tree;
        Some((&tree.member(id).member, score))
    }
}

#[cfg(test)]
impl Tree {
    /// Checks the module's invariants; returns the members in order.
    pub(super) fn check_tree(&self) -> Vec<(Vec<u8>, f64)> {
        let mut out = Vec::new();
        if self.root == NIL {
            assert_eq!(self.len, 0);
            assert_eq!(self.height, 0);
        } else {
            let count = self.check_node(self.root, self.height - 1, true, &mut out);
            assert_eq!(count, self.len, "root count");
        }
        assert_eq!(out.len(), self.len);
        for w in out.windows(2) {
            assert_eq!(
                super::cmp_key(w[0].1, &w[0].0, w[1].1, &w[1].0),
                Ordering::Less,
                "order"
            );
        }
        assert_eq!(self.index.len(), self.len, "index size");
        for (m, s) in &out {
            let id = self.find(m).expect("indexed");
            assert_eq!(self.member(id).score.to_bits(), s.to_bits(), "score");
        }
        out
    }

    fn check_node(
        &self,
        node: u32,
        levels: u32,
        root: bool,
        out: &mut Vec<(Vec<u8>, f64)>,
    ) -> usize {
        let n = &self.nodes[node as usize];
        assert!(n.len() <= FANOUT);
        assert!(n.len() >= 1, "an empty node");
        if root && levels > 0 {
            assert!(n.len() >= 2, "a root with one child");
        }
        if levels == 0 {
            for i in 0..n.len() {
                let m = self.member(n.ids[i]);
                assert_eq!(m.score.to_bits(), n.scores[i].to_bits(), "leaf score");
                out.push((m.member.to_vec(), n.scores[i]));
            }
            return n.len();
        }
        let mut total = 0;
        for i in 0..n.len() {
            let kid = n.kids[i];
            let f = self.first(kid);
            assert_eq!((f.score.to_bits(), f.id), (n.scores[i].to_bits(), n.ids[i]));
            let count = self.check_node(kid, levels - 1, false, out);
            assert_eq!(count, n.counts[i] as usize, "count of child {i}");
            total += count;
        }
        total
    }

    /// Number of leaves.
    pub(super) fn leaves(&self) -> usize {
        let mut level = if self.root == NIL {
            vec![]
        } else {
            vec![self.root]
        };
        for _ in 1..self.height {
            level = level
                .iter()
                .flat_map(|&n| {
                    let n = &self.nodes[n as usize];
                    n.kids[..n.len()].to_vec()
                })
                .collect();
        }
        level.len()
    }

    /// The tree's levels.
    pub(super) fn height(&self) -> u32 {
        self.height
    }

    /// Bytes the arenas hold.
    pub(super) fn arena_bytes(&self) -> usize {
        self.nodes.allocation_size() + self.members.allocation_size()
    }

    /// Live members' byte lengths.
    pub(super) fn member_lens(&self) -> Vec<usize> {
        self.iter_from(0, false).map(|(m, _)| m.len()).collect()
    }
}
