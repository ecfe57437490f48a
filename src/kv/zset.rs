//! The sorted-set value: members with `f64` scores, ordered by (score, member
//! bytes), in Redis 7.0.15's two encodings.
//!
//! - `listpack` ([`Packed`]): one byte buffer of `[len u8][member][score f64
//!   LE]` entries in order, while the set has at most
//!   [`MAX_LISTPACK_ENTRIES`] members, each at most [`MAX_LISTPACK_VALUE`]
//!   bytes. Every operation is a linear walk of at most 128 entries.
//! - `skiplist` ([`Tree`], `zset/tree.rs`): members in a chunked arena with
//!   a hash index by member, ordered by a B+ tree of (score, member id)
//!   entries that counts the members under each child. Score lookup is
//!   O(1); insert, delete, rank and the start of a rank or score range are
//!   O(log n); walking a range is O(1) per member.
//!
//! A set converts from `listpack` to `skiplist` when an insertion would break
//! a threshold, and never back (as Redis); the store commands build a fresh
//! set and may call [`ZSet::convert_to_packed_if_small`], as Redis's
//! `zsetConvertToListpackIfNeeded`.
//!
//! Invariants:
//! - Scores are never NaN. `-0.0` and `0.0` compare equal (the member breaks
//!   the tie), as Redis's `double` comparisons. A `skiplist` keeps `-0.0` as
//!   given; a `listpack` stores it as `0` (Redis stores integral scores as
//!   listpack integers), which ZSCORE and DEBUG DIGEST show.
//! - Nothing visible depends on the per-process hash keys that place members
//!   in the hash table, or on the tree's shape: every query answers the same
//!   whatever the shape (lex ranges on a tree search by rank, see
//!   [`ZSet::lex_span`]). Equality, snapshots and
//!   digests see only the ordered (member, score) sequence and the encoding.
//! - [`ZSet::mem_bytes`] is a function of the contents only (no capacities),
//!   so every replica computes the same `maxmemory` figure; it is O(1).
//!
//! Pure data structure: no I/O, no clock, no command parsing.

use std::cmp::Ordering;
use std::fmt;

use bytes::Bytes;
use serde::de::{SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Redis's `zset-max-listpack-entries`.
pub const MAX_LISTPACK_ENTRIES: usize = 128;
/// Redis's `zset-max-listpack-value` (bytes).
pub const MAX_LISTPACK_VALUE: usize = 64;

/// Formats a score as Redis 7.0 prints doubles (`"%.17g"`; `inf`, `-inf`).
pub fn format_score(score: f64) -> String {
    if score.is_infinite() {
        return if score > 0.0 { "inf" } else { "-inf" }.into();
    }
    if score == 0.0 {
        return if score.is_sign_negative() { "-0" } else { "0" }.into();
    }
    if score.is_nan() {
        return "nan".into();
    }
    // 17 significant digits, correctly rounded; %g picks the style from the
    // exponent after rounding.
    let sci = format!("{score:.16e}");
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if !(-4..17).contains(&exp) {
        let mantissa = trim_fraction(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        let fixed = format!("{score:.*}", (16 - exp) as usize);
        trim_fraction(&fixed).to_string()
    }
}

/// Drops trailing zeros of a fraction, and the point if nothing is left.
fn trim_fraction(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

/// Orders two (score, member) keys as Redis does.
fn cmp_key(a_score: f64, a_member: &[u8], b_score: f64, b_member: &[u8]) -> Ordering {
    match a_score.partial_cmp(&b_score) {
        Some(Ordering::Equal) | None => a_member.cmp(b_member),
        Some(order) => order,
    }
}

/// ZADD's conditions (`NX`, `XX`, `GT`, `LT`, `INCR`). Incompatible
/// combinations are refused by the parser, not here.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AddFlags {
    /// Only add new members.
    pub nx: bool,
    /// Only update existing members.
    pub xx: bool,
    /// Update only if the new score is greater.
    pub gt: bool,
    /// Update only if the new score is less.
    pub lt: bool,
    /// The score is an increment of the current one (0 if absent).
    pub incr: bool,
}

/// What [`ZSet::add`] did (Redis's `zsetAdd` out flags).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum AddOutcome {
    /// A new member, with this score.
    Added(f64),
    /// An existing member's score changed to this.
    Updated(f64),
    /// An existing member kept this score (the new one compared equal).
    Unchanged(f64),
    /// Nothing done: NX on a present member, XX on an absent one, or the
    /// GT/LT condition failed.
    Skipped,
    /// The score (or the incremented score) is NaN; nothing changed.
    NotANumber,
}

/// A score interval (`ZRANGEBYSCORE` min/max: `(` excludes, `±inf` allowed).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ScoreRange {
    /// Lower bound.
    pub min: f64,
    /// True if `min` itself is excluded.
    pub min_exclusive: bool,
    /// Upper bound.
    pub max: f64,
    /// True if `max` itself is excluded.
    pub max_exclusive: bool,
}

impl ScoreRange {
    /// True if `score` is at or above the lower bound (Redis's `zslValueGteMin`).
    pub fn gte_min(&self, score: f64) -> bool {
        if self.min_exclusive {
            score > self.min
        } else {
            score >= self.min
        }
    }

    /// True if `score` is at or below the upper bound (`zslValueLteMax`).
    pub fn lte_max(&self, score: f64) -> bool {
        if self.max_exclusive {
            score < self.max
        } else {
            score <= self.max
        }
    }

    /// True if no score can be inside.
    pub fn is_empty(&self) -> bool {
        self.min > self.max || (self.min == self.max && (self.min_exclusive || self.max_exclusive))
    }
}

/// One end of a lex interval (`-`, `+`, `[member`, `(member`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LexBound {
    /// `-`: below every member.
    NegInf,
    /// `+`: above every member.
    PosInf,
    /// `[member`: the member itself is included.
    Inclusive(Bytes),
    /// `(member`: the member itself is excluded.
    Exclusive(Bytes),
}

impl LexBound {
    fn exclusive(&self) -> bool {
        !matches!(self, LexBound::Inclusive(_))
    }

    /// Redis's `sdscmplex(value, bound)` for a member.
    fn cmp_member(&self, member: &[u8]) -> Ordering {
        match self {
            LexBound::NegInf => Ordering::Greater,
            LexBound::PosInf => Ordering::Less,
            LexBound::Inclusive(b) | LexBound::Exclusive(b) => member.cmp(b),
        }
    }
}

/// A lex interval.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct LexRange {
    /// Lower bound.
    pub min: LexBound,
    /// Upper bound.
    pub max: LexBound,
}

impl LexRange {
    /// `zslLexValueGteMin`.
    pub fn gte_min(&self, member: &[u8]) -> bool {
        let order = self.min.cmp_member(member);
        if self.min.exclusive() {
            order == Ordering::Greater
        } else {
            order != Ordering::Less
        }
    }

    /// `zslLexValueLteMax`.
    pub fn lte_max(&self, member: &[u8]) -> bool {
        let order = self.max.cmp_member(member);
        if self.max.exclusive() {
            order == Ordering::Less
        } else {
            order != Ordering::Greater
        }
    }

    /// True if no member can be inside (min above max, or equal ends with
    /// one excluded), as the check that opens Redis's lex range walks.
    pub fn is_empty(&self) -> bool {
        use LexBound::*;
        let order = match (&self.min, &self.max) {
            (NegInf, NegInf) | (PosInf, PosInf) => Ordering::Equal,
            (NegInf, _) | (_, PosInf) => Ordering::Less,
            (PosInf, _) | (_, NegInf) => Ordering::Greater,
            (Inclusive(a) | Exclusive(a), Inclusive(b) | Exclusive(b)) => a.cmp(b),
        };
        order == Ordering::Greater
            || (order == Ordering::Equal && (self.min.exclusive() || self.max.exclusive()))
    }
}

// ---- the small encoding -------------------------------------------------------

/// `listpack`: `[len u8][member][score f64 LE]` entries in (score, member) order.
#[derive(Clone, Debug, Default)]
struct Packed {
    buf: Vec<u8>,
    len: usize,
}

/// One entry of a [`Packed`] buffer: where it starts and ends, and its contents.
#[derive(Clone, Copy)]
struct PackedEntry<'a> {
    start: usize,
    end: usize,
    member: &'a [u8],
    score: f64,
}

struct PackedIter<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Iterator for PackedIter<'a> {
    type Item = PackedEntry<'a>;

    fn next(&mut self) -> Option<PackedEntry<'a>> {
        let start = self.at;
        let len = usize::from(*self.buf.get(start)?);
        let member = &self.buf[start + 1..start + 1 + len];
        let mut raw = [0u8; 8];
        raw.copy_from_slice(&self.buf[start + 1 + len..start + 9 + len]);
        self.at = start + 9 + len;
        Some(PackedEntry {
            start,
            end: self.at,
            member,
            score: f64::from_le_bytes(raw),
        })
    }
}

impl Packed {
    fn iter(&self) -> PackedIter<'_> {
        PackedIter {
            buf: &self.buf,
            at: 0,
        }
    }

    fn find(&self, member: &[u8]) -> Option<PackedEntry<'_>> {
        self.iter().find(|e| e.member == member)
    }

    /// Inserts a member known to be absent, at its place in the order.
    fn insert(&mut self, member: &[u8], score: f64) {
        debug_assert!(member.len() <= MAX_LISTPACK_VALUE);
        let score = packed_score(score);
        let at = self
            .iter()
            .find(|e| cmp_key(e.score, e.member, score, member) == Ordering::Greater)
            .map_or(self.buf.len(), |e| e.start);
        let mut entry = Vec::with_capacity(member.len() + 9);
        entry.push(member.len() as u8);
        entry.extend_from_slice(member);
        entry.extend_from_slice(&score.to_le_bytes());
        self.buf.splice(at..at, entry);
        self.len += 1;
    }

    fn remove_bytes(&mut self, start: usize, end: usize, count: usize) {
        self.buf.drain(start..end);
        self.len -= count;
    }

    /// Byte offset of the entry at `rank` (or the end).
    fn offset_of(&self, rank: usize) -> usize {
        self.iter().nth(rank).map_or(self.buf.len(), |e| e.start)
    }
}

/// The score a listpack keeps: Redis stores integral scores as integers,
/// so `-0.0` becomes `0` (a skiplist keeps `-0`).
fn packed_score(score: f64) -> f64 {
    if score == 0.0 {
        0.0
    } else {
        score
    }
}

// ---- the large encoding -------------------------------------------------------

mod tree;

#[cfg(test)]
use tree::alloc_bytes;
use tree::{Tree, TreeIter, NIL};

/// Per-member bytes of the tree beyond the member's own buffer: its slot in
/// the member arena (24), its share of a 648-byte leaf (20 when leaves are
/// full, as members added in order leave them, about 29 at the 70% fill
/// random inserts leave) and its hash-table slot at the table's load (~12).
/// An estimate from the contents only, so every replica agrees; the memory
/// test holds it within 20% of the real allocations for both fills.
const TREE_NODE_BYTES: u64 = 60;

// ---- the value ---------------------------------------------------------------

#[derive(Clone, Debug)]
enum Enc {
    Packed(Packed),
    Tree(Tree),
}

/// A sorted set (see the module docs).
#[derive(Clone, Debug)]
pub struct ZSet {
    enc: Enc,
}

impl Default for ZSet {
    fn default() -> ZSet {
        ZSet::new()
    }
}

/// Members in order, from some rank, up or down.
pub struct Iter<'a> {
    inner: IterInner<'a>,
}

enum IterInner<'a> {
    Packed(std::vec::IntoIter<(&'a [u8], f64)>),
    Tree(TreeIter<'a>),
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a [u8], f64);

    fn next(&mut self) -> Option<(&'a [u8], f64)> {
        match &mut self.inner {
            IterInner::Packed(it) => it.next(),
            IterInner::Tree(it) => it.next(),
        }
    }
}

impl ZSet {
    /// An empty set in the `listpack` encoding.
    pub fn new() -> ZSet {
        ZSet {
            enc: Enc::Packed(Packed::default()),
        }
    }

    /// An empty set in the `skiplist` encoding (Redis's `createZsetObject`,
    /// used where Redis creates the large encoding up front).
    pub fn new_skiplist() -> ZSet {
        ZSet {
            enc: Enc::Tree(Tree::new()),
        }
    }

    /// An empty set for `hint` members whose first is `first_len` bytes:
    /// `skiplist` when either exceeds the listpack limits (ZADD on a new key,
    /// ZRANGESTORE's destination).
    pub fn with_hint(hint: usize, first_len: usize) -> ZSet {
        if hint > MAX_LISTPACK_ENTRIES || first_len > MAX_LISTPACK_VALUE {
            ZSet::new_skiplist()
        } else {
            ZSet::new()
        }
    }

    /// OBJECT ENCODING's name.
    pub fn encoding(&self) -> &'static str {
        match self.enc {
            Enc::Packed(_) => "listpack",
            Enc::Tree(_) => "skiplist",
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match &self.enc {
            Enc::Packed(p) => p.len,
            Enc::Tree(t) => t.len(),
        }
    }

    /// True when there is no member (an emptied set is deleted by its caller).
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Estimated heap bytes (deterministic, O(1)).
    pub fn mem_bytes(&self) -> u64 {
        match &self.enc {
            Enc::Packed(p) => 24 + p.buf.len() as u64,
            Enc::Tree(t) => 128 + t.len() as u64 * TREE_NODE_BYTES + t.member_alloc_bytes,
        }
    }

    /// Converts to `skiplist` for good (Redis's `zsetConvert(.., SKIPLIST)`,
    /// which SORT does to its input); a no-op if already there.
    pub fn convert_to_skiplist(&mut self) {
        self.convert_to_tree();
    }

    /// Converts to `skiplist` (once; a no-op if already there).
    fn convert_to_tree(&mut self) {
        if let Enc::Packed(p) = &self.enc {
            let mut tree = Tree::new();
            tree.reserve(p.len);
            for e in p.iter() {
                tree.insert(e.member, e.score);
            }
            self.enc = Enc::Tree(tree);
        }
    }

    /// Redis's `zsetConvertToListpackIfNeeded`: a `skiplist` set small enough
    /// (members and their lengths) becomes `listpack`. Only for a freshly
    /// built destination of ZUNIONSTORE and friends.
    pub fn convert_to_packed_if_small(&mut self) {
        let Enc::Tree(t) = &self.enc else {
            return;
        };
        if t.len() > MAX_LISTPACK_ENTRIES {
            return;
        }
        let mut packed = Packed::default();
        for (member, score) in t.iter_from(0, false) {
            if member.len() > MAX_LISTPACK_VALUE {
                return;
            }
            packed.buf.push(member.len() as u8);
            packed.buf.extend_from_slice(member);
            packed
                .buf
                .extend_from_slice(&packed_score(score).to_le_bytes());
            packed.len += 1;
        }
        self.enc = Enc::Packed(packed);
    }

    /// The member's score.
    pub fn score(&self, member: &[u8]) -> Option<f64> {
        match &self.enc {
            Enc::Packed(p) => p.find(member).map(|e| e.score),
            Enc::Tree(t) => t.find(member).map(|id| t.member(id).score),
        }
    }

    /// The member's 0-based rank from the lowest (ZRANK); ZREVRANK is
    /// `len - 1 - rank`.
    pub fn rank(&self, member: &[u8]) -> Option<usize> {
        match &self.enc {
            Enc::Packed(p) => p.iter().position(|e| e.member == member),
            Enc::Tree(t) => t.find(member).map(|id| t.rank_of(id)),
        }
    }

    /// Inserts a member known to be absent, converting first if the set
    /// would outgrow `listpack`.
    fn insert_new(&mut self, member: &[u8], score: f64) {
        if let Enc::Packed(p) = &self.enc {
            if p.len + 1 > MAX_LISTPACK_ENTRIES || member.len() > MAX_LISTPACK_VALUE {
                self.convert_to_tree();
            }
        }
        match &mut self.enc {
            Enc::Packed(p) => p.insert(member, score),
            Enc::Tree(t) => t.insert(member, score),
        }
    }

    /// ZADD / ZINCRBY for one member (Redis's `zsetAdd`).
    pub fn add(&mut self, member: &[u8], score: f64, flags: AddFlags) -> AddOutcome {
        if score.is_nan() {
            return AddOutcome::NotANumber;
        }
        // The member's score and, in a tree, its node: found once.
        let found = match &self.enc {
            Enc::Packed(p) => p.find(member).map(|e| (e.score, NIL)),
            Enc::Tree(t) => t.find(member).map(|id| (t.member(id).score, id)),
        };
        let Some((current, id)) = found else {
            if flags.xx {
                return AddOutcome::Skipped;
            }
            self.insert_new(member, score);
            return AddOutcome::Added(score);
        };
        if flags.nx {
            return AddOutcome::Skipped;
        }
        let mut score = score;
        if flags.incr {
            score += current;
            if score.is_nan() {
                return AddOutcome::NotANumber;
            }
        }
        if (flags.lt && score >= current) || (flags.gt && score <= current) {
            return AddOutcome::Skipped;
        }
        if score == current {
            return AddOutcome::Unchanged(score);
        }
        if let Enc::Tree(t) = &mut self.enc {
            t.rescore(id, score);
        } else {
            self.remove(member);
            if let Enc::Packed(p) = &mut self.enc {
                p.insert(member, score);
            }
        }
        AddOutcome::Updated(score)
    }

    /// Removes a member; its score if it was there.
    pub fn remove(&mut self, member: &[u8]) -> Option<f64> {
        match &mut self.enc {
            Enc::Packed(p) => {
                let e = p.find(member)?;
                let (start, end, score) = (e.start, e.end, e.score);
                p.remove_bytes(start, end, 1);
                Some(score)
            }
            Enc::Tree(t) => {
                let id = t.find(member)?;
                let score = t.member(id).score;
                t.remove_id(id);
                Some(score)
            }
        }
    }

    /// The member at `rank` (from the lowest).
    pub fn get(&self, rank: usize) -> Option<(&[u8], f64)> {
        match &self.enc {
            Enc::Packed(p) => p.iter().nth(rank).map(|e| (e.member, e.score)),
            Enc::Tree(t) => t.nth(rank).map(|id| {
                let m = t.member(id);
                (&m.member[..], m.score)
            }),
        }
    }

    /// Members from rank `rank` upwards, or downwards (towards rank 0) when
    /// `rev`. Empty if `rank` is out of range.
    pub fn iter_from(&self, rank: usize, rev: bool) -> Iter<'_> {
        let inner = match &self.enc {
            Enc::Packed(p) => {
                let mut all: Vec<(&[u8], f64)> = p.iter().map(|e| (e.member, e.score)).collect();
                if rank >= all.len() {
                    all.clear();
                } else if rev {
                    all.truncate(rank + 1);
                    all.reverse();
                } else {
                    all.drain(..rank);
                }
                IterInner::Packed(all.into_iter())
            }
            Enc::Tree(t) => IterInner::Tree(t.iter_from(rank, rev)),
        };
        Iter { inner }
    }

    /// Every member in order.
    pub fn iter(&self) -> Iter<'_> {
        self.iter_from(0, false)
    }

    /// Number of leading members (in order) whose scores satisfy `pred`: a
    /// linear walk for `listpack`, a descent for `skiplist` (`pred` must then
    /// hold for a prefix, as a score bound does) that never reads a member.
    fn leading_score(&self, pred: impl Fn(f64) -> bool) -> usize {
        match &self.enc {
            Enc::Packed(p) => p.iter().take_while(|e| pred(e.score)).count(),
            Enc::Tree(t) => t.leading(|score, _| pred(score)),
        }
    }

    /// The ranks `[first, end)` of the members whose scores are in `range`
    /// (empty when `first >= end`).
    pub fn score_span(&self, range: &ScoreRange) -> (usize, usize) {
        if range.is_empty() || self.is_empty() {
            return (0, 0);
        }
        let first = self.leading_score(|s| !range.gte_min(s));
        let end = self.leading_score(|s| range.lte_max(s));
        if first >= end {
            (0, 0)
        } else {
            (first, end)
        }
    }

    /// The ranks `[first, end)` a lex range covers. Redis assumes all scores
    /// equal for lex ranges; when they are not, a `listpack` answers as
    /// Redis's linear walks (from the head for a forward range, from the tail
    /// when `rev`) and a `skiplist` by a binary search over ranks, which does
    /// not depend on the tree's shape.
    pub fn lex_span(&self, range: &LexRange, rev: bool) -> (usize, usize) {
        let len = self.len();
        if range.is_empty() || len == 0 {
            return (0, 0);
        }
        // zzlIsInLexRange / zslIsInLexRange: the last member must be >= min
        // and the first <= max.
        let (Some((last, _)), Some((first, _))) = (self.get(len - 1), self.get(0)) else {
            return (0, 0);
        };
        if !range.gte_min(last) || !range.lte_max(first) {
            return (0, 0);
        }
        match &self.enc {
            Enc::Packed(p) => {
                let members: Vec<&[u8]> = p.iter().map(|e| e.member).collect();
                if rev {
                    let Some(last) = members.iter().rposition(|m| range.lte_max(m)) else {
                        return (0, 0);
                    };
                    if !range.gte_min(members[last]) {
                        return (0, 0);
                    }
                    let first = members[..=last]
                        .iter()
                        .rposition(|m| !range.gte_min(m))
                        .map_or(0, |i| i + 1);
                    (first, last + 1)
                } else {
                    let Some(first) = members.iter().position(|m| range.gte_min(m)) else {
                        return (0, 0);
                    };
                    if !range.lte_max(members[first]) {
                        return (0, 0);
                    }
                    let end = members[first..]
                        .iter()
                        .position(|m| !range.lte_max(m))
                        .map_or(len, |i| first + i);
                    (first, end)
                }
            }
            Enc::Tree(t) => {
                let first = partition_point(len, |r| {
                    t.nth(r)
                        .is_some_and(|id| !range.gte_min(&t.member(id).member))
                });
                let end = partition_point(len, |r| {
                    t.nth(r)
                        .is_some_and(|id| range.lte_max(&t.member(id).member))
                });
                if first >= end {
                    (0, 0)
                } else {
                    (first, end)
                }
            }
        }
    }

    /// Removes ranks `[start, end)`; returns how many were removed.
    pub fn remove_span(&mut self, start: usize, end: usize) -> usize {
        let end = end.min(self.len());
        if start >= end {
            return 0;
        }
        match &mut self.enc {
            Enc::Packed(p) => {
                let from = p.offset_of(start);
                let to = p.offset_of(end);
                p.remove_bytes(from, to, end - start);
            }
            Enc::Tree(t) => t.remove_ranks(start, end),
        }
        end - start
    }

    /// ZPOPMIN / ZPOPMAX: removes and returns up to `count` members from the
    /// lowest (or the highest when `max`), in pop order.
    pub fn pop(&mut self, count: usize, max: bool) -> Vec<(Bytes, f64)> {
        let len = self.len();
        let count = count.min(len);
        let (start, rev) = if max {
            (len.saturating_sub(1), true)
        } else {
            (0, false)
        };
        let popped: Vec<(Bytes, f64)> = self
            .iter_from(start, rev)
            .take(count)
            .map(|(m, s)| (Bytes::copy_from_slice(m), s))
            .collect();
        if max {
            self.remove_span(len - count, len);
        } else {
            self.remove_span(0, count);
        }
        popped
    }

    /// Redis's `xorObjectDigest` contribution of the members: per member the
    /// SHA-1 chain of the member and its `%.17g` score, XORed together (so
    /// order does not matter).
    pub fn digest_into(&self, mut mix: impl FnMut(&[u8], &[u8])) {
        for (member, score) in self.iter() {
            mix(member, format_score(score).as_bytes());
        }
    }
}

/// The first `r` in `0..len` for which `pred` is false, for a `pred` true on
/// a prefix (a binary search; any `pred` gives a deterministic answer).
fn partition_point(len: usize, pred: impl Fn(usize) -> bool) -> usize {
    let (mut lo, mut hi) = (0, len);
    while lo < hi {
        let mid = lo + (hi - lo) / 2;
        if pred(mid) {
            lo = mid + 1;
        } else {
            hi = mid;
        }
    }
    lo
}

impl PartialEq for ZSet {
    /// Same members with bit-identical scores in the same encoding (Redis
    /// keeps the encoding in RDB files and `OBJECT ENCODING` shows it, so
    /// replicas must agree on it too).
    fn eq(&self, other: &ZSet) -> bool {
        self.encoding() == other.encoding()
            && self.len() == other.len()
            && self
                .iter()
                .zip(other.iter())
                .all(|((m1, s1), (m2, s2))| m1 == m2 && s1.to_bits() == s2.to_bits())
    }
}

impl Eq for ZSet {}

/// Serialized as `(skiplist?, [(member, score)…])` in order.
impl Serialize for ZSet {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        struct Members<'a>(&'a ZSet);
        impl Serialize for Members<'_> {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                use serde::ser::SerializeSeq;
                let mut seq = serializer.serialize_seq(Some(self.0.len()))?;
                for (member, score) in self.0.iter() {
                    seq.serialize_element(&(serde_bytes_ref(member), score))?;
                }
                seq.end()
            }
        }
        let mut tuple = serializer.serialize_tuple(2)?;
        tuple.serialize_element(&matches!(self.enc, Enc::Tree(_)))?;
        tuple.serialize_element(&Members(self))?;
        tuple.end()
    }
}

/// A member serialized as bytes (as `Bytes` does), without copying.
fn serde_bytes_ref(member: &[u8]) -> BytesRef<'_> {
    BytesRef(member)
}

struct BytesRef<'a>(&'a [u8]);

impl Serialize for BytesRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

impl<'de> Deserialize<'de> for ZSet {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<ZSet, D::Error> {
        struct MembersSeed(bool);
        impl<'de> serde::de::DeserializeSeed<'de> for MembersSeed {
            type Value = ZSet;
            fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<ZSet, D::Error> {
                d.deserialize_seq(MembersVisitor(self.0))
            }
        }
        struct MembersVisitor(bool);
        impl<'de> Visitor<'de> for MembersVisitor {
            type Value = ZSet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("sorted set members in order")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ZSet, A::Error> {
                let mut set = if self.0 {
                    ZSet::new_skiplist()
                } else {
                    ZSet::new()
                };
                let mut previous: Option<(Bytes, f64)> = None;
                while let Some((member, score)) = seq.next_element::<(Bytes, f64)>()? {
                    if score.is_nan() {
                        return Err(serde::de::Error::custom("NaN score"));
                    }
                    if let Some((pm, ps)) = &previous {
                        if cmp_key(*ps, pm, score, &member) != Ordering::Less {
                            return Err(serde::de::Error::custom("members out of order"));
                        }
                    }
                    if let Enc::Packed(p) = &set.enc {
                        if p.len + 1 > MAX_LISTPACK_ENTRIES || member.len() > MAX_LISTPACK_VALUE {
                            return Err(serde::de::Error::custom("listpack over its limits"));
                        }
                    }
                    match &mut set.enc {
                        Enc::Packed(p) => {
                            p.buf.push(member.len() as u8);
                            p.buf.extend_from_slice(&member);
                            p.buf.extend_from_slice(&packed_score(score).to_le_bytes());
                            p.len += 1;
                        }
                        Enc::Tree(t) => t.insert(&member, score),
                    }
                    previous = Some((member, score));
                }
                Ok(set)
            }
        }
        struct ZSetVisitor;
        impl<'de> Visitor<'de> for ZSetVisitor {
            type Value = ZSet;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a sorted set")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ZSet, A::Error> {
                let skiplist: bool = seq
                    .next_element()?
                    .ok_or_else(|| serde::de::Error::invalid_length(0, &self))?;
                seq.next_element_seed(MembersSeed(skiplist))?
                    .ok_or_else(|| serde::de::Error::invalid_length(1, &self))
            }
        }
        deserializer.deserialize_tuple(2, ZSetVisitor)
    }
}

#[cfg(test)]
mod tests;
