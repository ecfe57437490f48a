//! `maxmemory`, `maxmemory-policy` and eviction.
//!
//! The configuration is replicated (`CONFIG SET` is a log entry), and the
//! memory estimate ([`Db::used_memory`]) is computed from the replicated data
//! only, so the `-OOM` decision in apply is the same on every replica.
//! Victims are chosen on the leader by [`Db::eviction_op`] from its local access
//! information (LRU clock, LFU counter: the leader's view decides) and
//! proposed as one [`Op::Evict`] entry. Sampling follows Redis: for each
//! victim, `SAMPLES` candidates drawn with a deterministic pseudo-random
//! sequence seeded from the replicated state, the best of them evicted.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::{mix, Ctx, Db, Op, Output, DATABASES};

/// Candidates examined per victim (Redis's `maxmemory-samples` default).
const SAMPLES: usize = 5;

/// Redis's eviction policies.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum MaxmemoryPolicy {
    /// Refuse writes with `-OOM`.
    #[default]
    NoEviction,
    /// Least recently used among all keys.
    AllKeysLru,
    /// Least frequently used among all keys.
    AllKeysLfu,
    /// Random among all keys.
    AllKeysRandom,
    /// Least recently used among keys with a TTL.
    VolatileLru,
    /// Least frequently used among keys with a TTL.
    VolatileLfu,
    /// Random among keys with a TTL.
    VolatileRandom,
    /// The soonest deadline first.
    VolatileTtl,
}

/// Every policy with its Redis name, in Redis's order.
pub const MAXMEMORY_POLICIES: &[(&str, MaxmemoryPolicy)] = &[
    ("volatile-lru", MaxmemoryPolicy::VolatileLru),
    ("volatile-lfu", MaxmemoryPolicy::VolatileLfu),
    ("volatile-random", MaxmemoryPolicy::VolatileRandom),
    ("volatile-ttl", MaxmemoryPolicy::VolatileTtl),
    ("allkeys-lru", MaxmemoryPolicy::AllKeysLru),
    ("allkeys-lfu", MaxmemoryPolicy::AllKeysLfu),
    ("allkeys-random", MaxmemoryPolicy::AllKeysRandom),
    ("noeviction", MaxmemoryPolicy::NoEviction),
];

impl MaxmemoryPolicy {
    /// Redis's name.
    pub fn name(self) -> &'static str {
        MAXMEMORY_POLICIES
            .iter()
            .find(|(_, p)| *p == self)
            .map_or("noeviction", |(n, _)| n)
    }

    /// Parses Redis's name (case-insensitive).
    pub fn parse(name: &[u8]) -> Option<MaxmemoryPolicy> {
        MAXMEMORY_POLICIES
            .iter()
            .find(|(n, _)| name.eq_ignore_ascii_case(n.as_bytes()))
            .map(|(_, p)| *p)
    }

    fn volatile(self) -> bool {
        matches!(
            self,
            MaxmemoryPolicy::VolatileLru
                | MaxmemoryPolicy::VolatileLfu
                | MaxmemoryPolicy::VolatileRandom
                | MaxmemoryPolicy::VolatileTtl
        )
    }
}

/// Parses a Redis memory value: `100`, `10kb`, `1mb`, `2gb`, `1k`, `1m`, `1g`.
pub fn parse_memory(text: &[u8]) -> Option<u64> {
    let text = std::str::from_utf8(text).ok()?.to_ascii_lowercase();
    let split = text
        .find(|c: char| !c.is_ascii_digit())
        .unwrap_or(text.len());
    let (digits, unit) = text.split_at(split);
    let n: u64 = digits.parse().ok()?;
    let mul = match unit {
        "" | "b" => 1,
        "k" => 1000,
        "kb" => 1024,
        "m" => 1000 * 1000,
        "mb" => 1024 * 1024,
        "g" => 1000 * 1000 * 1000,
        "gb" => 1024 * 1024 * 1024,
        _ => return None,
    };
    n.checked_mul(mul)
}

/// `CONFIG SET name value [name value ...]` for the replicated settings
/// (the server routes only these here).
pub(crate) fn config(db: &mut Db, _: &Ctx, args: &[Bytes]) -> Output {
    if !args[1].eq_ignore_ascii_case(b"set") {
        return Output::err("ERR only CONFIG SET is replicated");
    }
    let pairs = &args[2..];
    if pairs.is_empty() || pairs.len() % 2 == 1 {
        return Output::err("ERR wrong number of arguments for 'config|set' command");
    }
    let mut next = db.config.clone();
    let mut notify_flags = db.notify_flags;
    for pair in pairs.chunks(2) {
        let (name, value) = (&pair[0], &pair[1]);
        if name.eq_ignore_ascii_case(b"notify-keyspace-events") {
            match super::notify::parse_flags(value) {
                Some(flags) => notify_flags = flags,
                None => {
                    return Output::err(format!(
                        "ERR CONFIG SET failed (possibly related to argument 'notify-keyspace-events') - {}",
                        super::notify::INVALID
                    ))
                }
            }
        } else if name.eq_ignore_ascii_case(b"maxmemory") {
            match parse_memory(value) {
                Some(n) => next.maxmemory = n,
                None => {
                    return Output::err(
                        "ERR CONFIG SET failed (possibly related to argument 'maxmemory') - argument must be a memory value",
                    )
                }
            }
        } else if name.eq_ignore_ascii_case(b"maxmemory-policy") {
            match MaxmemoryPolicy::parse(value) {
                Some(p) => next.policy = p,
                None => {
                    let names: Vec<&str> = MAXMEMORY_POLICIES.iter().map(|(n, _)| *n).collect();
                    return Output::err(format!(
                        "ERR CONFIG SET failed (possibly related to argument 'maxmemory-policy') - argument(s) must be one of the following: {}",
                        names.join(", ")
                    ));
                }
            }
        } else {
            return Output::err(format!(
                "ERR Unknown option or number of arguments for CONFIG SET - '{}'",
                String::from_utf8_lossy(name)
            ));
        }
    }
    db.config = next;
    db.notify_flags = notify_flags;
    Output::Ok
}

impl Db {
    /// True if a `denyoom` write must be refused: over `maxmemory` and nothing
    /// the policy could evict.
    pub(crate) fn out_of_memory(&self) -> bool {
        let limit = self.config.maxmemory;
        if limit == 0 || self.used_memory() <= limit {
            return false;
        }
        match self.config.policy {
            MaxmemoryPolicy::NoEviction => true,
            p if p.volatile() => self.dbs.iter().all(|ks| ks.expiring.is_empty()),
            _ => self.is_empty(),
        }
    }

    /// Keys to evict now (at most `limit`) when [`Db::used_memory`] exceeds
    /// `maxmemory` and the policy allows eviction; `None` otherwise. Call on
    /// the leader and propose the result.
    pub fn eviction_op(&self, limit: usize) -> Option<Op> {
        let max = self.config.maxmemory;
        let policy = self.config.policy;
        if max == 0 || self.used_memory() <= max || policy == MaxmemoryPolicy::NoEviction {
            return None;
        }
        let mut to_free = self.used_memory() - max;
        let mut seed = mix(self.now_ms() ^ self.used_memory());
        let mut victims: Vec<(u8, Bytes)> = Vec::new();
        let now = self.now_ms();
        while to_free > 0 && victims.len() < limit {
            let mut best: Option<(u64, u8, Bytes)> = None;
            for _ in 0..SAMPLES {
                seed = mix(seed);
                let Some((db, key)) = self.sample(policy, seed, &victims) else {
                    continue;
                };
                let entry = &self.dbs[usize::from(db)].map[&key[..]];
                // Higher score = better victim.
                let score = match policy {
                    MaxmemoryPolicy::AllKeysLru | MaxmemoryPolicy::VolatileLru => {
                        entry.access().idle_ms(now)
                    }
                    MaxmemoryPolicy::AllKeysLfu | MaxmemoryPolicy::VolatileLfu => {
                        255 - entry.access().frequency(now).min(255)
                    }
                    MaxmemoryPolicy::VolatileTtl => {
                        u64::MAX - entry.expires_at_ms().unwrap_or(u64::MAX)
                    }
                    _ => 0,
                };
                if best.as_ref().is_none_or(|(s, _, _)| score > *s) {
                    best = Some((score, db, key));
                }
            }
            let Some((_, db, key)) = best else {
                break;
            };
            let entry = &self.dbs[usize::from(db)].map[&key[..]];
            to_free = to_free.saturating_sub(super::entry_bytes(&key, entry));
            victims.push((db, key));
        }
        if victims.is_empty() {
            None
        } else {
            Some(Op::Evict { keys: victims })
        }
    }

    /// One pseudo-random candidate not already chosen.
    fn sample(
        &self,
        policy: MaxmemoryPolicy,
        seed: u64,
        chosen: &[(u8, Bytes)],
    ) -> Option<(u8, Bytes)> {
        let non_empty: Vec<usize> = (0..DATABASES)
            .filter(|&i| {
                if policy.volatile() {
                    !self.dbs[i].expiring.is_empty()
                } else {
                    !self.dbs[i].map.is_empty()
                }
            })
            .collect();
        if non_empty.is_empty() {
            return None;
        }
        let db = non_empty[(seed % non_empty.len() as u64) as usize];
        let ks = &self.dbs[db];
        let r = mix(seed);
        let key = if policy.volatile() {
            if policy == MaxmemoryPolicy::VolatileTtl {
                // The soonest deadlines are the candidates.
                let skip = (r % SAMPLES as u64) as usize;
                ks.expiring
                    .iter()
                    .map(|due| &due.key)
                    .filter(|k| !chosen.contains(&(db as u8, k.to_bytes())))
                    .nth(skip.min(ks.expiring.len().saturating_sub(1)))
                    .or_else(|| {
                        ks.expiring
                            .iter()
                            .map(|due| &due.key)
                            .find(|k| !chosen.contains(&(db as u8, k.to_bytes())))
                    })?
                    .to_bytes()
            } else {
                let first = ks.expiring.get_min()?.at;
                let last = ks.expiring.get_max()?.at;
                let pick = first + r % (last - first + 1);
                ks.expiring
                    .range(super::Due::first_at(pick)..)
                    .chain(ks.expiring.iter())
                    .map(|due| &due.key)
                    .find(|k| !chosen.contains(&(db as u8, k.to_bytes())))?
                    .to_bytes()
            }
        } else {
            let len = ks.map.len();
            let pick = (r % len as u64) as usize;
            (pick..len)
                .chain(0..pick)
                .filter_map(|slot| ks.map.at(slot).map(|(k, _)| k))
                .find(|k| !chosen.contains(&(db as u8, k.to_bytes())))?
                .to_bytes()
        };
        Some((db as u8, key))
    }
}
