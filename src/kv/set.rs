//! The set value: Redis 7.0's two set encodings, as a plain data structure
//! (no command parsing; the commands are in `sets.rs`).
//!
//! - `intset`: a sorted array of integers packed at one width (2, 4 or 8
//!   bytes, little-endian, as Redis's `intset.c`), used while every member
//!   is an integer written in canonical decimal form (Redis's `string2ll`:
//!   no sign `+`, no leading zero, fits in an i64) and there are at most
//!   [`MAX_INTSET_ENTRIES`] members. The width grows to fit the widest value
//!   ever added and never shrinks, as Redis's.
//! - `hashtable`: any members, in a chunked vector with a hash index from
//!   member to position (`kv::indexed`; insertion order, a removal moves
//!   the last member into the hole). A set converts to it once — on a
//!   non-integer member, or on the 513th member — and never back, as Redis.
//!   (Two things rebuild a set from its members, as Redis does, and may so
//!   land on `intset` again: `SPOP` with a count close to the size, see
//!   [`Set::pop_many`], and the results of the set algebra commands, which
//!   are new sets.)
//!
//! Determinism: everything a client or a snapshot can see — iteration order,
//! `SSCAN` cursors, which members `SPOP`/`SRANDMEMBER` choose — is a function
//! of the members' positions, which follow from the operations applied (and
//! are kept by snapshots), so every replica agrees. The hash index is keyed
//! by a per-process random SipHash key (as Redis seeds its dict hash, against
//! crafted collisions), but it only answers "where is this member": its
//! layout decides nothing visible. Random choices take a `u64` seed and draw
//! from SplitMix64, never from global randomness.
//!
//! `SSCAN` cursor (hashtable; an intset is returned whole with cursor 0, as
//! Redis does): the scan walks positions from the last to the first. Cursor 0
//! starts at the end; any other cursor `c` means "positions `0..c` are still
//! to be visited". A member present for the whole scan is returned at least
//! once, whatever is added and removed between calls: an insert appends
//! (behind the cursor, where the scan no longer looks, and is not needed), and
//! a removal at position `p` moves the last member to `p`; if that member is
//! still to be visited it was below the cursor, so `p` is too. A set
//! shrinking below the cursor is handled by clamping it. A set replaced
//! as a whole (a STORE command, `SPOP` rebuilding it, deletion) starts over.
//!
//! Sizes: positions are `u32`, so a hashtable holds at most 2^32 - 1 members
//! (Redis's own limit for sets is the same order).

use std::collections::BTreeSet;
use std::fmt;

use bytes::Bytes;
use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::chunked::ChunkVec;
use super::indexed::{Gap, IndexedVec};
use super::{mix, parse_i64};

/// Redis 7.0's `set-max-intset-entries`: the most members an intset holds.
pub const MAX_INTSET_ENTRIES: usize = 512;

/// Redis's `SPOP_MOVE_STRATEGY_MUL`: `SPOP key count` rebuilds the set from
/// the members it keeps when they are at most `1/5` of the count popped.
const SPOP_REBUILD_RATIO: usize = 5;

/// One member as stored: an intset's integer or a hashtable member's bytes.
/// Its text is the integer in decimal, or the bytes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Member<'a> {
    /// An intset member.
    Int(i64),
    /// A hashtable member.
    Bytes(&'a [u8]),
}

impl Member<'_> {
    /// The member's text as an owned buffer (for a reply).
    pub fn to_bytes(self) -> Bytes {
        match self {
            Member::Int(v) => {
                let mut buf = [0u8; 20];
                Bytes::copy_from_slice(format_i64(v, &mut buf))
            }
            Member::Bytes(b) => Bytes::copy_from_slice(b),
        }
    }

    /// Runs `f` on the member's text without allocating.
    pub fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Member::Int(v) => {
                let mut buf = [0u8; 20];
                f(format_i64(v, &mut buf))
            }
            Member::Bytes(b) => f(b),
        }
    }
}

/// Writes `v` in decimal at the end of `buf` and returns that part.
fn format_i64(v: i64, buf: &mut [u8; 20]) -> &[u8] {
    let mut n = v.unsigned_abs();
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    if v < 0 {
        at -= 1;
        buf[at] = b'-';
    }
    &buf[at..]
}

/// The packed width an intset needs for `v` (Redis's `_intsetValueEncoding`).
fn width_for(v: i64) -> u8 {
    if i16::try_from(v).is_ok() {
        2
    } else if i32::try_from(v).is_ok() {
        4
    } else {
        8
    }
}

/// A sorted, duplicate-free array of integers packed at `width` bytes each.
#[derive(Clone)]
struct IntSet {
    /// 2, 4 or 8.
    width: u8,
    /// `len * width` bytes, little-endian values in increasing order.
    data: Vec<u8>,
}

impl IntSet {
    fn new() -> IntSet {
        IntSet {
            width: 2,
            data: Vec::new(),
        }
    }

    fn len(&self) -> usize {
        self.data.len() / usize::from(self.width)
    }

    fn get(&self, index: usize) -> i64 {
        let w = usize::from(self.width);
        let b = &self.data[index * w..(index + 1) * w];
        match self.width {
            2 => i64::from(i16::from_le_bytes([b[0], b[1]])),
            4 => i64::from(i32::from_le_bytes([b[0], b[1], b[2], b[3]])),
            _ => i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]),
        }
    }

    fn put(&mut self, index: usize, v: i64) {
        let w = usize::from(self.width);
        let slot = &mut self.data[index * w..(index + 1) * w];
        match self.width {
            2 => slot.copy_from_slice(&(v as i16).to_le_bytes()),
            4 => slot.copy_from_slice(&(v as i32).to_le_bytes()),
            _ => slot.copy_from_slice(&v.to_le_bytes()),
        }
    }

    /// `Ok(index)` of `v`, or `Err(index)` where it would be inserted.
    fn search(&self, v: i64) -> Result<usize, usize> {
        let (mut low, mut high) = (0, self.len());
        while low < high {
            let mid = low + (high - low) / 2;
            match self.get(mid).cmp(&v) {
                std::cmp::Ordering::Less => low = mid + 1,
                std::cmp::Ordering::Greater => high = mid,
                std::cmp::Ordering::Equal => return Ok(mid),
            }
        }
        Err(low)
    }

    fn contains(&self, v: i64) -> bool {
        width_for(v) <= self.width && self.search(v).is_ok()
    }

    /// Repacks every value at `width` (wider than the current one).
    fn widen(&mut self, width: u8) {
        let values: Vec<i64> = (0..self.len()).map(|i| self.get(i)).collect();
        self.width = width;
        self.data = vec![0; values.len() * usize::from(width)];
        for (i, v) in values.into_iter().enumerate() {
            self.put(i, v);
        }
    }

    fn insert(&mut self, v: i64) -> bool {
        let width = width_for(v);
        if width > self.width {
            // Wider than every member, so it goes first or last.
            self.widen(width);
        }
        match self.search(v) {
            Ok(_) => false,
            Err(index) => {
                let w = usize::from(self.width);
                let at = index * w;
                self.data.splice(at..at, std::iter::repeat_n(0, w));
                self.put(index, v);
                true
            }
        }
    }

    fn remove_at(&mut self, index: usize) -> i64 {
        let v = self.get(index);
        let w = usize::from(self.width);
        self.data.drain(index * w..(index + 1) * w);
        v
    }

    fn remove(&mut self, v: i64) -> bool {
        if width_for(v) > self.width {
            return false;
        }
        match self.search(v) {
            Ok(index) => {
                self.remove_at(index);
                true
            }
            Err(_) => false,
        }
    }
}

/// Members in a chunked vector with a hash index of positions (`kv::indexed`).
#[derive(Clone)]
struct Table {
    members: IndexedVec<Box<[u8]>>,
    /// Sum of the members' lengths (for [`Set::mem_bytes`] in O(1)).
    member_bytes: u64,
}

impl Table {
    fn with_capacity(capacity: usize) -> Table {
        Table {
            members: IndexedVec::with_capacity(capacity),
            member_bytes: 0,
        }
    }

    fn position(&self, member: &[u8]) -> Option<usize> {
        self.members.position(member)
    }

    fn insert(&mut self, member: &[u8]) -> bool {
        let (hash, found) = self.members.lookup(member);
        if found.is_some() {
            return false;
        }
        self.members.push_new(hash, member.into());
        self.member_bytes += member.len() as u64;
        true
    }

    /// Removes the member at `position`: the last member takes its place.
    fn remove_at(&mut self, position: usize) -> Box<[u8]> {
        let member = self.members.remove_at(position, Gap::SwapLast);
        self.member_bytes -= member.len() as u64;
        member
    }

    fn remove(&mut self, member: &[u8]) -> bool {
        match self.members.remove(member, Gap::SwapLast) {
            Some(member) => {
                self.member_bytes -= member.len() as u64;
                true
            }
            None => false,
        }
    }
}

#[derive(Clone)]
enum Repr {
    Ints(IntSet),
    Table(Table),
}

/// A Redis set (see the module docs for its encodings and invariants).
#[derive(Clone)]
pub struct Set {
    repr: Repr,
}

impl Default for Set {
    fn default() -> Set {
        Set::new()
    }
}

/// A small deterministic generator: SplitMix64 from the caller's seed.
struct Draw(u64);

impl Draw {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        mix(self.0)
    }

    /// Uniform in `0..n` (`n > 0`), by multiply-high.
    fn below(&mut self, n: usize) -> usize {
        ((u128::from(self.next()) * n as u128) >> 64) as usize
    }

    /// `count` distinct indexes of `0..n` (`count <= n`), in the order
    /// drawn: Floyd's algorithm, O(count log count) whatever `n` is.
    fn distinct(&mut self, count: usize, n: usize) -> Vec<usize> {
        let mut chosen = BTreeSet::new();
        let mut order = Vec::with_capacity(count);
        for j in n - count..n {
            let t = self.below(j + 1);
            let pick = if chosen.contains(&t) { j } else { t };
            chosen.insert(pick);
            order.push(pick);
        }
        order
    }
}

impl Set {
    /// An empty set (an empty intset, as Redis creates one for an integer).
    pub fn new() -> Set {
        Set {
            repr: Repr::Ints(IntSet::new()),
        }
    }

    /// A set of `members`, built as SADD of each in turn into a new key would.
    pub fn from_members<'a>(members: impl IntoIterator<Item = Member<'a>>) -> Set {
        let mut set = Set::new();
        for member in members {
            set.insert_member(member);
        }
        set
    }

    /// `OBJECT ENCODING`'s name: `intset` or `hashtable`.
    pub fn encoding(&self) -> &'static str {
        match self.repr {
            Repr::Ints(_) => "intset",
            Repr::Table(_) => "hashtable",
        }
    }

    /// The intset's packed width in bytes (2, 4 or 8); `None` for a hashtable.
    pub fn intset_width(&self) -> Option<u8> {
        match &self.repr {
            Repr::Ints(ints) => Some(ints.width),
            Repr::Table(_) => None,
        }
    }

    /// Number of members.
    pub fn len(&self) -> usize {
        match &self.repr {
            Repr::Ints(ints) => ints.len(),
            Repr::Table(table) => table.members.len(),
        }
    }

    /// True when the set has no member.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// A deterministic estimate of the heap bytes the set uses (O(1)): the
    /// packed array for an intset; each member's bytes plus a fixed cost
    /// per member (its pointer and index slot) for a hashtable.
    pub fn mem_bytes(&self) -> u64 {
        match &self.repr {
            Repr::Ints(ints) => 32 + ints.data.len() as u64,
            Repr::Table(table) => 80 + table.member_bytes + 32 * table.members.len() as u64,
        }
    }

    /// True if `member` is in the set (O(1) for a hashtable, O(log n) for an
    /// intset).
    pub fn contains(&self, member: &[u8]) -> bool {
        match &self.repr {
            Repr::Ints(ints) => parse_i64(member).is_some_and(|v| ints.contains(v)),
            Repr::Table(table) => table.position(member).is_some(),
        }
    }

    /// [`Set::contains`] for a member of another set (no parsing between two
    /// intsets).
    pub fn contains_member(&self, member: Member<'_>) -> bool {
        match (&self.repr, member) {
            (Repr::Ints(ints), Member::Int(v)) => ints.contains(v),
            _ => member.with_bytes(|b| self.contains(b)),
        }
    }

    /// Converts an intset to a hashtable (members in increasing order).
    fn convert(&mut self) {
        if let Repr::Ints(ints) = &self.repr {
            let mut table = Table::with_capacity(ints.len() + 1);
            let mut buf = [0u8; 20];
            for i in 0..ints.len() {
                table.insert(format_i64(ints.get(i), &mut buf));
            }
            self.repr = Repr::Table(table);
        }
    }

    /// Adds `member`; true if it was not there (Redis's `setTypeAdd`,
    /// conversions included).
    pub fn insert(&mut self, member: &[u8]) -> bool {
        if let Repr::Ints(_) = self.repr {
            match parse_i64(member) {
                Some(v) => return self.insert_int(v),
                None => self.convert(),
            }
        }
        match &mut self.repr {
            Repr::Table(table) => table.insert(member),
            Repr::Ints(_) => unreachable!("converted to a hashtable above"),
        }
    }

    fn insert_int(&mut self, v: i64) -> bool {
        let Repr::Ints(ints) = &mut self.repr else {
            let mut buf = [0u8; 20];
            return self.insert(format_i64(v, &mut buf));
        };
        let added = ints.insert(v);
        if ints.len() > MAX_INTSET_ENTRIES {
            self.convert();
        }
        added
    }

    /// [`Set::insert`] for a member of another set.
    pub fn insert_member(&mut self, member: Member<'_>) -> bool {
        match member {
            Member::Int(v) => self.insert_int(v),
            Member::Bytes(b) => self.insert(b),
        }
    }

    /// Removes `member`; true if it was there. The encoding never changes.
    pub fn remove(&mut self, member: &[u8]) -> bool {
        match &mut self.repr {
            Repr::Ints(ints) => parse_i64(member).is_some_and(|v| ints.remove(v)),
            Repr::Table(table) => table.remove(member),
        }
    }

    /// [`Set::remove`] for a member of another set.
    pub fn remove_member(&mut self, member: Member<'_>) -> bool {
        match (&mut self.repr, member) {
            (Repr::Ints(ints), Member::Int(v)) => ints.remove(v),
            _ => member.with_bytes(|b| self.remove(b)),
        }
    }

    /// The member at `position` (`position < len`): intsets in increasing
    /// order, hashtables in their member order.
    fn get(&self, position: usize) -> Member<'_> {
        match &self.repr {
            Repr::Ints(ints) => Member::Int(ints.get(position)),
            Repr::Table(table) => Member::Bytes(&table.members[position]),
        }
    }

    /// Removes and returns the member at `position`.
    fn remove_at(&mut self, position: usize) -> Bytes {
        match &mut self.repr {
            Repr::Ints(ints) => Member::Int(ints.remove_at(position)).to_bytes(),
            Repr::Table(table) => Bytes::from(table.remove_at(position).into_vec()),
        }
    }

    /// The members in the set's deterministic order (increasing for an
    /// intset, member order for a hashtable).
    pub fn iter(&self) -> impl ExactSizeIterator<Item = Member<'_>> + '_ {
        (0..self.len()).map(move |i| self.get(i))
    }

    /// One member chosen from `seed` (`SRANDMEMBER key`); `None` when empty.
    pub fn random_member(&self, seed: u64) -> Option<Member<'_>> {
        if self.is_empty() {
            return None;
        }
        Some(self.get(Draw(seed).below(self.len())))
    }

    /// `SRANDMEMBER key count`: for `count >= 0`, `min(count, len)` distinct
    /// members (the whole set, in its order, when `count >= len`); for a
    /// negative count, `-count` members drawn independently (repeats
    /// allowed). The caller bounds a negative count: the reply is built in
    /// memory.
    pub fn random_members(&self, count: i64, seed: u64) -> Vec<Member<'_>> {
        let len = self.len();
        if len == 0 || count == 0 {
            return Vec::new();
        }
        let mut draw = Draw(seed);
        if count < 0 {
            return (0..count.unsigned_abs())
                .map(|_| self.get(draw.below(len)))
                .collect();
        }
        let count = usize::try_from(count).unwrap_or(usize::MAX);
        if count >= len {
            return self.iter().collect();
        }
        draw.distinct(count, len)
            .into_iter()
            .map(|i| self.get(i))
            .collect()
    }

    /// `SPOP key`: removes and returns one member chosen from `seed`.
    pub fn pop(&mut self, seed: u64) -> Option<Bytes> {
        if self.is_empty() {
            return None;
        }
        let position = Draw(seed).below(self.len());
        Some(self.remove_at(position))
    }

    /// `SPOP key count`: removes and returns `min(count, len)` distinct
    /// members chosen from `seed`. As Redis: a count at least the size takes
    /// everything (in set order); when the members kept are few (at most a
    /// fifth of those popped) the set is rebuilt from them, so it may come
    /// back as an intset (minimal width) if they all are integers and fit;
    /// otherwise members are popped one at a time and the encoding is kept.
    pub fn pop_many(&mut self, count: usize, seed: u64) -> Vec<Bytes> {
        let size = self.len();
        if count >= size {
            let all = self.iter().map(Member::to_bytes).collect();
            *self = Set::new();
            return all;
        }
        let mut draw = Draw(seed);
        let remaining = size - count;
        if remaining.saturating_mul(SPOP_REBUILD_RATIO) > count {
            return (0..count)
                .map(|_| {
                    let position = draw.below(self.len());
                    self.remove_at(position)
                })
                .collect();
        }
        let kept_positions = draw.distinct(remaining, size);
        let mut kept_flags = vec![false; size];
        for &i in &kept_positions {
            kept_flags[i] = true;
        }
        let popped: Vec<Bytes> = self
            .iter()
            .zip(&kept_flags)
            .filter(|(_, &kept)| !kept)
            .map(|(m, _)| m.to_bytes())
            .collect();
        let rebuilt = Set::from_members(kept_positions.iter().map(|&i| self.get(i)));
        if rebuilt.encoding() == "intset" || matches!(self.repr, Repr::Ints(_)) {
            *self = rebuilt;
        } else {
            // Still a hashtable: remove in place, so positions (and so SSCAN
            // cursors) of the members kept stay valid.
            for member in &popped {
                self.remove(member);
            }
        }
        popped
    }

    /// `SSCAN key cursor COUNT count`: up to `count` members (all of an
    /// intset) and the next cursor, 0 when the scan is complete (see the
    /// module docs for the cursor).
    pub fn scan(&self, cursor: u64, count: usize) -> (u64, Vec<Member<'_>>) {
        match &self.repr {
            Repr::Ints(_) => (0, self.iter().collect()),
            Repr::Table(table) => {
                let len = table.members.len();
                let end = match usize::try_from(cursor) {
                    Ok(0) => len,
                    Ok(c) => c.min(len),
                    Err(_) => len,
                };
                let start = end.saturating_sub(count.max(1));
                let members = (start..end).rev().map(|i| self.get(i)).collect();
                (start as u64, members)
            }
        }
    }
}

impl PartialEq for Set {
    /// Equal when the members are, whatever the encodings.
    fn eq(&self, other: &Set) -> bool {
        self.len() == other.len() && self.iter().all(|m| other.contains_member(m))
    }
}

impl Eq for Set {}

impl fmt::Debug for Set {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let members: Vec<String> = self
            .iter()
            .map(|m| m.with_bytes(|b| String::from_utf8_lossy(b).into_owned()))
            .collect();
        f.debug_struct("Set")
            .field("encoding", &self.encoding())
            .field("members", &members)
            .finish()
    }
}

/// Serialises a byte slice as serde bytes (one length and the bytes).
struct RawBytes<'a>(&'a [u8]);

impl Serialize for RawBytes<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self.0)
    }
}

struct MembersRef<'a>(&'a ChunkVec<Box<[u8]>>);

impl Serialize for MembersRef<'_> {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_seq(self.0.iter().map(|m| RawBytes(m)))
    }
}

/// The serialised form, borrowed (writing) ...
#[derive(Serialize)]
enum WireRef<'a> {
    Ints { width: u8, data: RawBytes<'a> },
    Table(MembersRef<'a>),
}

/// ... and owned (reading); the same shape, so the same bytes.
#[derive(Deserialize)]
enum Wire {
    Ints { width: u8, data: Bytes },
    Table(Vec<Bytes>),
}

impl Serialize for Set {
    /// The encoding and its contents as they are (an intset's width and
    /// packed bytes; a hashtable's members in order), so a restored set
    /// behaves exactly as the original, cursors and random choices included.
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        match &self.repr {
            Repr::Ints(ints) => WireRef::Ints {
                width: ints.width,
                data: RawBytes(&ints.data),
            },
            Repr::Table(table) => WireRef::Table(MembersRef(table.members.items())),
        }
        .serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Set {
    /// Refuses what [`Set`] never holds: a bad width, unsorted or repeated
    /// integers, an intset over [`MAX_INTSET_ENTRIES`], repeated members.
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Set, D::Error> {
        match Wire::deserialize(deserializer)? {
            Wire::Ints { width, data } => {
                if ![2, 4, 8].contains(&width) || data.len() % usize::from(width) != 0 {
                    return Err(D::Error::custom("intset width does not fit its data"));
                }
                let ints = IntSet {
                    width,
                    data: data.to_vec(),
                };
                if ints.len() > MAX_INTSET_ENTRIES {
                    return Err(D::Error::custom("intset over set-max-intset-entries"));
                }
                if (1..ints.len()).any(|i| ints.get(i - 1) >= ints.get(i)) {
                    return Err(D::Error::custom("intset not strictly increasing"));
                }
                Ok(Set {
                    repr: Repr::Ints(ints),
                })
            }
            Wire::Table(members) => {
                let mut table = Table::with_capacity(members.len());
                for member in &members {
                    if !table.insert(&member[..]) {
                        return Err(D::Error::custom("set member repeated"));
                    }
                }
                Ok(Set {
                    repr: Repr::Table(table),
                })
            }
        }
    }
}

#[cfg(test)]
mod tests;
