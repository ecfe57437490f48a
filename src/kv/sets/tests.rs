//! The set commands against hand-computed results; every expected reply
//! and error text was checked against redis-server 7.0.15.

use std::collections::BTreeSet;

use bytes::Bytes;

use crate::cmd::{lookup, Kind};
use crate::kv::{Command, Db, Op, Output, Value};

fn args(line: &str) -> Vec<Bytes> {
    line.split_whitespace()
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect()
}

/// A map driven like a replica: each write is one log entry.
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

    fn exec(&mut self, line: &str) -> Output {
        self.now += 1;
        self.db.apply(&Command {
            ts_ms: self.now,
            op: Op::Exec {
                db: 0,
                args: args(line),
            },
        })
    }

    fn query(&self, line: &str) -> Output {
        self.db.query(0, &args(line), self.now, 7)
    }

    /// What the server answers before proposing (the row's check).
    fn check(line: &str) -> Result<(), Output> {
        let a = args(line);
        let (_, spec) = lookup(&a[0]).expect("a known command");
        assert!(spec.arity_ok(a.len()), "{line}: arity");
        match spec.kind {
            Kind::Read { check, .. } | Kind::Write { check, .. } => check(&a),
            Kind::Server(_) => panic!("{line}: not a key-space command"),
        }
    }

    fn encoding(&self, key: &str) -> Option<&'static str> {
        match self.db.entry(0, key.as_bytes()).map(|e| &e.value) {
            Some(Value::Set(s)) => Some(s.encoding()),
            _ => None,
        }
    }

    fn members(&self, key: &str) -> BTreeSet<String> {
        members(&self.query(&format!("SMEMBERS {key}")))
    }
}

fn int(n: i64) -> Output {
    Output::Integer(n)
}

fn err(s: &str) -> Output {
    Output::err(s)
}

fn strs(items: &[&str]) -> BTreeSet<String> {
    items.iter().map(|s| s.to_string()).collect()
}

fn texts(items: &[Output]) -> Vec<String> {
    items
        .iter()
        .map(|o| match o {
            Output::Bulk(Some(b)) => String::from_utf8_lossy(b).into_owned(),
            other => panic!("not a bulk string: {other:?}"),
        })
        .collect()
}

/// The members of a set or array reply.
fn members(out: &Output) -> BTreeSet<String> {
    match out {
        Output::Set(items) | Output::Array(items) => texts(items).into_iter().collect(),
        other => panic!("not a set reply: {other:?}"),
    }
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

#[test]
fn sadd_counts_new_members_and_srem_deletes_an_emptied_set() {
    let mut m = Machine::new();
    assert_eq!(m.exec("SADD s a b a c"), int(3));
    assert_eq!(m.exec("SADD s a d"), int(1));
    assert_eq!(m.query("SCARD s"), int(4));
    assert_eq!(m.members("s"), strs(&["a", "b", "c", "d"]));
    assert_eq!(m.exec("SREM s a x a"), int(1));
    assert_eq!(m.exec("SREM nokey a"), int(0));
    assert_eq!(m.exec("SREM s b c d"), int(3));
    assert!(m.db.entry(0, b"s").is_none(), "emptied set deleted");
    assert_eq!(m.query("SCARD s"), int(0));
    assert_eq!(m.query("SMEMBERS s"), Output::Set(vec![]));
}

#[test]
fn every_command_refuses_a_key_of_another_type() {
    let mut m = Machine::new();
    m.exec("SET str v");
    m.exec("SADD s a");
    for line in [
        "SADD str a",
        "SREM str a",
        "SPOP str",
        "SPOP str 0",
        "SMOVE str s a",
        "SMOVE s str a",
        "SINTERSTORE d s str",
        "SUNIONSTORE d s str",
        "SDIFFSTORE d s str",
        "SINTERSTORE d nokey str",
    ] {
        assert_eq!(m.exec(line), err(WRONGTYPE), "{line}");
    }
    for line in [
        "SMEMBERS str",
        "SISMEMBER str a",
        "SMISMEMBER str a",
        "SCARD str",
        "SRANDMEMBER str",
        "SRANDMEMBER str 0",
        "SINTER s str",
        "SINTER nokey str",
        "SUNION s str",
        "SDIFF s str",
        "SDIFF nokey str",
        "SINTERCARD 2 nokey str",
        "SSCAN str 0",
        "SSCAN str 0 COUNT 0",
    ] {
        assert_eq!(m.query(line), err(WRONGTYPE), "{line}");
    }
    assert_eq!(m.query("GET s"), err(WRONGTYPE));
    assert_eq!(m.query("TYPE s"), Output::Status("set".into()));
    // SMOVE from a missing source answers 0 before any type check.
    assert_eq!(m.exec("SMOVE nokey str a"), int(0));
}

#[test]
fn encodings_follow_redis_thresholds() {
    let mut m = Machine::new();
    m.exec("SADD s 1 2 3");
    assert_eq!(m.encoding("s"), Some("intset"));
    m.exec("SADD s x");
    assert_eq!(m.encoding("s"), Some("hashtable"));
    m.exec("SREM s x");
    assert_eq!(m.encoding("s"), Some("hashtable"), "never converts back");
    let many: Vec<String> = (0..512).map(|i| i.to_string()).collect();
    m.exec(&format!("SADD big {}", many.join(" ")));
    assert_eq!(m.encoding("big"), Some("intset"));
    m.exec("SADD big 512");
    assert_eq!(m.encoding("big"), Some("hashtable"));
}

#[test]
fn sismember_and_smismember() {
    let mut m = Machine::new();
    m.exec("SADD s a 1");
    assert_eq!(m.query("SISMEMBER s a"), int(1));
    assert_eq!(m.query("SISMEMBER s b"), int(0));
    assert_eq!(m.query("SISMEMBER nokey a"), int(0));
    assert_eq!(
        m.query("SMISMEMBER s a b 1"),
        Output::Array(vec![int(1), int(0), int(1)])
    );
    assert_eq!(
        m.query("SMISMEMBER nokey a b"),
        Output::Array(vec![int(0), int(0)])
    );
}

#[test]
fn spop_checks_its_count_before_the_key() {
    let mut m = Machine::new();
    for line in ["SPOP s -1", "SPOP s x", "SPOP s 1.5"] {
        assert_eq!(
            Machine::check(line),
            Err(err("ERR value is out of range, must be positive")),
            "{line}"
        );
    }
    assert_eq!(Machine::check("SPOP s 1 2"), Err(err("ERR syntax error")));
    assert_eq!(Machine::check("SPOP s 5"), Ok(()));
    assert_eq!(m.exec("SPOP nokey"), Output::NIL);
    assert_eq!(m.exec("SPOP nokey 3"), Output::Set(vec![]));
    m.exec("SADD s a b c");
    assert_eq!(m.exec("SPOP s 0"), Output::Set(vec![]));
    let Output::Bulk(Some(one)) = m.exec("SPOP s") else {
        panic!("a member")
    };
    assert_eq!(m.query("SCARD s"), int(2));
    assert_eq!(
        m.query(&format!("SISMEMBER s {}", String::from_utf8_lossy(&one))),
        int(0)
    );
    let rest = members(&m.exec("SPOP s 10"));
    assert_eq!(rest.len(), 2);
    assert!(m.db.entry(0, b"s").is_none(), "emptied by SPOP: deleted");
}

#[test]
fn spop_is_the_same_on_every_replica() {
    let mut a = Machine::new();
    let mut b = Machine::new();
    for m in [&mut a, &mut b] {
        let members: Vec<String> = (0..100).map(|i| format!("m{i}")).collect();
        m.exec(&format!("SADD s {}", members.join(" ")));
    }
    for _ in 0..10 {
        assert_eq!(a.exec("SPOP s 3"), b.exec("SPOP s 3"));
        assert_eq!(a.exec("SPOP s"), b.exec("SPOP s"));
    }
    assert_eq!(a.db, b.db);
    assert_eq!(a.db.state_digest(), b.db.state_digest());
    // Not always the same member: the seed moves with the log.
    let popped: BTreeSet<String> = (0..10).map(|_| format!("{:?}", a.exec("SPOP s"))).collect();
    assert!(popped.len() > 1);
}

#[test]
fn spop_with_a_count_near_the_size_rebuilds_the_set_as_redis() {
    let mut m = Machine::new();
    let members: Vec<String> = (1..=1000).map(|i| i.to_string()).collect();
    m.exec(&format!("SADD s {}", members.join(" ")));
    assert_eq!(m.encoding("s"), Some("hashtable"));
    assert_eq!(members_len(&m.exec("SPOP s 995")), 995);
    assert_eq!(m.encoding("s"), Some("intset"));
    assert_eq!(m.query("SCARD s"), int(5));
}

fn members_len(out: &Output) -> usize {
    match out {
        Output::Set(items) | Output::Array(items) => items.len(),
        other => panic!("not an aggregate: {other:?}"),
    }
}

#[test]
fn srandmember_counts() {
    let mut m = Machine::new();
    assert_eq!(
        Machine::check("SRANDMEMBER s x"),
        Err(err("ERR value is not an integer or out of range"))
    );
    assert_eq!(
        Machine::check("SRANDMEMBER s -9223372036854775808"),
        Err(err(
            "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"
        ))
    );
    assert_eq!(
        Machine::check("SRANDMEMBER s 1 2"),
        Err(err("ERR syntax error"))
    );
    assert_eq!(m.query("SRANDMEMBER nokey"), Output::NIL);
    assert_eq!(m.query("SRANDMEMBER nokey 5"), Output::Array(vec![]));
    assert_eq!(m.query("SRANDMEMBER nokey -5"), Output::Array(vec![]));
    m.exec("SADD s a b c");
    assert_eq!(m.query("SRANDMEMBER s 0"), Output::Array(vec![]));
    let one = m.query("SRANDMEMBER s");
    assert!(matches!(one, Output::Bulk(Some(_))));
    let two = m.query("SRANDMEMBER s 2");
    assert!(matches!(two, Output::Array(_)), "an array, not a set");
    assert_eq!(members(&two).len(), 2);
    assert_eq!(
        members(&m.query("SRANDMEMBER s 10")),
        strs(&["a", "b", "c"])
    );
    assert_eq!(members_len(&m.query("SRANDMEMBER s -10")), 10);
    assert!(members(&m.query("SRANDMEMBER s -10")).is_subset(&strs(&["a", "b", "c"])));
    assert_eq!(members_len(&m.query("SRANDMEMBER s -1000000")), 1_000_000);
    assert!(matches!(
        m.query("SRANDMEMBER s -1000001"),
        Output::Error(_)
    ));
    assert_eq!(m.query("SCARD s"), int(3), "a read changes nothing");
}

#[test]
fn smove_moves_and_creates_and_deletes() {
    let mut m = Machine::new();
    m.exec("SADD a 1 2");
    assert_eq!(m.exec("SMOVE a b 1"), int(1));
    assert_eq!(m.members("a"), strs(&["2"]));
    assert_eq!(m.members("b"), strs(&["1"]));
    assert_eq!(m.encoding("b"), Some("intset"));
    assert_eq!(m.exec("SMOVE a b 9"), int(0));
    assert_eq!(m.exec("SMOVE a a 2"), int(1), "same key: membership");
    assert_eq!(m.exec("SMOVE a a 9"), int(0));
    m.exec("SADD b 2");
    assert_eq!(m.exec("SMOVE a b 2"), int(1), "already in the destination");
    assert!(m.db.entry(0, b"a").is_none());
    assert_eq!(m.members("b"), strs(&["1", "2"]));
    assert_eq!(m.exec("SMOVE b c x"), int(0));
    m.exec("SADD b x");
    assert_eq!(m.exec("SMOVE b c x"), int(1));
    assert_eq!(m.encoding("c"), Some("hashtable"));
}

#[test]
fn set_algebra_reads() {
    let mut m = Machine::new();
    m.exec("SADD a 1 2 3 x");
    m.exec("SADD b 2 3 4");
    m.exec("SADD c 3 x y");
    assert_eq!(m.members_of("SINTER a b"), strs(&["2", "3"]));
    assert_eq!(m.members_of("SINTER a b c"), strs(&["3"]));
    assert_eq!(m.members_of("SINTER a a"), strs(&["1", "2", "3", "x"]));
    assert_eq!(m.query("SINTER a nokey"), Output::Set(vec![]));
    assert_eq!(
        m.members_of("SUNION a b nokey"),
        strs(&["1", "2", "3", "4", "x"])
    );
    assert_eq!(m.members_of("SDIFF a b"), strs(&["1", "x"]));
    assert_eq!(m.members_of("SDIFF a b c"), strs(&["1"]));
    assert_eq!(m.members_of("SDIFF a nokey"), strs(&["1", "2", "3", "x"]));
    assert_eq!(m.query("SDIFF nokey a"), Output::Set(vec![]));
    assert_eq!(m.query("SDIFF a b a"), Output::Set(vec![]));
    assert_eq!(m.query("SINTERCARD 2 a b"), int(2));
    assert_eq!(m.query("SINTERCARD 2 a b LIMIT 1"), int(1));
    assert_eq!(m.query("SINTERCARD 2 a b LIMIT 0"), int(2));
    assert_eq!(m.query("SINTERCARD 1 a limit 2 LIMIT 3"), int(3));
    assert_eq!(m.query("SINTERCARD 2 a nokey"), int(0));
}

impl Machine {
    fn members_of(&self, line: &str) -> BTreeSet<String> {
        let out = self.query(line);
        assert!(matches!(out, Output::Set(_)), "{line}: a set reply");
        members(&out)
    }
}

#[test]
fn sintercard_checks_its_arguments_before_the_keys() {
    for (line, text) in [
        ("SINTERCARD 0 a", "ERR numkeys should be greater than 0"),
        ("SINTERCARD -1 a", "ERR numkeys should be greater than 0"),
        ("SINTERCARD x a", "ERR numkeys should be greater than 0"),
        (
            "SINTERCARD 2 a",
            "ERR Number of keys can't be greater than number of args",
        ),
        ("SINTERCARD 1 a LIMIT -1", "ERR LIMIT can't be negative"),
        ("SINTERCARD 1 a LIMIT x", "ERR LIMIT can't be negative"),
        ("SINTERCARD 1 a LIMIT", "ERR syntax error"),
        ("SINTERCARD 1 a FOO 1", "ERR syntax error"),
    ] {
        assert_eq!(Machine::check(line), Err(err(text)), "{line}");
    }
    let spec = lookup(b"sintercard").expect("defined").1;
    assert_eq!(
        spec.key_positions(&args("SINTERCARD 2 a b LIMIT 1")),
        Some(vec![2, 3])
    );
}

#[test]
fn store_commands_replace_or_delete_the_destination() {
    let mut m = Machine::new();
    m.exec("SADD a 1 2 3");
    m.exec("SADD b 2 3 4");
    m.exec("SET d old EX 100");
    assert_eq!(m.exec("SINTERSTORE d a b"), int(2));
    assert_eq!(m.members("d"), strs(&["2", "3"]));
    assert_eq!(m.query("TTL d"), int(-1), "the TTL goes with the old value");
    assert_eq!(m.exec("SUNIONSTORE d a b"), int(4));
    assert_eq!(m.members("d"), strs(&["1", "2", "3", "4"]));
    assert_eq!(m.exec("SDIFFSTORE d a b"), int(1));
    assert_eq!(m.members("d"), strs(&["1"]));
    assert_eq!(m.exec("SINTERSTORE d a nokey"), int(0));
    assert!(m.db.entry(0, b"d").is_none(), "an empty result deletes");
    m.exec("SET d x");
    assert_eq!(m.exec("SDIFFSTORE d a a"), int(0));
    assert!(m.db.entry(0, b"d").is_none());
    // The destination may be a source.
    assert_eq!(m.exec("SUNIONSTORE a a b"), int(4));
    assert_eq!(m.members("a"), strs(&["1", "2", "3", "4"]));
}

#[test]
fn stored_results_are_encoded_as_redis_builds_them() {
    let mut m = Machine::new();
    // A hashtable of integers only: the union of integers is an intset.
    m.exec("SADD h 1 2 x");
    m.exec("SREM h x");
    m.exec("SADD i 3");
    m.exec("SUNIONSTORE u h i");
    assert_eq!(m.encoding("u"), Some("intset"));
    m.exec("SINTERSTORE n h h");
    assert_eq!(m.encoding("n"), Some("intset"));
    // SDIFFSTORE, first algorithm (the first set is small): only the result.
    let big: Vec<String> = (0..600).map(|i| i.to_string()).collect();
    m.exec(&format!("SADD big {}", big.join(" ")));
    m.exec("SADD small 1 2 3 x");
    m.exec("SDIFFSTORE d small big");
    assert_eq!(m.members("d"), strs(&["x"]));
    assert_eq!(m.encoding("d"), Some("hashtable"));
    m.exec("SADD small2 1 2 3");
    m.exec("SDIFFSTORE d2 small2 i");
    assert_eq!(m.encoding("d2"), Some("intset"));
    // Second algorithm (the first set is large against the others): the
    // whole first set is added, then the others' members removed, so 400
    // integers are left in a hashtable; with one other set the first
    // algorithm runs and 500 integers are an intset (Redis 7.0.15 agrees).
    let t1: Vec<String> = (0..100).map(|i| i.to_string()).collect();
    let t2: Vec<String> = (100..200).map(|i| i.to_string()).collect();
    m.exec(&format!("SADD t1 {}", t1.join(" ")));
    m.exec(&format!("SADD t2 {}", t2.join(" ")));
    assert_eq!(m.exec("SDIFFSTORE d3 big t1 t2"), int(400));
    assert_eq!(m.exec("SDIFFSTORE d4 big t1"), int(500));
    assert_eq!(m.encoding("d4"), Some("intset"));
    assert_eq!(m.encoding("d3"), Some("hashtable"));
}

#[test]
fn sscan_checks_the_cursor_first_and_the_options_after_the_key() {
    let mut m = Machine::new();
    assert_eq!(Machine::check("SSCAN s x"), Err(err("ERR invalid cursor")));
    let empty = Output::Array(vec![Output::bulk("0"), Output::Array(vec![])]);
    assert_eq!(m.query("SSCAN nokey 0 COUNT 0"), empty);
    assert_eq!(m.query("SSCAN nokey 0 FOO"), empty);
    m.exec("SADD s 1 2 10");
    assert_eq!(m.query("SSCAN s 0 COUNT 0"), err("ERR syntax error"));
    assert_eq!(
        m.query("SSCAN s 0 COUNT x"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(m.query("SSCAN s 0 TYPE set"), err("ERR syntax error"));
    // An intset comes back whole, filtered by MATCH.
    let Output::Array(reply) = m.query("SSCAN s 0 MATCH 1* COUNT 1") else {
        panic!("an array")
    };
    assert_eq!(reply[0], Output::bulk("0"));
    assert_eq!(members(&reply[1]), strs(&["1", "10"]));
}

#[test]
fn sscan_walks_a_hashtable_with_a_cursor_while_it_changes() {
    let mut m = Machine::new();
    let names: Vec<String> = (0..200).map(|i| format!("m{i}")).collect();
    m.exec(&format!("SADD s {}", names.join(" ")));
    let mut cursor = "0".to_string();
    let mut seen = BTreeSet::new();
    for round in 0..1000 {
        let Output::Array(reply) = m.query(&format!("SSCAN s {cursor} COUNT 7 MATCH m*")) else {
            panic!("an array")
        };
        assert!(members_len(&reply[1]) <= 7);
        seen.extend(members(&reply[1]));
        cursor = texts(&reply[..1])[0].clone();
        if cursor == "0" {
            break;
        }
        // Changes between calls: members added, and some removed.
        m.exec(&format!("SADD s n{round} m{}", 1000 + round));
        m.exec(&format!("SREM s m{}", 150 + round % 50));
    }
    assert_eq!(cursor, "0");
    for i in 0..150 {
        assert!(seen.contains(&format!("m{i}")), "m{i} missed");
    }
    assert!(seen.iter().all(|s| s.starts_with('m')), "MATCH applied");
}

#[test]
fn set_commands_run_inside_multi() {
    let mut m = Machine::new();
    let out = m.db.apply(&Command {
        ts_ms: m.now,
        op: Op::Multi {
            commands: vec![
                (0, args("SADD s a b")),
                (0, args("SPOP s 0")),
                (0, args("SCARD s")),
                (0, args("SINTERCARD 0 s")),
            ],
            watched: vec![],
        },
    });
    assert_eq!(
        out,
        Output::Array(vec![
            int(2),
            Output::Set(vec![]),
            int(2),
            err("ERR numkeys should be greater than 0"),
        ])
    );
}

#[test]
fn rows_match_redis_command_info() {
    use crate::cmd::Flags;
    for (name, arity, flags) in [
        ("sadd", -3, &["write", "denyoom", "fast"][..]),
        ("srem", -3, &["write", "fast"]),
        ("smembers", 2, &["readonly"]),
        ("sismember", 3, &["readonly", "fast"]),
        ("smismember", -3, &["readonly", "fast"]),
        ("scard", 2, &["readonly", "fast"]),
        ("spop", -2, &["write", "fast"]),
        ("srandmember", -2, &["readonly"]),
        ("smove", 4, &["write", "fast"]),
        ("sinter", -2, &["readonly"]),
        ("sintercard", -3, &["readonly", "movablekeys"]),
        ("sinterstore", -3, &["write", "denyoom"]),
        ("sunion", -2, &["readonly"]),
        ("sunionstore", -3, &["write", "denyoom"]),
        ("sdiff", -2, &["readonly"]),
        ("sdiffstore", -3, &["write", "denyoom"]),
        ("sscan", -3, &["readonly"]),
    ] {
        let spec = lookup(name.as_bytes()).expect("defined").1;
        assert_eq!(spec.arity, arity, "{name}");
        assert_eq!(
            spec.flags.redis_names().collect::<Vec<_>>(),
            flags,
            "{name}"
        );
        assert_eq!(spec.group, "@set");
        assert!(!spec.summary.is_empty());
        let _ = Flags::NONE;
    }
}
