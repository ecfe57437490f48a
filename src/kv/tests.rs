//! `apply` and `query` against hand-computed results.

use bytes::Bytes;

use super::*;

fn cmd(ts_ms: u64, op: Op) -> Command {
    Command { ts_ms, op }
}

fn args(line: &str) -> Vec<Bytes> {
    line.split_whitespace()
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect()
}

/// A map driven like a replica: each call is one log entry at `now`.
struct Machine {
    db: Db,
    now: u64,
}

impl Machine {
    fn new() -> Machine {
        Machine {
            db: Db::new(),
            now: 1_000_000,
        }
    }

    fn exec_in(&mut self, db: u8, line: &str) -> Output {
        self.db.apply(&cmd(
            self.now,
            Op::Exec {
                db,
                args: args(line),
            },
        ))
    }

    fn exec(&mut self, line: &str) -> Output {
        self.exec_in(0, line)
    }

    fn query(&self, line: &str) -> Output {
        self.db.query(0, &args(line), self.now, 7)
    }
}

fn int(n: i64) -> Output {
    Output::Integer(n)
}

fn bulk(s: &str) -> Output {
    Output::bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn err(s: &str) -> Output {
    Output::err(s)
}

#[test]
fn legacy_set_then_get_returns_value() {
    let mut db = Db::new();
    let out = db.apply(&cmd(
        1,
        Op::Set {
            key: "a".into(),
            value: "1".into(),
        },
    ));
    assert_eq!(out, Output::Ok);
    assert_eq!(db.get(b"a").map(|v| &v[..]), Some(&b"1"[..]));
    assert_eq!(db.len(), 1);
}

/// `Op::Set` and `Op::Del` (the server's forms of a plain SET and of DEL
/// in db 0) leave the same map and answer the same as `Op::Exec` of the
/// same command, from states where they could differ: a TTL to clear, a key
/// of another type, an expired key, and over `maxmemory`.
#[test]
fn compact_set_and_del_apply_as_exec() {
    let setups: [&[&str]; 5] = [
        &[],
        &["SET k old EX 100"],
        &["HSET k f v", "RPUSH l a"],
        &["SET k old PX 5", "SET gone x PX 5"],
        &[
            "SET k old",
            "SET pad xxxxxxxxxxxxxxxxxxxx",
            "CONFIG SET maxmemory 1",
        ],
    ];
    for setup in setups {
        let (mut compact, mut exec) = (Machine::new(), Machine::new());
        for m in [&mut compact, &mut exec] {
            for line in setup {
                m.exec(line);
            }
            m.now += 10;
        }
        let set = Op::Set {
            key: "k".into(),
            value: "new".into(),
        };
        let del = Op::Del {
            keys: vec!["gone".into(), "l".into(), "nope".into()],
        };
        for (op, line) in [(set, "SET k new"), (del, "DEL gone l nope")] {
            let a = compact.db.apply(&cmd(compact.now, op));
            let b = exec.exec(line);
            assert_eq!(a, b, "{setup:?}: {line}");
        }
        assert_eq!(
            compact.db.dataset_digest(),
            exec.db.dataset_digest(),
            "{setup:?}"
        );
        assert_eq!(compact.query("TTL k"), exec.query("TTL k"), "{setup:?}");
    }
}

#[test]
fn legacy_del_counts_only_existing_keys_once() {
    let mut db = Db::new();
    db.apply(&cmd(
        1,
        Op::Set {
            key: "a".into(),
            value: "1".into(),
        },
    ));
    db.apply(&cmd(
        2,
        Op::Set {
            key: "b".into(),
            value: "2".into(),
        },
    ));
    let out = db.apply(&cmd(
        3,
        Op::Del {
            keys: vec!["a".into(), "a".into(), "zz".into(), "b".into()],
        },
    ));
    assert_eq!(out, Output::Integer(2));
    assert!(db.is_empty());
}

#[test]
fn now_only_moves_forward() {
    let mut db = Db::new();
    db.apply(&cmd(10, Op::Del { keys: vec![] }));
    db.apply(&cmd(5, Op::Del { keys: vec![] }));
    assert_eq!(db.now_ms(), 10);
}

#[test]
fn set_options_follow_redis() {
    let mut m = Machine::new();
    assert_eq!(m.exec("SET k v NX"), Output::Ok);
    assert_eq!(m.exec("SET k w NX"), Output::NIL);
    assert_eq!(m.exec("SET k w NX GET"), bulk("v"));
    assert_eq!(m.exec("SET x w XX"), Output::NIL);
    assert_eq!(m.exec("SET k w XX GET"), bulk("v"));
    assert_eq!(m.exec("SET k v NX XX"), err(errors::SYNTAX));
    assert_eq!(m.exec("SET k v EX 10 PX 10"), err(errors::SYNTAX));
    assert_eq!(m.exec("SET k v EX 10 KEEPTTL"), err(errors::SYNTAX));
    assert_eq!(m.exec("SET k v EX"), err(errors::SYNTAX));
    assert_eq!(
        m.exec("SET k v EX 0"),
        err("ERR invalid expire time in 'set' command")
    );
    assert_eq!(m.exec("SET k v EX x"), err(errors::NOT_INTEGER));
    assert_eq!(m.exec("SET k v EX 10 EX 20"), Output::Ok);
    assert_eq!(m.query("PTTL k"), int(20_000));
    assert_eq!(m.exec("SET k v2 KEEPTTL"), Output::Ok);
    assert_eq!(m.query("TTL k"), int(20));
    assert_eq!(m.exec("SET k v3"), Output::Ok);
    assert_eq!(m.query("TTL k"), int(-1));
    assert_eq!(m.exec("HSET h f v"), int(1));
    assert_eq!(m.exec("SET h v GET"), err(errors::WRONGTYPE));
    assert_eq!(m.exec("SET h v"), Output::Ok);
    assert_eq!(m.query("TYPE h"), Output::Status("string".into()));
}

#[test]
fn ttl_is_absolute_from_the_entry_time_and_expired_keys_are_absent() {
    let mut m = Machine::new();
    m.exec("SET k v PX 100");
    assert_eq!(m.query("PTTL k"), int(100));
    assert_eq!(
        m.db.entry(0, b"k").and_then(|e| e.expires_at_ms()),
        Some(1_000_100)
    );
    m.now += 100;
    assert_eq!(
        m.query("GET k"),
        bulk("v"),
        "alive at the deadline (now > deadline expires)"
    );
    m.now += 1;
    assert_eq!(m.query("GET k"), Output::NIL);
    assert_eq!(m.query("EXISTS k"), int(0));
    assert_eq!(m.query("DBSIZE"), int(0));
    assert_eq!(m.db.len(), 1, "reads never delete");
    assert_eq!(m.exec("SETNX k w"), int(1));
    assert_eq!(m.db.stats().expired_keys, 1);
}

#[test]
fn expire_options_and_errors() {
    let mut m = Machine::new();
    assert_eq!(m.exec("EXPIRE k 10"), int(0));
    m.exec("SET k v");
    assert_eq!(m.exec("EXPIRE k 10 XX"), int(0));
    assert_eq!(m.exec("EXPIRE k 10 GT"), int(0));
    assert_eq!(m.exec("EXPIRE k 10 LT"), int(1));
    assert_eq!(m.exec("EXPIRE k 20 NX"), int(0));
    assert_eq!(m.exec("EXPIRE k 20 GT"), int(1));
    assert_eq!(m.exec("EXPIRE k 5 GT"), int(0));
    assert_eq!(
        m.exec("EXPIRE k 5 NX XX"),
        err("ERR NX and XX, GT or LT options at the same time are not compatible")
    );
    assert_eq!(
        m.exec("EXPIRE k 5 GT LT"),
        err("ERR GT and LT options at the same time are not compatible")
    );
    assert_eq!(m.exec("EXPIRE k 5 foo"), err("ERR Unsupported option foo"));
    assert_eq!(
        m.exec("EXPIRE k 9223372036854775807"),
        err("ERR invalid expire time in 'expire' command")
    );
    assert_eq!(m.query("EXPIRETIME k"), int(1_000 + 20));
    assert_eq!(m.query("PEXPIRETIME k"), int(1_020_000));
    assert_eq!(m.exec("PERSIST k"), int(1));
    assert_eq!(m.exec("PERSIST k"), int(0));
    assert_eq!(m.exec("EXPIRE k -1"), int(1));
    assert_eq!(m.query("TTL k"), int(-2));
    assert_eq!(m.query("EXISTS k"), int(0));
}

#[test]
fn counters_and_floats() {
    let mut m = Machine::new();
    assert_eq!(m.exec("INCR n"), int(1));
    assert_eq!(m.exec("INCRBY n -11"), int(-10));
    assert_eq!(
        m.exec("DECRBY n -9223372036854775808"),
        err("ERR decrement would overflow")
    );
    assert_eq!(
        m.exec("INCRBY n 9223372036854775807"),
        int(9223372036854775797)
    );
    assert_eq!(m.exec("INCRBY n 11"), err(errors::OVERFLOW));
    m.exec("SET s 01");
    assert_eq!(m.exec("INCR s"), err(errors::NOT_INTEGER));
    m.exec("SET f 10.50");
    assert_eq!(m.exec("INCRBYFLOAT f 0.1"), bulk("10.6"));
    assert_eq!(m.exec("INCRBYFLOAT f x"), err(errors::NOT_FLOAT));
    assert_eq!(m.query("GET f"), bulk("10.6"));
    m.exec("SET big 1e4932");
    assert_eq!(m.exec("INCRBYFLOAT big 1e4932"), err(errors::NAN_OR_INF));
}

#[test]
fn string_ranges() {
    let mut m = Machine::new();
    m.exec("SET s Hello");
    assert_eq!(m.query("GETRANGE s 0 -1"), bulk("Hello"));
    assert_eq!(m.query("GETRANGE s -3 -1"), bulk("llo"));
    assert_eq!(m.query("GETRANGE s 10 20"), bulk(""));
    assert_eq!(m.query("GETRANGE s -1 -5"), bulk(""));
    assert_eq!(m.exec("SETRANGE s 7 X"), int(8));
    assert_eq!(
        m.query("GET s"),
        Output::bulk(Bytes::from_static(b"Hello\0\0X"))
    );
    assert_eq!(m.exec("SETRANGE s -1 X"), err("ERR offset is out of range"));
    assert_eq!(m.exec("SETRANGE s 536870912 X"), err(errors::TOO_BIG));
    assert_eq!(
        m.exec("SETRANGE e 0 "),
        err("ERR wrong number of arguments for 'setrange' command")
    );
    assert_eq!(m.exec("APPEND s !"), int(9));
    assert_eq!(m.query("STRLEN s"), int(9));
}

#[test]
fn keys_rename_copy_move() {
    let mut m = Machine::new();
    assert_eq!(m.exec("RENAME a b"), err(errors::NO_SUCH_KEY));
    m.exec("SET a 1 EX 100");
    assert_eq!(m.exec("RENAME a a"), Output::Ok);
    assert_eq!(m.exec("RENAME a b"), Output::Ok);
    assert_eq!(m.query("TTL b"), int(100));
    m.exec("SET c 3");
    assert_eq!(m.exec("RENAMENX b c"), int(0));
    assert_eq!(m.exec("COPY b c"), int(0));
    assert_eq!(m.exec("COPY b c REPLACE"), int(1));
    assert_eq!(m.exec("COPY b b"), err(errors::SAME_OBJECT));
    assert_eq!(m.exec("COPY b b DB 16"), err(errors::DB_RANGE));
    assert_eq!(m.exec("COPY b b DB 1"), int(1));
    assert_eq!(m.exec("MOVE c 0"), err(errors::SAME_OBJECT));
    assert_eq!(m.exec("MOVE c 1"), int(1));
    assert_eq!(m.exec_in(1, "DBSIZE"), int(2));
    assert_eq!(m.exec("SWAPDB 0 1"), Output::Ok);
    assert_eq!(m.exec("DBSIZE"), int(2));
    assert_eq!(m.exec("SWAPDB 0 x"), err("ERR invalid second DB index"));
    assert_eq!(m.exec("SWAPDB 0 16"), err(errors::DB_RANGE));
    assert_eq!(m.exec("FLUSHDB x"), err(errors::SYNTAX));
    assert_eq!(m.exec("FLUSHALL ASYNC"), Output::Ok);
    assert!(m.db.is_empty());
}

#[test]
fn scan_returns_keys_present_for_the_whole_scan() {
    let mut m = Machine::new();
    for i in 0..20 {
        m.exec(&format!("SET k{i} v"));
    }
    let mut seen = std::collections::BTreeSet::new();
    let mut cursor = "0".to_string();
    let mut round = 0;
    loop {
        let Output::Array(reply) = m.query(&format!("SCAN {cursor} COUNT 3")) else {
            panic!("array")
        };
        let (Output::Bulk(Some(next)), Output::Array(keys)) = (&reply[0], &reply[1]) else {
            panic!("shape")
        };
        for k in keys {
            if let Output::Bulk(Some(k)) = k {
                seen.insert(k.clone());
            }
        }
        // Churn during the scan: delete and add other keys.
        m.exec(&format!("DEL k{}", 19 - round));
        m.exec(&format!("SET new{round} v"));
        round += 1;
        cursor = String::from_utf8(next.to_vec()).expect("ascii");
        if cursor == "0" {
            break;
        }
    }
    for i in 0..10 {
        assert!(seen.contains(format!("k{i}").as_bytes()), "k{i} missing");
    }
    assert_eq!(m.query("SCAN x"), err("ERR invalid cursor"));
    assert_eq!(m.query("SCAN 0 COUNT 0"), err(errors::SYNTAX));
}

#[test]
fn hashes() {
    let mut m = Machine::new();
    assert_eq!(m.exec("HSET h a 1 b 2"), int(2));
    assert_eq!(
        m.exec("HSET h a 1 b"),
        err("ERR wrong number of arguments for 'hset' command")
    );
    assert_eq!(m.exec("HSETNX h a 9"), int(0));
    assert_eq!(m.query("HGET h a"), bulk("1"));
    assert_eq!(
        m.query("HMGET h a x"),
        Output::Array(vec![bulk("1"), Output::NIL])
    );
    assert_eq!(m.exec("HINCRBY h a 5"), int(6));
    assert_eq!(m.exec("HINCRBYFLOAT h a 0.5"), bulk("6.5"));
    assert_eq!(
        m.exec("HINCRBY h a 1"),
        err("ERR hash value is not an integer")
    );
    assert_eq!(m.query("HLEN h"), int(2));
    assert_eq!(m.query("HSTRLEN h a"), int(3));
    assert_eq!(m.exec("HDEL h a b c"), int(2));
    assert_eq!(m.query("EXISTS h"), int(0), "an emptied hash is deleted");
    m.exec("SET s v");
    assert_eq!(m.query("HGET s a"), err(errors::WRONGTYPE));
    assert_eq!(m.exec("HSET s a b"), err(errors::WRONGTYPE));
    assert_eq!(m.query("GET s"), bulk("v"));
}

#[test]
fn multi_applies_all_or_aborts_on_a_changed_watched_key() {
    let mut m = Machine::new();
    let token = m.db.watch_token(0, "w".into(), m.now);
    let multi = |watched: Vec<WatchToken>| Op::Multi {
        commands: vec![
            (0, args("SET a 1")),
            (0, args("INCR a")),
            (0, args("GET a")),
            (1, args("SET b 2")),
        ],
        watched,
    };
    let out = m.db.apply(&cmd(m.now, multi(vec![token.clone()])));
    assert_eq!(
        out,
        Output::Array(vec![Output::Ok, int(2), bulk("2"), Output::Ok])
    );
    // Absent at WATCH, set and deleted since: the EXEC aborts.
    m.exec("SET w 1");
    m.exec("DEL w");
    assert_eq!(
        m.db.apply(&cmd(m.now, multi(vec![token]))),
        Output::NilArray
    );
    let fresh = m.db.watch_token(0, "w".into(), m.now);
    assert_ne!(
        m.db.apply(&cmd(m.now, multi(vec![fresh]))),
        Output::NilArray
    );
}

#[test]
fn maxmemory_noeviction_refuses_writes_and_eviction_picks_victims() {
    let mut m = Machine::new();
    for i in 0..20 {
        m.exec(&format!("SET key{i} value{i}"));
    }
    assert_eq!(m.exec("CONFIG SET maxmemory 1000"), Output::Ok);
    assert!(m.db.used_memory() > 1000);
    assert_eq!(m.exec("SET more v"), err(errors::OOM));
    assert_eq!(m.exec("DEL key0"), int(1), "DEL is allowed");
    assert_eq!(m.db.eviction_op(100), None, "noeviction evicts nothing");
    m.exec("CONFIG SET maxmemory-policy allkeys-lru");
    let op = m.db.eviction_op(100).expect("over the limit");
    let out = m.db.apply(&cmd(m.now, op));
    assert!(matches!(out, Output::Integer(n) if n > 0));
    assert!(m.db.used_memory() <= 1000);
    assert_eq!(m.db.stats().evicted_keys, out_int(&out));
    assert_eq!(
        m.exec("CONFIG SET maxmemory-policy nope"),
        err("ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the following: volatile-lru, volatile-lfu, volatile-random, volatile-ttl, allkeys-lru, allkeys-lfu, allkeys-random, noeviction")
    );
}

fn out_int(o: &Output) -> u64 {
    match o {
        Output::Integer(n) => *n as u64,
        _ => 0,
    }
}

#[test]
fn active_expiry_deletes_only_keys_still_expired() {
    let mut m = Machine::new();
    m.exec("SET a 1 PX 10");
    m.exec("SET b 1 PX 1000");
    m.exec("SET c 1");
    let op =
        m.db.active_expiry_op(m.now + 20, 100)
            .expect("a is expired");
    assert_eq!(
        op,
        Op::Expire {
            keys: vec![(0, "a".into())]
        }
    );
    // Meanwhile a was given a new TTL: apply must not delete it.
    m.exec("PEXPIRE a 10000");
    assert_eq!(m.db.apply(&cmd(m.now + 20, op)), int(0));
    m.now += 2000;
    let op = m.db.active_expiry_op(m.now, 100).expect("b is expired");
    assert_eq!(m.db.apply(&cmd(m.now, op)), int(1));
    assert_eq!(m.db.stats().expired_keys, 1);
}

#[test]
fn snapshot_round_trips_exactly() {
    let mut m = Machine::new();
    for i in 0..200 {
        m.exec_in(
            (i % 3) as u8,
            &format!("SET k{i} {} PX {}", "x".repeat(i % 50), 1000 + i),
        );
        m.exec(&format!("HSET h{} f{i} {i}", i % 7));
    }
    m.exec("DEL k3 k6");
    m.exec("CONFIG SET maxmemory 10mb maxmemory-policy volatile-ttl");
    let chunks: Vec<Bytes> = m.db.snapshot_chunks(512).collect();
    assert!(chunks.len() > 10);
    let all: Vec<u8> = chunks.iter().flat_map(|c| c.to_vec()).collect();
    let restored = Db::restore(&all).expect("decodes");
    assert_eq!(restored.snapshot_bytes(), m.db.snapshot_bytes());
    assert_eq!(restored.dbs, m.db.dbs);
    assert_eq!(restored.used_memory(), m.db.used_memory());
    assert_eq!(restored.config(), m.db.config());
    assert!(Db::restore(&all[..all.len() - 3]).is_err());
    // The bytes do not depend on how they are cut into chunks.
    m.exec_in(15, "SET last 1");
    let whole = m.db.snapshot_bytes();
    for chunk in [1, 7, 100, 4096, 1 << 20] {
        let joined: Vec<u8> =
            m.db.snapshot_chunks(chunk)
                .flat_map(|c| c.to_vec())
                .collect();
        assert_eq!(joined, whole.to_vec(), "chunks of {chunk} bytes");
    }
}

/// The length-prefixed records of a snapshot.
fn snapshot_records(bytes: &[u8]) -> Vec<Vec<u8>> {
    let mut records = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let len = u32::from_le_bytes(bytes[at..at + 4].try_into().unwrap()) as usize;
        records.push(bytes[at..at + 4 + len].to_vec());
        at += 4 + len;
    }
    records
}

/// Keys come back at the slots they were written in (any order is a valid
/// slot order); a key written twice is corruption.
#[test]
fn snapshot_with_a_repeated_key_is_corrupt() {
    let mut m = Machine::new();
    m.exec("SET a 1");
    m.exec("SET b 2");
    let records = snapshot_records(&m.db.snapshot_bytes());
    assert_eq!(records.len(), 6, "meta, users, known commands, a, b, end");
    let join =
        |order: &[usize]| -> Vec<u8> { order.iter().flat_map(|&i| records[i].clone()).collect() };
    assert!(Db::restore(&join(&[0, 1, 2, 3, 4, 5])).is_ok());
    let swapped = Db::restore(&join(&[0, 1, 2, 4, 3, 5])).expect("b before a restores");
    let keys: Vec<&[u8]> = swapped.dbs[0].map.keys().map(|k| &k[..]).collect();
    assert_eq!(
        keys,
        [&b"b"[..], &b"a"[..]],
        "each key at the slot it was written in"
    );
    match Db::restore(&join(&[0, 1, 2, 3, 3, 4, 5])) {
        Err(SnapshotError::Corrupt { reason, .. }) => {
            assert_eq!(reason, "a key repeated in a database")
        }
        other => panic!("a repeated key: {other:?}"),
    }
    // A key of database 1 before one of database 0.
    let mut m = Machine::new();
    m.exec_in(1, "SET a 1");
    m.exec_in(0, "SET b 1");
    let records = snapshot_records(&m.db.snapshot_bytes());
    let swapped: Vec<u8> = [0, 1, 2, 4, 3, 5]
        .iter()
        .flat_map(|&i| records[i].clone())
        .collect();
    match Db::restore(&swapped) {
        Err(SnapshotError::Corrupt { reason, .. }) => assert_eq!(reason, "databases out of order"),
        other => panic!("{other:?}"),
    }
}

proptest::proptest! {
    #![proptest_config(proptest::prelude::ProptestConfig::with_cases(256))]

    /// The snapshot payload decoder (what a node restores from a file or a
    /// leader's stream) never panics and never allocates from a length field
    /// beyond the input: arbitrary bytes, and a real snapshot with bytes
    /// flipped or cut, are an error or a state, never a crash.
    #[test]
    fn snapshot_decoder_survives_arbitrary_bytes(
        garbage in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..4096),
        flips in proptest::collection::vec((0usize..4096, proptest::prelude::any::<u8>()), 0..8),
        cut in 0usize..4096,
    ) {
        let _ = Db::restore(&garbage);
        let mut m = Machine::new();
        for i in 0..20 {
            m.exec(&format!("SET k{i} v{i} PX {}", 1000 + i));
            m.exec(&format!("HSET h f{i} {i}"));
        }
        let mut real = m.db.snapshot_bytes().to_vec();
        for (at, byte) in flips {
            let len = real.len();
            real[at % len] ^= byte;
        }
        let _ = Db::restore(&real);
        let _ = Db::restore(&real[..cut.min(real.len())]);
    }
}

#[test]
fn replicas_applying_same_log_are_identical() {
    let lines = [
        "SET a 1 EX 5",
        "INCR n",
        "HSET h f 1",
        "DEL a",
        "RENAME h g",
        "SET b 2 PX 1",
        "EXPIRE n 1",
    ];
    let log: Vec<Command> = (0..100u64)
        .map(|i| {
            cmd(
                1000 + i * 400,
                Op::Exec {
                    db: (i % 2) as u8,
                    args: args(lines[i as usize % lines.len()]),
                },
            )
        })
        .collect();
    let (mut a, mut b) = (Db::new(), Db::new());
    let outs_a: Vec<Output> = log.iter().map(|c| a.apply(c)).collect();
    let outs_b: Vec<Output> = log.iter().map(|c| b.apply(c)).collect();
    assert_eq!(outs_a, outs_b);
    assert_eq!(a.snapshot_bytes(), b.snapshot_bytes());
}

#[test]
fn hrandfield_withvalues_returns_pairs_and_plain_counts_return_fields() {
    let mut m = Machine::new();
    m.exec("HSET h a 1 b 2");
    let Output::Pairs(pairs) = m.query("HRANDFIELD h 5 WITHVALUES") else {
        panic!("WITHVALUES gives pairs");
    };
    let mut got: Vec<(Output, Output)> = pairs;
    got.sort_by_key(|(f, _)| format!("{f:?}"));
    assert_eq!(got, vec![(bulk("a"), bulk("1")), (bulk("b"), bulk("2"))]);
    let Output::Pairs(repeated) = m.query("HRANDFIELD h -5 WITHVALUES") else {
        panic!("negative count WITHVALUES gives pairs");
    };
    assert_eq!(repeated.len(), 5);
    for (f, v) in repeated {
        assert!(
            (f == bulk("a") && v == bulk("1")) || (f == bulk("b") && v == bulk("2")),
            "{f:?} {v:?}"
        );
    }
    let Output::Array(fields) = m.query("HRANDFIELD h -3") else {
        panic!("no WITHVALUES gives a flat array");
    };
    assert_eq!(fields.len(), 3);
    assert_eq!(m.query("HRANDFIELD h 0 WITHVALUES"), Output::Array(vec![]));
    assert_eq!(
        m.query("HRANDFIELD nokey 2 WITHVALUES"),
        Output::Array(vec![])
    );
}

/// A huge negative count used to build the whole reply in memory (a capacity
/// overflow panic; inside MULTI that panic was in apply, on every replica).
#[test]
fn hrandfield_huge_negative_count_is_refused_not_a_crash() {
    let mut m = Machine::new();
    m.exec("HSET h a 1");
    for line in [
        "HRANDFIELD h -9223372036854775807",
        "HRANDFIELD h -1000001",
        "HRANDFIELD h -4611686018427387903 WITHVALUES",
    ] {
        let Output::Error(text) = m.query(line) else {
            panic!("{line}: expected an error");
        };
        assert!(text.starts_with("ERR count is out of range"), "{text}");
    }
    let multi = m.db.apply(&cmd(
        m.now,
        Op::Multi {
            commands: vec![(0, args("HRANDFIELD h -9223372036854775807"))],
            watched: vec![],
        },
    ));
    assert!(matches!(multi, Output::Array(ref o) if matches!(o[0], Output::Error(_))));
    let Output::Array(many) = m.query("HRANDFIELD h -1000000") else {
        panic!("the limit itself is served");
    };
    assert_eq!(many.len(), 1_000_000);
}

/// INCRBYFLOAT / HINCRBYFLOAT parse increments and stored values as Redis's
/// `string2ld` (`strtold` on the whole string). Expected replies printed by
/// redis-server 7.0.15 for the same input; `None` is `ERR value is not a
/// valid float` (hash values: `ERR hash value is not a float`).
#[test]
fn incrbyfloat_accepts_exactly_what_redis_strtold_accepts() {
    let cases: &[(&str, Option<&str>)] = &[
        ("0x10", Some("16")),
        ("0X1p4", Some("16")),
        ("0x1.8p1", Some("3")),
        ("-0x10", Some("-16")),
        ("+0x10", Some("16")),
        ("0x1P+4", Some("16")),
        ("0x10e1", Some("4321")),
        ("0x1e", Some("30")),
        ("0x.8", Some("0.5")),
        ("0x1.", Some("1")),
        ("0x0", Some("0")),
        ("0x1p-16400", Some("0")),
        ("0x", None),
        ("-0x", None),
        ("0x1p", None),
        ("0xg", None),
        ("0x.p1", None),
        ("0x1p16384", None),
        ("0x1p-16446", None),
        ("0b101", None),
        ("1.", Some("1")),
        (".5", Some("0.5")),
        ("+.5", Some("0.5")),
        ("-.5e-3", Some("-0.0005")),
        ("00012", Some("12")),
        ("1E5", Some("100000")),
        ("-0", Some("0")),
        ("1e-320", Some("0")),
        (".", None),
        ("1e", None),
        ("1e+", None),
        ("1e0x", None),
        ("nan", None),
        ("-nan", None),
        ("nan(123)", None),
        ("infx", None),
        ("1_0", None),
        (" 1", None),
        ("1 ", None),
        ("\t1", None),
        ("", None),
        ("+", None),
        ("1,5", None),
        ("1.5.5", None),
        ("1d", None),
        ("1e-5000", None),
        ("1e4933", None),
    ];
    for &(input, expected) in cases {
        let mut m = Machine::new();
        let arg = |s: &str| Bytes::copy_from_slice(s.as_bytes());
        let run =
            |m: &mut Machine, a: Vec<Bytes>| m.db.apply(&cmd(m.now, Op::Exec { db: 0, args: a }));
        let incr = run(&mut m, vec![arg("INCRBYFLOAT"), arg("k"), arg(input)]);
        let hincr = run(
            &mut m,
            vec![arg("HINCRBYFLOAT"), arg("h"), arg("f"), arg(input)],
        );
        run(&mut m, vec![arg("SET"), arg("s"), arg(input)]);
        let stored = run(&mut m, vec![arg("INCRBYFLOAT"), arg("s"), arg("1")]);
        run(&mut m, vec![arg("HSET"), arg("hs"), arg("f"), arg(input)]);
        let hstored = run(
            &mut m,
            vec![arg("HINCRBYFLOAT"), arg("hs"), arg("f"), arg("1")],
        );
        match expected {
            Some(v) => {
                let plus_one = match v {
                    "-16" => "-15".to_string(),
                    "-0.0005" => "0.9995".to_string(),
                    "0.5" => "1.5".to_string(),
                    other => (other.parse::<i64>().expect("integer case") + 1).to_string(),
                };
                assert_eq!(incr, bulk(v), "INCRBYFLOAT k {input:?}");
                assert_eq!(hincr, bulk(v), "HINCRBYFLOAT h f {input:?}");
                assert_eq!(stored, bulk(&plus_one), "stored {input:?} + 1");
                assert_eq!(hstored, bulk(&plus_one), "hash-stored {input:?} + 1");
            }
            None => {
                assert_eq!(incr, err(errors::NOT_FLOAT), "INCRBYFLOAT k {input:?}");
                assert_eq!(hincr, err(errors::NOT_FLOAT), "HINCRBYFLOAT h f {input:?}");
                assert_eq!(stored, err(errors::NOT_FLOAT), "stored {input:?}");
                assert_eq!(
                    hstored,
                    err("ERR hash value is not a float"),
                    "hash-stored {input:?}"
                );
            }
        }
    }
}

#[test]
fn incrbyfloat_infinite_increments_get_redis_errors() {
    let mut m = Machine::new();
    for input in ["inf", "-inf", "+inf", "INF", "infinity", "-Infinity"] {
        assert_eq!(
            m.exec(&format!("INCRBYFLOAT k {input}")),
            err(errors::NAN_OR_INF)
        );
        assert_eq!(
            m.exec(&format!("HINCRBYFLOAT h f {input}")),
            err("ERR value is NaN or Infinity")
        );
    }
    let max = m.exec("INCRBYFLOAT big 0x1.fffffffffffffffep16383");
    let Output::Bulk(Some(text)) = max else {
        panic!("the largest long double is accepted: {max:?}");
    };
    assert!(text.starts_with(b"118973149535723176502126385303097020516906332229462420044032373389173700552297072261641029033652888285354569780749557731442744315367028843419812557385374367867359320070697326320191591828296152436552951064679108661431179063216977883889613478656060039914875343321145491116008867984515486651285234014977303760000912547939396622315138362241783854274391783813871780588948754057516822634765923557697480511372564902088485522249479139937758502601177354918009979622602685950855888360815984690023564513234659447638493985927645628457966177293040780660922910271504608538808795932778162298682754783076808004015069494230341172895777710033571401055977524212405734700738625166011082837911962300846927720096515350020847447079244384854591288672300061908512647211195136146752763351956292759795725027800298079590419313960302147099703527646744553092202267965628099149823208332964124103850923918473478612192169721054348428704835340811304257300221642134891734717423480071488075100206439051723424765600472176809648610799494341570347632064355862420744350442438056613601760883747816538902780957697597728686007148702828795556714140463261583262360276289631617397848425448686060994827086796804807870251185893083854658422304090880599629459458620190376604844679092600222541053077590106576067134720012584640695703025713896098375799892695455305236856075868317922311363951946885088077187210470520395758748001314313144425494391994017575316933939236688185618912993172910425292123683515992232205099800167710278403536014082929639811512287776813570604578934353545169653956125404884644716978689321167108722908808277835051822885764606221873970285165508372099234948333443522898475123275372663606621390228126470623407535207172405866507951821730346378263135339370677490195019784169044182473806316282858685774143258116536404021840272491339332094921949842244273042701987304453662035026238695780468200360144729199712309553005720614186697485284685618651483271597448120312194675168637934309618961510733006555242148519520176285859509105183947250286387163249416761380499631979144187025430270675849519200883791516940158174004671147787720145964446117520405945350476472180797576111172084627363927960033967047003761337450955318415007379641260504792325166135484129188421134082301547330475406707281876350361733290800595189632520707167390454777712968226520622565143991937680440029238090311243791261477625596469422198137514696707944687035800439250765945161837981185939204954403611491531078225107269148697980924094677214272701240437718740921675661363493890045123235166814608932240069799317601780533819184998193300841098599393876029260139091141452600372028487213241195542428210183120421610446740462163533690058366460659115629876474552506814500393294140413149540067760295100596225302282300363147382468105964844244132486457313743759509641616804802412935187620466813563687753281467553879887177183651289394719533506188500326760735438867336800207438784965701457609034985757124304510203873049485425670247933932280911052604153852899484920399109194612991249163328991799809438033787952209313146694614970593966415237594928589096048991612194498998638483702248667224914892467841020618336462741696957630763248023558797524525373703543388296086275342774001633343405508353704850737454481975472222897528108302089868263302028525992308416805453968791141829762998896457648276528750456285492426516521775079951625966922911497778896235667095662713848201819134832168799586365263762097828507009933729439678463987902491451422274252700636394232799848397673998715441855420156224415492665301451550468548925862027608576183712976335876121538256512963353814166394951655600026415918655485005705261143195291991880795452239464962763563017858089669222640623538289853586759599064700838568712381032959192649484625076899225841930548076362021508902214922052806984201835084058693849381549890944546197789302911357651677540623227829831403347327660395223160342282471752818181884430488092132193355086987339586127607367086665237555567580317149010847732009642431878007000879734603290627894355374356444885190719161645514115576193939969076741515640282654366402676009508752394550734155613586793306603174472092444651353236664764973540085196704077110364053815007348689179836404957060618953500508984091382686953509006678332447257871219660441528492484004185093281190896363417573989716659600075948780061916409485433875852065711654107226099628815012314437794400874930194474433078438899570184271000480830501217712356062289507626904285680004771889315808935851559386317665294808903126774702966254511086154895839508779675546413794489596052797520987481383976257859210575628440175934932416214833956535018919681138909184379573470326940634289008780584694035245347939808067427323629788710086717580253156130235606487870925986528841635097252953709111431720488774740553905400942537542411931794417513706468964386151771884986701034153254238591108962471088538580868883777725864856414593426212108664758848926003176234596076950884914966244415660441955208681198977024"));
}

/// `Op::Pops` applies pipelined blocking commands' attempts in order and
/// stops at the first that finds nothing: the ones after it are untouched
/// (the server blocks that one first). Errors do not stop the batch.
#[test]
fn pops_apply_in_order_until_one_finds_nothing() {
    let mut m = Machine::new();
    m.exec("RPUSH q a b");
    m.exec("SET s x");
    let commands: Vec<(u8, Vec<Bytes>)> = [
        "BLPOP q 0",
        "BLPOP s 0",
        "BRPOP q 0",
        "BLPOP q 0",
        "BLPOP r 0",
    ]
    .iter()
    .map(|line| (0, args(line)))
    .collect();
    m.exec("RPUSH r c");
    let out = m.db.apply(&cmd(m.now, Op::Pops { commands }));
    let pair = |k: &str, v: &str| Output::Array(vec![bulk(k), bulk(v)]);
    assert_eq!(
        out,
        Output::Array(vec![
            pair("q", "a"),
            err("WRONGTYPE Operation against a key holding the wrong kind of value"),
            pair("q", "b"),
            Output::NilArray,
        ])
    );
    assert_eq!(m.query("EXISTS q"), int(0));
    // Not applied: it comes after the one that found nothing.
    assert_eq!(m.query("LLEN r"), int(1));
}

#[test]
fn info_keyspace_counts_keys_of_every_type() {
    // Redis 7.0.15 after RPUSH l a, SADD s 1, ZADD z 1 a, HSET h f v,
    // SET k v EX 100: `db0:keys=5,expires=1` (no line for empty databases).
    let mut m = Machine::new();
    for line in [
        "RPUSH l a",
        "SADD s 1",
        "ZADD z 1 a",
        "HSET h f v",
        "SET k v EX 100",
    ] {
        assert!(!matches!(m.exec(line), Output::Error(_)), "{line}");
    }
    let info = m.db.info(m.db.now_ms());
    assert_eq!(info.keyspace.len(), 1);
    let (db, keys, expires, _) = info.keyspace[0];
    assert_eq!((db, keys, expires), (0, 5, 1));
}

/// A snapshot is the state at the moment it was taken, however much is
/// written while its chunks are encoded: the keyspace's trees are shared
/// with the copy, so every write after it must copy what it changes rather
/// than change the copy too (keys set, overwritten, deleted, expired, moved,
/// collections changed in place, databases flushed and swapped).
#[test]
fn a_snapshot_is_the_state_when_taken_whatever_is_written_while_it_encodes() {
    let mut m = Machine::new();
    for i in 0..3000 {
        m.exec(&format!("SET k{i} v{i}"));
        if i % 10 == 0 {
            m.exec(&format!("SADD s{i} a b c"));
            m.exec(&format!("HSET h{i} f {i}"));
            m.exec(&format!("RPUSH l{i} x y"));
            m.exec(&format!("ZADD z{i} 1 a 2 b"));
            m.exec(&format!("PEXPIRE k{i} 500000"));
        }
        if i % 7 == 0 {
            m.exec_in(3, &format!("SET other{i} x"));
            m.exec(&format!("DEL k{}", i / 2));
        }
    }
    let expected = m.db.snapshot_bytes();
    // Small chunks: the encoding is still at the start when the writes land.
    let mut chunks = m.db.snapshot_chunks(256);
    let mut encoded = chunks.next().expect("a first chunk").to_vec();
    for i in 0..3000 {
        m.exec(&format!("SET k{i} changed"));
        if i % 10 == 0 {
            m.exec(&format!("SADD s{i} d"));
            m.exec(&format!("HSET h{i} f changed"));
            m.exec(&format!("LPOP l{i}"));
            m.exec(&format!("ZINCRBY z{i} 5 a"));
            m.exec(&format!("PERSIST k{i}"));
            m.exec(&format!("RENAME s{i} renamed{i}"));
        }
        if i % 13 == 0 {
            m.exec(&format!("UNLINK k{}", i + 1));
        }
    }
    m.exec("SWAPDB 0 3");
    m.exec_in(3, "FLUSHDB");
    m.now += 1_000_000; // every TTL above has passed
    m.exec("SET after-expiry x");
    for chunk in chunks {
        encoded.extend_from_slice(&chunk);
    }
    assert!(
        encoded == expected,
        "the snapshot encoded after the writes differs from the state when it was taken"
    );
    assert_ne!(
        m.db.snapshot_bytes(),
        expected,
        "the writes did change the map"
    );
    let restored = Db::restore(&encoded).expect("the snapshot restores");
    assert_eq!(restored.snapshot_bytes(), expected);
}

/// What the keyspace keeps of a SET: the key, and a short value, in
/// buffers of their own, so neither keeps the buffer it arrived in alive (a
/// plain SET's log payload, which the log frees when it is compacted; a
/// command's argument); a long value shares the buffer it arrived in.
#[test]
fn a_set_keeps_its_own_copy_of_the_key_and_of_a_short_value() {
    let stored = |db: &Db, key: &[u8]| -> (*const u8, *const u8) {
        let map = &db.dbs[0].map;
        let (k, entry) = map.at(map.find(key).expect("the key is set")).unwrap();
        let Value::Str(s) = &entry.value else {
            panic!("a string")
        };
        (k.as_ptr(), s.as_ptr())
    };
    // A key longer than the slot holds inline is kept in a buffer of its
    // own, which the deadline index shares.
    const LONG: &str = "long:a-key-longer-than-an-inline-one";
    assert!(LONG.len() > key::INLINE);
    let mut db = Db::new();
    for (key, len, shared) in [("short", 64, false), (LONG, 4096, true)] {
        // A plain SET, decoded from its payload as apply decodes it.
        let payload = cmd(
            1,
            Op::Set {
                key: Bytes::from(key),
                value: Bytes::from(vec![b'v'; len]),
            },
        )
        .encode();
        db.apply(&Command::decode_shared(&payload).unwrap());
        let range = payload.as_ptr_range();
        let (k, v) = stored(&db, key.as_bytes());
        assert!(!range.contains(&k), "{key}: the key keeps the payload");
        assert_eq!(range.contains(&v), shared, "{key}: the value");
        // SET with options, SETNX and MSET take their arguments.
        for (form, at) in [
            ("SET {k} {v} EX 100", 2),
            ("SETNX {k}2 {v}", 2),
            ("MSET {k}3 {v}", 2),
            ("SET {k}4 {v} PX 100", 2),
        ] {
            let line = form.replace("{k}", key).replace("{v}", &"w".repeat(len));
            let args = args(&line);
            db.apply(&cmd(
                2,
                Op::Exec {
                    db: 0,
                    args: args.clone(),
                },
            ));
            let (k, v) = stored(&db, &args[1]);
            assert_ne!(k, args[1].as_ptr(), "{form}: the key is the argument's");
            assert_eq!(v == args[at].as_ptr(), shared, "{form}: the value");
            // A deadline is filed under the map's copy of the key.
            if let Some(due) = db.dbs[0].expiring.iter().find(|d| d.key == args[1]) {
                assert_deadline_key(&due.key, k, form);
            }
        }
        assert_eq!(db.dbs[0].expiring.len(), if shared { 4 } else { 2 });
    }
    // A TTL given or changed later is filed under the map's key too.
    let expire_long = format!("EXPIRE {LONG} 7");
    for (i, line) in ["EXPIRE short2 100", "PEXPIRE short2 5000", &expire_long]
        .iter()
        .enumerate()
    {
        let args = args(line);
        db.apply(&cmd(
            3 + i as u64,
            Op::Exec {
                db: 0,
                args: args.clone(),
            },
        ));
        let (k, _) = stored(&db, &args[1]);
        let filed: Vec<&Key> = db.dbs[0]
            .expiring
            .iter()
            .filter(|d| d.key == args[1])
            .map(|d| &d.key)
            .collect();
        assert_eq!(filed.len(), 1, "{line}: one place");
        assert_deadline_key(filed[0], k, line);
    }
}

/// A deadline's key is the map's: inline when short (no buffer at all),
/// else a handle on the map's buffer at `stored`.
fn assert_deadline_key(due: &Key, stored: *const u8, what: &str) {
    match due {
        Key::Inline { len, .. } => assert!(usize::from(*len) <= key::INLINE, "{what}"),
        Key::Heap(bytes) => assert_eq!(bytes.as_ptr(), stored, "{what}: the deadline's key"),
    }
}

/// The deadlines tree files the deadline the entry keeps, so removing the
/// key finds it again: even for the one deadline the entry cannot keep as
/// given (`u64::MAX`, kept a millisecond earlier), made by a put or by a
/// change of TTL.
#[test]
fn the_deadlines_tree_files_what_the_entry_keeps() {
    let mut db = Db::new();
    let value = || Value::Str(Bytes::from("v").into());
    db.put(0, b"a", value(), Some(u64::MAX));
    db.put(0, b"b", value(), None);
    db.set_expiry(0, b"b", Some(u64::MAX));
    db.put(0, b"c", value(), Some(5));
    db.put(0, b"c", value(), Some(u64::MAX));
    let mut filed: Vec<(u64, Bytes)> = db.dbs[0]
        .expiring
        .iter()
        .map(|due| (due.at, due.key.to_bytes()))
        .collect();
    filed.sort();
    let kept = u64::MAX - 1;
    assert_eq!(
        filed,
        [
            (kept, Bytes::from("a")),
            (kept, Bytes::from("b")),
            (kept, Bytes::from("c"))
        ]
    );
    for key in [&b"a"[..], b"b", b"c"] {
        assert_eq!(db.entry(0, key).and_then(Entry::expires_at_ms), Some(kept));
        db.remove(0, key);
    }
    assert!(db.dbs[0].expiring.is_empty(), "{:?}", db.dbs[0].expiring);
}

/// Every key's slot in the keyspace trees holds an `Entry`, and most hold
/// strings: a collection type stored inline would make every slot as large as
/// the largest type (a 1M-key load measured 500 MiB with 144-byte entries,
/// 394 MiB with 88-byte ones). Large variants go behind a `Box`.
#[test]
fn a_keyspace_slot_is_sized_by_strings_not_by_the_largest_collection() {
    assert!(std::mem::size_of::<Value>() <= std::mem::size_of::<string::Str>() + 8);
    // The access record (LRU clock and LFU counter) is one word.
    assert_eq!(std::mem::size_of::<Access>(), 8);
    // Without a creation sequence (SCAN walks slots, `keymap`), and with
    // the deadline in one word: 64 bytes.
    assert!(
        std::mem::size_of::<Entry>() <= 64,
        "{}",
        std::mem::size_of::<Entry>()
    );
    // A keyspace slot is the key (inline when short) and the entry.
    assert!(std::mem::size_of::<(Key, Entry)>() <= 96);
}

/// The entry keeps its deadline in one word, and snapshots still carry it
/// as the `Option<u64>` they always had: the same bytes both ways.
#[test]
fn an_entry_encodes_its_deadline_as_the_option_it_stands_for() {
    #[derive(Debug, PartialEq, serde::Serialize, serde::Deserialize)]
    struct AsWritten {
        value: Value,
        expires_at_ms: Option<u64>,
        version: u64,
    }
    for deadline in [
        None,
        Some(0),
        Some(1_796_516_548_000),
        Some(i64::MAX as u64),
    ] {
        let value = Value::Str(Bytes::from("v").into());
        let entry = Entry::new(value.clone(), deadline, 7);
        let written = AsWritten {
            value,
            expires_at_ms: deadline,
            version: 7,
        };
        let bytes = postcard::to_allocvec(&entry).unwrap();
        assert_eq!(bytes, postcard::to_allocvec(&written).unwrap());
        let back: Entry = postcard::from_bytes(&bytes).unwrap();
        assert_eq!(back.expires_at_ms(), deadline);
        assert_eq!(back, entry);
    }
    // The one deadline the word cannot keep is kept a millisecond earlier,
    // made or read.
    let value = Value::Str(Bytes::from("v").into());
    let at_max = Some(u64::MAX - 1);
    assert_eq!(
        Entry::new(value.clone(), Some(u64::MAX), 1).expires_at_ms(),
        at_max
    );
    let written = AsWritten {
        value,
        expires_at_ms: Some(u64::MAX),
        version: 1,
    };
    let read: Entry = postcard::from_bytes(&postcard::to_allocvec(&written).unwrap()).unwrap();
    assert_eq!(read.expires_at_ms(), at_max);
}

/// A plain SET finds and fills the key's slot in one walk (`Db::replace`);
/// it must leave exactly the state the checked path leaves (`SET ... NX`
/// and `SET ... GET` look the key up first): an expired old value deleted
/// and counted, the key created anew, the same versions, touches and events.
#[test]
fn a_plain_set_leaves_the_state_the_checked_set_leaves() {
    for (old, checked) in [
        ("expired", "SET k w NX"),
        ("absent", "SET k w NX"),
        ("live", "SET k w GET"),
    ] {
        let [mut plain, mut reference] = [Machine::new(), Machine::new()];
        for m in [&mut plain, &mut reference] {
            m.exec("CONFIG SET notify-keyspace-events KEA");
            m.exec("SET a 1");
            match old {
                "expired" => m.exec("SET k v PX 100"),
                "live" => m.exec("SET k v"),
                _ => m.exec("SET b 1"),
            };
            m.exec("SET z 1");
            m.now += 101;
            m.db.track_touched(true);
        }
        assert_eq!(plain.exec("SET k w"), Output::Ok, "{old}");
        reference.exec(checked);
        assert_eq!(plain.db, reference.db, "{old}");
        assert_eq!(
            plain.db.take_touched(),
            reference.db.take_touched(),
            "{old}"
        );
        let expired = u64::from(old == "expired");
        assert_eq!(plain.db.stats().expired_keys, expired, "{old}");
        assert_eq!(plain.query("GET k"), bulk("w"), "{old}");
    }
}

/// The access record packs the last access time and the LFU counter into
/// one word: neither spills into the other.
#[test]
fn an_access_record_keeps_its_time_and_its_counter_apart() {
    let a = Access::default();
    let now = 1_764_900_000_000;
    for _ in 0..300 {
        a.touch(now);
    }
    assert_eq!(a.frequency(now), 255, "the counter stops at 255");
    assert_eq!(a.idle_ms(now + 5), 5);
    assert_eq!(a.frequency(now + 2 * LFU_DECAY_MS), 63, "halved twice");
    a.touch(now + 2 * LFU_DECAY_MS);
    assert_eq!(a.frequency(now + 2 * LFU_DECAY_MS), 64);
    assert_eq!(a.idle_ms(now + 2 * LFU_DECAY_MS), 0);
    a.set(now - 7, 1_000);
    assert_eq!((a.idle_ms(now), a.frequency(now)), (7, 255));
    a.set(now, 0);
    assert_eq!((a.idle_ms(now + 1), a.frequency(now)), (1, 0));
}

/// The WATCH tombstones' log holds exactly the live tombstones, so it never
/// needs a sweep: keys deleted over and over leave one entry each, and past
/// the cap the oldest are forgotten first, moving the horizon.
#[test]
fn tombstones_stay_one_per_deleted_key_and_are_forgotten_oldest_first() {
    let mut m = Machine::new();
    for _ in 0..300 {
        for k in 0..10 {
            m.exec(&format!("SET again{k} 1"));
            m.exec(&format!("DEL again{k}"));
        }
    }
    assert_eq!(m.db.tombstones.len(), 10);
    assert_eq!(m.db.tombstone_log.len(), 10);
    assert_eq!(m.db.tombstone_horizon, 0);
    let first = m.db.tombstone_log.get_min().cloned().expect("ten");
    for k in 0..TOMBSTONES {
        m.exec(&format!("SET k{k} 1"));
        m.exec(&format!("DEL k{k}"));
    }
    assert_eq!(m.db.tombstones.len(), TOMBSTONES);
    assert_eq!(m.db.tombstone_log.len(), TOMBSTONES);
    // The ten oldest went, the last of them set the horizon.
    assert!(!m.db.tombstones.contains_key(&(first.1, first.2.clone())));
    let tenth = m.db.tombstones.get(&(0, Bytes::from_static(b"k0")));
    assert!(tenth.is_some(), "the newer ones stay");
    assert!(m.db.tombstone_horizon > first.0);
    for (at, db, key) in m.db.tombstone_log.iter() {
        assert_eq!(m.db.tombstones.get(&(*db, key.clone())), Some(at));
    }
    // A snapshot keeps the same tombstones, in the same order.
    let restored = Db::restore(&m.db.snapshot_bytes()).expect("restores");
    assert_eq!(restored, m.db);
}

/// A flush of more keys than tombstones are kept for drops the database
/// whole: the same keyspace, memory count and WATCH outcomes as deleting
/// key by key, with the keyspace handed over as garbage.
#[test]
fn a_big_flush_drops_the_database_whole_and_watches_see_the_same() {
    let mut m = Machine::new();
    m.exec_in(1, "SET other 1");
    m.exec("SET gone-before 1");
    m.exec("DEL gone-before");
    for k in 0..TOMBSTONES + 10 {
        m.exec(&format!("SET k{k} {k}"));
    }
    m.exec("HSET h f v");
    let tokens: Vec<WatchToken> = [
        (0, "k7"),
        (0, "never"),
        (0, "gone-before"),
        (0, "h"),
        (1, "other"),
        (1, "absent"),
    ]
    .into_iter()
    .map(|(db, key)| {
        m.db.watch_token(db, Bytes::from_static(key.as_bytes()), m.now)
    })
    .collect();
    let mut by_key = m.db.clone();
    let keys: Vec<Bytes> = by_key.dbs[0].map.keys().map(Key::to_bytes).collect();
    for key in keys {
        by_key.remove(0, &key);
    }
    m.db.flush(0);
    assert_eq!(m.db.dbs[0], by_key.dbs[0]);
    assert_eq!(m.db.dbs[1], by_key.dbs[1]);
    assert_eq!(m.db.used_memory(), by_key.used_memory());
    for token in &tokens {
        assert_eq!(
            m.db.watch_broken(token, m.now),
            by_key.watch_broken(token, m.now),
            "{token:?}"
        );
    }
    // Watches taken after the flush see later changes only.
    let after = m.db.watch_token(0, Bytes::from_static(b"k7"), m.now);
    assert!(!m.db.watch_broken(&after, m.now));
    m.exec("SET k7 again");
    m.exec("DEL k7");
    assert!(m.db.watch_broken(&after, m.now));
    assert!(!m.db.take_garbage().is_empty());
    assert!(m.db.take_garbage().is_empty());
    // A small flush still goes key by key (Redis's exact WATCH rules).
    m.exec_in(2, "SET small 1");
    m.db.flush(2);
    assert!(m.db.take_garbage().is_empty());
}

/// After a snapshot's copy, a write next to a big collection copies the
/// keyspace's leaf but not the collection; a write to the collection copies
/// it once, and the snapshot's copy keeps the old contents.
#[test]
fn a_snapshot_copy_shares_collections_until_they_are_written() {
    let mut m = Machine::new();
    let fields: Vec<String> = (0..2000).map(|i| format!("f{i} {i}")).collect();
    m.exec(&format!("HSET big {}", fields.join(" ")));
    m.exec("XADD log 1-1 a 1");
    m.exec("SET bif 1");
    let copy = m.db.clone();
    let hash = |db: &Db| match &db.dbs[0].map.get(&b"big"[..]).expect("big").value {
        Value::Hash(h) => h.clone(),
        other => panic!("{other:?}"),
    };
    m.exec("SET bif 2");
    assert!(
        Shared::ptr_eq(&hash(&m.db), &hash(&copy)),
        "a neighbour's write copied the hash"
    );
    m.exec("HSET big f0 changed");
    assert!(!Shared::ptr_eq(&hash(&m.db), &hash(&copy)));
    assert_eq!(copy.query(0, &args("HGET big f0"), m.now, 7), bulk("0"));
    assert_eq!(m.query("HGET big f0"), bulk("changed"));
    m.exec("XADD log 2-1 b 2");
    assert_eq!(copy.query(0, &args("XLEN log"), m.now, 7), int(1));
    assert_eq!(m.query("XLEN log"), int(2));
}

/// A snapshot's copy of big collections (chunked, `kv::chunked`) keeps
/// exactly what it saw while the live map writes every kind of change into
/// them: its snapshot bytes do not move, and the live map still agrees with
/// a map that never had a copy taken.
#[test]
fn a_snapshot_copy_of_big_collections_never_sees_later_writes() {
    let mut live = Machine::new();
    let mut plain = Machine::new();
    let load = |m: &mut Machine| {
        let members: Vec<String> = (0..3000).map(|i| format!("m{i}")).collect();
        let pairs: Vec<String> = (0..3000).map(|i| format!("f{i} {i}")).collect();
        let scored: Vec<String> = (0..3000).map(|i| format!("{} m{i}", i % 97)).collect();
        m.exec(&format!("SADD s {}", members.join(" ")));
        m.exec(&format!("HSET h {}", pairs.join(" ")));
        m.exec(&format!("ZADD z {}", scored.join(" ")));
        let jobs: Vec<String> = (0..3000).map(|i| format!("job{i}")).collect();
        m.exec(&format!("RPUSH l {}", jobs.join(" ")));
    };
    load(&mut live);
    load(&mut plain);
    let copy = live.db.clone();
    let before = copy.snapshot_bytes();
    for i in 0..400 {
        for line in [
            format!("SADD s new{i}"),
            format!("SREM s m{}", i * 7),
            "SPOP s".to_string(),
            format!("HSET h f{} changed{i} g{i} x", i * 5),
            format!("HDEL h f{}", i * 3 + 1),
            format!("ZADD z {} m{}", i, i * 11 % 3000),
            format!("ZREM z m{}", i * 13 % 3000),
            "ZPOPMIN z".to_string(),
            format!("LPUSH l new{i}"),
            "RPOP l".to_string(),
            format!("LSET l {} set{i}", i * 7 % 2000),
            format!("LREM l 1 job{}", i * 3),
            format!("LINSERT l BEFORE job{} ins{i}", i * 5 + 1),
            format!("LTRIM l 0 {}", 2900 - i),
        ] {
            live.exec(&line);
            plain.exec(&line);
        }
    }
    assert_eq!(copy.snapshot_bytes(), before, "the copy saw a later write");
    assert_eq!(live.db, plain.db);
    assert_eq!(live.db.snapshot_bytes(), plain.db.snapshot_bytes());
}

/// Every replica keeps every key at the same slot, a replica restored from
/// a snapshot included, so a SCAN cursor from one node means the same on
/// another: the same pages, the same next cursors.
#[test]
fn a_scan_cursor_means_the_same_on_a_replica_restored_from_a_snapshot() {
    let mut m = Machine::new();
    for i in 0..60 {
        m.exec(&format!("SET k{i} v"));
    }
    for i in (0..60).step_by(4) {
        m.exec(&format!("DEL k{i}"));
    }
    m.exec("SET k1 replaced");
    let replica = Machine {
        db: Db::restore(&m.db.snapshot_bytes()).expect("restores"),
        now: m.now,
    };
    let mut cursor = "0".to_string();
    let mut pages = 0;
    loop {
        let line = format!("SCAN {cursor} COUNT 7");
        let page = m.query(&line);
        assert_eq!(replica.query(&line), page, "{line}");
        let Output::Array(parts) = page else {
            panic!("SCAN answered {page:?}")
        };
        let Output::Bulk(Some(next)) = &parts[0] else {
            panic!("no cursor in {parts:?}")
        };
        cursor = String::from_utf8_lossy(next).into_owned();
        pages += 1;
        if cursor == "0" {
            break;
        }
    }
    assert_eq!(pages, 7, "45 keys, 7 slots a page");
    assert_eq!(replica.db, m.db, "same keys at the same slots");
}

/// The deadline index orders keys of one deadline by the fixed hash in
/// their place (pinned here: a change would reorder the leader's expiry
/// and eviction candidates between versions), finds each one again, and a
/// range from `Due::first_at` starts at a deadline's first key.
#[test]
fn keys_of_one_deadline_are_ordered_by_their_fixed_hash() {
    use super::Due;
    assert_eq!(super::due_tag(b""), 0);
    assert_eq!(super::due_tag(b"key:1"), 0x91ef_6562_69eb_8c1a);
    assert_eq!(
        super::due_tag(b"bench:rl:000000012345"),
        0xb5ad_28ba_b914_a710
    );
    let mut db = Db::new();
    let value = || Value::Str(Bytes::from("v").into());
    let keys: Vec<Bytes> = (0..200).map(|i| Bytes::from(format!("k{i}"))).collect();
    for key in &keys {
        db.put(0, key, value(), Some(1_000));
    }
    db.put(0, b"sooner", value(), Some(999));
    db.put(0, b"later", value(), Some(1_001));
    let order: Vec<Due> = db.dbs[0].expiring.iter().cloned().collect();
    assert_eq!(order.first().map(|d| &d.key[..]), Some(&b"sooner"[..]));
    assert_eq!(order.last().map(|d| &d.key[..]), Some(&b"later"[..]));
    let same: Vec<&Due> = order.iter().filter(|d| d.at == 1_000).collect();
    assert_eq!(same.len(), 200);
    assert!(same
        .windows(2)
        .all(|w| super::due_tag(&w[0].key) <= super::due_tag(&w[1].key)));
    let first = db.dbs[0]
        .expiring
        .range(Due::first_at(1_000)..)
        .next()
        .cloned();
    assert_eq!(first.as_ref(), same.first().copied());
    for key in &keys {
        db.remove(0, key);
    }
    assert_eq!(db.dbs[0].expiring.len(), 2);
}
