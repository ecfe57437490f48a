//! `cmsgpack`: lua-cmsgpack 0.4.0 as Redis 7.0 ships it (`lua_cmsgpack.c`).
//!
//! Packing: each argument is encoded in turn and the results concatenated.
//! A number equal to its 64-bit integer conversion is an integer in the
//! smallest MessagePack form (positive/negative fixnum, uint/int 8/16/32/64);
//! any other number is a float 32 when it survives the round trip through
//! `float`, else a float 64. Strings are fixstr/str8/str16/str32 (never bin).
//! A table whose keys are exactly 1..n is an array (length `#t`, elements read
//! with `t[i]`), anything else a map (keys and values in `next` order). Tables
//! nested 16 deep, nil, functions, userdata (and `cjson.null`) become nil.
//!
//! Unpacking accepts what the C decoder accepts: no bin or ext types (they are
//! "Bad data format in input."), uint 64 above 2^63 wraps to negative, nil
//! array elements leave holes, a nil or NaN map key is Lua's `table index is
//! nil`/`table index is NaN`. The C decoder recurses with no depth limit and
//! stops only at Lua's 8000-slot stack limit; the slots it would use are
//! counted here so the same inputs fail with the same `stack overflow (...)`
//! texts. Every length read from the input is checked against the bytes left
//! before anything is allocated, and tables are never pre-sized from a
//! length, so memory is bounded by the input size.

use mlua::{Lua, Table, Value};

use super::{check_bytes, check_integer, opt_integer, wrap, Fail, Outcome, MAX_C_STACK};

/// Tables nested this deep are packed as nil.
const MAX_NESTING: usize = 16;

/// Appends the MessagePack encoding of `v` at nesting `level`.
fn encode(buf: &mut Vec<u8>, v: &Value, level: usize) -> Result<(), Fail> {
    match v {
        Value::String(s) => encode_bytes(buf, &s.as_bytes()),
        Value::Boolean(b) => buf.push(if *b { 0xc3 } else { 0xc2 }),
        Value::Integer(i) => encode_number(buf, *i as f64),
        Value::Number(n) => encode_number(buf, *n),
        Value::Table(t) if level < MAX_NESTING => encode_table(buf, t, level)?,
        _ => buf.push(0xc0),
    }
    Ok(())
}

fn encode_bytes(buf: &mut Vec<u8>, s: &[u8]) {
    let len = s.len();
    if len < 32 {
        buf.push(0xa0 | len as u8);
    } else if len <= 0xff {
        buf.extend([0xd9, len as u8]);
    } else if len <= 0xffff {
        buf.push(0xda);
        buf.extend((len as u16).to_be_bytes());
    } else {
        buf.push(0xdb);
        buf.extend((len as u32).to_be_bytes());
    }
    buf.extend_from_slice(s);
}

fn encode_number(buf: &mut Vec<u8>, n: f64) {
    let i = super::double_to_i64(n);
    if !n.is_infinite() && i as f64 == n {
        encode_int(buf, i);
    } else {
        let f = n as f32;
        if f64::from(f) == n {
            buf.push(0xca);
            buf.extend(f.to_be_bytes());
        } else {
            buf.push(0xcb);
            buf.extend(n.to_be_bytes());
        }
    }
}

fn encode_int(buf: &mut Vec<u8>, n: i64) {
    if n >= 0 {
        if n <= 127 {
            buf.push(n as u8);
        } else if n <= 0xff {
            buf.extend([0xcc, n as u8]);
        } else if n <= 0xffff {
            buf.push(0xcd);
            buf.extend((n as u16).to_be_bytes());
        } else if n <= 0xffff_ffff {
            buf.push(0xce);
            buf.extend((n as u32).to_be_bytes());
        } else {
            buf.push(0xcf);
            buf.extend((n as u64).to_be_bytes());
        }
    } else if n >= -32 {
        buf.push(n as i8 as u8);
    } else if n >= -128 {
        buf.extend([0xd0, n as i8 as u8]);
    } else if n >= -32768 {
        buf.push(0xd1);
        buf.extend((n as i16).to_be_bytes());
    } else if n >= -2_147_483_648 {
        buf.push(0xd2);
        buf.extend((n as i32).to_be_bytes());
    } else {
        buf.push(0xd3);
        buf.extend(n.to_be_bytes());
    }
}

fn encode_header(buf: &mut Vec<u8>, n: u64, fix: u8, b16: u8, b32: u8) {
    if n <= 15 {
        buf.push(fix | n as u8);
    } else if n <= 0xffff {
        buf.push(b16);
        buf.extend((n as u16).to_be_bytes());
    } else {
        buf.push(b32);
        buf.extend((n as u32).to_be_bytes());
    }
}

fn lua_err(_: mlua::Error) -> Fail {
    Fail::Raw(b"not enough memory".to_vec())
}

/// `table_is_an_array`: every key a number that is a positive `int`, and
/// the largest equal to their count.
fn is_array(t: &Table) -> Result<bool, Fail> {
    let mut count: i64 = 0;
    let mut max: i64 = 0;
    for pair in t.clone().pairs::<Value, Value>() {
        let (k, _) = pair.map_err(lua_err)?;
        let Some(n) = super::number_of(&k) else {
            return Ok(false);
        };
        // (int)n on x86-64: out of range (and NaN) is INT_MIN.
        let as_int = if n.is_nan() || n >= 2_147_483_648.0 || n <= -2_147_483_649.0 {
            i64::from(i32::MIN)
        } else {
            n as i64
        };
        if n <= 0.0 || as_int as f64 != n {
            return Ok(false);
        }
        max = max.max(as_int);
        count += 1;
    }
    Ok(max == count)
}

fn encode_table(buf: &mut Vec<u8>, t: &Table, level: usize) -> Result<(), Fail> {
    if is_array(t)? {
        let len = t.raw_len() as u64;
        encode_header(buf, len, 0x90, 0xdc, 0xdd);
        for j in 1..=len {
            let v: Value = t
                .get(j as i64)
                .map_err(|e| Fail::Raw(e.to_string().into_bytes()))?;
            encode(buf, &v, level + 1)?;
        }
    } else {
        let mut len: u64 = 0;
        for pair in t.clone().pairs::<Value, Value>() {
            pair.map_err(lua_err)?;
            len += 1;
        }
        encode_header(buf, len, 0x80, 0xde, 0xdf);
        for pair in t.clone().pairs::<Value, Value>() {
            let (k, v) = pair.map_err(lua_err)?;
            encode(buf, &k, level + 1)?;
            encode(buf, &v, level + 1)?;
        }
    }
    Ok(())
}

fn pack(lua: &Lua, args: &[Value]) -> Outcome {
    if args.is_empty() {
        return Err(Fail::arg(0, "MessagePack pack needs input."));
    }
    if args.len() * 2 > MAX_C_STACK {
        return Err(Fail::arg(0, "Too many arguments for MessagePack pack."));
    }
    let mut buf = Vec::new();
    for v in args {
        encode(&mut buf, v, 0)?;
    }
    let s = lua.create_string(&buf).map_err(lua_err)?;
    Ok(vec![Value::String(s)])
}

/// Why decoding stopped.
enum Stop {
    /// `Missing bytes in input.`
    Eof,
    /// `Bad data format in input.`
    BadFormat,
    /// Any other error, raised as it is.
    Fail(Fail),
}

/// A decoding cursor, and the Lua stack slots the C decoder would be using.
struct Decoder<'a> {
    lua: &'a Lua,
    data: &'a [u8],
    pos: usize,
    slots: usize,
}

const TOO_MANY: &str =
    "stack overflow (too many return values at once; use unpack_one or unpack_limit instead.)";

impl Decoder<'_> {
    fn left(&self) -> usize {
        self.data.len() - self.pos
    }

    fn need(&self, n: usize) -> Result<(), Stop> {
        if self.left() < n {
            Err(Stop::Eof)
        } else {
            Ok(())
        }
    }

    fn byte(&self, i: usize) -> u8 {
        self.data[self.pos + i]
    }

    fn be(&self, from: usize, n: usize) -> u64 {
        (0..n).fold(0u64, |acc, i| (acc << 8) | u64::from(self.byte(from + i)))
    }

    fn check_stack(&self, n: usize, msg: &str) -> Result<(), Stop> {
        if self.slots + n > MAX_C_STACK {
            Err(Stop::Fail(Fail::error(msg)))
        } else {
            Ok(())
        }
    }

    fn string(&mut self, header: usize, len: usize) -> Result<Value, Stop> {
        self.need(header + len)?;
        let start = self.pos + header;
        let s = self
            .lua
            .create_string(&self.data[start..start + len])
            .map_err(|e| Stop::Fail(lua_err(e)))?;
        self.pos += header + len;
        Ok(Value::String(s))
    }

    /// `mp_decode_to_lua_type`: one value (pushed: `slots` goes up by one).
    fn value(&mut self) -> Result<Value, Stop> {
        self.need(1)?;
        self.check_stack(1, TOO_MANY)?;
        let b = self.byte(0);
        let v = match b {
            0xcc | 0xd0 => {
                self.need(2)?;
                let x = self.byte(1);
                self.pos += 2;
                Value::Number(if b == 0xcc {
                    f64::from(x)
                } else {
                    f64::from(x as i8)
                })
            }
            0xcd | 0xd1 => {
                self.need(3)?;
                let x = self.be(1, 2) as u16;
                self.pos += 3;
                Value::Number(if b == 0xcd {
                    f64::from(x)
                } else {
                    f64::from(x as i16)
                })
            }
            0xce | 0xd2 => {
                self.need(5)?;
                let x = self.be(1, 4) as u32;
                self.pos += 5;
                Value::Number(if b == 0xce {
                    f64::from(x)
                } else {
                    f64::from(x as i32)
                })
            }
            0xcf | 0xd3 => {
                self.need(9)?;
                let x = self.be(1, 8);
                self.pos += 9;
                Value::Number(x as i64 as f64)
            }
            0xc0 => {
                self.pos += 1;
                Value::Nil
            }
            0xc2 | 0xc3 => {
                self.pos += 1;
                Value::Boolean(b == 0xc3)
            }
            0xca => {
                self.need(5)?;
                let f = f32::from_bits(self.be(1, 4) as u32);
                self.pos += 5;
                Value::Number(f64::from(f))
            }
            0xcb => {
                self.need(9)?;
                let d = f64::from_bits(self.be(1, 8));
                self.pos += 9;
                Value::Number(d)
            }
            0xd9 => {
                self.need(2)?;
                let len = self.byte(1) as usize;
                self.string(2, len)?
            }
            0xda => {
                self.need(3)?;
                let len = self.be(1, 2) as usize;
                self.string(3, len)?
            }
            0xdb => {
                self.need(5)?;
                let len = self.be(1, 4) as usize;
                self.pos += 5;
                self.string(0, len)?
            }
            0xdc | 0xdd | 0xde | 0xdf => {
                let n = if b == 0xdc || b == 0xde { 2 } else { 4 };
                self.need(1 + n)?;
                let len = self.be(1, n);
                self.pos += 1 + n;
                if b <= 0xdd {
                    self.array(len)?
                } else {
                    self.map(len)?
                }
            }
            _ if b & 0x80 == 0 => {
                self.pos += 1;
                Value::Number(f64::from(b))
            }
            _ if b & 0xe0 == 0xe0 => {
                self.pos += 1;
                Value::Number(f64::from(b as i8))
            }
            _ if b & 0xe0 == 0xa0 => self.string(1, (b & 0x1f) as usize)?,
            _ if b & 0xf0 == 0x90 => {
                self.pos += 1;
                self.array(u64::from(b & 0xf))?
            }
            _ if b & 0xf0 == 0x80 => {
                self.pos += 1;
                self.map(u64::from(b & 0xf))?
            }
            _ => return Err(Stop::BadFormat),
        };
        Ok(v)
    }

    fn new_table(&self) -> Result<Table, Stop> {
        self.lua.create_table().map_err(|e| Stop::Fail(lua_err(e)))
    }

    fn array(&mut self, len: u64) -> Result<Value, Stop> {
        let t = self.new_table()?;
        self.slots += 1;
        self.check_stack(1, "stack overflow (in function mp_decode_to_lua_array)")?;
        for index in 1..=len {
            self.slots += 1; // the index
            let v = self.value()?;
            self.slots -= 1;
            t.raw_set(index as i64, v)
                .map_err(|e| Stop::Fail(lua_err(e)))?;
        }
        self.slots -= 1;
        Ok(Value::Table(t))
    }

    fn map(&mut self, len: u64) -> Result<Value, Stop> {
        let t = self.new_table()?;
        self.slots += 1;
        for _ in 0..len {
            let k = self.value()?;
            self.slots += 1;
            let v = self.value()?;
            self.slots -= 1;
            match &k {
                Value::Nil => return Err(Stop::Fail(Fail::Raw(b"table index is nil".to_vec()))),
                Value::Number(n) if n.is_nan() => {
                    return Err(Stop::Fail(Fail::Raw(b"table index is NaN".to_vec())))
                }
                _ => {}
            }
            t.raw_set(k, v).map_err(|e| Stop::Fail(lua_err(e)))?;
        }
        self.slots -= 1;
        Ok(Value::Table(t))
    }
}

/// `mp_unpack_full`: decodes up to `limit` values from `offset` (both 0:
/// everything); with a limit or offset, the next offset (-1 at the end) comes
/// first.
fn unpack_full(lua: &Lua, data: &[u8], limit: i64, offset: i64, slots: usize) -> Outcome {
    let decode_all = limit == 0 && offset == 0;
    if offset < 0 || limit < 0 {
        return Err(Fail::error(format!(
            "Invalid request to unpack with offset of {} and limit of {}.",
            offset as i32,
            data.len() as i32
        )));
    }
    if offset as u64 > data.len() as u64 {
        return Err(Fail::error(format!(
            "Start offset {} greater than input length {}.",
            offset as i32,
            data.len() as i32
        )));
    }
    let limit = if decode_all {
        i64::from(i32::MAX)
    } else {
        limit
    };
    let mut d = Decoder {
        lua,
        data,
        pos: offset as usize,
        slots,
    };
    let mut out = Vec::new();
    let mut count: i64 = 0;
    while d.left() > 0 && count < limit {
        match d.value() {
            Ok(v) => out.push(v),
            Err(Stop::Eof) => return Err(Fail::error("Missing bytes in input.")),
            Err(Stop::BadFormat) => return Err(Fail::error("Bad data format in input.")),
            Err(Stop::Fail(f)) => return Err(f),
        }
        d.slots += 1;
        count += 1;
    }
    if !decode_all {
        if d.slots + 1 > MAX_C_STACK {
            return Err(Fail::error("stack overflow (in function mp_unpack_full)"));
        }
        let next = if d.left() == 0 { -1 } else { d.pos as i64 };
        out.insert(0, Value::Number(next as f64));
    }
    Ok(out)
}

fn unpack(lua: &Lua, args: &[Value]) -> Outcome {
    let data = check_bytes(lua, args, 1)?;
    unpack_full(lua, &data, 0, 0, args.len())
}

fn unpack_one(lua: &Lua, args: &[Value]) -> Outcome {
    let offset = opt_integer(lua, args, 2, 0)?;
    let data = check_bytes(lua, &args[..args.len().min(1)], 1)?;
    unpack_full(lua, &data, 1, offset, 1)
}

fn unpack_limit(lua: &Lua, args: &[Value]) -> Outcome {
    let limit = check_integer(lua, args, 2)?;
    let offset = opt_integer(lua, args, 3, 0)?;
    let data = check_bytes(lua, &args[..args.len().min(1)], 1)?;
    unpack_full(lua, &data, limit, offset, 1)
}

/// Sets the global `cmsgpack` table.
pub(crate) fn open(lua: &Lua) -> mlua::Result<()> {
    let t = lua.create_table()?;
    t.set("pack", wrap(lua, pack)?)?;
    t.set("unpack", wrap(lua, unpack)?)?;
    t.set("unpack_one", wrap(lua, unpack_one)?)?;
    t.set("unpack_limit", wrap(lua, unpack_limit)?)?;
    t.set("_NAME", "cmsgpack")?;
    t.set("_VERSION", "lua-cmsgpack 0.4.0")?;
    t.set("_COPYRIGHT", "Copyright (C) 2012, Salvatore Sanfilippo")?;
    t.set("_DESCRIPTION", "MessagePack C implementation for Lua")?;
    lua.globals().set("cmsgpack", t)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{check, lua, run};

    /// Expected strings captured from redis-server 7.0.15 with the harness
    /// in `testutil`.
    const CASES: &[(&str, &str)] = &[
        // @@CMSGPACK_CASES@@
    ];

    #[test]
    fn matches_redis() {
        check(CASES);
    }

    #[test]
    fn garbage_never_panics() {
        let lua = lua();
        let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
        for round in 0..3000 {
            let mut data = String::new();
            for _ in 0..(1 + x % 24) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                // Bias toward headers with big lengths and containers.
                let b = if round % 3 == 0 {
                    0xd9 + x % 7
                } else {
                    x % 256
                };
                data.push_str(&format!("\\{b}"));
            }
            for f in [
                "cmsgpack.unpack('{}')",
                "cmsgpack.unpack_one('{}', 1)",
                "cmsgpack.unpack_limit('{}', 2)",
            ] {
                let _ = run(&lua, &f.replace("{}", &data));
            }
        }
    }
}
