//! The list commands through `apply`, against replies written down from
//! redis-server 7.0.15 (the same commands, `redis-cli` and a raw RESP
//! client for nil versus empty array).

use bytes::Bytes;

use crate::kv::{Command, Db, Op, Output};

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

struct Machine {
    db: Db,
}

impl Machine {
    fn new() -> Machine {
        Machine { db: Db::new() }
    }

    /// Runs one command (read or write) as a log entry.
    fn run(&mut self, line: &str) -> Output {
        let args = line
            .split_whitespace()
            .map(|s| Bytes::copy_from_slice(s.as_bytes()))
            .collect();
        self.db.apply(&Command {
            ts_ms: 1_000,
            op: Op::Exec { db: 0, args },
        })
    }

    /// The elements of the list at `key` (LRANGE 0 -1).
    fn items(&mut self, key: &str) -> Vec<String> {
        match self.run(&format!("lrange {key} 0 -1")) {
            Output::Array(items) => items
                .into_iter()
                .map(|o| match o {
                    Output::Bulk(Some(b)) => String::from_utf8_lossy(&b).into_owned(),
                    other => panic!("not a bulk: {other:?}"),
                })
                .collect(),
            other => panic!("not an array: {other:?}"),
        }
    }

    fn version(&self, key: &str) -> Option<u64> {
        self.db.entry(0, key.as_bytes()).map(|e| e.version)
    }
}

fn int(n: i64) -> Output {
    Output::Integer(n)
}

fn bulk(s: &str) -> Output {
    Output::bulk(Bytes::copy_from_slice(s.as_bytes()))
}

fn bulks(items: &[&str]) -> Output {
    Output::Array(items.iter().map(|s| bulk(s)).collect())
}

fn ints(items: &[i64]) -> Output {
    Output::Array(items.iter().map(|&n| int(n)).collect())
}

fn err(s: &str) -> Output {
    Output::err(s)
}

fn empty() -> Output {
    Output::Array(Vec::new())
}

#[test]
fn pushes_create_extend_and_report_the_length() {
    let mut m = Machine::new();
    assert_eq!(m.run("lpushx l a"), int(0));
    assert_eq!(m.run("rpushx l a b"), int(0));
    assert!(m.db.entry(0, b"l").is_none(), "X forms create nothing");
    assert_eq!(m.run("lpush l a b c"), int(3));
    assert_eq!(m.run("rpush l d e"), int(5));
    assert_eq!(m.run("lpushx l z"), int(6));
    assert_eq!(m.run("rpushx l y x"), int(8));
    assert_eq!(m.items("l"), ["z", "c", "b", "a", "d", "e", "y", "x"]);
    assert_eq!(m.run("type l"), Output::Status("list".into()));
    m.run("set s v");
    for cmd in ["lpush s a", "rpush s a", "lpushx s a", "rpushx s a"] {
        assert_eq!(m.run(cmd), err(WRONGTYPE), "{cmd}");
    }
}

#[test]
fn pops_reply_bulk_or_array_and_delete_the_emptied_key() {
    let mut m = Machine::new();
    assert_eq!(m.run("lpop l"), Output::NIL);
    assert_eq!(m.run("rpop l 2"), Output::NilArray);
    assert_eq!(m.run("lpop l 0"), Output::NilArray);
    m.run("rpush l a b c d e");
    assert_eq!(m.run("lpop l"), bulk("a"));
    assert_eq!(m.run("rpop l"), bulk("e"));
    let before = m.version("l");
    assert_eq!(m.run("lpop l 0"), empty());
    assert_eq!(m.version("l"), before, "COUNT 0 does not touch the key");
    assert_eq!(m.run("rpop l 2"), bulks(&["d", "c"]));
    assert_eq!(m.run("lpop l 5"), bulks(&["b"]));
    assert!(m.db.entry(0, b"l").is_none(), "an emptied list is deleted");
    m.run("rpush l a");
    assert_eq!(m.run("rpop l"), bulk("a"));
    assert!(m.db.entry(0, b"l").is_none());
}

#[test]
fn pop_errors_come_before_the_lookup_in_redis_order() {
    let mut m = Machine::new();
    m.run("set s v");
    let positive = err("ERR value is out of range, must be positive");
    assert_eq!(m.run("lpop s -1"), positive);
    assert_eq!(m.run("rpop nokey x"), positive);
    assert_eq!(
        m.run("lpop s 1 2"),
        err("ERR wrong number of arguments for 'lpop' command")
    );
    assert_eq!(
        m.run("rpop s 1 2"),
        err("ERR wrong number of arguments for 'rpop' command")
    );
    assert_eq!(
        m.run("lpop s 0"),
        err(WRONGTYPE),
        "WRONGTYPE before COUNT 0"
    );
    assert_eq!(m.run("rpop s"), err(WRONGTYPE));
}

#[test]
fn llen_lrange_and_lindex_read_with_negative_indexes() {
    let mut m = Machine::new();
    assert_eq!(m.run("llen l"), int(0));
    assert_eq!(m.run("lrange l 0 -1"), empty());
    assert_eq!(m.run("lindex l 0"), Output::NIL);
    assert_eq!(
        m.run("lindex l notanumber"),
        Output::NIL,
        "nil before the index parse"
    );
    m.run("rpush l a b c");
    assert_eq!(m.run("llen l"), int(3));
    assert_eq!(m.run("lrange l -2 100"), bulks(&["b", "c"]));
    assert_eq!(m.run("lrange l 2 1"), empty());
    assert_eq!(m.run("lindex l -1"), bulk("c"));
    assert_eq!(m.run("lindex l 3"), Output::NIL);
    let not_int = err("ERR value is not an integer or out of range");
    assert_eq!(m.run("lindex l x"), not_int);
    assert_eq!(m.run("lrange l x 1"), not_int);
    assert_eq!(
        m.run("lrange nokey 0 x"),
        not_int,
        "parsed before the lookup"
    );
    m.run("set s v");
    assert_eq!(
        m.run("lindex s x"),
        err(WRONGTYPE),
        "WRONGTYPE before the index"
    );
    assert_eq!(m.run("llen s"), err(WRONGTYPE));
    assert_eq!(m.run("lrange s 0 1"), err(WRONGTYPE));
}

#[test]
fn lset_checks_the_key_then_the_index() {
    let mut m = Machine::new();
    assert_eq!(m.run("lset l x v"), err("ERR no such key"));
    m.run("set s v");
    assert_eq!(m.run("lset s x v"), err(WRONGTYPE));
    m.run("rpush l a b c");
    assert_eq!(
        m.run("lset l x v"),
        err("ERR value is not an integer or out of range")
    );
    let before = m.version("l");
    assert_eq!(m.run("lset l 3 v"), err("ERR index out of range"));
    assert_eq!(m.run("lset l -4 v"), err("ERR index out of range"));
    assert_eq!(
        m.version("l"),
        before,
        "a refused LSET does not touch the key"
    );
    assert_eq!(m.run("lset l -1 z"), Output::Ok);
    assert_eq!(m.run("lset l 0 y"), Output::Ok);
    assert_eq!(m.items("l"), ["y", "b", "z"]);
}

#[test]
fn linsert_finds_the_first_pivot() {
    let mut m = Machine::new();
    assert_eq!(m.run("linsert l middle a b"), err("ERR syntax error"));
    assert_eq!(m.run("linsert l before a b"), int(0));
    m.run("set s v");
    assert_eq!(m.run("linsert s after a b"), err(WRONGTYPE));
    assert_eq!(m.run("linsert s middle a b"), err("ERR syntax error"));
    m.run("rpush l a p b p");
    assert_eq!(m.run("linsert l BEFORE p x"), int(5));
    assert_eq!(m.run("linsert l after p y"), int(6));
    let before = m.version("l");
    assert_eq!(m.run("linsert l after nothere y"), int(-1));
    assert_eq!(m.version("l"), before);
    assert_eq!(m.items("l"), ["a", "x", "p", "y", "b", "p"]);
}

#[test]
fn lrem_counts_from_either_end_and_deletes_the_emptied_key() {
    let mut m = Machine::new();
    assert_eq!(m.run("lrem l 0 a"), int(0));
    m.run("rpush l x a x b x");
    assert_eq!(
        m.run("lrem l y x"),
        err("ERR value is not an integer or out of range")
    );
    let before = m.version("l");
    assert_eq!(m.run("lrem l 0 nothere"), int(0));
    assert_eq!(m.version("l"), before, "nothing removed, key untouched");
    assert_eq!(m.run("lrem l -2 x"), int(2));
    assert_eq!(m.items("l"), ["x", "a", "b"]);
    assert_eq!(m.run("lrem l 1 x"), int(1));
    assert_eq!(m.run("lrem l 0 a"), int(1));
    assert_eq!(m.run("lrem l 0 b"), int(1));
    assert!(m.db.entry(0, b"l").is_none());
    m.run("set s v");
    assert_eq!(m.run("lrem s 0 v"), err(WRONGTYPE));
}

#[test]
fn ltrim_keeps_the_range_or_deletes_the_key() {
    let mut m = Machine::new();
    assert_eq!(m.run("ltrim l 0 1"), Output::Ok);
    assert_eq!(
        m.run("ltrim l 0 x"),
        err("ERR value is not an integer or out of range")
    );
    m.run("rpush l a b c d e");
    assert_eq!(m.run("ltrim l 1 -2"), Output::Ok);
    assert_eq!(m.items("l"), ["b", "c", "d"]);
    assert_eq!(m.run("ltrim l 5 10"), Output::Ok);
    assert!(m.db.entry(0, b"l").is_none());
    m.run("set s v");
    assert_eq!(m.run("ltrim s 0 1"), err(WRONGTYPE));
}

#[test]
fn lpos_options_and_replies() {
    let mut m = Machine::new();
    assert_eq!(m.run("lpos l a"), Output::NIL);
    assert_eq!(m.run("lpos l a COUNT 0"), empty());
    m.run("rpush l a b c a b c");
    assert_eq!(m.run("lpos l b"), int(1));
    assert_eq!(m.run("lpos l b RANK 2"), int(4));
    assert_eq!(m.run("lpos l b RANK -1"), int(4));
    assert_eq!(m.run("lpos l b RANK 3"), Output::NIL);
    assert_eq!(m.run("lpos l a COUNT 0"), ints(&[0, 3]));
    assert_eq!(m.run("lpos l a COUNT 1 RANK -1"), ints(&[3]));
    assert_eq!(m.run("lpos l c COUNT 0 MAXLEN 3"), ints(&[2]));
    assert_eq!(m.run("lpos l z COUNT 0"), empty());
    assert_eq!(m.run("lpos l a RANK -2 COUNT 0 MAXLEN 4"), empty());
    // 7.0.15's wrap-around of -LONG_MIN, as observed.
    m.run("del l");
    m.run("rpush l a b a c a");
    assert_eq!(
        m.run("lpos l a RANK -9223372036854775808 COUNT 1"),
        ints(&[4, 2, 0])
    );
    assert_eq!(
        m.run("lpos l a RANK -9223372036854775808 COUNT 0 MAXLEN 3"),
        ints(&[4, 2])
    );
    assert_eq!(m.run("lpos l a RANK -9223372036854775808 MAXLEN 2"), int(4));
    assert_eq!(m.run("lpos l a RANK -9223372036854775807 COUNT 1"), empty());
    assert_eq!(m.run("lpos l a RANK 9223372036854775807"), Output::NIL);
}

#[test]
fn lpos_errors_in_option_order() {
    let mut m = Machine::new();
    m.run("set s v");
    assert_eq!(
        m.run("lpos s a COUNT x"),
        err("ERR COUNT can't be negative")
    );
    assert_eq!(
        m.run("lpos s a MAXLEN -1"),
        err("ERR MAXLEN can't be negative")
    );
    assert_eq!(
        m.run("lpos s a RANK x"),
        err("ERR value is not an integer or out of range")
    );
    assert_eq!(
        m.run("lpos s a RANK 0"),
        err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list")
    );
    assert_eq!(m.run("lpos s a FOO"), err("ERR syntax error"));
    assert_eq!(m.run("lpos s a COUNT"), err("ERR syntax error"));
    assert_eq!(m.run("lpos s a RANK 0 FOO"), err("ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list"));
    assert_eq!(m.run("lpos s a"), err(WRONGTYPE));
}

#[test]
fn lmove_and_rpoplpush_move_one_element() {
    let mut m = Machine::new();
    assert_eq!(m.run("lmove src dst left right"), Output::NIL);
    assert_eq!(m.run("lmove src dst up right"), err("ERR syntax error"));
    m.run("set s v");
    assert_eq!(
        m.run("lmove nokey s left left"),
        Output::NIL,
        "destination unchecked"
    );
    m.run("rpush src a b c");
    assert_eq!(m.run("lmove src s left left"), err(WRONGTYPE));
    assert_eq!(m.items("src"), ["a", "b", "c"], "nothing popped");
    assert_eq!(m.run("lmove s src left left"), err(WRONGTYPE));
    assert_eq!(m.run("lmove src dst LEFT right"), bulk("a"));
    assert_eq!(m.run("rpoplpush src dst"), bulk("c"));
    assert_eq!(m.items("dst"), ["c", "a"]);
    assert_eq!(m.run("lmove src dst right right"), bulk("b"));
    assert!(m.db.entry(0, b"src").is_none());
    assert_eq!(m.items("dst"), ["c", "a", "b"]);
    // Same list: a rotation that keeps the key and its TTL.
    m.run("expire dst 100");
    assert_eq!(m.run("lmove dst dst left right"), bulk("c"));
    assert_eq!(m.run("rpoplpush dst dst"), bulk("c"));
    assert_eq!(m.items("dst"), ["c", "a", "b"]);
    m.run("rpush one x");
    m.run("expire one 100");
    assert_eq!(m.run("rpoplpush one one"), bulk("x"));
    assert_eq!(m.items("one"), ["x"]);
    assert!(m
        .db
        .entry(0, b"one")
        .is_some_and(|e| e.expires_at_ms().is_some()));
}

#[test]
fn lmpop_parses_numkeys_end_and_count() {
    let mut m = Machine::new();
    let numkeys = err("ERR numkeys should be greater than 0");
    let count = err("ERR count should be greater than 0");
    let syntax = err("ERR syntax error");
    assert_eq!(m.run("lmpop 0 l left"), numkeys);
    assert_eq!(m.run("lmpop abc l left"), numkeys);
    assert_eq!(m.run("lmpop 2 l left"), syntax);
    assert_eq!(m.run("lmpop 9223372036854775807 l left"), syntax);
    assert_eq!(m.run("lmpop 1 l middle"), syntax);
    assert_eq!(m.run("lmpop 1 l left count 0"), count);
    assert_eq!(m.run("lmpop 1 l left count -1"), count);
    assert_eq!(m.run("lmpop 1 l left count x"), count);
    assert_eq!(m.run("lmpop 1 l left count 1 count 1"), syntax);
    assert_eq!(m.run("lmpop 1 l left count"), syntax);
    assert_eq!(m.run("lmpop 1 l left"), Output::NilArray);
}

#[test]
fn lmpop_pops_from_the_first_non_empty_key() {
    let mut m = Machine::new();
    m.run("rpush b 1 2 3");
    m.run("rpush c x");
    assert_eq!(
        m.run("lmpop 3 a b c right count 2"),
        Output::Array(vec![bulk("b"), bulks(&["3", "2"])])
    );
    assert_eq!(
        m.run("lmpop 3 a b c left count 5"),
        Output::Array(vec![bulk("b"), bulks(&["1"])])
    );
    assert!(m.db.entry(0, b"b").is_none());
    assert_eq!(
        m.run("lmpop 2 b c LEFT"),
        Output::Array(vec![bulk("c"), bulks(&["x"])])
    );
    m.run("set s v");
    m.run("rpush d y");
    assert_eq!(m.run("lmpop 2 s d left"), err(WRONGTYPE));
    assert_eq!(
        m.run("lmpop 2 d s left"),
        Output::Array(vec![bulk("d"), bulks(&["y"])]),
        "keys after the popped one are not looked at"
    );
}

#[test]
fn rows_match_redis_command_info() {
    use crate::cmd::{lookup, Flags};
    let (_, lpush) = lookup(b"lpush").unwrap();
    assert_eq!(lpush.arity, -3);
    assert!(lpush
        .flags
        .contains(Flags::DENYOOM.or(Flags::FAST).or(Flags::WRITE)));
    let (_, lmpop) = lookup(b"lmpop").unwrap();
    let args: Vec<Bytes> = ["lmpop", "2", "a", "b", "left"]
        .iter()
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect();
    assert_eq!(lmpop.key_positions(&args), Some(vec![2, 3]));
    let (_, lmove) = lookup(b"lmove").unwrap();
    let args: Vec<Bytes> = ["lmove", "a", "b", "left", "right"]
        .iter()
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect();
    assert_eq!(lmove.key_positions(&args), Some(vec![1, 2]));
    let (_, llen) = lookup(b"llen").unwrap();
    assert!(llen.flags.contains(Flags::READONLY.or(Flags::FAST)));
}

#[test]
fn a_list_in_a_transaction_is_applied_atomically() {
    let mut m = Machine::new();
    let commands: Vec<(u8, Vec<Bytes>)> = ["rpush q a b", "lpop q", "lpop q", "llen q"]
        .iter()
        .map(|line| {
            (
                0,
                line.split_whitespace()
                    .map(|s| Bytes::copy_from_slice(s.as_bytes()))
                    .collect(),
            )
        })
        .collect();
    let out = m.db.apply(&Command {
        ts_ms: 1_000,
        op: Op::Multi {
            commands,
            watched: Vec::new(),
        },
    });
    assert_eq!(
        out,
        Output::Array(vec![int(2), bulk("a"), bulk("b"), int(0)])
    );
    assert!(m.db.entry(0, b"q").is_none());
}
