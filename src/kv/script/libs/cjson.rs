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
//! the same inputs fail with the same texts. Here neither direction recurses:
//! open tables (and pending keys) wait in a per-call Lua table, so neither the
//! Rust stack nor mlua's handle stack grows with the nesting. Error texts are
//! CJSON's.
//!
//! Known differences: `%.14g` and `strtod` are reimplemented (checked against
//! the C library for decimal input; hexadecimal numbers that round into the
//! subnormal range may differ in the last bit).

use std::cell::RefCell;
use std::rc::Rc;

use mlua::{Function, LightUserData, Lua, Table, Value};

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
    /// Raw `next`.
    next: &'a Function,
    /// The open tables (and, for objects, the current key), by slot: handles
    /// are not held in Rust, so nesting is bounded by Lua's limits only.
    spill: Table,
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

    /// `json_append_data` for `v` at `depth`, with `top` Lua stack slots in
    /// use. The C code recurses into tables; this keeps its own stack of open
    /// tables, so deep nesting cannot overflow the Rust stack, and counts the
    /// Lua slots the recursion would use.
    fn value(&mut self, v: &Value, depth: i32, top: usize) -> Result<(), Fail> {
        let mut open: Vec<OpenTable> = Vec::new();
        self.start(v, depth, top, &mut open)?;
        while let Some(frame) = open.last_mut() {
            match frame {
                OpenTable::Array {
                    slot,
                    len,
                    next,
                    depth,
                    top,
                } => {
                    if *next > *len {
                        self.out.push(b']');
                        open.pop();
                        continue;
                    }
                    if *next > 1 {
                        self.out.push(b',');
                    }
                    let t: Table = self.spill.raw_get(*slot).map_err(lua_err)?;
                    let item: Value = t.raw_get(*next).map_err(lua_err)?;
                    *next += 1;
                    let (depth, top) = (*depth, *top + 1);
                    self.start(&item, depth, top, &mut open)?;
                }
                OpenTable::Object {
                    slot,
                    first,
                    depth,
                    top,
                } => {
                    let t: Value = self.spill.raw_get(*slot).map_err(lua_err)?;
                    let key: Value = self.spill.raw_get(*slot + 1).map_err(lua_err)?;
                    let (k, v): (Value, Value) = self.next.call((t, key)).map_err(lua_err)?;
                    if k.is_nil() {
                        self.out.push(b'}');
                        open.pop();
                        continue;
                    }
                    self.spill.raw_set(*slot + 1, k.clone()).map_err(lua_err)?;
                    if !*first {
                        self.out.push(b',');
                    }
                    *first = false;
                    let (depth, top) = (*depth, *top + 2);
                    self.key(&k)?;
                    self.start(&v, depth, top, &mut open)?;
                }
            }
        }
        Ok(())
    }

    /// Writes a scalar, or opens a table (writing `[` or `{`).
    fn start(
        &mut self,
        v: &Value,
        depth: i32,
        top: usize,
        open: &mut Vec<OpenTable>,
    ) -> Result<(), Fail> {
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
                let slot = 2 * open.len() as i64 + 1;
                self.spill.raw_set(slot, t.clone()).map_err(lua_err)?;
                self.spill.raw_set(slot + 1, Value::Nil).map_err(lua_err)?;
                if len > 0 {
                    self.out.push(b'[');
                    open.push(OpenTable::Array {
                        slot,
                        len,
                        next: 1,
                        depth,
                        top,
                    });
                } else {
                    self.out.push(b'{');
                    open.push(OpenTable::Object {
                        slot,
                        first: true,
                        depth,
                        top,
                    });
                }
            }
            other => return Err(cannot(lua_type_name(other), "type not supported")),
        }
        Ok(())
    }

    /// An object key: a number (written as a string) or a string.
    fn key(&mut self, k: &Value) -> Result<(), Fail> {
        match k {
            Value::Integer(_) | Value::Number(_) => {
                self.out.push(b'"');
                self.number(number_of(k).unwrap_or(0.0))?;
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
}

/// A table being written while encoding.
enum OpenTable {
    /// The table is in `spill[slot]`; `next` is the next index to write.
    Array {
        slot: i64,
        len: i32,
        next: i32,
        depth: i32,
        top: usize,
    },
    /// The table is in `spill[slot]`, the last key written in `spill[slot+1]`.
    Object {
        slot: i64,
        first: bool,
        depth: i32,
        top: usize,
    },
}

fn lua_err(_: mlua::Error) -> Fail {
    Fail::Raw(b"not enough memory".to_vec())
}

fn encode(lua: &Lua, cfg: &Shared, next: &Function, args: &[Value]) -> Outcome {
    if args.len() != 1 {
        return Err(Fail::arg(1, "expected 1 argument"));
    }
    let cfg = cfg.borrow().clone();
    let mut enc = Encoder {
        cfg: &cfg,
        out: Vec::new(),
        next,
        spill: lua.create_table().map_err(lua_err)?,
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
    /// The open tables (and, for objects, the pending key), by slot:
    /// handles are not held in Rust, so nesting is bounded by Lua's limits
    /// only.
    spill: Table,
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

    /// After `{` and its first token: checks for a key and colon and returns
    /// the key (on the Lua stack: `top` goes up by one).
    fn object_key(&mut self, token: &Token) -> Result<Value, Fail> {
        if token.kind != Kind::String {
            return Err(self.parse_error("object key string", token));
        }
        let key = new_string(self.lua, &token.string)?;
        self.top += 1;
        let colon = self.next_token();
        if colon.kind != Kind::Colon {
            return Err(self.parse_error("colon", &colon));
        }
        Ok(key)
    }

    /// `json_process_value` starting at `token`. The C code recurses into
    /// arrays and objects; this keeps its own stack of open containers, so
    /// deep input cannot overflow the Rust stack, and counts the Lua slots
    /// the recursion would use.
    fn value(&mut self, mut token: Token) -> Result<Value, Fail> {
        let mut open: Vec<Open> = Vec::new();
        loop {
            let slot = 2 * open.len() as i64 + 1;
            let mut v = match token.kind {
                Kind::String => new_string(self.lua, &token.string)?,
                Kind::Number => Value::Number(token.number),
                Kind::Boolean => Value::Boolean(token.boolean),
                Kind::Null => null(),
                Kind::ObjBegin => {
                    self.descend(3)?;
                    let t = self.new_table()?;
                    self.top += 1;
                    let first = self.next_token();
                    if first.kind == Kind::ObjEnd {
                        self.depth -= 1;
                        self.top -= 1;
                        Value::Table(t)
                    } else {
                        let key = self.object_key(&first)?;
                        self.spill.raw_set(slot, t).map_err(lua_err)?;
                        self.spill.raw_set(slot + 1, key).map_err(lua_err)?;
                        open.push(Open::Object { slot });
                        token = self.next_token();
                        continue;
                    }
                }
                Kind::ArrBegin => {
                    self.descend(2)?;
                    let t = self.new_table()?;
                    self.top += 1;
                    let first = self.next_token();
                    if first.kind == Kind::ArrEnd {
                        self.depth -= 1;
                        self.top -= 1;
                        Value::Table(t)
                    } else {
                        self.spill.raw_set(slot, t).map_err(lua_err)?;
                        open.push(Open::Array { slot, index: 1 });
                        token = first;
                        continue;
                    }
                }
                _ => return Err(self.parse_error("value", &token)),
            };
            // A value is complete: store it in the innermost open container,
            // closing every container it completes.
            loop {
                let Some(top) = open.last_mut() else {
                    return Ok(v);
                };
                match top {
                    Open::Array { slot, index } => {
                        let t: Table = self.spill.raw_get(*slot).map_err(lua_err)?;
                        t.raw_set(*index, v).map_err(lua_err)?;
                        *index += 1;
                        let next = self.next_token();
                        if next.kind != Kind::ArrEnd {
                            if next.kind != Kind::Comma {
                                return Err(self.parse_error("comma or array end", &next));
                            }
                            token = self.next_token();
                            break;
                        }
                    }
                    Open::Object { slot } => {
                        let slot = *slot;
                        self.top -= 1;
                        let t: Table = self.spill.raw_get(slot).map_err(lua_err)?;
                        let key: Value = self.spill.raw_get(slot + 1).map_err(lua_err)?;
                        t.raw_set(key, v).map_err(lua_err)?;
                        let next = self.next_token();
                        if next.kind != Kind::ObjEnd {
                            if next.kind != Kind::Comma {
                                return Err(self.parse_error("comma or object end", &next));
                            }
                            let first = self.next_token();
                            let key = self.object_key(&first)?;
                            self.spill.raw_set(slot + 1, key).map_err(lua_err)?;
                            token = self.next_token();
                            break;
                        }
                    }
                }
                self.depth -= 1;
                self.top -= 1;
                v = match open.pop() {
                    Some(Open::Array { slot, .. }) | Some(Open::Object { slot }) => {
                        self.spill.raw_get(slot).map_err(lua_err)?
                    }
                    None => Value::Nil,
                };
            }
        }
    }
}

/// An array or object being filled while decoding.
/// The table is in `spill[slot]`; an object's pending key in `spill[slot+1]`.
enum Open {
    Array { slot: i64, index: i64 },
    Object { slot: i64 },
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
        spill: lua.create_table().map_err(lua_err)?,
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
    // Fields are set in the C library's order, so `pairs(cjson)` visits
    // them in Redis's order.
    let t = lua.create_table()?;
    let c = cfg.clone();
    let next = super::next_fn(lua)?;
    t.set(
        "encode",
        wrap(lua, move |lua, args| encode(lua, &c, &next, args))?,
    )?;
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
    bool_setting("decode_invalid_numbers", |c| &mut c.decode_invalid_numbers)?;
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
        (r##"cjson.encode(1)"##, r##"true "1""##),
        (r##"cjson.encode(-1)"##, r##"true "-1""##),
        (r##"cjson.encode(0)"##, r##"true "0""##),
        (r##"cjson.encode(-0.0)"##, r##"true "-0""##),
        (r##"cjson.encode(1.5)"##, r##"true "1.5""##),
        (r##"cjson.encode(0.1)"##, r##"true "0.1""##),
        (r##"cjson.encode(1/3)"##, r##"true "0.33333333333333""##),
        (
            r##"cjson.encode(123456789012345)"##,
            r##"true "1.2345678901234e+14""##,
        ),
        (
            r##"cjson.encode(12345678901234567890)"##,
            r##"true "1.2345678901235e+19""##,
        ),
        (r##"cjson.encode(1e14)"##, r##"true "1e+14""##),
        (r##"cjson.encode(1e15)"##, r##"true "1e+15""##),
        (r##"cjson.encode(1e-5)"##, r##"true "1e-05""##),
        (r##"cjson.encode(0.0001)"##, r##"true "0.0001""##),
        (r##"cjson.encode(1e300)"##, r##"true "1e+300""##),
        (r##"cjson.encode(2^53)"##, r##"true "9.007199254741e+15""##),
        (
            r##"cjson.encode(-2^63)"##,
            r##"true "-9.2233720368548e+18""##,
        ),
        (
            r##"cjson.encode(5e-324)"##,
            r##"true "4.9406564584125e-324""##,
        ),
        (
            r##"cjson.encode(1/0)"##,
            r##"false "user_script:1: Cannot serialise number: must not be NaN or Inf""##,
        ),
        (
            r##"cjson.encode(-1/0)"##,
            r##"false "user_script:1: Cannot serialise number: must not be NaN or Inf""##,
        ),
        (
            r##"cjson.encode(0/0)"##,
            r##"false "user_script:1: Cannot serialise number: must not be NaN or Inf""##,
        ),
        (r##"cjson.encode('abc')"##, r##"true ""abc"""##),
        (r##"cjson.encode('')"##, r##"true """""##),
        (r##"cjson.encode('a"b\\c/d')"##, r##"true ""a\"b\\c\/d"""##),
        (
            r##"cjson.encode('\0\1\7\8\9\10\11\12\13\14\31\127\128\255')"##,
            r##"true ""\u0000\u0001\u0007\b\t\n\u000b\f\r\u000e\u001f\u007f\x80\xff"""##,
        ),
        (
            r##"cjson.encode('h\195\169llo')"##,
            r##"true ""h\xc3\xa9llo"""##,
        ),
        (
            r##"cjson.encode('\237\160\128')"##,
            r##"true ""\xed\xa0\x80"""##,
        ),
        (r##"cjson.encode(true)"##, r##"true "true""##),
        (r##"cjson.encode(false)"##, r##"true "false""##),
        (r##"cjson.encode(nil)"##, r##"true "null""##),
        (r##"cjson.encode(cjson.null)"##, r##"true "null""##),
        (r##"cjson.encode({})"##, r##"true "{}""##),
        (r##"cjson.encode({1, 2, 3})"##, r##"true "[1,2,3]""##),
        (
            r##"cjson.encode({1, 'a', true, false})"##,
            r##"true "[1,"a",true,false]""##,
        ),
        (r##"cjson.encode({1, nil, 3})"##, r##"true "[1,null,3]""##),
        (
            r##"cjson.encode({[1] = 1, [3] = 3})"##,
            r##"true "[1,null,3]""##,
        ),
        (
            r##"cjson.encode({[1] = 1, [10] = 10})"##,
            r##"true "[1,null,null,null,null,null,null,null,null,10]""##,
        ),
        (
            r##"cjson.encode({[1] = 1, [11] = 11})"##,
            r##"false "user_script:1: Cannot serialise table: excessively sparse array""##,
        ),
        (
            r##"cjson.encode({[11] = 11})"##,
            r##"false "user_script:1: Cannot serialise table: excessively sparse array""##,
        ),
        (
            r##"cjson.encode({[10] = 10})"##,
            r##"true "[null,null,null,null,null,null,null,null,null,10]""##,
        ),
        (r##"cjson.encode({[2] = 2})"##, r##"true "[null,2]""##),
        (
            r##"cjson.encode({[1] = 1, [2] = 2, [5] = 5})"##,
            r##"true "[1,2,null,null,5]""##,
        ),
        (r##"cjson.encode({[0] = 1})"##, r##"true "{"0":1}""##),
        (r##"cjson.encode({[-1] = 1})"##, r##"true "{"-1":1}""##),
        (r##"cjson.encode({[1.5] = 1})"##, r##"true "{"1.5":1}""##),
        (
            r##"cjson.encode({[1] = 1, x = 2})"##,
            r##"true "{"1":1,"x":2}""##,
        ),
        (r##"cjson.encode({a = 1})"##, r##"true "{"a":1}""##),
        (
            r##"cjson.encode({a = {b = {c = {}}}})"##,
            r##"true "{"a":{"b":{"c":{}}}}""##,
        ),
        (r##"cjson.encode({[1e20] = 1})"##, r##"true "{"1e+20":1}""##),
        (
            r##"cjson.encode({[2^31] = 1})"##,
            r##"true "{"2147483648":1}""##,
        ),
        (
            r##"cjson.encode({[2^31] = 1, [1] = 2})"##,
            r##"true "[2]""##,
        ),
        (
            r##"cjson.encode({[true] = 1})"##,
            r##"false "user_script:1: Cannot serialise boolean: table key must be a number or string""##,
        ),
        (
            r##"cjson.encode({[{}] = 1})"##,
            r##"false "user_script:1: Cannot serialise table: table key must be a number or string""##,
        ),
        (
            r##"cjson.encode({[1/0] = 1})"##,
            r##"false "user_script:1: Cannot serialise number: must not be NaN or Inf""##,
        ),
        (
            r##"cjson.encode({a = type})"##,
            r##"false "user_script:1: Cannot serialise function: type not supported""##,
        ),
        (
            r##"cjson.encode(type)"##,
            r##"false "user_script:1: Cannot serialise function: type not supported""##,
        ),
        (
            r##"cjson.encode(coroutine.create(function() end))"##,
            r##"false "user_script:1: Cannot serialise thread: type not supported""##,
        ),
        (
            r##"cjson.encode({cjson.null, cjson.null})"##,
            r##"true "[null,null]""##,
        ),
        (
            r##"cjson.encode({a = cjson.null})"##,
            r##"true "{"a":null}""##,
        ),
        (
            r##"cjson.encode({{}, {{}}, {a = {}}})"##,
            r##"true "[{},[{}],{"a":{}}]""##,
        ),
        (
            r##"cjson.encode({['a"b'] = '\n'})"##,
            r##"true "{"a\"b":"\n"}""##,
        ),
        (
            r##"cjson.encode({[1] = 'x', ['1'] = 'y'})"##,
            r##"true "{"1":"x","1":"y"}""##,
        ),
        (
            r##"cjson.encode({0.1, 1e100, -1e-100})"##,
            r##"true "[0.1,1e+100,-1e-100]""##,
        ),
        (
            r##"cjson.encode()"##,
            r##"false "user_script:1: bad argument #1 to 'encode' (expected 1 argument)""##,
        ),
        (
            r##"cjson.encode(1, 2)"##,
            r##"false "user_script:1: bad argument #1 to 'encode' (expected 1 argument)""##,
        ),
        (
            r##"(function() local t = {} local c = t for i = 1, 999 do c[1] = {} c = c[1] end return #cjson.encode(t) end)()"##,
            r##"true 2000"##,
        ),
        (
            r##"(function() local t = {} local c = t for i = 1, 1000 do c[1] = {} c = c[1] end return #cjson.encode(t) end)()"##,
            r##"false "user_script:1: Cannot serialise, excessive nesting (1001)""##,
        ),
        (
            r##"(function() local t = {} local c = t for i = 1, 1000 do c.k = {} c = c.k end return #cjson.encode(t) end)()"##,
            r##"false "user_script:1: Cannot serialise, excessive nesting (1001)""##,
        ),
        (
            r##"(function() local t = {} t[1] = t return cjson.encode(t) end)()"##,
            r##"false "user_script:1: Cannot serialise, excessive nesting (1001)""##,
        ),
        (
            r##"(function() local t = {} for i = 1, 100 do t[i] = i end return cjson.encode(t) end)()"##,
            r##"true "[1,2,3,4,5,6,7,8,9,10,11,12,13,14,15,16,17,18,19,20,21,22,23,24,25,26,27,28,29,30,31,32,33,34,35,36,37,38,39,40,41,42,43,44,45,46,47,48,49,50,51,52,53,54,55,56,57,58,59,60,61,62,63,64,65,66,67,68,69,70,71,72,73,74,75,76,77,78,79,80,81,82,83,84,85,86,87,88,89,90,91,92,93,94,95,96,97,98,99,100]""##,
        ),
        (
            r##"(function() local t = {} for i = 1, 30 do t[i * 2] = i end return cjson.encode(t) end)()"##,
            r##"true "[null,1,null,2,null,3,null,4,null,5,null,6,null,7,null,8,null,9,null,10,null,11,null,12,null,13,null,14,null,15,null,16,null,17,null,18,null,19,null,20,null,21,null,22,null,23,null,24,null,25,null,26,null,27,null,28,null,29,null,30]""##,
        ),
        (
            r##"(function() local t = {} for i = 1, 30 do t[i * 3] = i end return cjson.encode(t) end)()"##,
            r##"false "user_script:1: Cannot serialise table: excessively sparse array""##,
        ),
        (r##"cjson.decode('1')"##, r##"true 1"##),
        (r##"cjson.decode('-1.5e3')"##, r##"true -1500"##),
        (r##"cjson.decode('1E2')"##, r##"true 100"##),
        (r##"cjson.decode('0')"##, r##"true 0"##),
        (r##"cjson.decode('-0')"##, r##"true -0"##),
        (r##"cjson.decode('01')"##, r##"true 1"##),
        (r##"cjson.decode('0x10')"##, r##"true 16"##),
        (r##"cjson.decode('-0x10')"##, r##"true -16"##),
        (r##"cjson.decode('+1')"##, r##"true 1"##),
        (
            r##"cjson.decode('.5')"##,
            r##"false "user_script:1: Expected value but found invalid token at character 1""##,
        ),
        (r##"cjson.decode('5.')"##, r##"true 5"##),
        (
            r##"cjson.decode('1e')"##,
            r##"false "user_script:1: Expected the end but found invalid token at character 2""##,
        ),
        (
            r##"cjson.decode('1e+')"##,
            r##"false "user_script:1: Expected the end but found invalid token at character 2""##,
        ),
        (
            r##"cjson.decode('-')"##,
            r##"false "user_script:1: Expected value but found invalid number at character 1""##,
        ),
        (
            r##"cjson.decode('- 1')"##,
            r##"false "user_script:1: Expected value but found invalid number at character 1""##,
        ),
        (r##"cjson.decode('inf')"##, r##"true inf"##),
        (r##"cjson.decode('-inf')"##, r##"true -inf"##),
        (r##"cjson.decode('Infinity')"##, r##"true inf"##),
        (r##"cjson.decode('-Infinity')"##, r##"true -inf"##),
        (
            r##"cjson.decode('infinit')"##,
            r##"false "user_script:1: Expected the end but found invalid token at character 4""##,
        ),
        (r##"cjson.decode('nan')"##, r##"true nan"##),
        (r##"cjson.decode('NaN')"##, r##"true nan"##),
        (r##"cjson.decode('-nan')"##, r##"true -nan"##),
        (r##"cjson.decode('nan(123)')"##, r##"true nan"##),
        (
            r##"cjson.decode('nul')"##,
            r##"false "user_script:1: Expected value but found invalid token at character 1""##,
        ),
        (r##"cjson.decode('null')"##, r##"true cjson.null"##),
        (r##"cjson.decode('true')"##, r##"true true"##),
        (r##"cjson.decode('false')"##, r##"true false"##),
        (
            r##"cjson.decode('tru')"##,
            r##"false "user_script:1: Expected value but found invalid token at character 1""##,
        ),
        (
            r##"cjson.decode('truex')"##,
            r##"false "user_script:1: Expected the end but found invalid token at character 5""##,
        ),
        (
            r##"cjson.decode('True')"##,
            r##"false "user_script:1: Expected value but found invalid token at character 1""##,
        ),
        (r##"cjson.decode('  1  ')"##, r##"true 1"##),
        (r##"cjson.decode('\t\r\n1')"##, r##"true 1"##),
        (
            r##"cjson.decode('1 2')"##,
            r##"false "user_script:1: Expected the end but found T_NUMBER at character 3""##,
        ),
        (
            r##"cjson.decode('12345678901234567890')"##,
            r##"true 1.2345678901234567e+19"##,
        ),
        (r##"cjson.decode('1e400')"##, r##"true inf"##),
        (r##"cjson.decode('-1e400')"##, r##"true -inf"##),
        (r##"cjson.decode('1e-400')"##, r##"true 0"##),
        (r##"cjson.decode('0.1')"##, r##"true 0.10000000000000001"##),
        (r##"cjson.decode('"abc"')"##, r##"true "abc""##),
        (r##"cjson.decode('""')"##, r##"true """##),
        (
            r##"cjson.decode('"a\\"b\\\\c\\/d\\b\\f\\n\\r\\t"')"##,
            r##"true "a"b\c/d\x08\x0c\x0a\x0d\x09""##,
        ),
        (r##"cjson.decode('"\\u0041"')"##, r##"true "A""##),
        (r##"cjson.decode('"\\u00e9"')"##, r##"true "\xc3\xa9""##),
        (r##"cjson.decode('"\\u20AC"')"##, r##"true "\xe2\x82\xac""##),
        (
            r##"cjson.decode('"\\ud83d\\ude00"')"##,
            r##"true "\xf0\x9f\x98\x80""##,
        ),
        (
            r##"cjson.decode('"\\ud83d"')"##,
            r##"false "user_script:1: Expected value but found invalid unicode escape code at character 2""##,
        ),
        (
            r##"cjson.decode('"\\ude00"')"##,
            r##"false "user_script:1: Expected value but found invalid unicode escape code at character 2""##,
        ),
        (
            r##"cjson.decode('"\\ud83dx"')"##,
            r##"false "user_script:1: Expected value but found invalid unicode escape code at character 2""##,
        ),
        (
            r##"cjson.decode('"\\ud83d\\u0041"')"##,
            r##"false "user_script:1: Expected value but found invalid unicode escape code at character 2""##,
        ),
        (
            r##"cjson.decode('"\\u12"')"##,
            r##"false "user_script:1: Expected value but found invalid unicode escape code at character 2""##,
        ),
        (
            r##"cjson.decode('"\\u12g4"')"##,
            r##"false "user_script:1: Expected value but found invalid unicode escape code at character 2""##,
        ),
        (r##"cjson.decode('"\\u0000"')"##, r##"true "\x00""##),
        (
            r##"cjson.decode('"\\x"')"##,
            r##"false "user_script:1: Expected value but found invalid escape code at character 2""##,
        ),
        (
            r##"cjson.decode('"\\')"##,
            r##"false "user_script:1: Expected value but found invalid escape code at character 2""##,
        ),
        (
            r##"cjson.decode('"abc')"##,
            r##"false "user_script:1: Expected value but found unexpected end of string at character 5""##,
        ),
        (
            r##"cjson.decode('"a\0b"')"##,
            r##"false "user_script:1: Expected value but found unexpected end of string at character 3""##,
        ),
        (r##"cjson.decode('"\1\255"')"##, r##"true "\x01\xff""##),
        (r##"cjson.decode('"\195\169"')"##, r##"true "\xc3\xa9""##),
        (r##"cjson.decode('[]')"##, r##"true {}"##),
        (r##"cjson.decode('{}')"##, r##"true {}"##),
        (
            r##"cjson.decode('[1,2,3]')"##,
            r##"true {[1]=1,[2]=2,[3]=3}"##,
        ),
        (
            r##"cjson.decode('[1,[2,[3]]]')"##,
            r##"true {[1]=1,[2]={[1]=2,[2]={[1]=3}}}"##,
        ),
        (
            r##"cjson.decode('[1,]')"##,
            r##"false "user_script:1: Expected value but found T_ARR_END at character 4""##,
        ),
        (
            r##"cjson.decode('[,1]')"##,
            r##"false "user_script:1: Expected value but found T_COMMA at character 2""##,
        ),
        (
            r##"cjson.decode('[1 2]')"##,
            r##"false "user_script:1: Expected comma or array end but found T_NUMBER at character 4""##,
        ),
        (
            r##"cjson.decode('[1')"##,
            r##"false "user_script:1: Expected comma or array end but found T_END at character 3""##,
        ),
        (
            r##"cjson.decode('[')"##,
            r##"false "user_script:1: Expected value but found T_END at character 2""##,
        ),
        (
            r##"cjson.decode(']')"##,
            r##"false "user_script:1: Expected value but found T_ARR_END at character 1""##,
        ),
        (
            r##"cjson.decode('[null, 1, null]')"##,
            r##"true {[1]=cjson.null,[2]=1,[3]=cjson.null}"##,
        ),
        (r##"cjson.decode('{"a":1}')"##, r##"true {["a"]=1}"##),
        (
            r##"cjson.decode('{"a":1,"b":[true,false,null]}')"##,
            r##"true {["a"]=1,["b"]={[1]=true,[2]=false,[3]=cjson.null}}"##,
        ),
        (
            r##"cjson.decode('{"a":1,}')"##,
            r##"false "user_script:1: Expected object key string but found T_OBJ_END at character 8""##,
        ),
        (
            r##"cjson.decode('{"a" 1}')"##,
            r##"false "user_script:1: Expected colon but found T_NUMBER at character 6""##,
        ),
        (
            r##"cjson.decode('{"a":}')"##,
            r##"false "user_script:1: Expected value but found T_OBJ_END at character 6""##,
        ),
        (
            r##"cjson.decode('{1:2}')"##,
            r##"false "user_script:1: Expected object key string but found T_NUMBER at character 2""##,
        ),
        (
            r##"cjson.decode('{"a":1 "b":2}')"##,
            r##"false "user_script:1: Expected comma or object end but found T_STRING at character 8""##,
        ),
        (
            r##"cjson.decode('{"a":1')"##,
            r##"false "user_script:1: Expected comma or object end but found T_END at character 7""##,
        ),
        (
            r##"cjson.decode('{"a"')"##,
            r##"false "user_script:1: Expected colon but found T_END at character 5""##,
        ),
        (
            r##"cjson.decode('{')"##,
            r##"false "user_script:1: Expected object key string but found T_END at character 2""##,
        ),
        (
            r##"cjson.decode('}')"##,
            r##"false "user_script:1: Expected value but found T_OBJ_END at character 1""##,
        ),
        (r##"cjson.decode('{"a":1,"a":2}')"##, r##"true {["a"]=2}"##),
        (r##"cjson.decode('{"":0}')"##, r##"true {[""]=0}"##),
        (
            r##"cjson.decode(':')"##,
            r##"false "user_script:1: Expected value but found T_COLON at character 1""##,
        ),
        (
            r##"cjson.decode(',')"##,
            r##"false "user_script:1: Expected value but found T_COMMA at character 1""##,
        ),
        (
            r##"cjson.decode('')"##,
            r##"false "user_script:1: Expected value but found T_END at character 1""##,
        ),
        (
            r##"cjson.decode(' ')"##,
            r##"false "user_script:1: Expected value but found T_END at character 2""##,
        ),
        (
            r##"cjson.decode('x')"##,
            r##"false "user_script:1: Expected value but found invalid token at character 1""##,
        ),
        (
            r##"cjson.decode('@')"##,
            r##"false "user_script:1: Expected value but found invalid token at character 1""##,
        ),
        (
            r##"cjson.decode('\0')"##,
            r##"false "user_script:1: Expected value but found T_END at character 1""##,
        ),
        (
            r##"cjson.decode('1\0garbage')"##,
            r##"false "user_script:1: JSON parser does not support UTF-16 or UTF-32""##,
        ),
        (
            r##"cjson.decode('\0\0')"##,
            r##"false "user_script:1: JSON parser does not support UTF-16 or UTF-32""##,
        ),
        (
            r##"cjson.decode('a\0')"##,
            r##"false "user_script:1: JSON parser does not support UTF-16 or UTF-32""##,
        ),
        (
            r##"cjson.decode('[1,2]x')"##,
            r##"false "user_script:1: Expected the end but found invalid token at character 6""##,
        ),
        (r##"cjson.decode(12)"##, r##"true 12"##),
        (r##"cjson.decode(1.5)"##, r##"true 1.5"##),
        (
            r##"cjson.decode({})"##,
            r##"false "user_script:1: bad argument #1 to 'decode' (string expected, got table)""##,
        ),
        (
            r##"cjson.decode()"##,
            r##"false "user_script:1: bad argument #1 to 'decode' (expected 1 argument)""##,
        ),
        (
            r##"cjson.decode(nil)"##,
            r##"false "user_script:1: bad argument #1 to 'decode' (string expected, got nil)""##,
        ),
        (
            r##"cjson.decode('1', 2)"##,
            r##"false "user_script:1: bad argument #1 to 'decode' (expected 1 argument)""##,
        ),
        (
            r##"cjson.decode('[' .. string.rep('[', 998) .. string.rep(']', 999))"##,
            r##"true {[1]={[1]={[1]={[1]={[1]={[1]={[1]={[1]={[1]={[1]={[1]={[1]={[1]={[1]={[1]={[1]={[1]={[1]={[1]={[1]={[1]={...}}}}}}}}}}}}}}}}}}}}}}"##,
        ),
        (
            r##"#cjson.decode(string.rep('[', 1000) .. string.rep(']', 1000))"##,
            r##"true 1"##,
        ),
        (
            r##"cjson.decode(string.rep('[', 1001) .. string.rep(']', 1001))"##,
            r##"false "user_script:1: Found too many nested data structures (1001) at character 1001""##,
        ),
        (
            r##"cjson.decode(string.rep('{"a":', 1001))"##,
            r##"false "user_script:1: Found too many nested data structures (1001) at character 5001""##,
        ),
        (
            r##"cjson.decode('[1, {"x": [1, 2, {"y": null}]}]')"##,
            r##"true {[1]=1,[2]={["x"]={[1]=1,[2]=2,[3]={["y"]=cjson.null}}}}"##,
        ),
        (
            r##"cjson.encode(cjson.decode('{"a":[1,2,{"b":null}],"c":"d"}'))"##,
            r##"true "{"a":[1,2,{"b":null}],"c":"d"}""##,
        ),
        (
            r##"cjson.encode(cjson.decode('[1.5, -0, 1e300, "\\u00e9"]'))"##,
            r##"true "[1.5,-0,1e+300,"\xc3\xa9"]""##,
        ),
        (r##"cjson.decode('{"a":1}').a"##, r##"true 1"##),
        (
            r##"cjson.decode('[null]')[1] == cjson.null"##,
            r##"true true"##,
        ),
        (r##"type(cjson.null)"##, r##"true "userdata""##),
        (r##"cjson.null == nil"##, r##"true false"##),
        (r##"tostring(cjson.null)"##, r##"true "userdata: (nil)""##),
        (r##"cjson._NAME"##, r##"true "cjson""##),
        (r##"cjson._VERSION"##, r##"true "2.1.0""##),
        (r##"cjson.encode_sparse_array()"##, r##"true false 2 10"##),
        (
            r##"cjson.encode_sparse_array(true)"##,
            r##"true true 2 10"##,
        ),
        (
            r##"cjson.encode_sparse_array('on')"##,
            r##"true true 2 10"##,
        ),
        (
            r##"cjson.encode_sparse_array('off')"##,
            r##"true false 2 10"##,
        ),
        (
            r##"cjson.encode_sparse_array('maybe')"##,
            r##"false "user_script:1: bad argument #1 to 'encode_sparse_array' (invalid option 'maybe')""##,
        ),
        (
            r##"cjson.encode_sparse_array(1)"##,
            r##"false "user_script:1: bad argument #1 to 'encode_sparse_array' (invalid option '1')""##,
        ),
        (
            r##"cjson.encode_sparse_array(nil, 3)"##,
            r##"true false 3 10"##,
        ),
        (
            r##"cjson.encode_sparse_array(nil, nil, 5)"##,
            r##"true false 2 5"##,
        ),
        (
            r##"cjson.encode_sparse_array(nil, -1)"##,
            r##"false "user_script:1: bad argument #1 to 'encode_sparse_array' (expected integer between 0 and 2147483647)""##,
        ),
        (
            r##"cjson.encode_sparse_array(nil, nil, -1)"##,
            r##"false "user_script:1: bad argument #1 to 'encode_sparse_array' (expected integer between 0 and 2147483647)""##,
        ),
        (
            r##"cjson.encode_sparse_array(nil, 'x')"##,
            r##"false "user_script:1: bad argument #2 to 'encode_sparse_array' (number expected, got string)""##,
        ),
        (
            r##"cjson.encode_sparse_array(nil, 2^32 + 3)"##,
            r##"true false 3 10"##,
        ),
        (
            r##"cjson.encode_sparse_array(true, 1, 2, 4)"##,
            r##"false "user_script:1: bad argument #4 to 'encode_sparse_array' (found too many arguments)""##,
        ),
        (
            r##"(function() cjson.encode_sparse_array(true) return cjson.encode({[1] = 1, [20] = 2}) end)()"##,
            r##"true "{"1":1,"20":2}""##,
        ),
        (
            r##"(function() cjson.encode_sparse_array(false, 0) return cjson.encode({[1] = 1, [20] = 2}) end)()"##,
            r##"true "[1,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,null,2]""##,
        ),
        (
            r##"(function() cjson.encode_sparse_array(false, 1, 0) return cjson.encode({[1] = 1, [3] = 2}) end)()"##,
            r##"false "user_script:1: Cannot serialise table: excessively sparse array""##,
        ),
        (
            r##"(function() cjson.encode_sparse_array(false, 2, 0) return cjson.encode({[1] = 1, [3] = 2}) end)()"##,
            r##"true "[1,null,2]""##,
        ),
        (
            r##"(function() cjson.encode_sparse_array(false, 2, 0) return cjson.encode({[1] = 1, [4] = 2}) end)()"##,
            r##"true "[1,null,null,2]""##,
        ),
        (r##"cjson.encode_max_depth()"##, r##"true 1000"##),
        (r##"cjson.encode_max_depth(5)"##, r##"true 5"##),
        (
            r##"cjson.encode_max_depth(0)"##,
            r##"false "user_script:1: bad argument #1 to 'encode_max_depth' (expected integer between 1 and 2147483647)""##,
        ),
        (
            r##"cjson.encode_max_depth(1, 2)"##,
            r##"false "user_script:1: bad argument #2 to 'encode_max_depth' (found too many arguments)""##,
        ),
        (
            r##"(function() cjson.encode_max_depth(2) return cjson.encode({{1}}) end)()"##,
            r##"true "[[1]]""##,
        ),
        (
            r##"(function() cjson.encode_max_depth(2) return cjson.encode({{{1}}}) end)()"##,
            r##"false "user_script:1: Cannot serialise, excessive nesting (3)""##,
        ),
        (
            r##"(function() cjson.encode_max_depth(100000) local t = {} local c = t for i = 1, 7996 do c[1] = {} c = c[1] end return #cjson.encode(t) end)()"##,
            r##"true 15994"##,
        ),
        (
            r##"(function() cjson.encode_max_depth(100000) local t = {} local c = t for i = 1, 7997 do c[1] = {} c = c[1] end return #cjson.encode(t) end)()"##,
            r##"false "user_script:1: Cannot serialise, excessive nesting (7998)""##,
        ),
        (
            r##"(function() cjson.encode_max_depth(100000) local t = {} local c = t for i = 1, 3998 do c.k = {} c = c.k end return #cjson.encode(t) end)()"##,
            r##"true 23990"##,
        ),
        (
            r##"(function() cjson.encode_max_depth(100000) local t = {} local c = t for i = 1, 3999 do c.k = {} c = c.k end return #cjson.encode(t) end)()"##,
            r##"false "user_script:1: Cannot serialise, excessive nesting (4000)""##,
        ),
        (r##"cjson.decode_max_depth()"##, r##"true 1000"##),
        (r##"cjson.decode_max_depth(3)"##, r##"true 3"##),
        (
            r##"(function() cjson.decode_max_depth(2) return cjson.decode('[[1]]') end)()"##,
            r##"true {[1]={[1]=1}}"##,
        ),
        (
            r##"(function() cjson.decode_max_depth(2) return cjson.decode('[[[1]]]') end)()"##,
            r##"false "user_script:1: Found too many nested data structures (3) at character 3""##,
        ),
        (
            r##"(function() cjson.decode_max_depth(2) return cjson.decode('{"a":{"b":{}}}') end)()"##,
            r##"false "user_script:1: Found too many nested data structures (3) at character 11""##,
        ),
        (
            r##"(function() cjson.decode_max_depth(100000) return #cjson.decode(string.rep('[', 7998) .. string.rep(']', 7998)) end)()"##,
            r##"true 1"##,
        ),
        (
            r##"(function() cjson.decode_max_depth(100000) return #cjson.decode(string.rep('[', 7999) .. string.rep(']', 7999)) end)()"##,
            r##"false "user_script:1: Found too many nested data structures (7999) at character 7999""##,
        ),
        (
            r##"(function() cjson.decode_max_depth(100000) return cjson.decode(string.rep('{"a":', 3999) .. '1' .. string.rep('}', 3999)) ~= nil end)()"##,
            r##"true true"##,
        ),
        (
            r##"(function() cjson.decode_max_depth(100000) return cjson.decode(string.rep('{"a":', 4000) .. '1' .. string.rep('}', 4000)) ~= nil end)()"##,
            r##"false "user_script:1: Found too many nested data structures (4000) at character 19996""##,
        ),
        (
            r##"cjson.decode_max_depth(-1)"##,
            r##"false "user_script:1: bad argument #1 to 'decode_max_depth' (expected integer between 1 and 2147483647)""##,
        ),
        (r##"cjson.encode_number_precision()"##, r##"true 14"##),
        (r##"cjson.encode_number_precision(3)"##, r##"true 3"##),
        (
            r##"cjson.encode_number_precision(15)"##,
            r##"false "user_script:1: bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)""##,
        ),
        (
            r##"cjson.encode_number_precision(0)"##,
            r##"false "user_script:1: bad argument #1 to 'encode_number_precision' (expected integer between 1 and 14)""##,
        ),
        (
            r##"(function() cjson.encode_number_precision(3) return cjson.encode({1/3, 12345, 0.0001234, 1e20}) end)()"##,
            r##"true "[0.333,1.23e+04,0.000123,1e+20]""##,
        ),
        (
            r##"(function() cjson.encode_number_precision(1) return cjson.encode({2.5, 15, 0.15}) end)()"##,
            r##"true "[2,2e+01,0.1]""##,
        ),
        (r##"cjson.encode_keep_buffer()"##, r##"true true"##),
        (r##"cjson.encode_keep_buffer(false)"##, r##"true false"##),
        (r##"cjson.encode_keep_buffer('on')"##, r##"true true"##),
        (
            r##"cjson.encode_keep_buffer('x')"##,
            r##"false "user_script:1: bad argument #1 to 'encode_keep_buffer' (invalid option 'x')""##,
        ),
        (
            r##"(function() cjson.encode_keep_buffer(false) return cjson.encode({1}) end)()"##,
            r##"true "[1]""##,
        ),
        (r##"cjson.encode_invalid_numbers()"##, r##"true false"##),
        (r##"cjson.encode_invalid_numbers(true)"##, r##"true true"##),
        (
            r##"cjson.encode_invalid_numbers('null')"##,
            r##"true "null""##,
        ),
        (r##"cjson.encode_invalid_numbers('on')"##, r##"true true"##),
        (
            r##"cjson.encode_invalid_numbers('bogus')"##,
            r##"false "user_script:1: bad argument #1 to 'encode_invalid_numbers' (invalid option 'bogus')""##,
        ),
        (
            r##"cjson.encode_invalid_numbers(5)"##,
            r##"false "user_script:1: bad argument #1 to 'encode_invalid_numbers' (invalid option '5')""##,
        ),
        (
            r##"(function() cjson.encode_invalid_numbers(true) return cjson.encode({1/0, -1/0, 0/0}) end)()"##,
            r##"true "[inf,-inf,nan]""##,
        ),
        (
            r##"(function() cjson.encode_invalid_numbers('null') return cjson.encode({1/0, -1/0, 0/0, 1}) end)()"##,
            r##"true "[null,null,null,1]""##,
        ),
        (
            r##"(function() cjson.encode_invalid_numbers(true) return cjson.encode({[1/0] = 1}) end)()"##,
            r##"true "{"inf":1}""##,
        ),
        (r##"cjson.decode_invalid_numbers()"##, r##"true true"##),
        (
            r##"cjson.decode_invalid_numbers(false)"##,
            r##"true false"##,
        ),
        (
            r##"(function() cjson.decode_invalid_numbers(false) return cjson.decode('0x10') end)()"##,
            r##"false "user_script:1: Expected value but found invalid number at character 1""##,
        ),
        (
            r##"(function() cjson.decode_invalid_numbers(false) return cjson.decode('01') end)()"##,
            r##"false "user_script:1: Expected value but found invalid number at character 1""##,
        ),
        (
            r##"(function() cjson.decode_invalid_numbers(false) return cjson.decode('-0x1') end)()"##,
            r##"false "user_script:1: Expected value but found invalid number at character 1""##,
        ),
        (
            r##"(function() cjson.decode_invalid_numbers(false) return cjson.decode('inf') end)()"##,
            r##"false "user_script:1: Expected value but found invalid token at character 1""##,
        ),
        (
            r##"(function() cjson.decode_invalid_numbers(false) return cjson.decode('-inf') end)()"##,
            r##"false "user_script:1: Expected value but found invalid number at character 1""##,
        ),
        (
            r##"(function() cjson.decode_invalid_numbers(false) return cjson.decode('+1') end)()"##,
            r##"false "user_script:1: Expected value but found invalid token at character 1""##,
        ),
        (
            r##"(function() cjson.decode_invalid_numbers(false) return cjson.decode('-') end)()"##,
            r##"false "user_script:1: Expected value but found invalid number at character 1""##,
        ),
        (
            r##"(function() cjson.decode_invalid_numbers(false) return cjson.decode('[1.5, -2]') end)()"##,
            r##"true {[1]=1.5,[2]=-2}"##,
        ),
        (
            r##"(function() cjson.decode_invalid_numbers(false) return cjson.decode('NaN') end)()"##,
            r##"false "user_script:1: Expected value but found invalid token at character 1""##,
        ),
        (
            r##"(function() local j = cjson.new() cjson.encode_max_depth(1) return j.encode({{1}}) end)()"##,
            r##"true "[[1]]""##,
        ),
        (
            r##"(function() local j = cjson.new() return j ~= cjson, j.null == cjson.null, j._NAME, j.new ~= nil end)()"##,
            r##"true true true "cjson" true"##,
        ),
        (r##"cjson.new().encode_max_depth()"##, r##"true 1000"##),
        (
            r##"cjson:encode()"##,
            r##"false "user_script:1: Cannot serialise function: type not supported""##,
        ),
        (
            r##"select(2, pcall(cjson.encode))"##,
            r##"true "bad argument #1 to '?' (expected 1 argument)""##,
        ),
        (
            r##"select(2, pcall(cjson.decode, '['))"##,
            r##"true "Expected value but found T_END at character 2""##,
        ),
        (
            r##"(function() local f = cjson.decode return f('x') end)()"##,
            r##"false "user_script:1: Expected value but found invalid token at character 1""##,
        ),
        (
            r##"cjson.encode({1, 2, a = 3})"##,
            r##"true "{"1":1,"2":2,"a":3}""##,
        ),
        (
            r##"cjson.encode({['\1'] = 1})"##,
            r##"true "{"\u0001":1}""##,
        ),
        (r##"cjson.encode({[-0.0] = 1})"##, r##"true "{"-0":1}""##),
        (
            r##"cjson.encode(cjson.decode('1e5'))"##,
            r##"true "100000""##,
        ),
        (
            r##"cjson.encode(cjson.decode('123456789.123456789'))"##,
            r##"true "123456789.12346""##,
        ),
        (
            r##"cjson.encode({cjson.encode})"##,
            r##"false "user_script:1: Cannot serialise function: type not supported""##,
        ),
        (
            r##"cjson.encode({coroutine.create(function() end)})"##,
            r##"false "user_script:1: Cannot serialise thread: type not supported""##,
        ),
        (
            r##"cjson.encode('\226\130\172')"##,
            r##"true ""\xe2\x82\xac"""##,
        ),
        (
            r##"(function() local t = {} for i = 1, 20000 do t['k' .. i] = {i, 'v'} end return #cjson.encode(t) end)()"##,
            r##"true 397789"##,
        ),
        (
            r##"(function() local t = {} for i = 1, 20000 do t['k' .. i] = {i, 'v'} end local u = cjson.decode(cjson.encode(t)) return u.k5[1], u.k20000[2] end)()"##,
            r##"true 5 "v""##,
        ),
        (
            r##"(function() local t = {} for i = 1, 20000 do t[i] = 'x' .. i end return #cjson.encode(t) end)()"##,
            r##"true 168895"##,
        ),
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
