//! `bit`: the LuaBitOp library Redis 7.0 loads (`lua_bit.c`), on 32-bit
//! integers.
//!
//! An argument becomes 32 bits as LuaBitOp does it with doubles: add 2^52+2^51
//! and keep the low word of the sum, so fractions round to nearest-even and
//! larger values wrap modulo 2^32. Results are signed 32-bit numbers. Shift
//! counts use their low 5 bits. `tohex(x, n)` writes `|n|` digits (at most 8),
//! upper case when `n` is negative. An argument Lua cannot turn into a number
//! is `bad argument #i to 'f' (number expected, got T)`; the multi-argument
//! functions check their arguments from the last to the second, after the
//! first, as the C code does.

use mlua::{Lua, Table, Value};

use super::{arg, arg_type_name, to_number, type_error, wrap, Fail, Outcome};

/// `barg`: argument `i` as 32 bits.
fn barg(lua: &Lua, args: &[Value], i: usize) -> Result<u32, Fail> {
    let n = to_number(lua, arg(args, i)).unwrap_or(0.0);
    let b = (n + 6_755_399_441_055_744.0).to_bits() as u32;
    if b == 0 && to_number(lua, arg(args, i)).is_none() {
        return Err(type_error(args, i, "number"));
    }
    Ok(b)
}

fn ret(b: u32) -> Outcome {
    Ok(vec![Value::Number(f64::from(b as i32))])
}

fn unary(lua: &Lua, name: &str, t: &Table, f: fn(u32) -> u32) -> mlua::Result<()> {
    let func = wrap(lua, move |lua, args| ret(f(barg(lua, args, 1)?)))?;
    t.set(name, func)
}

fn fold(lua: &Lua, name: &str, t: &Table, f: fn(u32, u32) -> u32) -> mlua::Result<()> {
    let func = wrap(lua, move |lua, args| {
        let mut b = barg(lua, args, 1)?;
        for i in (2..=args.len()).rev() {
            b = f(b, barg(lua, args, i)?);
        }
        ret(b)
    })?;
    t.set(name, func)
}

fn shift(lua: &Lua, name: &str, t: &Table, f: fn(u32, u32) -> u32) -> mlua::Result<()> {
    let func = wrap(lua, move |lua, args| {
        let b = barg(lua, args, 1)?;
        let n = barg(lua, args, 2)? & 31;
        ret(f(b, n))
    })?;
    t.set(name, func)
}

fn tohex(lua: &Lua, args: &[Value]) -> Outcome {
    let mut b = barg(lua, args, 1)?;
    let mut n: i64 = if arg_type_name(args, 2) == "no value" {
        8
    } else {
        i64::from(barg(lua, args, 2)? as i32)
    };
    let digits: &[u8; 16] = if n < 0 {
        n = -n;
        b"0123456789ABCDEF"
    } else {
        b"0123456789abcdef"
    };
    // -(-2^31) overflows in C; Redis's build treats the result as a large
    // positive count, so it writes 8 upper-case digits (checked on 7.0.15).
    let n = n.min(8) as usize;
    let mut buf = vec![0u8; n];
    for slot in buf.iter_mut().rev() {
        *slot = digits[(b & 15) as usize];
        b >>= 4;
    }
    let s = lua
        .create_string(&buf)
        .map_err(|_| Fail::error("not enough memory"))?;
    Ok(vec![Value::String(s)])
}

/// Sets the global `bit` table.
pub(crate) fn open(lua: &Lua) -> mlua::Result<()> {
    // Pre-sized and filled in the order luaL_register uses, so `pairs(bit)`
    // visits the functions in Redis's order.
    let t = lua.create_table_with_capacity(0, 12)?;
    unary(lua, "tobit", &t, |b| b)?;
    unary(lua, "bnot", &t, |b| !b)?;
    fold(lua, "band", &t, |a, b| a & b)?;
    fold(lua, "bor", &t, |a, b| a | b)?;
    fold(lua, "bxor", &t, |a, b| a ^ b)?;
    shift(lua, "lshift", &t, |b, n| b << n)?;
    shift(lua, "rshift", &t, |b, n| b >> n)?;
    shift(lua, "arshift", &t, |b, n| ((b as i32) >> n) as u32)?;
    shift(lua, "rol", &t, u32::rotate_left)?;
    shift(lua, "ror", &t, u32::rotate_right)?;
    unary(lua, "bswap", &t, u32::swap_bytes)?;
    t.set("tohex", wrap(lua, tohex)?)?;
    lua.globals().set("bit", t)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::check;

    /// Expected strings captured from redis-server 7.0.15 with the harness
    /// in `testutil`.
    const CASES: &[(&str, &str)] = &[
        // @@BIT_CASES@@
        (r##"bit.tobit(1)"##, r##"true 1"##),
        (r##"bit.tobit(0xffffffff)"##, r##"true -1"##),
        (r##"bit.tobit(0x7fffffff)"##, r##"true 2147483647"##),
        (r##"bit.tobit(0x80000000)"##, r##"true -2147483648"##),
        (r##"bit.tobit(2^32 + 5)"##, r##"true 5"##),
        (r##"bit.tobit(-1)"##, r##"true -1"##),
        (r##"bit.tobit(1.5)"##, r##"true 2"##),
        (r##"bit.tobit(2.5)"##, r##"true 2"##),
        (r##"bit.tobit(-1.5)"##, r##"true -2"##),
        (r##"bit.tobit(0.5)"##, r##"true 0"##),
        (r##"bit.tobit(2^52)"##, r##"true 0"##),
        (r##"bit.tobit(2^53 + 3)"##, r##"true 2"##),
        (r##"bit.tobit(1e300)"##, r##"true -2013235812"##),
        (r##"bit.tobit(-2^31)"##, r##"true -2147483648"##),
        (r##"bit.tobit(-2^31 - 1)"##, r##"true 2147483647"##),
        (r##"bit.tobit('12')"##, r##"true 12"##),
        (r##"bit.tobit('0x10')"##, r##"true 16"##),
        (r##"bit.tobit(' 7 ')"##, r##"true 7"##),
        (r##"bit.tobit(0/0)"##, r##"true 0"##),
        (r##"bit.tobit(1/0)"##, r##"true 0"##),
        (r##"bit.tobit(-1/0)"##, r##"true 0"##),
        (
            r##"bit.tobit()"##,
            r##"false "user_script:1: bad argument #1 to 'tobit' (number expected, got no value)""##,
        ),
        (
            r##"bit.tobit(nil)"##,
            r##"false "user_script:1: bad argument #1 to 'tobit' (number expected, got nil)""##,
        ),
        (
            r##"bit.tobit('x')"##,
            r##"false "user_script:1: bad argument #1 to 'tobit' (number expected, got string)""##,
        ),
        (
            r##"bit.tobit({})"##,
            r##"false "user_script:1: bad argument #1 to 'tobit' (number expected, got table)""##,
        ),
        (
            r##"bit.tobit(true)"##,
            r##"false "user_script:1: bad argument #1 to 'tobit' (number expected, got boolean)""##,
        ),
        (
            r##"bit.tobit(cjson.null)"##,
            r##"false "user_script:1: bad argument #1 to 'tobit' (number expected, got userdata)""##,
        ),
        (r##"bit.tobit(0)"##, r##"true 0"##),
        (r##"bit.bnot(0)"##, r##"true -1"##),
        (r##"bit.bnot(-1)"##, r##"true 0"##),
        (r##"bit.bnot(0x12345678)"##, r##"true -305419897"##),
        (r##"bit.bnot('5')"##, r##"true -6"##),
        (
            r##"bit.bnot()"##,
            r##"false "user_script:1: bad argument #1 to 'bnot' (number expected, got no value)""##,
        ),
        (r##"bit.band(0xff, 0x0f)"##, r##"true 15"##),
        (r##"bit.band(0xffffffff, -1)"##, r##"true -1"##),
        (r##"bit.band(1)"##, r##"true 1"##),
        (r##"bit.band(7, 6, 3)"##, r##"true 2"##),
        (
            r##"bit.band()"##,
            r##"false "user_script:1: bad argument #1 to 'band' (number expected, got no value)""##,
        ),
        (
            r##"bit.band(1, 'x')"##,
            r##"false "user_script:1: bad argument #2 to 'band' (number expected, got string)""##,
        ),
        (
            r##"bit.band(1, 'x', {})"##,
            r##"false "user_script:1: bad argument #3 to 'band' (number expected, got table)""##,
        ),
        (
            r##"bit.band('x', 'y')"##,
            r##"false "user_script:1: bad argument #1 to 'band' (number expected, got string)""##,
        ),
        (r##"bit.bor(1, 2, 4, 8)"##, r##"true 15"##),
        (r##"bit.bor(0x80000000, 1)"##, r##"true -2147483647"##),
        (r##"bit.bor(1)"##, r##"true 1"##),
        (r##"bit.bxor(0xff, 0x0f)"##, r##"true 240"##),
        (r##"bit.bxor(1, 1, 1)"##, r##"true 1"##),
        (r##"bit.bxor(-1, 0x55555555)"##, r##"true -1431655766"##),
        (r##"bit.lshift(1, 0)"##, r##"true 1"##),
        (r##"bit.lshift(1, 31)"##, r##"true -2147483648"##),
        (r##"bit.lshift(1, 32)"##, r##"true 1"##),
        (r##"bit.lshift(1, 33)"##, r##"true 2"##),
        (r##"bit.lshift(1, -1)"##, r##"true -2147483648"##),
        (r##"bit.lshift(0xff, 28)"##, r##"true -268435456"##),
        (
            r##"bit.lshift(1)"##,
            r##"false "user_script:1: bad argument #2 to 'lshift' (number expected, got no value)""##,
        ),
        (
            r##"bit.lshift(1, 'a')"##,
            r##"false "user_script:1: bad argument #2 to 'lshift' (number expected, got string)""##,
        ),
        (r##"bit.rshift(-1, 1)"##, r##"true 2147483647"##),
        (r##"bit.rshift(0x80000000, 31)"##, r##"true 1"##),
        (r##"bit.rshift(256, 4)"##, r##"true 16"##),
        (r##"bit.rshift(1, 32)"##, r##"true 1"##),
        (r##"bit.arshift(-256, 4)"##, r##"true -16"##),
        (r##"bit.arshift(0x80000000, 31)"##, r##"true -1"##),
        (r##"bit.arshift(256, 4)"##, r##"true 16"##),
        (r##"bit.arshift(-1, 40)"##, r##"true -1"##),
        (r##"bit.rol(0x12345678, 4)"##, r##"true 591751041"##),
        (r##"bit.rol(0x12345678, 0)"##, r##"true 305419896"##),
        (r##"bit.rol(0x80000001, 1)"##, r##"true 3"##),
        (r##"bit.rol(1, 36)"##, r##"true 16"##),
        (r##"bit.ror(0x12345678, 4)"##, r##"true -2128394905"##),
        (r##"bit.ror(1, 1)"##, r##"true -2147483648"##),
        (r##"bit.ror(0x12345678, 0)"##, r##"true 305419896"##),
        (r##"bit.ror(1, -1)"##, r##"true 2"##),
        (r##"bit.bswap(0x12345678)"##, r##"true 2018915346"##),
        (r##"bit.bswap(-1)"##, r##"true -1"##),
        (r##"bit.bswap(0xff)"##, r##"true -16777216"##),
        (
            r##"bit.bswap()"##,
            r##"false "user_script:1: bad argument #1 to 'bswap' (number expected, got no value)""##,
        ),
        (r##"bit.tohex(255)"##, r##"true "000000ff""##),
        (r##"bit.tohex(255, 2)"##, r##"true "ff""##),
        (r##"bit.tohex(255, -2)"##, r##"true "FF""##),
        (r##"bit.tohex(-1)"##, r##"true "ffffffff""##),
        (r##"bit.tohex(-1, -8)"##, r##"true "FFFFFFFF""##),
        (r##"bit.tohex(0x12345678, 4)"##, r##"true "5678""##),
        (r##"bit.tohex(0x12345678, 12)"##, r##"true "12345678""##),
        (r##"bit.tohex(0x12345678, -12)"##, r##"true "12345678""##),
        (r##"bit.tohex(1, 0)"##, r##"true """##),
        (
            r##"bit.tohex(1, nil)"##,
            r##"false "user_script:1: bad argument #2 to 'tohex' (number expected, got nil)""##,
        ),
        (
            r##"bit.tohex(1, 'x')"##,
            r##"false "user_script:1: bad argument #2 to 'tohex' (number expected, got string)""##,
        ),
        (
            r##"bit.tohex()"##,
            r##"false "user_script:1: bad argument #1 to 'tohex' (number expected, got no value)""##,
        ),
        (r##"bit.tohex(0xabcdef)"##, r##"true "00abcdef""##),
        (r##"bit.tohex('255', '3')"##, r##"true "0ff""##),
        (r##"bit.tohex(2^40 + 15, 3)"##, r##"true "00f""##),
        (r##"type(bit.tohex)"##, r##"true "function""##),
        (r##"bit.tobit(1, 2, 3)"##, r##"true 1"##),
        (
            r##"bit.band(0xffffffff, 0xffffffff, 0xffffffff)"##,
            r##"true -1"##,
        ),
        (r##"select('#', bit.tobit(5))"##, r##"true 1"##),
        (
            r##"select(2, pcall(bit.tobit))"##,
            r##"true "bad argument #1 to '?' (number expected, got no value)""##,
        ),
        (
            r##"select(2, pcall(bit.band, 1, {}))"##,
            r##"true "bad argument #2 to '?' (number expected, got table)""##,
        ),
        (
            r##"(function() local f = bit.bnot return f() end)()"##,
            r##"false "user_script:1: bad argument #1 to 'f' (number expected, got no value)""##,
        ),
        (
            r##"(function() local x = bit.bnot() end)()"##,
            r##"false "user_script:1: bad argument #1 to 'bnot' (number expected, got no value)""##,
        ),
        (
            r##"bit:tobit()"##,
            r##"false "user_script:1: calling 'tobit' on bad self (number expected, got table)""##,
        ),
        (r##"bit.tohex(1, -2^31)"##, r##"true "00000001""##),
        (r##"bit.tohex(1, 2^31)"##, r##"true "00000001""##),
        (r##"bit.tohex(1, 9)"##, r##"true "00000001""##),
        (r##"bit.tohex(0x1234, -4)"##, r##"true "1234""##),
        (r##"bit.tohex(0xabc, -2^31)"##, r##"true "00000ABC""##),
        (r##"bit.tohex(0xabc, 2^31)"##, r##"true "00000ABC""##),
    ];

    #[test]
    fn matches_redis() {
        check(CASES);
    }
}
