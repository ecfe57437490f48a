//! The four C libraries Redis 7.0 loads into its Lua environment — `cjson`,
//! `cmsgpack`, `bit` and `struct` — written in Rust on mlua, with the same
//! global tables, function names, results and error texts as Redis 7.0.15
//! (whose `deps/lua/src/lua_*.c` were read for behaviour).
//!
//! Each library module exposes `open(lua)`, which sets its global table. This
//! module owns what they share:
//!
//! - **How errors are raised.** A Rust callback in mlua raises its errors as
//!   userdata, without the `chunk:line:` position `luaL_error` adds, and a
//!   `pcall` in a script would see a userdata instead of a string. So every
//!   library function is a small C closure ([`trampoline`]) around its Rust
//!   body: the body returns `true, results...` or a failure description, and
//!   the closure raises the failure exactly as the C library would — a
//!   `luaL_error` (the caller's `chunk:line:` prefix, then the message) or a
//!   `luaL_argerror` (`bad argument #N to 'name' (msg)`, the name taken from
//!   the call site as Lua does). Since the closure is a C function, a tail
//!   call to it keeps the caller's frame, as with the C libraries.
//! - **Lua's coercions** as the C API does them: `lua_tonumber` (strings that
//!   look like numbers count), `lua_tolstring` (numbers become `%.14g` text),
//!   and the x86-64 conversions of doubles to integers (`cvttsd2si`: NaN and
//!   out-of-range values become `i64::MIN`).
//! - `%.<p>g` formatting ([`fmt_g`]) and a `strtod` that accepts what glibc's
//!   accepts ([`strtod`]), for `cjson`.
//!
//! - **Many results and deep tables.** mlua keeps each live handle (`Value`
//!   of a string, table, function) in a slot of an auxiliary Lua stack of
//!   about 8000 slots, and a Rust callback cannot return as many values as a
//!   C function may. So bodies that can return thousands of values pack them
//!   in a table ([`wrap_packed`]), which the trampoline unpacks, and the
//!   decoders keep their open tables in a Lua table rather than in handles.
//!   A call with thousands of string or table arguments still needs one
//!   handle each for mlua's argument list (Redis's own limits stop most such
//!   calls earlier: `cmsgpack.pack` refuses more than 4000 arguments).
//!
//! Invariants: no body panics or raises a Rust error on any input (bad input
//! is a Lua error with Redis's text); no body allocates more than a small
//! multiple of its input or output size (lengths read from input are checked
//! against the input before anything is allocated); nothing depends on the
//! process (no randomness, no clock, no hash order): the same calls give the
//! same results and the same tables (same insertion order) on every replica.

pub(crate) mod bit;
pub(crate) mod cjson;
pub(crate) mod cmsgpack;
pub(crate) mod structlib;

use std::ffi::c_int;

use mlua::{ffi, Function, Lua, MultiValue, Table, Value};

/// How a library function failed, raised by [`trampoline`] as the C library
/// would raise it.
#[derive(Debug)]
pub(crate) enum Fail {
    /// `luaL_error(msg)`: the message after the caller's `chunk:line: `.
    Error(Vec<u8>),
    /// `luaL_argerror(narg, msg)`: `bad argument #narg to 'name' (msg)`.
    Arg(i32, Vec<u8>),
    /// An error raised by the Lua core from inside a C function, which has
    /// no position prefix (`memory allocation error: block too big`).
    Raw(Vec<u8>),
}

impl Fail {
    /// A `luaL_error` with this text.
    pub(crate) fn error(msg: impl Into<Vec<u8>>) -> Fail {
        Fail::Error(msg.into())
    }

    /// A `luaL_argerror` for argument `narg`.
    pub(crate) fn arg(narg: i32, msg: impl Into<Vec<u8>>) -> Fail {
        Fail::Arg(narg, msg.into())
    }
}

/// The outcome of a library function body.
pub(crate) type Outcome = Result<Vec<Value>, Fail>;

/// The most values a C function may have on its Lua stack (Lua 5.1's
/// `LUAI_MAXCSTACK`); `lua_checkstack` refuses to grow past it.
pub(crate) const MAX_C_STACK: usize = 8000;

/// Results beyond this many go back to the trampoline in a table.
const MANY_RESULTS: usize = 32;

/// The C side of every library function: calls the Rust body (upvalue 1) with
/// all arguments and either returns its results or raises its failure the way
/// `luaL_error`/`luaL_argerror` do.
///
/// The body's first result says which: `true` (the rest are the results),
/// a table (the results, as many as the second value says: used when there
/// are many, since a Rust callback cannot return as many values as a C
/// function can), `false` (the second is a `luaL_error` message), a number
/// (an argument index; the second is the `luaL_argerror` message) or nil
/// (the second is raised as it is).
unsafe extern "C-unwind" fn trampoline(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua as a C closure with one upvalue, the body (see
    // `wrap`). Only Lua API calls are made here, no Rust value with a
    // destructor is alive when one of them raises (longjmp), and the body
    // always returns at least two values when it reports a failure.
    unsafe {
        let nargs = ffi::lua_gettop(state);
        ffi::lua_pushvalue(state, ffi::lua_upvalueindex(1));
        ffi::lua_insert(state, 1);
        ffi::lua_call(state, nargs, ffi::LUA_MULTRET);
        let nresults = ffi::lua_gettop(state);
        if ffi::lua_type(state, 1) == ffi::LUA_TTABLE {
            let n = ffi::lua_tointeger(state, 2) as c_int;
            ffi::lua_settop(state, 1);
            if ffi::lua_checkstack(state, n) == 0 {
                ffi::luaL_where(state, 1);
                ffi::lua_pushstring(state, c"stack overflow".as_ptr());
                ffi::lua_concat(state, 2);
                ffi::lua_error(state)
            }
            for i in 1..=n {
                ffi::lua_rawgeti(state, 1, i.into());
            }
            return n;
        }
        if ffi::lua_type(state, 1) == ffi::LUA_TBOOLEAN {
            if ffi::lua_toboolean(state, 1) != 0 {
                ffi::lua_remove(state, 1);
                return nresults - 1;
            }
            ffi::luaL_where(state, 1);
            ffi::lua_pushvalue(state, 2);
            ffi::lua_concat(state, 2);
            ffi::lua_error(state)
        }
        if ffi::lua_type(state, 1) == ffi::LUA_TNIL {
            ffi::lua_pushvalue(state, 2);
            ffi::lua_error(state)
        }
        let narg = ffi::lua_tointeger(state, 1) as c_int;
        let msg = ffi::lua_tolstring(state, 2, std::ptr::null_mut());
        ffi::luaL_argerror(state, narg, msg)
    }
}

/// The results of a body that may return thousands of values: a sequence
/// table holding them and their count. (mlua keeps every live `Value` handle
/// in a slot of an auxiliary Lua stack of about 8000 slots, so thousands of
/// strings or tables cannot be held in a `Vec<Value>` at once.)
pub(crate) type PackedOutcome = Result<(Table, usize), Fail>;

/// Makes the Lua function for a library body: `body(lua, args)` runs in Rust
/// and the C closure around it raises its failures as the C library would.
pub(crate) fn wrap<F>(lua: &Lua, body: F) -> mlua::Result<Function>
where
    F: Fn(&Lua, &[Value]) -> Outcome + 'static,
{
    wrap_results(lua, move |lua, args| body(lua, args).map(Results::Values))
}

/// [`wrap`] for a body returning its results packed in a table.
pub(crate) fn wrap_packed<F>(lua: &Lua, body: F) -> mlua::Result<Function>
where
    F: Fn(&Lua, &[Value]) -> PackedOutcome + 'static,
{
    wrap_results(lua, move |lua, args| {
        body(lua, args).map(|(list, n)| Results::Packed(list, n))
    })
}

enum Results {
    Values(Vec<Value>),
    Packed(Table, usize),
}

fn wrap_results<F>(lua: &Lua, body: F) -> mlua::Result<Function>
where
    F: Fn(&Lua, &[Value]) -> Result<Results, Fail> + 'static,
{
    let inner = lua.create_function(move |lua, args: MultiValue| {
        let args: Vec<Value> = args.into_iter().collect();
        let mut out = Vec::new();
        match body(lua, &args) {
            Ok(Results::Packed(list, n)) => {
                out.push(Value::Table(list));
                out.push(Value::Integer(n as i64));
            }
            Ok(Results::Values(values)) if values.len() > MANY_RESULTS => {
                let n = values.len();
                let list = lua.create_sequence_from(values)?;
                out.push(Value::Table(list));
                out.push(Value::Integer(n as i64));
            }
            Ok(Results::Values(values)) => {
                out.reserve(values.len() + 1);
                out.push(Value::Boolean(true));
                out.extend(values);
            }
            Err(Fail::Error(msg)) => {
                out.push(Value::Boolean(false));
                out.push(Value::String(lua.create_string(&msg)?));
            }
            Err(Fail::Arg(narg, msg)) => {
                out.push(Value::Integer(i64::from(narg)));
                out.push(Value::String(lua.create_string(&msg)?));
            }
            Err(Fail::Raw(msg)) => {
                out.push(Value::Nil);
                out.push(Value::String(lua.create_string(&msg)?));
            }
        }
        Ok(MultiValue::from_vec(out))
    })?;
    // SAFETY: `trampoline` follows the Lua C function protocol; the closure
    // is created with exactly the one upvalue it reads (the body, the
    // argument of `exec_raw`, which is on the stack when the callback runs).
    unsafe {
        lua.exec_raw(inner, |state| {
            ffi::lua_pushcclosure(state, trampoline, 1);
        })
    }
}

/// `next(t, k)` as the C API's `lua_next` does it (raw, whatever the
/// globals hold): the next key and value, or a single nil at the end.
unsafe extern "C-unwind" fn raw_next(state: *mut ffi::lua_State) -> c_int {
    // SAFETY: called by Lua with a table and a key of it (see `next_fn`).
    unsafe {
        ffi::lua_settop(state, 2);
        if ffi::lua_next(state, 1) != 0 {
            2
        } else {
            ffi::lua_pushnil(state);
            1
        }
    }
}

/// A Lua function doing a raw `next`, for walking a table while holding no
/// more than the table and the current key.
pub(crate) fn next_fn(lua: &Lua) -> mlua::Result<Function> {
    // SAFETY: `raw_next` follows the C function protocol and is only called
    // by this crate with a table and one of its keys (or nil).
    unsafe { lua.create_c_function(raw_next) }
}

/// The number in a value, without coercion (`lua_type == LUA_TNUMBER`).
pub(crate) fn number_of(v: &Value) -> Option<f64> {
    match v {
        Value::Number(n) => Some(*n),
        Value::Integer(i) => Some(*i as f64),
        _ => None,
    }
}

/// `lua_tonumber`: numbers, and strings Lua converts to numbers.
pub(crate) fn to_number(lua: &Lua, v: &Value) -> Option<f64> {
    match v {
        Value::Number(_) | Value::Integer(_) => number_of(v),
        Value::String(_) => lua.coerce_number(v.clone()).ok().flatten(),
        _ => None,
    }
}

/// `lua_tolstring`: strings, and numbers as Lua formats them (`%.14g`).
pub(crate) fn to_bytes(lua: &Lua, v: &Value) -> Option<Vec<u8>> {
    match v {
        Value::String(s) => Some(s.as_bytes().to_vec()),
        Value::Number(_) | Value::Integer(_) => lua
            .coerce_string(v.clone())
            .ok()
            .flatten()
            .map(|s| s.as_bytes().to_vec()),
        _ => None,
    }
}

/// `lua_typename(lua_type(v))`: Lua 5.1's name for the type of a value
/// (light userdata is `userdata`).
pub(crate) fn lua_type_name(v: &Value) -> &'static str {
    match v {
        Value::Nil => "nil",
        Value::Boolean(_) => "boolean",
        Value::LightUserData(_) | Value::UserData(_) | Value::Error(_) => "userdata",
        Value::Integer(_) | Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Table(_) => "table",
        Value::Function(_) => "function",
        Value::Thread(_) => "thread",
        other => other.type_name(),
    }
}

/// `luaL_typename` of argument `i` (1-based): `no value` past the last one.
pub(crate) fn arg_type_name(args: &[Value], i: usize) -> &'static str {
    match args.get(i.wrapping_sub(1)) {
        None => "no value",
        Some(v) => lua_type_name(v),
    }
}

/// Argument `i` (1-based), nil past the last one.
pub(crate) fn arg(args: &[Value], i: usize) -> &Value {
    args.get(i.wrapping_sub(1)).unwrap_or(&Value::Nil)
}

/// `luaL_checknumber`.
pub(crate) fn check_number(lua: &Lua, args: &[Value], i: usize) -> Result<f64, Fail> {
    to_number(lua, arg(args, i)).ok_or_else(|| type_error(args, i, "number"))
}

/// `luaL_checkinteger`: the number truncated as Lua 5.1 does on x86-64.
pub(crate) fn check_integer(lua: &Lua, args: &[Value], i: usize) -> Result<i64, Fail> {
    check_number(lua, args, i).map(double_to_i64)
}

/// `luaL_optinteger`: `default` when the argument is absent or nil.
pub(crate) fn opt_integer(lua: &Lua, args: &[Value], i: usize, default: i64) -> Result<i64, Fail> {
    match arg(args, i) {
        Value::Nil => Ok(default),
        _ => check_integer(lua, args, i),
    }
}

/// `luaL_checklstring`.
pub(crate) fn check_bytes(lua: &Lua, args: &[Value], i: usize) -> Result<Vec<u8>, Fail> {
    to_bytes(lua, arg(args, i)).ok_or_else(|| type_error(args, i, "string"))
}

/// `luaL_typerror`: `<expected> expected, got <type>`.
pub(crate) fn type_error(args: &[Value], i: usize, expected: &str) -> Fail {
    Fail::arg(
        i as i32,
        format!("{expected} expected, got {}", arg_type_name(args, i)),
    )
}

/// A C cast of a double to a 64-bit signed integer on x86-64 (`cvttsd2si`):
/// truncation toward zero; NaN and values out of range give `i64::MIN`.
pub(crate) fn double_to_i64(n: f64) -> i64 {
    if !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

/// A C cast of a double to a 64-bit unsigned integer as gcc compiles it for
/// x86-64: from 2^63 on `cvttsd2si(n - 2^63)` with the top bit flipped (so
/// values from 2^64 on give 0), otherwise `cvttsd2si` (so NaN gives 2^63).
pub(crate) fn double_to_u64(n: f64) -> u64 {
    const TWO63: f64 = 9_223_372_036_854_775_808.0;
    if n >= TWO63 {
        (double_to_i64(n - TWO63) as u64) ^ (1 << 63)
    } else {
        double_to_i64(n) as u64
    }
}

/// `printf("%.<precision>g", n)` as glibc writes it (`precision` 1..=17).
pub(crate) fn fmt_g(n: f64, precision: usize) -> String {
    let p = precision.max(1);
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan" } else { "nan" }.to_string();
    }
    if n.is_infinite() {
        return if n < 0.0 { "-inf" } else { "inf" }.to_string();
    }
    if n == 0.0 {
        return if n.is_sign_negative() { "-0" } else { "0" }.to_string();
    }
    let sci = format!("{:.*e}", p - 1, n);
    let (mantissa, exp) = match sci.split_once('e') {
        Some((m, e)) => (m, e.parse::<i32>().unwrap_or(0)),
        None => (sci.as_str(), 0),
    };
    if exp < -4 || exp >= p as i32 {
        let mantissa = strip_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.unsigned_abs())
    } else {
        let decimals = (p as i32 - 1 - exp).max(0) as usize;
        strip_zeros(&format!("{:.*}", decimals, n)).to_string()
    }
}

/// Drops trailing zeros after a decimal point, and the point if bare.
fn strip_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// glibc's `strtod` on the text at the start of `s`: the value and how many
/// bytes it used (0 when no number starts there). Accepts an optional sign,
/// decimal numbers with an optional exponent, hexadecimal numbers (`0x1.8p3`),
/// `inf`/`infinity` and `nan`/`nan(chars)` in any case.
pub(crate) fn strtod(s: &[u8]) -> (f64, usize) {
    let mut i = 0;
    let negative = match s.first() {
        Some(b'-') => {
            i = 1;
            true
        }
        Some(b'+') => {
            i = 1;
            false
        }
        _ => false,
    };
    let sign = |v: f64| if negative { -v } else { v };
    let rest = &s[i..];
    if starts_with_ci(rest, b"inf") {
        let used = if starts_with_ci(rest, b"infinity") {
            8
        } else {
            3
        };
        return (sign(f64::INFINITY), i + used);
    }
    if starts_with_ci(rest, b"nan") {
        let mut used = 3;
        if rest.get(3) == Some(&b'(') {
            let mut j = 4;
            while rest
                .get(j)
                .is_some_and(|c| c.is_ascii_alphanumeric() || *c == b'_')
            {
                j += 1;
            }
            if rest.get(j) == Some(&b')') {
                used = j + 1;
            }
        }
        return (sign(f64::NAN), i + used);
    }
    if rest.len() >= 2 && rest[0] == b'0' && (rest[1] | 0x20) == b'x' {
        if let Some((v, used)) = hex_float(&rest[2..]) {
            return (sign(v), i + 2 + used);
        }
    }
    // Decimal: digits [. digits] [e [sign] digits], at least one digit.
    let mut j = 0;
    let mut digits = 0;
    while rest.get(j).is_some_and(u8::is_ascii_digit) {
        j += 1;
        digits += 1;
    }
    if rest.get(j) == Some(&b'.') {
        let mut k = j + 1;
        while rest.get(k).is_some_and(u8::is_ascii_digit) {
            k += 1;
            digits += 1;
        }
        if digits > 0 {
            j = k;
        }
    }
    if digits == 0 {
        return (0.0, 0);
    }
    if rest.get(j).is_some_and(|c| (c | 0x20) == b'e') {
        let mut k = j + 1;
        if matches!(rest.get(k), Some(b'+') | Some(b'-')) {
            k += 1;
        }
        if rest.get(k).is_some_and(u8::is_ascii_digit) {
            while rest.get(k).is_some_and(u8::is_ascii_digit) {
                k += 1;
            }
            j = k;
        }
    }
    let text = String::from_utf8_lossy(&rest[..j]);
    let text = if text.starts_with('.') {
        format!("0{text}")
    } else {
        text.into_owned()
    };
    let text = text.replace(".e", ".0e").replace(".E", ".0E");
    let v = text.parse::<f64>().unwrap_or(0.0);
    (sign(v), i + j)
}

fn starts_with_ci(s: &[u8], prefix: &[u8]) -> bool {
    s.len() >= prefix.len() && s[..prefix.len()].eq_ignore_ascii_case(prefix)
}

/// The part of a hexadecimal float after `0x`: the value and the bytes used,
/// or None when no hex digit follows (then `strtod` reads just the `0`).
fn hex_float(s: &[u8]) -> Option<(f64, usize)> {
    let mut mantissa: u128 = 0;
    let mut exp2: i64 = 0;
    let mut sticky = false;
    let mut digits = 0;
    let mut j = 0;
    let mut seen_point = false;
    loop {
        match s.get(j) {
            Some(&c) if c.is_ascii_hexdigit() => {
                let d = (c as char).to_digit(16).unwrap_or(0) as u128;
                if mantissa >> 120 == 0 {
                    mantissa = (mantissa << 4) | d;
                    if seen_point {
                        exp2 -= 4;
                    }
                } else {
                    sticky |= d != 0;
                    if !seen_point {
                        exp2 += 4;
                    }
                }
                digits += 1;
            }
            Some(b'.') if !seen_point => seen_point = true,
            _ => break,
        }
        j += 1;
    }
    if digits == 0 {
        return None;
    }
    if s.get(j).is_some_and(|c| (c | 0x20) == b'p') {
        let mut k = j + 1;
        let mut neg = false;
        if let Some(&c) = s.get(k).filter(|c| **c == b'+' || **c == b'-') {
            neg = c == b'-';
            k += 1;
        }
        if s.get(k).is_some_and(u8::is_ascii_digit) {
            let mut e: i64 = 0;
            while let Some(&c) = s.get(k).filter(|c| c.is_ascii_digit()) {
                e = (e * 10 + i64::from(c - b'0')).min(1 << 40);
                k += 1;
            }
            exp2 += if neg { -e } else { e };
            j = k;
        }
    }
    if mantissa == 0 {
        return Some((0.0, j));
    }
    let m = (mantissa | u128::from(sticky)) as f64;
    let e = exp2.clamp(-3000, 3000) as i32;
    // Scale in steps so intermediate powers stay finite.
    let mut v = m;
    let mut left = e;
    while left != 0 {
        let step = left.clamp(-1000, 1000);
        v *= 2f64.powi(step);
        left -= step;
    }
    Some((v, j))
}

#[cfg(test)]
pub(crate) mod testutil {
    //! The harness shared by the libraries' case tables: each case is a Lua
    //! expression; the script below runs it in `pcall` and renders every
    //! returned value (or the error) as one string. The values come back
    //! packed in one table: `pcall` returning many values trips an API
    //! check in debug builds of Lua 5.1 (`luaB_pcall` pushes its boolean
    //! without `lua_checkstack`). The same script was run
    //! on real Redis 7.0.15 (`EVAL <script> 0`) to get the expected strings.

    use mlua::Lua;

    /// The script run for a case: the expression on line 1 (so error
    /// positions read `user_script:1:`), then a renderer. `<EXPR>` is
    /// replaced by the case.
    pub(crate) const HARNESS: &str = r#"local function pack(...) return {n = select('#', ...), ...} end local ok, res = pcall(function() return pack(<EXPR>) end)
local function show(v, depth)
  local t = type(v)
  if t == 'string' then
    return '"' .. v:gsub('[^%w %p]', function(c) return string.format('\\x%02x', c:byte()) end) .. '"'
  elseif t == 'number' then
    return string.format('%.17g', v)
  elseif t == 'table' then
    if depth > 20 then return '{...}' end
    local keys = {}
    for k in pairs(v) do keys[#keys + 1] = k end
    table.sort(keys, function(a, b)
      if type(a) ~= type(b) then return type(a) < type(b) end
      if type(a) == 'number' or type(a) == 'string' then return a < b end
      return tostring(a) < tostring(b)
    end)
    local parts = {}
    for _, k in ipairs(keys) do parts[#parts + 1] = '[' .. show(k, depth + 1) .. ']=' .. show(v[k], depth + 1) end
    return '{' .. table.concat(parts, ',') .. '}'
  elseif t == 'boolean' or t == 'nil' then
    return tostring(v)
  elseif t == 'userdata' and v == cjson.null then
    return 'cjson.null'
  else
    return t
  end
end
local out = {tostring(ok)}
if ok then
  for i = 1, res.n do out[i + 1] = show(res[i], 0) end
else
  out[2] = show(res, 0)
end
return table.concat(out, ' ')"#;

    /// The script for one case.
    pub(crate) fn script(expr: &str) -> String {
        HARNESS.replace("<EXPR>", expr)
    }

    /// A bare Lua state with the four libraries, as the engine sets them up.
    pub(crate) fn lua() -> Lua {
        let lua = Lua::new();
        super::bit::open(&lua).expect("bit opens");
        super::cjson::open(&lua).expect("cjson opens");
        super::cmsgpack::open(&lua).expect("cmsgpack opens");
        super::structlib::open(&lua).expect("struct opens");
        lua
    }

    /// Runs one case in `lua`, named as Redis names a script.
    pub(crate) fn run(lua: &Lua, expr: &str) -> String {
        match lua
            .load(script(expr))
            .set_name("@user_script")
            .eval::<mlua::String>()
        {
            Ok(s) => String::from_utf8_lossy(&s.as_bytes()).into_owned(),
            Err(e) => format!("HARNESS ERROR: {e}"),
        }
    }

    /// Runs every case in a fresh state and reports all that differ.
    pub(crate) fn check(cases: &[(&str, &str)]) {
        let mut failures = Vec::new();
        for (expr, want) in cases {
            let lua = lua();
            if std::env::var_os("LIBS_TRACE").is_some() {
                eprintln!("case: {expr}");
            }
            let got = run(&lua, expr);
            if got != *want {
                failures.push(format!("{expr}\n   want: {want}\n    got: {got}"));
            }
        }
        assert!(
            failures.is_empty(),
            "{} of {} cases differ:\n{}",
            failures.len(),
            cases.len(),
            failures.join("\n")
        );
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn fmt_g_matches_c_printf() {
        // Lua's string.format calls the C library's sprintf.
        let lua = Lua::new();
        let fmt: Function = lua
            .load("return function(p, x) return string.format('%.' .. p .. 'g', x) end")
            .eval()
            .expect("formatter");
        let mut values = vec![
            0.5,
            2.5,
            1.5,
            0.125,
            1e21,
            1e-5,
            1e-4,
            123456789012345678.0,
            1.0 / 3.0,
            -2.0 / 3.0,
            1e300,
            5e-324,
            0.1,
            100.0,
            1e14,
            1e15,
            99999999999999.5,
            9.5,
            0.00001234,
        ];
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for _ in 0..2000 {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            let v = f64::from_bits(x);
            if v.is_finite() {
                values.push(v);
            }
            values.push((x % 1_000_000) as f64 / 1000.0);
        }
        for v in values {
            for p in [1usize, 2, 3, 6, 14, 17] {
                let want: String = fmt.call((p, v)).expect("format");
                assert_eq!(fmt_g(v, p), want, "%.{p}g of {v:e}");
            }
        }
    }

    #[test]
    fn strtod_prefixes() {
        let cases: &[(&str, f64, usize)] = &[
            ("1", 1.0, 1),
            ("-1.5e3x", -1500.0, 6),
            ("1e", 1.0, 1),
            ("1e+", 1.0, 1),
            (".5", 0.5, 2),
            ("5.", 5.0, 2),
            (".", 0.0, 0),
            ("-", 0.0, 0),
            ("0x10", 16.0, 4),
            ("0x", 0.0, 1),
            ("0x1p4", 16.0, 5),
            ("0x.8", 0.5, 4),
            ("-0X1.8P1", -3.0, 8),
            ("Infinity", f64::INFINITY, 8),
            ("-infx", f64::NEG_INFINITY, 4),
            ("1e999", f64::INFINITY, 5),
        ];
        for (text, value, used) in cases {
            let (v, n) = strtod(text.as_bytes());
            assert_eq!((v, n), (*value, *used), "{text}");
        }
        let (v, n) = strtod(b"nan(abc)x");
        assert!(v.is_nan());
        assert_eq!(n, 8);
        let (v, n) = strtod(b"NaN(");
        assert!(v.is_nan());
        assert_eq!(n, 3);
    }

    #[test]
    fn double_casts_follow_x86_64() {
        assert_eq!(double_to_i64(f64::NAN), i64::MIN);
        assert_eq!(double_to_i64(1e19), i64::MIN);
        assert_eq!(double_to_i64(-2.7), -2);
        assert_eq!(double_to_u64(1e19), 10_000_000_000_000_000_000);
        assert_eq!(double_to_u64(2f64.powi(64)), 0);
        assert_eq!(double_to_u64(-1.0), u64::MAX);
        assert_eq!(double_to_u64(f64::NAN), 1 << 63);
        assert_eq!(double_to_u64(f64::INFINITY), 0);
    }
}
