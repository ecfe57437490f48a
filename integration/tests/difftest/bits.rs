//! The difftest's generator for bitmaps, BITFIELD, LCS and HyperLogLog
//! (issue 16): SETBIT, GETBIT, BITCOUNT, BITPOS, BITOP, BITFIELD,
//! BITFIELD_RO, LCS, PFADD, PFCOUNT, PFMERGE and PFDEBUG, over their own
//! keys (`b*` bitmaps, `p*` HyperLogLogs) and sometimes the shared ones
//! (WRONGTYPE, a bit command on a string another generator wrote, an HLL
//! command on a bitmap). Every reply is compared exactly.
//!
//! Two rules keep the comparison exact:
//! - PFCOUNT is only sent with several keys (`PFCOUNT p0 p0` for one):
//!   Redis's one-key PFCOUNT stores the count it computes in the key, dkv's
//!   (a read) does not (kv/hll_cmds.rs), and the other generators' GET and
//!   DEBUG DIGEST would see those header bytes. The one-key path is covered
//!   by the unit tests (kv/hll_cmds/tests.rs). `p*` keys are also read back
//!   with GETRANGE (bytes 0..8 and 16..).
//! - Offsets stay below 2^20 bits (128 KB strings) so a run stays fast;
//!   the 512 MB limit is covered by the out-of-range offsets and the unit
//!   tests.
//!
//! Not generated: PFSELFTEST (seconds of CPU on Redis for one `+OK`; its
//! unit test runs the same checks), PFDEBUG GETREG on a shared key inside
//! MULTI (no reason beyond keeping EXEC replies small).

use super::{b, cmd, exact, key, value, Check, Cmd};
use dkv_integration::rng::Rng;

const BIT_KEYS: &[&str] = &["b0", "b1", "b2", "b3"];
const HLL_KEYS: &[&str] = &["p0", "p1", "p2"];

fn bit_key(r: &mut Rng) -> Vec<u8> {
    if r.chance(85) {
        b(r.pick(BIT_KEYS))
    } else {
        key(r)
    }
}

fn hll_key(r: &mut Rng) -> Vec<u8> {
    if r.chance(90) {
        b(r.pick(HLL_KEYS))
    } else {
        bit_key(r)
    }
}

/// A bit offset: small, near a byte edge, large, or invalid.
fn offset(r: &mut Rng) -> String {
    match r.below(12) {
        0 => r
            .pick(&[
                "-1",
                "x",
                "4294967296",
                "",
                "1.5",
                "#3",
                "9223372036854775807",
            ])
            .to_string(),
        1 => (r.below(1 << 20)).to_string(),
        2..=4 => (r.below(8) * 8 + if r.chance(50) { 0 } else { 7 }).to_string(),
        _ => r.below(200).to_string(),
    }
}

/// A range index (BITCOUNT, BITPOS), sometimes negative or huge.
fn index(r: &mut Rng) -> String {
    match r.below(10) {
        0 => r
            .pick(&[
                "x",
                "9223372036854775807",
                "-9223372036854775808",
                "-1",
                "-100",
            ])
            .to_string(),
        1..=3 => format!("-{}", r.below(40)),
        _ => r.below(40).to_string(),
    }
}

fn unit(r: &mut Rng) -> Vec<u8> {
    b(r.pick(&["BIT", "BYTE", "bit", "byte", "BAD"]))
}

fn bitfield_type(r: &mut Rng) -> String {
    match r.below(12) {
        0 => r.pick(&["u64", "i0", "i65", "x8", "u", "i"]).to_string(),
        1 => "i64".to_string(),
        2 => "u63".to_string(),
        _ => {
            let widest = if r.chance(50) { 16 } else { 63 };
            format!("{}{}", r.pick(&["i", "u"]), 1 + r.below(widest))
        }
    }
}

fn bitfield_value(r: &mut Rng) -> String {
    match r.below(8) {
        0 => r
            .pick(&[
                "9223372036854775807",
                "-9223372036854775808",
                "x",
                "18446744073709551615",
            ])
            .to_string(),
        1 => format!("-{}", r.below(1000)),
        2 => (r.next_u64() >> r.below(64)).to_string(),
        _ => r.below(300).to_string(),
    }
}

fn bitfield_offset(r: &mut Rng) -> String {
    if r.chance(25) {
        format!("#{}", r.below(20))
    } else {
        offset(r)
    }
}

/// `BITFIELD` (or BITFIELD_RO with GETs, sometimes a write) with 0 to 5
/// subcommands and OVERFLOW switches.
fn bitfield(r: &mut Rng) -> Cmd {
    let ro = r.chance(25);
    let mut a = vec![b(if ro { "BITFIELD_RO" } else { "BITFIELD" }), bit_key(r)];
    for _ in 0..r.below(6) {
        let write = !ro || r.chance(5);
        match r.below(if write { 5 } else { 1 }) {
            0 => a.extend([b("GET"), b(&bitfield_type(r)), b(&bitfield_offset(r))]),
            1 | 2 => a.extend([
                b(r.pick(&["SET", "INCRBY", "incrby"])),
                b(&bitfield_type(r)),
                b(&bitfield_offset(r)),
                b(&bitfield_value(r)),
            ]),
            3 => a.extend([
                b("OVERFLOW"),
                b(r.pick(&["WRAP", "SAT", "FAIL", "fail", "BAD"])),
            ]),
            _ => a.push(b(r.pick(&["GET", "FOO", "OVERFLOW"]))),
        }
    }
    exact(a)
}

/// An element for PFADD: few distinct ones (counts stay exact-small), or a
/// run of many (promotion to dense).
fn elements(r: &mut Rng, a: &mut Vec<Vec<u8>>) {
    if r.chance(4) {
        let base = r.below(1_000_000);
        let n = 200 + r.below(3000);
        a.extend((base..base + n).map(|i| format!("e{i}").into_bytes()));
        return;
    }
    for _ in 0..r.below(6) {
        if r.chance(80) {
            a.push(format!("e{}", r.below(300)).into_bytes());
        } else {
            a.push(value(r));
        }
    }
}

/// One bitmap, BITFIELD, LCS or HyperLogLog command.
pub fn gen_bits(r: &mut Rng) -> Cmd {
    match r.below(30) {
        0..=3 => exact(vec![
            b("SETBIT"),
            bit_key(r),
            b(&offset(r)),
            b(r.pick(&["0", "1", "1", "2", "-1", "x"])),
        ]),
        4 | 5 => exact(vec![b("GETBIT"), bit_key(r), b(&offset(r))]),
        6 | 7 => {
            let mut a = vec![b("BITCOUNT"), bit_key(r)];
            match r.below(5) {
                0 => {}
                1 => a.push(b(&index(r))),
                2 => a.extend([b(&index(r)), b(&index(r))]),
                _ => a.extend([b(&index(r)), b(&index(r)), unit(r)]),
            }
            exact(a)
        }
        8 | 9 => {
            let mut a = vec![
                b("BITPOS"),
                bit_key(r),
                b(r.pick(&["0", "1", "1", "0", "2", "x"])),
            ];
            for _ in 0..r.below(5) {
                a.push(if a.len() == 5 { unit(r) } else { b(&index(r)) });
            }
            exact(a)
        }
        10 | 11 => {
            let op = r.pick(&["AND", "OR", "XOR", "NOT", "not", "and", "BAD"]);
            let mut a = vec![b("BITOP"), b(op), bit_key(r)];
            let n = if op.eq_ignore_ascii_case("not") && r.chance(80) {
                1
            } else {
                1 + r.below(3)
            };
            a.extend((0..n).map(|_| bit_key(r)));
            exact(a)
        }
        12..=14 => bitfield(r),
        15 => {
            let mut a = vec![b("LCS"), bit_key(r), bit_key(r)];
            for _ in 0..r.below(4) {
                match r.below(6) {
                    0 => a.push(b("LEN")),
                    1 | 2 => a.push(b("IDX")),
                    3 => a.push(b("WITHMATCHLEN")),
                    4 => a.extend([
                        b("MINMATCHLEN"),
                        b(r.pick(&["0", "1", "2", "4", "-1", "x"])),
                    ]),
                    _ => a.push(b(r.pick(&["BAD", "MINMATCHLEN"]))),
                }
            }
            exact(a)
        }
        16 => exact(vec![b("SET"), bit_key(r), value(r)]),
        17..=20 => {
            let mut a = vec![b("PFADD"), hll_key(r)];
            elements(r, &mut a);
            exact(a)
        }
        21 | 22 => {
            // The one-key path as a union of the key with itself: Redis's
            // one-key PFCOUNT stores its count in the key, which DEBUG
            // DIGEST (another generator) would then see (module docs).
            let k = b(r.pick(HLL_KEYS));
            exact(vec![b("PFCOUNT"), k.clone(), k])
        }
        23 => {
            let mut a = vec![b("PFCOUNT")];
            a.extend((0..2 + r.below(3)).map(|_| hll_key(r)));
            exact(a)
        }
        24 | 25 => {
            let mut a = vec![b("PFMERGE"), hll_key(r)];
            a.extend((0..r.below(4)).map(|_| hll_key(r)));
            exact(a)
        }
        26 => {
            let sub = r.pick(&["ENCODING", "DECODE", "TODENSE", "GETREG", "encoding", "FOO"]);
            exact(vec![b("PFDEBUG"), b(sub), hll_key(r)])
        }
        27 => {
            // The registers and the header without the cached count.
            let k = b(r.pick(HLL_KEYS));
            let (start, end) = if r.chance(50) {
                ("16", "-1")
            } else {
                ("0", "7")
            };
            exact(vec![b("GETRANGE"), k, b(start), b(end)])
        }
        28 => exact(vec![b("GET"), b(r.pick(BIT_KEYS))]),
        _ => cmd(
            vec![b("OBJECT"), b("ENCODING"), b(r.pick(BIT_KEYS))],
            Check::Exact,
        ),
    }
}
