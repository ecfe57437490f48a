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
    )
    .doc("Set the current connection name", "2.6.9", "O(1)"),
    sub!(
        "client",
        "getname",
        2,
        connection::client_getname,
        cats(&[SLOW, CONNECTION])
    )
    .doc("Get the current connection name", "2.6.9", "O(1)"),
    sub!(
        "client",
        "setinfo",
        4,
        connection::client_setinfo,
        cats(&[SLOW, CONNECTION])
    )
    .doc(
        "Set the client library's name or version for the current connection",
        "7.2.0",
        "O(1)",
    ),
    sub!(
        "client",
        "id",
        2,
        connection::client_id,
        cats(&[SLOW, CONNECTION])
    )
    .doc(
        "Returns the client ID for the current connection",
        "5.0.0",
        "O(1)",
    ),
    sub!(
        "client",
        "info",
        2,
        connection::client_info,
        cats(&[SLOW, CONNECTION])
    )
    .doc(
        "Returns information about the current client connection.",
        "6.2.0",
        "O(1)",
    ),
    sub!(
        "client",
        "list",
        -2,
        connection::client_list,
        cats(&[ADMIN_CAT, SLOW, DANGEROUS, CONNECTION])
    )
    .doc(
        "Get the list of client connections",
        "2.4.0",
        "O(N) where N is the number of client connections",
    ),
    sub!(
        "client",
        "kill",
        -3,
        connection::client_kill,
        cats(&[ADMIN_CAT, SLOW, DANGEROUS, CONNECTION])
    )
    .doc(
        "Kill the connection of a client",
        "2.4.0",
        "O(N) where N is the number of client connections",
    ),
    sub!(
        "client",
        "help",
        2,
        connection::client_help,
        cats(&[SLOW, CONNECTION])
    )
    .doc(
        "Show helpful text about the different subcommands",
        "5.0.0",
        "O(1)",
    ),
    sub!(
        "client",
        "tracking",
        -3,
        crate::server::tracking::client_tracking,
        cats(&[SLOW, CONNECTION])
    )
    .doc(
        "Enable or disable server assisted client side caching support",
        "6.0.0",
        "O(1). Some options may introduce additional complexity.",
    ),
    sub!(
        "client",
        "caching",
        3,
        crate::server::tracking::client_caching,
        cats(&[SLOW, CONNECTION])
    )
    .doc(
        "Instruct the server about tracking or not keys in the next request",
        "6.0.0",
        "O(1)",
    ),
    sub!(
        "client",
        "getredir",
        2,
        crate::server::tracking::client_getredir,
        cats(&[SLOW, CONNECTION])
    )
    .doc(
        "Get tracking notifications redirection client ID if any",
        "6.0.0",
        "O(1)",
    ),
    sub!(
        "client",
        "trackinginfo",
        2,
        crate::server::tracking::client_trackinginfo,
        cats(&[SLOW, CONNECTION])
    )
    .doc(
        "Return information about server assisted client side caching for the current connection",
        "6.2.0",
        "O(1)",
    ),
];

const ACL_ADMIN: C = cats(&[ADMIN_CAT, SLOW, DANGEROUS]);

static ACL_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub!("acl", "cat", -2, acl::cat, cats(&[SLOW])).doc(
        "List the ACL categories or the commands inside a category",
        "6.0.0",
        "O(1) since the categories and commands are a fixed set.",
    ),
    sub!("acl", "deluser", -3, acl::deluser, ACL_ADMIN).doc(
        "Remove the specified ACL users and the associated rules",
        "6.0.0",
        "O(1) amortized time considering the typical user.",
    ),
    sub!("acl", "dryrun", -4, acl::dryrun, ACL_ADMIN).doc(
        "Returns whether the user can execute the given command without executing the command.",
        "7.0.0",
        "O(1).",
    ),
    sub!("acl", "genpass", -2, acl::genpass, cats(&[SLOW])).doc(
        "Generate a pseudorandom secure password to use for ACL users",
        "6.0.0",
        "O(1)",
    ),
    sub!("acl", "getuser", 3, acl::getuser, ACL_ADMIN).doc(
        "Get the rules for a specific ACL user",
        "6.0.0",
        "O(N). Where N is the number of password, command and pattern rules that the user has.",
    ),
    sub!("acl", "list", 2, acl::list, ACL_ADMIN).doc(
        "List the current ACL rules in ACL config file format",
        "6.0.0",
        "O(N). Where N is the number of configured users.",
    ),
    sub!("acl", "load", 2, acl::load, ACL_ADMIN).doc(
        "Reload the ACLs from the configured ACL file",
        "6.0.0",
        "O(N). Where N is the number of configured users.",
    ),
    sub!("acl", "log", -2, acl::log, ACL_ADMIN).doc(
        "List latest events denied because of ACLs in place",
        "6.0.0",
        "O(N) with N being the number of entries shown.",
    ),
    sub!("acl", "save", 2, acl::save, ACL_ADMIN).doc(
        "Save the current ACL rules in the configured ACL file",
        "6.0.0",
        "O(N). Where N is the number of configured users.",
    ),
    sub!("acl", "setuser", -3, acl::setuser, ACL_ADMIN).doc(
        "Modify or create the rules for a specific ACL user",
        "6.0.0",
        "O(N). Where N is the number of rules provided.",
    ),
    sub!("acl", "users", 2, acl::users, ACL_ADMIN).doc(
        "List the username of all the configured ACL rules",
        "6.0.0",
        "O(N). Where N is the number of configured users.",
    ),
    sub!("acl", "whoami", 2, acl::whoami, cats(&[SLOW])).doc(
        "Return the name of the user associated to the current connection",
        "6.0.0",
        "O(1)",
    ),
    sub!("acl", "help", 2, acl::acl_help, cats(&[SLOW])).doc(
        "Show helpful text about the different subcommands",
        "6.0.0",
        "O(1)",
    ),
];

static COMMAND_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub!(
        "command",
        "count",
        2,
        introspection::command_count,
        cats(&[SLOW, CONNECTION])
    )
    .doc("Get total number of Redis commands", "2.8.13", "O(1)"),
    sub!(
        "command",
        "docs",
        -2,
        introspection::command_docs,
        cats(&[SLOW, CONNECTION])
    )
    .doc(
        "Get array of specific Redis command documentation",
        "7.0.0",
        "O(N) where N is the number of commands to look up",
    ),
    sub!(
        "command",
        "getkeys",
        -4,
        introspection::command_getkeys,
        cats(&[SLOW, CONNECTION])
    )
    .doc(
        "Extract keys given a full Redis command",
        "2.8.13",
        "O(N) where N is the number of arguments to the command",
    ),
    sub!(
        "command",
        "info",
        -2,
        introspection::command_info,
        cats(&[SLOW, CONNECTION])
    )
    .doc(
        "Get array of specific Redis command details, or all when no argument is given.",
        "2.8.13",
        "O(N) where N is the number of commands to look up",
    ),
    sub!(
        "command",
        "list",
        -2,
        introspection::command_list,
        cats(&[SLOW, CONNECTION])
    )
    .doc(
        "Get an array of Redis command names",
        "7.0.0",
        "O(N) where N is the total number of Redis commands",
    ),
    sub!(
        "command",
        "help",
        2,
        introspection::command_help,
        cats(&[SLOW, CONNECTION])
    )
    .doc(
        "Show helpful text about the different subcommands",
        "5.0.0",
        "O(1)",
    ),
];

static CONFIG_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub!(
        "config",
        "get",
        -3,
        introspection::config_get,
        cats(&[ADMIN_CAT, SLOW, DANGEROUS])
    )
    .doc(
        "Get the values of configuration parameters",
        "2.0.0",
        "O(N) when N is the number of configuration parameters provided",
    ),
    sub!(
        "config",
        "set",
        -4,
        introspection::config_set,
        cats(&[ADMIN_CAT, SLOW, DANGEROUS])
    )
    .doc(
        "Set configuration parameters to the given values",
        "2.0.0",
        "O(N) when N is the number of configuration parameters provided",
    ),
    sub!(
        "config",
        "resetstat",
        2,
        introspection::config_resetstat,
        cats(&[ADMIN_CAT, SLOW, DANGEROUS])
    )
    .doc("Reset the stats returned by INFO", "2.0.0", "O(1)"),
    sub!(
        "config",
        "help",
        2,
        introspection::config_help,
        cats(&[SLOW])
    )
    .doc(
        "Show helpful text about the different subcommands",
        "5.0.0",
        "O(1)",
    ),
];

static SLOWLOG_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub!("slowlog", "get", -2, diagnostics::slowlog_get, ACL_ADMIN).doc(
        "Get the slow log's entries",
        "2.2.12",
        "O(N) where N is the number of entries returned",
    ),
    sub!("slowlog", "len", 2, diagnostics::slowlog_len, ACL_ADMIN).doc(
        "Get the slow log's length",
        "2.2.12",
        "O(1)",
    ),
    sub!("slowlog", "reset", 2, diagnostics::slowlog_reset, ACL_ADMIN).doc(
        "Clear all entries from the slow log",
        "2.2.12",
        "O(N) where N is the number of entries in the slowlog",
    ),
    sub!(
        "slowlog",
        "help",
        2,
        diagnostics::slowlog_help,
        cats(&[SLOW])
    )
    .doc(
        "Show helpful text about the different subcommands",
        "6.2.0",
        "O(1)",
    ),
];

static LATENCY_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub!(
        "latency",
        "doctor",
        2,
        diagnostics::latency_doctor,
        ACL_ADMIN
    )
    .doc(
        "Return a human readable latency analysis report.",
        "2.8.13",
        "O(1)",
    ),
    sub!("latency", "graph", 3, diagnostics::latency_graph, ACL_ADMIN).doc(
        "Return a latency graph for the event.",
        "2.8.13",
        "O(1)",
    ),
    sub!(
        "latency",
        "help",
        2,
        diagnostics::latency_help,
        cats(&[SLOW])
    )
    .doc(
        "Show helpful text about the different subcommands.",
        "2.8.13",
        "O(1)",
    ),
    sub!(
        "latency",
        "histogram",
        -2,
        diagnostics::latency_histogram,
        ACL_ADMIN
    )
    .doc(
        "Return the cumulative distribution of latencies of a subset of commands or all.",
        "7.0.0",
        "O(N) where N is the number of commands with latency information being retrieved.",
    ),
    sub!(
        "latency",
        "history",
        3,
        diagnostics::latency_history,
        ACL_ADMIN
    )
    .doc(
        "Return timestamp-latency samples for the event.",
        "2.8.13",
        "O(1)",
    ),
    sub!(
        "latency",
        "latest",
        2,
        diagnostics::latency_latest,
        ACL_ADMIN
    )
    .doc(
        "Return the latest latency samples for all events.",
        "2.8.13",
        "O(1)",
    ),
    sub!(
        "latency",
        "reset",
        -2,
        diagnostics::latency_reset,
        ACL_ADMIN
    )
    .doc(
        "Reset latency data for one or more events.",
        "2.8.13",
        "O(1)",
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
    cluster_sub!("slots", 2, cluster::slots, Flags::NONE, SLOW_CAT).doc(
        "Get array of Cluster slot to node mappings",
        "3.0.0",
        "O(N) where N is the total number of Cluster nodes",
    ),
    cluster_sub!("shards", 2, cluster::shards, Flags::NONE, SLOW_CAT).doc(
        "Get array of cluster slots to node mappings",
        "7.0.0",
        "O(N) where N is the total number of cluster nodes",
    ),
    cluster_sub!("nodes", 2, cluster::nodes, Flags::NONE, SLOW_CAT).doc(
        "Get Cluster config for the node",
        "3.0.0",
        "O(N) where N is the total number of Cluster nodes",
    ),
    cluster_sub!("info", 2, cluster::info, Flags::NONE, SLOW_CAT).doc(
        "Provides info about Redis Cluster node state",
        "3.0.0",
        "O(1)",
    ),
    cluster_sub!("myid", 2, cluster::myid, Flags::NONE, SLOW_CAT).doc(
        "Return the node id",
        "3.0.0",
        "O(1)",
    ),
    cluster_sub!("myshardid", 2, cluster::myshardid, Flags::NONE, SLOW_CAT).doc(
        "Return the id of the shard this node belongs to",
        "7.2.0",
        "O(1)",
    ),
    cluster_sub!("keyslot", 3, cluster::keyslot, Flags::NONE, SLOW_CAT).doc(
        "Returns the hash slot of the specified key",
        "3.0.0",
        "O(N) where N is the number of bytes in the key",
    ),
    cluster_sub!(
        "countkeysinslot",
        3,
        cluster::countkeysinslot,
        Flags::NONE,
        SLOW_CAT
    )
    .doc(
        "Return the number of local keys in the specified hash slot",
        "3.0.0",
        "O(1)",
    ),
    cluster_sub!(
        "getkeysinslot",
        4,
        cluster::getkeysinslot,
        Flags::NONE,
        SLOW_CAT
    )
    .doc(
        "Return local key names in the specified hash slot",
        "3.0.0",
        "O(log(N)) where N is the number of requested keys",
    ),
    cluster_sub!("replicas", 3, cluster::replicas, ADMIN, ACL_ADMIN).doc(
        "List replica nodes of the specified master node",
        "5.0.0",
        "O(1)",
    ),
    cluster_sub!("slaves", 3, cluster::replicas, ADMIN, ACL_ADMIN).doc(
        "List replica nodes of the specified master node",
        "3.0.0",
        "O(1)",
    ),
    cluster_sub!(
        "count-failure-reports",
        3,
        cluster::count_failure_reports,
        ADMIN,
        ACL_ADMIN
    )
    .doc(
        "Return the number of failure reports active for a given node",
        "3.0.0",
        "O(N) where N is the number of failure reports",
    ),
    cluster_sub!("links", 2, cluster::refused, Flags::NONE, SLOW_CAT).doc(
        "Returns a list of all TCP links to and from peer nodes in cluster",
        "7.0.0",
        "O(N) where N is the total number of Cluster nodes",
    ),
    cluster_sub!("help", 2, cluster::help, LOADING, SLOW_CAT).doc(
        "Show helpful text about the different subcommands",
        "5.0.0",
        "O(1)",
    ),
    // Topology changes: refused (membership and leadership are Raft's).
    cluster_sub!("addslots", -3, cluster::refused, ADMIN, ACL_ADMIN).doc(
        "Assign new hash slots to receiving node",
        "3.0.0",
        "O(N) where N is the total number of hash slot arguments",
    ),
    cluster_sub!("addslotsrange", -4, cluster::refused, ADMIN, ACL_ADMIN).doc(
        "Assign new hash slots to receiving node",
        "7.0.0",
        "O(N) where N is the total number of the slots between the start slot and end slot arguments.",
    ),
    cluster_sub!("delslots", -3, cluster::refused, ADMIN, ACL_ADMIN).doc(
        "Set hash slots as unbound in receiving node",
        "3.0.0",
        "O(N) where N is the total number of hash slot arguments",
    ),
    cluster_sub!("delslotsrange", -4, cluster::refused, ADMIN, ACL_ADMIN).doc(
        "Set hash slots as unbound in receiving node",
        "7.0.0",
        "O(N) where N is the total number of the slots between the start slot and end slot arguments.",
    ),
    cluster_sub!("flushslots", 2, cluster::refused, ADMIN, ACL_ADMIN).doc(
        "Delete a node's own slots information",
        "3.0.0",
        "O(1)",
    ),
    cluster_sub!("meet", -4, cluster::refused, ADMIN, ACL_ADMIN).doc(
        "Force a node cluster to handshake with another node",
        "3.0.0",
        "O(1)",
    ),
    cluster_sub!("forget", 3, cluster::refused, ADMIN, ACL_ADMIN).doc(
        "Remove a node from the nodes table",
        "3.0.0",
        "O(1)",
    ),
    cluster_sub!("replicate", 3, cluster::refused, ADMIN, ACL_ADMIN).doc(
        "Reconfigure a node as a replica of the specified master node",
        "3.0.0",
        "O(1)",
    ),
    cluster_sub!("failover", -2, cluster::refused, ADMIN, ACL_ADMIN).doc(
        "Forces a replica to perform a manual failover of its master.",
        "3.0.0",
        "O(1)",
    ),
    cluster_sub!(
        "reset",
        -2,
        cluster::refused,
        ADMIN.or(Flags::NOSCRIPT),
        ACL_ADMIN
    )
    .doc(
        "Reset a Redis Cluster node",
        "3.0.0",
        "O(N) where N is the number of known nodes. The command may execute a FLUSHALL as a side effect.",
    ),
    cluster_sub!("setslot", -4, cluster::refused, ADMIN, ACL_ADMIN).doc(
        "Bind a hash slot to a specific node",
        "3.0.0",
        "O(1)",
    ),
    cluster_sub!("set-config-epoch", 3, cluster::refused, ADMIN, ACL_ADMIN).doc(
        "Set the configuration epoch in a new node",
        "3.0.0",
        "O(1)",
    ),
    cluster_sub!("bumpepoch", 2, cluster::refused, ADMIN, ACL_ADMIN).doc(
        "Advance the cluster config epoch",
        "3.0.0",
        "O(1)",
    ),
    cluster_sub!("saveconfig", 2, cluster::refused, ADMIN, ACL_ADMIN).doc(
        "Forces the node to save cluster state on disk",
        "3.0.0",
        "O(1)",
    ),
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
    .acl(cats(&[FAST_CAT, TRANSACTION]), (KA_NONE, KA_NONE))
    .doc("Mark the start of a transaction block", "1.2.0", "O(1)"),
    spec(
        "exec",
        1,
        NOQ.or(LOADING),
        TX,
        NO_KEYS,
        transactions::exec_command,
    )
    .acl(cats(&[SLOW, TRANSACTION]), (KA_NONE, KA_NONE))
    .doc(
        "Execute all commands issued after MULTI",
        "1.2.0",
        "Depends on commands in the transaction",
    ),
    spec(
        "discard",
        1,
        FAST.or(NOQ).or(LOADING).or(BUSY_OK),
        TX,
        NO_KEYS,
        transactions::discard,
    )
    .acl(cats(&[FAST_CAT, TRANSACTION]), (KA_NONE, KA_NONE))
    .doc(
        "Discard all commands issued after MULTI",
        "2.0.0",
        "O(N), when N is the number of queued commands",
    ),
    spec(
        "watch",
        -2,
        FAST.or(NOQ).or(BUSY_OK),
        TX,
        KN,
        transactions::watch_command,
    )
    .acl(cats(&[FAST_CAT, TRANSACTION]), (KA_NONE, KA_NONE))
    .doc(
        "Watch the given keys to determine execution of the MULTI/EXEC block",
        "2.2.0",
        "O(1) for every key.",
    ),
    spec(
        "unwatch",
        1,
        FAST.or(LOADING).or(BUSY_OK),
        TX,
        NO_KEYS,
        transactions::unwatch,
    )
    .acl(cats(&[FAST_CAT, TRANSACTION]), (KA_NONE, KA_NONE))
    .doc("Forget about all watched keys", "2.2.0", "O(1)"),
    // connection
    spec("wait", 3, Flags::NONE, "@generic", NO_KEYS, replication::wait)
        .acl(cats(&[SLOW, CONNECTION]), (KA_NONE, KA_NONE))
        .doc("Wait for the synchronous replication of all the write commands sent in the context of the current connection", "3.0.0", "O(1)"),
    spec("ping", -1, FAST.or(CONN), CN, NO_KEYS, connection::ping)
        .acl(cats(&[FAST_CAT, CONNECTION]), (KA_NONE, KA_NONE))
        .doc("Ping the server", "1.0.0", "O(1)"),
    spec("echo", 2, FAST.or(CONN), CN, NO_KEYS, connection::echo)
        .acl(cats(&[FAST_CAT, CONNECTION]), (KA_NONE, KA_NONE))
        .doc("Echo the given string", "1.0.0", "O(1)"),
    spec("quit", -1, CF.or(NOQ).or(BUSY_OK), CN, NO_KEYS, connection::quit)
        .acl(cats(&[FAST_CAT, CONNECTION]), (KA_NONE, KA_NONE))
        .doc("Close the connection", "1.0.0", "O(1)"),
    spec("reset", 1, CF.or(NOQ).or(BUSY_OK), CN, NO_KEYS, connection::reset)
        .acl(cats(&[FAST_CAT, CONNECTION]), (KA_NONE, KA_NONE))
        .doc("Reset the connection", "6.2.0", "O(1)"),
    spec("hello", -1, CF.or(BUSY_OK), CN, NO_KEYS, connection::hello)
        .acl(cats(&[FAST_CAT, CONNECTION]), (KA_NONE, KA_NONE))
        .doc("Handshake with Redis", "6.0.0", "O(1)"),
    spec("auth", -2, CF.or(BUSY_OK), CN, NO_KEYS, connection::auth)
        .acl(cats(&[FAST_CAT, CONNECTION]), (KA_NONE, KA_NONE))
        .doc(
            "Authenticate to the server",
            "1.0.0",
            "O(N) where N is the number of passwords defined for the user",
        ),
    spec("select", 2, CF, CN, NO_KEYS, connection::select)
        .acl(cats(&[FAST_CAT, CONNECTION]), (KA_NONE, KA_NONE))
        .doc(
            "Change the selected database for the current connection",
            "1.0.0",
            "O(1)",
        ),
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
        .acl(cats(&[FAST_CAT, CONNECTION]), (KA_NONE, KA_NONE))
        .doc(
            "Enables read queries for a connection to a cluster replica node",
            "3.0.0",
            "O(1)",
        ),
    spec("readwrite", 1, CF, CN, NO_KEYS, connection::readwrite)
        .acl(cats(&[FAST_CAT, CONNECTION]), (KA_NONE, KA_NONE))
        .doc(
            "Disables read queries for a connection to a cluster replica node",
            "3.0.0",
            "O(1)",
        ),
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
        .doc(
            "A container for client connection commands",
            "2.4.0",
            "Depends on subcommand.",
        )
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
        .doc(
            "A container for Access List Control commands ",
            "6.0.0",
            "Depends on subcommand.",
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
        .acl(cats(&[SLOW, CONNECTION]), (KA_NONE, KA_NONE))
        .doc(
            "Get array of Redis command details",
            "2.8.13",
            "O(N) where N is the total number of Redis commands",
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
        .acl(cats(&[SLOW]), (KA_NONE, KA_NONE))
        .doc(
            "A container for server configuration commands",
            "2.0.0",
            "Depends on subcommand.",
        )
    },
    spec("info", -1, LOADING, "@server", NO_KEYS, introspection::info)
        .acl(cats(&[SLOW, DANGEROUS]), (KA_NONE, KA_NONE))
        .doc(
            "Get information and statistics about the server",
            "1.0.0",
            "O(1)",
        ),
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
        .doc(
            "A container for slow log commands",
            "2.2.12",
            "Depends on subcommand.",
        )
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
        .doc(
            "A container for latency diagnostics commands",
            "2.8.13",
            "Depends on subcommand.",
        )
    },
    spec(
        "monitor",
        1,
        ADMIN.or(LOADING).or(NOQ),
        "@server",
        NO_KEYS,
        diagnostics::monitor,
    )
    .acl(cats(&[ADMIN_CAT, SLOW, DANGEROUS]), (KA_NONE, KA_NONE))
    .doc(
        "Listen for all requests received by the server in real time",
        "1.0.0",
        "",
    ),
    spec(
        "debug",
        -2,
        ADMIN.or(LOADING),
        "@server",
        NO_KEYS,
        debug::debug,
    )
    .acl(cats(&[ADMIN_CAT, SLOW, DANGEROUS]), (KA_NONE, KA_NONE))
    .doc(
        "A container for debugging commands",
        "1.0.0",
        "Depends on subcommand.",
    ),
    spec(
        "time",
        1,
        FAST.or(LOADING),
        "@server",
        NO_KEYS,
        introspection::time,
    )
    .acl(cats(&[FAST_CAT]), (KA_NONE, KA_NONE))
    .doc("Return the current server time", "2.6.0", "O(1)"),
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
    .acl(cats(&[ADMIN_CAT, FAST_CAT, DANGEROUS]), (KA_NONE, KA_NONE))
    .doc(
        "Get the UNIX time stamp of the last successful save to disk",
        "1.0.0",
        "O(1)",
    ),
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
