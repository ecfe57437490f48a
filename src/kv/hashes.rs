//! Hash commands.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::errors::{NAN_OR_INF, NOT_FLOAT, NOT_INTEGER, OVERFLOW, SYNTAX, WRONGTYPE};
use super::keys::{parse_cursor, parse_scan_options};
use super::{float, glob, mix, parse_i64, Ctx, Db, Output, Value};

type Hash = BTreeMap<Bytes, Bytes>;

fn read_hash<'a>(db: &'a Db, ctx: &Ctx, key: &[u8]) -> Result<Option<&'a Hash>, Output> {
    match db.lookup_read(ctx.db, key, ctx.now).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(Output::err(WRONGTYPE)),
    }
}

/// For a write: `Ok(true)` if a hash exists, `Ok(false)` if the key is absent.
fn write_hash(db: &mut Db, ctx: &Ctx, key: &[u8]) -> Result<bool, Output> {
    match db.lookup_write(ctx.db, key).map(|e| &e.value) {
        None => Ok(false),
        Some(Value::Hash(_)) => Ok(true),
        Some(_) => Err(Output::err(WRONGTYPE)),
    }
}

/// Runs `f` on the hash at `key`, creating it if absent; deletes it if `f`
/// leaves it empty.
fn with_hash<R>(
    db: &mut Db,
    ctx: &Ctx,
    key: &Bytes,
    f: impl FnOnce(&mut Hash) -> R,
) -> Result<R, Output> {
    if !write_hash(db, ctx, key)? {
        db.put(ctx.db, key.clone(), Value::Hash(Hash::new()), None);
    }
    let result = db
        .modify(ctx.db, key, |v| match v {
            Value::Hash(h) => f(h),
            _ => unreachable!("checked to be a hash above"),
        })
        .expect("the hash exists: checked or created above");
    if matches!(db.dbs[ctx.db].map.get(&key[..]).map(|e| &e.value), Some(Value::Hash(h)) if h.is_empty())
    {
        db.remove(ctx.db, key);
    }
    Ok(result)
}

fn wrong_arity(name: &str) -> Output {
    Output::err(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

fn hset_generic(db: &mut Db, ctx: &Ctx, args: &[Bytes], name: &str) -> Result<i64, Output> {
    if args.len() % 2 == 1 {
        return Err(wrong_arity(name));
    }
    with_hash(db, ctx, &args[1], |h| {
        args[2..]
            .chunks(2)
            .filter(|p| h.insert(p[0].clone(), p[1].clone()).is_none())
            .count() as i64
    })
}

pub(crate) fn hset(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    hset_generic(db, ctx, args, "hset").map_or_else(|e| e, Output::Integer)
}

pub(crate) fn hmset(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    hset_generic(db, ctx, args, "hmset").map_or_else(|e| e, |_| Output::Ok)
}

pub(crate) fn hsetnx(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match write_hash(db, ctx, &args[1]) {
        Err(e) => return e,
        Ok(true) => {
            let exists = matches!(&db.dbs[ctx.db].map[&args[1][..]].value, Value::Hash(h) if h.contains_key(&args[2][..]));
            if exists {
                return Output::Integer(0);
            }
        }
        Ok(false) => {}
    }
    let set = with_hash(db, ctx, &args[1], |h| {
        h.insert(args[2].clone(), args[3].clone());
    });
    set.map_or_else(|e| e, |_| Output::Integer(1))
}

pub(crate) fn hget(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match read_hash(db, ctx, &args[1]) {
        Ok(h) => Output::Bulk(h.and_then(|h| h.get(&args[2][..]).cloned())),
        Err(e) => e,
    }
}

pub(crate) fn hmget(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match read_hash(db, ctx, &args[1]) {
        Ok(h) => Output::Array(
            args[2..]
                .iter()
                .map(|f| Output::Bulk(h.and_then(|h| h.get(&f[..]).cloned())))
                .collect(),
        ),
        Err(e) => e,
    }
}

pub(crate) fn hgetall(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match read_hash(db, ctx, &args[1]) {
        Ok(h) => Output::Map(
            h.into_iter()
                .flatten()
                .map(|(f, v)| (Output::bulk(f.clone()), Output::bulk(v.clone())))
                .collect(),
        ),
        Err(e) => e,
    }
}

pub(crate) fn hdel(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match write_hash(db, ctx, &args[1]) {
        Err(e) => e,
        Ok(false) => Output::Integer(0),
        Ok(true) => with_hash(db, ctx, &args[1], |h| {
            args[2..]
                .iter()
                .filter(|f| h.remove(&f[..]).is_some())
                .count() as i64
        })
        .map_or_else(|e| e, Output::Integer),
    }
}

pub(crate) fn hexists(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match read_hash(db, ctx, &args[1]) {
        Ok(h) => Output::Integer(i64::from(h.is_some_and(|h| h.contains_key(&args[2][..])))),
        Err(e) => e,
    }
}

pub(crate) fn hincrby(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    let Some(incr) = parse_i64(&args[3]) else {
        return Output::err(NOT_INTEGER);
    };
    let result = with_hash(db, ctx, &args[1], |h| {
        let value = match h.get(&args[2][..]) {
            None => 0,
            Some(v) => match parse_i64(v) {
                Some(v) => v,
                None => return Output::err("ERR hash value is not an integer"),
            },
        };
        match value.checked_add(incr) {
            None => Output::err(OVERFLOW),
            Some(n) => {
                h.insert(args[2].clone(), Bytes::from(n.to_string()));
                Output::Integer(n)
            }
        }
    });
    result.unwrap_or_else(|e| e)
}

pub(crate) fn hincrbyfloat(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    let Some(incr) = float::LongDouble::parse(&args[3]) else {
        return Output::err(NOT_FLOAT);
    };
    if !incr.is_finite() {
        return Output::err("ERR value is NaN or Infinity");
    }
    let result = with_hash(db, ctx, &args[1], |h| {
        let value = match h.get(&args[2][..]) {
            None => float::LongDouble::ZERO,
            Some(v) => match float::LongDouble::parse(v) {
                Some(v) => v,
                None => return Output::err("ERR hash value is not a float"),
            },
        };
        let sum = value.add(&incr);
        if !sum.is_finite() {
            return Output::err(NAN_OR_INF);
        }
        let text = Bytes::from(sum.to_human());
        h.insert(args[2].clone(), text.clone());
        Output::bulk(text)
    });
    result.unwrap_or_else(|e| e)
}

pub(crate) fn hlen(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match read_hash(db, ctx, &args[1]) {
        Ok(h) => Output::Integer(h.map_or(0, |h| h.len() as i64)),
        Err(e) => e,
    }
}

pub(crate) fn hkeys(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match read_hash(db, ctx, &args[1]) {
        Ok(h) => Output::Array(
            h.into_iter()
                .flatten()
                .map(|(f, _)| Output::bulk(f.clone()))
                .collect(),
        ),
        Err(e) => e,
    }
}

pub(crate) fn hvals(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match read_hash(db, ctx, &args[1]) {
        Ok(h) => Output::Array(
            h.into_iter()
                .flatten()
                .map(|(_, v)| Output::bulk(v.clone()))
                .collect(),
        ),
        Err(e) => e,
    }
}

pub(crate) fn hstrlen(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match read_hash(db, ctx, &args[1]) {
        Ok(h) => Output::Integer(
            h.and_then(|h| h.get(&args[2][..]))
                .map_or(0, |v| v.len() as i64),
        ),
        Err(e) => e,
    }
}

/// HSCAN returns the whole hash in one reply (cursor 0), as Redis does for
/// small (listpack) hashes; COUNT is only a hint in Redis too.
pub(crate) fn hscan(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    // Redis 7.0 order: cursor, then the key (absent: an empty scan, options
    // unchecked; WRONGTYPE), then the options.
    if let Err(e) = parse_cursor(&args[2]) {
        return e;
    }
    let h = match read_hash(db, ctx, &args[1]) {
        Ok(Some(h)) => h,
        Ok(None) => return Output::Array(vec![Output::bulk("0"), Output::Array(vec![])]),
        Err(e) => return e,
    };
    let o = match parse_scan_options(args, 3, false) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let mut items = Vec::new();
    for (f, v) in h {
        if o.pattern
            .as_ref()
            .is_none_or(|p| glob::matches(p, f, false))
        {
            items.push(Output::bulk(f.clone()));
            items.push(Output::bulk(v.clone()));
        }
    }
    Output::Array(vec![Output::bulk("0"), Output::Array(items)])
}

/// The most fields `HRANDFIELD key <negative count>` returns.
pub const MAX_RANDOM_FIELDS: i64 = 1_000_000;

pub(crate) fn hrandfield(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    if args.len() == 2 {
        return match read_hash(db, ctx, &args[1]) {
            Ok(Some(h)) => {
                let i = (mix(ctx.seed) % h.len() as u64) as usize;
                Output::Bulk(h.keys().nth(i).cloned())
            }
            Ok(None) => Output::NIL,
            Err(e) => e,
        };
    }
    let count = match parse_i64(&args[2]) {
        None => return Output::err(NOT_INTEGER),
        Some(i64::MIN) => {
            return Output::err(
                "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
            )
        }
        Some(n) => n,
    };
    if args.len() > 4 || (args.len() == 4 && !args[3].eq_ignore_ascii_case(b"withvalues")) {
        return Output::err(SYNTAX);
    }
    let with_values = args.len() == 4;
    if with_values && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
        return Output::err("ERR value is out of range");
    }
    let h = match read_hash(db, ctx, &args[1]) {
        Ok(Some(h)) => h,
        Ok(None) => return Output::Array(vec![]),
        Err(e) => return e,
    };
    if count == 0 {
        return Output::Array(vec![]);
    }
    // A negative count repeats fields, so the reply is as long as the client
    // asks; Redis streams it, dkv builds it in memory (in apply, inside MULTI),
    // so it is bounded (DoS and crash guard, not a Redis rule).
    if count < -MAX_RANDOM_FIELDS {
        return Output::err(format!(
            "ERR count is out of range (dkv returns at most {MAX_RANDOM_FIELDS} repeated random fields)"
        ));
    }
    let fields: Vec<(&Bytes, &Bytes)> = h.iter().collect();
    let mut seed = ctx.seed;
    let picks: Vec<usize> = if count < 0 {
        (0..count.unsigned_abs())
            .map(|_| {
                seed = mix(seed);
                (seed % fields.len() as u64) as usize
            })
            .collect()
    } else if count as usize >= fields.len() {
        (0..fields.len()).collect()
    } else {
        // A deterministic partial Fisher-Yates shuffle.
        let mut order: Vec<usize> = (0..fields.len()).collect();
        for i in 0..count as usize {
            seed = mix(seed);
            let j = i + (seed % (order.len() - i) as u64) as usize;
            order.swap(i, j);
        }
        order.truncate(count as usize);
        order
    };
    if with_values {
        let pairs = picks
            .into_iter()
            .map(|i| {
                (
                    Output::bulk(fields[i].0.clone()),
                    Output::bulk(fields[i].1.clone()),
                )
            })
            .collect();
        return Output::Pairs(pairs);
    }
    Output::Array(
        picks
            .into_iter()
            .map(|i| Output::bulk(fields[i].0.clone()))
            .collect(),
    )
}

// ---- definitions -------------------------------------------------------------

use super::table::{unchecked_read, unchecked_write};
use crate::cmd::cat::*;
use crate::cmd::{read, write, CommandSpec, K1};

const HASH_GROUP: &str = "@hash";

/// This group's command definitions (see `crate::cmd`).
pub(crate) static COMMANDS: &[CommandSpec] = &[
    write(
        "hset",
        -4,
        F_FAST_DENYOOM,
        HASH_GROUP,
        K1,
        unchecked_write(hset),
    )
    .acl(cats(&[WRITE, HASH, FAST]), (KA_W, KA_W)),
    write(
        "hmset",
        -4,
        F_FAST_DENYOOM,
        HASH_GROUP,
        K1,
        unchecked_write(hmset),
    )
    .acl(cats(&[WRITE, HASH, FAST]), (KA_W, KA_W)),
    write(
        "hsetnx",
        4,
        F_FAST_DENYOOM,
        HASH_GROUP,
        K1,
        unchecked_write(hsetnx),
    )
    .acl(cats(&[WRITE, HASH, FAST]), (KA_W, KA_W)),
    read("hget", 3, F_FAST, HASH_GROUP, K1, unchecked_read(hget))
        .acl(cats(&[READ, HASH, FAST]), (KA_R, KA_R)),
    read("hmget", -3, F_FAST, HASH_GROUP, K1, unchecked_read(hmget))
        .acl(cats(&[READ, HASH, FAST]), (KA_R, KA_R)),
    read(
        "hgetall",
        2,
        F_NONE,
        HASH_GROUP,
        K1,
        unchecked_read(hgetall),
    )
    .acl(cats(&[READ, HASH, SLOW]), (KA_R, KA_R)),
    write("hdel", -3, F_FAST, HASH_GROUP, K1, unchecked_write(hdel))
        .acl(cats(&[WRITE, HASH, FAST]), (KA_W, KA_W)),
    read(
        "hexists",
        3,
        F_FAST,
        HASH_GROUP,
        K1,
        unchecked_read(hexists),
    )
    .acl(cats(&[READ, HASH, FAST]), (KA_NONE, KA_NONE)),
    write(
        "hincrby",
        4,
        F_FAST_DENYOOM,
        HASH_GROUP,
        K1,
        unchecked_write(hincrby),
    )
    .acl(cats(&[WRITE, HASH, FAST]), (KA_RW, KA_RW)),
    write(
        "hincrbyfloat",
        4,
        F_FAST_DENYOOM,
        HASH_GROUP,
        K1,
        unchecked_write(hincrbyfloat),
    )
    .acl(cats(&[WRITE, HASH, FAST]), (KA_RW, KA_RW)),
    read("hlen", 2, F_FAST, HASH_GROUP, K1, unchecked_read(hlen))
        .acl(cats(&[READ, HASH, FAST]), (KA_NONE, KA_NONE)),
    read("hkeys", 2, F_NONE, HASH_GROUP, K1, unchecked_read(hkeys))
        .acl(cats(&[READ, HASH, SLOW]), (KA_R, KA_R)),
    read("hvals", 2, F_NONE, HASH_GROUP, K1, unchecked_read(hvals))
        .acl(cats(&[READ, HASH, SLOW]), (KA_R, KA_R)),
    read(
        "hstrlen",
        3,
        F_FAST,
        HASH_GROUP,
        K1,
        unchecked_read(hstrlen),
    )
    .acl(cats(&[READ, HASH, FAST]), (KA_NONE, KA_NONE)),
    read("hscan", -3, F_NONE, HASH_GROUP, K1, unchecked_read(hscan))
        .acl(cats(&[READ, HASH, SLOW]), (KA_R, KA_R)),
    read(
        "hrandfield",
        -2,
        F_NONE,
        HASH_GROUP,
        K1,
        unchecked_read(hrandfield),
    )
    .acl(cats(&[READ, HASH, SLOW]), (KA_R, KA_R)),
];
