//! The hash value: fields and their values in field order, with a running
//! count of the bytes they cost (no command parsing; the commands are in
//! `hashes.rs`).
//!
//! Invariants:
//! - [`Hash::mem_bytes`] always equals the sum over fields of
//!   `field.len() + value.len() + FIELD_OVERHEAD`: every insert, overwrite
//!   and removal adjusts it, so reading it is O(1) (the `maxmemory`
//!   accounting reads it before and after every write) and it is a function
//!   of the contents only.
//! - The fields are only reachable read-only from outside: all changes go
//!   through [`Hash::insert`] and [`Hash::remove`], which keep the total.
//! - Serialized exactly as the `BTreeMap<Bytes, Bytes>` it wraps (a map of
//!   byte strings in field order), so snapshots written before this type
//!   existed load unchanged; the total is recomputed on load.
//! - [`Hash::is_hashtable`] is Redis's encoding, kept as Redis keeps it: a
//!   hash is `listpack` until an insert makes it too large (more than
//!   [`LISTPACK_MAX_ENTRIES`] fields, or a field or value longer than
//!   [`LISTPACK_MAX_VALUE`] bytes) and `hashtable` from then on, however it
//!   shrinks. A hash built whole (RESTORE, a snapshot without the bit) takes
//!   the encoding its content gives, as Redis's loader does. The bit is not
//!   part of this type's serialization: `Value`'s carries it.

use std::collections::{btree_map, BTreeMap};

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

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

/// A hash: fields to values, ordered by field, with its memory estimate.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Hash {
    fields: BTreeMap<Bytes, Bytes>,
    /// The sum of [`pair_bytes`] over `fields`.
    bytes: u64,
    /// Redis's `hashtable` encoding (sticky, see the module docs).
    hashtable: bool,
}

impl Hash {
    /// An empty hash.
    pub fn new() -> Hash {
        Hash::default()
    }

    /// Number of fields.
    pub fn len(&self) -> usize {
        self.fields.len()
    }

    /// Whether there are no fields.
    pub fn is_empty(&self) -> bool {
        self.fields.is_empty()
    }

    /// The value of `field`.
    pub fn get(&self, field: &[u8]) -> Option<&Bytes> {
        self.fields.get(field)
    }

    /// Whether `field` is present.
    pub fn contains_key(&self, field: &[u8]) -> bool {
        self.fields.contains_key(field)
    }

    /// Sets `field` to `value`; returns the value it replaces, if any. A
    /// field or value longer than [`LISTPACK_MAX_VALUE`], or a field count
    /// over [`LISTPACK_MAX_ENTRIES`], turns the hash into a `hashtable`.
    pub fn insert(&mut self, field: Bytes, value: Bytes) -> Option<Bytes> {
        let field_cost = pair_bytes(&field, b"");
        let value_len = value.len() as u64;
        self.hashtable |= field.len() > LISTPACK_MAX_VALUE || value.len() > LISTPACK_MAX_VALUE;
        let old = self.fields.insert(field, value);
        match &old {
            // An overwrite keeps the stored field (equal to the new one, so
            // already counted with its overhead): only the value changes.
            Some(old) => self.bytes = self.bytes - old.len() as u64 + value_len,
            None => self.bytes += field_cost + value_len,
        }
        self.hashtable |= self.fields.len() > LISTPACK_MAX_ENTRIES;
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
        self.fields.len() <= LISTPACK_MAX_ENTRIES
            && self
                .fields
                .iter()
                .all(|(f, v)| f.len() <= LISTPACK_MAX_VALUE && v.len() <= LISTPACK_MAX_VALUE)
    }

    /// Removes `field`; returns its value, if it was present.
    pub fn remove(&mut self, field: &[u8]) -> Option<Bytes> {
        let (field, value) = self.fields.remove_entry(field)?;
        self.bytes -= pair_bytes(&field, &value);
        Some(value)
    }

    /// Fields and values in field order.
    pub fn iter(&self) -> btree_map::Iter<'_, Bytes, Bytes> {
        self.fields.iter()
    }

    /// Fields in order.
    pub fn keys(&self) -> btree_map::Keys<'_, Bytes, Bytes> {
        self.fields.keys()
    }

    /// Fields and values whose field is in `range`, in field order (a pair
    /// of `Bound<&[u8]>`: std's `a..b` forms need sized bounds).
    pub fn range<R: std::ops::RangeBounds<[u8]>>(
        &self,
        range: R,
    ) -> btree_map::Range<'_, Bytes, Bytes> {
        self.fields.range::<[u8], R>(range)
    }

    /// The memory estimate of the fields and values (O(1)): the sum of their
    /// lengths plus [`FIELD_OVERHEAD`] per field.
    pub fn mem_bytes(&self) -> u64 {
        self.bytes
    }
}

impl From<BTreeMap<Bytes, Bytes>> for Hash {
    fn from(fields: BTreeMap<Bytes, Bytes>) -> Hash {
        let bytes = fields.iter().map(|(f, v)| pair_bytes(f, v)).sum();
        let mut hash = Hash {
            fields,
            bytes,
            hashtable: false,
        };
        hash.hashtable = !hash.fits_listpack();
        hash
    }
}

impl From<Hash> for BTreeMap<Bytes, Bytes> {
    fn from(hash: Hash) -> BTreeMap<Bytes, Bytes> {
        hash.fields
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
    type IntoIter = btree_map::Iter<'a, Bytes, Bytes>;

    fn into_iter(self) -> Self::IntoIter {
        self.fields.iter()
    }
}

/// Serialized as the map itself (the format snapshots have always used).
impl Serialize for Hash {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        self.fields.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Hash {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Hash, D::Error> {
        BTreeMap::deserialize(deserializer).map(Hash::from)
    }
}

#[cfg(test)]
mod tests;
