//! The stream value (Redis 7.0.15's `t_stream.c` semantics): entries by id,
//! each a list of field/value pairs, with the stream's counters and its
//! consumer groups (last delivered id, entries read, the pending entries
//! list with delivery times and counts, and the consumers with their own
//! pending lists).
//!
//! Invariants:
//! - Every time here (delivery times, consumers' seen and active times) is a
//!   `now` handed in by apply, the log's replicated time: the value is
//!   identical on every replica at every index.
//! - Entry ids are strictly increasing and never above `last_id`; a `*` id
//!   is `max(now, last_id.ms)` with the sequence bumped when the
//!   millisecond is `last_id`'s, so ids never go backwards, whatever the
//!   leader's clock does.
//! - A group's pending entry is in exactly one consumer's pending set, the
//!   consumer its [`Pending::consumer`] names (checked by
//!   [`Stream::check_pel`] in tests).
//! - Redis's radix-tree nodes are kept as counters only ([`Node`]: how many
//!   entries were put in the node, how many are deleted, an estimate of its
//!   bytes), because approximate trimming (`~`) removes whole nodes only:
//!   dkv trims exactly where Redis does when the node boundaries agree
//!   (always by count; the byte limit is an estimate of the listpack's
//!   size).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use bytes::Bytes;
use imbl::OrdMap;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Redis's `stream-node-max-entries` default.
pub const NODE_MAX_ENTRIES: u64 = 100;
/// Redis's `stream-node-max-bytes` default.
pub const NODE_MAX_BYTES: u64 = 4096;

/// A stream entry id: milliseconds and sequence.
#[derive(
    Clone, Copy, Debug, Default, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize,
)]
pub struct StreamId {
    /// Milliseconds part.
    pub ms: u64,
    /// Sequence part.
    pub seq: u64,
}

impl StreamId {
    /// `0-0`.
    pub const MIN: StreamId = StreamId { ms: 0, seq: 0 };
    /// The largest id.
    pub const MAX: StreamId = StreamId {
        ms: u64::MAX,
        seq: u64::MAX,
    };

    /// An id.
    pub const fn new(ms: u64, seq: u64) -> StreamId {
        StreamId { ms, seq }
    }

    /// The next id (Redis's `streamIncrID`); `None` after the last.
    pub fn incr(self) -> Option<StreamId> {
        if self.seq < u64::MAX {
            Some(StreamId::new(self.ms, self.seq + 1))
        } else if self.ms < u64::MAX {
            Some(StreamId::new(self.ms + 1, 0))
        } else {
            None
        }
    }

    /// The previous id (`streamDecrID`); `None` before `0-0`.
    pub fn decr(self) -> Option<StreamId> {
        if self.seq > 0 {
            Some(StreamId::new(self.ms, self.seq - 1))
        } else if self.ms > 0 {
            Some(StreamId::new(self.ms - 1, u64::MAX))
        } else {
            None
        }
    }

    /// True for `0-0`.
    pub fn is_zero(self) -> bool {
        self == StreamId::MIN
    }

    /// The id as a reply (`ms-seq`).
    pub fn to_bytes(self) -> Bytes {
        Bytes::from(self.to_string())
    }

    /// Redis's `streamGenericParseIDOrReply`: `ms[-seq]`, `-`, `+` (unless
    /// `strict`); `missing_seq` when there is no sequence. With `allow_star`
    /// (XADD's id), `ms-*` parses with `seq_given` false.
    pub fn parse(
        arg: &[u8],
        missing_seq: u64,
        strict: bool,
        allow_star: bool,
    ) -> Option<(StreamId, bool)> {
        if arg.len() > 127 {
            return None;
        }
        if arg == b"-" || arg == b"+" {
            if strict {
                return None;
            }
            let id = if arg == b"-" {
                StreamId::MIN
            } else {
                StreamId::MAX
            };
            return Some((id, true));
        }
        let (ms, seq) = match arg.iter().position(|&c| c == b'-') {
            Some(at) => (&arg[..at], Some(&arg[at + 1..])),
            None => (arg, None),
        };
        let ms = parse_u64(ms)?;
        match seq {
            None => Some((StreamId::new(ms, missing_seq), true)),
            Some(b"*") if allow_star => Some((StreamId::new(ms, 0), false)),
            Some(seq) => Some((StreamId::new(ms, parse_u64(seq)?), true)),
        }
    }
}

impl fmt::Display for StreamId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.ms, self.seq)
    }
}

/// Redis's `string2ull`: decimal digits only (a leading `+`/`-` or a space
/// is refused), at most `u64::MAX`.
fn parse_u64(bytes: &[u8]) -> Option<u64> {
    if bytes.is_empty() || bytes.len() > 20 || !bytes.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(bytes).ok()?.parse().ok()
}

/// One pending (delivered, not acknowledged) entry of a group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Pending {
    /// The consumer that owns it.
    pub consumer: Bytes,
    /// Last delivery (log time, ms).
    pub delivery_time: u64,
    /// Times delivered.
    pub delivery_count: u64,
}

/// One consumer of a group.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Consumer {
    /// Last time it was seen by a command (log time, ms).
    pub seen_time: u64,
    /// Last time it read or claimed an entry (Redis 7.2's `active-time`;
    /// 0: never).
    pub active_time: u64,
    /// Its pending entries (each also in the group's PEL).
    pub pel: BTreeSet<StreamId>,
}

/// Redis's `SCG_INVALID_ENTRIES_READ`.
pub const ENTRIES_READ_UNKNOWN: i64 = -1;

/// A consumer group.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Group {
    /// Last delivered id.
    pub last_id: StreamId,
    /// Logical read counter ([`ENTRIES_READ_UNKNOWN`] when unknown).
    pub entries_read: i64,
    /// Pending entries, by id.
    pub pel: BTreeMap<StreamId, Pending>,
    /// Consumers, by name.
    pub consumers: BTreeMap<Bytes, Consumer>,
}

impl Group {
    /// Creates `name` at `now` unless present; true if created.
    pub fn create_consumer(&mut self, name: &Bytes, now: u64) -> bool {
        if self.consumers.contains_key(name) {
            return false;
        }
        self.consumers.insert(
            name.clone(),
            Consumer {
                seen_time: now,
                active_time: 0,
                pel: BTreeSet::new(),
            },
        );
        true
    }

    /// The consumer `name`, created if absent, its seen time set to `now`
    /// (Redis's lookup with refresh).
    pub fn touch_consumer(&mut self, name: &Bytes, now: u64) -> &mut Consumer {
        let consumer = self.consumers.entry(name.clone()).or_default();
        consumer.seen_time = now;
        consumer
    }

    /// Removes a consumer and its pending entries; how many it had.
    pub fn delete_consumer(&mut self, name: &[u8]) -> Option<usize> {
        let consumer = self.consumers.remove(name)?;
        for id in &consumer.pel {
            self.pel.remove(id);
        }
        Some(consumer.pel.len())
    }

    /// Makes `id` pending for `consumer` (created if absent) at `now` with
    /// `count` deliveries, moving it from another consumer if needed.
    pub fn assign(&mut self, id: StreamId, consumer: &Bytes, now: u64, count: u64) {
        if let Some(old) = self.pel.get(&id) {
            if old.consumer != *consumer {
                if let Some(c) = self.consumers.get_mut(&old.consumer) {
                    c.pel.remove(&id);
                }
            }
        }
        self.pel.insert(
            id,
            Pending {
                consumer: consumer.clone(),
                delivery_time: now,
                delivery_count: count,
            },
        );
        self.consumers
            .entry(consumer.clone())
            .or_default()
            .pel
            .insert(id);
    }

    /// Acknowledges `id`; true if it was pending.
    pub fn ack(&mut self, id: StreamId) -> bool {
        let Some(pending) = self.pel.remove(&id) else {
            return false;
        };
        if let Some(c) = self.consumers.get_mut(&pending.consumer) {
            c.pel.remove(&id);
        }
        true
    }
}

/// Counters of one of Redis's radix-tree nodes (a listpack of entries).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct Node {
    /// The last id put in the node (deleted or not).
    last: StreamId,
    /// Entries not deleted.
    live: u64,
    /// Entries marked deleted.
    deleted: u64,
    /// Estimated listpack bytes.
    bytes: u64,
}

/// The entries by id, with their estimated bytes kept as they change, so
/// that [`Stream::mem_bytes`] (read after every write, for `maxmemory`) does
/// not walk them. Serialized as the bare map, so snapshots are unchanged;
/// the count is rebuilt when one is read.
///
/// A persistent tree, like the keyspace: a stream is a log that only grows
/// until trimmed, and the first XADD after a snapshot's copy must not copy
/// a million entries (it held every replica's apply for 0.4 s).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
struct Entries {
    map: OrdMap<StreamId, Vec<Bytes>>,
    bytes: u64,
}

/// One entry's share of [`Stream::mem_bytes`].
fn entry_mem(fields: &[Bytes]) -> u64 {
    24 + fields.iter().map(|b| b.len() as u64 + 8).sum::<u64>()
}

impl Entries {
    fn insert(&mut self, id: StreamId, fields: Vec<Bytes>) {
        self.bytes += entry_mem(&fields);
        if let Some(old) = self.map.insert(id, fields) {
            self.bytes -= entry_mem(&old);
        }
    }

    fn remove(&mut self, id: &StreamId) -> Option<Vec<Bytes>> {
        let old = self.map.remove(id)?;
        self.bytes -= entry_mem(&old);
        Some(old)
    }

    fn extend(&mut self, entries: impl IntoIterator<Item = (StreamId, Vec<Bytes>)>) {
        for (id, fields) in entries {
            self.insert(id, fields);
        }
    }
}

impl std::ops::Deref for Entries {
    type Target = OrdMap<StreamId, Vec<Bytes>>;

    fn deref(&self) -> &Self::Target {
        &self.map
    }
}

impl Serialize for Entries {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // The encoding of a `BTreeMap`: a length, then the pairs in order.
        serializer.collect_map(self.map.iter())
    }
}

impl<'de> Deserialize<'de> for Entries {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let map = BTreeMap::<StreamId, Vec<Bytes>>::deserialize(deserializer)?;
        let bytes = map.values().map(|f| entry_mem(f)).sum();
        Ok(Entries {
            map: map.into_iter().collect(),
            bytes,
        })
    }
}

/// A stream.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Stream {
    /// Entries: id → field, value, field, value ...
    entries: Entries,
    /// Node master id → counters.
    nodes: BTreeMap<StreamId, Node>,
    /// The last id ever added (or set by XSETID).
    pub last_id: StreamId,
    /// The largest id deleted by XDEL.
    pub max_deleted_id: StreamId,
    /// Entries ever added.
    pub entries_added: u64,
    /// Consumer groups by name.
    pub groups: BTreeMap<Bytes, Group>,
}

/// How to trim (XADD / XTRIM options).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Trim {
    /// Keep at most this many entries.
    MaxLen(u64),
    /// Drop entries below this id.
    MinId(StreamId),
}

/// Estimated listpack bytes of one entry's fields.
fn entry_bytes(fields: &[Bytes]) -> u64 {
    12 + fields.iter().map(|f| f.len() as u64 + 2).sum::<u64>()
}

impl Stream {
    /// An empty stream.
    pub fn new() -> Stream {
        Stream::default()
    }

    /// Number of entries.
    pub fn len(&self) -> u64 {
        self.entries.len() as u64
    }

    /// True without entries.
    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    /// The first entry's id, `0-0` when empty.
    pub fn first_id(&self) -> StreamId {
        self.entries.keys().next().copied().unwrap_or_default()
    }

    /// The last entry's id (Redis's `streamLastValidID`), `0-0` when empty.
    pub fn last_entry_id(&self) -> StreamId {
        self.entries.keys().next_back().copied().unwrap_or_default()
    }

    /// The entry at `id`.
    pub fn get(&self, id: StreamId) -> Option<&[Bytes]> {
        self.entries.get(&id).map(Vec::as_slice)
    }

    /// Entries in `[start, end]`, ascending (or descending with `rev`).
    pub fn range(
        &self,
        start: StreamId,
        end: StreamId,
        rev: bool,
    ) -> Box<dyn Iterator<Item = (StreamId, &[Bytes])> + '_> {
        if start > end {
            return Box::new(std::iter::empty());
        }
        let it = self
            .entries
            .range(start..=end)
            .map(|(id, f)| (*id, f.as_slice()));
        if rev {
            Box::new(it.rev())
        } else {
            Box::new(it)
        }
    }

    /// The id a new entry gets (Redis's `streamAppendItem`): `explicit`
    /// with `seq_given`, `ms-*`, or `*` at `now`. `None`: not greater than
    /// the last id (or no id left).
    pub fn next_id(&self, explicit: Option<(StreamId, bool)>, now: u64) -> Option<StreamId> {
        let id = match explicit {
            Some((id, true)) => id,
            Some((id, false)) => {
                if self.last_id.ms == id.ms {
                    StreamId::new(id.ms, self.last_id.seq.checked_add(1)?)
                } else {
                    id
                }
            }
            None => {
                if now > self.last_id.ms {
                    StreamId::new(now, 0)
                } else {
                    self.last_id.incr()?
                }
            }
        };
        (id > self.last_id).then_some(id)
    }

    /// Appends an entry at `id` (greater than the last id: see
    /// [`Stream::next_id`]).
    pub fn append(&mut self, id: StreamId, fields: Vec<Bytes>) {
        debug_assert!(id > self.last_id);
        let bytes = entry_bytes(&fields);
        let totelelen: u64 = fields.iter().map(|f| f.len() as u64).sum();
        let tail = self.nodes.iter_mut().next_back();
        let fits = tail.as_ref().is_some_and(|(_, node)| {
            node.bytes + totelelen < NODE_MAX_BYTES && node.live + node.deleted < NODE_MAX_ENTRIES
        });
        match tail {
            Some((_, node)) if fits => {
                node.last = id;
                node.live += 1;
                node.bytes += bytes;
            }
            _ => {
                // A new node: its header and master entry (the fields).
                let master = 16
                    + fields
                        .iter()
                        .step_by(2)
                        .map(|f| f.len() as u64 + 2)
                        .sum::<u64>();
                self.nodes.insert(
                    id,
                    Node {
                        last: id,
                        live: 1,
                        deleted: 0,
                        bytes: master + bytes,
                    },
                );
            }
        }
        self.entries.insert(id, fields);
        self.last_id = id;
        self.entries_added += 1;
    }

    fn node_of(&mut self, id: StreamId) -> Option<(StreamId, &mut Node)> {
        self.nodes
            .range_mut(..=id)
            .next_back()
            .map(|(master, node)| (*master, node))
    }

    /// Deletes the entry at `id` (XDEL); true if it was there. Updates the
    /// max deleted id.
    pub fn delete(&mut self, id: StreamId) -> bool {
        if self.entries.remove(&id).is_none() {
            return false;
        }
        if let Some((master, node)) = self.node_of(id) {
            node.live -= 1;
            node.deleted += 1;
            if node.live == 0 {
                self.nodes.remove(&master);
            }
        }
        if id > self.max_deleted_id {
            self.max_deleted_id = id;
        }
        true
    }

    /// Redis's `streamTrim`: removes entries from the head; with `approx`
    /// only whole nodes; at most `limit` entries when non-zero. Returns how
    /// many were removed.
    pub fn trim(&mut self, trim: Trim, approx: bool, limit: u64) -> u64 {
        let mut deleted = 0u64;
        while let Some((&master, node)) = self.nodes.iter().next() {
            if let Trim::MaxLen(max) = trim {
                if self.len() <= max {
                    break;
                }
            }
            let entries = node.live;
            if limit != 0 && deleted + entries > limit {
                break;
            }
            let remove_node = match trim {
                Trim::MaxLen(max) => self.len() - entries >= max,
                Trim::MinId(min) => node.last < min,
            };
            let last = node.last;
            if remove_node {
                self.nodes.remove(&master);
                let ids: Vec<StreamId> = self
                    .entries
                    .range(master..=last)
                    .map(|(id, _)| *id)
                    .collect();
                for id in ids {
                    self.entries.remove(&id);
                }
                deleted += entries;
                continue;
            }
            if approx {
                break;
            }
            // Mark entries deleted inside the node, from its head.
            let ids: Vec<StreamId> = self
                .entries
                .range(master..=last)
                .map(|(id, _)| *id)
                .collect();
            let mut from_node = 0;
            for id in ids {
                let stop = match trim {
                    Trim::MaxLen(max) => self.len() <= max,
                    Trim::MinId(min) => id >= min,
                };
                if stop {
                    break;
                }
                self.entries.remove(&id);
                from_node += 1;
            }
            if let Some(node) = self.nodes.get_mut(&master) {
                node.live -= from_node;
                node.deleted += from_node;
            }
            deleted += from_node;
            break;
        }
        deleted
    }

    /// True if `[start, end]` may hold a deleted entry (Redis's
    /// `streamRangeHasTombstones`).
    pub fn range_has_tombstones(&self, start: StreamId, end: StreamId) -> bool {
        if self.is_empty() || self.max_deleted_id.is_zero() {
            return false;
        }
        if self.first_id() > self.max_deleted_id {
            return false;
        }
        start <= self.max_deleted_id && self.max_deleted_id <= end
    }

    /// Redis's `streamEstimateDistanceFromFirstEverEntry`:
    /// [`ENTRIES_READ_UNKNOWN`] when not known.
    pub fn estimate_distance(&self, id: StreamId) -> i64 {
        if self.entries_added == 0 {
            return 0;
        }
        let added = self.entries_added as i64;
        if self.is_empty() && id <= self.last_id {
            return added;
        }
        if id == self.last_id {
            return added;
        } else if id > self.last_id {
            return ENTRIES_READ_UNKNOWN;
        }
        let first = self.first_id();
        if self.max_deleted_id.is_zero() || self.max_deleted_id < first {
            if id < first {
                return added - self.len() as i64;
            } else if id == first {
                return added - self.len() as i64 + 1;
            }
        }
        ENTRIES_READ_UNKNOWN
    }

    /// A group's lag (`None`: unknown), Redis's `streamReplyWithCGLag`.
    pub fn lag(&self, group: &Group) -> Option<i64> {
        let added = self.entries_added as i64;
        if self.entries_added == 0 {
            return Some(0);
        }
        if group.entries_read != ENTRIES_READ_UNKNOWN
            && !self.range_has_tombstones(group.last_id, StreamId::MAX)
        {
            return Some(added - group.entries_read);
        }
        let read = self.estimate_distance(group.last_id);
        (read != ENTRIES_READ_UNKNOWN).then(|| added - read)
    }

    /// Moves `group`'s last id to `id` (delivered by XREADGROUP `>`),
    /// keeping its read counter as Redis does.
    pub fn advance_group(&mut self, name: &[u8], id: StreamId) {
        let tombstones = self.range_has_tombstones(id, StreamId::MAX);
        let estimate = self.estimate_distance(id);
        let added = self.entries_added;
        let Some(group) = self.groups.get_mut(name) else {
            return;
        };
        if id <= group.last_id {
            return;
        }
        if group.entries_read != ENTRIES_READ_UNKNOWN && !tombstones {
            group.entries_read += 1;
        } else if added != 0 {
            group.entries_read = estimate;
        }
        group.last_id = id;
    }

    /// Each radix-tree node's master id and the last id put in it: the
    /// node's live entries are [`Stream::range`] over that span (DUMP).
    pub(crate) fn node_spans(&self) -> impl Iterator<Item = (StreamId, StreamId)> + '_ {
        self.nodes.iter().map(|(master, node)| (*master, node.last))
    }

    /// Appends a node read from a DUMP payload: its master id, the last id
    /// put in it, how many entries it marks deleted, its listpack's bytes
    /// and its live entries. The caller (the RDB reader) has checked that
    /// `entries` is not empty, ascending, at or after `master`, at or
    /// before `last`, and after every id of the previous nodes.
    pub(crate) fn push_loaded_node(
        &mut self,
        master: StreamId,
        last: StreamId,
        deleted: u64,
        bytes: u64,
        entries: Vec<(StreamId, Vec<Bytes>)>,
    ) {
        self.nodes.insert(
            master,
            Node {
                last,
                live: entries.len() as u64,
                deleted,
                bytes,
            },
        );
        self.entries.extend(entries);
    }

    /// Number of radix-tree keys (listpack nodes), XINFO's `radix-tree-keys`.
    pub fn node_count(&self) -> usize {
        self.nodes.len()
    }

    /// An estimate of Redis's radix-tree node count (XINFO's
    /// `radix-tree-nodes`, which depends on the tree's compression).
    pub fn rax_nodes_estimate(&self) -> usize {
        match self.nodes.len() {
            0 => 1,
            n => 2 * n,
        }
    }

    /// Estimated bytes (MEMORY USAGE, `maxmemory`).
    pub fn mem_bytes(&self) -> u64 {
        let entries = self.entries.bytes;
        let groups: u64 = self
            .groups
            .iter()
            .map(|(name, g)| {
                64 + name.len() as u64
                    + g.pel.len() as u64 * 48
                    + g.consumers
                        .iter()
                        .map(|(n, c)| 48 + n.len() as u64 + c.pel.len() as u64 * 16)
                        .sum::<u64>()
            })
            .sum();
        64 + entries + self.nodes.len() as u64 * 32 + groups
    }

    /// Checks the pending lists agree (tests and debug assertions).
    pub fn check_pel(&self) -> Result<(), String> {
        for (name, group) in &self.groups {
            let mut owned = 0;
            for (cname, consumer) in &group.consumers {
                for id in &consumer.pel {
                    match group.pel.get(id) {
                        Some(p) if p.consumer == *cname => owned += 1,
                        _ => return Err(format!("{name:?}: {id} of {cname:?} not in the PEL")),
                    }
                }
            }
            if owned != group.pel.len() {
                return Err(format!("{name:?}: PEL entries without an owner"));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests;
