//! Redis 7.0 function libraries on the script VM (`FUNCTION LOAD`, `FCALL`):
//! the engine half of `function_lua.c`. The Lua half is `library.lua`.
//!
//! - Loading runs a library's code (after its `#!lua` line, the newline
//!   kept) as the chunk `@user_function` in the load environment, where
//!   only `redis.register_function`, `redis.log`, `redis.LOG_*` and
//!   `redis.REDIS_VERSION(_NUM)` exist; the registrations (name,
//!   description, flags) are the library. Error texts are Redis's:
//!   `Error compiling function: ...`, `Error registering functions: ...`.
//! - A call instantiates the library again (runs its chunk in the load
//!   environment) and calls the registered callback with `KEYS` and `ARGV`
//!   as its two arguments. Redis keeps one instance per library for its
//!   lifetime, so a library's upvalues carry state from call to call; that
//!   state would differ between replicas (a node that restarts or installs a
//!   snapshot starts it afresh, and reads run on other threads' VMs), so dkv
//!   gives every call a fresh instance: the one observable difference.
//!   Loading is deterministic (the load environment has nothing that varies),
//!   so every instance registers the same functions the load did.
//! - Loading and the instantiation before a call run under the execution
//!   budget ([`super::BUDGET_INSTRUCTIONS`]), like calls: Redis stops a load
//!   after 500 ms of wall clock, which would differ between replicas.
//!
//! No I/O; compiled chunks are cached per VM (not state, like EVAL's).

use bytes::Bytes;
use mlua::{Function, Table, Value};

use super::vm::Vm;

/// `scripts_flags_def` bits, in Redis's order (`FUNCTION LIST` shows them
/// in this order).
pub(crate) const FLAG_NAMES: [&str; 5] = [
    "no-writes",
    "allow-oom",
    "allow-stale",
    "no-cluster",
    "allow-cross-slot-keys",
];
/// `no-writes`.
pub(crate) const FLAG_NO_WRITES: u8 = 1;
/// `allow-oom`.
pub(crate) const FLAG_ALLOW_OOM: u8 = 2;

/// One function a library registered.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Registered {
    /// Its name (letters, digits, `_`).
    pub name: String,
    /// `description`, if given.
    pub description: Option<Bytes>,
    /// [`FLAG_NAMES`] bits.
    pub flags: u8,
}

/// The key under which a VM caches a library's compiled chunk.
fn chunk_key(sha: &str) -> String {
    format!("lib:{sha}")
}

impl Vm {
    /// The compiled chunk of a library whose code (after the shebang line)
    /// is `code` and whose sha is `sha`.
    fn library_chunk(&mut self, sha: &str, code: &[u8]) -> Result<Function, String> {
        let key = chunk_key(sha);
        if let Some(f) = self.cached_function(&key) {
            return Ok(f);
        }
        let globals: Table = self
            .internal()
            .raw_get("library_globals")
            .map_err(|e| format!("ERR {e}"))?;
        let f = super::vm::compile_as(
            self.lua(),
            &globals,
            code,
            "@user_function",
            "Error compiling function",
        )?;
        self.cache_function(key, f.clone());
        Ok(f)
    }

    /// Runs the library's chunk in the load environment under the budget:
    /// its registrations and callbacks, or the error text Redis gives.
    fn instantiate(
        &mut self,
        sha: &str,
        code: &[u8],
        max_steps: u64,
    ) -> Result<(Vec<Registered>, Table), String> {
        let chunk = self.library_chunk(sha, code)?;
        let instantiate: Function = self
            .internal()
            .raw_get("instantiate")
            .map_err(|e| format!("ERR {e}"))?;
        let result = self.with_budget(max_steps, || {
            instantiate.call::<(bool, Value, Value)>(chunk)
        });
        let (stopped, result) = result;
        if stopped {
            return Err(format!(
                "ERR Error registering functions: {}",
                super::BUDGET_ERROR
            ));
        }
        let (ok, first, second) = result.map_err(|e| format!("ERR {e}"))?;
        if !ok {
            return Err(format!(
                "ERR Error registering functions: {}",
                load_error_text(&first)
            ));
        }
        let (Value::Table(list), Value::Table(callbacks)) = (first, second) else {
            return Err("ERR Error registering functions: no registrations".into());
        };
        let mut registered = Vec::new();
        for entry in list.sequence_values::<Table>() {
            let entry = entry.map_err(|e| format!("ERR {e}"))?;
            let name: mlua::String = entry.raw_get(1).map_err(|e| format!("ERR {e}"))?;
            let description: Option<mlua::String> =
                entry.raw_get(2).map_err(|e| format!("ERR {e}"))?;
            let flags: u8 = entry.raw_get(3).map_err(|e| format!("ERR {e}"))?;
            registered.push(Registered {
                name: String::from_utf8_lossy(&name.as_bytes()).into_owned(),
                description: description.map(|d| Bytes::copy_from_slice(&d.as_bytes())),
                flags,
            });
        }
        Ok((registered, callbacks))
    }

    /// Loads a library (its code after the shebang line): the functions it
    /// registers, or Redis's error text.
    pub(crate) fn load_library(
        &mut self,
        sha: &str,
        code: &[u8],
        max_steps: u64,
    ) -> Result<Vec<Registered>, String> {
        self.instantiate(sha, code, max_steps).map(|(r, _)| r)
    }

    /// A fresh instance of the library's function `name`, bound to `keys`
    /// and `args` (what `FCALL` calls).
    pub(super) fn library_callback(
        &mut self,
        sha: &str,
        code: &[u8],
        name: &str,
        max_steps: u64,
    ) -> Result<Function, String> {
        let (_, callbacks) = self.instantiate(sha, code, max_steps)?;
        match callbacks.raw_get::<Value>(name) {
            Ok(Value::Function(f)) => Ok(f),
            _ => Err("ERR Function not found".into()),
        }
    }

    /// `f` called with `keys` and `args` (a function call's target).
    pub(super) fn bind_callback(
        &self,
        f: &Function,
        keys: Table,
        args: Table,
    ) -> mlua::Result<Function> {
        let bind: Function = self.internal().raw_get("bind")?;
        bind.call((f.clone(), keys, args))
    }
}

/// The message `luaExtractErrorInformation` takes from an error raised
/// while a library loads (no error handler runs then): an error table's
/// `err`, or `ERR ` and the text of a string error.
fn load_error_text(err: &Value) -> String {
    match err {
        Value::Table(t) => match t.raw_get::<Value>("err") {
            Ok(Value::String(s)) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
            Ok(Value::Integer(n)) => n.to_string(),
            Ok(Value::Number(n)) => super::convert::lua_number_text(n),
            _ => "(null)".into(),
        },
        Value::String(s) => format!("ERR {}", String::from_utf8_lossy(&s.as_bytes())),
        Value::Integer(n) => format!("ERR {n}"),
        Value::Number(n) => format!("ERR {}", super::convert::lua_number_text(*n)),
        Value::Error(e) => format!("ERR {e}"),
        _ => "(null)".into(),
    }
}
