//! Stream commands against replies printed by redis-server 7.0.15 for the
//! same commands (explicit ids; `*` ids at the entry's log time).

use bytes::Bytes;

use crate::kv::zsets::tests::show;
use crate::kv::{Command, Db, Op};

fn run_at(db: &mut Db, ts_ms: u64, line: &str) -> String {
    let args: Vec<Bytes> = line
        .split_whitespace()
        .map(|s| Bytes::copy_from_slice(s.as_bytes()))
        .collect();
    show(&db.apply(&Command {
        ts_ms,
        op: Op::Exec { db: 0, args },
    }))
}

fn check(db: &mut Db, ts_ms: u64, cases: &[(&str, &str)]) {
    for (line, want) in cases {
        assert_eq!(run_at(db, ts_ms, line), *want, "{line}");
    }
}

#[test]
fn xadd_ids_options_and_errors() {
    let mut db = Db::new();
    check(
        &mut db,
        1_000,
        &[
            ("xadd s 1-1 a 1", "1-1"),
            ("xadd s 1-* a 2", "1-2"),
            ("xadd s * a 3", "1000-0"),
            ("xadd s * a 4", "1000-1"),
            (
                "xadd s 5-0 a 1",
                "!ERR The ID specified in XADD is equal or smaller than the target stream top item",
            ),
            (
                "xadd s 0-0 a 1",
                "!ERR The ID specified in XADD must be greater than 0-0",
            ),
            (
                "xadd s 0 a 1",
                "!ERR The ID specified in XADD must be greater than 0-0",
            ),
            (
                "xadd s x a 1",
                "!ERR Invalid stream ID specified as stream command argument",
            ),
            (
                "xadd s * a",
                "!ERR wrong number of arguments for 'xadd' command",
            ),
            (
                "xadd s nomkstream * a",
                "!ERR wrong number of arguments for 'xadd' command",
            ),
            ("xadd t nomkstream * a 1", "nil"),
            ("exists t", "0"),
            (
                "xadd s maxlen -1 * a 1",
                "!ERR The MAXLEN argument must be >= 0.",
            ),
            (
                "xadd s maxlen 1 minid 1 * a 1",
                "!ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
            ),
            (
                "xadd s maxlen 1 limit 10 * a 1",
                "!ERR syntax error, LIMIT cannot be used without the special ~ option",
            ),
            (
                "xadd s limit 10 * a 1",
                "!ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
            ),
            ("xadd s maxlen = 2 2000-0 a 5", "2000-0"),
            ("xlen s", "2"),
            ("xrange s - +", "[[1000-1 [a 4]] [2000-0 [a 5]]]"),
            ("type s", "stream"),
            ("set str x", "OK"),
            (
                "xadd str * a 1",
                "!WRONGTYPE Operation against a key holding the wrong kind of value",
            ),
        ],
    );
    // A clock behind the last id: the id still grows.
    check(&mut db, 1_500, &[("xadd s * a 6", "2000-1")]);
}

#[test]
fn xrange_bounds_count_and_xdel() {
    let mut db = Db::new();
    for i in 1..=5 {
        run_at(&mut db, 1, &format!("xadd s {i}-0 f {i}"));
    }
    check(
        &mut db,
        1,
        &[
            ("xrange s (1-0 (4 count 2", "[[2-0 [f 2]] [3-0 [f 3]]]"),
            ("xrevrange s + - count 1", "[[5-0 [f 5]]]"),
            ("xrange s - + count 0", "nil[]"),
            ("xrange nokey - + count 0", "[]"),
            ("xrange s ( +", "!ERR Invalid stream ID specified as stream command argument"),
            ("xrange s (- +", "!ERR Invalid stream ID specified as stream command argument"),
            (
                "xrange s (18446744073709551615-18446744073709551615 +",
                "!ERR invalid start ID for the interval",
            ),
            ("xrange s - (0-0", "!ERR invalid end ID for the interval"),
            ("xrange s - + foo", "!ERR syntax error"),
            ("xdel s 2-0 2-0 9-0", "1"),
            ("xdel s bad", "!ERR Invalid stream ID specified as stream command argument"),
            ("xdel nokey bad", "0"),
            ("xlen s", "4"),
            ("xtrim s maxlen 2", "2"),
            ("xtrim s minid 5", "1"),
            ("xtrim s minid = 5", "0"),
            ("xtrim s", "!ERR wrong number of arguments for 'xtrim' command"),
            ("xtrim s foo 1", "!ERR syntax error"),
            ("xtrim nokey maxlen 1", "0"),
            (
                "xinfo stream s",
                "{length:1 radix-tree-keys:1 radix-tree-nodes:2 last-generated-id:5-0 max-deleted-entry-id:2-0 entries-added:5 recorded-first-entry-id:5-0 groups:0 first-entry:[5-0 [f 5]] last-entry:[5-0 [f 5]]}",
            ),
        ],
    );
}

#[test]
fn xread_and_xsetid() {
    let mut db = Db::new();
    check(
        &mut db,
        1,
        &[
            ("xadd a 1-0 f 1", "1-0"),
            ("xadd a 2-0 f 2", "2-0"),
            ("xadd b 1-0 g 1", "1-0"),
            (
                "xread count 1 streams a b 0 0",
                "{a:[[1-0 [f 1]]] b:[[1-0 [g 1]]]}",
            ),
            ("xread streams a b $ $", "nil[]"),
            ("xread streams a nokey 1 0", "{a:[[2-0 [f 2]]]}"),
            (
                "xread streams a b 0",
                "!ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified.",
            ),
            (
                "xread group g c streams a 0",
                "!ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
            ),
            (
                "xread streams a >",
                "!ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option.",
            ),
            ("xsetid a 1-0", "!ERR The ID specified in XSETID is smaller than the target stream top item"),
            (
                "xsetid a 5-0 entriesadded 1",
                "!ERR The entries_added specified in XSETID is smaller than the target stream length",
            ),
            (
                "xsetid a 5-0 maxdeletedid 6-0",
                "!ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id",
            ),
            ("xsetid a 5-0 entriesadded 10 maxdeletedid 3-0", "OK"),
            ("xsetid nokey 5-0", "!ERR no such key"),
            ("xadd a * f 3", "5-1"),
        ],
    );
}

#[test]
fn consumer_groups_deliver_ack_and_claim() {
    let mut db = Db::new();
    for i in 1..=3 {
        run_at(&mut db, 1, &format!("xadd s {i}-0 f {i}"));
    }
    check(
        &mut db,
        100,
        &[
            ("xgroup create s g 0", "OK"),
            ("xgroup create s g 0", "!BUSYGROUP Consumer Group name already exists"),
            (
                "xgroup create nokey g $",
                "!ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.",
            ),
            ("xgroup create new g $ mkstream", "OK"),
            ("xgroup foo s g", "!ERR unknown subcommand 'foo'. Try XGROUP HELP."),
            ("xgroup create s", "!ERR wrong number of arguments for 'xgroup|create' command"),
            (
                "xgroup setid s nog 0",
                "!NOGROUP No such consumer group 'nog' for key name 's'",
            ),
            (
                "xreadgroup group g alice count 2 streams s >",
                "{s:[[1-0 [f 1]] [2-0 [f 2]]]}",
            ),
            ("xreadgroup group g bob streams s >", "{s:[[3-0 [f 3]]]}"),
            ("xreadgroup group g bob streams s >", "nil[]"),
            ("xpending s g", "[3 1-0 3-0 [[alice 2] [bob 1]]]"),
            ("xack s g 1-0 1-0 9-0", "1"),
            ("xreadgroup group g alice streams s 0", "{s:[[2-0 [f 2]]]}"),
        ],
    );
    check(
        &mut db,
        200,
        &[
            ("xpending s g - + 10", "[[2-0 alice 100 2] [3-0 bob 100 1]]"),
            ("xpending s g idle 150 - + 10", "[]"),
            ("xpending s g idle 50 - + 1", "[[2-0 alice 100 2]]"),
            ("xpending s g - + 10 bob", "[[3-0 bob 100 1]]"),
            ("xclaim s g carol 150 3-0 2-0", "[]"),
            ("xclaim s g carol 50 3-0 2-0", "[[3-0 [f 3]] [2-0 [f 2]]]"),
            ("xclaim s g carol 0 2-0 justid", "[2-0]"),
            ("xpending s g - + 10", "[[2-0 carol 0 3] [3-0 carol 0 2]]"),
            ("xdel s 2-0", "1"),
            ("xautoclaim s g dave 0 0", "[0-0 [[3-0 [f 3]]] [2-0]]"),
            ("xpending s g", "[1 3-0 3-0 [[dave 1]]]"),
            (
                "xinfo groups s",
                "[{name:g consumers:4 pending:1 last-delivered-id:3-0 entries-read:3 lag:0}]",
            ),
            (
                "xinfo consumers s g",
                "[{name:alice pending:0 idle:100} {name:bob pending:0 idle:100} {name:carol pending:0 idle:0} {name:dave pending:1 idle:0}]",
            ),
            ("xgroup delconsumer s g dave", "1"),
            ("xgroup createconsumer s g erin", "1"),
            ("xgroup createconsumer s g erin", "0"),
            ("xgroup destroy s g", "1"),
            ("xgroup destroy s g", "0"),
            (
                "xreadgroup group g a streams s >",
                "!NOGROUP No such key 's' or consumer group 'g' in XREADGROUP with GROUP option",
            ),
            ("xclaim s g c 0 1-0", "!NOGROUP No such key 's' or consumer group 'g'"),
        ],
    );
    match db.entry(0, b"s").map(|e| &e.value) {
        Some(crate::kv::Value::Stream(s)) => s.check_pel().unwrap(),
        other => panic!("a stream, got {other:?}"),
    }
}

/// `EVAL script numkeys key...` at a fixed time.
fn eval(db: &mut Db, script: &str, keys: &[&str]) -> String {
    let mut args = vec![
        Bytes::from_static(b"eval"),
        Bytes::copy_from_slice(script.as_bytes()),
        Bytes::from(keys.len().to_string()),
    ];
    args.extend(keys.iter().map(|k| Bytes::copy_from_slice(k.as_bytes())));
    show(&db.apply(&Command {
        ts_ms: 5_000,
        op: Op::Exec { db: 0, args },
    }))
}

#[test]
fn xread_in_scripts_refuses_block_as_redis() {
    let mut db = Db::new();
    run_at(&mut db, 1_000, "xadd s 1-1 a 1");
    run_at(&mut db, 1_000, "xgroup create s g 0");
    let suffix = |script: &str| {
        format!(
            " script: {}, on @user_script:1.",
            crate::kv::script::sha1_hex(script.as_bytes())
        )
    };
    // Replies of redis-server 7.0.15 to the same scripts.
    let refused = [
        (
            "return redis.call('xreadgroup','GROUP','g','c','block','0','STREAMS','s','>')",
            "!ERR xreadgroup command is not allowed with BLOCK option from scripts",
        ),
        (
            "return redis.call('XREAD','BLOCK','0','STREAMS','s','$')",
            "!ERR XREAD command is not allowed with BLOCK option from scripts",
        ),
        (
            "return redis.call('XREAD','COUNT','x','BLOCK','0','STREAMS','s','0')",
            "!ERR value is not an integer or out of range",
        ),
        (
            "return redis.call('XREAD','STREAMS','s','BLOCK')",
            "!ERR Invalid stream ID specified as stream command argument",
        ),
    ];
    for (script, want) in refused {
        assert_eq!(
            eval(&mut db, script, &["s"]),
            format!("{want}{}", suffix(script))
        );
    }
    // BLOCK is refused before its timeout is parsed; pcall hands the error back.
    assert_eq!(
        eval(
            &mut db,
            "return redis.pcall('XREAD','BLOCK','x','STREAMS','s','$')",
            &[]
        ),
        "!ERR XREAD command is not allowed with BLOCK option from scripts"
    );
    // Without BLOCK both run (XREADGROUP delivers and makes the entry pending).
    assert_eq!(
        eval(
            &mut db,
            "return redis.call('XREAD','COUNT','1','STREAMS','s','0')",
            &[]
        ),
        "[[s [[1-1 [a 1]]]]]"
    );
    assert_eq!(
        eval(
            &mut db,
            "return redis.call('XREADGROUP','GROUP','g','c','STREAMS','s','>')",
            &["s"]
        ),
        "[[s [[1-1 [a 1]]]]]"
    );
    assert_eq!(
        run_at(&mut db, 6_000, "xpending s g"),
        "[1 1-1 1-1 [[c 1]]]"
    );
}
