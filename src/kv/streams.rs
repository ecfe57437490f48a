//! Stream commands (Redis 7.0.15): XADD, XRANGE, XREVRANGE, XLEN, XDEL,
//! XTRIM, XREAD, XSETID here; the consumer-group commands in
//! [`super::streams_groups`]. Each is a typed operation parsed from its
//! arguments and applied to the [`Stream`] value with Redis's replies,
//! error texts and error order.
//!
//! Invariants: a stream key is never deleted for being empty (as Redis);
//! `*` ids come from the entry's log time (`ctx.now`, which only moves
//! forward) and never go backwards (see [`Stream::next_id`]); every write
//! emits Redis 7.0's keyspace events (`xadd`, `xtrim`, `xdel`, `xsetid`).
//! Errors Redis reports only after looking at the key (ids of XREAD after a
//! WRONGTYPE, XCLAIM's options after NOGROUP) are the run's, not the
//! check's, so the order of errors is Redis's.

use bytes::Bytes;

use super::errors::{NOT_INTEGER, SYNTAX, WRONGTYPE};
use super::notify;
use super::stream::{Stream, StreamId, Trim};
use super::table::{typed_read, typed_write, Apply, Parse, Query};
use super::{parse_i64, Ctx, Db, Entry, Output, Value};
use crate::cmd::cat::*;
use crate::cmd::{read, write, CommandSpec, Flags, SubcommandSpec, TimeoutAt, K1, NO_KEYS};
use crate::server::commands::connection::missing_subcommand;

pub(crate) const STREAM_GROUP: &str = "@stream";

/// `ERR Invalid stream ID specified as stream command argument`.
pub(crate) const INVALID_ID: &str = "ERR Invalid stream ID specified as stream command argument";

// ---- helpers -------------------------------------------------------------------

/// The stream at `key` for a read: `Ok(None)` if absent.
pub(crate) fn read_stream<'a>(
    db: &'a Db,
    ctx: &Ctx,
    key: &[u8],
) -> Result<Option<&'a Stream>, Output> {
    stream_of(db.lookup_read(ctx.db, key, ctx.now))
}

/// The stream at `key` for a write (an expired key is deleted first).
pub(crate) fn write_stream<'a>(
    db: &'a mut Db,
    ctx: &Ctx,
    key: &[u8],
) -> Result<Option<&'a Stream>, Output> {
    stream_of(db.lookup_write(ctx.db, key))
}

/// [`write_stream`] for the writes Redis looks their key up for with
/// `lookupKeyRead` (XREADGROUP, XACK, XCLAIM, XAUTOCLAIM): a missing key
/// sends `keymiss`.
pub(crate) fn write_stream_as_read<'a>(
    db: &'a mut Db,
    ctx: &Ctx,
    key: &[u8],
) -> Result<Option<&'a Stream>, Output> {
    stream_of(db.lookup_write_as_read(ctx.db, key))
}

fn stream_of(entry: Option<&Entry>) -> Result<Option<&Stream>, Output> {
    match entry.map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Stream(s)) => Ok(Some(&**s)),
        Some(_) => Err(Output::err(WRONGTYPE)),
    }
}

/// Runs `f` on the stream at `key`, which the caller found with
/// [`write_stream`] (or created).
pub(crate) fn edit_stream<R>(
    db: &mut Db,
    ctx: &Ctx,
    key: &[u8],
    f: impl FnOnce(&mut Stream) -> R,
) -> R {
    db.modify(ctx.db, key, |value| match value {
        Value::Stream(s) => f(s),
        _ => unreachable!("the caller found a stream at this key"),
    })
    .expect("the caller found this key")
}

/// A strict id (no `-`/`+`).
pub(crate) fn parse_strict_id(arg: &[u8]) -> Result<StreamId, Output> {
    StreamId::parse(arg, 0, true, false)
        .map(|(id, _)| id)
        .ok_or_else(|| Output::err(INVALID_ID))
}

/// An interval bound of XRANGE/XPENDING/XAUTOCLAIM: `(id` exclusive,
/// `-`/`+`, or an id with `missing_seq`; exclusive bounds are moved inward.
pub(crate) fn parse_interval(
    arg: &[u8],
    missing_seq: u64,
    start: bool,
) -> Result<StreamId, Output> {
    let exclusive = arg.len() > 1 && arg[0] == b'(';
    if !exclusive {
        return StreamId::parse(arg, missing_seq, false, false)
            .map(|(id, _)| id)
            .ok_or_else(|| Output::err(INVALID_ID));
    }
    let id = StreamId::parse(&arg[1..], missing_seq, true, false)
        .map(|(id, _)| id)
        .ok_or_else(|| Output::err(INVALID_ID))?;
    if start {
        id.incr()
            .ok_or_else(|| Output::err("ERR invalid start ID for the interval"))
    } else {
        id.decr()
            .ok_or_else(|| Output::err("ERR invalid end ID for the interval"))
    }
}

/// Redis's `getLongLongFromObjectOrReply`.
pub(crate) fn parse_count(arg: &[u8]) -> Result<i64, Output> {
    parse_i64(arg).ok_or_else(|| Output::err(NOT_INTEGER))
}

/// One entry as Redis replies it: `[id, [field, value, ...]]`.
pub(crate) fn entry_reply(id: StreamId, fields: &[Bytes]) -> Output {
    Output::Array(vec![
        Output::bulk(id.to_bytes()),
        Output::Array(fields.iter().cloned().map(Output::bulk).collect()),
    ])
}

/// Entries of `s` in `[start, end]`, at most `count` (0: all).
pub(crate) fn range_reply(
    s: &Stream,
    start: StreamId,
    end: StreamId,
    count: usize,
    rev: bool,
) -> Vec<Output> {
    let it = s
        .range(start, end, rev)
        .map(|(id, fields)| entry_reply(id, fields));
    if count == 0 {
        it.collect()
    } else {
        it.take(count).collect()
    }
}

/// Asks every case-insensitively.
fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

// ---- XADD / XTRIM --------------------------------------------------------------

/// Trimming options of XADD and XTRIM.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct TrimArgs {
    trim: Option<Trim>,
    approx: bool,
    limit: u64,
}

/// Redis's `streamParseAddOrTrimArgsOrReply`: the options and (XADD) the
/// id position.
fn parse_trim_args(args: &[Bytes], xadd: bool) -> Result<(TrimArgs, usize, bool), Output> {
    let mut t = TrimArgs {
        trim: None,
        approx: false,
        limit: 0,
    };
    let mut nomkstream = false;
    let mut limit_given = false;
    let mut i = 2;
    while i < args.len() {
        let more = args.len() - 1 - i;
        let opt = &args[i];
        if xadd && opt.as_ref() == b"*" {
            break;
        } else if (is(opt, "maxlen") || is(opt, "minid")) && more > 0 {
            if t.trim.is_some() {
                return Err(Output::err(
                    "ERR syntax error, MAXLEN and MINID options at the same time are not compatible",
                ));
            }
            t.approx = false;
            let next = &args[i + 1];
            if more >= 2 && next.as_ref() == b"~" {
                t.approx = true;
                i += 1;
            } else if more >= 2 && next.as_ref() == b"=" {
                i += 1;
            }
            let value = &args[i + 1];
            if is(opt, "maxlen") {
                let n = parse_count(value)?;
                if n < 0 {
                    return Err(Output::err("ERR The MAXLEN argument must be >= 0."));
                }
                t.trim = Some(Trim::MaxLen(n as u64));
            } else {
                t.trim = Some(Trim::MinId(parse_strict_id(value)?));
            }
            i += 2;
        } else if is(opt, "limit") && more > 0 {
            let n = parse_count(&args[i + 1])?;
            if n < 0 {
                return Err(Output::err("ERR The LIMIT argument must be >= 0."));
            }
            t.limit = n as u64;
            limit_given = true;
            i += 2;
        } else if xadd && is(opt, "nomkstream") {
            nomkstream = true;
            i += 1;
        } else if xadd {
            break;
        } else {
            return Err(Output::err(SYNTAX));
        }
    }
    if t.limit != 0 && t.trim.is_none() {
        return Err(Output::err(
            "ERR syntax error, LIMIT cannot be used without specifying a trimming strategy",
        ));
    }
    if !xadd && t.trim.is_none() {
        return Err(Output::err(
            "ERR syntax error, XTRIM must be called with a trimming strategy",
        ));
    }
    if limit_given {
        if !t.approx {
            return Err(Output::err(
                "ERR syntax error, LIMIT cannot be used without the special ~ option",
            ));
        }
    } else if t.approx {
        // 100 * stream-node-max-entries.
        t.limit = 100 * super::stream::NODE_MAX_ENTRIES;
    }
    Ok((t, i, nomkstream))
}

/// `XADD key [NOMKSTREAM] [MAXLEN|MINID [=|~] threshold [LIMIT count]] *|id field value [field value ...]`.
pub(crate) struct XAdd {
    key: Bytes,
    trim: TrimArgs,
    nomkstream: bool,
    id: Option<(StreamId, bool)>,
    fields: Vec<Bytes>,
}

impl Parse<'_> for XAdd {
    fn parse(args: &[Bytes]) -> Result<XAdd, Output> {
        let (trim, at, nomkstream) = parse_trim_args(args, true)?;
        let id = match args.get(at) {
            Some(arg) if arg.as_ref() == b"*" => None,
            Some(arg) => {
                Some(StreamId::parse(arg, 0, true, true).ok_or_else(|| Output::err(INVALID_ID))?)
            }
            None => None,
        };
        let fields = args.get(at + 1..).unwrap_or(&[]);
        if fields.len() < 2 || fields.len() % 2 == 1 {
            return Err(Output::err(
                "ERR wrong number of arguments for 'xadd' command",
            ));
        }
        if let Some((id, true)) = id {
            if id.is_zero() {
                return Err(Output::err(
                    "ERR The ID specified in XADD must be greater than 0-0",
                ));
            }
        }
        Ok(XAdd {
            key: args[1].clone(),
            trim,
            nomkstream,
            id,
            fields: fields.to_vec(),
        })
    }
}

/// Trims `key`'s stream as `t` says; emits `xtrim` when it removed entries.
fn trim_stream(db: &mut Db, ctx: &Ctx, key: &[u8], t: TrimArgs) -> u64 {
    let Some(trim) = t.trim else {
        return 0;
    };
    let removed = edit_stream(db, ctx, key, |s| s.trim(trim, t.approx, t.limit));
    if removed > 0 {
        db.notify(notify::STREAM, "xtrim", ctx.db, key);
    }
    removed
}

impl Apply<'_> for XAdd {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let exists = match write_stream(db, ctx, &self.key) {
            Err(e) => return e,
            Ok(None) if self.nomkstream => return Output::NIL,
            Ok(s) => s.is_some(),
        };
        if !exists {
            db.put(
                ctx.db,
                &self.key,
                Value::Stream(crate::kv::Shared::default()),
                None,
            );
        }
        let result = edit_stream(db, ctx, &self.key, |s| {
            if s.last_id == StreamId::MAX {
                return Err(Output::err(
                    "ERR The stream has exhausted the last possible ID, unable to add more items",
                ));
            }
            let id = s.next_id(self.id, ctx.now).ok_or_else(|| {
                Output::err(
                    "ERR The ID specified in XADD is equal or smaller than the target stream top item",
                )
            })?;
            s.append(id, self.fields);
            Ok(id)
        });
        let id = match result {
            Ok(id) => id,
            Err(e) => return e,
        };
        db.notify(notify::STREAM, "xadd", ctx.db, &self.key);
        trim_stream(db, ctx, &self.key, self.trim);
        Output::bulk(id.to_bytes())
    }
}

/// `XTRIM key MAXLEN|MINID [=|~] threshold [LIMIT count]`.
pub(crate) struct XTrim {
    key: Bytes,
    trim: TrimArgs,
}

impl Parse<'_> for XTrim {
    fn parse(args: &[Bytes]) -> Result<XTrim, Output> {
        let (trim, _, _) = parse_trim_args(args, false)?;
        Ok(XTrim {
            key: args[1].clone(),
            trim,
        })
    }
}

impl Apply<'_> for XTrim {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        match write_stream(db, ctx, &self.key) {
            Err(e) => e,
            Ok(None) => Output::Integer(0),
            Ok(Some(_)) => Output::Integer(trim_stream(db, ctx, &self.key, self.trim) as i64),
        }
    }
}

// ---- XRANGE / XREVRANGE / XLEN ------------------------------------------------------

/// `XRANGE key start end [COUNT n]` and `XREVRANGE key end start [COUNT n]`.
pub(crate) struct XRange {
    key: Bytes,
    start: StreamId,
    end: StreamId,
    count: Option<usize>,
    rev: bool,
}

impl Parse<'_> for XRange {
    fn parse(args: &[Bytes]) -> Result<XRange, Output> {
        let rev = args[0].len() == 9;
        let (start, end) = if rev {
            (&args[3], &args[2])
        } else {
            (&args[2], &args[3])
        };
        let start = parse_interval(start, 0, true)?;
        let end = parse_interval(end, u64::MAX, false)?;
        let mut count = None;
        let mut j = 4;
        while j < args.len() {
            if is(&args[j], "count") && j + 1 < args.len() {
                let n = parse_count(&args[j + 1])?;
                count = Some(usize::try_from(n.max(0)).unwrap_or(usize::MAX));
                j += 2;
            } else {
                return Err(Output::err(SYNTAX));
            }
        }
        Ok(XRange {
            key: args[1].clone(),
            start,
            end,
            count,
            rev,
        })
    }
}

impl Query<'_> for XRange {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let s = match read_stream(db, ctx, &self.key) {
            Err(e) => return e,
            Ok(None) => return Output::Array(vec![]),
            Ok(Some(s)) => s,
        };
        match self.count {
            Some(0) => Output::NilArray,
            count => Output::Array(range_reply(
                s,
                self.start,
                self.end,
                count.unwrap_or(0),
                self.rev,
            )),
        }
    }
}

fn xlen(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match read_stream(db, ctx, &args[1]) {
        Err(e) => e,
        Ok(None) => Output::Integer(0),
        Ok(Some(s)) => Output::Integer(s.len() as i64),
    }
}

// ---- XDEL -------------------------------------------------------------------------

/// `XDEL key id [id ...]`.
pub(crate) struct XDel {
    key: Bytes,
    ids: Vec<StreamId>,
}

impl Parse<'_> for XDel {
    fn parse(args: &[Bytes]) -> Result<XDel, Output> {
        // Redis looks the key up first, but a missing key answers 0 and a
        // wrong type WRONGTYPE before the ids: the run reparses them.
        Ok(XDel {
            key: args[1].clone(),
            ids: Vec::new(),
        })
    }
}

impl XDel {
    fn run(self, db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
        match write_stream(db, ctx, &self.key) {
            Err(e) => return e,
            Ok(None) => return Output::Integer(0),
            Ok(Some(_)) => {}
        }
        let mut ids = self.ids;
        for arg in &args[2..] {
            match parse_strict_id(arg) {
                Ok(id) => ids.push(id),
                Err(e) => return e,
            }
        }
        let deleted = edit_stream(db, ctx, &self.key, |s| {
            ids.iter().filter(|id| s.delete(**id)).count()
        });
        if deleted > 0 {
            db.notify(notify::STREAM, "xdel", ctx.db, &self.key);
        }
        Output::Integer(deleted as i64)
    }
}

fn xdel(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match XDel::parse(args) {
        Ok(op) => op.run(db, ctx, args),
        Err(e) => e,
    }
}

// ---- XSETID -----------------------------------------------------------------------

/// `XSETID key last-id [ENTRIESADDED n] [MAXDELETEDID id]`.
pub(crate) struct XSetId {
    key: Bytes,
    id: StreamId,
    entries_added: Option<u64>,
    max_deleted: StreamId,
}

impl Parse<'_> for XSetId {
    fn parse(args: &[Bytes]) -> Result<XSetId, Output> {
        let id = parse_strict_id(&args[2])?;
        let mut entries_added = None;
        let mut max_deleted = StreamId::MIN;
        let mut i = 3;
        while i < args.len() {
            let more = args.len() - 1 - i;
            if is(&args[i], "entriesadded") && more > 0 {
                let n = parse_count(&args[i + 1])?;
                if n < 0 {
                    return Err(Output::err("ERR entries_added must be positive"));
                }
                entries_added = Some(n as u64);
                i += 2;
            } else if is(&args[i], "maxdeletedid") && more > 0 {
                max_deleted = parse_strict_id(&args[i + 1])?;
                if id < max_deleted {
                    return Err(Output::err("ERR The ID specified in XSETID is smaller than the provided max_deleted_entry_id"));
                }
                i += 2;
            } else {
                return Err(Output::err(SYNTAX));
            }
        }
        Ok(XSetId {
            key: args[1].clone(),
            id,
            entries_added,
            max_deleted,
        })
    }
}

impl Apply<'_> for XSetId {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let s = match write_stream(db, ctx, &self.key) {
            Err(e) => return e,
            Ok(None) => return Output::err(super::errors::NO_SUCH_KEY),
            Ok(Some(s)) => s,
        };
        if !s.is_empty() {
            if self.id < s.last_entry_id() {
                return Output::err(
                    "ERR The ID specified in XSETID is smaller than the target stream top item",
                );
            }
            if self.entries_added.is_some_and(|n| s.len() > n) {
                return Output::err("ERR The entries_added specified in XSETID is smaller than the target stream length");
            }
        }
        edit_stream(db, ctx, &self.key, |s| {
            s.last_id = self.id;
            if let Some(n) = self.entries_added {
                s.entries_added = n;
            }
            if !self.max_deleted.is_zero() {
                s.max_deleted_id = self.max_deleted;
            }
        });
        db.notify(notify::STREAM, "xsetid", ctx.db, &self.key);
        Output::Ok
    }
}

// ---- XREAD ------------------------------------------------------------------------

/// The options of XREAD and XREADGROUP (Redis's `xreadCommand` parse).
pub(crate) struct ReadArgs {
    /// `BLOCK` milliseconds, if given.
    pub block_ms: Option<u64>,
    /// `COUNT` (0: all).
    pub count: usize,
    /// `NOACK`.
    pub noack: bool,
    /// `GROUP group consumer`.
    pub group: Option<(Bytes, Bytes)>,
    /// Index of the first key.
    pub streams_at: usize,
    /// Number of keys.
    pub streams: usize,
}

/// Parses XREAD's (`group` false) or XREADGROUP's options.
pub(crate) fn parse_read_args(args: &[Bytes], xreadgroup: bool) -> Result<ReadArgs, Output> {
    parse_read_options(args, xreadgroup, false)
}

/// XREAD or XREADGROUP called by a script: the error its options give
/// there. Redis 7.0 refuses `BLOCK` from scripts outright (when the parse
/// reaches it, naming the command as the script spelled it) rather than
/// running it without blocking as MULTI does.
pub(crate) fn script_read_check(args: &[Bytes]) -> Result<(), Output> {
    parse_read_options(args, is(&args[0], "xreadgroup"), true).map(|_| ())
}

fn parse_read_options(args: &[Bytes], xreadgroup: bool, script: bool) -> Result<ReadArgs, Output> {
    let mut r = ReadArgs {
        block_ms: None,
        count: 0,
        noack: false,
        group: None,
        streams_at: 0,
        streams: 0,
    };
    let mut i = 1;
    while i < args.len() {
        let more = args.len() - i - 1;
        let o = &args[i];
        if is(o, "block") && more > 0 {
            if script {
                return Err(Output::err(format!(
                    "ERR {} command is not allowed with BLOCK option from scripts",
                    String::from_utf8_lossy(&args[0])
                )));
            }
            let ms = parse_i64(&args[i + 1])
                .ok_or_else(|| Output::err("ERR timeout is not an integer or out of range"))?;
            if ms < 0 {
                return Err(Output::err("ERR timeout is negative"));
            }
            r.block_ms = Some(ms as u64);
            i += 2;
        } else if is(o, "count") && more > 0 {
            let n = parse_count(&args[i + 1])?;
            r.count = usize::try_from(n.max(0)).unwrap_or(usize::MAX);
            i += 2;
        } else if is(o, "streams") && more > 0 {
            r.streams_at = i + 1;
            let n = args.len() - r.streams_at;
            if n % 2 != 0 {
                return Err(Output::err("ERR Unbalanced XREAD list of streams: for each stream key an ID or '$' must be specified."));
            }
            r.streams = n / 2;
            break;
        } else if is(o, "group") && more >= 2 {
            if !xreadgroup {
                return Err(Output::err(
                    "ERR The GROUP option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            r.group = Some((args[i + 1].clone(), args[i + 2].clone()));
            i += 3;
        } else if is(o, "noack") {
            if !xreadgroup {
                return Err(Output::err(
                    "ERR The NOACK option is only supported by XREADGROUP. You called XREAD instead.",
                ));
            }
            r.noack = true;
            i += 1;
        } else {
            return Err(Output::err(SYNTAX));
        }
    }
    if r.streams_at == 0 {
        return Err(Output::err(SYNTAX));
    }
    if xreadgroup && r.group.is_none() {
        return Err(Output::err("ERR Missing GROUP option for XREADGROUP"));
    }
    Ok(r)
}

/// The key positions of XREAD/XREADGROUP (the first half after STREAMS).
pub(crate) fn read_keys(args: &[Bytes]) -> Vec<usize> {
    let Some(at) = args.iter().position(|a| is(a, "streams")) else {
        return Vec::new();
    };
    let first = at + 1;
    let n = (args.len() - first) / 2;
    (first..first + n).collect()
}

/// `XREAD [COUNT n] [BLOCK ms] STREAMS key [key ...] id [id ...]`.
pub(crate) struct XRead {
    args: Vec<Bytes>,
    opts: ReadArgs,
}

impl Parse<'_> for XRead {
    fn parse(args: &[Bytes]) -> Result<XRead, Output> {
        let opts = parse_read_args(args, false)?;
        Ok(XRead {
            args: args.to_vec(),
            opts,
        })
    }
}

impl XRead {
    /// The ids after resolving `$` (each stream's last id), for a reader
    /// that waits: the `$` of its first attempt.
    pub(crate) fn resolve(&self, db: &Db, ctx: &Ctx) -> Result<Vec<StreamId>, Output> {
        let r = &self.opts;
        let mut ids = Vec::with_capacity(r.streams);
        for i in 0..r.streams {
            let key = &self.args[r.streams_at + i];
            let s = read_stream(db, ctx, key)?;
            let arg = &self.args[r.streams_at + r.streams + i];
            if arg.as_ref() == b"$" {
                ids.push(s.map_or(StreamId::MIN, |s| s.last_id));
            } else if arg.as_ref() == b">" {
                return Err(Output::err("ERR The > ID can be specified only when calling XREADGROUP using the GROUP <group> <consumer> option."));
            } else {
                ids.push(parse_strict_id(arg)?);
            }
        }
        Ok(ids)
    }
}

impl Query<'_> for XRead {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let ids = match self.resolve(db, ctx) {
            Ok(ids) => ids,
            Err(e) => return e,
        };
        let r = &self.opts;
        let mut out = Vec::new();
        for (i, after) in ids.into_iter().enumerate() {
            let key = &self.args[r.streams_at + i];
            let Ok(Some(s)) = read_stream(db, ctx, key) else {
                continue;
            };
            if s.is_empty() || s.last_entry_id() <= after {
                continue;
            }
            let Some(start) = after.incr() else {
                continue;
            };
            let entries = range_reply(s, start, StreamId::MAX, r.count, false);
            out.push((Output::bulk(key.clone()), Output::Array(entries)));
        }
        if out.is_empty() {
            Output::NilArray
        } else {
            Output::KeyedArrays(out)
        }
    }
}

/// True if `args` are an XREAD with a `$` id.
pub(crate) fn has_dollar(args: &[Bytes]) -> bool {
    args.first().is_some_and(|name| is(name, "xread"))
        && parse_read_args(args, false).is_ok_and(|r| {
            args[r.streams_at + r.streams..]
                .iter()
                .any(|a| a.as_ref() == b"$")
        })
}

/// XREAD's arguments with each `$` replaced by its stream's last id in
/// database `db` at `now_ms` (`0-0` for a missing or wrong-typed key: the
/// attempt reports the type).
pub(crate) fn resolve_dollar(map: &Db, db: u8, args: &[Bytes], now_ms: u64) -> Vec<Bytes> {
    let mut args = args.to_vec();
    let Ok(r) = parse_read_args(&args, false) else {
        return args;
    };
    for i in 0..r.streams {
        let at = r.streams_at + r.streams + i;
        if args[at].as_ref() != b"$" {
            continue;
        }
        let last = map
            .dbs
            .get(usize::from(db))
            .and_then(|ks| ks.live(&args[r.streams_at + i], now_ms))
            .and_then(|e| match &e.value {
                Value::Stream(s) => Some(s.last_id),
                _ => None,
            })
            .unwrap_or(StreamId::MIN);
        args[at] = last.to_bytes();
    }
    args
}

// ---- the table ---------------------------------------------------------------------

use super::streams_groups::{XAck, XAutoClaimEntry, XClaim, XGroup, XInfo, XPending, XReadGroup};

const RW: (crate::acl::KeyAccess, crate::acl::KeyAccess) = (KA_RW, KA_RW);
const R: (crate::acl::KeyAccess, crate::acl::KeyAccess) = (KA_R, KA_R);
const STREAM: C = C::STREAM;

/// A subcommand row of XGROUP or XINFO as Redis 7.0.15's `COMMAND INFO`
/// lists it. The containers are key-space commands, so their own parse
/// routes the subcommand; these rows give the subcommands' key positions
/// (ACL checks, `COMMAND GETKEYS`), flags and categories (`COMMAND INFO`,
/// ACL `+xgroup|create`, `INFO commandstats`). The handler is never called
/// for a key-space command.
const fn sub(
    name: &'static str,
    full_name: &'static str,
    arity: i32,
    flags: Flags,
    acl_categories: C,
    keys: (i64, i64, i64),
) -> SubcommandSpec {
    SubcommandSpec {
        keys,
        ..SubcommandSpec::new(name, full_name, arity, missing_subcommand, acl_categories)
            .with_flags(flags)
    }
}

const HELP: Flags = Flags::LOADING.or(Flags::STALE);
const W: Flags = Flags::WRITE;
const WD: Flags = Flags::WRITE.or(Flags::DENYOOM);
const RO: Flags = Flags::READONLY;

pub(super) static XGROUP_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub(
        "create",
        "xgroup|create",
        -5,
        WD,
        cats(&[WRITE, STREAM, SLOW]),
        K2,
    )
    .doc("Create a consumer group.", "5.0.0", "O(1)"),
    sub(
        "createconsumer",
        "xgroup|createconsumer",
        5,
        WD,
        cats(&[WRITE, STREAM, SLOW]),
        K2,
    )
    .doc("Create a consumer in a consumer group.", "6.2.0", "O(1)"),
    sub(
        "delconsumer",
        "xgroup|delconsumer",
        5,
        W,
        cats(&[WRITE, STREAM, SLOW]),
        K2,
    )
    .doc("Delete a consumer from a consumer group.", "5.0.0", "O(1)"),
    sub(
        "destroy",
        "xgroup|destroy",
        4,
        W,
        cats(&[WRITE, STREAM, SLOW]),
        K2,
    )
    .doc(
        "Destroy a consumer group.",
        "5.0.0",
        "O(N) where N is the number of entries in the group's pending entries list (PEL).",
    ),
    sub(
        "help",
        "xgroup|help",
        2,
        HELP,
        cats(&[STREAM, SLOW]),
        NO_KEYS,
    )
    .doc(
        "Show helpful text about the different subcommands",
        "5.0.0",
        "O(1)",
    ),
    sub(
        "setid",
        "xgroup|setid",
        -5,
        W,
        cats(&[WRITE, STREAM, SLOW]),
        K2,
    )
    .doc(
        "Set a consumer group to an arbitrary last delivered ID value.",
        "5.0.0",
        "O(1)",
    ),
];

pub(super) static XINFO_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub(
        "consumers",
        "xinfo|consumers",
        4,
        RO,
        cats(&[READ, STREAM, SLOW]),
        K2,
    )
    .doc("List the consumers in a consumer group", "5.0.0", "O(1)"),
    sub(
        "groups",
        "xinfo|groups",
        3,
        RO,
        cats(&[READ, STREAM, SLOW]),
        K2,
    )
    .doc("List the consumer groups of a stream", "5.0.0", "O(1)"),
    sub(
        "help",
        "xinfo|help",
        2,
        HELP,
        cats(&[STREAM, SLOW]),
        NO_KEYS,
    )
    .doc(
        "Show helpful text about the different subcommands",
        "5.0.0",
        "O(1)",
    ),
    sub(
        "stream",
        "xinfo|stream",
        -3,
        RO,
        cats(&[READ, STREAM, SLOW]),
        K2,
    )
    .doc("Get information about a stream", "5.0.0", "O(1)"),
];

/// The key right after the subcommand.
const K2: (i64, i64, i64) = (2, 2, 1);

/// The stream commands (Redis 7.0.15's `COMMAND INFO`).
pub(crate) static COMMANDS: &[CommandSpec] = &[
    write("xadd", -5, F_FAST_DENYOOM, STREAM_GROUP, K1, typed_write::<XAdd>())
        .acl(cats(&[WRITE, STREAM, FAST]), RW)
        .doc("Appends a new message to a stream. Creates the key if it doesn't exist.", "5.0.0", "O(1) when adding a new entry, O(N) when trimming where N being the number of entries evicted."),
    write("xtrim", -4, F_NONE, STREAM_GROUP, K1, typed_write::<XTrim>())
        .acl(cats(&[WRITE, STREAM, SLOW]), RW)
        .doc("Deletes messages from the beginning of a stream.", "5.0.0", "O(N), with N being the number of evicted entries. Constant times are very small however, since entries are organized in macro nodes containing multiple entries that can be released with a single deallocation."),
    write("xdel", -3, F_FAST, STREAM_GROUP, K1, (crate::cmd::no_check, xdel))
        .acl(cats(&[WRITE, STREAM, FAST]), RW)
        .doc("Returns the number of messages after removing them from a stream.", "5.0.0", "O(1) for each single item to delete in the stream, regardless of the stream size."),
    read("xrange", -4, F_NONE, STREAM_GROUP, K1, typed_read::<XRange>())
        .acl(cats(&[READ, STREAM, SLOW]), R)
        .doc("Returns the messages from a stream within a range of IDs.", "5.0.0", "O(N) with N being the number of elements being returned. If N is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1)."),
    read("xrevrange", -4, F_NONE, STREAM_GROUP, K1, typed_read::<XRange>())
        .acl(cats(&[READ, STREAM, SLOW]), R)
        .doc("Returns the messages from a stream within a range of IDs in reverse order.", "5.0.0", "O(N) with N being the number of elements returned. If N is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1)."),
    read("xlen", 2, F_FAST, STREAM_GROUP, K1, super::table::unchecked_read(xlen))
        .acl(cats(&[READ, STREAM, FAST]), R)
        .doc("Return the number of messages in a stream.", "5.0.0", "O(1)"),
    read("xread", -4, F_NONE, STREAM_GROUP, (0, 0, 0), typed_read::<XRead>())
        .keys_by(read_keys)
        .blocks(TimeoutAt::BlockOption, false)
        .acl(cats(&[READ, STREAM, SLOW, BLOCKING]), R)
        .doc("Returns messages from multiple streams with IDs greater than the ones requested. Blocks until a message is available otherwise.", "5.0.0", "For each stream mentioned: O(N) with N being the number of elements being returned, it means that XREAD-ing with a fixed COUNT is O(1). Note that when the BLOCK option is used, XADD will pay O(M) time in order to serve the M clients blocked on the stream getting new data."),
    write("xreadgroup", -7, F_NONE, STREAM_GROUP, (0, 0, 0), typed_write::<XReadGroup>())
        .keys_by(read_keys)
        .blocks(TimeoutAt::BlockOption, false)
        .acl(cats(&[WRITE, STREAM, SLOW, BLOCKING]), RW)
        .doc("Returns new or historical messages from a stream for a consumer in a group. Blocks until a message is available otherwise.", "5.0.0", "For each stream mentioned: O(M) with M being the number of elements returned. If M is constant (e.g. always asking for the first 10 elements with COUNT), you can consider it O(1). On the other side when XREADGROUP blocks, XADD will pay the O(N) time in order to serve the N clients blocked on the stream getting new data."),
    write("xsetid", -3, F_FAST_DENYOOM, STREAM_GROUP, K1, typed_write::<XSetId>())
        .acl(cats(&[WRITE, STREAM, FAST]), RW)
        .doc("An internal command for replicating stream values.", "5.0.0", "O(1)"),
    write("xgroup", -2, Flags::WRITE_NOT_SHOWN, STREAM_GROUP, NO_KEYS, typed_write::<XGroup>())
        .subcommands(XGROUP_SUBCOMMANDS)
        .acl(cats(&[SLOW]), RW)
        .doc("A container for consumer groups commands.", "5.0.0", "Depends on subcommand."),
    write("xack", -4, F_FAST, STREAM_GROUP, K1, typed_write::<XAck>())
        .acl(cats(&[WRITE, STREAM, FAST]), RW)
        .doc("Returns the number of messages that were successfully acknowledged by the consumer group member of a stream.", "5.0.0", "O(1) for each message ID processed."),
    read("xpending", -3, F_NONE, STREAM_GROUP, K1, typed_read::<XPending>())
        .acl(cats(&[READ, STREAM, SLOW]), R)
        .doc("Returns the information and entries from a stream consumer group's pending entries list.", "5.0.0", "O(N) with N being the number of elements returned, so asking for a small fixed number of entries per call is O(1). O(M), where M is the total number of entries scanned when used with the IDLE filter. When the command returns just the summary and the list of consumers is small, it runs in O(1) time; otherwise, an additional O(N) time for iterating every consumer."),
    write("xclaim", -6, F_FAST, STREAM_GROUP, K1, typed_write::<XClaim>())
        .acl(cats(&[WRITE, STREAM, FAST]), RW)
        .doc("Changes, or acquires, ownership of a message in a consumer group, as if the message was delivered a consumer group member.", "5.0.0", "O(log N) with N being the number of messages in the PEL of the consumer group."),
    write("xautoclaim", -6, F_FAST, STREAM_GROUP, K1, typed_write::<XAutoClaimEntry>())
        .acl(cats(&[WRITE, STREAM, FAST]), RW)
        .doc("Changes, or acquires, ownership of messages in a consumer group, as if the messages were delivered to as consumer group member.", "6.2.0", "O(1) if COUNT is small."),
    read("xinfo", -2, Flags::READONLY_NOT_SHOWN, STREAM_GROUP, NO_KEYS, typed_read::<XInfo>())
        .subcommands(XINFO_SUBCOMMANDS)
        .acl(cats(&[SLOW]), R)
        .doc("A container for stream introspection commands.", "5.0.0", "Depends on subcommand."),
];

#[cfg(test)]
mod tests;
