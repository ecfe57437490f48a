//! List commands, as Redis 7.0.15 answers them: LPUSH RPUSH LPUSHX RPUSHX
//! LPOP RPOP LLEN LRANGE LINDEX LSET LINSERT LREM LTRIM LPOS LMOVE
//! RPOPLPUSH LMPOP. The value type is [`super::list::List`].
//!
//! Each command is a typed operation: its [`Parse`] holds every error
//! Redis gives before looking at the key (so those are answered before
//! proposing); errors Redis gives after the lookup (WRONGTYPE, `no such
//! key`, LINDEX's and LSET's index parse, `index out of range`) are the
//! apply's.
//!
//! Invariants:
//! - a list key is never left empty: the command that empties a list
//!   deletes the key, as Redis does;
//! - a command that changes nothing (LPOP with COUNT 0, LREM or LINSERT
//!   that finds nothing, LSET out of range) does not touch the key, so a
//!   WATCH on it stays intact, as in Redis;
//! - deterministic: no clock, no randomness.
//!
//! The pops and the move are also functions over an already-parsed
//! operation ([`pop`], [`mpop`], [`lmove`], [`LMPop::parse_at`]) so the
//! blocking forms (BLPOP, BLMPOP, BLMOVE ...) run exactly the same code
//! once a key has something to pop: each returns `Ok(None)` (and changes
//! nothing) when there is nothing to pop.

use bytes::Bytes;

use super::errors::{NOT_INTEGER, NO_SUCH_KEY, SYNTAX, WRONGTYPE};
use super::list::List;
use super::notify;
use super::table::{
    borrowed_unchanged, borrowed_write, typed_read, typed_write, Apply, Borrows, Parse, Query,
    Unchanged,
};
use super::{parse_i64, Ctx, Db, Output, Value};
use crate::cmd::cat::*;
use crate::cmd::{read, write, CommandSpec, K1, K12, NO_KEYS};

const OUT_OF_RANGE: &str = "ERR index out of range";
const MUST_BE_POSITIVE: &str = "ERR value is out of range, must be positive";
const RANK_ZERO: &str = "ERR RANK can't be zero: use 1 to start from the first match, 2 from the second ... or use negative to start from the end of the list";
const NUMKEYS: &str = "ERR numkeys should be greater than 0";
const COUNT_POSITIVE: &str = "ERR count should be greater than 0";

/// One end of a list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum End {
    /// The head (`LEFT`, LPUSH/LPOP's end).
    Left,
    /// The tail (`RIGHT`).
    Right,
}

impl End {
    /// Redis's event for a pop at this end.
    fn pop_event(self) -> &'static str {
        match self {
            End::Left => "lpop",
            End::Right => "rpop",
        }
    }

    /// Redis's event for a push at this end.
    fn push_event(self) -> &'static str {
        match self {
            End::Left => "lpush",
            End::Right => "rpush",
        }
    }

    /// `LEFT` or `RIGHT` in any case; anything else is Redis's syntax error.
    pub(crate) fn parse(arg: &[u8]) -> Result<End, Output> {
        if arg.eq_ignore_ascii_case(b"left") {
            Ok(End::Left)
        } else if arg.eq_ignore_ascii_case(b"right") {
            Ok(End::Right)
        } else {
            Err(Output::err(SYNTAX))
        }
    }
}

// ---- access helpers ---------------------------------------------------------

fn read_list<'a>(db: &'a Db, ctx: &Ctx, key: &[u8]) -> Result<Option<&'a List>, Output> {
    match db.lookup_read(ctx.db, key, ctx.now).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::List(list)) => Ok(Some(list)),
        Some(_) => Err(Output::err(WRONGTYPE)),
    }
}

/// The list at `key` for a write (an expired key is deleted first).
fn write_list<'a>(db: &'a mut Db, ctx: &Ctx, key: &[u8]) -> Result<Option<&'a List>, Output> {
    match db.lookup_write(ctx.db, key).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::List(list)) => Ok(Some(list)),
        Some(_) => Err(Output::err(WRONGTYPE)),
    }
}

/// Runs `f` on the list at `key`, which the caller found with
/// [`write_list`]; deletes the key if `f` empties the list.
fn edit_list<R>(db: &mut Db, ctx: &Ctx, key: &[u8], f: impl FnOnce(&mut List) -> R) -> R {
    let (result, emptied) = db
        .modify(ctx.db, key, |value| match value {
            Value::List(list) => {
                let result = f(list);
                (result, list.is_empty())
            }
            _ => unreachable!("the caller found a list at this key"),
        })
        .expect("the caller found this key");
    if emptied {
        db.remove(ctx.db, key);
    }
    result
}

/// Pushes `elements` in turn at `end` of the list at `key`, creating it if
/// absent; the new length.
fn push(db: &mut Db, ctx: &Ctx, key: &Bytes, elements: &[Bytes], end: End, exists: bool) -> usize {
    let push_all = |list: &mut List| match end {
        End::Left => list.push_front_all(elements),
        End::Right => list.push_back_all(elements),
    };
    if exists {
        edit_list(db, ctx, key, |list| {
            push_all(list);
            list.len()
        })
    } else {
        let mut list = List::new();
        push_all(&mut list);
        let len = list.len();
        db.put(ctx.db, key, Value::List(list), None);
        len
    }
}

fn bulks(elements: Vec<Bytes>) -> Output {
    Output::Array(elements.into_iter().map(Output::bulk).collect())
}

/// A strict integer argument, or Redis's "not an integer" error.
fn integer(arg: &[u8]) -> Result<i64, Output> {
    parse_i64(arg).ok_or_else(|| Output::err(NOT_INTEGER))
}

/// A non-negative integer argument; `message` for anything else (Redis's
/// `getPositiveLongFromObjectOrReply`).
fn non_negative(arg: &[u8], message: &str) -> Result<usize, Output> {
    parse_i64(arg)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| Output::err(message))
}

/// A positive integer argument; `message` for anything else.
fn positive(arg: &[u8], message: &str) -> Result<usize, Output> {
    match non_negative(arg, message)? {
        0 => Err(Output::err(message)),
        n => Ok(n),
    }
}

// ---- the reusable pops and move (the blocking forms call these) ------------

/// Pops up to `count` elements from `end` of the list at `key` (in pop
/// order), deleting the key if it empties. `Ok(None)`: no such key (nothing
/// changed); `count == 0` on a list changes nothing and gives `Some([])`.
///
/// # Errors
/// WRONGTYPE if `key` holds another type.
pub(crate) fn pop(
    db: &mut Db,
    ctx: &Ctx,
    key: &[u8],
    end: End,
    count: usize,
) -> Result<Option<Vec<Bytes>>, Output> {
    if write_list(db, ctx, key)?.is_none() {
        return Ok(None);
    }
    if count == 0 {
        return Ok(Some(Vec::new()));
    }
    let popped = edit_list(db, ctx, key, |list| match end {
        End::Left => list.pop_front_many(count),
        End::Right => list.pop_back_many(count),
    });
    db.notify(notify::LIST, end.pop_event(), ctx.db, key);
    db.notify_if_deleted(ctx.db, key);
    Ok(Some(popped))
}

/// LMPOP's pop: from the first of `keys` that holds a list, up to `count`
/// elements from `end`. `Ok(None)` when no key holds one (nothing changed).
///
/// # Errors
/// WRONGTYPE for the first key, in order, that holds another type (keys
/// after a non-empty list are not looked at, as in Redis).
pub(crate) fn mpop(
    db: &mut Db,
    ctx: &Ctx,
    keys: &[Bytes],
    end: End,
    count: usize,
) -> Result<Option<(Bytes, Vec<Bytes>)>, Output> {
    for key in keys {
        if let Some(elements) = pop(db, ctx, key, end, count.max(1))? {
            return Ok(Some((key.clone(), elements)));
        }
    }
    Ok(None)
}

/// LMOVE: pops from `from` of `source` and pushes at `to` of
/// `destination` (which may be the same list: a rotation); the element
/// moved, or `Ok(None)` if `source` does not exist (nothing changed, the
/// destination not even looked at).
///
/// # Errors
/// WRONGTYPE if `source`, then if `destination`, holds another type.
pub(crate) fn lmove(
    db: &mut Db,
    ctx: &Ctx,
    source: &Bytes,
    destination: &Bytes,
    from: End,
    to: End,
) -> Result<Option<Bytes>, Output> {
    if write_list(db, ctx, source)?.is_none() {
        return Ok(None);
    }
    let destination_exists = write_list(db, ctx, destination)?.is_some();
    let take = |list: &mut List| match from {
        End::Left => list.pop_front(),
        End::Right => list.pop_back(),
    };
    if source == destination {
        // Popped and pushed back in one edit: the key (and its TTL) stays.
        let moved = edit_list(db, ctx, source, |list| {
            let element = take(list);
            if let Some(element) = &element {
                match to {
                    End::Left => list.push_front(element),
                    End::Right => list.push_back(element),
                }
            }
            element
        });
        if moved.is_some() {
            db.notify(notify::LIST, to.push_event(), ctx.db, destination);
            db.notify(notify::LIST, from.pop_event(), ctx.db, source);
        }
        return Ok(moved);
    }
    let Some(element) = edit_list(db, ctx, source, take) else {
        return Ok(None);
    };
    push(
        db,
        ctx,
        destination,
        std::slice::from_ref(&element),
        to,
        destination_exists,
    );
    // Redis's order: the push, the pop, then the emptied source's `del`.
    db.notify(notify::LIST, to.push_event(), ctx.db, destination);
    db.notify(notify::LIST, from.pop_event(), ctx.db, source);
    db.notify_if_deleted(ctx.db, source);
    Ok(Some(element))
}

// ---- LPUSH RPUSH LPUSHX RPUSHX ------------------------------------------------

/// `LPUSH`/`RPUSH` (`LEFT` false: the tail), and with `EXISTING` the `X`
/// forms that push only onto an existing list.
/// Borrows its arguments: LPUSH's key and elements are copied into the
/// list, never kept, so the parse (the server's check, then every replica's
/// apply) clones nothing.
pub(crate) struct Push<'a, const LEFT: bool, const EXISTING: bool> {
    key: &'a Bytes,
    elements: &'a [Bytes],
}

impl<const LEFT: bool, const EXISTING: bool> Borrows for Push<'static, LEFT, EXISTING> {
    type Op<'a> = Push<'a, LEFT, EXISTING>;
}

impl<'a, const LEFT: bool, const EXISTING: bool> Parse<'a> for Push<'a, LEFT, EXISTING> {
    fn parse(args: &'a [Bytes]) -> Result<Self, Output> {
        Ok(Push {
            key: &args[1],
            elements: &args[2..],
        })
    }
}

impl<'a, const LEFT: bool, const EXISTING: bool> Apply<'a> for Push<'a, LEFT, EXISTING> {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let exists = match write_list(db, ctx, self.key) {
            Ok(list) => list.is_some(),
            Err(error) => return error,
        };
        if EXISTING && !exists {
            return Output::Integer(0);
        }
        let end = if LEFT { End::Left } else { End::Right };
        let len = push(db, ctx, self.key, self.elements, end, exists);
        db.notify(notify::LIST, end.push_event(), ctx.db, self.key);
        Output::Integer(len as i64)
    }
}

impl<'a, const LEFT: bool, const EXISTING: bool> Unchanged<'a> for Push<'a, LEFT, EXISTING> {
    /// LPUSHX/RPUSHX of an absent key: `0`.
    fn unchanged(&self, db: &Db, ctx: &Ctx) -> Option<Output> {
        match db.probe_key(ctx, self.key)? {
            None if EXISTING => Some(Output::Integer(0)),
            Some(Value::List(_)) | None => None,
            Some(_) => super::unchanged::wrong_type(),
        }
    }
}

// ---- LPOP RPOP --------------------------------------------------------------

/// `LPOP`/`RPOP key [count]`; borrows its key, as [`Push`].
pub(crate) struct Pop<'a, const LEFT: bool> {
    key: &'a Bytes,
    count: Option<usize>,
}

impl<const LEFT: bool> Borrows for Pop<'static, LEFT> {
    type Op<'a> = Pop<'a, LEFT>;
}

impl<'a, const LEFT: bool> Parse<'a> for Pop<'a, LEFT> {
    fn parse(args: &'a [Bytes]) -> Result<Self, Output> {
        if args.len() > 3 {
            let name = if LEFT { "lpop" } else { "rpop" };
            return Err(Output::err(format!(
                "ERR wrong number of arguments for '{name}' command"
            )));
        }
        let count = match args.get(2) {
            Some(arg) => Some(non_negative(arg, MUST_BE_POSITIVE)?),
            None => None,
        };
        Ok(Pop {
            key: &args[1],
            count,
        })
    }
}

impl<'a, const LEFT: bool> Apply<'a> for Pop<'a, LEFT> {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let end = if LEFT { End::Left } else { End::Right };
        match (
            pop(db, ctx, self.key, end, self.count.unwrap_or(1)),
            self.count,
        ) {
            (Err(error), _) => error,
            (Ok(None), None) => Output::NIL,
            (Ok(None), Some(_)) => Output::NilArray,
            (Ok(Some(mut elements)), None) => Output::Bulk(elements.pop()),
            (Ok(Some(elements)), Some(_)) => bulks(elements),
        }
    }
}

impl<'a, const LEFT: bool> Unchanged<'a> for Pop<'a, LEFT> {
    /// A pop of an absent key: nil (a nil array with a count).
    fn unchanged(&self, db: &Db, ctx: &Ctx) -> Option<Output> {
        match db.probe_key(ctx, self.key)? {
            None if self.count.is_some() => Some(Output::NilArray),
            None => Some(Output::NIL),
            Some(Value::List(_)) => None,
            Some(_) => super::unchanged::wrong_type(),
        }
    }
}

// ---- LMPOP --------------------------------------------------------------------

/// `LMPOP numkeys key [key ...] LEFT|RIGHT [COUNT count]`.
pub(crate) struct LMPop {
    /// The keys, in the order they are tried.
    pub(crate) keys: Vec<Bytes>,
    /// The end popped from.
    pub(crate) end: End,
    /// The most elements popped (1 without COUNT).
    pub(crate) count: usize,
}

impl LMPop {
    /// Parses the arguments from the `numkeys` at `numkeys_at` on (1 for
    /// LMPOP, 2 for BLMPOP, whose timeout comes first), with Redis's checks
    /// in Redis's order.
    pub(crate) fn parse_at(args: &[Bytes], numkeys_at: usize) -> Result<LMPop, Output> {
        let numkeys = positive(&args[numkeys_at], NUMKEYS)?;
        let end_at = numkeys_at.saturating_add(numkeys).saturating_add(1);
        let Some(end) = args.get(end_at) else {
            return Err(Output::err(SYNTAX));
        };
        let end = End::parse(end)?;
        let mut count = None;
        let mut j = end_at + 1;
        while j < args.len() {
            if count.is_none() && args[j].eq_ignore_ascii_case(b"count") && j + 1 < args.len() {
                count = Some(positive(&args[j + 1], COUNT_POSITIVE)?);
                j += 2;
            } else {
                return Err(Output::err(SYNTAX));
            }
        }
        Ok(LMPop {
            keys: args[numkeys_at + 1..end_at].to_vec(),
            end,
            count: count.unwrap_or(1),
        })
    }
}

impl Parse<'_> for LMPop {
    fn parse(args: &[Bytes]) -> Result<LMPop, Output> {
        LMPop::parse_at(args, 1)
    }
}

impl Apply<'_> for LMPop {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        match mpop(db, ctx, &self.keys, self.end, self.count) {
            Err(error) => error,
            Ok(None) => Output::NilArray,
            Ok(Some((key, elements))) => Output::Array(vec![Output::bulk(key), bulks(elements)]),
        }
    }
}

// ---- LMOVE RPOPLPUSH ---------------------------------------------------------

/// `LMOVE source destination LEFT|RIGHT LEFT|RIGHT`.
pub(crate) struct LMove {
    /// Popped from.
    pub(crate) source: Bytes,
    /// Pushed onto.
    pub(crate) destination: Bytes,
    /// The end of `source` popped.
    pub(crate) from: End,
    /// The end of `destination` pushed.
    pub(crate) to: End,
}

impl Parse<'_> for LMove {
    fn parse(args: &[Bytes]) -> Result<LMove, Output> {
        Ok(LMove {
            source: args[1].clone(),
            destination: args[2].clone(),
            from: End::parse(&args[3])?,
            to: End::parse(&args[4])?,
        })
    }
}

impl Apply<'_> for LMove {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        match lmove(db, ctx, &self.source, &self.destination, self.from, self.to) {
            Ok(element) => Output::Bulk(element),
            Err(error) => error,
        }
    }
}

/// `RPOPLPUSH source destination`: `LMOVE source destination RIGHT LEFT`.
pub(crate) struct RPopLPush(LMove);

impl Parse<'_> for RPopLPush {
    fn parse(args: &[Bytes]) -> Result<RPopLPush, Output> {
        Ok(RPopLPush(LMove {
            source: args[1].clone(),
            destination: args[2].clone(),
            from: End::Right,
            to: End::Left,
        }))
    }
}

impl Apply<'_> for RPopLPush {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        self.0.apply(db, ctx)
    }
}

// ---- LLEN LRANGE LINDEX ---------------------------------------------------------

/// `LLEN key`.
pub(crate) struct LLen {
    key: Bytes,
}

impl Parse<'_> for LLen {
    fn parse(args: &[Bytes]) -> Result<LLen, Output> {
        Ok(LLen {
            key: args[1].clone(),
        })
    }
}

impl Query<'_> for LLen {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        match read_list(db, ctx, &self.key) {
            Ok(list) => Output::Integer(list.map_or(0, |l| l.len() as i64)),
            Err(error) => error,
        }
    }
}

/// `LRANGE key start stop`.
pub(crate) struct LRange {
    key: Bytes,
    start: i64,
    stop: i64,
}

impl Parse<'_> for LRange {
    fn parse(args: &[Bytes]) -> Result<LRange, Output> {
        Ok(LRange {
            key: args[1].clone(),
            start: integer(&args[2])?,
            stop: integer(&args[3])?,
        })
    }
}

impl Query<'_> for LRange {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        match read_list(db, ctx, &self.key) {
            Ok(None) => Output::Array(Vec::new()),
            Ok(Some(list)) => Output::Array(
                list.range(self.start, self.stop)
                    .map(|e| Output::bulk(Bytes::copy_from_slice(e)))
                    .collect(),
            ),
            Err(error) => error,
        }
    }
}

/// `LINDEX key index` (the index is parsed after the lookup, as Redis:
/// a missing key answers nil whatever the index).
pub(crate) struct LIndex {
    key: Bytes,
    index: Bytes,
}

impl Parse<'_> for LIndex {
    fn parse(args: &[Bytes]) -> Result<LIndex, Output> {
        Ok(LIndex {
            key: args[1].clone(),
            index: args[2].clone(),
        })
    }
}

impl Query<'_> for LIndex {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let list = match read_list(db, ctx, &self.key) {
            Ok(Some(list)) => list,
            Ok(None) => return Output::NIL,
            Err(error) => return error,
        };
        match integer(&self.index) {
            Ok(index) => Output::Bulk(list.get(index).map(Bytes::copy_from_slice)),
            Err(error) => error,
        }
    }
}

// ---- LSET LINSERT LREM LTRIM ------------------------------------------------------

/// `LSET key index element` (index parsed after the lookup, as Redis).
pub(crate) struct LSet {
    key: Bytes,
    index: Bytes,
    element: Bytes,
}

impl Parse<'_> for LSet {
    fn parse(args: &[Bytes]) -> Result<LSet, Output> {
        Ok(LSet {
            key: args[1].clone(),
            index: args[2].clone(),
            element: args[3].clone(),
        })
    }
}

impl Apply<'_> for LSet {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let len = match write_list(db, ctx, &self.key) {
            Ok(Some(list)) => list.len() as i64,
            Ok(None) => return Output::err(NO_SUCH_KEY),
            Err(error) => return error,
        };
        let index = match integer(&self.index) {
            Ok(index) => index,
            Err(error) => return error,
        };
        if !(-len..len).contains(&index) {
            return Output::err(OUT_OF_RANGE);
        }
        edit_list(db, ctx, &self.key, |list| list.set(index, &self.element));
        db.notify(notify::LIST, "lset", ctx.db, &self.key);
        Output::Ok
    }
}

/// `LINSERT key BEFORE|AFTER pivot element`.
pub(crate) struct LInsert {
    key: Bytes,
    after: bool,
    pivot: Bytes,
    element: Bytes,
}

impl Parse<'_> for LInsert {
    fn parse(args: &[Bytes]) -> Result<LInsert, Output> {
        let after = if args[2].eq_ignore_ascii_case(b"after") {
            true
        } else if args[2].eq_ignore_ascii_case(b"before") {
            false
        } else {
            return Err(Output::err(SYNTAX));
        };
        Ok(LInsert {
            key: args[1].clone(),
            after,
            pivot: args[3].clone(),
            element: args[4].clone(),
        })
    }
}

impl Apply<'_> for LInsert {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let found = match write_list(db, ctx, &self.key) {
            Ok(Some(list)) => list.positions(&self.pivot, 1, 1, 0).len() == 1,
            Ok(None) => return Output::Integer(0),
            Err(error) => return error,
        };
        if !found {
            return Output::Integer(-1);
        }
        let len = edit_list(db, ctx, &self.key, |list| {
            list.insert(&self.pivot, &self.element, self.after)
        });
        if len.is_some() {
            db.notify(notify::LIST, "linsert", ctx.db, &self.key);
        }
        Output::Integer(len.map_or(-1, |n| n as i64))
    }
}

/// `LREM key count element`.
pub(crate) struct LRem {
    key: Bytes,
    count: i64,
    element: Bytes,
}

impl Parse<'_> for LRem {
    fn parse(args: &[Bytes]) -> Result<LRem, Output> {
        Ok(LRem {
            key: args[1].clone(),
            count: integer(&args[2])?,
            element: args[3].clone(),
        })
    }
}

impl Apply<'_> for LRem {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let found = match write_list(db, ctx, &self.key) {
            Ok(Some(list)) => list.positions(&self.element, 1, 1, 0).len() == 1,
            Ok(None) => return Output::Integer(0),
            Err(error) => return error,
        };
        if !found {
            return Output::Integer(0);
        }
        let removed = edit_list(db, ctx, &self.key, |list| {
            list.remove(&self.element, self.count)
        });
        if removed > 0 {
            db.notify(notify::LIST, "lrem", ctx.db, &self.key);
        }
        db.notify_if_deleted(ctx.db, &self.key);
        Output::Integer(removed as i64)
    }
}

/// `LTRIM key start stop`.
pub(crate) struct LTrim {
    key: Bytes,
    start: i64,
    stop: i64,
}

impl Parse<'_> for LTrim {
    fn parse(args: &[Bytes]) -> Result<LTrim, Output> {
        Ok(LTrim {
            key: args[1].clone(),
            start: integer(&args[2])?,
            stop: integer(&args[3])?,
        })
    }
}

impl Apply<'_> for LTrim {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        match write_list(db, ctx, &self.key) {
            Ok(Some(_)) => {
                edit_list(db, ctx, &self.key, |list| list.trim(self.start, self.stop));
                db.notify(notify::LIST, "ltrim", ctx.db, &self.key);
                db.notify_if_deleted(ctx.db, &self.key);
                Output::Ok
            }
            Ok(None) => Output::Ok,
            Err(error) => error,
        }
    }
}

// ---- LPOS ---------------------------------------------------------------------

/// `LPOS key element [RANK rank] [COUNT num-matches] [MAXLEN len]`.
pub(crate) struct LPos {
    key: Bytes,
    element: Bytes,
    rank: i64,
    count: Option<usize>,
    maxlen: usize,
}

impl Parse<'_> for LPos {
    fn parse(args: &[Bytes]) -> Result<LPos, Output> {
        let mut op = LPos {
            key: args[1].clone(),
            element: args[2].clone(),
            rank: 1,
            count: None,
            maxlen: 0,
        };
        let mut j = 3;
        while j < args.len() {
            let option = &args[j];
            let value = args.get(j + 1);
            match value {
                Some(v) if option.eq_ignore_ascii_case(b"rank") => {
                    op.rank = integer(v)?;
                    if op.rank == 0 {
                        return Err(Output::err(RANK_ZERO));
                    }
                }
                Some(v) if option.eq_ignore_ascii_case(b"count") => {
                    op.count = Some(non_negative(v, "ERR COUNT can't be negative")?);
                }
                Some(v) if option.eq_ignore_ascii_case(b"maxlen") => {
                    op.maxlen = non_negative(v, "ERR MAXLEN can't be negative")?;
                }
                _ => return Err(Output::err(SYNTAX)),
            }
            j += 2;
        }
        Ok(op)
    }
}

impl Query<'_> for LPos {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let list = match read_list(db, ctx, &self.key) {
            Ok(Some(list)) => list,
            Ok(None) if self.count.is_some() => return Output::Array(Vec::new()),
            Ok(None) => return Output::NIL,
            Err(error) => return error,
        };
        // Redis 7.0 negates RANK in a C long: -LONG_MIN wraps to itself, so
        // the search runs from the tail, every match counts and COUNT never
        // stops it. Reproduced as observed on 7.0.15.
        let (rank, count) = match (self.rank, self.count) {
            (i64::MIN, Some(_)) => (-1, 0),
            (i64::MIN, None) => (-1, 1),
            (rank, count) => (rank, count.unwrap_or(1)),
        };
        let found = list.positions(&self.element, rank, count, self.maxlen);
        match self.count {
            Some(_) => Output::Array(
                found
                    .into_iter()
                    .map(|i| Output::Integer(i as i64))
                    .collect(),
            ),
            None => found
                .first()
                .map_or(Output::NIL, |&i| Output::Integer(i as i64)),
        }
    }
}

// ---- definitions ----------------------------------------------------------------

const LIST_GROUP: &str = "@list";

/// This group's command definitions (see `crate::cmd`), with Redis
/// 7.0.15's arity, flags, ACL categories and key access.
pub(crate) static COMMANDS: &[CommandSpec] = &[
    write("lpush", -3, F_FAST_DENYOOM, LIST_GROUP, K1, borrowed_write::<Push<'static, true, false>>())
        .acl(cats(&[WRITE, LIST, FAST]), (KA_W, KA_W))
        .doc(
            "Prepend one or multiple elements to a list",
            "1.0.0",
            "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.",
        ),
    write("rpush", -3, F_FAST_DENYOOM, LIST_GROUP, K1, borrowed_write::<Push<'static, false, false>>())
        .acl(cats(&[WRITE, LIST, FAST]), (KA_W, KA_W))
        .doc(
            "Append one or multiple elements to a list",
            "1.0.0",
            "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.",
        ),
    write("lpushx", -3, F_FAST_DENYOOM, LIST_GROUP, K1, borrowed_write::<Push<'static, true, true>>())
        .unchanged_by(borrowed_unchanged::<Push<'static, true, true>>())
        .acl(cats(&[WRITE, LIST, FAST]), (KA_W, KA_W))
        .doc(
            "Prepend an element to a list, only if the list exists",
            "2.2.0",
            "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.",
        ),
    write("rpushx", -3, F_FAST_DENYOOM, LIST_GROUP, K1, borrowed_write::<Push<'static, false, true>>())
        .unchanged_by(borrowed_unchanged::<Push<'static, false, true>>())
        .acl(cats(&[WRITE, LIST, FAST]), (KA_W, KA_W))
        .doc(
            "Append an element to a list, only if the list exists",
            "2.2.0",
            "O(1) for each element added, so O(N) to add N elements when the command is called with multiple arguments.",
        ),
    write("lpop", -2, F_FAST, LIST_GROUP, K1, borrowed_write::<Pop<'static, true>>())
        .unchanged_by(borrowed_unchanged::<Pop<'static, true>>())
        .acl(cats(&[WRITE, LIST, FAST]), (KA_RW, KA_RW))
        .doc(
            "Remove and get the first elements in a list",
            "1.0.0",
            "O(N) where N is the number of elements returned",
        ),
    write("rpop", -2, F_FAST, LIST_GROUP, K1, borrowed_write::<Pop<'static, false>>())
        .unchanged_by(borrowed_unchanged::<Pop<'static, false>>())
        .acl(cats(&[WRITE, LIST, FAST]), (KA_RW, KA_RW))
        .doc(
            "Remove and get the last elements in a list",
            "1.0.0",
            "O(N) where N is the number of elements returned",
        ),
    read("llen", 2, F_FAST, LIST_GROUP, K1, typed_read::<LLen>())
        .acl(cats(&[READ, LIST, FAST]), (KA_NONE, KA_NONE))
        .doc("Get the length of a list", "1.0.0", "O(1)"),
    read("lrange", 4, F_NONE, LIST_GROUP, K1, typed_read::<LRange>())
        .acl(cats(&[READ, LIST, SLOW]), (KA_R, KA_R))
        .doc(
            "Get a range of elements from a list",
            "1.0.0",
            "O(S+N) where S is the distance of start offset from HEAD for small lists, from nearest end (HEAD or TAIL) for large lists; and N is the number of elements in the specified range.",
        ),
    read("lindex", 3, F_NONE, LIST_GROUP, K1, typed_read::<LIndex>())
        .acl(cats(&[READ, LIST, SLOW]), (KA_R, KA_R))
        .doc(
            "Get an element from a list by its index",
            "1.0.0",
            "O(N) where N is the number of elements to traverse to get to the element at index. This makes asking for the first or the last element of the list O(1).",
        ),
    write("lset", 4, F_DENYOOM, LIST_GROUP, K1, typed_write::<LSet>())
        .acl(cats(&[WRITE, LIST, SLOW]), (KA_W, KA_W))
        .doc(
            "Set the value of an element in a list by its index",
            "1.0.0",
            "O(N) where N is the length of the list. Setting either the first or the last element of the list is O(1).",
        ),
    write("linsert", 5, F_DENYOOM, LIST_GROUP, K1, typed_write::<LInsert>())
        .acl(cats(&[WRITE, LIST, SLOW]), (KA_W, KA_W))
        .doc(
            "Insert an element before or after another element in a list",
            "2.2.0",
            "O(N) where N is the number of elements to traverse before seeing the value pivot. This means that inserting somewhere on the left end on the list (head) can be considered O(1) and inserting somewhere on the right end (tail) is O(N).",
        ),
    write("lrem", 4, F_NONE, LIST_GROUP, K1, typed_write::<LRem>())
        .acl(cats(&[WRITE, LIST, SLOW]), (KA_W, KA_W))
        .doc(
            "Remove elements from a list",
            "1.0.0",
            "O(N+M) where N is the length of the list and M is the number of elements removed.",
        ),
    write("ltrim", 4, F_NONE, LIST_GROUP, K1, typed_write::<LTrim>())
        .acl(cats(&[WRITE, LIST, SLOW]), (KA_W, KA_W))
        .doc(
            "Trim a list to the specified range",
            "1.0.0",
            "O(N) where N is the number of elements to be removed by the operation.",
        ),
    read("lpos", -3, F_NONE, LIST_GROUP, K1, typed_read::<LPos>())
        .acl(cats(&[READ, LIST, SLOW]), (KA_R, KA_R))
        .doc(
            "Return the index of matching elements on a list",
            "6.0.6",
            "O(N) where N is the number of elements in the list, for the average case. When searching for elements near the head or the tail of the list, or when the MAXLEN option is provided, the command may run in constant time.",
        ),
    write("lmove", 5, F_DENYOOM, LIST_GROUP, K12, typed_write::<LMove>())
        .acl(cats(&[WRITE, LIST, SLOW]), (KA_RW, KA_W))
        .doc(
            "Pop an element from a list, push it to another list and return it",
            "6.2.0",
            "O(1)",
        ),
    write("rpoplpush", 3, F_DENYOOM, LIST_GROUP, K12, typed_write::<RPopLPush>())
        .acl(cats(&[WRITE, LIST, SLOW]), (KA_RW, KA_W))
        .doc(
            "Remove the last element in a list, prepend it to another list and return it",
            "1.2.0",
            "O(1)",
        ),
    write("lmpop", -4, F_NONE, LIST_GROUP, NO_KEYS, typed_write::<LMPop>())
        .key_num(1)
        .acl(cats(&[WRITE, LIST, SLOW]), (KA_RW, KA_RW))
        .doc(
            "Pop elements from a list",
            "7.0.0",
            "O(N+M) where N is the number of provided keys and M is the number of elements returned.",
        ),
];

#[cfg(test)]
mod tests;
