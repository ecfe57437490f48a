//! Key-space commands: DEL, EXISTS, TYPE, RENAME, COPY, MOVE, RANDOMKEY, KEYS,
//! SCAN, DBSIZE, FLUSHDB/FLUSHALL, SWAPDB.
//!
//! SCAN's cursor is a slot of the keyspace ([`super::keymap`]): keys are
//! walked from the last slot to the first, so a key present for the whole
//! scan is returned at least once (as in Redis, a key a delete moved may be
//! returned twice). Every replica keeps every key at the same slot, so a
//! cursor is valid on any node. RANDOMKEY draws a slot.
//!
//! COPY, MOVE, SCAN, FLUSHDB/FLUSHALL and SWAPDB parse their options and
//! database indexes before proposing (or reading), with Redis's texts; only
//! "the same database" for COPY/MOVE with an explicit index is apply's, as
//! the parse does not know the client's database.

use bytes::Bytes;

use super::errors::{DB_RANGE, NOT_INTEGER, NO_SUCH_KEY, SAME_OBJECT, SYNTAX};
use super::notify;
use super::table::{Apply, Parse, Query};
use super::{glob, mix, parse_i64, Ctx, Db, Output, DATABASES};

pub(crate) fn del(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    del_keys(db, ctx, &args[1..])
}

/// `DEL` of `keys` (also [`crate::kv::Op::Del`]): how many existed.
pub(crate) fn del_keys(db: &mut Db, ctx: &Ctx, keys: &[Bytes]) -> Output {
    let mut removed = 0;
    for key in keys {
        db.expire_if_needed(ctx.db, key);
        if db.remove(ctx.db, key).is_some() {
            db.notify(notify::GENERIC, "del", ctx.db, key);
            removed += 1;
        }
    }
    Output::Integer(removed)
}

pub(crate) fn exists(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    Output::Integer(
        args[1..]
            .iter()
            .filter(|k| db.lookup_read(ctx.db, k, ctx.now).is_some())
            .count() as i64,
    )
}

pub(crate) fn type_(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    let name = db
        .lookup_read(ctx.db, &args[1], ctx.now)
        .map_or("none", |e| e.value.type_name());
    Output::Status(name.to_string())
}

/// Redis's `getIntFromObjectOrReply` for a database index: `error` (or,
/// without one, Redis's own texts for a non-integer and for a value out of
/// the `int` range).
fn parse_db(arg: &[u8], error: Option<&str>) -> Result<i64, Output> {
    match parse_i64(arg) {
        Some(n) if i32::try_from(n).is_ok() => Ok(n),
        Some(_) => Err(Output::err(error.unwrap_or(
            "ERR value is out of range, value must between -2147483648 and 2147483647",
        ))),
        None => Err(Output::err(error.unwrap_or(NOT_INTEGER))),
    }
}

fn db_index(n: i64) -> Result<usize, Output> {
    usize::try_from(n)
        .ok()
        .filter(|&i| i < DATABASES)
        .ok_or_else(|| Output::err(DB_RANGE))
}

fn rename_generic(db: &mut Db, ctx: &Ctx, args: &[Bytes], nx: bool) -> Output {
    let (src, dst) = (&args[1], &args[2]);
    let Some(entry) = db.lookup_write(ctx.db, src) else {
        return Output::err(NO_SUCH_KEY);
    };
    if src == dst {
        return if nx { Output::Integer(0) } else { Output::Ok };
    }
    let (value, ttl) = (entry.value.clone(), entry.expires_at_ms());
    if db.lookup_write(ctx.db, dst).is_some() {
        if nx {
            return Output::Integer(0);
        }
        db.remove(ctx.db, dst);
    }
    db.remove(ctx.db, src);
    db.put(ctx.db, dst, value, ttl);
    db.notify(notify::GENERIC, "rename_from", ctx.db, src);
    db.notify(notify::GENERIC, "rename_to", ctx.db, dst);
    if nx {
        Output::Integer(1)
    } else {
        Output::Ok
    }
}

pub(crate) fn rename(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    rename_generic(db, ctx, args, false)
}

pub(crate) fn renamenx(db: &mut Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    rename_generic(db, ctx, args, true)
}

/// `COPY source destination [DB db] [REPLACE]`. The options are checked
/// before proposing, and so is `COPY k k` into the same database; with an
/// explicit `DB` equal to the client's database that check is apply's (the
/// parse does not know the client's database).
pub(crate) struct CopyKey {
    src: Bytes,
    dst: Bytes,
    target: Option<usize>,
    replace: bool,
}

impl Parse<'_> for CopyKey {
    fn parse(args: &[Bytes]) -> Result<CopyKey, Output> {
        let mut target = None;
        let mut replace = false;
        let mut j = 3;
        while j < args.len() {
            if args[j].eq_ignore_ascii_case(b"replace") {
                replace = true;
            } else if args[j].eq_ignore_ascii_case(b"db") && j + 1 < args.len() {
                target = Some(parse_db(&args[j + 1], None).and_then(db_index)?);
                j += 1;
            } else {
                return Err(Output::err(SYNTAX));
            }
            j += 1;
        }
        let (src, dst) = (args[1].clone(), args[2].clone());
        if target.is_none() && src == dst {
            return Err(Output::err(SAME_OBJECT));
        }
        Ok(CopyKey {
            src,
            dst,
            target,
            replace,
        })
    }
}

impl Apply<'_> for CopyKey {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let target = self.target.unwrap_or(ctx.db);
        if target == ctx.db && self.src == self.dst {
            return Output::err(SAME_OBJECT);
        }
        // Redis reads the source with `lookupKeyRead`: a miss is a `keymiss`.
        let Some(entry) = db.lookup_write_as_read(ctx.db, &self.src) else {
            return Output::Integer(0);
        };
        let (value, ttl) = (entry.value.clone(), entry.expires_at_ms());
        if db.lookup_write(target, &self.dst).is_some() {
            if !self.replace {
                return Output::Integer(0);
            }
            db.remove(target, &self.dst);
        }
        db.put(target, &self.dst, value, ttl);
        db.notify(notify::GENERIC, "copy_to", target, &self.dst);
        Output::Integer(1)
    }
}

/// `MOVE key db`: the index is checked before proposing; moving into the
/// client's own database is refused by apply (the parse does not know it).
pub(crate) struct MoveKey {
    key: Bytes,
    target: usize,
}

impl Parse<'_> for MoveKey {
    fn parse(args: &[Bytes]) -> Result<MoveKey, Output> {
        Ok(MoveKey {
            key: args[1].clone(),
            target: parse_db(&args[2], None).and_then(db_index)?,
        })
    }
}

impl Apply<'_> for MoveKey {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        if self.target == ctx.db {
            return Output::err(SAME_OBJECT);
        }
        let Some(entry) = db.lookup_write(ctx.db, &self.key) else {
            return Output::Integer(0);
        };
        let (value, ttl) = (entry.value.clone(), entry.expires_at_ms());
        if db.lookup_write(self.target, &self.key).is_some() {
            return Output::Integer(0);
        }
        db.remove(ctx.db, &self.key);
        db.put(self.target, &self.key, value, ttl);
        db.notify(notify::GENERIC, "move_from", ctx.db, &self.key);
        db.notify(notify::GENERIC, "move_to", self.target, &self.key);
        Output::Integer(1)
    }
}

pub(crate) fn randomkey(db: &Db, ctx: &Ctx, _: &[Bytes]) -> Output {
    let ks = &db.dbs[ctx.db];
    if ks.map.is_empty() {
        return Output::NIL;
    }
    let mut seed = ctx.seed;
    for _ in 0..100 {
        seed = mix(seed);
        let pick = (seed % ks.map.len() as u64) as usize;
        if let Some((key, entry)) = ks.map.at(pick) {
            if !entry.is_expired(ctx.now) {
                return Output::bulk(key.to_bytes());
            }
        }
    }
    ks.map
        .iter()
        .find(|(_, e)| !e.is_expired(ctx.now))
        .map_or(Output::NIL, |(k, _)| Output::bulk(k.to_bytes()))
}

pub(crate) fn keys(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    let pattern = &args[1];
    let all = &pattern[..] == b"*";
    let ks = &db.dbs[ctx.db];
    Output::Array(
        ks.map
            .iter()
            .filter(|(k, e)| !e.is_expired(ctx.now) && (all || glob::matches(pattern, k, false)))
            .map(|(k, _)| Output::bulk(k.to_bytes()))
            .collect(),
    )
}

/// SCAN-family options: MATCH, COUNT and (for SCAN) TYPE.
pub(crate) struct ScanOptions {
    pub pattern: Option<Bytes>,
    pub count: usize,
    pub type_name: Option<Bytes>,
}

/// Redis's cursor parse (`strtoul` on the whole argument): an optional sign,
/// decimal digits, a negative value wraps; the empty string is 0; leading
/// space, other characters or overflow are `invalid cursor`.
pub(crate) fn parse_cursor(arg: &[u8]) -> Result<u64, Output> {
    let invalid = || Output::err("ERR invalid cursor");
    if arg.is_empty() {
        return Ok(0);
    }
    let (negative, digits) = match arg[0] {
        b'-' => (true, &arg[1..]),
        b'+' => (false, &arg[1..]),
        _ => (false, arg),
    };
    if digits.is_empty() || !digits.iter().all(u8::is_ascii_digit) {
        return Err(invalid());
    }
    let mut value: u64 = 0;
    for &d in digits {
        value = value
            .checked_mul(10)
            .and_then(|v| v.checked_add(u64::from(d - b'0')))
            .ok_or_else(invalid)?;
    }
    Ok(if negative {
        value.wrapping_neg()
    } else {
        value
    })
}

pub(crate) fn parse_scan_options(
    args: &[Bytes],
    first: usize,
    allow_type: bool,
) -> Result<ScanOptions, Output> {
    let mut o = ScanOptions {
        pattern: None,
        count: 10,
        type_name: None,
    };
    let mut j = first;
    while j < args.len() {
        let more = args.len() - j - 1;
        if args[j].eq_ignore_ascii_case(b"count") && more >= 1 {
            match parse_i64(&args[j + 1]) {
                None => return Err(Output::err(NOT_INTEGER)),
                Some(n) if n < 1 => return Err(Output::err(SYNTAX)),
                Some(n) => o.count = n as usize,
            }
            j += 2;
        } else if args[j].eq_ignore_ascii_case(b"match") && more >= 1 {
            let p = args[j + 1].clone();
            o.pattern = if &p[..] == b"*" { None } else { Some(p) };
            j += 2;
        } else if allow_type && args[j].eq_ignore_ascii_case(b"type") && more >= 1 {
            o.type_name = Some(args[j + 1].clone());
            j += 2;
        } else {
            return Err(Output::err(SYNTAX));
        }
    }
    Ok(o)
}

/// `SCAN cursor [MATCH pattern] [COUNT count] [TYPE type]`: everything is
/// checked before the read.
pub(crate) struct Scan {
    cursor: u64,
    options: ScanOptions,
}

impl Parse<'_> for Scan {
    fn parse(args: &[Bytes]) -> Result<Scan, Output> {
        Ok(Scan {
            cursor: parse_cursor(&args[1])?,
            options: parse_scan_options(args, 2, true)?,
        })
    }
}

impl Query<'_> for Scan {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let o = self.options;
        let ks = &db.dbs[ctx.db];
        let mut found = Vec::new();
        let mut next = 0;
        for (visited, (slot, key, entry)) in ks.map.scan_from(self.cursor).enumerate() {
            if visited == o.count {
                // Slots `0..=slot` are still to be visited (`keymap`).
                next = slot as u64 + 1;
                break;
            }
            if entry.is_expired(ctx.now) {
                continue;
            }
            if let Some(p) = &o.pattern {
                if !glob::matches(p, key, false) {
                    continue;
                }
            }
            if let Some(t) = &o.type_name {
                if !t.eq_ignore_ascii_case(entry.value.type_name().as_bytes()) {
                    continue;
                }
            }
            found.push(Output::bulk(key.to_bytes()));
        }
        Output::Array(vec![Output::bulk(next.to_string()), Output::Array(found)])
    }
}

pub(crate) fn dbsize(db: &Db, ctx: &Ctx, _: &[Bytes]) -> Output {
    Output::Integer(db.dbs[ctx.db].live_len(ctx.now) as i64)
}

/// `FLUSHDB [ASYNC | SYNC]` and FLUSHALL (`all`): the mode is checked
/// before proposing (both run synchronously here).
pub(crate) struct Flush {
    all: bool,
}

impl Parse<'_> for Flush {
    fn parse(args: &[Bytes]) -> Result<Flush, Output> {
        let mode_ok = match args.len() {
            1 => true,
            2 => args[1].eq_ignore_ascii_case(b"sync") || args[1].eq_ignore_ascii_case(b"async"),
            _ => false,
        };
        if !mode_ok {
            return Err(Output::err(SYNTAX));
        }
        Ok(Flush {
            all: args[0].eq_ignore_ascii_case(b"flushall"),
        })
    }
}

impl Apply<'_> for Flush {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        if self.all {
            for i in 0..DATABASES {
                db.flush(i);
            }
        } else {
            db.flush(ctx.db);
        }
        Output::Ok
    }
}

/// `SWAPDB index1 index2`: both indexes are checked before proposing.
pub(crate) struct SwapDb {
    a: usize,
    b: usize,
}

impl Parse<'_> for SwapDb {
    fn parse(args: &[Bytes]) -> Result<SwapDb, Output> {
        let a = parse_db(&args[1], Some("ERR invalid first DB index"))?;
        let b = parse_db(&args[2], Some("ERR invalid second DB index"))?;
        Ok(SwapDb {
            a: db_index(a)?,
            b: db_index(b)?,
        })
    }
}

impl Apply<'_> for SwapDb {
    fn apply(self, db: &mut Db, _: &Ctx) -> Output {
        db.swap(self.a, self.b);
        Output::Ok
    }
}

// ---- definitions -------------------------------------------------------------

use super::table::{typed_read, typed_write, unchecked_read, unchecked_write};
use crate::cmd::cat::*;
use crate::cmd::{read, write, CommandSpec, K1, K12, KN, NO_KEYS};

const KEY_GROUP: &str = "@keyspace";

/// This group's command definitions (see `crate::cmd`).
///
/// The `unchecked_*` rows take only keys or a pattern (or nothing): no
/// argument list of the right arity is a syntax error, and RENAME's "no
/// such key" depends on the data.
pub(crate) static COMMANDS: &[CommandSpec] = &[
    write("del", -2, F_NONE, KEY_GROUP, KN, unchecked_write(del))
        .unchanged_by(super::unchanged::del)
        .acl(cats(&[KEYSPACE, WRITE, SLOW]), (KA_W, KA_W))
        .doc("Delete a key", "1.0.0", "O(N) where N is the number of keys that will be removed. When a key to remove holds a value other than a string, the individual complexity for this key is O(M) where M is the number of elements in the list, set, sorted set or hash. Removing a single key that holds a string value is O(1)."),
    write("unlink", -2, F_FAST, KEY_GROUP, KN, unchecked_write(del))
        .unchanged_by(super::unchanged::del)
        .acl(cats(&[KEYSPACE, WRITE, FAST]), (KA_W, KA_W))
        .doc("Delete a key asynchronously in another thread. Otherwise it is just as DEL, but non blocking.", "4.0.0", "O(1) for each key removed regardless of its size. Then the command does O(N) work in a different thread in order to reclaim memory, where N is the number of allocations the deleted objects where composed of."),
    read("exists", -2, F_FAST, KEY_GROUP, KN, unchecked_read(exists))
        .acl(cats(&[KEYSPACE, READ, FAST]), (KA_NONE, KA_NONE))
        .doc("Determine if a key exists", "1.0.0", "O(N) where N is the number of keys to check."),
    read("type", 2, F_FAST, KEY_GROUP, K1, unchecked_read(type_))
        .acl(cats(&[KEYSPACE, READ, FAST]), (KA_NONE, KA_NONE))
        .doc("Determine the type stored at key", "1.0.0", "O(1)"),
    read("touch", -2, F_FAST, KEY_GROUP, KN, unchecked_read(exists))
        .acl(cats(&[KEYSPACE, READ, FAST]), (KA_NONE, KA_NONE))
        .doc("Alters the last access time of a key(s). Returns the number of existing keys specified.", "3.2.1", "O(N) where N is the number of keys that will be touched."),
    write("rename", 3, F_NONE, KEY_GROUP, K12, unchecked_write(rename))
        .acl(cats(&[KEYSPACE, WRITE, SLOW]), (KA_RW, KA_W))
        .doc("Rename a key", "1.0.0", "O(1)"),
    write("renamenx", 3, F_FAST, KEY_GROUP, K12, unchecked_write(renamenx))
        .acl(cats(&[KEYSPACE, WRITE, FAST]), (KA_RW, KA_W))
        .doc("Rename a key, only if the new key does not exist", "1.0.0", "O(1)"),
    write("copy", -3, F_DENYOOM, KEY_GROUP, K12, typed_write::<CopyKey>())
        .acl(cats(&[KEYSPACE, WRITE, SLOW]), (KA_R, KA_W))
        .doc("Copy a key", "6.2.0", "O(N) worst case for collections, where N is the number of nested items. O(1) for string values."),
    write("move", 3, F_FAST, KEY_GROUP, K1, typed_write::<MoveKey>())
        .acl(cats(&[KEYSPACE, WRITE, FAST]), (KA_RW, KA_RW))
        .doc("Move a key to another database", "1.0.0", "O(1)"),
    read("randomkey", 1, F_NONE, KEY_GROUP, NO_KEYS, unchecked_read(randomkey))
        .acl(cats(&[KEYSPACE, READ, SLOW]), (KA_NONE, KA_NONE))
        .doc("Return a random key from the keyspace", "1.0.0", "O(1)"),
    read("keys", 2, F_NONE, KEY_GROUP, NO_KEYS, unchecked_read(keys))
        .acl(cats(&[KEYSPACE, READ, SLOW, DANGEROUS]), (KA_NONE, KA_NONE))
        .doc("Find all keys matching the given pattern", "1.0.0", "O(N) with N being the number of keys in the database, under the assumption that the key names in the database and the given pattern have limited length."),
    read("scan", -2, F_NONE, KEY_GROUP, NO_KEYS, typed_read::<Scan>())
        .acl(cats(&[KEYSPACE, READ, SLOW]), (KA_NONE, KA_NONE))
        .doc("Incrementally iterate the keys space", "2.8.0", "O(1) for every call. O(N) for a complete iteration, including enough command calls for the cursor to return back to 0. N is the number of elements inside the collection."),
    read("dbsize", 1, F_FAST, KEY_GROUP, NO_KEYS, unchecked_read(dbsize))
        .acl(cats(&[KEYSPACE, READ, FAST]), (KA_NONE, KA_NONE))
        .doc("Return the number of keys in the selected database", "1.0.0", "O(1)"),
    write("flushdb", -1, F_NONE, KEY_GROUP, NO_KEYS, typed_write::<Flush>())
        .acl(cats(&[KEYSPACE, WRITE, SLOW, DANGEROUS]), (KA_NONE, KA_NONE))
        .doc("Remove all keys from the current database", "1.0.0", "O(N) where N is the number of keys in the selected database"),
    write("flushall", -1, F_NONE, KEY_GROUP, NO_KEYS, typed_write::<Flush>())
        .acl(cats(&[KEYSPACE, WRITE, SLOW, DANGEROUS]), (KA_NONE, KA_NONE))
        .doc("Remove all keys from all databases", "1.0.0", "O(N) where N is the total number of keys in all databases"),
    write("swapdb", 3, F_FAST, KEY_GROUP, NO_KEYS, typed_write::<SwapDb>())
        .acl(cats(&[KEYSPACE, WRITE, FAST, DANGEROUS]), (KA_NONE, KA_NONE))
        .doc("Swaps two Redis databases", "4.0.0", "O(N) where N is the count of clients watching or blocking on keys from both databases."),
];

#[cfg(test)]
mod tests {
    use super::super::table::testing::{assert_checks, exec};
    use super::*;

    const NOT_INT: Option<&str> = Some("ERR value is not an integer or out of range");
    const RANGE: Option<&str> = Some("ERR DB index is out of range");
    const INT_RANGE: Option<&str> =
        Some("ERR value is out of range, value must between -2147483648 and 2147483647");
    const SYNTAX_ERR: Option<&str> = Some("ERR syntax error");
    const SAME: Option<&str> = Some("ERR source and destination objects are the same");

    #[test]
    fn copy_options_are_refused_before_proposing() {
        assert_checks(&[
            ("COPY a b DB x", NOT_INT),
            ("COPY a b DB 99999999999999999999", NOT_INT),
            ("COPY a b DB 2147483648", INT_RANGE),
            ("COPY a b DB -2147483649", INT_RANGE),
            ("COPY a b DB 2147483647", RANGE),
            ("COPY a b DB 16", RANGE),
            ("COPY a b DB -1", RANGE),
            ("COPY a b DB 16 bogus", RANGE),
            ("COPY a b DB 1 bogus", SYNTAX_ERR),
            ("COPY a b DB", SYNTAX_ERR),
            ("COPY a b REPLACE x", SYNTAX_ERR),
            ("COPY a a", SAME),
            ("COPY a a REPLACE", SAME),
            ("COPY a b DB 15 REPLACE", None),
            // The same key into an explicit database: apply compares it
            // with the client's database.
            ("COPY a a DB 0", None),
        ]);
        let mut map = Db::new();
        exec(&mut map, 0, 1000, "SET a 1");
        assert_eq!(
            exec(&mut map, 0, 1000, "COPY a a DB 0"),
            Output::err(SAME_OBJECT)
        );
        assert_eq!(exec(&mut map, 1, 1000, "COPY a a DB 0"), Output::Integer(0));
        assert_eq!(exec(&mut map, 0, 1000, "COPY a a DB 1"), Output::Integer(1));
        assert_eq!(exec(&mut map, 0, 1000, "COPY a a DB 1"), Output::Integer(0));
        assert_eq!(
            exec(&mut map, 0, 1000, "COPY a a DB 1 REPLACE"),
            Output::Integer(1)
        );
    }

    #[test]
    fn move_index_is_refused_before_proposing() {
        assert_checks(&[
            ("MOVE k x", NOT_INT),
            ("MOVE k 2147483648", INT_RANGE),
            ("MOVE k 16", RANGE),
            ("MOVE k -1", RANGE),
            ("MOVE k 0", None),
        ]);
        let mut map = Db::new();
        exec(&mut map, 0, 1000, "SET k v");
        assert_eq!(
            exec(&mut map, 0, 1000, "MOVE k 0"),
            Output::err(SAME_OBJECT)
        );
        assert_eq!(
            exec(&mut map, 3, 1000, "MOVE nokey 3"),
            Output::err(SAME_OBJECT)
        );
        assert_eq!(exec(&mut map, 0, 1000, "MOVE k 3"), Output::Integer(1));
    }

    #[test]
    fn scan_cursor_and_options_are_refused_before_the_read() {
        assert_checks(&[
            ("SCAN x", Some("ERR invalid cursor")),
            ("SCAN 18446744073709551616", Some("ERR invalid cursor")),
            ("SCAN 0 COUNT x", NOT_INT),
            ("SCAN 0 COUNT 0", SYNTAX_ERR),
            ("SCAN 0 MATCH", SYNTAX_ERR),
            ("SCAN 0 TYPE", SYNTAX_ERR),
            ("SCAN 0 TYPE string bogus", SYNTAX_ERR),
            ("SCAN -1 MATCH * COUNT 5 TYPE string", None),
        ]);
    }

    #[test]
    fn flush_mode_is_refused_before_proposing() {
        assert_checks(&[
            ("FLUSHDB x", SYNTAX_ERR),
            ("FLUSHALL SYNC ASYNC", SYNTAX_ERR),
            ("FLUSHDB async", None),
            ("FLUSHALL SYNC", None),
        ]);
        let mut map = Db::new();
        exec(&mut map, 0, 1000, "SET a 1");
        exec(&mut map, 1, 1000, "SET b 1");
        assert_eq!(exec(&mut map, 1, 1000, "FLUSHDB"), Output::Ok);
        assert_eq!(map.len(), 1);
        assert_eq!(exec(&mut map, 1, 1000, "FLUSHALL ASYNC"), Output::Ok);
        assert!(map.is_empty());
    }

    #[test]
    fn swapdb_indexes_are_refused_before_proposing() {
        assert_checks(&[
            ("SWAPDB x 1", Some("ERR invalid first DB index")),
            ("SWAPDB 2147483648 1", Some("ERR invalid first DB index")),
            ("SWAPDB 1 x", Some("ERR invalid second DB index")),
            ("SWAPDB 16 x", Some("ERR invalid second DB index")),
            ("SWAPDB 16 1", RANGE),
            ("SWAPDB 0 2147483648", Some("ERR invalid second DB index")),
            ("SWAPDB 1 -1", RANGE),
            ("SWAPDB 0 15", None),
        ]);
    }
}
