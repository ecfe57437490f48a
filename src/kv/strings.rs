//! String commands, with Redis 7.0's option parsing and error texts.

use bytes::{Bytes, BytesMut};

use super::errors::{NAN_OR_INF, NOT_FLOAT, NOT_INTEGER, OVERFLOW, SYNTAX, TOO_BIG, WRONGTYPE};
use super::table::{typed_read, typed_write, Apply, Parse, Query};
use super::{float, parse_i64, Ctx, Db, Output, Value, MAX_STRING_BYTES};

/// The string at `key` for a read: `Err(WRONGTYPE)` for another type.
pub(crate) fn read_str<'a>(db: &'a Db, ctx: &Ctx, key: &[u8]) -> Result<Option<&'a Bytes>, Output> {
    match db.lookup_read(ctx.db, key, ctx.now).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s)),
        Some(_) => Err(Output::err(WRONGTYPE)),
    }
}

/// The string at `key` for a write (expired keys deleted first).
pub(crate) fn write_str(db: &mut Db, ctx: &Ctx, key: &[u8]) -> Result<Option<Bytes>, Output> {
    match db.lookup_write(ctx.db, key).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.clone())),
        Some(_) => Err(Output::err(WRONGTYPE)),
    }
}

fn opt_bulk(v: Option<Bytes>) -> Output {
    Output::Bulk(v)
}

pub(crate) fn get(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match read_str(db, ctx, &args[1]) {
        Ok(v) => opt_bulk(v.cloned()),
        Err(e) => e,
    }
}

/// Which command parses the options (Redis's COMMAND_SET / COMMAND_GET).
#[derive(PartialEq, Eq, Clone, Copy)]
enum OptionsOf {
    Set,
    GetEx,
}

#[derive(Default)]
struct SetOptions {
    nx: bool,
    xx: bool,
    get: bool,
    keepttl: bool,
    persist: bool,
    /// (value, in seconds?, absolute?)
    expire: Option<(Bytes, bool, bool)>,
}

fn is(opt: &[u8], name: &[u8]) -> bool {
    opt.eq_ignore_ascii_case(name)
}

/// Redis's `parseExtendedStringArgumentsOrReply`.
fn parse_set_options(args: &[Bytes], first: usize, of: OptionsOf) -> Result<SetOptions, Output> {
    let mut o = SetOptions::default();
    let mut j = first;
    let set = of == OptionsOf::Set;
    while j < args.len() {
        let opt = &args[j][..];
        let next = args.get(j + 1);
        let has_expire = o.expire.is_some();
        if is(opt, b"nx") && !o.xx && set {
            o.nx = true;
        } else if is(opt, b"xx") && !o.nx && set {
            o.xx = true;
        } else if is(opt, b"get") && set {
            o.get = true;
        } else if is(opt, b"keepttl") && !o.persist && !has_expire && set {
            o.keepttl = true;
        } else if is(opt, b"persist") && !set && !has_expire && !o.keepttl {
            o.persist = true;
        } else if let (Some(kind), Some(next)) = (expire_kind(opt), next) {
            let same_kind = o.expire.as_ref().is_none_or(|(_, s, a)| (*s, *a) == kind);
            if o.keepttl || o.persist || !same_kind {
                return Err(Output::err(SYNTAX));
            }
            o.expire = Some((next.clone(), kind.0, kind.1));
            j += 1;
        } else {
            return Err(Output::err(SYNTAX));
        }
        j += 1;
    }
    Ok(o)
}

/// `(seconds?, absolute?)` for EX / PX / EXAT / PXAT.
fn expire_kind(opt: &[u8]) -> Option<(bool, bool)> {
    if is(opt, b"ex") {
        Some((true, false))
    } else if is(opt, b"px") {
        Some((false, false))
    } else if is(opt, b"exat") {
        Some((true, true))
    } else if is(opt, b"pxat") {
        Some((false, true))
    } else {
        None
    }
}

/// The part of Redis's `getExpireMillisecondsOrReply` that does not depend
/// on the time: the value is a positive integer whose milliseconds fit.
fn expire_value(value: &[u8], seconds: bool, cmd: &str) -> Result<i64, Output> {
    let ms = parse_i64(value).ok_or_else(|| Output::err(NOT_INTEGER))?;
    if ms <= 0 || (seconds && ms > i64::MAX / 1000) {
        return Err(invalid_expire(cmd));
    }
    Ok(ms)
}

fn invalid_expire(cmd: &str) -> Output {
    Output::err(format!("ERR invalid expire time in '{cmd}' command"))
}

/// Redis's `getExpireMillisecondsOrReply`: the absolute deadline.
fn deadline(
    now: u64,
    value: &[u8],
    seconds: bool,
    absolute: bool,
    cmd: &str,
) -> Result<u64, Output> {
    let invalid = || invalid_expire(cmd);
    let mut ms = expire_value(value, seconds, cmd)?;
    if seconds {
        ms *= 1000;
    }
    if !absolute {
        ms = ms.checked_add(now as i64).ok_or_else(invalid)?;
    }
    if ms <= 0 {
        return Err(invalid());
    }
    Ok(ms as u64)
}

fn set_generic(
    db: &mut Db,
    ctx: &Ctx,
    key: &Bytes,
    value: &Bytes,
    o: &SetOptions,
    cmd: &str,
) -> Output {
    let at = match &o.expire {
        Some((v, seconds, absolute)) => match deadline(ctx.now, v, *seconds, *absolute, cmd) {
            Ok(at) => Some(at),
            Err(e) => return e,
        },
        None => None,
    };
    let old = if o.get {
        match write_str(db, ctx, key) {
            Ok(v) => v,
            Err(e) => return e,
        }
    } else {
        None
    };
    let found = db.exists_for_write(ctx.db, key);
    if (o.nx && found) || (o.xx && !found) {
        return if o.get { opt_bulk(old) } else { Output::NIL };
    }
    let ttl = if o.keepttl {
        db.dbs[ctx.db]
            .map
            .get(&key[..])
            .and_then(|e| e.expires_at_ms)
    } else {
        at
    };
    db.put(ctx.db, key.clone(), Value::Str(value.clone()), ttl);
    if o.get {
        opt_bulk(old)
    } else {
        Output::Ok
    }
}

/// `SET key value [NX | XX] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL]`,
/// and SETEX / PSETEX (`cmd` names which).
pub(crate) struct Set {
    key: Bytes,
    value: Bytes,
    options: SetOptions,
    cmd: &'static str,
}

impl Parse for Set {
    fn parse(args: &[Bytes]) -> Result<Set, Output> {
        let (options, cmd, value) = if args[0].eq_ignore_ascii_case(b"set") {
            (parse_set_options(args, 3, OptionsOf::Set)?, "set", &args[2])
        } else {
            let seconds = args[0].eq_ignore_ascii_case(b"setex");
            let options = SetOptions {
                expire: Some((args[2].clone(), seconds, false)),
                ..SetOptions::default()
            };
            (options, if seconds { "setex" } else { "psetex" }, &args[3])
        };
        // Checked before the key is looked at, as Redis does.
        if let Some((time, seconds, _)) = &options.expire {
            expire_value(time, *seconds, cmd)?;
        }
        Ok(Set {
            key: args[1].clone(),
            value: value.clone(),
            options,
            cmd,
        })
    }
}

impl Apply for Set {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        set_generic(db, ctx, &self.key, &self.value, &self.options, self.cmd)
    }
}

pub(crate) fn setnx(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    if db.exists_for_write(ctx.db, &args[1]) {
        return Output::Integer(0);
    }
    db.put(ctx.db, args[1].clone(), Value::Str(args[2].clone()), None);
    Output::Integer(1)
}

/// `GETEX key [EX s | PX ms | EXAT s | PXAT ms | PERSIST]`: the options
/// are checked before proposing; the time value only after the key (Redis
/// 7.0's order: a missing key answers nil whatever the time).
pub(crate) struct GetEx {
    key: Bytes,
    options: SetOptions,
}

impl Parse for GetEx {
    fn parse(args: &[Bytes]) -> Result<GetEx, Output> {
        Ok(GetEx {
            key: args[1].clone(),
            options: parse_set_options(args, 2, OptionsOf::GetEx)?,
        })
    }
}

impl Apply for GetEx {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        getex(db, ctx, &self.key, &self.options)
    }
}

fn getex(db: &mut Db, ctx: &Ctx, key: &Bytes, o: &SetOptions) -> Output {
    // Redis 7.0 order: options, then the key (nil if absent, WRONGTYPE),
    // then the expire value.
    let value = match write_str(db, ctx, key) {
        Ok(Some(v)) => v,
        Ok(None) => return Output::NIL,
        Err(e) => return e,
    };
    let at = match &o.expire {
        Some((v, seconds, absolute)) => match deadline(ctx.now, v, *seconds, *absolute, "getex") {
            Ok(at) => Some(at),
            Err(e) => return e,
        },
        None => None,
    };
    let absolute = o.expire.as_ref().is_some_and(|(_, _, a)| *a);
    match at {
        Some(at) if absolute && at <= ctx.now => {
            db.remove(ctx.db, key);
        }
        Some(at) => db.set_expiry(ctx.db, key, Some(at)),
        None if o.persist
            && db.dbs[ctx.db]
                .map
                .get(&key[..])
                .is_some_and(|e| e.expires_at_ms.is_some()) =>
        {
            db.set_expiry(ctx.db, key, None);
        }
        None => {}
    }
    Output::bulk(value)
}

pub(crate) fn getdel(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match write_str(db, ctx, &args[1]) {
        Ok(Some(v)) => {
            db.remove(ctx.db, &args[1]);
            Output::bulk(v)
        }
        Ok(None) => Output::NIL,
        Err(e) => e,
    }
}

pub(crate) fn getset(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    let o = SetOptions {
        get: true,
        ..SetOptions::default()
    };
    set_generic(db, ctx, &args[1], &args[2], &o, "getset")
}

pub(crate) fn mget(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    Output::Array(
        args[1..]
            .iter()
            .map(|k| match read_str(db, ctx, k) {
                Ok(v) => opt_bulk(v.cloned()),
                Err(_) => Output::NIL,
            })
            .collect(),
    )
}

fn wrong_arity(name: &str) -> Output {
    Output::err(format!(
        "ERR wrong number of arguments for '{name}' command"
    ))
}

pub(crate) fn mset(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    if args.len() % 2 == 0 {
        return wrong_arity("mset");
    }
    for pair in args[1..].chunks(2) {
        db.expire_if_needed(ctx.db, &pair[0]);
        db.put(ctx.db, pair[0].clone(), Value::Str(pair[1].clone()), None);
    }
    Output::Ok
}

pub(crate) fn msetnx(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    if args.len() % 2 == 0 {
        return wrong_arity("msetnx");
    }
    let any = args[1..]
        .chunks(2)
        .any(|pair| db.lookup_write(ctx.db, &pair[0]).is_some());
    if any {
        return Output::Integer(0);
    }
    for pair in args[1..].chunks(2) {
        db.put(ctx.db, pair[0].clone(), Value::Str(pair[1].clone()), None);
    }
    Output::Integer(1)
}

/// Stores `value` at `key`, keeping the TTL of an existing key.
pub(crate) fn overwrite(db: &mut Db, ctx: &Ctx, key: &Bytes, value: Bytes) {
    let exists = db.dbs[ctx.db].map.contains_key(&key[..]);
    if exists {
        db.modify(ctx.db, key, |v| *v = Value::Str(value));
    } else {
        db.put(ctx.db, key.clone(), Value::Str(value), None);
    }
}

fn incr_generic(db: &mut Db, ctx: &Ctx, key: &Bytes, incr: i64) -> Output {
    let old = match write_str(db, ctx, key) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let value = match old {
        None => 0,
        Some(s) => match parse_i64(&s) {
            Some(v) => v,
            None => return Output::err(NOT_INTEGER),
        },
    };
    let Some(new) = value.checked_add(incr) else {
        return Output::err(OVERFLOW);
    };
    overwrite(db, ctx, key, Bytes::from(new.to_string()));
    Output::Integer(new)
}

pub(crate) fn incr(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    incr_generic(db, ctx, &args[1], 1)
}

pub(crate) fn decr(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    incr_generic(db, ctx, &args[1], -1)
}

pub(crate) fn incrby(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match parse_i64(&args[2]) {
        Some(n) => incr_generic(db, ctx, &args[1], n),
        None => Output::err(NOT_INTEGER),
    }
}

pub(crate) fn decrby(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match parse_i64(&args[2]) {
        Some(i64::MIN) => Output::err("ERR decrement would overflow"),
        Some(n) => incr_generic(db, ctx, &args[1], -n),
        None => Output::err(NOT_INTEGER),
    }
}

pub(crate) fn incrbyfloat(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    let old = match write_str(db, ctx, &args[1]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let value = match old {
        None => float::LongDouble::ZERO,
        Some(s) => match float::LongDouble::parse(&s) {
            Some(v) => v,
            None => return Output::err(NOT_FLOAT),
        },
    };
    let Some(incr) = float::LongDouble::parse(&args[2]) else {
        return Output::err(NOT_FLOAT);
    };
    let sum = value.add(&incr);
    if !sum.is_finite() {
        return Output::err(NAN_OR_INF);
    }
    let text = Bytes::from(sum.to_human());
    overwrite(db, ctx, &args[1], text.clone());
    Output::bulk(text)
}

pub(crate) fn append(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    let old = match write_str(db, ctx, &args[1]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    let old_len = old.as_ref().map_or(0, |o| o.len());
    if (old_len + args[2].len()) as u64 > MAX_STRING_BYTES {
        return Output::err(TOO_BIG);
    }
    let mut buf = BytesMut::with_capacity(old_len + args[2].len());
    if let Some(o) = &old {
        buf.extend_from_slice(o);
    }
    buf.extend_from_slice(&args[2]);
    let len = buf.len();
    overwrite(db, ctx, &args[1], buf.freeze());
    Output::Integer(len as i64)
}

pub(crate) fn strlen(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match read_str(db, ctx, &args[1]) {
        Ok(v) => Output::Integer(v.map_or(0, |s| s.len() as i64)),
        Err(e) => e,
    }
}

/// `GETRANGE key start end` (and its old name SUBSTR).
pub(crate) struct GetRange {
    key: Bytes,
    start: i64,
    end: i64,
}

impl Parse for GetRange {
    fn parse(args: &[Bytes]) -> Result<GetRange, Output> {
        let (Some(start), Some(end)) = (parse_i64(&args[2]), parse_i64(&args[3])) else {
            return Err(Output::err(NOT_INTEGER));
        };
        Ok(GetRange {
            key: args[1].clone(),
            start,
            end,
        })
    }
}

impl Query for GetRange {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        getrange(db, ctx, &self.key, self.start, self.end)
    }
}

fn getrange(db: &Db, ctx: &Ctx, key: &[u8], start: i64, end: i64) -> Output {
    let s = match read_str(db, ctx, key) {
        Ok(Some(s)) => s,
        Ok(None) => return Output::bulk(Bytes::new()),
        Err(e) => return e,
    };
    let len = s.len() as i128;
    let (mut start, mut end) = (i128::from(start), i128::from(end));
    if start < 0 && end < 0 && start > end {
        return Output::bulk(Bytes::new());
    }
    if start < 0 {
        start += len;
    }
    if end < 0 {
        end += len;
    }
    start = start.max(0);
    end = end.max(0);
    if end >= len {
        end = len - 1;
    }
    if start > end || len == 0 {
        return Output::bulk(Bytes::new());
    }
    Output::bulk(s.slice(start as usize..=end as usize))
}

pub(crate) fn setrange(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    let Some(offset) = parse_i64(&args[2]) else {
        return Output::err(NOT_INTEGER);
    };
    if offset < 0 {
        return Output::err("ERR offset is out of range");
    }
    let value = &args[3];
    let old = match write_str(db, ctx, &args[1]) {
        Ok(v) => v,
        Err(e) => return e,
    };
    if value.is_empty() {
        return Output::Integer(old.map_or(0, |o| o.len() as i64));
    }
    if offset as u64 + value.len() as u64 > MAX_STRING_BYTES {
        return Output::err(TOO_BIG);
    }
    let offset = offset as usize;
    let mut buf = BytesMut::from(old.as_deref().unwrap_or(&[]));
    if buf.len() < offset + value.len() {
        buf.resize(offset + value.len(), 0);
    }
    buf[offset..offset + value.len()].copy_from_slice(value);
    let len = buf.len();
    overwrite(db, ctx, &args[1], buf.freeze());
    Output::Integer(len as i64)
}

// ---- definitions -------------------------------------------------------------

use super::table::{unchecked_read, unchecked_write};
use crate::cmd::cat::*;
use crate::cmd::{read, write, CommandSpec, K1, KN, KV};

const STR_GROUP: &str = "@string";

/// This group's command definitions (see `crate::cmd`).
pub(crate) static COMMANDS: &[CommandSpec] = &[
    read("get", 2, F_FAST, STR_GROUP, K1, unchecked_read(get))
        .acl(cats(&[READ, STRING, FAST]), (KA_R, KA_R)),
    write("set", -3, F_DENYOOM, STR_GROUP, K1, typed_write::<Set>())
        .acl(cats(&[WRITE, STRING, SLOW]), (KA_W, KA_W)),
    write(
        "setnx",
        3,
        F_FAST_DENYOOM,
        STR_GROUP,
        K1,
        unchecked_write(setnx),
    )
    .acl(cats(&[WRITE, STRING, FAST]), (KA_W, KA_W)),
    write("setex", 4, F_DENYOOM, STR_GROUP, K1, typed_write::<Set>())
        .acl(cats(&[WRITE, STRING, SLOW]), (KA_W, KA_W)),
    write("psetex", 4, F_DENYOOM, STR_GROUP, K1, typed_write::<Set>())
        .acl(cats(&[WRITE, STRING, SLOW]), (KA_W, KA_W)),
    write("getex", -2, F_FAST, STR_GROUP, K1, typed_write::<GetEx>())
        .acl(cats(&[WRITE, STRING, FAST]), (KA_RW, KA_RW)),
    write("getdel", 2, F_FAST, STR_GROUP, K1, unchecked_write(getdel))
        .acl(cats(&[WRITE, STRING, FAST]), (KA_RW, KA_RW)),
    write(
        "getset",
        3,
        F_FAST_DENYOOM,
        STR_GROUP,
        K1,
        unchecked_write(getset),
    )
    .acl(cats(&[WRITE, STRING, FAST]), (KA_RW, KA_RW)),
    read("mget", -2, F_FAST, STR_GROUP, KN, unchecked_read(mget))
        .acl(cats(&[READ, STRING, FAST]), (KA_R, KA_R)),
    write("mset", -3, F_DENYOOM, STR_GROUP, KV, unchecked_write(mset))
        .acl(cats(&[WRITE, STRING, SLOW]), (KA_W, KA_W)),
    write(
        "msetnx",
        -3,
        F_DENYOOM,
        STR_GROUP,
        KV,
        unchecked_write(msetnx),
    )
    .acl(cats(&[WRITE, STRING, SLOW]), (KA_W, KA_W)),
    write(
        "incr",
        2,
        F_FAST_DENYOOM,
        STR_GROUP,
        K1,
        unchecked_write(incr),
    )
    .acl(cats(&[WRITE, STRING, FAST]), (KA_RW, KA_RW)),
    write(
        "decr",
        2,
        F_FAST_DENYOOM,
        STR_GROUP,
        K1,
        unchecked_write(decr),
    )
    .acl(cats(&[WRITE, STRING, FAST]), (KA_RW, KA_RW)),
    write(
        "incrby",
        3,
        F_FAST_DENYOOM,
        STR_GROUP,
        K1,
        unchecked_write(incrby),
    )
    .acl(cats(&[WRITE, STRING, FAST]), (KA_RW, KA_RW)),
    write(
        "decrby",
        3,
        F_FAST_DENYOOM,
        STR_GROUP,
        K1,
        unchecked_write(decrby),
    )
    .acl(cats(&[WRITE, STRING, FAST]), (KA_RW, KA_RW)),
    write(
        "incrbyfloat",
        3,
        F_FAST_DENYOOM,
        STR_GROUP,
        K1,
        unchecked_write(incrbyfloat),
    )
    .acl(cats(&[WRITE, STRING, FAST]), (KA_RW, KA_RW)),
    write(
        "append",
        3,
        F_FAST_DENYOOM,
        STR_GROUP,
        K1,
        unchecked_write(append),
    )
    .acl(cats(&[WRITE, STRING, FAST]), (KA_W, KA_W)),
    read("strlen", 2, F_FAST, STR_GROUP, K1, unchecked_read(strlen))
        .acl(cats(&[READ, STRING, FAST]), (KA_NONE, KA_NONE)),
    read(
        "getrange",
        4,
        F_NONE,
        STR_GROUP,
        K1,
        typed_read::<GetRange>(),
    )
    .acl(cats(&[READ, STRING, SLOW]), (KA_R, KA_R)),
    read("substr", 4, F_NONE, STR_GROUP, K1, typed_read::<GetRange>())
        .acl(cats(&[READ, STRING, SLOW]), (KA_R, KA_R)),
    write(
        "setrange",
        4,
        F_DENYOOM,
        STR_GROUP,
        K1,
        unchecked_write(setrange),
    )
    .acl(cats(&[WRITE, STRING, SLOW]), (KA_W, KA_W)),
];
