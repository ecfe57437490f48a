//! Writes that would change nothing, answered without a log entry.
//!
//! Redis neither propagates nor fsyncs a write that leaves the data as it
//! was: `SADD` of members already there, `SREM` of absent ones, `ZADD` of
//! the scores members already have, `SET NX` of an existing key, `SETBIT`
//! of a bit that has the value, `PFADD` that changes no register. Their
//! replies depend only on the data, so dkv answers them like reads: the
//! server asks [`Db::unchanged`] on the map after a linearizable read
//! barrier, and a write it answers is linearized at that read. Anything it
//! does not answer goes through the log as before.
//!
//! Invariant (checked by the tests below over random maps and commands):
//! when [`Db::unchanged`] returns `Some(output)` for an operation, applying
//! that operation to the same map would return `output` and leave every
//! key, value and TTL as they were (so it would publish no keyspace event:
//! apply publishes one only for a change).
//! A probe that cannot be sure returns `None`; so does every key that is
//! stored but expired, because apply deletes it (a change).
//!
//! What does differ from applying it, as in Redis: the key's WATCH version
//! is not bumped and client-side caching is not invalidated (Redis's
//! `signalModifiedKey` runs only when something changed).

use bytes::Bytes;

use super::{errors, Ctx, Db, Op, Output, Value, DATABASES};
use crate::cmd::Flags;

/// True if `op` is of a kind [`Db::unchanged`] may answer (without looking
/// at the map: a cheap test before taking the map's lock).
pub fn may_be_unchanged(op: &Op) -> bool {
    match op {
        Op::Del { .. } => true,
        Op::Exec { args, .. } => args
            .first()
            .and_then(|name| crate::cmd::lookup(name))
            .is_some_and(|(_, spec)| spec.unchanged.is_some()),
        _ => false,
    }
}

impl Db {
    /// The reply `op` would get if it were applied now and changed nothing
    /// (see the module docs); `None` when it might change something. `now_ms`
    /// is the read's "now" (never before the replicated now).
    pub fn unchanged(&self, op: &Op, now_ms: u64) -> Option<Output> {
        let now = now_ms.max(self.now_ms);
        match op {
            Op::Del { keys } => {
                let ctx = Ctx {
                    db: 0,
                    now,
                    seed: 0,
                };
                keys_absent(self, &ctx, keys)
            }
            Op::Exec { db, args } => {
                let db = usize::from(*db);
                if db >= DATABASES {
                    return None;
                }
                let (_, spec) = crate::cmd::lookup(args.first()?)?;
                let probe = spec.unchanged?;
                // A typed probe parses the arguments itself (a refused parse
                // is `None`); an untyped one's row has no check to run.
                if !spec.arity_ok(args.len()) {
                    return None;
                }
                // Over `maxmemory` apply refuses the command whatever the data.
                if spec.flags.contains(Flags::DENYOOM) && self.out_of_memory() {
                    return None;
                }
                probe(self, &Ctx { db, now, seed: 0 }, args)
            }
            _ => None,
        }
    }

    /// What a probe sees at `key`: `Some(None)` when nothing is stored there,
    /// `Some(Some(value))` when a live value is (its access recorded, as a
    /// write's lookup records it); `None` when a stored value has expired,
    /// which apply would delete.
    pub(crate) fn probe_key(&self, ctx: &Ctx, key: &[u8]) -> Option<Option<&Value>> {
        match self.dbs[ctx.db].map.get(key) {
            None => Some(None),
            Some(entry) if entry.is_expired(ctx.now) => None,
            Some(entry) => {
                entry.access.touch(ctx.now);
                Some(Some(&entry.value))
            }
        }
    }
}

/// `0` when none of `keys` is stored (DEL, UNLINK and `Op::Del`).
fn keys_absent(db: &Db, ctx: &Ctx, keys: &[Bytes]) -> Option<Output> {
    for key in keys {
        if db.probe_key(ctx, key)?.is_some() {
            return None;
        }
    }
    Some(Output::Integer(0))
}

/// DEL and UNLINK: nothing to delete.
pub(crate) fn del(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Option<Output> {
    keys_absent(db, ctx, &args[1..])
}

/// The error a write answers for a value of another type, when the probe
/// finds one: the answer is the same and nothing changes.
pub(crate) fn wrong_type() -> Option<Output> {
    Some(Output::err(errors::WRONGTYPE))
}

#[cfg(test)]
mod tests;
