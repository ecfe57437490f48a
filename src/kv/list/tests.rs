//! Tests of the list value: each operation's edge cases, the layout
//! (packing, splitting, merging), serialization, and a property test of
//! every operation against a plain `VecDeque<Vec<u8>>` model.

use std::collections::VecDeque;

use proptest::prelude::*;

use super::*;

fn list_of(items: &[&str]) -> List {
    items.iter().map(|s| s.as_bytes()).collect()
}

fn strings(iter: Iter<'_>) -> Vec<String> {
    iter.map(|e| String::from_utf8_lossy(e).into_owned())
        .collect()
}

#[test]
fn entries_round_trip_at_every_length_class() {
    for len in [
        0, 1, 124, 125, 126, 127, 128, 129, 16_381, 16_382, 16_383, 16_384, 70_000,
    ] {
        let value: Vec<u8> = (0..len).map(|i| (i % 251) as u8).collect();
        let mut buf = vec![0; entry_len(len)];
        write_entry(&mut buf, &value);
        let (start, end, next) = entry_at(&buf, 0);
        assert_eq!(&buf[start..end], &value[..], "len {len}");
        assert_eq!(next, buf.len(), "len {len}");
        assert_eq!(entry_before(&buf, buf.len()), 0, "len {len}");
    }
    // The documented cost of a short element: one length byte each way.
    assert_eq!(entry_len(10), 12);
    assert_eq!(entry_len(0), 2);
}

#[test]
fn a_small_list_is_one_packed_buffer_and_the_value_stays_small() {
    let list = list_of(&["a", "b", "c", "d", "e", "f", "g", "h", "i", "j"]);
    assert_eq!(list.layout(), (1, false));
    assert_eq!(list.entry_bytes(), 10 * entry_len(1));
    // No larger than a hash's map: a list does not widen `Value` beyond
    // what a third variant costs anyway (a `Bytes` has a one-value niche).
    assert!(
        std::mem::size_of::<List>()
            <= std::mem::size_of::<std::collections::BTreeMap<Bytes, Bytes>>()
    );
    assert_eq!(list.encoding(), "quicklist");
    assert_eq!(List::new().encoding(), "quicklist");
}

#[test]
fn push_and_pop_at_both_ends() {
    let mut list = List::new();
    assert_eq!(list.pop_front(), None);
    assert_eq!(list.pop_back(), None);
    list.push_back(b"b");
    list.push_front(b"a");
    list.push_back(b"c");
    assert_eq!(strings(list.iter()), ["a", "b", "c"]);
    assert_eq!(list.pop_back().as_deref(), Some(&b"c"[..]));
    assert_eq!(list.pop_front().as_deref(), Some(&b"a"[..]));
    assert_eq!(list.pop_front().as_deref(), Some(&b"b"[..]));
    assert!(list.is_empty());
    assert_eq!(list.entry_bytes(), 0);
}

#[test]
fn push_all_keeps_redis_order() {
    let mut list = list_of(&["x"]);
    list.push_front_all(&["a", "b", "c"]); // LPUSH k a b c
    list.push_back_all(&["d", "e"]); // RPUSH k d e
    assert_eq!(strings(list.iter()), ["c", "b", "a", "x", "d", "e"]);
    // Too much for one node: falls back to one push at a time, same order.
    let big = vec!["y".repeat(3000); 4];
    list.push_front_all(&big);
    list.push_back_all(&["1", "2"]);
    let all = strings(list.iter());
    assert_eq!(all.len(), 12);
    assert_eq!(&all[4..], ["c", "b", "a", "x", "d", "e", "1", "2"]);
    list.check_invariants();
}

#[test]
fn pop_many_returns_in_pop_order_and_stops_at_the_length() {
    let mut list = list_of(&["a", "b", "c", "d"]);
    assert_eq!(list.pop_front_many(0), Vec::<Bytes>::new());
    assert_eq!(list.pop_back_many(2), [&b"d"[..], b"c"]);
    assert_eq!(list.pop_front_many(10), [&b"a"[..], b"b"]);
    assert!(list.is_empty());
}

#[test]
fn get_takes_negative_indexes_and_rejects_out_of_range() {
    let list = list_of(&["a", "b", "c"]);
    assert_eq!(list.get(0), Some(&b"a"[..]));
    assert_eq!(list.get(2), Some(&b"c"[..]));
    assert_eq!(list.get(-1), Some(&b"c"[..]));
    assert_eq!(list.get(-3), Some(&b"a"[..]));
    assert_eq!(list.get(3), None);
    assert_eq!(list.get(-4), None);
    assert_eq!(list.get(i64::MIN), None);
    assert_eq!(list.get(i64::MAX), None);
    assert_eq!(List::new().get(0), None);
}

#[test]
fn set_replaces_in_place_and_refuses_out_of_range() {
    let mut list = list_of(&["a", "b", "c"]);
    assert!(list.set(1, b"a much longer element than before"));
    assert!(list.set(-1, b""));
    assert!(!list.set(3, b"x"));
    assert!(!list.set(-4, b"x"));
    assert_eq!(
        strings(list.iter()),
        ["a", "a much longer element than before", ""]
    );
    list.check_invariants();
}

#[test]
fn set_that_overfills_a_node_splits_it() {
    let mut list: List = (0..100).map(|i| format!("element-{i:04}")).collect();
    assert_eq!(list.layout(), (1, false));
    assert!(list.set(50, &vec![b'z'; 8000]));
    list.check_invariants();
    assert!(list.layout().1);
    assert!(list.layout().0 >= 2);
    assert_eq!(list.get(50).map(<[u8]>::len), Some(8000));
    assert_eq!(list.get(49), Some(&b"element-0049"[..]));
    assert_eq!(list.get(51), Some(&b"element-0051"[..]));
}

#[test]
fn insert_before_and_after_the_first_pivot() {
    let mut list = list_of(&["a", "p", "b", "p"]);
    assert_eq!(list.insert(b"p", b"x", false), Some(5));
    assert_eq!(list.insert(b"p", b"y", true), Some(6));
    assert_eq!(list.insert(b"missing", b"z", true), None);
    assert_eq!(strings(list.iter()), ["a", "x", "p", "y", "b", "p"]);
    assert_eq!(List::new().insert(b"p", b"x", false), None);
}

#[test]
fn remove_counts_from_the_head_the_tail_or_all() {
    let base = ["a", "x", "b", "x", "c", "x"];
    let mut list = list_of(&base);
    assert_eq!(list.remove(b"x", 2), 2);
    assert_eq!(strings(list.iter()), ["a", "b", "c", "x"]);
    let mut list = list_of(&base);
    assert_eq!(list.remove(b"x", -2), 2);
    assert_eq!(strings(list.iter()), ["a", "x", "b", "c"]);
    let mut list = list_of(&base);
    assert_eq!(list.remove(b"x", 0), 3);
    assert_eq!(strings(list.iter()), ["a", "b", "c"]);
    assert_eq!(list.remove(b"nothing", 0), 0);
    assert_eq!(list.remove(b"a", i64::MIN), 1);
    assert_eq!(list.remove(b"c", i64::MAX), 1);
    assert_eq!(strings(list.iter()), ["b"]);
}

#[test]
fn remove_across_many_nodes_merges_what_thinned() {
    let mut list = List::new();
    for i in 0..5000 {
        list.push_back(if i % 10 == 0 {
            b"keep"
        } else {
            b"drop-me-please"
        });
    }
    let nodes_before = list.layout().0;
    assert!(nodes_before > 5);
    assert_eq!(list.remove(b"drop-me-please", 0), 4500);
    list.check_invariants();
    assert_eq!(list.len(), 500);
    assert!(list.iter().all(|e| e == b"keep"));
    // 500 six-byte entries fit in one node after merging.
    assert_eq!(list.layout().0, 1);
}

#[test]
fn trim_follows_ltrim_index_rules() {
    let cases: &[(i64, i64, &[&str])] = &[
        (0, -1, &["a", "b", "c", "d", "e"]),
        (1, 2, &["b", "c"]),
        (-2, -1, &["d", "e"]),
        (-100, 1, &["a", "b"]),
        (3, 100, &["d", "e"]),
        (2, 1, &[]),
        (5, 10, &[]),
        (-1, -2, &[]),
        (i64::MIN, i64::MAX, &["a", "b", "c", "d", "e"]),
        (0, i64::MIN, &[]),
    ];
    for (start, stop, expected) in cases {
        let mut list = list_of(&["a", "b", "c", "d", "e"]);
        let ranged = strings(list.range(*start, *stop));
        list.trim(*start, *stop);
        assert_eq!(strings(list.iter()), *expected, "LTRIM {start} {stop}");
        assert_eq!(ranged, *expected, "LRANGE {start} {stop}");
        list.check_invariants();
    }
}

#[test]
fn range_is_double_ended_and_exact_sized() {
    let list: List = (0..3000).map(|i| i.to_string()).collect();
    assert!(list.layout().0 > 1);
    let range = list.range(1000, 1999);
    assert_eq!(range.len(), 1000);
    let back: Vec<String> = strings(list.range(1000, 1999)).into_iter().rev().collect();
    let rev: Vec<String> = list
        .range(1000, 1999)
        .rev()
        .map(|e| String::from_utf8_lossy(e).into_owned())
        .collect();
    assert_eq!(back, rev);
    let mut both = list.range(0, -1);
    assert_eq!(both.next(), Some(&b"0"[..]));
    assert_eq!(both.next_back(), Some(&b"2999"[..]));
    assert_eq!(both.len(), 2998);
    assert_eq!(list.range(5, 4).len(), 0);
}

#[test]
fn positions_follow_lpos_rank_count_and_maxlen() {
    // index:               0    1    2    3    4    5    6
    let list = list_of(&["a", "b", "c", "1", "2", "3", "c"]);
    let list2 = list_of(&["a", "c", "c", "b", "c"]);
    assert_eq!(list.positions(b"c", 1, 1, 0), [2]);
    assert_eq!(list.positions(b"c", 1, 0, 0), [2, 6]);
    assert_eq!(list.positions(b"c", 2, 1, 0), [6]);
    assert_eq!(list.positions(b"c", 3, 1, 0), Vec::<usize>::new());
    assert_eq!(list.positions(b"c", -1, 1, 0), [6]);
    assert_eq!(list.positions(b"c", -1, 0, 0), [6, 2]);
    assert_eq!(list.positions(b"c", -2, 0, 0), [2]);
    assert_eq!(list.positions(b"c", 1, 0, 2), Vec::<usize>::new());
    assert_eq!(list.positions(b"c", 1, 0, 3), [2]);
    assert_eq!(list.positions(b"c", -1, 0, 1), [6]);
    assert_eq!(list.positions(b"a", -1, 0, 6), Vec::<usize>::new());
    assert_eq!(list.positions(b"z", 1, 0, 0), Vec::<usize>::new());
    assert_eq!(list2.positions(b"c", 2, 2, 0), [2, 4]);
    assert_eq!(list2.positions(b"c", -2, 5, 0), [2, 1]);
    assert_eq!(list2.positions(b"c", i64::MIN, 0, 0), Vec::<usize>::new());
    assert_eq!(list2.positions(b"c", i64::MAX, 0, 0), Vec::<usize>::new());
}

#[test]
fn an_element_larger_than_a_node_gets_a_node_of_its_own() {
    let mut list = List::new();
    let big = vec![b'b'; 20_000];
    list.push_back(&big);
    assert_eq!(list.layout(), (1, false), "alone it stays packed");
    list.push_back(b"small");
    list.push_front(b"first");
    list.check_invariants();
    assert_eq!(list.layout(), (3, true));
    assert_eq!(list.get(1), Some(&big[..]));
    assert_eq!(list.insert(&big, b"after-big", true), Some(4));
    list.check_invariants();
    assert_eq!(strings(list.range(2, 3)), ["after-big", "small"]);
}

#[test]
fn a_growing_list_turns_into_nodes_of_at_most_8_kib() {
    let mut list = List::new();
    for i in 0..10_000 {
        list.push_back(format!("value-{i:05}").as_bytes());
        if i % 1000 == 0 {
            list.check_invariants();
        }
    }
    list.check_invariants();
    let (nodes, quick) = list.layout();
    assert!(quick);
    let bytes = list.entry_bytes();
    assert_eq!(bytes, 10_000 * entry_len(11));
    // Pushes fill nodes to the bound before opening a new one.
    assert_eq!(
        nodes,
        bytes.div_ceil(NODE_MAX_BYTES - NODE_MAX_BYTES % entry_len(11))
    );
    assert_eq!(list.get(9_999), Some(&b"value-09999"[..]));
    assert_eq!(list.get(-10_000), Some(&b"value-00000"[..]));
    assert_eq!(list.get(5_000), Some(&b"value-05000"[..]));
    for _ in 0..9_990 {
        list.pop_front();
    }
    list.check_invariants();
    assert_eq!(
        list.layout(),
        (1, true),
        "empty nodes are dropped as pops go"
    );
}

#[test]
fn mem_bytes_depends_on_the_elements_not_the_layout() {
    // The same ten elements after a different history (a list that grew
    // into several nodes and shrank) count as a freshly built list.
    let mut grown = List::new();
    for i in 0..2000 {
        grown.push_back(format!("{i}").as_bytes());
    }
    grown.trim(0, 9);
    assert!(grown.layout().1);
    let fresh: List = (0..10).map(|i| i.to_string()).collect();
    assert!(!fresh.layout().1);
    assert_eq!(grown, fresh);
    assert_eq!(grown.mem_bytes(), fresh.mem_bytes());
    assert_eq!(
        fresh.mem_bytes(),
        (fresh.entry_bytes() as u64) + NODE_OVERHEAD_BYTES
    );
    // And it grows with the content.
    let mut more = fresh.clone();
    more.push_back(b"another");
    assert!(more.mem_bytes() > fresh.mem_bytes());
    assert_ne!(more, fresh);
}

#[test]
fn serialization_round_trips_and_ignores_the_layout() {
    let mut list: List = (0..3000).map(|i| format!("item:{i}")).collect();
    list.push_back(&vec![0xff; 10_000]);
    list.push_front(b"");
    let bytes = postcard::to_allocvec(&list).unwrap();
    let back: List = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, list);
    back.check_invariants();
    // The same elements, laid out differently, serialize identically.
    let mut rebuilt = List::new();
    for element in list.iter() {
        rebuilt.push_back(element);
    }
    assert_eq!(postcard::to_allocvec(&rebuilt).unwrap(), bytes);
    // Garbage does not decode to a list (and does not panic).
    assert!(postcard::from_bytes::<List>(&[5, 200]).is_err());
}

#[test]
fn debug_shows_the_elements() {
    let list = list_of(&["a", "b\n"]);
    assert_eq!(format!("{list:?}"), r#"[b"a", b"b\n"]"#);
}

// ---- property test against a model ------------------------------------

#[derive(Clone, Debug)]
enum Op {
    PushFront(Vec<u8>),
    PushBack(Vec<u8>),
    PushFrontAll(Vec<Vec<u8>>),
    PushBackAll(Vec<Vec<u8>>),
    PopFront(usize),
    PopBack(usize),
    Get(i64),
    Set(i64, Vec<u8>),
    Insert(Vec<u8>, Vec<u8>, bool),
    Remove(Vec<u8>, i64),
    Trim(i64, i64),
    Range(i64, i64),
    Positions(Vec<u8>, i64, usize, usize),
}

fn element() -> impl Strategy<Value = Vec<u8>> {
    prop_oneof![
        6 => prop::sample::select(vec![&b"a"[..], b"b", b"c", b"", b"123"]).prop_map(<[u8]>::to_vec),
        3 => prop::collection::vec(any::<u8>(), 0..40),
        1 => (100usize..9000, any::<u8>()).prop_map(|(n, b)| vec![b; n]),
    ]
}

fn index() -> impl Strategy<Value = i64> {
    prop_oneof![8 => -80i64..80, 1 => Just(i64::MIN), 1 => Just(i64::MAX)]
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => element().prop_map(Op::PushFront),
        3 => element().prop_map(Op::PushBack),
        1 => prop::collection::vec(element(), 0..300).prop_map(Op::PushFrontAll),
        1 => prop::collection::vec(element(), 0..300).prop_map(Op::PushBackAll),
        2 => (0usize..40).prop_map(Op::PopFront),
        2 => (0usize..40).prop_map(Op::PopBack),
        1 => index().prop_map(Op::Get),
        2 => (index(), element()).prop_map(|(i, v)| Op::Set(i, v)),
        2 => (element(), element(), any::<bool>()).prop_map(|(p, v, a)| Op::Insert(p, v, a)),
        2 => (element(), prop_oneof![-5i64..5, Just(i64::MIN)]).prop_map(|(v, c)| Op::Remove(v, c)),
        1 => (index(), index()).prop_map(|(a, b)| Op::Trim(a, b)),
        1 => (index(), index()).prop_map(|(a, b)| Op::Range(a, b)),
        1 => (element(), prop_oneof![1i64..4, -4i64..0], 0usize..4, 0usize..50)
            .prop_map(|(v, r, c, m)| Op::Positions(v, r, c, m)),
    ]
}

/// Redis's range rule, written out as in `t_list.c` (independently of
/// `clamp_range`): the model's view of LRANGE/LTRIM.
fn model_range(start: i64, stop: i64, len: usize) -> std::ops::Range<usize> {
    let len = len as i128;
    let (mut start, mut stop) = (i128::from(start), i128::from(stop));
    if start < 0 {
        start += len;
    }
    if stop < 0 {
        stop += len;
    }
    if start < 0 {
        start = 0;
    }
    if start > stop || start >= len {
        return 0..0;
    }
    if stop >= len {
        stop = len - 1;
    }
    start as usize..stop as usize + 1
}

fn model_index(index: i64, len: usize) -> Option<usize> {
    let i = if index < 0 {
        len as i128 + i128::from(index)
    } else {
        i128::from(index)
    };
    (0..len as i128).contains(&i).then_some(i as usize)
}

fn apply(list: &mut List, model: &mut VecDeque<Vec<u8>>, op: &Op) {
    match op {
        Op::PushFront(v) => {
            list.push_front(v);
            model.push_front(v.clone());
        }
        Op::PushBack(v) => {
            list.push_back(v);
            model.push_back(v.clone());
        }
        Op::PushFrontAll(vs) => {
            list.push_front_all(vs);
            for v in vs {
                model.push_front(v.clone());
            }
        }
        Op::PushBackAll(vs) => {
            list.push_back_all(vs);
            model.extend(vs.iter().cloned());
        }
        Op::PopFront(n) => {
            let got = list.pop_front_many(*n);
            let k = (*n).min(model.len());
            let want: Vec<Vec<u8>> = model.drain(..k).collect();
            assert_eq!(got, want);
        }
        Op::PopBack(n) => {
            let got = list.pop_back_many(*n);
            let k = (*n).min(model.len());
            let want: Vec<Vec<u8>> = (0..k).filter_map(|_| model.pop_back()).collect();
            assert_eq!(got, want);
        }
        Op::Get(i) => {
            let want = model_index(*i, model.len()).map(|i| &model[i][..]);
            assert_eq!(list.get(*i), want);
        }
        Op::Set(i, v) => {
            let want = model_index(*i, model.len());
            assert_eq!(list.set(*i, v), want.is_some());
            if let Some(i) = want {
                model[i] = v.clone();
            }
        }
        Op::Insert(pivot, v, after) => {
            let want = model.iter().position(|e| e == pivot).map(|i| {
                model.insert(if *after { i + 1 } else { i }, v.clone());
                model.len()
            });
            assert_eq!(list.insert(pivot, v, *after), want);
        }
        Op::Remove(v, count) => {
            let limit = if *count == 0 {
                usize::MAX
            } else {
                count.unsigned_abs() as usize
            };
            let mut hits: Vec<usize> = model
                .iter()
                .enumerate()
                .filter(|(_, e)| *e == v)
                .map(|(i, _)| i)
                .collect();
            if *count < 0 {
                hits.reverse();
            }
            hits.truncate(limit);
            hits.sort_unstable();
            for i in hits.iter().rev() {
                model.remove(*i);
            }
            assert_eq!(list.remove(v, *count), hits.len());
        }
        Op::Trim(a, b) => {
            let keep = model_range(*a, *b, model.len());
            *model = model.range(keep).cloned().collect();
            list.trim(*a, *b);
        }
        Op::Range(a, b) => {
            let want: Vec<&[u8]> = model
                .range(model_range(*a, *b, model.len()))
                .map(|e| &e[..])
                .collect();
            assert_eq!(list.range(*a, *b).collect::<Vec<_>>(), want);
            let mut back: Vec<&[u8]> = list.range(*a, *b).rev().collect();
            back.reverse();
            assert_eq!(back, want);
        }
        Op::Positions(v, rank, count, maxlen) => {
            let len = model.len();
            let scan = if *maxlen == 0 {
                len
            } else {
                (*maxlen).min(len)
            };
            let order: Vec<usize> = if *rank > 0 {
                (0..scan).collect()
            } else {
                (len - scan..len).rev().collect()
            };
            let mut want: Vec<usize> = order
                .into_iter()
                .filter(|&i| model[i] == *v)
                .skip(rank.unsigned_abs() as usize - 1)
                .collect();
            if *count > 0 {
                want.truncate(*count);
            }
            assert_eq!(list.positions(v, *rank, *count, *maxlen), want);
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    /// Every operation agrees with the model, the layout invariants hold
    /// after each, and the memory estimate equals that of the same elements
    /// pushed into a fresh list.
    #[test]
    fn list_matches_a_deque_model(ops in prop::collection::vec(op(), 1..60)) {
        let mut list = List::new();
        let mut model = VecDeque::new();
        for op in &ops {
            apply(&mut list, &mut model, op);
            list.check_invariants();
            prop_assert_eq!(list.len(), model.len());
            prop_assert!(list.iter().eq(model.iter().map(|e| &e[..])));
            prop_assert!(list.iter().rev().eq(model.iter().rev().map(|e| &e[..])));
            let fresh: List = model.iter().collect();
            prop_assert_eq!(list.mem_bytes(), fresh.mem_bytes());
            prop_assert_eq!(&list, &fresh);
        }
        let bytes = postcard::to_allocvec(&list).unwrap();
        let back: List = postcard::from_bytes(&bytes).unwrap();
        prop_assert_eq!(back, list);
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(128))]

    /// A copy (what a snapshot holds) keeps what it saw whatever is done to
    /// the list afterwards, nodes shared or not.
    #[test]
    fn copies_keep_what_they_saw(
        ops in prop::collection::vec(op(), 1..60),
        every in 1usize..6,
    ) {
        let mut list = List::new();
        let mut model = VecDeque::new();
        let mut copies = Vec::new();
        for (n, op) in ops.iter().enumerate() {
            if n % every == 0 {
                copies.push((list.clone(), model.clone()));
            }
            apply(&mut list, &mut model, op);
            list.check_invariants();
            prop_assert!(list.iter().eq(model.iter().map(|e| &e[..])));
        }
        for (copy, seen) in &copies {
            copy.check_invariants();
            prop_assert!(copy.iter().eq(seen.iter().map(|e| &e[..])));
        }
    }
}

/// Nodes of `list` that `other` holds too (the same allocation).
fn shared_nodes(list: &List, other: &List) -> usize {
    match (&list.0, &other.0) {
        (Repr::Quick(a), Repr::Quick(b)) => a
            .nodes
            .iter()
            .filter(|n| b.nodes.iter().any(|m| Arc::ptr_eq(n, m)))
            .count(),
        _ => 0,
    }
}

#[test]
fn a_write_after_a_copy_copies_only_the_node_it_changes() {
    let mut list = List::new();
    for i in 0..100_000 {
        list.push_back(format!("job:{i:08}").as_bytes());
    }
    let nodes = list.layout().0;
    assert!(nodes > 100, "{nodes} nodes");
    let held = list.clone();
    assert_eq!(shared_nodes(&list, &held), nodes);
    list.push_back(b"one more");
    assert_eq!(shared_nodes(&list, &held), nodes - 1);
    assert_eq!(list.pop_front().as_deref(), Some(&b"job:00000000"[..]));
    assert_eq!(shared_nodes(&list, &held), nodes - 2);
    assert!(list.set(50_000, b"changed"));
    assert_eq!(shared_nodes(&list, &held), nodes - 3);
    assert_eq!(held.len(), 100_000);
    assert_eq!(held.get(0), Some(&b"job:00000000"[..]));
    assert_eq!(held.get(50_001), Some(&b"job:00050001"[..]));
    assert_eq!(held.get(-1), Some(&b"job:00099999"[..]));
}
