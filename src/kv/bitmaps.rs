//! Bitmap commands on strings (SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP),
//! with Redis 7.0's argument order, replies and error texts; BITFIELD is in
//! `bitfield.rs` and shares [`write_bits`] and [`parse_bit_offset`].
//!
//! Bit 0 is the most significant bit of the first byte. A write that
//! reaches past the end grows the string with zero bytes, as Redis's
//! `lookupStringForBitCommand` does; the offset is checked against
//! [`MAX_STRING_BYTES`] before anything is allocated, and the string is
//! changed in place when nothing else holds its bytes (a SETBIT on a 512 MB
//! bitmap neither copies it nor allocates it twice).
//!
//! Invariants:
//! - A string a bit command wrote is `raw` ([`Str::raw`]), even when no
//!   bit changed (Redis unshares the object first); only a change (or a
//!   growth) counts as a modification: version bump (WATCH) and a `setbit`
//!   event.
//! - BITCOUNT and BITPOS look the key up before parsing their range, as
//!   Redis does, so their syntax errors depend on the data and are the
//!   read's, not the check's.

use bytes::{Bytes, BytesMut};

use super::errors::{NOT_INTEGER, SYNTAX, WRONGTYPE};
use super::notify;
use super::string::Origin;
use super::string::Str;
use super::strings::read_str;
use super::table::{
    typed_read, typed_unchanged, typed_write, unchecked_read, Apply, Parse, Query, Unchanged,
};
use super::{parse_i64, Ctx, Db, Output, Value, MAX_STRING_BYTES};

/// Redis's text for a bad bit offset (SETBIT, GETBIT, BITFIELD).
pub(crate) const BAD_OFFSET: &str = "ERR bit offset is not an integer or out of range";
const BAD_BIT: &str = "ERR bit is not an integer or out of range";

/// Redis's `getBitOffsetFromArgument`: a bit offset whose byte is below
/// [`MAX_STRING_BYTES`]; with `width` (BITFIELD), `#n` means `n * width`.
pub(crate) fn parse_bit_offset(arg: &[u8], width: Option<u32>) -> Result<u64, Output> {
    let bad = || Output::err(BAD_OFFSET);
    let (digits, scale) = match (arg.first(), width) {
        (Some(b'#'), Some(width)) => (&arg[1..], i64::from(width)),
        _ => (arg, 1),
    };
    let n = parse_i64(digits).ok_or_else(bad)?;
    // Redis multiplies without checking; a product past i64 wraps, as in C.
    let offset = n.wrapping_mul(scale);
    if offset < 0 || (offset as u64 >> 3) >= MAX_STRING_BYTES {
        return Err(bad());
    }
    Ok(offset as u64)
}

/// Runs `f` on the string at `key` grown (zero-filled) to at least
/// `min_len` bytes, creating it if absent: Redis's
/// `lookupStringForBitCommand` followed by the write. `f` gets the bytes
/// and whether the key was created or grown; it answers its result and
/// whether it changed anything. A change, creation or growth is a
/// modification (version bump); the caller emits the event. The string is
/// `raw` afterwards either way.
///
/// # Errors
///
/// WRONGTYPE for a key of another type.
pub(crate) fn write_bits<R>(
    db: &mut Db,
    ctx: &Ctx,
    key: &Bytes,
    min_len: usize,
    f: impl FnOnce(&mut [u8], bool) -> (R, bool),
) -> Result<(R, bool), Output> {
    match db.lookup_write(ctx.db, key).map(|e| &e.value) {
        None => {
            let mut buf = vec![0u8; min_len];
            let (result, _) = f(&mut buf, true);
            let value = Value::Str(Str::raw(Bytes::from(buf)));
            db.put(ctx.db, key, value, None);
            Ok((result, true))
        }
        Some(Value::Str(_)) => {
            let mut outcome = None;
            db.convert_quietly(ctx.db, key, |value| {
                let Value::Str(s) = value else { return };
                let bytes = std::mem::take(s).into_bytes();
                // In place when this map holds the only reference.
                let mut buf = bytes
                    .try_into_mut()
                    .unwrap_or_else(|shared| BytesMut::from(&shared[..]));
                let grown = buf.len() < min_len;
                if grown {
                    buf.resize(min_len, 0);
                }
                let (result, changed) = f(&mut buf, grown);
                *s = Str::raw(buf.freeze());
                outcome = Some((result, grown || changed));
            });
            let (result, modified) = outcome.expect("the key holds a string: looked up above");
            if modified {
                db.modify(ctx.db, key, |_| ());
            }
            Ok((result, modified))
        }
        Some(_) => Err(Output::err(WRONGTYPE)),
    }
}

/// The bit at `offset` (0 past the end).
fn bit_at(s: &[u8], offset: u64) -> u8 {
    let byte = (offset >> 3) as usize;
    s.get(byte).map_or(0, |b| (b >> (7 - (offset & 7))) & 1)
}

/// `SETBIT key offset 0|1`: both arguments are checked before the key.
pub(crate) struct SetBit {
    key: Bytes,
    offset: u64,
    on: bool,
}

impl Parse<'_> for SetBit {
    fn parse(args: &[Bytes]) -> Result<SetBit, Output> {
        let offset = parse_bit_offset(&args[2], None)?;
        let on = match parse_i64(&args[3]) {
            Some(0) => false,
            Some(1) => true,
            _ => return Err(Output::err(BAD_BIT)),
        };
        Ok(SetBit {
            key: args[1].clone(),
            offset,
            on,
        })
    }
}

impl Unchanged<'_> for SetBit {
    /// The bit already has the value, inside a string apply would not
    /// re-encode (one changed in place already: SETBIT makes any string
    /// `raw`, as Redis's does): the old bit, nothing written.
    fn unchanged(&self, db: &Db, ctx: &Ctx) -> Option<Output> {
        match db.probe_key(ctx, &self.key)? {
            Some(Value::Str(s)) if s.origin() == Origin::InPlace => {
                let byte = (self.offset >> 3) as usize;
                let old = s.bytes().get(byte)? >> (7 - (self.offset & 7)) & 1;
                (old == u8::from(self.on)).then_some(Output::Integer(i64::from(old)))
            }
            Some(Value::Str(_)) | None => None,
            Some(_) => super::unchanged::wrong_type(),
        }
    }
}

impl Apply<'_> for SetBit {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        // The offset's byte is below MAX_STRING_BYTES (parse), so this fits.
        let byte = (self.offset >> 3) as usize;
        let shift = 7 - (self.offset & 7);
        let written = write_bits(db, ctx, &self.key, byte + 1, |buf, _| {
            let old = (buf[byte] >> shift) & 1;
            if self.on {
                buf[byte] |= 1 << shift;
            } else {
                buf[byte] &= !(1 << shift);
            }
            (old, old != u8::from(self.on))
        });
        match written {
            Ok((old, modified)) => {
                if modified {
                    db.notify(notify::STRING, "setbit", ctx.db, &self.key);
                }
                Output::Integer(i64::from(old))
            }
            Err(e) => e,
        }
    }
}

/// `GETBIT key offset`: the offset is checked before the key.
pub(crate) struct GetBit {
    key: Bytes,
    offset: u64,
}

impl Parse<'_> for GetBit {
    fn parse(args: &[Bytes]) -> Result<GetBit, Output> {
        Ok(GetBit {
            key: args[1].clone(),
            offset: parse_bit_offset(&args[2], None)?,
        })
    }
}

impl Query<'_> for GetBit {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        match read_str(db, ctx, &self.key) {
            Ok(s) => Output::Integer(i64::from(s.map_or(0, |s| bit_at(s, self.offset)))),
            Err(e) => e,
        }
    }
}

/// A `[start end [BYTE|BIT]]` range resolved on a string of `len` bytes:
/// the first and last byte, and the bits of those two bytes outside the
/// range (Redis's `first_byte_neg_mask` / `last_byte_neg_mask`).
struct ByteRange {
    start: usize,
    end: usize,
    first_outside: u8,
    last_outside: u8,
}

/// Redis's range arithmetic shared by BITCOUNT and BITPOS: negative
/// indexes from the end, clamped; `None` for an empty range.
fn resolve_range(len: usize, start: i64, end: i64, bits: bool) -> Option<ByteRange> {
    let total = if bits { (len as i64) << 3 } else { len as i64 };
    let (mut start, mut end) = (start, end);
    if start < 0 {
        start = start.saturating_add(total);
    }
    if end < 0 {
        end = end.saturating_add(total);
    }
    start = start.max(0);
    end = end.max(0).min(total - 1);
    if start > end {
        return None;
    }
    let (mut first_outside, mut last_outside) = (0u8, 0u8);
    if bits {
        first_outside = !((1u16 << (8 - (start & 7))) - 1) as u8;
        last_outside = ((1u16 << (7 - (end & 7))) - 1) as u8;
        start >>= 3;
        end >>= 3;
    }
    Some(ByteRange {
        start: start as usize,
        end: end as usize,
        first_outside,
        last_outside,
    })
}

/// `BYTE` or `BIT` (case-insensitive).
fn parse_unit(arg: &[u8]) -> Result<bool, Output> {
    if arg.eq_ignore_ascii_case(b"bit") {
        Ok(true)
    } else if arg.eq_ignore_ascii_case(b"byte") {
        Ok(false)
    } else {
        Err(Output::err(SYNTAX))
    }
}

fn parse_index(arg: &[u8]) -> Result<i64, Output> {
    parse_i64(arg).ok_or_else(|| Output::err(NOT_INTEGER))
}

/// `BITCOUNT key [start end [BYTE|BIT]]`, in Redis's order: the key, then
/// the range, then its unit.
pub(crate) fn bitcount(db: &Db, ctx: &Ctx, args: &[Bytes]) -> Output {
    let s = match read_str(db, ctx, &args[1]) {
        Ok(Some(s)) => s,
        Ok(None) => return Output::Integer(0),
        Err(e) => return e,
    };
    let range = match args.len() {
        2 => resolve_range(s.len(), 0, -1, false),
        4 | 5 => {
            let (start, end) = match (parse_index(&args[2]), parse_index(&args[3])) {
                (Ok(start), Ok(end)) => (start, end),
                (Err(e), _) | (_, Err(e)) => return e,
            };
            if start < 0 && end < 0 && start > end {
                return Output::Integer(0);
            }
            let bits = match args.get(4).map(|unit| parse_unit(unit)) {
                None => false,
                Some(Ok(bits)) => bits,
                Some(Err(e)) => return e,
            };
            resolve_range(s.len(), start, end, bits)
        }
        _ => return Output::err(SYNTAX),
    };
    let Some(r) = range else {
        return Output::Integer(0);
    };
    let ones = |bytes: &[u8]| bytes.iter().map(|b| i64::from(b.count_ones())).sum::<i64>();
    let mut count = ones(&s[r.start..=r.end]);
    count -= i64::from((s[r.start] & r.first_outside).count_ones());
    count -= i64::from((s[r.end] & r.last_outside).count_ones());
    Output::Integer(count)
}

/// `BITPOS key bit [start [end [BYTE|BIT]]]`: the bit is checked before
/// the key; the range after it (a missing key answers whatever the range).
pub(crate) struct BitPos {
    bit: bool,
    args: Vec<Bytes>,
}

impl Parse<'_> for BitPos {
    fn parse(args: &[Bytes]) -> Result<BitPos, Output> {
        let bit = match parse_i64(&args[2]) {
            None => return Err(Output::err(NOT_INTEGER)),
            Some(0) => false,
            Some(1) => true,
            Some(_) => return Err(Output::err("ERR The bit argument must be 1 or 0.")),
        };
        Ok(BitPos {
            bit,
            args: args.to_vec(),
        })
    }
}

impl Query<'_> for BitPos {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        let args = &self.args;
        let s = match read_str(db, ctx, &args[1]) {
            Ok(Some(s)) => s,
            Ok(None) => return Output::Integer(if self.bit { -1 } else { 0 }),
            Err(e) => return e,
        };
        let len = s.len() as i64;
        let (range, end_given) = match args.len() {
            3 => (resolve_range(s.len(), 0, -1, false), false),
            4..=6 => {
                let start = match parse_index(&args[3]) {
                    Ok(start) => start,
                    Err(e) => return e,
                };
                let bits = match args.get(5).map(|unit| parse_unit(unit)) {
                    None => false,
                    Some(Ok(bits)) => bits,
                    Some(Err(e)) => return e,
                };
                let end = match args.get(4).map(|end| parse_index(end)) {
                    Some(Ok(end)) => end,
                    Some(Err(e)) => return e,
                    None if bits => (len << 3) + 7,
                    None => len - 1,
                };
                (resolve_range(s.len(), start, end, bits), args.len() >= 5)
            }
            _ => return Output::err(SYNTAX),
        };
        let Some(r) = range else {
            return Output::Integer(-1);
        };
        Output::Integer(bitpos(s, &r, self.bit, end_given))
    }
}

/// The first `bit` in the range: Redis's `bitposCommand` on a resolved
/// range. Past the range's end the string counts as zeros unless an end
/// was given.
fn bitpos(s: &[u8], r: &ByteRange, bit: bool, end_given: bool) -> i64 {
    // Bits outside the range read as the opposite of the one sought.
    let masked = |byte: u8, outside: u8| if bit { byte & !outside } else { byte | outside };
    let in_range = |i: usize| {
        let mut byte = s[i];
        if i == r.start {
            byte = masked(byte, r.first_outside);
        }
        if i == r.end {
            byte = masked(byte, r.last_outside);
        }
        byte
    };
    let skip = if bit { 0u8 } else { 0xff };
    for i in r.start..=r.end {
        let byte = in_range(i);
        if byte != skip {
            let within = if bit {
                byte.leading_zeros()
            } else {
                byte.leading_ones()
            };
            return (i as i64) * 8 + i64::from(within);
        }
    }
    if bit || end_given {
        -1
    } else {
        // Looking for a clear bit with no end: the first bit past the range.
        (r.end as i64 + 1) * 8
    }
}

/// BITOP's operation.
#[derive(Clone, Copy, PartialEq, Eq)]
enum BitOp {
    And,
    Or,
    Xor,
    Not,
}

/// `BITOP AND|OR|XOR|NOT destkey key [key ...]`: the operation and NOT's
/// single source are checked before the keys.
pub(crate) struct BitOpCmd {
    op: BitOp,
    dest: Bytes,
    sources: Vec<Bytes>,
}

impl Parse<'_> for BitOpCmd {
    fn parse(args: &[Bytes]) -> Result<BitOpCmd, Output> {
        let name = &args[1];
        let op = if name.eq_ignore_ascii_case(b"and") {
            BitOp::And
        } else if name.eq_ignore_ascii_case(b"or") {
            BitOp::Or
        } else if name.eq_ignore_ascii_case(b"xor") {
            BitOp::Xor
        } else if name.eq_ignore_ascii_case(b"not") {
            BitOp::Not
        } else {
            return Err(Output::err(SYNTAX));
        };
        if op == BitOp::Not && args.len() != 4 {
            return Err(Output::err(
                "ERR BITOP NOT must be called with a single source key.",
            ));
        }
        Ok(BitOpCmd {
            op,
            dest: args[2].clone(),
            sources: args[3..].to_vec(),
        })
    }
}

impl Apply<'_> for BitOpCmd {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        let mut sources = Vec::with_capacity(self.sources.len());
        for key in &self.sources {
            match read_str(db, ctx, key) {
                Ok(s) => sources.push(s.cloned().unwrap_or_default()),
                Err(e) => return e,
            }
        }
        let max_len = sources.iter().map(Bytes::len).max().unwrap_or(0);
        if max_len == 0 {
            if db.exists_for_write(ctx.db, &self.dest) {
                db.remove(ctx.db, &self.dest);
                db.notify(notify::GENERIC, "del", ctx.db, &self.dest);
            }
            return Output::Integer(0);
        }
        let byte = |s: &Bytes, i: usize| s.get(i).copied().unwrap_or(0);
        let mut out = vec![0u8; max_len];
        for (i, slot) in out.iter_mut().enumerate() {
            let first = byte(&sources[0], i);
            *slot = match self.op {
                BitOp::Not => !first,
                BitOp::And => sources[1..].iter().fold(first, |acc, s| acc & byte(s, i)),
                BitOp::Or => sources[1..].iter().fold(first, |acc, s| acc | byte(s, i)),
                BitOp::Xor => sources[1..].iter().fold(first, |acc, s| acc ^ byte(s, i)),
            };
        }
        // Redis's setKey: the TTL is dropped, the value stored whole.
        db.expire_if_needed(ctx.db, &self.dest);
        db.put(
            ctx.db,
            &self.dest,
            Value::Str(Str::raw(Bytes::from(out))),
            None,
        );
        db.notify(notify::STRING, "set", ctx.db, &self.dest);
        Output::Integer(max_len as i64)
    }
}

// ---- definitions -------------------------------------------------------------

use crate::acl::Categories as C;
use crate::cmd::cat::*;
use crate::cmd::{read, write, CommandSpec, K1};

const BITMAP_GROUP: &str = "@bitmap";

/// This group's command definitions (see `crate::cmd`); BITFIELD's are in
/// `bitfield.rs`.
pub(crate) static COMMANDS: &[CommandSpec] = &[
    write(
        "setbit",
        4,
        F_DENYOOM,
        BITMAP_GROUP,
        K1,
        typed_write::<SetBit>(),
    )
    .unchanged_by(typed_unchanged::<SetBit>())
    .acl(cats(&[WRITE, C::BITMAP, SLOW]), (KA_RW, KA_RW))
    .doc(
        "Sets or clears the bit at offset in the string value stored at key",
        "2.2.0",
        "O(1)",
    ),
    read(
        "getbit",
        3,
        F_FAST,
        BITMAP_GROUP,
        K1,
        typed_read::<GetBit>(),
    )
    .acl(cats(&[READ, C::BITMAP, FAST]), (KA_R, KA_R))
    .doc(
        "Returns the bit value at offset in the string value stored at key",
        "2.2.0",
        "O(1)",
    ),
    read(
        "bitcount",
        -2,
        F_NONE,
        BITMAP_GROUP,
        K1,
        unchecked_read(bitcount),
    )
    .acl(cats(&[READ, C::BITMAP, SLOW]), (KA_R, KA_R))
    .doc("Count set bits in a string", "2.6.0", "O(N)"),
    read(
        "bitpos",
        -3,
        F_NONE,
        BITMAP_GROUP,
        K1,
        typed_read::<BitPos>(),
    )
    .acl(cats(&[READ, C::BITMAP, SLOW]), (KA_R, KA_R))
    .doc("Find first bit set or clear in a string", "2.8.7", "O(N)"),
    write(
        "bitop",
        -4,
        F_DENYOOM,
        BITMAP_GROUP,
        (2, -1, 1),
        typed_write::<BitOpCmd>(),
    )
    .acl(cats(&[WRITE, C::BITMAP, SLOW]), (KA_W, KA_R))
    .doc(
        "Perform bitwise operations between strings",
        "2.6.0",
        "O(N)",
    ),
];

#[cfg(test)]
pub(crate) mod tests;
