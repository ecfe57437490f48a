//! `redis.call` / `redis.pcall` / `redis.acl_check_cmd`: a command from a
//! script, checked as Redis 7.0's `scriptCall` checks it (arity, `noscript`,
//! ACL, writes from read-only scripts, OOM before the first write) and run
//! through the command's own row (`crate::cmd`), in the script's database,
//! at the entry's time.

use std::cell::RefCell;

use bytes::Bytes;
use mlua::{Lua, MultiValue, Value};

use super::convert::{error_text, number_arg, output_to_lua};
use super::vm::RunState;
use super::{Access, BUDGET_ERROR};
use crate::cmd::{CommandSpec, Flags, Kind};
use crate::kv::{errors, Ctx, Output, DATABASES};

/// Commands Redis 7.0 flags `noscript`, by name (dkv's rows that exist and
/// some that do not yet, so a script gets Redis's text for them).
const NOSCRIPT: &[&str] = &[
    "multi",
    "exec",
    "discard",
    "watch",
    "unwatch",
    "wait",
    "quit",
    "reset",
    "hello",
    "auth",
    "client",
    "acl",
    "config",
    "debug",
    "eval",
    "evalsha",
    "eval_ro",
    "evalsha_ro",
    "script",
    "fcall",
    "fcall_ro",
    "function",
    "monitor",
    "sync",
    "psync",
    "shutdown",
    "save",
    "bgsave",
    "bgrewriteaof",
    "latency",
    "blpop",
    "brpop",
    "brpoplpush",
    "blmove",
    "bzpopmin",
    "bzpopmax",
    "subscribe",
    "psubscribe",
    "unsubscribe",
    "punsubscribe",
    "ssubscribe",
    "sunsubscribe",
    "failover",
    "replicaof",
    "slaveof",
    "role",
    "replconf",
];

const NOT_ALLOWED: &str = "ERR This Redis command is not allowed from script";

/// The arguments of a redis lib call (`luaArgsToRedisArgv`), or its error.
fn arguments(args: MultiValue) -> Result<Vec<Bytes>, &'static str> {
    if args.is_empty() {
        return Err("ERR Please specify at least one argument for this redis lib call");
    }
    let mut out = Vec::with_capacity(args.len());
    for arg in args {
        match arg {
            Value::String(s) => out.push(Bytes::copy_from_slice(&s.as_bytes())),
            Value::Number(n) => out.push(Bytes::from(number_arg(n))),
            Value::Integer(n) => out.push(Bytes::from(number_arg(n as f64))),
            _ => return Err("ERR Lua redis lib command arguments must be strings or integers"),
        }
    }
    Ok(out)
}

fn err_value(lua: &Lua, text: &str) -> mlua::Result<(bool, Value)> {
    let t = lua.create_table()?;
    t.raw_set("err", text)?;
    Ok((false, Value::Table(t)))
}

/// `redis.call(...)` / `redis.pcall(...)`: `(true, reply)` or `(false,
/// error table)` (the Lua side raises it for `redis.call`).
pub(crate) fn call(
    lua: &Lua,
    access: &mut Access<'_>,
    ctx: &Ctx,
    state: &RefCell<RunState>,
    args: MultiValue,
) -> mlua::Result<(bool, Value)> {
    if state.borrow().stopped {
        return err_value(lua, BUDGET_ERROR);
    }
    let args = match arguments(args) {
        Ok(args) => args,
        Err(text) => return err_value(lua, text),
    };
    let output = run_command(access, ctx, &mut state.borrow_mut(), &args);
    let resp3 = state.borrow().resp == 3;
    match output {
        Output::Error(text) => {
            let mut reply = b"-".to_vec();
            reply.extend_from_slice(text.as_bytes());
            err_value(lua, &error_text(&reply))
        }
        other => Ok((true, output_to_lua(lua, other, resp3)?)),
    }
}

/// A command from a script when no call is running (a callback kept past
/// its call): an error table, as for any refused command.
pub(crate) fn outside_call(lua: &Lua) -> mlua::Result<(bool, Value)> {
    err_value(lua, "ERR redis.call is only available while a script runs")
}

/// `redis.acl_check_cmd(...)`: `(true, allowed)` or `(false, error table)`.
pub(crate) fn acl_check(
    lua: &Lua,
    access: &Access<'_>,
    state: &RefCell<RunState>,
    args: MultiValue,
) -> mlua::Result<(bool, Value)> {
    let args = match arguments(args) {
        Ok(args) => args,
        Err(text) => return err_value(lua, text),
    };
    let Some((_, spec)) = crate::cmd::lookup(&args[0]) else {
        return err_value(lua, "ERR Invalid command passed to redis.acl_check_cmd()");
    };
    let allowed = acl_denied(access.db(), state.borrow().user.as_deref(), spec, &args).is_none();
    Ok((true, Value::Boolean(allowed)))
}

/// The NOPERM-style text when `user` may not run `args`; `None` when it may
/// (or when the script runs without a user).
fn acl_denied(
    db: &crate::kv::Db,
    user: Option<&str>,
    spec: &'static CommandSpec,
    args: &[Bytes],
) -> Option<&'static str> {
    let name = user?;
    let Some(user) = db.users.get(name.as_bytes()) else {
        return Some("can't run this command or subcommand");
    };
    let full_name = crate::server::command::command_label(spec, args);
    match crate::acl::check(user, spec, full_name, args) {
        Ok(()) => None,
        Err(crate::acl::Denied::Command(_)) => Some("can't run this command or subcommand"),
        Err(crate::acl::Denied::Key(_)) => {
            Some("can't access at least one of the keys mentioned in the command arguments")
        }
        Err(crate::acl::Denied::Channel(_)) => {
            Some("can't publish to the channel mentioned in the command")
        }
    }
}

/// Runs one command for a script; the output is what the command answers
/// (errors included, as outputs).
fn run_command(access: &mut Access<'_>, ctx: &Ctx, st: &mut RunState, args: &[Bytes]) -> Output {
    let Some((_, spec)) = crate::cmd::lookup(&args[0]) else {
        return Output::err("ERR Unknown Redis command called from script");
    };
    if !spec.arity_ok(args.len()) {
        return Output::err("ERR Wrong number of args calling Redis command from script");
    }
    if NOSCRIPT.contains(&spec.name) {
        return Output::err(NOT_ALLOWED);
    }
    if let Some(why) = acl_denied(access.db(), st.user.as_deref(), spec, args) {
        return Output::err(format!("ERR The user executing the script {why}"));
    }
    let is_write = matches!(spec.kind, Kind::Write { .. });
    if is_write && st.read_only {
        return Output::err("ERR Write commands are not allowed from read-only scripts.");
    }
    if is_write && !st.dirty && st.oom_at_start && spec.flags.contains(Flags::DENYOOM) {
        return Output::err(errors::OOM);
    }
    if matches!(spec.name, "xread" | "xreadgroup") {
        if let Err(refused) = crate::kv::streams::script_read_check(args) {
            return refused;
        }
    }
    st.calls += 1;
    match spec.kind {
        Kind::Write { run, .. } => {
            st.dirty = true;
            match access {
                Access::Write(db) => {
                    let sub = Ctx {
                        db: st.db,
                        now: ctx.now,
                        seed: db.mod_counter ^ ctx.now,
                    };
                    run(db, &sub, args)
                }
                // Read-only runs are always `read_only`: refused above.
                Access::Read(_) => {
                    Output::err("ERR Write commands are not allowed from read-only scripts.")
                }
            }
        }
        Kind::Read { run, .. } => {
            let db = access.db();
            let sub = Ctx {
                db: st.db,
                now: ctx.now,
                seed: crate::kv::mix(ctx.seed ^ st.calls),
            };
            run(db, &sub, args)
        }
        Kind::Server(_) => server_command(spec, ctx, st, args),
    }
}

/// The connection commands a script may run, answered here as the server
/// would, deterministically.
fn server_command(spec: &CommandSpec, ctx: &Ctx, st: &mut RunState, args: &[Bytes]) -> Output {
    match spec.name {
        "ping" => match args.len() {
            1 => Output::Status("PONG".into()),
            2 => Output::Bulk(Some(args[1].clone())),
            _ => Output::err("ERR wrong number of arguments for 'ping' command"),
        },
        "echo" => Output::Bulk(Some(args[1].clone())),
        "time" => Output::Array(vec![
            Output::bulk((ctx.now / 1000).to_string()),
            Output::bulk(((ctx.now % 1000) * 1000).to_string()),
        ]),
        "select" => match crate::kv::parse_i64(&args[1]) {
            None => Output::err(errors::NOT_INTEGER),
            Some(n) if n < 0 || n >= DATABASES as i64 => Output::err(errors::DB_RANGE),
            Some(n) => {
                st.db = n as usize;
                Output::Ok
            }
        },
        name => Output::err(format!(
            "ERR '{name}' is not available to scripts in dkv (only key-space commands, PING, ECHO, TIME and SELECT are)"
        )),
    }
}
