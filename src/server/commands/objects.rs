//! `OBJECT` (ENCODING, REFCOUNT, IDLETIME, FREQ, HELP) and `MEMORY` (USAGE,
//! HELP): containers whose key subcommands read the local replica's map
//! like any read (after the read barrier, or at once on a `READONLY`
//! connection). The answers come from `kv` ([`Db::object_info`],
//! [`Db::memory_usage`]; what they mean on a follower is documented there).
//! Syntax errors (`MEMORY USAGE key FOO`) are answered before the read, as
//! Redis answers them before looking at the key. Inside MULTI they run
//! after the transaction's log entry, as every container command does in
//! dkv. Redis's other MEMORY subcommands (DOCTOR, STATS, PURGE,
//! MALLOC-STATS) describe its allocator and are not offered.
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
        "USAGE <key> [SAMPLES <count>]",
        "    Return memory in bytes used by <key> and its value. Nested values are",
        "    sampled up to <count> times (default: 5, 0 means sample all).",
        "HELP",
        "    Prints this help.",
    ])
}

const KEY_READ: C = C::of(&[C::KEYSPACE, C::READ, C::SLOW]);

const fn key_sub(
    name: &'static str,
    full_name: &'static str,
    handler: crate::server::command::Handler,
    acl_categories: C,
) -> SubcommandSpec {
    SubcommandSpec {
        name,
        full_name,
        arity: 3,
        handler,
        acl_categories,
        flags: Some(Flags::READONLY),
        keys: (2, 2, 1),
    }
}

static OBJECT_SUBCOMMANDS: &[SubcommandSpec] = &[
    key_sub("encoding", "object|encoding", object_encoding, KEY_READ),
    key_sub("freq", "object|freq", object_freq, KEY_READ),
    key_sub("idletime", "object|idletime", object_idletime, KEY_READ),
    key_sub("refcount", "object|refcount", object_refcount, KEY_READ),
    SubcommandSpec {
        name: "help",
        full_name: "object|help",
        arity: 2,
        handler: object_help,
        acl_categories: C::of(&[C::KEYSPACE, C::SLOW]),
        flags: Some(Flags::LOADING),
        keys: NO_KEYS,
    },
];

static MEMORY_SUBCOMMANDS: &[SubcommandSpec] = &[
    SubcommandSpec {
        arity: -3,
        ..key_sub(
            "usage",
            "memory|usage",
            memory_usage,
            C::of(&[C::READ, C::SLOW]),
        )
    },
    SubcommandSpec {
        name: "help",
        full_name: "memory|help",
        arity: 2,
        handler: memory_help,
        acl_categories: C::of(&[C::SLOW]),
        flags: Some(Flags::LOADING),
        keys: NO_KEYS,
    },
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
