//! TTL commands and active expiry.
//!
//! Deadlines are absolute (ms since the epoch) and computed in apply from the
//! entry's time, so they are identical on every replica. Active expiry: the
//! leader asks [`Db::active_expiry_op`] for keys already expired at its clock
//! (the soonest deadlines first, from the per-database deadline index — no
//! random sampling is needed to find them) and proposes their deletion; apply
//! deletes only those still expired at the entry's time.
//!
//! EXPIRE and its kin parse their options and time before proposing; only
//! the overflow of "now + relative time", which needs the entry's time, is
//! checked by apply (before the key, as Redis).

use bytes::Bytes;

use super::errors::NOT_INTEGER;
use super::notify;
use super::table::{Apply, Parse};
use super::{parse_i64, Ctx, Db, Op, Output, DATABASES};

fn invalid(cmd: &str) -> Output {
    Output::err(format!("ERR invalid expire time in '{cmd}' command"))
}

/// `EXPIRE`, `PEXPIRE`, `EXPIREAT`, `PEXPIREAT key time [NX | XX | GT | LT]`
/// (Redis's `expireGenericCommand`). The options, the time and its unit
/// conversion are checked before proposing; adding a relative time to the
/// entry's now (which may overflow) is apply's, as it needs the time.
pub(crate) struct Expire {
    key: Bytes,
    /// Milliseconds: relative to now, or since the epoch if not `relative`.
    when_ms: i64,
    relative: bool,
    nx: bool,
    xx: bool,
    gt: bool,
    lt: bool,
    cmd: &'static str,
}

impl Parse<'_> for Expire {
    fn parse(args: &[Bytes]) -> Result<Expire, Output> {
        let name = &args[0];
        let (cmd, seconds, relative) = if name.eq_ignore_ascii_case(b"expire") {
            ("expire", true, true)
        } else if name.eq_ignore_ascii_case(b"pexpire") {
            ("pexpire", false, true)
        } else if name.eq_ignore_ascii_case(b"expireat") {
            ("expireat", true, false)
        } else {
            ("pexpireat", false, false)
        };
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
                return Err(Output::err(format!(
                    "ERR Unsupported option {}",
                    String::from_utf8_lossy(opt)
                )));
            }
        }
        if nx && (xx || gt || lt) {
            return Err(Output::err(
                "ERR NX and XX, GT or LT options at the same time are not compatible",
            ));
        }
        if gt && lt {
            return Err(Output::err(
                "ERR GT and LT options at the same time are not compatible",
            ));
        }
        let mut when_ms = parse_i64(&args[2]).ok_or_else(|| Output::err(NOT_INTEGER))?;
        if seconds {
            if !(i64::MIN / 1000..=i64::MAX / 1000).contains(&when_ms) {
                return Err(invalid(cmd));
            }
            when_ms *= 1000;
        }
        Ok(Expire {
            key: args[1].clone(),
            when_ms,
            relative,
            nx,
            xx,
            gt,
            lt,
            cmd,
        })
    }
}

impl Apply<'_> for Expire {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let base = if self.relative { ctx.now as i64 } else { 0 };
        if self.when_ms > i64::MAX - base {
            return invalid(self.cmd);
        }
        let when = self.when_ms + base;
        let Some(entry) = db.lookup_write(ctx.db, &self.key) else {
            return Output::Integer(0);
        };
        let current = entry.expires_at_ms().map(|at| at as i64);
        let refused = (self.nx && current.is_some())
            || (self.xx && current.is_none())
            || (self.gt && current.is_none_or(|c| when <= c))
            || (self.lt && current.is_some_and(|c| when >= c));
        if refused {
            return Output::Integer(0);
        }
        if when <= ctx.now as i64 {
            db.remove(ctx.db, &self.key);
            db.notify(notify::GENERIC, "del", ctx.db, &self.key);
        } else {
            db.set_expiry(ctx.db, &self.key, Some(when as u64));
            db.notify(notify::GENERIC, "expire", ctx.db, &self.key);
        }
        Output::Integer(1)
    }
}

/// Redis's `ttlGenericCommand`.
fn ttl_generic(db: &Db, ctx: &Ctx, key: &[u8], ms: bool, absolute: bool) -> Output {
    let Some(entry) = db.lookup_read_no_touch(ctx.db, key, ctx.now) else {
        return Output::Integer(-2);
    };
    let Some(at) = entry.expires_at_ms() else {
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
        Some(entry) if entry.expires_at_ms().is_some() => {
            db.set_expiry(ctx.db, &args[1], None);
            db.notify(notify::GENERIC, "persist", ctx.db, &args[1]);
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
            for due in &ks.expiring {
                if keys.len() >= limit || now_ms <= due.at {
                    break;
                }
                keys.push((i as u8, due.key.to_bytes()));
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

use super::table::{typed_write, unchecked_read, unchecked_write};
use crate::cmd::cat::*;
use crate::cmd::{read, write, CommandSpec, K1};

const KEY_GROUP: &str = "@keyspace";

/// This group's command definitions (see `crate::cmd`).
///
/// The `unchecked_*` rows (TTL ..., PERSIST) take only a key: no argument
/// list of the right arity is a syntax error.
pub(crate) static COMMANDS: &[CommandSpec] = &[
    write("expire", -3, F_FAST, KEY_GROUP, K1, typed_write::<Expire>())
        .acl(cats(&[KEYSPACE, WRITE, FAST]), (KA_W, KA_W))
        .doc("Set a key's time to live in seconds", "1.0.0", "O(1)"),
    write(
        "pexpire",
        -3,
        F_FAST,
        KEY_GROUP,
        K1,
        typed_write::<Expire>(),
    )
    .acl(cats(&[KEYSPACE, WRITE, FAST]), (KA_W, KA_W))
    .doc("Set a key's time to live in milliseconds", "2.6.0", "O(1)"),
    write(
        "expireat",
        -3,
        F_FAST,
        KEY_GROUP,
        K1,
        typed_write::<Expire>(),
    )
    .acl(cats(&[KEYSPACE, WRITE, FAST]), (KA_W, KA_W))
    .doc(
        "Set the expiration for a key as a UNIX timestamp",
        "1.2.0",
        "O(1)",
    ),
    write(
        "pexpireat",
        -3,
        F_FAST,
        KEY_GROUP,
        K1,
        typed_write::<Expire>(),
    )
    .acl(cats(&[KEYSPACE, WRITE, FAST]), (KA_W, KA_W))
    .doc(
        "Set the expiration for a key as a UNIX timestamp specified in milliseconds",
        "2.6.0",
        "O(1)",
    ),
    read("ttl", 2, F_FAST, KEY_GROUP, K1, unchecked_read(ttl))
        .acl(cats(&[KEYSPACE, READ, FAST]), (KA_R, KA_R))
        .doc("Get the time to live for a key in seconds", "1.0.0", "O(1)"),
    read("pttl", 2, F_FAST, KEY_GROUP, K1, unchecked_read(pttl))
        .acl(cats(&[KEYSPACE, READ, FAST]), (KA_R, KA_R))
        .doc(
            "Get the time to live for a key in milliseconds",
            "2.6.0",
            "O(1)",
        ),
    read(
        "expiretime",
        2,
        F_FAST,
        KEY_GROUP,
        K1,
        unchecked_read(expiretime),
    )
    .acl(cats(&[KEYSPACE, READ, FAST]), (KA_R, KA_R))
    .doc(
        "Get the expiration Unix timestamp for a key",
        "7.0.0",
        "O(1)",
    ),
    read(
        "pexpiretime",
        2,
        F_FAST,
        KEY_GROUP,
        K1,
        unchecked_read(pexpiretime),
    )
    .acl(cats(&[KEYSPACE, READ, FAST]), (KA_R, KA_R))
    .doc(
        "Get the expiration Unix timestamp for a key in milliseconds",
        "7.0.0",
        "O(1)",
    ),
    write(
        "persist",
        2,
        F_FAST,
        KEY_GROUP,
        K1,
        unchecked_write(persist),
    )
    .acl(cats(&[KEYSPACE, WRITE, FAST]), (KA_W, KA_W))
    .doc("Remove the expiration from a key", "2.2.0", "O(1)"),
];

#[cfg(test)]
mod tests {
    use super::super::table::testing::{assert_checks, exec};
    use super::*;

    #[test]
    fn expire_options_and_time_are_refused_before_proposing() {
        let nx = "ERR NX and XX, GT or LT options at the same time are not compatible";
        assert_checks(&[
            (
                "EXPIRE k x",
                Some("ERR value is not an integer or out of range"),
            ),
            ("EXPIRE k x NX XX", Some(nx)),
            ("PEXPIRE k 1 NX GT", Some(nx)),
            ("EXPIREAT k 1 nx lt", Some(nx)),
            (
                "PEXPIREAT k 1 GT LT",
                Some("ERR GT and LT options at the same time are not compatible"),
            ),
            ("EXPIRE k 1 bogus", Some("ERR Unsupported option bogus")),
            ("EXPIRE k 1 NX bogus", Some("ERR Unsupported option bogus")),
            (
                "EXPIRE k 9223372036854776",
                Some("ERR invalid expire time in 'expire' command"),
            ),
            (
                "EXPIREAT k -9223372036854776",
                Some("ERR invalid expire time in 'expireat' command"),
            ),
            ("EXPIRE k -5 XX GT", None),
            ("PEXPIREAT k 9223372036854775807", None),
            // Adding now may overflow: apply knows the time.
            ("PEXPIRE k 9223372036854775807", None),
            ("EXPIRE k 9223372036854775", None),
        ]);
        let mut map = Db::new();
        assert_eq!(
            exec(&mut map, 0, 1000, "PEXPIRE k 9223372036854775807"),
            Output::err("ERR invalid expire time in 'pexpire' command")
        );
        assert_eq!(
            exec(&mut map, 0, 1000, "EXPIRE k 9223372036854775"),
            Output::err("ERR invalid expire time in 'expire' command")
        );
        assert_eq!(
            exec(&mut map, 0, 1000, "PEXPIREAT k 9223372036854775807"),
            Output::Integer(0)
        );
        exec(&mut map, 0, 1000, "SET k v");
        assert_eq!(
            exec(&mut map, 0, 1000, "EXPIRE k 10 GT"),
            Output::Integer(0)
        );
        assert_eq!(
            exec(&mut map, 0, 1000, "EXPIRE k 10 NX"),
            Output::Integer(1)
        );
        assert_eq!(
            map.entry(0, b"k").and_then(|e| e.expires_at_ms()),
            Some(11_000)
        );
        assert_eq!(
            exec(&mut map, 0, 1000, "PEXPIREAT k 5000 LT"),
            Output::Integer(1)
        );
        assert_eq!(exec(&mut map, 0, 1000, "EXPIREAT k 0"), Output::Integer(1));
        assert!(map.entry(0, b"k").is_none());
    }
}
