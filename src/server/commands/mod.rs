//! The command table ([`COMMANDS`]) and the handlers, one module per group:
//! [`data`] (every key-space command: strings, keys, expiry, hashes — routed
//! to the Raft log or to a read, interpreted by `kv`), [`connection`], [`acl`],
//! [`debug`], [`introspection`], [`transactions`] and [`cluster`]. Each row also carries the
//! command's ACL categories and what it does to its keys, as Redis 7.0 has
//! them (`.acl(...)`).

pub mod acl;
pub mod clients;
pub mod cluster;
pub mod connection;
pub mod debug;
pub mod diagnostics;
mod docs;
pub mod introspection;
pub mod migrate;
pub mod objects;
pub mod persistence;
pub mod replication;
pub mod transactions;

use crate::cmd::{server as spec, CommandSpec, Flags, SubcommandSpec, KN, NO_KEYS};

const ADMIN: Flags = Flags::ADMIN;
const CONN: Flags = Flags::CONNECTION;
const FAST: Flags = Flags::FAST;
const LOADING: Flags = Flags::LOADING;
const NOQ: Flags = Flags::NO_QUEUE;
/// Served while a script is busy (Redis's `allow_busy`).
const BUSY_OK: Flags = Flags::ALLOW_BUSY;

macro_rules! sub {
    ($parent:literal, $name:literal, $arity:expr, $handler:expr, $categories:expr) => {
        SubcommandSpec::new(
            $name,
            concat!($parent, "|", $name),
            $arity,
            $handler,
            $categories,
        )
    };
}

// ACL categories, as Redis 7.0's `COMMAND INFO` lists them for each command.
use crate::acl::Categories as C;
const ADMIN_CAT: C = C::ADMIN;
const FAST_CAT: C = C::FAST;
const SLOW: C = C::SLOW;
const DANGEROUS: C = C::DANGEROUS;
const CONNECTION: C = C::CONNECTION;
const TRANSACTION: C = C::TRANSACTION;

const fn cats(list: &[C]) -> C {
    C::of(list)
}

// What each command does to its keys (first key, other keys), from Redis
// 7.0's key specs: reading the value needs `%R`, changing the key `%W`.
use crate::acl::KeyAccess;
const KA_NONE: KeyAccess = KeyAccess::NONE;

static CLIENT_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub!(
        "client",
        "setname",
        3,
        connection::client_setname,
        cats(&[SLOW, CONNECTION])
    ),
    sub!(
        "client",
        "getname",
        2,
        connection::client_getname,
        cats(&[SLOW, CONNECTION])
    ),
    sub!(
        "client",
        "setinfo",
        4,
        connection::client_setinfo,
        cats(&[SLOW, CONNECTION])
    ),
    sub!(
        "client",
        "id",
        2,
        connection::client_id,
        cats(&[SLOW, CONNECTION])
    ),
    sub!(
        "client",
        "info",
        2,
        connection::client_info,
        cats(&[SLOW, CONNECTION])
    ),
    sub!(
        "client",
        "list",
        -2,
        connection::client_list,
        cats(&[ADMIN_CAT, SLOW, DANGEROUS, CONNECTION])
    ),
    sub!(
        "client",
        "kill",
        -3,
        connection::client_kill,
        cats(&[ADMIN_CAT, SLOW, DANGEROUS, CONNECTION])
    ),
    sub!(
        "client",
        "help",
        2,
        connection::client_help,
        cats(&[SLOW, CONNECTION])
    ),
    sub!(
        "client",
        "tracking",
        -3,
        crate::server::tracking::client_tracking,
        cats(&[SLOW, CONNECTION])
    ),
    sub!(
        "client",
        "caching",
        3,
        crate::server::tracking::client_caching,
        cats(&[SLOW, CONNECTION])
    ),
    sub!(
        "client",
        "getredir",
        2,
        crate::server::tracking::client_getredir,
        cats(&[SLOW, CONNECTION])
    ),
    sub!(
        "client",
        "trackinginfo",
        2,
        crate::server::tracking::client_trackinginfo,
        cats(&[SLOW, CONNECTION])
    ),
];

const ACL_ADMIN: C = cats(&[ADMIN_CAT, SLOW, DANGEROUS]);

static ACL_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub!("acl", "cat", -2, acl::cat, cats(&[SLOW])),
    sub!("acl", "deluser", -3, acl::deluser, ACL_ADMIN),
    sub!("acl", "dryrun", -4, acl::dryrun, ACL_ADMIN),
    sub!("acl", "genpass", -2, acl::genpass, cats(&[SLOW])),
    sub!("acl", "getuser", 3, acl::getuser, ACL_ADMIN),
    sub!("acl", "list", 2, acl::list, ACL_ADMIN),
    sub!("acl", "load", 2, acl::load, ACL_ADMIN),
    sub!("acl", "log", -2, acl::log, ACL_ADMIN),
    sub!("acl", "save", 2, acl::save, ACL_ADMIN),
    sub!("acl", "setuser", -3, acl::setuser, ACL_ADMIN),
    sub!("acl", "users", 2, acl::users, ACL_ADMIN),
    sub!("acl", "whoami", 2, acl::whoami, cats(&[SLOW])),
    sub!("acl", "help", 2, acl::acl_help, cats(&[SLOW])),
];

static COMMAND_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub!(
        "command",
        "count",
        2,
        introspection::command_count,
        cats(&[SLOW, CONNECTION])
    ),
    sub!(
        "command",
        "docs",
        -2,
        introspection::command_docs,
        cats(&[SLOW, CONNECTION])
    ),
    sub!(
        "command",
        "getkeys",
        -4,
        introspection::command_getkeys,
        cats(&[SLOW, CONNECTION])
    ),
    sub!(
        "command",
        "info",
        -2,
        introspection::command_info,
        cats(&[SLOW, CONNECTION])
    ),
    sub!(
        "command",
        "list",
        -2,
        introspection::command_list,
        cats(&[SLOW, CONNECTION])
    ),
    sub!(
        "command",
        "help",
        2,
        introspection::command_help,
        cats(&[SLOW, CONNECTION])
    ),
];

static CONFIG_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub!(
        "config",
        "get",
        -3,
        introspection::config_get,
        cats(&[ADMIN_CAT, SLOW, DANGEROUS])
    ),
    sub!(
        "config",
        "set",
        -4,
        introspection::config_set,
        cats(&[ADMIN_CAT, SLOW, DANGEROUS])
    ),
    sub!(
        "config",
        "resetstat",
        2,
        introspection::config_resetstat,
        cats(&[ADMIN_CAT, SLOW, DANGEROUS])
    ),
    sub!(
        "config",
        "help",
        2,
        introspection::config_help,
        cats(&[SLOW])
    ),
];

static SLOWLOG_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub!("slowlog", "get", -2, diagnostics::slowlog_get, ACL_ADMIN),
    sub!("slowlog", "len", 2, diagnostics::slowlog_len, ACL_ADMIN),
    sub!("slowlog", "reset", 2, diagnostics::slowlog_reset, ACL_ADMIN),
    sub!(
        "slowlog",
        "help",
        2,
        diagnostics::slowlog_help,
        cats(&[SLOW])
    ),
];

static LATENCY_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub!(
        "latency",
        "doctor",
        2,
        diagnostics::latency_doctor,
        ACL_ADMIN
    ),
    sub!("latency", "graph", 3, diagnostics::latency_graph, ACL_ADMIN),
    sub!(
        "latency",
        "help",
        2,
        diagnostics::latency_help,
        cats(&[SLOW])
    ),
    sub!(
        "latency",
        "histogram",
        -2,
        diagnostics::latency_histogram,
        ACL_ADMIN
    ),
    sub!(
        "latency",
        "history",
        3,
        diagnostics::latency_history,
        ACL_ADMIN
    ),
    sub!(
        "latency",
        "latest",
        2,
        diagnostics::latency_latest,
        ACL_ADMIN
    ),
    sub!(
        "latency",
        "reset",
        -2,
        diagnostics::latency_reset,
        ACL_ADMIN
    ),
];

/// A `CLUSTER` subcommand with its own flags (Redis shows `stale` on all).
macro_rules! cluster_sub {
    ($name:literal, $arity:expr, $handler:expr, $flags:expr, $categories:expr) => {
        sub!("cluster", $name, $arity, $handler, $categories).with_flags($flags.or(Flags::STALE))
    };
}

const SLOW_CAT: C = cats(&[SLOW]);

static CLUSTER_SUBCOMMANDS: &[SubcommandSpec] = &[
    cluster_sub!("slots", 2, cluster::slots, Flags::NONE, SLOW_CAT),
    cluster_sub!("shards", 2, cluster::shards, Flags::NONE, SLOW_CAT),
    cluster_sub!("nodes", 2, cluster::nodes, Flags::NONE, SLOW_CAT),
    cluster_sub!("info", 2, cluster::info, Flags::NONE, SLOW_CAT),
    cluster_sub!("myid", 2, cluster::myid, Flags::NONE, SLOW_CAT),
    cluster_sub!("myshardid", 2, cluster::myshardid, Flags::NONE, SLOW_CAT),
    cluster_sub!("keyslot", 3, cluster::keyslot, Flags::NONE, SLOW_CAT),
    cluster_sub!(
        "countkeysinslot",
        3,
        cluster::countkeysinslot,
        Flags::NONE,
        SLOW_CAT
    ),
    cluster_sub!(
        "getkeysinslot",
        4,
        cluster::getkeysinslot,
        Flags::NONE,
        SLOW_CAT
    ),
    cluster_sub!("replicas", 3, cluster::replicas, ADMIN, ACL_ADMIN),
    cluster_sub!("slaves", 3, cluster::replicas, ADMIN, ACL_ADMIN),
    cluster_sub!(
        "count-failure-reports",
        3,
        cluster::count_failure_reports,
        ADMIN,
        ACL_ADMIN
    ),
    cluster_sub!("links", 2, cluster::refused, Flags::NONE, SLOW_CAT),
    cluster_sub!("help", 2, cluster::help, LOADING, SLOW_CAT),
    // Topology changes: refused (membership and leadership are Raft's).
    cluster_sub!("addslots", -3, cluster::refused, ADMIN, ACL_ADMIN),
    cluster_sub!("addslotsrange", -4, cluster::refused, ADMIN, ACL_ADMIN),
    cluster_sub!("delslots", -3, cluster::refused, ADMIN, ACL_ADMIN),
    cluster_sub!("delslotsrange", -4, cluster::refused, ADMIN, ACL_ADMIN),
    cluster_sub!("flushslots", 2, cluster::refused, ADMIN, ACL_ADMIN),
    cluster_sub!("meet", -4, cluster::refused, ADMIN, ACL_ADMIN),
    cluster_sub!("forget", 3, cluster::refused, ADMIN, ACL_ADMIN),
    cluster_sub!("replicate", 3, cluster::refused, ADMIN, ACL_ADMIN),
    cluster_sub!("failover", -2, cluster::refused, ADMIN, ACL_ADMIN),
    cluster_sub!(
        "reset",
        -2,
        cluster::refused,
        ADMIN.or(Flags::NOSCRIPT),
        ACL_ADMIN
    ),
    cluster_sub!("setslot", -4, cluster::refused, ADMIN, ACL_ADMIN),
    cluster_sub!("set-config-epoch", 3, cluster::refused, ADMIN, ACL_ADMIN),
    cluster_sub!("bumpepoch", 2, cluster::refused, ADMIN, ACL_ADMIN),
    cluster_sub!("saveconfig", 2, cluster::refused, ADMIN, ACL_ADMIN),
];

const CF: Flags = CONN.or(FAST).or(LOADING);
const TX: &str = "@transaction";
const CN: &str = "@connection";

/// The connection, transaction and admin commands (see `crate::cmd`).
pub(crate) static SERVER_COMMANDS: &[CommandSpec] = &[
    // transactions
    spec(
        "multi",
        1,
        FAST.or(NOQ).or(LOADING).or(BUSY_OK),
        TX,
        NO_KEYS,
        transactions::multi,
    )
    .acl(cats(&[FAST_CAT, TRANSACTION]), (KA_NONE, KA_NONE)),
    spec(
        "exec",
        1,
        NOQ.or(LOADING),
        TX,
        NO_KEYS,
        transactions::exec_command,
    )
    .acl(cats(&[SLOW, TRANSACTION]), (KA_NONE, KA_NONE)),
    spec(
        "discard",
        1,
        FAST.or(NOQ).or(LOADING).or(BUSY_OK),
        TX,
        NO_KEYS,
        transactions::discard,
    )
    .acl(cats(&[FAST_CAT, TRANSACTION]), (KA_NONE, KA_NONE)),
    spec(
        "watch",
        -2,
        FAST.or(NOQ).or(BUSY_OK),
        TX,
        KN,
        transactions::watch_command,
    )
    .acl(cats(&[FAST_CAT, TRANSACTION]), (KA_NONE, KA_NONE)),
    spec(
        "unwatch",
        1,
        FAST.or(LOADING).or(BUSY_OK),
        TX,
        NO_KEYS,
        transactions::unwatch,
    )
    .acl(cats(&[FAST_CAT, TRANSACTION]), (KA_NONE, KA_NONE)),
    // connection
    spec("wait", 3, Flags::NONE, "@generic", NO_KEYS, replication::wait)
        .acl(cats(&[SLOW, CONNECTION]), (KA_NONE, KA_NONE))
        .doc("Wait for the synchronous replication of all the write commands sent in the context of the current connection", "3.0.0", "O(1)"),
    spec("ping", -1, FAST.or(CONN), CN, NO_KEYS, connection::ping)
        .acl(cats(&[FAST_CAT, CONNECTION]), (KA_NONE, KA_NONE)),
    spec("echo", 2, FAST.or(CONN), CN, NO_KEYS, connection::echo)
        .acl(cats(&[FAST_CAT, CONNECTION]), (KA_NONE, KA_NONE)),
    spec("quit", -1, CF.or(NOQ).or(BUSY_OK), CN, NO_KEYS, connection::quit)
        .acl(cats(&[FAST_CAT, CONNECTION]), (KA_NONE, KA_NONE)),
    spec("reset", 1, CF.or(NOQ).or(BUSY_OK), CN, NO_KEYS, connection::reset)
        .acl(cats(&[FAST_CAT, CONNECTION]), (KA_NONE, KA_NONE)),
    spec("hello", -1, CF.or(BUSY_OK), CN, NO_KEYS, connection::hello)
        .acl(cats(&[FAST_CAT, CONNECTION]), (KA_NONE, KA_NONE)),
    spec("auth", -2, CF.or(BUSY_OK), CN, NO_KEYS, connection::auth)
        .acl(cats(&[FAST_CAT, CONNECTION]), (KA_NONE, KA_NONE)),
    spec("select", 2, CF, CN, NO_KEYS, connection::select)
        .acl(cats(&[FAST_CAT, CONNECTION]), (KA_NONE, KA_NONE)),
    spec("asking", 1, FAST, "@cluster", NO_KEYS, cluster::asking)
        .acl(cats(&[FAST_CAT, CONNECTION]), (KA_NONE, KA_NONE))
        .doc("Sent by cluster clients after an -ASK redirect", "3.0.0", "O(1)"),
    CommandSpec {
        subcommands: CLUSTER_SUBCOMMANDS,
        ..spec(
            "cluster",
            -2,
            Flags::NONE,
            "@cluster",
            NO_KEYS,
            connection::missing_subcommand,
        )
        .acl(cats(&[SLOW]), (KA_NONE, KA_NONE))
        .doc("A container for cluster commands", "3.0.0", "Depends on subcommand.")
    },
    spec("readonly", 1, CF, CN, NO_KEYS, connection::readonly)
        .acl(cats(&[FAST_CAT, CONNECTION]), (KA_NONE, KA_NONE)),
    spec("readwrite", 1, CF, CN, NO_KEYS, connection::readwrite)
        .acl(cats(&[FAST_CAT, CONNECTION]), (KA_NONE, KA_NONE)),
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
        .acl(cats(&[SLOW]), (KA_NONE, KA_NONE))
    },
    CommandSpec {
        subcommands: ACL_SUBCOMMANDS,
        ..spec(
            "acl",
            -2,
            ADMIN.or(LOADING),
            "@server",
            NO_KEYS,
            connection::missing_subcommand,
        )
        .acl(cats(&[SLOW]), (KA_NONE, KA_NONE))
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
        .acl(cats(&[SLOW, CONNECTION]), (KA_NONE, KA_NONE))
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
        .acl(cats(&[SLOW]), (KA_NONE, KA_NONE))
    },
    spec("info", -1, LOADING, "@server", NO_KEYS, introspection::info)
        .acl(cats(&[SLOW, DANGEROUS]), (KA_NONE, KA_NONE)),
    CommandSpec {
        subcommands: SLOWLOG_SUBCOMMANDS,
        ..spec(
            "slowlog",
            -2,
            ADMIN.or(LOADING),
            "@server",
            NO_KEYS,
            connection::missing_subcommand,
        )
        .acl(cats(&[SLOW]), (KA_NONE, KA_NONE))
    },
    CommandSpec {
        subcommands: LATENCY_SUBCOMMANDS,
        ..spec(
            "latency",
            -2,
            ADMIN.or(LOADING),
            "@server",
            NO_KEYS,
            connection::missing_subcommand,
        )
        .acl(cats(&[SLOW]), (KA_NONE, KA_NONE))
    },
    spec(
        "monitor",
        1,
        ADMIN.or(LOADING).or(NOQ),
        "@server",
        NO_KEYS,
        diagnostics::monitor,
    )
    .acl(cats(&[ADMIN_CAT, SLOW, DANGEROUS]), (KA_NONE, KA_NONE)),
    spec(
        "debug",
        -2,
        ADMIN.or(LOADING),
        "@server",
        NO_KEYS,
        debug::debug,
    )
    .acl(cats(&[ADMIN_CAT, SLOW, DANGEROUS]), (KA_NONE, KA_NONE)),
    spec(
        "time",
        1,
        FAST.or(LOADING),
        "@server",
        NO_KEYS,
        introspection::time,
    )
    .acl(cats(&[FAST_CAT]), (KA_NONE, KA_NONE)),
    spec(
        "failover",
        -1,
        ADMIN.or(Flags::NOSCRIPT).or(Flags::STALE),
        "@server",
        NO_KEYS,
        replication::failover,
    )
    .acl(cats(&[ADMIN_CAT, SLOW, DANGEROUS]), (KA_NONE, KA_NONE))
    .doc(
        "Hands Raft leadership to another voter (TO host port) or one of the leader's choosing",
        "6.2.0",
        "O(1)",
    ),
    spec(
        "role",
        1,
        Flags::NOSCRIPT.or(LOADING).or(Flags::STALE).or(FAST),
        "@server",
        NO_KEYS,
        replication::role,
    )
    .acl(cats(&[ADMIN_CAT, FAST_CAT, DANGEROUS]), (KA_NONE, KA_NONE))
    .doc(
        "Returns this node's replication role: master on the Raft leader, slave elsewhere",
        "2.8.12",
        "O(1)",
    ),
    spec(
        "lastsave",
        1,
        FAST.or(LOADING),
        "@server",
        NO_KEYS,
        introspection::lastsave,
    )
    .acl(cats(&[ADMIN_CAT, FAST_CAT, DANGEROUS]), (KA_NONE, KA_NONE)),
    spec(
        "save",
        1,
        ADMIN.or(Flags::NOSCRIPT).or(NOQ),
        "@server",
        NO_KEYS,
        persistence::save,
    )
    .acl(ADMIN_SLOW_DANGEROUS, (KA_NONE, KA_NONE))
    .doc(
        "Writes a snapshot of this node's dataset now and answers once it is durable",
        "1.0.0",
        "O(N) where N is the total number of keys in all databases",
    ),
    spec(
        "bgsave",
        -1,
        ADMIN.or(Flags::NOSCRIPT),
        "@server",
        NO_KEYS,
        persistence::bgsave,
    )
    .acl(ADMIN_SLOW_DANGEROUS, (KA_NONE, KA_NONE))
    .doc(
        "Starts writing a snapshot of this node's dataset",
        "1.0.0",
        "O(1)",
    ),
    spec(
        "bgrewriteaof",
        1,
        ADMIN.or(Flags::NOSCRIPT),
        "@server",
        NO_KEYS,
        persistence::bgrewriteaof,
    )
    .acl(ADMIN_SLOW_DANGEROUS, (KA_NONE, KA_NONE))
    .doc(
        "Compacts this node's log: starts a snapshot, after which the log it covers is deleted",
        "1.0.0",
        "O(1)",
    ),
    spec(
        "shutdown",
        -1,
        ADMIN
            .or(Flags::NOSCRIPT)
            .or(LOADING)
            .or(Flags::STALE)
            .or(NOQ)
            .or(BUSY_OK),
        "@server",
        NO_KEYS,
        persistence::shutdown,
    )
    .acl(ADMIN_SLOW_DANGEROUS, (KA_NONE, KA_NONE))
    .doc(
        "Stops this node as SIGTERM does: a leader hands leadership over first",
        "1.0.0",
        "O(1), or O(N) with SAVE, N being the number of keys",
    ),
    spec("lolwut", -1, FAST, "@server", NO_KEYS, introspection::lolwut)
        .acl(cats(&[C::READ, FAST_CAT]), (KA_NONE, KA_NONE))
        .doc(
            "Display some computer art and the Redis version",
            "5.0.0",
            "",
        ),
    replicaof_row("replicaof", "5.0.0"),
    replicaof_row("slaveof", "1.0.0"),
    handshake_row("sync", 1, Flags::NONE, "1.0.0"),
    handshake_row("psync", -3, Flags::NONE, "2.8.0"),
    handshake_row(
        "replconf",
        -1,
        LOADING.or(Flags::STALE).or(BUSY_OK),
        "3.0.0",
    ),
    CommandSpec {
        subcommands: MODULE_SUBCOMMANDS,
        ..spec(
            "module",
            -2,
            Flags::NONE,
            "@server",
            NO_KEYS,
            connection::missing_subcommand,
        )
        .acl(cats(&[SLOW]), (KA_NONE, KA_NONE))
        .doc("A container for module commands", "4.0.0", "Depends on subcommand.")
    },
];

/// `REPLICAOF` or its old name `SLAVEOF` (`replication.rs`).
const fn replicaof_row(name: &'static str, since: &'static str) -> CommandSpec {
    spec(
        name,
        3,
        ADMIN.or(Flags::NOSCRIPT).or(Flags::STALE),
        "@server",
        NO_KEYS,
        replication::replicaof,
    )
    .acl(ADMIN_SLOW_DANGEROUS, (KA_NONE, KA_NONE))
    .doc(
        "Refused in dkv (every node follows the Raft leader), except NO ONE on the leader",
        since,
        "O(1)",
    )
}

/// One of Redis's replication handshake commands, refused (`replication.rs`).
const fn handshake_row(
    name: &'static str,
    arity: i32,
    flags: Flags,
    since: &'static str,
) -> CommandSpec {
    spec(
        name,
        arity,
        ADMIN.or(Flags::NOSCRIPT).or(flags),
        "@server",
        NO_KEYS,
        replication::replication_handshake,
    )
    .acl(ADMIN_SLOW_DANGEROUS, (KA_NONE, KA_NONE))
    .doc(
        "Redis's replication handshake: refused, dkv replicates through Raft",
        since,
        "O(1)",
    )
}

/// `@admin @slow @dangerous`, Redis's categories for most admin commands.
const ADMIN_SLOW_DANGEROUS: C = cats(&[ADMIN_CAT, SLOW, DANGEROUS]);

/// A `MODULE` subcommand with its own flags.
macro_rules! module_sub {
    ($name:literal, $arity:expr, $handler:expr, $flags:expr, $categories:expr) => {
        sub!("module", $name, $arity, $handler, $categories).with_flags($flags)
    };
}

static MODULE_SUBCOMMANDS: &[SubcommandSpec] = &[
    module_sub!(
        "help",
        2,
        introspection::module_help,
        LOADING.or(Flags::STALE),
        SLOW_CAT
    )
    .doc(
        "Show helpful text about the different subcommands",
        "5.0.0",
        "O(1)",
    ),
    module_sub!(
        "list",
        2,
        introspection::module_list,
        ADMIN.or(Flags::NOSCRIPT),
        ADMIN_SLOW_DANGEROUS
    )
    .doc(
        "List all modules loaded by the server",
        "4.0.0",
        "O(N) where N is the number of loaded modules.",
    ),
    module_sub!(
        "load",
        -3,
        introspection::module_refused,
        ADMIN.or(Flags::NOSCRIPT),
        ADMIN_SLOW_DANGEROUS
    )
    .doc("Load a module", "4.0.0", "O(1)"),
    module_sub!(
        "loadex",
        -3,
        introspection::module_refused,
        ADMIN.or(Flags::NOSCRIPT),
        ADMIN_SLOW_DANGEROUS
    )
    .doc("Load a module with extended parameters", "7.0.0", "O(1)"),
    module_sub!(
        "unload",
        3,
        introspection::module_refused,
        ADMIN.or(Flags::NOSCRIPT),
        ADMIN_SLOW_DANGEROUS
    )
    .doc("Unload a module", "4.0.0", "O(1)"),
];
