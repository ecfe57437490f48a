//! LZF, the compression Redis applies to strings longer than 20 bytes in
//! DUMP payloads and RDB files (`rdbcompression yes`).
//!
//! The stream is a sequence of chunks. A control byte below 32 starts a
//! literal run of `ctrl + 1` bytes; otherwise its top three bits are a
//! match length (7 means "add the next byte"), its low five bits the high
//! bits of a back-reference distance whose low byte follows; a match copies
//! `len + 2` bytes from `distance + 1` bytes back in the output (it may
//! overlap what it writes).
//!
//! [`decompress`] is total: it checks every read against the input and every
//! write against the expected length, and allocates at most what the input
//! can expand to, so a hostile length cannot make it allocate or panic.
//! [`compress`] is liblzf's algorithm as Redis builds it, so dkv's DUMP of a
//! long string is normally byte-identical to Redis's (see its docs for the
//! exception).

/// The longest back-reference distance (13 bits).
const MAX_OFF: usize = 1 << 13;
/// The longest match: 7 + 255 + 2 bytes.
const MAX_REF: usize = (1 << 8) + (1 << 3);
/// The longest literal run.
const MAX_LIT: usize = 1 << 5;
/// The most output one input byte can produce: a 3-byte back-reference
/// copies at most `MAX_REF` bytes, so the ratio is below 89.
const MAX_EXPANSION: usize = 89;

/// Decompresses `input`, which must expand to exactly `expected_len` bytes;
/// `None` for anything else (truncated, a reference before the start, more
/// or less output than expected).
pub fn decompress(input: &[u8], expected_len: usize) -> Option<Vec<u8>> {
    if expected_len > input.len().saturating_mul(MAX_EXPANSION) {
        return None;
    }
    let mut out = Vec::with_capacity(expected_len);
    let mut ip = 0;
    while ip < input.len() {
        let ctrl = usize::from(input[ip]);
        ip += 1;
        if ctrl < 32 {
            let run = ctrl + 1;
            let literal = input.get(ip..ip + run)?;
            if out.len() + run > expected_len {
                return None;
            }
            out.extend_from_slice(literal);
            ip += run;
        } else {
            let mut len = ctrl >> 5;
            if len == 7 {
                len += usize::from(*input.get(ip)?);
                ip += 1;
            }
            let low = usize::from(*input.get(ip)?);
            ip += 1;
            let distance = ((ctrl & 0x1f) << 8) + low + 1;
            let len = len + 2;
            if distance > out.len() || out.len() + len > expected_len {
                return None;
            }
            let start = out.len() - distance;
            for i in 0..len {
                let byte = out[start + i];
                out.push(byte);
            }
        }
    }
    (out.len() == expected_len).then_some(out)
}

/// Compresses `input` as liblzf's `lzf_compress` does with Redis's build
/// settings (`HLOG 16`, `VERY_FAST`), into at most `out_len` bytes; `None`
/// when it does not fit (liblzf's 0), and the caller stores the input as
/// it is. Redis's hash table starts uninitialised, so a stale slot can,
/// rarely, make Redis find a match this table (which starts empty) does
/// not: both outputs decompress to the same bytes, but they can differ.
pub fn compress(input: &[u8], out_len: usize) -> Option<Vec<u8>> {
    const HLOG: u32 = 16;
    const HSIZE: u32 = 1 << HLOG;
    let in_len = input.len();
    if in_len < 3 || out_len == 0 {
        return None;
    }
    let frst = |p: usize| (u32::from(input[p]) << 8) | u32::from(input[p + 1]);
    let next = |v: u32, p: usize| (v << 8) | u32::from(input[p + 2]);
    let idx =
        |h: u32| ((h >> (3 * 8 - HLOG)).wrapping_sub(h.wrapping_mul(5)) & (HSIZE - 1)) as usize;
    // Positions; 0 doubles as "empty", as a match at the very start is
    // never taken (liblzf's `ref > in_data`).
    let mut htab = vec![0usize; HSIZE as usize];
    // Slack past `out_len`: liblzf checks space before each step, not each byte.
    let mut out = vec![0u8; out_len + 8];
    let mut op = 1; // a literal run starts at out[0]
    let mut lit: usize = 0;
    let mut ip = 0;
    let mut hval = frst(ip);
    while ip < in_len - 2 {
        hval = next(hval, ip);
        let slot = idx(hval);
        let r = htab[slot];
        htab[slot] = ip;
        let off = ip.wrapping_sub(r).wrapping_sub(1);
        if r > 0
            && off < MAX_OFF
            && input[r + 2] == input[ip + 2]
            && input[r..r + 2] == input[ip..ip + 2]
        {
            let maxlen = (in_len - ip - 2).min(MAX_REF);
            if op + 4 >= out_len && op - usize::from(lit == 0) + 4 >= out_len {
                return None;
            }
            out[op - lit - 1] = (lit as u8).wrapping_sub(1);
            op -= usize::from(lit == 0);
            let mut len = 2;
            let mut unrolled_mismatch = false;
            if maxlen > 16 {
                for _ in 0..16 {
                    len += 1;
                    if input[r + len] != input[ip + len] {
                        unrolled_mismatch = true;
                        break;
                    }
                }
            }
            if !unrolled_mismatch {
                loop {
                    len += 1;
                    if !(len < maxlen && input[r + len] == input[ip + len]) {
                        break;
                    }
                }
            }
            len -= 2;
            ip += 1;
            if len < 7 {
                out[op] = ((off >> 8) + (len << 5)) as u8;
                op += 1;
            } else {
                out[op] = ((off >> 8) + (7 << 5)) as u8;
                out[op + 1] = (len - 7) as u8;
                op += 2;
            }
            out[op] = off as u8;
            op += 1;
            lit = 0;
            op += 1; // start a run
            ip += len + 1;
            if ip >= in_len - 2 {
                break;
            }
            ip -= 2;
            hval = frst(ip);
            hval = next(hval, ip);
            htab[idx(hval)] = ip;
            ip += 1;
            hval = next(hval, ip);
            htab[idx(hval)] = ip;
            ip += 1;
        } else {
            if op >= out_len {
                return None;
            }
            lit += 1;
            out[op] = input[ip];
            op += 1;
            ip += 1;
            if lit == MAX_LIT {
                out[op - lit - 1] = (lit - 1) as u8;
                lit = 0;
                op += 1;
            }
        }
    }
    if op + 3 > out_len {
        return None;
    }
    while ip < in_len {
        lit += 1;
        out[op] = input[ip];
        op += 1;
        ip += 1;
        if lit == MAX_LIT {
            out[op - lit - 1] = (lit - 1) as u8;
            lit = 0;
            op += 1;
        }
    }
    out[op - lit - 1] = (lit as u8).wrapping_sub(1);
    op -= usize::from(lit == 0);
    out.truncate(op);
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decompresses_literals_and_overlapping_references() {
        // "aaaaaaaaaa": literal "a", then a 9-byte match at distance 1.
        let input = [0x00, b'a', 0xe0, 0x00, 0x00];
        assert_eq!(decompress(&input, 10).as_deref(), Some(&b"aaaaaaaaaa"[..]));
        // Wrong expected length, truncated input, reference before the start.
        assert_eq!(decompress(&input, 9), None);
        assert_eq!(decompress(&input, 11), None);
        assert_eq!(decompress(&input[..4], 10), None);
        assert_eq!(decompress(&[0x20, 0x05], 3), None);
        assert_eq!(decompress(&[0x05, b'a'], 6), None);
        // A hostile expected length allocates nothing.
        assert_eq!(decompress(&[0x00, b'a'], usize::MAX), None);
    }

    #[test]
    fn compress_round_trips() {
        let mut inputs: Vec<Vec<u8>> = vec![
            b"x".repeat(1000),
            b"hello world hello world hello world, hello".to_vec(),
            (0..5000u32).map(|i| (i * 7 % 13) as u8).collect(),
            (0..300u32)
                .map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8)
                .collect(),
        ];
        inputs.push(inputs[0].iter().chain(&inputs[2]).copied().collect());
        for input in inputs {
            match compress(&input, input.len() - 4) {
                Some(packed) => {
                    assert!(packed.len() <= input.len() - 4);
                    assert_eq!(decompress(&packed, input.len()), Some(input));
                }
                None => assert!(input.len() < 400, "repetitive input must compress"),
            }
        }
        assert_eq!(compress(b"abc", 3), None);
        // Redis 7.0.15's DUMP of SET s_long <100 x>: clen 9, len 100, then
        // these bytes (see dump/tests.rs for how payloads were captured).
        assert_eq!(
            compress(&[b'x'; 100], 96).as_deref(),
            Some(&[0x01, 0x78, 0x78, 0xe0, 0x57, 0x00, 0x01, 0x78, 0x78][..])
        );
    }
}
