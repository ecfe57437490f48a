//! The replicated state machine: 16 databases of keys (strings and hashes) with
//! optional absolute expiry deadlines, Redis 7 command semantics, WATCH
//! versions, `maxmemory` accounting and snapshots.
//!
//! Invariants:
//! - `apply` is deterministic: the same commands in the same order give the same
//!   map and the same outputs on every replica. It reads no clock; the only time it
//!   knows is the `ts_ms` stamped on each command by the leader, and the machine's
//!   `now_ms` only moves forward (the max of the stamps applied). Relative TTLs
//!   become absolute deadlines from that now.
//! - A key whose deadline is before "now" (`now > deadline`, as Redis) is absent
//!   for every command; writes delete it lazily (counted in `expired_keys`),
//!   reads never show it.
//! - No I/O, no clock, no global randomness here: active expiry and eviction
//!   victims are chosen by [`Db::active_expiry_op`] / [`Db::eviction_op`] on the
//!   leader and applied as log entries, so every replica drops the same keys at
//!   the same index.
//! - Access times (LRU/LFU) are local, not replicated: they only rank eviction
//!   candidates on the leader (the leader's view decides) and are not part of
//!   snapshots or equality.
//!
//! Files: [`keymap`] (one database's keys, each a [`key::Key`]: inline
//! when short), [`table`] (the interpreter's command table), [`strings`], [`keys`],
//! [`hash`] (the hash value), [`hashes`] (its commands), [`set`] (the set
//! value), `sets` (its commands), [`list`] (the list value), [`lists`] (its
//! commands), [`expiry`], [`evict`], [`snapshot`],
//! [`zset`] (the sorted-set value), `zsets` and `zsets_store` (its commands),
//! [`blocking`] (timeouts of blocking commands), [`digest`] (DEBUG DIGEST),
//! [`float`] (x87 long double arithmetic for INCRBYFLOAT), [`glob`] (Redis's
//! pattern matcher), [`dump`] (DUMP/RESTORE's serialization), `objects`
//! (DUMP, RESTORE, OBJECT and MEMORY USAGE), [`sort`] (SORT and SORT_RO).

pub(crate) mod bitfield;
pub(crate) mod bitmaps;
pub(crate) mod blocking;
mod chunked;
mod command;
mod deadlines;
pub mod digest;
pub mod dump;
mod evict;
pub(crate) mod expiry;
pub mod float;
pub(crate) mod functions;
pub(crate) mod geo;
mod geo_sort;
pub mod geohash;
pub mod glob;
pub mod hash;
pub(crate) mod hashes;
pub(crate) mod hll;
pub(crate) mod hll_cmds;
mod indexed;
pub(crate) mod key;
pub(crate) mod keymap;
pub(crate) mod keys;
pub(crate) mod lcs;
pub mod list;
pub(crate) mod lists;
pub mod notify;
pub(crate) mod objects;
pub mod pubsub;
pub(crate) mod script;
pub(crate) mod scripting;
pub mod set;
pub(crate) mod sets;
mod snapshot;
pub(crate) mod sort;
pub mod stream;
pub(crate) mod streams;
mod streams_groups;
pub mod string;
pub(crate) mod strings;
pub(crate) mod table;
mod unchanged;
pub use unchanged::may_be_unchanged;
mod value_serde;
pub mod zset;
pub(crate) mod zsets;
mod zsets_store;

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use bytes::Bytes;
use imbl::OrdMap;
use serde::{Deserialize, Serialize};

use crate::acl::{AclOp, Users};

use self::key::Key;
use crate::cmd::{Flags, Kind};
pub use command::{runs_script, Command, DecodeError, Op, Output, WatchToken};
pub use evict::{MaxmemoryPolicy, MAXMEMORY_POLICIES};
/// Running script calls as the node sees them (BUSY, SCRIPT KILL).
pub use script::watch as script_watch;
pub use snapshot::{SnapshotChunks, SnapshotError};

/// Number of databases (`SELECT 0` … `SELECT 15`).
pub const DATABASES: usize = 16;

/// Redis's error texts used by several commands.
pub(crate) mod errors {
    pub const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";
    pub const NOT_INTEGER: &str = "ERR value is not an integer or out of range";
    pub const NOT_FLOAT: &str = "ERR value is not a valid float";
    pub const SYNTAX: &str = "ERR syntax error";
    pub const OVERFLOW: &str = "ERR increment or decrement would overflow";
    pub const NAN_OR_INF: &str = "ERR increment would produce NaN or Infinity";
    pub const DB_RANGE: &str = "ERR DB index is out of range";
    pub const SAME_OBJECT: &str = "ERR source and destination objects are the same";
    pub const NO_SUCH_KEY: &str = "ERR no such key";
    pub const TOO_BIG: &str = "ERR string exceeds maximum allowed size (proto-max-bulk-len)";
    pub const OOM: &str = "OOM command not allowed when used memory > 'maxmemory'.";
}

/// Redis's reply to a `denyoom` command over `maxmemory`.
pub const OOM_TEXT: &str = errors::OOM;

/// Redis's `proto-max-bulk-len`: the largest string value.
pub const MAX_STRING_BYTES: u64 = 512 * 1024 * 1024;

/// A stored value. Serialized by `value_serde` (the snapshot format, with
/// the encoding bits of strings and hashes).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Value {
    /// A string ([`string::Str`]: its bytes and its encoding bit).
    Str(string::Str),
    /// A hash ([`hash::Hash`]; field order is not significant). Behind a
    /// pointer, like the set, the sorted set and the stream: inline they
    /// made every `Value` (and every keyspace slot, most of which hold
    /// strings) 96 bytes instead of 48. [`Shared`] rather than a `Box`, see
    /// there.
    Hash(Shared<hash::Hash>),
    /// A set (`intset` or `hashtable`, see [`set`]).
    Set(Shared<set::Set>),
    /// A list ([`list::List`]: packed nodes, OBJECT ENCODING `quicklist`).
    List(list::List),
    /// A sorted set.
    ZSet(Shared<zset::ZSet>),
    /// A stream ([`stream::Stream`]: entries and consumer groups).
    Stream(Shared<stream::Stream>),
}

/// A collection owned copy-on-write: cloning it is a reference count, and
/// the first write through a shared one copies it ([`Arc::make_mut`]).
///
/// The keyspace is a persistent tree whose copy for a snapshot is O(1);
/// the first write to a key after the copy copies the tree's leaf holding
/// it, and with a `Box` every value in that leaf was deep-copied: one write
/// to a small key next to a million-member hash copied the hash, on every
/// replica at once, while Raft's heartbeats waited. Now only a collection
/// written to while a snapshot still holds it is copied, once per snapshot;
/// and a big hash, set or sorted set keeps its members in `chunked`
/// chunks, so that copy shares them and the writes copy only the chunks
/// they touch.
#[derive(PartialEq, Eq)]
pub struct Shared<T>(Arc<T>);

impl<T> Shared<T> {
    /// Owns `value`.
    pub fn new(value: T) -> Shared<T> {
        Shared(Arc::new(value))
    }

    /// The same allocation (no copy was made)?
    #[cfg(test)]
    pub(crate) fn ptr_eq(a: &Shared<T>, b: &Shared<T>) -> bool {
        Arc::ptr_eq(&a.0, &b.0)
    }
}

impl<T: Clone> Shared<T> {
    /// The value, copied only if it is still shared.
    pub fn into_inner(self) -> T {
        Arc::unwrap_or_clone(self.0)
    }
}

impl<T: Default> Default for Shared<T> {
    fn default() -> Shared<T> {
        Shared::new(T::default())
    }
}

impl<T> Clone for Shared<T> {
    fn clone(&self) -> Shared<T> {
        Shared(Arc::clone(&self.0))
    }
}

impl<T> std::ops::Deref for Shared<T> {
    type Target = T;
    fn deref(&self) -> &T {
        &self.0
    }
}

impl<T: Clone> std::ops::DerefMut for Shared<T> {
    fn deref_mut(&mut self) -> &mut T {
        Arc::make_mut(&mut self.0)
    }
}

impl<T: std::fmt::Debug> std::fmt::Debug for Shared<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.0.fmt(f)
    }
}

impl Value {
    /// Redis's `TYPE` name.
    pub fn type_name(&self) -> &'static str {
        match self {
            Value::Str(_) => "string",
            Value::Hash(_) => "hash",
            Value::Set(_) => "set",
            Value::List(_) => "list",
            Value::ZSet(_) => "zset",
            Value::Stream(_) => "stream",
        }
    }
}

/// Local access information (LRU clock and LFU counter); never replicated.
/// One word per key: the last access in ms since the epoch in the low 56
/// bits (enough for two million years), the LFU counter (at most 255, as in
/// Redis) in the high 8.
#[derive(Default)]
pub struct Access {
    word: AtomicU64,
}

const ACCESS_MS_BITS: u32 = 56;
const ACCESS_MS_MASK: u64 = (1 << ACCESS_MS_BITS) - 1;

fn access_word(last_ms: u64, count: u64) -> u64 {
    (last_ms & ACCESS_MS_MASK) | (count.min(255) << ACCESS_MS_BITS)
}

impl Clone for Access {
    fn clone(&self) -> Access {
        Access {
            word: AtomicU64::new(self.word.load(Ordering::Relaxed)),
        }
    }
}

impl std::fmt::Debug for Access {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let (last_ms, count) = self.load();
        f.debug_struct("Access")
            .field("last_ms", &last_ms)
            .field("count", &count)
            .finish()
    }
}

impl PartialEq for Access {
    fn eq(&self, _: &Access) -> bool {
        true // local information: not part of the replicated state
    }
}
impl Eq for Access {}

/// LFU counters halve for every this many ms without access (Redis's
/// `lfu-decay-time` of one minute).
const LFU_DECAY_MS: u64 = 60_000;

impl Access {
    /// `(last access ms, LFU counter)`.
    fn load(&self) -> (u64, u64) {
        let word = self.word.load(Ordering::Relaxed);
        (word & ACCESS_MS_MASK, word >> ACCESS_MS_BITS)
    }

    fn touch(&self, now_ms: u64) {
        let (last_ms, count) = self.load();
        let decayed = decay(count, last_ms, now_ms);
        self.set(now_ms, decayed.saturating_add(1));
    }

    /// Milliseconds since the last access.
    pub fn idle_ms(&self, now_ms: u64) -> u64 {
        now_ms.saturating_sub(self.load().0)
    }

    /// The LFU counter, decayed to `now_ms`.
    pub fn frequency(&self, now_ms: u64) -> u64 {
        let (last_ms, count) = self.load();
        decay(count, last_ms, now_ms)
    }

    /// Sets the last access time and the LFU counter (RESTORE's IDLETIME
    /// and FREQ).
    pub(crate) fn set(&self, last_ms: u64, count: u64) {
        self.word
            .store(access_word(last_ms, count), Ordering::Relaxed);
    }
}

/// `count` halved for every [`LFU_DECAY_MS`] from `last_ms` to `now_ms`.
fn decay(count: u64, last_ms: u64, now_ms: u64) -> u64 {
    let periods = now_ms.saturating_sub(last_ms) / LFU_DECAY_MS;
    count >> periods.min(63)
}

/// One key's value and metadata.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    /// The value.
    pub value: Value,
    /// Absolute deadline (ms since the epoch), or [`NO_DEADLINE`]: one word
    /// where an `Option<u64>` takes two, in every key's slot. Snapshots
    /// carry it as the `Option` it stands for.
    #[serde(with = "deadline_as_option")]
    deadline: u64,
    /// The map's modification counter at this key's last change (WATCH).
    pub version: u64,
    #[serde(skip)]
    access: Access,
}

/// [`Entry::deadline`] of a key without one. No deadline reaches it: Redis
/// refuses any beyond `i64::MAX` milliseconds, and so does dkv (relative
/// ones are added to the replicated clock).
const NO_DEADLINE: u64 = u64::MAX;

/// `expires_at_ms` as [`Entry::deadline`] keeps it. A deadline of
/// `u64::MAX` (none is made: the clock would have to stand there) is kept
/// one millisecond earlier, which expires the key no sooner.
fn deadline_word(expires_at_ms: Option<u64>) -> u64 {
    expires_at_ms.map_or(NO_DEADLINE, |at| at.min(NO_DEADLINE - 1))
}

/// [`Entry::deadline`] written and read as `Option<u64>`, the form
/// snapshots have always had.
mod deadline_as_option {
    use serde::{Deserialize, Deserializer, Serialize, Serializer};

    use super::NO_DEADLINE;

    pub(super) fn serialize<S: Serializer>(deadline: &u64, s: S) -> Result<S::Ok, S::Error> {
        (*deadline != NO_DEADLINE).then_some(*deadline).serialize(s)
    }

    pub(super) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
        Ok(super::deadline_word(Option::<u64>::deserialize(d)?))
    }
}

impl Entry {
    /// A key's entry, its access record fresh.
    pub(crate) fn new(value: Value, expires_at_ms: Option<u64>, version: u64) -> Entry {
        Entry {
            value,
            deadline: deadline_word(expires_at_ms),
            version,
            access: Access::default(),
        }
    }

    /// Absolute deadline (ms since the epoch), if any.
    pub fn expires_at_ms(&self) -> Option<u64> {
        (self.deadline != NO_DEADLINE).then_some(self.deadline)
    }

    fn set_expires_at_ms(&mut self, expires_at_ms: Option<u64>) {
        self.deadline = deadline_word(expires_at_ms);
    }

    /// True if the key is expired at `now_ms` (Redis: `now > deadline`).
    pub fn is_expired(&self, now_ms: u64) -> bool {
        self.expires_at_ms().is_some_and(|at| now_ms > at)
    }

    /// Local access information.
    pub fn access(&self) -> &Access {
        &self.access
    }
}

/// One database: its keys ([`keymap::KeyMap`], slots in shared 64-slot
/// chunks with a hash index) and its deadlines ([`deadlines::Deadlines`]).
/// A clone costs a reference count per chunk of slots and shares every
/// chunk and the deadline index; a write to either copy first copies the
/// chunk it touches (the deadline index: all of it, which is why a
/// snapshot's copy drops its share at once). A snapshot holds such a clone
/// while it is encoded, so taking it never walks the keyspace, and the live
/// map pays only for the chunks written meanwhile. A value inside a copied
/// chunk is cloned with it (a collection is [`Shared`]: a reference count).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Keyspace {
    pub(crate) map: keymap::KeyMap,
    /// Every key with a TTL, soonest deadline first.
    pub(crate) expiring: deadlines::Deadlines,
}

/// A key's place in its database's deadline index: ordered by deadline, then
/// by a fixed hash of the key, then by the key.
///
/// Keys given a TTL in the same millisecond share a deadline (a rate
/// limiter's `EXPIRE`, a cache's `SET EX` under load), and ordering them by
/// their bytes made every comparison between them in a walk of the tree
/// read two keys' buffers: a cache miss each, a dozen a walk, once the map
/// is bigger than the caches. The hash is in the element, so a walk reads
/// a key only when two hashes are equal (the key it looks for, or a real
/// collision, which costs only speed). Among keys of one deadline the order
/// is the hash's, the same on every replica and in every version (it is
/// written out below, not the standard library's); only the leader's choices
/// read it (active expiry and eviction candidates, proposed as keys).
#[derive(Clone, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Due {
    /// Absolute deadline (ms).
    pub(crate) at: u64,
    tag: u64,
    /// The key (a copy of the map's [`Key`]: inline when short, else a
    /// handle on the map's buffer).
    pub(crate) key: Key,
}

impl Due {
    /// `key`'s place at deadline `at`.
    pub(crate) fn new(at: u64, key: Key) -> Due {
        Due {
            at,
            tag: due_tag(&key),
            key,
        }
    }

    /// Below every key's place at deadline `at` (the start of a range).
    pub(crate) fn first_at(at: u64) -> Due {
        Due {
            at,
            tag: 0,
            key: Key::EMPTY,
        }
    }
}

/// A 64-bit hash of `key`, eight bytes a step (a multiply-rotate mix and a
/// final avalanche), fixed so that the deadline order is too.
pub(crate) fn due_tag(key: &[u8]) -> u64 {
    const K: u64 = 0x9e37_79b9_7f4a_7c15;
    let mix = |h: u64, word: u64| (h ^ word).wrapping_mul(K).rotate_left(29);
    let mut h = key.len() as u64;
    let mut words = key.chunks_exact(8);
    for word in &mut words {
        let mut w = [0u8; 8];
        w.copy_from_slice(word);
        h = mix(h, u64::from_le_bytes(w));
    }
    let rest = words.remainder();
    if !rest.is_empty() {
        let mut w = [0u8; 8];
        w[..rest.len()].copy_from_slice(rest);
        h = mix(h, u64::from_le_bytes(w));
    }
    h ^= h >> 32;
    h = h.wrapping_mul(0xd6e8_feb8_6659_fd93);
    h ^ (h >> 32)
}

impl Keyspace {
    /// The entry if present and not expired at `now_ms`.
    pub(crate) fn live(&self, key: &[u8], now_ms: u64) -> Option<&Entry> {
        self.map.get(key).filter(|e| !e.is_expired(now_ms))
    }

    /// Keys alive at `now_ms`.
    pub(crate) fn live_len(&self, now_ms: u64) -> usize {
        let expired = self
            .expiring
            .iter()
            .take_while(|due| now_ms > due.at)
            .count();
        self.map.len() - expired
    }
}

/// Replicated counters shown by INFO.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stats {
    /// Keys deleted because their TTL passed.
    pub expired_keys: u64,
    /// Keys deleted by eviction under `maxmemory`.
    pub evicted_keys: u64,
}

/// Replicated configuration (set by `CONFIG SET`, a log entry).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct KvConfig {
    /// Bytes (0: no limit), compared with [`Db::used_memory`].
    pub maxmemory: u64,
    /// What happens over `maxmemory`.
    pub policy: MaxmemoryPolicy,
}

/// What INFO shows about the map.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KvInfo {
    /// [`Db::used_memory`].
    pub used_memory: u64,
    /// Configured limit.
    pub maxmemory: u64,
    /// Configured policy name.
    pub policy: &'static str,
    /// Replicated counters.
    pub stats: Stats,
    /// Per non-empty database: `(index, keys, keys with TTL, average TTL ms)`.
    pub keyspace: Vec<(usize, usize, usize, u64)>,
    /// The replicated now.
    pub now_ms: u64,
    /// `notify-keyspace-events` as CONFIG GET shows it.
    pub notify_keyspace_events: String,
    /// Reads on this node that found their key (not replicated).
    pub keyspace_hits: u64,
    /// Reads on this node that did not (not replicated).
    pub keyspace_misses: u64,
    /// Channels with a subscriber anywhere in the cluster (the replicated
    /// registry; INFO's `pubsub_channels`).
    pub pubsub_channels: usize,
    /// Distinct patterns subscribed anywhere in the cluster.
    pub pubsub_patterns: usize,
    /// Shard channels with a subscriber anywhere in the cluster.
    pub pubsub_shard_channels: usize,
}

/// Keys apply created, changed or removed, recorded only while a client
/// blocks on keys (BLPOP ...) or tracks keys (CLIENT TRACKING) somewhere on
/// this node. Local: not replicated, not part of snapshots or equality.
#[derive(Debug, Default)]
struct Touched(Option<Vec<Touch>>);

/// One change apply recorded ([`Db::track_touched`]).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Touch {
    /// A key was created or its value changed (wakes blocked clients).
    Changed(u8, Bytes),
    /// A key was removed, or only its deadline changed.
    Removed(u8, Bytes),
    /// A database was flushed (FLUSHDB, FLUSHALL): its keys' removals are
    /// not recorded one by one.
    Flushed,
}

impl Touched {
    /// Records that `key` was created or changed, if changes are recorded.
    fn changed(&mut self, db: usize, key: &[u8]) {
        if let Some(touched) = &mut self.0 {
            touched.push(Touch::Changed(db as u8, Bytes::copy_from_slice(key)));
        }
    }
}

impl Clone for Touched {
    fn clone(&self) -> Touched {
        Touched(None)
    }
}

impl PartialEq for Touched {
    fn eq(&self, _: &Touched) -> bool {
        true // local information, like `Access`
    }
}
impl Eq for Touched {}

/// Reads that found their key and reads that did not (INFO's
/// `keyspace_hits`/`keyspace_misses`), counted by [`Db::lookup_read`].
/// Local to this node: not replicated, not part of snapshots or equality.
#[derive(Debug, Default)]
struct KeyReads {
    hits: AtomicU64,
    misses: AtomicU64,
}

impl Clone for KeyReads {
    fn clone(&self) -> KeyReads {
        KeyReads::default()
    }
}

impl PartialEq for KeyReads {
    fn eq(&self, _: &KeyReads) -> bool {
        true // local information, like `Access`
    }
}
impl Eq for KeyReads {}

/// Deleted keys remembered for WATCH, at most this many.
const TOMBSTONES: usize = 100_000;

/// The key space.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Db {
    pub(crate) dbs: Vec<Keyspace>,
    now_ms: u64,
    /// Bumped for every key change; a key's `version` is its value then.
    mod_counter: u64,
    /// Deleted keys → counter at deletion, for WATCH on keys now absent.
    /// Persistent like the keyspace, so a snapshot's copy is O(1).
    tombstones: OrdMap<(u8, Bytes), u64>,
    /// The same tombstones as (counter, db, key): the order they are
    /// forgotten in.
    tombstone_log: imbl::OrdSet<(u64, u8, Bytes)>,
    /// Watches older than this cannot be checked against tombstones (forgotten).
    tombstone_horizon: u64,
    used_bytes: u64,
    pub(crate) stats: Stats,
    pub(crate) config: KvConfig,
    /// The ACL users (replicated; shared with readers, copied on change).
    pub(crate) users: Arc<Users>,
    touched: Touched,
    reads: KeyReads,
    /// The script cache (EVAL, SCRIPT LOAD): lower-case sha1 → body.
    /// Replicated state, in snapshots, counted in `used_bytes`.
    pub(crate) scripts: BTreeMap<String, Bytes>,
    /// `math.random`'s generator, one stream across script calls at apply
    /// (Redis 7.0's), replicated and in snapshots.
    pub(crate) script_rand: script::rand48::Rand48,
    /// The user of the entry being applied, when it carries one
    /// ([`Op::AsUser`]): scripts check `redis.call` against it. Set only
    /// during that apply.
    pub(crate) script_user: ScriptUser,
    /// Every Pub/Sub subscription in the cluster (`pubsub.rs`).
    pub(crate) pubsub: pubsub::Registry,
    /// `notify-keyspace-events` (`notify.rs`): replicated, in snapshots.
    pub(crate) notify_flags: u32,
    /// The function libraries (`functions.rs`): replicated, in snapshots,
    /// counted in `used_bytes`.
    pub(crate) functions: functions::Libraries,
    /// The node's view of its running scripts (BUSY, SCRIPT KILL): not
    /// state (`kv::script::watch`).
    pub(crate) script_watch: script::watch::WatchSlot,
    /// Whole keyspaces a flush let go of, for the node to free off its apply
    /// path ([`Db::take_garbage`]): not state.
    garbage: Garbage,
}

/// Data that left the keyspace whole (a flushed database), still to be
/// freed. Dropping a million keys takes about a second; the node hands this
/// to another thread so that its Raft loop is not held meanwhile. Not part
/// of equality, copies or snapshots.
#[derive(Default)]
pub struct Garbage(Vec<Keyspace>);

impl Garbage {
    /// Nothing to free.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl Clone for Garbage {
    fn clone(&self) -> Garbage {
        Garbage::default()
    }
}

impl PartialEq for Garbage {
    fn eq(&self, _: &Garbage) -> bool {
        true
    }
}
impl Eq for Garbage {}

impl std::fmt::Debug for Garbage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Garbage({} keyspaces)", self.0.len())
    }
}

/// The user an entry runs as (local to one apply: not part of snapshots or
/// equality).
#[derive(Clone, Debug, Default)]
pub(crate) struct ScriptUser(pub(crate) Option<String>);

impl PartialEq for ScriptUser {
    fn eq(&self, _: &ScriptUser) -> bool {
        true
    }
}
impl Eq for ScriptUser {}

impl Default for Db {
    fn default() -> Db {
        Db {
            dbs: vec![Keyspace::default(); DATABASES],
            now_ms: 0,
            mod_counter: 0,
            tombstones: OrdMap::new(),
            tombstone_log: imbl::OrdSet::new(),
            tombstone_horizon: 0,
            used_bytes: 0,
            stats: Stats::default(),
            config: KvConfig::default(),
            users: Arc::default(),
            touched: Touched::default(),
            reads: KeyReads::default(),
            scripts: BTreeMap::new(),
            script_rand: script::rand48::Rand48::START,
            script_user: ScriptUser::default(),
            script_watch: script::watch::WatchSlot::default(),
            garbage: Garbage::default(),
            pubsub: pubsub::Registry::default(),
            notify_flags: 0,
            functions: functions::Libraries::default(),
        }
    }
}

/// Where and when a command runs.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Ctx {
    pub db: usize,
    pub now: u64,
    /// Randomness for RANDOMKEY / HRANDFIELD (reads only).
    pub seed: u64,
}

/// Estimated bytes of one cached script (deterministic, like [`entry_bytes`]).
fn script_bytes(sha: &str, body: &[u8]) -> u64 {
    sha.len() as u64 + body.len() as u64 + 64
}

/// Estimated bytes of one entry (deterministic; the basis of `maxmemory`).
fn entry_bytes(key: &[u8], entry: &Entry) -> u64 {
    let value = match &entry.value {
        Value::Str(s) => s.len() as u64,
        Value::Hash(h) => h.mem_bytes(),
        Value::Set(s) => s.mem_bytes(),
        Value::List(l) => l.mem_bytes(),
        Value::ZSet(z) => z.mem_bytes(),
        Value::Stream(s) => s.mem_bytes(),
    };
    key.len() as u64 + value + 64
}

impl Db {
    /// An empty map.
    pub fn new() -> Db {
        Db::default()
    }

    /// Applies one committed command and returns the reply its client gets.
    pub fn apply(&mut self, command: &Command) -> Output {
        // Pub/Sub entries do not move the replicated clock: nothing they do
        // depends on time, and a node's start-up clean-up (an entry that
        // usually drops nothing) must leave the state as it was, so a
        // restart rebuilds exactly the state it stopped with.
        if !matches!(command.op, Op::PubSub(_)) {
            self.now_ms = self.now_ms.max(command.ts_ms);
        }
        let now = self.now_ms;
        // Misses a read left on this thread are not this entry's (reads
        // take theirs; see `notify::take_misses`).
        notify::take_misses();
        let output = self.apply_op(&command.op, now);
        // The keymiss events of the entry's reads after its last other event.
        self.publish_misses();
        output
    }

    fn apply_op(&mut self, op: &Op, now: u64) -> Output {
        match op {
            Op::Set { key, value } => {
                // The same path as `Op::Exec` of `SET key value` in db 0.
                if self.out_of_memory() {
                    return Output::err(errors::OOM);
                }
                let ctx = Ctx {
                    db: 0,
                    now,
                    seed: self.mod_counter ^ now,
                };
                strings::set_plain(self, &ctx, key, value)
            }
            Op::Del { keys } => {
                let ctx = Ctx {
                    db: 0,
                    now,
                    seed: self.mod_counter ^ now,
                };
                keys::del_keys(self, &ctx, keys)
            }
            Op::Exec { db, args } => {
                if usize::from(*db) >= DATABASES {
                    return Output::err(errors::DB_RANGE);
                }
                self.exec(usize::from(*db), args, now, true)
            }
            Op::Multi { commands, watched } => self.exec_multi(commands, watched, now),
            Op::Pops { commands } => {
                let mut outputs = Vec::with_capacity(commands.len());
                for (db, args) in commands {
                    let output = if usize::from(*db) >= DATABASES {
                        Output::err(errors::DB_RANGE)
                    } else {
                        self.exec(usize::from(*db), args, now, true)
                    };
                    let stop = blocking::found_nothing(&output);
                    outputs.push(output);
                    if stop {
                        break;
                    }
                }
                Output::Array(outputs)
            }
            Op::Expire { keys } => {
                let mut count = 0;
                for (db, key) in keys {
                    if usize::from(*db) < DATABASES && self.expire_if_needed(usize::from(*db), key)
                    {
                        count += 1;
                    }
                }
                Output::Integer(count)
            }
            Op::Evict { keys } => {
                let mut count = 0;
                for (db, key) in keys {
                    if usize::from(*db) < DATABASES && self.remove(usize::from(*db), key).is_some()
                    {
                        self.stats.evicted_keys += 1;
                        self.notify(notify::EVICTED, "evicted", usize::from(*db), key);
                        count += 1;
                    }
                }
                Output::Integer(count)
            }
            Op::Acl(op) => self.apply_acl(op),
            Op::AsUser { user, op } => {
                if matches!(**op, Op::AsUser { .. }) {
                    return Output::err("ERR nested user entries");
                }
                let previous = self.script_user.0.replace(user.clone());
                let output = self.apply_op(op, now);
                self.script_user.0 = previous;
                output
            }
            Op::PubSub(pubsub::PubSubOp::KeyMiss { misses }) => {
                for (db, key) in misses {
                    if usize::from(*db) < DATABASES {
                        self.notify(notify::KEY_MISS, "keymiss", usize::from(*db), key);
                    }
                }
                Output::Ok
            }
            Op::PubSub(op) => self.pubsub.apply(op),
            Op::Client { op, .. } => {
                if matches!(**op, Op::Client { .. }) {
                    return Output::err("ERR nested client entries");
                }
                self.apply_op(op, now)
            }
        }
    }

    /// Applies a change to the users; the output is what the ACL command
    /// answers (`OK`, the number deleted, or Redis's error text).
    fn apply_acl(&mut self, op: &AclOp) -> Output {
        let mut users = (*self.users).clone();
        match users.apply(op) {
            Ok(deleted) => {
                self.users = Arc::new(users);
                match op {
                    AclOp::DelUser { .. } => Output::Integer(deleted as i64),
                    _ => Output::Ok,
                }
            }
            Err(error) => Output::err(format!("ERR {error}")),
        }
    }

    /// The ACL users as of the last applied entry (cheap: shared).
    pub fn users(&self) -> Arc<Users> {
        Arc::clone(&self.users)
    }

    /// Runs one key-space command (read or write) at the current now: the
    /// row's own parser and run (`crate::cmd`). Names that are not key-space
    /// commands get an error, the same on every replica.
    fn exec(&mut self, db: usize, args: &[Bytes], now: u64, check_memory: bool) -> Output {
        let ctx = Ctx {
            db,
            now,
            seed: self.mod_counter ^ now,
        };
        let Some(name) = args.first() else {
            return Output::err("ERR empty command");
        };
        if name.eq_ignore_ascii_case(b"config") {
            // The log's form of CONFIG SET for the replicated parameters.
            return evict::config(self, &ctx, args);
        }
        if name.eq_ignore_ascii_case(b"script") {
            // SCRIPT LOAD / FLUSH: changes to the replicated script cache.
            return scripting::apply_script(self, args);
        }
        if name.eq_ignore_ascii_case(b"function") {
            // FUNCTION LOAD / DELETE / FLUSH / RESTORE: the libraries.
            return functions::apply_function(self, args);
        }
        let Some((_, spec)) = crate::cmd::lookup(name) else {
            return Output::err(format!(
                "ERR unknown command '{}'",
                String::from_utf8_lossy(name)
            ));
        };
        if !spec.arity_ok(args.len()) {
            return Output::err(format!(
                "ERR wrong number of arguments for '{}' command",
                spec.name
            ));
        }
        match spec.kind {
            Kind::Read { run, .. } => {
                let output = run(self, &ctx, args);
                scripting::cache_read_body(self, args);
                output
            }
            Kind::Write { run, .. } => {
                if check_memory && spec.flags.contains(Flags::DENYOOM) && self.out_of_memory() {
                    return Output::err(errors::OOM);
                }
                run(self, &ctx, args)
            }
            Kind::Server(_) => {
                Output::err(format!("ERR '{}' is not a key-space command", spec.name))
            }
        }
    }

    fn exec_multi(
        &mut self,
        commands: &[(u8, Vec<Bytes>)],
        watched: &[WatchToken],
        now: u64,
    ) -> Output {
        if watched.iter().any(|w| self.watch_broken(w, now)) {
            return Output::NilArray;
        }
        let denyoom = commands.iter().any(|(_, args)| {
            args.first()
                .and_then(|n| crate::cmd::lookup(n))
                .is_some_and(|(_, s)| s.flags.contains(Flags::DENYOOM))
        });
        if denyoom && self.out_of_memory() {
            return Output::err(errors::OOM);
        }
        let outputs = commands
            .iter()
            .map(|(db, args)| {
                if usize::from(*db) >= DATABASES {
                    Output::err(errors::DB_RANGE)
                } else {
                    self.exec(usize::from(*db), args, now, false)
                }
            })
            .collect();
        Output::Array(outputs)
    }

    /// Runs a read command on this map without changing it (the linearizable
    /// read path, after a ReadIndex). `now_ms` is the read's "now"; `seed` feeds
    /// RANDOMKEY / HRANDFIELD. Write commands are refused with an error.
    pub fn query(&self, db: u8, args: &[Bytes], now_ms: u64, seed: u64) -> Output {
        let Some((_, spec)) = args.first().and_then(|name| crate::cmd::lookup(name)) else {
            return Output::err("ERR unknown command");
        };
        if !spec.arity_ok(args.len()) {
            return Output::err(format!(
                "ERR wrong number of arguments for '{}' command",
                spec.name
            ));
        }
        match spec.kind {
            Kind::Read { check, run } => match check(args) {
                Ok(()) => self.run_read(db, run, args, now_ms, seed),
                Err(error) => error,
            },
            _ => Output::err("ERR not a read command"),
        }
    }

    /// Runs the read `run` (a row's, its arguments checked) in database `db`
    /// at the read's `now_ms` (never before the replicated now).
    pub(crate) fn run_read(
        &self,
        db: u8,
        run: impl FnOnce(&Db, &Ctx, &[Bytes]) -> Output,
        args: &[Bytes],
        now_ms: u64,
        seed: u64,
    ) -> Output {
        let db = usize::from(db);
        if db >= DATABASES {
            return Output::err(errors::DB_RANGE);
        }
        let ctx = Ctx {
            db,
            now: now_ms.max(self.now_ms),
            seed,
        };
        run(self, &ctx, args)
    }

    /// What `WATCH key` records: the modification counter now and whether the
    /// key is alive at `now_ms`.
    pub fn watch_token(&self, db: u8, key: Bytes, now_ms: u64) -> WatchToken {
        let existed = self
            .dbs
            .get(usize::from(db))
            .is_some_and(|ks| ks.live(&key, now_ms.max(self.now_ms)).is_some());
        WatchToken {
            db,
            key,
            seen: self.mod_counter,
            existed,
        }
    }

    /// True if the watched key changed since its token was taken.
    fn watch_broken(&self, token: &WatchToken, now: u64) -> bool {
        let Some(ks) = self.dbs.get(usize::from(token.db)) else {
            return true;
        };
        match ks.map.get(&token.key) {
            Some(entry) if entry.version > token.seen => true,
            Some(entry) if entry.is_expired(now) => token.existed,
            Some(_) => !token.existed,
            None => {
                token.seen < self.tombstone_horizon
                    || self
                        .tombstones
                        .get(&(token.db, token.key.clone()))
                        .is_some_and(|&at| at > token.seen)
                    || token.existed
            }
        }
    }

    /// Starts (or stops) recording the keys apply creates or changes, for
    /// waking clients blocked on them; [`Db::take_touched`] collects them.
    pub fn track_touched(&mut self, on: bool) {
        match (on, &self.touched.0) {
            (true, None) => self.touched.0 = Some(Vec::new()),
            (false, Some(_)) => self.touched.0 = None,
            _ => {}
        }
    }

    /// The keys created or changed since the last call, while tracking.
    pub fn take_touched(&mut self) -> Vec<(u8, Bytes)> {
        self.take_touches()
            .into_iter()
            .filter_map(|touch| match touch {
                Touch::Changed(db, key) => Some((db, key)),
                _ => None,
            })
            .collect()
    }

    /// Every change recorded since the last call, in order, while tracking
    /// (client-side caching invalidates on removals and flushes too).
    pub fn take_touches(&mut self) -> Vec<Touch> {
        self.touched
            .0
            .as_mut()
            .map(std::mem::take)
            .unwrap_or_default()
    }

    fn record_touch(&mut self, db: usize, key: &[u8]) {
        self.touched.changed(db, key);
    }

    fn record_removal(&mut self, db: usize, key: &[u8]) {
        if let Some(touched) = &mut self.touched.0 {
            touched.push(Touch::Removed(db as u8, Bytes::copy_from_slice(key)));
        }
    }

    // ---- the script cache ---------------------------------------------------

    /// The body of the cached script `sha` (lower case).
    pub(crate) fn script(&self, sha: &str) -> Option<&Bytes> {
        self.scripts.get(sha)
    }

    /// Caches `body` under `sha` (no-op when present).
    pub(crate) fn add_script(&mut self, sha: String, body: Bytes) {
        if !self.scripts.contains_key(&sha) {
            self.used_bytes += script_bytes(&sha, &body);
            self.scripts.insert(sha, body);
        }
    }

    /// Empties the script cache (SCRIPT FLUSH).
    pub(crate) fn flush_scripts(&mut self) {
        for (sha, body) in std::mem::take(&mut self.scripts) {
            self.used_bytes -= script_bytes(&sha, &body);
        }
    }

    // ---- mutation helpers: every change goes through these ---------------

    fn bump(&mut self) -> u64 {
        self.mod_counter += 1;
        self.mod_counter
    }

    /// Deletes `key` if it is expired now; true if it did (counted).
    pub(crate) fn expire_if_needed(&mut self, db: usize, key: &[u8]) -> bool {
        let now = self.now_ms;
        let expired = self.dbs[db].map.get(key).is_some_and(|e| e.is_expired(now));
        if expired {
            self.expire(db, key);
        }
        expired
    }

    /// Deletes an expired `key` and counts it (INFO's `expired_keys`).
    fn expire(&mut self, db: usize, key: &[u8]) {
        self.remove(db, key);
        self.stats.expired_keys += 1;
        self.notify(notify::EXPIRED, "expired", db, key);
    }

    /// Removes a key (expired or not) and returns its entry.
    pub(crate) fn remove(&mut self, db: usize, key: &[u8]) -> Option<Entry> {
        let (stored, entry) = self.dbs[db].map.remove(key)?;
        self.record_removal(db, key);
        let ks = &mut self.dbs[db];
        self.used_bytes -= entry_bytes(key, &entry);
        if let Some(at) = entry.expires_at_ms() {
            ks.expiring.remove(&Due::new(at, stored));
        }
        let key = Bytes::copy_from_slice(key);
        let counter = self.bump();
        self.add_tombstone(db as u8, key, counter);
        Some(entry)
    }

    /// Stores `value` at `key` with `expires_at_ms`, replacing any value (a
    /// replaced key keeps its SCAN position). The key is borrowed: the map
    /// keeps its own copy ([`KeyMap::push_new`]), so a caller's `Bytes` is
    /// neither cloned nor kept (a clone is an atomic operation on a buffer
    /// the WAL thread shares, or an allocation for one not yet shared).
    pub(crate) fn put(&mut self, db: usize, key: &[u8], value: Value, expires_at_ms: Option<u64>) {
        self.put_at(db, key, value, expires_at_ms, false);
    }

    /// [`Db::put`] for a write that replaces whatever `key` holds without
    /// reading it first (a plain SET): an expired old entry is deleted and
    /// counted first, exactly as [`Db::exists_for_write`] before `put` would
    /// do, but a live or absent key costs one walk of the tree, not two.
    pub(crate) fn replace(
        &mut self,
        db: usize,
        key: &[u8],
        value: Value,
        expires_at_ms: Option<u64>,
    ) {
        self.put_at(db, key, value, expires_at_ms, true);
    }

    fn put_at(
        &mut self,
        db: usize,
        key: &[u8],
        value: Value,
        expires_at_ms: Option<u64>,
        expire_old: bool,
    ) {
        let now = self.now_ms;
        // One lookup (SET is the hottest write): the slot is found once and
        // filled in place.
        let Db {
            dbs,
            touched,
            mod_counter,
            used_bytes,
            ..
        } = self;
        let ks = &mut dbs[db];
        let (hash, found) = ks.map.lookup(key);
        if let Some(slot) = found {
            if expire_old && ks.map.at(slot).is_some_and(|(_, old)| old.is_expired(now)) {
                // Before anything else, as `exists_for_write` would have.
                self.expire(db, key);
                return self.put_at(db, key, value, expires_at_ms, false);
            }
        }
        // `record_touch` and `bump`, on the fields the slot leaves free.
        touched.changed(db, key);
        *mod_counter += 1;
        let entry = Entry::new(value, expires_at_ms, *mod_counter);
        entry.access.touch(now);
        if let Some(slot) = found {
            // A replaced key keeps its slot, and with it its SCAN position.
            if let Some((stored, old)) = ks.map.at_mut(slot) {
                *used_bytes -= entry_bytes(stored, old);
                if let Some(at) = old.expires_at_ms() {
                    ks.expiring.remove(&Due::new(at, stored.clone()));
                }
                *used_bytes += entry_bytes(stored, &entry);
                if let Some(at) = entry.expires_at_ms() {
                    ks.expiring.insert(Due::new(at, stored.clone()));
                }
                *old = entry;
            }
            return;
        }
        *used_bytes += entry_bytes(key, &entry);
        let slot = ks.map.push_new(hash, key, entry);
        // The map's own copy of the key, not the caller's buffer.
        if let Some((stored, entry)) = ks.map.at(slot) {
            if let Some(at) = entry.expires_at_ms() {
                ks.expiring.insert(Due::new(at, stored.clone()));
            }
        }
        // Redis's dbAdd: a created key is a `new` event.
        if self.notify_flags & notify::NEW != 0 {
            self.notify(notify::NEW, "new", db, key);
        }
    }

    /// Changes a present key's value in place (TTL kept); returns what `f` returns.
    pub(crate) fn modify<R>(
        &mut self,
        db: usize,
        key: &[u8],
        f: impl FnOnce(&mut Value) -> R,
    ) -> Option<R> {
        let slot = self.dbs[db].map.find(key);
        self.modify_slot(db, slot, key, f)
    }

    /// [`Db::modify`] of the key at `slot` (found by the caller; `None`:
    /// absent, which still counts as a change, as `modify` of an absent key
    /// does).
    pub(crate) fn modify_slot<R>(
        &mut self,
        db: usize,
        slot: Option<usize>,
        key: &[u8],
        f: impl FnOnce(&mut Value) -> R,
    ) -> Option<R> {
        self.record_touch(db, key);
        let version = self.bump();
        let now = self.now_ms;
        let (_, entry) = self.dbs[db].map.at_mut(slot?)?;
        let before = entry_bytes(key, entry);
        let result = f(&mut entry.value);
        entry.version = version;
        entry.access.touch(now);
        let after = entry_bytes(key, entry);
        self.used_bytes = self.used_bytes - before + after;
        Some(result)
    }

    /// Changes a present key's value in place without counting it as a
    /// change: no version bump (WATCH does not fire), no touch, no access
    /// record; memory is recounted. For encoding conversions Redis makes
    /// outside any modification (SORT turning a `listpack` sorted set into a
    /// `skiplist`). Deterministic like every apply path.
    pub(crate) fn convert_quietly(&mut self, db: usize, key: &[u8], f: impl FnOnce(&mut Value)) {
        let Some(entry) = self.dbs[db].map.get_mut(key) else {
            return;
        };
        let before = entry_bytes(key, entry);
        f(&mut entry.value);
        let after = entry_bytes(key, entry);
        self.used_bytes = self.used_bytes - before + after;
    }

    /// Sets or clears a present key's deadline.
    /// The deadline is filed under the map's own key, as [`Db::put_at`]
    /// files it.
    pub(crate) fn set_expiry(&mut self, db: usize, key: &[u8], expires_at_ms: Option<u64>) {
        let version = self.bump();
        let Some(slot) = self.dbs[db].map.find(key) else {
            return;
        };
        self.record_removal(db, key);
        let ks = &mut self.dbs[db];
        let Some((stored, entry)) = ks.map.at_mut(slot) else {
            return;
        };
        if let Some(at) = entry.expires_at_ms() {
            ks.expiring.remove(&Due::new(at, stored.clone()));
        }
        entry.set_expires_at_ms(expires_at_ms);
        if let Some(at) = entry.expires_at_ms() {
            ks.expiring.insert(Due::new(at, stored.clone()));
        }
        entry.version = version;
    }

    /// True if `key` holds a live entry, for a write: an expired one is
    /// deleted (and counted) first, a live one's access recorded. One walk
    /// of the tree when the key is live or absent.
    pub(crate) fn exists_for_write(&mut self, db: usize, key: &[u8]) -> bool {
        self.lookup_write(db, key).is_some()
    }

    /// The live entry at `key` for a write: expired keys are deleted first.
    /// One walk of the index (the entry is then read by its slot).
    pub(crate) fn lookup_write(&mut self, db: usize, key: &[u8]) -> Option<&Entry> {
        let now = self.now_ms;
        let slot = self.dbs[db].map.find(key)?;
        if self.dbs[db].map.at(slot)?.1.is_expired(now) {
            self.expire(db, key);
            return None;
        }
        let (_, entry) = self.dbs[db].map.at(slot)?;
        entry.access.touch(now);
        Some(entry)
    }

    /// The live entry at `key` for a read at `now` (records the access).
    pub(crate) fn lookup_read(&self, db: usize, key: &[u8], now: u64) -> Option<&Entry> {
        let entry = self.lookup_read_no_touch(db, key, now)?;
        entry.access.touch(now);
        Some(entry)
    }

    /// [`Db::lookup_read`] without recording the access (Redis's
    /// `LOOKUP_NOTOUCH`: TTL and its forms): counted, and a miss sends
    /// `keymiss`.
    pub(crate) fn lookup_read_no_touch(&self, db: usize, key: &[u8], now: u64) -> Option<&Entry> {
        let Some(entry) = self.dbs[db].live(key, now) else {
            self.reads.misses.fetch_add(1, Ordering::Relaxed);
            self.note_read_miss(db, key);
            return None;
        };
        self.reads.hits.fetch_add(1, Ordering::Relaxed);
        Some(entry)
    }

    /// Zeroes `keyspace_hits`/`keyspace_misses` (CONFIG RESETSTAT).
    pub fn reset_read_stats(&self) {
        self.reads.hits.store(0, Ordering::Relaxed);
        self.reads.misses.store(0, Ordering::Relaxed);
    }

    /// What flushes let go of since the last call, to be dropped elsewhere.
    pub fn take_garbage(&mut self) -> Garbage {
        std::mem::take(&mut self.garbage)
    }

    /// Removes every key of one database.
    ///
    /// A database of more keys than WATCH keeps tombstones for is dropped
    /// whole, in O(1) but for summing its bytes: deleting key by key would
    /// leave only the newest [`TOMBSTONES`] tombstones, all of this flush,
    /// and a horizon that breaks every older watch of an absent key, which
    /// is what moving the horizon to now does at once (and forgetting the
    /// tombstones changes nothing a watch can see: each is older than it).
    /// The keyspace itself goes to [`Db::take_garbage`].
    pub(crate) fn flush(&mut self, db: usize) {
        if self.dbs[db].map.len() > TOMBSTONES {
            let old = std::mem::take(&mut self.dbs[db]);
            let freed: u64 = old.map.iter().map(|(k, e)| entry_bytes(k, e)).sum();
            self.used_bytes -= freed;
            self.tombstone_horizon = self.bump();
            self.tombstones = OrdMap::new();
            self.tombstone_log = imbl::OrdSet::new();
            self.garbage.0.push(old);
            if let Some(touched) = &mut self.touched.0 {
                touched.push(Touch::Flushed);
            }
            return;
        }
        let keys: Vec<Bytes> = self.dbs[db].map.keys().map(Key::to_bytes).collect();
        let recording = self.touched.0.take();
        for key in keys {
            self.remove(db, &key);
        }
        self.touched.0 = recording;
        if let Some(touched) = &mut self.touched.0 {
            touched.push(Touch::Flushed);
        }
    }

    /// Swaps two databases (SWAPDB): watched keys of both count as changed.
    pub(crate) fn swap(&mut self, a: usize, b: usize) {
        if a == b {
            return;
        }
        let mut keys: Vec<Bytes> = self.dbs[a].map.keys().map(Key::to_bytes).collect();
        keys.extend(self.dbs[b].map.keys().map(Key::to_bytes));
        self.dbs.swap(a, b);
        if self.touched.0.is_some() {
            for db in [a, b] {
                for key in &keys {
                    self.record_touch(db, key);
                }
            }
        }
        let version = self.bump();
        for db in [a, b] {
            let ks = &mut self.dbs[db];
            for key in &keys {
                if let Some(entry) = ks.map.get_mut(&key[..]) {
                    entry.version = version;
                }
            }
            for key in &keys {
                self.add_tombstone(db as u8, key.clone(), version);
            }
        }
    }

    /// Remembers that `key` was deleted at `counter`, forgetting the oldest
    /// tombstones past [`TOMBSTONES`]. Each step is O(log n): the log holds
    /// exactly the live tombstones (a key's older one leaves it when it is
    /// deleted again), so it never needs a sweep, which at 200,000 entries
    /// held a replica's apply (and with it Raft's heartbeats) for a quarter
    /// of a second.
    fn add_tombstone(&mut self, db: u8, key: Bytes, counter: u64) {
        if let Some(older) = self.tombstones.insert((db, key.clone()), counter) {
            self.tombstone_log.remove(&(older, db, key.clone()));
        }
        self.tombstone_log.insert((counter, db, key));
        while self.tombstones.len() > TOMBSTONES {
            let Some((at, db, key)) = self.tombstone_log.remove_min() else {
                break;
            };
            self.tombstones.remove(&(db, key));
            self.tombstone_horizon = at;
        }
    }

    // ---- public read API ----------------------------------------------------

    /// The string stored at `key` in database 0 (expiry not checked).
    pub fn get(&self, key: &[u8]) -> Option<&Bytes> {
        match self.dbs[0].map.get(key).map(|e| &e.value) {
            Some(Value::Str(s)) => Some(s.bytes()),
            _ => None,
        }
    }

    /// The entry at `key` in database `db`, expired or not.
    pub fn entry(&self, db: usize, key: &[u8]) -> Option<&Entry> {
        self.dbs.get(db)?.map.get(key)
    }

    /// The keys of database `db` alive at `now_ms`, in slot order (none
    /// for a database out of range). `CLUSTER COUNTKEYSINSLOT` and
    /// `GETKEYSINSLOT` walk them: O(keys), like `KEYS`.
    pub fn live_keys(&self, db: usize, now_ms: u64) -> impl Iterator<Item = &[u8]> {
        self.dbs
            .get(db)
            .into_iter()
            .flat_map(|ks| ks.map.iter())
            .filter(move |(_, entry)| !entry.is_expired(now_ms))
            .map(|(key, _)| &key[..])
    }

    /// True if `key` is present in database 0 (expiry not checked).
    pub fn contains(&self, key: &[u8]) -> bool {
        self.dbs[0].map.contains_key(key)
    }

    /// Number of keys stored in all databases (expired ones not yet deleted included).
    pub fn len(&self) -> usize {
        self.dbs.iter().map(|ks| ks.map.len()).sum()
    }

    /// True when no key is stored.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// The replicated "now": the latest leader timestamp applied.
    pub fn now_ms(&self) -> u64 {
        self.now_ms
    }

    /// Replicated counters.
    pub fn stats(&self) -> &Stats {
        &self.stats
    }

    /// Replicated configuration.
    pub fn config(&self) -> &KvConfig {
        &self.config
    }

    /// The deterministic memory estimate `maxmemory` is compared with: key and
    /// value bytes plus a fixed overhead per key and per hash field.
    pub fn used_memory(&self) -> u64 {
        self.used_bytes
    }

    /// INFO's view of the map at `now_ms`.
    pub fn info(&self, now_ms: u64) -> KvInfo {
        let now = now_ms.max(self.now_ms);
        let keyspace = self
            .dbs
            .iter()
            .enumerate()
            .filter(|(_, ks)| !ks.map.is_empty())
            .map(|(i, ks)| {
                let sample: Vec<u64> = ks
                    .expiring
                    .iter()
                    .take(10_000)
                    .map(|due| due.at.saturating_sub(now))
                    .collect();
                let avg = if sample.is_empty() {
                    0
                } else {
                    sample.iter().sum::<u64>() / sample.len() as u64
                };
                (i, ks.map.len(), ks.expiring.len(), avg)
            })
            .collect();
        KvInfo {
            used_memory: self.used_bytes,
            maxmemory: self.config.maxmemory,
            policy: self.config.policy.name(),
            stats: self.stats.clone(),
            keyspace,
            now_ms: self.now_ms,
            notify_keyspace_events: notify::flags_text(self.notify_flags),
            keyspace_hits: self.reads.hits.load(Ordering::Relaxed),
            keyspace_misses: self.reads.misses.load(Ordering::Relaxed),
            pubsub_channels: self.pubsub.channel_count(false),
            pubsub_patterns: self.pubsub.numpat(),
            pubsub_shard_channels: self.pubsub.channel_count(true),
        }
    }
}

/// Redis's `string2ll`: a strict decimal i64 (no `+`, no leading zeros, no spaces).
pub fn parse_i64(bytes: &[u8]) -> Option<i64> {
    if bytes.is_empty() || bytes.len() >= 21 {
        return None;
    }
    if bytes == b"0" {
        return Some(0);
    }
    let (negative, digits) = match bytes.split_first() {
        Some((b'-', rest)) => (true, rest),
        _ => (false, bytes),
    };
    match digits.first() {
        Some(b'1'..=b'9') => {}
        _ => return None,
    }
    let mut value: u64 = 0;
    for &c in digits {
        if !c.is_ascii_digit() {
            return None;
        }
        value = value.checked_mul(10)?.checked_add(u64::from(c - b'0'))?;
    }
    if negative {
        if value > i64::MAX as u64 + 1 {
            None
        } else {
            Some((value as i64).wrapping_neg())
        }
    } else {
        i64::try_from(value).ok()
    }
}

/// A 64-bit mix (SplitMix64) for deterministic pseudo-random choices.
pub(crate) fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

#[cfg(test)]
mod tests;
