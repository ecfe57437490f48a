//! DUMP and RESTORE (Redis's serialization, see [`super::dump`]), and what
//! OBJECT and MEMORY USAGE read from an entry (the server's containers call
//! [`Db::object_info`] and [`Db::memory_usage`]).
//!
//! RESTORE is a write through the log. Its parse checks the options (syntax,
//! IDLETIME, FREQ) before proposing, as Redis does them first. Redis checks
//! "the key exists" (BUSYKEY) next and only then the TTL and the payload, so:
//! - with `REPLACE` (no BUSYKEY possible) the TTL and the whole payload are
//!   checked before proposing, and a bad payload never reaches the log;
//! - without it, the order of the replies depends on the data, so a bad TTL
//!   or payload is proposed and apply answers BUSYKEY or the payload's
//!   error, exactly as Redis would. Apply decodes the payload again and is
//!   total (the decoder never panics).
//!
//! Encodings (`OBJECT ENCODING`): every value reports the encoding it
//! keeps, as Redis 7.0 does: sets `intset`/`hashtable`, sorted sets
//! `listpack`/`skiplist`, lists `quicklist`; strings `int`/`embstr`/`raw` by
//! their content, or `raw` after an in-place change (APPEND to an existing
//! key, SETRANGE; [`super::string::Str`]); hashes `listpack` until they grow
//! too large and `hashtable` from then on ([`super::hash::Hash`]).
//!
//! Access information (`OBJECT IDLETIME`, `OBJECT FREQ`, RESTORE's
//! IDLETIME/FREQ) is the local, unreplicated [`super::Access`]: reads are
//! not in the log, so each replica records only the reads it served, and on
//! a follower `OBJECT IDLETIME` is the time since the last write applied
//! there or the last read served there, not the leader's view. FREQ is
//! dkv's counter (one per access, halved per idle minute, at most 255), not
//! Redis's logarithmic one.

use bytes::Bytes;

use super::dump::{self, DumpError};
use super::errors::{NOT_INTEGER, SYNTAX};
use super::notify;
use super::table::{typed_write, unchecked_read, Apply, Parse};
use super::{entry_bytes, parse_i64, Ctx, Db, MaxmemoryPolicy, Output, Value};
use crate::cmd::cat::*;
use crate::cmd::{read, write, CommandSpec, K1};

const KEY_GROUP: &str = "@keyspace";

/// Redis's reply to RESTORE on an existing key without REPLACE.
const BUSYKEY: &str = "BUSYKEY Target key name already exists.";

/// `DUMP key`: the payload, or nil for a missing key.
fn dump_cmd(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    match db.lookup_read(ctx.db, &args[1], ctx.now) {
        Some(entry) => Output::Bulk(Some(Bytes::from(dump::dump(&entry.value)))),
        None => Output::NIL,
    }
}

/// `RESTORE key ttl payload [REPLACE] [ABSTTL] [IDLETIME s] [FREQ f]`.
pub(crate) struct Restore {
    key: Bytes,
    replace: bool,
    absttl: bool,
    idle_s: Option<i64>,
    freq: Option<i64>,
    /// The TTL (ms) and the value, or the error Redis answers for them
    /// (after BUSYKEY).
    body: Result<(i64, Value), Output>,
}

fn parse_ttl_and_payload(ttl: &[u8], payload: &[u8]) -> Result<(i64, Value), Output> {
    let ttl = parse_i64(ttl).ok_or_else(|| Output::err(NOT_INTEGER))?;
    if ttl < 0 {
        return Err(Output::err("ERR Invalid TTL value, must be >= 0"));
    }
    let value = dump::restore(payload).map_err(|e: DumpError| Output::err(e.to_string()))?;
    Ok((ttl, value))
}

impl Parse<'_> for Restore {
    fn parse(args: &[Bytes]) -> Result<Restore, Output> {
        let mut replace = false;
        let mut absttl = false;
        let mut idle_s = None;
        let mut freq = None;
        let mut j = 4;
        while j < args.len() {
            let more = j + 1 < args.len();
            let arg = &args[j];
            if arg.eq_ignore_ascii_case(b"replace") {
                replace = true;
            } else if arg.eq_ignore_ascii_case(b"absttl") {
                absttl = true;
            } else if arg.eq_ignore_ascii_case(b"idletime") && more && freq.is_none() {
                let v = parse_i64(&args[j + 1]).ok_or_else(|| Output::err(NOT_INTEGER))?;
                if v < 0 {
                    return Err(Output::err("ERR Invalid IDLETIME value, must be >= 0"));
                }
                idle_s = Some(v);
                j += 1;
            } else if arg.eq_ignore_ascii_case(b"freq") && more && idle_s.is_none() {
                let v = parse_i64(&args[j + 1]).ok_or_else(|| Output::err(NOT_INTEGER))?;
                if !(0..=255).contains(&v) {
                    return Err(Output::err(
                        "ERR Invalid FREQ value, must be >= 0 and <= 255",
                    ));
                }
                freq = Some(v);
                j += 1;
            } else {
                return Err(Output::err(SYNTAX));
            }
            j += 1;
        }
        let body = parse_ttl_and_payload(&args[2], &args[3]);
        if replace {
            // No BUSYKEY possible: every error is known now.
            if let Err(error) = body {
                return Err(error);
            }
        }
        Ok(Restore {
            key: args[1].clone(),
            replace,
            absttl,
            idle_s,
            freq,
            body,
        })
    }
}

impl Apply<'_> for Restore {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        if !self.replace && db.exists_for_write(ctx.db, &self.key) {
            return Output::err(BUSYKEY);
        }
        let (ttl, value) = match self.body {
            Ok(body) => body,
            Err(error) => return error,
        };
        let mut deleted = false;
        if self.replace {
            // Redis's dbDelete: an expired key is deleted, not expired.
            deleted = db.remove(ctx.db, &self.key).is_some();
        }
        let deadline = match (ttl, self.absttl) {
            (0, _) => None,
            (at, true) => Some(at as u64),
            (relative, false) => Some(ctx.now.saturating_add(relative as u64)),
        };
        // Redis's checkAlreadyExpired: a deadline not after now adds nothing.
        if deadline.is_some_and(|at| at <= ctx.now) {
            if deleted {
                db.notify(notify::GENERIC, "del", ctx.db, &self.key);
            }
            return Output::Ok;
        }
        db.put(ctx.db, &self.key, value, deadline);
        db.notify(notify::GENERIC, "restore", ctx.db, &self.key);
        if let Some(entry) = db.dbs[ctx.db].map.get(&self.key) {
            let access = entry.access();
            if lfu(db.config.policy) {
                if let Some(freq) = self.freq {
                    access.set(ctx.now, freq as u64);
                }
            } else if let Some(idle_s) = self.idle_s {
                let last = ctx.now.saturating_sub((idle_s as u64).saturating_mul(1000));
                access.set(last, access.frequency(ctx.now));
            }
        }
        Output::Ok
    }
}

fn lfu(policy: MaxmemoryPolicy) -> bool {
    matches!(
        policy,
        MaxmemoryPolicy::AllKeysLfu | MaxmemoryPolicy::VolatileLfu
    )
}

/// What `OBJECT <subcommand> key` asks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ObjectInfo {
    /// `OBJECT ENCODING`.
    Encoding,
    /// `OBJECT REFCOUNT`.
    Refcount,
    /// `OBJECT IDLETIME`.
    IdleTime,
    /// `OBJECT FREQ`.
    Freq,
}

/// Redis's `OBJ_SHARED_REFCOUNT`: the count of the shared integers 0..9999.
const SHARED_REFCOUNT: i64 = i32::MAX as i64;

/// `OBJECT ENCODING`'s name for `value`.
pub fn encoding(value: &Value) -> &'static str {
    match value {
        Value::Str(s) => s.encoding(),
        Value::Hash(h) => {
            if h.is_hashtable() {
                "hashtable"
            } else {
                "listpack"
            }
        }
        Value::Set(s) => s.encoding(),
        Value::List(l) => l.encoding(),
        Value::ZSet(z) => z.encoding(),
        Value::Stream(_) => "stream",
    }
}

impl Db {
    /// `OBJECT ENCODING|REFCOUNT|IDLETIME|FREQ key` in database `db` at
    /// `now_ms` (the access time is not touched, as Redis's OBJECT). Nil
    /// for a missing key, before any policy error, as Redis.
    pub fn object_info(&self, db: u8, key: &[u8], what: ObjectInfo, now_ms: u64) -> Output {
        let Some(ks) = self.dbs.get(usize::from(db)) else {
            return Output::NIL;
        };
        let Some(entry) = ks.live(key, now_ms.max(self.now_ms)) else {
            return Output::NIL;
        };
        let now = now_ms.max(self.now_ms);
        const SWITCH: &str = "Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.";
        match what {
            ObjectInfo::Encoding => Output::bulk(encoding(&entry.value)),
            ObjectInfo::Refcount => {
                // Redis shares the integers 0..9999 unless an LRU/LFU
                // policy with a maxmemory limit needs per-key access data.
                let shared = matches!(&entry.value, Value::Str(s)
                    if s.encoding() == "int" && parse_i64(s).is_some_and(|v| (0..10_000).contains(&v)));
                let policy = self.config.policy;
                let per_key = self.config.maxmemory > 0
                    && (lfu(policy)
                        || matches!(
                            policy,
                            MaxmemoryPolicy::AllKeysLru | MaxmemoryPolicy::VolatileLru
                        ));
                Output::Integer(if shared && !per_key {
                    SHARED_REFCOUNT
                } else {
                    1
                })
            }
            ObjectInfo::IdleTime => {
                if lfu(self.config.policy) {
                    return Output::err(format!(
                        "ERR An LFU maxmemory policy is selected, idle time not tracked. {SWITCH}"
                    ));
                }
                Output::Integer((entry.access().idle_ms(now) / 1000) as i64)
            }
            ObjectInfo::Freq => {
                if !lfu(self.config.policy) {
                    return Output::err(format!(
                        "ERR An LFU maxmemory policy is not selected, access frequency not tracked. {SWITCH}"
                    ));
                }
                Output::Integer(entry.access().frequency(now) as i64)
            }
        }
    }

    /// `MEMORY USAGE key` in database `db` at `now_ms`: dkv's own estimate
    /// of the entry, the figure `maxmemory` counts (key and value bytes plus
    /// fixed per-key and per-element overheads, see `entry_bytes`); nil for
    /// a missing key. Exact, so `SAMPLES` changes nothing.
    pub fn memory_usage(&self, db: u8, key: &[u8], now_ms: u64) -> Output {
        let Some(ks) = self.dbs.get(usize::from(db)) else {
            return Output::NIL;
        };
        match ks.live(key, now_ms.max(self.now_ms)) {
            Some(entry) => Output::Integer(entry_bytes(key, entry) as i64),
            None => Output::NIL,
        }
    }
}

/// DUMP and RESTORE (OBJECT and MEMORY are containers in
/// `server::commands::objects`).
pub(crate) static COMMANDS: &[CommandSpec] = &[
    read("dump", 2, F_NONE, KEY_GROUP, K1, unchecked_read(dump_cmd))
        .acl(cats(&[KEYSPACE, READ, SLOW]), (KA_R, KA_NONE))
        .doc("Return a serialized version of the value stored at the specified key.", "2.6.0", "O(1) to access the key and additional O(N*M) to serialize it, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1)."),
    write("restore", -4, F_DENYOOM, KEY_GROUP, K1, typed_write::<Restore>())
        .acl(cats(&[KEYSPACE, WRITE, SLOW, DANGEROUS]), (KA_W, KA_NONE))
        .doc("Create a key using the provided serialized value, previously obtained using DUMP.", "2.6.0", "O(1) to create the new key and additional O(N*M) to reconstruct the serialized value, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1). However for sorted set values the complexity is O(N*M*log(N)) because inserting values into sorted sets is O(log(N))."),
    write("restore-asking", -4, F_DENYOOM, KEY_GROUP, K1, typed_write::<Restore>())
        .acl(cats(&[KEYSPACE, WRITE, SLOW, DANGEROUS]), (KA_W, KA_NONE))
        .doc("RESTORE as a cluster migration sends it (ASKING changes nothing in dkv).", "3.0.0", "O(1) to create the new key and additional O(N*M) to reconstruct the serialized value, where N is the number of Redis objects composing the value and M their average size. For small string values the time complexity is thus O(1)+O(1*M) where M is small, so simply O(1). However for sorted set values the complexity is O(N*M*log(N)) because inserting values into sorted sets is O(log(N))."),
];

#[cfg(test)]
mod tests;
