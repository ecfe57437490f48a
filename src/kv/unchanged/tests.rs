//! The probe's invariant, checked against apply itself: over random maps
//! (every type, keys expiring as the clock moves) and random commands, a
//! write the probe answers gets that answer from apply too and leaves every
//! key, value and TTL as it was.

use bytes::Bytes;

use super::*;
use crate::kv::Command;

/// A small deterministic generator (xorshift64*), so a failure replays.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }
}

const KEYS: &[&str] = &["k0", "k1", "k2", "k3"];
const MEMBERS: &[&str] = &["a", "b", "c"];
const SCORES: &[&str] = &["1", "2", "-0", "0", "inf", "-inf", "2.5"];
const LONGITUDES: &[&str] = &["1", "2", "3"];

fn args(words: &[String]) -> Vec<Bytes> {
    words
        .iter()
        .map(|w| Bytes::copy_from_slice(w.as_bytes()))
        .collect()
}

/// Some members (1 to 3, repeats allowed).
fn members(rng: &mut Rng) -> Vec<String> {
    (0..1 + rng.below(3))
        .map(|_| rng.pick(MEMBERS).to_string())
        .collect()
}

/// `SETBIT key` of one of the first 20 bits.
fn setbit(rng: &mut Rng, key: String) -> Vec<String> {
    let offset = rng.below(20).to_string();
    vec!["setbit".into(), key, offset, rng.below(2).to_string()]
}

/// A write that shapes the map: any type, some keys with short TTLs.
fn shaping(rng: &mut Rng) -> Vec<String> {
    let key = rng.pick(KEYS).to_string();
    let mut words: Vec<String> = match rng.below(12) {
        9 => setbit(rng, key),
        10 => vec!["pfadd".into(), key, rng.pick(MEMBERS).into()],
        11 => vec![
            "geoadd".into(),
            key,
            rng.pick(LONGITUDES).into(),
            "10".into(),
            rng.pick(MEMBERS).into(),
        ],
        0 => vec!["sadd".into(), key],
        1 => vec!["zadd".into(), key],
        2 => vec!["hset".into(), key],
        3 => vec!["rpush".into(), key],
        4 => vec![
            "set".into(),
            key,
            "v".into(),
            "px".into(),
            (1 + rng.below(40)).to_string(),
        ],
        5 => vec!["set".into(), key, "v".into()],
        6 => vec!["del".into(), key],
        7 => vec!["pexpire".into(), key, (1 + rng.below(40)).to_string()],
        _ => vec!["srem".into(), key],
    };
    match words[0].as_str() {
        "sadd" | "srem" | "rpush" => words.extend(members(rng)),
        "zadd" => {
            for m in members(rng) {
                words.push(rng.pick(SCORES).to_string());
                words.push(m);
            }
        }
        "hset" => {
            for m in members(rng) {
                words.push(m);
                words.push("v".into());
            }
        }
        _ => {}
    }
    words
}

/// A command of a row with a probe (the probed forms and their neighbours).
fn probed(rng: &mut Rng) -> Vec<String> {
    let key = rng.pick(KEYS).to_string();
    let mut words: Vec<String> = match rng.below(19) {
        16 => setbit(rng, key),
        17 => {
            let mut w = vec!["pfadd".into(), key];
            w.extend(members(rng).into_iter().take(rng.below(3)));
            return w;
        }
        18 => {
            let mut w = vec!["geoadd".into(), key];
            for flag in ["nx", "xx", "ch"] {
                if rng.below(4) == 0 {
                    w.push(flag.into());
                }
            }
            w.extend([
                rng.pick(LONGITUDES).into(),
                "10".into(),
                rng.pick(MEMBERS).into(),
            ]);
            if crate::kv::table::testing::check(&w.join(" ")).is_err() {
                w = vec![
                    "geoadd".into(),
                    w[1].clone(),
                    "1".into(),
                    "10".into(),
                    "a".into(),
                ];
            }
            return w;
        }
        0 => vec!["sadd".into(), key],
        1 => vec!["srem".into(), key],
        2 | 3 => {
            let mut w = vec!["zadd".into(), key];
            for flag in ["nx", "xx", "gt", "lt", "ch"] {
                if rng.below(4) == 0 {
                    w.push(flag.into());
                }
            }
            for m in members(rng) {
                w.push(rng.pick(SCORES).to_string());
                w.push(m);
            }
            // Incompatible flags are the check's to refuse.
            if crate::kv::table::testing::check(&w.join(" ")).is_err() {
                w = vec!["zadd".into(), w[1].clone(), "1".into(), "a".into()];
            }
            return w;
        }
        4 => vec!["zrem".into(), key],
        5 => vec!["hdel".into(), key],
        6 => vec!["hsetnx".into(), key, rng.pick(MEMBERS).into(), "v".into()],
        7 => vec!["setnx".into(), key, "v".into()],
        8 => {
            let mut w = vec![
                "set".into(),
                key,
                "v".into(),
                rng.pick(&["nx", "xx"]).into(),
            ];
            match rng.below(4) {
                0 => w.push("get".into()),
                1 => w.extend(["px".into(), "50".into()]),
                2 => w.push("keepttl".into()),
                _ => {}
            }
            return w;
        }
        9 => vec![
            "msetnx".into(),
            key,
            "v".into(),
            rng.pick(KEYS).into(),
            "w".into(),
        ],
        10 => vec!["del".into(), key, rng.pick(KEYS).into()],
        11 => vec!["unlink".into(), key],
        12 => vec!["lpushx".into(), key, "x".into()],
        13 => vec!["rpushx".into(), key, "x".into()],
        14 => vec!["lpop".into(), key],
        _ => {
            let mut w = vec!["rpop".into(), key];
            if rng.below(2) == 0 {
                w.push(rng.below(3).to_string());
            }
            return w;
        }
    };
    if matches!(words[0].as_str(), "sadd" | "srem" | "zrem" | "hdel") {
        words.extend(members(rng));
    }
    words
}

/// Every key's value and TTL, in every database.
fn data(db: &Db) -> Vec<(usize, Bytes, Value, Option<u64>)> {
    db.dbs
        .iter()
        .enumerate()
        .flat_map(|(i, ks)| {
            ks.map
                .iter()
                .map(move |(k, e)| (i, k.to_bytes(), e.value.clone(), e.expires_at_ms()))
        })
        .collect()
}

#[test]
fn a_write_the_probe_answers_gets_that_answer_from_apply_and_changes_nothing() {
    let mut rng = Rng(0x5eed_1234_abcd_0001);
    let mut db = Db::new();
    let mut now = 1_000_000u64;
    let (mut answered, mut declined) = (0usize, 0usize);
    for round in 0..40_000 {
        now += rng.below(4) as u64;
        if rng.below(2) == 0 {
            let op = Op::Exec {
                db: 0,
                args: args(&shaping(&mut rng)),
            };
            db.apply(&Command { ts_ms: now, op });
            continue;
        }
        let words = probed(&mut rng);
        let op = if words[0] == "del" && rng.below(2) == 0 {
            Op::Del {
                keys: args(&words[1..]),
            }
        } else {
            Op::Exec {
                db: 0,
                args: args(&words),
            }
        };
        let Some(expected) = db.unchanged(&op, now) else {
            declined += 1;
            continue;
        };
        answered += 1;
        let before = data(&db);
        let mut applied = db.clone();
        let output = applied.apply(&Command { ts_ms: now, op });
        assert_eq!(output, expected, "round {round}: {}", words.join(" "));
        assert!(
            data(&applied) == before,
            "round {round}: {} changed the data",
            words.join(" ")
        );
    }
    // Both ways taken often: the test cannot pass by answering nothing.
    assert!(
        answered > 5_000 && declined > 5_000,
        "{answered} {declined}"
    );
}

#[test]
fn writes_without_a_probe_or_over_maxmemory_are_not_answered() {
    let mut db = Db::new();
    let exec = |words: &str| Op::Exec {
        db: 0,
        args: words
            .split(' ')
            .map(|w| Bytes::copy_from_slice(w.as_bytes()))
            .collect(),
    };
    db.apply(&Command {
        ts_ms: 1,
        op: exec("sadd s a"),
    });
    assert_eq!(db.unchanged(&exec("sadd s a"), 1), Some(Output::Integer(0)));
    // No probe: always the log.
    assert_eq!(db.unchanged(&exec("incrby n 0"), 1), None);
    assert_eq!(
        db.unchanged(
            &Op::Set {
                key: "s".into(),
                value: "v".into()
            },
            1
        ),
        None
    );
    // A wrong database index or bad arguments: apply's to answer.
    let bad_db = Op::Exec {
        db: 99,
        args: vec!["sadd".into(), "s".into(), "a".into()],
    };
    assert_eq!(db.unchanged(&bad_db, 1), None);
    assert_eq!(db.unchanged(&exec("zadd s nx xx 1 a"), 1), None);
    // Over maxmemory a denyoom write is refused whatever the data.
    db.apply(&Command {
        ts_ms: 2,
        op: exec("config set maxmemory 1"),
    });
    assert!(db.out_of_memory());
    assert_eq!(db.unchanged(&exec("sadd s a"), 2), None);
    // SREM is not denyoom: still answered.
    assert_eq!(db.unchanged(&exec("srem s z"), 2), Some(Output::Integer(0)));
}
