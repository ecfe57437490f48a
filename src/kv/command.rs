//! Commands as they travel in the log, and the outputs apply computes.
//!
//! Most writes travel as [`Op::Exec`]: the command's own arguments (name
//! included) and the selected database; [`crate::kv::Db::apply`] parses and
//! runs them, so option parsing and error texts live in one place (the
//! interpreter in `kv/`) and a command inside `MULTI` behaves exactly as the
//! same command outside it. Relative TTLs (`EX 10`) become absolute deadlines
//! from the entry's `ts_ms` (the proposing leader's clock) when applied, which
//! is the same on every replica.

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

/// What a `WATCH` saw of one key, carried by the `EXEC` entry.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WatchToken {
    /// Database index.
    pub db: u8,
    /// The watched key.
    pub key: Bytes,
    /// The map's modification counter when the key was read
    /// ([`crate::kv::Db::watch_token`]).
    pub seen: u64,
    /// Whether the key was alive (present, not expired) then.
    pub existed: bool,
}

/// The operations in the log.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Op {
    /// `SET key value` in database 0 (no options; clears any TTL).
    Set {
        /// Key.
        key: Bytes,
        /// Value.
        value: Bytes,
    },
    /// `DEL key [key ...]` in database 0.
    Del {
        /// Keys to remove.
        keys: Vec<Bytes>,
    },
    /// Any command of the interpreter (`args[0]` is its name), run in `db`.
    Exec {
        /// Database index (0..16).
        db: u8,
        /// The command as the client sent it.
        args: Vec<Bytes>,
    },
    /// `MULTI` … `EXEC`: every queued command, each with the database it runs
    /// in, applied atomically — unless a watched key changed (the output is
    /// then a nil array).
    Multi {
        /// Queued commands.
        commands: Vec<(u8, Vec<Bytes>)>,
        /// The `WATCH`ed keys.
        watched: Vec<WatchToken>,
    },
    /// Active expiry proposed by the leader: deletes those of the keys that
    /// are still expired at the entry's time.
    Expire {
        /// `(db, key)` pairs.
        keys: Vec<(u8, Bytes)>,
    },
    /// Eviction proposed by the leader under `maxmemory`.
    Evict {
        /// `(db, key)` pairs.
        keys: Vec<(u8, Bytes)>,
    },
}

/// The result of applying a command, turned into a RESP reply by the server.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    /// `+OK`.
    Ok,
    /// Another status reply (`+QUEUED`, `+string` from TYPE ...).
    Status(String),
    /// An integer reply.
    Integer(i64),
    /// A bulk string, or nil.
    Bulk(Option<Bytes>),
    /// An array.
    Array(Vec<Output>),
    /// A nil array (`*-1` in RESP2): an aborted `EXEC`.
    NilArray,
    /// A map (a flat array in RESP2).
    Map(Vec<(Output, Output)>),
    /// An error reply (full text, code included).
    Error(String),
    /// Field/value pairs: a flat array in RESP2, an array of 2-element
    /// arrays in RESP3 (`HRANDFIELD … WITHVALUES`, as Redis 7).
    Pairs(Vec<(Output, Output)>),
}

impl Output {
    /// A bulk string.
    pub fn bulk(b: impl Into<Bytes>) -> Output {
        Output::Bulk(Some(b.into()))
    }

    /// Nil.
    pub const NIL: Output = Output::Bulk(None);

    /// An error from its full text.
    pub fn err(text: impl Into<String>) -> Output {
        Output::Error(text.into())
    }
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
        let m = Command {
            ts_ms: 7,
            op: Op::Multi {
                commands: vec![(3, vec!["set".into(), "k".into(), "v".into()])],
                watched: vec![WatchToken {
                    db: 1,
                    key: "w".into(),
                    seen: 9,
                    existed: true,
                }],
            },
        };
        assert_eq!(Command::decode(&m.encode()).unwrap(), m);
    }

    #[test]
    fn outputs_round_trip() {
        let o = Output::Array(vec![
            Output::NilArray,
            Output::Map(vec![(Output::bulk("f"), Output::Integer(-1))]),
            Output::Status("QUEUED".into()),
            Output::NIL,
        ]);
        assert_eq!(Output::decode(&o.encode()).unwrap(), o);
    }

    #[test]
    fn garbage_is_a_decode_error_not_a_panic() {
        assert!(Command::decode(&[0xff, 0xff, 0xff]).is_err());
    }
}
