//! The keyspace's own copy of a key: up to [`INLINE`] bytes inside the slot
//! itself, a longer key in a buffer of its size.
//!
//! Why: nearly every key a Redis client uses is short (`user:1042`,
//! `key:000000123456`, a job id), and as a `Bytes` each one cost its 32-byte
//! handle in the slot plus a separate heap buffer, which a lookup then had
//! to follow to compare the key (a cache miss once the map outgrows the
//! caches) and which the allocator rounds up. A short key now lives in the
//! 32 bytes the handle took: no buffer, no second cache line, and a copy
//! (for the deadline index) is a memcpy, not a reference count plus the
//! 24-byte sharing header `Bytes` allocates on its first clone.
//!
//! Invariant: a key of at most [`INLINE`] bytes is always inline, so two
//! equal keys have the same form. Equality, order and hashing are the
//! bytes' own whatever the form, so nothing observable depends on it.

use std::borrow::Borrow;
use std::cmp::Ordering;
use std::fmt;
use std::ops::Deref;

use bytes::Bytes;

/// The longest key kept inside the slot: what fits beside the length byte
/// in the 32 bytes a `Bytes` takes (the enum's tag lives in the niche of
/// the `Bytes` variant, so `Key` is no bigger than `Bytes`; a test pins it).
pub(crate) const INLINE: usize = 23;

/// A key as the keyspace keeps it (see the module docs).
#[derive(Clone)]
pub(crate) enum Key {
    /// `len` bytes at the start of `bytes` (`len <= INLINE`).
    Inline { len: u8, bytes: [u8; INLINE] },
    /// A key longer than [`INLINE`], in a buffer of its own.
    Heap(Bytes),
}

impl Key {
    /// The keyspace's copy of `key`.
    pub(crate) fn copy(key: &[u8]) -> Key {
        if key.len() <= INLINE {
            let mut bytes = [0; INLINE];
            bytes[..key.len()].copy_from_slice(key);
            Key::Inline {
                len: key.len() as u8,
                bytes,
            }
        } else {
            Key::Heap(Bytes::copy_from_slice(key))
        }
    }

    /// The empty key (below every other in order).
    pub(crate) const EMPTY: Key = Key::Inline {
        len: 0,
        bytes: [0; INLINE],
    };

    /// The key as a `Bytes` for a reply or a proposal: a copy of an inline
    /// key, a shared handle on a longer one.
    pub(crate) fn to_bytes(&self) -> Bytes {
        match self {
            Key::Inline { .. } => Bytes::copy_from_slice(self),
            Key::Heap(bytes) => bytes.clone(),
        }
    }
}

impl Deref for Key {
    type Target = [u8];

    fn deref(&self) -> &[u8] {
        match self {
            Key::Inline { len, bytes } => &bytes[..usize::from(*len)],
            Key::Heap(bytes) => bytes,
        }
    }
}

impl Borrow<[u8]> for Key {
    fn borrow(&self) -> &[u8] {
        self
    }
}

impl PartialEq for Key {
    fn eq(&self, other: &Key) -> bool {
        **self == **other
    }
}

impl Eq for Key {}

impl PartialEq<Bytes> for Key {
    fn eq(&self, other: &Bytes) -> bool {
        **self == **other
    }
}

impl PartialOrd for Key {
    fn partial_cmp(&self, other: &Key) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Key {
    fn cmp(&self, other: &Key) -> Ordering {
        (**self).cmp(&**other)
    }
}

impl std::hash::Hash for Key {
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        (**self).hash(state);
    }
}

/// As `Bytes` shows itself (`b"user:1"`).
impl fmt::Debug for Key {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Debug::fmt(&Bytes::copy_from_slice(self), f)
    }
}

/// As `Bytes` serializes: snapshots written before this type read the same.
impl serde::Serialize for Key {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_bytes(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_is_no_bigger_than_the_bytes_handle_it_replaces() {
        assert_eq!(std::mem::size_of::<Key>(), std::mem::size_of::<Bytes>());
    }

    #[test]
    fn short_keys_are_inline_and_long_ones_on_the_heap() {
        for len in [0, 1, 16, INLINE, INLINE + 1, 100] {
            let raw: Vec<u8> = (0..len).map(|i| i as u8).collect();
            let key = Key::copy(&raw);
            assert_eq!(&*key, &raw[..], "len {len}");
            assert_eq!(
                matches!(key, Key::Inline { .. }),
                len <= INLINE,
                "len {len}"
            );
            assert_eq!(key.to_bytes(), raw, "len {len}");
            assert_eq!(key.clone(), key, "len {len}");
        }
    }

    #[test]
    fn order_and_equality_are_the_bytes_own_across_forms() {
        let keys: Vec<Vec<u8>> = vec![
            b"".to_vec(),
            b"a".to_vec(),
            vec![b'a'; INLINE],
            vec![b'a'; INLINE + 1],
            vec![b'a'; INLINE + 2],
            b"b".to_vec(),
            vec![0xff; INLINE + 5],
        ];
        for a in &keys {
            for b in &keys {
                let (ka, kb) = (Key::copy(a), Key::copy(b));
                assert_eq!(ka.cmp(&kb), a.cmp(b), "{a:?} {b:?}");
                assert_eq!(ka == kb, a == b, "{a:?} {b:?}");
            }
        }
        assert!(Key::EMPTY <= Key::copy(b""));
        assert_eq!(format!("{:?}", Key::copy(b"k:1")), "b\"k:1\"");
    }
}
