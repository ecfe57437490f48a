//! The scripting engine: Lua 5.1 (mlua's vendored 5.1.5, the release Redis
//! 7 embeds) with Redis 7.0's script environment, run deterministically at
//! apply (EVAL, EVALSHA) or on a read (EVAL_RO, EVALSHA_RO, `no-writes`).
//!
//! What a script sees, as on Redis 7.0.15:
//! - the globals Redis leaves (`type(x)` compared name by name: no `os`,
//!   `io`, `debug`, `print`, `dofile`, `loadfile`, `require`, `getfenv`,
//!   `setfenv`, `newproxy`), `KEYS`/`ARGV`, the `redis` table
//!   (`call/pcall/error_reply/status_reply/sha1hex/log/setresp/set_repl/
//!   replicate_commands/acl_check_cmd/breakpoint/debug`, `REDIS_VERSION`,
//!   `REDIS_VERSION_NUM`, `REPL_*`, `LOG_*`) and Redis's `pcall` (an error
//!   table comes back as its `err` text);
//! - the script as the function `f_<sha1>` of its body, compiled as chunk
//!   `@user_script` (after a `#!lua` line, whose newline is kept);
//! - protected globals: reading a missing global raises `Script attempted to
//!   access nonexistent global variable 'x'`, writing any global or any field
//!   of a library table raises `Attempt to modify a readonly table`;
//! - errors as Redis 7.0 words them: `<err> script: <sha>, on
//!   @user_script:<line>.` (positions found by the error handler, which
//!   skips the engine's own Lua frames so they equal Redis's).
//!
//! Emulations (Redis patches its Lua for read-only tables; dkv does not
//! patch C): library tables and the globals are empty proxies whose
//! metatables forward reads and refuse writes, and `rawset`,
//! `setmetatable`, `table.insert/remove/sort/setn` refuse them. Observable
//! differences: `pairs`/`next`/`rawget` on a library table or `_G` see
//! nothing, and `getmetatable(_G)` is an empty read-only table. `redis.call`
//! is a Rust (C) function as in Redis; the other `redis.*` helpers and
//! `math.random` are Lua functions in `prelude.lua`, so an error
//! they raise from a tail call (`return redis.sha1hex()`) is reported at
//! `=(tail call):-1` instead of the script's line (the same text otherwise).
//!
//! Determinism (everything a script observes is a function of the
//! replicated state and the entry):
//! - `math.random` is Redis's rand48 and, as in Redis 7.0, one stream runs
//!   across calls, starting where a fresh Redis starts: the numbers equal a
//!   fresh Redis's given the same calls. Its state is replicated (`Db`,
//!   snapshots): a call at apply draws from it and leaves it advanced, the
//!   same on every replica; a read-only call (EVAL_RO, `no-writes`) draws from
//!   a copy and leaves it as it was — where Redis would advance it, the one
//!   difference. `math.randomseed` seeds it as Redis does (and, in a call at
//!   apply, for the calls after it);
//! - `redis.call('TIME')` answers the entry's time (`ctx.now`);
//! - `collectgarbage` and `gcinfo` answer 0 and `tostring` of a table or
//!   function numbers objects in order of first print (`table: 0x00000001`)
//!   instead of showing addresses; `redis.log` writes nothing (kv does no
//!   I/O). Still address-dependent: the `pairs` order of tables keyed by
//!   tables or functions.
//! - The execution budget: [`BUDGET_INSTRUCTIONS`] Lua VM instructions per
//!   call, counted by a count hook every 10 000 instructions. A script that
//!   exceeds it is stopped at the same instruction on every replica with
//!   [`BUDGET_ERROR`]; `pcall`, `xpcall` and `coroutine.resume` cannot catch
//!   it. Writes it made before stay (no rollback, as a Redis script killed
//!   after writing would leave them).
//! - Memory: each VM may allocate [`vm::MEMORY_LIMIT_BYTES`]; reaching it is
//!   the one outcome that can differ between replicas (VMs of different
//!   ages hold different garbage) and is meant only as a safety net. The
//!   limit is enforced while the script's own code runs (and compiling, and
//!   the libraries); the engine's bookkeeping around it (KEYS, ARGV,
//!   `redis.call`'s arguments and replies) runs with it lifted, because mlua
//!   protects every API call while a limit is set, but its bytes are counted,
//!   so the script's next allocation over the limit fails (`vm::Unlimited`).
//!
//! VMs are per thread and not state (see [`vm`]); the script cache (sha →
//! body) is replicated state in `Db`.

mod convert;
mod dispatch;
pub(crate) mod library;
pub(crate) mod libs;
pub(crate) mod rand48;
pub(crate) mod shebang;
mod vm;
pub mod watch;

#[cfg(test)]
mod tests;

use bytes::Bytes;
use sha1::{Digest, Sha1};

use crate::kv::{Ctx, Db, Output};
pub(crate) use shebang::ScriptFlags;

/// Lua instructions one script call may run (counted in steps of 10 000).
pub const BUDGET_INSTRUCTIONS: u64 = 100_000_000;

/// The error of a script stopped by the execution budget.
pub const BUDGET_ERROR: &str =
    "ERR Script exceeded the execution budget of 100000000 Lua instructions and was stopped";

/// What `redis.REDIS_VERSION` says.
pub(crate) const REDIS_VERSION: &str = "7.0.15";
/// `redis.REDIS_VERSION_NUM` (`0x00MMmmpp`).
pub(crate) const REDIS_VERSION_NUM: i64 = 0x07_00_0f;

/// The map a script runs against: the apply path's (writes allowed) or a
/// read's.
pub(crate) enum Access<'a> {
    /// At apply.
    Write(&'a mut Db),
    /// On a read (EVAL_RO ...).
    Read(&'a Db),
}

impl Access<'_> {
    /// The map, for reading.
    pub(crate) fn db(&self) -> &Db {
        match self {
            Access::Write(db) => db,
            Access::Read(db) => db,
        }
    }
}

/// One script call.
pub(crate) struct ScriptCall<'a> {
    /// Lower-case hex sha1 of the whole body.
    pub sha: &'a str,
    /// The code after the shebang line (its newline kept).
    pub code: &'a [u8],
    /// KEYS.
    pub keys: &'a [Bytes],
    /// ARGV.
    pub args: &'a [Bytes],
    /// Write commands refused (EVAL_RO, `no-writes`).
    pub read_only: bool,
    /// The user whose permissions `redis.call` checks (`None`: none).
    pub user: Option<&'a str>,
    /// `FCALL`: the function's name. `code` is then its library's code
    /// (after the shebang line) and `sha` that code's sha; errors name the
    /// function instead of the sha.
    pub function: Option<&'a str>,
    /// EVAL or FCALL family (which kill command may stop it).
    pub kind: watch::CallKind,
}

impl ScriptCall<'_> {
    /// What errors call the script: its sha, or the function's name.
    pub(crate) fn label(&self) -> &str {
        self.function.unwrap_or(self.sha)
    }
}

/// The lower-case hex SHA-1 of `bytes` (script names, `redis.sha1hex`).
pub(crate) fn sha1_hex(bytes: &[u8]) -> String {
    let digest = Sha1::digest(bytes);
    let mut out = String::with_capacity(40);
    for b in digest {
        out.push_str(&format!("{b:02x}"));
    }
    out
}

/// The code Lua compiles: the body without its shebang line (its newline
/// kept, so line numbers stay the user's).
pub(crate) fn code_of(body: &[u8]) -> Result<(ScriptFlags, &[u8]), String> {
    let (flags, len) = shebang::parse(body).map_err(|e| format!("ERR {e}"))?;
    Ok((flags, &body[len..]))
}

/// Checks that `body` has a valid shebang and compiles: Redis's error text
/// otherwise.
pub(crate) fn check_body(body: &[u8]) -> Result<ScriptFlags, String> {
    let (flags, code) = code_of(body)?;
    vm::with_vm(|vm| vm.check_compiles(code))??;
    Ok(flags)
}

/// Loads a library (its code after the `#!lua` line): the functions it
/// registers, or Redis's error text (see [`library`]).
pub(crate) fn load_library(sha: &str, code: &[u8]) -> Result<Vec<library::Registered>, String> {
    vm::with_vm(|vm| vm.load_library(sha, code, BUDGET_INSTRUCTIONS / 10_000))?
}

/// Runs `call` with the production budget.
pub(crate) fn run(access: Access<'_>, ctx: &Ctx, call: &ScriptCall<'_>) -> Output {
    run_with_budget(access, ctx, call, BUDGET_INSTRUCTIONS)
}

/// Runs `call`, stopping it after about `budget` instructions.
pub(crate) fn run_with_budget(
    mut access: Access<'_>,
    ctx: &Ctx,
    call: &ScriptCall<'_>,
    budget: u64,
) -> Output {
    let steps = budget / 10_000;
    match vm::with_vm(|vm| vm.run(&mut access, ctx, call, steps)) {
        Ok(output) => output,
        Err(text) => Output::Error(text),
    }
}
