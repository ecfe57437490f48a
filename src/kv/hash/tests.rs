use std::collections::BTreeMap;

use bytes::Bytes;

use super::{Hash, FIELD_OVERHEAD};
use crate::kv::mix;

/// The memory estimate counted from scratch, as `entry_bytes` used to.
fn recount(hash: &Hash) -> u64 {
    hash.iter()
        .map(|(f, v)| (f.len() + v.len()) as u64 + FIELD_OVERHEAD)
        .sum()
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

#[test]
fn mem_bytes_counts_fields_values_and_overhead() {
    let mut h = Hash::new();
    assert_eq!(h.mem_bytes(), 0);
    assert_eq!(h.insert(b("f"), b("abc")), None);
    assert_eq!(h.mem_bytes(), 1 + 3 + 32);
    // An overwrite changes only the value's share.
    assert_eq!(h.insert(b("f"), b("abcdefgh")), Some(b("abc")));
    assert_eq!(h.mem_bytes(), 1 + 8 + 32);
    assert_eq!(h.insert(b("f"), b("")), Some(b("abcdefgh")));
    assert_eq!(h.mem_bytes(), 1 + 32);
    assert_eq!(h.insert(b("gg"), b("v")), None);
    assert_eq!(h.mem_bytes(), 1 + 32 + 2 + 1 + 32);
    assert_eq!(h.remove(b"nope"), None);
    assert_eq!(h.mem_bytes(), 1 + 32 + 2 + 1 + 32);
    assert_eq!(h.remove(b"f"), Some(b("")));
    assert_eq!(h.mem_bytes(), 2 + 1 + 32);
    assert_eq!(h.remove(b"gg"), Some(b("v")));
    assert_eq!(h.mem_bytes(), 0);
    assert!(h.is_empty());
}

/// A seeded random walk of inserts, overwrites and removals over a small
/// field space (so all three happen often) keeps the total exact, and the
/// hash equal to a plain map given the same operations.
#[test]
fn mem_bytes_equals_a_recount_after_random_changes() {
    for round in 0..20u64 {
        let mut seed = round;
        let mut h = Hash::new();
        let mut model: BTreeMap<Bytes, Bytes> = BTreeMap::new();
        for _ in 0..500 {
            seed = mix(seed);
            let field = Bytes::from(format!("f{}", "x".repeat((seed % 7) as usize)));
            seed = mix(seed);
            let value = Bytes::from("v".repeat((seed % 40) as usize));
            seed = mix(seed);
            if seed % 3 == 0 {
                assert_eq!(h.remove(&field), model.remove(&field));
            } else {
                assert_eq!(
                    h.insert(field.clone(), value.clone()),
                    model.insert(field, value)
                );
            }
            assert_eq!(h.mem_bytes(), recount(&h));
            assert_eq!(h.len(), model.len());
        }
        assert_eq!(Hash::from(model.clone()), h);
        assert_eq!(BTreeMap::from(h), model);
    }
}

/// Serialized as a map in the hash's order: the bytes of the `BTreeMap` it
/// replaced when the fields were inserted in field order, so old snapshots
/// load; loading keeps the order and recomputes the total.
#[test]
fn serializes_as_the_plain_map_and_recounts_on_load() {
    let pairs = [("", "ccc"), ("a", "1"), ("bb", ""), ("zz", "0123456789")];
    let map: BTreeMap<Bytes, Bytes> = pairs.iter().map(|(f, v)| (b(f), b(v))).collect();
    let hash: Hash = pairs.iter().map(|(f, v)| (b(f), b(v))).collect();
    let bytes = postcard::to_allocvec(&hash).expect("serializes");
    assert_eq!(
        bytes,
        postcard::to_allocvec(&map).expect("serializes"),
        "the snapshot format changed"
    );
    let loaded: Hash = postcard::from_bytes(&bytes).expect("deserializes");
    assert_eq!(loaded, hash);
    assert_eq!(loaded.mem_bytes(), recount(&hash));
    assert_eq!(loaded.mem_bytes(), 1 + 1 + 2 + 3 + 2 + 10 + 4 * 32);

    // Any order survives a round trip.
    let shuffled: Hash = [("zz", "1"), ("a", "2"), ("m", "3")]
        .iter()
        .map(|(f, v)| (b(f), b(v)))
        .collect();
    let loaded: Hash = postcard::from_bytes(&postcard::to_allocvec(&shuffled).expect("serializes"))
        .expect("deserializes");
    assert_eq!(fields(&loaded), ["zz", "a", "m"]);
}

fn fields(hash: &Hash) -> Vec<String> {
    hash.keys()
        .map(|f| String::from_utf8_lossy(f).into_owned())
        .collect()
}

/// Redis's listpack order: new fields at the end, an overwrite in place, a
/// removal closing the gap (HGETALL after `HSET h c 3 a 1 b 2`, `HSET h a 9`,
/// `HDEL h c`, `HSET h c 4` on Redis 7.0 lists a, b, c).
#[test]
fn keeps_redis_listpack_order() {
    let mut hash: Hash = [("c", "3"), ("a", "1"), ("b", "2")]
        .iter()
        .map(|(f, v)| (b(f), b(v)))
        .collect();
    assert_eq!(fields(&hash), ["c", "a", "b"]);
    assert_eq!(hash.insert(b("a"), b("9")), Some(b("1")));
    assert_eq!(fields(&hash), ["c", "a", "b"]);
    assert_eq!(hash.remove(b"c"), Some(b("3")));
    assert_eq!(fields(&hash), ["a", "b"]);
    assert_eq!(hash.insert(b("c"), b("4")), None);
    assert_eq!(fields(&hash), ["a", "b", "c"]);
    let pairs: Vec<(&Bytes, &Bytes)> = (&hash).into_iter().collect();
    assert_eq!(
        pairs,
        [(&b("a"), &b("9")), (&b("b"), &b("2")), (&b("c"), &b("4"))]
    );
    assert_eq!(hash.get_index(1), Some((&b("b"), &b("2"))));
    assert_eq!(hash.get_index(3), None);
    assert_eq!(hash.get(b"b"), Some(&b("2")));
    assert!(hash.contains_key(b"c"));
    assert!(!hash.contains_key(b"d"));
}

/// HSET on the vector model: replace in place at `at`, or append.
fn model_insert(
    model: &mut Vec<(Bytes, Bytes)>,
    at: Option<usize>,
    field: &Bytes,
    value: &Bytes,
) -> Option<Bytes> {
    match at {
        Some(i) => Some(std::mem::replace(&mut model[i].1, value.clone())),
        None => {
            model.push((field.clone(), value.clone()));
            None
        }
    }
}

/// A seeded random walk keeps a listpack hash in exactly the order of a
/// plain vector model (append new, replace in place, remove and shift).
#[test]
fn listpack_order_matches_a_vector_model() {
    for round in 0..20u64 {
        let mut seed = round + 100;
        let mut h = Hash::new();
        let mut model: Vec<(Bytes, Bytes)> = Vec::new();
        for _ in 0..300 {
            seed = mix(seed);
            let field = Bytes::from(format!("f{}", seed % 9));
            seed = mix(seed);
            let value = Bytes::from(format!("v{}", seed % 5));
            seed = mix(seed);
            let at = model.iter().position(|(f, _)| *f == field);
            if seed % 3 == 0 {
                let expected = at.map(|i| model.remove(i).1);
                assert_eq!(h.remove(&field), expected);
            } else {
                let expected = model_insert(&mut model, at, &field, &value);
                assert_eq!(h.insert(field, value), expected);
            }
            assert!(!h.is_hashtable());
            assert!(h.iter().eq(model.iter().map(|(f, v)| (f, v))));
        }
    }
}

/// A `hashtable` hash (past the listpack limit) against a vector model where
/// a removal moves the last pair into the gap, with copies taken midway
/// that keep what they saw.
#[test]
fn hashtable_order_matches_a_swap_remove_model_and_copies_stay_put() {
    let mut seed = 7u64;
    let mut h = Hash::new();
    let mut model: Vec<(Bytes, Bytes)> = Vec::new();
    let mut copies: Vec<(Hash, Vec<(Bytes, Bytes)>)> = Vec::new();
    for step in 0..6000 {
        seed = mix(seed);
        let field = Bytes::from(format!("f{}", seed % 1500));
        seed = mix(seed);
        let value = Bytes::from(format!("v{}", seed % 5));
        seed = mix(seed);
        let at = model.iter().position(|(f, _)| *f == field);
        if h.is_hashtable() && seed % 3 == 0 {
            let expected = at.map(|i| model.swap_remove(i).1);
            assert_eq!(h.remove(&field), expected);
        } else {
            let expected = model_insert(&mut model, at, &field, &value);
            assert_eq!(h.insert(field, value), expected);
        }
        if step % 1000 == 999 {
            copies.push((h.clone(), model.clone()));
        }
    }
    assert!(h.is_hashtable());
    assert!(h.iter().eq(model.iter().map(|(f, v)| (f, v))));
    assert_eq!(h.mem_bytes(), recount(&h));
    for (i, (f, v)) in model.iter().enumerate() {
        assert_eq!(h.get(f), Some(v));
        assert_eq!(h.get_index(i), Some((f, v)));
    }
    for (copy, seen) in &copies {
        assert!(copy.iter().eq(seen.iter().map(|(f, v)| (f, v))));
    }
}
