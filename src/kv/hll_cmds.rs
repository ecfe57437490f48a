//! The HyperLogLog commands: PFADD, PFCOUNT, PFMERGE, PFDEBUG and
//! PFSELFTEST, with Redis 7.0's replies, errors and events, on the
//! representation of `hll.rs`.
//!
//! The cached cardinality: Redis's PFCOUNT of one key stores the count it
//! computed into the key's header (a read that writes). dkv's reads never
//! change state, so PFCOUNT computes without storing: the count is the same,
//! but after a PFCOUNT that found the cache stale, bytes 8..16 of the string
//! (GET, DUMP) differ from Redis's (Redis: the count, top bit clear; dkv:
//! still stale, the old bytes with the top bit set). Every write (PFADD,
//! PFMERGE, PFDEBUG) leaves the header as Redis leaves it, so an HLL
//! written by the same commands has Redis's bytes when no PFCOUNT came
//! in between; one restored from Redis (RESTORE, SET) keeps its bytes.
//!
//! Invariants:
//! - An HLL a command wrote is a `raw` string (Redis creates or unshares
//!   it); `hll-sparse-max-bytes` is Redis's default, 3000, fixed (see the
//!   README).
//! - No input makes these panic: the representation is checked
//!   ([`hll::check`]) and decoded with bounds (`hll.rs`).

use bytes::Bytes;

use super::errors::WRONGTYPE;
use super::hll::{self, CORRUPT, DENSE, HDR, REGISTERS, SPARSE_MAX_BYTES_DEFAULT};
use super::notify;
use super::string::Str;
use super::table::{unchecked_read, unchecked_write};
use super::{Ctx, Db, Output, Value};

/// The HLL at `key` for a read: `None` if absent.
fn read_hll<'a>(db: &'a Db, ctx: &Ctx, key: &[u8]) -> Result<Option<&'a [u8]>, Output> {
    match db.lookup_read(ctx.db, key, ctx.now).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Str(s)) => match hll::check(s) {
            Ok(_) => Ok(Some(&s[..])),
            Err(text) => Err(Output::err(text)),
        },
        Some(_) => Err(Output::err(WRONGTYPE)),
    }
}

/// Is the live value at `key` an HLL? `Ok(false)` if absent.
fn check_for_write(db: &mut Db, ctx: &Ctx, key: &[u8]) -> Result<bool, Output> {
    match db.lookup_write(ctx.db, key).map(|e| &e.value) {
        None => Ok(false),
        Some(Value::Str(s)) => hll::check(s).map(|_| true).map_err(Output::err),
        Some(_) => Err(Output::err(WRONGTYPE)),
    }
}

/// Runs `f` on the bytes of the HLL at `key` (present, checked) and stores
/// them back `raw` without counting a modification (the caller does).
fn with_hll<R>(db: &mut Db, ctx: &Ctx, key: &[u8], f: impl FnOnce(&mut Vec<u8>) -> R) -> R {
    let mut f = Some(f);
    let mut result = None;
    db.convert_quietly(ctx.db, key, |value| {
        if let (Value::Str(s), Some(f)) = (value, f.take()) {
            // No copy when the map holds the only reference.
            let mut bytes = Vec::from(std::mem::take(s).into_bytes());
            result = Some(f(&mut bytes));
            *s = Str::raw(Bytes::from(bytes));
        }
    });
    match (result, f) {
        (Some(r), _) => r,
        // Not a string: cannot happen after a check; run on a scratch copy.
        (None, Some(f)) => f(&mut hll::new_sparse()),
        (None, None) => unreachable!("f runs at most once and result is set when it does"),
    }
}

/// `PFADD key [element ...]`.
pub(crate) fn pfadd(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    let key = &args[1];
    let exists = match check_for_write(db, ctx, key) {
        Ok(exists) => exists,
        Err(e) => return e,
    };
    let add_all = |s: &mut Vec<u8>| -> Result<bool, ()> {
        let mut updated = false;
        for element in &args[2..] {
            updated |= hll::add(s, element, SPARSE_MAX_BYTES_DEFAULT)?;
        }
        Ok(updated)
    };
    let updated = if exists {
        match with_hll(db, ctx, key, |s| {
            let updated = add_all(s);
            if updated == Ok(true) {
                hll::invalidate_cache(s);
            }
            updated
        }) {
            Ok(updated) => updated,
            Err(()) => return Output::err(CORRUPT),
        }
    } else {
        let mut s = hll::new_sparse();
        // A new HLL decodes: adding cannot fail.
        let _ = add_all(&mut s);
        hll::invalidate_cache(&mut s);
        db.put(ctx.db, key, Value::Str(Str::raw(Bytes::from(s))), None);
        true
    };
    if updated {
        db.modify(ctx.db, key, |_| ());
        db.notify(notify::STRING, "pfadd", ctx.db, key);
    }
    Output::Integer(i64::from(updated))
}

/// PFADD that changes no register of an HLL already changed in place (PFADD
/// stores it `raw`): `0`. Runs the adds on a copy of the registers.
fn pfadd_unchanged(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Option<Output> {
    match db.probe_key(ctx, &args[1])? {
        Some(Value::Str(s)) if s.origin() == super::string::Origin::InPlace => {
            hll::check(s.bytes()).ok()?;
            let mut copy = s.bytes().to_vec();
            for element in &args[2..] {
                if hll::add(&mut copy, element, SPARSE_MAX_BYTES_DEFAULT).ok()? {
                    return None;
                }
            }
            Some(Output::Integer(0))
        }
        Some(Value::Str(_)) | None => None,
        Some(_) => super::unchanged::wrong_type(),
    }
}

/// `PFCOUNT key [key ...]`: one key answers its cached cardinality, or
/// computes it without storing it (see the module docs); several answer
/// the cardinality of their union.
pub(crate) fn pfcount(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    if args.len() == 2 {
        return match read_hll(db, ctx, &args[1]) {
            Ok(None) => Output::Integer(0),
            Ok(Some(s)) => match hll::cached(s).or_else(|| hll::count(s)) {
                Some(card) => Output::Integer(card as i64),
                None => Output::err(CORRUPT),
            },
            Err(e) => e,
        };
    }
    let mut max = Box::new([0u8; REGISTERS]);
    for key in &args[1..] {
        match read_hll(db, ctx, key) {
            Ok(None) => {}
            Ok(Some(s)) => {
                if hll::merge_into(&mut max, s).is_err() {
                    return Output::err(CORRUPT);
                }
            }
            Err(e) => return e,
        }
    }
    Output::Integer(hll::count_raw(&max) as i64)
}

/// `PFMERGE destkey [sourcekey ...]`: the union of every key (the
/// destination included) stored at the destination, dense if any input
/// was.
pub(crate) fn pfmerge(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    let mut max = Box::new([0u8; REGISTERS]);
    let mut use_dense = false;
    for key in &args[1..] {
        match read_hll(db, ctx, key) {
            Ok(None) => {}
            Ok(Some(s)) => {
                use_dense |= s[4] == DENSE;
                if hll::merge_into(&mut max, s).is_err() {
                    return Output::err(CORRUPT);
                }
            }
            Err(e) => return e,
        }
    }
    let dest = &args[1];
    if !db.exists_for_write(ctx.db, dest) {
        let value = Value::Str(Str::raw(Bytes::from(hll::new_sparse())));
        db.put(ctx.db, dest, value, None);
    }
    let merged = with_hll(db, ctx, dest, |s| -> Result<(), ()> {
        if use_dense {
            *s = hll::to_dense(s).ok_or(())?;
        }
        for (i, &count) in max.iter().enumerate() {
            if count == 0 {
                continue;
            }
            if s[4] == DENSE {
                if count > hll::dense_get(&s[HDR..], i) {
                    hll::dense_set(&mut s[HDR..], i, count);
                }
            } else {
                // Redis ignores a failure here (a corrupt destination).
                let _ = hll::sparse_set(s, i, count, SPARSE_MAX_BYTES_DEFAULT);
            }
        }
        hll::invalidate_cache(s);
        Ok(())
    });
    if merged.is_err() {
        return Output::err(CORRUPT);
    }
    db.modify(ctx.db, dest, |_| ());
    db.notify(notify::STRING, "pfadd", ctx.db, dest);
    Output::Ok
}

/// `PFDEBUG GETREG|DECODE|ENCODING|TODENSE key`: the key is looked up
/// (and unshared: `raw`) before the subcommand is read, as in Redis; an
/// encoding change is no modification (no event, WATCH does not fire).
pub(crate) fn pfdebug(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    let (sub, key) = (&args[1], &args[2]);
    match check_for_write(db, ctx, key) {
        Ok(true) => {}
        Ok(false) => return Output::err("ERR The specified key does not exist"),
        Err(e) => return e,
    }
    let is = |name: &[u8]| sub.eq_ignore_ascii_case(name);
    with_hll(db, ctx, key, |s| {
        let sparse = s[4] != DENSE;
        if is(b"getreg") {
            if sparse {
                match hll::to_dense(s) {
                    Some(dense) => *s = dense,
                    None => return Output::err(CORRUPT),
                }
            }
            let regs = &s[HDR..];
            Output::Array(
                (0..REGISTERS)
                    .map(|i| Output::Integer(i64::from(hll::dense_get(regs, i))))
                    .collect(),
            )
        } else if is(b"decode") {
            if !sparse {
                return Output::err("ERR HLL encoding is not sparse");
            }
            Output::bulk(hll::decode(s))
        } else if is(b"encoding") {
            Output::Status(if sparse { "sparse" } else { "dense" }.to_string())
        } else if is(b"todense") {
            if !sparse {
                return Output::Integer(0);
            }
            match hll::to_dense(s) {
                Some(dense) => {
                    *s = dense;
                    Output::Integer(1)
                }
                None => Output::err(CORRUPT),
            }
        } else {
            Output::err(format!(
                "ERR Unknown PFDEBUG subcommand '{}'",
                String::from_utf8_lossy(sub)
            ))
        }
    })
}

/// `PFSELFTEST`: Redis's self-test of the registers and the estimator
/// (`hll::self_test`); `+OK` or a `TESTFAILED` error. It touches no key:
/// it runs on the connection (about a second, as in Redis).
fn pfselftest(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(match hll::self_test(1000, 10_000_000) {
        Ok(()) => Reply::Simple("OK"),
        Err(text) => Reply::Error(text),
    }))
}

// ---- definitions -------------------------------------------------------------

use crate::acl::Categories as C;
use crate::cmd::cat::*;
use crate::cmd::{read, server, write, CommandSpec, Flags, K1, KN, NO_KEYS};
use crate::server::command::{Action, CommandError, Env, Session};
use crate::server::reply::Reply;

const HLL_GROUP: &str = "@hyperloglog";

/// This group's command definitions (see `crate::cmd`).
pub(crate) static COMMANDS: &[CommandSpec] = &[
    write("pfadd", -2, F_FAST_DENYOOM, HLL_GROUP, K1, unchecked_write(pfadd))
        .unchanged_by(pfadd_unchanged)
        .acl(cats(&[WRITE, C::HYPERLOGLOG, FAST]), (KA_RW, KA_RW))
        .doc("Adds the specified elements to the specified HyperLogLog.", "2.8.9", "O(1) to add every element."),
    read("pfcount", -2, F_NONE, HLL_GROUP, KN, unchecked_read(pfcount))
        .acl(cats(&[READ, C::HYPERLOGLOG, SLOW]), (KA_RW, KA_RW))
        .doc("Return the approximated cardinality of the set(s) observed by the HyperLogLog at key(s).", "2.8.9", "O(1) with a very small average constant time when called with a single key. O(N) with N being the number of keys, and much bigger constant times, when called with multiple keys."),
    write("pfmerge", -2, F_DENYOOM, HLL_GROUP, KN, unchecked_write(pfmerge))
        .acl(cats(&[WRITE, C::HYPERLOGLOG, SLOW]), (KA_RW, KA_R))
        .doc("Merge N different HyperLogLogs into a single one.", "2.8.9", "O(N) to merge N HyperLogLogs, but with high constant times."),
    write("pfdebug", 3, F_DENYOOM.or(Flags::ADMIN), HLL_GROUP, (2, 2, 1), unchecked_write(pfdebug))
        .acl(cats(&[WRITE, C::HYPERLOGLOG, ADMIN, SLOW, DANGEROUS]), (KA_RW, KA_RW))
        .doc("Internal commands for debugging HyperLogLog values", "2.8.9", "N/A"),
    server("pfselftest", 1, Flags::ADMIN, HLL_GROUP, NO_KEYS, pfselftest)
        .acl(cats(&[C::HYPERLOGLOG, ADMIN, SLOW, DANGEROUS]), (KA_NONE, KA_NONE))
        .doc("An internal command for testing HyperLogLog values", "2.8.9", "N/A"),
];

#[cfg(test)]
mod tests;
