//! Streams in DUMP payloads: Redis 7.0's `STREAM_LISTPACKS_2` (type 19),
//! and the `STREAM_LISTPACKS` (type 15) of Redis 5 and 6 when reading.
//!
//! The object is the radix tree of listpack nodes (count, then each node's
//! master id as a 16-byte big-endian key and its listpack), the entry count,
//! the last id, the first id, the largest deleted id and the entries-added
//! counter (lengths), then the groups: name, last-delivered id, entries-read
//! (`-1` written as a 64-bit length), the group's pending list (16-byte ids,
//! delivery time as 8 little-endian bytes, delivery count) and the consumers
//! (name, seen time as 8 little-endian bytes, their pending ids).
//!
//! A node's listpack starts with a master entry (live count, deleted count,
//! the field names of the node's first entry, a 0), then each entry: flags
//! (1 deleted, 2 same fields as the master), the id as deltas from the
//! master id, the field count and names unless flag 2, the values, and the
//! entry's element count.
//!
//! Where the bytes can differ from Redis's DUMP of the same stream: dkv
//! keeps a node's entries but not the ones XDEL or an exact trim removed
//! inside it (Redis keeps them, flagged deleted, until the node empties),
//! so such a node is written with its live entries only, and when its first
//! entry was removed the master fields are the first live entry's. Every
//! stream whose nodes hold no removed entry, and whose node boundaries are
//! Redis's (see [`crate::kv::stream`]), dumps byte for byte as Redis does.
//! Reading, the stored first id is not used: dkv derives it from the entries.
//!
//! The reader refuses (as bad data) what would break the stream's
//! invariants, beyond Redis's `sanitize-dump-payload` checks: node keys and
//! entry ids not strictly increasing, a node without a live entry, counts
//! disagreeing with the entries, a last id below an entry, an entries-added
//! counter below the length, a pending entry owned by no consumer or by two.

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;

use super::DumpError::BadData;
use super::{
    listpack, put_len, put_string, Elem, ListpackWriter, Reader, Result, TYPE_STREAM_LISTPACKS_2,
};
use crate::kv::parse_i64;
use crate::kv::stream::{Consumer, Group, Pending, Stream, StreamId, ENTRIES_READ_UNKNOWN};
use crate::kv::Value;

/// Entry flags.
const FLAG_DELETED: i64 = 1;
const FLAG_SAMEFIELDS: i64 = 2;

fn id_key(id: StreamId) -> [u8; 16] {
    let mut key = [0u8; 16];
    key[..8].copy_from_slice(&id.ms.to_be_bytes());
    key[8..].copy_from_slice(&id.seq.to_be_bytes());
    key
}

fn key_id(key: &[u8]) -> Result<StreamId> {
    if key.len() != 16 {
        return Err(BadData);
    }
    let mut ms = [0u8; 8];
    let mut seq = [0u8; 8];
    ms.copy_from_slice(&key[..8]);
    seq.copy_from_slice(&key[8..]);
    Ok(StreamId::new(
        u64::from_be_bytes(ms),
        u64::from_be_bytes(seq),
    ))
}

fn put_id(out: &mut Vec<u8>, id: StreamId) {
    put_len(out, id.ms);
    put_len(out, id.seq);
}

/// Writes `stream` as `STREAM_LISTPACKS_2` (type byte included).
pub(super) fn put_stream(out: &mut Vec<u8>, stream: &Stream) {
    out.push(TYPE_STREAM_LISTPACKS_2);
    let spans: Vec<(StreamId, StreamId)> = stream.node_spans().collect();
    put_len(out, spans.len() as u64);
    for (master, last) in spans {
        put_string(out, &id_key(master));
        put_string(out, &node_listpack(stream, master, last));
    }
    put_len(out, stream.len());
    put_id(out, stream.last_id);
    put_id(out, stream.first_id());
    put_id(out, stream.max_deleted_id);
    put_len(out, stream.entries_added);
    put_len(out, stream.groups.len() as u64);
    for (name, group) in &stream.groups {
        put_string(out, name);
        put_id(out, group.last_id);
        // Redis writes the signed counter as a 64-bit length (-1: all ones).
        put_len(out, group.entries_read as u64);
        put_len(out, group.pel.len() as u64);
        for (id, pending) in &group.pel {
            out.extend_from_slice(&id_key(*id));
            out.extend_from_slice(&pending.delivery_time.to_le_bytes());
            put_len(out, pending.delivery_count);
        }
        put_len(out, group.consumers.len() as u64);
        for (name, consumer) in &group.consumers {
            put_string(out, name);
            out.extend_from_slice(&consumer.seen_time.to_le_bytes());
            put_len(out, consumer.pel.len() as u64);
            for id in &consumer.pel {
                out.extend_from_slice(&id_key(*id));
            }
        }
    }
}

/// The listpack of the node at `master`, its live entries only.
fn node_listpack(stream: &Stream, master: StreamId, last: StreamId) -> Vec<u8> {
    let entries: Vec<(StreamId, &[Bytes])> = stream.range(master, last, false).collect();
    let master_fields: Vec<&Bytes> = entries
        .first()
        .map(|(_, fields)| fields.iter().step_by(2).collect())
        .unwrap_or_default();
    let mut lp = ListpackWriter::new();
    lp.push_int(entries.len() as i64);
    lp.push_int(0);
    lp.push_int(master_fields.len() as i64);
    for field in &master_fields {
        lp.push(field);
    }
    lp.push_int(0);
    for (id, fields) in entries {
        let pairs = fields.len() / 2;
        let same = pairs == master_fields.len()
            && fields
                .iter()
                .step_by(2)
                .zip(&master_fields)
                .all(|(a, b)| a == *b);
        lp.push_int(if same { FLAG_SAMEFIELDS } else { 0 });
        // Deltas as Redis computes them: unsigned differences read as i64.
        lp.push_int(id.ms.wrapping_sub(master.ms) as i64);
        lp.push_int(id.seq.wrapping_sub(master.seq) as i64);
        if !same {
            lp.push_int(pairs as i64);
        }
        for pair in fields.chunks_exact(2) {
            if !same {
                lp.push(&pair[0]);
            }
            lp.push(&pair[1]);
        }
        let count = if same { pairs + 3 } else { 2 * pairs + 4 };
        lp.push_int(count as i64);
    }
    lp.finish()
}

/// Reads listpack elements in order.
struct Elems<'a> {
    elems: Vec<Elem<'a>>,
    at: usize,
}

impl<'a> Elems<'a> {
    fn next(&mut self) -> Result<Elem<'a>> {
        let e = *self.elems.get(self.at).ok_or(BadData)?;
        self.at += 1;
        Ok(e)
    }

    fn remaining(&self) -> usize {
        self.elems.len() - self.at
    }

    /// An integer element (a string holding a canonical integer counts, as
    /// in Redis's `lpGetIntegerIfValid`).
    fn int(&mut self) -> Result<i64> {
        match self.next()? {
            Elem::Int(v) => Ok(v),
            Elem::Str(s) => parse_i64(s).ok_or(BadData),
        }
    }

    /// A count of following elements, each needing `per` of them.
    fn count(&mut self, per: usize) -> Result<usize> {
        let n = usize::try_from(self.int()?).map_err(|_| BadData)?;
        if n.saturating_mul(per) > self.remaining() {
            return Err(BadData);
        }
        Ok(n)
    }

    fn bytes(&mut self) -> Result<Bytes> {
        Ok(self.next()?.to_bytes())
    }
}

/// Reads one node's listpack; `after` is the last id of the previous nodes.
/// Returns the last id in the node, its deleted count and its live entries.
#[allow(clippy::type_complexity)]
fn read_node(
    master: StreamId,
    blob: &[u8],
    after: Option<StreamId>,
) -> Result<(StreamId, u64, Vec<(StreamId, Vec<Bytes>)>)> {
    let mut lp = Elems {
        elems: listpack(blob)?,
        at: 0,
    };
    let live = u64::try_from(lp.int()?).map_err(|_| BadData)?;
    let deleted = u64::try_from(lp.int()?).map_err(|_| BadData)?;
    let master_count = lp.count(1)?;
    let mut master_fields = Vec::with_capacity(master_count);
    for _ in 0..master_count {
        master_fields.push(lp.bytes()?);
    }
    if lp.int()? != 0 {
        return Err(BadData);
    }
    // Each entry has at least four elements (flags, two deltas, count).
    let total = live.checked_add(deleted).ok_or(BadData)?;
    if live == 0 || total.saturating_mul(4) > lp.remaining() as u64 {
        return Err(BadData);
    }
    let mut entries = Vec::new();
    let mut previous = after;
    let mut seen_deleted = 0u64;
    for _ in 0..total {
        let flags = lp.int()?;
        if flags & !(FLAG_DELETED | FLAG_SAMEFIELDS) != 0 {
            return Err(BadData);
        }
        let ms_delta = u64::try_from(lp.int()?).map_err(|_| BadData)?;
        let seq_delta = lp.int()? as u64;
        let id = StreamId::new(
            master.ms.checked_add(ms_delta).ok_or(BadData)?,
            master.seq.wrapping_add(seq_delta),
        );
        if id < master || previous.is_some_and(|p| id <= p) {
            return Err(BadData);
        }
        previous = Some(id);
        let same = flags & FLAG_SAMEFIELDS != 0;
        let mut fields = Vec::new();
        let pairs = if same {
            if master_fields.len() > lp.remaining() {
                return Err(BadData);
            }
            for field in &master_fields {
                fields.push(field.clone());
                fields.push(lp.bytes()?);
            }
            master_fields.len()
        } else {
            // Field, value, field, value ...
            let pairs = lp.count(2)?;
            for _ in 0..2 * pairs {
                fields.push(lp.bytes()?);
            }
            pairs
        };
        let want = if same { pairs + 3 } else { 2 * pairs + 4 };
        if usize::try_from(lp.int()?).ok() != Some(want) {
            return Err(BadData);
        }
        if flags & FLAG_DELETED != 0 {
            seen_deleted += 1;
        } else {
            entries.push((id, fields));
        }
    }
    if lp.remaining() != 0 || seen_deleted != deleted {
        return Err(BadData);
    }
    let last = previous.ok_or(BadData)?;
    Ok((last, deleted, entries))
}

/// A 16-byte big-endian id written raw (pending lists).
fn raw_id(r: &mut Reader<'_>) -> Result<StreamId> {
    key_id(r.take(16)?)
}

/// `rdbLoadMillisecondTime`: 8 little-endian bytes, signed; dkv's times are
/// never negative.
fn ms_time(r: &mut Reader<'_>) -> Result<u64> {
    let mut b = [0u8; 8];
    b.copy_from_slice(r.take(8)?);
    u64::try_from(i64::from_le_bytes(b)).map_err(|_| BadData)
}

fn read_id(r: &mut Reader<'_>) -> Result<StreamId> {
    let ms = r.len()?;
    let seq = r.len()?;
    Ok(StreamId::new(ms, seq))
}

/// Reads a stream object of type `kind` (15 or 19).
pub(super) fn read_stream(r: &mut Reader<'_>, kind: u8) -> Result<Value> {
    let v2 = kind == TYPE_STREAM_LISTPACKS_2;
    let mut stream = Stream::new();
    // A node is at least a key (17 bytes) and a listpack string.
    let nodes = r.count(18)?;
    let mut previous: Option<StreamId> = None;
    for _ in 0..nodes {
        let master = key_id(&r.string()?)?;
        if previous.is_some_and(|p| master <= p) {
            return Err(BadData);
        }
        let blob = r.string()?;
        let (last, deleted, entries) = read_node(master, &blob, previous)?;
        stream.push_loaded_node(master, last, deleted, blob.len() as u64, entries);
        previous = Some(last);
    }
    if r.len()? != stream.len() {
        return Err(BadData);
    }
    stream.last_id = read_id(r)?;
    if previous.is_some_and(|p| p > stream.last_id) {
        return Err(BadData);
    }
    if v2 {
        read_id(r)?; // The first id: derived from the entries instead.
        stream.max_deleted_id = read_id(r)?;
        stream.entries_added = r.len()?;
    } else {
        stream.entries_added = stream.len();
    }
    if stream.entries_added < stream.len() || i64::try_from(stream.entries_added).is_err() {
        return Err(BadData);
    }
    // A group is at least a name, an id, a counter and two counts.
    let groups = r.count(5)?;
    for _ in 0..groups {
        let name = r.string()?;
        let last_id = read_id(r)?;
        let entries_read = if v2 {
            r.len()? as i64
        } else {
            stream.estimate_distance(last_id)
        };
        if entries_read < ENTRIES_READ_UNKNOWN {
            return Err(BadData);
        }
        let group = read_group(r, last_id, entries_read)?;
        if stream.groups.insert(name, group).is_some() {
            return Err(BadData);
        }
    }
    Ok(Value::Stream(crate::kv::Shared::new(stream)))
}

fn read_group(r: &mut Reader<'_>, last_id: StreamId, entries_read: i64) -> Result<Group> {
    // A pending entry: 16-byte id, 8-byte time, a count.
    let pel_len = r.count(25)?;
    let mut unowned: BTreeMap<StreamId, (u64, u64)> = BTreeMap::new();
    for _ in 0..pel_len {
        let id = raw_id(r)?;
        let time = ms_time(r)?;
        let count = r.len()?;
        if unowned.insert(id, (time, count)).is_some() {
            return Err(BadData);
        }
    }
    let mut pel = BTreeMap::new();
    let mut consumers = BTreeMap::new();
    // A consumer: a name, an 8-byte time, a count.
    let consumer_count = r.count(10)?;
    for _ in 0..consumer_count {
        let name = r.string()?;
        let seen_time = ms_time(r)?;
        let owned = r.count(16)?;
        let mut ids = BTreeSet::new();
        for _ in 0..owned {
            let id = raw_id(r)?;
            let (delivery_time, delivery_count) = unowned.remove(&id).ok_or(BadData)?;
            ids.insert(id);
            pel.insert(
                id,
                Pending {
                    consumer: name.clone(),
                    delivery_time,
                    delivery_count,
                },
            );
        }
        let consumer = Consumer {
            seen_time,
            active_time: 0,
            pel: ids,
        };
        if consumers.insert(name, consumer).is_some() {
            return Err(BadData);
        }
    }
    if !unowned.is_empty() {
        return Err(BadData);
    }
    Ok(Group {
        last_id,
        entries_read,
        pel,
        consumers,
    })
}

#[cfg(test)]
mod tests;
