//! TTL commands and active expiry.
//!
//! Deadlines are absolute (ms since the epoch) and computed in apply from the
//! entry's time, so they are identical on every replica. Active expiry: the
//! leader asks [`Db::active_expiry_op`] for keys already expired at its clock
//! (the soonest deadlines first, from the per-database deadline index — no
//! random sampling is needed to find them) and proposes their deletion; apply
//! deletes only those still expired at the entry's time.

use bytes::Bytes;

use super::errors::NOT_INTEGER;
use super::{parse_i64, Ctx, Db, Op, Output, DATABASES};

fn invalid(cmd: &str) -> Output {
    Output::err(format!("ERR invalid expire time in '{cmd}' command"))
}

/// Redis's `expireGenericCommand`.
fn expire_generic(
    db: &mut Db,
    ctx: &Ctx,
    args: &[Bytes],
    base: i64,
    seconds: bool,
    cmd: &str,
) -> Output {
    let (mut nx, mut xx, mut gt, mut lt) = (false, false, false, false);
    for opt in &args[3..] {
        if opt.eq_ignore_ascii_case(b"nx") {
            nx = true;
        } else if opt.eq_ignore_ascii_case(b"xx") {
            xx = true;
        } else if opt.eq_ignore_ascii_case(b"gt") {
            gt = true;
        } else if opt.eq_ignore_ascii_case(b"lt") {
            lt = true;
        } else {
            return Output::err(format!(
                "ERR Unsupported option {}",
                String::from_utf8_lossy(opt)
            ));
        }
    }
    if nx && (xx || gt || lt) {
        return Output::err("ERR NX and XX, GT or LT options at the same time are not compatible");
    }
    if gt && lt {
        return Output::err("ERR GT and LT options at the same time are not compatible");
    }
    let Some(mut when) = parse_i64(&args[2]) else {
        return Output::err(NOT_INTEGER);
    };
    if seconds {
        if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when) {
            return invalid(cmd);
        }
        when *= 1000;
    }
    if when > i64::MAX - base {
        return invalid(cmd);
    }
    when += base;
    let Some(entry) = db.lookup_write(ctx.db, &args[1]) else {
        return Output::Integer(0);
    };
    let current = entry.expires_at_ms.map(|at| at as i64);
    if nx && current.is_some() {
        return Output::Integer(0);
    }
    if xx && current.is_none() {
        return Output::Integer(0);
    }
    if gt && current.is_none_or(|c| when <= c) {
        return Output::Integer(0);
    }
    if lt && current.is_some_and(|c| when >= c) {
        return Output::Integer(0);
    }
    if when <= ctx.now as i64 {
        db.remove(ctx.db, &args[1]);
    } else {
        db.set_expiry(ctx.db, &args[1], Some(when as u64));
    }
    Output::Integer(1)
}

pub(crate) fn expire(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    expire_generic(db, ctx, args, ctx.now as i64, true, "expire")
}

pub(crate) fn pexpire(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    expire_generic(db, ctx, args, ctx.now as i64, false, "pexpire")
}

pub(crate) fn expireat(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    expire_generic(db, ctx, args, 0, true, "expireat")
}

pub(crate) fn pexpireat(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    expire_generic(db, ctx, args, 0, false, "pexpireat")
}

/// Redis's `ttlGenericCommand`.
fn ttl_generic(db: &Db, ctx: &Ctx, key: &[u8], ms: bool, absolute: bool) -> Output {
    let Some(entry) = db.dbs[ctx.db].live(key, ctx.now) else {
        return Output::Integer(-2);
    };
    let Some(at) = entry.expires_at_ms else {
        return Output::Integer(-1);
    };
    let ttl = if absolute {
        at as i64
    } else {
        (at as i64 - ctx.now as i64).max(0)
    };
    Output::Integer(if ms { ttl } else { (ttl + 500) / 1000 })
}

pub(crate) fn ttl(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    ttl_generic(db, ctx, &args[1], false, false)
}

pub(crate) fn pttl(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    ttl_generic(db, ctx, &args[1], true, false)
}

pub(crate) fn expiretime(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    ttl_generic(db, ctx, &args[1], false, true)
}

pub(crate) fn pexpiretime(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    ttl_generic(db, ctx, &args[1], true, true)
}

pub(crate) fn persist(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match db.lookup_write(ctx.db, &args[1]) {
        Some(entry) if entry.expires_at_ms.is_some() => {
            db.set_expiry(ctx.db, &args[1], None);
            Output::Integer(1)
        }
        _ => Output::Integer(0),
    }
}

impl Db {
    /// Keys expired at `now_ms` (the leader's clock), at most `limit`, soonest
    /// deadlines first across the databases; `None` when there are none. The
    /// leader proposes the result; apply deletes only keys still expired at the
    /// entry's time and counts them in `expired_keys`.
    pub fn active_expiry_op(&self, now_ms: u64, limit: usize) -> Option<Op> {
        let mut keys = Vec::new();
        for (i, ks) in self.dbs.iter().enumerate().take(DATABASES) {
            for (at, key) in &ks.expiring {
                if keys.len() >= limit || now_ms <= *at {
                    break;
                }
                keys.push((i as u8, key.clone()));
            }
        }
        if keys.is_empty() {
            None
        } else {
            Some(Op::Expire { keys })
        }
    }
}

// ---- definitions -------------------------------------------------------------

use super::table::{unchecked_read, unchecked_write};
use crate::cmd::cat::*;
use crate::cmd::{read, write, CommandSpec, K1};

const KEY_GROUP: &str = "@keyspace";

/// This group's command definitions (see `crate::cmd`).
pub(crate) static COMMANDS: &[CommandSpec] = &[
    write("expire", -3, F_FAST, KEY_GROUP, K1, unchecked_write(expire))
        .acl(cats(&[KEYSPACE, WRITE, FAST]), (KA_W, KA_W)),
    write(
        "pexpire",
        -3,
        F_FAST,
        KEY_GROUP,
        K1,
        unchecked_write(pexpire),
    )
    .acl(cats(&[KEYSPACE, WRITE, FAST]), (KA_W, KA_W)),
    write(
        "expireat",
        -3,
        F_FAST,
        KEY_GROUP,
        K1,
        unchecked_write(expireat),
    )
    .acl(cats(&[KEYSPACE, WRITE, FAST]), (KA_W, KA_W)),
    write(
        "pexpireat",
        -3,
        F_FAST,
        KEY_GROUP,
        K1,
        unchecked_write(pexpireat),
    )
    .acl(cats(&[KEYSPACE, WRITE, FAST]), (KA_W, KA_W)),
    read("ttl", 2, F_FAST, KEY_GROUP, K1, unchecked_read(ttl))
        .acl(cats(&[KEYSPACE, READ, FAST]), (KA_R, KA_R)),
    read("pttl", 2, F_FAST, KEY_GROUP, K1, unchecked_read(pttl))
        .acl(cats(&[KEYSPACE, READ, FAST]), (KA_R, KA_R)),
    read(
        "expiretime",
        2,
        F_FAST,
        KEY_GROUP,
        K1,
        unchecked_read(expiretime),
    )
    .acl(cats(&[KEYSPACE, READ, FAST]), (KA_R, KA_R)),
    read(
        "pexpiretime",
        2,
        F_FAST,
        KEY_GROUP,
        K1,
        unchecked_read(pexpiretime),
    )
    .acl(cats(&[KEYSPACE, READ, FAST]), (KA_R, KA_R)),
    write(
        "persist",
        2,
        F_FAST,
        KEY_GROUP,
        K1,
        unchecked_write(persist),
    )
    .acl(cats(&[KEYSPACE, WRITE, FAST]), (KA_W, KA_W)),
];
