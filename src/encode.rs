//! postcard encoding appended to a `Vec<u8>` by slices.
//!
//! postcard's `to_extend` goes through `Extend<u8>`: a byte string (a key, a
//! value, a payload) is pushed as an iterator of bytes and every single byte
//! (each varint's) reserves on its own. Snapshots, log payloads and peer
//! frames are mostly byte strings, and in a follower's profile at SET `-P 16`
//! that byte loop was a third of writing a snapshot. This flavor copies a
//! byte string with one `extend_from_slice`.

use postcard::ser_flavors::Flavor;
use serde::Serialize;

/// Appends `value`'s postcard encoding to `out` and returns it.
///
/// postcard fails only when a flavor's buffer is full or a type refuses to
/// serialise; this flavor grows and the process's own types serialise, so an
/// error is a bug in this process, not an input.
pub fn append<T: Serialize + ?Sized>(value: &T, out: Vec<u8>) -> Vec<u8> {
    postcard::serialize_with_flavor(value, Append(out))
        .expect("postcard serialises the process's own values into a Vec")
}

/// A `Vec<u8>` that postcard appends to.
struct Append(Vec<u8>);

impl Flavor for Append {
    type Output = Vec<u8>;

    #[inline]
    fn try_extend(&mut self, data: &[u8]) -> postcard::Result<()> {
        self.0.extend_from_slice(data);
        Ok(())
    }

    #[inline]
    fn try_push(&mut self, data: u8) -> postcard::Result<()> {
        self.0.push(data);
        Ok(())
    }

    fn finalize(self) -> postcard::Result<Vec<u8>> {
        Ok(self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    #[derive(Serialize)]
    struct Sample<'a> {
        n: u64,
        key: &'a [u8],
        value: Bytes,
        text: &'a str,
        items: Vec<(u32, Option<i64>)>,
    }

    #[test]
    fn appends_the_same_bytes_postcard_writes() {
        let sample = Sample {
            n: 300,
            key: b"key:000000000042",
            value: Bytes::from(vec![7u8; 5000]),
            text: "hello",
            items: vec![(1, None), (u32::MAX, Some(-5))],
        };
        let expected = postcard::to_allocvec(&sample).expect("serialises");
        assert_eq!(append(&sample, Vec::new()), expected);
        // After what is already in the buffer, untouched.
        let mut prefixed = b"head".to_vec();
        prefixed.extend_from_slice(&expected);
        assert_eq!(append(&sample, b"head".to_vec()), prefixed);
    }
}
