//! Stream payloads: Redis 7.0.15's, dkv's own, and hostile ones.
//!
//! `redis_7_0_15.txt` holds DUMPs made by real redis-server 7.0.15 of:
//! - `s1`: `XADD s1 1-1 f v`, `1-2 f v2`, `2-0 a 1 b 2`, `5-3 f 12345`,
//!   `6-0 f x`; `XGROUP CREATE s1 g1 0`; alice reads 2, bob reads 1 with
//!   `XREADGROUP ... >`; `XGROUP CREATECONSUMER s1 g1 carol`; `XACK s1 g1
//!   1-2`; `XGROUP CREATE s1 g0 $`;
//! - `s2`: 250 entries `XADD s2 <1000+i>-0 name user-<i> n <7i> blob
//!   <z × 10·(i mod 5)>` (nodes split by bytes), `XTRIM s2 MAXLEN ~ 120`,
//!   `XGROUP CREATE s2 g 0 ENTRIESREAD 3`, c1 reads 30;
//! - `s3`: `XGROUP CREATE s3 grp $ MKSTREAM` (empty stream);
//! - `s4`: `XADD s4 7-<i> k v<i>` for i in 0..10, `XDEL s4 7-0 7-4`, a group
//!   reading everything, then `XDEL s4 7-5` (deleted entries inside a node);
//! - `s5`: one entry added and deleted (no node left);
//! - `s6`: five `XADD s6 * payload <300 bytes> i <i>` (an LZF listpack).

use bytes::Bytes;

use super::super::{dump, put_len, put_string, restore, seal, DumpError, ListpackWriter};

fn sealed(body: &[u8]) -> Vec<u8> {
    seal(body.to_vec())
}
use super::{id_key, TYPE_STREAM_LISTPACKS_2};
use crate::kv::stream::{Stream, StreamId};
use crate::kv::Value;

fn unhex(hex: &str) -> Vec<u8> {
    (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("test data is hex"))
        .collect()
}

fn captured() -> Vec<(&'static str, Vec<u8>)> {
    include_str!("redis_7_0_15.txt")
        .lines()
        .filter(|l| !l.starts_with('#'))
        .filter_map(|l| l.split_once(' '))
        .map(|(k, h)| (k, unhex(h)))
        .collect()
}

fn stream_of(value: &Value) -> &Stream {
    match value {
        Value::Stream(s) => s,
        other => panic!("not a stream: {other:?}"),
    }
}

fn id(ms: u64, seq: u64) -> StreamId {
    StreamId::new(ms, seq)
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

/// Everything a client can see of a stream (not the node counters).
fn content(s: &Stream) -> String {
    let entries: Vec<_> = s.range(StreamId::MIN, StreamId::MAX, false).collect();
    format!(
        "{entries:?} last={} first={} maxdel={} added={} groups={:?}",
        s.last_id,
        s.first_id(),
        s.max_deleted_id,
        s.entries_added,
        s.groups
    )
}

#[test]
fn redis_payloads_restore_with_their_content() {
    let payloads = captured();
    assert_eq!(payloads.len(), 6);
    let get = |key: &str| {
        let (_, p) = payloads.iter().find(|(k, _)| *k == key).expect("captured");
        restore(p).unwrap_or_else(|e| panic!("{key}: {e}"))
    };
    let v = get("s1");
    let s = stream_of(&v);
    let ids: Vec<StreamId> = s
        .range(StreamId::MIN, StreamId::MAX, false)
        .map(|(i, _)| i)
        .collect();
    assert_eq!(ids, [id(1, 1), id(1, 2), id(2, 0), id(5, 3), id(6, 0)]);
    assert_eq!(s.get(id(2, 0)), Some(&[b("a"), b("1"), b("b"), b("2")][..]));
    assert_eq!(s.get(id(5, 3)), Some(&[b("f"), b("12345")][..]));
    assert_eq!(
        (s.last_id, s.entries_added, s.node_count()),
        (id(6, 0), 5, 1)
    );
    let g1 = &s.groups[&b("g1")];
    assert_eq!((g1.last_id, g1.entries_read), (id(2, 0), 3));
    assert_eq!(
        g1.pel.keys().copied().collect::<Vec<_>>(),
        [id(1, 1), id(2, 0)]
    );
    assert_eq!(g1.pel[&id(1, 1)].consumer, b("alice"));
    assert_eq!(g1.pel[&id(2, 0)].consumer, b("bob"));
    assert_eq!(g1.pel[&id(2, 0)].delivery_count, 1);
    assert!(g1.consumers[&b("carol")].pel.is_empty());
    assert_eq!(g1.consumers.len(), 3);
    let g0 = &s.groups[&b("g0")];
    assert_eq!((g0.last_id, g0.entries_read), (id(6, 0), -1));
    s.check_pel().expect("consistent PEL");

    let v = get("s2");
    let s = stream_of(&v);
    assert_eq!(
        (s.len(), s.first_id(), s.entries_added),
        (152, id(1098, 0), 250)
    );
    assert_eq!(s.node_count(), 2);
    assert_eq!(s.groups[&b("g")].pel.len(), 30);

    let v = get("s3");
    let s = stream_of(&v);
    assert!(s.is_empty() && s.groups.contains_key(&b("grp")));

    let v = get("s4");
    let s = stream_of(&v);
    assert_eq!(
        (s.len(), s.first_id(), s.max_deleted_id),
        (7, id(7, 1), id(7, 5))
    );
    assert_eq!(s.groups[&b("g")].pel.len(), 8);
    s.check_pel().expect("consistent PEL");

    let v = get("s5");
    let s = stream_of(&v);
    assert_eq!((s.len(), s.node_count(), s.last_id), (0, 0, id(1, 1)));
}

#[test]
fn redis_payloads_dump_back_byte_for_byte_without_deleted_entries() {
    for (key, payload) in captured() {
        let value = restore(&payload).expect("restores");
        let ours = dump(&value);
        if key == "s4" {
            // Nodes holding deleted entries are written without them.
            assert_ne!(ours, payload);
        } else {
            assert_eq!(ours, payload, "{key}");
        }
        let back = restore(&ours).expect("dkv's payload restores");
        assert_eq!(
            content(stream_of(&back)),
            content(stream_of(&value)),
            "{key}"
        );
        assert_eq!(dump(&back), ours, "{key}");
    }
}

/// A stream built by dkv's own commands' operations.
fn built() -> Stream {
    let mut s = Stream::new();
    for i in 0..350u64 {
        let mut fields = vec![b("name"), Bytes::from(format!("n{i}"))];
        if i % 7 == 0 {
            fields.push(b("extra"));
            fields.push(Bytes::from(vec![b'x'; (i % 90) as usize]));
        }
        if i % 50 == 3 {
            fields = vec![b("-17"), b("9223372036854775807"), b(""), b("")];
        }
        let at = s.next_id(None, 1_700_000_000_000 + i / 3).expect("an id");
        s.append(at, fields);
    }
    s.delete(id(1_700_000_000_100, 0));
    s.trim(crate::kv::stream::Trim::MaxLen(300), true, 0);
    s.groups.insert(
        b("workers"),
        crate::kv::stream::Group {
            last_id: StreamId::MIN,
            entries_read: crate::kv::stream::ENTRIES_READ_UNKNOWN,
            pel: Default::default(),
            consumers: Default::default(),
        },
    );
    let firsts: Vec<StreamId> = s
        .range(StreamId::MIN, StreamId::MAX, false)
        .take(5)
        .map(|(i, _)| i)
        .collect();
    let g = s.groups.get_mut(&b("workers")).expect("group");
    for (n, at) in firsts.iter().enumerate() {
        g.assign(
            *at,
            &Bytes::from(format!("c{}", n % 2)),
            1_700_000_001_000 + n as u64,
            n as u64 + 1,
        );
    }
    g.create_consumer(&b("idle"), 1_700_000_002_000);
    s.advance_group(b"workers", firsts[4]);
    s
}

#[test]
fn dkv_streams_round_trip() {
    let s = built();
    let value = Value::Stream(crate::kv::Shared::new(s.clone()));
    let payload = dump(&value);
    let back = restore(&payload).expect("restores");
    assert_eq!(content(stream_of(&back)), content(&s));
    assert_eq!(stream_of(&back).node_count(), s.node_count());
    assert_eq!(dump(&back), payload);
    let empty = Value::Stream(crate::kv::Shared::new(Stream::new()));
    assert_eq!(restore(&dump(&empty)), Ok(empty));
}

/// A stream body: `nodes` (master id, listpack), then length, last id,
/// first id, max deleted id, entries added, and `groups` raw.
fn body(nodes: &[(StreamId, Vec<u8>)], length: u64, last: StreamId, groups: &[u8]) -> Vec<u8> {
    let mut out = vec![TYPE_STREAM_LISTPACKS_2];
    put_len(&mut out, nodes.len() as u64);
    for (master, lp) in nodes {
        put_string(&mut out, &id_key(*master));
        put_string(&mut out, lp);
    }
    for n in [length, last.ms, last.seq, 0, 0, 0, 0, 100] {
        put_len(&mut out, n);
    }
    out.extend_from_slice(groups);
    out
}

/// A node listpack: `(flags, ms delta, seq delta)` entries with one field.
fn node(live: i64, deleted: i64, entries: &[(i64, i64, i64)]) -> Vec<u8> {
    let mut lp = ListpackWriter::new();
    for v in [live, deleted, 1] {
        lp.push_int(v);
    }
    lp.push(b"f");
    lp.push_int(0);
    for &(flags, ms, seq) in entries {
        for v in [flags, ms, seq] {
            lp.push_int(v);
        }
        lp.push(b"v");
        lp.push_int(4);
    }
    lp.finish()
}

fn groups_with_pel(pel: &[StreamId], owned: &[StreamId]) -> Vec<u8> {
    let mut g = Vec::new();
    put_len(&mut g, 1);
    put_string(&mut g, b"g");
    for n in [0, 0, 0] {
        put_len(&mut g, n);
    }
    put_len(&mut g, pel.len() as u64);
    for at in pel {
        g.extend_from_slice(&id_key(*at));
        g.extend_from_slice(&5u64.to_le_bytes());
        put_len(&mut g, 1);
    }
    put_len(&mut g, 1);
    put_string(&mut g, b"c");
    g.extend_from_slice(&5u64.to_le_bytes());
    put_len(&mut g, owned.len() as u64);
    for at in owned {
        g.extend_from_slice(&id_key(*at));
    }
    g
}

#[test]
fn hostile_stream_payloads_are_bad_data() {
    let no_groups = [0u8];
    let good = node(2, 0, &[(2, 0, 0), (2, 0, 1)]);
    let ok = sealed(&body(&[(id(5, 0), good.clone())], 2, id(5, 1), &no_groups));
    assert!(restore(&ok).is_ok());
    let pel_ok = groups_with_pel(&[id(5, 0)], &[id(5, 0)]);
    assert!(restore(&sealed(&body(
        &[(id(5, 0), good.clone())],
        2,
        id(5, 1),
        &pel_ok
    )))
    .is_ok());
    let bad: Vec<(&str, Vec<u8>)> = vec![
        (
            "length disagrees",
            body(&[(id(5, 0), good.clone())], 3, id(5, 1), &no_groups),
        ),
        (
            "last id below an entry",
            body(&[(id(5, 0), good.clone())], 2, id(5, 0), &no_groups),
        ),
        (
            "ids out of order",
            body(
                &[(id(5, 0), node(2, 0, &[(2, 0, 1), (2, 0, 0)]))],
                2,
                id(9, 0),
                &no_groups,
            ),
        ),
        (
            "id below the master",
            body(
                &[(id(5, 3), node(1, 0, &[(2, 0, -1)]))],
                1,
                id(9, 0),
                &no_groups,
            ),
        ),
        (
            "repeated id",
            body(
                &[(id(5, 0), node(2, 0, &[(2, 0, 0), (2, 0, 0)]))],
                2,
                id(9, 0),
                &no_groups,
            ),
        ),
        (
            "nodes out of order",
            body(
                &[
                    (id(7, 0), node(1, 0, &[(2, 0, 0)])),
                    (id(5, 0), node(1, 0, &[(2, 0, 0)])),
                ],
                2,
                id(9, 0),
                &no_groups,
            ),
        ),
        (
            "node overlapping the previous",
            body(
                &[
                    (id(5, 0), good.clone()),
                    (id(5, 1), node(1, 0, &[(2, 0, 0)])),
                ],
                3,
                id(9, 0),
                &no_groups,
            ),
        ),
        (
            "live count too high",
            body(
                &[(id(5, 0), node(3, 0, &[(2, 0, 0), (2, 0, 1)]))],
                3,
                id(9, 0),
                &no_groups,
            ),
        ),
        (
            "deleted count wrong",
            body(
                &[(id(5, 0), node(1, 0, &[(2, 0, 0), (3, 0, 1)]))],
                1,
                id(9, 0),
                &no_groups,
            ),
        ),
        (
            "no live entry",
            body(
                &[(id(5, 0), node(0, 1, &[(3, 0, 0)]))],
                0,
                id(9, 0),
                &no_groups,
            ),
        ),
        (
            "unknown flag",
            body(
                &[(id(5, 0), node(1, 0, &[(6, 0, 0)]))],
                1,
                id(9, 0),
                &no_groups,
            ),
        ),
        (
            "negative ms delta",
            body(
                &[(id(5, 0), node(1, 0, &[(2, -1, 0)]))],
                1,
                id(9, 0),
                &no_groups,
            ),
        ),
        (
            "huge live count",
            body(
                &[(id(5, 0), node(i64::MAX, 0, &[(2, 0, 0)]))],
                1,
                id(9, 0),
                &no_groups,
            ),
        ),
        ("short node key", {
            let mut out = vec![TYPE_STREAM_LISTPACKS_2, 1];
            put_string(&mut out, &[0; 15]);
            put_string(&mut out, &good);
            out
        }),
        (
            "PEL entry without a consumer",
            body(
                &[(id(5, 0), good.clone())],
                2,
                id(5, 1),
                &groups_with_pel(&[id(5, 0), id(5, 1)], &[id(5, 0)]),
            ),
        ),
        (
            "consumer owning an id not pending",
            body(
                &[(id(5, 0), good.clone())],
                2,
                id(5, 1),
                &groups_with_pel(&[id(5, 0)], &[id(5, 0), id(5, 1)]),
            ),
        ),
        (
            "repeated PEL entry",
            body(
                &[(id(5, 0), good.clone())],
                2,
                id(5, 1),
                &groups_with_pel(&[id(5, 0), id(5, 0)], &[id(5, 0)]),
            ),
        ),
        ("huge node count", {
            let mut out = vec![TYPE_STREAM_LISTPACKS_2];
            put_len(&mut out, u64::MAX);
            out
        }),
        ("huge group count", {
            let mut out = body(&[(id(5, 0), good.clone())], 2, id(5, 1), &[]);
            put_len(&mut out, 1 << 40);
            out
        }),
        ("huge PEL count", {
            let mut out = body(&[(id(5, 0), good.clone())], 2, id(5, 1), &[1]);
            put_string(&mut out, b"g");
            for n in [0, 0, 0] {
                put_len(&mut out, n);
            }
            put_len(&mut out, u64::MAX / 2);
            out
        }),
    ];
    for (what, body) in bad {
        assert_eq!(restore(&sealed(&body)), Err(DumpError::BadData), "{what}");
    }
    // Truncating a good payload anywhere is bad data too.
    let full = body(&[(id(5, 0), good)], 2, id(5, 1), &pel_ok);
    for cut in 0..full.len() {
        assert_eq!(
            restore(&sealed(&full[..cut])),
            Err(DumpError::BadData),
            "cut at {cut}"
        );
    }
}

#[test]
fn mutated_stream_payloads_never_panic() {
    let mut payloads: Vec<Vec<u8>> = captured().into_iter().map(|(_, p)| p).collect();
    payloads.push(dump(&Value::Stream(crate::kv::Shared::new(built()))));
    // A fixed-seed generator: the run is the same every time.
    let mut state = 0x9e37_79b9_7f4a_7c15u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let (mut tried, mut refused) = (0, 0);
    for payload in &payloads {
        let body = &payload[..payload.len() - 10];
        for _ in 0..400 {
            let mut bad = body.to_vec();
            for _ in 0..1 + next() % 3 {
                let at = (next() % bad.len() as u64) as usize;
                bad[at] = next() as u8;
            }
            if next() % 4 == 0 {
                bad.truncate((next() % bad.len() as u64) as usize);
            }
            tried += 1;
            if restore(&sealed(&bad)).is_err() {
                refused += 1;
            }
        }
    }
    println!("{tried} mutated stream payloads, {refused} refused");
    assert!(refused > tried / 2, "{refused} of {tried}");
}
