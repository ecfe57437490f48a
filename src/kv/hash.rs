//! The hash value: fields and their values in insertion order, with a
//! running count of the bytes they cost (no command parsing; the commands are
//! in `hashes.rs`).
//!
//! Invariants:
//! - [`Hash::mem_bytes`] always equals the sum over fields of
//!   `field.len() + value.len() + FIELD_OVERHEAD`: every insert, overwrite
//!   and removal adjusts it, so reading it is O(1) (the `maxmemory`
//!   accounting reads it before and after every write) and it is a function
//!   of the contents only.
//! - The fields are only reachable read-only from outside: all changes go
//!   through [`Hash::insert`] and [`Hash::remove`], which keep the total.
//! - Field order is Redis's listpack order: a new field goes to the end, an
//!   overwrite keeps its place, a removal closes the gap. HGETALL, HKEYS,
//!   HVALS, HSCAN and DUMP of a small hash list fields as Redis 7.0 does. A
//!   `hashtable` hash (Redis's order there is its dict's, which no client can
//!   rely on) removes by swapping the last field into the gap, so removal
//!   stays O(1) for big hashes. The order is a function of the applied
//!   commands, so it is the same on every replica.
//! - Serialized as a map of byte strings in that order (the format of the
//!   `BTreeMap<Bytes, Bytes>` this type once wrapped: snapshots written before
//!   load unchanged, in field order); the total is recomputed on load.
//! - [`Hash::is_hashtable`] is Redis's encoding, kept as Redis keeps it: a
//!   hash is `listpack` until an insert makes it too large (more than
//!   [`LISTPACK_MAX_ENTRIES`] fields, or a field or value longer than
//!   [`LISTPACK_MAX_VALUE`] bytes) and `hashtable` from then on, however it
//!   shrinks. A hash built whole (RESTORE, a snapshot without the bit) takes
//!   the encoding its content gives, as Redis's loader does. The bit is not
//!   part of this type's serialization: `Value`'s carries it.

use std::collections::BTreeMap;
use std::fmt;
use std::ops::Range;

use bytes::Bytes;
use serde::de::{MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::chunked::ChunkVec;
use super::indexed::{Gap, IndexedVec};

/// The fixed cost the memory estimate counts per field, on top of the
/// field's and the value's bytes.
pub const FIELD_OVERHEAD: u64 = 32;

/// What one field with its value costs in the memory estimate.
fn pair_bytes(field: &[u8], value: &[u8]) -> u64 {
    (field.len() + value.len()) as u64 + FIELD_OVERHEAD
}

/// Redis 7.0's built-in `hash-max-listpack-entries` (512; the sample
/// redis.conf's 128 is not the default).
pub const LISTPACK_MAX_ENTRIES: usize = 512;
/// Redis 7.0's `hash-max-listpack-value`.
pub const LISTPACK_MAX_VALUE: usize = 64;

/// A hash: fields to values in insertion order, with its memory estimate.
/// Equality ignores the order (two hashes with the same pairs are equal).
///
/// The pairs are an [`IndexedVec`] (chunks a copy for a snapshot shares,
/// found through a hash index of positions that decides nothing visible).
#[derive(Clone, Default)]
pub struct Hash {
    pairs: IndexedVec<(Bytes, Bytes)>,
    /// The sum of [`pair_bytes`] over the pairs.
    bytes: u64,
    /// Redis's `hashtable` encoding (sticky, see the module docs).
    hashtable: bool,
}

impl PartialEq for Hash {
    fn eq(&self, other: &Hash) -> bool {
        self.len() == other.len()
            && self.hashtable == other.hashtable
            && self.iter().all(|(f, v)| other.get(f) == Some(v))
    }
}

impl Eq for Hash {}

impl fmt::Debug for Hash {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The pairs from some position on, in order.
pub struct Iter<'a> {
    pairs: &'a ChunkVec<(Bytes, Bytes)>,
    range: Range<usize>,
}

impl<'a> Iterator for Iter<'a> {
    type Item = (&'a Bytes, &'a Bytes);

    fn next(&mut self) -> Option<Self::Item> {
        let (f, v) = &self.pairs[self.range.next()?];
        Some((f, v))
    }

    fn size_hint(&self) -> (usize, Option<usize>) {
        self.range.size_hint()
    }
}

impl DoubleEndedIterator for Iter<'_> {
    fn next_back(&mut self) -> Option<Self::Item> {
        let (f, v) = &self.pairs[self.range.next_back()?];
        Some((f, v))
    }
}

impl ExactSizeIterator for Iter<'_> {}

impl Hash {
    /// An empty hash.
    pub fn new() -> Hash {
        Hash::default()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.pairs.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.pairs.len() == 0
    }

    /// Where `field` is in the order.
    fn position(&self, field: &[u8]) -> Option<usize> {
        self.pairs.position(field)
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&Bytes> {
        self.position(field).map(|i| &self.pairs[i].1)
    }

    /// Whether `field` is present.
    pub fn contains_key(&self, field: &[u8]) -> bool {
        self.position(field).is_some()
    }

    /// Sets `field` to `value`; returns the value it replaces, if any. A
    /// field or value longer than [`LISTPACK_MAX_VALUE`], or a field count
    /// over [`LISTPACK_MAX_ENTRIES`], turns the hash into a `hashtable`.
    pub fn insert(&mut self, field: Bytes, value: Bytes) -> Option<Bytes> {
        let field_cost = pair_bytes(&field, b"");
        let value_len = value.len() as u64;
        self.hashtable |= field.len() > LISTPACK_MAX_VALUE || value.len() > LISTPACK_MAX_VALUE;
        let old = match self.pairs.lookup(&field) {
            (_, Some(i)) => Some(std::mem::replace(&mut self.pairs.get_mut(i).1, value)),
            (hash, None) => {
                self.pairs.push_new(hash, (field, value));
                None
            }
        };
        match &old {
            // An overwrite keeps the stored field (equal to the new one, so
            // already counted with its overhead): only the value changes.
            Some(old) => self.bytes = self.bytes - old.len() as u64 + value_len,
            None => self.bytes += field_cost + value_len,
        }
        self.hashtable |= self.pairs.len() > LISTPACK_MAX_ENTRIES;
        old
    }

    /// True if Redis would hold this hash as a `hashtable` (OBJECT
    /// ENCODING, DUMP's type); false for `listpack`.
    pub fn is_hashtable(&self) -> bool {
        self.hashtable
    }

    /// Marks the hash `hashtable` (a snapshot that recorded the encoding).
    pub(crate) fn set_hashtable(&mut self) {
        self.hashtable = true;
    }

    /// True if the content fits a listpack (O(n)): what a hash built whole
    /// is encoded as.
    fn fits_listpack(&self) -> bool {
        self.len() <= LISTPACK_MAX_ENTRIES
            && self
                .iter()
                .all(|(f, v)| f.len() <= LISTPACK_MAX_VALUE && v.len() <= LISTPACK_MAX_VALUE)
    }

    /// Removes `field`; returns its value, if it was present. A listpack
    /// hash (at most [`LISTPACK_MAX_ENTRIES`] fields) keeps the order of the
    /// rest, as Redis's listpack does; a hashtable hash moves its last field
    /// into the gap (O(1)).
    pub fn remove(&mut self, field: &[u8]) -> Option<Bytes> {
        let gap = if self.hashtable {
            Gap::SwapLast
        } else {
            Gap::Shift
        };
        let (field, value) = self.pairs.remove(field, gap)?;
        self.bytes -= pair_bytes(&field, &value);
        Some(value)
    }

    /// Fields and values in order.
    pub fn iter(&self) -> Iter<'_> {
        Iter {
            pairs: self.pairs.items(),
            range: 0..self.pairs.len(),
        }
    }

    /// Fields in order.
    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &Bytes> + ExactSizeIterator + '_ {
        self.iter().map(|(f, _)| f)
    }

    /// The field and value at position `i` of the order (O(1)).
    pub fn get_index(&self, i: usize) -> Option<(&Bytes, &Bytes)> {
        (i < self.pairs.len()).then(|| {
            let (f, v) = &self.pairs[i];
            (f, v)
        })
    }

    /// The memory estimate of the fields and values (O(1)): the sum of their
    /// lengths plus [`FIELD_OVERHEAD`] per field.
    pub fn mem_bytes(&self) -> u64 {
        self.bytes
    }
}

impl From<BTreeMap<Bytes, Bytes>> for Hash {
    /// A hash built whole, in field order.
    fn from(fields: BTreeMap<Bytes, Bytes>) -> Hash {
        fields.into_iter().collect()
    }
}

impl From<Hash> for BTreeMap<Bytes, Bytes> {
    fn from(hash: Hash) -> BTreeMap<Bytes, Bytes> {
        hash.iter().map(|(f, v)| (f.clone(), v.clone())).collect()
    }
}

impl FromIterator<(Bytes, Bytes)> for Hash {
    /// A hash built whole: its encoding follows from its content.
    fn from_iter<I: IntoIterator<Item = (Bytes, Bytes)>>(pairs: I) -> Hash {
        let mut hash = Hash::new();
        for (field, value) in pairs {
            hash.insert(field, value);
        }
        hash.hashtable = !hash.fits_listpack();
        hash
    }
}

impl<'a> IntoIterator for &'a Hash {
    type Item = (&'a Bytes, &'a Bytes);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Self::IntoIter {
        self.iter()
    }
}

/// Serialized as a map in the hash's order (the format snapshots have always
/// used; older ones hold it in field order).
impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_map(self.iter())
    }
}

impl<'de> Deserialize<'de> for Hash {
    /// The pairs in their serialized order; the encoding from the content
    /// (`Value`'s serialization restores a sticky `hashtable` bit).
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
        deserializer.deserialize_map(HashVisitor)
    }
}

/// Reads a serialized map into a [`Hash`], keeping the pairs' order. A field
/// that repeats (only a hostile or corrupt snapshot has one) keeps its first
/// place and its last value, as inserting the pairs one by one does.
struct HashVisitor;

impl<'de> Visitor<'de> for HashVisitor {
    type Value = Hash;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a map of byte strings")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Hash, A::Error> {
        let mut pairs = Vec::new();
        while let Some(pair) = access.next_entry::<Bytes, Bytes>()? {
            pairs.push(pair);
        }
        Ok(pairs.into_iter().collect())
    }
}

#[cfg(test)]
mod tests;
