//! String commands, with Redis 7.0's option parsing and error texts.
//!
//! A command with options is a typed operation whose parse answers every
//! error Redis reports before looking at the key, so such a write is refused
//! before proposing; what Redis checks after the key (GETEX's time, SETRANGE's
//! size, INCRBYFLOAT's increment) stays in apply, in Redis's order.

use bytes::{Bytes, BytesMut};

use super::errors::{NAN_OR_INF, NOT_FLOAT, NOT_INTEGER, OVERFLOW, SYNTAX, TOO_BIG, WRONGTYPE};
use super::notify;
use super::string::Str;
use super::table::{
    borrowed_unchanged, borrowed_write, typed_read, typed_unchanged, typed_write, Apply, Borrows,
    Parse, Query, Unchanged,
};
use super::{float, parse_i64, Ctx, Db, Output, Value, MAX_STRING_BYTES};

/// The string at `key` for a read: `Err(WRONGTYPE)` for another type.
pub(crate) fn read_str<'a>(db: &'a Db, ctx: &Ctx, key: &[u8]) -> Result<Option<&'a Bytes>, Output> {
    match db.lookup_read(ctx.db, key, ctx.now).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.bytes())),
        Some(_) => Err(Output::err(WRONGTYPE)),
    }
}

/// The string at `key` for a write (expired keys deleted first).
pub(crate) fn write_str(db: &mut Db, ctx: &Ctx, key: &[u8]) -> Result<Option<Bytes>, Output> {
    str_of(db.lookup_write(ctx.db, key).map(|e| &e.value))
}

/// [`write_str`] for the writes that read the old value as Redis's
/// `getGenericCommand` does (GETEX, GETDEL, GETSET, SET's GET): a missing
/// key sends `keymiss`.
fn write_str_as_get(db: &mut Db, ctx: &Ctx, key: &[u8]) -> Result<Option<Bytes>, Output> {
    str_of(db.lookup_write_as_read(ctx.db, key).map(|e| &e.value))
}

fn str_of(value: Option<&Value>) -> Result<Option<Bytes>, Output> {
    match value {
        None => Ok(None),
        Some(Value::Str(s)) => Ok(Some(s.bytes().clone())),
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
        match write_str_as_get(db, ctx, key) {
            Ok(v) => v,
            Err(e) => return e,
        }
    } else {
        None
    };
    // When nothing depends on what the key holds, `replace` deals with an
    // expired old value in its one walk of the tree.
    let plain = !(o.nx || o.xx || o.get || o.keepttl);
    if !plain {
        let found = db.exists_for_write(ctx.db, key);
        if (o.nx && found) || (o.xx && !found) {
            return if o.get { opt_bulk(old) } else { Output::NIL };
        }
    }
    let ttl = if o.keepttl {
        db.dbs[ctx.db]
            .map
            .get(&key[..])
            .and_then(|e| e.expires_at_ms())
    } else {
        at
    };
    let value = Value::Str(Str::stored(value));
    if plain {
        db.replace(ctx.db, key, value, ttl);
    } else {
        db.put(ctx.db, key, value, ttl);
    }
    db.notify(notify::STRING, "set", ctx.db, key);
    if at.is_some() {
        db.notify(notify::GENERIC, "expire", ctx.db, key);
    }
    if o.get {
        opt_bulk(old)
    } else {
        Output::Ok
    }
}

/// `SET key value [NX | XX] [GET] [EX s | PX ms | EXAT s | PXAT ms | KEEPTTL]`,
/// and SETEX / PSETEX (`cmd` names which). Borrows its key and value: the
/// server's check of every SET parses it, and apply copies what it keeps.
pub(crate) struct Set<'a> {
    key: &'a Bytes,
    value: &'a Bytes,
    options: SetOptions,
    cmd: &'static str,
}

impl Borrows for Set<'static> {
    type Op<'a> = Set<'a>;
}

impl<'a> Parse<'a> for Set<'a> {
    fn parse(args: &'a [Bytes]) -> Result<Set<'a>, Output> {
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
            key: &args[1],
            value,
            options,
            cmd,
        })
    }
}

impl<'a> Apply<'a> for Set<'a> {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        set_generic(db, ctx, self.key, self.value, &self.options, self.cmd)
    }
}

impl<'a> Unchanged<'a> for Set<'a> {
    /// SET NX of a live key and SET XX of an absent one, without GET: nil.
    fn unchanged(&self, db: &Db, ctx: &Ctx) -> Option<Output> {
        let o = &self.options;
        if o.get || !(o.nx || o.xx) {
            return None;
        }
        // The expire time is checked first (an error is apply's to give).
        if let Some((v, seconds, absolute)) = &o.expire {
            deadline(ctx.now, v, *seconds, *absolute, self.cmd).ok()?;
        }
        let found = db.probe_key(ctx, self.key)?.is_some();
        ((o.nx && found) || (o.xx && !found)).then_some(Output::NIL)
    }
}

/// SETNX of a live key: `0`.
fn setnx_unchanged(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Option<Output> {
    db.probe_key(ctx, &args[1])?.map(|_| Output::Integer(0))
}

/// `SET key value` with no option, as [`crate::kv::Op::Set`] carries it:
/// exactly what `Op::Exec` of the same three arguments does.
pub(crate) fn set_plain(db: &mut Db, ctx: &Ctx, key: &Bytes, value: &Bytes) -> Output {
    set_generic(db, ctx, key, value, &SetOptions::default(), "set")
}

pub(crate) fn setnx(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    if db.exists_for_write(ctx.db, &args[1]) {
        return Output::Integer(0);
    }
    db.put(ctx.db, &args[1], Value::Str(Str::stored(&args[2])), None);
    db.notify(notify::STRING, "set", ctx.db, &args[1]);
    Output::Integer(1)
}

/// `GETEX key [EX s | PX ms | EXAT s | PXAT ms | PERSIST]`: the options
/// are checked before proposing; the time value only after the key (Redis
/// 7.0's order: a missing key answers nil whatever the time).
pub(crate) struct GetEx {
    key: Bytes,
    options: SetOptions,
}

impl Parse<'_> for GetEx {
    fn parse(args: &[Bytes]) -> Result<GetEx, Output> {
        Ok(GetEx {
            key: args[1].clone(),
            options: parse_set_options(args, 2, OptionsOf::GetEx)?,
        })
    }
}

impl Apply<'_> for GetEx {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        getex(db, ctx, &self.key, &self.options)
    }
}

fn getex(db: &mut Db, ctx: &Ctx, key: &Bytes, o: &SetOptions) -> Output {
    // Redis 7.0 order: options, then the key (nil if absent, WRONGTYPE),
    // then the expire value.
    let value = match write_str_as_get(db, ctx, key) {
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
            db.notify(notify::GENERIC, "del", ctx.db, key);
        }
        Some(at) => {
            db.set_expiry(ctx.db, key, Some(at));
            db.notify(notify::GENERIC, "expire", ctx.db, key);
        }
        None if o.persist
            && db.dbs[ctx.db]
                .map
                .get(&key[..])
                .is_some_and(|e| e.expires_at_ms().is_some()) =>
        {
            db.set_expiry(ctx.db, key, None);
            db.notify(notify::GENERIC, "persist", ctx.db, key);
        }
        None => {}
    }
    Output::bulk(value)
}

pub(crate) fn getdel(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match write_str_as_get(db, ctx, &args[1]) {
        Ok(Some(v)) => {
            db.remove(ctx.db, &args[1]);
            db.notify(notify::GENERIC, "del", ctx.db, &args[1]);
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

/// `MSET key value [key value ...]` and MSETNX (`nx`): an odd number of
/// arguments is refused before proposing.
pub(crate) struct MSet {
    pairs: Vec<(Bytes, Bytes)>,
    nx: bool,
}

impl Parse<'_> for MSet {
    fn parse(args: &[Bytes]) -> Result<MSet, Output> {
        let nx = is(&args[0], b"msetnx");
        if args.len() % 2 == 0 {
            let name = if nx { "msetnx" } else { "mset" };
            return Err(Output::err(format!(
                "ERR wrong number of arguments for '{name}' command"
            )));
        }
        let pairs = args[1..]
            .chunks(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect();
        Ok(MSet { pairs, nx })
    }
}

impl Apply<'_> for MSet {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        if self.nx {
            let any = self
                .pairs
                .iter()
                .any(|(key, _)| db.lookup_write(ctx.db, key).is_some());
            if any {
                return Output::Integer(0);
            }
        }
        for (key, value) in self.pairs {
            db.expire_if_needed(ctx.db, &key);
            db.put(ctx.db, &key, Value::Str(Str::stored(&value)), None);
            db.notify(notify::STRING, "set", ctx.db, &key);
        }
        if self.nx {
            Output::Integer(1)
        } else {
            Output::Ok
        }
    }
}

impl Unchanged<'_> for MSet {
    /// MSETNX with a live key: `0`. Apply looks the keys up in order until
    /// the first live one, deleting expired ones on the way, so an expired
    /// key before it is a change.
    fn unchanged(&self, db: &Db, ctx: &Ctx) -> Option<Output> {
        if !self.nx {
            return None;
        }
        for (key, _) in &self.pairs {
            if db.probe_key(ctx, key)?.is_some() {
                return Some(Output::Integer(0));
            }
        }
        None
    }
}

/// Stores `value` at `key`, keeping the TTL of an existing key.
pub(crate) fn overwrite(db: &mut Db, ctx: &Ctx, key: &Bytes, value: Str) {
    match db.dbs[ctx.db].map.find(key) {
        Some(slot) => {
            db.modify_slot(ctx.db, Some(slot), key, |v| *v = Value::Str(value));
        }
        None => db.put(ctx.db, key, Value::Str(value), None),
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
    overwrite(db, ctx, key, Str::new(Bytes::from(new.to_string())));
    db.notify(notify::STRING, "incrby", ctx.db, key);
    Output::Integer(new)
}

/// `INCR`, `DECR`, `INCRBY key n`, `DECRBY key n`: the amount is checked
/// before the key (Redis's order), so a bad one is refused before proposing.
pub(crate) struct IncrBy {
    key: Bytes,
    by: i64,
}

impl Parse<'_> for IncrBy {
    fn parse(args: &[Bytes]) -> Result<IncrBy, Output> {
        let by = if is(&args[0], b"incr") {
            1
        } else if is(&args[0], b"decr") {
            -1
        } else {
            let n = parse_i64(&args[2]).ok_or_else(|| Output::err(NOT_INTEGER))?;
            if !is(&args[0], b"decrby") {
                n
            } else if n == i64::MIN {
                return Err(Output::err("ERR decrement would overflow"));
            } else {
                -n
            }
        };
        Ok(IncrBy {
            key: args[1].clone(),
            by,
        })
    }
}

impl Apply<'_> for IncrBy {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        incr_generic(db, ctx, &self.key, self.by)
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
    overwrite(db, ctx, &args[1], Str::text(text.clone()));
    db.notify(notify::STRING, "incrbyfloat", ctx.db, &args[1]);
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
    // Redis appends to an existing string in place (`raw` from then on,
    // even an empty append) but stores a new key's value whole.
    let value = if old.is_some() {
        Str::raw(buf.freeze())
    } else {
        Str::new(buf.freeze())
    };
    overwrite(db, ctx, &args[1], value);
    db.notify(notify::STRING, "append", ctx.db, &args[1]);
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

impl Parse<'_> for GetRange {
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

impl Query<'_> for GetRange {
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

/// `SETRANGE key offset value`: the offset is checked before the key
/// (Redis's order); the size limit only after it (an empty value on an
/// absent key answers 0 whatever the offset).
pub(crate) struct SetRange {
    key: Bytes,
    offset: u64,
    value: Bytes,
}

impl Parse<'_> for SetRange {
    fn parse(args: &[Bytes]) -> Result<SetRange, Output> {
        let offset = parse_i64(&args[2]).ok_or_else(|| Output::err(NOT_INTEGER))?;
        let offset =
            u64::try_from(offset).map_err(|_| Output::err("ERR offset is out of range"))?;
        Ok(SetRange {
            key: args[1].clone(),
            offset,
            value: args[3].clone(),
        })
    }
}

impl Apply<'_> for SetRange {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let old = match write_str(db, ctx, &self.key) {
            Ok(v) => v,
            Err(e) => return e,
        };
        let value = &self.value;
        if value.is_empty() {
            return Output::Integer(old.map_or(0, |o| o.len() as i64));
        }
        if self.offset + value.len() as u64 > MAX_STRING_BYTES {
            return Output::err(TOO_BIG);
        }
        let offset = self.offset as usize;
        let mut buf = BytesMut::from(old.as_deref().unwrap_or(&[]));
        if buf.len() < offset + value.len() {
            buf.resize(offset + value.len(), 0);
        }
        buf[offset..offset + value.len()].copy_from_slice(value);
        let len = buf.len();
        // Redis writes into the string in place: `raw`, new key or not.
        overwrite(db, ctx, &self.key, Str::raw(buf.freeze()));
        db.notify(notify::STRING, "setrange", ctx.db, &self.key);
        Output::Integer(len as i64)
    }
}

// ---- definitions -------------------------------------------------------------

use super::table::{unchecked_read, unchecked_write};
use crate::cmd::cat::*;
use crate::cmd::{read, write, CommandSpec, K1, KN, KV};

const STR_GROUP: &str = "@string";

/// This group's command definitions (see `crate::cmd`).
///
/// The `unchecked_*` rows take only keys and values: no argument list of
/// the right arity is a syntax error. INCRBYFLOAT too: Redis checks its
/// increment only after the key's type and stored value, so a bad one is
/// a data-dependent error, answered by apply.
pub(crate) static COMMANDS: &[CommandSpec] = &[
    read("get", 2, F_FAST, STR_GROUP, K1, unchecked_read(get))
        .acl(cats(&[READ, STRING, FAST]), (KA_R, KA_R))
        .doc("Get the value of a key", "1.0.0", "O(1)"),
    write("set", -3, F_DENYOOM, STR_GROUP, K1, borrowed_write::<Set<'static>>())
        .unchanged_by(borrowed_unchanged::<Set<'static>>())
        .acl(cats(&[WRITE, STRING, SLOW]), (KA_W, KA_W))
        .doc("Set the string value of a key", "1.0.0", "O(1)"),
    write("setnx", 3, F_FAST_DENYOOM, STR_GROUP, K1, unchecked_write(setnx))
        .unchanged_by(setnx_unchanged)
        .acl(cats(&[WRITE, STRING, FAST]), (KA_W, KA_W))
        .doc("Set the value of a key, only if the key does not exist", "1.0.0", "O(1)"),
    write("setex", 4, F_DENYOOM, STR_GROUP, K1, borrowed_write::<Set<'static>>())
        .acl(cats(&[WRITE, STRING, SLOW]), (KA_W, KA_W))
        .doc("Set the value and expiration of a key", "2.0.0", "O(1)"),
    write("psetex", 4, F_DENYOOM, STR_GROUP, K1, borrowed_write::<Set<'static>>())
        .acl(cats(&[WRITE, STRING, SLOW]), (KA_W, KA_W))
        .doc("Set the value and expiration in milliseconds of a key", "2.6.0", "O(1)"),
    write("getex", -2, F_FAST, STR_GROUP, K1, typed_write::<GetEx>())
        .acl(cats(&[WRITE, STRING, FAST]), (KA_RW, KA_RW))
        .doc("Get the value of a key and optionally set its expiration", "6.2.0", "O(1)"),
    write("getdel", 2, F_FAST, STR_GROUP, K1, unchecked_write(getdel))
        .acl(cats(&[WRITE, STRING, FAST]), (KA_RW, KA_RW))
        .doc("Get the value of a key and delete the key", "6.2.0", "O(1)"),
    write("getset", 3, F_FAST_DENYOOM, STR_GROUP, K1, unchecked_write(getset))
        .acl(cats(&[WRITE, STRING, FAST]), (KA_RW, KA_RW))
        .doc("Set the string value of a key and return its old value", "1.0.0", "O(1)"),
    read("mget", -2, F_FAST, STR_GROUP, KN, unchecked_read(mget))
        .acl(cats(&[READ, STRING, FAST]), (KA_R, KA_R))
        .doc("Get the values of all the given keys", "1.0.0", "O(N) where N is the number of keys to retrieve."),
    write("mset", -3, F_DENYOOM, STR_GROUP, KV, typed_write::<MSet>())
        .acl(cats(&[WRITE, STRING, SLOW]), (KA_W, KA_W))
        .doc("Set multiple keys to multiple values", "1.0.1", "O(N) where N is the number of keys to set."),
    write("msetnx", -3, F_DENYOOM, STR_GROUP, KV, typed_write::<MSet>())
        .unchanged_by(typed_unchanged::<MSet>())
        .acl(cats(&[WRITE, STRING, SLOW]), (KA_W, KA_W))
        .doc("Set multiple keys to multiple values, only if none of the keys exist", "1.0.1", "O(N) where N is the number of keys to set."),
    write("incr", 2, F_FAST_DENYOOM, STR_GROUP, K1, typed_write::<IncrBy>())
        .acl(cats(&[WRITE, STRING, FAST]), (KA_RW, KA_RW))
        .doc("Increment the integer value of a key by one", "1.0.0", "O(1)"),
    write("decr", 2, F_FAST_DENYOOM, STR_GROUP, K1, typed_write::<IncrBy>())
        .acl(cats(&[WRITE, STRING, FAST]), (KA_RW, KA_RW))
        .doc("Decrement the integer value of a key by one", "1.0.0", "O(1)"),
    write("incrby", 3, F_FAST_DENYOOM, STR_GROUP, K1, typed_write::<IncrBy>())
        .acl(cats(&[WRITE, STRING, FAST]), (KA_RW, KA_RW))
        .doc("Increment the integer value of a key by the given amount", "1.0.0", "O(1)"),
    write("decrby", 3, F_FAST_DENYOOM, STR_GROUP, K1, typed_write::<IncrBy>())
        .acl(cats(&[WRITE, STRING, FAST]), (KA_RW, KA_RW))
        .doc("Decrement the integer value of a key by the given number", "1.0.0", "O(1)"),
    write("incrbyfloat", 3, F_FAST_DENYOOM, STR_GROUP, K1, unchecked_write(incrbyfloat))
        .acl(cats(&[WRITE, STRING, FAST]), (KA_RW, KA_RW))
        .doc("Increment the float value of a key by the given amount", "2.6.0", "O(1)"),
    write("append", 3, F_FAST_DENYOOM, STR_GROUP, K1, unchecked_write(append))
        .acl(cats(&[WRITE, STRING, FAST]), (KA_W, KA_W))
        .doc("Append a value to a key", "2.0.0", "O(1). The amortized time complexity is O(1) assuming the appended value is small and the already present value is of any size, since the dynamic string library used by Redis will double the free space available on every reallocation."),
    read("strlen", 2, F_FAST, STR_GROUP, K1, unchecked_read(strlen))
        .acl(cats(&[READ, STRING, FAST]), (KA_NONE, KA_NONE))
        .doc("Get the length of the value stored in a key", "2.2.0", "O(1)"),
    read("getrange", 4, F_NONE, STR_GROUP, K1, typed_read::<GetRange>())
        .acl(cats(&[READ, STRING, SLOW]), (KA_R, KA_R))
        .doc("Get a substring of the string stored at a key", "2.4.0", "O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings."),
    read("substr", 4, F_NONE, STR_GROUP, K1, typed_read::<GetRange>())
        .acl(cats(&[READ, STRING, SLOW]), (KA_R, KA_R))
        .doc("Get a substring of the string stored at a key", "1.0.0", "O(N) where N is the length of the returned string. The complexity is ultimately determined by the returned length, but because creating a substring from an existing string is very cheap, it can be considered O(1) for small strings."),
    write("setrange", 4, F_DENYOOM, STR_GROUP, K1, typed_write::<SetRange>())
        .acl(cats(&[WRITE, STRING, SLOW]), (KA_W, KA_W))
        .doc("Overwrite part of a string at key starting at the specified offset", "2.2.0", "O(1), not counting the time taken to copy the new string in place. Usually, this string is very small so the amortized complexity is O(1). Otherwise, complexity is O(M) with M being the length of the value argument."),
];

#[cfg(test)]
mod tests;
