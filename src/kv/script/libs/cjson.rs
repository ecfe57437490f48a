//! `cjson`: Lua CJSON 2.1.0 as Redis 7.0 ships it (`lua_cjson.c`, with
//! `fpconv.c`: the C library's `strtod` and `%.14g`).
//!
//! Encoding: strings are escaped as CJSON does (`"`, `\`, `/`, control
//! characters and DEL; other bytes, invalid UTF-8 included, pass through);
//! numbers are written with `%.<precision>g` (precision 14 by default); NaN and
//! infinities are an error unless `encode_invalid_numbers` allows them. A
//! table whose keys are all positive integers is an array up to its largest
//! key (holes are `null`) unless it is "excessively sparse" (largest key above
//! both `ratio × count` and `safe`; default ratio 2, safe 10), which is an
//! error or, with `encode_sparse_array(true)`, an object. Any other table,
//! the empty one included, is an object with keys in `next` order (number
//! keys written as strings). Nesting past `encode_max_depth` (default 1000) is
//! an error.
//!
//! Decoding: JSON text (and, since `decode_invalid_numbers` is on by default,
//! what `strtod` accepts as a number: hex, `inf`, `nan`, leading `+` or
//! zeros) into Lua values; `null` is `cjson.null` (a NULL light userdata); the
//! input ends at its first NUL byte; nesting past `decode_max_depth` (default
//! 1000) is an error; `\u` escapes (with surrogate pairs) become UTF-8, raw
//! bytes are kept. Objects are filled in document order, so the tables equal
//! the C library's, iteration order included.
//!
//! The configuration belongs to one `cjson` table (`cjson.new()` makes another
//! with defaults). The C code recurses with Lua's 8000-slot stack as the only
//! limit beyond the configured depths; the slots it would use are counted so
//! the same inputs fail with the same texts. Error texts are CJSON's.

use std::cell::RefCell;
use std::rc::Rc;

use mlua::{LightUserData, Lua, Table, Value};

use super::{
    arg, check_bytes, check_integer, fmt_g, lua_type_name, number_of, strtod, to_bytes, wrap, Fail,
    Outcome, MAX_C_STACK,
};

/// Settings of one `cjson` table.
#[derive(Clone)]
struct Config {
    sparse_convert: bool,
    sparse_ratio: i32,
    sparse_safe: i32,
    encode_max_depth: i32,
    decode_max_depth: i32,
    /// 0 off (error), 1 on (`nan`, `inf`), 2 `null`.
    encode_invalid_numbers: usize,
    decode_invalid_numbers: bool,
    encode_keep_buffer: bool,
    precision: i32,
}

impl Default for Config {
    fn default() -> Config {
        Config {
            sparse_convert: false,
            sparse_ratio: 2,
            sparse_safe: 10,
            encode_max_depth: 1000,
            decode_max_depth: 1000,
            encode_invalid_numbers: 0,
            decode_invalid_numbers: true,
            encode_keep_buffer: true,
            precision: 14,
        }
    }
}

type Shared = Rc<RefCell<Config>>;

fn null() -> Value {
    Value::LightUserData(LightUserData(std::ptr::null_mut()))
}

fn new_string(lua: &Lua, bytes: &[u8]) -> Result<Value, Fail> {
    lua.create_string(bytes)
        .map(Value::String)
        .map_err(|_| Fail::Raw(b"not enough memory".to_vec()))
}

// ===== Configuration functions =====

/// `json_arg_init`: at most `max` arguments.
fn arg_init(args: &[Value], max: usize) -> Result<(), Fail> {
    if args.len() > max {
        return Err(Fail::arg(max as i32 + 1, "found too many arguments"));
    }
    Ok(())
}

/// `json_integer_option`: sets `setting` from argument `i` if given (errors
/// name argument #1, as the C code does) and returns the setting.
fn integer_option(
    lua: &Lua,
    args: &[Value],
    i: usize,
    setting: &mut i32,
    min: i32,
    max: i32,
) -> Result<Value, Fail> {
    if !matches!(arg(args, i), Value::Nil) {
        let value = check_integer(lua, args, i)? as i32;
        if !(min <= value && value <= max) {
            return Err(Fail::arg(
                1,
                format!("expected integer between {min} and {max}"),
            ));
        }
        *setting = value;
    }
    Ok(Value::Number(f64::from(*setting)))
}

/// `json_enum_option` with `bool_true` 1: a boolean or one of `options`.
fn enum_option(
    lua: &Lua,
    args: &[Value],
    i: usize,
    setting: &mut usize,
    options: &[&str],
) -> Result<Value, Fail> {
    match arg(args, i) {
        Value::Nil => {}
        Value::Boolean(b) => *setting = usize::from(*b),
        _ => {
            let Some(name) = to_bytes(lua, arg(args, i)) else {
                return Err(super::type_error(args, i, "string"));
            };
            let Some(index) = options.iter().position(|o| o.as_bytes() == name) else {
                let mut msg = b"invalid option '".to_vec();
                msg.extend_from_slice(&name);
                msg.push(b'\'');
                return Err(Fail::Arg(i as i32, msg));
            };
            *setting = index;
        }
    }
    if *setting <= 1 {
        Ok(Value::Boolean(*setting == 1))
    } else {
        new_string(lua, options[*setting].as_bytes())
    }
}

const BOOL_OPTIONS: &[&str] = &["off", "on"];

fn bool_option(lua: &Lua, args: &[Value], i: usize, setting: &mut bool) -> Result<Value, Fail> {
    let mut v = usize::from(*setting);
    let out = enum_option(lua, args, i, &mut v, BOOL_OPTIONS)?;
    *setting = v == 1;
    Ok(out)
}

// ===== Encoding =====

fn escape(c: u8) -> Option<&'static str> {
    Some(match c {
        b'\x08' => "\\b",
        b'\t' => "\\t",
        b'\n' => "\\n",
        b'\x0c' => "\\f",
        b'\r' => "\\r",
        b'"' => "\\\"",
        b'/' => "\\/",
        b'\\' => "\\\\",
        _ => return None,
    })
}

fn append_string(out: &mut Vec<u8>, s: &[u8]) {
    out.reserve(s.len() + 2);
    out.push(b'"');
    for &c in s {
        if let Some(e) = escape(c) {
            out.extend_from_slice(e.as_bytes());
        } else if c < 0x20 || c == 0x7f {
            out.extend_from_slice(format!("\\u{c:04x}").as_bytes());
        } else {
            out.push(c);
        }
    }
    out.push(b'"');
}

struct Encoder<'a> {
    cfg: &'a Config,
    out: Vec<u8>,
}

fn cannot(type_name: &str, reason: &str) -> Fail {
    Fail::error(format!("Cannot serialise {type_name}: {reason}"))
}

impl Encoder<'_> {
    fn number(&mut self, n: f64) -> Result<(), Fail> {
        match self.cfg.encode_invalid_numbers {
            0 if !n.is_finite() => return Err(cannot("number", "must not be NaN or Inf")),
            1 if n.is_nan() => {
                self.out.extend_from_slice(b"nan");
                return Ok(());
            }
            2 if !n.is_finite() => {
                self.out.extend_from_slice(b"null");
                return Ok(());
            }
            _ => {}
        }
        let text = fmt_g(n, self.cfg.precision as usize);
        self.out.extend_from_slice(text.as_bytes());
        Ok(())
    }

    /// `json_append_data`: `v` at `depth`, with `top` Lua stack slots in use.
    fn value(&mut self, v: &Value, depth: i32, top: usize) -> Result<(), Fail> {
        match v {
            Value::String(s) => append_string(&mut self.out, &s.as_bytes()),
            Value::Integer(_) | Value::Number(_) => self.number(number_of(v).unwrap_or(0.0))?,
            Value::Boolean(b) => {
                self.out
                    .extend_from_slice(if *b { b"true" as &[u8] } else { b"false" })
            }
            Value::Nil => self.out.extend_from_slice(b"null"),
            Value::LightUserData(p) if p.0.is_null() => self.out.extend_from_slice(b"null"),
            Value::Table(t) => {
                let depth = depth + 1;
                if depth > self.cfg.encode_max_depth || top + 3 > MAX_C_STACK {
                    return Err(Fail::error(format!(
                        "Cannot serialise, excessive nesting ({depth})"
                    )));
                }
                let len = self.array_length(t)?;
                if len > 0 {
                    self.out.push(b'[');
                    for i in 1..=len {
                        if i > 1 {
                            self.out.push(b',');
                        }
                        let item: Value = t.raw_get(i).map_err(lua_err)?;
                        self.value(&item, depth, top + 1)?;
                    }
                    self.out.push(b']');
                } else {
                    self.object(t, depth, top)?;
                }
            }
            other => return Err(cannot(lua_type_name(other), "type not supported")),
        }
        Ok(())
    }

    /// `lua_array_length`: the array length, or -1 for an object.
    fn array_length(&self, t: &Table) -> Result<i32, Fail> {
        let mut max: i32 = 0;
        let mut items: i32 = 0;
        for pair in t.clone().pairs::<Value, Value>() {
            let (k, _) = pair.map_err(lua_err)?;
            match number_of(&k) {
                Some(k) if k != 0.0 && k.floor() == k && k >= 1.0 => {
                    if k > f64::from(max) {
                        // (int)k on x86-64: out of range is INT_MIN.
                        max = if k >= 2_147_483_648.0 {
                            i32::MIN
                        } else {
                            k as i32
                        };
                    }
                    items = items.wrapping_add(1);
                }
                _ => return Ok(-1),
            }
        }
        let cfg = self.cfg;
        if cfg.sparse_ratio > 0
            && max > items.wrapping_mul(cfg.sparse_ratio)
            && max > cfg.sparse_safe
        {
            if !cfg.sparse_convert {
                return Err(cannot("table", "excessively sparse array"));
            }
            return Ok(-1);
        }
        Ok(max)
    }

    fn object(&mut self, t: &Table, depth: i32, top: usize) -> Result<(), Fail> {
        self.out.push(b'{');
        let mut first = true;
        for pair in t.clone().pairs::<Value, Value>() {
            let (k, v) = pair.map_err(lua_err)?;
            if !first {
                self.out.push(b',');
            }
            first = false;
            match &k {
                Value::Integer(_) | Value::Number(_) => {
                    self.out.push(b'"');
                    self.number(number_of(&k).unwrap_or(0.0))?;
                    self.out.extend_from_slice(b"\":");
                }
                Value::String(s) => {
                    append_string(&mut self.out, &s.as_bytes());
                    self.out.push(b':');
                }
                other => {
                    return Err(cannot(
                        lua_type_name(other),
                        "table key must be a number or string",
                    ))
                }
            }
            self.value(&v, depth, top + 2)?;
        }
        self.out.push(b'}');
        Ok(())
    }
}

fn lua_err(_: mlua::Error) -> Fail {
    Fail::Raw(b"not enough memory".to_vec())
}

fn encode(lua: &Lua, cfg: &Shared, args: &[Value]) -> Outcome {
    if args.len() != 1 {
        return Err(Fail::arg(1, "expected 1 argument"));
    }
    let cfg = cfg.borrow().clone();
    let mut enc = Encoder {
        cfg: &cfg,
        out: Vec::new(),
    };
    enc.value(&args[0], 0, 1)?;
    Ok(vec![new_string(lua, &enc.out)?])
}

// ===== Decoding =====

#[derive(Clone, Copy, PartialEq, Debug)]
enum Kind {
    ObjBegin,
    ObjEnd,
    ArrBegin,
    ArrEnd,
    String,
    Number,
    Boolean,
    Null,
    Colon,
    Comma,
    End,
    Error,
}

fn kind_name(k: Kind) -> &'static str {
    match k {
        Kind::ObjBegin => "T_OBJ_BEGIN",
        Kind::ObjEnd => "T_OBJ_END",
        Kind::ArrBegin => "T_ARR_BEGIN",
        Kind::ArrEnd => "T_ARR_END",
        Kind::String => "T_STRING",
        Kind::Number => "T_NUMBER",
        Kind::Boolean => "T_BOOLEAN",
        Kind::Null => "T_NULL",
        Kind::Colon => "T_COLON",
        Kind::Comma => "T_COMMA",
        Kind::End => "T_END",
        Kind::Error => "T_ERROR",
    }
}

struct Token {
    kind: Kind,
    index: usize,
    number: f64,
    boolean: bool,
    string: Vec<u8>,
    error: &'static str,
}

impl Token {
    fn new(kind: Kind, index: usize) -> Token {
        Token {
            kind,
            index,
            number: 0.0,
            boolean: false,
            string: Vec::new(),
            error: "",
        }
    }
}

struct Parser<'a> {
    lua: &'a Lua,
    cfg: &'a Config,
    data: &'a [u8],
    pos: usize,
    depth: i32,
    /// Lua stack slots the C parser would be using.
    top: usize,
}

fn hex_digit(c: u8) -> Option<u32> {
    (c as char).to_digit(16)
}

impl Parser<'_> {
    /// The byte at `i`, 0 past the end (the C string's terminator).
    fn at(&self, i: usize) -> u8 {
        self.data.get(i).copied().unwrap_or(0)
    }

    fn error_token(&self, what: &'static str) -> Token {
        let mut t = Token::new(Kind::Error, self.pos);
        t.error = what;
        t
    }

    fn hex4(&self, at: usize) -> Option<u32> {
        let mut v = 0;
        for i in 0..4 {
            v = (v << 4) | hex_digit(self.at(at + i))?;
        }
        Some(v)
    }

    /// `json_append_unicode_escape` at `\u`: appends UTF-8 and advances.
    fn unicode_escape(&mut self, out: &mut Vec<u8>) -> Option<()> {
        let mut cp = self.hex4(self.pos + 2)?;
        let mut len = 6;
        if cp & 0xf800 == 0xd800 {
            if cp & 0x400 != 0 {
                return None;
            }
            if self.at(self.pos + 6) != b'\\' || self.at(self.pos + 7) != b'u' {
                return None;
            }
            let low = self.hex4(self.pos + 8)?;
            if low & 0xfc00 != 0xdc00 {
                return None;
            }
            cp = (((cp & 0x3ff) << 10) | (low & 0x3ff)) + 0x10000;
            len = 12;
        }
        let c = char::from_u32(cp)?;
        let mut buf = [0u8; 4];
        out.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
        self.pos += len;
        Some(())
    }

    fn string_token(&mut self) -> Token {
        self.pos += 1;
        let mut s = Vec::new();
        loop {
            let c = self.at(self.pos);
            if c == b'"' {
                break;
            }
            if c == 0 {
                return self.error_token("unexpected end of string");
            }
            let mut ch = c;
            if c == b'\\' {
                let e = self.at(self.pos + 1);
                if e == b'u' {
                    if self.unicode_escape(&mut s).is_some() {
                        continue;
                    }
                    return self.error_token("invalid unicode escape code");
                }
                ch = match e {
                    b'"' | b'\\' | b'/' => e,
                    b'b' => b'\x08',
                    b't' => b'\t',
                    b'n' => b'\n',
                    b'f' => b'\x0c',
                    b'r' => b'\r',
                    _ => return self.error_token("invalid escape code"),
                };
                self.pos += 1;
            }
            s.push(ch);
            self.pos += 1;
        }
        self.pos += 1;
        let mut t = Token::new(Kind::String, 0);
        t.string = s;
        t
    }

    /// `json_is_invalid_number`: forms `strtod` takes that JSON does not.
    fn is_invalid_number(&self) -> bool {
        let mut p = self.pos;
        if self.at(p) == b'+' {
            return true;
        }
        if self.at(p) == b'-' {
            p += 1;
        }
        if self.at(p) == b'0' {
            let c2 = self.at(p + 1);
            return (c2 | 0x20) == b'x' || c2.is_ascii_digit();
        }
        if self.at(p) <= b'9' {
            return false;
        }
        let rest = &self.data[p.min(self.data.len())..];
        let ci = |w: &[u8]| rest.len() >= 3 && rest[..3].eq_ignore_ascii_case(w);
        ci(b"inf") || ci(b"nan")
    }

    fn number_token(&mut self) -> Token {
        // The input ends at its first NUL, as strtod sees a C string.
        let end = self.data[self.pos..]
            .iter()
            .position(|&b| b == 0)
            .map_or(self.data.len(), |n| self.pos + n);
        let (v, used) = strtod(&self.data[self.pos..end]);
        if used == 0 {
            return self.error_token("invalid number");
        }
        self.pos += used;
        let mut t = Token::new(Kind::Number, 0);
        t.number = v;
        t
    }

    fn next_token(&mut self) -> Token {
        while matches!(self.at(self.pos), b' ' | b'\t' | b'\n' | b'\r') {
            self.pos += 1;
        }
        let index = self.pos;
        let c = self.at(self.pos);
        let single = match c {
            b'{' => Some(Kind::ObjBegin),
            b'}' => Some(Kind::ObjEnd),
            b'[' => Some(Kind::ArrBegin),
            b']' => Some(Kind::ArrEnd),
            b',' => Some(Kind::Comma),
            b':' => Some(Kind::Colon),
            _ => None,
        };
        if let Some(kind) = single {
            self.pos += 1;
            return Token::new(kind, index);
        }
        if c == 0 {
            return Token::new(Kind::End, index);
        }
        let mut t = if c == b'"' {
            self.string_token()
        } else if c == b'-' || c.is_ascii_digit() {
            if !self.cfg.decode_invalid_numbers && self.is_invalid_number() {
                self.error_token("invalid number")
            } else {
                self.number_token()
            }
        } else if !matches!(c, b'f' | b'i' | b'I' | b'n' | b'N' | b't' | b'+') {
            self.error_token("invalid token")
        } else if self.data[self.pos..].starts_with(b"true") {
            self.pos += 4;
            let mut t = Token::new(Kind::Boolean, 0);
            t.boolean = true;
            t
        } else if self.data[self.pos..].starts_with(b"false") {
            self.pos += 5;
            Token::new(Kind::Boolean, 0)
        } else if self.data[self.pos..].starts_with(b"null") {
            self.pos += 4;
            Token::new(Kind::Null, 0)
        } else if self.cfg.decode_invalid_numbers && self.is_invalid_number() {
            self.number_token()
        } else {
            self.error_token("invalid token")
        };
        if t.kind != Kind::Error {
            t.index = index;
        }
        t
    }

    fn parse_error(&self, expected: &str, t: &Token) -> Fail {
        let found = if t.kind == Kind::Error {
            t.error
        } else {
            kind_name(t.kind)
        };
        Fail::error(format!(
            "Expected {expected} but found {found} at character {}",
            t.index + 1
        ))
    }

    fn descend(&mut self, slots: usize) -> Result<(), Fail> {
        self.depth += 1;
        if self.depth <= self.cfg.decode_max_depth && self.top + slots <= MAX_C_STACK {
            return Ok(());
        }
        Err(Fail::error(format!(
            "Found too many nested data structures ({}) at character {}",
            self.depth, self.pos
        )))
    }

    fn new_table(&self) -> Result<Table, Fail> {
        self.lua.create_table().map_err(lua_err)
    }

    fn object(&mut self) -> Result<Value, Fail> {
        self.descend(3)?;
        let t = self.new_table()?;
        self.top += 1;
        let mut token = self.next_token();
        if token.kind == Kind::ObjEnd {
            self.depth -= 1;
            self.top -= 1;
            return Ok(Value::Table(t));
        }
        loop {
            if token.kind != Kind::String {
                return Err(self.parse_error("object key string", &token));
            }
            let key = new_string(self.lua, &token.string)?;
            self.top += 1;
            token = self.next_token();
            if token.kind != Kind::Colon {
                return Err(self.parse_error("colon", &token));
            }
            token = self.next_token();
            let value = self.value(token)?;
            self.top -= 1;
            t.raw_set(key, value).map_err(lua_err)?;
            token = self.next_token();
            if token.kind == Kind::ObjEnd {
                self.depth -= 1;
                self.top -= 1;
                return Ok(Value::Table(t));
            }
            if token.kind != Kind::Comma {
                return Err(self.parse_error("comma or object end", &token));
            }
            token = self.next_token();
        }
    }

    fn array(&mut self) -> Result<Value, Fail> {
        self.descend(2)?;
        let t = self.new_table()?;
        self.top += 1;
        let mut token = self.next_token();
        if token.kind == Kind::ArrEnd {
            self.depth -= 1;
            self.top -= 1;
            return Ok(Value::Table(t));
        }
        let mut i: i64 = 1;
        loop {
            let value = self.value(token)?;
            t.raw_set(i, value).map_err(lua_err)?;
            i += 1;
            token = self.next_token();
            if token.kind == Kind::ArrEnd {
                self.depth -= 1;
                self.top -= 1;
                return Ok(Value::Table(t));
            }
            if token.kind != Kind::Comma {
                return Err(self.parse_error("comma or array end", &token));
            }
            token = self.next_token();
        }
    }

    fn value(&mut self, token: Token) -> Result<Value, Fail> {
        Ok(match token.kind {
            Kind::String => new_string(self.lua, &token.string)?,
            Kind::Number => Value::Number(token.number),
            Kind::Boolean => Value::Boolean(token.boolean),
            Kind::ObjBegin => self.object()?,
            Kind::ArrBegin => self.array()?,
            Kind::Null => null(),
            _ => return Err(self.parse_error("value", &token)),
        })
    }
}

fn decode(lua: &Lua, cfg: &Shared, args: &[Value]) -> Outcome {
    if args.len() != 1 {
        return Err(Fail::arg(1, "expected 1 argument"));
    }
    let data = check_bytes(lua, args, 1)?;
    if data.len() >= 2 && (data[0] == 0 || data[1] == 0) {
        return Err(Fail::error("JSON parser does not support UTF-16 or UTF-32"));
    }
    let cfg = cfg.borrow().clone();
    let mut p = Parser {
        lua,
        cfg: &cfg,
        data: &data,
        pos: 0,
        depth: 0,
        top: 1,
    };
    let token = p.next_token();
    let value = p.value(token)?;
    let token = p.next_token();
    if token.kind != Kind::End {
        return Err(p.parse_error("the end", &token));
    }
    Ok(vec![value])
}

// ===== The module table =====

/// A new `cjson` table with its own default configuration (`cjson.new`).
fn new_table(lua: &Lua) -> mlua::Result<Table> {
    let cfg: Shared = Rc::new(RefCell::new(Config::default()));
    let t = lua.create_table()?;
    let c = cfg.clone();
    t.set("encode", wrap(lua, move |lua, args| encode(lua, &c, args))?)?;
    let c = cfg.clone();
    t.set("decode", wrap(lua, move |lua, args| decode(lua, &c, args))?)?;
    let c = cfg.clone();
    t.set(
        "encode_sparse_array",
        wrap(lua, move |lua, args| {
            arg_init(args, 3)?;
            let mut cfg = c.borrow_mut();
            let convert = bool_option(lua, args, 1, &mut cfg.sparse_convert)?;
            let ratio = integer_option(lua, args, 2, &mut cfg.sparse_ratio, 0, i32::MAX)?;
            let safe = integer_option(lua, args, 3, &mut cfg.sparse_safe, 0, i32::MAX)?;
            Ok(vec![convert, ratio, safe])
        })?,
    )?;
    let int_setting = |name: &str, field: fn(&mut Config) -> &mut i32, min: i32, max: i32| {
        let c = cfg.clone();
        t.set(
            name,
            wrap(lua, move |lua, args| {
                arg_init(args, 1)?;
                let mut cfg = c.borrow_mut();
                Ok(vec![integer_option(
                    lua,
                    args,
                    1,
                    field(&mut cfg),
                    min,
                    max,
                )?])
            })?,
        )
    };
    int_setting("encode_max_depth", |c| &mut c.encode_max_depth, 1, i32::MAX)?;
    int_setting("decode_max_depth", |c| &mut c.decode_max_depth, 1, i32::MAX)?;
    int_setting("encode_number_precision", |c| &mut c.precision, 1, 14)?;
    let bool_setting = |name: &str, field: fn(&mut Config) -> &mut bool| {
        let c = cfg.clone();
        t.set(
            name,
            wrap(lua, move |lua, args| {
                arg_init(args, 1)?;
                let mut cfg = c.borrow_mut();
                Ok(vec![bool_option(lua, args, 1, field(&mut cfg))?])
            })?,
        )
    };
    bool_setting("encode_keep_buffer", |c| &mut c.encode_keep_buffer)?;
    bool_setting("decode_invalid_numbers", |c| &mut c.decode_invalid_numbers)?;
    let c = cfg.clone();
    t.set(
        "encode_invalid_numbers",
        wrap(lua, move |lua, args| {
            arg_init(args, 1)?;
            let mut cfg = c.borrow_mut();
            Ok(vec![enum_option(
                lua,
                args,
                1,
                &mut cfg.encode_invalid_numbers,
                &["off", "on", "null"],
            )?])
        })?,
    )?;
    t.set(
        "new",
        wrap(lua, |lua, _| {
            let t = new_table(lua).map_err(lua_err)?;
            Ok(vec![Value::Table(t)])
        })?,
    )?;
    t.set("null", null())?;
    t.set("_NAME", "cjson")?;
    t.set("_VERSION", "2.1.0")?;
    Ok(t)
}

/// Sets the global `cjson` table.
pub(crate) fn open(lua: &Lua) -> mlua::Result<()> {
    let t = new_table(lua)?;
    lua.globals().set("cjson", t)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{check, lua, run};

    /// Expected strings captured from redis-server 7.0.15 with the harness
    /// in `testutil`.
    const CASES: &[(&str, &str)] = &[
        // @@CJSON_CASES@@
    ];

    #[test]
    fn matches_redis() {
        check(CASES);
    }

    #[test]
    fn garbage_never_panics() {
        let lua = lua();
        let alphabet = b"{}[],:\"\\u0123456789abcdefxEe.+-ntrlsIN \x00\x7f\xc3\xff";
        let mut x: u64 = 0x1234_5678_9abc_def1;
        for _ in 0..5000 {
            let mut data = String::new();
            for _ in 0..(x % 40) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                let b = alphabet[(x % alphabet.len() as u64) as usize];
                data.push_str(&format!("\\{b}"));
            }
            let _ = run(&lua, &format!("cjson.decode('{data}')"));
        }
    }
}
