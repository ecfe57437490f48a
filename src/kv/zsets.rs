//! Sorted-set commands (Redis 7.0.15): each a typed operation parsed from
//! its arguments and applied to the [`ZSet`] value, with Redis's replies,
//! error texts and error order. The ZUNION/ZINTER/ZDIFF family is in
//! [`super::zsets_store`].
//!
//! Invariants: an emptied set is deleted; syntax and range errors that Redis
//! reports before looking at the key are the parser's (answered before
//! proposing); scores are replied as [`Output::Double`] (`%.17g`, RESP3
//! doubles). The blocking pops (BZPOPMIN/BZPOPMAX/BZMPOP) are not here: they
//! reuse [`ZPop::run`] and [`ZMPop::run`].

use bytes::Bytes;

use super::errors::{NOT_FLOAT, NOT_INTEGER, SYNTAX, WRONGTYPE};
use super::keys::{parse_cursor, parse_scan_options};
use super::notify;
use super::table::{typed_read, typed_unchanged, typed_write, Apply, Parse, Query, Unchanged};
use super::unchanged::wrong_type;
use super::zset::{format_score, AddFlags, AddOutcome, LexBound, LexRange, ScoreRange, ZSet};
use super::{glob, mix, parse_i64, Ctx, Db, Output, Value};
use crate::cmd::cat::*;
use crate::cmd::{read, write, CommandSpec, K1, K12, NO_KEYS};

const ZSET_GROUP: &str = "@sortedset";

/// `ERR min or max is not a float`.
pub(crate) const RANGE_NOT_FLOAT: &str = "ERR min or max is not a float";
/// `ERR min or max not valid string range item`.
pub(crate) const RANGE_NOT_LEX: &str = "ERR min or max not valid string range item";

// ---- helpers -------------------------------------------------------------------

/// A score as Redis replies it.
pub(crate) fn score_reply(score: f64) -> Output {
    Output::Double(format_score(score))
}

/// The sorted set at `key` for a read: `Ok(None)` if absent.
pub(crate) fn read_zset<'a>(db: &'a Db, ctx: &Ctx, key: &[u8]) -> Result<Option<&'a ZSet>, Output> {
    match db.lookup_read(ctx.db, key, ctx.now).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::ZSet(z)) => Ok(Some(z)),
        Some(_) => Err(Output::err(WRONGTYPE)),
    }
}

/// For a write: `Ok(true)` if a sorted set is at `key`, `Ok(false)` if absent.
pub(crate) fn write_zset(db: &mut Db, ctx: &Ctx, key: &[u8]) -> Result<bool, Output> {
    match db.lookup_write(ctx.db, key).map(|e| &e.value) {
        None => Ok(false),
        Some(Value::ZSet(_)) => Ok(true),
        Some(_) => Err(Output::err(WRONGTYPE)),
    }
}

/// Runs `f` on the existing sorted set at `key` (checked by [`write_zset`]);
/// deletes the key if `f` leaves it empty.
pub(crate) fn modify_zset<R>(
    db: &mut Db,
    ctx: &Ctx,
    key: &[u8],
    f: impl FnOnce(&mut ZSet) -> R,
) -> R {
    let (result, empty) = db
        .modify(ctx.db, key, |v| match v {
            Value::ZSet(z) => {
                let r = f(z);
                (r, z.is_empty())
            }
            _ => unreachable!("checked to be a sorted set by the caller"),
        })
        .expect("the sorted set exists: checked by the caller");
    if empty {
        db.remove(ctx.db, key);
    }
    result
}

/// Stores a freshly built set at `dst` (replacing any value and TTL), or
/// deletes `dst` when the set is empty; replies its size. `event` is the
/// command's keyspace event for a stored result (`zrangestore` ...).
pub(crate) fn store_result(
    db: &mut Db,
    ctx: &Ctx,
    dst: &Bytes,
    set: ZSet,
    event: &'static str,
) -> Output {
    let len = set.len();
    if len == 0 {
        // Redis's dbDelete: an expired destination is deleted (a `del`),
        // not expired.
        if db.remove(ctx.db, dst).is_some() {
            db.notify(notify::GENERIC, "del", ctx.db, dst);
        }
    } else {
        db.expire_if_needed(ctx.db, dst);
        db.put(ctx.db, dst, Value::ZSet(crate::kv::Shared::new(set)), None);
        db.notify(notify::ZSET, event, ctx.db, dst);
    }
    Output::Integer(len as i64)
}

/// The events of a removal from the sorted set at `key`: `event`, then
/// `del` if it emptied.
fn removed_events(db: &mut Db, ctx: &Ctx, key: &[u8], event: &'static str) {
    db.notify(notify::ZSET, event, ctx.db, key);
    db.notify_if_deleted(ctx.db, key);
}

/// Redis's `getDoubleFromObject`: the whole argument is a float (`inf`
/// allowed), not NaN, no leading space, no overflow to infinity and no
/// underflow to zero.
pub(crate) fn parse_score(arg: &[u8]) -> Option<f64> {
    let text = std::str::from_utf8(arg).ok()?;
    if text.is_empty() || text.as_bytes()[0].is_ascii_whitespace() {
        return None;
    }
    let value = parse_c_double(text)?;
    if value.is_nan() {
        return None;
    }
    let unsigned = text.trim_start_matches(['+', '-']).to_ascii_lowercase();
    if value.is_infinite() && unsigned != "inf" && unsigned != "infinity" {
        return None; // ERANGE overflow
    }
    if value == 0.0 {
        let mantissa = unsigned.split('e').next().unwrap_or("");
        if mantissa.bytes().any(|c| matches!(c, b'1'..=b'9')) {
            return None; // ERANGE underflow to zero
        }
    }
    Some(value)
}

/// The whole of `text` as C's `strtod` reads a number: decimal (as Rust
/// parses it: `inf`, `infinity`, `nan`, exponents) or hexadecimal
/// (`0x1.8p3`), with an optional sign.
pub(crate) fn parse_c_double(text: &str) -> Option<f64> {
    let (negative, unsigned) = match text.as_bytes().first() {
        Some(b'-') => (true, &text[1..]),
        Some(b'+') => (false, &text[1..]),
        _ => (false, text),
    };
    let Some(hex) = unsigned
        .strip_prefix("0x")
        .or_else(|| unsigned.strip_prefix("0X"))
    else {
        return text.parse().ok();
    };
    let (digits, exp) = match hex.find(['p', 'P']) {
        Some(at) => (&hex[..at], hex[at + 1..].parse::<i32>().ok()?),
        None => (hex, 0),
    };
    let (int, frac) = digits.split_once('.').unwrap_or((digits, ""));
    if int.is_empty() && frac.is_empty() {
        return None;
    }
    // Up to 32 significant hex digits exactly; any further nonzero digit
    // only sets a sticky bit (far below the 53 kept), so rounding is right.
    let mut mantissa: u128 = 0;
    let mut shift: i64 = 0;
    let mut sticky = false;
    for (i, c) in int.chars().chain(frac.chars()).enumerate() {
        let d = c.to_digit(16)?;
        if mantissa >> 124 == 0 {
            mantissa = (mantissa << 4) | u128::from(d);
            if i >= int.len() {
                shift -= 4;
            }
        } else {
            sticky |= d != 0;
            if i < int.len() {
                shift += 4;
            }
        }
    }
    if sticky {
        mantissa |= 1;
    }
    let exp2 = i64::from(exp) + shift;
    // Scale in two exact steps: down to the smallest normal exponent at
    // most, then by an exact (possibly subnormal) power of two, so tiny
    // results round once instead of flushing to zero (`powi(-1074)` is 0).
    let first = exp2.clamp(-1022, 2000);
    let value = if mantissa == 0 {
        0.0
    } else {
        (mantissa as f64) * 2f64.powi(first as i32) * pow2((exp2 - first).min(0))
    };
    Some(if negative { -value } else { value })
}

/// 2^`exp` for `exp <= 0`, exact down to the smallest subnormal, else 0.
fn pow2(exp: i64) -> f64 {
    if exp >= -1022 {
        2f64.powi(exp as i32)
    } else if exp >= -1074 {
        f64::from_bits(1u64 << (exp + 1074))
    } else {
        0.0
    }
}

#[cfg(test)]
#[test]
fn hexadecimal_subnormals_are_not_flushed_to_zero() {
    // Redis 7.0.15: ZADD zq 0x1p-1074 m 0x1p-1030 n, then ZRANGE WITHSCORES
    // prints 4.9406564584124654e-324 and 8.6916947597937554e-311.
    assert_eq!(parse_c_double("0x1p-1074"), Some(f64::from_bits(1)));
    assert_eq!(
        crate::kv::zset::format_score(parse_c_double("0x1p-1030").unwrap_or(0.0)),
        "8.6916947597937554e-311"
    );
    assert_eq!(parse_c_double("0x1p-1080"), Some(0.0));
}

/// `strtod` as `zslParseRange` uses it: leading spaces allowed, the text up
/// to a NUL must all be consumed, overflow gives infinity, the empty string
/// is 0; NaN is refused.
fn parse_range_float(arg: &[u8]) -> Option<f64> {
    let arg = arg.split(|&c| c == 0).next().unwrap_or(&[]);
    if arg.is_empty() {
        return Some(0.0);
    }
    let text = std::str::from_utf8(arg).ok()?;
    let trimmed = text.trim_start_matches([' ', '\t', '\n', '\x0b', '\x0c', '\r']);
    let value = parse_c_double(trimmed)?;
    (!value.is_nan()).then_some(value)
}

/// `zslParseRange`.
pub(crate) fn parse_score_range(min: &[u8], max: &[u8]) -> Result<ScoreRange, Output> {
    fn bound(arg: &[u8]) -> Option<(f64, bool)> {
        match arg.split_first() {
            Some((b'(', rest)) => parse_range_float(rest).map(|v| (v, true)),
            _ => parse_range_float(arg).map(|v| (v, false)),
        }
    }
    match (bound(min), bound(max)) {
        (Some((min, min_exclusive)), Some((max, max_exclusive))) => Ok(ScoreRange {
            min,
            min_exclusive,
            max,
            max_exclusive,
        }),
        _ => Err(Output::err(RANGE_NOT_FLOAT)),
    }
}

/// `zslParseLexRange`.
pub(crate) fn parse_lex_range(min: &[u8], max: &[u8]) -> Result<LexRange, Output> {
    fn bound(arg: &[u8]) -> Option<LexBound> {
        match arg.split_first()? {
            (b'+', []) => Some(LexBound::PosInf),
            (b'-', []) => Some(LexBound::NegInf),
            (b'(', rest) => Some(LexBound::Exclusive(Bytes::copy_from_slice(rest))),
            (b'[', rest) => Some(LexBound::Inclusive(Bytes::copy_from_slice(rest))),
            _ => None,
        }
    }
    match (bound(min), bound(max)) {
        (Some(min), Some(max)) => Ok(LexRange { min, max }),
        _ => Err(Output::err(RANGE_NOT_LEX)),
    }
}

fn int_arg(arg: &[u8]) -> Result<i64, Output> {
    parse_i64(arg).ok_or_else(|| Output::err(NOT_INTEGER))
}

fn name_of(args: &[Bytes]) -> String {
    String::from_utf8_lossy(&args[0]).to_ascii_lowercase()
}

fn member_score_pairs(items: Vec<(Bytes, f64)>, withscores: bool) -> Output {
    if withscores {
        Output::Pairs(
            items
                .into_iter()
                .map(|(m, s)| (Output::bulk(m), score_reply(s)))
                .collect(),
        )
    } else {
        Output::Array(items.into_iter().map(|(m, _)| Output::bulk(m)).collect())
    }
}

// ---- ZADD / ZINCRBY ------------------------------------------------------------

/// `ZADD key [NX|XX] [GT|LT] [CH] [INCR] score member …` and `ZINCRBY key
/// increment member` (ZADD with INCR).
pub(crate) struct ZAdd {
    key: Bytes,
    flags: AddFlags,
    ch: bool,
    pairs: Vec<(f64, Bytes)>,
}

impl Parse<'_> for ZAdd {
    fn parse(args: &[Bytes]) -> Result<ZAdd, Output> {
        let mut flags = AddFlags::default();
        let mut ch = false;
        let mut at = 2;
        if name_of(args) == "zincrby" {
            flags.incr = true;
        } else {
            while at < args.len() {
                match args[at].to_ascii_lowercase().as_slice() {
                    b"nx" => flags.nx = true,
                    b"xx" => flags.xx = true,
                    b"gt" => flags.gt = true,
                    b"lt" => flags.lt = true,
                    b"ch" => ch = true,
                    b"incr" => flags.incr = true,
                    _ => break,
                }
                at += 1;
            }
        }
        let elements = args.len() - at;
        if elements == 0 || elements % 2 == 1 {
            return Err(Output::err(SYNTAX));
        }
        if flags.nx && flags.xx {
            return Err(Output::err(
                "ERR XX and NX options at the same time are not compatible",
            ));
        }
        if ((flags.gt || flags.lt) && flags.nx) || (flags.gt && flags.lt) {
            return Err(Output::err(
                "ERR GT, LT, and/or NX options at the same time are not compatible",
            ));
        }
        if flags.incr && elements > 2 {
            return Err(Output::err(
                "ERR INCR option supports a single increment-element pair",
            ));
        }
        let pairs = args[at..]
            .chunks(2)
            .map(|p| parse_score(&p[0]).map(|s| (s, p[1].clone())))
            .collect::<Option<Vec<_>>>()
            .ok_or_else(|| Output::err(NOT_FLOAT))?;
        Ok(ZAdd {
            key: args[1].clone(),
            flags,
            ch,
            pairs,
        })
    }
}

impl Unchanged<'_> for ZAdd {
    /// Without INCR: every member skipped by NX/XX/GT/LT or given the score
    /// it has (ZINCRBY and INCR always go to the log).
    fn unchanged(&self, db: &Db, ctx: &Ctx) -> Option<Output> {
        let f = self.flags;
        if f.incr {
            return None;
        }
        let z = match db.probe_key(ctx, &self.key)? {
            Some(Value::ZSet(z)) => z,
            None if f.xx => return Some(Output::Integer(0)),
            None => return None,
            Some(_) => return wrong_type(),
        };
        let untouched = self
            .pairs
            .iter()
            .all(|(score, member)| match z.score(member) {
                None => f.xx,
                Some(_) if f.nx => true,
                Some(current) => {
                    *score == current || (f.lt && *score >= current) || (f.gt && *score <= current)
                }
            });
        untouched.then_some(Output::Integer(0))
    }
}

impl Apply<'_> for ZAdd {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let exists = match write_zset(db, ctx, &self.key) {
            Ok(e) => e,
            Err(e) => return e,
        };
        let reply_nil = || {
            if self.flags.incr {
                Output::NIL
            } else {
                Output::Integer(0)
            }
        };
        if !exists {
            if self.flags.xx {
                return reply_nil();
            }
            let first_len = self.pairs.first().map_or(0, |(_, m)| m.len());
            db.put(
                ctx.db,
                &self.key,
                Value::ZSet(crate::kv::Shared::new(ZSet::with_hint(0, first_len))),
                None,
            );
        }
        let flags = self.flags;
        let ch = self.ch;
        let mut changed = false;
        let output = modify_zset(db, ctx, &self.key, |z| {
            let (mut added, mut updated, mut processed) = (0i64, 0i64, 0);
            let mut last = 0.0;
            for (score, member) in &self.pairs {
                let outcome = z.add(member, *score, flags);
                match outcome {
                    AddOutcome::NotANumber => {
                        changed = added + updated > 0;
                        return Output::err("ERR resulting score is not a number (NaN)");
                    }
                    AddOutcome::Added(s) => {
                        added += 1;
                        processed += 1;
                        last = s;
                    }
                    AddOutcome::Updated(s) => {
                        updated += 1;
                        processed += 1;
                        last = s;
                    }
                    AddOutcome::Unchanged(s) => {
                        processed += 1;
                        last = s;
                    }
                    AddOutcome::Skipped => {}
                }
            }
            changed = added + updated > 0;
            if flags.incr {
                if processed > 0 {
                    score_reply(last)
                } else {
                    Output::NIL
                }
            } else {
                Output::Integer(if ch { added + updated } else { added })
            }
        });
        if changed {
            let event = if flags.incr { "zincr" } else { "zadd" };
            db.notify(notify::ZSET, event, ctx.db, &self.key);
        }
        output
    }
}

// ---- simple reads --------------------------------------------------------------

/// `ZCARD key`.
pub(crate) struct ZCard {
    key: Bytes,
}

impl Parse<'_> for ZCard {
    fn parse(args: &[Bytes]) -> Result<ZCard, Output> {
        Ok(ZCard {
            key: args[1].clone(),
        })
    }
}

impl Query<'_> for ZCard {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        match read_zset(db, ctx, &self.key) {
            Ok(z) => Output::Integer(z.map_or(0, |z| z.len() as i64)),
            Err(e) => e,
        }
    }
}

/// `ZSCORE key member` and `ZMSCORE key member …`.
pub(crate) struct ZScore {
    key: Bytes,
    members: Vec<Bytes>,
    multi: bool,
}

impl Parse<'_> for ZScore {
    fn parse(args: &[Bytes]) -> Result<ZScore, Output> {
        Ok(ZScore {
            key: args[1].clone(),
            members: args[2..].to_vec(),
            multi: name_of(args) == "zmscore",
        })
    }
}

impl Query<'_> for ZScore {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let z = match read_zset(db, ctx, &self.key) {
            Ok(z) => z,
            Err(e) => return e,
        };
        let score = |m: &Bytes| z.and_then(|z| z.score(m)).map_or(Output::NIL, score_reply);
        if self.multi {
            Output::Array(self.members.iter().map(score).collect())
        } else {
            score(&self.members[0])
        }
    }
}

/// `ZRANK key member` / `ZREVRANK key member` (7.0: no WITHSCORE).
pub(crate) struct ZRank {
    key: Bytes,
    member: Bytes,
    rev: bool,
}

impl Parse<'_> for ZRank {
    fn parse(args: &[Bytes]) -> Result<ZRank, Output> {
        Ok(ZRank {
            key: args[1].clone(),
            member: args[2].clone(),
            rev: name_of(args) == "zrevrank",
        })
    }
}

impl Query<'_> for ZRank {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        match read_zset(db, ctx, &self.key) {
            Ok(Some(z)) => match z.rank(&self.member) {
                Some(r) if self.rev => Output::Integer((z.len() - 1 - r) as i64),
                Some(r) => Output::Integer(r as i64),
                None => Output::NIL,
            },
            Ok(None) => Output::NIL,
            Err(e) => e,
        }
    }
}

/// `ZCOUNT key min max` / `ZLEXCOUNT key min max`.
pub(crate) struct ZCount {
    key: Bytes,
    range: RangeSpec,
}

impl Parse<'_> for ZCount {
    fn parse(args: &[Bytes]) -> Result<ZCount, Output> {
        let range = if name_of(args) == "zlexcount" {
            RangeSpec::Lex(parse_lex_range(&args[2], &args[3])?)
        } else {
            RangeSpec::Score(parse_score_range(&args[2], &args[3])?)
        };
        Ok(ZCount {
            key: args[1].clone(),
            range,
        })
    }
}

impl Query<'_> for ZCount {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        match read_zset(db, ctx, &self.key) {
            Ok(Some(z)) => {
                let (first, end) = self.range.span(z, false);
                Output::Integer(end.saturating_sub(first) as i64)
            }
            Ok(None) => Output::Integer(0),
            Err(e) => e,
        }
    }
}

// ---- ranges ----------------------------------------------------------------------

/// Which members a range command selects.
#[derive(Clone, Debug)]
pub(crate) enum RangeSpec {
    /// By rank (start, stop; negative from the end).
    Rank(i64, i64),
    /// By score.
    Score(ScoreRange),
    /// By member (equal scores assumed, as Redis).
    Lex(LexRange),
}

impl RangeSpec {
    /// The forward ranks `[first, end)` selected (for a reverse lex range,
    /// found walking from the tail as Redis does).
    fn span(&self, z: &ZSet, rev: bool) -> (usize, usize) {
        match self {
            RangeSpec::Rank(start, stop) => {
                let len = z.len() as i64;
                let (mut start, mut stop) = (*start, *stop);
                if start < 0 {
                    start += len;
                }
                if stop < 0 {
                    stop += len;
                }
                start = start.max(0);
                if start > stop || start >= len {
                    return (0, 0);
                }
                stop = stop.min(len - 1);
                if rev {
                    ((len - 1 - stop) as usize, (len - start) as usize)
                } else {
                    (start as usize, stop as usize + 1)
                }
            }
            RangeSpec::Score(r) => z.score_span(r),
            RangeSpec::Lex(r) => z.lex_span(r, rev),
        }
    }
}

/// The ZRANGE family: ZRANGE, ZREVRANGE, ZRANGEBYSCORE, ZREVRANGEBYSCORE,
/// ZRANGEBYLEX, ZREVRANGEBYLEX and ZRANGESTORE.
pub(crate) struct ZRange {
    dst: Option<Bytes>,
    key: Bytes,
    range: RangeSpec,
    rev: bool,
    withscores: bool,
    offset: i64,
    limit: i64,
}

#[derive(Clone, Copy, PartialEq, Eq)]
enum RangeKind {
    Auto,
    Rank,
    Score,
    Lex,
}

impl Parse<'_> for ZRange {
    fn parse(args: &[Bytes]) -> Result<ZRange, Output> {
        let name = name_of(args);
        let (store, mut kind, mut rev) = match name.as_str() {
            "zrangestore" => (true, RangeKind::Auto, None),
            "zrange" => (false, RangeKind::Auto, None),
            "zrevrange" => (false, RangeKind::Rank, Some(true)),
            "zrangebyscore" => (false, RangeKind::Score, Some(false)),
            "zrevrangebyscore" => (false, RangeKind::Score, Some(true)),
            "zrangebylex" => (false, RangeKind::Lex, Some(false)),
            _ => (false, RangeKind::Lex, Some(true)),
        };
        let start = if store { 2 } else { 1 };
        let (mut withscores, mut offset, mut limit) = (false, 0i64, -1i64);
        let mut j = start + 3;
        while j < args.len() {
            let left = args.len() - j - 1;
            let opt = args[j].to_ascii_lowercase();
            if !store && opt == b"withscores" {
                withscores = true;
            } else if opt == b"limit" && left >= 2 {
                offset = int_arg(&args[j + 1])?;
                limit = int_arg(&args[j + 2])?;
                j += 2;
            } else if rev.is_none() && opt == b"rev" {
                rev = Some(true);
            } else if kind == RangeKind::Auto && opt == b"bylex" {
                kind = RangeKind::Lex;
            } else if kind == RangeKind::Auto && opt == b"byscore" {
                kind = RangeKind::Score;
            } else {
                return Err(Output::err(SYNTAX));
            }
            j += 1;
        }
        let rev = rev.unwrap_or(false);
        if kind == RangeKind::Auto {
            kind = RangeKind::Rank;
        }
        if limit != -1 && kind == RangeKind::Rank {
            return Err(Output::err(
                "ERR syntax error, LIMIT is only supported in combination with either BYSCORE or BYLEX",
            ));
        }
        if withscores && kind == RangeKind::Lex {
            return Err(Output::err(
                "ERR syntax error, WITHSCORES not supported in combination with BYLEX",
            ));
        }
        let (mut min, mut max) = (&args[start + 1], &args[start + 2]);
        if rev && kind != RangeKind::Rank {
            std::mem::swap(&mut min, &mut max);
        }
        let range = match kind {
            RangeKind::Score => RangeSpec::Score(parse_score_range(min, max)?),
            RangeKind::Lex => RangeSpec::Lex(parse_lex_range(min, max)?),
            _ => RangeSpec::Rank(int_arg(min)?, int_arg(max)?),
        };
        Ok(ZRange {
            dst: store.then(|| args[1].clone()),
            key: args[start].clone(),
            range,
            rev,
            withscores,
            offset,
            limit,
        })
    }
}

impl ZRange {
    /// The selected members in reply order.
    fn select(&self, z: &ZSet) -> Vec<(Bytes, f64)> {
        let (first, end) = self.range.span(z, self.rev);
        if first >= end {
            return Vec::new();
        }
        let (skip, take) = match self.range {
            RangeSpec::Rank(..) => (0, usize::MAX),
            _ => {
                if self.offset < 0 || (self.offset > 0 && self.offset as usize >= z.len()) {
                    return Vec::new();
                }
                let take = usize::try_from(self.limit).unwrap_or(usize::MAX);
                (self.offset as usize, take)
            }
        };
        let it = if self.rev {
            z.iter_from(end - 1, true)
        } else {
            z.iter_from(first, false)
        };
        it.take(end - first)
            .skip(skip)
            .take(take)
            .map(|(m, s)| (Bytes::copy_from_slice(m), s))
            .collect()
    }
}

impl Query<'_> for ZRange {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        match read_zset(db, ctx, &self.key) {
            Ok(Some(z)) => member_score_pairs(self.select(z), self.withscores),
            Ok(None) => Output::Array(Vec::new()),
            Err(e) => e,
        }
    }
}

impl Apply<'_> for ZRange {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let Some(dst) = self.dst.clone() else {
            return Output::err("ERR not a store command");
        };
        db.expire_if_needed(ctx.db, &self.key);
        let selected = match read_zset(db, ctx, &self.key) {
            Ok(Some(z)) => self.select(z),
            Ok(None) => Vec::new(),
            Err(e) => return e,
        };
        // zrangeResultBeginStore: the rank form knows its length up front.
        let hint = match self.range {
            RangeSpec::Rank(..) => selected.len(),
            _ => 0,
        };
        let mut set = ZSet::with_hint(hint, 0);
        for (member, score) in &selected {
            set.add(member, *score, AddFlags::default());
        }
        store_result(db, ctx, &dst, set, "zrangestore")
    }
}

// ---- removals ---------------------------------------------------------------------

/// `ZREM key member …`.
pub(crate) struct ZRem {
    key: Bytes,
    members: Vec<Bytes>,
}

impl Parse<'_> for ZRem {
    fn parse(args: &[Bytes]) -> Result<ZRem, Output> {
        Ok(ZRem {
            key: args[1].clone(),
            members: args[2..].to_vec(),
        })
    }
}

impl Apply<'_> for ZRem {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        match write_zset(db, ctx, &self.key) {
            Ok(true) => {}
            Ok(false) => return Output::Integer(0),
            Err(e) => return e,
        }
        let removed = modify_zset(db, ctx, &self.key, |z| {
            self.members
                .iter()
                .filter(|m| z.remove(m).is_some())
                .count()
        });
        if removed > 0 {
            removed_events(db, ctx, &self.key, "zrem");
        }
        Output::Integer(removed as i64)
    }
}

impl Unchanged<'_> for ZRem {
    fn unchanged(&self, db: &Db, ctx: &Ctx) -> Option<Output> {
        match db.probe_key(ctx, &self.key)? {
            Some(Value::ZSet(z)) if self.members.iter().any(|m| z.score(m).is_some()) => None,
            Some(Value::ZSet(_)) | None => Some(Output::Integer(0)),
            Some(_) => wrong_type(),
        }
    }
}

/// `ZREMRANGEBYRANK`, `ZREMRANGEBYSCORE`, `ZREMRANGEBYLEX`.
pub(crate) struct ZRemRange {
    key: Bytes,
    range: RangeSpec,
}

impl Parse<'_> for ZRemRange {
    fn parse(args: &[Bytes]) -> Result<ZRemRange, Output> {
        let range = match name_of(args).as_str() {
            "zremrangebyrank" => RangeSpec::Rank(int_arg(&args[2])?, int_arg(&args[3])?),
            "zremrangebyscore" => RangeSpec::Score(parse_score_range(&args[2], &args[3])?),
            _ => RangeSpec::Lex(parse_lex_range(&args[2], &args[3])?),
        };
        Ok(ZRemRange {
            key: args[1].clone(),
            range,
        })
    }
}

impl Apply<'_> for ZRemRange {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        match write_zset(db, ctx, &self.key) {
            Ok(true) => {}
            Ok(false) => return Output::Integer(0),
            Err(e) => return e,
        }
        let removed = modify_zset(db, ctx, &self.key, |z| {
            let (first, end) = self.range.span(z, false);
            z.remove_span(first, end)
        });
        if removed > 0 {
            let event = match self.range {
                RangeSpec::Rank(..) => "zremrangebyrank",
                RangeSpec::Score(_) => "zremrangebyscore",
                RangeSpec::Lex(_) => "zremrangebylex",
            };
            removed_events(db, ctx, &self.key, event);
        }
        Output::Integer(removed as i64)
    }
}

// ---- pops -------------------------------------------------------------------------

/// `ZPOPMIN key [count]` / `ZPOPMAX key [count]`.
pub(crate) struct ZPop {
    key: Bytes,
    max: bool,
    /// None: no count given (a flat `[member, score]` reply).
    count: Option<usize>,
}

/// Redis's event for a pop from the `max` (or min) end.
fn pop_event(max: bool) -> &'static str {
    if max {
        "zpopmax"
    } else {
        "zpopmin"
    }
}

/// The reply of a pop with an explicit count: pairs (nested in RESP3).
fn popped_reply(popped: Vec<(Bytes, f64)>) -> Output {
    member_score_pairs(popped, true)
}

impl Parse<'_> for ZPop {
    fn parse(args: &[Bytes]) -> Result<ZPop, Output> {
        if args.len() > 3 {
            return Err(Output::err(SYNTAX));
        }
        let count = match args.get(2) {
            None => None,
            // getPositiveLongFromObjectOrReply: one text for both errors.
            Some(arg) => match parse_i64(arg) {
                Some(n) if n >= 0 => Some(n as usize),
                _ => return Err(Output::err("ERR value is out of range, must be positive")),
            },
        };
        Ok(ZPop {
            key: args[1].clone(),
            max: name_of(args) == "zpopmax",
            count,
        })
    }
}

impl ZPop {
    /// One pop without a count from `key` (BZPOPMIN / BZPOPMAX's attempt).
    pub(crate) fn one(key: Bytes, max: bool) -> ZPop {
        ZPop {
            key,
            max,
            count: None,
        }
    }

    /// Pops from `key`: the reply, or `None` if the key is absent (the
    /// blocking form then waits; this form replies an empty array).
    pub(crate) fn run(&self, db: &mut Db, ctx: &Ctx) -> Result<Option<Output>, Output> {
        if !write_zset(db, ctx, &self.key)? {
            return Ok(None);
        }
        if self.count == Some(0) {
            return Ok(Some(Output::Array(Vec::new())));
        }
        let count = self.count.unwrap_or(1);
        let max = self.max;
        let popped = modify_zset(db, ctx, &self.key, |z| z.pop(count, max));
        removed_events(db, ctx, &self.key, pop_event(max));
        Ok(Some(match self.count {
            None => Output::Array(
                popped
                    .into_iter()
                    .flat_map(|(m, s)| [Output::bulk(m), score_reply(s)])
                    .collect(),
            ),
            Some(_) => popped_reply(popped),
        }))
    }
}

impl Apply<'_> for ZPop {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        match self.run(db, ctx) {
            Ok(Some(reply)) => reply,
            Ok(None) => Output::Array(Vec::new()),
            Err(e) => e,
        }
    }
}

/// `ZMPOP numkeys key … MIN|MAX [COUNT count]`.
pub(crate) struct ZMPop {
    keys: Vec<Bytes>,
    max: bool,
    count: usize,
}

impl ZMPop {
    /// Parses from the `numkeys` argument at `at` (ZMPOP: 1; BZMPOP: 2).
    pub(crate) fn parse_from(args: &[Bytes], at: usize) -> Result<ZMPop, Output> {
        let numkeys_error = || Output::err("ERR numkeys should be greater than 0");
        let numkeys = parse_i64(&args[at]).ok_or_else(numkeys_error)?;
        if numkeys < 1 {
            return Err(numkeys_error());
        }
        let where_at = (at as u64).saturating_add(numkeys as u64).saturating_add(1);
        if where_at >= args.len() as u64 {
            return Err(Output::err(SYNTAX));
        }
        let where_at = where_at as usize;
        let max = match args[where_at].to_ascii_lowercase().as_slice() {
            b"min" => false,
            b"max" => true,
            _ => return Err(Output::err(SYNTAX)),
        };
        let mut count = None;
        let mut j = where_at + 1;
        while j < args.len() {
            let more = args.len() - 1 - j;
            if count.is_none() && args[j].eq_ignore_ascii_case(b"count") && more > 0 {
                j += 1;
                let error = || Output::err("ERR count should be greater than 0");
                let n = parse_i64(&args[j]).ok_or_else(error)?;
                if n < 1 {
                    return Err(error());
                }
                count = Some(n as usize);
            } else {
                return Err(Output::err(SYNTAX));
            }
            j += 1;
        }
        Ok(ZMPop {
            keys: args[at + 1..where_at].to_vec(),
            max,
            count: count.unwrap_or(1),
        })
    }

    /// Pops from the first non-empty key: `[key, [[member, score] …]]`, or
    /// `None` if every key is absent (the blocking form then waits).
    pub(crate) fn run(&self, db: &mut Db, ctx: &Ctx) -> Result<Option<Output>, Output> {
        for key in &self.keys {
            if !write_zset(db, ctx, key)? {
                continue;
            }
            let (count, max) = (self.count, self.max);
            let popped = modify_zset(db, ctx, key, |z| z.pop(count, max));
            removed_events(db, ctx, key, pop_event(max));
            let items = popped
                .into_iter()
                .map(|(m, s)| Output::Array(vec![Output::bulk(m), score_reply(s)]))
                .collect();
            return Ok(Some(Output::Array(vec![
                Output::bulk(key.clone()),
                Output::Array(items),
            ])));
        }
        Ok(None)
    }
}

impl Parse<'_> for ZMPop {
    fn parse(args: &[Bytes]) -> Result<ZMPop, Output> {
        ZMPop::parse_from(args, 1)
    }
}

impl Apply<'_> for ZMPop {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        match self.run(db, ctx) {
            Ok(Some(reply)) => reply,
            Ok(None) => Output::NilArray,
            Err(e) => e,
        }
    }
}

// ---- ZRANDMEMBER, ZSCAN ------------------------------------------------------------

/// `ZRANDMEMBER key [count [WITHSCORES]]`, random from the command's seed.
pub(crate) struct ZRandMember {
    key: Bytes,
    count: Option<i64>,
    withscores: bool,
}

impl Parse<'_> for ZRandMember {
    fn parse(args: &[Bytes]) -> Result<ZRandMember, Output> {
        let mut count = None;
        let mut withscores = false;
        if args.len() >= 3 {
            let n = int_arg(&args[2])?;
            if n == i64::MIN {
                return Err(Output::err(
                    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                ));
            }
            if args.len() > 4 || (args.len() == 4 && !args[3].eq_ignore_ascii_case(b"withscores")) {
                return Err(Output::err(SYNTAX));
            }
            if args.len() == 4 {
                withscores = true;
                if !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&n) {
                    return Err(Output::err("ERR value is out of range"));
                }
            }
            count = Some(n);
        }
        Ok(ZRandMember {
            key: args[1].clone(),
            count,
            withscores,
        })
    }
}

impl Query<'_> for ZRandMember {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let z = match read_zset(db, ctx, &self.key) {
            Ok(z) => z,
            Err(e) => return e,
        };
        let Some(count) = self.count else {
            return match z {
                Some(z) => {
                    let at = (mix(ctx.seed) % z.len() as u64) as usize;
                    Output::Bulk(z.get(at).map(|(m, _)| Bytes::copy_from_slice(m)))
                }
                None => Output::NIL,
            };
        };
        let Some(z) = z else {
            return Output::Array(Vec::new());
        };
        let len = z.len();
        let mut seed = ctx.seed;
        let mut next = |n: usize| {
            seed = mix(seed);
            (seed % n as u64) as usize
        };
        let picked: Vec<usize> = if count < 0 {
            let n = count
                .unsigned_abs()
                .min(super::hashes::MAX_RANDOM_FIELDS as u64) as usize;
            (0..n).map(|_| next(len)).collect()
        } else if count as usize >= len {
            // Redis walks the whole set from the highest member down.
            (0..len).rev().collect()
        } else {
            // A partial Fisher-Yates shuffle of the ranks.
            let mut ranks: Vec<usize> = (0..len).collect();
            for i in 0..count as usize {
                let j = i + next(len - i);
                ranks.swap(i, j);
            }
            ranks.truncate(count as usize);
            ranks
        };
        let items = picked
            .into_iter()
            .filter_map(|r| z.get(r).map(|(m, s)| (Bytes::copy_from_slice(m), s)))
            .collect();
        member_score_pairs(items, self.withscores)
    }
}

/// `ZSCAN key cursor [MATCH pattern] [COUNT count]`: one pass returns every
/// matching member (cursor 0), as Redis does for small sets.
pub(crate) struct ZScan {
    args: Vec<Bytes>,
}

impl Parse<'_> for ZScan {
    fn parse(args: &[Bytes]) -> Result<ZScan, Output> {
        // Redis 7.0 order: cursor, then the key (WRONGTYPE), then the options.
        parse_cursor(&args[2])?;
        Ok(ZScan {
            args: args.to_vec(),
        })
    }
}

impl Query<'_> for ZScan {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let z = match read_zset(db, ctx, &self.args[1]) {
            Ok(Some(z)) => z,
            Ok(None) => return Output::Array(vec![Output::bulk("0"), Output::Array(vec![])]),
            Err(e) => return e,
        };
        let o = match parse_scan_options(&self.args, 3, false) {
            Ok(o) => o,
            Err(e) => return e,
        };
        let mut items = Vec::new();
        for (member, score) in z.iter() {
            if o.pattern
                .as_ref()
                .is_none_or(|p| glob::matches(p, member, false))
            {
                items.push(Output::bulk(Bytes::copy_from_slice(member)));
                items.push(Output::bulk(format_score(score)));
            }
        }
        Output::Array(vec![Output::bulk("0"), Output::Array(items)])
    }
}

// ---- the table ---------------------------------------------------------------------

use super::zsets_store::{ZInterCard, ZSetOp};

/// The sorted-set commands (Redis 7.0.15's `COMMAND INFO`).
pub(crate) static COMMANDS: &[CommandSpec] = &[
    write("zadd", -4, F_FAST_DENYOOM, ZSET_GROUP, K1, typed_write::<ZAdd>())
        .unchanged_by(typed_unchanged::<ZAdd>())
        .acl(cats(&[WRITE, SORTEDSET, FAST]), (KA_RW, KA_RW))
        .doc("Adds one or more members to a sorted set, or updates their scores. Creates the key if it doesn't exist.", "1.2.0", "O(log(N)) for each item added, where N is the number of elements in the sorted set."),
    write("zincrby", 4, F_FAST_DENYOOM, ZSET_GROUP, K1, typed_write::<ZAdd>())
        .acl(cats(&[WRITE, SORTEDSET, FAST]), (KA_RW, KA_RW))
        .doc("Increments the score of a member in a sorted set.", "1.2.0", "O(log(N)) where N is the number of elements in the sorted set."),
    read("zcard", 2, F_FAST, ZSET_GROUP, K1, typed_read::<ZCard>())
        .acl(cats(&[READ, SORTEDSET, FAST]), (KA_R, KA_R))
        .doc("Returns the number of members in a sorted set.", "1.2.0", "O(1)"),
    read("zcount", 4, F_FAST, ZSET_GROUP, K1, typed_read::<ZCount>())
        .acl(cats(&[READ, SORTEDSET, FAST]), (KA_R, KA_R))
        .doc("Returns the count of members in a sorted set that have scores within a range.", "2.0.0", "O(log(N)) with N being the number of elements in the sorted set."),
    read("zlexcount", 4, F_FAST, ZSET_GROUP, K1, typed_read::<ZCount>())
        .acl(cats(&[READ, SORTEDSET, FAST]), (KA_R, KA_R))
        .doc("Returns the number of members in a sorted set within a lexicographical range.", "2.8.9", "O(log(N)) with N being the number of elements in the sorted set."),
    read("zscore", 3, F_FAST, ZSET_GROUP, K1, typed_read::<ZScore>())
        .acl(cats(&[READ, SORTEDSET, FAST]), (KA_R, KA_R))
        .doc("Returns the score of a member in a sorted set.", "1.2.0", "O(1)"),
    read("zmscore", -3, F_FAST, ZSET_GROUP, K1, typed_read::<ZScore>())
        .acl(cats(&[READ, SORTEDSET, FAST]), (KA_R, KA_R))
        .doc("Returns the score of one or more members in a sorted set.", "6.2.0", "O(N) where N is the number of members being requested."),
    read("zrank", 3, F_FAST, ZSET_GROUP, K1, typed_read::<ZRank>())
        .acl(cats(&[READ, SORTEDSET, FAST]), (KA_R, KA_R))
        .doc("Returns the index of a member in a sorted set ordered by ascending scores.", "2.0.0", "O(log(N))"),
    read("zrevrank", 3, F_FAST, ZSET_GROUP, K1, typed_read::<ZRank>())
        .acl(cats(&[READ, SORTEDSET, FAST]), (KA_R, KA_R))
        .doc("Returns the index of a member in a sorted set ordered by descending scores.", "2.0.0", "O(log(N))"),
    read("zrange", -4, F_NONE, ZSET_GROUP, K1, typed_read::<ZRange>())
        .acl(cats(&[READ, SORTEDSET, SLOW]), (KA_R, KA_R))
        .doc("Returns members in a sorted set within a range of indexes.", "1.2.0", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements returned."),
    read("zrevrange", -4, F_NONE, ZSET_GROUP, K1, typed_read::<ZRange>())
        .acl(cats(&[READ, SORTEDSET, SLOW]), (KA_R, KA_R))
        .doc("Returns members in a sorted set within a range of indexes in reverse order.", "1.2.0", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements returned."),
    read("zrangebyscore", -4, F_NONE, ZSET_GROUP, K1, typed_read::<ZRange>())
        .acl(cats(&[READ, SORTEDSET, SLOW]), (KA_R, KA_R))
        .doc("Returns members in a sorted set within a range of scores.", "1.0.5", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned."),
    read("zrevrangebyscore", -4, F_NONE, ZSET_GROUP, K1, typed_read::<ZRange>())
        .acl(cats(&[READ, SORTEDSET, SLOW]), (KA_R, KA_R))
        .doc("Returns members in a sorted set within a range of scores in reverse order.", "2.2.0", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned."),
    read("zrangebylex", -4, F_NONE, ZSET_GROUP, K1, typed_read::<ZRange>())
        .acl(cats(&[READ, SORTEDSET, SLOW]), (KA_R, KA_R))
        .doc("Returns members in a sorted set within a lexicographical range.", "2.8.9", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned."),
    read("zrevrangebylex", -4, F_NONE, ZSET_GROUP, K1, typed_read::<ZRange>())
        .acl(cats(&[READ, SORTEDSET, SLOW]), (KA_R, KA_R))
        .doc("Returns members in a sorted set within a lexicographical range in reverse order.", "2.8.9", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements being returned."),
    write("zrangestore", -5, F_DENYOOM, ZSET_GROUP, K12, typed_write::<ZRange>())
        .acl(cats(&[WRITE, SORTEDSET, SLOW]), (KA_W, KA_R))
        .doc("Stores a range of members from sorted set in a key.", "6.2.0", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements stored into the destination key."),
    write("zrem", -3, F_FAST, ZSET_GROUP, K1, typed_write::<ZRem>())
        .unchanged_by(typed_unchanged::<ZRem>())
        .acl(cats(&[WRITE, SORTEDSET, FAST]), (KA_RW, KA_RW))
        .doc("Removes one or more members from a sorted set. Deletes the sorted set if all members were removed.", "1.2.0", "O(M*log(N)) with N being the number of elements in the sorted set and M the number of elements to be removed."),
    write("zremrangebyrank", 4, F_NONE, ZSET_GROUP, K1, typed_write::<ZRemRange>())
        .acl(cats(&[WRITE, SORTEDSET, SLOW]), (KA_RW, KA_RW))
        .doc("Removes members in a sorted set within a range of indexes. Deletes the sorted set if all members were removed.", "2.0.0", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation."),
    write("zremrangebyscore", 4, F_NONE, ZSET_GROUP, K1, typed_write::<ZRemRange>())
        .acl(cats(&[WRITE, SORTEDSET, SLOW]), (KA_RW, KA_RW))
        .doc("Removes members in a sorted set within a range of scores. Deletes the sorted set if all members were removed.", "1.2.0", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation."),
    write("zremrangebylex", 4, F_NONE, ZSET_GROUP, K1, typed_write::<ZRemRange>())
        .acl(cats(&[WRITE, SORTEDSET, SLOW]), (KA_RW, KA_RW))
        .doc("Removes members in a sorted set within a lexicographical range. Deletes the sorted set if all members were removed.", "2.8.9", "O(log(N)+M) with N being the number of elements in the sorted set and M the number of elements removed by the operation."),
    write("zpopmin", -2, F_FAST, ZSET_GROUP, K1, typed_write::<ZPop>())
        .acl(cats(&[WRITE, SORTEDSET, FAST]), (KA_RW, KA_RW))
        .doc("Returns the lowest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", "5.0.0", "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped."),
    write("zpopmax", -2, F_FAST, ZSET_GROUP, K1, typed_write::<ZPop>())
        .acl(cats(&[WRITE, SORTEDSET, FAST]), (KA_RW, KA_RW))
        .doc("Returns the highest-scoring members from a sorted set after removing them. Deletes the sorted set if the last member was popped.", "5.0.0", "O(log(N)*M) with N being the number of elements in the sorted set, and M being the number of elements popped."),
    write("zmpop", -4, F_NONE, ZSET_GROUP, NO_KEYS, typed_write::<ZMPop>())
        .key_num(1)
        .acl(cats(&[WRITE, SORTEDSET, SLOW]), (KA_RW, KA_RW))
        .doc("Returns the highest- or lowest-scoring members from one or more sorted sets after removing them. Deletes the sorted set if the last member was popped.", "7.0.0", "O(K) + O(M*log(N)) where K is the number of provided keys, N being the number of elements in the sorted set, and M being the number of elements popped."),
    read("zrandmember", -2, F_NONE, ZSET_GROUP, K1, typed_read::<ZRandMember>())
        .acl(cats(&[READ, SORTEDSET, SLOW]), (KA_R, KA_R))
        .doc("Returns one or more random members from a sorted set.", "6.2.0", "O(N) where N is the number of members returned"),
    read("zscan", -3, F_NONE, ZSET_GROUP, K1, typed_read::<ZScan>())
        .acl(cats(&[READ, SORTEDSET, SLOW]), (KA_R, KA_R))
        .doc("Iterates over members and scores of a sorted set.", "2.8.0", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection."),
    read("zunion", -3, F_NONE, ZSET_GROUP, NO_KEYS, typed_read::<ZSetOp>())
        .key_num(1)
        .acl(cats(&[READ, SORTEDSET, SLOW]), (KA_R, KA_R))
        .doc("Returns the union of multiple sorted sets.", "6.2.0", "O(N)+O(M*log(M)) with N being the sum of the sizes of the input sorted sets, and M being the number of elements in the resulting sorted set."),
    read("zinter", -3, F_NONE, ZSET_GROUP, NO_KEYS, typed_read::<ZSetOp>())
        .key_num(1)
        .acl(cats(&[READ, SORTEDSET, SLOW]), (KA_R, KA_R))
        .doc("Returns the intersect of multiple sorted sets.", "6.2.0", "O(N*K)+O(M*log(M)) worst case with N being the smallest input sorted set, K being the number of input sorted sets and M being the number of elements in the resulting sorted set."),
    read("zdiff", -3, F_NONE, ZSET_GROUP, NO_KEYS, typed_read::<ZSetOp>())
        .key_num(1)
        .acl(cats(&[READ, SORTEDSET, SLOW]), (KA_R, KA_R))
        .doc("Returns the difference between multiple sorted sets.", "6.2.0", "O(L + (N-K)log(N)) worst case where L is the total number of elements in all the sets, N is the size of the first set, and K is the size of the result set."),
    read("zintercard", -3, F_NONE, ZSET_GROUP, NO_KEYS, typed_read::<ZInterCard>())
        .key_num(1)
        .acl(cats(&[READ, SORTEDSET, SLOW]), (KA_R, KA_R))
        .doc("Returns the number of members of the intersect of multiple sorted sets.", "7.0.0", "O(N*K) worst case with N being the smallest input sorted set, K being the number of input sorted sets."),
    write("zunionstore", -4, F_DENYOOM, ZSET_GROUP, K1, typed_write::<ZSetOp>())
        .key_num(2)
        .acl(cats(&[WRITE, SORTEDSET, SLOW]), (KA_W, KA_R))
        .doc("Stores the union of multiple sorted sets in a key.", "2.0.0", "O(N)+O(M log(M)) with N being the sum of the sizes of the input sorted sets, and M being the number of elements in the resulting sorted set."),
    write("zinterstore", -4, F_DENYOOM, ZSET_GROUP, K1, typed_write::<ZSetOp>())
        .key_num(2)
        .acl(cats(&[WRITE, SORTEDSET, SLOW]), (KA_W, KA_R))
        .doc("Stores the intersect of multiple sorted sets in a key.", "2.0.0", "O(N*K)+O(M*log(M)) worst case with N being the smallest input sorted set, K being the number of input sorted sets and M being the number of elements in the resulting sorted set."),
    write("zdiffstore", -4, F_DENYOOM, ZSET_GROUP, K1, typed_write::<ZSetOp>())
        .key_num(2)
        .acl(cats(&[WRITE, SORTEDSET, SLOW]), (KA_W, KA_R))
        .doc("Stores the difference of multiple sorted sets in a key.", "6.2.0", "O(L + (N-K)log(N)) worst case where L is the total number of elements in all the sets, N is the size of the first set, and K is the size of the result set."),
];

#[cfg(test)]
pub(crate) mod tests;
