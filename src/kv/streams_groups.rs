//! Consumer-group commands (Redis 7.0.15): XGROUP, XREADGROUP, XACK,
//! XPENDING, XCLAIM, XAUTOCLAIM and XINFO, on the [`Stream`] value.
//!
//! Invariants: every time is the log's (`ctx.now`): delivery times, seen
//! times and the idle times computed from them are the same on every
//! replica. XREADGROUP, XCLAIM and XAUTOCLAIM change the pending lists and
//! are writes; XPENDING and XINFO are reads, their idle times computed at
//! the read's now. Consumer creation emits `xgroup-createconsumer` wherever
//! it happens (XREADGROUP, XCLAIM, XAUTOCLAIM), as Redis's
//! `streamCreateConsumer` does.

use bytes::Bytes;

use super::errors::SYNTAX;
use super::notify;
use super::stream::{Group, Stream, StreamId, ENTRIES_READ_UNKNOWN};
use super::streams::{
    edit_stream, entry_reply, parse_count, parse_interval, parse_read_args, parse_strict_id,
    range_reply, read_stream, write_stream, write_stream_as_read, ReadArgs, INVALID_ID,
    XGROUP_SUBCOMMANDS, XINFO_SUBCOMMANDS,
};
use super::table::{Apply, Parse, Query};
use super::{parse_i64, Ctx, Db, Output, Value};
use crate::cmd::SubcommandSpec;

fn is(arg: &[u8], word: &str) -> bool {
    arg.eq_ignore_ascii_case(word.as_bytes())
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

/// Redis's `addReplySubcommandSyntaxError`.
fn subcommand_syntax(command: &str, sub: &[u8]) -> Output {
    Output::err(format!(
        "ERR unknown subcommand or wrong number of arguments for '{}'. Try {command} HELP.",
        text(sub)
    ))
}

/// Redis 7's dispatch of a container's subcommands: unknown names and wrong
/// arities, before the command runs.
fn check_subcommand(command: &str, subs: &[SubcommandSpec], args: &[Bytes]) -> Result<(), Output> {
    let sub = &args[1];
    let Some(spec) = subs.iter().find(|spec| is(sub, spec.name)) else {
        return Err(Output::err(format!(
            "ERR unknown subcommand '{}'. Try {command} HELP.",
            text(sub)
        )));
    };
    if !crate::cmd::arity_ok(spec.arity, args.len()) {
        return Err(Output::err(format!(
            "ERR wrong number of arguments for '{}' command",
            spec.full_name
        )));
    }
    Ok(())
}

fn help(lines: &[&str]) -> Output {
    Output::Array(
        lines
            .iter()
            .map(|l| Output::Status(l.to_string()))
            .collect(),
    )
}

fn nogroup(key: &[u8], group: &[u8]) -> Output {
    Output::err(format!(
        "NOGROUP No such key '{}' or consumer group '{}'",
        text(key),
        text(group)
    ))
}

/// Creates `name` in `group` of the stream at `key` if absent, emitting
/// `xgroup-createconsumer`; refreshes its seen time otherwise.
fn consumer_seen(db: &mut Db, ctx: &Ctx, key: &[u8], group: &[u8], name: &Bytes) {
    let created = edit_stream(db, ctx, key, |s| {
        let Some(g) = s.groups.get_mut(group) else {
            return false;
        };
        let created = g.create_consumer(name, ctx.now);
        g.touch_consumer(name, ctx.now);
        created
    });
    if created {
        db.notify(notify::STREAM, "xgroup-createconsumer", ctx.db, key);
    }
}

// ---- XGROUP -----------------------------------------------------------------------

/// `XGROUP CREATE|SETID|DESTROY|CREATECONSUMER|DELCONSUMER|HELP ...`.
pub(crate) struct XGroup {
    args: Vec<Bytes>,
    mkstream: bool,
    entries_read: i64,
}

impl Parse<'_> for XGroup {
    fn parse(args: &[Bytes]) -> Result<XGroup, Output> {
        check_subcommand("XGROUP", XGROUP_SUBCOMMANDS, args)?;
        let sub = &args[1];
        let create = is(sub, "create");
        let setid = is(sub, "setid");
        let mut mkstream = false;
        let mut entries_read = ENTRIES_READ_UNKNOWN;
        if args.len() >= 4 {
            let mut i = 5;
            while i < args.len() {
                if create && is(&args[i], "mkstream") {
                    mkstream = true;
                    i += 1;
                } else if (create || setid) && is(&args[i], "entriesread") && i + 1 < args.len() {
                    entries_read = parse_count(&args[i + 1])?;
                    if entries_read < 0 && entries_read != ENTRIES_READ_UNKNOWN {
                        return Err(Output::err(
                            "ERR value for ENTRIESREAD must be positive or -1",
                        ));
                    }
                    i += 2;
                } else {
                    return Err(subcommand_syntax("XGROUP", sub));
                }
            }
        }
        let ok = match () {
            _ if is(sub, "help") => true,
            _ if create => (5..=8).contains(&args.len()),
            _ if setid => args.len() == 5 || args.len() == 7,
            _ => true,
        };
        if !ok {
            return Err(subcommand_syntax("XGROUP", sub));
        }
        Ok(XGroup {
            args: args.to_vec(),
            mkstream,
            entries_read,
        })
    }
}

impl Apply<'_> for XGroup {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let args = &self.args;
        let sub = &args[1];
        if is(sub, "help") {
            return help(&[
                "XGROUP <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CREATE <key> <groupname> <id|$> [option]",
                "    Create a new consumer group. Options are:",
                "    * MKSTREAM",
                "      Create the empty stream if it does not exist.",
                "    * ENTRIESREAD entries_read",
                "      Set the group's entries_read counter (internal use).",
                "CREATECONSUMER <key> <groupname> <consumer>",
                "    Create a new consumer in the specified group.",
                "DELCONSUMER <key> <groupname> <consumer>",
                "    Remove the specified consumer.",
                "DESTROY <key> <groupname>",
                "    Remove the specified group.",
                "SETID <key> <groupname> <id|$> [ENTRIESREAD entries_read]",
                "    Set the current group ID and entries_read counter.",
                "HELP",
                "    Prints this help.",
            ]);
        }
        let key = &args[2];
        let group = &args[3];
        let (exists, has_group, last_id) = match write_stream(db, ctx, key) {
            Err(e) => return e,
            Ok(None) => (false, false, StreamId::MIN),
            Ok(Some(s)) => (true, s.groups.contains_key(group), s.last_id),
        };
        if !self.mkstream {
            if !exists {
                return Output::err("ERR The XGROUP subcommand requires the key to exist. Note that for CREATE you may want to use the MKSTREAM option to create an empty stream automatically.");
            }
            if !has_group && !is(sub, "create") && !is(sub, "destroy") {
                return Output::err(format!(
                    "NOGROUP No such consumer group '{}' for key name '{}'",
                    text(group),
                    text(key)
                ));
            }
        }
        if is(sub, "create") {
            let id = if args[4].as_ref() == b"$" {
                last_id
            } else {
                match parse_strict_id(&args[4]) {
                    Ok(id) => id,
                    Err(e) => return e,
                }
            };
            if !exists {
                db.put(
                    ctx.db,
                    key,
                    Value::Stream(crate::kv::Shared::default()),
                    None,
                );
            } else if has_group {
                return Output::err("BUSYGROUP Consumer Group name already exists");
            }
            edit_stream(db, ctx, key, |s| {
                s.groups.insert(
                    group.clone(),
                    Group {
                        last_id: id,
                        entries_read: self.entries_read,
                        pel: Default::default(),
                        consumers: Default::default(),
                    },
                );
            });
            db.notify(notify::STREAM, "xgroup-create", ctx.db, key);
            Output::Ok
        } else if is(sub, "setid") {
            let id = if args[4].as_ref() == b"$" {
                last_id
            } else {
                match StreamId::parse(&args[4], 0, false, false) {
                    Some((id, _)) => id,
                    None => return Output::err(INVALID_ID),
                }
            };
            edit_stream(db, ctx, key, |s| {
                if let Some(g) = s.groups.get_mut(group.as_ref()) {
                    g.last_id = id;
                    g.entries_read = self.entries_read;
                }
            });
            db.notify(notify::STREAM, "xgroup-setid", ctx.db, key);
            Output::Ok
        } else if is(sub, "destroy") {
            if !has_group {
                return Output::Integer(0);
            }
            edit_stream(db, ctx, key, |s| s.groups.remove(group.as_ref()));
            db.notify(notify::STREAM, "xgroup-destroy", ctx.db, key);
            Output::Integer(1)
        } else if is(sub, "createconsumer") {
            let name = &args[4];
            let created = edit_stream(db, ctx, key, |s| {
                s.groups
                    .get_mut(group.as_ref())
                    .is_some_and(|g| g.create_consumer(name, ctx.now))
            });
            if created {
                db.notify(notify::STREAM, "xgroup-createconsumer", ctx.db, key);
            }
            Output::Integer(i64::from(created))
        } else {
            let name = &args[4];
            let pending = edit_stream(db, ctx, key, |s| {
                s.groups
                    .get_mut(group.as_ref())
                    .and_then(|g| g.delete_consumer(name))
            });
            if pending.is_some() {
                db.notify(notify::STREAM, "xgroup-delconsumer", ctx.db, key);
            }
            Output::Integer(pending.unwrap_or(0) as i64)
        }
    }
}

// ---- XREADGROUP -------------------------------------------------------------------

/// `XREADGROUP GROUP group consumer [COUNT n] [BLOCK ms] [NOACK] STREAMS key [key ...] id [id ...]`.
pub(crate) struct XReadGroup {
    args: Vec<Bytes>,
    opts: ReadArgs,
}

impl Parse<'_> for XReadGroup {
    fn parse(args: &[Bytes]) -> Result<XReadGroup, Output> {
        let opts = parse_read_args(args, true)?;
        Ok(XReadGroup {
            args: args.to_vec(),
            opts,
        })
    }
}

impl Apply<'_> for XReadGroup {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let r = &self.opts;
        let Some((group, consumer)) = r.group.clone() else {
            return Output::err("ERR Missing GROUP option for XREADGROUP");
        };
        // `None` is `>`.
        let mut ids: Vec<Option<StreamId>> = Vec::with_capacity(r.streams);
        for i in 0..r.streams {
            let key = &self.args[r.streams_at + i];
            let has_group = match write_stream_as_read(db, ctx, key) {
                Err(e) => return e,
                Ok(s) => s.is_some_and(|s| s.groups.contains_key(&group)),
            };
            if !has_group {
                return Output::err(format!(
                    "NOGROUP No such key '{}' or consumer group '{}' in XREADGROUP with GROUP option",
                    text(key),
                    text(&group)
                ));
            }
            let arg = &self.args[r.streams_at + r.streams + i];
            if arg.as_ref() == b"$" {
                return Output::err("ERR The $ ID is meaningless in the context of XREADGROUP: you want to read the history of this consumer by specifying a proper ID, or use the > ID to get new messages. The $ ID would just return an empty result set.");
            } else if arg.as_ref() == b">" {
                ids.push(None);
            } else {
                match parse_strict_id(arg) {
                    Ok(id) => ids.push(Some(id)),
                    Err(e) => return e,
                }
            }
        }
        let mut out = Vec::new();
        for (i, id) in ids.into_iter().enumerate() {
            let key = self.args[r.streams_at + i].clone();
            let served = match id {
                Some(after) => {
                    consumer_seen(db, ctx, &key, &group, &consumer);
                    Some(serve_history(
                        db, ctx, &key, &group, &consumer, after, r.count,
                    ))
                }
                None => {
                    let ready = match read_stream(db, ctx, &key) {
                        Ok(Some(s)) => s
                            .groups
                            .get(&group)
                            .is_some_and(|g| !s.is_empty() && s.last_entry_id() > g.last_id),
                        _ => false,
                    };
                    ready.then(|| {
                        consumer_seen(db, ctx, &key, &group, &consumer);
                        serve_new(db, ctx, &key, &group, &consumer, r.count, r.noack)
                    })
                }
            };
            if let Some(entries) = served {
                out.push((Output::bulk(key), Output::Array(entries)));
            }
        }
        if out.is_empty() {
            Output::NilArray
        } else {
            Output::KeyedArrays(out)
        }
    }
}

/// A consumer's own pending entries after `after` (Redis's
/// `streamReplyWithRangeFromConsumerPEL`): deleted entries as `[id, nil]`;
/// each entry still present counts as delivered again.
fn serve_history(
    db: &mut Db,
    ctx: &Ctx,
    key: &[u8],
    group: &[u8],
    consumer: &Bytes,
    after: StreamId,
    count: usize,
) -> Vec<Output> {
    edit_stream(db, ctx, key, |s| {
        let Some(start) = after.incr() else {
            return Vec::new();
        };
        let Some(g) = s.groups.get(group) else {
            return Vec::new();
        };
        let ids: Vec<StreamId> = g
            .consumers
            .get(consumer)
            .map(|c| {
                let it = c.pel.range(start..).copied();
                if count == 0 {
                    it.collect()
                } else {
                    it.take(count).collect()
                }
            })
            .unwrap_or_default();
        let mut out = Vec::with_capacity(ids.len());
        let mut delivered = Vec::new();
        for id in ids {
            match s.get(id) {
                Some(fields) => {
                    out.push(entry_reply(id, fields));
                    delivered.push(id);
                }
                None => out.push(Output::Array(vec![
                    Output::bulk(id.to_bytes()),
                    Output::NilArray,
                ])),
            }
        }
        if let Some(g) = s.groups.get_mut(group) {
            for id in delivered {
                if let Some(p) = g.pel.get_mut(&id) {
                    p.delivery_time = ctx.now;
                    p.delivery_count += 1;
                }
            }
        }
        out
    })
}

/// New entries after the group's last id, delivered to `consumer`.
fn serve_new(
    db: &mut Db,
    ctx: &Ctx,
    key: &[u8],
    group: &[u8],
    consumer: &Bytes,
    count: usize,
    noack: bool,
) -> Vec<Output> {
    edit_stream(db, ctx, key, |s| {
        let Some(start) = s.groups.get(group).and_then(|g| g.last_id.incr()) else {
            return Vec::new();
        };
        let ids: Vec<StreamId> = {
            let it = s.range(start, StreamId::MAX, false).map(|(id, _)| id);
            if count == 0 {
                it.collect()
            } else {
                it.take(count).collect()
            }
        };
        let mut out = Vec::with_capacity(ids.len());
        for id in ids {
            s.advance_group(group, id);
            if let Some(fields) = s.get(id) {
                out.push(entry_reply(id, fields));
            }
            if !noack {
                if let Some(g) = s.groups.get_mut(group) {
                    g.assign(id, consumer, ctx.now, 1);
                }
            }
        }
        if let Some(c) = s
            .groups
            .get_mut(group)
            .and_then(|g| g.consumers.get_mut(consumer))
        {
            c.active_time = ctx.now;
        }
        out
    })
}

// ---- XACK -------------------------------------------------------------------------

/// `XACK key group id [id ...]`.
pub(crate) struct XAck {
    args: Vec<Bytes>,
}

impl Parse<'_> for XAck {
    fn parse(args: &[Bytes]) -> Result<XAck, Output> {
        // The key and group are looked up before the ids are parsed.
        Ok(XAck {
            args: args.to_vec(),
        })
    }
}

impl Apply<'_> for XAck {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let (key, group) = (&self.args[1], &self.args[2]);
        match write_stream_as_read(db, ctx, key) {
            Err(e) => return e,
            Ok(Some(s)) if s.groups.contains_key(group) => {}
            Ok(_) => return Output::Integer(0),
        }
        let mut ids = Vec::with_capacity(self.args.len() - 3);
        for arg in &self.args[3..] {
            match parse_strict_id(arg) {
                Ok(id) => ids.push(id),
                Err(e) => return e,
            }
        }
        let acked = edit_stream(db, ctx, key, |s| {
            s.groups
                .get_mut(group.as_ref())
                .map_or(0, |g| ids.iter().filter(|id| g.ack(**id)).count())
        });
        Output::Integer(acked as i64)
    }
}

// ---- XPENDING ---------------------------------------------------------------------

/// `XPENDING key group [[IDLE min-idle] start end count [consumer]]`.
pub(crate) struct XPending {
    key: Bytes,
    group: Bytes,
    /// `(min idle, start, end, count, consumer)` for the extended form.
    range: Option<(i64, StreamId, StreamId, usize, Option<Bytes>)>,
}

impl Parse<'_> for XPending {
    fn parse(args: &[Bytes]) -> Result<XPending, Output> {
        let argc = args.len();
        if argc != 3 && !(6..=9).contains(&argc) {
            return Err(Output::err(SYNTAX));
        }
        let mut range = None;
        if argc >= 6 {
            let mut at = 3;
            let mut min_idle = 0;
            if is(&args[3], "idle") {
                min_idle = parse_count(&args[4])?;
                if argc < 8 {
                    return Err(Output::err(SYNTAX));
                }
                at += 2;
            }
            let count = parse_count(&args[at + 2])?;
            let count = usize::try_from(count.max(0)).unwrap_or(usize::MAX);
            let start = parse_interval(&args[at], 0, true)?;
            let end = parse_interval(&args[at + 1], u64::MAX, false)?;
            let consumer = args.get(at + 3).cloned();
            range = Some((min_idle, start, end, count, consumer));
        }
        Ok(XPending {
            key: args[1].clone(),
            group: args[2].clone(),
            range,
        })
    }
}

impl Query<'_> for XPending {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let s = match read_stream(db, ctx, &self.key) {
            Err(e) => return e,
            Ok(s) => s,
        };
        let Some(g) = s.and_then(|s| s.groups.get(&self.group)) else {
            return nogroup(&self.key, &self.group);
        };
        let Some((min_idle, start, end, count, consumer)) = self.range else {
            let (Some(first), Some(last)) = (g.pel.keys().next(), g.pel.keys().next_back()) else {
                return Output::Array(vec![
                    Output::Integer(0),
                    Output::NIL,
                    Output::NIL,
                    Output::NilArray,
                ]);
            };
            let consumers = g
                .consumers
                .iter()
                .filter(|(_, c)| !c.pel.is_empty())
                .map(|(name, c)| {
                    Output::Array(vec![
                        Output::bulk(name.clone()),
                        Output::bulk(c.pel.len().to_string()),
                    ])
                })
                .collect();
            return Output::Array(vec![
                Output::Integer(g.pel.len() as i64),
                Output::bulk(first.to_bytes()),
                Output::bulk(last.to_bytes()),
                Output::Array(consumers),
            ]);
        };
        let ids: Box<dyn Iterator<Item = StreamId>> = match &consumer {
            Some(name) => match g.consumers.get(name) {
                None => return Output::Array(vec![]),
                Some(c) if start <= end => Box::new(c.pel.range(start..=end).copied()),
                Some(_) => Box::new(std::iter::empty()),
            },
            None if start <= end => Box::new(g.pel.range(start..=end).map(|(id, _)| *id)),
            None => Box::new(std::iter::empty()),
        };
        let mut out = Vec::new();
        for id in ids {
            if out.len() >= count {
                break;
            }
            let Some(p) = g.pel.get(&id) else { continue };
            let idle = ctx.now.saturating_sub(p.delivery_time);
            if min_idle != 0 && (idle as i64) < min_idle {
                continue;
            }
            out.push(Output::Array(vec![
                Output::bulk(id.to_bytes()),
                Output::bulk(p.consumer.clone()),
                Output::Integer(idle as i64),
                Output::Integer(p.delivery_count as i64),
            ]));
        }
        Output::Array(out)
    }
}

// ---- XCLAIM / XAUTOCLAIM ------------------------------------------------------------

/// `XCLAIM key group consumer min-idle-time id [id ...] [IDLE ms] [TIME ms]
/// [RETRYCOUNT n] [FORCE] [JUSTID] [LASTID id]`.
pub(crate) struct XClaim {
    args: Vec<Bytes>,
}

impl Parse<'_> for XClaim {
    fn parse(args: &[Bytes]) -> Result<XClaim, Output> {
        // Every error of XCLAIM comes after the key and group lookups.
        Ok(XClaim {
            args: args.to_vec(),
        })
    }
}

struct ClaimOptions {
    min_idle: u64,
    ids: Vec<StreamId>,
    delivery_time: u64,
    retry_count: Option<u64>,
    force: bool,
    justid: bool,
    last_id: StreamId,
}

fn parse_claim(args: &[Bytes], now: u64) -> Result<ClaimOptions, Output> {
    let long = |arg: &[u8], what: &str| {
        parse_i64(arg).ok_or_else(|| Output::err(format!("ERR Invalid {what} for XCLAIM")))
    };
    let min_idle = long(&args[4], "min-idle-time argument")?.max(0) as u64;
    let mut j = 5;
    let mut ids = Vec::new();
    while j < args.len() {
        match StreamId::parse(&args[j], 0, true, false) {
            Some((id, _)) => ids.push(id),
            None => break,
        }
        j += 1;
    }
    let mut o = ClaimOptions {
        min_idle,
        ids,
        delivery_time: now,
        retry_count: None,
        force: false,
        justid: false,
        last_id: StreamId::MIN,
    };
    let mut delivery: Option<i64> = None;
    while j < args.len() {
        let more = args.len() - 1 - j;
        let opt = &args[j];
        if is(opt, "force") {
            o.force = true;
        } else if is(opt, "justid") {
            o.justid = true;
        } else if is(opt, "idle") && more > 0 {
            j += 1;
            let idle = long(&args[j], "IDLE option argument")?;
            delivery = Some((now as i64).saturating_sub(idle));
        } else if is(opt, "time") && more > 0 {
            j += 1;
            delivery = Some(long(&args[j], "TIME option argument")?);
        } else if is(opt, "retrycount") && more > 0 {
            j += 1;
            let n = long(&args[j], "RETRYCOUNT option argument")?;
            o.retry_count = (n >= 0).then_some(n as u64);
        } else if is(opt, "lastid") && more > 0 {
            j += 1;
            o.last_id = parse_strict_id(&args[j])?;
        } else {
            return Err(Output::err(format!(
                "ERR Unrecognized XCLAIM option '{}'",
                text(opt)
            )));
        }
        j += 1;
    }
    if let Some(t) = delivery {
        o.delivery_time = if t < 0 || t as u64 > now {
            now
        } else {
            t as u64
        };
    }
    Ok(o)
}

impl Apply<'_> for XClaim {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let (key, group, consumer) = (&self.args[1], &self.args[2], &self.args[3]);
        match write_stream_as_read(db, ctx, key) {
            Err(e) => return e,
            Ok(Some(s)) if s.groups.contains_key(group) => {}
            Ok(_) => return nogroup(key, group),
        }
        let o = match parse_claim(&self.args, ctx.now) {
            Ok(o) => o,
            Err(e) => return e,
        };
        let now = ctx.now;
        let (out, created) = edit_stream(db, ctx, key, |s| {
            let mut out = Vec::new();
            let mut created = false;
            if let Some(g) = s.groups.get_mut(group.as_ref()) {
                if o.last_id > g.last_id {
                    g.last_id = o.last_id;
                }
            }
            for &id in &o.ids {
                let exists = s.get(id).is_some();
                let Some(g) = s.groups.get_mut(group.as_ref()) else {
                    break;
                };
                if !exists {
                    g.ack(id);
                    continue;
                }
                let (owner, delivered_at, count) = match g.pel.get(&id) {
                    Some(p) => (Some(p.consumer.clone()), p.delivery_time, p.delivery_count),
                    None if o.force => (None, now, 1),
                    None => continue,
                };
                if owner.is_some()
                    && o.min_idle != 0
                    && now.saturating_sub(delivered_at) < o.min_idle
                {
                    continue;
                }
                created |= g.create_consumer(consumer, now);
                g.touch_consumer(consumer, now).active_time = now;
                let count = match o.retry_count {
                    Some(n) => n,
                    None if !o.justid => count + 1,
                    None => count,
                };
                g.assign(id, consumer, o.delivery_time, count);
                out.push(if o.justid {
                    Output::bulk(id.to_bytes())
                } else {
                    entry_reply(id, s.get(id).unwrap_or(&[]))
                });
            }
            (out, created)
        });
        if created {
            db.notify(notify::STREAM, "xgroup-createconsumer", ctx.db, key);
        }
        Output::Array(out)
    }
}

/// `XAUTOCLAIM key group consumer min-idle-time start [COUNT n] [JUSTID]`.
pub(crate) struct XAutoClaim {
    key: Bytes,
    group: Bytes,
    consumer: Bytes,
    min_idle: u64,
    start: StreamId,
    count: u64,
    justid: bool,
}

/// XAUTOCLAIM as proposed: its arguments are parsed at apply, after the
/// key's lookup, as Redis orders them (the lookup, the arguments, WRONGTYPE,
/// then NOGROUP), so a refused XAUTOCLAIM of a missing key still sends
/// `keymiss`.
pub(crate) struct XAutoClaimEntry {
    args: Vec<Bytes>,
}

impl Parse<'_> for XAutoClaimEntry {
    fn parse(args: &[Bytes]) -> Result<XAutoClaimEntry, Output> {
        Ok(XAutoClaimEntry {
            args: args.to_vec(),
        })
    }
}

impl Apply<'_> for XAutoClaimEntry {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let has_group = write_stream_as_read(db, ctx, &self.args[1])
            .map(|s| s.is_some_and(|s| s.groups.contains_key(&self.args[2])));
        let claim = match XAutoClaim::parse(&self.args) {
            Ok(claim) => claim,
            Err(e) => return e,
        };
        let has_group = match has_group {
            Ok(has_group) => has_group,
            Err(e) => return e,
        };
        if !has_group {
            return nogroup(&claim.key, &claim.group);
        }
        claim.apply(db, ctx)
    }
}

impl XAutoClaim {
    fn parse(args: &[Bytes]) -> Result<XAutoClaim, Output> {
        let min_idle = parse_i64(&args[4])
            .ok_or_else(|| Output::err("ERR Invalid min-idle-time argument for XAUTOCLAIM"))?;
        let start = parse_interval(&args[5], 0, true)?;
        let mut count = 100;
        let mut justid = false;
        let mut j = 6;
        while j < args.len() {
            let more = args.len() - 1 - j;
            if is(&args[j], "count") && more > 0 {
                let max = i64::MAX / 16;
                count = parse_i64(&args[j + 1])
                    .filter(|n| (1..=max).contains(n))
                    .ok_or_else(|| Output::err("ERR COUNT must be > 0"))?
                    as u64;
                j += 1;
            } else if is(&args[j], "justid") {
                justid = true;
            } else {
                return Err(Output::err(SYNTAX));
            }
            j += 1;
        }
        Ok(XAutoClaim {
            key: args[1].clone(),
            group: args[2].clone(),
            consumer: args[3].clone(),
            min_idle: min_idle.max(0) as u64,
            start,
            count,
            justid,
        })
    }
}

impl XAutoClaim {
    /// Runs the claim on the stream at `key`, which has the group
    /// ([`XAutoClaimEntry`] checked).
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let now = ctx.now;
        let (claimed, next, deleted, created) = edit_stream(db, ctx, &self.key, |s| {
            let mut attempts = self.count.saturating_mul(10);
            let mut count = self.count;
            let keys: Vec<StreamId> = s
                .groups
                .get(&self.group)
                .map(|g| {
                    g.pel
                        .range(self.start..)
                        .map(|(id, _)| *id)
                        .take(usize::try_from(attempts.saturating_add(1)).unwrap_or(usize::MAX))
                        .collect()
                })
                .unwrap_or_default();
            let mut at = 0;
            let mut claimed = Vec::new();
            let mut deleted = Vec::new();
            let mut created = false;
            while attempts > 0 && count > 0 && at < keys.len() {
                attempts -= 1;
                let id = keys[at];
                at += 1;
                let exists = s.get(id).is_some();
                let Some(g) = s.groups.get_mut(&self.group) else {
                    break;
                };
                if !exists {
                    g.ack(id);
                    deleted.push(Output::bulk(id.to_bytes()));
                    count -= 1;
                    continue;
                }
                let Some(p) = g.pel.get(&id) else { continue };
                if self.min_idle != 0 && now.saturating_sub(p.delivery_time) < self.min_idle {
                    continue;
                }
                let deliveries = p.delivery_count + u64::from(!self.justid);
                created |= g.create_consumer(&self.consumer, now);
                g.touch_consumer(&self.consumer, now).active_time = now;
                g.assign(id, &self.consumer, now, deliveries);
                claimed.push(if self.justid {
                    Output::bulk(id.to_bytes())
                } else {
                    entry_reply(id, s.get(id).unwrap_or(&[]))
                });
                count -= 1;
            }
            let next = keys.get(at).copied().unwrap_or(StreamId::MIN);
            (claimed, next, deleted, created)
        });
        if created {
            db.notify(notify::STREAM, "xgroup-createconsumer", ctx.db, &self.key);
        }
        Output::Array(vec![
            Output::bulk(next.to_bytes()),
            Output::Array(claimed),
            Output::Array(deleted),
        ])
    }
}

// ---- XINFO ------------------------------------------------------------------------

/// `XINFO STREAM key [FULL [COUNT n]] | GROUPS key | CONSUMERS key group | HELP`.
pub(crate) struct XInfo {
    args: Vec<Bytes>,
}

impl Parse<'_> for XInfo {
    fn parse(args: &[Bytes]) -> Result<XInfo, Output> {
        check_subcommand("XINFO", XINFO_SUBCOMMANDS, args)?;
        Ok(XInfo {
            args: args.to_vec(),
        })
    }
}

fn field(name: &str, value: Output) -> (Output, Output) {
    (Output::bulk(name.to_string()), value)
}

fn id_out(id: StreamId) -> Output {
    Output::bulk(id.to_bytes())
}

impl Query<'_> for XInfo {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let args = &self.args;
        if is(&args[1], "help") {
            return help(&[
                "XINFO <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
                "CONSUMERS <key> <groupname>",
                "    Show consumers of <groupname>.",
                "GROUPS <key>",
                "    Show the stream consumer groups.",
                "STREAM <key> [FULL [COUNT <count>]",
                "    Show information about the stream.",
                "HELP",
                "    Prints this help.",
            ]);
        }
        let key = &args[2];
        let s = match read_stream(db, ctx, key) {
            Err(e) => return e,
            Ok(None) => return Output::err(super::errors::NO_SUCH_KEY),
            Ok(Some(s)) => s,
        };
        if is(&args[1], "consumers") {
            let Some(g) = s.groups.get(&args[3]) else {
                return Output::err(format!(
                    "NOGROUP No such consumer group '{}' for key name '{}'",
                    text(&args[3]),
                    text(key)
                ));
            };
            let consumers = g
                .consumers
                .iter()
                .map(|(name, c)| {
                    Output::Map(vec![
                        field("name", Output::bulk(name.clone())),
                        field("pending", Output::Integer(c.pel.len() as i64)),
                        field(
                            "idle",
                            Output::Integer(ctx.now.saturating_sub(c.seen_time) as i64),
                        ),
                    ])
                })
                .collect();
            return Output::Array(consumers);
        }
        if is(&args[1], "groups") {
            let groups = s
                .groups
                .iter()
                .map(|(name, g)| {
                    Output::Map(vec![
                        field("name", Output::bulk(name.clone())),
                        field("consumers", Output::Integer(g.consumers.len() as i64)),
                        field("pending", Output::Integer(g.pel.len() as i64)),
                        field("last-delivered-id", id_out(g.last_id)),
                        field("entries-read", entries_read(g)),
                        field("lag", s.lag(g).map_or(Output::NIL, Output::Integer)),
                    ])
                })
                .collect();
            return Output::Array(groups);
        }
        stream_info(s, args)
    }
}

fn entries_read(g: &Group) -> Output {
    if g.entries_read == ENTRIES_READ_UNKNOWN {
        Output::NIL
    } else {
        Output::Integer(g.entries_read)
    }
}

/// `XINFO STREAM key [FULL [COUNT n]]`.
fn stream_info(s: &Stream, args: &[Bytes]) -> Output {
    let opts = &args[3..];
    let mut count: usize = 10;
    let full = !opts.is_empty();
    if full {
        if (opts.len() != 1 && opts.len() != 3) || !is(&opts[0], "full") {
            return subcommand_syntax("XINFO", &args[1]);
        }
        if opts.len() == 3 {
            if !is(&opts[1], "count") {
                return subcommand_syntax("XINFO", &args[1]);
            }
            match parse_count(&opts[2]) {
                Ok(n) if n < 0 => count = 10,
                Ok(n) => count = usize::try_from(n).unwrap_or(usize::MAX),
                Err(e) => return e,
            }
        }
    }
    let mut map = vec![
        field("length", Output::Integer(s.len() as i64)),
        field("radix-tree-keys", Output::Integer(s.node_count() as i64)),
        field(
            "radix-tree-nodes",
            Output::Integer(s.rax_nodes_estimate() as i64),
        ),
        field("last-generated-id", id_out(s.last_id)),
        field("max-deleted-entry-id", id_out(s.max_deleted_id)),
        field("entries-added", Output::Integer(s.entries_added as i64)),
        field("recorded-first-entry-id", id_out(s.first_id())),
    ];
    let take = |it: Box<dyn Iterator<Item = Output> + '_>| -> Vec<Output> {
        if count == 0 {
            it.collect()
        } else {
            it.take(count).collect()
        }
    };
    if !full {
        map.push(field("groups", Output::Integer(s.groups.len() as i64)));
        let edge = |rev: bool| {
            range_reply(s, StreamId::MIN, StreamId::MAX, 1, rev)
                .pop()
                .unwrap_or(Output::NIL)
        };
        map.push(field("first-entry", edge(false)));
        map.push(field("last-entry", edge(true)));
        return Output::Map(map);
    }
    map.push(field(
        "entries",
        Output::Array(range_reply(s, StreamId::MIN, StreamId::MAX, count, false)),
    ));
    let groups = s
        .groups
        .iter()
        .map(|(name, g)| {
            let pending = take(Box::new(g.pel.iter().map(|(id, p)| {
                Output::Array(vec![
                    id_out(*id),
                    Output::bulk(p.consumer.clone()),
                    Output::Integer(p.delivery_time as i64),
                    Output::Integer(p.delivery_count as i64),
                ])
            })));
            let consumers = g
                .consumers
                .iter()
                .map(|(cname, c)| {
                    let pending = take(Box::new(c.pel.iter().map(|id| {
                        let (time, n) = g
                            .pel
                            .get(id)
                            .map_or((0, 0), |p| (p.delivery_time, p.delivery_count));
                        Output::Array(vec![
                            id_out(*id),
                            Output::Integer(time as i64),
                            Output::Integer(n as i64),
                        ])
                    })));
                    Output::Map(vec![
                        field("name", Output::bulk(cname.clone())),
                        field("seen-time", Output::Integer(c.seen_time as i64)),
                        field("pel-count", Output::Integer(c.pel.len() as i64)),
                        field("pending", Output::Array(pending)),
                    ])
                })
                .collect();
            Output::Map(vec![
                field("name", Output::bulk(name.clone())),
                field("last-delivered-id", id_out(g.last_id)),
                field("entries-read", entries_read(g)),
                field("lag", s.lag(g).map_or(Output::NIL, Output::Integer)),
                field("pel-count", Output::Integer(g.pel.len() as i64)),
                field("pending", Output::Array(pending)),
                field("consumers", Output::Array(consumers)),
            ])
        })
        .collect();
    map.push(field("groups", Output::Array(groups)));
    Output::Map(map)
}
