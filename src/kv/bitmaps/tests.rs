//! The bitmap commands against replies captured from redis-server 7.0.15.

use bytes::Bytes;

use super::super::table::testing::assert_checks;
use crate::kv::{Command, Db, Op, Output, Value, MAX_STRING_BYTES};

/// A map driven like a replica: each write is one log entry; arguments
/// may hold any bytes.
pub(crate) struct Machine {
    pub(crate) db: Db,
    now: u64,
}

impl Machine {
    pub(crate) fn new() -> Machine {
        Machine {
            db: Db::new(),
            now: 1_000_000,
        }
    }

    pub(crate) fn run(&mut self, args: &[&[u8]]) -> Output {
        self.now += 1;
        let args = args.iter().map(|a| Bytes::copy_from_slice(a)).collect();
        self.db.apply(&Command {
            ts_ms: self.now,
            op: Op::Exec { db: 0, args },
        })
    }

    pub(crate) fn exec(&mut self, line: &str) -> Output {
        let args: Vec<&[u8]> = line.split(' ').map(str::as_bytes).collect();
        self.run(&args)
    }

    pub(crate) fn query(&self, line: &str) -> Output {
        let args: Vec<Bytes> = line
            .split(' ')
            .map(|a| Bytes::copy_from_slice(a.as_bytes()))
            .collect();
        self.db.query(0, &args, self.now, 7)
    }

    pub(crate) fn value(&self, key: &str) -> Option<Bytes> {
        match self.db.entry(0, key.as_bytes()).map(|e| &e.value) {
            Some(Value::Str(s)) => Some(s.bytes().clone()),
            _ => None,
        }
    }

    pub(crate) fn encoding(&self, key: &str) -> Option<&'static str> {
        match self.db.entry(0, key.as_bytes()).map(|e| &e.value) {
            Some(Value::Str(s)) => Some(s.encoding()),
            _ => None,
        }
    }

    pub(crate) fn version(&self, key: &str) -> Option<u64> {
        self.db.entry(0, key.as_bytes()).map(|e| e.version)
    }
}

fn int(n: i64) -> Output {
    Output::Integer(n)
}

const WRONGTYPE: &str = "WRONGTYPE Operation against a key holding the wrong kind of value";

#[test]
fn offsets_and_bits_are_refused_before_proposing() {
    let offset = Some("ERR bit offset is not an integer or out of range");
    assert_checks(&[
        ("SETBIT k 4294967296 1", offset),
        ("SETBIT k -1 1", offset),
        ("SETBIT k x 1", offset),
        (
            "SETBIT k 1 2",
            Some("ERR bit is not an integer or out of range"),
        ),
        (
            "SETBIT k 1 x",
            Some("ERR bit is not an integer or out of range"),
        ),
        ("SETBIT k 4294967295 1", None),
        ("GETBIT k 4294967296", offset),
        ("BITOP foo d a", Some("ERR syntax error")),
        (
            "BITOP NOT d a b",
            Some("ERR BITOP NOT must be called with a single source key."),
        ),
        ("BITOP and d a b c", None),
        ("BITPOS k 2", Some("ERR The bit argument must be 1 or 0.")),
        (
            "BITPOS k x",
            Some("ERR value is not an integer or out of range"),
        ),
        // The range is parsed only after the key (data-dependent).
        ("BITPOS k 1 x y z", None),
        ("BITCOUNT k x y z", None),
    ]);
}

#[test]
fn setbit_answers_the_old_bit_grows_with_zeros_and_leaves_raw() {
    let mut m = Machine::new();
    assert_eq!(m.exec("SETBIT k 7 1"), int(0));
    assert_eq!(m.exec("SETBIT k 7 1"), int(1));
    assert_eq!(m.value("k").as_deref(), Some(&b"\x01"[..]));
    assert_eq!(m.encoding("k"), Some("raw"));
    assert_eq!(m.exec("SETBIT k 17 1"), int(0));
    assert_eq!(m.value("k").as_deref(), Some(&b"\x01\x00\x40"[..]));
    assert_eq!(m.query("GETBIT k 17"), int(1));
    assert_eq!(m.query("GETBIT k 16"), int(0));
    assert_eq!(m.query("GETBIT k 1000"), int(0));
    assert_eq!(m.query("GETBIT nokey 0"), int(0));
    // Redis unshares an `int` string even when no bit changes.
    m.exec("SET n 12");
    assert_eq!(m.exec("SETBIT n 0 0"), int(0));
    assert_eq!(m.encoding("n"), Some("raw"));
    assert_eq!(m.value("n").as_deref(), Some(&b"12"[..]));
    m.exec("RPUSH l a");
    assert_eq!(m.exec("SETBIT l 0 1"), Output::err(WRONGTYPE));
    assert_eq!(m.query("GETBIT l 0"), Output::err(WRONGTYPE));
}

#[test]
fn a_setbit_that_changes_nothing_is_no_modification() {
    let mut m = Machine::new();
    m.exec("SETBIT k 3 1");
    let before = m.version("k");
    assert_eq!(m.exec("SETBIT k 3 1"), int(1));
    assert_eq!(m.version("k"), before, "WATCH must not fire");
    assert_eq!(m.exec("SETBIT k 3 0"), int(1));
    assert_ne!(m.version("k"), before);
}

#[test]
fn setbit_at_the_last_offset_allocates_the_limit_once() {
    let mut m = Machine::new();
    assert_eq!(m.exec("SETBIT big 4294967295 1"), int(0));
    assert_eq!(m.query("STRLEN big"), int(MAX_STRING_BYTES as i64));
    let ptr = m.value("big").map(|b| b.as_ptr());
    drop(m.value("big"));
    // Changed in place: the same buffer, no second 512 MB.
    assert_eq!(m.exec("SETBIT big 0 1"), int(0));
    assert_eq!(m.value("big").map(|b| b.as_ptr()), ptr);
    assert_eq!(m.query("BITCOUNT big"), int(2));
    assert_eq!(m.query("BITPOS big 1 1 -1"), int(4294967295));
    assert!(m.db.used_memory() > MAX_STRING_BYTES);
    m.exec("DEL big");
    assert!(m.db.used_memory() < 1024);
}

#[test]
fn bitcount_follows_redis_ranges_and_units() {
    let mut m = Machine::new();
    m.exec("SET s foobar");
    for (line, expected) in [
        ("BITCOUNT s", int(26)),
        ("BITCOUNT s 0 0", int(4)),
        ("BITCOUNT s 1 1", int(6)),
        ("BITCOUNT s 5 30 bit", int(17)),
        ("BITCOUNT s -1 -2 x", int(0)),
        ("BITCOUNT s 1 1 x", Output::err("ERR syntax error")),
        ("BITCOUNT s 1", Output::err("ERR syntax error")),
        (
            "BITCOUNT s a 1",
            Output::err("ERR value is not an integer or out of range"),
        ),
        ("BITCOUNT missing 1", int(0)),
        ("BITCOUNT s -100 100", int(26)),
    ] {
        assert_eq!(m.query(line), expected, "{line}");
    }
}

#[test]
fn bitpos_follows_redis_ranges_and_the_zero_padding_rule() {
    let mut m = Machine::new();
    m.run(&[b"SET", b"p", b"\xff\xf0\x00"]);
    m.run(&[b"SET", b"ones", b"\xff\xff"]);
    for (line, expected) in [
        ("BITPOS p 0", int(12)),
        ("BITPOS p 1 2", int(-1)),
        ("BITPOS p 0 0 0", int(-1)),
        ("BITPOS p 0 2 -1 bit", int(12)),
        ("BITPOS p 1 7 15 bit", int(7)),
        ("BITPOS p 0 0 1 bit", int(-1)),
        ("BITPOS p 1 0 -1 x", Output::err("ERR syntax error")),
        ("BITPOS missing 1 x", int(-1)),
        ("BITPOS missing 0", int(0)),
        ("BITPOS ones 0", int(16)),
        ("BITPOS ones 0 0", int(16)),
        ("BITPOS ones 0 0 -1", int(-1)),
        (
            "BITPOS ones 0 3 bit",
            Output::err("ERR value is not an integer or out of range"),
        ),
    ] {
        assert_eq!(m.query(line), expected, "{line}");
    }
}

#[test]
fn bitop_stores_raw_and_deletes_the_destination_of_an_empty_result() {
    let mut m = Machine::new();
    m.exec("SET s foobar");
    m.run(&[b"SET", b"p", b"\xff\xf0\x00"]);
    m.exec("SET d x EX 100");
    assert_eq!(m.exec("BITOP and d s p"), int(6));
    assert_eq!(m.value("d").as_deref(), Some(&b"f`\x00\x00\x00\x00"[..]));
    assert_eq!(m.encoding("d"), Some("raw"));
    assert_eq!(m.query("TTL d"), int(-1));
    assert_eq!(m.exec("BITOP NOT d p"), int(3));
    assert_eq!(m.value("d").as_deref(), Some(&b"\x00\x0f\xff"[..]));
    assert_eq!(m.exec("BITOP XOR d s s"), int(6));
    assert_eq!(m.exec("BITOP OR d missing"), int(0));
    assert_eq!(m.query("EXISTS d"), int(0));
    m.exec("RPUSH l a");
    assert_eq!(m.exec("BITOP OR d s l"), Output::err(WRONGTYPE));
    // The destination may hold any type: it is replaced.
    assert_eq!(m.exec("BITOP OR l s"), int(6));
    assert_eq!(m.value("l").as_deref(), Some(&b"foobar"[..]));
}
