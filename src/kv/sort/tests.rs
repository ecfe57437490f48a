//! SORT and SORT_RO against replies printed by redis-server 7.0.15 (each
//! table was produced by sending the same lines, in order, to a fresh
//! server). `\s` in a line is a space, `\0` a NUL byte and `\e` an empty
//! argument. Numeric-sort lines that must not fail come before the first
//! range error: Redis's SORT reads `errno` without clearing it, so after one
//! range error it keeps failing on non-integer strings until something
//! else clears it (a Redis bug dkv does not copy).

use bytes::Bytes;

use crate::cmd::{lookup, Kind};
use crate::kv::{Command, Db, Op, Output, Value};

fn args(line: &str) -> Vec<Bytes> {
    line.split_whitespace()
        .map(|t| {
            let t = if t == "\\e" { "" } else { t };
            let t = t.replace("\\s", " ").replace("\\0", "\0");
            Bytes::from(t.into_bytes())
        })
        .collect()
}

/// A reply as the table shows it (redis-cli-like, one line).
fn render(output: &Output) -> String {
    fn bulk(b: &[u8]) -> String {
        let text: String = b.iter().map(|&c| c as char).collect();
        format!(
            "\"{}\"",
            text.replace('\\', "\\\\")
                .replace('\0', "\\0")
                .replace('"', "\\\"")
        )
    }
    match output {
        Output::Ok => "OK".into(),
        Output::Status(s) => s.clone(),
        Output::Integer(i) => format!(":{i}"),
        Output::Bulk(Some(b)) => bulk(b),
        Output::Bulk(None) => "(nil)".into(),
        Output::Array(items) | Output::Set(items) => {
            let parts: Vec<String> = items.iter().map(render).collect();
            format!("[{}]", parts.join(","))
        }
        Output::Error(e) => format!("-{e}"),
        Output::Double(d) => bulk(d.as_bytes()),
        other => format!("{other:?}"),
    }
}

/// A map driven like a replica: each write is one log entry, each read a
/// query; the row's check answers first, as the server does.
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

    fn run(&mut self, line: &str) -> Output {
        let a = args(line);
        let (_, spec) = lookup(&a[0]).expect("a known command");
        self.now += 1;
        match spec.kind {
            Kind::Read { check, .. } => match check(&a) {
                Ok(()) => self.db.query(0, &a, self.now, 7),
                Err(error) => error,
            },
            Kind::Write { check, .. } => match check(&a) {
                Ok(()) => self.db.apply(&Command {
                    ts_ms: self.now,
                    op: Op::Exec { db: 0, args: a },
                }),
                Err(error) => error,
            },
            Kind::Server(_) => panic!("{line}: not a key-space command"),
        }
    }

    fn play(&mut self, table: &[(&str, &str)]) {
        for (line, expected) in table {
            assert_eq!(render(&self.run(line)), *expected, "{line}");
        }
    }
}

#[test]
fn sort_matches_redis() {
    Machine::new().play(&[
        ("RPUSH l 3 1 2 10 -5 1.5", ":6"),
        ("SORT l", "[\"-5\",\"1\",\"1.5\",\"2\",\"3\",\"10\"]"),
        ("SORT l DESC", "[\"10\",\"3\",\"2\",\"1.5\",\"1\",\"-5\"]"),
        ("SORT l LIMIT 1 2", "[\"1\",\"1.5\"]"),
        ("SORT l LIMIT -1 2", "[\"-5\",\"1\"]"),
        ("SORT l LIMIT 2 -1", "[\"1.5\",\"2\",\"3\",\"10\"]"),
        ("SORT l LIMIT 10 2", "[]"),
        ("SORT l LIMIT 0 0", "[]"),
        ("SORT l LIMIT 5 1", "[\"10\"]"),
        ("SORT l LIMIT 6 1", "[]"),
        ("SORT l ALPHA", "[\"-5\",\"1\",\"1.5\",\"10\",\"2\",\"3\"]"),
        ("SORT l ALPHA DESC LIMIT 1 3", "[\"2\",\"10\",\"1.5\"]"),
        ("MSET w_3 30 w_1 10 w_2 -20 w_10 5", "OK"),
        ("SORT l BY w_*", "[\"2\",\"-5\",\"1.5\",\"10\",\"1\",\"3\"]"),
        ("SORT l BY w_* DESC", "[\"3\",\"1\",\"10\",\"1.5\",\"-5\",\"2\"]"),
        ("SORT l BY w_* GET # GET w_*", "[\"2\",\"-20\",\"-5\",(nil),\"1.5\",(nil),\"10\",\"5\",\"1\",\"10\",\"3\",\"30\"]"),
        ("SORT l BY w_* LIMIT 1 2", "[\"-5\",\"1.5\"]"),
        ("SORT l BY nosort", "[\"3\",\"1\",\"2\",\"10\",\"-5\",\"1.5\"]"),
        ("SORT l BY nosort DESC", "[\"1.5\",\"-5\",\"10\",\"2\",\"1\",\"3\"]"),
        ("SORT l BY nosort LIMIT 1 2", "[\"1\",\"2\"]"),
        ("SORT l BY nosort DESC LIMIT 1 2", "[\"-5\",\"10\"]"),
        ("SORT l BY nosort LIMIT 5 10", "[\"1.5\"]"),
        ("SORT l BY nosort LIMIT 6 10", "[]"),
        ("SORT l BY nosort BY w_*", "[\"3\",\"1\",\"2\",\"10\",\"-5\",\"1.5\"]"),
        ("SORT l BY w_* BY nosort DESC", "[\"1.5\",\"-5\",\"10\",\"2\",\"1\",\"3\"]"),
        ("SORT l BY nosort GET w_* GET #", "[\"30\",\"3\",\"10\",\"1\",\"-20\",\"2\",\"5\",\"10\",(nil),\"-5\",(nil),\"1.5\"]"),
        ("HSET o_1 f a g 1", ":2"),
        ("HSET o_2 f b g 2", ":2"),
        ("HSET o_3 f c", ":1"),
        ("SORT l BY o_*->g GET o_*->f GET # GET o_*->", "[(nil),\"-5\",(nil),(nil),\"1.5\",(nil),(nil),\"10\",(nil),\"c\",\"3\",(nil),\"a\",\"1\",(nil),\"b\",\"2\",(nil)]"),
        ("SORT l BY o_*->f ALPHA GET o_*->f", "[(nil),(nil),(nil),\"a\",\"b\",\"c\"]"),
        ("SORT l BY o_*->f GET o_*->f", "-ERR One or more scores can't be converted into double"),
        ("SORT l BY w_*->f", "[\"-5\",\"1\",\"1.5\",\"10\",\"2\",\"3\"]"),
        ("SORT l STORE dst", ":6"),
        ("LRANGE dst 0 -1", "[\"-5\",\"1\",\"1.5\",\"2\",\"3\",\"10\"]"),
        ("TYPE dst", "list"),
        ("SORT l LIMIT 0 0 STORE dst", ":0"),
        ("EXISTS dst", ":0"),
        ("SORT l GET nokey GET o_*->g STORE dst", ":12"),
        ("LRANGE dst 0 -1", "[\"\",\"\",\"\",\"1\",\"\",\"\",\"\",\"2\",\"\",\"\",\"\",\"\"]"),
        ("SORT l GET nokey GET o_*->g", "[(nil),(nil),(nil),\"1\",(nil),(nil),(nil),\"2\",(nil),(nil),(nil),(nil)]"),
        ("RPUSH bad 1 x", ":2"),
        ("SORT bad", "-ERR One or more scores can't be converted into double"),
        ("SORT bad ALPHA", "[\"1\",\"x\"]"),
        ("SORT bad STORE dst2", "-ERR One or more scores can't be converted into double"),
        ("EXISTS dst2", ":0"),
        ("SORT bad BY nosort", "[\"1\",\"x\"]"),
        ("SORT bad BY w_*", "[\"x\",\"1\"]"),
        ("SET str v", "OK"),
        ("SORT str", "-WRONGTYPE Operation against a key holding the wrong kind of value"),
        ("SORT str FOO", "-ERR syntax error"),
        ("SORT_RO str", "-WRONGTYPE Operation against a key holding the wrong kind of value"),
        ("SORT nosuch", "[]"),
        ("SORT nosuch STORE dst", ":0"),
        ("SORT nosuch LIMIT 0 5 GET #", "[]"),
        ("SADD s 5 3 9 1 10", ":5"),
        ("SORT s", "[\"1\",\"3\",\"5\",\"9\",\"10\"]"),
        ("SORT s BY nosort", "[\"1\",\"3\",\"5\",\"9\",\"10\"]"),
        ("SORT s BY nosort DESC", "[\"1\",\"3\",\"5\",\"9\",\"10\"]"),
        ("SORT s BY nosort STORE sd", ":5"),
        ("LRANGE sd 0 -1", "[\"1\",\"10\",\"3\",\"5\",\"9\"]"),
        ("SORT s BY nosort DESC STORE sd", ":5"),
        ("LRANGE sd 0 -1", "[\"9\",\"5\",\"3\",\"10\",\"1\"]"),
        ("SORT s DESC LIMIT 1 2", "[\"9\",\"5\"]"),
        ("ZADD z 3 a 1 b 2 c 0 d", ":4"),
        ("SORT z ALPHA", "[\"a\",\"b\",\"c\",\"d\"]"),
        ("SORT z BY nosort", "[\"d\",\"b\",\"c\",\"a\"]"),
        ("SORT z BY nosort DESC", "[\"a\",\"c\",\"b\",\"d\"]"),
        ("SORT z BY nosort DESC LIMIT 1 2", "[\"c\",\"b\"]"),
        ("SORT z BY nosort LIMIT 1 2", "[\"b\",\"c\"]"),
        ("SORT z BY nosort LIMIT 3 9", "[\"a\"]"),
        ("SORT z BY nosort LIMIT 4 9", "[]"),
        ("SORT z", "-ERR One or more scores can't be converted into double"),
        ("SORT_RO z BY nosort DESC LIMIT 0 3 GET #", "[\"a\",\"c\",\"b\"]"),
        ("SORT l FOO", "-ERR syntax error"),
        ("SORT l LIMIT 1", "-ERR syntax error"),
        ("SORT l LIMIT x 1", "-ERR value is not an integer or out of range"),
        ("SORT l LIMIT 1 1.5", "-ERR value is not an integer or out of range"),
        ("SORT l FOO LIMIT x 1", "-ERR syntax error"),
        ("SORT l LIMIT x 1 FOO", "-ERR value is not an integer or out of range"),
        ("SORT l STORE", "-ERR syntax error"),
        ("SORT_RO l STORE d", "-ERR syntax error"),
        ("SORT l BY", "-ERR syntax error"),
        ("SORT l GET", "-ERR syntax error"),
        ("SORT l asc desc Asc alpha", "[\"-5\",\"1\",\"1.5\",\"10\",\"2\",\"3\"]"),
        ("SORT_RO l DESC", "[\"10\",\"3\",\"2\",\"1.5\",\"1\",\"-5\"]"),
        ("SORT_RO l BY w_* GET w_* GET #", "[\"-20\",\"2\",(nil),\"-5\",(nil),\"1.5\",\"5\",\"10\",\"10\",\"1\",\"30\",\"3\"]"),
        ("RPUSH ties b a c", ":3"),
        ("MSET t_a 1 t_b 1", "OK"),
        ("SORT ties BY t_* ALPHA", "[\"c\",\"b\",\"a\"]"),
        ("SORT ties BY t_* ALPHA DESC", "[\"b\",\"a\",\"c\"]"),
        ("SORT ties BY t_*", "[\"c\",\"a\",\"b\"]"),
        ("SORT ties BY t_* DESC", "[\"b\",\"a\",\"c\"]"),
        ("RPUSH f \\e 0x10 inf -inf \\s2 -0 0 1e308", ":8"),
        ("SORT f", "[\"-inf\",\"\",\"-0\",\"0\",\" 2\",\"0x10\",\"1e308\",\"inf\"]"),
        ("SORT f DESC", "[\"inf\",\"1e308\",\"0x10\",\" 2\",\"0\",\"-0\",\"\",\"-inf\"]"),
        ("RPUSH g7 0x1p-1074 0x0p5", ":2"),
        ("SORT g7", "[\"0x0p5\",\"0x1p-1074\"]"),
        ("RPUSH g8 1\\0x", ":1"),
        ("SORT g8", "[\"1\\0x\"]"),
        ("RPUSH g 1e-310", ":1"),
        ("SORT g", "-ERR One or more scores can't be converted into double"),
        ("RPUSH g2 1e400", ":1"),
        ("SORT g2", "-ERR One or more scores can't be converted into double"),
        ("RPUSH g3 nan", ":1"),
        ("SORT g3", "-ERR One or more scores can't be converted into double"),
        ("RPUSH g4 1\\s", ":1"),
        ("SORT g4", "-ERR One or more scores can't be converted into double"),
        ("RPUSH g5 \\s", ":1"),
        ("SORT g5", "-ERR One or more scores can't be converted into double"),
        ("MSET p*x 7 pax 8", "OK"),
        ("RPUSH pl a", ":1"),
        ("SORT pl ALPHA GET p*x GET pa* GET p*x->", "[\"8\",(nil),(nil)]"),
        ("SORT pl ALPHA GET *", "[(nil)]"),
        ("SORT pl BY #", "[\"a\"]"),
        ("SORT pl ALPHA GET #", "[\"a\"]"),
        ("SORT pl ALPHA GET #x GET #\\0x", "[(nil),\"a\"]"),
        ("HSET ph:a f1 v1 ->x y", ":2"),
        ("SORT pl ALPHA GET ph:*->f1 GET ph:*->->x GET ph:*->f1\\0", "[\"v1\",\"y\",(nil)]"),
        ("RPUSH g6 1e-400", ":1"),
        ("SORT g6", "-ERR One or more scores can't be converted into double"),
    ]);
}

#[test]
fn rows_match_redis_command_info() {
    // COMMAND INFO sort sort_ro on redis-server 7.0.15.
    for (name, arity, flags, categories, first_last_step) in [
        (
            "sort",
            -2,
            &["write", "denyoom", "movablekeys"][..],
            &[
                "@write",
                "@set",
                "@sortedset",
                "@list",
                "@slow",
                "@dangerous",
            ][..],
            (1, 1, 1),
        ),
        (
            "sort_ro",
            -2,
            &["readonly", "movablekeys"],
            &[
                "@read",
                "@set",
                "@sortedset",
                "@list",
                "@slow",
                "@dangerous",
            ],
            (1, 1, 1),
        ),
    ] {
        let spec = lookup(name.as_bytes()).expect("defined").1;
        assert_eq!(spec.arity, arity, "{name}");
        assert_eq!(
            spec.flags.redis_names().collect::<Vec<_>>(),
            flags,
            "{name}"
        );
        assert_eq!(spec.acl_categories.names().collect::<Vec<_>>(), categories);
        assert_eq!(
            (spec.first_key, spec.last_key, spec.key_step),
            first_last_step
        );
        assert_eq!(spec.group, "@keyspace");
    }
}

#[test]
fn getkeys_follows_redis() {
    // COMMAND GETKEYS on redis-server 7.0.15: the sorted key and the last
    // STORE destination; LIMIT, GET and BY skip their arguments.
    let keys = |line: &str| {
        let a = args(line);
        let spec = lookup(&a[0]).expect("defined").1;
        let positions = spec.key_positions(&a).expect("SORT always has keys");
        positions
            .into_iter()
            .map(|at| String::from_utf8_lossy(&a[at]).into_owned())
            .collect::<Vec<_>>()
    };
    assert_eq!(keys("SORT a BY x GET y STORE d"), ["a", "d"]);
    assert_eq!(keys("SORT a STORE d STORE e"), ["a", "e"]);
    assert_eq!(keys("SORT a GET store STORE"), ["a"]);
    assert_eq!(keys("SORT a LIMIT store x STORE d"), ["a", "d"]);
    assert_eq!(keys("SORT a STORE"), ["a"]);
    assert_eq!(keys("SORT_RO a BY x STORE d"), ["a"]);
}

#[test]
fn sort_converts_a_listpack_zset_without_touching_it() {
    // Redis 7.0.15: after SORT, OBJECT ENCODING of a small sorted set is
    // `skiplist`, and a WATCH on it still holds (the conversion is not a
    // change); a later ZADD of -0 keeps the sign (a listpack stores 0).
    let mut m = Machine::new();
    m.play(&[("ZADD z 1 a 2 b", ":2")]);
    let encoding = |m: &Machine| match m.db.entry(0, b"z").map(|e| &e.value) {
        Some(Value::ZSet(z)) => z.encoding(),
        _ => "none",
    };
    let token = m.db.watch_token(0, Bytes::from_static(b"z"), m.now);
    m.play(&[("SORT_RO z BY nosort", "[\"a\",\"b\"]")]);
    assert_eq!(encoding(&m), "listpack", "SORT_RO is a read");
    let used = m.db.used_memory();
    m.play(&[("SORT z BY nosort", "[\"a\",\"b\"]")]);
    assert_eq!(encoding(&m), "skiplist");
    assert_ne!(m.db.used_memory(), used, "memory recounted");
    let exec = m.db.apply(&Command {
        ts_ms: m.now + 1,
        op: Op::Multi {
            commands: vec![(0, args("ZCARD z"))],
            watched: vec![token],
        },
    });
    assert_eq!(render(&exec), "[:2]", "WATCH still holds");
    m.play(&[("ZADD z -0 a", ":0"), ("ZSCORE z a", "\"-0\"")]);
}

#[test]
fn store_replaces_any_value_and_its_ttl() {
    // Redis 7.0.15: STORE overwrites a key of another type and drops its TTL.
    let mut m = Machine::new();
    m.play(&[
        ("RPUSH l b a", ":2"),
        ("HSET dst f v", ":1"),
        ("PEXPIRE dst 100000", ":1"),
        ("SORT l ALPHA STORE dst", ":2"),
        ("PTTL dst", ":-1"),
        ("LRANGE dst 0 -1", "[\"a\",\"b\"]"),
        ("SORT l ALPHA LIMIT 5 5 STORE dst", ":0"),
        ("EXISTS dst", ":0"),
    ]);
}
