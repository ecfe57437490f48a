//! Redis Cluster's hash slots: which of the 16384 slots a key belongs to.
//!
//! dkv presents its Raft group as one shard owning every slot
//! (`server::commands::cluster`), so a slot never decides where a key
//! lives; it only has to be the number cluster-aware clients compute for
//! the same key, because they route by it and read it back in `MOVED`.
//! That number is CRC16-CCITT (XMODEM: polynomial 0x1021, initial value 0,
//! no reflection) of the key, or of its hash tag, modulo 16384. The hash
//! tag is the text between the first `{` and the first `}` after it, when
//! that text is not empty (`{user1}.name` and `{user1}.mail` share a slot;
//! `{}x` hashes whole, and so does a key with no `}` after its first `{`).

/// The number of hash slots in a Redis cluster.
pub const SLOTS: u16 = 16384;

/// CRC16 lookup table for polynomial 0x1021, built at compile time.
const CRC16_TABLE: [u16; 256] = {
    let mut table = [0u16; 256];
    let mut byte = 0;
    while byte < 256 {
        let mut crc = (byte as u16) << 8;
        let mut bit = 0;
        while bit < 8 {
            crc = if crc & 0x8000 != 0 {
                (crc << 1) ^ 0x1021
            } else {
                crc << 1
            };
            bit += 1;
        }
        table[byte] = crc;
        byte += 1;
    }
    table
};

/// CRC16-CCITT (XMODEM) of `bytes`.
pub fn crc16(bytes: &[u8]) -> u16 {
    bytes.iter().fold(0u16, |crc, &b| {
        (crc << 8) ^ CRC16_TABLE[usize::from((crc >> 8) as u8 ^ b)]
    })
}

/// The part of `key` that is hashed: its hash tag if it has a non-empty
/// one, else the whole key.
pub fn hash_tag(key: &[u8]) -> &[u8] {
    let Some(open) = key.iter().position(|&b| b == b'{') else {
        return key;
    };
    let rest = &key[open + 1..];
    match rest.iter().position(|&b| b == b'}') {
        Some(close) if close > 0 => &rest[..close],
        _ => key,
    }
}

/// The hash slot of `key` (0..16384), as Redis Cluster computes it.
pub fn key_slot(key: &[u8]) -> u16 {
    crc16(hash_tag(key)) & (SLOTS - 1)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The check value of CRC16/XMODEM, and the slots a Redis 7.0.15
    /// cluster answered to `CLUSTER KEYSLOT` for the same keys.
    #[test]
    fn slots_match_redis() {
        assert_eq!(crc16(b"123456789"), 0x31C3);
        for (key, slot) in [
            ("123456789", 12739),
            ("foo", 12182),
            ("bar", 5061),
            ("", 0),
            ("{user1000}.following", 3443),
            ("{user1000}.followers", 3443),
            ("user1000", 3443),
            ("foo{}{bar}", 8363),
            ("foo{{bar}}zap", 4015),
            ("foo{bar}{zap}", 5061),
            ("{}", 15257),
        ] {
            assert_eq!(key_slot(key.as_bytes()), slot, "{key:?}");
        }
    }

    /// Only the first `{` and the first `}` after it count; an empty tag
    /// or a missing `}` means the whole key is hashed.
    #[test]
    fn hash_tag_edge_cases() {
        assert_eq!(hash_tag(b"{a}b"), b"a");
        assert_eq!(hash_tag(b"x{a}{b}"), b"a");
        assert_eq!(hash_tag(b"{{a}}"), b"{a");
        assert_eq!(hash_tag(b"x{}{a}"), b"x{}{a}");
        assert_eq!(hash_tag(b"x{a"), b"x{a");
        assert_eq!(hash_tag(b"x}a{"), b"x}a{");
        assert_eq!(hash_tag(b"x}{a}"), b"a");
        assert_eq!(hash_tag(b"plain"), b"plain");
        assert_eq!(hash_tag(b"{"), b"{");
        assert_eq!(hash_tag(b"}"), b"}");
        assert_eq!(key_slot(b"{a}1"), key_slot(b"a"));
        assert_eq!(key_slot(b"\xff{\x00}"), key_slot(b"\x00"));
    }

    /// Every slot is below 16384, whatever the bytes.
    #[test]
    fn slots_stay_in_range() {
        let mut key = Vec::new();
        for i in 0..2000u32 {
            key.extend_from_slice(&i.to_le_bytes());
            assert!(key_slot(&key) < SLOTS);
        }
    }
}
