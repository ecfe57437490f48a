//! The string commands' checks (what is refused before proposing, with
//! Redis's texts) and the apply-side order of what is not.

use super::super::table::testing::{assert_checks, exec};
use super::*;

const NOT_INT: Option<&str> = Some("ERR value is not an integer or out of range");

#[test]
fn set_family_options_are_refused_before_proposing() {
    assert_checks(&[
        ("SET k v NX XX", Some("ERR syntax error")),
        ("SET k v EX", Some("ERR syntax error")),
        ("SET k v EX 1 PX 1", Some("ERR syntax error")),
        ("SET k v KEEPTTL EX 1", Some("ERR syntax error")),
        ("SET k v EX x", NOT_INT),
        (
            "SET k v EX 0",
            Some("ERR invalid expire time in 'set' command"),
        ),
        (
            "SET k v PXAT -1",
            Some("ERR invalid expire time in 'set' command"),
        ),
        ("SET k v NX GET EXAT 1", None),
        ("SETEX k x v", NOT_INT),
        (
            "SETEX k 0 v",
            Some("ERR invalid expire time in 'setex' command"),
        ),
        (
            "PSETEX k -5 v",
            Some("ERR invalid expire time in 'psetex' command"),
        ),
        ("PSETEX k 5 v", None),
    ]);
}

#[test]
fn getex_options_are_checked_before_its_time_value() {
    assert_checks(&[
        ("GETEX k EX", Some("ERR syntax error")),
        ("GETEX k PERSIST EX 1", Some("ERR syntax error")),
        ("GETEX k NX", Some("ERR syntax error")),
        // Redis 7.0 looks the key up before the time value.
        ("GETEX k EX x", None),
        ("GETEX k PX 0", None),
    ]);
    let mut map = Db::new();
    assert_eq!(exec(&mut map, 0, 1000, "GETEX k EX x"), Output::NIL);
    exec(&mut map, 0, 1000, "SET k v");
    assert_eq!(
        exec(&mut map, 0, 1000, "GETEX k EX x"),
        Output::err(NOT_INTEGER)
    );
}

#[test]
fn getrange_bounds_are_integers() {
    assert_checks(&[
        ("GETRANGE k a 1", NOT_INT),
        ("SUBSTR k 0 1.5", NOT_INT),
        ("GETRANGE k -9223372036854775808 9223372036854775807", None),
    ]);
}

#[test]
fn mset_refuses_an_unpaired_key_before_proposing() {
    assert_checks(&[
        (
            "MSET a 1 b",
            Some("ERR wrong number of arguments for 'mset' command"),
        ),
        (
            "MSETNX a 1 b",
            Some("ERR wrong number of arguments for 'msetnx' command"),
        ),
        ("MSET a 1 b 2", None),
        ("MSETNX a 1", None),
    ]);
    let mut map = Db::new();
    assert_eq!(
        exec(&mut map, 0, 1000, "MSETNX a 1 b 2"),
        Output::Integer(1)
    );
    assert_eq!(
        exec(&mut map, 0, 1000, "MSETNX b 3 c 4"),
        Output::Integer(0)
    );
    assert_eq!(exec(&mut map, 0, 1000, "MSET b 3 c 4"), Output::Ok);
    assert_eq!(map.get(b"b").map(|v| &v[..]), Some(&b"3"[..]));
}

#[test]
fn incrby_amounts_are_refused_before_proposing() {
    assert_checks(&[
        ("INCRBY k x", NOT_INT),
        ("INCRBY k 1.5", NOT_INT),
        ("INCRBY k 9223372036854775808", NOT_INT),
        ("DECRBY k x", NOT_INT),
        (
            "DECRBY k -9223372036854775808",
            Some("ERR decrement would overflow"),
        ),
        ("INCRBY k -9223372036854775808", None),
        ("DECRBY k 9223372036854775807", None),
        ("INCR k", None),
        ("DECR k", None),
        // Checked after the key's type and value (Redis's order).
        ("INCRBYFLOAT k x", None),
    ]);
    let mut map = Db::new();
    assert_eq!(exec(&mut map, 0, 1000, "INCR k"), Output::Integer(1));
    assert_eq!(exec(&mut map, 0, 1000, "DECRBY k 5"), Output::Integer(-4));
    assert_eq!(exec(&mut map, 0, 1000, "INCRBY k 10"), Output::Integer(6));
    assert_eq!(exec(&mut map, 0, 1000, "DECR k"), Output::Integer(5));
}

#[test]
fn setrange_offset_is_checked_before_the_key_and_the_size_after() {
    assert_checks(&[
        ("SETRANGE k -1 v", Some("ERR offset is out of range")),
        ("SETRANGE k x v", NOT_INT),
        ("SETRANGE k 536870912 v", None),
    ]);
    let mut map = Db::new();
    assert_eq!(
        exec(&mut map, 0, 1000, "SETRANGE k 536870912 v"),
        Output::err(TOO_BIG)
    );
    exec(&mut map, 0, 1000, "HSET h f v");
    assert_eq!(
        exec(&mut map, 0, 1000, "SETRANGE h 536870912 v"),
        Output::err(WRONGTYPE)
    );
    assert_eq!(
        exec(&mut map, 0, 1000, "SETRANGE k 2 ab"),
        Output::Integer(4)
    );
    assert_eq!(map.get(b"k").map(|v| &v[..]), Some(&b"\0\0ab"[..]));
}
