//! Hash commands.
//!
//! HSET/HMSET pairs, HINCRBY/HINCRBYFLOAT increments, HSCAN's cursor and
//! HRANDFIELD's count are checked by the parse, before proposing or reading;
//! HSCAN's options only after the key, as Redis 7.0 does.

use bytes::Bytes;

use super::errors::{NAN_OR_INF, NOT_FLOAT, NOT_INTEGER, OVERFLOW, SYNTAX, WRONGTYPE};
use super::hash::Hash;
use super::keys::{parse_cursor, parse_scan_options};
use super::notify;
use super::table::{Apply, Parse, Query};
use super::{float, glob, mix, parse_i64, Ctx, Db, Output, Value};

fn read_hash<'a>(db: &'a Db, ctx: &Ctx, key: &[u8]) -> Result<Option<&'a Hash>, Output> {
    match db.lookup_read(ctx.db, key, ctx.now).map(|e| &e.value) {
        None => Ok(None),
        Some(Value::Hash(h)) => Ok(Some(h)),
        Some(_) => Err(Output::err(WRONGTYPE)),
    }
}

/// For a write: `Ok(true)` if a hash exists, `Ok(false)` if the key is absent.
fn write_hash(db: &mut Db, ctx: &Ctx, key: &[u8]) -> Result<bool, Output> {
    match db.lookup_write(ctx.db, key).map(|e| &e.value) {
        None => Ok(false),
        Some(Value::Hash(_)) => Ok(true),
        Some(_) => Err(Output::err(WRONGTYPE)),
    }
}

/// Runs `f` on the hash at `key`, creating it if absent; deletes it if `f`
/// leaves it empty.
fn with_hash<R>(
    db: &mut Db,
    ctx: &Ctx,
    key: &Bytes,
    f: impl FnOnce(&mut Hash) -> R,
) -> Result<R, Output> {
    if !write_hash(db, ctx, key)? {
        db.put(ctx.db, key, Value::Hash(crate::kv::Shared::default()), None);
    }
    let result = db
        .modify(ctx.db, key, |v| match v {
            Value::Hash(h) => f(h),
            _ => unreachable!("checked to be a hash above"),
        })
        .expect("the hash exists: checked or created above");
    if matches!(db.dbs[ctx.db].map.get(&key[..]).map(|e| &e.value), Some(Value::Hash(h)) if h.is_empty())
    {
        db.remove(ctx.db, key);
    }
    Ok(result)
}

/// `HSET key field value [field value ...]` and HMSET (`hmset`): an
/// unpaired field is refused before proposing.
pub(crate) struct HSet {
    key: Bytes,
    pairs: Vec<(Bytes, Bytes)>,
    hmset: bool,
}

impl Parse<'_> for HSet {
    fn parse(args: &[Bytes]) -> Result<HSet, Output> {
        let hmset = args[0].eq_ignore_ascii_case(b"hmset");
        if args.len() % 2 == 1 {
            let name = if hmset { "hmset" } else { "hset" };
            return Err(Output::err(format!(
                "ERR wrong number of arguments for '{name}' command"
            )));
        }
        let pairs = args[2..]
            .chunks(2)
            .map(|pair| (pair[0].clone(), pair[1].clone()))
            .collect();
        Ok(HSet {
            key: args[1].clone(),
            pairs,
            hmset,
        })
    }
}

impl Apply<'_> for HSet {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let added = with_hash(db, ctx, &self.key, |h| {
            self.pairs
                .into_iter()
                .filter(|(field, value)| h.insert(field.clone(), value.clone()).is_none())
                .count() as i64
        });
        if added.is_ok() {
            db.notify(notify::HASH, "hset", ctx.db, &self.key);
        }
        match added {
            Ok(_) if self.hmset => Output::Ok,
            Ok(added) => Output::Integer(added),
            Err(e) => e,
        }
    }
}

pub(crate) fn hsetnx(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match write_hash(db, ctx, &args[1]) {
        Err(e) => return e,
        Ok(true) => {
            let exists = matches!(&db.dbs[ctx.db].map[&args[1][..]].value, Value::Hash(h) if h.contains_key(&args[2][..]));
            if exists {
                return Output::Integer(0);
            }
        }
        Ok(false) => {}
    }
    let set = with_hash(db, ctx, &args[1], |h| {
        h.insert(args[2].clone(), args[3].clone());
    });
    if set.is_ok() {
        db.notify(notify::HASH, "hset", ctx.db, &args[1]);
    }
    set.map_or_else(|e| e, |_| Output::Integer(1))
}

/// HSETNX of a field that is there: `0`, nothing set.
fn hsetnx_unchanged(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Option<Output> {
    match db.probe_key(ctx, &args[1])? {
        Some(Value::Hash(h)) if h.contains_key(&args[2][..]) => Some(Output::Integer(0)),
        Some(Value::Hash(_)) | None => None,
        Some(_) => super::unchanged::wrong_type(),
    }
}

pub(crate) fn hget(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match read_hash(db, ctx, &args[1]) {
        Ok(h) => Output::Bulk(h.and_then(|h| h.get(&args[2][..]).cloned())),
        Err(e) => e,
    }
}

pub(crate) fn hmget(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match read_hash(db, ctx, &args[1]) {
        Ok(h) => Output::Array(
            args[2..]
                .iter()
                .map(|f| Output::Bulk(h.and_then(|h| h.get(&f[..]).cloned())))
                .collect(),
        ),
        Err(e) => e,
    }
}

pub(crate) fn hgetall(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match read_hash(db, ctx, &args[1]) {
        Ok(h) => Output::Map(
            h.into_iter()
                .flatten()
                .map(|(f, v)| (Output::bulk(f.clone()), Output::bulk(v.clone())))
                .collect(),
        ),
        Err(e) => e,
    }
}

pub(crate) fn hdel(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match write_hash(db, ctx, &args[1]) {
        Err(e) => e,
        Ok(false) => Output::Integer(0),
        Ok(true) => {
            let deleted = with_hash(db, ctx, &args[1], |h| {
                args[2..]
                    .iter()
                    .filter(|f| h.remove(&f[..]).is_some())
                    .count() as i64
            });
            if deleted.as_ref().is_ok_and(|&n| n > 0) {
                db.notify(notify::HASH, "hdel", ctx.db, &args[1]);
                db.notify_if_deleted(ctx.db, &args[1]);
            }
            deleted.map_or_else(|e| e, Output::Integer)
        }
    }
}

/// HDEL of fields that are not there: `0`.
fn hdel_unchanged(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Option<Output> {
    match db.probe_key(ctx, &args[1])? {
        Some(Value::Hash(h)) if args[2..].iter().any(|f| h.contains_key(&f[..])) => None,
        Some(Value::Hash(_)) | None => Some(Output::Integer(0)),
        Some(_) => super::unchanged::wrong_type(),
    }
}

pub(crate) fn hexists(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match read_hash(db, ctx, &args[1]) {
        Ok(h) => Output::Integer(i64::from(h.is_some_and(|h| h.contains_key(&args[2][..])))),
        Err(e) => e,
    }
}

/// `HINCRBY key field increment`: the increment is checked before the key
/// (Redis's order), so a bad one is refused before proposing.
pub(crate) struct HIncrBy {
    key: Bytes,
    field: Bytes,
    by: i64,
}

impl Parse<'_> for HIncrBy {
    fn parse(args: &[Bytes]) -> Result<HIncrBy, Output> {
        Ok(HIncrBy {
            key: args[1].clone(),
            field: args[2].clone(),
            by: parse_i64(&args[3]).ok_or_else(|| Output::err(NOT_INTEGER))?,
        })
    }
}

impl Apply<'_> for HIncrBy {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let result = with_hash(db, ctx, &self.key, |h| {
            let value = match h.get(&self.field) {
                None => 0,
                Some(v) => match parse_i64(v) {
                    Some(v) => v,
                    None => return Output::err("ERR hash value is not an integer"),
                },
            };
            match value.checked_add(self.by) {
                None => Output::err(OVERFLOW),
                Some(n) => {
                    h.insert(self.field, Bytes::from(n.to_string()));
                    Output::Integer(n)
                }
            }
        });
        if matches!(result, Ok(Output::Integer(_))) {
            db.notify(notify::HASH, "hincrby", ctx.db, &self.key);
        }
        result.unwrap_or_else(|e| e)
    }
}

/// `HINCRBYFLOAT key field increment`: the increment (a finite number) is
/// checked before the key (Redis's order), so a bad one is refused before
/// proposing.
pub(crate) struct HIncrByFloat {
    key: Bytes,
    field: Bytes,
    by: float::LongDouble,
}

impl Parse<'_> for HIncrByFloat {
    fn parse(args: &[Bytes]) -> Result<HIncrByFloat, Output> {
        let by = float::LongDouble::parse(&args[3]).ok_or_else(|| Output::err(NOT_FLOAT))?;
        if !by.is_finite() {
            return Err(Output::err("ERR value is NaN or Infinity"));
        }
        Ok(HIncrByFloat {
            key: args[1].clone(),
            field: args[2].clone(),
            by,
        })
    }
}

impl Apply<'_> for HIncrByFloat {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let result = with_hash(db, ctx, &self.key, |h| {
            let value = match h.get(&self.field) {
                None => float::LongDouble::ZERO,
                Some(v) => match float::LongDouble::parse(v) {
                    Some(v) => v,
                    None => return Output::err("ERR hash value is not a float"),
                },
            };
            let sum = value.add(&self.by);
            if !sum.is_finite() {
                return Output::err(NAN_OR_INF);
            }
            let text = Bytes::from(sum.to_human());
            h.insert(self.field, text.clone());
            Output::bulk(text)
        });
        if matches!(result, Ok(Output::Bulk(_))) {
            db.notify(notify::HASH, "hincrbyfloat", ctx.db, &self.key);
        }
        result.unwrap_or_else(|e| e)
    }
}

pub(crate) fn hlen(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match read_hash(db, ctx, &args[1]) {
        Ok(h) => Output::Integer(h.map_or(0, |h| h.len() as i64)),
        Err(e) => e,
    }
}

pub(crate) fn hkeys(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match read_hash(db, ctx, &args[1]) {
        Ok(h) => Output::Array(
            h.into_iter()
                .flatten()
                .map(|(f, _)| Output::bulk(f.clone()))
                .collect(),
        ),
        Err(e) => e,
    }
}

pub(crate) fn hvals(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match read_hash(db, ctx, &args[1]) {
        Ok(h) => Output::Array(
            h.into_iter()
                .flatten()
                .map(|(_, v)| Output::bulk(v.clone()))
                .collect(),
        ),
        Err(e) => e,
    }
}

pub(crate) fn hstrlen(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match read_hash(db, ctx, &args[1]) {
        Ok(h) => Output::Integer(
            h.and_then(|h| h.get(&args[2][..]))
                .map_or(0, |v| v.len() as i64),
        ),
        Err(e) => e,
    }
}

/// `HSCAN key cursor [MATCH pattern] [COUNT count]`: the cursor is checked
/// before the read; the options only after the key (Redis 7.0's order: an
/// absent key is an empty scan whatever the options).
///
/// HSCAN returns the whole hash in one reply (cursor 0), as Redis does for
/// small (listpack) hashes; COUNT is only a hint in Redis too.
pub(crate) struct HScan {
    key: Bytes,
    /// The arguments, options from index 3.
    args: Vec<Bytes>,
}

impl Parse<'_> for HScan {
    fn parse(args: &[Bytes]) -> Result<HScan, Output> {
        parse_cursor(&args[2])?;
        Ok(HScan {
            key: args[1].clone(),
            args: args.to_vec(),
        })
    }
}

impl Query<'_> for HScan {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let h = match read_hash(db, ctx, &self.key) {
            Ok(Some(h)) => h,
            Ok(None) => return Output::Array(vec![Output::bulk("0"), Output::Array(vec![])]),
            Err(e) => return e,
        };
        let o = match parse_scan_options(&self.args, 3, false) {
            Ok(o) => o,
            Err(e) => return e,
        };
        let mut items = Vec::new();
        for (f, v) in h {
            if o.pattern
                .as_ref()
                .is_none_or(|p| glob::matches(p, f, false))
            {
                items.push(Output::bulk(f.clone()));
                items.push(Output::bulk(v.clone()));
            }
        }
        Output::Array(vec![Output::bulk("0"), Output::Array(items)])
    }
}

/// The most fields `HRANDFIELD key <negative count>` returns.
pub const MAX_RANDOM_FIELDS: i64 = 1_000_000;

/// `HRANDFIELD key [count [WITHVALUES]]`: the count and the option are
/// checked before the read; dkv's bound on repeated fields only after the
/// key (an absent key answers an empty array whatever the count, as Redis).
pub(crate) struct HRandField {
    key: Bytes,
    /// The count and WITHVALUES, if a count is given.
    count: Option<(i64, bool)>,
}

impl Parse<'_> for HRandField {
    fn parse(args: &[Bytes]) -> Result<HRandField, Output> {
        let key = args[1].clone();
        if args.len() == 2 {
            return Ok(HRandField { key, count: None });
        }
        let count = match parse_i64(&args[2]) {
            None => return Err(Output::err(NOT_INTEGER)),
            Some(i64::MIN) => {
                return Err(Output::err(
                    "ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807",
                ))
            }
            Some(n) => n,
        };
        if args.len() > 4 || (args.len() == 4 && !args[3].eq_ignore_ascii_case(b"withvalues")) {
            return Err(Output::err(SYNTAX));
        }
        let with_values = args.len() == 4;
        if with_values && !(-(i64::MAX / 2)..=i64::MAX / 2).contains(&count) {
            return Err(Output::err("ERR value is out of range"));
        }
        Ok(HRandField {
            key,
            count: Some((count, with_values)),
        })
    }
}

impl Query<'_> for HRandField {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let Some((count, with_values)) = self.count else {
            return match read_hash(db, ctx, &self.key) {
                Ok(Some(h)) => {
                    let i = (mix(ctx.seed) % h.len() as u64) as usize;
                    Output::Bulk(h.get_index(i).map(|(f, _)| f.clone()))
                }
                Ok(None) => Output::NIL,
                Err(e) => e,
            };
        };
        match read_hash(db, ctx, &self.key) {
            Ok(Some(h)) => random_fields(h, count, with_values, ctx.seed),
            Ok(None) => Output::Array(vec![]),
            Err(e) => e,
        }
    }
}

/// `count` random fields of `h` (repeated if negative), with their values.
fn random_fields(h: &Hash, count: i64, with_values: bool, mut seed: u64) -> Output {
    if count == 0 {
        return Output::Array(vec![]);
    }
    // A negative count repeats fields, so the reply is as long as the client
    // asks; Redis streams it, dkv builds it in memory (in apply, inside MULTI),
    // so it is bounded (DoS and crash guard, not a Redis rule).
    if count < -MAX_RANDOM_FIELDS {
        return Output::err(format!(
            "ERR count is out of range (dkv returns at most {MAX_RANDOM_FIELDS} repeated random fields)"
        ));
    }
    let fields: Vec<(&Bytes, &Bytes)> = h.iter().collect();
    let picks: Vec<usize> = if count < 0 {
        (0..count.unsigned_abs())
            .map(|_| {
                seed = mix(seed);
                (seed % fields.len() as u64) as usize
            })
            .collect()
    } else if count as usize >= fields.len() {
        (0..fields.len()).collect()
    } else {
        // A deterministic partial Fisher-Yates shuffle.
        let mut order: Vec<usize> = (0..fields.len()).collect();
        for i in 0..count as usize {
            seed = mix(seed);
            let j = i + (seed % (order.len() - i) as u64) as usize;
            order.swap(i, j);
        }
        order.truncate(count as usize);
        order
    };
    if with_values {
        let pairs = picks
            .into_iter()
            .map(|i| {
                (
                    Output::bulk(fields[i].0.clone()),
                    Output::bulk(fields[i].1.clone()),
                )
            })
            .collect();
        return Output::Pairs(pairs);
    }
    Output::Array(
        picks
            .into_iter()
            .map(|i| Output::bulk(fields[i].0.clone()))
            .collect(),
    )
}

// ---- definitions -------------------------------------------------------------

use super::table::{typed_read, typed_write, unchecked_read, unchecked_write};
use crate::cmd::cat::*;
use crate::cmd::{read, write, CommandSpec, K1};

const HASH_GROUP: &str = "@hash";

/// This group's command definitions (see `crate::cmd`).
///
/// The `unchecked_*` rows take only a key, fields and values in a fixed
/// number (or any number of fields): no argument list of the right arity is
/// a syntax error.
pub(crate) static COMMANDS: &[CommandSpec] = &[
    write("hset", -4, F_FAST_DENYOOM, HASH_GROUP, K1, typed_write::<HSet>())
        .acl(cats(&[WRITE, HASH, FAST]), (KA_W, KA_W))
        .doc("Set the string value of a hash field", "2.0.0", "O(1) for each field/value pair added, so O(N) to add N field/value pairs when the command is called with multiple field/value pairs."),
    write("hmset", -4, F_FAST_DENYOOM, HASH_GROUP, K1, typed_write::<HSet>())
        .acl(cats(&[WRITE, HASH, FAST]), (KA_W, KA_W))
        .doc("Set multiple hash fields to multiple values", "2.0.0", "O(N) where N is the number of fields being set."),
    write("hsetnx", 4, F_FAST_DENYOOM, HASH_GROUP, K1, unchecked_write(hsetnx))
        .unchanged_by(hsetnx_unchanged)
        .acl(cats(&[WRITE, HASH, FAST]), (KA_W, KA_W))
        .doc("Set the value of a hash field, only if the field does not exist", "2.0.0", "O(1)"),
    read("hget", 3, F_FAST, HASH_GROUP, K1, unchecked_read(hget))
        .acl(cats(&[READ, HASH, FAST]), (KA_R, KA_R))
        .doc("Get the value of a hash field", "2.0.0", "O(1)"),
    read("hmget", -3, F_FAST, HASH_GROUP, K1, unchecked_read(hmget))
        .acl(cats(&[READ, HASH, FAST]), (KA_R, KA_R))
        .doc("Get the values of all the given hash fields", "2.0.0", "O(N) where N is the number of fields being requested."),
    read("hgetall", 2, F_NONE, HASH_GROUP, K1, unchecked_read(hgetall))
        .acl(cats(&[READ, HASH, SLOW]), (KA_R, KA_R))
        .doc("Get all the fields and values in a hash", "2.0.0", "O(N) where N is the size of the hash."),
    write("hdel", -3, F_FAST, HASH_GROUP, K1, unchecked_write(hdel))
        .unchanged_by(hdel_unchanged)
        .acl(cats(&[WRITE, HASH, FAST]), (KA_W, KA_W))
        .doc("Delete one or more hash fields", "2.0.0", "O(N) where N is the number of fields to be removed."),
    read("hexists", 3, F_FAST, HASH_GROUP, K1, unchecked_read(hexists))
        .acl(cats(&[READ, HASH, FAST]), (KA_NONE, KA_NONE))
        .doc("Determine if a hash field exists", "2.0.0", "O(1)"),
    write("hincrby", 4, F_FAST_DENYOOM, HASH_GROUP, K1, typed_write::<HIncrBy>())
        .acl(cats(&[WRITE, HASH, FAST]), (KA_RW, KA_RW))
        .doc("Increment the integer value of a hash field by the given number", "2.0.0", "O(1)"),
    write("hincrbyfloat", 4, F_FAST_DENYOOM, HASH_GROUP, K1, typed_write::<HIncrByFloat>())
        .acl(cats(&[WRITE, HASH, FAST]), (KA_RW, KA_RW))
        .doc("Increment the float value of a hash field by the given amount", "2.6.0", "O(1)"),
    read("hlen", 2, F_FAST, HASH_GROUP, K1, unchecked_read(hlen))
        .acl(cats(&[READ, HASH, FAST]), (KA_NONE, KA_NONE))
        .doc("Get the number of fields in a hash", "2.0.0", "O(1)"),
    read("hkeys", 2, F_NONE, HASH_GROUP, K1, unchecked_read(hkeys))
        .acl(cats(&[READ, HASH, SLOW]), (KA_R, KA_R))
        .doc("Get all the fields in a hash", "2.0.0", "O(N) where N is the size of the hash."),
    read("hvals", 2, F_NONE, HASH_GROUP, K1, unchecked_read(hvals))
        .acl(cats(&[READ, HASH, SLOW]), (KA_R, KA_R))
        .doc("Get all the values in a hash", "2.0.0", "O(N) where N is the size of the hash."),
    read("hstrlen", 3, F_FAST, HASH_GROUP, K1, unchecked_read(hstrlen))
        .acl(cats(&[READ, HASH, FAST]), (KA_NONE, KA_NONE))
        .doc("Get the length of the value of a hash field", "3.2.0", "O(1)"),
    read("hscan", -3, F_NONE, HASH_GROUP, K1, typed_read::<HScan>())
        .acl(cats(&[READ, HASH, SLOW]), (KA_R, KA_R))
        .doc("Incrementally iterate hash fields and associated values", "2.8.0", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection.."),
    read("hrandfield", -2, F_NONE, HASH_GROUP, K1, typed_read::<HRandField>())
        .acl(cats(&[READ, HASH, SLOW]), (KA_R, KA_R))
        .doc("Get one or multiple random fields from a hash", "6.2.0", "O(N) where N is the number of fields returned"),
];

#[cfg(test)]
mod tests {
    use super::super::table::testing::{assert_checks, exec};
    use super::*;

    const NOT_INT: Option<&str> = Some("ERR value is not an integer or out of range");

    /// Every hash's running byte total and the map's `used_memory` equal a
    /// full recount after each write of a seeded random sequence of hash
    /// commands (new fields, overwrites, removals, increments, deleting a
    /// hash by emptying it), and after a snapshot round-trip.
    #[test]
    fn memory_accounting_stays_exact_through_random_hash_writes() {
        fn recount_hash(h: &Hash) -> u64 {
            h.iter().map(|(f, v)| (f.len() + v.len()) as u64 + 32).sum()
        }
        fn check(map: &Db) {
            let mut total = 0;
            for ks in &map.dbs {
                for (key, entry) in ks.map.iter() {
                    if let Value::Hash(h) = &entry.value {
                        assert_eq!(h.mem_bytes(), recount_hash(h));
                    }
                    total += super::super::entry_bytes(key, entry);
                }
            }
            assert_eq!(map.used_memory(), total);
        }
        let mut map = Db::new();
        let mut seed = 7u64;
        let mut draw = |n: u64| {
            seed = mix(seed);
            seed % n
        };
        for _ in 0..2_000 {
            let key = format!("h{}", draw(3));
            let field = format!("f{}", "x".repeat(draw(6) as usize));
            let value = match draw(3) {
                0 => draw(1_000).to_string(),
                1 => format!("{}.5", draw(100)),
                _ => "v".repeat(draw(30) as usize),
            };
            let line = match draw(7) {
                0 | 1 => format!("HSET {key} {field} {value}"),
                2 => format!("HSET {key} {field} {value} g{} {value}", draw(4)),
                3 => format!("HSETNX {key} {field} {value}"),
                4 => format!("HDEL {key} {field} g{}", draw(4)),
                5 => format!("HINCRBY {key} {field} {}", draw(200)),
                _ => format!("HINCRBYFLOAT {key} {field} 0.25"),
            };
            exec(&mut map, 0, 1000, &line);
            check(&map);
        }
        assert!(map.dbs[0].map.len() > 1, "the walk left some hashes");
        let restored = Db::restore(&map.snapshot_bytes()).expect("decodes");
        check(&restored);
        assert_eq!(restored.used_memory(), map.used_memory());
        assert_eq!(restored.dataset_digest(), map.dataset_digest());
        for (key, entry) in map.dbs[0].map.iter() {
            assert_eq!(restored.dbs[0].map[key].value, entry.value);
        }
    }

    #[test]
    fn hset_refuses_an_unpaired_field_before_proposing() {
        assert_checks(&[
            (
                "HSET h f v g",
                Some("ERR wrong number of arguments for 'hset' command"),
            ),
            (
                "HMSET h f v g",
                Some("ERR wrong number of arguments for 'hmset' command"),
            ),
            ("HSET h f v g w", None),
        ]);
        let mut map = Db::new();
        assert_eq!(
            exec(&mut map, 0, 1000, "HSET h f v g w"),
            Output::Integer(2)
        );
        assert_eq!(exec(&mut map, 0, 1000, "HMSET h f x k y"), Output::Ok);
        assert_eq!(
            exec(&mut map, 0, 1000, "HSET h k z n m"),
            Output::Integer(1)
        );
    }

    #[test]
    fn hincrby_increments_are_refused_before_proposing() {
        assert_checks(&[
            ("HINCRBY h f x", NOT_INT),
            ("HINCRBY h f 1.0", NOT_INT),
            ("HINCRBY h f -9223372036854775808", None),
            ("HINCRBYFLOAT h f x", Some("ERR value is not a valid float")),
            (
                "HINCRBYFLOAT h f nan",
                Some("ERR value is not a valid float"),
            ),
            ("HINCRBYFLOAT h f inf", Some("ERR value is NaN or Infinity")),
            (
                "HINCRBYFLOAT h f -Infinity",
                Some("ERR value is NaN or Infinity"),
            ),
            ("HINCRBYFLOAT h f 1e10", None),
        ]);
        let mut map = Db::new();
        assert_eq!(exec(&mut map, 0, 1000, "HINCRBY h f 5"), Output::Integer(5));
        assert_eq!(
            exec(&mut map, 0, 1000, "HINCRBYFLOAT h f 0.5"),
            Output::bulk("5.5")
        );
        assert_eq!(
            exec(&mut map, 0, 1000, "HINCRBY h f 1"),
            Output::err("ERR hash value is not an integer")
        );
    }

    #[test]
    fn hscan_cursor_is_checked_before_the_key_and_options_after() {
        assert_checks(&[
            ("HSCAN h x", Some("ERR invalid cursor")),
            ("HSCAN h 0 COUNT x", None),
            ("HSCAN h 0 TYPE string", None),
        ]);
        let mut map = Db::new();
        let empty = Output::Array(vec![Output::bulk("0"), Output::Array(vec![])]);
        assert_eq!(
            map.query(
                0,
                &[
                    b"HSCAN"[..].into(),
                    "h".into(),
                    "0".into(),
                    "COUNT".into(),
                    "x".into()
                ],
                1000,
                1
            ),
            empty
        );
        exec(&mut map, 0, 1000, "HSET h f v");
        let line: Vec<Bytes> = ["HSCAN", "h", "0", "COUNT", "x"].map(Bytes::from).to_vec();
        assert_eq!(map.query(0, &line, 1000, 1), Output::err(NOT_INTEGER));
    }

    #[test]
    fn hrandfield_count_and_option_are_refused_before_the_read() {
        assert_checks(&[
            ("HRANDFIELD h x", NOT_INT),
            ("HRANDFIELD h x bogus", NOT_INT),
            ("HRANDFIELD h 1 bogus", Some("ERR syntax error")),
            ("HRANDFIELD h 1 WITHVALUES x", Some("ERR syntax error")),
            (
                "HRANDFIELD h -9223372036854775808",
                Some("ERR value is out of range, value must between -9223372036854775807 and 9223372036854775807"),
            ),
            ("HRANDFIELD h 4611686018427387904 WITHVALUES", Some("ERR value is out of range")),
            ("HRANDFIELD h -4611686018427387903 withvalues", None),
            // dkv's bound on repeated fields applies only to a present hash.
            ("HRANDFIELD h -9000000000", None),
            ("HRANDFIELD h", None),
        ]);
    }
}
