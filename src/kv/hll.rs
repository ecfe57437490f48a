//! The HyperLogLog representation, byte for byte Redis 7.0's: a 16-byte
//! header (`HYLL`, the encoding byte, 3 zero bytes, the cached cardinality
//! as 8 little-endian bytes whose top bit marks it stale), then either the
//! sparse opcodes (ZERO `00xxxxxx`, XZERO `01xxxxxx xxxxxxxx`, VAL
//! `1vvvvvxx`) or 16384 dense 6-bit registers. Elements hash with
//! MurmurHash64A (seed `0xadc83b19`); counts use Redis 7.0's estimator
//! (Ertl's tau/sigma). The commands are in `hll_cmds.rs`.
//!
//! Every function here takes bytes that may be hostile (a SET of a fake
//! `HYLL` header): they never panic and never read past the end. A byte
//! Redis would read just past the end of its string (its terminator) reads
//! as 0 here, so a valid HLL gives Redis's results exactly.

/// Header bytes.
pub(crate) const HDR: usize = 16;
/// `P`: 2^14 registers.
const P: u32 = 14;
/// Registers.
pub(crate) const REGISTERS: usize = 1 << P;
/// Bits of the hash counted for leading zeros.
const Q: usize = 64 - P as usize;
/// Bits per dense register.
const BITS: usize = 6;
const REGISTER_MAX: u8 = (1 << BITS) - 1;
/// Size of a dense HLL, header included.
pub(crate) const DENSE_SIZE: usize = HDR + (REGISTERS * BITS).div_ceil(8);
/// Encoding byte of a dense HLL.
pub(crate) const DENSE: u8 = 0;
/// Encoding byte of a sparse HLL.
pub(crate) const SPARSE: u8 = 1;
/// Redis's default `hll-sparse-max-bytes`.
pub const SPARSE_MAX_BYTES_DEFAULT: u64 = 3000;

const VAL_MAX_VALUE: u8 = 32;
const VAL_MAX_LEN: usize = 4;
const ZERO_MAX_LEN: usize = 64;
const XZERO_MAX_LEN: usize = 16384;

/// Redis's error for an HLL whose registers do not decode.
pub(crate) const CORRUPT: &str = "INVALIDOBJ Corrupted HLL object detected";
/// Redis's error for a string that is not an HLL.
pub(crate) const NOT_HLL: &str = "WRONGTYPE Key is not a valid HyperLogLog string value.";

/// MurmurHash64A, as Redis's `hyperloglog.c` has it (little endian).
pub(crate) fn murmur64a(key: &[u8], seed: u64) -> u64 {
    const M: u64 = 0xc6a4_a793_5bd1_e995;
    const R: u32 = 47;
    let mut h = seed ^ (key.len() as u64).wrapping_mul(M);
    let mut chunks = key.chunks_exact(8);
    for chunk in &mut chunks {
        let mut k = u64::from_le_bytes(chunk.try_into().expect("chunks of 8"));
        k = k.wrapping_mul(M);
        k ^= k >> R;
        k = k.wrapping_mul(M);
        h ^= k;
        h = h.wrapping_mul(M);
    }
    let tail = chunks.remainder();
    if !tail.is_empty() {
        for (i, byte) in tail.iter().enumerate() {
            h ^= u64::from(*byte) << (8 * i);
        }
        h = h.wrapping_mul(M);
    }
    h ^= h >> R;
    h = h.wrapping_mul(M);
    h ^= h >> R;
    h
}

/// Redis's `hllPatLen`: the register of `element` and its run of zeros
/// plus one (1..=51).
pub(crate) fn pattern(element: &[u8]) -> (usize, u8) {
    let hash = murmur64a(element, 0xadc8_3b19);
    let index = (hash as usize) & (REGISTERS - 1);
    let rest = (hash >> P) | (1u64 << Q);
    (index, rest.trailing_zeros() as u8 + 1)
}

/// The byte at `i`, 0 past the end (Redis's string terminator).
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

/// Dense register `i` of `regs` (the bytes after the header).
pub(crate) fn dense_get(regs: &[u8], i: usize) -> u8 {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let b0 = u16::from(at(regs, byte));
    let b1 = u16::from(at(regs, byte + 1));
    (((b0 >> fb) | (b1 << (8 - fb))) as u8) & REGISTER_MAX
}

/// Sets dense register `i` to `value`.
pub(crate) fn dense_set(regs: &mut [u8], i: usize, value: u8) {
    let byte = i * BITS / 8;
    let fb = (i * BITS) & 7;
    let v = u16::from(value);
    if let Some(b) = regs.get_mut(byte) {
        *b &= !((u16::from(REGISTER_MAX) << fb) as u8);
        *b |= (v << fb) as u8;
    }
    if let Some(b) = regs.get_mut(byte + 1) {
        *b &= !((u16::from(REGISTER_MAX) >> (8 - fb)) as u8);
        *b |= (v >> (8 - fb)) as u8;
    }
}

/// Sets register `i` if `count` is larger: true if it changed.
fn dense_raise(regs: &mut [u8], i: usize, count: u8) -> bool {
    if count > dense_get(regs, i) {
        dense_set(regs, i, count);
        true
    } else {
        false
    }
}

/// A sparse opcode.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Opcode {
    /// `len` zero registers (ZERO: 1 byte, XZERO: 2 bytes).
    Zero { len: usize, bytes: usize },
    /// `len` registers of `value`.
    Val { value: u8, len: usize },
}

impl Opcode {
    /// The opcode at `p` of `s` (a short XZERO reads its missing byte as 0).
    fn at(s: &[u8], p: usize) -> Opcode {
        let b = at(s, p);
        if b & 0xc0 == 0 {
            Opcode::Zero {
                len: usize::from(b & 0x3f) + 1,
                bytes: 1,
            }
        } else if b & 0x80 == 0 {
            let len = ((usize::from(b & 0x3f) << 8) | usize::from(at(s, p + 1))) + 1;
            Opcode::Zero { len, bytes: 2 }
        } else {
            Opcode::Val {
                value: ((b >> 2) & 0x1f) + 1,
                len: usize::from(b & 3) + 1,
            }
        }
    }

    fn bytes(self) -> usize {
        match self {
            Opcode::Zero { bytes, .. } => bytes,
            Opcode::Val { .. } => 1,
        }
    }

    fn span(self) -> usize {
        match self {
            Opcode::Zero { len, .. } | Opcode::Val { len, .. } => len,
        }
    }
}

fn val_byte(value: u8, len: usize) -> u8 {
    ((value - 1) << 2) | (len as u8 - 1) | 0x80
}

/// Appends the shortest zero run opcode for `len` (1..=16384) registers.
fn push_zeros(out: &mut Vec<u8>, len: usize) {
    if len > ZERO_MAX_LEN {
        let l = len - 1;
        out.push((l >> 8) as u8 | 0x40);
        out.push((l & 0xff) as u8);
    } else {
        out.push(len as u8 - 1);
    }
}

/// A new, empty HLL: sparse, the cache valid at 0 (`createHLLObject`).
pub(crate) fn new_sparse() -> Vec<u8> {
    let mut s = Vec::with_capacity(HDR + 2);
    s.extend_from_slice(b"HYLL");
    s.push(SPARSE);
    s.extend_from_slice(&[0; 11]);
    let mut left = REGISTERS;
    while left > 0 {
        let run = left.min(XZERO_MAX_LEN);
        push_zeros(&mut s, run);
        left -= run;
    }
    s
}

/// Redis's `isHLLObjectOrReply` on a string's bytes: its encoding byte.
///
/// # Errors
///
/// [`NOT_HLL`]: too short, no magic, unknown encoding, or a dense HLL of
/// the wrong size.
pub(crate) fn check(s: &[u8]) -> Result<u8, &'static str> {
    if s.len() < HDR || &s[..4] != b"HYLL" || s[4] > SPARSE {
        return Err(NOT_HLL);
    }
    if s[4] == DENSE && s.len() != DENSE_SIZE {
        return Err(NOT_HLL);
    }
    Ok(s[4])
}

/// Marks the cached cardinality stale (`HLL_INVALIDATE_CACHE`).
pub(crate) fn invalidate_cache(s: &mut [u8]) {
    s[HDR - 1] |= 0x80;
}

/// The cached cardinality if valid.
pub(crate) fn cached(s: &[u8]) -> Option<u64> {
    let card = u64::from_le_bytes(s[8..HDR].try_into().expect("8 bytes"));
    (s[HDR - 1] & 0x80 == 0).then_some(card)
}

/// Redis's `hllSparseToDense`: `None` if the opcodes do not cover exactly
/// the registers. A dense HLL is returned as it is.
pub(crate) fn to_dense(s: &[u8]) -> Option<Vec<u8>> {
    if s[4] == DENSE {
        return Some(s.to_vec());
    }
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..HDR].copy_from_slice(&s[..HDR]);
    dense[4] = DENSE;
    let regs = &mut dense[HDR..];
    let covered = for_each_val(s, |range, value| {
        for i in range {
            dense_set(regs, i, value);
        }
    });
    covered.then_some(dense)
}

/// Walks the sparse opcodes of `s` as Redis 7.0.15's `hllSparseToDense`
/// and `hllMerge` do, calling `f` with each VAL run's registers; true if
/// the opcodes cover exactly the registers. An opcode of any kind that
/// would pass the last register makes the HLL corrupt, even when the
/// opcodes before it covered every register (a VAL run there used to be
/// skipped, which Redis since its fix for sparse overflows refuses).
fn for_each_val(s: &[u8], mut f: impl FnMut(std::ops::Range<usize>, u8)) -> bool {
    let (mut idx, mut p) = (0usize, HDR);
    while p < s.len() {
        let op = Opcode::at(s, p);
        if idx + op.span() > REGISTERS {
            return false;
        }
        if let Opcode::Val { value, len } = op {
            f(idx..idx + len, value);
        }
        idx += op.span();
        p += op.bytes();
    }
    idx == REGISTERS
}

/// What a sparse register update did.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Update {
    /// Nothing to change.
    Same,
    /// Updated (possibly promoted to dense).
    Changed,
}

/// Redis's `hllSparseSet`: raises register `index` of the sparse `s` to
/// `count`, promoting `s` to dense when the value does not fit a VAL
/// opcode or the string would pass `max_bytes`.
///
/// # Errors
///
/// The opcodes do not reach the register, or do not decode on promotion.
pub(crate) fn sparse_set(
    s: &mut Vec<u8>,
    index: usize,
    count: u8,
    max_bytes: u64,
) -> Result<Update, ()> {
    if count > VAL_MAX_VALUE {
        return promote(s, index, count);
    }
    // Step 1: the opcode covering `index`.
    let end = s.len();
    let (mut p, mut first, mut span) = (HDR, 0usize, 0usize);
    let mut prev = None;
    while p < end {
        let op = Opcode::at(s, p);
        span = op.span();
        if index < first + span {
            break;
        }
        prev = Some(p);
        p += op.bytes();
        first += span;
    }
    if span == 0 || p >= end {
        return Err(());
    }
    let op = Opcode::at(s, p);
    // Step 2: the trivial cases.
    match op {
        Opcode::Val { value, .. } if value >= count => return Ok(Update::Same),
        Opcode::Val { len: 1, .. } | Opcode::Zero { len: 1, bytes: 1 } => {
            s[p] = val_byte(count, 1);
            merge_vals(s, prev.unwrap_or(HDR));
            invalidate_cache(s);
            return Ok(Update::Changed);
        }
        _ => {}
    }
    // Step 2 D: split the opcode into at most three.
    let last = first + span - 1;
    let mut seq = Vec::with_capacity(5);
    match op {
        Opcode::Zero { .. } => {
            if index != first {
                push_zeros(&mut seq, index - first);
            }
            seq.push(val_byte(count, 1));
            if index != last {
                push_zeros(&mut seq, last - index);
            }
        }
        Opcode::Val { value, .. } => {
            if index != first {
                seq.push(val_byte(value, index - first));
            }
            seq.push(val_byte(count, 1));
            if index != last {
                seq.push(val_byte(value, last - index));
            }
        }
    }
    // Step 3: put the sequence in place of the opcode.
    let old_len = op.bytes();
    if seq.len() > old_len && (s.len() + seq.len() - old_len) as u64 > max_bytes {
        return promote(s, index, count);
    }
    let replaced = p..(p + old_len).min(s.len());
    s.splice(replaced, seq);
    // Step 4: merge adjacent VAL opcodes of the same value.
    merge_vals(s, prev.unwrap_or(HDR));
    invalidate_cache(s);
    Ok(Update::Changed)
}

/// Redis's step 4 of `hllSparseSet`: scanning up to 5 opcodes from `p`,
/// merges adjacent VALs of one value that fit one opcode.
fn merge_vals(s: &mut Vec<u8>, mut p: usize) {
    let mut scan = 5;
    while p < s.len() && scan > 0 {
        scan -= 1;
        match Opcode::at(s, p) {
            Opcode::Zero { bytes, .. } => {
                p += bytes;
                continue;
            }
            Opcode::Val { value, len } => {
                if p + 1 < s.len() {
                    if let Opcode::Val {
                        value: next_value,
                        len: next_len,
                    } = Opcode::at(s, p + 1)
                    {
                        if value == next_value && len + next_len <= VAL_MAX_LEN {
                            s[p + 1] = val_byte(value, len + next_len);
                            s.remove(p);
                            continue;
                        }
                    }
                }
            }
        }
        p += 1;
    }
}

/// The promotion of `hllSparseSet`: to dense, then the register set.
fn promote(s: &mut Vec<u8>, index: usize, count: u8) -> Result<Update, ()> {
    let mut dense = to_dense(s).ok_or(())?;
    dense_raise(&mut dense[HDR..], index, count);
    *s = dense;
    Ok(Update::Changed)
}

/// Adds `element` to the HLL `s` (already checked): Redis's `hllAdd`.
///
/// # Errors
///
/// A sparse HLL that does not decode.
pub(crate) fn add(s: &mut Vec<u8>, element: &[u8], max_bytes: u64) -> Result<bool, ()> {
    let (index, count) = pattern(element);
    if s[4] == DENSE {
        return Ok(dense_raise(&mut s[HDR..], index, count));
    }
    sparse_set(s, index, count, max_bytes).map(|u| u == Update::Changed)
}

/// Redis's `hllMerge`: raises `max` (one byte per register) to the
/// registers of `s`.
///
/// # Errors
///
/// A sparse HLL whose opcodes do not cover exactly the registers.
pub(crate) fn merge_into(max: &mut [u8; REGISTERS], s: &[u8]) -> Result<(), ()> {
    if s[4] == DENSE {
        for (i, m) in max.iter_mut().enumerate() {
            *m = (*m).max(dense_get(&s[HDR..], i));
        }
        return Ok(());
    }
    let covered = for_each_val(s, |range, value| {
        for m in &mut max[range] {
            *m = (*m).max(value);
        }
    });
    if covered {
        Ok(())
    } else {
        Err(())
    }
}

/// The register histogram of a checked HLL; `None` for a sparse one whose
/// opcodes do not cover exactly the registers.
fn histogram(s: &[u8]) -> Option<[u64; 64]> {
    let mut histo = [0u64; 64];
    if s[4] == DENSE {
        for i in 0..REGISTERS {
            histo[usize::from(dense_get(&s[HDR..], i))] += 1;
        }
        return Some(histo);
    }
    let (mut idx, mut p) = (0usize, HDR);
    while p < s.len() {
        let op = Opcode::at(s, p);
        let value = match op {
            Opcode::Zero { .. } => 0,
            Opcode::Val { value, .. } => usize::from(value),
        };
        histo[value] += op.span() as u64;
        idx += op.span();
        p += op.bytes();
    }
    (idx == REGISTERS).then_some(histo)
}

fn sigma(mut x: f64) -> f64 {
    if x == 1.0 {
        return f64::INFINITY;
    }
    let (mut y, mut z) = (1.0, x);
    loop {
        x *= x;
        let previous = z;
        z += x * y;
        y += y;
        if previous == z {
            return z;
        }
    }
}

fn tau(mut x: f64) -> f64 {
    if x == 0.0 || x == 1.0 {
        return 0.0;
    }
    let (mut y, mut z) = (1.0, 1.0 - x);
    loop {
        x = x.sqrt();
        let previous = z;
        y *= 0.5;
        z -= (1.0 - x).powi(2) * y;
        if previous == z {
            return z / 3.0;
        }
    }
}

/// Redis 7.0's `hllCount` from a register histogram.
fn estimate(histo: &[u64; 64]) -> u64 {
    let m = REGISTERS as f64;
    let mut z = m * tau((m - histo[Q + 1] as f64) / m);
    for j in (1..=Q).rev() {
        z += histo[j] as f64;
        z *= 0.5;
    }
    z += m * sigma(histo[0] as f64 / m);
    let alpha_inf = 0.721_347_520_444_481_7;
    (alpha_inf * m * m / z).round() as u64
}

/// The cardinality of a checked HLL (`None`: corrupt sparse opcodes).
pub(crate) fn count(s: &[u8]) -> Option<u64> {
    histogram(s).map(|h| estimate(&h))
}

/// The cardinality of registers held one per byte (PFCOUNT of several
/// keys: Redis's internal `HLL_RAW`).
pub(crate) fn count_raw(max: &[u8; REGISTERS]) -> u64 {
    let mut histo = [0u64; 64];
    for &r in max.iter() {
        histo[usize::from(r & 63)] += 1;
    }
    estimate(&histo)
}

/// PFDEBUG DECODE's text of a sparse HLL.
pub(crate) fn decode(s: &[u8]) -> String {
    let mut parts = Vec::new();
    let mut p = HDR;
    while p < s.len() {
        let op = Opcode::at(s, p);
        parts.push(match op {
            Opcode::Zero { len, bytes: 1 } => format!("z:{len}"),
            Opcode::Zero { len, .. } => format!("Z:{len}"),
            Opcode::Val { value, len } => format!("v:{value},{len}"),
        });
        p += op.bytes();
    }
    parts.join(" ")
}

/// Redis's PFSELFTEST: `cycles` rounds of random register writes read
/// back, then `adds` distinct elements added to a dense and a sparse HLL,
/// checking at every power of ten that the sparse one stays sparse while
/// small, that both agree, and that the error is within six standard
/// errors. Deterministic (a fixed xorshift seed where Redis uses `rand`).
///
/// # Errors
///
/// Redis's `TESTFAILED` text for the first check that fails.
pub(crate) fn self_test(cycles: usize, adds: u64) -> Result<(), String> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let mut dense = vec![0u8; DENSE_SIZE];
    dense[..4].copy_from_slice(b"HYLL");
    let mut expected = vec![0u8; REGISTERS];
    for _ in 0..cycles {
        for (i, e) in expected.iter_mut().enumerate() {
            *e = (next() as u8) & REGISTER_MAX;
            dense_set(&mut dense[HDR..], i, *e);
        }
        for (i, e) in expected.iter().enumerate() {
            let got = dense_get(&dense[HDR..], i);
            if got != *e {
                return Err(format!(
                    "ERR TESTFAILED Register {i} should be {e} but is {got}"
                ));
            }
        }
    }
    dense[HDR..].fill(0);
    let mut sparse = new_sparse();
    let relerr = 1.04 / (REGISTERS as f64).sqrt();
    let seed = next();
    let mut checkpoint = 1u64;
    for j in 1..=adds {
        let element = (j ^ seed).to_le_bytes();
        let (index, run) = pattern(&element);
        dense_raise(&mut dense[HDR..], index, run);
        // A sparse HLL built here always decodes.
        let _ = add(&mut sparse, &element, SPARSE_MAX_BYTES_DEFAULT);
        if j != checkpoint {
            continue;
        }
        if j < SPARSE_MAX_BYTES_DEFAULT / 2 && sparse[4] != SPARSE {
            return Err("ERR TESTFAILED sparse encoding not used".to_string());
        }
        let card = count(&dense).unwrap_or(0);
        if count(&sparse) != Some(card) {
            return Err("ERR TESTFAILED dense/sparse disagree".to_string());
        }
        let abserr = checkpoint.abs_diff(card);
        let maxerr = if j == 10 {
            1
        } else {
            (relerr * 6.0 * checkpoint as f64).ceil() as u64
        };
        if abserr > maxerr {
            return Err(format!(
                "ERR TESTFAILED Too big error. card:{checkpoint} abserr:{abserr}"
            ));
        }
        checkpoint *= 10;
    }
    Ok(())
}

#[cfg(test)]
mod tests;
