use super::*;

fn fields(n: usize) -> Vec<Bytes> {
    vec![Bytes::from(format!("f{n}")), Bytes::from_static(b"v")]
}

fn filled(n: u64) -> Stream {
    let mut s = Stream::new();
    for i in 1..=n {
        let id = s.next_id(Some((StreamId::new(i, 0), true)), 0).unwrap();
        s.append(id, fields(i as usize));
    }
    s
}

#[test]
fn star_ids_follow_the_log_time_and_never_go_backwards() {
    let mut s = Stream::new();
    let a = s.next_id(None, 1000).unwrap();
    assert_eq!(a, StreamId::new(1000, 0));
    s.append(a, fields(0));
    // The same millisecond: the sequence grows.
    let b = s.next_id(None, 1000).unwrap();
    assert_eq!(b, StreamId::new(1000, 1));
    s.append(b, fields(1));
    // A clock step back (a new leader behind): still after the last id.
    let c = s.next_id(None, 10).unwrap();
    assert_eq!(c, StreamId::new(1000, 2));
    s.append(c, fields(2));
    // `ms-*` at the last ms continues its sequence; a later ms starts at 0.
    assert_eq!(
        s.next_id(Some((StreamId::new(1000, 0), false)), 0),
        Some(StreamId::new(1000, 3))
    );
    assert_eq!(
        s.next_id(Some((StreamId::new(2000, 0), false)), 0),
        Some(StreamId::new(2000, 0))
    );
    // An explicit id not after the last is refused.
    assert_eq!(s.next_id(Some((StreamId::new(1000, 2), true)), 0), None);
    assert_eq!(s.next_id(Some((StreamId::new(999, 0), false)), 0), None);
    // The last possible id: nothing after it.
    s.last_id = StreamId::new(u64::MAX, u64::MAX);
    assert_eq!(s.next_id(None, 5), None);
    s.last_id = StreamId::new(7, u64::MAX);
    assert_eq!(s.next_id(Some((StreamId::new(7, 0), false)), 0), None);
}

#[test]
fn ids_parse_as_redis_does() {
    assert_eq!(
        StreamId::parse(b"5", 9, false, false),
        Some((StreamId::new(5, 9), true))
    );
    assert_eq!(
        StreamId::parse(b"5-*", 0, true, true),
        Some((StreamId::new(5, 0), false))
    );
    assert_eq!(StreamId::parse(b"5-*", 0, true, false), None);
    assert_eq!(StreamId::parse(b"-", 0, true, false), None);
    assert_eq!(
        StreamId::parse(b"+", 0, false, false),
        Some((StreamId::MAX, true))
    );
    for bad in [
        &b"-1"[..],
        b"1-",
        b"a",
        b"1-2-3",
        b"",
        b"18446744073709551616",
        b" 1",
    ] {
        assert_eq!(StreamId::parse(bad, 0, false, false), None, "{bad:?}");
    }
    assert_eq!(StreamId::new(1, u64::MAX).incr(), Some(StreamId::new(2, 0)));
    assert_eq!(StreamId::MAX.incr(), None);
    assert_eq!(StreamId::new(2, 0).decr(), Some(StreamId::new(1, u64::MAX)));
    assert_eq!(StreamId::MIN.decr(), None);
}

#[test]
fn exact_trimming_keeps_the_newest_entries() {
    let mut s = filled(250);
    assert_eq!(s.trim(Trim::MaxLen(10), false, 0), 240);
    assert_eq!(s.len(), 10);
    assert_eq!(s.first_id(), StreamId::new(241, 0));
    let mut s = filled(250);
    assert_eq!(s.trim(Trim::MinId(StreamId::new(150, 0)), false, 0), 149);
    assert_eq!(s.first_id(), StreamId::new(150, 0));
}

#[test]
fn approximate_trimming_removes_whole_nodes_only() {
    // Nodes of 100 entries: 1..=100, 101..=200, 201..=250.
    let mut s = filled(250);
    assert_eq!(s.node_count(), 3);
    assert_eq!(s.trim(Trim::MaxLen(120), true, 10_000), 100);
    assert_eq!(s.len(), 150);
    assert_eq!(s.trim(Trim::MaxLen(120), true, 10_000), 0);
    // LIMIT stops before a node that would exceed it.
    let mut s = filled(250);
    assert_eq!(s.trim(Trim::MaxLen(0), true, 150), 100);
    let mut s = filled(250);
    assert_eq!(
        s.trim(Trim::MinId(StreamId::new(205, 0)), true, 10_000),
        200
    );
}

#[test]
fn deleting_every_entry_of_a_node_drops_the_node() {
    let mut s = filled(150);
    for i in 1..=100 {
        assert!(s.delete(StreamId::new(i, 0)));
    }
    assert!(!s.delete(StreamId::new(1, 0)));
    assert_eq!(s.node_count(), 1);
    assert_eq!(s.max_deleted_id, StreamId::new(100, 0));
    assert_eq!(s.first_id(), StreamId::new(101, 0));
    assert_eq!(s.entries_added, 150);
}

#[test]
fn a_deleted_entry_still_counts_towards_its_node_size() {
    let mut s = filled(99);
    s.delete(StreamId::new(5, 0));
    let id = s.next_id(None, 1000).unwrap();
    s.append(id, fields(1));
    // 98 live + 1 deleted + 1 new = 100: the next entry opens a node.
    assert_eq!(s.node_count(), 1);
    let id = s.next_id(None, 1001).unwrap();
    s.append(id, fields(2));
    assert_eq!(s.node_count(), 2);
}

#[test]
fn the_pel_stays_consistent_across_assign_ack_and_consumer_deletion() {
    let mut s = filled(5);
    s.groups.insert(
        Bytes::from_static(b"g"),
        Group {
            last_id: StreamId::MIN,
            entries_read: 0,
            pel: BTreeMap::new(),
            consumers: BTreeMap::new(),
        },
    );
    let g = s.groups.get_mut(&b"g"[..]).unwrap();
    let (a, b) = (Bytes::from_static(b"a"), Bytes::from_static(b"b"));
    for i in 1..=5 {
        g.assign(StreamId::new(i, 0), &a, 10, 1);
    }
    // Moving an entry to another consumer takes it from the first.
    g.assign(StreamId::new(2, 0), &b, 20, 2);
    assert_eq!(g.consumers[&a].pel.len(), 4);
    assert_eq!(g.consumers[&b].pel.len(), 1);
    assert!(g.ack(StreamId::new(1, 0)));
    assert!(!g.ack(StreamId::new(1, 0)));
    assert_eq!(g.delete_consumer(b"a"), Some(3));
    assert_eq!(g.pel.len(), 1);
    s.check_pel().unwrap();
}

#[test]
fn lag_and_entries_read_follow_redis() {
    let mut s = filled(10);
    let g = Group {
        last_id: StreamId::MIN,
        entries_read: 0,
        pel: BTreeMap::new(),
        consumers: BTreeMap::new(),
    };
    s.groups.insert(Bytes::from_static(b"g"), g);
    assert_eq!(s.lag(&s.groups[&b"g"[..]]), Some(10));
    s.advance_group(b"g", StreamId::new(3, 0));
    assert_eq!(s.groups[&b"g"[..]].entries_read, 1);
    // A tombstone ahead of the group makes the lag unknown.
    s.delete(StreamId::new(8, 0));
    assert_eq!(s.lag(&s.groups[&b"g"[..]]), None);
    assert_eq!(s.estimate_distance(StreamId::new(10, 0)), 10);
    assert_eq!(
        s.estimate_distance(StreamId::new(11, 0)),
        ENTRIES_READ_UNKNOWN
    );
}

#[test]
fn a_stream_with_groups_survives_a_serde_round_trip() {
    let mut s = filled(120);
    s.delete(StreamId::new(3, 0));
    let mut g = Group {
        last_id: StreamId::new(7, 0),
        entries_read: 7,
        pel: BTreeMap::new(),
        consumers: BTreeMap::new(),
    };
    g.assign(StreamId::new(5, 0), &Bytes::from_static(b"c"), 42, 3);
    s.groups.insert(Bytes::from_static(b"g"), g);
    let bytes = postcard::to_allocvec(&s).unwrap();
    let back: Stream = postcard::from_bytes(&bytes).unwrap();
    assert_eq!(back, s);
}

/// The entries' bytes are kept as entries come and go (MEMORY USAGE and
/// `maxmemory` read them after every write; walking the entries made XADD
/// O(n)), equal the walked sum after appends, deletes and both kinds of
/// trim, and are rebuilt when a stream is read back; the entries serialize
/// as the bare map, so snapshots keep their format.
#[test]
fn entry_bytes_are_kept_as_entries_change_and_rebuilt_on_load() {
    let walked = |s: &Stream| s.entries.map.values().map(|f| entry_mem(f)).sum::<u64>();
    let mut s = filled(450);
    assert_eq!(s.entries.bytes, walked(&s));
    for i in (3..450).step_by(7) {
        assert!(s.delete(StreamId::new(i, 0)));
    }
    assert_eq!(s.entries.bytes, walked(&s));
    assert!(s.trim(Trim::MaxLen(300), true, 0) > 0);
    assert_eq!(s.entries.bytes, walked(&s));
    assert!(s.trim(Trim::MaxLen(120), false, 0) > 0);
    assert_eq!(s.entries.bytes, walked(&s));
    assert!(s.trim(Trim::MinId(StreamId::new(420, 0)), false, 0) > 0);
    assert_eq!(s.entries.bytes, walked(&s));
    assert!(s.entries.bytes > 0);
    let encoded = postcard::to_allocvec(&s).unwrap();
    let back: Stream = postcard::from_bytes(&encoded).unwrap();
    assert_eq!(back, s);
    // Snapshots keep the format of the `BTreeMap` the entries once were.
    let as_btree: std::collections::BTreeMap<StreamId, Vec<Bytes>> = s
        .entries
        .map
        .iter()
        .map(|(id, fields)| (*id, fields.clone()))
        .collect();
    assert_eq!(
        postcard::to_allocvec(&s.entries).unwrap(),
        postcard::to_allocvec(&as_btree).unwrap()
    );
}
