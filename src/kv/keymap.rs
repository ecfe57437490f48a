//! One database's keys: a vector of `(key, entry)` slots in shared chunks and a
//! hash index from key to slot.
//!
//! Layout, and why:
//! - **Slots** are a [`ChunkVec`] (`kv::chunked`: a list of shared 64-slot
//!   chunks and an unshared tail): cloning it for a snapshot copies the
//!   list, one reference count per 64 keys, and shares every chunk; a write
//!   to either copy first copies the chunk it touches. A slot is two loads
//!   away, where the `imbl::Vector` (an RRB tree) it replaced walked three
//!   or four levels and checked each node's sharing on a write. The B-tree
//!   this replaced kept keys in order, which nothing visible needs, in
//!   16-slot nodes that sequential loads left half full, and needed a
//!   second tree (creation sequence → key) for SCAN: about 300 bytes of
//!   structure per key against about 115 here. A slot's key is a
//!   [`Key`]: a key of up to 23 bytes sits in the slot itself, so a lookup
//!   compares it without following a pointer and it costs no buffer.
//! - **The index** is [`SHARDS`] `hashbrown::HashTable`s of `(slot, hash)`
//!   pairs, keyed by a per-process random SipHash key (as Redis seeds its
//!   dict hash, against crafted collisions). It only answers "where is
//!   this key", so its layout decides nothing a client or a replica sees.
//!   It keeps 32 bits of each key's hash, so growing it never re-reads a
//!   key, and the top 8 pick the shard, so a growth rehashes 1/256 of the
//!   keys: a few hundred microseconds at 8M keys, where one table would
//!   hold apply (and Raft's heartbeats) for a tenth of a second. Redis
//!   rehashes incrementally for the same reason.
//!   It sits behind an `Arc`: a clone shares it, and the first write to a
//!   shared one copies it (one memcpy of 8 bytes a key); the snapshot's
//!   copy drops its share at once ([`KeyMap::without_index`]), so the live
//!   map never pays that copy for a snapshot.
//!
//! Determinism: slot positions are a function of the operations applied —
//! a new key takes the next slot, a deleted key's slot takes the last key
//! (swap-remove) — and snapshots write slots in order and restore them in
//! order, so every replica has every key at the same slot. SCAN, KEYS and
//! RANDOMKEY read positions only. (One exception, harmless to state: a
//! node restarting from a snapshot written before slots existed gets that
//! snapshot's keys in key order and later ones appended, so nodes that
//! restart from such snapshots taken at different indexes hold the same
//! keys at different slots, and a SCAN cursor then means the same only on
//! the node that gave it, until a snapshot installed from the leader
//! replaces the map. The data is the same; eviction victims are chosen by
//! the leader and named in the log.)
//!
//! SCAN (the guarantee Redis gives: a key present for the whole scan is
//! returned at least once): the scan walks slots from the last to the
//! first. Cursor 0 starts at the end; any other cursor `c` means "slots
//! `0..c` are still to be visited". A new key takes a slot past every
//! unvisited one (not needed: it was not there all along). A delete at
//! slot `p` moves the last key to `p`; if that key was still to be visited
//! it was below the cursor, and so is `p`. A map shrinking below the cursor
//! is handled by clamping it.
//!
//! Invariants (checked by the tests after every operation): the index
//! holds exactly one pair per slot, naming that slot, with the top 32 bits
//! of its key's hash; no two slots hold equal keys.

use std::hash::{BuildHasher, RandomState};
use std::sync::Arc;

use bytes::Bytes;
use hashbrown::HashTable;

use super::chunked::ChunkVec;
use super::key::Key;
use super::{Entry, Value};

/// One slot: a key and its entry.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Slot(Key, Entry);

/// What a slot moved out of a chunk leaves behind ([`ChunkVec::pop`]):
/// never read, never in the map.
impl Default for Slot {
    fn default() -> Slot {
        let empty = Value::Str(super::string::Str::new(Bytes::new()));
        Slot(Key::copy(b""), Entry::new(empty, None, 0))
    }
}

/// The index's pair: the slot, and the top 32 bits of its key's hash.
#[derive(Clone, Copy, Debug)]
struct Pos {
    slot: u32,
    hash: u32,
}

/// Index shards, by the top 8 bits of the kept hash.
const SHARDS: usize = 256;

fn shard(hash: u32) -> usize {
    (hash >> 24) as usize
}

/// The top 32 bits of `key`'s hash: what the index keeps.
pub(crate) fn key_hash(hasher: &RandomState, key: &[u8]) -> u32 {
    (hasher.hash_one(key) >> 32) as u32
}

/// hashbrown takes bucket bits from the low end and its tag from the top
/// seven: spread the 32 kept bits over both.
pub(crate) fn spread(hash: u32) -> u64 {
    u64::from(hash).wrapping_mul(0x9E37_79B9_7F4A_7C15)
}

/// One database's keys (see the module docs).
#[derive(Clone, Default)]
pub(crate) struct KeyMap {
    slots: ChunkVec<Slot>,
    /// `None` only in a snapshot's copy, which never looks a key up.
    index: Option<Arc<Vec<HashTable<Pos>>>>,
    hasher: RandomState,
}

fn empty_index() -> Arc<Vec<HashTable<Pos>>> {
    Arc::new(empty_shards())
}

fn empty_shards() -> Vec<HashTable<Pos>> {
    (0..SHARDS).map(|_| HashTable::new()).collect()
}

impl std::fmt::Debug for KeyMap {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_map()
            .entries(self.slots.iter().map(|Slot(k, e)| (k, e)))
            .finish()
    }
}

/// Equal when the same keys hold equal entries at the same slots.
impl PartialEq for KeyMap {
    fn eq(&self, other: &KeyMap) -> bool {
        self.slots.len() == other.slots.len() && self.slots.iter().eq(other.slots.iter())
    }
}

impl Eq for KeyMap {}

impl KeyMap {
    /// An empty map.
    pub(crate) fn new() -> KeyMap {
        KeyMap::default()
    }

    fn hash(&self, key: &[u8]) -> u32 {
        key_hash(&self.hasher, key)
    }

    /// The shard `hash` belongs to, if the map has an index yet.
    fn shard_of(&self, hash: u32) -> Option<&HashTable<Pos>> {
        debug_assert!(
            self.index.is_some() || self.slots.len() == 0,
            "a snapshot's copy of the keyspace is not for lookups"
        );
        self.index.as_ref().map(|shards| &shards[shard(hash)])
    }

    fn index_mut(index: &mut Option<Arc<Vec<HashTable<Pos>>>>) -> &mut Vec<HashTable<Pos>> {
        Arc::make_mut(index.get_or_insert_with(empty_index))
    }

    /// `key`'s hash (for [`KeyMap::push_new`]) and its slot, if it has one:
    /// a SET of a new key then hashes it once (as [`IndexedVec::lookup`]).
    ///
    /// [`IndexedVec::lookup`]: super::indexed::IndexedVec::lookup
    pub(crate) fn lookup(&self, key: &[u8]) -> (u32, Option<usize>) {
        let hash = self.hash(key);
        let found = self.shard_of(hash).and_then(|shard| {
            shard
                .find(spread(hash), |p| {
                    p.hash == hash && *self.slots[p.slot as usize].0 == *key
                })
                .map(|p| p.slot as usize)
        });
        (hash, found)
    }

    /// The slot holding `key`.
    pub(crate) fn find(&self, key: &[u8]) -> Option<usize> {
        self.lookup(key).1
    }

    /// Number of keys.
    pub(crate) fn len(&self) -> usize {
        self.slots.len()
    }

    pub(crate) fn is_empty(&self) -> bool {
        self.slots.len() == 0
    }

    /// The entry at `key`.
    pub(crate) fn get(&self, key: &[u8]) -> Option<&Entry> {
        self.find(key).map(|slot| &self.slots[slot].1)
    }

    /// The entry at `key`, to change in place.
    pub(crate) fn get_mut(&mut self, key: &[u8]) -> Option<&mut Entry> {
        let slot = self.find(key)?;
        Some(&mut self.slots[slot].1)
    }

    pub(crate) fn contains_key(&self, key: &[u8]) -> bool {
        self.find(key).is_some()
    }

    /// The key and entry at `slot` (`slot < len`).
    pub(crate) fn at(&self, slot: usize) -> Option<(&Key, &Entry)> {
        (slot < self.slots.len()).then(|| {
            let Slot(k, e) = &self.slots[slot];
            (k, e)
        })
    }

    /// The key and entry at `slot`, the entry to change in place.
    pub(crate) fn at_mut(&mut self, slot: usize) -> Option<(&Key, &mut Entry)> {
        if slot >= self.slots.len() {
            return None;
        }
        let Slot(k, e) = &mut self.slots[slot];
        Some((&*k, e))
    }

    /// Adds `key`, which must be absent, in the next slot; returns the slot.
    /// `hash` is the key's, from [`KeyMap::lookup`].
    /// The map keeps its own copy of the key ([`Key`]: inline when short):
    /// the caller's may be a slice of a command's payload (a plain SET's,
    /// `kv::command`), whose first value the key would keep alive through
    /// every overwrite.
    pub(crate) fn push_new(&mut self, hash: u32, key: &[u8], entry: Entry) -> usize {
        debug_assert!(!self.contains_key(key));
        debug_assert_eq!(hash, self.hash(key), "hashed by this map");
        let key = Key::copy(key);
        let slot = self.slots.len();
        let pos = Pos {
            slot: u32::try_from(slot).unwrap_or(u32::MAX),
            hash,
        };
        KeyMap::index_mut(&mut self.index)[shard(hash)]
            .insert_unique(spread(hash), pos, |p| spread(p.hash));
        self.slots.push(Slot(key, entry));
        slot
    }

    /// Removes `key`; the last key takes its slot.
    pub(crate) fn remove(&mut self, key: &[u8]) -> Option<(Key, Entry)> {
        let hash = self.hash(key);
        let slots = &self.slots;
        let index = Arc::make_mut(self.index.as_mut()?);
        let found = index[shard(hash)]
            .find_entry(spread(hash), |p| {
                p.hash == hash && *slots[p.slot as usize].0 == *key
            })
            .ok()?;
        let slot = found.get().slot as usize;
        found.remove();
        let last = self.slots.len() - 1;
        if slot != last {
            // The last key moves into the hole: its pair names the new slot.
            let moved_hash = key_hash(&self.hasher, &self.slots[last].0);
            if let Some(p) =
                index[shard(moved_hash)].find_mut(spread(moved_hash), |p| p.slot as usize == last)
            {
                p.slot = slot as u32;
            }
        }
        let Slot(key, entry) = self.slots.swap_remove(slot);
        Some((key, entry))
    }

    /// Every key and entry, by slot.
    pub(crate) fn iter(&self) -> impl Iterator<Item = (&Key, &Entry)> + '_ {
        self.slots.iter().map(|Slot(k, e)| (k, e))
    }

    /// Every key, by slot.
    pub(crate) fn keys(&self) -> impl Iterator<Item = &Key> + '_ {
        self.slots.iter().map(|Slot(k, _)| k)
    }

    /// The slots a SCAN at `cursor` walks, last first: `(slot, key, entry)`
    /// (see the module docs for the cursor).
    pub(crate) fn scan_from(&self, cursor: u64) -> impl Iterator<Item = (usize, &Key, &Entry)> {
        let end = if cursor == 0 {
            self.slots.len()
        } else {
            usize::try_from(cursor).map_or(self.slots.len(), |c| c.min(self.slots.len()))
        };
        (0..end)
            .rev()
            .map(move |slot| (slot, &self.slots[slot].0, &self.slots[slot].1))
    }

    /// A copy without the index, for a snapshot to walk: the live map then
    /// keeps the index to itself and never copies it for the snapshot.
    pub(crate) fn without_index(&self) -> KeyMap {
        KeyMap {
            slots: self.slots.clone(),
            index: None,
            hasher: self.hasher.clone(),
        }
    }

    /// A map of `slots` in this order; `Err(key)` names a repeated key.
    /// The map keeps its own copy of each key, as [`KeyMap::push_new`] does.
    pub(crate) fn from_slots(slots: Vec<(Bytes, Entry)>) -> Result<KeyMap, Bytes> {
        let slots: Vec<(Key, Entry)> = slots
            .into_iter()
            .map(|(key, entry)| (Key::copy(&key), entry))
            .collect();
        let mut map = KeyMap::new();
        let mut index = empty_shards();
        for (slot, (key, _)) in slots.iter().enumerate() {
            let hash = map.hash(key);
            let entry = index[shard(hash)].entry(
                spread(hash),
                |p: &Pos| p.hash == hash && slots[p.slot as usize].0 == *key,
                |p| spread(p.hash),
            );
            match entry {
                hashbrown::hash_table::Entry::Occupied(_) => return Err(key.to_bytes()),
                hashbrown::hash_table::Entry::Vacant(v) => {
                    v.insert(Pos {
                        slot: slot as u32,
                        hash,
                    });
                }
            }
        }
        map.slots.reserve(slots.len());
        for (key, entry) in slots {
            map.slots.push(Slot(key, entry));
        }
        map.index = Some(Arc::new(index));
        Ok(map)
    }

    /// Checks the invariants (tests).
    #[cfg(test)]
    pub(crate) fn check(&self) {
        let shards = self.index.as_deref().map_or(&[][..], |v| &v[..]);
        let pairs: usize = shards.iter().map(HashTable::len).sum();
        assert_eq!(pairs, self.slots.len(), "one pair per slot");
        let mut seen = vec![false; self.slots.len()];
        for (n, p) in shards
            .iter()
            .enumerate()
            .flat_map(|(n, t)| t.iter().map(move |p| (n, p)))
        {
            assert_eq!(n, shard(p.hash), "in its hash's shard");
            let slot = p.slot as usize;
            assert!(!seen[slot], "slot {slot} named twice");
            seen[slot] = true;
            assert_eq!(p.hash, self.hash(&self.slots[slot].0));
        }
        for (slot, Slot(key, _)) in self.slots.iter().enumerate() {
            assert_eq!(self.find(key), Some(slot), "{key:?} found at its slot");
        }
    }
}

/// `map[key]`: the entry of a key known to be present (panics otherwise,
/// as an ordered map's index does).
impl std::ops::Index<&[u8]> for KeyMap {
    type Output = Entry;

    fn index(&self, key: &[u8]) -> &Entry {
        match self.get(key) {
            Some(entry) => entry,
            None => panic!("key {key:?} is not in the map"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::kv::Value;
    use proptest::prelude::*;

    fn entry(version: u64) -> Entry {
        Entry::new(
            Value::Str(crate::kv::string::Str::from(Bytes::from(
                version.to_string(),
            ))),
            None,
            version,
        )
    }

    /// Adds an absent `key`.
    fn add_absent(map: &mut KeyMap, key: &[u8], entry: Entry) -> usize {
        let (hash, found) = map.lookup(key);
        assert_eq!(found, None, "{key:?} is absent");
        map.push_new(hash, key, entry)
    }

    #[derive(Clone, Debug)]
    enum Step {
        Put(u8),
        Remove(u8),
        Clone,
    }

    fn step() -> impl Strategy<Value = Step> {
        prop_oneof![
            3 => (0u8..40).prop_map(Step::Put),
            2 => (0u8..40).prop_map(Step::Remove),
            1 => Just(Step::Clone),
        ]
    }

    /// The model's key `k`: every third one too long to sit in its slot,
    /// so both forms of [`Key`] meet in one map.
    fn model_key(k: u8) -> Bytes {
        let tail = if k % 3 == 0 {
            "-kept-in-a-buffer-of-its-own"
        } else {
            ""
        };
        Bytes::from(format!("key:{k}{tail}"))
    }

    proptest! {
        /// Against a model (a Vec with swap-remove): the same keys at the
        /// same slots, the index right after every step, and a clone taken
        /// midway unchanged by later writes to the original.
        #[test]
        fn behaves_as_a_vector_with_swap_remove(steps in proptest::collection::vec(step(), 1..200)) {
            let mut map = KeyMap::new();
            let mut model: Vec<(Bytes, u64)> = Vec::new();
            let mut frozen: Vec<(KeyMap, Vec<(Bytes, u64)>)> = Vec::new();
            for (n, s) in steps.into_iter().enumerate() {
                let n = n as u64;
                match s {
                    Step::Put(k) => {
                        let key = model_key(k);
                        // `lookup` finds the model's slot, or hashes the key
                        // for `push_new`.
                        match (model.iter().position(|(m, _)| *m == key), map.lookup(&key)) {
                            (Some(i), (_, Some(slot))) => {
                                prop_assert_eq!(slot, i);
                                model[i].1 = n;
                                map.get_mut(&key).unwrap().version = n;
                            }
                            (None, (hash, None)) => {
                                model.push((key.clone(), n));
                                prop_assert_eq!(
                                    map.push_new(hash, &key, entry(n)),
                                    model.len() - 1
                                );
                            }
                            (want, got) => prop_assert!(false, "{want:?} located as {got:?}"),
                        }
                    }
                    Step::Remove(k) => {
                        let key = model_key(k);
                        let want = model.iter().position(|(m, _)| *m == key).map(|i| {
                            model.swap_remove(i).1
                        });
                        prop_assert_eq!(map.remove(&key).map(|(_, e)| e.version), want);
                    }
                    Step::Clone => frozen.push((map.clone(), model.clone())),
                }
                map.check();
                let slots: Vec<(Bytes, u64)> =
                    map.iter().map(|(k, e)| (k.to_bytes(), e.version)).collect();
                prop_assert_eq!(&slots, &model);
            }
            for (copy, model) in frozen {
                copy.check();
                let slots: Vec<(Bytes, u64)> =
                    copy.iter().map(|(k, e)| (k.to_bytes(), e.version)).collect();
                prop_assert_eq!(slots, model);
            }
        }

        /// SCAN's guarantee: a key present for the whole scan is returned,
        /// whatever is added and removed between the calls.
        #[test]
        fn scan_returns_every_key_present_throughout(
            initial in 1usize..60,
            churn in proptest::collection::vec((any::<bool>(), 0u16..400), 0..300),
            count in 1usize..10,
        ) {
            let mut map = KeyMap::new();
            for i in 0..initial {
                add_absent(&mut map, format!("stay:{i}").as_bytes(), entry(0));
            }
            let mut churn = churn.into_iter();
            let mut seen = std::collections::HashSet::new();
            let mut cursor = 0u64;
            loop {
                let mut next = 0;
                for (visited, (slot, key, _)) in map.scan_from(cursor).enumerate() {
                    if visited == count {
                        next = slot as u64 + 1;
                        break;
                    }
                    seen.insert(key.clone());
                }
                cursor = next;
                if cursor == 0 {
                    break;
                }
                for (add, k) in churn.by_ref().take(3) {
                    let key = Bytes::from(format!("churn:{k}"));
                    if add && !map.contains_key(&key) {
                        add_absent(&mut map, &key, entry(1));
                    } else if !add {
                        map.remove(&key);
                    }
                }
            }
            for i in 0..initial {
                let key = Bytes::from(format!("stay:{i}"));
                prop_assert!(seen.contains(&key[..]), "{:?} not returned", key);
            }
        }
    }

    #[test]
    fn from_slots_keeps_the_order_and_refuses_a_repeated_key() {
        let slots: Vec<(Bytes, Entry)> = (0..100)
            .map(|i| (Bytes::from(format!("k{i}")), entry(i)))
            .collect();
        let map = KeyMap::from_slots(slots.clone()).unwrap();
        map.check();
        assert_eq!(
            map.at(42).map(|(k, _)| k.to_bytes()),
            Some(Bytes::from("k42"))
        );
        let mut twice = slots;
        twice.push((Bytes::from("k7"), entry(7)));
        assert_eq!(KeyMap::from_slots(twice).err(), Some(Bytes::from("k7")));
    }

    #[test]
    fn a_snapshot_copy_shares_nothing_the_live_map_then_writes() {
        let mut map = KeyMap::new();
        for i in 0..1000 {
            add_absent(&mut map, format!("k{i}").as_bytes(), entry(i));
        }
        let copy = map.without_index();
        // The live map still owns its index alone: no copy on write.
        assert_eq!(map.index.as_ref().map(Arc::strong_count), Some(1));
        map.remove(b"k3");
        map.get_mut(b"k4").unwrap().version = 9999;
        assert_eq!(copy.len(), 1000);
        assert_eq!(
            copy.at(3).map(|(k, _)| k.to_bytes()),
            Some(Bytes::from("k3"))
        );
        assert_eq!(copy.at(4).map(|(_, e)| e.version), Some(4));
        map.check();
    }
}
