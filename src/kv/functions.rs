//! Redis 7.0 functions: the library set (replicated state in `Db`, in
//! snapshots), `FUNCTION LOAD|DELETE|FLUSH|RESTORE` (log entries, applied on
//! every replica), `FUNCTION LIST|DUMP|STATS|HELP|KILL` (reads and local
//! replies), `FCALL` (a write: one log entry, run at apply everywhere) and
//! `FCALL_RO` (a read, like `EVAL_RO`). The engine half is
//! `kv::script::library`.
//!
//! Invariants:
//! - The log carries `FUNCTION LOAD [REPLACE] code`, `FUNCTION DELETE
//!   name`, `FUNCTION FLUSH` and `FUNCTION RESTORE payload policy`; apply
//!   decides every answer from the state and the arguments alone (a library
//!   loads deterministically: its load environment has nothing that
//!   varies), so every replica holds the same libraries.
//! - What the server answers before proposing (options, the `#!lua name=`
//!   line, the engine, a payload's checksum and framing) is what apply
//!   would answer first; the rest (a library that exists, compile and
//!   registration errors, name collisions) is apply's, in Redis's order.
//! - Libraries and their functions are listed in name order (Redis lists
//!   them in hash order, which differs from process to process). Function
//!   names are case-insensitive for `FCALL` and collisions between
//!   libraries, as in Redis.
//! - An `FCALL` of a `no-writes` function is served as a read when this
//!   node's applied libraries say the function has that flag
//!   ([`fcall_reads`]); otherwise it is proposed, and apply runs it.

use std::collections::BTreeMap;

use bytes::Bytes;
use serde::{Deserialize, Serialize};

use super::dump::{self, DumpError};
use super::script::library::{Registered, FLAG_ALLOW_OOM, FLAG_NAMES, FLAG_NO_WRITES};
use super::script::{self, Access, ScriptCall};
use super::table::{Apply, Parse, Query};
use super::{errors, Ctx, Db, Output};
use crate::acl::Categories as C;
use crate::cmd::cat::*;
use crate::cmd::{read, server, write, CommandSpec, Flags, SubcommandSpec, NO_KEYS};
use crate::kv::table::{typed_read, typed_write};
use crate::server::command::{Action, CommandError, Env, Session};
use crate::server::commands::connection::{help, missing_subcommand};
use crate::server::reply::Reply;

#[cfg(test)]
mod tests;

/// The one engine.
const ENGINE: &str = "LUA";
const NAME_RULES: &str = "ERR Library names can only contain letters, numbers, or underscores(_) and must be at least one character long";
/// `RDB_OPCODE_FUNCTION2`: one library's code follows.
const OPCODE_FUNCTION2: u8 = 245;
/// `RDB_OPCODE_FUNCTION`: Redis 7.0 rc1/rc2's form (name, engine,
/// description, code), read only.
const OPCODE_FUNCTION: u8 = 246;

/// One registered function.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct FunctionInfo {
    /// `description`, if given.
    pub description: Option<Bytes>,
    /// `FLAG_NAMES` bits.
    pub flags: u8,
}

/// One library.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct Library {
    /// Its name (from `#!lua name=`).
    pub name: String,
    /// The whole code as loaded, shebang line included.
    pub code: Bytes,
    /// Where the code Lua runs starts (the shebang line's newline).
    pub code_start: usize,
    /// sha1 of the code Lua runs (the VMs' cache key).
    pub sha: String,
    /// Function name → its registration, in name order.
    pub functions: BTreeMap<String, FunctionInfo>,
}

impl Library {
    fn bytes(&self) -> u64 {
        self.code.len() as u64 + self.name.len() as u64 + 64
    }
}

/// The libraries (replicated state).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct Libraries {
    libraries: BTreeMap<String, Library>,
    /// Lower-case function name → (library, function name).
    index: BTreeMap<String, (String, String)>,
}

impl Libraries {
    /// Rebuilds the set from its libraries (snapshot restore).
    pub(crate) fn from_list(list: Vec<Library>) -> Libraries {
        let mut out = Libraries::default();
        for library in list {
            out.link(library);
        }
        out
    }

    /// The libraries, in name order (snapshots).
    pub(crate) fn iter(&self) -> impl Iterator<Item = &Library> {
        self.libraries.values()
    }

    /// True when there is none.
    pub(crate) fn is_empty(&self) -> bool {
        self.libraries.is_empty()
    }

    /// Bytes counted in `used_memory`.
    pub(crate) fn bytes(&self) -> u64 {
        self.libraries.values().map(Library::bytes).sum()
    }

    /// The function `name` (case-insensitive) and its library.
    pub(crate) fn function(&self, name: &[u8]) -> Option<(&Library, &str, &FunctionInfo)> {
        let key = String::from_utf8_lossy(name).to_ascii_lowercase();
        let (library, function) = self.index.get(&key)?;
        let library = self.libraries.get(library)?;
        let (name, info) = library.functions.get_key_value(function)?;
        Some((library, name, info))
    }

    fn link(&mut self, library: Library) {
        for name in library.functions.keys() {
            self.index
                .entry(name.to_ascii_lowercase())
                .or_insert_with(|| (library.name.clone(), name.clone()));
        }
        self.libraries.insert(library.name.clone(), library);
    }

    fn unlink(&mut self, name: &str) -> Option<Library> {
        let library = self.libraries.remove(name)?;
        self.index.retain(|_, (owner, _)| owner != name);
        Some(library)
    }

    /// The first of `library`'s functions another library already has.
    fn collision(&self, library: &Library) -> Option<String> {
        library
            .functions
            .keys()
            .find(|name| self.index.contains_key(&name.to_ascii_lowercase()))
            .cloned()
    }

    /// `functionsCreateWithLibraryCtx`: loads `code` into the set (replacing
    /// a library of the same name when `replace`); its name, or Redis's
    /// error text.
    fn create(&mut self, code: &Bytes, replace: bool) -> Result<String, String> {
        let meta = metadata(code)?;
        if self.libraries.contains_key(&meta.name) && !replace {
            return Err(format!("ERR Library '{}' already exists", meta.name));
        }
        let lua_code = &code[meta.code_start..];
        let sha = script::sha1_hex(lua_code);
        let registered = script::load_library(&sha, lua_code)?;
        if registered.is_empty() {
            return Err("ERR No functions registered".into());
        }
        let library = Library {
            name: meta.name.clone(),
            code: code.clone(),
            code_start: meta.code_start,
            sha,
            functions: registered
                .into_iter()
                .map(
                    |Registered {
                         name,
                         description,
                         flags,
                     }| { (name, FunctionInfo { description, flags }) },
                )
                .collect(),
        };
        let old = self.unlink(&meta.name);
        if let Some(name) = self.collision(&library) {
            if let Some(old) = old {
                self.link(old);
            }
            return Err(format!("ERR Function {name} already exists"));
        }
        self.link(library);
        Ok(meta.name)
    }

    /// `libraryJoin`: adds `other`'s libraries; on a name clash, replaces
    /// when `replace`, else refuses. Nothing changes on an error.
    fn join(&mut self, other: Libraries, replace: bool) -> Result<(), String> {
        let mut merged = self.clone();
        for name in other.libraries.keys() {
            if merged.libraries.contains_key(name) {
                if !replace {
                    return Err(format!("ERR Library {name} already exists"));
                }
                merged.unlink(name);
            }
        }
        for library in other.libraries.values() {
            if let Some(name) = merged.collision(library) {
                return Err(format!("ERR Function {name} already exists"));
            }
        }
        for library in other.libraries.into_values() {
            merged.link(library);
        }
        *self = merged;
        Ok(())
    }

    /// `FUNCTION DUMP`'s payload: each library as `RDB_OPCODE_FUNCTION2`
    /// and its code as an RDB string, then the RDB version and CRC-64.
    pub(crate) fn dump(&self) -> Vec<u8> {
        let mut out = Vec::new();
        for library in self.libraries.values() {
            out.push(OPCODE_FUNCTION2);
            dump::put_string(&mut out, &library.code);
        }
        dump::seal(out)
    }
}

/// What `#!<engine> name=<name>` says (Redis's `functionExtractLibMetaData`,
/// then the name and engine checks).
struct Metadata {
    name: String,
    code_start: usize,
}

/// Parses and checks a library's first line: Redis's errors, in its order.
fn metadata(code: &[u8]) -> Result<Metadata, String> {
    if !code.starts_with(b"#!") {
        return Err("ERR Missing library metadata".into());
    }
    // Redis looks for the newline with strchr: not past a NUL.
    let text_end = code.iter().position(|&b| b == 0).unwrap_or(code.len());
    let Some(newline) = code[..text_end].iter().position(|&b| b == b'\n') else {
        return Err("ERR Invalid library metadata".into());
    };
    let parts = match crate::server::codec::split_inline(&code[..newline]) {
        Ok(parts) if !parts.is_empty() => parts,
        _ => return Err("ERR Invalid library metadata".into()),
    };
    let engine = parts[0].get(2..).unwrap_or_default();
    let mut name: Option<&[u8]> = None;
    for part in &parts[1..] {
        if part.len() >= 5 && part[..5].eq_ignore_ascii_case(b"name=") {
            if name.is_some() {
                return Err(
                    "ERR Invalid metadata value, name argument was given multiple times".into(),
                );
            }
            name = Some(&part[5..]);
            continue;
        }
        return Err(format!(
            "ERR Invalid metadata value given: {}",
            String::from_utf8_lossy(part)
        ));
    }
    let Some(name) = name else {
        return Err("ERR Library name was not given".into());
    };
    if !valid_name(name) {
        return Err(NAME_RULES.into());
    }
    if !engine.eq_ignore_ascii_case(ENGINE.as_bytes()) {
        return Err(format!(
            "ERR Engine '{}' not found",
            String::from_utf8_lossy(engine)
        ));
    }
    Ok(Metadata {
        name: String::from_utf8_lossy(name).into_owned(),
        code_start: newline,
    })
}

/// `functionsVerifyName`: letters, digits and `_`, at least one.
fn valid_name(name: &[u8]) -> bool {
    !name.is_empty() && name.iter().all(|&b| b.is_ascii_alphanumeric() || b == b'_')
}

/// The library codes a `FUNCTION RESTORE` payload holds (footer checked
/// first), or Redis's error text.
fn payload_codes(payload: &[u8]) -> Result<Vec<Bytes>, String> {
    let body = dump::verify(payload).map_err(|e: DumpError| e.to_string())?;
    let mut reader = dump::StringReader::new(body);
    let mut codes = Vec::new();
    while !reader.is_empty() {
        let Some(kind) = reader.byte() else {
            return Err("ERR can not read data type".into());
        };
        match kind {
            OPCODE_FUNCTION2 => match reader.string() {
                Some(code) => codes.push(code),
                None => return Err("ERR Failed loading library payload".into()),
            },
            OPCODE_FUNCTION => {
                let fail = |what: &str| format!("ERR Failed loading {what}");
                let name = reader.string().ok_or_else(|| fail("library name"))?;
                let engine = reader.string().ok_or_else(|| fail("engine name"))?;
                let has_description = reader
                    .len()
                    .ok_or_else(|| fail("library description indicator"))?;
                if has_description != 0 {
                    reader.string().ok_or_else(|| fail("library description"))?;
                }
                let blob = reader.string().ok_or_else(|| fail("library blob"))?;
                let mut code = b"#!".to_vec();
                code.extend_from_slice(&engine);
                code.extend_from_slice(b" name=");
                code.extend_from_slice(&name);
                code.push(b'\n');
                code.extend_from_slice(&blob);
                codes.push(Bytes::from(code));
            }
            _ => return Err("ERR given type is not a function".into()),
        }
    }
    Ok(codes)
}

/// How `FUNCTION RESTORE` treats the libraries there are.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Policy {
    Flush,
    Append,
    Replace,
}

fn policy(arg: Option<&Bytes>) -> Result<Policy, String> {
    let Some(arg) = arg else {
        return Ok(Policy::Append);
    };
    if arg.eq_ignore_ascii_case(b"append") {
        Ok(Policy::Append)
    } else if arg.eq_ignore_ascii_case(b"replace") {
        Ok(Policy::Replace)
    } else if arg.eq_ignore_ascii_case(b"flush") {
        Ok(Policy::Flush)
    } else {
        Err(
            "ERR Wrong restore policy given, value should be either FLUSH, APPEND or REPLACE."
                .into(),
        )
    }
}

// ---- apply ------------------------------------------------------------------

impl Db {
    /// Replaces the libraries (counted in `used_memory`).
    pub(crate) fn set_libraries(&mut self, libraries: Libraries) {
        self.used_bytes = self.used_bytes - self.functions.bytes() + libraries.bytes();
        self.functions = libraries;
    }

    /// Runs `change` on a copy of the libraries and keeps the copy.
    fn change_libraries<T>(&mut self, change: impl FnOnce(&mut Libraries) -> T) -> T {
        let mut libraries = self.functions.clone();
        let out = change(&mut libraries);
        self.set_libraries(libraries);
        out
    }
}

/// `FUNCTION LOAD|DELETE|FLUSH|RESTORE` at apply (the log's forms, see the
/// module docs).
pub(crate) fn apply_function(db: &mut Db, args: &[Bytes]) -> Output {
    let sub = args.get(1).map(|s| s.to_ascii_lowercase());
    match (sub.as_deref(), &args[2.min(args.len())..]) {
        (Some(b"load"), [code]) => load(db, code, false),
        (Some(b"load"), [_, code]) => load(db, code, true),
        (Some(b"delete"), [name]) => {
            let name = String::from_utf8_lossy(name);
            if !db.functions.libraries.contains_key(name.as_ref()) {
                return Output::err("ERR Library not found");
            }
            db.change_libraries(|l| l.unlink(&name));
            Output::Ok
        }
        (Some(b"flush"), []) => {
            db.set_libraries(Libraries::default());
            Output::Ok
        }
        (Some(b"restore"), [payload, rest @ ..]) if rest.len() <= 1 => {
            match restore(db, payload, rest.first()) {
                Ok(()) => Output::Ok,
                Err(text) => Output::Error(text),
            }
        }
        _ => Output::err("ERR unknown FUNCTION change"),
    }
}

fn load(db: &mut Db, code: &Bytes, replace: bool) -> Output {
    match db.change_libraries(|l| l.create(code, replace)) {
        Ok(name) => Output::bulk(name),
        Err(text) => Output::Error(text),
    }
}

fn restore(db: &mut Db, payload: &[u8], policy_arg: Option<&Bytes>) -> Result<(), String> {
    let policy = policy(policy_arg)?;
    let codes = payload_codes(payload)?;
    let mut loaded = Libraries::default();
    for code in &codes {
        loaded.create(code, false)?;
    }
    match policy {
        Policy::Flush => {
            db.set_libraries(loaded);
            Ok(())
        }
        Policy::Append | Policy::Replace => {
            db.change_libraries(|l| l.join(loaded, policy == Policy::Replace))
        }
    }
}

// ---- FCALL / FCALL_RO ---------------------------------------------------------

/// Runs `FCALL`/`FCALL_RO` (`ro`) with Redis's checks, in its order.
fn run_fcall(
    access: Access<'_>,
    ctx: &Ctx,
    args: &[Bytes],
    ro: bool,
    user: Option<&str>,
) -> Output {
    let Some((library, name, info)) = access.db().functions.function(&args[1]) else {
        return Output::err("ERR Function not found");
    };
    let (code, code_start, sha, name, flags) = (
        library.code.clone(),
        library.code_start,
        library.sha.clone(),
        name.to_string(),
        info.flags,
    );
    let no_writes = flags & FLAG_NO_WRITES != 0;
    // Redis refuses a function without `allow-oom` or `no-writes` as it
    // refuses any `denyoom` command, before running anything.
    if let Access::Write(db) = &access {
        if flags & (FLAG_ALLOW_OOM | FLAG_NO_WRITES) == 0 && db.out_of_memory() {
            return Output::err(errors::OOM);
        }
    }
    let Some(numkeys) = super::parse_i64(&args[2]) else {
        return Output::err("ERR Bad number of keys provided");
    };
    if numkeys > (args.len() - 3) as i64 {
        return Output::err("ERR Number of keys can't be greater than number of args");
    }
    if numkeys < 0 {
        return Output::err("ERR Number of keys can't be negative");
    }
    if !no_writes && ro {
        return Output::err("ERR Can not execute a script with write flag using *_ro command.");
    }
    let split = 3 + numkeys as usize;
    let read_only = ro || no_writes || matches!(access, Access::Read(_));
    let call = ScriptCall {
        sha: &sha,
        code: code.get(code_start..).unwrap_or_default(),
        keys: &args[3..split],
        args: &args[split..],
        read_only,
        user,
        function: Some(&name),
        kind: script::watch::CallKind::Function,
    };
    script::run(access, ctx, &call)
}

/// `FCALL function numkeys [key ...] [arg ...]`.
pub(crate) struct Fcall(Vec<Bytes>);
/// `FCALL_RO function numkeys [key ...] [arg ...]`.
pub(crate) struct FcallRo(Vec<Bytes>);

impl Parse<'_> for Fcall {
    fn parse(args: &[Bytes]) -> Result<Self, Output> {
        // Everything FCALL checks depends on the libraries: apply's.
        Ok(Fcall(args.to_vec()))
    }
}
impl Apply<'_> for Fcall {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let user = db.script_user.0.clone();
        run_fcall(Access::Write(db), ctx, &self.0, false, user.as_deref())
    }
}
impl Parse<'_> for FcallRo {
    fn parse(args: &[Bytes]) -> Result<Self, Output> {
        Ok(FcallRo(args.to_vec()))
    }
}
impl Query<'_> for FcallRo {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        // At apply (inside MULTI): the entry's user.
        run_fcall(
            Access::Read(db),
            ctx,
            &self.0,
            true,
            db.script_user.0.as_deref(),
        )
    }
}

/// True when an `FCALL` may be served as a read: `db`'s function `name`
/// has the `no-writes` flag.
pub(crate) fn fcall_reads(db: &Db, name: &[u8]) -> bool {
    db.functions
        .function(name)
        .is_some_and(|(_, _, info)| info.flags & FLAG_NO_WRITES != 0)
}

/// An `FCALL` or `FCALL_RO` served as a read, its `redis.call`s checked
/// against `user`. (An `FCALL` whose function lost `no-writes` between the
/// server's check and this read runs read-only: a write it tries fails.)
pub(crate) fn read_call(db: &Db, ctx: &Ctx, args: &[Bytes], user: &str) -> Output {
    let ro = args[0].eq_ignore_ascii_case(b"fcall_ro");
    run_fcall(Access::Read(db), ctx, args, ro, Some(user))
}

// ---- the FUNCTION command ------------------------------------------------------

fn function_op(s: &Session, args: Vec<Bytes>) -> Action {
    let mut full = vec![Bytes::from_static(b"function")];
    full.extend(args);
    Action::Write(crate::kv::Op::Exec {
        db: s.db,
        args: full,
    })
}

fn syntax_error(sub: &str) -> CommandError {
    CommandError::Data(format!(
        "ERR unknown subcommand or wrong number of arguments for '{sub}'. Try FUNCTION HELP."
    ))
}

fn function_load(s: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let mut replace = false;
    let mut at = 2;
    while at < args.len() - 1 {
        let arg = &args[at];
        at += 1;
        if arg.eq_ignore_ascii_case(b"replace") {
            replace = true;
            continue;
        }
        return Err(CommandError::Data(format!(
            "ERR Unknown option given: {}",
            String::from_utf8_lossy(arg)
        )));
    }
    let code = args[at].clone();
    metadata(&code).map_err(CommandError::Data)?;
    let mut log = vec![Bytes::from_static(b"load")];
    if replace {
        log.push(Bytes::from_static(b"replace"));
    }
    log.push(code);
    Ok(function_op(s, log))
}

fn function_delete(s: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    Ok(function_op(
        s,
        vec![Bytes::from_static(b"delete"), args[2].clone()],
    ))
}

fn function_flush(s: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    if args.len() > 3 {
        return Err(syntax_error("flush"));
    }
    let mode_ok = args.len() == 2
        || args[2].eq_ignore_ascii_case(b"sync")
        || args[2].eq_ignore_ascii_case(b"async");
    if !mode_ok {
        return Err(CommandError::Data(
            "ERR FUNCTION FLUSH only supports SYNC|ASYNC option".into(),
        ));
    }
    Ok(function_op(s, vec![Bytes::from_static(b"flush")]))
}

fn function_restore(s: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    if args.len() > 4 {
        return Err(syntax_error("restore"));
    }
    policy(args.get(3)).map_err(CommandError::Data)?;
    payload_codes(&args[2]).map_err(CommandError::Data)?;
    Ok(function_op(s, args[1..].to_vec()))
}

fn function_list(_: &mut Session, _: &dyn Env, args: &[Bytes]) -> Result<Action, CommandError> {
    let mut with_code = false;
    let mut pattern: Option<Bytes> = None;
    let mut i = 2;
    while i < args.len() {
        let arg = &args[i];
        if !with_code && arg.eq_ignore_ascii_case(b"withcode") {
            with_code = true;
        } else if pattern.is_none() && arg.eq_ignore_ascii_case(b"libraryname") {
            if i >= args.len() - 1 {
                return Err(CommandError::Data(
                    "ERR library name argument was not given".into(),
                ));
            }
            i += 1;
            pattern = Some(args[i].clone());
        } else {
            return Err(CommandError::Data(format!(
                "ERR Unknown argument {}",
                String::from_utf8_lossy(arg)
            )));
        }
        i += 1;
    }
    Ok(Action::Read(Box::new(move |map, _| {
        list_reply(&map.functions, pattern.as_deref(), with_code)
    })))
}

/// `FUNCTION LIST`'s reply.
fn list_reply(libraries: &Libraries, pattern: Option<&[u8]>, with_code: bool) -> Reply {
    let text = |s: &str| Reply::bulk_str(s);
    let mut out = Vec::new();
    for library in libraries.libraries.values() {
        if pattern.is_some_and(|p| !super::glob::matches(p, library.name.as_bytes(), true)) {
            continue;
        }
        let functions = library
            .functions
            .iter()
            .map(|(name, info)| {
                let flags = FLAG_NAMES
                    .iter()
                    .enumerate()
                    .filter(|(bit, _)| info.flags & (1 << bit) != 0)
                    .map(|(_, name)| Reply::Simple(name))
                    .collect();
                Reply::Map(vec![
                    (text("name"), text(name)),
                    (
                        text("description"),
                        info.description.clone().map_or(Reply::Null, Reply::Bulk),
                    ),
                    (text("flags"), Reply::Set(flags)),
                ])
            })
            .collect();
        let mut fields = vec![
            (text("library_name"), text(&library.name)),
            (text("engine"), text(ENGINE)),
            (text("functions"), Reply::Array(functions)),
        ];
        if with_code {
            fields.push((text("library_code"), Reply::Bulk(library.code.clone())));
        }
        out.push(Reply::Map(fields));
    }
    Reply::Array(out)
}

fn function_dump(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Read(Box::new(|map, _| {
        Reply::Bulk(Bytes::from(map.functions.dump()))
    })))
}

fn function_stats(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    Ok(Action::Read(Box::new(|map, _| {
        let libraries = &map.functions.libraries;
        let functions: usize = libraries.values().map(|l| l.functions.len()).sum();
        let text = |s: &str| Reply::bulk_str(s);
        // A call runs inside one apply or read, so no other client ever
        // sees one running: `running_script` is always nil.
        Reply::Map(vec![
            (text("running_script"), Reply::Null),
            (
                text("engines"),
                Reply::Map(vec![(
                    text(ENGINE),
                    Reply::Map(vec![
                        (
                            text("libraries_count"),
                            Reply::Integer(libraries.len() as i64),
                        ),
                        (text("functions_count"), Reply::Integer(functions as i64)),
                    ]),
                )]),
            ),
        ])
    })))
}

fn function_kill(_: &mut Session, env: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    crate::kv::scripting::kill_calls(env, script::watch::CallKind::Function)
}

fn function_help(_: &mut Session, _: &dyn Env, _: &[Bytes]) -> Result<Action, CommandError> {
    help(&[
        "FUNCTION <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
        "LOAD [REPLACE] <FUNCTION CODE>",
        "    Create a new library with the given library name and code.",
        "DELETE <LIBRARY NAME>",
        "    Delete the given library.",
        "LIST [LIBRARYNAME PATTERN] [WITHCODE]",
        "    Return general information on all the libraries:",
        "    * Library name",
        "    * The engine used to run the Library",
        "    * Library description",
        "    * Functions list",
        "    * Library code (if WITHCODE is given)",
        "    It also possible to get only function that matches a pattern using LIBRARYNAME argument.",
        "STATS",
        "    Return information about the current function running:",
        "    * Function name",
        "    * Command used to run the function",
        "    * Duration in MS that the function is running",
        "    If no function is running, return nil",
        "    In addition, returns a list of available engines.",
        "KILL",
        "    Kill the current running function.",
        "FLUSH [ASYNC|SYNC]",
        "    Delete all the libraries.",
        "    When called without the optional mode argument, the behavior is determined by the",
        "    lazyfree-lazy-user-flush configuration directive. Valid modes are:",
        "    * ASYNC: Asynchronously flush the libraries.",
        "    * SYNC: Synchronously flush the libraries.",
        "DUMP",
        "    Return a serialized payload representing the current libraries, can be restored using FUNCTION RESTORE command",
        "RESTORE <PAYLOAD> [FLUSH|APPEND|REPLACE]",
        "    Restore the libraries represented by the given payload, it is possible to give a restore policy to",
        "    control how to handle existing libraries (default APPEND):",
        "    * FLUSH: delete all existing libraries.",
        "    * APPEND: appends the restored libraries to the existing libraries. On collision, abort.",
        "    * REPLACE: appends the restored libraries to the existing libraries, On collision, replace the old",
        "      libraries with the new libraries (notice that even on this option there is a chance of failure",
        "      in case of functions name collision with another library).",
        "HELP",
        "    Prints this help.",
    ])
}

const SCRIPTING_SLOW: C = C::of(&[C::SLOW, C::SCRIPTING]);
const WRITE_SCRIPTING_SLOW: C = C::of(&[C::WRITE, C::SLOW, C::SCRIPTING]);

const fn sub(
    name: &'static str,
    full_name: &'static str,
    arity: i32,
    handler: crate::server::command::Handler,
    acl_categories: C,
    flags: Flags,
) -> SubcommandSpec {
    SubcommandSpec::new(name, full_name, arity, handler, acl_categories).with_flags(flags)
}

static FUNCTION_SUBCOMMANDS: &[SubcommandSpec] = &[
    sub(
        "kill",
        "function|kill",
        2,
        function_kill,
        SCRIPTING_SLOW,
        Flags::NOSCRIPT.or(Flags::ALLOW_BUSY),
    )
    .doc("Kill the function currently in execution.", "7.0.0", "O(1)"),
    sub(
        "stats",
        "function|stats",
        2,
        function_stats,
        SCRIPTING_SLOW,
        Flags::NOSCRIPT.or(Flags::ALLOW_BUSY),
    )
    .doc(
        "Return information about the function currently running (name, description, duration)",
        "7.0.0",
        "O(1)",
    ),
    sub(
        "dump",
        "function|dump",
        2,
        function_dump,
        SCRIPTING_SLOW,
        Flags::NONE,
    )
    .doc(
        "Dump all functions into a serialized binary payload",
        "7.0.0",
        "O(N) where N is the number of functions",
    ),
    sub(
        "delete",
        "function|delete",
        3,
        function_delete,
        WRITE_SCRIPTING_SLOW,
        Flags::WRITE,
    )
    .doc("Delete a function by name", "7.0.0", "O(1)"),
    sub(
        "flush",
        "function|flush",
        -2,
        function_flush,
        WRITE_SCRIPTING_SLOW,
        Flags::WRITE,
    )
    .doc(
        "Deleting all functions",
        "7.0.0",
        "O(N) where N is the number of functions deleted",
    ),
    sub(
        "load",
        "function|load",
        -3,
        function_load,
        WRITE_SCRIPTING_SLOW,
        Flags::WRITE.or(Flags::DENYOOM),
    )
    .doc(
        "Create a function with the given arguments (name, code, description)",
        "7.0.0",
        "O(1) (considering compilation time is redundant)",
    ),
    sub(
        "list",
        "function|list",
        -2,
        function_list,
        SCRIPTING_SLOW,
        Flags::NONE,
    )
    .doc(
        "List information about all the functions",
        "7.0.0",
        "O(N) where N is the number of functions",
    ),
    sub(
        "restore",
        "function|restore",
        -3,
        function_restore,
        WRITE_SCRIPTING_SLOW,
        Flags::WRITE.or(Flags::DENYOOM),
    )
    .doc(
        "Restore all the functions on the given payload",
        "7.0.0",
        "O(N) where N is the number of functions on the payload",
    ),
    sub(
        "help",
        "function|help",
        2,
        function_help,
        SCRIPTING_SLOW,
        Flags::LOADING,
    )
    .doc(
        "Show helpful text about the different subcommands",
        "7.0.0",
        "O(1)",
    ),
];

const FCALL_ACL: C = C::of(&[C::SLOW, C::SCRIPTING]);

/// The function group's rows, as Redis 7.0.15's `COMMAND INFO` shows them
/// (FCALL's keys counted by the `numkeys` argument at 2).
pub(crate) static COMMANDS: &[CommandSpec] = &[
    write(
        "fcall",
        -3,
        F_NONE,
        "@scripting",
        NO_KEYS,
        typed_write::<Fcall>(),
    )
    .key_num(2)
    .acl(FCALL_ACL, (KA_RW, KA_RW))
    .doc(
        "Invoke a function",
        "7.0.0",
        "Depends on the function that is executed.",
    ),
    read(
        "fcall_ro",
        -3,
        F_NONE,
        "@scripting",
        NO_KEYS,
        typed_read::<FcallRo>(),
    )
    .key_num(2)
    .acl(FCALL_ACL, (KA_R, KA_R))
    .doc(
        "Invoke a read-only function",
        "7.0.0",
        "Depends on the function that is executed.",
    ),
    server(
        "function",
        -2,
        Flags::NONE,
        "@scripting",
        NO_KEYS,
        missing_subcommand,
    )
    .subcommands(FUNCTION_SUBCOMMANDS)
    .acl(C::of(&[C::SLOW]), (KA_NONE, KA_NONE))
    .doc(
        "A container for function commands",
        "7.0.0",
        "Depends on subcommand.",
    ),
];
