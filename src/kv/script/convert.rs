//! Conversions between command outputs and Lua values, both ways, as Redis
//! 7.0's `script_lua.c` makes them (`redisProtocolToLuaType*` for what
//! `redis.call` returns, `luaReplyToRedisReply` for what a script returns),
//! for a script in RESP2 (the default) or RESP3 (`redis.setresp(3)`).
//!
//! The RESP shape a client finally sees (a map as a flat array for a RESP2
//! client ...) is the server's business: these functions produce the
//! [`Output`] variants that carry the distinction.

use bytes::Bytes;
use mlua::{Lua, Table, Value};

use crate::kv::Output;

/// Deepest nesting converted (Redis is bounded by the Lua C stack).
const MAX_DEPTH: usize = 1000;

/// The text of an error table built from an error reply (`luaPushErrorBuff`):
/// `-CODE msg` becomes `CODE msg` (code `ERR` when there is no space), a
/// text without `-` gets the code `ERR`; newlines at both ends are trimmed.
pub(crate) fn error_text(reply: &[u8]) -> String {
    let reply = String::from_utf8_lossy(reply);
    let (code, msg) = match reply.strip_prefix('-') {
        Some(rest) => match rest.split_once(' ') {
            Some((code, msg)) => (code.to_string(), msg.to_string()),
            None => ("ERR".to_string(), rest.to_string()),
        },
        None => ("ERR".to_string(), reply.to_string()),
    };
    let msg = msg.trim_matches(|c| c == '\r' || c == '\n');
    format!("{code} {msg}")
}

/// Lua's `tostring` of a number (`%.14g`).
pub(crate) fn lua_number_text(n: f64) -> String {
    if n.is_nan() {
        return if n.is_sign_negative() { "-nan" } else { "nan" }.into();
    }
    if n.is_infinite() {
        return if n > 0.0 { "inf" } else { "-inf" }.into();
    }
    if n == n.trunc() && n.abs() < 1e15 {
        return format!("{}", n as i64);
    }
    format_g(n, 14)
}

/// C's `%.<precision>g` for a finite, non-zero double.
pub(crate) fn format_g(n: f64, precision: usize) -> String {
    if n == 0.0 {
        return if n.is_sign_negative() { "-0" } else { "0" }.into();
    }
    let sci = format!("{:.*e}", precision - 1, n);
    let (mantissa, exp) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exp: i32 = exp.parse().unwrap_or(0);
    if exp < -4 || exp >= precision as i32 {
        let mantissa = trim_zeros(mantissa);
        let sign = if exp < 0 { '-' } else { '+' };
        format!("{mantissa}e{sign}{:02}", exp.abs())
    } else {
        let decimals = (precision as i32 - 1 - exp).max(0) as usize;
        trim_zeros(&format!("{n:.decimals$}")).to_string()
    }
}

fn trim_zeros(s: &str) -> &str {
    if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.')
    } else {
        s
    }
}

/// A number as Redis passes it to a command (`%.17g`).
pub(crate) fn number_arg(n: f64) -> String {
    crate::kv::zset::format_score(n)
}

/// The C cast `(long long)` of a Lua number as x86-64 does it: truncation,
/// and `i64::MIN` for what does not fit (NaN included).
pub(crate) fn number_to_integer(n: f64) -> i64 {
    if n.is_nan() || !(-9_223_372_036_854_775_808.0..9_223_372_036_854_775_808.0).contains(&n) {
        i64::MIN
    } else {
        n as i64
    }
}

fn err_table(lua: &Lua, text: &str) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set("err", text)?;
    Ok(Value::Table(t))
}

/// What `redis.call` gives the script for a command's output.
pub(crate) fn output_to_lua(lua: &Lua, output: Output, resp3: bool) -> mlua::Result<Value> {
    let nil = |resp3: bool| {
        if resp3 {
            Value::Nil
        } else {
            Value::Boolean(false)
        }
    };
    Ok(match output {
        Output::Ok => status(lua, "OK")?,
        Output::Status(s) => status(lua, &s)?,
        Output::Integer(n) => Value::Number(n as f64),
        Output::Bulk(Some(b)) => Value::String(lua.create_string(&b)?),
        Output::Bulk(None) | Output::NilArray => nil(resp3),
        Output::Error(text) => {
            let mut reply = b"-".to_vec();
            reply.extend_from_slice(text.as_bytes());
            err_table(lua, &error_text(&reply))?
        }
        Output::Array(items) => array(lua, items, resp3)?,
        Output::Set(items) if !resp3 => array(lua, items, resp3)?,
        Output::Set(items) => {
            let set = lua.create_table()?;
            for item in items {
                set.raw_set(output_to_lua(lua, item, resp3)?, true)?;
            }
            wrap(lua, "set", Value::Table(set))?
        }
        Output::KeyedArrays(pairs) if !resp3 => {
            let nested = pairs
                .into_iter()
                .map(|(k, v)| Output::Array(vec![k, v]))
                .collect();
            array(lua, nested, resp3)?
        }
        Output::Map(pairs) | Output::KeyedArrays(pairs) if resp3 => {
            let map = lua.create_table()?;
            for (k, v) in pairs {
                map.raw_set(output_to_lua(lua, k, resp3)?, output_to_lua(lua, v, resp3)?)?;
            }
            wrap(lua, "map", Value::Table(map))?
        }
        Output::Map(pairs) | Output::Pairs(pairs) if !resp3 => {
            let flat = pairs.into_iter().flat_map(|(k, v)| [k, v]).collect();
            array(lua, flat, resp3)?
        }
        Output::Pairs(pairs) => {
            let nested = pairs
                .into_iter()
                .map(|(k, v)| Output::Array(vec![k, v]))
                .collect();
            array(lua, nested, resp3)?
        }
        Output::Map(_) | Output::KeyedArrays(_) => {
            unreachable!("maps are matched for both protocols above")
        }
        Output::Double(text) => {
            if resp3 {
                let n: f64 = match text.as_str() {
                    "inf" => f64::INFINITY,
                    "-inf" => f64::NEG_INFINITY,
                    t => t.parse().unwrap_or(f64::NAN),
                };
                wrap(lua, "double", Value::Number(n))?
            } else {
                Value::String(lua.create_string(&text)?)
            }
        }
        Output::Bool(b) => {
            if resp3 {
                Value::Boolean(b)
            } else {
                Value::Number(if b { 1.0 } else { 0.0 })
            }
        }
        Output::BigNumber(text) => {
            if resp3 {
                wrap(lua, "big_number", Value::String(lua.create_string(&text)?))?
            } else {
                Value::String(lua.create_string(&text)?)
            }
        }
        Output::Verbatim { format, text } => {
            if resp3 {
                let t = lua.create_table()?;
                t.raw_set("string", lua.create_string(&text)?)?;
                t.raw_set("format", format.as_str())?;
                wrap(lua, "verbatim_string", Value::Table(t))?
            } else {
                Value::String(lua.create_string(&text)?)
            }
        }
    })
}

fn status(lua: &Lua, s: &str) -> mlua::Result<Value> {
    wrap(lua, "ok", Value::String(lua.create_string(s)?))
}

fn wrap(lua: &Lua, field: &str, value: Value) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    t.raw_set(field, value)?;
    Ok(Value::Table(t))
}

fn array(lua: &Lua, items: Vec<Output>, resp3: bool) -> mlua::Result<Value> {
    let t = lua.create_table()?;
    for (i, item) in items.into_iter().enumerate() {
        t.raw_set(i + 1, output_to_lua(lua, item, resp3)?)?;
    }
    Ok(Value::Table(t))
}

/// The reply for what a script returned (`luaReplyToRedisReply`); `resp3`
/// is the script's protocol (`redis.setresp`), which decides booleans.
pub(crate) fn lua_to_output(value: &Value, resp3: bool) -> Output {
    convert(value, resp3, 0)
}

fn text(s: &mlua::String) -> String {
    String::from_utf8_lossy(&s.as_bytes()).into_owned()
}

fn convert(value: &Value, resp3: bool, depth: usize) -> Output {
    if depth > MAX_DEPTH {
        return Output::err("ERR reached lua stack limit");
    }
    match value {
        Value::String(s) => Output::Bulk(Some(Bytes::copy_from_slice(&s.as_bytes()))),
        Value::Boolean(b) => {
            if resp3 {
                Output::Bool(*b)
            } else if *b {
                Output::Integer(1)
            } else {
                Output::NIL
            }
        }
        Value::Integer(n) => Output::Integer(*n),
        Value::Number(n) => Output::Integer(number_to_integer(*n)),
        Value::Table(t) => table(t, resp3, depth),
        _ => Output::NIL,
    }
}

fn table(t: &Table, resp3: bool, depth: usize) -> Output {
    let get = |name: &str| t.raw_get::<Value>(name).unwrap_or(Value::Nil);
    if let Value::String(e) = get("err") {
        return Output::Error(text(&e).replace(['\r', '\n'], " "));
    }
    if let Value::String(s) = get("ok") {
        return Output::Status(text(&s).replace(['\r', '\n'], " "));
    }
    match get("double") {
        Value::Number(n) => return Output::Double(crate::kv::zset::format_score(n)),
        Value::Integer(n) => return Output::Double(crate::kv::zset::format_score(n as f64)),
        _ => {}
    }
    if let Value::String(s) = get("big_number") {
        return Output::BigNumber(text(&s).replace(['\r', '\n'], " "));
    }
    if let Value::Table(v) = get("verbatim_string") {
        if let (Ok(Value::String(format)), Ok(Value::String(s))) =
            (v.raw_get::<Value>("format"), v.raw_get::<Value>("string"))
        {
            return Output::Verbatim {
                format: text(&format).chars().take(3).collect(),
                text: Bytes::copy_from_slice(&s.as_bytes()),
            };
        }
    }
    if let Value::Table(m) = get("map") {
        let mut pairs = Vec::new();
        for pair in m.pairs::<Value, Value>() {
            let Ok((k, v)) = pair else { break };
            pairs.push((convert(&k, resp3, depth + 1), convert(&v, resp3, depth + 1)));
        }
        return Output::Map(pairs);
    }
    if let Value::Table(s) = get("set") {
        let mut items = Vec::new();
        for pair in s.pairs::<Value, Value>() {
            let Ok((k, _)) = pair else { break };
            items.push(convert(&k, resp3, depth + 1));
        }
        return Output::Set(items);
    }
    let mut items = Vec::new();
    for i in 1.. {
        let v = t.raw_get::<Value>(i).unwrap_or(Value::Nil);
        if v.is_nil() {
            break;
        }
        items.push(convert(&v, resp3, depth + 1));
    }
    Output::Array(items)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_texts_as_lua_push_error() {
        assert_eq!(error_text(b"-ERR value is bad\r\n"), "ERR value is bad");
        assert_eq!(error_text(b"-X my err"), "X my err");
        assert_eq!(error_text(b"-WRONG"), "ERR WRONG");
        assert_eq!(error_text(b"plain text"), "ERR plain text");
    }

    #[test]
    fn numbers_print_as_lua_and_c() {
        assert_eq!(lua_number_text(1.0), "1");
        assert_eq!(lua_number_text(1.0 / 3.0), "0.33333333333333");
        assert_eq!(lua_number_text(0.58409022054825), "0.58409022054825");
        assert_eq!(lua_number_text(1e20), "1e+20");
        assert_eq!(lua_number_text(-0.5), "-0.5");
        assert_eq!(number_arg(1.5), "1.5");
        assert_eq!(number_to_integer(1e20), i64::MIN);
        assert_eq!(number_to_integer(-1.9), -1);
    }
}
