//! Key-space commands: DEL, EXISTS, TYPE, RENAME, COPY, MOVE, RANDOMKEY, KEYS,
//! SCAN, DBSIZE, FLUSHDB/FLUSHALL, SWAPDB, and SELECT/PING/ECHO inside MULTI.
//!
//! SCAN's cursor is a creation sequence number: keys are walked in the order
//! they were created (a replaced value keeps its place), so a key present for
//! the whole scan is returned exactly once, and deleted keys leave no gap.

use bytes::Bytes;

use super::errors::{DB_RANGE, NOT_INTEGER, NO_SUCH_KEY, SAME_OBJECT, SYNTAX};
use super::{glob, mix, parse_i64, Ctx, Db, Output, DATABASES};

pub(crate) fn del(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    let mut removed = 0;
    for key in &args[1..] {
        db.expire_if_needed(ctx.db, key);
        if db.remove(ctx.db, key).is_some() {
            removed += 1;
        }
    }
    Output::Integer(removed)
}

pub(crate) fn exists(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    Output::Integer(
        args[1..]
            .iter()
            .filter(|k| db.lookup_read(ctx.db, k, ctx.now).is_some())
            .count() as i64,
    )
}

pub(crate) fn type_(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    let name = db
        .lookup_read(ctx.db, &args[1], ctx.now)
        .map_or("none", |e| e.value.type_name());
    Output::Status(name.to_string())
}

/// Redis's `getIntFromObjectOrReply` for a database index.
fn parse_db(arg: &[u8], error: &str) -> Result<i64, Output> {
    match parse_i64(arg) {
        Some(n) if i32::try_from(n).is_ok() => Ok(n),
        _ => Err(Output::err(error)),
    }
}

fn db_index(n: i64) -> Result<usize, Output> {
    usize::try_from(n)
        .ok()
        .filter(|&i| i < DATABASES)
        .ok_or_else(|| Output::err(DB_RANGE))
}

fn rename_generic(db: &mut Db, ctx: &Ctx, args: &[Bytes], nx: bool) -> Output {
    let (src, dst) = (&args[1], &args[2]);
    let Some(entry) = db.lookup_write(ctx.db, src) else {
        return Output::err(NO_SUCH_KEY);
    };
    if src == dst {
        return if nx { Output::Integer(0) } else { Output::Ok };
    }
    let (value, ttl) = (entry.value.clone(), entry.expires_at_ms);
    if db.lookup_write(ctx.db, dst).is_some() {
        if nx {
            return Output::Integer(0);
        }
        db.remove(ctx.db, dst);
    }
    db.remove(ctx.db, src);
    db.put(ctx.db, dst.clone(), value, ttl);
    if nx {
        Output::Integer(1)
    } else {
        Output::Ok
    }
}

pub(crate) fn rename(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    rename_generic(db, ctx, args, false)
}

pub(crate) fn renamenx(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    rename_generic(db, ctx, args, true)
}

pub(crate) fn copy(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    let (src, dst) = (&args[1], &args[2]);
    let mut target = ctx.db;
    let mut replace = false;
    let mut j = 3;
    while j < args.len() {
        if args[j].eq_ignore_ascii_case(b"replace") {
            replace = true;
        } else if args[j].eq_ignore_ascii_case(b"db") && j + 1 < args.len() {
            target = match parse_db(&args[j + 1], NOT_INTEGER).and_then(db_index) {
                Ok(t) => t,
                Err(e) => return e,
            };
            j += 1;
        } else {
            return Output::err(SYNTAX);
        }
        j += 1;
    }
    if target == ctx.db && src == dst {
        return Output::err(SAME_OBJECT);
    }
    let Some(entry) = db.lookup_write(ctx.db, src) else {
        return Output::Integer(0);
    };
    let (value, ttl) = (entry.value.clone(), entry.expires_at_ms);
    if db.lookup_write(target, dst).is_some() {
        if !replace {
            return Output::Integer(0);
        }
        db.remove(target, dst);
    }
    db.put(target, dst.clone(), value, ttl);
    Output::Integer(1)
}

pub(crate) fn move_(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    let target = match parse_db(&args[2], NOT_INTEGER).and_then(db_index) {
        Ok(t) => t,
        Err(e) => return e,
    };
    if target == ctx.db {
        return Output::err(SAME_OBJECT);
    }
    let key = &args[1];
    let Some(entry) = db.lookup_write(ctx.db, key) else {
        return Output::Integer(0);
    };
    let (value, ttl) = (entry.value.clone(), entry.expires_at_ms);
    if db.lookup_write(target, key).is_some() {
        return Output::Integer(0);
    }
    db.remove(ctx.db, key);
    db.put(target, key.clone(), value, ttl);
    Output::Integer(1)
}

pub(crate) fn randomkey(db: &Db, ctx: &Ctx, _: &[Bytes]) -> Output {
    let ks = &db.dbs[ctx.db];
    let (Some((&first, _)), Some((&last, _))) =
        (ks.by_seq.first_key_value(), ks.by_seq.last_key_value())
    else {
        return Output::NIL;
    };
    let mut seed = ctx.seed;
    for _ in 0..100 {
        seed = mix(seed);
        let pick = first + seed % (last - first + 1);
        if let Some((_, key)) = ks.by_seq.range(pick..).next() {
            if ks.live(key, ctx.now).is_some() {
                return Output::bulk(key.clone());
            }
        }
    }
    ks.by_seq
        .values()
        .find(|k| ks.live(k, ctx.now).is_some())
        .map_or(Output::NIL, |k| Output::bulk(k.clone()))
}

pub(crate) fn keys(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    let pattern = &args[1];
    let all = &pattern[..] == b"*";
    let ks = &db.dbs[ctx.db];
    Output::Array(
        ks.by_seq
            .values()
            .filter(|k| (all || glob::matches(pattern, k, false)) && ks.live(k, ctx.now).is_some())
            .map(|k| Output::bulk(k.clone()))
            .collect(),
    )
}

/// SCAN-family options: MATCH, COUNT and (for SCAN) TYPE.
pub(crate) struct ScanOptions {
    pub pattern: Option<Bytes>,
    pub count: usize,
    pub type_name: Option<Bytes>,
}

/// Redis's cursor parse (`strtoul` on the whole argument): an optional sign,
/// decimal digits, a negative value wraps; the empty string is 0; leading
/// space, other characters or overflow are `invalid cursor`.
pub(crate) fn parse_cursor(arg: &[u8]) -> Result<u64, Output> {
    let invalid = || Output::err("ERR invalid cursor");
    if arg.is_empty() {
        return Ok(0);
    }
    let (negative, digits) = match arg[0] {
        b'-' => (true, &arg[1..]),
        b'+' => (false, &arg[1..]),
        _ => (false, arg),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let mut value: u64 = 0;
    for &d in digits {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or_else(invalid)?;
    }
    Ok(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

pub(crate) fn parse_scan_options(
    args: &[Bytes],
    first: usize,
    allow_type: bool,
) -> Result<ScanOptions, Output> {
    let mut o = ScanOptions {
        pattern: None,
        count: 10,
        type_name: None,
    };
    let mut j = first;
    while j < args.len() {
        let more = args.len() - j - 1;
        if args[j].eq_ignore_ascii_case(b"count") && more >= 1 {
            match parse_i64(&args[j + 1]) {
                None => return Err(Output::err(NOT_INTEGER)),
                Some(n) if n < 1 => return Err(Output::err(SYNTAX)),
                Some(n) => o.count = n as usize,
            }
            j += 2;
        } else if args[j].eq_ignore_ascii_case(b"match") && more >= 1 {
            let p = args[j + 1].clone();
            o.pattern = if &p[..] == b"*" { None } else { Some(p) };
            j += 2;
        } else if allow_type && args[j].eq_ignore_ascii_case(b"type") && more >= 1 {
            o.type_name = Some(args[j + 1].clone());
            j += 2;
        } else {
            return Err(Output::err(SYNTAX));
        }
    }
    Ok(o)
}

pub(crate) fn scan(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    let cursor = match parse_cursor(&args[1]) {
        Ok(c) => c,
        Err(e) => return e,
    };
    let o = match parse_scan_options(args, 2, true) {
        Ok(o) => o,
        Err(e) => return e,
    };
    let ks = &db.dbs[ctx.db];
    let mut found = Vec::new();
    let mut next = 0;
    for (visited, (&seq, key)) in ks.by_seq.range(cursor.max(1)..).enumerate() {
        if visited == o.count {
            next = seq;
            break;
        }
        let Some(entry) = ks.live(key, ctx.now) else {
            continue;
        };
        if let Some(p) = &o.pattern {
            if !glob::matches(p, key, false) {
                continue;
            }
        }
        if let Some(t) = &o.type_name {
            if !t.eq_ignore_ascii_case(entry.value.type_name().as_bytes()) {
                continue;
            }
        }
        found.push(Output::bulk(key.clone()));
    }
    Output::Array(vec![Output::bulk(next.to_string()), Output::Array(found)])
}

pub(crate) fn dbsize(db: &Db, ctx: &Ctx, _: &[Bytes]) -> Output {
    Output::Integer(db.dbs[ctx.db].live_len(ctx.now) as i64)
}

fn flush_mode_ok(args: &[Bytes]) -> bool {
    match args.len() {
        1 => true,
        2 => args[1].eq_ignore_ascii_case(b"sync") || args[1].eq_ignore_ascii_case(b"async"),
        _ => false,
    }
}

pub(crate) fn flushdb(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    if !flush_mode_ok(args) {
        return Output::err(SYNTAX);
    }
    db.flush(ctx.db);
    Output::Ok
}

pub(crate) fn flushall(db: &mut Db, _: &Ctx, args: &[Bytes]) -> Output {
    if !flush_mode_ok(args) {
        return Output::err(SYNTAX);
    }
    for i in 0..DATABASES {
        db.flush(i);
    }
    Output::Ok
}

pub(crate) fn swapdb(db: &mut Db, _: &Ctx, args: &[Bytes]) -> Output {
    let a = match parse_db(&args[1], "ERR invalid first DB index") {
        Ok(a) => a,
        Err(e) => return e,
    };
    let b = match parse_db(&args[2], "ERR invalid second DB index") {
        Ok(b) => b,
        Err(e) => return e,
    };
    match (db_index(a), db_index(b)) {
        (Ok(a), Ok(b)) => {
            db.swap(a, b);
            Output::Ok
        }
        _ => Output::err(DB_RANGE),
    }
}

// ---- definitions -------------------------------------------------------------

use super::table::{unchecked_read, unchecked_write};
use crate::cmd::cat::*;
use crate::cmd::{read, write, CommandSpec, K1, K12, KN, NO_KEYS};

const KEY_GROUP: &str = "@keyspace";

/// This group's command definitions (see `crate::cmd`).
pub(crate) static COMMANDS: &[CommandSpec] = &[
    write("del", -2, F_NONE, KEY_GROUP, KN, unchecked_write(del))
        .acl(cats(&[KEYSPACE, WRITE, SLOW]), (KA_W, KA_W)),
    write("unlink", -2, F_FAST, KEY_GROUP, KN, unchecked_write(del))
        .acl(cats(&[KEYSPACE, WRITE, FAST]), (KA_W, KA_W)),
    read("exists", -2, F_FAST, KEY_GROUP, KN, unchecked_read(exists))
        .acl(cats(&[KEYSPACE, READ, FAST]), (KA_NONE, KA_NONE)),
    read("type", 2, F_FAST, KEY_GROUP, K1, unchecked_read(type_))
        .acl(cats(&[KEYSPACE, READ, FAST]), (KA_NONE, KA_NONE)),
    read("touch", -2, F_FAST, KEY_GROUP, KN, unchecked_read(exists))
        .acl(cats(&[KEYSPACE, READ, FAST]), (KA_NONE, KA_NONE)),
    write("rename", 3, F_NONE, KEY_GROUP, K12, unchecked_write(rename))
        .acl(cats(&[KEYSPACE, WRITE, SLOW]), (KA_RW, KA_W)),
    write(
        "renamenx",
        3,
        F_FAST,
        KEY_GROUP,
        K12,
        unchecked_write(renamenx),
    )
    .acl(cats(&[KEYSPACE, WRITE, FAST]), (KA_RW, KA_W)),
    write("copy", -3, F_DENYOOM, KEY_GROUP, K12, unchecked_write(copy))
        .acl(cats(&[KEYSPACE, WRITE, SLOW]), (KA_R, KA_W)),
    write("move", 3, F_FAST, KEY_GROUP, K1, unchecked_write(move_))
        .acl(cats(&[KEYSPACE, WRITE, FAST]), (KA_RW, KA_RW)),
    read(
        "randomkey",
        1,
        F_NONE,
        KEY_GROUP,
        NO_KEYS,
        unchecked_read(randomkey),
    )
    .acl(cats(&[KEYSPACE, READ, SLOW]), (KA_NONE, KA_NONE)),
    read("keys", 2, F_NONE, KEY_GROUP, NO_KEYS, unchecked_read(keys))
        .acl(cats(&[KEYSPACE, READ, SLOW, DANGEROUS]), (KA_NONE, KA_NONE)),
    read("scan", -2, F_NONE, KEY_GROUP, NO_KEYS, unchecked_read(scan))
        .acl(cats(&[KEYSPACE, READ, SLOW]), (KA_NONE, KA_NONE)),
    read(
        "dbsize",
        1,
        F_FAST,
        KEY_GROUP,
        NO_KEYS,
        unchecked_read(dbsize),
    )
    .acl(cats(&[KEYSPACE, READ, FAST]), (KA_NONE, KA_NONE)),
    write(
        "flushdb",
        -1,
        F_NONE,
        KEY_GROUP,
        NO_KEYS,
        unchecked_write(flushdb),
    )
    .acl(
        cats(&[KEYSPACE, WRITE, SLOW, DANGEROUS]),
        (KA_NONE, KA_NONE),
    ),
    write(
        "flushall",
        -1,
        F_NONE,
        KEY_GROUP,
        NO_KEYS,
        unchecked_write(flushall),
    )
    .acl(
        cats(&[KEYSPACE, WRITE, SLOW, DANGEROUS]),
        (KA_NONE, KA_NONE),
    ),
    write(
        "swapdb",
        3,
        F_FAST,
        KEY_GROUP,
        NO_KEYS,
        unchecked_write(swapdb),
    )
    .acl(
        cats(&[KEYSPACE, WRITE, FAST, DANGEROUS]),
        (KA_NONE, KA_NONE),
    ),
];
