//! The string value: its bytes, and whether Redis would hold it in the
//! `raw` encoding whatever its content (the commands are in `strings.rs`).
//!
//! Redis names a string's encoding by how it was stored: a value stored
//! whole (SET and its family, GETSET, INCR*, APPEND to a missing key,
//! RESTORE) is `int`, `embstr` or `raw` by its content ([`content_encoding`]);
//! a number INCRBYFLOAT formatted is never `int` (`embstr`, or `raw` when
//! long); a string changed in place (APPEND to an existing key, SETRANGE)
//! is `raw` until it is replaced, even when short. [`Str`] keeps which of
//! the three it is ([`Origin`]).
//!
//! Invariants:
//! - The origin is set when the value is built and travels with it (COPY,
//!   RENAME and MOVE keep it, as Redis keeps the object); every store
//!   builds a new [`Str`].
//! - It is a function of the replicated commands only, so every replica
//!   reports the same encoding; snapshots carry it (`kv/value_serde.rs`).
//! - [`Str`] dereferences to its [`Bytes`]: reading code treats it as the
//!   bytes it holds.

use std::ops::Deref;

use bytes::Bytes;

use super::parse_i64;

/// Redis's `OBJ_ENCODING_EMBSTR_SIZE_LIMIT`: the longest `embstr`.
const EMBSTR_MAX: usize = 44;

/// A value taken from a command's argument and shorter than this gets a
/// buffer of its own ([`Str::stored`]).
pub(crate) const OWN_BUFFER_BELOW: usize = 1024;

/// The encoding Redis gives `s` stored whole (`tryObjectEncoding`): `int`
/// for a canonical 64-bit integer of at most 20 characters, `embstr` up to
/// 44 bytes, `raw` beyond.
pub fn content_encoding(s: &[u8]) -> &'static str {
    if s.len() <= 20 && parse_i64(s).is_some() {
        "int"
    } else if s.len() <= EMBSTR_MAX {
        "embstr"
    } else {
        "raw"
    }
}

/// How a string value was built: what its encoding follows from.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Origin {
    /// Stored whole: `int`, `embstr` or `raw` by content.
    #[default]
    Stored,
    /// A formatted number (INCRBYFLOAT): `embstr`, or `raw` past 44 bytes.
    Text,
    /// Changed in place: `raw`.
    InPlace,
}

/// A string value (see the module docs).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Str {
    bytes: Bytes,
    origin: Origin,
}

impl Str {
    /// A string stored whole: its encoding follows from its content.
    pub fn new(bytes: Bytes) -> Str {
        Str {
            bytes,
            origin: Origin::Stored,
        }
    }

    /// A string stored whole from a command's argument (SET, SETNX, MSET).
    /// A short one is copied into a buffer of exactly its size, for two
    /// reasons: the argument may be a slice of a larger buffer that the
    /// value would keep alive for as long as it lives (a plain SET's value
    /// is cut from its log entry's payload, `kv::command`), and the first
    /// clone of a `Bytes` that owns its buffer allocates a header to share
    /// it. For 1M SETs of 64-byte values those were 120 bytes a key where
    /// the copy takes 64. A long value is shared: the header and the rest
    /// of the payload are a small part of it, and copying it is not free.
    pub fn stored(arg: &Bytes) -> Str {
        Str::new(if arg.len() < OWN_BUFFER_BELOW {
            Bytes::copy_from_slice(arg)
        } else {
            arg.clone()
        })
    }

    /// A number formatted as text (INCRBYFLOAT's result): never `int`.
    pub fn text(bytes: Bytes) -> Str {
        Str {
            bytes,
            origin: Origin::Text,
        }
    }

    /// A string changed in place (APPEND to an existing key, SETRANGE):
    /// `raw` until replaced.
    pub fn raw(bytes: Bytes) -> Str {
        Str {
            bytes,
            origin: Origin::InPlace,
        }
    }

    /// How it was built.
    pub fn origin(&self) -> Origin {
        self.origin
    }

    /// The bytes.
    pub fn bytes(&self) -> &Bytes {
        &self.bytes
    }

    /// The bytes, by value.
    pub fn into_bytes(self) -> Bytes {
        self.bytes
    }

    /// Redis's `OBJECT ENCODING` name for this string.
    pub fn encoding(&self) -> &'static str {
        match self.origin {
            Origin::Stored => content_encoding(&self.bytes),
            Origin::Text if self.bytes.len() <= EMBSTR_MAX => "embstr",
            Origin::Text | Origin::InPlace => "raw",
        }
    }
}

impl Deref for Str {
    type Target = Bytes;

    fn deref(&self) -> &Bytes {
        &self.bytes
    }
}

impl From<Bytes> for Str {
    /// A string stored whole ([`Str::new`]).
    fn from(bytes: Bytes) -> Str {
        Str::new(bytes)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn content_encoding_follows_redis_7_0() {
        // Captured from Redis 7.0.15 (`SET q <v>` then `OBJECT ENCODING q`).
        for (value, expected) in [
            ("0", "int"),
            ("-1", "int"),
            ("9223372036854775807", "int"),
            ("-9223372036854775808", "int"),
            ("9223372036854775808", "embstr"),
            ("-0", "embstr"),
            ("+1", "embstr"),
            ("01", "embstr"),
            (" 1", "embstr"),
            ("1.5", "embstr"),
            ("", "embstr"),
        ] {
            assert_eq!(content_encoding(value.as_bytes()), expected, "{value:?}");
        }
        assert_eq!(content_encoding(&[b'x'; 44]), "embstr");
        assert_eq!(content_encoding(&[b'x'; 45]), "raw");
    }

    #[test]
    fn a_string_changed_in_place_is_raw_until_replaced() {
        let stored = Str::new(Bytes::from_static(b"12"));
        assert_eq!(stored.encoding(), "int");
        let appended = Str::raw(Bytes::from_static(b"123"));
        assert_eq!(appended.encoding(), "raw");
        assert_eq!(appended.origin(), Origin::InPlace);
        assert_eq!(&appended[..], b"123");
        let replaced = Str::from(appended.into_bytes());
        assert_eq!(replaced.encoding(), "int");
    }

    #[test]
    fn a_formatted_number_is_never_int() {
        // Redis 7.0.15: `SET h 1.5`, `INCRBYFLOAT h 1.5` gives "3", `embstr`.
        assert_eq!(Str::text(Bytes::from_static(b"3")).encoding(), "embstr");
        assert_eq!(Str::text(Bytes::from(vec![b'1'; 45])).encoding(), "raw");
    }
}
