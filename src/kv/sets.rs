//! Set commands (Redis 7.0.15): SADD SREM SMEMBERS SISMEMBER SMISMEMBER
//! SCARD SPOP SRANDMEMBER SMOVE SINTER SINTERCARD SINTERSTORE SUNION
//! SUNIONSTORE SDIFF SDIFFSTORE SSCAN, over the value of [`super::set`].
//!
//! Each command is a typed operation: its parse answers every error Redis
//! gives before looking at the data (counts, `numkeys`, `LIMIT`, the SSCAN
//! cursor), so only valid writes reach the log; apply/query answer the rest
//! in Redis's order (WRONGTYPE on any key argument holding another type,
//! SSCAN's options after the key).
//!
//! Invariants: a set that becomes empty is deleted; a STORE command
//! replaces its destination (TTL dropped) or deletes it when the result is
//! empty; results built from other sets are new sets, encoded as adds into
//! a new key would encode them (Redis's result encoding, SDIFFSTORE's choice
//! of algorithm included). Randomness (SPOP, SRANDMEMBER) comes only from
//! `ctx.seed`: for SPOP, a write, it is the same on every replica.

use bytes::Bytes;

use super::errors::{NOT_INTEGER, SYNTAX, WRONGTYPE};
use super::keys::{parse_cursor, parse_scan_options};
use super::notify;
use super::set::{Member, Set};
use super::table::{
    borrowed_unchanged, borrowed_write, typed_read, typed_write, Apply, Borrows, Parse, Query,
    Unchanged,
};
use super::unchanged::wrong_type;
use super::{glob, parse_i64, Ctx, Db, Output, Value};

/// The most members `SRANDMEMBER key <negative count>` returns. Redis
/// streams such a reply; dkv builds it in memory (in apply, inside MULTI
/// too), so it is bounded, as HRANDFIELD's (a guard, not a Redis rule).
pub const MAX_RANDOM_MEMBERS: i64 = 1_000_000;

fn read_set<'a>(db: &'a Db, ctx: &Ctx, key: &[u8]) -> Result<Option<&'a Set>, Output> {
    match db.lookup_read(ctx.db, key, ctx.now).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Set(s)) => Ok(Some(s)),
        Some(_) => Err(Output::err(WRONGTYPE)),
    }
}

/// For a write: `Ok(true)` if a set exists (an expired key is deleted
/// first), `Ok(false)` if the key is absent.
fn write_set(db: &mut Db, ctx: &Ctx, key: &[u8]) -> Result<bool, Output> {
    match db.lookup_write(ctx.db, key).map(|e| &e.value) {
        None => Ok(false),
        Some(Value::Set(_)) => Ok(true),
        Some(_) => Err(Output::err(WRONGTYPE)),
    }
}

/// The live set at `key` after [`write_set`] said it exists.
fn stored<'a>(db: &'a Db, ctx: &Ctx, key: &[u8]) -> &'a Set {
    match db.dbs[ctx.db].map.get(key).map(|e| &e.value) {
        Some(Value::Set(s)) => s,
        _ => unreachable!("checked to be a set by write_set"),
    }
}

/// Runs `f` on the set at `key`, which must exist (checked by
/// [`write_set`]) or is created empty; deletes it if `f` leaves it empty.
fn with_set<R>(db: &mut Db, ctx: &Ctx, key: &Bytes, f: impl FnOnce(&mut Set) -> R) -> R {
    if !db.dbs[ctx.db].map.contains_key(&key[..]) {
        db.put(ctx.db, key, Value::Set(crate::kv::Shared::default()), None);
    }
    let (result, empty) = db
        .modify(ctx.db, key, |v| match v {
            Value::Set(s) => {
                let result = f(s);
                (result, s.is_empty())
            }
            _ => unreachable!("checked to be a set by write_set"),
        })
        .expect("the set exists: checked or created above");
    if empty {
        db.remove(ctx.db, key);
    }
    result
}

fn members_reply<'a>(members: impl Iterator<Item = Member<'a>>) -> Vec<Output> {
    members.map(|m| Output::bulk(m.to_bytes())).collect()
}

fn set_reply(set: &Set) -> Output {
    Output::Set(members_reply(set.iter()))
}

// ---- single-key commands -----------------------------------------------

/// `SADD` (`ADD`) or `SREM key member [member ...]`. Borrows its
/// arguments: members are copied into the set, never kept.
pub(crate) struct Members<'a, const ADD: bool> {
    key: &'a Bytes,
    members: &'a [Bytes],
}

/// `SADD key member [member ...]`.
pub(crate) type SAdd<'a> = Members<'a, true>;
/// `SREM key member [member ...]`.
pub(crate) type SRem<'a> = Members<'a, false>;

impl<const ADD: bool> Borrows for Members<'static, ADD> {
    type Op<'a> = Members<'a, ADD>;
}

impl<'a, const ADD: bool> Parse<'a> for Members<'a, ADD> {
    fn parse(args: &'a [Bytes]) -> Result<Self, Output> {
        Ok(Members {
            key: &args[1],
            members: &args[2..],
        })
    }
}

impl<'a> Apply<'a> for SAdd<'a> {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        if let Err(e) = write_set(db, ctx, self.key) {
            return e;
        }
        let added = with_set(db, ctx, self.key, |s| {
            self.members.iter().filter(|m| s.insert(m)).count()
        });
        if added > 0 {
            db.notify(notify::SET, "sadd", ctx.db, self.key);
        }
        Output::Integer(added as i64)
    }
}

impl<'a> Unchanged<'a> for SAdd<'a> {
    fn unchanged(&self, db: &Db, ctx: &Ctx) -> Option<Output> {
        match db.probe_key(ctx, self.key)? {
            Some(Value::Set(s)) if self.members.iter().all(|m| s.contains(m)) => {
                Some(Output::Integer(0))
            }
            Some(Value::Set(_)) | None => None,
            Some(_) => wrong_type(),
        }
    }
}

impl<'a> Apply<'a> for SRem<'a> {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        match write_set(db, ctx, self.key) {
            Err(e) => e,
            Ok(false) => Output::Integer(0),
            Ok(true) => {
                let removed = with_set(db, ctx, self.key, |s| {
                    self.members.iter().filter(|m| s.remove(m)).count()
                });
                if removed > 0 {
                    db.notify(notify::SET, "srem", ctx.db, self.key);
                    db.notify_if_deleted(ctx.db, self.key);
                }
                Output::Integer(removed as i64)
            }
        }
    }
}

impl<'a> Unchanged<'a> for SRem<'a> {
    fn unchanged(&self, db: &Db, ctx: &Ctx) -> Option<Output> {
        match db.probe_key(ctx, self.key)? {
            Some(Value::Set(s)) if self.members.iter().any(|m| s.contains(m)) => None,
            Some(Value::Set(_)) | None => Some(Output::Integer(0)),
            Some(_) => wrong_type(),
        }
    }
}

/// A read of one key with the rest of the arguments (SMEMBERS, SISMEMBER,
/// SMISMEMBER, SCARD): nothing to check before the data.
pub(crate) struct KeyArgs {
    key: Bytes,
    rest: Vec<Bytes>,
}

impl Parse<'_> for KeyArgs {
    fn parse(args: &[Bytes]) -> Result<KeyArgs, Output> {
        Ok(KeyArgs {
            key: args[1].clone(),
            rest: args[2..].to_vec(),
        })
    }
}

/// `SMEMBERS key`.
pub(crate) struct SMembers(KeyArgs);

impl Parse<'_> for SMembers {
    fn parse(args: &[Bytes]) -> Result<SMembers, Output> {
        KeyArgs::parse(args).map(SMembers)
    }
}

impl Query<'_> for SMembers {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        match read_set(db, ctx, &self.0.key) {
            Ok(Some(s)) => set_reply(s),
            Ok(None) => Output::Set(vec![]),
            Err(e) => e,
        }
    }
}

/// `SISMEMBER key member`.
pub(crate) struct SIsMember(KeyArgs);

impl Parse<'_> for SIsMember {
    fn parse(args: &[Bytes]) -> Result<SIsMember, Output> {
        KeyArgs::parse(args).map(SIsMember)
    }
}

impl Query<'_> for SIsMember {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        match read_set(db, ctx, &self.0.key) {
            Ok(s) => Output::Integer(i64::from(s.is_some_and(|s| s.contains(&self.0.rest[0])))),
            Err(e) => e,
        }
    }
}

/// `SMISMEMBER key member [member ...]`.
pub(crate) struct SMIsMember(KeyArgs);

impl Parse<'_> for SMIsMember {
    fn parse(args: &[Bytes]) -> Result<SMIsMember, Output> {
        KeyArgs::parse(args).map(SMIsMember)
    }
}

impl Query<'_> for SMIsMember {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        match read_set(db, ctx, &self.0.key) {
            Ok(s) => Output::Array(
                self.0
                    .rest
                    .iter()
                    .map(|m| Output::Integer(i64::from(s.is_some_and(|s| s.contains(m)))))
                    .collect(),
            ),
            Err(e) => e,
        }
    }
}

/// `SCARD key`.
pub(crate) struct SCard(KeyArgs);

impl Parse<'_> for SCard {
    fn parse(args: &[Bytes]) -> Result<SCard, Output> {
        KeyArgs::parse(args).map(SCard)
    }
}

impl Query<'_> for SCard {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        match read_set(db, ctx, &self.0.key) {
            Ok(s) => Output::Integer(s.map_or(0, |s| s.len() as i64)),
            Err(e) => e,
        }
    }
}

/// `SPOP key [count]`: Redis checks the argument count, then the count,
/// then the key.
pub(crate) struct SPop {
    key: Bytes,
    count: Option<usize>,
}

impl Parse<'_> for SPop {
    fn parse(args: &[Bytes]) -> Result<SPop, Output> {
        let count = match args.len() {
            2 => None,
            3 => match parse_i64(&args[2]).and_then(|n| usize::try_from(n).ok()) {
                Some(n) => Some(n),
                None => return Err(Output::err("ERR value is out of range, must be positive")),
            },
            _ => return Err(Output::err(SYNTAX)),
        };
        Ok(SPop {
            key: args[1].clone(),
            count,
        })
    }
}

impl Apply<'_> for SPop {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        match write_set(db, ctx, &self.key) {
            Err(e) => e,
            Ok(false) => match self.count {
                None => Output::NIL,
                Some(_) => Output::Set(vec![]),
            },
            Ok(true) => match self.count {
                None => {
                    let popped = with_set(db, ctx, &self.key, |s| s.pop(ctx.seed));
                    spop_events(db, ctx, &self.key);
                    Output::Bulk(popped)
                }
                Some(0) => Output::Set(vec![]),
                Some(count) => {
                    let popped = with_set(db, ctx, &self.key, |s| s.pop_many(count, ctx.seed));
                    spop_events(db, ctx, &self.key);
                    Output::Set(popped.into_iter().map(Output::bulk).collect())
                }
            },
        }
    }
}

/// SPOP's events: `spop`, then `del` if the set is gone.
fn spop_events(db: &mut Db, ctx: &Ctx, key: &[u8]) {
    db.notify(notify::SET, "spop", ctx.db, key);
    db.notify_if_deleted(ctx.db, key);
}

/// `SRANDMEMBER key [count]`.
pub(crate) struct SRandMember {
    key: Bytes,
    count: Option<i64>,
}

impl Parse<'_> for SRandMember {
    fn parse(args: &[Bytes]) -> Result<SRandMember, Output> {
        let count = match args.len() {
            2 => None,
            3 => match parse_i64(&args[2]) {
                None => return Err(Output::err(NOT_INTEGER)),
                Some(i64::MIN) => {
                    return Err(Output::err(
                        "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                    ))
                }
                Some(n) => Some(n),
            },
            _ => return Err(Output::err(SYNTAX)),
        };
        Ok(SRandMember {
            key: args[1].clone(),
            count,
        })
    }
}

impl Query<'_> for SRandMember {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let set = match read_set(db, ctx, &self.key) {
            Ok(s) => s,
            Err(e) => return e,
        };
        let Some(count) = self.count else {
            return Output::Bulk(set.and_then(|s| s.random_member(ctx.seed).map(Member::to_bytes)));
        };
        let Some(set) = set else {
            return Output::Array(vec![]);
        };
        if count < -MAX_RANDOM_MEMBERS {
            return Output::err(format!(
                "ERR count is out of range (dkv returns at most {MAX_RANDOM_MEMBERS} repeated random members)"
            ));
        }
        Output::Array(members_reply(
            set.random_members(count, ctx.seed).into_iter(),
        ))
    }
}

/// `SMOVE source destination member`.
pub(crate) struct SMove {
    source: Bytes,
    destination: Bytes,
    member: Bytes,
}

impl Parse<'_> for SMove {
    fn parse(args: &[Bytes]) -> Result<SMove, Output> {
        Ok(SMove {
            source: args[1].clone(),
            destination: args[2].clone(),
            member: args[3].clone(),
        })
    }
}

impl Apply<'_> for SMove {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        // Redis: both keys looked up (expired ones deleted); a missing source
        // answers 0 before any type check.
        let source = db.lookup_write(ctx.db, &self.source).map(|e| &e.value);
        let source_is_set = match source {
            None => None,
            Some(Value::Set(_)) => Some(true),
            Some(_) => Some(false),
        };
        let destination = db
            .lookup_write(ctx.db, &self.destination)
            .map(|e| matches!(e.value, Value::Set(_)));
        match (source_is_set, destination) {
            (None, _) => return Output::Integer(0),
            (Some(false), _) | (_, Some(false)) => return Output::err(WRONGTYPE),
            _ => {}
        }
        if self.source == self.destination {
            let member = stored(db, ctx, &self.source).contains(&self.member);
            return Output::Integer(i64::from(member));
        }
        if !with_set(db, ctx, &self.source, |s| s.remove(&self.member)) {
            return Output::Integer(0);
        }
        db.notify(notify::SET, "srem", ctx.db, &self.source);
        db.notify_if_deleted(ctx.db, &self.source);
        if with_set(db, ctx, &self.destination, |s| s.insert(&self.member)) {
            db.notify(notify::SET, "sadd", ctx.db, &self.destination);
        }
        Output::Integer(1)
    }
}

// ---- multi-key commands --------------------------------------------------

/// The sets at `keys` for a read (`None`: missing); WRONGTYPE at the first
/// key of another type, after every key before it was looked up.
fn read_sets<'a>(db: &'a Db, ctx: &Ctx, keys: &[Bytes]) -> Result<Vec<Option<&'a Set>>, Output> {
    keys.iter().map(|k| read_set(db, ctx, k)).collect()
}

/// For a write: looks every source key up in order as Redis does (expired
/// keys deleted), stopping with WRONGTYPE at the first key of another type.
/// The missing keys are left to [`read_sets`] to count and send `keymiss`
/// for, unless a later key fails: then those before it are sent here (Redis
/// looked them up with `lookupKeyRead` before failing).
fn check_sources(db: &mut Db, ctx: &Ctx, keys: &[Bytes]) -> Result<(), Output> {
    let mut missing = Vec::new();
    for key in keys {
        match write_set(db, ctx, key) {
            Ok(true) => {}
            Ok(false) if db.notify_flags() & notify::KEY_MISS != 0 => missing.push(key),
            Ok(false) => {}
            Err(e) => {
                for key in missing {
                    db.note_read_miss(ctx.db, key);
                }
                return Err(e);
            }
        }
    }
    Ok(())
}

/// The intersection, up to `limit` members (0: no limit), in the order of
/// the smallest set; `None` when a key is missing (an empty result).
fn intersect<'a>(sets: &[Option<&'a Set>], limit: usize) -> Vec<Member<'a>> {
    let Some(mut sets) = sets.iter().copied().collect::<Option<Vec<&Set>>>() else {
        return Vec::new();
    };
    sets.sort_by_key(|s| s.len());
    let (smallest, others) = sets.split_first().expect("at least one key (arity)");
    let mut out = Vec::new();
    for m in smallest.iter() {
        if others
            .iter()
            .all(|o| std::ptr::eq(*o, *smallest) || o.contains_member(m))
        {
            out.push(m);
            if limit != 0 && out.len() >= limit {
                break;
            }
        }
    }
    out
}

/// The union, built as Redis builds it (adds in key order into a new set).
fn union(sets: &[Option<&Set>]) -> Set {
    Set::from_members(sets.iter().flatten().flat_map(|s| s.iter()))
}

/// The difference `first - others`, built as Redis 7.0 builds it, so a
/// stored result has Redis's encoding: Redis picks one of two algorithms by
/// estimated work — adding the members of the first set missing from every
/// other, or adding the whole first set and removing the others' members
/// (the second can leave a hashtable or a wide intset with few members).
/// `same` is true when a later key names the first (an empty result).
fn difference(sets: &[Option<&Set>], same: bool) -> Set {
    let Some(first) = sets[0] else {
        return Set::new();
    };
    if same {
        return Set::new();
    }
    let present = sets.iter().flatten();
    let first_work = present.clone().count() as u64 * first.len() as u64 / 2;
    let all_work: u64 = present.map(|s| s.len() as u64).sum();
    if first_work <= all_work {
        Set::from_members(
            first
                .iter()
                .filter(|m| !sets[1..].iter().flatten().any(|o| o.contains_member(*m))),
        )
    } else {
        let mut result = Set::from_members(first.iter());
        for other in sets[1..].iter().flatten() {
            if result.is_empty() {
                break;
            }
            for m in other.iter() {
                result.remove_member(m);
            }
        }
        result
    }
}

/// Which algebra a multi-key command computes.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Algebra {
    Inter,
    Union,
    Diff,
}

fn compute(algebra: Algebra, keys: &[Bytes], sets: &[Option<&Set>]) -> Set {
    match algebra {
        Algebra::Inter => Set::from_members(intersect(sets, 0)),
        Algebra::Union => union(sets),
        Algebra::Diff => {
            let same = sets[0].is_some() && keys[1..].iter().any(|k| *k == keys[0]);
            difference(sets, same)
        }
    }
}

/// `SINTER`, `SUNION`, `SDIFF key [key ...]`.
pub(crate) struct Combine {
    algebra: Algebra,
    keys: Vec<Bytes>,
}

impl Parse<'_> for Combine {
    fn parse(args: &[Bytes]) -> Result<Combine, Output> {
        let algebra = if args[0].eq_ignore_ascii_case(b"sinter") {
            Algebra::Inter
        } else if args[0].eq_ignore_ascii_case(b"sunion") {
            Algebra::Union
        } else {
            Algebra::Diff
        };
        Ok(Combine {
            algebra,
            keys: args[1..].to_vec(),
        })
    }
}

impl Query<'_> for Combine {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let sets = match read_sets(db, ctx, &self.keys) {
            Ok(s) => s,
            Err(e) => return e,
        };
        match self.algebra {
            // No set to build: the members of the smallest set are tested.
            Algebra::Inter => Output::Set(members_reply(intersect(&sets, 0).into_iter())),
            _ => set_reply(&compute(self.algebra, &self.keys, &sets)),
        }
    }
}

/// `SINTERSTORE`, `SUNIONSTORE`, `SDIFFSTORE destination key [key ...]`.
pub(crate) struct CombineStore {
    algebra: Algebra,
    destination: Bytes,
    keys: Vec<Bytes>,
}

impl Parse<'_> for CombineStore {
    fn parse(args: &[Bytes]) -> Result<CombineStore, Output> {
        let algebra = if args[0].eq_ignore_ascii_case(b"sinterstore") {
            Algebra::Inter
        } else if args[0].eq_ignore_ascii_case(b"sunionstore") {
            Algebra::Union
        } else {
            Algebra::Diff
        };
        Ok(CombineStore {
            algebra,
            destination: args[1].clone(),
            keys: args[2..].to_vec(),
        })
    }
}

impl Apply<'_> for CombineStore {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        if let Err(e) = check_sources(db, ctx, &self.keys) {
            return e;
        }
        let result = {
            let sets = match read_sets(db, ctx, &self.keys) {
                Ok(s) => s,
                Err(e) => return e,
            };
            compute(self.algebra, &self.keys, &sets)
        };
        // The destination is replaced whatever it held (Redis's setKey),
        // its TTL dropped, or deleted when the result is empty.
        let len = result.len();
        if len == 0 {
            // Redis's dbDelete: an expired destination is deleted (a
            // `del`), not expired.
            if db.remove(ctx.db, &self.destination).is_some() {
                db.notify(notify::GENERIC, "del", ctx.db, &self.destination);
            }
        } else {
            db.expire_if_needed(ctx.db, &self.destination);
            db.put(
                ctx.db,
                &self.destination,
                Value::Set(crate::kv::Shared::new(result)),
                None,
            );
            let event = match self.algebra {
                Algebra::Inter => "sinterstore",
                Algebra::Union => "sunionstore",
                Algebra::Diff => "sdiffstore",
            };
            db.notify(notify::SET, event, ctx.db, &self.destination);
        }
        Output::Integer(len as i64)
    }
}

/// `SINTERCARD numkeys key [key ...] [LIMIT limit]`.
pub(crate) struct SInterCard {
    keys: Vec<Bytes>,
    limit: usize,
}

impl Parse<'_> for SInterCard {
    fn parse(args: &[Bytes]) -> Result<SInterCard, Output> {
        let numkeys = parse_i64(&args[1])
            .filter(|&n| n >= 1)
            .ok_or_else(|| Output::err("ERR numkeys should be greater than 0"))?;
        let numkeys = usize::try_from(numkeys)
            .ok()
            .filter(|&n| n <= args.len() - 2)
            .ok_or_else(|| {
                Output::err("ERR Number of keys can't be greater than number of args")
            })?;
        let mut limit = 0;
        let mut j = 2 + numkeys;
        while j < args.len() {
            if args[j].eq_ignore_ascii_case(b"limit") && j + 1 < args.len() {
                limit = parse_i64(&args[j + 1])
                    .and_then(|n| usize::try_from(n).ok())
                    .ok_or_else(|| Output::err("ERR LIMIT can't be negative"))?;
                j += 2;
            } else {
                return Err(Output::err(SYNTAX));
            }
        }
        Ok(SInterCard {
            keys: args[2..2 + numkeys].to_vec(),
            limit,
        })
    }
}

impl Query<'_> for SInterCard {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        match read_sets(db, ctx, &self.keys) {
            Ok(sets) => Output::Integer(intersect(&sets, self.limit).len() as i64),
            Err(e) => e,
        }
    }
}

/// `SSCAN key cursor [MATCH pattern] [COUNT count]`: the cursor is checked
/// first; the options only once the key exists and is a set (Redis 7.0's
/// order: a missing key answers an empty scan whatever the options).
pub(crate) struct SScan {
    key: Bytes,
    cursor: u64,
    args: Vec<Bytes>,
}

impl Parse<'_> for SScan {
    fn parse(args: &[Bytes]) -> Result<SScan, Output> {
        Ok(SScan {
            key: args[1].clone(),
            cursor: parse_cursor(&args[2])?,
            args: args.to_vec(),
        })
    }
}

impl Query<'_> for SScan {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let set = match read_set(db, ctx, &self.key) {
            Ok(Some(s)) => s,
            Ok(None) => return Output::Array(vec![Output::bulk("0"), Output::Array(vec![])]),
            Err(e) => return e,
        };
        let options = match parse_scan_options(&self.args, 3, false) {
            Ok(o) => o,
            Err(e) => return e,
        };
        let (next, members) = set.scan(self.cursor, options.count);
        let members = members
            .into_iter()
            .map(Member::to_bytes)
            .filter(|m| {
                options
                    .pattern
                    .as_ref()
                    .is_none_or(|p| glob::matches(p, m, false))
            })
            .map(Output::bulk)
            .collect();
        Output::Array(vec![Output::bulk(next.to_string()), Output::Array(members)])
    }
}

// ---- command table -------------------------------------------------------

use crate::cmd::cat::*;
use crate::cmd::{read, write, CommandSpec, K1, K12, KN, NO_KEYS};

const SET_GROUP: &str = "@set";

/// The set commands' rows: arity, flags, ACL categories and key access as
/// Redis 7.0.15's `COMMAND INFO` shows them.
pub(crate) static COMMANDS: &[CommandSpec] = &[
    write("sadd", -3, F_FAST_DENYOOM, SET_GROUP, K1, borrowed_write::<SAdd<'static>>())
        .unchanged_by(borrowed_unchanged::<SAdd<'static>>())
        .acl(cats(&[WRITE, SET, FAST]), (KA_W, KA_W))
        .doc(
            "Adds members to a set, creating it if needed.",
            "1.0.0",
            "O(1) per member added.",
        ),
    write("srem", -3, F_FAST, SET_GROUP, K1, borrowed_write::<SRem<'static>>())
        .unchanged_by(borrowed_unchanged::<SRem<'static>>())
        .acl(cats(&[WRITE, SET, FAST]), (KA_W, KA_W))
        .doc(
            "Removes members from a set; deletes it when emptied.",
            "1.0.0",
            "O(N) for N members removed.",
        ),
    read("smembers", 2, F_NONE, SET_GROUP, K1, typed_read::<SMembers>())
        .acl(cats(&[READ, SET, SLOW]), (KA_R, KA_R))
        .doc(
            "Returns every member of a set.",
            "1.0.0",
            "O(N) for a set of N members.",
        ),
    read("sismember", 3, F_FAST, SET_GROUP, K1, typed_read::<SIsMember>())
        .acl(cats(&[READ, SET, FAST]), (KA_NONE, KA_NONE))
        .doc("Tells whether a value is a member of a set.", "1.0.0", "O(1)"),
    read(
        "smismember",
        -3,
        F_FAST,
        SET_GROUP,
        K1,
        typed_read::<SMIsMember>(),
    )
    .acl(cats(&[READ, SET, FAST]), (KA_R, KA_R))
    .doc(
        "Tells, for each of several values, whether it is a member of a set.",
        "6.2.0",
        "O(N) for N values checked.",
    ),
    read("scard", 2, F_FAST, SET_GROUP, K1, typed_read::<SCard>())
        .acl(cats(&[READ, SET, FAST]), (KA_NONE, KA_NONE))
        .doc("Returns the number of members of a set.", "1.0.0", "O(1)"),
    write("spop", -2, F_FAST, SET_GROUP, K1, typed_write::<SPop>())
        .acl(cats(&[WRITE, SET, FAST]), (KA_RW, KA_RW))
        .doc(
            "Removes and returns one or several random members of a set.",
            "1.0.0",
            "O(1) without a count, O(N) for a count of N.",
        ),
    read(
        "srandmember",
        -2,
        F_NONE,
        SET_GROUP,
        K1,
        typed_read::<SRandMember>(),
    )
    .acl(cats(&[READ, SET, SLOW]), (KA_R, KA_R))
    .doc(
        "Returns random members of a set: distinct for a positive count, possibly repeated for a negative one.",
        "1.0.0",
        "O(1) without a count, O(N) for a count of N or -N.",
    ),
    write("smove", 4, F_FAST, SET_GROUP, K12, typed_write::<SMove>())
        .acl(cats(&[WRITE, SET, FAST]), (KA_RW, KA_W))
        .doc("Moves a member from one set to another.", "1.0.0", "O(1)"),
    read("sinter", -2, F_NONE, SET_GROUP, KN, typed_read::<Combine>())
        .acl(cats(&[READ, SET, SLOW]), (KA_R, KA_R))
        .doc(
            "Returns the members common to every given set.",
            "1.0.0",
            "O(N*M) worst case, N the smallest set's size, M the number of sets.",
        ),
    read(
        "sintercard",
        -3,
        F_NONE,
        SET_GROUP,
        NO_KEYS,
        typed_read::<SInterCard>(),
    )
    .key_num(1)
    .acl(cats(&[READ, SET, SLOW]), (KA_R, KA_R))
    .doc(
        "Returns the size of the intersection of sets, counting up to an optional limit.",
        "7.0.0",
        "O(N*M) worst case, N the smallest set's size, M the number of sets.",
    ),
    write(
        "sinterstore",
        -3,
        F_DENYOOM,
        SET_GROUP,
        KN,
        typed_write::<CombineStore>(),
    )
    .acl(cats(&[WRITE, SET, SLOW]), (KA_W, KA_R))
    .doc(
        "Stores the intersection of sets in a key.",
        "1.0.0",
        "O(N*M) worst case, N the smallest set's size, M the number of sets.",
    ),
    read("sunion", -2, F_NONE, SET_GROUP, KN, typed_read::<Combine>())
        .acl(cats(&[READ, SET, SLOW]), (KA_R, KA_R))
        .doc(
            "Returns the members of any of the given sets.",
            "1.0.0",
            "O(N), N the total number of members of the sets.",
        ),
    write(
        "sunionstore",
        -3,
        F_DENYOOM,
        SET_GROUP,
        KN,
        typed_write::<CombineStore>(),
    )
    .acl(cats(&[WRITE, SET, SLOW]), (KA_W, KA_R))
    .doc(
        "Stores the union of sets in a key.",
        "1.0.0",
        "O(N), N the total number of members of the sets.",
    ),
    read("sdiff", -2, F_NONE, SET_GROUP, KN, typed_read::<Combine>())
        .acl(cats(&[READ, SET, SLOW]), (KA_R, KA_R))
        .doc(
            "Returns the members of the first set that are in none of the others.",
            "1.0.0",
            "O(N), N the total number of members of the sets.",
        ),
    write(
        "sdiffstore",
        -3,
        F_DENYOOM,
        SET_GROUP,
        KN,
        typed_write::<CombineStore>(),
    )
    .acl(cats(&[WRITE, SET, SLOW]), (KA_W, KA_R))
    .doc(
        "Stores the difference of the first set and the others in a key.",
        "1.0.0",
        "O(N), N the total number of members of the sets.",
    ),
    read("sscan", -3, F_NONE, SET_GROUP, K1, typed_read::<SScan>())
        .acl(cats(&[READ, SET, SLOW]), (KA_R, KA_R))
        .doc(
            "Iterates over the members of a set with a cursor.",
            "2.8.0",
            "O(1) per call, O(N) for a whole iteration.",
        ),
];

#[cfg(test)]
mod tests;
