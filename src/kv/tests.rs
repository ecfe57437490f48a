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
        m.db.entry(0, b"k").and_then(|e| e.expires_at_ms),
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
