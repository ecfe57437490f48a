//! How a [`Value`] is written in snapshots (postcard, an enum by variant
//! index), including the encoding state Redis's OBJECT ENCODING and DUMP
//! depend on: how a string was built ([`Str::origin`]) and whether a hash
//! was once too large for a listpack ([`Hash::is_hashtable`]).
//!
//! The first five variants are the format snapshots had before the bits
//! existed, unchanged, so those snapshots load (their strings and hashes
//! take the encoding their content gives). The state is three variants added
//! after them: a value in the default state is written exactly as before, so a
//! state without such values gives the same bytes as before, and identical
//! states still give identical bytes. Variant order is the file format: new
//! variants go at the end.

use bytes::Bytes;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::hash::Hash;
use super::list::List;
use super::set::Set;
use super::stream::Stream;
use super::string::{Origin, Str};
use super::zset::ZSet;
use super::Value;

/// The written form, borrowed.
#[derive(Serialize)]
enum Written<'a> {
    Str(&'a Bytes),
    Hash(&'a Hash),
    Set(&'a Set),
    List(&'a List),
    ZSet(&'a ZSet),
    /// A string changed in place (`raw` whatever its content).
    RawStr(&'a Bytes),
    /// A hash that stays a `hashtable`.
    HashTable(&'a Hash),
    /// A formatted number (never `int`).
    TextStr(&'a Bytes),
    /// A stream.
    Stream(&'a Stream),
}

/// The read form.
#[derive(Deserialize)]
enum Read {
    Str(Bytes),
    Hash(Hash),
    Set(Set),
    List(List),
    ZSet(ZSet),
    RawStr(Bytes),
    HashTable(Hash),
    TextStr(Bytes),
    Stream(Box<Stream>),
}

impl Serialize for Value {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let written = match self {
            Value::Str(s) => match s.origin() {
                Origin::Stored => Written::Str(s.bytes()),
                Origin::Text => Written::TextStr(s.bytes()),
                Origin::InPlace => Written::RawStr(s.bytes()),
            },
            Value::Hash(h) if h.is_hashtable() => Written::HashTable(h),
            Value::Hash(h) => Written::Hash(h),
            Value::Set(s) => Written::Set(s),
            Value::List(l) => Written::List(l),
            Value::ZSet(z) => Written::ZSet(z),
            Value::Stream(s) => Written::Stream(s),
        };
        written.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Value {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Value, D::Error> {
        Ok(match Read::deserialize(deserializer)? {
            Read::Str(b) => Value::Str(Str::new(b)),
            Read::RawStr(b) => Value::Str(Str::raw(b)),
            Read::TextStr(b) => Value::Str(Str::text(b)),
            // A hash written without the bit: its content decides (a large
            // hash written by an older version is a `hashtable`).
            Read::Hash(h) => Value::Hash(crate::kv::Shared::new(h)),
            Read::HashTable(mut h) => {
                h.set_hashtable();
                Value::Hash(crate::kv::Shared::new(h))
            }
            Read::Set(s) => Value::Set(crate::kv::Shared::new(s)),
            Read::List(l) => Value::List(l),
            Read::ZSet(z) => Value::ZSet(crate::kv::Shared::new(z)),
            Read::Stream(s) => Value::Stream(crate::kv::Shared::new(*s)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(value: &Value) -> (Vec<u8>, Value) {
        let bytes = postcard::to_allocvec(value).expect("serialises");
        let back: Value = postcard::from_bytes(&bytes).expect("deserialises");
        (bytes, back)
    }

    /// The format before the bits: the derived enum of the five variants.
    #[derive(Serialize)]
    enum Old {
        Str(Bytes),
        Hash(Hash),
    }

    fn small_hash() -> Hash {
        [(Bytes::from_static(b"f"), Bytes::from_static(b"v"))]
            .into_iter()
            .collect()
    }

    #[test]
    fn values_in_the_default_state_are_written_as_before() {
        let old = postcard::to_allocvec(&Old::Str(Bytes::from_static(b"12"))).unwrap();
        let (bytes, back) = round_trip(&Value::Str(Str::new(Bytes::from_static(b"12"))));
        assert_eq!(bytes, old);
        assert_eq!(back, Value::Str(Str::new(Bytes::from_static(b"12"))));
        let old = postcard::to_allocvec(&Old::Hash(small_hash())).unwrap();
        let (bytes, back) = round_trip(&Value::Hash(crate::kv::Shared::new(small_hash())));
        assert_eq!(bytes, old);
        let Value::Hash(back) = back else {
            panic!("a hash")
        };
        assert!(!back.is_hashtable());
    }

    #[test]
    fn the_encoding_state_survives_a_round_trip() {
        let raw = Value::Str(Str::raw(Bytes::from_static(b"12")));
        let (_, back) = round_trip(&raw);
        assert_eq!(back, raw);
        let text = Value::Str(Str::text(Bytes::from_static(b"3")));
        assert_eq!(round_trip(&text).1, text);
        let Value::Str(s) = &back else {
            panic!("a string")
        };
        assert_eq!(s.encoding(), "raw");

        let mut hash = small_hash();
        hash.insert(Bytes::from_static(b"long"), Bytes::from(vec![b'x'; 65]));
        hash.remove(b"long");
        assert!(hash.is_hashtable(), "stays a hashtable after shrinking");
        let (_, back) = round_trip(&Value::Hash(crate::kv::Shared::new(hash.clone())));
        assert_eq!(back, Value::Hash(crate::kv::Shared::new(hash)));
    }

    #[test]
    fn a_large_hash_from_an_older_snapshot_is_a_hashtable() {
        let large: Hash = (0..513)
            .map(|i| (Bytes::from(format!("f{i}")), Bytes::from_static(b"v")))
            .collect();
        let old = postcard::to_allocvec(&Old::Hash(large)).unwrap();
        let back: Value = postcard::from_bytes(&old).unwrap();
        let Value::Hash(back) = back else {
            panic!("a hash")
        };
        assert!(back.is_hashtable());
    }
}
