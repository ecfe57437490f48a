//! LCS against replies captured from redis-server 7.0.15.

use super::super::bitmaps::tests::Machine;
use crate::kv::Output;

fn range(a: (i64, i64), b: (i64, i64), len: Option<i64>) -> Output {
    let pair = |(s, e): (i64, i64)| Output::Array(vec![Output::Integer(s), Output::Integer(e)]);
    let mut item = vec![pair(a), pair(b)];
    item.extend(len.map(Output::Integer));
    Output::Array(item)
}

fn idx(matches: Vec<Output>, len: i64) -> Output {
    Output::Map(vec![
        (Output::bulk("matches"), Output::Array(matches)),
        (Output::bulk("len"), Output::Integer(len)),
    ])
}

#[test]
fn lcs_answers_redis_subsequence_length_and_ranges() {
    let mut m = Machine::new();
    m.exec("MSET a ohmytext b mynewtext");
    assert_eq!(m.query("LCS a b"), Output::bulk("mytext"));
    assert_eq!(m.query("LCS a b LEN"), Output::Integer(6));
    assert_eq!(
        m.query("LCS a b IDX"),
        idx(
            vec![range((4, 7), (5, 8), None), range((2, 3), (0, 1), None)],
            6
        )
    );
    assert_eq!(
        m.query("LCS a b idx minmatchlen 4 withmatchlen"),
        idx(vec![range((4, 7), (5, 8), Some(4))], 6)
    );
    assert_eq!(
        m.query("LCS a b IDX WITHMATCHLEN"),
        idx(
            vec![
                range((4, 7), (5, 8), Some(4)),
                range((2, 3), (0, 1), Some(2))
            ],
            6
        )
    );
    assert_eq!(m.query("LCS nx ny IDX"), idx(vec![], 0));
    assert_eq!(m.query("LCS nx ny"), Output::bulk(""));
}

#[test]
fn lcs_errors_come_after_the_keys_in_redis_order() {
    let mut m = Machine::new();
    m.exec("MSET a ohmytext b mynewtext");
    m.exec("RPUSH l x");
    for (line, text) in [
        (
            "LCS a b IDX LEN",
            "ERR If you want both the length and indexes, please just use IDX.",
        ),
        ("LCS a b x", "ERR syntax error"),
        ("LCS a b MINMATCHLEN", "ERR syntax error"),
        (
            "LCS a b MINMATCHLEN x",
            "ERR value is not an integer or out of range",
        ),
        (
            "LCS a l x",
            "ERR The specified keys must contain string values",
        ),
    ] {
        assert_eq!(m.query(line), Output::err(text), "{line}");
    }
}

#[test]
fn a_table_over_the_bulk_limit_is_refused_before_allocating() {
    let mut m = Machine::new();
    // (12000 + 1)^2 * 4 bytes > 512 MB: refused at once.
    let long = vec![b'x'; 12_000];
    m.run(&[b"SET", b"a", &long]);
    m.run(&[b"SET", b"b", &long]);
    assert_eq!(
        m.query("LCS a b LEN"),
        Output::err("ERR Insufficient memory, transient memory for LCS exceeds proto-max-bulk-len")
    );
}
