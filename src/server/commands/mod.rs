//! The command table ([`COMMANDS`]) and the handlers, one module per group:
//! [`data`] (every key-space command: strings, keys, expiry, hashes — routed
//! to the Raft log or to a read, interpreted by `kv`), [`connection`], [`debug`],
//! [`introspection`] and [`transactions`].

pub mod clients;
pub mod connection;
pub mod data;
pub mod debug;
mod docs;
pub mod introspection;
pub mod transactions;

use super::command::{CommandSpec, Flags, Handler, SubcommandSpec};
use data::{kv_read as rd, kv_write as wr};

const W: Flags = Flags::WRITE;
const R: Flags = Flags::READONLY;
const ADMIN: Flags = Flags::ADMIN;
const CONN: Flags = Flags::CONNECTION;
const FAST: Flags = Flags::FAST;
const LOADING: Flags = Flags::LOADING;
const NOQ: Flags = Flags::NO_QUEUE;

macro_rules! sub {
    ($parent:literal, $name:literal, $arity:expr, $handler:expr) => {
        SubcommandSpec {
            name: $name,
            full_name: concat!($parent, "|", $name),
            arity: $arity,
            handler: $handler,
        }
    };
}

static CLIENT_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub!("client", "setname", 3, connection::client_setname),
    sub!("client", "getname", 2, connection::client_getname),
    sub!("client", "setinfo", 4, connection::client_setinfo),
    sub!("client", "id", 2, connection::client_id),
    sub!("client", "info", 2, connection::client_info),
    sub!("client", "list", -2, connection::client_list),
    sub!("client", "kill", -3, connection::client_kill),
    sub!("client", "help", 2, connection::client_help),
];

static COMMAND_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub!("command", "count", 2, introspection::command_count),
    sub!("command", "docs", -2, introspection::command_docs),
    sub!("command", "info", -2, introspection::command_info),
    sub!("command", "list", -2, introspection::command_list),
    sub!("command", "help", 2, introspection::command_help),
];

static CONFIG_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub!("config", "get", -3, introspection::config_get),
    sub!("config", "set", -4, introspection::config_set),
    sub!("config", "resetstat", 2, introspection::config_resetstat),
    sub!("config", "help", 2, introspection::config_help),
];

const fn spec(
    name: &'static str,
    arity: i32,
    flags: Flags,
    group: &'static str,
    keys: (i64, i64, i64),
    handler: Handler,
) -> CommandSpec {
    CommandSpec {
        name,
        arity,
        flags,
        group,
        first_key: keys.0,
        last_key: keys.1,
        key_step: keys.2,
        handler,
        subcommands: &[],
        summary: "",
    }
}

const NO_KEYS: (i64, i64, i64) = (0, 0, 0);
const K1: (i64, i64, i64) = (1, 1, 1);
const KN: (i64, i64, i64) = (1, -1, 1);
const K12: (i64, i64, i64) = (1, 2, 1);
const KV: (i64, i64, i64) = (1, -1, 2);

const WF: Flags = W.or(FAST);
const RF: Flags = R.or(FAST);
const CF: Flags = CONN.or(FAST).or(LOADING);
const STR: &str = "@string";
const KEY: &str = "@keyspace";
const HASH: &str = "@hash";
const TX: &str = "@transaction";
const CN: &str = "@connection";

/// The command table.
pub static COMMANDS: &[CommandSpec] = &[
    // strings
    spec("get", 2, RF, STR, K1, rd),
    spec("set", -3, W, STR, K1, wr),
    spec("setnx", 3, WF, STR, K1, wr),
    spec("setex", 4, W, STR, K1, wr),
    spec("psetex", 4, W, STR, K1, wr),
    spec("getex", -2, WF, STR, K1, wr),
    spec("getdel", 2, WF, STR, K1, wr),
    spec("getset", 3, WF, STR, K1, wr),
    spec("mget", -2, RF, STR, KN, rd),
    spec("mset", -3, W, STR, KV, wr),
    spec("msetnx", -3, W, STR, KV, wr),
    spec("incr", 2, WF, STR, K1, wr),
    spec("decr", 2, WF, STR, K1, wr),
    spec("incrby", 3, WF, STR, K1, wr),
    spec("decrby", 3, WF, STR, K1, wr),
    spec("incrbyfloat", 3, WF, STR, K1, wr),
    spec("append", 3, WF, STR, K1, wr),
    spec("strlen", 2, RF, STR, K1, rd),
    spec("getrange", 4, R, STR, K1, rd),
    spec("substr", 4, R, STR, K1, rd),
    spec("setrange", 4, W, STR, K1, wr),
    // keys
    spec("del", -2, W, KEY, KN, wr),
    spec("unlink", -2, WF, KEY, KN, wr),
    spec("exists", -2, RF, KEY, KN, rd),
    spec("type", 2, RF, KEY, K1, rd),
    spec("touch", -2, RF, KEY, KN, rd),
    spec("rename", 3, W, KEY, K12, wr),
    spec("renamenx", 3, WF, KEY, K12, wr),
    spec("copy", -3, W, KEY, K12, wr),
    spec("move", 3, WF, KEY, K1, wr),
    spec("randomkey", 1, R, KEY, NO_KEYS, rd),
    spec("keys", 2, R, KEY, NO_KEYS, rd),
    spec("scan", -2, R, KEY, NO_KEYS, rd),
    spec("dbsize", 1, RF, KEY, NO_KEYS, rd),
    spec("flushdb", -1, W, KEY, NO_KEYS, wr),
    spec("flushall", -1, W, KEY, NO_KEYS, wr),
    spec("swapdb", 3, WF, KEY, NO_KEYS, wr),
    spec("expire", -3, WF, KEY, K1, wr),
    spec("pexpire", -3, WF, KEY, K1, wr),
    spec("expireat", -3, WF, KEY, K1, wr),
    spec("pexpireat", -3, WF, KEY, K1, wr),
    spec("ttl", 2, RF, KEY, K1, rd),
    spec("pttl", 2, RF, KEY, K1, rd),
    spec("expiretime", 2, RF, KEY, K1, rd),
    spec("pexpiretime", 2, RF, KEY, K1, rd),
    spec("persist", 2, WF, KEY, K1, wr),
    // hashes
    spec("hset", -4, WF, HASH, K1, wr),
    spec("hmset", -4, WF, HASH, K1, wr),
    spec("hsetnx", 4, WF, HASH, K1, wr),
    spec("hget", 3, RF, HASH, K1, rd),
    spec("hmget", -3, RF, HASH, K1, rd),
    spec("hgetall", 2, R, HASH, K1, rd),
    spec("hdel", -3, WF, HASH, K1, wr),
    spec("hexists", 3, RF, HASH, K1, rd),
    spec("hincrby", 4, WF, HASH, K1, wr),
    spec("hincrbyfloat", 4, WF, HASH, K1, wr),
    spec("hlen", 2, RF, HASH, K1, rd),
    spec("hkeys", 2, R, HASH, K1, rd),
    spec("hvals", 2, R, HASH, K1, rd),
    spec("hstrlen", 3, RF, HASH, K1, rd),
    spec("hscan", -3, R, HASH, K1, rd),
    spec("hrandfield", -2, R, HASH, K1, rd),
    // transactions
    spec(
        "multi",
        1,
        FAST.or(NOQ).or(LOADING),
        TX,
        NO_KEYS,
        transactions::multi,
    ),
    spec(
        "exec",
        1,
        NOQ.or(LOADING),
        TX,
        NO_KEYS,
        transactions::exec_command,
    ),
    spec(
        "discard",
        1,
        FAST.or(NOQ).or(LOADING),
        TX,
        NO_KEYS,
        transactions::discard,
    ),
    spec(
        "watch",
        -2,
        FAST.or(NOQ),
        TX,
        KN,
        transactions::watch_command,
    ),
    spec(
        "unwatch",
        1,
        FAST.or(LOADING),
        TX,
        NO_KEYS,
        transactions::unwatch,
    ),
    // connection
    spec("ping", -1, FAST.or(CONN), CN, NO_KEYS, connection::ping),
    spec("echo", 2, FAST.or(CONN), CN, NO_KEYS, connection::echo),
    spec("quit", -1, CF.or(NOQ), CN, NO_KEYS, connection::quit),
    spec("reset", 1, CF.or(NOQ), CN, NO_KEYS, connection::reset),
    spec("hello", -1, CF, CN, NO_KEYS, connection::hello),
    spec("auth", -2, CF, CN, NO_KEYS, connection::auth),
    spec("select", 2, CF, CN, NO_KEYS, connection::select),
    spec("readonly", 1, CF, CN, NO_KEYS, connection::readonly),
    spec("readwrite", 1, CF, CN, NO_KEYS, connection::readwrite),
    CommandSpec {
        subcommands: CLIENT_SUBCOMMANDS,
        ..spec(
            "client",
            -2,
            CONN.or(LOADING),
            CN,
            NO_KEYS,
            connection::missing_subcommand,
        )
    },
    // introspection
    CommandSpec {
        subcommands: COMMAND_SUBCOMMANDS,
        ..spec(
            "command",
            -1,
            CONN.or(LOADING),
            CN,
            NO_KEYS,
            introspection::command_all,
        )
    },
    CommandSpec {
        subcommands: CONFIG_SUBCOMMANDS,
        ..spec(
            "config",
            -2,
            ADMIN.or(LOADING),
            "@server",
            NO_KEYS,
            connection::missing_subcommand,
        )
    },
    spec("info", -1, LOADING, "@server", NO_KEYS, introspection::info),
    spec(
        "debug",
        -2,
        ADMIN.or(LOADING),
        "@server",
        NO_KEYS,
        debug::debug,
    ),
    spec(
        "time",
        1,
        FAST.or(LOADING),
        "@server",
        NO_KEYS,
        introspection::time,
    ),
    spec(
        "lastsave",
        1,
        FAST.or(LOADING),
        "@server",
        NO_KEYS,
        introspection::lastsave,
    ),
];
