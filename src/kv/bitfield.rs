//! BITFIELD and BITFIELD_RO: integers of 1 to 64 bits (unsigned up to 63)
//! at any bit offset of a string, with Redis 7.0's parsing, overflow
//! arithmetic (WRAP, SAT, FAIL) and replies.
//!
//! Every subcommand is parsed (and every error answered) before the key is
//! looked at, so a bad BITFIELD is refused before proposing. A BITFIELD
//! with a SET or INCRBY grows the string to the farthest bit written, as
//! Redis does, even when every write then fails its overflow check.
//!
//! Invariants: the arithmetic is Redis's own (`checkSignedBitfieldOverflow`
//! and its unsigned twin) with C's wrapping made explicit, so even the
//! values Redis computes through overflow (SET i8 with i64::MIN under SAT)
//! are the same here.

use bytes::Bytes;

use super::bitmaps::{parse_bit_offset, write_bits};
use super::errors::{NOT_INTEGER, SYNTAX};
use super::notify;
use super::strings::read_str;
use super::table::{typed_read, typed_write, Apply, Parse, Query};
use super::{parse_i64, Ctx, Db, Output};

/// What to do when a SET or INCRBY does not fit.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Overflow {
    Wrap,
    Sat,
    Fail,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Action {
    Get,
    Set(i64),
    IncrBy(i64),
}

/// One subcommand.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct FieldOp {
    action: Action,
    signed: bool,
    width: u32,
    offset: u64,
    overflow: Overflow,
}

const BAD_TYPE: &str =
    "ERR Invalid bitfield type. Use something like i16 u8. Note that u64 is not supported but i64 is.";

/// `i1`..`i64` or `u1`..`u63`.
fn parse_type(arg: &[u8]) -> Result<(bool, u32), Output> {
    let bad = || Output::err(BAD_TYPE);
    let signed = match arg.first() {
        Some(b'i') => true,
        Some(b'u') => false,
        _ => return Err(bad()),
    };
    let width = parse_i64(&arg[1..]).ok_or_else(bad)?;
    let max = if signed { 64 } else { 63 };
    if !(1..=max).contains(&width) {
        return Err(bad());
    }
    Ok((signed, width as u32))
}

/// BITFIELD's arguments: the subcommands in order.
pub(crate) struct BitField {
    key: Bytes,
    ops: Vec<FieldOp>,
}

impl BitField {
    fn read_only(&self) -> bool {
        self.ops.iter().all(|op| op.action == Action::Get)
    }
}

impl Parse<'_> for BitField {
    fn parse(args: &[Bytes]) -> Result<BitField, Output> {
        let mut ops = Vec::new();
        let mut overflow = Overflow::Wrap;
        let mut j = 2;
        while j < args.len() {
            let remaining = args.len() - j - 1;
            let sub = &args[j][..];
            let is = |name: &[u8]| sub.eq_ignore_ascii_case(name);
            let with_value = if is(b"get") && remaining >= 2 {
                false
            } else if (is(b"set") || is(b"incrby")) && remaining >= 3 {
                true
            } else if is(b"overflow") && remaining >= 1 {
                let kind = &args[j + 1][..];
                overflow = if kind.eq_ignore_ascii_case(b"wrap") {
                    Overflow::Wrap
                } else if kind.eq_ignore_ascii_case(b"sat") {
                    Overflow::Sat
                } else if kind.eq_ignore_ascii_case(b"fail") {
                    Overflow::Fail
                } else {
                    return Err(Output::err("ERR Invalid OVERFLOW type specified"));
                };
                j += 2;
                continue;
            } else {
                return Err(Output::err(SYNTAX));
            };
            let (signed, width) = parse_type(&args[j + 1])?;
            let offset = parse_bit_offset(&args[j + 2], Some(width))?;
            let action = if with_value {
                let n = parse_i64(&args[j + 3]).ok_or_else(|| Output::err(NOT_INTEGER))?;
                if is(b"set") {
                    Action::Set(n)
                } else {
                    Action::IncrBy(n)
                }
            } else {
                Action::Get
            };
            ops.push(FieldOp {
                action,
                signed,
                width,
                offset,
                overflow,
            });
            j += if with_value { 4 } else { 3 };
        }
        let op = BitField {
            key: args[1].clone(),
            ops,
        };
        if args[0].eq_ignore_ascii_case(b"bitfield_ro") && !op.read_only() {
            return Err(Output::err(
                "ERR BITFIELD_RO only supports the GET subcommand",
            ));
        }
        Ok(op)
    }
}

/// The `width`-bit unsigned integer at bit `offset` (zeros past the end).
fn get_unsigned(s: &[u8], offset: u64, width: u32) -> u64 {
    (0..u64::from(width)).fold(0u64, |value, i| {
        let at = offset + i;
        let byte = s.get((at >> 3) as usize).copied().unwrap_or(0);
        (value << 1) | u64::from((byte >> (7 - (at & 7))) & 1)
    })
}

fn get_signed(s: &[u8], offset: u64, width: u32) -> i64 {
    let value = get_unsigned(s, offset, width);
    if width < 64 && value & (1 << (width - 1)) != 0 {
        (value | (u64::MAX << width)) as i64
    } else {
        value as i64
    }
}

/// Writes the low `width` bits of `value` at bit `offset` (in range).
fn set_bits(s: &mut [u8], offset: u64, width: u32, value: u64) {
    for i in 0..u64::from(width) {
        let bit = (value >> (u64::from(width) - 1 - i)) & 1;
        let at = offset + i;
        let byte = &mut s[(at >> 3) as usize];
        let shift = 7 - (at & 7);
        *byte = (*byte & !(1 << shift)) | ((bit as u8) << shift);
    }
}

/// Redis's `checkUnsignedBitfieldOverflow`: `None` if `value + incr` fits,
/// else the value to store (`None` inside for FAIL).
fn unsigned_overflow(value: u64, incr: i64, width: u32, how: Overflow) -> Option<Option<u64>> {
    let max = if width == 64 {
        u64::MAX
    } else {
        (1u64 << width) - 1
    };
    let max_incr = max.wrapping_sub(value) as i64;
    let min_incr = value.wrapping_neg() as i64;
    let wrap = || value.wrapping_add(incr as u64) & !(u64::MAX << width);
    let limit = if value > max || (incr > 0 && incr > max_incr) {
        max
    } else if incr < 0 && incr < min_incr {
        0
    } else {
        return None;
    };
    Some(match how {
        Overflow::Wrap => Some(wrap()),
        Overflow::Sat => Some(limit),
        Overflow::Fail => None,
    })
}

/// Redis's `checkSignedBitfieldOverflow` (see [`unsigned_overflow`]).
fn signed_overflow(value: i64, incr: i64, width: u32, how: Overflow) -> Option<Option<i64>> {
    let max = if width == 64 {
        i64::MAX
    } else {
        (1i64 << (width - 1)) - 1
    };
    let min = -max - 1;
    let max_incr = (max as u64).wrapping_sub(value as u64) as i64;
    let min_incr = min.wrapping_sub(value);
    let partial = width != 64;
    let limit = if value > max
        || (partial && incr > max_incr)
        || (value >= 0 && incr > 0 && incr > max_incr)
    {
        max
    } else if value < min
        || (partial && incr < min_incr)
        || (value < 0 && incr < 0 && incr < min_incr)
    {
        min
    } else {
        return None;
    };
    let wrap = || {
        let mut c = (value as u64).wrapping_add(incr as u64);
        if width < 64 {
            let mask = u64::MAX << width;
            if c & (1 << (width - 1)) != 0 {
                c |= mask;
            } else {
                c &= !mask;
            }
        }
        c as i64
    };
    Some(match how {
        Overflow::Wrap => Some(wrap()),
        Overflow::Sat => Some(limit),
        Overflow::Fail => None,
    })
}

/// A SET or INCRBY on `s`: its reply and whether the field changed.
fn write_field(s: &mut [u8], op: &FieldOp, dirty: bool) -> (Output, bool) {
    let (value, incr, set) = match op.action {
        Action::Set(v) => (v, 0, true),
        Action::IncrBy(by) => (0, by, false),
        Action::Get => return (read_field(s, op), false),
    };
    if op.signed {
        let old = get_signed(s, op.offset, op.width);
        let base = if set { value } else { old };
        let new = match signed_overflow(base, incr, op.width, op.overflow) {
            None => base.wrapping_add(incr),
            Some(Some(limited)) => limited,
            Some(None) => return (Output::NIL, false),
        };
        set_bits(s, op.offset, op.width, new as u64);
        let reply = if set { old } else { new };
        (Output::Integer(reply), dirty || old != new)
    } else {
        let old = get_unsigned(s, op.offset, op.width);
        let base = if set { value as u64 } else { old };
        let new = match unsigned_overflow(base, incr, op.width, op.overflow) {
            None => base.wrapping_add(incr as u64),
            Some(Some(limited)) => limited,
            Some(None) => return (Output::NIL, false),
        };
        set_bits(s, op.offset, op.width, new);
        let reply = if set { old } else { new };
        (Output::Integer(reply as i64), dirty || old != new)
    }
}

fn read_field(s: &[u8], op: &FieldOp) -> Output {
    if op.signed {
        Output::Integer(get_signed(s, op.offset, op.width))
    } else {
        Output::Integer(get_unsigned(s, op.offset, op.width) as i64)
    }
}

fn read_fields(s: Option<&Bytes>, ops: &[FieldOp]) -> Output {
    let s = s.map_or(&[][..], |s| &s[..]);
    Output::Array(ops.iter().map(|op| read_field(s, op)).collect())
}

impl Apply<'_> for BitField {
    fn apply(self, db: &mut Db, ctx: &Ctx) -> Output {
        if self.read_only() {
            return match read_str(db, ctx, &self.key) {
                Ok(s) => read_fields(s, &self.ops),
                Err(e) => e,
            };
        }
        let highest_bit = self
            .ops
            .iter()
            .filter(|op| op.action != Action::Get)
            .map(|op| op.offset + u64::from(op.width) - 1)
            .max()
            .unwrap_or(0);
        // Below 8 * MAX_STRING_BYTES + 64 (parse): fits in memory terms.
        let min_len = (highest_bit >> 3) as usize + 1;
        let ops = &self.ops;
        let written = write_bits(db, ctx, &self.key, min_len, |s, dirty| {
            let mut changes = 0;
            let replies = ops
                .iter()
                .map(|op| {
                    let (reply, changed) = write_field(s, op, dirty);
                    changes += usize::from(changed);
                    reply
                })
                .collect();
            ((Output::Array(replies), changes), changes > 0)
        });
        match written {
            Ok(((reply, changes), _)) => {
                // A created or grown key whose every write failed is
                // modified (it grew) but, as in Redis, gets no event.
                if changes > 0 {
                    db.notify(notify::STRING, "setbit", ctx.db, &self.key);
                }
                reply
            }
            Err(e) => e,
        }
    }
}

impl Query<'_> for BitField {
    fn query(self, db: &Db, ctx: &Ctx) -> Output {
        match read_str(db, ctx, &self.key) {
            Ok(s) => read_fields(s, &self.ops),
            Err(e) => e,
        }
    }
}

// ---- definitions -------------------------------------------------------------

use crate::acl::Categories as C;
use crate::cmd::cat::*;
use crate::cmd::{read, write, CommandSpec, K1};

/// This group's command definitions (see `crate::cmd`).
pub(crate) static COMMANDS: &[CommandSpec] = &[
    write(
        "bitfield",
        -2,
        F_DENYOOM,
        "@bitmap",
        K1,
        typed_write::<BitField>(),
    )
    .acl(cats(&[WRITE, C::BITMAP, SLOW]), (KA_RW, KA_RW))
    .doc(
        "Perform arbitrary bitfield integer operations on strings",
        "3.2.0",
        "O(1) for each subcommand specified",
    ),
    read(
        "bitfield_ro",
        -2,
        F_FAST,
        "@bitmap",
        K1,
        typed_read::<BitField>(),
    )
    .acl(cats(&[READ, C::BITMAP, FAST]), (KA_R, KA_R))
    .doc(
        "Perform arbitrary bitfield integer operations on strings. Read-only variant of BITFIELD",
        "6.0.0",
        "O(1) for each subcommand specified",
    ),
];

#[cfg(test)]
mod tests;
