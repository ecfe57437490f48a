//! Tests of the set value: edge cases one by one, then property tests
//! against a naive model (a `BTreeSet` plus the encoding rules).

use std::collections::{BTreeMap, BTreeSet};

use bytes::Bytes;
use proptest::prelude::*;

use super::*;
use crate::kv::digest::hex;
use crate::kv::{Db, Value};

fn set_of(members: &[&str]) -> Set {
    let mut set = Set::new();
    for m in members {
        set.insert(m.as_bytes());
    }
    set
}

fn texts(members: impl IntoIterator<Item = Bytes>) -> Vec<String> {
    let mut out: Vec<String> = members
        .into_iter()
        .map(|b| String::from_utf8_lossy(&b).into_owned())
        .collect();
    out.sort();
    out
}

fn contents(set: &Set) -> Vec<String> {
    texts(set.iter().map(Member::to_bytes))
}

/// A hashtable holding exactly `members` (converted by a member then removed).
fn table_of(members: &[&str]) -> Set {
    let mut set = set_of(members);
    set.insert(b"not-an-integer");
    set.remove(b"not-an-integer");
    assert_eq!(set.encoding(), "hashtable");
    set
}

#[test]
fn integers_stay_in_an_intset_in_increasing_order() {
    let set = set_of(&["5", "-3", "100", "0", "5"]);
    assert_eq!(set.encoding(), "intset");
    assert_eq!(set.len(), 4);
    let order: Vec<Member> = set.iter().collect();
    assert_eq!(
        order,
        vec![
            Member::Int(-3),
            Member::Int(0),
            Member::Int(5),
            Member::Int(100)
        ]
    );
    assert!(set.contains(b"-3"));
    assert!(!set.contains(b"-03"));
    assert!(!set.contains(b"7"));
}

#[test]
fn only_canonical_decimal_integers_are_intset_members() {
    for text in [
        "01",
        "+1",
        "-0",
        " 1",
        "1 ",
        "1.0",
        "0x10",
        "",
        "-",
        "9223372036854775808",
        "-9223372036854775809",
    ] {
        let mut set = set_of(&["1"]);
        assert!(set.insert(text.as_bytes()), "{text:?}");
        assert_eq!(set.encoding(), "hashtable", "{text:?} converts");
        assert!(set.contains(text.as_bytes()));
        assert!(set.contains(b"1"));
    }
    let set = set_of(&["-9223372036854775808", "9223372036854775807", "0"]);
    assert_eq!(set.encoding(), "intset");
    assert_eq!(set.intset_width(), Some(8));
    assert_eq!(
        contents(&set),
        vec!["-9223372036854775808", "0", "9223372036854775807"]
    );
}

#[test]
fn the_513th_integer_converts_to_a_hashtable_and_it_never_converts_back() {
    let mut set = Set::new();
    for i in 0..MAX_INTSET_ENTRIES {
        assert!(set.insert(i.to_string().as_bytes()));
    }
    assert_eq!(set.encoding(), "intset");
    assert!(!set.insert(b"0"), "a repeated member adds nothing");
    assert_eq!(set.encoding(), "intset");
    assert!(set.insert(b"-1"));
    assert_eq!(set.encoding(), "hashtable");
    assert_eq!(set.len(), MAX_INTSET_ENTRIES + 1);
    for i in 0..500 {
        assert!(set.remove(i.to_string().as_bytes()));
    }
    assert_eq!(set.len(), 13);
    assert_eq!(set.encoding(), "hashtable");
    assert!(set.contains(b"-1") && set.contains(b"511") && !set.contains(b"3"));
}

#[test]
fn intset_width_grows_to_the_widest_value_and_never_shrinks() {
    let mut set = set_of(&["1", "-32768", "32767"]);
    assert_eq!(set.intset_width(), Some(2));
    set.insert(b"32768");
    assert_eq!(set.intset_width(), Some(4));
    set.insert(b"-2147483648");
    assert_eq!(set.intset_width(), Some(4));
    set.insert(b"-2147483649");
    assert_eq!(set.intset_width(), Some(8));
    assert_eq!(
        contents(&set),
        texts(
            [
                "-2147483649",
                "-2147483648",
                "-32768",
                "1",
                "32767",
                "32768"
            ]
            .map(|s: &str| Bytes::from(s))
        )
    );
    let ordered: Vec<Member> = set.iter().collect();
    assert_eq!(ordered.first(), Some(&Member::Int(-2147483649)));
    assert_eq!(ordered.last(), Some(&Member::Int(32768)));
    assert!(set.remove(b"-2147483649"));
    assert!(set.remove(b"32768"));
    assert_eq!(set.intset_width(), Some(8), "Redis never downgrades");
    assert!(!set.remove(b"99999999999"), "wider than any member: absent");
    assert!(!set.contains(b"99999999999"));
}

#[test]
fn members_format_as_redis_prints_integers() {
    let mut buf = [0u8; 20];
    assert_eq!(format_i64(0, &mut buf), b"0");
    assert_eq!(format_i64(-1, &mut buf), b"-1");
    assert_eq!(format_i64(i64::MIN, &mut buf), b"-9223372036854775808");
    assert_eq!(format_i64(i64::MAX, &mut buf), b"9223372036854775807");
    assert_eq!(Member::Int(-42).to_bytes(), Bytes::from_static(b"-42"));
}

#[test]
fn members_of_one_encoding_are_found_in_the_other() {
    let ints = set_of(&["1", "2", "3"]);
    let table = table_of(&["3", "2", "1"]);
    assert_eq!(ints, table, "equality ignores the encoding");
    assert_ne!(ints, set_of(&["1", "2"]));
    assert_ne!(ints, set_of(&["1", "2", "4"]));
    for m in table.iter() {
        assert!(ints.contains_member(m));
    }
    for m in ints.iter() {
        assert!(table.contains_member(m));
    }
    let mut t = table.clone();
    assert!(t.remove_member(Member::Int(2)));
    assert!(!t.remove_member(Member::Int(2)));
    let mut i = ints.clone();
    assert!(i.remove_member(Member::Bytes(b"2")));
    assert!(!i.remove_member(Member::Bytes(b"x")));
    assert_eq!(t, i);
}

#[test]
fn from_members_builds_as_adds_to_a_new_key_would() {
    let wide = set_of(&["1", "2", "70000"]);
    let mut narrowed = wide.clone();
    narrowed.remove(b"70000");
    assert_eq!(narrowed.intset_width(), Some(4));
    let rebuilt = Set::from_members(narrowed.iter());
    assert_eq!(rebuilt.intset_width(), Some(2));
    let mixed = Set::from_members([Member::Int(1), Member::Bytes(b"a")]);
    assert_eq!(mixed.encoding(), "hashtable");
    assert_eq!(contents(&mixed), vec!["1", "a"]);
}

#[test]
fn mem_bytes_follows_the_contents_not_the_history() {
    let small = set_of(&["1", "2"]);
    let big = set_of(&["1", "2", "70000"]);
    assert!(big.mem_bytes() > small.mem_bytes());
    let mut table = table_of(&["a", "bb"]);
    let before = table.mem_bytes();
    table.insert(b"cccc");
    assert_eq!(table.mem_bytes(), before + 4 + 32);
    table.remove(b"cccc");
    assert_eq!(table.mem_bytes(), before);
    // A table grown then emptied down reports the same as one built small.
    let mut grown = table_of(&["a", "bb"]);
    for i in 0..10_000 {
        grown.insert(format!("m{i}").as_bytes());
    }
    for i in 0..10_000 {
        grown.remove(format!("m{i}").as_bytes());
    }
    assert_eq!(grown.mem_bytes(), before);
    assert_eq!(grown, table_of(&["a", "bb"]));
}

#[test]
fn serde_round_trip_keeps_encoding_width_and_order() {
    let mut wide = set_of(&["5", "1", "70000"]);
    wide.remove(b"70000");
    let mut table = table_of(&["x", "y", "z", "1"]);
    table.remove(b"x"); // moves the last member into the hole
    for set in [Set::new(), wide, table, set_of(&["", "\u{0}\u{1}"])] {
        let bytes = postcard::to_allocvec(&set).expect("serialises");
        let back: Set = postcard::from_bytes(&bytes).expect("deserialises");
        assert_eq!(back, set);
        assert_eq!(back.encoding(), set.encoding());
        assert_eq!(back.intset_width(), set.intset_width());
        assert_eq!(back.mem_bytes(), set.mem_bytes());
        assert_eq!(
            back.iter().collect::<Vec<_>>(),
            set.iter().collect::<Vec<_>>()
        );
        assert_eq!(back.scan(0, 2), set.scan(0, 2));
        assert_eq!(back.random_members(3, 7), set.random_members(3, 7));
    }
}

#[test]
fn deserialising_refuses_what_a_set_never_holds() {
    #[derive(Serialize)]
    enum Forged {
        Ints { width: u8, data: Vec<u8> },
        Table(Vec<Bytes>),
    }
    let bad = |forged: Forged| {
        let bytes = postcard::to_allocvec(&forged).expect("serialises");
        postcard::from_bytes::<Set>(&bytes).is_err()
    };
    let packed = |width: u8, values: &[i64]| -> Vec<u8> {
        values
            .iter()
            .flat_map(|v| v.to_le_bytes()[..usize::from(width)].to_vec())
            .collect()
    };
    assert!(bad(Forged::Ints {
        width: 3,
        data: vec![0; 6]
    }));
    assert!(bad(Forged::Ints {
        width: 2,
        data: vec![0; 3]
    }));
    assert!(bad(Forged::Ints {
        width: 2,
        data: packed(2, &[2, 1])
    }));
    assert!(bad(Forged::Ints {
        width: 2,
        data: packed(2, &[1, 1])
    }));
    let too_many: Vec<i64> = (0..=MAX_INTSET_ENTRIES as i64).collect();
    assert!(bad(Forged::Ints {
        width: 2,
        data: packed(2, &too_many)
    }));
    assert!(bad(Forged::Table(vec![
        Bytes::from_static(b"a"),
        Bytes::from_static(b"a")
    ])));
    assert!(!bad(Forged::Ints {
        width: 4,
        data: packed(4, &[-1, 1])
    }));
    assert!(!bad(Forged::Table(vec![Bytes::from_static(b"a")])));
}

#[test]
fn random_members_follow_srandmember_semantics() {
    let set = table_of(&["a", "b", "c", "d", "e"]);
    assert!(set.random_members(0, 1).is_empty());
    assert!(Set::new().random_members(5, 1).is_empty());
    assert!(Set::new().random_member(1).is_none());
    // Positive: distinct, at most the size; the whole set past it.
    for count in 1..=4 {
        let picked = texts(
            set.random_members(count, 99)
                .into_iter()
                .map(Member::to_bytes),
        );
        let unique: BTreeSet<&String> = picked.iter().collect();
        assert_eq!(picked.len(), count as usize);
        assert_eq!(unique.len(), count as usize);
    }
    assert_eq!(
        texts(set.random_members(5, 3).into_iter().map(Member::to_bytes)),
        contents(&set)
    );
    assert_eq!(set.random_members(i64::MAX, 3).len(), 5);
    // Negative: exactly -count draws, repeats allowed.
    let drawn = set.random_members(-50, 3);
    assert_eq!(drawn.len(), 50);
    let unique: BTreeSet<Bytes> = drawn.iter().map(|m| m.to_bytes()).collect();
    assert!(unique.len() < 50 && unique.iter().all(|m| set.contains(m)));
    // The seed decides, and only the seed.
    assert_eq!(set.random_members(-20, 11), set.random_members(-20, 11));
    assert_ne!(set.random_members(-20, 11), set.random_members(-20, 12));
    assert_eq!(set.random_member(5), set.clone().random_member(5));
}

#[test]
fn random_choices_are_close_to_uniform() {
    for set in [
        set_of(&["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]),
        table_of(&["0", "1", "2", "3", "4", "5", "6", "7", "8", "9"]),
    ] {
        let mut single: BTreeMap<Bytes, u32> = BTreeMap::new();
        let mut distinct: BTreeMap<Bytes, u32> = BTreeMap::new();
        for seed in 0..10_000u64 {
            let m = set.random_member(seed).expect("not empty").to_bytes();
            *single.entry(m).or_default() += 1;
            for m in set.random_members(3, seed) {
                *distinct.entry(m.to_bytes()).or_default() += 1;
            }
        }
        assert_eq!(single.len(), 10);
        assert!(
            single.values().all(|&n| (850..1150).contains(&n)),
            "{single:?}"
        );
        assert!(
            distinct.values().all(|&n| (2700..3300).contains(&n)),
            "{distinct:?}"
        );
    }
}

#[test]
fn pop_removes_the_member_it_returns() {
    let mut set = set_of(&["1", "2", "3"]);
    let mut seen = BTreeSet::new();
    while let Some(m) = set.pop(seen.len() as u64) {
        assert!(!set.contains(&m));
        assert!(seen.insert(m));
    }
    assert_eq!(texts(seen), vec!["1", "2", "3"]);
    assert!(set.is_empty());
}

#[test]
fn pop_many_takes_everything_when_the_count_reaches_the_size() {
    let mut set = table_of(&["a", "b", "c"]);
    let popped = set.pop_many(3, 1);
    assert_eq!(texts(popped), vec!["a", "b", "c"]);
    assert!(set.is_empty());
    let mut set = set_of(&["1", "2"]);
    assert_eq!(texts(set.pop_many(usize::MAX, 1)), vec!["1", "2"]);
    assert!(set.is_empty());
}

#[test]
fn pop_many_keeps_the_encoding_when_few_are_popped() {
    let mut set = set_of(&["1", "2", "3", "4", "5", "6", "7", "8", "9", "10", "70000"]);
    set.remove(b"70000");
    let popped = set.pop_many(2, 5); // 8 kept: 8 * 5 > 2, one at a time
    assert_eq!(popped.len(), 2);
    assert_eq!(set.len(), 8);
    assert_eq!(set.intset_width(), Some(4), "as Redis: width kept");
    let mut table = table_of(&["1", "2", "3", "4"]);
    table.pop_many(1, 5);
    assert_eq!(table.encoding(), "hashtable");
}

#[test]
fn pop_many_rebuilds_from_the_few_members_it_keeps() {
    // Redis 7.0.15: 1000 integers (hashtable), SPOP 995 -> intset.
    let mut set = Set::new();
    for i in 1..=1000 {
        set.insert(i.to_string().as_bytes());
    }
    assert_eq!(set.encoding(), "hashtable");
    let popped = set.pop_many(995, 42);
    assert_eq!(popped.len(), 995);
    assert_eq!(set.len(), 5);
    assert_eq!(set.encoding(), "intset");
    let all: BTreeSet<Bytes> = popped
        .into_iter()
        .chain(set.iter().map(Member::to_bytes))
        .collect();
    assert_eq!(all.len(), 1000);
    // An intset comes back at the smallest width (Redis: MEMORY USAGE drops).
    let mut wide = set_of(&["1", "2", "3", "4", "5", "6", "70000"]);
    wide.remove(b"70000");
    wide.pop_many(5, 1); // 1 kept: 1 * 5 <= 5
    assert_eq!(wide.intset_width(), Some(2));
    // A string among the kept members: still a hashtable.
    let mut mixed = table_of(&["a", "1", "2", "3", "4", "5", "6"]);
    mixed.remove(b"a");
    mixed.insert(b"b");
    let kept_before: Vec<Bytes> = mixed.iter().map(Member::to_bytes).collect();
    let popped = mixed.pop_many(6, 9);
    assert_eq!(popped.len(), 6);
    assert_eq!(mixed.len(), 1);
    let left = mixed.iter().next().expect("one left").to_bytes();
    assert!(kept_before.contains(&left));
    assert_eq!(
        mixed.encoding(),
        if left == "b" { "hashtable" } else { "intset" }
    );
}

#[test]
fn scanning_an_intset_returns_it_whole() {
    let set = set_of(&["3", "1", "2"]);
    for cursor in [0, 1, 99] {
        let (next, members) = set.scan(cursor, 1);
        assert_eq!(next, 0);
        assert_eq!(members.len(), 3);
    }
}

#[test]
fn scanning_a_table_returns_each_member_once_and_ends_at_zero() {
    let members: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
    let refs: Vec<&str> = members.iter().map(String::as_str).collect();
    let set = table_of(&refs);
    for count in [1, 7, 10, 100, 1000] {
        let mut cursor = 0;
        let mut seen = Vec::new();
        let mut calls = 0;
        loop {
            let (next, batch) = set.scan(cursor, count);
            assert!(batch.len() <= count);
            seen.extend(batch.into_iter().map(Member::to_bytes));
            calls += 1;
            cursor = next;
            if cursor == 0 || calls > 200 {
                break;
            }
        }
        assert_eq!(cursor, 0);
        assert_eq!(texts(seen), texts(members.iter().cloned().map(Bytes::from)));
    }
}

/// The expected values were printed by redis-server 7.0.15
/// (`--enable-debug-command yes`) after the same SADDs.
#[test]
fn digests_of_sets_are_redis_bit_for_bit() {
    let mut db = Db::new();
    let put = |db: &mut Db, key: &str, set: Set, ttl: Option<u64>| {
        db.put(
            0,
            key.as_bytes(),
            Value::Set(crate::kv::Shared::new(set)),
            ttl,
        );
    };
    put(&mut db, "s", set_of(&["1", "2", "3"]), None);
    assert_eq!(
        hex(&db.value_digest(0, b"s")),
        "2a462a3f51a1db89738ebbeef0c47ce1bbc85246"
    );
    assert_eq!(
        hex(&db.dataset_digest()),
        "5db52aea846889b51b38382f9a31b671754d2571"
    );
    put(&mut db, "h", set_of(&["a", "b", "1"]), None);
    assert_eq!(
        hex(&db.value_digest(0, b"h")),
        "e8f32bbb1ad9bf537c8867de4f19fec9e001296d"
    );
    db.remove(0, b"s");
    let mut big = Set::new();
    for i in 1..=600 {
        big.insert(i.to_string().as_bytes());
    }
    put(&mut db, "big", big, None);
    assert_eq!(
        hex(&db.value_digest(0, b"big")),
        "a72a8fb1464f3f3b86a845002e1cde89abfad61e"
    );
    put(&mut db, "e", set_of(&[""]), None);
    assert_eq!(
        hex(&db.value_digest(0, b"e")),
        "68806a1720cdce83323ea7080c09f2e808baeeef"
    );
    let neg = set_of(&["-5", "-9223372036854775808", "9223372036854775807"]);
    put(&mut db, "neg", neg.clone(), None);
    assert_eq!(
        hex(&db.value_digest(0, b"neg")),
        "e2e72d5ef724afcaa4ba33e2984cf51fd37fb3ea"
    );
    put(&mut db, "neg", neg, Some(i64::MAX as u64));
    assert_eq!(
        hex(&db.value_digest(0, b"neg")),
        "0462d3a12b1d459e65acd81add263a84c9d1f269"
    );
    assert_eq!(
        hex(&db.dataset_digest()),
        "21ade6d200fb5e52f60c9e9d9b776a9720eb31c9"
    );
    // The same members as a hashtable digest the same.
    put(&mut db, "t", table_of(&["1", "2", "3"]), None);
    assert_eq!(
        hex(&db.value_digest(0, b"t")),
        "2a462a3f51a1db89738ebbeef0c47ce1bbc85246"
    );
}

#[test]
fn a_db_with_sets_round_trips_through_a_snapshot() {
    let mut db = Db::new();
    let mut table = table_of(&["x", "y", "z"]);
    table.remove(b"x");
    db.put(0, b"t", Value::Set(crate::kv::Shared::new(table)), None);
    let mut wide = set_of(&["1", "70000"]);
    wide.remove(b"70000");
    db.put(
        3,
        b"i",
        Value::Set(crate::kv::Shared::new(wide)),
        Some(5_000),
    );
    let restored = Db::restore(&db.snapshot_bytes()).expect("own snapshot decodes");
    assert_eq!(restored, db);
    assert_eq!(restored.used_memory(), db.used_memory());
    assert_eq!(restored.state_digest(), db.state_digest());
    assert_eq!(restored.snapshot_bytes(), db.snapshot_bytes());
    match restored.entry(3, b"i").map(|e| &e.value) {
        Some(Value::Set(s)) => assert_eq!(s.intset_width(), Some(4)),
        other => panic!("expected a set, got {other:?}"),
    }
    assert_eq!(
        restored.entry(0, b"t").map(|e| e.value.type_name()),
        Some("set")
    );
}

// ---- property tests against a model -------------------------------------

#[derive(Clone, Debug)]
enum Op {
    Insert(Vec<u8>),
    InsertRange(i64, u16),
    Remove(Vec<u8>),
    Pop(u64),
    PopMany(usize, u64),
}

fn member() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        (-40i64..40).prop_map(|v| v.to_string().into_bytes()),
        prop_oneof![
            Just(i64::MIN),
            Just(i64::MAX),
            Just(-32769i64),
            Just(32768),
            Just(1 << 40)
        ]
        .prop_map(|v| v.to_string().into_bytes()),
        prop::sample::select(vec!["a", "b", "", "01", "-0", "+3", "x y"])
            .prop_map(|s| s.as_bytes().to_vec()),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        6 => member().prop_map(Op::Insert),
        1 => (-600i64..600, 1u16..600).prop_map(|(s, n)| Op::InsertRange(s, n)),
        4 => member().prop_map(Op::Remove),
        1 => any::<u64>().prop_map(Op::Pop),
        1 => (0usize..700, any::<u64>()).prop_map(|(c, s)| Op::PopMany(c, s)),
    ]
}

/// The model: members, and Redis's encoding rules written out plainly.
#[derive(Default)]
struct Model {
    members: BTreeSet<Vec<u8>>,
    table: bool,
    width: u8,
}

impl Model {
    fn reset(&mut self) {
        *self = Model {
            width: 2,
            ..Model::default()
        };
    }

    fn insert(&mut self, m: &[u8]) {
        if self.members.contains(m) {
            return;
        }
        if !self.table {
            match parse_i64(m) {
                Some(v) => self.width = self.width.max(width_for(v)),
                None => self.table = true,
            }
        }
        self.members.insert(m.to_vec());
        if self.members.len() > MAX_INTSET_ENTRIES {
            self.table = true;
        }
    }

    fn check(&self, set: &Set) {
        assert_eq!(set.len(), self.members.len());
        let got: BTreeSet<Vec<u8>> = set.iter().map(|m| m.to_bytes().to_vec()).collect();
        assert_eq!(got, self.members);
        assert_eq!(
            set.encoding(),
            if self.table { "hashtable" } else { "intset" }
        );
        if !self.table {
            assert_eq!(set.intset_width(), Some(self.width));
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(200))]

    #[test]
    fn set_matches_the_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut set = Set::new();
        let mut model = Model::default();
        model.reset();
        for op in ops {
            match op {
                Op::Insert(m) => {
                    let fresh = !model.members.contains(&m);
                    prop_assert_eq!(set.insert(&m), fresh);
                    model.insert(&m);
                }
                Op::InsertRange(start, n) => {
                    for v in start..start + i64::from(n) {
                        let m = v.to_string().into_bytes();
                        set.insert(&m);
                        model.insert(&m);
                    }
                }
                Op::Remove(m) => {
                    prop_assert_eq!(set.remove(&m), model.members.remove(&m));
                }
                Op::Pop(seed) => {
                    let popped = set.pop(seed);
                    match popped {
                        Some(m) => prop_assert!(model.members.remove(&m[..])),
                        None => prop_assert!(model.members.is_empty()),
                    }
                }
                Op::PopMany(count, seed) => {
                    let size = model.members.len();
                    let popped = set.pop_many(count, seed);
                    prop_assert_eq!(popped.len(), count.min(size));
                    for m in &popped {
                        prop_assert!(model.members.remove(&m[..]), "popped twice or absent");
                    }
                    if popped.len() == size {
                        model.reset();
                    } else if (size - count) * SPOP_REBUILD_RATIO <= count {
                        // Rebuilt from the members kept.
                        let kept = std::mem::take(&mut model.members);
                        model.reset();
                        for m in kept {
                            model.insert(&m);
                        }
                    }
                }
            }
            model.check(&set);
            for m in [&b"1"[..], b"a", b"-40", b"9223372036854775807"] {
                prop_assert_eq!(set.contains(m), model.members.contains(m));
            }
        }
        let bytes = postcard::to_allocvec(&set).expect("serialises");
        let back: Set = postcard::from_bytes(&bytes).expect("deserialises");
        prop_assert_eq!(&back, &set);
        prop_assert_eq!(back.mem_bytes(), set.mem_bytes());
    }

    /// SSCAN's guarantee: whatever is added and removed between calls, a
    /// member present for the whole scan is returned.
    #[test]
    fn scan_returns_every_member_present_throughout(
        initial in 20usize..300,
        steps in prop::collection::vec((1usize..40, prop::collection::vec(op(), 0..8)), 1..60),
    ) {
        let mut set = Set::new();
        set.insert(b"string");
        for i in 0..initial {
            set.insert(format!("m{i}").as_bytes());
        }
        let start: BTreeSet<Vec<u8>> = set.iter().map(|m| m.to_bytes().to_vec()).collect();
        let mut removed = BTreeSet::new();
        let mut seen = BTreeSet::new();
        let mut cursor = 0;
        let mut finished = false;
        for (count, ops) in steps {
            let (next, batch) = set.scan(cursor, count);
            prop_assert!(batch.len() <= count);
            seen.extend(batch.into_iter().map(|m| m.to_bytes().to_vec()));
            cursor = next;
            if cursor == 0 {
                finished = true;
                break;
            }
            for op in ops {
                match op {
                    Op::Insert(m) => { set.insert(&m); }
                    Op::InsertRange(s, n) => {
                        for v in s..s + i64::from(n % 50) {
                            set.insert(v.to_string().as_bytes());
                        }
                    }
                    Op::Remove(m) => {
                        if set.remove(&m) { removed.insert(m); }
                    }
                    Op::Pop(seed) => {
                        if let Some(m) = set.pop(seed) { removed.insert(m.to_vec()); }
                    }
                    Op::PopMany(c, seed) => {
                        // Small pops only: a pop that rebuilds the set is a new set.
                        for m in set.pop_many(c % 3, seed) { removed.insert(m.to_vec()); }
                    }
                }
            }
            // Removing a member of the initial set by name too.
            if let Some(m) = start.iter().nth(count % start.len()) {
                if set.remove(m) { removed.insert(m.clone()); }
            }
        }
        // Finish the scan with no more changes (bounded: at most one call
        // per member, COUNT 1).
        for _ in 0..=set.len() {
            if finished {
                break;
            }
            let (next, batch) = set.scan(cursor, 1);
            seen.extend(batch.into_iter().map(|m| m.to_bytes().to_vec()));
            cursor = next;
            finished = cursor == 0;
        }
        prop_assert!(finished);
        for m in start.difference(&removed) {
            prop_assert!(seen.contains(m), "missed {:?}", String::from_utf8_lossy(m));
        }
    }
}
