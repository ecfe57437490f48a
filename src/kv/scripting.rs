//! The scripting commands: `EVAL`, `EVALSHA` (writes: one log entry, the
//! script runs at apply on every replica), `EVAL_RO`, `EVALSHA_RO` (reads,
//! after the read barrier), and `SCRIPT LOAD|EXISTS|FLUSH|HELP` (LOAD and
//! FLUSH are log entries: the script cache is replicated state in `Db`).
//!
//! Invariants:
//! - What is answered before proposing (numkeys errors, a shebang error, a
//!   sha that is not 40 characters) is what apply would answer; everything
//!   that depends on the cache (NOSCRIPT) or on compiling is apply's.
//! - EVAL adds its body to the cache at apply, once it compiles; EVALSHA
//!   of an unknown sha answers `NOSCRIPT` at apply (the same everywhere).
//! - `EVAL` of a `#!lua flags=no-writes` script is served as a read by the
//!   server ([`runs_as_read`]). Redis caches the bodies of EVAL_RO and of
//!   such EVALs too; a read cannot change the replicated cache, so while a
//!   body is not cached the server proposes the call as a log entry, which
//!   caches it at apply ([`read_body_sha`], [`cache_read_body`]): one entry
//!   per script, then reads.
//! - A call served as a read checks `redis.call` against the caller's ACL
//!   user, as apply does with the user its entry carries.

use bytes::Bytes;

use super::script::{self, Access, ScriptCall};
use super::table::{Apply, Parse, Query};
use super::{Ctx, Db, Output};
use crate::acl::{Categories as C, KeyAccess};
use crate::cmd::cat::*;
use crate::cmd::{read, server, write, CommandSpec, Flags, SubcommandSpec, NO_KEYS};
use crate::kv::table::{typed_read, typed_write};
use crate::server::command::{Action, CommandError, Env, Session};
use crate::server::commands::connection::{help, missing_subcommand};
use crate::server::reply::Reply;

const NOSCRIPT: &str = "NOSCRIPT No matching script. Please use EVAL.";
const RO_WRITE_FLAG: &str = "ERR Can not execute a script with write flag using *_ro command.";

/// The arguments shared by the four EVAL forms.
struct EvalArgs {
    /// Body (EVAL) or sha (EVALSHA).
    script: Bytes,
    keys: Vec<Bytes>,
    args: Vec<Bytes>,
}

fn parse_eval(args: &[Bytes], by_sha: bool) -> Result<EvalArgs, Output> {
    if by_sha && args[1].len() != 40 {
        return Err(Output::err(NOSCRIPT));
    }
    let numkeys =
        super::parse_i64(&args[2]).ok_or_else(|| Output::err(super::errors::NOT_INTEGER))?;
    if numkeys > (args.len() - 3) as i64 {
        return Err(Output::err(
            "ERR Number of keys can't be greater than number of args",
        ));
    }
    if numkeys < 0 {
        return Err(Output::err("ERR Number of keys can't be negative"));
    }
    if !by_sha {
        script::code_of(&args[1]).map_err(Output::Error)?;
    }
    let split = 3 + numkeys as usize;
    Ok(EvalArgs {
        script: args[1].clone(),
        keys: args[3..split].to_vec(),
        args: args[split..].to_vec(),
    })
}

/// Runs a parsed EVAL/EVALSHA. `cache` adds an EVAL body to the cache
/// (apply only); `ro_command` is EVAL_RO/EVALSHA_RO.
fn run_eval(
    mut access: Access<'_>,
    ctx: &Ctx,
    e: &EvalArgs,
    by_sha: bool,
    ro_command: bool,
    user: Option<&str>,
) -> Output {
    let (sha, body) = if by_sha {
        let sha = String::from_utf8_lossy(&e.script).to_ascii_lowercase();
        match access.db().script(&sha) {
            Some(body) => (sha, body.clone()),
            None => return Output::err(NOSCRIPT),
        }
    } else {
        (script::sha1_hex(&e.script), e.script.clone())
    };
    let (flags, code) = match script::code_of(&body) {
        Ok(x) => x,
        Err(text) => return Output::Error(text),
    };
    // A script with a shebang and neither `allow-oom` nor `no-writes` is a
    // `denyoom` command in Redis 7.0: refused over maxmemory before it is
    // compiled or cached. A script without a shebang runs, and each of its
    // denyoom calls is refused instead (script/dispatch.rs).
    if let Access::Write(db) = &access {
        if !flags.compat && !flags.allow_oom && !flags.no_writes && db.out_of_memory() {
            return Output::err(super::errors::OOM);
        }
    }
    if !by_sha && access.db().script(&sha).is_none() {
        if let Err(text) = script::check_body(&body) {
            return Output::Error(text);
        }
        if let Access::Write(db) = &mut access {
            db.add_script(sha.clone(), body.clone());
        }
    }
    if ro_command && !flags.compat && !flags.no_writes {
        return Output::err(RO_WRITE_FLAG);
    }
    let read_only = ro_command || flags.no_writes || matches!(access, Access::Read(_));
    let call = ScriptCall {
        function: None,
        sha: &sha,
        code,
        keys: &e.keys,
        args: &e.args,
        read_only,
        user,
        kind: script::watch::CallKind::Eval,
    };
    script::run(access, ctx, &call)
}

/// `EVAL script numkeys [key ...] [arg ...]`.
pub(crate) struct Eval(EvalArgs);
/// `EVALSHA sha1 numkeys [key ...] [arg ...]`.
pub(crate) struct EvalSha(EvalArgs);
/// `EVAL_RO`.
pub(crate) struct EvalRo(EvalArgs);
/// `EVALSHA_RO`.
pub(crate) struct EvalShaRo(EvalArgs);

impl Parse<'_> for Eval {
    fn parse(args: &[Bytes]) -> Result<Self, Output> {
        parse_eval(args, false).map(Eval)
    }
}
impl Apply<'_> for Eval {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let user = db.script_user.0.clone();
        run_eval(
            Access::Write(db),
            ctx,
            &self.0,
            false,
            false,
            user.as_deref(),
        )
    }
}
impl Parse<'_> for EvalSha {
    fn parse(args: &[Bytes]) -> Result<Self, Output> {
        parse_eval(args, true).map(EvalSha)
    }
}
impl Apply<'_> for EvalSha {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let user = db.script_user.0.clone();
        run_eval(
            Access::Write(db),
            ctx,
            &self.0,
            true,
            false,
            user.as_deref(),
        )
    }
}
impl Parse<'_> for EvalRo {
    fn parse(args: &[Bytes]) -> Result<Self, Output> {
        parse_eval(args, false).map(EvalRo)
    }
}
impl Query<'_> for EvalRo {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        // At apply (proposed, or in MULTI): the entry's user.
        run_eval(
            Access::Read(db),
            ctx,
            &self.0,
            false,
            true,
            db.script_user.0.as_deref(),
        )
    }
}
impl Parse<'_> for EvalShaRo {
    fn parse(args: &[Bytes]) -> Result<Self, Output> {
        parse_eval(args, true).map(EvalShaRo)
    }
}
impl Query<'_> for EvalShaRo {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        run_eval(
            Access::Read(db),
            ctx,
            &self.0,
            true,
            true,
            db.script_user.0.as_deref(),
        )
    }
}

/// True when an accepted `EVAL` may be served as a read: its script
/// declares `#!lua flags=no-writes` (Redis then treats the call as
/// read-only too).
pub(crate) fn runs_as_read(name: &str, args: &[Bytes]) -> bool {
    name == "eval"
        && args.len() > 1
        && script::code_of(&args[1]).is_ok_and(|(flags, _)| flags.no_writes)
}

/// A script call served as a read (EVAL_RO, EVALSHA_RO, and an `EVAL` that
/// [`runs_as_read`]), its `redis.call`s checked against `user`'s
/// permissions as at apply.
pub(crate) fn read_call(db: &Db, ctx: &Ctx, args: &[Bytes], user: &str) -> Output {
    if args[0].eq_ignore_ascii_case(b"fcall") || args[0].eq_ignore_ascii_case(b"fcall_ro") {
        return super::functions::read_call(db, ctx, args, user);
    }
    let by_sha = args[0].eq_ignore_ascii_case(b"evalsha_ro");
    let ro_command = !args[0].eq_ignore_ascii_case(b"eval");
    match parse_eval(args, by_sha) {
        Ok(e) => run_eval(Access::Read(db), ctx, &e, by_sha, ro_command, Some(user)),
        Err(error) => error,
    }
}

/// The sha of the body a read script call would add to Redis's cache
/// (`EVAL_RO`, or an `EVAL` that [`runs_as_read`]); `None` for calls by sha.
/// The server proposes such a call as a log entry instead of a read while
/// the body is not cached, so the cache stays replicated state: once per
/// script, and every later call is a read.
pub(crate) fn read_body_sha(args: &[Bytes]) -> Option<String> {
    let by_body = args[0].eq_ignore_ascii_case(b"eval_ro") || args[0].eq_ignore_ascii_case(b"eval");
    (by_body && args.len() > 1).then(|| script::sha1_hex(&args[1]))
}

/// After an `EVAL_RO` ran at apply (proposed because its body was not
/// cached, or inside MULTI): caches the body if it compiles, as Redis
/// caches every EVAL_RO body.
pub(crate) fn cache_read_body(db: &mut Db, args: &[Bytes]) {
    if !args[0].eq_ignore_ascii_case(b"eval_ro") || args.len() < 2 {
        return;
    }
    let sha = script::sha1_hex(&args[1]);
    if db.script(&sha).is_none() && script::check_body(&args[1]).is_ok() {
        db.add_script(sha, args[1].clone());
    }
}

/// SCRIPT LOAD / FLUSH at apply (the log carries `SCRIPT LOAD body` and
/// `SCRIPT FLUSH`).
pub(crate) fn apply_script(db: &mut Db, args: &[Bytes]) -> Output {
    let sub = args.get(1).map(|s| s.to_ascii_lowercase());
    match (sub.as_deref(), args.len()) {
        (Some(b"load"), 3) => match script::check_body(&args[2]) {
            Ok(_) => {
                let sha = script::sha1_hex(&args[2]);
                db.add_script(sha.clone(), args[2].clone());
                Output::bulk(sha)
            }
            Err(text) => Output::Error(text),
        },
        (Some(b"flush"), 2 | 3) => {
            db.flush_scripts();
            Output::Ok
        }
        _ => Output::err("ERR unknown SCRIPT change"),
    }
}

fn script_load(s: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    if let Err(text) = script::check_body(&args[2]) {
        return Err(CommandError::Data(text));
    }
    Ok(Action::Write(crate::kv::Op::Exec {
        db: s.db,
        args: vec![
            Bytes::from_static(b"script"),
            Bytes::from_static(b"load"),
            args[2].clone(),
        ],
    }))
}

fn script_flush(s: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let mode_ok = args.len() == 2
        || (args.len() == 3
            && (args[2].eq_ignore_ascii_case(b"sync") || args[2].eq_ignore_ascii_case(b"async")));
    if !mode_ok {
        return Err(CommandError::Data(
            "ERR SCRIPT FLUSH only support SYNC|ASYNC option".into(),
        ));
    }
    Ok(Action::Write(crate::kv::Op::Exec {
        db: s.db,
        args: vec![Bytes::from_static(b"script"), Bytes::from_static(b"flush")],
    }))
}

fn script_exists(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let shas: Vec<String> = args[2..]
        .iter()
        .map(|s| String::from_utf8_lossy(s).to_ascii_lowercase())
        .collect();
    Ok(Action::Read(Box::new(move |map, _| {
        Reply::Array(
            shas.iter()
                .map(|sha| Reply::Integer(i64::from(map.script(sha).is_some())))
                .collect(),
        )
    })))
}

/// `SCRIPT KILL`: stops the EVAL-family calls running on this node that
/// cannot write (`node::scripts` says why a call that may write cannot be
/// killed).
fn script_kill(_: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    kill_calls(env, script::watch::CallKind::Eval)
}

/// SCRIPT KILL / FUNCTION KILL: stops this node's running call of `kind`
/// if it may be stopped; otherwise the monitor's refusal (NOTBUSY,
/// UNKILLABLE, the other family's BUSY).
pub(crate) fn kill_calls(
    env: &dyn Env,
    kind: script::watch::CallKind,
) -> Result<Action, CommandError> {
    let monitor = env
        .scripts()
        .ok_or_else(|| CommandError::Data(crate::node::scripts::NOTBUSY.into()))?;
    match monitor.kill(kind) {
        Ok(()) => Ok(Action::Reply(Reply::OK)),
        Err(text) => Err(CommandError::Data(text.into())),
    }
}

fn script_help(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    help(&[
        "SCRIPT <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "DEBUG (YES|SYNC|NO)",
        "    Set the debug mode for subsequent scripts executed.",
        "EXISTS <sha1> [<sha1> ...]",
        "    Return information about the existence of the scripts in the script cache.",
        "FLUSH [ASYNC|SYNC]",
        "    Flush the Lua scripts cache. Very dangerous on replicas.",
        "    When called without the optional mode argument, the behavior is determined by the",
        "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
        "    * ASYNC: Asynchronously flush the scripts cache.",
        "    * SYNC: Synchronously flush the scripts cache.",
        "KILL",
        "    Kill the currently executing Lua script.",
        "LOAD <script>",
        "    Load a script into the scripts cache without executing it.",
        "HELP",
        "    Prints this help.",
    ])
}

const SCRIPTING_SLOW: C = C::of(&[C::SLOW, C::SCRIPTING]);

static SCRIPT_SUBCOMMANDS: &[SubcommandSpec] = &[
    SubcommandSpec::new("exists", "script|exists", -3, script_exists, SCRIPTING_SLOW)
        .with_flags(Flags::NOSCRIPT)
        .doc("Check existence of scripts in the script cache.", "2.6.0", "O(N) with N being the number of scripts to check (so checking a single script is an O(1) operation)."),
    SubcommandSpec::new("flush", "script|flush", -2, script_flush, SCRIPTING_SLOW)
        .with_flags(Flags::NOSCRIPT)
        .doc("Remove all the scripts from the script cache.", "2.6.0", "O(N) with N being the number of scripts in cache"),
    SubcommandSpec::new("help", "script|help", 2, script_help, SCRIPTING_SLOW)
        .with_flags(Flags::LOADING.or(Flags::STALE))
        .doc("Show helpful text about the different subcommands", "5.0.0", "O(1)"),
    SubcommandSpec::new("kill", "script|kill", 2, script_kill, SCRIPTING_SLOW)
        .with_flags(Flags::NOSCRIPT.or(Flags::ALLOW_BUSY))
        .doc("Kill the script currently in execution.", "2.6.0", "O(1)"),
    SubcommandSpec::new("load", "script|load", 3, script_load, SCRIPTING_SLOW)
        .with_flags(Flags::NOSCRIPT.or(Flags::STALE))
        .doc("Load the specified Lua script into the script cache.", "2.6.0", "O(N) with N being the length in bytes of the script body."),
];

const EVAL_ACL: C = C::of(&[C::SLOW, C::SCRIPTING]);

/// Redis 7.0's flags of the four EVAL forms (`movablekeys` comes with the
/// `numkeys` key position; `readonly` with the `_RO` forms' read rows).
const EVAL_FLAGS: Flags = Flags::NOSCRIPT
    .or(Flags::STALE)
    .or(Flags::SKIP_MONITOR)
    .or(Flags::NO_MANDATORY_KEYS);

/// The scripting group's rows, as Redis 7.0.15's `COMMAND INFO` shows
/// them (arity -3, keys counted by the `numkeys` argument at 2).
pub(crate) static COMMANDS: &[CommandSpec] = &[
    write(
        "eval",
        -3,
        EVAL_FLAGS.or(Flags::WRITE_NOT_SHOWN),
        "@scripting",
        NO_KEYS,
        typed_write::<Eval>(),
    )
    .key_num(2)
    .acl(EVAL_ACL, (KA_RW, KA_RW))
    .doc(
        "Execute a Lua script server side",
        "2.6.0",
        "Depends on the script that is executed.",
    ),
    write(
        "evalsha",
        -3,
        EVAL_FLAGS.or(Flags::WRITE_NOT_SHOWN),
        "@scripting",
        NO_KEYS,
        typed_write::<EvalSha>(),
    )
    .key_num(2)
    .acl(EVAL_ACL, (KA_RW, KA_RW))
    .doc(
        "Execute a Lua script server side",
        "2.6.0",
        "Depends on the script that is executed.",
    ),
    read(
        "eval_ro",
        -3,
        EVAL_FLAGS,
        "@scripting",
        NO_KEYS,
        typed_read::<EvalRo>(),
    )
    .key_num(2)
    .acl(EVAL_ACL, (KA_R, KA_R))
    .doc(
        "Execute a read-only Lua script server side",
        "7.0.0",
        "Depends on the script that is executed.",
    ),
    read(
        "evalsha_ro",
        -3,
        EVAL_FLAGS,
        "@scripting",
        NO_KEYS,
        typed_read::<EvalShaRo>(),
    )
    .key_num(2)
    .acl(EVAL_ACL, (KA_R, KA_R))
    .doc(
        "Execute a read-only Lua script server side",
        "7.0.0",
        "Depends on the script that is executed.",
    ),
    server(
        "script",
        -2,
        Flags::NONE,
        "@scripting",
        NO_KEYS,
        missing_subcommand,
    )
    .subcommands(SCRIPT_SUBCOMMANDS)
    .acl(C::of(&[C::SLOW]), (KeyAccess::NONE, KeyAccess::NONE))
    .doc(
        "A container for Lua scripts management commands",
        "2.6.0",
        "Depends on subcommand.",
    ),
];
