//! Redis's DUMP serialization: one value as an RDB object, so a value dumped
//! from real Redis 7.0 restores into dkv and back.
//!
//! A payload is `type byte, object, RDB version (2 bytes LE), CRC-64 (8
//! bytes LE)`, the checksum ([`crc64`]) covering everything before it. The
//! object is written in the RDB encodings Redis 7.0 writes:
//!
//! - strings: an integer encoding when the text is a canonical integer of
//!   at most 11 characters fitting 32 bits, else LZF-compressed ([`lzf`])
//!   when longer than 20 bytes and compression saves at least 4 bytes, else
//!   raw;
//! - lists: `QUICKLIST_2`, listpack nodes of at most 8 KiB, split where
//!   Redis splits a list built by RPUSH;
//! - sets: `SET_INTSET` (the intset blob) or `SET` (the members);
//! - sorted sets: `ZSET_LISTPACK` for the `listpack` encoding, `ZSET_2`
//!   (binary double scores, greatest first, as Redis) for `skiplist`;
//! - hashes: `HASH_LISTPACK` while the hash fits Redis's listpack limits,
//!   else `HASH`;
//! - streams: `STREAM_LISTPACKS_2`, the radix tree of listpack nodes and
//!   the consumer groups ([`stream`](self::stream) tells where the bytes can
//!   differ from Redis's).
//!
//! [`restore`] reads all of those and the older encodings Redis 5 and 6
//! write (ziplists, quicklist v1, linked lists, `ZSET` with text scores,
//! `STREAM_LISTPACKS`); zipmaps (Redis 2.4) and modules are refused as bad
//! data.
//!
//! The payload is hostile input. Invariants of the reader:
//! - every length and count is checked against the bytes that remain before
//!   anything is read or allocated; nothing is allocated from an unchecked
//!   length (LZF output is bounded by what its input can expand to);
//! - every listpack, ziplist and intset is validated as Redis does with
//!   `sanitize-dump-payload yes` (sizes, terminators, back-lengths, entry
//!   counts, ordered intsets), and a repeated set member, hash field or
//!   sorted-set member is bad data, as is an empty collection or a NaN score;
//! - it never panics: every failure is a [`DumpError`].
//!
//! The object must end exactly where the footer starts (Redis reads the
//! footer bytes as object data if a length runs into them; dkv refuses).
//! Byte-identical output to Redis holds for strings, intsets and sorted sets
//! whose blobs are short enough not to be compressed; longer blobs are
//! compressed by dkv's own LZF compressor and hash listpacks are in field
//! order (Redis: insertion order), so they restore to equal values but the
//! bytes differ.

pub mod crc64;
pub mod lzf;
mod stream;

use std::collections::BTreeMap;

use bytes::Bytes;

use super::hash::Hash;
use super::list::List;
use super::set::{Member, Set};
use super::string::Str;
use super::zset::{AddFlags, AddOutcome, ZSet};
use super::{parse_i64, Value};

/// The RDB version Redis 7.0 writes (and the newest it reads).
pub const RDB_VERSION: u16 = 10;

const TYPE_STRING: u8 = 0;
const TYPE_LIST: u8 = 1;
const TYPE_SET: u8 = 2;
const TYPE_ZSET: u8 = 3;
const TYPE_HASH: u8 = 4;
const TYPE_ZSET_2: u8 = 5;
const TYPE_LIST_ZIPLIST: u8 = 10;
const TYPE_SET_INTSET: u8 = 11;
const TYPE_ZSET_ZIPLIST: u8 = 12;
const TYPE_HASH_ZIPLIST: u8 = 13;
const TYPE_LIST_QUICKLIST: u8 = 14;
const TYPE_HASH_LISTPACK: u8 = 16;
const TYPE_ZSET_LISTPACK: u8 = 17;
const TYPE_LIST_QUICKLIST_2: u8 = 18;
const TYPE_STREAM_LISTPACKS: u8 = 15;
const TYPE_STREAM_LISTPACKS_2: u8 = 19;

/// Quicklist node containers (`QUICKLIST_2`).
const CONTAINER_PLAIN: u64 = 1;
const CONTAINER_PACKED: u64 = 2;

/// Redis 7.0's built-in `hash-max-listpack-entries` (512; the sample
/// redis.conf sets 128) / `hash-max-listpack-value`.
pub const HASH_MAX_LISTPACK_ENTRIES: usize = crate::kv::hash::LISTPACK_MAX_ENTRIES;
/// See [`HASH_MAX_LISTPACK_ENTRIES`].
pub const HASH_MAX_LISTPACK_VALUE: usize = crate::kv::hash::LISTPACK_MAX_VALUE;

/// Bytes of a quicklist node's listpack (`list-max-listpack-size -2`).
const LIST_NODE_MAX_BYTES: usize = 8192;

/// Why a payload was refused; the display is Redis's reply.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DumpError {
    /// Shorter than a footer, a newer RDB version, or a checksum mismatch.
    #[error("ERR DUMP payload version or checksum are wrong")]
    VersionOrChecksum,
    /// The object itself is malformed or not a type dkv holds.
    #[error("ERR Bad data format")]
    BadData,
}

type Result<T> = std::result::Result<T, DumpError>;

// ---- writing ---------------------------------------------------------------

/// The DUMP payload of `value`.
pub fn dump(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    match value {
        Value::Str(s) => {
            out.push(TYPE_STRING);
            put_string(&mut out, s);
        }
        Value::List(list) => {
            out.push(TYPE_LIST_QUICKLIST_2);
            put_list(&mut out, list);
        }
        Value::Set(set) => put_set(&mut out, set),
        Value::ZSet(zset) => put_zset(&mut out, zset),
        Value::Hash(hash) => put_hash(&mut out, hash),
        Value::Stream(s) => stream::put_stream(&mut out, s),
    }
    seal(out)
}

/// `object` followed by the DUMP footer (RDB version, CRC-64): a payload.
pub(crate) fn seal(mut object: Vec<u8>) -> Vec<u8> {
    object.extend_from_slice(&RDB_VERSION.to_le_bytes());
    let crc = crc64::crc64(&object);
    object.extend_from_slice(&crc.to_le_bytes());
    object
}

/// Redis's `rdbSaveLen`.
fn put_len(out: &mut Vec<u8>, len: u64) {
    if len < 1 << 6 {
        out.push(len as u8);
    } else if len < 1 << 14 {
        out.push(((len >> 8) as u8) | 0x40);
        out.push(len as u8);
    } else if let Ok(len) = u32::try_from(len) {
        out.push(0x80);
        out.extend_from_slice(&len.to_be_bytes());
    } else {
        out.push(0x81);
        out.extend_from_slice(&len.to_be_bytes());
    }
}

/// Redis's `rdbSaveRawString`: integer encoding, LZF, or raw.
pub(crate) fn put_string(out: &mut Vec<u8>, s: &[u8]) {
    if s.len() <= 11 {
        if let Some(v) = parse_i64(s) {
            if let Ok(v) = i8::try_from(v) {
                out.extend_from_slice(&[0xc0, v as u8]);
                return;
            } else if let Ok(v) = i16::try_from(v) {
                out.push(0xc1);
                out.extend_from_slice(&v.to_le_bytes());
                return;
            } else if let Ok(v) = i32::try_from(v) {
                out.push(0xc2);
                out.extend_from_slice(&v.to_le_bytes());
                return;
            }
        }
    }
    if s.len() > 20 {
        // Redis keeps the compressed form only if it saves 4 bytes or more.
        if let Some(packed) = lzf::compress(s, s.len() - 4) {
            out.push(0xc3);
            put_len(out, packed.len() as u64);
            put_len(out, s.len() as u64);
            out.extend_from_slice(&packed);
            return;
        }
    }
    put_len(out, s.len() as u64);
    out.extend_from_slice(s);
}

/// A listpack being built (Redis's `lpAppend` encodings).
struct ListpackWriter {
    buf: Vec<u8>,
    count: usize,
}

impl ListpackWriter {
    const HEADER: usize = 6;

    fn new() -> ListpackWriter {
        ListpackWriter {
            buf: vec![0; Self::HEADER],
            count: 0,
        }
    }

    /// Bytes the finished listpack would have.
    fn total(&self) -> usize {
        self.buf.len() + 1
    }

    fn push(&mut self, element: &[u8]) {
        match parse_i64(element) {
            Some(v) => self.push_int(v),
            None => {
                let start = self.buf.len();
                let len = element.len();
                if len < 64 {
                    self.buf.push(0x80 | len as u8);
                } else if len < 4096 {
                    self.buf.push(0xe0 | (len >> 8) as u8);
                    self.buf.push(len as u8);
                } else {
                    self.buf.push(0xf0);
                    self.buf.extend_from_slice(&(len as u32).to_le_bytes());
                }
                self.buf.extend_from_slice(element);
                self.finish_entry(start);
            }
        }
    }

    fn push_int(&mut self, v: i64) {
        let start = self.buf.len();
        let (bytes, len) = int_entry(v);
        self.buf.extend_from_slice(&bytes[..len]);
        self.finish_entry(start);
    }

    fn finish_entry(&mut self, start: usize) {
        let len = self.buf.len() - start;
        put_backlen(&mut self.buf, len);
        self.count += 1;
    }

    fn finish(mut self) -> Vec<u8> {
        self.buf.push(0xff);
        let total = self.buf.len() as u32;
        self.buf[0..4].copy_from_slice(&total.to_le_bytes());
        let count = u16::try_from(self.count).unwrap_or(u16::MAX);
        self.buf[4..6].copy_from_slice(&count.to_le_bytes());
        self.buf
    }
}

/// A listpack integer entry (encoding and data) and its length.
fn int_entry(v: i64) -> ([u8; 9], usize) {
    let mut b = [0u8; 9];
    if (0..=127).contains(&v) {
        b[0] = v as u8;
        (b, 1)
    } else if (-4096..=4095).contains(&v) {
        let u = (v as u16) & 0x1fff;
        b[0] = 0xc0 | (u >> 8) as u8;
        b[1] = u as u8;
        (b, 2)
    } else if let Ok(v) = i16::try_from(v) {
        b[0] = 0xf1;
        b[1..3].copy_from_slice(&v.to_le_bytes());
        (b, 3)
    } else if (-(1 << 23)..(1 << 23)).contains(&v) {
        b[0] = 0xf2;
        b[1..4].copy_from_slice(&(v as i32).to_le_bytes()[..3]);
        (b, 4)
    } else if let Ok(v) = i32::try_from(v) {
        b[0] = 0xf3;
        b[1..5].copy_from_slice(&v.to_le_bytes());
        (b, 5)
    } else {
        b[0] = 0xf4;
        b[1..9].copy_from_slice(&v.to_le_bytes());
        (b, 9)
    }
}

fn backlen_size(len: usize) -> usize {
    match len {
        0..=127 => 1,
        128..16383 => 2,
        16383..2_097_151 => 3,
        2_097_151..268_435_455 => 4,
        _ => 5,
    }
}

/// Redis's `lpEncodeBacklen`: the entry length in 7-bit groups, high
/// group first; every byte but the first has its top bit set, so the
/// length reads backwards from the entry's last byte.
fn put_backlen(out: &mut Vec<u8>, len: usize) {
    let size = backlen_size(len);
    for i in (0..size).rev() {
        let mut byte = ((len >> (7 * i)) & 0x7f) as u8;
        if i + 1 != size {
            byte |= 0x80;
        }
        out.push(byte);
    }
}

fn put_list(out: &mut Vec<u8>, list: &List) {
    let mut nodes: Vec<Vec<u8>> = Vec::new();
    let mut node = ListpackWriter::new();
    for element in list.iter() {
        // Redis's `_quicklistNodeAllowInsert` for RPUSH: the node's bytes,
        // the element's length and 8 bytes of estimated overhead.
        if node.count > 0 && node.total() + element.len() + 8 > LIST_NODE_MAX_BYTES {
            nodes.push(std::mem::replace(&mut node, ListpackWriter::new()).finish());
        }
        node.push(element);
    }
    if node.count > 0 {
        nodes.push(node.finish());
    }
    put_len(out, nodes.len() as u64);
    for node in nodes {
        put_len(out, CONTAINER_PACKED);
        put_string(out, &node);
    }
}

fn put_set(out: &mut Vec<u8>, set: &Set) {
    if let Some(width) = set.intset_width() {
        out.push(TYPE_SET_INTSET);
        let mut blob = Vec::with_capacity(8 + set.len() * usize::from(width));
        blob.extend_from_slice(&u32::from(width).to_le_bytes());
        blob.extend_from_slice(&(set.len() as u32).to_le_bytes());
        for member in set.iter() {
            let v = match member {
                Member::Int(v) => v,
                Member::Bytes(b) => parse_i64(b).unwrap_or_default(),
            };
            blob.extend_from_slice(&v.to_le_bytes()[..usize::from(width)]);
        }
        put_string(out, &blob);
    } else {
        out.push(TYPE_SET);
        put_len(out, set.len() as u64);
        for member in set.iter() {
            member.with_bytes(|b| put_string(out, b));
        }
    }
}

/// Redis's `double2ll`: the score as an integer when it is one exactly.
fn score_as_integer(score: f64) -> Option<i64> {
    const HALF: f64 = (i64::MAX / 2) as f64;
    if !(-HALF..=HALF).contains(&score) {
        return None;
    }
    let v = score as i64;
    (v as f64 == score).then_some(v)
}

fn put_zset(out: &mut Vec<u8>, zset: &ZSet) {
    if zset.encoding() == "listpack" {
        out.push(TYPE_ZSET_LISTPACK);
        let mut lp = ListpackWriter::new();
        for (member, score) in zset.iter() {
            lp.push(member);
            match score_as_integer(score) {
                Some(v) => lp.push_int(v),
                _ => lp.push(super::zset::format_score(score).as_bytes()),
            }
        }
        put_string(out, &lp.finish());
    } else {
        out.push(TYPE_ZSET_2);
        put_len(out, zset.len() as u64);
        for (member, score) in zset.iter_from(zset.len().saturating_sub(1), true) {
            put_string(out, member);
            out.extend_from_slice(&score.to_le_bytes());
        }
    }
}

/// True if Redis would keep `hash` as a listpack: it was never too large
/// (see [`Hash::is_hashtable`]).
pub fn hash_is_listpack(hash: &Hash) -> bool {
    !hash.is_hashtable()
}

fn put_hash(out: &mut Vec<u8>, hash: &Hash) {
    if hash_is_listpack(hash) {
        out.push(TYPE_HASH_LISTPACK);
        let mut lp = ListpackWriter::new();
        for (field, value) in hash {
            lp.push(field);
            lp.push(value);
        }
        put_string(out, &lp.finish());
    } else {
        out.push(TYPE_HASH);
        put_len(out, hash.len() as u64);
        for (field, value) in hash {
            put_string(out, field);
            put_string(out, value);
        }
    }
}

// ---- reading ---------------------------------------------------------------

/// Checks the footer of `payload` (Redis's `verifyDumpPayload`) and returns
/// the object bytes before it.
pub fn verify(payload: &[u8]) -> Result<&[u8]> {
    if payload.len() < 10 {
        return Err(DumpError::VersionOrChecksum);
    }
    let (body, footer) = payload.split_at(payload.len() - 10);
    let version = u16::from_le_bytes([footer[0], footer[1]]);
    if version > RDB_VERSION {
        return Err(DumpError::VersionOrChecksum);
    }
    let mut crc = [0u8; 8];
    crc.copy_from_slice(&footer[2..]);
    if crc64::crc64(&payload[..payload.len() - 8]) != u64::from_le_bytes(crc) {
        return Err(DumpError::VersionOrChecksum);
    }
    Ok(body)
}

/// The value a DUMP payload holds (footer checked first).
pub fn restore(payload: &[u8]) -> Result<Value> {
    let body = verify(payload)?;
    let mut r = Reader { buf: body };
    let kind = r.byte()?;
    let value = r.object(kind)?;
    if !r.buf.is_empty() {
        return Err(DumpError::BadData);
    }
    Ok(value)
}

/// Reads RDB strings and lengths from a payload's object bytes (FUNCTION
/// RESTORE's libraries); every read is checked, `None` when it runs out.
pub(crate) struct StringReader<'a>(Reader<'a>);

impl<'a> StringReader<'a> {
    /// Reads `buf`.
    pub(crate) fn new(buf: &'a [u8]) -> StringReader<'a> {
        StringReader(Reader { buf })
    }

    /// True when everything was read.
    pub(crate) fn is_empty(&self) -> bool {
        self.0.buf.is_empty()
    }

    /// One byte.
    pub(crate) fn byte(&mut self) -> Option<u8> {
        self.0.byte().ok()
    }

    /// A length (`rdbLoadLen`).
    pub(crate) fn len(&mut self) -> Option<u64> {
        self.0.len().ok()
    }

    /// A string in any of its encodings (`rdbGenericLoadStringObject`).
    pub(crate) fn string(&mut self) -> Option<Bytes> {
        self.0.string().ok()
    }
}

/// A length or a string's special encoding (Redis's `rdbLoadLenByRef`).
enum Len {
    Plain(u64),
    Encoded(u8),
}

struct Reader<'a> {
    buf: &'a [u8],
}

impl<'a> Reader<'a> {
    fn take(&mut self, n: u64) -> Result<&'a [u8]> {
        let n = usize::try_from(n)
            .ok()
            .filter(|&n| n <= self.buf.len())
            .ok_or(DumpError::BadData)?;
        let (head, tail) = self.buf.split_at(n);
        self.buf = tail;
        Ok(head)
    }

    fn byte(&mut self) -> Result<u8> {
        Ok(self.take(1)?[0])
    }

    fn len_or_encoding(&mut self) -> Result<Len> {
        let first = self.byte()?;
        Ok(match first >> 6 {
            0 => Len::Plain(u64::from(first & 0x3f)),
            1 => Len::Plain((u64::from(first & 0x3f) << 8) | u64::from(self.byte()?)),
            2 => match first {
                0x80 => {
                    let mut b = [0u8; 4];
                    b.copy_from_slice(self.take(4)?);
                    Len::Plain(u64::from(u32::from_be_bytes(b)))
                }
                0x81 => {
                    let mut b = [0u8; 8];
                    b.copy_from_slice(self.take(8)?);
                    Len::Plain(u64::from_be_bytes(b))
                }
                _ => return Err(DumpError::BadData),
            },
            _ => Len::Encoded(first & 0x3f),
        })
    }

    /// A length (an encoded form reads as its type number, as Redis's
    /// `rdbLoadLen` does when the caller does not ask).
    fn len(&mut self) -> Result<u64> {
        Ok(match self.len_or_encoding()? {
            Len::Plain(n) => n,
            Len::Encoded(e) => u64::from(e),
        })
    }

    /// A count of items each at least `min_bytes` long: more than the
    /// remaining bytes could hold is bad data at once.
    fn count(&mut self, min_bytes: u64) -> Result<usize> {
        let n = self.len()?;
        if n.saturating_mul(min_bytes) > self.buf.len() as u64 {
            return Err(DumpError::BadData);
        }
        usize::try_from(n).map_err(|_| DumpError::BadData)
    }

    /// Redis's `rdbGenericLoadStringObject`.
    fn string(&mut self) -> Result<Bytes> {
        match self.len_or_encoding()? {
            Len::Plain(n) => Ok(Bytes::copy_from_slice(self.take(n)?)),
            Len::Encoded(0) => Ok(int_text(i64::from(self.byte()? as i8))),
            Len::Encoded(1) => {
                let b = self.take(2)?;
                Ok(int_text(i64::from(i16::from_le_bytes([b[0], b[1]]))))
            }
            Len::Encoded(2) => {
                let b = self.take(4)?;
                Ok(int_text(i64::from(i32::from_le_bytes([
                    b[0], b[1], b[2], b[3],
                ]))))
            }
            Len::Encoded(3) => {
                let packed_len = self.len()?;
                let len = self.len()?;
                let packed = self.take(packed_len)?;
                let len = usize::try_from(len).map_err(|_| DumpError::BadData)?;
                lzf::decompress(packed, len)
                    .map(Bytes::from)
                    .ok_or(DumpError::BadData)
            }
            Len::Encoded(_) => Err(DumpError::BadData),
        }
    }

    /// `ZSET`'s text double: a length byte (253 nan, 254 inf, 255 -inf).
    fn text_double(&mut self) -> Result<f64> {
        match self.byte()? {
            255 => Ok(f64::NEG_INFINITY),
            254 => Ok(f64::INFINITY),
            253 => Ok(f64::NAN),
            len => {
                let text = self.take(u64::from(len))?;
                parse_double(text).ok_or(DumpError::BadData)
            }
        }
    }

    fn binary_double(&mut self) -> Result<f64> {
        let mut b = [0u8; 8];
        b.copy_from_slice(self.take(8)?);
        Ok(f64::from_le_bytes(b))
    }

    fn object(&mut self, kind: u8) -> Result<Value> {
        match kind {
            TYPE_STRING => Ok(Value::Str(Str::new(self.string()?))),
            TYPE_LIST => {
                let n = self.count(1)?;
                let mut list = List::new();
                for _ in 0..n {
                    list.push_back(&self.string()?);
                }
                non_empty_list(list)
            }
            TYPE_SET => {
                let n = self.count(1)?;
                let mut set = Set::new();
                for _ in 0..n {
                    if !set.insert(&self.string()?) {
                        return Err(DumpError::BadData);
                    }
                }
                non_empty(Value::Set(crate::kv::Shared::new(set)), n)
            }
            TYPE_ZSET | TYPE_ZSET_2 => {
                let n = self.count(2)?;
                let mut zset = ZSet::new_skiplist();
                for _ in 0..n {
                    let member = self.string()?;
                    let score = if kind == TYPE_ZSET_2 {
                        self.binary_double()?
                    } else {
                        self.text_double()?
                    };
                    zadd_new(&mut zset, &member, score)?;
                }
                zset.convert_to_packed_if_small();
                non_empty(Value::ZSet(crate::kv::Shared::new(zset)), n)
            }
            TYPE_HASH => {
                let n = self.count(2)?;
                let mut hash = BTreeMap::new();
                for _ in 0..n {
                    let field = self.string()?;
                    let value = self.string()?;
                    if hash.insert(field, value).is_some() {
                        return Err(DumpError::BadData);
                    }
                }
                non_empty(Value::Hash(crate::kv::Shared::new(hash.into())), n)
            }
            TYPE_LIST_QUICKLIST | TYPE_LIST_QUICKLIST_2 => {
                let n = self.count(2)?;
                let mut list = List::new();
                for _ in 0..n {
                    let container = if kind == TYPE_LIST_QUICKLIST_2 {
                        self.len()?
                    } else {
                        CONTAINER_PACKED
                    };
                    if container != CONTAINER_PACKED && container != CONTAINER_PLAIN {
                        return Err(DumpError::BadData);
                    }
                    let blob = self.string()?;
                    if blob.is_empty() {
                        return Err(DumpError::BadData);
                    }
                    if container == CONTAINER_PLAIN {
                        list.push_back(&blob);
                    } else if kind == TYPE_LIST_QUICKLIST_2 {
                        for e in listpack(&blob)? {
                            e.with_bytes(|b| list.push_back(b));
                        }
                    } else {
                        for e in ziplist(&blob)? {
                            e.with_bytes(|b| list.push_back(b));
                        }
                    }
                }
                non_empty_list(list)
            }
            TYPE_LIST_ZIPLIST => {
                let mut list = List::new();
                for e in ziplist(&self.string()?)? {
                    e.with_bytes(|b| list.push_back(b));
                }
                non_empty_list(list)
            }
            TYPE_SET_INTSET => {
                intset(&self.string()?).map(|set| Value::Set(crate::kv::Shared::new(set)))
            }
            TYPE_ZSET_LISTPACK | TYPE_ZSET_ZIPLIST => {
                let blob = self.string()?;
                let entries = if kind == TYPE_ZSET_LISTPACK {
                    listpack(&blob)?
                } else {
                    ziplist(&blob)?
                };
                if entries.len() % 2 != 0 {
                    return Err(DumpError::BadData);
                }
                let mut zset = ZSet::new();
                for pair in entries.chunks(2) {
                    let score = match pair[1] {
                        Elem::Int(v) => v as f64,
                        Elem::Str(s) => parse_double(s).ok_or(DumpError::BadData)?,
                    };
                    pair[0].with_bytes(|m| zadd_new(&mut zset, m, score))?;
                }
                non_empty(Value::ZSet(crate::kv::Shared::new(zset)), entries.len())
            }
            TYPE_HASH_LISTPACK | TYPE_HASH_ZIPLIST => {
                let blob = self.string()?;
                let entries = if kind == TYPE_HASH_LISTPACK {
                    listpack(&blob)?
                } else {
                    ziplist(&blob)?
                };
                if entries.len() % 2 != 0 {
                    return Err(DumpError::BadData);
                }
                let mut hash = BTreeMap::new();
                for pair in entries.chunks(2) {
                    let field = pair[0].to_bytes();
                    if hash.insert(field, pair[1].to_bytes()).is_some() {
                        return Err(DumpError::BadData);
                    }
                }
                non_empty(
                    Value::Hash(crate::kv::Shared::new(hash.into())),
                    entries.len(),
                )
            }
            TYPE_STREAM_LISTPACKS | TYPE_STREAM_LISTPACKS_2 => stream::read_stream(self, kind),
            // Zipmaps (Redis 2.4), modules and unknown types.
            _ => Err(DumpError::BadData),
        }
    }
}

fn int_text(v: i64) -> Bytes {
    Bytes::from(v.to_string())
}

/// A score written as text (listpack, ziplist, `ZSET`): C's `strtod` of the
/// whole text; NaN is bad data (Redis refuses NaN scores).
fn parse_double(text: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(text).ok()?;
    let lower = text.to_ascii_lowercase();
    let value = match lower.trim_start_matches(['+', '-']) {
        "inf" | "infinity" => {
            if lower.starts_with('-') {
                f64::NEG_INFINITY
            } else {
                f64::INFINITY
            }
        }
        _ => super::zsets::parse_score(text.as_bytes())?,
    };
    (!value.is_nan()).then_some(value)
}

fn zadd_new(zset: &mut ZSet, member: &[u8], score: f64) -> Result<()> {
    if score.is_nan() {
        return Err(DumpError::BadData);
    }
    match zset.add(member, score, AddFlags::default()) {
        AddOutcome::Added(_) => Ok(()),
        _ => Err(DumpError::BadData),
    }
}

fn non_empty(value: Value, n: usize) -> Result<Value> {
    if n == 0 {
        Err(DumpError::BadData)
    } else {
        Ok(value)
    }
}

fn non_empty_list(list: List) -> Result<Value> {
    if list.is_empty() {
        Err(DumpError::BadData)
    } else {
        Ok(Value::List(list))
    }
}

/// One entry of a listpack or ziplist.
#[derive(Clone, Copy)]
enum Elem<'a> {
    Int(i64),
    Str(&'a [u8]),
}

impl Elem<'_> {
    fn with_bytes<R>(self, f: impl FnOnce(&[u8]) -> R) -> R {
        match self {
            Elem::Int(v) => f(v.to_string().as_bytes()),
            Elem::Str(s) => f(s),
        }
    }

    fn to_bytes(self) -> Bytes {
        match self {
            Elem::Int(v) => int_text(v),
            Elem::Str(s) => Bytes::copy_from_slice(s),
        }
    }
}

fn le(bytes: &[u8]) -> u64 {
    bytes
        .iter()
        .rev()
        .fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

/// Sign-extends the low `bits` of `v`.
fn sign_extend(v: u64, bits: u32) -> i64 {
    let shift = 64 - bits;
    ((v << shift) as i64) >> shift
}

/// The entries of a listpack, validated as Redis's deep
/// `lpValidateIntegrity`.
fn listpack(lp: &[u8]) -> Result<Vec<Elem<'_>>> {
    const BAD: DumpError = DumpError::BadData;
    if lp.len() < 7 || le(&lp[0..4]) != lp.len() as u64 || lp[lp.len() - 1] != 0xff {
        return Err(BAD);
    }
    let declared = le(&lp[4..6]);
    let end = lp.len() - 1;
    let mut entries = Vec::new();
    let mut p = 6;
    while p < end {
        let rest = &lp[p..end];
        let get = |from: usize, n: usize| rest.get(from..from + n).ok_or(BAD);
        let first = rest[0];
        let (elem, len) = if first & 0x80 == 0 {
            (Elem::Int(i64::from(first)), 1)
        } else if first & 0xc0 == 0x80 {
            let n = usize::from(first & 0x3f);
            (Elem::Str(get(1, n)?), 1 + n)
        } else if first & 0xe0 == 0xc0 {
            let v = (u64::from(first & 0x1f) << 8) | u64::from(get(1, 1)?[0]);
            (Elem::Int(sign_extend(v, 13)), 2)
        } else if first & 0xf0 == 0xe0 {
            let n = (usize::from(first & 0x0f) << 8) | usize::from(get(1, 1)?[0]);
            (Elem::Str(get(2, n)?), 2 + n)
        } else {
            match first {
                0xf0 => {
                    let n = usize::try_from(le(get(1, 4)?)).map_err(|_| BAD)?;
                    (Elem::Str(get(5, n)?), 5 + n)
                }
                0xf1 => (Elem::Int(sign_extend(le(get(1, 2)?), 16)), 3),
                0xf2 => (Elem::Int(sign_extend(le(get(1, 3)?), 24)), 4),
                0xf3 => (Elem::Int(sign_extend(le(get(1, 4)?), 32)), 5),
                0xf4 => (Elem::Int(le(get(1, 8)?) as i64), 9),
                _ => return Err(BAD),
            }
        };
        let mut backlen = Vec::with_capacity(5);
        put_backlen(&mut backlen, len);
        if get(len, backlen.len())? != backlen.as_slice() {
            return Err(BAD);
        }
        entries.push(elem);
        p += len + backlen.len();
    }
    if declared != 0xffff && declared != entries.len() as u64 {
        return Err(BAD);
    }
    Ok(entries)
}

/// The entries of a ziplist (Redis 6 and older), validated as Redis's deep
/// `ziplistValidateIntegrity`.
fn ziplist(zl: &[u8]) -> Result<Vec<Elem<'_>>> {
    const BAD: DumpError = DumpError::BadData;
    const HEADER: usize = 10;
    if zl.len() < HEADER + 1 || le(&zl[0..4]) != zl.len() as u64 || zl[zl.len() - 1] != 0xff {
        return Err(BAD);
    }
    let tail = le(&zl[4..8]);
    let declared = le(&zl[8..10]);
    let end = zl.len() - 1;
    let mut entries = Vec::new();
    let mut p = HEADER;
    let mut prev_size = 0usize;
    let mut last = HEADER;
    while p < end {
        let rest = &zl[p..end];
        let get = |from: usize, n: usize| rest.get(from..from + n).ok_or(BAD);
        let (prevlen, mut at) = match rest[0] {
            254 => (usize::try_from(le(get(1, 4)?)).map_err(|_| BAD)?, 5),
            255 => return Err(BAD),
            n => (usize::from(n), 1),
        };
        if prevlen != prev_size {
            return Err(BAD);
        }
        let enc = get(at, 1)?[0];
        let elem = match enc >> 6 {
            0 => {
                let n = usize::from(enc & 0x3f);
                at += 1;
                let s = get(at, n)?;
                at += n;
                Elem::Str(s)
            }
            1 => {
                let n = (usize::from(enc & 0x3f) << 8) | usize::from(get(at + 1, 1)?[0]);
                at += 2;
                let s = get(at, n)?;
                at += n;
                Elem::Str(s)
            }
            2 => {
                let b = get(at + 1, 4)?;
                let n = u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize;
                at += 5;
                let s = get(at, n)?;
                at += n;
                Elem::Str(s)
            }
            _ => {
                let (bytes, v) = match enc {
                    0xc0 => (2, sign_extend(le(get(at + 1, 2)?), 16)),
                    0xd0 => (4, sign_extend(le(get(at + 1, 4)?), 32)),
                    0xe0 => (8, le(get(at + 1, 8)?) as i64),
                    0xf0 => (3, sign_extend(le(get(at + 1, 3)?), 24)),
                    0xfe => (1, sign_extend(le(get(at + 1, 1)?), 8)),
                    0xf1..=0xfd => (0, i64::from(enc & 0x0f) - 1),
                    _ => return Err(BAD),
                };
                at += 1 + bytes;
                Elem::Int(v)
            }
        };
        entries.push(elem);
        last = p;
        prev_size = at;
        p += at;
    }
    if tail != last as u64 || (declared != 0xffff && declared != entries.len() as u64) {
        return Err(BAD);
    }
    Ok(entries)
}

/// An intset blob (`SET_INTSET`), validated as Redis's deep
/// `intsetValidateIntegrity`: a known width, the exact size, strictly
/// increasing values, not empty.
fn intset(blob: &[u8]) -> Result<Set> {
    const BAD: DumpError = DumpError::BadData;
    if blob.len() < 8 {
        return Err(BAD);
    }
    let width = le(&blob[0..4]);
    let count = le(&blob[4..8]);
    if ![2, 4, 8].contains(&width) || count == 0 {
        return Err(BAD);
    }
    let width = width as usize;
    let data = &blob[8..];
    if count.checked_mul(width as u64) != Some(data.len() as u64) {
        return Err(BAD);
    }
    let bits = (width * 8) as u32;
    let mut set = Set::new();
    let mut previous: Option<i64> = None;
    for chunk in data.chunks_exact(width) {
        let v = sign_extend(le(chunk), bits);
        if previous.is_some_and(|p| p >= v) {
            return Err(BAD);
        }
        previous = Some(v);
        set.insert_member(Member::Int(v));
    }
    Ok(set)
}

#[cfg(test)]
mod tests;
