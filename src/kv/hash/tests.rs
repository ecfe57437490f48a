use std::collections::BTreeMap;
use std::ops::Bound;

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
        assert!(h.iter().eq(model.iter()));
        assert_eq!(Hash::from(model.clone()), h);
        assert_eq!(BTreeMap::from(h), model);
    }
}

/// Serialized exactly as the `BTreeMap` it replaced, so old snapshots load;
/// loading recomputes the total.
#[test]
fn serializes_as_the_plain_map_and_recounts_on_load() {
    let pairs = [("a", "1"), ("bb", ""), ("", "ccc"), ("zz", "0123456789")];
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
}

#[test]
fn iterates_and_ranges_in_field_order() {
    let hash: Hash = [("c", "3"), ("a", "1"), ("b", "2")]
        .iter()
        .map(|(f, v)| (b(f), b(v)))
        .collect();
    let fields: Vec<&Bytes> = hash.keys().collect();
    assert_eq!(fields, [&b("a"), &b("b"), &b("c")]);
    let pairs: Vec<(&Bytes, &Bytes)> = (&hash).into_iter().collect();
    assert_eq!(
        pairs,
        [(&b("a"), &b("1")), (&b("b"), &b("2")), (&b("c"), &b("3"))]
    );
    let from_b: Vec<&Bytes> = hash
        .range((Bound::Included(&b"b"[..]), Bound::Unbounded))
        .map(|(f, _)| f)
        .collect();
    assert_eq!(from_b, [&b("b"), &b("c")]);
    assert_eq!(hash.get(b"b"), Some(&b("2")));
    assert!(hash.contains_key(b"c"));
    assert!(!hash.contains_key(b"d"));
}
