//! The interpreter's command table: every command `apply` (writes, and reads
//! inside MULTI) and `query` (reads) understand, with Redis's arity.
//!
//! The server's own table (`server::command`) decides routing (log or read);
//! this one decides execution. A unit test in `server` checks they agree.

use bytes::Bytes;

use super::{expiry, hashes, keys, strings, Ctx, Db, Output};

pub(crate) type ReadFn = fn(&Db, &Ctx, &[Bytes]) -> Output;
pub(crate) type WriteFn = fn(&mut Db, &Ctx, &[Bytes]) -> Output;

#[derive(Clone, Copy)]
pub(crate) enum Handler {
    Read(ReadFn),
    Write(WriteFn),
}

pub(crate) struct Spec {
    pub name: &'static str,
    pub arity: i32,
    pub handler: Handler,
    /// Refused with `-OOM` over `maxmemory` (Redis's `denyoom` flag).
    pub denyoom: bool,
}

/// Whether a command reads or writes the key space.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CommandKind {
    /// Served after a ReadIndex, on the local map.
    Read,
    /// Proposed to the log.
    Write,
}

/// The kind of `name` if the interpreter knows it.
pub fn command_kind(name: &[u8]) -> Option<CommandKind> {
    lookup(name).map(|s| match s.handler {
        Handler::Read(_) => CommandKind::Read,
        Handler::Write(_) => CommandKind::Write,
    })
}

/// Redis arity: `n` exactly, `-n` at least.
pub(crate) fn arity_ok(arity: i32, argc: usize) -> bool {
    let n = arity.unsigned_abs() as usize;
    if arity >= 0 {
        argc == n
    } else {
        argc >= n
    }
}

pub(crate) fn lookup(name: &[u8]) -> Option<&'static Spec> {
    SPECS
        .iter()
        .find(|s| name.eq_ignore_ascii_case(s.name.as_bytes()))
}

const fn r(name: &'static str, arity: i32, f: ReadFn) -> Spec {
    Spec {
        name,
        arity,
        handler: Handler::Read(f),
        denyoom: false,
    }
}

const fn w(name: &'static str, arity: i32, f: WriteFn) -> Spec {
    Spec {
        name,
        arity,
        handler: Handler::Write(f),
        denyoom: false,
    }
}

const fn wm(name: &'static str, arity: i32, f: WriteFn) -> Spec {
    Spec {
        name,
        arity,
        handler: Handler::Write(f),
        denyoom: true,
    }
}

static SPECS: &[Spec] = &[
    // strings
    r("get", 2, strings::get),
    wm("set", -3, strings::set),
    wm("setnx", 3, strings::setnx),
    wm("setex", 4, strings::setex),
    wm("psetex", 4, strings::psetex),
    w("getex", -2, strings::getex),
    w("getdel", 2, strings::getdel),
    wm("getset", 3, strings::getset),
    r("mget", -2, strings::mget),
    wm("mset", -3, strings::mset),
    wm("msetnx", -3, strings::msetnx),
    wm("incr", 2, strings::incr),
    wm("decr", 2, strings::decr),
    wm("incrby", 3, strings::incrby),
    wm("decrby", 3, strings::decrby),
    wm("incrbyfloat", 3, strings::incrbyfloat),
    wm("append", 3, strings::append),
    r("strlen", 2, strings::strlen),
    r("getrange", 4, strings::getrange),
    r("substr", 4, strings::getrange),
    wm("setrange", 4, strings::setrange),
    // keys
    w("del", -2, keys::del),
    w("unlink", -2, keys::del),
    r("exists", -2, keys::exists),
    r("type", 2, keys::type_),
    r("touch", -2, keys::exists),
    w("rename", 3, keys::rename),
    w("renamenx", 3, keys::renamenx),
    wm("copy", -3, keys::copy),
    w("move", 3, keys::move_),
    r("randomkey", 1, keys::randomkey),
    r("keys", 2, keys::keys),
    r("scan", -2, keys::scan),
    r("dbsize", 1, keys::dbsize),
    w("flushdb", -1, keys::flushdb),
    w("flushall", -1, keys::flushall),
    w("swapdb", 3, keys::swapdb),
    r("select", 2, keys::select),
    r("ping", -1, keys::ping),
    r("echo", 2, keys::echo),
    w("config", -2, super::evict::config),
    // expiry
    w("expire", -3, expiry::expire),
    w("pexpire", -3, expiry::pexpire),
    w("expireat", -3, expiry::expireat),
    w("pexpireat", -3, expiry::pexpireat),
    r("ttl", 2, expiry::ttl),
    r("pttl", 2, expiry::pttl),
    r("expiretime", 2, expiry::expiretime),
    r("pexpiretime", 2, expiry::pexpiretime),
    w("persist", 2, expiry::persist),
    // hashes
    wm("hset", -4, hashes::hset),
    wm("hmset", -4, hashes::hmset),
    wm("hsetnx", 4, hashes::hsetnx),
    r("hget", 3, hashes::hget),
    r("hmget", -3, hashes::hmget),
    r("hgetall", 2, hashes::hgetall),
    w("hdel", -3, hashes::hdel),
    r("hexists", 3, hashes::hexists),
    wm("hincrby", 4, hashes::hincrby),
    wm("hincrbyfloat", 4, hashes::hincrbyfloat),
    r("hlen", 2, hashes::hlen),
    r("hkeys", 2, hashes::hkeys),
    r("hvals", 2, hashes::hvals),
    r("hstrlen", 3, hashes::hstrlen),
    r("hscan", -3, hashes::hscan),
    r("hrandfield", -2, hashes::hrandfield),
];

/// Every interpreter command name (server table cross-check).
pub fn names() -> impl Iterator<Item = (&'static str, i32)> {
    SPECS.iter().map(|s| (s.name, s.arity))
}
