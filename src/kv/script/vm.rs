//! One Lua 5.1 VM set up as Redis 7.0 sets up its scripting VM, and the
//! run of one script call on it (see the module docs of `kv::script` for
//! the rules it keeps).
//!
//! A VM lives in a `thread_local!` (mlua's `Lua` is neither `Send` nor
//! `Sync`): apply and reads each use their thread's VM. Compiled script
//! functions are cached per VM by sha; nothing else survives a call.

use std::cell::{Cell, RefCell};
use std::collections::HashMap;
use std::ptr::NonNull;
use std::rc::Rc;

use mlua::{Function, HookTriggers, Lua, LuaOptions, MultiValue, StdLib, Table, Value, VmState};

use super::convert::{error_text, lua_to_output};
use super::rand48::Rand48;
use super::watch::{CallInfo, Poll, WatchSlot, KILLED_ERROR};
use super::{dispatch, Access, ScriptCall};
use crate::kv::{Ctx, Output};

/// Lua instructions between two calls of the budget hook.
const HOOK_EVERY: u32 = 10_000;

/// Memory one VM may allocate (node-local safety net, far above what a
/// sane script uses; see the module docs of `kv::script`).
pub(crate) const MEMORY_LIMIT_BYTES: usize = 512 * 1024 * 1024;

/// The VM's memory limit lifted while it lives, restored on drop.
///
/// mlua runs every API call (`create_string`, `raw_set`, pushing a string
/// argument ...) inside its own `lua_pcall`, with a fresh C closure, while a
/// memory limit is set, so that a failed allocation raises a catchable error
/// instead of aborting; without a limit it calls the Lua API directly. Those
/// protected calls were most of a small script's cost. The engine's own
/// bookkeeping around a call (KEYS and ARGV, the sha lookup, `redis.call`'s
/// arguments and reply) allocates only what the request or the keyspace
/// already holds, so it runs unlimited; the script's own Lua code, compiling
/// and the libraries (`cjson` ...) run under [`MEMORY_LIMIT_BYTES`]. The
/// allocator counts every byte either way: memory taken while the limit is
/// lifted counts toward it, and the script's next allocation over the limit
/// fails.
pub(super) struct Unlimited<'a> {
    lua: &'a Lua,
    before: usize,
}

impl<'a> Unlimited<'a> {
    /// Lifts the limit of `lua`'s VM until the guard drops.
    pub(super) fn new(lua: &'a Lua) -> Self {
        Self::set(lua, 0)
    }

    /// Puts the limit back until the guard drops (around the script's own
    /// code, inside an unlimited stretch).
    fn limited(lua: &'a Lua) -> Self {
        Self::set(lua, MEMORY_LIMIT_BYTES)
    }

    fn set(lua: &'a Lua, limit: usize) -> Self {
        let before = lua.set_memory_limit(limit).unwrap_or(MEMORY_LIMIT_BYTES);
        Unlimited { lua, before }
    }
}

impl Drop for Unlimited<'_> {
    fn drop(&mut self) {
        let _ = self.lua.set_memory_limit(self.before);
    }
}

/// Compiled functions a VM keeps before it drops them all (not state:
/// only a cache).
const MAX_CACHED_FUNCTIONS: usize = 1024;

/// The globals Redis 7.0.15 leaves to scripts besides the libraries.
const KEPT_GLOBALS: &[&str] = &[
    "xpcall",
    "tostring",
    "setmetatable",
    "next",
    "assert",
    "tonumber",
    "rawequal",
    "collectgarbage",
    "getmetatable",
    "rawset",
    "pcall",
    "coroutine",
    "type",
    "select",
    "unpack",
    "gcinfo",
    "pairs",
    "rawget",
    "loadstring",
    "ipairs",
    "_VERSION",
    "load",
    "error",
];

/// The library tables made read-only (the four of `libs` included once
/// they are opened).
const LIBRARIES: &[&str] = &[
    "string",
    "math",
    "table",
    "coroutine",
    "cjson",
    "bit",
    "cmsgpack",
    "struct",
];

/// What one call can change while it runs (shared with the VM's Rust
/// functions).
#[derive(Debug)]
pub(crate) struct RunState {
    /// `redis.setresp`: 2 or 3.
    pub resp: u8,
    /// `math.random`'s generator.
    pub rand: Rand48,
    /// The database `redis.call` runs in (SELECT inside the script).
    pub db: usize,
    /// A write command ran.
    pub dirty: bool,
    /// Write commands are refused (EVAL_RO, `no-writes`).
    pub read_only: bool,
    /// The map was over `maxmemory` when the script started.
    pub oom_at_start: bool,
    /// The execution budget ran out: every later instruction raises.
    pub stopped: bool,
    /// SCRIPT KILL / FUNCTION KILL stopped the call: every later hook call
    /// raises (only a call that cannot write is ever killed).
    pub killed: bool,
    /// The node's watch (empty in tests).
    pub watch: WatchSlot,
    /// This call's token there.
    pub token: u64,
    /// Hook calls so far.
    pub steps: u64,
    /// Hook calls allowed.
    pub max_steps: u64,
    /// Commands run so far (mixed into reads' seeds).
    pub calls: u64,
    /// The user the script runs as (`None`: no ACL check).
    pub user: Option<String>,
    /// The keyspace and context of the call in progress, for `redis.call`
    /// (`None` outside a call, and while a command of the call runs).
    active: Option<Active>,
}

/// What `redis.call` runs against: the running call's access to the map and
/// its context.
///
/// The VM's Rust functions are made once, with the VM, and live as long as
/// it does, so they cannot borrow the map of one call; mlua's scoped
/// functions can, but making and destroying one per call (a userdata, a
/// closure, and a second Lua-to-Rust crossing per `redis.call`) was a third
/// of a small script's cost. `run_function` puts a pointer to its `Access`
/// here for the length of the script's run and takes it out before it
/// returns (on every path, a guard's drop included), and only
/// [`with_active`] reads it.
#[derive(Debug)]
struct Active {
    access: NonNull<Access<'static>>,
    ctx: Ctx,
}

/// Runs `f` on the access of the call in progress; `None` outside a call.
///
/// The pointer is taken out of the run state while `f` runs, so a nested
/// `redis.call` (none can happen: every scripting command is `noscript`)
/// would find no call rather than a second mutable reference.
fn with_active<R>(
    state: &RefCell<RunState>,
    f: impl for<'b> FnOnce(&mut Access<'b>, &Ctx) -> R,
) -> Option<R> {
    let active = state.borrow_mut().active.take()?;
    let mut access = active.access;
    // SAFETY: `run_function` stored this pointer from a `&mut Access` it
    // holds, unused, for as long as the pointer is in the run state, and
    // takes it out before that borrow ends (`ActiveGuard`). It was taken
    // out above, so this is the only reference made from it until it is put
    // back; `f` is generic over the lifetime and cannot keep it.
    let result = f(unsafe { access.as_mut() }, &active.ctx);
    state.borrow_mut().active = Some(active);
    Some(result)
}

/// Takes the running call's access out of the run state when dropped.
struct ActiveGuard<'a>(&'a RefCell<RunState>);

impl Drop for ActiveGuard<'_> {
    fn drop(&mut self) {
        self.0.borrow_mut().active = None;
    }
}

impl RunState {
    fn idle() -> RunState {
        RunState {
            resp: 2,
            rand: Rand48::START,
            db: 0,
            dirty: false,
            read_only: false,
            oom_at_start: false,
            stopped: false,
            killed: false,
            watch: WatchSlot::default(),
            token: 0,
            steps: 0,
            max_steps: u64::MAX,
            calls: 0,
            user: None,
            active: None,
        }
    }
}

/// A VM ready to run scripts.
pub(crate) struct Vm {
    lua: Lua,
    state: Rc<RefCell<RunState>>,
    /// The real globals (KEYS and ARGV are set here).
    real: Table,
    /// The read-only view (every script function's environment).
    view: Table,
    /// The engine's functions (`I` in the Lua files).
    internal: Table,
    /// sha → compiled function.
    functions: HashMap<String, Function>,
    xpcall: Function,
    handler: Function,
    /// `I.reset_ids`.
    reset_ids: Function,
    /// A call handed out `tostring` ids: reset them before the next one.
    ids_handed_out: Rc<Cell<bool>>,
    /// The names `KEYS` and `ARGV`, made once.
    keys_name: mlua::String,
    argv_name: mlua::String,
}

thread_local! {
    static VM: RefCell<Option<Vm>> = const { RefCell::new(None) };
}

/// Runs `f` on this thread's VM (created on first use).
pub(crate) fn with_vm<R>(f: impl FnOnce(&mut Vm) -> R) -> Result<R, String> {
    VM.with(|cell| {
        let mut slot = cell
            .try_borrow_mut()
            .map_err(|_| "ERR a script is already running on this thread".to_string())?;
        if slot.is_none() {
            *slot = Some(Vm::new().map_err(|e| format!("ERR cannot start the Lua VM: {e}"))?);
        }
        match slot.as_mut() {
            Some(vm) => Ok(f(vm)),
            None => Err("ERR cannot start the Lua VM".into()),
        }
    })
}

/// Opens the four libraries Redis scripts use (`cjson`, `cmsgpack`,
/// `bit`, `struct`, written in `kv::script::libs`), in Redis's order. Each
/// sets its global table before the globals are locked.
fn open_libraries(lua: &Lua) -> mlua::Result<()> {
    super::libs::cjson::open(lua)?;
    super::libs::structlib::open(lua)?;
    super::libs::cmsgpack::open(lua)?;
    super::libs::bit::open(lua)
}

impl Vm {
    fn new() -> mlua::Result<Vm> {
        let libs = StdLib::TABLE | StdLib::STRING | StdLib::MATH;
        let lua = Lua::new_with(libs, LuaOptions::new())?;
        lua.set_memory_limit(MEMORY_LIMIT_BYTES)?;
        open_libraries(&lua)?;
        let state = Rc::new(RefCell::new(RunState::idle()));
        let real = lua.globals();
        // Drop what Redis 7.0.15 does not leave to scripts.
        let mut names = Vec::new();
        for pair in real.clone().pairs::<Value, Value>() {
            let (name, _) = pair?;
            if let Value::String(s) = &name {
                let s = s.to_str()?.to_string();
                if !KEPT_GLOBALS.contains(&s.as_str()) && !LIBRARIES.contains(&s.as_str()) {
                    names.push(s);
                }
            }
        }
        for name in names {
            real.raw_set(name, Value::Nil)?;
        }
        let view = lua.create_table()?;
        let internal = lua.create_table()?;
        Vm::register_internal(&lua, &internal, &state)?;
        let ids_handed_out = Rc::new(Cell::new(false));
        let handed = Rc::clone(&ids_handed_out);
        internal.raw_set(
            "ids_handed_out",
            lua.create_function(move |_, ()| {
                handed.set(true);
                Ok(())
            })?,
        )?;
        let handler = Vm::error_handler(&lua)?;
        real.raw_set("__redis__err__handler", handler.clone())?;
        let xpcall: Function = real.raw_get("xpcall")?;
        lua.load(include_str!("prelude.lua"))
            .set_name("=dkv")
            .set_environment(real.clone())
            .call::<()>((real.clone(), view.clone(), internal.clone()))?;
        lua.load(include_str!("library.lua"))
            .set_name("=dkv")
            .set_environment(real.clone())
            .call::<()>((real.clone(), internal.clone()))?;
        lua.set_globals(view.clone())?;
        let hook_state = Rc::clone(&state);
        lua.set_global_hook(
            HookTriggers::new().every_nth_instruction(HOOK_EVERY),
            move |_, _| {
                let mut st = hook_state.borrow_mut();
                st.steps += 1;
                if st.steps > st.max_steps {
                    st.stopped = true;
                }
                if st.stopped {
                    return Err(mlua::Error::runtime(super::BUDGET_ERROR));
                }
                if !st.killed {
                    if let Some(watch) = &st.watch.0 {
                        st.killed = watch.poll(st.token, st.dirty) == Poll::Kill;
                    }
                }
                if st.killed {
                    // An error table, so the handler adds the script's
                    // position, as Redis reports a killed script.
                    return Err(mlua::Error::external(RaisedError(KILLED_ERROR.into())));
                }
                Ok(VmState::Continue)
            },
        )?;
        Ok(Vm {
            functions: HashMap::new(),
            reset_ids: internal.raw_get("reset_ids")?,
            ids_handed_out,
            keys_name: lua.create_string("KEYS")?,
            argv_name: lua.create_string("ARGV")?,
            lua,
            state,
            real,
            view,
            internal,
            xpcall,
            handler,
        })
    }

    fn register_internal(
        lua: &Lua,
        internal: &Table,
        state: &Rc<RefCell<RunState>>,
    ) -> mlua::Result<()> {
        let st = Rc::clone(state);
        internal.raw_set(
            "stopped",
            // A killed call is stopped too: nothing may catch its error.
            lua.create_function(move |_, ()| {
                let st = st.borrow();
                Ok(st.stopped || st.killed)
            })?,
        )?;
        let st = Rc::clone(state);
        internal.raw_set(
            "draw",
            lua.create_function(move |_, ()| Ok(st.borrow_mut().rand.next_unit()))?,
        )?;
        let st = Rc::clone(state);
        internal.raw_set(
            "seed",
            lua.create_function(move |_, seed: f64| {
                // The C cast Redis applies (`luaL_checkint`), the value
                // already truncated by the Lua side.
                st.borrow_mut().rand = Rand48::seeded(seed as i64 as i32);
                Ok(())
            })?,
        )?;
        let st = Rc::clone(state);
        internal.raw_set(
            "setresp",
            lua.create_function(move |_, resp: f64| {
                st.borrow_mut().resp = if resp == 3.0 { 3 } else { 2 };
                Ok(())
            })?,
        )?;
        internal.raw_set(
            "error_text",
            lua.create_function(|_, text: mlua::String| Ok(error_text(&text.as_bytes())))?,
        )?;
        internal.raw_set(
            "sha1",
            lua.create_function(|_, text: mlua::String| Ok(super::sha1_hex(&text.as_bytes())))?,
        )?;
        internal.raw_set("version", super::REDIS_VERSION)?;
        internal.raw_set("version_num", super::REDIS_VERSION_NUM)?;
        // `redis.call`: the reply, or the error table raised.
        let st = Rc::clone(state);
        internal.raw_set(
            "call",
            lua.create_function(move |lua, args: MultiValue| {
                let _free = Unlimited::new(lua);
                let (ok, value) = dispatch_active(lua, &st, true, args)?;
                if ok {
                    return Ok(value);
                }
                let text = match &value {
                    Value::Table(t) => t.raw_get::<String>("err").unwrap_or_default(),
                    _ => String::new(),
                };
                Err(mlua::Error::external(RaisedError(text)))
            })?,
        )?;
        // `I.dispatch(true, ...)` runs a command (`redis.pcall`),
        // `I.dispatch(false, ...)` is `redis.acl_check_cmd`: `(ok, value)`.
        let st = Rc::clone(state);
        internal.raw_set(
            "dispatch",
            lua.create_function(move |lua, mut args: MultiValue| {
                let _free = Unlimited::new(lua);
                let run = !matches!(args.pop_front(), Some(Value::Boolean(false)));
                dispatch_active(lua, &st, run, args)
            })?,
        )?;
        internal.raw_set(
            "unwrap",
            lua.create_function(|lua, err: Value| raised_table(lua, err))?,
        )?;
        let libraries = lua.create_sequence_from(LIBRARIES.iter().copied())?;
        internal.raw_set("libraries", libraries)?;
        Ok(())
    }

    /// Redis's `__redis__err__handler`: turns the error into a table with
    /// `err`, and `source`/`line` of the script position that raised it
    /// (the caller's when a C function raised it). Frames of the engine's
    /// own Lua code (chunk `=dkv`) and the C functions it calls are
    /// skipped, so positions are those Redis reports.
    fn error_handler(lua: &Lua) -> mlua::Result<Function> {
        lua.create_function(|lua, err: Value| {
            let err = match raised_table(lua, err.clone())? {
                Value::Table(t) => Value::Table(t),
                _ => err,
            };
            let table = match err {
                Value::Table(t) => t,
                other => {
                    let text = lua_tostring(lua, &other)?;
                    let t = lua.create_table()?;
                    let mut msg = b"ERR ".to_vec();
                    msg.extend_from_slice(&text);
                    t.raw_set("err", lua.create_string(&msg)?)?;
                    t
                }
            };
            let mut frames = Vec::new();
            for level in 1..200 {
                let frame = lua.inspect_stack(level, |d| {
                    let s = d.source();
                    (
                        s.what.to_string(),
                        s.source.map(|x| x.into_owned()),
                        d.current_line(),
                    )
                });
                match frame {
                    Some(f) => frames.push(f),
                    None => break,
                }
            }
            let internal =
                |f: &(String, Option<String>, Option<usize>)| f.1.as_deref() == Some("=dkv");
            let mut visible = Vec::new();
            for (i, frame) in frames.iter().enumerate() {
                if internal(frame) {
                    continue;
                }
                if frame.0 == "C" && frames.get(i + 1).is_some_and(internal) {
                    continue;
                }
                visible.push(frame);
            }
            let mut at = visible.first().copied();
            if at.is_some_and(|f| f.0 == "C") {
                at = visible.get(1).copied();
            }
            if let Some((_, source, line)) = at {
                if let Some(source) = source {
                    table.raw_set("source", source.as_str())?;
                }
                table.raw_set("line", line.map_or(-1, |l| l as i64))?;
            }
            Ok(table)
        })
    }

    /// The compiled function of `sha`, compiling `code` (the body after its
    /// shebang line) when this VM does not have it yet.
    fn function(&mut self, sha: &str, code: &[u8]) -> Result<Function, String> {
        if let Some(f) = self.cached_function(sha) {
            return Ok(f);
        }
        let f = compile(&self.lua, &self.view, code)?;
        self.cache_function(sha.to_string(), f.clone());
        Ok(f)
    }

    /// The compiled function kept under `key`.
    pub(super) fn cached_function(&self, key: &str) -> Option<Function> {
        self.functions.get(key).cloned()
    }

    /// Keeps a compiled function under `key` (dropping them all when full).
    pub(super) fn cache_function(&mut self, key: String, f: Function) {
        if self.functions.len() >= MAX_CACHED_FUNCTIONS {
            self.functions.clear();
        }
        self.functions.insert(key, f);
    }

    /// The Lua state.
    pub(super) fn lua(&self) -> &Lua {
        &self.lua
    }

    /// The engine's functions (`I` in the Lua files).
    pub(super) fn internal(&self) -> &Table {
        &self.internal
    }

    /// Runs `f` outside a call with a budget of `max_steps` hook calls;
    /// whether the budget stopped it, and its result. The run state is idle
    /// again after.
    pub(super) fn with_budget<R>(&mut self, max_steps: u64, f: impl FnOnce() -> R) -> (bool, R) {
        {
            let mut st = self.state.borrow_mut();
            *st = RunState::idle();
            st.max_steps = max_steps;
        }
        let result = f();
        let stopped = self.state.borrow().stopped;
        *self.state.borrow_mut() = RunState::idle();
        (stopped, result)
    }

    /// Compiles `code` (no caching): Redis's compile error text on failure.
    pub(crate) fn check_compiles(&self, code: &[u8]) -> Result<(), String> {
        compile(&self.lua, &self.view, code).map(drop)
    }

    /// Runs one script call: the output is the client's reply.
    pub(crate) fn run(
        &mut self,
        access: &mut Access<'_>,
        ctx: &Ctx,
        call: &ScriptCall<'_>,
        max_steps: u64,
    ) -> Output {
        let function = match call.function {
            Some(name) => self.library_callback(call.sha, call.code, name, max_steps),
            None => self.function(call.sha, call.code),
        };
        let function = match function {
            Ok(f) => f,
            Err(text) => return Output::Error(text),
        };
        // Only a call whose outcome changes nothing but its own reply may
        // be killed: one that cannot write and runs on a read (at apply,
        // even a read-only call moves the replicated `math.random` stream).
        let killable = call.read_only && matches!(access, Access::Read(_));
        let watch = access.db().script_watch.clone();
        let token = watch.0.as_ref().map_or(0, |watch| {
            watch.start(CallInfo {
                kind: call.kind,
                killable,
            })
        });
        {
            let mut st = self.state.borrow_mut();
            *st = RunState::idle();
            st.watch = watch.clone();
            st.token = token;
            st.db = ctx.db;
            st.rand = access.db().script_rand;
            st.read_only = call.read_only;
            st.oom_at_start = access.db().out_of_memory();
            st.max_steps = max_steps;
            st.user = call.user.map(str::to_string);
        }
        let result = self.run_function(access, ctx, call, &function);
        let (stopped, killed, rand) = {
            let st = self.state.borrow();
            (st.stopped, st.killed, st.rand)
        };
        *self.state.borrow_mut() = RunState::idle();
        if let Some(watch) = &watch.0 {
            watch.end(token);
        }
        // The stream moves on only at apply: a read's draws were from a copy.
        if let Access::Write(db) = access {
            db.script_rand = rand;
        }
        // A script stopped by the budget answers the budget error, however
        // its error travelled (through pcall, error handlers ...).
        if stopped {
            return Output::err(format!("{} script: {}", super::BUDGET_ERROR, call.label()));
        }
        let output = match result {
            Ok(output) => output,
            Err(e) => Output::err(format!("ERR Error running script {}, {e}", call.label())),
        };
        // A killed call answers the kill error even if it caught it
        // (`pcall`) and returned before the next hook call raised it again.
        let reports_kill = matches!(&output, Output::Error(text) if text.starts_with(KILLED_ERROR));
        if killed && !reports_kill {
            return Output::err(format!("{KILLED_ERROR} script: {}", call.label()));
        }
        output
    }

    fn run_function(
        &mut self,
        access: &mut Access<'_>,
        ctx: &Ctx,
        call: &ScriptCall<'_>,
        function: &Function,
    ) -> mlua::Result<Output> {
        let lua = &self.lua;
        let _free = Unlimited::new(lua);
        let keys = string_array(lua, call.keys)?;
        let argv = string_array(lua, call.args)?;
        // EVAL: KEYS and ARGV are globals; a function gets them as its
        // two arguments.
        let function = match call.function {
            Some(_) => self.bind_callback(function, keys, argv)?,
            None => {
                self.real.raw_set(&self.keys_name, keys)?;
                self.real.raw_set(&self.argv_name, argv)?;
                function.clone()
            }
        };
        if self.ids_handed_out.replace(false) {
            self.reset_ids.call::<()>(())?;
        }
        let output = {
            let _active = ActiveGuard(&self.state);
            self.state.borrow_mut().active = Some(Active {
                access: NonNull::from(access).cast::<Access<'static>>(),
                ctx: *ctx,
            });
            let values = {
                let _limited = Unlimited::limited(lua);
                self.xpcall
                    .call::<MultiValue>((function, self.handler.clone()))
            };
            // No early return: KEYS and ARGV are cleared below on every path.
            values.map(|values| {
                let mut values = values.into_iter();
                let ok = matches!(values.next(), Some(Value::Boolean(true)));
                let value = values.next().unwrap_or(Value::Nil);
                let resp3 = self.state.borrow().resp == 3;
                if ok {
                    lua_to_output(&value, resp3)
                } else {
                    script_error(lua, &value, call.label())
                }
            })
        };
        self.real.raw_set(&self.keys_name, Value::Nil)?;
        self.real.raw_set(&self.argv_name, Value::Nil)?;
        output
    }
}

/// A Lua array of `items` as strings (KEYS, ARGV).
///
/// Run with the memory limit lifted ([`Unlimited`]): mlua then pushes a
/// `&str` straight onto the Lua stack while any other byte string first
/// becomes a registry reference. Arguments are nearly always UTF-8, so those
/// take the direct push; any other goes the general way, to the same Lua
/// strings.
fn string_array<B: AsRef<[u8]>>(lua: &Lua, items: &[B]) -> mlua::Result<Table> {
    fn text<B: AsRef<[u8]>>(item: &B) -> Result<&str, std::str::Utf8Error> {
        std::str::from_utf8(item.as_ref())
    }
    if items.iter().all(|item| text(item).is_ok()) {
        // Checked just above: never the default.
        lua.create_sequence_from(items.iter().map(|item| text(item).unwrap_or_default()))
    } else {
        lua.create_sequence_from(
            items
                .iter()
                .map(|item| lua.create_string(item.as_ref()))
                .collect::<mlua::Result<Vec<_>>>()?,
        )
    }
}

/// `I.dispatch` for the call in progress: `run` a command
/// (`redis.call`/`pcall`) or check one (`redis.acl_check_cmd`); with no
/// call running, an error table (`dispatch::outside_call`).
fn dispatch_active(
    lua: &Lua,
    state: &RefCell<RunState>,
    run: bool,
    args: MultiValue,
) -> mlua::Result<(bool, Value)> {
    let result = with_active(state, |access, ctx| {
        if run {
            dispatch::call(lua, access, ctx, state, args)
        } else {
            dispatch::acl_check(lua, access, state, args)
        }
    });
    result.unwrap_or_else(|| dispatch::outside_call(lua))
}

/// An error table raised by a Rust function (`redis.call`): its `err` text.
#[derive(Debug)]
struct RaisedError(String);

impl std::fmt::Display for RaisedError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for RaisedError {}

/// The error table for an error a Rust function raised (`{err = text}`),
/// or the value unchanged.
fn raised_table(lua: &Lua, err: Value) -> mlua::Result<Value> {
    if let Value::Error(e) = &err {
        if let Some(raised) = e.chain().find_map(|c| c.downcast_ref::<RaisedError>()) {
            let t = lua.create_table()?;
            t.raw_set("err", raised.0.as_str())?;
            return Ok(Value::Table(t));
        }
    }
    Ok(err)
}

/// Compiles `code` as the chunk `@user_script` with the read-only globals.
fn compile(lua: &Lua, view: &Table, code: &[u8]) -> Result<Function, String> {
    compile_as(
        lua,
        view,
        code,
        "@user_script",
        "Error compiling script (new function)",
    )
}

/// Compiles `code` as the chunk `name` with the globals `env`; on failure
/// `ERR <what>: <Lua's message>`.
pub(super) fn compile_as(
    lua: &Lua,
    env: &Table,
    code: &[u8],
    name: &str,
    what: &str,
) -> Result<Function, String> {
    lua.load(code)
        .set_name(name)
        .set_mode(mlua::ChunkMode::Text)
        .set_environment(env.clone())
        .into_function()
        .map_err(|e| {
            let message = match e {
                mlua::Error::SyntaxError { message, .. } => message,
                mlua::Error::MemoryError(m) => m,
                other => other.to_string(),
            };
            format!("ERR {what}: {message}")
        })
}

/// Lua's `tostring` of a value (`lua_tolstring` for strings and numbers).
fn lua_tostring(lua: &Lua, value: &Value) -> mlua::Result<Vec<u8>> {
    if let Value::String(s) = value {
        return Ok(s.as_bytes().to_vec());
    }
    let s: mlua::String = lua
        .coerce_string(value.clone())?
        .map_or_else(|| lua.create_string(value.type_name()), Ok)?;
    Ok(s.as_bytes().to_vec())
}

/// The reply for a script that raised `err` (the handler's table):
/// Redis 7.0's `<err> script: <sha>, on <source>:<line>.`.
fn script_error(lua: &Lua, err: &Value, sha: &str) -> Output {
    let _ = lua;
    let Value::Table(t) = err else {
        let text = match err {
            Value::String(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
            _ => "execution failure".into(),
        };
        let text: String = text.chars().take(100).collect();
        return Output::err(format!("ERR Error running script {sha}, {text} "));
    };
    let field = |name: &str| -> Option<String> {
        match t.raw_get::<Value>(name).ok()? {
            Value::String(s) => Some(String::from_utf8_lossy(&s.as_bytes()).into_owned()),
            Value::Integer(i) => Some(i.to_string()),
            Value::Number(n) => Some(super::convert::lua_number_text(n)),
            _ => None,
        }
    };
    let msg = field("err").unwrap_or_default();
    let mut text = msg;
    if let (Some(source), Some(line)) = (field("source"), field("line")) {
        text.push_str(&format!(" script: {sha}, on {source}:{line}."));
    }
    Output::Error(text.replace(['\r', '\n'], " "))
}
