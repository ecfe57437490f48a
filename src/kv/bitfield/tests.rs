//! BITFIELD against replies captured from redis-server 7.0.15.

use super::super::bitmaps::tests::Machine;
use super::super::table::testing::assert_checks;
use crate::kv::Output;

fn ints(items: &[Option<i64>]) -> Output {
    Output::Array(
        items
            .iter()
            .map(|i| i.map_or(Output::NIL, Output::Integer))
            .collect(),
    )
}

#[test]
fn every_argument_error_is_answered_before_proposing() {
    let bad_type = Some(
        "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.",
    );
    let bad_offset = Some("ERR bit offset is not an integer or out of range");
    assert_checks(&[
        ("BITFIELD h GET u64 0", bad_type),
        ("BITFIELD h GET i0 0", bad_type),
        ("BITFIELD h GET i65 0", bad_type),
        ("BITFIELD h GET x8 0", bad_type),
        ("BITFIELD h GET i8 #-1", bad_offset),
        ("BITFIELD h GET i8 #x", bad_offset),
        ("BITFIELD h GET i8 4294967296", bad_offset),
        ("BITFIELD h GET i8 #536870912", bad_offset),
        ("BITFIELD h GET i8 #536870911", None),
        ("BITFIELD h FOO", Some("ERR syntax error")),
        ("BITFIELD h SET i8 0", Some("ERR syntax error")),
        (
            "BITFIELD h OVERFLOW x",
            Some("ERR Invalid OVERFLOW type specified"),
        ),
        (
            "BITFIELD h GET i8 0 SET i8 0 x",
            Some("ERR value is not an integer or out of range"),
        ),
        (
            "BITFIELD_RO h GET i8 0 SET i8 0 1",
            Some("ERR BITFIELD_RO only supports the GET subcommand"),
        ),
        ("BITFIELD_RO h GET i8 0 GET u63 #3", None),
        ("BITFIELD h", None),
    ]);
}

#[test]
fn overflow_modes_match_redis() {
    let mut m = Machine::new();
    assert_eq!(
        m.exec("BITFIELD f SET i8 0 -100 INCRBY i8 0 -100 OVERFLOW SAT INCRBY i8 0 -100 OVERFLOW FAIL INCRBY i8 0 -100 GET u8 0 SET u4 #3 15 GET u16 0"),
        ints(&[Some(0), Some(56), Some(-44), None, Some(212), Some(0), Some(54287)])
    );
    assert_eq!(m.value("f").as_deref(), Some(&b"\xd4\x0f"[..]));
    assert_eq!(m.encoding("f"), Some("raw"));
    // Values Redis computes through C's wrapping arithmetic.
    assert_eq!(
        m.exec("BITFIELD g OVERFLOW WRAP SET u8 0 300 OVERFLOW SAT SET u8 8 300 SET u8 16 -1 SET i8 24 -9223372036854775808 OVERFLOW WRAP SET i8 32 -9223372036854775808 INCRBY i64 40 9223372036854775807 INCRBY i64 40 1 OVERFLOW SAT INCRBY i64 40 9223372036854775807 INCRBY u63 104 -1"),
        ints(&[Some(0), Some(0), Some(0), Some(0), Some(0), Some(i64::MAX), Some(i64::MIN), Some(-1), Some(0)])
    );
    assert_eq!(
        m.query("BITFIELD_RO g GET u8 0 GET u8 8 GET u8 16 GET i8 24 GET i8 32"),
        ints(&[Some(44), Some(255), Some(255), Some(127), Some(0)])
    );
}

#[test]
fn a_failed_write_still_grows_the_string_and_gets_only_reads_create_nothing() {
    let mut m = Machine::new();
    assert_eq!(m.exec("BITFIELD h GET i8 0"), ints(&[Some(0)]));
    assert_eq!(m.query("EXISTS h"), Output::Integer(0));
    assert_eq!(m.query("BITFIELD_RO h GET i8 0"), ints(&[Some(0)]));
    assert_eq!(
        m.exec("BITFIELD h OVERFLOW FAIL SET u2 100 5"),
        ints(&[None])
    );
    assert_eq!(m.query("STRLEN h"), Output::Integer(13));
    assert_eq!(m.exec("BITFIELD h"), Output::Array(vec![]));
    m.exec("RPUSH l a");
    assert_eq!(
        m.exec("BITFIELD l GET i8 0"),
        Output::err("WRONGTYPE Operation against a key holding the wrong kind of value")
    );
}
