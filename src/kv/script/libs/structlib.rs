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
    check_bytes, check_number, double_to_i64, double_to_u64, opt_integer, to_number, wrap, Fail,
    Outcome, MAX_C_STACK,
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

fn unpack(lua: &Lua, args: &[Value]) -> Outcome {
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
    let mut out: Vec<Value> = Vec::new();
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
        if args.len() + out.len() + 2 > MAX_C_STACK {
            return Err(Fail::error("stack overflow (too many results)"));
        }
        let at = pos as usize;
        match opt {
            _ if is_int_option(opt) => {
                let bytes = &data[at..at + size as usize];
                out.push(Value::Number(get_integer(
                    bytes,
                    h.endian,
                    opt.is_ascii_lowercase(),
                )));
            }
            b'x' => {}
            b'f' => {
                let mut b = [0u8; 4];
                b.copy_from_slice(&data[at..at + 4]);
                let f = match h.endian {
                    Endian::Little => f32::from_le_bytes(b),
                    Endian::Big => f32::from_be_bytes(b),
                };
                out.push(Value::Number(f64::from(f)));
            }
            b'd' => {
                let mut b = [0u8; 8];
                b.copy_from_slice(&data[at..at + 8]);
                let d = match h.endian {
                    Endian::Little => f64::from_le_bytes(b),
                    Endian::Big => f64::from_be_bytes(b),
                };
                out.push(Value::Number(d));
            }
            b'c' => {
                if size == 0 {
                    let previous = out.last().and_then(|v| to_number(lua, v));
                    let Some(n) = previous else {
                        return Err(Fail::error("format 'c0' needs a previous size"));
                    };
                    size = double_to_u64(n);
                    out.pop();
                    if !(size <= ld && pos <= ld - size) {
                        return Err(too_short());
                    }
                }
                out.push(new_string(&data[at..at + size as usize])?);
            }
            b's' => {
                let Some(len) = data[at..].iter().position(|&b| b == 0) else {
                    return Err(Fail::error("unfinished string in data"));
                };
                size = len as u64 + 1;
                out.push(new_string(&data[at..at + len])?);
            }
            _ => fmt.control(opt, &mut h)?,
        }
        pos = pos.wrapping_add(size);
    }
    out.push(Value::Number(pos.wrapping_add(1) as i64 as f64));
    Ok(out)
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
    let t = lua.create_table()?;
    t.set("pack", wrap(lua, pack)?)?;
    t.set("unpack", wrap(lua, unpack)?)?;
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
    ];

    #[test]
    fn matches_redis() {
        check(CASES);
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
