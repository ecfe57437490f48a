//! `OBJECT` (ENCODING, REFCOUNT, IDLETIME, FREQ, HELP) and `MEMORY` (USAGE,
//! HELP): containers whose key subcommands read the local replica's map
//! like any read (after the read barrier, or at once on a `READONLY`
//! connection). The answers come from `kv` ([`Db::object_info`],
//! [`Db::memory_usage`]; what they mean on a follower is documented there).
//! Syntax errors (`MEMORY USAGE key FOO`) are answered before the read, as
//! Redis answers them before looking at the key. Inside MULTI they run
//! after the transaction's log entry, as every container command does in
//! dkv. MEMORY STATS and DOCTOR answer from the process's memory as INFO
//! reports it and dkv's estimate of the data, with Redis 7.0's reply shapes (what each field
//! means in dkv: `MemoryFigures`); PURGE asks the system allocator to
//! return free pages; MALLOC-STATS answers as a Redis built without
//! jemalloc. These four answer at once from the local node.
//!
//! [`Db::object_info`]: crate::kv::Db::object_info
//! [`Db::memory_usage`]: crate::kv::Db::memory_usage

use bytes::Bytes;

use super::connection::{help, missing_subcommand};
use crate::acl::{Categories as C, KeyAccess};
use crate::cmd::{server, CommandSpec, Flags, SubcommandSpec, NO_KEYS};
use crate::kv::objects::ObjectInfo;
use crate::kv::parse_i64;
use crate::server::command::{Action, CommandError, Env, Session};
use crate::server::reply::Reply;

fn object_read(session: &Session, args: &[Bytes], what: ObjectInfo) -> Action {
    let key = args[2].clone();
    let db = session.db;
    Action::Read(Box::new(move |map, ctx| {
        Reply::from(map.object_info(db, &key, what, ctx.now_ms))
    }))
}

fn object_encoding(s: &mut Session, _: &dyn Env, a: &[Bytes]) -> Result<Action, CommandError> {
    Ok(object_read(s, a, ObjectInfo::Encoding))
}

fn object_refcount(s: &mut Session, _: &dyn Env, a: &[Bytes]) -> Result<Action, CommandError> {
    Ok(object_read(s, a, ObjectInfo::Refcount))
}

fn object_idletime(s: &mut Session, _: &dyn Env, a: &[Bytes]) -> Result<Action, CommandError> {
    Ok(object_read(s, a, ObjectInfo::IdleTime))
}

fn object_freq(s: &mut Session, _: &dyn Env, a: &[Bytes]) -> Result<Action, CommandError> {
    Ok(object_read(s, a, ObjectInfo::Freq))
}

fn object_help(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    help(&[
        "OBJECT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "ENCODING <key>",
        "    Return the kind of internal representation used in order to store the value",
        "    associated with a <key>.",
        "FREQ <key>",
        "    Return the access frequency index of the <key>. The returned integer is",
        "    proportional to the logarithm of the recent access frequency of the key.",
        "IDLETIME <key>",
        "    Return the idle time of the <key>, that is the approximated number of",
        "    seconds elapsed since the last access to the key.",
        "REFCOUNT <key>",
        "    Return the number of references of the value associated with the specified",
        "    <key>.",
        "HELP",
        "    Prints this help.",
    ])
}

/// `MEMORY USAGE key [SAMPLES count]`: the options checked as Redis does
/// (a negative count or anything else is a syntax error), then the read.
fn memory_usage(
    session: &mut Session,
    _: &dyn Env,
    args: &[Bytes],
) -> Result<Action, CommandError> {
    let mut j = 3;
    while j < args.len() {
        if args[j].eq_ignore_ascii_case(b"samples") && j + 1 < args.len() {
            match parse_i64(&args[j + 1]) {
                None => return Err(CommandError::Data(crate::kv::errors::NOT_INTEGER.into())),
                Some(n) if n < 0 => return Err(CommandError::Data("ERR syntax error".into())),
                Some(_) => {}
            }
            j += 2;
        } else {
            return Err(CommandError::Data("ERR syntax error".into()));
        }
    }
    let key = args[2].clone();
    let db = session.db;
    Ok(Action::Read(Box::new(move |map, ctx| {
        Reply::from(map.memory_usage(db, &key, ctx.now_ms))
    })))
}

fn memory_help(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    help(&[
        "MEMORY <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "DOCTOR",
        "    Return memory problems reports.",
        "MALLOC-STATS",
        "    Return internal statistics report from the memory allocator.",
        "PURGE",
        "    Attempt to purge dirty pages for reclamation by the allocator.",
        "STATS",
        "    Return information about the memory usage of the server.",
        "USAGE <key> [SAMPLES <count>]",
        "    Return memory in bytes used by <key> and its value. Nested values are",
        "    sampled up to <count> times (default: 5, 0 means sample all).",
        "HELP",
        "    Prints this help.",
    ])
}

// ---- MEMORY STATS / DOCTOR / PURGE / MALLOC-STATS ---------------------------

/// dkv's fixed per-key overhead in its memory estimate (`kv::entry_bytes`
/// counts the key's and value's bytes plus this): what MEMORY STATS reports
/// as each database's `overhead.hashtable.main`.
const KEY_OVERHEAD: u64 = 64;

/// The figures of MEMORY STATS and MEMORY DOCTOR: the process's memory as
/// INFO reports it, and dkv's replicated estimate of the data (INFO's
/// `used_memory_dataset`, what `maxmemory` counts). What each of Redis's
/// fields means here:
/// - `total.allocated` and `peak.allocated`: INFO's `used_memory` and
///   `used_memory_peak` (bytes allocated and not freed).
///   `startup.allocated`: 0 (not recorded).
/// - `replication.backlog`, `clients.slaves`, `clients.normal`,
///   `cluster.links`, `aof.buffer`, `lua.caches`, `functions.caches`: 0, not
///   measured apart (the Raft log is on disk, followers are not clients).
/// - `dataset.bytes`: the estimate, as INFO's `used_memory_dataset`;
///   `overhead.total`: the rest of `total.allocated` (the Raft log's cache,
///   buffers, the runtime), so the two add up to `total.allocated` as in
///   Redis.
/// - `db.N` (each database with keys): `overhead.hashtable.main` is the
///   fixed per-key part of the estimate ([`KEY_OVERHEAD`] per key, inside
///   `dataset.bytes`); `overhead.hashtable.expires` and `…slot-to-keys` are
///   0 (deadlines cost nothing extra in the estimate; no cluster slots).
/// - `keys.bytes-per-key`, `dataset.percentage` and `peak.percentage` as
///   Redis computes them from these.
/// - `allocator.allocated`: the bytes allocated and not freed;
///   `allocator.active`: the allocator's committed bytes;
///   `allocator.resident`: the resident set (as INFO's `allocator_*`).
///   `allocator-fragmentation.*` is active over / minus allocated,
///   `allocator-rss.*` resident over / minus active (below 1 when the
///   allocator keeps committed pages it has handed back to the kernel);
///   `rss-overhead.*`: 0, not measured.
/// - `fragmentation` / `fragmentation.bytes`: the resident set over / minus
///   `total.allocated`, as INFO's `mem_fragmentation_*`.
#[derive(Clone, Debug, PartialEq)]
struct MemoryFigures {
    memory: crate::server::info::ProcessMemory,
    /// The replicated estimate of the data.
    dataset: u64,
    /// `(db, keys)` of each database with keys.
    dbs: Vec<(usize, u64)>,
    keys: u64,
}

impl MemoryFigures {
    fn of(env: &dyn Env) -> MemoryFigures {
        let kv = env.kv_info();
        let dbs: Vec<(usize, u64)> = kv
            .keyspace
            .iter()
            .map(|&(db, keys, _, _)| (db, keys as u64))
            .collect();
        MemoryFigures {
            memory: crate::server::info::process_memory(env.facts()),
            dataset: kv.used_memory,
            keys: dbs.iter().map(|(_, k)| k).sum(),
            dbs,
        }
    }

    fn total(&self) -> u64 {
        self.memory.used
    }

    fn overhead(&self) -> u64 {
        self.total().saturating_sub(self.dataset)
    }

    /// Redis's `total_frag`: resident over allocated (0 with nothing allocated).
    fn fragmentation(&self) -> f32 {
        if self.total() == 0 {
            0.0
        } else {
            self.memory.rss as f32 / self.total() as f32
        }
    }

    fn fragmentation_bytes(&self) -> i64 {
        if self.total() == 0 {
            0
        } else {
            self.memory.rss as i64 - self.total() as i64
        }
    }
}

/// A ratio as Redis replies it: a C `float` printed as a double.
fn ratio(value: f32) -> Reply {
    Reply::Double(crate::kv::zset::format_score(f64::from(value)))
}

fn int(n: u64) -> Reply {
    Reply::Integer(i64::try_from(n).unwrap_or(i64::MAX))
}

/// MEMORY STATS' map, Redis 7.0.15's fields in its order (see
/// [`MemoryFigures`] for what each means in dkv).
fn memory_stats_reply(m: &MemoryFigures) -> Reply {
    let field = |name: &str, value: Reply| (Reply::bulk_str(name), value);
    let total = m.total();
    let mut fields = vec![
        field("peak.allocated", int(m.memory.peak)),
        field("total.allocated", int(total)),
        field("startup.allocated", int(0)),
        field("replication.backlog", int(0)),
        field("clients.slaves", int(0)),
        field("clients.normal", int(0)),
        field("cluster.links", int(0)),
        field("aof.buffer", int(0)),
        field("lua.caches", int(0)),
        field("functions.caches", int(0)),
    ];
    for &(db, keys) in &m.dbs {
        fields.push(field(
            &format!("db.{db}"),
            Reply::Map(vec![
                field("overhead.hashtable.main", int(keys * KEY_OVERHEAD)),
                field("overhead.hashtable.expires", int(0)),
                field("overhead.hashtable.slot-to-keys", int(0)),
            ]),
        ));
    }
    let net = total; // total minus startup (0)
    let per_key = net.checked_div(m.keys).unwrap_or(0);
    let dataset_pct = if net == 0 {
        0.0
    } else {
        m.dataset as f32 * 100.0 / net as f32
    };
    let peak_pct = if m.memory.peak == 0 {
        0.0
    } else {
        total as f32 * 100.0 / m.memory.peak as f32
    };
    let allocated = m.memory.allocator.map_or(0, |a| a.allocated_bytes);
    let committed = m.memory.allocator.map_or(0, |a| a.committed_bytes);
    let rss = m.memory.rss;
    fields.extend([
        field("overhead.total", int(m.overhead())),
        field("keys.count", int(m.keys)),
        field("keys.bytes-per-key", int(per_key)),
        field("dataset.bytes", int(m.dataset)),
        field("dataset.percentage", ratio(dataset_pct)),
        field("peak.percentage", ratio(peak_pct)),
        field("allocator.allocated", int(allocated)),
        field("allocator.active", int(committed)),
        field("allocator.resident", int(rss)),
        field(
            "allocator-fragmentation.ratio",
            ratio(crate::server::info::quotient(committed, allocated)),
        ),
        field(
            "allocator-fragmentation.bytes",
            Reply::Integer(crate::server::info::difference(committed, allocated)),
        ),
        field(
            "allocator-rss.ratio",
            ratio(crate::server::info::quotient(rss, committed)),
        ),
        field(
            "allocator-rss.bytes",
            Reply::Integer(crate::server::info::difference(rss, committed)),
        ),
        field("rss-overhead.ratio", ratio(0.0)),
        field("rss-overhead.bytes", int(0)),
        field("fragmentation", ratio(m.fragmentation())),
        field(
            "fragmentation.bytes",
            Reply::Integer(m.fragmentation_bytes()),
        ),
    ]);
    Reply::Map(fields)
}

fn memory_stats(_: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(memory_stats_reply(&MemoryFigures::of(env))))
}

/// Redis 7.0's MEMORY DOCTOR report over dkv's figures: "empty" under
/// 5 MiB of data estimate (Redis tests its allocated total, but a dkv node
/// commits several MiB for the Raft log and runtime with no data at all); otherwise the checks whose figures dkv has (a peak
/// over 150%, which never fires since the peak is the current figure, and
/// total RSS overhead over 1.4 and 10 MiB); the allocator, client, replica
/// and script checks look at figures that are 0 in dkv and never fire.
fn doctor_report(m: &MemoryFigures, allocator: &str) -> String {
    if m.dataset < 5 * 1024 * 1024 {
        return "Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n".to_string();
    }
    let high_frag = m.fragmentation() > 1.4 && m.fragmentation_bytes() > 10 << 20;
    if !high_frag {
        return "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n".to_string();
    }
    format!(
        "Sam, I detected a few issues in this Redis instance memory implants:\n\n * High total RSS: This instance has a memory fragmentation and RSS overhead greater than 1.4 (this means that the Resident Set Size of the Redis process is much larger than the sum of the logical allocations Redis performed). This problem is usually due either to a large peak memory (check if there is a peak memory entry above in the report) or may result from a workload that causes the allocator to fragment memory a lot. If the problem is a large peak memory, then there is no issue. Otherwise, make sure you are using the Jemalloc allocator and not the default libc malloc. Note: The currently used allocator is \"{allocator}\".\n\nI'm here to keep you safe, Sam. I want to help you.\n"
    )
}

fn memory_doctor(_: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    let report = doctor_report(&MemoryFigures::of(env), env.facts().mem_allocator);
    Ok(Action::Reply(Reply::Verbatim(report)))
}

/// MEMORY PURGE: asks the process's allocator to return free memory to the
/// kernel (Redis purges jemalloc's arenas); OK. The server binary runs on
/// mimalloc (`mem_allocator`), whose forced collection frees its empty pages;
/// a process on glibc's malloc (tests) trims its heap instead.
fn memory_purge(_: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    if env.facts().mem_allocator == "mimalloc" {
        // SAFETY: mi_collect takes no pointers; it only frees pages mimalloc
        // holds empty, and is safe to call from any thread.
        unsafe { libmimalloc_sys::mi_collect(true) };
    } else {
        #[cfg(all(target_os = "linux", target_env = "gnu"))]
        // SAFETY: malloc_trim only releases free heap pages; it takes no pointers.
        unsafe {
            libc::malloc_trim(0);
        }
    }
    Ok(Action::Reply(Reply::OK))
}

/// MEMORY MALLOC-STATS: Redis's reply when built without jemalloc, which is
/// dkv's case (the system allocator, no statistics report).
fn memory_malloc_stats(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Reply(Reply::bulk_str(
        "Stats not supported for the current allocator",
    )))
}

const KEY_READ: C = C::of(&[C::KEYSPACE, C::READ, C::SLOW]);

const fn key_sub(
    name: &'static str,
    full_name: &'static str,
    handler: crate::server::command::Handler,
    acl_categories: C,
) -> SubcommandSpec {
    SubcommandSpec {
        keys: (2, 2, 1),
        ..SubcommandSpec::new(name, full_name, 3, handler, acl_categories)
            .with_flags(Flags::READONLY)
    }
}

static OBJECT_SUBCOMMANDS: &[SubcommandSpec] = &[
    key_sub("encoding", "object|encoding", object_encoding, KEY_READ).doc(
        "Inspect the internal encoding of a Redis object",
        "2.2.3",
        "O(1)",
    ),
    key_sub("freq", "object|freq", object_freq, KEY_READ).doc(
        "Get the logarithmic access frequency counter of a Redis object",
        "4.0.0",
        "O(1)",
    ),
    key_sub("idletime", "object|idletime", object_idletime, KEY_READ).doc(
        "Get the time since a Redis object was last accessed",
        "2.2.3",
        "O(1)",
    ),
    key_sub("refcount", "object|refcount", object_refcount, KEY_READ).doc(
        "Get the number of references to the value of the key",
        "2.2.3",
        "O(1)",
    ),
    SubcommandSpec::new(
        "help",
        "object|help",
        2,
        object_help,
        C::of(&[C::KEYSPACE, C::SLOW]),
    )
    .with_flags(Flags::LOADING)
    .doc(
        "Show helpful text about the different subcommands",
        "6.2.0",
        "O(1)",
    ),
];

/// A MEMORY subcommand without arguments or keys (`@slow`, no flags).
const fn memory_sub(
    name: &'static str,
    full_name: &'static str,
    handler: crate::server::command::Handler,
) -> SubcommandSpec {
    SubcommandSpec::new(name, full_name, 2, handler, C::of(&[C::SLOW])).with_flags(Flags::NONE)
}

static MEMORY_SUBCOMMANDS: &[SubcommandSpec] = &[
    memory_sub("doctor", "memory|doctor", memory_doctor).doc(
        "Outputs memory problems report",
        "4.0.0",
        "O(1)",
    ),
    memory_sub("malloc-stats", "memory|malloc-stats", memory_malloc_stats).doc(
        "Show allocator internal stats",
        "4.0.0",
        "Depends on how much memory is allocated, could be slow",
    ),
    memory_sub("purge", "memory|purge", memory_purge).doc(
        "Ask the allocator to release memory",
        "4.0.0",
        "Depends on how much memory is allocated, could be slow",
    ),
    memory_sub("stats", "memory|stats", memory_stats).doc(
        "Show memory usage details",
        "4.0.0",
        "O(1)",
    ),
    SubcommandSpec {
        arity: -3,
        ..key_sub(
            "usage",
            "memory|usage",
            memory_usage,
            C::of(&[C::READ, C::SLOW]),
        )
        .doc(
            "Estimate the memory usage of a key",
            "4.0.0",
            "O(N) where N is the number of samples.",
        )
    },
    SubcommandSpec::new("help", "memory|help", 2, memory_help, C::of(&[C::SLOW]))
        .with_flags(Flags::LOADING)
        .doc(
            "Show helpful text about the different subcommands",
            "4.0.0",
            "O(1)",
        ),
];

/// OBJECT and MEMORY, as Redis 7.0.15's `COMMAND INFO` shows them (the
/// containers have no flags or keys; their key subcommands read the key at
/// position 2).
pub static OBJECT_COMMANDS: &[CommandSpec] = &[
    server(
        "object",
        -2,
        Flags::NONE,
        "@keyspace",
        NO_KEYS,
        missing_subcommand,
    )
    .subcommands(OBJECT_SUBCOMMANDS)
    .acl(C::of(&[C::SLOW]), (KeyAccess::R, KeyAccess::R))
    .doc(
        "A container for object introspection commands",
        "2.2.3",
        "Depends on subcommand.",
    ),
    server(
        "memory",
        -2,
        Flags::NONE,
        "@server",
        NO_KEYS,
        missing_subcommand,
    )
    .subcommands(MEMORY_SUBCOMMANDS)
    .acl(C::of(&[C::SLOW]), (KeyAccess::R, KeyAccess::R))
    .doc(
        "A container for memory diagnostics commands",
        "4.0.0",
        "Depends on subcommand.",
    ),
];

#[cfg(test)]
mod tests {
    use crate::server::command::fake::FakeBackend;
    use crate::server::command::Session;
    use crate::server::reply::Reply;

    fn run(backend: &FakeBackend, session: &mut Session, line: &str) -> Reply {
        crate::server::command::fake::run_line(backend, session, line)
    }

    fn err(text: &str) -> Reply {
        Reply::Error(text.to_string())
    }

    #[test]
    fn object_and_memory_reply_like_redis() {
        let backend = FakeBackend::new();
        let mut s = Session::new(1, None, None);
        run(&backend, &mut s, "SET k v");
        run(&backend, &mut s, "SET n 123");
        run(&backend, &mut s, "SADD s 1 2");
        run(&backend, &mut s, "RPUSH l a");
        assert_eq!(
            run(&backend, &mut s, "OBJECT ENCODING k"),
            Reply::bulk_str("embstr")
        );
        assert_eq!(
            run(&backend, &mut s, "object encoding n"),
            Reply::bulk_str("int")
        );
        assert_eq!(
            run(&backend, &mut s, "OBJECT ENCODING s"),
            Reply::bulk_str("intset")
        );
        assert_eq!(
            run(&backend, &mut s, "OBJECT ENCODING l"),
            Reply::bulk_str("quicklist")
        );
        assert_eq!(run(&backend, &mut s, "OBJECT ENCODING nokey"), Reply::Null);
        assert_eq!(
            run(&backend, &mut s, "OBJECT REFCOUNT n"),
            Reply::Integer(2147483647)
        );
        assert_eq!(
            run(&backend, &mut s, "OBJECT REFCOUNT k"),
            Reply::Integer(1)
        );
        assert_eq!(
            run(&backend, &mut s, "OBJECT IDLETIME k"),
            Reply::Integer(0)
        );
        assert_eq!(
            run(&backend, &mut s, "OBJECT FREQ k"),
            err("ERR An LFU maxmemory policy is not selected, access frequency not tracked. Please note that when switching between policies at runtime LRU and LFU data will take some time to adjust.")
        );
        assert_eq!(
            run(&backend, &mut s, "OBJECT FOO k"),
            err("ERR unknown subcommand 'FOO'. Try OBJECT HELP.")
        );
        assert_eq!(
            run(&backend, &mut s, "OBJECT ENCODING"),
            err("ERR wrong number of arguments for 'object|encoding' command")
        );
        assert_eq!(
            run(&backend, &mut s, "OBJECT HELP x"),
            err("ERR wrong number of arguments for 'object|help' command")
        );
        let Reply::Array(lines) = run(&backend, &mut s, "OBJECT HELP") else {
            panic!("help is an array")
        };
        assert_eq!(lines.len(), 15);
        // MEMORY USAGE: dkv's figure for the entry, nil for a missing key,
        // options checked before the key.
        let Reply::Integer(bytes) = run(&backend, &mut s, "MEMORY USAGE k") else {
            panic!("MEMORY USAGE k")
        };
        assert!(bytes > 2, "{bytes}");
        assert_eq!(
            run(&backend, &mut s, "MEMORY USAGE k SAMPLES 0"),
            Reply::Integer(bytes)
        );
        assert_eq!(run(&backend, &mut s, "MEMORY USAGE nokey"), Reply::Null);
        assert_eq!(
            run(&backend, &mut s, "MEMORY USAGE nokey FOO"),
            err("ERR syntax error")
        );
        assert_eq!(
            run(&backend, &mut s, "MEMORY USAGE k SAMPLES"),
            err("ERR syntax error")
        );
        assert_eq!(
            run(&backend, &mut s, "MEMORY USAGE k SAMPLES -1"),
            err("ERR syntax error")
        );
        assert_eq!(
            run(&backend, &mut s, "MEMORY USAGE k SAMPLES x"),
            err("ERR value is not an integer or out of range")
        );
        assert_eq!(
            run(&backend, &mut s, "MEMORY USAGE"),
            err("ERR wrong number of arguments for 'memory|usage' command")
        );
        assert_eq!(
            run(&backend, &mut s, "MEMORY FOO"),
            err("ERR unknown subcommand 'FOO'. Try MEMORY HELP.")
        );
    }

    fn names(reply: &Reply) -> Vec<String> {
        let Reply::Map(fields) = reply else {
            panic!("a map, got {reply:?}")
        };
        fields
            .iter()
            .map(|(name, _)| match name {
                Reply::Bulk(b) => String::from_utf8_lossy(b).into_owned(),
                other => panic!("a bulk name, got {other:?}"),
            })
            .collect()
    }

    fn field<'a>(reply: &'a Reply, name: &str) -> &'a Reply {
        let Reply::Map(fields) = reply else {
            panic!("a map")
        };
        &fields
            .iter()
            .find(|(n, _)| *n == Reply::bulk_str(name))
            .unwrap_or_else(|| panic!("no field {name}"))
            .1
    }

    /// MEMORY STATS has Redis 7.0.15's fields in its order (captured with
    /// keys in databases 0 and 3), with dkv's figures where it has them.
    #[test]
    fn memory_stats_has_redis_fields_in_order() {
        fn figures() -> crate::server::info::AllocatorFigures {
            crate::server::info::AllocatorFigures {
                allocated_bytes: 5 << 20,
                peak_allocated_bytes: 6 << 20,
                committed_bytes: 7 << 20,
            }
        }
        let mut backend = FakeBackend::new();
        backend.facts.allocator_figures = Some(figures);
        let mut s = Session::new(1, None, None);
        run(&backend, &mut s, "SET a 1");
        run(&backend, &mut s, "SELECT 3");
        run(&backend, &mut s, "SET bb 12345");
        run(&backend, &mut s, "EXPIRE bb 100");
        let stats = run(&backend, &mut s, "MEMORY STATS");
        let redis = "peak.allocated total.allocated startup.allocated replication.backlog \
            clients.slaves clients.normal cluster.links aof.buffer lua.caches functions.caches \
            db.0 db.3 overhead.total keys.count keys.bytes-per-key dataset.bytes \
            dataset.percentage peak.percentage allocator.allocated allocator.active \
            allocator.resident allocator-fragmentation.ratio allocator-fragmentation.bytes \
            allocator-rss.ratio allocator-rss.bytes rss-overhead.ratio rss-overhead.bytes \
            fragmentation fragmentation.bytes";
        assert_eq!(names(&stats), redis.split_whitespace().collect::<Vec<_>>());
        assert_eq!(
            names(field(&stats, "db.3")),
            [
                "overhead.hashtable.main",
                "overhead.hashtable.expires",
                "overhead.hashtable.slot-to-keys"
            ]
        );
        // total.allocated and peak.allocated are INFO's used_memory and
        // used_memory_peak (the allocator's figures); dataset.bytes is dkv's
        // estimate (key + value + 64 per key), as INFO's used_memory_dataset.
        let dataset = (1 + 1 + 64) + (2 + 5 + 64);
        let total = 5 << 20;
        assert_eq!(field(&stats, "total.allocated"), &Reply::Integer(total));
        assert_eq!(field(&stats, "peak.allocated"), &Reply::Integer(6 << 20));
        assert_eq!(field(&stats, "keys.count"), &Reply::Integer(2));
        assert_eq!(field(&stats, "dataset.bytes"), &Reply::Integer(dataset));
        assert_eq!(
            field(&stats, "overhead.total"),
            &Reply::Integer(total - dataset)
        );
        assert_eq!(
            field(&stats, "keys.bytes-per-key"),
            &Reply::Integer(total / 2)
        );
        assert_eq!(field(&stats, "allocator.allocated"), &Reply::Integer(total));
        assert_eq!(field(&stats, "allocator.active"), &Reply::Integer(7 << 20));
        assert_eq!(
            field(&stats, "allocator-fragmentation.ratio"),
            &Reply::Double("1.3999999761581421".into())
        );
        assert_eq!(
            field(&stats, "allocator-fragmentation.bytes"),
            &Reply::Integer(2 << 20)
        );
        assert_eq!(
            field(field(&stats, "db.0"), "overhead.hashtable.main"),
            &Reply::Integer(64)
        );
        // Redis replies its ratios as doubles: a C float printed %.17g
        // (137 * 100 / 5 MiB and 5 MiB * 100 / 6 MiB as floats).
        assert_eq!(
            field(&stats, "dataset.percentage"),
            &Reply::Double("0.002613067626953125".into())
        );
        assert_eq!(
            field(&stats, "peak.percentage"),
            &Reply::Double("83.333335876464844".into())
        );
        assert_eq!(
            run(&backend, &mut s, "MEMORY STATS x"),
            err("ERR wrong number of arguments for 'memory|stats' command")
        );
    }

    #[test]
    fn memory_doctor_purge_and_malloc_stats_reply_like_redis() {
        let backend = FakeBackend::new();
        let mut s = Session::new(1, None, None);
        assert_eq!(
            run(&backend, &mut s, "MEMORY DOCTOR"),
            Reply::Verbatim("Hi Sam, this instance is empty or is using very little memory, my issues detector can't be used in these conditions. Please, leave for your mission on Earth and fill it with some data. The new Sam and I will be back to our programming as soon as I finished rebooting.\n".into())
        );
        assert_eq!(run(&backend, &mut s, "MEMORY PURGE"), Reply::OK);
        // The server binary's allocator takes the mimalloc path.
        let mut on_mimalloc = FakeBackend::new();
        on_mimalloc.facts.mem_allocator = "mimalloc";
        assert_eq!(run(&on_mimalloc, &mut s, "MEMORY PURGE"), Reply::OK);
        assert_eq!(
            run(&backend, &mut s, "MEMORY MALLOC-STATS"),
            Reply::bulk_str("Stats not supported for the current allocator")
        );
        for sub in ["doctor", "purge", "malloc-stats"] {
            assert_eq!(
                run(&backend, &mut s, &format!("MEMORY {sub} x")),
                err(&format!(
                    "ERR wrong number of arguments for 'memory|{sub}' command"
                ))
            );
        }
        let Reply::Array(lines) = run(&backend, &mut s, "MEMORY HELP") else {
            panic!("help is an array")
        };
        assert_eq!(lines.len(), 14, "Redis 7.0.15's MEMORY HELP has 14 lines");
        assert_eq!(lines[1], Reply::Simple("DOCTOR"));
        // COMMAND INFO rows as Redis 7.0.15's (tips aside: dkv shows none).
        let Reply::Array(rows) = run(&backend, &mut s, "COMMAND INFO memory") else {
            panic!("an array")
        };
        let Reply::Array(memory) = &rows[0] else {
            panic!("a row")
        };
        let Reply::Array(subs) = &memory[9] else {
            panic!("subcommands")
        };
        let stats = subs
            .iter()
            .find(|row| matches!(row, Reply::Array(r) if r[0] == Reply::bulk_str("memory|stats")))
            .expect("memory|stats row");
        assert_eq!(
            stats,
            &Reply::Array(vec![
                Reply::bulk_str("memory|stats"),
                Reply::Integer(2),
                Reply::Array(vec![]),
                Reply::Integer(0),
                Reply::Integer(0),
                Reply::Integer(0),
                Reply::Array(vec![Reply::Simple("@slow")]),
                Reply::Array(vec![]),
                Reply::Array(vec![]),
                Reply::Array(vec![]),
            ])
        );
        assert_eq!(subs.len(), 6);
    }

    #[test]
    fn memory_doctor_reports_from_dkv_figures() {
        let figures = |total: u64, rss: u64| super::MemoryFigures {
            memory: crate::server::info::ProcessMemory {
                used: total,
                peak: total,
                rss,
                allocator: None,
            },
            dataset: total,
            dbs: vec![(0, 10)],
            keys: 10,
        };
        let fine = super::doctor_report(&figures(8 << 20, 9 << 20), "libc");
        assert_eq!(fine, "Hi Sam, I can't find any memory issue in your instance. I can only account for what occurs on this base.\n");
        let frag = super::doctor_report(&figures(8 << 20, 40 << 20), "libc");
        assert!(frag.starts_with("Sam, I detected a few issues in this Redis instance memory implants:\n\n * High total RSS:"));
        assert!(frag.contains("Note: The currently used allocator is \"libc\".\n\n"));
        assert!(frag.ends_with("I'm here to keep you safe, Sam. I want to help you.\n"));
    }

    #[test]
    fn key_subcommands_name_their_keys() {
        let backend = FakeBackend::new();
        let mut s = Session::new(1, None, None);
        assert_eq!(
            run(&backend, &mut s, "COMMAND GETKEYS OBJECT ENCODING k"),
            Reply::Array(vec![Reply::bulk_str("k")])
        );
        assert_eq!(
            run(&backend, &mut s, "COMMAND GETKEYS MEMORY USAGE k SAMPLES 5"),
            Reply::Array(vec![Reply::bulk_str("k")])
        );
        assert_eq!(
            run(&backend, &mut s, "COMMAND GETKEYS DUMP k"),
            Reply::Array(vec![Reply::bulk_str("k")])
        );
    }
}
