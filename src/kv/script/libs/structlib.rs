//! `struct`: Roberto Ierusalimschy's binary packing library as Redis 7.0
//! ships it (`lua_struct.c`), for x86-64 (`long` and `size_t` are 8 bytes,
//! native order little-endian, maximum alignment 8).
//!
//! Format characters: `b/B h/H l/L T i/In I/In` integers (sizes 1, 2, 8, 8,
//! `n` up to 32, default 4), `f` float, `d` double, `x` a zero byte, `cn` `n`
//! bytes (`c0`: the whole string when packing, the previous result as length
//! when unpacking), `s` a zero-terminated string, `>`/`<` big/little endian,
//! `!n` maximum alignment (default 8), spaces ignored. The format ends at its
//! first NUL byte (it is a C string).
//!
//! Quirks kept from the C code: integers are converted from doubles as x86-64
//! does (out of range gives `2^63` for negatives and 0 above 2^64); a short
//! string for `cn` blames the argument after it; `unpack`'s offset is a
//! `size_t`, so a negative one is huge and reads as "data string too short";
//! sign extension of integers wider than 8 bytes uses the shift count modulo
//! 64, as the `shl` instruction does; `size` ignores unknown letters.

use mlua::{Lua, Value};

use super::{
    check_bytes, check_number, double_to_i64, double_to_u64, opt_integer, to_number, wrap,
    wrap_packed, Fail, Outcome, PackedOutcome, MAX_C_STACK,
};

/// The maximum alignment `!` sets without a number (x86-64's `MAXALIGN`).
const MAXALIGN: i64 = 8;
/// The widest integer option.
const MAXINTSIZE: i64 = 32;

#[derive(Clone, Copy, PartialEq)]
enum Endian {
    Big,
    Little,
}

struct Header {
    endian: Endian,
    align: u64,
}

impl Header {
    fn new() -> Header {
        Header {
            endian: Endian::Little,
            align: 1,
        }
    }
}

/// A format being read: the C string and the cursor.
struct Format {
    bytes: Vec<u8>,
    pos: usize,
}

impl Format {
    fn new(mut bytes: Vec<u8>) -> Format {
        if let Some(nul) = bytes.iter().position(|&b| b == 0) {
            bytes.truncate(nul);
        }
        Format { bytes, pos: 0 }
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.bytes.get(self.pos).copied();
        self.pos += 1;
        c
    }

    /// `getnum`: a decimal number at the cursor, or `default`.
    fn number(&mut self, default: i64) -> Result<i64, Fail> {
        if !self.bytes.get(self.pos).is_some_and(u8::is_ascii_digit) {
            return Ok(default);
        }
        let mut a: i64 = 0;
        while let Some(&c) = self.bytes.get(self.pos).filter(|c| c.is_ascii_digit()) {
            let d = i64::from(c - b'0');
            let max = i64::from(i32::MAX);
            if a > max / 10 || a * 10 > max - d {
                return Err(Fail::error("integral size overflow"));
            }
            a = a * 10 + d;
            self.pos += 1;
        }
        Ok(a)
    }

    /// `optsize`: the size of option `opt`, reading its number if it has one.
    fn size(&mut self, opt: u8) -> Result<u64, Fail> {
        Ok(match opt {
            b'B' | b'b' | b'x' => 1,
            b'H' | b'h' => 2,
            b'L' | b'l' | b'T' | b'd' => 8,
            b'f' => 4,
            b'c' => self.number(1)? as u64,
            b'i' | b'I' => {
                let sz = self.number(4)?;
                if sz > MAXINTSIZE {
                    return Err(Fail::error(format!(
                        "integral size {sz} is larger than limit of {MAXINTSIZE}"
                    )));
                }
                sz as u64
            }
            _ => 0,
        })
    }

    /// `controloptions`: endianness, alignment, spaces; anything else is an
    /// invalid option.
    fn control(&mut self, opt: u8, h: &mut Header) -> Result<(), Fail> {
        match opt {
            b' ' => {}
            b'>' => h.endian = Endian::Big,
            b'<' => h.endian = Endian::Little,
            b'!' => {
                let a = self.number(MAXALIGN)?;
                if a <= 0 || a & (a - 1) != 0 {
                    return Err(Fail::error(format!("alignment {a} is not a power of 2")));
                }
                h.align = a as u64;
            }
            _ => {
                let mut msg = b"invalid format option '".to_vec();
                msg.push(opt);
                msg.push(b'\'');
                return Err(Fail::Arg(1, msg));
            }
        }
        Ok(())
    }
}

/// `gettoalign`: padding before an item of `size` at offset `len`.
fn to_align(len: u64, h: &Header, opt: u8, size: u64) -> u64 {
    if size == 0 || opt == b'c' {
        return 0;
    }
    let size = size.min(h.align);
    size.wrapping_sub(len & size.wrapping_sub(1)) & size.wrapping_sub(1)
}

fn is_int_option(opt: u8) -> bool {
    matches!(
        opt,
        b'b' | b'B' | b'h' | b'H' | b'l' | b'L' | b'T' | b'i' | b'I'
    )
}

fn pack(lua: &Lua, args: &[Value]) -> Outcome {
    // The C code pushes a nil above its arguments before reading them, so a
    // missing first argument is "got nil", later ones "got no value". (Past
    // 8 KiB of output, luaL_Buffer's own stack slots are what it reads; that
    // is not emulated: those are "no value" here.)
    let mut padded = args.to_vec();
    if !padded.is_empty() {
        padded.push(Value::Nil);
    }
    let args = padded.as_slice();
    let mut fmt = Format::new(check_bytes(lua, args, 1)?);
    let mut h = Header::new();
    let mut argi = 2;
    let mut out: Vec<u8> = Vec::new();
    let mut total: u64 = 0;
    while let Some(opt) = fmt.next() {
        let mut size = fmt.size(opt)?;
        let pad = to_align(total, &h, opt, size);
        total = total.wrapping_add(pad);
        out.extend(std::iter::repeat_n(0u8, pad as usize));
        match opt {
            _ if is_int_option(opt) => {
                let n = check_number(lua, args, argi)?;
                argi += 1;
                let mut value = if n < 0.0 {
                    double_to_i64(n) as u64
                } else {
                    double_to_u64(n)
                };
                let mut buf = vec![0u8; size as usize];
                let mut put = |slot: &mut u8| {
                    *slot = (value & 0xff) as u8;
                    value >>= 8;
                };
                match h.endian {
                    Endian::Little => buf.iter_mut().for_each(&mut put),
                    Endian::Big => buf.iter_mut().rev().for_each(&mut put),
                }
                out.extend(buf);
            }
            b'x' => out.push(0),
            b'f' => {
                let f = check_number(lua, args, argi)? as f32;
                argi += 1;
                match h.endian {
                    Endian::Little => out.extend(f.to_le_bytes()),
                    Endian::Big => out.extend(f.to_be_bytes()),
                }
            }
            b'd' => {
                let d = check_number(lua, args, argi)?;
                argi += 1;
                match h.endian {
                    Endian::Little => out.extend(d.to_le_bytes()),
                    Endian::Big => out.extend(d.to_be_bytes()),
                }
            }
            b'c' | b's' => {
                let s = check_bytes(lua, args, argi)?;
                argi += 1;
                if size == 0 {
                    size = s.len() as u64;
                }
                if (s.len() as u64) < size {
                    return Err(Fail::arg(argi as i32, "string too short"));
                }
                out.extend_from_slice(&s[..size as usize]);
                if opt == b's' {
                    out.push(0);
                    size += 1;
                }
            }
            _ => fmt.control(opt, &mut h)?,
        }
        total = total.wrapping_add(size);
    }
    let s = lua
        .create_string(&out)
        .map_err(|_| Fail::Raw(b"not enough memory".to_vec()))?;
    Ok(vec![Value::String(s)])
}

/// `getinteger`: `bytes` as an integer, sign-extended for signed options.
fn get_integer(bytes: &[u8], endian: Endian, signed: bool) -> f64 {
    let mut l: u64 = 0;
    let mut take = |b: &u8| l = (l << 8) | u64::from(*b);
    match endian {
        Endian::Big => bytes.iter().for_each(&mut take),
        Endian::Little => bytes.iter().rev().for_each(&mut take),
    }
    if !signed {
        return l as f64;
    }
    let shift = (bytes.len() as i64 * 8 - 1) as u32;
    let mask = u64::MAX.wrapping_shl(shift);
    if l & mask != 0 {
        l |= mask;
    }
    l as i64 as f64
}

fn unpack(lua: &Lua, args: &[Value]) -> PackedOutcome {
    let mut fmt = Format::new(check_bytes(lua, args, 1)?);
    let data = check_bytes(lua, args, 2)?;
    let ld = data.len() as u64;
    let mut pos = opt_integer(lua, args, 3, 1)? as u64;
    if pos == 0 {
        return Err(Fail::arg(3, "offset must be 1 or greater"));
    }
    pos -= 1;
    let too_short = || Fail::arg(2, "data string too short");
    let mut h = Header::new();
    // The results, in a table: there may be thousands of strings.
    let out = lua
        .create_table()
        .map_err(|_| Fail::Raw(b"not enough memory".to_vec()))?;
    let mut n: usize = 0;
    let push = |v: Value, n: &mut usize| {
        *n += 1;
        out.raw_set(*n, v)
            .map_err(|_| Fail::Raw(b"not enough memory".to_vec()))
    };
    let new_string = |bytes: &[u8]| {
        lua.create_string(bytes)
            .map(Value::String)
            .map_err(|_| Fail::Raw(b"not enough memory".to_vec()))
    };
    while let Some(opt) = fmt.next() {
        let mut size = fmt.size(opt)?;
        pos = pos.wrapping_add(to_align(pos, &h, opt, size));
        if !(size <= ld && pos <= ld - size) {
            return Err(too_short());
        }
        if args.len() + n + 2 > MAX_C_STACK {
            return Err(Fail::error("stack overflow (too many results)"));
        }
        let at = pos as usize;
        match opt {
            _ if is_int_option(opt) => {
                let bytes = &data[at..at + size as usize];
                let v = get_integer(bytes, h.endian, opt.is_ascii_lowercase());
                push(Value::Number(v), &mut n)?;
            }
            b'x' => {}
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[at..at + 4]);
                let f = match h.endian {
                    Endian::Little => f32::from_le_bytes(b),
                    Endian::Big => f32::from_be_bytes(b),
                };
                push(Value::Number(f64::from(f)), &mut n)?;
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[at..at + 8]);
                let d = match h.endian {
                    Endian::Little => f64::from_le_bytes(b),
                    Endian::Big => f64::from_be_bytes(b),
                };
                push(Value::Number(d), &mut n)?;
            }
            b'c' => {
                if size == 0 {
                    let previous = match n {
                        0 => None,
                        _ => out
                            .raw_get::<Value>(n)
                            .ok()
                            .and_then(|v| to_number(lua, &v)),
                    };
                    let Some(len) = previous else {
                        return Err(Fail::error("format 'c0' needs a previous size"));
                    };
                    size = double_to_u64(len);
                    out.raw_set(n, Value::Nil)
                        .map_err(|_| Fail::Raw(b"not enough memory".to_vec()))?;
                    n -= 1;
                    if !(size <= ld && pos <= ld - size) {
                        return Err(too_short());
                    }
                }
                push(new_string(&data[at..at + size as usize])?, &mut n)?;
            }
            b's' => {
                let Some(len) = data[at..].iter().position(|&b| b == 0) else {
                    return Err(Fail::error("unfinished string in data"));
                };
                size = len as u64 + 1;
                push(new_string(&data[at..at + len])?, &mut n)?;
            }
            _ => fmt.control(opt, &mut h)?,
        }
        pos = pos.wrapping_add(size);
    }
    push(Value::Number(pos.wrapping_add(1) as i64 as f64), &mut n)?;
    Ok((out, n))
}

fn size(lua: &Lua, args: &[Value]) -> Outcome {
    let mut fmt = Format::new(check_bytes(lua, args, 1)?);
    let mut h = Header::new();
    let mut pos: u64 = 0;
    while let Some(opt) = fmt.next() {
        let size = fmt.size(opt)?;
        pos = pos.wrapping_add(to_align(pos, &h, opt, size));
        if opt == b's' {
            return Err(Fail::arg(1, "option 's' has no fixed size"));
        }
        if opt == b'c' && size == 0 {
            return Err(Fail::arg(1, "option 'c0' has no fixed size"));
        }
        if !opt.is_ascii_alphanumeric() {
            fmt.control(opt, &mut h)?;
        }
        pos = pos.wrapping_add(size);
    }
    Ok(vec![Value::Number(pos as i64 as f64)])
}

/// Sets the global `struct` table.
pub(crate) fn open(lua: &Lua) -> mlua::Result<()> {
    // Pre-sized as luaL_register does, so `pairs(struct)` order is Redis's.
    let t = lua.create_table_with_capacity(0, 3)?;
    t.set("pack", wrap(lua, pack)?)?;
    t.set("unpack", wrap_packed(lua, unpack)?)?;
    t.set("size", wrap(lua, size)?)?;
    lua.globals().set("struct", t)
}

#[cfg(test)]
mod tests {
    use super::super::testutil::{check, lua, run};

    /// Expected strings captured from redis-server 7.0.15 with the harness
    /// in `testutil`.
    const CASES: &[(&str, &str)] = &[
        // @@STRUCT_CASES@@
        (r##"struct.pack('b', 1)"##, r##"true "\x01""##),
        (r##"struct.pack('b', -1)"##, r##"true "\xff""##),
        (r##"struct.pack('B', 255)"##, r##"true "\xff""##),
        (r##"struct.pack('B', 256)"##, r##"true "\x00""##),
        (r##"struct.pack('b', 128)"##, r##"true "\x80""##),
        (r##"struct.pack('h', 1)"##, r##"true "\x01\x00""##),
        (r##"struct.pack('>h', 1)"##, r##"true "\x00\x01""##),
        (r##"struct.pack('<H', 0xabcd)"##, r##"true "\xcd\xab""##),
        (r##"struct.pack('>H', 0xabcd)"##, r##"true "\xab\xcd""##),
        (r##"struct.pack('i', 1)"##, r##"true "\x01\x00\x00\x00""##),
        (r##"struct.pack('>i', -2)"##, r##"true "\xff\xff\xff\xfe""##),
        (
            r##"struct.pack('I', 4294967295)"##,
            r##"true "\xff\xff\xff\xff""##,
        ),
        (
            r##"struct.pack('l', -1)"##,
            r##"true "\xff\xff\xff\xff\xff\xff\xff\xff""##,
        ),
        (
            r##"struct.pack('>L', 2^40)"##,
            r##"true "\x00\x00\x01\x00\x00\x00\x00\x00""##,
        ),
        (
            r##"struct.pack('T', 5)"##,
            r##"true "\x05\x00\x00\x00\x00\x00\x00\x00""##,
        ),
        (r##"struct.pack('i1', 300)"##, r##"true ",""##),
        (r##"struct.pack('i3', 0x123456)"##, r##"true "V4\x12""##),
        (r##"struct.pack('>i3', 0x123456)"##, r##"true "\x124V""##),
        (
            r##"struct.pack('i16', -1)"##,
            r##"true "\xff\xff\xff\xff\xff\xff\xff\xff\x00\x00\x00\x00\x00\x00\x00\x00""##,
        ),
        (
            r##"struct.pack('>I16', 1)"##,
            r##"true "\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01""##,
        ),
        (
            r##"struct.pack('i32', 1)"##,
            r##"true "\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00""##,
        ),
        (
            r##"struct.pack('i33', 1)"##,
            r##"false "user_script:1: integral size 33 is larger than limit of 32""##,
        ),
        (r##"struct.pack('i0', 5)"##, r##"true """##),
        (r##"struct.pack('f', 1.5)"##, r##"true "\x00\x00\xc0?""##),
        (r##"struct.pack('>f', 1.5)"##, r##"true "?\xc0\x00\x00""##),
        (r##"struct.pack('f', 0.1)"##, r##"true "\xcd\xcc\xcc=""##),
        (
            r##"struct.pack('f', 1e40)"##,
            r##"true "\x00\x00\x80\x7f""##,
        ),
        (
            r##"struct.pack('d', 1.5)"##,
            r##"true "\x00\x00\x00\x00\x00\x00\xf8?""##,
        ),
        (
            r##"struct.pack('>d', -0.0)"##,
            r##"true "\x80\x00\x00\x00\x00\x00\x00\x00""##,
        ),
        (
            r##"struct.pack('d', 1/0)"##,
            r##"true "\x00\x00\x00\x00\x00\x00\xf0\x7f""##,
        ),
        (r##"struct.pack('x')"##, r##"true "\x00""##),
        (r##"struct.pack('xxb', 1)"##, r##"true "\x00\x00\x01""##),
        (r##"struct.pack('c3', 'abcdef')"##, r##"true "abc""##),
        (
            r##"struct.pack('c3', 'ab')"##,
            r##"false "user_script:1: bad argument #3 to 'pack' (string too short)""##,
        ),
        (r##"struct.pack('c0', 'hello')"##, r##"true "hello""##),
        (r##"struct.pack('c', 'xyz')"##, r##"true "x""##),
        (r##"struct.pack('s', 'hi')"##, r##"true "hi\x00""##),
        (r##"struct.pack('s', 'a\0b')"##, r##"true "a\x00b\x00""##),
        (r##"struct.pack('c2', 12)"##, r##"true "12""##),
        (r##"struct.pack('s', 3.5)"##, r##"true "3.5\x00""##),
        (
            r##"struct.pack('!4 b i', 1, 2)"##,
            r##"true "\x01\x00\x00\x00\x02\x00\x00\x00""##,
        ),
        (
            r##"struct.pack('!b i', 1, 2)"##,
            r##"true "\x01\x00\x00\x00\x02\x00\x00\x00""##,
        ),
        (
            r##"struct.pack('!2 b i', 1, 2)"##,
            r##"true "\x01\x00\x02\x00\x00\x00""##,
        ),
        (
            r##"struct.pack('!8 b d', 1, 2)"##,
            r##"true "\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00@""##,
        ),
        (
            r##"struct.pack('!8 b h', 1, 2)"##,
            r##"true "\x01\x00\x02\x00""##,
        ),
        (
            r##"struct.pack('!16 b d', 1, 2)"##,
            r##"true "\x01\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00@""##,
        ),
        (
            r##"struct.pack('!3 b', 1)"##,
            r##"false "user_script:1: alignment 3 is not a power of 2""##,
        ),
        (
            r##"struct.pack('!0 b', 1)"##,
            r##"false "user_script:1: alignment 0 is not a power of 2""##,
        ),
        (
            r##"struct.pack('!4 b i3', 1, 2)"##,
            r##"true "\x01\x00\x00\x02\x00\x00""##,
        ),
        (
            r##"struct.pack('!4 c1 i', 'a', 2)"##,
            r##"true "a\x00\x00\x00\x02\x00\x00\x00""##,
        ),
        (r##"struct.pack('< >h', 1)"##, r##"true "\x00\x01""##),
        (
            r##"struct.pack('z', 1)"##,
            r##"false "user_script:1: bad argument #1 to 'pack' (invalid format option 'z')""##,
        ),
        (
            r##"struct.pack('b5', 1)"##,
            r##"false "user_script:1: bad argument #1 to 'pack' (invalid format option '5')""##,
        ),
        (
            r##"struct.pack('b', 'x')"##,
            r##"false "user_script:1: bad argument #2 to 'pack' (number expected, got string)""##,
        ),
        (
            r##"struct.pack('b')"##,
            r##"false "user_script:1: bad argument #2 to 'pack' (number expected, got nil)""##,
        ),
        (r##"struct.pack('b', '12')"##, r##"true "\x0c""##),
        (
            r##"struct.pack()"##,
            r##"false "user_script:1: bad argument #1 to 'pack' (string expected, got no value)""##,
        ),
        (
            r##"struct.pack(12)"##,
            r##"false "user_script:1: bad argument #1 to 'pack' (invalid format option '1')""##,
        ),
        (
            r##"struct.pack('d', 'a')"##,
            r##"false "user_script:1: bad argument #2 to 'pack' (number expected, got string)""##,
        ),
        (
            r##"struct.pack('i99999999999', 1)"##,
            r##"false "user_script:1: integral size overflow""##,
        ),
        (
            r##"struct.pack('i2147483647', 1)"##,
            r##"false "user_script:1: integral size 2147483647 is larger than limit of 32""##,
        ),
        (r##"struct.pack('b\0b', 1, 2)"##, r##"true "\x01""##),
        (r##"struct.pack('B', -1)"##, r##"true "\xff""##),
        (
            r##"struct.pack('>I8', 2^64)"##,
            r##"true "\x00\x00\x00\x00\x00\x00\x00\x00""##,
        ),
        (
            r##"struct.pack('>I8', 2^63)"##,
            r##"true "\x80\x00\x00\x00\x00\x00\x00\x00""##,
        ),
        (
            r##"struct.pack('>i8', -2^63)"##,
            r##"true "\x80\x00\x00\x00\x00\x00\x00\x00""##,
        ),
        (
            r##"struct.pack('>i8', -2^64)"##,
            r##"true "\x80\x00\x00\x00\x00\x00\x00\x00""##,
        ),
        (
            r##"struct.pack('>I8', 0/0)"##,
            r##"true "\x80\x00\x00\x00\x00\x00\x00\x00""##,
        ),
        (
            r##"struct.pack('>I8', 1/0)"##,
            r##"true "\x00\x00\x00\x00\x00\x00\x00\x00""##,
        ),
        (
            r##"struct.pack('>i8', -1/0)"##,
            r##"true "\x80\x00\x00\x00\x00\x00\x00\x00""##,
        ),
        (
            r##"struct.pack('>I8', 1.9)"##,
            r##"true "\x00\x00\x00\x00\x00\x00\x00\x01""##,
        ),
        (
            r##"struct.pack('>i8', -1.9)"##,
            r##"true "\xff\xff\xff\xff\xff\xff\xff\xff""##,
        ),
        (r##"struct.pack('b', 1, 2, 3)"##, r##"true "\x01""##),
        (r##"struct.pack('', 1)"##, r##"true """##),
        (
            r##"struct.pack('\200', 1)"##,
            r##"false "user_script:1: bad argument #1 to 'pack' (invalid format option '\xc8')""##,
        ),
        (r##"struct.unpack('b', '\255')"##, r##"true -1 2"##),
        (r##"struct.unpack('B', '\255')"##, r##"true 255 2"##),
        (r##"struct.unpack('>h', '\255\254')"##, r##"true -2 3"##),
        (r##"struct.unpack('<H', '\1\2')"##, r##"true 513 3"##),
        (r##"struct.unpack('i', '\1\0\0\0')"##, r##"true 1 5"##),
        (
            r##"struct.unpack('>i', '\255\255\255\254')"##,
            r##"true -2 5"##,
        ),
        (
            r##"struct.unpack('>I', '\255\255\255\255')"##,
            r##"true 4294967295 5"##,
        ),
        (
            r##"struct.unpack('l', '\255\255\255\255\255\255\255\255')"##,
            r##"true -1 9"##,
        ),
        (
            r##"struct.unpack('L', '\255\255\255\255\255\255\255\255')"##,
            r##"true 1.8446744073709552e+19 9"##,
        ),
        (
            r##"struct.unpack('>i3', '\128\0\0')"##,
            r##"true -8388608 4"##,
        ),
        (
            r##"struct.unpack('>I3', '\128\0\0')"##,
            r##"true 8388608 4"##,
        ),
        (
            r##"struct.unpack('>i9', '\255\255\255\255\255\255\255\255\255')"##,
            r##"true -1 10"##,
        ),
        (
            r##"struct.unpack('>i9', '\0\128\0\0\0\0\0\0\0')"##,
            r##"true -128 10"##,
        ),
        (
            r##"struct.unpack('>i16', string.rep('\255', 16))"##,
            r##"true -1 17"##,
        ),
        (r##"struct.unpack('i0', 'abc')"##, r##"true 0 1"##),
        (
            r##"struct.unpack('f', struct.pack('f', 1.5))"##,
            r##"true 1.5 5"##,
        ),
        (
            r##"struct.unpack('>d', struct.pack('>d', 0.1))"##,
            r##"true 0.10000000000000001 9"##,
        ),
        (
            r##"struct.unpack('>d', struct.pack('<d', 0.1))"##,
            r##"true -1.5423487136675799e-180 9"##,
        ),
        (r##"struct.unpack('c3', 'abcdef')"##, r##"true "abc" 4"##),
        (
            r##"struct.unpack('c3c3', 'abcdef')"##,
            r##"true "abc" "def" 7"##,
        ),
        (
            r##"struct.unpack('c3', 'ab')"##,
            r##"false "user_script:1: bad argument #2 to 'unpack' (data string too short)""##,
        ),
        (
            r##"struct.unpack('b c0', '\3abcdef')"##,
            r##"true "abc" 5"##,
        ),
        (
            r##"struct.unpack('c0', 'abc')"##,
            r##"false "user_script:1: format 'c0' needs a previous size""##,
        ),
        (r##"struct.unpack('c1 c0', '2abc')"##, r##"true "ab" 4"##),
        (
            r##"struct.unpack('c1 c0', 'xabc')"##,
            r##"false "user_script:1: format 'c0' needs a previous size""##,
        ),
        (
            r##"struct.unpack('b c0', '\9abc')"##,
            r##"false "user_script:1: bad argument #2 to 'unpack' (data string too short)""##,
        ),
        (
            r##"struct.unpack('s', 'hello\0world')"##,
            r##"true "hello" 7"##,
        ),
        (r##"struct.unpack('ss', 'a\0b\0')"##, r##"true "a" "b" 5"##),
        (
            r##"struct.unpack('s', 'hello')"##,
            r##"false "user_script:1: unfinished string in data""##,
        ),
        (r##"struct.unpack('x b', '\1\2')"##, r##"true 2 3"##),
        (r##"struct.unpack('b', '\1\2\3', 2)"##, r##"true 2 3"##),
        (r##"struct.unpack('b', '\1\2\3', 3)"##, r##"true 3 4"##),
        (
            r##"struct.unpack('b', '\1\2\3', 4)"##,
            r##"false "user_script:1: bad argument #2 to 'unpack' (data string too short)""##,
        ),
        (
            r##"struct.unpack('b', '\1\2\3', 0)"##,
            r##"false "user_script:1: bad argument #3 to 'unpack' (offset must be 1 or greater)""##,
        ),
        (
            r##"struct.unpack('b', '\1\2\3', -1)"##,
            r##"false "user_script:1: bad argument #2 to 'unpack' (data string too short)""##,
        ),
        (r##"struct.unpack('', 'abc', -5)"##, r##"true -5"##),
        (r##"struct.unpack('', 'abc', 10)"##, r##"true 10"##),
        (r##"struct.unpack('b', '\1\2\3', '2')"##, r##"true 2 3"##),
        (
            r##"struct.unpack('b', '\1\2\3', 'x')"##,
            r##"false "user_script:1: bad argument #3 to 'unpack' (number expected, got string)""##,
        ),
        (r##"struct.unpack('b', '\1\2\3', 2.7)"##, r##"true 2 3"##),
        (
            r##"struct.unpack('b', '')"##,
            r##"false "user_script:1: bad argument #2 to 'unpack' (data string too short)""##,
        ),
        (
            r##"struct.unpack('!4 b i', '\1\0\0\0\2\0\0\0')"##,
            r##"true 1 2 9"##,
        ),
        (
            r##"struct.unpack('!4 b i', '\1\0\0\0\2\0\0', 1)"##,
            r##"false "user_script:1: bad argument #2 to 'unpack' (data string too short)""##,
        ),
        (r##"struct.unpack('b', 'a', 1, 'extra')"##, r##"true 97 2"##),
        (
            r##"struct.unpack('z', 'abc')"##,
            r##"false "user_script:1: bad argument #1 to 'unpack' (invalid format option 'z')""##,
        ),
        (
            r##"struct.unpack('b')"##,
            r##"false "user_script:1: bad argument #2 to 'unpack' (string expected, got no value)""##,
        ),
        (
            r##"struct.unpack()"##,
            r##"false "user_script:1: bad argument #1 to 'unpack' (string expected, got no value)""##,
        ),
        (r##"struct.unpack('>h', 12)"##, r##"true 12594 3"##),
        (
            r##"struct.unpack('!5', 'a')"##,
            r##"false "user_script:1: alignment 5 is not a power of 2""##,
        ),
        (r##"struct.unpack('!', '')"##, r##"true 1"##),
        (
            r##"struct.unpack('i40', string.rep('a', 40))"##,
            r##"false "user_script:1: integral size 40 is larger than limit of 32""##,
        ),
        (
            r##"struct.unpack(string.rep('b', 100), string.rep('a', 100))"##,
            r##"true 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 97 101"##,
        ),
        (
            r##"select('#', struct.unpack(string.rep('b', 7997), string.rep('a', 7997)))"##,
            r##"true 7998"##,
        ),
        (
            r##"select('#', struct.unpack(string.rep('b', 7998), string.rep('a', 7998)))"##,
            r##"false "user_script:1: stack overflow (too many results)""##,
        ),
        (
            r##"select('#', struct.unpack(string.rep('b', 7998), string.rep('a', 7998), 1))"##,
            r##"false "user_script:1: stack overflow (too many results)""##,
        ),
        (r##"struct.size('b')"##, r##"true 1"##),
        (r##"struct.size('bhilT')"##, r##"true 23"##),
        (r##"struct.size('!bhilT')"##, r##"true 24"##),
        (r##"struct.size('!4 b d')"##, r##"true 12"##),
        (r##"struct.size('i3 i7')"##, r##"true 10"##),
        (r##"struct.size('c10')"##, r##"true 10"##),
        (
            r##"struct.size('c0')"##,
            r##"false "user_script:1: bad argument #1 to 'size' (option 'c0' has no fixed size)""##,
        ),
        (
            r##"struct.size('s')"##,
            r##"false "user_script:1: bad argument #1 to 'size' (option 's' has no fixed size)""##,
        ),
        (r##"struct.size('z')"##, r##"true 0"##),
        (r##"struct.size('b z b')"##, r##"true 2"##),
        (r##"struct.size('<>! x')"##, r##"true 1"##),
        (
            r##"struct.size('!7')"##,
            r##"false "user_script:1: alignment 7 is not a power of 2""##,
        ),
        (r##"struct.size('')"##, r##"true 0"##),
        (
            r##"struct.size()"##,
            r##"false "user_script:1: bad argument #1 to 'size' (string expected, got no value)""##,
        ),
        (
            r##"struct.size('i40')"##,
            r##"false "user_script:1: integral size 40 is larger than limit of 32""##,
        ),
        (r##"struct.size('d f x')"##, r##"true 13"##),
        (
            r##"struct.size('\200')"##,
            r##"false "user_script:1: bad argument #1 to 'size' (invalid format option '\xc8')""##,
        ),
        (
            r##"struct.pack('>b h i l', 1, 2, 3, 4)"##,
            r##"true "\x01\x00\x02\x00\x00\x00\x03\x00\x00\x00\x00\x00\x00\x00\x04""##,
        ),
        (
            r##"struct.unpack('<b h i l', struct.pack('<b h i l', -1, -2, -3, -4))"##,
            r##"true -1 -2 -3 -4 16"##,
        ),
        (
            r##"struct.unpack('>I2 c0', struct.pack('>I2 c0', 3, 'abc'))"##,
            r##"true "abc" 6"##,
        ),
        (
            r##"struct:pack('b')"##,
            r##"false "user_script:1: calling 'pack' on bad self (string expected, got table)""##,
        ),
        (
            r##"select(2, pcall(struct.pack, 'z'))"##,
            r##"true "bad argument #1 to '?' (invalid format option 'z')""##,
        ),
        (
            r##"select('#', struct.unpack(string.rep('c1', 7997), string.rep('a', 7997)))"##,
            r##"true 7998"##,
        ),
        (
            r##"(select(7000, struct.unpack(string.rep('c1', 7997), string.rep('ab', 4000))))"##,
            r##"true "b""##,
        ),
    ];

    #[test]
    fn matches_redis() {
        check(CASES);
    }

    /// Sizes far beyond the input are refused before anything is read or
    /// allocated, inside a Lua state limited to 1 MiB more than it uses.
    #[test]
    fn sizes_are_checked_before_allocating() {
        let lua = lua();
        lua.set_memory_limit(lua.used_memory() + (1 << 20))
            .expect("memory limit");
        let too_short =
            r#"false "user_script:1: bad argument #2 to 'unpack' (data string too short)""#;
        for expr in [
            "struct.unpack('c2000000000', 'abc')",
            "struct.unpack('b c0', '\\127abc')",
            "struct.unpack('c1 c0', '9abc')",
        ] {
            assert_eq!(run(&lua, expr), too_short, "{expr}");
        }
        assert_eq!(
            run(&lua, "struct.pack('c2000000000', 'abc')"),
            r#"false "user_script:1: bad argument #3 to 'pack' (string too short)""#
        );
    }

    #[test]
    fn garbage_never_panics() {
        let lua = lua();
        let mut x: u64 = 0x2545_f491_4f6c_dd1d;
        let alphabet = b"bBhHlLTiIfdxcs<>! 0123456789z";
        for _ in 0..3000 {
            let mut fmt = String::new();
            let mut data = String::new();
            for _ in 0..(x % 12) {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                fmt.push(alphabet[(x % alphabet.len() as u64) as usize] as char);
                data.push_str(&format!("\\{}", x % 256));
            }
            let expr = format!("struct.unpack('{fmt}', '{data}')");
            let _ = run(&lua, &expr);
            let expr = format!("struct.size('{fmt}')");
            let _ = run(&lua, &expr);
            let expr = format!("struct.pack('{fmt}', 1, 'abc', 2, 3)");
            let _ = run(&lua, &expr);
        }
    }
}
