//! CRC-64/Jones, the checksum at the end of every DUMP payload (and of RDB
//! files): polynomial 0xad93d23594c935a9, reflected input and output,
//! initial value 0, no final xor. `crc64(b"123456789")` is
//! `0xe9c6d914c4b8d9ca`, the check value Redis's own test uses.
//!
//! Byte-at-a-time with a 256-entry table built at compile time; payloads are
//! single values, so this is fast enough and has no unsafe code.

/// The polynomial, bit-reversed for the reflected (LSB-first) algorithm.
const POLY_REFLECTED: u64 = 0xad93_d235_94c9_35a9_u64.reverse_bits();

const TABLE: [u64; 256] = {
    let mut table = [0u64; 256];
    let mut i = 0;
    while i < 256 {
        let mut crc = i as u64;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 1 == 1 {
                (crc >> 1) ^ POLY_REFLECTED
            } else {
                crc >> 1
            };
            bit += 1;
        }
        table[i] = crc;
        i += 1;
    }
    table
};

/// Continues the checksum `crc` (0 to start) over `data`.
pub fn update(mut crc: u64, data: &[u8]) -> u64 {
    for &byte in data {
        crc = TABLE[((crc ^ u64::from(byte)) & 0xff) as usize] ^ (crc >> 8);
    }
    crc
}

/// The checksum of `data`.
pub fn crc64(data: &[u8]) -> u64 {
    update(0, data)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn check_value_matches_redis() {
        // Redis's crc64.c self test: crc64(0, "123456789", 9) == 0xe9c6d914c4b8d9ca.
        assert_eq!(crc64(b"123456789"), 0xe9c6_d914_c4b8_d9ca);
        assert_eq!(crc64(b""), 0);
        // Incremental use gives the same result.
        assert_eq!(update(crc64(b"1234"), b"56789"), crc64(b"123456789"));
    }
}
