//! Dataset digests: `DEBUG DIGEST`, `DEBUG DIGEST-VALUE` and dkv's
//! `DEBUG STATE-DIGEST`, so replicas (and dkv against Redis) can be compared.
//!
//! [`Db::dataset_digest`] and [`Db::value_digest`] are Redis 7's algorithm
//! (`computeDatasetDigest` / `xorObjectDigest` in `debug.c`), bit for bit: per
//! key a SHA-1 chain over the key, the type and the value (hash fields and set
//! members XORed, so their order does not matter), XORed into the database's digest, so key
//! order does not matter either; a key with a TTL mixes in the constant
//! `!!expire!!` (the deadline itself is not part of Redis's digest). An empty
//! dataset digests to twenty zero bytes. Keys are digested as stored, expired
//! or not (Redis does not look keys up for DEBUG).
//!
//! [`Db::state_digest`] is stricter: the SHA-1 of the snapshot encoding, which
//! covers deadlines and every replicated counter too (replicated now, SCAN
//! sequence, WATCH versions and tombstones, stats, config). Replicas at the
//! same applied index must agree on it.
//!
//! Pure computation: no I/O, no clock.

use super::stream::StreamId;
use super::{Db, Entry, Value};

/// A 20-byte SHA-1 digest.
pub type Digest = [u8; 20];

/// SHA-1 (FIPS 180-4) of `data`. Used for digests only, never for security.
pub fn sha1(data: &[u8]) -> Digest {
    let mut h: [u32; 5] = [
        0x6745_2301,
        0xEFCD_AB89,
        0x98BA_DCFE,
        0x1032_5476,
        0xC3D2_E1F0,
    ];
    let bit_len = (data.len() as u64).wrapping_mul(8);
    let mut tail = Vec::with_capacity(128);
    let full = data.len() / 64 * 64;
    tail.extend_from_slice(&data[full..]);
    tail.push(0x80);
    while tail.len() % 64 != 56 {
        tail.push(0);
    }
    tail.extend_from_slice(&bit_len.to_be_bytes());
    for block in data[..full].chunks_exact(64).chain(tail.chunks_exact(64)) {
        let mut w = [0u32; 80];
        for (i, word) in block.chunks_exact(4).enumerate() {
            w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
        }
        for i in 16..80 {
            w[i] = (w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16]).rotate_left(1);
        }
        let [mut a, mut b, mut c, mut d, mut e] = h;
        for (i, &wi) in w.iter().enumerate() {
            let (f, k) = match i {
                0..=19 => ((b & c) | (!b & d), 0x5A82_7999),
                20..=39 => (b ^ c ^ d, 0x6ED9_EBA1),
                40..=59 => ((b & c) | (b & d) | (c & d), 0x8F1B_BCDC),
                _ => (b ^ c ^ d, 0xCA62_C1D6),
            };
            let t = a
                .rotate_left(5)
                .wrapping_add(f)
                .wrapping_add(e)
                .wrapping_add(k)
                .wrapping_add(wi);
            e = d;
            d = c;
            c = b.rotate_left(30);
            b = a;
            a = t;
        }
        for (slot, v) in h.iter_mut().zip([a, b, c, d, e]) {
            *slot = slot.wrapping_add(v);
        }
    }
    let mut out = [0u8; 20];
    for (chunk, v) in out.chunks_exact_mut(4).zip(h) {
        chunk.copy_from_slice(&v.to_be_bytes());
    }
    out
}

/// Lower-case hex, as Redis prints digests.
pub fn hex(digest: &Digest) -> String {
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Redis's `xorDigest`: XOR the SHA-1 of `data` into `digest`.
fn xor_digest(digest: &mut Digest, data: &[u8]) {
    for (d, h) in digest.iter_mut().zip(sha1(data)) {
        *d ^= h;
    }
}

/// Redis's `mixDigest`: XOR in the SHA-1 of `data`, then hash the result.
fn mix_digest(digest: &mut Digest, data: &[u8]) {
    xor_digest(digest, data);
    *digest = sha1(digest);
}

/// Redis's object type numbers (`OBJ_STRING`, `OBJ_LIST`, `OBJ_SET`,
/// `OBJ_ZSET`, `OBJ_HASH`).
fn redis_type(value: &Value) -> u32 {
    match value {
        Value::Str(_) => 0,
        Value::List(_) => 1,
        Value::Set(_) => 2,
        Value::ZSet(_) => 3,
        Value::Hash(_) => 4,
        Value::Stream(_) => 6,
    }
}

/// Redis's `xorObjectDigest`: the value's type and contents, and whether it
/// has a TTL, mixed into `digest`.
fn object_digest(digest: &mut Digest, entry: &Entry) {
    mix_digest(digest, &redis_type(&entry.value).to_be_bytes());
    match &entry.value {
        Value::Str(s) => mix_digest(digest, s),
        Value::Hash(fields) => {
            for (field, value) in &**fields {
                let mut element = [0u8; 20];
                mix_digest(&mut element, field);
                mix_digest(&mut element, value);
                xor_digest(digest, &element);
            }
        }
        // Each member's text (an intset's integers in decimal) XORed in:
        // member order does not matter, nor does the encoding.
        Value::Set(set) => {
            for member in set.iter() {
                member.with_bytes(|text| xor_digest(digest, text));
            }
        }
        // Elements in order, each mixed into the running digest.
        Value::List(list) => {
            for element in list.iter() {
                mix_digest(digest, element);
            }
        }
        // Per member: the member, then its score printed "%.17g".
        Value::ZSet(zset) => zset.digest_into(|member, score| {
            let mut element = [0u8; 20];
            mix_digest(&mut element, member);
            mix_digest(&mut element, score);
            xor_digest(digest, &element);
        }),
        // Entries in order: `ms.seq`, then each field and value mixed in
        // (groups are not part of Redis's digest).
        Value::Stream(stream) => {
            for (id, fields) in stream.range(StreamId::MIN, StreamId::MAX, false) {
                mix_digest(digest, format!("{}.{}", id.ms, id.seq).as_bytes());
                for part in fields {
                    mix_digest(digest, part);
                }
            }
        }
    }
    if entry.expires_at_ms().is_some() {
        xor_digest(digest, b"!!expire!!");
    }
}

impl Db {
    /// `DEBUG DIGEST`: Redis's digest of every stored key of every database.
    pub fn dataset_digest(&self) -> Digest {
        let mut digest = [0u8; 20];
        for (index, keyspace) in self.dbs.iter().enumerate() {
            if keyspace.map.is_empty() {
                continue;
            }
            mix_digest(&mut digest, &(index as u32).to_be_bytes());
            for (key, entry) in keyspace.map.iter() {
                let mut key_digest = [0u8; 20];
                mix_digest(&mut key_digest, key);
                object_digest(&mut key_digest, entry);
                xor_digest(&mut digest, &key_digest);
            }
        }
        digest
    }

    /// `DEBUG DIGEST-VALUE`: Redis's digest of one stored value (expired or
    /// not); all zeros for a missing key or a database out of range.
    pub fn value_digest(&self, db: usize, key: &[u8]) -> Digest {
        let mut digest = [0u8; 20];
        if let Some(entry) = self.dbs.get(db).and_then(|ks| ks.map.get(key)) {
            object_digest(&mut digest, entry);
        }
        digest
    }

    /// `DEBUG STATE-DIGEST`: the SHA-1 of [`Db::snapshot_bytes`], i.e. of all
    /// replicated state (deadlines and counters included); all zeros when no
    /// key is stored, as Redis's digest of an empty dataset.
    pub fn state_digest(&self) -> Digest {
        if self.is_empty() {
            return [0; 20];
        }
        sha1(&self.snapshot_bytes())
    }
}

#[cfg(test)]
mod tests {
    use bytes::Bytes;

    use super::*;
    use crate::kv::{Command, Op};

    fn exec(db: &mut Db, ts_ms: u64, index: u8, args: &[&str]) {
        db.apply(&Command {
            ts_ms,
            op: Op::Exec {
                db: index,
                args: args
                    .iter()
                    .map(|a| Bytes::copy_from_slice(a.as_bytes()))
                    .collect(),
            },
        });
    }

    #[test]
    fn sha1_matches_the_standard_vectors() {
        assert_eq!(hex(&sha1(b"")), "da39a3ee5e6b4b0d3255bfef95601890afd80709");
        assert_eq!(
            hex(&sha1(b"abc")),
            "a9993e364706816aba3e25717850c26c9cd0d89d"
        );
        assert_eq!(
            hex(&sha1(
                b"abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
            )),
            "84983e441c3bd26ebaae4aa1f95129e5e54670f1"
        );
        assert_eq!(
            hex(&sha1(&[b'a'; 1_000_000])),
            "34aa973cd4c4daa4f61eeb2bdbad27316534016f"
        );
    }

    /// The expected values were printed by redis-server 7.0.15 for the same
    /// commands (`DEBUG DIGEST` / `DEBUG DIGEST-VALUE`).
    #[test]
    fn dataset_digest_is_redis_bit_for_bit() {
        let mut db = Db::new();
        assert_eq!(hex(&db.dataset_digest()), "0".repeat(40));
        exec(&mut db, 1_000, 0, &["set", "a", "1"]);
        assert_eq!(
            hex(&db.dataset_digest()),
            "943d800368fb9c0e951138f1bc0e313ac769d91f"
        );
        exec(&mut db, 1_000, 0, &["set", "b", "hello"]);
        assert_eq!(
            hex(&db.dataset_digest()),
            "2539797405e828ad7a3aa48c536b3eaf2803a421"
        );
        exec(&mut db, 1_000, 0, &["expire", "b", "100"]);
        assert_eq!(
            hex(&db.dataset_digest()),
            "669dc7955c0119edb82e7cfeb40ea4a28f89f902"
        );
        exec(&mut db, 1_000, 0, &["hset", "h", "f1", "v1", "f2", "v2"]);
        assert_eq!(
            hex(&db.dataset_digest()),
            "e0905c5d1683e0f6a1a7ccdb2528e40083ff5e0e"
        );
        exec(&mut db, 1_000, 3, &["set", "a", "1"]);
        assert_eq!(
            hex(&db.dataset_digest()),
            "b5551629e095c30cdc1b6cde4ba58a3a72c8e56b"
        );
        assert_eq!(
            hex(&db.value_digest(0, b"a")),
            "b4fc66738120fba0b5aa500ab5c2bf89cea1c5da"
        );
        assert_eq!(
            hex(&db.value_digest(0, b"h")),
            "047cc60ea73a34cde6d08a2721a4a26d19ee6570"
        );
        assert_eq!(hex(&db.value_digest(0, b"nokey")), "0".repeat(40));
        assert_eq!(
            hex(&db.value_digest(0, b"b")),
            "d037c4eb8a8b36b602fbced4000daeab0714c1e3"
        );
        assert_eq!(hex(&db.value_digest(99, b"a")), "0".repeat(40));
    }

    #[test]
    fn dataset_digest_of_empty_strings_and_hash_fields_is_redis() {
        let mut db = Db::new();
        exec(&mut db, 1_000, 0, &["set", "k", ""]);
        assert_eq!(
            hex(&db.dataset_digest()),
            "15784ec79e7a3914ea55650c4b22a0f1c4b3c499"
        );
        let mut db = Db::new();
        exec(&mut db, 1_000, 0, &["hset", "h", "", ""]);
        assert_eq!(
            hex(&db.dataset_digest()),
            "ee5adcde0aea8f385244e185775b079ade02001b"
        );
        exec(&mut db, 1_000, 0, &["hset", "h", "x", "12345"]);
        assert_eq!(
            hex(&db.dataset_digest()),
            "daad84ed9c47088e42ba0b37f4ea62ce0123892b"
        );
    }

    /// Lists mix their elements in order; the expected values were printed by
    /// redis-server 7.0.15 (`RPUSH l a b c 1 2 300 -5 "" 007`, then `RPUSH l2
    /// x` with `EXPIRE l2 100`; and 2000 elements `value-0` … `value-1999`,
    /// several quicklist nodes).
    #[test]
    fn list_digest_is_redis_bit_for_bit() {
        use crate::kv::list::List;
        use crate::kv::Value;
        let mut db = Db::new();
        let elements = ["a", "b", "c", "1", "2", "300", "-5", "", "007"];
        let list: List = elements.iter().collect();
        db.put(0, b"l", Value::List(list), None);
        assert_eq!(
            hex(&db.value_digest(0, b"l")),
            "081467f533d32c85e142a72415ff4c1d9af38afe"
        );
        assert_eq!(
            hex(&db.dataset_digest()),
            "11741c9649607ece835a9368af8e1aaab323ecf2"
        );
        let single: List = ["x"].iter().collect();
        db.put(0, b"l2", Value::List(single), Some(100_000));
        assert_eq!(
            hex(&db.dataset_digest()),
            "af2b2d6945e29e7d2aa327741fe5c596f992f5a3"
        );
        assert_eq!(
            hex(&db.value_digest(0, b"l2")),
            "513a82800d1204ddf6715dfcad32e7acbbbf92d4"
        );
        let mut db = Db::new();
        let big: List = (0..2000).map(|i| format!("value-{i}")).collect();
        db.put(0, b"big", Value::List(big), None);
        assert_eq!(
            hex(&db.value_digest(0, b"big")),
            "761333f48b84e4408136c153b118b112decb4938"
        );
        assert_eq!(
            hex(&db.dataset_digest()),
            "f01a08317236d6e4b463d6ced23987e9c1e40567"
        );
    }

    #[test]
    fn state_digest_sees_deadlines_and_counters_that_redis_digest_ignores() {
        let mut a = Db::new();
        assert_eq!(a.state_digest(), [0; 20]);
        exec(&mut a, 1_000, 0, &["set", "k", "v", "px", "5000"]);
        let mut b = Db::new();
        exec(&mut b, 1_000, 0, &["set", "k", "v", "px", "6000"]);
        assert_eq!(a.dataset_digest(), b.dataset_digest());
        assert_ne!(a.state_digest(), b.state_digest());
        let restored = Db::restore(&a.snapshot_bytes()).expect("own snapshot decodes");
        assert_eq!(restored.state_digest(), a.state_digest());
        assert_ne!(a.state_digest(), [0; 20]);
    }
}
