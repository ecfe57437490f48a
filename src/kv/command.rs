//! Commands as they travel in the log, and the outputs apply computes.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

/// A state-machine command as stored in a log entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Command {
    /// The proposing leader's wall clock (ms since the Unix epoch): the machine's
    /// only source of time.
    pub ts_ms: u64,
    /// What to do.
    pub op: Op,
}

/// The write operations.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `SET key value`.
    Set {
        /// Key.
        key: Bytes,
        /// Value.
        value: Bytes,
    },
    /// `DEL key [key ...]`.
    Del {
        /// Keys to remove.
        keys: Vec<Bytes>,
    },
}

/// The result of applying a command, turned into a RESP reply by the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    /// `+OK`.
    Ok,
    /// An integer reply.
    Integer(i64),
    /// A bulk string, or nil.
    Bulk(Option<Bytes>),
    /// An error reply (full text, code included).
    Error(String),
}

/// A log payload that does not decode: the log is corrupt or from another version.
#[derive(Debug, thiserror::Error)]
#[error("undecodable command in log entry: {0}")]
pub struct DecodeError(#[from] postcard::Error);

impl Command {
    /// Encodes the command as a log payload.
    pub fn encode(&self) -> Bytes {
        // Serialising owned in-memory data to a Vec cannot fail.
        Bytes::from(postcard::to_allocvec(self).expect("postcard serialises in-memory commands"))
    }

    /// Decodes a log payload.
    ///
    /// # Errors
    /// [`DecodeError`] when the bytes are not a command.
    pub fn decode(bytes: &[u8]) -> Result<Command, DecodeError> {
        Ok(postcard::from_bytes(bytes)?)
    }
}

impl Output {
    /// Encodes for the forward RPC.
    pub fn encode(&self) -> Bytes {
        Bytes::from(postcard::to_allocvec(self).expect("postcard serialises in-memory outputs"))
    }

    /// Decodes a forward RPC reply.
    ///
    /// # Errors
    /// [`DecodeError`] on malformed bytes.
    pub fn decode(bytes: &[u8]) -> Result<Output, DecodeError> {
        Ok(postcard::from_bytes(bytes)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn command_round_trips() {
        let c = Command {
            ts_ms: 42,
            op: Op::Del {
                keys: vec!["a".into(), "b".into()],
            },
        };
        assert_eq!(Command::decode(&c.encode()).unwrap(), c);
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        assert!(Command::decode(&[0xff, 0xff, 0xff]).is_err());
    }
}
